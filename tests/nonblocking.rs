//! The non-blocking command path of the C ABI (pool_conn_start, pool_conn_start_pipeline,
//! pool_conn_finish, pool_conn_finish_pipeline, pool_conn_wait_ms) against a real
//! redis-server, plain and TLS: commands started on many conns and finished from one
//! thread that waits only in poll(2), replies bigger than the socket buffers (both
//! directions), deadlines that pass between start and finish, and misuse.

mod common;

use std::ffi::{CStr, c_char, c_int};
use std::time::{Duration, Instant};

use common::RedisServer;
use common::capi::{CConn, CPool};
use common::tls::{TlsServer, certs};
use redispool::ffi::conn::{pool_conn_fd, pool_conn_read};
use redispool::ffi::error::pool_error_t;
use redispool::ffi::nonblocking::{
    POOL_WANT_READ, POOL_WANT_WRITE, pool_conn_finish, pool_conn_finish_pipeline, pool_conn_start,
    pool_conn_start_pipeline, pool_conn_started, pool_conn_wait_ms,
};
use redispool::ffi::reply::{pool_reply_free, pool_reply_t};
use redispool::ffi::status::{
    POOL_ERR_BAD_CONN, POOL_ERR_INVALID_ARG, POOL_ERR_IO, POOL_ERR_WOULD_BLOCK, POOL_OK,
    pool_status_t,
};

fn new_error() -> pool_error_t {
    pool_error_t {
        code: 0,
        message: [0; 256],
    }
}

