//! `pool_sentinel_options_t` and `pool_sentinel_new`: a connection pool whose conns go to
//! the master Redis Sentinel reports, following failovers (`crate::sentinel`).

use std::ffi::{CStr, c_char};
use std::sync::Arc;
use std::time::Duration;

use super::castable::{Versioned, read_versioned, write_versioned};
use super::error::{construct, fail, internal, invalid, pool_error_t};
use super::handles::{PoolKind, pool_t};
use super::options::{pool_options, pool_options_t, read_options, to_core};
use super::panic::ffi_boundary;
use super::pool::publish_conn_pool;
use super::status::*;
use crate::pool::{ConnPool, Dialer, Error, Result};
use crate::redis::tls::TlsConfig;
use crate::sentinel::{
    DEFAULT_SENTINEL_TIMEOUT, MAX_ADDR_LEN, MAX_SENTINELS, SentinelConfig, SentinelState,
};

/// A buffer of this many bytes always holds what pool_sentinel_master_addr writes (an
/// address of at most 261 characters and its NUL).
pub const POOL_SENTINEL_ADDR_LEN: usize = 272;

const _: () = assert!(MAX_ADDR_LEN < POOL_SENTINEL_ADDR_LEN);

/// Where the sentinels are and which master they watch. Always start with
/// `pool_sentinel_options_init`, then set `master_name` and the sentinel addresses.
/// Strings are copied by pool_sentinel_new.
#[repr(C)]
pub struct pool_sentinel_options {
    /// Set by pool_sentinel_options_init: lets fields be appended in later versions.
    pub struct_size: usize,
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`):
    /// printable ASCII without spaces, at most 256 bytes. Required.
    pub master_name: *const c_char,
    /// An array of `sentinel_addrs_len` sentinel addresses, each "host:port" or
    /// "[v6]:port" (or a unix socket path). They are asked in order, the first that answers
    /// wins and is asked first next time. At least 1, at most 64. Required.
    pub sentinel_addrs: *const *const c_char,
    /// How many entries `sentinel_addrs` has.
    pub sentinel_addrs_len: usize,
    /// ACL user for AUTH on sentinel conns (needs sentinel_password). NULL or "" = the
    /// default user.
    pub sentinel_username: *const c_char,
    /// The sentinels' password (their `requirepass`): every sentinel conn sends AUTH. NULL
    /// or "" = no AUTH. Never shown in any message. The master's own password is
    /// `pool_options_t.password`.
    pub sentinel_password: *const c_char,
    /// How often the pool asks the sentinels for the master besides listening for their
    /// failover events, so an event missed while reconnecting is caught. Default 1000;
    /// 0 = only listen.
    pub poll_interval_ms: i64,
    /// Reach the sentinels themselves over TLS (their --tls-port), with the TLS settings of
    /// `node_opts` (tls_ca_file, tls_ca_dir, tls_cert_file, tls_key_file, tls_server_name,
    /// tls_min_version, tls_insecure_skip_verify), whether or not `node_opts->tls` is set:
    /// TLS to the sentinels and TLS to the master are each switched on their own. The name
    /// verified is tls_server_name, else each sentinel's host. false (default) = plain.
    /// A TLS failure with a sentinel is reported as the sentinel's failure (see docs/tls.md).
    pub sentinel_tls: bool,
}

pub type pool_sentinel_options_t = pool_sentinel_options;

// SAFETY: repr(C), struct_size first; every field is an integer or a pointer except the
// bool `sentinel_tls`, which `fix_bytes` normalises.
unsafe impl Versioned for pool_sentinel_options {
    const NAME: &'static str = "pool_sentinel_options_t";
    const HINT: &'static str = "call pool_sentinel_options_init first";
    /// The first version's fields end at `poll_interval_ms`.
    const MIN_SIZE: usize =
        std::mem::offset_of!(pool_sentinel_options, poll_interval_ms) + size_of::<i64>();
    fn defaults() -> Self {
        pool_sentinel_options {
            struct_size: size_of::<pool_sentinel_options>(),
            master_name: std::ptr::null(),
            sentinel_addrs: std::ptr::null(),
            sentinel_addrs_len: 0,
            sentinel_username: std::ptr::null(),
            sentinel_password: std::ptr::null(),
            poll_interval_ms: 1000,
            sentinel_tls: false,
        }
    }
    unsafe fn fix_bytes(base: *mut u8, n: usize) {
        let at = std::mem::offset_of!(pool_sentinel_options, sentinel_tls);
        if at < n {
            // SAFETY: byte `at` was copied (at < n); a C bool byte other than 0/1 would be
            // an invalid Rust bool.
            unsafe {
                let flag = base.add(at);
                *flag = u8::from(*flag != 0);
            }
        }
    }
}

/// Fills every field of `*sopts` with its default, including `struct_size`, writing
/// sizeof(pool_sentinel_options_t) of the library. NULL is ignored. Any thread; never
/// blocks. C code calls it through the pool_sentinel_options_init macro:
/// pool_sentinel_options_init_size with its header's sizeof (see pool_options_init).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sentinel_options_init(sopts: *mut pool_sentinel_options_t) {
    ffi_boundary!((), {
        if sopts.is_null() {
            return;
        }
        let size = size_of::<pool_sentinel_options>();
        // SAFETY: the caller passes a writable pool_sentinel_options_t (checked non-NULL).
        let _ = unsafe { write_versioned(pool_sentinel_options::defaults(), sopts, size) };
    })
}

/// Fills the first `size` bytes of `*sopts` (of the sizeof its header gives) with the
/// defaults, as pool_options_init_size. POOL_ERR_INVALID_ARG, writing nothing, for NULL or
/// a `size` below the first version's. Any thread; never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sentinel_options_init_size(
    sopts: *mut pool_sentinel_options_t,
    size: usize,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if sopts.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: the caller's struct is writable for `size` bytes per the header.
        match unsafe { write_versioned(pool_sentinel_options::defaults(), sopts, size) } {
            Ok(_) => POOL_OK,
            Err(_) => POOL_ERR_INVALID_ARG,
        }
    })
}

/// A C string field, None for NULL or "".
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn opt_str(p: *const c_char, field: &str) -> Result<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: per contract.
    let s = unsafe { CStr::from_ptr(p) };
    let s = s
        .to_str()
        .map_err(|_| Error::invalid(format!("{field}: not valid UTF-8")))?;
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// The caller's sentinel options as a core configuration (its sentinel timeout still to
/// be set), naming the bad field.
///
/// # Safety
/// `sopts` is non-NULL, readable for its `struct_size`, and its pointers are as the header
/// says.
unsafe fn read_sentinel_options(
    sopts: *const pool_sentinel_options_t,
) -> Result<(SentinelConfig, bool)> {
    // SAFETY: per contract.
    let o = unsafe { read_versioned(sopts) }.map_err(Error::invalid)?;
    // SAFETY: per contract, for every string below.
    let name = unsafe { opt_str(o.master_name, "master_name") }?
        .ok_or_else(|| Error::invalid("master_name: NULL or empty"))?;
    if o.sentinel_addrs_len == 0 {
        return Err(Error::invalid(
            "sentinel_addrs_len: 0; at least one sentinel address is needed",
        ));
    }
    if o.sentinel_addrs_len > MAX_SENTINELS {
        return Err(Error::invalid(format!(
            "sentinel_addrs_len: {} is more than {MAX_SENTINELS}",
            o.sentinel_addrs_len
        )));
    }
    if o.sentinel_addrs.is_null() {
        return Err(Error::invalid("sentinel_addrs: NULL"));
    }
    let mut addrs = Vec::with_capacity(o.sentinel_addrs_len);
    for i in 0..o.sentinel_addrs_len {
        let field = format!("sentinel_addrs[{i}]");
        // SAFETY: the array has sentinel_addrs_len readable entries, per the header.
        let p = unsafe { *o.sentinel_addrs.add(i) };
        // SAFETY: each entry is NULL or NUL-terminated, per the header.
        let a = unsafe { opt_str(p, &field) }?
            .ok_or_else(|| Error::invalid(format!("{field}: NULL or empty")))?;
        addrs.push(a);
    }
    let mut cfg = SentinelConfig::new(name, addrs);
    // SAFETY: per contract.
    unsafe {
        cfg.username = opt_str(o.sentinel_username, "sentinel_username")?;
        cfg.password = opt_str(o.sentinel_password, "sentinel_password")?;
    }
    cfg.poll_interval = match o.poll_interval_ms {
        0 => None,
        v if v > 0 => Some(Duration::from_millis(v as u64)),
        v => {
            return Err(Error::invalid(format!(
                "poll_interval_ms: {v} is negative (0 = only listen for failover events)"
            )));
        }
    };
    Ok((cfg, o.sentinel_tls))
}

/// Creates a connection pool for the master that Redis Sentinel reports for
/// `sopts->master_name`, and that follows failovers.
///
/// New conns go to the address the sentinels give for `SENTINEL GET-MASTER-ADDR-BY-NAME`
/// (asked on the first dial, bounded by dial_timeout_ms), and each is checked with `ROLE`
/// after the session set-up: a node that is not a master is refused (a dial error, retried
/// as any dial). Watcher threads (all named "redispool-sentinel"; a listener per
/// sentinel, reconnecting after a backoff of at most 2 s, and a resolver) follow the
/// sentinels' failover events and ask them for the master every `poll_interval_ms`.
///
/// Failover: on the first sign that the master is being replaced (`+selected-slave`,
/// `+failover-state-send-slaveof-noone`, `+promoted-slave` or `+switch-master` from any
/// sentinel, a READONLY reply, a new conn whose ROLE is not master, a poll naming another
/// master) the pool stops handing out conns to it at once: every conn is retired (idle
/// conns closed; conns checked out refuse further commands with POOL_ERR_BAD_CONN and are
/// closed when put, as pool_remove; dials in flight discarded when they land; counted in pool_stats_t.stale_conns and
/// pool_sentinel_stats_t.conns_retired) and new gets wait, within their own
/// pool_timeout_ms (their dials within dial_timeout_ms), until the node being promoted
/// answers ROLE as master; then the pool resumes there. The old master is not written to
/// after the sign, so writes it would have thrown away when demoted are not lost; what is
/// left is what it acknowledged but had not replicated at the promotion (see
/// pool_conn_wait_replicas, and docs/sentinel.md, "Failover"). A dial to the master that
/// fails pauses the pool the same way (gets wait while the sentinels promote a replica),
/// but may end on the same master once it answers again.
///
/// `node_opts` configures the master conns exactly as for pool_new (pool size, timeouts,
/// password, db, protocol, ...); NULL means pool_options_init defaults. Its `addr` and
/// `dialer` must be NULL: the sentinels name the master. Strings of both structs are
/// copied. The sentinels are not contacted here (the first get does), so this never
/// blocks. On success stores an ordinary pool in `*pool_out`: every Pooler function works
/// on it (sticky and single pools too); release it with pool_free, which also stops the
/// watcher threads (within about 100 ms; they are not joined). Invalid options ->
/// POOL_ERR_INVALID_ARG naming the field. In a forked child the pool forgets the parent's
/// state on first use and starts its own watchers. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sentinel_new(
    sopts: *const pool_sentinel_options_t,
    node_opts: *const pool_options_t,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_sentinel_new"), {
        let make = |sopts| {
            // SAFETY: `sopts` is non-NULL (checked by `construct`) and as the header
            // describes.
            let (cfg, sentinel_tls) = unsafe { read_sentinel_options(sopts) }?;
            let mut o = if node_opts.is_null() {
                pool_options::defaults()
            } else {
                // SAFETY: `node_opts` is non-NULL and points to a pool_options_t of its
                // struct_size.
                unsafe { read_options(node_opts) }?
            };
            if !o.addr.is_null() {
                return Err(Error::invalid(
                    "node_opts.addr: must be NULL for a sentinel pool (the sentinels name the master)",
                ));
            }
            if o.dialer.is_some() {
                return Err(Error::invalid(
                    "node_opts.dialer: must be NULL for a sentinel pool (the sentinels name the master)",
                ));
            }
            let mut cfg = cfg;
            if sentinel_tls {
                // SAFETY: the strings of `o` are the caller's, as the header says.
                let settings = unsafe { super::options::tls_settings(&o) }?;
                let config = TlsConfig::new(&settings).map_err(Error::InvalidArg)?;
                cfg.tls = Some(Arc::new(config));
            }
            // A placeholder address for the shared validation; the dialer replaces it.
            o.addr = c"127.0.0.1:1".as_ptr();
            // SAFETY: the strings of `o` are the caller's (NULL or NUL-terminated, per the
            // header) or the static placeholder above.
            let mut opts = unsafe { to_core(&o) }?;
            cfg.timeout = opts.dial_timeout.unwrap_or(DEFAULT_SENTINEL_TIMEOUT);
            let state = SentinelState::new(cfg)?;
            opts.dialer = Dialer::sentinel(Arc::new(state));
            ConnPool::new(opts)
        };
        // SAFETY: `pool_out` is NULL or writable per the header; `construct` checked it
        // non-NULL before `publish_conn_pool`.
        unsafe {
            construct(
                (pool_out, "pool_out"),
                (sopts, "sopts"),
                err_out,
                make,
                |p, out, e| publish_conn_pool(Ok(p), out, e),
            )
        }
    })
}

/// Writes the address of the master the pool dials now ("ip:port", "[v6]:port") into
/// `buf`, NUL-terminated; `cap` is its size in bytes (POOL_SENTINEL_ADDR_LEN always
/// suffices). When no address is known yet (nothing dialed, the watcher not yet answered),
/// asks the sentinels first, blocking for at most dial_timeout_ms (5 s when that is 0):
/// POOL_ERR_DIAL naming each sentinel's failure when none answers. Right after a failover
/// is seen the new address is reported only once every conn to the old master was retired.
/// POOL_ERR_INVALID_ARG for a NULL or non-sentinel pool, a NULL buf, or a cap too small
/// for the address (then `buf` holds "" when cap > 0); POOL_ERR_CLOSED when the pool is
/// closed and no address was ever known. `err_out` may be NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sentinel_master_addr(
    pool: *const pool_t,
    buf: *mut c_char,
    cap: usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_sentinel_master_addr"), {
        let Some(obj) = super::pool::Held::new(pool) else {
            return invalid(err_out, "pool: NULL");
        };
        let Some(state) = (match obj.kind() {
            PoolKind::Conn(p) => p.sentinel().map(|s| (p.clone(), s)),
            _ => None,
        }) else {
            return invalid(
                err_out,
                "pool: not a sentinel pool (made by pool_sentinel_new)",
            );
        };
        let (pool, state) = state;
        if buf.is_null() {
            return invalid(err_out, "buf: NULL");
        }
        let addr = match state.master_addr() {
            Some(a) => a,
            None if pool.is_closed() => return fail(err_out, &Error::Closed),
            None => match state.query_master(state.config().timeout) {
                Ok(a) => {
                    state.switch_to(&a);
                    a
                }
                Err(e) => return fail(err_out, &e),
            },
        };
        if cap > 0 {
            // SAFETY: `buf` is writable for `cap` bytes per the header; cap > 0.
            unsafe { *buf = 0 };
        }
        if addr.len() >= cap {
            return invalid(
                err_out,
                &format!(
                    "cap: {cap} bytes, the address needs {} (POOL_SENTINEL_ADDR_LEN always suffices)",
                    addr.len() + 1
                ),
            );
        }
        // SAFETY: `buf` is writable for `cap` > addr.len() bytes; the regions are distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(addr.as_ptr().cast::<c_char>(), buf, addr.len());
            *buf.add(addr.len()) = 0;
        }
        POOL_OK
    })
}

/// Failover figures of a sentinel pool (pool_sentinel_stats). Counters only increase;
/// `in_failover` is a gauge.
#[repr(C)]
pub struct pool_sentinel_stats {
    /// Set to sizeof(pool_sentinel_stats_t) (or 0) before pool_sentinel_stats; set to the
    /// bytes written after.
    pub struct_size: usize,
    /// Failovers seen: times the pool stopped handing out conns to its master on a sign
    /// that it was being replaced (a sentinel event, READONLY, a ROLE that is not master).
    pub failovers: u64,
    /// Dials (for gets, refills, pool_new_conn) that waited for a failover to end.
    pub failover_waits: u64,
    /// Failovers that ended on another master.
    pub switches: u64,
    /// Conns closed because a failover retired them (idle ones at once, checked-out ones
    /// when given back, dials in flight when they landed); also counted in the pool's
    /// stale_conns.
    pub conns_retired: u64,
    /// The longest time the pool handed out no conn for a failover, in milliseconds.
    pub longest_pause_ms: u64,
    /// 1 while a failover is under way (gets wait), else 0.
    pub in_failover: u64,
}

pub type pool_sentinel_stats_t = pool_sentinel_stats;

const _: () = assert!(size_of::<pool_sentinel_stats>() == 56);

// SAFETY: repr(C), struct_size first; every field is an integer.
unsafe impl Versioned for pool_sentinel_stats {
    const NAME: &'static str = "pool_sentinel_stats_t";
    const HINT: &'static str = "set it to sizeof(pool_sentinel_stats_t) or 0";
    const MIN_SIZE: usize = size_of::<pool_sentinel_stats>();
    fn defaults() -> Self {
        pool_sentinel_stats {
            struct_size: size_of::<pool_sentinel_stats>(),
            failovers: 0,
            failover_waits: 0,
            switches: 0,
            conns_retired: 0,
            longest_pause_ms: 0,
            in_failover: 0,
        }
    }
}

/// Failover figures of a pool made by pool_sentinel_new into `*stats_out`: set
/// `stats_out->struct_size` to sizeof(pool_sentinel_stats_t) (or 0, the same) first; only
/// that many bytes are written. POOL_ERR_INVALID_ARG for NULLs or a pool that is not a
/// sentinel pool. `err_out` may be NULL. Any thread; never blocks on I/O.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_sentinel_stats(
    pool: *const pool_t,
    stats_out: *mut pool_sentinel_stats_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_sentinel_stats"), {
        let Some(obj) = super::pool::Held::new(pool) else {
            return invalid(err_out, "pool: NULL");
        };
        let Some((pool, state)) = (match obj.kind() {
            PoolKind::Conn(p) => p.sentinel().map(|s| (p.clone(), s)),
            _ => None,
        }) else {
            return invalid(
                err_out,
                "pool: not a sentinel pool (made by pool_sentinel_new)",
            );
        };
        if stats_out.is_null() {
            return invalid(err_out, "stats_out: NULL");
        }
        let f = state.failover_stats();
        // SAFETY: non-NULL; writable for its struct_size per the header.
        let size = unsafe { super::castable::out_size(stats_out) };
        let snapshot = pool_sentinel_stats {
            struct_size: size.min(size_of::<pool_sentinel_stats>()),
            failovers: f.failovers,
            failover_waits: f.waits,
            switches: f.switches,
            conns_retired: pool.retired_conns(),
            longest_pause_ms: f.longest_pause_ms,
            in_failover: u64::from(f.in_failover),
        };
        // SAFETY: as above.
        match unsafe { write_versioned(snapshot, stats_out, size) } {
            Ok(_) => POOL_OK,
            Err(e) => invalid(err_out, &format!("stats_out: {e}")),
        }
    })
}
