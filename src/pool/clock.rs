//! The conns' own clock: CLOCK_MONOTONIC as plain nanoseconds, so the health check of every
//! get compares integers instead of doing `Instant` arithmetic (checked timespec
//! subtraction). Same time base as `Instant` on Linux; waits and timeouts keep `Instant`.

use std::time::Duration;

/// Nanoseconds since an arbitrary point (boot); never goes backwards.
#[inline]
pub(crate) fn now_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// `clock_id` as plain nanoseconds.
#[inline]
fn read(clock_id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the monotonic clocks used here always
    // exist on Linux (CLOCK_MONOTONIC_COARSE since 2.6.32).
    unsafe { libc::clock_gettime(clock_id, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A duration in nanoseconds, saturating (u64 nanoseconds last 584 years).
#[inline]
pub(crate) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// CLOCK_MONOTONIC_COARSE: the same clock as `now_ns`, read from the last timer tick
/// (a few ns instead of ~20, but up to one tick, typically 1-4 ms, behind).
#[inline]
pub(crate) fn now_coarse_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

/// How far the coarse clock may lag, in nanoseconds (its resolution); u64::MAX when it
/// cannot be read.
pub(crate) fn coarse_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } != 0 {
        return u64::MAX;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// A health-check threshold must be at least this many coarse ticks long for the pool
/// to read the coarse clock on its hot path: its error is then at most 2 %.
pub(crate) const COARSE_TICKS_PER_THRESHOLD: u64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_follows_the_precise_one_within_its_resolution() {
        let res = coarse_resolution_ns();
        assert!(res > 0 && res <= 100_000_000, "resolution {res} ns");
        for _ in 0..1000 {
            let coarse = now_coarse_ns();
            let precise = now_ns();
            // Same time base: the coarse reading lags by at most one tick (plus the
            // time between the two calls, and rounding).
            assert!(coarse <= precise + 1_000, "{coarse} vs {precise}");
            assert!(
                precise - coarse <= res + 50_000_000,
                "{coarse} vs {precise}"
            );
        }
    }
}
