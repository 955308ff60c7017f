//! The C examples are real programs and double as tests: each is built against
//! the freshly built library (shared and static) and run against a real
//! redis-server. The header is also checked to compile cleanly as C11 and C++17.

mod common;

use common::{
    Link, RUN_TIMEOUT, RedisServer, assert_stdout_has, assert_success, build_c, build_cxx,
    describe, run, stdout_of,
};
use std::fs;
use std::process::Output;

fn run_basic(link: Link, name: &str) {
    let redis = RedisServer::start();
    let exe = build_c(name, &["examples-c/basic.c"], link, &[]);
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_success(&output);

    let pongs = stdout_of(&output).matches("PONG\n").count();
    assert_eq!(pongs, 2, "{}", describe(&output));
    // SET, GET and INCR through pool_conn_command, on a fresh server.
    assert_stdout_has(&output, "OK\nhello from redispool\n(integer) 1\n");
    // One dial for the first get, a reuse of that same conn for the second.
    assert_stdout_has(
        &output,
        "after first put: hits=0 misses=1 total_conns=1 idle_conns=1\n",
    );
    assert_stdout_has(
        &output,
        "after second put: hits=1 misses=1 total_conns=1 idle_conns=1\n",
    );
    assert_stdout_has(&output, ": hit\n");
}

#[test]
fn basic_shared() {
    run_basic(Link::Shared, "basic-shared");
}

#[test]
fn basic_static() {
    run_basic(Link::Static, "basic-static");
}

#[test]
fn basic_reports_dial_failure_with_the_address() {
    // Nothing listens on the port: the first get must fail to dial and the example must
    // say so and exit non-zero. The port is held (bound, never listening) until the end.
    let (_held, port) = common::refused_port();
    let addr = format!("127.0.0.1:{port}");
    let exe = build_c(
        "basic-dial-failure",
        &["examples-c/basic.c"],
        Link::Shared,
        &[],
    );
    let output = run(&exe, &[&addr], &[], RUN_TIMEOUT);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pool_get: "), "{}", describe(&output));
    assert!(stderr.contains(&addr), "{}", describe(&output));
    let stdout = stdout_of(&output);
    assert!(!stdout.contains("PONG"), "{}", describe(&output));
}

fn run_threads(link: Link, name: &str, args: &[&str], expected_gets: u64) {
    let redis = RedisServer::start();
    let exe = build_c(name, &["examples-c/threads.c"], link, &["-pthread"]);
    let addr = redis.addr();
    let mut argv = vec![addr.as_str()];
    argv.extend_from_slice(args);
    let output = run(&exe, &argv, &[], RUN_TIMEOUT);
    assert_success(&output);

    assert_stdout_has(&output, " failures=0\n");
    assert_stdout_has(&output, " pending_requests=0\n");
    assert_stdout_has(&output, "\nOK\n");

    // The program checks these itself; check them here too so a program that
    // forgot to would not pass.
    let stdout = stdout_of(&output);
    let field = |key: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in output\n{}", describe(&output)))
    };
    assert_eq!(field("hits") + field("misses"), expected_gets);
    assert!(field("total_conns") <= 4, "{}", describe(&output));
    assert!(field("misses") >= 1, "{}", describe(&output));
}

#[test]
fn threads_shared_defaults() {
    run_threads(Link::Shared, "threads-shared", &[], 8 * 200);
}

#[test]
fn threads_static_more_threads() {
    run_threads(Link::Static, "threads-static", &["16", "100"], 16 * 100);
}

#[test]
fn transaction_on_a_sticky_pool_is_atomic_across_threads() {
    let redis = RedisServer::start();
    let exe = build_c(
        "transaction-shared",
        &["examples-c/transaction.c"],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&redis.addr(), "4", "150"], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert_stdout_has(&output, "threads=4 transactions=600 ");
    assert_stdout_has(&output, "counter=1200 (expected 1200)\n");
    // The sticky pool holds exactly one conn of the parent (the GET afterwards dials a
    // second), and gives it back on close.
    assert_stdout_has(&output, " parent conns=1\n");
    assert_stdout_has(
        &output,
        "parent idle conns: 1 before closing the sticky pool, 2 after\n",
    );
    assert_stdout_has(&output, "every transaction was atomic\n");
}

