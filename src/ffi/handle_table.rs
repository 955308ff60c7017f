//! The tables behind `pool_t *` and `pool_cluster_t *` handles, as `conn_table` is behind
//! `pool_conn_t *`: one `Table` per handle type (`POOLS`, `CLUSTERS`).
//!
//! A handle encodes (slot index, generation) under a tag of its table in the top bits (bits
//! 63 and 62 set: never a valid user-space address, never dereferenced; bit 61 tells a
//! cluster from a pool, so one passed as the other is refused). Its slot lives in memory
//! that is never freed, so a handle can always be looked at: after its free (pool_free,
//! pool_cluster_free) its slot's generation or phase no longer match it, and a call with it
//! is refused instead of reading freed memory. That is what makes every free misuse
//! detected rather than undefined: a second free, a call after it, and a call racing with
//! it.
//!
//! The slot's state word is `(generation << 32) | (entering << 2) | phase`. A call takes
//! its own strong count of the object (`enter`) by raising `entering` with a
//! compare-exchange that also checks the generation and the LIVE phase, clones the `Arc`,
//! and lowers `entering` again. The free (`remove`) moves LIVE to FREE only while
//! `entering` is 0 (it waits out the few instructions of a clone in progress), then takes
//! the `Arc` out. So a call either got its count before the handle was freed (and the
//! object lives until that call returns) or sees a dead handle: there is no window in
//! between.
//!
//! `enter` writes the slot's line, so the pool hot path avoids it: a get after a put on the
//! same thread uses the count parked by that put (see `pool::Held`) and does not look at
//! the table at all. (So a thread whose parked count came through a handle freed since by
//! another thread acts once more on the pool, closed by that free, before its count goes:
//! still never in freed memory.) Slots are a cache line each so that objects never share
//! one.
//!
//! Slots are allocated as in `conn_table` (lock-free, fork-safe: a Treiber stack of free
//! slots and a counter of never-used ones) and never freed; at most `MAX_SLOTS` handles of
//! one type exist at once, process-wide.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::conn_table::sync::{AtomicU32, AtomicU64};
use super::conn_table::{Chunks, FreeList, fresh_index};
use super::handles::{ClusterObj, PoolObj};

const CHUNK_LEN: usize = 1 << 6;
const INDEX_BITS: u32 = 20;
const MAX_SLOTS: usize = 1 << INDEX_BITS;
const MAX_CHUNKS: usize = MAX_SLOTS / CHUNK_LEN;
/// The bits above index and generation: the table's tag, compared whole.
const TAG_MASK: u64 = !((1 << (INDEX_BITS + 32)) - 1);
/// Set in every pool handle: bit 63 as conn handles, bit 62 for a table of this file.
const POOL_TAG: u64 = 3 << 62;
/// Set in every cluster handle: a pool's bits and bit 61.
const CLUSTER_TAG: u64 = 7 << 61;
const GEN_SHIFT: u32 = 32;
const ENTERING_ONE: u64 = 1 << 2;
const ENTERING_MASK: u64 = ((1 << 30) - 1) << 2;

const FREE: u64 = 0;
const LIVE: u64 = 1;
const PHASE_MASK: u64 = 3;

#[repr(align(64))]
struct Slot<T> {
    /// `(generation << 32) | (entering << 2) | phase`.
    state: AtomicU64,
    /// Some while LIVE. Written only by the thread that holds the slot FREE and off the
    /// free list (`insert`), or that moved it LIVE -> FREE (`remove`); read by `enter`
    /// while its raised `entering` keeps `remove` out.
    obj: UnsafeCell<Option<Arc<T>>>,
    /// The free-list link while the slot is free.
    next_free: AtomicU32,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            state: AtomicU64::default(),
            obj: UnsafeCell::new(None),
            next_free: AtomicU32::default(),
        }
    }
}

// SAFETY: `obj` is only accessed under the protocol on `state` described above, with
// Acquire/Release on `state` ordering the accesses; everything else is atomic. The `Arc`s
// in it are cloned and dropped on any thread, hence `T: Send + Sync`.
unsafe impl<T: Send + Sync> Sync for Slot<T> {}

