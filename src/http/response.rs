//! Response heads: status line, common headers, dates, entity tags.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::reason_phrase;

/// The `Server` header value.
pub const SERVER: &str = "occwserv";

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Appends the current IMF-fixdate, formatted at most once a second per thread.
pub fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

/// Appends `HTTP/1.x NNN Reason\r\n`, `Date`, `Server` and, when needed, `Connection`.
/// HTTP/1.1 persistence is the default, so only `close` is said; HTTP/1.0 needs `keep-alive`.
pub fn push_status(out: &mut Vec<u8>, minor_version: u8, status: u16, keep_alive: bool) {
    out.extend_from_slice(if minor_version == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    push_u64(out, status as u64);
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    push_date(out);
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"\r\n");
    match (minor_version, keep_alive) {
        (0, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (_, false) => out.extend_from_slice(b"Connection: close\r\n"),
        _ => {}
    }
}

/// Appends `data` to a body as one chunk (or as it is, without chunking); nothing for no
/// data, so a chunked body is never ended early by an empty chunk.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
    }
    out.extend_from_slice(data);
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `Name: value\r\n`.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `Name: <decimal>\r\n`.
pub fn push_header_u64(out: &mut Vec<u8>, name: &str, value: u64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

pub fn push_u64(out: &mut Vec<u8>, value: u64) {
    let _ = write!(out, "{value}");
}

/// A strong entity tag from size and modification time, as nginx makes them.
pub fn etag(len: u64, modified: SystemTime) -> String {
    let secs = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("\"{secs:x}-{len:x}\"")
}

/// Whether an `If-None-Match` value matches `tag` (weak comparison, RFC 9110 section 13.1.2).
pub fn none_match(header: &str, tag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let bare = tag.trim_start_matches("W/");
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == bare)
}

/// Whether the resource is unmodified since an `If-Modified-Since` date.
pub fn not_modified_since(header: &str, modified: SystemTime) -> bool {
    let Ok(since) = httpdate::parse_http_date(header.trim()) else {
        return false;
    };
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    secs(modified) <= secs(since)
}

/// Appends `Strict-Transport-Security: max-age=N` when `max_age_secs` is not 0.
pub fn push_hsts(out: &mut Vec<u8>, max_age_secs: u64) {
    if max_age_secs > 0 {
        out.extend_from_slice(b"Strict-Transport-Security: max-age=");
        push_u64(out, max_age_secs);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let mut out = Vec::new();
        push_status(&mut out, 1, 404, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nDate: "));
        assert!(text.ends_with("\r\nServer: occwserv\r\n"));
        let mut out = Vec::new();
        push_status(&mut out, 0, 200, true);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("Connection: keep-alive\r\n"));
    }

    #[test]
    fn conditionals() {
        assert!(none_match("\"a\", \"b\"", "\"b\""));
        assert!(none_match("W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"b\""));
        assert!(!none_match("\"c\"", "\"b\""));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert!(not_modified_since(&httpdate::fmt_http_date(t), t));
        assert!(!not_modified_since("garbage", t));
    }
}
