//! Redis Sentinel support, against real servers the tests start on loopback ports (a
//! master, a replica and three sentinels: `common::sentinel::Deployment`).
//!
//! - `ConnPool::retire_all`: idle conns closed at once, checked-out conns closed on put (and
//!   their turn handed on), a dial in flight at retire time discarded when it lands.
//! - `close_on_readonly`: a READONLY reply marks the conn bad, so put removes it.
//! - The watcher thread starts with a sentinel pool and stops when it is closed.
//! - `tests/c/abi_sentinel.c` through the C ABI: "inputs" (every bad input of
//!   pool_sentinel_new / pool_sentinel_master_addr, an ordinary pool over the sentinels'
//!   master; also under valgrind) and "failover" (12 threads writing while
//!   `SENTINEL FAILOVER` runs: every thread succeeds again on the new master within 30 s, no
//!   get begun after the pool reported the new master gets a conn to the old one, the old
//!   master takes no write afterwards and rejects none as READONLY, and every write the new
//!   master acknowledged is there at the end).
//!
//! The C program is compiled against a header cbindgen generates from the current source
//! (forced in with `-include`), so it does not depend on the committed header being fresh.

mod common;

use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::procfs::poll_until;
use common::sentinel::{Deployment, MASTER_NAME};
use common::{
    Link, RUN_TIMEOUT, RedisServer, assert_all_checks_passed, build_c, c_tests_dir, describe, run,
    run_under_memcheck, valgrind_available,
};
use redispool::pool::{ConnPool, Dialer, Options, Wait};
use redispool::redis::resp::Reply;
use redispool::sentinel::{SentinelConfig, SentinelState};

fn tcp_options(addr: &str, size: usize) -> Options {
    let mut o = Options::new(Dialer::from_addr(addr).expect("addr"));
    o.pool_size = size;
    o.pool_timeout = Wait::For(Duration::from_secs(10));
    o
}

// ---------------------------------------------------------------------------
// retire_all
// ---------------------------------------------------------------------------

#[test]
fn retire_all_closes_idle_at_once_and_checked_out_on_put() {
    let redis = RedisServer::start();
    let pool = ConnPool::new(tcp_options(&redis.addr(), 4)).expect("pool");
    let a = pool.get().expect("get a");
    let b = pool.get().expect("get b");
    let c = pool.get().expect("get c");
    let (a_id, b_id, c_id) = (a.id(), b.id(), c.id());
    pool.put(a).expect("put a");
    assert_eq!((pool.len(), pool.idle_len()), (3, 1));

    pool.retire_all();
    assert_eq!(pool.idle_len(), 0, "the idle conn is closed at once");
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.retired_conns(), 1);
    assert_eq!(pool.stats().stale_conns, 1);

    // A conn checked out before the retire is closed when it comes back, not pooled.
    pool.put(b).expect("put b");
    assert_eq!((pool.len(), pool.idle_len()), (1, 0));
    assert_eq!(pool.retired_conns(), 2);
    pool.remove(c, None).expect("remove c");
    assert_eq!(pool.len(), 0);
    assert_eq!(pool.retired_conns(), 2, "remove is not a retire");

    // New conns are pooled as usual.
    let d = pool.get().expect("get d");
    assert!(![a_id, b_id, c_id].contains(&d.id()));
    pool.put(d).expect("put d");
    assert_eq!((pool.len(), pool.idle_len()), (1, 1));
    let s = pool.stats();
    assert_eq!((s.dials, s.stale_conns, s.removed_conns), (4, 2, 1));
}

#[test]
fn retired_conn_put_hands_its_turn_to_a_waiter() {
    let redis = RedisServer::start();
    let pool = ConnPool::new(tcp_options(&redis.addr(), 1)).expect("pool");
    let a = pool.get().expect("get a");
    let a_id = a.id();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.get())
    };
    assert!(
        poll_until(Duration::from_secs(10), || pool.stats().waiting == 1),
        "the second get should queue"
    );
    pool.retire_all();
    pool.put(a).expect("put a");
    let b = waiter
        .join()
        .expect("waiter")
        .expect("the waiter gets a conn");
    assert_ne!(
        b.id(),
        a_id,
        "the waiter must get a new conn, not the retired one"
    );
    pool.put(b).expect("put b");
    assert_eq!((pool.len(), pool.idle_len()), (1, 1));
    assert_eq!(pool.retired_conns(), 1);
}

