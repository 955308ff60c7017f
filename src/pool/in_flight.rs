//! The sockets a pool is dialing or setting up, so that closing the pool ends those dials
//! at once instead of leaving them blocked in a connect or a set-up read.
//!
//! A dial registers its socket while it connects and while it runs the session set-up;
//! `close` marks the registry closed and `shutdown`s every socket in it, which wakes a
//! connect (the kernel aborts it) and a set-up `poll` (it sees the hang-up). A socket is
//! taken out of the registry before it is closed, and `close` shuts sockets down under the
//! registry's lock, so a recycled fd number is never shut down by mistake.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// std's lock, not parking_lot's, as everything a library thread may be blocked on at
/// fork() (see `ConnPool`'s `dial_cv`).
#[derive(Default)]
pub struct InFlight {
    fds: Mutex<Vec<RawFd>>,
    /// Set under `fds`; readable without it by dials that only need to know.
    closed: AtomicBool,
}

/// Keeps a socket registered; dropping it takes the socket out. Drop it before the socket.
pub(crate) struct Registration<'a> {
    reg: &'a InFlight,
    fd: RawFd,
}

/// The registry was closed: the pool is closing and the dial must end.
#[derive(Debug)]
pub(crate) struct Closed;

impl InFlight {
    fn fds(&self) -> MutexGuard<'_, Vec<RawFd>> {
        self.fds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `fd` until the returned guard is dropped; fails once `close` ran.
    pub(crate) fn register(&self, fd: RawFd) -> Result<Registration<'_>, Closed> {
        let mut fds = self.fds();
        if self.closed.load(Ordering::Relaxed) {
            return Err(Closed);
        }
        fds.push(fd);
        Ok(Registration { reg: self, fd })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends every registered dial and refuses new registrations.
    pub(crate) fn close(&self) {
        let fds = self.fds();
        self.closed.store(true, Ordering::Release);
        for &fd in fds.iter() {
            // SAFETY: `fd` is open: its owner takes it out of `fds` (under this lock, held
            // here) before closing it. shutdown() only changes the socket's state.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut fds = self.reg.fds();
        if let Some(i) = fds.iter().rposition(|&f| f == self.fd) {
            fds.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn close_wakes_a_blocked_read_and_refuses_new_registrations() {
        let reg = InFlight::default();
        let (mut ours, _peer) = UnixStream::pair().unwrap();
        let r = reg.register(ours.as_raw_fd()).unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(move || ours.read(&mut [0u8; 8]).unwrap());
            reg.close();
            assert_eq!(reader.join().unwrap(), 0, "shutdown reads as EOF");
        });
        drop(r);
        assert!(reg.fds().is_empty());
        let (other, _p) = UnixStream::pair().unwrap();
        assert!(reg.register(other.as_raw_fd()).is_err());
        assert!(reg.is_closed());
    }
}
