//! Pool options: go-redis `pool.Options`, validated once at construction.

use std::time::{Duration, Instant};

use super::dial::Dialer;
use crate::error::{Error, Result};
use crate::redis::Session;
use crate::redis::resp::ReplyLimits;

/// How long a `get` may wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait: fail at once when every turn is taken.
    NoWait,
    For(Duration),
    Forever,
}

impl Wait {
    /// From the C convention: 0 = do not wait, -1 = forever, > 0 = milliseconds.
    pub fn from_millis(ms: i64) -> Option<Wait> {
        match ms {
            0 => Some(Wait::NoWait),
            -1 => Some(Wait::Forever),
            ms if ms > 0 => Some(Wait::For(Duration::from_millis(ms as u64))),
            _ => None,
        }
    }

    /// The instant the wait ends; None = never. A duration too large for `Instant` is forever.
    pub fn deadline_from(self, start: Instant) -> Option<Instant> {
        match self {
            Wait::NoWait => Some(start),
            Wait::For(d) => start.checked_add(d),
            Wait::Forever => None,
        }
    }
}

/// Everything a `ConnPool` is configured with. Build with `Options::new(dialer)` and adjust
/// fields; `ConnPool::new` validates.
#[derive(Debug, Clone)]
pub struct Options {
    pub dialer: Dialer,
    /// false: LIFO idle list (default); true: FIFO.
    pub pool_fifo: bool,
    /// Turns: conns checked out plus dials in flight. Also caps the conns the pool keeps.
    pub pool_size: usize,
    pub min_idle_conns: usize,
    /// 0 = unlimited.
    pub max_idle_conns: usize,
    /// 0 = unlimited; reaching it fails a get at once with `Error::Exhausted`.
    pub max_active_conns: usize,
    /// Dials running at once for get misses and refills, each on a dial thread of the pool:
    /// 0 = min(pool_size, `DEFAULT_MAX_CONCURRENT_DIALS`); any value is held to pool_size
    /// and to `MAX_CONCURRENT_DIALS`.
    pub max_concurrent_dials: usize,
    /// Per dial attempt; None = unbounded.
    pub dial_timeout: Option<Duration>,
    pub pool_timeout: Wait,
    pub conn_max_idle_time: Option<Duration>,
    pub conn_max_lifetime: Option<Duration>,
    pub conn_max_lifetime_jitter: Duration,
    /// Attempts per dial (not retries after the first).
    pub dialer_retries: u32,
    pub dialer_retry_backoff: Duration,
    /// Run a background reaper at this interval that closes conns idle past
    /// `conn_max_idle_time` or past their lifetime (go-redis #3575). None = off.
    pub reaper_interval: Option<Duration>,
    /// Pause between background dial probes while dials fail fast.
    pub dial_probe_interval: Duration,
    /// The Redis session every new conn is set up with before anyone gets it.
    pub session: Session,
    /// Bounds one reply read by the conn's own commands (set-up, PING check, commands);
    /// None = unbounded.
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// A get PINGs an idle conn unused for at least this long before handing it out
    /// (redis-client's idle_timeout idea), on top of the socket peek. None = never. The
    /// PING ends by the read timeout and by the get's own deadline, whichever is first;
    /// a get without one (`Wait::Forever`, `Wait::NoWait`) bounds it by `dial_timeout`
    /// (`PING_CAP_WITHOUT_DIAL_TIMEOUT` without one).
    pub ping_after_idle: Option<Duration>,
    /// Leak detection (HikariCP's leakDetectionThreshold): conns checked out longer than
    /// this are counted in stats and listed by `ConnPool::leaks`. None = off.
    pub leak_detection_threshold: Option<Duration>,
    /// Skip the socket peek of the health check for a conn given back less than this long
    /// ago (HikariCP's alive-bypass window). None (default) = peek unless the pool's health
    /// sweep vouches for the conn (see `pool::sweep` and docs/performance.md).
    pub health_check_bypass: Option<Duration>,
    /// How long queued gets may be overtaken: `DEFAULT_OVERTAKE_WINDOW` (5 ms) by
    /// default. With a window, a put while the oldest waiter has waited less than this
    /// leaves the conn idle and wakes that waiter to take it; a get that finds the conn
    /// idle first takes it at once (no context switch, as Go's sync.Mutex in normal mode),
    /// and the woken waiter queues again at the front. Once the oldest waiter has waited
    /// the window, puts hand conns to waiters in order again (Go's starvation mode), so no
    /// get waits much longer than the window plus its turn. None = strict first come,
    /// first served: a put hands its conn to the oldest waiting get, so with more threads
    /// than conns every get waits its turn (one context switch per get, about 10x slower
    /// Get+Put; see docs/performance.md).
    pub overtake_window: Option<Duration>,
    /// A READONLY error reply marks the conn broken, so giving it back closes it: for pools
    /// whose master may be demoted under them (always on with a `Dialer::Source`: the sentinel one).
    pub close_on_readonly: bool,
    /// Caps on one reply read by the conn's own commands (string bytes and elements, over
    /// the whole reply): a reply past them fails with `Error::Protocol` and the conn is
    /// closed. Bounds the memory a server can make a command take.
    pub reply_limits: ReplyLimits,
    /// TLS over whatever the dialer connects (TCP, a unix socket, a custom dialer's fd):
    /// built once (`TlsConfig::new`), shared by every conn. None = plain.
    pub tls: Option<std::sync::Arc<crate::redis::tls::TlsConfig>>,
}

