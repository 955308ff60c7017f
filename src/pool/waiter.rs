//! A caller blocked in `get`: waiting for a turn, or for the conn its dial produces.
//!
//! Grants are delivered with the pool lock held, and a waiter that gives up withdraws with
//! the pool lock held too, so a grant is never lost between the two: `withdraw` returns a
//! grant that arrived after the wait ended, and the caller then owns it.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread::{self, Thread};
use std::time::Instant;

use super::cancel::CancelToken;
use super::conn::Conn;
use crate::error::Error;

/// What a waiter is given.
pub(crate) enum Grant {
    /// A turn together with a conn: a put conn (`fresh == false`) or a new dial (`fresh == true`).
    Conn(Conn, bool),
    /// A turn without a conn: the waiter pops the idle list or dials.
    Turn,
    /// The wait ends with this error and no turn (dial failed, pool closed).
    Failed(Error),
    /// No turn: a conn went idle while gets may overtake the queue
    /// (`Options::overtake_window`). The waiter looks at the idle list again and, when a
    /// get took the conn first, queues again at the front.
    Retry,
}

/// `Waiter::state` values.
const WAITING: u32 = 0;
const GRANTED: u32 = 1;
/// The wait is over: the grant was taken, or the waiter withdrew.
const DONE: u32 = 2;

pub(crate) enum WaitEnd {
    Granted(Grant),
    TimedOut,
    Canceled,
}

/// Waiters kept per thread: enough that one is free even while others are still held for
/// a moment by the thread that granted them.
const SPARES_PER_THREAD: usize = 4;

thread_local! {
    /// Waiters this thread used before, for `Waiter::acquire`.
    static SPARES: std::cell::RefCell<Vec<Arc<Waiter>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// One blocked get. No lock of its own: grants and withdrawals happen under the pool's
/// lock, which orders them; the waiting thread reads `state` (Acquire) and sleeps in
/// `thread::park`, so a grant to a waiter that has not gone to sleep yet costs no
/// syscall, and the wake-up of one that has can happen after the pool lock is released
/// (`Wake`).
pub(crate) struct Waiter {
    state: AtomicU32,
    /// Written by the granter while `state` is WAITING (under the pool lock), read by the
    /// waiter once it sees GRANTED, or by `withdraw` under the pool lock.
    grant: UnsafeCell<Option<Grant>>,
    /// The thread that waits (waiters are per thread: `acquire`, or made on the spot).
    thread: Thread,
    /// When the get first queued (`clock::now_ns`), kept when it queues again after a
    /// `Grant::Retry`: how long the oldest waiter has waited decides whether gets may
    /// still overtake it. Written and read under the pool lock.
    queued_at_ns: AtomicU64,
}

// SAFETY: `grant` is handed over through `state`: written only while WAITING by the one
// granter (pool lock held, so no other granter or `withdraw` runs), published by the
// Release store of GRANTED, and taken only by whoever then moves `state` to DONE (the
// waiter after an Acquire load of GRANTED, or `withdraw` under the pool lock); nothing
// touches it after DONE until `acquire` resets an unshared waiter.
unsafe impl Sync for Waiter {}
unsafe impl Send for Waiter {}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            state: AtomicU32::new(WAITING),
            grant: UnsafeCell::new(None),
            thread: thread::current(),
            queued_at_ns: AtomicU64::new(0),
        }
    }

    /// Records when the get this waiter stands for first queued. Callers hold the pool lock.
    pub(crate) fn set_queued_at(&self, ns: u64) {
        self.queued_at_ns.store(ns, Ordering::Relaxed);
    }

    /// When the get first queued. Callers hold the pool lock.
    pub(crate) fn queued_at(&self) -> u64 {
        self.queued_at_ns.load(Ordering::Relaxed)
    }

    /// A waiter whose wait is over, as `acquire` expects its spares.
    fn done() -> Self {
        let w = Waiter::new();
        w.state.store(DONE, Ordering::Relaxed);
        w
    }

    /// Hands `grant` over and wakes the waiter at once. Fails, giving it back, when the
    /// waiter already has one or withdrew. Callers hold the pool lock.
    pub(crate) fn deliver(&self, grant: Grant) -> Result<(), Grant> {
        self.grant(grant)?;
        self.thread.unpark();
        Ok(())
    }

    /// Stores the grant for the waiter, without waking it. Callers hold the pool lock.
    fn grant(&self, grant: Grant) -> Result<(), Grant> {
        if self.state.load(Ordering::Acquire) != WAITING {
            return Err(grant);
        }
        // SAFETY: WAITING, and the caller holds the pool lock: this is the only granter,
        // and the waiter does not read `grant` before it sees GRANTED.
        unsafe { *self.grant.get() = Some(grant) };
        self.state.store(GRANTED, Ordering::Release);
        Ok(())
    }

    /// A waiter for this thread's next wait: one it used before that nothing else holds any
    /// more (the thread that granted it may still hold it for an instant, a dial job or a
    /// cancel token for longer), else a new one. So a thread that waits for a turn over and
    /// over allocates nothing in steady state.
    pub(crate) fn acquire() -> Arc<Waiter> {
        let reused = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.capacity() == 0 {
                // A thread's first wait makes all its spares at once: a waiter can still be
                // held for an instant by the thread that granted it when this thread waits
                // again, and that must not cost an allocation later, in steady state.
                spares.reserve_exact(SPARES_PER_THREAD);
                spares.extend((0..SPARES_PER_THREAD).map(|_| Arc::new(Waiter::done())));
            }
            let i = spares
                .iter()
                .position(|w| Arc::strong_count(w) == 1 && Arc::weak_count(w) == 0)?;
            let w = spares.swap_remove(i);
            // A finished wait leaves the waiter DONE with its grant taken.
            if w.state.load(Ordering::Acquire) != DONE {
                return None;
            }
            w.state.store(WAITING, Ordering::Relaxed);
            Some(w)
        });
        reused
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(Waiter::new()))
    }

    /// Keeps `w` for this thread's later `acquire`s (once its wait is over).
    pub(crate) fn recycle(w: Arc<Waiter>) {
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.capacity() == 0 {
                spares.reserve_exact(SPARES_PER_THREAD);
            }
            if spares.len() < SPARES_PER_THREAD {
                spares.push(w);
            }
        });
    }

    /// Wakes the waiting thread to look again (a cancel token fired).
    pub(crate) fn wake(&self) {
        self.thread.unpark();
    }

    /// Takes the grant once `state` is GRANTED.
    fn take_granted(&self) -> Grant {
        // SAFETY: GRANTED was observed with Acquire (or under the pool lock), so the
        // granter's write is visible and finished; moving to DONE right after makes this
        // the only reader.
        let g = unsafe { (*self.grant.get()).take() }.expect("GRANTED waiter holds a grant");
        self.state.store(DONE, Ordering::Relaxed);
        g
    }

    /// Blocks until a grant arrives, `deadline` passes (None = never) or `cancel` fires.
    pub(crate) fn wait(&self, deadline: Option<Instant>, cancel: Option<&CancelToken>) -> WaitEnd {
        loop {
            if self.state.load(Ordering::Acquire) == GRANTED {
                return WaitEnd::Granted(self.take_granted());
            }
            if cancel.is_some_and(|c| c.is_fired()) {
                return WaitEnd::Canceled;
            }
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return WaitEnd::TimedOut;
                    }
                    thread::park_timeout(d - now);
                }
                None => thread::park(),
            }
        }
    }

    /// Stops waiting. Returns a grant that arrived in the meantime. Callers hold the pool lock.
    pub(crate) fn withdraw(&self) -> Option<Grant> {
        match self.state.load(Ordering::Acquire) {
            GRANTED => Some(self.take_granted()),
            _ => {
                self.state.store(DONE, Ordering::Relaxed);
                None
            }
        }
    }
}

