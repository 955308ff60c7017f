//! One pooled connection: its socket, identity and the timestamps the health check reads.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use socket2::Socket;

use super::handle_token::HandleToken;
use crate::error::Error;
use crate::redis::io::{self, IoError};
use crate::redis::resp::{Parser, Reply, ReplyLimits};
use crate::redis::{HandshakeError, Session};

mod started;
pub use started::{Progress, Want};

/// The Redis I/O state of a conn's commands (reply parser, command buffer): borrowed from
/// the thread's spare (`SPARE_IO`) for a command and given back after it, so a conn holds
/// one only while a command runs (or while a reply left bytes unread, or a command started
/// without waiting is unfinished: `Conn::start`).
struct ConnIo {
    parser: Parser,
    out: Vec<u8>,
    /// The command started without waiting (`Conn::start`), kept for reuse.
    started: started::Started,
}

/// The most command-encoding capacity a spare `ConnIo` keeps (a huge command's buffer
/// is freed, not kept by the thread).
const SPARE_OUT_MAX: usize = 64 * 1024;

thread_local! {
    /// The thread's spare I/O state. A conn borrows it for a command and gives it back
    /// when the reply left nothing unread, so an idle conn keeps no read buffer (the
    /// parser's 32 KiB) and a thread running commands on many conns in turn reuses one:
    /// no allocation per command, one buffer per thread instead of one per conn.
    static SPARE_IO: Cell<Option<Box<ConnIo>>> = const { Cell::new(None) };
}

impl ConnIo {
    fn new(limits: ReplyLimits) -> Box<Self> {
        Box::new(ConnIo {
            parser: Parser::with_limits(limits),
            out: Vec::new(),
            started: started::Started::default(),
        })
    }

    /// The thread's spare (see `SPARE_IO`), or a new one.
    fn take(limits: ReplyLimits) -> Box<Self> {
        match SPARE_IO.try_with(Cell::take).ok().flatten() {
            Some(mut cio) => {
                cio.parser.set_limits(limits);
                cio
            }
            None => ConnIo::new(limits),
        }
    }

    /// Keeps a clean one as the thread's spare (see `SPARE_IO`).
    fn give_back(mut cio: Box<Self>) {
        debug_assert!(cio.parser.is_clean());
        if cio.out.capacity() > SPARE_OUT_MAX {
            cio.out = Vec::new();
        }
        cio.out.clear();
        // A thread exiting has no spare any more: the state is dropped.
        let _ = SPARE_IO.try_with(|spare| spare.set(Some(cio)));
    }
}

/// A connection owned by a pool. Dropping it closes the socket and drops its user data.
///
/// One pointer wide: a conn travels by value through every get and put (idle list, return
/// values, the C handle table), so its state lives in one heap block made at dial time.
pub struct Conn {
    s: Box<ConnState>,
}

struct ConnState {
    sock: Socket,
    /// The fork generation it was dialed in: in a forked child the parent's conns are
    /// closed when given back and refuse commands, never shared with the parent.
    fork_generation: u32,
    id: u64,
    pool_id: u64,
    created_at: Instant,
    /// `clock::now_ns()` when last given back (or handed out).
    used_at: u64,
    /// `clock::now_ns()` when its lifetime ends; u64::MAX = never.
    expires_at: u64,
    /// False for conns from `new_conn`: they live outside the turns and the idle list.
    pooled: bool,
    userdata: Option<Box<dyn Any + Send>>,
    /// Some only during a command, or when its reply left bytes unread (see `ConnIo`).
    io: Option<Box<ConnIo>>,
    /// What one reply of the conn's own commands may hold (the pool's `reply_limits`).
    reply_limits: ReplyLimits,
    /// Read and write timeouts of the conn's own commands, in milliseconds (0 = none).
    timeouts_ms: [u32; 2],
    /// The socket's SO_RCVTIMEO is the read timeout (`set_timeouts`), so a command may wait
    /// for its reply in a blocking `recv` instead of `poll` + `recv`.
    recv_bounded: bool,
    /// The session negotiated RESP3 (HELLO 3): push frames are out-of-band messages to
    /// skip. On a RESP2 conn a push frame is a protocol error.
    resp3: bool,
    /// Why the stream must be looked at before it is trusted, as `PEEK_*` bits; 0 on the
    /// hot path. One byte, so the get's health check tests it as it tested one flag.
    peek: u8,
    /// It joined its pool's epoll set (`sweep::SweepState::register`): sweeps answer for it.
    swept: bool,
    /// When the sweep that vouches for it began (`sweep::SweepState::stamp`, by the get that
    /// took it), in `clock::now_ns()` time; 0 = none. Cleared when it is handed out.
    swept_at: u64,
    /// How the session differs from the one the pool set up, as `SESSION_*` bits, tracked
    /// from the names of the commands sent (the server is never asked); 0 for a conn used
    /// for plain commands. A conn with any bit set is closed when given back, never pooled.
    session: u8,
    /// The db the pool's set-up selected (a SELECT of another db changes the session).
    session_db: u32,
    /// Why the conn is out of step with the server (a command failed mid-way, or bytes
    /// nobody asked for followed a reply): it is removed, never pooled, when given back.
    /// Boxed twice so the field is one word: an idle conn is never broken, and every conn
    /// pays for the field (issue 22: at most 256 heap bytes per idle conn).
    broken: Option<Box<Box<str>>>,
    /// The pool's retire epoch when its dial began (`ConnPool::retire_all`): a conn of an
    /// older epoch is closed when given back, never pooled again.
    epoch: u64,
    /// A READONLY error reply marks the conn broken: on a pool that follows a failover
    /// (sentinel), such a conn talks to a demoted master (go-redis closes it too).
    close_on_readonly: bool,
    /// On a pool whose target changes (a dial source: sentinel), the pool's retire epoch:
    /// once it differs from `epoch`, the conn's commands are refused (its node is being
    /// replaced), before the conn is even given back. None elsewhere.
    retire_signal: Option<Arc<AtomicU64>>,
    /// A token a layer above the pool keeps here for the conn's lifetime: the C ABI's
    /// handle-table slot, reserved on its first checkout through the C ABI and released
    /// when the conn is closed (`HandleToken`).
    handle_token: Option<HandleToken>,
    /// The TLS session over the socket, on a pool with TLS: every byte of the conn's own
    /// commands and of raw I/O (`stream`) goes through it. Dropped without a word to the
    /// server (no close_notify): a forked child drops its parent's sessions this way.
    tls: Option<Box<ClientConnection>>,
    /// RESP3 pushes kept for the user (`keep_pushes`), oldest first; None = skipped. Boxed:
    /// one word in every conn instead of a `VecDeque`'s four, for a rare feature.
    #[allow(clippy::box_collection, reason = "one word in every conn, not four")]
    kept: Option<Box<std::collections::VecDeque<Reply>>>,
}

