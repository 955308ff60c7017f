//! The health sweep (src/pool/sweep.rs) against a real redis-server: a conn the server
//! closed at least 1 ms before a get is never handed out (CLIENT KILL, the server's idle
//! timeout, a conn handed over by a put to a waiting get), nor one with bytes nobody read
//! (a RESP3 tracking push), and a steady Get+Put costs far fewer than 0.1 system calls
//! (counted with `strace -c`: counts, not timings, are asserted).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::RedisServer;
use redispool::pool::{Conn, ConnPool, Dialer, Options, Wait};
use redispool::redis::resp::Reply;

fn options(addr: &str, size: usize) -> Options {
    let mut o = Options::new(Dialer::from_addr(addr).unwrap());
    o.pool_size = size;
    o.pool_timeout = Wait::For(Duration::from_secs(10));
    o
}

/// One command on a fresh admin connection; the whole reply as text (a bulk string's
/// body, or the line of any other reply).
fn admin(server: &RedisServer, args: &[&str]) -> String {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end().to_string();
    let Some(len) = line.strip_prefix('$') else {
        return line;
    };
    let mut body = vec![0; len.parse::<usize>().unwrap() + 2];
    r.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body[..body.len() - 2]).into_owned()
}

/// The ids of the clients the server lists, the admin connection asking left out.
fn client_ids(server: &RedisServer) -> Vec<String> {
    admin(server, &["CLIENT", "LIST"])
        .lines()
        .filter(|l| !l.contains(" cmd=client|list"))
        .filter_map(|l| l.strip_prefix("id=")?.split(' ').next().map(String::from))
        .collect()
}

/// Kills every client of the server (the pool's conns) and waits until the server lists
/// none of them (bounded: fails after 20 s). Returns how many it killed.
fn kill_all(server: &RedisServer) -> usize {
    let ids = client_ids(server);
    for id in &ids {
        admin(server, &["CLIENT", "KILL", "ID", id]);
    }
    await_closed(server, &ids);
    ids.len()
}

/// Waits until the server lists none of `ids` (bounded: fails after 20 s).
fn await_closed(server: &RedisServer, ids: &[String]) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<String> = client_ids(server)
            .into_iter()
            .filter(|id| ids.contains(id))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "the server still lists {left:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Past the promise's 1 ms: the server's close happened at least this long before the
/// gets that follow (the guarantee is about time, so this wait is the condition itself).
fn past_the_guarantee() {
    thread::sleep(Duration::from_millis(2));
}

fn answers_ping(conn: &mut Conn) -> bool {
    matches!(conn.command(&[b"PING"]), Ok(Reply::Status(s)) if s == b"PONG")
}

/// Gets `n` conns at once and asserts each answers PING; puts them back.
fn get_all_and_ping(p: &ConnPool, n: usize, what: &str) {
    let mut held = Vec::new();
    for i in 0..n {
        let mut c = p.get().unwrap();
        assert!(
            answers_ping(&mut c),
            "{what}: conn {i} of {n} handed out dead (id {}, {:?})",
            c.id(),
            c.broken_reason()
        );
        held.push(c);
    }
    for c in held {
        p.put(c).unwrap();
    }
}

#[test]
fn conns_killed_while_idle_are_never_handed_out() {
    let server = RedisServer::start();
    let p = ConnPool::new(options(&server.addr(), 8)).unwrap();
    for round in 0..3 {
        get_all_and_ping(&p, 8, "warm-up");
        // One more get, so that a sweep ran recently and saw all 8 conns healthy.
        p.put(p.get().unwrap()).unwrap();
        assert_eq!(kill_all(&server), 8, "round {round}");
        past_the_guarantee();
        get_all_and_ping(&p, 8, &format!("round {round}"));
    }
    assert!(p.stats().stale_conns >= 24, "{:?}", p.stats());
}

#[test]
fn conns_killed_while_gets_run_are_never_handed_out() {
    // A thread doing Get+Put all the time keeps the sweep fresh (a get trusts a sweep less
    // than 0.5 ms old) and has a conn checked out when the server kills them all.
    let server = RedisServer::start();
    let p = ConnPool::new(options(&server.addr(), 8)).unwrap();
    get_all_and_ping(&p, 8, "warm-up");
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let (p, stop) = (p.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.put(p.get().unwrap()).unwrap();
                n += 1;
            }
            n
        })
    };
    for round in 0..5 {
        assert!(kill_all(&server) >= 1, "round {round}");
        past_the_guarantee();
        // The hammer holds at most one conn: six at once reach down the idle list.
        get_all_and_ping(&p, 6, &format!("round {round}"));
        get_all_and_ping(&p, 1, &format!("round {round}, again"));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(hammer.join().unwrap() > 0);
}

#[test]
fn conns_closed_by_the_server_idle_timeout_are_never_handed_out() {
    let server = RedisServer::start();
    let p = ConnPool::new(options(&server.addr(), 4)).unwrap();
    get_all_and_ping(&p, 4, "warm-up");
    p.put(p.get().unwrap()).unwrap();
    assert_eq!(admin(&server, &["CONFIG", "SET", "timeout", "1"]), "+OK");
    // The server closes conns idle for more than 1 s (checked a few times a second).
    let ids = client_ids(&server);
    assert_eq!(ids.len(), 4);
    await_closed(&server, &ids);
    assert_eq!(admin(&server, &["CONFIG", "SET", "timeout", "0"]), "+OK");
    past_the_guarantee();
    get_all_and_ping(&p, 4, "after the server's idle timeout");
}

