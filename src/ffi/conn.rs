//! `pool_conn_t`: one checked-out connection.

use std::any::Any;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::time::{Duration, Instant};

use super::castable::{bytes_in, conn_bits};
use super::conn_table;
use super::error::{fail, internal, invalid, pool_error_t};
use super::panic::ffi_boundary;
use super::reply::{into_c, pool_reply_t};
use super::status::{POOL_ERR_WOULD_BLOCK, POOL_OK, pool_status_t};
use crate::cluster::topology::parse_redirect;
use crate::pool::{Error, RawWait};
use crate::redis::io;
use crate::redis::resp::Reply;

pub use super::handles::{pool_conn, pool_conn_t};

/// A destructor for userdata: of a conn (pool_conn_set_userdata) or of a dialer
/// (pool_options_t.dialer_userdata_free).
pub type pool_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// The caller's userdata; its free_fn runs when the conn closes, on a thread that called
/// into the library (never on a library thread).
struct CUserData {
    ptr: *mut c_void,
    free_fn: pool_free_fn,
}

// SAFETY: the header documents that userdata may be freed on whichever user thread closes
// the conn.
unsafe impl Send for CUserData {}

impl Drop for CUserData {
    fn drop(&mut self) {
        if let Some(f) = self.free_fn {
            // SAFETY: the caller registered `f` to be called once with `ptr`.
            unsafe { f(self.ptr) };
        }
    }
}

/// The socket, for readiness polling (poll, epoll, an event loop) and for your own I/O on a
/// plain conn. On a TLS conn the socket carries TLS records: read and write through
/// pool_conn_read and pool_conn_write (which work on plain conns too), never on the fd.
/// Handed out in blocking mode; the library copes with
/// whatever mode the caller leaves it in. Its SO_RCVTIMEO is the pool's read_timeout_ms
/// (none when 0), so a blocking read of your own also ends after that long (EAGAIN):
/// pool_conn_command waits for its reply in one blocking recv bounded by it. Leave
/// SO_RCVTIMEO alone. Do not close it. -1 for NULL or a handle that is not checked out.
/// Asking for the fd makes the next get of this conn peek its socket for bytes your own
/// I/O left unread, even inside health_check_bypass_ms; until then each pool_conn_command
/// on it peeks first, and bytes waiting (a reply your I/O left unread) fail it with
/// POOL_ERR_PROTOCOL and mark the conn bad, rather than be returned as its reply.
/// Session state your own I/O changes (SUBSCRIBE, MULTI, WATCH, SELECT, CLIENT REPLY,
/// AUTH, HELLO) cannot be tracked: undo it (UNSUBSCRIBE, EXEC or DISCARD, UNWATCH, SELECT
/// back, or RESET) before pool_put, call pool_conn_session_changed (the pool restores it),
/// or give the conn back with pool_remove. The same
/// commands sent through pool_conn_command are tracked, and such a conn is restored (RESET
/// and the pool's set-up) by the get that takes it next (pool_stats_t.reset_conns).
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_fd(conn: *const pool_conn_t) -> c_int {
    ffi_boundary!(-1, {
        conn_table::with(conn_bits(conn), |e| e.conn.lend_fd()).unwrap_or(-1)
    })
}

fn would_block(err_out: *mut pool_error_t, msg: &str) -> pool_status_t {
    super::error::write_error(err_out, POOL_ERR_WOULD_BLOCK, &format!("redis: {msg}"));
    POOL_ERR_WOULD_BLOCK
}

/// Raw I/O timeouts: 0 = do not wait, -1 = wait as long as it takes, > 0 = milliseconds.
fn raw_wait(timeout_ms: i64) -> Option<RawWait> {
    match timeout_ms {
        0 => Some(RawWait::NoWait),
        -1 => Some(RawWait::Forever),
        ms if ms > 0 => Some(RawWait::For(Duration::from_millis(ms as u64))),
        _ => None,
    }
}

