//! HTTP/2 messages to and from the HTTP/1.1 the rest of the network speaks (RFC 9113 §8):
//! a decoded request header list is checked and written as an HTTP/1.1 head; an HTTP/1.1
//! response head is read back and encoded with HPACK, hop-by-hop fields dropped. Pure code.

use std::borrow::Cow;

/// Why a request header list is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Malformed (§8.1.1): a stream error of type PROTOCOL_ERROR.
    Protocol,
    /// The decoded list is larger than SETTINGS_MAX_HEADER_LIST_SIZE: answered 431.
    TooLarge,
}

/// A request's fields as decoded, in order, with the pseudo-fields split out.
#[derive(Debug, Default)]
pub struct RequestFields {
    pub method: Option<Vec<u8>>,
    pub scheme: Option<Vec<u8>>,
    pub authority: Option<Vec<u8>>,
    pub path: Option<Vec<u8>>,
    /// Regular fields: lower-case names, values as sent.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Set by the first fault found; later fields are not kept.
    pub fault: Option<Malformed>,
    /// Decoded size so far, as §6.5.2 counts it (name + value + 32 per field).
    pub size: usize,
    pub max_size: usize,
    seen_regular: bool,
}

/// Fields that belong to one HTTP/1.1 connection and are malformed in HTTP/2 (§8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

impl RequestFields {
    pub fn new(max_size: usize) -> RequestFields {
        RequestFields {
            max_size,
            ..RequestFields::default()
        }
    }

    /// Takes one decoded field (called by the HPACK decoder for each).
    pub fn push(&mut self, name: Cow<[u8]>, value: Cow<[u8]>) {
        self.size += name.len() + value.len() + 32;
        if self.fault.is_some() {
            return;
        }
        if self.size > self.max_size {
            self.fault = Some(Malformed::TooLarge);
            self.fields = Vec::new();
            return;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            let slot = match pseudo {
                _ if self.seen_regular => return self.fail(),
                b"method" => &mut self.method,
                b"scheme" => &mut self.scheme,
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                _ => return self.fail(),
            };
            if slot.is_some() || value.iter().any(|&b| b <= b' ' || b == 0x7f) {
                return self.fail();
            }
            *slot = Some(value.into_owned());
            return;
        }
        self.seen_regular = true;
        let name_ok = !name.is_empty()
            && name.iter().all(|&b| {
                b.is_ascii_graphic()
                    && !b.is_ascii_uppercase()
                    && !b"()<>@,;:\\\"/[]?={}".contains(&b)
            });
        let value_ok = !value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
            && !value.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            && !value.last().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !name_ok || !value_ok || CONNECTION_SPECIFIC.contains(&&*name) {
            return self.fail();
        }
        if &*name == b"te" && &*value != b"trailers" {
            return self.fail();
        }
        self.fields.push((name.into_owned(), value.into_owned()));
    }

    fn fail(&mut self) {
        self.fault = Some(Malformed::Protocol);
    }

    pub fn is_head(&self) -> bool {
        self.method.as_deref() == Some(b"HEAD")
    }

    /// The declared `content-length`, if any (`Err` when it is not a number, or two differ).
    pub fn content_length(&self) -> Result<Option<u64>, Malformed> {
        let mut found = None;
        for (name, value) in &self.fields {
            if name == b"content-length" {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(Malformed::Protocol)?;
                if found.is_some_and(|f| f != n) {
                    return Err(Malformed::Protocol);
                }
                found = Some(n);
            }
        }
        Ok(found)
    }

