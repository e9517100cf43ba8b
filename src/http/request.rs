//! Reading one request head: httparse plus the limits and framing rules of RFC 9112.

use std::time::Instant;

use super::HttpError;

/// Methods this server knows; anything else is answered 501.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
}

impl Method {
    pub fn parse(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// One header field; the value is kept as bytes (obs-text is legal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The request-target exactly as sent.
    pub target: String,
    /// The path part, still percent-encoded.
    pub path: String,
    /// The raw query string (after `?`), if any.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// It came on an HTTP/2 stream (read from the record the h2 session wrote as HTTP/1.1).
    pub http2: bool,
    pub headers: Vec<Header>,
    /// The client allows the connection to persist after this exchange.
    pub keep_alive: bool,
    pub body: Body,
    pub expect_continue: bool,
    pub host: Option<String>,
    /// Length of the head in bytes, including the blank line.
    pub head_len: usize,
    pub received: Instant,
    /// The site chosen by Host, set by the front end; it travels with the request.
    pub site: Option<crate::site::SiteRef>,
    /// Set when the request came over HTTPS and `[tls] hsts_max_age_secs` is not 0: answers
    /// carry `Strict-Transport-Security: max-age=N`.
    pub hsts_max_age_secs: u64,
}

impl Request {
    /// The first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The first value of a header as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn is_head(&self) -> bool {
        self.method == Method::Head
    }

    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn version_str(&self) -> &'static str {
        if self.http2 {
            "HTTP/2.0"
        } else if self.minor_version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// Whether the client asked to switch to the websocket protocol.
    pub fn wants_websocket(&self) -> bool {
        let upgrade = self
            .header_str("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        upgrade && has_token(self.header_str("connection").unwrap_or(""), "upgrade")
    }
}

/// Limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_request_line_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_request_line_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Parses a head from the start of `buf`.
///
/// `Ok(None)`: incomplete, read more. `Ok(Some(req))`: a whole head of `req.head_len` bytes.
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<Request>, HttpError> {
    // Skip the empty lines RFC 9112 section 2.2 allows before a request line.
    let skipped = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skipped..];
    let line_end = rest.iter().position(|b| *b == b'\n');
    match line_end {
        None if rest.len() > limits.max_request_line_bytes => return Err(HttpError::UriTooLong),
        Some(end) if end > limits.max_request_line_bytes => return Err(HttpError::UriTooLong),
        _ => {}
    }
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    let status = match parsed.parse(buf) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            return match version_fault(rest, line_end.is_some()) {
                // Still incomplete, but never past the head limit (found by the request_head
                // fuzz target: empty lines, then a version cut short).
                VersionFault::Incomplete if buf.len() > limits.max_header_bytes => {
                    Err(HttpError::HeadersTooLarge)
                }
                VersionFault::Incomplete => Ok(None),
                VersionFault::NewerMinor(at) => {
                    // RFC 9110 section 2.5: a newer minor version of HTTP/1 is read as HTTP/1.1.
                    let mut patched = buf.to_vec();
                    patched[skipped + at] = b'1';
                    parse_head(&patched, limits)
                }
                VersionFault::Error(e) => Err(e),
            };
        }
        Err(httparse::Error::Token) if line_end.is_none() => {
            return Err(HttpError::BadRequest("invalid method"));
        }
        Err(_) => return Err(HttpError::BadRequest("malformed request head")),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    // The empty lines skipped before the request line count too, as they do while the head is
    // incomplete; otherwise a trickled head would be refused where a whole one is not.
    if head_len > limits.max_header_bytes {
        return Err(HttpError::HeadersTooLarge);
    }
    let method_token = parsed.method.unwrap_or("");
    let target = parsed.path.unwrap_or("").to_string();
    let minor_version = parsed.version.unwrap_or(1);
    let method = Method::parse(method_token).ok_or(HttpError::NotImplemented("unknown method"))?;
    let headers: Vec<Header> = parsed
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: h.value.to_vec(),
        })
        .collect();
    build(method, target, minor_version, headers, head_len)
}

