//! The Go binding (`bindings/go`) is tested with its own `go test` suite, run
//! here (plain, then with `-race`, after `gofmt` and `go vet`) against the
//! freshly built `libredispool.so` and a redis-server owned by this test. A
//! temporary `redispool.pc` under `target/` points cgo's
//! `#cgo pkg-config: redispool` at the build tree's header and library, as an
//! install under a prefix would. `go_user_module` builds a program in a module
//! outside the tree that depends on the binding by bindings/go/README.md's steps (a
//! `replace`, then a `go work` workspace) and runs it against Redis.
//!
//! `go_cluster_and_sentinel` runs the binding's Cluster and Sentinel tests
//! (`-run 'Cluster|Sentinel'`, plain and with `-race`) against a 3-master Redis
//! Cluster and a master + replica + 3 sentinels deployment it starts
//! (tests/common/toolchain.rs, shared with the Ruby and Python binding tests), passed
//! in environment variables; the Go tests skip without them.
//!
//! Skipped (with a note on stderr) when `go` is not installed or older than
//! the binding's go.mod (1.21), unless `REDISPOOL_REQUIRE_BINDINGS` is set, as
//! CI does: then that fails.

mod common;

use common::toolchain::cluster_and_sentinels;
use common::{RedisServer, STATIC_NATIVE_LIBS, repo_dir, run_command, shared_lib_dir, target_dir};
use std::collections::hash_map::DefaultHasher;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `go test` builds the package (cgo, first time: the runtime's cgo parts too)
/// and runs suites that wait on purpose; generous for a loaded 2-core machine.
const GO_TEST_TIMEOUT: Duration = Duration::from_secs(900);

/// The `go` to use: `$GO`, or `go` on PATH.
fn go_program() -> OsString {
    env::var_os("GO").unwrap_or_else(|| "go".into())
}

/// The oldest Go the binding supports: its go.mod's `go` line.
const MIN_GO_MINOR: u32 = 21;

/// The minor version of `go` (21 for go1.21.13), or None when it does not run.
fn go_minor_version(go: &OsString) -> Option<u32> {
    let out = Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let version = String::from_utf8_lossy(&out.stdout);
    // "go1.26.8", "go1.21rc2", "devel go1.27-…" (taken as new enough)
    let rest = version.trim().strip_prefix("go1.").unwrap_or("999");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The `go` to test with, or None (the test is skipped) when it is missing or
/// too old and `REDISPOOL_REQUIRE_BINDINGS` is not set; panics when it is.
fn require_go() -> Option<OsString> {
    let go = go_program();
    let problem = match go_minor_version(&go) {
        Some(minor) if minor >= MIN_GO_MINOR => return Some(go),
        Some(minor) => format!("is Go 1.{minor}, older than the binding's go 1.{MIN_GO_MINOR}"),
        None => "is not installed".to_string(),
    };
    if env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
        panic!(
            "`{}` {problem}, and REDISPOOL_REQUIRE_BINDINGS is set: run `{}` (it installs \
             a new enough Go) or set GO to the path of Go 1.{MIN_GO_MINOR} or later",
            go.to_string_lossy(),
            common::README_TEST_COMMAND
        );
    }
    eprintln!(
        "SKIPPED go_binding: `{}` {problem} (`{}` installs one); \
         set REDISPOOL_REQUIRE_BINDINGS=1 to make this a failure",
        go.to_string_lossy(),
        common::README_TEST_COMMAND
    );
    None
}

/// Checks that pkg-config runs: cgo needs it to find redispool.
fn require_pkg_config() {
    match Command::new("pkg-config").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => panic!(
            "pkg-config not found: cgo needs it to find redispool (#cgo pkg-config). \
             Run `{}` or apt-get install pkg-config",
            common::README_TEST_COMMAND
        ),
    }
}

