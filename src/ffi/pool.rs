//! `pool_t`: the Pooler interface over a connection pool.

use std::ffi::{CStr, c_char};
use std::sync::Arc;

use super::cancel::pool_cancel_t;
use super::castable::{
    conn_bits, conn_from_bits, is_pool, pool_clone, pool_from_raw, pool_into_raw, pool_ref,
};
use super::conn::pool_conn_t;
use super::conn_table::{self, Entry, TakeError};
use super::error::{fail, internal, invalid, pool_error_t};
use super::options::{pool_options_t, read_options, to_core};
use super::panic::ffi_boundary;
use super::stats::{pool_stats_t, write_stats};
use super::status::*;
use crate::pool::{CancelToken, Conn, ConnPool, Error, Wait};

/// A pooler: a connection pool (later also single-conn and sticky pools). Opaque.
pub struct pool {
    _opaque: [u8; 0],
}

/// See `struct pool`.
pub type pool_t = pool;

/// What a `pool_t *` points to.
pub(crate) struct PoolObj {
    pub(crate) pool: ConnPool,
}

/// After a panic inside a call on `p`, the pool is closed (its state can no longer be trusted).
fn close_after_panic(p: *const pool_t) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: the caller's handle was valid when the call began and is not given back
        // by any function that can panic midway.
        if let Some(obj) = unsafe { pool_ref(p) } {
            let _ = obj.pool.close();
        }
    });
}

/// Creates a connection pool from `*opts` (strings in it are copied). On success stores
/// the pool in `*pool_out`; release it with `pool_free`. Starts background dials when
/// `min_idle_conns > 0` and a reaper thread when `reaper_interval_ms > 0`; never waits for
/// a dial itself. Invalid options -> POOL_ERR_INVALID_ARG naming the field.
/// Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_new(
    opts: *const pool_options_t,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_new"), {
        if pool_out.is_null() {
            return invalid(err_out, "pool_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *pool_out = std::ptr::null_mut() };
        if opts.is_null() {
            return invalid(err_out, "opts: NULL");
        }
        // SAFETY: `opts` is non-NULL and points to a pool_options_t of its struct_size.
        let created = unsafe { read_options(opts) }
            // SAFETY: strings in the caller's options are NULL or NUL-terminated.
            .and_then(|o| unsafe { to_core(&o) })
            .and_then(ConnPool::new);
        match created {
            Ok(pool) => {
                // SAFETY: checked non-NULL above.
                unsafe { *pool_out = pool_into_raw(Arc::new(PoolObj { pool })) };
                POOL_OK
            }
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Stores `conn` in the handle table and hands its handle out.
///
/// # Safety
/// `p` is a live pool handle; `conn_out` is writable.
unsafe fn hand_out(
    p: *const pool_t,
    conn: Conn,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: per contract `p` is live, so taking another strong count is sound.
    let owner = unsafe { pool_clone(p) };
    match conn_table::insert(Entry { conn, owner }) {
        Ok(handle) => {
            // SAFETY: per contract `conn_out` is writable.
            unsafe { *conn_out = conn_from_bits(handle) };
            POOL_OK
        }
        Err(entry) => {
            let _ = entry.owner.pool.remove(entry.conn, None);
            fail(
                err_out,
                &Error::Internal("too many conns checked out in this process".into()),
            )
        }
    }
}

/// Common checks of the get family; returns the pool or the status to return.
///
/// # Safety
/// `p` is NULL or a live pool handle; `conn_out` is NULL or writable.
unsafe fn get_args<'a>(
    p: *const pool_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> Result<&'a PoolObj, pool_status_t> {
    if conn_out.is_null() {
        return Err(invalid(err_out, "conn_out: NULL"));
    }
    // SAFETY: checked non-NULL.
    unsafe { *conn_out = std::ptr::null_mut() };
    // SAFETY: per contract.
    unsafe { pool_ref(p) }.ok_or_else(|| invalid(err_out, "pool: NULL"))
}

/// Get: an idle, health-checked conn, or a newly dialed one. Blocks until a turn is free and,
/// on a miss, until the dial finishes: at most pool_timeout_ms in all (-1: forever;
/// 0: no wait for a turn, the dial itself still awaited), then POOL_ERR_TIMEOUT with a
/// message describing the pool. Waiters are served in arrival order.
/// On success `*conn_out` is a conn used by one thread at a time until it is given back with
/// `pool_put` or `pool_remove`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_get(
    pool: *mut pool_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: same contract as pool_get_ex.
    unsafe { pool_get_ex(pool, -1, std::ptr::null(), conn_out, err_out) }
}

/// Get with its own timeout and cancel token: `timeout_ms < 0` uses the pool's
/// pool_timeout_ms, 0 does not wait for a turn, > 0 bounds the whole get. `cancel` may be
/// NULL; when another thread fires it, this call returns POOL_ERR_CANCELED promptly and
/// leaves no turn behind (a dial it started goes to the next waiter or the idle list).
/// The token must stay alive until this call returns. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_get_ex(
    pool: *mut pool_t,
    timeout_ms: i64,
    cancel: *const pool_cancel_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(
        {
            close_after_panic(pool);
            internal(err_out, "pool_get")
        },
        {
            // SAFETY: per this function's contract.
            let obj = match unsafe { get_args(pool, conn_out, err_out) } {
                Ok(o) => o,
                Err(code) => return code,
            };
            let wait = if timeout_ms < 0 {
                obj.pool.options().pool_timeout
            } else {
                Wait::from_millis(timeout_ms).expect("non-negative")
            };
            // SAFETY: `cancel` is NULL or a live token, per the contract above.
            let token: Option<CancelToken> =
                unsafe { super::castable::cancel_ref(cancel) }.cloned();
            match obj.pool.get_with(wait, token.as_ref()) {
                // SAFETY: `pool` is live and `conn_out` writable, checked by get_args.
                Ok(conn) => unsafe { hand_out(pool, conn, conn_out, err_out) },
                Err(e) => fail(err_out, &e),
            }
        }
    )
}

