//! The benchmark suite of "Performance: faster than go-redis's pool".
//!
//! Run: `cargo bench --bench suite` (or `scripts/bench.sh`); add `-- --quick` for a short
//! smoke run. It prints markdown tables and writes `bench-results/results.md` (the tables
//! and the machine) and `bench-results/throughput.png` (Get+Put throughput vs threads).
//! `cargo test --all-targets` runs this binary without `--bench`: it then does a tiny run
//! of every section (a few hundred operations each) and writes under `target/`, so CI
//! proves the suite works without spending time on it. Timings are never asserted.
//!
//! Sections:
//!  a. Get+Put through the C ABI on loopback TCP sockets (a local acceptor thread):
//!     redispool with defaults, redispool "hot" (health_check_bypass_ms = 500: a conn given
//!     back less than 500 ms ago skips the MSG_PEEK syscall), redispool "overtake"
//!     (overtake_window_ms = 5: gets may pass queued gets for up to 5 ms), a plain Mutex +
//!     Condvar pool (redis-plus-plus's and r2d2's design) and a minimal FIFO hand-off pool
//!     (one lock, a queue of parked threads, a put hands its socket to the oldest: the
//!     waiting design of redispool with nothing else), and go-redis's own pool from
//!     goroutines (go-redis v5's internal/pool, from Debian's golang-gopkg-redis.v5-dev,
//!     driven by benches/goredis/main.go; left out with a note when Go or the package is
//!     missing); pool size 8 and 64 x 2, 8, 64, 256
//!     threads. ns/op is wall time / total ops from a run without timers; the wait
//!     percentiles come from a second run that times every get. `-- --cell POOLxTHREADS`
//!     runs one cell of every variant.
//!  b. Round trips against a real redis-server: Get + PING (pool_conn_command) + Put
//!     against dedicated per-thread conns (the physical limit), pool size = threads.
//!     `-- --round-trips` runs this section alone.
//!  c. Allocations per get/put (a counting global allocator) and library bytes per pooled
//!     conn.
//!  d. Overload fairness: pool 8, 256 threads against 8 threads.

mod chart;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::ffi::{CString, c_char, c_int, c_void};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redispool::ffi::conn::{pool_conn_command, pool_conn_fd, pool_conn_t};
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{
    pool_free, pool_get, pool_idle_len, pool_new, pool_put, pool_stats, pool_t,
};
use redispool::ffi::reply::{POOL_REPLY_STATUS, pool_reply_free, pool_reply_t};
use redispool::ffi::stats::pool_stats_t;
use redispool::ffi::status::POOL_OK;
use redispool::pool::{ConnPool, Dialer, Options, Wait};

// ---------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------

/// Wraps the system allocator; while `COUNTING` is on it counts allocations (alloc,
/// alloc_zeroed and realloc each count one) and the bytes allocated and freed, on every
/// thread of the process.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);

