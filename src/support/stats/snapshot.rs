//! One consistent view of every number the status pages show, built from the tally, the
//! live gauges and the queue probes; serialised as `/stats.json` and rendered as HTML, SVG
//! and Prometheus text from the same values.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::tally::{handler_index, Tally, BUCKET_BOUNDS_MICROS, HANDLERS};
use super::StatsOut;
use crate::cache::CacheSnapshot;
use crate::plugin_host::PluginRow;
use crate::protocol::Handler;

/// Key → value pairs serialised as a JSON object in this order.
#[derive(Debug, Clone)]
pub struct Named<T>(pub Vec<(&'static str, T)>);

impl<T> Named<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub server: &'static str,
    pub version: &'static str,
    pub uptime_seconds: f64,
    /// `stats` in the config: whether per-request records are being counted.
    pub stats_enabled: bool,
    pub connections: Connections,
    pub requests: Requests,
    pub bytes: Bytes,
    /// The per-core replicas of the request network, in order.
    pub replicas: Vec<Replica>,
    /// Plug-in answers sent compressed on the fly (plug-ins declared `compress: allowed`).
    pub plugins_coded: u64,
    /// Each farm's workers, by farm name.
    pub farms: Named<Farm>,
    /// Messages waiting in each process's inbox, by process name.
    pub queues: Named<usize>,
    /// Latency per stage, by stage name.
    pub latency: Named<Latency>,
    /// Upper bounds of the latency buckets, in microseconds (the last bucket is unbounded).
    pub latency_bounds_us: Vec<u64>,
    /// The page cache: budget, use, hits, and its table of cached and competing files.
    pub cache: Cache,
    pub plugins: Vec<PluginRow>,
    /// Requests, body bytes and status classes per site.
    pub sites: Vec<SiteRow>,
    /// HTTPS handshakes since start.
    pub tls: TlsCounts,
    /// `[tls.acme]`: each name's certificate and orders (empty without it).
    pub acme: Vec<crate::support::acme::NameStatus>,
    /// HTTP/2 sessions and streams.
    pub h2: H2Counts,
}

/// HTTP/2 sessions and streams (h2/), and requests by protocol.
#[derive(Debug, Clone, serde::Serialize)]
pub struct H2Counts {
    /// Sessions open now, and since start.
    pub sessions: usize,
    pub sessions_total: u64,
    /// Streams open now, dispatched since start, and per second lately.
    pub streams_open: usize,
    pub streams_total: u64,
    pub streams_per_second: f64,
    /// Requests read since start by protocol: HTTP/1.x, and HTTP/2 streams.
    pub requests_http1: u64,
    pub requests_h2: u64,
}

/// HTTP/2 streams dispatched since start, over all replicas.
pub fn h2_streams_total(m: &crate::support::meters::Meters) -> u64 {
    m.replicas
        .iter()
        .map(|r| r.h2_streams_total.load(Ordering::Relaxed))
        .sum()
}

/// HTTPS handshakes since start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TlsCounts {
    /// An HTTPS listener is configured.
    pub enabled: bool,
    /// Completed (counted at the connection's first request).
    pub handshakes: u64,
    /// Of those, resumed by a ticket or a session ID.
    pub resumed: u64,
    /// Refused (a bad ClientHello) or abandoned past `header_timeout_secs`.
    pub failed: u64,
    /// Connections lent to plug-ins (websockets too) that tls.pump relays now: HTTPS ones,
    /// and those whose answer may be compressed.
    pub relays: usize,
    /// Handshakes completed per second, recently.
    pub handshakes_per_second: f64,
    /// Resumed over completed handshakes, 0 to 1.
    pub resumption_ratio: f64,
    /// Failed handshakes by reason (`meters::TLS_FAILURES`).
    pub failures: Named<u64>,
    /// Completed handshakes by version (`tls1_3`, `tls1_2`).
    pub versions: Named<u64>,
    /// Completed handshakes by cipher suite (IANA names).
    pub ciphers: Named<u64>,
}

