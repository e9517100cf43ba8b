//! be.proc, the recycler: the drain of every finished connection.
//! Instances: 1. In: ToRecycler. Out: ToFrontEnd (pipelined request waiting), ToIdlePool
//! (keep-alive), ToStats and ToLog (batched). Stops: inbox disconnected.
//!
//! Stats records and access-log lines are batched and flushed whenever the inbox runs dry,
//! so nobody is woken per request under load, and nothing waits long when it is quiet.
//! With `stats = false` no stats records are kept at all. The stats process asks for an
//! early flush (`Flush`) before it renders a page.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::conn::Conn;
use crate::net::idle_pool::IdleSender;
use crate::protocol::{Exchange, Handler, ToFrontEnd, ToIdlePool, ToLog, ToRecycler, ToStats};
use crate::support::config::Live;
use crate::support::log::access_line;
use crate::support::meters::Meters;

/// The recycler's outputs.
pub struct RecyclerOut {
    pub to_front_end: Sender<ToFrontEnd>,
    pub to_idle: IdleSender,
    pub to_stats: Sender<ToStats>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
    pub meters: Arc<Meters>,
}

/// Most exchanges held before a flush.
const BATCH: usize = 256;

pub fn run(inbox: Receiver<ToRecycler>, out: RecyclerOut) {
    let mut served: Vec<Exchange> = Vec::with_capacity(BATCH);
    let mut access = String::with_capacity(64 * 1024);
    loop {
        let msg = match inbox.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                flush(&mut served, &mut access, &out);
                match inbox.recv() {
                    Ok(msg) => msg,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => {
                flush(&mut served, &mut access, &out);
                return;
            }
        };
        let cfg = out.live.load();
        let keeping = Keeping { access_log: !cfg.access_log.is_empty(), stats: cfg.stats };
        match msg {
            ToRecycler::KeepAlive(conn, exchange) => {
                let conn = record(conn, exchange, &mut served, &mut access, keeping);
                keep(conn, &out);
            }
            ToRecycler::Close(conn, _reason, exchange) => {
                let conn = match exchange {
                    Some(exchange) => record(conn, exchange, &mut served, &mut access, keeping),
                    None => conn,
                };
                close(conn, &out);
            }
            ToRecycler::Flush(ticket) => {
                flush(&mut served, &mut access, &out);
                let _ = out.to_stats.try_send(ToStats::Flushed(ticket));
            }
        }
        if served.len() >= BATCH || access.len() >= 60 * 1024 {
            flush(&mut served, &mut access, &out);
        }
    }
}

/// Which records an exchange goes into (read from the live config once per message).
#[derive(Clone, Copy)]
struct Keeping {
    access_log: bool,
    stats: bool,
}

fn record(mut conn: Conn, mut exchange: Exchange, served: &mut Vec<Exchange>, access: &mut String, keeping: Keeping) -> Conn {
    conn.requests += 1;
    if keeping.access_log {
        access_line(access, &conn, &exchange);
    }
    exchange.bytes_in = std::mem::take(&mut conn.bytes_in);
    exchange.bytes_out = std::mem::take(&mut conn.bytes_out);
    exchange.keep_alive_wait = conn.keep_alive_wait.take();
    if matches!(exchange.handler, Handler::Cgi | Handler::Plugin) {
        // Those handlers may have switched the socket to blocking mode.
        let _ = conn.stream.set_nonblocking(true);
    }
    if keeping.stats {
        served.push(exchange);
    }
    conn
}

/// Hands a persistent connection on: straight back to the front end when a pipelined request
/// is already buffered, otherwise to idle.pool until it is readable.
fn keep(conn: Conn, out: &RecyclerOut) {
    let cfg = out.live.load();
    if out.meters.draining() || conn.requests >= cfg.max_keep_alive_requests {
        close(conn, out);
        return;
    }
    if !conn.unread.is_empty() {
        if let Err(e) = out.to_front_end.send(ToFrontEnd::Read(conn)) {
            let ToFrontEnd::Read(conn) = e.into_inner();
            close(conn, out);
        }
        return;
    }
    if let Err(e) = out.to_idle.send(ToIdlePool::Park(conn)) {
        let ToIdlePool::Park(conn) = e.into_inner();
        close(conn, out);
    }
}

fn close(conn: Conn, out: &RecyclerOut) {
    out.meters.active.fetch_sub(1, Ordering::Relaxed);
    drop(conn);
}

fn flush(served: &mut Vec<Exchange>, access: &mut String, out: &RecyclerOut) {
    if !served.is_empty() {
        let batch = std::mem::replace(served, Vec::with_capacity(BATCH));
        let _ = out.to_stats.try_send(ToStats::Served(batch));
    }
    if !access.is_empty() {
        let lines = std::mem::replace(access, String::with_capacity(64 * 1024));
        let _ = out.to_log.try_send(ToLog::Access(lines));
    }
}