/// What a version that httparse refused turns out to be.
enum VersionFault {
    /// The line is still arriving and may yet be well formed: read more.
    Incomplete,
    /// `HTTP/1.x` with x > 1; the minor digit is at this offset of the request line.
    NewerMinor(usize),
    Error(HttpError),
}

/// Classifies a request line whose version httparse refused. Only a line of exactly three
/// parts (RFC 9112 section 3) with a well-formed `HTTP/x.y` (section 2.3) has a version at all:
/// another major version is 505; anything else is a malformed line, 400.
fn version_fault(rest: &[u8], line_complete: bool) -> VersionFault {
    let malformed = VersionFault::Error(HttpError::BadRequest("malformed request line"));
    let line_end = rest
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(rest.len());
    let line = &rest[..line_end];
    let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return malformed;
    };
    const SHAPE: &[u8] = b"HTTP/d.d";
    let fits = |(have, want): (&u8, &u8)| {
        if *want == b'd' {
            have.is_ascii_digit()
        } else {
            have == want
        }
    };
    if version.len() > SHAPE.len() || !version.iter().zip(SHAPE).all(fits) {
        return malformed;
    }
    if !line_complete {
        // Only the whole line decides: `HTTP/2.0` may yet turn into `HTTP/2.0.1`.
        return VersionFault::Incomplete;
    }
    if version.len() < SHAPE.len() {
        return malformed;
    }
    match (version[5], version[7]) {
        (b'1', b'2'..=b'9') => VersionFault::NewerMinor(method.len() + 1 + target.len() + 1 + 7),
        (b'1', _) => malformed,
        _ => VersionFault::Error(HttpError::VersionNotSupported),
    }
}

