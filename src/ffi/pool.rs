//! `pool_t`: the Pooler interface over a connection pool.

use std::ffi::{CStr, c_char};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::castable::{conn_bits, conn_from_bits, pool_bits, pool_into_raw};
use super::conn_table::{self, Entry, TakeError};
use super::error::{construct, fail, internal, invalid, pool_error_t, url_text};
use super::handle_table;
use super::handles::{PoolKind, PoolObj, pool_cancel_t, pool_conn_t};
use super::options::{UserdataOwner, pool_options_t, read_options, to_core_owning};
use super::panic::ffi_boundary;
use super::stats::{pool_stats_t, write_stats};
use super::status::*;
use crate::pool::{
    CancelToken, Conn, ConnPool, Error, Pooler, SingleConnPool, StickyConnPool, Wait,
};

pub use super::handles::{pool, pool_t};

/// After a panic inside a call on `p`, the pool is closed (its state can no longer be trusted).
fn close_after_panic(p: *const pool_t) {
    let _ = std::panic::catch_unwind(|| {
        if let Some(obj) = handle_table::POOLS.enter(pool_bits(p)) {
            let _ = obj.pooler().close();
        }
    });
}

/// Hands a newly created pool to the caller, or reports why it could not be created.
///
/// # Safety
/// `pool_out` is non-NULL and writable.
unsafe fn publish(
    created: crate::pool::Result<ConnPool>,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    match created {
        // SAFETY: per contract.
        Ok(pool) => unsafe { publish_obj(PoolKind::Conn(pool), pool_out, err_out) },
        Err(e) => fail(err_out, &e),
    }
}

/// Gives a new pool object a handle and hands it to the caller; when the handle table is
/// full, closes the object and says so.
///
/// # Safety
/// `pool_out` is non-NULL and writable.
unsafe fn publish_obj(
    kind: PoolKind,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    match pool_into_raw(Arc::new(PoolObj::new(kind))) {
        Ok(p) => {
            // SAFETY: per contract.
            unsafe { *pool_out = p };
            POOL_OK
        }
        Err(obj) => {
            let _ = obj.close();
            fail(
                err_out,
                &Error::Internal("too many pool handles in this process".into()),
            )
        }
    }
}

/// Hands a connection pool made elsewhere in `ffi` (e.g. `pool_sentinel_new`) to the
/// caller as an ordinary `pool_t`, or reports why it could not be made.
///
/// # Safety
/// `pool_out` is non-NULL and writable.
pub(crate) unsafe fn publish_conn_pool(
    created: crate::pool::Result<ConnPool>,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: per contract.
    unsafe { publish(created, pool_out, err_out) }
}

/// Creates a connection pool from `*opts` (strings in it are copied). On success stores
/// the pool in `*pool_out`; release it with `pool_free`. Starts background dials when
/// `min_idle_conns > 0` (on one dial thread; more start as it finds work, up to
/// max_concurrent_dials) and a reaper thread when `reaper_interval_ms > 0`; never waits for
/// a dial itself, whatever the sizes. Invalid options -> POOL_ERR_INVALID_ARG naming the
/// field.
/// Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_new(
    opts: *const pool_options_t,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_new"), {
        let make = |opts| {
            // SAFETY: `opts` is non-NULL and points to a pool_options_t of its struct_size.
            let o = unsafe { read_options(opts) }?;
            // SAFETY: strings in the caller's options are NULL or NUL-terminated.
            let (core, owner) = unsafe { to_core_owning(&o) }?;
            Ok((ConnPool::new(core)?, owner))
        };
        let publish = |(pool, owner): (_, Option<UserdataOwner>), out, err_out| {
            // SAFETY: `construct` checked `out` non-NULL.
            let status = unsafe { publish(Ok(pool), out, err_out) };
            // The pool exists (and nothing of it can be dropped before this thread
            // returns its handle): it now owns `dialer_userdata`.
            if status == POOL_OK
                && let Some(owner) = owner
            {
                owner.arm();
            }
            status
        };
        // SAFETY: `pool_out` is NULL or writable per the header.
        unsafe {
            construct(
                (pool_out, "pool_out"),
                (opts, "opts"),
                err_out,
                make,
                publish,
            )
        }
    })
}