/// `ConnState::peek`: the socket was lent out for the caller's own I/O (`lend_fd`) since
/// the last get's health check. The next get peeks it even inside `health_check_bypass`
/// (raw I/O may have left a reply unread, which the conn's own commands never do), and
/// each of its commands peeks before it writes.
const PEEK_FD_LENT: u8 = 1;
/// `ConnState::peek`: dialed and set up, but not yet looked at since: a reply more than the
/// set-up asked for may arrive just after the set-up's own check. The first get's health
/// check peeks it even inside `health_check_bypass`, and so does its first command (a conn
/// dialed for a get is handed out without a health check). Once per conn.
const PEEK_FRESH: u8 = 2;
/// `ConnState::peek`: a sweep reported it while it was idle (closed by the server, an error,
/// or bytes nobody asked for): the next get peeks it (and closes it, as stale).
const PEEK_SUSPECT: u8 = 4;
/// `ConnState::peek`: a command was started without waiting (`Conn::start`) and is not
/// finished: the conn's blocking commands and raw I/O are refused until it is.
const PEEK_STARTED: u8 = 8;

/// `ConnState::session`: SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE was sent (subscribe mode; kept
/// after the UNSUBSCRIBEs too: which channels are left is not tracked).
const SESSION_SUBSCRIBED: u8 = 1;
/// `ConnState::session`: MULTI was sent and no EXEC or DISCARD since.
const SESSION_MULTI: u8 = 2;
/// `ConnState::session`: WATCH was sent and no EXEC, DISCARD or UNWATCH since.
const SESSION_WATCH: u8 = 4;
/// `ConnState::session`: SELECT of a db other than the set-up's (SELECT of that db clears it).
const SESSION_DB: u8 = 8;
/// `ConnState::session`: a command that changes what the pool set up, or what the server
/// sends: CLIENT REPLY OFF|SKIP, CLIENT TRACKING ON, HELLO, AUTH, RESET (which undoes the
/// set-up).
const SESSION_OTHER: u8 = 16;
/// `ConnState::session`: the user asked for the conn's RESP3 pushes (`keep_pushes`): the
/// next user did not, and must not get them.
const SESSION_PUSHES: u8 = 32;
/// `ConnState::session`: a command started without waiting is unfinished: its reply is
/// on the way, so a conn given back now is closed, never pooled (`must_remove_on_put`).
const SESSION_STARTED: u8 = 64;

/// At most this many pushes are kept per conn; beyond it the oldest is dropped.
pub(crate) const MAX_KEPT_PUSHES: usize = 65536;

/// Why a conn given back was closed when `Conn::session_changed`.
pub(crate) const SESSION_CHANGED_REASON: &str = "commands on the conn changed the session the \
     pool set up (subscribe mode, MULTI, WATCH, SELECT, CLIENT REPLY, HELLO, AUTH or RESET): \
     it was closed when given back";

/// The `broken_reason` of a conn that got a READONLY error reply on a pool that follows
/// failovers; `ConnPool::remove` recognises it by this prefix.
pub(crate) const READONLY_REASON: &str =
    "READONLY reply: the server is a replica now (failover); the conn is closed";

/// Why a command on a conn retired by a failover is refused.
pub(crate) const RETIRED_REASON: &str = "the master is being replaced (failover): the conn \
     was retired and takes no more commands; give it back and get another";

/// Commands whose replies are RESP3 pushes (one per channel): SUBSCRIBE and its kin.
fn replies_are_pushes(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 6] = [
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"SSUBSCRIBE",
        b"UNSUBSCRIBE",
        b"PUNSUBSCRIBE",
        b"SUNSUBSCRIBE",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The new `ConnState::session` bits after `args` was sent and answered on a conn whose
/// bits were `bits` and whose set-up selected `session_db`. Most commands are neither of
/// the few that change the session: a length and first-letter test turns them away
/// (GET, SET, PING, HGET, ...) before any name is compared.
#[inline]
fn track_session(bits: u8, session_db: u32, args: &[&[u8]]) -> u8 {
    let Some(name) = args.first() else {
        return bits;
    };
    let Some(&first) = name.first() else {
        return bits;
    };
    // (length, first letter) of AUTH, EXEC, HELLO, MULTI, RESET, WATCH, CLIENT, SELECT,
    // DISCARD, UNWATCH, SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE.
    if !matches!(
        (name.len(), first | 0x20),
        (4, b'a' | b'e')
            | (5, b'h' | b'm' | b'r' | b'w')
            | (6, b'c' | b's')
            | (7, b'd' | b'u')
            | (9, b's')
            | (10, b'p' | b's')
    ) {
        return bits;
    }
    track_session_named(bits, session_db, name, args)
}

#[cold]
fn track_session_named(bits: u8, session_db: u32, name: &[u8], args: &[&[u8]]) -> u8 {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    let arg_is = |i: usize, v: &[u8]| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(v));
    if is(b"SUBSCRIBE") || is(b"PSUBSCRIBE") || is(b"SSUBSCRIBE") {
        bits | SESSION_SUBSCRIBED
    } else if is(b"MULTI") {
        bits | SESSION_MULTI
    } else if is(b"WATCH") {
        bits | SESSION_WATCH
    } else if is(b"EXEC") || is(b"DISCARD") {
        bits & !(SESSION_MULTI | SESSION_WATCH)
    } else if is(b"UNWATCH") {
        bits & !SESSION_WATCH
    } else if is(b"SELECT") {
        let db = args.get(1).and_then(|a| std::str::from_utf8(a).ok());
        if db.and_then(|d| d.parse::<u32>().ok()) == Some(session_db) {
            bits & !SESSION_DB
        } else {
            bits | SESSION_DB
        }
    } else if (is(b"CLIENT") && arg_is(1, b"REPLY") && !arg_is(2, b"ON"))
        || (is(b"CLIENT") && arg_is(1, b"TRACKING") && !arg_is(2, b"OFF"))
        || is(b"HELLO")
        || is(b"AUTH")
        || is(b"RESET")
    {
        bits | SESSION_OTHER
    } else {
        bits
    }
}

impl Conn {
    pub(crate) fn new(
        sock: Socket,
        id: u64,
        pool_id: u64,
        expires_at: u64,
        pooled: bool,
        fork_generation: u32,
    ) -> Self {
        let now = Instant::now();
        let now_ns = super::clock::now_ns();
        let s = Box::new(ConnState {
            sock,
            fork_generation,
            id,
            pool_id,
            created_at: now,
            used_at: now_ns,
            expires_at,
            pooled,
            userdata: None,
            io: None,
            reply_limits: ReplyLimits::DEFAULT,
            timeouts_ms: [0, 0],
            recv_bounded: false,
            resp3: false,
            peek: 0,
            swept: false,
            swept_at: 0,
            session: 0,
            session_db: 0,
            broken: None,
            epoch: 0,
            close_on_readonly: false,
            retire_signal: None,
            handle_token: None,
            tls: None,
            kept: None,
        });
        Conn { s }
    }

    /// A conn over `sock` outside any pool, speaking RESP3 when `resp3` (as if HELLO 3 had
    /// been answered): for the fuzz targets and tests that play the server themselves.
    #[doc(hidden)]
    pub fn over_socket(sock: Socket, resp3: bool) -> Conn {
        let mut c = Conn::new(sock, 1, 0, u64::MAX, false, super::fork::conn_generation());
        c.s.resp3 = resp3;
        c
    }

    /// The token a layer above the pool gave the conn (`set_handle_token`), if any.
    #[inline]
    pub(crate) fn handle_token(&self) -> Option<&HandleToken> {
        self.s.handle_token.as_ref()
    }

