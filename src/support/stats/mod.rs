//! The stats process: owns the counters and latency histograms, renders `/stats.html`,
//! `/stats.json` and `/metrics`.
//! Instances: 1. In: ToStats. Out: ToRecycler (after writing a page). Stops: inbox disconnected.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conn::Conn;
use crate::farm::reply;
use crate::http::response::{push_header, push_header_u64};
use crate::http::{Method, Request};
use crate::par::Gauge;
use crate::plugin_host::{PluginBoard, PluginRow};
use crate::protocol::{CloseReason, Exchange, Handler, StatsFormat, ToRecycler, ToStats};
use crate::support::config::Live;
use crate::support::meters::Meters;

/// The stats process's inputs besides its inbox, and its output.
pub struct StatsOut {
    pub to_recycler: Sender<ToRecycler>,
    pub live: Live,
    pub meters: Arc<Meters>,
    pub gauges: Vec<Arc<Gauge>>,
    pub board: PluginBoard,
}

/// Latency of one stage, in microseconds.
struct Stage {
    name: &'static str,
    histogram: Option<Histogram<u64>>,
}

impl Stage {
    fn new(name: &'static str) -> Stage {
        // Three significant figures from 1 µs to an hour.
        Stage { name, histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3).ok() }
    }

    fn record(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Some(h) = &mut self.histogram {
            let _ = h.record(micros);
        }
    }
}

/// Everything the stats process counts.
struct Tally {
    started: Instant,
    requests: u64,
    by_class: [u64; 6],
    by_handler: [u64; 6],
    bytes_in: u64,
    bytes_out: u64,
    body_bytes: u64,
    stages: Vec<Stage>,
    /// (when, total requests) samples for the request rate.
    rate_samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            started: Instant::now(),
            requests: 0,
            by_class: [0; 6],
            by_handler: [0; 6],
            bytes_in: 0,
            bytes_out: 0,
            body_bytes: 0,
            stages: vec![Stage::new("read"), Stage::new("handle"), Stage::new("total")],
            rate_samples: std::collections::VecDeque::new(),
        }
    }

    fn add(&mut self, exchange: &Exchange) {
        self.requests += 1;
        let class = (exchange.status / 100).min(5) as usize;
        self.by_class[class] += 1;
        self.by_handler[handler_index(exchange.handler)] += 1;
        self.bytes_in += exchange.bytes_in;
        self.bytes_out += exchange.bytes_out;
        self.body_bytes += exchange.body_bytes;
        let read = exchange.parsed.saturating_duration_since(exchange.started);
        let handle = exchange.finished.saturating_duration_since(exchange.parsed);
        let total = exchange.finished.saturating_duration_since(exchange.started);
        self.stages[0].record(read);
        self.stages[1].record(handle);
        self.stages[2].record(total);
    }

    fn requests_per_second(&mut self) -> f64 {
        let now = Instant::now();
        self.rate_samples.push_back((now, self.requests));
        while self.rate_samples.len() > 2 && now.duration_since(self.rate_samples[0].0) > Duration::from_secs(10) {
            self.rate_samples.pop_front();
        }
        let (t0, r0) = self.rate_samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < 0.001 {
            return 0.0;
        }
        (self.requests - r0) as f64 / secs
    }
}

fn handler_index(handler: Handler) -> usize {
    match handler {
        Handler::FrontEnd => 0,
        Handler::Static => 1,
        Handler::Cache => 2,
        Handler::Cgi => 3,
        Handler::Plugin => 4,
        Handler::Stats => 5,
    }
}

const HANDLERS: [&str; 6] = ["front_end", "static", "cache", "cgi", "plugin", "stats"];

pub fn run(inbox: Receiver<ToStats>, out: StatsOut) {
    let mut tally = Tally::new();
    while let Ok(msg) = inbox.recv() {
        match msg {
            ToStats::Served(batch) => {
                for exchange in &batch {
                    tally.add(exchange);
                }
            }
            ToStats::Refused => {}
            ToStats::Page { conn, req, format } => {
                // Exchanges finished before this request arrived may still be queued behind it.
                while let Ok(ToStats::Served(batch)) = inbox.try_recv() {
                    for exchange in &batch {
                        tally.add(exchange);
                    }
                }
                let done = page(conn, &req, format, &mut tally, &out);
                if out.to_recycler.send(done).is_err() {
                    return;
                }
            }
        }
    }
}

