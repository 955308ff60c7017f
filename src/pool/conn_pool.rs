//! `ConnPool`: go-redis's `internal/pool.ConnPool`, with its known bugs left out.
//!
//! Turns are the capacity gate: at most `pool_size` conns checked out or being dialed.
//! A get takes a free turn at once when nobody is queued, otherwise it queues; a released
//! turn (put, remove, failed dial) goes to the oldest waiter, together with the conn when
//! one comes back. A miss hands its turn to a dial job run on a dial thread, so the caller
//! can stop waiting (timeout, cancel, close) without wasting the dial: the conn then goes to
//! the oldest waiter or the idle list.
//!
//! Every transition of the counts happens under `Inner::state`; sockets are closed and
//! health-checked outside it.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::Socket;

use super::cancel::CancelToken;
use super::clock;
use super::conn::{Conn, READONLY_REASON};
use super::dial::{Dialer, deadline_after};
use super::error::{Error, Result};
use super::fork;
use super::health;
use super::in_flight::InFlight;
use super::notify::Notifier;
use super::options::{Options, Wait};
use super::pooler::{Pooler, Rejected};
use super::stats::{Counters, Stats};
use super::sweep::SweepState;
use super::waiter::{
    Grant, Outcome, Waiter, Wake, hand_to_oldest, hand_to_oldest_later, wait_or_withdraw,
};
use crate::redis::HandshakeError;
use crate::redis::io;
use crate::sentinel::{Retire, SentinelState};

/// When a get's clock started and when it must be over (None = never): read only off the
/// fast path, when the get waits, dials or PINGs.
type Began = Option<(Instant, Option<Instant>)>;

/// The bound of a get's PING check when neither the get (`Wait::Forever`, `NoWait`) nor the
/// dial timeout gives one, and the read timeout is none either: go-redis's default dial
/// timeout.
pub const PING_CAP_WITHOUT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

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

/// A thread-safe connection pool. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct ConnPool {
    cell: Arc<Cell>,
}

/// Where the pool's state lives. A forked child swaps in a fresh `Inner` on its first call
/// (see `fork`); the abandoned one is leaked, never locked or freed, so a reference to any
/// `Inner` ever stored here stays valid for the life of the process.
struct Cell {
    id: u64,
    /// A leaked `Box<Arc<Inner>>`; the current one is freed with the cell.
    cur: AtomicPtr<Arc<Inner>>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        // SAFETY: `cur` came from `Box::into_raw` and is released only here, once.
        drop(unsafe { Box::from_raw(*self.cur.get_mut()) });
    }
}

struct Inner {
    id: u64,
    /// `opts`' health-check thresholds in nanoseconds.
    limits: health::Limits,
    /// The fork generation this state belongs to; conns dialed for it carry it too.
    generation: u64,
    opts: Options,
    /// Readable while `try_get` may find a conn (`pool_notify_fd`).
    notify: Notifier,
    /// With leak detection on: checked-out conn id -> when it was handed out.
    leaks: Option<Mutex<HashMap<u64, Instant>>>,
    state: Mutex<State>,
    /// Dial backoffs, the probe and the reaper sleep on `closed_cv` (with `sleep_lock`),
    /// which close notifies. std's futex condvar, not parking_lot's: parking_lot keeps
    /// parked threads in a process-wide table, and a thread parked there at fork()
    /// corrupts it in the child (whose new threads reuse the dead thread's stack), which
    /// then hangs in its first park or unpark.
    sleep_lock: std::sync::Mutex<()>,
    closed_cv: std::sync::Condvar,
    /// The sockets being dialed and set up; `close` shuts them down.
    in_flight: InFlight,
    closed: AtomicBool,
    counters: Counters,
    next_conn_id: AtomicU64,
    jitter_seed: AtomicU64,
    /// Bumped by `retire_all` under `state`: conns carry the epoch their dial began in, and
    /// one of an older epoch is never pooled or handed out again.
    epoch: AtomicU64,
    /// Conns closed because `retire_all` retired them (also counted as stale).
    retired: AtomicU64,
    /// `opts.overtake_window` in ns; 0 = strict first come, first served.
    overtake_ns: u64,
}

/// Where `Inner::hand_over` put a conn; dropping it wakes the waiter concerned (do that
/// once the pool lock is released).
struct Handed {
    /// The waiter given the conn, or the one woken to look at the idle list (None when
    /// one already was).
    _wake: Option<Wake>,
    /// The conn went to the idle list (gets may overtake the queue), not to a waiter.
    went_idle: bool,
}

struct DialJob {
    /// The get that started the dial, if it still waits for it.
    initiator: Option<Arc<Waiter>>,
    /// Started to keep `min_idle_conns` filled.
    refill: bool,
}

#[derive(Default)]
struct State {
    closed: bool,
    idle: VecDeque<Conn>,
    /// Turns held: pooled conns checked out (or being handed over) plus dial jobs.
    turns_used: usize,
    /// Pooled conns checked out or being handed over.
    checked_out: usize,
    /// Conns from `new_conn` still open, and their dials in flight.
    unpooled: usize,
    unpooled_dials: usize,
    /// Dial jobs queued or running; each holds a turn.
    dials_pending: usize,
    refill_dials: usize,
    /// Dial jobs for gets and `try_get` misses, oldest first; run before refills.
    dial_queue: VecDeque<DialJob>,
    /// Refill dials not yet started (a count: a large `min_idle_conns` queues no objects).
    refills_queued: usize,
    /// Dial worker threads alive.
    dial_workers: usize,
    /// Gets queued for a turn, oldest first.
    waiters: VecDeque<Arc<Waiter>>,
    /// Gets waiting for the dial they started.
    dial_waiters: Vec<Arc<Waiter>>,
    /// Consecutive failed dials; at `pool_size` misses fail fast until a dial succeeds.
    dial_failures: usize,
    last_dial_error: Option<Error>,
    probe_running: bool,
    /// A waiter was given `Grant::Retry` and has not looked at the idle list yet. While
    /// gets may overtake the queue, idle conns with gets queued always have one waiter on
    /// its way to them (`nudge`), and only one at a time (no thundering herd).
    retry_pending: bool,
    /// Hits counted under the lock, so a get served from the idle list touches no shared
    /// counter: every conn taken for a get (idle pops, puts handed to a waiter), less those
    /// then found stale. `Stats::hits` is this plus `Counters::hits` (fresh dials).
    hits: u64,
    /// User data of conns closed on library threads, dropped on the next user call.
    deferred_userdata: Vec<Box<dyn Any + Send>>,
    /// The epoll set whose sweeps vouch for idle conns, and what the last one found.
    sweep: SweepState,
}

