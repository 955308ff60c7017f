//! The table behind `pool_conn_t *` handles.
//!
//! A handle encodes (slot index, generation) with the top bit set, so it is never a valid
//! user-space address and is never dereferenced. A slot holds a checked-out conn and the
//! pool object it came from; returning the conn empties the slot, and the next checkout
//! into it uses a new generation. A double put, a put after remove, a handle of another
//! pool or a made-up value is therefore detected, not undefined behaviour.
//!
//! A conn reserves its slot on its first checkout through the C ABI and keeps it until it
//! is closed (a reservation, stored in the conn as its `HandleToken`), so a steady-state get and put allocate
//! no slot: the checkout is one plain store of the slot's state word, the return one
//! compare-exchange (which is also what makes two racing puts of one handle safe: only
//! one wins) and one plain store.
//!
//! Slot allocation is lock-free: never-used slots come from an atomic counter, released
//! slots go on a tagged Treiber stack (LIFO, so a warm slot is reused before a new one is
//! touched), and chunks of slots are installed with a compare-exchange. The reason is
//! fork(): a child of a multithreaded process keeps only the forking thread, so a lock
//! another thread held at fork time would stay locked forever in the child. Nothing on the
//! allocation path can block; a parent thread caught mid-allocation or mid-release costs
//! the child at most that one slot. There are no locks at all: a slot in use by one call
//! (`with`, `take`) is marked busy in its state word, and a second call on the same handle
//! waits for it.
//!
//! Slots are never freed (at most `MAX_SLOTS` conns with a reserved slot at once,
//! process-wide).

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use self::sync::{AtomicU32, AtomicU64};

use super::handles::PoolObj;
use crate::pool::{Conn, HandleToken};

/// The atomics of the free list, its links and the fresh-index counter: loom's under
/// `--cfg loom`, so that the loom models at the end of this file explore this very code
/// (`RUSTFLAGS="--cfg loom" cargo test --release --lib loom`, run by scripts/fuzz.sh).
pub(super) mod sync {
    #[cfg(loom)]
    pub(in crate::ffi) use loom::sync::atomic::{AtomicU32, AtomicU64};
    #[cfg(not(loom))]
    pub(in crate::ffi) use std::sync::atomic::{AtomicU32, AtomicU64};
}

const CHUNK_LEN: usize = 1 << 10;
const INDEX_BITS: u32 = 22;
const MAX_SLOTS: usize = 1 << INDEX_BITS;
const MAX_CHUNKS: usize = MAX_SLOTS / CHUNK_LEN;
const GEN_MASK: u64 = (1 << (63 - INDEX_BITS)) - 1;
const TAG: u64 = 1 << 63;

/// A checked-out conn and the pool object it must go back to.
pub(crate) struct Entry {
    pub conn: Conn,
    pub owner: Arc<PoolObj>,
}

/// Phases of a slot's state word, `(generation << 2) | phase`.
const FREE: u64 = 0;
const LIVE: u64 = 1;
const BUSY: u64 = 2;
const PHASE_MASK: u64 = 3;

#[derive(Default)]
struct Slot {
    /// `(generation << 2) | phase`. FREE: no entry; only the holder of the slot's
    /// reservation (the conn) writes `entry`, then publishes LIVE with a new generation.
    /// LIVE: the entry is checked out under that generation. BUSY: one call won the
    /// compare-exchange LIVE -> BUSY and has the entry to itself until it stores LIVE or
    /// FREE again.
    state: AtomicU64,
    entry: UnsafeCell<Option<Entry>>,
    /// The `pool_t *` (as an integer) the entry was checked out through, which may give it
    /// back even after its pool_free; 0 for a cluster get. Beside the entry, not in it: a
    /// wider `Entry` made every move of one a store-forwarding stall (about 20 ns per
    /// Get+Put, measured). Accessed as `entry` is.
    via: UnsafeCell<u64>,
    /// The free-list link while the slot is unreserved: (index + 1) of the next free slot,
    /// 0 at the bottom of the stack. Meaningless while the slot is reserved.
    next_free: AtomicU32,
}

// tests/conn_memory.rs allows an idle conn 256 heap bytes less one slot's 40: a slot is
// the C ABI's share of every conn checked out through it.
const _: () = assert!(std::mem::size_of::<Slot>() <= 40);

