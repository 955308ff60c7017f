//! The go-redis `ParseURL` format (`redis://…`, `unix://…`), turned into plain values that the
//! C layer lays over its options struct. Syntax (userinfo, percent-decoding, IPv6 hosts, query
//! pairs) is the `url` crate's; the meaning of each part follows go-redis `options.go`
//! (`ParseURL`, `setupTCPConn`, `setupUnixConn`, `setupConnParams`, `queryOptions`).
//!
//! Where this parser is stricter than go-redis it says so next to the rule. Every error is
//! `Error::InvalidArg`, names the offending part, quotes user text clipped and escaped, and
//! never carries the URL's password.
//!
//! Beside this file: `duration` (Go's `time.ParseDuration`), `redact` (user text in
//! messages, never the password) and `cluster` (go-redis `ParseClusterURL`).

use std::borrow::Cow;

use url::{Host, Url};

use super::addr;
use super::tls::TlsSettings;
use crate::error::Error;
use duration::{DurationError, NANOS_PER_MILLI, NANOS_PER_SEC, parse_go_duration};
use redact::{CLIP_BYTES, REDACTED, Redactor};

mod cluster;
mod duration;
mod redact;

pub use cluster::{ClusterUrl, parse_cluster_url};

/// Longer URLs are refused before any parsing: a URL is configuration, not data.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// A duration parameter: go-redis accepts a Go duration ("500ms", "4s", "1m30s", "1.5h"; units
/// ns, us, µs, ms, s, m, h) or a plain integer meaning seconds.
///
/// As in go-redis (`queryOptions.duration`), any value `<= 0`, plain ("0", "-1") or Go
/// duration ("0s", "-2m"), means "disabled", so `Millis` always holds at least 1: a positive
/// value below one millisecond rounds up to 1 ms rather than silently becoming 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlDuration {
    Disabled,
    Millis(i64),
}

/// `pool_timeout` in a URL, with the meaning `pool_timeout_ms` has in `pool_options_t`
/// (one meaning for both): exactly 0 ("0", "0s") is "do not wait", a negative value ("-1",
/// "-1s") is "wait forever", and anything else a duration, rounded up to whole
/// milliseconds as `UrlDuration` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlWait {
    NoWait,
    Forever,
    Millis(i64),
}

/// What a URL sets. `None` means "not in the URL": keep the option's default. Empty query
/// values (`pool_size=`) count as not given, as in go-redis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UrlConfig {
    /// "host:port", "[v6]:port", or a unix socket path "/…".
    pub addr: String,
    /// Percent-decoded; empty means none.
    pub username: Option<String>,
    /// Percent-decoded; empty means none. Never appears in an error message.
    pub password: Option<String>,
    pub db: Option<i32>,
    pub client_name: Option<String>,
    /// Only 2 or 3.
    pub protocol: Option<i32>,
    pub pool_fifo: Option<bool>,
    pub pool_size: Option<i32>,
    pub min_idle_conns: Option<i32>,
    pub max_idle_conns: Option<i32>,
    pub max_active_conns: Option<i32>,
    pub max_concurrent_dials: Option<i32>,
    pub dialer_retries: Option<i32>,
    pub pool_timeout: Option<UrlWait>,
    pub dial_timeout: Option<UrlDuration>,
    pub read_timeout: Option<UrlDuration>,
    pub write_timeout: Option<UrlDuration>,
    /// Also set by go-redis's deprecated alias `idle_timeout`.
    pub conn_max_idle_time: Option<UrlDuration>,
    /// Also set by go-redis's deprecated alias `max_conn_age`.
    pub conn_max_lifetime: Option<UrlDuration>,
    /// As given: capping it at `conn_max_lifetime` (go-redis) is the options' job.
    pub conn_max_lifetime_jitter: Option<UrlDuration>,
    pub dialer_retry_backoff: Option<UrlDuration>,
    pub reaper_interval: Option<UrlDuration>,
    pub ping_after_idle: Option<UrlDuration>,
    pub leak_detection_threshold: Option<UrlDuration>,
    pub health_check_bypass: Option<UrlDuration>,
    pub overtake_window: Option<UrlDuration>,
    /// Bytes of string data one reply may hold; 0 = the default.
    pub max_reply_bytes: Option<i64>,
    /// Elements one reply may have, nested ones included; 0 = the default.
    pub max_reply_elements: Option<i64>,
    /// `rediss://`: TLS, with what the URL's `skip_verify` and `tls_*` parameters set.
    pub tls: Option<TlsSettings>,
}

/// Parses `redis://[[user][:password]@]host[:port][/db][?params]` or
/// `unix://[[user][:password]@]/path/to.sock[?db=N&params]`. As in go-redis, a `db` parameter
/// is taken on both and overrides the path's database number.
///
/// Stricter than go-redis, to fail at start-up rather than on every dial: a parameter given
/// twice (or with its alias) is an error instead of "last one wins"; integers must fit `i32`
/// and be `>= 0`; `protocol` must be 2 or 3; `client_name` must be a name Redis accepts; a
/// `unix://` URL may not name a host other than `localhost`.
///
/// `rediss://` is `redis://` over TLS: go-redis's `skip_verify=true` turns verification
/// off, and `tls_ca_file`, `tls_ca_dir`, `tls_cert_file`, `tls_key_file`,
/// `tls_server_name` and `tls_min_version` (12 or 13) mean what the `pool_options_t`
/// fields of those names mean. They are refused on a `redis://` or `unix://` URL.
pub fn parse_url(s: &str) -> Result<UrlConfig, Error> {
    if s.len() > MAX_URL_LEN {
        return Err(Error::invalid(format!(
            "redis: URL is too long ({} bytes, at most {MAX_URL_LEN})",
            s.len()
        )));
    }
    // Go's url.Parse refuses control bytes; the url crate would silently strip tabs and
    // newlines, and a raw space is never meant to be there.
    if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::invalid(
            "redis: invalid URL: control character or unescaped space",
        ));
    }
    let redact = Redactor::new(raw_password(s));

    let Some((scheme, _)) = split_scheme(s) else {
        return Err(Error::invalid(
            "redis: invalid URL scheme: \"\" (expected redis:// or unix://)",
        ));
    };
    let (unix, tls) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false),
        "rediss" => (false, true),
        "unix" => (true, false),
        other => {
            return Err(Error::invalid(format!(
                "redis: invalid URL scheme: {} (expected redis://, rediss:// or unix://)",
                redact.quote(other)
            )));
        }
    };

    let u = Url::parse(&with_default_host(s)).map_err(|e| {
        // The url crate's messages are fixed texts: nothing of the input is echoed.
        Error::invalid(format!("redis: invalid URL: {e}"))
    })?;
    if u.cannot_be_a_base() {
        return Err(Error::invalid(
            "redis: invalid URL: expected redis://host… or unix:///path…",
        ));
    }

    let mut cfg = UrlConfig {
        username: non_empty(decode_userinfo(u.username())?),
        password: match u.password() {
            Some(p) => non_empty(decode_userinfo(p)?),
            None => None,
        },
        ..UrlConfig::default()
    };
    let redact = redact.with(cfg.password.as_deref());

    if unix {
        cfg.addr = unix_path(&u, &redact)?;
    } else {
        cfg.addr = tcp_addr(&u, &redact)?;
        cfg.db = path_db(&u, &redact)?;
    }
    apply_query(&u, &mut cfg, &redact)?;
    match (tls, &cfg.tls) {
        (true, None) => cfg.tls = Some(TlsSettings::default()),
        (false, Some(_)) => {
            return Err(Error::invalid(
                "redis: TLS options (skip_verify, tls_*) need a rediss:// URL",
            ));
        }
        _ => {}
    }
    Ok(cfg)
}

