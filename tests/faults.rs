//! Server faults under load, through the C ABI (called from Rust as a C program would):
//! 64 threads loop on pool_get_ex + PING (pool_conn_command) + pool_put (pool_remove after
//! a failed command) against a redis-server the test owns, while the test kills it with
//! SIGKILL and restarts it on the same port, stops it with SIGSTOP and resumes it, kills
//! the pool's conns with CLIENT KILL, or fills its maxclients.
//!
//! After each fault: no crash, no hang (every thread is joined within a bound), every
//! status is one the contract promises for that fault, with a clear message, every thread
//! succeeds again within a bound, `total_conns` equals both the sockets the process really
//! has open to the server (/proc) and the clients the server counts, and once the pool is
//! freed the process has exactly the fds it had before. The figures (faults survived,
//! recovery times, operations, fds) are printed (`--nocapture`).
//!
//! The tests run one at a time (a lock): fd counts are per process.

mod common;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::RedisServer;
use common::admin::Admin;
use common::capi::{CConn, CPool, Failure};
use common::procfs::{fd_listing, open_fds, poll_until, tcp_sockets_to_port};
use redispool::ffi::reply::POOL_REPLY_ERROR;
use redispool::ffi::status::*;

const THREADS: usize = 64;
/// Bounds for conditions that settle within milliseconds on an idle machine; generous
/// because the test machine may be slow and shared.
const SETTLE: Duration = Duration::from_secs(20);

/// One test at a time: the fd and socket counts are per process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The load: THREADS threads looping on get + PING + put, every operation logged.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Get,
    Command,
    /// pool_put / pool_remove returned something other than POOL_OK.
    Release,
}

/// One get + PING + put/remove.
#[derive(Clone, Copy, Debug)]
struct Op {
    start: Instant,
    /// When pool_get_ex returned.
    got: Instant,
    end: Instant,
    failure: Option<(Step, pool_status_t)>,
}

impl Op {
    fn ok(&self) -> bool {
        self.failure.is_none()
    }
    fn get_took(&self) -> Duration {
        self.got - self.start
    }
    fn command_took(&self) -> Duration {
        self.end - self.got
    }
}

#[derive(Default)]
struct ThreadLog {
    ops: Vec<Op>,
    /// Every distinct (step, code, message) seen, with how often.
    messages: Vec<(Step, Failure, u64)>,
}

impl ThreadLog {
    fn note(&mut self, step: Step, f: Failure) {
        match self
            .messages
            .iter_mut()
            .find(|(s, g, _)| *s == step && *g == f)
        {
            Some(entry) => entry.2 += 1,
            None => self.messages.push((step, f, 1)),
        }
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    logs: Arc<Vec<Mutex<ThreadLog>>>,
    handles: Vec<JoinHandle<()>>,
}

/// A failed step: pause a little before the next try, as a client would, so 64 threads
/// spinning on errors leave the CPU to the server being restarted.
const ERROR_PAUSE: Duration = Duration::from_millis(2);

impl Load {
    fn start(pool: &Arc<CPool>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let logs: Arc<Vec<Mutex<ThreadLog>>> =
            Arc::new((0..THREADS).map(|_| Mutex::default()).collect());
        let handles = (0..THREADS)
            .map(|t| {
                let (pool, stop, logs) = (pool.clone(), stop.clone(), logs.clone());
                thread::Builder::new()
                    .name(format!("load-{t}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let (op, failure) = one_op(&pool);
                            let mut log = logs[t].lock().unwrap();
                            log.ops.push(op);
                            if let Some((step, f)) = failure {
                                log.note(step, f);
                                drop(log);
                                thread::sleep(ERROR_PAUSE);
                            }
                        }
                    })
                    .expect("spawn load thread")
            })
            .collect();
        Load {
            stop,
            logs,
            handles,
        }
    }

    /// Whether `cond` holds for every thread's log.
    fn all(&self, mut cond: impl FnMut(&ThreadLog) -> bool) -> bool {
        self.logs.iter().all(|l| cond(&l.lock().unwrap()))
    }

    /// Waits until `cond` holds for every thread (bounded), or panics naming `what`.
    fn await_all(&self, what: &str, limit: Duration, mut cond: impl FnMut(&ThreadLog) -> bool) {
        if !poll_until(limit, || self.all(&mut cond)) {
            let lagging: Vec<usize> = (0..THREADS)
                .filter(|&t| !cond(&self.logs[t].lock().unwrap()))
                .collect();
            panic!(
                "not every thread got there within {limit:?}: {what}; lagging threads {lagging:?}\n{}",
                self.summary()
            );
        }
    }

    /// Every thread has `n` successful ops that started at or after `since`.
    fn await_successes(&self, n: usize, since: Instant) {
        self.await_all(&format!("{n} successful ops each"), SETTLE, |log| {
            successes_since(log, since) >= n
        });
    }

    fn summary(&self) -> String {
        let mut out = String::new();
        let mut all: Vec<(Step, Failure, u64)> = Vec::new();
        for log in self.logs.iter() {
            for (s, f, n) in &log.lock().unwrap().messages {
                match all.iter_mut().find(|(s2, f2, _)| s2 == s && f2 == f) {
                    Some(e) => e.2 += n,
                    None => all.push((*s, f.clone(), *n)),
                }
            }
        }
        for (s, f, n) in all {
            out += &format!("  {n} x {s:?}: {f}\n");
        }
        out
    }

    /// Stops the threads and joins them; a thread still running after `limit` is a hang.
    fn finish(self) -> Vec<ThreadLog> {
        self.stop.store(true, Ordering::SeqCst);
        // One op is bounded by pool_timeout + dial + read + write timeouts: seconds.
        let limit = Duration::from_secs(30);
        if !poll_until(limit, || self.handles.iter().all(JoinHandle::is_finished)) {
            panic!(
                "load threads still running {limit:?} after stop: a hang\n{}",
                self.summary()
            );
        }
        for h in self.handles {
            h.join().expect("a load thread panicked");
        }
        Arc::try_unwrap(self.logs)
            .ok()
            .expect("threads joined")
            .into_iter()
            .map(|m| m.into_inner().unwrap())
            .collect()
    }
}

fn successes_since(log: &ThreadLog, since: Instant) -> usize {
    log.ops
        .iter()
        .filter(|o| o.start >= since && o.ok())
        .count()
}

/// The end of the first successful op that ended at or after `since`.
fn recovered_at(log: &ThreadLog, since: Instant) -> Option<Instant> {
    log.ops
        .iter()
        .find(|o| o.end >= since && o.ok())
        .map(|o| o.end)
}

