//! TLS against a real redis-server started with `--tls-port` and certificates generated at
//! test time (tests/common/tls.rs), through the C ABI: `rediss://` URLs and the
//! `pool_options_t` `tls_*` fields, every verification failure, configuration errors from
//! pool_new*, mutual TLS, and the health check on get under TLS. Subscribers too, with an
//! edge-triggered loop on pool_subscriber_fd over TLS and, for comparison, plain TCP and a
//! plain unix socket.

mod common;

use std::ffi::CString;
use std::time::{Duration, Instant};

use common::capi::{CPool, Failure};
use common::tls::{TlsServer, certs};
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::status::{
    POOL_ERR_DIAL, POOL_ERR_INVALID_ARG, POOL_ERR_PROTOCOL, POOL_ERR_TLS, pool_status_t,
};

/// A URL to the TLS port trusting the test CA, with `extra` parameters.
fn url(srv: &TlsServer, extra: &str) -> String {
    format!(
        "rediss://{}/?tls_ca_file={}&dialer_retries=1{extra}",
        srv.tls_addr(),
        certs().path("ca.pem")
    )
}

fn round_trip(pool: &CPool) {
    let conn = pool.get(-1).unwrap_or_else(|f| panic!("get: {f}"));
    assert_eq!(
        conn.command(&[b"SET", b"k", b"tls value"]).unwrap().text,
        "OK"
    );
    assert_eq!(conn.command(&[b"GET", b"k"]).unwrap().text, "tls value");
    // A reply larger than one TLS record (16 KiB) arrives whole.
    let big = vec![b'x'; 100_000];
    assert_eq!(conn.command(&[b"SET", b"big", &big]).unwrap().text, "OK");
    assert_eq!(
        conn.command(&[b"GET", b"big"]).unwrap().text.len(),
        big.len()
    );
    pool.put(conn);
}

/// The first get's failure on a pool made from `url`, and how long it took.
fn get_failure(url: &str) -> (Failure, Duration) {
    let pool = CPool::from_url(url);
    let start = Instant::now();
    let f = match pool.get(-1) {
        Ok(_) => panic!("get over {url} succeeded"),
        Err(f) => f,
    };
    (f, start.elapsed())
}

fn assert_tls_failure(url: &str, needle: &str) -> Failure {
    let (f, took) = get_failure(url);
    assert_eq!(f.code, POOL_ERR_TLS, "{f}");
    assert!(f.message.contains(needle), "{f}: no {needle:?}");
    // Bounded by the dial timeout (5 s), never a hang.
    assert!(took < Duration::from_secs(30), "{took:?}");
    f
}

#[test]
fn rediss_url_with_the_ca_round_trips() {
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, ""));
    round_trip(&pool);
    // The conn is the TLS port's: the server counts it as a TLS client.
    let conn = pool.get(-1).unwrap();
    let info = conn.command(&[b"CLIENT", b"INFO"]).unwrap().text;
    assert!(
        info.contains(&format!("laddr=127.0.0.1:{}", srv.tls_port)),
        "{info}"
    );
    pool.put(conn);
}

/// The test helper itself: a TLS port taken between its choice and redis-server's bind
/// (here held by a listener) makes the server exit; TlsServer starts again on a fresh
/// TLS port instead of failing (every other TLS test depends on it on a busy machine).
#[test]
fn tls_server_starts_again_when_its_tls_port_was_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("local_addr").port();
    let mut picked = Vec::new();
    let srv = TlsServer::start_picking_port("server", false, &[], || {
        let p = if picked.is_empty() {
            taken_port
        } else {
            common::free_port()
        };
        picked.push(p);
        p
    });
    assert_eq!(picked.len(), 2, "{picked:?}");
    assert_ne!(srv.tls_port, taken_port);
    assert_eq!(srv.tls_port, picked[1]);
    round_trip(&CPool::from_url(&url(&srv, "")));
}

#[test]
fn session_set_up_runs_over_tls() {
    let srv = TlsServer::start_with("server", false, &["--requirepass", "s3cret"]);
    let pool = CPool::from_url(&url(&srv, "&protocol=3&db=2&client_name=tls-test"));
    let pool_pw = CPool::from_url(&url(&srv, "").replace("rediss://", "rediss://:s3cret@"));
    round_trip(&pool_pw);
    // Without the password the set-up is refused (a HELLO with no AUTH): over TLS.
    let f = pool.get(-1).map(|_| ()).unwrap_err();
    assert!(
        f.message.contains("NOAUTH") || f.message.contains("HELLO"),
        "{f}"
    );
    let pool = CPool::from_url(
        &url(&srv, "&protocol=3&db=2&client_name=tls-test")
            .replace("rediss://", "rediss://:s3cret@"),
    );
    let conn = pool.get(-1).unwrap();
    let info = conn.command(&[b"CLIENT", b"INFO"]).unwrap().text;
    assert!(info.contains("name=tls-test"), "{info}");
    assert!(info.contains("db=2"), "{info}");
    assert!(info.contains("resp=3"), "{info}");
    pool.put(conn);
}