/// The scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )) and what follows its ':'.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some((scheme, rest))
}

/// The authority of `s` (between "scheme://" and the first '/', '?' or '#') and its offset.
fn authority(s: &str) -> Option<(usize, &str)> {
    let (scheme, rest) = split_scheme(s)?;
    let auth = rest.strip_prefix("//")?;
    let start = scheme.len() + 3;
    let end = auth.find(['/', '?', '#']).unwrap_or(auth.len());
    Some((start, &auth[..end]))
}

/// The password exactly as written in `s`, found the way Go and the url crate find it (the
/// last '@' ends the userinfo, its first ':' starts the password), before any other parsing,
/// so that even an early error cannot echo it.
fn raw_password(s: &str) -> Option<&str> {
    let (_, auth) = authority(s)?;
    let (userinfo, _) = auth.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

/// go-redis takes an empty host as "localhost" (`redis://:6380`, `unix://user@/path`); the url
/// crate refuses an empty host after userinfo or before a port, so one is written in.
fn with_default_host(s: &str) -> Cow<'_, str> {
    let Some((start, auth)) = authority(s) else {
        return Cow::Borrowed(s);
    };
    let host_at = start + auth.rfind('@').map_or(0, |i| i + 1);
    let hostport = &s[host_at..start + auth.len()];
    if !hostport.is_empty() && !hostport.starts_with(':') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 9);
    out.push_str(&s[..host_at]);
    out.push_str("localhost");
    out.push_str(&s[host_at..]);
    Cow::Owned(out)
}

/// Go's `net.JoinHostPort(u.Hostname(), u.Port())` with go-redis's defaults, held to the
/// one address rule (`super::addr`): port 0 and hosts with spaces or odd bytes are refused.
fn tcp_addr(u: &Url, redact: &Redactor) -> Result<String, Error> {
    let host = match u.host() {
        None => "localhost".to_owned(),
        Some(Host::Ipv6(a)) => a.to_string(),
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Domain(d)) => {
            let host = percent_decode(d).ok_or_else(|| {
                Error::invalid("redis: invalid URL: bad percent-encoding in the host")
            })?;
            if host.is_empty() {
                "localhost".to_owned()
            } else {
                host
            }
        }
    };
    // Checked here, where the message can hide the password: a DNS name is at most 253
    // bytes (RFC 1035), and no host holds spaces or other odd bytes.
    if host.len() > addr::MAX_HOST_LEN {
        return Err(Error::invalid(format!(
            "redis: invalid host: {} bytes, longer than a DNS name can be ({}): {}",
            host.len(),
            addr::MAX_HOST_LEN,
            redact.quote(&host)
        )));
    }
    let domain = !matches!(u.host(), Some(Host::Ipv6(_)));
    if (domain && host.contains(':')) || addr::check_host(&host).is_err() {
        return Err(Error::invalid(format!(
            "redis: invalid host: {} (a DNS name, an IPv4 address or a bracketed IPv6 address)",
            redact.quote(&host)
        )));
    }
    let port = addr::check_port(u.port().unwrap_or(6379).into())
        .map_err(|e| Error::invalid(format!("redis: invalid URL: {e}")))?;
    Ok(addr::join_host_port(&host, port))
}

/// go-redis `setupTCPConn`: the path holds at most one segment, the database number.
fn path_db(u: &Url, redact: &Redactor) -> Result<Option<i32>, Error> {
    let path = percent_decode(u.path())
        .ok_or_else(|| Error::invalid("redis: invalid URL: bad percent-encoding in the path"))?;
    let mut segments = path.split('/').filter(|f| !f.is_empty());
    match (segments.next(), segments.next()) {
        (None, _) => Ok(None),
        (Some(db), None) => parse_db(db, redact).map(Some),
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "redis: invalid URL path: {} (expected /<database number>)",
            redact.quote(&path)
        ))),
    }
}

/// go-redis `setupUnixConn`: the socket path is the URL's path.
fn unix_path(u: &Url, redact: &Redactor) -> Result<String, Error> {
    // go-redis ignores a host here; refusing it catches the classic "unix://tmp/redis.sock"
    // (host "tmp", path "/redis.sock") instead of dialing the wrong socket.
    let host_ok = match u.host() {
        None => true,
        Some(Host::Domain(d)) => d.is_empty() || d.eq_ignore_ascii_case("localhost"),
        Some(_) => false,
    };
    if !host_ok || u.port().is_some() {
        let mut host = u.host_str().unwrap_or_default().to_owned();
        if let Some(port) = u.port() {
            host = format!("{host}:{port}");
        }
        return Err(Error::invalid(format!(
            "redis: invalid unix URL: unexpected host {} (write unix:///path/to.sock)",
            redact.quote(&host)
        )));
    }
    let path = percent_decode(u.path())
        .ok_or_else(|| Error::invalid("redis: invalid URL: bad percent-encoding in the path"))?;
    if path.trim().is_empty() {
        return Err(Error::invalid("redis: empty unix socket path"));
    }
    if path.contains('\0') {
        return Err(Error::invalid(
            "redis: invalid unix socket path: contains a NUL byte",
        ));
    }
    // sun_path holds 108 bytes, NUL included; checked here so the message hides the password.
    if path.len() > 107 {
        return Err(Error::invalid(format!(
            "redis: invalid unix socket path: {} bytes, longer than the 107 a socket address holds: {}",
            path.len(),
            redact.quote(&path)
        )));
    }
    Ok(path)
}

/// One query parameter's target. Aliases share their canonical parameter's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Db,
    ClientName,
    Protocol,
    PoolFifo,
    PoolSize,
    MinIdleConns,
    MaxIdleConns,
    MaxActiveConns,
    MaxConcurrentDials,
    DialerRetries,
    PoolTimeout,
    DialTimeout,
    ReadTimeout,
    WriteTimeout,
    ConnMaxIdleTime,
    ConnMaxLifetime,
    ConnMaxLifetimeJitter,
    DialerRetryBackoff,
    ReaperInterval,
    PingAfterIdle,
    LeakDetectionThreshold,
    HealthCheckBypass,
    OvertakeWindow,
    MaxReplyBytes,
    MaxReplyElements,
    SkipVerify,
    TlsCaFile,
    TlsCaDir,
    TlsCertFile,
    TlsKeyFile,
    TlsServerName,
    TlsMinVersion,
}

