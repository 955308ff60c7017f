//! One command on a conn's socket, bounded by deadlines.
//!
//! The pool hands conns out in blocking mode, but the caller may since have switched the fd to
//! `O_NONBLOCK`, and the fd's flags are the caller's business: this module never changes them.
//! Instead every `send`/`recv` is made non-blocking per call (`MSG_DONTWAIT`) and waiting is
//! done in `poll`, which is what lets a deadline bound a blocking socket too. `send` passes
//! `MSG_NOSIGNAL`, so a peer that went away gives `EPIPE` rather than killing the host process
//! with `SIGPIPE` (which a C program has not necessarily ignored).
//!
//! `fd` is the conn's socket, borrowed for the call: the caller keeps it open meanwhile and no
//! other thread reads or writes it.
//!
//! After any error other than a Redis error reply the stream's position is unknown (a reply may
//! be half read, a command half written): the conn must be closed, not reused.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rustls::ClientConnection;

pub use super::deadline::Deadline;
use super::resp::{Parser, ProtocolError, Reply, encode_command};

/// `recv` asks for at least this much room in the parser's buffer, so a large reply is read in
/// a few big system calls rather than many small ones.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Why a command could not complete. A Redis error reply is not one of these: it is
/// `Ok(Reply::Error(..))`.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The deadline passed: "read" or "write", and the timeout that was set.
    #[error("redis: i/o timeout ({0} after {1:?})")]
    Timeout(&'static str, Duration),
    #[error("redis: connection closed by the server (EOF)")]
    Eof,
    /// A system call failed; carries the errno.
    #[error("redis: {0}")]
    Os(io::Error),
    #[error("redis: protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A RESP3 push frame (`>`) on a conn that did not negotiate RESP3: the peer is not
    /// speaking the protocol agreed on, so the stream cannot be trusted.
    #[error("redis: protocol error: a RESP3 push frame on a RESP2 conn")]
    PushOnResp2,
    /// The TLS session failed (a bad record, an alert from the server, a failed
    /// verification during the handshake).
    #[error("redis: TLS: {0}")]
    Tls(Box<rustls::Error>),
}

impl IoError {
    /// The errno behind an `Os` error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            IoError::Os(err) => err.raw_os_error(),
            _ => None,
        }
    }
}

/// Writes all of `buf`, waiting for room in the socket buffer for at most `timeout` in all.
pub fn write_all(s: &mut Stream<'_>, buf: &[u8], timeout: Option<Duration>) -> Result<(), IoError> {
    write_until(s, buf, Deadline::after(timeout))
}

/// Writes all of `buf` by `deadline`, reading nothing back: for a caller whose replies come
/// later as frames of their own (a subscriber's SUBSCRIBE, whose confirmations arrive among
/// the messages).
pub fn write_by(s: &mut Stream<'_>, buf: &[u8], deadline: Option<Deadline>) -> Result<(), IoError> {
    write_until(s, buf, deadline)
}

/// Reads one frame (a reply or a push), by `deadline`: what the parser already holds first,
/// then the socket. A deadline already passed still takes what has arrived (one `recv`).
/// A frame cut short by the deadline stays buffered in the parser for the next call.
pub fn read_frame(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    deadline: Option<Deadline>,
) -> Result<Reply, IoError> {
    read_until(s, parser, deadline, false)
}

/// The next frame among the bytes that have arrived, without waiting: what the parser holds,
/// else the socket read (on TLS, its records decrypted) until a whole frame or EAGAIN. None
/// only at EAGAIN, so it leaves no whole frame in the parser, no decrypted byte in the TLS
/// session and nothing in the socket: the next byte to arrive makes the fd readable anew,
/// which an edge-triggered poller relies on (a subscriber's fd). A frame still arriving is
/// read as fast as it comes, at most up to the parser's reply limits.
pub fn read_frame_arrived(
    s: &mut Stream<'_>,
    parser: &mut Parser,
) -> Result<Option<Reply>, IoError> {
    if let Some(reply) = parser.next_reply()? {
        return Ok(Some(reply));
    }
    loop {
        match s.recv(parser.try_spare(READ_CHUNK)?) {
            Ok(0) => return Err(IoError::Eof),
            Ok(n) => {
                parser.advance(n);
                if let Some(reply) = parser.next_reply()? {
                    return Ok(Some(reply));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) => return Err(os(err)),
        }
    }
}

/// Reads one reply. What the parser already holds is parsed first; the socket is read only if
/// that is not a whole reply. `timeout` bounds the whole reply, not each `recv`.
pub fn read_reply(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    timeout: Option<Duration>,
) -> Result<Reply, IoError> {
    read_until(s, parser, Deadline::after(timeout), false)
}

/// Writes every command in one write, then reads exactly one reply per command (pipelining).
///
/// `out_buf` is the caller's reusable buffer; it is cleared, then filled with the encoded
/// commands. `write` bounds the whole write and `read` the reading of all the replies
/// together; both are deadlines the caller computed once, before the write (as `command`'s).
/// Error replies are returned in place; they do not stop the reading of the replies after
/// them.
pub fn pipeline(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    out_buf: &mut Vec<u8>,
    cmds: &[&[&[u8]]],
    read: Option<Deadline>,
    write: Option<Deadline>,
) -> Result<Vec<Reply>, IoError> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    out_buf.clear();
    for args in cmds {
        encode_command(out_buf, args);
    }
    write_until(s, out_buf, write)?;
    let deadline = read;
    let mut replies = Vec::with_capacity(cmds.len());
    for i in 0..cmds.len() {
        replies.push(read_until(s, parser, deadline, i == 0)?);
    }
    Ok(replies)
}

