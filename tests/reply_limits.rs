//! Replies bounded in size: a fake server (a TcpListener on loopback) sends what no Redis
//! would, or what a Redis would but past the pool's `max_reply_bytes` / `max_reply_elements`;
//! the command fails with POOL_ERR_PROTOCOL, memory stays bounded, the conn is closed. And
//! running out of memory while reading a reply is an error, not an abort (a child process
//! under RLIMIT_AS).
//!
//! The tests run one at a time (a lock): one measures the process's RSS.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::capi::CPool;
use common::procfs::poll_until;
use redispool::ffi::reply::{POOL_REPLY_ARRAY, POOL_REPLY_STATUS, POOL_REPLY_STRING};
use redispool::ffi::status::POOL_ERR_PROTOCOL;
use redispool::redis::io::{IoError, read_reply};
use redispool::redis::resp::{Parser, ProtocolError, Reply, ReplyLimits};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes everything, giving up (false) once the client has gone.
fn send(s: &mut TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).is_ok()
}

/// What the fake server sends for `GET <key>`; false when the client went away.
fn respond(key: &[u8], s: &mut TcpStream) -> bool {
    match key {
        // The stream: an array "of 2^32 elements", then integers for as long as the
        // client reads (bounded: 16 GiB or a minute).
        b"endless" => {
            if !send(s, b"*4294967296\r\n") {
                return false;
            }
            let chunk = b":1\r\n".repeat(16 * 1024);
            let start = Instant::now();
            for _ in 0..(16u64 << 30) / chunk.len() as u64 {
                if start.elapsed() > Duration::from_secs(60) || !send(s, &chunk) {
                    return false;
                }
            }
            false
        }
        // A legal 80 MB reply: 20 M integers.
        b"ints20m" => {
            let chunk = b":1\r\n".repeat(1_000_000);
            send(s, b"*20000000\r\n") && (0..20).all(|_| send(s, &chunk))
        }
        // RESP3 pushes (invalidations) without end, and never the reply.
        b"pushes" => {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if !send(s, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n") {
                    return false;
                }
                thread::sleep(Duration::from_millis(5));
            }
            false
        }
        b"bytes-ok" => send(s, format!("$1000\r\n{}\r\n", "x".repeat(1000)).as_bytes()),
        b"bytes-over" => send(s, format!("$1001\r\n{}\r\n", "x".repeat(1001)).as_bytes()),
        b"nested-bytes-over" => send(
            s,
            format!(
                "*2\r\n+{}\r\n$500\r\n{}\r\n",
                "a".repeat(501),
                "b".repeat(500)
            )
            .as_bytes(),
        ),
        b"elements-ok" => send(s, format!("*9\r\n{}", ":1\r\n".repeat(9)).as_bytes()),
        b"elements-over" => send(s, format!("*10\r\n{}", ":1\r\n".repeat(10)).as_bytes()),
        b"nested-elements-over" => send(s, b"*2\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n*4\r\n"),
        b"deep" => {
            let mut wire = b"*1\r\n".repeat(100_000);
            wire.extend_from_slice(b":1\r\n");
            send(s, &wire)
        }
        _ => send(s, b"-ERR unknown key\r\n"),
    }
}

/// A fake server on 127.0.0.1: PING gets PONG, GET gets `respond`. Returns its port.
fn fake_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            thread::spawn(move || {
                let mut p = Parser::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    p.feed(&buf[..n]);
                    while let Ok(Some(Reply::Array(args))) = p.next_reply() {
                        let arg = |i: usize| match args.get(i) {
                            Some(Reply::String(a)) => a.clone(),
                            _ => Vec::new(),
                        };
                        let ok = match arg(0).to_ascii_uppercase().as_slice() {
                            b"PING" => send(&mut s, b"+PONG\r\n"),
                            b"HELLO" => send(&mut s, b"%1\r\n+proto\r\n:3\r\n"),
                            b"GET" => respond(&arg(1), &mut s),
                            _ => send(&mut s, b"+OK\r\n"),
                        };
                        if !ok {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// This process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Runs `f` while sampling the RSS every few milliseconds; returns its result and the
/// largest growth seen over the RSS before it started.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = rss();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(rss());
                thread::sleep(Duration::from_millis(5));
            }
            peak.max(rss())
        })
    };
    let out = f();
    done.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    (out, peak.saturating_sub(before))
}

