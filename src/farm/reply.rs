//! Writing whole small responses (errors, redirects) and building the recycler's message.
//! Shared by every farm; no channels here.

use std::time::Instant;

use crate::conn::Conn;
use crate::http::response::{push_header, push_header_u64, push_hsts, push_status};
use crate::http::{reason_phrase, Body, Request};
use crate::protocol::{CloseReason, Exchange, Handler, ToRecycler};
use crate::support::config::Config;

/// Appends the status line and the common headers (Date, Server, Connection, and HSTS over
/// HTTPS).
pub fn head(status: u16, req: &Request, keep_alive: bool, out: &mut Vec<u8>) {
    push_status(out, req.minor_version, status, keep_alive);
    push_hsts(out, req.hsts_max_age_secs);
}

/// Whether the connection may carry another request after an error answer: only when the
/// request was read completely and the error is not about framing.
pub fn error_keeps_alive(req: Option<&Request>, status: u16) -> bool {
    let Some(req) = req else { return false };
    req.keep_alive
        && req.body == Body::None
        && matches!(status, 301..=399 | 401..=407 | 409..=412 | 415..=417)
}

/// Writes a complete error response and returns the recycler's message.
pub fn error(
    conn: Conn,
    req: Option<&Request>,
    status: u16,
    cfg: &Config,
    handler: Handler,
) -> ToRecycler {
    error_with(conn, req, status, cfg, handler, &[])
}

/// Like `error`, with extra header fields (`Allow`, `Location`, `Content-Range`, ...).
pub fn error_with(
    mut conn: Conn,
    req: Option<&Request>,
    status: u16,
    cfg: &Config,
    handler: Handler,
    extra: &[(&str, &str)],
) -> ToRecycler {
    let keep_alive = error_keeps_alive(req, status);
    let site = req
        .filter(|r| r.site.is_some())
        .map(|r| crate::site::of(r, cfg));
    let body = match site {
        Some(site) => page_from(&site.error_pages, status),
        None => error_page(cfg, status),
    };
    let mut out = Vec::with_capacity(256 + body.len());
    let minor = req.map_or(1, |r| r.minor_version);
    push_status(&mut out, minor, status, keep_alive);
    push_hsts(&mut out, req.map_or(0, |r| r.hsts_max_age_secs));
    push_header(&mut out, "Content-Type", b"text/html; charset=utf-8");
    push_header_u64(&mut out, "Content-Length", body.len() as u64);
    for (name, value) in extra {
        push_header(&mut out, name, value.as_bytes());
    }
    if let (Some(site), Some(req)) = (site, req) {
        site.apply_headers(req, status, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    let head_only = req.is_some_and(Request::is_head);
    if !head_only {
        out.extend_from_slice(&body);
    }
    let body_bytes = if head_only { 0 } else { body.len() as u64 };
    let started = conn.request_started;
    let written = conn.write_all_until(&out, Instant::now() + cfg.send_timeout());
    let exchange = match req {
        Some(req) => Exchange::for_request(req, status, body_bytes, handler, started),
        None => Exchange::without_request(status, body_bytes, started),
    };
    match written {
        Err(_) => ToRecycler::Close(conn, CloseReason::WriteFailed, Some(exchange)),
        Ok(()) if keep_alive => ToRecycler::KeepAlive(conn, exchange),
        Ok(()) if status < 500 && req.is_some() && req.is_some_and(|r| !r.keep_alive) => {
            ToRecycler::Close(conn, CloseReason::Done, Some(exchange))
        }
        Ok(()) if status >= 500 => {
            ToRecycler::Close(conn, CloseReason::HandlerFailed, Some(exchange))
        }
        Ok(()) => ToRecycler::Close(conn, CloseReason::BadRequest, Some(exchange)),
    }
}

/// Where ACME http-01 challenges are answered: never redirected to HTTPS.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Writes a whole `200 OK` answer of `text/plain` (an ACME http-01 key authorization).
pub fn text(mut conn: Conn, req: &Request, body: &str, cfg: &Config) -> ToRecycler {
    let keep_alive = req.keep_alive && req.body == Body::None;
    let mut out = Vec::with_capacity(256 + body.len());
    head(200, req, keep_alive, &mut out);
    push_header(&mut out, "Content-Type", b"text/plain");
    push_header_u64(&mut out, "Content-Length", body.len() as u64);
    out.extend_from_slice(b"\r\n");
    let body_bytes = if req.is_head() { 0 } else { body.len() as u64 };
    if !req.is_head() {
        out.extend_from_slice(body.as_bytes());
    }
    let started = conn.request_started;
    match conn.write_all_until(&out, Instant::now() + cfg.send_timeout()) {
        Ok(()) => finished(conn, req, 200, body_bytes, Handler::FrontEnd, keep_alive),
        Err(_) => {
            let exchange = Exchange::for_request(req, 200, body_bytes, Handler::FrontEnd, started);
            ToRecycler::Close(conn, CloseReason::WriteFailed, Some(exchange))
        }
    }
}

/// `[tls] redirect_http`: answers a plain-HTTP request with a 308 to the same URL on the
/// HTTPS listener (its port, unless 443).
pub fn to_https(conn: Conn, req: &Request, cfg: &Config) -> ToRecycler {
    let host = req.host.as_deref().map_or_else(
        || conn.local.ip().to_string(),
        |host| match host.rsplit_once(':') {
            // A port after the name (or after a bracketed IPv6 address) is dropped.
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => {
                name.to_string()
            }
            _ => host.to_string(),
        },
    );
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let location = match cfg.tls.listen.map(|at| at.port()) {
        Some(443) | None => format!("https://{host}{}", req.target),
        Some(port) => format!("https://{host}:{port}{}", req.target),
    };
    error_with(
        conn,
        Some(req),
        308,
        cfg,
        Handler::FrontEnd,
        &[("Location", &location)],
    )
}

/// The recycler's message after a handler wrote its own response.
pub fn finished(
    conn: Conn,
    req: &Request,
    status: u16,
    body_bytes: u64,
    handler: Handler,
    keep_alive: bool,
) -> ToRecycler {
    let exchange = Exchange::for_request(req, status, body_bytes, handler, conn.request_started);
    if keep_alive {
        ToRecycler::KeepAlive(conn, exchange)
    } else {
        ToRecycler::Close(conn, CloseReason::Done, Some(exchange))
    }
}

/// The body of an error page: `errorNNN.html` from the error-page directory, or a built-in one.
pub fn error_page(cfg: &Config, status: u16) -> Vec<u8> {
    page_from(cfg.error_pages_dir(), status)
}

/// `errorNNN.html` from a directory, or the built-in page.
pub fn page_from(dir: &std::path::Path, status: u16) -> Vec<u8> {
    let path = dir.join(format!("error{status}.html"));
    if let Ok(body) = std::fs::read(&path) {
        return body;
    }
    let reason = reason_phrase(status);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n\
         <body><h1>{status} {reason}</h1><hr><p>occwserv</p></body></html>\n"
    )
    .into_bytes()
}
