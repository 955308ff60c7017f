//! The bag: a conn given back while no get waits is parked in a slot of the putting
//! thread, and that thread's next get claims it with one atomic swap, without the pool
//! lock (HikariCP's `ConcurrentBag` keeps a thread-local list of recently used entries the
//! same way). A get and a put of an uncontended pool then write only the slot's cache
//! line, which no other thread writes while the pool is not short of conns.
//!
//! Each pool has a small array of cache-line-padded slots; a thread uses the slot its
//! process-wide thread index picks (`my_index`, modulo the array; an exited thread's index
//! is handed out again, so live threads keep the smallest ones). Two threads that share
//! a slot stay correct, they only share its line. A put that finds its slot taken parks
//! the newer conn and sends the older one to the idle list, so the thread's next get takes
//! the conn given back last, as the LIFO idle list would.
//!
//! Accounting: a parked conn keeps its turn and counts as checked out in `State`
//! (`turns_used`, `checked_out`), so parking and claiming change no count and need no
//! lock. What users see treats it as idle: `Stats::idle_conns`, `in_use_conns` and
//! `idle_len` count parked conns as idle (`parked`), and a claim counts its hit in the
//! slot (`Stats::hits` sums them).
//!
//! Who else takes parked conns, so that none is stranded:
//! - a get that finds its own slot empty takes the locked path; when the idle list is
//!   empty too it steals a parked conn of another thread (`steal`, a swap per occupied
//!   slot) before it dials, and before it waits for a turn. The stolen conn brings its turn.
//! - gets waiting: a get about to wait first sets `WAITING` in `gate` and then scans the
//!   slots; a put parks first and then reads `gate`, taking the conn back to the locked
//!   path (where it goes to the waiter) when the bit is set. Both are `SeqCst`: either the
//!   scan sees the parked conn or the put sees the bit (Dekker), so no waiter waits while
//!   a conn sits parked. The get sets the bit and scans under the pool lock, in the same
//!   critical section in which it queues, so a put that saw the bit finds it queued. The
//!   bit is cleared by a locked put that finds nobody waiting.
//! - `close` sets `CLOSED` and drains the slots (closing their conns); a put racing with
//!   it sees the bit after parking and takes its conn back to the locked path, which
//!   closes it.
//! - `retire_all` (failover) drains the slots and closes their conns; a conn parked
//!   later with an older epoch is closed by the get that claims it (`is_current`).
//! - the reaper drains the slots into the idle list before each reap, so idle time and
//!   lifetime are enforced on parked conns too (a claim checks them as any get does).
//! - a forked child starts with a fresh state and empty slots (`forget_inherited`).
//!
//! Parking is off (every put takes the locked path) for pools whose order or counts it
//! would change: `pool_fifo` (FIFO order requested), `max_idle_conns` > 0 (the idle cap
//! is checked under the lock), and once `pool_notify_fd` was asked for (`NOTIFY`: the fd
//! tracks the idle list).
//!
//! Health: a claim is health-checked as any get (`check_health`). The sweep's stamp, which
//! a get normally takes under the lock (`SweepState::stamp`), comes from `clean_sweep_at`:
//! the start of the last sweep if it reported no conn outside the idle list (0 otherwise,
//! and the get then takes the lock to be stamped, or peeks). A sweep reports every conn of
//! the pool's epoll set, parked ones included, so a clean sweep vouches for all of them.

use std::cell::Cell as ThreadCell;
use std::ptr;

use super::*;

/// `gate`: a get is about to wait or waits (puts take the locked path).
const WAITING: u32 = 1;
/// `gate`: the pool is closed.
const CLOSED: u32 = 2;
/// `gate`: `pool_notify_fd` is in use.
const NOTIFY: u32 = 4;
/// `gate`: the options rule parking out.
const OFF: u32 = 8;

/// Slots per pool: twice the pool size, rounded up to a power of two, within these bounds.
const MIN_SLOTS: usize = 8;
const MAX_SLOTS: usize = 64;