/// Reads up to `len` bytes of what the server sent on `conn` into `buf`, for your own
/// protocol handling (a RESP reader of your own, an event loop): on a TLS conn the bytes
/// are decrypted, so the same code serves plain and TLS conns (raw reads of
/// pool_conn_fd() would see TLS records). On POOL_OK `*n_out` is the number of bytes
/// read, at least 1, or 0 at EOF (the server closed the conn, or sent its TLS
/// close_notify). `timeout_ms`: 0 = do not wait, -1 = wait until something arrives, > 0 =
/// wait at most that many milliseconds. When nothing arrived in that time:
/// POOL_ERR_WOULD_BLOCK, `*n_out` 0, nothing consumed: poll pool_conn_fd() for readability
/// (POLLIN / EPOLLIN) and call again. A TLS conn may hold bytes already decrypted that the
/// fd does not signal: after a read that returned data, read again until
/// POOL_ERR_WOULD_BLOCK before polling. An OS or TLS failure is POOL_ERR_IO and marks the
/// conn bad (pool_put removes it). POOL_ERR_BAD_CONN on a conn already bad or inherited
/// across fork(); POOL_ERR_INVALID_ARG for NULLs, timeout_ms below -1 or a handle that is
/// not checked out. As with pool_conn_fd, the next get of the conn peeks it for bytes your
/// own I/O left unread. `len` 0 is POOL_ERR_INVALID_ARG. The thread that holds the conn
/// calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_read(
    conn: *mut pool_conn_t,
    buf: *mut c_void,
    len: usize,
    timeout_ms: i64,
    n_out: *mut usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_read"), {
        if n_out.is_null() {
            return invalid(err_out, "n_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *n_out = 0 };
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        if len == 0 {
            return invalid(
                err_out,
                "len: 0 (a read of 0 bytes could not tell EOF apart)",
            );
        }
        if buf.is_null() {
            return invalid(err_out, "buf: NULL");
        }
        let Some(wait) = raw_wait(timeout_ms) else {
            return invalid(
                err_out,
                &format!("timeout_ms: {timeout_ms} (0 = do not wait, -1 = forever, > 0 = ms)"),
            );
        };
        // SAFETY: the caller passes `buf` writable for `len` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        match conn_table::with(conn_bits(conn), |e| e.conn.read_raw(out, wait)) {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err(e)) => fail(err_out, &e),
            Some(Ok(None)) => would_block(err_out, "nothing to read yet: poll the fd for POLLIN"),
            Some(Ok(Some(n))) => {
                // SAFETY: checked non-NULL above.
                unsafe { *n_out = n };
                POOL_OK
            }
        }
    })
}

/// Writes `len` bytes of `buf` on `conn` (encrypted on a TLS conn): raw I/O that works
/// for plain and TLS conns alike. `timeout_ms`: -1 = until all is written, > 0 = at most
/// that many milliseconds, 0 = only what the socket takes now. On POOL_OK `*n_out` bytes
/// were taken (all of them, unless the time ran out or timeout_ms is 0); when none could
/// be, POOL_ERR_WOULD_BLOCK: poll pool_conn_fd() for writability (POLLOUT / EPOLLOUT) and
/// call again. On a TLS conn the bytes taken are encrypted into the session, which sends
/// what the socket takes: a write with a timeout also sends the rest before it returns;
/// a non-blocking one may leave records behind (pool_conn_write_pending() says so): when
/// the fd is writable, call pool_conn_write again (len 0 is fine) to send them. An OS or
/// TLS failure is POOL_ERR_IO and marks the conn bad. Never raises SIGPIPE. Other
/// statuses as pool_conn_read's. The thread that holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_write(
    conn: *mut pool_conn_t,
    buf: *const c_void,
    len: usize,
    timeout_ms: i64,
    n_out: *mut usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_write"), {
        if n_out.is_null() {
            return invalid(err_out, "n_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *n_out = 0 };
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        if buf.is_null() && len > 0 {
            return invalid(err_out, "buf: NULL");
        }
        let Some(wait) = raw_wait(timeout_ms) else {
            return invalid(
                err_out,
                &format!("timeout_ms: {timeout_ms} (0 = do not wait, -1 = forever, > 0 = ms)"),
            );
        };
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller passes `buf` readable for `len` bytes.
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
        };
        let res = conn_table::with(conn_bits(conn), |e| {
            e.conn
                .write_raw(data, wait)
                .map(|n| (n, e.conn.pending_write()))
        });
        match res {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err(e)) => fail(err_out, &e),
            Some(Ok((0, pending))) if len > 0 || pending => {
                would_block(err_out, "no room to write yet: poll the fd for POLLOUT")
            }
            Some(Ok((n, _))) => {
                // SAFETY: checked non-NULL above.
                unsafe { *n_out = n };
                POOL_OK
            }
        }
    })
}

