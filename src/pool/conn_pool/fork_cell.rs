//! The fork cell: where a pool's state lives, and the fresh state a forked child swaps in
//! on its first call (see `pool::fork`).

use super::*;

/// Where the pool's state lives. A forked child swaps in a fresh `Inner` on its first call
/// (see `fork`); the abandoned one is leaked, never locked or freed, so a reference to any
/// `Inner` ever stored here stays valid for the life of the process.
pub(super) struct Cell {
    pub(super) id: u64,
    /// A leaked `Box<Arc<Inner>>`; the current one is freed with the cell.
    pub(super) cur: AtomicPtr<Arc<Inner>>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        // SAFETY: `cur` came from `Box::into_raw` and is released only here, once.
        drop(unsafe { Box::from_raw(*self.cur.get_mut()) });
    }
}

impl ConnPool {
    /// The current state. In a forked child the first call abandons the parent's.
    #[inline]
    pub(super) fn inner(&self) -> &Arc<Inner> {
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
    pub(super) fn after_fork(&self) -> &Arc<Inner> {
        loop {
            let old_ptr = self.cell.cur.load(Ordering::Acquire);
            // SAFETY: as in `inner`.
            let old = unsafe { &*old_ptr };
            let generation = fork::generation();
            if old.generation == generation {
                return old;
            }
            // A dial source's locks may have been held by a parent thread: fresh state.
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
            let epoch = old.epoch.load(Ordering::Relaxed);
            fresh.epoch.store(epoch, Ordering::Relaxed);
            if let Some(sig) = &fresh.retire_signal {
                sig.store(epoch, Ordering::Relaxed);
            }
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
}

impl Inner {
    /// In a forked child, on the parent's state: closes this process's copies of the idle
    /// conns and of the notify fd (plain close: no QUIT, no shutdown, so the parent's
    /// sessions go on). Conns checked out are closed when they come back.
    pub(super) fn forget_inherited(&self) {
        self.notify.forget();
        let Some(mut st) = self.state.try_lock() else {
            return;
        };
        let idle = std::mem::take(&mut st.idle);
        // The parent's parked conns: this process's copies are closed with the idle ones.
        self.bag.forget_parked();
        let deferred = std::mem::take(&mut st.deferred_userdata);
        drop(st);
        drop(idle);
        drop(deferred);
    }
}
