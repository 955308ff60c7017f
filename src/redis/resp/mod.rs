//! The RESP2/RESP3 wire format: encoding commands and an incremental reply parser. Pure, no I/O.
//!
//! The parser is a resumable state machine with an explicit stack of open aggregates: every
//! complete element is consumed from the buffer as soon as it is parsed, so a large reply
//! arriving in many small pieces costs time linear in its size. Only the element being received
//! is looked at again when more bytes come, and a line that is still incomplete is not re-scanned
//! from its start. Nothing in the input is trusted: declared lengths and counts are checked
//! against fixed limits before use, and no allocation is sized from a declared count beyond a
//! small cap.
//!
//! This file holds what both directions share (the reply type, its limits, the errors);
//! `encode` writes commands, `parser` reads replies.

mod encode;
mod parser;

pub use encode::encode_command;
pub use parser::Parser;

use std::fmt;

/// Caps on one reply, counted cumulatively over the whole reply: its nested elements, and any
/// RESP3 attributes read with it, included. Memory for a reply is about
/// `max_bytes + max_elements * size_of::<Reply>()`, and reading it takes time in proportion,
/// whatever the peer announces or sends.
///
/// cbindgen:ignore
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// String data: the bytes of every bulk string, simple string, error, verbatim string,
    /// big number and double text (not the framing, nor integer and length lines, which the
    /// element count bounds).
    pub max_bytes: u64,
    /// Elements: every value, aggregate and attribute, nested ones included; a map entry
    /// counts two (its key and its value).
    pub max_elements: u64,
}

/// cbindgen:ignore
impl ReplyLimits {
    /// 512 MiB, Redis's own `proto-max-bulk-len` default: the largest string a default Redis
    /// stores is readable.
    pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
    /// 2^24 (16,777,216): an element costs `size_of::<Reply>()` (32 bytes) in the reply tree
    /// however few bytes it has on the wire, so this caps the tree of small elements at
    /// 512 MiB too, as `DEFAULT_MAX_BYTES` caps string data. LRANGE/HGETALL/KEYS replies
    /// beyond 16 M elements are better read in pages (SCAN, ranges); raise it if needed.
    pub const DEFAULT_MAX_ELEMENTS: u64 = 1 << 24;
    pub const DEFAULT: ReplyLimits = ReplyLimits {
        max_bytes: Self::DEFAULT_MAX_BYTES,
        max_elements: Self::DEFAULT_MAX_ELEMENTS,
    };
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The deepest nesting of aggregates (attributes included) accepted.
pub const MAX_DEPTH: usize = 512;

/// Header lines holding a length, a count, an integer, a boolean or a null are short: the
/// longest valid one, "-9223372036854775808", has 20 bytes. A longer line is garbage, and the
/// limit stops a hostile peer from making us buffer a "number" forever.
const MAX_NUMBER_LINE: usize = 32;

/// A double is written by Redis with `%.17g`; 512 bytes is far beyond any valid one while still
/// letting through the longest fixed-point spelling of a finite double (about 330 bytes).
const MAX_DOUBLE_LINE: usize = 512;

/// Preallocation for an aggregate's elements is capped: its declared count is not trusted.
const PREALLOC_ELEMENTS: usize = 1024;

/// The buffer's smallest allocation, and the size it shrinks back to after a huge reply.
const INITIAL_BUF: usize = 32 * 1024;

/// After a reply leaves the buffer empty, a buffer bigger than this is given back to the
/// allocator, so that one huge reply does not pin its memory for the conn's lifetime.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// A bulk string at least this long is taken out of the parser as its buffer, not copied.
const STEAL_ABOVE: usize = 1024 * 1024;

/// How many offending bytes an error message shows.
const SNIPPET_LEN: usize = 32;

/// One reply, RESP2 and RESP3 (shaped so the C layer can mirror hiredis's `redisReply`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `$` bulk string.
    String(Vec<u8>),
    /// `+` simple string.
    Status(Vec<u8>),
    /// `-` simple error and `!` bulk error (RESP3); the text without the leading `-`.
    Error(Vec<u8>),
    /// `:` integer.
    Integer(i64),
    /// `$-1`, `*-1`, and RESP3 `_`.
    Nil,
    /// `,` double (RESP3), with the text it was sent as ("inf", "-inf", "nan", "1.5e3"). The
    /// text is a boxed slice, not a `Vec`: it keeps this variant, and so every `Reply`, at
    /// 32 bytes.
    Double { value: f64, text: Box<[u8]> },
    /// `#t` / `#f` (RESP3).
    Bool(bool),
    /// `*` array.
    Array(Vec<Reply>),
    /// `%` map (RESP3), flat: key0, value0, key1, value1, …
    Map(Vec<Reply>),
    /// `~` set (RESP3).
    Set(Vec<Reply>),
    /// `>` push (RESP3).
    Push(Vec<Reply>),
    /// `(` big number (RESP3): the digits as text.
    BigNum(Vec<u8>),
    /// `=` verbatim string (RESP3): "txt:Some text" gives format `b"txt"`, text `b"Some text"`.
    Verb { format: [u8; 3], text: Vec<u8> },
}

