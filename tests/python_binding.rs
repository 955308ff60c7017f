//! The Python binding (`bindings/python`, ctypes) runs its pytest suite against the
//! freshly built `libredispool.so`; the suite starts its own redis-server on a free
//! loopback port, checks the binding's tables against `include/redispool.h`, and
//! `pip install`s the package into a temporary venv. A second test runs the Cluster
//! and Sentinel tests against a 3-master Redis Cluster and a master + replica + 3
//! sentinels deployment it starts (tests/common).
//!
//! Skips (with a note on stderr) when `python3`, pytest or the venv module is
//! missing, unless `REDISPOOL_REQUIRE_BINDINGS` is set (scripts/test.sh and CI set
//! it and install them: Debian `python3 python3-pytest python3-venv`), in which
//! case it fails.

mod common;

use common::toolchain::{binding_ready, cluster_and_sentinels, probe, run_suite, shared_lib};
use common::{Link, build_c, describe, repo_dir, run_command};
use std::process::Command;
use std::time::Duration;

/// The whole suite takes a few seconds (the venv a few more); this only catches a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

/// Fails (REDISPOOL_REQUIRE_BINDINGS) or tells why it skips; true when Python can run.
fn python_ready() -> bool {
    binding_ready(
        "python_binding",
        "the Python binding",
        "python3, python3-pytest and python3-venv",
        probe("python3", &["-c", "import pytest, venv, ensurepip"]),
    )
}

/// Runs `python3 -m pytest` on `args` (paths under bindings/python/tests) with the
/// library under test and `envs`; fails on a failure or a skipped test.
fn run_pytest(args: &[&str], envs: &[(&str, String)]) {
    let lib = shared_lib();

    // The struct sizes of the header, which the binding's ctypes layouts must match.
    let layout = build_c("layout", &["tests/c/layout.c"], Link::Shared, &[]);
    let sizes = run_command(&mut Command::new(&layout), Duration::from_secs(30));
    assert!(sizes.status.success(), "{}", describe(&sizes));
    let sizes = String::from_utf8_lossy(&sizes.stdout).trim().to_string();

    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .args(args)
        .current_dir(repo_dir())
        .env("REDISPOOL_C_SIZES", &sizes)
        .env("REDISPOOL_LIB", &lib)
        .env(
            "REDISPOOL_HEADER",
            repo_dir().join("include").join("redispool.h"),
        )
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let what = format!("the Python pytest suite (REDISPOOL_LIB={})", lib.display());
    let output = run_suite(&mut cmd, SUITE_TIMEOUT, &what);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(" passed") && !stdout.contains(" skipped"),
        "no pytest summary line, or a test skipped\n{}",
        describe(&output)
    );
}

const CLUSTER_TESTS: &str = "bindings/python/tests/test_cluster.py";
const SENTINEL_TESTS: &str = "bindings/python/tests/test_sentinel.py";
const TLS_TESTS: &str = "bindings/python/tests/test_tls.py";

#[test]
fn python_pytest_suite() {
    if !python_ready() {
        return;
    }
    run_pytest(
        &[
            "bindings/python/tests",
            &format!("--ignore={CLUSTER_TESTS}"),
            &format!("--ignore={SENTINEL_TESTS}"),
            &format!("--ignore={TLS_TESTS}"),
        ],
        &[],
    );
}

/// Pool over TLS: rediss://, the tls_* options, TLSError (no test may skip).
#[test]
fn python_tls() {
    if !python_ready() {
        return;
    }
    let tls = common::tls::TlsServer::start();
    run_pytest(
        &[TLS_TESTS],
        &[
            ("REDISPOOL_TEST_TLS_ADDR", tls.tls_addr()),
            ("REDISPOOL_TEST_TLS_CERTS", common::tls::certs().path("")),
        ],
    );
}

#[test]
fn python_cluster_and_sentinel() {
    if !python_ready() {
        return;
    }
    let (_cluster, _sentinels, env) = cluster_and_sentinels();
    run_pytest(&[CLUSTER_TESTS, SENTINEL_TESTS], &env);
}
