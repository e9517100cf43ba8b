//! CGI/1.1 (RFC 3875) without processes: finding the program a request names, building its
//! meta-variables, and reading the response head it prints.
//!
//! Invariant: the program is always a file below the cgi-bin directory reached by plain
//! segments (no `.`, `..`, hidden names or encoded slashes); a symlink placed there by the
//! administrator is followed, which is how packaged programs such as cgit are deployed.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::path::normalize;
use super::{Header, Request};

/// The URL path under which CGI programs are served.
pub const URL_PREFIX: &str = "/cgi-bin";

/// The first path segment that selects the CGI programs.
const PREFIX_SEGMENT: &[u8] = b"cgi-bin";

/// Largest response head a program may print before its body.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields in a response head.
const MAX_RESPONSE_HEADERS: usize = 100;

/// The program a request names, and how its URL splits around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The program's file: the cgi-bin directory joined with the script segments.
    pub program: PathBuf,
    /// The decoded URL path of the program (`/cgi-bin/app.cgi`).
    pub script_name: Vec<u8>,
    /// The decoded rest of the URL path after the program (`/extra/path`), if any.
    pub path_info: Option<Vec<u8>>,
    /// The file name starts with `nph-`: its output goes to the client unparsed.
    pub nph: bool,
}

/// Why no program can run for a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptError {
    /// Nothing by that name (also for hidden names, so their existence is not revealed).
    NotFound,
    /// A directory, a non-executable file or an unreadable one.
    Forbidden,
    /// The path cannot be decoded safely (encoded slash, NUL, bad escape, climbs out).
    BadPath,
}

impl ScriptError {
    pub fn status(self) -> u16 {
        match self {
            ScriptError::NotFound => 404,
            ScriptError::Forbidden => 403,
            ScriptError::BadPath => 400,
        }
    }
}

/// Finds the program named by the raw (percent-encoded) request path `/cgi-bin/a/b.cgi/x/y`:
/// the shortest run of segments that names a file is the program, the rest is PATH_INFO.
pub fn locate(cgi_bin: &Path, raw_path: &str) -> Result<Script, ScriptError> {
    let safe = normalize(raw_path).map_err(|_| ScriptError::BadPath)?;
    let segments = &safe.segments;
    if segments.first().map(Vec::as_slice) != Some(PREFIX_SEGMENT) {
        return Err(ScriptError::NotFound);
    }
    let mut program = cgi_bin.to_path_buf();
    for (index, segment) in segments.iter().enumerate().skip(1) {
        if segment.first() == Some(&b'.') {
            return Err(ScriptError::NotFound);
        }
        program.push(OsStr::from_bytes(segment));
        let metadata = match std::fs::metadata(&program) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ScriptError::Forbidden)
            }
            Err(_) => return Err(ScriptError::NotFound),
        };
        if metadata.is_dir() {
            continue;
        }
        if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
            return Err(ScriptError::Forbidden);
        }
        let mut script_name = URL_PREFIX.as_bytes().to_vec();
        for part in &segments[1..=index] {
            script_name.push(b'/');
            script_name.extend_from_slice(part);
        }
        let rest = &segments[index + 1..];
        let path_info = if rest.is_empty() && !safe.trailing_slash {
            None
        } else {
            let mut info = Vec::new();
            for part in rest {
                info.push(b'/');
                info.extend_from_slice(part);
            }
            if safe.trailing_slash {
                info.push(b'/');
            }
            Some(info)
        };
        return Ok(Script {
            program,
            script_name,
            path_info,
            nph: segment.starts_with(b"nph-"),
        });
    }
    // The path ends at a directory: directories under cgi-bin are never listed.
    Err(ScriptError::Forbidden)
}

/// What the environment is built from, besides the request.
pub struct EnvInput<'a> {
    pub req: &'a Request,
    pub script: &'a Script,
    /// Absolute path of the program (SCRIPT_FILENAME).
    pub script_filename: &'a Path,
    /// Absolute document root (DOCUMENT_ROOT, and the base of PATH_TRANSLATED).
    pub document_root: &'a Path,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Length of the body the program will read on stdin, when there is one.
    pub content_length: Option<u64>,
    /// The server's own PATH, the only thing taken from its environment.
    pub path: Option<&'a OsStr>,
    /// Over HTTPS: the TLS version (`TLSv1.3`) and cipher suite, as `SSL_PROTOCOL` and
    /// `SSL_CIPHER` (with `HTTPS=on`, as Apache sets them).
    pub tls: Option<(&'a str, &'a str)>,
}

