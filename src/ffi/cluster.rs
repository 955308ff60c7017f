//! `pool_cluster_t`: a Redis Cluster, one connection pool per node (see `crate::cluster`).

use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, OnceLock, Weak};

use super::castable::{
    Versioned, bytes_in, cancel_ref, cluster_bits, cluster_into_raw, conn_bits, copy_out, out_size,
    read_versioned, write_versioned,
};
use super::conn_table::{self, Entry, TakeError};
use super::error::{construct, fail, internal, invalid, pool_error_t, start_constructor, url_text};
use super::handle_table::CLUSTERS;
use super::handles::{ClusterNode, ClusterObj, PoolKind, PoolObj, pool_t};
use super::handles::{pool_cancel_t, pool_conn_t};
use super::options::{pool_options, pool_options_t, read_options, to_core};
use super::panic::ffi_boundary;
use super::pool::hand_out_owned;
use super::stats::{pool_stats_t, write_stats};
use super::status::*;
use crate::cluster::{Cluster, ClusterOptions, MAX_REDIRECTS_LIMIT, NodeInfo, slot};
use crate::pool::{CancelToken, Conn, Error, Wait};

pub use super::handles::{pool_cluster, pool_cluster_t};

/// Cluster options. Always start with `pool_cluster_options_init`, then change fields.
#[repr(C)]
pub struct pool_cluster_options {
    /// Set by pool_cluster_options_init: lets fields be appended in later versions.
    pub struct_size: usize,
    /// "host:port" of cluster nodes to load the slot map from (any nodes of the cluster;
    /// one is enough). `seeds_len` entries; copied.
    pub seeds: *const *const c_char,
    pub seeds_len: usize,
    /// Options of every node pool (pool_size, timeouts, password, ...): NULL = the
    /// pool_options_init defaults. Its `addr`, when set, is one more seed; a custom
    /// `dialer` is refused (nodes are dialed by address), and so is a `db` other than 0.
    pub node: *const pool_options_t,
    /// MOVED / ASK redirects (and TRYAGAIN / CLUSTERDOWN retries) pool_conn_command follows
    /// per command. Default 3 (go-redis MaxRedirects); 0 = none; at most 100.
    pub max_redirects: i32,
    /// The least time between two slot map refreshes triggered by MOVED or a node that
    /// cannot be dialed. Default 100; 0 = no minimum (still one refresh at a time).
    pub refresh_min_interval_ms: i64,
}

/// See `struct pool_cluster_options`.
pub type pool_cluster_options_t = pool_cluster_options;

// SAFETY: repr(C), struct_size first; every field is an integer or a pointer.
unsafe impl Versioned for pool_cluster_options {
    const NAME: &'static str = "pool_cluster_options_t";
    const HINT: &'static str = "call pool_cluster_options_init first";
    /// The first version is the whole struct.
    const MIN_SIZE: usize = size_of::<pool_cluster_options>();
    fn defaults() -> Self {
        pool_cluster_options {
            struct_size: size_of::<pool_cluster_options>(),
            seeds: std::ptr::null(),
            seeds_len: 0,
            node: std::ptr::null(),
            max_redirects: 3,
            refresh_min_interval_ms: 100,
        }
    }
}

/// Cluster-wide counters and gauges (each node pool has its own pool_stats_t).
#[repr(C)]
pub struct pool_cluster_info {
    /// Set to sizeof(pool_cluster_info_t) (or 0, meaning the same) before the call.
    pub struct_size: usize,
    /// Slot map loads that succeeded.
    pub refreshes: u64,
    /// Slot map loads that found no node able to answer.
    pub refresh_errors: u64,
    /// MOVED replies followed by pool_conn_command.
    pub moved: u64,
    /// ASK replies followed (with ASKING).
    pub ask: u64,
    /// TRYAGAIN / CLUSTERDOWN replies retried.
    pub retries: u64,
    /// Nodes with a pool right now.
    pub nodes: u32,
    /// Masters in the slot map.
    pub masters: u32,
    /// Slots that have a master in the slot map (16384 when the cluster is whole).
    pub slots_covered: u32,
    pub reserved: u32,
}

/// See `struct pool_cluster_info`.
pub type pool_cluster_info_t = pool_cluster_info;

