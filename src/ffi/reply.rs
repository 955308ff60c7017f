//! `pool_reply_t`: a reply tree shaped like hiredis's `redisReply` (same type numbers), built
//! from the core's `Reply` and owned by the caller until `pool_reply_free`.

use std::ffi::c_char;

use super::panic::ffi_boundary;
use crate::redis::resp::Reply;

/// A bulk string (`$`): `str`/`len`.
pub const POOL_REPLY_STRING: i32 = 1;
/// An array (`*`): `element`/`elements`.
pub const POOL_REPLY_ARRAY: i32 = 2;
/// An integer (`:`): `integer`.
pub const POOL_REPLY_INTEGER: i32 = 3;
/// A nil (`$-1`, `*-1`, RESP3 `_`).
pub const POOL_REPLY_NIL: i32 = 4;
/// A simple string (`+`), e.g. "OK": `str`/`len`.
pub const POOL_REPLY_STATUS: i32 = 5;
/// An error reply (`-`, RESP3 `!`), e.g. "WRONGTYPE ...": `str`/`len`. The call itself
/// succeeded (POOL_OK) and the conn stays good.
pub const POOL_REPLY_ERROR: i32 = 6;
/// A double (RESP3 `,`): `dval`, and its text in `str`/`len` ("inf", "1.5").
pub const POOL_REPLY_DOUBLE: i32 = 7;
/// A boolean (RESP3 `#`): `integer` 0 or 1.
pub const POOL_REPLY_BOOL: i32 = 8;
/// A map (RESP3 `%`): `element` holds key0, value0, key1, value1, ...; `elements` counts
/// keys and values (2 per entry).
pub const POOL_REPLY_MAP: i32 = 9;
/// A set (RESP3 `~`): `element`/`elements`.
pub const POOL_REPLY_SET: i32 = 10;
/// A push message (RESP3 `>`, e.g. pub/sub messages): `element`/`elements`.
pub const POOL_REPLY_PUSH: i32 = 12;
/// A big number (RESP3 `(`): its digits in `str`/`len`.
pub const POOL_REPLY_BIGNUM: i32 = 13;
/// A verbatim string (RESP3 `=`): the text in `str`/`len`, its 3-letter format ("txt",
/// "mkd") in `vtype`.
pub const POOL_REPLY_VERB: i32 = 14;

/// One reply, possibly the root of a tree. Type numbers equal hiredis's REDIS_REPLY_*.
/// Fields that do not apply to a type are 0 / NULL. `str` is NUL-terminated too (binary
/// data may contain NULs: use `len`). Everything is owned by the root reply: release it
/// with pool_reply_free, once; never free or keep a child.
#[repr(C)]
pub struct pool_reply {
    /// POOL_REPLY_*.
    pub r#type: i32,
    /// INTEGER; BOOL as 0/1.
    pub integer: i64,
    /// DOUBLE.
    pub dval: f64,
    /// Length of `str` in bytes, without the terminating NUL.
    pub len: usize,
    /// STRING, STATUS, ERROR, DOUBLE and BIGNUM text, VERB body. NULL for other types.
    pub str: *mut c_char,
    /// VERB: the format, 3 letters and a NUL.
    pub vtype: [c_char; 4],
    /// ARRAY, SET, PUSH: the number of elements; MAP: keys plus values.
    pub elements: usize,
    /// The `elements` children; NULL when there are none.
    pub element: *mut *mut pool_reply,
}

/// See `struct pool_reply`.
pub type pool_reply_t = pool_reply;

impl pool_reply {
    fn empty(kind: i32) -> Self {
        pool_reply {
            r#type: kind,
            integer: 0,
            dval: 0.0,
            len: 0,
            str: std::ptr::null_mut(),
            vtype: [0; 4],
            elements: 0,
            element: std::ptr::null_mut(),
        }
    }

    /// `text` as this reply's NUL-terminated `str`; None (and nothing changed) when memory
    /// runs out.
    fn set_text(&mut self, mut text: Vec<u8>) -> Option<()> {
        may_allocate()?;
        text.try_reserve_exact(1).ok()?;
        self.len = text.len();
        text.push(0);
        self.str = Box::into_raw(text.into_boxed_slice()).cast::<c_char>();
        Some(())
    }

