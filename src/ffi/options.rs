//! `pool_options_t`: a flat struct of scalars, appended to over time (`struct_size`).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::castable::{Versioned, read_versioned, write_versioned};
use super::conn::pool_free_fn;
use super::status::{POOL_ERR_INTERNAL, POOL_ERR_INVALID_ARG, POOL_OK, pool_status_t};
use crate::pool::{Dialer, Error, Options, Result, Settings};
use crate::redis::tls::TlsSettings;
use crate::redis::url::UrlConfig;

/// A dial callback: return 0 and store a connected stream socket in `*fd_out` (ownership
/// passes to the pool), or return an errno value. `timeout_ms` is the time the attempt may
/// take (0 = unbounded); the session set-up that follows gets what is left of it. The
/// library cannot interrupt this function: it should return within `timeout_ms`. Called
/// from library dial threads, possibly from several at once: it must be thread-safe. It is
/// the only user code a library thread ever runs (with `dialer_userdata_free`). A dial
/// under way when the pool is closed or freed still runs to its end, possibly after
/// pool_close / pool_free has returned (nothing waits for it): keep `dialer_userdata`
/// valid until such calls are over. `dialer_userdata_free` tells you when that is;
/// without it, keep it for the life of the process.
pub type pool_dial_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, timeout_ms: i64, fd_out: *mut c_int) -> c_int,
>;