/// Whether a TLS conn holds encrypted bytes a non-blocking pool_conn_write could not send
/// yet: poll pool_conn_fd() for writability and call pool_conn_write (len 0 is fine) until
/// this is false. Always false on a plain conn, NULL, or a handle that is not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_write_pending(conn: *const pool_conn_t) -> bool {
    ffi_boundary!(false, {
        conn_table::with(conn_bits(conn), |e| e.conn.pending_write()).unwrap_or(false)
    })
}

/// Unique per pool, never reused (the first conn is 1). 0 for NULL or a handle that is not
/// checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_id(conn: *const pool_conn_t) -> u64 {
    ffi_boundary!(0, {
        conn_table::with(conn_bits(conn), |e| e.conn.id()).unwrap_or(0)
    })
}

/// Attaches `userdata` to the conn; it survives put/get and `free_fn` (may be NULL) runs
/// with it when the conn closes, on a thread that called into the library. Replacing it
/// runs the previous free_fn unless the pointer is the same. Ignored for a handle that is
/// not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_set_userdata(
    conn: *mut pool_conn_t,
    userdata: *mut c_void,
    free_fn: pool_free_fn,
) {
    ffi_boundary!((), {
        let old = conn_table::with(conn_bits(conn), |e| {
            let data: Option<Box<dyn Any + Send>> = if userdata.is_null() && free_fn.is_none() {
                None
            } else {
                Some(Box::new(CUserData {
                    ptr: userdata,
                    free_fn,
                }))
            };
            let mut old = e.conn.take_userdata_box();
            e.conn.set_userdata(data);
            // The same pointer set again must not be freed under the caller.
            if let Some(prev) = old.as_mut().and_then(|b| b.downcast_mut::<CUserData>()) {
                if prev.ptr == userdata {
                    prev.free_fn = None;
                }
            }
            old
        });
        // Runs outside the table lock: a free_fn may call back into the library.
        drop(old);
    })
}

/// The userdata set with pool_conn_set_userdata, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_userdata(conn: *const pool_conn_t) -> *mut c_void {
    ffi_boundary!(std::ptr::null_mut(), {
        conn_table::with(conn_bits(conn), |e| {
            e.conn
                .userdata()
                .and_then(|d| d.downcast_ref::<CUserData>())
                .map_or(std::ptr::null_mut(), |d| d.ptr)
        })
        .unwrap_or(std::ptr::null_mut())
    })
}

/// Upper bound on argc: far above any real command, low enough that a garbage argc is
/// caught before it is used to read memory.
const MAX_ARGS: c_int = 1 << 24;