// SAFETY: `entry` is only accessed by the thread that owns the slot by the protocol on
// `state` (the reservation holder in FREE, the compare-exchange winner in BUSY), with
// Release/Acquire on `state` ordering the handovers; everything else is atomic.
unsafe impl Sync for Slot {}

/// A conn's claim on its slot, kept (as the conn's `HandleToken`) from its first checkout
/// through the C ABI until the conn is dropped (closed), which puts the slot back on the
/// free list.
fn reservation(index: usize) -> HandleToken {
    HandleToken::new(index as u32, release_reserved)
}

fn release_reserved(index: u32) {
    // The conn is being closed, so it is in no slot: the slot is FREE and nobody will
    // write its entry until it is reserved again.
    release_slot(index as usize);
}

/// A Treiber stack of slot indices. `head` is (tag << 32) | (index + 1), 0 when empty; the
/// tag changes on every successful push and pop, so a pop that read a stale link (the top
/// was popped and pushed back meanwhile: ABA) fails its compare-exchange and retries. The
/// links live outside the stack (`Slot::next_free`) and are passed in.
pub(super) struct FreeList {
    head: AtomicU64,
}

const LOW: u64 = 0xFFFF_FFFF;

/// `head` with its tag advanced by one (wrapping) and its low half cleared.
fn next_tag(head: u64) -> u64 {
    (head & !LOW).wrapping_add(LOW + 1)
}

impl FreeList {
    #[cfg(not(loom))]
    pub(super) const fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
        }
    }

    /// loom's atomics are not `const`: they are made inside a model.
    #[cfg(loom)]
    pub(super) fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
        }
    }

    /// Pushes `index`, whose link is `link`. The caller owns `index` (it is not on the
    /// stack), so nobody else writes `link` meanwhile.
    pub(super) fn push(&self, index: u32, link: &AtomicU32) {
        let top = index + 1;
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            link.store((head & LOW) as u32, Ordering::Relaxed);
            // AcqRel: Release publishes the link (and everything the releasing thread did
            // to the slot) to the popper that acquires this head.
            match self.head.compare_exchange_weak(
                head,
                next_tag(head) | u64::from(top),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Pops the most recently pushed index; None when the stack is empty. `read_link(i)`
    /// loads the link of index `i` (Relaxed is enough: the Acquire load of `head` orders it
    /// after the push that stored it); it must work for any index ever pushed.
    pub(super) fn pop(&self, read_link: impl Fn(u32) -> u32) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let top = (head & LOW) as u32;
            if top == 0 {
                return None;
            }
            let index = top - 1;
            // May be stale if `index` was popped (and maybe pushed again) since `head` was
            // read; the tag then differs and the compare-exchange below fails.
            let below = read_link(index);
            match self.head.compare_exchange_weak(
                head,
                next_tag(head) | u64::from(below),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index),
                Err(now) => head = now,
            }
        }
    }
}

/// Slots in chunks of `N`, at most `M` chunks, for `conn_table` and `handle_table`. A chunk
/// is installed once, with a compare-exchange (so racing installers agree on one), and is
/// never replaced nor freed: a slot reference lives as long as the `Chunks` (a static).
pub(super) struct Chunks<S, const N: usize, const M: usize> {
    ptrs: [AtomicPtr<[S; N]>; M],
    /// Shares `S` between threads (`AtomicPtr` alone would be `Sync` for any `S`).
    _slots: std::marker::PhantomData<S>,
}

impl<S, const N: usize, const M: usize> Chunks<S, N, M> {
    pub(super) const fn new() -> Self {
        Self {
            ptrs: [const { AtomicPtr::new(std::ptr::null_mut()) }; M],
            _slots: std::marker::PhantomData,
        }
    }

    /// Slot `index`; None when its chunk is not installed (or is past `M`).
    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<&S> {
        let chunk = self.ptrs.get(index / N)?.load(Ordering::Acquire);
        // SAFETY: a chunk pointer is either null or came from `Box::into_raw` in
        // `install`, was published with a Release compare-exchange (read here with
        // Acquire, so the chunk is fully initialised), is never replaced once non-null and
        // is never freed, so the reference is valid as long as `self`. Slots are only
        // accessed through shared references.
        let chunk = unsafe { chunk.as_ref() }?;
        Some(&chunk[index % N])
    }

    /// Installs the chunk of slot `index` if it is not there yet; `index` is below `N * M`.
    #[inline]
    pub(super) fn ensure(&self, index: usize)
    where
        S: Default,
    {
        let c = index / N;
        if self.ptrs[c].load(Ordering::Acquire).is_null() {
            self.install(c);
        }
    }

