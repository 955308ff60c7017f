//! Section b: round trips against redis-server

use crate::baselines::connect_all;
use crate::goredis::GoRedis;
use crate::hist::median;
use crate::plan::{HOT_BYPASS_MS, Mode, Plan, RT_THREADS};
use crate::report::progress;
use crate::runner::BenchPool;
use crate::runner::{Run, run};
use crate::under_test::CPool;
use redispool::ffi::conn::{pool_conn_command, pool_conn_fd};
use redispool::ffi::reply::{POOL_REPLY_STATUS, pool_reply_free, pool_reply_t};
use redispool::ffi::status::POOL_OK;
use std::ffi::c_char;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::FromRawFd;

pub(crate) struct RoundTrip {
    pub(crate) threads: usize,
    pub(crate) dedicated: f64,
    pub(crate) command: f64,
    pub(crate) raw_fd: f64,
    /// Median over the rounds of (variant ops/s) / (dedicated ops/s in the same round), in
    /// percent: a burst of outside load hits one round, not the comparison.
    pub(crate) command_pct: f64,
    pub(crate) raw_fd_pct: f64,
    /// Get+PING+Put on a pool with `health_check_bypass_ms` = HOT_BYPASS_MS.
    pub(crate) hot: f64,
    pub(crate) hot_pct: f64,
    /// The go-redis v9 client's Ping from as many goroutines (PoolSize = threads), when
    /// its driver is built: ops/s (mean over the rounds) and % of dedicated (median).
    pub(crate) go_ping: Option<(f64, f64)>,
}

pub(crate) const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
pub(crate) const PONG: &[u8] = b"+PONG\r\n";

pub(crate) fn ping_on(stream: &mut TcpStream) {
    let mut buf = [0u8; 7];
    stream.write_all(PING).expect("write PING");
    stream.read_exact(&mut buf).expect("read PONG");
    assert_eq!(&buf, PONG);
}

pub(crate) fn section_round_trips(
    plan: &Plan,
    redis_addr: &str,
    go: Option<&GoRedis>,
) -> Vec<RoundTrip> {
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
        let (mut go_rates, mut go_pcts) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // go-redis v9's client runs in its own process (a warm-up first), after the
            // others in even rounds, before them in odd ones.
            let go_rate = |first: bool| {
                go.filter(|_| first == (round % 2 == 1))
                    .map(|g| g.ping(redis_addr, threads, slice))
            };
            let go_first = go_rate(true);
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
            let go_rate = go_first.or_else(|| go_rate(false));
            let runs = runs.map(|r| r.expect("every variant ran"));
            for (i, r) in runs.iter().enumerate() {
                totals[i].0 += r.ops;
                totals[i].1 += r.span_ns;
            }
            let base = rate((runs[0].ops, runs[0].span_ns));
            for (i, r) in runs[1..].iter().enumerate() {
                pcts[i].push(100.0 * rate((r.ops, r.span_ns)) / base);
            }
            if let Some(g) = go_rate {
                go_rates.push(g);
                go_pcts.push(100.0 * g / base);
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
            go_ping: (!go_rates.is_empty()).then(|| {
                (
                    go_rates.iter().sum::<f64>() / go_rates.len() as f64,
                    median(&mut go_pcts),
                )
            }),
        });
    }
    out
}

/// `--rt-loop dedicated|pool|hot THREADS MS`: one round-trip variant alone on a fresh
/// redis-server, for `strace -f -c` or `perf record` (section b runs them interleaved).
pub(crate) fn rt_loop(args: &[String]) {
    use crate::server::Redis;
    use std::time::Duration;
    let variant = args.first().map(String::as_str).unwrap_or("pool");
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let redis = Redis::start().expect("start redis-server");
    let addr = redis.addr();
    let slice = Duration::from_millis(ms);
    let r = match variant {
        "dedicated" => {
            let own: Vec<TcpStream> = connect_all(&addr, threads).collect();
            run(
                threads,
                slice,
                false,
                |t| own[t].try_clone().expect("dup"),
                |s, _| ping_on(s),
            )
        }
        v => {
            let pool = CPool::new(&addr, threads, if v == "hot" { HOT_BYPASS_MS } else { 0 });
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
                        pool_reply_free(reply);
                    }
                    pool.put(c);
                },
            )
        }
    };
    println!(
        "{variant} {threads} threads: {:.0} ops/s ({} ops)",
        r.ops as f64 * 1e9 / r.span_ns.max(1) as f64,
        r.ops
    );
}