#[test]
fn pool_options_fields_enable_tls_with_mutual_auth() {
    let srv = TlsServer::start_with("server", true, &[]);
    let c = certs();
    let addr = CString::new(srv.tls_addr()).unwrap();
    let ca = CString::new(c.path("ca.pem")).unwrap();
    let cert = CString::new(c.path("client.pem")).unwrap();
    let key = CString::new(c.path("client.key")).unwrap();
    let mut o = std::mem::MaybeUninit::<pool_options_t>::uninit();
    // SAFETY: pool_options_init fills every field.
    let mut o = unsafe {
        pool_options_init(o.as_mut_ptr());
        o.assume_init()
    };
    o.addr = addr.as_ptr();
    o.tls = true;
    o.tls_ca_file = ca.as_ptr();
    o.dialer_retries = 1;
    // Without a client certificate the server refuses the handshake.
    let pool = CPool::from_options(&o);
    let f = pool.get(-1).map(|_| ()).unwrap_err();
    assert_eq!(f.code, POOL_ERR_TLS, "{f}");
    assert!(f.message.contains("alert"), "{f}");
    // With one, it works.
    o.tls_cert_file = cert.as_ptr();
    o.tls_key_file = key.as_ptr();
    let pool = CPool::from_options(&o);
    round_trip(&pool);
    // The same through a URL.
    let pool = CPool::from_url(&url(
        &srv,
        &format!(
            "&tls_cert_file={}&tls_key_file={}",
            c.path("client.pem"),
            c.path("client.key")
        ),
    ));
    round_trip(&pool);
}

#[test]
fn an_unknown_ca_is_refused() {
    let srv = TlsServer::start();
    let u = url(&srv, "").replace("ca.pem", "other-ca.pem");
    assert_tls_failure(&u, "unknown issuer");
    // The system trust store does not know the test CA either.
    let u = format!("rediss://{}/?dialer_retries=1", srv.tls_addr());
    assert_tls_failure(&u, "unknown issuer");
}

#[test]
fn a_wrong_host_name_is_refused_unless_the_name_is_set() {
    let srv = TlsServer::start_with("wronghost", false, &[]);
    let f = assert_tls_failure(&url(&srv, ""), "wrong host name");
    assert!(f.message.contains("127.0.0.1"), "{f}");
    // localhost (a DNS name) is not in the certificate either.
    let u = url(&srv, "").replace("127.0.0.1", "localhost");
    assert_tls_failure(&u, "wrong host name");
    let pool = CPool::from_url(&url(&srv, "&tls_server_name=wrong.example"));
    round_trip(&pool);
}

#[test]
fn an_expired_certificate_is_refused() {
    let srv = TlsServer::start_with("expired", false, &[]);
    assert_tls_failure(&url(&srv, ""), "expired");
}

#[test]
fn skip_verify_accepts_what_verification_refuses() {
    let srv = TlsServer::start_with("expired", false, &[]);
    let u = format!("rediss://{}/?skip_verify=true", srv.tls_addr());
    round_trip(&CPool::from_url(&u));
    let srv = TlsServer::start_with("wronghost", false, &[]);
    let u = format!("rediss://{}/?skip_verify=true", srv.tls_addr());
    round_trip(&CPool::from_url(&u));
}

