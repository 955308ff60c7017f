//! Pipelines (issue 20): Get + a pipeline of 100 SETs (pool_conn_pipeline) + Put against
//! the same pipelines on a dedicated per-thread conn, at 1, 8 and 64 threads, and
//! `redis-benchmark -P 100 -t set` against the same redis-server.

use crate::baselines::connect_all;
use crate::hist::median;
use crate::plan::{Mode, Plan};
use crate::report::progress;
use crate::runner::{BenchPool, Run, run};
use crate::under_test::CPool;
use redispool::ffi::conn::pool_conn_pipeline;
use redispool::ffi::reply::{POOL_REPLY_STATUS, pool_reply_free, pool_reply_t};
use redispool::ffi::status::POOL_OK;
use std::ffi::{CString, c_char, c_int};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// Commands per pipeline.
pub(crate) const DEPTH: usize = 100;
pub(crate) const PIPE_THREADS: [usize; 3] = [1, 8, 64];

pub(crate) struct PipelineRow {
    pub(crate) threads: usize,
    /// SETs per second, over all rounds.
    pub(crate) dedicated: f64,
    pub(crate) pooled: f64,
    /// Median over the rounds of pooled / dedicated in the same round, in percent.
    pub(crate) pct: f64,
    /// That ratio in every round, in the order run.
    pub(crate) round_pcts: Vec<f64>,
}

pub(crate) struct Pipelines {
    pub(crate) rows: Vec<PipelineRow>,
    /// `redis-benchmark -P 100 -t set -q` SETs per second (or why not), and its command.
    pub(crate) redis_benchmark: Result<f64, String>,
    pub(crate) redis_benchmark_cmd: String,
}

/// The key of SET `i` of thread `t`'s pipelines.
fn key(t: usize, i: usize) -> String {
    format!("pipe:{t}:{i}")
}

/// One thread's 100 SETs as C strings, the argv arrays pool_conn_pipeline takes, and the
/// reply slots: made once per thread, reused by every pipeline.
struct CPipeline {
    _strings: Vec<CString>,
    _argvs: Vec<[*const c_char; 3]>,
    argv_ptrs: Vec<*const *const c_char>,
    argcs: Vec<c_int>,
    replies: Vec<*mut pool_reply_t>,
}

impl CPipeline {
    fn new(t: usize) -> CPipeline {
        let mut strings = Vec::with_capacity(2 * DEPTH + 1);
        strings.push(CString::new("SET").expect("no NUL"));
        strings.push(CString::new("v").expect("no NUL"));
        strings.extend((0..DEPTH).map(|i| CString::new(key(t, i)).expect("no NUL")));
        let argvs: Vec<[*const c_char; 3]> = (0..DEPTH)
            .map(|i| {
                [
                    strings[0].as_ptr(),
                    strings[2 + i].as_ptr(),
                    strings[1].as_ptr(),
                ]
            })
            .collect();
        let argv_ptrs = argvs.iter().map(|a| a.as_ptr()).collect();
        CPipeline {
            _strings: strings,
            _argvs: argvs,
            argv_ptrs,
            argcs: vec![3; DEPTH],
            replies: vec![std::ptr::null_mut(); DEPTH],
        }
    }

    /// Get, the pipeline, Put.
    fn run_on(&mut self, pool: &CPool) {
        let c = pool.get();
        let mut n = 0usize;
        // SAFETY: `c` is checked out by this thread; every argv entry points into
        // `_strings`/`_argvs`, alive as long as `self`; `replies` has DEPTH slots.
        unsafe {
            let rc = pool_conn_pipeline(
                c,
                DEPTH,
                self.argcs.as_ptr(),
                self.argv_ptrs.as_ptr(),
                std::ptr::null(),
                -1,
                self.replies.as_mut_ptr(),
                &mut n,
                std::ptr::null_mut(),
            );
            assert_eq!((rc, n), (POOL_OK, DEPTH), "pool_conn_pipeline");
            for r in &mut self.replies {
                assert_eq!((**r).r#type, POOL_REPLY_STATUS, "SET's +OK");
                pool_reply_free(*r);
                *r = std::ptr::null_mut();
            }
        }
        pool.put(c);
    }
}

/// The same 100 SETs, encoded once, on a dedicated conn: one write, read 100 "+OK".
struct RawPipeline {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl RawPipeline {
    fn new(stream: TcpStream, t: usize) -> RawPipeline {
        let mut request = Vec::new();
        for i in 0..DEPTH {
            let k = key(t, i);
            let _ = write!(
                request,
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n",
                k.len()
            );
        }
        RawPipeline {
            stream,
            request,
            buf: vec![0; 5 * DEPTH],
        }
    }

