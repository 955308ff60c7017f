//! The Ruby binding (`bindings/ruby`, ffi gem) runs its minitest suite against the
//! freshly built `libredispool.so` and a throwaway redis-server.
//!
//! Skips (with a note on stderr) when `ruby`, the ffi gem or minitest is missing,
//! unless `REDISPOOL_REQUIRE_BINDINGS` is set (scripts/test.sh and CI set it and
//! install them: Debian `ruby ruby-ffi ruby-minitest`), in which case it fails.

mod common;

use common::{Link, RedisServer, build_c, describe, repo_dir, run_command, shared_lib_dir};
use std::env;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The whole suite takes a few seconds; this only catches a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the Ruby toolchain cannot run the suite, or None when it can.
fn ruby_missing() -> Option<String> {
    let probe = Command::new("ruby")
        .args(["-e", "require 'ffi'; require 'minitest'"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("cannot run `ruby`: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`ruby -e \"require 'ffi'; require 'minitest'\"` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

#[test]
fn ruby_minitest_suite() {
    if let Some(why) = ruby_missing() {
        if env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
            panic!(
                "REDISPOOL_REQUIRE_BINDINGS is set but the Ruby binding cannot be tested: {why}. \
                 Install ruby, ruby-ffi and ruby-minitest (apt), or run ./scripts/test.sh"
            );
        }
        eprintln!(
            "SKIPPED ruby_binding: {why}. Install ruby, ruby-ffi and ruby-minitest to run it \
             (set REDISPOOL_REQUIRE_BINDINGS=1 to make this a failure)"
        );
        return;
    }

    let lib = shared_lib_dir().join("libredispool.so");
    let lib = lib
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let dir = repo_dir().join("bindings").join("ruby");

    // The struct sizes of the header, which the binding's FFI::Struct layouts must match.
    let layout = build_c("layout", &["tests/c/layout.c"], Link::Shared, &[]);
    let sizes = run_command(&mut Command::new(&layout), Duration::from_secs(30));
    assert!(sizes.status.success(), "{}", describe(&sizes));
    let sizes = String::from_utf8_lossy(&sizes.stdout).trim().to_string();

    let mut cmd = Command::new("ruby");
    cmd.args(["-Ilib", "test/test_redispool.rb", "--verbose"])
        .current_dir(&dir)
        .env("REDISPOOL_C_SIZES", &sizes)
        .env("REDISPOOL_LIB", &lib)
        .env("REDISPOOL_TEST_REDIS_URL", &url);
    let output = run_command(&mut cmd, SUITE_TIMEOUT);

    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the Ruby minitest suite failed (REDISPOOL_LIB={}, REDISPOOL_TEST_REDIS_URL={url})\n{}",
        lib.display(),
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(" 0 failures, 0 errors"),
        "no minitest summary line\n{}",
        describe(&output)
    );
}
