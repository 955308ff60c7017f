//! Redis Sentinel: a pool whose conns go to whatever master the sentinels report, and that
//! follows failovers (go-redis `FailoverClient`, master only).
//!
//! - Dialing (`SentinelState::dial`): the cached master address, or else the sentinels are
//!   asked `SENTINEL GET-MASTER-ADDR-BY-NAME <name>`, in order, the first that answers wins
//!   (and is asked first next time). After the session set-up the pool sends `ROLE`
//!   (`SentinelState::verify_master`): a node that is not a master is refused and the address
//!   asked again on the next dial.
//! - Watching (`watcher`): one thread per pool subscribes to `+switch-master` on a sentinel
//!   and asks it for the master every `poll_interval` too (a message missed while
//!   reconnecting is caught that way). A new address is cached and every conn to the old
//!   master is retired (`pool::Retire::retire_all`): idle ones closed at once, checked-out ones on
//!   put, dials in flight discarded when they land.
//! - A READONLY error reply on a conn (the master was demoted under it) marks the conn broken
//!   (it is removed when given back) and makes the next dial and the watcher ask the
//!   sentinels again.
//!
//! Plain safe Rust, knowing nothing of C; it never prints and never raises signals.

mod client;
mod watcher;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::Socket;

use crate::pool::{Conn, ConnPool, DialSource, Dialer, Error, InFlight, Result, Retire};
use crate::redis::deadline::{bounded_instant_after, time_left};
use crate::redis::resp::Reply;

pub(crate) use client::SentinelConn;

/// At most this many sentinel addresses (a deployment has 3 or 5).
pub(crate) const MAX_SENTINELS: usize = 64;
/// A master name longer than this is refused (Redis has no limit; this bounds messages).
pub(crate) const MAX_MASTER_NAME_LEN: usize = 256;
/// Default interval of the watcher's own `GET-MASTER-ADDR-BY-NAME` query.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default bound of one exchange with a sentinel (connect, AUTH and one command together).
pub(crate) const DEFAULT_SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a sentinel pool is configured with (the master conns themselves take the pool's
/// `Options`).
#[derive(Clone)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// "host:port" (or "[v6]:port", or a unix socket path) of each sentinel, asked in order.
    pub addrs: Vec<String>,
    /// ACL user for AUTH on sentinel conns (needs `password`).
    pub username: Option<String>,
    /// `AUTH` on sentinel conns when set (the sentinels' `requirepass`).
    pub password: Option<String>,
    /// How often the watcher asks the sentinels for the master besides listening for
    /// `+switch-master`; None = only listen.
    pub poll_interval: Option<Duration>,
    /// Bounds one exchange with a sentinel: the connect, AUTH and one command together (the
    /// dial path uses the pool's dial timeout).
    pub timeout: Duration,
    /// TLS to the sentinels themselves (the master conns take the pool's own `tls`); the
    /// name verified is the config's server name, else the sentinel's host. None = plain.
    pub tls: Option<Arc<crate::redis::tls::TlsConfig>>,
}

/// The password never appears in logs or messages.
impl fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("master_name", &self.master_name)
            .field("addrs", &self.addrs)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl SentinelConfig {
    pub fn new(master_name: impl Into<String>, addrs: Vec<String>) -> Self {
        SentinelConfig {
            master_name: master_name.into(),
            addrs,
            username: None,
            password: None,
            poll_interval: Some(DEFAULT_POLL_INTERVAL),
            timeout: DEFAULT_SENTINEL_TIMEOUT,
            tls: None,
        }
    }

    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let name = &self.master_name;
        if name.is_empty() {
            return Err(Error::invalid("master_name: empty"));
        }
        if name.len() > MAX_MASTER_NAME_LEN {
            return Err(Error::invalid(format!(
                "master_name: {} bytes, longer than {MAX_MASTER_NAME_LEN}",
                name.len()
            )));
        }
        // The name travels in a space-separated pub/sub message: it cannot hold spaces.
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "master_name: must be printable ASCII without spaces",
            ));
        }
        if self.addrs.is_empty() {
            return Err(Error::invalid(
                "sentinel_addrs: at least one sentinel address is needed",
            ));
        }
        if self.addrs.len() > MAX_SENTINELS {
            return Err(Error::invalid(format!(
                "sentinel_addrs: {} addresses, more than {MAX_SENTINELS}",
                self.addrs.len()
            )));
        }
        for (i, a) in self.addrs.iter().enumerate() {
            Dialer::from_addr(a).map_err(|e| {
                Error::invalid(format!(
                    "sentinel_addrs[{i}]: {}",
                    e.to_string().trim_start_matches("addr: ")
                ))
            })?;
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(Error::invalid(
                "sentinel_username: given without a sentinel_password (AUTH needs both)",
            ));
        }
        if self.poll_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid("poll_interval: must not be zero"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout: must not be zero"));
        }
        Ok(())
    }
}

