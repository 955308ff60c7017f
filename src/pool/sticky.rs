//! `StickyConnPool`: go-redis's pooler for a session on one conn (`Client.Conn()`,
//! transactions, pipelines). The first get borrows a conn from the parent; every later get
//! returns that same conn, waiting while another caller holds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::cancel::CancelToken;
use super::conn::Conn;
use super::one_conn::{Kind, OneConn};
use super::options::Wait;
use super::pooler::{Pooler, Rejected};
use super::stats::Stats;
use crate::error::{Error, Result};

/// A handle to a sticky pool. `share` gives another handle to the same pool (go-redis's
/// sticky-over-sticky reference count); each handle is closed once, and the pool closes
/// with its last handle: the conn then goes back to the parent (put, or remove when bad;
/// a conn checked out at that moment goes back when it is put).
///
/// After `remove(conn, reason)` gets fail with `BadConn(reason)` until `reset`, which
/// hands the bad conn to the parent's remove and lets the next get borrow a new one.
pub struct StickyConnPool {
    core: Arc<OneConn>,
    closed: AtomicBool,
}

impl StickyConnPool {
    pub fn new(parent: Arc<dyn Pooler>) -> Self {
        StickyConnPool {
            core: Arc::new(OneConn::new(Kind::Sticky, parent, None)),
            closed: AtomicBool::new(false),
        }
    }

    /// Another handle to the same pool (its own close).
    pub fn share(&self) -> Result<StickyConnPool> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.core.add_handle()?;
        Ok(StickyConnPool {
            core: self.core.clone(),
            closed: AtomicBool::new(false),
        })
    }

    /// Whether both handles are the same pool.
    pub fn same_pool(&self, other: &StickyConnPool) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    pub fn reset(&self) -> Result<()> {
        self.check_open()?;
        self.core.reset()
    }

    pub fn parent(&self) -> &Arc<dyn Pooler> {
        self.core.parent()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

impl Pooler for StickyConnPool {
    fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        self.check_open()?;
        self.core.get_with(wait, cancel)
    }
    fn try_get(&self) -> Result<Conn> {
        self.check_open()?;
        self.core.try_get()
    }
    /// Accepted through any handle, closed or not: a conn checked out before a close
    /// still has to go back.
    fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        self.core.put(conn)
    }
    fn remove(&self, conn: Conn, reason: Option<&str>) -> std::result::Result<(), Rejected> {
        self.core.remove(conn, reason)
    }
    /// Passed to the parent, as go-redis does.
    fn new_conn(&self) -> Result<Conn> {
        self.check_open()?;
        self.core.parent().new_conn()
    }
    fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        self.core.close_conn(conn)
    }
    fn len(&self) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.core.len()
    }
    fn idle_len(&self) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.core.idle_len()
    }
    fn stats(&self) -> Stats {
        self.core.stats()
    }
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        self.core.close()
    }
    fn pool_timeout(&self) -> Wait {
        self.core.parent().pool_timeout()
    }
    fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        self.core.notify_fd()
    }
}
