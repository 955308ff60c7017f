//! Library heap per pooled idle conn (issue "Performance"): at most 256 bytes, its read
//! buffer included, also for a conn that ran commands (the reply parser's 32 KiB buffer is
//! not kept by idle conns). Measured with a byte-counting global allocator: heap bytes
//! still allocated, on every thread, before and after 64 more conns ran a command each and
//! went back idle. Byte counts are deterministic, unlike timings, so they are asserted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::RedisServer;
use redispool::pool::{Conn, ConnPool, Dialer, Options, Wait};
use redispool::redis::resp::Reply;

struct Counting;

/// Heap bytes allocated and not yet freed, by every thread.
static NET: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        NET.fetch_add(layout.size() as i64, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        NET.fetch_add(layout.size() as i64, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as i64, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        NET.fetch_add(new_size as i64 - layout.size() as i64, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes per pooled idle conn the issue allows (256, read buffer included), less
/// what a conn used through the C ABI holds on top of this Rust API's figure: its
/// reserved slot of the handle table (`ffi::conn_table::Slot`, 40 bytes, allocated 1024 at
/// a time). 231 bytes before the conn's rare fields (kept pushes, broken reason) were boxed.
const MAX_BYTES_PER_IDLE_CONN: i64 = 256 - 40;

fn get_n_run_put(p: &ConnPool, n: usize) {
    let mut held: Vec<Conn> = (0..n).map(|_| p.get().unwrap()).collect();
    for c in &mut held {
        // A reply bigger than a PONG, and a command the conn must encode.
        let r = c.command(&[b"SET", b"k", &[b'v'; 100]]).unwrap();
        assert_eq!(r, Reply::Status(b"OK".to_vec()));
        let r = c.command(&[b"GET", b"k"]).unwrap();
        assert_eq!(r, Reply::String(vec![b'v'; 100]));
    }
    for c in held {
        p.put(c).unwrap();
    }
}

#[test]
fn an_idle_conn_that_ran_commands_keeps_at_most_256_heap_bytes() {
    let server = RedisServer::start();
    const MORE: usize = 64;
    let mut o = Options::new(Dialer::from_addr(&server.addr()).unwrap());
    o.pool_size = MORE + 8;
    // One dial thread, started by the warm-up: the conns after it start no new thread.
    o.max_concurrent_dials = 1;
    o.pool_timeout = Wait::For(Duration::from_secs(10));
    let p = ConnPool::new(o).unwrap();
    // Warm-up: the dial thread, this thread's first command, the pool's lists at their
    // capacity for 8 conns.
    get_n_run_put(&p, 8);
    get_n_run_put(&p, 8);
    let before = NET.load(Ordering::SeqCst);
    get_n_run_put(&p, MORE + 8);
    let after = NET.load(Ordering::SeqCst);
    assert_eq!(p.idle_len(), MORE + 8);
    let per_conn = (after - before) / MORE as i64;
    eprintln!("heap per idle conn that ran commands: {per_conn} bytes");
    assert!(
        per_conn <= MAX_BYTES_PER_IDLE_CONN,
        "{per_conn} heap bytes per idle conn (at most {MAX_BYTES_PER_IDLE_CONN})"
    );
    drop(p);
}
