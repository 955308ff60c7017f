//! redispool: a Redis connection pool with the semantics of go-redis's `internal/pool`,
//! shipped as a C ABI (`include/redispool.h`).
//!
//! Layers, each importing only from those below it:
//! - `error`: the one error type (`pool::Error`);
//! - `redis`: RESP, deadlines, conn I/O, the session set-up, the URL format;
//! - `pool`: the safe core (it imports nothing from the layers above);
//! - `cluster` and `sentinel`: built on the core (`NodePool`, `pool::DialSource`);
//! - `ffi`: the thin C skin over all of them.

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
pub mod pubsub;
pub mod redis;
pub mod sentinel;
