//! The go-redis baselines: go-redis's own pool from goroutines, in a Go process per run.
//! v5's internal/pool from Debian's golang-gopkg-redis.v5-dev (GOPATH mode), and the
//! current v9 fetched from the Go module proxy at run time (never committed), with the v9
//! client's Ping for round trips.

use crate::getput::Variant;
use crate::hist::Waits;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(crate) const GO_REDIS_SRC: &str = "/usr/share/gocode/src/gopkg.in/redis.v5";

/// go-redis's own pool (v5's internal/pool: the channel semaphore, the mutex-guarded free
/// list, a pooled timer per get; go-redis 9 adds a MSG_PEEK and deadline resets per get),
/// from goroutines, driven by benches/goredis/v5/main.go in a process per run.
pub(crate) struct GoRedis {
    pub(crate) exe: PathBuf,
    /// The go-redis version driven: "v5.2.9" style for v5 (Debian's), the module
    /// version for v9.
    pub(crate) version: String,
    /// The v9 driver takes a mode word ("getput" or "ping") first.
    pub(crate) v9: bool,
}

/// Both go-redis drivers, each built or the reason it is left out.
pub(crate) struct GoBuilds {
    pub(crate) v5: Result<GoRedis, String>,
    pub(crate) v9: Result<GoRedis, String>,
}

impl GoBuilds {
    /// Builds both (v9 only `with_v9`), printing why one is left out.
    pub(crate) fn build(with_v9: bool) -> GoBuilds {
        let v5 = GoRedis::build();
        if let Err(why) = &v5 {
            eprintln!("go-redis v5 baseline left out: {why}");
        }
        let v9 = if with_v9 {
            GoRedis::build_v9()
        } else {
            Err("left out of the smoke run (REDISPOOL_BENCH_GOREDIS_V9=1 includes it)".into())
        };
        if let Err(why) = &v9 {
            eprintln!("go-redis v9 baseline left out: {why}");
        }
        GoBuilds { v5, v9 }
    }

    /// The driver of a go-redis variant, None when it is not built or not a go-redis one.
    pub(crate) fn of(&self, v: Variant) -> Option<&GoRedis> {
        match v {
            Variant::GoRedis => self.v5.as_ref().ok(),
            Variant::GoRedisV9 => self.v9.as_ref().ok(),
            _ => None,
        }
    }

    /// A go-redis variant whose driver is not built.
    pub(crate) fn missing(&self, v: Variant) -> bool {
        matches!(v, Variant::GoRedis | Variant::GoRedisV9) && self.of(v).is_none()
    }
}

/// The go-redis v9 module, fetched at run time; `REDISPOOL_GOREDIS_V9` pins a version
/// (default: the proxy's latest).
const GO_REDIS_V9: &str = "github.com/redis/go-redis/v9";

/// Runs `go` with `args` in `dir` under `env`; stdout on success.
fn go(dir: &Path, env: &[(&str, &OsStr)], args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("go: {e} (scripts/bench.sh installs Go)"))?;
    if !out.status.success() {
        return Err(format!(
            "go {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The string value of `"key": "value"` in `go mod download -json` output.
fn json_field(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].replace("\\\\", "\\"))
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
        std::fs::write(dir.join("getput.go"), include_str!("../goredis/getput.go"))
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
        Ok(GoRedis {
            exe,
            version: "v5".into(),
            v9: false,
        })
    }

    /// Fetches go-redis v9 (the latest, or `REDISPOOL_GOREDIS_V9`) from the Go module
    /// proxy into a module cache under the target directory, copies the module to a
    /// scratch directory and builds benches/goredis/v9/main.go as a package inside it
    /// (an internal package is importable only from inside its module). The module cache
    /// and Go's build cache are kept between runs, the copy is not.
    pub(crate) fn build_v9() -> Result<GoRedis, String> {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("goredis-v9");
        let scratch = root.join("src");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let (modcache, cache) = (root.join("modcache"), root.join("cache"));
        // GOTOOLCHAIN is left to the user's setting (Go's default "auto": a Go older than
        // the module's go line fetches the newer toolchain from the module proxy).
        let env: [(&str, &OsStr); 5] = [
            ("GOMODCACHE", modcache.as_os_str()),
            ("GOCACHE", cache.as_os_str()),
            ("GOPATH", root.as_os_str()),
            ("GO111MODULE", OsStr::new("on")),
            ("GOFLAGS", OsStr::new("-mod=mod")),
        ];
        let want = std::env::var("REDISPOOL_GOREDIS_V9").unwrap_or_else(|_| "latest".into());
        let json = go(
            &root,
            &env,
            &["mod", "download", "-json", &format!("{GO_REDIS_V9}@{want}")],
        )?;
        let json = String::from_utf8_lossy(&json);
        let (Some(version), Some(dir)) = (json_field(&json, "Version"), json_field(&json, "Dir"))
        else {
            return Err(format!("go mod download printed {json}"));
        };
        let module = scratch.join("go-redis");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(&dir)
            .arg(&module)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        // The module cache is read-only; the copy gets the driver's directory added.
        let writable = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&module)
            .status();
        if !copied.success() || !writable.is_ok_and(|s| s.success()) {
            return Err(format!("copying {dir} failed"));
        }
        let pkg = module.join("redispoolbench");
        std::fs::create_dir_all(&pkg).map_err(|e| e.to_string())?;
        std::fs::write(pkg.join("main.go"), include_str!("../goredis/v9/main.go"))
            .map_err(|e| e.to_string())?;
        std::fs::write(pkg.join("hist.go"), include_str!("../goredis/hist.go"))
            .map_err(|e| e.to_string())?;
        std::fs::write(pkg.join("getput.go"), include_str!("../goredis/getput.go"))
            .map_err(|e| e.to_string())?;
        let exe = root.join("redispoolbench");
        let exe_arg = exe.to_string_lossy().into_owned();
        go(
            &module,
            &env,
            &["build", "-o", &exe_arg, "./redispoolbench"],
        )?;
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(GoRedis {
            exe,
            version,
            v9: true,
        })
    }

    /// Round trips through the go-redis v9 client: `threads` goroutines calling
    /// client.Ping on a client with PoolSize = `threads`, for `dur` (one process, a
    /// warm-up first); ops/s and the wall time of the timed part.
    pub(crate) fn ping(&self, addr: &str, threads: usize, dur: Duration) -> f64 {
        assert!(self.v9, "ping needs the v9 driver");
        let out = Command::new(&self.exe)
            .args(["ping", addr, &threads.to_string()])
            .arg(dur.as_millis().max(1).to_string())
            .output()
            .expect("run the go-redis v9 driver");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "go-redis v9 ping ({threads} goroutines): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "ops_per_sec")
            .and_then(|i| words.get(i + 1)?.parse().ok())
            .unwrap_or_else(|| panic!("go-redis v9 ping printed {text:?}"))
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
        if self.v9 {
            cmd.arg("getput");
        }
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
            queued: None,
        });
        (ns, waits)
    }
}
