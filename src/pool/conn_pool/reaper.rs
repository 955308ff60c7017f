//! The reaper: closes stale idle conns (idle or alive for too long) every
//! `reaper_interval` (go-redis `reapStaleConns`).

use super::*;

pub(super) fn reaper_loop(weak: Weak<Inner>, every: Duration) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        inner.sleep_unless_closed(every);
        let stale = {
            let mut st = inner.state.lock();
            if st.closed {
                return;
            }
            // Parked conns join the idle list first, so their age is looked at too.
            let mut closed = inner.unpark_all(&mut st);
            let mut stale = inner.reap(&mut st);
            stale.append(&mut closed);
            stale
        };
        drop(stale);
    }
}

impl Inner {
    /// Closes idle conns past their idle time or lifetime; returns what to drop.
    pub(super) fn reap(self: &Arc<Self>, st: &mut State) -> Vec<Conn> {
        let now = clock::now_ns();
        let max_idle = self.limits.max_idle_ns;
        let mut stale = Vec::new();
        let mut keep = VecDeque::with_capacity(st.idle.len());
        for conn in st.idle.drain(..) {
            if health::check_age(&conn, now, max_idle).is_ok() {
                keep.push_back(conn);
            } else {
                stale.push(conn);
            }
        }
        st.idle = keep;
        for conn in &mut stale {
            Counters::inc(&self.counters.stale);
            // User data is freed on a user thread, never on this one.
            if let Some(ud) = conn.take_userdata_box() {
                st.deferred_userdata.push(ud);
            }
        }
        self.refill(st);
        stale
    }
}
