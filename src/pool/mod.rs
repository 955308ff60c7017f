//! The pool core: plain safe Rust, knowing nothing of C.
//!
//! Names follow go-redis `internal/pool` (turn, idle list, stale, sticky) so that
//! `reference/go-redis-pool.md` maps onto the code.

mod cancel;
mod clock;
mod conn;
mod conn_pool;
mod dial;
mod error;
mod fork;
mod health;
mod notify;
mod one_conn;
mod options;
mod pooler;
mod single;
mod stats;
mod sticky;
mod waiter;

pub use cancel::CancelToken;
pub use conn::Conn;
pub use conn_pool::{ConnPool, PING_CAP_WITHOUT_DIAL_TIMEOUT};
pub use dial::{DialFn, Dialer};
pub use error::{Error, Result};
pub use health::Staleness;
pub use options::{Options, Wait, default_pool_size};
pub use pooler::{Pooler, Rejected};
pub use single::SingleConnPool;
pub use stats::Stats;
pub use sticky::StickyConnPool;
