//! Commands that never wait: pool_conn_start / pool_conn_start_pipeline send what the
//! socket takes, pool_conn_finish / pool_conn_finish_pipeline make progress when the fd is
//! ready. For event loops (libuv, libevent, Go's netpoller, asyncio, Ruby fiber
//! schedulers): together with pool_try_get and pool_notify_fd no call ever blocks.

use std::ffi::{CStr, c_char, c_int};
use std::time::Duration;

use super::castable::{bytes_in, conn_bits};
use super::conn_table;
use super::error::{fail, internal, invalid, pool_error_t, write_error};
use super::handles::pool_conn_t;
use super::panic::ffi_boundary;
use super::reply::{into_c, pool_reply_t};
use super::status::{POOL_ERR_INVALID_ARG, POOL_ERR_WOULD_BLOCK, POOL_OK, pool_status_t};
use crate::pool::{Error, Progress, Want};
use crate::redis::resp::Reply;

/// `*want_out` of the non-blocking calls: poll pool_conn_fd() for readability (POLLIN,
/// EPOLLIN, EV_READ, UV_READABLE) before calling pool_conn_finish again.
pub const POOL_WANT_READ: c_int = 1;
/// `*want_out` of the non-blocking calls: poll pool_conn_fd() for writability (POLLOUT,
/// EPOLLOUT, EV_WRITE, UV_WRITABLE): the command (or, on a TLS conn, the session's
/// records) is not all sent yet.
pub const POOL_WANT_WRITE: c_int = 2;

/// Upper bound on argc, as pool_conn_command's.
const MAX_ARGS: c_int = 1 << 24;
/// Upper bound on a pipeline's ncmds, as pool_conn_pipeline's.
const MAX_PIPELINE: usize = 1 << 20;

fn want_code(w: Want) -> c_int {
    match w {
        Want::Read => POOL_WANT_READ,
        Want::Write => POOL_WANT_WRITE,
    }
}

/// Timeouts as pool_conn_command_ex's: < 0 the pool's, 0 none, > 0 this call's.
fn read_override(timeout_ms: i64) -> Option<Option<Duration>> {
    match timeout_ms {
        ..0 => None,
        0 => Some(None),
        ms => Some(Some(Duration::from_millis(ms as u64))),
    }
}

/// One command's arguments, checked. `Err` names what is wrong.
///
/// # Safety
/// As pool_conn_command's `argc`, `argv`, `argvlen`.
unsafe fn args_of(
    what: &str,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
    out: &mut Vec<&[u8]>,
) -> Result<(), String> {
    if !(1..=MAX_ARGS).contains(&argc) {
        return Err(format!(
            "{what}argc: {argc} (must be at least 1 and at most {MAX_ARGS})"
        ));
    }
    if argv.is_null() {
        return Err(format!("{what}argv: NULL"));
    }
    for i in 0..argc as usize {
        // SAFETY: per the header `argv` has `argc` entries.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            return Err(format!("{what}argv[{i}]: NULL"));
        }
        let arg = if argvlen.is_null() {
            // SAFETY: without lengths, each argument is NUL-terminated per the header.
            unsafe { CStr::from_ptr(p) }.to_bytes()
        } else {
            // SAFETY: per the header `argvlen` has `argc` entries and argv[i] is readable
            // for argvlen[i] bytes.
            unsafe { bytes_in(p, *argvlen.add(i)) }
        };
        out.push(arg);
    }
    Ok(())
}

fn set_want(want_out: *mut c_int, w: c_int) {
    if !want_out.is_null() {
        // SAFETY: a non-NULL want_out is writable per the header.
        unsafe { *want_out = w };
    }
}

const NOT_CHECKED_OUT: &str = "conn: not a checked-out conn (already put or removed?)";

fn start(
    conn: *mut pool_conn_t,
    cmds: &[&[&[u8]]],
    timeout_ms: i64,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    let read = read_override(timeout_ms);
    match conn_table::with(conn_bits(conn), |e| e.conn.start(cmds, read)) {
        None => invalid(err_out, NOT_CHECKED_OUT),
        Some(Err(e)) => fail(err_out, &e),
        Some(Ok(w)) => {
            set_want(want_out, want_code(w));
            POOL_OK
        }
    }
}