    /// Keeps `token` until the conn is closed, which drops it.
    pub(crate) fn set_handle_token(&mut self, token: HandleToken) {
        self.s.handle_token = Some(token);
    }

    /// When the conn was last given back (or handed out): the idle-time clock.
    #[inline]
    pub(crate) fn used_at(&self) -> u64 {
        self.s.used_at
    }

    #[inline]
    pub(crate) fn set_used_at(&mut self, at_ns: u64) {
        self.s.used_at = at_ns;
    }

    /// When its lifetime (with jitter) ends, in `clock::now_ns()` time; u64::MAX = never.
    #[inline]
    pub(crate) fn expires_at(&self) -> u64 {
        self.s.expires_at
    }

    /// The retire epoch the conn was dialed in.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.s.epoch
    }

    /// Records the retire epoch, the READONLY policy and the pool's retire signal (see
    /// `ConnState::retire_signal`); set once, at dial time.
    pub(crate) fn set_failover_state(
        &mut self,
        epoch: u64,
        close_on_readonly: bool,
        retire_signal: Option<Arc<AtomicU64>>,
    ) {
        self.s.epoch = epoch;
        self.s.close_on_readonly = close_on_readonly;
        self.s.retire_signal = retire_signal;
    }

    /// Refuses a command on a conn its pool retired (a failover began): its node is being
    /// replaced, and a write there may be thrown away.
    #[inline]
    fn check_not_retired(&self) -> Result<(), Error> {
        match &self.s.retire_signal {
            Some(sig) if sig.load(Ordering::Relaxed) != self.s.epoch => {
                Err(Error::BadConn(RETIRED_REASON.into()))
            }
            _ => Ok(()),
        }
    }

    /// Unique within its pool, never reused.
    pub fn id(&self) -> u64 {
        self.s.id
    }

    pub(crate) fn pool_id(&self) -> u64 {
        self.s.pool_id
    }

    /// Whether the conn was dialed by this process, not inherited across `fork()`.
    #[inline]
    pub(crate) fn is_inherited(&self) -> bool {
        self.s.fork_generation != super::fork::conn_generation()
    }

    pub fn fd(&self) -> RawFd {
        self.s.sock.as_raw_fd()
    }

    /// The fd, for the caller's own I/O: the next get then peeks the socket even inside
    /// `health_check_bypass`.
    pub fn lend_fd(&mut self) -> RawFd {
        self.s.peek |= PEEK_FD_LENT;
        self.fd()
    }

    /// Raw I/O (`read_raw`, `write_raw`): refused on a conn inherited across fork (its
    /// session, TLS state included, is the parent's) or one already out of step.
    fn raw_usable(&self) -> Result<(), Error> {
        if self.is_inherited() {
            return Err(Error::BadConn(
                "the conn was opened before fork(): the parent process owns its session".into(),
            ));
        }
        if let Some(why) = &self.s.broken {
            return Err(Error::BadConn(why.to_string()));
        }
        if self.s.peek & PEEK_STARTED != 0 {
            return Err(started::unfinished());
        }
        Ok(())
    }

    /// A raw I/O failure: the stream's position is unknown, the conn is bad.
    fn raw_failed(&mut self, err: std::io::Error) -> Error {
        let msg = io::Stream::error(err).to_string();
        self.s.broken = Some(Box::new(msg.as_str().into()));
        Error::Io(msg)
    }

    /// Reads what has arrived on the conn's stream (decrypted on a TLS conn) into `buf`,
    /// waiting as `wait` says for at least one byte: `Ok(Some(0))` is EOF (or the
    /// server's close_notify), `Ok(None)` that nothing came in time (poll the fd for
    /// POLLIN). The next get peeks the conn, as after `lend_fd`.
    pub fn read_raw(&mut self, buf: &mut [u8], wait: RawWait) -> Result<Option<usize>, Error> {
        self.raw_usable()?;
        let deadline = wait.deadline();
        loop {
            let res = self.stream().recv(buf);
            match res {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if wait == RawWait::NoWait {
                        return Ok(None);
                    }
                    match io::wait(self.fd(), libc::POLLIN, deadline, "read") {
                        Ok(()) => {}
                        Err(IoError::Timeout(..)) => return Ok(None),
                        Err(e) => return Err(Error::Io(e.to_string())),
                    }
                }
                Err(e) => return Err(self.raw_failed(e)),
            }
        }
    }

    /// Writes `buf` on the conn's stream, waiting for room as `wait` says: the bytes
    /// taken (all of them unless the wait ran out), 0 meaning nothing could be (poll for
    /// POLLOUT). On a TLS conn bytes are taken into the session, which sends what the
    /// socket takes; a write that waits also sends the rest before it returns, while one
    /// that does not may leave records in the session (`pending_write`), sent by the next
    /// write (of any length, 0 included).
    pub fn write_raw(&mut self, buf: &[u8], wait: RawWait) -> Result<usize, Error> {
        self.raw_usable()?;
        let deadline = wait.deadline();
        let mut off = 0;
        loop {
            let res = if off < buf.len() {
                self.stream().send(&buf[off..])
            } else {
                match self.stream().flush() {
                    Ok(()) => return Ok(off),
                    Err(e) => Err(e),
                }
            };
            match res {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if wait == RawWait::NoWait {
                        return Ok(off);
                    }
                    match io::wait(self.fd(), libc::POLLOUT, deadline, "write") {
                        Ok(()) => {}
                        Err(IoError::Timeout(..)) => return Ok(off),
                        Err(e) => return Err(Error::Io(e.to_string())),
                    }
                }
                Err(e) => return Err(self.raw_failed(e)),
            }
        }
    }

    /// Whether a TLS session holds records a non-blocking `write_raw` could not send yet.
    pub fn pending_write(&self) -> bool {
        self.s.tls.as_ref().is_some_and(|c| c.wants_write())
    }

    /// Whether the next get must look at the conn even inside `health_check_bypass`: the fd
    /// was lent out since the last get's health check, the conn is new, or its session
    /// must be restored (`restore`). Two adjacent bytes: one test on the get's path.
    #[inline]
    pub(crate) fn needs_peek(&self) -> bool {
        (self.s.peek | self.s.session) != 0
    }

    /// A get's health check passed: what was done with a lent fd, and what may have
    /// followed the set-up's replies, has been looked at.
    pub(crate) fn clear_needs_peek(&mut self) {
        self.s.peek = 0;
        self.s.swept_at = 0;
    }

    /// A sweep reported it while it was idle: the next get peeks it.
    pub(crate) fn mark_suspect(&mut self) {
        self.s.peek |= PEEK_SUSPECT;
    }

    /// Whether it joined its pool's epoll set.
    #[inline]
    pub(crate) fn is_swept(&self) -> bool {
        self.s.swept
    }

    pub(crate) fn set_swept(&mut self, swept: bool) {
        self.s.swept = swept;
    }

    /// When the sweep that vouches for it began; 0 = none (`sweep::SweepState::stamp`).
    #[inline]
    pub(crate) fn swept_at(&self) -> u64 {
        self.s.swept_at
    }

    #[inline]
    pub(crate) fn set_swept_at(&mut self, at_ns: u64) {
        self.s.swept_at = at_ns;
    }

    /// Runs the TLS handshake on the conn's socket (right after the dial, before the
    /// session set-up), by `deadline`; from then on the conn speaks TLS.
    pub(crate) fn start_tls(
        &mut self,
        config: &crate::redis::tls::TlsConfig,
        host: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<(), crate::redis::tls::HandshakeFailure> {
        let c = config.connect(self.fd(), host, deadline)?;
        self.s.tls = Some(Box::new(c));
        Ok(())
    }

    /// Whether the conn speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.s.tls.is_some()
    }

    /// The conn's byte stream (its socket, or its TLS session), for raw I/O. Marks the
    /// conn as lent, as `lend_fd` does.
    pub fn stream(&mut self) -> io::Stream<'_> {
        self.s.peek |= PEEK_FD_LENT;
        let fd = self.s.sock.as_raw_fd();
        match &mut self.s.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        }
    }

    /// The first byte waiting on the conn, not consumed (see `io::peek_byte`): for the
    /// health check on get.
    #[inline]
    pub(crate) fn peek_input(&mut self) -> Result<Option<u8>, IoError> {
        let fd = self.s.sock.as_raw_fd();
        match &mut self.s.tls {
            None => io::socket_peek_byte(fd),
            Some(c) => io::peek_byte(&mut io::Stream::Tls(fd, c)),
        }
    }

    pub fn socket(&self) -> &Socket {
        &self.s.sock
    }

    /// When the conn was dialed.
    pub fn created_at(&self) -> Instant {
        self.s.created_at
    }

    /// The conn as a thin pointer, for the pool's parking slots (`conn_pool::bag`); no
    /// allocation. Give it back to `from_raw` exactly once.
    pub(crate) fn into_raw(self) -> *mut () {
        Box::into_raw(self.s).cast()
    }

    /// # Safety
    /// `raw` came from `into_raw` and is given back once.
    pub(crate) unsafe fn from_raw(raw: *mut ()) -> Conn {
        // SAFETY: per the contract, `raw` is a `Box<ConnState>` from `into_raw`.
        Conn {
            s: unsafe { Box::from_raw(raw.cast()) },
        }
    }

    /// Whether the conn came from `new_conn` (outside the pool).
    pub fn is_pooled(&self) -> bool {
        self.s.pooled
    }

    /// Data the caller attached; it survives put/get and is dropped when the conn closes.
    pub fn userdata(&self) -> Option<&(dyn Any + Send)> {
        self.s.userdata.as_deref()
    }

    pub fn set_userdata(&mut self, data: Option<Box<dyn Any + Send>>) {
        self.s.userdata = data;
    }

    /// Detaches the user data without dropping it.
    pub fn take_userdata_box(&mut self) -> Option<Box<dyn Any + Send>> {
        self.s.userdata.take()
    }
}