    /// Makes this (empty) reply stand for `reply`, except for the elements of a non-empty
    /// aggregate, which are returned for `into_c` to convert. None when memory runs out
    /// (nothing is then owned by this reply).
    fn start(&mut self, reply: Reply) -> Option<Option<Vec<Reply>>> {
        let (kind, text, children) = match reply {
            Reply::String(s) => (POOL_REPLY_STRING, Some(s), None),
            Reply::Status(s) => (POOL_REPLY_STATUS, Some(s), None),
            Reply::Error(s) => (POOL_REPLY_ERROR, Some(s), None),
            Reply::Integer(i) => {
                self.integer = i;
                (POOL_REPLY_INTEGER, None, None)
            }
            Reply::Nil => (POOL_REPLY_NIL, None, None),
            Reply::Double { value, text } => {
                self.dval = value;
                (POOL_REPLY_DOUBLE, Some(text.into_vec()), None)
            }
            Reply::Bool(b) => {
                self.integer = i64::from(b);
                (POOL_REPLY_BOOL, None, None)
            }
            Reply::Array(v) => (POOL_REPLY_ARRAY, None, Some(v)),
            Reply::Map(v) => (POOL_REPLY_MAP, None, Some(v)),
            Reply::Set(v) => (POOL_REPLY_SET, None, Some(v)),
            Reply::Push(v) => (POOL_REPLY_PUSH, None, Some(v)),
            Reply::BigNum(s) => (POOL_REPLY_BIGNUM, Some(s), None),
            Reply::Verb { format, text } => {
                for (d, s) in self.vtype.iter_mut().zip(format) {
                    *d = s as c_char;
                }
                (POOL_REPLY_VERB, Some(text), None)
            }
        };
        self.r#type = kind;
        if let Some(text) = text {
            self.set_text(text)?;
        }
        Some(children.filter(|c| !c.is_empty()))
    }
}

/// An aggregate whose children are being converted. They live in one block (`element[0]`
/// is its start), not one allocation each: 64 bytes and a pointer per element, not 64 +
/// the allocator's overhead. The block is filled from its end while `children` gives back
/// its memory as it empties, so the Rust and the C element tables of a huge aggregate never
/// both exist in full.
struct Open {
    /// The reply the block goes to (in its parent's block, or the root).
    dst: *mut pool_reply,
    children: Vec<Reply>,
    n: usize,
    /// Capacity `n`, length 0: `block[next..n]` are written.
    block: Vec<pool_reply>,
    next: usize,
    /// Capacity `n`: `element` is made at the end without allocating.
    ptrs: Vec<*mut pool_reply>,
}

impl Open {
    fn new(dst: *mut pool_reply, children: Vec<Reply>) -> Option<Open> {
        may_allocate()?;
        let n = children.len();
        let mut block = Vec::new();
        let mut ptrs = Vec::new();
        block.try_reserve_exact(n).ok()?;
        ptrs.try_reserve_exact(n).ok()?;
        Some(Open {
            dst,
            children,
            n,
            block,
            next: n,
            ptrs,
        })
    }

    /// The next child's slot in the block, written empty, and the child; None when all are
    /// converted.
    fn next_child(&mut self) -> Option<(*mut pool_reply, Reply)> {
        /// Give back the emptied tail of `children` every this many elements (2 MiB).
        const SHRINK_STEP: usize = 1 << 16;
        let child = self.children.pop()?;
        self.next -= 1;
        let slot = self.block.spare_capacity_mut()[self.next].write(pool_reply::empty(0));
        if self.next % SHRINK_STEP == 0
            && self.children.capacity() - self.children.len() >= SHRINK_STEP
        {
            // A shrinking realloc: done in place (or by mremap) by the allocator.
            self.children.shrink_to_fit();
        }
        Some((slot, child))
    }