/// Starts one command on `conn` without waiting for anything: encodes it (`argc`,
/// `argv`, `argvlen` as pool_conn_command's) and writes what the socket takes now. On
/// POOL_OK the command is started and `*want_out` (may be NULL) says what to poll
/// pool_conn_fd() for before calling pool_conn_finish: POOL_WANT_READ when it is all
/// sent (its reply is on the way), POOL_WANT_WRITE when the socket was full. Calling
/// pool_conn_finish before the fd is ready is harmless (POOL_ERR_WOULD_BLOCK).
///
/// `timeout_ms` as pool_conn_command_ex's (< 0 the pool's read_timeout_ms, 0 none, > 0
/// this command's); it and the pool's write_timeout_ms are counted from this call, as the
/// blocking call counts them from its start: pool_conn_finish fails the command with
/// POOL_ERR_IO (an i/o timeout; the conn is bad) when it still waits for the fd after its
/// deadline. The library keeps no timer: give your poll a timeout of
/// pool_conn_wait_ms() and call pool_conn_finish when it expires.
///
/// Works on plain and TLS conns alike (never read or write the fd yourself meanwhile).
/// Until the command is finished (or failed) the conn refuses pool_conn_command,
/// pool_conn_pipeline, pool_conn_read and pool_conn_write, and a second pool_conn_start,
/// with POOL_ERR_INVALID_ARG (the started command is unaffected); pool_put of a conn
/// mid-command closes it (its reply is on the way) and counts it in
/// pool_stats_t.reset_conns, never pooling it. Cluster redirects (MOVED, ASK) are not
/// followed: they are the error reply. Other statuses as pool_conn_command's
/// (POOL_ERR_BAD_CONN, POOL_ERR_IO on a write failure, which marks the conn bad;
/// POOL_ERR_INVALID_ARG for NULLs, a bad argc or a handle that is not checked out). The
/// thread that holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_start(
    conn: *mut pool_conn_t,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
    timeout_ms: i64,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_start"), {
        set_want(want_out, 0);
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(argc.clamp(0, 64) as usize);
        // SAFETY: the caller's arguments, under this function's contract.
        if let Err(msg) = unsafe { args_of("", argc, argv, argvlen, &mut args) } {
            return invalid(err_out, &msg);
        }
        start(conn, &[&args], timeout_ms, want_out, err_out)
    })
}

/// Starts a pipeline of `ncmds` commands on `conn` without waiting (one write of all of
/// them, as much as the socket takes now): the commands as pool_conn_pipeline's
/// (`argcs`, `argvs`, `argvlens`; a transaction is MULTI ... EXEC in it). Then
/// pool_conn_finish_pipeline. Everything else as pool_conn_start's; `ncmds` 0 or above
/// 1048576 is POOL_ERR_INVALID_ARG (nothing sent).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pool_conn_start_pipeline(
    conn: *mut pool_conn_t,
    ncmds: usize,
    argcs: *const c_int,
    argvs: *const *const *const c_char,
    argvlens: *const *const usize,
    timeout_ms: i64,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_start_pipeline"), {
        set_want(want_out, 0);
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        if ncmds == 0 || ncmds > MAX_PIPELINE {
            return invalid(
                err_out,
                &format!("ncmds: {ncmds} (must be at least 1 and at most {MAX_PIPELINE})"),
            );
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
            // SAFETY: per the header `argcs`, `argvs` (and a non-NULL `argvlens`) have
            // `ncmds` entries.
            let (argc, argv, lens) = unsafe {
                (
                    *argcs.add(i),
                    *argvs.add(i),
                    if argvlens.is_null() {
                        std::ptr::null()
                    } else {
                        *argvlens.add(i)
                    },
                )
            };
            let what = format!("command {i}: ");
            // SAFETY: command i's arguments, under pool_conn_pipeline's contract.
            if let Err(msg) = unsafe { args_of(&what, argc, argv, lens, &mut flat) } {
                return invalid(err_out, &msg);
            }
            ends.push(flat.len());
        }
        let mut from = 0;
        let cmds: Vec<&[&[u8]]> = ends
            .iter()
            .map(|&end| {
                let c = &flat[from..end];
                from = end;
                c
            })
            .collect();
        start(conn, &cmds, timeout_ms, want_out, err_out)
    })
}

