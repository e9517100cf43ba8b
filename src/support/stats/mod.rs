//! The stats process: owns the request counters and latency histograms, and renders the
//! status pages — `/stats.html` (a live picture of the process network), `/stats.json` (the
//! same numbers) and `/metrics` (Prometheus text).
//! Instances: 1. In: ToStats (records batched by the recycler, page requests from the front
//! end). Out: ToRecycler (a page's connection, and `Flush` before rendering), ToSendPool (the
//! rest of a page a slow client has not taken). Stops: inbox disconnected.
//!
//! Before it renders a page, the process asks the recycler to flush its batch and counts
//! everything up to the answer, so a page counts every exchange that finished before it
//! was requested. Once a second it samples the counters for the recent rates.

mod html;
mod prometheus;
pub mod snapshot;
mod svg;
pub mod tally;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender};

use crate::conn::Conn;
use crate::farm::reply;
use crate::http::response::{push_header, push_header_u64};
use crate::http::{Body, Method, Request};
use crate::net::send_pool::{self, SendPoolSender};
use crate::par::Gauge;
use crate::plugin_host::PluginBoard;
use crate::protocol::{
    CloseReason, Exchange, Handler, Piece, StatsFormat, ToRecycler, ToSendPool, ToStats, Unsent,
};
use crate::support::config::Live;
use crate::support::meters::Meters;

use tally::Tally;

/// One channel's queue length, read when a page is rendered.
pub struct Probe {
    /// The process whose inbox it is.
    pub name: &'static str,
    pub length: Box<dyn Fn() -> usize + Send>,
}

impl Probe {
    pub fn new(name: &'static str, length: impl Fn() -> usize + Send + 'static) -> Probe {
        Probe {
            name,
            length: Box::new(length),
        }
    }

    /// Probes a crossbeam channel through a clone of its receiver, which is only ever asked
    /// its length (a sender clone would keep the channel from disconnecting on shutdown).
    pub fn of<T: Send + 'static>(name: &'static str, inbox: &Receiver<T>) -> Probe {
        let inbox = inbox.clone();
        Probe::new(name, move || inbox.len())
    }
}

/// The stats process's inputs besides its inbox, and its output.
pub struct StatsOut {
    pub to_recycler: Sender<ToRecycler>,
    /// How many `Flushed` answers a `Flush` brings (the recycler's and each replica's).
    pub flush_answers: usize,
    pub live: Live,
    pub meters: Arc<Meters>,
    pub gauges: Vec<Arc<Gauge>>,
    pub board: PluginBoard,
    /// Queue length of each process's inbox, in diagram order.
    pub queues: Vec<Probe>,
    /// The page cache's table, published by cache.control.
    pub cache: crate::cache::CacheBoard,
    /// Where the rest of a page goes when the client does not take it at once.
    pub to_send_pool: SendPoolSender,
}

/// A page asked for and not yet written.
struct PageJob {
    conn: Conn,
    req: Request,
    format: StatsFormat,
}

/// How often the counters are sampled for rates.
const TICK: Duration = Duration::from_secs(1);
/// Longest wait for the recycler's flush before a page is rendered anyway.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

