//! `Pooler`: go-redis's `pool.Pooler` interface, shared by `ConnPool`, `SingleConnPool` and
//! `StickyConnPool`, so a single or sticky pool can sit on top of any of them.

use std::os::fd::RawFd;
use std::time::Duration;

use super::cancel::CancelToken;
use super::conn::Conn;
use super::options::Wait;
use super::stats::Stats;
use crate::error::{Error, Result};

/// A conn handed back to a pooler that does not accept it; nothing changed.
#[derive(Debug)]
pub struct Rejected {
    pub error: Error,
    pub conn: Conn,
}

/// What every pooler does. Thread-safe: any method may be called from any thread.
pub trait Pooler: Send + Sync {
    /// Get with its own wait and cancel token.
    fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn>;
    /// Never waits or dials: a conn available now, or `Error::WouldBlock`.
    fn try_get(&self) -> Result<Conn>;
    /// Gives a conn back for reuse.
    fn put(&self, conn: Conn) -> std::result::Result<(), Rejected>;
    /// Gives a conn back as unusable; `reason` says why.
    fn remove(&self, conn: Conn, reason: Option<&str>) -> std::result::Result<(), Rejected>;
    /// go-redis `NewConn`: a conn outside the turns.
    fn new_conn(&self) -> Result<Conn>;
    /// go-redis `CloseConn`.
    fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn idle_len(&self) -> usize;
    fn stats(&self) -> Stats;
    /// A second close returns `Error::Closed`.
    fn close(&self) -> Result<()>;
    /// The wait a plain `get` uses.
    fn pool_timeout(&self) -> Wait;
    /// An eventfd readable while `try_get` may find a conn; owned by the pool.
    fn notify_fd(&self) -> std::io::Result<RawFd>;
    /// Conns held longer than the leak detection threshold (id, held for), longest first;
    /// None when this pooler does not track leaks.
    fn leaks(&self) -> Option<Vec<(u64, Duration)>> {
        None
    }
}