/// examples-c/pipeline.c: 100 SETs + 100 GETs in one pipeline, a pipelined
/// MULTI/INCR/INCR/EXEC, and a BLPOP waiting 1 s through pool_conn_command_ex on a
/// pool whose read timeout is 200 ms; the conn goes back to the pool after it all.
fn run_pipeline(link: Link, name: &str) {
    let redis = RedisServer::start();
    let exe = build_c(name, &["examples-c/pipeline.c"], link, &[]);
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_success(&output);
    // The program checks these itself; checked here too so a program that forgot would not pass.
    assert_stdout_has(
        &output,
        "pipeline: commands=200 replies=200 sets_ok=100 gets_ok=100\n",
    );
    assert_stdout_has(&output, "transaction: exec=[1, 2]\n");
    assert_stdout_has(
        &output,
        "blpop: status=ok reply=nil timeout_ms=3000 read_timeout_ms=1000\n",
    );
    assert_stdout_has(&output, "after put: total_conns=1 idle_conns=1\n");
    assert_stdout_has(&output, "\nOK\n");
}

/// examples-c/pubsub.c: SUBSCRIBE + PSUBSCRIBE on a subscriber, messages received in a
/// poll() loop on its fd, and resubscription after CLIENT KILL reported by
/// POOL_MSG_RESUBSCRIBED.
fn run_pubsub(link: Link, name: &str, valgrind: bool) {
    let redis = RedisServer::start();
    let exe = build_c(name, &["examples-c/pubsub.c"], link, &[]);
    let output = if valgrind {
        common::run_under_memcheck(&exe, &[&redis.addr()], &[], RUN_TIMEOUT * 2)
    } else {
        run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT)
    };
    assert_success(&output);
    assert_stdout_has(&output, "message channel=news payload=hello\n");
    assert_stdout_has(
        &output,
        "pmessage pattern=sport.* channel=sport.ski payload=fast\n",
    );
    assert_stdout_has(&output, "message channel=news payload=bye\n");
    assert_stdout_has(&output, "resubscribed\n");
    assert_stdout_has(&output, "message channel=news payload=again\n");
    assert_stdout_has(&output, "pubsub: resubscribes=1\n");
    assert_stdout_has(&output, "\nOK\n");
}

#[test]
fn pubsub_shared() {
    run_pubsub(Link::Shared, "pubsub-shared", false);
}

#[test]
fn pubsub_static() {
    run_pubsub(Link::Static, "pubsub-static", false);
}

#[test]
fn pubsub_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    run_pubsub(Link::Shared, "pubsub-valgrind", true);
}

#[test]
fn pipeline_shared() {
    run_pipeline(Link::Shared, "pipeline-shared");
}

#[test]
fn pipeline_static() {
    run_pipeline(Link::Static, "pipeline-static");
}

#[test]
fn pipeline_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "pipeline-valgrind",
        &["examples-c/pipeline.c"],
        Link::Shared,
        &[],
    );
    let output = common::run_under_memcheck(&exe, &[&redis.addr()], &[], RUN_TIMEOUT * 2);
    assert_success(&output);
    assert_stdout_has(
        &output,
        "pipeline: commands=200 replies=200 sets_ok=100 gets_ok=100\n",
    );
    assert_stdout_has(&output, "\nOK\n");
}

#[test]
fn basic_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c("basic-valgrind", &["examples-c/basic.c"], Link::Shared, &[]);
    // valgrind is slow to start on the Rust runtime; stay generous.
    let output = common::run_under_memcheck(&exe, &[&redis.addr()], &[], RUN_TIMEOUT * 2);
    assert_success(&output);
    assert_stdout_has(&output, "after second put: hits=1 misses=1");
}

#[test]
fn shared_example_depends_on_the_soname() {
    // Programs must record libredispool.so.<major>, not the unversioned name,
    // so that they survive compatible upgrades.
    let exe = build_c("basic-soname", &["examples-c/basic.c"], Link::Shared, &[]);
    let output = run(
        "readelf",
        &["-d", exe.to_str().expect("UTF-8 path")],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    let soname = format!("[libredispool.so.{}]", env!("CARGO_PKG_VERSION_MAJOR"));
    assert_stdout_has(&output, &soname);
}

/// A translation unit that includes nothing but the header (twice, to check the
/// include guard) and uses a few of its declarations. Valid as C11 and C++17.
const HEADER_TU: &str = r#"#include "redispool.h"
#include "redispool.h"

#include <stdio.h>

/* Taking addresses makes the compiler check each declaration and the linker
   check that the library exports it. */
typedef void (*any_fn)(void);
static const any_fn symbols[] = {
    (any_fn)pool_options_init,
    (any_fn)pool_new,
    (any_fn)pool_get,
    (any_fn)pool_put,
    (any_fn)pool_status_str,
};

int main(void)
{
    pool_options_t opts;
    pool_options_init(&opts);
    if (opts.struct_size != sizeof opts) {
        fprintf(stderr, "struct_size %zu, sizeof %zu\n", (size_t)opts.struct_size, sizeof opts);
        return 1;
    }
    pool_t *pool = NULL;
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err.code = POOL_OK;
    (void)pool;
    (void)conn;
    (void)err;
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        if (symbols[i] == NULL)
            return 1;
    }
    const char *ok = pool_status_str(POOL_OK);
    if (ok == NULL || pool_status_str(POOL_ERR_TIMEOUT) == NULL)
        return 1;
    printf("%s\n", ok);
    return 0;
}
"#;

