//! Request bodies on the plug-in side: Content-Length or chunked (RFC 9112 section 7.1).

use std::io;

/// Where more body bytes come from (the socket, or a test's buffer).
pub(crate) trait Source {
    /// Appends at least one byte to `into`; `Ok(0)` at end of stream.
    fn more(&mut self, into: &mut Vec<u8>) -> io::Result<usize>;
}

/// How much of the body is left to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyState {
    /// Read completely (or there was none).
    Done,
    /// A Content-Length body with this many bytes left.
    Length(u64),
    Chunked,
    /// Reading failed part way; the connection cannot carry another request.
    Broken,
}

const MAX_CHUNK_LINE: usize = 4096;

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "request body larger than allowed",
    )
}

/// Reads the rest of the body: bytes in `unread` first, then from `source`. Bytes past the
/// body stay in `unread`. More than `max_bytes` is a `FileTooLarge` error, bad framing
/// `InvalidData`.
pub(crate) fn read_all(
    state: &mut BodyState,
    unread: &mut Vec<u8>,
    source: &mut dyn Source,
    max_bytes: usize,
) -> io::Result<Vec<u8>> {
    let result = match *state {
        BodyState::Done => Ok(Vec::new()),
        BodyState::Broken => Err(invalid("the request body could not be read")),
        BodyState::Length(n) => read_length(n, unread, source, max_bytes),
        BodyState::Chunked => read_chunked(unread, source, max_bytes),
    };
    *state = if result.is_ok() {
        BodyState::Done
    } else {
        BodyState::Broken
    };
    result
}

fn fill(unread: &mut Vec<u8>, source: &mut dyn Source) -> io::Result<()> {
    match source.more(unread)? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client closed during the body",
        )),
        _ => Ok(()),
    }
}

fn read_length(
    n: u64,
    unread: &mut Vec<u8>,
    source: &mut dyn Source,
    max_bytes: usize,
) -> io::Result<Vec<u8>> {
    if n > max_bytes as u64 {
        return Err(too_large());
    }
    let n = n as usize;
    while unread.len() < n {
        fill(unread, source)?;
    }
    Ok(unread.drain(..n).collect())
}

fn take_line(unread: &mut Vec<u8>, source: &mut dyn Source) -> io::Result<Vec<u8>> {
    loop {
        if let Some(end) = unread.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = unread.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if unread.len() > MAX_CHUNK_LINE {
            return Err(invalid("chunk line too long"));
        }
        fill(unread, source)?;
    }
}

fn read_chunked(
    unread: &mut Vec<u8>,
    source: &mut dyn Source,
    max_bytes: usize,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = take_line(unread, source)?;
        let size_part = line.split(|b| *b == b';').next().unwrap_or(&[]);
        let size_text =
            std::str::from_utf8(size_part).map_err(|_| invalid("invalid chunk size"))?;
        let size_text = size_text.trim_end_matches([' ', '\t']);
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(invalid("invalid chunk size"));
        }
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| invalid("invalid chunk size"))?;
        if size == 0 {
            while !take_line(unread, source)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > max_bytes {
            return Err(too_large());
        }
        while unread.len() < size {
            fill(unread, source)?;
        }
        body.extend(unread.drain(..size));
        if !take_line(unread, source)?.is_empty() {
            return Err(invalid("chunk data longer than its size"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out a byte string a few bytes at a time.
    struct Trickle(Vec<u8>, usize);

    impl Source for Trickle {
        fn more(&mut self, into: &mut Vec<u8>) -> io::Result<usize> {
            let take = self.1.min(self.0.len());
            into.extend(self.0.drain(..take));
            Ok(take)
        }
    }

    fn read(
        state: BodyState,
        already: &[u8],
        rest: &[u8],
        max: usize,
    ) -> (io::Result<Vec<u8>>, Vec<u8>, BodyState) {
        let mut state = state;
        let mut unread = already.to_vec();
        let mut source = Trickle(rest.to_vec(), 3);
        let got = read_all(&mut state, &mut unread, &mut source, max);
        (got, unread, state)
    }

    #[test]
    fn length_body_leaves_the_next_request() {
        let (got, unread, state) = read(BodyState::Length(5), b"he", b"lloGET /", 100);
        assert_eq!(got.unwrap(), b"hello");
        assert!(b"GET /".starts_with(&unread));
        assert_eq!(state, BodyState::Done);
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let wire = b"4;x=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let (got, unread, _) = read(BodyState::Chunked, &wire[..7], &wire[7..], 100);
        assert_eq!(got.unwrap(), b"Wikipedia");
        assert!(b"NEXT".starts_with(&unread));
    }

    #[test]
    fn limits_and_bad_framing_are_errors() {
        let (got, _, state) = read(BodyState::Length(500), b"", b"", 100);
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(state, BodyState::Broken);
        let (got, _, _) = read(BodyState::Chunked, b"zz\r\n", b"", 100);
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (got, _, _) = read(BodyState::Chunked, b"2\r\nabc\r\n0\r\n\r\n", b"", 100);
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (got, _, _) = read(BodyState::Length(4), b"ab", b"", 100);
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
