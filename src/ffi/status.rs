//! Status codes: stable integers, never a Rust enum across the ABI.

use std::ffi::c_char;

use crate::pool::Error;

/// An integer status: `POOL_OK` (0) or one of the `POOL_ERR_*` codes below. Values never change.
pub type pool_status_t = i32;

/// Success.
pub const POOL_OK: pool_status_t = 0;
/// go-redis ErrClosed, "redis: client is closed": the pool was closed.
pub const POOL_ERR_CLOSED: pool_status_t = 1;
/// go-redis ErrPoolExhausted, "redis: connection pool exhausted": max_active_conns reached.
pub const POOL_ERR_EXHAUSTED: pool_status_t = 2;
/// go-redis ErrPoolTimeout, "redis: connection pool timeout": no turn (or dial) in time.
pub const POOL_ERR_TIMEOUT: pool_status_t = 3;
/// Dialing failed; the message carries the address and the OS error.
pub const POOL_ERR_DIAL: pool_status_t = 4;
/// NULL where not allowed, a bad option, a conn not checked out from this pool, double put/remove.
pub const POOL_ERR_INVALID_ARG: pool_status_t = 5;
/// pool_try_get found no idle conn; or pool_conn_read / pool_conn_write could not read or
/// write anything yet (poll pool_conn_fd for POLLIN / POLLOUT respectively).
pub const POOL_ERR_WOULD_BLOCK: pool_status_t = 6;
/// The cancel token fired while waiting.
pub const POOL_ERR_CANCELED: pool_status_t = 7;
/// BadConnError: a sticky pool's conn was removed ("redis: Conn is in a bad state: <reason>").
pub const POOL_ERR_BAD_CONN: pool_status_t = 8;
/// Redis refused AUTH / SELECT / HELLO / CLIENT SETNAME on a new conn, or the server's
/// replies to that set-up were out of step (a banner sent on accept, one reply more than
/// asked for): such a conn is never handed out.
pub const POOL_ERR_HANDSHAKE: pool_status_t = 9;
/// A read/write failure or timeout in a conn helper.
pub const POOL_ERR_IO: pool_status_t = 10;
/// Malformed RESP from the server, a reply past the pool's max_reply_bytes or
/// max_reply_elements, or out of memory for a reply (never an abort).
pub const POOL_ERR_PROTOCOL: pool_status_t = 11;
/// A bug inside the library (a caught panic); the pool involved is then closed.
pub const POOL_ERR_INTERNAL: pool_status_t = 12;
/// A Redis Cluster cannot serve the request: no node could give the slot map, or the
/// slot is not served by any master in it.
pub const POOL_ERR_CLUSTER: pool_status_t = 13;
/// TLS failed on a new conn: the server's certificate was refused (unknown CA, wrong host
/// name, expired, not yet valid), the server refused the handshake (a client certificate
/// required or refused), or the server does not speak TLS (a plain port). The message
/// says which. Not retried: the same settings fail the same way. (A TLS configuration
/// error, a missing or malformed PEM file or a key that does not match its certificate,
/// is POOL_ERR_INVALID_ARG from pool_new*.)
pub const POOL_ERR_TLS: pool_status_t = 14;

pub(crate) fn status_of(e: &Error) -> pool_status_t {
    match e {
        Error::Closed => POOL_ERR_CLOSED,
        Error::Exhausted(_) => POOL_ERR_EXHAUSTED,
        Error::Timeout(_) => POOL_ERR_TIMEOUT,
        Error::Dial { .. } => POOL_ERR_DIAL,
        Error::InvalidArg(_) => POOL_ERR_INVALID_ARG,
        Error::WouldBlock => POOL_ERR_WOULD_BLOCK,
        Error::Canceled => POOL_ERR_CANCELED,
        Error::BadConn(_) => POOL_ERR_BAD_CONN,
        Error::Handshake(_) => POOL_ERR_HANDSHAKE,
        Error::Io(_) => POOL_ERR_IO,
        Error::Protocol(_) => POOL_ERR_PROTOCOL,
        Error::Internal(_) => POOL_ERR_INTERNAL,
        Error::Cluster(_) => POOL_ERR_CLUSTER,
        Error::Tls(_) => POOL_ERR_TLS,
    }
}

/// A static, NUL-terminated description of `status`; never NULL ("unknown status" for a
/// value this library does not define). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn pool_status_str(status: pool_status_t) -> *const c_char {
    let s: &'static [u8] = match status {
        POOL_OK => b"ok\0",
        POOL_ERR_CLOSED => b"redis: client is closed\0",
        POOL_ERR_EXHAUSTED => b"redis: connection pool exhausted\0",
        POOL_ERR_TIMEOUT => b"redis: connection pool timeout\0",
        POOL_ERR_DIAL => b"dial error\0",
        POOL_ERR_INVALID_ARG => b"invalid argument\0",
        POOL_ERR_WOULD_BLOCK => b"would block: no idle connection\0",
        POOL_ERR_CANCELED => b"canceled\0",
        POOL_ERR_BAD_CONN => b"redis: Conn is in a bad state\0",
        POOL_ERR_HANDSHAKE => b"handshake refused by the server\0",
        POOL_ERR_IO => b"i/o error\0",
        POOL_ERR_PROTOCOL => b"protocol error\0",
        POOL_ERR_INTERNAL => b"internal error\0",
        POOL_ERR_CLUSTER => b"cluster cannot serve the request\0",
        POOL_ERR_TLS => b"TLS handshake failed\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}
