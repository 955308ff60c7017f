//! The pool core: plain safe Rust, knowing nothing of C.
//!
//! Names follow go-redis `internal/pool` (turn, idle list, stale, sticky) so that
//! its source maps onto the code; docs/behaviour.md says where this pool differs.

mod cancel;
mod clock;
mod conn;
mod conn_pool;
mod dial;
mod error;
mod fork;
mod health;
mod in_flight;
mod notify;
mod one_conn;
mod options;
mod pooler;
mod resolve;
mod single;
mod stats;
mod sticky;
mod sweep;
mod waiter;

pub use cancel::CancelToken;
pub use conn::Conn;
pub use conn_pool::{ConnPool, PING_CAP_WITHOUT_DIAL_TIMEOUT};
pub(crate) use dial::time_left;
pub use dial::{DialFn, Dialer};
pub use error::{Error, Result};
pub use health::Staleness;
pub(crate) use in_flight::InFlight;
pub use options::{
    DEFAULT_MAX_CONCURRENT_DIALS, DEFAULT_OVERTAKE_WINDOW, MAX_CONCURRENT_DIALS, Options, Wait,
    default_pool_size,
};
pub use pooler::{Pooler, Rejected};
pub use resolve::{TestResolver, set_test_resolver};
pub use single::SingleConnPool;
pub use stats::Stats;
pub use sticky::StickyConnPool;
