//! The pool's behaviour proven through the C ABI: C programs under `tests/c/`,
//! built against the freshly built library and run by `cargo test`.
//!
//! - `abi_misuse.c` (against a real redis-server): NULL arguments, invalid
//!   options, double put / foreign / made-up conn handles, close and free
//!   semantics, conn userdata, `pool_stats` struct sizes.
//! - `abi_redis.c` (against two real redis-servers): pool_new_url, pool_conn_command
//!   and RESP2/RESP3 replies, session set-up, handshake refusals, read timeouts, PING check.
//! - `abi_dialer.c` (a socketpair `pool_dial_fn`, no Redis): slow and failing
//!   dials, fast fail, stale conns, cancel tokens, hand-off to waiters, close
//!   waking waiters.
//! - `abi_sticky.c` (against a real redis-server, speaking RESP over
//!   `pool_conn_fd`): sticky pools (one conn borrowed from the parent,
//!   MULTI/EXEC sessions from several threads, waits, bad conn and reset,
//!   close/free giving the conn back, sticky over sticky), single-conn pools,
//!   and their misuse.
//! - `abi_events.c` (against a real redis-server): the notify fd of event loops
//!   (`pool_notify_fd` with `pool_try_get`, epoll wake-up latency), cancelled gets,
//!   leak detection (`pool_leaks`, `leak_suspects`, `late_returns`), and fork():
//!   parent and child never share a conn, a thread busy in the pool never deadlocks
//!   a child, sticky and single pools in a child.
//!
//! Each program checks everything itself and exits 0 only if every check
//! passed; failures are printed with file:line. All also run under valgrind
//! memcheck, with `REDISPOOL_SLOW` widening the programs' time bounds.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{
    Link, RUN_TIMEOUT, RedisServer, build_c, describe, run, run_under_memcheck, valgrind_available,
};

const MISUSE_SRC: &str = "tests/c/abi_misuse.c";
const DIALER_SRC: &str = "tests/c/abi_dialer.c";
const STICKY_SRC: &str = "tests/c/abi_sticky.c";
const REDIS_SRC: &str = "tests/c/abi_redis.c";
const EVENTS_SRC: &str = "tests/c/abi_events.c";

/// Every section of abi_redis.c, in order.
const REDIS_SECTIONS: &[&str] = &[
    "== pool_new_url and pool_conn_command: SET/GET/INCR, binary data, error replies\n",
    "== pool_new_url: malformed and unknown options name the culprit\n",
    "== requirepass and an ACL user: every new conn is authenticated\n",
    "== wrong password: POOL_ERR_HANDSHAKE at once, with the server's text\n",
    "== db and client_name: visible in CLIENT INFO, keys land in that db\n",
    "== RESP3 replies: map, set, double, bool, bignum, verbatim, null, push, attributes\n",
    "== read timeout on a blocking command: POOL_ERR_IO, the conn is bad and removed\n",
    "== ping_after_idle: a long-idle conn that does not answer PONG is replaced\n",
];

/// The two servers abi_redis.c needs: a plain one with DEBUG enabled (for DEBUG PROTOCOL),
/// and one with a password and an ACL user, as its usage line says.
fn redis_servers() -> (RedisServer, RedisServer) {
    let plain = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let auth = RedisServer::start();
    assert_eq!(
        auth.command(&[], &["CONFIG", "SET", "requirepass", "s3cret"]),
        "+OK"
    );
    let acl = [
        "ACL",
        "SETUSER",
        "alice",
        "on",
        ">wonderland",
        "~*",
        "&*",
        "+@all",
    ];
    assert_eq!(auth.command(&["s3cret"], &acl), "+OK");
    (plain, auth)
}

/// Every section of abi_misuse.c, in order: a program that stopped early fails.
const MISUSE_SECTIONS: &[&str] = &[
    "== status strings and version\n",
    "== pool_new with invalid options\n",
    "== NULL arguments\n",
    "== double put, put/remove after remove, foreign and made-up handles\n",
    "== pool_close\n",
    "== conns returned after pool_free\n",
    "== conn userdata\n",
    "== pool_stats struct_size\n",
];