/// The slots of one handle type.
pub(crate) struct Table<T> {
    chunks: Chunks<Slot<T>, CHUNK_LEN, MAX_CHUNKS>,
    next: AtomicU32,
    free: FreeList,
    /// Set in every handle of this table (`TAG_MASK` bits).
    tag: u64,
}

#[cfg(not(loom))]
impl<T> Table<T> {
    const fn new(tag: u64) -> Self {
        Table {
            chunks: Chunks::new(),
            next: AtomicU32::new(0),
            free: FreeList::new(),
            tag,
        }
    }
}

/// loom's atomics cannot be built in a `static`: under `--cfg loom` the tables only have to
/// compile (see `conn_table`).
#[cfg(loom)]
impl<T> Table<T> {
    fn new(tag: u64) -> Self {
        Table {
            chunks: Chunks::new(),
            next: AtomicU32::new(0),
            free: FreeList::new(),
            tag,
        }
    }
}

/// `pool_t *` handles.
#[cfg(not(loom))]
pub(crate) static POOLS: Table<PoolObj> = Table::new(POOL_TAG);
/// `pool_cluster_t *` handles.
#[cfg(not(loom))]
pub(crate) static CLUSTERS: Table<ClusterObj> = Table::new(CLUSTER_TAG);

#[cfg(loom)]
pub(crate) static POOLS: std::sync::LazyLock<Table<PoolObj>> =
    std::sync::LazyLock::new(|| Table::new(POOL_TAG));
#[cfg(loom)]
pub(crate) static CLUSTERS: std::sync::LazyLock<Table<ClusterObj>> =
    std::sync::LazyLock::new(|| Table::new(CLUSTER_TAG));

impl<T> Table<T> {
    fn allocated_slot(&self, index: usize) -> &Slot<T> {
        self.chunks.get(index).expect("allocated slot exists")
    }

    fn decode(&self, handle: u64) -> Option<(&Slot<T>, u64)> {
        if handle & TAG_MASK != self.tag {
            return None;
        }
        let index = (handle & (MAX_SLOTS as u64 - 1)) as usize;
        let generation = (handle >> INDEX_BITS) & u64::from(u32::MAX);
        Some((self.chunks.get(index)?, generation))
    }

    /// Stores `obj` in a free slot; its handle, or `obj` back when the table is full.
    pub(crate) fn insert(&self, obj: Arc<T>) -> Result<u64, Arc<T>> {
        let popped = self.free.pop(|i| {
            self.allocated_slot(i as usize)
                .next_free
                .load(Ordering::Relaxed)
        });
        let index = match popped {
            Some(i) => i as usize,
            None => {
                let Some(i) = fresh_index(&self.next, MAX_SLOTS as u32) else {
                    return Err(obj);
                };
                self.chunks.ensure(i as usize);
                i as usize
            }
        };
        let s = self.allocated_slot(index);
        let cur = s.state.load(Ordering::Acquire);
        debug_assert_eq!(cur & (PHASE_MASK | ENTERING_MASK), FREE);
        let mut generation = ((cur >> GEN_SHIFT) + 1) & u64::from(u32::MAX);
        if generation == 0 {
            generation = 1;
        }
        // SAFETY: the slot is FREE and this thread popped it (or took it fresh): nobody
        // else reads or writes `obj` until LIVE is published below.
        unsafe { *s.obj.get() = Some(obj) };
        s.state
            .store((generation << GEN_SHIFT) | LIVE, Ordering::Release);
        Ok(self.tag | (generation << INDEX_BITS) | index as u64)
    }

    /// Whether `handle` is live now.
    #[cfg(all(test, not(loom)))]
    fn is_live(&self, handle: u64) -> bool {
        let Some((s, generation)) = self.decode(handle) else {
            return false;
        };
        s.state.load(Ordering::Acquire) & !ENTERING_MASK == (generation << GEN_SHIFT) | LIVE
    }

