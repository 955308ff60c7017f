//! Failover without losing acknowledged writes (issue 24), against real deployments the
//! tests start on loopback: 8 threads of INCR on distinct keys, a failover mid-run, every
//! acknowledged INCR counted per key and every key read back from the new master at the
//! end. A value below the acknowledged count is a lost write; errors returned and the
//! longest pause of any thread (between two acknowledged INCRs) are measured and printed
//! (`cargo test --test failover -- --nocapture` shows the rows).
//!
//! - `SENTINEL FAILOVER` with the old master alive: the pool stops handing out conns to
//!   the old master on the first sign (the leader's `+selected-slave`, before the replica
//!   is promoted), so nothing is written there after the replica stopped replicating:
//!   0 losses (before: 6-9 % of the writes, those of the second between the promotion and
//!   `+switch-master`).
//! - The master SIGKILLed: only writes the replica had not received are lost; gets wait
//!   (within their pool timeout) while the master cannot be dialed, so only the calls under
//!   way at the kill fail, and the pool resumes on the promoted replica.
//! - Redis Cluster (3 masters with a replica each): `CLUSTER FAILOVER` (graceful, the old
//!   master pauses its clients) and a reshard lose nothing; `CLUSTER FAILOVER FORCE` and a
//!   SIGKILLed master are measured (the client follows MOVED to the new owner).
//!
//! Run length: by default (the README test command) each phase of load lasts until every
//! thread acknowledged 200 INCRs, a second or so. `scripts/bench.sh` runs the same
//! scenarios longer: `REDISPOOL_FAILOVER_SECS=N` keeps the load running N more seconds
//! before the failover and again after it, and `REDISPOOL_FAILOVER_REPORT=FILE` appends
//! each scenario's row (a Markdown table row) to FILE (`bench-results/failover.md`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::RedisServer;
use common::cluster::{ClusterHarness, Role, key_slot};
use common::sentinel::{Deployment, MASTER_NAME, info_field, query, text};
use redispool::cluster::{Cluster, ClusterOptions, NodePool};
use redispool::pool::{ConnPool, Dialer, Error, Options, Wait};
use redispool::redis::resp::Reply;
use redispool::sentinel::{SentinelConfig, SentinelState};

const THREADS: usize = 8;
const DOWN_AFTER_MS: u32 = 2000;
/// Bounds every wait of these tests (a failover takes a few seconds).
const LIMIT: Duration = Duration::from_secs(60);

/// The tests of this file run one at a time: each starts a deployment of 5 or 6 servers
/// and 8 busy threads, and the sentinel tests depend on the pool hearing the leader's
/// `+selected-slave` within the ~100 ms before it promotes the replica, which a machine
/// running all of them at once on 2 cores may not leave it.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One thread's counts.
#[derive(Default, Clone)]
struct ThreadCounts {
    acked: u64,
    errors: u64,
    longest_pause: Duration,
}

/// 8 threads doing INCR on their own key through `op` until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Vec<AtomicU64>>,
    threads: Vec<thread::JoinHandle<ThreadCounts>>,
    keys: Vec<String>,
}

type Op = dyn Fn(&[u8]) -> Result<Reply, Error> + Send + Sync;

impl Load {
    fn start(tag: &str, op: Arc<Op>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
        let keys: Vec<String> = (0..THREADS)
            .map(|i| format!("failover:{tag}:{i}"))
            .collect();
        let threads = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let (stop, acked, op, key) = (stop.clone(), acked.clone(), op.clone(), key.clone());
                thread::spawn(move || {
                    let mut c = ThreadCounts::default();
                    let mut last_ack = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        match op(key.as_bytes()) {
                            Ok(Reply::Integer(_)) => {
                                c.acked += 1;
                                acked[i].store(c.acked, Ordering::Relaxed);
                                c.longest_pause = c.longest_pause.max(last_ack.elapsed());
                                last_ack = Instant::now();
                            }
                            // An error reply or a failed call: the INCR may or may not
                            // have been applied.
                            _ => {
                                c.errors += 1;
                                // A client backs off a little after an error.
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    c
                })
            })
            .collect();
        Load {
            stop,
            acked,
            threads,
            keys,
        }
    }