fn one_op(pool: &CPool) -> (Op, Option<(Step, Failure)>) {
    let start = Instant::now();
    let conn = pool.get(-1);
    let got = Instant::now();
    let mut op = Op {
        start,
        got,
        end: got,
        failure: None,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(f) => {
            op.failure = Some((Step::Get, f.code));
            return (op, Some((Step::Get, f)));
        }
    };
    let res = conn.command(&[b"PING"]);
    let failure = match res {
        Ok(r) if r.text == "PONG" => release(pool, conn, false).map(|f| (Step::Release, f)),
        Ok(r) => {
            let _ = release(pool, conn, false);
            // A reply that is not PONG: a failure with a pseudo-status (-1 for an error
            // reply, -2 for anything else) and the reply as message. No test accepts it.
            Some((
                Step::Command,
                Failure {
                    code: if r.kind == POOL_REPLY_ERROR { -1 } else { -2 },
                    message: r.text,
                },
            ))
        }
        Err(f) => match release(pool, conn, true) {
            Some(rf) => Some((Step::Release, rf)),
            None => Some((Step::Command, f)),
        },
    };
    op.end = Instant::now();
    op.failure = failure.as_ref().map(|(s, f)| (*s, f.code));
    (op, failure)
}

/// Puts the conn back, or removes it after a failed command; a failure if that is refused.
fn release(pool: &CPool, conn: CConn, failed: bool) -> Option<Failure> {
    let st = if failed {
        pool.remove(conn, "command failed")
    } else {
        pool.put(conn)
    };
    (st != POOL_OK).then(|| Failure {
        code: st,
        message: format!(
            "{} returned {st}",
            if failed { "pool_remove" } else { "pool_put" }
        ),
    })
}

// ---------------------------------------------------------------------------
// Checks shared by the tests
// ---------------------------------------------------------------------------

/// Once the load has stopped: nothing checked out or dialing, `total_conns` equals the
/// sockets this process has open to the server (in any TCP state: a conn whose server died
/// is still an open fd until the pool closes it); then, after a sweep that takes every conn
/// at once and PINGs it (a dead idle conn is found stale and replaced on the way), the
/// clients the server counts. Returns (total_conns, sockets, server clients).
fn check_conns_are_real(
    pool: &CPool,
    server: &RedisServer,
    admin: &mut Admin,
) -> (u32, usize, u64) {
    assert!(
        poll_until(SETTLE, || {
            let s = pool.stats();
            s.dials_in_progress == 0 && s.pending_requests == 0
        }),
        "dials still in flight: {}",
        pool.stats_line()
    );
    let s = pool.stats();
    assert_eq!(s.in_use_conns, 0, "{}", pool.stats_line());
    assert_eq!(s.total_conns, s.idle_conns, "{}", pool.stats_line());
    // A conn closed on a library thread is closed right after the count changes: poll.
    let admin_port = admin.local_port();
    let pool_sockets = || {
        let mut v = tcp_sockets_to_port(server.port);
        v.retain(|s| s.local_port != admin_port);
        v
    };
    let sockets_match = poll_until(SETTLE, || {
        pool_sockets().len() == pool.stats().total_conns as usize
    });
    let sockets = pool_sockets();
    assert!(
        sockets_match,
        "total_conns {} but {} sockets open to port {}: {sockets:#?}",
        pool.stats().total_conns,
        sockets.len(),
        server.port
    );

    let total = pool.stats().total_conns;
    let mut held = Vec::new();
    // The sweep checks that each conn is real, not how fast a get is (the tests bound that
    // themselves): a get may have to dial and wait for it (a fresh clone's run once saw a
    // dial's set-up take over the 1 s pool_timeout of the SIGSTOP test right after
    // recovery), so it may wait up to SETTLE.
    let sweep_wait = SETTLE.as_millis() as i64;
    for _ in 0..total {
        let c = pool
            .get(sweep_wait)
            .unwrap_or_else(|f| panic!("sweep get: {f}\n{}", pool.stats_line()));
        assert_eq!(c.command(&[b"PING"]).map(|r| r.text), Ok("PONG".into()));
        held.push(c);
    }
    for c in held {
        assert_eq!(pool.put(c), POOL_OK);
    }
    let clients_match = poll_until(SETTLE, || {
        admin.other_clients() == u64::from(pool.stats().total_conns)
    });
    let clients = admin.other_clients();
    assert!(
        clients_match,
        "total_conns {} but the server counts {clients} clients besides the admin",
        pool.stats().total_conns
    );
    assert_eq!(pool_sockets().len(), pool.stats().total_conns as usize);
    (pool.stats().total_conns, sockets.len(), clients)
}

/// After the pool is freed: the process has the fds it had before the pool existed.
fn check_no_fd_leak(before: usize, listing_before: &[String]) -> usize {
    let settled = poll_until(SETTLE, || open_fds() == before);
    let after = open_fds();
    assert!(
        settled,
        "fd leak: {before} fds before, {after} after\nbefore: {listing_before:#?}\nafter: {:#?}",
        fd_listing()
    );
    after
}

/// Every conn dialed is counted open or closed: dials = total + stale + removed + evicted
/// (a fast-fail probe's conn dropped because the pool was full is the only exception,
/// hence >=).
fn check_stats_add_up(pool: &CPool) {
    let s = pool.stats();
    let accounted =
        u64::from(s.total_conns) + u64::from(s.stale_conns) + s.removed_conns + s.evicted_conns;
    assert!(
        s.dials >= accounted,
        "dials {} < accounted {accounted}: {}",
        s.dials,
        pool.stats_line()
    );
}

