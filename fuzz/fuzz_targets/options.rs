//! `pool_new` with a `pool_options_t` built from the input: every field, `struct_size`
//! (shorter than the first version, cutting a field, or longer than this library knows),
//! `pool_fifo` as any byte a C `bool` may hold, the strings NULL, empty, not UTF-8 or
//! arbitrary, the address or a dial callback.
//!
//! The pool never dials: min_idle_conns is only left above 0 where it is invalid anyway
//! (more than pool_size), nothing calls get, and the dial callback aborts if it is ever
//! called. `pool_new` must return POOL_OK (a pool, `err_out` untouched) or
//! POOL_ERR_INVALID_ARG (no pool, a NUL-terminated, non-empty UTF-8 message that does not
//! show the password), and agree with the same options run through the conversion and
//! checks directly (`redispool::fuzzing::core_options`, over the struct as
//! `read_options` documents it: the caller's first `struct_size` bytes over the defaults).
//! A pool made is closed (twice: the second says POOL_ERR_CLOSED) and freed.
#![no_main]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::mem::{MaybeUninit, offset_of, size_of};

use libfuzzer_sys::fuzz_target;
use redispool::ffi::error::pool_error_t;
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{pool_close, pool_free, pool_idle_len, pool_len, pool_new, pool_t};
use redispool::ffi::status::{POOL_ERR_CLOSED, POOL_ERR_INVALID_ARG, POOL_OK};
use redispool::fuzzing::core_options;
use redispool::pool::default_pool_size;

/// The first version of the struct ends at `write_timeout_ms` (the header says so).
const MIN_SIZE: usize = offset_of!(pool_options_t, write_timeout_ms) + size_of::<i64>();
const FULL: usize = size_of::<pool_options_t>();
/// Readable bytes past the struct, for a caller built against a longer (newer) struct.
const TAIL: usize = 64;

unsafe extern "C" fn never_dial(_: *mut c_void, _: i64, _: *mut c_int) -> c_int {
    eprintln!("the options target's pool dialed: min_idle_conns or a get slipped through");
    std::process::abort();
}

