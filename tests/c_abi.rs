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
//! - `abi_pubsub.c` (against a real redis-server it kills and restarts): pool_subscriber_t,
//!   messages in RESP2 and RESP3, the pollable fd (also edge-triggered), ping,
//!   resubscription after CLIENT KILL and after a server restart, a closed pool, misuse.
//! - `abi_tls.c` (against redis-servers with `--tls-port`, certificates made at test
//!   time): TLS options and rediss://, every verification and configuration error, mutual
//!   TLS, pool_conn_read / pool_conn_write, the health check, try_get, cancel, fork.
//! - `abi_hostile.c` (against a real redis-server): a table of hostile calls covering every
//!   function of the header (NULLs, zero / negative / huge sizes and timeouts, out-of-range
//!   options, made-up and stale handles, foreign conns, use after close and after free,
//!   malformed and oversized URLs), each with its documented code and message, and the pools
//!   unchanged afterwards; the test checks that every header function has rows.
//!
//! Each program checks everything itself and exits 0 only if every check
//! passed; failures are printed with file:line. All also run under valgrind
//! memcheck, with `REDISPOOL_SLOW` widening the programs' time bounds.
//! `c_tests_under_asan_ubsan` also builds all of them with AddressSanitizer + UBSan
//! (and LeakSanitizer where ptrace allows it).

mod common;

use std::process::Output;
use std::time::Duration;

use common::tls::{TlsServer, certs};
use common::{
    Link, RUN_TIMEOUT, RedisServer, assert_all_checks_passed, build_c, describe, run,
    run_under_memcheck, valgrind_available,
};

const MISUSE_SRC: &str = "tests/c/abi_misuse.c";
const DIALER_SRC: &str = "tests/c/abi_dialer.c";
const STICKY_SRC: &str = "tests/c/abi_sticky.c";
const REDIS_SRC: &str = "tests/c/abi_redis.c";
const EVENTS_SRC: &str = "tests/c/abi_events.c";
const PUBSUB_SRC: &str = "tests/c/abi_pubsub.c";

/// Every section of abi_pubsub.c, in order.
const PUBSUB_SECTIONS: &[&str] = &[
    "== subscribe, psubscribe, ssubscribe: messages and confirmations (RESP2)\n",
    "== the same in RESP3 (pushes)\n",
    "== the pollable fd: readable while receive has something\n",
    "== ping start / finish / cancel: never waiting, misuse, a paused server (RESP2)\n",
    "== ping start / finish in RESP3\n",
    "== the pollable fd, edge-triggered: every message of a burst (RESP2)\n",
    "== the pollable fd, edge-triggered, in RESP3\n",
    "== CLIENT KILL: resubscribed, the gap reported, nothing subscribed lost (RESP2)\n",
    "== CLIENT KILL in RESP3\n",
    "== server restart: dial errors while down, then resubscribed (RESP2)\n",
    "== server restart in RESP3\n",
    "== a closed or freed pool: POOL_ERR_CLOSED\n",
    "== misuse: NULLs, no names, made-up handles\n",
    "== RESP3 pushes on a normal conn: client tracking invalidations kept and delivered\n",
    "== raw I/O on the fd: pool_conn_session_changed has the conn restored\n",
];
const PUBSUB_MIN_CHECKS: u64 = 250;
const TLS_SRC: &str = "tests/c/abi_tls.c";
const NONBLOCKING_SRC: &str = "tests/c/abi_nonblocking.c";

/// Every section of abi_nonblocking.c, in order.
const NONBLOCKING_SECTIONS: &[&str] = &[
    "== non-blocking: 64 conns on one thread, a value larger than the socket\n",
    "== non-blocking: a pipeline of 200, an error reply in its place\n",
    "== non-blocking: a deadline passes between start and finish\n",
    "== non-blocking: misuse gets clear codes, nothing is lost\n",
    "== non-blocking: pushes right behind the last reply are kept\n",
    "== non-blocking over TLS: 64 conns on one thread, a value larger than the socket\n",
    "== non-blocking over TLS: a pipeline of 200, an error reply in its place\n",
    "== non-blocking over TLS: a deadline passes between start and finish\n",
    "== non-blocking over TLS: misuse gets clear codes, nothing is lost\n",
    "== non-blocking over TLS: pushes right behind the last reply are kept\n",
];

