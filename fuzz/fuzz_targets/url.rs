//! The go-redis URL parser and what the C layer makes of its result.
//!
//! Arbitrary bytes are cut at the first NUL (what a C caller can pass) and go three ways:
//! `parse_url`, then the conversion to C and to core options (`redispool::fuzzing`, the
//! steps of `pool_new_url` short of creating the pool), and `pool_new_url` itself. Nothing
//! may panic, and:
//! - every refusal is POOL_ERR_INVALID_ARG with a short, single-line message that never
//!   shows the URL's password (as written, or percent-decoded);
//! - `pool_new_url` agrees with the Rust path: same outcome, same message (cut to the 255
//!   bytes of `pool_error_t`), and it leaves `err_out` alone on success;
//! - an accepted URL round-trips: the URL rebuilt from its `UrlConfig` in a canonical form
//!   (canonical parameter names, every reserved byte percent-encoded) parses to the same
//!   `UrlConfig`;
//! - the C and core options carry exactly what the URL said, and the defaults elsewhere.
#![no_main]

use std::ffi::{CStr, CString, c_char};
use std::fmt::Write as _;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use redispool::ffi::error::pool_error_t;
use redispool::ffi::options::pool_options_t;
use redispool::ffi::pool::{pool_free, pool_new_url, pool_t};
use redispool::ffi::status::{POOL_ERR_INVALID_ARG, POOL_OK};
use redispool::fuzzing::{core_options, url_to_c_options};
use redispool::pool::{
    DEFAULT_MAX_CONCURRENT_DIALS, Error, MAX_CONCURRENT_DIALS, Options, Wait, default_pool_size,
};
use redispool::redis::resp::ReplyLimits;
use redispool::redis::url::{MAX_URL_LEN, UrlConfig, UrlDuration, UrlWait, parse_url};

fuzz_target!(|data: &[u8]| {
    let bytes = data.split(|&b| b == 0).next().unwrap_or_default();
    let c_url = CString::new(bytes).expect("cut at the first NUL");
    let Ok(url) = std::str::from_utf8(bytes) else {
        let outcome = c_new_url(&c_url, "");
        assert_eq!(outcome, Err("url: not valid UTF-8".to_owned()));
        return;
    };
    let (expected, dials) = match rust_path(url) {
        Ok(cfg) => {
            check_accepted(url, &cfg);
            // A pool with min_idle_conns > 0 starts dialing the URL's address at once.
            (Ok(()), cfg.min_idle_conns.unwrap_or(0) > 0)
        }
        Err(msg) => (Err(msg), false),
    };
    if !dials {
        assert_eq!(
            c_new_url(&c_url, url),
            expected,
            "pool_new_url vs the Rust path"
        );
    }
});

/// Everything `pool_new_url` does before creating the pool: the parsed URL, or the message
/// of the first refusal as `pool_error_t` holds it (checked here: InvalidArg, one line, no
/// password; from the URL parser itself also under 256 bytes, as redis/url promises).
fn rust_path(url: &str) -> Result<UrlConfig, String> {
    let (err, parsing) = match parse_url(url) {
        Ok(cfg) => match convert(&cfg) {
            Ok(_) => return Ok(cfg),
            Err(e) => (e, false),
        },
        Err(e) => (e, true),
    };
    let Error::InvalidArg(msg) = &err else {
        panic!("{url:?}: refused with {err:?}, not InvalidArg");
    };
    assert!(!msg.is_empty(), "{url:?}: empty message");
    assert!(
        !parsing || msg.len() < 256,
        "{url:?}: {} bytes: {msg}",
        msg.len()
    );
    assert!(!msg.contains(['\n', '\r', '\0']), "{url:?}: {msg:?}");
    check_no_password(url, msg);
    Err(c_cut(msg).to_owned())
}

/// `msg` as `pool_error_t` holds it: at most 255 bytes, cut on a character boundary.
fn c_cut(msg: &str) -> &str {
    let mut end = msg.len().min(255);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}