fn check_header(file: &str, build: fn(&str, &[&str], Link, &[&str]) -> std::path::PathBuf) {
    let src = common::c_tests_dir().join(file);
    fs::write(&src, HEADER_TU).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
    let exe_name = file.replace('.', "-");
    let exe = build(
        &exe_name,
        &[src.to_str().expect("UTF-8 path")],
        Link::Shared,
        &[],
    );
    let output = run(&exe, &[], &[], RUN_TIMEOUT);
    assert_success(&output);
    // pool_status_str(POOL_OK) printed by the TU: a non-empty static string.
    assert!(stdout_of(&output).trim().len() > 1, "{}", describe(&output));
}

#[test]
fn header_compiles_as_c11() {
    check_header("header_check.c", build_c);
}

#[test]
fn header_compiles_as_cxx17() {
    check_header("header_check.cpp", build_cxx);
}

/// The number after `key=` in a program's stdout (the first such word).
fn event_loop_field(output: &Output, key: &str) -> u64 {
    stdout_of(output)
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in output\n{}", describe(output)))
}

#[test]
fn event_loop_serves_every_request_through_try_get_and_the_notify_fd() {
    let redis = RedisServer::start();
    let exe = build_c(
        "event-loop-shared",
        &["examples-c/event_loop.c"],
        Link::Shared,
        &[],
    );
    let output = run(&exe, &[&redis.addr(), "3000", "64"], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert_stdout_has(&output, "served=3000 errors=0\n");

    // The timings are the point of the example but depend on the machine: shown, not checked.
    let stdout = stdout_of(&output);
    if let Some(line) = stdout.lines().find(|l| l.starts_with("max_try_get_us=")) {
        println!("event_loop timings: {line}");
    }

    let field = |key: &str| event_loop_field(&output, key);
    // A bare HOST:PORT gets a pool of 4, far fewer than the 64 requests in flight.
    let pool_size = field("pool_size");
    assert_eq!(pool_size, 4, "{}", describe(&output));
    // Requests really queued for conns, and conns reached them through the notify fd.
    assert!(field("max_queued") > 0, "{}", describe(&output));
    assert!(field("would_block") > 0, "{}", describe(&output));
    assert!(field("notify_wakeups") > 0, "{}", describe(&output));
    // Never more conns than the pool allows: at once in the loop's hands, in the pool
    // at the end, and ever dialed (no conn was closed, so each dial is a conn still there).
    let max_in_use = field("max_in_use");
    assert!(
        (1..=pool_size).contains(&max_in_use),
        "{}",
        describe(&output)
    );
    assert!(field("total_conns") <= pool_size, "{}", describe(&output));
    assert!(field("dials") <= pool_size, "{}", describe(&output));
    // Every request got its conn from exactly one successful pool_try_get: a hit.
    assert_eq!(field("hits"), 3000, "{}", describe(&output));
    // Commands and pipelines went through pool_conn_start / pool_conn_finish: every
    // fourth request a SET + GET + PING pipeline whose GET read back the value it set,
    // each finished at least once.
    assert_eq!(field("commands"), 2250, "{}", describe(&output));
    assert_eq!(field("pipelines"), 750, "{}", describe(&output));
    assert!(field("finish_calls") >= 3000, "{}", describe(&output));
}

/// The same event loop over TLS (a rediss:// URL): pool_conn_start / pool_conn_finish do
/// the I/O (and the TLS), the fd only says when.
#[test]
fn event_loop_over_tls_serves_every_request() {
    let srv = common::tls::TlsServer::start();
    let exe = build_c(
        "event-loop-tls",
        &["examples-c/event_loop.c"],
        Link::Shared,
        &[],
    );
    let url = format!(
        "rediss://{}/?tls_ca_file={}&pool_size=4",
        srv.tls_addr(),
        common::tls::certs().path("ca.pem")
    );
    let output = run(&exe, &[&url, "2000", "64"], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert_stdout_has(&output, "served=2000 errors=0\n");
    assert!(
        event_loop_field(&output, "notify_wakeups") > 0,
        "{}",
        describe(&output)
    );
    assert_eq!(
        event_loop_field(&output, "hits"),
        2000,
        "{}",
        describe(&output)
    );
    // Every conn was a TLS conn of the server's TLS port.
    assert!(
        event_loop_field(&output, "dials") <= 4,
        "{}",
        describe(&output)
    );
    assert_eq!(
        event_loop_field(&output, "pipelines"),
        500,
        "{}",
        describe(&output)
    );
}

#[test]
fn event_loop_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "event-loop-valgrind",
        &["examples-c/event_loop.c"],
        Link::Shared,
        &[],
    );
    let output =
        common::run_under_memcheck(&exe, &[&redis.addr(), "300", "64"], &[], RUN_TIMEOUT * 2);
    assert_success(&output);
    assert_stdout_has(&output, "served=300 errors=0\n");
    assert!(
        event_loop_field(&output, "notify_wakeups") > 0,
        "{}",
        describe(&output)
    );
    assert_eq!(
        event_loop_field(&output, "pipelines"),
        75,
        "{}",
        describe(&output)
    );
}