/// How many replies the command started on `conn` waits for (1 for pool_conn_start, ncmds
/// for pool_conn_start_pipeline); 0 when none is started, for NULL, or for a handle that
/// is not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_started(conn: *const pool_conn_t) -> usize {
    ffi_boundary!(0, {
        conn_table::with(conn_bits(conn), |e| e.conn.started_len()).unwrap_or(0)
    })
}

/// Milliseconds until the deadline of the command started on `conn` (its write deadline
/// while it is not all sent, else its read deadline), rounded up, 0 once it has passed:
/// the timeout for your poll, after which pool_conn_finish fails the command. -1 when it
/// has no deadline (timeouts of 0), no command is started, for NULL, or for a handle
/// that is not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_wait_ms(conn: *const pool_conn_t) -> i64 {
    ffi_boundary!(-1, {
        match conn_table::with(conn_bits(conn), |e| e.conn.started_deadline()) {
            Some(Some(at)) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                let ms = left.as_nanos().div_ceil(1_000_000);
                i64::try_from(ms).unwrap_or(i64::MAX)
            }
            _ => -1,
        }
    })
}

/// Makes progress on the command started on `conn` (pool_conn_start) without waiting:
/// sends what is left of it, then parses what has arrived. POOL_OK: the reply is there,
/// `*reply_out` holds it (the caller frees it with pool_reply_free; a Redis error reply is
/// POOL_OK with type POOL_REPLY_ERROR), and the conn is ready for anything again.
/// POOL_ERR_WOULD_BLOCK: not yet; `*want_out` (may be NULL) says what to poll
/// pool_conn_fd() for (POOL_WANT_READ or POOL_WANT_WRITE; on a TLS conn either may come),
/// then call again. The reply is parsed from whatever arrived: bytes a TLS session holds
/// already decrypted are parsed before it says POOL_ERR_WOULD_BLOCK, so polling the fd
/// then is always right.
///
/// Failures end the command and mark the conn bad, as pool_conn_command's do: POOL_ERR_IO
/// (EOF, an OS or TLS failure, or an i/o timeout: the deadline set at the start passed
/// while the command still waited for the fd), POOL_ERR_PROTOCOL (malformed reply, limits,
/// a push on a RESP2 conn). RESP3 pushes (before, between or right behind the replies)
/// are skipped, or kept for pool_conn_next_push on a conn that keeps pushes, as by
/// pool_conn_command.
/// POOL_ERR_INVALID_ARG, nothing changed: NULL conn or reply_out, a handle that is not
/// checked out, no command started on the conn, or one started with
/// pool_conn_start_pipeline of more than one command (use pool_conn_finish_pipeline).
/// The thread that holds the conn calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_finish(
    conn: *mut pool_conn_t,
    reply_out: *mut *mut pool_reply_t,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_finish"), {
        set_want(want_out, 0);
        if reply_out.is_null() {
            return invalid(err_out, "reply_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *reply_out = std::ptr::null_mut() };
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        let mut n = 0;
        finish(conn, 1, &mut n, want_out, err_out, &mut |reply| {
            into_c(reply).map(|r| {
                // SAFETY: checked non-NULL above; one reply for a one-command start.
                unsafe { *reply_out = r };
            })
        })
    })
}

