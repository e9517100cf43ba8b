//! Live gauges that several processes move and the stats process reads: connection counts
//! and the shutdown flag. Counters per request travel as messages instead (see `ToStats`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Width of one place in a replica's record of recent parks, in milliseconds.
pub const PARK_SLOT_MS: u64 = 10;
/// Places in that record: `spread_idle_ms` can reach back this far (300 ms).
pub const PARK_SLOTS: usize = 30;
/// Bits of a place that hold its count; the rest hold the slot number it counts for.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The slot (of `PARK_SLOT_MS`, counted from the first call) that instant `t` falls in.
pub fn park_slot(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let ms = t.saturating_duration_since(epoch).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX) / PARK_SLOT_MS
}

/// Connection gauges and the stop flag, shared by acceptor, idle.pool, recycler and stats.
#[derive(Debug, Default)]
pub struct Meters {
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused at the limit (503).
    pub refused: AtomicU64,
    /// Connections open now.
    pub active: AtomicUsize,
    /// Each replica's own gauges (written only by that replica, each on its own cache line).
    pub replicas: Vec<Arc<ReplicaGauge>>,
    /// Connections whose answer send.pool is finishing now (slow readers).
    pub sending: AtomicUsize,
    /// Requests being read or answered now (not parked).
    pub in_flight: AtomicUsize,
    /// Set on SIGTERM: stop accepting and close connections after their current response.
    pub draining: AtomicBool,
    /// TLS handshakes completed (counted at a connection's first request), of them resumed
    /// (ticket or session ID), and handshakes refused (a bad ClientHello, or a stall past
    /// `header_timeout_secs`).
    pub tls_handshakes: AtomicU64,
    pub tls_resumed: AtomicU64,
    pub tls_failed: AtomicU64,
    /// Connections lent to plug-ins that tls.pump relays now (HTTPS, or a plug-in's answer
    /// being compressed).
    pub tls_relays: AtomicUsize,
    /// Plug-in answers sent compressed (tls.pump's coder), since start.
    pub plugin_answers_coded: AtomicU64,
    /// Failed handshakes by reason, in `TLS_FAILURES` order.
    pub tls_failures: [AtomicU64; TLS_FAILURES.len()],
    /// Completed handshakes by version, in `TLS_VERSIONS` order.
    pub tls_versions: [AtomicU64; TLS_VERSIONS.len()],
    /// Completed handshakes by cipher suite, in `TLS_SUITES` order.
    pub tls_suites: [AtomicU64; TLS_SUITES.len()],
}

/// Why a TLS handshake failed: the keys of `/stats.json` `tls.failures`.
/// `timeout`: not finished within `header_timeout_secs`; `not_tls`: the bytes were not TLS
/// records at all (plain HTTP to the HTTPS port, say); `bad_message`: a malformed or
/// unexpected handshake message; `incompatible`: no version, cipher suite, group or
/// signature scheme in common; `client_alert`: the client gave up with an alert (such as
/// `unknown_ca`); `misbehaved`: the client broke the protocol; `other`: anything else.
pub const TLS_FAILURES: [&str; 7] = [
    "timeout",
    "not_tls",
    "bad_message",
    "incompatible",
    "client_alert",
    "misbehaved",
    "other",
];

/// The versions the HTTPS listener speaks: the keys of `tls.versions`.
pub const TLS_VERSIONS: [&str; 2] = ["tls1_3", "tls1_2"];

