//! Request bodies: Content-Length or chunked (RFC 9112 section 7.1), read from a `Conn` or
//! decoded from bytes already in memory. Both share one state machine.

use std::io;
use std::time::Instant;

use super::{Body, HttpError};
use crate::conn::Conn;

/// Reads a request body in pieces, decoding chunked framing and enforcing a size limit.
/// Bytes already in `conn.unread` are consumed first.
pub struct BodyReader {
    state: State,
    max_body_bytes: u64,
    total: u64,
}

enum State {
    /// `remaining` bytes of a length-delimited body (or of the current chunk).
    Fixed {
        remaining: u64,
        chunked: bool,
    },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Expecting the CRLF after chunk data.
    ChunkEnd,
    /// Reading trailer lines until the empty one.
    Trailers,
    Done,
}

/// A failure while reading a body.
#[derive(Debug)]
pub enum BodyError {
    /// Bad framing or too large: answer with this error.
    Http(HttpError),
    /// The socket failed or the peer went away.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::TimedOut {
            BodyError::Http(HttpError::Timeout)
        } else {
            BodyError::Io(e)
        }
    }
}

impl From<HttpError> for BodyError {
    fn from(e: HttpError) -> Self {
        BodyError::Http(e)
    }
}

const MAX_CHUNK_LINE: usize = 4096;

/// Where the state machine takes bytes from: a buffer, and a way to append more to it.
trait Source {
    type Error: From<HttpError>;
    fn buffer(&mut self) -> &mut Vec<u8>;
    /// Appends at least one byte to the buffer, or fails.
    fn fill(&mut self) -> Result<(), Self::Error>;
}

/// The socket: `conn.unread` first, then reads until the deadline.
struct FromConn<'a> {
    conn: &'a mut Conn,
    deadline: Instant,
}

impl Source for FromConn<'_> {
    type Error = BodyError;

    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.conn.unread
    }

    fn fill(&mut self) -> Result<(), BodyError> {
        let mut buf = std::mem::take(&mut self.conn.unread);
        let got = self.conn.read_until(&mut buf, 64 * 1024, self.deadline);
        self.conn.unread = buf;
        match got? {
            0 => Err(BodyError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed during body",
            ))),
            _ => Ok(()),
        }
    }
}

/// Bytes in memory: running out means more input is needed.
struct FromBuffer<'a> {
    input: &'a mut Vec<u8>,
}

/// Why decoding from a buffer stopped early.
enum Short {
    Http(HttpError),
    NeedMore,
}

impl From<HttpError> for Short {
    fn from(e: HttpError) -> Self {
        Short::Http(e)
    }
}

impl Source for FromBuffer<'_> {
    type Error = Short;

    fn buffer(&mut self) -> &mut Vec<u8> {
        self.input
    }

    fn fill(&mut self) -> Result<(), Short> {
        Err(Short::NeedMore)
    }
}

impl BodyReader {
    pub fn new(body: Body, max_body_bytes: u64) -> BodyReader {
        let state = match body {
            Body::None => State::Done,
            Body::Length(n) => State::Fixed {
                remaining: n,
                chunked: false,
            },
            Body::Chunked => State::ChunkSize,
        };
        BodyReader {
            state,
            max_body_bytes,
            total: 0,
        }
    }

    /// Whether the whole body has been delivered (a length-delimited body is done as soon as
    /// its last byte is, without another `read`).
    pub fn is_done(&self) -> bool {
        matches!(
            self.state,
            State::Done
                | State::Fixed {
                    remaining: 0,
                    chunked: false
                }
        )
    }

