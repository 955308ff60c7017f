//! A caller blocked in `get`: waiting for a turn, or for the conn its dial produces.
//!
//! Grants are delivered with the pool lock held, and a waiter that gives up withdraws with
//! the pool lock held too, so a grant is never lost between the two: `withdraw` returns a
//! grant that arrived after the wait ended, and the caller then owns it.

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