/// PATH for programs when the server itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Request headers that never become `HTTP_*` variables: `Proxy` (httpoxy, CVE-2016-5385),
/// the two that have their own meta-variables, and the framing the server has already undone.
const UNPASSED_HEADERS: [&str; 5] = [
    "proxy",
    "content-length",
    "content-type",
    "transfer-encoding",
    "expect",
];

/// The complete CGI/1.1 environment for one run, in a fixed order. Nothing comes from the
/// server's own environment except `PATH`.
pub fn environment(input: &EnvInput) -> Vec<(String, OsString)> {
    let req = input.req;
    let mut env: Vec<(String, OsString)> = Vec::with_capacity(24 + req.headers.len());
    let mut set = |name: &str, value: OsString| env.push((name.to_string(), value));
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set(
        "SERVER_SOFTWARE",
        concat!("occwserv/", env!("CARGO_PKG_VERSION")).into(),
    );
    set(
        "SERVER_NAME",
        server_name(req.host.as_deref(), input.local).into(),
    );
    set("SERVER_ADDR", input.local.ip().to_string().into());
    set("SERVER_PORT", input.local.port().to_string().into());
    set("SERVER_PROTOCOL", req.version_str().into());
    set("REQUEST_METHOD", req.method.as_str().into());
    set("REQUEST_URI", req.target.clone().into());
    set(
        "REQUEST_SCHEME",
        if input.tls.is_some() { "https" } else { "http" }.into(),
    );
    if let Some((protocol, cipher)) = input.tls {
        set("HTTPS", "on".into());
        set("SSL_PROTOCOL", protocol.into());
        set("SSL_CIPHER", cipher.into());
    }
    set("QUERY_STRING", req.query.clone().unwrap_or_default().into());
    set(
        "SCRIPT_NAME",
        OsStr::from_bytes(&input.script.script_name).to_os_string(),
    );
    set(
        "SCRIPT_FILENAME",
        input.script_filename.as_os_str().to_os_string(),
    );
    if let Some(info) = &input.script.path_info {
        set("PATH_INFO", OsStr::from_bytes(info).to_os_string());
        let mut translated = input.document_root.as_os_str().as_bytes().to_vec();
        while translated.last() == Some(&b'/') {
            translated.pop();
        }
        translated.extend_from_slice(info);
        set("PATH_TRANSLATED", OsString::from_vec(translated));
    }
    set(
        "DOCUMENT_ROOT",
        input.document_root.as_os_str().to_os_string(),
    );
    set("REMOTE_ADDR", input.peer.ip().to_string().into());
    set("REMOTE_PORT", input.peer.port().to_string().into());
    if let Some(length) = input.content_length {
        set("CONTENT_LENGTH", length.to_string().into());
        if let Some(kind) = req.header("content-type") {
            set("CONTENT_TYPE", OsStr::from_bytes(kind).to_os_string());
        }
    }
    // php-cgi refuses to run (cgi.force_redirect) unless a server says it started it.
    set("REDIRECT_STATUS", "200".into());
    set(
        "PATH",
        input
            .path
            .map_or_else(|| OsString::from(DEFAULT_PATH), OsStr::to_os_string),
    );
    for (name, value) in header_variables(&req.headers) {
        env.push((name, OsString::from_vec(value)));
    }
    env
}

/// `HTTP_*` variables for the request headers: upper case, `-` as `_`, repeated fields
/// joined with `, ` (RFC 3875 section 4.1.18). Names holding `_` or other non-token bytes
/// are dropped, so `X_Forwarded_For` cannot pose as `X-Forwarded-For`.
fn header_variables(headers: &[Header]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for header in headers {
        let lower = header.name.to_ascii_lowercase();
        if UNPASSED_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if lower.is_empty()
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let name = format!("HTTP_{}", lower.to_ascii_uppercase().replace('-', "_"));
        match out.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, value)) => {
                value.extend_from_slice(b", ");
                value.extend_from_slice(&header.value);
            }
            None => out.push((name, header.value.clone())),
        }
    }
    out
}

/// SERVER_NAME: the Host the client asked for without its port, else the local address.
fn server_name(host: Option<&str>, local: SocketAddr) -> String {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return local.ip().to_string();
    };
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => host[..=end].to_string(),
            None => host.to_string(),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host.to_string(),
    }
}