/// Indexes below this go back to `INDEX_TAKEN` when their thread exits and are handed out
/// again, so the live threads of a process keep the smallest indexes: each slot then has
/// one thread of its own at most (the one whose index is the slot's), which counts its
/// hits without a locked instruction (`Slot::own_hits`), and threads that come and go do
/// not drift onto each other's slots.
const REUSED_INDEXES: usize = 4096;

/// Bit i: index i belongs to a live thread.
static INDEX_TAKEN: [AtomicU64; REUSED_INDEXES / 64] =
    [const { AtomicU64::new(0) }; REUSED_INDEXES / 64];

/// Indexes past `REUSED_INDEXES`, for threads beyond that many live at once (never reused).
static NEXT_THREAD_INDEX: AtomicUsize = AtomicUsize::new(REUSED_INDEXES);

/// A thread's index, given back when the thread exits.
struct ThreadIndex(ThreadCell<usize>);

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        let v = self.0.get();
        if v < REUSED_INDEXES {
            // Release: the next thread to take it (Acquire) sees this one's counts.
            INDEX_TAKEN[v / 64].fetch_and(!(1u64 << (v % 64)), Ordering::Release);
        }
    }
}

thread_local! {
    /// This thread's index; usize::MAX until its first put or get.
    static THREAD_INDEX: ThreadIndex = const { ThreadIndex(ThreadCell::new(usize::MAX)) };
}

/// The calling thread's index (the same in every pool). A thread whose thread-local storage
/// is being torn down (its index given back) gets one that is no slot's own.
#[inline]
fn my_index() -> usize {
    THREAD_INDEX
        .try_with(|i| {
            let v = i.0.get();
            if v != usize::MAX {
                return v;
            }
            let v = take_index();
            i.0.set(v);
            v
        })
        .unwrap_or(usize::MAX >> 1)
}

/// The smallest free index, or one past `REUSED_INDEXES` when none is free.
#[cold]
fn take_index() -> usize {
    for (w, word) in INDEX_TAKEN.iter().enumerate() {
        let mut cur = word.load(Ordering::Relaxed);
        while cur != u64::MAX {
            let bit = (!cur).trailing_zeros() as usize;
            match word.compare_exchange_weak(
                cur,
                cur | (1u64 << bit),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return w * 64 + bit,
                Err(now) => cur = now,
            }
        }
    }
    NEXT_THREAD_INDEX.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1)
}

/// One thread's parking place, on cache lines of its own (128 bytes: the adjacent-line
/// prefetcher pairs 64-byte lines).
#[repr(align(128))]
struct Slot {
    /// A parked conn (`Conn::into_raw`) or null.
    conn: AtomicPtr<()>,
    /// Gets served from this slot by its own thread, the one whose index is the slot's
    /// (`Stats::hits`): one live thread at most has that index (`REUSED_INDEXES`), so it is
    /// the only writer and counts with a plain load and store, no locked instruction (about
    /// 5 ns of a 65 ns Get+Put on one thread).
    own_hits: AtomicU64,
    /// Gets served from this slot by the threads sharing it (`Stats::hits`).
    hits: AtomicU64,
}

/// What a put's parking left to the locked path (`ConnPool::put`).
pub(super) enum Parked {
    Yes,
    Back(Conn),
    Back2(Conn, Conn),
}

/// See the module doc.
pub(super) struct Bag {
    slots: Box<[Slot]>,
    /// `WAITING | CLOSED | NOTIFY | OFF`.
    gate: AtomicU32,
    /// Start of the last sweep that reported no conn outside the idle list; 0 = none.
    clean_sweep_at: AtomicU64,
}

