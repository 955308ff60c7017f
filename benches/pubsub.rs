//! Pub/Sub figures (issue 20), against a real redis-server started here:
//!
//!  1. messages per second through a subscriber (pool_subscriber_receive, one message per
//!     call) against a raw-socket baseline in the same run (a TcpStream that sends
//!     SUBSCRIBE and counts `message` frames in the bytes it reads, no parsing beyond
//!     that): the same publisher, the same number of messages;
//!  2. the time from a server restart (SIGKILL, then a new redis-server on the same port)
//!     to the subscriber's POOL_MSG_RESUBSCRIBED, measured from the new server's start
//!     and from its first PONG, with the subscriber calling receive in a loop.
//!
//! Run: `cargo bench --bench pubsub` (`-- --quick` for fewer messages). `cargo test
//! --all-targets` runs it without `--bench`: a tiny run that proves it works. Timings are
//! printed, never asserted.

use std::ffi::{CString, c_char};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redispool::ffi::error::pool_error_t;
use redispool::ffi::pool::{pool_free, pool_new_url, pool_t};
use redispool::ffi::status::POOL_OK;
use redispool::ffi::subscriber::*;

fn spawn_redis(port: u16) -> Child {
    let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server")
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn wait_ready(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while !ping(port) {
        assert!(Instant::now() < end, "redis-server on {port} did not start");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Publishes `n` messages on `channel`, pipelined in batches, reading the replies.
fn publish(port: u16, channel: &str, n: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let cmd = format!(
        "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n$5\r\nhello\r\n",
        channel.len()
    );
    let mut reader = s.try_clone().expect("clone");
    let replies = thread::spawn(move || {
        // Each reply is ":1\r\n" (or ":0\r\n" before the subscriber is there): 4 bytes.
        let mut left = n * 4;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let k = reader.read(&mut buf).expect("read");
            assert!(k > 0, "EOF from the publisher's server");
            left = left.saturating_sub(k);
        }
    });
    let batch = cmd.repeat(100);
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(100);
        s.write_all(&batch.as_bytes()[..k * cmd.len()])
            .expect("write");
        sent += k;
    }
    replies.join().expect("replies");
}

fn new_pool(port: u16) -> *mut pool_t {
    let url = CString::new(format!("redis://127.0.0.1:{port}?dial_timeout=1s")).unwrap();
    let mut p = std::ptr::null_mut();
    // SAFETY: a valid URL and out-pointer.
    assert_eq!(
        unsafe { pool_new_url(url.as_ptr(), &mut p, std::ptr::null_mut()) },
        POOL_OK
    );
    p
}

fn new_subscriber(pool: *mut pool_t, channel: &str) -> *mut pool_subscriber_t {
    let mut s = std::ptr::null_mut();
    let ch = CString::new(channel).unwrap();
    let names: [*const c_char; 1] = [ch.as_ptr()];
    // SAFETY: a live pool, valid names and out-pointers.
    unsafe {
        assert_eq!(
            pool_subscriber_new(pool, &mut s, std::ptr::null_mut()),
            POOL_OK
        );
        assert_eq!(
            pool_subscriber_subscribe(s, 1, names.as_ptr(), std::ptr::null(), std::ptr::null_mut()),
            POOL_OK
        );
    }
    assert_eq!(receive(s, 5000).expect("confirmation"), POOL_MSG_SUBSCRIBE);
    s
}

/// One receive: the kind, or the status when it failed.
fn receive(s: *mut pool_subscriber_t, timeout_ms: i64) -> Result<i32, i32> {
    let mut m = std::ptr::null_mut();
    // SAFETY: an all-zero pool_error_t is a valid value.
    let mut err: pool_error_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live subscriber and writable out-pointers.
    let st = unsafe { pool_subscriber_receive(s, timeout_ms, &mut m, &mut err) };
    if st != POOL_OK {
        return Err(st);
    }
    // SAFETY: POOL_OK: `m` is a message until freed.
    let kind = unsafe { (*m).kind };
    // SAFETY: freed once.
    unsafe { pool_message_free(m) };
    Ok(kind)
}

/// Messages per second through the subscriber.
fn through_subscriber(port: u16, n: usize) -> f64 {
    let pool = new_pool(port);
    let sub = new_subscriber(pool, "bench:sub");
    let publisher = thread::spawn(move || publish(port, "bench:sub", n));
    let mut got = 0;
    let mut started = None;
    while got < n {
        match receive(sub, 10_000) {
            Ok(POOL_MSG_MESSAGE) => {
                started.get_or_insert_with(Instant::now);
                got += 1;
            }
            Ok(_) => {}
            Err(st) => panic!("receive: status {st}"),
        }
    }
    let took = started.map_or(Duration::ZERO, |t| t.elapsed());
    publisher.join().expect("publisher");
    // SAFETY: freed once each.
    unsafe {
        pool_subscriber_free(sub);
        pool_free(pool);
    }
    (n - 1) as f64 / took.as_secs_f64().max(1e-9)
}

/// Messages per second through a raw socket that counts `message` frames.
fn through_raw_socket(port: u16, n: usize) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$7\r\nbench:r\r\n")
        .expect("subscribe");
    let mut buf = vec![0u8; 64 * 1024];
    // The confirmation first.
    let mut seen = Vec::new();
    while !seen.ends_with(b":1\r\n") {
        let k = s.read(&mut buf).expect("read");
        seen.extend_from_slice(&buf[..k]);
    }
    let publisher = thread::spawn(move || publish(port, "bench:r", n));
    const NEEDLE: &[u8] = b"$7\r\nmessage\r\n";
    let mut got = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut started = None;
    while got < n {
        let k = s.read(&mut buf).expect("read");
        assert!(k > 0, "EOF");
        started.get_or_insert_with(Instant::now);
        carry.extend_from_slice(&buf[..k]);
        let mut i = 0;
        while let Some(pos) = carry[i..].windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            got += 1;
            i += pos + NEEDLE.len();
        }
        // Keep what may be the start of a needle cut by the read.
        let keep_from = carry.len().saturating_sub(NEEDLE.len() - 1).max(i);
        carry.drain(..keep_from);
    }
    let took = started.map_or(Duration::ZERO, |t| t.elapsed());
    publisher.join().expect("publisher");
    (n - 1) as f64 / took.as_secs_f64().max(1e-9)
}

