//! What the process really has open, from /proc: its fds, and its TCP sockets connected to
//! a given port (to compare a pool's `total_conns` with the sockets it really holds).
//! Meaningful only while nothing else in the process opens or closes fds.

use std::collections::HashSet;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// The number of open fds of this process (the directory handle used to list them
/// included, so two calls compare equal).
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Every open fd with what it points to (`socket:[123]`, `/dev/null`, ...): for messages.
pub fn fd_listing() -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .map(|e| {
            let target = fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|e| format!("({e})"));
            format!("{} -> {target}", e.file_name().to_string_lossy())
        })
        .collect();
    out.sort();
    out
}

/// The inodes of the sockets this process has open.
fn own_socket_inodes() -> HashSet<u64> {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|t| {
            t.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// One TCP socket of this process, from /proc/net/tcp{,6}.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state code: "01" ESTABLISHED, "08" CLOSE_WAIT, "06" TIME_WAIT, ...
    pub state: String,
}

/// The TCP sockets of this process whose remote port is `port`, in any state (a conn
/// whose server died is in CLOSE_WAIT until the pool closes it, and still an open fd).
pub fn tcp_sockets_to_port(port: u16) -> Vec<TcpSocket> {
    let own = own_socket_inodes();
    let port_of = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let inode: u64 = f[9].parse().unwrap_or(0);
            if port_of(f[2]) == Some(port) && inode != 0 && own.contains(&inode) {
                out.push(TcpSocket {
                    local_port: port_of(f[1]).unwrap_or(0),
                    remote_port: port,
                    state: f[3].to_string(),
                });
            }
        }
    }
    out
}

/// Polls `cond` every few milliseconds until it returns true or `limit` passes; returns
/// whether it held. For conditions that settle asynchronously (a library thread closing
/// a socket, the server noticing a closed conn).
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
