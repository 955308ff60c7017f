//! `pool_error_t`: error detail that travels with the call, never in thread-local state.

use std::ffi::c_char;

use super::status::{POOL_ERR_INTERNAL, pool_status_t, status_of};
use crate::pool::Error;

/// Caller-owned error detail. Functions taking a `pool_error_t *err_out` fill it on failure
/// when it is not NULL, and leave it untouched on success.
#[repr(C)]
pub struct pool_error {
    /// The status the call returned.
    pub code: pool_status_t,
    /// NUL-terminated, human-readable, never empty on failure.
    pub message: [c_char; 256],
}

pub type pool_error_t = pool_error;

/// Writes `code` and `msg` (truncated on a character boundary to fit) into `err_out`.
pub(crate) fn write_error(err_out: *mut pool_error_t, code: pool_status_t, msg: &str) {
    if err_out.is_null() {
        return;
    }
    let max = 255;
    let mut end = msg.len().min(max);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let msg = if msg.is_empty() { "error" } else { &msg[..end] };
    // SAFETY: the caller passed a pointer to a writable pool_error_t (checked non-NULL).
    let e = unsafe { &mut *err_out };
    e.code = code;
    for (dst, src) in e.message.iter_mut().zip(msg.bytes()) {
        *dst = src as c_char;
    }
    e.message[msg.len()] = 0;
}

/// Reports `e` through `err_out` and returns its status.
pub(crate) fn fail(err_out: *mut pool_error_t, e: &Error) -> pool_status_t {
    let code = status_of(e);
    write_error(err_out, code, &e.to_string());
    code
}

/// Reports an argument error naming what was wrong.
pub(crate) fn invalid(err_out: *mut pool_error_t, msg: &str) -> pool_status_t {
    fail(err_out, &Error::InvalidArg(msg.to_string()))
}

/// What a caught panic turns into.
pub(crate) fn internal(err_out: *mut pool_error_t, what: &str) -> pool_status_t {
    write_error(
        err_out,
        POOL_ERR_INTERNAL,
        &format!("redis: internal error (a panic) in {what}; the pool is closed"),
    );
    POOL_ERR_INTERNAL
}

/// The prologue of every call that hands a new object out through `*out` (pool_new*,
/// pool_cluster_new*, pool_sentinel_new, the cluster gets): `*out` is cleared first, so a
/// failure never leaves garbage there; a NULL `out` or a NULL input is
/// POOL_ERR_INVALID_ARG naming it.
///
/// # Safety
/// `out` is NULL or writable.
pub(crate) unsafe fn start_constructor<T>(
    out: *mut *mut T,
    out_name: &str,
    input_is_null: bool,
    input_name: &str,
    err_out: *mut pool_error_t,
) -> Result<(), pool_status_t> {
    if out.is_null() {
        return Err(invalid(err_out, &format!("{out_name}: NULL")));
    }
    // SAFETY: checked non-NULL; writable per contract.
    unsafe { *out = std::ptr::null_mut() };
    if input_is_null {
        return Err(invalid(err_out, &format!("{input_name}: NULL")));
    }
    Ok(())
}

/// The whole of a constructor (pool_new, pool_new_url, pool_cluster_new,
/// pool_cluster_new_url, pool_sentinel_new): the prologue of `start_constructor` (`*out`
/// cleared, a NULL `out` or `input` named), then `make` on the non-NULL `input`, then
/// `publish` hands what it made to the caller through `out` (non-NULL by then); an error of
/// `make` is reported through `err_out`.
///
/// # Safety
/// `out` is NULL or writable; `make` receives `input` checked non-NULL, nothing more.
pub(crate) unsafe fn construct<I, T, O>(
    (out, out_name): (*mut *mut T, &str),
    (input, input_name): (*const I, &str),
    err_out: *mut pool_error_t,
    make: impl FnOnce(*const I) -> Result<O, Error>,
    publish: impl FnOnce(O, *mut *mut T, *mut pool_error_t) -> pool_status_t,
) -> pool_status_t {
    // SAFETY: per contract.
    if let Err(code) =
        unsafe { start_constructor(out, out_name, input.is_null(), input_name, err_out) }
    {
        return code;
    }
    match make(input) {
        Ok(made) => publish(made, out, err_out),
        Err(e) => fail(err_out, &e),
    }
}

/// A URL argument as text.
///
/// # Safety
/// `url` is non-NULL and NUL-terminated.
pub(crate) unsafe fn url_text<'a>(url: *const c_char) -> Result<&'a str, Error> {
    // SAFETY: per contract. Its length is bounded by the URL parsers before any parsing,
    // so a huge string is rejected cheaply.
    std::str::from_utf8(unsafe { std::ffi::CStr::from_ptr(url) }.to_bytes())
        .map_err(|_| Error::invalid("url: not valid UTF-8"))
}
