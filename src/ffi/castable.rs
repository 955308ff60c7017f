//! Every conversion between a C handle and the Rust object behind it lives here.
//!
//! - `pool_t *` is `Arc::into_raw` of a `PoolObj`. The caller holds one strong count (given
//!   back by `pool_free`); each checked-out conn holds another, and so does each call
//!   running on the pool (`pool::Held`), so the object outlives `pool_free` until the last
//!   conn is back and the last call has returned. `pool_ref` borrows without a count: only
//!   for calls that cannot block and never outlive their caller's count.
//! - `pool_cancel_t *` is `Box::into_raw` of a `CancelToken`.
//! - `pool_conn_t *` is not an address at all: it encodes a slot of `conn_table` and a
//!   generation, so stale or foreign handles are detected instead of dereferenced.

use std::sync::Arc;

use super::cancel::pool_cancel_t;
use super::conn::pool_conn_t;
use super::pool::{PoolObj, pool_t};
use crate::pool::CancelToken;

pub(crate) fn pool_into_raw(obj: Arc<PoolObj>) -> *mut pool_t {
    Arc::into_raw(obj) as *mut pool_t
}

/// Borrows the pool behind a handle; None for NULL.
///
/// # Safety
/// `p` is NULL or a handle from `pool_new` whose strong count has not been given back.
pub(crate) unsafe fn pool_ref<'a>(p: *const pool_t) -> Option<&'a PoolObj> {
    // SAFETY: per the contract above, a non-NULL `p` points to a live `PoolObj`.
    unsafe { p.cast::<PoolObj>().as_ref() }
}

/// A new strong count for a conn checked out from the pool.
///
/// # Safety
/// `p` is a non-NULL, live handle from `pool_new`.
pub(crate) unsafe fn pool_clone(p: *const pool_t) -> Arc<PoolObj> {
    let p = p.cast::<PoolObj>();
    // SAFETY: `p` came from `Arc::into_raw` and its count is still held by the caller.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

/// Takes back the caller's strong count.
///
/// # Safety
/// `p` is a non-NULL handle from `pool_new`, given back at most once.
pub(crate) unsafe fn pool_from_raw(p: *mut pool_t) -> Arc<PoolObj> {
    // SAFETY: `p` came from `Arc::into_raw` in `pool_into_raw` and is released once.
    unsafe { Arc::from_raw(p.cast::<PoolObj>()) }
}

/// Whether `p` is the handle of `obj` (a pointer comparison; nothing is dereferenced).
pub(crate) fn is_pool(p: *const pool_t, obj: &Arc<PoolObj>) -> bool {
    std::ptr::eq(p.cast::<PoolObj>(), Arc::as_ptr(obj))
}

pub(crate) fn cancel_into_raw(c: CancelToken) -> *mut pool_cancel_t {
    Box::into_raw(Box::new(c)).cast()
}

/// # Safety
/// `c` is NULL or a live handle from `pool_cancel_new`.
pub(crate) unsafe fn cancel_ref<'a>(c: *const pool_cancel_t) -> Option<&'a CancelToken> {
    // SAFETY: per the contract above.
    unsafe { c.cast::<CancelToken>().as_ref() }
}

/// # Safety
/// `c` is a non-NULL handle from `pool_cancel_new`, freed at most once.
pub(crate) unsafe fn cancel_from_raw(c: *mut pool_cancel_t) -> Box<CancelToken> {
    // SAFETY: `c` came from `Box::into_raw` in `cancel_into_raw`.
    unsafe { Box::from_raw(c.cast::<CancelToken>()) }
}

/// A conn handle as the integer it encodes.
pub(crate) fn conn_bits(c: *const pool_conn_t) -> u64 {
    c.addr() as u64
}

pub(crate) fn conn_from_bits(bits: u64) -> *mut pool_conn_t {
    std::ptr::without_provenance_mut(bits as usize)
}
