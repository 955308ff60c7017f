//! The conns' own clock: CLOCK_MONOTONIC as plain nanoseconds, so the health check of every
//! get compares integers instead of doing `Instant` arithmetic (checked timespec
//! subtraction). Same time base as `Instant` on Linux; waits and timeouts keep `Instant`.

use std::time::Duration;

/// Nanoseconds since an arbitrary point (boot); never goes backwards.
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A duration in nanoseconds, saturating (u64 nanoseconds last 584 years).
#[inline]
pub(crate) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
