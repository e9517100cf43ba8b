//! What the stats process counts: requests by status class and handler, byte totals,
//! per-stage latency histograms, and samples of the counters for recent rates.
//! Pure bookkeeping owned by the stats process; no channels here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::protocol::{Exchange, Handler};

/// Handler names, in `Handler` order; used as JSON keys and metric labels.
pub const HANDLERS: [&str; 6] = ["front-end", "static", "cache", "cgi", "plugin", "stats"];

pub fn handler_index(handler: Handler) -> usize {
    match handler {
        Handler::FrontEnd => 0,
        Handler::Static => 1,
        Handler::Cache => 2,
        Handler::Cgi => 3,
        Handler::Plugin => 4,
        Handler::Stats => 5,
    }
}

/// The stages of an exchange that get a latency histogram: (name, what it measures).
pub const STAGES: [(&str, &str); 5] = [
    ("read", "request began to arrive → head parsed"),
    ("queue", "head parsed → a handler took it"),
    ("handler", "handler took it → response written"),
    ("total", "request began to arrive → response written"),
    ("keep_alive", "parked in idle.pool before the request"),
];

/// Upper bounds of the fixed histogram buckets, in microseconds (`le` in `/metrics`);
/// a last bucket above them catches the rest.
pub const BUCKET_BOUNDS_MICROS: [u64; 19] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Longest latency the histograms resolve (an hour); longer ones count as an hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// Latency of one stage: an HDR histogram for percentiles, and exact fixed buckets and sum
/// for the Prometheus histogram.
pub struct Stage {
    pub name: &'static str,
    pub what: &'static str,
    histogram: Option<Histogram<u64>>,
    /// Count per bucket (not cumulative); the last one is above every bound.
    pub buckets: [u64; BUCKET_BOUNDS_MICROS.len() + 1],
    pub sum_micros: u64,
    pub count: u64,
}

/// Percentiles of one stage, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Stage {
    fn new(name: &'static str, what: &'static str) -> Stage {
        Stage {
            name,
            what,
            // Three significant figures from 1 µs to an hour.
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3).ok(),
            buckets: [0; BUCKET_BOUNDS_MICROS.len() + 1],
            sum_micros: 0,
            count: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let micros = (d.as_micros().min(MAX_MICROS as u128) as u64).max(1);
        if let Some(h) = &mut self.histogram {
            let _ = h.record(micros);
        }
        self.buckets[BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < micros)] += 1;
        self.sum_micros += micros;
        self.count += 1;
    }

    pub fn percentiles(&self) -> Percentiles {
        match &self.histogram {
            Some(h) if !h.is_empty() => Percentiles {
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            },
            _ => Percentiles::default(),
        }
    }

    pub fn mean_micros(&self) -> u64 {
        self.sum_micros.checked_div(self.count).unwrap_or(0)
    }
}

/// Counters sampled once a second, for rates.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub accepted: u64,
    pub requests: u64,
    pub by_handler: [u64; HANDLERS.len()],
    pub bytes_out: u64,
    /// Jobs taken by each farm, in gauge order.
    pub farm_jobs: Vec<u64>,
    /// HTTP/2 streams dispatched (set by the caller from the replicas' gauges).
    pub h2_streams: u64,
    /// TLS handshakes completed (from the live gauges).
    pub handshakes: u64,
}

/// Rates per second between the oldest kept sample and now.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    pub accepted: f64,
    pub handshakes: f64,
    pub requests: f64,
    pub by_handler: [f64; HANDLERS.len()],
    pub bytes_out: f64,
    pub farm_jobs: Vec<f64>,
    pub h2_streams: f64,
}

/// Samples older than this no longer count towards the rates.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Seconds of request-rate history kept for the page's chart.
pub const HISTORY_SECONDS: usize = 120;

/// Everything the stats process counts.
pub struct Tally {
    pub started: Instant,
    pub requests: u64,
    /// Requests by status class: index 1 is 1xx … index 5 is 5xx (0 unused).
    pub by_class: [u64; 6],
    pub by_handler: [u64; HANDLERS.len()],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub body_bytes: u64,
    pub stages: Vec<Stage>,
    /// Total latency (`started` → `finished`) per handler, in `HANDLERS` order.
    pub handler_latency: Vec<Stage>,
    samples: VecDeque<(Instant, Counters)>,
    /// Requests per second between consecutive samples, oldest first.
    pub history: VecDeque<f64>,
    /// Counts per site (by its first name).
    pub by_site: BTreeMap<&'static str, SiteCount>,
}

