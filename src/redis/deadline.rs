//! Deadlines: when an operation must be over. One concept for every layer: a call computes
//! its deadline once, before any I/O, and passes it down, so nothing that happens meanwhile
//! (a slow resolver, a push frame, a retry) starts a fresh timeout.
//!
//! `Deadline` carries the timeout it came from, for error messages (the conn's I/O in
//! `io`). The dial path and the sentinel client pass a bare `Instant` (`Option<Instant>`,
//! None = unbounded) and ask `time_left` / `left` how long a blocking call may take.

use std::io;
use std::time::{Duration, Instant};

/// When an operation must be over, and the timeout it came from (for the error message).
/// A call computes its deadlines once, before any I/O, and passes them down: nothing that
/// arrives meanwhile (a push, a slow trickle) starts a fresh timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub(super) at: Instant,
    pub(super) timeout: Duration,
}

impl Deadline {
    /// `None` for no timeout, and for one so large that the deadline is not representable
    /// (which is as good as none).
    pub fn after(timeout: Option<Duration>) -> Option<Self> {
        Self::after_from(Instant::now(), timeout)
    }

    /// `after`, counted from `now` (one clock read for several deadlines).
    pub fn after_from(now: Instant, timeout: Option<Duration>) -> Option<Self> {
        let timeout = timeout?;
        Some(Deadline {
            at: now.checked_add(timeout)?,
            timeout,
        })
    }

    /// The deadline `at`, reported as a timeout of `timeout`.
    pub fn at(at: Instant, timeout: Duration) -> Self {
        Deadline { at, timeout }
    }

    /// When it passes.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The earlier of two deadlines (None = none).
    pub fn earliest(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
            (a, None) => a,
            (None, b) => b,
        }
    }

    pub fn passed(deadline: Option<Self>) -> bool {
        deadline.is_some_and(|d| Instant::now() >= d.at)
    }
}

/// `now + timeout`; None for no timeout or one too large to represent (as good as none).
pub fn instant_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// `timeout` from now, always a deadline: one too large for the clock is as good as a
/// century (for loops that must always have an end, such as the sentinel watcher's).
pub fn bounded_instant_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The time left before `deadline`; None once it has passed (no time left is none).
pub fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|r| !r.is_zero())
}

/// The time left before `deadline` (None = unbounded), or a dial timeout once it passed.
pub fn time_left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => match left(d) {
            Some(r) => Ok(Some(r)),
            None => Err(io::Error::new(io::ErrorKind::TimedOut, "dial timeout")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_unbounded_positive_or_a_timeout() {
        assert_eq!(time_left(None).unwrap(), None);
        let soon = instant_after(Some(Duration::from_secs(60))).unwrap();
        let t = time_left(Some(soon)).unwrap().unwrap();
        assert!(
            t > Duration::from_secs(30) && t <= Duration::from_secs(60),
            "{t:?}"
        );
        let past = Instant::now();
        assert_eq!(left(past), None);
        let e = time_left(Some(past)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn too_large_a_timeout_is_none_or_a_century() {
        assert_eq!(instant_after(None), None);
        assert_eq!(instant_after(Some(Duration::MAX)), None);
        assert_eq!(Deadline::after(Some(Duration::MAX)), None);
        let far = bounded_instant_after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(50 * 365 * 24 * 3600));
    }

    #[test]
    fn earliest_and_passed() {
        let now = Instant::now();
        let a = Deadline::at(now + Duration::from_secs(1), Duration::from_secs(1));
        let b = Deadline::at(now + Duration::from_secs(2), Duration::from_secs(2));
        assert_eq!(Deadline::earliest(Some(b), Some(a)), Some(a));
        assert_eq!(Deadline::earliest(None, Some(b)), Some(b));
        assert_eq!(Deadline::earliest(None, None), None);
        assert!(!Deadline::passed(None));
        assert!(Deadline::passed(Some(Deadline::at(now, Duration::ZERO))));
    }
}
