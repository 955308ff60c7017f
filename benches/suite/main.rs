//! The benchmark suite of "Performance: faster than go-redis's pool".
//!
//! Run: `cargo bench --bench suite` (or `scripts/bench.sh`); add `-- --quick` for a short
//! smoke run. It prints markdown tables and writes `bench-results/results.md` (the tables
//! and the machine) and `bench-results/throughput.png` (Get+Put throughput vs threads).
//! `cargo test --all-targets` runs this binary without `--bench`: it then does a tiny run
//! of every section (a few hundred operations each) and writes under `target/`, so CI
//! proves the suite works without spending time on it. Timings are never asserted.
//!
//! Sections (docs/bench-suite.md has the details):
//!  headline. Issue 22's table: Get+Put ns/op of redispool (default, hot, overtake)
//!     against go-redis v9's pool (fetched from the Go module proxy at run time) and the
//!     Mutex+Condvar pool at 8x2, 8x8, 8x64, 8x256, 64x64, 64x256 (conns x threads), as
//!     medians of interleaved rounds with the min-max spread.
//!  a. Get+Put through the C ABI on loopback TCP sockets (a local acceptor thread):
//!     redispool with defaults, redispool "hot" (health_check_bypass_ms = 500: a conn given
//!     back less than 500 ms ago skips the MSG_PEEK syscall), redispool "overtake"
//!     (overtake_window_ms = 5: gets may pass queued gets for up to 5 ms), a plain Mutex +
//!     Condvar pool (redis-plus-plus's and r2d2's design) and a minimal FIFO hand-off pool
//!     (one lock, a queue of parked threads, a put hands its socket to the oldest: the
//!     waiting design of redispool with nothing else), and go-redis's own pool from
//!     goroutines (v5's internal/pool from Debian's golang-gopkg-redis.v5-dev, driven by
//!     benches/goredis/v5/main.go, and v9's, driven by benches/goredis/v9/main.go; each
//!     left out with a note when it cannot be built); pool size 8 and 64 x 2, 8, 64, 256
//!     threads. ns/op is wall time / total ops from a run without timers; the wait
//!     percentiles come from a second run that times every get. `-- --cell POOLxTHREADS`
//!     runs one cell of every variant.
//!  b. Round trips against a real redis-server: Get + PING (pool_conn_command) + Put
//!     against dedicated per-thread conns (the physical limit), pool size = threads, and
//!     the go-redis v9 client's Ping. `-- --round-trips` runs this section alone.
//!  c. Allocations per get/put (a counting global allocator) and library bytes per pooled
//!     conn, fresh and after each conn ran a command.
//!  d. Overload fairness: pool 8, 256 threads against 8 threads.
//!  e. System calls per Get+Put, counted by `strace -f -c` over `--syscall-loop` runs.
//!  f. Pipelines: Get + 100 SETs + Put against a dedicated conn at 1, 8 and 64 threads,
//!     and `redis-benchmark -P 100 -t set` against the same server.
//!
//! One file per concept: the sections (headline.rs, getput.rs, round_trips.rs,
//! allocs.rs, memory.rs, fairness.rs, syscalls.rs, pipelines.rs), the pools under test
//! (under_test.rs), the competitors (baselines/, and goredis.rs driving benches/goredis/
//! in a Go process), redis-server management (server.rs), the harness (runner.rs,
//! hist.rs, alloc.rs, loopback.rs, plan.rs), the report (report.rs, chart.rs) and
//! callgrind.rs.

