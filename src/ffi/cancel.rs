//! `pool_cancel_t`: a cancellation token (what Go's ctx.Done is).

use super::castable::{cancel_from_raw, cancel_into_raw, cancel_ref};
use super::panic::ffi_boundary;
use crate::pool::CancelToken;

pub use super::handles::{pool_cancel, pool_cancel_t};

/// A new, unfired token; release with pool_cancel_free. NULL only if memory ran out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_cancel_new() -> *mut pool_cancel_t {
    ffi_boundary!(std::ptr::null_mut(), {
        cancel_into_raw(CancelToken::new())
    })
}

/// Fires the token: every pool_get_ex waiting with it returns POOL_ERR_CANCELED, and so do
/// later ones. Any thread, never blocks for long. NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cancel_fire(cancel: *const pool_cancel_t) {
    ffi_boundary!((), {
        // SAFETY: `cancel` is NULL or a live token per the header.
        if let Some(c) = unsafe { cancel_ref(cancel) } {
            c.fire();
        }
    })
}

/// Frees the token. No call may be using it any more. NULL is fine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cancel_free(cancel: *mut pool_cancel_t) {
    ffi_boundary!((), {
        if !cancel.is_null() {
            // SAFETY: a live token from pool_cancel_new, freed once per the header.
            drop(unsafe { cancel_from_raw(cancel) });
        }
    })
}
