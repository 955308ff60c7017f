//! `SingleConnPool`: go-redis's pooler over one given conn (used for a conn's own set-up
//! and re-auth). Unlike go-redis's, it is safe to use from several threads: a get waits
//! while another caller holds the conn.

use std::sync::Arc;

use super::cancel::CancelToken;
use super::conn::Conn;
use super::one_conn::{Kind, OneConn};
use super::options::Wait;
use super::pooler::{Pooler, Rejected};
use super::stats::Stats;
use crate::error::Result;

/// Wraps one conn checked out from `parent`. get returns it, put keeps it; remove with a
/// reason makes later gets fail with `BadConn(reason)` (without one: `Closed`) and hands the
/// conn to the parent's remove; close makes later gets fail with `Closed` and hands the conn
/// back to the parent's put (now, or when it is put if checked out). The conn is never
/// closed by this pool itself.
pub struct SingleConnPool {
    core: Box<OneConn>,
}

impl SingleConnPool {
    pub fn new(parent: Arc<dyn Pooler>, conn: Conn) -> Self {
        SingleConnPool {
            core: Box::new(OneConn::new(Kind::Single, parent, Some(conn))),
        }
    }

    pub fn parent(&self) -> &Arc<dyn Pooler> {
        self.core.parent()
    }
}

impl Pooler for SingleConnPool {
    fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        self.core.get_with(wait, cancel)
    }
    fn try_get(&self) -> Result<Conn> {
        self.core.try_get()
    }
    fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        self.core.put(conn)
    }
    fn remove(&self, conn: Conn, reason: Option<&str>) -> std::result::Result<(), Rejected> {
        self.core.remove(conn, reason)
    }
    /// Passed to the parent, as go-redis does.
    fn new_conn(&self) -> Result<Conn> {
        self.core.parent().new_conn()
    }
    fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        self.core.close_conn(conn)
    }
    fn len(&self) -> usize {
        self.core.len()
    }
    fn idle_len(&self) -> usize {
        self.core.idle_len()
    }
    fn stats(&self) -> Stats {
        self.core.stats()
    }
    fn close(&self) -> Result<()> {
        self.core.close()
    }
    fn pool_timeout(&self) -> Wait {
        self.core.parent().pool_timeout()
    }
    fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        self.core.notify_fd()
    }
}