const KEY_COUNT: usize = Key::TlsMinVersion as usize + 1;

/// Every query parameter this pool understands, by its name in the URL.
const PARAMS: [(&str, Key); 34] = [
    ("skip_verify", Key::SkipVerify),
    ("tls_ca_file", Key::TlsCaFile),
    ("tls_ca_dir", Key::TlsCaDir),
    ("tls_cert_file", Key::TlsCertFile),
    ("tls_key_file", Key::TlsKeyFile),
    ("tls_server_name", Key::TlsServerName),
    ("tls_min_version", Key::TlsMinVersion),
    ("db", Key::Db),
    ("client_name", Key::ClientName),
    ("protocol", Key::Protocol),
    ("pool_fifo", Key::PoolFifo),
    ("pool_size", Key::PoolSize),
    ("min_idle_conns", Key::MinIdleConns),
    ("max_idle_conns", Key::MaxIdleConns),
    ("max_active_conns", Key::MaxActiveConns),
    ("max_concurrent_dials", Key::MaxConcurrentDials),
    ("dialer_retries", Key::DialerRetries),
    ("pool_timeout", Key::PoolTimeout),
    ("dial_timeout", Key::DialTimeout),
    ("read_timeout", Key::ReadTimeout),
    ("write_timeout", Key::WriteTimeout),
    ("conn_max_idle_time", Key::ConnMaxIdleTime),
    ("idle_timeout", Key::ConnMaxIdleTime),
    ("conn_max_lifetime", Key::ConnMaxLifetime),
    ("max_conn_age", Key::ConnMaxLifetime),
    ("conn_max_lifetime_jitter", Key::ConnMaxLifetimeJitter),
    ("dialer_retry_backoff", Key::DialerRetryBackoff),
    ("reaper_interval", Key::ReaperInterval),
    ("ping_after_idle", Key::PingAfterIdle),
    ("leak_detection_threshold", Key::LeakDetectionThreshold),
    ("health_check_bypass", Key::HealthCheckBypass),
    ("overtake_window", Key::OvertakeWindow),
    ("max_reply_bytes", Key::MaxReplyBytes),
    ("max_reply_elements", Key::MaxReplyElements),
];

/// go-redis parameters that configure its client (command retries, TLS, pipelining), which a
/// bare pool does not have: named as such rather than as unknown.
const UNSUPPORTED: [(&str, &str); 6] = [
    ("max_retries", "command retries are a client setting"),
    ("min_retry_backoff", "command retries are a client setting"),
    ("max_retry_backoff", "command retries are a client setting"),
    ("pipeline_pool_size", "pipelining is a client setting"),
    (
        "pipeline_read_buffer_size",
        "pipelining is a client setting",
    ),
    (
        "pipeline_write_buffer_size",
        "pipelining is a client setting",
    ),
];

/// Unknown names listed in one message; the rest are summed up as "…".
const UNKNOWN_LISTED: usize = 3;