fn message(err: &pool_error_t) -> String {
    // SAFETY: the library NUL-terminates the message.
    unsafe { CStr::from_ptr(err.message.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A reply's text (string, status, error) or integer digits; freed.
fn text_of(reply: *mut pool_reply_t) -> String {
    assert!(!reply.is_null());
    // SAFETY: a reply tree the library handed over, freed once below.
    let r = unsafe { &*reply };
    let text = if r.str.is_null() {
        r.integer.to_string()
    } else {
        // SAFETY: str holds len bytes.
        let bytes = unsafe { std::slice::from_raw_parts(r.str.cast::<u8>(), r.len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    // SAFETY: the root reply, freed once.
    unsafe { pool_reply_free(reply) };
    text
}

fn start(conn: &CConn, args: &[&[u8]], timeout_ms: i64) -> (pool_status_t, c_int, String) {
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    let mut want = -1;
    let mut err = new_error();
    // SAFETY: argv/lens hold argc entries.
    let st = unsafe {
        pool_conn_start(
            conn.0,
            argv.len() as c_int,
            argv.as_ptr(),
            lens.as_ptr(),
            timeout_ms,
            &mut want,
            &mut err,
        )
    };
    (st, want, message(&err))
}

fn start_pipeline(conn: &CConn, cmds: &[Vec<&[u8]>]) -> (pool_status_t, c_int) {
    let argvs: Vec<Vec<*const c_char>> = cmds
        .iter()
        .map(|c| c.iter().map(|a| a.as_ptr().cast()).collect())
        .collect();
    let lens: Vec<Vec<usize>> = cmds
        .iter()
        .map(|c| c.iter().map(|a| a.len()).collect())
        .collect();
    let argcs: Vec<c_int> = cmds.iter().map(|c| c.len() as c_int).collect();
    let argv_ptrs: Vec<*const *const c_char> = argvs.iter().map(|v| v.as_ptr()).collect();
    let len_ptrs: Vec<*const usize> = lens.iter().map(|v| v.as_ptr()).collect();
    let mut want = -1;
    let mut err = new_error();
    // SAFETY: every array holds ncmds entries, each command argcs[i] arguments.
    let st = unsafe {
        pool_conn_start_pipeline(
            conn.0,
            cmds.len(),
            argcs.as_ptr(),
            argv_ptrs.as_ptr(),
            len_ptrs.as_ptr(),
            -1,
            &mut want,
            &mut err,
        )
    };
    assert_eq!(st, POOL_OK, "{}", message(&err));
    (st, want)
}

/// One pool_conn_finish: Ok(reply text), Err((status, want, message)).
fn finish_once(conn: &CConn) -> Result<String, (pool_status_t, c_int, String)> {
    let mut reply: *mut pool_reply_t = std::ptr::null_mut();
    let mut want = -1;
    let mut err = new_error();
    // SAFETY: a conn handle and writable out-pointers.
    let st = unsafe { pool_conn_finish(conn.0, &mut reply, &mut want, &mut err) };
    if st == POOL_OK {
        assert_eq!(want, 0);
        return Ok(text_of(reply));
    }
    assert!(reply.is_null());
    assert_eq!(err.code, st);
    Err((st, want, message(&err)))
}

fn poll_fd(fd: c_int, want: c_int, timeout_ms: i64) -> bool {
    let events = match want {
        w if w == POOL_WANT_READ => libc::POLLIN,
        w if w == POOL_WANT_WRITE => libc::POLLOUT,
        w => panic!("want {w}"),
    };
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one pollfd.
    let t = if timeout_ms < 0 {
        10_000
    } else {
        timeout_ms.min(10_000)
    };
    // SAFETY: one pollfd.
    let n = unsafe { libc::poll(&mut p, 1, t as c_int) };
    n == 1
}

/// Finishes the command started on `conn`, waiting only in poll(2); counts the
/// POOL_ERR_WOULD_BLOCKs by interest.
fn finish_polling(
    conn: &CConn,
    mut want: c_int,
) -> (Result<String, (pool_status_t, String)>, [u32; 2]) {
    let mut blocked = [0u32; 2];
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < end, "the command never finished");
        // A poll that times out is the deadline: finish then says so.
        poll_fd(conn.fd(), want, pool_conn_wait_ms(conn.0));
        match finish_once(conn) {
            Ok(text) => return (Ok(text), blocked),
            Err((POOL_ERR_WOULD_BLOCK, w, _)) => {
                assert!(w == POOL_WANT_READ || w == POOL_WANT_WRITE, "want {w}");
                blocked[(w - 1) as usize] += 1;
                want = w;
            }
            Err((st, _, msg)) => return (Err((st, msg)), blocked),
        }
    }
}

fn plain_pool(srv: &RedisServer, extra: &str) -> CPool {
    CPool::from_url(&format!("redis://{}/?pool_size=32{extra}", srv.addr()))
}

fn tls_pool(srv: &TlsServer, extra: &str) -> CPool {
    CPool::from_url(&format!(
        "rediss://{}/?tls_ca_file={}&pool_size=32{extra}",
        srv.tls_addr(),
        certs().path("ca.pem")
    ))
}

/// Stops (SIGSTOP) or resumes (SIGCONT) the server, so that the socket fills up for sure.
fn signal(pid: u32, sig: c_int) {
    // SAFETY: a signal to the test's own child process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// A value far larger than the socket buffers is sent to a stopped server (POOL_WANT_WRITE,
/// then POOL_ERR_WOULD_BLOCK for writing) and read back (POOL_ERR_WOULD_BLOCK for reading
/// once the server stops again mid-reply), then 16 conns each run a command and are
/// finished from one thread in whatever order their fds become ready.
fn round_trips(pool: &CPool, server_pid: u32) {
    let conn = pool.get(-1).unwrap();
    let big: Vec<u8> = (0..24 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    signal(server_pid, libc::SIGSTOP);
    let (st, want, msg) = start(&conn, &[b"SET", b"nb:big", &big], -1);
    assert_eq!(st, POOL_OK, "{msg}");
    assert_eq!(
        want, POOL_WANT_WRITE,
        "24 MiB fit in the socket of a stopped server?"
    );
    assert_eq!(pool_conn_started(conn.0), 1);
    let (st, w, _) = finish_once(&conn).unwrap_err();
    assert_eq!((st, w), (POOL_ERR_WOULD_BLOCK, POOL_WANT_WRITE));
    signal(server_pid, libc::SIGCONT);
    let (res, _) = finish_polling(&conn, want);
    assert_eq!(res.unwrap(), "OK");
    assert_eq!(pool_conn_started(conn.0), 0);
    let (st, want, _) = start(&conn, &[b"GET", b"nb:big"], -1);
    assert_eq!((st, want), (POOL_OK, POOL_WANT_READ));
    assert!(poll_fd(conn.fd(), want, 10_000), "no reply within 10 s");
    signal(server_pid, libc::SIGSTOP);
    // The server is stopped mid-reply (24 MiB do not fit in the socket buffers): what
    // arrived is parsed, then finish says to wait for more.
    // One finish reads all that arrived (the socket says EAGAIN) and asks for more.
    let (st, w, _) = finish_once(&conn).expect_err("24 MiB arrived whole from a stopped server");
    assert_eq!((st, w), (POOL_ERR_WOULD_BLOCK, POOL_WANT_READ));
    signal(server_pid, libc::SIGCONT);
    let (res, _) = finish_polling(&conn, POOL_WANT_READ);
    let got = res.unwrap();
    assert!(
        got.as_bytes() == big.as_slice(),
        "the value came back different"
    );
    // The conn is good for blocking commands again, and pooled on put.
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);

    let conns: Vec<CConn> = (0..16).map(|_| pool.get(-1).unwrap()).collect();
    let mut wants = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let key = format!("nb:k{i}");
        let val = format!("v{i}");
        assert_eq!(
            c.command(&[b"SET", key.as_bytes(), val.as_bytes()])
                .unwrap()
                .text,
            "OK"
        );
        let (st, want, msg) = start(c, &[b"GET", key.as_bytes()], -1);
        assert_eq!(st, POOL_OK, "{msg}");
        wants.push(want);
    }
    let mut done = vec![None; conns.len()];
    let end = Instant::now() + Duration::from_secs(60);
    while done.iter().any(Option::is_none) {
        assert!(Instant::now() < end);
        let mut fds: Vec<libc::pollfd> = conns
            .iter()
            .zip(&wants)
            .map(|(c, &w)| libc::pollfd {
                fd: c.fd(),
                events: if w == POOL_WANT_READ {
                    libc::POLLIN
                } else {
                    libc::POLLOUT
                },
                revents: 0,
            })
            .collect();
        // SAFETY: fds.len() pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, 5000) };
        for (i, c) in conns.iter().enumerate() {
            if done[i].is_some() || fds[i].revents == 0 {
                continue;
            }
            match finish_once(c) {
                Ok(t) => done[i] = Some(t),
                Err((POOL_ERR_WOULD_BLOCK, w, _)) => wants[i] = w,
                Err(e) => panic!("conn {i}: {e:?}"),
            }
        }
    }
    for (i, d) in done.into_iter().enumerate() {
        assert_eq!(d.unwrap(), format!("v{i}"));
    }
    for c in conns {
        assert_eq!(pool.put(c), POOL_OK);
    }
    assert_eq!(pool.stats().reset_conns, 0);
}

fn pipelines(pool: &CPool) {
    let conn = pool.get(-1).unwrap();
    assert_eq!(conn.command(&[b"DEL", b"nb:ctr"]).unwrap().kind, 3);
    let mut cmds: Vec<Vec<&[u8]>> = (0..500).map(|_| vec![&b"INCR"[..], b"nb:ctr"]).collect();
    cmds.push(vec![b"LPUSH", b"nb:ctr", b"x"]); // WRONGTYPE: an error reply in its place
    cmds.push(vec![b"GET", b"nb:ctr"]);
    let (_, mut want) = start_pipeline(&conn, &cmds);
    assert_eq!(pool_conn_started(conn.0), cmds.len());
    // pool_conn_finish cannot take 502 replies: refused, nothing lost.
    let (st, _, msg) = finish_once(&conn).unwrap_err();
    assert_eq!(st, POOL_ERR_INVALID_ARG, "{msg}");
    let mut replies = vec![std::ptr::null_mut::<pool_reply_t>(); cmds.len()];
    let mut n = 0usize;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < end);
        let mut err = new_error();
        // SAFETY: replies has cap entries.
        let st = unsafe {
            pool_conn_finish_pipeline(
                conn.0,
                replies.as_mut_ptr(),
                replies.len(),
                &mut n,
                &mut want,
                &mut err,
            )
        };
        if st == POOL_OK {
            break;
        }
        assert_eq!(st, POOL_ERR_WOULD_BLOCK, "{}", message(&err));
        assert_eq!(n, 0);
        poll_fd(conn.fd(), want, 5000);
    }
    assert_eq!(n, cmds.len());
    let texts: Vec<String> = replies.into_iter().map(text_of).collect();
    for (i, t) in texts[..500].iter().enumerate() {
        assert_eq!(t, &(i + 1).to_string());
    }
    assert!(texts[500].starts_with("WRONGTYPE"), "{}", texts[500]);
    assert_eq!(texts[501], "500");
    pool.put(conn);
}

#[test]
fn nonblocking_round_trips_plain() {
    let srv = RedisServer::start();
    round_trips(&plain_pool(&srv, ""), srv.pid());
}

#[test]
fn nonblocking_round_trips_tls() {
    let srv = TlsServer::start();
    round_trips(&tls_pool(&srv, ""), srv.server.pid());
}

#[test]
fn nonblocking_pipeline_plain() {
    let srv = RedisServer::start();
    pipelines(&plain_pool(&srv, ""));
}

#[test]
fn nonblocking_pipeline_tls() {
    let srv = TlsServer::start();
    pipelines(&tls_pool(&srv, ""));
}

/// A deadline that passes between start and finish fails the command with POOL_ERR_IO (an
/// i/o timeout) and marks the conn bad; pool_conn_wait_ms is the poll timeout to get there.
fn deadline_passes(pool: &CPool) {
    let conn = pool.get(-1).unwrap();
    let (st, want, msg) = start(&conn, &[b"BLPOP", b"nb:empty", b"10"], 300);
    assert_eq!((st, want), (POOL_OK, POOL_WANT_READ), "{msg}");
    let left = pool_conn_wait_ms(conn.0);
    assert!((1..=300).contains(&left), "wait_ms {left}");
    let (res, _) = finish_polling(&conn, want);
    let (st, msg) = res.unwrap_err();
    assert_eq!(st, POOL_ERR_IO, "{msg}");
    assert!(msg.contains("timeout"), "{msg}");
    assert_eq!(pool_conn_started(conn.0), 0);
    assert_eq!(pool_conn_wait_ms(conn.0), -1);
    assert_eq!(
        conn.command(&[b"PING"]).unwrap_err().code,
        POOL_ERR_BAD_CONN
    );
    let id = conn.id();
    pool.put(conn);
    let next = pool.get(-1).unwrap();
    assert_ne!(
        next.id(),
        id,
        "a conn that timed out mid-command was pooled"
    );
    assert_eq!(next.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(next);
}

#[test]
fn nonblocking_deadline_plain() {
    let srv = RedisServer::start();
    deadline_passes(&plain_pool(&srv, ""));
}

#[test]
fn nonblocking_deadline_tls() {
    let srv = TlsServer::start();
    deadline_passes(&tls_pool(&srv, ""));
}

/// Misuse gets clear codes and loses nothing: finish without start, a second start, a
/// blocking command or raw I/O mid-command; a conn put mid-command is closed, never handed
/// out again with its reply unread.
fn misuse(pool: &CPool) {
    let conn = pool.get(-1).unwrap();
    let (st, _, msg) = finish_once(&conn).unwrap_err();
    assert_eq!(st, POOL_ERR_INVALID_ARG, "{msg}");
    assert!(msg.contains("no command started"), "{msg}");
    assert_eq!(
        conn.command(&[b"SET", b"nb:m", b"first"]).unwrap().text,
        "OK"
    );
    let (st, _, msg) = start(&conn, &[b"GET", b"nb:m"], -1);
    assert_eq!(st, POOL_OK, "{msg}");
    let (st, _, msg) = start(&conn, &[b"SET", b"nb:m", b"second"], -1);
    assert_eq!(st, POOL_ERR_INVALID_ARG, "{msg}");
    assert!(msg.contains("unfinished"), "{msg}");
    let f = conn.command(&[b"SET", b"nb:m", b"third"]).unwrap_err();
    assert_eq!(f.code, POOL_ERR_INVALID_ARG, "{f}");
    let mut buf = [0u8; 16];
    let mut n = 0;
    let mut err = new_error();
    // SAFETY: buf is writable for its length.
    let st = unsafe {
        pool_conn_read(
            conn.0,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            &mut n,
            &mut err,
        )
    };
    assert_eq!(st, POOL_ERR_INVALID_ARG, "{}", message(&err));
    // The first command is untouched: its reply is "first", and nothing else was sent.
    let (res, _) = finish_polling(&conn, POOL_WANT_READ);
    assert_eq!(res.unwrap(), "first");
    assert_eq!(conn.command(&[b"GET", b"nb:m"]).unwrap().text, "first");

    // Put mid-command: closed, not pooled (its reply would be the next user's).
    let reset_before = pool.stats().reset_conns;
    let (st, _, _) = start(&conn, &[b"GET", b"nb:m"], -1);
    assert_eq!(st, POOL_OK);
    let id = conn.id();
    assert_eq!(pool.put(conn), POOL_OK);
    assert_eq!(pool.stats().reset_conns, reset_before + 1);
    for _ in 0..4 {
        let c = pool.get(-1).unwrap();
        assert_ne!(c.id(), id, "a conn put mid-command was handed out again");
        assert_eq!(c.command(&[b"ECHO", b"mine"]).unwrap().text, "mine");
        pool.put(c);
    }
    // NULLs.
    let mut want = 0;
    let mut err = new_error();
    // SAFETY: NULL handles are refused before use.
    let st = unsafe {
        pool_conn_finish(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut want,
            &mut err,
        )
    };
    assert_eq!(st, POOL_ERR_INVALID_ARG);
    assert_eq!(pool_conn_fd(std::ptr::null()), -1);
}

#[test]
fn nonblocking_misuse_plain() {
    let srv = RedisServer::start();
    misuse(&plain_pool(&srv, ""));
}

#[test]
fn nonblocking_misuse_tls() {
    let srv = TlsServer::start();
    misuse(&tls_pool(&srv, ""));
}
