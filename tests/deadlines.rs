//! One deadline per call, whatever arrives: a command's read timeout is counted once from
//! the start of the call, so RESP3 pushes (client tracking invalidations) skipped on the way
//! never restart it; a push on a RESP2 conn is a protocol error; and the PING check inside a
//! get is bounded by the get's own deadline. Against a real redis-server where it can show
//! the fault (CLIENT TRACKING ON BCAST), and a fake server (a TcpListener in the test) where
//! Redis cannot misbehave on demand (a push flood, a PING never answered).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::RedisServer;
use redispool::pool::{ConnPool, Dialer, Error, Options, Wait};
use redispool::redis::resp::{Parser, Reply};

/// The upper bound asserted for a call whose deadline is `t`: generous, for a loaded
/// 2-core machine, yet far below what the faults fixed here used to take.
fn bound(t: Duration) -> Duration {
    t + Duration::from_secs(2)
}

fn options(addr: &str, protocol: u8, read_timeout: Duration) -> Options {
    let mut o = Options::new(Dialer::from_addr(addr).unwrap());
    o.pool_size = 2;
    o.dialer_retries = 1;
    o.dial_timeout = Some(Duration::from_secs(5));
    o.pool_timeout = Wait::For(Duration::from_secs(5));
    o.read_timeout = Some(read_timeout);
    o.session.protocol = protocol;
    o
}

// ---------------------------------------------------------------------------
// A fake server: each accepted conn is served by `serve` on a thread of its own. Every
// loop in a handler ends by `LIFETIME`, so an unfixed client cannot hang the test.
// ---------------------------------------------------------------------------

const LIFETIME: Duration = Duration::from_secs(10);

