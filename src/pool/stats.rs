//! Pool statistics: go-redis `Stats` plus counters go-redis lacks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// A snapshot. Counters only ever increase; `*_conns`, `pending_requests`, `waiting` and
/// `dials_in_progress` are gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gets served by an idle (or handed-over) conn that passed the health check.
    pub hits: u64,
    /// Gets that found no usable idle conn and went on to dial (counted before the dial).
    pub misses: u64,
    /// Gets that ended with `Error::Timeout`.
    pub timeouts: u64,
    /// Gets that had to wait for a turn and then got one.
    pub wait_count: u64,
    /// Always 0, as in go-redis.
    pub unusable: u64,
    /// Total time of the waits counted in `wait_count`.
    pub wait_duration_ns: u64,
    /// Conns the pool owns: idle, checked out, and `new_conn` conns. Dials in flight excluded.
    pub total_conns: u32,
    pub idle_conns: u32,
    /// Conns closed as stale: lifetime, idle time, failed peek, unread data.
    pub stale_conns: u32,
    /// Gets in progress that wait for a turn or for a new conn (a get served at once from
    /// the idle list is never counted here).
    pub pending_requests: u32,
    /// Successful dials.
    pub dials: u64,
    /// Failed dials (all attempts of one dial count once), including background probes.
    pub dial_errors: u64,
    /// Conns closed by `remove` / `close_conn`.
    pub removed_conns: u64,
    /// Conns closed on put because `max_idle_conns` idle conns were already kept.
    pub evicted_conns: u64,
    /// Gets queued for a turn right now.
    pub waiting: u32,
    /// Dials queued or running right now.
    pub dials_in_progress: u32,
    /// Leak detection: conns checked out right now for longer than the threshold.
    pub leak_suspects: u32,
    /// Conns checked out right now (gets and `new_conn`).
    pub in_use_conns: u32,
    /// Leak detection: conns given back after being held longer than the threshold.
    pub late_returns: u64,
    /// Conns whose session commands sent on them changed (subscribe mode, MULTI, WATCH,
    /// SELECT of another db, ...): restored (RESET and the set-up again) by the get that
    /// took them after a put (`health::check_restore`), or closed when given back with
    /// `remove` or to a sticky / single pool.
    pub reset_conns: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub timeouts: AtomicU64,
    pub wait_count: AtomicU64,
    pub wait_duration_ns: AtomicU64,
    pub stale: AtomicU64,
    pub pending: AtomicU32,
    pub dials: AtomicU64,
    pub dial_errors: AtomicU64,
    pub removed: AtomicU64,
    pub evicted: AtomicU64,
    pub late_returns: AtomicU64,
    pub reset: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn fill(&self, s: &mut Stats) {
        s.hits = self.hits.load(Relaxed);
        s.misses = self.misses.load(Relaxed);
        s.timeouts = self.timeouts.load(Relaxed);
        s.wait_count = self.wait_count.load(Relaxed);
        s.wait_duration_ns = self.wait_duration_ns.load(Relaxed);
        s.stale_conns = self.stale.load(Relaxed).min(u32::MAX as u64) as u32;
        s.pending_requests = self.pending.load(Relaxed);
        s.dials = self.dials.load(Relaxed);
        s.dial_errors = self.dial_errors.load(Relaxed);
        s.removed_conns = self.removed.load(Relaxed);
        s.evicted_conns = self.evicted.load(Relaxed);
        s.late_returns = self.late_returns.load(Relaxed);
        s.reset_conns = self.reset.load(Relaxed);
    }
}