// SAFETY: repr(C), struct_size first; every field is an integer.
unsafe impl Versioned for pool_cluster_info {
    const NAME: &'static str = "pool_cluster_info_t";
    const HINT: &'static str = "set it to sizeof(pool_cluster_info_t) or 0";
    /// The first version is the whole struct.
    const MIN_SIZE: usize = size_of::<pool_cluster_info>();
    fn defaults() -> Self {
        pool_cluster_info {
            struct_size: size_of::<pool_cluster_info>(),
            refreshes: 0,
            refresh_errors: 0,
            moved: 0,
            ask: 0,
            retries: 0,
            nodes: 0,
            masters: 0,
            slots_covered: 0,
            reserved: 0,
        }
    }
}

/// Room for "host:port" with the longest DNS name (253) and port, and a NUL.
pub const POOL_CLUSTER_ADDR_MAX: usize = 264;

/// One node, as listed by pool_cluster_nodes.
#[repr(C)]
pub struct pool_cluster_node {
    /// "host:port", NUL-terminated.
    pub addr: [c_char; POOL_CLUSTER_ADDR_MAX],
    /// 1 when the node serves slots as a master per the slot map, else 0.
    pub master: i32,
    /// Slots it serves.
    pub slots: i32,
}

/// See `struct pool_cluster_node`.
pub type pool_cluster_node_t = pool_cluster_node;

/// Fills `*opts` with the defaults (and its struct_size), writing
/// sizeof(pool_cluster_options_t) of the library. NULL is ignored. Any thread. C code calls
/// it through the pool_cluster_options_init macro: pool_cluster_options_init_size with
/// its header's sizeof (see pool_options_init).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_options_init(opts: *mut pool_cluster_options_t) {
    ffi_boundary!((), {
        if !opts.is_null() {
            // SAFETY: the caller passes a writable struct (checked non-NULL).
            let size = size_of::<pool_cluster_options>();
            let _ = unsafe { write_versioned(pool_cluster_options::defaults(), opts, size) };
        }
    })
}

/// Fills the first `size` bytes of `*opts` (of the sizeof its header gives) with the
/// defaults, as pool_options_init_size. POOL_ERR_INVALID_ARG, writing nothing, for NULL or
/// a `size` below the first version's. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_options_init_size(
    opts: *mut pool_cluster_options_t,
    size: usize,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if opts.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: the caller's struct is writable for `size` bytes per the header.
        match unsafe { write_versioned(pool_cluster_options::defaults(), opts, size) } {
            Ok(_) => POOL_OK,
            Err(_) => POOL_ERR_INVALID_ARG,
        }
    })
}

/// What a call on a handle that is not live says.
const NOT_LIVE: &str = "cluster: not a live cluster handle (freed already?)";

/// A strong count of the cluster behind a handle, held for the whole of one call (as
/// `pool::Held` for pools): a pool_cluster_free on another thread meanwhile gives back only
/// the caller's count, so a get blocked in a node pool or a slot-map refresh wakes up in
/// live memory. None for NULL, a freed handle or a made-up value (`handle_table` refuses
/// them, even while pool_cluster_free runs). A cluster call already allocates (the node's
/// address) and takes the node's count, so one more atomic here is noise.
fn cluster_hold(c: *const pool_cluster_t) -> Option<Arc<ClusterObj>> {
    CLUSTERS.enter(cluster_bits(c))
}

/// `cluster_hold`, or the status (and message) of a NULL or dead handle.
pub(crate) fn cluster_or_fail(
    c: *const pool_cluster_t,
    err_out: *mut pool_error_t,
) -> Result<Arc<ClusterObj>, pool_status_t> {
    cluster_hold(c).ok_or_else(|| {
        invalid(
            err_out,
            if c.is_null() {
                "cluster: NULL"
            } else {
                NOT_LIVE
            },
        )
    })
}

/// A new cluster, and the cell its handle goes in once it has one.
type Created = (Arc<ClusterObj>, Arc<OnceLock<u64>>);

/// Builds the cluster; node objects point back to it for redirects, and know the handle
/// it is given (`publish`) so that pool_cluster_put can tell its conns even after
/// pool_cluster_free.
fn create(opts: ClusterOptions) -> Result<Created, Error> {
    let opts = ClusterObj::validate(opts)?;
    let handle = Arc::new(OnceLock::new());
    let cell = handle.clone();
    let cluster = Arc::new_cyclic(|weak: &Weak<ClusterObj>| {
        let weak = weak.clone();
        let make = Box::new(move |pool, addr: &str| {
            Arc::new(PoolObj::new(PoolKind::Node(ClusterNode {
                pool,
                addr: addr.to_string(),
                cluster: weak.clone(),
                cluster_handle: cell.clone(),
            })))
        });
        Cluster::with_valid_options(opts, make)
    });
    Ok((cluster, handle))
}