fn build(
    method: Method,
    target: String,
    minor_version: u8,
    headers: Vec<Header>,
    head_len: usize,
) -> Result<Option<Request>, HttpError> {
    if target.is_empty() {
        return Err(HttpError::BadRequest("empty request target"));
    }
    let mut host: Option<String> = None;
    let mut host_count = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut connection = String::new();
    let mut expect_continue = false;
    for h in &headers {
        let value = std::str::from_utf8(&h.value).ok();
        if h.name.eq_ignore_ascii_case("host") {
            host_count += 1;
            host = Some(
                value
                    .ok_or(HttpError::BadRequest("invalid Host"))?
                    .trim()
                    .to_string(),
            );
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = value.ok_or(HttpError::BadRequest("invalid Content-Length"))?;
            for part in v.split(',') {
                let n = parse_length(part.trim())
                    .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(HttpError::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = value.ok_or(HttpError::BadRequest("invalid Transfer-Encoding"))?;
            let te = transfer_encoding.get_or_insert_with(String::new);
            if !te.is_empty() {
                te.push(',');
            }
            te.push_str(v);
        } else if h.name.eq_ignore_ascii_case("connection") {
            if !connection.is_empty() {
                connection.push(',');
            }
            connection.push_str(value.unwrap_or(""));
        } else if h.name.eq_ignore_ascii_case("expect") {
            match value.map(str::trim) {
                Some(v) if v.eq_ignore_ascii_case("100-continue") => expect_continue = true,
                _ => return Err(HttpError::ExpectationFailed),
            }
        }
    }
    if host_count > 1 {
        return Err(HttpError::BadRequest("more than one Host"));
    }
    if minor_version == 1 && host_count == 0 {
        return Err(HttpError::BadRequest("HTTP/1.1 request without Host"));
    }
    if let Some(h) = &host {
        if !valid_host(h) {
            return Err(HttpError::BadRequest("invalid Host"));
        }
    }
    let body = match (&transfer_encoding, content_length) {
        (Some(_), Some(_)) => {
            return Err(HttpError::BadRequest(
                "Content-Length with Transfer-Encoding",
            ))
        }
        (Some(te), None) => {
            if minor_version == 0 {
                return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
            }
            let codings: Vec<&str> = te
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            match codings.as_slice() {
                [only] if only.eq_ignore_ascii_case("chunked") => Body::Chunked,
                [.., last] if last.eq_ignore_ascii_case("chunked") => {
                    return Err(HttpError::NotImplemented("unsupported transfer coding"));
                }
                [] => return Err(HttpError::BadRequest("empty Transfer-Encoding")),
                _ => {
                    return Err(HttpError::BadRequest(
                        "chunked is not the final transfer coding",
                    ))
                }
            }
        }
        (None, Some(0)) | (None, None) => Body::None,
        (None, Some(n)) => Body::Length(n),
    };
    let (path, query, target_host) = split_target(method, &target)?;
    if let Some(authority) = target_host {
        host = Some(authority);
    }
    let keep_alive = if minor_version == 0 {
        has_token(&connection, "keep-alive") && !has_token(&connection, "close")
    } else {
        !has_token(&connection, "close")
    };
    Ok(Some(Request {
        method,
        target,
        path,
        query,
        minor_version,
        http2: false,
        headers,
        keep_alive,
        body,
        expect_continue: expect_continue && minor_version == 1,
        host,
        head_len,
        received: Instant::now(),
        site: None,
        hsts_max_age_secs: 0,
    }))
}

fn parse_length(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn valid_host(h: &str) -> bool {
    h.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=%".contains(&b))
}

/// Splits a request-target into (path, query, authority from absolute-form).
fn split_target(
    method: Method,
    target: &str,
) -> Result<(String, Option<String>, Option<String>), HttpError> {
    if target == "*" {
        return if method == Method::Options {
            Ok(("*".to_string(), None, None))
        } else {
            Err(HttpError::BadRequest("asterisk-form outside OPTIONS"))
        };
    }
    if method == Method::Connect {
        return Ok((target.to_string(), None, None));
    }
    let (authority, rest) = if let Some(after) = strip_scheme(target) {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..end];
        if authority.is_empty() || !valid_host(authority) {
            return Err(HttpError::BadRequest("invalid absolute-form target"));
        }
        let rest = &after[end..];
        (
            Some(authority.to_string()),
            if rest.is_empty() { "/" } else { rest },
        )
    } else {
        (None, target)
    };
    if !rest.starts_with('/') {
        return Err(HttpError::BadRequest("request target is not a path"));
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rest, None),
    };
    let path = path.split('#').next().unwrap_or(path);
    Ok((path.to_string(), query, authority))
}

fn strip_scheme(target: &str) -> Option<&str> {
    let lower = target
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("http://") {
        Some(&target[7..])
    } else if lower.starts_with("https://") {
        Some(&target[8..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Request>, HttpError> {
        parse_head(s.as_bytes(), &HeadLimits::default())
    }

    #[test]
    fn simple_get() {
        let req = parse("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/a/b");
        assert_eq!(req.query.as_deref(), Some("x=1"));
        assert!(req.keep_alive);
        assert_eq!(req.body, Body::None);
    }

    #[test]
    fn partial_head_asks_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
    }

    #[test]
    fn framing_errors() {
        assert_eq!(parse("GET / HTTP/1.1\r\n\r\n").unwrap_err().status(), 400);
        let smuggle =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(smuggle).unwrap_err().status(), 400);
        assert_eq!(
            parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            parse("BREW / HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status(),
            501
        );
        assert_eq!(
            parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status(),
            505
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .unwrap_err()
                .status(),
            501
        );
    }

    #[test]
    fn http_1_2_is_read_as_http_1_1() {
        // Found by the differential check against nginx: HTTP/1.2 was answered 505.
        let head = "GET /x HTTP/1.2\r\nHost: h\r\n\r\n";
        let req = parse(head).unwrap().unwrap();
        assert_eq!(
            (req.minor_version, req.path.as_str(), req.head_len),
            (1, "/x", head.len())
        );
        assert!(parse("GET /x HTTP/1.9\r\nHost: h\r\n").unwrap().is_none());
        assert_eq!(parse("GET /x HTTP/1.9\r\n\r\n").unwrap_err().status(), 400);
    }

    #[test]
    fn malformed_request_line_with_a_good_version_is_400_not_505() {
        // Found by the differential check: extra spaces made the last word the version.
        for line in [
            "GET /a b HTTP/1.1",
            "GET  /a HTTP/1.1",
            "GET http://a b/ HTTP/1.1",
            "GET /a HTTP/1.1 x",
        ] {
            assert_eq!(
                parse(&format!("{line}\r\nHost: h\r\n\r\n"))
                    .unwrap_err()
                    .status(),
                400,
                "{line}"
            );
        }
        for version in ["HTTP/11", "HTTP/1.1.1", "http/1.1", "HTTP/1.", "HTTQ/1.1"] {
            assert_eq!(
                parse(&format!("GET / {version}\r\nHost: h\r\n\r\n"))
                    .unwrap_err()
                    .status(),
                400,
                "{version}"
            );
        }
        assert_eq!(
            parse("GET / HTTP/3.0\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status(),
            505
        );
        assert_eq!(
            parse("GET / HTTP/0.9\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status(),
            505
        );
    }

    #[test]
    fn a_trickled_version_waits_for_the_rest() {
        // The whole line decides: "HTTP/2" may still become "HTTP/2.0" (505).
        assert!(parse("GET / HTTP/2").unwrap().is_none());
        assert!(parse("GET / HTTP/1.2").unwrap().is_none());
        assert_eq!(parse("GET / HTTP/2.0\r\n").unwrap_err().status(), 505);
        // Found by the pipeline fuzz target: a trickled "HTTP/0.0" was answered 505 before
        // the rest of the line ("HTTP/0.0.1:39929") made it malformed, which is 400.
        assert!(parse("PUT /upload HTTP/0.0").unwrap().is_none());
        assert_eq!(
            parse("PUT /upload HTTP/0.0.1:39929\r\n")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn an_unknown_expectation_is_417() {
        // The differential check: RFC 9110 section 10.1.1 names 417, not 400.
        let head = "GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n";
        assert_eq!(parse(head).unwrap_err().status(), 417);
    }

    #[test]
    fn leading_empty_lines_count_toward_the_head_limit_either_way() {
        // Found by the request_head fuzz target: 110 bytes of empty lines before a short
        // request were refused (431) while the head was incomplete, and accepted once whole.
        let limits = HeadLimits {
            max_request_line_bytes: 48,
            max_header_bytes: 96,
            max_headers: 14,
        };
        let head = format!("{}OPTIONS * HTTP/1.0\r\n\r\n", "\r\n".repeat(55));
        let whole = parse_head(head.as_bytes(), &limits);
        let prefix = parse_head(&head.as_bytes()[..98], &limits);
        assert_eq!(whole.unwrap_err().status(), 431);
        assert_eq!(prefix.unwrap_err().status(), 431);
        let few = format!("{}OPTIONS * HTTP/1.0\r\n\r\n", "\r\n".repeat(2));
        assert!(parse_head(few.as_bytes(), &limits).unwrap().is_some());
    }

    #[test]
    fn a_cut_short_version_after_empty_lines_still_counts_toward_the_head_limit() {
        // Found by the request_head fuzz target: the same empty lines before a request line
        // whose version is not yet whole ("HTTP/2.0\r " and more) were kept as incomplete.
        let limits = HeadLimits {
            max_request_line_bytes: 48,
            max_header_bytes: 96,
            max_headers: 14,
        };
        let head = format!("{}OPTIONS * HTTP/2.0\r \0\0\0*", "\r\n".repeat(55));
        assert_eq!(
            parse_head(head.as_bytes(), &limits).unwrap_err().status(),
            431
        );
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&long).unwrap_err().status(), 414);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(70_000)
        );
        assert_eq!(parse(&big).unwrap_err().status(), 431);
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n"))
                .unwrap_err()
                .status(),
            431
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn absolute_form() {
        let req = parse("GET http://example.com/x?y HTTP/1.1\r\nHost: other\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.path, "/x");
        assert_eq!(req.host.as_deref(), Some("example.com"));
    }
}
