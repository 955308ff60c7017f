//! Redis on a pooled conn: the RESP wire format, deadline-bounded I/O on the conn's socket,
//! and the go-redis URL format. Plain safe Rust, knowing nothing of C.

pub mod addr;
pub mod deadline;
mod handshake;
pub mod io;
pub mod resp;
pub mod tls;
pub mod url;

pub use handshake::{HandshakeError, Session, valid_client_name};
