//! Every message that crosses a channel: the network's PROTOCOLs, named after the inbox
//! that receives them.
//!
//! Messages carrying a `Conn` and its `Request` are large next to control messages; they are
//! moved by value on purpose, since boxing them would cost an allocation per request.
#![allow(clippy::large_enum_variant)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::http::Request;
use crate::plugin_host::Watch;

/// To a replica (the per-core network), from processes off its core.
pub enum ToReplica {
    /// A new connection accepted by a busier replica: it is this one's from now on.
    Adopt(Conn),
    /// One of its connections, answered elsewhere and kept alive: read its next request.
    Resume(Conn),
    /// From the recycler, for the stats process: send the batched records now, then
    /// `ToStats::Flushed(n)`.
    Flush(u64),
}

/// To cache.control, which decides what is cached.
pub enum ToCacheControl {
    /// Files served, for their scores (batched by each static worker).
    Hits(Vec<crate::cache::Hit>),
    /// A cached file changed or vanished on disk: drop it now.
    Stale(String),
}

/// To static.farm (files named by a CGI program's local redirect; replicas answer the rest).
pub enum ToStatic {
    /// Serve `req.path` from the root.
    File { conn: Conn, req: Request },
    /// Serve `req.path` from a cached entry (checked against the disk when due).
    Cached {
        conn: Conn,
        req: Request,
        entry: Arc<crate::cache::Entry>,
    },
}

/// To cgi.farm: run a CGI program.
pub enum ToCgi {
    /// Run the program the request path names under `/cgi-bin/`.
    Run { conn: Conn, req: Request },
}

/// To ogi.farm: call a gateway plug-in.
pub enum ToPlugin {
    /// `name` is the first path segment after `/ogi/`.
    Call {
        conn: Conn,
        req: Request,
        name: String,
    },
}

/// To the plug-in keeper. It drains this inbox on its own tick and never waits on it, so
/// sending wakes nobody.
pub enum ToPluginKeeper {
    /// Enforce `ogi.timeout_secs` on a connection lent to a non-persistent instance.
    Watch(Arc<Watch>),
}

/// To tls.pump (`net/tls_pump.rs`), which relays HTTPS connections lent to plug-ins.
pub enum ToTlsPump {
    /// Relay this connection's session to and from its plug-in's socketpair from now on.
    Relay(Box<crate::net::tls_pump::Pumped>),
    /// The plug-in gave the connection back: send what it wrote, then hand it to `home`.
    Return {
        lent: Box<crate::plugin_host::Lent>,
        returned: crate::plugin_host::Returned,
        home: Arc<dyn crate::plugin_host::Home>,
    },
}

/// To the stats process.
pub enum ToStats {
    /// Finished exchanges, batched by the recycler.
    Served(Vec<Exchange>),
    /// Render the status page on this connection (`format` picks HTML, JSON or Prometheus).
    Page {
        conn: Conn,
        req: Request,
        format: StatsFormat,
    },
    /// A connection was refused at the limit.
    Refused,
    /// The recycler has sent every record it held when it received `ToRecycler::Flush(n)`.
    Flushed(u64),
}

/// Which rendering of the statistics was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsFormat {
    Html,
    Json,
    Prometheus,
}

/// To be.proc (the recycler, or a replica's own recycling): a connection whose exchange is over.
pub enum ToRecycler {
    /// Response fully written and the connection may persist.
    KeepAlive(Conn, Exchange),
    /// Finished or abandoned; log the reason, then close. `Exchange` is present when a
    /// response (even an error) was sent.
    Close(Conn, CloseReason, Option<Exchange>),
    /// From the stats process before it renders a page: send the batched records now, then
    /// `ToStats::Flushed(n)` (the recycler and every replica, each once), so the page counts
    /// every exchange that finished before it was asked.
    Flush(u64),
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client or the protocol asked for it (Connection: close, HTTP/1.0).
    Done,
    /// The peer closed or reset its side.
    PeerClosed,
    /// Reading the request took too long.
    ReadTimeout,
    /// Writing the response took too long or failed.
    WriteFailed,
    /// The request was malformed; the error response went out.
    BadRequest,
    /// Idle past the keep-alive timeout.
    IdleTimeout,
    /// The server is stopping.
    Shutdown,
    /// A handler (CGI program, plug-in) failed and its connection could not continue.
    HandlerFailed,
    /// A plug-in took the connection over (websocket) and has now finished with it.
    Released,
}

