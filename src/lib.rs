//! redispool: a Redis connection pool with the semantics of go-redis's `internal/pool`,
//! shipped as a C ABI (`include/redispool.h`).
//!
//! `pool` is the safe core; `ffi` is the thin C skin over it.

// A conn handed back to the wrong pool comes back by value in the Err (`Rejected`,
// `conn_table::insert`), so nothing is lost: a rare misuse path, where boxing would only
// add an allocation.
#![allow(clippy::result_large_err)]

pub mod cluster;
pub mod error;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub mod pool;
pub mod redis;
pub mod sentinel;