pub fn run(inbox: Receiver<ToStats>, out: StatsOut) {
    let mut stats = Process {
        tally: Tally::new(),
        backlog: VecDeque::new(),
        flushes: 0,
    };
    stats.sample(&out);
    let mut next_tick = Instant::now() + TICK;
    loop {
        if Instant::now() >= next_tick {
            stats.sample(&out);
            next_tick = Instant::now() + TICK;
        }
        if let Some(job) = stats.backlog.pop_front() {
            stats.settle(&inbox, &out);
            crate::par::start_job();
            if let Some(done) = page(job, &mut stats.tally, &out) {
                if out.to_recycler.send(done).is_err() {
                    return;
                }
            }
            continue;
        }
        match inbox.recv_deadline(next_tick) {
            Ok(msg) => stats.take(msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The stats process's state.
struct Process {
    tally: Tally,
    /// Pages asked for, served in order.
    backlog: VecDeque<PageJob>,
    /// Flushes asked of the recycler; the answer echoes the number.
    flushes: u64,
}

impl Process {
    fn take(&mut self, msg: ToStats) {
        match msg {
            ToStats::Served(batch) => {
                for exchange in &batch {
                    self.tally.add(exchange);
                }
            }
            ToStats::Page { conn, req, format } => {
                self.backlog.push_back(PageJob { conn, req, format })
            }
            // Refusals are counted live in `Meters`; a late flush answer has nothing to add.
            ToStats::Refused | ToStats::Flushed(_) => {}
        }
    }

    /// Asks the recycler for its batched records and counts everything up to its answer.
    fn settle(&mut self, inbox: &Receiver<ToStats>, out: &StatsOut) {
        self.flushes += 1;
        let ticket = self.flushes;
        if out.to_recycler.send(ToRecycler::Flush(ticket)).is_err() {
            return;
        }
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut answers = 0;
        while let Ok(msg) = inbox.recv_deadline(deadline) {
            match msg {
                ToStats::Flushed(n) if n == ticket => {
                    answers += 1;
                    if answers >= out.flush_answers {
                        return;
                    }
                }
                msg => self.take(msg),
            }
        }
    }

    fn sample(&mut self, out: &StatsOut) {
        let accepted = out.meters.accepted.load(Ordering::Relaxed);
        let jobs = out
            .gauges
            .iter()
            .map(|g| g.jobs.load(Ordering::Relaxed))
            .collect();
        let mut counters = self.tally.counters(accepted, jobs);
        counters.h2_streams = snapshot::h2_streams_total(&out.meters);
        counters.handshakes = out.meters.tls_handshakes.load(Ordering::Relaxed);
        self.tally.sample(Instant::now(), counters);
    }
}

/// Renders and writes a page. The stats process is a single process, so it never waits on a
/// client: what the socket does not take at once goes to send.pool, which hands the connection
/// to the recycler when it is done (then there is nothing to return here).
fn page(job: PageJob, tally: &mut Tally, out: &StatsOut) -> Option<ToRecycler> {
    let PageJob {
        mut conn,
        req,
        format,
    } = job;
    let cfg = out.live.load();
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(reply::error_with(
            conn,
            Some(&req),
            405,
            &cfg,
            Handler::Stats,
            &[("Allow", "GET, HEAD")],
        ));
    }
    let snap = snapshot::take(tally, out, cfg.stats.enabled);
    let (content_type, body): (&[u8], Vec<u8>) = match format {
        StatsFormat::Json => (
            b"application/json",
            serde_json::to_vec_pretty(&snap).unwrap_or_default(),
        ),
        StatsFormat::Html => (
            b"text/html; charset=utf-8",
            html::render(&snap).into_bytes(),
        ),
        StatsFormat::Prometheus => (
            b"text/plain; version=0.0.4; charset=utf-8",
            prometheus::render(&snap).into_bytes(),
        ),
    };
    let keep_alive = req.keep_alive && req.body == Body::None;
    let mut response = Vec::with_capacity(256 + body.len());
    reply::head(200, &req, keep_alive, &mut response);
    push_header(&mut response, "Content-Type", content_type);
    push_header_u64(&mut response, "Content-Length", body.len() as u64);
    push_header(&mut response, "Cache-Control", b"no-store");
    response.extend_from_slice(b"\r\n");
    let head_len = response.len() as u64;
    let body_bytes = if req.is_head() { 0 } else { body.len() as u64 };
    if !req.is_head() {
        response.extend_from_slice(&body);
    }
    let bytes_out_before = conn.bytes_out;
    let written = send_pool::send_now(&mut conn, &response, false);
    let exchange =
        Exchange::for_request(&req, 200, body_bytes, Handler::Stats, conn.request_started);
    match written {
        Ok(n) if n == response.len() && !conn.tls_pending() => Some(if keep_alive {
            ToRecycler::KeepAlive(conn, exchange)
        } else {
            ToRecycler::Close(conn, CloseReason::Done, Some(exchange))
        }),
        Ok(n) => {
            let unsent = Unsent {
                conn,
                pieces: VecDeque::from([Piece::Bytes {
                    bytes: response,
                    at: n,
                }]),
                exchange,
                keep_alive,
                head_len,
                bytes_out_before,
            };
            match out.to_send_pool.send(ToSendPool::Finish(Box::new(unsent))) {
                Ok(()) => None,
                Err(SendError(ToSendPool::Finish(unsent))) => {
                    Some(ToRecycler::Close(unsent.conn, CloseReason::Shutdown, None))
                }
            }
        }
        Err(_) => Some(ToRecycler::Close(conn, CloseReason::WriteFailed, None)),
    }
}

/// Formatting shared by the HTML page and the SVG picture; `page.js` formats the same way.
mod format {
    /// A rate: one decimal below 100, whole above.
    pub fn rate(per_second: f64) -> String {
        if per_second >= 100.0 {
            format!("{per_second:.0}")
        } else {
            format!("{per_second:.1}")
        }
    }

    /// A latency in microseconds, in the unit that suits it.
    pub fn micros(us: u64) -> String {
        match us {
            0..=999 => format!("{us} µs"),
            1_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
            _ => format!("{:.2} s", us as f64 / 1e6),
        }
    }

    /// A byte count with a binary unit.
    pub fn bytes(n: u64) -> String {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = n as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            format!("{n} B")
        } else {
            format!("{value:.1} {}", UNITS[unit])
        }
    }

    pub use crate::http::html::escape;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn units() {
            assert_eq!(rate(2.66), "2.7");
            assert_eq!(rate(1234.4), "1234");
            assert_eq!(micros(85), "85 µs");
            assert_eq!(micros(1_260), "1.3 ms");
            assert_eq!(micros(2_500_000), "2.50 s");
            assert_eq!(bytes(1000), "1000 B");
            assert_eq!(bytes(1536), "1.5 KiB");
            assert_eq!(
                escape("<a href=\"x\">&'"),
                "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use arc_swap::ArcSwap;
    use crossbeam_channel::{bounded, unbounded};

    use super::*;
    use crate::http::request::{parse_head, HeadLimits};
    use crate::protocol::Exchange;
    use crate::support::config::Config;

    /// A connected pair: the server side as a `Conn`, and the client's socket.
    fn connection() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let local = stream.local_addr().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (Conn::new(1, stream, peer, local), client)
    }

    #[test]
    fn a_page_counts_what_the_recycler_flushes_first() {
        let (to_stats, inbox) = bounded(16);
        let (to_recycler, recycler_inbox) = unbounded();
        let (to_send_pool, _send_pool_inbox) = send_pool::channel().unwrap();
        let out = StatsOut {
            to_recycler,
            flush_answers: 1,
            live: Arc::new(ArcSwap::from_pointee(Config::default())),
            meters: Arc::new(Meters::default()),
            gauges: Vec::new(),
            board: Arc::new(ArcSwap::from_pointee(Vec::new())),
            queues: vec![Probe::new("nothing", || 7)],
            cache: Arc::new(ArcSwap::from_pointee(crate::cache::CacheSnapshot::default())),
            to_send_pool,
        };
        let stats = std::thread::spawn(move || run(inbox, out));

        let served = |n: usize| {
            ToStats::Served(
                (0..n)
                    .map(|_| Exchange::without_request(404, 0, Instant::now()))
                    .collect(),
            )
        };
        to_stats.send(served(1)).unwrap();
        let (conn, mut client) = connection();
        let head = b"GET /stats.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let req = parse_head(head, &HeadLimits::default()).unwrap().unwrap();
        to_stats
            .send(ToStats::Page {
                conn,
                req,
                format: StatsFormat::Json,
            })
            .unwrap();

        // Playing the recycler: two more records were batched when the page was asked for.
        let ticket = match recycler_inbox
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
        {
            ToRecycler::Flush(ticket) => ticket,
            _ => panic!("the stats process did not ask for a flush first"),
        };
        to_stats.send(served(2)).unwrap();
        to_stats.send(ToStats::Flushed(ticket)).unwrap();
        match recycler_inbox
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
        {
            ToRecycler::Close(_, CloseReason::Done, Some(exchange)) => {
                assert_eq!(exchange.handler, Handler::Stats)
            }
            _ => panic!("the page's connection did not come back closed"),
        }
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["requests"]["total"], 3);
        assert_eq!(json["requests"]["status"]["4xx"], 3);
        assert_eq!(json["requests"]["handlers"]["front-end"]["requests"], 3);
        assert_eq!(json["queues"]["nothing"], 7);

        drop(to_stats);
        stats.join().unwrap();
    }
}
