//! Dials are bounded: `dial_timeout` bounds a whole attempt (connect and session set-up,
//! also with no read timeout), closing a pool ends the dials it started (their threads
//! and fds are gone), and a huge `min_idle_conns` is dialed by a bounded set of threads
//! without blocking `ConnPool::new`.
//!
//! The tests run one at a time (a lock): thread and fd counts are per process. Figures are
//! printed (`--nocapture`).

mod common;

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::procfs::{fd_listing, open_fds, poll_until};
use redispool::pool::{ConnPool, DEFAULT_MAX_CONCURRENT_DIALS, Dialer, Error, Options, Wait};

/// Bounds for conditions that settle within milliseconds on an idle machine; generous
/// because the test machine may be slow and shared.
const SETTLE: Duration = Duration::from_secs(10);

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool's dial threads alive in this process.
fn dial_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "redispool-dial")
        })
        .count()
}

/// A server that accepts conns and never answers; it lets a conn go when the client
/// closes it, so its fds come back with the pool's.
struct SilentServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                a.fetch_add(1, Ordering::AcqRel);
                // Reads (and drops) whatever comes, never writes; ends at EOF.
                thread::spawn(
                    move || while matches!(stream.read(&mut [0u8; 512]), Ok(n) if n > 0) {},
                );
            }
        });
        SilentServer {
            port,
            accepted,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept.
        if let Ok(c) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn silent_pool(server: &SilentServer, dial_timeout: Option<Duration>) -> ConnPool {
    let mut opts = Options::new(Dialer::from_addr(&server.addr()).unwrap());
    opts.pool_size = 4;
    opts.dial_timeout = dial_timeout;
    opts.read_timeout = None;
    opts.write_timeout = None;
    opts.dialer_retries = 3;
    opts.dialer_retry_backoff = Duration::from_millis(10);
    opts.pool_timeout = Wait::Forever;
    ConnPool::new(opts).expect("pool")
}

/// Runs `f` on a thread; its result, or None when it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (Option<T>, Duration, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    let res = rx.recv_timeout(limit).ok();
    (res, start.elapsed(), t)
}

/// After the pool closed, its dial threads end and the process has its fds back.
fn assert_dials_gone(fds_before: usize, what: &str) {
    let gone = poll_until(SETTLE, || dial_threads() == 0 && open_fds() <= fds_before);
    assert!(
        gone,
        "{what}: after close, {} dial threads left, {} fds open ({fds_before} before):\n{}",
        dial_threads(),
        open_fds(),
        fd_listing().join("\n")
    );
}

#[test]
fn dial_timeout_bounds_the_set_up_even_without_a_read_timeout() {
    let _s = serial();
    let server = SilentServer::start();
    let fds_before = open_fds();
    let dial_timeout = Duration::from_millis(300);
    let pool = silent_pool(&server, Some(dial_timeout));
    let p = pool.clone();
    // 3 attempts of 300 ms and 2 pauses of 10 ms: about 0.9 s. Before the fix, with no
    // read timeout, the set-up read of the first attempt never returned.
    let (res, took, getter) = within(Duration::from_secs(5), move || p.get());
    eprintln!(
        "get against a silent server, dial_timeout 300 ms x 3 attempts, read_timeout none: \
         {took:?}, {:?}",
        res.as_ref().map(|r| r.as_ref().map(|_| ()))
    );
    pool.close().expect("close");
    getter.join().unwrap();
    let res = res.expect("the get returned within 5 s");
    match res {
        Err(Error::Dial { message, .. }) => {
            assert!(message.contains("timeout"), "{message}");
            assert!(message.contains("after 3 attempts"), "{message}");
        }
        other => panic!("expected a dial error, got {other:?}"),
    }
    assert!(
        took >= dial_timeout * 3 - Duration::from_millis(50),
        "3 attempts cannot take {took:?}"
    );
    assert!(
        server.accepted() >= 3,
        "one conn per attempt: {}",
        server.accepted()
    );
    assert_dials_gone(fds_before, "after a timed-out dial");
}

