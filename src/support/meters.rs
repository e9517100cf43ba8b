//! Live gauges that several processes move and the stats process reads: connection counts
//! and the shutdown flag. Counters per request travel as messages instead (see `ToStats`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Connection gauges and the stop flag, shared by acceptor, idle.pool, recycler and stats.
#[derive(Debug, Default)]
pub struct Meters {
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused at the limit (503).
    pub refused: AtomicU64,
    /// Connections open now.
    pub active: AtomicUsize,
    /// Connections parked in idle.pool now.
    pub parked: AtomicUsize,
    /// Connections whose answer send.pool is finishing now (slow readers).
    pub sending: AtomicUsize,
    /// Requests being read or answered now (not parked).
    pub in_flight: AtomicUsize,
    /// Set on SIGTERM: stop accepting and close connections after their current response.
    pub draining: AtomicBool,
}

impl Meters {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