/// Reads the input front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.bytes(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }
    /// A value chosen among the boundaries, or raw: `keep` leaves the default.
    fn i64(&mut self, default: i64, min: i64, max: i64) -> i64 {
        match self.u8() % 10 {
            0 | 1 => default,
            2 => 0,
            3 => -1,
            4 => 1,
            5 => max,
            6 => min,
            7 => i64::from(self.u8()),
            8 => -i64::from(self.u8()),
            _ => self.u64() as i64,
        }
    }
    fn i32(&mut self, default: i32) -> i32 {
        self.i64(default.into(), i32::MIN.into(), i32::MAX.into()) as i32
    }
    fn ms(&mut self, default: i64) -> i64 {
        self.i64(default, i64::MIN, i64::MAX)
    }
    /// NULL, "", or bytes of the input (cut at a NUL: a C string ends there).
    fn string(&mut self) -> Option<CString> {
        match self.u8() % 4 {
            0 => None,
            1 => Some(CString::default()),
            _ => {
                let n = usize::from(self.u8());
                let raw = self.bytes(n);
                let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
                Some(CString::new(raw).unwrap())
            }
        }
    }
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_deref().map_or(std::ptr::null(), CStr::as_ptr)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut o = MaybeUninit::<pool_options_t>::uninit();
    // SAFETY: pool_options_init fills every field.
    let mut o = unsafe {
        pool_options_init(o.as_mut_ptr());
        o.assume_init()
    };
    let d = o.struct_size;
    let struct_size = match input.u8() % 6 {
        0 | 1 => d,
        2 => MIN_SIZE,
        3 => d + usize::from(input.u8()) % (TAIL + 1),
        4 => usize::from(input.u8()) % (d + 1),
        _ => input.u64() as usize,
    };
    let addr = match input.u8() % 5 {
        0 => None,
        1 => Some(c"127.0.0.1:1".to_owned()),
        2 => Some(c"unix:/tmp/redispool-fuzz-never-dialed.sock".to_owned()),
        _ => input.string(),
    };
    let fifo_byte = match input.u8() % 3 {
        0 => 0,
        1 => 1,
        _ => input.u8(),
    };
    let use_dialer = input.u8() % 3 == 0;
    o.pool_size = input.i32(o.pool_size);
    let min_idle = input.i32(o.min_idle_conns);
    o.max_idle_conns = input.i32(o.max_idle_conns);
    o.max_active_conns = input.i32(o.max_active_conns);
    o.max_concurrent_dials = input.i32(o.max_concurrent_dials);
    o.dial_timeout_ms = input.ms(o.dial_timeout_ms);
    o.pool_timeout_ms = input.ms(o.pool_timeout_ms);
    o.conn_max_idle_time_ms = input.ms(o.conn_max_idle_time_ms);
    o.conn_max_lifetime_ms = input.ms(o.conn_max_lifetime_ms);
    o.conn_max_lifetime_jitter_ms = input.ms(o.conn_max_lifetime_jitter_ms);
    o.dialer_retries = input.i32(o.dialer_retries);
    o.dialer_retry_backoff_ms = input.ms(o.dialer_retry_backoff_ms);
    let username = input.string();
    let password = input.string();
    let client_name = input.string();
    o.db = input.i32(o.db);
    o.protocol = match input.u8() % 4 {
        0 => o.protocol,
        1 => 3,
        2 => 0,
        _ => input.i32(o.protocol),
    };
    o.read_timeout_ms = input.ms(o.read_timeout_ms);
    o.write_timeout_ms = input.ms(o.write_timeout_ms);
    o.reaper_interval_ms = input.ms(o.reaper_interval_ms);
    o.ping_after_idle_ms = input.ms(o.ping_after_idle_ms);
    o.leak_detection_threshold_ms = input.ms(o.leak_detection_threshold_ms);
    o.health_check_bypass_ms = input.ms(o.health_check_bypass_ms);
    o.overtake_window_ms = input.ms(o.overtake_window_ms);
    o.max_reply_bytes = input.ms(o.max_reply_bytes);
    o.max_reply_elements = input.ms(o.max_reply_elements);
    // Background dials start when 0 < min_idle_conns <= pool_size (0 = the default size);
    // above pool_size, or negative, it is refused before anything starts.
    let pool_size = match o.pool_size {
        0 => default_pool_size() as i64,
        n => i64::from(n),
    };
    o.min_idle_conns = if min_idle > 0 && i64::from(min_idle) <= pool_size {
        0
    } else {
        min_idle
    };
    o.struct_size = struct_size;
    o.addr = ptr(&addr);
    o.username = ptr(&username);
    o.password = ptr(&password);
    o.client_name = ptr(&client_name);
    if use_dialer {
        o.dialer = Some(never_dial);
        o.dialer_userdata = std::ptr::without_provenance_mut(0x1234);
    }

    let outcome = run(&o, fifo_byte, "");
    // The password must not show. A message may contain it by chance: in fixed text ("pass"
    // in "password"), or in another field that quotes the same characters (an addr holding
    // them is the caller's addr, shown as such). So the options are tried again with a
    // password of the same length that no fixed text contains and no other field holds.
    let pw = password.as_ref().and_then(|p| p.to_str().ok());
    if let (Err(msg), Some(pw)) = (&outcome, pw)
        && !pw.is_empty()
        && msg.contains(pw)
    {
        let others: Vec<&[u8]> = [&addr, &username, &client_name]
            .into_iter()
            .flatten()
            .map(|s| s.as_bytes())
            .collect();
        let marker = ["QZJ", "ZJQ", "JQZ", "QJZ", "ZQJ", "JZQ"]
            .iter()
            .map(|m| m.repeat(pw.len())[..pw.len()].to_owned())
            .find(|m| {
                !others
                    .iter()
                    .any(|o| o.windows(m.len()).any(|w| w == m.as_bytes()))
            });
        if let Some(marker) = marker {
            let marker = CString::new(marker).unwrap();
            o.password = marker.as_ptr();
            if let Err(msg) = run(&o, fifo_byte, "again, ") {
                assert!(
                    !msg.contains(marker.to_str().unwrap()),
                    "password shown: {msg:?}"
                );
            }
        }
    }
});