/// One sample message per (step, status) seen, with how often that status was seen.
fn sample_messages(logs: &[ThreadLog]) -> String {
    let mut seen: Vec<(Step, pool_status_t, u64, String)> = Vec::new();
    for log in logs {
        for (step, f, n) in &log.messages {
            match seen
                .iter_mut()
                .find(|(s, c, _, _)| s == step && *c == f.code)
            {
                Some(e) => e.2 += n,
                None => seen.push((*step, f.code, *n, f.message.clone())),
            }
        }
    }
    seen.iter()
        .map(|(s, c, n, m)| format!("\n    {n} x {s:?} status {c}, e.g. {m:?}"))
        .collect()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain syscall on the server child we started.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The process state letter of /proc/<pid>/stat ('T' when stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn percentile(mut v: Vec<Duration>, p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

// ---------------------------------------------------------------------------
// kill -9 and restart on the same port
// ---------------------------------------------------------------------------

#[test]
fn kill_9_and_restart_under_load_recovers_without_leaks() {
    let _serial = serial();
    let mut server = RedisServer::start();
    let port = server.port;
    let fds_before = open_fds();
    let listing_before = fd_listing();

    const POOL_SIZE: u32 = 16;
    let pool = Arc::new(CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size={POOL_SIZE}&pool_timeout=3s&dial_timeout=1s\
         &dialer_retries=2&dialer_retry_backoff=50ms&read_timeout=2s&write_timeout=2s\
         &client_name=rp-faults-kill9"
    )));
    let load = Load::start(&pool);
    load.await_successes(20, Instant::now());

    const CYCLES: usize = 2;
    // Per cycle: when the kill was sent, when the server answered again, the stats then.
    let mut cycles = Vec::new();
    for _ in 0..CYCLES {
        // SIGKILL: the server dies with every conn open; the port refuses new ones.
        let t_kill = Instant::now();
        signal(server.pid(), libc::SIGKILL);
        assert!(
            poll_until(SETTLE, || TcpStream::connect(("127.0.0.1", port)).is_err()),
            "port {port} still accepts after SIGKILL"
        );
        // Down: every thread sees it fail (a command on a dead conn, a refused dial, or
        // the fast-fail that follows pool_size failed dials).
        load.await_all("a failure while the server is down", SETTLE, |log| {
            log.ops.iter().any(|o| o.start >= t_kill && !o.ok())
        });
        server.restart();
        let t_up = Instant::now();
        let at_up = pool.stats();
        load.await_all("a success after the restart", SETTLE, |log| {
            recovered_at(log, t_up).is_some()
        });
        load.await_successes(20, Instant::now());
        cycles.push((t_kill, t_up, at_up, pool.stats()));
    }
    let logs = load.finish();

    // What each thread saw, and when it recovered.
    let mut recoveries = Vec::new();
    let mut failed_after_up = Vec::new();
    let mut worst_get = Duration::ZERO;
    let (mut ops, mut fails) = (0usize, 0usize);
    let mut problems = Vec::new();
    for (t, log) in logs.iter().enumerate() {
        ops += log.ops.len();
        fails += log.ops.iter().filter(|o| !o.ok()).count();
        for (c, &(_, t_up, _, _)) in cycles.iter().enumerate() {
            let next_kill = cycles.get(c + 1).map(|n| n.0);
            let before_next = |o: &&Op| next_kill.is_none_or(|k| o.end < k);
            let back = recovered_at(log, t_up).expect("awaited above");
            recoveries.push(back - t_up);
            failed_after_up.push(
                log.ops
                    .iter()
                    .filter(|o| o.start >= t_up && o.end <= back && !o.ok())
                    .count(),
            );
            // After its first success, a thread never fails again (until the next kill).
            if let Some(o) = log
                .ops
                .iter()
                .filter(before_next)
                .find(|o| o.start > back && !o.ok())
            {
                problems.push(format!(
                    "thread {t} failed again after recovering from kill {c}: {o:?}"
                ));
            }
        }
        for o in &log.ops {
            worst_get = worst_get.max(o.get_took());
        }
        for (step, f, n) in &log.messages {
            // Gets: a refused dial (with the address and the OS error, or the set-up cut
            // short) or its fast-fail repeat; a pool timeout when every turn was busy
            // dialing. Commands: on the conns of the dead server (EOF, reset, broken pipe).
            let fine = match step {
                Step::Get if f.code == POOL_ERR_DIAL => {
                    f.message.contains(&format!("127.0.0.1:{port}"))
                }
                Step::Get if f.code == POOL_ERR_TIMEOUT => {
                    f.message.starts_with("redis: connection pool timeout")
                }
                Step::Command if f.code == POOL_ERR_IO => ["EOF", "reset", "Broken pipe"]
                    .iter()
                    .any(|w| f.message.contains(w)),
                _ => false,
            };
            if !fine {
                problems.push(format!("thread {t}: {n} x {step:?} {f}"));
            }
        }
    }
    // No get outlived the pool timeout (3 s: it bounds the wait for a turn and the dial
    // together), with slack for a slow machine.
    assert!(
        worst_get < Duration::from_secs(6),
        "a get took {worst_get:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every thread is back within the fast-fail probe's period (1 s: after pool_size failed
    // dials gets fail at once until the probe's dial succeeds) plus one dial, with slack.
    let worst_recovery = recoveries.iter().max().copied().unwrap_or_default();
    assert!(
        worst_recovery < Duration::from_secs(5),
        "recovery took up to {worst_recovery:?}: {recoveries:?}"
    );

    // Within one dial: no dial started after the restart fails. Only dials already in
    // flight when the server came back (counted in dials_in_progress), or the fast-fail
    // probe's (one at a time, not counted there), may still end in the refusal they got.
    let mut dial_errors_after_up = 0;
    for (c, (_, _, at_up, recovered)) in cycles.iter().enumerate() {
        let n = recovered.dial_errors - at_up.dial_errors;
        assert!(
            n <= u64::from(at_up.dials_in_progress) + 1,
            "kill {c}: {n} dials failed after the restart ({} were in flight then)",
            at_up.dials_in_progress
        );
        dial_errors_after_up += n;
    }
    let downtimes: Vec<u128> = cycles.iter().map(|c| ms(c.1 - c.0)).collect();
    let first_back = recoveries.iter().min().copied().unwrap_or_default();

    let mut admin = server.admin();
    let (total, sockets, clients) = check_conns_are_real(&pool, &server, &mut admin);
    check_stats_add_up(&pool);
    let s = pool.stats();
    drop(admin);
    drop(pool);
    let fds_after = check_no_fd_leak(fds_before, &listing_before);
    eprintln!(
        "kill -9 + restart: {CYCLES} kills survived; {ops} ops by {THREADS} threads, {fails} failed ({} after the \
         restarts, at most {} per thread and restart); down {downtimes:?} ms; recovery after a restart: \
         first thread {}ms, median {}ms, last {}ms; \
         {dial_errors_after_up} dials failed after the restart; worst get {}ms; total_conns {total} = {sockets} sockets = {clients} server clients; {} stale + {} removed conns \
         replaced by {} dials ({} dial errors); fds {fds_before} before, {fds_after} after; failures:{}",
        failed_after_up.iter().sum::<usize>(),
        failed_after_up.iter().max().unwrap_or(&0),
        ms(first_back),
        ms(percentile(recoveries.clone(), 50)),
        ms(worst_recovery),
        ms(worst_get),
        s.stale_conns,
        s.removed_conns,
        s.dials,
        s.dial_errors,
        sample_messages(&logs),
    );
}

// ---------------------------------------------------------------------------
// SIGSTOP / SIGCONT
// ---------------------------------------------------------------------------

/// SIGCONTs the server when dropped, so a failing test never leaves it stopped.
struct ContGuard(u32);

impl Drop for ContGuard {
    fn drop(&mut self) {
        // SAFETY: plain syscall on the server child we started.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

#[test]
fn sigstop_bounds_every_get_and_sigcont_recovers() {
    let _serial = serial();
    let server = RedisServer::start();
    let (port, pid) = (server.port, server.pid());
    let fds_before = open_fds();
    let listing_before = fd_listing();

    const POOL_TIMEOUT: Duration = Duration::from_millis(1000);
    const DIAL_TIMEOUT: Duration = Duration::from_millis(500);
    const IO_TIMEOUT: Duration = Duration::from_millis(500);
    /// Scheduling delays on a slow, shared machine.
    const SLACK: Duration = Duration::from_millis(1500);
    let pool = Arc::new(CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=8&pool_timeout={}ms&dial_timeout={}ms\
         &read_timeout={}ms&write_timeout={}ms&dialer_retries=1&client_name=rp-faults-stop",
        ms(POOL_TIMEOUT),
        ms(DIAL_TIMEOUT),
        ms(IO_TIMEOUT),
        ms(IO_TIMEOUT)
    )));
    let load = Load::start(&pool);
    load.await_successes(20, Instant::now());

    let guard = ContGuard(pid);
    signal(pid, libc::SIGSTOP);
    assert!(
        poll_until(SETTLE, || proc_state(pid) == Some('T')),
        "redis-server never showed as stopped"
    );
    let t_stopped = Instant::now();
    // Stopped: the kernel still completes TCP handshakes (the listen backlog), so dials
    // connect, but nothing is read or answered.
    load.await_all("3 ops while the server is stopped", SETTLE, |log| {
        log.ops.iter().filter(|o| o.start >= t_stopped).count() >= 3
    });
    let t_cont = Instant::now();
    signal(pid, libc::SIGCONT);
    drop(guard);
    load.await_all("a success after SIGCONT", SETTLE, |log| {
        recovered_at(log, t_cont).is_some()
    });
    load.await_successes(20, Instant::now());
    let logs = load.finish();

    let mut problems = Vec::new();
    let (mut stopped_ops, mut get_ok, mut get_timeout, mut get_dial) = (0, 0, 0, 0);
    let mut worst_get = Duration::ZERO;
    let mut worst_command = Duration::ZERO;
    let mut recoveries = Vec::new();
    let mut ops = 0;
    for (t, log) in logs.iter().enumerate() {
        ops += log.ops.len();
        // The bounds hold for every op, also those running when the server stopped or
        // resumed.
        for o in &log.ops {
            worst_get = worst_get.max(o.get_took());
            worst_command = worst_command.max(o.command_took());
        }
        // The ops that ran entirely while the server was stopped all failed, as follows.
        for o in log
            .ops
            .iter()
            .filter(|o| o.start >= t_stopped && o.end <= t_cont)
        {
            stopped_ops += 1;
            match o.failure {
                // A get waits at most pool_timeout in all (turn and dial).
                Some((Step::Get, POOL_ERR_TIMEOUT)) => get_timeout += 1,
                // The dial connected (backlog) but the set-up's CLIENT SETNAME got no reply
                // within read_timeout; or pool_size such failures in a row made gets fail
                // fast with that error; or the backlog was full and connect timed out.
                Some((Step::Get, POOL_ERR_DIAL)) => get_dial += 1,
                // An idle conn passed the health check (nothing to see on a stopped
                // server's socket) and its PING timed out: read_timeout.
                Some((Step::Command, POOL_ERR_IO)) => get_ok += 1,
                other => problems.push(format!("thread {t} while stopped: {other:?} in {o:?}")),
            }
        }
        let back = recovered_at(log, t_cont).expect("awaited above");
        recoveries.push(back - t_cont);
        if let Some(o) = log.ops.iter().find(|o| o.start > back && !o.ok()) {
            problems.push(format!("thread {t} failed again after recovering: {o:?}"));
        }
        for (step, f, n) in &log.messages {
            let fine = match step {
                Step::Get if f.code == POOL_ERR_TIMEOUT => {
                    f.message.starts_with("redis: connection pool timeout")
                }
                Step::Get if f.code == POOL_ERR_DIAL => {
                    f.message.contains(&format!("127.0.0.1:{port}"))
                        && (f.message.contains("timeout") || f.message.contains("timed out"))
                }
                Step::Command if f.code == POOL_ERR_IO => f.message.contains("i/o timeout"),
                _ => false,
            };
            if !fine {
                problems.push(format!("thread {t}: {n} x {step:?} {f}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let get_bound = POOL_TIMEOUT + DIAL_TIMEOUT + SLACK;
    assert!(
        worst_get <= get_bound,
        "a get took {worst_get:?} (bound {get_bound:?})"
    );
    let command_bound = 2 * IO_TIMEOUT + SLACK;
    assert!(
        worst_command <= command_bound,
        "a PING took {worst_command:?} (bound {command_bound:?})"
    );
    assert!(
        stopped_ops >= 3 * THREADS,
        "{stopped_ops} ops while stopped"
    );
    // Back within the fast-fail probe's period (1 s) plus one dial and set-up, with slack.
    let worst_recovery = recoveries.iter().max().copied().unwrap_or_default();
    assert!(
        worst_recovery < Duration::from_secs(5),
        "recovery after SIGCONT took up to {worst_recovery:?}"
    );

    let mut admin = server.admin();
    let (total, sockets, clients) = check_conns_are_real(&pool, &server, &mut admin);
    check_stats_add_up(&pool);
    drop(admin);
    drop(pool);
    let fds_after = check_no_fd_leak(fds_before, &listing_before);
    eprintln!(
        "SIGSTOP/SIGCONT: {ops} ops by {THREADS} threads; stopped {}ms: {stopped_ops} ops, all failed \
         cleanly ({get_timeout} pool timeouts, {get_dial} dial errors, {get_ok} gets ok whose PING timed \
         out); worst get {}ms (bound {}ms), worst PING {}ms; recovery after SIGCONT: first thread {}ms, \
         median {}ms, last {}ms; total_conns {total} = {sockets} sockets = {clients} server clients; \
         fds {fds_before} before, {fds_after} after; failures:{}",
        ms(t_cont - t_stopped),
        ms(worst_get),
        ms(get_bound),
        ms(worst_command),
        ms(recoveries.iter().min().copied().unwrap_or_default()),
        ms(percentile(recoveries.clone(), 50)),
        ms(worst_recovery),
        sample_messages(&logs),
    );
}

// ---------------------------------------------------------------------------
// CLIENT KILL of pooled conns
// ---------------------------------------------------------------------------

#[test]
fn client_kill_of_pooled_conns_is_detected_and_replaced() {
    let _serial = serial();
    let server = RedisServer::start();
    let port = server.port;
    let mut admin = server.admin();
    let fds_before = open_fds();
    let listing_before = fd_listing();

    const NAME: &str = "rp-faults-ckill";
    const ROUNDS: usize = 5;
    let pool = Arc::new(CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=16&pool_timeout=3s&dial_timeout=1s&read_timeout=2s\
         &write_timeout=2s&client_name={NAME}"
    )));
    let load = Load::start(&pool);
    load.await_successes(10, Instant::now());
    let mut killed = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let n = admin.kill_clients_named(NAME);
        assert!(n > 0, "no pooled conn to kill");
        killed += n;
        load.await_successes(10, t);
    }
    let logs = load.finish();

    // A killed conn is found either by the health check's peek (EOF) when a get takes it
    // from the idle list, or by the PING of a thread that already held it (EOF or reset),
    // which then removes it. Gets never fail: a dead idle conn is replaced by a dial.
    let mut problems = Vec::new();
    let (mut ops, mut failed_pings) = (0, 0u64);
    for (t, log) in logs.iter().enumerate() {
        ops += log.ops.len();
        for (step, f, n) in &log.messages {
            if *step == Step::Command
                && f.code == POOL_ERR_IO
                && (f.message.contains("EOF") || f.message.contains("reset"))
            {
                failed_pings += n;
            } else {
                problems.push(format!("thread {t}: {n} x {step:?} {f}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        failed_pings <= killed,
        "{failed_pings} failed PINGs for {killed} killed conns"
    );

    let (total, sockets, clients) = check_conns_are_real(&pool, &server, &mut admin);
    // Every killed conn was detected (the sweep took every idle conn), and each exactly
    // once: stale (peek) or removed (after its failed PING); nothing else was closed.
    let s = pool.stats();
    assert_eq!(s.removed_conns, failed_pings, "{}", pool.stats_line());
    assert_eq!(
        u64::from(s.stale_conns) + s.removed_conns,
        killed,
        "{}",
        pool.stats_line()
    );
    // ... and replaced: every dial is a conn still open or one of the killed ones.
    assert_eq!(
        s.dials,
        u64::from(s.total_conns) + killed,
        "{}",
        pool.stats_line()
    );
    assert_eq!(s.dial_errors, 0);
    drop(pool);
    let fds_after = check_no_fd_leak(fds_before, &listing_before);
    eprintln!(
        "CLIENT KILL: {ROUNDS} rounds killed {killed} pooled conns under load ({ops} ops by {THREADS} \
         threads): {} found stale by the get's peek, {failed_pings} failed one PING and were removed, \
         no get failed; {} dials; total_conns {total} = {sockets} sockets = {clients} server clients; \
         fds {fds_before} before, {fds_after} after",
        s.stale_conns, s.dials,
    );
}

// ---------------------------------------------------------------------------
// maxclients
// ---------------------------------------------------------------------------

const MAXCLIENTS_TEXT: &str = "max number of clients reached";

/// A server with maxclients 10, full: an admin conn plus 9 conns held from a pool.
/// Returns the server, the admin, the holding pool and its conns.
fn full_server() -> (RedisServer, Admin, CPool, Vec<CConn>) {
    let server = RedisServer::start_with(&["--maxclients", "10"]);
    let mut admin = server.admin();
    let holder = CPool::from_url(&format!(
        "redis://{}?pool_size=9&client_name=rp-holder",
        server.addr()
    ));
    let held: Vec<CConn> = (0..9)
        .map(|_| {
            let c = holder.get(-1).unwrap_or_else(|f| panic!("holder get: {f}"));
            assert_eq!(c.command(&[b"PING"]).map(|r| r.text), Ok("PONG".into()));
            c
        })
        .collect();
    assert!(
        poll_until(SETTLE, || admin.other_clients() == 9),
        "the server counts {} clients besides the admin, not 9",
        admin.other_clients()
    );
    (server, admin, holder, held)
}

/// What a get on a full server gives: Ok(first command's reply) when the library hands
/// out a conn anyway, or the get's failure.
fn get_on_full_server(pool: &CPool) -> (Result<String, Failure>, Duration) {
    let t = Instant::now();
    let res = pool.get(-1);
    let took = t.elapsed();
    let res = res.map(|c| {
        let reply = match c.command(&[b"PING"]) {
            Ok(r) => format!("reply type {} {:?}", r.kind, r.text),
            Err(f) => format!("command failed: {f}"),
        };
        assert_eq!(pool.remove(c, "test"), POOL_OK);
        reply
    });
    (res, took)
}

/// With a session set-up (here CLIENT SETNAME), the refusal is read during the dial.
#[test]
fn maxclients_reached_fails_the_get_with_the_servers_text_and_recovers() {
    let _serial = serial();
    let fds_before = open_fds();
    let listing_before = fd_listing();
    let (server, mut admin, holder, mut held) = full_server();
    let port = server.port;

    let pool = CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=4&pool_timeout=3s&dial_timeout=1s&dialer_retries=3\
         &dialer_retry_backoff=10ms&client_name=rp-maxclients"
    ));
    let (res, took) = get_on_full_server(&pool);
    let f = res.expect_err("a get on a server at maxclients must fail");
    // The server's refusal arrives as the reply to the first set-up command. DIAL would be
    // the natural code (the conn was refused, not the command); HANDSHAKE ("Redis refused
    // the set-up") is what the set-up reports. Either way the message must carry the
    // server's text and the address, and the get must not wait out the pool timeout.
    assert!(
        f.code == POOL_ERR_DIAL || f.code == POOL_ERR_HANDSHAKE,
        "unexpected status: {f}"
    );
    assert!(
        f.message.contains(MAXCLIENTS_TEXT),
        "message lacks the server's text: {f}"
    );
    assert!(
        f.message.contains(&format!("127.0.0.1:{port}")),
        "message lacks the address: {f}"
    );
    assert!(
        took < Duration::from_secs(2),
        "the refused get took {took:?}"
    );
    // The refused conn was not kept or leaked.
    let s = pool.stats();
    assert_eq!(
        (s.total_conns, s.in_use_conns, s.dials),
        (0, 0, 0),
        "{}",
        pool.stats_line()
    );
    assert!(s.dial_errors >= 1);
    let admin_port = admin.local_port();
    assert!(
        poll_until(SETTLE, || tcp_sockets_to_port(port)
            .iter()
            .filter(|s| s.local_port != admin_port)
            .count()
            == held.len()),
        "sockets left open by the refused dial: {:?}",
        tcp_sockets_to_port(port)
    );

    // A slot frees: the next get succeeds.
    assert_eq!(
        holder.remove(held.pop().expect("held"), "free a slot"),
        POOL_OK
    );
    assert!(poll_until(SETTLE, || admin.other_clients() == 8));
    let c = pool
        .get(-1)
        .unwrap_or_else(|e| panic!("get after a slot freed: {e}"));
    assert_eq!(c.command(&[b"PING"]).map(|r| r.text), Ok("PONG".into()));
    assert_eq!(pool.put(c), POOL_OK);
    for c in held {
        assert_eq!(holder.put(c), POOL_OK);
    }
    drop((pool, holder, admin));
    let fds_after = check_no_fd_leak(fds_before, &listing_before);
    eprintln!(
        "maxclients: a get on a full server failed in {}ms with status {} ({}); after a slot freed the \
         next get succeeded; fds {fds_before} before, {fds_after} after",
        took.as_millis(),
        f.code,
        f.message
    );
}

/// Without any session set-up the default dialer still makes one round trip (a PING) on a
/// new conn, so the server's refusal is read at dial time: the get fails with a dial error
/// naming it, instead of handing out a conn the server already refused.
#[test]
fn maxclients_reached_fails_the_get_even_without_session_set_up() {
    let _serial = serial();
    let (server, _admin, holder, held) = full_server();
    let pool = CPool::from_url(&format!(
        "redis://{}?pool_size=4&pool_timeout=3s&dial_timeout=1s&dialer_retries=1",
        server.addr()
    ));
    let (res, took) = get_on_full_server(&pool);
    let stats = pool.stats_line();
    // Give everything back before asserting, so a failure leaks no socket into later tests.
    for c in held {
        assert_eq!(holder.put(c), POOL_OK);
    }
    drop((pool, holder));
    match res {
        Ok(reply) => panic!(
            "a get on a server at maxclients succeeded in {took:?}; its first PING: {reply}; {stats}"
        ),
        Err(f) => {
            assert!(
                f.code == POOL_ERR_DIAL || f.code == POOL_ERR_HANDSHAKE,
                "unexpected status: {f}"
            );
            assert!(f.message.contains(MAXCLIENTS_TEXT), "{f}");
        }
    }
}

// ---------------------------------------------------------------------------
// A server out of step with the session set-up: a banner on accept, one reply more than
// asked for, or one more a moment later. A fake server (a TcpListener on loopback), since
// redis-server cannot misbehave on demand.
// ---------------------------------------------------------------------------

mod out_of_step {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    /// What the fake server does wrong.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Quirk {
        /// Nothing: a plain Redis.
        None,
        /// "+HELLO\r\n" on accept, then normal answers.
        Banner,
        /// As `Banner`, but the answers to the set-up come 100 ms late: only the set-up's
        /// check of each reply against its step can tell the banner from the answer.
        SlowAfterBanner,
        /// The answers to the first batch of requests (the set-up), then "+PONG\r\n".
        ExtraReply,
        /// As `ExtraReply`, but the "+PONG\r\n" comes when the test calls `send_late`.
        LateExtraReply,
        /// CLUSTER SHARDS (one shard: every slot on this server) answered, then "+EXTRA\r\n".
        ExtraAfterClusterShards,
        /// Also a sentinel naming itself the master; ROLE answered "master", then "+EXTRA\r\n".
        ExtraAfterRole,
    }

    /// An accepted conn (a clone of its socket) and the thread serving it.
    type Serving = (TcpStream, JoinHandle<()>);

    pub struct FakeRedis {
        pub port: u16,
        stop: Arc<AtomicBool>,
        /// Conns that answered their set-up and wait for their late extra reply.
        late: Arc<Mutex<Vec<TcpStream>>>,
        conns: Arc<Mutex<Vec<Serving>>>,
        accept: Option<JoinHandle<()>>,
    }

    /// One request (an array of bulk strings) at the start of `buf`, and its length.
    fn parse_request(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
        fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
            let rest = buf.get(at..)?;
            let i = rest.windows(2).position(|w| w == b"\r\n")?;
            Some((&rest[..i], at + i + 2))
        }
        let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<usize>().ok();
        let (head, mut at) = line(buf, 0)?;
        let n = num(head.strip_prefix(b"*")?)?;
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let (h, next) = line(buf, at)?;
            let len = num(h.strip_prefix(b"$")?)?;
            args.push(buf.get(next..next + len)?.to_vec());
            at = next + len + 2;
            buf.get(..at)?;
        }
        Some((args, at))
    }

    fn answer(args: &[Vec<u8>], port: u16, quirk: Quirk) -> Vec<u8> {
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        match name.as_slice() {
            b"CLUSTER"
                if args
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"SHARDS")) =>
            {
                let mut r = format!(
                    "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n\
                     *6\r\n$4\r\nport\r\n:{port}\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
                     $4\r\nrole\r\n$6\r\nmaster\r\n"
                )
                .into_bytes();
                if quirk == Quirk::ExtraAfterClusterShards {
                    r.extend_from_slice(b"+EXTRA\r\n");
                }
                r
            }
            b"PING" => b"+PONG\r\n".to_vec(),
            b"SENTINEL" => format!(
                "*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n",
                port.to_string().len()
            )
            .into_bytes(),
            b"ROLE" => {
                let mut r = b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n".to_vec();
                if quirk == Quirk::ExtraAfterRole {
                    r.extend_from_slice(b"+EXTRA\r\n");
                }
                r
            }
            b"ECHO" if args.len() == 2 => {
                let mut r = format!("${}\r\n", args[1].len()).into_bytes();
                r.extend_from_slice(&args[1]);
                r.extend_from_slice(b"\r\n");
                r
            }
            b"HELLO" => b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n".to_vec(),
            b"AUTH" | b"SELECT" | b"CLIENT" => b"+OK\r\n".to_vec(),
            _ => b"-ERR unknown command\r\n".to_vec(),
        }
    }

    fn serve(mut sock: TcpStream, quirk: Quirk, late: Arc<Mutex<Vec<TcpStream>>>) {
        let port = sock.local_addr().unwrap().port();
        let banner = matches!(quirk, Quirk::Banner | Quirk::SlowAfterBanner);
        if banner && sock.write_all(b"+HELLO\r\n").is_err() {
            return;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut first = true;
        loop {
            let n = match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            // Everything that came in one read is one batch (the set-up is one write).
            let mut out = Vec::new();
            while let Some((args, used)) = parse_request(&buf) {
                buf.drain(..used);
                out.extend_from_slice(&answer(&args, port, quirk));
            }
            if out.is_empty() {
                continue;
            }
            if first && quirk == Quirk::ExtraReply {
                out.extend_from_slice(b"+PONG\r\n");
            }
            if first && quirk == Quirk::SlowAfterBanner {
                thread::sleep(Duration::from_millis(100));
            }
            // Listed before the answer goes out: the client may act on it at once.
            if first && quirk == Quirk::LateExtraReply {
                late.lock().unwrap().push(sock.try_clone().unwrap());
            }
            if sock.write_all(&out).is_err() {
                return;
            }
            first = false;
        }
    }

    impl FakeRedis {
        pub fn start(quirk: Quirk) -> FakeRedis {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let stop = Arc::new(AtomicBool::new(false));
            let late = Arc::new(Mutex::new(Vec::new()));
            let conns = Arc::new(Mutex::new(Vec::new()));
            let accept = {
                let (stop, late, conns) = (stop.clone(), late.clone(), conns.clone());
                thread::spawn(move || {
                    for sock in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(sock) = sock else { continue };
                        let clone = sock.try_clone().unwrap();
                        let late = late.clone();
                        let serving = thread::spawn(move || serve(sock, quirk, late));
                        conns.lock().unwrap().push((clone, serving));
                    }
                })
            };
            FakeRedis {
                port,
                stop,
                late,
                conns,
                accept: Some(accept),
            }
        }

        /// Sends the late extra reply on every conn whose set-up was answered, and waits
        /// (bounded) until the client's kernel has it all: on loopback a byte is acked when
        /// it is queued at the receiver, so the unacked count (TIOCOUTQ) drops to 0.
        pub fn send_late(&self) -> usize {
            let deadline = Instant::now() + super::SETTLE;
            let socks: Vec<TcpStream> = self.late.lock().unwrap().drain(..).collect();
            for mut s in &socks {
                s.write_all(b"+PONG\r\n").unwrap();
            }
            for s in &socks {
                loop {
                    let mut unacked: libc::c_int = 0;
                    // SAFETY: TIOCOUTQ writes one int; the fd is open.
                    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut unacked) };
                    assert_eq!(rc, 0, "TIOCOUTQ");
                    if unacked == 0 {
                        break;
                    }
                    assert!(Instant::now() < deadline, "the late reply is not delivered");
                    thread::sleep(Duration::from_millis(1));
                }
            }
            socks.len()
        }
    }

    impl Drop for FakeRedis {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            if let Some(h) = self.accept.take() {
                let _ = h.join();
            }
            // Every socket closed when this returns: each serving thread sees EOF and ends.
            let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
            for (sock, serving) in conns {
                let _ = sock.shutdown(Shutdown::Both);
                let _ = serving.join();
            }
            self.late.lock().unwrap().clear();
        }
    }
}