    /// The slow part of `ensure`, kept out of line: a chunk may be hundreds of KiB, and
    /// building it in a caller's frame would make every caller probe that much stack.
    #[cold]
    #[inline(never)]
    fn install(&self, c: usize)
    where
        S: Default,
    {
        let cell = &self.ptrs[c];
        // Built on the heap slot by slot: `Box::new([..])` would build it on the stack.
        let slots: Box<[S]> = (0..N).map(|_| S::default()).collect();
        let slots: Box<[S; N]> = slots.try_into().ok().expect("N slots");
        let new = Box::into_raw(slots);
        if cell
            .compare_exchange(
                std::ptr::null_mut(),
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `new` came from `Box::into_raw` just above and lost the race, so it
            // was never published: this thread still owns it and nothing else refers to it.
            drop(unsafe { Box::from_raw(new) });
        }
    }
}

struct Table {
    chunks: Chunks<Slot, CHUNK_LEN, MAX_CHUNKS>,
    /// Indices below `next` have been handed out at least once; it never exceeds
    /// `MAX_SLOTS`.
    next: AtomicU32,
    free: FreeList,
}

#[cfg(not(loom))]
static TABLE: Table = Table {
    chunks: Chunks::new(),
    next: AtomicU32::new(0),
    free: FreeList::new(),
};

/// loom's atomics cannot be built in a `static` and only work inside a model. Under `--cfg
/// loom` only the models run, on lists of their own: the table just has to compile.
#[cfg(loom)]
static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
    chunks: Chunks::new(),
    next: AtomicU32::new(0),
    free: FreeList::new(),
});

fn slot(index: usize) -> Option<&'static Slot> {
    TABLE.chunks.get(index)
}

/// The slot of an index that has been handed out; its chunk is then installed and visible
/// (the thread that handed the index out installed it or saw it, and every later use of
/// the index is ordered after that).
fn allocated_slot(index: usize) -> &'static Slot {
    slot(index).expect("allocated slot exists")
}

fn decode(handle: u64) -> Option<(usize, u64)> {
    if handle & TAG == 0 {
        return None;
    }
    let index = (handle & (MAX_SLOTS as u64 - 1)) as usize;
    let generation = (handle >> INDEX_BITS) & GEN_MASK;
    Some((index, generation))
}

/// Takes the next never-used index below `limit`; None, leaving `next` unchanged (so at
/// `limit`), once all are taken.
pub(super) fn fresh_index(next: &AtomicU32, limit: u32) -> Option<u32> {
    next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        if n < limit { Some(n + 1) } else { None }
    })
    .ok()
}

fn allocate_slot() -> Option<usize> {
    if let Some(i) = TABLE
        .free
        .pop(|i| allocated_slot(i as usize).next_free.load(Ordering::Relaxed))
    {
        return Some(i as usize);
    }
    let index = fresh_index(&TABLE.next, MAX_SLOTS as u32)? as usize;
    TABLE.chunks.ensure(index);
    Some(index)
}

fn release_slot(index: usize) {
    TABLE
        .free
        .push(index as u32, &allocated_slot(index).next_free);
}

/// Stores a checked-out conn; returns its handle, or gives the entry back when the table
/// is full.
pub(crate) fn insert(mut entry: Entry, via: u64) -> Result<u64, Entry> {
    let index = match entry.conn.handle_token() {
        Some(r) => r.index() as usize,
        None => {
            let Some(index) = allocate_slot() else {
                return Err(entry);
            };
            entry.conn.set_handle_token(reservation(index));
            index
        }
    };
    let s = allocated_slot(index);
    // The conn holds the reservation and is not checked out, so the slot is FREE and this
    // thread is the only writer; the last take's Release store reached this thread with
    // the conn (through the pool's lock).
    let cur = s.state.load(Ordering::Relaxed);
    debug_assert_eq!(
        cur & PHASE_MASK,
        FREE,
        "a reserved slot of a conn in hand is free"
    );
    let mut generation = ((cur >> 2) + 1) & GEN_MASK;
    if generation == 0 {
        generation = 1;
    }
    // SAFETY: FREE and reserved by this conn: no other thread reads or writes `entry`
    // (they only do after winning LIVE -> BUSY, and LIVE is published below).
    unsafe {
        *s.entry.get() = Some(entry);
        *s.via.get() = via;
    }
    s.state.store((generation << 2) | LIVE, Ordering::Release);
    Ok(TAG | (generation << INDEX_BITS) | index as u64)
}

