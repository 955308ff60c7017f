//! The Ruby binding (`bindings/ruby`, ffi gem) runs its minitest suite against the
//! freshly built `libredispool.so` and a throwaway redis-server; and its gem is
//! built (`gem build`), installed into a scratch GEM_HOME (`gem install --local`)
//! and used as a user would: a plain `require "redispool"` that finds the library
//! by its SONAME through the dynamic loader, without `REDISPOOL_LIB`.
//!
//! Skips (with a note on stderr) when `ruby`, `gem`, the ffi gem or minitest is missing,
//! unless `REDISPOOL_REQUIRE_BINDINGS` is set (scripts/test.sh and CI set it and
//! install them: Debian `ruby ruby-ffi ruby-minitest`), in which case it fails.

mod common;

use common::{
    Link, RedisServer, build_c, c_tests_dir, describe, repo_dir, run_command, shared_lib_dir,
};
use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

/// The whole suite takes a few seconds; this only catches a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the Ruby toolchain cannot run the suite, or None when it can.
fn ruby_missing() -> Option<String> {
    // `gem` (Debian: ruby-rubygems, which the `ruby` package depends on) builds
    // and installs the binding's gem.
    match Command::new("gem")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => return Some(format!("cannot run `gem`: {e}")),
        Ok(status) if !status.success() => {
            return Some(format!("`gem --version` failed ({status})"));
        }
        Ok(_) => {}
    }
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

/// True when the Ruby tests can run; false (after a note on stderr) when they must
/// be skipped; panics when they cannot run but REDISPOOL_REQUIRE_BINDINGS is set.
fn ruby_available() -> bool {
    let Some(why) = ruby_missing() else {
        return true;
    };
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
    false
}

#[test]
fn ruby_minitest_suite() {
    if !ruby_available() {
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