/// (from the new server's spawn, from its first PONG) to POOL_MSG_RESUBSCRIBED.
fn restart_to_resubscribed(server: &mut Child, port: u16) -> (Duration, Duration) {
    let pool = new_pool(port);
    let sub = new_subscriber(pool, "bench:restart");
    let _ = server.kill();
    let _ = server.wait();
    // The subscriber sees the loss and fails to dial while the server is down.
    loop {
        match receive(sub, 1000) {
            Err(st) if st != redispool::ffi::status::POOL_ERR_TIMEOUT => break,
            _ => {}
        }
    }
    let spawned = Instant::now();
    *server = spawn_redis(port);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = thread::spawn(move || {
        wait_ready(port);
        tx.send(Instant::now()).unwrap();
    });
    let resubscribed = loop {
        if let Ok(POOL_MSG_RESUBSCRIBED) = receive(sub, 1000) {
            break Instant::now();
        }
    };
    waiter.join().unwrap();
    let ready = rx.recv().unwrap();
    // SAFETY: freed once each.
    unsafe {
        pool_subscriber_free(sub);
        pool_free(pool);
    }
    (
        resubscribed - spawned,
        resubscribed.saturating_duration_since(ready),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = if !args.iter().any(|a| a == "--bench") {
        2_000
    } else if args.iter().any(|a| a == "--quick") {
        50_000
    } else {
        500_000
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = spawn_redis(port);
    wait_ready(port);
    let raw = through_raw_socket(port, n);
    let sub = through_subscriber(port, n);
    let (from_spawn, from_ready) = restart_to_resubscribed(&mut server, port);
    println!("pubsub: {n} messages of 5 bytes, one publisher pipelining PUBLISH");
    println!("| receiver | messages/s | % of raw socket |");
    println!("|---|---:|---:|");
    println!("| raw socket (counts frames) | {raw:.0} | 100 |");
    println!(
        "| pool_subscriber_receive | {sub:.0} | {:.1} |",
        100.0 * sub / raw
    );
    println!(
        "server restart to POOL_MSG_RESUBSCRIBED: {:.1} ms from the new server's spawn, \
         {:.1} ms from its first PONG",
        from_spawn.as_secs_f64() * 1e3,
        from_ready.as_secs_f64() * 1e3
    );
    let _ = server.kill();
    let _ = server.wait();
}