/// Every section of abi_tls.c, in order.
const TLS_SECTIONS: &[&str] = &[
    "== TLS: pool_options_t tls fields, commands, pipeline, a reply over many records\n",
    "== TLS: unknown CA, wrong host name, expired, plain port, no client certificate\n",
    "== TLS: mutual TLS with a client certificate\n",
    "== TLS: configuration errors come from pool_new, never a key in a message\n",
    "== TLS: pool_conn_read / pool_conn_write, blocking and non-blocking\n",
    "== TLS: health check: a killed conn is never handed out, a healthy one is reused\n",
    "== TLS: pool_try_get and pool_notify_fd, a cancelled get\n",
    "== TLS: fork: the child drops the parent's sessions, dials its own\n",
    "== TLS: a subscriber: messages over many records, its fd, resubscribed after a kill\n",
    "== TLS: a subscriber on an edge-triggered epoll: every message of a burst\n",
];

/// Every section of abi_redis.c, in order.
const REDIS_SECTIONS: &[&str] = &[
    "== pool_new_url and pool_conn_command: SET/GET/INCR, binary data, error replies\n",
    "== pool_new_url: malformed and unknown options name the culprit\n",
    "== requirepass and an ACL user: every new conn is authenticated\n",
    "== wrong password: POOL_ERR_HANDSHAKE at once, with the server's text\n",
    "== db and client_name: visible in CLIENT INFO, keys land in that db\n",
    "== RESP3 replies: map, set, double, bool, bignum, verbatim, null, push, attributes\n",
    "== RESP3 client tracking: an invalidation push is never taken for a command's reply\n",
    "== read timeout on a blocking command: POOL_ERR_IO, the conn is bad and removed\n",
    "== max_reply_bytes / max_reply_elements: a reply past them is POOL_ERR_PROTOCOL\n",
    "== ping_after_idle: a long-idle conn that does not answer PONG is replaced\n",
    "== RESP3 CLIENT TRACKING BCAST: pushes never extend a command's read timeout\n",
    "== ping_after_idle: the PING check ends by the get's pool_timeout\n",
    "== overtake_window: a get may take a conn ahead of queued gets, for a bounded time\n",
    "== health_check_bypass: no peek for a conn used a moment ago, unless its fd was lent\n",
    "== pool_conn_command_ex: a blocking command with its own read timeout\n",
    "== pool_conn_pipeline: replies in place, MULTI/EXEC, WATCH's nil, a failure mid-way, 2^20\n",
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
    "== racing puts and removes of one handle; stale handle of a reused slot\n",
    "== pool_close\n",
    "== conns returned after pool_free\n",
    "== a pool freed while another thread keeps its count from its last put\n",
    "== pool_free while calls are in flight: blocked gets and dials return POOL_ERR_CLOSED\n",
    "== pool handles: a second pool_free, calls after it and made-up handles are refused\n",
    "== calls racing with pool_free get in or are refused\n",
    "== cluster handles: a second pool_cluster_free, calls after it and made-up handles are refused\n",
    "== cluster calls racing with pool_cluster_free get in or are refused\n",
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
    "== silent peer during set-up: dial_timeout_ms bounds it with read_timeout_ms 0\n",
    "== silent peer during set-up: pool_close ends the dial at once\n",
    "== dialer_userdata_free: called once per pool, after its last dial returned\n",
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

/// abi_pubsub.c kills its server and starts another on the same port (it shuts that one
/// down itself); the RedisServer here only provides the port and the first server.
#[test]
fn abi_pubsub_shared() {
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_pubsub-shared",
        &[PUBSUB_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    check_pubsub(&output);
}

#[test]
fn abi_pubsub_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_pubsub-valgrind",
        &[PUBSUB_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[&redis.addr()]);
    check_pubsub(&output);
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

// ---------------------------------------------------------------------------
// abi_hostile.c: hostile input through every exported function
// ---------------------------------------------------------------------------

const HOSTILE_SRC: &str = "tests/c/abi_hostile.c";

/// Every section of abi_hostile.c, in order.
const HOSTILE_SECTIONS: &[&str] = &[
    "== pure functions: version, status strings, options_init, cancel tokens, reply_free\n",
    "== conn handles: NULL, made-up, stale (double put, put/remove after remove), foreign\n",
    "== pool_conn_command: reply_out, argc 0 / negative / huge, NULL argv entries, argvlen\n",
    "== pool_new: NULLs, struct_size, negative, out-of-range and huge option values\n",
    "== pool_new_url: malformed, hostile and oversized URLs\n",
    "== gets: NULLs, timeouts INT64_MIN / INT64_MAX, cancel tokens, a full pool\n",
    "== put, remove, close_conn: NULLs, double put / remove, hostile reasons\n",
    "== sticky and single pools: foreign conns, double remove, hostile reasons, close\n",
    "== pool_leaks, pool_notify_fd, pool_stats, pool_len, pool_close, pool_free\n",
    "== cluster handles: NULLs, bad options and URLs, foreign conns, no cluster to ask\n",
    "== sentinel pools: NULLs, bad options, pools that are not sentinel pools\n",
    "== after pool_close: gets fail, conns still out come back\n",
    "== after pool_free: only its own conns come back, and they do\n",
];

/// The table rows abi_hostile.c has at least, and the checks they make.
const HOSTILE_MIN_CASES: u64 = 737;
const HOSTILE_MIN_CHECKS: u64 = 19_200;

/// Every function `include/redispool.h` declares: a line at the top level (not indented,
/// not a typedef, comment or macro) naming `pool_*(`.
fn header_functions() -> Vec<String> {
    let path = common::repo_dir().join("include").join("redispool.h");
    let header =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut names: Vec<String> = header
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()) && !l.starts_with("typedef"))
        .filter_map(|l| {
            let open = l.find('(')?;
            let start = l[..open].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            let name = &l[start + 1..open];
            name.starts_with("pool_").then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(
        names.len() >= 30,
        "only {} functions found in {}: {names:?}",
        names.len(),
        path.display()
    );
    names
}

/// abi_hostile.c passed every check, ran every row, and has rows for every function of
/// the header (so a new function cannot be added without hostile cases).
fn assert_hostile_passed(output: &Output) {
    assert_all_checks_passed(output, HOSTILE_SECTIONS, HOSTILE_MIN_CHECKS);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let cases: u64 = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("hostile: ")?
                .split(" cases")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no \"hostile: N cases\" line\n{}", describe(output)));
    assert!(
        cases >= HOSTILE_MIN_CASES,
        "only {cases} cases ran, expected at least {HOSTILE_MIN_CASES}\n{}",
        describe(output)
    );
    let covered: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("covers:"))
        .unwrap_or_else(|| panic!("no \"covers:\" line\n{}", describe(output)))
        .split_whitespace()
        .collect();
    let missing: Vec<String> = header_functions()
        .into_iter()
        .filter(|f| !covered.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "abi_hostile.c has no rows for {missing:?} (declared in include/redispool.h)"
    );
}

