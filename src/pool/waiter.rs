//! A caller blocked in `get`: waiting for a turn, or for the conn its dial produces.
//!
//! Grants are delivered with the pool lock held, and a waiter that gives up withdraws with
//! the pool lock held too, so a grant is never lost between the two: `withdraw` returns a
//! grant that arrived after the wait ended, and the caller then owns it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::cancel::CancelToken;
use super::conn::Conn;
use super::error::Error;

/// What a waiter is given.
pub(crate) enum Grant {
    /// A turn together with a conn: a put conn (`fresh == false`) or a new dial (`fresh == true`).
    Conn(Conn, bool),
    /// A turn without a conn: the waiter pops the idle list or dials.
    Turn,
    /// The wait ends with this error and no turn (dial failed, pool closed).
    Failed(Error),
}

enum Slot {
    Waiting,
    Granted(Grant),
    Withdrawn,
}

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

pub(crate) struct Waiter {
    slot: Mutex<Slot>,
    cv: Condvar,
}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            slot: Mutex::new(Slot::Waiting),
            cv: Condvar::new(),
        }
    }

    /// Hands `grant` over. Fails, giving it back, when the waiter already has one or withdrew.
    /// Callers hold the pool lock.
    pub(crate) fn deliver(&self, grant: Grant) -> Result<(), Grant> {
        let mut slot = self.slot.lock();
        match *slot {
            Slot::Waiting => {
                *slot = Slot::Granted(grant);
                self.cv.notify_one();
                Ok(())
            }
            _ => Err(grant),
        }
    }

    /// A waiter for this thread's next wait: one it used before that nothing else holds any
    /// more (the thread that granted it may still hold it for an instant, a dial job or a
    /// cancel token for longer), else a new one. So a thread that waits for a turn over and
    /// over allocates nothing in steady state.
    pub(crate) fn acquire() -> Arc<Waiter> {
        let reused = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            let i = spares
                .iter()
                .position(|w| Arc::strong_count(w) == 1 && Arc::weak_count(w) == 0)?;
            let w = spares.swap_remove(i);
            let mut slot = w.slot.lock();
            // A finished wait leaves its slot Withdrawn: grants are always taken.
            if matches!(*slot, Slot::Granted(_)) {
                return None;
            }
            *slot = Slot::Waiting;
            drop(slot);
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

    pub(crate) fn wake(&self) {
        let _slot = self.slot.lock();
        self.cv.notify_one();
    }

    /// Blocks until a grant arrives, `deadline` passes (None = never) or `cancel` fires.
    pub(crate) fn wait(&self, deadline: Option<Instant>, cancel: Option<&CancelToken>) -> WaitEnd {
        let mut slot = self.slot.lock();
        loop {
            if let Slot::Granted(_) = *slot {
                let Slot::Granted(g) = std::mem::replace(&mut *slot, Slot::Withdrawn) else {
                    unreachable!()
                };
                return WaitEnd::Granted(g);
            }
            if cancel.is_some_and(|c| c.is_fired()) {
                return WaitEnd::Canceled;
            }
            match deadline {
                Some(d) => {
                    if Instant::now() >= d {
                        return WaitEnd::TimedOut;
                    }
                    self.cv.wait_until(&mut slot, d);
                }
                None => self.cv.wait(&mut slot),
            }
        }
    }

    /// Stops waiting. Returns a grant that arrived in the meantime. Callers hold the pool lock.
    pub(crate) fn withdraw(&self) -> Option<Grant> {
        let mut slot = self.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Withdrawn) {
            Slot::Granted(g) => Some(g),
            _ => None,
        }
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

/// Hands `grant` to the oldest waiter of `queue` that still waits (FIFO service); gives it
/// back when there is none. Callers hold the queue owner's lock.
#[inline]
pub(crate) fn hand_to_oldest(queue: &mut VecDeque<Arc<Waiter>>, grant: Grant) -> Option<Grant> {
    if queue.is_empty() {
        return Some(grant);
    }
    hand_to_oldest_slow(queue, grant)
}

fn hand_to_oldest_slow(queue: &mut VecDeque<Arc<Waiter>>, mut grant: Grant) -> Option<Grant> {
    while let Some(w) = queue.pop_front() {
        match w.deliver(grant) {
            Ok(()) => return None,
            Err(back) => grant = back,
        }
    }
    Some(grant)
}