/// A `+switch-master` message: "<name> <old ip> <old port> <new ip> <new port>".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchMaster {
    pub name: String,
    pub old_addr: String,
    pub new_addr: String,
}

/// The longest master address: "[" host "]:" port (`redis::addr`).
pub(crate) use crate::redis::addr::MAX_ADDR_LEN;
use crate::redis::addr::{check_host, join_host_port, parse_port};

/// Parses a `+switch-master` payload; None when it is not one.
pub fn parse_switch_master(payload: &str) -> Option<SwitchMaster> {
    let mut parts = payload.split_ascii_whitespace();
    let name = parts.next()?;
    let old_host = parts.next()?;
    let old_port = parse_port(parts.next()?).ok()?;
    let new_host = parts.next()?;
    let new_port = parse_port(parts.next()?).ok()?;
    if parts.next().is_some() || check_host(old_host).is_err() || check_host(new_host).is_err() {
        return None;
    }
    Some(SwitchMaster {
        name: name.to_string(),
        old_addr: join_host_port(old_host, old_port),
        new_addr: join_host_port(new_host, new_port),
    })
}

/// The reply to `SENTINEL GET-MASTER-ADDR-BY-NAME`: Ok(Some("ip:port")), Ok(None) when the
/// sentinel does not know the name, Err for anything else (an address that breaks the
/// rule of `redis::addr` included).
pub fn parse_master_addr_reply(reply: &Reply) -> std::result::Result<Option<String>, String> {
    let text = |r: &Reply| match r {
        Reply::String(b) | Reply::Status(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    match reply {
        Reply::Nil => Ok(None),
        Reply::Array(v) if v.len() == 2 => match (text(&v[0]), text(&v[1])) {
            (Some(h), Some(p)) => {
                let port = parse_port(&p).map_err(|e| format!("master address: {e}"))?;
                check_host(&h).map_err(|e| format!("master address: {e}"))?;
                Ok(Some(join_host_port(&h, port)))
            }
            _ => Err(format!(
                "malformed address reply: [{}, {}]",
                v[0].summary(),
                v[1].summary()
            )),
        },
        Reply::Error(e) => Err(String::from_utf8_lossy(&e[..e.len().min(256)]).into_owned()),
        other => Err(format!("unexpected reply: {}", other.summary())),
    }
}

/// A sentinel-managed pool's shared state: the configuration, the cached master address,
/// and the link to the pool for retiring conns. One per pool (`fresh` makes another).
pub struct SentinelState {
    cfg: Arc<SentinelConfig>,
    /// The master conns are dialed to; None until a sentinel answered.
    master: Mutex<Option<String>>,
    /// The cached master refused to be one (ROLE) or answered READONLY: ask again.
    suspect: AtomicBool,
    /// The sentinel asked first (the last one that answered).
    preferred: AtomicUsize,
    /// Set when the pool starts its watcher.
    pool: Mutex<Option<Weak<dyn Retire>>>,
    /// Master switches seen (watcher or dial path), for tests and users.
    switches: AtomicUsize,
    watcher_started: AtomicBool,
}

impl fmt::Debug for SentinelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelState")
            .field("cfg", &self.cfg)
            .field("master", &self.master.try_lock().map(|m| m.clone()))
            .finish()
    }
}