/// Sends one command on `conn` and waits for its reply (hiredis's redisCommandArgv): `argc`
/// arguments, `argv[i]` of `argvlen[i]` bytes (binary safe), or NUL-terminated strings
/// when `argvlen` is NULL. On POOL_OK `*reply_out` holds the reply: the caller owns it and
/// releases it with pool_reply_free. A Redis error reply (WRONGTYPE, ...) is POOL_OK with
/// type POOL_REPLY_ERROR and the conn stays good. RESP3 pushes the server sends on its own
/// (client tracking invalidations, pub/sub messages) are skipped when they come before or
/// right behind the reply, never returned as it; (P|S)(UN)SUBSCRIBE return their own push.
/// On a conn that did not negotiate RESP3 (protocol 2, no HELLO 3) a push frame is
/// POOL_ERR_PROTOCOL.
///
/// Blocks the calling thread for the write (at most write_timeout_ms) and for the reply (at
/// most read_timeout_ms), whatever blocking mode the fd is in; never raises SIGPIPE. Both
/// are counted once from the start of the call: pushes skipped on the way do not restart
/// them, so a server that keeps pushing cannot keep the call going. A
/// failure mid-way (POOL_ERR_IO: timeout, EOF, OS error; POOL_ERR_PROTOCOL: malformed
/// reply, a push on a RESP2 conn, a reply past the pool's max_reply_bytes or
/// max_reply_elements, nested deeper than 512 levels, or out of memory while reading it)
/// marks the conn bad: later commands on it return POOL_ERR_BAD_CONN and pool_put removes
/// it instead of pooling it. Out of memory for the reply tree once the reply is read whole
/// is POOL_ERR_PROTOCOL too, but the conn stays good. The process is never aborted for
/// memory. POOL_ERR_INVALID_ARG for NULLs, argc < 1 or above
/// 16777216 (2^24), or a handle that is not checked out. The thread that holds the conn calls this.
///
/// On a conn of a cluster (pool_cluster_get*, or a cluster's node pool), a reply MOVED or
/// ASK is followed: the command is sent again to the node named (after ASKING for ASK)
/// over a conn of that node's pool, and that node's reply is returned; TRYAGAIN and
/// CLUSTERDOWN are retried after a short pause (10, 20, 40 ms ...). At most the cluster's
/// max_redirects times, after which the last redirect is returned as the error reply. The
/// whole call, redirects included, is bounded by one read_timeout_ms from its start: a
/// redirect is not followed once it has passed (the redirect is returned, as after
/// max_redirects), a command sent again that does not answer in what is left fails with
/// POOL_ERR_IO, and a conn of another node is waited for at most what is left.
/// MOVED also updates the slot map (and triggers a refresh, rate-limited). The conn
/// passed in stays with the caller, connected to its own node.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_command(
    conn: *mut pool_conn_t,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
    reply_out: *mut *mut pool_reply_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: the caller's pointers, forwarded under pool_conn_command's contract.
    unsafe {
        command_impl(
            "pool_conn_command",
            conn,
            argc,
            argv,
            argvlen,
            None,
            reply_out,
            err_out,
        )
    }
}

/// pool_conn_command with this call's own read timeout: `timeout_ms` < 0 is the pool's
/// read_timeout_ms (exactly pool_conn_command), 0 is no read timeout (wait for the reply
/// as long as it takes), > 0 is this call's read timeout in milliseconds, in place of the
/// pool's (not added to it). For blocking commands: `BLPOP key 5` on a pool whose
/// read_timeout_ms is 1000 needs a timeout_ms above 5000 (say 5000 + the pool's read
/// timeout, as go-redis does); its nil reply after 5 s (or the element, once another client
/// pushes one) is POOL_OK and the conn stays good. If the reply does not arrive within
/// timeout_ms the call fails with POOL_ERR_IO and the conn is bad, as with
/// pool_conn_command. The write stays bounded by the pool's write_timeout_ms. On a
/// cluster conn the whole call, redirects included, is bounded by timeout_ms from its start
/// (a command sent again to another node is also bounded by that node's pool's
/// read_timeout_ms). Everything else, statuses and reply ownership included, is as
/// pool_conn_command's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_command_ex(
    conn: *mut pool_conn_t,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
    timeout_ms: i64,
    reply_out: *mut *mut pool_reply_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    let read = match timeout_ms {
        ..0 => None,
        0 => Some(None),
        ms => Some(Some(Duration::from_millis(ms as u64))),
    };
    // SAFETY: the caller's pointers, forwarded under this function's contract.
    unsafe {
        command_impl(
            "pool_conn_command_ex",
            conn,
            argc,
            argv,
            argvlen,
            read,
            reply_out,
            err_out,
        )
    }
}