/// Hands a new cluster to the caller, or reports why it could not be made.
///
/// # Safety
/// `out` is non-NULL and writable.
unsafe fn publish(
    created: Result<Created, Error>,
    out: *mut *mut pool_cluster_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    let (cluster, cell) = match created {
        Ok(c) => c,
        Err(e) => return fail(err_out, &e),
    };
    match cluster_into_raw(cluster) {
        Ok(h) => {
            // Before the caller has the handle: no node exists yet.
            let _ = cell.set(cluster_bits(h));
            // SAFETY: per contract.
            unsafe { *out = h };
            POOL_OK
        }
        Err(c) => {
            let _ = c.close();
            fail(
                err_out,
                &Error::Internal("too many cluster handles in this process".into()),
            )
        }
    }
}

/// Reads the caller's cluster options into core options.
///
/// # Safety
/// `o` is non-NULL and points to a pool_cluster_options_t of its struct_size; its pointers
/// follow the header's contract.
unsafe fn read_cluster_options(o: *const pool_cluster_options_t) -> Result<ClusterOptions, Error> {
    // SAFETY: per contract.
    let o = unsafe { read_versioned(o) }.map_err(Error::invalid)?;
    if o.seeds_len > 0 && o.seeds.is_null() {
        return Err(Error::invalid(format!(
            "seeds: NULL with seeds_len {}",
            o.seeds_len
        )));
    }
    if o.seeds_len > 1024 {
        return Err(Error::invalid(format!(
            "seeds_len: {} (at most 1024)",
            o.seeds_len
        )));
    }
    let mut node: pool_options = if o.node.is_null() {
        pool_options::defaults()
    } else {
        // SAFETY: a non-NULL node points to a pool_options_t per the header.
        unsafe { read_options(o.node) }?
    };
    if node.dialer.is_some() {
        return Err(Error::invalid(
            "node.dialer: a cluster dials its nodes by address; a custom dialer is not supported",
        ));
    }
    let mut seeds = Vec::new();
    if !node.addr.is_null() {
        // SAFETY: a non-NULL addr is NUL-terminated per the header.
        let a = unsafe { CStr::from_ptr(node.addr) }
            .to_str()
            .map_err(|_| Error::invalid("node.addr: not valid UTF-8"))?;
        seeds.push(a.to_string());
    }
    for i in 0..o.seeds_len {
        // SAFETY: `seeds` has `seeds_len` entries per the header (non-NULL checked above).
        let p = unsafe { *o.seeds.add(i) };
        if p.is_null() {
            return Err(Error::invalid(format!("seeds[{i}]: NULL")));
        }
        // SAFETY: non-NULL entries are NUL-terminated per the header.
        let s = unsafe { CStr::from_ptr(p) }
            .to_str()
            .map_err(|_| Error::invalid(format!("seeds[{i}]: not valid UTF-8")))?;
        seeds.push(s.to_string());
    }
    let Some(first) = seeds.first() else {
        return Err(Error::invalid(
            "seeds: empty (name at least one cluster node, \"host:port\")",
        ));
    };
    let first = CString::new(first.as_str()).map_err(|_| Error::invalid("seeds: NUL byte"))?;
    node.addr = first.as_ptr();
    // SAFETY: every string `node` points to lives until the end of this function.
    let core = unsafe { to_core(&node) }?;
    let max_redirects = u32::try_from(o.max_redirects)
        .ok()
        .filter(|&n| n <= MAX_REDIRECTS_LIMIT)
        .ok_or_else(|| {
            Error::invalid(format!(
                "max_redirects: {} (must be 0..{MAX_REDIRECTS_LIMIT})",
                o.max_redirects
            ))
        })?;
    let interval = u64::try_from(o.refresh_min_interval_ms).map_err(|_| {
        Error::invalid(format!(
            "refresh_min_interval_ms: {} is negative",
            o.refresh_min_interval_ms
        ))
    })?;
    let mut opts = ClusterOptions::new(seeds, core);
    opts.max_redirects = max_redirects;
    opts.refresh_min_interval = std::time::Duration::from_millis(interval);
    Ok(opts)
}