impl SentinelState {
    /// Validates `cfg`; connects to nothing.
    pub fn new(cfg: SentinelConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self::with_config(Arc::new(cfg), None))
    }

    fn with_config(cfg: Arc<SentinelConfig>, master: Option<String>) -> Self {
        SentinelState {
            cfg,
            master: Mutex::new(master),
            suspect: AtomicBool::new(false),
            preferred: AtomicUsize::new(0),
            pool: Mutex::new(None),
            switches: AtomicUsize::new(0),
            watcher_started: AtomicBool::new(false),
        }
    }

    /// Another state with the same configuration, for a new pool or a forked child: its
    /// locks are fresh (a parent thread may have held these at fork time, so they are only
    /// tried) and it has no watcher yet.
    pub fn fresh(&self) -> Self {
        let master = self.master.try_lock().and_then(|m| m.clone());
        let s = Self::with_config(Arc::clone(&self.cfg), master);
        s.preferred
            .store(self.preferred.load(Ordering::Relaxed), Ordering::Relaxed);
        s
    }

    pub fn config(&self) -> &SentinelConfig {
        &self.cfg
    }

    /// The master address conns are dialed to now ("ip:port"); None until a sentinel
    /// answered.
    pub fn master_addr(&self) -> Option<String> {
        self.master.lock().clone()
    }

    /// How many times the master address changed after it was first learnt.
    pub fn switches(&self) -> usize {
        self.switches.load(Ordering::Relaxed)
    }

    /// Names the dial target in error messages.
    pub fn target(&self) -> String {
        format!("sentinel master {:?}", self.cfg.master_name)
    }

    /// Asks the sentinels, in order from the last one that answered, for the master's
    /// address; the first answer wins. `budget` bounds the whole search; each sentinel gets
    /// a fair share of what is left.
    pub fn query_master(&self, budget: Duration) -> Result<String> {
        let deadline = bounded_instant_after(budget);
        let n = self.cfg.addrs.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for k in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                errors.push("out of time".to_string());
                break;
            }
            let share = (left / (n - k) as u32).max(Duration::from_millis(100).min(left));
            let i = (first + k) % n;
            let addr = &self.cfg.addrs[i];
            // Connect, AUTH and the query share one deadline: each step taking a fresh
            // share used to stretch one sentinel's turn to three shares.
            let until = bounded_instant_after(share);
            let res = SentinelConn::connect(addr, &self.cfg, until)
                .and_then(|mut c| c.get_master_addr(&self.cfg.master_name, until));
            match res {
                Ok(Some(master)) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(master);
                }
                Ok(None) => errors.push(format!(
                    "{addr}: does not know master {:?}",
                    self.cfg.master_name
                )),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(Error::Dial {
            message: format!(
                "redis: sentinel: no sentinel gave the address of master {:?} ({})",
                self.cfg.master_name,
                errors.join("; ")
            ),
            errno: None,
        })
    }

    /// Adopts `addr` as the master. When it differs from the cached one, every conn of the
    /// pool is retired before the new address becomes visible (`master_addr`), so a get that
    /// begins after this returns never gets a conn to the old master.
    pub(crate) fn switch_to(&self, addr: &str) {
        let mut master = self.master.lock();
        self.suspect.store(false, Ordering::Relaxed);
        if master.as_deref() == Some(addr) {
            return;
        }
        let had = master.is_some();
        if had {
            let pool = self.pool.lock().as_ref().and_then(Weak::upgrade);
            if let Some(pool) = pool {
                pool.retire_all();
            }
            self.switches.fetch_add(1, Ordering::Relaxed);
        }
        *master = Some(addr.to_string());
    }

    /// The dialer of a sentinel pool: dials the cached master, asking the sentinels first
    /// when none is cached or the cached one is suspect. `deadline` bounds it all (None:
    /// the sentinels are asked within the configured sentinel timeout, the connect to the
    /// master is not bounded); closing `in_flight` ends the connect to the master.
    pub(crate) fn dial_within(
        &self,
        deadline: Option<Instant>,
        in_flight: Option<&InFlight>,
    ) -> Result<Socket> {
        let cached = if self.suspect.load(Ordering::Relaxed) {
            None
        } else {
            self.master.lock().clone()
        };
        let out_of_time = |addr: &str| Error::Dial {
            message: format!(
                "redis: dial {} at {addr}: dial timeout asking the sentinels",
                self.target()
            ),
            errno: None,
        };
        let addr = match cached {
            Some(a) => a,
            None => {
                let budget = match time_left(deadline) {
                    Ok(t) => t.unwrap_or(self.cfg.timeout),
                    Err(_) => return Err(out_of_time("?")),
                };
                let a = self.query_master(budget)?;
                self.switch_to(&a);
                a
            }
        };
        if time_left(deadline).is_err() {
            return Err(out_of_time(&addr));
        }
        Dialer::Tcp(addr.clone())
            .dial_within(deadline, in_flight)
            .map_err(|e| match e {
                Error::Dial { message, errno } => Error::Dial {
                    message: message.replacen(
                        "redis: dial ",
                        &format!("redis: dial {} at ", self.target()),
                        1,
                    ),
                    errno,
                },
                e => e,
            })
    }

    /// After the session set-up of a new conn: asks it `ROLE` and refuses it unless it is a
    /// master (a replica, or a master demoted during a failover). A refusal makes the next
    /// dial ask the sentinels again. A server that refuses ROLE itself (an ACL without it)
    /// cannot be checked and is accepted.
    /// `cap` bounds the ROLE round trip on top of the conn's read timeout.
    pub(crate) fn verify_master(
        &self,
        conn: &mut Conn,
        cap: Option<crate::redis::io::Deadline>,
    ) -> Result<()> {
        let peer = conn
            .socket()
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        let role = match conn.command_until(&[b"ROLE"], cap) {
            // Bytes behind the reply: the conn is out of step (and its ROLE reply suspect);
            // it must not be handed out.
            Ok(_) if conn.broken_reason().is_some() => {
                return Err(Error::Dial {
                    message: format!(
                        "redis: dial {} at {peer}: ROLE: {} (a banner or an extra reply?)",
                        self.target(),
                        conn.broken_reason().unwrap_or_default()
                    ),
                    errno: None,
                });
            }
            Ok(Reply::Array(v)) => match v.first() {
                Some(Reply::String(r)) | Some(Reply::Status(r)) => r.clone(),
                _ => b"?".to_vec(),
            },
            Ok(Reply::Error(_)) => return Ok(()),
            Ok(_) => b"?".to_vec(),
            Err(e) => {
                return Err(Error::Dial {
                    message: format!("redis: dial {} at {peer}: ROLE failed: {e}", self.target()),
                    errno: None,
                });
            }
        };
        if role == b"master" {
            return Ok(());
        }
        self.suspect.store(true, Ordering::Relaxed);
        Err(Error::Dial {
            message: format!(
                "redis: dial {} at {peer}: the node is not a master (role {}); asking the sentinels again",
                self.target(),
                String::from_utf8_lossy(&role)
            ),
            errno: None,
        })
    }

    /// A conn got a READONLY reply: the master was demoted. Dials and the watcher ask the
    /// sentinels again.
    pub(crate) fn note_readonly(&self) {
        self.suspect.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    /// Links the pool and starts its watcher thread (once).
    pub(crate) fn attach(self: &Arc<Self>, pool: Weak<dyn Retire>) -> Result<()> {
        *self.pool.lock() = Some(pool.clone());
        if self.watcher_started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let state = Arc::clone(self);
        std::thread::Builder::new()
            .name("redispool-sentinel".into())
            .spawn(move || watcher::run(state, pool))
            .map(|_| ())
            .map_err(|e| {
                self.watcher_started.store(false, Ordering::Release);
                Error::Internal(format!("cannot start the sentinel watcher thread: {e}"))
            })
    }

    fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.cfg.addrs.len()
    }

    fn set_preferred(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
    }
}