/// hiredis on pooled conns (examples-c/hiredis.c, Debian's libhiredis-dev):
/// 8 threads x 2000 SET + GET rounds on a pool of 4, every reply the right
/// one, every conn reused, none lost or found stale.
#[test]
fn hiredis_on_pooled_conns() {
    if !std::path::Path::new("/usr/include/hiredis/hiredis.h").is_file() {
        if std::env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
            panic!(
                "hiredis is not installed and REDISPOOL_REQUIRE_BINDINGS is set: \
                 apt-get install libhiredis-dev (scripts/test.sh does)"
            );
        }
        eprintln!(
            "SKIPPED hiredis_on_pooled_conns: no /usr/include/hiredis/hiredis.h \
             (apt-get install libhiredis-dev); set REDISPOOL_REQUIRE_BINDINGS=1 to make \
             this a failure"
        );
        return;
    }
    let repo = common::repo_dir();
    let lib_dir = common::shared_lib_dir();
    let exe = common::c_tests_dir().join("hiredis-example");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = std::process::Command::new(cc);
    // The libraries after the source, so that --as-needed linkers keep them.
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg(format!("-I{}", repo.join("include").display()))
        .arg(repo.join("examples-c").join("hiredis.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lredispool")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lhiredis", "-pthread"]);
    let built = common::run_command(&mut cmd, RUN_TIMEOUT);
    assert!(built.status.success(), "{cmd:?}\n{}", describe(&built));

    let redis = RedisServer::start();
    let output = run(&exe, &[&redis.addr(), "8", "2000"], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert_stdout_has(
        &output,
        "threads=8 rounds=16000 commands=32000 ok=16000 wrong_replies=0 errors=0\n",
    );
    assert_stdout_has(&output, " removed=0 stale=0 ");
    assert_stdout_has(&output, "\nOK\n");
    // Checked by the program too; here so that a program that forgot would not pass.
    let stdout = stdout_of(&output);
    let field = |key: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in output\n{}", describe(&output)))
    };
    let conns = field("conns");
    assert!((1..=4).contains(&conns), "{}", describe(&output));
    assert_eq!(field("misses"), conns, "{}", describe(&output));
    assert_eq!(field("hits") + field("misses"), 16000);
    assert!(field("min_uses_per_conn") >= 2, "{}", describe(&output));
}

/// The first C program of README.md, as printed there: the first ```c block
/// under "## A first program in C".
fn readme_c_program() -> String {
    let readme = fs::read_to_string(common::repo_dir().join("README.md")).expect("read README.md");
    let section = readme
        .split_once("\n## A first program in C\n")
        .unwrap_or_else(|| panic!("README.md has no \"## A first program in C\" section"))
        .1;
    let code = section
        .split_once("```c\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no ```c block in README.md's first program section"))
        .0;
    format!("{code}\n")
}