impl Bag {
    pub(super) fn new(opts: &Options) -> Bag {
        let n = opts
            .pool_size
            .saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SLOTS)
            .clamp(MIN_SLOTS, MAX_SLOTS);
        let off = opts.pool_fifo || opts.max_idle_conns > 0;
        Bag {
            slots: (0..n)
                .map(|_| Slot {
                    conn: AtomicPtr::new(ptr::null_mut()),
                    own_hits: AtomicU64::new(0),
                    hits: AtomicU64::new(0),
                })
                .collect(),
            gate: AtomicU32::new(if off { OFF } else { 0 }),
            clean_sweep_at: AtomicU64::new(0),
        }
    }

    #[inline]
    fn my_slot(&self) -> &Slot {
        // `slots.len()` is a power of two.
        &self.slots[my_index() & (self.slots.len() - 1)]
    }

    /// Parks `conn` in the calling thread's slot. A conn parked there before is displaced
    /// (given back for the idle list: the newest conn is the one the next get takes, as a
    /// LIFO pool hands out). Everything comes back when the gate is shut, also when it
    /// shut while parking (see the module doc).
    #[inline]
    fn park(&self, conn: Conn) -> Parked {
        if self.gate.load(Ordering::Relaxed) != 0 {
            return Parked::Back(conn);
        }
        let slot = self.my_slot();
        let old = slot.conn.swap(conn.into_raw(), Ordering::SeqCst);
        // SAFETY: a non-null slot value came from `into_raw`, and the swap made it ours.
        let old = (!old.is_null()).then(|| unsafe { Conn::from_raw(old) });
        if self.gate.load(Ordering::SeqCst) == 0 {
            return match old {
                None => Parked::Yes,
                Some(old) => Parked::Back(old),
            };
        }
        // A get began to wait, or the pool closed: whatever is parked here goes back to
        // the locked path (a claim or steal may have taken it already: then it is served).
        let back = slot.conn.swap(ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: as above.
        let back = (!back.is_null()).then(|| unsafe { Conn::from_raw(back) });
        match (old, back) {
            (None, None) => Parked::Yes,
            (Some(c), None) | (None, Some(c)) => Parked::Back(c),
            (Some(a), Some(b)) => Parked::Back2(a, b),
        }
    }

    /// The conn parked in the calling thread's slot, if any.
    #[inline]
    fn claim(&self) -> Option<Conn> {
        let me = my_index();
        // `slots.len()` is a power of two.
        let k = me & (self.slots.len() - 1);
        let slot = &self.slots[k];
        if slot.conn.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let raw = slot.conn.swap(ptr::null_mut(), Ordering::Acquire);
        if raw.is_null() {
            return None;
        }
        if me == k {
            // The slot's own thread: its only writer of `own_hits`.
            let n = slot.own_hits.load(Ordering::Relaxed);
            slot.own_hits.store(n.wrapping_add(1), Ordering::Relaxed);
        } else {
            slot.hits.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: a non-null slot value came from `into_raw`, and the swap made it ours.
        Some(unsafe { Conn::from_raw(raw) })
    }

    /// A conn parked in any slot (the caller's own first).
    fn steal(&self) -> Option<Conn> {
        let n = self.slots.len();
        let first = my_index();
        (0..n).find_map(|k| {
            let slot = &self.slots[(first + k) & (n - 1)];
            if slot.conn.load(Ordering::SeqCst).is_null() {
                return None;
            }
            let raw = slot.conn.swap(ptr::null_mut(), Ordering::SeqCst);
            // SAFETY: a non-null slot value came from `into_raw`, and the swap made it ours.
            (!raw.is_null()).then(|| unsafe { Conn::from_raw(raw) })
        })
    }

    /// Takes every parked conn out, to `f`.
    fn drain(&self, mut f: impl FnMut(Conn)) {
        for slot in self.slots.iter() {
            let raw = slot.conn.swap(ptr::null_mut(), Ordering::SeqCst);
            if !raw.is_null() {
                // SAFETY: a non-null slot value came from `into_raw`, and the swap made it ours.
                f(unsafe { Conn::from_raw(raw) });
            }
        }
    }

    /// A forked child: the parent's parked conns, closed here (this process's copies).
    pub(super) fn forget_parked(&self) {
        self.drain(drop);
    }

    /// Conns parked now (a snapshot).
    pub(super) fn parked(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.conn.load(Ordering::Relaxed).is_null())
            .count()
    }

    /// Gets served from the slots so far.
    pub(super) fn hits(&self) -> u64 {
        self.slots.iter().fold(0, |n, s| {
            n.wrapping_add(s.own_hits.load(Ordering::Relaxed))
                .wrapping_add(s.hits.load(Ordering::Relaxed))
        })
    }

    /// Puts that found `WAITING` go to the locked path; the first that finds nobody
    /// waiting there (under the pool lock) clears it. Called by every locked put.
    #[inline]
    pub(super) fn note_waiters(&self, st: &State) {
        if st.waiters.is_empty()
            && st.retries_pending == 0
            && self.gate.load(Ordering::Relaxed) & WAITING != 0
        {
            self.gate.fetch_and(!WAITING, Ordering::SeqCst);
        }
    }

    /// A sweep ran (under the pool lock): what a claim may be stamped with.
    pub(super) fn note_sweep(&self, clean_since: u64) {
        if self.clean_sweep_at.load(Ordering::Relaxed) != clean_since {
            self.clean_sweep_at.store(clean_since, Ordering::Release);
        }
    }
}