/// Writes `contents` to `path` through a private temporary file and a rename,
/// so a concurrent run never reads a half-written file. The temporary name is
/// private to this process and call: the tests of this file run on parallel
/// threads of one process and write the same files.
fn write_atomically(path: &Path, contents: &str) {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{call}", std::process::id()));
    fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// A `redispool.pc` for the build tree: the header from `include/`, the library
/// from `lib_dir` (which holds `libredispool.so` and its SONAME link). Returns
/// the directory to put on PKG_CONFIG_PATH.
fn write_pkg_config(work: &Path, lib_dir: &Path) -> PathBuf {
    let dir = work.join("pkgconfig");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let pc = format!(
        "libdir={}\n\
         includedir={}\n\
         \n\
         Name: redispool\n\
         Description: {} (build tree)\n\
         Version: {}\n\
         Cflags: -I${{includedir}}\n\
         Libs: -L${{libdir}} -lredispool\n\
         Libs.private: {}\n",
        lib_dir.display(),
        repo_dir().join("include").display(),
        env!("CARGO_PKG_DESCRIPTION"),
        env!("CARGO_PKG_VERSION"),
        STATIC_NATIVE_LIBS.join(" "),
    );
    write_atomically(&dir.join("redispool.pc"), &pc);
    dir
}

/// `value` followed by the current contents of the path-list variable `var`.
fn prepend_path(var: &str, value: &Path) -> OsString {
    let mut paths = vec![value.to_path_buf()];
    if let Some(old) = env::var_os(var) {
        paths.extend(env::split_paths(&old));
    }
    env::join_paths(paths).unwrap_or_else(|e| panic!("{var}: {e}"))
}

/// A hash of the C header: part of CGO_CFLAGS, so that Go's build cache (which
/// does not look at headers outside the package) rebuilds the binding when the
/// header changes.
fn header_hash() -> u64 {
    let header = repo_dir().join("include").join("redispool.h");
    let text = fs::read(&header).unwrap_or_else(|e| panic!("read {}: {e}", header.display()));
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn describe(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `go` command in `dir` with a hermetic environment: caches under
/// `target/`, no network, no user go.env, the build tree's library.
fn go_command_in(
    go: &OsString,
    dir: &Path,
    work: &Path,
    pkg_config_dir: &Path,
    lib_dir: &Path,
) -> Command {
    let mut cmd = Command::new(go);
    cmd.current_dir(dir)
        .env("GOCACHE", work.join("gocache"))
        .env("GOPATH", work.join("gopath"))
        .env("GOENV", "off")
        .env_remove("GOFLAGS")
        .env_remove("GOWORK")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "1")
        .env(
            "CGO_CFLAGS",
            format!("-g -O2 -DREDISPOOL_HEADER_HASH={:x}", header_hash()),
        )
        .env(
            "PKG_CONFIG_PATH",
            prepend_path("PKG_CONFIG_PATH", pkg_config_dir),
        )
        .env("LD_LIBRARY_PATH", prepend_path("LD_LIBRARY_PATH", lib_dir));
    cmd
}

/// `go_command_in` the binding's own directory, `bindings/go`.
fn go_command(go: &OsString, work: &Path, pkg_config_dir: &Path, lib_dir: &Path) -> Command {
    let mut cmd = go_command_in(
        go,
        &repo_dir().join("bindings").join("go"),
        work,
        pkg_config_dir,
        lib_dir,
    );
    cmd.env("GOFLAGS", "-mod=mod");
    cmd
}

#[test]
fn go_test_suite() {
    let Some(go) = require_go() else { return };
    require_pkg_config();

    let work = target_dir().join("go-binding");
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("create {}: {e}", work.display()));
    let lib_dir = shared_lib_dir();
    let pkg_config_dir = write_pkg_config(&work, &lib_dir);
    let redis = RedisServer::start();

    // gofmt: the binding's sources are formatted (gofmt ships with go).
    let gofmt = Command::new(&go)
        .args(["env", "GOROOT"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin/gofmt"))
        .filter(|p| p.is_file());
    if let Some(gofmt) = gofmt {
        let mut cmd = Command::new(gofmt);
        cmd.args(["-l", "."])
            .current_dir(repo_dir().join("bindings").join("go"));
        let out = run_command(&mut cmd, Duration::from_secs(60));
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{}",
            describe("gofmt -l: files need gofmt", &out)
        );
    }

    let mut cmd = go_command(&go, &work, &pkg_config_dir, &lib_dir);
    cmd.args(["vet", "./..."]);
    let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
    assert!(out.status.success(), "{}", describe("go vet ./...", &out));

    for race in [false, true] {
        let mut cmd = go_command(&go, &work, &pkg_config_dir, &lib_dir);
        cmd.args(["test", "-count=1", "-v", "-timeout", "600s"]);
        if race {
            // The race detector needs cgo and gcc, which the build needs anyway.
            cmd.arg("-race");
        }
        cmd.arg("./...")
            .env("REDISPOOL_TEST_REDIS_ADDR", redis.addr());
        let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
        let what = if race { "go test -race" } else { "go test" };
        let report = describe(&format!("{what} -count=1 -v ./... in bindings/go"), &out);
        // Shown with `cargo test -- --nocapture` (thread counts and timings are logged).
        eprintln!("{report}");
        assert!(out.status.success(), "{report}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\nok "),
            "{what} printed no `ok` line\n{report}"
        );
        if race {
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("WARNING: DATA RACE"),
                "{report}"
            );
        }
    }
}