/// Creates a cluster handle from `*opts` (strings are copied). Dials nothing: the slot
/// map is loaded by the first get (or pool_cluster_refresh), and each node's pool is made
/// when first needed. Invalid options -> POOL_ERR_INVALID_ARG naming the field. Release
/// with pool_cluster_free. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_new(
    opts: *const pool_cluster_options_t,
    cluster_out: *mut *mut pool_cluster_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_new"), {
        // SAFETY: non-NULL (checked by `construct`), per the header a
        // pool_cluster_options_t.
        let make = |opts| unsafe { read_cluster_options(opts) }.and_then(create);
        // SAFETY: `cluster_out` is NULL or writable per the header; `construct` checked it
        // non-NULL before `publish`.
        unsafe {
            construct(
                (cluster_out, "cluster_out"),
                (opts, "opts"),
                err_out,
                make,
                |c, out, e| publish(Ok(c), out, e),
            )
        }
    })
}

/// Creates a cluster handle from a go-redis cluster URL (ParseClusterURL format):
/// `redis://[[user]:password@]host:port[?addr=host2:port2&addr=host3:port3&...]`. The
/// host and every `addr` are seeds; `max_redirects` (default 3) and `refresh_min_interval`
/// (a duration, default 100ms) are the cluster's options; every other parameter is a node
/// pool option as in pool_new_url. redis://, or rediss:// (TLS: seeds are TLS ports, and
/// the nodes' TLS ports are taken from CLUSTER SHARDS; see docs/tls.md), and db 0. Errors as pool_new_url (the
/// password is never shown). Release with pool_cluster_free. Dials nothing. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_new_url(
    url: *const c_char,
    cluster_out: *mut *mut pool_cluster_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_new_url"), {
        // SAFETY: a non-NULL url (checked by `construct`) is NUL-terminated per the header.
        let make = |url| {
            unsafe { url_text(url) }
                .and_then(crate::redis::url::parse_cluster_url)
                .and_then(|cu| {
                    let mut opts = ClusterOptions::new(
                        cu.seeds,
                        crate::pool::Options::from_url_config(&cu.base)?,
                    );
                    if let Some(n) = cu.max_redirects {
                        opts.max_redirects = n as u32;
                    }
                    match cu.refresh_min_interval {
                        Some(crate::redis::url::UrlDuration::Millis(ms)) => {
                            opts.refresh_min_interval = std::time::Duration::from_millis(ms as u64)
                        }
                        Some(crate::redis::url::UrlDuration::Disabled) => {
                            opts.refresh_min_interval = std::time::Duration::ZERO
                        }
                        None => {}
                    }
                    create(opts)
                })
        };
        // SAFETY: `cluster_out` is NULL or writable per the header; `construct` checked it
        // non-NULL before `publish`.
        unsafe {
            construct(
                (cluster_out, "cluster_out"),
                (url, "url"),
                err_out,
                make,
                |c, out, e| publish(Ok(c), out, e),
            )
        }
    })
}

/// The prologue of the calls that hand something out through `*out` on a cluster
/// (`start_constructor`'s rules): `*out` cleared first, a NULL `out` or cluster named.
///
/// # Safety
/// `out` is NULL or writable (`cluster` may be anything: it is checked).
unsafe fn out_and_cluster<T>(
    out: *mut *mut T,
    out_name: &str,
    cluster: *const pool_cluster_t,
    err_out: *mut pool_error_t,
) -> Result<Arc<ClusterObj>, pool_status_t> {
    // SAFETY: per contract.
    unsafe { start_constructor(out, out_name, cluster.is_null(), "cluster", err_out) }?;
    cluster_or_fail(cluster, err_out)
}

/// How a get names its target.
enum Target<'a> {
    Slot(u16),
    Node(&'a str),
}

/// The common part of the cluster gets.
///
/// # Safety
/// `cancel` is NULL or live; `conn_out` is NULL or writable.
unsafe fn cluster_get(
    cluster: *const pool_cluster_t,
    target: Result<Target<'_>, Error>,
    timeout_ms: i64,
    cancel: *const pool_cancel_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: per contract.
    let c = match unsafe { out_and_cluster(conn_out, "conn_out", cluster, err_out) } {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return fail(err_out, &e),
    };
    let wait = if timeout_ms < 0 {
        c.options().node.pool_timeout
    } else {
        Wait::from_millis(timeout_ms).expect("non-negative")
    };
    // SAFETY: per contract.
    let token: Option<CancelToken> = unsafe { cancel_ref(cancel) }.cloned();
    let got = match target {
        Target::Slot(s) => c.get_slot(s, wait, token.as_ref()),
        Target::Node(a) => c.get_node(a, wait, token.as_ref()),
    };
    match got {
        // SAFETY: `conn_out` checked writable above.
        Ok((node, conn)) => unsafe { hand_out_owned(0, node, conn, conn_out, err_out) },
        Err(e) => fail(err_out, &e),
    }
}