impl Drop for Bag {
    fn drop(&mut self) {
        // Pools are closed before they go, which drains the slots; a forked child's
        // abandoned state is leaked, never dropped. Whatever is left is closed here.
        self.drain(drop);
    }
}

impl Inner {
    /// A put's first try: parks a healthy pooled conn of the current epoch while no get
    /// waits (see the module doc). Gives the conn back for the locked path otherwise.
    #[inline]
    pub(super) fn park(&self, mut conn: Conn) -> Parked {
        if !conn.is_pooled() || !self.is_current(&conn) {
            return Parked::Back(conn);
        }
        conn.set_used_at(self.limits.now());
        self.bag.park(conn)
    }

    /// A get's first try: the conn parked in the calling thread's slot, health-checked.
    /// None when there is none, or it was stale or retired (closed; its turn released):
    /// the get goes on, unless a PING check ran out the get's own deadline: then `over`
    /// says how the get ends, as on the locked path (`get_conn`). An out-parameter, so
    /// the hot path moves no `Result` around.
    #[inline]
    pub(super) fn claim_parked(
        self: &Arc<Self>,
        wait: Wait,
        began: &mut Began,
        over: &mut Option<Error>,
    ) -> Option<Conn> {
        let mut conn = self.bag.claim()?;
        if !self.is_current(&conn) {
            self.close_parked(vec_of(conn));
            return None;
        }
        let at = if conn.is_swept() {
            self.bag.clean_sweep_at.load(Ordering::Acquire)
        } else {
            0
        };
        conn.set_swept_at(at);
        match self.check_health(conn, Some((wait, &mut *began))) {
            Some(conn) => Some(conn),
            None => {
                *over = self.stale_claim(wait, *began);
                None
            }
        }
    }

    /// A claimed conn was stale (closed and counted by `check_health`): frees the turn it
    /// held; a get whose deadline passed in its PING check ends with a timeout.
    #[cold]
    fn stale_claim(&self, wait: Wait, began: Began) -> Option<Error> {
        let mut st = self.state.lock();
        self.release_turn(&mut st);
        if let (Wait::For(_), Some((start, Some(deadline)))) = (wait, began)
            && Instant::now() >= deadline
        {
            return Some(self.timeout_error(&st, start, " checking idle connections"));
        }
        None
    }

