//! Calling the C ABI from Rust, as a C program would: a `pool_t *` shareable between the
//! test's threads, checked-out conn handles, one command with its reply, stats.
//!
//! Every helper returns the library's status and message on failure (`Failure`), so tests
//! can assert on the exact code a C caller would see.

use std::ffi::{CStr, CString, c_char};
use std::fmt;

use redispool::ffi::cancel::pool_cancel_t;
use redispool::ffi::conn::{pool_conn_command, pool_conn_fd, pool_conn_id, pool_conn_t};
use redispool::ffi::error::pool_error_t;
use redispool::ffi::options::pool_options_t;
use redispool::ffi::pool::{
    pool_close, pool_free, pool_get_ex, pool_idle_len, pool_len, pool_new, pool_new_url, pool_put,
    pool_remove, pool_stats, pool_t, pool_try_get,
};
use redispool::ffi::reply::{pool_reply_free, pool_reply_t};
use redispool::ffi::stats::pool_stats_t;
use redispool::ffi::status::{POOL_OK, pool_status_t};

/// A failed call: the status it returned and the message of its `pool_error_t` (empty for
/// the functions that have none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: pool_status_t,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {} ({})", self.code, self.message)
    }
}

fn new_error() -> pool_error_t {
    pool_error_t {
        code: 0,
        message: [0; 256],
    }
}

