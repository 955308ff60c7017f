//! The readiness fd behind `pool_notify_fd`: an eventfd that is readable while a conn may be
//! available to `try_get`.
//!
//! It is level-triggered by design. A pool signals it (one `write`) only on the transition
//! from "drained" to "signaled", and a `try_get` that finds nothing drains it (one `read`)
//! while still holding the pool lock. So a caller that saw `WouldBlock` is woken by the next
//! conn that comes back, several loops may share one pool, and a busy pool pays no syscall
//! per put. Until someone asks for the fd, signaling costs one atomic load.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicI32};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, AtomicI32};

/// The eventfd syscalls. Under `--cfg loom`, a model of one eventfd instead (see the loom
/// models at the end of this file).
#[cfg(not(loom))]
use libc as sys;

pub(crate) struct Notifier {
    /// -1 until the fd is first asked for.
    fd: AtomicI32,
    signaled: AtomicBool,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            fd: AtomicI32::new(-1),
            signaled: AtomicBool::new(false),
        }
    }
}

impl Notifier {
    /// The eventfd, made on first use. It starts readable, so a loop that begins waiting
    /// on it tries `try_get` at least once.
    pub(crate) fn fd(&self) -> io::Result<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        if fd >= 0 {
            return Ok(fd);
        }
        // SAFETY: plain syscall; the flags make it non-blocking and close-on-exec.
        let new = unsafe { sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        match self
            .fd
            .compare_exchange(-1, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.signaled.store(false, Ordering::Release);
                self.signal();
                Ok(new)
            }
            Err(theirs) => {
                // SAFETY: `new` is ours and was never published.
                unsafe { sys::close(new) };
                Ok(theirs)
            }
        }
    }

    /// A conn may have become available: make the fd readable unless it already is.
    #[inline]
    pub(crate) fn signal(&self) {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 || self.signaled.load(Ordering::Acquire) {
            return;
        }
        if !self.signaled.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd. It cannot block
            // (EFD_NONBLOCK) and cannot fail short of a counter overflow, which
            // only makes it readable anyway.
            unsafe { sys::write(fd, (&raw const one).cast(), 8) };
        }
    }

    /// Nothing is available: make the fd unreadable. Call with the pool lock held, after
    /// the check that found nothing, so a conn given back later signals again.
    ///
    /// Read first, clear the flag after: clearing first would let a `signal` of a conn
    /// already taken set the flag and write, then this read swallow that write, leaving
    /// the flag set on an unreadable fd, and every later `signal` would skip its write
    /// (a lost wake-up; found by the loom model below). This way a `signal` racing with
    /// the read either sees the flag still set (its conn was taken already: nothing to
    /// announce) or writes after the read (a spurious wake-up at worst).
    pub(crate) fn drain(&self) {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 || !self.signaled.load(Ordering::Acquire) {
            return;
        }
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd. EAGAIN (a signal whose
        // write has not happened yet, or a caller that read the fd itself) is fine: that
        // write then leaves the fd readable, a spurious wake-up at worst.
        unsafe { sys::read(fd, (&raw mut count).cast(), 8) };
        self.signaled.store(false, Ordering::Release);
    }

    /// In a forked child: closes this process's copy of the fd; a new one is made on demand.
    pub(crate) fn forget(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the fd was ours; nobody else closes it.
            unsafe { sys::close(fd) };
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.forget();
    }
}

/// One eventfd, modelled for loom: its counter is a loom atomic (the kernel updates it under
/// a lock, so a SeqCst read-modify-write is exact). `write` adds, `read` takes it all and
/// fails with EAGAIN at 0, as for a non-semaphore EFD_NONBLOCK eventfd. Same signatures as
/// libc's, so the code above is the same code under loom.
#[cfg(loom)]
mod sys {
    use std::ffi::{c_int, c_uint, c_void};

    use loom::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering::SeqCst;

    loom::lazy_static! {
        static ref COUNTER: AtomicU64 = AtomicU64::new(0);
    }

    pub(super) unsafe fn eventfd(_initval: c_uint, _flags: c_int) -> c_int {
        3
    }

    pub(super) unsafe fn close(_fd: c_int) -> c_int {
        0
    }

    pub(super) unsafe fn write(_fd: c_int, buf: *const c_void, _count: usize) -> isize {
        // SAFETY: the caller passes 8 readable bytes.
        let n = unsafe { buf.cast::<u64>().read_unaligned() };
        COUNTER.fetch_add(n, SeqCst);
        8
    }