/// The Go binding against a redis-server with `--tls-port`: rediss:// URLs, the TLS
/// options, ErrTLS, a subscriber (TestTLSPool and TestTLSSubscribe must run, not skip).
#[test]
fn go_tls() {
    let Some(go) = require_go() else { return };
    require_pkg_config();
    let work = target_dir().join("go-binding");
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("create {}: {e}", work.display()));
    let lib_dir = shared_lib_dir();
    let pkg_config_dir = write_pkg_config(&work, &lib_dir);
    let tls = common::tls::TlsServer::start();
    let mut cmd = go_command(&go, &work, &pkg_config_dir, &lib_dir);
    cmd.args([
        "test", "-count=1", "-v", "-timeout", "600s", "-run", "TLS", ".",
    ])
    .env("REDISPOOL_TEST_REDIS_ADDR", tls.server.addr())
    .env("REDISPOOL_TEST_TLS_ADDR", tls.tls_addr())
    .env("REDISPOOL_TEST_TLS_CERTS", &common::tls::certs().dir);
    let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
    let report = describe("go test -run TLS in bindings/go", &out);
    assert!(out.status.success(), "{report}");
    for name in ["TestTLSPool", "TestTLSSubscribe"] {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("--- PASS: {name} ")),
            "{name} did not pass (skipped or missing)\n{report}"
        );
    }
}

/// The Go tests that need a cluster or sentinels; each must run (not skip)
/// when `go_cluster_and_sentinel` passes them the deployments.
const GO_CLUSTER_SENTINEL_TESTS: &[&str] = &[
    "TestClusterKeysAcrossSlots",
    "TestClusterMovedFollowed",
    "TestClusterErrors",
    "TestClusterContext",
    "TestClusterGetPutAllocs",
    "TestClusterDoInTheNetpoller",
    "TestClusterGetWaitsInGo",
    "TestClusterWaitEnds",
    "TestClusterWaitedGetAllocs",
    "TestSentinelPool",
];

#[test]
fn go_cluster_and_sentinel() {
    let Some(go) = require_go() else { return };
    require_pkg_config();
    let work = target_dir().join("go-binding");
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("create {}: {e}", work.display()));
    let lib_dir = shared_lib_dir();
    let pkg_config_dir = write_pkg_config(&work, &lib_dir);
    // TestMain wants a plain server too (it would start one itself otherwise).
    let redis = RedisServer::start();
    // Kept until the suites end: dropping them stops the deployments.
    let (_cluster, _sentinels, deployments) = cluster_and_sentinels();

    for race in [false, true] {
        let mut cmd = go_command(&go, &work, &pkg_config_dir, &lib_dir);
        cmd.args(["test", "-count=1", "-v", "-timeout", "600s"]);
        if race {
            cmd.arg("-race");
        }
        cmd.args(["-run", "Cluster|Sentinel", "."])
            .env("REDISPOOL_TEST_REDIS_ADDR", redis.addr())
            .envs(deployments.iter().map(|(k, v)| (k, v)));
        let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
        let what = if race { "go test -race" } else { "go test" };
        let report = describe(
            &format!("{what} -run 'Cluster|Sentinel' in bindings/go"),
            &out,
        );
        eprintln!("{report}");
        assert!(out.status.success(), "{report}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for test in GO_CLUSTER_SENTINEL_TESTS {
            assert!(
                stdout.contains(&format!("--- PASS: {test} ")),
                "{test} did not pass (skipped or missing)\n{report}"
            );
        }
        assert!(!stdout.contains("--- SKIP"), "a test skipped\n{report}");
        if race {
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("WARNING: DATA RACE"),
                "{report}"
            );
        }
    }
}