#[test]
fn closing_the_pool_ends_dials_stuck_in_their_set_up() {
    let _s = serial();
    let server = SilentServer::start();
    let fds_before = open_fds();
    // No dial timeout and no read timeout: only close can end these dials.
    let pool = silent_pool(&server, None);
    let (p1, p2) = (pool.clone(), pool.clone());
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    thread::spawn(move || tx.send(("get", p1.get().map(|_| ()))));
    // new_conn dials on the calling thread.
    thread::spawn(move || tx2.send(("new_conn", p2.new_conn().map(|_| ()))));
    assert!(
        poll_until(SETTLE, || server.accepted() >= 2),
        "both dials reached the server"
    );
    let closed_at = Instant::now();
    pool.close().expect("close");
    // Before the fix, new_conn never returned: the thread is left behind then.
    let mut results = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(5)) {
        results.push(r);
        if results.len() == 2 {
            break;
        }
    }
    let new_conn_took = closed_at.elapsed();
    eprintln!(
        "close with a get and a new_conn stuck in set-up: {results:?} after {new_conn_took:?}"
    );
    let result = |what: &str| {
        results
            .iter()
            .find(|r| r.0 == what)
            .map(|r| r.1.clone())
            .unwrap_or_else(|| panic!("{what} did not return within 5 s of close"))
    };
    let (got, made) = (result("get"), result("new_conn"));
    assert!(matches!(got, Err(Error::Closed)), "{got:?}");
    assert!(matches!(made, Err(Error::Closed)), "{made:?}");
    assert!(
        new_conn_took < Duration::from_secs(2),
        "new_conn returned {new_conn_took:?} after close"
    );
    assert_dials_gone(fds_before, "after close during set-up");
    eprintln!(
        "dial threads and fds gone {:?} after close",
        closed_at.elapsed()
    );
}

/// A dialer that takes a few milliseconds (a network round trip) and hands out a dup of
/// one end of a socket pair, counting the calls running at once.
struct SlowDialer {
    peer: UnixStream,
    _other: UnixStream,
    running: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

impl SlowDialer {
    fn new() -> Arc<SlowDialer> {
        let (peer, other) = UnixStream::pair().unwrap();
        Arc::new(SlowDialer {
            peer,
            _other: other,
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        })
    }

    fn dial(&self) -> std::io::Result<OwnedFd> {
        let now = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.most.fetch_max(now, Ordering::AcqRel);
        self.calls.fetch_add(1, Ordering::AcqRel);
        thread::sleep(Duration::from_millis(10));
        let fd = self.peer.try_clone().map(OwnedFd::from);
        self.running.fetch_sub(1, Ordering::AcqRel);
        fd
    }
}

#[test]
fn a_huge_min_idle_is_dialed_by_a_bounded_set_of_threads() {
    let _s = serial();
    let fds_before = open_fds();
    let dialer = SlowDialer::new();
    let d = dialer.clone();
    let mut opts = Options::new(Dialer::Custom(Arc::new(move |_| d.dial())));
    // Conns are dups of one socket (one fd each): 5 000 stays well inside the fd limit.
    opts.pool_size = 5_000;
    opts.min_idle_conns = 5_000;
    opts.pool_timeout = Wait::For(Duration::from_secs(3));
    let start = Instant::now();
    let pool = ConnPool::new(opts).expect("pool");
    let new_took = start.elapsed();
    let threads_after_new = dial_threads();
    let start = Instant::now();
    let conn = pool.get();
    let get_took = start.elapsed();
    // The prewarm goes on: its threads never outnumber the bound.
    let mut most_threads = threads_after_new;
    let done = poll_until(Duration::from_secs(60), || {
        most_threads = most_threads.max(dial_threads());
        pool.idle_len() + 1 >= 5_000
    });
    let prewarm_took = start.elapsed();
    eprintln!(
        "min_idle_conns 5000 (10 ms per dial): ConnPool::new {new_took:?} ({threads_after_new} \
         dial threads right after), first get {get_took:?}, prewarm {prewarm_took:?}, at most \
         {most_threads} dial threads seen and {} dials at once",
        dialer.most.load(Ordering::Acquire)
    );
    let conn = conn.expect("first get");
    assert!(done, "prewarm finished: {} idle", pool.idle_len());
    assert!(
        new_took < Duration::from_millis(500),
        "ConnPool::new took {new_took:?}"
    );
    assert!(
        get_took < Duration::from_secs(3),
        "the first get took {get_took:?}, more than its pool_timeout"
    );
    let bound = DEFAULT_MAX_CONCURRENT_DIALS;
    assert!(
        most_threads <= bound,
        "{most_threads} dial threads, more than {bound}"
    );
    assert!(
        dialer.most.load(Ordering::Acquire) <= bound,
        "{} dials at once, more than {bound}",
        dialer.most.load(Ordering::Acquire)
    );
    pool.put(conn).expect("put");
    pool.close().expect("close");
    assert_dials_gone(fds_before + 2, "after the prewarm");
}

/// The resolver threads alive in this process.
fn resolver_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with("redispool-reso"))
        })
        .count()
}