use out_of_step::{FakeRedis, Quirk};

/// Every session set-up (PING, HELLO, CLIENT SETNAME, HELLO + SELECT), each one way.
const SET_UPS: [&str; 4] = [
    "?protocol=2",
    "?protocol=3",
    "?protocol=2&client_name=fake",
    "/1?protocol=3",
];

/// What a get on a pool of `url` gave: `Err` with the failure, or `Ok` with what
/// `ECHO one` then answered on the conn.
fn get_then_echo(pool: &CPool) -> Result<Result<String, Failure>, Failure> {
    let conn = pool.get(5000)?;
    let echo = conn.command(&[b"ECHO", b"one"]).map(|r| r.text);
    let _ = pool.remove(conn, "test");
    Ok(echo)
}

/// Holds a test to the fds it found: dropped after everything the test made (declare it
/// first, after the lock), it waits until the process has exactly those fds again, so a
/// socket that a fake server's thread closes late cannot throw off the next test's count.
struct FdsSettle {
    before: usize,
    listing: Vec<String>,
}

impl FdsSettle {
    fn new() -> Self {
        FdsSettle {
            before: open_fds(),
            listing: fd_listing(),
        }
    }
}

impl Drop for FdsSettle {
    fn drop(&mut self) {
        if !thread::panicking() {
            check_no_fd_leak(self.before, &self.listing);
        }
    }
}

