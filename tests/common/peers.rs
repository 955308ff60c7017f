//! Socketpair dialers for driving the pool core without a server: each dial makes a
//! `UnixStream::pair`, hands one end to the pool and keeps the other (the "server" side) so a
//! test can close it, write unexpected bytes, or slow down and fail dials.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redispool::pool::{ConnPool, Dialer, Options, Wait};

#[derive(Default)]
pub struct Peers {
    pub ends: Mutex<Vec<UnixStream>>,
    pub dials: AtomicUsize,
    pub fail: AtomicBool,
    pub delay_ms: AtomicU64,
}

impl Peers {
    pub fn dialer(self: &Arc<Self>) -> Dialer {
        let peers = self.clone();
        Dialer::Custom(Arc::new(move |_timeout| {
            peers.dials.fetch_add(1, Ordering::SeqCst);
            let delay = peers.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                thread::sleep(Duration::from_millis(delay));
            }
            if peers.fail.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
            }
            let (ours, theirs) = UnixStream::pair()?;
            peers.ends.lock().unwrap().push(theirs);
            Ok(OwnedFd::from(ours))
        }))
    }

    pub fn dials(&self) -> usize {
        self.dials.load(Ordering::SeqCst)
    }

    /// The server side of the n-th dial (0-based).
    pub fn end(&self, n: usize) -> UnixStream {
        self.ends.lock().unwrap()[n].try_clone().unwrap()
    }

    pub fn count(&self) -> usize {
        self.ends.lock().unwrap().len()
    }
}

pub fn options(peers: &Arc<Peers>, size: usize) -> Options {
    let mut o = Options::new(peers.dialer());
    o.pool_size = size;
    o.pool_timeout = Wait::For(Duration::from_secs(5));
    o.dialer_retries = 1;
    o.dialer_retry_backoff = Duration::ZERO;
    o
}

pub fn pool(size: usize) -> (ConnPool, Arc<Peers>) {
    let peers = Arc::new(Peers::default());
    let p = ConnPool::new(options(&peers, size)).unwrap();
    (p, peers)
}

/// Polls `cond` until it holds (bounded: 10 s), then returns; panics with `what` otherwise.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
    panic!("condition never held: {what}");
}

/// Whether the server side sees EOF (the pool closed the conn).
pub fn peer_sees_eof(end: &UnixStream) -> bool {
    end.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    matches!((&*end).read(&mut b), Ok(0))
}
