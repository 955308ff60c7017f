//! A binding's toolchain and test suite (tests/python_binding.rs,
//! tests/ruby_binding.rs): whether the toolchain is on the machine (a binding test
//! skips with a note when it is not, or fails when `REDISPOOL_REQUIRE_BINDINGS` is set:
//! scripts/test.sh and CI set it and install the toolchains), and running the suite
//! against the freshly built library.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::cluster::ClusterHarness;
use super::sentinel::{Deployment, MASTER_NAME};
use super::{describe, run_command, shared_lib_dir};

/// Runs `program args` as a probe: None when it exits 0, else why it could not run
/// (its stderr included).
pub fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let shown = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    match out {
        Err(e) => Some(format!("cannot run `{program}`: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// True when `missing` (the first failed probe of `test`'s toolchain) is None; false
/// after a note on stderr when the test must be skipped; panics when it is not None
/// but REDISPOOL_REQUIRE_BINDINGS is set. `binding` names it in the panic ("the
/// Python binding"), `packages` are the Debian packages that install the toolchain.
pub fn binding_ready(test: &str, binding: &str, packages: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
        panic!(
            "REDISPOOL_REQUIRE_BINDINGS is set but {binding} cannot be tested: {why}. \
             Install {packages} (apt), or run ./scripts/test.sh"
        );
    }
    eprintln!(
        "SKIPPED {test}: {why}. Install {packages} to run it \
         (set REDISPOOL_REQUIRE_BINDINGS=1 to make this a failure)"
    );
    false
}

/// The freshly built `libredispool.so`, as an absolute path (a suite's REDISPOOL_LIB).
pub fn shared_lib() -> PathBuf {
    let lib = shared_lib_dir().join("libredispool.so");
    lib.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
}

/// Runs a binding's test suite `cmd` (a hang ends at `timeout`), shows its output, and
/// fails unless it exited 0 (`what` names the suite in the panic). Returns the output
/// for the caller's checks of its summary line.
pub fn run_suite(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let output = run_command(cmd, timeout);
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "{what} failed\n{}",
        describe(&output)
    );
    output
}

/// What a binding's cluster and sentinel tests run against: a Redis Cluster of 3
/// masters, a master + replica + 3 sentinels deployment, and the environment that
/// names them to the tests (REDISPOOL_TEST_CLUSTER_SEEDS, REDISPOOL_TEST_SENTINELS,
/// REDISPOOL_TEST_SENTINEL_MASTER "name=addr", REDISPOOL_TEST_SENTINEL_REPLICA). Both stop when dropped: keep them while the tests run.
pub fn cluster_and_sentinels() -> (ClusterHarness, Deployment, Vec<(&'static str, String)>) {
    let cluster = ClusterHarness::start(3, 0);
    let sentinels = Deployment::start();
    let env = vec![
        (
            "REDISPOOL_TEST_CLUSTER_SEEDS",
            cluster.seed_addrs().join(","),
        ),
        (
            "REDISPOOL_TEST_SENTINELS",
            sentinels.sentinel_addrs().join(","),
        ),
        (
            "REDISPOOL_TEST_SENTINEL_MASTER",
            format!("{MASTER_NAME}={}", sentinels.master.addr()),
        ),
        ("REDISPOOL_TEST_SENTINEL_REPLICA", sentinels.replica.addr()),
    ];
    (cluster, sentinels, env)
}
