//! `pool_stats_t`: go-redis `Stats` plus counters go-redis lacks, appended over time.

use std::mem::offset_of;

use super::castable::{Versioned, out_size, write_versioned};
use super::status::{POOL_ERR_INVALID_ARG, POOL_OK, pool_status_t};
use crate::pool::Stats;

/// A stats snapshot. Counters only increase; `*_conns`, `pending_requests`, `waiting` and
/// `dials_in_progress`, `leak_suspects` and `in_use_conns` are gauges.
#[repr(C)]
pub struct pool_stats {
    /// Set to sizeof(pool_stats_t) (or 0) before pool_stats; set to the bytes written after.
    pub struct_size: usize,
    /// Gets served by an idle or handed-over conn that passed the health check.
    pub hits: u64,
    /// Gets that found no usable idle conn and went on to dial (counted before the dial).
    pub misses: u64,
    /// Gets that returned POOL_ERR_TIMEOUT.
    pub timeouts: u64,
    /// Gets that waited for a turn and got one.
    pub wait_count: u64,
    /// Always 0, as in go-redis.
    pub unusable: u64,
    /// Total duration of the waits counted in wait_count.
    pub wait_duration_ns: u64,
    /// Conns the pool owns (idle, checked out, pool_new_conn conns); dials in flight excluded.
    pub total_conns: u32,
    /// Idle conns.
    pub idle_conns: u32,
    /// Conns closed as stale: lifetime, idle time, failed peek (EOF, error, unread bytes).
    pub stale_conns: u32,
    /// Gets in progress that wait for a turn or for a new conn (a get served at once from
    /// the idle list is never counted here).
    pub pending_requests: u32,
    /// Successful dials.
    pub dials: u64,
    /// Failed dials (all attempts of one dial count once), including background probes.
    pub dial_errors: u64,
    /// Conns closed by pool_remove / pool_close_conn.
    pub removed_conns: u64,
    /// Conns closed on put because max_idle_conns were already idle.
    pub evicted_conns: u64,
    /// Gets queued for a turn right now.
    pub waiting: u32,
    /// Dials queued or running right now.
    pub dials_in_progress: u32,
    /// Leak detection: conns checked out right now for longer than
    /// leak_detection_threshold_ms (0 when it is off). A gauge.
    pub leak_suspects: u32,
    /// Conns checked out right now (from pool_get and pool_new_conn). A gauge.
    pub in_use_conns: u32,
    /// Leak detection: conns given back (put or removed) after being checked out for
    /// longer than leak_detection_threshold_ms.
    pub late_returns: u64,
    /// Conns whose session commands sent on them (pool_conn_command, pool_conn_pipeline)
    /// changed from the one the pool set up, and that were restored before the next user
    /// got them: SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE (subscribe mode), MULTI without
    /// EXEC/DISCARD, WATCH without EXEC/DISCARD/UNWATCH, SELECT of another db, CLIENT REPLY
    /// OFF, CLIENT TRACKING ON, HELLO, AUTH, RESET, pool_conn_keep_pushes,
    /// pool_conn_session_changed. pool_put pools such a conn, and the get that takes it
    /// sends PING, RESET (Redis 6.2+) and the set-up (HELLO / AUTH /
    /// SELECT / CLIENT SETNAME) in one write, drops whatever came before RESET's reply
    /// (messages, unread replies), and hands it out (about 30 us on loopback, against
    /// over 1 ms for closing it and dialing a new one); a conn that cannot be restored (no
    /// RESET before Redis 6.2, a timeout), or one met by pool_try_get (which never waits
    /// for a reply), is closed and counted in stale_conns. Also
    /// counted: such conns given back with pool_remove (then in removed_conns too), or
    /// to a sticky or single pool (closed). Raw I/O on pool_conn_fd is not tracked (see
    /// pool_conn_fd).
    pub reset_conns: u64,
}

pub type pool_stats_t = pool_stats;

// The snapshot is copied out byte for byte, so the struct must have no padding (whose
// bytes would be undefined): 8 + 6*8 + 4*4 + 4*8 + 4*4 + 2*8.
const _: () = assert!(size_of::<pool_stats>() == 136);

// SAFETY: repr(C), struct_size first; every field is an integer.
unsafe impl Versioned for pool_stats {
    const NAME: &'static str = "pool_stats_t";
    const HINT: &'static str = "set it to sizeof(pool_stats_t) or 0";
    /// The first version's fields end at `pending_requests`.
    const MIN_SIZE: usize = offset_of!(pool_stats, pending_requests) + size_of::<u32>();
    fn defaults() -> Self {
        snapshot(&Stats::default(), size_of::<pool_stats>())
    }
}

/// # Safety
/// `out` is NULL or writable for its `struct_size` bytes (0 meaning the full struct).
pub(crate) unsafe fn write_stats(s: &Stats, out: *mut pool_stats_t) -> pool_status_t {
    if out.is_null() {
        return POOL_ERR_INVALID_ARG;
    }
    // SAFETY: non-NULL; writable for its struct_size per contract.
    let size = unsafe { out_size(out) };
    // SAFETY: as above.
    match unsafe { write_versioned(snapshot(s, size), out, size) } {
        Ok(_) => POOL_OK,
        Err(_) => POOL_ERR_INVALID_ARG,
    }
}

fn snapshot(s: &Stats, n: usize) -> pool_stats {
    pool_stats {
        struct_size: n,
        hits: s.hits,
        misses: s.misses,
        timeouts: s.timeouts,
        wait_count: s.wait_count,
        unusable: s.unusable,
        wait_duration_ns: s.wait_duration_ns,
        total_conns: s.total_conns,
        idle_conns: s.idle_conns,
        stale_conns: s.stale_conns,
        pending_requests: s.pending_requests,
        dials: s.dials,
        dial_errors: s.dial_errors,
        removed_conns: s.removed_conns,
        evicted_conns: s.evicted_conns,
        waiting: s.waiting,
        dials_in_progress: s.dials_in_progress,
        leak_suspects: s.leak_suspects,
        in_use_conns: s.in_use_conns,
        late_returns: s.late_returns,
        reset_conns: s.reset_conns,
    }
}
