//! Redis Sentinel: a pool whose conns go to whatever master the sentinels report, and that
//! follows failovers without writing to a master being replaced (go-redis
//! `FailoverClient`, master only, with the early pause go-redis lacks).
//!
//! - Dialing (`SentinelState::dial`): the cached master address, or else the sentinels are
//!   asked `SENTINEL GET-MASTER-ADDR-BY-NAME <name>`, in order, the first that answers wins
//!   (and is asked first next time). After the session set-up the pool sends `ROLE`
//!   (`SentinelState::verify_master`): a node that is not a master is refused.
//! - Failover (`SentinelState::begin_failover`): on the first sign that the master is
//!   being replaced (the `+selected-slave`, `+failover-state-send-slaveof-noone`,
//!   `+promoted-slave` or `+switch-master` event of any sentinel, a READONLY reply, a ROLE
//!   that is not master, a sentinel naming another master) the pool stops handing out
//!   conns to it at once: every conn is retired (`pool::Retire::retire_all`: idle ones
//!   closed, checked-out ones on put, dials in flight discarded) and new dials wait
//!   (within the dial timeout; a get within its own pool timeout) until the new master
//!   answers `ROLE` as master (`resume`). Redis Sentinel does not pause the old master's
//!   clients, so a pool that kept writing there until `+switch-master` lost everything
//!   written in between (6-9 % of a busy pool's writes in the test).
//! - Watching (`watcher`): a listener thread per sentinel (whichever one leads a failover
//!   publishes its first signs) and a resolver thread that ends pauses and asks the
//!   sentinels for the master every `poll_interval`.
//!
//! Plain safe Rust, knowing nothing of C; it never prints and never raises signals.

mod client;
mod watcher;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, Weak};
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
    /// How often the resolver asks the sentinels for the master besides listening for
    /// their failover events; None = only listen.
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

/// A failover under way: the pool hands out no conn until a new master answers `ROLE` as
/// master (`SentinelState::resume`).
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    /// When the pool stopped handing out conns.
    pub(crate) since: Instant,
    /// The master being replaced (the cached address when it began).
    pub(crate) old: Option<String>,
    /// The node being promoted, once an event or a sentinel named it.
    pub(crate) candidate: Option<String>,
    /// The sentinel whose event began it, if one did: its `-failover-abort-*` ends it.
    pub(crate) by: Option<usize>,
    /// That sentinel aborted the failover: the old master may be kept.
    pub(crate) aborted: bool,
    /// It began because the master could not be dialed, with no sign yet that it is being
    /// replaced: the old master may be kept once it answers again.
    pub(crate) unreachable: bool,
}

/// The failover pause and what it leaves behind.
#[derive(Debug, Default)]
struct Pause {
    cur: Option<Failover>,
    /// The master the last failover left: a sentinel still naming it is lagging (it may
    /// still answer ROLE as master until the sentinels demote it), so polls ignore it.
    left: Option<String>,
}

/// After this long without a new master, a failover may resume on the old master if it
/// still answers ROLE as master (a failover the pool never heard end).
pub(crate) const FAILOVER_PAUSE_LIMIT: Duration = Duration::from_secs(15);

/// Failover figures of a sentinel pool (`SentinelState::failover_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailoverStats {
    /// Failovers seen: times the pool stopped handing out conns to its master.
    pub failovers: u64,
    /// Dials (for gets, refills, new conns) that waited for a failover to end.
    pub waits: u64,
    /// Master switches: failovers that ended on another master.
    pub switches: u64,
    /// The longest pause so far, in milliseconds (begin to resume).
    pub longest_pause_ms: u64,
    /// Whether the pool is paused now.
    pub in_failover: bool,
}