#[test]
fn an_endless_reply_fails_fast_with_bounded_memory() {
    let _serial = serial();
    let port = fake_server();
    // Default limits. Without them the read ran until read_timeout, growing ~700 MB/s.
    let pool = CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=1&read_timeout=3s"
    ));
    let conn = pool.get(5000).unwrap();
    let start = Instant::now();
    let (res, growth) = peak_growth(|| conn.command(&[b"GET", b"endless"]));
    let took = start.elapsed();
    let failure = res.expect_err("an endless reply succeeded");
    println!("endless reply: {failure} after {took:?}, RSS grew {growth} bytes");
    assert_eq!(failure.code, POOL_ERR_PROTOCOL, "{failure}");
    assert!(failure.message.contains("max_reply_elements"), "{failure}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(growth < 256 << 20, "RSS grew by {growth} bytes");
    // The conn is out of step: giving it back closes it.
    pool.put(conn);
    assert!(poll_until(Duration::from_secs(10), || pool.len() == 0));
    assert_eq!(pool.stats().total_conns, 0);
}

#[test]
fn replies_just_under_the_limits_pass_and_just_over_fail() {
    let _serial = serial();
    let port = fake_server();
    let pool = CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=1&max_reply_bytes=1000&max_reply_elements=10"
    ));
    for (key, kind) in [
        (&b"bytes-ok"[..], POOL_REPLY_STRING),
        (b"elements-ok", POOL_REPLY_ARRAY),
    ] {
        let conn = pool.get(5000).unwrap();
        let r = conn.command(&[b"GET", key]).unwrap();
        assert_eq!(r.kind, kind, "{key:?}");
        // Still good: the same conn goes on.
        let pong = conn.command(&[b"PING"]).unwrap();
        assert_eq!((pong.kind, pong.text.as_str()), (POOL_REPLY_STATUS, "PONG"));
        pool.put(conn);
        assert_eq!(pool.len(), 1);
    }
    for (key, limit) in [
        (&b"bytes-over"[..], "max_reply_bytes"),
        (b"nested-bytes-over", "max_reply_bytes"),
        (b"elements-over", "max_reply_elements"),
        (b"nested-elements-over", "max_reply_elements"),
    ] {
        let conn = pool.get(5000).unwrap();
        let failure = conn.command(&[b"GET", key]).unwrap_err();
        assert_eq!(failure.code, POOL_ERR_PROTOCOL, "{key:?}: {failure}");
        assert!(failure.message.contains(limit), "{key:?}: {failure}");
        pool.put(conn);
        assert!(poll_until(Duration::from_secs(10), || pool.len() == 0));
    }
    // Nesting is bounded whatever the limits (100,000 levels here).
    let pool = CPool::from_url(&format!("redis://127.0.0.1:{port}?pool_size=1"));
    let conn = pool.get(5000).unwrap();
    let failure = conn.command(&[b"GET", b"deep"]).unwrap_err();
    assert_eq!(failure.code, POOL_ERR_PROTOCOL, "{failure}");
    assert!(failure.message.contains("nested deeper"), "{failure}");
    pool.put(conn);
    assert!(poll_until(Duration::from_secs(10), || pool.len() == 0));
}

/// Pushes are skipped while waiting for a reply (RESP3), but only within the command's one
/// read timeout: before, each push restarted it.
#[test]
fn endless_pushes_before_a_reply_time_out() {
    let _serial = serial();
    let port = fake_server();
    let pool = CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=1&read_timeout=300ms&protocol=3"
    ));
    let conn = pool.get(5000).unwrap();
    let start = Instant::now();
    let failure = conn.command(&[b"GET", b"pushes"]).unwrap_err();
    let took = start.elapsed();
    assert!(
        failure.message.contains("timeout (read after 300ms)"),
        "{failure}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    pool.put(conn);
    assert!(poll_until(Duration::from_secs(10), || pool.len() == 0));
}