/// `max_concurrent_dials` when 0: dial threads a pool runs at most by default.
pub const DEFAULT_MAX_CONCURRENT_DIALS: usize = 64;
/// The most dial threads a pool runs, whatever `max_concurrent_dials` says: a large
/// `pool_size` or `min_idle_conns` is dialed by this many threads in turn.
pub const MAX_CONCURRENT_DIALS: usize = 1024;

/// `Options::overtake_window` by default. Go's sync.Mutex hands off to the oldest waiter
/// once it has waited 1 ms, but a goroutine switch costs about 0.2 us and a hand-off between
/// OS threads several us (3-7 here): serving N parked waiters in order once per window
/// costs N x that per window, so with 256 threads on 8 conns a 1 ms window spends most of
/// the CPU on hand-offs, and the pool never leaves hand-off mode (every waiter served in
/// order has waited the window again by its turn). 5 ms keeps that near a tenth; see
/// docs/performance.md.
pub const DEFAULT_OVERTAKE_WINDOW: Duration = Duration::from_millis(5);

pub fn default_pool_size() -> usize {
    10 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Options {
    /// go-redis defaults.
    pub fn new(dialer: Dialer) -> Self {
        Options {
            dialer,
            pool_fifo: false,
            pool_size: default_pool_size(),
            min_idle_conns: 0,
            max_idle_conns: 0,
            max_active_conns: 0,
            max_concurrent_dials: 0,
            dial_timeout: Some(Duration::from_secs(5)),
            pool_timeout: Wait::For(Duration::from_secs(6)),
            conn_max_idle_time: Some(Duration::from_secs(30 * 60)),
            conn_max_lifetime: None,
            conn_max_lifetime_jitter: Duration::ZERO,
            dialer_retries: 5,
            dialer_retry_backoff: Duration::from_millis(100),
            reaper_interval: None,
            dial_probe_interval: Duration::from_secs(1),
            session: Session {
                protocol: 2,
                ..Session::default()
            },
            read_timeout: Some(Duration::from_secs(5)),
            write_timeout: Some(Duration::from_secs(5)),
            ping_after_idle: None,
            leak_detection_threshold: None,
            health_check_bypass: None,
            overtake_window: Some(DEFAULT_OVERTAKE_WINDOW),
            close_on_readonly: false,
            reply_limits: ReplyLimits::DEFAULT,
            tls: None,
        }
    }

    pub(crate) fn validate(mut self) -> Result<Self> {
        if self.pool_size == 0 {
            return Err(Error::invalid("pool_size: must be at least 1"));
        }
        if self.min_idle_conns > self.pool_size {
            return Err(Error::invalid(format!(
                "min_idle_conns: {} is larger than pool_size {}",
                self.min_idle_conns, self.pool_size
            )));
        }
        if self.dialer_retries == 0 {
            return Err(Error::invalid("dialer_retries: must be at least 1"));
        }
        if self.max_concurrent_dials == 0 {
            self.max_concurrent_dials = DEFAULT_MAX_CONCURRENT_DIALS;
        }
        self.max_concurrent_dials = self
            .max_concurrent_dials
            .min(self.pool_size)
            .min(MAX_CONCURRENT_DIALS);
        if self.session.protocol != 2 && self.session.protocol != 3 {
            return Err(Error::invalid(format!(
                "protocol: {} is not 2 or 3",
                self.session.protocol
            )));
        }
        if self
            .session
            .client_name
            .as_deref()
            .is_some_and(|n| !crate::redis::valid_client_name(n))
        {
            return Err(Error::invalid(
                "client_name: must not contain spaces, newlines, control or non-ASCII characters (Redis refuses them)",
            ));
        }
        if self.session.username.is_some() && self.session.password.is_none() {
            return Err(Error::invalid(
                "username: given without a password (AUTH needs both)",
            ));
        }
        if self.reply_limits.max_bytes == 0 || self.reply_limits.max_elements == 0 {
            return Err(Error::invalid(
                "reply_limits: max_reply_bytes and max_reply_elements must be at least 1",
            ));
        }
        if let Some(tls) = &self.tls
            && matches!(self.dialer, Dialer::Unix(_) | Dialer::Custom(_))
            && !tls.has_fixed_name()
        {
            return Err(Error::invalid(
                "tls_server_name: required for TLS over a unix socket or a custom dialer (no \
                 host name to verify the server's certificate against)",
            ));
        }
        if self.reaper_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid("reaper_interval: must not be zero"));
        }
        // As go-redis: jitter never exceeds the lifetime, and means nothing without one.
        self.conn_max_lifetime_jitter = match self.conn_max_lifetime {
            Some(l) => self.conn_max_lifetime_jitter.min(l),
            None => Duration::ZERO,
        };
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_may_overtake_the_queue_for_5_ms_by_default() {
        let o = Options::new(Dialer::from_addr("127.0.0.1:1").unwrap());
        assert_eq!(o.overtake_window, Some(Duration::from_millis(5)));
        assert_eq!(DEFAULT_OVERTAKE_WINDOW, Duration::from_millis(5));
    }
}