fn tls_counts(
    m: &crate::support::meters::Meters,
    handshakes_per_second: f64,
    enabled: bool,
) -> TlsCounts {
    use crate::support::meters::{TLS_FAILURES, TLS_SUITES, TLS_VERSIONS};
    let handshakes = m.tls_handshakes.load(Ordering::Relaxed);
    let resumed = m.tls_resumed.load(Ordering::Relaxed);
    let load = |counters: &[std::sync::atomic::AtomicU64], names: &[&'static str]| {
        Named(
            names
                .iter()
                .zip(counters)
                .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
                .collect(),
        )
    };
    let suites: Vec<&'static str> = TLS_SUITES.iter().map(|(_, name)| *name).collect();
    TlsCounts {
        enabled,
        handshakes,
        resumed,
        failed: m.tls_failed.load(Ordering::Relaxed),
        relays: m.tls_relays.load(Ordering::Relaxed),
        handshakes_per_second,
        resumption_ratio: if handshakes == 0 {
            0.0
        } else {
            (resumed as f64 / handshakes as f64 * 1000.0).round() / 1000.0
        },
        failures: load(&m.tls_failures, &TLS_FAILURES),
        versions: load(&m.tls_versions, &TLS_VERSIONS),
        ciphers: load(&m.tls_suites, &suites),
    }
}

/// One site's counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteRow {
    pub name: String,
    pub requests: u64,
    pub body_bytes: u64,
    pub status: Named<u64>,
}

/// The page cache as cache.control publishes it, with the hits counted here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cache {
    #[serde(flatten)]
    pub table: CacheSnapshot,
    /// Requests answered from cached bytes.
    pub hits: u64,
    /// Requests for the document root answered from the disk.
    pub misses: u64,
    pub hits_per_second: f64,
    /// Hits over hits and misses, 0 to 1.
    pub hit_ratio: f64,
}

/// Connection counts, with the names nginx's `stub_status` uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Connections {
    /// Open now.
    pub active: usize,
    /// Accepted since start, including those then refused at the limit.
    pub accepts: u64,
    /// Accepted and served (accepts minus refused).
    pub handled: u64,
    /// Refused at `max_connections` with a 503.
    pub refused: u64,
    /// Waiting for or being read by the front end.
    pub reading: usize,
    /// Being answered by a handler or passing through the recycler.
    pub writing: usize,
    /// Parked in idle.pool between keep-alive requests.
    pub waiting: usize,
    /// Writing, and held by send.pool until a slow reader takes the rest of its answer.
    pub sending: usize,
    /// New connections per second, recently.
    pub per_second: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Requests {
    pub total: u64,
    pub per_second: f64,
    /// Requests per second, one value per second over the last two minutes, oldest first.
    pub per_second_history: Vec<f64>,
    /// By status class: `1xx` … `5xx`.
    pub status: Named<u64>,
    pub handlers: Named<HandlerCount>,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct HandlerCount {
    pub requests: u64,
    pub per_second: f64,
    /// Median and 99th percentile of the whole request (began → written), in microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Bytes {
    pub received: u64,
    pub sent: u64,
    pub body_sent: u64,
    pub sent_per_second: f64,
}

/// One replica of the per-request network (acceptor, idle.pool, front end, static and
/// recycling stages on one core).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replica {
    /// Its number (`replica#N`), and the core its thread is pinned to.
    pub index: usize,
    /// Connections it accepted since start.
    pub accepted: u64,
    /// Its connections open now, wherever they are.
    pub open: usize,
    /// Of them, those not idle: in flight, or parked for at most `spread_idle_ms` (new ones
    /// gather on the busiest replica that holds fewer than `spread_slack` more than the
    /// least busy).
    pub busy: usize,
    /// Requests it read since start.
    pub requests: u64,
    /// Connections parked in its idle pool now.
    pub parked: usize,
}

