//! System calls per Get+Put (issue 22's "< 0.1 per Get+Put in steady state"), counted by
//! `strace -f -c` over this program's `--syscall-loop` mode: two runs of different op
//! counts, the difference divided by the extra ops, so set-up and teardown cancel out.

use crate::getput::Variant;
use crate::loopback::acceptor;
use crate::plan::{HOT_BYPASS_MS, Mode, OVERTAKE_MS, Plan};
use crate::report::progress;
use crate::runner::get_put;
use crate::under_test::CPool;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::thread;

/// The redispool variants counted, with their `--syscall-loop` names.
pub(crate) const SYSCALL_VARIANTS: [(Variant, &str); 3] = [
    (Variant::Default, "default"),
    (Variant::Hot, "hot"),
    (Variant::Overtake, "overtake"),
];

/// (threads, pool size) counted: one thread alone, and 8 threads on pool 8.
pub(crate) const SYSCALL_CELLS: [(usize, usize); 2] = [(1, 8), (8, 8)];

pub(crate) struct SyscallRow {
    pub(crate) variant: Variant,
    pub(crate) threads: usize,
    pub(crate) size: usize,
    pub(crate) extra_ops: usize,
    /// System calls per Get+Put, all kinds.
    pub(crate) per_op: f64,
    /// The kinds above 0.01 per op, most first.
    pub(crate) kinds: Vec<(String, f64)>,
}

/// `--syscall-loop VARIANT THREADS SIZE N`: a pool of SIZE conns (variant "default",
/// "hot" or "overtake") on a loopback acceptor, 1000 warm-up Get+Puts, then THREADS
/// threads doing N Get+Puts between them, nothing else.
pub(crate) fn syscall_loop(args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| -> usize {
        arg(i)
            .parse()
            .expect("--syscall-loop VARIANT THREADS SIZE N")
    };
    let (threads, size, n) = (num(1).max(1), num(2).max(1), num(3));
    let addr = acceptor();
    let p = match arg(0) {
        "default" => CPool::new(&addr, size, 0),
        "hot" => CPool::new(&addr, size, HOT_BYPASS_MS),
        "overtake" => CPool::with(&addr, size, 0, Some(OVERTAKE_MS)),
        other => panic!("--syscall-loop: unknown variant {other:?}"),
    };
    for _ in 0..1000 {
        get_put(&p, None);
    }
    let start = Barrier::new(threads);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                for _ in 0..n / threads {
                    get_put(&p, None);
                }
            });
        }
    });
}

/// Per-syscall call counts of one strace run of `--syscall-loop`.
fn strace_counts(
    name: &str,
    threads: usize,
    size: usize,
    n: usize,
) -> Result<BTreeMap<String, u64>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!(
        "redispool-strace-{}-{name}-{threads}-{n}.txt",
        std::process::id()
    ));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(&exe)
        .args(["--syscall-loop", name])
        .args([threads, size, n].map(|v| v.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()));
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        return Err(format!("strace of --syscall-loop {name}: {status}"));
    }
    // "% time  seconds  usecs/call  calls  [errors]  syscall"; the total line is skipped.
    let mut counts = BTreeMap::new();
    for line in text?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(calls), Some(&kind)) = (f.get(3).and_then(|c| c.parse().ok()), f.last()) else {
            continue;
        };
        if kind != "total" && f[0].parse::<f64>().is_ok() {
            counts.insert(kind.to_string(), calls);
        }
    }
    Ok(counts)
}

/// The syscall rows; Err when strace is missing or fails.
pub(crate) fn section_syscalls(plan: &Plan) -> Result<Vec<SyscallRow>, String> {
    let strace_ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !strace_ok {
        return Err(
            "strace is not installed (apt-get install strace; scripts/bench.sh does)".into(),
        );
    }
    let (short, long) = match plan.mode {
        Mode::Smoke => (200, 1_200),
        Mode::Quick | Mode::Full => (4_000, 24_000),
    };
    let mut rows = Vec::new();
    for (threads, size) in SYSCALL_CELLS {
        for (variant, name) in SYSCALL_VARIANTS {
            progress(&format!(
                "syscalls per Get+Put (strace -f -c): {} {threads} threads, pool {size}",
                variant.name()
            ));
            let a = strace_counts(name, threads, size, short)?;
            let b = strace_counts(name, threads, size, long)?;
            let extra = (long - short) as f64;
            let mut kinds: Vec<(String, f64)> = b
                .iter()
                .map(|(k, &nb)| {
                    let na = a.get(k).copied().unwrap_or(0);
                    (k.clone(), nb.saturating_sub(na) as f64 / extra)
                })
                .filter(|(_, per)| *per >= 0.01)
                .collect();
            kinds.sort_by(|x, y| y.1.total_cmp(&x.1));
            let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
            rows.push(SyscallRow {
                variant,
                threads,
                size,
                extra_ops: long - short,
                per_op: total(&b).saturating_sub(total(&a)) as f64 / extra,
                kinds,
            });
        }
    }
    Ok(rows)
}