/// `pipeline`, handing each reply to `on_reply` as it is read instead of collecting them
/// (a pipeline's replies are not buffered twice). `pushes(i)` says what the `i`-th
/// command does with RESP3 pushes that come where its reply should (as `command_with`).
/// On failure, the error and how many replies were handed over before it.
#[allow(clippy::too_many_arguments)]
pub fn pipeline_each(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    out_buf: &mut Vec<u8>,
    cmds: &[&[&[u8]]],
    read: Option<Deadline>,
    write: Option<Deadline>,
    pushes: &dyn Fn(usize) -> Pushes,
    on_reply: &mut dyn FnMut(Reply),
) -> Result<(), (usize, IoError)> {
    out_buf.clear();
    for args in cmds {
        encode_command(out_buf, args);
    }
    write_until(s, out_buf, write).map_err(|e| (0, e))?;
    for i in 0..cmds.len() {
        let mut reply = read_until(s, parser, read, i == 0).map_err(|e| (i, e))?;
        while matches!(reply, Reply::Push(_)) {
            match pushes(i) {
                Pushes::Return => break,
                Pushes::Refuse => return Err((i, IoError::PushOnResp2)),
                Pushes::Skip => {}
            }
            // As in `command_with`: a flood of buffered pushes is cut by the deadline.
            if Deadline::passed(read) {
                return Err((i, timeout("read", read)));
            }
            reply = read_until(s, parser, read, false).map_err(|e| (i, e))?;
        }
        on_reply(reply);
    }
    Ok(())
}

/// How `command` waits for the reply it has just asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyWait {
    /// `poll` until readable, then `recv` (works whatever the socket's options).
    Poll,
    /// The caller set the socket's SO_RCVTIMEO to the read timeout (or none for none), and
    /// the read deadline is that timeout from now: try one blocking `recv` first, which the
    /// kernel bounds by that timeout. If the caller of the fd switched it to `O_NONBLOCK`,
    /// that `recv` says EAGAIN at once and `poll` takes over, with whatever is left of the
    /// deadline.
    BlockingRecv,
}

/// What a command does with RESP3 push frames (`>`) that come where its reply should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushes {
    /// A push is the reply (the subscribe family on a RESP3 conn; raw callers).
    Return,
    /// Pushes are out-of-band (client tracking invalidations, pub/sub messages on a RESP3
    /// conn): skipped, and the reply is the first frame that is not one. The one read
    /// deadline covers them all: a server that keeps pushing cannot stretch the call.
    Skip,
    /// The conn speaks RESP2, where there are no pushes: one is `IoError::PushOnResp2`.
    Refuse,
}

/// One command, one reply; pushes are returned as the reply. `out_buf` is the caller's
/// reusable buffer (cleared, then filled).
pub fn command(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    out_buf: &mut Vec<u8>,
    args: &[&[u8]],
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
) -> Result<Reply, IoError> {
    let now = Instant::now();
    command_with(
        s,
        parser,
        out_buf,
        args,
        Deadline::after_from(now, read_timeout),
        Deadline::after_from(now, write_timeout),
        ReplyWait::Poll,
        Pushes::Return,
    )
}

/// `command`, by deadlines the caller computed (the read deadline before the write, as the
/// kernel's SO_RCVTIMEO timer starts after it: whichever fires first bounds the wait),
/// waiting for the reply as `wait` says and treating pushes as `pushes` says.
#[allow(clippy::too_many_arguments)]
pub fn command_with(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    out_buf: &mut Vec<u8>,
    args: &[&[u8]],
    read: Option<Deadline>,
    write: Option<Deadline>,
    wait: ReplyWait,
    pushes: Pushes,
) -> Result<Reply, IoError> {
    out_buf.clear();
    encode_command(out_buf, args);
    write_until(s, out_buf, write)?;
    let mut reply = first_reply(s, parser, read, wait)?;
    loop {
        if !matches!(reply, Reply::Push(_)) {
            return Ok(reply);
        }
        match pushes {
            Pushes::Return => return Ok(reply),
            Pushes::Refuse => return Err(IoError::PushOnResp2),
            Pushes::Skip => {}
        }
        // Pushes already buffered parse without a recv, so `read_until` never looks at the
        // clock for them: a flood that always has the next one ready must be cut here.
        if Deadline::passed(read) {
            return Err(timeout("read", read));
        }
        reply = read_until(s, parser, read, false)?;
    }
}