fn assert_refused_at_set_up(quirk: Quirk) {
    let _serial = serial();
    let _fds = FdsSettle::new();
    let server = FakeRedis::start(quirk);
    for setup in SET_UPS {
        let url = format!("redis://127.0.0.1:{}{setup}", server.port);
        let pool = CPool::from_url(&url);
        match get_then_echo(&pool) {
            Err(f) => {
                assert_eq!(f.code, POOL_ERR_HANDSHAKE, "{quirk:?} {setup}: {f}");
                assert!(
                    f.message.contains("(a banner or an extra reply?)")
                        && f.message.contains("session set-up"),
                    "{quirk:?} {setup}: {f}"
                );
            }
            Ok(echo) => panic!(
                "{quirk:?} {setup}: pool_get gave POOL_OK on an out-of-step conn; ECHO one \
                 then answered {echo:?}"
            ),
        }
    }
    // The same server without the quirk: every set-up passes and ECHO is answered.
    let plain = FakeRedis::start(Quirk::None);
    for setup in SET_UPS {
        let pool = CPool::from_url(&format!("redis://127.0.0.1:{}{setup}", plain.port));
        let echo = get_then_echo(&pool).unwrap_or_else(|f| panic!("{setup}: {f}"));
        assert_eq!(echo, Ok("one".to_string()), "{setup}");
    }
}

