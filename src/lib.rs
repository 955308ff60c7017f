//! redispool: a Redis connection pool with the semantics of go-redis's `internal/pool`,
//! shipped as a C ABI (`include/redispool.h`).
//!
//! `pool` is the safe core; `ffi` is the thin C skin over it.

pub mod ffi;
pub mod pool;
pub mod redis;
