//! Fork detection: a generation counter bumped by a `pthread_atfork` child handler.
//!
//! After `fork()` only the forking thread exists in the child; a lock held by any other
//! parent thread stays held forever there, and every conn the parent had is shared with it
//! (two processes interleaving commands on one socket read each other's replies). So pool
//! state records the generation it was built in, and the first call in a child that sees a
//! newer generation abandons that state without locking it and starts afresh. The check is
//! one relaxed load of a word that is only ever written in a child, never `getpid()`.

use std::any::Any;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static WATCH: Once = Once::new();

/// The child handler: async-signal-safe (one atomic add), as POSIX requires.
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Installs the handler once per process. Called whenever a pool is made.
pub(crate) fn watch() {
    WATCH.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function that stays valid for the life of
        // the process (the library is never unloaded while it has pools). A failure (ENOMEM)
        // leaves fork detection off; nothing else depends on it.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

/// How many forks separate this process from the one that loaded the library.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// The generation as conns store it (a conn is 4 bytes smaller this way).
#[inline]
pub(crate) fn conn_generation() -> u32 {
    generation() as u32
}

/// State a forked child abandoned: kept reachable from a static list (pushed lock-free, never
/// popped) so leak checkers such as valgrind see it as still reachable, not lost.
struct Abandoned {
    _state: Box<dyn Any + Send + Sync>,
    next: *mut Abandoned,
}

static ABANDONED: AtomicPtr<Abandoned> = AtomicPtr::new(std::ptr::null_mut());

/// Keeps `state` alive, untouched, for the life of the process.
pub(crate) fn abandon(state: Box<dyn Any + Send + Sync>) {
    let node = Box::into_raw(Box::new(Abandoned {
        _state: state,
        next: std::ptr::null_mut(),
    }));
    let mut head = ABANDONED.load(Ordering::Acquire);
    loop {
        // SAFETY: `node` is ours until the exchange below publishes it.
        unsafe { (*node).next = head };
        match ABANDONED.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}