    /// A new strong count of the object behind `handle`; None when the handle is not live.
    pub(crate) fn enter(&self, handle: u64) -> Option<Arc<T>> {
        let (s, generation) = self.decode(handle)?;
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
        // SAFETY: LIVE under this generation with `entering` raised: `remove` cannot take
        // the object out until it is lowered again, and the Acquire above saw `insert`'s
        // store.
        let obj = unsafe { (*s.obj.get()).as_ref() }.map(Arc::clone);
        // Release: the clone above happens before a `remove` that sees `entering` back down.
        s.state.fetch_sub(ENTERING_ONE, Ordering::Release);
        obj
    }

    /// Makes `handle` dead and gives its strong count back; None when it was not live (a
    /// second free, a made-up value, a handle of another table).
    pub(crate) fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (s, generation) = self.decode(handle)?;
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
        // SAFETY: this thread moved the slot LIVE -> FREE with no clone in progress
        // (Acquire pairs with their Release), so nobody else reads `obj` any more.
        let obj = unsafe { (*s.obj.get()).take() };
        self.free.push(index, &s.next_free);
        obj
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ffi::handles::{PoolKind, PoolObj};
    use crate::pool::{ConnPool, Dialer, Options};

    fn obj() -> Arc<PoolObj> {
        let opts = Options::new(Dialer::from_addr("127.0.0.1:1").unwrap());
        Arc::new(PoolObj::new(PoolKind::Conn(ConnPool::new(opts).unwrap())))
    }

    #[test]
    fn a_removed_handle_is_dead_and_its_slot_comes_back_with_a_new_generation() {
        let a = obj();
        let h = POOLS.insert(a.clone()).ok().unwrap();
        assert!(POOLS.is_live(h));
        assert!(Arc::ptr_eq(&POOLS.enter(h).unwrap(), &a));
        assert!(Arc::ptr_eq(&POOLS.remove(h).unwrap(), &a));
        assert!(!POOLS.is_live(h));
        assert!(POOLS.enter(h).is_none());
        assert!(POOLS.remove(h).is_none(), "a second remove is refused");
        let h2 = POOLS.insert(a.clone()).ok().unwrap();
        assert_ne!(h, h2);
        assert!(POOLS.enter(h).is_none(), "the old handle stays dead");
        assert!(POOLS.remove(h).is_none());
        assert!(POOLS.remove(h2).is_some());
        for made_up in [0, 1, u64::MAX, 1 << 63, POOL_TAG, CLUSTER_TAG] {
            assert!(POOLS.enter(made_up).is_none());
            assert!(POOLS.remove(made_up).is_none());
        }
    }

    #[test]
    fn a_handle_of_one_table_is_refused_by_the_other() {
        // Same slot index and generation in both tables: only the tag tells them apart.
        let t: Table<u32> = Table::new(CLUSTER_TAG);
        let h = t.insert(Arc::new(7)).ok().unwrap();
        let as_pool = (h & !TAG_MASK) | POOL_TAG;
        assert!(t.enter(as_pool).is_none());
        assert!(t.remove(as_pool).is_none());
        assert_eq!(t.enter(h).as_deref(), Some(&7));
        let p = POOLS.insert(obj()).ok().unwrap();
        assert!(t.enter(p).is_none());
        assert!(CLUSTERS.enter(p).is_none());
        assert!(CLUSTERS.remove(p).is_none());
        assert!(POOLS.enter(h).is_none());
        assert!(POOLS.remove(h).is_none());
        assert!(POOLS.remove(p).is_some());
        assert!(t.remove(h).is_some());
    }

    #[test]
    fn enter_racing_remove_gets_a_count_or_nothing() {
        for _ in 0..200 {
            let a = obj();
            let h = POOLS.insert(a.clone()).ok().unwrap();
            let got = std::thread::scope(|s| {
                let t = s.spawn(|| (0..100).filter_map(|_| POOLS.enter(h)).count());
                let removed = POOLS.remove(h);
                assert!(removed.is_some());
                t.join().unwrap()
            });
            assert!(got <= 100);
            // Every count taken was dropped: only `a` is left.
            assert_eq!(Arc::strong_count(&a), 1);
        }
    }
}
