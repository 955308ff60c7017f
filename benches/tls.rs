//! TLS figures, against a redis-server with `--tls-port` and certificates made with the
//! openssl CLI at run time (tests/common/tls.rs):
//!
//!  a. Get + PING (pool_conn_command) + Put through a rediss:// pool, as a percentage of
//!     dedicated per-thread TLS conns (rustls over a TcpStream, the same config: the
//!     physical limit), at 8 and 64 threads, pool size = threads. Rounds alternate.
//!  b. The time one dial takes (TCP connect + TLS handshake + the set-up's PING), p50 and
//!     p99, TLS against plain, through pool_new_conn.
//!  c. Allocations per Get+Put, and per Get+PING+Put, on an idle TLS conn in steady state,
//!     against a plain conn.
//!
//!   cargo bench --bench tls            # full (about a minute)
//!   cargo bench --bench tls -- --quick # short
//!
//! Prints a table and writes bench-results/tls.md. Ratios, never bare numbers, are the
//! figures to compare across machines.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};

use rustls_pki_types::pem::PemObject;
use std::ffi::{CString, c_char};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use redispool::ffi::conn::{pool_conn_command, pool_conn_t};
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::pool::{
    pool_close_conn, pool_free, pool_get, pool_new, pool_new_conn, pool_put, pool_t,
};
use redispool::ffi::reply::{pool_reply_free, pool_reply_t};
use redispool::ffi::status::POOL_OK;

use common::tls::{TlsServer, certs};

// ---- counting allocator (as benches/suite.rs) ----

struct CountingAlloc;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on it.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations per call of `f`, over `n` calls (after `n` warm-up calls).
fn allocs_per(n: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..n {
        f();
    }
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..n {
        f();
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst) as f64 / n as f64
}

// ---- the pool through the C ABI ----

struct CPool(*mut pool_t);
// SAFETY: pool_t is documented thread-safe.
unsafe impl Send for CPool {}
// SAFETY: as above.
unsafe impl Sync for CPool {}

impl CPool {
    /// A pool of `size` conns to `addr`, TLS when `tls`, all dialed before it returns.
    fn new(addr: &str, tls: bool, size: usize) -> CPool {
        let caddr = CString::new(addr).unwrap();
        let ca = CString::new(certs().path("ca.pem")).unwrap();
        // SAFETY: pool_options_init fills every field.
        let mut o: pool_options_t = unsafe {
            let mut o = std::mem::zeroed();
            pool_options_init(&mut o);
            o
        };
        o.addr = caddr.as_ptr();
        o.pool_size = size as i32;
        o.pool_timeout_ms = -1;
        if tls {
            o.tls = true;
            o.tls_ca_file = ca.as_ptr();
        }
        let mut p = std::ptr::null_mut();
        // SAFETY: documented FFI use; pool_new copies the strings.
        assert_eq!(
            unsafe { pool_new(&o, &mut p, std::ptr::null_mut()) },
            POOL_OK
        );
        let pool = CPool(p);
        let conns: Vec<_> = (0..size).map(|_| pool.get()).collect();
        for c in conns {
            pool.put(c);
        }
        pool
    }

    fn get(&self) -> *mut pool_conn_t {
        let mut c = std::ptr::null_mut();
        // SAFETY: live pool, writable out pointer.
        assert_eq!(
            unsafe { pool_get(self.0, &mut c, std::ptr::null_mut()) },
            POOL_OK
        );
        c
    }

    fn put(&self, c: *mut pool_conn_t) {
        // SAFETY: `c` was checked out from this pool.
        assert_eq!(unsafe { pool_put(self.0, c) }, POOL_OK);
    }

    fn ping(&self) {
        let c = self.get();
        ping(c);
        self.put(c);
    }

    /// One dial (pool_new_conn) and close: the time the dial took.
    fn dial_ns(&self) -> u64 {
        let mut c = std::ptr::null_mut();
        let start = Instant::now();
        // SAFETY: live pool, writable out pointer.
        assert_eq!(
            unsafe { pool_new_conn(self.0, &mut c, std::ptr::null_mut()) },
            POOL_OK
        );
        let ns = start.elapsed().as_nanos() as u64;
        // SAFETY: a conn of pool_new_conn, closed once.
        unsafe { pool_close_conn(self.0, c) };
        ns
    }
}

impl Drop for CPool {
    fn drop(&mut self) {
        // SAFETY: nothing is checked out any more.
        unsafe { pool_free(self.0) }
    }
}

fn ping(c: *mut pool_conn_t) {
    let argv: [*const c_char; 1] = [c"PING".as_ptr()];
    let mut reply: *mut pool_reply_t = std::ptr::null_mut();
    // SAFETY: `c` is checked out by this thread; argv holds one C string.
    unsafe {
        let rc = pool_conn_command(
            c,
            1,
            argv.as_ptr(),
            std::ptr::null(),
            &mut reply,
            std::ptr::null_mut(),
        );
        assert_eq!(rc, POOL_OK);
        pool_reply_free(reply);
    }
}