#[test]
fn tls_to_a_plain_port_fails_with_a_clear_message() {
    let srv = TlsServer::start();
    let u = url(&srv, "&dial_timeout=2s").replace(&srv.tls_addr(), &srv.server.addr());
    let (f, took) = get_failure(&u);
    // The server answers the ClientHello with an error line (not TLS), or waits for the
    // rest of an inline command until the dial timeout.
    assert!(
        (f.code == POOL_ERR_TLS && f.message.contains("non-TLS port"))
            || (f.code == POOL_ERR_DIAL && f.message.contains("TLS handshake timed out")),
        "{f}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn plain_to_a_tls_port_fails_with_a_clear_message() {
    let srv = TlsServer::start();
    let u = format!(
        "redis://{}/?dialer_retries=1&dial_timeout=2s",
        srv.tls_addr()
    );
    let (f, took) = get_failure(&u);
    assert!(
        [POOL_ERR_DIAL, POOL_ERR_PROTOCOL, POOL_ERR_TLS].contains(&f.code),
        "{f}"
    );
    assert!(f.message.contains("TLS port?"), "{f}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// pool_new_url's failure for `url`.
fn config_failure(url: &str) -> Failure {
    match CPool::try_from_url(url) {
        Ok(_) => panic!("pool_new_url({url}) succeeded"),
        Err(f) => f,
    }
}

fn assert_config_error(url: &str, needles: &[&str]) -> Failure {
    let f = config_failure(url);
    assert_eq!(f.code, POOL_ERR_INVALID_ARG, "{f}");
    for n in needles {
        assert!(f.message.contains(n), "{f}: no {n:?}");
    }
    f
}

#[test]
fn configuration_errors_come_from_pool_new() {
    let c = certs();
    let base = "rediss://127.0.0.1:1/?";
    assert_config_error(
        &format!("{base}tls_ca_file=/nonexistent/ca.pem"),
        &["tls_ca_file", "/nonexistent/ca.pem", "No such file"],
    );
    assert_config_error(
        &format!("{base}tls_ca_file={}", c.path("malformed.pem")),
        &["tls_ca_file", "malformed PEM"],
    );
    // A key file is never quoted: only its path and what is wrong.
    let key = std::fs::read_to_string(c.path("client.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    let f = assert_config_error(
        &format!(
            "{base}tls_ca_file={}&tls_cert_file={}&tls_key_file={}",
            c.path("ca.pem"),
            c.path("client.pem"),
            c.path("server.key")
        ),
        &["tls_key_file", "does not match"],
    );
    assert!(!f.message.contains(key_body));
    let f = assert_config_error(
        &format!(
            "{base}tls_ca_file={}&tls_cert_file={}&tls_key_file={}",
            c.path("ca.pem"),
            c.path("client.pem"),
            c.path("client.pem")
        ),
        &["tls_key_file", "no PEM private key"],
    );
    assert!(!f.message.contains("BEGIN"));
    assert_config_error(
        &format!("{base}tls_cert_file={}", c.path("client.pem")),
        &["tls_cert_file", "without tls_key_file"],
    );
    assert_config_error(&format!("{base}tls_min_version=11"), &["tls_min_version"]);
    assert_config_error("redis://127.0.0.1:1/?skip_verify=true", &["rediss://"]);
    assert_config_error("unix:///tmp/x.sock?tls_ca_file=/x", &["rediss://"]);
}

#[test]
fn tls_min_version_13_against_a_tls12_only_server_fails() {
    let srv = TlsServer::start_with("server", false, &["--tls-protocols", "TLSv1.2"]);
    round_trip(&CPool::from_url(&url(&srv, "")));
    round_trip(&CPool::from_url(&url(&srv, "&tls_min_version=12")));
    let (f, _) = get_failure(&url(&srv, "&tls_min_version=13"));
    assert_eq!(f.code, POOL_ERR_TLS, "{f}");
    let srv = TlsServer::start();
    round_trip(&CPool::from_url(&url(&srv, "&tls_min_version=13")));
}

fn stale(pool: &CPool) -> u32 {
    pool.stats().stale_conns
}

#[test]
fn a_healthy_tls_conn_is_reused_after_session_tickets() {
    // TLS 1.3: the server sends session tickets after the handshake; they arrive on the
    // idle conn and must not make the health check drop it.
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, "&tls_min_version=13"));
    let conn = pool.get(-1).unwrap();
    let id = conn.id();
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    for _ in 0..5 {
        let conn = pool.get(-1).unwrap();
        assert_eq!(conn.id(), id, "{}", pool.stats_line());
        assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
        pool.put(conn);
    }
    assert_eq!(stale(&pool), 0, "{}", pool.stats_line());
}

/// Waits (bounded) until the server has no client but the admin conn.
fn await_no_clients(srv: &TlsServer) {
    let mut admin = srv.server.admin();
    let end = Instant::now() + Duration::from_secs(20);
    while admin.other_clients() > 0 {
        assert!(Instant::now() < end, "the server kept its clients");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tls_conn_the_server_killed_is_never_handed_out() {
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, "&client_name=victim"));
    let conn = pool.get(-1).unwrap();
    let id = conn.id();
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    assert_eq!(srv.server.admin().kill_clients_named("victim"), 1);
    await_no_clients(&srv);
    let conn = pool.get(-1).unwrap();
    assert_ne!(conn.id(), id);
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    assert_eq!(stale(&pool), 1, "{}", pool.stats_line());
}

#[test]
fn a_tls_conn_closed_by_the_idle_timeout_is_never_handed_out() {
    let srv = TlsServer::start_with("server", false, &["--timeout", "1"]);
    let pool = CPool::from_url(&url(&srv, ""));
    let conn = pool.get(-1).unwrap();
    let id = conn.id();
    pool.put(conn);
    // Each probe is a fresh admin conn (an idle one would be closed too).
    let end = Instant::now() + Duration::from_secs(30);
    while !stale_probe_done(&srv) {
        assert!(
            Instant::now() < end,
            "the server did not close the idle conn"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let conn = pool.get(-1).unwrap();
    assert_ne!(conn.id(), id);
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    assert_eq!(stale(&pool), 1, "{}", pool.stats_line());
}

/// Whether the server has closed every conn but the one asking (INFO's connected_clients
/// counts the asking conn).
fn stale_probe_done(srv: &TlsServer) -> bool {
    let info = {
        let mut admin = srv.server.admin();
        admin.info_u64("clients", "connected_clients")
    };
    info <= 1
}

#[test]
fn sticky_and_single_pools_work_over_tls() {
    use redispool::ffi::pool::{pool_single_new, pool_sticky_new, pool_t};
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, ""));
    let mut raw: *mut pool_t = std::ptr::null_mut();
    // SAFETY: a live pool and a valid out-pointer.
    let st: pool_status_t = unsafe { pool_sticky_new(pool.raw(), &mut raw) };
    assert_eq!(st, 0);
    // SAFETY: the sticky pool is ours.
    let sticky = unsafe { CPool::from_raw(raw) };
    round_trip(&sticky);
    let conn = pool.get(-1).unwrap();
    let mut raw: *mut pool_t = std::ptr::null_mut();
    // SAFETY: a conn checked out of `pool`, handed over.
    let st = unsafe { pool_single_new(pool.raw(), conn.0, &mut raw) };
    assert_eq!(st, 0);
    // SAFETY: the single pool is ours.
    let single = unsafe { CPool::from_raw(raw) };
    round_trip(&single);
}

/// A `pool_dial_fn` that connects to the TCP port `*userdata` (a u16) on 127.0.0.1.
unsafe extern "C" fn dial_port(
    userdata: *mut std::ffi::c_void,
    _timeout_ms: i64,
    fd_out: *mut std::ffi::c_int,
) -> std::ffi::c_int {
    use std::os::fd::IntoRawFd;
    // SAFETY: the test passes a pointer to a u16 that outlives the pool.
    let port = unsafe { *userdata.cast::<u16>() };
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => {
            // SAFETY: the library passes a writable fd_out.
            unsafe { *fd_out = s.into_raw_fd() };
            0
        }
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }
}

#[test]
fn tls_wraps_a_custom_dialers_fd_and_session_tickets_keep_it_healthy() {
    // A custom dialer with an empty session: nothing is sent after the handshake, so the
    // server's TLS 1.3 session tickets arrive on the idle socket. The conn's first command
    // and the next get's health check must take them for what they are (post-handshake
    // records), not for a reply nobody asked for.
    let srv = TlsServer::start();
    let mut port: u16 = srv.tls_port;
    let addr_ca = CString::new(certs().path("ca.pem")).unwrap();
    let name = CString::new("localhost").unwrap();
    let mut o = std::mem::MaybeUninit::<pool_options_t>::uninit();
    // SAFETY: pool_options_init fills every field.
    let mut o = unsafe {
        pool_options_init(o.as_mut_ptr());
        o.assume_init()
    };
    o.dialer = Some(dial_port);
    o.dialer_userdata = (&mut port as *mut u16).cast();
    o.tls = true;
    o.tls_ca_file = addr_ca.as_ptr();
    o.tls_server_name = name.as_ptr();
    o.tls_min_version = 13;
    o.dialer_retries = 1;
    let pool = CPool::from_options(&o);
    let conn = pool.get(-1).unwrap();
    let id = conn.id();
    // Wait for the tickets to arrive (readable without being read).
    let mut pfd = libc::pollfd {
        fd: conn.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 10_000) },
        1,
        "no session ticket came"
    );
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    let conn = pool.get(-1).unwrap();
    assert_eq!(conn.id(), id, "{}", pool.stats_line());
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    assert_eq!(stale(&pool), 0, "{}", pool.stats_line());
    // No tls_server_name and verification on: refused by pool_new (no host to verify).
    o.tls_server_name = std::ptr::null();
    let f = CPool::try_from_options(&o).map(|_| ()).unwrap_err();
    assert_eq!(f.code, POOL_ERR_INVALID_ARG, "{f}");
    assert!(f.message.contains("tls_server_name"), "{f}");
}