/// Creates a connection pool from a go-redis URL (ParseURL format):
/// `redis://[[user]:password@]host[:port][/db][?option=value&...]` or
/// `unix://[[user]:password@]/path/to/redis.sock[?db=N&...]`. Options: pool_size,
/// min_idle_conns, max_idle_conns, max_active_conns, max_concurrent_dials, pool_timeout,
/// dial_timeout, read_timeout, write_timeout, conn_max_idle_time (alias idle_timeout),
/// conn_max_lifetime (alias max_conn_age), conn_max_lifetime_jitter, pool_fifo,
/// client_name, protocol, db (overrides the path), dialer_retries, dialer_retry_backoff,
/// reaper_interval, ping_after_idle, leak_detection_threshold, health_check_bypass,
/// overtake_window, max_reply_bytes, max_reply_elements (plain integers, 0 = the default).
/// Durations as go-redis: "500ms", "4s", "1m30s", or a plain integer of seconds; 0 or a
/// negative value disables the timeout or feature. pool_timeout means what
/// pool_timeout_ms means: 0 ("0", "0s") does not wait, a negative value waits forever.
/// Percent-encode reserved characters in user and password. Everything not in the URL
/// takes its pool_options_init default. An unknown, repeated or malformed option, an
/// unsupported scheme (rediss://: no TLS) or a URL over 8 KiB -> POOL_ERR_INVALID_ARG
/// naming it (the password is never shown). Release the pool with pool_free. Never waits
/// for a dial. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_new_url(
    url: *const c_char,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_new_url"), {
        let make = |url| {
            // SAFETY: a non-NULL url is NUL-terminated per the header.
            unsafe { url_text(url) }
                .and_then(crate::pool::Options::from_url)
                .and_then(ConnPool::new)
        };
        // SAFETY: `pool_out` is NULL or writable per the header; `construct` checked it
        // non-NULL before `publish`.
        unsafe {
            construct(
                (pool_out, "pool_out"),
                (url, "url"),
                err_out,
                make,
                |p, out, e| publish(Ok(p), out, e),
            )
        }
    })
}

/// Creates a single-conn pool (go-redis SingleConnPool) over `conn`, a conn checked out
/// from `parent`; consumes `conn` on success (on failure nothing changes and `conn` stays
/// the caller's). On the new pool: pool_get returns that conn (waiting, as any get, while
/// another thread holds it), pool_put keeps it; pool_remove with a reason makes later gets
/// fail with POOL_ERR_BAD_CONN carrying the reason (with a NULL reason: POOL_ERR_CLOSED)
/// and hands the conn to the parent's pool_remove; pool_close makes later gets fail with
/// POOL_ERR_CLOSED and gives the conn back to the parent (pool_put, at once, or when the
/// conn is put if it is checked out) without closing it. pool_len and pool_idle_len are 0,
/// as in go-redis. Release with pool_free; the parent stays valid memory until then.
/// Never blocks. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_single_new(
    parent: *mut pool_t,
    conn: *mut pool_conn_t,
    pool_out: *mut *mut pool_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if pool_out.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *pool_out = std::ptr::null_mut() };
        let entry = match take_back(parent, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let parent: Arc<dyn Pooler> = entry.owner;
        let single = SingleConnPool::new(parent, entry.conn);
        // SAFETY: checked non-NULL above.
        unsafe { publish_obj(PoolKind::Single(single), pool_out, std::ptr::null_mut()) }
    })
}

/// Creates a sticky pool (go-redis StickyConnPool) over `parent`: the first pool_get
/// borrows a conn from the parent, and every later get returns that same conn, waiting
/// (pool_timeout_ms of the parent, or pool_get_ex's own timeout and cancel token) while
/// another thread holds it. After pool_remove(sticky, conn, reason) gets fail with
/// POOL_ERR_BAD_CONN "redis: Conn is in a bad state: <reason>" until pool_sticky_reset
/// (a NULL reason reads "conn removed": unlike go-redis, a removed conn is never handed
/// out again); gets already waiting are told at once.
/// Closing (or freeing) the sticky pool gives the conn back to the parent: pool_put, or
/// pool_remove when bad; a conn checked out at that moment goes back when it is put.
/// Over a sticky pool, the new handle shares that pool (reference counted, as go-redis):
/// the pool closes when every handle is closed or freed. pool_len is 1 while it holds a
/// conn, pool_idle_len 1 while that conn is not checked out. pool_stats of a sticky or
/// single pool: the counters are 0 (go-redis reports empty stats), total_conns and
/// idle_conns equal pool_len and pool_idle_len, and `waiting` counts gets queued for the
/// conn; the parent's stats count what the child borrows and gives back.
/// Release with pool_free. Never blocks. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sticky_new(
    parent: *mut pool_t,
    pool_out: *mut *mut pool_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if pool_out.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *pool_out = std::ptr::null_mut() };
        let Some(obj) = Held::new(parent) else {
            return POOL_ERR_INVALID_ARG;
        };
        let sticky = match obj.kind() {
            PoolKind::Sticky(s) => match s.share() {
                Ok(shared) => shared,
                Err(e) => return status_of(&e),
            },
            _ => {
                let parent: Arc<dyn Pooler> = Arc::<PoolObj>::clone(obj.arc());
                StickyConnPool::new(parent)
            }
        };
        // SAFETY: checked non-NULL above.
        unsafe { publish_obj(PoolKind::Sticky(sticky), pool_out, std::ptr::null_mut()) }
    })
}