/// The pool sees a sentinel state only as its dial source.
impl DialSource for SentinelState {
    fn target(&self) -> String {
        SentinelState::target(self)
    }

    fn dial_within(
        &self,
        deadline: Option<Instant>,
        in_flight: Option<&InFlight>,
    ) -> Result<Socket> {
        SentinelState::dial_within(self, deadline, in_flight)
    }

    fn check_new_conn(
        &self,
        conn: &mut Conn,
        cap: Option<crate::redis::io::Deadline>,
    ) -> Result<()> {
        self.verify_master(conn, cap)
    }

    fn note_readonly(&self) {
        SentinelState::note_readonly(self)
    }

    fn for_new_pool(&self) -> Arc<dyn DialSource> {
        Arc::new(self.fresh())
    }

    fn attach(self: Arc<Self>, pool: Weak<dyn Retire>) -> Result<()> {
        SentinelState::attach(&self, pool)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Dialer {
    /// The dialer of a sentinel pool: the master `state` reports (`Dialer::Source`).
    pub fn sentinel(state: Arc<SentinelState>) -> Dialer {
        Dialer::Source(state)
    }
}

impl ConnPool {
    /// The sentinel state of a pool whose dialer is `Dialer::sentinel` (its own copy, made
    /// by `new`): the current master address and the switches seen.
    pub fn sentinel(&self) -> Option<Arc<SentinelState>> {
        let source = Arc::clone(self.dial_source()?);
        source.into_any().downcast::<SentinelState>().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_master_messages() {
        assert_eq!(
            parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1 6380"),
            Some(SwitchMaster {
                name: "mymaster".into(),
                old_addr: "127.0.0.1:6379".into(),
                new_addr: "127.0.0.1:6380".into(),
            })
        );
        let v6 = parse_switch_master("m ::1 1 fe80::1 2").unwrap();
        assert_eq!(v6.old_addr, "[::1]:1");
        assert_eq!(v6.new_addr, "[fe80::1]:2");
        for bad in [
            "",
            "mymaster",
            "mymaster 127.0.0.1 6379 127.0.0.1",
            "mymaster 127.0.0.1 6379 127.0.0.1 notaport",
            "mymaster 127.0.0.1 6379 127.0.0.1 70000",
            "mymaster 127.0.0.1 6379 127.0.0.1 0",
            "mymaster 127.0.0.1 6379 127.0.0.1 6380 extra",
            "mymaster 127.0.0.1 6379 127.0.0.1 +6380",
            "mymaster 127.0.0.1 6379 127.0.0.1:6380 6380",
            "mymaster 127.0.0.1 6379 [::1] 6380",
        ] {
            assert_eq!(parse_switch_master(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn master_addr_replies() {
        let s = |b: &str| Reply::String(b.as_bytes().to_vec());
        assert_eq!(
            parse_master_addr_reply(&Reply::Array(vec![s("10.0.0.1"), s("7000")])),
            Ok(Some("10.0.0.1:7000".into()))
        );
        assert_eq!(parse_master_addr_reply(&Reply::Nil), Ok(None));
        assert!(parse_master_addr_reply(&Reply::Array(vec![s("h"), s("x")])).is_err());
        assert!(parse_master_addr_reply(&Reply::Array(vec![s("")])).is_err());
        // The one address rule (`redis::addr`), for addresses from servers too.
        for (host, port) in [
            (" 10.0.0.1", "7000"),
            ("10.0.0.1", "+7000"),
            ("10.0.0.1", " 7000"),
            ("10.0.0.1", "0"),
            ("10.0.0.1", "65536"),
            ("", "7000"),
            ("10.0.0.1\r\n", "7000"),
        ] {
            let e = parse_master_addr_reply(&Reply::Array(vec![s(host), s(port)])).unwrap_err();
            assert!(e.starts_with("master address: "), "{host:?} {port:?}: {e}");
        }
        assert_eq!(
            parse_master_addr_reply(&Reply::Array(vec![s("::1"), s("7000")])),
            Ok(Some("[::1]:7000".into()))
        );
        assert!(parse_master_addr_reply(&Reply::Error(b"ERR nope".to_vec())).is_err());
        // A sentinel's odd reply is described, not dumped: a 1 MB string or a deep
        // nesting gives a short message.
        let mut deep = Reply::Integer(1);
        for _ in 0..512 {
            deep = Reply::Array(vec![deep]);
        }
        for odd in [
            Reply::Array(vec![Reply::String(vec![b'h'; 1 << 20]), s("x")]),
            Reply::Array(vec![deep.clone(), s("1")]),
            deep,
            Reply::Error(vec![b'E'; 1 << 20]),
        ] {
            let e = parse_master_addr_reply(&odd).unwrap_err();
            assert!(e.len() < 300, "{} bytes", e.len());
        }
    }

    /// A sentinel that answers AUTH late and then never answers: asking it takes the
    /// budget, not the budget again for each step (before: AUTH, then the question with a
    /// fresh share, 1.8 s for a 1 s budget).
    #[test]
    fn query_master_keeps_to_its_budget_when_a_sentinel_answers_late() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            // A slow sentinel: AUTH answered after 800 ms.
            std::thread::sleep(Duration::from_millis(800));
            let _ = s.write_all(b"+OK\r\n");
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });
        let cfg = SentinelConfig {
            password: Some("pw".into()),
            ..SentinelConfig::new("m", vec![addr])
        };
        let state = SentinelState::new(cfg).unwrap();
        let start = Instant::now();
        let res = state.query_master(Duration::from_secs(1));
        let took = start.elapsed();
        assert!(res.is_err(), "{res:?}");
        assert!(
            took < Duration::from_millis(1500),
            "a 1 s budget took {took:?}"
        );
        drop(state);
        server.join().unwrap();
    }

    /// A master that answers the set-up's PING and never ROLE: with no read timeout the
    /// dial still ends at dial_timeout (before: the ROLE read waited forever).
    #[test]
    fn the_role_check_is_bounded_by_the_dial_timeout() {
        use crate::pool::{ConnPool, Options, Wait};
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let master = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 256];
                    if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                        let _ = s.write_all(b"+PONG\r\n");
                    }
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        // No sentinel listens there: the cached master is dialed directly.
        let state =
            SentinelState::new(SentinelConfig::new("m", vec!["127.0.0.1:1".into()])).unwrap();
        state.switch_to(&master);
        let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
        opts.pool_size = 1;
        opts.dial_timeout = Some(Duration::from_millis(300));
        opts.read_timeout = None;
        opts.write_timeout = None;
        opts.dialer_retries = 1;
        opts.pool_timeout = Wait::Forever;
        let pool = ConnPool::new(opts).unwrap();
        let p = pool.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || tx.send(p.get().map(|_| ())));
        let res = rx.recv_timeout(Duration::from_secs(5));
        let took = start.elapsed();
        pool.close().unwrap();
        let res = res.expect("the get returned within 5 s");
        assert!(
            matches!(&res, Err(Error::Dial { message, .. }) if message.contains("ROLE")),
            "{res:?}"
        );
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn config_validation_names_the_field() {
        let ok = SentinelConfig::new("m", vec!["127.0.0.1:26379".into()]);
        assert!(ok.validate().is_ok());
        let cases: Vec<(SentinelConfig, &str)> = vec![
            (SentinelConfig::new("", ok.addrs.clone()), "master_name"),
            (SentinelConfig::new("a b", ok.addrs.clone()), "master_name"),
            (SentinelConfig::new("m", vec![]), "sentinel_addrs"),
            (
                SentinelConfig::new("m", vec!["nocolon".into()]),
                "sentinel_addrs[0]",
            ),
            (
                SentinelConfig {
                    username: Some("u".into()),
                    ..ok.clone()
                },
                "sentinel_username",
            ),
            (
                SentinelConfig {
                    poll_interval: Some(Duration::ZERO),
                    ..ok.clone()
                },
                "poll_interval",
            ),
        ];
        for (cfg, field) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e:?} should name {field}");
        }
    }
}