    fn round_trip(&mut self) {
        self.stream
            .write_all(&self.request)
            .expect("write pipeline");
        self.stream.read_exact(&mut self.buf).expect("read 100 +OK");
        assert!(self.buf.starts_with(b"+OK\r\n") && self.buf.ends_with(b"+OK\r\n"));
    }
}

/// `redis-benchmark -P 100 -t set -q` against `port`: SETs per second.
fn redis_benchmark(port: u16, requests: usize) -> (Result<f64, String>, String) {
    let args = [
        "-h".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-P".into(),
        DEPTH.to_string(),
        "-t".into(),
        "set".into(),
        "-q".into(),
        "-n".into(),
        requests.to_string(),
    ];
    let shown = format!("redis-benchmark {}", args.join(" "));
    let out = match Command::new("redis-benchmark").args(&args).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => return (Err(format!("{shown}: {}", o.status)), shown),
        Err(e) => return (Err(format!("redis-benchmark: {e}")), shown),
    };
    // "SET: 1234567.89 requests per second, p50=..." (after \r progress lines).
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .split(['\r', '\n'])
        .filter_map(|l| l.trim().strip_prefix("SET: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .next_back();
    (
        rate.ok_or_else(|| format!("{shown} printed {text:?}")),
        shown,
    )
}

pub(crate) fn section_pipelines(plan: &Plan, redis_addr: &str, port: u16) -> Pipelines {
    let (rounds, slice, requests) = match plan.mode {
        Mode::Smoke => (1, plan.rt_cell, 10_000),
        Mode::Quick => (4, plan.rt_cell / 4, 200_000),
        // Many short rounds: on a loaded machine one round's ratio ranges from a tenth to
        // several times; the median of many is steadier than a few long rounds.
        Mode::Full => (16, plan.rt_cell / 15, 2_000_000),
    };
    let mut rows = Vec::new();
    for threads in PIPE_THREADS {
        progress(&format!("pipelines of {DEPTH} SETs, {threads} threads"));
        let pool = CPool::new(redis_addr, threads, 0);
        let own: Vec<TcpStream> = connect_all(redis_addr, threads).collect();
        let dedicated = || {
            run(
                threads,
                slice,
                false,
                |t| RawPipeline::new(own[t].try_clone().expect("dup a dedicated conn"), t),
                |p, _| p.round_trip(),
            )
        };
        let pooled = || {
            run(threads, slice, false, CPipeline::new, |p, _| {
                p.run_on(&pool)
            })
        };
        let rate = |ops: u64, ns: u64| (ops * DEPTH as u64) as f64 * 1e9 / ns.max(1) as f64;
        let mut totals = [(0u64, 0u64); 2];
        let mut pcts = Vec::new();
        for round in 0..rounds {
            let (d, p): (Run, Run) = if round % 2 == 0 {
                let d = dedicated();
                (d, pooled())
            } else {
                let p = pooled();
                (dedicated(), p)
            };
            for (i, r) in [&d, &p].into_iter().enumerate() {
                totals[i].0 += r.ops;
                totals[i].1 += r.span_ns;
            }
            pcts.push(100.0 * rate(p.ops, p.span_ns) / rate(d.ops, d.span_ns));
        }
        rows.push(PipelineRow {
            threads,
            dedicated: rate(totals[0].0, totals[0].1),
            pooled: rate(totals[1].0, totals[1].1),
            pct: median(&mut pcts.clone()),
            round_pcts: pcts,
        });
    }
    progress("redis-benchmark -P 100 -t set");
    let (redis_benchmark, redis_benchmark_cmd) = redis_benchmark(port, requests);
    Pipelines {
        rows,
        redis_benchmark,
        redis_benchmark_cmd,
    }
}
