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
        text.try_reserve_exact(1).ok()?;
        self.len = text.len();
        text.push(0);
        self.str = Box::into_raw(text.into_boxed_slice()).cast::<c_char>();
        Some(())
    }

    /// `children` as this reply's elements; None (and nothing changed, nothing leaked) when
    /// memory runs out. The children live in one block (`element[0]` is its start), not one
    /// allocation each: 64 bytes and a pointer per element, not 64 + the allocator's
    /// overhead, and one allocation per aggregate rather than one per element. The block is
    /// filled from its end while `children` gives back its memory as it empties, so the
    /// Rust and the C element tables of a huge aggregate never both exist in full.
    fn set_children(&mut self, mut children: Vec<Reply>) -> Option<()> {
        /// Give back the emptied tail of `children` every this many elements (2 MiB).
        const SHRINK_STEP: usize = 1 << 16;
        let n = children.len();
        if n == 0 {
            return Some(());
        }
        let mut block: Vec<pool_reply> = Vec::new();
        let mut ptrs: Vec<*mut pool_reply> = Vec::new();
        if block.try_reserve_exact(n).is_err() || ptrs.try_reserve_exact(n).is_err() {
            return None;
        }
        let slots = &mut block.spare_capacity_mut()[..n];
        // slots[next..] are filled.
        let mut next = n;
        while let Some(child) = children.pop() {
            let mut c = pool_reply::empty(POOL_REPLY_NIL);
            if c.fill(child).is_none() {
                for built in &mut slots[next..] {
                    // SAFETY: slots[next..] were written (below) and are owned here.
                    unsafe { free_contents(built.assume_init_mut()) };
                }
                return None;
            }
            next -= 1;
            slots[next].write(c);
            if next % SHRINK_STEP == 0 && children.capacity() - children.len() >= SHRINK_STEP {
                // A shrinking realloc: done in place (or by mremap) by the allocator.
                children.shrink_to_fit();
            }
        }
        // SAFETY: all `n` slots were written: `children` held `n` elements.
        unsafe { block.set_len(n) };
        // Exact capacity: boxing neither reallocates nor moves the elements.
        let block = Box::into_raw(block.into_boxed_slice()).cast::<pool_reply>();
        // SAFETY: `block` holds `n` elements, so every `add(i)` for i < n stays inside it.
        ptrs.extend((0..n).map(|i| unsafe { block.add(i) }));
        self.elements = n;
        self.element = Box::into_raw(ptrs.into_boxed_slice()).cast::<*mut pool_reply>();
        Some(())
    }

    /// Makes this (empty) reply stand for `reply`; None (and still empty) when memory runs
    /// out. Recursion depth is bounded by the RESP parser's nesting limit.
    fn fill(&mut self, reply: Reply) -> Option<()> {
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
        let done = match (text, children) {
            (Some(text), _) => self.set_text(text),
            (None, Some(children)) => self.set_children(children),
            (None, None) => Some(()),
        };
        if done.is_none() {
            *self = pool_reply::empty(POOL_REPLY_NIL);
        }
        done
    }
}

/// Builds the C tree; None when memory runs out (nothing is leaked). The root is a single
/// allocation of one `pool_reply`.
pub(crate) fn into_c(reply: Reply) -> Option<*mut pool_reply> {
    let mut root: Vec<pool_reply> = Vec::new();
    root.try_reserve_exact(1).ok()?;
    let mut r = pool_reply::empty(POOL_REPLY_NIL);
    r.fill(reply)?;
    root.push(r);
    Some(Box::into_raw(root.into_boxed_slice()).cast::<pool_reply>())
}

/// Frees what `r` owns (its text, its children and theirs), not `r` itself.
///
/// # Safety
/// `r` was filled by `pool_reply::fill` and its contents are freed once.
unsafe fn free_contents(r: &mut pool_reply) {
    if !r.str.is_null() {
        let bytes = std::ptr::slice_from_raw_parts_mut(r.str.cast::<u8>(), r.len + 1);
        // SAFETY: `str` is the boxed slice of len + 1 bytes made by `set_text`.
        drop(unsafe { Box::from_raw(bytes) });
        r.str = std::ptr::null_mut();
    }
    if !r.element.is_null() {
        let ptrs = std::ptr::slice_from_raw_parts_mut(r.element, r.elements);
        // SAFETY: `element` is the boxed slice of `elements` pointers made by
        // `set_children`, the first of which is the start of the children's block.
        let ptrs = unsafe { Box::from_raw(ptrs) };
        let block = std::ptr::slice_from_raw_parts_mut(ptrs[0], r.elements);
        // SAFETY: the block is the boxed slice of `elements` children made by `set_children`.
        let mut block = unsafe { Box::from_raw(block) };
        for child in block.iter_mut() {
            // SAFETY: each child was filled by `fill` and is owned by this block only.
            unsafe { free_contents(child) };
        }
        r.element = std::ptr::null_mut();
    }
}

/// Frees a tree built by `into_c`.
///
/// # Safety
/// `r` came from `into_c` and is freed once.
unsafe fn free_tree(r: *mut pool_reply) {
    // SAFETY: per contract, `r` is the boxed one-element slice made by `into_c`.
    let mut root = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(r, 1)) };
    // SAFETY: filled by `into_c`, freed once (now).
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
}