/// A dialer whose first dial blocks until the gate opens; every dial connects to `addr`.
struct GatedDialer {
    addr: String,
    calls: AtomicUsize,
    gate: Mutex<bool>,
    opened: Condvar,
}

impl GatedDialer {
    fn dialer(self: &Arc<Self>) -> Dialer {
        let me = Arc::clone(self);
        Dialer::Custom(Arc::new(move |_timeout| {
            if me.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut open = me.gate.lock().unwrap();
                while !*open {
                    open = me.opened.wait(open).unwrap();
                }
            }
            Ok(OwnedFd::from(TcpStream::connect(&me.addr)?))
        }))
    }

    fn open(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[test]
fn dial_in_flight_at_retire_is_discarded_when_it_lands() {
    let redis = RedisServer::start();
    let gated = Arc::new(GatedDialer {
        addr: redis.addr(),
        calls: AtomicUsize::new(0),
        gate: Mutex::new(false),
        opened: Condvar::new(),
    });
    let mut opts = tcp_options(&redis.addr(), 2);
    opts.dialer = gated.dialer();
    let pool = ConnPool::new(opts).expect("pool");
    let getter = {
        let pool = pool.clone();
        thread::spawn(move || pool.get())
    };
    assert!(poll_until(Duration::from_secs(10), || {
        gated.calls.load(Ordering::SeqCst) == 1
    }));
    pool.retire_all();
    gated.open();
    let conn = getter
        .join()
        .expect("getter")
        .expect("get after the redial");
    assert_eq!(
        gated.calls.load(Ordering::SeqCst),
        2,
        "the conn dialed before the retire is discarded and dialed again"
    );
    assert_eq!(pool.retired_conns(), 1);
    pool.put(conn).expect("put");
    assert_eq!((pool.len(), pool.idle_len()), (1, 1));
    assert_eq!(pool.retired_conns(), 1, "the redialed conn is current");
}

// ---------------------------------------------------------------------------
// READONLY
// ---------------------------------------------------------------------------

#[test]
fn readonly_reply_marks_the_conn_bad_when_asked() {
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    for close_on_readonly in [true, false] {
        let mut opts = tcp_options(&replica.addr(), 2);
        opts.close_on_readonly = close_on_readonly;
        let pool = ConnPool::new(opts).expect("pool");
        let mut conn = pool.get().expect("get");
        match conn.command(&[b"SET", b"k", b"v"]).expect("command") {
            Reply::Error(e) => assert!(e.starts_with(b"READONLY"), "{e:?}"),
            other => panic!("a replica should refuse SET, got {other:?}"),
        }
        assert_eq!(conn.broken_reason().is_some(), close_on_readonly);
        // Other error replies never mark it.
        if !close_on_readonly {
            let r = conn.command(&[b"NOSUCHCOMMAND"]).expect("command");
            assert!(matches!(r, Reply::Error(_)));
            assert!(conn.broken_reason().is_none());
        }
        pool.put(conn).expect("put");
        let s = pool.stats();
        if close_on_readonly {
            assert_eq!((s.total_conns, s.removed_conns), (0, 1));
        } else {
            assert_eq!((s.idle_conns, s.removed_conns), (1, 0));
        }
    }
}

// ---------------------------------------------------------------------------
// The sentinel pool through the Rust API
// ---------------------------------------------------------------------------

fn sentinel_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "redispool-senti")
        })
        .count()
}

#[test]
fn sentinel_pool_dials_the_master_and_its_watcher_stops_on_close() {
    let d = Deployment::start();
    let cfg = SentinelConfig::new(MASTER_NAME, d.sentinel_addrs());
    let state = SentinelState::new(cfg).expect("config");
    let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
    opts.pool_size = 2;
    let pool = ConnPool::new(opts).expect("pool");
    let s = pool.sentinel().expect("a sentinel pool").clone();
    let mut conn = pool.get().expect("get");
    assert_eq!(
        conn.socket()
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port()),
        Some(d.master.port)
    );
    assert_eq!(s.master_addr(), Some(d.master.addr()));
    assert_eq!(s.master_addr(), d.reported_master(0));
    assert!(matches!(
        conn.command(&[b"SET", b"k", b"v"]),
        Ok(Reply::Status(_))
    ));
    pool.put(conn).expect("put");
    assert!(sentinel_threads() >= 1, "the watcher thread runs");
    // The watcher holds a subscription: the sentinel counts it as a pub/sub client.
    pool.close().expect("close");
    drop(pool);
    assert!(
        poll_until(Duration::from_secs(5), || sentinel_threads() == 0),
        "the watcher thread must stop within a tick or two of close"
    );
    assert_eq!(s.switches(), 0);
}