mod alloc;
mod allocs;
mod baselines;
mod callgrind;
mod chart;
mod fairness;
mod getput;
mod goredis;
mod headline;
mod hist;
mod loopback;
mod memory;
mod pipelines;
mod plan;
mod report;
mod round_trips;
mod runner;
mod server;
mod syscalls;
mod under_test;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::allocs::section_allocs;
use crate::callgrind::{hot_loop, instructions_per_hot_op};
use crate::fairness::section_fairness;
use crate::getput::{one_cell, section_getput, section_uncontended};
use crate::goredis::{GO_REDIS_SRC, GoBuilds};
use crate::headline::section_headline;
use crate::loopback::acceptor;
use crate::memory::{memory_after_command, section_memory};
use crate::pipelines::section_pipelines;
use crate::plan::{BATCH, Mode, Plan};
use crate::report::{Report, progress};
use crate::round_trips::section_round_trips;
use crate::server::Redis;
use crate::syscalls::{section_syscalls, syscall_loop};

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
pub(crate) fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
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
    if let Some(i) = args.iter().position(|a| a == "--uncontended") {
        // Section a's 1-thread figures alone, for N rounds (default 5), one line each.
        let rounds = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(5);
        let addr = acceptor();
        let plan = Plan::new(Mode::Full);
        for round in 0..rounds {
            let row: Vec<String> = section_uncontended(&plan, &addr)
                .iter()
                .map(|u| format!("{} {:.1} ns", u.name, u.ns_per_op))
                .collect();
            println!("round {round}: {}", row.join(", "));
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--syscall-loop") {
        syscall_loop(&args[i + 1..]);
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
    if args.iter().any(|a| a == "--memory") {
        // Section c's bytes per pooled conn alone (quick-mode conn counts).
        raise_fd_limit();
        let plan = Plan::new(Mode::Quick);
        let mut rows = section_memory(&plan);
        let redis = Redis::start().expect("start redis-server");
        rows.push(memory_after_command(plan.mem_conns, &redis.addr()));
        for r in rows {
            println!(
                "{}: {} conns, {:.1} bytes per conn (empty pool {} bytes)",
                r.what, r.conns, r.per_conn, r.empty_pool
            );
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--rt-loop") {
        round_trips::rt_loop(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--overload") {
        let windows: Vec<i64> = args[i + 1..]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        fairness::overload(&windows);
        return;
    }
    if args.iter().any(|a| a == "--round-trips") {
        // Section b alone, at full length (its numbers move the most between runs).
        let redis = Redis::start().expect("start redis-server");
        for r in section_round_trips(&Plan::new(Mode::Full), &redis.addr(), None) {
            println!(
                "{} threads: dedicated {:.0} ops/s; Get+PING+Put {:.1} %, raw fd {:.1} %, hot {:.1} % of dedicated",
                r.threads, r.dedicated, r.command_pct, r.raw_fd_pct, r.hot_pct
            );
        }
        return;
    }
    if args.iter().any(|a| a == "--pipelines") {
        // Section f alone, at full length.
        let redis = Redis::start().expect("start redis-server");
        let p = section_pipelines(&Plan::new(Mode::Full), &redis.addr(), redis.port);
        for r in &p.rows {
            println!(
                "{} threads: dedicated {:.0} SETs/s, Get+pipeline+Put {:.0} SETs/s, {:.1} % of dedicated (rounds: {})",
                r.threads,
                r.dedicated,
                r.pooled,
                r.pct,
                r.round_pcts
                    .iter()
                    .map(|p| format!("{p:.0} %"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        println!("{}: {:?} SETs/s", p.redis_benchmark_cmd, p.redis_benchmark);
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
    progress("building the go-redis baselines");
    // The smoke run of `cargo test` leaves v9 out (it is fetched from the Go module proxy
    // and its first build takes minutes) unless REDISPOOL_BENCH_GOREDIS_V9=1.
    let with_v9 = mode != Mode::Smoke
        || std::env::var_os("REDISPOOL_BENCH_GOREDIS_V9").is_some_and(|v| v == "1");
    let go = GoBuilds::build(with_v9);
    if let Err(why) = &go.v5 {
        // scripts/test.sh installs Go and go-redis v5: then a failing build is a bug here.
        let required = std::env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some_and(|v| v == "1");
        let have_source = std::path::Path::new(GO_REDIS_SRC).is_dir();
        assert!(
            !(mode == Mode::Smoke && required && have_source),
            "the go-redis baseline did not build: {why}"
        );
    }
    let headline = section_headline(&plan, &addr, &go);
    let cells = section_getput(&plan, &addr, &go);
    let uncontended = section_uncontended(&plan, &addr);
    let instructions = if mode == Mode::Smoke {
        None
    } else {
        instructions_per_hot_op()
    };
    let syscalls = section_syscalls(&plan);
    let redis = Redis::start();
    let (round_trips, pipelines, memory_after_command) = match &redis {
        Ok(r) => (
            Ok(section_round_trips(&plan, &r.addr(), go.v9.as_ref().ok())),
            Ok(section_pipelines(&plan, &r.addr(), r.port)),
            Some(memory_after_command(plan.mem_conns, &r.addr())),
        ),
        Err(why) => (Err(why.clone()), Err(why.clone()), None),
    };
    drop(redis);
    let allocs = section_allocs(&plan, &addr);
    let mut memory = section_memory(&plan);
    memory.extend(memory_after_command);
    let keeps = section_fairness(&plan, &addr, &go);

    let report = Report {
        plan: &plan,
        cells: &cells,
        uncontended: &uncontended,
        instructions: &instructions,
        round_trips: round_trips.as_deref().map_err(Clone::clone),
        allocs: &allocs,
        memory: &memory,
        keeps: &keeps,
        go: &go,
        headline: &headline,
        syscalls: syscalls.as_deref().map_err(Clone::clone),
        pipelines: pipelines.as_ref().map_err(Clone::clone),
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
        "`cargo bench --bench suite{}` (benches/suite/). Numbers from a shared or busy \
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