    /// `try_get`'s first try: a parked conn, its own or another thread's, socket-checked
    /// as `try_get` checks idle conns. None when there is none (or it was stale).
    pub(super) fn try_claim_parked(self: &Arc<Self>) -> Option<Conn> {
        let mut conn = self.bag.claim().or_else(|| self.bag.steal())?;
        if !self.is_current(&conn) {
            self.close_parked(vec_of(conn));
            return None;
        }
        {
            let st = self.state.lock();
            st.sweep.stamp(&mut conn);
        }
        match self.check_health(conn, None) {
            Some(conn) => Some(conn),
            None => {
                let mut st = self.state.lock();
                self.release_turn(&mut st);
                None
            }
        }
    }

    /// Under the pool lock, for a get holding a turn that found the idle list empty: a
    /// parked conn of any thread instead of a dial. It brings its own turn, so the get's
    /// goes back (to the oldest waiter, if any). Counted and stamped as `pop_idle` does.
    pub(super) fn steal_parked(&self, st: &mut State) -> Option<Conn> {
        let mut conn = self.bag.steal()?;
        self.release_turn(st);
        st.hits = st.hits.wrapping_add(1);
        st.sweep.stamp(&mut conn);
        Some(conn)
    }

    /// Under the pool lock, for a get about to wait for a turn: announces the wait to puts
    /// (`WAITING`) and then takes a parked conn if there is one (it brings its turn).
    pub(super) fn steal_before_wait(&self, st: &mut State) -> Option<Conn> {
        // WAITING is set and cleared only under the pool lock, which this get holds: a set
        // bit was set by a SeqCst write that happens before this scan, which is all the
        // Dekker pairing with `Bag::park` needs. Only a clear bit costs a write (a get
        // waiting in an overloaded pool writes nothing here).
        if self.bag.gate.load(Ordering::Relaxed) & WAITING == 0 {
            self.bag.gate.fetch_or(WAITING, Ordering::SeqCst);
        }
        let mut conn = self.bag.steal()?;
        st.hits = st.hits.wrapping_add(1);
        st.sweep.stamp(&mut conn);
        Some(conn)
    }

    /// `pool_notify_fd` was asked for: no parking from now on, and parked conns go to the
    /// idle list the fd reports on.
    pub(super) fn stop_parking_for_notify(self: &Arc<Self>) {
        if self.bag.gate.load(Ordering::Relaxed) & NOTIFY != 0 {
            return;
        }
        self.bag.gate.fetch_or(NOTIFY, Ordering::SeqCst);
        let closed = {
            let mut st = self.state.lock();
            self.unpark_all(&mut st)
        };
        self.notify.signal();
        drop(closed);
    }

    /// Under the pool lock: moves every parked conn to the idle list (the reaper, before it
    /// reaps; `pool_notify_fd`), freeing the turns they held. Retired ones are closed
    /// instead; returns those, to drop outside the lock.
    pub(super) fn unpark_all(self: &Arc<Self>, st: &mut State) -> Vec<Conn> {
        let mut closed = Vec::new();
        self.bag.drain(|mut conn| {
            st.checked_out -= 1;
            self.release_turn(st);
            if st.closed || !self.is_current(&conn) {
                if !st.closed {
                    self.count_retired(1);
                }
                // User data is freed on a user thread, never on a library thread.
                if let Some(ud) = conn.take_userdata_box() {
                    st.deferred_userdata.push(ud);
                }
                closed.push(conn);
            } else {
                st.idle.push_back(conn);
            }
        });
        if !closed.is_empty() {
            self.refill(st);
        }
        closed
    }

    /// Under the pool lock, from `close`: shuts the gate and takes every parked conn out,
    /// freeing their turns. Returns them, to close outside the lock.
    pub(super) fn drain_parked_on_close(&self, st: &mut State) -> Vec<Conn> {
        self.bag.gate.fetch_or(CLOSED, Ordering::SeqCst);
        let mut out = Vec::new();
        self.bag.drain(|conn| {
            st.checked_out -= 1;
            st.turns_used -= 1;
            out.push(conn);
        });
        out
    }