/// The URL's C options and its core options.
fn convert(cfg: &UrlConfig) -> Result<(pool_options_t, Options), Error> {
    let (c, strings) = url_to_c_options(cfg)?;
    // SAFETY: `c`'s strings live in `strings`, alive until the end of this function; the
    // URL path sets no dialer.
    let core = unsafe { core_options(&c) }?;
    drop(strings);
    Ok((c, core))
}

/// The password as written, found as Go's url.Parse and the url crate find it: the
/// userinfo is what precedes the last '@' of the authority, the password what follows its
/// first ':'. Looser than the library's own search (any scheme), so it finds at least as
/// much.
fn raw_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once(':')?;
    let auth = rest.strip_prefix("//")?;
    let auth = &auth[..auth.find(['/', '?', '#']).unwrap_or(auth.len())];
    let (userinfo, _) = auth.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The password as written and as decoded, the non-empty ones.
fn secrets(url: &str) -> Vec<String> {
    let Some(raw) = raw_password(url) else {
        return Vec::new();
    };
    let mut out = vec![raw.to_owned()];
    if let Some(decoded) = percent_decode(raw) {
        out.push(decoded);
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A password no fixed message text contains: no message of this library or of the url
/// crate has a Q, Z or J.
fn marker(len: usize) -> String {
    "QZJ".chars().cycle().take(len).collect()
}

/// `msg` (the refusal of `url`) must not show the URL's password. A message may contain a
/// short or common password by chance ("redis", "option", "s"): the URL is then asked again
/// with every occurrence of the password replaced by a marker of the same length, which no
/// fixed text contains. If the first message showed the password because user text holding
/// it was not redacted, the second shows the marker.
fn check_no_password(url: &str, msg: &str) {
    let secrets = secrets(url);
    if !secrets.iter().any(|s| msg.contains(s.as_str())) {
        return;
    }
    let mut again = url.to_owned();
    for s in &secrets {
        again = again.replace(s.as_str(), &marker(s.len()));
    }
    if again == url {
        return;
    }
    let msg2 = match parse_url(&again).and_then(|cfg| convert(&cfg).map(|_| ())) {
        Ok(()) => return,
        Err(e) => e.to_string(),
    };
    for s in self::secrets(&again) {
        assert!(
            !msg2.contains(s.as_str()),
            "the message shows the password {s:?}\n url: {again:?}\n message: {msg2:?}\n (first seen as {msg:?} for {url:?})"
        );
    }
}

/// `pool_new_url` on `url`: Ok, or the message it wrote. Frees the pool it made.
fn c_new_url(url: &CStr, shown: &str) -> Result<(), String> {
    let mut pool: *mut pool_t = std::ptr::dangling_mut();
    let mut err = pool_error_t {
        code: -1,
        message: [0x55; 256],
    };
    // SAFETY: a NUL-terminated string and writable out-pointers.
    let rc = unsafe { pool_new_url(url.as_ptr(), &mut pool, &mut err) };
    if rc == POOL_OK {
        assert!(!pool.is_null(), "{shown:?}: POOL_OK without a pool");
        assert_eq!(err.code, -1, "{shown:?}: err_out written on success");
        // SAFETY: the pool just made, freed once.
        unsafe { pool_free(pool) };
        return Ok(());
    }
    assert!(pool.is_null(), "{shown:?}: a pool on failure");
    assert_eq!(rc, POOL_ERR_INVALID_ARG, "{shown:?}: status {rc}");
    assert_eq!(err.code, rc, "{shown:?}");
    Err(c_message(&err.message).to_owned())
}

/// A `pool_error_t` message: NUL-terminated within its 256 bytes, UTF-8, not empty.
fn c_message(message: &[c_char; 256]) -> &str {
    // SAFETY: c_char and u8 have the same layout.
    let bytes: &[u8; 256] = unsafe { &*(message as *const [c_char; 256]).cast() };
    let text = CStr::from_bytes_until_nul(bytes).expect("message is NUL-terminated");
    let text = text.to_str().expect("message is UTF-8");
    assert!(!text.is_empty(), "empty message");
    text
}

fn check_accepted(url: &str, cfg: &UrlConfig) {
    let unix = url
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("unix:"));
    if unix {
        assert!(cfg.addr.starts_with('/'), "{url:?}: {cfg:?}");
    } else {
        let (host, port) = cfg.addr.rsplit_once(':').expect("host:port");
        assert!(
            !host.is_empty() && port.parse::<u16>().is_ok(),
            "{url:?}: {cfg:?}"
        );
    }
    assert!(cfg.username.as_ref().is_none_or(|s| !s.is_empty()));
    assert!(cfg.password.as_ref().is_none_or(|s| !s.is_empty()));

    let canon = canonical(cfg, unix);
    if canon.len() <= MAX_URL_LEN {
        match parse_url(&canon) {
            Ok(again) => assert_eq!(&again, cfg, "{url:?} rebuilt as {canon:?}"),
            Err(e) => panic!("{url:?} rebuilt as {canon:?} is refused: {e}"),
        }
    }

    let (c, strings) = url_to_c_options(cfg).expect("rust_path converted it");
    check_c_options(cfg, &c);
    // SAFETY: `c`'s strings live in `strings`; no dialer.
    let core = unsafe { core_options(&c) }.expect("rust_path converted it");
    drop(strings);
    check_core_options(cfg, &core);
}

/// Appends `s` with every byte but ALPHA / DIGIT / "-._~" percent-encoded.
fn enc(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
}

fn wait(w: UrlWait) -> String {
    match w {
        UrlWait::NoWait => "0".to_owned(),
        UrlWait::Forever => "-1".to_owned(),
        UrlWait::Millis(ms) => duration(UrlDuration::Millis(ms)),
    }
}

fn duration(d: UrlDuration) -> String {
    match d {
        UrlDuration::Disabled => "0".to_owned(),
        // "<ms>ms" parses back to <ms>, unless it is past the largest Go duration (2^63 ns
        // rounds up to 9223372036855 ms): one nanosecond more than <ms - 1> ms rounds up to
        // the same.
        UrlDuration::Millis(ms) if ms <= i64::MAX / 1_000_000 => format!("{ms}ms"),
        UrlDuration::Millis(ms) => format!("{}ms1ns", ms - 1),
    }
}

/// `cfg` written back as a URL, with canonical parameter names and values.
fn canonical(cfg: &UrlConfig, unix: bool) -> String {
    let scheme = match (unix, cfg.tls.is_some()) {
        (true, _) => "unix://",
        (false, true) => "rediss://",
        (false, false) => "redis://",
    };
    let mut u = String::from(scheme);
    if cfg.username.is_some() || cfg.password.is_some() {
        enc(&mut u, cfg.username.as_deref().unwrap_or_default());
        if let Some(p) = &cfg.password {
            u.push(':');
            enc(&mut u, p);
        }
        u.push('@');
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    if unix {
        // Every '/' but the first escaped: the path is one segment, so nothing in it can be
        // taken for a dot segment and normalised away.
        u.push('/');
        enc(&mut u, &cfg.addr[1..]);
        if let Some(db) = cfg.db {
            query.push(("db", db.to_string()));
        }
    } else {
        let (host, port) = cfg.addr.rsplit_once(':').expect("host:port");
        if host.starts_with('[') {
            u.push_str(host);
        } else {
            enc(&mut u, host);
        }
        write!(u, ":{port}").unwrap();
        if let Some(db) = cfg.db {
            write!(u, "/{db}").unwrap();
        }
    }
    let counts = [
        ("protocol", cfg.protocol),
        ("pool_size", cfg.pool_size),
        ("min_idle_conns", cfg.min_idle_conns),
        ("max_idle_conns", cfg.max_idle_conns),
        ("max_active_conns", cfg.max_active_conns),
        ("max_concurrent_dials", cfg.max_concurrent_dials),
        ("dialer_retries", cfg.dialer_retries),
    ];
    for (name, v) in counts {
        if let Some(v) = v {
            query.push((name, v.to_string()));
        }
    }
    if let Some(f) = cfg.pool_fifo {
        query.push(("pool_fifo", f.to_string()));
    }
    if let Some(n) = &cfg.client_name {
        let mut v = String::new();
        enc(&mut v, n);
        query.push(("client_name", v));
    }
    if let Some(w) = cfg.pool_timeout {
        query.push(("pool_timeout", wait(w)));
    }
    let durations = [
        ("dial_timeout", cfg.dial_timeout),
        ("read_timeout", cfg.read_timeout),
        ("write_timeout", cfg.write_timeout),
        ("conn_max_idle_time", cfg.conn_max_idle_time),
        ("conn_max_lifetime", cfg.conn_max_lifetime),
        ("conn_max_lifetime_jitter", cfg.conn_max_lifetime_jitter),
        ("dialer_retry_backoff", cfg.dialer_retry_backoff),
        ("reaper_interval", cfg.reaper_interval),
        ("ping_after_idle", cfg.ping_after_idle),
        ("leak_detection_threshold", cfg.leak_detection_threshold),
        ("health_check_bypass", cfg.health_check_bypass),
        ("overtake_window", cfg.overtake_window),
    ];
    for (name, v) in durations {
        if let Some(v) = v {
            query.push((name, duration(v)));
        }
    }
    let sizes = [
        ("max_reply_bytes", cfg.max_reply_bytes),
        ("max_reply_elements", cfg.max_reply_elements),
    ];
    for (name, v) in sizes {
        if let Some(v) = v {
            query.push((name, v.to_string()));
        }
    }
    if let Some(tls) = &cfg.tls {
        if tls.insecure_skip_verify {
            query.push(("skip_verify", "true".to_owned()));
        }
        let files = [
            ("tls_ca_file", &tls.ca_file),
            ("tls_ca_dir", &tls.ca_dir),
            ("tls_cert_file", &tls.cert_file),
            ("tls_key_file", &tls.key_file),
            ("tls_server_name", &tls.server_name),
        ];
        for (name, v) in files {
            if let Some(v) = v {
                let mut e = String::new();
                enc(&mut e, v);
                query.push((name, e));
            }
        }
        if tls.min_version != 0 {
            query.push(("tls_min_version", tls.min_version.to_string()));
        }
    }
    for (i, (name, value)) in query.iter().enumerate() {
        u.push(if i == 0 { '?' } else { '&' });
        write!(u, "{name}={value}").unwrap();
    }
    u
}

/// A string field of C options whose strings are alive.
fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    // SAFETY: NULL, or a string of the CStrings `check_accepted` keeps alive meanwhile.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().expect("UTF-8"))
}

/// What `options_from_url` must make of `cfg`: the URL's values, `pool_options_init`'s
/// defaults elsewhere, and go-redis's "<= 0 disables" written as each field says.
fn check_c_options(cfg: &UrlConfig, c: &pool_options_t) {
    let mut d = std::mem::MaybeUninit::<pool_options_t>::uninit();
    // SAFETY: pool_options_init fills every field.
    let d = unsafe {
        redispool::ffi::options::pool_options_init(d.as_mut_ptr());
        d.assume_init()
    };
    let count = |v: Option<i32>, default: i32| v.unwrap_or(default);
    assert_eq!(c.struct_size, d.struct_size);
    assert!(c.dialer.is_none() && c.dialer_userdata.is_null());
    assert_eq!(c.pool_fifo, cfg.pool_fifo.unwrap_or(d.pool_fifo));
    assert_eq!(c.pool_size, count(cfg.pool_size, d.pool_size));
    assert_eq!(
        c.min_idle_conns,
        count(cfg.min_idle_conns, d.min_idle_conns)
    );
    assert_eq!(
        c.max_idle_conns,
        count(cfg.max_idle_conns, d.max_idle_conns)
    );
    assert_eq!(
        c.max_active_conns,
        count(cfg.max_active_conns, d.max_active_conns)
    );
    assert_eq!(
        c.max_concurrent_dials,
        count(cfg.max_concurrent_dials, d.max_concurrent_dials)
    );
    assert_eq!(
        c.dialer_retries,
        count(cfg.dialer_retries, d.dialer_retries)
    );
    assert_eq!(c.db, count(cfg.db, d.db));
    assert_eq!(c.protocol, count(cfg.protocol, d.protocol));
    assert_eq!(c_str(c.addr), Some(cfg.addr.as_str()));
    assert_eq!(c_str(c.username), cfg.username.as_deref());
    assert_eq!(c_str(c.password), cfg.password.as_deref());
    assert_eq!(c_str(c.client_name), cfg.client_name.as_deref());
    let dur = |v: Option<UrlDuration>, default: i64, disabled: i64| match v {
        None => default,
        Some(UrlDuration::Disabled) => disabled,
        Some(UrlDuration::Millis(ms)) => {
            assert!(ms >= 1, "a Millis below 1: {ms}");
            ms
        }
    };
    assert_eq!(
        c.pool_timeout_ms,
        match cfg.pool_timeout {
            None => d.pool_timeout_ms,
            Some(UrlWait::NoWait) => 0,
            Some(UrlWait::Forever) => -1,
            Some(UrlWait::Millis(ms)) => {
                assert!(ms >= 1, "a Millis below 1: {ms}");
                ms
            }
        }
    );
    assert_eq!(
        c.dial_timeout_ms,
        dur(cfg.dial_timeout, d.dial_timeout_ms, 0)
    );
    assert_eq!(
        c.read_timeout_ms,
        dur(cfg.read_timeout, d.read_timeout_ms, -1)
    );
    assert_eq!(
        c.write_timeout_ms,
        dur(cfg.write_timeout, d.write_timeout_ms, -1)
    );
    assert_eq!(
        c.conn_max_idle_time_ms,
        dur(cfg.conn_max_idle_time, d.conn_max_idle_time_ms, -1)
    );
    assert_eq!(
        c.conn_max_lifetime_ms,
        dur(cfg.conn_max_lifetime, d.conn_max_lifetime_ms, 0)
    );
    assert_eq!(
        c.conn_max_lifetime_jitter_ms,
        dur(
            cfg.conn_max_lifetime_jitter,
            d.conn_max_lifetime_jitter_ms,
            0
        )
    );
    assert_eq!(
        c.dialer_retry_backoff_ms,
        dur(cfg.dialer_retry_backoff, d.dialer_retry_backoff_ms, 0)
    );
    assert_eq!(
        c.reaper_interval_ms,
        dur(cfg.reaper_interval, d.reaper_interval_ms, 0)
    );
    assert_eq!(
        c.ping_after_idle_ms,
        dur(cfg.ping_after_idle, d.ping_after_idle_ms, 0)
    );
    assert_eq!(
        c.leak_detection_threshold_ms,
        dur(
            cfg.leak_detection_threshold,
            d.leak_detection_threshold_ms,
            0
        )
    );
    assert_eq!(
        c.health_check_bypass_ms,
        dur(cfg.health_check_bypass, d.health_check_bypass_ms, 0)
    );
    assert_eq!(
        c.overtake_window_ms,
        dur(cfg.overtake_window, d.overtake_window_ms, 0)
    );
    assert_eq!(
        c.max_reply_bytes,
        cfg.max_reply_bytes.unwrap_or(d.max_reply_bytes)
    );
    assert_eq!(
        c.max_reply_elements,
        cfg.max_reply_elements.unwrap_or(d.max_reply_elements)
    );
}

/// The pool `pool_new_url` would start: the URL's values, in the core's units.
fn check_core_options(cfg: &UrlConfig, o: &Options) {
    let ms = |v: i64| Duration::from_millis(v as u64);
    // Some(d) when enabled; `default` when the URL does not say.
    let opt = |v: Option<UrlDuration>, default: Option<Duration>| match v {
        None => default,
        Some(UrlDuration::Disabled) => None,
        Some(UrlDuration::Millis(v)) => Some(ms(v)),
    };
    let s = &o.session;
    assert_eq!(s.username, cfg.username);
    assert_eq!(s.password, cfg.password);
    assert_eq!(s.client_name, cfg.client_name);
    assert_eq!(i64::from(s.db), i64::from(cfg.db.unwrap_or(0)));
    assert_eq!(i32::from(s.protocol), cfg.protocol.unwrap_or(2));
    let pool_size = match cfg.pool_size {
        None | Some(0) => default_pool_size(),
        Some(n) => n as usize,
    };
    assert_eq!(o.pool_size, pool_size);
    assert_eq!(o.min_idle_conns, cfg.min_idle_conns.unwrap_or(0) as usize);
    assert!(o.min_idle_conns <= o.pool_size);
    assert_eq!(o.max_idle_conns, cfg.max_idle_conns.unwrap_or(0) as usize);
    assert_eq!(
        o.max_active_conns,
        cfg.max_active_conns.unwrap_or(0) as usize
    );
    assert!((1..=o.pool_size.min(MAX_CONCURRENT_DIALS)).contains(&o.max_concurrent_dials));
    let asked = match cfg.max_concurrent_dials {
        Some(n) if n > 0 => n as usize,
        _ => DEFAULT_MAX_CONCURRENT_DIALS,
    };
    assert_eq!(
        o.max_concurrent_dials,
        asked.min(pool_size).min(MAX_CONCURRENT_DIALS)
    );
    let retries = match cfg.dialer_retries {
        None | Some(0) => 5,
        Some(n) => n as u32,
    };
    assert_eq!(o.dialer_retries, retries);
    let pool_timeout = match cfg.pool_timeout {
        None => Wait::For(Duration::from_secs(6)),
        Some(UrlWait::NoWait) => Wait::NoWait,
        Some(UrlWait::Forever) => Wait::Forever,
        Some(UrlWait::Millis(v)) => Wait::For(ms(v)),
    };
    assert_eq!(o.pool_timeout, pool_timeout);
    assert_eq!(
        o.dial_timeout,
        opt(cfg.dial_timeout, Some(Duration::from_secs(5)))
    );
    assert_eq!(
        o.read_timeout,
        opt(cfg.read_timeout, Some(Duration::from_secs(5)))
    );
    assert_eq!(
        o.write_timeout,
        opt(cfg.write_timeout, Some(Duration::from_secs(5)))
    );
    assert_eq!(
        o.conn_max_idle_time,
        opt(cfg.conn_max_idle_time, Some(Duration::from_secs(30 * 60)))
    );
    assert_eq!(o.conn_max_lifetime, opt(cfg.conn_max_lifetime, None));
    // go-redis: the jitter is capped at the lifetime, and nothing without one.
    let jitter = opt(cfg.conn_max_lifetime_jitter, None).unwrap_or_default();
    let jitter = o
        .conn_max_lifetime
        .map_or(Duration::ZERO, |l| jitter.min(l));
    assert_eq!(o.conn_max_lifetime_jitter, jitter);
    assert_eq!(
        o.dialer_retry_backoff,
        opt(cfg.dialer_retry_backoff, Some(Duration::from_millis(100))).unwrap_or_default()
    );
    assert_eq!(o.reaper_interval, opt(cfg.reaper_interval, None));
    assert_eq!(o.ping_after_idle, opt(cfg.ping_after_idle, None));
    assert_eq!(
        o.leak_detection_threshold,
        opt(cfg.leak_detection_threshold, None)
    );
    assert_eq!(o.health_check_bypass, opt(cfg.health_check_bypass, None));
    // Not in the URL: the library default; 0 (or disabled): strict order.
    let overtake = match cfg.overtake_window {
        None => Some(redispool::pool::DEFAULT_OVERTAKE_WINDOW),
        Some(UrlDuration::Disabled) | Some(UrlDuration::Millis(0)) => None,
        Some(UrlDuration::Millis(v)) => Some(ms(v)),
    };
    assert_eq!(o.overtake_window, overtake);
    // 0 (or not in the URL) is the default.
    let limit = |v: Option<i64>, default: u64| match v {
        None | Some(0) => default,
        Some(v) => v as u64,
    };
    assert_eq!(
        o.reply_limits.max_bytes,
        limit(cfg.max_reply_bytes, ReplyLimits::DEFAULT_MAX_BYTES)
    );
    assert_eq!(
        o.reply_limits.max_elements,
        limit(cfg.max_reply_elements, ReplyLimits::DEFAULT_MAX_ELEMENTS)
    );
}