impl State {
    fn total(&self) -> usize {
        self.idle.len() + self.checked_out + self.unpooled
    }
}

impl ConnPool {
    /// Validates `opts`, starts the min-idle prewarm and the reaper when configured.
    pub fn new(opts: Options) -> Result<ConnPool> {
        let opts = Options {
            dialer: opts.dialer.for_new_pool(),
            ..opts
        }
        .validate()?;
        fork::watch();
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(Inner::new(opts, id, fork::generation(), 1, false));
        inner.start()?;
        let cell = Arc::new(Cell {
            id,
            cur: AtomicPtr::new(Box::into_raw(Box::new(inner))),
        });
        Ok(ConnPool { cell })
    }

    /// The current state. In a forked child the first call abandons the parent's.
    #[inline]
    fn inner(&self) -> &Arc<Inner> {
        // SAFETY: `cur` always points to a live `Box<Arc<Inner>>`: replaced ones are leaked,
        // and the current one is freed only with the cell, which `self` keeps alive.
        let inner = unsafe { &*self.cell.cur.load(Ordering::Acquire) };
        if inner.generation == fork::generation() {
            inner
        } else {
            self.after_fork()
        }
    }

    /// First call in a forked child: a fresh state with the same options and id, so conns
    /// of the parent are recognised (and closed, never pooled) when they come back. The
    /// parent's state is not locked, only tried: another parent thread may have held it.
    #[cold]
    fn after_fork(&self) -> &Arc<Inner> {
        loop {
            let old_ptr = self.cell.cur.load(Ordering::Acquire);
            // SAFETY: as in `inner`.
            let old = unsafe { &*old_ptr };
            let generation = fork::generation();
            if old.generation == generation {
                return old;
            }
            // A sentinel dialer's locks may have been held by a parent thread: fresh state.
            let opts = Options {
                dialer: old.opts.dialer.for_new_pool(),
                ..old.opts.clone()
            };
            let fresh = Inner::new(
                opts,
                old.id,
                generation,
                old.next_conn_id.load(Ordering::Relaxed),
                old.closed.load(Ordering::Acquire),
            );
            fresh
                .epoch
                .store(old.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
            let fresh = Arc::new(fresh);
            let fresh_ptr = Box::into_raw(Box::new(fresh));
            match self.cell.cur.compare_exchange(
                old_ptr,
                fresh_ptr,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    old.forget_inherited();
                    // SAFETY: `old_ptr` came from `Box::into_raw` and is no longer in the
                    // cell; no thread of this process uses it (the parent's threads are gone).
                    fork::abandon(unsafe { Box::from_raw(old_ptr) });
                    // SAFETY: just published; freed only with the cell.
                    let cur = unsafe { &*fresh_ptr };
                    // Background threads restart here; without a reaper the pool still
                    // works (gets check idle time themselves).
                    let _ = cur.start();
                    return cur;
                }
                // SAFETY: never published; no thread has seen it.
                Err(_) => drop(unsafe { Box::from_raw(fresh_ptr) }),
            }
        }
    }

    pub fn options(&self) -> &Options {
        &self.inner().opts
    }

    /// The sentinel state of a pool whose dialer is `Dialer::Sentinel` (its own copy, made
    /// by `new`): the current master address and the switches seen.
    pub fn sentinel(&self) -> Option<&Arc<SentinelState>> {
        self.inner().opts.dialer.sentinel()
    }

    /// Retires every conn the pool has now: idle conns are closed at once, conns checked
    /// out are closed when given back (put acts as remove), and a dial in flight is
    /// discarded (and dialed again) when it lands. Conns made afterwards are pooled as
    /// usual. Used when the master changes (sentinel failover); each conn closed this way
    /// counts in `stale_conns` and in `retired_conns`.
    pub fn retire_all(&self) {
        self.inner().retire_conns();
    }

    /// Conns closed by `retire_all` so far (idle ones at once, others when they came back).
    pub fn retired_conns(&self) -> u64 {
        self.inner().retired.load(Ordering::Relaxed)
    }

    /// Identifies the pool; conns carry it.
    pub fn id(&self) -> u64 {
        self.cell.id
    }

