//! Section a: Get+Put through the C ABI

use crate::baselines::fifo::FifoPool;
use crate::baselines::mutex_condvar::MutexPool;
use crate::goredis::GoBuilds;
use crate::hist::Waits;
use crate::loopback::acceptor;
use crate::plan::{EXTRA_CELLS, HOT_BYPASS_MS, OVERTAKE_MS, POOL_SIZES, Plan, THREADS};
use crate::raise_fd_limit;
use crate::report::{fmt_ns, progress};
use crate::runner::{BenchPool, get_put, getput_cell, getput_ns, run};
use crate::under_test::{CPool, CorePool};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Variant {
    Default,
    Hot,
    MutexCondvar,
    Fifo,
    Overtake,
    GoRedis,
    GoRedisV9,
}

pub(crate) const VARIANTS: [Variant; 7] = [
    Variant::Default,
    Variant::Overtake,
    Variant::Hot,
    Variant::MutexCondvar,
    Variant::Fifo,
    Variant::GoRedis,
    Variant::GoRedisV9,
];

impl Variant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Default => "redispool",
            Variant::Hot => "redispool hot",
            Variant::MutexCondvar => "Mutex+Condvar",
            Variant::Fifo => "FIFO hand-off",
            Variant::Overtake => "redispool overtake",
            Variant::GoRedis => "go-redis v5 (goroutines)",
            Variant::GoRedisV9 => "go-redis v9 (goroutines)",
        }
    }
}

pub(crate) struct Cell {
    pub(crate) variant: Variant,
    pub(crate) size: usize,
    pub(crate) threads: usize,
    pub(crate) ns_per_op: f64,
    pub(crate) waits: Waits,
}

impl Cell {
    pub(crate) fn mops(&self) -> f64 {
        1000.0 / self.ns_per_op
    }
}

/// One pool per variant, all of `size` conns on `addr`.
pub(crate) struct VariantPools<'g> {
    pub(crate) default: CPool,
    pub(crate) hot: CPool,
    pub(crate) overtake: CPool,
    pub(crate) mutex: MutexPool,
    pub(crate) fifo: FifoPool,
    /// go-redis runs in its own process, which makes its own pool per run.
    pub(crate) go: &'g GoBuilds,
    pub(crate) addr: String,
    pub(crate) size: usize,
}

impl<'g> VariantPools<'g> {
    pub(crate) fn new(addr: &str, size: usize, go: &'g GoBuilds) -> Self {
        VariantPools {
            default: CPool::new(addr, size, 0),
            hot: CPool::new(addr, size, HOT_BYPASS_MS),
            overtake: CPool::with(addr, size, 0, Some(OVERTAKE_MS)),
            mutex: MutexPool::new(addr, size),
            fifo: FifoPool::new(addr, size),
            go,
            addr: addr.to_string(),
            size,
        }
    }

    /// `getput_cell` on the pool of `v`; None for go-redis when it is not built.
    pub(crate) fn cell(&self, v: Variant, threads: usize, dur: Duration) -> Option<(f64, Waits)> {
        Some(match v {
            Variant::Default => cpool_cell(&self.default, threads, dur),
            Variant::Hot => cpool_cell(&self.hot, threads, dur),
            Variant::Overtake => cpool_cell(&self.overtake, threads, dur),
            Variant::MutexCondvar => getput_cell(&self.mutex, threads, dur),
            Variant::Fifo => getput_cell(&self.fifo, threads, dur),
            Variant::GoRedis | Variant::GoRedisV9 => {
                let go = self.go.of(v)?;
                let (ns, waits) = go.run(&self.addr, self.size, threads, dur, true);
                (ns, waits.unwrap_or_default())
            }
        })
    }

    /// ns per Get+Put on the pool of `v`, one run without timers.
    pub(crate) fn ns_per_op(&self, v: Variant, threads: usize, dur: Duration) -> Option<f64> {
        Some(match v {
            Variant::Default => getput_ns(&self.default, threads, dur),
            Variant::Hot => getput_ns(&self.hot, threads, dur),
            Variant::Overtake => getput_ns(&self.overtake, threads, dur),
            Variant::MutexCondvar => getput_ns(&self.mutex, threads, dur),
            Variant::Fifo => getput_ns(&self.fifo, threads, dur),
            Variant::GoRedis | Variant::GoRedisV9 => {
                let go = self.go.of(v)?;
                go.run(&self.addr, self.size, threads, dur, false).0
            }
        })
    }
}

/// `getput_cell` on redispool, with the waits of the gets that queued from the pool's
/// stats (`Waits::queued`).
pub(crate) fn cpool_cell(p: &CPool, threads: usize, dur: Duration) -> (f64, Waits) {
    let ns = getput_ns(p, threads, dur);
    let before = p.stats();
    let timed = run(threads, dur, true, |_| (), |_, h| get_put(p, h));
    let after = p.stats();
    let mut waits = timed.waits.unwrap_or_default();
    let queued = after.wait_count - before.wait_count;
    let queued_ns = after.wait_duration_ns - before.wait_duration_ns;
    waits.queued = Some((
        queued as f64 / timed.ops.max(1) as f64,
        queued_ns as f64 / queued.max(1) as f64,
    ));
    (ns, waits)
}

pub(crate) fn section_getput(plan: &Plan, addr: &str, go: &GoBuilds) -> Vec<Cell> {
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
pub(crate) fn one_cell(size: usize, threads: usize) {
    raise_fd_limit();
    let addr = acceptor();
    let go = GoBuilds::build(true);
    let pools = VariantPools::new(&addr, size, &go);
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

/// One thread, no contention: the cost of the Get+Put path itself.
pub(crate) struct Uncontended {
    pub(crate) name: &'static str,
    pub(crate) ns_per_op: f64,
}

pub(crate) fn section_uncontended(plan: &Plan, addr: &str) -> Vec<Uncontended> {
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
