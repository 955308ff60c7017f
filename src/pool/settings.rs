//! `Settings`: the pool options as plain numbers and strings, in the conventions the C
//! struct (`pool_options_t`) and the URL share (milliseconds, 0 = the default or none, -1
//! = none or forever). The one place their defaults are written and their values checked
//! and turned into `Options`: the C skin reads its struct into a `Settings`, a URL is
//! parsed into one (`Settings::from_url`), and both go through `into_options`.

use std::time::Duration;

use super::dial::Dialer;
use super::options::{Options, Wait, default_pool_size};
use crate::error::{Error, Result};
use crate::redis::resp::ReplyLimits;
use crate::redis::tls::{TlsConfig, TlsSettings};
use crate::redis::url::{UrlConfig, UrlDuration, UrlWait, parse_url};

/// Every option but the dial function, as `pool_options_t` documents each field (the
/// header is their reference). Strings are owned; None and "" mean not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub addr: Option<String>,
    pub pool_fifo: bool,
    pub pool_size: i32,
    pub min_idle_conns: i32,
    pub max_idle_conns: i32,
    pub max_active_conns: i32,
    pub max_concurrent_dials: i32,
    pub dial_timeout_ms: i64,
    pub pool_timeout_ms: i64,
    pub conn_max_idle_time_ms: i64,
    pub conn_max_lifetime_ms: i64,
    pub conn_max_lifetime_jitter_ms: i64,
    pub dialer_retries: i32,
    pub dialer_retry_backoff_ms: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_name: Option<String>,
    pub db: i32,
    pub protocol: i32,
    pub read_timeout_ms: i64,
    pub write_timeout_ms: i64,
    pub reaper_interval_ms: i64,
    pub ping_after_idle_ms: i64,
    pub leak_detection_threshold_ms: i64,
    pub health_check_bypass_ms: i64,
    pub overtake_window_ms: i64,
    pub max_reply_bytes: i64,
    pub max_reply_elements: i64,
    /// TLS (`tls` and the `tls_*` fields, a `rediss://` URL); None = plain.
    pub tls: Option<TlsSettings>,
}

impl Default for Settings {
    /// The defaults `pool_options_init` writes.
    fn default() -> Self {
        Settings {
            addr: None,
            pool_fifo: false,
            pool_size: clamp_i32(default_pool_size()),
            min_idle_conns: 0,
            max_idle_conns: 0,
            max_active_conns: 0,
            max_concurrent_dials: 0,
            dial_timeout_ms: 5000,
            pool_timeout_ms: 6000,
            conn_max_idle_time_ms: 30 * 60 * 1000,
            conn_max_lifetime_ms: 0,
            conn_max_lifetime_jitter_ms: 0,
            dialer_retries: 5,
            dialer_retry_backoff_ms: 100,
            username: None,
            password: None,
            client_name: None,
            db: 0,
            protocol: 2,
            read_timeout_ms: 5000,
            write_timeout_ms: 5000,
            reaper_interval_ms: 0,
            ping_after_idle_ms: 0,
            leak_detection_threshold_ms: 0,
            health_check_bypass_ms: 0,
            // `DEFAULT_OVERTAKE_WINDOW`; 0 = strict arrival order.
            overtake_window_ms: 5,
            max_reply_bytes: 0,
            max_reply_elements: 0,
            tls: None,
        }
    }
}

fn clamp_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

