//! One conn to a sentinel, speaking RESP2 on a raw socket: AUTH, commands, and the
//! messages of a subscription.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::{SentinelConfig, parse_master_addr_reply};
use crate::pool::{Dialer, Error};
use crate::redis::deadline::left;
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
    /// The TLS session over `sock` when the sentinels are reached over TLS.
    tls: Option<Box<rustls::ClientConnection>>,
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
            .and_then(|d| d.dial(Some(left(deadline).ok_or_else(timed_out)?)))
            .map_err(|e| e.to_string())?;
        let tls = match &cfg.tls {
            Some(t) => {
                let host = crate::redis::addr::split_host_port(addr)
                    .ok()
                    .map(|(h, _)| h.to_string());
                let c = t
                    .connect(sock.as_raw_fd(), host.as_deref(), Some(deadline))
                    .map_err(|f| format!("redis: sentinel {addr}: {}", f.why))?;
                Some(Box::new(c))
            }
            None => None,
        };
        let mut conn = SentinelConn {
            sock,
            tls,
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
                Reply::Status(s) if s == b"OK" => {}
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

    /// One command and its reply, by `deadline`. The reply must be all the sentinel sent:
    /// bytes after it (a banner before the reply shifted it, or one reply more) would be
    /// read as the next command's reply, so they fail the command and the conn is dropped
    /// by its caller.
    pub(crate) fn command(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, String> {
        let reply = self.exchange(args, deadline)?;
        let fd = self.sock.as_raw_fd();
        let mut stream = match &mut self.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        match io::has_unread_input(&mut stream, &self.parser) {
            Ok(false) => Ok(reply),
            Ok(true) => Err(format!(
                "unexpected data after the reply to {} (a banner or an extra reply?)",
                String::from_utf8_lossy(args[0])
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One command and its reply by `deadline`, with no check of what follows it.
    fn exchange(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, String> {
        let d = Some(io::Deadline::at(
            deadline,
            left(deadline).ok_or_else(|| timed_out().to_string())?,
        ));
        let fd = self.sock.as_raw_fd();
        let mut stream = match &mut self.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        io::command_with(
            &mut stream,
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

    /// Subscribes to `channels` and waits for the first confirmation, by `deadline` (the
    /// others are read, and skipped, by `next_message`).
    pub(crate) fn subscribe(&mut self, channels: &[&str], deadline: Instant) -> Result<(), String> {
        let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        args.extend(channels.iter().map(|c| c.as_bytes()));
        // Messages may follow the confirmation at once: they are read by `next_message`.
        match self.exchange(&args, deadline)? {
            Reply::Array(v) if matches!(v.first(), Some(Reply::String(k)) if k == b"subscribe") => {
                Ok(())
            }
            other => Err(format!(
                "SUBSCRIBE {}: unexpected reply: {}",
                channels.join(" "),
                other.summary()
            )),
        }
    }

    /// The next message of a subscription: Ok(Some((channel, payload))) for a "message" on
    /// any channel, Ok(None) when `timeout` passed first. Bytes of a message cut by the timeout
    /// stay in the parser for the next call.
    pub(crate) fn next_message(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(String, String)>, String> {
        let fd = self.sock.as_raw_fd();
        let mut stream = match &mut self.tls {
            Some(c) => io::Stream::Tls(fd, c),
            None => io::Stream::Plain(fd),
        };
        match io::read_reply(&mut stream, &mut self.parser, Some(timeout)) {
            Ok(Reply::Array(v)) => match v.as_slice() {
                [
                    Reply::String(kind),
                    Reply::String(channel),
                    Reply::String(payload),
                ] if kind == b"message" => Ok(Some((
                    String::from_utf8_lossy(channel).into_owned(),
                    String::from_utf8_lossy(payload).into_owned(),
                ))),
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

/// The error of a sentinel exchange that ran out of time.
fn timed_out() -> Error {
    Error::Dial {
        message: "redis: sentinel: i/o timeout".into(),
        errno: None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::redis::deadline::bounded_instant_after;

    const ADDR_REPLY: &[u8] = b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n";

    /// A one-conn fake sentinel: `banner` on accept, then for each request (one per read,
    /// as this client sends them) the next of `answers`.
    fn fake_sentinel(banner: &'static [u8], answers: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.write_all(banner).unwrap();
            let mut buf = [0u8; 4096];
            for answer in answers {
                match sock.read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
                if sock.write_all(&answer).is_err() {
                    return;
                }
            }
            // Hold the conn open until the client is done with it.
            let _ = sock.read(&mut buf);
        });
        addr
    }

    #[test]
    fn a_sentinel_reply_is_held_to_small_limits() {
        let cfg = SentinelConfig::new("m", vec![]);
        let t = || bounded_instant_after(Duration::from_secs(5));
        let ok = fake_sentinel(
            b"",
            vec![b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n".to_vec()],
        );
        let mut conn = SentinelConn::connect(&ok, &cfg, t()).unwrap();
        assert_eq!(
            conn.get_master_addr("m", t()),
            Ok(Some("127.0.0.1:6379".into()))
        );
        // Far below the pools' defaults (16 M elements, 512 MiB).
        let many = fake_sentinel(b"", vec![b"*300000\r\n".to_vec()]);
        let mut conn = SentinelConn::connect(&many, &cfg, t()).unwrap();
        let e = conn.get_master_addr("m", t()).unwrap_err();
        assert!(e.contains("max_reply_elements limit (262144)"), "{e}");
        let big = fake_sentinel(b"", vec![b"$5000000\r\n".to_vec()]);
        let mut conn = SentinelConn::connect(&big, &cfg, t()).unwrap();
        let e = conn.get_master_addr("m", t()).unwrap_err();
        assert!(e.contains("max_reply_bytes"), "{e}");
    }

    fn config(password: Option<&str>) -> SentinelConfig {
        let mut cfg = SentinelConfig::new("mymaster", vec![]);
        cfg.password = password.map(str::to_string);
        cfg
    }

    fn ask(addr: &str, cfg: &SentinelConfig) -> Result<Option<String>, String> {
        let t = || bounded_instant_after(Duration::from_secs(5));
        let mut conn = SentinelConn::connect(addr, cfg, t())?;
        let first = conn.get_master_addr("mymaster", t())?;
        // The conn is kept by the watcher: a second query must get its own reply.
        assert_eq!(conn.get_master_addr("mymaster", t())?, first);
        Ok(first)
    }

    #[test]
    fn a_sentinel_in_step_answers() {
        let addr = fake_sentinel(b"", vec![ADDR_REPLY.to_vec(), ADDR_REPLY.to_vec()]);
        assert_eq!(ask(&addr, &config(None)), Ok(Some("127.0.0.1:6380".into())));
        let addr = fake_sentinel(
            b"",
            vec![
                b"+OK\r\n".to_vec(),
                ADDR_REPLY.to_vec(),
                ADDR_REPLY.to_vec(),
            ],
        );
        assert_eq!(
            ask(&addr, &config(Some("pw"))),
            Ok(Some("127.0.0.1:6380".into()))
        );
    }

    /// One reply more than asked for, or a banner before AUTH's reply: the query fails (and
    /// the watcher drops the conn) instead of the next one reading the reply to the one
    /// before.
    #[test]
    fn a_sentinel_out_of_step_is_refused() {
        let extra = [ADDR_REPLY, b"+PONG\r\n"].concat();
        let addr = fake_sentinel(b"", vec![extra, ADDR_REPLY.to_vec()]);
        let e = ask(&addr, &config(None)).unwrap_err();
        assert!(e.contains("a banner or an extra reply?"), "{e}");

        // AUTH answered by a banner: not taken for the AUTH's "+OK".
        let addr = fake_sentinel(
            b"+HELLO\r\n",
            vec![
                b"+OK\r\n".to_vec(),
                ADDR_REPLY.to_vec(),
                ADDR_REPLY.to_vec(),
            ],
        );
        let e = ask(&addr, &config(Some("pw"))).unwrap_err();
        assert!(
            e.starts_with("sentinel AUTH: unexpected reply")
                || e.starts_with("unexpected data after the reply to AUTH"),
            "{e}"
        );
    }
}