#[test]
fn a_tls_conn_with_an_unread_reply_is_never_handed_out() {
    use redispool::ffi::conn::pool_conn_write;
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, ""));
    let conn = pool.get(-1).unwrap();
    let id = conn.id();
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    // Raw I/O: a PING whose PONG nobody reads.
    let ping = b"*1\r\n$4\r\nPING\r\n";
    let mut n = 0usize;
    // SAFETY: a checked-out conn, a readable buffer, valid out-pointers.
    let st = unsafe {
        pool_conn_write(
            conn.0,
            ping.as_ptr().cast(),
            ping.len(),
            5000,
            &mut n,
            std::ptr::null_mut(),
        )
    };
    assert_eq!((st, n), (0, ping.len()));
    let mut pfd = libc::pollfd {
        fd: conn.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 10_000) },
        1,
        "no PONG came"
    );
    pool.put(conn);
    // The PONG is decrypted by the health check and seen for what it is.
    let conn = pool.get(-1).unwrap();
    assert_ne!(conn.id(), id, "{}", pool.stats_line());
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
    assert_eq!(stale(&pool), 1, "{}", pool.stats_line());
}

#[test]
fn a_tls_pool_recovers_after_a_restart_under_load() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut srv = TlsServer::start();
    let pool = Arc::new(CPool::from_url(&url(
        &srv,
        "&pool_size=8&dial_timeout=2s&read_timeout=2s&write_timeout=2s\
         &pool_timeout=5s",
    )));
    const THREADS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let ok_total = Arc::new(AtomicU64::new(0));
    let ok_after: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pool, stop, restarted, ok_total, ok_after) = (
                pool.clone(),
                stop.clone(),
                restarted.clone(),
                ok_total.clone(),
                ok_after.clone(),
            );
            std::thread::spawn(move || {
                let key = format!("k{t}");
                while !stop.load(Ordering::Acquire) {
                    let Ok(conn) = pool.get(-1) else { continue };
                    let ok = conn
                        .command(&[b"SET", key.as_bytes(), b"v"])
                        .is_ok_and(|r| r.text == "OK");
                    pool.put(conn);
                    if ok {
                        ok_total.fetch_add(1, Ordering::Relaxed);
                        if restarted.load(Ordering::Acquire) {
                            ok_after[t].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let end = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < end, "{what}: {}", pool.stats_line());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("load before the restart", &|| {
        ok_total.load(Ordering::Relaxed) >= 200
    });
    srv.server.restart();
    restarted.store(true, Ordering::Release);
    wait_for("every thread succeeding again over TLS", &|| {
        ok_after.iter().all(|n| n.load(Ordering::Relaxed) >= 20)
    });
    stop.store(true, Ordering::Release);
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_stopped_tls_server_bounds_commands_and_handshakes() {
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(
        &srv,
        "&read_timeout=500ms&dial_timeout=1s&pool_timeout=10s",
    ));
    let conn = pool.get(-1).unwrap();
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    let pid = srv.server.pid() as libc::pid_t;
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let start = Instant::now();
    let f = conn.command(&[b"PING"]).unwrap_err();
    assert!(f.message.contains("timeout"), "{f}");
    assert!(start.elapsed() < Duration::from_secs(20));
    pool.put(conn);
    // A new conn: the kernel completes the TCP connect, the handshake gets no answer.
    let start = Instant::now();
    let f = pool.get(-1).map(|_| ()).unwrap_err();
    assert!(f.message.contains("TLS handshake timed out"), "{f}");
    assert!(start.elapsed() < Duration::from_secs(20));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let conn = pool.get(-1).unwrap();
    assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    pool.put(conn);
}

/// Options for a pool over TLS on the unix socket `path`, trusting the test CA and naming
/// the certificate's host (a unix socket has none); the strings they point into come along.
fn unix_tls_options(path: &std::path::Path) -> (pool_options_t, [CString; 3]) {
    let addr = CString::new(path.to_str().unwrap()).unwrap();
    let ca = CString::new(certs().path("ca.pem")).unwrap();
    let name = CString::new("localhost").unwrap();
    let mut o = std::mem::MaybeUninit::<pool_options_t>::uninit();
    // SAFETY: pool_options_init fills every field.
    let mut o = unsafe {
        pool_options_init(o.as_mut_ptr());
        o.assume_init()
    };
    o.addr = addr.as_ptr();
    o.tls = true;
    o.tls_ca_file = ca.as_ptr();
    o.tls_server_name = name.as_ptr();
    (o, [addr, ca, name])
}

/// A rustls server config with the test server certificate (for the fake TLS servers).
fn test_server_config() -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let c = certs();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c.path("server.pem"))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(c.path("server.key")).unwrap();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// A TLS server on a unix socket (redis-server speaks TLS on TCP only): a rustls server
/// with the test server certificate that answers each PING with PONG, for `conns` conns.
fn unix_tls_pong_server(path: &std::path::Path, conns: usize) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let config = test_server_config();
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for _ in 0..conns {
            let (sock, _) = listener.accept().unwrap();
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    let ping = b"*1\r\n$4\r\nPING\r\n";
                    while pending.starts_with(ping) {
                        pending.drain(..ping.len());
                        if tls.write_all(b"+PONG\r\n").is_err() {
                            return;
                        }
                    }
                }
            });
        }
    })
}