/// Reset (go-redis StickyConnPool.Reset): after a pool_remove on the sticky pool, hands the
/// bad conn to the parent's pool_remove and clears the bad state, so the next get borrows
/// a fresh conn. POOL_OK and nothing done when the pool is not in a bad state;
/// POOL_ERR_CLOSED after close; POOL_ERR_INVALID_ARG for NULL or a pool that is not
/// sticky. Never blocks. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sticky_reset(sticky: *mut pool_t) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(obj) = Held::new(sticky) else {
            return POOL_ERR_INVALID_ARG;
        };
        match obj.kind() {
            PoolKind::Sticky(s) => match s.reset() {
                Ok(()) => POOL_OK,
                Err(e) => status_of(&e),
            },
            _ => POOL_ERR_INVALID_ARG,
        }
    })
}

/// A strong count of the pool behind a handle, held for the whole of one call on it. A
/// pool_free on another thread meanwhile then gives back only the caller's count, and the
/// pool's memory lives until this call has returned: a get blocked in the pool wakes up
/// with POOL_ERR_CLOSED inside live memory, whoever drops the pool's last count (pool_free,
/// a dial thread finishing, or this call). It is this thread's parked count when that is
/// the pool's and the handle is still live (no atomic read-modify-write: a get after a put
/// on one thread costs what it did before), else a new one taken through `handle_table::POOLS`,
/// which refuses a freed handle even while pool_free runs. Taking a new count at every get and dropping it at every put
/// cost two atomic read-modify-writes on a cache line every thread of the pool writes:
/// about 5 ns of a 55 ns Get+Put on one thread, 20 ns at 8 threads (docs/design-hot-path.md,
/// "Pool count"). A get that succeeds moves the count into the conn's handle-table entry
/// (`into_owner`), which keeps the pool alive for a put after pool_free. Any other call
/// gives it back where it came from when it ends: parked again, or dropped, so a call
/// never changes which pool this thread has parked (a pool_stats of another pool between
/// a put and the next get costs that get nothing).
pub(crate) struct Held {
    /// Taken out only by `into_owner` (which skips the drop) or the drop itself.
    owner: ManuallyDrop<Arc<PoolObj>>,
    /// The handle, as an integer.
    handle: u64,
    /// `owner` is the count this thread had parked.
    was_parked: bool,
}

impl Held {
    /// None for NULL, a freed handle or a made-up value.
    #[inline]
    pub(crate) fn new(p: *const pool_t) -> Option<Held> {
        let handle = pool_bits(p);
        match take_parked(handle) {
            // Not checked against `handle_table` (that would be one more cache line per
            // get): if another thread freed the handle since, this call acts on the pool
            // it closed, in memory the parked count keeps alive.
            Some(owner) => Some(Held {
                owner: ManuallyDrop::new(owner),
                handle,
                was_parked: true,
            }),
            None => Held::enter(handle),
        }
    }

    #[cold]
    fn enter(handle: u64) -> Option<Held> {
        let owner = handle_table::POOLS.enter(handle)?;
        Some(Held {
            owner: ManuallyDrop::new(owner),
            handle,
            was_parked: false,
        })
    }

    /// The handle the call came through (for the checked-out conn's entry).
    #[inline]
    pub(crate) fn handle(&self) -> u64 {
        self.handle
    }

    #[inline]
    pub(crate) fn arc(&self) -> &Arc<PoolObj> {
        &self.owner
    }

