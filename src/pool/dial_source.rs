//! Dial sources above the pool: a dialer whose target is decided by something the pool
//! knows nothing of (the master the sentinels report: the sentinel module).
//!
//! go-redis keeps failover above the pool: its sentinel code hands the pool a plain dial
//! function and drops conns with a pool filter. Here the pool likewise sees only this
//! trait (`Dialer::Source`) and gives the source a `Retire` handle on itself, through
//! which a failover retires the conns to the old target.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::conn::Conn;
use super::in_flight::InFlight;
use crate::error::Result;
use crate::redis::io::Deadline;

/// Where a pool with `Dialer::Source` gets its conns. One per pool: `for_new_pool` makes
/// the copy a new pool (or a forked child's pool) keeps.
pub trait DialSource: fmt::Debug + Send + Sync + 'static {
    /// Names the target in error messages.
    fn target(&self) -> String;

    /// One dial attempt that must be over by `deadline` (None = unbounded); closing
    /// `in_flight` ends the connect at once (see `Dialer::dial_within`).
    fn dial_within(
        &self,
        deadline: Option<Instant>,
        in_flight: Option<&InFlight>,
    ) -> Result<Socket>;

    /// After the session set-up of a new conn: checks that it reached the right node (a
    /// sentinel source asks ROLE). An error refuses the conn (a dial failure). `cap`
    /// bounds the round trip on top of the conn's read timeout.
    fn check_new_conn(&self, conn: &mut Conn, cap: Option<Deadline>) -> Result<()> {
        let _ = (conn, cap);
        Ok(())
    }

    /// A conn was removed after a READONLY reply: the node it talks to was demoted.
    fn note_readonly(&self) {}

    /// The copy a new pool keeps: the same configuration, state of its own (locks that a
    /// parent thread of a fork may have held are fresh).
    fn for_new_pool(&self) -> Arc<dyn DialSource>;

    /// The pool started (or restarted in a forked child): `pool` retires its conns when
    /// the target changes. Called once per pool state.
    fn attach(self: Arc<Self>, pool: Weak<dyn Retire>) -> Result<()> {
        let _ = pool;
        Ok(())
    }

    /// The source as `Any`, so that its own module can get its concrete type back
    /// (`ConnPool::dial_source` then `Arc::downcast`).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What a dial source may ask of the pool it serves. Implemented by the pool core.
pub trait Retire: Send + Sync {
    /// Closes idle conns now; conns checked out or being dialed are closed when they come
    /// back or land (see `ConnPool::retire_all`).
    fn retire_all(self: Arc<Self>);
    /// Whether the pool was closed (a source's background thread then ends).
    fn is_closed(&self) -> bool;
    /// Asks the node at `addr` ("host:port") `ROLE` on a conn of its own, set up as the
    /// pool's conns are (TLS, AUTH, HELLO, SELECT...), all within `timeout`, then closes it:
    /// Ok(Some(role)) ("master", "slave", ...), Ok(None) when the node refuses ROLE (an
    /// ACL without it), Err when it cannot be reached or set up. Never counted in the
    /// pool's conns or stats; closing the pool ends it at once. A source uses it to learn
    /// when a failover's new master is ready (the sentinel module).
    fn probe_role(&self, addr: &str, timeout: Duration) -> Result<Option<Vec<u8>>>;
}