/// Pool options. Always start with `pool_options_init`, then change fields.
#[repr(C)]
pub struct pool_options {
    /// Set by pool_options_init: lets fields be appended in later versions.
    pub struct_size: usize,
    /// "host:port", "[v6]:port", or a unix socket path ("/..." or "unix:/..."). Copied.
    /// No whitespace anywhere; the port is 1 to 65535 in digits only ("127.0.0.1:+6379",
    /// " 127.0.0.1:6379" and port 0 are POOL_ERR_INVALID_ARG naming the culprit).
    pub addr: *const c_char,
    /// Optional; replaces dialing addr.
    pub dialer: pool_dial_fn,
    /// Passed to dialer as its first argument.
    pub dialer_userdata: *mut c_void,
    /// false: LIFO idle list (default); true: FIFO.
    pub pool_fifo: bool,
    /// Turns: conns checked out plus dials in flight. Default 10 * number of CPUs; 0 = default.
    /// Any value up to INT32_MAX is served: turns are counts, and conns are only made when
    /// asked for (the process's fd limit then bounds them: a dial past it fails with EMFILE).
    pub pool_size: i32,
    /// Idle conns kept ready by background dials. Default 0. At most pool_size. Dialed in
    /// the background by at most max_concurrent_dials threads: pool_new never waits for
    /// them, and a get's own dial goes ahead of them.
    pub min_idle_conns: i32,
    /// Idle conns kept at most; a surplus conn is closed on put. 0 = unlimited.
    pub max_idle_conns: i32,
    /// 0 = unlimited; reaching it -> POOL_ERR_EXHAUSTED at once.
    pub max_active_conns: i32,
    /// Dials running at once, each on a library dial thread (which runs queued dials one
    /// after another and ends when none is left). 0 = min(pool_size, 64). Any value is held to
    /// pool_size and to 1024: a pool never runs more than 1024 dial threads.
    pub max_concurrent_dials: i32,
    /// Bounds one dial attempt as a whole: name resolution, connect, the session set-up
    /// (whatever read_timeout_ms and write_timeout_ms say, 0 included) and, for a sentinel
    /// pool, the ROLE check. Default 5000; 0 = none. Closing the pool ends the attempts in
    /// flight at once (a custom dialer's call excepted).
    pub dial_timeout_ms: i64,
    /// Wait for a turn (and a dial). Default 6000; 0 = do not wait; -1 = wait forever.
    pub pool_timeout_ms: i64,
    /// Idle conns older than this are stale. Default 30 min; 0 (or -1) = none.
    pub conn_max_idle_time_ms: i64,
    /// Conns older than this are stale. Default 0 = none.
    pub conn_max_lifetime_ms: i64,
    /// Spreads expiries uniformly over +/- this much (capped at the lifetime).
    pub conn_max_lifetime_jitter_ms: i64,
    /// Attempts per dial. Default 5; 0 = default.
    pub dialer_retries: i32,
    /// Pause between dial attempts. Default 100; 0 = none.
    pub dialer_retry_backoff_ms: i64,
    /// Redis ACL user for AUTH (needs password). NULL or "" = the default user. Copied.
    pub username: *const c_char,
    /// Redis password: every new conn authenticates (AUTH, or inside HELLO 3). NULL or ""
    /// = no AUTH. Copied; never shown in any message.
    pub password: *const c_char,
    /// CLIENT SETNAME value for every new conn: printable ASCII without spaces, as Redis
    /// requires. NULL or "" = none. Copied.
    pub client_name: *const c_char,
    /// SELECT db on every new conn when non-zero. Default 0.
    pub db: i32,
    /// 2 (default; 0 also means 2) or 3: every new conn sends HELLO 3 and speaks RESP3.
    pub protocol: i32,
    /// Bounds one reply read by pool_conn_command, the session set-up and the PING check.
    /// Default 5000; 0 or -1 = none (the session set-up of a new conn is then still bounded,
    /// by dial_timeout_ms, or 5000 when that is 0 too: it is part of a dial).
    pub read_timeout_ms: i64,
    /// Bounds one command write, as read_timeout_ms. Default 5000; 0 or -1 = none.
    pub write_timeout_ms: i64,
    /// Background reaper interval: closes conns idle past conn_max_idle_time_ms (or past
    /// their lifetime) even when nobody calls get, keeping min_idle_conns. 0 = off (default).
    pub reaper_interval_ms: i64,
    /// A get PINGs an idle conn unused for at least this long before handing it out (on
    /// top of the free socket peek); a conn that does not answer PONG in time is dropped
    /// as stale. In time: within read_timeout_ms and within what is left of the get's own
    /// pool_timeout_ms, whichever ends first; a get with pool_timeout_ms -1 (forever) or 0
    /// still bounds the PING, by dial_timeout_ms (5000 when that is 0), since a new conn
    /// would be ready sooner. A PING that runs out the get's pool_timeout_ms ends the get
    /// with POOL_ERR_TIMEOUT (as a go-redis get out of pool timeout); otherwise the get
    /// goes on with the next idle conn or a dial, within the same pool_timeout_ms.
    /// 0 = never (default).
    pub ping_after_idle_ms: i64,
    /// Leak detection (HikariCP's leakDetectionThreshold): a conn checked out for longer
    /// than this counts in pool_stats_t.leak_suspects (and late_returns once given back)
    /// and is listed by pool_leaks. 0 = off (default); the bookkeeping then costs nothing.
    pub leak_detection_threshold_ms: i64,
    /// Skip the health check's socket peek (one recv syscall) for a conn given back less
    /// than this long ago (HikariCP's alive-bypass window, 500 ms there). 0 = off
    /// (default): a get peeks its conn unless the pool's health sweep vouches for it (one
    /// epoll_wait at most every 0.5 ms answers for all conns: a conn the server closed, or
    /// one with bytes nobody read, at least 1 ms before a get is never handed out; see
    /// docs/performance.md). With a window, a conn closed within it may be handed out
    /// without a peek, and fails its first command instead. A conn
    /// whose fd was asked for (pool_conn_fd) is peeked anyway on its next get, since raw
    /// I/O may have left a reply unread (pool_conn_command never does), and so is a new
    /// conn on its first get (a reply more than its set-up asked for may come late).
    pub health_check_bypass_ms: i64,
    /// How long queued gets may be overtaken, in ms; 5 by default. While the oldest
    /// waiting get has waited less than this, a put leaves its conn idle and wakes that
    /// waiter to take it, and a get that finds the conn idle first takes it at once,
    /// without a context switch (the woken waiter queues again at the front). Once the
    /// oldest has waited this long, puts hand conns over in order again, so no get waits
    /// much longer than this plus its turn (Go's sync.Mutex switches to hand-off after
    /// 1 ms, but a hand-off between threads costs 10-30x a goroutine switch: with 1 ms,
    /// 256 threads on 8 conns spend most of their time handing over). 0 = never: strict
    /// first come, first served; a put hands its conn
    /// straight to the oldest waiting get, so with more threads than conns each get waits
    /// its turn and costs a context switch (about 10x slower; see docs/performance.md and
    /// docs/behaviour.md, "Overtaking").
    pub overtake_window_ms: i64,
    /// The most string data one reply may hold, in bytes: bulk and simple strings, errors,
    /// verbatim strings, big numbers and double texts, counted over the whole reply (nested
    /// elements and RESP3 attributes included). A length announcing more is refused at once,
    /// before its bytes come. 0 = the default, 512 MiB (Redis's own proto-max-bulk-len:
    /// any string a default Redis stores fits). A reply past it fails the command with
    /// POOL_ERR_PROTOCOL and the conn is closed (its stream is out of step). Running out of
    /// memory while reading a reply fails the same way; it never aborts the process.
    pub max_reply_bytes: i64,
    /// The most elements one reply may have, counted as max_reply_bytes: every value,
    /// aggregate and attribute, nested ones included (a map entry counts 2). An aggregate
    /// announcing more is refused at its header. 0 = the default, 16777216 (2^24): an element
    /// costs 32 bytes in the reply tree (64 more in a pool_reply_t) however small it is on the
    /// wire, so this bounds a tree of small elements as max_reply_bytes bounds string data.
    /// Past it: POOL_ERR_PROTOCOL, the conn closed.
    pub max_reply_elements: i64,
    /// Called with `dialer_userdata` exactly once, when the pool no longer needs it: after
    /// pool_free, once the last dial has returned and nothing holds the pool any more (no
    /// conn checked out, no call running). It runs on the thread that lets the pool go:
    /// the pool_free caller, a library dial thread, or the thread of the last call or
    /// pool_put on the pool. Only for a pool pool_new created: when pool_new fails it is
    /// not called and the userdata stays yours. Called once per pool made with these
    /// options. NULL = nothing is called (default). Ignored without `dialer`.
    pub dialer_userdata_free: pool_free_fn,
    /// Speak TLS on every conn (rediss:// sets it): over the TCP connection, the unix
    /// socket, or the fd `dialer` returns. false = plain (default). The TLS settings below
    /// are read only when this is set; they are checked and loaded once, by pool_new*: a
    /// missing or malformed PEM file, a key that does not match its certificate, or a bad
    /// tls_min_version is POOL_ERR_INVALID_ARG there, never a failure of a later get. A
    /// handshake that fails (the server's certificate refused, not a TLS port) fails the
    /// get with POOL_ERR_TLS, within dial_timeout_ms. See docs/tls.md.
    pub tls: bool,
    /// PEM file of the CA certificates that sign the server's certificate. NULL or "" (and
    /// no tls_ca_dir) = the system trust store. Copied (the path; read by pool_new*).
    pub tls_ca_file: *const c_char,
    /// Directory of PEM files of CA certificates (every regular file holding certificates
    /// is read; others are skipped). With tls_ca_file, both are trusted. NULL or "" = none.
    pub tls_ca_dir: *const c_char,
    /// PEM file of the client certificate (chain) for mutual TLS (redis-server
    /// --tls-auth-clients yes). Needs tls_key_file. NULL or "" = no client certificate.
    pub tls_cert_file: *const c_char,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1), not
    /// encrypted. Its contents never appear in a message.
    pub tls_key_file: *const c_char,
    /// The name the server's certificate must be valid for, also sent as SNI. NULL or "" =
    /// the host dialed (the host of addr; for a sentinel pool the master's address).
    /// Required with a unix socket addr or a dialer, unless tls_insecure_skip_verify.
    pub tls_server_name: *const c_char,
    /// The oldest TLS version accepted: 12 (TLS 1.2; 0 also means 12, the default) or 13.
    pub tls_min_version: i32,
    /// DANGER: accept any server certificate, unverified (no CA, name or expiry check). The
    /// conn is encrypted but anyone on the path can pose as the server and read everything,
    /// the password included. For tests against self-signed servers only. false (default)
    /// = verify.
    pub tls_insecure_skip_verify: bool,
}

