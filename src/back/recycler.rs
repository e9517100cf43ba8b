//! be.proc, the recycler: the drain of every finished connection.
//! Instances: 1. In: ToRecycler. Out: ToFrontEnd (pipelined request waiting), ToIdlePool
//! (keep-alive), ToStats and ToLog (batched). Stops: inbox disconnected.
//!
//! Access-log lines are batched and flushed whenever the inbox runs dry, so nobody is woken
//! per request under load, and nothing waits long when it is quiet. Stats records are sent
//! in batches of `BATCH`, or `RECORDS_HOLD` after the oldest arrived, or at once when the
//! stats process asks (`Flush`) before it renders a page. With `[stats] enabled = false` no stats
//! records are kept at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::conn::Conn;
use crate::net::idle_pool::IdleSender;
use crate::protocol::{Exchange, Handler, ToFrontEnd, ToIdlePool, ToLog, ToRecycler, ToStats};
use crate::support::config::Live;
use crate::support::log::{access_line, AccessFormat};
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

/// Longest time a stats record is held while a fuller batch gathers. The stats process asks
/// for an early flush (`Flush`) before it renders a page, so holding records loses nothing,
/// and under load the stats process wakes once per batch instead of once per quiet moment.
const RECORDS_HOLD: Duration = Duration::from_millis(250);

pub fn run(inbox: Receiver<ToRecycler>, out: RecyclerOut) {
    let mut served: Vec<Exchange> = Vec::with_capacity(BATCH);
    let mut access = String::with_capacity(64 * 1024);
    // When the oldest stats record held must go out.
    let mut records_due: Option<Instant> = None;
    loop {
        let msg = match inbox.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                send_access(&mut access, &out);
                let next = match records_due {
                    Some(due) => inbox.recv_deadline(due),
                    None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        send_records(&mut served, &mut records_due, &out);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        send_records(&mut served, &mut records_due, &out);
                        return;
                    }
                }
            }
            Err(TryRecvError::Disconnected) => {
                send_records(&mut served, &mut records_due, &out);
                send_access(&mut access, &out);
                return;
            }
        };
        let cfg = out.live.load();
        let keeping = Keeping {
            access_log: !cfg.access_log.is_empty(),
            stats: cfg.stats.enabled,
            access_format: cfg.access_log_format,
            with_site: !cfg.sites.is_empty(),
        };
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
                send_records(&mut served, &mut records_due, &out);
                let _ = out.to_stats.try_send(ToStats::Flushed(ticket));
            }
        }
        if served.len() >= BATCH {
            send_records(&mut served, &mut records_due, &out);
        } else if records_due.is_none() && !served.is_empty() {
            records_due = Some(Instant::now() + RECORDS_HOLD);
        }
        if access.len() >= 60 * 1024 {
            send_access(&mut access, &out);
        }
    }
}

/// Which records an exchange goes into (read from the live config once per message).
#[derive(Clone, Copy)]
struct Keeping {
    access_log: bool,
    stats: bool,
    access_format: AccessFormat,
    with_site: bool,
}

fn record(
    mut conn: Conn,
    mut exchange: Exchange,
    served: &mut Vec<Exchange>,
    access: &mut String,
    keeping: Keeping,
) -> Conn {
    conn.requests += 1;
    if keeping.access_log {
        access_line(
            access,
            &conn,
            &exchange,
            keeping.access_format,
            keeping.with_site,
        );
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

fn send_records(served: &mut Vec<Exchange>, records_due: &mut Option<Instant>, out: &RecyclerOut) {
    *records_due = None;
    if !served.is_empty() {
        let batch = std::mem::replace(served, Vec::with_capacity(BATCH));
        let _ = out.to_stats.try_send(ToStats::Served(batch));
    }
}

fn send_access(access: &mut String, out: &RecyclerOut) {
    if !access.is_empty() {
        let lines = std::mem::replace(access, String::with_capacity(64 * 1024));
        let _ = out.to_log.try_send(ToLog::Access(lines));
    }
}
