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

/// A C struct that grows over versions: it starts with `size_t struct_size`, fields are
/// only ever appended, and the caller says in `struct_size` which version it has.
///
/// The one rule, for every such struct: `struct_size` is at least `MIN_SIZE`, the size of
/// the struct's first published version (every caller has at least that), else
/// POOL_ERR_INVALID_ARG. A larger one is a later version: its unknown tail is ignored when
/// read and never written. Fields a caller's version lacks read as their defaults. Structs
/// the library fills (pool_stats_t, pool_cluster_info_t) also take 0 for "this header's
/// sizeof" (`out_size`).
///
/// # Safety
/// The implementor is `#[repr(C)]`, its first field is `struct_size: usize`, and its fields
/// are plain data valid for any bit pattern (pointers, integers, `Option<fn>`), except the
/// bytes `fix_bytes` repairs.
pub(crate) unsafe trait Versioned: Sized {
    /// The C type name, for messages: "pool_options_t".
    const NAME: &'static str;
    /// What a caller does to get `struct_size` right, for messages.
    const HINT: &'static str;
    /// The size of the first published version.
    const MIN_SIZE: usize;
    /// The value of every field a caller's version lacks.
    fn defaults() -> Self;
    /// Makes the first `n` bytes of `*base`, copied from C, valid Rust values (a C bool
    /// byte other than 0 or 1).
    ///
    /// # Safety
    /// `base` points at a `Self` whose first `n` bytes were just copied from C.
    unsafe fn fix_bytes(_base: *mut u8, _n: usize) {}
}

/// The message for a `struct_size` below the first version's.
fn too_small<T: Versioned>(size: usize) -> String {
    format!(
        "struct_size: {size} is smaller than the first {} ({} bytes); {}",
        T::NAME,
        T::MIN_SIZE,
        T::HINT
    )
}

/// The caller's struct as the current version: min(struct_size, sizeof) bytes copied over
/// the defaults; Err (a POOL_ERR_INVALID_ARG message) for a `struct_size` below MIN_SIZE.
/// No reference to the caller's struct is made: it may be shorter than `T`.
///
/// # Safety
/// `p` is non-NULL, aligned, and readable for its `struct_size` bytes.
pub(crate) unsafe fn read_versioned<T: Versioned>(p: *const T) -> Result<T, String> {
    // SAFETY: non-NULL and aligned per contract; struct_size is the first field of every
    // version.
    let size = unsafe { p.cast::<usize>().read() };
    if size < T::MIN_SIZE {
        return Err(too_small::<T>(size));
    }
    let n = size.min(size_of::<T>());
    let mut out = std::mem::MaybeUninit::new(T::defaults());
    let base = out.as_mut_ptr().cast::<u8>();
    // SAFETY: the caller's struct is readable for n <= struct_size bytes and `out` writable
    // for n <= sizeof(T); they do not overlap. Per `Versioned`, every field is valid for
    // the bytes copied once `fix_bytes` has run.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), base, n);
        T::fix_bytes(base, n);
        Ok(out.assume_init())
    }
}

/// The size the caller gave a struct the library fills: its struct_size, 0 meaning this
/// header's sizeof.
///
/// # Safety
/// `out` is non-NULL, aligned, and its struct_size is readable.
pub(crate) unsafe fn out_size<T: Versioned>(out: *const T) -> usize {
    // SAFETY: per contract; struct_size is the first field of every version.
    match unsafe { out.cast::<usize>().read() } {
        0 => size_of::<T>(),
        n => n,
    }
}

/// Writes `value` into the caller's struct of `size` bytes (the version it was compiled
/// with): only its first min(size, sizeof) bytes, with `struct_size` set to that count,
/// which it returns. Err (a POOL_ERR_INVALID_ARG message), writing nothing, for a `size`
/// below MIN_SIZE.
///
/// # Safety
/// `out` is non-NULL, aligned, and writable for `size` bytes.
pub(crate) unsafe fn write_versioned<T: Versioned>(
    value: T,
    out: *mut T,
    size: usize,
) -> Result<usize, String> {
    if size < T::MIN_SIZE {
        return Err(too_small::<T>(size));
    }
    let n = size.min(size_of::<T>());
    let value = std::mem::ManuallyDrop::new(value);
    // SAFETY: `out` is writable for n <= size bytes and `value` readable for n <= sizeof(T);
    // n >= MIN_SIZE >= sizeof(usize) covers struct_size, the first field.
    unsafe {
        std::ptr::copy_nonoverlapping((&*value as *const T).cast::<u8>(), out.cast::<u8>(), n);
        out.cast::<usize>().write(n);
    }
    Ok(n)
}