/// The first frame after a command was sent, by `read`.
fn first_reply(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    read: Option<Deadline>,
    wait: ReplyWait,
) -> Result<Reply, IoError> {
    if wait == ReplyWait::BlockingRecv {
        match s {
            Stream::Plain(fd) => {
                let fd = *fd;
                loop {
                    match recv_blocking(fd, parser.try_spare(READ_CHUNK)?) {
                        Ok(0) => return Err(IoError::Eof),
                        Ok(n) => {
                            parser.advance(n);
                            return read_until(s, parser, read, false);
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                            if Deadline::passed(read) {
                                return Err(timeout("read", read));
                            }
                        }
                        // SO_RCVTIMEO ran out (the deadline passed: `read_until` says so),
                        // or the fd is non-blocking: poll with what is left.
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) => return Err(IoError::Os(err)),
                    }
                }
            }
            // The same for TLS: one blocking read of records (bounded by SO_RCVTIMEO),
            // decrypted, then the parse; no EAGAIN recv and poll before it.
            Stream::Tls(fd, c) => {
                let fd = *fd;
                if !tls_has_plaintext(c) {
                    loop {
                        match c.read_tls(&mut FdIoBlocking(fd)) {
                            Ok(_) => {
                                tls_process(fd, c)?;
                                return read_until(s, parser, read, false);
                            }
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                                if Deadline::passed(read) {
                                    return Err(timeout("read", read));
                                }
                            }
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                            Err(err) => return Err(IoError::Os(err)),
                        }
                    }
                }
            }
        }
    }
    read_until(s, parser, read, true)
}

/// Whether bytes are waiting after the replies read so far: in `parser`'s buffer, or already
/// in the socket (a non-blocking `MSG_PEEK`, so nothing is consumed and the fd's flags stay
/// as they are). A reply nobody asked for (a banner, an extra reply) would be taken for the
/// next command's reply: a conn with such bytes must not be handed on. EOF is `Eof`. Bytes
/// the peer has not sent yet cannot be seen: this is a check of what has arrived.
pub fn has_unread_input(s: &mut Stream<'_>, parser: &Parser) -> Result<bool, IoError> {
    if !parser.is_clean() {
        return Ok(true);
    }
    Ok(peek_byte(s)?.is_some())
}

/// The socket half of `has_unread_input`: the first byte waiting, if any, not consumed. On
/// a plain conn a `MSG_PEEK`. On a TLS conn the records waiting are read and decrypted
/// (they cannot be peeked): post-handshake messages (TLS 1.3 session tickets, key updates)
/// are consumed, application data stays buffered in the session (seen here, read by the
/// next read), a `close_notify` or EOF is `Eof`.
pub fn peek_byte(s: &mut Stream<'_>) -> Result<Option<u8>, IoError> {
    match s {
        Stream::Plain(fd) => socket_peek_byte(*fd),
        Stream::Tls(fd, c) => tls_peek_byte(*fd, c),
    }
}

/// The first byte waiting in the socket `fd`, if any (peeked, not consumed).
pub fn socket_peek_byte(fd: RawFd) -> Result<Option<u8>, IoError> {
    let mut byte = 0u8;
    loop {
        // SAFETY: `byte` is a valid one-byte buffer for the call; a bad `fd` is an error.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        return match n {
            0 => Err(IoError::Eof),
            n if n > 0 => Ok(Some(byte)),
            _ => {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(IoError::Os(err)),
                }
            }
        };
    }
}

/// Records read by one `tls_peek_byte` at most: a peer that keeps sending session tickets
/// cannot hold the check in a loop.
const TLS_PEEK_MAX_READS: usize = 16;

fn tls_peek_byte(fd: RawFd, c: &mut ClientConnection) -> Result<Option<u8>, IoError> {
    use std::io::BufRead;
    let mut reads = 0;
    loop {
        match c.reader().fill_buf() {
            Ok([first, ..]) => return Ok(Some(*first)),
            // close_notify received, all data read.
            Ok([]) => return Err(IoError::Eof),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(IoError::Eof),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(os(e)),
        }
        if reads == TLS_PEEK_MAX_READS {
            return Ok(None);
        }
        reads += 1;
        match c.read_tls(&mut FdIo(fd)) {
            Ok(_) => tls_process(fd, c)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(os(e)),
        }
    }
}

fn write_until(
    s: &mut Stream<'_>,
    mut buf: &[u8],
    deadline: Option<Deadline>,
) -> Result<(), IoError> {
    while !buf.is_empty() {
        match s.send(buf) {
            Ok(0) => return Err(IoError::Os(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                buf = &buf[n..];
                // A peer that keeps draining slowly must not stretch the write past its
                // deadline: check it between partial writes too, not only when blocked.
                if !buf.is_empty() && Deadline::passed(deadline) {
                    return Err(timeout("write", deadline));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait(s.fd(), libc::POLLOUT, deadline, "write")?;
            }
            Err(err) => return Err(os(err)),
        }
    }
    // A TLS session may hold records it could not send yet.
    if let Stream::Tls(fd, c) = s {
        while c.wants_write() {
            match c.write_tls(&mut FdIo(*fd)) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait(*fd, libc::POLLOUT, deadline, "write")?;
                }
                Err(err) => return Err(os(err)),
            }
        }
    }
    Ok(())
}

