//! Redis Cluster through the C ABI (`tests/c/abi_cluster.c`), against a real cluster of
//! 3 masters with a replica each (`common::cluster::ClusterHarness`, on free loopback ports).
//!
//! - `api`: keys spread over every master from 16 threads, gets by key / slot / node, node
//!   pools, MOVED followed from a conn to the wrong node, stats, misuse; plain and under
//!   valgrind.
//! - `slot_migration_under_load`: 16 threads run SET + GET on keys of one slot while the
//!   slot is migrated key batch by key batch (ASK), then handed over (MOVED): no call fails.
//! - `master_killed_replica_promoted`: 16 threads over every slot while a master is
//!   SIGKILLed and its replica promoted: every thread succeeds again within the failover
//!   time and keeps succeeding.
//! - `ssubscribe_splits_by_slot_and_follows_moved` (plain and over TLS): a cluster
//!   subscriber's SSUBSCRIBE of two slots of one master, and one answered MOVED after a
//!   slot moved behind its back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{ClusterHarness, hashtag_for_slot, key_slot};
use common::{
    Link, RUN_TIMEOUT, assert_all_checks_passed, build_c, describe, run, run_under_memcheck,
    valgrind_available,
};

const SRC: &str = "tests/c/abi_cluster.c";

/// Built once per test binary: the tests run in parallel, and rebuilding the file one of
/// them is running fails with ETXTBSY.
fn exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| build_c("abi_cluster", &[SRC], Link::Shared, &["-pthread"]))
        .clone()
}

fn url(h: &ClusterHarness, extra: &str) -> String {
    let seeds = h.seed_addrs();
    let mut u = format!("redis://{}?pool_size=8&dial_timeout=1s", seeds[0]);
    for s in &seeds[1..] {
        u.push_str("&addr=");
        u.push_str(s);
    }
    u.push_str(extra);
    u
}

const API_SECTIONS: &[&str] = &[
    "== cluster: pool_cluster_slot_node before the slot map is loaded\n",
    "== cluster: keys spread over every master from 16 threads\n",
    "== cluster: pool_cluster_slot_node routes a slot to its master's pool\n",
    "== cluster: get by key, slot and node; node pools; conn node\n",
    "== cluster: a command sent to the wrong node follows MOVED\n",
    "== cluster: fork() - the child uses the cluster with conns of its own\n",
    "== cluster: misuse and bad input\n",
];

fn assert_api_output(out: &std::process::Output) {
    assert_all_checks_passed(out, API_SECTIONS, 100);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("master 127.0.0.1:").count(),
        3,
        "{}",
        describe(out)
    );
}

