//! Front-end worker: reads one request head and routes it.
//! Instances: a farm (`front_end_idle` kept idle, up to `front_end_max`), sharing one inbox.
//! In: ToFrontEnd. Out: ToCacheHash, ToCgi, ToPlugin, ToStats, ToIdlePool, ToRecycler.
//! Stops: inbox disconnected (every upstream process has stopped).
//!
//! Reads never block: a connection whose head is incomplete goes back to idle.pool with a
//! deadline, so a client trickling header bytes holds no thread (the paper's §4.1).

use std::time::Instant;

use crossbeam_channel::{SendError, Sender, TrySendError};

use crate::conn::{Conn, ReadOutcome};
use crate::http::request::{parse_head, HeadLimits};
use crate::http::{Body, HttpError, Request};
use crate::net::idle_pool::IdleSender;
use crate::par::Inbox;
use crate::protocol::{
    CloseReason, Handler, StatsFormat, ToCacheHash, ToCgi, ToFrontEnd, ToIdlePool, ToPlugin,
    ToRecycler, ToStats,
};
use crate::support::config::{Config, Live};

/// The front end's outputs.
#[derive(Clone)]
pub struct FrontEndOut {
    pub to_cache: Sender<ToCacheHash>,
    pub to_cgi: Sender<ToCgi>,
    pub to_plugin: Sender<ToPlugin>,
    pub to_stats: Sender<ToStats>,
    pub to_idle: IdleSender,
    pub to_recycler: Sender<ToRecycler>,
    pub live: Live,
}

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

pub fn run(inbox: Inbox<ToFrontEnd>, out: FrontEndOut) {
    let mut buf = Vec::with_capacity(16 * 1024);
    for ToFrontEnd::Read(conn) in inbox {
        let cfg = out.live.load();
        match read_head(conn, &mut buf, &cfg) {
            Head::Request(conn, req) => {
                if !dispatch(conn, *req, &out, &cfg) {
                    return;
                }
            }
            Head::Park(conn) => {
                if let Err(SendError(ToIdlePool::Park(conn))) =
                    out.to_idle.send(ToIdlePool::Park(conn))
                {
                    drop(conn);
                    return;
                }
            }
            Head::Done(msg) => {
                if out.to_recycler.send(msg).is_err() {
                    return;
                }
            }
        }
    }
}

/// What reading found.
enum Head {
    /// A whole head; bytes after it are in `conn.unread`.
    Request(Conn, Box<Request>),
    /// Incomplete, nothing more to read now: wait in idle.pool.
    Park(Conn),
    /// The connection is finished (closed by the peer, or answered with an error).
    Done(ToRecycler),
}

fn read_head(mut conn: Conn, buf: &mut Vec<u8>, cfg: &Config) -> Head {
    let limits = HeadLimits::default();
    buf.clear();
    if conn.unread.is_empty() {
        conn.request_started = Instant::now();
    } else {
        buf.extend_from_slice(&conn.unread);
        conn.unread = Vec::new();
    }
    loop {
        if !buf.is_empty() {
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
                if buf.is_empty() {
                    conn.head_deadline = None;
                } else {
                    conn.unread = buf.clone();
                }
                return Head::Park(conn);
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

/// Sends a request to its process; false when the network is shutting down.
fn dispatch(conn: Conn, req: Request, out: &FrontEndOut, cfg: &Config) -> bool {
    if let Body::Length(n) = req.body {
        if n > cfg.max_body_bytes {
            let msg = crate::farm::reply::error(conn, Some(&req), 413, cfg, Handler::FrontEnd);
            return out.to_recycler.send(msg).is_ok();
        }
    }
    let (conn, req, route) = match crate::farm::gate::admit(conn, req, cfg) {
        Ok(admitted) => admitted,
        Err(answered) => return out.to_recycler.send(answered).is_ok(),
    };
    match route {
        Route::Static => match out.to_cache.send(ToCacheHash::Lookup { conn, req }) {
            Ok(()) => true,
            Err(SendError(orphan)) => {
                drop(orphan);
                false
            }
        },
        Route::Stats(format) => out
            .to_stats
            .send(ToStats::Page { conn, req, format })
            .is_ok(),
        Route::Cgi => match out.to_cgi.try_send(ToCgi::Run { conn, req }) {
            Ok(()) => true,
            Err(TrySendError::Full(ToCgi::Run { conn, req }))
            | Err(TrySendError::Disconnected(ToCgi::Run { conn, req })) => {
                busy(conn, &req, out, cfg)
            }
        },
        Route::Plugin(name) => match out.to_plugin.try_send(ToPlugin::Call { conn, req, name }) {
            Ok(()) => true,
            Err(TrySendError::Full(ToPlugin::Call { conn, req, .. }))
            | Err(TrySendError::Disconnected(ToPlugin::Call { conn, req, .. })) => {
                busy(conn, &req, out, cfg)
            }
        },
    }
}

/// Answers 503 when a farm's queue is full.
fn busy(conn: Conn, req: &Request, out: &FrontEndOut, cfg: &Config) -> bool {
    let msg = crate::farm::reply::error_with(
        conn,
        Some(req),
        503,
        cfg,
        Handler::FrontEnd,
        &[("Retry-After", "1")],
    );
    out.to_recycler.send(msg).is_ok()
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