/// Every section of abi_dialer.c, in order.
const DIALER_SECTIONS: &[&str] = &[
    "== slow dial: pool_timeout_ms=100 times out, the dial ends up idle\n",
    "== failing dial: POOL_ERR_DIAL carrying the OS error\n",
    "== dialer_retries: attempts per dial\n",
    "== after pool_size failed dials, gets fail fast until a dial works\n",
    "== peer closed an idle conn: next get drops it as stale\n",
    "== unexpected bytes on an idle conn: next get drops it as stale\n",
    "== cancel while waiting for a turn\n",
    "== cancel while waiting for a slow dial\n",
    "== pool_size 1: pool_put and pool_remove unblock a waiter\n",
    "== pool_close wakes a thread waiting for a turn\n",
    "== pool_close wakes a thread waiting for its dial\n",
];

/// Every section of abi_sticky.c, in order.
const STICKY_SECTIONS: &[&str] = &[
    "== sticky: the first get borrows from the parent, later gets return that conn\n",
    "== sticky: MULTI/EXEC from two threads never interleave, parent busy meanwhile\n",
    "== sticky: while the conn is held gets time out, cancel, would block\n",
    "== sticky: pool_remove -> POOL_ERR_BAD_CONN until pool_sticky_reset\n",
    "== sticky: close and free give the conn back to the parent\n",
    "== sticky over sticky shares one pool\n",
    "== single pool: wraps the conn it consumes, gives it back on close\n",
    "== misuse: foreign conns, double put, wrong pools and NULLs change nothing\n",
];

/// Every section of abi_events.c, in order.
const EVENTS_SECTIONS: &[&str] = &[
    "== notify fd: nonblocking, cloexec, unreadable after a miss, readable on dial, put, close\n",
    "== notify fd: pool_try_get never overtakes a blocked pool_get\n",
    "== notify fd: put on one thread -> epoll_wait wakes -> pool_try_get, latency\n",
    "== cancel while waiting for a turn: prompt, no turn left behind\n",
    "== cancel while waiting for a slow dial: the dial is not wasted\n",
    "== leak detection: pool_new with leak_detection_threshold_ms\n",
    "== leak detection: pool_new_url with ?leak_detection_threshold=100ms\n",
    "== leak detection: misuse\n",
    "== fork: parent and child never share a conn; a conn held across fork stays the parent's\n",
    "== fork: another thread busy in the pool while forking, 5 times\n",
    "== fork: sticky pools borrow a new conn in the child, single pools refuse\n",
];

/// Lines abi_events.c prints once its measurements and fork rounds are done.
const EVENTS_REPORTS: &[&str] = &[
    "notify-to-get latency: p50=",
    "cancel latency: ",
    "fork: parent and child each ran ",
    "fork while busy: 5 of 5 children exited 0",
];

/// Time-bound multiplier for the valgrind runs (the programs' REDISPOOL_SLOW).
const VALGRIND_SLOW: u32 = 5;
/// valgrind runs the Rust runtime and every pool thread serialised and instrumented.
const VALGRIND_TIMEOUT: Duration = Duration::from_secs(600);

/// Asserts the program passed every check and really ran all of them.
fn assert_all_checks_passed(output: &Output, sections: &[&str], min_checks: u64) {
    assert!(
        output.status.success(),
        "C ABI test program failed\n{}",
        describe(output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut from = 0;
    for section in sections {
        match stdout[from..].find(section) {
            Some(i) => from += i + section.len(),
            None => panic!(
                "section {section:?} missing or out of order\n{}",
                describe(output)
            ),
        }
    }
    let passed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OK: ")?.strip_suffix(" checks passed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"OK: N checks passed\" line\n{}", describe(output)));
    assert!(
        passed >= min_checks,
        "only {passed} checks ran, expected at least {min_checks}\n{}",
        describe(output)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("FAILED"),
        "{}",
        describe(output)
    );
}