#[test]
fn a_conn_killed_while_checked_out_is_not_handed_to_a_waiting_get() {
    // Pool of 1, strict order: the put hands the conn straight to the waiting get, which
    // vets it itself (it never was in the idle list).
    let server = RedisServer::start();
    let mut o = options(&server.addr(), 1);
    o.overtake_window = None;
    let p = ConnPool::new(o).unwrap();
    for round in 0..3 {
        let mut held = p.get().unwrap();
        assert!(answers_ping(&mut held));
        let waiter = {
            let p = p.clone();
            thread::spawn(move || {
                let mut c = p.get().unwrap();
                let ok = answers_ping(&mut c);
                p.put(c).unwrap();
                ok
            })
        };
        let end = Instant::now() + Duration::from_secs(20);
        while p.stats().waiting == 0 {
            assert!(Instant::now() < end, "the get never queued");
            thread::sleep(Duration::from_millis(1));
        }
        assert!(kill_all(&server) >= 1, "round {round}");
        past_the_guarantee();
        p.put(held).unwrap();
        assert!(
            waiter.join().unwrap(),
            "round {round}: the waiting get was handed the killed conn"
        );
    }
}

#[test]
fn an_idle_conn_with_bytes_nobody_read_is_never_handed_out() {
    // RESP3 with client tracking: the server pushes an invalidation to the idle conn when
    // another client changes a key it read. Bytes nobody asked for: the conn is stale (as
    // go-redis's peek would find it), closed and replaced, never handed out. Tracking is
    // turned on behind the pool's back (on the raw socket, as a program using the fd for
    // its own I/O would), so the pool does not know the session changed (it would restore
    // such a conn, draining the push: tests/handback.rs) and only the sweep can tell.
    let server = RedisServer::start();
    let mut o = options(&server.addr(), 1);
    o.session.protocol = 3;
    let p = ConnPool::new(o).unwrap();
    for round in 0..3u64 {
        let mut c = p.get().unwrap();
        let Ok(Reply::Integer(id)) = c.command(&[b"CLIENT", b"ID"]) else {
            panic!("CLIENT ID");
        };
        {
            use std::os::fd::FromRawFd;
            // SAFETY: the conn's fd stays open while `c` lives; ManuallyDrop never closes it.
            let mut raw = std::mem::ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(c.fd()) });
            raw.write_all(b"*3\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n")
                .unwrap();
            let mut ok = [0u8; 5];
            raw.read_exact(&mut ok).unwrap();
            assert_eq!(&ok, b"+OK\r\n");
        }
        c.command(&[b"GET", b"tracked"]).unwrap();
        p.put(c).unwrap();
        // Idle now: the next get finds the last sweep old and sweeps.
        assert_eq!(admin(&server, &["SET", "tracked", "v"]), "+OK");
        // The push went out with the SET's reply; it is on the idle conn's socket well
        // before the guarantee's 1 ms.
        past_the_guarantee();
        let stale_before = p.stats().stale_conns;
        let mut c = p.get().unwrap();
        let Ok(Reply::Integer(new_id)) = c.command(&[b"CLIENT", b"ID"]) else {
            panic!("CLIENT ID");
        };
        assert_ne!(
            new_id, id,
            "round {round}: the conn with the unread push was handed out"
        );
        assert_eq!(p.stats().stale_conns, stale_before + 1, "round {round}");
        p.put(c).unwrap();
    }
}

// ---------------------------------------------------------------------------
// System calls per Get+Put
// ---------------------------------------------------------------------------

const CHILD_ADDR: &str = "REDISPOOL_SWEEP_CHILD_ADDR";
const CHILD_OPS: usize = 100_000;

/// Run by `get_put_makes_almost_no_system_calls` under strace, in a child process.
#[test]
#[ignore = "run by get_put_makes_almost_no_system_calls under strace"]
fn child_get_put_loop() {
    let addr = std::env::var(CHILD_ADDR).expect("run by get_put_makes_almost_no_system_calls");
    let p = ConnPool::new(options(&addr, 8)).unwrap();
    get_all_and_ping(&p, 8, "warm-up");
    for _ in 0..CHILD_OPS {
        p.put(p.get().unwrap()).unwrap();
    }
    let s = p.stats();
    assert_eq!(s.total_conns, 8, "{s:?}");
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn get_put_makes_almost_no_system_calls() {
    if !strace_available() {
        assert!(
            std::env::var("REDISPOOL_REQUIRE_BINDINGS").as_deref() != Ok("1"),
            "strace is missing (scripts/test.sh installs it)"
        );
        eprintln!("strace not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let server = RedisServer::start();
    let out = std::env::temp_dir().join(format!("redispool-sweep-strace-{}", std::process::id()));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_get_put_loop",
            "--test-threads=1",
        ])
        .env(CHILD_ADDR, server.addr())
        .status()
        .unwrap();
    let summary = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "the child failed\n{summary}");
    // The total line: "100.00 <seconds> <usecs/call> <calls> [<errors>] total".
    let total = summary
        .lines()
        .find(|l| l.trim_end().ends_with(" total"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no total in\n{summary}"));
    // Everything the child process did (start-up, dials, the test harness) over its
    // Get+Put pairs: a peek per get alone would be 1.0.
    let per_op = total as f64 / CHILD_OPS as f64;
    eprintln!("{total} system calls for {CHILD_OPS} Get+Put: {per_op:.4} per op\n{summary}");
    assert!(
        per_op < 0.1,
        "{per_op:.4} system calls per Get+Put\n{summary}"
    );
}
