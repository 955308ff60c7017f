//! One pooled connection: its socket, identity and the timestamps the health check reads.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::Socket;

/// A connection owned by a pool. Dropping it closes the socket and drops its user data.
pub struct Conn {
    sock: Socket,
    id: u64,
    pool_id: u64,
    pub(crate) created_at: Instant,
    pub(crate) used_at: Instant,
    pub(crate) expires_at: Option<Instant>,
    /// False for conns from `new_conn`: they live outside the turns and the idle list.
    pub(crate) pooled: bool,
    userdata: Option<Box<dyn Any + Send>>,
}

impl Conn {
    pub(crate) fn new(
        sock: Socket,
        id: u64,
        pool_id: u64,
        expires_at: Option<Instant>,
        pooled: bool,
    ) -> Self {
        let now = Instant::now();
        Conn {
            sock,
            id,
            pool_id,
            created_at: now,
            used_at: now,
            expires_at,
            pooled,
            userdata: None,
        }
    }

    /// Unique within its pool, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn pool_id(&self) -> u64 {
        self.pool_id
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    /// When the conn was dialed.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }

    /// Whether the conn came from `new_conn` (outside the pool).
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Data the caller attached; it survives put/get and is dropped when the conn closes.
    pub fn userdata(&self) -> Option<&(dyn Any + Send)> {
        self.userdata.as_deref()
    }

    pub fn set_userdata(&mut self, data: Option<Box<dyn Any + Send>>) {
        self.userdata = data;
    }

    /// Detaches the user data without dropping it.
    pub fn take_userdata_box(&mut self) -> Option<Box<dyn Any + Send>> {
        self.userdata.take()
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("fd", &self.fd())
            .field("pooled", &self.pooled)
            .finish()
    }
}
