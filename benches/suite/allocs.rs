//! Section c (first half): heap allocations per get/put.

use crate::alloc::{AllocCount, count_start, count_stop};
use crate::plan::{HOT_BYPASS_MS, Plan};
use crate::report::progress;
use crate::runner::{BenchPool, get_put};
use crate::under_test::{CPool, CorePool};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

pub(crate) struct AllocRow {
    pub(crate) what: String,
    pub(crate) ops: u64,
    pub(crate) count: AllocCount,
}

/// Get+Put pairs each thread runs before allocations are counted.
pub(crate) const WARM_UP_PAIRS: usize = 20_000;

/// Counts allocations over `ops` Get+Put pairs on `threads` threads, after a warm-up.
/// `held`: conns this thread holds while the others make their first get, so that each of
/// them waits once in the warm-up (a thread's first wait makes its spare waiters; with
/// conns parked per thread, a thread may otherwise first wait only while counted).
pub(crate) fn count_getput<P: BenchPool>(
    p: &P,
    threads: usize,
    ops: usize,
    held: usize,
) -> AllocCount {
    let per_thread = ops / threads;
    let first_get = Barrier::new(threads + 1);
    let holding: Vec<P::Conn> = (0..held).map(|_| p.get()).collect();
    // All threads warm up together, so that with more threads than conns each one really
    // waits during the warm-up (its first wait makes its spare waiters).
    let ready_line = Barrier::new(threads);
    let warm_line = Barrier::new(threads + 1);
    let start_line = Barrier::new(threads + 1);
    let finish_line = Barrier::new(threads + 1);
    thread::scope(|s| {
        for _ in 0..threads {
            let (warm_line, start_line, finish_line) = (&warm_line, &start_line, &finish_line);
            let (ready_line, first_get) = (&ready_line, &first_get);
            s.spawn(move || {
                first_get.wait();
                let c = p.get();
                p.put(c);
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
        first_get.wait();
        if held > 0 {
            // The threads' first gets queue behind the held conns (a bench, not a test:
            // a pause, not a condition).
            thread::sleep(Duration::from_millis(100));
        }
        for c in holding {
            p.put(c);
        }
        warm_line.wait();
        count_start();
        start_line.wait();
        finish_line.wait();
        count_stop()
    })
}

pub(crate) fn section_allocs(plan: &Plan, addr: &str) -> Vec<AllocRow> {
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
    add("Rust core API, 1 thread", 1, count_getput(&core, 1, n, 0));
    add(
        "Rust core API hot, 1 thread",
        1,
        count_getput(&core_hot, 1, n, 0),
    );
    add("C ABI, 1 thread", 1, count_getput(&c_default, 1, n, 0));
    add("C ABI hot, 1 thread", 1, count_getput(&c_hot, 1, n, 0));
    add(
        "Rust core API, 8 threads on pool 2 (gets wait)",
        8,
        count_getput(&core_small, 8, n, 2),
    );
    add(
        "C ABI, 8 threads on pool 2 (gets wait)",
        8,
        count_getput(&c_small, 8, n, 2),
    );
    rows
}
