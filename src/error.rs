//! The errors a pool operation can end with (`pool::Error` re-exports them). Each maps to
//! one stable C status code in `ffi`.

use std::io;

/// Why a pool operation failed. Messages follow go-redis where go-redis has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// go-redis `ErrClosed`.
    #[error("redis: client is closed")]
    Closed,
    /// go-redis `ErrPoolExhausted`: `max_active_conns` reached.
    #[error("redis: connection pool exhausted ({0})")]
    Exhausted(String),
    /// go-redis `ErrPoolTimeout`; the message explains the pool's state.
    #[error("{0}")]
    Timeout(String),
    /// Dialing failed; the message carries the address and the OS error.
    #[error("{message}")]
    Dial { message: String, errno: Option<i32> },
    /// A bad option, argument or misuse (double put, foreign conn).
    #[error("{0}")]
    InvalidArg(String),
    /// `try_get` found no idle conn.
    #[error("redis: no idle connection available without waiting")]
    WouldBlock,
    /// The cancel token fired while waiting.
    #[error("redis: get canceled by its cancel token")]
    Canceled,
    /// go-redis `BadConnError`.
    #[error("redis: Conn is in a bad state: {0}")]
    BadConn(String),
    /// Redis refused the session set-up of a new conn (AUTH, HELLO, SELECT, CLIENT
    /// SETNAME); the message carries the server's error text. Also: the replies to the
    /// set-up were out of step (a banner, an extra reply).
    #[error("{0}")]
    Handshake(String),
    /// A command on a conn failed mid-way (timeout, EOF, OS error); the conn is bad.
    #[error("{0}")]
    Io(String),
    /// The server sent malformed RESP; the conn is bad.
    #[error("{0}")]
    Protocol(String),
    /// A bug inside the library.
    #[error("redis: internal error: {0}")]
    Internal(String),
    /// A cluster cannot serve the request: no node could give the slot map, or the slot
    /// has no master in it.
    #[error("{0}")]
    Cluster(String),
    /// TLS failed: the handshake of a new conn (the server's certificate refused: unknown
    /// CA, wrong host name, expired; the server refused ours; not a TLS port), or a TLS
    /// record on an established conn. The message names the reason.
    #[error("{0}")]
    Tls(String),
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArg(msg.into())
    }

    pub(crate) fn dial(target: &str, err: &io::Error) -> Self {
        Error::Dial {
            message: format!("redis: dial {target}: {err}"),
            errno: err.raw_os_error(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
