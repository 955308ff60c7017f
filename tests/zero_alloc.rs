//! Zero heap allocations per get/put in steady state (issue "Performance"), counted by a
//! counting global allocator: through the core API and through the C ABI, uncontended and
//! with more threads than conns (every get waits for a turn, the put hands the conn over).
//! Allocation counts are deterministic, unlike timings, so they are asserted.

#[path = "common/peers.rs"]
#[allow(dead_code)]
mod peers;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use peers::{Peers, options};
use redispool::ffi::conn::pool_conn_t;
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{pool_free, pool_get, pool_new, pool_put, pool_t};
use redispool::ffi::status::POOL_OK;
use redispool::pool::{ConnPool, Wait};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the threads doing gets and puts: only their allocations count (the test
    /// harness allocates on its own threads whenever it reports another test).
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn counts() -> bool {
    COUNTING.load(Ordering::Relaxed) && MEASURED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tests in this file share the counter: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// parking_lot sets up a thread's parking data (and may grow its global table) the first
/// time that thread parks, e.g. on the first contended pool lock: a once-per-thread
/// allocation, like a thread local, that may otherwise first happen while counting.
fn first_park() {
    let m = parking_lot::Mutex::new(());
    let mut g = m.lock();
    parking_lot::Condvar::new().wait_for(&mut g, std::time::Duration::ZERO);
}

/// A thread's first wait for a turn makes its spare waiters at once (see `Waiter::acquire`):
/// a once-per-thread allocation that a thread whose warm-up never waited (it got a conn
/// every time, overtaking or running alone on a core) would otherwise make while counting.
fn first_wait() {
    let (p, _peers) = core_pool(1, None);
    let held = p.get().unwrap();
    assert!(matches!(
        p.get_with(Wait::For(Duration::from_millis(1)), None),
        Err(redispool::pool::Error::Timeout(_))
    ));
    p.put(held).unwrap();
}

/// Runs `op` on `threads` threads: `warm` rounds first (first-use allocations: thread
/// locals, queue capacity, the C handle table), then `rounds` counted ones. Returns the
/// allocations made while counting.
fn count_allocs(
    threads: usize,
    warm: usize,
    rounds: usize,
    op: Arc<dyn Fn() + Send + Sync>,
) -> u64 {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (b, op) = (barrier.clone(), op.clone());
            thread::spawn(move || {
                first_wait();
                MEASURED.with(|m| m.set(true));
                first_park();
                // All threads warm up together, so each one really waits for turns (and
                // fills its spare waiters) before counting starts.
                b.wait();
                for _ in 0..warm {
                    op();
                }
                b.wait();
                b.wait();
                for _ in 0..rounds {
                    op();
                }
                b.wait();
                b.wait();
            })
        })
        .collect();
    barrier.wait();
    barrier.wait();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    barrier.wait();
    barrier.wait();
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCS.load(Ordering::SeqCst);
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    n
}

/// `count_allocs` up to three times, the fewest seen. A thread preempted while it still
/// holds another thread's finished waiter for a moment (it granted it a turn) can make
/// that thread take a fresh waiter: a scheduler accident a loaded machine shows now and
/// then, not a steady-state cost. An allocation per operation shows in every try.
fn steady_allocs(threads: usize, op: Arc<dyn Fn() + Send + Sync>) -> u64 {
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        fewest = fewest.min(count_allocs(threads, 20_000, 20_000, op.clone()));
        if fewest == 0 {
            break;
        }
    }
    fewest
}

fn core_pool(size: usize, overtake: Option<Duration>) -> (ConnPool, Arc<Peers>) {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, size);
    o.pool_timeout = Wait::Forever;
    o.overtake_window = overtake;
    let p = ConnPool::new(o).unwrap();
    // Every conn dialed up front: a dial is not steady state.
    let conns: Vec<_> = (0..size).map(|_| p.get().unwrap()).collect();
    for c in conns {
        p.put(c).unwrap();
    }
    (p, peers)
}

#[test]
fn core_get_put_allocates_nothing() {
    let _serial = serial();
    // The last case lets gets overtake the queue for 5 ms: puts then leave conns idle
    // and wake waiters with a retry, which queue again when overtaken.
    let overtake = Some(Duration::from_millis(5));
    for (threads, size, overtake) in [(1, 4, None), (4, 4, None), (8, 2, None), (8, 2, overtake)] {
        let (p, _peers) = core_pool(size, overtake);
        let p2 = p.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let c = p2.get().unwrap();
            p2.put(c).unwrap();
        });
        let n = steady_allocs(threads, op);
        assert_eq!(
            n, 0,
            "{threads} threads on pool {size}, overtake {overtake:?}: {n} allocations"
        );
        let s = p.stats();
        if threads > size {
            assert!(s.wait_count > 0, "the contended case must really wait");
        }
        assert_eq!(s.total_conns as usize, size);
        assert_eq!(s.dials as usize, size, "no dial while counting");
    }
}

struct PoolPtr(*mut pool_t);
// SAFETY: pool_t is thread-safe per the header.
unsafe impl Send for PoolPtr {}
// SAFETY: as above.
unsafe impl Sync for PoolPtr {}

/// A loopback TCP acceptor that keeps every conn open; returns its address.
fn acceptor() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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

#[test]
fn c_abi_get_put_allocates_nothing() {
    let _serial = serial();
    let addr = std::ffi::CString::new(acceptor()).unwrap();
    for (threads, size) in [(1, 4), (8, 2)] {
        let mut raw: *mut pool_t = std::ptr::null_mut();
        // SAFETY: plain use of the C API as the header documents it; `addr` outlives
        // pool_new, which copies it.
        unsafe {
            let mut o: pool_options_t = std::mem::zeroed();
            pool_options_init(&mut o);
            o.addr = addr.as_ptr();
            o.pool_size = size as i32;
            o.pool_timeout_ms = -1;
            assert_eq!(pool_new(&o, &mut raw, std::ptr::null_mut()), POOL_OK);
            // Every conn dialed up front: a dial is not steady state.
            let mut conns = vec![std::ptr::null_mut::<pool_conn_t>(); size];
            for c in &mut conns {
                assert_eq!(pool_get(raw, c, std::ptr::null_mut()), POOL_OK);
            }
            for c in conns {
                assert_eq!(pool_put(raw, c), POOL_OK);
            }
        }
        let raw = Arc::new(PoolPtr(raw));
        let r2 = raw.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let mut c: *mut pool_conn_t = std::ptr::null_mut();
            // SAFETY: a live pool handle and a writable out pointer.
            unsafe {
                assert_eq!(pool_get(r2.0, &mut c, std::ptr::null_mut()), POOL_OK);
                assert_eq!(pool_put(r2.0, c), POOL_OK);
            }
        });
        let n = steady_allocs(threads, op);
        assert_eq!(
            n, 0,
            "C ABI, {threads} threads on pool {size}: {n} allocations"
        );
        // SAFETY: the handle is given back once; no conn is checked out.
        unsafe { pool_free(raw.0) };
    }
}
