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
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

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
        let new = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
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
                unsafe { libc::close(new) };
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
            unsafe { libc::write(fd, (&raw const one).cast(), 8) };
        }
    }

    /// Nothing is available: make the fd unreadable. Call with the pool lock held, after
    /// the check that found nothing, so a conn given back later signals again.
    pub(crate) fn drain(&self) {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 || !self.signaled.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd. EAGAIN (a signal whose
        // write has not happened yet, or a caller that read the fd itself) is fine: that
        // write then leaves the fd readable, a spurious wake-up at worst.
        unsafe { libc::read(fd, (&raw mut count).cast(), 8) };
    }

    /// In a forked child: closes this process's copy of the fd; a new one is made on demand.
    pub(crate) fn forget(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the fd was ours; nobody else closes it.
            unsafe { libc::close(fd) };
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.forget();
    }
}