/// `WAIT numreplicas timeout_ms` on `conn`: blocks until the writes sent on this conn so
/// far have reached at least `numreplicas` replicas, or `timeout_ms` (at least 1) passed.
/// For a write that must survive a failover: a write the master acknowledged but no
/// replica received is lost when a replica is promoted (docs/sentinel.md, "Failover").
/// `*acked_out` (may be NULL) receives how many replicas have the writes.
///
/// POOL_OK: at least `numreplicas` have them. POOL_ERR_TIMEOUT: fewer did within
/// `timeout_ms`; the writes are applied on the master (this is no undo), but a failover
/// may lose them. POOL_ERR_IO with the server's text when it refuses WAIT (a replica, an
/// ACL without it); the conn stays good. The reply is awaited `timeout_ms` plus the pool's
/// read_timeout_ms (an I/O failure or timeout marks the conn bad, as pool_conn_command's).
/// POOL_ERR_INVALID_ARG for a NULL or not checked-out conn, `numreplicas` < 0 or
/// `timeout_ms` < 1. On a cluster conn, WAIT goes to the conn's own node: it covers
/// the writes sent there, not those a redirect sent to another node. Costs one round trip
/// plus the replicas' acknowledgement (a replica acknowledges within a millisecond on a
/// LAN; see the docs for the measured throughput). The thread that holds the conn calls
/// this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_wait_replicas(
    conn: *mut pool_conn_t,
    numreplicas: c_int,
    timeout_ms: i64,
    acked_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_wait_replicas"), {
        if !acked_out.is_null() {
            // SAFETY: checked non-NULL; the caller passes a writable pointer.
            unsafe { *acked_out = 0 };
        }
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        let Ok(n) = u32::try_from(numreplicas) else {
            return invalid(
                err_out,
                &format!("numreplicas: {numreplicas} (must be >= 0)"),
            );
        };
        if timeout_ms < 1 {
            return invalid(err_out, &format!("timeout_ms: {timeout_ms} (must be >= 1)"));
        }
        let timeout = Duration::from_millis(timeout_ms as u64);
        let result = conn_table::with(conn_bits(conn), |e| e.conn.wait_replicas(n, timeout));
        let set_acked = |k: u32| {
            if !acked_out.is_null() {
                // SAFETY: checked non-NULL above.
                unsafe { *acked_out = c_int::try_from(k).unwrap_or(c_int::MAX) };
            }
        };
        match result {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Ok(k)) => {
                set_acked(k);
                if k >= n {
                    return POOL_OK;
                }
                fail(
                    err_out,
                    &Error::Timeout(format!(
                        "redis: WAIT: the writes reached {k} of the {n} replicas asked for within {timeout_ms} ms \
                         (they are applied on the master, but a failover may lose them)"
                    )),
                )
            }
            Some(Err(e)) => fail(err_out, &e),
        }
    })
}

/// The body of pool_conn_command(_ex): `read` (when Some) is this call's read timeout
/// (None inside = none).
#[allow(clippy::too_many_arguments)]
unsafe fn command_impl(
    name: &'static str,
    conn: *mut pool_conn_t,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
    read: Option<Option<Duration>>,
    reply_out: *mut *mut pool_reply_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, name), {
        if reply_out.is_null() {
            return invalid(err_out, "reply_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *reply_out = std::ptr::null_mut() };
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        if !(1..=MAX_ARGS).contains(&argc) {
            return invalid(
                err_out,
                &format!("argc: {argc} (must be at least 1 and at most {MAX_ARGS})"),
            );
        }
        if argv.is_null() {
            return invalid(err_out, "argv: NULL");
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(argc as usize);
        for i in 0..argc as usize {
            // SAFETY: per the header `argv` has `argc` entries.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                return invalid(err_out, &format!("argv[{i}]: NULL"));
            }
            let arg = if argvlen.is_null() {
                // SAFETY: without argvlen, each argument is NUL-terminated per the header.
                unsafe { CStr::from_ptr(p) }.to_bytes()
            } else {
                // SAFETY: per the header `argvlen` has `argc` entries and argv[i] is
                // readable for argvlen[i] bytes.
                unsafe { bytes_in(p, *argvlen.add(i)) }
            };
            args.push(arg);
        }
        let result = conn_table::with(conn_bits(conn), |e| {
            // A cluster conn's call may take several commands (redirects): all of them
            // within one read deadline, counted from here.
            let started = e.owner.cluster().map(|_| Instant::now());
            let result = match read {
                None => e.conn.command(&args),
                Some(r) => e.conn.command_read_timeout(&args, r),
            };
            // A cluster conn answered MOVED / ASK / TRYAGAIN / CLUSTERDOWN: its cluster
            // sends the command again where it belongs.
            match (result, e.owner.cluster()) {
                (Ok(Reply::Error(text)), Some((cluster, addr)))
                    if parse_redirect(&text).is_some() =>
                {
                    match cluster.upgrade() {
                        Some(c) => {
                            let deadline = match read {
                                None => started.and_then(|t| e.conn.read_deadline_from(t)),
                                Some(r) => started.and_then(|t| io::Deadline::after_from(t, r)),
                            };
                            c.follow(addr, &mut e.conn, &args, Reply::Error(text), deadline)
                        }
                        None => Ok(Reply::Error(text)),
                    }
                }
                (result, _) => result,
            }
        });
        match result {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err(e)) => fail(err_out, &e),
            Some(Ok(reply)) => match into_c(reply) {
                Some(r) => {
                    // SAFETY: checked non-NULL above.
                    unsafe { *reply_out = r };
                    POOL_OK
                }
                // The reply was read whole: the conn stays good.
                None => fail(
                    err_out,
                    &Error::Protocol("out of memory: the reply could not be handed over".into()),
                ),
            },
        }
    })
}

