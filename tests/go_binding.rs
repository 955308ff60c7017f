//! The Go binding (`bindings/go`) is tested with its own `go test` suite, run
//! here against the freshly built `libredispool.so` and a redis-server owned by
//! this test. A temporary `redispool.pc` under `target/` points cgo's
//! `#cgo pkg-config: redispool` at the build tree's header and library.
//!
//! Skipped (with a note on stderr) when `go` is not installed, unless
//! `REDISPOOL_REQUIRE_BINDINGS` is set, as CI does: then a missing `go` fails.

mod common;

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

/// Whether `go version` runs.
fn go_available(go: &OsString) -> bool {
    Command::new(go)
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `contents` to `path` through a private temporary file and a rename,
/// so a concurrent run never reads a half-written file.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
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

/// A `go` command in `bindings/go` with a hermetic environment: caches under
/// `target/`, no network, no user go.env, the build tree's library.
fn go_command(go: &OsString, work: &Path, pkg_config_dir: &Path, lib_dir: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.current_dir(repo_dir().join("bindings").join("go"))
        .env("GOCACHE", work.join("gocache"))
        .env("GOPATH", work.join("gopath"))
        .env("GOENV", "off")
        .env("GOFLAGS", "-mod=mod")
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

#[test]
fn go_test_suite() {
    let go = go_program();
    if !go_available(&go) {
        if env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
            panic!(
                "`{}` not found, and REDISPOOL_REQUIRE_BINDINGS is set: install Go \
                 (Debian: apt-get install golang-go) or set GO to its path",
                go.to_string_lossy()
            );
        }
        eprintln!(
            "SKIPPED go_binding: `{}` is not installed (apt-get install golang-go); \
             set REDISPOOL_REQUIRE_BINDINGS=1 to make this a failure",
            go.to_string_lossy()
        );
        return;
    }
    match Command::new("pkg-config").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => panic!(
            "pkg-config not found: cgo needs it to find redispool (#cgo pkg-config). \
             Run `{}` or apt-get install pkg-config",
            common::README_TEST_COMMAND
        ),
    }

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

    let mut cmd = go_command(&go, &work, &pkg_config_dir, &lib_dir);
    cmd.args(["test", "-count=1", "-v", "-timeout", "600s", "./..."])
        .env("REDISPOOL_TEST_REDIS_ADDR", redis.addr());
    let out = run_command(&mut cmd, GO_TEST_TIMEOUT);
    let report = describe("go test -count=1 -v ./... in bindings/go", &out);
    // Shown with `cargo test -- --nocapture` (thread counts and timings are logged).
    eprintln!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\nok "),
        "go test printed no `ok` line\n{report}"
    );
}
