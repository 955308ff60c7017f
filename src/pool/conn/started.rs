//! Commands started without waiting: `Conn::start` encodes a command (or a pipeline) and
//! writes what the socket takes; `Conn::finish` writes the rest and parses what arrived,
//! saying what to poll the fd for (`Want`) until every reply is there. The thread never
//! waits in the library, so an event loop (libuv, Go's netpoller, asyncio) can run many
//! conns on one thread. Deadlines are the blocking call's, computed once at the start.

use std::time::{Duration, Instant};

use super::{
    Conn, ConnIo, PEEK_STARTED, READONLY_REASON, SESSION_STARTED, keep_push, replies_are_pushes,
    track_session,
};
use crate::error::Error;
use crate::redis::io::{self, IoError};
use crate::redis::resp::Reply;

/// What the fd must be ready for before `Conn::finish` can make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Poll for POLLIN: the reply has not arrived (whole).
    Read,
    /// Poll for POLLOUT: the socket (or, on TLS, the session) still holds bytes of the
    /// command to send.
    Write,
}

/// What finishing a started command came to.
#[derive(Debug)]
pub enum Progress {
    /// Every reply is there: handed to the callback, in order.
    Done,
    /// Not yet: poll the fd for this, then call `finish` again.
    Pending(Want),
}

/// Per command: what it does with RESP3 pushes, and whether it is a HELLO.
const CMD_PUSH_RETURN: u8 = 1;
const CMD_PUSH_REFUSE: u8 = 2;
const CMD_HELLO: u8 = 4;

/// The state of a started command, kept in the conn's I/O block and reused (its vectors
/// keep their room: a conn that runs one started command after another allocates nothing
/// for them once warm).
#[derive(Default)]
pub(super) struct Started {
    /// Bytes of `ConnIo::out` sent.
    sent: usize,
    /// One byte per command (`CMD_*`).
    cmds: Vec<u8>,
    /// The replies read so far (handed over once all are there).
    replies: Vec<Reply>,
    read: Option<io::Deadline>,
    write: Option<io::Deadline>,
    readonly: bool,
    /// A HELLO's reply switched the protocol (Some(resp3)).
    hello: Option<bool>,
}

/// The error for a command or raw I/O on a conn whose started command is unfinished.
pub(super) fn unfinished() -> Error {
    Error::InvalidArg(
        "redis: a command started on this conn (pool_conn_start) is unfinished: finish it \
         (pool_conn_finish) before anything else is sent or read on the conn"
            .into(),
    )
}

impl Conn {
    /// Whether a command started with `start` is unfinished.
    pub fn is_started(&self) -> bool {
        self.s.peek & PEEK_STARTED != 0
    }

    /// How many replies the started command waits for (0 when none is started).
    pub fn started_len(&self) -> usize {
        match &self.s.io {
            Some(cio) if self.is_started() => cio.started.cmds.len(),
            _ => 0,
        }
    }

    /// The earliest deadline of the started command still ahead (its write deadline while
    /// bytes are left to send, else its read deadline), for the host's poll timeout. None
    /// when there is none, or no command is started.
    pub fn started_deadline(&self) -> Option<Instant> {
        let cio = self.s.io.as_ref().filter(|_| self.is_started())?;
        let st = &cio.started;
        let writing = st.sent < cio.out.len() || self.pending_write();
        let d = if writing { st.write } else { st.read };
        d.map(|d| d.instant())
    }

