//! The Ruby binding (`bindings/ruby`, ffi gem) runs its minitest suite against the
//! freshly built `libredispool.so` and a throwaway redis-server; and its gem is
//! built (`gem build`), installed into a scratch GEM_HOME (`gem install --local`)
//! and used as a user would: a plain `require "redispool"` that finds the library
//! by its SONAME through the dynamic loader, without `REDISPOOL_LIB`.
//!
//! A third test runs `test/test_cluster_sentinel.rb` (RedisPool::Cluster,
//! RedisPool::Pool.sentinel) against a 3-master Redis Cluster and a master + replica
//! + 3 sentinels deployment it starts (tests/common).
//!
//! Skips (with a note on stderr) when `ruby`, `gem`, the ffi gem or minitest is missing,
//! unless `REDISPOOL_REQUIRE_BINDINGS` is set (scripts/test.sh and CI set it and
//! install them: Debian `ruby ruby-ffi ruby-minitest`), in which case it fails.

mod common;

use common::toolchain::{binding_ready, cluster_and_sentinels, probe, run_suite, shared_lib};
use common::{
    Link, RedisServer, build_c, c_tests_dir, describe, repo_dir, run_command, shared_lib_dir,
};
use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

/// The whole suite takes a few seconds; this only catches a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// True when the Ruby tests can run; false (after a note on stderr) when they must
/// be skipped; panics when they cannot run but REDISPOOL_REQUIRE_BINDINGS is set.
fn ruby_available() -> bool {
    // `gem` (Debian: ruby-rubygems, which the `ruby` package depends on) builds
    // and installs the binding's gem.
    let missing = probe("gem", &["--version"])
        .or_else(|| probe("ruby", &["-e", "require 'ffi'; require 'minitest'"]));
    binding_ready(
        "ruby_binding",
        "the Ruby binding",
        "ruby, ruby-ffi and ruby-minitest",
        missing,
    )
}

/// The structs the Ruby binding mirrors besides those tests/c/layout.c prints.
const EXTRA_LAYOUT_C: &str = r#"#include <stdio.h>
#include "redispool.h"
int main(void)
{
    printf("pool_cluster_options_t=%zu pool_cluster_info_t=%zu pool_cluster_node_t=%zu "
           "pool_sentinel_options_t=%zu pool_sentinel_stats_t=%zu\n",
           sizeof(pool_cluster_options_t), sizeof(pool_cluster_info_t),
           sizeof(pool_cluster_node_t), sizeof(pool_sentinel_options_t),
           sizeof(pool_sentinel_stats_t));
    return 0;
}
"#;

/// "name=size ..." of every struct the binding's FFI::Struct layouts mirror, as a C
/// compiler sees them through the header.
fn c_struct_sizes() -> String {
    let mut sizes = Vec::new();
    let extra = c_tests_dir().join("ruby_layout_extra.c");
    fs::create_dir_all(c_tests_dir()).unwrap_or_else(|e| panic!("create c-tests dir: {e}"));
    fs::write(&extra, EXTRA_LAYOUT_C).unwrap_or_else(|e| panic!("{}: {e}", extra.display()));
    let extra = extra.to_string_lossy().into_owned();
    for (name, source) in [
        ("layout", "tests/c/layout.c"),
        ("ruby_layout_extra", extra.as_str()),
    ] {
        let exe = build_c(name, &[source], Link::Shared, &[]);
        let out = run_command(&mut Command::new(&exe), Duration::from_secs(30));
        assert!(out.status.success(), "{}", describe(&out));
        sizes.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    sizes.join(" ")
}

/// Runs one minitest file of bindings/ruby/test against the freshly built library
/// with `envs`; fails on a failure, an error, or (with `no_skips`) a skipped test.
fn run_minitest(file: &str, envs: &[(&str, String)], no_skips: bool) {
    let lib = shared_lib();
    let dir = repo_dir().join("bindings").join("ruby");

    let mut cmd = Command::new("ruby");
    cmd.args(["-Ilib", file, "--verbose"])
        .current_dir(&dir)
        .env("REDISPOOL_LIB", &lib)
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let what = format!(
        "the Ruby minitest file {file} (REDISPOOL_LIB={}, {envs:?})",
        lib.display()
    );
    let output = run_suite(&mut cmd, SUITE_TIMEOUT, &what);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = if no_skips {
        " 0 failures, 0 errors, 0 skips"
    } else {
        " 0 failures, 0 errors"
    };
    assert!(
        stdout.contains(summary),
        "no minitest summary line with{summary}\n{}",
        describe(&output)
    );
}

#[test]
fn ruby_minitest_suite() {
    if !ruby_available() {
        return;
    }
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    // The struct sizes of the header, which the binding's FFI::Struct layouts must match.
    let sizes = c_struct_sizes();
    run_minitest(
        "test/test_redispool.rb",
        &[
            ("REDISPOOL_TEST_REDIS_URL", url),
            ("REDISPOOL_C_SIZES", sizes),
        ],
        false,
    );
}

/// RedisPool::Pool over TLS (rediss://, the tls_* options, TLSError): every test runs.
#[test]
fn ruby_tls() {
    if !ruby_available() {
        return;
    }
    let tls = common::tls::TlsServer::start();
    run_minitest(
        "test/test_tls.rb",
        &[
            ("REDISPOOL_TEST_TLS_ADDR", tls.tls_addr()),
            ("REDISPOOL_TEST_TLS_CERTS", common::tls::certs().path("")),
        ],
        true,
    );
}

/// RedisPool::Cluster and RedisPool::Pool.sentinel against real deployments: keys
/// over many slots, MOVED followed, stats, error mapping, a sentinel pool on the
/// master. Every test must run: a skip (an env var not reaching Ruby) fails.
#[test]
fn ruby_cluster_and_sentinel() {
    if !ruby_available() {
        return;
    }
    let (_cluster, _sentinels, env) = cluster_and_sentinels();
    run_minitest("test/test_cluster_sentinel.rb", &env, true);
}

/// A scratch directory under `target/<profile>/c-tests/`, removed when the test
/// passes (kept for a look when it fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = c_tests_dir().join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `cmd` with a bound and panics with its output unless it succeeded.
fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let output = run_command(cmd, SUITE_TIMEOUT);
    assert!(
        output.status.success(),
        "{what} failed\n{}",
        describe(&output)
    );
    output
}

