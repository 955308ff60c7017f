//! The C++ wrapper (include/redispool.hpp) over TLS, through `tests/cpp/tls.cpp`, against a
//! redis-server with `--tls-port` and certificates made at test time (tests/common/tls.rs):
//! a rediss:// URL, the pool_options_t tls fields, POOL_ERR_TLS thrown as an Error, and a
//! Subscriber on a TLS pool.

mod common;

use common::tls::{TlsServer, certs};
use common::{Link, RUN_TIMEOUT, assert_stdout_has, assert_success, build_cxx, describe, run};

#[test]
fn cpp_pool_over_tls() {
    let srv = TlsServer::start();
    let exe = build_cxx("cpp-tls", &["tests/cpp/tls.cpp"], Link::Shared, &[]);
    let dir = certs().path("");
    let output = run(
        &exe,
        &[&srv.tls_addr(), dir.trim_end_matches('/')],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("FAIL"), "{}", describe(&output));
    assert_stdout_has(&output, "14 of 14 checks passed\n");
    assert_stdout_has(
        &output,
        "ok   err.has_value() && err->code() == POOL_ERR_TLS\n",
    );
}