    /// Starts `cmds` (one command, or a pipeline) without waiting: encodes them and writes
    /// what the socket takes now. `read` as in `pipeline` (Some = this call's read timeout
    /// instead of the pool's; None inside = none); the read and write deadlines are counted
    /// from here, as the blocking call counts them from its start. The session is tracked
    /// as for `command`. Then `finish`, when the fd is ready for what this returns.
    ///
    /// Refused (nothing sent, nothing changed) on a broken or inherited conn (`BadConn`),
    /// and while an earlier started command is unfinished (`InvalidArg`). A conn whose fd
    /// was lent out or that is new is checked for unread bytes first, as by `command`.
    /// A write failure marks the conn broken.
    pub fn start(
        &mut self,
        cmds: &[&[&[u8]]],
        read: Option<Option<Duration>>,
    ) -> Result<Want, Error> {
        if let Some(why) = &self.s.broken {
            return Err(Error::BadConn(why.to_string()));
        }
        if self.is_inherited() {
            return Err(Error::BadConn(
                "the conn was opened before fork(): the parent process owns its session".into(),
            ));
        }
        if self.is_started() {
            return Err(unfinished());
        }
        self.check_not_retired()?;
        if cmds.is_empty() {
            return Err(Error::invalid("no command to start"));
        }
        if self.s.peek != 0 {
            self.check_in_step()?;
        }
        let (rt, wt) = self.timeouts();
        let now = Instant::now();
        let read = io::Deadline::after_from(now, read.unwrap_or(rt));
        let write = io::Deadline::after_from(now, wt);
        let resp3 = self.s.resp3;
        let limits = self.s.reply_limits;
        for args in cmds {
            self.s.session = track_session(self.s.session, self.s.session_db, args);
        }
        let st = &mut *self.s;
        let cio = st.io.get_or_insert_with(|| ConnIo::take(limits));
        cio.out.clear();
        let started = &mut cio.started;
        started.cmds.clear();
        started.replies.clear();
        for args in cmds {
            crate::redis::resp::encode_command(&mut cio.out, args);
            let name = args.first().copied().unwrap_or_default();
            let mut bits = match (resp3, replies_are_pushes(name)) {
                (false, _) => CMD_PUSH_REFUSE,
                (true, true) => CMD_PUSH_RETURN,
                (true, false) => 0,
            };
            if name.eq_ignore_ascii_case(b"HELLO") {
                bits |= CMD_HELLO;
            }
            started.cmds.push(bits);
        }
        started.sent = 0;
        started.read = read;
        started.write = write;
        started.readonly = false;
        started.hello = None;
        st.peek |= PEEK_STARTED;
        st.session |= SESSION_STARTED;
        match self.send_started() {
            Ok(want) => Ok(want),
            Err(e) => Err(self.started_failed(e)),
        }
    }

    /// Makes progress on the started command without waiting: sends what is left of it,
    /// then parses what has arrived. `Done` hands every reply to `on_reply` in order (a
    /// Redis error reply is a reply) and ends the command; `Pending` says what to poll the
    /// fd for. A deadline that has passed while the command still waits for the fd fails
    /// it (`Error::Io`, an i/o timeout, as the blocking call's), and any failure marks the
    /// conn broken; the replies read before a failure are handed over first, and the error
    /// comes with how many. `InvalidArg` (nothing changed) when no command is started.
    pub fn finish(&mut self, on_reply: &mut dyn FnMut(Reply)) -> Result<Progress, (usize, Error)> {
        if !self.is_started() {
            return Err((
                0,
                Error::invalid("redis: no command started on this conn (pool_conn_start)"),
            ));
        }
        let res = match self.send_started() {
            Ok(Want::Read) => self.read_started(),
            other => other.map(Progress::Pending),
        };
        match res {
            Ok(Progress::Pending(want)) => Ok(Progress::Pending(want)),
            Ok(Progress::Done) => {
                let st = &mut *self.s;
                let cio = st.io.as_mut().expect("a started conn has its I/O block");
                let started = &mut cio.started;
                // Pushes right behind the last reply (a RESP3 conn) are kept when the conn
                // keeps pushes (`keep_pushes`), else skipped, as after a blocking command;
                // anything else is a reply nobody asked for: the conn is out of step.
                let mut stray = false;
                while st.resp3 && !cio.parser.is_clean() {
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
                    st.broken = Some(Box::new("unexpected bytes after a reply".into()));
                } else if started.readonly {
                    st.broken = Some(Box::new(READONLY_REASON.into()));
                }
                if let Some(resp3) = started.hello {
                    st.resp3 = resp3;
                }
                st.peek &= !PEEK_STARTED;
                st.session &= !SESSION_STARTED;
                for reply in started.replies.drain(..) {
                    on_reply(reply);
                }
                // The I/O state goes back to the thread, as after a blocking command.
                self.release_io();
                Ok(Progress::Done)
            }
            Err(e) => {
                let n = self.s.io.as_ref().map_or(0, |c| c.started.replies.len());
                let e = self.started_failed(e);
                if let Some(cio) = self.s.io.as_mut() {
                    for reply in cio.started.replies.drain(..) {
                        on_reply(reply);
                    }
                }
                Err((n, e))
            }
        }
    }