    pub fn same_pool(&self, other: &ConnPool) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }

    /// Get with the pool's `pool_timeout` and no cancel token.
    pub fn get(&self) -> Result<Conn> {
        self.get_with(self.inner().opts.pool_timeout, None)
    }

    /// An idle, health-checked conn or a new one. Waits for a turn (and for the dial on a
    /// miss) at most `wait`, or until `cancel` fires or the pool closes.
    pub fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        let inner = self.inner();
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let res = inner.get_conn(wait, cancel);
        match &res {
            Ok(conn) => inner.track(conn),
            Err(Error::Timeout(_)) => Counters::inc(&inner.counters.timeouts),
            Err(_) => {}
        }
        res
    }

    /// Never waits, dials or resolves: an idle conn that passes the socket checks (no PING
    /// check: that would wait for a reply), or `Error::WouldBlock`. A miss while the pool has
    /// room starts one dial on a dial thread; its conn lands in the idle list and signals
    /// the notify fd. Nothing queued for the pool is overtaken: with gets waiting, it misses.
    pub fn try_get(&self) -> Result<Conn> {
        let inner = self.inner();
        loop {
            let conn = {
                let mut st = inner.state.lock();
                if st.closed {
                    return Err(Error::Closed);
                }
                let popped = if st.waiters.is_empty() && st.turns_used < inner.opts.pool_size {
                    inner.pop_idle(&mut st)
                } else {
                    None
                };
                let Some(conn) = popped else {
                    inner.notify.drain();
                    inner.dial_in_background(&mut st);
                    return Err(Error::WouldBlock);
                };
                st.turns_used += 1;
                conn
            };
            match inner.check_health(conn, None) {
                Some(conn) => {
                    inner.track(&conn);
                    return Ok(conn);
                }
                None => {
                    let mut st = inner.state.lock();
                    inner.release_turn(&mut st);
                }
            }
        }
    }

    /// The conn ids checked out for longer than `leak_detection_threshold`, with how long
    /// each has been held, longest first; None when leak detection is off.
    pub fn leaks(&self) -> Option<Vec<(u64, Duration)>> {
        let mut list = self.inner().held_too_long()?;
        list.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(list)
    }

    /// The readiness fd of `pool_notify_fd`, made on first use.
    pub fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        self.inner().notify.fd()
    }

    /// Returns a conn for reuse. A conn from `new_conn` is closed instead.
    /// A broken conn (a command failed mid-way), or one whose session its commands changed
    /// (`Conn::session_changed`: counted in `Stats::reset_conns`), is removed instead.
    pub fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        if conn.must_close_on_put() {
            return self.remove(conn, None);
        }
        let mut conn = self.check_owner(conn)?;
        let inner = self.inner();
        if conn.is_inherited() {
            // Checked out before fork(): the parent's session. Close this process's copy.
            drop(conn);
            return Ok(());
        }
        inner.untrack(&conn);
        let deferred;
        let mut surplus = None;
        {
            let mut st = inner.state.lock();
            // Userdata of conns a library thread closed, freed here on a user thread; a
            // `Vec` moved out and dropped on every put shows up in instruction counts, so
            // only when there is any.
            deferred = (!st.deferred_userdata.is_empty())
                .then(|| std::mem::take(&mut st.deferred_userdata));
            if !conn.is_pooled() {
                st.unpooled -= 1;
                surplus = Some(conn);
            } else if st.closed {
                st.checked_out -= 1;
                st.turns_used -= 1;
                surplus = Some(conn);
            } else if conn.epoch() != inner.epoch.load(Ordering::Relaxed) {
                // Retired while checked out (the master changed): closed, never pooled.
                // `retire_all` bumps the epoch under this lock, so the load cannot miss it.
                st.checked_out -= 1;
                inner.release_turn(&mut st);
                inner.count_retired(1);
                inner.refill(&mut st);
                surplus = Some(conn);
            } else {
                conn.set_used_at(inner.limits.now());
                let conn = if st.waiters.is_empty() {
                    conn
                } else {
                    match inner.hand_over(&mut st, conn) {
                        Ok(handed) => {
                            // Woken once the lock is released: it takes the lock next.
                            drop(st);
                            let went_idle = handed.went_idle;
                            drop(handed);
                            if went_idle {
                                inner.notify.signal();
                            }
                            drop(deferred);
                            return Ok(());
                        }
                        Err(conn) => conn,
                    }
                };
                st.checked_out -= 1;
                st.turns_used -= 1;
                let max_idle = inner.opts.max_idle_conns;
                if max_idle > 0 && st.idle.len() >= max_idle {
                    Counters::inc(&inner.counters.evicted);
                    surplus = Some(conn);
                } else {
                    st.idle.push_back(conn);
                }
            }
        }
        inner.notify.signal();
        drop(surplus);
        drop(deferred);
        Ok(())
    }

    /// Closes a checked-out conn and frees its turn. `reason` is informational.
    pub fn remove(&self, conn: Conn, _reason: Option<&str>) -> std::result::Result<(), Rejected> {
        let conn = self.check_owner(conn)?;
        let inner = self.inner();
        if let Some(s) = inner.opts.dialer.sentinel() {
            if conn.broken_reason() == Some(READONLY_REASON) {
                s.note_readonly();
            }
        }
        if conn.is_inherited() {
            drop(conn);
            return Ok(());
        }
        inner.untrack(&conn);
        let deferred = {
            let mut st = inner.state.lock();
            if conn.is_pooled() {
                st.checked_out -= 1;
                if st.closed {
                    st.turns_used -= 1;
                } else {
                    inner.release_turn(&mut st);
                }
            } else {
                st.unpooled -= 1;
            }
            Counters::inc(&inner.counters.removed);
            if conn.session_changed() {
                Counters::inc(&inner.counters.reset);
            }
            inner.refill(&mut st);
            std::mem::take(&mut st.deferred_userdata)
        };
        inner.notify.signal();
        drop(conn);
        drop(deferred);
        Ok(())
    }

    /// go-redis `NewConn`: a conn outside the turns and the idle list (it still obeys
    /// `max_active_conns` and counts in `len`). Dials on the calling thread. Release it with
    /// `close_conn`.
    pub fn new_conn(&self) -> Result<Conn> {
        let inner = self.inner();
        {
            let mut st = inner.state.lock();
            if st.closed {
                return Err(Error::Closed);
            }
            inner.check_active_limit(&st)?;
            st.unpooled_dials += 1;
        }
        let res = inner.dial_conn(false);
        let mut st = inner.state.lock();
        st.unpooled_dials -= 1;
        inner.note_dial_result(&mut st, &res);
        let conn = res?;
        if st.closed {
            drop(st);
            drop(conn);
            return Err(Error::Closed);
        }
        st.unpooled += 1;
        drop(st);
        inner.track(&conn);
        Ok(conn)
    }

    /// Closes a conn from `new_conn`. A checked-out pooled conn is removed (its turn freed).
    pub fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        self.remove(conn, None)
    }

    /// All conns the pool owns: idle, checked out, and `new_conn` conns.
    pub fn len(&self) -> usize {
        self.inner().state.lock().total()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn idle_len(&self) -> usize {
        self.inner().state.lock().idle.len()
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner();
        let mut s = Stats::default();
        let locked_hits;
        {
            let st = inner.state.lock();
            locked_hits = st.hits;
            s.total_conns = clamp_u32(st.total());
            s.idle_conns = clamp_u32(st.idle.len());
            s.waiting = clamp_u32(st.waiters.len());
            s.dials_in_progress = clamp_u32(st.dials_pending + st.unpooled_dials);
            s.in_use_conns = clamp_u32(st.checked_out + st.unpooled);
        }
        inner.counters.fill(&mut s);
        s.hits += locked_hits;
        if let Some(held) = inner.held_too_long() {
            s.leak_suspects = clamp_u32(held.len());
        }
        s
    }

    pub fn is_closed(&self) -> bool {
        self.inner().closed.load(Ordering::Acquire)
    }

    /// Closes idle conns and wakes every waiter with `Error::Closed`. Checked-out conns are
    /// closed when they come back. A second close returns `Error::Closed`.
    pub fn close(&self) -> Result<()> {
        let inner = self.inner();
        let (idle, deferred, sweep_fd) = {
            let mut st = inner.state.lock();
            if st.closed {
                return Err(Error::Closed);
            }
            st.closed = true;
            inner.closed.store(true, Ordering::Release);
            let st = &mut *st;
            for w in st.waiters.drain(..).chain(st.dial_waiters.drain(..)) {
                let _ = w.deliver(Grant::Failed(Error::Closed));
            }
            // Dials not started never start: a large refill is dropped at once, not
            // drained one job at a time by the workers.
            inner.fail_queued_dials(st, &Error::Closed);
            // `closed` is set: a sleeper checks it under `sleep_lock`, so none misses this.
            drop(
                inner
                    .sleep_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            inner.closed_cv.notify_all();
            (
                std::mem::take(&mut st.idle),
                std::mem::take(&mut st.deferred_userdata),
                st.sweep.close(),
            )
        };
        // Dials in flight end now: their connects and set-up reads are woken.
        inner.in_flight.close();
        inner.notify.signal();
        drop(idle);
        drop(sweep_fd);
        drop(deferred);
        Ok(())
    }

    /// Gives `conn` back untouched when another pool owns it.
    fn check_owner(&self, conn: Conn) -> std::result::Result<Conn, Rejected> {
        if conn.pool_id() == self.cell.id {
            return Ok(conn);
        }
        Err(Rejected {
            error: Error::invalid("conn belongs to another pool"),
            conn,
        })
    }
}

impl Pooler for ConnPool {
    fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        ConnPool::get_with(self, wait, cancel)
    }
    fn try_get(&self) -> Result<Conn> {
        ConnPool::try_get(self)
    }
    fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        ConnPool::put(self, conn)
    }
    fn remove(&self, conn: Conn, reason: Option<&str>) -> std::result::Result<(), Rejected> {
        ConnPool::remove(self, conn, reason)
    }
    fn new_conn(&self) -> Result<Conn> {
        ConnPool::new_conn(self)
    }
    fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        ConnPool::close_conn(self, conn)
    }
    fn len(&self) -> usize {
        ConnPool::len(self)
    }
    fn idle_len(&self) -> usize {
        ConnPool::idle_len(self)
    }
    fn stats(&self) -> Stats {
        ConnPool::stats(self)
    }
    fn close(&self) -> Result<()> {
        ConnPool::close(self)
    }
    fn pool_timeout(&self) -> Wait {
        self.inner().opts.pool_timeout
    }
    fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        ConnPool::notify_fd(self)
    }
    fn leaks(&self) -> Option<Vec<(u64, Duration)>> {
        ConnPool::leaks(self)
    }
}

