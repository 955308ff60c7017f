//! The Redis session a new conn is set up with before anyone gets it: HELLO 3 (with AUTH
//! and SETNAME inside) or AUTH, then SELECT and CLIENT SETNAME, all written at once and
//! answered in one round trip. The set-up consumes exactly its own replies: each must be
//! its step's answer and nothing may follow the last, or the conn is refused (a banner
//! or an extra reply would otherwise answer every later command with the reply before).

use std::fmt;

use super::io::{self, IoError};
use super::resp::{Parser, Reply};

/// What every new conn is set up with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// ACL user; None = the default user.
    pub username: Option<String>,
    /// None = no AUTH.
    pub password: Option<String>,
    /// CLIENT SETNAME value.
    pub client_name: Option<String>,
    /// SELECT db when non-zero.
    pub db: u32,
    /// 2 (RESP2, no HELLO) or 3 (HELLO 3).
    pub protocol: u8,
}

/// The password never appears in logs or messages.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_name", &self.client_name)
            .field("db", &self.db)
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// Why a set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The server refused a step: its error text (e.g. "WRONGPASS invalid username-password
    /// pair or user is disabled."). Retrying with the same settings cannot help.
    #[error("redis: {step} refused: {text}")]
    Refused { step: &'static str, text: String },
    /// The conn failed mid-way (timeout, EOF, malformed reply): a dial-like failure.
    #[error("redis: session set-up ({step}) failed: {err}")]
    Io { step: &'static str, err: IoError },
    /// The server's replies are out of step with the set-up's commands: a reply that is not
    /// the answer to its step (a banner sent on accept shifts every reply by one), or bytes
    /// after the last reply (one reply more than asked for). Handed on, such a conn would
    /// answer every command with the reply to the one before.
    #[error("redis: {0} (a banner or an extra reply?)")]
    OutOfStep(String),
}

/// Whether `reply` is what a successful `step` answers: HELLO a map (an array from a
/// RESP2 reply writer), PING "+PONG", every other step "+OK".
fn is_answer_to(step: &str, reply: &Reply) -> bool {
    match step {
        "HELLO 3" => matches!(reply, Reply::Map(_) | Reply::Array(_)),
        "PING" => matches!(reply, Reply::Status(s) if s == b"PONG"),
        _ => matches!(reply, Reply::Status(s) if s == b"OK"),
    }
}

/// A reply, short, for a message: a status or string escaped (at most 32 bytes of it), or
/// the kind of reply.
fn describe(reply: &Reply) -> String {
    let text = |prefix: &str, b: &[u8]| {
        let cut = &b[..b.len().min(32)];
        let more = if b.len() > 32 { "..." } else { "" };
        format!("{prefix}{}{more}", cut.escape_ascii())
    };
    match reply {
        Reply::Status(b) => text("+", b),
        Reply::String(b) => text("$", b),
        Reply::Integer(i) => format!(":{i}"),
        Reply::Nil => "nil".into(),
        Reply::Array(_) => "an array".into(),
        Reply::Map(_) => "a map".into(),
        Reply::Push(_) => "a push".into(),
        _ => "a RESP3 value".into(),
    }
}

/// Redis refuses CLIENT SETNAME with bytes outside '!'..='~' (spaces, newlines, control
/// and non-ASCII bytes): checked once when the options are made, not on every dial.
pub fn valid_client_name(name: &str) -> bool {
    name.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

impl Session {
    /// Whether a new conn needs any command at all.
    pub fn is_empty(&self) -> bool {
        self.protocol != 3 && self.password.is_none() && self.db == 0 && self.client_name.is_none()
    }

    /// The commands, each with the name of its step.
    pub(crate) fn commands(&self) -> Vec<(&'static str, Vec<Vec<u8>>)> {
        let mut cmds = Vec::new();
        let user = self.username.as_deref().unwrap_or("default");
        if self.protocol == 3 {
            let mut hello: Vec<Vec<u8>> = vec![b"HELLO".to_vec(), b"3".to_vec()];
            if let Some(pass) = &self.password {
                hello.extend([b"AUTH".to_vec(), user.into(), pass.as_bytes().to_vec()]);
            }
            if let Some(name) = &self.client_name {
                hello.extend([b"SETNAME".to_vec(), name.as_bytes().to_vec()]);
            }
            cmds.push(("HELLO 3", hello));
        } else if let Some(pass) = &self.password {
            let auth = match &self.username {
                Some(u) => vec![
                    b"AUTH".to_vec(),
                    u.as_bytes().to_vec(),
                    pass.as_bytes().to_vec(),
                ],
                None => vec![b"AUTH".to_vec(), pass.as_bytes().to_vec()],
            };
            cmds.push(("AUTH", auth));
        }
        if self.db != 0 {
            cmds.push((
                "SELECT",
                vec![b"SELECT".to_vec(), self.db.to_string().into_bytes()],
            ));
        }
        if self.protocol != 3
            && let Some(name) = &self.client_name
        {
            cmds.push((
                "CLIENT SETNAME",
                vec![
                    b"CLIENT".to_vec(),
                    b"SETNAME".to_vec(),
                    name.as_bytes().to_vec(),
                ],
            ));
        }
        cmds
    }

    /// Runs the set-up on a freshly dialed socket by the deadlines given: one write, one
    /// reply per command. The
    /// first refusal is reported (later steps then fail with NOAUTH and say nothing new).
    /// With nothing to set up, `ping` sends a PING instead, so a server that refuses the
    /// conn (maxclients, NOAUTH) is seen now, not by the first caller. The caller's
    /// deadlines include the dial's: it is all over by then, whatever the timeouts.
    pub fn set_up(
        &self,
        s: &mut io::Stream<'_>,
        parser: &mut Parser,
        out_buf: &mut Vec<u8>,
        read: Option<io::Deadline>,
        write: Option<io::Deadline>,
        ping: bool,
    ) -> Result<(), HandshakeError> {
        let mut cmds = self.commands();
        if cmds.is_empty() {
            if !ping {
                return Ok(());
            }
            cmds.push(("PING", vec![b"PING".to_vec()]));
        }
        let args: Vec<Vec<&[u8]>> = cmds
            .iter()
            .map(|(_, a)| a.iter().map(Vec::as_slice).collect())
            .collect();
        let arg_refs: Vec<&[&[u8]]> = args.iter().map(Vec::as_slice).collect();
        let replies = io::pipeline(s, parser, out_buf, &arg_refs, read, write).map_err(|err| {
            HandshakeError::Io {
                step: cmds[0].0,
                err,
            }
        })?;
        // The first refusal is reported; a reply that is not its step's answer means the
        // replies are out of step (a banner came first).
        for ((step, _), reply) in cmds.iter().zip(&replies) {
            if let Reply::Error(text) = reply {
                return Err(HandshakeError::Refused {
                    step,
                    text: String::from_utf8_lossy(text).into_owned(),
                });
            }
        }
        for ((step, _), reply) in cmds.iter().zip(&replies) {
            if !is_answer_to(step, reply) {
                return Err(HandshakeError::OutOfStep(format!(
                    "unexpected reply to {step} in the session set-up: {}",
                    describe(reply)
                )));
            }
        }
        // Exactly one reply per command: anything after the last one (already in the
        // parser, or already in the socket) would be read as the next command's reply.
        let last = cmds[cmds.len() - 1].0;
        match io::has_unread_input(s, parser) {
            Ok(false) => Ok(()),
            Ok(true) => Err(HandshakeError::OutOfStep(
                "unexpected data after the session set-up's replies".into(),
            )),
            Err(err) => Err(HandshakeError::Io { step: last, err }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::thread;

    use super::*;

    /// Runs `session`'s set-up against a peer that sends `banner` at once, then `answer`
    /// once the set-up's commands arrived.
    fn set_up_against(
        session: &Session,
        banner: &[u8],
        answer: Vec<u8>,
    ) -> Result<(), HandshakeError> {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        peer.write_all(banner).unwrap();
        let server = thread::spawn(move || {
            let mut buf = [0u8; 512];
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0);
            peer.write_all(&answer).unwrap();
            peer
        });
        let t = io::Deadline::after(Some(std::time::Duration::from_secs(5)));
        let res = session.set_up(
            &mut io::Stream::Plain(ours.as_raw_fd()),
            &mut Parser::new(),
            &mut Vec::new(),
            t,
            t,
            true,
        );
        let _peer = server.join().unwrap();
        res
    }

    fn resp3_db1() -> Session {
        Session {
            db: 1,
            protocol: 3,
            ..Session::default()
        }
    }

    const HELLO_MAP: &[u8] = b"%1\r\n+proto\r\n:3\r\n";

    #[test]
    fn replies_in_step_pass() {
        assert!(set_up_against(&Session::default(), b"", b"+PONG\r\n".to_vec()).is_ok());
        let ok = [HELLO_MAP, b"+OK\r\n"].concat();
        assert!(set_up_against(&resp3_db1(), b"", ok).is_ok());
    }

    #[test]
    fn a_banner_or_an_extra_reply_is_out_of_step() {
        let out_of_step = |r: Result<(), HandshakeError>| match r {
            Err(e @ HandshakeError::OutOfStep(_)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let e = out_of_step(set_up_against(
            &Session::default(),
            b"+HELLO\r\n",
            b"+PONG\r\n".to_vec(),
        ));
        assert!(
            e.contains("unexpected reply to PING") && e.contains("+HELLO"),
            "{e}"
        );
        assert!(e.ends_with("(a banner or an extra reply?)"), "{e}");
        // A banner shaped like a later step's answer (SELECT's +OK) is not HELLO's.
        let ok = [HELLO_MAP, b"+OK\r\n"].concat();
        let e = out_of_step(set_up_against(&resp3_db1(), b"+OK\r\n", ok));
        assert!(
            e.contains("unexpected reply to HELLO 3 in the session set-up: +OK"),
            "{e}"
        );
        let e = out_of_step(set_up_against(
            &Session::default(),
            b"",
            b"+PONG\r\n+PONG\r\n".to_vec(),
        ));
        assert!(
            e.contains("unexpected data after the session set-up's replies"),
            "{e}"
        );
    }

    #[test]
    fn a_refusal_is_reported_as_such() {
        let e = set_up_against(
            &Session::default(),
            b"",
            b"-NOAUTH Authentication required.\r\n".to_vec(),
        );
        assert!(
            matches!(e, Err(HandshakeError::Refused { step: "PING", .. })),
            "{e:?}"
        );
    }
}
