//! The go-redis baseline

use crate::hist::Waits;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub(crate) const GO_REDIS_SRC: &str = "/usr/share/gocode/src/gopkg.in/redis.v5";

/// go-redis's own pool (v5's internal/pool: the channel semaphore, the mutex-guarded free
/// list, a pooled timer per get; go-redis 9 adds a MSG_PEEK and deadline resets per get),
/// from goroutines, driven by benches/goredis/v5/main.go in a process per run.
pub(crate) struct GoRedis {
    pub(crate) exe: PathBuf,
}

impl GoRedis {
    /// Builds benches/goredis/v5/main.go inside a copy of go-redis's tree, in GOPATH mode: an
    /// internal package is importable only from inside the tree it belongs to.
    pub(crate) fn build() -> Result<GoRedis, String> {
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
        std::fs::write(dir.join("main.go"), include_str!("../goredis/v5/main.go"))
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.join("hist.go"), include_str!("../goredis/hist.go"))
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
    pub(crate) fn run(
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