/// Never waits, dials or resolves: an idle healthy conn, or POOL_ERR_WOULD_BLOCK (also when
/// other callers are queued, so they keep their turn order). POOL_ERR_CLOSED after close,
/// POOL_ERR_INVALID_ARG for NULLs. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_try_get(
    pool: *mut pool_t,
    conn_out: *mut *mut pool_conn_t,
) -> pool_status_t {
    ffi_boundary!(
        {
            close_after_panic(pool);
            POOL_ERR_INTERNAL
        },
        {
            let null = std::ptr::null_mut();
            // SAFETY: per this function's contract.
            let obj = match unsafe { get_args(pool, conn_out, null) } {
                Ok(o) => o,
                Err(code) => return code,
            };
            match obj.pool.try_get() {
                // SAFETY: `pool` is live and `conn_out` writable, checked by get_args.
                Ok(conn) => unsafe { hand_out(pool, conn, conn_out, null) },
                Err(e) => status_of(&e),
            }
        }
    )
}

/// Takes a conn handle back from the table if it was checked out from `pool`.
fn take_back(pool: *const pool_t, conn: *const pool_conn_t) -> Result<Entry, pool_status_t> {
    if pool.is_null() || conn.is_null() {
        return Err(POOL_ERR_INVALID_ARG);
    }
    // Both a dead handle and a conn of another pool are misuse; neither changes anything.
    conn_table::take(conn_bits(conn), |e| is_pool(pool, &e.owner)).map_err(|e| match e {
        TakeError::NotLive | TakeError::Refused => POOL_ERR_INVALID_ARG,
    })
}

/// Put: gives `conn` back for reuse and consumes it (the handle is dead afterwards); the
/// oldest waiter gets it directly. Misuse changes nothing and returns POOL_ERR_INVALID_ARG:
/// NULLs, a double put, a put after remove, a conn of another pool. After pool_close or
/// pool_free the conn is simply closed. A conn from pool_new_conn is closed. Never blocks
/// on I/O. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_put(pool: *mut pool_t, conn: *mut pool_conn_t) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let entry = match take_back(pool, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        match entry.owner.pool.put(entry.conn) {
            Ok(()) => POOL_OK,
            Err(rejected) => status_of(&rejected.error),
        }
    })
}

/// Remove: closes `conn` and frees its turn (a waiter then gets the turn and dials or takes
/// an idle conn). Consumes `conn`. `reason` may be NULL (informational). Same misuse rules
/// as pool_put. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_remove(
    pool: *mut pool_t,
    conn: *mut pool_conn_t,
    reason: *const c_char,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let entry = match take_back(pool, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let reason = (!reason.is_null()).then(|| {
            // SAFETY: a non-NULL reason is a NUL-terminated string per the header.
            unsafe { CStr::from_ptr(reason) }
                .to_string_lossy()
                .into_owned()
        });
        match entry.owner.pool.remove(entry.conn, reason.as_deref()) {
            Ok(()) => POOL_OK,
            Err(rejected) => status_of(&rejected.error),
        }
    })
}

