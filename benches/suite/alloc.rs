//! The counting global allocator sections c reads.

/// Wraps the system allocator; while `COUNTING` is on it counts allocations (alloc,
/// alloc_zeroed and realloc each count one) and the bytes allocated and freed, on every
/// thread of the process.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub(crate) struct CountingAlloc;

pub(crate) static COUNTING: AtomicBool = AtomicBool::new(false);
pub(crate) static ALLOCS: AtomicU64 = AtomicU64::new(0);
pub(crate) static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static FREED_BYTES: AtomicU64 = AtomicU64::new(0);

pub(crate) fn note_alloc(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

pub(crate) fn note_free(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        FREED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on it.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
pub(crate) static GLOBAL: CountingAlloc = CountingAlloc;

/// What the allocator counted between `start` and `stop`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AllocCount {
    pub(crate) allocs: u64,
    pub(crate) bytes: u64,
    pub(crate) freed: u64,
}

impl AllocCount {
    /// Bytes still allocated (allocated minus freed in the window).
    pub(crate) fn net(&self) -> i64 {
        self.bytes as i64 - self.freed as i64
    }
}

pub(crate) fn count_start() {
    ALLOCS.store(0, Ordering::SeqCst);
    ALLOC_BYTES.store(0, Ordering::SeqCst);
    FREED_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

pub(crate) fn count_stop() -> AllocCount {
    COUNTING.store(false, Ordering::SeqCst);
    AllocCount {
        allocs: ALLOCS.load(Ordering::SeqCst),
        bytes: ALLOC_BYTES.load(Ordering::SeqCst),
        freed: FREED_BYTES.load(Ordering::SeqCst),
    }
}