pub type pool_options_t = pool_options;

impl pool_options {
    /// The defaults (`Settings::default`, the core's).
    pub(crate) fn defaults() -> Self {
        Self::with_settings(
            &Settings::default(),
            std::ptr::null(),
            [std::ptr::null(); 3],
        )
    }

    /// `s` as the C struct; the strings are the caller's (`addr`, then `username`,
    /// `password`, `client_name`), no dialer.
    fn with_settings(s: &Settings, addr: *const c_char, strings: [*const c_char; 3]) -> Self {
        let [username, password, client_name] = strings;
        pool_options {
            struct_size: size_of::<pool_options>(),
            addr,
            dialer: None,
            dialer_userdata: std::ptr::null_mut(),
            pool_fifo: s.pool_fifo,
            pool_size: s.pool_size,
            min_idle_conns: s.min_idle_conns,
            max_idle_conns: s.max_idle_conns,
            max_active_conns: s.max_active_conns,
            max_concurrent_dials: s.max_concurrent_dials,
            dial_timeout_ms: s.dial_timeout_ms,
            pool_timeout_ms: s.pool_timeout_ms,
            conn_max_idle_time_ms: s.conn_max_idle_time_ms,
            conn_max_lifetime_ms: s.conn_max_lifetime_ms,
            conn_max_lifetime_jitter_ms: s.conn_max_lifetime_jitter_ms,
            dialer_retries: s.dialer_retries,
            dialer_retry_backoff_ms: s.dialer_retry_backoff_ms,
            username,
            password,
            client_name,
            db: s.db,
            protocol: s.protocol,
            read_timeout_ms: s.read_timeout_ms,
            write_timeout_ms: s.write_timeout_ms,
            reaper_interval_ms: s.reaper_interval_ms,
            ping_after_idle_ms: s.ping_after_idle_ms,
            leak_detection_threshold_ms: s.leak_detection_threshold_ms,
            health_check_bypass_ms: s.health_check_bypass_ms,
            overtake_window_ms: s.overtake_window_ms,
            max_reply_bytes: s.max_reply_bytes,
            max_reply_elements: s.max_reply_elements,
            dialer_userdata_free: None,
            tls: false,
            tls_ca_file: std::ptr::null(),
            tls_ca_dir: std::ptr::null(),
            tls_cert_file: std::ptr::null(),
            tls_key_file: std::ptr::null(),
            tls_server_name: std::ptr::null(),
            tls_min_version: 0,
            tls_insecure_skip_verify: false,
        }
    }
}