/// go-redis `setupConnParams`: each known parameter once, then complain about the rest.
fn apply_query(u: &Url, cfg: &mut UrlConfig, redact: &Redactor) -> Result<(), Error> {
    let mut seen: [Option<&'static str>; KEY_COUNT] = [None; KEY_COUNT];
    let mut unknown: Vec<String> = Vec::new();
    for (name, value) in u.query_pairs() {
        if let Some(&(_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
            return Err(Error::invalid(format!(
                "redis: option {name} is not supported by redispool ({why})"
            )));
        }
        let Some(&(name, key)) = PARAMS.iter().find(|(n, _)| *n == name) else {
            let shown = match redact.clip(&name, CLIP_BYTES / 2) {
                Some(n) if n.is_empty() => "\"\"".to_owned(),
                Some(n) => n,
                None => REDACTED.to_owned(),
            };
            unknown.push(shown);
            continue;
        };
        match seen[key as usize].replace(name) {
            Some(first) if first == name => {
                return Err(Error::invalid(format!(
                    "redis: option {name} is given more than once"
                )));
            }
            Some(first) => {
                return Err(Error::invalid(format!(
                    "redis: options {first} and {name} set the same thing (one is an alias)"
                )));
            }
            None => {}
        }
        if !value.is_empty() {
            apply_param(cfg, key, name, &value, redact)?;
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    unknown.dedup();
    let more = unknown.len() > UNKNOWN_LISTED;
    unknown.truncate(UNKNOWN_LISTED);
    let mut list = unknown.join(", ");
    if more {
        list.push_str(", …");
    }
    Err(Error::invalid(format!("redis: unexpected option: {list}")))
}

/// Parses one non-empty value into its field of `cfg`.
fn apply_param(
    cfg: &mut UrlConfig,
    key: Key,
    name: &str,
    value: &str,
    redact: &Redactor,
) -> Result<(), Error> {
    let count = || parse_count(name, value, redact);
    let duration = || parse_duration_param(name, value, redact);
    match key {
        Key::Db => cfg.db = Some(parse_db(value, redact)?),
        Key::ClientName => cfg.client_name = Some(parse_client_name(value, redact)?),
        Key::Protocol => cfg.protocol = Some(parse_protocol(value, redact)?),
        Key::PoolFifo => cfg.pool_fifo = Some(parse_bool(name, value, redact)?),
        Key::PoolSize => cfg.pool_size = Some(count()?),
        Key::MinIdleConns => cfg.min_idle_conns = Some(count()?),
        Key::MaxIdleConns => cfg.max_idle_conns = Some(count()?),
        Key::MaxActiveConns => cfg.max_active_conns = Some(count()?),
        Key::MaxConcurrentDials => cfg.max_concurrent_dials = Some(count()?),
        Key::DialerRetries => cfg.dialer_retries = Some(count()?),
        Key::PoolTimeout => cfg.pool_timeout = Some(parse_wait_param(name, value, redact)?),
        Key::DialTimeout => cfg.dial_timeout = Some(duration()?),
        Key::ReadTimeout => cfg.read_timeout = Some(duration()?),
        Key::WriteTimeout => cfg.write_timeout = Some(duration()?),
        Key::ConnMaxIdleTime => cfg.conn_max_idle_time = Some(duration()?),
        Key::ConnMaxLifetime => cfg.conn_max_lifetime = Some(duration()?),
        Key::ConnMaxLifetimeJitter => cfg.conn_max_lifetime_jitter = Some(duration()?),
        Key::DialerRetryBackoff => cfg.dialer_retry_backoff = Some(duration()?),
        Key::ReaperInterval => cfg.reaper_interval = Some(duration()?),
        Key::PingAfterIdle => cfg.ping_after_idle = Some(duration()?),
        Key::LeakDetectionThreshold => cfg.leak_detection_threshold = Some(duration()?),
        Key::HealthCheckBypass => cfg.health_check_bypass = Some(duration()?),
        Key::OvertakeWindow => cfg.overtake_window = Some(duration()?),
        Key::MaxReplyBytes => cfg.max_reply_bytes = Some(parse_size(name, value, redact)?),
        Key::MaxReplyElements => cfg.max_reply_elements = Some(parse_size(name, value, redact)?),
        Key::SkipVerify => {
            let tls = cfg.tls.get_or_insert_default();
            tls.insecure_skip_verify = parse_bool(name, value, redact)?;
        }
        Key::TlsCaFile => cfg.tls.get_or_insert_default().ca_file = Some(value.to_owned()),
        Key::TlsCaDir => cfg.tls.get_or_insert_default().ca_dir = Some(value.to_owned()),
        Key::TlsCertFile => cfg.tls.get_or_insert_default().cert_file = Some(value.to_owned()),
        Key::TlsKeyFile => cfg.tls.get_or_insert_default().key_file = Some(value.to_owned()),
        Key::TlsServerName => cfg.tls.get_or_insert_default().server_name = Some(value.to_owned()),
        Key::TlsMinVersion => {
            cfg.tls.get_or_insert_default().min_version = match value {
                "12" | "1.2" => 12,
                "13" | "1.3" => 13,
                _ => {
                    return Err(Error::invalid(format!(
                        "redis: invalid tls_min_version: {} (12 or 13)",
                        redact.quote(value)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Go's `strconv.Atoi` (optional sign, decimal digits) narrowed to `0..=i32::MAX`.
fn parse_non_negative(s: &str) -> Option<i32> {
    s.parse::<i32>().ok().filter(|n| *n >= 0)
}

fn parse_db(s: &str, redact: &Redactor) -> Result<i32, Error> {
    parse_non_negative(s).ok_or_else(|| {
        Error::invalid(format!(
            "redis: invalid database number: {} (expected 0 to {})",
            redact.quote(s),
            i32::MAX
        ))
    })
}

fn parse_count(name: &str, s: &str, redact: &Redactor) -> Result<i32, Error> {
    parse_non_negative(s).ok_or_else(|| {
        Error::invalid(format!(
            "redis: invalid {name} number: {} (expected 0 to {})",
            redact.quote(s),
            i32::MAX
        ))
    })
}

/// A reply limit: a decimal integer from 0 (the default) to `i64::MAX`.
fn parse_size(name: &str, s: &str, redact: &Redactor) -> Result<i64, Error> {
    s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Error::invalid(format!(
            "redis: invalid {name} number: {} (expected 0 to {})",
            redact.quote(s),
            i64::MAX
        ))
    })
}

fn parse_protocol(s: &str, redact: &Redactor) -> Result<i32, Error> {
    match s.parse::<i32>() {
        Ok(p @ (2 | 3)) => Ok(p),
        _ => Err(Error::invalid(format!(
            "redis: invalid protocol number: {} (expected 2 or 3)",
            redact.quote(s)
        ))),
    }
}

/// Go's `strconv.ParseBool` (go-redis itself takes only true/false/1/0).
fn parse_bool(name: &str, s: &str, redact: &Redactor) -> Result<bool, Error> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(Error::invalid(format!(
            "redis: invalid {name} boolean: {} (expected true/false/1/0)",
            redact.quote(s)
        ))),
    }
}

/// go-redis would find out on every dial that Redis refuses the name; this finds out once.
fn parse_client_name(s: &str, redact: &Redactor) -> Result<String, Error> {
    if crate::redis::valid_client_name(s) {
        return Ok(s.to_owned());
    }
    Err(Error::invalid(format!(
        "redis: invalid client_name: {} (no spaces, newlines or special characters)",
        redact.quote(s)
    )))
}

/// go-redis `queryOptions.duration`: a plain integer is seconds, anything else a Go duration;
/// a result `<= 0` disables. Unlike Go, a plain integer too large for a `time.Duration` is an
/// error rather than a silent wrap-around.
fn parse_duration_param(name: &str, s: &str, redact: &Redactor) -> Result<UrlDuration, Error> {
    Ok(match parse_wait_param(name, s, redact)? {
        UrlWait::Millis(millis) => UrlDuration::Millis(millis),
        UrlWait::NoWait | UrlWait::Forever => UrlDuration::Disabled,
    })
}

/// A duration parameter as `parse_duration_param` reads it, with 0 and negative values
/// kept apart (`pool_timeout`: do not wait / wait forever).
fn parse_wait_param(name: &str, s: &str, redact: &Redactor) -> Result<UrlWait, Error> {
    let nanos = match s.parse::<i64>() {
        Ok(0) => return Ok(UrlWait::NoWait),
        Ok(secs) if secs < 0 => return Ok(UrlWait::Forever),
        Ok(secs) => secs
            .checked_mul(NANOS_PER_SEC)
            .ok_or(DurationError::Overflow),
        Err(_) => parse_go_duration(s),
    };
    let nanos = nanos.map_err(|e| {
        // The unit is part of the value: show it only where the value may be shown.
        let shown = !redact.leaks(s);
        Error::invalid(format!(
            "redis: invalid {name} duration: {} ({})",
            redact.quote(s),
            e.reason(shown)
        ))
    })?;
    if nanos == 0 {
        return Ok(UrlWait::NoWait);
    }
    if nanos < 0 {
        return Ok(UrlWait::Forever);
    }
    let millis = nanos / NANOS_PER_MILLI + i64::from(nanos % NANOS_PER_MILLI != 0);
    Ok(UrlWait::Millis(millis))
}

/// Percent-decodes `s`; `None` for a malformed escape or bytes that are not UTF-8 (Go's
/// url.Parse refuses the former too).
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn decode_userinfo(s: &str) -> Result<String, Error> {
    // The message must not say more: this text may be the password.
    percent_decode(s)
        .ok_or_else(|| Error::invalid("redis: invalid URL: bad percent-encoding in the user info"))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: i64) -> Option<UrlDuration> {
        Some(UrlDuration::Millis(millis))
    }

    const OFF: Option<UrlDuration> = Some(UrlDuration::Disabled);

    fn tcp(addr: &str) -> UrlConfig {
        UrlConfig {
            addr: addr.to_owned(),
            ..UrlConfig::default()
        }
    }

    #[test]
    fn pool_timeout_keeps_zero_and_negative_apart() {
        for (v, want) in [
            ("0", UrlWait::NoWait),
            ("0s", UrlWait::NoWait),
            ("0ms", UrlWait::NoWait),
            ("-1", UrlWait::Forever),
            ("-2m", UrlWait::Forever),
            ("2", UrlWait::Millis(2_000)),
            ("250ms", UrlWait::Millis(250)),
            ("1ns", UrlWait::Millis(1)),
        ] {
            let cfg = parse_url(&format!("redis://h?pool_timeout={v}")).unwrap();
            assert_eq!(cfg.pool_timeout, Some(want), "pool_timeout={v}");
        }
        // The other durations still read 0 and negative alike, as go-redis does.
        for v in ["0", "-1", "0s"] {
            let cfg = parse_url(&format!("redis://h?dial_timeout={v}")).unwrap();
            assert_eq!(cfg.dial_timeout, OFF, "dial_timeout={v}");
        }
    }

    fn msg(url: &str) -> String {
        match parse_url(url) {
            Ok(cfg) => panic!("{url:?} parsed, expected an error: {cfg:?}"),
            Err(Error::InvalidArg(m)) => m,
            Err(e) => panic!("{url:?}: expected InvalidArg, got {e:?}"),
        }
    }

    #[test]
    fn accepted_urls() {
        let cases: Vec<(&str, UrlConfig)> = vec![
            ("redis://", tcp("localhost:6379")),
            ("redis://h", tcp("h:6379")),
            ("redis://h:", tcp("h:6379")),
            ("REDIS://Cache.Example:7001", tcp("Cache.Example:7001")),
            ("redis://:6380", tcp("localhost:6380")),
            ("redis://1.2.3.4:1", tcp("1.2.3.4:1")),
            ("redis://[::1]:7000", tcp("[::1]:7000")),
            ("redis://[::1]", tcp("[::1]:6379")),
            (
                "redis://[0:0::1]/2",
                UrlConfig {
                    db: Some(2),
                    ..tcp("[::1]:6379")
                },
            ),
            ("redis://my%2Dhost", tcp("my-host:6379")),
            ("redis://h/", tcp("h:6379")),
            (
                "redis://h/3",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://h/3/",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://h/+3",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://h/%33",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://h/3#frag",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            // go-redis: the query's db overrides the path's.
            (
                "redis://h/3?db=5",
                UrlConfig {
                    db: Some(5),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://h/3?db=",
                UrlConfig {
                    db: Some(3),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://user@h",
                UrlConfig {
                    username: Some("user".into()),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://:pass@h",
                UrlConfig {
                    password: Some("pass".into()),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://user:@h",
                UrlConfig {
                    username: Some("user".into()),
                    ..tcp("h:6379")
                },
            ),
            ("redis://:@h", tcp("h:6379")),
            ("redis://@h", tcp("h:6379")),
            (
                "redis://us%65r:p%40ss@h:1/0",
                UrlConfig {
                    username: Some("user".into()),
                    password: Some("p@ss".into()),
                    db: Some(0),
                    ..tcp("h:1")
                },
            ),
            (
                "redis://u:a:b%3Ac@h",
                UrlConfig {
                    username: Some("u".into()),
                    password: Some("a:b:c".into()),
                    ..tcp("h:6379")
                },
            ),
            // As Go: the last '@' ends the userinfo.
            (
                "redis://a@b:c@d@h",
                UrlConfig {
                    username: Some("a@b".into()),
                    password: Some("c@d".into()),
                    ..tcp("h:6379")
                },
            ),
            (
                "redis://u:p@:6380/1",
                UrlConfig {
                    username: Some("u".into()),
                    password: Some("p".into()),
                    db: Some(1),
                    ..tcp("localhost:6380")
                },
            ),
            (
                "redis://u:p@[::1]:6380/1",
                UrlConfig {
                    username: Some("u".into()),
                    password: Some("p".into()),
                    db: Some(1),
                    ..tcp("[::1]:6380")
                },
            ),
            ("unix:///tmp/redis.sock", tcp("/tmp/redis.sock")),
            ("unix:/tmp/redis.sock", tcp("/tmp/redis.sock")),
            ("unix://localhost/tmp/redis.sock", tcp("/tmp/redis.sock")),
            ("unix:///tmp/my%20redis.sock", tcp("/tmp/my redis.sock")),
            (
                "unix:///tmp/redis.sock?db=4",
                UrlConfig {
                    db: Some(4),
                    ..tcp("/tmp/redis.sock")
                },
            ),
            (
                "unix://u:p%40ss@/tmp/redis.sock?db=2&pool_size=3",
                UrlConfig {
                    username: Some("u".into()),
                    password: Some("p@ss".into()),
                    db: Some(2),
                    pool_size: Some(3),
                    ..tcp("/tmp/redis.sock")
                },
            ),
            (
                "unix://:secret@/run/r.sock",
                UrlConfig {
                    password: Some("secret".into()),
                    ..tcp("/run/r.sock")
                },
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse_url(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn every_parameter() {
        let url = "redis://h?db=1&client_name=app-1&protocol=3&pool_fifo=true&pool_size=20\
                   &min_idle_conns=2&max_idle_conns=8&max_active_conns=40\
                   &max_concurrent_dials=4&dialer_retries=7&pool_timeout=4s&dial_timeout=3\
                   &read_timeout=500ms&write_timeout=1m30s&conn_max_idle_time=30m\
                   &conn_max_lifetime=1.5h&conn_max_lifetime_jitter=10s\
                   &dialer_retry_backoff=250ms&reaper_interval=1m&ping_after_idle=0\
                   &leak_detection_threshold=2s&health_check_bypass=500ms\
                   &overtake_window=5ms&max_reply_bytes=1048576&max_reply_elements=1000";
        let want = UrlConfig {
            db: Some(1),
            client_name: Some("app-1".into()),
            protocol: Some(3),
            pool_fifo: Some(true),
            pool_size: Some(20),
            min_idle_conns: Some(2),
            max_idle_conns: Some(8),
            max_active_conns: Some(40),
            max_concurrent_dials: Some(4),
            dialer_retries: Some(7),
            pool_timeout: Some(UrlWait::Millis(4_000)),
            dial_timeout: ms(3_000),
            read_timeout: ms(500),
            write_timeout: ms(90_000),
            conn_max_idle_time: ms(1_800_000),
            conn_max_lifetime: ms(5_400_000),
            conn_max_lifetime_jitter: ms(10_000),
            dialer_retry_backoff: ms(250),
            reaper_interval: ms(60_000),
            ping_after_idle: OFF,
            leak_detection_threshold: ms(2_000),
            health_check_bypass: ms(500),
            overtake_window: ms(5),
            max_reply_bytes: Some(1 << 20),
            max_reply_elements: Some(1000),
            ..tcp("h:6379")
        };
        assert_eq!(parse_url(url), Ok(want));
    }

    #[test]
    fn single_parameters() {
        type Check = fn(&UrlConfig) -> bool;
        let cases: &[(&str, Check)] = &[
            ("pool_size=0", |c| c.pool_size == Some(0)),
            ("pool_size=2147483647", |c| c.pool_size == Some(i32::MAX)),
            ("pool_size=%2B5", |c| c.pool_size == Some(5)),
            ("pool_size=007", |c| c.pool_size == Some(7)),
            ("pool_size=", |c| c.pool_size.is_none()),
            ("pool_size", |c| c.pool_size.is_none()),
            ("protocol=2", |c| c.protocol == Some(2)),
            ("protocol=", |c| c.protocol.is_none()),
            ("client_name=", |c| c.client_name.is_none()),
            ("client_name=a%2Bb", |c| {
                c.client_name.as_deref() == Some("a+b")
            }),
            ("pool_fifo=", |c| c.pool_fifo.is_none()),
            ("pool_fifo=1", |c| c.pool_fifo == Some(true)),
            ("pool_fifo=t", |c| c.pool_fifo == Some(true)),
            ("pool_fifo=T", |c| c.pool_fifo == Some(true)),
            ("pool_fifo=TRUE", |c| c.pool_fifo == Some(true)),
            ("pool_fifo=True", |c| c.pool_fifo == Some(true)),
            ("pool_fifo=0", |c| c.pool_fifo == Some(false)),
            ("pool_fifo=f", |c| c.pool_fifo == Some(false)),
            ("pool_fifo=F", |c| c.pool_fifo == Some(false)),
            ("pool_fifo=FALSE", |c| c.pool_fifo == Some(false)),
            ("pool_fifo=false", |c| c.pool_fifo == Some(false)),
            ("pool_fifo=False", |c| c.pool_fifo == Some(false)),
            ("idle_timeout=5m", |c| c.conn_max_idle_time == ms(300_000)),
            ("max_conn_age=2h", |c| c.conn_max_lifetime == ms(7_200_000)),
            ("dial_timeout=", |c| c.dial_timeout.is_none()),
            ("read_timeout=-1", |c| c.read_timeout == OFF),
            ("read_timeout=-2", |c| c.read_timeout == OFF),
            ("write_timeout=1%C2%B5s", |c| c.write_timeout == ms(1)),
            ("db=0", |c| c.db == Some(0)),
            ("max_reply_bytes=0", |c| c.max_reply_bytes == Some(0)),
            ("max_reply_bytes=9223372036854775807", |c| {
                c.max_reply_bytes == Some(i64::MAX)
            }),
            ("max_reply_elements=", |c| c.max_reply_elements.is_none()),
            ("&&pool_size=1&", |c| c.pool_size == Some(1)),
        ];
        for (query, check) in cases {
            let url = format!("redis://h?{query}");
            let cfg = parse_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(check(&cfg), "{url}: {cfg:?}");
        }
    }

    #[test]
    fn rediss_urls_set_tls() {
        let cfg = parse_url("rediss://h:6380/1").unwrap();
        assert_eq!(cfg.addr, "h:6380");
        assert_eq!(cfg.db, Some(1));
        assert_eq!(cfg.tls, Some(TlsSettings::default()));
        assert_eq!(parse_url("redis://h").unwrap().tls, None);
        let cfg = parse_url(
            "rediss://h?skip_verify=true&tls_ca_file=/c/ca.pem&tls_ca_dir=/c&tls_cert_file=/c/a.pem\
             &tls_key_file=/c/a%20b.key&tls_server_name=redis.example&tls_min_version=13",
        )
        .unwrap();
        assert_eq!(
            cfg.tls,
            Some(TlsSettings {
                ca_file: Some("/c/ca.pem".into()),
                ca_dir: Some("/c".into()),
                cert_file: Some("/c/a.pem".into()),
                key_file: Some("/c/a b.key".into()),
                server_name: Some("redis.example".into()),
                min_version: 13,
                insecure_skip_verify: true,
            })
        );
    }

    #[test]
    fn refused_urls() {
        // (url, texts the message must contain)
        let cases: &[(&str, &[&str])] = &[
            ("", &["invalid URL scheme"]),
            ("localhost:6379", &["invalid URL scheme", "\"localhost\""]),
            ("//h:1", &["invalid URL scheme"]),
            ("http://h", &["invalid URL scheme", "\"http\""]),
            (
                "rediss://h?tls_min_version=1.1",
                &["tls_min_version", "12 or 13"],
            ),
            ("rediss://h?skip_verify=maybe", &["skip_verify"]),
            ("redis:foo", &["invalid URL"]),
            ("redis://h:99999", &["invalid URL", "port"]),
            ("redis://h:x", &["invalid URL", "port"]),
            ("redis://h h", &["control character or unescaped space"]),
            ("redis://h\n", &["control character"]),
            ("redis://h\t:1", &["control character"]),
            ("redis://[::1", &["invalid URL"]),
            ("redis://[fe80::1%25eth0]:1", &["invalid URL", "IPv6"]),
            ("redis://a%3Ab:1", &["invalid host", "\"a:b\""]),
            // The one address rule (`addr`): no spaces, signs or port 0, however written.
            ("redis:// 127.0.0.1:6379", &["unescaped space"]),
            ("redis://127.0.0.1:+6379", &["invalid URL", "port"]),
            ("redis://127.0.0.1: 6379", &["unescaped space"]),
            ("redis://127.0.0.1:0", &["invalid URL", "port 0"]),
            ("redis://h:0", &["invalid URL", "port 0"]),
            ("redis://h:65536", &["invalid URL", "port"]),
            ("redis://%20h:1", &["invalid host", "\" h\""]),
            ("redis://h%20:1", &["invalid host", "\"h \""]),
            ("redis://h%09:1", &["invalid host", "\"h\\t\""]),
            ("redis://h%2B:1", &["invalid host", "\"h+\""]),
            ("redis://a%zz:1", &["bad percent-encoding in the host"]),
            (
                "redis://u:p%zz@h",
                &["bad percent-encoding in the user info"],
            ),
            (
                "redis://u:p%FF@h",
                &["bad percent-encoding in the user info"],
            ),
            ("redis://h/abc", &["invalid database number", "\"abc\""]),
            ("redis://h/-1", &["invalid database number", "\"-1\""]),
            ("redis://h/3/4", &["invalid URL path", "\"/3/4\""]),
            ("redis://h/2147483648", &["invalid database number"]),
            ("redis://h?db=x", &["invalid database number", "\"x\""]),
            ("unix://", &["empty unix socket path"]),
            ("unix://localhost", &["empty unix socket path"]),
            ("unix:///tmp/a%00b", &["NUL"]),
            (
                "unix://tmp/redis.sock",
                &["unix URL", "unexpected host", "\"tmp\""],
            ),
            (
                "unix://localhost:6379/tmp/r.sock",
                &["unix URL", "unexpected host"],
            ),
            (
                "unix:///tmp/r.sock?db=-3",
                &["invalid database number", "\"-3\""],
            ),
            ("redis://h?foo=1", &["redis: unexpected option: foo"]),
            ("redis://h?foo", &["redis: unexpected option: foo"]),
            ("redis://h?=5", &["redis: unexpected option: \"\""]),
            ("redis://h?b=1&a=2&b=3", &["redis: unexpected option: a, b"]),
            (
                "redis://h?d=1&c=1&b=1&a=1",
                &["unexpected option: a, b, c, …"],
            ),
            ("redis://h?addr=x", &["unexpected option: addr"]),
            ("redis://h?password=x", &["unexpected option: password"]),
            (
                "redis://h?max_retries=3",
                &["max_retries", "not supported by redispool"],
            ),
            (
                "redis://h?min_retry_backoff=8ms",
                &["min_retry_backoff", "not supported"],
            ),
            (
                "redis://h?max_retry_backoff=1s",
                &["max_retry_backoff", "not supported"],
            ),
            ("redis://h?skip_verify=true", &["TLS options", "rediss://"]),
            (
                "redis://h?pipeline_pool_size=1",
                &["pipeline_pool_size", "not supported"],
            ),
            (
                "redis://h?pool_size=1&pool_size=2",
                &["pool_size", "more than once"],
            ),
            (
                "redis://h?pool_size=&pool_size=2",
                &["pool_size", "more than once"],
            ),
            ("redis://h?db=1&db=1", &["db", "more than once"]),
            (
                "redis://h?conn_max_idle_time=1s&idle_timeout=2s",
                &["conn_max_idle_time", "idle_timeout", "alias"],
            ),
            (
                "redis://h?max_conn_age=1s&conn_max_lifetime=2s",
                &["max_conn_age", "conn_max_lifetime", "alias"],
            ),
            (
                "redis://h?protocol=1",
                &["invalid protocol number", "\"1\"", "2 or 3"],
            ),
            (
                "redis://h?protocol=x",
                &["invalid protocol number", "\"x\""],
            ),
            (
                "redis://h?pool_fifo=yes",
                &["invalid pool_fifo boolean", "\"yes\""],
            ),
            (
                "redis://h?client_name=a+b",
                &["invalid client_name", "\"a b\""],
            ),
            (
                "redis://h?client_name=a%0Ab",
                &["invalid client_name", "\"a\\nb\""],
            ),
        ];
        for (url, wants) in cases {
            let m = msg(url);
            for want in *wants {
                assert!(m.contains(want), "{url:?}: {m:?} lacks {want:?}");
            }
            assert!(m.starts_with("redis: "), "{url:?}: {m:?}");
        }
    }

    #[test]
    fn refused_values_name_their_parameter() {
        let counts = [
            "pool_size",
            "min_idle_conns",
            "max_idle_conns",
            "max_active_conns",
            "max_concurrent_dials",
            "dialer_retries",
        ];
        for name in ["max_reply_bytes", "max_reply_elements"] {
            for bad in [
                "abc",
                "-1",
                "9223372036854775808",
                "1.5",
                "1e3",
                "0x10",
                "%201",
            ] {
                let m = msg(&format!("redis://h?{name}={bad}"));
                assert!(m.contains(&format!("invalid {name} number")), "{m}");
            }
        }
        for name in counts {
            for bad in ["abc", "-1", "2147483648", "1.5", "1e3", "0x10", "%201"] {
                let m = msg(&format!("redis://h?{name}={bad}"));
                assert!(m.contains(&format!("invalid {name} number")), "{m}");
                let shown = bad.replace("%20", " ");
                assert!(m.contains(&format!("\"{shown}\"")), "{m}");
            }
        }
        let durations = [
            "pool_timeout",
            "dial_timeout",
            "read_timeout",
            "write_timeout",
            "conn_max_idle_time",
            "idle_timeout",
            "conn_max_lifetime",
            "max_conn_age",
            "conn_max_lifetime_jitter",
            "dialer_retry_backoff",
            "reaper_interval",
            "ping_after_idle",
            "leak_detection_threshold",
            "health_check_bypass",
            "overtake_window",
        ];
        for name in durations {
            for (bad, why) in [
                ("abc", "not a number"),
                ("5x", "unknown unit \"x\""),
                ("1.5", "missing unit"),
                ("9999999999999h", "out of range"),
                ("9223372037", "out of range"),
            ] {
                let m = msg(&format!("redis://h?{name}={bad}"));
                assert!(m.contains(&format!("invalid {name} duration")), "{m}");
                assert!(m.contains(&format!("\"{bad}\"")), "{m}");
                assert!(m.contains(why), "{m} lacks {why}");
            }
        }
    }

    #[test]
    fn duration_parameters() {
        let cases: &[(&str, UrlDuration)] = &[
            ("1h2m3.5s", UrlDuration::Millis(3_723_500)),
            ("250ms", UrlDuration::Millis(250)),
            ("1.5us", UrlDuration::Millis(1)),
            ("1ns", UrlDuration::Millis(1)),
            ("1000001ns", UrlDuration::Millis(2)),
            ("999us", UrlDuration::Millis(1)),
            ("-1", UrlDuration::Disabled),
            ("0", UrlDuration::Disabled),
            ("-0", UrlDuration::Disabled),
            ("0s", UrlDuration::Disabled),
            ("-1s", UrlDuration::Disabled),
            ("-0.5ms", UrlDuration::Disabled),
            ("5", UrlDuration::Millis(5_000)),
            ("+5", UrlDuration::Millis(5_000)),
            ("+5s", UrlDuration::Millis(5_000)),
            ("4s", UrlDuration::Millis(4_000)),
            ("1.5h", UrlDuration::Millis(5_400_000)),
            (".5s", UrlDuration::Millis(500)),
            ("1.s", UrlDuration::Millis(1_000)),
            ("9223372036", UrlDuration::Millis(9_223_372_036_000)),
            ("2562047h", UrlDuration::Millis(9_223_369_200_000)),
        ];
        let parse = |v| parse_duration_param("dial_timeout", v, &Redactor::new(None));
        for (value, want) in cases {
            assert_eq!(parse(value), Ok(*want), "{value}");
        }
        // As Go: not an int, so not "<= 0 disables", and too long a Go duration.
        assert!(parse("-99999999999999999999").is_err());
    }

    #[test]
    fn password_never_in_messages() {
        const PW: &str = "S3cr3t-Pw";
        let bad_tails = [
            "/abc",
            "/1/2",
            "?pool_size=x",
            "?S3cr3t-Pw=1",
            "?pool_size=S3cr3t-Pw",
            "?client_name=S3cr3t-Pw%20x",
            "?dial_timeout=S3cr3t-Pw",
            "?dial_timeout=5S3cr3t-Pw",
            "?protocol=S3cr3t-Pw",
            "?pool_fifo=S3cr3t-Pw",
            "/S3cr3t-Pw",
            "?db=S3cr3t-Pw",
            "?pool_size=1&pool_size=2",
            "?max_retries=1",
        ];
        let heads = [
            format!("redis://user:{PW}@h"),
            "redis://user:S3cr3t%2DPw@h".to_owned(),
            format!("unix://user:{PW}@/tmp/r.sock"),
            format!("redis://:{PW}@h"),
        ];
        for head in &heads {
            for tail in bad_tails {
                if head.starts_with("unix") && tail.starts_with('/') {
                    continue; // a longer socket path, not an error
                }
                let url = format!("{head}{tail}");
                let m = msg(&url);
                assert!(!m.contains(PW), "{url:?}: {m:?}");
                assert!(!m.contains("S3cr3t%2DPw"), "{url:?}: {m:?}");
            }
        }
        for url in [
            "redis://:secret@h?dial_timeout=5secret".to_owned(),
            "redis://:secret@h?secret".to_owned(),
            format!("{PW}://user:{PW}@h"),
            format!("redis://user:{PW}@{PW}%3A:1"),
            format!("unix://user:{PW}@{PW}/tmp/r.sock"),
            format!("redis://user:{PW}@h:99999"),
            format!("redis://user:{PW}%zz@h"),
            format!("redis://user:{PW} @h"),
        ] {
            let m = msg(&url);
            assert!(!m.contains(PW), "{url:?}: {m:?}");
        }
    }

    #[test]
    fn messages_stay_short() {
        let long = "x".repeat(5000);
        let long_unicode = "é".repeat(3000);
        let newlines = "%0A".repeat(1000);
        for url in [
            format!("redis://h?pool_size={long}"),
            format!("redis://h?dial_timeout=1{long}"),
            format!("redis://h?{long}=1"),
            format!("redis://h?{long}=1&{long}y=1&{long}z=1&{long}w=1"),
            format!("redis://h?client_name={long_unicode}"),
            format!("redis://h?client_name={newlines}"),
            format!("redis://h/{long}"),
            format!("{long}://h"),
            format!("redis://{long}%3A"),
            format!("unix://{long}/x"),
            format!("redis://h/{}", "a/".repeat(3000)),
        ] {
            let m = msg(&url);
            assert!(m.len() < 256, "{} bytes: {m}", m.len());
            assert!(!m.contains('\n'), "{m}");
        }
        let m = msg(&format!("redis://h?pool_size={long}"));
        assert!(
            m.contains(&format!("\"{}…\"", "x".repeat(CLIP_BYTES))),
            "{m}"
        );
    }

    #[test]
    fn length_limit() {
        let pad = "a".repeat(MAX_URL_LEN - "redis://h?client_name=".len());
        let at_limit = format!("redis://h?client_name={pad}");
        assert_eq!(at_limit.len(), MAX_URL_LEN);
        assert_eq!(parse_url(&at_limit).unwrap().client_name, Some(pad));
        let m = msg(&format!("{at_limit}b"));
        assert!(m.contains("too long") && m.contains("8192"), "{m}");
    }

    /// xorshift64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn fuzz_never_panics_and_messages_stay_bounded() {
        const PW: &str = "hunter2pw";
        let seeds = [
            "redis://user:hunter2pw@localhost:6379/3?pool_size=10&dial_timeout=1h2m3.5s",
            "redis://:hunter2pw@[::1]:7000/0?protocol=3&client_name=app&pool_fifo=true",
            "unix://user:hunter2pw@/tmp/redis.sock?db=2&read_timeout=250ms",
            "redis://h?conn_max_idle_time=30m&max_conn_age=1.5h&pool_timeout=-1",
            "redis://u:p%40ss@h/1?min_idle_conns=2&max_idle_conns=3&max_active_conns=4",
            "redis://h?max_concurrent_dials=2&dialer_retries=5&dialer_retry_backoff=100ms",
            "redis://h?reaper_interval=1m&ping_after_idle=5s&conn_max_lifetime_jitter=1µs",
            "rediss://h?skip_verify=true",
            "unix:///tmp/a%20b?db=",
        ];
        let alphabet: Vec<char> = ":/@?&=%[]#.+-_0123456789abcdefhmnsuxABCDEF µμ\u{0}\n\u{7f}é"
            .chars()
            .collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut refused, mut guarded, mut longest) = (0, 0, 0, 0);
        for i in 0..20_000 {
            let mut s: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(s.len() + 1);
                match rng.below(7) {
                    0 if at < s.len() => s[at] = alphabet[rng.below(alphabet.len())],
                    1 => s.insert(at, alphabet[rng.below(alphabet.len())]),
                    2 if at < s.len() => {
                        s.remove(at);
                    }
                    3 => {
                        let end = (at + rng.below(8)).min(s.len());
                        let piece: Vec<char> = s[at.min(end)..end].to_vec();
                        let to = rng.below(s.len() + 1);
                        s.splice(to..to, piece);
                    }
                    4 => {
                        let seed: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                        let from = rng.below(seed.len());
                        let end = (from + rng.below(24)).min(seed.len());
                        s.splice(at..at, seed[from..end].iter().copied());
                    }
                    5 if s.len() < 1000 && rng.below(50) == 0 => {
                        let piece: Vec<char> = s[at..].to_vec();
                        for _ in 0..1 + rng.below(400) {
                            s.extend_from_slice(&piece);
                        }
                    }
                    _ => {
                        let (name, _) = PARAMS[rng.below(PARAMS.len())];
                        let value =
                            ["", "-1", "0", "x", "99999999999", "1.5us", "+3"][rng.below(7)];
                        let sep = if s.contains(&'?') { '&' } else { '?' };
                        s.push(sep);
                        s.extend(name.chars().chain(['=']).chain(value.chars()));
                    }
                }
            }
            let url: String = s.into_iter().collect();
            let Err(err) = parse_url(&url) else {
                accepted += 1;
                continue;
            };
            refused += 1;
            let Error::InvalidArg(m) = &err else {
                panic!("#{i} {url:?}: not InvalidArg: {err:?}");
            };
            assert!(m.len() < 256, "#{i} {url:?}: {} bytes: {m}", m.len());
            longest = longest.max(m.len());
            assert!(
                !m.contains('\n') && !m.contains('\0'),
                "#{i} {url:?}: {m:?}"
            );
            // The password as the url crate finds it, independently of `raw_password`.
            let pw = Url::parse(&with_default_host(&url))
                .ok()
                .and_then(|u| u.password().and_then(percent_decode));
            if let Some(pw) = pw.filter(|p| p.len() >= 3) {
                assert!(!m.contains(&pw), "#{i} {url:?}: {m:?} shows {pw:?}");
                guarded += usize::from(pw == PW);
            }
        }
        // The mutations must reach both outcomes and the password check, or this proves little.
        assert!(
            accepted > 1_000 && refused > 10_000,
            "{accepted} ok, {refused} refused"
        );
        assert!(
            guarded > 1_000,
            "only {guarded} refusals had the password in the URL"
        );
        assert!(longest > 100, "longest message {longest} bytes");
    }

    /// Found by the fuzzer: a host or unix path too long for the dialer used to be refused
    /// by the dialer, whose message quoted it without hiding the password.
    #[test]
    fn overlong_host_or_unix_path_is_refused_here_with_the_password_hidden() {
        let pw = "hunter2pw";
        let host = pw.repeat(30);
        let tcp = format!("redis://u:{pw}@{host}:1");
        let unix = format!("unix://u:{pw}@/tmp/{pw}/{}.sock", "x".repeat(100));
        for url in [tcp, unix] {
            let err = parse_url(&url).unwrap_err().to_string();
            assert!(!err.contains(pw), "{err}");
            assert!(err.contains("longer than"), "{err}");
        }
        // At the limits it parses.
        assert!(parse_url(&format!("redis://{}:1", "h".repeat(253))).is_ok());
        assert!(parse_url(&format!("unix:///{}", "p".repeat(106))).is_ok());
    }
}