/// One farm's workers: Apache's per-worker states, counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Farm {
    pub idle: usize,
    /// Working, including `blocked`.
    pub busy: usize,
    /// Busy but waiting on a slow socket.
    pub blocked: usize,
    pub total: usize,
    pub max: usize,
    pub target_idle: usize,
    pub jobs: u64,
    pub jobs_per_second: f64,
    pub forks: u64,
    /// One character per worker slot up to `max`, like Apache's scoreboard:
    /// `R` running, `W` waiting on a socket, `_` idle, `.` no worker.
    pub scoreboard: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub what: &'static str,
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub sum_us: u64,
    /// Count per bucket (see `latency_bounds_us`), not cumulative.
    pub buckets: Vec<u64>,
}

/// The scoreboard string of a farm.
pub fn scoreboard(busy: usize, blocked: usize, idle: usize, max: usize) -> String {
    let running = busy.saturating_sub(blocked);
    let mut board = String::with_capacity(max.max(busy + idle));
    board.extend(std::iter::repeat_n('R', running));
    board.extend(std::iter::repeat_n('W', blocked.min(busy)));
    board.extend(std::iter::repeat_n('_', idle));
    let used = board.len();
    board.extend(std::iter::repeat_n('.', max.saturating_sub(used)));
    board
}