// SAFETY: repr(C), struct_size first; every field is an integer, a pointer or an
// Option<fn> except `pool_fifo`, `tls` and `tls_insecure_skip_verify`, bools, which
// `fix_bytes` normalises.
unsafe impl Versioned for pool_options {
    const NAME: &'static str = "pool_options_t";
    const HINT: &'static str = "call pool_options_init first";
    /// The first version's fields end at `write_timeout_ms`.
    const MIN_SIZE: usize = std::mem::offset_of!(pool_options, write_timeout_ms) + size_of::<i64>();
    fn defaults() -> Self {
        pool_options::defaults()
    }
    unsafe fn fix_bytes(base: *mut u8, n: usize) {
        for at in [
            std::mem::offset_of!(pool_options, pool_fifo),
            std::mem::offset_of!(pool_options, tls),
            std::mem::offset_of!(pool_options, tls_insecure_skip_verify),
        ] {
            if at < n {
                // SAFETY: byte `at` of the struct was copied (at < n), so it is
                // initialised; a C bool byte other than 0/1 would be an invalid Rust bool.
                unsafe {
                    let flag = base.add(at);
                    *flag = u8::from(*flag != 0);
                }
            }
        }
    }
}

/// Fills every field of `*opts` with its default, including `struct_size`, writing
/// sizeof(pool_options_t) of the library. NULL is ignored. Any thread; never blocks.
/// C code calls it through the pool_options_init macro (at the end of this header), which
/// is pool_options_init_size with the sizeof its header gives, so a program built against
/// an older header is never written past its struct. Bindings that load the symbol
/// directly pin the struct's layout in their tests.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_options_init(opts: *mut pool_options_t) {
    super::panic::ffi_boundary!((), {
        if !opts.is_null() {
            // SAFETY: the caller passes a writable pool_options_t (checked non-NULL).
            let _ = unsafe {
                write_versioned(pool_options::defaults(), opts, size_of::<pool_options>())
            };
        }
    })
}

/// Fills the first `size` bytes of `*opts` (a pool_options_t of `size` bytes: the sizeof
/// of the header it was compiled with) with the defaults, `struct_size` set to what was
/// written (at most sizeof(pool_options_t)); nothing past `size` is written.
/// POOL_ERR_INVALID_ARG, writing nothing, for NULL or a `size` below the first version's.
/// `pool_options_init(opts)` is this with sizeof(pool_options_t). Any thread; never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_options_init_size(
    opts: *mut pool_options_t,
    size: usize,
) -> pool_status_t {
    super::panic::ffi_boundary!(POOL_ERR_INTERNAL, {
        if opts.is_null() {
            return POOL_ERR_INVALID_ARG;
        }
        // SAFETY: the caller's struct is writable for `size` bytes per the header.
        match unsafe { write_versioned(pool_options::defaults(), opts, size) } {
            Ok(_) => POOL_OK,
            Err(_) => POOL_ERR_INVALID_ARG,
        }
    })
}

