//! Redis sessions through the C ABI (called from Rust): a restart under load, after which
//! conns dialed anew are authenticated, on the right db and named again before anyone gets
//! them, and no caller sees two failures in a row; and a `unix://` URL.

mod common;

use std::ffi::{CStr, CString, c_char};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::RedisServer;
use redispool::ffi::conn::{pool_conn_command, pool_conn_t};
use redispool::ffi::error::pool_error_t;
use redispool::ffi::pool::{
    pool_free, pool_get, pool_len, pool_new_url, pool_put, pool_stats, pool_t,
};
use redispool::ffi::reply::{POOL_REPLY_ERROR, pool_reply_free, pool_reply_t};
use redispool::ffi::stats::pool_stats_t;
use redispool::ffi::status::{POOL_OK, pool_status_t};

/// A `pool_t *` shared by the test's threads (the C API is thread-safe).
struct Pool(*mut pool_t);
// SAFETY: pool_t is documented safe to use from any number of threads at once.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

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

/// Text of a reply (status, string, error or verbatim), or its integer.
fn reply_text(r: &pool_reply_t) -> String {
    if r.str.is_null() {
        return r.integer.to_string();
    }
    // SAFETY: str holds len bytes.
    let bytes = unsafe { std::slice::from_raw_parts(r.str.cast::<u8>(), r.len) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// One get + command + put. Err carries the failing step's status and message.
fn round_trip(pool: &Pool, args: &[&str]) -> Result<String, (pool_status_t, String)> {
    let mut conn: *mut pool_conn_t = std::ptr::null_mut();
    let mut err = new_error();
    // SAFETY: a live pool; out-pointers valid.
    let st = unsafe { pool_get(pool.0, &mut conn, &mut err) };
    if st != POOL_OK {
        return Err((st, format!("get: {}", message(&err))));
    }
    let cargs: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let argv: Vec<*const c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    let mut reply: *mut pool_reply_t = std::ptr::null_mut();
    // SAFETY: a checked-out conn; argv holds argc NUL-terminated strings.
    let st = unsafe {
        pool_conn_command(
            conn,
            argv.len() as i32,
            argv.as_ptr(),
            std::ptr::null(),
            &mut reply,
            &mut err,
        )
    };
    let res = if st != POOL_OK {
        Err((st, format!("{}: {}", args[0], message(&err))))
    } else {
        // SAFETY: POOL_OK gives a reply tree.
        let r = unsafe { &*reply };
        let text = reply_text(r);
        if r.r#type == POOL_REPLY_ERROR {
            Err((POOL_OK, format!("{}: error reply {text}", args[0])))
        } else {
            Ok(text)
        }
    };
    // SAFETY: the reply is ours (NULL is fine) and the conn is checked out from this pool.
    unsafe {
        pool_reply_free(reply);
        assert_eq!(pool_put(pool.0, conn), POOL_OK);
    }
    res
}

#[test]
fn restart_under_load_reauthenticates_new_conns_and_fails_each_caller_at_most_once() {
    let mut server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!(
        "redis://:s3cret@{}/4?client_name=rp-restart&pool_size=6&pool_timeout=20s&dial_timeout=1s\
         &dialer_retries=100&dialer_retry_backoff=50ms&read_timeout=5s",
        server.addr()
    );
    let pool = Arc::new(new_pool_from_url(&url));

    let stop = Arc::new(AtomicBool::new(false));
    // Successes per thread: between restarts every thread must succeed again, or one
    // starved through a restart on a loaded machine would "fail twice in a row" because
    // of two restarts, not one.
    let oks: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (pool, stop, oks, failures) =
                (pool.clone(), stop.clone(), oks.clone(), failures.clone());
            thread::spawn(move || {
                let key = format!("rp:restart:{t}");
                let mut in_a_row = 0;
                let mut worst = 0;
                while !stop.load(Ordering::SeqCst) {
                    match round_trip(&pool, &["INCR", &key]) {
                        Ok(_) => {
                            in_a_row = 0;
                            oks[t].fetch_add(1, Ordering::SeqCst);
                        }
                        Err((st, msg)) => {
                            in_a_row += 1;
                            worst = worst.max(in_a_row);
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("thread {t}: {st} {msg}"));
                        }
                    }
                }
                worst
            })
        })
        .collect();

    // Waits until every thread has `n` more successes.
    let wait_each = |n: u64| {
        let start: Vec<u64> = oks.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let end = Instant::now() + Duration::from_secs(30);
        while oks
            .iter()
            .zip(&start)
            .any(|(c, &s)| c.load(Ordering::SeqCst) < s + n)
        {
            assert!(Instant::now() < end, "no progress: {:?}", failures.lock());
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_each(50);
    server.restart();
    wait_each(50);
    server.restart();
    wait_each(50);
    stop.store(true, Ordering::SeqCst);
    let worst: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let failures = failures.lock().unwrap().clone();
    assert!(
        worst.iter().all(|&w| w <= 1),
        "a caller failed twice in a row: {worst:?}\n{failures:#?}"
    );
    // Every failure is a command on a conn that died with the old server; never a refused
    // set-up (NOAUTH, wrong db) on a new one.
    for f in &failures {
        assert!(!f.contains("NOAUTH") && !f.contains("HANDSHAKE"), "{f}");
    }

    // The conns now in the pool were dialed after the restart and set up again.
    let info = round_trip(&pool, &["CLIENT", "INFO"]).unwrap();
    assert!(info.contains(" db=4 "), "{info}");
    assert!(info.contains(" name=rp-restart "), "{info}");
    // SAFETY: a live pool.
    assert!(unsafe { pool_len(pool.0) } <= 6);
    // The restarts really hit the pool: dead conns were found stale or removed, and
    // replaced by new dials.
    // SAFETY: all-zero is a valid pool_stats_t; struct_size 0 means the full struct.
    let mut stats: pool_stats_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live pool and a writable stats struct.
    assert_eq!(unsafe { pool_stats(pool.0, &mut stats) }, POOL_OK);
    assert!(
        stats.stale_conns as u64 + stats.removed_conns >= 2,
        "stale {} removed {}",
        stats.stale_conns,
        stats.removed_conns
    );
    assert!(stats.dials > 6, "dials {}", stats.dials);
    eprintln!(
        "restart test: {} failed calls (each caller at most once in a row), {} stale, {} removed, {} dials",
        failures.len(),
        stats.stale_conns,
        stats.removed_conns,
        stats.dials
    );
    // SAFETY: the last use of the pool; every worker has joined.
    unsafe { pool_free(pool.0) };
}

fn new_pool_from_url(url: &str) -> Pool {
    let curl = CString::new(url).unwrap();
    let mut raw: *mut pool_t = std::ptr::null_mut();
    let mut err = new_error();
    // SAFETY: a NUL-terminated URL and valid out-pointers.
    let st = unsafe { pool_new_url(curl.as_ptr(), &mut raw, &mut err) };
    assert_eq!(st, POOL_OK, "{url}: {}", message(&err));
    Pool(raw)
}

#[test]
fn unix_socket_url_with_password_and_db() {
    let dir = common::c_tests_dir().join("sockets");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("redis-{}.sock", std::process::id()));
    let path_str = path.to_str().unwrap().to_string();
    let server = RedisServer::start_with(&[
        "--unixsocket",
        &path_str,
        "--unixsocketperm",
        "700",
        "--requirepass",
        "s3cret",
    ]);
    let pool = new_pool_from_url(&format!(
        "unix://:s3cret@{path_str}?db=7&client_name=rp-unix&pool_size=2"
    ));
    assert_eq!(round_trip(&pool, &["SET", "rp:unix", "1"]).unwrap(), "OK");
    let info = round_trip(&pool, &["CLIENT", "INFO"]).unwrap();
    assert!(info.contains(" db=7 "), "{info}");
    assert!(info.contains(" name=rp-unix "), "{info}");
    // A unix-socket client: redis reports the socket path as its local address.
    assert!(info.contains(&format!("laddr={path_str}")), "{info}");
    // The key landed in db 7, not 0.
    assert_eq!(server.command(&["s3cret"], &["EXISTS", "rp:unix"]), ":0");
    // SAFETY: the last use of the pool.
    unsafe { pool_free(pool.0) };
    drop(server);
    let _ = std::fs::remove_file(&path);
}
