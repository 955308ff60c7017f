//! Get+Put cost through the C ABI on real loopback TCP sockets, against a baseline measured
//! in the same run: a plain Mutex + Condvar pool (the design of redis-plus-plus and r2d2)
//! over the same kind of sockets.
//!
//! Run: `cargo bench --bench getput` (add `-- --quick` for a shorter run).
//! Prints one row per (pool size, threads): ns per Get+Put (wall time / operations, as
//! go-redis's RunParallel benchmarks report), the baseline's, and their ratio.

use std::collections::VecDeque;
use std::ffi::CString;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redispool::ffi::conn::pool_conn_t;
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{pool_free, pool_get, pool_new, pool_put, pool_t};
use redispool::ffi::status::POOL_OK;

/// Accepts loopback conns and keeps them open until the process ends.
fn server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            // The pool PINGs a new conn (the default dialer expects Redis): answer it.
            let _ = std::io::Write::write_all(&mut s, b"+PONG\r\n");
            held.push(s);
        }
    });
    addr
}

struct PoolPtr(*mut pool_t);
// SAFETY: pool_t is documented thread-safe.
unsafe impl Send for PoolPtr {}
// SAFETY: as above.
unsafe impl Sync for PoolPtr {}

fn new_pool(addr: &str, size: i32) -> PoolPtr {
    let caddr = CString::new(addr).unwrap();
    // SAFETY: plain FFI use as documented in the header; `caddr` outlives pool_new, which copies it.
    unsafe {
        let mut o: pool_options_t = std::mem::zeroed();
        pool_options_init(&mut o);
        o.addr = caddr.as_ptr();
        o.pool_size = size;
        o.pool_timeout_ms = -1;
        let mut p = std::ptr::null_mut();
        assert_eq!(pool_new(&o, &mut p, std::ptr::null_mut()), POOL_OK);
        // Dial every conn up front so the measurement sees only Get+Put.
        let mut conns: Vec<*mut pool_conn_t> = Vec::new();
        for _ in 0..size {
            let mut c = std::ptr::null_mut();
            assert_eq!(pool_get(p, &mut c, std::ptr::null_mut()), POOL_OK);
            conns.push(c);
        }
        for c in conns {
            assert_eq!(pool_put(p, c), POOL_OK);
        }
        PoolPtr(p)
    }
}

/// The baseline: one mutex over a deque of sockets, one condvar for waiters.
struct MutexPool {
    idle: Mutex<VecDeque<TcpStream>>,
    cv: Condvar,
}

impl MutexPool {
    fn new(addr: &str, size: usize) -> Self {
        let idle = (0..size)
            .map(|_| {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s
            })
            .collect();
        MutexPool {
            idle: Mutex::new(idle),
            cv: Condvar::new(),
        }
    }
    fn get(&self) -> TcpStream {
        let mut idle = self.idle.lock().unwrap();
        loop {
            if let Some(s) = idle.pop_back() {
                return s;
            }
            idle = self.cv.wait(idle).unwrap();
        }
    }
    fn put(&self, s: TcpStream) {
        self.idle.lock().unwrap().push_back(s);
        self.cv.notify_one();
    }
}

/// Runs `op` on `threads` threads for `dur`; returns wall ns per op.
fn measure(threads: usize, dur: Duration, op: Arc<dyn Fn() + Send + Sync>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start_line = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, total, start_line, op) =
                (stop.clone(), total.clone(), start_line.clone(), op.clone());
            thread::spawn(move || {
                start_line.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..16 {
                        op();
                    }
                    n += 16;
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    // The clock starts before the threads are released, so no op escapes it (a thread
    // may run long before this one wakes up from the barrier on a loaded machine).
    let start = Instant::now();
    start_line.wait();
    thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    elapsed.as_nanos() as f64 / total.load(Ordering::Relaxed) as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and then it only proves the benchmark still works (a few ms per cell).
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let dur = Duration::from_millis(match (benching, quick) {
        (false, _) => 5,
        (true, true) => 150,
        (true, false) => 600,
    });
    let addr = server();
    println!("Get+Put on loopback TCP, ns/op (wall time / ops); lower is better.");
    println!(
        "| pool size | threads | redispool (C ABI) | Mutex+Condvar pool | redispool / baseline |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for size in [8usize, 64] {
        let pool = Arc::new(new_pool(&addr, size as i32));
        let baseline = Arc::new(MutexPool::new(&addr, size));
        for threads in [2usize, 8, 64, 256] {
            let p = pool.clone();
            let ours = measure(
                threads,
                dur,
                Arc::new(move || {
                    let mut c = std::ptr::null_mut();
                    // SAFETY: documented FFI use; the pool outlives the threads.
                    unsafe {
                        let rc = pool_get(p.0, &mut c, std::ptr::null_mut());
                        assert_eq!(rc, POOL_OK);
                        assert_eq!(pool_put(p.0, c), POOL_OK);
                    }
                }),
            );
            let b = baseline.clone();
            let base = measure(
                threads,
                dur,
                Arc::new(move || {
                    let s = b.get();
                    b.put(s);
                }),
            );
            println!(
                "| {size} | {threads} | {ours:.0} | {base:.0} | {:.2} |",
                ours / base
            );
        }
        // SAFETY: all threads are joined; nothing is checked out.
        unsafe { pool_free(pool.0) };
    }
}