    /// Hands the finished block to `dst`.
    fn close(mut self) {
        // SAFETY: all `n` slots were written (`children` held `n` elements).
        unsafe { self.block.set_len(self.n) };
        // Exact capacity: boxing neither reallocates nor moves the elements.
        let block = Box::into_raw(self.block.into_boxed_slice()).cast::<pool_reply>();
        // SAFETY: `block` holds `n` elements, so every `add(i)` for i < n stays inside it.
        self.ptrs
            .extend((0..self.n).map(|i| unsafe { block.add(i) }));
        // SAFETY: `dst` is the root or a slot of a block still open below this one on the
        // stack: valid, and written by nobody else meanwhile.
        let dst = unsafe { &mut *self.dst };
        dst.elements = self.n;
        dst.element = Box::into_raw(self.ptrs.into_boxed_slice()).cast::<*mut pool_reply>();
    }

    /// Frees what was converted so far (memory ran out). Opens above this one on the stack
    /// must have been abandoned first.
    fn abandon(mut self) {
        let n = self.n;
        for slot in &mut self.block.spare_capacity_mut()[self.next..n] {
            // SAFETY: block[next..n] were written and are owned here; a slot whose own
            // block was open is empty by now (abandoned first, never closed).
            unsafe { free_contents(slot.assume_init_mut()) };
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests make the n-th allocation of a conversion fail.
    static ALLOCATIONS_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Whether the next allocation may succeed: always, except in tests of running out.
fn may_allocate() -> Option<()> {
    #[cfg(test)]
    {
        let left = ALLOCATIONS_LEFT.get();
        ALLOCATIONS_LEFT.set(left.saturating_sub(1));
        if left == 0 {
            return None;
        }
    }
    Some(())
}

/// Builds the C tree; None when memory runs out (nothing is leaked). The root is a single
/// allocation of one `pool_reply`. Iterative, with its own stack: the machine stack used
/// does not grow with the nesting (up to 512 levels), whatever thread calls it.
pub(crate) fn into_c(reply: Reply) -> Option<*mut pool_reply> {
    let mut root: Vec<pool_reply> = Vec::new();
    root.try_reserve_exact(1).ok()?;
    root.push(pool_reply::empty(0));
    let root = Box::into_raw(root.into_boxed_slice()).cast::<pool_reply>();
    let mut stack: Vec<Open> = Vec::new();
    let built = (|| {
        // SAFETY: `root` was just allocated and is owned here.
        if let Some(children) = unsafe { &mut *root }.start(reply)? {
            stack.try_reserve(1).ok()?;
            stack.push(Open::new(root, children)?);
        }
        while let Some(top) = stack.last_mut() {
            let Some((slot, child)) = top.next_child() else {
                if let Some(done) = stack.pop() {
                    done.close();
                }
                continue;
            };
            // SAFETY: `slot` was just written in the top block, which is never reallocated.
            if let Some(children) = unsafe { &mut *slot }.start(child)? {
                stack.try_reserve(1).ok()?;
                stack.push(Open::new(slot, children)?);
            }
        }
        Some(())
    })();
    if built.is_none() {
        while let Some(open) = stack.pop() {
            open.abandon();
        }
        // SAFETY: the root, its open blocks abandoned, is freed once.
        unsafe { free_tree(root) };
        return None;
    }
    Some(root)
}

/// The start of the str of `r` freed, and `str` reset.
///
/// # Safety
/// `r.str` is NULL or the boxed slice of `len + 1` bytes made by `set_text`.
unsafe fn free_text(r: &mut pool_reply) {
    if !r.str.is_null() {
        let bytes = std::ptr::slice_from_raw_parts_mut(r.str.cast::<u8>(), r.len + 1);
        // SAFETY: per contract.
        drop(unsafe { Box::from_raw(bytes) });
        r.str = std::ptr::null_mut();
    }
}

/// Takes the children of `r`: its pointer array is freed and (block, count) returned.
///
/// # Safety
/// `r.element` is NULL or the boxed pointer slice made by `Open::close`.
unsafe fn take_block(r: &mut pool_reply) -> (*mut pool_reply, usize) {
    if r.element.is_null() {
        return (std::ptr::null_mut(), 0);
    }
    let ptrs = std::ptr::slice_from_raw_parts_mut(r.element, r.elements);
    // SAFETY: per contract; its first pointer is the start of the children's block.
    let ptrs = unsafe { Box::from_raw(ptrs) };
    r.element = std::ptr::null_mut();
    (ptrs[0], r.elements)
}

/// Frees what `r` owns (its text, its children and theirs), not `r` itself. Iterative,
/// without allocating: going down into a child, the position in its parent's block is
/// kept in the child's own fields (already freed), and read back coming up.
///
/// # Safety
/// `r` was built by `into_c` (or is part of a tree it built) and its contents are freed
/// once.
unsafe fn free_contents(r: &mut pool_reply) {
    let root: *mut pool_reply = r;
    // SAFETY (whole function): every node reached is part of the tree `r` owns; each text
    // and block is freed once, after the nodes in it were done with.
    unsafe {
        free_text(&mut *root);
        let (mut block, mut n) = take_block(&mut *root);
        let mut i = 0;
        let mut cur = root;
        loop {
            if i < n {
                let child = block.add(i);
                i += 1;
                free_text(&mut *child);
                let (cb, cn) = take_block(&mut *child);
                if cb.is_null() {
                    continue;
                }
                // Down: remember where we were, in the child's freed fields.
                (*child).str = block.cast::<c_char>();
                (*child).len = n;
                (*child).elements = i;
                (*child).element = cur.cast::<*mut pool_reply>();
                (cur, block, n, i) = (child, cb, cn, 0);
            } else {
                if !block.is_null() {
                    drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(block, n)));
                }
                if cur == root {
                    return;
                }
                // Up: back to the parent's block, after `cur`.
                let c = &mut *cur;
                (block, n, i) = (c.str.cast::<pool_reply>(), c.len, c.elements);
                cur = c.element.cast::<pool_reply>();
            }
        }
    }
}

/// Frees a tree built by `into_c`.
///
/// # Safety
/// `r` came from `into_c` and is freed once.
pub(crate) unsafe fn free_tree(r: *mut pool_reply) {
    // SAFETY: per contract, `r` is the boxed one-element slice made by `into_c`.
    let mut root = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(r, 1)) };
    // SAFETY: built by `into_c`, freed once (now).
    unsafe { free_contents(&mut root[0]) };
}