/// The caller's struct, its unknown tail ignored and a missing tail defaulted.
///
/// # Safety
/// `opts` is non-NULL and points to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_options(opts: *const pool_options_t) -> Result<pool_options> {
    // SAFETY: per contract.
    unsafe { read_versioned(opts) }.map_err(Error::invalid)
}

/// A C string option, or None for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_str<'a>(p: *const c_char, field: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: per contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| Error::invalid(format!("{field}: not valid UTF-8")))
}

struct CDialer {
    f: unsafe extern "C" fn(*mut c_void, i64, *mut c_int) -> c_int,
    userdata: *mut c_void,
    /// `dialer_userdata_free`, run when the dialer is dropped (with the pool's state, after
    /// its last dial) once `armed`.
    free: pool_free_fn,
    armed: AtomicBool,
}

impl Drop for CDialer {
    fn drop(&mut self) {
        if let Some(free) = self.free
            && *self.armed.get_mut()
        {
            // SAFETY: the user's destructor of its own userdata, called once, as the
            // header describes.
            unsafe { free(self.userdata) };
        }
    }
}

/// Hands `dialer_userdata` over to the pool: once armed, the dialer calls
/// `dialer_userdata_free` when it is dropped. Arm only a pool that was created.
pub(crate) struct UserdataOwner(Arc<CDialer>);

impl UserdataOwner {
    pub(crate) fn arm(self) {
        self.0.armed.store(true, Ordering::Release);
    }
}

// SAFETY: the header requires dial callbacks and their userdata to be usable from any thread.
unsafe impl Send for CDialer {}
// SAFETY: as above.
unsafe impl Sync for CDialer {}

impl CDialer {
    fn dial(&self, timeout: Option<Duration>) -> io::Result<OwnedFd> {
        let ms = timeout.map_or(0, |t| t.as_millis().clamp(1, i64::MAX as u128) as i64);
        let mut fd: c_int = -1;
        // SAFETY: calling the user's callback as its contract in the header describes.
        let rc = unsafe { (self.f)(self.userdata, ms, &mut fd) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "dialer returned 0 but no valid fd",
            ));
        }
        // SAFETY: the callback contract passes ownership of a valid fd to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Converts and validates the C options into core options, naming the bad field.
///
/// # Safety
/// String pointers in `o` are NULL or NUL-terminated.
pub(crate) unsafe fn to_core(o: &pool_options) -> Result<Options> {
    // SAFETY: per contract.
    unsafe { to_core_owning(o) }.map(|(opts, _)| opts)
}