#[test]
fn tls_over_a_unix_socket() {
    let dir = common::c_tests_dir().join(format!("tls-unix.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tls.sock");
    let _ = std::fs::remove_file(&path);
    let server = unix_tls_pong_server(&path, 1);
    let u = format!("unix://{}", path.to_str().unwrap());
    // Over a unix socket there is no host: tls_server_name names the certificate's.
    let (mut o, _strings) = unix_tls_options(&path);
    o.dialer_retries = 1;
    let pool = CPool::from_options(&o);
    let conn = pool.get(-1).unwrap_or_else(|f| panic!("get over {u}: {f}"));
    for _ in 0..3 {
        assert_eq!(conn.command(&[b"PING"]).unwrap().text, "PONG");
    }
    pool.put(conn);
    drop(pool);
    server.join().unwrap();
    // Without tls_server_name, pool_new refuses: nothing to verify the certificate against.
    o.tls_server_name = std::ptr::null();
    let f = CPool::try_from_options(&o).map(|_| ()).unwrap_err();
    assert_eq!(f.code, POOL_ERR_INVALID_ARG, "{f}");
    assert!(f.message.contains("tls_server_name"), "{f}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A subscriber's next message or event within `timeout_ms` (0: only what has arrived):
/// (kind, channel, payload), or None on POOL_ERR_TIMEOUT.
fn sub_receive(
    sub: *mut redispool::ffi::subscriber::pool_subscriber_t,
    timeout_ms: i64,
) -> Option<(i32, String, Vec<u8>)> {
    use redispool::ffi::subscriber::{pool_message_free, pool_subscriber_receive};
    let mut m = std::ptr::null_mut();
    // SAFETY: an all-zero pool_error_t is a valid value of the C struct.
    let mut err: redispool::ffi::error::pool_error_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live subscriber and writable out-pointers.
    let st = unsafe { pool_subscriber_receive(sub, timeout_ms, &mut m, &mut err) };
    if st == redispool::ffi::status::POOL_ERR_TIMEOUT {
        return None;
    }
    assert_eq!(st, 0, "receive: {}", unsafe {
        // SAFETY: the message is NUL-terminated on failure.
        std::ffi::CStr::from_ptr(err.message.as_ptr()).to_string_lossy()
    });
    // SAFETY: POOL_OK: `m` points to a message until pool_message_free.
    let msg = unsafe { &*m };
    let bytes = |p: *const std::ffi::c_char, n: usize| {
        if p.is_null() {
            Vec::new()
        } else {
            // SAFETY: `p` holds `n` bytes per the header.
            unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }.to_vec()
        }
    };
    let out = (
        msg.kind,
        String::from_utf8_lossy(&bytes(msg.channel, msg.channel_len)).into_owned(),
        bytes(msg.payload, msg.payload_len),
    );
    // SAFETY: freed once.
    unsafe { pool_message_free(m) };
    Some(out)
}

/// Whether `fd` becomes readable within `ms`.
fn readable(fd: i32, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
}

/// A payload of `len` bytes that says which message it is.
fn payload(i: usize, len: usize) -> String {
    let head = format!("{i}:");
    let mut p = head.clone();
    p.extend(std::iter::repeat_n('x', len.saturating_sub(head.len())));
    p
}

/// A subscriber on a TLS pool: SUBSCRIBE and PSUBSCRIBE over TLS; a burst of messages
/// of many sizes (some far larger than a TLS record) arrives whole and in order when the
/// caller takes one message each time pool_subscriber_fd is readable (what the session
/// has decrypted but the parser not taken yet must keep the fd readable); a ping over
/// TLS; CLIENT KILL of the subscriber's conn: POOL_MSG_RESUBSCRIBED, the confirmations,
/// and messages flow again over a new TLS session.
#[test]
fn a_subscriber_on_a_tls_pool() {
    use redispool::ffi::subscriber::*;
    let srv = TlsServer::start();
    let pool = CPool::from_url(&url(&srv, "&client_name=tls-sub"));
    let mut sub = std::ptr::null_mut();
    // SAFETY: a live pool and a writable out-pointer.
    let st = unsafe { pool_subscriber_new(pool.raw(), &mut sub, std::ptr::null_mut()) };
    assert_eq!(st, 0);
    // SAFETY: a live subscriber.
    let fd = unsafe { pool_subscriber_fd(sub) };
    let ch = CString::new("tls-ch").unwrap();
    let pat = CString::new("tls-p*").unwrap();
    // SAFETY: a live subscriber, one NUL-terminated name each.
    unsafe {
        assert_eq!(
            pool_subscriber_subscribe(sub, 1, &ch.as_ptr(), std::ptr::null(), std::ptr::null_mut()),
            0
        );
        assert_eq!(
            pool_subscriber_psubscribe(
                sub,
                1,
                &pat.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            0
        );
    }
    let confirm = |kinds: &[i32]| {
        for &k in kinds {
            let (kind, _, why) = sub_receive(sub, 10_000).expect("a confirmation");
            assert_eq!(kind, k, "{}", String::from_utf8_lossy(&why));
        }
    };
    confirm(&[POOL_MSG_SUBSCRIBE, POOL_MSG_PSUBSCRIBE]);
    let mut admin = srv.server.admin();
    // A burst of messages of many sizes, published before the subscriber reads any.
    let sizes: Vec<usize> = (0..600)
        .map(|i| match i % 7 {
            0 => 100_000,
            1 => 16_384 - 40 + i % 80,
            2 => 5,
            3 => 4_000 + i,
            4 => 33_000,
            _ => 60 + i % 500,
        })
        .collect();
    let round = |admin: &mut common::admin::Admin, tag: &str| {
        for (i, &len) in sizes.iter().enumerate() {
            let chan = if i % 2 == 0 { "tls-ch" } else { "tls-pat" };
            assert_eq!(
                admin.query(&["PUBLISH", chan, &payload(i, len)]),
                "1",
                "{tag}"
            );
        }
        // At most one message per readiness of the fd, as an event loop that takes one at
        // a time (a readable fd may hold only part of a large message: nothing then).
        let mut i = 0;
        let mut wakeups = 0;
        while i < sizes.len() {
            assert!(
                readable(fd, 10_000),
                "{tag}: message {i} of {} pending, the fd not readable",
                sizes.len()
            );
            wakeups += 1;
            assert!(wakeups < 1_000_000, "{tag}: no progress at message {i}");
            let Some((kind, chan, p)) = sub_receive(sub, 0) else {
                continue;
            };
            let want = if i % 2 == 0 {
                (POOL_MSG_MESSAGE, "tls-ch")
            } else {
                (POOL_MSG_PMESSAGE, "tls-pat")
            };
            assert_eq!((kind, chan.as_str()), want, "{tag}: {i}");
            assert!(p == payload(i, sizes[i]).into_bytes(), "{tag}: message {i}");
            i += 1;
        }
        assert_eq!(sub_receive(sub, 0), None, "{tag}");
    };
    round(&mut admin, "first burst");
    // SAFETY: a live subscriber.
    assert_eq!(
        unsafe { pool_subscriber_ping(sub, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(admin.kill_clients_named("tls-sub"), 1);
    let (kind, _, why) = sub_receive(sub, 10_000).expect("resubscribed");
    assert_eq!(
        kind,
        POOL_MSG_RESUBSCRIBED,
        "{}",
        String::from_utf8_lossy(&why)
    );
    confirm(&[POOL_MSG_SUBSCRIBE, POOL_MSG_PSUBSCRIBE]);
    round(&mut admin, "after the kill");
    // SAFETY: a live subscriber.
    assert_eq!(unsafe { pool_subscriber_resubscribes(sub) }, 1);
    // SAFETY: freed once, before its pool.
    unsafe { pool_subscriber_free(sub) };
}

/// A RESP message push: `*3 message <chan> <payload>`, with a payload of `n` bytes.
fn message_frame(chan: &str, n: usize) -> Vec<u8> {
    let mut f = format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{chan}\r\n${n}\r\n",
        chan.len()
    )
    .into_bytes();
    f.extend(std::iter::repeat_n(b'm', n));
    f.extend_from_slice(b"\r\n");
    f
}

/// A message frame of exactly `len` bytes in all.
fn message_frame_of_len(chan: &str, len: usize) -> Vec<u8> {
    let mut n = len - message_frame(chan, 0).len();
    // The length prefix grows with the payload's digit count.
    while message_frame(chan, n).len() > len {
        n -= 1;
    }
    let f = message_frame(chan, n);
    assert_eq!(f.len(), len);
    f
}

/// A TLS subscriber whose session holds a decrypted message its parser did not take: the
/// fd must be readable (and not while only a part of a frame is buffered). A fake server (rustls over a unix socket) controls the records: a
/// first write leaves a partial frame in the parser (17,000 bytes of room left in its
/// 32 KiB buffer); a second write is two records (16,384 + 1,500 bytes) that one TLS read
/// decrypts together (18 KiB of ciphertext fit rustls's read buffer): the parser takes
/// 17,000 bytes, ending exactly after a whole frame, and the last frame stays decrypted in
/// the session, with nothing left in the socket.
#[test]
fn a_tls_subscriber_fd_is_readable_while_the_session_holds_a_message() {
    use redispool::ffi::subscriber::*;
    use std::io::{Read, Write};
    use std::sync::mpsc;
    // The frames: f0 is cut after its first `first` bytes.
    let room = 17_000;
    let first = 32 * 1024 - room;
    let second = 16_384 + 1_500;
    let f2 = message_frame("c", 300);
    let f0 = message_frame_of_len("c", first + room - f2.len());
    let f3 = message_frame_of_len("c", second - room);
    let mut w2 = f0[first..].to_vec();
    w2.extend_from_slice(&f2);
    w2.extend_from_slice(&f3);
    assert_eq!(w2.len(), second);
    let w1 = f0[..first].to_vec();

    let dir = common::c_tests_dir().join(format!("tls-sub.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tls.sock");
    let _ = std::fs::remove_file(&path);
    let config = test_server_config();
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<Vec<u8>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        // Commands in, until SUBSCRIBE: each answered (+PONG, +OK, the confirmation).
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        'serve: loop {
            let n = tls.read(&mut buf).unwrap();
            assert!(n > 0, "the client left before subscribing");
            pending.extend_from_slice(&buf[..n]);
            // Whole commands only: `*N` then N bulk strings.
            while let Some(args) = take_command(&mut pending) {
                let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                match name.as_str() {
                    "PING" => tls.write_all(b"+PONG\r\n").unwrap(),
                    "SUBSCRIBE" => {
                        tls.write_all(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
                            .unwrap();
                        break 'serve;
                    }
                    _ => tls.write_all(b"+OK\r\n").unwrap(),
                }
            }
        }
        // Each write when the test says, and said done once it is in the client's socket.
        for w in go_rx {
            tls.write_all(&w).unwrap();
            tls.flush().unwrap();
            done_tx.send(()).unwrap();
        }
        // Until the client closes.
        while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
    });

    let (mut o, _strings) = unix_tls_options(&path);
    o.tls_min_version = 13;
    o.dialer_retries = 1;
    let pool = CPool::from_options(&o);
    let mut sub = std::ptr::null_mut();
    // SAFETY: a live pool and a writable out-pointer.
    let st = unsafe { pool_subscriber_new(pool.raw(), &mut sub, std::ptr::null_mut()) };
    assert_eq!(st, 0);
    // SAFETY: a live subscriber.
    let fd = unsafe { pool_subscriber_fd(sub) };
    let ch = CString::new("c").unwrap();
    // SAFETY: a live subscriber, one NUL-terminated name.
    let st = unsafe {
        pool_subscriber_subscribe(sub, 1, &ch.as_ptr(), std::ptr::null(), std::ptr::null_mut())
    };
    assert_eq!(st, 0);
    assert_eq!(
        sub_receive(sub, 10_000).map(|m| m.0),
        Some(POOL_MSG_SUBSCRIBE)
    );
    // The first part of f0: taken into the parser, no message yet.
    go_tx.send(w1).unwrap();
    done_rx.recv().unwrap();
    assert!(readable(fd, 10_000));
    assert_eq!(sub_receive(sub, 0), None);
    // Not readable again until the rest arrives: a level-triggered loop would only spin.
    assert!(!readable(fd, 0));
    // The rest: f0 and f2 from the parser, f3 from the session.
    go_tx.send(w2).unwrap();
    done_rx.recv().unwrap();
    for (i, f) in [&f0, &f2, &f3].into_iter().enumerate() {
        assert!(
            readable(fd, 10_000),
            "frame {i} of 3 pending, the fd not readable"
        );
        let (kind, chan, p) = sub_receive(sub, 0).expect("readable, yet nothing");
        assert_eq!((kind, chan.as_str()), (POOL_MSG_MESSAGE, "c"));
        assert_eq!(message_frame("c", p.len()), *f, "frame {i}");
    }
    assert!(!readable(fd, 0));
    // SAFETY: freed once, before its pool.
    unsafe { pool_subscriber_free(sub) };
    drop(pool);
    drop(go_tx);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One whole RESP command (`*N` then N bulk strings) off the front of `buf`, if there.
fn take_command(buf: &mut Vec<u8>) -> Option<Vec<Vec<u8>>> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        args.push(buf[next..next + len].to_vec());
        at = next + len + 2;
    }
    buf.drain(..at);
    Some(args)
}

/// An edge-triggered event loop on pool_subscriber_fd (epoll with EPOLLET, as Go's netpoller,
/// libuv or libevent's EV_ET): wait for an edge, then receive with timeout 0 until
/// POOL_ERR_TIMEOUT. A burst of 200 messages (3 KiB, every tenth 40 KB to 640 KB: frames cut
/// across socket reads and TLS records, some larger than the parser's buffer) published before the subscriber
/// reads any must all arrive, each wait seeing an edge: when receive(0) says nothing is
/// ready, nothing may be left in the socket, the parser or the TLS session, or no new edge
/// ever comes.
fn edge_triggered_burst(pool_url: &str, srv: &TlsServer) {
    use redispool::ffi::subscriber::*;
    let pool = CPool::from_url(pool_url);
    let mut sub = std::ptr::null_mut();
    // SAFETY: a live pool and a writable out-pointer.
    let st = unsafe { pool_subscriber_new(pool.raw(), &mut sub, std::ptr::null_mut()) };
    assert_eq!(st, 0);
    // SAFETY: a live subscriber.
    let ep = edge_triggered_epoll(unsafe { pool_subscriber_fd(sub) });
    let mut wakeups = 0;
    // One edge within 10 s (else the test fails), then everything receive(0) has.
    let mut wait_and_drain = |what: &str| -> Vec<(i32, String, Vec<u8>)> {
        assert!(
            edge_within(ep, 10_000),
            "{pool_url}: {what}: no edge on the fd within 10 s"
        );
        wakeups += 1;
        assert!(wakeups < 100_000, "{pool_url}: {what}: no progress");
        std::iter::from_fn(|| sub_receive(sub, 0)).collect()
    };
    let ch = CString::new("et-ch").unwrap();
    // SAFETY: a live subscriber, one NUL-terminated name.
    let st = unsafe {
        pool_subscriber_subscribe(sub, 1, &ch.as_ptr(), std::ptr::null(), std::ptr::null_mut())
    };
    assert_eq!(st, 0);
    let mut got = Vec::new();
    while got.is_empty() {
        got = wait_and_drain("the confirmation");
    }
    assert_eq!(got.len(), 1, "{pool_url}");
    assert_eq!(got[0].0, POOL_MSG_SUBSCRIBE, "{pool_url}");
    let sizes: Vec<usize> = (0..200)
        .map(|i| match i % 10 {
            // 40 KB to 640 KB: more than a read into the parser's buffer takes.
            9 => 40_000 << (i / 10 % 5),
            _ => 3_072,
        })
        .collect();
    let mut admin = srv.server.admin();
    for (i, &len) in sizes.iter().enumerate() {
        assert_eq!(admin.query(&["PUBLISH", "et-ch", &payload(i, len)]), "1");
    }
    let mut i = 0;
    while i < sizes.len() {
        let what = format!("message {i} of {} pending", sizes.len());
        for (kind, chan, p) in wait_and_drain(&what) {
            assert_eq!((kind, chan.as_str()), (POOL_MSG_MESSAGE, "et-ch"), "{i}");
            assert!(
                p == payload(i, sizes[i]).into_bytes(),
                "{pool_url}: message {i}"
            );
            i += 1;
        }
    }
    // SAFETY: this test's epoll fd, closed once.
    unsafe { libc::close(ep) };
    // SAFETY: freed once, before its pool.
    unsafe { pool_subscriber_free(sub) };
}

#[test]
fn an_edge_triggered_loop_gets_every_message_of_a_burst_over_plain_tcp() {
    let srv = TlsServer::start();
    edge_triggered_burst(
        &format!("redis://{}/?dialer_retries=1", srv.server.addr()),
        &srv,
    );
}

#[test]
fn an_edge_triggered_loop_gets_every_message_of_a_burst_over_tls() {
    let srv = TlsServer::start();
    edge_triggered_burst(&url(&srv, ""), &srv);
}

/// An epoll set with `fd` in it, edge-triggered (EPOLLET).
fn edge_triggered_epoll(fd: i32) -> i32 {
    // SAFETY: plain syscalls; the epoll fd is the caller's to close.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 1,
    };
    // SAFETY: a valid epoll_event for the call.
    assert_eq!(
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) },
        0
    );
    ep
}

