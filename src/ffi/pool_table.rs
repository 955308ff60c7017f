//! The table behind `pool_t *` handles, as `conn_table` is behind `pool_conn_t *`.
//!
//! A pool handle encodes (slot index, generation) with the top two bits set: it is never a
//! valid user-space address and is never dereferenced. Its slot lives in memory that is
//! never freed, so a handle can always be looked at: after pool_free its slot's generation
//! or phase no longer match it, and a call with it is refused instead of reading freed
//! memory. That is what makes every pool_free misuse detected rather than undefined: a
//! second pool_free, a call after it, and a call racing with it.
//!
//! The slot's state word is `(generation << 32) | (entering << 2) | phase`. A call takes
//! its own strong count of the pool (`enter`) by raising `entering` with a
//! compare-exchange that also checks the generation and the LIVE phase, clones the `Arc`,
//! and lowers `entering` again. pool_free (`remove`) moves LIVE to FREE only while
//! `entering` is 0 (it waits out the few instructions of a clone in progress), then takes
//! the `Arc` out. So a call either got its count before the handle was freed (and the pool
//! lives until that call returns) or sees a dead handle: there is no window in between.
//!
//! `enter` writes the slot's line, so the hot path avoids it: a get after a put on the same
//! thread uses the count parked by that put (see `pool::Held`) and does not look at the
//! table at all. (So a thread whose parked count came through a handle freed since by
//! another thread acts once more on the pool, closed by that free, before its count goes:
//! still never in freed memory.) Slots are a cache line each so that pools never share one.
//!
//! Slots are allocated as in `conn_table` (lock-free, fork-safe: a Treiber stack of free
//! slots and a counter of never-used ones) and never freed; at most `MAX_SLOTS` pool
//! handles exist at once, process-wide.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::conn_table::sync::{AtomicU32, AtomicU64};
use super::conn_table::{FreeList, fresh_index};
use super::pool::PoolObj;

const CHUNK_BITS: u32 = 6;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const INDEX_BITS: u32 = 20;
const MAX_SLOTS: usize = 1 << INDEX_BITS;
const MAX_CHUNKS: usize = MAX_SLOTS / CHUNK_LEN;
/// Set in every pool handle: bit 63 as conn handles, bit 62 for a pool.
const TAG: u64 = 3 << 62;
const GEN_SHIFT: u32 = 32;
const ENTERING_ONE: u64 = 1 << 2;
const ENTERING_MASK: u64 = ((1 << 30) - 1) << 2;

const FREE: u64 = 0;
const LIVE: u64 = 1;
const PHASE_MASK: u64 = 3;

#[repr(align(64))]
#[derive(Default)]
struct Slot {
    /// `(generation << 32) | (entering << 2) | phase`.
    state: AtomicU64,
    /// Some while LIVE. Written only by the thread that holds the slot FREE and off the
    /// free list (`insert`), or that moved it LIVE -> FREE (`remove`); read by `enter`
    /// while its raised `entering` keeps `remove` out.
    obj: UnsafeCell<Option<Arc<PoolObj>>>,
    /// The free-list link while the slot is free.
    next_free: AtomicU32,
}

// SAFETY: `obj` is only accessed under the protocol on `state` described above, with
// Acquire/Release on `state` ordering the accesses; everything else is atomic.
unsafe impl Sync for Slot {}

#[repr(transparent)]
struct Chunk {
    slots: [Slot; CHUNK_LEN],
}

struct Table {
    chunks: [AtomicPtr<Chunk>; MAX_CHUNKS],
    next: AtomicU32,
    free: FreeList,
}

#[cfg(not(loom))]
static TABLE: Table = Table {
    chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS],
    next: AtomicU32::new(0),
    free: FreeList::new(),
};

/// loom's atomics cannot be built in a `static`: under `--cfg loom` the table only has to
/// compile (see `conn_table`).
#[cfg(loom)]
static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
    chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
    next: AtomicU32::new(0),
    free: FreeList::new(),
});

fn slot(index: usize) -> Option<&'static Slot> {
    let chunk = TABLE
        .chunks
        .get(index >> CHUNK_BITS)?
        .load(Ordering::Acquire);
    // SAFETY: a chunk pointer is null or came from `Box::into_raw` in `install_chunk`,
    // published with a Release compare-exchange (read with Acquire here), never replaced
    // once set and never freed.
    let chunk = unsafe { chunk.as_ref() }?;
    Some(&chunk.slots[index & (CHUNK_LEN - 1)])
}

fn allocated_slot(index: usize) -> &'static Slot {
    slot(index).expect("allocated slot exists")
}

#[cold]
#[inline(never)]
fn install_chunk(c: usize) {
    let cell = &TABLE.chunks[c];
    if !cell.load(Ordering::Acquire).is_null() {
        return;
    }
    let slots: Box<[Slot]> = (0..CHUNK_LEN).map(|_| Slot::default()).collect();
    let slots: Box<[Slot; CHUNK_LEN]> = slots.try_into().ok().expect("CHUNK_LEN slots");
    // `Chunk` is `repr(transparent)` over `[Slot; CHUNK_LEN]`.
    let new: *mut Chunk = Box::into_raw(slots).cast();
    if cell
        .compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // SAFETY: `new` lost the race and was never published: still this thread's.
        drop(unsafe { Box::from_raw(new) });
    }
}

fn decode(handle: u64) -> Option<(&'static Slot, u64)> {
    if handle & TAG != TAG {
        return None;
    }
    let index = (handle & (MAX_SLOTS as u64 - 1)) as usize;
    let generation = (handle >> INDEX_BITS) & u64::from(u32::MAX);
    Some((slot(index)?, generation))
}