/// NewConn: dials a conn outside the pool's turns and idle list (it obeys max_active_conns
/// and counts in pool_len). Blocks for the dial (dial_timeout_ms per attempt, with
/// retries) on the calling thread. Release it with pool_close_conn. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_new_conn(
    pool: *mut pool_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(
        {
            close_after_panic(pool);
            internal(err_out, "pool_new_conn")
        },
        {
            // SAFETY: per this function's contract.
            let obj = match unsafe { get_args(pool, conn_out, err_out) } {
                Ok(o) => o,
                Err(code) => return code,
            };
            match obj.pool.new_conn() {
                // SAFETY: `pool` is live and `conn_out` writable, checked by get_args.
                Ok(conn) => unsafe { hand_out(pool, conn, conn_out, err_out) },
                Err(e) => fail(err_out, &e),
            }
        }
    )
}

/// CloseConn: closes a conn from pool_new_conn and consumes it. Given a conn from pool_get
/// it acts as pool_remove (its turn is freed, never leaked). Same misuse rules as pool_put.
/// Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_close_conn(
    pool: *mut pool_t,
    conn: *mut pool_conn_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let entry = match take_back(pool, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        match entry.owner.pool.close_conn(entry.conn) {
            Ok(()) => POOL_OK,
            Err(rejected) => status_of(&rejected.error),
        }
    })
}

/// Len: all conns the pool owns (idle, checked out, and pool_new_conn conns; dials in
/// flight excluded). -1 for NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_len(pool: *const pool_t) -> i32 {
    ffi_boundary!(-1, {
        // SAFETY: `pool` is NULL or a live handle per the header.
        match unsafe { pool_ref(pool) } {
            Some(obj) => obj.pool.len().min(i32::MAX as usize) as i32,
            None => -1,
        }
    })
}

/// IdleLen: idle conns. -1 for NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_idle_len(pool: *const pool_t) -> i32 {
    ffi_boundary!(-1, {
        // SAFETY: `pool` is NULL or a live handle per the header.
        match unsafe { pool_ref(pool) } {
            Some(obj) => obj.pool.idle_len().min(i32::MAX as usize) as i32,
            None => -1,
        }
    })
}

/// Stats: a snapshot into `*stats_out`. Set `stats_out->struct_size` to
/// `sizeof(pool_stats_t)` (or 0, meaning the same) before the call; only that many bytes
/// are written. Any thread; never blocks on I/O.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_stats(
    pool: *const pool_t,
    stats_out: *mut pool_stats_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        // SAFETY: `pool` is NULL or a live handle per the header.
        let Some(obj) = (unsafe { pool_ref(pool) }) else {
            return POOL_ERR_INVALID_ARG;
        };
        // SAFETY: `stats_out` is NULL or writable for its struct_size, per the header.
        unsafe { write_stats(&obj.pool.stats(), stats_out) }
    })
}

/// Close: closes idle conns, wakes every waiter with POOL_ERR_CLOSED, fails later gets
/// with POOL_ERR_CLOSED. Conns still checked out are closed when they are put or removed.
/// A second call returns POOL_ERR_CLOSED. Does not wait for dials in flight. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_close(pool: *mut pool_t) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        // SAFETY: `pool` is NULL or a live handle per the header.
        let Some(obj) = (unsafe { pool_ref(pool) }) else {
            return POOL_ERR_INVALID_ARG;
        };
        match obj.pool.close() {
            Ok(()) => POOL_OK,
            Err(e) => status_of(&e),
        }
    })
}

/// Free: closes the pool if needed and gives the caller's handle back. NULL is fine.
/// Afterwards the only valid uses of `pool` are pool_put / pool_remove / pool_close_conn of
/// conns still checked out from it: its memory lives until the last of them is back.
/// Never blocks. Call it once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_free(pool: *mut pool_t) {
    ffi_boundary!((), {
        if pool.is_null() {
            return;
        }
        // SAFETY: a non-NULL handle from pool_new, given back once per the header.
        let obj = unsafe { pool_from_raw(pool) };
        let _ = obj.pool.close();
        drop(obj);
    })
}
