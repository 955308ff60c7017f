//! redispool under test: a `pool_t` through the C ABI and the core `ConnPool` through its
//! Rust API, both as `BenchPool`s.

use crate::runner::BenchPool;
use redispool::ffi::conn::pool_conn_t;
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{pool_free, pool_get, pool_new, pool_put, pool_stats, pool_t};
use redispool::ffi::stats::pool_stats_t;
use redispool::ffi::status::POOL_OK;
use redispool::pool::{ConnPool, Dialer, Options, Wait};
use std::ffi::CString;
use std::time::Duration;

pub(crate) struct CPool(pub(crate) *mut pool_t);
// SAFETY: pool_t is documented thread-safe.
unsafe impl Send for CPool {}
// SAFETY: as above.
unsafe impl Sync for CPool {}

impl CPool {
    /// A pool over `addr` (TCP) with `pool_size` conns, all dialed before it is returned;
    /// the library's default `overtake_window_ms`.
    pub(crate) fn new(addr: &str, size: usize, bypass_ms: i64) -> CPool {
        CPool::with(addr, size, bypass_ms, None)
    }

    /// `new`, with `overtake_window_ms` too (None: the library's default).
    pub(crate) fn with(addr: &str, size: usize, bypass_ms: i64, overtake_ms: Option<i64>) -> CPool {
        let caddr = CString::new(addr).unwrap();
        let mut o = options_init();
        o.addr = caddr.as_ptr();
        o.pool_size = size as i32;
        // Oversubscribed cells queue for as long as it takes: a get must never time out.
        o.pool_timeout_ms = -1;
        o.health_check_bypass_ms = bypass_ms;
        if let Some(ms) = overtake_ms {
            o.overtake_window_ms = ms;
        }
        let p = CPool::from_options(&o);
        p.prewarm(size);
        p
    }

    pub(crate) fn from_options(o: &pool_options_t) -> CPool {
        let mut p = std::ptr::null_mut();
        // SAFETY: documented FFI use; strings in `o` outlive the call (pool_new copies them).
        let rc = unsafe { pool_new(o, &mut p, std::ptr::null_mut()) };
        assert_eq!(rc, POOL_OK, "pool_new");
        CPool(p)
    }

    /// Dials `n` conns (n gets at once, then n puts) so measurements see only reuse.
    pub(crate) fn prewarm(&self, n: usize) {
        let conns: Vec<_> = (0..n).map(|_| self.get()).collect();
        for c in conns {
            self.put(c);
        }
    }

    pub(crate) fn stats(&self) -> pool_stats_t {
        // SAFETY: all-zero is a valid pool_stats_t (integers only).
        let mut st: pool_stats_t = unsafe { std::mem::zeroed() };
        st.struct_size = std::mem::size_of::<pool_stats_t>();
        // SAFETY: live pool, writable stats.
        assert_eq!(unsafe { pool_stats(self.0, &mut st) }, POOL_OK);
        st
    }
}

impl Drop for CPool {
    fn drop(&mut self) {
        // SAFETY: every thread using it has been joined; nothing is checked out.
        unsafe { pool_free(self.0) }
    }
}

impl BenchPool for CPool {
    type Conn = *mut pool_conn_t;
    #[inline]
    fn get(&self) -> *mut pool_conn_t {
        let mut c = std::ptr::null_mut();
        // SAFETY: live pool, writable out pointer.
        let rc = unsafe { pool_get(self.0, &mut c, std::ptr::null_mut()) };
        assert_eq!(rc, POOL_OK, "pool_get");
        c
    }
    #[inline]
    fn put(&self, c: *mut pool_conn_t) {
        // SAFETY: `c` was checked out from this pool by this thread.
        let rc = unsafe { pool_put(self.0, c) };
        assert_eq!(rc, POOL_OK, "pool_put");
    }
}

pub(crate) fn options_init() -> pool_options_t {
    // SAFETY: pool_options_init fills every field; zeroed memory is only its starting point.
    unsafe {
        let mut o: pool_options_t = std::mem::zeroed();
        pool_options_init(&mut o);
        o
    }
}

/// The core pool through its Rust API.
pub(crate) struct CorePool(pub(crate) ConnPool);

impl CorePool {
    pub(crate) fn new(addr: &str, size: usize, bypass: Option<Duration>) -> CorePool {
        let mut o = Options::new(Dialer::Tcp(addr.to_string()));
        o.pool_size = size;
        o.pool_timeout = Wait::Forever;
        o.health_check_bypass = bypass;
        let p = CorePool(ConnPool::new(o).expect("ConnPool::new"));
        let conns: Vec<_> = (0..size).map(|_| p.get()).collect();
        for c in conns {
            p.put(c);
        }
        p
    }
}

impl BenchPool for CorePool {
    type Conn = redispool::pool::Conn;
    #[inline]
    fn get(&self) -> Self::Conn {
        self.0.get().expect("get")
    }
    #[inline]
    fn put(&self, c: Self::Conn) {
        if self.0.put(c).is_err() {
            panic!("put rejected");
        }
    }
}