impl Inner {
    fn new(opts: Options, id: u64, generation: u64, next_conn_id: u64, closed: bool) -> Inner {
        let opts_leaks = opts
            .leak_detection_threshold
            .map(|_| Mutex::new(HashMap::new()));
        let opts_overtake_ns = opts.overtake_window.map_or(0, |w| clock::ns(w).max(1));
        Inner {
            limits: health::Limits::new(
                opts.conn_max_idle_time,
                opts.health_check_bypass,
                opts.ping_after_idle,
                opts.conn_max_lifetime,
            ),
            id,
            generation,
            jitter_seed: AtomicU64::new(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed_from_clock()),
            opts,
            notify: Notifier::default(),
            leaks: opts_leaks,
            state: Mutex::new(State {
                closed,
                sweep: if closed {
                    SweepState::default()
                } else {
                    SweepState::new()
                },
                ..State::default()
            }),
            sleep_lock: std::sync::Mutex::new(()),
            closed_cv: std::sync::Condvar::new(),
            in_flight: InFlight::default(),
            closed: AtomicBool::new(closed),
            counters: Counters::default(),
            next_conn_id: AtomicU64::new(next_conn_id),
            epoch: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            overtake_ns: opts_overtake_ns,
        }
    }

    /// See `ConnPool::retire_all`. Runs on user threads and on the sentinel watcher thread.
    fn retire_conns(self: &Arc<Self>) {
        let idle = {
            let mut st = self.state.lock();
            self.epoch.fetch_add(1, Ordering::Relaxed);
            let mut idle = std::mem::take(&mut st.idle);
            self.count_retired(idle.len());
            // User data is freed on a user thread, never on a library thread.
            for conn in &mut idle {
                if let Some(ud) = conn.take_userdata_box() {
                    st.deferred_userdata.push(ud);
                }
            }
            self.refill(&mut st);
            idle
        };
        drop(idle);
    }