#[test]
fn a_banner_on_accept_fails_the_set_up_with_handshake() {
    assert_refused_at_set_up(Quirk::Banner);
}

#[test]
fn a_banner_before_slow_answers_fails_the_set_up_with_handshake() {
    assert_refused_at_set_up(Quirk::SlowAfterBanner);
}

#[test]
fn one_reply_more_than_the_set_up_asked_for_fails_it_with_handshake() {
    assert_refused_at_set_up(Quirk::ExtraReply);
}

/// An extra reply that arrives after the set-up's own check: the new conn's first command
/// sees it waiting and refuses to run (POOL_ERR_PROTOCOL, the conn is removed) rather
/// than return it as its reply. A slow machine may let the set-up see it already.
#[test]
fn an_extra_reply_after_the_set_up_is_never_a_commands_reply() {
    let _serial = serial();
    let _fds = FdsSettle::new();
    let server = FakeRedis::start(Quirk::LateExtraReply);
    for setup in SET_UPS {
        let pool = CPool::from_url(&format!("redis://127.0.0.1:{}{setup}", server.port));
        let conn = match pool.get(5000) {
            Ok(conn) => conn,
            Err(f) => {
                assert_eq!(f.code, POOL_ERR_HANDSHAKE, "{setup}: {f}");
                continue;
            }
        };
        // Not pool_conn_fd to wait for it: lending the fd makes the command peek anyway.
        assert_eq!(server.send_late(), 1, "{setup}");
        match conn.command(&[b"ECHO", b"one"]) {
            Err(f) => {
                assert_eq!(f.code, POOL_ERR_PROTOCOL, "{setup}: {f}");
                assert!(f.message.contains("out of step"), "{setup}: {f}");
            }
            Ok(r) => panic!("{setup}: ECHO one answered {r:?}"),
        }
        // The conn is broken: a second command says so, and a put removes it.
        let again = conn.command(&[b"PING"]).unwrap_err();
        assert_eq!(again.code, POOL_ERR_BAD_CONN, "{again}");
        assert_eq!(pool.put(conn), POOL_OK);
        assert_eq!(pool.stats().total_conns, 0, "{setup}");
    }
}