/// Upper bound on a pipeline's ncmds: 2^20 commands in one write.
const MAX_PIPELINE: usize = 1 << 20;

/// Sends `ncmds` commands on `conn` in one write, then reads their `ncmds` replies (a
/// pipeline, as hiredis's redisAppendCommandArgv then redisGetReply, or go-redis's
/// Pipeline). Command `i` has `argcs[i]` arguments `argvs[i][j]` of `argvlens[i][j]` bytes;
/// `argvlens` NULL, or `argvlens[i]` NULL, means NUL-terminated strings. `replies_out` is
/// the caller's array of `ncmds` pointers: `replies_out[i]` receives command `i`'s reply,
/// converted as it is read (the caller frees each non-NULL one with pool_reply_free), and
/// `*nreplies_out` how many replies arrived. Each reply is its own: a Redis error reply
/// (WRONGTYPE, ...) is POOL_REPLY_ERROR in its place and the replies after it are read
/// as usual. A transaction is a pipeline too: MULTI, the commands (each answered QUEUED),
/// EXEC, whose reply is the array of their replies, or POOL_REPLY_NIL when a WATCHed key
/// changed (an EXECABORT error reply when a queued command was refused).
///
/// POOL_OK: all `ncmds` replies arrived. An I/O or protocol failure mid-way (POOL_ERR_IO,
/// POOL_ERR_PROTOCOL, as pool_conn_command's) marks the conn bad; the replies read before
/// it are returned all the same: `*nreplies_out` says how many (the first ones), the other
/// entries are NULL. Out of memory for one reply's tree once it was read whole leaves that
/// entry NULL, reads the rest (the conn stays good) and returns POOL_ERR_PROTOCOL with
/// `*nreplies_out` = ncmds. POOL_ERR_INVALID_ARG (nothing sent, `*nreplies_out` 0) for
/// NULLs, `ncmds` 0 or above 1048576 (2^20), an `argcs[i]` below 1 or above 2^24, or a
/// handle that is not checked out.
///
/// `timeout_ms` as pool_conn_command_ex's (< 0 the pool's read_timeout_ms, 0 none, > 0
/// this call's): it bounds the reading of all the replies together, counted once from the
/// start of the call, as write_timeout_ms bounds the one write. RESP3 pushes are skipped
/// as by pool_conn_command. On a cluster conn, MOVED and ASK are not followed inside a
/// pipeline: they are returned as error replies in their places, for the caller to send
/// those commands again (pool_conn_command follows them). The thread that holds the conn
/// calls this.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pool_conn_pipeline(
    conn: *mut pool_conn_t,
    ncmds: usize,
    argcs: *const c_int,
    argvs: *const *const *const c_char,
    argvlens: *const *const usize,
    timeout_ms: i64,
    replies_out: *mut *mut pool_reply_t,
    nreplies_out: *mut usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_pipeline"), {
        if nreplies_out.is_null() {
            return invalid(err_out, "nreplies_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *nreplies_out = 0 };
        if replies_out.is_null() {
            return invalid(err_out, "replies_out: NULL");
        }
        if ncmds == 0 || ncmds > MAX_PIPELINE {
            return invalid(
                err_out,
                &format!("ncmds: {ncmds} (must be at least 1 and at most {MAX_PIPELINE})"),
            );
        }
        for i in 0..ncmds {
            // SAFETY: per the header `replies_out` has `ncmds` writable entries.
            unsafe { *replies_out.add(i) = std::ptr::null_mut() };
        }
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        if argcs.is_null() {
            return invalid(err_out, "argcs: NULL");
        }
        if argvs.is_null() {
            return invalid(err_out, "argvs: NULL");
        }
        let mut flat: Vec<&[u8]> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(ncmds);
        for i in 0..ncmds {
            // SAFETY: per the header `argcs` and `argvs` have `ncmds` entries.
            let (argc, argv) = unsafe { (*argcs.add(i), *argvs.add(i)) };
            if !(1..=MAX_ARGS).contains(&argc) {
                return invalid(
                    err_out,
                    &format!("argcs[{i}]: {argc} (must be at least 1 and at most {MAX_ARGS})"),
                );
            }
            if argv.is_null() {
                return invalid(err_out, &format!("argvs[{i}]: NULL"));
            }
            let lens = if argvlens.is_null() {
                std::ptr::null()
            } else {
                // SAFETY: per the header a non-NULL `argvlens` has `ncmds` entries.
                unsafe { *argvlens.add(i) }
            };
            for j in 0..argc as usize {
                // SAFETY: per the header `argvs[i]` has `argcs[i]` entries.
                let p = unsafe { *argv.add(j) };
                if p.is_null() {
                    return invalid(err_out, &format!("argvs[{i}][{j}]: NULL"));
                }
                let arg = if lens.is_null() {
                    // SAFETY: without lengths, each argument is NUL-terminated per the header.
                    unsafe { CStr::from_ptr(p) }.to_bytes()
                } else {
                    // SAFETY: per the header `argvlens[i]` has `argcs[i]` entries and
                    // argvs[i][j] is readable for argvlens[i][j] bytes.
                    unsafe { bytes_in(p, *lens.add(j)) }
                };
                flat.push(arg);
            }
            ends.push(flat.len());
        }
        let mut start = 0;
        let cmds: Vec<&[&[u8]]> = ends
            .iter()
            .map(|&end| {
                let c = &flat[start..end];
                start = end;
                c
            })
            .collect();
        let read = match timeout_ms {
            ..0 => None,
            0 => Some(None),
            ms => Some(Some(Duration::from_millis(ms as u64))),
        };
        let mut n = 0usize;
        let mut oom = false;
        let result = conn_table::with(conn_bits(conn), |e| {
            e.conn.pipeline(&cmds, read, &mut |reply| {
                match into_c(reply) {
                    // SAFETY: n < ncmds: the conn hands over one reply per command.
                    Some(r) => unsafe { *replies_out.add(n) = r },
                    None => oom = true,
                }
                n += 1;
            })
        });
        // SAFETY: checked non-NULL above.
        unsafe { *nreplies_out = n };
        match result {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err((_, e))) => fail(err_out, &e),
            Some(Ok(())) if oom => fail(
                err_out,
                &Error::Protocol("out of memory: a reply could not be handed over".into()),
            ),
            Some(Ok(())) => POOL_OK,
        }
    })
}