    fn count_retired(&self, n: usize) {
        let n = n as u64;
        self.retired.fetch_add(n, Ordering::Relaxed);
        self.counters.stale.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether a conn dialed for this pool belongs to the current epoch (call under `state`
    /// for a definitive answer).
    #[inline]
    fn is_current(&self, conn: &Conn) -> bool {
        conn.epoch() == self.epoch.load(Ordering::Relaxed)
    }

    /// Starts the min-idle prewarm, the reaper (if configured) and a sentinel dialer's
    /// watcher.
    fn start(self: &Arc<Self>) -> Result<()> {
        {
            let mut st = self.state.lock();
            self.refill(&mut st);
        }
        if let Some(s) = self.opts.dialer.sentinel() {
            let me: Arc<dyn Retire> = self.clone();
            s.attach(Arc::downgrade(&me))?;
        }
        if let Some(every) = self.opts.reaper_interval {
            let weak = Arc::downgrade(self);
            thread::Builder::new()
                .name("redispool-reaper".into())
                .spawn(move || reaper_loop(weak, every))
                .map_err(|e| Error::Internal(format!("cannot start the reaper thread: {e}")))?;
        }
        Ok(())
    }

    /// In a forked child, on the parent's state: closes this process's copies of the idle
    /// conns and of the notify fd (plain close: no QUIT, no shutdown, so the parent's
    /// sessions go on). Conns checked out are closed when they come back.
    fn forget_inherited(&self) {
        self.notify.forget();
        let Some(mut st) = self.state.try_lock() else {
            return;
        };
        let idle = std::mem::take(&mut st.idle);
        let deferred = std::mem::take(&mut st.deferred_userdata);
        drop(st);
        drop(idle);
        drop(deferred);
    }

    fn get_conn(self: &Arc<Self>, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        if cancel.is_some_and(|c| c.is_fired()) {
            return Err(Error::Canceled);
        }
        // The clock is read only off the fast path: a wait or a dial starts the timeout.
        let mut began: Began = None;
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
                handed = self.pop_idle(&mut st).map(|c| (c, false));
                if handed.is_some() {
                    self.refill(&mut st);
                }
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
                    let popped = self.pop_idle(&mut st);
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
    fn pop_idle(&self, st: &mut State) -> Option<Conn> {
        let mut conn = if self.opts.pool_fifo {
            st.idle.pop_front()
        } else {
            st.idle.pop_back()
        }?;
        st.checked_out += 1;
        st.hits += 1;
        st.sweep.stamp(&mut conn);
        Some(conn)
    }

    /// A put while gets wait (kept out of line: the put of an uncontended pool never
    /// comes here). While they may be overtaken, the conn goes idle for whoever comes
    /// first and one waiter is woken to look (`Handed::Idle`); otherwise it goes to the
    /// oldest waiter (`Handed::Waiter`). Gives the conn back when no waiter still waits.
    #[inline(never)]
    fn hand_over(&self, st: &mut State, mut conn: Conn) -> std::result::Result<Handed, Conn> {
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
                st.hits += 1;
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
    fn may_overtake(&self, st: &State) -> bool {
        !st.idle.is_empty() && self.overtake_open(st)
    }

    /// Whether queued gets may be overtaken: an overtake window is set and the oldest
    /// waiter has waited less than it. Reads the clock only then.
    #[inline]
    fn overtake_open(&self, st: &State) -> bool {
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

    /// Keeps one waiter on its way while gets may overtake the queue: with a turn free,
    /// waiters queued and none woken yet, gives the oldest `Grant::Retry`. Returns its
    /// wake-up, to drop once the lock is released. (In strict order a freed turn goes
    /// straight to the oldest waiter instead, and turns are never free with gets queued.)
    fn nudge(&self, st: &mut State) -> Option<Wake> {
        if self.overtake_ns == 0
            || st.retry_pending
            || st.closed
            || st.turns_used >= self.opts.pool_size
        {
            return None;
        }
        let wake = hand_to_oldest_later(&mut st.waiters, Grant::Retry).ok()?;
        st.retry_pending = true;
        Some(wake)
    }

    /// A waiter woken with `Grant::Retry` looks again: with a turn free it takes it, with
    /// an idle conn if there is one (`Grant::Conn`; otherwise `Grant::Turn`, and it dials),
    /// plus the wake-up of the next waiter when turns remain free. None when gets took
    /// them first: the caller queues again at the front.
    fn take_after_retry(&self, st: &mut State) -> Result<Option<(Grant, Option<Wake>)>> {
        st.retry_pending = false;
        if st.closed {
            return Err(Error::Closed);
        }
        if st.turns_used >= self.opts.pool_size {
            return Ok(None);
        }
        st.turns_used += 1;
        let grant = match self.pop_idle(st) {
            Some(conn) => Grant::Conn(conn, false),
            None => Grant::Turn,
        };
        let wake = self.nudge(st);
        Ok(Some((grant, wake)))
    }

    /// Health-checks a conn taken for a get. A stale conn is closed and counted; its turn
    /// stays with the caller. `ping`: the get's wait and its (start, deadline), read from
    /// the clock here if the get has not yet (None: no PING check, as for `try_get`).
    fn check_health(&self, mut conn: Conn, ping: Option<(Wait, &mut Began)>) -> Option<Conn> {
        // The precise clock: a sweep vouches for 0.5 ms.
        let now = clock::now_ns();
        let mut vouched = SweepState::vouches(&conn, now);
        if !vouched && !conn.needs_peek() && conn.is_swept() {
            // The sweep that stamped it is 0.5 ms old (or none did): sweep, if that is
            // still due, and look again.
            vouched = self.sweep_for(&mut conn, now);
        }
        let (ping_after, ping) = match ping {
            Some(p) => (self.limits.ping_after_ns, Some(p)),
            None => (None, None),
        };
        let health = health::check(&conn, now, &self.limits, vouched).and_then(|()| {
            health::check_ping(&mut conn, now, ping_after, || {
                ping.and_then(|(wait, began)| self.ping_cap(wait, began))
            })
        });
        match health {
            Ok(()) => {
                conn.set_used_at(now);
                conn.clear_needs_peek();
                Some(conn)
            }
            Err(_) => {
                {
                    let mut st = self.state.lock();
                    st.checked_out -= 1;
                    // Counted as a hit when it was taken.
                    st.hits -= 1;
                    Counters::inc(&self.counters.stale);
                }
                drop(conn);
                None
            }
        }
    }

    /// Sweeps if the last sweep is due and stamps `conn` again (`sweep::SweepState::sweep_for`).
    #[cold]
    fn sweep_for(&self, conn: &mut Conn, now: u64) -> bool {
        let mut st = self.state.lock();
        let st = &mut *st;
        let conns = st.total();
        st.sweep
            .sweep_for(&mut st.idle, conn, now, self.opts.pool_fifo, conns)
    }

    /// The bound of a get's PING check (on top of the conn's read timeout): the get's own
    /// deadline under `Wait::For`, whose clock starts here if the get has not read it yet.
    /// A get that does not wait for turns (`NoWait`) or waits forever still gets a bound:
    /// the dial timeout (`PING_CAP_WITHOUT_DIAL_TIMEOUT` without one), since a conn that
    /// takes longer to answer PING than a new conn takes to dial is better replaced.
    #[cold]
    fn ping_cap(&self, wait: Wait, began: &mut Began) -> Option<io::Deadline> {
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

    /// The miss path: hand the turn to a dial job and wait for its conn.
    fn dial_for_get(
        self: &Arc<Self>,
        start: Instant,
        deadline: Option<Instant>,
        wait: Wait,
        cancel: Option<&CancelToken>,
    ) -> Result<Conn> {
        let w = Arc::new(Waiter::new());
        {
            let mut st = self.state.lock();
            if st.closed {
                st.turns_used -= 1;
                return Err(Error::Closed);
            }
            if let Err(e) = self.check_active_limit(&st) {
                self.release_turn(&mut st);
                return Err(e);
            }
            if st.dial_failures >= self.opts.pool_size {
                if let Some(e) = st.last_dial_error.clone() {
                    self.release_turn(&mut st);
                    return Err(e);
                }
            }
            st.dials_pending += 1;
            st.dial_waiters.push(w.clone());
            st.dial_queue.push_back(DialJob {
                initiator: Some(w.clone()),
                refill: false,
            });
            self.wake_dial_worker(&mut st);
        }
        let dial_deadline = match wait {
            Wait::For(_) => deadline,
            Wait::Forever => None,
            // "Do not wait" is about turns; the dial itself is still awaited, bounded by
            // its own worst case.
            Wait::NoWait => self.opts.dial_timeout.and_then(|t| {
                let attempts = self.opts.dialer_retries;
                let worst = t.saturating_mul(attempts)
                    + self.opts.dialer_retry_backoff.saturating_mul(attempts - 1);
                start.checked_add(worst)
            }),
        };
        match self.wait_for(
            &w,
            dial_deadline,
            cancel,
            start,
            " waiting for a new connection",
        )? {
            Grant::Conn(conn, _) => Ok(conn),
            Grant::Failed(e) => Err(e),
            Grant::Turn => {
                // Dial waiters are only ever given conns or errors.
                let mut st = self.state.lock();
                self.release_turn(&mut st);
                Err(Error::Internal("dial waiter was given a bare turn".into()))
            }
            Grant::Retry => Err(Error::Internal("dial waiter was given a retry".into())),
        }
    }

    /// Leak detection: the conns checked out longer than the threshold, with how long each
    /// has been held (unordered); None when leak detection is off.
    fn held_too_long(&self) -> Option<Vec<(u64, Duration)>> {
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
    fn track(&self, conn: &Conn) {
        if let Some(out) = &self.leaks {
            out.lock().insert(conn.id(), Instant::now());
        }
    }

    /// Leak detection: `conn` is back; counts it when it was held too long.
    #[inline]
    fn untrack(&self, conn: &Conn) {
        if self.leaks.is_none() {
            return;
        }
        self.untrack_slow(conn);
    }

    #[cold]
    fn untrack_slow(&self, conn: &Conn) {
        let (Some(out), Some(threshold)) = (&self.leaks, self.opts.leak_detection_threshold) else {
            return;
        };
        if let Some(since) = out.lock().remove(&conn.id()) {
            if since.elapsed() > threshold {
                Counters::inc(&self.counters.late_returns);
            }
        }
    }

    /// A `try_get` miss: when the pool has room and nothing is queued, one dial on a dial
    /// thread, whose conn goes to the idle list (or a waiter that came meanwhile).
    fn dial_in_background(self: &Arc<Self>, st: &mut State) {
        let size = self.opts.pool_size;
        if !st.waiters.is_empty()
            || !st.idle.is_empty()
            || st.turns_used >= size
            || st.dial_failures >= size
            || self.check_active_limit(st).is_err()
        {
            return;
        }
        Counters::inc(&self.counters.misses);
        st.turns_used += 1;
        st.dials_pending += 1;
        st.dial_queue.push_back(DialJob {
            initiator: None,
            refill: false,
        });
        self.wake_dial_worker(st);
    }

    /// Waits for a grant; on timeout or cancel, withdraws (taking a grant that raced in).
    fn wait_for(
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

    fn timeout_error(&self, st: &State, start: Instant, what: &str) -> Error {
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

    fn check_active_limit(&self, st: &State) -> Result<()> {
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
    fn release_turn(&self, st: &mut State) {
        if hand_to_oldest(&mut st.waiters, Grant::Turn).is_some() {
            st.turns_used -= 1;
        }
    }

    /// Keeps `min_idle_conns` filled with spare turns, never beyond `pool_size` conns.
    #[inline]
    fn refill(self: &Arc<Self>, st: &mut State) {
        if self.opts.min_idle_conns != 0 {
            self.refill_slow(st);
        }
    }

    fn refill_slow(self: &Arc<Self>, st: &mut State) {
        let min = self.opts.min_idle_conns;
        if st.closed || st.dial_failures >= self.opts.pool_size {
            return;
        }
        if !st.waiters.is_empty() {
            return;
        }
        // Counted, not looped: min_idle_conns may be in the millions.
        let size = self.opts.pool_size;
        let n = min
            .saturating_sub(st.idle.len() + st.refill_dials)
            .min(size.saturating_sub(st.total() + st.dials_pending))
            .min(size.saturating_sub(st.turns_used));
        if n == 0 {
            return;
        }
        st.turns_used += n;
        st.dials_pending += n;
        st.refill_dials += n;
        st.refills_queued += n;
        self.wake_dial_worker(st);
    }

    /// Jobs were queued: a new worker is started while fewer than `max_concurrent_dials`
    /// run (else a running one takes them next). One at a time: a worker that finds more
    /// jobs queued behind its own starts the next (`dial_worker`), so a large refill never
    /// starts a crowd of threads under the pool lock or in `ConnPool::new`.
    fn wake_dial_worker(self: &Arc<Self>, st: &mut State) {
        if st.dial_workers >= self.opts.max_concurrent_dials {
            return;
        }
        st.dial_workers += 1;
        if let Err(e) = self.start_dial_worker() {
            st.dial_workers -= 1;
            if st.dial_workers == 0 {
                // No thread will ever run the queued jobs: fail them now.
                self.fail_queued_dials(st, &e);
            }
        }
    }

    fn start_dial_worker(self: &Arc<Self>) -> std::result::Result<(), Error> {
        let inner = Arc::clone(self);
        thread::Builder::new()
            .name("redispool-dial".into())
            .spawn(move || inner.dial_worker())
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("cannot start a dial thread: {e}")))
    }

    fn fail_queued_dials(&self, st: &mut State, err: &Error) {
        while let Some(job) = st.dial_queue.pop_front() {
            let _ = self.complete_dial(st, job, Err(err.clone()));
        }
        // Refills have nobody waiting: their turns go to waiters, or back.
        let n = std::mem::take(&mut st.refills_queued);
        st.dials_pending -= n;
        st.refill_dials -= n;
        let mut left = n;
        while left > 0 && !st.closed && !st.waiters.is_empty() {
            self.release_turn(st);
            left -= 1;
        }
        st.turns_used -= left;
    }

    /// The next job: dials gets wait for first, then refills.
    fn next_dial_job(&self, st: &mut State) -> Option<DialJob> {
        if let Some(job) = st.dial_queue.pop_front() {
            return Some(job);
        }
        if st.refills_queued == 0 {
            return None;
        }
        st.refills_queued -= 1;
        Some(DialJob {
            initiator: None,
            refill: true,
        })
    }

    /// A dial worker: runs queued dial jobs one after another and ends when none is left.
    /// It does not linger for more: a thread alive at fork() leaves its memory unreachable
    /// in the child (valgrind reports it lost there), and one start per burst of misses
    /// costs little next to the dials.
    fn dial_worker(self: Arc<Self>) {
        loop {
            let (job, start_another) = {
                let mut st = self.state.lock();
                let Some(job) = self.next_dial_job(&mut st) else {
                    st.dial_workers -= 1;
                    return;
                };
                // More jobs behind this one: another worker takes them meanwhile.
                let more = !st.dial_queue.is_empty() || st.refills_queued > 0;
                let start_another =
                    more && !st.closed && st.dial_workers < self.opts.max_concurrent_dials;
                if start_another {
                    st.dial_workers += 1;
                }
                (job, start_another)
            };
            // Started outside the lock: thread creation takes tens of microseconds.
            if start_another && self.start_dial_worker().is_err() {
                self.state.lock().dial_workers -= 1;
            }
            let res = self.dial_conn(true);
            let surplus = {
                let mut st = self.state.lock();
                self.note_dial_result(&mut st, &res);
                self.complete_dial(&mut st, job, res)
            };
            self.notify.signal();
            drop(surplus);
        }
    }

    /// Updates the fast-fail bookkeeping after a dial.
    fn note_dial_result(self: &Arc<Self>, st: &mut State, res: &Result<Conn>) {
        match res {
            Ok(_) => {
                st.dial_failures = 0;
                Counters::inc(&self.counters.dials);
            }
            Err(Error::Closed) => {}
            Err(e) => {
                Counters::inc(&self.counters.dial_errors);
                st.dial_failures += 1;
                st.last_dial_error = Some(e.clone());
                if st.dial_failures >= self.opts.pool_size && !st.probe_running && !st.closed {
                    self.start_probe(st);
                }
            }
        }
    }

    /// Delivers a dial's outcome: to the get that started it, else the oldest waiter, else
    /// the idle list. Returns a conn to close outside the lock.
    fn complete_dial(&self, st: &mut State, job: DialJob, res: Result<Conn>) -> Option<Conn> {
        st.dials_pending -= 1;
        if job.refill {
            st.refill_dials -= 1;
        }
        if let Some(w) = &job.initiator {
            if let Some(i) = st.dial_waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
                st.dial_waiters.swap_remove(i);
            }
        }
        let conn = match res {
            Ok(conn) => conn,
            Err(e) => {
                if let Some(w) = job.initiator {
                    let _ = w.deliver(Grant::Failed(e));
                }
                if st.closed {
                    st.turns_used -= 1;
                } else {
                    self.release_turn(st);
                }
                return None;
            }
        };
        if st.closed {
            st.turns_used -= 1;
            return Some(conn);
        }
        if !self.is_current(&conn) {
            // Retired while it was being dialed (`dial_conn` dials again when it sees this
            // first; this is the race after that check): the getter sees a dial error.
            self.count_retired(1);
            if let Some(w) = job.initiator {
                let _ = w.deliver(Grant::Failed(self.retired_dial_error()));
            }
            self.release_turn(st);
            return Some(conn);
        }
        st.checked_out += 1;
        let mut grant = Grant::Conn(conn, true);
        if let Some(w) = job.initiator {
            match w.deliver(grant) {
                Ok(()) => return None,
                Err(back) => grant = back,
            }
        }
        let Some(Grant::Conn(conn, _)) = hand_to_oldest(&mut st.waiters, grant) else {
            return None;
        };
        st.checked_out -= 1;
        st.turns_used -= 1;
        st.idle.push_back(conn);
        None
    }

    /// One dial with retries and backoff; the backoff ends early when the pool closes.
    /// Dials with `dialer_retries` attempts, `dialer_retry_backoff` apart. A refused
    /// session set-up ends the dial at once: the same settings would be refused again.
    fn dial_conn(&self, pooled: bool) -> Result<Conn> {
        let attempts = self.opts.dialer_retries;
        let mut last = Error::Internal("no dial attempt made".into());
        for attempt in 0..attempts {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            match self.dial_once(pooled) {
                Ok(conn) if self.is_current(&conn) => return Ok(conn),
                // Retired while being dialed (the master changed): dial again at once.
                Ok(conn) => {
                    self.count_retired(1);
                    drop(conn);
                    last = self.retired_dial_error();
                    continue;
                }
                Err(e @ Error::Handshake(_)) => return Err(e),
                Err(e) => last = e,
            }
            if attempt + 1 < attempts && !self.opts.dialer_retry_backoff.is_zero() {
                self.sleep_unless_closed(self.opts.dialer_retry_backoff);
            }
        }
        if let Error::Dial { message, errno } = last {
            let message = if attempts > 1 {
                format!("{message} (after {attempts} attempts)")
            } else {
                message
            };
            return Err(Error::Dial { message, errno });
        }
        Err(last)
    }

    fn retired_dial_error(&self) -> Error {
        Error::Dial {
            message: format!(
                "redis: dial {}: the master changed while dialing (failover)",
                self.opts.dialer.target()
            ),
            errno: None,
        }
    }

    /// One attempt: connect, then the Redis session set-up (and, for a sentinel dialer, the
    /// ROLE check). Every conn the pool ever hands out (gets, refills, the fast-fail probe,
    /// new_conn) comes from here. The conn carries the epoch read before the dialer chose
    /// its address, so a `retire_all` meanwhile makes it stale.
    fn dial_once(&self, pooled: bool) -> Result<Conn> {
        let epoch = self.epoch.load(Ordering::Acquire);
        // One deadline for the whole attempt: resolution, connect, set-up, ROLE check.
        let deadline = deadline_after(self.opts.dial_timeout);
        let sock = match catch_unwind(AssertUnwindSafe(|| {
            self.opts
                .dialer
                .dial_within(deadline, Some(&self.in_flight))
        })) {
            Ok(res) => res?,
            Err(_) => return Err(Error::Internal("the dialer panicked".into())),
        };
        let mut conn = self.wrap(sock, pooled, epoch);
        // Registered while it is set up, so that closing the pool ends the set-up at once.
        let Ok(registered) = self.in_flight.register(conn.fd()) else {
            return Err(Error::Closed);
        };
        // The default dialer reaches a Redis server: check it accepted the conn. A custom
        // dialer may hand over anything, so an empty session sends nothing there.
        let ping = !matches!(self.opts.dialer, Dialer::Custom(_));
        // Without a read (or write) timeout the set-up and the ROLE check still end: by the
        // dial timeout, as the PING check of a get does (5 s without one either).
        let unbounded = self
            .opts
            .dial_timeout
            .unwrap_or(PING_CAP_WITHOUT_DIAL_TIMEOUT);
        let res = conn.set_up(&self.opts.session, ping, unbounded, deadline);
        let res = match (res, self.opts.dialer.sentinel()) {
            (Ok(()), Some(s)) => {
                let own = match self.opts.read_timeout {
                    Some(_) => None,
                    None => io::Deadline::after(Some(unbounded)),
                };
                let dial = deadline.map(|d| io::Deadline::at(d, unbounded));
                Ok(s.verify_master(&mut conn, io::Deadline::earliest(own, dial)))
            }
            (res, _) => res.map(Ok),
        };
        // Out of the registry before the socket can be closed.
        drop(registered);
        if self.in_flight.is_closed() {
            return Err(Error::Closed);
        }
        match res {
            Ok(checked) => checked.map(|()| conn),
            // Full now, maybe not in a moment: a dial failure (retried, counted), not a
            // refusal of the settings.
            Err(HandshakeError::Refused { text, .. })
                if text.starts_with("ERR max number of clients") =>
            {
                Err(Error::Dial {
                    message: format!("redis: dial {}: {text}", self.opts.dialer.target()),
                    errno: None,
                })
            }
            // Out of step (a banner, an extra reply): never handed out, where every reply
            // would answer the command before; not retried, as a refusal is not.
            Err(e @ (HandshakeError::Refused { .. } | HandshakeError::OutOfStep(_))) => {
                Err(Error::Handshake(format!(
                    "{e} (on a new conn to {})",
                    self.opts.dialer.target()
                )))
            }
            Err(e @ HandshakeError::Io { .. }) => Err(Error::Dial {
                message: format!("redis: dial {}: {e}", self.opts.dialer.target()),
                errno: None,
            }),
        }
    }

    fn wrap(&self, sock: Socket, pooled: bool, epoch: u64) -> Conn {
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let expires_at = self.opts.conn_max_lifetime.map_or(u64::MAX, |life| {
            let jitter = self.opts.conn_max_lifetime_jitter;
            let life = if jitter.is_zero() {
                life
            } else {
                // Uniform in [life - jitter, life + jitter), as go-redis PR #3666.
                let span = nanos(jitter).saturating_mul(2).max(1);
                let r = self.next_random() % span;
                (life + Duration::from_nanos(r)).saturating_sub(jitter)
            };
            clock::now_ns().saturating_add(clock::ns(life))
        });
        let mut conn = Conn::new(
            sock,
            id,
            self.id,
            expires_at,
            pooled,
            self.generation as u32,
        );
        conn.set_timeouts(self.opts.read_timeout, self.opts.write_timeout);
        conn.set_reply_limits(self.opts.reply_limits);
        let close_on_readonly =
            self.opts.close_on_readonly || matches!(self.opts.dialer, Dialer::Sentinel(_));
        conn.set_failover_state(epoch, close_on_readonly);
        if pooled {
            self.state.lock().sweep.register(&mut conn);
        }
        conn
    }

    fn next_random(&self) -> u64 {
        // splitmix64 over an atomic counter: enough to spread expiries.
        let mut z = self
            .jitter_seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sleeps `d`, or less when the pool closes (dial backoffs, the probe, the reaper).
    /// Waits on a std condvar rather than a parking_lot one (see `sleep_lock`).
    fn sleep_unless_closed(&self, d: Duration) {
        let Some(until) = Instant::now().checked_add(d) else {
            return;
        };
        let mut guard = self
            .sleep_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !self.closed.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            guard = self
                .closed_cv
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn start_probe(self: &Arc<Self>, st: &mut State) {
        let weak = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("redispool-probe".into())
            .spawn(move || probe_loop(weak));
        st.probe_running = spawned.is_ok();
    }

    /// Closes idle conns past their idle time or lifetime; returns what to drop.
    fn reap(self: &Arc<Self>, st: &mut State) -> Vec<Conn> {
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

impl Retire for Inner {
    fn retire_all(self: Arc<Self>) {
        self.retire_conns();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn probe_loop(weak: Weak<Inner>) {
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

fn reaper_loop(weak: Weak<Inner>, every: Duration) {
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
            inner.reap(&mut st)
        };
        drop(stale);
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

fn clamp_u32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, nanos)
}
