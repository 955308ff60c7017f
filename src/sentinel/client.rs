//! One conn to a sentinel, speaking RESP2 on a raw socket: AUTH, commands, and the
//! messages of a subscription.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::{SentinelConfig, parse_master_addr_reply};
use crate::pool::{Dialer, Error};
use crate::redis::io::{self, IoError};
use crate::redis::resp::{Parser, Reply, ReplyLimits};

/// A sentinel's replies (an address, a few dozen fields per known replica or sentinel,
/// pub/sub messages) are small: one that sends far more is refused at these limits rather
/// than at the data-sized defaults (512 MiB, 16 M elements) of a pool's conns, which would
/// let it fill the watcher thread's memory.
const REPLY_LIMITS: ReplyLimits = ReplyLimits {
    max_bytes: 4 << 20,
    max_elements: 1 << 18,
};

pub(crate) struct SentinelConn {
    sock: Socket,
    parser: Parser,
    out: Vec<u8>,
}

impl SentinelConn {
    /// Connects to the sentinel at `addr` and authenticates when configured, all by
    /// `deadline` (the connect and the AUTH round trip share it).
    pub(crate) fn connect(
        addr: &str,
        cfg: &SentinelConfig,
        deadline: Instant,
    ) -> Result<SentinelConn, String> {
        let sock = Dialer::from_addr(addr)
            .and_then(|d| d.dial(Some(left_until(deadline)?)))
            .map_err(|e| e.to_string())?;
        let mut conn = SentinelConn {
            sock,
            parser: Parser::with_limits(REPLY_LIMITS),
            out: Vec::new(),
        };
        if let Some(pass) = &cfg.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &cfg.username {
                args.push(user.as_bytes());
            }
            args.push(pass.as_bytes());
            match conn.command(&args, deadline)? {
                Reply::Status(_) => {}
                Reply::Error(e) => {
                    return Err(format!(
                        "sentinel AUTH refused: {}",
                        String::from_utf8_lossy(&e[..e.len().min(256)])
                    ));
                }
                other => {
                    return Err(format!(
                        "sentinel AUTH: unexpected reply: {}",
                        other.summary()
                    ));
                }
            }
        }
        Ok(conn)
    }

    /// One command and its reply, by `deadline`.
    pub(crate) fn command(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, String> {
        let d = Some(io::Deadline::at(
            deadline,
            left_until(deadline).map_err(|e| e.to_string())?,
        ));
        io::command_with(
            self.sock.as_raw_fd(),
            &mut self.parser,
            &mut self.out,
            args,
            d,
            d,
            io::ReplyWait::Poll,
            io::Pushes::Return,
        )
        .map_err(|e| e.to_string())
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name`: Some("ip:port"), None for an unknown name.
    pub(crate) fn get_master_addr(
        &mut self,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<String>, String> {
        let reply = self.command(
            &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name.as_bytes()],
            deadline,
        )?;
        parse_master_addr_reply(&reply)
    }

    /// Subscribes to `channel` and waits for the confirmation, by `deadline`.
    pub(crate) fn subscribe(&mut self, channel: &str, deadline: Instant) -> Result<(), String> {
        match self.command(&[b"SUBSCRIBE", channel.as_bytes()], deadline)? {
            Reply::Array(v) if matches!(v.first(), Some(Reply::String(k)) if k == b"subscribe") => {
                Ok(())
            }
            other => Err(format!(
                "SUBSCRIBE {channel}: unexpected reply: {}",
                other.summary()
            )),
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

/// What is left until `deadline`; an error once it has passed.
fn left_until(deadline: Instant) -> Result<Duration, Error> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(Error::Dial {
            message: "redis: sentinel: i/o timeout".into(),
            errno: None,
        }),
    }
}

/// `timeout` from now; a timeout too large for the clock is as good as a century.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A sentinel that answers its first command with `reply`, then hangs up.
    fn fake_sentinel(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&reply);
        });
        addr
    }

    #[test]
    fn a_sentinel_reply_is_held_to_small_limits() {
        let cfg = SentinelConfig::new("m", vec![]);
        let t = || deadline_after(Duration::from_secs(5));
        let ok = fake_sentinel(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n".to_vec());
        let mut conn = SentinelConn::connect(&ok, &cfg, t()).unwrap();
        assert_eq!(
            conn.get_master_addr("m", t()),
            Ok(Some("127.0.0.1:6379".into()))
        );
        // Far below the pools' defaults (16 M elements, 512 MiB).
        let many = fake_sentinel(b"*300000\r\n".to_vec());
        let mut conn = SentinelConn::connect(&many, &cfg, t()).unwrap();
        let e = conn.get_master_addr("m", t()).unwrap_err();
        assert!(e.contains("max_reply_elements limit (262144)"), "{e}");
        let big = fake_sentinel(b"$5000000\r\n".to_vec());
        let mut conn = SentinelConn::connect(&big, &cfg, t()).unwrap();
        let e = conn.get_master_addr("m", t()).unwrap_err();
        assert!(e.contains("max_reply_bytes"), "{e}");
    }
}