pub fn take(tally: &Tally, out: &StatsOut, stats_enabled: bool) -> Snapshot {
    let now = Instant::now();
    let m = &out.meters;
    let accepted = m.accepted.load(Ordering::Relaxed);
    let refused = m.refused.load(Ordering::Relaxed);
    let farm_jobs: Vec<u64> = out
        .gauges
        .iter()
        .map(|g| g.jobs.load(Ordering::Relaxed))
        .collect();
    let mut current = tally.counters(accepted, farm_jobs);
    current.h2_streams = h2_streams_total(m);
    current.handshakes = m.tls_handshakes.load(Ordering::Relaxed);
    let rates = tally.rates(now, &current);

    let queues = Named(out.queues.iter().map(|p| (p.name, (p.length)())).collect());
    let farms = Named(
        out.gauges
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let idle = g.idle.load(Ordering::Relaxed);
                let busy = g.busy.load(Ordering::Relaxed);
                let blocked = g.blocked.load(Ordering::Relaxed).min(busy);
                let max = g.max.load(Ordering::Relaxed);
                let farm = Farm {
                    idle,
                    busy,
                    blocked,
                    total: g.total.load(Ordering::Relaxed),
                    max,
                    target_idle: g.target_idle.load(Ordering::Relaxed),
                    jobs: current.farm_jobs[i],
                    jobs_per_second: rates.farm_jobs.get(i).copied().unwrap_or(0.0),
                    forks: g.forks.load(Ordering::Relaxed),
                    scoreboard: scoreboard(busy, blocked, idle, max),
                };
                (g.name, farm)
            })
            .collect(),
    );

    let active = m.active.load(Ordering::Relaxed);
    let waiting = m.parked().min(active);
    let front_end_busy = farms.get("front-end").map_or(0, |f| f.busy);
    let reading =
        (front_end_busy + queues.get("front-end").copied().unwrap_or(0)).min(active - waiting);
    let connections = Connections {
        active,
        accepts: accepted + refused,
        handled: accepted,
        refused,
        reading,
        writing: active - waiting - reading,
        waiting,
        sending: m
            .sending
            .load(Ordering::Relaxed)
            .min(active - waiting - reading),
        per_second: rates.accepted,
    };

    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let requests = Requests {
        total: tally.requests,
        per_second: rates.requests,
        per_second_history: tally.history.iter().copied().collect(),
        status: Named(
            classes
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, tally.by_class[i + 1]))
                .collect(),
        ),
        handlers: Named(
            HANDLERS
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    (
                        *h,
                        HandlerCount {
                            requests: tally.by_handler[i],
                            per_second: rates.by_handler[i],
                            p50_us: tally.handler_latency[i].percentiles().p50,
                            p99_us: tally.handler_latency[i].percentiles().p99,
                        },
                    )
                })
                .collect(),
        ),
    };

    let latency = Named(
        tally
            .stages
            .iter()
            .map(|s| {
                let p = s.percentiles();
                let l = Latency {
                    what: s.what,
                    count: s.count,
                    mean_us: s.mean_micros(),
                    p50_us: p.p50,
                    p90_us: p.p90,
                    p99_us: p.p99,
                    max_us: p.max,
                    sum_us: s.sum_micros,
                    buckets: s.buckets.to_vec(),
                };
                (s.name, l)
            })
            .collect(),
    );

    let hits = tally.by_handler[handler_index(Handler::Cache)];
    let misses = tally.by_handler[handler_index(Handler::Static)];
    let cache = Cache {
        table: out.cache.load().as_ref().clone(),
        hits,
        misses,
        hits_per_second: rates.by_handler[handler_index(Handler::Cache)],
        hit_ratio: if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        },
    };

    let now_slot = crate::support::meters::park_slot(std::time::Instant::now());
    let idle_ms = out.live.load().spread_idle_ms;
    Snapshot {
        server: "occwserv",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: tally.started.elapsed().as_secs_f64(),
        stats_enabled,
        connections,
        requests,
        bytes: Bytes {
            received: tally.bytes_in,
            sent: tally.bytes_out,
            body_sent: tally.body_bytes,
            sent_per_second: rates.bytes_out,
        },
        replicas: m
            .replicas
            .iter()
            .map(|r| Replica {
                index: r.core,
                accepted: r.accepted.load(Ordering::Relaxed),
                open: r.open.load(Ordering::Relaxed),
                busy: r.busy(now_slot, idle_ms),
                requests: r.requests.load(Ordering::Relaxed),
                parked: r.parked.load(Ordering::Relaxed),
            })
            .collect(),
        farms,
        queues,
        latency,
        latency_bounds_us: BUCKET_BOUNDS_MICROS.to_vec(),
        cache,
        plugins: out.board.load().as_ref().clone(),
        acme: out
            .live
            .load()
            .acme_state
            .as_ref()
            .map(|board| board.status())
            .unwrap_or_default(),
        h2: {
            let sum = |f: fn(&crate::support::meters::ReplicaGauge) -> u64| -> u64 {
                m.replicas.iter().map(|r| f(r)).sum()
            };
            let streams_total = sum(|r| r.h2_streams_total.load(Ordering::Relaxed));
            let requests = sum(|r| r.requests.load(Ordering::Relaxed));
            H2Counts {
                sessions: sum(|r| r.h2_sessions.load(Ordering::Relaxed) as u64) as usize,
                sessions_total: sum(|r| r.h2_sessions_total.load(Ordering::Relaxed)),
                streams_open: sum(|r| r.h2_streams_open.load(Ordering::Relaxed) as u64) as usize,
                streams_total,
                streams_per_second: rates.h2_streams,
                requests_http1: requests.saturating_sub(streams_total),
                requests_h2: streams_total,
            }
        },
        tls: tls_counts(m, rates.handshakes, out.live.load().tls.enabled()),
        plugins_coded: m.plugin_answers_coded.load(Ordering::Relaxed),
        sites: tally
            .by_site
            .iter()
            .map(|(name, count)| SiteRow {
                name: name.to_string(),
                requests: count.requests,
                body_bytes: count.body_bytes,
                status: Named(
                    classes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (*c, count.by_class[i + 1]))
                        .collect(),
                ),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoreboard_orders_states() {
        assert_eq!(scoreboard(3, 1, 2, 8), "RRW__...");
        assert_eq!(scoreboard(0, 0, 2, 2), "__");
        // A farm shrunk below its live workers by a reload shows them all.
        assert_eq!(scoreboard(2, 0, 1, 2), "RR_");
    }

    #[test]
    fn named_keeps_order_in_json() {
        let named = Named(vec![("b", 1), ("a", 2)]);
        assert_eq!(
            serde_json::to_string(&named).unwrap_or_default(),
            r#"{"b":1,"a":2}"#
        );
    }
}