/// Marks the slot BUSY while `f` runs on its entry; restores the state it is given on drop
/// (LIVE, or FREE once the entry is taken), also when `f` panics.
struct Busy {
    slot: &'static Slot,
    restore: u64,
}

impl Busy {
    /// Wins LIVE -> BUSY for `handle`; waits while another call has the slot busy. None
    /// when the handle is not live.
    fn claim(handle: u64) -> Option<Busy> {
        let (index, generation) = decode(handle)?;
        let slot = slot(index)?;
        let live = (generation << 2) | LIVE;
        let busy = (generation << 2) | BUSY;
        let mut spins = 0u32;
        loop {
            match slot
                .state
                .compare_exchange(live, busy, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Busy {
                        slot,
                        restore: live,
                    });
                }
                // Another call on this very handle (a command, say) is running: wait for
                // it, as a lock would, but without one.
                Err(now) if now == busy => backoff(&mut spins),
                Err(_) => return None,
            }
        }
    }

    fn entry(&mut self) -> &mut Option<Entry> {
        // SAFETY: this `Busy` won the slot's LIVE -> BUSY exchange (Acquire, pairing with
        // the Release that published the entry) and is the only one until it drops.
        unsafe { &mut *self.slot.entry.get() }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot.state.store(self.restore, Ordering::Release);
    }
}

/// Waiting for a busy slot: spin briefly, then yield, then sleep (a command on the conn
/// may take up to its read timeout).
fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 128 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// Runs `f` on the live entry behind `handle`; None when the handle is not live.
pub(crate) fn with<R>(handle: u64, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
    let mut busy = Busy::claim(handle)?;
    busy.entry().as_mut().map(f)
}

/// Why `take` refused.
pub(crate) enum TakeError {
    /// Not a live handle: returned already, never issued, or garbage.
    NotLive,
    /// Live, but `accept` said no; nothing changed.
    Refused,
}

