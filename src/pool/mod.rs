//! The pool core: plain safe Rust, knowing nothing of C.
//!
//! Names follow go-redis `internal/pool` (turn, idle list, stale, sticky), so that its
//! source (`internal/pool/pool.go`, `conn.go`) maps onto the code. The behaviour contract,
//! and where it differs from go-redis on purpose, is documented in `docs/behaviour.md`.
//!
//! The core imports nothing from the layers above it (`ffi`, `sentinel`, `cluster`): they
//! reach it through its own abstractions (`DialSource` and `Retire` for a dialer whose
//! target changes, `HandleToken` for the C skin's handle slot); the cluster is generic
//! over its own `NodePool`, built on `ConnPool`.

mod cancel;
mod clock;
mod conn;
mod conn_pool;
mod dial;
mod dial_source;
mod fork;
mod handle_token;
mod health;
mod in_flight;
mod notify;
mod one_conn;
mod options;
mod pooler;
mod resolve;
mod settings;
mod single;
mod stats;
mod sticky;
mod sweep;
mod waiter;

pub use crate::error::{Error, Result};
pub use cancel::CancelToken;
pub use conn::{Conn, Progress, RawWait, Want};
pub use conn_pool::{ConnPool, PING_CAP_WITHOUT_DIAL_TIMEOUT};
pub use dial::{DialFn, Dialer};
pub use dial_source::{DialSource, Retire};
pub use handle_token::HandleToken;
pub use health::Staleness;
pub use in_flight::InFlight;
pub use options::{
    DEFAULT_MAX_CONCURRENT_DIALS, DEFAULT_OVERTAKE_WINDOW, MAX_CONCURRENT_DIALS, Options, Wait,
    default_pool_size,
};
pub use pooler::{Pooler, Rejected};
pub use resolve::{TestResolver, set_test_resolver};
pub use settings::Settings;
pub use single::SingleConnPool;
pub use stats::Stats;
pub use sticky::StickyConnPool;
