//! The health check on get (go-redis `isHealthyConn`), cheapest test first.

use std::time::Duration;

use super::clock;

use super::conn::Conn;
use crate::redis::io::{Deadline, IoError};
use crate::redis::resp::Reply;

/// Why a conn was found stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    Expired,
    IdleTooLong,
    PeerClosed,
    UnreadData,
    SocketError,
    /// The PING check for long-idle conns got no PONG in time.
    NoPong,
    /// A conn whose session changed could not be restored (`Conn::restore`).
    NotRestored,
}

/// A pool's health-check thresholds in nanoseconds, converted once from its `Options`
/// (a `Duration` to nanoseconds is 128-bit arithmetic, not worth doing on every get).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_idle_ns: Option<u64>,
    pub bypass_ns: Option<u64>,
    pub ping_after_ns: Option<u64>,
    /// Read the coarse clock on get and put: every threshold (lifetime included) is at
    /// least `COARSE_TICKS_PER_THRESHOLD` coarse ticks long, so a reading one tick late
    /// cannot matter. Off for short thresholds (tests and odd setups), which then keep
    /// the precise clock.
    pub coarse: bool,
}

impl Limits {
    pub(crate) fn new(
        max_idle: Option<Duration>,
        bypass: Option<Duration>,
        ping_after: Option<Duration>,
        lifetime: Option<Duration>,
    ) -> Self {
        let max_idle_ns = max_idle.map(clock::ns);
        let bypass_ns = bypass.map(clock::ns);
        let ping_after_ns = ping_after.map(clock::ns);
        let shortest = [
            max_idle_ns,
            bypass_ns,
            ping_after_ns,
            lifetime.map(clock::ns),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        let coarse = clock::coarse_resolution_ns()
            .checked_mul(clock::COARSE_TICKS_PER_THRESHOLD)
            .is_some_and(|enough| shortest >= enough);
        Limits {
            max_idle_ns,
            bypass_ns,
            ping_after_ns,
            coarse,
        }
    }

    /// Now, on the clock these thresholds are checked against.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if self.coarse {
            clock::now_coarse_ns()
        } else {
            clock::now_ns()
        }
    }
}

/// Lifetime and idle-time checks, no syscall.
pub(crate) fn check_age(conn: &Conn, now: u64, max_idle_ns: Option<u64>) -> Result<(), Staleness> {
    if conn.expires_at() <= now {
        return Err(Staleness::Expired);
    }
    if max_idle_ns.is_some_and(|m| now.saturating_sub(conn.used_at()) >= m) {
        return Err(Staleness::IdleTooLong);
    }
    Ok(())
}

/// A non-blocking one-byte `MSG_PEEK`: EOF, bytes nobody asked for, or an error mean stale.
/// Works whatever blocking mode the caller left the socket in. On a TLS conn the records
/// waiting are read and decrypted instead (`io::peek_byte`): session tickets and other
/// post-handshake messages leave the conn healthy, a `close_notify` or EOF is
/// `PeerClosed`, application data `UnreadData`.
pub(crate) fn check_socket(conn: &mut Conn) -> Result<(), Staleness> {
    match conn.peek_input() {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Staleness::UnreadData),
        Err(IoError::Eof) => Err(Staleness::PeerClosed),
        Err(_) => Err(Staleness::SocketError),
    }
}

/// Age, buffered input, then the socket peek, unless the conn's fd was not lent out for
/// raw I/O, it is not new and no sweep reported it (`Conn::needs_peek`), and either a
/// recent sweep vouches for it (`vouched`, see `sweep`) or it was given back less than
/// `bypass` ago (HikariCP's alive-bypass window): then the peek is skipped. Ok(true) when
/// the socket was peeked and found clean.
pub(crate) fn check(
    conn: &mut Conn,
    now: u64,
    limits: &Limits,
    vouched: bool,
) -> Result<bool, Staleness> {
    check_age(conn, now, limits.max_idle_ns)?;
    if conn.has_buffered_input() && !conn.session_changed() {
        return Err(Staleness::UnreadData);
    }
    if !conn.needs_peek()
        && (vouched
            || limits
                .bypass_ns
                .is_some_and(|b| now.saturating_sub(conn.used_at()) < b))
    {
        return Ok(false);
    }
    // Unread messages and replies are expected on it: `check_restore` drains them.
    if conn.session_changed() {
        return Ok(false);
    }
    check_socket(conn).map(|()| true)
}

/// A conn given back with its session changed (subscribe mode, MULTI, WATCH, SELECT, ...)
/// is restored to the pool's set-up before it is handed out (`Conn::restore`); true when
/// it was. `cap` as `check_ping`'s.
pub(crate) fn check_restore(
    conn: &mut Conn,
    session: &crate::redis::Session,
    cap: impl FnOnce() -> Option<Deadline>,
) -> Result<bool, Staleness> {
    if !conn.session_changed() {
        return Ok(false);
    }
    match conn.restore(session, cap()) {
        Ok(()) => Ok(true),
        Err(_) => Err(Staleness::NotRestored),
    }
}

/// The PING check (redis-client's idle_timeout idea): a conn idle for `after` or longer
/// must answer PONG before it is handed out, by the conn's read timeout or `cap()`,
/// whichever comes first (`cap` is the get's own bound; asked only when a PING is sent).
pub(crate) fn check_ping(
    conn: &mut Conn,
    now: u64,
    after_ns: Option<u64>,
    cap: impl FnOnce() -> Option<Deadline>,
) -> Result<(), Staleness> {
    let Some(after) = after_ns else {
        return Ok(());
    };
    if now.saturating_sub(conn.used_at()) < after {
        return Ok(());
    }
    // A PONG with bytes behind it leaves the conn out of step (`Conn::command` marks it
    // broken): it must not be handed out.
    match conn.command_until(&[b"PING"], cap()) {
        Ok(Reply::Status(s)) if s == b"PONG" && conn.broken_reason().is_none() => Ok(()),
        _ => Err(Staleness::NoPong),
    }
}