    /// The count, for the handle-table entry of a conn this call checked out.
    #[inline]
    pub(crate) fn into_owner(self) -> Arc<PoolObj> {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so `owner` is taken out exactly once, here.
        unsafe { ManuallyDrop::take(&mut me.owner) }
    }
}

impl std::ops::Deref for Held {
    type Target = PoolObj;

    fn deref(&self) -> &PoolObj {
        self.arc()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: `owner` is taken out only here or in `into_owner`, which skips this drop.
        let owner = unsafe { ManuallyDrop::take(&mut self.owner) };
        if self.was_parked {
            park_owner(self.handle, owner);
        }
    }
}

thread_local! {
    /// The strong count of this thread's last pool_put / pool_remove, kept for its next
    /// checkout (see `Held` and `park_owner`).
    static PARKED_OWNER: std::cell::Cell<Option<(u64, Arc<PoolObj>)>> =
        const { std::cell::Cell::new(None) };
}

/// This thread's parked count, taken out, if it was parked for `handle`.
#[inline]
fn take_parked(handle: u64) -> Option<Arc<PoolObj>> {
    PARKED_OWNER
        .try_with(|c| match c.take() {
            Some((h, owner)) if h == handle => Some(owner),
            other => {
                c.set(other);
                None
            }
        })
        .ok()
        .flatten()
}

/// After a call returned (so no method of the pool is running on this thread),
/// parks `owner`, a count of the pool behind `handle`, for this thread's next checkout
/// through that handle instead of dropping it. A closed pool's count is dropped, so at
/// most the last open pool a thread gave a conn back to stays referenced from that
/// thread, until its next put of another pool, its next call with that handle once freed,
/// pool_free of that handle on this thread, or its exit; a pool freed on another thread
/// meanwhile keeps its memory until then (its sockets and eventfd are closed by the
/// close). Only connection pools and cluster node pools are parked: single and sticky
/// pools are not on a hot path. `handle` 0 (a cluster conn) is never parked.
fn park_owner(handle: u64, owner: Arc<PoolObj>) {
    if handle == 0 {
        return;
    }
    let keep = match owner.kind() {
        PoolKind::Conn(p) => !p.is_closed(),
        PoolKind::Node(n) => !n.pool.is_closed(),
        PoolKind::Single(_) | PoolKind::Sticky(_) => false,
    };
    if !keep {
        return;
    }
    // The count parked before (another pool's, or a second conn's of this one) is dropped
    // after the thread-local access, outside any method of its pool.
    let _previous = PARKED_OWNER.try_with(move |c| c.replace(Some((handle, owner))));
}

/// Drops this thread's parked count of `handle`, if that is what it holds (pool_free).
fn unpark_owner(handle: u64) {
    drop(take_parked(handle));
}

/// Stores `conn` of pool `owner`, checked out through pool handle `via` (0: none), in the
/// handle table and hands its handle out.
///
/// # Safety
/// `conn_out` is writable.
pub(crate) unsafe fn hand_out_owned(
    via: u64,
    owner: Arc<PoolObj>,
    conn: Conn,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    match conn_table::insert(Entry { conn, owner }, via) {
        Ok(handle) => {
            // SAFETY: per contract `conn_out` is writable.
            unsafe { *conn_out = conn_from_bits(handle) };
            POOL_OK
        }
        Err(entry) => {
            let _ = entry.owner.remove(entry.conn, None);
            fail(
                err_out,
                &Error::Internal("too many conns checked out in this process".into()),
            )
        }
    }
}

