//! Section c (second half): library heap memory per pooled idle conn.

use crate::alloc::{count_start, count_stop};
use crate::plan::Plan;
use crate::report::progress;
use crate::runner::BenchPool;
use crate::under_test::{CPool, options_init};
use redispool::ffi::conn::{pool_conn_command, pool_conn_t};
use redispool::ffi::pool::pool_idle_len;
use redispool::ffi::reply::{pool_reply_free, pool_reply_t};
use redispool::ffi::status::POOL_OK;
use redispool::pool::{ConnPool, Dialer, Options};
use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) struct MemRow {
    pub(crate) what: &'static str,
    pub(crate) conns: usize,
    /// Bytes a pool with 0 conns holds.
    pub(crate) empty_pool: i64,
    /// Bytes held per conn: (pool with N idle conns - pool with 0 conns) / N.
    pub(crate) per_conn: f64,
    /// Bytes allocated per conn while dialing, freed or not (dial threads etc.).
    pub(crate) transient_per_conn: f64,
}

/// Pre-made socketpair ends handed out by the dialers of the memory measurement, so the
/// dialer itself allocates nothing; the peers' ends are kept open meanwhile.
pub(crate) struct FdStack {
    pub(crate) ours: Mutex<Vec<OwnedFd>>,
    pub(crate) _theirs: Vec<UnixStream>,
}

impl FdStack {
    pub(crate) fn new(n: usize) -> FdStack {
        let mut ours = Vec::with_capacity(n);
        let mut theirs = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b) = UnixStream::pair().expect("socketpair");
            ours.push(OwnedFd::from(a));
            theirs.push(b);
        }
        FdStack {
            ours: Mutex::new(ours),
            _theirs: theirs,
        }
    }

    pub(crate) fn pop(&self) -> Option<OwnedFd> {
        self.ours.lock().unwrap().pop()
    }
}

unsafe extern "C" fn dial_from_stack(
    ud: *mut c_void,
    _timeout_ms: i64,
    fd_out: *mut c_int,
) -> c_int {
    // SAFETY: `ud` is the FdStack the pool was created with; it outlives the pool.
    let stack = unsafe { &*(ud as *const FdStack) };
    match stack.pop() {
        Some(fd) => {
            // SAFETY: the pool passes a writable out pointer.
            unsafe { *fd_out = fd.into_raw_fd() };
            0
        }
        None => libc::EMFILE,
    }
}

/// Waits (bounded) until `idle()` reaches `n` with no dial in flight, then lets the dial
/// threads exit. Allocates nothing itself.
pub(crate) fn wait_filled(n: usize, idle: impl Fn() -> (usize, u32)) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (len, dialing) = idle();
        if len >= n && dialing == 0 {
            break;
        }
        assert!(Instant::now() < end, "pool never filled: {len}/{n} idle");
        thread::sleep(Duration::from_millis(2));
    }
    // The last dial thread returns right after its dial: give it time to exit and free.
    thread::sleep(Duration::from_millis(100));
}