/// A reply left unread by raw I/O on `pool_conn_fd` is not returned as the reply of the
/// next `pool_conn_command` on the conn.
#[test]
fn a_reply_left_unread_by_raw_io_is_not_the_next_commands_reply() {
    let _serial = serial();
    let _fds = FdsSettle::new();
    let server = FakeRedis::start(Quirk::None);
    let pool = CPool::from_url(&format!("redis://127.0.0.1:{}", server.port));
    let conn = pool.get(5000).unwrap();
    assert_eq!(conn.command(&[b"ECHO", b"a"]).unwrap().text, "a");
    let fd = conn.fd();
    let ping = b"*1\r\n$4\r\nPING\r\n";
    // SAFETY: `ping` is valid for its length; `fd` is the conn's open socket.
    let n = unsafe { libc::send(fd, ping.as_ptr().cast(), ping.len(), libc::MSG_NOSIGNAL) };
    assert_eq!(n, ping.len() as isize);
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1);
    match conn.command(&[b"ECHO", b"one"]) {
        Err(f) => {
            assert_eq!(f.code, POOL_ERR_PROTOCOL, "{f}");
            assert!(f.message.contains("unread bytes"), "{f}");
        }
        Ok(r) => panic!("ECHO one answered {r:?}"),
    }
    assert_eq!(pool.put(conn), POOL_OK);
    assert_eq!(pool.stats().total_conns, 0);
    // The next get dials a new conn, in step.
    let conn = pool.get(5000).unwrap();
    assert_eq!(conn.command(&[b"ECHO", b"two"]).unwrap().text, "two");
    assert_eq!(pool.put(conn), POOL_OK);
}