/// Common checks of the get family; returns the pool, held for the call, or the status to
/// return.
///
/// # Safety
/// `conn_out` is NULL or writable (`p` may be anything: it is checked).
#[inline]
unsafe fn get_args(
    p: *const pool_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> Result<Held, pool_status_t> {
    if conn_out.is_null() {
        return Err(invalid(err_out, "conn_out: NULL"));
    }
    // SAFETY: checked non-NULL.
    unsafe { *conn_out = std::ptr::null_mut() };
    Held::new(p).ok_or_else(|| {
        let what = if p.is_null() {
            "pool: NULL"
        } else {
            "pool: not a live pool handle (freed already?)"
        };
        invalid(err_out, what)
    })
}

/// Get: an idle, health-checked conn, or a newly dialed one. Blocks until a turn is free and,
/// on a miss, until the dial finishes: at most pool_timeout_ms in all (-1: forever;
/// 0: no wait for a turn, the dial itself still awaited), then POOL_ERR_TIMEOUT with a
/// message describing the pool. Waiters are served in arrival order, except that a get
/// may take a conn ahead of them while the oldest has waited less than overtake_window_ms
/// (1 ms by default; 0 keeps strict arrival order). The ping_after_idle_ms check of a long-idle conn is
/// part of the get and ends by its pool_timeout_ms too (see ping_after_idle_ms).
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
                obj.pool_timeout()
            } else {
                Wait::from_millis(timeout_ms).expect("non-negative")
            };
            // SAFETY: `cancel` is NULL or a live token, per the contract above.
            let token: Option<CancelToken> =
                unsafe { super::castable::cancel_ref(cancel) }.cloned();
            match obj.get_with(wait, token.as_ref()) {
                // SAFETY: `conn_out` is writable, checked by get_args.
                Ok(conn) => unsafe {
                    hand_out_owned(obj.handle(), obj.into_owner(), conn, conn_out, err_out)
                },
                Err(e) => fail(err_out, &e),
            }
        }
    )
}

/// Never waits, dials or resolves: an idle conn that passes the socket checks, or
/// POOL_ERR_WOULD_BLOCK (also when callers are queued in pool_get, so they keep their turn
/// order). The ping_after_idle_ms PING is skipped (it would wait for a reply), and an idle
/// conn whose session its last user changed is closed rather than restored (restoring
/// waits for a reply; see pool_stats_t.reset_conns). A miss makes
/// pool_notify_fd unreadable and, when the pool has room and nothing is queued, starts one
/// dial on a library thread whose conn goes to the idle list and makes the fd readable
/// (never more conns than pool_size). POOL_ERR_CLOSED after close, POOL_ERR_INVALID_ARG
/// for NULLs. Any thread; made for event loops (see pool_notify_fd).
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
            match obj.try_get() {
                // SAFETY: `conn_out` is writable, checked by get_args.
                Ok(conn) => unsafe {
                    hand_out_owned(obj.handle(), obj.into_owner(), conn, conn_out, null)
                },
                Err(e) => status_of(&e),
            }
        }
    )
}

/// Takes a conn handle back from the table if it was checked out from `pool`.
#[inline]
fn take_back(pool: *const pool_t, conn: *const pool_conn_t) -> Result<Entry, pool_status_t> {
    if pool.is_null() || conn.is_null() {
        return Err(POOL_ERR_INVALID_ARG);
    }
    // Both a dead handle and a conn of another pool are misuse; neither changes anything.
    // The handle the conn came through takes it back, even after its pool_free.
    let via = pool_bits(pool);
    match conn_table::take(conn_bits(conn), |_, took_via| took_via == via) {
        Ok(entry) => Ok(entry),
        Err(TakeError::Refused) => take_back_through_another(pool, conn),
        Err(TakeError::NotLive) => Err(POOL_ERR_INVALID_ARG),
    }
}

/// `take_back` through another live handle of the conn's pool (a sticky pool's sibling, a
/// node pool's other handle, a cluster conn through its node pool): looked up in the table,
/// so kept off the inlined path.
#[cold]
#[inline(never)]
fn take_back_through_another(
    pool: *const pool_t,
    conn: *const pool_conn_t,
) -> Result<Entry, pool_status_t> {
    let Some(other) = Held::new(pool) else {
        return Err(POOL_ERR_INVALID_ARG);
    };
    conn_table::take(conn_bits(conn), |e, _| other.accepts(&e.owner))
        .map_err(|_| POOL_ERR_INVALID_ARG)
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
        let status = match entry.owner.put(entry.conn) {
            Ok(()) => POOL_OK,
            Err(rejected) => status_of(&rejected.error),
        };
        park_owner(pool_bits(pool), entry.owner);
        status
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
        let status = match entry.owner.remove(entry.conn, reason.as_deref()) {
            Ok(()) => POOL_OK,
            Err(rejected) => status_of(&rejected.error),
        };
        park_owner(pool_bits(pool), entry.owner);
        status
    })
}

