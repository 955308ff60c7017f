//! Section d: overload fairness, 256 against 8 threads on pool 8 in alternating rounds.

use crate::getput::{VARIANTS, Variant, VariantPools};
use crate::goredis::GoBuilds;
use crate::hist::median;
use crate::plan::{Mode, Plan};
use crate::report::progress;
use std::time::Duration;

pub(crate) struct Keep {
    pub(crate) variant: Variant,
    /// Median over the rounds of (256-thread ops/s) / (8-thread ops/s), in percent.
    pub(crate) pct: f64,
}

pub(crate) fn section_fairness(plan: &Plan, addr: &str, go: &GoBuilds) -> Vec<Keep> {
    let (rounds, slice) = match plan.mode {
        Mode::Smoke => (1, Duration::from_millis(2)),
        Mode::Quick => (4, Duration::from_millis(50)),
        Mode::Full => (8, Duration::from_millis(250)),
    };
    let pools = VariantPools::new(addr, 8, go);
    let mut out = Vec::new();
    for variant in VARIANTS {
        if go.missing(variant) {
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

/// `--overload [WINDOW_MS...]`: section d's comparison for redispool alone, one pool per
/// `overtake_window_ms` (the library's default when none is given), printing the share
/// of the 8-thread throughput kept at 256 threads and the waits of a timed 256-thread run:
/// the mean over every get (a get served at once waited 0), the mean over the gets the
/// pool counted as waiting (`wait_count`), and the longest.
pub(crate) fn overload(windows: &[i64]) {
    use crate::loopback::acceptor;
    use crate::runner::{get_put, getput_ns, run};
    use crate::under_test::CPool;
    crate::raise_fd_limit();
    let addr = acceptor();
    let slice = Duration::from_millis(250);
    let windows: Vec<Option<i64>> = if windows.is_empty() {
        vec![None]
    } else {
        windows.iter().map(|&w| Some(w)).collect()
    };
    for w in windows {
        let p = CPool::with(&addr, 8, 0, w);
        let mut pcts = Vec::new();
        for round in 0..4 {
            let (few, many) = if round % 2 == 0 {
                let few = getput_ns(&p, 8, slice);
                (few, getput_ns(&p, 256, slice))
            } else {
                let many = getput_ns(&p, 256, slice);
                (getput_ns(&p, 8, slice), many)
            };
            pcts.push(100.0 * few / many);
        }
        // Where the longest gets fall in the run: (wait, its start since the start line).
        {
            use std::sync::Mutex;
            use std::time::Instant;
            let base = Instant::now();
            let worst = Mutex::new(Vec::new());
            run(
                256,
                slice,
                false,
                |_| (0u64, 0u64),
                |st, _| {
                    let t0 = Instant::now();
                    let c = crate::runner::BenchPool::get(&p);
                    let ns = t0.elapsed().as_nanos() as u64;
                    crate::runner::BenchPool::put(&p, c);
                    if ns > st.0 {
                        *st = (ns, (t0 - base).as_nanos() as u64);
                        worst.lock().unwrap().push(*st);
                    }
                },
            );
            let mut w = worst.into_inner().unwrap();
            w.sort_unstable_by(|a, b| b.cmp(a));
            let top: Vec<String> = w
                .iter()
                .take(6)
                .map(|(ns, at)| format!("{:.1} ms at {:.0} ms", *ns as f64 / 1e6, *at as f64 / 1e6))
                .collect();
            println!("  longest gets: {}", top.join(", "));
        }
        let before = p.stats();
        let timed = run(256, slice, true, |_| (), |_, h| get_put(&p, h));
        let after = p.stats();
        let waits = timed.waits.unwrap_or_default();
        let waited = after.wait_count - before.wait_count;
        let waited_mean =
            (after.wait_duration_ns - before.wait_duration_ns) as f64 / waited.max(1) as f64;
        println!(
            "window {:>8}: keep {:>4.0} % (rounds {}), 256 thr {:.0} ns/op; wait mean {:.1} us, \
             p99 {:.0} us, max {:.2} ms, max/mean {:.1}x; {:.1} % of gets waited, their mean {:.1} us \
             (max/that {:.1}x)",
            w.map_or("default".to_string(), |w| format!("{w} ms")),
            median(&mut pcts.clone()),
            pcts.iter()
                .map(|p| format!("{p:.0}"))
                .collect::<Vec<_>>()
                .join("/"),
            timed.ns_per_op,
            waits.mean / 1e3,
            waits.p99 as f64 / 1e3,
            waits.max as f64 / 1e6,
            waits.max as f64 / waits.mean.max(1.0),
            100.0 * waited as f64 / timed.ops.max(1) as f64,
            waited_mean / 1e3,
            waits.max as f64 / waited_mean.max(1.0),
        );
    }
}