/// A snapshot of everything, serialised as `/stats.json`.
#[derive(Serialize)]
struct Snapshot {
    server: &'static str,
    uptime_seconds: f64,
    connections: Connections,
    requests: Requests,
    bytes: Bytes,
    farms: Vec<Farm>,
    latency_us: Vec<Latency>,
    plugins: Vec<PluginRow>,
}

#[derive(Serialize)]
struct Connections {
    accepted: u64,
    refused: u64,
    active: usize,
    parked: usize,
    in_flight: usize,
}

#[derive(Serialize)]
struct Requests {
    total: u64,
    per_second: f64,
    status_1xx: u64,
    status_2xx: u64,
    status_3xx: u64,
    status_4xx: u64,
    status_5xx: u64,
    by_handler: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct Bytes {
    received: u64,
    sent: u64,
    body_sent: u64,
}

#[derive(Serialize)]
struct Farm {
    name: &'static str,
    idle: usize,
    busy: usize,
    blocked: usize,
    total: usize,
    max: usize,
    target_idle: usize,
    jobs: u64,
    forks: u64,
}

#[derive(Serialize)]
struct Latency {
    stage: &'static str,
    count: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

fn snapshot(tally: &mut Tally, out: &StatsOut) -> Snapshot {
    let m = &out.meters;
    let parked = m.parked.load(Ordering::Relaxed);
    let active = m.active.load(Ordering::Relaxed);
    Snapshot {
        server: "occwserv",
        uptime_seconds: tally.started.elapsed().as_secs_f64(),
        connections: Connections {
            accepted: m.accepted.load(Ordering::Relaxed),
            refused: m.refused.load(Ordering::Relaxed),
            active,
            parked,
            in_flight: active.saturating_sub(parked),
        },
        requests: Requests {
            total: tally.requests,
            per_second: tally.requests_per_second(),
            status_1xx: tally.by_class[1],
            status_2xx: tally.by_class[2],
            status_3xx: tally.by_class[3],
            status_4xx: tally.by_class[4],
            status_5xx: tally.by_class[5],
            by_handler: HANDLERS.iter().copied().zip(tally.by_handler.iter().copied()).collect(),
        },
        bytes: Bytes { received: tally.bytes_in, sent: tally.bytes_out, body_sent: tally.body_bytes },
        farms: out
            .gauges
            .iter()
            .map(|g| Farm {
                name: g.name,
                idle: g.idle.load(Ordering::Relaxed),
                busy: g.busy.load(Ordering::Relaxed),
                blocked: g.blocked.load(Ordering::Relaxed),
                total: g.total.load(Ordering::Relaxed),
                max: g.max.load(Ordering::Relaxed),
                target_idle: g.target_idle.load(Ordering::Relaxed),
                jobs: g.jobs.load(Ordering::Relaxed),
                forks: g.forks.load(Ordering::Relaxed),
            })
            .collect(),
        latency_us: tally
            .stages
            .iter()
            .filter_map(|s| {
                let h = s.histogram.as_ref()?;
                Some(Latency {
                    stage: s.name,
                    count: h.len(),
                    p50: h.value_at_quantile(0.5),
                    p90: h.value_at_quantile(0.9),
                    p99: h.value_at_quantile(0.99),
                    max: h.max(),
                })
            })
            .collect(),
        plugins: out.board.load().as_ref().clone(),
    }
}

fn page(mut conn: Conn, req: &Request, format: StatsFormat, tally: &mut Tally, out: &StatsOut) -> ToRecycler {
    let cfg = out.live.load();
    if !matches!(req.method, Method::Get | Method::Head) {
        return reply::error_with(conn, Some(req), 405, &cfg, Handler::Stats, &[("Allow", "GET, HEAD")]);
    }
    let snap = snapshot(tally, out);
    let (content_type, body) = match format {
        StatsFormat::Json => ("application/json", serde_json::to_vec_pretty(&snap).unwrap_or_default()),
        StatsFormat::Html => ("text/html; charset=utf-8", render_html(&snap).into_bytes()),
        StatsFormat::Prometheus => ("text/plain; version=0.0.4", render_prometheus(&snap).into_bytes()),
    };
    let keep_alive = req.keep_alive && req.body == crate::http::Body::None;
    let mut head = Vec::with_capacity(256 + body.len());
    reply::head(200, req, keep_alive, &mut head);
    push_header(&mut head, "Content-Type", content_type.as_bytes());
    push_header_u64(&mut head, "Content-Length", body.len() as u64);
    push_header(&mut head, "Cache-Control", b"no-store");
    head.extend_from_slice(b"\r\n");
    let body_bytes = if req.is_head() { 0 } else { body.len() as u64 };
    if !req.is_head() {
        head.extend_from_slice(&body);
    }
    match conn.write_all_until(&head, Instant::now() + cfg.send_timeout()) {
        Ok(()) => reply::finished(conn, req, 200, body_bytes, Handler::Stats, keep_alive),
        Err(_) => ToRecycler::Close(conn, CloseReason::WriteFailed, None),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render_html(s: &Snapshot) -> String {
    use std::fmt::Write;
    let mut h = String::with_capacity(8192);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\n");
    h.push_str("<title>occwserv status</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}</style></head><body>\n");
    let _ = write!(h, "<h1>occwserv status</h1>\n<p>Up {:.0} s. {:.1} requests/s over the last seconds.</p>\n", s.uptime_seconds, s.requests.per_second);
    let c = &s.connections;
    let _ = write!(
        h,
        "<h2>Connections</h2><table><tr><th>accepted</th><th>refused</th><th>active</th><th>parked (idle.pool)</th><th>in flight</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
        c.accepted, c.refused, c.active, c.parked, c.in_flight
    );
    let r = &s.requests;
    let _ = write!(
        h,
        "<h2>Requests</h2><table><tr><th>total</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
        r.total, r.status_1xx, r.status_2xx, r.status_3xx, r.status_4xx, r.status_5xx
    );
    let _ = write!(
        h,
        "<h2>Bytes</h2><table><tr><th>received</th><th>sent</th><th>body sent</th></tr><tr><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
        s.bytes.received, s.bytes.sent, s.bytes.body_sent
    );
    h.push_str("<h2>Farms</h2><table><tr><th>farm</th><th>idle</th><th>busy</th><th>total</th><th>max</th><th>jobs</th><th>forks</th></tr>\n");
    for f in &s.farms {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.name, f.idle, f.busy, f.total, f.max, f.jobs, f.forks
        );
    }
    h.push_str("</table>\n<h2>Latency (µs)</h2><table><tr><th>stage</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n");
    for l in &s.latency_us {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.stage, l.count, l.p50, l.p90, l.p99, l.max
        );
    }
    h.push_str("</table>\n<h2>Plug-ins</h2>\n");
    if s.plugins.is_empty() {
        h.push_str("<p>No plug-ins are loaded.</p>\n");
    } else {
        h.push_str("<table><tr><th>name</th><th>version</th><th>state</th><th>persist</th><th>requests</th><th>faults</th><th>generations</th></tr>\n");
        for p in &s.plugins {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.name),
                escape(&p.version),
                escape(&p.state),
                p.persist,
                p.requests,
                p.faults,
                p.generations
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn render_prometheus(s: &Snapshot) -> String {
    use std::fmt::Write;
    let mut p = String::with_capacity(4096);
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = write!(p, "# HELP occwserv_{name} {help}\n# TYPE occwserv_{name} {kind}\noccwserv_{name} {value}\n");
    };
    gauge("uptime_seconds", "Seconds since start.", "gauge", s.uptime_seconds);
    gauge("connections_accepted_total", "Connections accepted.", "counter", s.connections.accepted as f64);
    gauge("connections_refused_total", "Connections refused at the limit.", "counter", s.connections.refused as f64);
    gauge("connections_active", "Open connections.", "gauge", s.connections.active as f64);
    gauge("connections_parked", "Connections parked in idle.pool.", "gauge", s.connections.parked as f64);
    gauge("bytes_received_total", "Bytes read from clients.", "counter", s.bytes.received as f64);
    gauge("bytes_sent_total", "Bytes written to clients.", "counter", s.bytes.sent as f64);
    let _ = writeln!(p, "# HELP occwserv_requests_total Requests answered, by status class.");
    let _ = writeln!(p, "# TYPE occwserv_requests_total counter");
    let r = &s.requests;
    for (class, n) in [("1xx", r.status_1xx), ("2xx", r.status_2xx), ("3xx", r.status_3xx), ("4xx", r.status_4xx), ("5xx", r.status_5xx)] {
        let _ = writeln!(p, "occwserv_requests_total{{class=\"{class}\"}} {n}");
    }
    let _ = writeln!(p, "# HELP occwserv_farm_workers Workers of each farm by state.");
    let _ = writeln!(p, "# TYPE occwserv_farm_workers gauge");
    for f in &s.farms {
        let _ = writeln!(p, "occwserv_farm_workers{{farm=\"{}\",state=\"idle\"}} {}", f.name, f.idle);
        let _ = writeln!(p, "occwserv_farm_workers{{farm=\"{}\",state=\"busy\"}} {}", f.name, f.busy);
    }
    p
}
