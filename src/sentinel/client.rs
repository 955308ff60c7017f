//! One conn to a sentinel, speaking RESP2 on a raw socket: AUTH, commands, and the
//! messages of a subscription.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::{SentinelConfig, parse_master_addr_reply};
use crate::pool::Dialer;
use crate::redis::io::{self, IoError};
use crate::redis::resp::{Parser, Reply};

pub(crate) struct SentinelConn {
    sock: Socket,
    parser: Parser,
    out: Vec<u8>,
}

impl SentinelConn {
    /// Connects to the sentinel at `addr` and authenticates when configured; `timeout`
    /// bounds the two together (name resolution, connect and the AUTH round trip).
    pub(crate) fn connect(
        addr: &str,
        cfg: &SentinelConfig,
        timeout: Duration,
    ) -> Result<SentinelConn, String> {
        let deadline = Instant::now() + timeout;
        let sock = Dialer::from_addr(addr)
            .and_then(|d| d.dial(Some(timeout)))
            .map_err(|e| e.to_string())?;
        let mut conn = SentinelConn {
            sock,
            parser: Parser::new(),
            out: Vec::new(),
        };
        if let Some(pass) = &cfg.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &cfg.username {
                args.push(user.as_bytes());
            }
            args.push(pass.as_bytes());
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("sentinel AUTH: timeout".to_string());
            }
            match conn.command(&args, left)? {
                Reply::Status(_) => {}
                Reply::Error(e) => {
                    return Err(format!(
                        "sentinel AUTH refused: {}",
                        String::from_utf8_lossy(&e)
                    ));
                }
                other => return Err(format!("sentinel AUTH: unexpected reply {other:?}")),
            }
        }
        Ok(conn)
    }

    /// One command and its reply, each bounded by `timeout`.
    pub(crate) fn command(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, String> {
        io::command(
            self.sock.as_raw_fd(),
            &mut self.parser,
            &mut self.out,
            args,
            Some(timeout),
            Some(timeout),
        )
        .map_err(|e| e.to_string())
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name`: Some("ip:port"), None for an unknown name.
    pub(crate) fn get_master_addr(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<String>, String> {
        let reply = self.command(
            &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name.as_bytes()],
            timeout,
        )?;
        parse_master_addr_reply(&reply)
    }

    /// Subscribes to `channel` and waits for the confirmation.
    pub(crate) fn subscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), String> {
        match self.command(&[b"SUBSCRIBE", channel.as_bytes()], timeout)? {
            Reply::Array(v) if matches!(v.first(), Some(Reply::String(k)) if k == b"subscribe") => {
                Ok(())
            }
            other => Err(format!("SUBSCRIBE {channel}: unexpected reply {other:?}")),
        }
    }

    /// The next message of a subscription: Ok(Some(payload)) for a "message" on any
    /// channel, Ok(None) when `timeout` passed first. Bytes of a message cut by the timeout
    /// stay in the parser for the next call.
    pub(crate) fn next_message(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        match io::read_reply(self.sock.as_raw_fd(), &mut self.parser, Some(timeout)) {
            Ok(Reply::Array(v)) => match v.as_slice() {
                [Reply::String(kind), _, Reply::String(payload)] if kind == b"message" => {
                    Ok(Some(String::from_utf8_lossy(payload).into_owned()))
                }
                // Other pushes (a PONG, a second subscribe confirmation) carry nothing.
                _ => Ok(None),
            },
            Ok(Reply::Error(e)) => Err(String::from_utf8_lossy(&e).into_owned()),
            Ok(_) => Ok(None),
            Err(IoError::Timeout(..)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}