/// `pool_new` on `o` (with `pool_fifo` set to `fifo_byte`, whatever byte it is) and the
/// conversion of the options as read; both must agree. Ok, or the message.
fn run(o: &pool_options_t, fifo_byte: u8, what: &str) -> Result<(), String> {
    // The caller's struct: the options, then a tail of junk a newer struct would have.
    // u64 words for the struct's alignment; exactly `struct_size` bytes when that is no
    // more than the struct and its tail, so ASan sees any read past it.
    let bytes = o.struct_size.clamp(1, FULL + TAIL);
    let mut words = vec![0xA5A5_A5A5_A5A5_A5A5u64; bytes.div_ceil(8).max(FULL.div_ceil(8))];
    let base = words.as_mut_ptr().cast::<u8>();
    // SAFETY: `words` holds at least FULL bytes, suitably aligned for pool_options_t; the
    // bool is written as a plain byte (any value a C caller may store), never read as a
    // Rust bool here.
    unsafe {
        std::ptr::copy_nonoverlapping((o as *const pool_options_t).cast::<u8>(), base, FULL);
        *base.add(offset_of!(pool_options_t, pool_fifo)) = fifo_byte;
    }
    words.truncate(bytes.div_ceil(8));
    words.shrink_to_fit();
    let base = words.as_mut_ptr().cast::<u8>();

    // What `pool_new` should decide: the caller's first struct_size bytes over the defaults,
    // pool_fifo normalised to 0/1, then the conversion and its checks.
    let expected = if o.struct_size < MIN_SIZE {
        None
    } else {
        let mut eff = MaybeUninit::<pool_options_t>::uninit();
        // SAFETY: filled by pool_options_init, then overwritten with at most FULL bytes of
        // the caller's struct (all initialised); the bool byte is normalised before the
        // struct is read as Rust values.
        let eff = unsafe {
            pool_options_init(eff.as_mut_ptr());
            let dst = eff.as_mut_ptr().cast::<u8>();
            std::ptr::copy_nonoverlapping(base, dst, o.struct_size.min(FULL));
            let fifo = dst.add(offset_of!(pool_options_t, pool_fifo));
            *fifo = u8::from(*fifo != 0);
            eff.assume_init()
        };
        // SAFETY: the strings are NUL-terminated or NULL (kept alive by the caller), the
        // dialer is `never_dial`, which is never called here.
        Some(
            unsafe { core_options(&eff) }
                .map(|_| ())
                .map_err(|e| e.to_string()),
        )
    };

    let mut pool: *mut pool_t = std::ptr::dangling_mut();
    let mut err = pool_error_t {
        code: -1,
        message: [0x55; 256],
    };
    // SAFETY: `base` holds the options (and struct_size readable bytes, or at least the
    // whole struct); the out-pointers are writable.
    let rc = unsafe { pool_new(base.cast::<pool_options_t>(), &mut pool, &mut err) };
    let outcome = if rc == POOL_OK {
        assert!(!pool.is_null(), "{what}POOL_OK without a pool");
        assert_eq!(err.code, -1, "{what}err_out written on success");
        // SAFETY: the live pool just made; freed once, last.
        unsafe {
            assert_eq!(pool_len(pool), 0);
            assert_eq!(pool_idle_len(pool), 0);
            assert_eq!(pool_close(pool), POOL_OK);
            assert_eq!(pool_close(pool), POOL_ERR_CLOSED);
            pool_free(pool);
        }
        Ok(())
    } else {
        assert_eq!(rc, POOL_ERR_INVALID_ARG, "{what}status {rc}");
        assert!(pool.is_null(), "{what}a pool on failure");
        assert_eq!(err.code, rc);
        // SAFETY: c_char and u8 have the same layout.
        let bytes: &[u8; 256] = unsafe { &*(&raw const err.message).cast() };
        let msg = CStr::from_bytes_until_nul(bytes).expect("message is NUL-terminated");
        let msg = msg.to_str().expect("message is UTF-8");
        assert!(!msg.is_empty(), "{what}empty message");
        Err(msg.to_owned())
    };
    match expected {
        None => {
            let msg = outcome
                .as_ref()
                .expect_err("struct_size below the first version");
            assert!(msg.starts_with("struct_size:"), "{msg}");
        }
        Some(expected) => {
            let expected = expected.map_err(|m| {
                let mut end = m.len().min(255);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                m[..end].to_owned()
            });
            assert_eq!(outcome, expected, "{what}pool_new vs the conversion");
        }
    }
    drop(words);
    outcome
}