/// NewConn: dials a conn outside the pool's turns and idle list (it obeys max_active_conns
/// and counts in pool_len). Blocks for the dial (dial_timeout_ms per attempt, with
/// retries) on the calling thread; pool_close ends it at once (POOL_ERR_CLOSED). Release
/// it with pool_close_conn. Any thread.
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
            match obj.new_conn() {
                // SAFETY: `conn_out` is writable, checked by get_args.
                Ok(conn) => unsafe {
                    hand_out_owned(obj.handle(), obj.into_owner(), conn, conn_out, err_out)
                },
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
        match entry.owner.close_conn(entry.conn) {
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
        match Held::new(pool) {
            Some(obj) => obj.len().min(i32::MAX as usize) as i32,
            None => -1,
        }
    })
}

/// IdleLen: idle conns. -1 for NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_idle_len(pool: *const pool_t) -> i32 {
    ffi_boundary!(-1, {
        match Held::new(pool) {
            Some(obj) => obj.idle_len().min(i32::MAX as usize) as i32,
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
        let Some(obj) = Held::new(pool) else {
            return POOL_ERR_INVALID_ARG;
        };
        // SAFETY: `stats_out` is NULL or writable for its struct_size, per the header.
        unsafe { write_stats(&obj.stats(), stats_out) }
    })
}

/// Close: closes idle conns, wakes every waiter with POOL_ERR_CLOSED, fails later gets
/// with POOL_ERR_CLOSED. Conns still checked out are closed when they are put or removed.
/// A second call returns POOL_ERR_CLOSED. Does not wait for dials in flight, but ends them:
/// their sockets are shut down, so a connect or a session set-up returns at once (a
/// custom pool_dial_fn call runs to its end), and the dial threads exit. A cluster's
/// node pool (pool_cluster_node_pool) is closed by pool_cluster_close only: here it gives
/// POOL_ERR_INVALID_ARG. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_close(pool: *mut pool_t) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(obj) = Held::new(pool) else {
            return POOL_ERR_INVALID_ARG;
        };
        if let PoolKind::Node(_) = obj.kind() {
            // Its cluster owns it: pool_cluster_close closes every node pool.
            return POOL_ERR_INVALID_ARG;
        }
        match obj.close() {
            Ok(()) => POOL_OK,
            Err(e) => status_of(&e),
        }
    })
}

/// Free: closes the pool if needed and makes the handle dead. NULL is fine. Never blocks.
/// Any thread. For a cluster's node pool (pool_cluster_node_pool) it only kills that
/// handle: the pool stays open, owned by its cluster (and reachable through its other
/// handles).
///
/// Calls on other threads: a pool_t is a checked handle, like a conn handle. Every call
/// on it first takes its own reference to the pool through the handle, atomically with
/// checking that the handle is live; pool_free kills the handle atomically too. So a call
/// made before, during or after pool_free on another thread either got in, and then the
/// pool's memory lives until it returns (gets waiting for a turn, for a sticky pool's conn
/// or for a dial return POOL_ERR_CLOSED promptly, pool_new_conn too once its dial
/// returns; pool_stats and the like report the closed pool), or is refused as after
/// pool_free: POOL_ERR_INVALID_ARG ("not a live pool handle"), -1 from pool_len,
/// pool_idle_len and pool_notify_fd. One exception: a thread whose last pool_put came
/// through this handle just before the free acts once more on the closed pool through the
/// reference that put kept (POOL_ERR_CLOSED from a get). Never a read of freed memory.
///
/// After pool_free the handle stays valid for pool_put / pool_remove / pool_close_conn of
/// conns checked out through it, which close them; the pool's memory lives until the last
/// one is back. A second pool_free of the handle, or of a made-up value, does nothing.
///
/// Closing ends the pool's dials in flight: their sockets (connecting or in the session
/// set-up) are shut down and a dial waiting to retry stops at once, so its dial threads
/// end; a dial function already running (or being entered by a dial thread) is not
/// interrupted, and its conn is closed when it returns: see pool_dial_fn for how long
/// `dialer_userdata` must live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_free(pool: *mut pool_t) {
    ffi_boundary!((), {
        // NULL, a handle freed already (by another pool_free, maybe running right now on
        // another thread) or a made-up value: nothing to give back.
        let handle = pool_bits(pool);
        let Some(obj) = handle_table::POOLS.remove(handle) else {
            return;
        };
        unpark_owner(handle);
        // A cluster's node pool stays open: only the caller's reference is given back.
        if !matches!(obj.kind(), PoolKind::Node(_)) {
            let _ = obj.close();
        }
        drop(obj);
    })
}