/// `to_core`, and for a `dialer_userdata_free` the means to arm it once the pool exists.
///
/// # Safety
/// As `to_core`.
pub(crate) unsafe fn to_core_owning(o: &pool_options) -> Result<(Options, Option<UserdataOwner>)> {
    let mut owner = None;
    let dialer = match o.dialer {
        Some(f) => {
            let d = Arc::new(CDialer {
                f,
                userdata: o.dialer_userdata,
                free: o.dialer_userdata_free,
                armed: AtomicBool::new(false),
            });
            if o.dialer_userdata_free.is_some() {
                owner = Some(UserdataOwner(d.clone()));
            }
            Some(Dialer::Custom(Arc::new(move |t| d.dial(t))))
        }
        None => None,
    };
    // The address is not read when a dialer replaces it.
    let addr = match dialer {
        Some(_) => None,
        // SAFETY: per contract.
        None => unsafe { c_str(o.addr, "addr") }?,
    };
    // SAFETY: per contract, for each of the three strings.
    let (username, password, client_name) = unsafe {
        (
            c_str(o.username, "username")?,
            c_str(o.password, "password")?,
            c_str(o.client_name, "client_name")?,
        )
    };
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let settings = Settings {
        addr: owned(addr),
        pool_fifo: o.pool_fifo,
        pool_size: o.pool_size,
        min_idle_conns: o.min_idle_conns,
        max_idle_conns: o.max_idle_conns,
        max_active_conns: o.max_active_conns,
        max_concurrent_dials: o.max_concurrent_dials,
        dial_timeout_ms: o.dial_timeout_ms,
        pool_timeout_ms: o.pool_timeout_ms,
        conn_max_idle_time_ms: o.conn_max_idle_time_ms,
        conn_max_lifetime_ms: o.conn_max_lifetime_ms,
        conn_max_lifetime_jitter_ms: o.conn_max_lifetime_jitter_ms,
        dialer_retries: o.dialer_retries,
        dialer_retry_backoff_ms: o.dialer_retry_backoff_ms,
        username: owned(username),
        password: owned(password),
        client_name: owned(client_name),
        db: o.db,
        protocol: o.protocol,
        read_timeout_ms: o.read_timeout_ms,
        write_timeout_ms: o.write_timeout_ms,
        reaper_interval_ms: o.reaper_interval_ms,
        ping_after_idle_ms: o.ping_after_idle_ms,
        leak_detection_threshold_ms: o.leak_detection_threshold_ms,
        health_check_bypass_ms: o.health_check_bypass_ms,
        overtake_window_ms: o.overtake_window_ms,
        max_reply_bytes: o.max_reply_bytes,
        max_reply_elements: o.max_reply_elements,
        tls: if o.tls {
            // SAFETY: per contract.
            Some(unsafe { tls_settings(o) }?)
        } else {
            None
        },
    };
    let opts = settings.into_options(dialer)?;
    Ok((opts, owner))
}

/// The `tls_*` fields.
///
/// # Safety
/// As `to_core`.
pub(crate) unsafe fn tls_settings(o: &pool_options) -> Result<TlsSettings> {
    let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    // SAFETY: per contract, for each string.
    let s = unsafe {
        TlsSettings {
            ca_file: owned(c_str(o.tls_ca_file, "tls_ca_file")?),
            ca_dir: owned(c_str(o.tls_ca_dir, "tls_ca_dir")?),
            cert_file: owned(c_str(o.tls_cert_file, "tls_cert_file")?),
            key_file: owned(c_str(o.tls_key_file, "tls_key_file")?),
            server_name: owned(c_str(o.tls_server_name, "tls_server_name")?),
            min_version: match o.tls_min_version {
                0 | 12 => 12,
                13 => 13,
                v => {
                    return Err(Error::invalid(format!(
                        "tls_min_version: {v} is not 12 (TLS 1.2) or 13 (TLS 1.3)"
                    )));
                }
            },
            insecure_skip_verify: o.tls_insecure_skip_verify,
        }
    };
    Ok(s)
}

/// The C options a URL stands for (`Settings::from_url`), and the strings they point into
/// (keep both alive together). Fields the URL does not mention keep their defaults. Not
/// on the path of `pool_new_url` (which parses straight into core options): the fuzz
/// target cross-checks the two paths with it.
pub(crate) fn options_from_url(cfg: &UrlConfig) -> Result<(pool_options, Vec<CString>)> {
    let s = Settings::from_url(cfg);
    let mut strings = Vec::new();
    let mut keep = |v: &Option<String>, field: &str| -> Result<*const c_char> {
        let Some(v) = v else {
            return Ok(std::ptr::null());
        };
        let c = CString::new(v.as_str())
            .map_err(|_| Error::invalid(format!("{field}: contains a NUL byte")))?;
        let p = c.as_ptr();
        strings.push(c);
        Ok(p)
    };
    let addr = keep(&s.addr, "addr")?;
    let texts = [
        keep(&s.username, "username")?,
        keep(&s.password, "password")?,
        keep(&s.client_name, "client_name")?,
    ];
    let mut o = pool_options::with_settings(&s, addr, texts);
    if let Some(t) = &s.tls {
        o.tls = true;
        o.tls_insecure_skip_verify = t.insecure_skip_verify;
        o.tls_min_version = i32::from(t.min_version);
        o.tls_ca_file = keep(&t.ca_file, "tls_ca_file")?;
        o.tls_ca_dir = keep(&t.ca_dir, "tls_ca_dir")?;
        o.tls_cert_file = keep(&t.cert_file, "tls_cert_file")?;
        o.tls_key_file = keep(&t.key_file, "tls_key_file")?;
        o.tls_server_name = keep(&t.server_name, "tls_server_name")?;
    }
    Ok((o, strings))
}