/// The `api` program over TLS: a cluster whose nodes listen for TLS (`--tls-cluster
/// yes`), reached by a rediss:// URL naming TLS ports; the slot map's addresses are the
/// nodes' TLS ports (CLUSTER SHARDS "tls-port"), and MOVED names TLS ports too.
#[test]
fn api_over_tls() {
    let h = ClusterHarness::start_tls(3, 0);
    let seeds = h.tls_seed_addrs();
    let mut u = format!(
        "rediss://{}?pool_size=8&dial_timeout=5s&tls_ca_file={}",
        seeds[0],
        common::tls::certs().path("ca.pem")
    );
    for s in &seeds[1..] {
        u.push_str("&addr=");
        u.push_str(s);
    }
    let ca = common::tls::certs().path("ca.pem");
    let out = run(
        exe(),
        &["api", &u, "3"],
        &[("ABI_CLUSTER_TLS_CA", ca.as_str())],
        RUN_TIMEOUT,
    );
    assert_api_output(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for s in &seeds {
        assert!(
            stdout.contains(&format!("master {s}")),
            "{s}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn api() {
    let h = ClusterHarness::start(3, 1);
    let exe = exe();
    let out = run(&exe, &["api", &url(&h, ""), "3"], &[], RUN_TIMEOUT);
    assert_api_output(&out);
    // The spread test's keys really are on the master of their slot.
    for t in [0, 7, 15] {
        for i in [0, 123, 299] {
            let key = format!("spread:{t}:{i}");
            let owner = h.master_of_key(key.as_bytes());
            assert_eq!(
                h.command(&owner, &["GET", &key]),
                format!("v{i}"),
                "{key} on {owner}"
            );
        }
    }
    if valgrind_available() {
        let out = run_under_memcheck(
            &exe,
            &["api", &url(&h, ""), "3"],
            &[("REDISPOOL_SLOW", "5")],
            Duration::from_secs(600),
        );
        assert_api_output(&out);
    }
}

/// The C load program, talking over stdin/stdout.
struct Load {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Load {
    fn start(url: &str, threads: usize, tag: &str) -> Load {
        let mut child = Command::new(exe())
            .args(["load", url, &threads.to_string(), tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start abi_cluster load");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut load = Load {
            child,
            lines: rx,
            seen: Vec::new(),
        };
        load.expect_line("ready", Duration::from_secs(60));
        load
    }

    fn expect_line(&mut self, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == want => return,
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "no {want:?} line from abi_cluster load; got {:?}",
                    self.seen
                ),
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn mark(&mut self) {
        self.send("mark");
        self.expect_line("marked", Duration::from_secs(10));
    }

    /// Stops the load; returns the summary lines.
    fn stop(mut self) -> Summary {
        self.send("stop");
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(l);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "abi_cluster load: {status}\n{lines:#?}");
        Summary::parse(lines)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct ThreadResult {
    ok: u64,
    fail: u64,
    last_fail_after_mark_ms: i64,
    ok_after_last_fail: u64,
}

#[derive(Debug)]
struct Summary {
    threads: Vec<ThreadResult>,
    info: Vec<(String, u64)>,
    lines: Vec<String>,
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> T {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

impl Summary {
    fn parse(lines: Vec<String>) -> Summary {
        let mut threads = Vec::new();
        let mut info = Vec::new();
        for l in &lines {
            if l.starts_with("thread ") && l.contains(" ok=") {
                threads.push(ThreadResult {
                    ok: field(l, "ok"),
                    fail: field(l, "fail"),
                    last_fail_after_mark_ms: field(l, "last_fail_after_mark_ms"),
                    ok_after_last_fail: field(l, "ok_after_last_fail"),
                });
            } else if let Some(rest) = l.strip_prefix("info ") {
                for w in rest.split_whitespace() {
                    let (k, v) = w.split_once('=').unwrap();
                    info.push((k.to_string(), v.parse().unwrap()));
                }
            }
        }
        Summary {
            threads,
            info,
            lines,
        }
    }

    fn info(&self, name: &str) -> u64 {
        self.info
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no info {name}: {:#?}", self.lines))
    }
}

#[test]
fn slot_migration_under_load() {
    let h = ClusterHarness::start(3, 0);
    let slot = 4242;
    let tag = hashtag_for_slot(slot);
    let tag = tag.trim_start_matches('{').trim_end_matches('}');
    assert_eq!(key_slot(format!("{{{tag}}}:x").as_bytes()), slot);
    let source = h.master_of_slot(slot);
    let target = h.seed_addrs().into_iter().find(|a| *a != source).unwrap();

    let load = Load::start(&url(&h, ""), 16, tag);
    // Let keys pile up in the slot, then move them in small batches with load running
    // between batches (clients get ASK for moved keys), then hand the slot over (MOVED).
    thread::sleep(Duration::from_millis(300));
    h.migrate_slot_with(slot, &target, 20, |_| {
        thread::sleep(Duration::from_millis(30))
    });
    assert_eq!(h.master_of_slot(slot), target);
    thread::sleep(Duration::from_millis(500));
    let summary = load.stop();
    let failed: u64 = summary.threads.iter().map(|t| t.fail).sum();
    let ok: u64 = summary.threads.iter().map(|t| t.ok).sum();
    assert_eq!(summary.threads.len(), 16, "{:#?}", summary.lines);
    assert_eq!(
        failed, 0,
        "calls failed during the migration: {:#?}",
        summary.lines
    );
    assert!(ok > 1000, "too little load ran: {:#?}", summary.lines);
    // The load really went through both redirects.
    assert!(summary.info("ask") > 0, "{:#?}", summary.lines);
    assert!(summary.info("moved") > 0, "{:#?}", summary.lines);
    eprintln!(
        "migration under load: {ok} rounds, moved={} ask={} retries={} refreshes={}",
        summary.info("moved"),
        summary.info("ask"),
        summary.info("retries"),
        summary.info("refreshes")
    );
    // Every key the load wrote is on the target now.
    let keys = h.query(&target, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
    assert!(keys.int() > 0);
    assert_eq!(
        h.query(&source, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .int(),
        0
    );
}

#[test]
fn master_killed_replica_promoted() {
    let h = ClusterHarness::start(3, 1);
    let mut load = Load::start(&url(&h, "&dialer_retries=1"), 16, "-");
    thread::sleep(Duration::from_millis(300));
    let victim = h.master_of_slot(0);
    let started = Instant::now();
    let promoted = h.kill_master_and_await_failover(&victim);
    let failover = started.elapsed();
    load.mark();
    // Every thread must succeed again within the failover time (bounded generously for a
    // loaded machine), and keep succeeding.
    thread::sleep(Duration::from_secs(3));
    let summary = load.stop();
    eprintln!(
        "failover took {failover:?}; {victim} -> {promoted}; refreshes={}",
        summary.info("refreshes")
    );
    assert_eq!(summary.threads.len(), 16);
    let bound_ms = (failover.as_millis() as i64).max(2000);
    for (i, t) in summary.threads.iter().enumerate() {
        assert!(t.ok > 0, "thread {i} never succeeded: {:#?}", summary.lines);
        assert!(
            t.ok_after_last_fail > 0,
            "thread {i} did not recover: {:#?}",
            summary.lines
        );
        assert!(
            t.last_fail_after_mark_ms <= bound_ms,
            "thread {i} still failed {} ms after the failover ended: {:#?}",
            t.last_fail_after_mark_ms,
            summary.lines
        );
    }
    // Some thread hit the dead master (its keys cover a third of the slots).
    assert!(
        summary.threads.iter().any(|t| t.fail > 0),
        "no call ever reached the killed master? {:#?}",
        summary.lines
    );
    assert_eq!(summary.info("slots_covered"), 16384, "{:#?}", summary.lines);
}

/// examples-c/cluster.c, as a user runs it: 8 threads over a 3-master cluster.
#[test]
fn example_cluster() {
    let h = ClusterHarness::start(3, 0);
    let exe = build_c(
        "example-cluster",
        &["examples-c/cluster.c"],
        Link::Static,
        &["-pthread"],
    );
    let out = run(&exe, &[&url(&h, ""), "8"], &[], RUN_TIMEOUT);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("master 127.0.0.1:").count(), 3, "{stdout}");
    assert!(
        stdout.contains("8 threads x 1000 keys: 0 failures")
            && stdout.contains("16384 of 16384 slots covered"),
        "{stdout}"
    );
}

/// The next message of a subscriber (panics after 10 s): (kind, channel, payload).
fn sub_next(sub: *mut redispool::ffi::subscriber::pool_subscriber_t) -> (i32, String, String) {
    use redispool::ffi::subscriber::{pool_message_free, pool_subscriber_receive};
    let mut m = std::ptr::null_mut();
    // SAFETY: an all-zero pool_error_t is a valid value of the C struct.
    let mut err: redispool::ffi::error::pool_error_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live subscriber and writable out-pointers.
    let st = unsafe { pool_subscriber_receive(sub, 10_000, &mut m, &mut err) };
    assert_eq!(st, 0, "receive: {}", unsafe {
        // SAFETY: the message is NUL-terminated on failure.
        std::ffi::CStr::from_ptr(err.message.as_ptr()).to_string_lossy()
    });
    // SAFETY: POOL_OK: `m` points to a message until pool_message_free.
    let msg = unsafe { &*m };
    let text = |p: *const std::ffi::c_char, n: usize| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: `p` holds `n` bytes per the header.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) })
                .into_owned()
        }
    };
    let out = (
        msg.kind,
        text(msg.channel, msg.channel_len),
        text(msg.payload, msg.payload_len),
    );
    // SAFETY: freed once.
    unsafe { pool_message_free(m) };
    out
}

/// A cluster subscriber: SSUBSCRIBE to shard channels of three slots (one per master) in
/// one call sends each to the master of its slot; SPUBLISH on each master reaches it; a
/// CLIENT KILL of its conn on one master resubscribes that node's channel only
/// (POOL_MSG_RESUBSCRIBED, then its confirmation), and every channel works again; a slot
/// migrated to another master makes its old master SUNSUBSCRIBE the channel, and the
/// subscriber subscribes it on the new one.
/// SUBSCRIBE goes to its main conn, and a PUBLISH on any node reaches it.
#[test]
fn sharded_subscriber_routes_by_slot_and_resubscribes() {
    use redispool::ffi::cluster::{pool_cluster_free, pool_cluster_new_url};
    use redispool::ffi::subscriber::*;
    let h = ClusterHarness::start(3, 0);
    let u = std::ffi::CString::new(url(&h, "")).unwrap();
    let mut cluster = std::ptr::null_mut();
    let mut sub = std::ptr::null_mut();
    // SAFETY: valid C strings and out-pointers throughout; handles used while live.
    unsafe {
        assert_eq!(
            pool_cluster_new_url(u.as_ptr(), &mut cluster, std::ptr::null_mut()),
            0
        );
        assert_eq!(
            pool_cluster_subscriber_new(cluster, &mut sub, std::ptr::null_mut()),
            0
        );
    }
    let chans: Vec<String> = [0u16, 8000, 16000]
        .iter()
        .map(|&s| format!("{}:ch", hashtag_for_slot(s)))
        .collect();
    let masters: Vec<String> = chans
        .iter()
        .map(|c| h.master_of_key(c.as_bytes()))
        .collect();
    assert_eq!(
        masters
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "{masters:?}"
    );
    let cs: Vec<std::ffi::CString> = chans
        .iter()
        .map(|c| std::ffi::CString::new(c.as_str()).unwrap())
        .collect();
    let ptrs: Vec<*const std::ffi::c_char> = cs.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: as above.
    let st = unsafe {
        pool_subscriber_ssubscribe(
            sub,
            3,
            ptrs.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, 0);
    let mut confirmed: Vec<String> = (0..3)
        .map(|_| {
            let (kind, ch, _) = sub_next(sub);
            assert_eq!(kind, POOL_MSG_SSUBSCRIBE);
            ch
        })
        .collect();
    confirmed.sort();
    let mut want = chans.clone();
    want.sort();
    assert_eq!(confirmed, want);
    let publish_all = |round: &str| {
        for (c, m) in chans.iter().zip(&masters) {
            assert_eq!(h.query(m, &["SPUBLISH", c, round]).int(), 1, "{c} on {m}");
        }
        let mut got: Vec<(i32, String, String)> = (0..3).map(|_| sub_next(sub)).collect();
        got.sort();
        let mut expected: Vec<(i32, String, String)> = chans
            .iter()
            .map(|c| (POOL_MSG_SMESSAGE, c.clone(), round.to_string()))
            .collect();
        expected.sort();
        assert_eq!(got, expected);
    };
    publish_all("one");
    // One node drops the subscriber's conn: only that node's channel is subscribed again.
    assert_eq!(
        h.query(&masters[1], &["CLIENT", "KILL", "TYPE", "pubsub"])
            .int(),
        1
    );
    let (kind, _, why) = sub_next(sub);
    assert_eq!(kind, POOL_MSG_RESUBSCRIBED, "{why}");
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SSUBSCRIBE, chans[1].clone(), String::new())
    );
    // SAFETY: a live subscriber.
    assert_eq!(unsafe { pool_subscriber_resubscribes(sub) }, 1);
    publish_all("two");
    // The slot of chans[0] moves to masters[1]: its old master unsubscribes the channel
    // (SUNSUBSCRIBE), and the subscriber subscribes it where the slot is now.
    let slot0 = key_slot(chans[0].as_bytes());
    h.migrate_slot(slot0, &masters[1]);
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SUNSUBSCRIBE, chans[0].clone(), String::new())
    );
    let (kind, _, why) = sub_next(sub);
    assert_eq!(kind, POOL_MSG_RESUBSCRIBED, "{why}");
    assert!(why.contains("slot moved"), "{why}");
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SSUBSCRIBE, chans[0].clone(), String::new())
    );
    // SAFETY: a live subscriber.
    assert_eq!(unsafe { pool_subscriber_resubscribes(sub) }, 2);
    let moved_to = masters[1].clone();
    assert_eq!(
        h.query(&moved_to, &["SPUBLISH", &chans[0], "three"]).int(),
        1
    );
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SMESSAGE, chans[0].clone(), "three".to_string())
    );
    // A plain channel: on the main conn, and PUBLISH reaches it from any node.
    let plain = std::ffi::CString::new("plain").unwrap();
    let p = [plain.as_ptr()];
    // SAFETY: as above.
    let st = unsafe {
        pool_subscriber_subscribe(sub, 1, p.as_ptr(), std::ptr::null(), std::ptr::null_mut())
    };
    assert_eq!(st, 0);
    assert_eq!(sub_next(sub).0, POOL_MSG_SUBSCRIBE);
    // PUBLISH counts the receivers of the node it runs on only; the cluster bus carries
    // the message to the others (the main conn is on the master of slot 0).
    h.query(&masters[2], &["PUBLISH", "plain", "x"]);
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_MESSAGE, "plain".to_string(), "x".to_string())
    );
    // SAFETY: freed once each; the subscriber before its cluster.
    unsafe {
        pool_subscriber_free(sub);
        pool_cluster_free(cluster);
    }
}