/// The hash slot of a key, 0..16383: CRC16 of the key, or of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), as Redis Cluster. `key` of
/// `keylen` bytes (binary safe; NULL only with keylen 0). -1 for NULL with keylen > 0.
/// Never blocks. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_key_slot(key: *const c_char, keylen: usize) -> i32 {
    ffi_boundary!(-1, {
        if keylen == 0 {
            return i32::from(slot::key_slot(b""));
        }
        if key.is_null() {
            return -1;
        }
        // SAFETY: per the header, `key` is readable for `keylen` bytes.
        let key = unsafe { bytes_in(key, keylen) };
        i32::from(slot::key_slot(key))
    })
}

/// Get a conn to the master serving `key` (its hash slot, see pool_cluster_key_slot), from
/// that node's pool. The first get loads the slot map. A node that cannot be dialed makes
/// the cluster refresh its slot map and try once more where the slot now lives.
/// `timeout_ms`, `cancel`: as pool_get_ex (< 0: the node options' pool_timeout_ms).
/// Errors: those of pool_get_ex, and POOL_ERR_CLUSTER when no node gives a slot map or the
/// slot has no master. Give the conn back with pool_cluster_put / pool_cluster_remove (or
/// pool_put / pool_remove on its node pool). Commands sent on it with pool_conn_command
/// follow MOVED / ASK. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_get(
    cluster: *mut pool_cluster_t,
    key: *const c_char,
    keylen: usize,
    timeout_ms: i64,
    cancel: *const pool_cancel_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_get"), {
        let target = if key.is_null() && keylen > 0 {
            Err(Error::invalid("key: NULL with keylen > 0"))
        } else {
            // SAFETY: as pool_cluster_key_slot.
            let s = unsafe { pool_cluster_key_slot(key, keylen) };
            Ok(Target::Slot(s as u16))
        };
        // SAFETY: per this function's contract.
        unsafe { cluster_get(cluster, target, timeout_ms, cancel, conn_out, err_out) }
    })
}

/// Get a conn to the master serving hash slot `slot` (0..16383; else
/// POOL_ERR_INVALID_ARG). Otherwise as pool_cluster_get. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_get_slot(
    cluster: *mut pool_cluster_t,
    slot: i32,
    timeout_ms: i64,
    cancel: *const pool_cancel_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_get_slot"), {
        let target = u16::try_from(slot)
            .ok()
            .filter(|&s| usize::from(s) < slot::SLOTS)
            .map(Target::Slot)
            .ok_or_else(|| Error::invalid(format!("slot: {slot} (must be 0..16383)")));
        // SAFETY: per this function's contract.
        unsafe { cluster_get(cluster, target, timeout_ms, cancel, conn_out, err_out) }
    })
}

/// Get a conn to node `addr` ("host:port", any node: master or replica, known or not),
/// from its pool (made on first use). Does not need the slot map. Otherwise as
/// pool_cluster_get. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_get_node(
    cluster: *mut pool_cluster_t,
    addr: *const c_char,
    timeout_ms: i64,
    cancel: *const pool_cancel_t,
    conn_out: *mut *mut pool_conn_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_get_node"), {
        // SAFETY: a non-NULL addr is NUL-terminated per the header.
        let target = unsafe { addr_arg(addr) }.map(Target::Node);
        // SAFETY: per this function's contract.
        unsafe { cluster_get(cluster, target, timeout_ms, cancel, conn_out, err_out) }
    })
}

/// # Safety
/// `addr` is NULL or NUL-terminated.
unsafe fn addr_arg<'a>(addr: *const c_char) -> Result<&'a str, Error> {
    if addr.is_null() {
        return Err(Error::invalid("addr: NULL"));
    }
    // SAFETY: per contract.
    unsafe { CStr::from_ptr(addr) }
        .to_str()
        .map_err(|_| Error::invalid("addr: not valid UTF-8"))
}

