//! The default dialer and health check against a real redis-server the test starts.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::RedisServer;
use redispool::pool::{Conn, ConnPool, Dialer, Error, Options, Wait};

fn options(addr: &str, size: usize) -> Options {
    let mut o = Options::new(Dialer::from_addr(addr).unwrap());
    o.pool_size = size;
    o.pool_timeout = Wait::For(Duration::from_secs(5));
    o
}

/// Sends one RESP command over the conn's socket and reads a one-line reply.
fn command(conn: &Conn, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    // SAFETY: the fd stays owned by `conn`; ManuallyDrop keeps this stream from closing it.
    let stream = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(conn.fd()) });
    (&*stream).write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&*stream).read_line(&mut line).unwrap();
    line
}

fn getsockopt_int(fd: i32, level: i32, name: i32) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the call.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockopt");
    v
}

#[test]
fn tcp_conns_have_nodelay_keepalive_cloexec_and_block() {
    let server = RedisServer::start();
    let p = ConnPool::new(options(&server.addr(), 2)).unwrap();
    let c = p.get().unwrap();
    assert_eq!(command(&c, &["PING"]), "+PONG\r\n");
    let fd = c.fd();
    assert_eq!(getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    assert_eq!(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(
        getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        30
    );
    assert_eq!(
        getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        5
    );
    assert_eq!(getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
    // SAFETY: plain fcntl queries on a live fd.
    let (fdflags, flflags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    assert!(fdflags & libc::FD_CLOEXEC != 0, "close-on-exec");
    assert_eq!(flflags & libc::O_NONBLOCK, 0, "handed out in blocking mode");
    p.put(c).unwrap();
    p.close().unwrap();
}

#[test]
fn unix_socket_conns() {
    let dir = std::env::temp_dir().join(format!("redispool-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("redis.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let server = RedisServer::start_with(&["--unixsocket", &sock_s, "--unixsocketperm", "700"]);
    for addr in [sock_s.clone(), format!("unix:{sock_s}")] {
        let p = ConnPool::new(options(&addr, 2)).unwrap();
        let c = p.get().unwrap();
        assert_eq!(command(&c, &["PING"]), "+PONG\r\n");
        p.put(c).unwrap();
        let c = p.get().unwrap();
        assert_eq!(p.stats().hits, 1);
        p.put(c).unwrap();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conns_killed_by_the_server_are_detected_and_replaced() {
    let server = RedisServer::start();
    let p = ConnPool::new(options(&server.addr(), 4)).unwrap();
    let conns: Vec<Conn> = (0..3).map(|_| p.get().unwrap()).collect();
    let ids: Vec<u64> = conns.iter().map(|c| c.id()).collect();
    // Duplicates of the sockets, to learn when the kill has reached them.
    // SAFETY: dup of live fds; the copies are closed below.
    let dups: Vec<i32> = conns.iter().map(|c| unsafe { libc::dup(c.fd()) }).collect();
    for c in &conns {
        assert_eq!(command(c, &["CLIENT", "SETNAME", "pooled"]), "+OK\r\n");
    }
    for c in conns {
        p.put(c).unwrap();
    }
    // Another client kills every pooled conn, as a server restart would.
    let mut admin = TcpStream::connect(server.addr()).unwrap();
    admin
        .write_all(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$4\r\nTYPE\r\n$6\r\nnormal\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&admin).read_line(&mut line).unwrap();
    assert!(line.starts_with(':'), "{line}");
    // Await the FIN on every killed socket (bounded), so the peek has something to see.
    for &fd in &dups {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        assert_eq!(n, 1, "the server closed the conn");
        // SAFETY: closing our own duplicate.
        unsafe { libc::close(fd) };
    }
    let c = p.get().unwrap();
    assert!(!ids.contains(&c.id()), "a fresh conn, not a killed one");
    assert_eq!(command(&c, &["PING"]), "+PONG\r\n");
    assert_eq!(
        p.stats().stale_conns,
        3,
        "all three killed conns were found stale"
    );
    assert_eq!(p.len(), 1);
    p.put(c).unwrap();
    drop(admin);
}

#[test]
fn dial_errors_name_the_address() {
    // A port nobody listens on: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut o = options(&format!("127.0.0.1:{port}"), 2);
    o.dialer_retries = 2;
    o.dialer_retry_backoff = Duration::from_millis(10);
    let p = ConnPool::new(o).unwrap();
    let err = p.get().unwrap_err();
    let Error::Dial { message, errno } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("refused"), "{message}");
    assert_eq!(*errno, Some(libc::ECONNREFUSED));
}
