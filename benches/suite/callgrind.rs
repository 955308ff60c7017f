//! Instructions per hot Get+Put, counted by callgrind over this program's `--hot-loop` mode.

use crate::loopback::acceptor;
use crate::plan::HOT_BYPASS_MS;
use crate::report::progress;
use crate::runner::get_put;
use crate::under_test::CPool;

pub(crate) fn hot_loop(n: usize) {
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
pub(crate) fn instructions_per_hot_op() -> Option<Result<f64, String>> {
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