fn note_alloc(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

fn note_free(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        FREED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on it.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// What the allocator counted between `start` and `stop`.
#[derive(Clone, Copy, Debug, Default)]
struct AllocCount {
    allocs: u64,
    bytes: u64,
    freed: u64,
}

impl AllocCount {
    /// Bytes still allocated (allocated minus freed in the window).
    fn net(&self) -> i64 {
        self.bytes as i64 - self.freed as i64
    }
}

fn count_start() {
    ALLOCS.store(0, Ordering::SeqCst);
    ALLOC_BYTES.store(0, Ordering::SeqCst);
    FREED_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

fn count_stop() -> AllocCount {
    COUNTING.store(false, Ordering::SeqCst);
    AllocCount {
        allocs: ALLOCS.load(Ordering::SeqCst),
        bytes: ALLOC_BYTES.load(Ordering::SeqCst),
        freed: FREED_BYTES.load(Ordering::SeqCst),
    }
}

// ---------------------------------------------------------------------------
// Run plan
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// `cargo test`: a few hundred ops per section, to prove the suite still works.
    Smoke,
    /// `cargo bench --bench suite -- --quick`.
    Quick,
    /// `cargo bench --bench suite`.
    Full,
}

struct Plan {
    mode: Mode,
    /// One Get+Put cell (each cell runs twice: untimed for ns/op, timed for waits).
    cell: Duration,
    /// One round-trip cell.
    rt_cell: Duration,
    /// Get+Put pairs counted for allocations.
    alloc_ops: usize,
    /// Conns dialed into the idle list for bytes per conn.
    mem_conns: usize,
}

impl Plan {
    fn new(mode: Mode) -> Plan {
        let ms = Duration::from_millis;
        match mode {
            Mode::Smoke => Plan {
                mode,
                cell: ms(2),
                rt_cell: ms(5),
                alloc_ops: 300,
                mem_conns: 50,
            },
            Mode::Quick => Plan {
                mode,
                cell: ms(100),
                rt_cell: ms(200),
                alloc_ops: 20_000,
                mem_conns: 200,
            },
            Mode::Full => Plan {
                mode,
                cell: ms(1000),
                rt_cell: ms(3000),
                alloc_ops: 100_000,
                mem_conns: 1000,
            },
        }
    }
}

/// Ops between two looks at the stop flag: 16, or 1 in the smoke run (where a thread
/// starved by an unfair pool would otherwise hold up the end of a 2 ms cell).
static BATCH: AtomicU64 = AtomicU64::new(16);

const POOL_SIZES: [usize; 2] = [8, 64];
const THREADS: [usize; 4] = [2, 8, 64, 256];
/// Extra (pool size, threads) cells, in the table only: a small pool where every few
/// gets wait (the waiters' spin-then-park matters most there).
const EXTRA_CELLS: [(usize, usize); 1] = [(2, 8)];
const RT_THREADS: [usize; 2] = [8, 64];
/// HikariCP's alive-bypass window, used by the "hot" variant.
const HOT_BYPASS_MS: i64 = 500;
/// `overtake_window_ms` of the "overtake" variant: gets may pass queued gets for 5 ms.
const OVERTAKE_MS: i64 = 5;

// ---------------------------------------------------------------------------
// Latency histogram: log-linear buckets (32 per power of two, <= 3 % error), allocated
// once per thread before the measurement so recording never allocates.
// ---------------------------------------------------------------------------

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 2 * SUB + (64 - SUB_BITS as usize - 1) * SUB;

struct Hist {
    buckets: Box<[u64]>,
    count: u64,
    sum: u128,
    max: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros(); // >= SUB_BITS + 1
        let shift = msb - SUB_BITS;
        2 * SUB + (shift as usize - 1) * SUB + ((v >> shift) as usize & (SUB - 1))
    }

    /// The middle of bucket `i`'s value range.
    fn value(i: usize) -> u64 {
        if i < 2 * SUB {
            return i as u64;
        }
        let shift = ((i - 2 * SUB) / SUB + 1) as u32;
        let low = ((SUB + (i - 2 * SUB) % SUB) as u64) << shift;
        low + (1u64 << shift) / 2
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        self.buckets[Hist::index(ns)] += 1;
        self.count += 1;
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Hist::value(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// Wait statistics of one cell, in ns.
#[derive(Clone, Copy, Debug, Default)]
struct Waits {
    p50: u64,
    p99: u64,
    max: u64,
    mean: f64,
}

impl From<&Hist> for Waits {
    fn from(h: &Hist) -> Waits {
        Waits {
            p50: h.percentile(0.50),
            p99: h.percentile(0.99),
            max: h.max,
            mean: h.mean(),
        }
    }
}

// ---------------------------------------------------------------------------
// The pools under test
// ---------------------------------------------------------------------------

trait BenchPool: Sync {
    type Conn;
    fn get(&self) -> Self::Conn;
    fn put(&self, c: Self::Conn);
}

/// A pool_t used through the C ABI.
struct CPool(*mut pool_t);
// SAFETY: pool_t is documented thread-safe.
unsafe impl Send for CPool {}
// SAFETY: as above.
unsafe impl Sync for CPool {}

impl CPool {
    /// A pool over `addr` (TCP) with `pool_size` conns, all dialed before it is returned;
    /// the library's default `overtake_window_ms`.
    fn new(addr: &str, size: usize, bypass_ms: i64) -> CPool {
        CPool::with(addr, size, bypass_ms, None)
    }

    /// `new`, with `overtake_window_ms` too (None: the library's default).
    fn with(addr: &str, size: usize, bypass_ms: i64, overtake_ms: Option<i64>) -> CPool {
        let caddr = CString::new(addr).unwrap();
        let mut o = options_init();
        o.addr = caddr.as_ptr();
        o.pool_size = size as i32;
        // Oversubscribed cells queue for as long as it takes: a get must never time out.
        o.pool_timeout_ms = -1;
        o.health_check_bypass_ms = bypass_ms;
        if let Some(ms) = overtake_ms {
            o.overtake_window_ms = ms;
        }
        let p = CPool::from_options(&o);
        p.prewarm(size);
        p
    }

    fn from_options(o: &pool_options_t) -> CPool {
        let mut p = std::ptr::null_mut();
        // SAFETY: documented FFI use; strings in `o` outlive the call (pool_new copies them).
        let rc = unsafe { pool_new(o, &mut p, std::ptr::null_mut()) };
        assert_eq!(rc, POOL_OK, "pool_new");
        CPool(p)
    }

    /// Dials `n` conns (n gets at once, then n puts) so measurements see only reuse.
    fn prewarm(&self, n: usize) {
        let conns: Vec<_> = (0..n).map(|_| self.get()).collect();
        for c in conns {
            self.put(c);
        }
    }

    fn stats(&self) -> pool_stats_t {
        // SAFETY: all-zero is a valid pool_stats_t (integers only).
        let mut st: pool_stats_t = unsafe { std::mem::zeroed() };
        st.struct_size = std::mem::size_of::<pool_stats_t>();
        // SAFETY: live pool, writable stats.
        assert_eq!(unsafe { pool_stats(self.0, &mut st) }, POOL_OK);
        st
    }
}

impl Drop for CPool {
    fn drop(&mut self) {
        // SAFETY: every thread using it has been joined; nothing is checked out.
        unsafe { pool_free(self.0) }
    }
}

impl BenchPool for CPool {
    type Conn = *mut pool_conn_t;
    #[inline]
    fn get(&self) -> *mut pool_conn_t {
        let mut c = std::ptr::null_mut();
        // SAFETY: live pool, writable out pointer.
        let rc = unsafe { pool_get(self.0, &mut c, std::ptr::null_mut()) };
        assert_eq!(rc, POOL_OK, "pool_get");
        c
    }
    #[inline]
    fn put(&self, c: *mut pool_conn_t) {
        // SAFETY: `c` was checked out from this pool by this thread.
        let rc = unsafe { pool_put(self.0, c) };
        assert_eq!(rc, POOL_OK, "pool_put");
    }
}

fn options_init() -> pool_options_t {
    // SAFETY: pool_options_init fills every field; zeroed memory is only its starting point.
    unsafe {
        let mut o: pool_options_t = std::mem::zeroed();
        pool_options_init(&mut o);
        o
    }
}

/// The core pool through its Rust API.
struct CorePool(ConnPool);

impl CorePool {
    fn new(addr: &str, size: usize, bypass: Option<Duration>) -> CorePool {
        let mut o = Options::new(Dialer::Tcp(addr.to_string()));
        o.pool_size = size;
        o.pool_timeout = Wait::Forever;
        o.health_check_bypass = bypass;
        let p = CorePool(ConnPool::new(o).expect("ConnPool::new"));
        let conns: Vec<_> = (0..size).map(|_| p.get()).collect();
        for c in conns {
            p.put(c);
        }
        p
    }
}

impl BenchPool for CorePool {
    type Conn = redispool::pool::Conn;
    #[inline]
    fn get(&self) -> Self::Conn {
        self.0.get().expect("get")
    }
    #[inline]
    fn put(&self, c: Self::Conn) {
        if self.0.put(c).is_err() {
            panic!("put rejected");
        }
    }
}

/// `n` TCP conns to `addr` with TCP_NODELAY, as the baselines hold them.
fn connect_all(addr: &str, n: usize) -> impl Iterator<Item = TcpStream> + '_ {
    (0..n).map(move |_| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s
    })
}

/// The baseline: one mutex over a deque of sockets, one condvar for waiters (the design of
/// redis-plus-plus's ConnectionPool and r2d2).
struct MutexPool {
    idle: Mutex<VecDeque<TcpStream>>,
    cv: Condvar,
}

impl MutexPool {
    fn new(addr: &str, size: usize) -> Self {
        let idle = connect_all(addr, size).collect();
        MutexPool {
            idle: Mutex::new(idle),
            cv: Condvar::new(),
        }
    }
}

impl BenchPool for MutexPool {
    type Conn = TcpStream;
    #[inline]
    fn get(&self) -> TcpStream {
        let mut idle = self.idle.lock().unwrap();
        loop {
            if let Some(s) = idle.pop_back() {
                return s;
            }
            idle = self.cv.wait(idle).unwrap();
        }
    }
    #[inline]
    fn put(&self, s: TcpStream) {
        self.idle.lock().unwrap().push_back(s);
        self.cv.notify_one();
    }
}

/// The second baseline: strict FIFO hand-off and nothing else. One mutex over the idle
/// sockets and a queue of waiting threads; a put with a waiter queued hands its socket to
/// the oldest waiter and unparks it, as redispool does, but with no health check, clock,
/// stats or C ABI. Under oversubscription (more threads than conns) every get then parks
/// and is woken: this is the cost of the context switches alone, the floor of any pool
/// that serves waiters first come, first served with OS threads on this machine.
struct FifoPool {
    state: parking_lot::Mutex<FifoState>,
}

struct FifoState {
    idle: Vec<TcpStream>,
    waiters: VecDeque<Arc<FifoWaiter>>,
}

/// One per thread, reused by every wait of that thread (no allocation per wait).
struct FifoWaiter {
    granted: parking_lot::Mutex<Option<TcpStream>>,
    thread: thread::Thread,
}

thread_local! {
    static FIFO_WAITER: Arc<FifoWaiter> = Arc::new(FifoWaiter {
        granted: parking_lot::Mutex::new(None),
        thread: thread::current(),
    });
}

impl FifoPool {
    fn new(addr: &str, size: usize) -> Self {
        let idle = connect_all(addr, size).collect();
        FifoPool {
            state: parking_lot::Mutex::new(FifoState {
                idle,
                waiters: VecDeque::with_capacity(4096),
            }),
        }
    }
}

impl BenchPool for FifoPool {
    type Conn = TcpStream;
    #[inline]
    fn get(&self) -> TcpStream {
        let me = {
            let mut st = self.state.lock();
            if let Some(s) = st.idle.pop() {
                return s;
            }
            let me = FIFO_WAITER.with(Arc::clone);
            st.waiters.push_back(Arc::clone(&me));
            me
        };
        loop {
            if let Some(s) = me.granted.lock().take() {
                return s;
            }
            thread::park();
        }
    }
    #[inline]
    fn put(&self, s: TcpStream) {
        let mut st = self.state.lock();
        match st.waiters.pop_front() {
            Some(w) => {
                drop(st);
                *w.granted.lock() = Some(s);
                w.thread.unpark();
            }
            None => st.idle.push(s),
        }
    }
}

/// Accepts loopback conns and keeps them open until the process ends. The list is
/// preallocated so accepting never allocates (section c counts every thread).
fn acceptor() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::with_capacity(1 << 14);
        for mut s in l.incoming().flatten() {
            // The pool PINGs a new conn (the default dialer expects Redis): answer it.
            let _ = std::io::Write::write_all(&mut s, b"+PONG\r\n");
            held.push(s);
        }
    });
    addr
}

// ---------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------

struct Run {
    ns_per_op: f64,
    ops: u64,
    span_ns: u64,
    waits: Option<Waits>,
}

