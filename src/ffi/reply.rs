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

    fn with_text(kind: i32, text: Vec<u8>) -> Self {
        let mut r = pool_reply::empty(kind);
        r.len = text.len();
        let mut bytes = text;
        bytes.push(0);
        r.str = Box::into_raw(bytes.into_boxed_slice()).cast::<c_char>();
        r
    }

    fn with_children(kind: i32, children: Vec<Reply>) -> Self {
        let mut r = pool_reply::empty(kind);
        if children.is_empty() {
            return r;
        }
        let ptrs: Box<[*mut pool_reply]> = children.into_iter().map(into_c).collect();
        r.elements = ptrs.len();
        r.element = Box::into_raw(ptrs).cast::<*mut pool_reply>();
        r
    }
}

/// Builds the C tree. Depth is bounded by the RESP parser's nesting limit.
pub(crate) fn into_c(reply: Reply) -> *mut pool_reply {
    let r = match reply {
        Reply::String(s) => pool_reply::with_text(POOL_REPLY_STRING, s),
        Reply::Status(s) => pool_reply::with_text(POOL_REPLY_STATUS, s),
        Reply::Error(s) => pool_reply::with_text(POOL_REPLY_ERROR, s),
        Reply::Integer(i) => pool_reply {
            integer: i,
            ..pool_reply::empty(POOL_REPLY_INTEGER)
        },
        Reply::Nil => pool_reply::empty(POOL_REPLY_NIL),
        Reply::Double { value, text } => pool_reply {
            dval: value,
            ..pool_reply::with_text(POOL_REPLY_DOUBLE, text.into_vec())
        },
        Reply::Bool(b) => pool_reply {
            integer: i64::from(b),
            ..pool_reply::empty(POOL_REPLY_BOOL)
        },
        Reply::Array(v) => pool_reply::with_children(POOL_REPLY_ARRAY, v),
        Reply::Map(v) => pool_reply::with_children(POOL_REPLY_MAP, v),
        Reply::Set(v) => pool_reply::with_children(POOL_REPLY_SET, v),
        Reply::Push(v) => pool_reply::with_children(POOL_REPLY_PUSH, v),
        Reply::BigNum(s) => pool_reply::with_text(POOL_REPLY_BIGNUM, s),
        Reply::Verb { format, text } => {
            let mut r = pool_reply::with_text(POOL_REPLY_VERB, text);
            for (d, s) in r.vtype.iter_mut().zip(format) {
                *d = s as c_char;
            }
            r
        }
    };
    Box::into_raw(Box::new(r))
}

/// Frees a tree built by `into_c`.
///
/// # Safety
/// `r` came from `into_c` and is freed once.
unsafe fn free_tree(r: *mut pool_reply) {
    // SAFETY: per contract, `r` is a Box made by `into_c`.
    let r = unsafe { Box::from_raw(r) };
    if !r.str.is_null() {
        let bytes = std::ptr::slice_from_raw_parts_mut(r.str.cast::<u8>(), r.len + 1);
        // SAFETY: `str` is the boxed slice of len + 1 bytes made by `with_text`.
        drop(unsafe { Box::from_raw(bytes) });
    }
    if !r.element.is_null() {
        let ptrs = std::ptr::slice_from_raw_parts_mut(r.element, r.elements);
        // SAFETY: `element` is the boxed slice of `elements` children made by `with_children`.
        let ptrs = unsafe { Box::from_raw(ptrs) };
        for &child in ptrs.iter() {
            // SAFETY: each child was made by `into_c` and is owned by this parent only.
            unsafe { free_tree(child) };
        }
    }
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