impl Settings {
    /// The settings a parsed URL stands for; what the URL does not mention keeps its
    /// default.
    pub fn from_url(cfg: &UrlConfig) -> Settings {
        let mut o = Settings {
            addr: Some(cfg.addr.clone()),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            client_name: cfg.client_name.clone(),
            ..Settings::default()
        };
        let set = |dst: &mut i32, v: Option<i32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut o.db, cfg.db);
        set(&mut o.protocol, cfg.protocol);
        set(&mut o.pool_size, cfg.pool_size);
        set(&mut o.min_idle_conns, cfg.min_idle_conns);
        set(&mut o.max_idle_conns, cfg.max_idle_conns);
        set(&mut o.max_active_conns, cfg.max_active_conns);
        set(&mut o.max_concurrent_dials, cfg.max_concurrent_dials);
        set(&mut o.dialer_retries, cfg.dialer_retries);
        if let Some(f) = cfg.pool_fifo {
            o.pool_fifo = f;
        }
        // go-redis: a duration <= 0 disables the thing; each field says how "disabled" is
        // written in pool_options_t.
        let dur = |dst: &mut i64, v: Option<UrlDuration>, disabled: i64| match v {
            Some(UrlDuration::Millis(ms)) => *dst = ms,
            Some(UrlDuration::Disabled) => *dst = disabled,
            None => {}
        };
        // One meaning for the URL and pool_options_t: 0 = do not wait, negative = forever.
        match cfg.pool_timeout {
            Some(UrlWait::NoWait) => o.pool_timeout_ms = 0,
            Some(UrlWait::Forever) => o.pool_timeout_ms = -1,
            Some(UrlWait::Millis(ms)) => o.pool_timeout_ms = ms,
            None => {}
        }
        dur(&mut o.dial_timeout_ms, cfg.dial_timeout, 0);
        dur(&mut o.read_timeout_ms, cfg.read_timeout, -1);
        dur(&mut o.write_timeout_ms, cfg.write_timeout, -1);
        dur(&mut o.conn_max_idle_time_ms, cfg.conn_max_idle_time, -1);
        dur(&mut o.conn_max_lifetime_ms, cfg.conn_max_lifetime, 0);
        dur(
            &mut o.conn_max_lifetime_jitter_ms,
            cfg.conn_max_lifetime_jitter,
            0,
        );
        dur(&mut o.dialer_retry_backoff_ms, cfg.dialer_retry_backoff, 0);
        dur(&mut o.reaper_interval_ms, cfg.reaper_interval, 0);
        dur(&mut o.ping_after_idle_ms, cfg.ping_after_idle, 0);
        dur(
            &mut o.leak_detection_threshold_ms,
            cfg.leak_detection_threshold,
            0,
        );
        dur(&mut o.health_check_bypass_ms, cfg.health_check_bypass, 0);
        dur(&mut o.overtake_window_ms, cfg.overtake_window, 0);
        if let Some(v) = cfg.max_reply_bytes {
            o.max_reply_bytes = v;
        }
        if let Some(v) = cfg.max_reply_elements {
            o.max_reply_elements = v;
        }
        o.tls = cfg.tls.clone();
        o
    }

    /// Checks every value, naming the bad field, and gives the core options. `dialer`,
    /// when given, replaces dialing `addr`.
    pub fn into_options(self, dialer: Option<Dialer>) -> Result<Options> {
        let o = self;
        let dialer = match dialer {
            Some(d) => d,
            None => {
                let addr = o
                    .addr
                    .as_deref()
                    .ok_or_else(|| Error::invalid("addr: NULL and no dialer given"))?;
                if addr.contains('\0') {
                    return Err(Error::invalid("addr: contains a NUL byte"));
                }
                Dialer::from_addr(addr)?
            }
        };
        let mut opts = Options::new(dialer);
        opts.pool_fifo = o.pool_fifo;
        opts.pool_size = match count(o.pool_size, "pool_size")? {
            0 => default_pool_size(),
            n => n,
        };
        opts.min_idle_conns = count(o.min_idle_conns, "min_idle_conns")?;
        opts.max_idle_conns = count(o.max_idle_conns, "max_idle_conns")?;
        opts.max_active_conns = count(o.max_active_conns, "max_active_conns")?;
        opts.max_concurrent_dials = count(o.max_concurrent_dials, "max_concurrent_dials")?;
        opts.dial_timeout = millis(o.dial_timeout_ms, "dial_timeout_ms", true)?;
        opts.pool_timeout = Wait::from_millis(o.pool_timeout_ms).ok_or_else(|| {
            Error::invalid(format!(
                "pool_timeout_ms: {} is invalid (0 = do not wait, -1 = forever, > 0 = milliseconds)",
                o.pool_timeout_ms
            ))
        })?;
        // -1 also disables it, as go-redis documents for ConnMaxIdleTime.
        opts.conn_max_idle_time = match o.conn_max_idle_time_ms {
            -1 => None,
            v => millis(v, "conn_max_idle_time_ms", true)?,
        };
        opts.conn_max_lifetime = millis(o.conn_max_lifetime_ms, "conn_max_lifetime_ms", true)?;
        opts.conn_max_lifetime_jitter = millis(
            o.conn_max_lifetime_jitter_ms,
            "conn_max_lifetime_jitter_ms",
            false,
        )?
        .unwrap_or_default();
        opts.dialer_retries = match o.dialer_retries {
            0 => 5,
            n if n > 0 => n as u32,
            n => return Err(Error::invalid(format!("dialer_retries: {n} is negative"))),
        };
        opts.dialer_retry_backoff =
            millis(o.dialer_retry_backoff_ms, "dialer_retry_backoff_ms", false)?
                .unwrap_or_default();
        opts.reaper_interval = match o.reaper_interval_ms {
            0 => None,
            v => millis(v, "reaper_interval_ms", false)?,
        };
        // Empty strings mean "not set", as in go-redis (Options.Username == "" sends no user).
        // A NUL byte cannot come through the C struct; a URL's %00 is refused as it always was.
        let owned = |s: Option<String>, field: &str| -> Result<Option<String>> {
            match s {
                Some(s) if s.contains('\0') => {
                    Err(Error::invalid(format!("{field}: contains a NUL byte")))
                }
                s => Ok(s.filter(|s| !s.is_empty())),
            }
        };
        opts.session.username = owned(o.username, "username")?;
        opts.session.password = owned(o.password, "password")?;
        opts.session.client_name = owned(o.client_name, "client_name")?;
        opts.session.db =
            u32::try_from(o.db).map_err(|_| Error::invalid(format!("db: {} is negative", o.db)))?;
        opts.session.protocol = match o.protocol {
            0 | 2 => 2,
            3 => 3,
            p => return Err(Error::invalid(format!("protocol: {p} is not 2 or 3"))),
        };
        opts.read_timeout = io_timeout(o.read_timeout_ms, "read_timeout_ms")?;
        opts.write_timeout = io_timeout(o.write_timeout_ms, "write_timeout_ms")?;
        opts.ping_after_idle = match o.ping_after_idle_ms {
            0 => None,
            v => millis(v, "ping_after_idle_ms", false)?,
        };
        opts.leak_detection_threshold = match o.leak_detection_threshold_ms {
            0 => None,
            v => millis(v, "leak_detection_threshold_ms", false)?,
        };
        opts.health_check_bypass = match o.health_check_bypass_ms {
            0 => None,
            v => millis(v, "health_check_bypass_ms", false)?,
        };
        opts.overtake_window = match o.overtake_window_ms {
            0 => None,
            v => millis(v, "overtake_window_ms", false)?,
        };
        opts.reply_limits = ReplyLimits {
            max_bytes: reply_limit(
                o.max_reply_bytes,
                "max_reply_bytes",
                ReplyLimits::DEFAULT_MAX_BYTES,
            )?,
            max_elements: reply_limit(
                o.max_reply_elements,
                "max_reply_elements",
                ReplyLimits::DEFAULT_MAX_ELEMENTS,
            )?,
        };
        if opts.min_idle_conns > opts.pool_size {
            return Err(Error::invalid(format!(
                "min_idle_conns: {} is larger than pool_size {}",
                opts.min_idle_conns, opts.pool_size
            )));
        }
        // Every file is read and checked here, once per pool: a bad CA, key or
        // certificate is an error of pool_new*, never of a later get.
        if let Some(t) = &o.tls {
            let config = TlsConfig::new(t).map_err(Error::InvalidArg)?;
            opts.tls = Some(std::sync::Arc::new(config));
        }
        Ok(opts)
    }
}

