//! Live gauges that several processes move and the stats process reads: connection counts
//! and the shutdown flag. Counters per request travel as messages instead (see `ToStats`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// HTTPS connections lent to plug-ins that tls.pump relays now.
    pub tls_relays: AtomicUsize,
}

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

    /// The replica with the fewest open connections, preferring `me` on a tie.
    pub fn least_loaded(&self, me: usize) -> usize {
        let load = |i: usize| {
            self.replicas
                .get(i)
                .map_or(usize::MAX, |r| r.open.load(Ordering::Relaxed))
        };
        let mut best = me;
        for i in 0..self.replicas.len() {
            if load(i) < load(best) {
                best = i;
            }
        }
        best
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
    /// Its connections open now, wherever they are (new connections go to the replica with
    /// the fewest).
    pub open: AtomicUsize,
    /// Requests it read since start.
    pub requests: AtomicU64,
    /// Connections parked in its idle pool now.
    pub parked: AtomicUsize,
}
