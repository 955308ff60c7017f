//! Every conversion between a C handle and the Rust object behind it lives here.
//!
//! - `pool_t *` is not an address: like a conn handle, it encodes a slot of
//!   `handle_table::POOLS` and a generation. The slot holds the caller's strong count of a `PoolObj` (taken out by
//!   `pool_free`); each checked-out conn holds another, and so does each call running on
//!   the pool (`pool::Held`), so the object outlives `pool_free` until the last conn is
//!   back and the last call has returned, and a freed or made-up handle is refused.
//! - `pool_cluster_t *` is the same, in `handle_table::CLUSTERS` (each call on it holds a
//!   count of the cluster while it runs, see `cluster::cluster_hold`).
//! - `pool_cancel_t *` is `Box::into_raw` of a `CancelToken`.
//! - `pool_conn_t *` is not an address at all: it encodes a slot of `conn_table` and a
//!   generation, so stale or foreign handles are detected instead of dereferenced.
//!
//! and every view of the caller's memory: byte strings (`bytes_in`), strings copied out
//! (`copy_out`) and versioned structs (`read_versioned`, `write_versioned`). The one
//! exception is the reply tree's own allocation (`reply.rs`), which never holds the
//! caller's memory.

use std::ffi::c_char;
use std::sync::Arc;

use super::handle_table;
use super::handles::{ClusterObj, PoolObj, pool_cancel_t, pool_cluster_t, pool_conn_t, pool_t};
use crate::pool::CancelToken;

/// A new handle for `obj` (see `handle_table`); `obj` back when the table is full.
pub(crate) fn pool_into_raw(obj: Arc<PoolObj>) -> Result<*mut pool_t, Arc<PoolObj>> {
    handle_table::POOLS
        .insert(obj)
        .map(|h| std::ptr::without_provenance_mut(h as usize))
}

/// A pool handle as the integer it encodes.
pub(crate) fn pool_bits(p: *const pool_t) -> u64 {
    p.addr() as u64
}

/// A new handle for `obj` (see `handle_table`); `obj` back when the table is full.
pub(crate) fn cluster_into_raw(
    obj: Arc<ClusterObj>,
) -> Result<*mut pool_cluster_t, Arc<ClusterObj>> {
    handle_table::CLUSTERS
        .insert(obj)
        .map(|h| std::ptr::without_provenance_mut(h as usize))
}

/// A cluster handle as the integer it encodes.
pub(crate) fn cluster_bits(c: *const pool_cluster_t) -> u64 {
    c.addr() as u64
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

/// The caller's `len` bytes at `p`, borrowed.
///
/// # Safety
/// `p` is readable for `len` bytes and stays so for `'a`; it may be NULL only when `len`
/// is 0.
pub(crate) unsafe fn bytes_in<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: per the contract above.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// Copies `s` and a NUL into `buf` of `cap` bytes; false when it does not fit.
///
/// # Safety
/// `buf` is writable for `cap` bytes.
pub(crate) unsafe fn copy_out(s: &str, buf: *mut c_char, cap: usize) -> bool {
    if s.len() >= cap {
        return false;
    }
    // SAFETY: s.len() + 1 <= cap bytes are writable per contract.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    true
}