/// What one site answered.
#[derive(Debug, Clone, Default)]
pub struct SiteCount {
    pub requests: u64,
    pub body_bytes: u64,
    /// By status class, as `Tally::by_class`.
    pub by_class: [u64; 6],
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            started: Instant::now(),
            requests: 0,
            by_class: [0; 6],
            by_handler: [0; HANDLERS.len()],
            bytes_in: 0,
            bytes_out: 0,
            body_bytes: 0,
            stages: STAGES
                .iter()
                .map(|(name, what)| Stage::new(name, what))
                .collect(),
            handler_latency: HANDLERS
                .iter()
                .map(|name| Stage::new(name, "request began → response written"))
                .collect(),
            history: VecDeque::with_capacity(HISTORY_SECONDS),
            samples: VecDeque::new(),
            by_site: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, exchange: &Exchange) {
        self.requests += 1;
        self.by_class[(exchange.status / 100).clamp(1, 5) as usize] += 1;
        self.by_handler[handler_index(exchange.handler)] += 1;
        self.bytes_in += exchange.bytes_in;
        self.bytes_out += exchange.bytes_out;
        self.body_bytes += exchange.body_bytes;
        let since = |later: Instant, earlier: Instant| later.saturating_duration_since(earlier);
        self.stages[0].record(since(exchange.parsed, exchange.started));
        self.stages[1].record(since(exchange.handler_started, exchange.parsed));
        self.stages[2].record(since(exchange.finished, exchange.handler_started));
        self.stages[3].record(since(exchange.finished, exchange.started));
        self.handler_latency[handler_index(exchange.handler)]
            .record(since(exchange.finished, exchange.started));
        if let Some(wait) = exchange.keep_alive_wait {
            self.stages[4].record(wait);
        }
        if let Some(site) = exchange.site {
            let count = self.by_site.entry(site).or_default();
            count.requests += 1;
            count.body_bytes += exchange.body_bytes;
            count.by_class[(exchange.status / 100).clamp(1, 5) as usize] += 1;
        }
    }

    /// The counters now; `accepted` and `farm_jobs` come from the live gauges.
    pub fn counters(&self, accepted: u64, farm_jobs: Vec<u64>) -> Counters {
        Counters {
            accepted,
            requests: self.requests,
            by_handler: self.by_handler,
            bytes_out: self.bytes_out,
            farm_jobs,
            h2_streams: 0,
            handshakes: 0,
        }
    }

    /// Keeps a sample of the counters (called about once a second).
    pub fn sample(&mut self, now: Instant, counters: Counters) {
        if let Some((then, last)) = self.samples.back() {
            let secs = now.saturating_duration_since(*then).as_secs_f64();
            if secs > 0.0 {
                let per_second = counters.requests.saturating_sub(last.requests) as f64 / secs;
                if self.history.len() == HISTORY_SECONDS {
                    self.history.pop_front();
                }
                self.history.push_back((per_second * 10.0).round() / 10.0);
            }
        }
        self.samples.push_back((now, counters));
        while self.samples.len() > 2
            && now.saturating_duration_since(self.samples[0].0) > RATE_WINDOW
        {
            self.samples.pop_front();
        }
    }

    /// Rates from the oldest kept sample to `current`.
    pub fn rates(&self, now: Instant, current: &Counters) -> Rates {
        let Some((then, old)) = self.samples.front() else {
            return Rates::default();
        };
        let secs = now.saturating_duration_since(*then).as_secs_f64();
        if secs < 0.05 {
            return Rates {
                farm_jobs: vec![0.0; current.farm_jobs.len()],
                ..Rates::default()
            };
        }
        // Three decimals are plenty, and keep /stats.json readable.
        let rate =
            |new: u64, old: u64| (new.saturating_sub(old) as f64 / secs * 1000.0).round() / 1000.0;
        let mut by_handler = [0.0; HANDLERS.len()];
        for (i, r) in by_handler.iter_mut().enumerate() {
            *r = rate(current.by_handler[i], old.by_handler[i]);
        }
        Rates {
            accepted: rate(current.accepted, old.accepted),
            handshakes: rate(current.handshakes, old.handshakes),
            requests: rate(current.requests, old.requests),
            by_handler,
            bytes_out: rate(current.bytes_out, old.bytes_out),
            h2_streams: rate(current.h2_streams, old.h2_streams),
            farm_jobs: current
                .farm_jobs
                .iter()
                .enumerate()
                .map(|(i, &jobs)| rate(jobs, old.farm_jobs.get(i).copied().unwrap_or(jobs)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds() {
        let mut stage = Stage::new("read", "");
        stage.record(Duration::from_micros(50));
        stage.record(Duration::from_micros(51));
        stage.record(Duration::from_secs(7200));
        assert_eq!(stage.buckets[0], 1);
        assert_eq!(stage.buckets[1], 1);
        assert_eq!(stage.buckets[BUCKET_BOUNDS_MICROS.len()], 1);
        assert_eq!(stage.count, 3);
        assert_eq!(stage.sum_micros, 50 + 51 + MAX_MICROS);
        assert_eq!(stage.percentiles().p50, 51);
    }

    #[test]
    fn history_keeps_the_last_two_minutes() {
        let mut tally = Tally::new();
        let t0 = Instant::now();
        for second in 0..=(HISTORY_SECONDS as u64 + 10) {
            tally.requests = second * 3;
            tally.sample(
                t0 + Duration::from_secs(second),
                tally.counters(0, Vec::new()),
            );
        }
        assert_eq!(tally.history.len(), HISTORY_SECONDS);
        assert!(tally.history.iter().all(|&r| r == 3.0));
    }

    #[test]
    fn rates_over_the_window() {
        let mut tally = Tally::new();
        let t0 = Instant::now();
        tally.sample(t0, tally.counters(10, vec![0]));
        tally.requests = 40;
        let current = tally.counters(30, vec![20]);
        let rates = tally.rates(t0 + Duration::from_secs(2), &current);
        assert_eq!(rates.requests, 20.0);
        assert_eq!(rates.accepted, 10.0);
        assert_eq!(rates.farm_jobs, vec![10.0]);
    }
}