    fn acked(&self) -> Vec<u64> {
        self.acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    /// One phase of load: every thread acknowledges `more` INCRs beyond what it had, then,
    /// in a long run (`REDISPOOL_FAILOVER_SECS`), the load goes on for that long.
    fn phase(&self, more: u64, what: &str) {
        self.await_progress(&self.acked(), more, what);
        if let Some(d) = long_run() {
            thread::sleep(d);
            self.await_progress(&self.acked(), 1, what);
        }
    }

    /// Waits (bounded) until every thread acknowledged `more` INCRs beyond `from`.
    fn await_progress(&self, from: &[u64], more: u64, what: &str) {
        let end = Instant::now() + LIMIT;
        while self.acked().iter().zip(from).any(|(a, f)| *a < f + more) {
            assert!(
                Instant::now() < end,
                "{what}: no progress within {LIMIT:?}: {:?}",
                self.acked()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self) -> (Vec<String>, Vec<ThreadCounts>) {
        self.stop.store(true, Ordering::Relaxed);
        let counts = self
            .threads
            .into_iter()
            .map(|t| t.join().expect("load thread"))
            .collect();
        (self.keys, counts)
    }
}

/// The row of the table, from the counts and the final values.
struct Row {
    acked: u64,
    lost: u64,
    /// Values above acknowledged + ambiguous (errors): must never happen.
    extra: u64,
    errors: u64,
    longest_pause: Duration,
}

fn tally(counts: &[ThreadCounts], values: &[i64]) -> Row {
    let mut row = Row {
        acked: 0,
        lost: 0,
        extra: 0,
        errors: 0,
        longest_pause: Duration::ZERO,
    };
    for (c, &v) in counts.iter().zip(values) {
        let v = v.max(0) as u64;
        row.acked += c.acked;
        row.errors += c.errors;
        row.lost += c.acked.saturating_sub(v);
        row.extra += v.saturating_sub(c.acked + c.errors);
        row.longest_pause = row.longest_pause.max(c.longest_pause);
    }
    row
}

/// `REDISPOOL_FAILOVER_SECS`: how long each phase of load lasts beyond its 200 INCRs per
/// thread (unset: no longer, the short run of the README test command).
fn long_run() -> Option<Duration> {
    let v = std::env::var("REDISPOOL_FAILOVER_SECS").ok()?;
    let secs: u64 = v
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("REDISPOOL_FAILOVER_SECS={v:?}: a whole number of seconds"));
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn print_row(scenario: &str, r: &Row) {
    println!(
        "| {scenario} | {} of {} lost ({:.3} %) | {} | {} ms |",
        r.lost,
        r.acked,
        100.0 * r.lost as f64 / r.acked.max(1) as f64,
        r.errors,
        r.longest_pause.as_millis()
    );
    // The benchmark suite's table: scenario, acknowledged writes, acknowledged writes
    // lost, errors returned, longest pause.
    if let Ok(path) = std::env::var("REDISPOOL_FAILOVER_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("REDISPOOL_FAILOVER_REPORT {path}: {e}"));
        writeln!(
            f,
            "| {scenario} | {} | {} ({:.3} %) | {} | {} ms |",
            r.acked,
            r.lost,
            100.0 * r.lost as f64 / r.acked.max(1) as f64,
            r.errors,
            r.longest_pause.as_millis()
        )
        .unwrap_or_else(|e| panic!("REDISPOOL_FAILOVER_REPORT {path}: {e}"));
    }
}

fn get_int(addr: &str, key: &str) -> i64 {
    match query(addr, &["GET", key]).expect("GET") {
        Reply::Nil => 0,
        r => text(&r)
            .parse()
            .unwrap_or_else(|_| panic!("GET {key}: {r:?}")),
    }
}

fn sentinel_pool(d: &Deployment) -> ConnPool {
    let state =
        SentinelState::new(SentinelConfig::new(MASTER_NAME, d.sentinel_addrs())).expect("config");
    let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
    opts.pool_size = THREADS * 2;
    // Gets wait out the failover within their own timeout.
    opts.pool_timeout = Wait::For(Duration::from_secs(10));
    opts.dial_timeout = Some(Duration::from_secs(10));
    opts.read_timeout = Some(Duration::from_secs(3));
    ConnPool::new(opts).expect("pool")
}

fn incr_through(pool: &ConnPool) -> Arc<Op> {
    let pool = pool.clone();
    Arc::new(move |key: &[u8]| {
        let mut conn = pool.get()?;
        let res = conn.command(&[b"INCR", key]);
        let _ = pool.put(conn);
        res
    })
}

thread_local! {
    /// The conn a load thread of `incr_on_held_conn` keeps between calls.
    static HELD: std::cell::RefCell<Option<redispool::pool::Conn>> =
        const { std::cell::RefCell::new(None) };
}

/// INCR on a conn each thread keeps checked out across calls (a caller holding a conn for
/// a session of many commands); after a failed call it gives the conn back and gets another.
fn incr_on_held_conn(pool: &ConnPool) -> Arc<Op> {
    let pool = pool.clone();
    Arc::new(move |key: &[u8]| {
        let mut conn = match HELD.with(|h| h.borrow_mut().take()) {
            Some(c) => c,
            None => pool.get()?,
        };
        let res = conn.command(&[b"INCR", key]);
        match &res {
            Ok(Reply::Integer(_)) => HELD.with(|h| *h.borrow_mut() = Some(conn)),
            _ => {
                let _ = pool.put(conn);
            }
        }
        res
    })
}

/// Waits until the pool ended a failover on `new_master`.
fn await_pool_on(pool: &ConnPool, new_master: &str, d: &Deployment) {
    let s = pool.sentinel().expect("a sentinel pool");
    d.await_cond("the pool resumed on the new master", LIMIT, || {
        s.master_addr().as_deref() == Some(new_master) && !s.failover_stats().in_failover
    });
}

/// `SENTINEL FAILOVER` asked of sentinel `which` of `d`.
fn sentinel_failover(d: &Deployment, which: usize) {
    let r = query(
        &d.sentinels[which].addr(),
        &["SENTINEL", "FAILOVER", MASTER_NAME],
    )
    .expect("SENTINEL FAILOVER");
    assert_eq!(text(&r), "OK", "SENTINEL FAILOVER: {r:?}");
}

fn sigkill(pid: u32) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
}

/// The sentinel scenarios' sequence: a phase of `load`, `fail_over`, the pool awaited on
/// the replica of `d` (its TLS port on a TLS deployment), a phase of load there, then every
/// key read back from the replica, tallied and printed as `scenario`'s row. Asserts that no
/// value is above acknowledged + ambiguous; the caller asserts what its scenario may lose.
fn sentinel_scenario(
    d: &Deployment,
    pool: &ConnPool,
    load: Load,
    fail_over: impl FnOnce(),
    scenario: &str,
) -> Row {
    let new_master = d.replica.addr();
    let new_master_served = match d.replica_tls_port {
        Some(port) => format!("127.0.0.1:{port}"),
        None => new_master.clone(),
    };
    load.phase(200, "before the failover");
    fail_over();
    await_pool_on(pool, &new_master_served, d);
    // Every thread writes on the new master for a while.
    load.phase(200, "after the failover");
    let (keys, counts) = load.finish();
    let values: Vec<i64> = keys.iter().map(|k| get_int(&new_master, k)).collect();
    let row = tally(&counts, &values);
    print_row(scenario, &row);
    assert_eq!(
        row.extra, 0,
        "values above acknowledged + ambiguous: {values:?}"
    );
    row
}

/// One test's sentinel scenario, start to end: (one at a time) a deployment with a 2 s
/// down-after and a pool through its sentinels, load through `op` tagged `tag`, failed
/// over by `fail_over`, as `sentinel_scenario`; then `check` asserts what the scenario
/// may lose, given the pool and the row, and the pool is closed.
fn on_sentinel_deployment(
    tag: &str,
    op: fn(&ConnPool) -> Arc<Op>,
    fail_over: impl FnOnce(&Deployment),
    scenario: &str,
    check: impl FnOnce(&ConnPool, &Row),
) {
    let _serial = serial();
    let d = Deployment::start_with_down_after(DOWN_AFTER_MS);
    let pool = sentinel_pool(&d);
    let load = Load::start(tag, op(&pool));
    let row = sentinel_scenario(&d, &pool, load, || fail_over(&d), scenario);
    check(&pool, &row);
    pool.close().expect("close");
}

fn assert_none_lost(row: &Row) {
    assert_eq!(
        row.lost, 0,
        "acknowledged INCRs lost: {} of {}",
        row.lost, row.acked
    );
}

#[test]
fn sentinel_failover_loses_no_acknowledged_write() {
    on_sentinel_deployment(
        "sentinel",
        incr_through,
        |d| sentinel_failover(d, 0),
        "`SENTINEL FAILOVER`, old master alive",
        |pool, row| {
            let fs = pool.sentinel().expect("sentinel").failover_stats();
            println!(
                "sentinel stats: failovers {}, waits {}, switches {}, longest pause {} ms, \
                 conns retired {}",
                fs.failovers,
                fs.waits,
                fs.switches,
                fs.longest_pause_ms,
                pool.retired_conns()
            );
            assert_none_lost(row);
            assert!(fs.failovers >= 1 && fs.switches == 1, "{fs:?}");
        },
    );
}

/// Conns held across the failover refuse commands from the first sign on (they would
/// write to the old master until it is demoted, a second or more later), so nothing
/// written through them is lost either.
#[test]
fn sentinel_failover_conns_held_across_it_lose_nothing() {
    on_sentinel_deployment(
        "held",
        incr_on_held_conn,
        |d| sentinel_failover(d, 1),
        "`SENTINEL FAILOVER`, conns held across it",
        |_, row| assert_none_lost(row),
    );
}

#[test]
fn sentinel_master_sigkilled() {
    on_sentinel_deployment(
        "sigkill",
        incr_through,
        |d| sigkill(d.master.pid()),
        "sentinel: master SIGKILLed",
        |_, row| {
            // Only what the replica had not received can be lost: at most a moment of
            // writes.
            assert!(
                row.lost * 10 < row.acked,
                "lost {} of {} acknowledged INCRs",
                row.lost,
                row.acked
            );
            // Gets wait out the promotion instead of failing: only the calls under way at
            // the kill fail (before the pause on unreachable masters: 1254-1592 errors).
            assert!(
                row.errors <= 4 * THREADS as u64,
                "{} errors returned",
                row.errors
            );
            // down-after, the election and the promotion, with generous slack for a
            // loaded machine.
            assert!(
                row.longest_pause
                    < Duration::from_millis(u64::from(DOWN_AFTER_MS)) + Duration::from_secs(30),
                "longest pause {:?}",
                row.longest_pause
            );
        },
    );
}

// ---------------------------------------------------------------------------
// Redis Cluster: 3 masters with a replica each (`common::cluster::ClusterHarness`,
// `cluster-node-timeout` 1000 ms).
// ---------------------------------------------------------------------------

struct Node(ConnPool, String);

impl NodePool for Node {
    fn conn_pool(&self) -> &ConnPool {
        &self.0
    }
}

fn cluster_client(h: &ClusterHarness) -> Arc<Cluster<Node>> {
    let seeds = h.seed_addrs();
    let mut node = Options::new(Dialer::from_addr(&seeds[0]).expect("addr"));
    node.pool_size = THREADS * 2;
    node.pool_timeout = Wait::For(Duration::from_secs(10));
    node.dial_timeout = Some(Duration::from_secs(1));
    node.read_timeout = Some(Duration::from_secs(3));
    let mut opts = ClusterOptions::new(seeds, node);
    opts.max_redirects = 5;
    Arc::new(
        Cluster::new(
            opts,
            Box::new(|pool, addr: &str| Arc::new(Node(pool, addr.to_string()))),
        )
        .expect("cluster"),
    )
}

/// INCR through the cluster client: the slot's master, MOVED / ASK / TRYAGAIN followed.
fn incr_cluster(c: &Arc<Cluster<Node>>) -> Arc<Op> {
    let c = c.clone();
    Arc::new(move |key: &[u8]| {
        let (node, mut conn) =
            c.get_slot(key_slot(key), Wait::For(Duration::from_secs(10)), None)?;
        let args: [&[u8]; 2] = [b"INCR", key];
        let res = conn
            .command(&args)
            .and_then(|r| c.follow(&node.1, &mut conn, &args, r, None));
        let pool = node.conn_pool();
        let _ = if conn.broken_reason().is_some() {
            pool.remove(conn, None)
        } else {
            pool.put(conn)
        };
        res
    })
}

fn cluster_values(h: &ClusterHarness, keys: &[String]) -> Vec<i64> {
    h.wait_settled();
    keys.iter()
        .map(|k| {
            let r = h.query(&h.master_of_key(k.as_bytes()), &["GET", k]);
            let t = r.text();
            if t.is_empty() || t == "(nil)" {
                0
            } else {
                t.parse().unwrap_or_else(|_| panic!("GET {k}: {t:?}"))
            }
        })
        .collect()
}

/// Waits (bounded) until the harness sees `addr` serving the slot of `key`.
fn await_owner(h: &ClusterHarness, key: &str, addr: &str) {
    let end = Instant::now() + LIMIT;
    while h.master_of_key(key.as_bytes()) != addr {
        assert!(Instant::now() < end, "{addr} did not take over {key}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The master serving the first key of `load` failed over by `fail_over` (given its address,
/// it returns the node taking over), awaited until the harness sees the new owner.
fn fail_over_master_of_first_key(
    h: &ClusterHarness,
    load: &Load,
    fail_over: impl FnOnce(&str) -> String,
) {
    let key = &load.keys[0];
    let victim = h.master_of_key(key.as_bytes());
    let new_owner = fail_over(&victim);
    await_owner(h, key, &new_owner);
}

/// `CLUSTER FAILOVER [FORCE]` (`how`) asked of the first replica of `victim`, which it
/// returns.
fn cluster_failover_command(h: &ClusterHarness, victim: &str, how: &[&str]) -> String {
    let replica = h.replicas_of(victim)[0].clone();
    let args: Vec<&str> = ["CLUSTER", "FAILOVER"].iter().chain(how).copied().collect();
    assert_eq!(h.command(&replica, &args), "OK");
    replica
}

/// A phase of load, the master of the first key failed over by `fail_over` (as
/// `fail_over_master_of_first_key`), and a phase of load after it.
fn phases_around_failover(h: &ClusterHarness, load: &Load, fail_over: impl FnOnce(&str) -> String) {
    load.phase(200, "before the failover");
    fail_over_master_of_first_key(h, load, fail_over);
    load.phase(200, "after the failover");
}

/// One test's cluster scenario, start to end: (one at a time) 3 masters with a replica
/// each and a client, load through `op` tagged `tag`, `run` given the harness and the
/// load, and the client closed.
fn on_cluster(
    tag: &str,
    op: fn(&Arc<Cluster<Node>>) -> Arc<Op>,
    run: impl FnOnce(&ClusterHarness, Load),
) {
    let _serial = serial();
    let h = ClusterHarness::start(3, 1);
    let c = cluster_client(&h);
    run(&h, Load::start(tag, op(&c)));
    c.close().expect("close");
}

/// The load stopped and every key read back from its master, tallied and printed as
/// `scenario`'s row. Asserts that no value is above acknowledged + ambiguous.
fn cluster_row(h: &ClusterHarness, load: Load, scenario: &str) -> Row {
    let (keys, counts) = load.finish();
    let row = tally(&counts, &cluster_values(h, &keys));
    print_row(scenario, &row);
    assert_eq!(row.extra, 0);
    row
}

#[test]
fn cluster_graceful_failover_and_reshard_lose_nothing() {
    on_cluster("cluster-graceful", incr_cluster, |h, load| {
        phases_around_failover(h, &load, |victim| cluster_failover_command(h, victim, &[]));
        // A reshard under load: the slot of another key moves to another master.
        let moved = load.keys[1].clone();
        let slot = key_slot(moved.as_bytes());
        // Every node agrees on the failover first (the old master is a replica everywhere).
        let to = h
            .wait_settled()
            .into_iter()
            .find(|n| n.role == Role::Master && n.alive && !n.owns(slot))
            .expect("another master")
            .addr;
        h.migrate_slot(slot, &to);
        load.phase(200, "after the reshard");
        let row = cluster_row(h, load, "`CLUSTER FAILOVER` (graceful) + reshard");
        assert_none_lost(&row);
    });
}

#[test]
fn cluster_failover_force() {
    on_cluster("cluster-force", incr_cluster, |h, load| {
        phases_around_failover(h, &load, |victim| {
            cluster_failover_command(h, victim, &["FORCE"])
        });
        cluster_row(h, load, "`CLUSTER FAILOVER FORCE`, old master alive");
    });
}

#[test]
fn cluster_master_sigkilled() {
    on_cluster("cluster-kill", incr_cluster, |h, load| {
        phases_around_failover(h, &load, |victim| h.kill_master_and_await_failover(victim));
        let row = cluster_row(h, load, "cluster: master SIGKILLed");
        // Only what the replica had not received can be lost.
        assert!(
            row.lost * 10 < row.acked,
            "lost {} of {}",
            row.lost,
            row.acked
        );
    });
}

// ---------------------------------------------------------------------------
// WAIT: writes confirmed by replicas (`Conn::wait_replicas`, `pool_conn_wait_replicas`).
// ---------------------------------------------------------------------------

/// INCR then `WAIT 1 200` on the same conn: acknowledged only once a replica has it. A
/// write redirected to another node (whose conn this WAIT does not cover) counts as an
/// error, as does one no replica confirmed in time.
fn incr_cluster_confirmed(c: &Arc<Cluster<Node>>) -> Arc<Op> {
    let c = c.clone();
    Arc::new(move |key: &[u8]| {
        let (node, mut conn) =
            c.get_slot(key_slot(key), Wait::For(Duration::from_secs(10)), None)?;
        let res = match conn.command(&[b"INCR", key]) {
            Ok(r @ Reply::Integer(_)) => match conn.wait_replicas(1, Duration::from_millis(200)) {
                Ok(k) if k >= 1 => Ok(r),
                Ok(_) => Err(Error::Timeout("no replica confirmed the write".into())),
                Err(e) => Err(e),
            },
            Ok(other) => {
                c.refresh_soon();
                Ok(other)
            }
            Err(e) => Err(e),
        };
        let pool = node.conn_pool();
        let _ = if conn.broken_reason().is_some() {
            pool.remove(conn, None)
        } else {
            pool.put(conn)
        };
        res
    })
}

#[test]
fn cluster_failover_force_loses_no_write_a_replica_confirmed() {
    on_cluster("cluster-force-wait", incr_cluster_confirmed, |h, load| {
        load.await_progress(&[0; THREADS], 100, "before the failover");
        fail_over_master_of_first_key(h, &load, |victim| {
            cluster_failover_command(h, victim, &["FORCE"])
        });
        load.await_progress(&load.acked(), 100, "after the failover");
        let row = cluster_row(h, load, "`CLUSTER FAILOVER FORCE` + WAIT 1 200");
        assert_eq!(
            row.lost, 0,
            "writes a replica confirmed were lost: {} of {}",
            row.lost, row.acked
        );
    });
}

#[test]
fn wait_replicas_confirms_and_costs() {
    let _serial = serial();
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let end = Instant::now() + LIMIT;
    while info_field(&replica.addr(), "replication", "master_link_status").as_deref() != Some("up")
    {
        assert!(Instant::now() < end, "the replica did not sync");
        thread::sleep(Duration::from_millis(20));
    }
    let mut opts = Options::new(Dialer::from_addr(&master.addr()).expect("addr"));
    opts.pool_size = 1;
    let pool = ConnPool::new(opts).expect("pool");
    let mut conn = pool.get().expect("get");
    const N: u32 = 2000;
    let t = Instant::now();
    for _ in 0..N {
        conn.command(&[b"INCR", b"wait:plain"]).expect("INCR");
    }
    let plain = t.elapsed();
    let t = Instant::now();
    for _ in 0..N {
        conn.command(&[b"INCR", b"wait:confirmed"]).expect("INCR");
        assert_eq!(
            conn.wait_replicas(1, Duration::from_secs(5)).expect("WAIT"),
            1
        );
    }
    let confirmed = t.elapsed();
    println!(
        "WAIT 1 after each INCR, one conn: {:.1} us per write vs {:.1} us without ({:.2}x)",
        confirmed.as_secs_f64() * 1e6 / f64::from(N),
        plain.as_secs_f64() * 1e6 / f64::from(N),
        confirmed.as_secs_f64() / plain.as_secs_f64()
    );
    // Two replicas cannot confirm: the count says one, the conn stays good.
    assert_eq!(
        conn.wait_replicas(2, Duration::from_millis(50))
            .expect("WAIT"),
        1
    );
    assert!(conn.broken_reason().is_none());
    // A replica refuses WAIT: an error, the conn stays good.
    drop(conn);
    let mut ro = Options::new(Dialer::from_addr(&replica.addr()).expect("addr"));
    ro.pool_size = 1;
    let rpool = ConnPool::new(ro).expect("pool");
    let mut rc = rpool.get().expect("get");
    let e = rc.wait_replicas(1, Duration::from_millis(50)).unwrap_err();
    assert!(
        matches!(&e, Error::Io(m) if m.contains("WAIT refused")),
        "{e:?}"
    );
    assert!(rc.broken_reason().is_none());
    rpool.put(rc).expect("put");
}

/// A master that could not be dialed pauses the pool; when it comes back (a restart, no
/// failover) the pool resumes on it, even with every sentinel down.
#[test]
fn sentinel_pool_resumes_on_a_restarted_master_with_the_sentinels_down() {
    let _serial = serial();
    let mut d = Deployment::start();
    let pool = sentinel_pool(&d);
    let incr = incr_through(&pool);
    assert!(matches!(incr(b"restart"), Ok(Reply::Integer(1))));
    d.sentinels.clear();
    sigkill(d.master.pid());
    // A call on a conn to the dead master fails; then a dial fails and the pool pauses.
    let getter = {
        let incr = incr.clone();
        thread::spawn(move || {
            let end = Instant::now() + LIMIT;
            loop {
                let res = incr(b"restart");
                if res.is_ok() || Instant::now() >= end {
                    return res;
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let s = pool.sentinel().expect("sentinel");
    let end = Instant::now() + LIMIT;
    while !s.failover_stats().in_failover {
        assert!(Instant::now() < end, "the pool did not pause");
        thread::sleep(Duration::from_millis(10));
    }
    d.master.restart();
    let res = getter.join().expect("getter");
    // The restarted master is empty: the INCR there gives 1.
    assert!(matches!(res, Ok(Reply::Integer(1))), "{res:?}");
    let st = s.failover_stats();
    assert!(
        !st.in_failover && st.failovers == 0 && st.waits >= 1,
        "{st:?}"
    );
    assert_eq!(s.master_addr(), Some(d.master.addr()));
    pool.close().expect("close");
}

/// The same over TLS (the master conns, and the resolver's ROLE probe of the node being
/// promoted, which must speak TLS too or the pause would never end).
#[test]
fn sentinel_failover_over_tls_loses_no_acknowledged_write() {
    use redispool::redis::tls::{TlsConfig, TlsSettings};
    let _serial = serial();
    let d = Deployment::start_tls();
    let state =
        SentinelState::new(SentinelConfig::new(MASTER_NAME, d.sentinel_addrs())).expect("config");
    let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
    opts.pool_size = THREADS * 2;
    opts.pool_timeout = Wait::For(Duration::from_secs(10));
    opts.dial_timeout = Some(Duration::from_secs(10));
    let settings = TlsSettings {
        ca_file: Some(common::tls::certs().path("ca.pem")),
        ..TlsSettings::default()
    };
    opts.tls = Some(Arc::new(TlsConfig::new(&settings).expect("TLS config")));
    let pool = ConnPool::new(opts).expect("pool");
    let row = sentinel_scenario(
        &d,
        &pool,
        Load::start("tls", incr_through(&pool)),
        || sentinel_failover(&d, 2),
        "`SENTINEL FAILOVER` over TLS",
    );
    assert_none_lost(&row);
    pool.close().expect("close");
}