/// A granted waiter's wake-up, done when dropped. It holds the waiting thread, not the
/// waiter, so the waiter is free for its thread's next wait at once (no allocation when
/// the waiting thread comes back before the granter has woken it).
#[must_use = "dropping it wakes the waiter: keep it until the pool lock is released"]
pub(crate) struct Wake(Thread);

impl Drop for Wake {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

/// How a wait in `wait_or_withdraw` ended.
pub(crate) enum Outcome<G> {
    Granted(Grant),
    /// No grant: the caller holds its queue lock (`guard`) and must take the waiter out of
    /// its queues.
    GaveUp {
        guard: G,
        canceled: bool,
    },
}

/// Waits for a grant, registered with `cancel` meanwhile. On timeout or cancel, takes the
/// owner's lock with `lock` and withdraws, so a grant that raced in is still taken.
pub(crate) fn wait_or_withdraw<G>(
    w: &Arc<Waiter>,
    deadline: Option<Instant>,
    cancel: Option<&CancelToken>,
    lock: impl FnOnce() -> G,
) -> Outcome<G> {
    let end = match cancel {
        Some(c) if !c.register(w) => WaitEnd::Canceled,
        _ => {
            let end = w.wait(deadline, cancel);
            if let Some(c) = cancel {
                c.unregister(w);
            }
            end
        }
    };
    let canceled = match end {
        WaitEnd::Granted(g) => return Outcome::Granted(g),
        WaitEnd::TimedOut => false,
        WaitEnd::Canceled => true,
    };
    let guard = lock();
    match w.withdraw() {
        Some(g) => Outcome::Granted(g),
        None => Outcome::GaveUp { guard, canceled },
    }
}

/// Hands `grant` to the oldest waiter of `queue` that still waits (FIFO service) and wakes
/// it; gives the grant back when there is none. Callers hold the queue owner's lock.
#[inline]
pub(crate) fn hand_to_oldest(queue: &mut VecDeque<Arc<Waiter>>, grant: Grant) -> Option<Grant> {
    hand_to_oldest_later(queue, grant).err()
}

/// `hand_to_oldest`, with the wake-up left to the returned `Wake`: drop it once the lock
/// is released.
#[inline]
pub(crate) fn hand_to_oldest_later(
    queue: &mut VecDeque<Arc<Waiter>>,
    grant: Grant,
) -> Result<Wake, Grant> {
    if queue.is_empty() {
        return Err(grant);
    }
    hand_to_oldest_slow(queue, grant)
}

fn hand_to_oldest_slow(queue: &mut VecDeque<Arc<Waiter>>, mut grant: Grant) -> Result<Wake, Grant> {
    while let Some(w) = queue.pop_front() {
        match w.grant(grant) {
            Ok(()) => return Ok(Wake(w.thread.clone())),
            Err(back) => grant = back,
        }
    }
    Err(grant)
}