/// The cluster's slot map query answered with one reply more: the reply is not used (the
/// conn is out of step, so the reply read may not be the query's), and the conn is closed.
#[test]
fn a_slot_map_reply_with_bytes_behind_it_is_not_used() {
    use redispool::ffi::cluster::{
        pool_cluster_free, pool_cluster_get, pool_cluster_new_url, pool_cluster_put,
    };
    use redispool::ffi::error::pool_error_t;

    let _serial = serial();
    let _fds = FdsSettle::new();
    let get = |port: u16| -> Result<(), (pool_status_t, String)> {
        let url = std::ffi::CString::new(format!("redis://127.0.0.1:{port}?protocol=2")).unwrap();
        let mut cluster = std::ptr::null_mut();
        let mut err = pool_error_t {
            code: 0,
            message: [0; 256],
        };
        // SAFETY: a NUL-terminated URL and valid out-pointers.
        let st = unsafe { pool_cluster_new_url(url.as_ptr(), &mut cluster, &mut err) };
        assert_eq!(st, POOL_OK);
        let mut conn = std::ptr::null_mut();
        // SAFETY: a live cluster, a 1-byte key, valid out-pointers.
        let st = unsafe {
            pool_cluster_get(
                cluster,
                c"k".as_ptr(),
                1,
                5000,
                std::ptr::null(),
                &mut conn,
                &mut err,
            )
        };
        let res = if st == POOL_OK {
            // SAFETY: a conn of this cluster, given back once.
            assert_eq!(unsafe { pool_cluster_put(cluster, conn) }, POOL_OK);
            Ok(())
        } else {
            // SAFETY: the library NUL-terminates the message.
            let msg = unsafe { std::ffi::CStr::from_ptr(err.message.as_ptr()) };
            Err((st, msg.to_string_lossy().into_owned()))
        };
        // SAFETY: the cluster is freed once, nothing of it used after.
        unsafe { pool_cluster_free(cluster) };
        res
    };
    let plain = FakeRedis::start(Quirk::None);
    assert_eq!(
        get(plain.port),
        Ok(()),
        "a fake node in step serves the slot map"
    );
    let extra = FakeRedis::start(Quirk::ExtraAfterClusterShards);
    let (code, msg) = get(extra.port).unwrap_err();
    assert_eq!(code, POOL_ERR_CLUSTER, "{msg}");
    assert!(msg.contains("a banner or an extra reply?"), "{msg}");
}

/// A sentinel pool's ROLE check at dial answered with one reply more: the dial fails
/// rather than hand out a conn out of step.
#[test]
fn a_role_reply_with_bytes_behind_it_fails_the_dial() {
    use redispool::pool::{ConnPool, Dialer, Options, Wait};
    use redispool::sentinel::{SentinelConfig, SentinelState};

    let _serial = serial();
    let _fds = FdsSettle::new();
    let get = |port: u16| {
        let cfg = SentinelConfig::new("mymaster", vec![format!("127.0.0.1:{port}")]);
        let dialer = Dialer::sentinel(Arc::new(SentinelState::new(cfg).unwrap()));
        let mut o = Options::new(dialer);
        o.dialer_retries = 1;
        o.pool_timeout = Wait::For(Duration::from_secs(5));
        let pool = ConnPool::new(o).unwrap();
        let res = pool.get().map(|mut c| {
            let echo = c.command(&[b"ECHO", b"one"]);
            let _ = pool.remove(c, None);
            echo
        });
        let _ = pool.close();
        res
    };
    let plain = FakeRedis::start(Quirk::None);
    match get(plain.port) {
        Ok(Ok(redispool::redis::resp::Reply::String(s))) => assert_eq!(s, b"one"),
        other => panic!("a fake master in step: {other:?}"),
    }
    let extra = FakeRedis::start(Quirk::ExtraAfterRole);
    match get(extra.port) {
        Err(redispool::pool::Error::Dial { message, .. }) => {
            assert!(
                message.contains("ROLE") && message.contains("a banner or an extra reply?"),
                "{message}"
            );
        }
        other => panic!("ROLE with a reply behind it: {other:?}"),
    }
}

/// `pool_timeout` means in a URL what `pool_timeout_ms` means in pool_options_t: 0 does not
/// wait (before, the URL's 0 waited forever) and a negative value waits forever.
#[test]
fn url_pool_timeout_has_the_options_meaning() {
    let _serial = serial();
    let server = RedisServer::start();
    for (timeout, waits) in [("0", false), ("0s", false), ("-1", true), ("-1s", true)] {
        let url = format!(
            "redis://{}?pool_size=1&pool_timeout={timeout}",
            server.addr()
        );
        let pool = Arc::new(CPool::from_url(&url));
        let held = pool.get(-1).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let getter = {
            let (pool, done) = (pool.clone(), done.clone());
            thread::spawn(move || {
                let start = Instant::now();
                // -1: the pool's own pool_timeout.
                let res = pool.get(-1);
                done.store(true, Ordering::SeqCst);
                let took = start.elapsed();
                res.map(|c| {
                    pool.put(c);
                })
                .map(|()| took)
            })
        };
        if waits {
            thread::sleep(Duration::from_millis(500));
            assert!(
                !done.load(Ordering::SeqCst),
                "pool_timeout={timeout}: did not wait"
            );
            assert_eq!(pool.put(held), POOL_OK);
            let took = getter
                .join()
                .unwrap()
                .expect("the waiting get gets the conn");
            assert!(
                took >= Duration::from_millis(400),
                "pool_timeout={timeout}: {took:?}"
            );
        } else {
            // Released after 3 s at the latest, so a get that waits fails the test rather
            // than hanging it.
            assert!(poll_until(Duration::from_secs(3), || done.load(Ordering::SeqCst)));
            assert_eq!(pool.put(held), POOL_OK);
            let e = getter.join().unwrap().unwrap_err();
            assert_eq!(e.code, POOL_ERR_TIMEOUT, "pool_timeout={timeout}: {e}");
        }
    }
}