/// The cipher suites the HTTPS listener offers (rustls with ring), by IANA name: the keys of
/// `tls.ciphers`.
pub const TLS_SUITES: [(rustls::CipherSuite, &str); 9] = [
    (
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

impl Meters {
    /// Meters for a network of `replicas` replicas.
    pub fn with_replicas(replicas: usize) -> Meters {
        Meters {
            replicas: (0..replicas)
                .map(|core| {
                    Arc::new(ReplicaGauge {
                        core,
                        ..ReplicaGauge::default()
                    })
                })
                .collect(),
            ..Meters::default()
        }
    }

    /// A handshake failed for `reason` (one of `TLS_FAILURES`; anything else counts as `other`).
    pub fn tls_failed(&self, reason: &str) {
        self.tls_failed.fetch_add(1, Ordering::Relaxed);
        let at = TLS_FAILURES
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(TLS_FAILURES.len() - 1);
        self.tls_failures[at].fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake completed: counted by resumption, version and cipher suite.
    pub fn tls_completed(&self, tls: &rustls::ServerConnection) {
        self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        if tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.tls_resumed.fetch_add(1, Ordering::Relaxed);
        }
        let version = match tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some(0),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some(1),
            _ => None,
        };
        if let Some(at) = version {
            self.tls_versions[at].fetch_add(1, Ordering::Relaxed);
        }
        let suite = tls.negotiated_cipher_suite().map(|s| s.suite());
        if let Some(at) = TLS_SUITES.iter().position(|(s, _)| Some(*s) == suite) {
            self.tls_suites[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Replica `index`'s gauges (a spare one for an index out of range).
    pub fn replica(&self, index: usize) -> Arc<ReplicaGauge> {
        self.replicas.get(index).cloned().unwrap_or_default()
    }

    /// A connection of replica `index` is closed.
    pub fn closed(&self, index: usize) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        if let Some(replica) = self.replicas.get(index) {
            replica.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The replica a connection accepted by `me` should live on: the busiest replica that
    /// still holds fewer than `slack` more busy connections than the least busy one (`me`
    /// when it is among the busiest). A few connections thus gather on one core, whichever
    /// replica the kernel woke for each: that replica stays busy instead of sleeping between
    /// requests, and the other cores stay free for other work. Many spread over all, none
    /// more than `slack` above the least loaded. A connection parked for longer than
    /// `idle_ms` (0: never) is idle and does not count (`ReplicaGauge::busy`).
    pub fn home_for(&self, me: usize, slack: usize, idle_ms: u64) -> usize {
        let now = park_slot(Instant::now());
        let loads: Vec<usize> = self.replicas.iter().map(|r| r.busy(now, idle_ms)).collect();
        let Some(&least) = loads.iter().min() else {
            return me;
        };
        let load = |i: usize| loads.get(i).copied().unwrap_or(usize::MAX);
        let room = least.saturating_add(slack.max(1));
        // (A gauge may move while it is read: the choice is then one connection off.)
        let mut best = (load(me) < room).then_some(me);
        for (i, &n) in loads.iter().enumerate() {
            if n < room && best.is_none_or(|b| n > load(b)) {
                best = Some(i);
            }
        }
        best.unwrap_or(me)
    }

    /// Connections parked in the replicas' idle pools now.
    pub fn parked(&self) -> usize {
        self.replicas
            .iter()
            .map(|r| r.parked.load(Ordering::Relaxed))
            .sum()
    }
}

/// One replica's live gauges.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ReplicaGauge {
    /// Its number.
    pub core: usize,
    /// Connections it took since start (accepted, or adopted from a busier replica).
    pub accepted: AtomicU64,
    /// Its connections open now, wherever they are (balancing new connections reads it).
    pub open: AtomicUsize,
    /// Requests it read since start.
    pub requests: AtomicU64,
    /// Connections parked in its idle pool now.
    pub parked: AtomicUsize,
    /// HTTP/2 sessions open now, and since start.
    pub h2_sessions: AtomicUsize,
    pub h2_sessions_total: AtomicU64,
    /// HTTP/2 streams open now, and streams dispatched since start (each also in `requests`).
    pub h2_streams_open: AtomicUsize,
    pub h2_streams_total: AtomicU64,
    /// Connections parked lately, by the slot they were parked in: place `slot % PARK_SLOTS`
    /// holds the slot number (high bits) and how many parked in it are parked still.
    pub parks: [AtomicU64; PARK_SLOTS],
}

impl ReplicaGauge {
    /// Its replica parked a connection in `slot` (only that replica writes these).
    pub fn parked_in(&self, slot: u64) {
        let Some(place) = self.parks.get((slot % PARK_SLOTS as u64) as usize) else {
            return;
        };
        let was = place.load(Ordering::Relaxed);
        let count = if was >> COUNT_BITS == slot {
            ((was & COUNT_MASK) + 1).min(COUNT_MASK)
        } else {
            1
        };
        place.store(slot << COUNT_BITS | count, Ordering::Relaxed);
    }

    /// A connection parked in `slot` left the idle pool.
    pub fn unparked_from(&self, slot: u64) {
        let Some(place) = self.parks.get((slot % PARK_SLOTS as u64) as usize) else {
            return;
        };
        let was = place.load(Ordering::Relaxed);
        if was >> COUNT_BITS == slot && was & COUNT_MASK > 0 {
            place.store(was - 1, Ordering::Relaxed);
        }
    }

    /// Its busy connections at slot `now`: open ones, less those parked for longer than
    /// `idle_ms` (0: all open ones count).
    pub fn busy(&self, now: u64, idle_ms: u64) -> usize {
        let open = self.open.load(Ordering::Relaxed);
        if idle_ms == 0 {
            return open;
        }
        let window = idle_ms.div_ceil(PARK_SLOT_MS).min(PARK_SLOTS as u64);
        let recent: u64 = self
            .parks
            .iter()
            .map(|place| place.load(Ordering::Relaxed))
            .filter(|was| now.saturating_sub(was >> COUNT_BITS) < window)
            .map(|was| was & COUNT_MASK)
            .sum();
        let recent = usize::try_from(recent).unwrap_or(usize::MAX);
        let parked = self.parked.load(Ordering::Relaxed);
        open.saturating_sub(parked.saturating_sub(recent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_loads(loads: &[usize]) -> Meters {
        let meters = Meters::with_replicas(loads.len());
        for (gauge, &n) in meters.replicas.iter().zip(loads) {
            gauge.open.store(n, Ordering::Relaxed);
        }
        meters
    }

    #[test]
    fn a_new_connection_joins_the_busiest_replica_within_the_slack() {
        // Whichever replica accepted it, it goes to the busiest one still in the slack.
        assert_eq!(with_loads(&[0, 0]).home_for(1, 16, 20), 1);
        assert_eq!(with_loads(&[3, 0]).home_for(1, 16, 20), 0);
        assert_eq!(with_loads(&[15, 0]).home_for(1, 16, 20), 0);
        assert_eq!(with_loads(&[2, 5, 4]).home_for(0, 16, 20), 1);
        // Full: the busiest is `slack` above the least, so the next goes elsewhere.
        assert_eq!(with_loads(&[16, 0]).home_for(0, 16, 20), 1);
        assert_eq!(with_loads(&[16, 3, 1]).home_for(0, 3, 20), 1);
        // A slack of 1 spreads evenly, to the least loaded.
        assert_eq!(with_loads(&[1, 0]).home_for(0, 1, 20), 1);
        assert_eq!(with_loads(&[4, 4, 3]).home_for(1, 1, 20), 2);
        assert_eq!(with_loads(&[4, 4]).home_for(1, 1, 20), 1);
    }

    #[test]
    fn idle_connections_do_not_count_and_busy_ones_do() {
        let meters = with_loads(&[5015, 5000]);
        let (a, b) = (&meters.replicas[0], &meters.replicas[1]);
        // Replica 0 holds 5,015 connections, all parked long ago; replica 1 holds 5,000, of
        // which 4,990 are parked long ago.
        a.parked.store(5015, Ordering::Relaxed);
        b.parked.store(4990, Ordering::Relaxed);
        assert_eq!(meters.home_for(0, 16, 20), 1, "the busy ones gather");
        assert_eq!(
            meters.home_for(0, 16, 0),
            0,
            "counted by open, 0 is the busiest"
        );
        // Three more on replica 0 were parked just now, one of them has left since: two busy.
        let now = park_slot(Instant::now());
        for _ in 0..3 {
            a.parked_in(now);
        }
        a.unparked_from(now);
        a.parked.store(5017, Ordering::Relaxed);
        a.open.store(5018, Ordering::Relaxed);
        assert_eq!(a.busy(now, 20), 3, "one in flight, two parked lately");
        assert_eq!(a.busy(now + 1, 20), 3);
        assert_eq!(
            a.busy(now + 2, 20),
            1,
            "20 ms later the two parked are idle"
        );
        assert_eq!(a.busy(now, 0), 5018);
        // A place reused by a later slot forgets the earlier one's count.
        a.parked_in(now + PARK_SLOTS as u64);
        assert_eq!(a.busy(now + PARK_SLOTS as u64, 20), 2);
    }

    #[test]
    fn connections_opened_one_by_one_fill_one_replica_then_stay_within_the_slack() {
        let meters = with_loads(&[0, 0, 0]);
        for k in 0..200 {
            let home = meters.home_for(k % 3, 8, 20);
            if let Some(gauge) = meters.replicas.get(home) {
                gauge.open.fetch_add(1, Ordering::Relaxed);
            }
            let loads: Vec<usize> = meters
                .replicas
                .iter()
                .map(|g| g.open.load(Ordering::Relaxed))
                .collect();
            let (most, least) = (loads.iter().max(), loads.iter().min());
            assert!(
                most.zip(least).is_some_and(|(m, l)| m - l <= 8),
                "{loads:?}"
            );
            if k < 8 {
                assert_eq!(loads.iter().filter(|&&n| n > 0).count(), 1, "{loads:?}");
            }
        }
    }
}
