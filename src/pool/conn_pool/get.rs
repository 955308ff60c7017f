//! The get path: an idle conn (health-checked), a turn, a place in the queue, and the
//! pool's timeout and exhaustion errors.

use super::*;

/// A get counted in `Stats::pending_requests` while it lives.
struct Pending<'a>(&'a Counters);

impl<'a> Pending<'a> {
    fn new(counters: &'a Counters) -> Self {
        counters.pending.fetch_add(1, Ordering::Relaxed);
        Pending(counters)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    pub(super) fn get_conn(
        self: &Arc<Self>,
        wait: Wait,
        cancel: Option<&CancelToken>,
    ) -> Result<Conn> {
        if cancel.is_some_and(|c| c.is_fired()) {
            return Err(Error::Canceled);
        }
        // The clock is read only off the fast path: a wait or a dial starts the timeout.
        let mut began: Began = None;
        // The uncontended path: this thread's parked conn, no lock (`bag`).
        let mut over = None;
        if let Some(conn) = self.claim_parked(wait, &mut began, &mut over) {
            return Ok(conn);
        }
        if let Some(e) = over {
            return Err(e);
        }
        // Counted in `pending_requests` once it waits or dials: a get served at once
        // stays off that gauge (and its shared cache line).
        let mut pending: Option<Pending<'_>> = None;
        let mut handed = None;
        {
            let mut st = self.state.lock();
            if st.closed {
                return Err(Error::Closed);
            }
            if (st.waiters.is_empty() || self.may_overtake(&st))
                && st.turns_used < self.opts.pool_size
            {
                st.turns_used += 1;
                // Fast path: the idle conn comes in the same critical section as the turn.
                handed = self
                    .pop_idle(&mut st)
                    .or_else(|| self.steal_parked(&mut st))
                    .map(|c| (c, false));
                if handed.is_some() {
                    self.refill(&mut st);
                }
            } else if let Some(conn) = self.steal_before_wait(&mut st) {
                // A conn parked by another thread, with its turn: no wait.
                handed = Some((conn, false));
            } else {
                pending = Some(Pending::new(&self.counters));
                let start = Instant::now();
                let deadline = wait.deadline_from(start);
                began = Some((start, deadline));
                if wait == Wait::NoWait {
                    return Err(self.timeout_error(&st, start, ""));
                }
                let queued_at = if self.overtake_ns != 0 {
                    clock::now_ns()
                } else {
                    0
                };
                let mut again = false;
                let grant = loop {
                    let w = Waiter::acquire();
                    w.set_queued_at(queued_at);
                    if again {
                        // Overtaken after a Retry: still the oldest, so first in line.
                        st.waiters.push_front(w.clone());
                    } else {
                        st.waiters.push_back(w.clone());
                    }
                    drop(st);
                    let grant = self.wait_for(&w, deadline, cancel, start, "");
                    Waiter::recycle(w);
                    if !matches!(grant, Ok(Grant::Retry)) {
                        break grant;
                    }
                    st = self.state.lock();
                    match self.take_after_retry(&mut st)? {
                        Some((grant, wake)) => {
                            drop(st);
                            drop(wake);
                            break Ok(grant);
                        }
                        None => again = true,
                    }
                };
                match grant? {
                    Grant::Conn(conn, fresh) => handed = Some((conn, fresh)),
                    Grant::Turn => {}
                    Grant::Failed(e) => return Err(e),
                    Grant::Retry => unreachable!("a Retry is looked at in the loop above"),
                }
                Counters::inc(&self.counters.wait_count);
                self.counters
                    .wait_duration_ns
                    .fetch_add(nanos(start.elapsed()), Ordering::Relaxed);
            }
        }
        // This get holds a turn from here on.
        loop {
            let (conn, fresh) = match handed.take() {
                Some(c) => c,
                None => {
                    let mut st = self.state.lock();
                    if st.closed {
                        st.turns_used -= 1;
                        return Err(Error::Closed);
                    }
                    let popped = self
                        .pop_idle(&mut st)
                        .or_else(|| self.steal_parked(&mut st));
                    self.refill(&mut st);
                    match popped {
                        Some(c) => (c, false),
                        None => break,
                    }
                }
            };
            if fresh {
                Counters::inc(&self.counters.hits);
                return Ok(conn);
            }
            if let Some(conn) = self.check_health(conn, Some((wait, &mut began))) {
                return Ok(conn);
            }
            // A PING check that ran out the get's own deadline ends the get: no other
            // conn is looked at, no dial is started for a get that is over.
            if let (Wait::For(_), Some((start, Some(deadline)))) = (wait, began)
                && Instant::now() >= deadline
            {
                let mut st = self.state.lock();
                self.release_turn(&mut st);
                return Err(self.timeout_error(&st, start, " checking idle connections"));
            }
        }
        Counters::inc(&self.counters.misses);
        let _pending = pending.unwrap_or_else(|| Pending::new(&self.counters));
        let (start, deadline) = began.unwrap_or_else(|| {
            let start = Instant::now();
            (start, wait.deadline_from(start))
        });
        self.dial_for_get(start, deadline, wait, cancel)
    }

    /// Pops the idle list (LIFO or FIFO) and counts the conn as checked out.
    pub(super) fn pop_idle(&self, st: &mut State) -> Option<Conn> {
        let mut conn = if self.opts.pool_fifo {
            st.idle.pop_front()
        } else {
            st.idle.pop_back()
        }?;
        st.checked_out += 1;
        st.hits = st.hits.wrapping_add(1);
        st.sweep.stamp(&mut conn);
        Some(conn)
    }

    /// A put while gets wait (kept out of line: the put of an uncontended pool never
    /// comes here). While they may be overtaken, the conn goes idle for whoever comes
    /// first and one waiter is woken to look (`Handed::Idle`); otherwise it goes to the
    /// oldest waiter (`Handed::Waiter`). Gives the conn back when no waiter still waits.
    #[inline(never)]
    pub(super) fn hand_over(
        &self,
        st: &mut State,
        mut conn: Conn,
    ) -> std::result::Result<Handed, Conn> {
        let max_idle = self.opts.max_idle_conns;
        if self.overtake_open(st) && (max_idle == 0 || st.idle.len() < max_idle) {
            st.checked_out -= 1;
            st.turns_used -= 1;
            st.idle.push_back(conn);
            return Ok(Handed {
                _wake: self.nudge(st),
                went_idle: true,
            });
        }
        // Stamped for the waiter, as a get stamps the conn it pops (`pop_idle`).
        st.sweep.stamp(&mut conn);
        match hand_to_oldest_later(&mut st.waiters, Grant::Conn(conn, false)) {
            Ok(wake) => {
                st.hits = st.hits.wrapping_add(1);
                Ok(Handed {
                    _wake: Some(wake),
                    went_idle: false,
                })
            }
            Err(Grant::Conn(conn, _)) => Err(conn),
            Err(_) => unreachable!("a grant comes back as it went"),
        }
    }

    /// Whether a get may take an idle conn ahead of the queued gets: there is one (a get
    /// never dials ahead of them) and `overtake_open`.
    #[inline]
    pub(super) fn may_overtake(&self, st: &State) -> bool {
        !st.idle.is_empty() && self.overtake_open(st)
    }

    /// Whether queued gets may be overtaken: an overtake window is set and the oldest
    /// waiter has waited less than it. Reads the clock only then.
    #[inline]
    pub(super) fn overtake_open(&self, st: &State) -> bool {
        if self.overtake_ns == 0 {
            return false;
        }
        match st.waiters.front() {
            // The retried waiter, if any, is older than the front, but it is on its way
            // to the idle list, and it queues at the front again if it finds none.
            Some(oldest) => clock::now_ns().saturating_sub(oldest.queued_at()) < self.overtake_ns,
            None => true,
        }
    }

    /// Keeps a waiter on its way to each free turn while gets may overtake the queue:
    /// with more turns free than waiters already woken (`retries_pending`), gives the
    /// oldest waiter still asleep `Grant::Retry`. Returns its wake-up, to drop once the
    /// lock is released. (In strict order a freed turn goes straight to the oldest waiter
    /// instead, and turns are never free with gets queued.) One waiter per free turn, not
    /// one at a time: when the gets that overtook stop coming, the queue drains through
    /// every free conn at once instead of one wake-up after another (with 256 threads on
    /// pool 8, the tens of ms the last waiters waited as the others left).
    pub(super) fn nudge(&self, st: &mut State) -> Option<Wake> {
        if self.overtake_ns == 0
            || st.closed
            || st.turns_used + st.retries_pending >= self.opts.pool_size
        {
            return None;
        }
        let wake = hand_to_oldest_later(&mut st.waiters, Grant::Retry).ok()?;
        st.retries_pending += 1;
        Some(wake)
    }

    /// A waiter woken with `Grant::Retry` looks again: with a turn free it takes it, with
    /// an idle conn if there is one (`Grant::Conn`; otherwise `Grant::Turn`, and it dials),
    /// plus the wake-up of the next waiter when turns remain free. None when gets took
    /// them first: the caller queues again at the front.
    pub(super) fn take_after_retry(&self, st: &mut State) -> Result<Option<(Grant, Option<Wake>)>> {
        st.retries_pending = st.retries_pending.saturating_sub(1);
        if st.closed {
            return Err(Error::Closed);
        }
        if st.turns_used >= self.opts.pool_size {
            // The turns may be held by parked conns (`bag`): take one, or announce the
            // wait again before queueing again (puts stop parking).
            return Ok(self
                .steal_before_wait(st)
                .map(|conn| (Grant::Conn(conn, false), None)));
        }
        st.turns_used += 1;
        let grant = match self.pop_idle(st).or_else(|| self.steal_parked(st)) {
            Some(conn) => Grant::Conn(conn, false),
            None => Grant::Turn,
        };
        let wake = self.nudge(st);
        Ok(Some((grant, wake)))
    }

    /// Health-checks a conn taken for a get. A stale conn is closed and counted; its turn
    /// stays with the caller. `ping`: the get's wait and its (start, deadline), read from
    /// the clock here if the get has not yet (None: no PING check, as for `try_get`).
    pub(super) fn check_health(
        &self,
        mut conn: Conn,
        ping: Option<(Wait, &mut Began)>,
    ) -> Option<Conn> {
        // The precise clock: a sweep vouches for 0.5 ms.
        let now = clock::now_ns();
        let mut vouched = SweepState::vouches(&conn, now);
        // Inside `health_check_bypass` no sweep is needed (`health::check` skips the peek).
        let bypassed = self
            .limits
            .bypass_ns
            .is_some_and(|b| now.saturating_sub(conn.used_at()) < b);
        if !vouched && !bypassed && !conn.needs_peek() && conn.is_swept() {
            // The sweep that stamped it is 0.5 ms old (or none did): sweep, if that is
            // still due, and look again.
            vouched = self.sweep_for(&mut conn, now);
        }
        let (ping_after, ping) = match ping {
            Some(p) => (self.limits.ping_after_ns, Some(p)),
            None => (None, None),
        };
        let mut ping = ping;
        let mut peeked = false;
        let health = health::check(&mut conn, now, &self.limits, vouched)
            .map(|p| peeked = p)
            .and_then(|()| {
                if !conn.session_changed() {
                    return Ok(());
                }
                self.restore(&mut conn, ping.as_mut().map(|(w, b)| (*w, &mut **b)))
            })
            .and_then(|()| {
                health::check_ping(&mut conn, now, ping_after, || {
                    ping.and_then(|(wait, began)| self.ping_cap(wait, began))
                })
            });
        match health {
            Ok(()) => {
                conn.set_used_at(now);
                conn.clear_needs_peek();
                if peeked && conn.is_swept() {
                    // Clean at `now` or later, as a sweep that began at `now` would have
                    // found it: vouches for it as such a sweep would (`SweepState::stamp`).
                    conn.set_swept_at(now);
                }
                Some(conn)
            }
            Err(_) => {
                {
                    let mut st = self.state.lock();
                    st.checked_out -= 1;
                    // Counted as a hit when it was taken (a claim counts it in its slot,
                    // `bag`, so this count alone may go below zero: it wraps).
                    st.hits = st.hits.wrapping_sub(1);
                    Counters::inc(&self.counters.stale);
                }
                drop(conn);
                None
            }
        }
    }

    /// Restores a conn whose session changed (`health::check_restore`), bounded as the PING
    /// check is; counted in `reset_conns`. A `try_get` (no `ping`) never waits for a reply:
    /// it closes such a conn instead (counted in `reset_conns` too).
    #[cold]
    fn restore(
        &self,
        conn: &mut Conn,
        ping: Option<(Wait, &mut Began)>,
    ) -> std::result::Result<(), health::Staleness> {
        let Some((wait, began)) = ping else {
            Counters::inc(&self.counters.reset);
            return Err(health::Staleness::NotRestored);
        };
        let restored =
            health::check_restore(conn, &self.opts.session, || self.ping_cap(wait, began))?;
        if restored {
            Counters::inc(&self.counters.reset);
        }
        Ok(())
    }

    /// Sweeps if the last sweep is due and stamps `conn` again (`SweepState::sweep_for`).
    #[cold]
    fn sweep_for(&self, conn: &mut Conn, now: u64) -> bool {
        let mut st = self.state.lock();
        let st = &mut *st;
        let conns = st.total();
        let vouched = st
            .sweep
            .sweep_for(&mut st.idle, conn, now, self.opts.pool_fifo, conns);
        self.bag.note_sweep(st.sweep.clean_since());
        vouched
    }

    /// The bound of a get's PING check (on top of the conn's read timeout): the get's own
    /// deadline under `Wait::For`, whose clock starts here if the get has not read it yet.
    /// A get that does not wait for turns (`NoWait`) or waits forever still gets a bound:
    /// the dial timeout (`PING_CAP_WITHOUT_DIAL_TIMEOUT` without one), since a conn that
    /// takes longer to answer PING than a new conn takes to dial is better replaced.
    #[cold]
    pub(super) fn ping_cap(&self, wait: Wait, began: &mut Began) -> Option<io::Deadline> {
        let (start, deadline) = *began.get_or_insert_with(|| {
            let start = Instant::now();
            (start, wait.deadline_from(start))
        });
        match (wait, deadline) {
            (Wait::For(t), Some(d)) => Some(io::Deadline::at(d, t)),
            _ => io::Deadline::after_from(
                start,
                Some(
                    self.opts
                        .dial_timeout
                        .unwrap_or(PING_CAP_WITHOUT_DIAL_TIMEOUT),
                ),
            ),
        }
    }

    /// Waits for a grant; on timeout or cancel, withdraws (taking a grant that raced in).
    pub(super) fn wait_for(
        &self,
        w: &Arc<Waiter>,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
        start: Instant,
        what: &str,
    ) -> Result<Grant> {
        let (mut st, canceled) = match wait_or_withdraw(w, deadline, cancel, || self.state.lock()) {
            Outcome::Granted(g) => return Ok(g),
            Outcome::GaveUp { guard, canceled } => (guard, canceled),
        };
        if let Some(i) = st.waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
            st.waiters.remove(i);
        }
        if let Some(i) = st.dial_waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
            st.dial_waiters.swap_remove(i);
        }
        // With one waiter fewer, a try_get may now succeed.
        self.notify.signal();
        let err = if canceled {
            Error::Canceled
        } else {
            self.timeout_error(&st, start, what)
        };
        let wake = self.nudge(&mut st);
        drop(st);
        drop(wake);
        Err(err)
    }

    pub(super) fn timeout_error(&self, st: &State, start: Instant, what: &str) -> Error {
        let last = st
            .last_dial_error
            .as_ref()
            .map_or_else(|| "none".to_string(), |e| e.to_string());
        Error::Timeout(format!(
            "redis: connection pool timeout after {}ms{what} ({}/{} conns in use, {} idle, {} waiting; last dial error: {last})",
            start.elapsed().as_millis(),
            st.turns_used,
            self.opts.pool_size,
            st.idle.len(),
            st.waiters.len(),
        ))
    }

    pub(super) fn check_active_limit(&self, st: &State) -> Result<()> {
        let max = self.opts.max_active_conns;
        let active = st.total() + st.dials_pending + st.unpooled_dials;
        if max > 0 && active >= max {
            return Err(Error::Exhausted(format!(
                "max_active_conns {max} reached: {} conns open, {} dialing",
                st.total(),
                st.dials_pending + st.unpooled_dials
            )));
        }
        Ok(())
    }

    /// Gives a freed turn to the oldest waiter, or returns it.
    pub(super) fn release_turn(&self, st: &mut State) {
        if hand_to_oldest(&mut st.waiters, Grant::Turn).is_some() {
            st.turns_used -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::dial::Dialer;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Mutex as StdMutex;

    /// A pool of socketpair conns whose peers stay open while the pool lives.
    fn pool(size: usize, window: Option<Duration>) -> (ConnPool, Arc<StdMutex<Vec<UnixStream>>>) {
        let peers = Arc::new(StdMutex::new(Vec::new()));
        let kept = peers.clone();
        let dialer = Dialer::Custom(Arc::new(move |_| {
            let (ours, theirs) = UnixStream::pair()?;
            kept.lock().unwrap().push(theirs);
            Ok(OwnedFd::from(ours))
        }));
        let mut o = Options::new(dialer);
        o.pool_size = size;
        o.overtake_window = window;
        (ConnPool::new(o).unwrap(), peers)
    }

    /// Conns given back while gets may overtake the queue each wake a queued get of their
    /// own: three puts with three gets queued leave three waiters woken (`Grant::Retry`),
    /// not one that must wake the next once it has run. The waiters are queued by hand
    /// (this thread's), so nothing runs in between and the count is exact.
    #[test]
    fn each_put_while_overtaking_wakes_a_waiter_of_its_own() {
        let (p, _peers) = pool(3, Some(Duration::from_secs(60)));
        let held: Vec<Conn> = (0..3).map(|_| p.get().unwrap()).collect();
        let inner = p.inner().clone();
        let queued: Vec<Arc<Waiter>> = (0..3).map(|_| Arc::new(Waiter::new())).collect();
        {
            let mut st = inner.state.lock();
            for w in &queued {
                w.set_queued_at(clock::now_ns());
                st.waiters.push_back(w.clone());
            }
            // As a get about to wait does: puts stop parking (`bag`).
            assert!(inner.steal_before_wait(&mut st).is_none());
        }
        for c in held {
            p.put(c).unwrap();
        }
        let st = inner.state.lock();
        let retries = queued
            .iter()
            .filter(|w| matches!(w.withdraw(), Some(Grant::Retry)))
            .count();
        assert_eq!(retries, 3, "one woken waiter per conn given back");
        assert_eq!(st.retries_pending, 3);
        assert_eq!(st.idle.len(), 3);
    }

    /// A conn given back while a get waits goes idle for that get, woken to take it:
    /// `try_get` must not take it first (it never overtakes a blocked get), though the
    /// woken get has left the queue.
    #[test]
    fn try_get_leaves_an_idle_conn_to_the_waiter_woken_for_it() {
        let (p, _peers) = pool(1, Some(Duration::from_secs(60)));
        let held = p.get().unwrap();
        let inner = p.inner().clone();
        let w = Arc::new(Waiter::new());
        {
            let mut st = inner.state.lock();
            w.set_queued_at(clock::now_ns());
            st.waiters.push_back(w.clone());
            assert!(inner.steal_before_wait(&mut st).is_none());
        }
        p.put(held).unwrap();
        assert_eq!(p.idle_len(), 1);
        assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
        // The woken get takes it.
        let mut st = inner.state.lock();
        assert!(matches!(w.withdraw(), Some(Grant::Retry)));
        let taken = inner.take_after_retry(&mut st).unwrap();
        assert!(matches!(taken, Some((Grant::Conn(..), None))));
    }

    /// The same in strict order: each put hands its conn itself to the oldest waiter.
    #[test]
    fn each_put_in_strict_order_hands_its_conn_to_the_oldest() {
        let (p, _peers) = pool(3, None);
        let held: Vec<Conn> = (0..3).map(|_| p.get().unwrap()).collect();
        let inner = p.inner().clone();
        let queued: Vec<Arc<Waiter>> = (0..3).map(|_| Arc::new(Waiter::new())).collect();
        {
            let mut st = inner.state.lock();
            for w in &queued {
                st.waiters.push_back(w.clone());
            }
            assert!(inner.steal_before_wait(&mut st).is_none());
        }
        for c in held {
            p.put(c).unwrap();
        }
        let st = inner.state.lock();
        let conns = queued
            .iter()
            .filter_map(|w| match w.withdraw() {
                Some(Grant::Conn(c, _)) => Some(c),
                _ => None,
            })
            .count();
        assert_eq!(conns, 3);
        assert_eq!((st.retries_pending, st.idle.len()), (0, 0));
    }
}
