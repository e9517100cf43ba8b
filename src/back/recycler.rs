//! be.proc, the recycler: the drain of connections answered off their replica's core (CGI,
//! plug-ins, status pages, send.pool). Connections answered on their replica are recycled
//! there, by the same `Books`.
//! Instances: 1. In: ToRecycler. Out: ToReplica (a keep-alive connection goes home to the
//! replica that accepted it; `Flush` is passed to every replica), ToStats and ToLog (batched).
//! Stops: inbox disconnected.
//!
//! Access-log lines are batched and flushed whenever the inbox runs dry, so nobody is woken
//! per request under load, and nothing waits long when it is quiet. Stats records are sent
//! in batches of `BATCH`, or `RECORDS_HOLD` after the oldest arrived, or at once when the
//! stats process asks (`Flush`) before it renders a page. With `[stats] enabled = false` no stats
//! records are kept at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::conn::Conn;
use crate::net::replica::ReplicaSender;
use crate::protocol::{Exchange, Handler, ToLog, ToRecycler, ToReplica, ToStats};
use crate::support::config::{Config, Live};
use crate::support::log::access_line;
use crate::support::meters::Meters;

/// The recycler's outputs.
pub struct RecyclerOut {
    /// One inbox per replica, by `Conn::replica`.
    pub to_replicas: Vec<ReplicaSender>,
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

/// Bytes of access-log lines gathered before they are sent to the log whatever the time.
const ACCESS_BATCH_BYTES: usize = 60 * 1024;

pub fn run(inbox: Receiver<ToRecycler>, out: RecyclerOut) {
    let mut books = Books::new(out.to_stats.clone(), out.to_log.clone());
    loop {
        let msg = match inbox.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                books.send_access();
                let next = match books.due() {
                    Some(due) => inbox.recv_deadline(due),
                    None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        books.send_records();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        books.send_records();
                        return;
                    }
                }
            }
            Err(TryRecvError::Disconnected) => {
                books.send_records();
                books.send_access();
                return;
            }
        };
        let cfg = out.live.load();
        match msg {
            ToRecycler::KeepAlive(conn, exchange) => {
                let conn = books.record(conn, exchange, &cfg);
                keep(conn, &out, &cfg);
            }
            ToRecycler::Close(conn, _reason, exchange) => {
                let conn = match exchange {
                    Some(exchange) => books.record(conn, exchange, &cfg),
                    None => conn,
                };
                close(conn, &out);
            }
            ToRecycler::Flush(ticket) => {
                books.send_records();
                for to_replica in &out.to_replicas {
                    if to_replica.send(ToReplica::Flush(ticket)).is_err() {
                        // A replica that has stopped answers for itself.
                        let _ = out.to_stats.try_send(ToStats::Flushed(ticket));
                    }
                }
                let _ = out.to_stats.try_send(ToStats::Flushed(ticket));
            }
        }
    }
}

/// Hands a persistent connection home to its replica, which reads its next request.
fn keep(conn: Conn, out: &RecyclerOut, cfg: &Config) {
    // While draining too: its replica answers the next request with `Connection: close`.
    if conn.requests >= cfg.max_keep_alive_requests {
        close(conn, out);
        return;
    }
    let Some(to_replica) = out.to_replicas.get(conn.replica) else {
        return close(conn, out);
    };
    if let Err(e) = to_replica.send(ToReplica::Resume(conn)) {
        if let ToReplica::Resume(conn) = e.into_inner() {
            close(conn, out);
        }
    }
}

fn close(mut conn: Conn, out: &RecyclerOut) {
    conn.close_tls();
    out.meters.closed(conn.replica);
    drop(conn);
}

/// The books of finished exchanges, kept by the recycler and by each replica: access-log
/// lines and stats records, gathered and sent in batches so that no request wakes anyone.
pub struct Books {
    served: Vec<Exchange>,
    access: String,
    /// When the oldest stats record held must go out.
    records_due: Option<Instant>,
    to_stats: Sender<ToStats>,
    to_log: Sender<ToLog>,
}

impl Books {
    pub fn new(to_stats: Sender<ToStats>, to_log: Sender<ToLog>) -> Books {
        Books {
            served: Vec::with_capacity(BATCH),
            access: String::new(),
            records_due: None,
            to_stats,
            to_log,
        }
    }

    /// Books one exchange on its connection, sending a batch when one is full.
    pub fn record(&mut self, mut conn: Conn, mut exchange: Exchange, cfg: &Config) -> Conn {
        conn.requests += 1;
        if !cfg.access_log.is_empty() {
            access_line(
                &mut self.access,
                &conn,
                &exchange,
                cfg.access_log_format,
                !cfg.sites.is_empty(),
            );
            if self.access.len() >= ACCESS_BATCH_BYTES {
                self.send_access();
            }
        }
        exchange.bytes_in = std::mem::take(&mut conn.bytes_in);
        exchange.bytes_out = std::mem::take(&mut conn.bytes_out);
        exchange.keep_alive_wait = conn.keep_alive_wait.take();
        if matches!(exchange.handler, Handler::Cgi | Handler::Plugin) {
            // Those handlers may have switched the socket to blocking mode.
            let _ = conn.stream.set_nonblocking(true);
        }
        if cfg.stats.enabled {
            if self.served.is_empty() {
                self.records_due = Some(Instant::now() + RECORDS_HOLD);
            }
            self.served.push(exchange);
            if self.served.len() >= BATCH {
                self.send_records();
            }
        }
        conn
    }

    /// When the records held must be sent, if any are held.
    pub fn due(&self) -> Option<Instant> {
        self.records_due
    }

    /// Sends the records if they are due at `now`.
    pub fn send_due(&mut self, now: Instant) {
        if self.records_due.is_some_and(|due| due <= now) {
            self.send_records();
        }
    }

    pub fn send_records(&mut self) {
        self.records_due = None;
        if !self.served.is_empty() {
            let batch = std::mem::replace(&mut self.served, Vec::with_capacity(BATCH));
            let _ = self.to_stats.try_send(ToStats::Served(batch));
        }
    }

    pub fn send_access(&mut self) {
        if !self.access.is_empty() {
            let lines = std::mem::take(&mut self.access);
            let _ = self.to_log.try_send(ToLog::Access(lines));
        }
    }
}