/// A parsed CGI response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer the client with this head and the program's body.
    Document(Head),
    /// `Location` named a local path: answer as if the client had sent GET for it.
    LocalRedirect(String),
}

/// Status and header fields of a document response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// The reason phrase the program gave with `Status`, when it is printable.
    pub reason: Option<String>,
    /// Fields to pass to the client as they are (Content-Type, Location, Set-Cookie, ...),
    /// without the ones the server sets itself.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The program's own `Content-Length`, which then frames the body.
    pub content_length: Option<u64>,
}

/// Why a response head is refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// No blank line within `MAX_RESPONSE_HEAD_BYTES`.
    TooLarge,
    /// Not a header block, or a field with a bad value.
    Malformed(&'static str),
}

impl HeadError {
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::TooLarge => "response head too large",
            HeadError::Malformed(why) => why,
        }
    }
}

/// Fields the server sets or that describe one hop; a program's copies are dropped.
const DROPPED_RESPONSE_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "date",
    "server",
];

/// Parses the head a program printed on stdout (lines ended by LF or CRLF, then a blank line).
/// `Ok(None)`: incomplete, read more. `Ok(Some((response, n)))`: the head is `n` bytes long.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let (head_len, fields) = match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((n, fields))) => (n, fields),
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("malformed response head")),
    };
    if head_len > MAX_RESPONSE_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let mut status: Option<(u16, Option<String>)> = None;
    let mut location: Option<String> = None;
    let mut content_type = false;
    let mut content_length: Option<u64> = None;
    let mut headers = Vec::with_capacity(fields.len());
    for field in fields.iter() {
        let name = field.name;
        let value = trim(field.value);
        if name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(value)?);
        } else if name.eq_ignore_ascii_case("location") {
            let text =
                std::str::from_utf8(value).map_err(|_| HeadError::Malformed("invalid Location"))?;
            if text.is_empty() || text.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(HeadError::Malformed("invalid Location"));
            }
            location = Some(text.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(value)
                .map_err(|_| HeadError::Malformed("invalid Content-Length"))?;
            if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::Malformed("invalid Content-Length"));
            }
            let length = text
                .parse()
                .map_err(|_| HeadError::Malformed("invalid Content-Length"))?;
            if content_length.is_some_and(|previous| previous != length) {
                return Err(HeadError::Malformed("conflicting Content-Length"));
            }
            content_length = Some(length);
        } else if DROPPED_RESPONSE_HEADERS
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        } else {
            content_type |= name.eq_ignore_ascii_case("content-type");
            headers.push((name.to_string(), value.to_vec()));
        }
    }
    if status.is_none() && location.is_none() && !content_type {
        return Err(HeadError::Malformed("no Content-Type, Location or Status"));
    }
    let explicit = status.as_ref().map(|s| s.0);
    let (mut code, reason) = status.unwrap_or((200, None));
    if let Some(location) = location {
        let local = location.starts_with('/') && !location.starts_with("//");
        if local && code == 200 {
            return Ok(Some((Response::LocalRedirect(location), head_len)));
        }
        if code == 200 {
            code = 302;
        }
        headers.push(("Location".to_string(), location.into_bytes()));
    }
    let reason = if Some(code) == explicit { reason } else { None };
    Ok(Some((
        Response::Document(Head {
            status: code,
            reason,
            headers,
            content_length,
        }),
        head_len,
    )))
}

/// `Status: NNN reason`; the code must be a final status (200-599).
fn parse_status(value: &[u8]) -> Result<(u16, Option<String>), HeadError> {
    let bad = HeadError::Malformed("invalid Status");
    if value.len() < 3 || !value[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    if value.len() > 3 && value[3] != b' ' && value[3] != b'\t' {
        return Err(bad);
    }
    let code = value[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(bad);
    }
    let reason = trim(&value[3..]);
    let printable = !reason.is_empty()
        && reason
            .iter()
            .all(|b| (b' '..0x7f).contains(b) || *b == b'\t');
    let reason = if printable {
        std::str::from_utf8(reason).ok().map(str::to_string)
    } else {
        None
    };
    Ok((code, reason))
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &value[start..end.max(start)]
}

/// The status code an nph- program sent on its first line (`HTTP/1.1 200 OK`), if it did.
pub fn nph_status(output: &[u8]) -> Option<u16> {
    let line_end = output.iter().position(|b| *b == b'\n')?;
    let line = output[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&output[..line_end]);
    let mut parts = line.split(|b| *b == b' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with(b"HTTP/") || code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