/// The README's C program compiles (with the tests' warnings as errors) and does
/// what the page says: INCR through a pooled conn, and a message on failure.
#[test]
fn readme_c_program_runs() {
    let source = common::c_tests_dir().join("readme_first_program.c");
    fs::write(&source, readme_c_program())
        .unwrap_or_else(|e| panic!("write {}: {e}", source.display()));
    let source = source.to_str().expect("UTF-8 path");
    for link in [Link::Shared, Link::Static] {
        let name = format!("readme-first-program-{link:?}").to_lowercase();
        let exe = build_c(&name, &[source], link, &[]);
        let redis = RedisServer::start();
        let url = format!("redis://{}/0?pool_size=4", redis.addr());
        for visits in 1..=2 {
            let output = run(&exe, &[&url], &[], RUN_TIMEOUT);
            assert_success(&output);
            assert_eq!(
                stdout_of(&output),
                format!("visits: {visits}\n"),
                "{}",
                describe(&output)
            );
        }
        // Refused for as long as `_held` lives: no server another test starts takes it.
        let (_held, port) = common::refused_port();
        let down = format!("redis://127.0.0.1:{port}?dialer_retries=1");
        let output = run(&exe, &[&down], &[], RUN_TIMEOUT);
        assert!(!output.status.success(), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("redispool: "), "{}", describe(&output));
        assert!(stderr.contains("127.0.0.1:"), "{}", describe(&output));
    }
}

/// examples-c/libevent.c, linked with Debian's libevent (libevent-dev, installed by
/// scripts/test.sh): on a missing header the test fails under REDISPOOL_REQUIRE_BINDINGS.
fn build_libevent_example(name: &str) -> Option<std::path::PathBuf> {
    if !std::path::Path::new("/usr/include/event2/event.h").is_file() {
        assert!(
            std::env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_none(),
            "libevent-dev is not installed (./scripts/test.sh installs it)"
        );
        eprintln!("libevent-dev not installed: skipping (./scripts/test.sh installs it)");
        return None;
    }
    Some(build_c(
        name,
        &["examples-c/libevent.c"],
        Link::Shared,
        &["-Wl,--no-as-needed", "-levent"],
    ))
}

/// Checks libevent.c's report: every request served right, most of them queued for a
/// conn (far more requests than conns) and started commands that had to wait for the fd.
fn check_libevent(output: &Output, requests: u64, pool_size: u64) {
    assert_success(output);
    assert_stdout_has(
        output,
        &format!("requests={requests} ok={requests} errors=0 "),
    );
    let field = |key: &str| event_loop_field(output, key);
    assert!(
        (1..=pool_size).contains(&field("max_in_flight")),
        "{}",
        describe(output)
    );
    assert!(field("would_block") > 0, "{}", describe(output));
    assert!(field("notify_wakeups") > 0, "{}", describe(output));
    assert!(field("finish_calls") >= requests, "{}", describe(output));
}

/// Thousands of commands (and pipelines) at once on one libevent thread through
/// pool_try_get, pool_notify_fd and pool_conn_start / pool_conn_finish.
#[test]
fn libevent_example_serves_thousands_of_commands_on_one_thread() {
    let Some(exe) = build_libevent_example("libevent-shared") else {
        return;
    };
    let redis = RedisServer::start();
    let url = format!("redis://{}/?pool_size=16", redis.addr());
    let output = run(&exe, &[&url, "5000"], &[], RUN_TIMEOUT);
    check_libevent(&output, 5000, 16);
    println!("{}", stdout_of(&output));
}

#[test]
fn libevent_example_over_tls() {
    let Some(exe) = build_libevent_example("libevent-tls") else {
        return;
    };
    let srv = common::tls::TlsServer::start();
    let url = format!(
        "rediss://{}/?tls_ca_file={}&pool_size=16",
        srv.tls_addr(),
        common::tls::certs().path("ca.pem")
    );
    let output = run(&exe, &[&url, "3000"], &[], RUN_TIMEOUT);
    check_libevent(&output, 3000, 16);
}

#[test]
fn libevent_example_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let Some(exe) = build_libevent_example("libevent-valgrind") else {
        return;
    };
    let redis = RedisServer::start();
    let url = format!("redis://{}/?pool_size=8", redis.addr());
    let output = common::run_under_memcheck(&exe, &[&url, "400"], &[], RUN_TIMEOUT * 2);
    check_libevent(&output, 400, 8);
}