    /// Bytes of body delivered so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Appends the next piece of body to `out`; returns the bytes added, 0 at the end.
    pub fn read(
        &mut self,
        conn: &mut Conn,
        out: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, BodyError> {
        self.step(&mut FromConn { conn, deadline }, out)
    }

    /// Like `read`, but from bytes in memory: consumes from the front of `input` and returns
    /// `Ok(None)` when `input` runs out before the body does. The reader can then be given
    /// more input and called again, so a body may arrive in any number of pieces.
    pub fn read_buffered(
        &mut self,
        input: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, HttpError> {
        match self.step(&mut FromBuffer { input }, out) {
            Ok(n) => Ok(Some(n)),
            Err(Short::NeedMore) => Ok(None),
            Err(Short::Http(e)) => Err(e),
        }
    }

    /// The state machine shared by both sources.
    fn step<S: Source>(&mut self, src: &mut S, out: &mut Vec<u8>) -> Result<usize, S::Error> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Fixed { remaining, chunked } => {
                    if remaining == 0 {
                        self.state = if chunked {
                            State::ChunkEnd
                        } else {
                            State::Done
                        };
                        continue;
                    }
                    if src.buffer().is_empty() {
                        src.fill()?;
                    }
                    let unread = src.buffer();
                    let take = (remaining.min(unread.len() as u64)) as usize;
                    out.extend_from_slice(&unread[..take]);
                    unread.drain(..take);
                    self.total += take as u64;
                    self.state = State::Fixed {
                        remaining: remaining - take as u64,
                        chunked,
                    };
                    return Ok(take);
                }
                State::ChunkSize => {
                    let line = take_line(src)?;
                    let size_part = line.split(|b| *b == b';').next().unwrap_or(&[]);
                    let size_text =
                        std::str::from_utf8(size_part).map_err(|_| bad("invalid chunk size"))?;
                    let size_text = size_text.trim_end_matches([' ', '\t']);
                    if size_text.is_empty()
                        || size_text.len() > 15
                        || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return Err(bad("invalid chunk size").into());
                    }
                    let size = u64::from_str_radix(size_text, 16)
                        .map_err(|_| bad("invalid chunk size"))?;
                    if size == 0 {
                        self.state = State::Trailers;
                        continue;
                    }
                    if self.total.saturating_add(size) > self.max_body_bytes {
                        return Err(HttpError::PayloadTooLarge.into());
                    }
                    self.state = State::Fixed {
                        remaining: size,
                        chunked: true,
                    };
                }
                State::ChunkEnd => {
                    let line = take_line(src)?;
                    if !line.is_empty() {
                        return Err(bad("chunk data longer than its size").into());
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let line = take_line(src)?;
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// Reads the whole body into a vector.
    pub fn read_to_end(
        &mut self,
        conn: &mut Conn,
        deadline: Instant,
    ) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        while self.read(conn, &mut out, deadline)? > 0 {}
        Ok(out)
    }

    /// Reads and throws the body away, so the connection can carry the next request.
    pub fn discard(&mut self, conn: &mut Conn, deadline: Instant) -> Result<(), BodyError> {
        let mut sink = Vec::new();
        loop {
            sink.clear();
            if self.read(conn, &mut sink, deadline)? == 0 {
                return Ok(());
            }
        }
    }
}

/// A whole body decoded from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub body: Vec<u8>,
    /// Bytes of `input` the framed body occupied; what follows is the next request.
    pub consumed: usize,
}

/// Decodes a whole body framed as `body` from the front of `input`.
/// `Ok(None)`: `input` ends before the body does.
pub fn decode(body: Body, max_body_bytes: u64, input: &[u8]) -> Result<Option<Decoded>, HttpError> {
    let mut reader = BodyReader::new(body, max_body_bytes);
    let mut rest = input.to_vec();
    let mut out = Vec::new();
    loop {
        match reader.read_buffered(&mut rest, &mut out)? {
            None => return Ok(None),
            Some(0) => {
                return Ok(Some(Decoded {
                    body: out,
                    consumed: input.len() - rest.len(),
                }))
            }
            Some(_) => {}
        }
    }
}

fn bad(why: &'static str) -> HttpError {
    HttpError::BadRequest(why)
}

/// Takes one CRLF- (or LF-) terminated line from the source, without the terminator.
fn take_line<S: Source>(src: &mut S) -> Result<Vec<u8>, S::Error> {
    loop {
        let unread = src.buffer();
        if let Some(end) = unread.iter().position(|b| *b == b'\n') {
            // The limit holds however the line arrived: in one read or a byte at a time.
            if end > MAX_CHUNK_LINE {
                return Err(bad("chunk line too long").into());
            }
            let mut line: Vec<u8> = unread.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if unread.len() > MAX_CHUNK_LINE {
            return Err(bad("chunk line too long").into());
        }
        src.fill()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(input: &[u8]) -> Result<Option<Decoded>, HttpError> {
        decode(Body::Chunked, 1 << 20, input)
    }

    #[test]
    fn length_body_and_what_follows() {
        let got = decode(Body::Length(5), 100, b"helloGET /")
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Decoded {
                body: b"hello".to_vec(),
                consumed: 5
            }
        );
        assert_eq!(decode(Body::Length(5), 100, b"hel").unwrap(), None);
        assert_eq!(
            decode(Body::None, 100, b"GET /").unwrap().unwrap().consumed,
            0
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let got = chunked(input).unwrap().unwrap();
        assert_eq!(got.body, b"hello world");
        assert_eq!(&input[got.consumed..], b"NEXT");
    }

    #[test]
    fn chunked_framing_errors() {
        assert_eq!(chunked(b"zz\r\n").unwrap_err().status(), 400);
        assert_eq!(chunked(b"\r\n").unwrap_err().status(), 400);
        assert_eq!(chunked(b"3\r\nabcdef\r\n").unwrap_err().status(), 400);
        assert_eq!(chunked(b"1000000000000000\r\n").unwrap_err().status(), 400);
        assert_eq!(
            decode(Body::Chunked, 4, b"5\r\nhello\r\n0\r\n\r\n")
                .unwrap_err()
                .status(),
            413
        );
        let long_line = vec![b'1'; MAX_CHUNK_LINE + 2];
        assert_eq!(chunked(&long_line).unwrap_err().status(), 400);
        assert_eq!(chunked(b"5\r\nhel").unwrap(), None);
    }

    #[test]
    fn a_long_chunk_line_is_refused_however_it_arrives() {
        // Found with the chunked_body fuzz target's property: a 5,000-byte chunk extension was
        // accepted when it arrived in one read and refused when it trickled in.
        let mut input = b"5;".to_vec();
        input.extend(std::iter::repeat_n(b'a', 5000));
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(chunked(&input).unwrap_err().status(), 400);
        let mut reader = BodyReader::new(Body::Chunked, 1 << 20);
        let (mut buffer, mut out) = (Vec::new(), Vec::new());
        let mut refused = None;
        for byte in &input {
            buffer.push(*byte);
            match reader.read_buffered(&mut buffer, &mut out) {
                Ok(_) => {}
                Err(e) => {
                    refused = Some(e.status());
                    break;
                }
            }
        }
        assert_eq!(refused, Some(400));
        let mut at_limit = b"5;".to_vec();
        at_limit.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE - 2));
        at_limit.extend_from_slice(b"\nhello\r\n0\r\n\r\n");
        assert_eq!(chunked(&at_limit).unwrap().unwrap().body, b"hello");
    }

    #[test]
    fn any_split_decodes_the_same() {
        let input =
            b"4\r\nWiki\r\n5;a=b\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\nrest";
        let whole = chunked(input).unwrap().unwrap();
        for piece in 1..input.len() {
            let mut reader = BodyReader::new(Body::Chunked, 1 << 20);
            let (mut buffer, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
            loop {
                match reader.read_buffered(&mut buffer, &mut out).unwrap() {
                    Some(0) => break,
                    Some(_) => {}
                    None => {
                        let end = (fed + piece).min(input.len());
                        buffer.extend_from_slice(&input[fed..end]);
                        fed = end;
                    }
                }
            }
            assert_eq!(out, whole.body, "piece size {piece}");
            assert_eq!(fed - buffer.len(), whole.consumed, "piece size {piece}");
        }
    }
}