/// `just_sent`: the command went out a moment ago, so its reply is almost never there yet:
/// wait for it first instead of a `recv` that would only say EAGAIN (one syscall fewer per
/// command).
fn read_until(
    s: &mut Stream<'_>,
    parser: &mut Parser,
    deadline: Option<Deadline>,
    just_sent: bool,
) -> Result<Reply, IoError> {
    if let Some(reply) = parser.next_reply()? {
        return Ok(reply);
    }
    // A TLS session may hold decrypted bytes already: then they are read without a wait.
    if just_sent {
        let ready = match s {
            Stream::Plain(_) => false,
            Stream::Tls(_, c) => tls_has_plaintext(c),
        };
        if !ready {
            wait(s.fd(), libc::POLLIN, deadline, "read")?;
        }
    }
    loop {
        match s.recv(parser.try_spare(READ_CHUNK)?) {
            Ok(0) => return Err(IoError::Eof),
            Ok(n) => {
                parser.advance(n);
                if let Some(reply) = parser.next_reply()? {
                    return Ok(reply);
                }
                // A peer that keeps sending never makes recv block: check the deadline here
                // too, or an endless trickle would outlive it.
                if Deadline::passed(deadline) {
                    return Err(timeout("read", deadline));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait(s.fd(), libc::POLLIN, deadline, "read")?;
            }
            Err(err) => return Err(os(err)),
        }
    }
}

pub(crate) fn timeout(op: &'static str, deadline: Option<Deadline>) -> IoError {
    IoError::Timeout(op, deadline.map_or(Duration::ZERO, |d| d.timeout))
}

/// Waits until `fd` is ready for `events` or the deadline passes. Readiness includes errors and
/// hang-ups: the `send`/`recv` that follows reports them precisely.
pub(crate) fn wait(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Deadline>,
    op: &'static str,
) -> Result<(), IoError> {
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timeout(op, deadline));
                }
                // Round up: rounding down would wake early and spin through 0 ms polls.
                libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000))
                    .unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, initialised pollfd that outlives the call, and the count
        // passed is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(IoError::Os(io::Error::from_raw_os_error(libc::EBADF)));
            }
            return Ok(());
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(IoError::Os(err));
            }
        }
        // Timed out or interrupted: the loop recomputes what is left of the deadline.
    }
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call, and
    // `send` only reads from it. A bad `fd` is reported as an error, not undefined behaviour.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `recv` without MSG_DONTWAIT: blocks if the fd is in blocking mode (for at most its
/// SO_RCVTIMEO).
fn recv_blocking(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: as in `recv`.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call, and
    // `recv` writes at most that many. A bad `fd` is reported as an error, not undefined
    // behaviour.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// The byte stream of a conn, borrowed for one call: its socket, or a TLS session over it.
/// Every function here takes one, so the same code serves both; on a plain conn the cost
/// is one match.
pub enum Stream<'a> {
    Plain(RawFd),
    Tls(RawFd, &'a mut ClientConnection),
}

impl Stream<'_> {
    /// The socket underneath, for `poll`.
    #[inline]
    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Plain(fd) | Stream::Tls(fd, _) => *fd,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(..))
    }

    /// One non-blocking write: how many bytes were taken (sent, or for TLS encrypted into
    /// the session, which sends what the socket takes now and keeps the rest for
    /// `flush`), or `WouldBlock` when nothing could be (poll for POLLOUT).
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(fd) => send(*fd, buf),
            Stream::Tls(fd, c) => tls_send(*fd, c, buf),
        }
    }

    /// Sends records a TLS session still holds; Ok once none is left, `WouldBlock` when
    /// the socket is full (poll for POLLOUT). Nothing to do on a plain stream.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(fd, c) => tls_flush(*fd, c),
        }
    }

    /// Whether a TLS session holds records not sent yet.
    pub fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(_, c) => c.wants_write(),
        }
    }

    /// One non-blocking read: bytes (decrypted, on TLS), 0 at EOF (or the server's
    /// `close_notify`), `WouldBlock` when nothing has arrived (poll for POLLIN).
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(fd) => recv(*fd, buf),
            Stream::Tls(fd, c) => tls_recv(*fd, c, buf),
        }
    }

    /// An `io::Error` from `send`, `recv` or `flush` as an `IoError` (a TLS failure is
    /// `IoError::Tls`).
    pub fn error(err: io::Error) -> IoError {
        os(err)
    }
}

/// The socket under a TLS session, as rustls reads and writes records: non-blocking per
/// call, and never SIGPIPE.
struct FdIo(RawFd);

impl std::io::Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.0, buf)
    }
}

impl std::io::Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The socket under a TLS session for a blocking read of records: `recv` without
/// MSG_DONTWAIT, bounded by the socket's SO_RCVTIMEO (`ReplyWait::BlockingRecv`).
struct FdIoBlocking(RawFd);

impl std::io::Read for FdIoBlocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_blocking(self.0, buf)
    }
}