/// Which process answered an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    FrontEnd,
    Static,
    Cache,
    Cgi,
    Plugin,
    Stats,
}

/// The record of one request and its response, for stats and the access log.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request line as received (`GET /x HTTP/1.1`), or `-` when none was parsed.
    pub request_line: String,
    pub status: u16,
    /// Bytes of response body sent.
    pub body_bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub handler: Handler,
    /// When the head began to arrive, when it was parsed, when the answering worker took the
    /// job (`par::job_started`; `parsed` outside a farm), and when the response was fully written.
    pub started: Instant,
    pub parsed: Instant,
    pub handler_started: Instant,
    pub finished: Instant,
    /// Time the connection waited in idle.pool before this request (set by the recycler);
    /// `None` when it came straight back to the front end.
    pub keep_alive_wait: Option<Duration>,
    /// Bytes read from and written to the socket for this exchange (set by the recycler).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The site that answered (its first name), for the access log and per-site stats.
    pub site: Option<&'static str>,
}

impl Exchange {
    /// The record of an answered request.
    pub fn for_request(
        req: &Request,
        status: u16,
        body_bytes: u64,
        handler: Handler,
        started: Instant,
    ) -> Exchange {
        // The texts are read only by the access log: built only when it is on.
        let texts = crate::support::log::access_log_on();
        Exchange {
            request_line: if texts {
                format!(
                    "{} {} {}",
                    req.method.as_str(),
                    req.target,
                    req.version_str()
                )
            } else {
                String::new()
            },
            status,
            body_bytes,
            referer: req
                .header_str("referer")
                .filter(|_| texts)
                .map(str::to_string),
            user_agent: req
                .header_str("user-agent")
                .filter(|_| texts)
                .map(str::to_string),
            handler,
            started,
            parsed: req.received,
            handler_started: crate::par::job_started()
                .map_or(req.received, |t| t.max(req.received)),
            finished: Instant::now(),
            keep_alive_wait: None,
            bytes_in: 0,
            bytes_out: 0,
            site: req.site.map(|site| site.label),
        }
    }

    /// The record of an error answered before any request was parsed.
    pub fn without_request(status: u16, body_bytes: u64, started: Instant) -> Exchange {
        let now = Instant::now();
        Exchange {
            request_line: "-".to_string(),
            status,
            body_bytes,
            referer: None,
            user_agent: None,
            handler: Handler::FrontEnd,
            started,
            parsed: now,
            handler_started: now,
            finished: now,
            keep_alive_wait: None,
            bytes_in: 0,
            bytes_out: 0,
            site: None,
        }
    }
}

/// To send.pool: a response the client is reading slower than it was written.
pub enum ToSendPool {
    /// Write the rest whenever the client makes room, then hand the connection on.
    Finish(Box<Unsent>),
}

/// The unwritten rest of a response, and what the recycler needs once it is written.
pub struct Unsent {
    pub conn: Conn,
    /// What is left, in order.
    pub pieces: std::collections::VecDeque<Piece>,
    /// The record of the exchange, as if it completes (`body_bytes` is corrected if it does not).
    pub exchange: Exchange,
    pub keep_alive: bool,
    /// The response head's length and `conn.bytes_out` before it was written, to count the
    /// body bytes sent when the response is cut short.
    pub head_len: u64,
    pub bytes_out_before: u64,
}

/// A part of a response still to be written.
pub enum Piece {
    /// Bytes from `at` on (a head, or a head with a cached body).
    Bytes { bytes: Vec<u8>, at: usize },
    /// `len` bytes of `file` from `offset`, by sendfile(2).
    File {
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
}

/// To the log process, the only writer of the logs.
pub enum ToLog {
    /// Preformatted access-log lines (Combined Log Format), newline-terminated.
    Access(String),
    /// One error-log line without the timestamp.
    Error(String),
    /// Reopen both files (after SIGHUP, for log rotation).
    Reopen,
}

/// To the acme process (`[tls.acme]`).
pub enum ToAcme {
    /// SIGHUP: order now for every name whose last order failed, without waiting out the
    /// back-off.
    Retry,
}
