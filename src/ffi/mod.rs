//! The C ABI: a thin skin over `crate::pool`. One file per handle type; every exported body
//! sits inside `ffi_boundary!` so no panic crosses the ABI.
#![allow(non_camel_case_types)]
// Each exported function's contract (which pointers, who owns what) is its doc comment,
// which cbindgen copies into the header; a Rust-only `# Safety` heading would add nothing.
#![allow(clippy::missing_safety_doc)]

mod castable;
pub(crate) mod conn_table;
mod handle_table;
mod handles;
pub mod limits;
mod panic;

pub mod cancel;
pub mod cluster;
pub mod conn;
pub mod error;
pub mod events;
pub mod nonblocking;
pub mod options;
pub mod pool;
pub mod reply;
pub mod sentinel;
pub mod stats;
pub mod status;
pub mod subscriber;

use std::ffi::c_char;

/// The library version, e.g. "0.1.0". Static, never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn pool_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