/// Runs `threads` threads for `dur`. Each makes its state with `init` (before the start
/// line), then repeats `op(state, hist)` in batches of `BATCH` until told to stop. With
/// `timed`, each thread passes its own preallocated histogram (the op records into it).
/// Returns wall time (from the start line to the last join) per op.
fn run<S, I, F>(threads: usize, dur: Duration, timed: bool, init: I, op: F) -> Run
where
    I: Fn(usize) -> S + Sync,
    F: Fn(&mut S, Option<&mut Hist>) + Sync,
{
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    // The measured span runs from the first thread's start to the last thread's end, in ns
    // since `base`: ops a thread does before the main thread wakes up (256 runnable threads
    // on 2 cores can delay it a lot) are inside the span too.
    let base = Instant::now();
    let first_start = AtomicU64::new(u64::MAX);
    let last_end = AtomicU64::new(0);
    let start_line = Barrier::new(threads + 1);
    let merged = Mutex::new(Hist::new());
    thread::scope(|s| {
        for t in 0..threads {
            let (stop, total, start_line, merged, init, op) =
                (&stop, &total, &start_line, &merged, &init, &op);
            let (first_start, last_end) = (&first_start, &last_end);
            s.spawn(move || {
                let mut state = init(t);
                let mut hist = if timed { Some(Hist::new()) } else { None };
                let batch = BATCH.load(Ordering::Relaxed);
                start_line.wait();
                first_start.fetch_min(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match hist.as_mut() {
                        None => {
                            for _ in 0..batch {
                                op(&mut state, None);
                            }
                        }
                        Some(h) => {
                            for _ in 0..batch {
                                op(&mut state, Some(&mut *h));
                            }
                        }
                    }
                    n += batch;
                }
                last_end.fetch_max(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                total.fetch_add(n, Ordering::Relaxed);
                if let Some(h) = hist {
                    merged.lock().unwrap().merge(&h);
                }
            });
        }
        start_line.wait();
        thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
    });
    let span = last_end
        .into_inner()
        .saturating_sub(first_start.into_inner());
    let ops = total.load(Ordering::Relaxed);
    let merged = merged.into_inner().unwrap();
    Run {
        ns_per_op: span as f64 / ops.max(1) as f64,
        ops,
        span_ns: span,
        waits: timed.then(|| Waits::from(&merged)),
    }
}

/// One Get+Put; with a histogram, the get is timed.
#[inline(always)]
fn get_put<P: BenchPool>(p: &P, hist: Option<&mut Hist>) {
    match hist {
        None => {
            let c = p.get();
            p.put(c);
        }
        Some(h) => {
            let t0 = Instant::now();
            let c = p.get();
            h.record(t0.elapsed().as_nanos() as u64);
            p.put(c);
        }
    }
}

/// ns per Get+Put from one run without timers.
fn getput_ns<P: BenchPool>(p: &P, threads: usize, dur: Duration) -> f64 {
    run(threads, dur, false, |_| (), |_, h| get_put(p, h)).ns_per_op
}

/// A Get+Put cell: an untimed run for ns/op, then a timed run for the waits.
fn getput_cell<P: BenchPool>(p: &P, threads: usize, dur: Duration) -> (f64, Waits) {
    let ns = getput_ns(p, threads, dur);
    let timed = run(threads, dur, true, |_| (), |_, h| get_put(p, h));
    (ns, timed.waits.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Section a: Get+Put through the C ABI
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Default,
    Hot,
    MutexCondvar,
    Fifo,
    Overtake,
    GoRedis,
}

const VARIANTS: [Variant; 6] = [
    Variant::Default,
    Variant::Overtake,
    Variant::Hot,
    Variant::MutexCondvar,
    Variant::Fifo,
    Variant::GoRedis,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Default => "redispool",
            Variant::Hot => "redispool hot",
            Variant::MutexCondvar => "Mutex+Condvar",
            Variant::Fifo => "FIFO hand-off",
            Variant::Overtake => "redispool overtake",
            Variant::GoRedis => "go-redis v5 (goroutines)",
        }
    }
}

struct Cell {
    variant: Variant,
    size: usize,
    threads: usize,
    ns_per_op: f64,
    waits: Waits,
}

impl Cell {
    fn mops(&self) -> f64 {
        1000.0 / self.ns_per_op
    }
}

/// One pool per variant, all of `size` conns on `addr`.
struct VariantPools<'g> {
    default: CPool,
    hot: CPool,
    overtake: CPool,
    mutex: MutexPool,
    fifo: FifoPool,
    /// go-redis runs in its own process, which makes its own pool per run.
    go: Option<(&'g GoRedis, String, usize)>,
}

impl<'g> VariantPools<'g> {
    fn new(addr: &str, size: usize, go: Option<&'g GoRedis>) -> Self {
        VariantPools {
            default: CPool::new(addr, size, 0),
            hot: CPool::new(addr, size, HOT_BYPASS_MS),
            overtake: CPool::with(addr, size, 0, Some(OVERTAKE_MS)),
            mutex: MutexPool::new(addr, size),
            fifo: FifoPool::new(addr, size),
            go: go.map(|g| (g, addr.to_string(), size)),
        }
    }

    /// `getput_cell` on the pool of `v`; None for go-redis when it is not built.
    fn cell(&self, v: Variant, threads: usize, dur: Duration) -> Option<(f64, Waits)> {
        Some(match v {
            Variant::Default => getput_cell(&self.default, threads, dur),
            Variant::Hot => getput_cell(&self.hot, threads, dur),
            Variant::Overtake => getput_cell(&self.overtake, threads, dur),
            Variant::MutexCondvar => getput_cell(&self.mutex, threads, dur),
            Variant::Fifo => getput_cell(&self.fifo, threads, dur),
            Variant::GoRedis => {
                let (go, addr, size) = self.go.as_ref()?;
                let (ns, waits) = go.run(addr, *size, threads, dur, true);
                (ns, waits.unwrap_or_default())
            }
        })
    }