/// Takes a conn back from the table if it was checked out from a node of `cluster`.
fn take_back(
    cluster: *const pool_cluster_t,
    conn: *const pool_conn_t,
) -> Result<Entry, pool_status_t> {
    if cluster.is_null() || conn.is_null() {
        return Err(POOL_ERR_INVALID_ARG);
    }
    let me = cluster_bits(cluster);
    conn_table::take(conn_bits(conn), |e, _| {
        // Compares handles only: a freed cluster still takes back its conns, and a handle
        // freed and made up again (or of another cluster) has another generation.
        e.owner.cluster_handle() == Some(me)
    })
    .map_err(|e| match e {
        TakeError::NotLive | TakeError::Refused => POOL_ERR_INVALID_ARG,
    })
}

/// Put: gives a conn from pool_cluster_get* back to its node's pool (pool_put's rules).
/// POOL_ERR_INVALID_ARG for NULLs, a conn not checked out, or one of another cluster or
/// pool. After pool_cluster_close / pool_cluster_free the conn is simply closed. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_put(
    cluster: *mut pool_cluster_t,
    conn: *mut pool_conn_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let entry = match take_back(cluster, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        give(entry, |pool, conn| pool.put(conn))
    })
}

fn give(
    entry: Entry,
    f: impl FnOnce(&dyn crate::pool::Pooler, Conn) -> Result<(), crate::pool::Rejected>,
) -> pool_status_t {
    match f(entry.owner.pooler(), entry.conn) {
        Ok(()) => POOL_OK,
        Err(rejected) => status_of(&rejected.error),
    }
}

/// Remove: closes a conn from pool_cluster_get* and frees its turn in its node's pool
/// (pool_remove's rules). `reason` may be NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_remove(
    cluster: *mut pool_cluster_t,
    conn: *mut pool_conn_t,
    reason: *const c_char,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let entry = match take_back(cluster, conn) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let reason = (!reason.is_null()).then(|| {
            // SAFETY: a non-NULL reason is NUL-terminated per the header.
            unsafe { CStr::from_ptr(reason) }
                .to_string_lossy()
                .into_owned()
        });
        give(entry, |pool, conn| pool.remove(conn, reason.as_deref()))
    })
}

/// The pool of node `addr` ("host:port"; made on first use), as a `pool_t` on which every
/// pool_* function works: pool_get / pool_put / pool_stats / pool_sticky_new (e.g. for
/// MULTI/EXEC on one node) ... Conns from it follow MOVED / ASK too. The cluster owns the
/// pool: pool_close on it is POOL_ERR_INVALID_ARG, and pool_free gives back this reference
/// only (call it once per pool_cluster_node_pool). POOL_ERR_CLOSED after
/// pool_cluster_close. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_node_pool(
    cluster: *mut pool_cluster_t,
    addr: *const c_char,
    pool_out: *mut *mut pool_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_node_pool"), {
        // SAFETY: per the header.
        let c = match unsafe { out_and_cluster(pool_out, "pool_out", cluster, err_out) } {
            Ok(c) => c,
            Err(code) => return code,
        };
        // SAFETY: per the header.
        let node = unsafe { addr_arg(addr) }.and_then(|a| c.node(a));
        match node.map(super::castable::pool_into_raw) {
            Ok(Ok(p)) => {
                // SAFETY: checked non-NULL above.
                unsafe { *pool_out = p };
                POOL_OK
            }
            Ok(Err(_)) => fail(
                err_out,
                &Error::Internal("too many pool handles in this process".into()),
            ),
            Err(e) => fail(err_out, &e),
        }
    })
}

/// The node ("host:port") a conn from pool_cluster_get* (or a node pool) is connected to,
/// copied with a NUL into `buf` of `cap` bytes (POOL_CLUSTER_ADDR_MAX is always enough).
/// POOL_ERR_INVALID_ARG for NULLs, a conn that is not checked out or not a cluster conn, or
/// a `buf` too small. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_conn_node(
    conn: *const pool_conn_t,
    buf: *mut c_char,
    cap: usize,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if buf.is_null() || cap == 0 {
            return POOL_ERR_INVALID_ARG;
        }
        let addr = conn_table::with(conn_bits(conn), |e| {
            e.owner.cluster().map(|(_, a)| a.to_string())
        });
        match addr.flatten() {
            // SAFETY: `buf` is writable for `cap` bytes per the header.
            Some(a) if unsafe { copy_out(&a, buf, cap) } => POOL_OK,
            _ => POOL_ERR_INVALID_ARG,
        }
    })
}