// ---- dedicated TLS conns: rustls over a TcpStream, the same provider and CA ----

fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(certs().path("ca.pem")).unwrap();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Dedicated = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn dedicated(addr: &str, config: &Arc<rustls::ClientConfig>) -> Dedicated {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let c = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(c, tcp);
    dedicated_ping(&mut s);
    s
}

fn dedicated_ping(s: &mut Dedicated) {
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

/// Ops/s of `threads` threads each repeating `op` on its own state for `dur`.
fn rate<S: Send>(threads: usize, dur: Duration, states: Vec<S>, op: impl Fn(&mut S) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let line = Barrier::new(threads + 1);
    let start = thread::scope(|sc| {
        for mut st in states {
            let (stop, total, line, op) = (&stop, &total, &line, &op);
            sc.spawn(move || {
                line.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op(&mut st);
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        line.wait();
        let start = Instant::now();
        thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        start
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e3
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, slice, dials) = if quick {
        (2, Duration::from_millis(500), 100)
    } else {
        (6, Duration::from_secs(1), 400)
    };
    let srv = TlsServer::start();
    let tls_addr = srv.tls_addr();
    let plain_addr = srv.server.addr();
    let config = client_config();
    let mut md = String::from("# TLS figures\n\n");

    // a. Get + PING + Put over TLS vs dedicated TLS conns.
    let _ = writeln!(
        md,
        "## Get + PING + Put over TLS, % of dedicated per-thread TLS conns\n\n\
         | threads | dedicated TLS ops/s | pool TLS ops/s | pool / dedicated |\n|---|---|---|---|"
    );
    println!("a. Get+PING+Put over TLS vs dedicated TLS conns");
    for threads in [8usize, 64] {
        let pool = CPool::new(&tls_addr, true, threads);
        let own: Vec<std::sync::Mutex<Dedicated>> = (0..threads)
            .map(|_| std::sync::Mutex::new(dedicated(&tls_addr, &config)))
            .collect();
        let (mut d_total, mut p_total) = (0.0, 0.0);
        let mut pcts = Vec::new();
        for round in 0..rounds {
            let run_d = || {
                let states: Vec<_> = own.iter().collect();
                rate(threads, slice, states, |m| {
                    dedicated_ping(&mut m.lock().unwrap())
                })
            };
            let run_p = || rate(threads, slice, vec![(); threads], |_| pool.ping());
            let (d, p) = if round % 2 == 0 {
                let d = run_d();
                (d, run_p())
            } else {
                let p = run_p();
                (run_d(), p)
            };
            d_total += d;
            p_total += p;
            pcts.push(100.0 * p / d);
        }
        pcts.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = pcts[pcts.len() / 2];
        let (d, p) = (d_total / rounds as f64, p_total / rounds as f64);
        println!("  {threads:>3} threads: dedicated {d:>9.0}/s  pool {p:>9.0}/s  {pct:5.1} %");
        let _ = writeln!(md, "| {threads} | {d:.0} | {p:.0} | {pct:.1} % |");
    }

    // b. Handshake time per dial.
    println!("b. one dial (connect + handshake + set-up PING), {dials} dials");
    let _ = writeln!(
        md,
        "\n## One dial: connect + TLS handshake + the set-up's PING (pool_new_conn)\n\n\
         | transport | p50 us | p99 us |\n|---|---|---|"
    );
    for (name, addr, tls) in [("plain", &plain_addr, false), ("TLS", &tls_addr, true)] {
        let pool = CPool::new(addr, tls, 1);
        let mut ns: Vec<u64> = (0..dials).map(|_| pool.dial_ns()).collect();
        ns.sort_unstable();
        let (p50, p99) = (percentile(&ns, 0.5), percentile(&ns, 0.99));
        println!("  {name:>5}: p50 {p50:8.1} us  p99 {p99:8.1} us");
        let _ = writeln!(md, "| {name} | {p50:.1} | {p99:.1} |");
    }

    // c. Allocations in steady state.
    println!("c. allocations per call on an idle conn, steady state");
    let _ = writeln!(
        md,
        "\n## Allocations per call, steady state (one thread, one idle conn)\n\n\
         | transport | Get+Put | Get+PING+Put |\n|---|---|---|"
    );
    for (name, addr, tls) in [("plain", &plain_addr, false), ("TLS", &tls_addr, true)] {
        let pool = CPool::new(addr, tls, 1);
        let getput = allocs_per(20_000, || {
            let c = pool.get();
            pool.put(c);
        });
        let getping = allocs_per(5_000, || pool.ping());
        println!("  {name:>5}: Get+Put {getput:.2}  Get+PING+Put {getping:.2}");
        let _ = writeln!(md, "| {name} | {getput:.2} | {getping:.2} |");
    }

    let dir = common::repo_dir().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("tls.md");
    std::fs::write(&path, md).unwrap();
    println!("written: {}", path.display());
}