/// Stores `obj` in a free slot; its handle, or `obj` back when the table is full.
pub(crate) fn insert(obj: Arc<PoolObj>) -> Result<u64, Arc<PoolObj>> {
    let popped = TABLE
        .free
        .pop(|i| allocated_slot(i as usize).next_free.load(Ordering::Relaxed));
    let index = match popped {
        Some(i) => i as usize,
        None => {
            let Some(i) = fresh_index(&TABLE.next, MAX_SLOTS as u32) else {
                return Err(obj);
            };
            install_chunk(i as usize >> CHUNK_BITS);
            i as usize
        }
    };
    let s = allocated_slot(index);
    let cur = s.state.load(Ordering::Acquire);
    debug_assert_eq!(cur & (PHASE_MASK | ENTERING_MASK), FREE);
    let mut generation = ((cur >> GEN_SHIFT) + 1) & u64::from(u32::MAX);
    if generation == 0 {
        generation = 1;
    }
    // SAFETY: the slot is FREE and this thread popped it (or took it fresh): nobody else
    // reads or writes `obj` until LIVE is published below.
    unsafe { *s.obj.get() = Some(obj) };
    s.state
        .store((generation << GEN_SHIFT) | LIVE, Ordering::Release);
    Ok(TAG | (generation << INDEX_BITS) | index as u64)
}

/// Whether `handle` is live now.
#[cfg(all(test, not(loom)))]
fn is_live(handle: u64) -> bool {
    let Some((s, generation)) = decode(handle) else {
        return false;
    };
    s.state.load(Ordering::Acquire) & !ENTERING_MASK == (generation << GEN_SHIFT) | LIVE
}

/// A new strong count of the pool behind `handle`; None when the handle is not live.
pub(crate) fn enter(handle: u64) -> Option<Arc<PoolObj>> {
    let (s, generation) = decode(handle)?;
    let mut cur = s.state.load(Ordering::Relaxed);
    loop {
        if cur >> GEN_SHIFT != generation || cur & PHASE_MASK != LIVE {
            return None;
        }
        if cur & ENTERING_MASK == ENTERING_MASK {
            // 2^30 clones in progress at once: cannot happen; wait rather than overflow.
            std::hint::spin_loop();
            cur = s.state.load(Ordering::Relaxed);
            continue;
        }
        match s.state.compare_exchange_weak(
            cur,
            cur + ENTERING_ONE,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    // SAFETY: LIVE under this generation with `entering` raised: `remove` cannot take the
    // object out until it is lowered again, and the Acquire above saw `insert`'s store.
    let obj = unsafe { (*s.obj.get()).as_ref() }.map(Arc::clone);
    // Release: the clone above happens before a `remove` that sees `entering` back down.
    s.state.fetch_sub(ENTERING_ONE, Ordering::Release);
    obj
}

/// Makes `handle` dead and gives its strong count back; None when it was not live (a
/// second free, a made-up value).
pub(crate) fn remove(handle: u64) -> Option<Arc<PoolObj>> {
    let (s, generation) = decode(handle)?;
    let index = (handle & (MAX_SLOTS as u64 - 1)) as u32;
    let mut cur = s.state.load(Ordering::Relaxed);
    let mut spins = 0u32;
    loop {
        if cur >> GEN_SHIFT != generation || cur & PHASE_MASK != LIVE {
            return None;
        }
        if cur & ENTERING_MASK != 0 {
            // A call is cloning its count: a few instructions, unless its thread was
            // preempted right there; then let it run.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            cur = s.state.load(Ordering::Relaxed);
            continue;
        }
        match s.state.compare_exchange_weak(
            cur,
            (generation << GEN_SHIFT) | FREE,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    // SAFETY: this thread moved the slot LIVE -> FREE with no clone in progress (Acquire
    // pairs with their Release), so nobody else reads `obj` any more.
    let obj = unsafe { (*s.obj.get()).take() };
    TABLE.free.push(index, &s.next_free);
    obj
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ffi::pool::{PoolKind, PoolObj};
    use crate::pool::{ConnPool, Dialer, Options};

    fn obj() -> Arc<PoolObj> {
        let opts = Options::new(Dialer::from_addr("127.0.0.1:1").unwrap());
        Arc::new(PoolObj::new(PoolKind::Conn(ConnPool::new(opts).unwrap())))
    }

    #[test]
    fn a_removed_handle_is_dead_and_its_slot_comes_back_with_a_new_generation() {
        let a = obj();
        let h = insert(a.clone()).ok().unwrap();
        assert!(is_live(h));
        assert!(Arc::ptr_eq(&enter(h).unwrap(), &a));
        assert!(Arc::ptr_eq(&remove(h).unwrap(), &a));
        assert!(!is_live(h));
        assert!(enter(h).is_none());
        assert!(remove(h).is_none(), "a second remove is refused");
        let h2 = insert(a.clone()).ok().unwrap();
        assert_ne!(h, h2);
        assert!(enter(h).is_none(), "the old handle stays dead");
        assert!(remove(h).is_none());
        assert!(remove(h2).is_some());
        for made_up in [0, 1, u64::MAX, 1 << 63, TAG] {
            assert!(enter(made_up).is_none());
            assert!(remove(made_up).is_none());
        }
    }

    #[test]
    fn enter_racing_remove_gets_a_count_or_nothing() {
        for _ in 0..200 {
            let a = obj();
            let h = insert(a.clone()).ok().unwrap();
            let got = std::thread::scope(|s| {
                let t = s.spawn(|| (0..100).filter_map(|_| enter(h)).count());
                let removed = remove(h);
                assert!(removed.is_some());
                t.join().unwrap()
            });
            assert!(got <= 100);
            // Every count taken was dropped: only `a` is left.
            assert_eq!(Arc::strong_count(&a), 1);
        }
    }
}