impl Options {
    /// The options a go-redis URL stands for (`redis::url::parse_url`), validated as
    /// `pool_options_t` is: `pool_new_url` is `ConnPool::new(Options::from_url(url)?)`.
    pub fn from_url(url: &str) -> Result<Options> {
        Options::from_url_config(&parse_url(url)?)
    }

    /// `from_url` for an already parsed URL (a cluster URL's node options).
    pub fn from_url_config(cfg: &UrlConfig) -> Result<Options> {
        Settings::from_url(cfg).into_options(None)
    }
}

/// Milliseconds; with `zero_is_none`, 0 means "none".
fn millis(v: i64, field: &str, zero_is_none: bool) -> Result<Option<Duration>> {
    match v {
        0 if zero_is_none => Ok(None),
        v if v >= 0 => Ok(Some(Duration::from_millis(v as u64))),
        v => Err(Error::invalid(format!("{field}: {v} is negative"))),
    }
}

/// A conn I/O timeout: > 0 milliseconds; 0 or -1 = none (go-redis uses -1 for "no
/// deadline").
fn io_timeout(v: i64, field: &str) -> Result<Option<Duration>> {
    match v {
        -1 | 0 => Ok(None),
        v if v > 0 => Ok(Some(Duration::from_millis(v as u64))),
        v => Err(Error::invalid(format!(
            "{field}: {v} is invalid (> 0 = milliseconds, 0 or -1 = none)"
        ))),
    }
}

