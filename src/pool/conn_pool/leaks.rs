//! Leak detection: conns checked out longer than `leak_detection_threshold`.

use super::*;

impl ConnPool {
    /// The conn ids checked out for longer than `leak_detection_threshold`, with how long
    /// each has been held, longest first; None when leak detection is off.
    pub fn leaks(&self) -> Option<Vec<(u64, Duration)>> {
        let mut list = self.inner().held_too_long()?;
        list.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(list)
    }
}

impl Inner {
    /// Leak detection: the conns checked out longer than the threshold, with how long each
    /// has been held (unordered); None when leak detection is off.
    pub(super) fn held_too_long(&self) -> Option<Vec<(u64, Duration)>> {
        let (threshold, out) = self
            .opts
            .leak_detection_threshold
            .zip(self.leaks.as_ref())?;
        let now = Instant::now();
        let held = out
            .lock()
            .iter()
            .map(|(&id, &since)| (id, now.saturating_duration_since(since)))
            .filter(|&(_, held)| held > threshold)
            .collect();
        Some(held)
    }

    /// Leak detection: notes when `conn` was handed out.
    #[inline]
    pub(super) fn track(&self, conn: &Conn) {
        if let Some(out) = &self.leaks {
            out.lock().insert(conn.id(), Instant::now());
        }
    }

    /// Leak detection: `conn` is back; counts it when it was held too long.
    #[inline]
    pub(super) fn untrack(&self, conn: &Conn) {
        if self.leaks.is_none() {
            return;
        }
        self.untrack_slow(conn);
    }

    #[cold]
    pub(super) fn untrack_slow(&self, conn: &Conn) {
        let (Some(out), Some(threshold)) = (&self.leaks, self.opts.leak_detection_threshold) else {
            return;
        };
        if let Some(since) = out.lock().remove(&conn.id()) {
            if since.elapsed() > threshold {
                Counters::inc(&self.counters.late_returns);
            }
        }
    }
}