    /// Ends the started command on a failure: the conn is broken (the stream's position
    /// is unknown), and no longer mid-command.
    fn started_failed(&mut self, e: IoError) -> Error {
        let msg = e.to_string();
        self.s.broken = Some(Box::new(msg.as_str().into()));
        self.s.peek &= !PEEK_STARTED;
        self.s.session &= !SESSION_STARTED;
        match e {
            IoError::Protocol(_) | IoError::PushOnResp2 => Error::Protocol(msg),
            _ => Error::Io(msg),
        }
    }

    /// Sends what is left of the started command: `Read` once all of it is out (a TLS
    /// session's records too), `Write` while the socket is full.
    fn send_started(&mut self) -> Result<Want, IoError> {
        let fd = self.fd();
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.as_mut().expect("a started conn has its I/O block");
        let started = &mut cio.started;
        let blocked = |deadline: Option<io::Deadline>| {
            if io::Deadline::passed(deadline) {
                Err(io::timeout("write", deadline))
            } else {
                Ok(Want::Write)
            }
        };
        while started.sent < cio.out.len() {
            match stream.send(&cio.out[started.sent..]) {
                Ok(0) => return Err(IoError::Os(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => started.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return blocked(started.write);
                }
                Err(e) => return Err(io::Stream::error(e)),
            }
        }
        if stream.wants_write() {
            match stream.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return blocked(started.write);
                }
                Err(e) => return Err(io::Stream::error(e)),
            }
        }
        Ok(Want::Read)
    }

    /// Parses what has arrived (reading the socket until it has nothing more) into the
    /// started command's replies: `Done` once there is one per command.
    fn read_started(&mut self) -> Result<Progress, IoError> {
        let fd = self.fd();
        let close_on_readonly = self.s.close_on_readonly;
        let st = &mut *self.s;
        let mut stream = match &mut st.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        let cio = st.io.as_mut().expect("a started conn has its I/O block");
        let started = &mut cio.started;
        let mut got_data = false;
        loop {
            while started.replies.len() < started.cmds.len() {
                let Some(reply) = cio.parser.next_reply()? else {
                    break;
                };
                let bits = started.cmds[started.replies.len()];
                if matches!(reply, Reply::Push(_)) && bits & CMD_PUSH_RETURN == 0 {
                    if bits & CMD_PUSH_REFUSE != 0 {
                        return Err(IoError::PushOnResp2);
                    }
                    // Kept for the user when asked (`keep_pushes`), else skipped; a flood
                    // of buffered pushes is cut by the deadline, as in the blocking call.
                    if let Some(kept) = st.kept.as_mut() {
                        keep_push(kept, reply);
                    }
                    if io::Deadline::passed(started.read) {
                        return Err(io::timeout("read", started.read));
                    }
                    continue;
                }
                if close_on_readonly
                    && matches!(&reply, Reply::Error(e) if e.starts_with(b"READONLY"))
                {
                    started.readonly = true;
                }
                if bits & CMD_HELLO != 0 {
                    match reply {
                        Reply::Map(_) => started.hello = Some(true),
                        Reply::Array(_) => started.hello = Some(false),
                        _ => {}
                    }
                }
                started.replies.push(reply);
            }
            if started.replies.len() == started.cmds.len() {
                return Ok(Progress::Done);
            }
            // A peer that keeps sending never makes recv say EAGAIN: the deadline is
            // checked after every read that did not complete the replies, too.
            if got_data && io::Deadline::passed(started.read) {
                return Err(io::timeout("read", started.read));
            }
            match stream.recv(cio.parser.try_spare(io::READ_CHUNK)?) {
                Ok(0) => return Err(IoError::Eof),
                Ok(n) => {
                    cio.parser.advance(n);
                    got_data = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if io::Deadline::passed(started.read) {
                        return Err(io::timeout("read", started.read));
                    }
                    // A TLS session may have records to send back (a key update's answer)
                    // that the socket did not take: those first.
                    if stream.wants_write() {
                        return Ok(Progress::Pending(Want::Write));
                    }
                    return Ok(Progress::Pending(Want::Read));
                }
                Err(e) => return Err(io::Stream::error(e)),
            }
        }
    }
}
