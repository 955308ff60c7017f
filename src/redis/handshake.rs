//! The Redis session a new conn is set up with before anyone gets it: HELLO 3 (with AUTH
//! and SETNAME inside) or AUTH, then SELECT and CLIENT SETNAME, all written at once and
//! answered in one round trip.

use std::fmt;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

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
    fn commands(&self) -> Vec<(&'static str, Vec<Vec<u8>>)> {
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

    /// Runs the set-up on a freshly dialed socket: one write, one reply per command. The
    /// first refusal is reported (later steps then fail with NOAUTH and say nothing new).
    /// With nothing to set up, `ping` sends a PING instead, so a server that refuses the
    /// conn (maxclients, NOAUTH) is seen now, not by the first caller. It is all over by
    /// `deadline` (the dial's), whatever the read and write timeouts (None: no deadline).
    #[allow(clippy::too_many_arguments)]
    pub fn set_up(
        &self,
        fd: RawFd,
        parser: &mut Parser,
        out_buf: &mut Vec<u8>,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
        ping: bool,
        deadline: Option<Instant>,
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
        let replies = io::pipeline_by(
            fd,
            parser,
            out_buf,
            &arg_refs,
            read_timeout,
            write_timeout,
            deadline,
        )
        .map_err(|err| HandshakeError::Io {
            step: cmds[0].0,
            err,
        })?;
        for ((step, _), reply) in cmds.iter().zip(replies) {
            if let Reply::Error(text) = reply {
                return Err(HandshakeError::Refused {
                    step,
                    text: String::from_utf8_lossy(&text).into_owned(),
                });
            }
        }
        Ok(())
    }
}
