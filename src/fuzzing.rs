//! Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers that make crate-internal
//! steps callable from outside the crate. Not part of the API; nothing else should use them.

use std::ffi::CString;

use crate::ffi::options::pool_options;
use crate::pool::{Error, Options};
use crate::redis::url::UrlConfig;

/// The C options a parsed URL stands for (what `pool_new_url` builds before `to_core`), and
/// the strings they point into: keep both alive together.
pub fn url_to_c_options(cfg: &UrlConfig) -> Result<(pool_options, Vec<CString>), Error> {
    crate::ffi::options::options_from_url(cfg)
}

/// C options to validated core options: everything `pool_new` does short of starting the
/// pool (the conversion, then the checks `ConnPool::new` runs first).
///
/// # Safety
/// The string pointers in `o` are NULL or NUL-terminated, and a non-NULL `o.dialer` is a
/// callable dial function.
pub unsafe fn core_options(o: &pool_options) -> Result<Options, Error> {
    // SAFETY: per this function's contract.
    unsafe { crate::ffi::options::to_core(o) }?.validate()
}
