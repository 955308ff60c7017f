//! The report: markdown tables, the targets, the machine and the chart.

use crate::allocs::{AllocRow, WARM_UP_PAIRS};
use crate::chart;
use crate::fairness::Keep;
use crate::getput::{Cell, Uncontended, VARIANTS, Variant};
use crate::goredis::GoBuilds;
use crate::headline::{
    HEADLINE_CELLS, HEADLINE_VARIANTS, HeadlineCell, find_headline, headline_plan,
};
use crate::memory::MemRow;
use crate::pipelines::{DEPTH, Pipelines};
use crate::plan::{EXTRA_CELLS, HOT_BYPASS_MS, OVERTAKE_MS, POOL_SIZES, Plan, THREADS};

/// The library's default `overtake_window_ms`, for the report's prose.
const DEFAULT_WINDOW_MS: u128 = redispool::pool::DEFAULT_OVERTAKE_WINDOW.as_millis();
use crate::round_trips::RoundTrip;
use crate::syscalls::SyscallRow;
use std::fmt::Write as _;
use std::process::Command;
use std::thread;
use std::time::Instant;

pub(crate) fn progress(what: &str) {
    static BEGAN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = BEGAN.get_or_init(Instant::now).elapsed();
    eprintln!("  [{:5.1} s] {what}", t.as_secs_f64());
}

pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

pub(crate) fn fmt_ops(ops: f64) -> String {
    if ops >= 1e6 {
        format!("{:.2} M", ops / 1e6)
    } else {
        format!("{:.0} k", ops / 1e3)
    }
}

pub(crate) fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

pub(crate) fn find(cells: &[Cell], v: Variant, size: usize, threads: usize) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.variant == v && c.size == size && c.threads == threads)
}

pub(crate) struct Report<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) cells: &'a [Cell],
    pub(crate) uncontended: &'a [Uncontended],
    /// callgrind's count per hot C ABI Get+Put (None: valgrind missing, or smoke mode).
    pub(crate) instructions: &'a Option<Result<f64, String>>,
    pub(crate) round_trips: Result<&'a [RoundTrip], String>,
    pub(crate) allocs: &'a [AllocRow],
    pub(crate) memory: &'a [MemRow],
    pub(crate) keeps: &'a [Keep],
    /// The go-redis drivers (or why each was left out).
    pub(crate) go: &'a GoBuilds,
    pub(crate) headline: &'a [HeadlineCell],
    pub(crate) syscalls: Result<&'a [SyscallRow], String>,
    pub(crate) pipelines: Result<&'a Pipelines, String>,
}