/// Whether the session holds decrypted bytes not read yet (or has seen the end of the
/// stream: a read then returns at once too). No system call.
pub(crate) fn tls_has_plaintext(c: &mut ClientConnection) -> bool {
    use std::io::BufRead;
    !matches!(c.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// An io::Error carrying a rustls error, or an OS error, as an `IoError`.
fn os(err: io::Error) -> IoError {
    if err.get_ref().is_some_and(|e| e.is::<TlsFailure>()) {
        let inner = err.into_inner().expect("checked above");
        let failure = inner.downcast::<TlsFailure>().expect("checked above");
        return IoError::Tls(Box::new(failure.0));
    }
    IoError::Os(err)
}

/// A rustls error travelling inside an `io::Error` (the `Stream` calls speak io::Result).
#[derive(Debug)]
struct TlsFailure(rustls::Error);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// The records just read: decrypted, and whatever they ask to send back (a key update's
/// answer) sent if the socket takes it now (else with the next write).
fn tls_process(fd: RawFd, c: &mut ClientConnection) -> Result<(), IoError> {
    if let Err(e) = c.process_new_packets() {
        // The alert rustls queued tells the server why; best effort.
        let _ = c.write_tls(&mut FdIo(fd));
        return Err(IoError::Tls(Box::new(e)));
    }
    if c.wants_write() {
        match tls_flush(fd, c) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(os(e)),
        }
    }
    Ok(())
}

fn tls_flush(fd: RawFd, c: &mut ClientConnection) -> io::Result<()> {
    while c.wants_write() {
        match c.write_tls(&mut FdIo(fd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn tls_send(fd: RawFd, c: &mut ClientConnection, buf: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    if buf.is_empty() {
        return Ok(0);
    }
    // Records from before first: the session's buffer is bounded.
    tls_flush(fd, c)?;
    let n = c.writer().write(buf)?;
    if n == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    match tls_flush(fd, c) {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(n),
    }
}

fn tls_recv(fd: RawFd, c: &mut ClientConnection, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    if buf.is_empty() {
        return Ok(0);
    }
    loop {
        match c.reader().read(buf) {
            // Data, or 0 after the server's close_notify.
            Ok(n) => return Ok(n),
            // EOF without close_notify: EOF all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        c.read_tls(&mut FdIo(fd))?;
        match tls_process(fd, c) {
            Ok(()) => {}
            Err(IoError::Tls(e)) => return Err(io::Error::other(TlsFailure(*e))),
            Err(IoError::Os(e)) => return Err(e),
            Err(other) => return Err(io::Error::other(other.to_string())),
        }
    }
}

/// The client side of a TLS handshake on `fd`, over by `deadline`. A failed verification
/// or a bad record is `Tls`; the server closing the socket is `Eof`.
pub(crate) fn tls_handshake(
    fd: RawFd,
    c: &mut ClientConnection,
    deadline: Option<Deadline>,
) -> Result<(), IoError> {
    let mut io = FdIo(fd);
    loop {
        while c.wants_write() {
            match c.write_tls(&mut io) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(fd, libc::POLLOUT, deadline, "write")?;
                }
                Err(e) => return Err(IoError::Os(e)),
            }
        }
        if !c.is_handshaking() {
            return Ok(());
        }
        match c.read_tls(&mut io) {
            Ok(0) => return Err(IoError::Eof),
            Ok(_) => {
                if let Err(e) = c.process_new_packets() {
                    let _ = c.write_tls(&mut io);
                    return Err(IoError::Tls(Box::new(e)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(fd, libc::POLLIN, deadline, "read")?;
            }
            Err(e) => return Err(IoError::Os(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// `command_with` by timeouts, pushes returned.
    fn command_timeouts(
        fd: &mut Stream<'_>,
        parser: &mut Parser,
        out: &mut Vec<u8>,
        args: &[&[u8]],
        read: Option<Duration>,
        write: Option<Duration>,
        wait: ReplyWait,
    ) -> Result<Reply, IoError> {
        let (r, w) = (Deadline::after(read), Deadline::after(write));
        command_with(fd, parser, out, args, r, w, wait, Pushes::Return)
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("socketpair")
    }

    /// The file status flags, to check that they are left alone.
    fn flags(fd: RawFd) -> libc::c_int {
        // SAFETY: F_GETFL only reads the flags of an fd the test owns.
        let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert!(f >= 0, "{}", io::Error::last_os_error());
        f
    }

    /// Reads exactly `n` bytes on the peer side.
    fn read_exact(peer: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        peer.read_exact(&mut got).expect("peer read");
        got
    }

    fn cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        out
    }

    /// A GET whose reply comes in pieces, with pauses, on a blocking socket: the reader
    /// has to wait (in poll, or in the blocking recv, then poll) for the rest.
    fn round_trip_in_pieces(wait: ReplyWait) {
        let (ours, mut peer) = pair();
        if wait == ReplyWait::BlockingRecv {
            bound_recv(&ours, Some(Duration::from_secs(5)));
        }
        let request = cmd(&[b"GET", b"key"]);
        let len = request.len();
        let server = thread::spawn(move || {
            let got = read_exact(&mut peer, len);
            for piece in [&b"$1"[..], b"1\r\nhello", b" world", b"\r\n"] {
                thread::sleep(Duration::from_millis(20));
                peer.write_all(piece).unwrap();
            }
            (got, peer)
        });
        let before = flags(ours.as_raw_fd());
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let reply = command_timeouts(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            &mut out,
            &[b"GET", b"key"],
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(5)),
            wait,
        )
        .unwrap();
        assert_eq!(reply, Reply::String(b"hello world".to_vec()));
        let (got, _peer) = server.join().unwrap();
        assert_eq!(got, request);
        assert_eq!(out, request, "out_buf holds the encoded command");
        assert_eq!(flags(ours.as_raw_fd()), before);
        assert!(parser.is_clean());
    }

    /// `read_frame_arrived` reads on until a whole frame or EAGAIN (not one recv, as
    /// `read_frame` with a deadline already passed does): None leaves the socket empty, a
    /// part of a frame buffered in the parser.
    #[test]
    fn read_frame_arrived_reads_until_a_whole_frame_or_eagain() {
        let (ours, mut peer) = pair();
        // Room for the whole first part in the socket at once.
        let size: libc::c_int = 1 << 20;
        // SAFETY: a valid int option value for an fd the test owns.
        let rc = unsafe {
            libc::setsockopt(
                peer.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let body = vec![b'b'; 200_000];
        let mut frame = format!("${}\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\r\n");
        peer.write_all(b"+a\r\n").unwrap();
        peer.write_all(&frame[..150_000]).unwrap();
        let mut parser = Parser::new();
        let mut s = Stream::Plain(ours.as_raw_fd());
        let got = read_frame_arrived(&mut s, &mut parser).unwrap();
        assert_eq!(got, Some(Reply::Status(b"a".to_vec())));
        // 150 kB of the bulk, more than the parser's buffer takes in two reads: all read,
        // the frame not whole yet.
        assert_eq!(read_frame_arrived(&mut s, &mut parser).unwrap(), None);
        assert_eq!(socket_peek_byte(ours.as_raw_fd()).unwrap(), None);
        assert!(!parser.is_clean());
        peer.write_all(&frame[150_000..]).unwrap();
        let got = read_frame_arrived(&mut s, &mut parser).unwrap();
        assert_eq!(got, Some(Reply::String(body)));
        assert_eq!(read_frame_arrived(&mut s, &mut parser).unwrap(), None);
        drop(peer);
        assert!(matches!(
            read_frame_arrived(&mut s, &mut parser),
            Err(IoError::Eof)
        ));
    }

    #[test]
    fn command_round_trip_on_a_blocking_socket() {
        round_trip_in_pieces(ReplyWait::Poll);
    }

    #[test]
    fn blocking_recv_round_trip_with_a_reply_in_pieces() {
        round_trip_in_pieces(ReplyWait::BlockingRecv);
    }

    /// A PING on a socket the caller switched to O_NONBLOCK: the reply is awaited in poll
    /// (in `BlockingRecv` mode after a recv that says EAGAIN at once), flags untouched.
    fn round_trip_nonblocking(wait: ReplyWait) {
        let (ours, mut peer) = pair();
        if wait == ReplyWait::BlockingRecv {
            bound_recv(&ours, Some(Duration::from_secs(5)));
        }
        ours.set_nonblocking(true).unwrap();
        let before = flags(ours.as_raw_fd());
        assert_ne!(before & libc::O_NONBLOCK, 0);
        let server = thread::spawn(move || {
            read_exact(&mut peer, cmd(&[b"PING"]).len());
            thread::sleep(Duration::from_millis(50));
            peer.write_all(b"+PONG\r\n").unwrap();
            peer
        });
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let reply = command_timeouts(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            &mut out,
            &[b"PING"],
            Some(Duration::from_secs(5)),
            None,
            wait,
        )
        .unwrap();
        assert_eq!(reply, Reply::Status(b"PONG".to_vec()));
        assert_eq!(flags(ours.as_raw_fd()), before);
        server.join().unwrap();
    }

    #[test]
    fn command_round_trip_on_a_nonblocking_socket() {
        round_trip_nonblocking(ReplyWait::Poll);
    }

    #[test]
    fn blocking_recv_on_a_nonblocking_fd_still_gets_the_reply() {
        round_trip_nonblocking(ReplyWait::BlockingRecv);
    }

    #[test]
    fn an_error_reply_is_ok() {
        let (ours, mut peer) = pair();
        peer.write_all(b"-ERR unknown command 'NOPE'\r\n").unwrap();
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let reply = command_timeouts(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            &mut out,
            &[b"NOPE"],
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(5)),
            ReplyWait::Poll,
        )
        .unwrap();
        assert_eq!(reply, Reply::Error(b"ERR unknown command 'NOPE'".to_vec()));
    }

    #[test]
    fn pipeline_returns_one_reply_per_command_in_order() {
        let (ours, mut peer) = pair();
        let cmds: [&[&[u8]]; 3] = [&[b"SET", b"k", b"v"], &[b"INCR", b"k"], &[b"GET", b"k"]];
        let mut request = Vec::new();
        for c in cmds {
            request.extend_from_slice(&cmd(c));
        }
        let len = request.len();
        let server = thread::spawn(move || {
            let got = read_exact(&mut peer, len);
            // Replies split across writes, one boundary falling inside a reply.
            peer.write_all(b"+OK\r\n-ERR value is not an int").unwrap();
            thread::sleep(Duration::from_millis(20));
            peer.write_all(b"eger or out of range\r\n$1\r\nv\r\n")
                .unwrap();
            (got, peer)
        });
        let mut parser = Parser::new();
        let mut out = b"stale bytes".to_vec();
        let replies = pipeline(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            &mut out,
            &cmds,
            Deadline::after(Some(Duration::from_secs(5))),
            Deadline::after(Some(Duration::from_secs(5))),
        )
        .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Status(b"OK".to_vec()),
                Reply::Error(b"ERR value is not an integer or out of range".to_vec()),
                Reply::String(b"v".to_vec()),
            ]
        );
        let (got, _peer) = server.join().unwrap();
        assert_eq!(got, request, "all three commands, in order, in one stream");
        assert_eq!(out, request);
        assert!(parser.is_clean());
    }

    #[test]
    fn unread_input_in_the_parser_or_the_socket_is_seen() {
        let (ours, mut peer) = pair();
        let fd = ours.as_raw_fd();
        let mut parser = Parser::new();
        assert!(!has_unread_input(&mut Stream::Plain(fd), &parser).unwrap());
        parser.feed(b"+OK\r\n+EXTRA\r\n");
        assert_eq!(
            parser.next_reply().unwrap(),
            Some(Reply::Status(b"OK".to_vec()))
        );
        assert!(
            has_unread_input(&mut Stream::Plain(fd), &parser).unwrap(),
            "in the parser"
        );
        parser.clear();
        peer.write_all(b"+EXTRA\r\n").unwrap();
        assert!(
            has_unread_input(&mut Stream::Plain(fd), &parser).unwrap(),
            "in the socket"
        );
        // Peeked, not consumed.
        assert_eq!(
            read_reply(
                &mut Stream::Plain(fd),
                &mut parser,
                Some(Duration::from_secs(5))
            )
            .unwrap(),
            Reply::Status(b"EXTRA".to_vec())
        );
        assert!(!has_unread_input(&mut Stream::Plain(fd), &parser).unwrap());
        drop(peer);
        assert!(matches!(
            has_unread_input(&mut Stream::Plain(fd), &parser),
            Err(IoError::Eof)
        ));
        assert_eq!(
            has_unread_input(&mut Stream::Plain(-1), &parser)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn an_empty_pipeline_does_no_io() {
        let (ours, peer) = pair();
        drop(peer);
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let replies = pipeline(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            &mut out,
            &[],
            None,
            None,
        );
        assert!(replies.unwrap().is_empty());
    }

    #[test]
    fn read_reply_parses_what_is_buffered_first() {
        let (ours, _peer) = pair();
        let mut parser = Parser::new();
        parser.feed(b":1\r\n:2\r\n");
        let timeout = Some(Duration::from_millis(1));
        assert_eq!(
            read_reply(&mut Stream::Plain(ours.as_raw_fd()), &mut parser, timeout).unwrap(),
            Reply::Integer(1)
        );
        assert_eq!(
            read_reply(&mut Stream::Plain(ours.as_raw_fd()), &mut parser, timeout).unwrap(),
            Reply::Integer(2)
        );
        assert!(matches!(
            read_reply(&mut Stream::Plain(ours.as_raw_fd()), &mut parser, timeout),
            Err(IoError::Timeout("read", _))
        ));
    }

    #[test]
    fn a_large_reply_arrives_whole() {
        let (ours, mut peer) = pair();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let wire = cmd(&[&body, b"tail"]);
        let server = thread::spawn(move || {
            peer.write_all(&wire).unwrap();
            peer
        });
        let mut parser = Parser::new();
        let reply = read_reply(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut parser,
            Some(Duration::from_secs(10)),
        );
        assert_eq!(
            reply.unwrap(),
            Reply::Array(vec![Reply::String(body), Reply::String(b"tail".to_vec())])
        );
        server.join().unwrap();
    }

    /// The read of a reply that never comes ends with the read timeout: `read_reply`
    /// (None) or a PING by `command_with` in mode `wait`.
    fn assert_read_times_out_with(ours: &UnixStream, wait: Option<ReplyWait>) {
        let timeout = Duration::from_millis(300);
        let mut parser = Parser::new();
        let start = Instant::now();
        let res = match wait {
            None => read_reply(
                &mut Stream::Plain(ours.as_raw_fd()),
                &mut parser,
                Some(timeout),
            ),
            Some(wait) => command_timeouts(
                &mut Stream::Plain(ours.as_raw_fd()),
                &mut parser,
                &mut Vec::new(),
                &[b"PING"],
                Some(timeout),
                Some(timeout),
                wait,
            ),
        };
        let elapsed = start.elapsed();
        match res {
            Err(IoError::Timeout("read", t)) => assert_eq!(t, timeout),
            other => panic!("{other:?}"),
        }
        assert!(elapsed >= timeout, "{elapsed:?}");
        assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    }

    fn assert_read_times_out(ours: &UnixStream) {
        assert_read_times_out_with(ours, None);
    }

    #[test]
    fn read_timeout_fires_when_the_peer_never_answers() {
        let (ours, _peer) = pair();
        // Blocking fd: without MSG_DONTWAIT + poll this would hang forever.
        assert_read_times_out(&ours);
        ours.set_nonblocking(true).unwrap();
        assert_read_times_out(&ours);
    }

    #[test]
    fn read_timeout_covers_the_whole_reply() {
        let (ours, mut peer) = pair();
        // Bytes keep coming, never a whole reply: each recv succeeds, yet the deadline holds.
        let server = thread::spawn(move || {
            peer.write_all(b"$1000000\r\n").unwrap();
            for _ in 0..100 {
                thread::sleep(Duration::from_millis(20));
                if peer.write_all(b"xxxx").is_err() {
                    break;
                }
            }
        });
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let res = read_reply(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut Parser::new(),
            Some(timeout),
        );
        let elapsed = start.elapsed();
        assert!(matches!(res, Err(IoError::Timeout("read", _))), "{res:?}");
        assert!(elapsed >= timeout && elapsed < timeout + Duration::from_secs(2));
        drop(ours);
        server.join().unwrap();
    }

    #[test]
    fn write_timeout_fires_when_the_peer_never_reads() {
        let (ours, _peer) = pair();
        let timeout = Duration::from_millis(300);
        let big = vec![b'x'; 64 * 1024 * 1024];
        let start = Instant::now();
        let res = write_all(&mut Stream::Plain(ours.as_raw_fd()), &big, Some(timeout));
        let elapsed = start.elapsed();
        assert!(
            matches!(res, Err(IoError::Timeout("write", t)) if t == timeout),
            "{res:?}"
        );
        assert!(elapsed >= timeout && elapsed < timeout + Duration::from_secs(2));
        assert_eq!(
            res.unwrap_err().to_string(),
            "redis: i/o timeout (write after 300ms)"
        );
    }

    #[test]
    fn eof_mid_reply_is_eof() {
        let (ours, mut peer) = pair();
        peer.write_all(b"$10\r\nhel").unwrap();
        drop(peer);
        let res = read_reply(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut Parser::new(),
            Some(Duration::from_secs(5)),
        );
        assert!(matches!(res, Err(IoError::Eof)), "{res:?}");
    }

    #[test]
    fn malformed_reply_is_a_protocol_error() {
        let (ours, mut peer) = pair();
        peer.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        let res = read_reply(
            &mut Stream::Plain(ours.as_raw_fd()),
            &mut Parser::new(),
            Some(Duration::from_secs(5)),
        );
        match res {
            Err(e @ IoError::Protocol(ProtocolError::UnknownType { byte: b'H', .. })) => {
                assert!(
                    e.to_string()
                        .starts_with("redis: protocol error: unknown reply type")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_fd_is_an_os_error() {
        let res = read_reply(
            &mut Stream::Plain(-1),
            &mut Parser::new(),
            Some(Duration::from_millis(100)),
        );
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        let res = write_all(&mut Stream::Plain(-1), b"x", None);
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    /// SIGPIPE is blocked in this thread only, so a SIGPIPE raised by a write here stays pending
    /// (blocked signals are queued even when the disposition is to ignore them) and can be
    /// observed without the signal killing, or the test runner's SIG_IGN hiding, anything.
    fn sigpipe_pending_after(f: impl FnOnce() + Send) -> bool {
        thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: the sigset_t values are initialised by sigemptyset before any other
                // use, and pthread_sigmask/sigpending only touch this thread's signal state.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGPIPE);
                    assert_eq!(
                        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
                        0
                    );
                }
                f();
                // SAFETY: as above; `pending` is written by sigpending before it is read.
                unsafe {
                    let mut pending: libc::sigset_t = std::mem::zeroed();
                    assert_eq!(libc::sigpending(&mut pending), 0);
                    let raised = libc::sigismember(&pending, libc::SIGPIPE) == 1;
                    if raised {
                        // Consume it so that nothing is left pending for the process.
                        let mut set: libc::sigset_t = std::mem::zeroed();
                        libc::sigemptyset(&mut set);
                        libc::sigaddset(&mut set, libc::SIGPIPE);
                        let zero = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 0,
                        };
                        libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
                    }
                    raised
                }
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn write_to_a_closed_peer_is_epipe_without_sigpipe() {
        // First prove the detector works: a plain write to a closed peer does raise SIGPIPE.
        let raised = sigpipe_pending_after(|| {
            let (ours, peer) = pair();
            drop(peer);
            // SAFETY: the buffer is a valid 4-byte static; the fd is open for the call.
            let n = unsafe { libc::write(ours.as_raw_fd(), b"ping".as_ptr().cast(), 4) };
            assert_eq!(n, -1);
        });
        assert!(
            raised,
            "the SIGPIPE detector saw nothing: this test would prove nothing"
        );

        let raised = sigpipe_pending_after(|| {
            let (ours, peer) = pair();
            drop(peer);
            let res = write_all(
                &mut Stream::Plain(ours.as_raw_fd()),
                b"*1\r\n$4\r\nPING\r\n",
                None,
            );
            match res {
                Err(ref e @ IoError::Os(ref os)) => {
                    assert_eq!(os.raw_os_error(), Some(libc::EPIPE));
                    assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
                }
                other => panic!("{other:?}"),
            }
            let mut parser = Parser::new();
            let mut out = Vec::new();
            let res = command_timeouts(
                &mut Stream::Plain(ours.as_raw_fd()),
                &mut parser,
                &mut out,
                &[b"PING"],
                None,
                None,
                ReplyWait::Poll,
            );
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EPIPE));
        });
        assert!(!raised, "write_all raised SIGPIPE");
    }

    #[test]
    fn write_all_on_a_nonblocking_socket_waits_for_room() {
        let (ours, mut peer) = pair();
        ours.set_nonblocking(true).unwrap();
        let before = flags(ours.as_raw_fd());
        let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| i as u8).collect();
        let len = big.len();
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            read_exact(&mut peer, len)
        });
        write_all(
            &mut Stream::Plain(ours.as_raw_fd()),
            &big,
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(reader.join().unwrap(), big);
        assert_eq!(flags(ours.as_raw_fd()), before);
    }

    /// Sets SO_RCVTIMEO as `Conn::set_timeouts` does for `ReplyWait::BlockingRecv`.
    fn bound_recv(s: &UnixStream, timeout: Option<Duration>) {
        s.set_read_timeout(timeout).unwrap();
    }

    #[test]
    fn blocking_recv_read_timeout_fires_on_a_blocking_and_a_nonblocking_fd() {
        let (ours, _peer) = pair();
        bound_recv(&ours, Some(Duration::from_millis(300)));
        // The kernel's SO_RCVTIMEO ends the recv; the deadline then says timeout.
        assert_read_times_out_with(&ours, Some(ReplyWait::BlockingRecv));
        // A caller switched the fd to O_NONBLOCK: recv says EAGAIN at once, poll waits.
        ours.set_nonblocking(true).unwrap();
        assert_read_times_out_with(&ours, Some(ReplyWait::BlockingRecv));
    }
}