/// Whether the epoll set `ep` reports an edge within `ms`.
fn edge_within(ep: i32, ms: i32) -> bool {
    let mut out = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: one valid epoll_event to fill.
    unsafe { libc::epoll_wait(ep, &mut out, 1, ms) == 1 }
}

/// A plain subscriber whose socket holds, all at once, a small message and then one of
/// 150 kB (more than the parser's 32 KiB buffer takes in the reads of two receives): an
/// edge-triggered loop (EPOLLET, receive with timeout 0 until POOL_ERR_TIMEOUT after each
/// edge) gets both. A fake server (a unix socket) writes them in one go, and the loop
/// starts once they are in the subscriber's socket: nothing more arrives, so a receive that
/// left a part of the large one in the socket would never see another edge.
#[test]
fn an_edge_triggered_loop_gets_a_large_message_that_arrived_whole() {
    use redispool::ffi::subscriber::*;
    use std::io::{Read, Write};
    use std::sync::mpsc;
    let small = message_frame("c", 100);
    let large = message_frame("c", 150_000);
    let mut burst = small.clone();
    burst.extend_from_slice(&large);

    let dir = common::c_tests_dir().join(format!("et-sub.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plain.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        'serve: loop {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "the client left before subscribing");
            pending.extend_from_slice(&buf[..n]);
            while let Some(args) = take_command(&mut pending) {
                let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                match name.as_str() {
                    "PING" => sock.write_all(b"+PONG\r\n").unwrap(),
                    "SUBSCRIBE" => {
                        sock.write_all(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
                            .unwrap();
                        break 'serve;
                    }
                    _ => sock.write_all(b"+OK\r\n").unwrap(),
                }
            }
        }
        if go_rx.recv().is_ok() {
            sock.write_all(&burst).unwrap();
            let _ = done_tx.send(());
        }
        // Until the client closes.
        while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
    });

    let pool = CPool::from_url(&format!(
        "unix://{}?dialer_retries=1",
        path.to_str().unwrap()
    ));
    let mut sub = std::ptr::null_mut();
    // SAFETY: a live pool and a writable out-pointer.
    let st = unsafe { pool_subscriber_new(pool.raw(), &mut sub, std::ptr::null_mut()) };
    assert_eq!(st, 0);
    // SAFETY: a live subscriber.
    let ep = edge_triggered_epoll(unsafe { pool_subscriber_fd(sub) });
    let ch = CString::new("c").unwrap();
    // SAFETY: a live subscriber, one NUL-terminated name.
    let st = unsafe {
        pool_subscriber_subscribe(sub, 1, &ch.as_ptr(), std::ptr::null(), std::ptr::null_mut())
    };
    assert_eq!(st, 0);
    let mut got: Vec<(i32, String, Vec<u8>)> = Vec::new();
    while got.is_empty() {
        assert!(edge_within(ep, 10_000), "no edge for the confirmation");
        got.extend(std::iter::from_fn(|| sub_receive(sub, 0)));
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, POOL_MSG_SUBSCRIBE);
    go_tx.send(()).unwrap();
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the burst did not fit in the socket at once");
    got.clear();
    for wakeups in 0.. {
        assert!(wakeups < 1_000, "no progress");
        assert!(
            edge_within(ep, 10_000),
            "{} of 2 messages received, then no edge within 10 s",
            got.len()
        );
        got.extend(std::iter::from_fn(|| sub_receive(sub, 0)));
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2);
    for ((kind, chan, p), f) in got.iter().zip([&small, &large]) {
        assert_eq!((*kind, chan.as_str()), (POOL_MSG_MESSAGE, "c"));
        assert!(message_frame("c", p.len()) == *f, "{} bytes", p.len());
    }
    // SAFETY: this test's epoll fd, closed once.
    unsafe { libc::close(ep) };
    // SAFETY: freed once, before its pool.
    unsafe { pool_subscriber_free(sub) };
    drop(pool);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