pub(crate) fn section_memory(plan: &Plan) -> Vec<MemRow> {
    progress("c. memory per pooled conn");
    let n = plan.mem_conns;
    let mut rows = Vec::new();

    // Rust core API.
    {
        let stack = Arc::new(FdStack::new(n));
        let s = stack.clone();
        let dialer = Dialer::Custom(Arc::new(move |_| {
            s.pop()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EMFILE))
        }));
        let opts = |min_idle: usize| {
            let mut o = Options::new(dialer.clone());
            o.pool_size = n;
            o.min_idle_conns = min_idle;
            o.max_concurrent_dials = 2;
            o.dialer_retries = 1;
            o
        };
        let (o0, on) = (opts(0), opts(n));
        count_start();
        let p0 = ConnPool::new(o0).expect("pool");
        let empty = count_stop();
        drop(p0);
        count_start();
        let p = ConnPool::new(on).expect("pool");
        wait_filled(n, || (p.idle_len(), p.stats().dials_in_progress));
        let full = count_stop();
        assert_eq!(p.idle_len(), n);
        drop(p);
        rows.push(MemRow {
            what: "Rust core API",
            conns: n,
            empty_pool: empty.net(),
            per_conn: (full.net() - empty.net()) as f64 / n as f64,
            transient_per_conn: (full.bytes as f64 - empty.bytes as f64) / n as f64,
        });
    }

    // C ABI: the same through pool_new with a dial callback.
    {
        let stack = Box::new(FdStack::new(n));
        let opts = |min_idle: usize| {
            let mut o = options_init();
            o.dialer = Some(dial_from_stack);
            o.dialer_userdata = &*stack as *const FdStack as *mut c_void;
            o.pool_size = n as i32;
            o.min_idle_conns = min_idle as i32;
            o.max_concurrent_dials = 2;
            o.dialer_retries = 1;
            o
        };
        let (o0, on) = (opts(0), opts(n));
        count_start();
        let p0 = CPool::from_options(&o0);
        let empty = count_stop();
        drop(p0);
        count_start();
        let p = CPool::from_options(&on);
        wait_filled(n, || {
            // SAFETY: live pool.
            let idle = unsafe { pool_idle_len(p.0) }.max(0) as usize;
            (idle, p.stats().dials_in_progress)
        });
        let full = count_stop();
        drop(p);
        rows.push(MemRow {
            what: "C ABI (pool_new)",
            conns: n,
            empty_pool: empty.net(),
            per_conn: (full.net() - empty.net()) as f64 / n as f64,
            transient_per_conn: (full.bytes as f64 - empty.bytes as f64) / n as f64,
        });
    }
    rows
}

/// PING through pool_conn_command on a conn checked out by this thread.
fn ping(c: *mut pool_conn_t) {
    let argv: [*const c_char; 1] = [c"PING".as_ptr()];
    let mut reply: *mut pool_reply_t = std::ptr::null_mut();
    // SAFETY: `c` is checked out by this thread; argv holds one C string.
    unsafe {
        let rc = pool_conn_command(
            c,
            1,
            argv.as_ptr(),
            std::ptr::null(),
            &mut reply,
            std::ptr::null_mut(),
        );
        assert_eq!(rc, POOL_OK, "PING");
        pool_reply_free(reply);
    }
}

/// Library heap per idle conn after every conn ran a command (PING through
/// pool_conn_command against redis-server), so the read buffer a conn keeps after a
/// reply is counted: a pool of `n` on `redis_addr`, `n` gets at once (each dials), a PING
/// on each, `n` puts; bytes still held afterwards divided by `n`.
pub(crate) fn memory_after_command(n: usize, redis_addr: &str) -> MemRow {
    progress("c. memory per pooled conn after a command");
    let caddr = CString::new(redis_addr).expect("no NUL");
    let mut o = options_init();
    o.addr = caddr.as_ptr();
    o.pool_size = n as i32;
    o.pool_timeout_ms = -1;
    // What this thread and the process allocate once, not per conn: the thread's reply
    // buffer (32 KiB, lent to whichever conn runs a command) and the first chunk of the C
    // ABI's handle table (1024 slots of 40 bytes; each conn checked out through the C ABI
    // keeps one slot, inside the chunk). Made by a PING on a throwaway pool first, so the
    // figure does not depend on what ran before.
    {
        let mut w = options_init();
        w.addr = caddr.as_ptr();
        w.pool_size = 1;
        let warm = CPool::from_options(&w);
        let c = warm.get();
        ping(c);
        warm.put(c);
    }
    count_start();
    let p = CPool::from_options(&o);
    let empty = count_stop();
    count_start();
    let conns: Vec<_> = (0..n).map(|_| p.get()).collect();
    for &c in &conns {
        ping(c);
    }
    for c in conns {
        p.put(c);
    }
    // A dial thread returns right after its dial: give it time to exit and free.
    thread::sleep(Duration::from_millis(100));
    let full = count_stop();
    // SAFETY: live pool.
    assert_eq!(unsafe { pool_idle_len(p.0) }, n as c_int);
    drop(p);
    MemRow {
        what: "C ABI, every conn ran a PING (redis-server)",
        conns: n,
        empty_pool: empty.net(),
        per_conn: full.net() as f64 / n as f64,
        transient_per_conn: full.bytes as f64 / n as f64,
    }
}