/// Client-side caching and other RESP3 pushes on a normal conn: with `keep` true, pushes
/// the server sends on this conn (CLIENT TRACKING invalidations, ...) are kept for
/// pool_conn_next_push instead of skipped, whenever the conn's own calls meet them (before
/// or right behind a reply) and when pool_conn_next_push reads them; at most 65536 are
/// kept (the oldest dropped beyond that). `keep` false drops those kept and skips them
/// again. RESP3 only (protocol=3): POOL_ERR_INVALID_ARG on a RESP2 conn, which gets no
/// pushes. Asking for pushes changes the conn's session: it is not handed to a next user
/// as it is (restored first, with tracking off; see pool_stats_t.reset_conns).
/// POOL_ERR_INVALID_ARG for NULL or a handle that is not checked out. The thread that
/// holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_keep_pushes(
    conn: *mut pool_conn_t,
    keep: bool,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_keep_pushes"), {
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        match conn_table::with(conn_bits(conn), |e| e.conn.keep_pushes(keep)) {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err(e)) => fail(err_out, &e),
            Some(Ok(())) => POOL_OK,
        }
    })
}

/// The oldest push kept on `conn` (see pool_conn_keep_pushes), as a POOL_REPLY_PUSH tree the
/// caller frees with pool_reply_free; when none is kept, waits for the next one to arrive,
/// at most `timeout_ms` (< 0: as long as it takes; 0: only what has already arrived).
/// POOL_ERR_TIMEOUT with `*push_out` NULL when none came (the conn stays good). A frame
/// that is not a push arriving while no command waits for it means the conn is out of
/// step: POOL_ERR_PROTOCOL, the conn is bad. An I/O failure: POOL_ERR_IO, the conn is bad.
/// On a conn that keeps no pushes, pushes that arrive are returned too (and none are
/// kept). POOL_ERR_INVALID_ARG for NULLs or a handle that is not checked out. The thread
/// that holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_next_push(
    conn: *mut pool_conn_t,
    timeout_ms: i64,
    push_out: *mut *mut pool_reply_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_next_push"), {
        if push_out.is_null() {
            return invalid(err_out, "push_out: NULL");
        }
        // SAFETY: checked non-NULL; writable per the header.
        unsafe { *push_out = std::ptr::null_mut() };
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        let deadline = match timeout_ms {
            ..0 => None,
            ms => Some(io::Deadline::after(Some(Duration::from_millis(ms as u64)))),
        };
        let res = conn_table::with(conn_bits(conn), |e| match deadline {
            None => e.conn.next_push(None),
            // An unrepresentable deadline is as good as none.
            Some(d) => e.conn.next_push(d),
        });
        match res {
            None => invalid(
                err_out,
                "conn: not a checked-out conn (already put or removed?)",
            ),
            Some(Err(e)) => fail(err_out, &e),
            Some(Ok(None)) => {
                super::error::write_error(
                    err_out,
                    super::status::POOL_ERR_TIMEOUT,
                    &format!("redis: no push within {timeout_ms} ms"),
                );
                super::status::POOL_ERR_TIMEOUT
            }
            Some(Ok(Some(p))) => match into_c(p) {
                Some(r) => {
                    // SAFETY: checked non-NULL above.
                    unsafe { *push_out = r };
                    POOL_OK
                }
                None => fail(
                    err_out,
                    &Error::Protocol("out of memory: the push could not be handed over".into()),
                ),
            },
        }
    })
}

/// Tells the pool that your own I/O on the conn's fd (pool_conn_fd: hiredis, a raw
/// SUBSCRIBE, MULTI, SELECT ...) changed the session it set up, which it cannot see: the
/// conn is then treated as one whose commands changed it. Given back with pool_put, it is
/// restored (PING, RESET, the pool's set-up; whatever your I/O left unread is dropped)
/// by the get that takes it next, counted in pool_stats_t.reset_conns; a sticky or single
/// pool closes it instead. POOL_ERR_INVALID_ARG for NULL or a handle that is not checked
/// out. The thread that holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_session_changed(conn: *mut pool_conn_t) -> pool_status_t {
    ffi_boundary!(super::status::POOL_ERR_INTERNAL, {
        match conn_table::with(conn_bits(conn), |e| e.conn.mark_session_changed()) {
            Some(()) => POOL_OK,
            None => super::status::POOL_ERR_INVALID_ARG,
        }
    })
}