/// The master ("host:port") serving hash slot `slot` per the slot map as it is now,
/// copied with a NUL into `buf` of `cap` bytes (POOL_CLUSTER_ADDR_MAX is always enough).
/// Never loads the map, dials or waits for the network: with it a host that waits for
/// conns in its own scheduler routes a slot to its node's pool (pool_cluster_node_pool)
/// and waits on that pool's pool_try_get and pool_notify_fd (see docs/nonblocking.md). The
/// map may change right after: a conn of the node named is still usable, as commands on it
/// follow MOVED / ASK. POOL_ERR_CLUSTER before a get (or pool_cluster_refresh) loaded the
/// map, or when no master serves the slot; POOL_ERR_CLOSED after pool_cluster_close;
/// POOL_ERR_INVALID_ARG for NULLs, a dead handle, a slot outside 0..16383 or a `buf` too
/// small. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_slot_node(
    cluster: *const pool_cluster_t,
    slot: i32,
    buf: *mut c_char,
    cap: usize,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        if buf.is_null() || cap == 0 {
            return POOL_ERR_INVALID_ARG;
        }
        let Some(c) = cluster_hold(cluster) else {
            return POOL_ERR_INVALID_ARG;
        };
        let Some(slot) = u16::try_from(slot)
            .ok()
            .filter(|&s| usize::from(s) < slot::SLOTS)
        else {
            return POOL_ERR_INVALID_ARG;
        };
        match c.slot_master_now(slot) {
            // SAFETY: `buf` is writable for `cap` bytes per the header.
            Ok(a) if unsafe { copy_out(&a, buf, cap) } => POOL_OK,
            Ok(_) => POOL_ERR_INVALID_ARG,
            Err(e) => status_of(&e),
        }
    })
}

/// Reloads the slot map now (CLUSTER SHARDS, or CLUSTER SLOTS on servers without it),
/// asking the known nodes and then the seeds until one answers; waits first for a refresh
/// already running. Blocks at most `timeout_ms` (< 0: the node options' pool_timeout_ms;
/// 0: no bound but each node's dial and read timeouts). POOL_ERR_CLUSTER when no node
/// answered (the message says why), POOL_ERR_TIMEOUT, POOL_ERR_CLOSED. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_refresh(
    cluster: *mut pool_cluster_t,
    timeout_ms: i64,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_refresh"), {
        let c = match cluster_or_fail(cluster, err_out) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let wait = if timeout_ms < 0 {
            c.options().node.pool_timeout
        } else if timeout_ms == 0 {
            Wait::Forever
        } else {
            Wait::from_millis(timeout_ms).expect("positive")
        };
        match c.refresh_now(wait.deadline_from(std::time::Instant::now())) {
            Ok(()) => POOL_OK,
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Stats of node `addr`'s pool, or with `addr` NULL the sum over every node pool (counters
/// and gauges added up). Set `stats_out->struct_size` as for pool_stats.
/// POOL_ERR_INVALID_ARG for a NULL or freed cluster, a NULL stats_out, or a node without a
/// pool. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_stats(
    cluster: *const pool_cluster_t,
    addr: *const c_char,
    stats_out: *mut pool_stats_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(c) = cluster_hold(cluster) else {
            return POOL_ERR_INVALID_ARG;
        };
        let which = if addr.is_null() {
            None
        } else {
            // SAFETY: per the header.
            match unsafe { addr_arg(addr) } {
                Ok(a) => Some(a),
                Err(_) => return POOL_ERR_INVALID_ARG,
            }
        };
        match c.stats(which) {
            // SAFETY: per the header.
            Some(s) => unsafe { write_stats(&s, stats_out) },
            None => POOL_ERR_INVALID_ARG,
        }
    })
}