fn failure(code: pool_status_t, err: &pool_error_t) -> Failure {
    assert_ne!(code, POOL_OK);
    assert_eq!(err.code, code, "pool_error_t.code differs from the status");
    // SAFETY: the library NUL-terminates the message.
    let message = unsafe { CStr::from_ptr(err.message.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    assert!(!message.is_empty(), "empty message for status {code}");
    Failure { code, message }
}

/// An owned `pool_t *`, freed on drop. The C API is thread-safe: share it in an `Arc`.
pub struct CPool(*mut pool_t);

// SAFETY: a pool_t is documented safe to use from any number of threads at once.
unsafe impl Send for CPool {}
// SAFETY: as above.
unsafe impl Sync for CPool {}

impl CPool {
    /// The stats on one line, for test output.
    pub fn stats_line(&self) -> String {
        let s = self.stats();
        format!(
            "stats: total {} idle {} in_use {} pending {} waiting {} dialing {} | hits {} misses {} \
             timeouts {} dials {} dial_errors {} stale {} removed {} evicted {}",
            s.total_conns,
            s.idle_conns,
            s.in_use_conns,
            s.pending_requests,
            s.waiting,
            s.dials_in_progress,
            s.hits,
            s.misses,
            s.timeouts,
            s.dials,
            s.dial_errors,
            s.stale_conns,
            s.removed_conns,
            s.evicted_conns
        )
    }

    /// `pool_new_url`, or the failure.
    pub fn try_from_url(url: &str) -> Result<CPool, Failure> {
        let curl = CString::new(url).expect("no NUL in the URL");
        let mut raw: *mut pool_t = std::ptr::null_mut();
        let mut err = new_error();
        // SAFETY: a NUL-terminated URL and valid out-pointers.
        let st = unsafe { pool_new_url(curl.as_ptr(), &mut raw, &mut err) };
        if st != POOL_OK {
            return Err(failure(st, &err));
        }
        assert!(!raw.is_null());
        Ok(CPool(raw))
    }

    /// `pool_new_url`; panics on failure.
    pub fn from_url(url: &str) -> CPool {
        CPool::try_from_url(url).unwrap_or_else(|f| panic!("pool_new_url({url}): {f}"))
    }

    /// `pool_new`, or the failure.
    pub fn try_from_options(opts: &pool_options_t) -> Result<CPool, Failure> {
        let mut raw: *mut pool_t = std::ptr::null_mut();
        let mut err = new_error();
        // SAFETY: `opts` is initialised by the caller (pool_options_init) and out-pointers
        // are valid.
        let st = unsafe { pool_new(opts, &mut raw, &mut err) };
        if st != POOL_OK {
            return Err(failure(st, &err));
        }
        Ok(CPool(raw))
    }

    /// Takes ownership of a pool made by another constructor (pool_sticky_new, ...).
    ///
    /// # Safety
    /// `raw` is a live pool nobody else frees.
    pub unsafe fn from_raw(raw: *mut pool_t) -> CPool {
        assert!(!raw.is_null());
        CPool(raw)
    }

    /// `pool_new`; panics on failure. The strings `opts` points to need only live for the call.
    pub fn from_options(opts: &pool_options_t) -> CPool {
        let mut raw: *mut pool_t = std::ptr::null_mut();
        let mut err = new_error();
        // SAFETY: `opts` is initialised by the caller (pool_options_init) and out-pointers
        // are valid.
        let st = unsafe { pool_new(opts, &mut raw, &mut err) };
        if st != POOL_OK {
            panic!("pool_new: {}", failure(st, &err));
        }
        CPool(raw)
    }

    pub fn raw(&self) -> *mut pool_t {
        self.0
    }

    /// `pool_get_ex(pool, timeout_ms, NULL, ...)`: `timeout_ms < 0` uses the pool's timeout.
    pub fn get(&self, timeout_ms: i64) -> Result<CConn, Failure> {
        self.get_cancel(timeout_ms, std::ptr::null())
    }

    /// `pool_get_ex` with a cancel token (NULL allowed).
    pub fn get_cancel(
        &self,
        timeout_ms: i64,
        cancel: *const pool_cancel_t,
    ) -> Result<CConn, Failure> {
        let mut conn: *mut pool_conn_t = std::ptr::null_mut();
        let mut err = new_error();
        // SAFETY: a live pool; `cancel` is NULL or a live token; out-pointers valid.
        let st = unsafe { pool_get_ex(self.0, timeout_ms, cancel, &mut conn, &mut err) };
        if st != POOL_OK {
            assert!(conn.is_null(), "a failed get handed out a conn");
            return Err(failure(st, &err));
        }
        assert!(!conn.is_null());
        Ok(CConn(conn))
    }

    /// `pool_try_get`: the status alone on failure (it has no pool_error_t).
    pub fn try_get(&self) -> Result<CConn, pool_status_t> {
        let mut conn: *mut pool_conn_t = std::ptr::null_mut();
        // SAFETY: a live pool and a valid out-pointer.
        let st = unsafe { pool_try_get(self.0, &mut conn) };
        if st != POOL_OK {
            return Err(st);
        }
        Ok(CConn(conn))
    }

    /// `pool_put`; consumes the handle.
    pub fn put(&self, conn: CConn) -> pool_status_t {
        // SAFETY: a live pool; the handle is only checked, never dereferenced.
        unsafe { pool_put(self.0, conn.0) }
    }

    /// `pool_remove`; consumes the handle.
    pub fn remove(&self, conn: CConn, reason: &str) -> pool_status_t {
        let reason = CString::new(reason).expect("no NUL in the reason");
        // SAFETY: a live pool; the handle is only checked; a NUL-terminated reason.
        unsafe { pool_remove(self.0, conn.0, reason.as_ptr()) }
    }

    pub fn stats(&self) -> pool_stats_t {
        // SAFETY: all-zero is a valid pool_stats_t (struct_size 0 means the full struct).
        let mut s: pool_stats_t = unsafe { std::mem::zeroed() };
        // SAFETY: a live pool and a writable struct.
        assert_eq!(unsafe { pool_stats(self.0, &mut s) }, POOL_OK);
        s
    }

    pub fn len(&self) -> i32 {
        // SAFETY: a live pool.
        unsafe { pool_len(self.0) }
    }

    pub fn idle_len(&self) -> i32 {
        // SAFETY: a live pool.
        unsafe { pool_idle_len(self.0) }
    }

    pub fn close(&self) -> pool_status_t {
        // SAFETY: a live pool.
        unsafe { pool_close(self.0) }
    }
}

impl Drop for CPool {
    fn drop(&mut self) {
        // SAFETY: the last reference to the handle; conns still checked out stay valid to
        // put or remove, per the header.
        unsafe { pool_free(self.0) };
    }
}

/// A checked-out `pool_conn_t *`. Not `Clone`: put or remove consumes it.
#[derive(Debug)]
pub struct CConn(pub *mut pool_conn_t);

// SAFETY: a pool_conn_t may move between threads (used by one at a time).
unsafe impl Send for CConn {}

/// A reply reduced to what the tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CReply {
    /// POOL_REPLY_*.
    pub kind: i32,
    /// The text of a string, status or error reply; the integer's digits otherwise.
    pub text: String,
}

impl CConn {
    /// `pool_conn_id`: 0 when the handle is not checked out.
    pub fn id(&self) -> u64 {
        pool_conn_id(self.0)
    }

    /// `pool_conn_fd`: -1 when the handle is not checked out.
    pub fn fd(&self) -> i32 {
        pool_conn_fd(self.0)
    }

    /// `pool_conn_command` with binary-safe arguments.
    pub fn command(&self, args: &[&[u8]]) -> Result<CReply, Failure> {
        let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
        let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
        let mut reply: *mut pool_reply_t = std::ptr::null_mut();
        let mut err = new_error();
        // SAFETY: argv/lens hold argc entries, each argv[i] readable for lens[i] bytes.
        let st = unsafe {
            pool_conn_command(
                self.0,
                argv.len() as i32,
                argv.as_ptr(),
                lens.as_ptr(),
                &mut reply,
                &mut err,
            )
        };
        if st != POOL_OK {
            assert!(reply.is_null(), "a failed command returned a reply");
            return Err(failure(st, &err));
        }
        // SAFETY: POOL_OK gives a reply tree, owned by us until pool_reply_free.
        let r = unsafe { &*reply };
        let text = if r.str.is_null() {
            r.integer.to_string()
        } else {
            // SAFETY: str holds len bytes.
            let bytes = unsafe { std::slice::from_raw_parts(r.str.cast::<u8>(), r.len) };
            String::from_utf8_lossy(bytes).into_owned()
        };
        let out = CReply {
            kind: r.r#type,
            text,
        };
        // SAFETY: the root reply, freed once.
        unsafe { pool_reply_free(reply) };
        Ok(out)
    }
}