    /// Checks the pseudo-fields (§8.3.1) and writes the HTTP/1.1 head the front end reads:
    /// `Host` from `:authority`, cookies joined (§8.2.3), `Connection: close` (the stream's
    /// record carries one exchange), and `Content-Length` of the body the session buffered.
    pub fn to_http1(&self, body_len: Option<u64>, out: &mut Vec<u8>) -> Result<(), Malformed> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        let method = self.method.as_deref().ok_or(Malformed::Protocol)?;
        let target: &[u8] = if method == b"CONNECT" {
            if self.scheme.is_some() || self.path.is_some() {
                return Err(Malformed::Protocol);
            }
            self.authority.as_deref().ok_or(Malformed::Protocol)?
        } else {
            if self.scheme.is_none() {
                return Err(Malformed::Protocol);
            }
            match self.path.as_deref() {
                Some(path) if !path.is_empty() => path,
                _ => return Err(Malformed::Protocol),
            }
        };
        out.extend_from_slice(method);
        out.push(b' ');
        out.extend_from_slice(target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let host = self.authority.as_deref().or_else(|| {
            self.fields
                .iter()
                .find(|(n, _)| n == b"host")
                .map(|(_, v)| v.as_slice())
        });
        if let Some(host) = host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        let mut cookies = 0;
        for (name, value) in &self.fields {
            match name.as_slice() {
                b"host" | b"content-length" | b"te" | b"expect" | b"http2-settings" => continue,
                b"cookie" => {
                    cookies += 1;
                    continue;
                }
                _ => {}
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if cookies > 0 {
            out.extend_from_slice(b"cookie: ");
            let mut first = true;
            for (_, value) in self.fields.iter().filter(|(n, _)| n == b"cookie") {
                if !first {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(value);
                first = false;
            }
            out.extend_from_slice(b"\r\n");
        }
        if let Some(n) = body_len {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        Ok(())
    }
}

/// A handler's answer that is not HTTP/1.1 (a bad head or bad chunking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHttp;

/// How the body of an HTTP/1.1 response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the handler closes the stream's socket.
    UntilClose,
}

/// A parsed HTTP/1.1 response head, ready to be sent as HEADERS.
pub struct ResponseHead {
    pub status: u16,
    pub head_len: usize,
    pub framing: Framing,
}

/// Fields never forwarded into HTTP/2 (§8.2.2).
fn hop_by_hop(name: &str) -> bool {
    CONNECTION_SPECIFIC
        .iter()
        .any(|c| name.as_bytes().eq_ignore_ascii_case(c))
}

/// Parses an HTTP/1.1 response head from `buf`, and HPACK-encodes it into `block`.
/// `Ok(None)`: incomplete. `Err`: not a response.
pub fn encode_response(
    buf: &[u8],
    head_request: bool,
    encoder: &mut loona_hpack::Encoder<'static>,
    block: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(NotHttp),
    };
    let status = parsed.code.ok_or(NotHttp)?;
    let mut framing = Framing::UntilClose;
    let mut chunked = false;
    let mut status_text = [0u8; 3];
    status_text[0] = b'0' + (status / 100 % 10) as u8;
    status_text[1] = b'0' + (status / 10 % 10) as u8;
    status_text[2] = b'0' + (status % 10) as u8;
    let mut lower = Vec::with_capacity(32);
    encoder
        .encode_header_into((b":status", &status_text), block)
        .map_err(|_| NotHttp)?;
    for header in parsed.headers.iter() {
        if hop_by_hop(header.name) {
            if header.name.eq_ignore_ascii_case("transfer-encoding")
                && header
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            {
                chunked = true;
            }
            continue;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            if let Some(n) = std::str::from_utf8(header.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                framing = Framing::Length(n);
            }
        }
        lower.clear();
        lower.extend(header.name.bytes().map(|b| b.to_ascii_lowercase()));
        encoder
            .encode_header_into((&lower, header.value), block)
            .map_err(|_| NotHttp)?;
    }
    if chunked {
        framing = Framing::Chunked;
    }
    if head_request || status < 200 || status == 204 || status == 304 {
        framing = Framing::None;
    }
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
    }))
}

/// Undoes `Transfer-Encoding: chunked` as bytes arrive.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Dechunk {
    /// Feeds `input`, appending body bytes to `out`; `Ok(true)` once the last chunk and the
    /// trailers are read.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, NotHttp> {
        while !input.is_empty() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Size | ChunkState::Trailers | ChunkState::DataEnd => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 4096 {
                            return Err(NotHttp);
                        }
                        return Ok(false);
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        ChunkState::Size => {
                            let digits = line.split(|b| *b == b';').next().unwrap_or(b"");
                            let text = std::str::from_utf8(digits).map_err(|_| NotHttp)?;
                            let n = u64::from_str_radix(text.trim(), 16).map_err(|_| NotHttp)?;
                            if n == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data(n)
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(NotHttp),
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailers,
                    };
                }
                ChunkState::Data(left) => {
                    let take = (left as usize).min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Done => {}
            }
        }
        Ok(self.state == ChunkState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> RequestFields {
        let mut f = RequestFields::new(65_536);
        for (n, v) in list {
            f.push(Cow::Borrowed(n.as_bytes()), Cow::Borrowed(v.as_bytes()));
        }
        f
    }

    #[test]
    fn request_to_http1() {
        let f = fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/a?b"),
            ("cookie", "a=1"),
            ("accept", "*/*"),
            ("cookie", "b=2"),
        ]);
        let mut out = Vec::new();
        f.to_http1(None, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\ncookie: a=1; b=2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn malformed_requests() {
        let bad = [
            vec![(":method", "GET"), (":path", "/")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("Upper", "x"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("connection", "x"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            vec![
                (":method", "GET"),
                ("a", "b"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":foo", "x"),
            ],
        ];
        for list in bad {
            let mut out = Vec::new();
            assert_eq!(
                fields(&list).to_http1(None, &mut out),
                Err(Malformed::Protocol),
                "{list:?}"
            );
        }
    }

    #[test]
    fn response_head_drops_hop_by_hop() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut block = Vec::new();
        let head = encode_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\nX-A: b\r\n\r\nabc",
            false,
            &mut encoder,
            &mut block,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing, Framing::Length(3));
        let decoded = loona_hpack::Decoder::new().decode(&block).unwrap();
        let names: Vec<_> = decoded.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [&b":status"[..], b"content-length", b"x-a"]);
    }

    #[test]
    fn dechunks() {
        let mut d = Dechunk::default();
        let mut out = Vec::new();
        assert_eq!(d.feed(b"3\r\nab", &mut out), Ok(false));
        assert_eq!(d.feed(b"c\r\n0\r\n\r\n", &mut out), Ok(true));
        assert_eq!(out, b"abc");
    }
}