/// Cluster-wide counters (refreshes, redirects followed) and gauges (nodes, masters, slots
/// covered). Set `info_out->struct_size` to sizeof(pool_cluster_info_t) (or 0) first; only
/// that many bytes are written. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_info(
    cluster: *const pool_cluster_t,
    info_out: *mut pool_cluster_info_t,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(c) = cluster_hold(cluster) else {
            return POOL_ERR_INVALID_ARG;
        };
        if info_out.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: non-NULL; struct_size is the first field.
        let size = unsafe { out_size(info_out) };
        let s = c.cluster_stats();
        let info = pool_cluster_info {
            struct_size: size,
            refreshes: s.refreshes,
            refresh_errors: s.refresh_errors,
            moved: s.moved,
            ask: s.ask,
            retries: s.retries,
            nodes: s.nodes,
            masters: s.masters,
            slots_covered: s.slots_covered,
            reserved: 0,
        };
        // SAFETY: the caller's struct is writable for its struct_size (`size`).
        match unsafe { write_versioned(info, info_out, size) } {
            Ok(_) => POOL_OK,
            Err(_) => POOL_ERR_INVALID_ARG,
        }
    })
}

/// Lists the nodes (masters of the slot map first, then replicas and other nodes with a
/// pool; sorted by address within each group) into `out[0..cap)` and stores the total in
/// `*count` (which may exceed `cap`: call again with more room). `out` may be NULL with
/// cap 0. POOL_ERR_INVALID_ARG for NULLs. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_nodes(
    cluster: *const pool_cluster_t,
    out: *mut pool_cluster_node_t,
    cap: usize,
    count: *mut usize,
) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(c) = cluster_hold(cluster) else {
            return POOL_ERR_INVALID_ARG;
        };
        if count.is_null() || (out.is_null() && cap > 0) {
            return POOL_ERR_INVALID_ARG;
        }
        let nodes: Vec<NodeInfo> = c.nodes();
        for (i, n) in nodes.iter().take(cap).enumerate() {
            let mut row = pool_cluster_node {
                addr: [0; POOL_CLUSTER_ADDR_MAX],
                master: i32::from(n.master),
                slots: n.slots as i32,
            };
            for (d, s) in row
                .addr
                .iter_mut()
                .zip(n.addr.bytes().take(POOL_CLUSTER_ADDR_MAX - 1))
            {
                *d = s as c_char;
            }
            // SAFETY: `out` has `cap` writable entries per the header, and i < cap.
            unsafe { out.add(i).write(row) };
        }
        // SAFETY: checked non-NULL.
        unsafe { *count = nodes.len() };
        POOL_OK
    })
}

/// Close: closes every node pool (as pool_close: idle conns closed, waiters woken with
/// POOL_ERR_CLOSED; conns checked out are closed when given back). Later gets return
/// POOL_ERR_CLOSED; a second call returns POOL_ERR_CLOSED. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_close(cluster: *mut pool_cluster_t) -> pool_status_t {
    ffi_boundary!(POOL_ERR_INTERNAL, {
        let Some(c) = cluster_hold(cluster) else {
            return POOL_ERR_INVALID_ARG;
        };
        match c.close() {
            Ok(()) => POOL_OK,
            Err(e) => status_of(&e),
        }
    })
}

/// Free: closes the cluster if needed and makes the handle dead. NULL is fine. Never
/// blocks. Any thread. Node pools from pool_cluster_node_pool stay valid (closed) until
/// their own pool_free, and their memory until their last conn is back.
///
/// Calls on other threads: a pool_cluster_t is a checked handle, like a pool_t. Every
/// call on it first takes its own reference to the cluster through the handle, atomically
/// with checking that the handle is live; pool_cluster_free kills the handle atomically
/// too. So a call made before, during or after pool_cluster_free on another thread either
/// got in, and then the cluster's memory lives until it returns (a get loading the slot
/// map or waiting in a node pool returns POOL_ERR_CLOSED; pool_cluster_stats and the like
/// report the closed cluster), or is refused as after pool_cluster_free:
/// POOL_ERR_INVALID_ARG ("cluster: not a live cluster handle"; no message where the
/// function has no err_out). Never a read of freed memory.
///
/// After pool_cluster_free the handle stays valid only for pool_cluster_put /
/// pool_cluster_remove of conns of its nodes still checked out, which close them. A
/// second pool_cluster_free of the handle, or of a made-up value (or of a pool_t), does
/// nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_free(cluster: *mut pool_cluster_t) {
    ffi_boundary!((), {
        // NULL, a handle freed already (by another pool_cluster_free, maybe running right
        // now on another thread) or a made-up value: nothing to give back.
        let Some(c) = CLUSTERS.remove(cluster_bits(cluster)) else {
            return;
        };
        let _ = c.close();
        drop(c);
    })
}