    /// Closes parked conns of an older epoch (claimed or stolen after a `retire_all`),
    /// freeing their turns, as a put of a retired conn does.
    #[cold]
    fn close_parked(self: &Arc<Self>, conns: Vec<Conn>) {
        {
            let mut st = self.state.lock();
            for _ in &conns {
                st.checked_out -= 1;
                self.release_turn(&mut st);
                if st.closed {
                    continue;
                }
                self.count_retired(1);
            }
            self.refill(&mut st);
        }
        drop(conns);
    }
}

#[cold]
fn vec_of(conn: Conn) -> Vec<Conn> {
    vec![conn]
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;

    use super::*;

    /// Threads that come one after another get the same few indexes back instead of new
    /// ones each (which would move them onto other threads' slots and off the slots whose
    /// hits they count without a locked instruction). Other tests' threads may take an
    /// index in between, hence a bound, not one index.
    #[test]
    fn an_exited_threads_index_is_handed_out_again() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let i = std::thread::spawn(my_index).join().unwrap();
            assert!(i < REUSED_INDEXES, "index {i}");
            seen.insert(i);
        }
        assert!(
            seen.len() < 32,
            "64 threads in turn took {} indexes",
            seen.len()
        );
    }

    fn pool(size: usize) -> (ConnPool, Arc<std::sync::Mutex<Vec<UnixStream>>>) {
        let ends = Arc::new(std::sync::Mutex::new(Vec::new()));
        let e = ends.clone();
        let mut o = Options::new(Dialer::Custom(Arc::new(move |_| {
            let (ours, theirs) = UnixStream::pair()?;
            e.lock().unwrap().push(theirs);
            Ok(OwnedFd::from(ours))
        })));
        o.pool_size = size;
        // Inside the bypass window a get needs no sweep, which takes the lock (once per
        // `sweep::TRUST_NS` at most) on the default path.
        o.health_check_bypass = Some(Duration::from_secs(60));
        (ConnPool::new(o).unwrap(), ends)
    }

    /// The point of the bag: a thread's put and its next get of the conn it gave back
    /// take no pool lock. The pool lock is held by this test while another thread gets
    /// and gives back the conn it parked; a get or put that locked would block.
    #[test]
    fn own_parked_conn_comes_back_without_the_pool_lock() {
        let (p, _ends) = pool(4);
        let (to_main, from_thread) = mpsc::channel();
        let (to_thread, from_main) = mpsc::channel::<()>();
        let p2 = p.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                let c = p2.get().unwrap();
                p2.put(c).unwrap();
            }
            to_main.send(None).unwrap();
            from_main.recv().unwrap();
            for _ in 0..100 {
                let c = p2.get().unwrap();
                let id = c.id();
                p2.put(c).unwrap();
                to_main.send(Some(id)).unwrap();
            }
        });
        assert_eq!(from_thread.recv().unwrap(), None);
        let held = p.inner().state.lock();
        to_thread.send(()).unwrap();
        for _ in 0..100 {
            let got = from_thread.recv_timeout(Duration::from_secs(10));
            assert_eq!(
                got,
                Ok(Some(1)),
                "get+put of the parked conn went through the pool lock"
            );
        }
        drop(held);
        t.join().unwrap();
        let s = p.stats();
        assert_eq!(
            (s.hits, s.misses, s.total_conns, s.idle_conns),
            (101, 1, 1, 1)
        );
        p.close().unwrap();
    }

    /// A put that finds its thread's slot taken parks the newer conn and sends the older
    /// one to the idle list, so the thread's next get takes the conn given back last.
    #[test]
    fn the_newest_conn_is_parked() {
        let (p, _ends) = pool(4);
        let a = p.get().unwrap();
        let b = p.get().unwrap();
        let idb = b.id();
        p.put(a).unwrap();
        p.put(b).unwrap();
        assert_eq!(p.inner().bag.parked(), 1);
        assert_eq!(p.inner().state.lock().idle.len(), 1);
        let c = p.get().unwrap();
        assert_eq!(c.id(), idb);
        p.put(c).unwrap();
        p.close().unwrap();
    }
}