    /// ns per Get+Put on the pool of `v`, one run without timers.
    fn ns_per_op(&self, v: Variant, threads: usize, dur: Duration) -> Option<f64> {
        Some(match v {
            Variant::Default => getput_ns(&self.default, threads, dur),
            Variant::Hot => getput_ns(&self.hot, threads, dur),
            Variant::Overtake => getput_ns(&self.overtake, threads, dur),
            Variant::MutexCondvar => getput_ns(&self.mutex, threads, dur),
            Variant::Fifo => getput_ns(&self.fifo, threads, dur),
            Variant::GoRedis => {
                let (go, addr, size) = self.go.as_ref()?;
                go.run(addr, *size, threads, dur, false).0
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The go-redis baseline
// ---------------------------------------------------------------------------

/// Where Debian's golang-gopkg-redis.v5-dev installs go-redis v5 (5.2.9 in Debian 12).
const GO_REDIS_SRC: &str = "/usr/share/gocode/src/gopkg.in/redis.v5";

/// go-redis's own pool (v5's internal/pool: the channel semaphore, the mutex-guarded free
/// list, a pooled timer per get; go-redis 9 adds a MSG_PEEK and deadline resets per get),
/// from goroutines, driven by benches/goredis/main.go in a process per run.
struct GoRedis {
    exe: PathBuf,
}

impl GoRedis {
    /// Builds benches/goredis/main.go inside a copy of go-redis's tree, in GOPATH mode: an
    /// internal package is importable only from inside the tree it belongs to.
    fn build() -> Result<GoRedis, String> {
        let src = std::path::Path::new(GO_REDIS_SRC);
        if !src.join("internal/pool/pool.go").is_file() {
            return Err(format!(
                "{GO_REDIS_SRC} is missing (apt-get install golang-go golang-gopkg-redis.v5-dev; \
                 scripts/bench.sh does)"
            ));
        }
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("goredis-bench");
        let _ = std::fs::remove_dir_all(&root);
        let pkg = root.join("src/gopkg.in/redis.v5");
        std::fs::create_dir_all(root.join("src/gopkg.in")).map_err(|e| e.to_string())?;
        let copied = Command::new("cp")
            .arg("-r")
            .arg(src)
            .arg(&pkg)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !copied.success() {
            return Err(format!("cp -r {GO_REDIS_SRC}: {copied}"));
        }
        let dir = pkg.join("redispoolbench");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("main.go"), include_str!("goredis/main.go"))
            .map_err(|e| e.to_string())?;
        let exe = root.join("redispoolbench");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&exe)
            .arg("gopkg.in/redis.v5/redispoolbench")
            .current_dir(&root)
            .env("GO111MODULE", "off")
            .env("GOPATH", &root)
            .env("GOCACHE", root.join("cache"))
            .env("GOFLAGS", "")
            .output()
            .map_err(|e| format!("go: {e} (apt-get install golang-go; scripts/bench.sh does)"))?;
        if !out.status.success() {
            return Err(format!(
                "go build: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(GoRedis { exe })
    }

    /// One process: ns per Get+Put of `threads` goroutines on a pool of `size` conns to
    /// `addr` for `dur`, and with `timed` the waits of a second run timing every get.
    fn run(
        &self,
        addr: &str,
        size: usize,
        threads: usize,
        dur: Duration,
        timed: bool,
    ) -> (f64, Option<Waits>) {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(addr)
            .arg(size.to_string())
            .arg(threads.to_string())
            .arg(dur.as_millis().max(1).to_string());
        if timed {
            cmd.arg("timed");
        }
        let out = cmd.output().expect("run the go-redis baseline");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "go-redis baseline (pool {size}, {threads} goroutines): {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        let field = |name: &str| -> Option<f64> {
            let i = words.iter().position(|w| *w == name)?;
            words.get(i + 1)?.parse().ok()
        };
        let ns = field("ns_per_op").unwrap_or_else(|| panic!("go-redis baseline printed {text:?}"));
        let waits = timed.then(|| Waits {
            p50: field("p50").unwrap_or(0.0) as u64,
            p99: field("p99").unwrap_or(0.0) as u64,
            max: field("max").unwrap_or(0.0) as u64,
            mean: field("mean").unwrap_or(0.0),
        });
        (ns, waits)
    }
}

fn section_getput(plan: &Plan, addr: &str, go: Option<&GoRedis>) -> Vec<Cell> {
    let mut cells = Vec::new();
    let grid = POOL_SIZES
        .iter()
        .map(|&size| (size, THREADS.to_vec()))
        .chain(EXTRA_CELLS.iter().map(|&(size, t)| (size, vec![t])));
    for (size, threads_list) in grid {
        let pools = VariantPools::new(addr, size, go);
        for threads in threads_list {
            for variant in VARIANTS {
                progress(&format!(
                    "a. Get+Put {:<24} pool {size:>2}, {threads:>3} threads",
                    variant.name()
                ));
                let Some((ns_per_op, waits)) = pools.cell(variant, threads, plan.cell) else {
                    continue;
                };
                cells.push(Cell {
                    variant,
                    size,
                    threads,
                    ns_per_op,
                    waits,
                });
            }
        }
        // Every get reused a pooled conn: no dial after the prewarm, nothing went stale.
        for p in [&pools.default, &pools.hot, &pools.overtake] {
            let st = p.stats();
            assert_eq!((st.misses, st.stale_conns), (size as u64, 0), "pool {size}");
        }
    }
    cells
}

/// `--cell POOLxTHREADS`: one Get+Put cell of section a, every variant, 1 s each,
/// printed as it goes (for profiling one cell: `perf record` around it, say).
fn one_cell(size: usize, threads: usize) {
    raise_fd_limit();
    let addr = acceptor();
    let go = GoRedis::build()
        .map_err(|why| eprintln!("go-redis baseline left out: {why}"))
        .ok();
    let pools = VariantPools::new(&addr, size, go.as_ref());
    for variant in VARIANTS {
        let Some((ns, w)) = pools.cell(variant, threads, Duration::from_secs(1)) else {
            continue;
        };
        println!(
            "pool {size} x {threads} threads  {:<20} {ns:>7.0} ns/op  wait mean {} p99 {} max {}",
            variant.name(),
            fmt_ns(w.mean),
            fmt_ns(w.p99 as f64),
            fmt_ns(w.max as f64)
        );
    }
}

/// Section d's throughput ratio: 256 against 8 threads on pool 8, measured in short
/// alternating runs (the machine's speed drifts between the cells of section a, minutes
/// apart, by more than the effect measured).
struct Keep {
    variant: Variant,
    /// Median over the rounds of (256-thread ops/s) / (8-thread ops/s), in percent.
    pct: f64,
}

fn section_fairness(plan: &Plan, addr: &str, go: Option<&GoRedis>) -> Vec<Keep> {
    let (rounds, slice) = match plan.mode {
        Mode::Smoke => (1, Duration::from_millis(2)),
        Mode::Quick => (4, Duration::from_millis(50)),
        Mode::Full => (8, Duration::from_millis(250)),
    };
    let pools = VariantPools::new(addr, 8, go);
    let mut out = Vec::new();
    for variant in VARIANTS {
        if variant == Variant::GoRedis && go.is_none() {
            continue;
        }
        progress(&format!(
            "d. fairness {:<24} pool 8, 8 vs 256 threads",
            variant.name()
        ));
        let ns = |threads: usize| {
            pools
                .ns_per_op(variant, threads, slice)
                .expect("built variant")
        };
        let mut pcts: Vec<f64> = (0..rounds)
            .map(|round| {
                // Alternate which runs first, as the round trips do.
                let (few, many) = if round % 2 == 0 {
                    let few = ns(8);
                    (few, ns(256))
                } else {
                    let many = ns(256);
                    (ns(8), many)
                };
                100.0 * few / many
            })
            .collect();
        out.push(Keep {
            variant,
            pct: median(&mut pcts),
        });
    }
    out
}

/// One thread, no contention: the cost of the Get+Put path itself.
struct Uncontended {
    name: &'static str,
    ns_per_op: f64,
}

fn section_uncontended(plan: &Plan, addr: &str) -> Vec<Uncontended> {
    progress("a. uncontended (1 thread)");
    fn one<P: BenchPool>(name: &'static str, p: &P, dur: Duration) -> Uncontended {
        let ns_per_op = run(1, dur, false, |_| (), |_, h| get_put(p, h)).ns_per_op;
        Uncontended { name, ns_per_op }
    }
    let hot = Some(Duration::from_millis(HOT_BYPASS_MS as u64));
    let dur = plan.cell;
    vec![
        one("redispool, C ABI", &CPool::new(addr, 8, 0), dur),
        one(
            "redispool hot, C ABI",
            &CPool::new(addr, 8, HOT_BYPASS_MS),
            dur,
        ),
        one(
            "redispool, Rust core API",
            &CorePool::new(addr, 8, None),
            dur,
        ),
        one(
            "redispool hot, Rust core API",
            &CorePool::new(addr, 8, hot),
            dur,
        ),
        one("Mutex+Condvar", &MutexPool::new(addr, 8), dur),
    ]
}

// ---------------------------------------------------------------------------
// Section b: round trips against redis-server
// ---------------------------------------------------------------------------

struct RoundTrip {
    threads: usize,
    dedicated: f64,
    command: f64,
    raw_fd: f64,
    /// Median over the rounds of (variant ops/s) / (dedicated ops/s in the same round), in
    /// percent: a burst of outside load hits one round, not the comparison.
    command_pct: f64,
    raw_fd_pct: f64,
    /// Get+PING+Put on a pool with `health_check_bypass_ms` = HOT_BYPASS_MS.
    hot: f64,
    hot_pct: f64,
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

fn ping_on(stream: &mut TcpStream) {
    let mut buf = [0u8; 7];
    stream.write_all(PING).expect("write PING");
    stream.read_exact(&mut buf).expect("read PONG");
    assert_eq!(&buf, PONG);
}

/// The median of `v` (the mean of the middle two for an even count); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn section_round_trips(plan: &Plan, redis_addr: &str) -> Vec<RoundTrip> {
    // The variants take turns in short rounds, so a burst of load from elsewhere on the
    // machine hits all of them alike; each result is total ops / total time.
    let rounds = match plan.mode {
        Mode::Smoke => 1,
        Mode::Quick => 4,
        Mode::Full => 12,
    };
    let slice = plan.rt_cell / rounds;
    let mut out = Vec::new();
    for threads in RT_THREADS {
        progress(&format!("b. round trips, {threads} threads"));
        let pool = CPool::new(redis_addr, threads, 0);
        let hot_pool = CPool::new(redis_addr, threads, HOT_BYPASS_MS);
        // Dialed once, like the pools' conns: a round borrows each thread its own conn
        // (a dup of the fd, so the thread's drop closes only the dup). Reconnecting per
        // round would make Redis accept and close 64 conns inside the neighbouring runs.
        let own: Vec<TcpStream> = connect_all(redis_addr, threads).collect();
        let dedicated = || {
            run(
                threads,
                slice,
                false,
                |t| own[t].try_clone().expect("dup a dedicated conn"),
                |s, _| ping_on(s),
            )
        };
        let command = |pool: &CPool| {
            run(
                threads,
                slice,
                false,
                |_| (),
                |_, _| {
                    let argv: [*const c_char; 1] = [c"PING".as_ptr()];
                    let c = pool.get();
                    let mut reply: *mut pool_reply_t = std::ptr::null_mut();
                    // SAFETY: `c` is checked out by this thread; argv holds one C string.
                    unsafe {
                        let rc = pool_conn_command(
                            c,
                            1,
                            argv.as_ptr(),
                            std::ptr::null(),
                            &mut reply,
                            std::ptr::null_mut(),
                        );
                        assert_eq!(rc, POOL_OK, "pool_conn_command");
                        assert_eq!((*reply).r#type, POOL_REPLY_STATUS);
                        pool_reply_free(reply);
                    }
                    pool.put(c);
                },
            )
        };
        let raw_fd = || {
            run(
                threads,
                slice,
                false,
                |_| (),
                |_, _| {
                    let c = pool.get();
                    // SAFETY: the fd stays open while `c` is checked out; ManuallyDrop
                    // never closes it.
                    let mut s =
                        ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(pool_conn_fd(c)) });
                    ping_on(&mut s);
                    pool.put(c);
                },
            )
        };
        let rate = |(ops, ns): (u64, u64)| ops as f64 * 1e9 / ns.max(1) as f64;
        let mut totals = [(0u64, 0u64); 4];
        let mut pcts: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds {
            // Each round starts with a different variant, so no variant always runs
            // first (or right after another): position effects cancel out.
            let mut runs: [Option<Run>; 4] = Default::default();
            for k in 0..4 {
                let i = (round as usize + k) % 4;
                runs[i] = Some(match i {
                    0 => dedicated(),
                    1 => command(&pool),
                    2 => raw_fd(),
                    _ => command(&hot_pool),
                });
            }
            let runs = runs.map(|r| r.expect("every variant ran"));
            for (i, r) in runs.iter().enumerate() {
                totals[i].0 += r.ops;
                totals[i].1 += r.span_ns;
            }
            let base = rate((runs[0].ops, runs[0].span_ns));
            for (i, r) in runs[1..].iter().enumerate() {
                pcts[i].push(100.0 * rate((r.ops, r.span_ns)) / base);
            }
        }
        out.push(RoundTrip {
            threads,
            dedicated: rate(totals[0]),
            command: rate(totals[1]),
            raw_fd: rate(totals[2]),
            hot: rate(totals[3]),
            command_pct: median(&mut pcts[0]),
            raw_fd_pct: median(&mut pcts[1]),
            hot_pct: median(&mut pcts[2]),
        });
    }
    out
}

/// A throwaway redis-server on a free loopback port (never 6379), killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Result<Redis, String> {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut why = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            if port == 6379 {
                continue;
            }
            let child = Command::new(&program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
            let mut r = Redis { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(st)) = r.child.try_wait() {
                    why = format!("redis-server exited with {st}");
                    break;
                }
                match redis_pid(port) {
                    Ok(pid) if pid == r.child.id() => return Ok(r),
                    Ok(pid) => why = format!("port {port} answered by another redis (pid {pid})"),
                    Err(e) => why = e.to_string(),
                }
                thread::sleep(Duration::from_millis(20));
            }
            drop(r); // kills it
        }
        Err(why)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PINGs the server on `port` and returns its process id (from INFO server).
fn redis_pid(port: u16) -> io::Result<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line != "+PONG\r\n" {
        return Err(io::Error::other(format!("PING answered {line:?}")));
    }
    line.clear();
    r.read_line(&mut line)?;
    let len: usize = line
        .trim_start_matches('$')
        .trim_end()
        .parse()
        .map_err(|_| io::Error::other("bad INFO reply"))?;
    let mut body = vec![0; len + 2];
    r.read_exact(&mut body)?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no process_id"))
}

// ---------------------------------------------------------------------------
// Section c: allocations and memory
// ---------------------------------------------------------------------------

struct AllocRow {
    what: String,
    ops: u64,
    count: AllocCount,
}

/// Get+Put pairs each thread runs before allocations are counted.
const WARM_UP_PAIRS: usize = 20_000;

/// Counts allocations over `ops` Get+Put pairs on `threads` threads, after a warm-up.
fn count_getput<P: BenchPool>(p: &P, threads: usize, ops: usize) -> AllocCount {
    let per_thread = ops / threads;
    // All threads warm up together, so that with more threads than conns each one really
    // waits during the warm-up (its first wait makes its spare waiters).
    let ready_line = Barrier::new(threads);
    let warm_line = Barrier::new(threads + 1);
    let start_line = Barrier::new(threads + 1);
    let finish_line = Barrier::new(threads + 1);
    thread::scope(|s| {
        for _ in 0..threads {
            let (warm_line, start_line, finish_line) = (&warm_line, &start_line, &finish_line);
            let ready_line = &ready_line;
            s.spawn(move || {
                ready_line.wait();
                // Warm-up: whatever is made lazily on first use (thread-locals, caches, and
                // parking_lot's per-thread parking data, made on a thread's first park:
                // forced here, as a contended pool lock may first park only later). With
                // more threads than conns a thread seldom waits (2 cores run 2 threads at a
                // time), so the warm-up is long enough that each one has waited.
                let m = parking_lot::Mutex::new(());
                parking_lot::Condvar::new().wait_for(&mut m.lock(), Duration::ZERO);
                for _ in 0..WARM_UP_PAIRS {
                    get_put(p, None);
                }
                warm_line.wait();
                start_line.wait();
                for _ in 0..per_thread {
                    get_put(p, None);
                }
                finish_line.wait();
            });
        }
        warm_line.wait();
        count_start();
        start_line.wait();
        finish_line.wait();
        count_stop()
    })
}

fn section_allocs(plan: &Plan, addr: &str) -> Vec<AllocRow> {
    progress("c. allocations per get/put");
    let n = plan.alloc_ops;
    let bypass = Some(Duration::from_millis(HOT_BYPASS_MS as u64));
    let core = CorePool::new(addr, 8, None);
    let core_hot = CorePool::new(addr, 8, bypass);
    let c_default = CPool::new(addr, 8, 0);
    let c_hot = CPool::new(addr, 8, HOT_BYPASS_MS);
    let core_small = CorePool::new(addr, 2, None);
    let c_small = CPool::new(addr, 2, 0);
    let mut rows = Vec::new();
    let mut add = |what: &str, threads: usize, count: AllocCount| {
        rows.push(AllocRow {
            what: what.to_string(),
            ops: (n / threads * threads) as u64,
            count,
        })
    };
    add("Rust core API, 1 thread", 1, count_getput(&core, 1, n));
    add(
        "Rust core API hot, 1 thread",
        1,
        count_getput(&core_hot, 1, n),
    );
    add("C ABI, 1 thread", 1, count_getput(&c_default, 1, n));
    add("C ABI hot, 1 thread", 1, count_getput(&c_hot, 1, n));
    add(
        "Rust core API, 8 threads on pool 2 (gets wait)",
        8,
        count_getput(&core_small, 8, n),
    );
    add(
        "C ABI, 8 threads on pool 2 (gets wait)",
        8,
        count_getput(&c_small, 8, n),
    );
    rows
}

struct MemRow {
    what: &'static str,
    conns: usize,
    /// Bytes a pool with 0 conns holds.
    empty_pool: i64,
    /// Bytes held per conn: (pool with N idle conns - pool with 0 conns) / N.
    per_conn: f64,
    /// Bytes allocated per conn while dialing, freed or not (dial threads etc.).
    transient_per_conn: f64,
}

/// Pre-made socketpair ends handed out by the dialers of the memory measurement, so the
/// dialer itself allocates nothing; the peers' ends are kept open meanwhile.
struct FdStack {
    ours: Mutex<Vec<OwnedFd>>,
    _theirs: Vec<UnixStream>,
}

impl FdStack {
    fn new(n: usize) -> FdStack {
        let mut ours = Vec::with_capacity(n);
        let mut theirs = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b) = UnixStream::pair().expect("socketpair");
            ours.push(OwnedFd::from(a));
            theirs.push(b);
        }
        FdStack {
            ours: Mutex::new(ours),
            _theirs: theirs,
        }
    }

    fn pop(&self) -> Option<OwnedFd> {
        self.ours.lock().unwrap().pop()
    }
}

