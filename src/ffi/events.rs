//! For hosts that cannot park a thread in `pool_get`: the readiness fd of event loops, and
//! the leak listing.

use super::error::{fail, invalid, pool_error_t};
use super::panic::ffi_boundary;
use super::pool::pool_t;
use super::status::*;
use crate::pool::Pooler;

/// The fd for event loops: readable while pool_try_get may find a conn. Made on the
/// first call (an eventfd, non-blocking and close-on-exec); later calls return the same
/// fd. It belongs to the pool: never close it; it stays valid until pool_free.
///
/// Level-triggered: the pool makes it readable when a conn comes back (pool_put, a dial
/// started by a pool_try_get miss, a min-idle refill, the fast-fail probe), when a turn is
/// freed (pool_remove, a failed dial) and on pool_close; a pool_try_get that returns
/// POOL_ERR_WOULD_BLOCK makes it unreadable again. So the loop is: call pool_try_get;
/// on POOL_ERR_WOULD_BLOCK wait for the fd; when readable, call pool_try_get again. You
/// need not read the fd (reading it is harmless), but while it is readable and you have
/// nothing to get, stop watching it or epoll will keep reporting it. Wake-ups can be
/// spurious (another thread took the conn first): try_get then just misses again.
/// A sticky pool without a conn borrows from its parent in pool_try_get: when that
/// misses, wait on the parent's fd. In a forked child the first call on the pool makes a
/// new fd (the parent's copy is closed): ask again after fork().
/// Returns -1 for NULL, or when the eventfd cannot be made (errno says why). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_notify_fd(pool: *mut pool_t) -> i32 {
    ffi_boundary!(-1, {
        let Some(obj) = super::pool::Held::new(pool) else {
            return -1;
        };
        match obj.notify_fd() {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: errno is thread-local and always writable.
                unsafe { *libc::__errno_location() = e.raw_os_error().unwrap_or(libc::EIO) };
                -1
            }
        }
    })
}

/// One entry of pool_leaks: a conn checked out for longer than leak_detection_threshold_ms.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct pool_leak {
    /// As pool_conn_id.
    pub conn_id: u64,
    /// How long it has been checked out, in milliseconds.
    pub held_ms: i64,
}

/// See `struct pool_leak`.
pub type pool_leak_t = pool_leak;

/// Lists the conns checked out for longer than the pool's leak_detection_threshold_ms,
/// longest held first: writes up to `cap` entries to `out` (which may be NULL when `cap` is
/// 0) and the total number of such conns to `*count_out`, so a second call with a larger
/// buffer gets them all. Nothing runs in the background: the list is computed here, from
/// the time each conn was handed out. POOL_ERR_INVALID_ARG (with a message) for NULL
/// `pool` or `count_out`, NULL `out` with `cap` > 0, a pool without leak detection
/// (leak_detection_threshold_ms 0) or a single or sticky pool (ask its parent).
/// Never blocks on I/O. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_leaks(
    pool: *const pool_t,
    out: *mut pool_leak_t,
    cap: usize,
    count_out: *mut usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(super::error::internal(err_out, "pool_leaks"), {
        if count_out.is_null() {
            return invalid(err_out, "count_out: NULL");
        }
        // SAFETY: checked non-NULL; writable per the header.
        unsafe { *count_out = 0 };
        if out.is_null() && cap > 0 {
            return invalid(err_out, "out: NULL with cap > 0");
        }
        let Some(obj) = super::pool::Held::new(pool) else {
            return invalid(err_out, "pool: NULL");
        };
        let Some(list) = obj.leaks() else {
            let e = crate::pool::Error::invalid(
                "leak detection is off for this pool: set leak_detection_threshold_ms \
                 (single and sticky pools: ask the parent pool)",
            );
            return fail(err_out, &e);
        };
        for (i, &(conn_id, held)) in list.iter().take(cap).enumerate() {
            let held_ms = held.as_millis().min(i64::MAX as u128) as i64;
            // SAFETY: `out` holds `cap` entries per the header and i < cap.
            unsafe { out.add(i).write(pool_leak { conn_id, held_ms }) };
        }
        // SAFETY: checked non-NULL above.
        unsafe { *count_out = list.len() };
        POOL_OK
    })
}