impl Conn {
    /// Sends one command and reads its reply, each bounded by the pool's read/write
    /// timeouts, counted once from the start of the call: RESP3 pushes skipped on the way
    /// do not extend them. A Redis error reply is `Ok(Reply::Error(..))` and the conn stays
    /// good (except a READONLY reply on a pool that follows failovers: see
    /// `READONLY_REASON`); a failure mid-way (timeout, EOF, OS error, malformed reply, a
    /// push frame on a RESP2 conn) marks the conn broken, so giving it back removes it
    /// instead of pooling it.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, Error> {
        self.command_until(args, None)
    }

    /// `command`, over by `cap` at the latest (its read and write deadlines are the earlier
    /// of the conn's own and `cap`): for a command that is part of a larger bounded call,
    /// such as the PING check inside a get.
    pub(crate) fn command_until(
        &mut self,
        args: &[&[u8]],
        cap: Option<io::Deadline>,
    ) -> Result<Reply, Error> {
        self.command_full(args, cap, None)
    }

    /// `command` with this call's own read timeout instead of the pool's (None = no read
    /// timeout): for blocking commands (BLPOP key 5 on a pool whose read timeout is 1 s).
    /// The write timeout stays the pool's. A timeout here marks the conn broken, as in
    /// `command`.
    pub fn command_read_timeout(
        &mut self,
        args: &[&[u8]],
        read: Option<Duration>,
    ) -> Result<Reply, Error> {
        self.command_full(args, None, Some(read))
    }

    /// `WAIT numreplicas timeout`: blocks until the writes sent on this conn so far have
    /// reached at least `numreplicas` replicas, or `timeout` passed (Redis counts it; the
    /// read deadline is that plus the conn's read timeout, so a slow reply to a WAIT that
    /// ended on time does not break the conn). Ok(n): `n` replicas have the writes; fewer
    /// than `numreplicas` means the timeout passed first (the writes are applied on the
    /// master, but a failover may lose them). A Redis error reply (WAIT on a replica, an
    /// ACL without WAIT) is `Error::Io` with its text; the conn stays good. For a write
    /// that must outlive a failover (docs/sentinel.md, "Failover").
    pub fn wait_replicas(&mut self, numreplicas: u32, timeout: Duration) -> Result<u32, Error> {
        let ms = timeout.as_millis().clamp(1, i64::MAX as u128);
        let read = timeout
            .checked_add(self.timeouts().0.unwrap_or(Duration::from_secs(1)))
            .unwrap_or(Duration::MAX);
        let n = numreplicas.to_string();
        let t = ms.to_string();
        match self.command_full(
            &[b"WAIT", n.as_bytes(), t.as_bytes()],
            None,
            Some(Some(read)),
        )? {
            Reply::Integer(k) => Ok(u32::try_from(k.max(0)).unwrap_or(u32::MAX)),
            Reply::Error(e) => Err(Error::Io(format!(
                "redis: WAIT refused: {}",
                String::from_utf8_lossy(&e[..e.len().min(200)])
            ))),
            other => Err(Error::Protocol(format!(
                "redis: WAIT: unexpected reply {}",
                other.summary()
            ))),
        }
    }

    /// Sends `cmds` in one write, then reads one reply per command, handing each to
    /// `on_reply` as it arrives (a Redis error reply is a reply: it does not stop the
    /// rest). `read` (when Some) is the call's read timeout instead of the pool's (None
    /// inside = none); both deadlines are counted once from the start, for the whole
    /// pipeline. A failure mid-way marks the conn broken and says how many replies were
    /// handed over before it. Replies are not followed for cluster redirects. A HELLO in
    /// the pipeline switches the protocol the conn expects from the next call on (pushes
    /// inside this pipeline are judged by the protocol it started with).
    pub fn pipeline(
        &mut self,
        cmds: &[&[&[u8]]],
        read: Option<Option<Duration>>,
        on_reply: &mut dyn FnMut(Reply),
    ) -> Result<(), (usize, Error)> {
        if let Some(why) = &self.s.broken {
            return Err((0, Error::BadConn(why.to_string())));
        }
        if self.s.peek & PEEK_STARTED != 0 {
            return Err((0, started::unfinished()));
        }
        self.check_not_retired().map_err(|e| (0, e))?;
        if self.is_inherited() {
            return Err((
                0,
                Error::BadConn(
                    "the conn was opened before fork(): the parent process owns its session".into(),
                ),
            ));
        }
        // The session bits as `command` keeps them, for every queued command (before
        // sending: a CLIENT REPLY SKIP gets no reply).
        for args in cmds {
            self.s.session = track_session(self.s.session, self.s.session_db, args);
        }
        if self.s.peek != 0 {
            self.check_in_step().map_err(|e| (0, e))?;
        }
        let (rt, wt) = self.timeouts();
        let now = Instant::now();
        let read = io::Deadline::after_from(now, read.unwrap_or(rt));
        let write = io::Deadline::after_from(now, wt);
        let limits = self.s.reply_limits;
        let resp3 = self.s.resp3;
        let keeping = resp3 && self.s.kept.is_some();
        // Kept pushes come to `each` in a reply's place (and are set aside there): the
        // replies they displaced are read after `pipeline_each`.
        let pushes = |i: usize| match (resp3, cmds[i].first()) {
            (false, _) => io::Pushes::Refuse,
            (true, Some(name)) if replies_are_pushes(name) => io::Pushes::Return,
            (true, _) if keeping => io::Pushes::Return,
            (true, _) => io::Pushes::Skip,
        };
        let kept_now: std::cell::RefCell<Vec<Reply>> = Default::default();
        let close_on_readonly = self.s.close_on_readonly;
        let mut readonly = false;
        // A HELLO inside the pipeline switches the protocol for the commands after it (as
        // in `command`: a map reply is RESP3's, an array RESP2's).
        let mut hello: Option<bool> = None;
        let mut i = 0;
        let mut each = |reply: Reply| {
            if keeping
                && matches!(reply, Reply::Push(_))
                && !cmds
                    .get(i)
                    .and_then(|c| c.first())
                    .is_some_and(|n| replies_are_pushes(n))
            {
                kept_now.borrow_mut().push(reply);
                return;
            }
            if close_on_readonly && matches!(&reply, Reply::Error(e) if e.starts_with(b"READONLY"))
            {
                readonly = true;
            }
            if cmds[i]
                .first()
                .is_some_and(|n| n.eq_ignore_ascii_case(b"HELLO"))
            {
                match reply {
                    Reply::Map(_) => hello = Some(true),
                    Reply::Array(_) => hello = Some(false),
                    _ => {}
                }
            }
            i += 1;
            on_reply(reply)
        };
        let fd = self.fd();
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.get_or_insert_with(|| ConnIo::take(limits));
        let res = io::pipeline_each(
            &mut stream,
            &mut cio.parser,
            &mut cio.out,
            cmds,
            read,
            write,
            &pushes,
            &mut each,
        );
        // The replies displaced by kept pushes, each maybe behind more pushes.
        let mut res = res.map_err(|(_, e)| e);
        let mut missing = kept_now.borrow().len();
        while res.is_ok() && missing > 0 {
            match io::read_frame(&mut stream, &mut cio.parser, read) {
                Ok(p @ Reply::Push(_)) => kept_now.borrow_mut().push(p),
                Ok(reply) => {
                    missing -= 1;
                    each(reply);
                }
                Err(e) => res = Err(e),
            }
        }
        let res = res.map_err(|e| (i, e));
        if let Some(kept) = st.kept.as_mut() {
            for p in kept_now.into_inner() {
                keep_push(kept, p);
            }
        }
        match res {
            Ok(()) => {
                let mut stray = false;
                while resp3 && !cio.parser.is_clean() {
                    match cio.parser.next_reply() {
                        Ok(Some(p @ Reply::Push(_))) => {
                            if let Some(kept) = st.kept.as_mut() {
                                keep_push(kept, p);
                            }
                        }
                        Ok(None) => break,
                        Ok(Some(_)) | Err(_) => {
                            stray = true;
                            break;
                        }
                    }
                }
                if stray || !cio.parser.is_clean() {
                    self.s.broken = Some(Box::new("unexpected bytes after a reply".into()));
                } else if readonly {
                    self.s.broken = Some(Box::new(READONLY_REASON.into()));
                }
                if let Some(resp3) = hello {
                    self.s.resp3 = resp3;
                }
                self.release_io();
                Ok(())
            }
            Err((n, e)) => {
                let msg = e.to_string();
                self.s.broken = Some(Box::new(msg.as_str().into()));
                Err((
                    n,
                    match e {
                        IoError::Protocol(_) | IoError::PushOnResp2 => Error::Protocol(msg),
                        _ => Error::Io(msg),
                    },
                ))
            }
        }
    }

    /// Sends `cmds` in one write (bounded by the conn's write timeout) and reads nothing:
    /// their replies are read later with `receive`, as frames among others (a subscriber's
    /// conn, where confirmations and messages share the stream). A failure marks the conn
    /// broken. The session bits are not tracked: such a conn is never pooled again.
    pub fn send(&mut self, cmds: &[&[&[u8]]]) -> Result<(), Error> {
        if let Some(why) = &self.s.broken {
            return Err(Error::BadConn(why.to_string()));
        }
        let fd = self.fd();
        let write = io::Deadline::after(self.timeouts().1);
        let limits = self.s.reply_limits;
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.get_or_insert_with(|| ConnIo::new(limits));
        cio.out.clear();
        for args in cmds {
            crate::redis::resp::encode_command(&mut cio.out, args);
        }
        let res = io::write_by(&mut stream, &cio.out, write);
        // A subscriber's buffer would otherwise keep its largest SUBSCRIBE forever.
        if cio.out.capacity() > 64 * 1024 {
            cio.out = Vec::new();
        }
        res.map_err(|e| self.fail(e))
    }

    /// Reads the next frame (a reply or a RESP3 push, as it comes) by `deadline`; None when
    /// no whole frame arrived by then, and the conn stays good (part of a frame stays
    /// buffered for the next call). A deadline already passed takes what has arrived. EOF,
    /// an OS error or a malformed frame marks the conn broken.
    pub fn receive(&mut self, deadline: Option<io::Deadline>) -> Result<Option<Reply>, Error> {
        self.read_with(
            |stream, parser| match io::read_frame(stream, parser, deadline) {
                Ok(r) => Ok(Some(r)),
                Err(IoError::Timeout(..)) => Ok(None),
                Err(e) => Err(e),
            },
        )
    }

    /// The next frame among the bytes that have arrived, without waiting; None when no whole
    /// frame has. The socket is read (and TLS records decrypted) until a whole frame or
    /// EAGAIN, so None leaves nothing readable behind: the next byte to arrive makes the fd
    /// readable anew (a part of a frame stays buffered for the next call). EOF, an OS error
    /// or a malformed frame marks the conn broken.
    pub fn receive_arrived(&mut self) -> Result<Option<Reply>, Error> {
        self.read_with(io::read_frame_arrived)
    }

    /// Runs `read` on the conn's byte stream and parser (made on first use); an error it
    /// returns marks the conn broken. A conn already broken is `Error::BadConn`.
    fn read_with<T>(
        &mut self,
        read: impl FnOnce(&mut io::Stream<'_>, &mut Parser) -> Result<T, IoError>,
    ) -> Result<T, Error> {
        if let Some(why) = &self.s.broken {
            return Err(Error::BadConn(why.to_string()));
        }
        let fd = self.fd();
        let limits = self.s.reply_limits;
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.get_or_insert_with(|| ConnIo::new(limits));
        let res = read(&mut stream, &mut cio.parser);
        res.map_err(|e| self.fail(e))
    }

    /// From now on (`keep`) RESP3 pushes that arrive around this conn's replies (client
    /// tracking invalidations, ...) are kept for `next_push` instead of skipped, at most
    /// `MAX_KEPT_PUSHES` (the oldest dropped beyond it); `!keep` drops those kept and skips
    /// again. Asking for them changes the session: the conn is not pooled for a next user
    /// as it is (see `must_close_on_put`). RESP3 only.
    pub fn keep_pushes(&mut self, keep: bool) -> Result<(), Error> {
        if !self.s.resp3 {
            return Err(Error::invalid(
                "pushes: the conn speaks RESP2, which has none (use protocol=3)",
            ));
        }
        if keep {
            self.s.kept.get_or_insert_with(Default::default);
            self.s.session |= SESSION_PUSHES;
        } else {
            self.s.kept = None;
        }
        Ok(())
    }

    /// The oldest kept push; when none is kept, the next push that arrives by `deadline`
    /// (a deadline already passed takes what has arrived). Ok(None) when none came. A frame
    /// that is not a push (no command is waiting for a reply) means the conn is out of step:
    /// it is marked broken.
    pub fn next_push(&mut self, deadline: Option<io::Deadline>) -> Result<Option<Reply>, Error> {
        if let Some(p) = self.s.kept.as_mut().and_then(|k| k.pop_front()) {
            return Ok(Some(p));
        }
        if !self.s.resp3 {
            return Ok(None);
        }
        match self.receive(deadline)? {
            None => Ok(None),
            Some(p @ Reply::Push(_)) => Ok(Some(p)),
            Some(other) => {
                let e = Error::Protocol(format!(
                    "redis: a reply nobody asked for ({}) while waiting for a push: the conn \
                     is out of step",
                    other.summary()
                ));
                self.s.broken = Some(Box::new(e.to_string().into()));
                Err(e)
            }
        }
    }

    /// The caller's own I/O on the fd changed the session (`lend_fd` cannot see it): the
    /// conn is restored like one whose commands changed it (`restore`).
    pub fn mark_session_changed(&mut self) {
        self.s.session |= SESSION_OTHER;
    }

    /// Whether the session speaks RESP3 (HELLO 3).
    pub fn is_resp3(&self) -> bool {
        self.s.resp3
    }

    /// Marks the conn broken by `e` and says so as a pool error.
    fn fail(&mut self, e: IoError) -> Error {
        let msg = e.to_string();
        self.s.broken = Some(Box::new(msg.as_str().into()));
        match e {
            IoError::Protocol(_) | IoError::PushOnResp2 => Error::Protocol(msg),
            _ => Error::Io(msg),
        }
    }

    /// `command_until`, with `read_override` (when Some) as the read timeout of this call.
    fn command_full(
        &mut self,
        args: &[&[u8]],
        cap: Option<io::Deadline>,
        read_override: Option<Option<Duration>>,
    ) -> Result<Reply, Error> {
        if let Some(why) = &self.s.broken {
            return Err(Error::BadConn(why.to_string()));
        }
        self.check_not_retired()?;
        if self.is_inherited() {
            return Err(Error::BadConn(
                "the conn was opened before fork(): the parent process owns its session".into(),
            ));
        }
        if self.s.peek != 0 {
            if self.s.peek & PEEK_STARTED != 0 {
                return Err(started::unfinished());
            }
            self.check_in_step()?;
        }
        let (rt, wt) = self.timeouts();
        let now = Instant::now();
        let own_read = io::Deadline::after_from(now, rt);
        let read = match read_override {
            Some(r) => io::Deadline::earliest(io::Deadline::after_from(now, r), cap),
            None => io::Deadline::earliest(own_read, cap),
        };
        let write = io::Deadline::earliest(io::Deadline::after_from(now, wt), cap);
        // The blocking recv is bounded by SO_RCVTIMEO, i.e. the conn's own read timeout:
        // only when that is the deadline (a call with its own read timeout polls).
        let wait = if self.s.recv_bounded && read_override.is_none() && read == own_read {
            io::ReplyWait::BlockingRecv
        } else {
            io::ReplyWait::Poll
        };
        let limits = self.s.reply_limits;
        // RESP3 push frames (client tracking invalidations, pub/sub messages) may arrive at
        // any time, also just before a reply: they are not this command's reply, except
        // for the subscribe family, whose replies are pushes. RESP2 has no pushes.
        let skip_pushes = !args.first().is_some_and(|name| replies_are_pushes(name));
        // Kept pushes are returned by the read and set aside here, one by one.
        let keeping = skip_pushes && self.s.kept.is_some();
        let pushes = match (self.s.resp3, skip_pushes && !keeping) {
            (false, _) => io::Pushes::Refuse,
            (true, true) => io::Pushes::Skip,
            (true, false) => io::Pushes::Return,
        };
        // Before the command is sent: one that fails (CLIENT REPLY SKIP has no reply, so it
        // times out) may still have changed the session.
        self.s.session = track_session(self.s.session, self.s.session_db, args);
        let fd = self.fd();
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.get_or_insert_with(|| ConnIo::take(limits));
        let mut res = io::command_with(
            &mut stream,
            &mut cio.parser,
            &mut cio.out,
            args,
            read,
            write,
            wait,
            pushes,
        );
        if keeping && st.resp3 {
            while let Ok(Reply::Push(_)) = &res {
                if let (Some(kept), Ok(p)) = (st.kept.as_mut(), res) {
                    keep_push(kept, p);
                }
                res = if io::Deadline::passed(read) {
                    let t = read_override.unwrap_or(rt).unwrap_or_default();
                    Err(IoError::Timeout("read", t))
                } else {
                    io::read_frame(&mut stream, &mut cio.parser, read)
                };
            }
        }
        match res {
            Ok(reply) => {
                let mut stray = false;
                // Pushes right behind the reply, in the same read, are skipped (or kept) as
                // well; a reply nobody asked for means the conn is out of step.
                while (pushes == io::Pushes::Skip || keeping) && !cio.parser.is_clean() {
                    match cio.parser.next_reply() {
                        Ok(Some(p @ Reply::Push(_))) => {
                            if let Some(kept) = st.kept.as_mut() {
                                keep_push(kept, p);
                            }
                        }
                        Ok(None) => break,
                        Ok(Some(_)) | Err(_) => {
                            stray = true;
                            break;
                        }
                    }
                }
                if stray || !cio.parser.is_clean() {
                    self.s.broken = Some(Box::new("unexpected bytes after a reply".into()));
                } else if self.s.close_on_readonly
                    && matches!(&reply, Reply::Error(e) if e.starts_with(b"READONLY"))
                {
                    self.s.broken = Some(Box::new(READONLY_REASON.into()));
                }
                if args
                    .first()
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"HELLO"))
                {
                    // The caller switched protocols: a map reply is RESP3's, an array
                    // RESP2's (an error reply leaves the protocol as it was).
                    match reply {
                        Reply::Map(_) => self.s.resp3 = true,
                        Reply::Array(_) => self.s.resp3 = false,
                        _ => {}
                    }
                }
                self.release_io();
                Ok(reply)
            }
            Err(e) => {
                let msg = e.to_string();
                self.s.broken = Some(Box::new(msg.as_str().into()));
                Err(match e {
                    IoError::Protocol(_) | IoError::PushOnResp2 => Error::Protocol(msg),
                    _ => Error::Io(msg),
                })
            }
        }
    }

    /// Before a command on a conn whose fd was lent out (raw I/O may have left a reply
    /// unread) or that is new (a reply more than its set-up asked for may have arrived
    /// since): bytes already waiting would be read as this command's reply, so the conn is
    /// marked broken and the command refused instead. A RESP3 push waiting is no such
    /// reply (the command skips pushes before its reply). What has not arrived yet cannot
    /// be seen; a new conn is checked once.
    #[cold]
    fn check_in_step(&mut self) -> Result<(), Error> {
        let buffered = self.s.io.as_ref().is_some_and(|c| !c.parser.is_clean());
        let why = match (buffered, self.peek_input()) {
            // Nothing waiting; or a RESP3 push (a tracking invalidation, a pub/sub message),
            // which the server sends unasked and the command skips before its reply.
            (false, Ok(None | Some(b'>'))) => {
                self.s.peek &= !PEEK_FRESH;
                return Ok(());
            }
            (true, _) | (_, Ok(Some(_))) => Error::Protocol(
                "redis: unread bytes on the conn before the command (a reply left unread by \
                 raw I/O on its fd, or one the server sent unasked): the conn is out of step"
                    .into(),
            ),
            (_, Err(e)) => Error::Io(e.to_string()),
        };
        self.s.broken = Some(Box::new(why.to_string().into()));
        Err(why)
    }

    /// Runs the Redis session set-up on a freshly dialed conn.
    /// With `ping`, an empty session still makes one round trip (a PING), so a refusal
    /// the server sends on accept (maxclients, NOAUTH) is seen at dial time. The reply
    /// buffers are freed afterwards: an idle conn holds none (see `ConnIo`).
    /// The read and write timeouts bound it, and `unbounded` stands for either when it is
    /// none: a set-up is part of a dial and must end. Its replies (HELLO's map, OK, PONG)
    /// are held to the default reply limits, not the pool's: limits set for data replies,
    /// however small, must not make set-up fail.
    /// It is all over by `deadline` (the dial's; None = no deadline), whatever the timeouts.
    pub(crate) fn set_up(
        &mut self,
        session: &Session,
        ping: bool,
        unbounded: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), HandshakeError> {
        // Whatever the set-up checks, a reply more than it asked for may arrive a moment
        // after: looked for once more before the conn is first used.
        self.s.peek |= PEEK_FRESH;
        self.s.session_db = session.db;
        if session.is_empty() && !ping {
            return Ok(());
        }
        let fd = self.fd();
        let (rt, wt) = self.timeouts();
        let now = Instant::now();
        let cap = deadline.map(|d| io::Deadline::at(d, d.saturating_duration_since(now)));
        let read = io::Deadline::earliest(
            io::Deadline::after_from(now, Some(rt.unwrap_or(unbounded))),
            cap,
        );
        let write = io::Deadline::earliest(
            io::Deadline::after_from(now, Some(wt.unwrap_or(unbounded))),
            cap,
        );
        let limits = self.s.reply_limits;
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st
            .io
            .get_or_insert_with(|| ConnIo::new(ReplyLimits::DEFAULT));
        cio.parser.set_limits(ReplyLimits::DEFAULT);
        let res = session.set_up(
            &mut stream,
            &mut cio.parser,
            &mut cio.out,
            read,
            write,
            ping,
        );
        cio.parser.set_limits(limits);
        // Freed, not kept as the thread's spare: set-ups run on dial threads, which come
        // and go (a spare there would be 32 KiB per live dial thread, for one use per conn).
        if res.is_ok() && cio.parser.is_clean() {
            self.s.io = None;
        }
        self.s.resp3 = res.is_ok() && session.protocol == 3;
        res
    }

    /// Sets the caps on one reply of the conn's commands (before its first command).
    pub(crate) fn set_reply_limits(&mut self, limits: ReplyLimits) {
        self.s.reply_limits = limits;
        if let Some(cio) = &mut self.s.io {
            cio.parser.set_limits(limits);
        }
    }

    /// Sets the timeouts of the conn's commands, and the socket's SO_RCVTIMEO to the read
    /// timeout (none: 0, block forever), so that the wait for a reply is one blocking
    /// `recv` (bounded by the kernel) instead of `poll` and `recv`: a syscall fewer per
    /// command. A socket that refuses the option keeps the `poll` path.
    pub fn set_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) {
        let ms =
            |t: Option<Duration>| t.map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32);
        self.s.timeouts_ms = [ms(read), ms(write)];
        let read = (self.s.timeouts_ms[0] > 0)
            .then(|| Duration::from_millis(self.s.timeouts_ms[0].into()));
        self.s.recv_bounded = self.s.sock.set_read_timeout(read).is_ok();
    }

    /// The read deadline of a call that began at `start`: the conn's read timeout from
    /// then (None = none). For a call made of several commands (cluster redirects).
    pub(crate) fn read_deadline_from(&self, start: Instant) -> Option<io::Deadline> {
        io::Deadline::after_from(start, self.timeouts().0)
    }

    fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        let d = |ms: u32| (ms > 0).then(|| Duration::from_millis(ms.into()));
        (d(self.s.timeouts_ms[0]), d(self.s.timeouts_ms[1]))
    }

    /// Whether commands sent on the conn changed the session the pool set up (subscribe
    /// mode, MULTI, WATCH, SELECT of another db, CLIENT REPLY OFF|SKIP, HELLO, AUTH,
    /// RESET): such a conn is closed when given back, never pooled. Tracked from the
    /// commands sent through `command`, not from raw I/O on a lent fd.
    pub fn session_changed(&self) -> bool {
        self.s.session != 0
    }

    /// Broken, or mid-command (`start` without its `finish`: the reply is on the way, and
    /// part of the command may not even be sent): given back, it is removed instead of
    /// pooled (a conn whose session changed is pooled, and restored by the next get's
    /// health check: `restore`).
    #[inline]
    pub(crate) fn must_remove_on_put(&self) -> bool {
        self.s.broken.is_some() | (self.s.peek & PEEK_STARTED != 0)
    }

    /// Brings a conn whose session its commands changed (`session_changed`) back to the
    /// session the pool set up, before it is handed out again: `PING`, `RESET` (Redis 6.2+:
    /// leaves subscribe mode, discards MULTI, unwatches, turns CLIENT REPLY and tracking
    /// off, back to RESP2, db 0, the default user, no name), then the set-up's commands
    /// (HELLO / AUTH / SELECT / CLIENT SETNAME), all in one write. Everything that arrives
    /// before RESET's `+RESET` is discarded: pub/sub messages, replies nobody read, the
    /// PING's answer (which is there only to absorb a pending CLIENT REPLY SKIP, which
    /// would eat RESET's reply). Bounded by the conn's read timeout and `cap`. On failure
    /// (a server without RESET, an error reply to the set-up, a timeout) the conn is marked
    /// broken and the reason returned: it must be closed.
    pub(crate) fn restore(
        &mut self,
        session: &Session,
        cap: Option<io::Deadline>,
    ) -> Result<(), String> {
        let res = self.restore_inner(session, cap);
        if let Err(why) = &res {
            self.s.broken = Some(Box::new(why.as_str().into()));
        }
        res
    }

    fn restore_inner(
        &mut self,
        session: &Session,
        cap: Option<io::Deadline>,
    ) -> Result<(), String> {
        let setup = session.commands();
        let mut cmds: Vec<Vec<&[u8]>> = vec![vec![b"PING"], vec![b"RESET"]];
        for (_, args) in &setup {
            cmds.push(args.iter().map(Vec::as_slice).collect());
        }
        let refs: Vec<&[&[u8]]> = cmds.iter().map(Vec::as_slice).collect();
        // After RESET the server speaks RESP2 until the set-up's HELLO 3: frames are read
        // as they come (pushes included), whatever the conn spoke before.
        let (rt, _) = self.timeouts();
        let read = io::Deadline::earliest(io::Deadline::after(rt), cap);
        self.send(&refs).map_err(|e| e.to_string())?;
        loop {
            match self.receive(read).map_err(|e| e.to_string())? {
                None => return Err("redis: restoring the session: no +RESET in time".into()),
                Some(Reply::Status(s)) if s == b"RESET" => break,
                Some(Reply::Error(e)) if e.windows(5).any(|w| w.eq_ignore_ascii_case(b"RESET")) => {
                    return Err(format!(
                        "redis: restoring the session: RESET refused ({}): Redis 6.2 or later \
                         is needed to restore a conn; it is closed instead",
                        String::from_utf8_lossy(&e)
                    ));
                }
                Some(_) => {}
            }
        }
        for (name, _) in &setup {
            match self.receive(read).map_err(|e| e.to_string())? {
                None => return Err(format!("redis: restoring the session: no reply to {name}")),
                Some(Reply::Error(e)) => {
                    return Err(format!(
                        "redis: restoring the session: {name} refused: {}",
                        String::from_utf8_lossy(&e)
                    ));
                }
                Some(_) => {}
            }
        }
        if self.has_buffered_input() {
            return Err("redis: restoring the session: unexpected bytes after it".into());
        }
        self.s.session = 0;
        self.s.kept = None;
        self.s.resp3 = session.protocol == 3;
        Ok(())
    }

    /// Broken or `session_changed`: given back to a sticky or single pool, it is removed
    /// instead of kept. One branch for a conn used for plain commands.
    #[inline]
    pub(crate) fn must_close_on_put(&self) -> bool {
        self.s.broken.is_some() | (self.s.session != 0)
    }

    /// Why the conn is out of step with the server, if it is.
    pub fn broken_reason(&self) -> Option<&str> {
        self.s.broken.as_deref().map(|b| &**b)
    }

    /// After a command: gives the I/O state back to the thread (`SPARE_IO`) unless the
    /// reply left bytes unread or the conn broke (then it stays, for the checks that look
    /// at what is buffered, until the conn is closed).
    #[inline]
    fn release_io(&mut self) {
        if self.s.broken.is_none()
            && let Some(cio) = self.s.io.take_if(|cio| cio.parser.is_clean())
        {
            ConnIo::give_back(cio);
        }
    }

    /// Bytes received by `command` and not consumed: should never happen on a good conn.
    pub fn has_buffered_input(&self) -> bool {
        self.s.io.as_ref().is_some_and(|c| !c.parser.is_clean())
    }

    /// Bytes received and not consumed that the socket no longer shows: in the parser, or
    /// decrypted in the TLS session (a TLS read can decrypt more than the parser takes).
    /// A poll on the fd does not see them: `receive` gets them without waiting. No system
    /// call.
    pub fn has_pending_input(&mut self) -> bool {
        self.has_buffered_input()
            || self
                .s
                .tls
                .as_mut()
                .is_some_and(|c| io::tls_has_plaintext(c))
    }
}