unsafe extern "C" fn dial_from_stack(
    ud: *mut c_void,
    _timeout_ms: i64,
    fd_out: *mut c_int,
) -> c_int {
    // SAFETY: `ud` is the FdStack the pool was created with; it outlives the pool.
    let stack = unsafe { &*(ud as *const FdStack) };
    match stack.pop() {
        Some(fd) => {
            // SAFETY: the pool passes a writable out pointer.
            unsafe { *fd_out = fd.into_raw_fd() };
            0
        }
        None => libc::EMFILE,
    }
}

/// Waits (bounded) until `idle()` reaches `n` with no dial in flight, then lets the dial
/// threads exit. Allocates nothing itself.
fn wait_filled(n: usize, idle: impl Fn() -> (usize, u32)) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (len, dialing) = idle();
        if len >= n && dialing == 0 {
            break;
        }
        assert!(Instant::now() < end, "pool never filled: {len}/{n} idle");
        thread::sleep(Duration::from_millis(2));
    }
    // The last dial thread returns right after its dial: give it time to exit and free.
    thread::sleep(Duration::from_millis(100));
}

fn section_memory(plan: &Plan) -> Vec<MemRow> {
    progress("c. memory per pooled conn");
    let n = plan.mem_conns;
    let mut rows = Vec::new();

    // Rust core API.
    {
        let stack = Arc::new(FdStack::new(n));
        let s = stack.clone();
        let dialer = Dialer::Custom(Arc::new(move |_| {
            s.pop()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EMFILE))
        }));
        let opts = |min_idle: usize| {
            let mut o = Options::new(dialer.clone());
            o.pool_size = n;
            o.min_idle_conns = min_idle;
            o.max_concurrent_dials = 2;
            o.dialer_retries = 1;
            o
        };
        let (o0, on) = (opts(0), opts(n));
        count_start();
        let p0 = ConnPool::new(o0).expect("pool");
        let empty = count_stop();
        drop(p0);
        count_start();
        let p = ConnPool::new(on).expect("pool");
        wait_filled(n, || (p.idle_len(), p.stats().dials_in_progress));
        let full = count_stop();
        assert_eq!(p.idle_len(), n);
        drop(p);
        rows.push(MemRow {
            what: "Rust core API",
            conns: n,
            empty_pool: empty.net(),
            per_conn: (full.net() - empty.net()) as f64 / n as f64,
            transient_per_conn: (full.bytes as f64 - empty.bytes as f64) / n as f64,
        });
    }

    // C ABI: the same through pool_new with a dial callback.
    {
        let stack = Box::new(FdStack::new(n));
        let opts = |min_idle: usize| {
            let mut o = options_init();
            o.dialer = Some(dial_from_stack);
            o.dialer_userdata = &*stack as *const FdStack as *mut c_void;
            o.pool_size = n as i32;
            o.min_idle_conns = min_idle as i32;
            o.max_concurrent_dials = 2;
            o.dialer_retries = 1;
            o
        };
        let (o0, on) = (opts(0), opts(n));
        count_start();
        let p0 = CPool::from_options(&o0);
        let empty = count_stop();
        drop(p0);
        count_start();
        let p = CPool::from_options(&on);
        wait_filled(n, || {
            // SAFETY: live pool.
            let idle = unsafe { pool_idle_len(p.0) }.max(0) as usize;
            (idle, p.stats().dials_in_progress)
        });
        let full = count_stop();
        drop(p);
        rows.push(MemRow {
            what: "C ABI (pool_new)",
            conns: n,
            empty_pool: empty.net(),
            per_conn: (full.net() - empty.net()) as f64 / n as f64,
            transient_per_conn: (full.bytes as f64 - empty.bytes as f64) / n as f64,
        });
    }
    rows
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// A progress line on stderr (stdout carries only the tables), with the time since start.
fn progress(what: &str) {
    static BEGAN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = BEGAN.get_or_init(Instant::now).elapsed();
    eprintln!("  [{:5.1} s] {what}", t.as_secs_f64());
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn fmt_ops(ops: f64) -> String {
    if ops >= 1e6 {
        format!("{:.2} M", ops / 1e6)
    } else {
        format!("{:.0} k", ops / 1e3)
    }
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn find(cells: &[Cell], v: Variant, size: usize, threads: usize) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.variant == v && c.size == size && c.threads == threads)
}