/// A user's program: the Go binding's usage example, run against the server at `argv[1]`.
const USER_MAIN: &str = r#"package main

import (
	"context"
	"fmt"
	"os"

	redispool "github.com/redispool/redispool-go"
)

func main() {
	pool, err := redispool.New("redis://" + os.Args[1] + "/0?pool_size=2&pool_timeout=5s")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer pool.Close()
	ctx := context.Background()
	cn, err := pool.Get(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := cn.Do(ctx, "SET", os.Args[2], "hello from a user module"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	v, err := cn.Do(ctx, "GET", os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pool.Put(cn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := pool.PoolStats()
	fmt.Printf("version=%s reply=%q misses=%d idle=%d\n", redispool.Version(), v, s.Misses, s.IdleConns)
}
"#;

/// A temporary directory outside the repository, removed when the test passes
/// (kept for a look when it fails).
struct UserDir(PathBuf);

impl UserDir {
    fn new(name: &str) -> UserDir {
        let dir = env::temp_dir().join(format!("redispool-go-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        UserDir(dir)
    }
}

impl Drop for UserDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// bindings/go/README.md's two ways to depend on the binding from a checkout, each in a
/// fresh module outside the tree: `go mod edit -require … -replace …`, and a
/// `go work` workspace. Each builds the user's program and runs it against Redis.
#[test]
fn go_user_module() {
    let Some(go) = require_go() else { return };
    require_pkg_config();
    let work = target_dir().join("go-binding");
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("create {}: {e}", work.display()));
    let lib_dir = shared_lib_dir();
    let pkg_config_dir = write_pkg_config(&work, &lib_dir);
    let binding = repo_dir().join("bindings").join("go");
    let binding = binding.to_str().expect("UTF-8 path");
    let redis = RedisServer::start();

    let replace_steps: &[&[&str]] = &[
        &["mod", "init", "example.com/hello"],
        &[
            "mod",
            "edit",
            "-require=github.com/redispool/redispool-go@v0.0.0",
            &format!("-replace=github.com/redispool/redispool-go={binding}"),
        ],
    ];
    let workspace_steps: &[&[&str]] = &[
        &["mod", "init", "example.com/hello"],
        &["work", "init", "."],
        &["work", "use", binding],
    ];
    for (name, steps) in [("replace", replace_steps), ("workspace", workspace_steps)] {
        let user = UserDir::new(name);
        assert!(
            !user.0.starts_with(repo_dir()),
            "{} is inside the repository",
            user.0.display()
        );
        fs::write(user.0.join("main.go"), USER_MAIN)
            .unwrap_or_else(|e| panic!("write main.go: {e}"));
        let build: &[&str] = &["build", "-o", "hello", "."];
        for args in steps.iter().chain([&build]) {
            let mut cmd = go_command_in(&go, &user.0, &work, &pkg_config_dir, &lib_dir);
            cmd.args(*args);
            let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
            assert!(
                out.status.success(),
                "{}",
                describe(&format!("{name}: go {}", args.join(" ")), &out)
            );
        }
        let mut cmd = Command::new(user.0.join("hello"));
        cmd.args([redis.addr().as_str(), &format!("redispool-go-user-{name}")])
            .env("LD_LIBRARY_PATH", prepend_path("LD_LIBRARY_PATH", &lib_dir));
        let out = run_command(&mut cmd, Duration::from_secs(60));
        let report = describe(&format!("{name}: ./hello"), &out);
        assert!(out.status.success(), "{report}");
        let want = format!(
            "version={} reply=\"hello from a user module\" misses=1 idle=1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{report}");
    }
}
