//! The fast-fail probe: after `pool_size` dial failures in a row gets fail at once, and
//! one background dial at a time tries again until it succeeds (go-redis `tryDial`).

use super::*;

pub(super) fn probe_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::Acquire) {
            inner.state.lock().probe_running = false;
            return;
        }
        match inner.dial_once(true) {
            Ok(conn) => {
                let mut st = inner.state.lock();
                st.dial_failures = 0;
                st.probe_running = false;
                Counters::inc(&inner.counters.dials);
                // The probe's conn is kept when there is room, not wasted.
                if !st.closed
                    && inner.is_current(&conn)
                    && st.total() + st.dials_pending < inner.opts.pool_size
                {
                    st.idle.push_back(conn);
                    inner.refill(&mut st);
                    drop(st);
                    inner.notify.signal();
                } else {
                    drop(st);
                    drop(conn);
                }
                return;
            }
            Err(e) => {
                let mut st = inner.state.lock();
                Counters::inc(&inner.counters.dial_errors);
                st.last_dial_error = Some(e);
            }
        }
        inner.sleep_unless_closed(inner.opts.dial_probe_interval);
    }
}

impl Inner {
    pub(super) fn start_probe(self: &Arc<Self>, st: &mut State) {
        let weak = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("redispool-probe".into())
            .spawn(move || probe_loop(weak));
        st.probe_running = spawned.is_ok();
    }
}
