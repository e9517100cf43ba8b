//! The front end, a stage of each replica (`net/replica.rs`): reads one request head and
//! chooses its route. No channels here; the replica hands the request on.
//!
//! Reads never block: a connection whose head is incomplete goes back to the replica's
//! idle.pool with a deadline, so a client trickling header bytes holds no thread (§4.1).

use std::time::Instant;

use crate::conn::{Conn, ReadOutcome};
use crate::http::proxy_header::{self, ProxyHeader};
use crate::http::request::{parse_head, HeadLimits};
use crate::http::{HttpError, Request};
use crate::protocol::{CloseReason, Handler, StatsFormat, ToRecycler};
use crate::support::config::Config;

/// Where a parsed request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Static,
    Cgi,
    Plugin(String),
    Stats(StatsFormat),
}

/// Chooses the process for a request path.
pub fn route(path: &str) -> Route {
    match path {
        "/stats.html" | "/stats" => return Route::Stats(StatsFormat::Html),
        "/stats.json" => return Route::Stats(StatsFormat::Json),
        "/metrics" => return Route::Stats(StatsFormat::Prometheus),
        _ => {}
    }
    if path == "/cgi-bin" || path.starts_with("/cgi-bin/") {
        return Route::Cgi;
    }
    if let Some(rest) = path.strip_prefix("/ogi/") {
        let name = rest.split('/').next().unwrap_or("");
        return Route::Plugin(name.to_string());
    }
    Route::Static
}

/// What reading found.
pub enum Head {
    /// A whole head; bytes after it are in `conn.unread`.
    Request(Conn, Box<Request>),
    /// Incomplete, nothing more to read now: wait in idle.pool.
    Park(Conn),
    /// The connection is finished (closed by the peer, or answered with an error).
    Done(ToRecycler),
    /// Closed unanswered, for the reason given (a bad or untrusted PROXY header).
    Refused(Conn, String),
    /// The connection's first bytes are the HTTP/2 preface (in `conn.unread`): it becomes
    /// an h2 session.
    H2(Conn),
}

/// Reads and parses the connection's next request head, as far as the socket allows now.
pub fn read_head(mut conn: Conn, buf: &mut Vec<u8>, cfg: &Config) -> Head {
    let limits = HeadLimits::default();
    buf.clear();
    // A head not yet begun (no deadline running) starts its request now, even when its first
    // bytes came pipelined behind the last one: its time, and its header_timeout_secs, count
    // from here. A partial head read before keeps the start it had.
    if conn.head_deadline.is_none() {
        conn.request_started = Instant::now();
    }
    if !conn.unread.is_empty() {
        buf.extend_from_slice(&conn.unread);
        conn.unread = Vec::new();
    }
    if conn.proxy_header_due
        && !crate::site::cidr::contains(&cfg.proxy.trusted_nets, conn.peer.ip())
    {
        let why = format!("PROXY header from untrusted peer {} refused", conn.peer);
        return Head::Refused(conn, why);
    }
    loop {
        if conn.proxy_header_due && !buf.is_empty() {
            match proxy_header::parse(buf) {
                ProxyHeader::Incomplete => {}
                ProxyHeader::Bad(why) => {
                    let why = format!("{}: {why}", conn.peer);
                    return Head::Refused(conn, why);
                }
                ProxyHeader::Found { client, len } => {
                    if let Some(client) = client {
                        conn.peer = client;
                    }
                    buf.drain(..len);
                    conn.proxy_header_due = false;
                    continue;
                }
            }
        } else if !buf.is_empty() && conn.requests == 0 && conn.via_h2.is_none() {
            match crate::h2::preface(buf) {
                Some(true) => {
                    conn.unread = std::mem::take(buf);
                    conn.head_deadline = None;
                    return Head::H2(conn);
                }
                Some(false) => {}
                None => match parse_head(buf, &limits) {
                    Ok(Some(req)) => {
                        if buf.len() > req.head_len {
                            conn.unread = buf[req.head_len..].to_vec();
                        }
                        conn.head_deadline = None;
                        return Head::Request(conn, Box::new(req));
                    }
                    Ok(None) => {}
                    Err(e) => return Head::Done(refuse(conn, e, cfg)),
                },
            }
        } else if !buf.is_empty() {
            match parse_head(buf, &limits) {
                Ok(Some(req)) => {
                    if buf.len() > req.head_len {
                        conn.unread = buf[req.head_len..].to_vec();
                    }
                    conn.head_deadline = None;
                    return Head::Request(conn, Box::new(req));
                }
                Ok(None) => {}
                Err(e) => return Head::Done(refuse(conn, e, cfg)),
            }
        }
        let deadline = *conn
            .head_deadline
            .get_or_insert(conn.request_started + cfg.header_timeout());
        if Instant::now() >= deadline && !buf.is_empty() {
            return Head::Done(refuse(conn, HttpError::Timeout, cfg));
        }
        let room = limits.max_header_bytes + 1024 - buf.len().min(limits.max_header_bytes);
        match conn.read_now(buf, room) {
            Ok(ReadOutcome::Data(_)) => {}
            Ok(ReadOutcome::WouldBlock) => {
                // A TLS handshake under way is a head begun: it keeps its deadline.
                if buf.is_empty() && !conn.tls_handshaking() {
                    conn.head_deadline = None;
                } else {
                    conn.unread = buf.clone();
                }
                return Head::Park(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData && conn.tls.is_some() => {
                let why = format!("tls: {}: {e}", conn.peer);
                return Head::Refused(conn, why);
            }
            Ok(ReadOutcome::Closed) | Err(_) => {
                return Head::Done(ToRecycler::Close(conn, CloseReason::PeerClosed, None));
            }
        }
    }
}

/// Answers a request that could not be read, and closes.
fn refuse(conn: Conn, error: HttpError, cfg: &Config) -> ToRecycler {
    if error == HttpError::Timeout {
        return crate::farm::reply::error(conn, None, 408, cfg, Handler::FrontEnd);
    }
    crate::farm::reply::error(conn, None, error.status(), cfg, Handler::FrontEnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/index.html"), Route::Static);
        assert_eq!(route("/cgi-bin/x.sh"), Route::Cgi);
        assert_eq!(route("/cgi-binx"), Route::Static);
        assert_eq!(route("/ogi/counter"), Route::Plugin("counter".into()));
        assert_eq!(route("/ogi/game/ws"), Route::Plugin("game".into()));
        assert_eq!(route("/stats.json"), Route::Stats(StatsFormat::Json));
    }
}