    pub(super) unsafe fn read(_fd: c_int, buf: *mut c_void, _count: usize) -> isize {
        let n = COUNTER.swap(0, SeqCst);
        if n == 0 {
            return -1;
        }
        // SAFETY: the caller passes 8 writable bytes.
        unsafe { buf.cast::<u64>().write_unaligned(n) };
        8
    }

    /// What poll would say.
    #[cfg(test)]
    pub(super) fn readable() -> bool {
        COUNTER.load(SeqCst) > 0
    }
}

/// loom models of the signal/drain protocol, with the pool modelled as a count of idle conns
/// under a mutex (the pool lock): a put pushes under the lock and signals after unlocking, a
/// `try_get` that finds nothing drains under the lock, as `ConnPool` does. The property is
/// the one the module doc promises: once everyone is done, an idle conn means a readable
/// fd, so an event loop that saw `WouldBlock` and polls the fd is woken.
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom -- --nocapture`.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;

    use loom::sync::Mutex;
    use loom::thread;

    use super::*;

    struct Pool {
        idle: Mutex<u32>,
        notify: Notifier,
    }

    impl Pool {
        /// With the fd asked for (readable, signaled), and `idle` conns.
        fn new(idle: u32) -> std::sync::Arc<Pool> {
            let p = Pool {
                idle: Mutex::new(idle),
                notify: Notifier::default(),
            };
            p.notify.fd().unwrap();
            std::sync::Arc::new(p)
        }

        fn try_get(&self) -> bool {
            let mut idle = self.idle.lock().unwrap();
            if *idle > 0 {
                *idle -= 1;
                return true;
            }
            self.notify.drain();
            false
        }

        fn put(&self) {
            *self.idle.lock().unwrap() += 1;
            self.notify.signal();
        }

        fn check_quiescent(&self) {
            let idle = *self.idle.lock().unwrap();
            let signaled = self.notify.signaled.load(SeqCst);
            assert!(
                idle == 0 || sys::readable(),
                "lost wake-up: {idle} idle conn(s), the fd is not readable (signaled: {signaled}), \
                 and no later put will make it readable while `signaled` stays true"
            );
            assert!(
                !signaled || sys::readable(),
                "lost wake-up ahead: `signaled` is set but the fd is not readable, so the next put \
                 will not make it readable"
            );
        }
    }

    /// Every interleaving (these models are small: well under a second each).
    fn model(name: &str, f: impl Fn() + Send + Sync + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = None;
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&runs);
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder.check(move || {
                counted.fetch_add(1, SeqCst);
                f();
            })
        }));
        let n = runs.load(SeqCst);
        match checked {
            Ok(()) => println!("loom {name}: {n} interleavings (all)"),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                println!("loom {name}: FAILS in interleaving {n}: {msg}");
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// An event loop takes the conn a put just brought back, misses on its next `try_get`
    /// (drain), then gives the conn back (signal), while the first put's signal is still
    /// under way.
    ///
    /// This model found a lost wake-up in the first `drain` (flag cleared before the read):
    /// the put's late `signal` landed between the clear and the `read`, set the flag again
    /// and wrote, and the `read` took that write too, leaving the flag set on an unreadable
    /// fd, so every later `signal` skipped its write.
    #[test]
    fn loom_notify_put_vs_event_loop() {
        model("notify, put vs try_get/try_get/put", || {
            let pool = Pool::new(0);
            let p = std::sync::Arc::clone(&pool);
            let t = thread::spawn(move || p.put());
            let got = pool.try_get();
            let _ = pool.try_get();
            if got {
                pool.put();
            }
            t.join().unwrap();
            pool.check_quiescent();
        });
    }

    /// Two puts and an event loop's miss.
    #[test]
    fn loom_notify_two_puts_vs_a_miss() {
        model("notify, put + put vs try_get", || {
            let pool = Pool::new(0);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let p = std::sync::Arc::clone(&pool);
                    thread::spawn(move || p.put())
                })
                .collect();
            let _ = pool.try_get();
            for t in threads {
                t.join().unwrap();
            }
            pool.check_quiescent();
        });
    }

    /// Two event loops and a put: one loop takes the conn and gives it back, the other
    /// misses meanwhile (it failed like `loom_notify_put_vs_event_loop` before the fix).
    #[test]
    fn loom_notify_two_loops_and_a_put() {
        model("notify, put vs try_get/put vs try_get", || {
            let pool = Pool::new(0);
            let p = std::sync::Arc::clone(&pool);
            let putter = thread::spawn(move || p.put());
            let l = std::sync::Arc::clone(&pool);
            let other_loop = thread::spawn(move || {
                if l.try_get() {
                    l.put();
                }
            });
            let _ = pool.try_get();
            putter.join().unwrap();
            other_loop.join().unwrap();
            pool.check_quiescent();
        });
    }
}