/// No slow DNS server is at hand: the library resolves names ending in ".test" (which
/// real DNS never resolves) with a hook, here one that takes 3 s as a stuck resolver
/// would. The dial must stop waiting at its deadline all the same.
#[test]
fn dial_timeout_bounds_a_slow_name_resolution() {
    let _s = serial();
    let server = SilentServer::start();
    let port = server.port;
    let lookups = Arc::new(AtomicUsize::new(0));
    let l = lookups.clone();
    redispool::pool::set_test_resolver(Some(Arc::new(move |_addr: &str| {
        l.fetch_add(1, Ordering::AcqRel);
        thread::sleep(Duration::from_secs(3));
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
    })));
    let mut opts = Options::new(Dialer::from_addr(&format!("slow.test:{port}")).unwrap());
    opts.pool_size = 4;
    opts.dial_timeout = Some(Duration::from_millis(300));
    opts.dialer_retries = 3;
    opts.dialer_retry_backoff = Duration::from_millis(10);
    opts.pool_timeout = Wait::Forever;
    let pool = ConnPool::new(opts).expect("pool");
    let p = pool.clone();
    let (res, took, getter) = within(Duration::from_secs(5), move || p.get());
    let resolvers = resolver_threads();
    eprintln!(
        "get through a 3 s resolver, dial_timeout 300 ms x 3 attempts: {took:?}, {} lookups \
         started, {resolvers} resolver threads, {:?}",
        lookups.load(Ordering::Acquire),
        res.as_ref().map(|r| r.as_ref().map(|_| ()))
    );
    pool.close().expect("close");
    getter.join().unwrap();
    redispool::pool::set_test_resolver(None);
    match res.expect("the get returned within 5 s") {
        Err(Error::Dial { message, .. }) => {
            assert!(message.contains("name resolution"), "{message}")
        }
        other => panic!("expected a dial error, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "3 attempts took {took:?}");
    assert!(resolvers <= 4, "{resolvers} resolver threads");
}

/// Sizes far beyond what a process can hold are served within their bounds: a pool of a
/// million conns that must keep a million idle is made at once, dials on at most 64
/// threads, answers a get within its pool_timeout (here with the dial error: every dial
/// fails), and closes at once, its million queued dials dropped rather than run.
#[test]
fn a_million_min_idle_conns_are_served_within_bounds() {
    let _s = serial();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut opts = Options::new(Dialer::Custom(Arc::new(move |_| {
        c.fetch_add(1, Ordering::AcqRel);
        Err(std::io::Error::from_raw_os_error(libc::ECONNREFUSED))
    })));
    opts.pool_size = 1_000_000;
    opts.min_idle_conns = 1_000_000;
    opts.dialer_retries = 1;
    opts.pool_timeout = Wait::For(Duration::from_secs(3));
    let start = Instant::now();
    let pool = ConnPool::new(opts).expect("pool");
    let new_took = start.elapsed();
    assert_eq!(
        pool.options().max_concurrent_dials,
        DEFAULT_MAX_CONCURRENT_DIALS
    );
    let start = Instant::now();
    let got = pool.get();
    let get_took = start.elapsed();
    let threads = dial_threads();
    let start = Instant::now();
    pool.close().expect("close");
    // Only the dials running at close are left, not the queued ones.
    let left_at_close = pool.stats().dials_in_progress as usize;
    let gone = poll_until(SETTLE, || dial_threads() == 0);
    let close_took = start.elapsed();
    eprintln!(
        "pool_size = min_idle_conns = 1e6, every dial refused: ConnPool::new {new_took:?}, \
         get {get_took:?} ({:?}), {threads} dial threads, {} dials made, close + threads \
         gone {close_took:?}",
        got.as_ref().map(|_| ()),
        calls.load(Ordering::Acquire)
    );
    assert!(
        new_took < Duration::from_millis(500),
        "new took {new_took:?}"
    );
    assert!(matches!(got, Err(Error::Dial { .. })), "{got:?}");
    assert!(get_took < Duration::from_secs(3), "get took {get_took:?}");
    assert!(
        threads <= DEFAULT_MAX_CONCURRENT_DIALS,
        "{threads} dial threads"
    );
    assert!(
        left_at_close <= DEFAULT_MAX_CONCURRENT_DIALS,
        "{left_at_close} dials still pending after close"
    );
    assert!(gone, "{} dial threads left after close", dial_threads());
    assert_eq!(pool.stats().dials_in_progress, 0);
}

#[test]
fn max_concurrent_dials_is_held_to_its_bounds() {
    let opts = |size: usize, dials: usize| {
        let mut o = Options::new(Dialer::from_addr("127.0.0.1:1").unwrap());
        o.pool_size = size;
        o.max_concurrent_dials = dials;
        ConnPool::new(o)
            .expect("pool")
            .options()
            .max_concurrent_dials
    };
    assert_eq!(opts(10, 0), 10);
    assert_eq!(opts(1_000, 0), DEFAULT_MAX_CONCURRENT_DIALS);
    assert_eq!(opts(10, 500), 10);
    assert_eq!(
        opts(100_000, 100_000),
        redispool::pool::MAX_CONCURRENT_DIALS
    );
}
