//! The handles of the C API: the opaque C types (`pool_t`, `pool_cluster_t`, `pool_conn_t`,
//! `pool_cancel_t`) and the Rust objects a pool or cluster handle stands for (`PoolObj`,
//! `ClusterObj`). Every other `ffi` file builds on these; this one imports nothing of `ffi`,
//! so `ffi` has no import cycle (castable.rs converts between the two).

use std::sync::{Arc, OnceLock, Weak};

use crate::cluster::{Cluster, NodePool};
use crate::pool::{
    CancelToken, Conn, ConnPool, Pooler, Rejected, SingleConnPool, Stats, StickyConnPool, Wait,
};

/// A pooler: a connection pool (pool_new, pool_new_url), a single-conn pool
/// (pool_single_new) or a sticky pool (pool_sticky_new). Every pool_* function of the
/// Pooler interface works on all three. Opaque.
pub struct pool {
    _opaque: [u8; 0],
}

/// See `struct pool`.
pub type pool_t = pool;

/// What a `pool_t *` stands for (through `handle_table::POOLS`).
pub(crate) struct PoolObj {
    kind: PoolKind,
}

impl PoolObj {
    pub(crate) fn new(kind: PoolKind) -> PoolObj {
        PoolObj { kind }
    }

    pub(crate) fn kind(&self) -> &PoolKind {
        &self.kind
    }
}

/// The poolers a `pool_t *` can be.
pub(crate) enum PoolKind {
    Conn(ConnPool),
    Single(SingleConnPool),
    Sticky(StickyConnPool),
    /// The pool of one node of a cluster (pool_cluster_node_pool): owned by the cluster.
    Node(ClusterNode),
}

/// A cluster node's pool, and the way back to its cluster (for MOVED / ASK).
pub(crate) struct ClusterNode {
    pub(crate) pool: ConnPool,
    /// "host:port".
    pub(crate) addr: String,
    pub(crate) cluster: Weak<ClusterObj>,
    /// The cluster's handle (as an integer), set when it is handed out; it stays valid
    /// after pool_cluster_free for giving back the conns of this node.
    pub(crate) cluster_handle: Arc<OnceLock<u64>>,
}

impl NodePool for PoolObj {
    fn conn_pool(&self) -> &ConnPool {
        match &self.kind {
            PoolKind::Node(n) => &n.pool,
            PoolKind::Conn(p) => p,
            // The cluster only ever makes Node objects (see pool_cluster_new).
            PoolKind::Single(_) | PoolKind::Sticky(_) => unreachable!("not a cluster node"),
        }
    }
}

impl PoolObj {
    pub(crate) fn pooler(&self) -> &dyn Pooler {
        match &self.kind {
            PoolKind::Conn(p) => p,
            PoolKind::Single(p) => p,
            PoolKind::Sticky(p) => p,
            PoolKind::Node(n) => &n.pool,
        }
    }

    /// The cluster of a node pool.
    pub(crate) fn cluster(&self) -> Option<(&Weak<ClusterObj>, &str)> {
        match &self.kind {
            PoolKind::Node(n) => Some((&n.cluster, &n.addr)),
            _ => None,
        }
    }

    /// The handle of the cluster of a node pool.
    pub(crate) fn cluster_handle(&self) -> Option<u64> {
        match &self.kind {
            PoolKind::Node(n) => n.cluster_handle.get().copied(),
            _ => None,
        }
    }

    /// Whether a conn checked out through `owner` may come back through `self`: the same
    /// handle, or another handle of the same sticky pool.
    pub(crate) fn accepts(&self, owner: &PoolObj) -> bool {
        if std::ptr::eq(self, owner) {
            return true;
        }
        match (&self.kind, &owner.kind) {
            (PoolKind::Sticky(a), PoolKind::Sticky(b)) => a.same_pool(b),
            _ => false,
        }
    }
}

/// Children (single and sticky pools) hold their parent's object, which keeps it alive
/// after the caller's pool_free of the parent.
///
/// Get, put and the pool timeout call a connection pool's own methods directly (the hot
/// path: no call through `dyn Pooler`), the other kinds through `pooler`.
impl Pooler for PoolObj {
    #[inline]
    fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> crate::pool::Result<Conn> {
        match &self.kind {
            PoolKind::Conn(p) => p.get_with(wait, cancel),
            _ => self.pooler().get_with(wait, cancel),
        }
    }
    fn try_get(&self) -> crate::pool::Result<Conn> {
        self.pooler().try_get()
    }
    #[inline]
    fn put(&self, conn: Conn) -> Result<(), Rejected> {
        match &self.kind {
            PoolKind::Conn(p) => p.put(conn),
            _ => self.pooler().put(conn),
        }
    }
    fn remove(&self, conn: Conn, reason: Option<&str>) -> Result<(), Rejected> {
        self.pooler().remove(conn, reason)
    }
    fn new_conn(&self) -> crate::pool::Result<Conn> {
        self.pooler().new_conn()
    }
    fn close_conn(&self, conn: Conn) -> Result<(), Rejected> {
        self.pooler().close_conn(conn)
    }
    fn len(&self) -> usize {
        self.pooler().len()
    }
    fn idle_len(&self) -> usize {
        self.pooler().idle_len()
    }
    fn stats(&self) -> Stats {
        self.pooler().stats()
    }
    fn close(&self) -> crate::pool::Result<()> {
        self.pooler().close()
    }
    #[inline]
    fn pool_timeout(&self) -> Wait {
        match &self.kind {
            PoolKind::Conn(p) => p.pool_timeout(),
            _ => self.pooler().pool_timeout(),
        }
    }
    fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        self.pooler().notify_fd()
    }
    fn leaks(&self) -> Option<Vec<(u64, std::time::Duration)>> {
        self.pooler().leaks()
    }
}

/// A Redis Cluster: a slot map and one connection pool per node, created on demand with
/// the same options. Opaque; thread-safe.
pub struct pool_cluster {
    _opaque: [u8; 0],
}

/// See `struct pool_cluster`.
pub type pool_cluster_t = pool_cluster;

/// What a `pool_cluster_t *` stands for (through `handle_table::CLUSTERS`).
pub(crate) type ClusterObj = Cluster<PoolObj>;

/// One checked-out connection. Opaque: the handle is not a memory address, so a stale
/// handle (after put/remove) is detected by every function instead of dereferenced.
pub struct pool_conn {
    _opaque: [u8; 0],
}

/// See `struct pool_conn`.
pub type pool_conn_t = pool_conn;

/// A cancellation token. Opaque.
pub struct pool_cancel {
    _opaque: [u8; 0],
}

/// See `struct pool_cancel`.
pub type pool_cancel_t = pool_cancel;
