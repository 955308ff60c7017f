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
//!
//! One file per concept: this one holds the pool's state and its public face (new, put,
//! remove, close, stats); `get` the get path, `dialing` the dial jobs and one dial attempt,
//! `probe` the fast-fail probe, `reaper` the stale-conn reaper, `leaks` leak detection,
//! `retire` retiring every conn on a failover, `fork_cell` the state a forked child swaps in.

mod bag;
mod dialing;
mod fork_cell;
mod get;
mod leaks;
mod probe;
mod reaper;
mod retire;

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::Socket;

use super::cancel::CancelToken;
use super::clock;
use super::conn::{Conn, READONLY_REASON};
use super::dial::Dialer;
use super::dial_source::{DialSource, Retire};
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
use crate::error::{Error, Result};
use crate::redis::HandshakeError;
use crate::redis::deadline::instant_after;
use crate::redis::io;
use dialing::{DialJob, seed_from_clock};
use fork_cell::Cell;

/// When a get's clock started and when it must be over (None = never): read only off the
/// fast path, when the get waits, dials or PINGs.
type Began = Option<(Instant, Option<Instant>)>;

/// The bound of a get's PING check when neither the get (`Wait::Forever`, `NoWait`) nor the
/// dial timeout gives one, and the read timeout is none either: go-redis's default dial
/// timeout.
pub const PING_CAP_WITHOUT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A thread-safe connection pool. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct ConnPool {
    cell: Arc<Cell>,
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
    /// `epoch` again, shared with the conns of a pool with a dial source, so that a
    /// checked-out conn refuses commands once retired (`Conn::check_not_retired`). Not
    /// `epoch` itself: put reads that one inline, without an indirection.
    retire_signal: Option<Arc<AtomicU64>>,
    /// `opts.overtake_window` in ns; 0 = strict first come, first served.
    overtake_ns: u64,
    /// Per-thread parking slots: the lock-free get and put of an uncontended pool.
    bag: bag::Bag,
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
    /// Waiters given `Grant::Retry` that have not looked at the idle list yet. While gets
    /// may overtake the queue, each free turn with gets queued has one waiter on its way
    /// to it (`nudge`), and no more (no thundering herd): when load drops, the queue
    /// drains through every free conn at once, not one woken waiter after another.
    retries_pending: usize,
    /// Hits counted under the lock, so a get served from the idle list touches no shared
    /// counter: every conn taken for a get (idle pops, puts handed to a waiter), less those
    /// then found stale. `Stats::hits` is this plus `Counters::hits` (fresh dials) plus
    /// the claims of parked conns (`bag`); it wraps, as a stale claim subtracts here.
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

    pub fn options(&self) -> &Options {
        &self.inner().opts
    }

    /// The dial source of a pool whose dialer is `Dialer::Source` (its own copy, made by
    /// `new`). The sentinel module gets its state back from it (`ConnPool::sentinel`).
    pub fn dial_source(&self) -> Option<&Arc<dyn DialSource>> {
        self.inner().opts.dialer.source()
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
        if !inner.closed.load(Ordering::Acquire)
            && let Some(conn) = inner.try_claim_parked()
        {
            inner.track(&conn);
            return Ok(conn);
        }
        loop {
            let conn = {
                let mut st = inner.state.lock();
                if st.closed {
                    return Err(Error::Closed);
                }
                // Waiters woken to take an idle conn (`Grant::Retry`) have left the queue
                // but are still ahead: the conns and turns they will take are not free.
                let ahead = st.retries_pending;
                let popped = if st.waiters.is_empty()
                    && st.idle.len() > ahead
                    && st.turns_used + ahead < inner.opts.pool_size
                {
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

    /// The readiness fd of `pool_notify_fd`, made on first use.
    pub fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        let inner = self.inner();
        let fd = inner.notify.fd()?;
        inner.stop_parking_for_notify();
        Ok(fd)
    }

    /// Returns a conn for reuse. A conn from `new_conn` is closed instead.
    /// A broken conn (a command failed mid-way) is removed instead. One whose session its
    /// commands changed (`Conn::session_changed`) is pooled, and restored by the get that
    /// takes it (`health::check_restore`, counted in `Stats::reset_conns`).
    pub fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        if conn.must_remove_on_put() {
            return self.remove(conn, None);
        }
        let conn = self.check_owner(conn)?;
        let inner = self.inner();
        if conn.is_inherited() {
            // Checked out before fork(): the parent's session. Close this process's copy.
            drop(conn);
            return Ok(());
        }
        inner.untrack(&conn);
        // The uncontended path: parked in this thread's slot, no lock (`bag`).
        match inner.park(conn) {
            bag::Parked::Yes => Ok(()),
            bag::Parked::Back(conn) => self.put_locked(conn),
            bag::Parked::Back2(a, b) => {
                self.put_locked(a)?;
                self.put_locked(b)
            }
        }
    }

    /// A put that was not parked: under the pool lock, to a waiter or the idle list.
    fn put_locked(&self, mut conn: Conn) -> std::result::Result<(), Rejected> {
        let inner = self.inner();
        let deferred;
        let mut surplus = None;
        {
            let mut st = inner.state.lock();
            inner.bag.note_waiters(&st);
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
        if let Some(s) = inner.opts.dialer.source() {
            // A conn retired already (dialed before the target changed) brings no news.
            if conn.broken_reason() == Some(READONLY_REASON) && inner.is_current(&conn) {
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

    /// Idle conns, those parked in threads' slots (`bag`) included.
    pub fn idle_len(&self) -> usize {
        let inner = self.inner();
        let idle = inner.state.lock().idle.len();
        idle + inner.bag.parked()
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner();
        let mut s = Stats::default();
        let locked_hits;
        {
            let st = inner.state.lock();
            locked_hits = st.hits;
            s.total_conns = clamp_u32(st.total());
            s.waiting = clamp_u32(st.waiters.len());
            s.dials_in_progress = clamp_u32(st.dials_pending + st.unpooled_dials);
            // Parked conns count as checked out in `State`, as idle for users (`bag`).
            let parked = inner.bag.parked().min(st.checked_out);
            s.idle_conns = clamp_u32(st.idle.len() + parked);
            s.in_use_conns = clamp_u32(st.checked_out - parked + st.unpooled);
        }
        inner.counters.fill(&mut s);
        s.hits = s
            .hits
            .wrapping_add(locked_hits)
            .wrapping_add(inner.bag.hits());
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
            // Parked conns are closed with the idle ones, outside the lock.
            let parked = inner.drain_parked_on_close(st);
            st.idle.extend(parked);
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
    #[inline]
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
        let retire_signal =
            matches!(opts.dialer, Dialer::Source(_)).then(|| Arc::new(AtomicU64::new(0)));
        let bag = bag::Bag::new(&opts);
        Inner {
            bag,
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
            retire_signal,
            overtake_ns: opts_overtake_ns,
        }
    }

    /// Starts the min-idle prewarm, the reaper (if configured) and links a dial source
    /// (which starts the sentinel watcher).
    fn start(self: &Arc<Self>) -> Result<()> {
        {
            let mut st = self.state.lock();
            self.refill(&mut st);
        }
        if let Some(s) = self.opts.dialer.source() {
            let me: Arc<dyn Retire> = self.clone();
            Arc::clone(s).attach(Arc::downgrade(&me))?;
        }
        if let Some(every) = self.opts.reaper_interval {
            let weak = Arc::downgrade(self);
            thread::Builder::new()
                .name("redispool-reaper".into())
                .spawn(move || reaper::reaper_loop(weak, every))
                .map_err(|e| Error::Internal(format!("cannot start the reaper thread: {e}")))?;
        }
        Ok(())
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

fn clamp_u32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}