/// A deployment whose master and replica replicate over TLS and are watched over TLS: the
/// sentinels report the master's TLS port, and a pool with TLS dials it, verifying the
/// certificate against the master's IP (no tls_server_name). The sentinels are asked in
/// plain.
#[test]
fn sentinel_pool_reaches_the_master_over_tls() {
    use redispool::redis::tls::{TlsConfig, TlsSettings};
    let d = Deployment::start_tls();
    let tls_port = d.master_tls_port.expect("a TLS deployment");
    assert_eq!(d.reported_master(0), Some(format!("127.0.0.1:{tls_port}")));
    let cfg = SentinelConfig::new(MASTER_NAME, d.sentinel_addrs());
    let state = SentinelState::new(cfg).expect("config");
    let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
    opts.pool_size = 2;
    opts.dialer_retries = 1;
    let settings = TlsSettings {
        ca_file: Some(common::tls::certs().path("ca.pem")),
        ..TlsSettings::default()
    };
    opts.tls = Some(Arc::new(TlsConfig::new(&settings).expect("TLS config")));
    let pool = ConnPool::new(opts.clone()).expect("pool");
    let mut conn = pool.get().expect("get");
    assert!(conn.is_tls());
    let peer = conn.socket().peer_addr().ok().and_then(|a| a.as_socket());
    assert_eq!(peer.map(|a| a.port()), Some(tls_port));
    match conn.command(&[b"ROLE"]) {
        Ok(Reply::Array(v)) => assert_eq!(v.first(), Some(&Reply::String(b"master".to_vec()))),
        other => panic!("ROLE: {other:?}"),
    }
    pool.put(conn).expect("put");
    pool.close().expect("close");

    // Without TLS the same deployment's master port refuses the plain set-up.
    let cfg = SentinelConfig::new(MASTER_NAME, d.sentinel_addrs());
    let mut plain = Options::new(Dialer::sentinel(Arc::new(
        SentinelState::new(cfg).expect("config"),
    )));
    plain.dialer_retries = 1;
    let pool = ConnPool::new(plain).expect("pool");
    let err = pool.get().expect_err("a plain conn to a TLS port");
    assert!(err.to_string().contains("TLS port?"), "{err}");
}

/// TLS to the sentinels themselves (their TLS ports), configured apart from TLS to the
/// master: both on here; a CA the sentinels' certificates are not signed by fails the
/// get, naming the sentinel and the reason.
#[test]
fn sentinels_reached_over_tls() {
    use redispool::redis::tls::{TlsConfig, TlsSettings};
    let d = Deployment::start_tls();
    let tls = |ca: &str| {
        let settings = TlsSettings {
            ca_file: Some(common::tls::certs().path(ca)),
            ..TlsSettings::default()
        };
        Arc::new(TlsConfig::new(&settings).expect("TLS config"))
    };
    let pool_with = |sentinel_ca: &str| {
        let mut cfg = SentinelConfig::new(MASTER_NAME, d.sentinel_tls_addrs());
        cfg.tls = Some(tls(sentinel_ca));
        let state = SentinelState::new(cfg).expect("config");
        let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
        opts.pool_size = 2;
        opts.dialer_retries = 1;
        opts.tls = Some(tls("ca.pem"));
        ConnPool::new(opts).expect("pool")
    };
    let pool = pool_with("ca.pem");
    let s = pool.sentinel().expect("a sentinel pool").clone();
    let mut conn = pool.get().expect("get");
    assert!(conn.is_tls());
    assert_eq!(
        s.master_addr(),
        Some(format!("127.0.0.1:{}", d.master_tls_port.unwrap()))
    );
    assert!(matches!(
        conn.command(&[b"SET", b"k", b"v"]),
        Ok(Reply::Status(_))
    ));
    pool.put(conn).expect("put");
    pool.close().expect("close");

    let pool = pool_with("other-ca.pem");
    let err = pool.get().expect_err("sentinels with an unknown CA");
    let msg = err.to_string();
    assert!(msg.contains("unknown issuer"), "{msg}");
    assert!(msg.contains(&d.sentinel_tls_addrs()[0]), "{msg}");
}

// ---------------------------------------------------------------------------
// The C ABI
// ---------------------------------------------------------------------------