impl Report<'_> {
    pub(crate) fn getput_table(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Get+Put through the C ABI on loopback TCP sockets. ns/op = wall time / total ops \
             (all threads), from a run without timers; the waits (time spent in one get) come \
             from a second run that times every get. \"hot\" = health_check_bypass_ms {HOT_BYPASS_MS}; \
             \"overtake\" = overtake_window_ms {OVERTAKE_MS}; \"FIFO hand-off\" = a minimal pool \
             with redispool's waiting design and nothing else (one lock, the idle sockets, a queue \
             of parked threads; a put hands its socket to the oldest waiter). \"go-redis v5 \
             (goroutines)\" = go-redis's own pool (v5.2.9's internal/pool, Debian's \
             golang-gopkg-redis.v5-dev) from as many goroutines, GOMAXPROCS = CPUs; \"go-redis \
             v9 (goroutines)\" = the same with go-redis {}'s internal/pool (fetched from the Go \
             module proxy at run time), with the options redis.NewClient gives it.\n",
            self.v9_version()
        );
        for (name, why) in [("v5", &self.go.v5), ("v9", &self.go.v9)] {
            if let Err(why) = why {
                let _ = writeln!(md, "go-redis {name} baseline left out: {why}.\n");
            }
        }
        let _ = writeln!(
            md,
            "| pool | threads | variant | ns/op | Mops/s | speed vs Mutex+Condvar | speed vs go-redis v5 | speed vs go-redis v9 | wait p50 | wait p99 | wait max |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let rows = POOL_SIZES
            .iter()
            .flat_map(|&size| THREADS.iter().map(move |&t| (size, t)))
            .chain(EXTRA_CELLS);
        for (size, threads) in rows {
            {
                let base = find(self.cells, Variant::MutexCondvar, size, threads);
                let go = find(self.cells, Variant::GoRedis, size, threads);
                let go9 = find(self.cells, Variant::GoRedisV9, size, threads);
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
                    let vs_go9 = match (v, go9) {
                        (Variant::GoRedisV9, _) | (_, None) => "".to_string(),
                        (_, Some(g)) => format!("{:.2}x", g.ns_per_op / c.ns_per_op),
                    };
                    let _ = writeln!(
                        md,
                        "| {size} | {threads} | {} | {:.0} | {:.2} | {ratio} | {vs_go} | {vs_go9} | {} | {} | {} |",
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

    pub(crate) fn round_trip_table(&self, md: &mut String) {
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
                     different variant. \"go-redis v9 Ping\": the go-redis {} client's \
                     Ping from as many goroutines (PoolSize = threads, a process per round, \
                     after a warm-up).\n",
                    self.v9_version()
                );
                let _ = writeln!(
                    md,
                    "| threads | dedicated ops/s | Get+PING+Put ops/s | % of dedicated | Get+raw PING on fd+Put ops/s | % of dedicated | Get+PING+Put hot ops/s | % of dedicated | go-redis v9 Ping ops/s | % of dedicated |"
                );
                let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                for r in *rts {
                    let (go_ops, go_pct) = r.go_ping.map_or_else(
                        || ("–".to_string(), "–".to_string()),
                        |(ops, pct)| (fmt_ops(ops), format!("{pct:.1} %")),
                    );
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.1} % | {} | {:.1} % | {} | {:.1} % | {go_ops} | {go_pct} |",
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

    pub(crate) fn alloc_tables(&self, md: &mut String) {
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

    pub(crate) fn fairness_table(&self, md: &mut String) {
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
                "\nWith 256 threads on pool 8, redispool with default options (gets may overtake \
                 for {DEFAULT_WINDOW_MS} ms) runs at {:.0} % of the throughput of the minimal \
                 FIFO hand-off pool, which serves in strict order. With more threads than conns, serving \
                 gets first come, first served means every get parks and is woken: one context \
                 switch per Get+Put, several microseconds on this machine, whatever the pool. \
                 Only letting a running thread take a conn ahead of the queue avoids the \
                 switches: Mutex+Condvar does it without limit (its longest wait is thousands of \
                 times its mean), redispool overtake for at most {OVERTAKE_MS} ms per waiter. \
                 The two targets pull apart: a thread that takes k conns in a row for each \
                 switch waits once for a whole round and k-1 times not at all, so its max wait \
                 is about k times the mean, and keeping 80 % of the throughput needs k in the \
                 tens (docs/performance.md, \"The wait target, and what limits it\").",
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

    /// Issue 22's targets (default options unless named) and issue 20's pipeline target.
    pub(crate) fn targets_table(&self, md: &mut String) {
        let _ = writeln!(md, "| target | measured | met |");
        let _ = writeln!(md, "|---|---|---|");
        // Get+Put against go-redis v9 and Mutex+Condvar, in the headline cells.
        for (base, factor, what) in [
            (
                Variant::GoRedisV9,
                5.0,
                "at least 5x faster than the go-redis v9 pool",
            ),
            (
                Variant::MutexCondvar,
                1.0,
                "at least as fast as Mutex+Condvar",
            ),
        ] {
            for v in [Variant::Default, Variant::Hot, Variant::Overtake] {
                let worst = HEADLINE_CELLS
                    .iter()
                    .filter_map(|&(s, th)| {
                        let c = find_headline(self.headline, v, s, th)?;
                        let b = find_headline(self.headline, base, s, th)?;
                        Some((b.median() / c.median(), s, th))
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                if let Some((speedup, s, th)) = worst {
                    let _ = writeln!(
                        md,
                        "| Get+Put {what} in every headline cell: {} | {speedup:.2}x in its worst cell ({s} conns x {th} threads) | {} |",
                        self.headline_name(v),
                        yes_no(speedup >= factor)
                    );
                }
            }
        }
        for v in [Variant::Default, Variant::Hot, Variant::Overtake] {
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
                "| Overload, {}: 256 threads on pool 8 keep >= 80 % of the 8-thread throughput | {keep:.0} % | {} |",
                v.name(),
                yes_no(keep >= 80.0)
            );
            let _ = writeln!(
                md,
                "| Overload, {}: max wait <= 10x mean wait (256 threads, pool 8) | {ratio:.1}x ({} / {}) | {} |",
                v.name(),
                fmt_ns(b.waits.max as f64),
                fmt_ns(b.waits.mean),
                yes_no(ratio <= 10.0)
            );
            // The same maximum against the mean of the gets that queued (go-redis's
            // WaitDurationNs / WaitCount): how far the unluckiest get is from a typical
            // waiting one. Not the issue's target, which counts every get; shown beside it.
            if let Some((share, queued_mean)) = b.waits.queued {
                let _ = writeln!(
                    md,
                    "| Overload, {}: max wait vs the mean of the {:.1} % of gets that queued (pool stats; not the target) | {:.1}x ({} / {}) | – |",
                    v.name(),
                    100.0 * share,
                    b.waits.max as f64 / queued_mean.max(1.0),
                    fmt_ns(b.waits.max as f64),
                    fmt_ns(queued_mean),
                );
            }
        }
        if let Ok(rts) = &self.round_trips {
            for (variant, hot) in [("", false), (" hot", true)] {
                for r in *rts {
                    let pct = if hot { r.hot_pct } else { r.command_pct };
                    let _ = writeln!(
                        md,
                        "| Get+PING+Put{variant} >= 98 % of dedicated conns, {} threads | {pct:.1} % | {} |",
                        r.threads,
                        yes_no(pct >= 98.0)
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
                "| <= 256 bytes of library heap per pooled idle conn, {} | {:.1} B | {} |",
                m.what,
                m.per_conn,
                yes_no(m.per_conn <= 256.0)
            );
        }
        if let Ok(rows) = &self.syscalls {
            for r in *rows {
                let _ = writeln!(
                    md,
                    "| < 0.1 system calls per Get+Put, {}, {} thread(s) on pool {} | {:.3} | {} |",
                    r.variant.name(),
                    r.threads,
                    r.size,
                    r.per_op,
                    yes_no(r.per_op < 0.1)
                );
            }
        }
        for v in [Variant::Default, Variant::Hot] {
            let name = if v == Variant::Hot {
                "redispool hot, C ABI"
            } else {
                "redispool, C ABI"
            };
            let Some(u) = self.uncontended.iter().find(|u| u.name == name) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| 1-thread Get+Put through the C ABI <= 30 ns, {} | {:.1} ns | {} |",
                v.name(),
                u.ns_per_op,
                yes_no(u.ns_per_op <= 30.0)
            );
            if let Some(c) = find_headline(self.headline, v, 8, 8) {
                let ratio = c.median() / u.ns_per_op;
                let _ = writeln!(
                    md,
                    "| Get+Put at 8 threads on pool 8 within 1.3x of the 1-thread figure, {} | {ratio:.2}x ({:.0} ns / {:.1} ns) | {} |",
                    v.name(),
                    c.median(),
                    u.ns_per_op,
                    yes_no(ratio <= 1.3)
                );
            }
        }
        if let Ok(p) = &self.pipelines {
            for r in &p.rows {
                let _ = writeln!(
                    md,
                    "| Get + pipeline of {DEPTH} SETs + Put >= 95 % of a dedicated conn, {} thread(s) | {:.1} % | {} |",
                    r.threads,
                    r.pct,
                    yes_no(r.pct >= 95.0)
                );
            }
        }
    }

    /// "go-redis v9.x.y", or "go-redis v9" when it was left out.
    pub(crate) fn v9_version(&self) -> String {
        self.go
            .v9
            .as_ref()
            .map_or_else(|_| "v9".to_string(), |g| g.version.clone())
    }

    pub(crate) fn headline_name(&self, v: Variant) -> String {
        match v {
            Variant::GoRedisV9 => format!("go-redis {} pool (goroutines)", self.v9_version()),
            Variant::MutexCondvar => "Mutex+Condvar, redis-plus-plus's design (threads)".into(),
            Variant::Default => "redispool, default options".into(),
            Variant::Hot => format!("redispool, `health_check_bypass_ms` {HOT_BYPASS_MS}"),
            Variant::Overtake => format!("redispool, `overtake_window_ms` {OVERTAKE_MS}"),
            other => other.name().into(),
        }
    }

    pub(crate) fn headline_table(&self, md: &mut String) {
        let (rounds, slice) = headline_plan(self.plan);
        let _ = writeln!(
            md,
            "Get+Put ns/op (wall time / total ops over all threads, no timers) on loopback TCP \
             conns, redispool through the C ABI. Every cell runs {rounds} rounds of {} ms per \
             variant, the variants taking turns (each round starts with a different one); a \
             figure is the median over the rounds, with the spread (min-max) across rounds. \
             The speed-ups are ratios of those medians, from this same run. The machine is a \
             loaded 2-core VM shared with other jobs: the figures are indicative.\n",
            slice.as_millis()
        );
        if let Err(why) = &self.go.v9 {
            let _ = writeln!(md, "go-redis v9 left out: {why}.\n");
        }
        let header: Vec<String> = HEADLINE_CELLS
            .iter()
            .enumerate()
            .map(|(i, (s, t))| {
                if i == 0 {
                    format!("{s} conns x {t} thr")
                } else {
                    format!("{s} x {t}")
                }
            })
            .collect();
        let _ = writeln!(md, "| Get+Put, ns/op | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(HEADLINE_CELLS.len()));
        for v in HEADLINE_VARIANTS {
            let cells: Vec<String> = HEADLINE_CELLS
                .iter()
                .map(|&(s, t)| {
                    find_headline(self.headline, v, s, t).map_or_else(
                        || "–".to_string(),
                        |c| format!("{:.0} ({:.0}-{:.0})", c.median(), c.min(), c.max()),
                    )
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", self.headline_name(v), cells.join(" | "));
        }
        let _ = writeln!(
            md,
            "\n| speed-up (ratio of medians) | {} |",
            header.join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---:|".repeat(HEADLINE_CELLS.len()));
        for v in [Variant::Default, Variant::Hot, Variant::Overtake] {
            for base in [Variant::GoRedisV9, Variant::MutexCondvar] {
                let cells: Vec<String> = HEADLINE_CELLS
                    .iter()
                    .map(|&(s, t)| {
                        match (
                            find_headline(self.headline, v, s, t),
                            find_headline(self.headline, base, s, t),
                        ) {
                            (Some(c), Some(b)) => format!("{:.2}x", b.median() / c.median()),
                            _ => "–".into(),
                        }
                    })
                    .collect();
                let base_name = match base {
                    Variant::GoRedisV9 => "go-redis v9",
                    _ => "Mutex+Condvar",
                };
                let _ = writeln!(
                    md,
                    "| {} vs {base_name} | {} |",
                    self.headline_name(v),
                    cells.join(" | ")
                );
            }
        }
    }

    pub(crate) fn syscall_table(&self, md: &mut String) {
        let rows = match &self.syscalls {
            Err(why) => {
                let _ = writeln!(md, "Skipped: {why}.");
                return;
            }
            Ok(rows) => rows,
        };
        let _ = writeln!(
            md,
            "System calls per Get+Put through the C ABI, counted by `strace -f -c` (every \
             thread) over this program's `--syscall-loop` mode: a pool on the loopback \
             acceptor, 1000 warm-up Get+Puts, then the threads run a fixed number of Get+Puts \
             between them; two runs of different lengths, the difference in calls divided by \
             the extra Get+Puts (set-up and teardown cancel out). Under strace every system \
             call is slow, which changes how often threads meet (futex counts are indicative).\n"
        );
        let _ = writeln!(
            md,
            "| variant | threads | pool | extra Get+Puts | syscalls per Get+Put | by kind (>= 0.01 per op) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
        for r in *rows {
            let kinds: Vec<String> = r
                .kinds
                .iter()
                .map(|(k, per)| format!("{k} {per:.2}"))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.3} | {} |",
                r.variant.name(),
                r.threads,
                r.size,
                r.extra_ops,
                r.per_op,
                kinds.join(", ")
            );
        }
    }

    pub(crate) fn pipeline_table(&self, md: &mut String) {
        let p = match &self.pipelines {
            Err(why) => {
                let _ = writeln!(md, "Skipped: no redis-server could be started ({why}).");
                return;
            }
            Ok(p) => p,
        };
        let _ = writeln!(
            md,
            "Pipelines of {DEPTH} SETs against a real redis-server, pool size = threads. \
             \"dedicated\": each thread its own TcpStream, the {DEPTH} SETs encoded once, one \
             write, {DEPTH} +OK read. \"Get+pipeline+Put\": pool_get, pool_conn_pipeline (the \
             {DEPTH} replies parsed into pool_reply_t, freed), pool_put. The two take turns in \
             short rounds; SETs/s are over all rounds, \"% of dedicated\" the median over the \
             rounds of the ratio in the same round, with its spread (min-max) across rounds.\n"
        );
        let _ = writeln!(
            md,
            "| threads | dedicated SETs/s | Get+pipeline+Put SETs/s | % of dedicated | spread across rounds |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
        for r in &p.rows {
            let lo = r.round_pcts.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.round_pcts.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} % | {lo:.0}-{hi:.0} % |",
                r.threads,
                fmt_ops(r.dedicated),
                fmt_ops(r.pooled),
                r.pct
            );
        }
        match &p.redis_benchmark {
            Ok(rate) => {
                let _ = writeln!(
                    md,
                    "\n`{}` (its default 50 clients) against the same server: {} SETs/s.",
                    p.redis_benchmark_cmd,
                    fmt_ops(*rate)
                );
            }
            Err(why) => {
                let _ = writeln!(md, "\nredis-benchmark: {why}.");
            }
        }
    }

    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Targets\n");
        self.targets_table(&mut md);
        let _ = writeln!(
            md,
            "\n## Get+Put against the pools users would pick instead\n"
        );
        self.headline_table(&mut md);
        let _ = writeln!(md, "\n## a. Get+Put through the C ABI\n");
        self.getput_table(&mut md);
        let _ = writeln!(md, "\n## b. Round trips vs dedicated conns\n");
        self.round_trip_table(&mut md);
        let _ = writeln!(md, "\n## c. Allocations and memory\n");
        self.alloc_tables(&mut md);
        let _ = writeln!(md, "\n## d. Overload fairness\n");
        self.fairness_table(&mut md);
        let _ = writeln!(md, "\n## e. System calls per Get+Put\n");
        self.syscall_table(&mut md);
        let _ = writeln!(md, "\n## f. Pipelines\n");
        self.pipeline_table(&mut md);
        md
    }

    pub(crate) fn chart(&self) -> chart::LineChart {
        let style = |v: Variant| match v {
            Variant::Default => ([31, 119, 180], chart::Marker::Circle),
            Variant::Hot => ([44, 160, 44], chart::Marker::Diamond),
            Variant::MutexCondvar => ([214, 39, 40], chart::Marker::Square),
            Variant::Fifo => ([148, 103, 189], chart::Marker::Square),
            Variant::Overtake => ([255, 127, 14], chart::Marker::Diamond),
            Variant::GoRedis => ([90, 90, 90], chart::Marker::Circle),
            Variant::GoRedisV9 => ([23, 190, 207], chart::Marker::Square),
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

    pub(crate) fn machine(&self) -> String {
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