struct Report<'a> {
    plan: &'a Plan,
    cells: &'a [Cell],
    uncontended: &'a [Uncontended],
    /// callgrind's count per hot C ABI Get+Put (None: valgrind missing, or smoke mode).
    instructions: &'a Option<Result<f64, String>>,
    round_trips: Result<&'a [RoundTrip], String>,
    allocs: &'a [AllocRow],
    memory: &'a [MemRow],
    keeps: &'a [Keep],
    /// Why the go-redis baseline was left out, if it was.
    go_missing: Option<&'a str>,
}

impl Report<'_> {
    fn getput_table(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Get+Put through the C ABI on loopback TCP sockets. ns/op = wall time / total ops \
             (all threads), from a run without timers; the waits (time spent in one get) come \
             from a second run that times every get. \"hot\" = health_check_bypass_ms {HOT_BYPASS_MS}; \
             \"overtake\" = overtake_window_ms {OVERTAKE_MS}; \"FIFO hand-off\" = a minimal pool \
             with redispool's waiting design and nothing else (one lock, the idle sockets, a queue \
             of parked threads; a put hands its socket to the oldest waiter). \"go-redis v5 \
             (goroutines)\" = go-redis's own pool (v5.2.9's internal/pool, Debian's \
             golang-gopkg-redis.v5-dev) from as many goroutines, GOMAXPROCS = CPUs; go-redis 9 \
             adds a MSG_PEEK syscall and deadline resets to every get, so it is slower still.\n"
        );
        if let Some(why) = self.go_missing {
            let _ = writeln!(md, "go-redis baseline left out: {why}.\n");
        }
        let _ = writeln!(
            md,
            "| pool | threads | variant | ns/op | Mops/s | speed vs Mutex+Condvar | speed vs go-redis v5 | wait p50 | wait p99 | wait max |"
        );
        let _ = writeln!(md, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        let rows = POOL_SIZES
            .iter()
            .flat_map(|&size| THREADS.iter().map(move |&t| (size, t)))
            .chain(EXTRA_CELLS);
        for (size, threads) in rows {
            {
                let base = find(self.cells, Variant::MutexCondvar, size, threads);
                let go = find(self.cells, Variant::GoRedis, size, threads);
                for v in VARIANTS {
                    let Some(c) = find(self.cells, v, size, threads) else {
                        continue;
                    };
                    let ratio = match (v, base) {
                        (Variant::MutexCondvar, _) | (_, None) => "".to_string(),
                        (_, Some(b)) => format!("{:.2}x", b.ns_per_op / c.ns_per_op),
                    };
                    let vs_go = match (v, go) {
                        (Variant::GoRedis, _) | (_, None) => "".to_string(),
                        (_, Some(g)) => format!("{:.2}x", g.ns_per_op / c.ns_per_op),
                    };
                    let _ = writeln!(
                        md,
                        "| {size} | {threads} | {} | {:.0} | {:.2} | {ratio} | {vs_go} | {} | {} | {} |",
                        v.name(),
                        c.ns_per_op,
                        c.mops(),
                        fmt_ns(c.waits.p50 as f64),
                        fmt_ns(c.waits.p99 as f64),
                        fmt_ns(c.waits.max as f64),
                    );
                }
            }
        }
        let _ = writeln!(
            md,
            "\nUncontended (1 thread, pool 8, no timers): the cost of one Get+Put.\n"
        );
        let _ = writeln!(md, "| path | ns/op |");
        let _ = writeln!(md, "|---|---:|");
        for u in self.uncontended {
            let _ = writeln!(md, "| {} | {:.1} |", u.name, u.ns_per_op);
        }
        match self.instructions {
            Some(Ok(ir)) => {
                let _ = writeln!(
                    md,
                    "\nInstructions per hot Get+Put through the C ABI (valgrind --tool=callgrind, \
                     user space only, stable between runs): {ir:.0}."
                );
            }
            Some(Err(why)) => {
                let _ = writeln!(md, "\nInstruction count: callgrind failed ({why}).");
            }
            None => {}
        }
    }

    fn round_trip_table(&self, md: &mut String) {
        match &self.round_trips {
            Err(why) => {
                let _ = writeln!(md, "Skipped: no redis-server could be started ({why}).");
            }
            Ok(rts) => {
                let _ = writeln!(
                    md,
                    "Round trips against a real redis-server, pool size = threads (pool \
                     overhead, not queueing). \"dedicated\": each thread its own TcpStream \
                     writing PING and reading +PONG. \"Get+PING+Put\": pool_get, \
                     pool_conn_command(PING) (parses the reply into a pool_reply_t, freed), \
                     pool_put. \"raw fd\": pool_get, the same PING bytes on pool_conn_fd, \
                     pool_put. \"hot\": Get+PING+Put with health_check_bypass_ms = 500 (no \
                     peek syscall for a conn given back less than 500 ms ago). The variants \
                     take turns in short rounds; ops/s are over all \
                     rounds, \"% of dedicated\" is the median over the rounds of the ratio \
                     to the dedicated run of the same round; each round starts with a \
                     different variant.\n"
                );
                let _ = writeln!(
                    md,
                    "| threads | dedicated ops/s | Get+PING+Put ops/s | % of dedicated | Get+raw PING on fd+Put ops/s | % of dedicated | Get+PING+Put hot ops/s | % of dedicated |"
                );
                let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
                for r in *rts {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.1} % | {} | {:.1} % | {} | {:.1} % |",
                        r.threads,
                        fmt_ops(r.dedicated),
                        fmt_ops(r.command),
                        r.command_pct,
                        fmt_ops(r.raw_fd),
                        r.raw_fd_pct,
                        fmt_ops(r.hot),
                        r.hot_pct,
                    );
                }
            }
        }
    }

    fn alloc_tables(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Heap allocations counted by a counting global allocator (every thread of the \
             process) over steady-state Get+Put pairs, after a warm-up of {WARM_UP_PAIRS} \
             pairs per thread. In the \"gets wait\" rows there are more threads than conns: \
             a get queues whenever both conns are held (by a thread the scheduler preempted, \
             say), and the put hands its conn over, so they count what the library's \
             waiting path allocates too.\n"
        );
        let _ = writeln!(
            md,
            "| path | get/put pairs | allocations | allocs/op | bytes/op |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for r in self.allocs {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.4} | {:.1} |",
                r.what,
                r.ops,
                r.count.allocs,
                r.count.allocs as f64 / r.ops as f64,
                r.count.bytes as f64 / r.ops as f64,
            );
        }
        let _ = writeln!(
            md,
            "\nLibrary heap memory per pooled conn: bytes still allocated after min_idle_conns \
             = N conns were dialed into the idle list (socketpairs from a preallocated stack, \
             so the dialer allocates nothing), minus a pool with 0 conns, divided by N. The \
             kernel's socket buffers are not library memory and are not counted.\n"
        );
        let _ = writeln!(
            md,
            "| path | N | pool with 0 conns (bytes) | bytes/conn held | bytes/conn allocated while dialing (incl. freed) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for m in self.memory {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.1} |",
                m.what, m.conns, m.empty_pool, m.per_conn, m.transient_per_conn
            );
        }
    }

    fn fairness_table(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Overload fairness on pool 8: throughput with 256 threads against 8 threads, and \
             the waits of the 256-thread run (in strict order waits are FIFO-bounded: ideally \
             every get waits about as long as the others). The Mops/s columns are section a's \
             cells; \"alternating\" is the median over short rounds that run 8 and 256 \
             threads back to back (the cells of section a are minutes apart, and the machine's \
             speed drifts).\n"
        );
        let _ = writeln!(
            md,
            "| variant | 8 threads Mops/s | 256 threads Mops/s | 256 / 8 | 256 / 8, alternating | wait mean | wait p99 | wait max | max / mean |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for v in VARIANTS {
            let (Some(a), Some(b)) = (find(self.cells, v, 8, 8), find(self.cells, v, 8, 256))
            else {
                continue;
            };
            let alternating = self
                .keeps
                .iter()
                .find(|k| k.variant == v)
                .map_or_else(String::new, |k| format!("{:.0} %", k.pct));
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.0} % | {alternating} | {} | {} | {} | {:.1} |",
                v.name(),
                a.mops(),
                b.mops(),
                100.0 * b.mops() / a.mops(),
                fmt_ns(b.waits.mean),
                fmt_ns(b.waits.p99 as f64),
                fmt_ns(b.waits.max as f64),
                b.waits.max as f64 / b.waits.mean.max(1.0),
            );
        }
        if let (Some(ours), Some(fifo)) = (
            find(self.cells, Variant::Default, 8, 256),
            find(self.cells, Variant::Fifo, 8, 256),
        ) {
            let _ = writeln!(
                md,
                "\nWith 256 threads on pool 8, redispool in strict order runs at {:.0} % of the \
                 minimal FIFO hand-off pool's throughput. With more threads than conns, serving \
                 gets first come, first served means every get parks and is woken: one context \
                 switch per Get+Put, several microseconds on this machine, whatever the pool. \
                 Only letting a running thread take a conn ahead of the queue avoids the \
                 switches: Mutex+Condvar does it without limit (its longest wait is thousands of \
                 times its mean), redispool overtake for at most {OVERTAKE_MS} ms per waiter. \
                 The two targets pull apart: a thread that takes k conns in a row for each \
                 switch waits once for a whole round and k-1 times not at all, so its max wait \
                 is about k times the mean, and keeping 80 % of the throughput needs k in the \
                 tens.",
                100.0 * ours.mops() / fifo.mops()
            );
        }
        let noise: Vec<String> = VARIANTS
            .iter()
            .filter_map(|&v| find(self.cells, v, 64, 2).map(|c| (v, c)))
            .map(|(v, c)| format!("{} {}", v.name(), fmt_ns(c.waits.max as f64)))
            .collect();
        if !noise.is_empty() {
            let _ = writeln!(
                md,
                "\nScheduler noise in this run: the longest get of the cells with 2 threads on \
                 pool 64, where a get never waits for a conn: {}. A get the OS preempts (or the \
                 hypervisor deschedules) lasts that long whatever the pool does, so a max wait \
                 below 3x the mean is only measurable when the mean wait is above a third of it.",
                noise.join(", ")
            );
        }
    }

    fn targets_table(&self, md: &mut String) {
        let _ = writeln!(md, "| target | measured | met |");
        let _ = writeln!(md, "|---|---|---|");
        if let Some(u) = self
            .uncontended
            .iter()
            .find(|u| u.name == "redispool hot, C ABI")
        {
            let _ = writeln!(
                md,
                "| hot Get+Put uncontended (1 thread, C ABI) <= 60 ns | {:.1} ns | {} |",
                u.ns_per_op,
                yes_no(u.ns_per_op <= 60.0)
            );
        }
        for v in [Variant::Default, Variant::Hot, Variant::Overtake] {
            // The cell where `v` is least ahead of go-redis.
            let worst = self
                .cells
                .iter()
                .filter(|c| c.variant == v)
                .filter_map(|c| {
                    let g = find(self.cells, Variant::GoRedis, c.size, c.threads)?;
                    Some((g.ns_per_op / c.ns_per_op, c))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((speedup, c)) = worst {
                let _ = writeln!(
                    md,
                    "| {} >= 5x go-redis v5's pool in every Get+Put cell | {speedup:.2}x in its worst cell (pool {}, {} threads) | {} |",
                    v.name(),
                    c.size,
                    c.threads,
                    yes_no(speedup >= 5.0)
                );
            }
        }
        if let Ok(rts) = &self.round_trips {
            for (variant, hot) in [("", false), (" hot", true)] {
                for r in *rts {
                    let pct = if hot { r.hot_pct } else { r.command_pct };
                    let _ = writeln!(
                        md,
                        "| Get+PING+Put{variant} >= 95 % of dedicated conns, {} threads | {pct:.1} % | {} |",
                        r.threads,
                        yes_no(pct >= 95.0)
                    );
                }
            }
        }
        for r in self.allocs {
            let per = r.count.allocs as f64 / r.ops as f64;
            let _ = writeln!(
                md,
                "| 0 allocations per get/put, {} | {per:.4} allocs/op | {} |",
                r.what,
                yes_no(r.count.allocs == 0)
            );
        }
        for m in self.memory {
            let _ = writeln!(
                md,
                "| <= 256 bytes of library memory per pooled conn, {} | {:.1} B | {} |",
                m.what,
                m.per_conn,
                yes_no(m.per_conn <= 256.0)
            );
        }
        for v in [Variant::Default, Variant::Overtake] {
            let (Some(a), Some(b)) = (find(self.cells, v, 8, 8), find(self.cells, v, 8, 256))
            else {
                continue;
            };
            // The alternating measurement when there is one (section d), else the cells.
            let keep = self
                .keeps
                .iter()
                .find(|k| k.variant == v)
                .map_or(100.0 * b.mops() / a.mops(), |k| k.pct);
            let ratio = b.waits.max as f64 / b.waits.mean.max(1.0);
            let _ = writeln!(
                md,
                "| {}, pool 8: 256 threads keep >= 80 % of the 8-thread throughput | {keep:.0} % | {} |",
                v.name(),
                yes_no(keep >= 80.0)
            );
            let _ = writeln!(
                md,
                "| {}, pool 8, 256 threads: max wait <= 3x mean | {ratio:.1}x ({} / {}) | {} |",
                v.name(),
                fmt_ns(b.waits.max as f64),
                fmt_ns(b.waits.mean),
                yes_no(ratio <= 3.0)
            );
        }
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Targets\n");
        self.targets_table(&mut md);
        let _ = writeln!(md, "\n## a. Get+Put through the C ABI\n");
        self.getput_table(&mut md);
        let _ = writeln!(md, "\n## b. Round trips vs dedicated conns\n");
        self.round_trip_table(&mut md);
        let _ = writeln!(md, "\n## c. Allocations and memory\n");
        self.alloc_tables(&mut md);
        let _ = writeln!(md, "\n## d. Overload fairness\n");
        self.fairness_table(&mut md);
        md
    }

    fn chart(&self) -> chart::LineChart {
        let style = |v: Variant| match v {
            Variant::Default => ([31, 119, 180], chart::Marker::Circle),
            Variant::Hot => ([44, 160, 44], chart::Marker::Diamond),
            Variant::MutexCondvar => ([214, 39, 40], chart::Marker::Square),
            Variant::Fifo => ([148, 103, 189], chart::Marker::Square),
            Variant::Overtake => ([255, 127, 14], chart::Marker::Diamond),
            Variant::GoRedis => ([90, 90, 90], chart::Marker::Circle),
        };
        let mut series = Vec::new();
        for v in VARIANTS {
            for size in POOL_SIZES {
                let (color, marker) = style(v);
                series.push(chart::Series {
                    label: format!("{} {size}", v.name()),
                    color,
                    dashed: size != POOL_SIZES[0],
                    marker,
                    points: THREADS
                        .iter()
                        .filter_map(|&t| find(self.cells, v, size, t))
                        .map(|c| (c.threads as f64, c.mops()))
                        .collect(),
                });
            }
        }
        chart::LineChart {
            title: format!(
                "Get+Put throughput, C ABI, loopback TCP, {} CPUs",
                thread::available_parallelism().map_or(0, |n| n.get())
            ),
            x_label: "threads (log scale)".into(),
            y_label: "Mops/s (higher is better)".into(),
            x_ticks: THREADS.iter().map(|&t| t as f64).collect(),
            series,
            width: 1100,
            height: 620,
        }
    }

    fn machine(&self) -> String {
        let cmd = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        let cpu = read("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let dirty = !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let mut m = String::new();
        let _ = writeln!(m, "| | |\n|---|---|");
        let _ = writeln!(
            m,
            "| nproc | {} |",
            thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(m, "| CPU | {cpu} |");
        let _ = writeln!(
            m,
            "| uname -r | {} |",
            read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| cmd("uname", &["-r"]))
        );
        let _ = writeln!(m, "| rustc | {} |", cmd(&rustc, &["-V"]));
        let _ = writeln!(
            m,
            "| redis-server | {} |",
            cmd("redis-server", &["--version"])
        );
        let _ = writeln!(
            m,
            "| commit | {}{} |",
            cmd("git", &["rev-parse", "--short", "HEAD"]),
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            m,
            "| date | {} |",
            cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        );
        let _ = writeln!(
            m,
            "| mode | {:?}: {} ms per Get+Put run (x2 per cell), {} ms per round-trip variant (in rounds) |",
            self.plan.mode,
            self.plan.cell.as_millis(),
            self.plan.rt_cell.as_millis()
        );
        m
    }
}

/// Where results go: `bench-results/` in the crate for `cargo bench`; under the target
/// directory for the smoke run of `cargo test`.
fn results_dir(mode: Mode) -> PathBuf {
    if mode == Mode::Smoke {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/suite-<hash> -> target/<profile>/bench-smoke
        exe.parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("bench-smoke"))
            .unwrap_or_else(|| std::env::temp_dir().join("redispool-bench-smoke"))
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-results")
    }
}

/// Raises the open-file limit to its hard limit: section c holds 2 x N sockets at once.
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// `--hot-loop N`: N hot Get+Put pairs through the C ABI on a fresh pool, nothing else
/// (the program callgrind runs for `instructions_per_hot_op`).
fn hot_loop(n: usize) {
    let addr = acceptor();
    let p = CPool::new(&addr, 8, HOT_BYPASS_MS);
    for _ in 0..n {
        get_put(&p, None);
    }
}

/// Instructions per hot Get+Put through the C ABI, counted by callgrind (stable across
/// runs, unlike timings): this program's `--hot-loop` run for two loop lengths, the
/// difference divided by the extra pairs (set-up and teardown cancel out). None when
/// valgrind is not installed.
fn instructions_per_hot_op() -> Option<Result<f64, String>> {
    let valgrind_ok = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !valgrind_ok {
        return None;
    }
    progress("a. instructions per hot get+put (callgrind)");
    let exe = std::env::current_exe().expect("current_exe");
    let dir = std::env::temp_dir();
    let count = |n: usize| -> Result<u64, String> {
        let out = dir.join(format!(
            "redispool-callgrind-{}-{n}.out",
            std::process::id()
        ));
        let status = std::process::Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["--hot-loop", &n.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("valgrind: {e}"))?;
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()));
        let _ = std::fs::remove_file(&out);
        if !status.success() {
            return Err(format!("callgrind run of {n} pairs: {status}"));
        }
        text?
            .lines()
            .find_map(|l| l.strip_prefix("totals: "))
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| format!("no totals line in {}", out.display()))
    };
    let (short, long) = (2_000, 22_000);
    Some(count(short).and_then(|a| {
        let b = count(long)?;
        Ok(b.saturating_sub(a) as f64 / (long - short) as f64)
    }))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--hot-loop") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--hot-loop N");
        hot_loop(n);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--cell") {
        let spec = args.get(i + 1).map(String::as_str).unwrap_or("");
        let Some((size, threads)) = spec
            .split_once('x')
            .and_then(|(p, t)| Some((p.parse().ok()?, t.parse().ok()?)))
        else {
            panic!("--cell POOLxTHREADS, e.g. --cell 8x256");
        };
        one_cell(size, threads);
        return;
    }
    if args.iter().any(|a| a == "--round-trips") {
        // Section b alone, at full length (its numbers move the most between runs).
        let redis = Redis::start().expect("start redis-server");
        for r in section_round_trips(&Plan::new(Mode::Full), &redis.addr()) {
            println!(
                "{} threads: dedicated {:.0} ops/s; Get+PING+Put {:.1} %, raw fd {:.1} %, hot {:.1} % of dedicated",
                r.threads, r.dedicated, r.command_pct, r.raw_fd_pct, r.hot_pct
            );
        }
        return;
    }
    let mode = if !args.iter().any(|a| a == "--bench") {
        Mode::Smoke
    } else if args.iter().any(|a| a == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    let plan = Plan::new(mode);
    raise_fd_limit();
    if mode == Mode::Smoke {
        chart::self_check();
        BATCH.store(1, Ordering::Relaxed);
    }
    let began = Instant::now();
    eprintln!("redispool benchmark suite ({mode:?})");
    progress("start");

    let addr = acceptor();
    progress("building the go-redis baseline");
    let go = GoRedis::build();
    if let Err(why) = &go {
        eprintln!("go-redis baseline left out: {why}");
        // scripts/test.sh installs Go and go-redis v5: then a failing build is a bug here.
        let required = std::env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some_and(|v| v == "1");
        let have_source = std::path::Path::new(GO_REDIS_SRC).is_dir();
        assert!(
            !(mode == Mode::Smoke && required && have_source),
            "the go-redis baseline did not build: {why}"
        );
    }
    let cells = section_getput(&plan, &addr, go.as_ref().ok());
    let uncontended = section_uncontended(&plan, &addr);
    let instructions = if mode == Mode::Smoke {
        None
    } else {
        instructions_per_hot_op()
    };
    let redis = Redis::start();
    let round_trips = match &redis {
        Ok(r) => Ok(section_round_trips(&plan, &r.addr())),
        Err(why) => Err(why.clone()),
    };
    drop(redis);
    let allocs = section_allocs(&plan, &addr);
    let memory = section_memory(&plan);
    let keeps = section_fairness(&plan, &addr, go.as_ref().ok());

    let report = Report {
        plan: &plan,
        cells: &cells,
        uncontended: &uncontended,
        instructions: &instructions,
        round_trips: round_trips.as_deref().map_err(Clone::clone),
        allocs: &allocs,
        memory: &memory,
        keeps: &keeps,
        go_missing: go.as_ref().err().map(String::as_str),
    };
    let tables = report.markdown();
    println!("{tables}");

    let dir = results_dir(mode);
    std::fs::create_dir_all(&dir).expect("create results dir");
    let png = report.chart().to_png();
    std::fs::write(dir.join("throughput.png"), &png).expect("write throughput.png");
    let mut md = String::new();
    let _ = writeln!(md, "# redispool benchmark results\n");
    let _ = writeln!(
        md,
        "`cargo bench --bench suite{}` (benches/suite.rs). Numbers from a shared or busy \
         machine are noisy; compare variants within one run.\n",
        if mode == Mode::Quick {
            " -- --quick"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "## Machine\n\n{}", report.machine());
    let _ = writeln!(md, "![Get+Put throughput vs threads](throughput.png)\n");
    md.push_str(&tables);
    std::fs::write(dir.join("results.md"), md).expect("write results.md");
    eprintln!(
        "wrote {} and {} in {:.1} s",
        dir.join("results.md").display(),
        dir.join("throughput.png").display(),
        began.elapsed().as_secs_f64()
    );
}
