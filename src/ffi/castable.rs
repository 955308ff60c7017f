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

use std::sync::Arc;

use super::cancel::pool_cancel_t;
use super::cluster::{ClusterObj, pool_cluster_t};
use super::conn::pool_conn_t;
use super::handle_table;
use super::pool::{PoolObj, pool_t};
use super::subscriber::{MessageBox, SubObj, pool_message_t, pool_subscriber_t};
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

pub(crate) fn sub_into_raw(s: Box<SubObj>) -> *mut pool_subscriber_t {
    Box::into_raw(s).cast()
}

/// # Safety
/// `s` is NULL or a live handle from `sub_into_raw`.
pub(crate) unsafe fn sub_ref<'a>(s: *const pool_subscriber_t) -> Option<&'a SubObj> {
    // SAFETY: per the contract above.
    unsafe { s.cast::<SubObj>().as_ref() }
}

/// # Safety
/// `s` is a non-NULL handle from `sub_into_raw`, freed at most once.
pub(crate) unsafe fn sub_from_raw(s: *mut pool_subscriber_t) -> Box<SubObj> {
    // SAFETY: `s` came from `Box::into_raw` in `sub_into_raw`.
    unsafe { Box::from_raw(s.cast::<SubObj>()) }
}

/// A message's handle: a pointer to its `pool_message_t`, the first field of the
/// `#[repr(C)]` `MessageBox`.
pub(crate) fn msg_into_raw(m: Box<MessageBox>) -> *mut pool_message_t {
    Box::into_raw(m).cast()
}

/// # Safety
/// `m` is a non-NULL pointer from `msg_into_raw`, freed at most once.
pub(crate) unsafe fn msg_from_raw(m: *mut pool_message_t) -> Box<MessageBox> {
    // SAFETY: `m` came from `Box::into_raw` in `msg_into_raw`.
    unsafe { Box::from_raw(m.cast::<MessageBox>()) }
}