impl Reply {
    /// A short description for messages: the type and the start of its text, or its size;
    /// never the whole reply, which may be large or deeply nested (`Debug` shows it all).
    pub fn summary(&self) -> String {
        let n = |v: &Vec<Reply>| v.len();
        match self {
            Reply::String(b) => format!("string {}", Snippet::new(b)),
            Reply::Status(b) => format!("status {}", Snippet::new(b)),
            Reply::Error(b) => format!("error {}", Snippet::new(b)),
            Reply::Integer(i) => format!("integer {i}"),
            Reply::Nil => "nil".to_owned(),
            Reply::Double { text, .. } => format!("double {}", Snippet::new(text)),
            Reply::Bool(b) => format!("boolean {b}"),
            Reply::Array(v) => format!("array of {} elements", n(v)),
            Reply::Map(v) => format!("map of {} entries", n(v) / 2),
            Reply::Set(v) => format!("set of {} elements", n(v)),
            Reply::Push(v) => format!("push of {} elements", n(v)),
            Reply::BigNum(b) => format!("big number {}", Snippet::new(b)),
            Reply::Verb { text, .. } => format!("verbatim string {}", Snippet::new(text)),
        }
    }
}

/// A short excerpt of offending input, shown escaped (and cut) in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Snippet {
    fn new(bytes: &[u8]) -> Self {
        Snippet {
            bytes: bytes[..bytes.len().min(SNIPPET_LEN)].to_vec(),
            truncated: bytes.len() > SNIPPET_LEN,
        }
    }

    /// The excerpt's raw bytes (at most 32).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}", self.bytes.escape_ascii())?;
        f.write_str(if self.truncated { "\"…" } else { "\"" })
    }
}

/// The peer sent something that is not valid RESP. The stream cannot be resynchronised: the
/// conn must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown reply type byte '{}' at {context}", .byte.escape_ascii())]
    UnknownType { byte: u8, context: Snippet },
    #[error("streamed types not supported ('{kind}' with length \"?\")")]
    Streamed { kind: char },
    #[error("bad length in '{kind}' header: {line}")]
    BadLength { kind: char, line: Snippet },
    /// The reply's string data passes `ReplyLimits::max_bytes` (refused as soon as a length
    /// announces it, before the bytes come).
    #[error("reply larger than the max_reply_bytes limit ({max} bytes of string data)")]
    TooManyBytes { max: u64 },
    /// The reply's elements pass `ReplyLimits::max_elements` (refused as soon as a count
    /// announces it).
    #[error("reply has more elements than the max_reply_elements limit ({max})")]
    TooManyElements { max: u64 },
    /// Memory for the reply could not be allocated: the reply is dropped, not the process.
    #[error("out of memory: {bytes} bytes for a reply could not be allocated")]
    OutOfMemory { bytes: usize },
    #[error("aggregates nested deeper than {} levels", MAX_DEPTH)]
    TooDeep,
    #[error("missing CRLF {place}: {found}")]
    MissingCrlf { place: &'static str, found: Snippet },
    #[error("'{kind}' line longer than {limit} bytes without CRLF")]
    LineTooLong { kind: char, limit: usize },
    #[error("integer reply is not a 64-bit integer: {0}")]
    BadInteger(Snippet),
    #[error("malformed double: {0}")]
    BadDouble(Snippet),
    #[error("malformed boolean (expected t or f): {0}")]
    BadBool(Snippet),
    #[error("malformed verbatim string (expected a \"xxx:\" format prefix): {0}")]
    BadVerbatim(Snippet),
    #[error("malformed big number: {0}")]
    BadBigNum(Snippet),
    #[error("malformed null (expected nothing after '_'): {0}")]
    BadNull(Snippet),
}