/// Removes the live entry behind `handle` if `accept` agrees; the handle is then dead (the
/// slot stays reserved by the conn).
pub(crate) fn take(
    handle: u64,
    accept: impl FnOnce(&Entry, u64) -> bool,
) -> Result<Entry, TakeError> {
    let mut busy = Busy::claim(handle).ok_or(TakeError::NotLive)?;
    // SAFETY: `busy` owns the slot (see `Busy::entry`); `via` goes with `entry`.
    let via = unsafe { *busy.slot.via.get() };
    let entry = busy.entry();
    let e = entry.as_ref().ok_or(TakeError::NotLive)?;
    if !accept(e, via) {
        return Err(TakeError::Refused);
    }
    let entry = entry.take().expect("checked above");
    busy.restore = (busy.restore & !PHASE_MASK) | FREE;
    Ok(entry)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;

    use super::*;

    const THREADS: usize = 8;
    const ITERS: usize = 20_000;

    /// A small xorshift, so each thread holds and releases in its own varying order.
    fn rng(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    #[test]
    fn concurrent_allocation_never_hands_a_slot_out_twice() {
        let owned: Vec<AtomicBool> = (0..MAX_SLOTS).map(|_| AtomicBool::new(false)).collect();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let owned = &owned;
                s.spawn(move || {
                    let mut state = 0x9E37_79B9 ^ (t as u32 + 1);
                    let mut held: Vec<usize> = Vec::new();
                    for _ in 0..ITERS {
                        let index = allocate_slot().expect("table has room");
                        assert!(
                            !owned[index].swap(true, Ordering::SeqCst),
                            "slot {index} handed out twice"
                        );
                        held.push(index);
                        // Hold up to 4 slots; release a random one of them.
                        while held.len() > (rng(&mut state) % 4) as usize {
                            let at = rng(&mut state) as usize % held.len();
                            let index = held.swap_remove(at);
                            assert!(owned[index].swap(false, Ordering::SeqCst));
                            release_slot(index);
                        }
                    }
                    for index in held {
                        assert!(owned[index].swap(false, Ordering::SeqCst));
                        release_slot(index);
                    }
                });
            }
        });
    }

    #[test]
    fn released_slot_is_reused_before_a_new_one() {
        // Other tests share TABLE and may pop or push in between, so only require that the
        // LIFO reuse shows up, and that reuse did not grow `next` when it did.
        let mut reused = 0;
        for _ in 0..100 {
            let a = allocate_slot().expect("table has room");
            release_slot(a);
            let next_before = TABLE.next.load(Ordering::SeqCst);
            let b = allocate_slot().expect("table has room");
            release_slot(b);
            if a == b {
                reused += 1;
            } else {
                // Not ours: another test took `a` first. `b` is then no newer than what
                // `next` reached, which other tests may also have moved.
                assert!(b < TABLE.next.load(Ordering::SeqCst) as usize);
            }
            assert!(TABLE.next.load(Ordering::SeqCst) >= next_before);
        }
        assert!(reused > 0, "a released slot was never reused");
    }

    fn links(n: usize) -> Vec<AtomicU32> {
        (0..n).map(|_| AtomicU32::new(0)).collect()
    }

    fn read(links: &[AtomicU32]) -> impl Fn(u32) -> u32 + '_ {
        |i| links[i as usize].load(Ordering::Relaxed)
    }

    #[test]
    fn free_list_is_lifo() {
        let links = links(4);
        let list = FreeList::new();
        let pop = || list.pop(read(&links));
        assert_eq!(pop(), None);
        for i in 0..3 {
            list.push(i, &links[i as usize]);
        }
        assert_eq!(pop(), Some(2));
        list.push(3, &links[3]);
        assert_eq!(pop(), Some(3));
        assert_eq!(pop(), Some(1));
        list.push(1, &links[1]);
        assert_eq!(pop(), Some(1));
        assert_eq!(pop(), Some(0));
        assert_eq!(pop(), None);
        assert_eq!(pop(), None);
    }

    /// The ABA interleaving, forced: the pop reads the top (2) and its link (1), then, before
    /// its compare-exchange, another thread pops 2, pops 1 and pushes 2 back. The head
    /// shows 2 again, but 1 is taken; only the tag tells the pop that its link is stale.
    #[test]
    fn free_list_pop_detects_aba() {
        let links = links(3);
        let list = FreeList::new();
        for i in 0..3 {
            list.push(i, &links[i as usize]);
        }
        let interfered = std::cell::Cell::new(false);
        let popped = list.pop(|i| {
            let link = links[i as usize].load(Ordering::Relaxed);
            if !interfered.replace(true) {
                assert_eq!((i, link), (2, 2), "top 2, link to 1 (stored as index + 1)");
                assert_eq!(list.pop(read(&links)), Some(2));
                assert_eq!(list.pop(read(&links)), Some(1));
                list.push(2, &links[2]);
            }
            link
        });
        assert_eq!(popped, Some(2));
        // 1 is still held by the interfering thread: only 0 may be left.
        assert_eq!(list.pop(read(&links)), Some(0));
        assert_eq!(list.pop(read(&links)), None);
    }

    #[test]
    fn tag_wraps_without_touching_the_index() {
        assert_eq!(next_tag(0), 1 << 32);
        assert_eq!(next_tag((7 << 32) | 5), 8 << 32);
        assert_eq!(next_tag(u64::MAX), 0);
    }

    /// Few entries and many threads: the top is popped and pushed back all the time, the
    /// ABA case a free list without the tag gets wrong.
    #[test]
    fn free_list_under_contention_hands_each_index_to_one_thread() {
        const N: usize = 4;
        let links = links(N);
        let list = FreeList::new();
        for i in 0..N as u32 {
            list.push(i, &links[i as usize]);
        }
        let owned: Vec<AtomicBool> = (0..N).map(|_| AtomicBool::new(false)).collect();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ITERS {
                        let Some(i) = list.pop(read(&links)) else {
                            std::hint::spin_loop();
                            continue;
                        };
                        assert!(
                            !owned[i as usize].swap(true, Ordering::SeqCst),
                            "index {i} popped twice"
                        );
                        assert!(owned[i as usize].swap(false, Ordering::SeqCst));
                        list.push(i, &links[i as usize]);
                    }
                });
            }
        });
        let mut left = HashSet::new();
        while let Some(i) = list.pop(read(&links)) {
            assert!(left.insert(i), "index {i} on the list twice");
        }
        assert_eq!(left, (0..N as u32).collect());
    }

    #[test]
    fn fresh_index_stops_at_the_limit_and_stays_there() {
        let next = AtomicU32::new(0);
        assert_eq!(fresh_index(&next, 3), Some(0));
        assert_eq!(fresh_index(&next, 3), Some(1));
        assert_eq!(fresh_index(&next, 3), Some(2));
        for _ in 0..3 {
            assert_eq!(fresh_index(&next, 3), None);
        }
        assert_eq!(next.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn fresh_index_under_contention_is_unique_and_bounded() {
        const LIMIT: u32 = 50_000;
        let next = AtomicU32::new(0);
        let got: Vec<Vec<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        for _ in 0..ITERS {
                            if let Some(i) = fresh_index(&next, LIMIT) {
                                mine.push(i);
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all: HashSet<u32> = got.iter().flatten().copied().collect();
        assert_eq!(all.len(), got.iter().map(Vec::len).sum::<usize>());
        assert_eq!(all, (0..LIMIT).collect());
        assert_eq!(next.load(Ordering::SeqCst), LIMIT);
    }
}

/// loom models of the free list and the fresh-index counter: every interleaving of a few
/// threads (up to `LOOM_MAX_PREEMPTIONS` preemptions each, when set), with loom's model of
/// the memory orderings, so a link read by `pop` may be stale as the hardware allows.
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom -- --nocapture` prints how many
/// interleavings each model explored.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    use loom::thread;

    use super::*;

    /// Runs `f` under loom and prints how many interleavings it took. `exhaustive`: every
    /// interleaving (the two-thread models, well under a second); otherwise those with at
    /// most `LOOM_MAX_PREEMPTIONS` preemptions (3 when unset).
    fn model(name: &str, exhaustive: bool, f: impl Fn() + Send + Sync + 'static) {
        let mut builder = loom::model::Builder::new();
        if exhaustive {
            builder.preemption_bound = None;
        } else {
            builder.preemption_bound = builder.preemption_bound.or(Some(3));
        }
        let bound = builder
            .preemption_bound
            .map_or("all".to_owned(), |b| format!("<= {b} preemptions"));
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        builder.check(move || {
            counted.fetch_add(1, SeqCst);
            f();
        });
        println!("loom {name}: {} interleavings ({bound})", runs.load(SeqCst));
    }

    /// A free list holding `0..n`, its links, and who holds which index. `owned` is a plain
    /// std atomic: it is the checker, not part of the model.
    struct World {
        list: FreeList,
        links: Vec<AtomicU32>,
        owned: Vec<AtomicBool>,
    }

    impl World {
        fn new(n: u32) -> Arc<Self> {
            let w = World {
                list: FreeList::new(),
                links: (0..n).map(|_| AtomicU32::new(0)).collect(),
                owned: (0..n).map(|_| AtomicBool::new(false)).collect(),
            };
            for i in 0..n {
                w.list.push(i, &w.links[i as usize]);
            }
            Arc::new(w)
        }

        /// Pops an index, and checks that nobody else holds it.
        fn pop(&self) -> Option<u32> {
            let i = self
                .list
                .pop(|i| self.links[i as usize].load(Ordering::Relaxed))?;
            assert!(
                !self.owned[i as usize].swap(true, SeqCst),
                "index {i} handed to two threads at once"
            );
            Some(i)
        }

        fn push(&self, i: u32) {
            assert!(self.owned[i as usize].swap(false, SeqCst));
            self.list.push(i, &self.links[i as usize]);
        }

        /// Once every thread is done: everything is back, once.
        fn check_all_back(&self, n: u32) {
            let mut left = HashSet::new();
            while let Some(i) = self.pop() {
                assert!(left.insert(i), "index {i} on the list twice");
            }
            assert_eq!(left, (0..n).collect(), "an index was lost");
        }
    }

    /// The ABA shape: one thread pops and pushes back, the other pops two and pushes them
    /// back in the other order, so the first one's pop may read a top that was popped and
    /// pushed again, with a stale link below it. Only the tag saves it.
    #[test]
    fn loom_free_list_pop_push_aba() {
        model("free list, pop/push vs pop/pop/push/push", true, || {
            let w = World::new(3);
            let w2 = Arc::clone(&w);
            let t = thread::spawn(move || {
                let a = w2.pop().expect("3 indices, 2 holders at most");
                let b = w2.pop().expect("3 indices, 3 holders at most");
                w2.push(a);
                w2.push(b);
            });
            if let Some(i) = w.pop() {
                w.push(i);
            }
            t.join().unwrap();
            w.check_all_back(3);
        });
    }

    /// Three threads, two indices: pops find the list empty, pushes race with pops.
    #[test]
    fn loom_free_list_three_threads_two_indices() {
        model(
            "free list, 3 threads x pop/push on 2 indices",
            false,
            || {
                let w = World::new(2);
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let w = Arc::clone(&w);
                        thread::spawn(move || {
                            if let Some(i) = w.pop() {
                                w.push(i);
                            }
                        })
                    })
                    .collect();
                if let Some(i) = w.pop() {
                    w.push(i);
                }
                for t in threads {
                    t.join().unwrap();
                }
                w.check_all_back(2);
            },
        );
    }

    /// The counter hands each index out once and stops at the limit.
    #[test]
    fn loom_fresh_index_is_unique_and_bounded() {
        model(
            "fresh_index, 3 threads x 1 against a limit of 2",
            true,
            || {
                let next = Arc::new(AtomicU32::new(0));
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let next = Arc::clone(&next);
                        thread::spawn(move || fresh_index(&next, 2))
                    })
                    .collect();
                let mut got: Vec<u32> = fresh_index(&next, 2).into_iter().collect();
                for t in threads {
                    got.extend(t.join().unwrap());
                }
                got.sort_unstable();
                assert_eq!(got, [0, 1]);
                assert_eq!(next.load(Ordering::Relaxed), 2);
            },
        );
    }

    /// The model can tell: the same list without the tag (a mutant) is caught handing an
    /// index to two threads, or losing one, in the ABA shape above.
    #[test]
    fn loom_free_list_without_tag_is_caught() {
        struct Tagless {
            head: AtomicU64,
        }
        impl Tagless {
            fn push(&self, index: u32, link: &AtomicU32) {
                let mut head = self.head.load(Ordering::Acquire);
                loop {
                    link.store(head as u32, Ordering::Relaxed);
                    match self.head.compare_exchange_weak(
                        head,
                        u64::from(index + 1),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(now) => head = now,
                    }
                }
            }
            fn pop(&self, read_link: impl Fn(u32) -> u32) -> Option<u32> {
                let mut head = self.head.load(Ordering::Acquire);
                loop {
                    let top = head as u32;
                    if top == 0 {
                        return None;
                    }
                    let below = read_link(top - 1);
                    match self.head.compare_exchange_weak(
                        head,
                        u64::from(below),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Some(top - 1),
                        Err(now) => head = now,
                    }
                }
            }
        }
        let caught = std::panic::catch_unwind(|| {
            loom::model(|| {
                let list = Arc::new(Tagless {
                    head: AtomicU64::new(0),
                });
                let links: Arc<Vec<AtomicU32>> =
                    Arc::new((0..3).map(|_| AtomicU32::new(0)).collect());
                let owned: Arc<Vec<AtomicBool>> =
                    Arc::new((0..3).map(|_| AtomicBool::new(false)).collect());
                for i in 0..3 {
                    list.push(i, &links[i as usize]);
                }
                let pop = |list: &Tagless, links: &[AtomicU32], owned: &[AtomicBool]| {
                    let i = list.pop(|i| links[i as usize].load(Ordering::Relaxed))?;
                    assert!(!owned[i as usize].swap(true, SeqCst), "ABA: {i} held twice");
                    Some(i)
                };
                let push = |list: &Tagless, links: &[AtomicU32], owned: &[AtomicBool], i: u32| {
                    owned[i as usize].store(false, SeqCst);
                    list.push(i, &links[i as usize]);
                };
                let (l2, k2, o2) = (Arc::clone(&list), Arc::clone(&links), Arc::clone(&owned));
                let t = thread::spawn(move || {
                    let a = pop(&l2, &k2, &o2).unwrap();
                    let b = pop(&l2, &k2, &o2).unwrap();
                    push(&l2, &k2, &o2, a);
                    push(&l2, &k2, &o2, b);
                });
                if let Some(i) = pop(&list, &links, &owned) {
                    push(&list, &links, &owned, i);
                }
                t.join().unwrap();
                let mut left = HashSet::new();
                while let Some(i) = pop(&list, &links, &owned) {
                    assert!(left.insert(i), "ABA: {i} on the list twice");
                }
                assert_eq!(left.len(), 3, "ABA: an index was lost");
            });
        });
        assert!(
            caught.is_err(),
            "loom missed the ABA of a list without a tag"
        );
        println!("loom free list without the tag: ABA found, as it must be");
    }
}
