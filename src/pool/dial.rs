//! Dialing: the default TCP / unix-socket dialer (socket2) and custom dial functions.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, TcpKeepalive, Type};

use super::dial_source::DialSource;
use super::in_flight::InFlight;
use super::resolve::resolve;
use crate::error::{Error, Result};
use crate::redis::deadline::{instant_after, time_left};

/// A custom dial function: given the time it may take (None = unbounded), returns a connected
/// stream socket whose ownership passes to the pool. It may be called from library threads.
pub type DialFn = dyn Fn(Option<Duration>) -> io::Result<OwnedFd> + Send + Sync;

/// Where new conns come from.
#[derive(Clone)]
pub enum Dialer {
    /// "host:port" or "[v6]:port"; resolved on every dial.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
    Custom(Arc<DialFn>),
    /// A source above the pool decides the target (`DialSource`; the sentinels' master in
    /// the sentinel module). One per pool (`ConnPool::new` makes a fresh one).
    Source(Arc<dyn DialSource>),
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dialer::Tcp(a) => write!(f, "Tcp({a})"),
            Dialer::Unix(p) => write!(f, "Unix({})", p.display()),
            Dialer::Custom(_) => f.write_str("Custom"),
            Dialer::Source(s) => write!(f, "Source({s:?})"),
        }
    }
}

/// `sun_path` holds 108 bytes, NUL included.
const MAX_UNIX_PATH_LEN: usize = 107;

/// At most 64 characters of a user-given address, for messages (which are 255 bytes in
/// C: a long address must not push the OS error out of them).
fn elide(s: &str) -> String {
    if s.chars().count() <= 64 {
        return s.to_string();
    }
    let head: String = s.chars().take(61).collect();
    format!("{head}...")
}

fn unix_path(path: &str) -> Result<Dialer> {
    if path.len() > MAX_UNIX_PATH_LEN {
        return Err(Error::invalid(format!(
            "addr: unix socket path is {} bytes, longer than the {MAX_UNIX_PATH_LEN} a socket address holds: {:?}",
            path.len(),
            elide(path)
        )));
    }
    Ok(Dialer::Unix(PathBuf::from(path)))
}

/// TCP keepalive as go-redis 9.22: 30 s idle, 5 s interval, 3 probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

impl Dialer {
    /// Parses an address: "host:port", "[v6]:port", "/path" or "unix:/path".
    pub fn from_addr(addr: &str) -> Result<Self> {
        if let Some(path) = addr.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(Error::invalid(format!(
                    "addr: unix socket path must be absolute: {:?}",
                    elide(addr)
                )));
            }
            return unix_path(path);
        }
        if addr.starts_with('/') {
            return unix_path(addr);
        }
        // The one address rule (`redis::addr`): no spaces or signs, a port in 1..=65535,
        // an IPv6 host in brackets.
        crate::redis::addr::split_host_port(addr)
            .map_err(|e| Error::invalid(format!("addr: {e}")))?;
        Ok(Dialer::Tcp(addr.to_string()))
    }

    /// Names the target in error messages.
    pub fn target(&self) -> String {
        match self {
            Dialer::Tcp(a) => format!("tcp {}", elide(a)),
            Dialer::Unix(p) => format!("unix {}", elide(&p.display().to_string())),
            Dialer::Custom(_) => "custom dialer".to_string(),
            Dialer::Source(s) => s.target(),
        }
    }

    /// The dialer a new pool (or a forked child's pool) keeps: the same, except that a
    /// dial source gets state of its own (`DialSource::for_new_pool`).
    pub(crate) fn for_new_pool(&self) -> Dialer {
        match self {
            Dialer::Source(s) => Dialer::Source(s.for_new_pool()),
            other => other.clone(),
        }
    }

    /// The source of a `Dialer::Source`.
    pub fn source(&self) -> Option<&Arc<dyn DialSource>> {
        match self {
            Dialer::Source(s) => Some(s),
            _ => None,
        }
    }

    /// One dial attempt, bounded by `timeout` (None = unbounded). The socket is close-on-exec
    /// and in blocking mode.
    pub fn dial(&self, timeout: Option<Duration>) -> Result<Socket> {
        self.dial_within(instant_after(timeout), None)
    }

    /// One dial attempt that must be over by `deadline` (None = unbounded): name resolution
    /// and connect both stop there. While it connects, the socket is registered in
    /// `in_flight`, whose `close` ends the attempt at once. A custom dial function is given
    /// the time left and cannot be interrupted.
    pub fn dial_within(
        &self,
        deadline: Option<Instant>,
        in_flight: Option<&InFlight>,
    ) -> Result<Socket> {
        let sock = match self {
            Dialer::Tcp(addr) => dial_tcp(addr, deadline, in_flight),
            Dialer::Unix(path) => dial_unix(path, deadline, in_flight),
            Dialer::Custom(f) => time_left(deadline).and_then(|t| f(t)).and_then(adopt_fd),
            Dialer::Source(s) => return s.dial_within(deadline, in_flight),
        };
        sock.map_err(|e| {
            if in_flight.is_some_and(InFlight::is_closed) {
                Error::Closed
            } else {
                Error::dial(&self.target(), &e)
            }
        })
    }
}

/// Registers a socket being connected, so that closing the pool aborts the connect.
fn register<'a>(
    in_flight: Option<&'a InFlight>,
    sock: &Socket,
) -> io::Result<Option<super::in_flight::Registration<'a>>> {
    in_flight
        .map(|r| r.register(sock.as_raw_fd()))
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::Interrupted, "the pool closed"))
}

fn adopt_fd(fd: OwnedFd) -> io::Result<Socket> {
    let sock = Socket::from(fd);
    sock.set_cloexec(true)?;
    sock.set_nonblocking(false)?;
    Ok(sock)
}

fn dial_tcp(
    addr: &str,
    deadline: Option<Instant>,
    in_flight: Option<&InFlight>,
) -> io::Result<Socket> {
    let addrs = resolve(addr, deadline, in_flight)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses resolved");
    for sa in addrs {
        match connect_tcp(&sa, time_left(deadline)?, in_flight) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn connect_tcp(
    sa: &SocketAddr,
    timeout: Option<Duration>,
    in_flight: Option<&InFlight>,
) -> io::Result<Socket> {
    // A fresh socket per attempt: after a failed timed connect its state is unspecified.
    let sock = Socket::new(Domain::for_address(*sa), Type::STREAM.cloexec(), None)?;
    let target = SockAddr::from(*sa);
    let registered = register(in_flight, &sock)?;
    match timeout {
        Some(t) => sock.connect_timeout(&target, t)?,
        None => sock.connect(&target)?,
    }
    drop(registered);
    sock.set_nonblocking(false)?;
    sock.set_tcp_nodelay(true)?;
    let ka = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    sock.set_tcp_keepalive(&ka)?;
    Ok(sock)
}

fn dial_unix(
    path: &PathBuf,
    deadline: Option<Instant>,
    in_flight: Option<&InFlight>,
) -> io::Result<Socket> {
    let sock = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    let target = SockAddr::unix(path)?;
    let registered = register(in_flight, &sock)?;
    match time_left(deadline)? {
        Some(t) => sock.connect_timeout(&target, t)?,
        None => sock.connect(&target)?,
    }
    drop(registered);
    sock.set_nonblocking(false)?;
    Ok(sock)
}