/// pool_conn_finish for a command started with pool_conn_start_pipeline (or
/// pool_conn_start: a pipeline of one). `replies_out` is the caller's array of `cap`
/// entries, at least pool_conn_started(conn); they are set (NULL first) only when this
/// call returns the replies: POOL_OK with `*nreplies_out` = ncmds, `replies_out[i]` command
/// i's reply (each freed by the caller with pool_reply_free; an error reply is a reply).
/// POOL_ERR_WOULD_BLOCK with `*want_out` as pool_conn_finish's: not all there yet, nothing
/// handed over. A failure (POOL_ERR_IO, POOL_ERR_PROTOCOL: the conn is bad) hands over the
/// replies read before it, `*nreplies_out` says how many (the first ones). Out of memory
/// for one reply's tree once it was read whole leaves that entry NULL and returns
/// POOL_ERR_PROTOCOL with all the others (the conn stays good). POOL_ERR_INVALID_ARG,
/// nothing changed: NULLs, `cap` below the number of commands started, no command
/// started, a handle that is not checked out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_conn_finish_pipeline(
    conn: *mut pool_conn_t,
    replies_out: *mut *mut pool_reply_t,
    cap: usize,
    nreplies_out: *mut usize,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_conn_finish_pipeline"), {
        set_want(want_out, 0);
        if nreplies_out.is_null() {
            return invalid(err_out, "nreplies_out: NULL");
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { *nreplies_out = 0 };
        if replies_out.is_null() {
            return invalid(err_out, "replies_out: NULL");
        }
        if conn.is_null() {
            return invalid(err_out, "conn: NULL");
        }
        let mut n = 0usize;
        let mut i = 0usize;
        let status = finish(conn, cap, &mut n, want_out, err_out, &mut |reply| {
            if i == 0 {
                for j in 0..cap {
                    // SAFETY: `replies_out` has `cap` writable entries per the header.
                    unsafe { *replies_out.add(j) = std::ptr::null_mut() };
                }
            }
            let r = into_c(reply);
            if let Some(r) = r {
                // SAFETY: i < started_len <= cap (checked before finishing).
                unsafe { *replies_out.add(i) = r };
            }
            i += 1;
            r.map(|_| ())
        });
        if i == 0 && status != POOL_ERR_WOULD_BLOCK && status != POOL_ERR_INVALID_ARG {
            for j in 0..cap {
                // SAFETY: `replies_out` has `cap` writable entries per the header.
                unsafe { *replies_out.add(j) = std::ptr::null_mut() };
            }
        }
        // SAFETY: checked non-NULL above.
        unsafe { *nreplies_out = n };
        status
    })
}

/// The body of both finishes: `cap` replies at most; `on_reply` hands one over (None: out
/// of memory for its tree). `*n` counts the replies handed over.
fn finish(
    conn: *mut pool_conn_t,
    cap: usize,
    n: &mut usize,
    want_out: *mut c_int,
    err_out: *mut pool_error_t,
    on_reply: &mut dyn FnMut(Reply) -> Option<()>,
) -> pool_status_t {
    let mut oom = false;
    let res = conn_table::with(conn_bits(conn), |e| {
        let expect = e.conn.started_len();
        if expect > cap {
            return Err(Error::invalid(format!(
                "the command started on this conn waits for {expect} replies: \
                 use pool_conn_finish_pipeline with room for them all"
            )));
        }
        match e.conn.finish(&mut |reply| {
            if on_reply(reply).is_none() {
                oom = true;
            }
            *n += 1;
        }) {
            Ok(p) => Ok(p),
            Err((_, err)) => Err(err),
        }
    });
    match res {
        None => invalid(err_out, NOT_CHECKED_OUT),
        Some(Err(e)) => fail(err_out, &e),
        Some(Ok(Progress::Pending(w))) => {
            set_want(want_out, want_code(w));
            let msg = match w {
                Want::Read => "redis: the reply is not all there yet: poll the fd for POLLIN",
                Want::Write => "redis: the command is not all sent yet: poll the fd for POLLOUT",
            };
            write_error(err_out, POOL_ERR_WOULD_BLOCK, msg);
            POOL_ERR_WOULD_BLOCK
        }
        Some(Ok(Progress::Done)) if oom => fail(
            err_out,
            &Error::Protocol("out of memory: a reply could not be handed over".into()),
        ),
        Some(Ok(Progress::Done)) => POOL_OK,
    }
}