/// A reply limit: > 0 as given, 0 = `default`.
fn reply_limit(v: i64, field: &str, default: u64) -> Result<u64> {
    match v {
        0 => Ok(default),
        v => u64::try_from(v).map_err(|_| {
            Error::invalid(format!(
                "{field}: {v} is negative (> 0 = the limit, 0 = the default)"
            ))
        }),
    }
}

fn count(v: i32, field: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::invalid(format!("{field}: {v} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_parses_straight_into_core_options() {
        let o = Options::from_url(
            "redis://u:p%40ss@127.0.0.1:7000/3?pool_size=7&pool_timeout=-1&read_timeout=0\
             &dial_timeout=250ms&protocol=3&client_name=app&conn_max_idle_time=-1",
        )
        .unwrap();
        assert!(matches!(&o.dialer, Dialer::Tcp(a) if a == "127.0.0.1:7000"));
        assert_eq!(o.pool_size, 7);
        assert_eq!(o.pool_timeout, Wait::Forever);
        assert_eq!(o.read_timeout, None);
        assert_eq!(o.write_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.dial_timeout, Some(Duration::from_millis(250)));
        assert_eq!(o.conn_max_idle_time, None);
        assert_eq!(o.session.username.as_deref(), Some("u"));
        assert_eq!(o.session.password.as_deref(), Some("p@ss"));
        assert_eq!(o.session.client_name.as_deref(), Some("app"));
        assert_eq!(o.session.db, 3);
        assert_eq!(o.session.protocol, 3);
        let unix = Options::from_url("unix:///tmp/r.sock?db=2").unwrap();
        assert!(matches!(&unix.dialer, Dialer::Unix(p) if p.to_str() == Some("/tmp/r.sock")));
        assert_eq!(unix.session.db, 2);
    }

    #[test]
    fn one_set_of_checks_names_the_field() {
        let e = Options::from_url("redis://h:1?pool_size=2&min_idle_conns=3").unwrap_err();
        assert!(
            e.to_string().starts_with("min_idle_conns: 3 is larger"),
            "{e}"
        );
        // A NUL byte cannot come through the C struct; from a URL it is refused.
        let e = Options::from_url("redis://u:a%00b@h:1").unwrap_err();
        assert_eq!(e.to_string(), "password: contains a NUL byte");
        let e = Settings::default().into_options(None).unwrap_err();
        assert_eq!(e.to_string(), "addr: NULL and no dialer given");
    }

    #[test]
    fn the_defaults_are_pool_options_init_s() {
        let o = Settings {
            addr: Some("127.0.0.1:1".into()),
            ..Settings::default()
        }
        .into_options(None)
        .unwrap();
        assert_eq!(o.pool_size, default_pool_size());
        assert_eq!(o.pool_timeout, Wait::For(Duration::from_secs(6)));
        assert_eq!(o.dial_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.conn_max_idle_time, Some(Duration::from_secs(30 * 60)));
        assert_eq!(o.dialer_retries, 5);
        assert_eq!(o.session.protocol, 2);
        assert_eq!(o.reply_limits, ReplyLimits::default());
    }
}
