//! The competitor pools written in Rust (go-redis runs in its own process: see goredis.rs).

use std::net::TcpStream;

pub(crate) mod fifo;
pub(crate) mod mutex_condvar;

/// `n` TCP conns to `addr` with TCP_NODELAY, as the baselines hold them.
pub(crate) fn connect_all(addr: &str, n: usize) -> impl Iterator<Item = TcpStream> + '_ {
    (0..n).map(move |_| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s
    })
}
