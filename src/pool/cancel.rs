//! Cancellation tokens: what Go's `ctx.Done()` is, for callers blocked in `get`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::waiter::Waiter;

/// A token any thread may fire; every `get` waiting with it returns `Error::Canceled`.
/// Firing is sticky: a token stays fired.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    waiters: Mutex<Vec<Arc<Waiter>>>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token and wakes every waiter registered with it.
    pub fn fire(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        let waiters = std::mem::take(&mut *self.inner.waiters.lock());
        for w in waiters {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Registers `w` to be woken on fire. Returns false if the token already fired.
    pub(crate) fn register(&self, w: &Arc<Waiter>) -> bool {
        let mut list = self.inner.waiters.lock();
        if self.is_fired() {
            return false;
        }
        list.push(w.clone());
        true
    }

    pub(crate) fn unregister(&self, w: &Arc<Waiter>) {
        let mut list = self.inner.waiters.lock();
        if let Some(i) = list.iter().position(|x| Arc::ptr_eq(x, w)) {
            list.swap_remove(i);
        }
    }
}