/// SSUBSCRIBE on a cluster subscriber: shard channels of two slots of one master in one
/// call are subscribed (one SSUBSCRIBE per slot: one naming both would be refused with
/// CROSSSLOT); a channel whose slot moved while the subscriber's slot map still names the
/// old master is answered MOVED there, and the subscriber subscribes it where MOVED points,
/// with no error message and no gap for the channels its link to the old master carries.
#[test]
fn ssubscribe_splits_by_slot_and_follows_moved() {
    ssubscribe_splits_and_follows_moved(false);
}

/// The same over TLS (`--tls-cluster yes`): the subscriber's conns are TLS sessions to
/// the nodes' TLS ports, and MOVED names a TLS port.
#[test]
fn ssubscribe_splits_by_slot_and_follows_moved_over_tls() {
    ssubscribe_splits_and_follows_moved(true);
}

fn ssubscribe_splits_and_follows_moved(tls: bool) {
    use redispool::ffi::cluster::{
        pool_cluster_free, pool_cluster_new_url, pool_cluster_slot_node,
    };
    use redispool::ffi::subscriber::*;
    let h = if tls {
        ClusterHarness::start_tls(3, 0)
    } else {
        ClusterHarness::start(3, 0)
    };
    // The address the library knows a master by (its TLS port on a TLS cluster).
    let known: std::collections::BTreeMap<String, String> = if tls {
        h.seed_addrs().into_iter().zip(h.tls_seed_addrs()).collect()
    } else {
        h.seed_addrs().into_iter().map(|a| (a.clone(), a)).collect()
    };
    let u = if tls {
        let seeds = h.tls_seed_addrs();
        let mut u = format!(
            "rediss://{}?pool_size=8&dial_timeout=5s&tls_ca_file={}",
            seeds[0],
            common::tls::certs().path("ca.pem")
        );
        for s in &seeds[1..] {
            u.push_str("&addr=");
            u.push_str(s);
        }
        u
    } else {
        url(&h, "")
    };
    let u = std::ffi::CString::new(u).unwrap();
    let mut cluster = std::ptr::null_mut();
    let mut sub = std::ptr::null_mut();
    // SAFETY: valid C strings and out-pointers throughout; handles used while live.
    unsafe {
        assert_eq!(
            pool_cluster_new_url(u.as_ptr(), &mut cluster, std::ptr::null_mut()),
            0
        );
        assert_eq!(
            pool_cluster_subscriber_new(cluster, &mut sub, std::ptr::null_mut()),
            0
        );
    }
    let chans: Vec<String> = [0u16, 1, 2]
        .iter()
        .map(|&s| format!("{}:ch", hashtag_for_slot(s)))
        .collect();
    let old = h.master_of_key(chans[0].as_bytes());
    for c in &chans {
        assert_eq!(h.master_of_key(c.as_bytes()), old, "{c}");
    }
    let ssubscribe = |names: &[&String]| {
        let cs: Vec<std::ffi::CString> = names
            .iter()
            .map(|c| std::ffi::CString::new(c.as_str()).unwrap())
            .collect();
        let ptrs: Vec<*const std::ffi::c_char> = cs.iter().map(|c| c.as_ptr()).collect();
        // SAFETY: a live subscriber, `ptrs.len()` NUL-terminated names.
        let st = unsafe {
            pool_subscriber_ssubscribe(
                sub,
                ptrs.len(),
                ptrs.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, 0);
    };
    // Two slots of one master in one call.
    ssubscribe(&[&chans[0], &chans[1]]);
    let mut confirmed: Vec<(i32, String, String)> = (0..2).map(|_| sub_next(sub)).collect();
    confirmed.sort();
    let mut want = vec![
        (POOL_MSG_SSUBSCRIBE, chans[0].clone(), String::new()),
        (POOL_MSG_SSUBSCRIBE, chans[1].clone(), String::new()),
    ];
    want.sort();
    assert_eq!(confirmed, want);
    // The slot of chans[2] moves to another master behind the subscriber's back: its slot
    // map still names the old master.
    let slot2 = key_slot(chans[2].as_bytes());
    let new = h.master_of_slot(16000);
    assert_ne!(new, old);
    h.migrate_slot(slot2, &new);
    let mut buf = [0 as std::ffi::c_char; redispool::ffi::cluster::POOL_CLUSTER_ADDR_MAX];
    // SAFETY: a live cluster and a buffer of the size given.
    let st =
        unsafe { pool_cluster_slot_node(cluster, i32::from(slot2), buf.as_mut_ptr(), buf.len()) };
    assert_eq!(st, 0);
    // SAFETY: NUL-terminated on POOL_OK.
    let mapped = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    assert_eq!(
        mapped, known[&old],
        "the slot map was refreshed: MOVED would not be tested"
    );
    ssubscribe(&[&chans[2]]);
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SSUBSCRIBE, chans[2].clone(), String::new())
    );
    assert_eq!(h.query(&new, &["SPUBLISH", &chans[2], "moved"]).int(), 1);
    assert_eq!(
        sub_next(sub),
        (POOL_MSG_SMESSAGE, chans[2].clone(), "moved".to_string())
    );
    // The old master's link kept its channels all along.
    for c in &chans[..2] {
        assert_eq!(h.query(&old, &["SPUBLISH", c, "kept"]).int(), 1, "{c}");
        assert_eq!(
            sub_next(sub),
            (POOL_MSG_SMESSAGE, c.clone(), "kept".to_string())
        );
    }
    // SAFETY: a live subscriber.
    assert_eq!(unsafe { pool_subscriber_resubscribes(sub) }, 0);
    // SAFETY: freed once each; the subscriber before its cluster.
    unsafe {
        pool_subscriber_free(sub);
        pool_cluster_free(cluster);
    }
}