struct FakeServer {
    addr: String,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(serve: impl Fn(Peer) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let st = stop.clone();
        let acceptor = thread::spawn(move || {
            let mut handlers = Vec::new();
            for sock in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = sock else { continue };
                let serve = serve.clone();
                let st = st.clone();
                handlers.push(thread::spawn(move || {
                    serve(Peer::new(sock, st));
                }));
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        FakeServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// The server side of one conn: reads whole commands (a command is a RESP array, which the
/// reply parser reads as well).
struct Peer {
    sock: TcpStream,
    parser: Parser,
    stop: Arc<AtomicBool>,
    until: Instant,
}

impl Peer {
    fn new(sock: TcpStream, stop: Arc<AtomicBool>) -> Peer {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Peer {
            sock,
            parser: Parser::new(),
            stop,
            until: Instant::now() + LIFETIME,
        }
    }

    fn over(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() >= self.until
    }

    /// The next command's name, upper-cased; None once the client is gone or time is up.
    fn next_command(&mut self) -> Option<String> {
        self.next_args().map(|mut a| a.swap_remove(0))
    }

    /// The next command's arguments, upper-cased (never empty).
    fn next_args(&mut self) -> Option<Vec<String>> {
        loop {
            if let Some(Reply::Array(args)) = self.parser.next_reply().ok()? {
                let mut out: Vec<String> = args
                    .iter()
                    .map(|a| match a {
                        Reply::String(s) => String::from_utf8_lossy(s).to_ascii_uppercase(),
                        _ => String::new(),
                    })
                    .collect();
                if out.is_empty() {
                    out.push(String::new());
                }
                return Some(out);
            }
            if self.over() {
                return None;
            }
            let mut buf = [0u8; 4096];
            match self.sock.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.parser.feed(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.sock.write_all(bytes).is_ok()
    }

    /// Answers the session set-up: HELLO 3 with a RESP3 map, the set-up PING with PONG.
    fn answer_set_up(&mut self) -> Option<()> {
        match self.next_command()?.as_str() {
            "HELLO" => self.send(b"%1\r\n$5\r\nproto\r\n:3\r\n"),
            "PING" => self.send(b"+PONG\r\n"),
            other => panic!("unexpected set-up command {other:?}"),
        }
        .then_some(())
    }

    /// Holds the conn open, reading and ignoring whatever comes, until the client closes
    /// it or time is up.
    fn hold(&mut self) {
        while self.next_command().is_some() {}
    }
}

const INVALIDATE: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";

// ---------------------------------------------------------------------------
// Pushes never restart the read timeout.
// ---------------------------------------------------------------------------

/// A RESP3 conn with `CLIENT TRACKING ON BCAST` on a real redis-server runs `BLPOP k 6`
/// while another client keeps SETting keys, so invalidation pushes keep coming: the
/// command ends by its read timeout (1 s), not when BLPOP does (6 s).
#[test]
fn tracking_pushes_do_not_extend_a_blocking_commands_read_timeout() {
    let server = RedisServer::start();
    let read_timeout = Duration::from_secs(1);
    let pool = ConnPool::new(options(&server.addr(), 3, read_timeout)).unwrap();
    let mut conn = pool.get().unwrap();
    assert_eq!(
        conn.command(&[b"CLIENT", b"TRACKING", b"ON", b"BCAST"])
            .unwrap(),
        Reply::Status(b"OK".to_vec())
    );

    // The writer: a raw socket with replies off, SETting a key every millisecond until
    // told to stop (bounded: 15 s at most).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut sock = TcpStream::connect(server.addr()).unwrap();
        thread::spawn(move || {
            sock.write_all(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
                .unwrap();
            let end = Instant::now() + Duration::from_secs(15);
            let mut sets = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let key = format!("rp:bcast:{}", sets % 16);
                let cmd = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len());
                if sock.write_all(cmd.as_bytes()).is_err() {
                    break;
                }
                sets += 1;
                thread::sleep(Duration::from_millis(1));
            }
            sets
        })
    };

    let start = Instant::now();
    let res = conn.command(&[b"BLPOP", b"rp:bcast:empty", b"6"]);
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sets = writer.join().unwrap();
    println!("BLPOP with read_timeout 1 s under {sets} SETs (BCAST pushes): {took:?}, {res:?}");
    match res {
        Err(Error::Io(msg)) => assert!(msg.contains("timeout"), "{msg}"),
        other => panic!("expected an i/o timeout, got {other:?} after {took:?}"),
    }
    assert!(took >= read_timeout, "{took:?}");
    assert!(took < bound(read_timeout), "BLPOP took {took:?}");
    assert!(sets > 0, "the writer wrote nothing: no pushes flowed");
    assert!(conn.broken_reason().is_some(), "a timed-out conn is bad");
    pool.remove(conn, None).unwrap();
}

/// A server that answers the set-up, then floods push frames forever instead of replying:
/// the command ends by its read timeout.
#[test]
fn a_push_flood_cannot_outlive_the_read_timeout() {
    let server = FakeServer::start(|mut peer| {
        if peer.answer_set_up().is_none() || peer.next_command().is_none() {
            return;
        }
        let mut flood = Vec::new();
        for _ in 0..64 {
            flood.extend_from_slice(INVALIDATE);
        }
        while !peer.over() && peer.send(&flood) {}
    });
    let read_timeout = Duration::from_millis(500);
    let pool = ConnPool::new(options(&server.addr, 3, read_timeout)).unwrap();
    let mut conn = pool.get().unwrap();
    let start = Instant::now();
    let res = conn.command(&[b"GET", b"k"]);
    let took = start.elapsed();
    println!("GET with read_timeout 500 ms under a push flood: {took:?}, {res:?}");
    match res {
        Err(Error::Io(msg)) => assert!(msg.contains("timeout"), "{msg}"),
        other => panic!("expected an i/o timeout, got {other:?} after {took:?}"),
    }
    assert!(took >= read_timeout, "{took:?}");
    assert!(took < bound(read_timeout), "GET took {took:?}");
    pool.remove(conn, None).unwrap();
}

/// Pushes before the reply on a RESP3 conn are still skipped (the reply comes within the
/// deadline): the fix bounds them, it does not refuse them.
#[test]
fn a_few_pushes_before_the_reply_are_still_skipped() {
    let server = FakeServer::start(|mut peer| {
        if peer.answer_set_up().is_none() {
            return;
        }
        while let Some(cmd) = peer.next_command() {
            assert_eq!(cmd, "PING");
            let mut answer = INVALIDATE.repeat(3);
            answer.extend_from_slice(b"+PONG\r\n");
            if !peer.send(&answer) {
                return;
            }
        }
    });
    let pool = ConnPool::new(options(&server.addr, 3, Duration::from_secs(5))).unwrap();
    let mut conn = pool.get().unwrap();
    for _ in 0..3 {
        assert_eq!(
            conn.command(&[b"PING"]).unwrap(),
            Reply::Status(b"PONG".to_vec())
        );
    }
    assert_eq!(conn.broken_reason(), None);
    pool.put(conn).unwrap();
}

// ---------------------------------------------------------------------------
// A push on a RESP2 conn is refused.
// ---------------------------------------------------------------------------

/// RESP2 has no push frames: one where a reply should be is a protocol error, and the
/// conn is bad (not skipped as on a RESP3 conn, which would read the next frame as the
/// reply of a server that does not speak the protocol agreed on).
#[test]
fn a_push_on_a_resp2_conn_is_a_protocol_error() {
    let server = FakeServer::start(|mut peer| {
        if peer.answer_set_up().is_none() || peer.next_command().is_none() {
            return;
        }
        let mut answer = INVALIDATE.to_vec();
        answer.extend_from_slice(b"+PONG\r\n");
        if peer.send(&answer) {
            peer.hold();
        }
    });
    let pool = ConnPool::new(options(&server.addr, 2, Duration::from_secs(5))).unwrap();
    let mut conn = pool.get().unwrap();
    match conn.command(&[b"PING"]) {
        Err(Error::Protocol(msg)) => assert!(msg.contains("push"), "{msg}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(conn.broken_reason().is_some());
    assert!(matches!(conn.command(&[b"PING"]), Err(Error::BadConn(_))));
    let removed = pool.stats().removed_conns;
    pool.put(conn).unwrap();
    assert_eq!(
        pool.stats().removed_conns,
        removed + 1,
        "a bad conn is not pooled"
    );
}

// ---------------------------------------------------------------------------
// The PING inside a get ends by the get's own deadline.
// ---------------------------------------------------------------------------

/// Serves conns that answer their set-up PING, then never answer again.
fn mute_after_set_up() -> FakeServer {
    FakeServer::start(|mut peer| {
        if peer.answer_set_up().is_some() {
            peer.hold();
        }
    })
}

/// Makes `pool`'s one conn idle past `ping_after_idle`.
fn idle_conn(pool: &ConnPool, ping_after: Duration) {
    let conn = pool.get().unwrap();
    pool.put(conn).unwrap();
    thread::sleep(ping_after + ping_after / 2);
}

/// pool_timeout 1 s, read_timeout 5 s, a long-idle conn whose PING is never answered: the
/// get ends by its own deadline (1 s) with `Error::Timeout`, as a go-redis get that runs
/// out of pool_timeout does, not after the read timeout (5 s) with a new conn.
#[test]
fn the_ping_check_ends_by_the_gets_deadline() {
    let server = mute_after_set_up();
    let ping_after = Duration::from_millis(100);
    let pool_timeout = Duration::from_secs(1);
    let mut o = options(&server.addr, 2, Duration::from_secs(5));
    o.ping_after_idle = Some(ping_after);
    o.pool_timeout = Wait::For(pool_timeout);
    let pool = ConnPool::new(o).unwrap();
    idle_conn(&pool, ping_after);
    let stale = pool.stats().stale_conns;
    let start = Instant::now();
    let res = pool.get();
    let took = start.elapsed();
    println!("get with pool_timeout 1 s, read_timeout 5 s, PING unanswered: {took:?}, {res:?}");
    match res {
        Err(Error::Timeout(msg)) => assert!(msg.contains("checking idle"), "{msg}"),
        other => panic!("expected a pool timeout, got {other:?} after {took:?}"),
    }
    assert!(took >= pool_timeout, "{took:?}");
    assert!(took < bound(pool_timeout), "get took {took:?}");
    let st = pool.stats();
    assert_eq!(
        st.stale_conns,
        stale + 1,
        "the mute conn was closed as stale"
    );
    assert_eq!(st.timeouts, 1);
    assert_eq!(pool.len(), 0, "no turn or conn left behind");
    // The pool still works: the next get dials (the set-up PING is answered).
    let conn = pool.get().unwrap();
    pool.put(conn).unwrap();
}

/// pool_timeout forever and no read timeout: the PING check is still bounded, by the dial
/// timeout (here 1 s), and the get goes on to dial a new conn.
#[test]
fn the_ping_check_without_any_timeout_is_bounded_by_the_dial_timeout() {
    let server = mute_after_set_up();
    let ping_after = Duration::from_millis(100);
    let dial_timeout = Duration::from_secs(1);
    let mut o = options(&server.addr, 2, Duration::from_secs(5));
    o.read_timeout = None;
    o.pool_timeout = Wait::Forever;
    o.dial_timeout = Some(dial_timeout);
    o.ping_after_idle = Some(ping_after);
    let pool = ConnPool::new(o).unwrap();
    idle_conn(&pool, ping_after);
    let dials = pool.stats().dials;
    let start = Instant::now();
    let res = pool.get();
    let took = start.elapsed();
    println!("get with pool_timeout forever, no read_timeout, PING unanswered: {took:?}");
    let conn = res.unwrap_or_else(|e| panic!("{e} after {took:?}"));
    assert!(took >= dial_timeout, "{took:?}");
    assert!(took < bound(dial_timeout), "get took {took:?}");
    assert_eq!(
        pool.stats().dials,
        dials + 1,
        "a new conn replaced the mute one"
    );
    pool.put(conn).unwrap();
}

// ---------------------------------------------------------------------------
// Cluster redirects: the whole call within one read deadline.
// ---------------------------------------------------------------------------

/// A one-node cluster whose node answers every GET with TRYAGAIN after 400 ms: with
/// read_timeout 500 ms and max_redirects 8, pool_conn_command used to send the GET 9 times,
/// each with a fresh read timeout (about 5 s in all); now the call ends by its one read
/// deadline.
#[test]
fn cluster_redirects_stay_within_one_read_deadline() {
    use common::capi::CConn;
    use redispool::ffi::cluster::{
        pool_cluster_free, pool_cluster_get, pool_cluster_new_url, pool_cluster_remove,
        pool_cluster_t,
    };
    use redispool::ffi::error::pool_error_t;
    use redispool::ffi::reply::POOL_REPLY_ERROR;
    use redispool::ffi::status::{POOL_ERR_IO, POOL_OK};
    use std::ffi::CString;
    use std::sync::Mutex;

    let port = Arc::new(Mutex::new(0u16));
    let server = {
        let port = port.clone();
        FakeServer::start(move |mut peer| {
            while let Some(args) = peer.next_args() {
                let answer = match (args[0].as_str(), args.get(1).map(String::as_str)) {
                    ("PING", _) => "+PONG\r\n".to_string(),
                    ("CLUSTER", Some("SHARDS")) => "-ERR unknown subcommand 'SHARDS'\r\n".into(),
                    ("CLUSTER", Some("SLOTS")) => format!(
                        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{}\r\n",
                        *port.lock().unwrap()
                    ),
                    ("GET", _) => {
                        thread::sleep(Duration::from_millis(400));
                        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n".into()
                    }
                    (other, _) => panic!("unexpected command {other:?}"),
                };
                if !peer.send(answer.as_bytes()) {
                    return;
                }
            }
        })
    };
    *port.lock().unwrap() = server.addr.rsplit(':').next().unwrap().parse().unwrap();

    let url = CString::new(format!(
        "redis://{}?read_timeout=500ms&max_redirects=8&dialer_retries=1",
        server.addr
    ))
    .unwrap();
    let mut err = pool_error_t {
        code: 0,
        message: [0; 256],
    };
    let mut cluster: *mut pool_cluster_t = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated URL and writable out-pointers.
    let st = unsafe { pool_cluster_new_url(url.as_ptr(), &mut cluster, &mut err) };
    assert_eq!(st, POOL_OK);
    let mut conn = std::ptr::null_mut();
    // SAFETY: a live cluster handle, a 1-byte key, writable out-pointers.
    let st = unsafe {
        pool_cluster_get(
            cluster,
            c"k".as_ptr(),
            1,
            -1,
            std::ptr::null(),
            &mut conn,
            &mut err,
        )
    };
    assert_eq!(st, POOL_OK);
    let conn = CConn(conn);
    let read_timeout = Duration::from_millis(500);
    let start = Instant::now();
    let res = conn.command(&[b"GET", b"k"]);
    let took = start.elapsed();
    println!("cluster GET, TRYAGAIN after 400 ms each, read_timeout 500 ms: {took:?}, {res:?}");
    match &res {
        Err(f) => assert_eq!(f.code, POOL_ERR_IO, "{f}"),
        Ok(r) => assert!(
            r.kind == POOL_REPLY_ERROR && r.text.starts_with("TRYAGAIN"),
            "{r:?}"
        ),
    }
    assert!(took < bound(read_timeout), "the call took {took:?}");
    // SAFETY: the conn came from this cluster and is given back once; then the handle is
    // freed once.
    unsafe {
        pool_cluster_remove(cluster, conn.0, std::ptr::null());
        pool_cluster_free(cluster);
    }
}

// ---------------------------------------------------------------------------
// Sentinel queries: connect, AUTH and the query share one deadline.
// ---------------------------------------------------------------------------

/// A sentinel that answers AUTH and GET-MASTER-ADDR-BY-NAME 1.9 s late each: a search with a
/// 2 s budget used to give each step a fresh 2 s and answer after 3.8 s; now it ends by its
/// budget.
#[test]
fn a_sentinel_query_ends_by_its_budget() {
    use redispool::sentinel::{SentinelConfig, SentinelState};

    let server = FakeServer::start(|mut peer| {
        while let Some(args) = peer.next_args() {
            thread::sleep(Duration::from_millis(1900));
            let answer: &[u8] = match args[0].as_str() {
                "AUTH" => b"+OK\r\n",
                "SENTINEL" => b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6399\r\n",
                other => panic!("unexpected command {other:?}"),
            };
            if !peer.send(answer) {
                return;
            }
        }
    });
    let mut cfg = SentinelConfig::new("mymaster", vec![server.addr.clone()]);
    cfg.password = Some("pw".into());
    let state = SentinelState::new(cfg).unwrap();
    let budget = Duration::from_secs(2);
    let start = Instant::now();
    let res = state.query_master(budget);
    let took = start.elapsed();
    println!("sentinel query, 2 s budget, AUTH and query 1.9 s late each: {took:?}, {res:?}");
    match res {
        Err(Error::Dial { message, .. }) => assert!(message.contains("timeout"), "{message}"),
        other => panic!("expected the search to run out of time, got {other:?}"),
    }
    assert!(took < budget + Duration::from_millis(1200), "took {took:?}");
}

// ---------------------------------------------------------------------------
// The session set-up of a new conn ends, even without a read timeout.
// ---------------------------------------------------------------------------

/// A server that accepts conns and never answers: with no read timeout and a get that
/// waits forever, the set-up (here its PING) used to wait as long as the server kept the
/// conn open; it now ends by the dial timeout (1 s), as a dial failure.
#[test]
fn a_set_up_without_read_timeout_ends_by_the_dial_timeout() {
    let server = FakeServer::start(|mut peer| peer.hold());
    let dial_timeout = Duration::from_secs(1);
    let mut o = options(&server.addr, 2, Duration::from_secs(5));
    o.read_timeout = None;
    o.pool_timeout = Wait::Forever;
    o.dial_timeout = Some(dial_timeout);
    let pool = ConnPool::new(o).unwrap();
    let start = Instant::now();
    let res = pool.get();
    let took = start.elapsed();
    println!("get, no read timeout, set-up never answered: {took:?}, {res:?}");
    match res {
        Err(Error::Dial { message, .. }) => assert!(message.contains("timeout"), "{message}"),
        other => panic!("expected a dial error, got {other:?} after {took:?}"),
    }
    assert!(took >= dial_timeout, "{took:?}");
    assert!(took < bound(dial_timeout), "get took {took:?}");
}

/// A caller that switches a RESP2 conn to RESP3 itself (HELLO 3) gets pushes skipped from
/// then on, and refused again after HELLO 2.
#[test]
fn hello_sent_by_the_caller_switches_how_pushes_are_taken() {
    let server = FakeServer::start(|mut peer| {
        if peer.answer_set_up().is_none() {
            return;
        }
        while let Some(args) = peer.next_args() {
            let answer: Vec<u8> = match (args[0].as_str(), args.get(1).map(String::as_str)) {
                ("HELLO", Some("3")) => b"%1\r\n$5\r\nproto\r\n:3\r\n".to_vec(),
                ("HELLO", _) => b"*2\r\n$5\r\nproto\r\n:2\r\n".to_vec(),
                _ => [INVALIDATE, b"+PONG\r\n"].concat(),
            };
            if !peer.send(&answer) {
                return;
            }
        }
    });
    let pool = ConnPool::new(options(&server.addr, 2, Duration::from_secs(5))).unwrap();
    let mut conn = pool.get().unwrap();
    assert!(matches!(
        conn.command(&[b"HELLO", b"3"]).unwrap(),
        Reply::Map(_)
    ));
    assert_eq!(
        conn.command(&[b"PING"]).unwrap(),
        Reply::Status(b"PONG".to_vec()),
        "after HELLO 3 the push is skipped"
    );
    assert!(matches!(
        conn.command(&[b"HELLO", b"2"]).unwrap(),
        Reply::Array(_)
    ));
    assert!(
        matches!(conn.command(&[b"PING"]), Err(Error::Protocol(_))),
        "after HELLO 2 a push is refused again"
    );
    pool.remove(conn, None).unwrap();
}