/// Frees a reply returned by pool_conn_command, with everything it contains. NULL is fine.
/// Pass only the root reply, once. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_reply_free(reply: *mut pool_reply_t) {
    ffi_boundary!((), {
        if !reply.is_null() {
            // SAFETY: per the header, a root reply from pool_conn_command, freed once.
            unsafe { free_tree(reply) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_built_in_blocks_and_freed() {
        let reply = Reply::Array(vec![
            Reply::Integer(7),
            Reply::String(b"ab".to_vec()),
            Reply::Map(vec![
                Reply::Status(b"k".to_vec()),
                Reply::Double {
                    value: 1.5,
                    text: b"1.5"[..].into(),
                },
            ]),
            Reply::Array(vec![]),
            Reply::Verb {
                format: *b"txt",
                text: b"hi".to_vec(),
            },
        ]);
        let root = into_c(reply).unwrap();
        // SAFETY: a tree just built by into_c, read before it is freed.
        unsafe {
            let r = &*root;
            assert_eq!((r.r#type, r.elements), (POOL_REPLY_ARRAY, 5));
            let kids: Vec<&pool_reply> = (0..5).map(|i| &**r.element.add(i)).collect();
            for i in 1..5 {
                assert_eq!(*r.element.add(i), r.element.read().add(i), "one block");
            }
            assert_eq!((kids[0].r#type, kids[0].integer), (POOL_REPLY_INTEGER, 7));
            assert_eq!(
                std::ffi::CStr::from_ptr(kids[1].str).to_bytes(),
                b"ab",
                "NUL-terminated"
            );
            assert_eq!((kids[2].r#type, kids[2].elements), (POOL_REPLY_MAP, 2));
            let v = &**kids[2].element.add(1);
            assert_eq!((v.r#type, v.dval, v.len), (POOL_REPLY_DOUBLE, 1.5, 3));
            assert!(kids[3].element.is_null() && kids[3].elements == 0);
            assert_eq!(
                kids[4].vtype,
                [b't' as c_char, b'x' as c_char, b't' as c_char, 0]
            );
            free_tree(root);
        }
    }

    /// The reply a C tree stands for (doubles compared by their text).
    unsafe fn back(r: &pool_reply) -> Reply {
        // SAFETY: a tree built by into_c, read before it is freed.
        unsafe {
            let text = || std::slice::from_raw_parts(r.str.cast::<u8>(), r.len).to_vec();
            let kids = || {
                (0..r.elements)
                    .map(|i| back(&**r.element.add(i)))
                    .collect::<Vec<_>>()
            };
            match r.r#type {
                POOL_REPLY_STRING => Reply::String(text()),
                POOL_REPLY_STATUS => Reply::Status(text()),
                POOL_REPLY_ERROR => Reply::Error(text()),
                POOL_REPLY_INTEGER => Reply::Integer(r.integer),
                POOL_REPLY_NIL => Reply::Nil,
                POOL_REPLY_DOUBLE => Reply::Double {
                    value: r.dval,
                    text: text().into(),
                },
                POOL_REPLY_BOOL => Reply::Bool(r.integer != 0),
                POOL_REPLY_ARRAY => Reply::Array(kids()),
                POOL_REPLY_MAP => Reply::Map(kids()),
                POOL_REPLY_SET => Reply::Set(kids()),
                POOL_REPLY_PUSH => Reply::Push(kids()),
                POOL_REPLY_BIGNUM => Reply::BigNum(text()),
                _ => Reply::Verb {
                    format: [r.vtype[0] as u8, r.vtype[1] as u8, r.vtype[2] as u8],
                    text: text(),
                },
            }
        }
    }

    fn tree(seed: &mut u64, depth: usize) -> Reply {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let pick = *seed % if depth > 5 { 8 } else { 12 };
        let n = (*seed >> 8) as usize % 5;
        match pick {
            0 => Reply::String(vec![b'a'; n]),
            1 => Reply::Status(b"OK".to_vec()),
            2 => Reply::Error(b"ERR".to_vec()),
            3 => Reply::Integer(*seed as i64),
            4 => Reply::Nil,
            5 => Reply::Double {
                value: 0.5,
                text: b"0.5"[..].into(),
            },
            6 => Reply::BigNum(b"123".to_vec()),
            7 => Reply::Verb {
                format: *b"mkd",
                text: vec![b'v'; n],
            },
            k => {
                let items = (0..n).map(|_| tree(seed, depth + 1)).collect();
                match k {
                    8 => Reply::Array(items),
                    9 => Reply::Map(items),
                    10 => Reply::Set(items),
                    _ => Reply::Push(items),
                }
            }
        }
    }

    #[test]
    fn random_trees_convert_exactly() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let r = tree(&mut seed, 0);
            let c = into_c(r.clone()).unwrap();
            // SAFETY: just built, freed once.
            unsafe {
                assert_eq!(back(&*c), r);
                free_tree(c);
            }
        }
    }

    #[test]
    fn the_deepest_reply_converts_on_a_small_stack() {
        let mut r = Reply::Integer(1);
        for i in 0..crate::redis::resp::MAX_DEPTH {
            r = if i % 2 == 0 {
                Reply::Array(vec![Reply::Nil, r, Reply::String(b"x".to_vec())])
            } else {
                Reply::Map(vec![Reply::Status(b"k".to_vec()), r])
            };
        }
        // A recursive conversion needed over 128 KiB here (release) and over 1 MiB (debug).
        let ok = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let c = into_c(r).unwrap();
                // SAFETY: just built, freed once.
                unsafe { free_tree(c) };
            })
            .unwrap()
            .join();
        assert!(ok.is_ok());
    }

    #[test]
    fn running_out_of_memory_anywhere_frees_what_was_built() {
        let mut seed = 7;
        let mut failures = 0;
        for _ in 0..200 {
            let r = tree(&mut seed, 0);
            for k in 0.. {
                ALLOCATIONS_LEFT.set(k);
                let c = into_c(r.clone());
                ALLOCATIONS_LEFT.set(usize::MAX);
                match c {
                    None => failures += 1,
                    Some(c) => {
                        // SAFETY: just built, freed once.
                        unsafe {
                            assert_eq!(back(&*c), r);
                            free_tree(c);
                        }
                        break;
                    }
                }
            }
        }
        // Run under valgrind (scripts or by hand) to see that nothing leaks.
        assert!(failures > 200, "{failures}");
    }
}