#[test]
fn abi_hostile_shared() {
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_hostile-shared",
        &[HOSTILE_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_hostile_passed(&output);
}

#[test]
fn abi_hostile_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_c(
        "abi_hostile-valgrind",
        &[HOSTILE_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let output = run_under_valgrind(&exe, &[&redis.addr()]);
    assert_hostile_passed(&output);
}

// ---------------------------------------------------------------------------
// Every C test program built with AddressSanitizer + UBSan
// ---------------------------------------------------------------------------

/// Compiler flags of the sanitizer builds. Only the C programs are instrumented: the
/// library is the ordinary shared one, whose allocations ASan still sees through malloc.
const SANITIZE_FLAGS: &[&str] = &[
    "-pthread",
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
];

/// The exit status ASan (and LeakSanitizer) give a program they caught.
const ASAN_EXIT_CODE: i32 = 86;

/// ASan slows the programs down about twice: widen their time bounds as much.
const ASAN_SLOW: u32 = 2;

/// What a sanitizer prints when it catches something (with halt_on_error / exitcode the
/// status says so too, but a forked child's report would otherwise only reach stderr).
const SANITIZER_REPORTS: &[&str] = &[
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
];

/// Compiles and runs a tiny program with `flags` and `ASAN_OPTIONS=options`; its output.
fn sanitizer_probe(name: &str, source: &str, flags: &[&str], options: &str) -> Option<Output> {
    let dir = common::c_tests_dir();
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = std::process::Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .ok()?;
    if !built.status.success() {
        eprintln!(
            "cc {flags:?} failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        return None;
    }
    Some(run(&exe, &[], &[("ASAN_OPTIONS", options)], RUN_TIMEOUT))
}

/// Whether the compiler can build and run an ASan + UBSan program (gcc needs libasan and
/// libubsan: on Debian they come with gcc, through libgcc-N-dev).
fn sanitizers_available() -> bool {
    let source = "#include <stdio.h>\nint main(void) { puts(\"ok\"); return 0; }\n";
    sanitizer_probe("asan-probe", source, SANITIZE_FLAGS, "detect_leaks=0")
        .is_some_and(|o| o.status.success() && o.stdout.starts_with(b"ok"))
}

/// Whether LeakSanitizer works here: it stops the world with ptrace, which some
/// containers (and any run under a tracer) forbid. A leaking program must be caught.
fn leak_sanitizer_works() -> bool {
    let source = "#include <stdlib.h>\nvoid *volatile keep;\n\
                  int main(void) { keep = malloc(32); keep = 0; return 0; }\n";
    let options = format!("detect_leaks=1:exitcode={ASAN_EXIT_CODE}");
    match sanitizer_probe("lsan-probe", source, SANITIZE_FLAGS, &options) {
        Some(o) => {
            o.status.code() == Some(ASAN_EXIT_CODE)
                && String::from_utf8_lossy(&o.stderr).contains("detected memory leaks")
        }
        None => false,
    }
}

/// One C test program for the sanitizer run: how to check it passed, and what it needs.
struct SanitizedProgram {
    name: &'static str,
    src: &'static str,
    servers: ServersNeeded,
    check: fn(&Output),
}

#[derive(Clone, Copy)]
enum ServersNeeded {
    None,
    One,
    /// abi_redis.c: a plain server and one with a password and an ACL user.
    RedisPair,
    /// abi_tls.c: TLS servers (`TlsServers`).
    Tls,
    /// abi_nonblocking.c: one TLS server (its plain port too).
    PlainAndTls,
}

/// The servers abi_tls.c runs against, and its arguments: the certificate dir, a TLS port
/// (and that server's plain port), a TLS port that requires client certificates, and one
/// with an expired certificate.
struct TlsServers {
    good: TlsServer,
    mtls: TlsServer,
    expired: TlsServer,
}

impl TlsServers {
    fn start() -> TlsServers {
        TlsServers {
            good: TlsServer::start(),
            mtls: TlsServer::start_with("server", true, &[]),
            expired: TlsServer::start_with("expired", false, &[]),
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            certs().dir.to_str().expect("UTF-8 path").to_string(),
            self.good.tls_addr(),
            self.good.server.addr(),
            self.mtls.tls_addr(),
            self.expired.tls_addr(),
        ]
    }
}

fn check_tls(o: &Output) {
    assert_all_checks_passed(o, TLS_SECTIONS, 100);
}

fn check_nonblocking(o: &Output) {
    assert_all_checks_passed(o, NONBLOCKING_SECTIONS, 200);
}

/// abi_nonblocking.c's arguments: the plain port, the certificates, the TLS port.
fn nonblocking_args(srv: &TlsServer) -> Vec<String> {
    vec![
        srv.server.addr(),
        certs().dir.to_str().expect("UTF-8 path").to_string(),
        srv.tls_addr(),
    ]
}

#[test]
fn abi_nonblocking_shared() {
    let srv = TlsServer::start();
    let exe = build_c(
        "abi_nonblocking-shared",
        &[NONBLOCKING_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let args = nonblocking_args(&srv);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_nonblocking(&run(&exe, &args, &[], RUN_TIMEOUT));
}

#[test]
fn abi_nonblocking_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let srv = TlsServer::start();
    let exe = build_c(
        "abi_nonblocking-valgrind",
        &[NONBLOCKING_SRC],
        Link::Shared,
        &["-pthread"],
    );
    let args = nonblocking_args(&srv);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_nonblocking(&run_under_valgrind(&exe, &args));
}

#[test]
fn abi_tls_shared() {
    let servers = TlsServers::start();
    let exe = build_c("abi_tls-shared", &[TLS_SRC], Link::Shared, &["-pthread"]);
    let args = servers.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_tls(&run(&exe, &args, &[], RUN_TIMEOUT));
}

#[test]
fn abi_tls_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let servers = TlsServers::start();
    let exe = build_c("abi_tls-valgrind", &[TLS_SRC], Link::Shared, &["-pthread"]);
    let args = servers.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_tls(&run_under_valgrind(&exe, &args));
}

fn check_misuse(o: &Output) {
    assert_all_checks_passed(o, MISUSE_SECTIONS, 300);
}
fn check_sticky(o: &Output) {
    assert_all_checks_passed(o, STICKY_SECTIONS, 700);
}
fn check_redis(o: &Output) {
    assert_all_checks_passed(o, REDIS_SECTIONS, 250);
}
fn check_pubsub(o: &Output) {
    assert_all_checks_passed(o, PUBSUB_SECTIONS, PUBSUB_MIN_CHECKS);
}
fn check_dialer(o: &Output) {
    assert_all_checks_passed(o, DIALER_SECTIONS, 100);
}

const SANITIZED_PROGRAMS: &[SanitizedProgram] = &[
    SanitizedProgram {
        name: "abi_misuse",
        src: MISUSE_SRC,
        servers: ServersNeeded::One,
        check: check_misuse,
    },
    SanitizedProgram {
        name: "abi_sticky",
        src: STICKY_SRC,
        servers: ServersNeeded::One,
        check: check_sticky,
    },
    SanitizedProgram {
        name: "abi_redis",
        src: REDIS_SRC,
        servers: ServersNeeded::RedisPair,
        check: check_redis,
    },
    SanitizedProgram {
        name: "abi_events",
        src: EVENTS_SRC,
        servers: ServersNeeded::One,
        check: assert_events_passed,
    },
    SanitizedProgram {
        name: "abi_pubsub",
        src: PUBSUB_SRC,
        servers: ServersNeeded::One,
        check: check_pubsub,
    },
    SanitizedProgram {
        name: "abi_dialer",
        src: DIALER_SRC,
        servers: ServersNeeded::None,
        check: check_dialer,
    },
    SanitizedProgram {
        name: "abi_tls",
        src: TLS_SRC,
        servers: ServersNeeded::Tls,
        check: check_tls,
    },
    SanitizedProgram {
        name: "abi_nonblocking",
        src: NONBLOCKING_SRC,
        servers: ServersNeeded::PlainAndTls,
        check: check_nonblocking,
    },
    SanitizedProgram {
        name: "abi_hostile",
        src: HOSTILE_SRC,
        servers: ServersNeeded::One,
        check: assert_hostile_passed,
    },
];

/// Builds `p` with ASan + UBSan, runs it against the servers it needs, and checks it.
fn run_sanitized(p: &SanitizedProgram, asan_options: &str) {
    let exe = build_c(
        &format!("{}-asan", p.name),
        &[p.src],
        Link::Shared,
        SANITIZE_FLAGS,
    );
    let asked = std::env::var("REDISPOOL_SLOW")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let slow = asked.max(ASAN_SLOW).to_string();
    let envs = [
        ("ASAN_OPTIONS", asan_options),
        ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        ("REDISPOOL_SLOW", slow.as_str()),
    ];
    // The servers live until the program is done.
    let (one, pair, tls, tls_one);
    let addrs: Vec<String> = match p.servers {
        ServersNeeded::Tls => {
            tls = TlsServers::start();
            tls.args()
        }
        ServersNeeded::PlainAndTls => {
            tls_one = TlsServer::start();
            nonblocking_args(&tls_one)
        }
        ServersNeeded::None => Vec::new(),
        ServersNeeded::One => {
            one = RedisServer::start();
            vec![one.addr()]
        }
        ServersNeeded::RedisPair => {
            pair = redis_servers();
            vec![pair.0.addr(), pair.1.addr()]
        }
    };
    let args: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let output = run(&exe, &args, &envs, RUN_TIMEOUT * 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for report in SANITIZER_REPORTS {
        assert!(
            !stderr.contains(report),
            "{} under ASan + UBSan: the sanitizer reported {report:?}\n{}",
            p.name,
            describe(&output)
        );
    }
    assert_ne!(
        output.status.code(),
        Some(ASAN_EXIT_CODE),
        "{} under ASan + UBSan: exit status {ASAN_EXIT_CODE} is the sanitizer's\n{}",
        p.name,
        describe(&output)
    );
    (p.check)(&output);
}

/// Every C test program built with `-fsanitize=address,undefined` (UBSan errors are fatal)
/// and run as the plain tests run it, one after the other: no memory error, no undefined behaviour
/// and, where LeakSanitizer can run, no leak at exit. abi_events.c's forked children run
/// instrumented too and leave with _exit (no leak check in a child, as under valgrind).
#[test]
fn c_tests_under_asan_ubsan() {
    if !sanitizers_available() {
        eprintln!(
            "cc cannot build with -fsanitize=address,undefined: skipping (on Debian/Ubuntu \
             install gcc, whose libasan and libubsan come with it, e.g. apt-get install gcc \
             libasan8 libubsan1)"
        );
        return;
    }
    let detect_leaks = if leak_sanitizer_works() {
        1
    } else {
        eprintln!(
            "LeakSanitizer cannot run here (no ptrace?): ASan + UBSan only, detect_leaks=0 \
             (the valgrind tests still check leaks)"
        );
        0
    };
    let asan_options =
        format!("detect_leaks={detect_leaks}:abort_on_error=0:exitcode={ASAN_EXIT_CODE}");
    // One program at a time: cargo already runs the tests in parallel, and the programs'
    // time bounds (scaled by REDISPOOL_SLOW) assume a machine that is not oversubscribed.
    let failed: Vec<&str> = SANITIZED_PROGRAMS
        .iter()
        .filter(|p| std::panic::catch_unwind(|| run_sanitized(p, &asan_options)).is_err())
        .map(|p| p.name)
        .collect();
    assert!(
        failed.is_empty(),
        "under ASan + UBSan, these failed (see their panics above): {failed:?}"
    );
}