/// REDISPOOL_SLOW for a valgrind run: at least VALGRIND_SLOW, more if the caller asked.
fn valgrind_slow() -> String {
    let asked = std::env::var("REDISPOOL_SLOW")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    asked.max(VALGRIND_SLOW).to_string()
}

fn run_under_valgrind(exe: &std::path::Path, args: &[&str]) -> Output {
    let slow = valgrind_slow();
    run_under_memcheck(exe, args, &[("REDISPOOL_SLOW", &slow)], VALGRIND_TIMEOUT)
}

fn misuse(link: Link, name: &str) {
    let redis = RedisServer::start();
    let exe = build_c(name, &[MISUSE_SRC], link, &["-pthread"]);
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_all_checks_passed(&output, MISUSE_SECTIONS, 300);
}

#[test]
fn abi_misuse_shared() {
    misuse(Link::Shared, "abi_misuse-shared");
}

#[test]
fn abi_misuse_static() {
    misuse(Link::Static, "abi_misuse-static");
}

#[test]
fn abi_dialer_shared() {
    let exe = build_c(
        "abi_dialer-shared",
        &[DIALER_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[], &[], RUN_TIMEOUT * 2);
    assert_all_checks_passed(&output, DIALER_SECTIONS, 100);
}

#[test]
fn abi_sticky_shared() {
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_sticky-shared",
        &[STICKY_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_all_checks_passed(&output, STICKY_SECTIONS, 700);
}

#[test]
fn abi_redis_shared() {
    let (plain, auth) = redis_servers();
    let exe = build_c(
        "abi_redis-shared",
        &[REDIS_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&plain.addr(), &auth.addr()], &[], RUN_TIMEOUT);
    assert_all_checks_passed(&output, REDIS_SECTIONS, 250);
}

#[test]
fn abi_redis_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let (plain, auth) = redis_servers();
    let exe = build_c(
        "abi_redis-valgrind",
        &[REDIS_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[&plain.addr(), &auth.addr()]);
    assert_all_checks_passed(&output, REDIS_SECTIONS, 250);
}

#[test]
fn abi_misuse_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_misuse-valgrind",
        &[MISUSE_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[&redis.addr()]);
    assert_all_checks_passed(&output, MISUSE_SECTIONS, 300);
}

#[test]
fn abi_dialer_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let exe = build_c(
        "abi_dialer-valgrind",
        &[DIALER_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[]);
    assert_all_checks_passed(&output, DIALER_SECTIONS, 100);
}

#[test]
fn abi_sticky_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_sticky-valgrind",
        &[STICKY_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[&redis.addr()]);
    assert_all_checks_passed(&output, STICKY_SECTIONS, 700);
}

/// abi_events.c passed, and printed its measurements.
fn assert_events_passed(output: &Output) {
    assert_all_checks_passed(output, EVENTS_SECTIONS, 390);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for report in EVENTS_REPORTS {
        assert!(
            stdout.contains(report),
            "no {report:?} line\n{}",
            describe(output)
        );
    }
}

#[test]
fn abi_events_shared() {
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_events-shared",
        &[EVENTS_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_events_passed(&output);
}

#[test]
fn abi_events_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_events-valgrind",
        &[EVENTS_SRC],
        Link::Shared,
        &["-pthread"],
    );
    // REDISPOOL_VALGRIND tells the forked children (when valgrind.h was not found at build
    // time) to leave through exec, skipping the leak check a forked child cannot pass.
    let slow = valgrind_slow();
    let envs = [
        ("REDISPOOL_SLOW", slow.as_str()),
        ("REDISPOOL_VALGRIND", "1"),
    ];
    let output = run_under_memcheck(&exe, &[&redis.addr()], &envs, VALGRIND_TIMEOUT);
    assert_events_passed(&output);
}