/// The gem as a user gets it: `gem build`, `gem install` into a scratch GEM_HOME,
/// then a script outside the source tree that requires it with nothing but
/// GEM_HOME set, the library reachable only through its SONAME
/// (`libredispool.so.N`, as a runtime package installs it) on LD_LIBRARY_PATH.
#[test]
fn ruby_gem_installs_and_finds_the_library_by_soname() {
    if !ruby_available() {
        return;
    }
    let scratch = Scratch::new("ruby-gem");
    let dir = repo_dir().join("bindings").join("ruby");

    // Only the SONAME, not the linker name libredispool.so, so a fallback to the
    // latter cannot hide a broken SONAME lookup.
    let so = shared_lib_dir().join("libredispool.so");
    let so = so
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", so.display()));
    let libdir = scratch.0.join("lib");
    fs::create_dir_all(&libdir).unwrap_or_else(|e| panic!("create {}: {e}", libdir.display()));
    let soname = format!("libredispool.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    std::os::unix::fs::symlink(&so, libdir.join(&soname))
        .unwrap_or_else(|e| panic!("symlink {soname}: {e}"));

    let gem_file = scratch.0.join("redispool.gem");
    run_ok(
        "gem build",
        Command::new("gem")
            .args(["build", "redispool.gemspec", "--output"])
            .arg(&gem_file)
            .current_dir(&dir),
    );
    let gem_home = scratch.0.join("gems");
    // GEM_HOME rather than --install-dir: rubygems then resolves the ffi
    // dependency against the gems already installed (Debian's ruby-ffi).
    run_ok(
        "gem install",
        Command::new("gem")
            .args(["install", "--local", "--no-document"])
            .arg(&gem_file)
            .current_dir(&scratch.0)
            .env("GEM_HOME", &gem_home),
    );
    let installed = gem_home
        .join("gems")
        .join(format!("redispool-{}", env!("CARGO_PKG_VERSION")));
    assert!(
        installed.join("lib").join("redispool.rb").is_file(),
        "the gem did not install lib/redispool.rb under {}",
        installed.display()
    );

    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let license = match env!("CARGO_PKG_LICENSE") {
        "" => "MIT OR Apache-2.0",
        license => license,
    };
    let mut cmd = Command::new("ruby");
    cmd.arg(dir.join("test").join("test_installed_gem.rb"))
        .arg("--verbose")
        .current_dir(&scratch.0)
        .env_remove("REDISPOOL_LIB")
        .env_remove("RUBYLIB")
        .env_remove("RUBYOPT")
        .env("GEM_HOME", &gem_home)
        .env("LD_LIBRARY_PATH", &libdir)
        .env("REDISPOOL_TEST_REDIS_URL", &url)
        .env("REDISPOOL_EXPECT_LICENSE", license);
    let output = run_ok("the installed-gem test", &mut cmd);
    println!("{}", String::from_utf8_lossy(&output.stdout));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(" 0 failures, 0 errors, 0 skips"),
        "no clean minitest summary line\n{}",
        describe(&output)
    );
}