/// A sentinel-managed pool's shared state: the configuration, the cached master address,
/// the failover pause, and the link to the pool for retiring conns. One per pool (`fresh`
/// makes another).
pub struct SentinelState {
    cfg: Arc<SentinelConfig>,
    /// The master conns are dialed to; None until a sentinel answered.
    master: Mutex<Option<String>>,
    /// The failover pause. A std mutex and condvar, not parking_lot's: dial threads wait
    /// here, and parking_lot's process-wide table of parked threads does not survive a
    /// fork() taken while one is parked (see the pool's `sleep_lock`).
    pause: std::sync::Mutex<Pause>,
    /// Notified when a failover begins, learns a candidate, or ends.
    changed: std::sync::Condvar,
    /// The sentinel asked first (the last one that answered).
    preferred: AtomicUsize,
    /// Set when the pool starts its watcher.
    pool: Mutex<Option<Weak<dyn Retire>>>,
    /// Master switches seen, for tests and users.
    switches: AtomicUsize,
    failovers: AtomicU64,
    waits: AtomicU64,
    longest_pause_ns: AtomicU64,
    /// A subscription came (back) up: the resolver asks the sentinels at once.
    poll_now: AtomicBool,
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
            pause: std::sync::Mutex::new(Pause::default()),
            changed: std::sync::Condvar::new(),
            preferred: AtomicUsize::new(0),
            pool: Mutex::new(None),
            switches: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            longest_pause_ns: AtomicU64::new(0),
            poll_now: AtomicBool::new(false),
            watcher_started: AtomicBool::new(false),
        }
    }

    /// Another state with the same configuration, for a new pool or a forked child: its
    /// locks are fresh (a parent thread may have held these at fork time, so they are only
    /// tried) and it has no watcher yet. A state paused for a failover passes on no master:
    /// the new one asks the sentinels.
    pub fn fresh(&self) -> Self {
        let paused = match self.pause.try_lock() {
            Ok(p) => p.cur.is_some(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().cur.is_some(),
            Err(std::sync::TryLockError::WouldBlock) => true,
        };
        let master = if paused {
            None
        } else {
            self.master.try_lock().and_then(|m| m.clone())
        };
        let s = Self::with_config(Arc::clone(&self.cfg), master);
        s.preferred
            .store(self.preferred.load(Ordering::Relaxed), Ordering::Relaxed);
        s
    }

    pub fn config(&self) -> &SentinelConfig {
        &self.cfg
    }

    /// The master address conns are dialed to now ("ip:port"); None until a sentinel
    /// answered. During a failover, the old master's (no conn is handed out to it).
    pub fn master_addr(&self) -> Option<String> {
        self.master.lock().clone()
    }

    /// How many times the master address changed after it was first learnt.
    pub fn switches(&self) -> usize {
        self.switches.load(Ordering::Relaxed)
    }

    /// Failovers seen, dials that waited for one, the longest pause.
    pub fn failover_stats(&self) -> FailoverStats {
        FailoverStats {
            failovers: self.failovers.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            switches: self.switches.load(Ordering::Relaxed) as u64,
            longest_pause_ms: self.longest_pause_ns.load(Ordering::Relaxed) / 1_000_000,
            in_failover: lock(&self.pause).cur.is_some(),
        }
    }

    /// The failover under way, if any.
    pub(crate) fn failover(&self) -> Option<Failover> {
        lock(&self.pause).cur.clone()
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

    /// Adopts `addr` as the master when none is known yet. A different address than the
    /// cached one is a failover: it begins (`begin_failover`), and ends once `addr` answers
    /// ROLE as master.
    pub(crate) fn switch_to(&self, addr: &str) {
        {
            let _pause = lock(&self.pause);
            let mut master = self.master.lock();
            if master.is_none() {
                *master = Some(addr.to_string());
                return;
            }
        }
        self.begin_failover(Some(addr), None);
    }

    /// A sign that the master is being replaced (an event, a READONLY reply, a ROLE that is
    /// not master, a sentinel naming another master): the pool stops handing out conns to
    /// it at once. Idle conns are closed, checked-out ones when given back, dials in flight
    /// discarded; new dials wait in `await_resumed` until the watcher sees a new master
    /// answer ROLE as master (`resume`). Already paused: `candidate` (when it is not the
    /// old master) becomes the node to try. `by`: the sentinel whose event it is.
    pub(crate) fn begin_failover(&self, candidate: Option<&str>, by: Option<usize>) {
        self.begin(candidate, by, false);
    }

    /// A dial to `addr` failed. When it is the master in use, the pool pauses as for a
    /// failover (gets wait instead of failing one after another while the sentinels
    /// judge the master down and promote a replica), but may resume on the same master as
    /// soon as it answers again. Returns whether the dial should be tried again (after
    /// the pause): false when the master changed or is unknown.
    pub(crate) fn note_unreachable(&self, addr: &str) -> bool {
        let paused = lock(&self.pause).cur.is_some();
        if !paused && self.master.lock().as_deref() != Some(addr) {
            return self.master.lock().is_some();
        }
        self.begin(None, None, true);
        true
    }

    fn begin(&self, candidate: Option<&str>, by: Option<usize>, unreachable: bool) {
        let mut p = lock(&self.pause);
        let master = self.master.lock().clone();
        if let Some(f) = &mut p.cur {
            if let Some(c) = candidate {
                if Some(c) != f.old.as_deref() {
                    f.candidate = Some(c.to_string());
                }
            }
            if f.by.is_none() {
                f.by = by;
            }
            if f.unreachable && !unreachable {
                // A sign that the master is being replaced: a failover after all.
                f.unreachable = false;
                self.failovers.fetch_add(1, Ordering::Relaxed);
            }
            drop(p);
            self.changed.notify_all();
            return;
        }
        // Not a sign: an event or a sentinel naming the master in use.
        if candidate.is_some() && candidate == master.as_deref() {
            return;
        }
        p.cur = Some(Failover {
            since: Instant::now(),
            old: master,
            candidate: candidate.map(str::to_string),
            by,
            aborted: false,
            unreachable,
        });
        if !unreachable {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        // Retired before any dial can see the pause end: no conn to the old master is
        // handed out from here on.
        let pool = self.pool.lock().as_ref().and_then(Weak::upgrade);
        if let Some(pool) = pool {
            pool.retire_all();
        }
        drop(p);
        self.changed.notify_all();
    }

    /// Sentinel `by` aborted the failover it began: the old master may be kept.
    pub(crate) fn abort_failover(&self, by: usize) {
        let mut p = lock(&self.pause);
        if let Some(f) = &mut p.cur {
            if f.by == Some(by) {
                f.aborted = true;
                f.candidate = None;
                drop(p);
                self.changed.notify_all();
            }
        }
    }

    /// Whether a failover `f` may end on `addr`: any node but the old master; the old one
    /// only when the failover was aborted, began only because the master could not be
    /// reached, or is older than `FAILOVER_PAUSE_LIMIT`.
    pub(crate) fn may_resume_on(f: &Failover, addr: &str) -> bool {
        f.old.as_deref() != Some(addr)
            || f.aborted
            || f.unreachable
            || f.since.elapsed() >= FAILOVER_PAUSE_LIMIT
    }

    /// Ends the failover that began at `since` on `addr`, which answered ROLE as master:
    /// dials go there from now. Nothing when that failover is over already.
    pub(crate) fn resume(&self, since: Instant, addr: &str) {
        let mut p = lock(&self.pause);
        if p.cur.as_ref().is_none_or(|f| f.since != since) {
            return;
        }
        let Some(f) = p.cur.take() else {
            return;
        };
        {
            let mut master = self.master.lock();
            if master.as_deref() != Some(addr) {
                if master.is_some() {
                    self.switches.fetch_add(1, Ordering::Relaxed);
                }
                p.left = master.replace(addr.to_string());
            }
        }
        let took = u64::try_from(f.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.longest_pause_ns.fetch_max(took, Ordering::Relaxed);
        drop(p);
        self.changed.notify_all();
    }

    /// A sentinel polled while no failover is under way named `addr`: a failover the
    /// events missed, unless it is the master in use or the one the last failover left
    /// (that sentinel lags). With no master known yet, `addr` becomes the master.
    pub(crate) fn note_polled(&self, addr: &str) {
        let p = lock(&self.pause);
        if p.cur.is_some() || p.left.as_deref() == Some(addr) {
            return;
        }
        {
            let mut master = self.master.lock();
            match master.as_deref() {
                Some(m) if m == addr => return,
                Some(_) => {}
                // Nothing dialed yet: the answer is the master, no failover.
                None => {
                    *master = Some(addr.to_string());
                    return;
                }
            }
        }
        drop(p);
        self.begin_failover(Some(addr), None);
    }

    /// Waits up to `d` for a change of the pause (begin, candidate, end).
    pub(crate) fn wait_changed(&self, d: Duration) {
        let p = lock(&self.pause);
        drop(
            self.changed
                .wait_timeout(p, d)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// A subscription came (back) up: the resolver asks the sentinels at once (a switch
    /// may have happened while none was listening).
    pub(crate) fn request_poll(&self) {
        self.poll_now.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    pub(crate) fn take_poll_request(&self) -> bool {
        self.poll_now.swap(false, Ordering::Relaxed)
    }

    /// A dial during a failover waits here until it ends, by `deadline` at the latest
    /// (then a dial error), or until the pool closes (`in_flight` closed).
    fn await_resumed(&self, deadline: Option<Instant>, in_flight: Option<&InFlight>) -> Result<()> {
        let mut p = lock(&self.pause);
        if p.cur.is_none() {
            return Ok(());
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        loop {
            let Some(f) = &p.cur else {
                return Ok(());
            };
            if in_flight.is_some_and(InFlight::is_closed) {
                return Err(Error::Closed);
            }
            let mut tick = Duration::from_millis(100);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let what = match (&f.old, f.unreachable) {
                        (Some(old), true) => format!("the master {old} cannot be reached"),
                        _ => "a failover is under way".to_string(),
                    };
                    return Err(Error::Dial {
                        message: format!(
                            "redis: dial {}: {what} (for {} ms) and no master answered ROLE as master within the dial timeout",
                            self.target(),
                            f.since.elapsed().as_millis()
                        ),
                        errno: None,
                    });
                }
                tick = tick.min(left);
            }
            p = self
                .changed
                .wait_timeout(p, tick)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The dialer of a sentinel pool: waits out a failover under way, then dials the cached
    /// master, asking the sentinels first when none is cached. `deadline` bounds it all
    /// (None: the sentinels are asked within the configured sentinel timeout, the connect
    /// to the master is not bounded); closing `in_flight` ends the wait and the connect.
    pub(crate) fn dial_within(
        &self,
        deadline: Option<Instant>,
        in_flight: Option<&InFlight>,
    ) -> Result<Socket> {
        loop {
            self.await_resumed(deadline, in_flight)?;
            let addr = self.dial_target(deadline)?;
            let res = Dialer::Tcp(addr.clone()).dial_within(deadline, in_flight);
            match res {
                Ok(sock) => return Ok(sock),
                // The master cannot be reached: wait (within the deadline) for it to
                // answer again or for the sentinels to promote a replica.
                Err(Error::Dial { .. })
                    if !in_flight.is_some_and(InFlight::is_closed)
                        && matches!(time_left(deadline), Ok(t) if t.is_none_or(|t| !t.is_zero()))
                        && self.note_unreachable(&addr) => {}
                Err(Error::Dial { message, errno }) => {
                    return Err(Error::Dial {
                        message: message.replacen(
                            "redis: dial ",
                            &format!("redis: dial {} at ", self.target()),
                            1,
                        ),
                        errno,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The cached master, or the one the sentinels name when none is cached.
    fn dial_target(&self, deadline: Option<Instant>) -> Result<String> {
        let out_of_time = |addr: &str| Error::Dial {
            message: format!(
                "redis: dial {} at {addr}: dial timeout asking the sentinels",
                self.target()
            ),
            errno: None,
        };
        let cached = self.master.lock().clone();
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
        Ok(addr)
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
        // The master in use is not one any more: a failover. A conn dialed to a master
        // already left behind (its dial began before the switch) is no news.
        let current = self.master.lock().clone();
        let is_current = match current.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(a)) => a.to_string() == peer,
            Some(Err(_)) => true,
            None => false,
        };
        if is_current {
            self.begin_failover(None, None);
        }
        Err(Error::Dial {
            message: format!(
                "redis: dial {} at {peer}: the node is not a master (role {}); waiting for the sentinels' new master",
                self.target(),
                String::from_utf8_lossy(&role)
            ),
            errno: None,
        })
    }

    /// A conn to the master in use got a READONLY reply: the master was demoted, a
    /// failover.
    pub(crate) fn note_readonly(&self) {
        self.begin_failover(None, None);
    }

    /// Links the pool and starts its watcher threads (once): one listener per sentinel and
    /// the resolver (`watcher`).
    pub(crate) fn attach(self: &Arc<Self>, pool: Weak<dyn Retire>) -> Result<()> {
        *self.pool.lock() = Some(pool.clone());
        if self.watcher_started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let spawn = |f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name("redispool-sentinel".into())
                .spawn(f)
                .map(|_| ())
                .map_err(|e| {
                    Error::Internal(format!("cannot start a sentinel watcher thread: {e}"))
                })
        };
        let state = Arc::clone(self);
        let p = pool.clone();
        if let Err(e) = spawn(Box::new(move || watcher::resolve(state, p))) {
            self.watcher_started.store(false, Ordering::Release);
            return Err(e);
        }
        for idx in 0..self.cfg.addrs.len() {
            let state = Arc::clone(self);
            let p = pool.clone();
            // The resolver runs: a listener that cannot start leaves polls to notice
            // failovers (later), not a pool without a watcher.
            let _ = spawn(Box::new(move || watcher::listen(state, p, idx)));
        }
        Ok(())
    }

    /// A message on one of the channels the listeners subscribe to (`EVENT_CHANNELS`),
    /// from sentinel `idx`.
    pub(crate) fn on_event(&self, idx: usize, channel: &str, payload: &str) {
        let name = &self.cfg.master_name;
        match channel {
            "+switch-master" => {
                if let Some(sw) = parse_switch_master(payload) {
                    if &sw.name == name {
                        self.begin_failover(Some(&sw.new_addr), Some(idx));
                    }
                }
            }
            "+selected-slave" | "+failover-state-send-slaveof-noone" | "+promoted-slave" => {
                if let Some(ev) = parse_instance_event(payload) {
                    if &ev.master_name == name && ev.kind != "master" {
                        self.begin_failover(Some(&ev.addr), Some(idx));
                    }
                }
            }
            c if c.starts_with("-failover-abort-")
                && parse_instance_event(payload).is_some_and(|ev| &ev.master_name == name) =>
            {
                self.abort_failover(idx);
            }
            _ => {}
        }
    }
}

/// The channels of the sentinel events a pool follows: the first signs of a failover (the
/// leader publishes them; it is any of the sentinels), its end, and its abort.
pub(crate) const EVENT_CHANNELS: &[&str] = &[
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+promoted-slave",
    "+switch-master",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
    "-failover-abort-race",
];

/// A sentinel instance event: "<kind> <name> <ip> <port>" for a master,
/// "<kind> <ip:port> <ip> <port> @ <master name> <master ip> <master port>" for a replica
/// or a sentinel (a trailing epoch is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEvent {
    /// "master", "slave" or "sentinel".
    pub kind: String,
    /// The instance's address.
    pub addr: String,
    /// The master it belongs to (its own name for a master).
    pub master_name: String,
}

/// Parses an instance event's payload; None when it is not one.
pub fn parse_instance_event(payload: &str) -> Option<InstanceEvent> {
    let parts: Vec<&str> = payload.split_ascii_whitespace().collect();
    let (kind, name, host, port) = (parts.first()?, parts.get(1)?, parts.get(2)?, parts.get(3)?);
    let port = parse_port(port).ok()?;
    check_host(host).ok()?;
    let master_name = if *kind == "master" {
        name.to_string()
    } else {
        if parts.get(4) != Some(&"@") {
            return None;
        }
        parts.get(5)?.to_string()
    };
    Some(InstanceEvent {
        kind: kind.to_string(),
        addr: join_host_port(host, port),
        master_name,
    })
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
    fn instance_events() {
        assert_eq!(
            parse_instance_event("slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379"),
            Some(InstanceEvent {
                kind: "slave".into(),
                addr: "127.0.0.1:6380".into(),
                master_name: "mymaster".into(),
            })
        );
        assert_eq!(
            parse_instance_event("master mymaster 127.0.0.1 6379 7"),
            Some(InstanceEvent {
                kind: "master".into(),
                addr: "127.0.0.1:6379".into(),
                master_name: "mymaster".into(),
            })
        );
        for bad in [
            "",
            "slave 127.0.0.1:6380 127.0.0.1 6380",
            "slave 127.0.0.1:6380 127.0.0.1 6380 mymaster 127.0.0.1 6379",
            "slave 127.0.0.1:6380 127.0.0.1 0 @ mymaster 127.0.0.1 6379",
            "master mymaster 127.0.0.1",
        ] {
            assert_eq!(parse_instance_event(bad), None, "{bad:?}");
        }
    }

    /// A sign pauses the pool once; only a candidate that is not the old master ends it
    /// (unless aborted by the sentinel that began it); polls naming the master left behind
    /// are ignored.
    #[test]
    fn a_failover_pauses_until_a_new_master_and_ignores_the_old_one() {
        let s = SentinelState::new(SentinelConfig::new("m", vec!["127.0.0.1:1".into()])).unwrap();
        // A poll before any dial: the master, not a failover.
        s.note_polled("127.0.0.1:10");
        assert!(s.failover().is_none());
        assert_eq!(s.master_addr().as_deref(), Some("127.0.0.1:10"));
        s.switch_to("127.0.0.1:10");
        s.on_event(0, "+switch-master", "m 127.0.0.1 9 127.0.0.1 10");
        assert!(s.failover().is_none(), "the master in use is no sign");
        s.on_event(
            1,
            "+selected-slave",
            "slave 127.0.0.1:11 127.0.0.1 11 @ other 127.0.0.1 10",
        );
        assert!(s.failover().is_none(), "another master's event is no sign");
        s.on_event(
            1,
            "+selected-slave",
            "slave 127.0.0.1:11 127.0.0.1 11 @ m 127.0.0.1 10",
        );
        let f = s.failover().expect("paused");
        assert_eq!(
            (f.old.as_deref(), f.candidate.as_deref(), f.by),
            (Some("127.0.0.1:10"), Some("127.0.0.1:11"), Some(1))
        );
        assert!(!SentinelState::may_resume_on(&f, "127.0.0.1:10"));
        assert!(SentinelState::may_resume_on(&f, "127.0.0.1:11"));
        s.on_event(0, "-failover-abort-not-elected", "master m 127.0.0.1 10");
        assert!(!s.failover().unwrap().aborted, "another sentinel's abort");
        s.on_event(1, "-failover-abort-slave-timeout", "master m 127.0.0.1 10");
        let f = s.failover().unwrap();
        assert!(f.aborted && SentinelState::may_resume_on(&f, "127.0.0.1:10"));
        s.begin_failover(Some("127.0.0.1:11"), None);
        s.resume(Instant::now(), "127.0.0.1:11");
        assert!(s.failover().is_some(), "not the failover under way");
        s.resume(f.since, "127.0.0.1:11");
        assert_eq!(s.master_addr().as_deref(), Some("127.0.0.1:11"));
        let st = s.failover_stats();
        assert_eq!((st.failovers, st.switches, st.in_failover), (1, 1, false));
        s.note_polled("127.0.0.1:10");
        assert!(
            s.failover().is_none(),
            "a lagging sentinel naming the old master"
        );
        // An unreachable master pauses the pool but may come back; not a failover until a
        // sign says so.
        // Not the master in use (it changed meanwhile): no pause, the dial goes again.
        assert!(s.note_unreachable("127.0.0.1:99"));
        assert!(s.failover().is_none());
        assert!(s.note_unreachable("127.0.0.1:11"));
        let f = s.failover().expect("paused");
        assert!(f.unreachable && SentinelState::may_resume_on(&f, "127.0.0.1:11"));
        assert_eq!(s.failover_stats().failovers, 1);
        s.on_event(
            2,
            "+selected-slave",
            "slave 127.0.0.1:12 127.0.0.1 12 @ m 127.0.0.1 11",
        );
        let f = s.failover().expect("paused");
        assert!(!f.unreachable && !SentinelState::may_resume_on(&f, "127.0.0.1:11"));
        assert_eq!(s.failover_stats().failovers, 2);
        s.resume(f.since, "127.0.0.1:12");
        s.note_polled("127.0.0.1:13");
        assert_eq!(
            s.failover().and_then(|f| f.candidate).as_deref(),
            Some("127.0.0.1:13")
        );
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

    /// A master that refuses connections: the dial waits (the pool is paused) and ends by
    /// the dial timeout with a message naming the unreachable master, not at once.
    #[test]
    fn a_dial_to_an_unreachable_master_waits_within_the_dial_timeout() {
        use crate::pool::{ConnPool, Options, Wait};
        // A port nothing listens on: bound, then closed.
        let master = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let state =
            SentinelState::new(SentinelConfig::new("m", vec!["127.0.0.1:1".into()])).unwrap();
        state.switch_to(&master);
        let mut opts = Options::new(Dialer::sentinel(Arc::new(state)));
        opts.pool_size = 1;
        opts.dial_timeout = Some(Duration::from_millis(400));
        opts.dialer_retries = 1;
        opts.pool_timeout = Wait::For(Duration::from_secs(5));
        let pool = ConnPool::new(opts).unwrap();
        let res = pool.get().map(|_| ());
        let s = pool.sentinel().unwrap();
        let st = s.failover_stats();
        pool.close().unwrap();
        assert!(
            matches!(&res, Err(Error::Dial { message, .. }) if message.contains("cannot be reached")),
            "{res:?}"
        );
        // It waited for the master (paused), rather than failing at once.
        assert!(
            st.in_failover && st.waits >= 1 && st.failovers == 0,
            "{st:?}"
        );
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