const SRC: &str = "tests/c/abi_sentinel.c";

const INPUT_SECTIONS: &[&str] = &[
    "== sentinel options: init, NULLs, struct_size, every bad field named\n",
    "== sentinel pool: an ordinary pool_t on the master the sentinels name\n",
    "== sentinel pool: fork, the child dials its own conns and starts its own watcher\n",
    "== pool_sentinel_master_addr: NULLs, small buffers, plain pools\n",
    "== sentinel failures: unknown master, no sentinel up, sentinel AUTH refused\n",
    "== sentinel pool: close and free\n",
];

const FAILOVER_SECTIONS: &[&str] = &[
    "== failover under load: SENTINEL FAILOVER while threads write\n",
    "failover: SENTINEL FAILOVER accepted\n",
    "failover: every thread wrote to the new master within ",
    "== failover: no write reached the old master after the switch; none lost on the new\n",
];

/// A header generated from the current source, so the program sees the sentinel API
/// whether or not include/redispool.h was regenerated yet.
fn fresh_header() -> PathBuf {
    let root = common::repo_dir();
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let dir = c_tests_dir().join(format!("sentinel-include.{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create include dir");
    let path = dir.join("redispool.h");
    cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write_to_file(&path);
    path
}

fn build(name: &str) -> PathBuf {
    let header = fresh_header();
    let header = header.to_str().expect("UTF-8 path");
    // The forced header comes before the source's own `#define _GNU_SOURCE`.
    build_c(
        name,
        &[SRC],
        Link::Shared,
        &["-pthread", "-D_GNU_SOURCE", "-include", header],
    )
}

fn args<'a>(mode: &'a str, d: &'a Deployment, master: &'a str) -> Vec<String> {
    let mut v = vec![mode.to_string(), master.to_string()];
    v.extend(d.sentinel_addrs());
    v
}

fn assert_passed(output: &Output, sections: &[&str], min_checks: u64, d: &Deployment) {
    let ok = output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("FAILED");
    assert!(ok, "{}\n{}", describe(output), d.logs());
    assert_all_checks_passed(output, sections, min_checks);
}

#[test]
fn c_abi_sentinel_inputs() {
    let d = Deployment::start();
    let exe = build("abi_sentinel-inputs");
    let master = d.master.addr();
    let a = args("inputs", &d, &master);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let output = run(&exe, &a, &[], RUN_TIMEOUT);
    assert_passed(&output, INPUT_SECTIONS, 150, &d);
    if valgrind_available() {
        let output = run_under_memcheck(
            &exe,
            &a,
            &[("REDISPOOL_SLOW", "5"), ("REDISPOOL_VALGRIND", "1")],
            Duration::from_secs(600),
        );
        assert_passed(&output, INPUT_SECTIONS, 150, &d);
    } else {
        eprintln!("valgrind not installed: skipping the memcheck run");
    }
}

#[test]
fn c_abi_sentinel_failover_under_load() {
    let d = Deployment::start();
    let exe = build("abi_sentinel-failover");
    let master = d.master.addr();
    let a = args("failover", &d, &master);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let started = Instant::now();
    let output = run(&exe, &a, &[], Duration::from_secs(240));
    assert_passed(&output, FAILOVER_SECTIONS, 40, &d);
    eprintln!(
        "failover run took {:?}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout)
    );
    // Seen from outside too: every sentinel agrees on the new master, the replica's port.
    let replica = d.replica.addr();
    d.await_cond(
        "every sentinel reporting the new master",
        Duration::from_secs(30),
        || (0..3).all(|i| d.reported_master(i).as_deref() == Some(replica.as_str())),
    );
}

/// examples-c/sentinel.c, as a user runs it: the master's address from the sentinels, and
/// every INCR of 4 threads on it.
#[test]
fn example_sentinel() {
    let d = Deployment::start();
    let exe = build_c(
        "example-sentinel",
        &["examples-c/sentinel.c"],
        Link::Static,
        &["-pthread"],
    );
    let mut args = vec![MASTER_NAME.to_string()];
    args.extend(d.sentinel_addrs());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&exe, &args, &[], RUN_TIMEOUT);
    assert!(out.status.success(), "{}\n{}", describe(&out), d.logs());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("master {}\n", d.master.addr())),
        "{stdout}"
    );
    assert!(stdout.contains("counter 2000\n"), "{stdout}");
    assert!(
        stdout.contains("4 threads x 500 INCR: 0 failures"),
        "{stdout}"
    );
}
