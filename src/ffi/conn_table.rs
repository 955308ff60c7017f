//! The table behind `pool_conn_t *` handles.
//!
//! A handle encodes (slot index, generation) with the top bit set, so it is never a valid
//! user-space address and is never dereferenced. A slot holds a checked-out conn and the
//! pool object it came from; returning the conn empties the slot, and the next checkout
//! into it uses a new generation. A double put, a put after remove, a handle of another
//! pool or a made-up value is therefore detected, not undefined behaviour.
//!
//! Slots are never freed (at most `MAX_SLOTS` conns checked out at once, process-wide).

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use parking_lot::Mutex;

use super::pool::PoolObj;
use crate::pool::Conn;

const CHUNK_BITS: u32 = 10;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
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

#[derive(Default)]
struct SlotInner {
    generation: u64,
    entry: Option<Entry>,
}

#[derive(Default)]
struct Slot {
    inner: Mutex<SlotInner>,
}

struct Chunk {
    slots: [Slot; CHUNK_LEN],
}

struct Alloc {
    free: Vec<u32>,
    next: u32,
}

struct Table {
    chunks: [AtomicPtr<Chunk>; MAX_CHUNKS],
    alloc: Mutex<Alloc>,
}

static TABLE: Table = Table {
    chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS],
    alloc: Mutex::new(Alloc {
        free: Vec::new(),
        next: 0,
    }),
};

fn slot(index: usize) -> Option<&'static Slot> {
    let chunk = TABLE
        .chunks
        .get(index >> CHUNK_BITS)?
        .load(Ordering::Acquire);
    // SAFETY: chunks are allocated once, published with Release, and never freed.
    let chunk = unsafe { chunk.as_ref() }?;
    Some(&chunk.slots[index & (CHUNK_LEN - 1)])
}

fn decode(handle: u64) -> Option<(usize, u64)> {
    if handle & TAG == 0 {
        return None;
    }
    let index = (handle & (MAX_SLOTS as u64 - 1)) as usize;
    let generation = (handle >> INDEX_BITS) & GEN_MASK;
    Some((index, generation))
}

fn allocate_slot() -> Option<usize> {
    let mut alloc = TABLE.alloc.lock();
    if let Some(i) = alloc.free.pop() {
        return Some(i as usize);
    }
    let index = alloc.next as usize;
    if index >= MAX_SLOTS {
        return None;
    }
    let c = index >> CHUNK_BITS;
    if TABLE.chunks[c].load(Ordering::Acquire).is_null() {
        let chunk: Box<Chunk> = Box::new(Chunk {
            slots: std::array::from_fn(|_| Slot::default()),
        });
        TABLE.chunks[c].store(Box::into_raw(chunk), Ordering::Release);
    }
    alloc.next += 1;
    Some(index)
}

fn release_slot(index: usize) {
    TABLE.alloc.lock().free.push(index as u32);
}

/// Stores a checked-out conn; returns its handle, or gives the entry back when the table
/// is full.
pub(crate) fn insert(entry: Entry) -> Result<u64, Entry> {
    let Some(index) = allocate_slot() else {
        return Err(entry);
    };
    let s = slot(index).expect("allocated slot exists");
    let mut inner = s.inner.lock();
    inner.generation = (inner.generation + 1) & GEN_MASK;
    if inner.generation == 0 {
        inner.generation = 1;
    }
    let handle = TAG | (inner.generation << INDEX_BITS) | index as u64;
    inner.entry = Some(entry);
    Ok(handle)
}

/// Runs `f` on the live entry behind `handle`; None when the handle is not live.
pub(crate) fn with<R>(handle: u64, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
    let (index, generation) = decode(handle)?;
    let s = slot(index)?;
    let mut inner = s.inner.lock();
    if inner.generation != generation {
        return None;
    }
    inner.entry.as_mut().map(f)
}

/// Why `take` refused.
pub(crate) enum TakeError {
    /// Not a live handle: returned already, never issued, or garbage.
    NotLive,
    /// Live, but `accept` said no; nothing changed.
    Refused,
}

/// Removes the live entry behind `handle` if `accept` agrees; the slot is then reusable.
pub(crate) fn take(handle: u64, accept: impl FnOnce(&Entry) -> bool) -> Result<Entry, TakeError> {
    let (index, generation) = decode(handle).ok_or(TakeError::NotLive)?;
    let s = slot(index).ok_or(TakeError::NotLive)?;
    let entry = {
        let mut inner = s.inner.lock();
        if inner.generation != generation {
            return Err(TakeError::NotLive);
        }
        let e = inner.entry.as_ref().ok_or(TakeError::NotLive)?;
        if !accept(e) {
            return Err(TakeError::Refused);
        }
        inner.entry.take().expect("checked above")
    };
    release_slot(index);
    Ok(entry)
}