/// Appends `p` to the kept pushes, dropping the oldest beyond `MAX_KEPT_PUSHES`.
fn keep_push(kept: &mut std::collections::VecDeque<Reply>, p: Reply) {
    if kept.len() >= MAX_KEPT_PUSHES {
        kept.pop_front();
    }
    kept.push_back(p);
}

/// How long raw I/O on a conn (`Conn::read_raw`, `Conn::write_raw`) may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawWait {
    NoWait,
    For(Duration),
    Forever,
}

impl RawWait {
    fn deadline(self) -> Option<io::Deadline> {
        match self {
            RawWait::NoWait => io::Deadline::after(Some(Duration::ZERO)),
            RawWait::For(d) => io::Deadline::after(Some(d)),
            RawWait::Forever => None,
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.s.id)
            .field("fd", &self.fd())
            .field("pooled", &self.s.pooled)
            .field("broken", &self.s.broken)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(bits: u8, args: &[&str]) -> u8 {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        track_session(bits, 2, &a)
    }

    #[test]
    fn session_tracking_by_command_name() {
        for plain in [
            &["GET", "k"][..],
            &["SET", "k", "v"],
            &["HSET", "h", "f", "v"],
            &["SUBSCRIBEX"],
            &["CLIENT", "REPLY", "ON"],
            &["CLIENT", "INFO"],
            &["SELECT", "2"],
            &["PUBLISH", "c", "m"],
            &["PING"],
            &["EXISTS", "k"],
            &[""],
            &[],
        ] {
            assert_eq!(track(0, plain), 0, "{plain:?}");
        }
        assert_eq!(track(0, &["subscribe", "c"]), SESSION_SUBSCRIBED);
        assert_eq!(track(0, &["SSubscribe", "c"]), SESSION_SUBSCRIBED);
        assert_eq!(track(0, &["PSUBSCRIBE", "c*"]), SESSION_SUBSCRIBED);
        assert_eq!(track(0, &["Multi"]), SESSION_MULTI);
        assert_eq!(track(0, &["WATCH", "k"]), SESSION_WATCH);
        assert_eq!(track(SESSION_MULTI | SESSION_WATCH, &["exec"]), 0);
        assert_eq!(track(SESSION_MULTI | SESSION_WATCH, &["DISCARD"]), 0);
        assert_eq!(
            track(SESSION_MULTI | SESSION_WATCH, &["UNWATCH"]),
            SESSION_MULTI
        );
        assert_eq!(track(0, &["SELECT", "0"]), SESSION_DB);
        assert_eq!(track(0, &["SELECT", "x"]), SESSION_DB);
        assert_eq!(track(SESSION_DB, &["select", "2"]), 0);
        assert_eq!(track(0, &["client", "reply", "skip"]), SESSION_OTHER);
        assert_eq!(track(0, &["CLIENT", "REPLY", "OFF"]), SESSION_OTHER);
        assert_eq!(track(0, &["client", "tracking", "on"]), SESSION_OTHER);
        assert_eq!(track(0, &["CLIENT", "TRACKING", "OFF"]), 0);
        for other in ["HELLO", "AUTH", "RESET"] {
            assert_eq!(track(0, &[other]), SESSION_OTHER, "{other}");
        }
        assert_eq!(
            track(SESSION_SUBSCRIBED, &["UNSUBSCRIBE"]),
            SESSION_SUBSCRIBED
        );
    }
}