#[test]
fn reply_limit_options_are_checked() {
    let ok = CPool::try_from_url("redis://127.0.0.1:1?max_reply_bytes=1&max_reply_elements=0");
    assert!(ok.is_ok(), "{:?}", ok.err());
    for bad in ["max_reply_bytes=-1", "max_reply_elements=x"] {
        let f = CPool::try_from_url(&format!("redis://127.0.0.1:1?{bad}")).err();
        let f = f.unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(f.message.contains(bad.split('=').next().unwrap()), "{f}");
    }
}

const OOM_CHILD: &str = "REDISPOOL_REPLY_LIMITS_OOM_CHILD";

/// The child's side: address space capped a little above what it uses, then replies that
/// are legal (within the limits) but larger than the memory left.
fn oom_child() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let vm_kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let ints = b":1\r\n".repeat(16 * 1024);
    let cap = vm_kb * 1024 + (160 << 20);
    let lim = libc::rlimit {
        rlim_cur: cap,
        rlim_max: cap,
    };
    // SAFETY: setrlimit reads one valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);

    // A 512 MiB bulk string through the I/O path (within the default max_reply_bytes).
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let writer = thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = theirs.write_all(b"$536870912\r\n");
            for _ in 0..512 {
                if theirs.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
        .unwrap();
    let mut parser = Parser::new();
    let res = read_reply(
        &mut redispool::redis::io::Stream::Plain(ours.as_raw_fd()),
        &mut parser,
        Some(Duration::from_secs(60)),
    );
    match res {
        Err(IoError::Protocol(ProtocolError::OutOfMemory { .. })) => {}
        other => panic!("a 512 MiB bulk under RLIMIT_AS gave {other:?}"),
    }
    drop(parser);
    drop(ours);
    writer.join().unwrap();

    // Many small elements (no element limit): the element vectors cannot grow.
    let mut p = Parser::with_limits(ReplyLimits {
        max_elements: u64::MAX,
        ..ReplyLimits::DEFAULT
    });
    p.feed(b"*1000000000\r\n");
    let mut got = Ok(None);
    for _ in 0..(1_000_000_000 / 16 / 1024) {
        match p.try_spare(ints.len()) {
            Ok(space) => space[..ints.len()].copy_from_slice(&ints),
            Err(e) => {
                got = Err(e);
                break;
            }
        }
        p.advance(ints.len());
        got = p.next_reply();
        if got.is_err() {
            break;
        }
    }
    assert!(
        matches!(got, Err(ProtocolError::OutOfMemory { .. })),
        "{got:?}"
    );
    p.clear();
    p.feed(b"+OK\r\n");
    assert_eq!(p.next_reply(), Ok(Some(Reply::Status(b"OK".to_vec()))));
    println!("OOM-CHILD-OK");
}

#[test]
fn running_out_of_memory_is_an_error_not_an_abort() {
    if std::env::var_os(OOM_CHILD).is_some() {
        oom_child();
        return;
    }
    let _serial = serial();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "running_out_of_memory_is_an_error_not_an_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OOM_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OOM-CHILD-OK"),
        "child: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

/// Not a check, a figure: the peak RSS growth while a pool_conn_command reads a legal 80 MB
/// reply of 20 M integers and hands it over as a pool_reply_t tree (then frees it).
/// `cargo test --release --test reply_limits -- --ignored --nocapture peak_rss`
#[test]
#[ignore]
fn peak_rss_of_a_20m_integer_reply() {
    let _serial = serial();
    let port = fake_server();
    let pool = CPool::from_url(&format!(
        "redis://127.0.0.1:{port}?pool_size=1&read_timeout=120s&max_reply_elements=30000000"
    ));
    let conn = pool.get(5000).unwrap();
    let start = Instant::now();
    let (res, growth) = peak_growth(|| conn.command(&[b"GET", b"ints20m"]));
    let r = res.unwrap();
    assert_eq!(r.kind, POOL_REPLY_ARRAY);
    println!(
        "20 M integers (80 MB on the wire): peak RSS growth {} MB, {:?}",
        growth >> 20,
        start.elapsed()
    );
    pool.put(conn);
}
