//! The incremental reply parser (see the module's own doc for its shape and its limits).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Array,
    Map,
    Set,
    Push,
    /// A RESP3 attribute: its elements are read and dropped.
    Attribute,
}

/// An aggregate whose elements are still arriving.
struct Frame {
    kind: Aggregate,
    /// Elements still to come (keys and values counted separately for maps).
    remaining: u64,
    items: Vec<Reply>,
}

impl Frame {
    /// The finished reply, or `None` for an attribute (which is dropped).
    fn into_reply(self) -> Option<Reply> {
        Some(match self.kind {
            Aggregate::Array => Reply::Array(self.items),
            Aggregate::Map => Reply::Map(self.items),
            Aggregate::Set => Reply::Set(self.items),
            Aggregate::Push => Reply::Push(self.items),
            Aggregate::Attribute => return None,
        })
    }
}

/// What parsing the element at the front of the buffer gave.
enum Step {
    /// The element is not complete yet; nothing was consumed.
    NeedMore,
    /// A complete value (a scalar, a nil or an empty aggregate).
    Value(Reply),
    /// An aggregate header with this many elements (at least one) to come.
    Open(Aggregate, u64),
    /// An empty attribute: nothing to deliver, go on with the next element.
    Skip,
}

/// An incremental RESP2/RESP3 reply parser.
///
/// Bytes go in either by copy with [`Parser::feed`], or without a copy: [`Parser::spare`] hands
/// out writable space at the end of the internal buffer (for `recv` to fill), and
/// [`Parser::advance`] then says how much of it was filled. [`Parser::next_reply`] takes out
/// whole replies one at a time.
///
/// The buffer is reused from reply to reply: it is compacted (the unconsumed tail moved to the
/// front) only when more room is needed, and it grows by doubling. After a reply that left it
/// empty, a buffer that grew beyond 1 MiB shrinks back, so a single huge reply does not keep its
/// memory for the life of the conn.
///
/// After a [`ProtocolError`] the stream is out of step: what was buffered and half parsed is
/// dropped (its memory given back at once), and `next_reply` keeps returning that error
/// until [`Parser::clear`].
#[derive(Default)]
pub struct Parser {
    /// Initialised storage; `buf[pos..filled]` is received but unconsumed.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// How many bytes of the line after the type byte at `pos` were already searched for CR/LF,
    /// so a line arriving in pieces is scanned once. Reset whenever `pos` moves.
    scanned: usize,
    /// Open aggregates, innermost last; its length is the nesting depth.
    stack: Vec<Frame>,
    /// A top-level attribute was read; the reply it annotates has not been (so the stream is
    /// mid-reply even though the stack is empty).
    after_attribute: bool,
    failed: Option<ProtocolError>,
    limits: ReplyLimits,
    /// String data of the reply being read, so far (against `limits.max_bytes`).
    reply_bytes: u64,
    /// Elements of the reply being read: those received, plus those that open aggregates
    /// announced and that have not come yet (against `limits.max_elements`).
    reply_elements: u64,
    /// Size, from `pos`, of the bulk string being received once its header is in: the buffer
    /// grows to hold it but no further. A declared length only ever caps an allocation, it
    /// never sizes one. 0 when unknown.
    want: usize,
    /// Bytes examined by line scans, to let tests check that parsing stays linear.
    #[cfg(test)]
    work: u64,
}

impl fmt::Debug for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("buffered", &self.buffered())
            .field("capacity", &self.buf.len())
            .field("depth", &self.stack.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Parser {
    /// A parser with the default [`ReplyLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser whose replies are held to `limits`.
    pub fn with_limits(limits: ReplyLimits) -> Self {
        Parser {
            limits,
            ..Self::default()
        }
    }

    /// The limits replies are held to from the next reply on.
    pub fn set_limits(&mut self, limits: ReplyLimits) {
        self.limits = limits;
    }

    /// Appends received bytes (a copy; see [`Parser::spare`] to avoid it).
    ///
    /// # Panics
    /// If the buffer cannot grow (out of memory): for tests and tools; I/O uses
    /// [`Parser::try_spare`].
    pub fn feed(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.advance(bytes.len());
    }

    /// [`Parser::try_spare`], panicking when memory runs out (for tests and tools).
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        match self.try_spare(min) {
            Ok(space) => space,
            Err(e) => panic!("Parser::spare({min}): {e}"),
        }
    }

    /// Writable space of at least `min` bytes at the end of the buffer, to be filled in place
    /// (by `recv`) and then committed with [`Parser::advance`]. The space is initialised memory
    /// (zeroed when the buffer grows), so it can be handed out as a plain `&mut [u8]`; it may be
    /// larger than `min`. A buffer that cannot grow is `ProtocolError::OutOfMemory`, never an
    /// abort.
    pub fn try_spare(&mut self, min: usize) -> Result<&mut [u8], ProtocolError> {
        if self.buf.len() - self.filled < min {
            if self.pos > 0 {
                // Move only the unconsumed tail. Everything before `pos` was consumed, and the
                // parser consumes every complete element before asking for more bytes, so each
                // byte is moved at most once: compaction stays linear overall.
                self.buf.copy_within(self.pos..self.filled, 0);
                self.filled -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() - self.filled < min {
                let need = self
                    .filled
                    .checked_add(min)
                    .ok_or(ProtocolError::OutOfMemory { bytes: usize::MAX })?;
                // Doubling keeps copying linear overall; a bulk string whose size is known
                // (`want`, counted from `pos`, now 0) is not given more than it needs.
                let mut doubled = self.buf.len().saturating_mul(2);
                if self.want > 0 {
                    doubled = doubled.min(self.want);
                }
                let len = need.max(doubled).max(INITIAL_BUF);
                self.buf
                    .try_reserve_exact(len - self.buf.len())
                    .map_err(|_| ProtocolError::OutOfMemory { bytes: len })?;
                self.buf.resize(len, 0);
            }
        }
        Ok(&mut self.buf[self.filled..])
    }

    /// Commits `n` bytes written at the start of the last [`Parser::spare`] slice.
    ///
    /// # Panics
    /// If `n` is larger than the spare space: that is a bug in the caller, not bad input.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.filled,
            "Parser::advance({n}) beyond the spare space ({})",
            self.buf.len() - self.filled
        );
        self.filled += n;
    }

    /// Bytes received but not consumed yet. The elements of a partially received aggregate that
    /// are complete were already consumed (they live in the parser's state, not the buffer), so
    /// this is not a measure of how much of a reply has arrived; see [`Parser::is_clean`].
    pub fn buffered(&self) -> usize {
        self.filled - self.pos
    }

    /// True when nothing is buffered, no reply is half parsed and no error is pending: the
    /// stream is exactly between replies.
    pub fn is_clean(&self) -> bool {
        self.pos == self.filled
            && self.stack.is_empty()
            && !self.after_attribute
            && self.failed.is_none()
    }

    /// Drops all buffered bytes, any half-parsed reply and any pending error. The buffer's
    /// memory is kept.
    pub fn clear(&mut self) {
        self.pos = 0;
        self.filled = 0;
        self.scanned = 0;
        self.stack.clear();
        self.after_attribute = false;
        self.failed = None;
        self.reply_bytes = 0;
        self.reply_elements = 0;
        self.want = 0;
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed. RESP3 attributes are
    /// read and dropped: the reply they annotate is returned in their place.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.parse() {
            Ok(reply) => Ok(reply),
            Err(err) => {
                // What was parsed and buffered is of no use any more: give the memory back
                // now (the error may be that memory ran out), not when the conn is closed.
                self.stack = Vec::new();
                self.pos = 0;
                self.filled = 0;
                self.scanned = 0;
                self.want = 0;
                if self.buf.len() > INITIAL_BUF {
                    self.buf = Vec::new();
                }
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    fn parse(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let step = self.step()?;
            if matches!(step, Step::NeedMore) {
                return Ok(None);
            }
            self.count_element(&step)?;
            let mut value = match step {
                Step::NeedMore => return Ok(None),
                Step::Skip => {
                    self.after_attribute |= self.stack.is_empty();
                    continue;
                }
                Step::Open(kind, count) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(ProtocolError::TooDeep);
                    }
                    let mut items = Vec::new();
                    if kind != Aggregate::Attribute {
                        // The declared count is the peer's word: reserve no more than the
                        // bytes in hand can fill (an element takes 3 bytes at least), and a
                        // small cap. After `min` the value fits any usize.
                        let n = count
                            .min(PREALLOC_ELEMENTS as u64)
                            .min((self.buffered() / 3) as u64)
                            as usize;
                        items
                            .try_reserve_exact(n)
                            .map_err(|_| ProtocolError::OutOfMemory {
                                bytes: n * size_of::<Reply>(),
                            })?;
                    }
                    self.stack
                        .try_reserve(1)
                        .map_err(|_| ProtocolError::OutOfMemory {
                            bytes: size_of::<Frame>(),
                        })?;
                    self.stack.push(Frame {
                        kind,
                        remaining: count,
                        items,
                    });
                    continue;
                }
                Step::Value(value) => value,
            };
            // Hand the value to its aggregate, closing every aggregate it completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    self.reply_done();
                    return Ok(Some(value));
                };
                top.remaining -= 1;
                if top.kind == Aggregate::Attribute {
                    drop(value);
                } else {
                    if top.items.len() == top.items.capacity() {
                        top.items
                            .try_reserve(1)
                            .map_err(|_| ProtocolError::OutOfMemory {
                                bytes: top.items.len().saturating_mul(2 * size_of::<Reply>()),
                            })?;
                    }
                    top.items.push(value);
                }
                if top.remaining > 0 {
                    break;
                }
                let Some(frame) = self.stack.pop() else {
                    unreachable!("the stack's top was just borrowed");
                };
                match frame.into_reply() {
                    Some(reply) => value = reply,
                    // A finished attribute: the next element is the value it annotates, and
                    // takes its place in the enclosing aggregate (or at the top level).
                    None => {
                        self.after_attribute |= self.stack.is_empty();
                        break;
                    }
                }
            }
        }
    }

    /// Counts an element against `max_elements`: one not announced by the aggregate it is in
    /// (a top-level value, an attribute), and the elements an aggregate header announces.
    /// An aggregate announcing more than the limit allows is refused at once.
    fn count_element(&mut self, step: &Step) -> Result<(), ProtocolError> {
        let attribute = matches!(step, Step::Skip | Step::Open(Aggregate::Attribute, _));
        let mut n = u64::from(self.stack.is_empty() || attribute);
        if let Step::Open(_, count) = step {
            n = n.saturating_add(*count);
        }
        self.reply_elements = self.reply_elements.saturating_add(n);
        if self.reply_elements > self.limits.max_elements {
            return Err(ProtocolError::TooManyElements {
                max: self.limits.max_elements,
            });
        }
        Ok(())
    }

    /// What is left of `max_bytes` for the reply being read.
    fn bytes_left(&self) -> u64 {
        self.limits.max_bytes.saturating_sub(self.reply_bytes)
    }

    /// Called when a whole reply was taken out: resets an empty buffer to its start (no copy),
    /// and gives back the memory of one that grew huge.
    fn reply_done(&mut self) {
        self.after_attribute = false;
        self.reply_bytes = 0;
        self.reply_elements = 0;
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
            self.scanned = 0;
            if self.buf.len() > SHRINK_ABOVE {
                self.buf.truncate(INITIAL_BUF);
                self.buf.shrink_to_fit();
            }
        }
    }

    fn consume_to(&mut self, next: usize) {
        self.pos = next;
        self.scanned = 0;
        self.want = 0;
    }

    /// Parses the element at `pos`, consuming it only if it is complete.
    fn step(&mut self) -> Result<Step, ProtocolError> {
        let Some(&kind) = self.buf[self.pos..self.filled].first() else {
            return Ok(Step::NeedMore);
        };
        // Lines without a length prefix that are kept as text count against `max_bytes`, and
        // the search for their end stops where the limit would be passed.
        let kind_limit = match kind {
            b'+' | b'-' | b'(' => usize::MAX,
            b',' => MAX_DOUBLE_LINE,
            b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|' | b':' | b'#' | b'_' => {
                MAX_NUMBER_LINE
            }
            _ => {
                return Err(ProtocolError::UnknownType {
                    byte: kind,
                    context: Snippet::new(&self.buf[self.pos..self.filled]),
                });
            }
        };
        let text = matches!(kind, b'+' | b'-' | b'(' | b',');
        let limit = if text {
            kind_limit.min(usize::try_from(self.bytes_left()).unwrap_or(usize::MAX))
        } else {
            kind_limit
        };
        let cr = match self.find_line_end(kind, limit) {
            Ok(Some(cr)) => cr,
            Ok(None) => return Ok(Step::NeedMore),
            Err(ProtocolError::LineTooLong { .. }) if limit < kind_limit => {
                return Err(ProtocolError::TooManyBytes {
                    max: self.limits.max_bytes,
                });
            }
            Err(e) => return Err(e),
        };
        let line = &self.buf[self.pos + 1..cr];
        let next = cr + 2;
        if text {
            self.reply_bytes += line.len() as u64;
        }
        let value = match kind {
            b'+' => Reply::Status(copy(line)?),
            b'-' => Reply::Error(copy(line)?),
            b':' => Reply::Integer(
                parse_i64(line).ok_or_else(|| ProtocolError::BadInteger(Snippet::new(line)))?,
            ),
            b'#' => match line {
                b"t" => Reply::Bool(true),
                b"f" => Reply::Bool(false),
                _ => return Err(ProtocolError::BadBool(Snippet::new(line))),
            },
            b'_' if line.is_empty() => Reply::Nil,
            b'_' => return Err(ProtocolError::BadNull(Snippet::new(line))),
            b',' => Reply::Double {
                value: parse_double(line)
                    .ok_or_else(|| ProtocolError::BadDouble(Snippet::new(line)))?,
                text: copy(line)?.into_boxed_slice(),
            },
            b'(' if is_big_number(line) => Reply::BigNum(copy(line)?),
            b'(' => return Err(ProtocolError::BadBigNum(Snippet::new(line))),
            b'$' | b'!' | b'=' => return self.bulk(kind, cr),
            _ => return self.aggregate(kind, cr),
        };
        self.consume_to(next);
        Ok(Step::Value(value))
    }

    /// A `$`, `!` or `=` element whose header line ends at `cr`. The header is left unconsumed
    /// until the whole body is in: re-reading a header of at most 32 bytes per received chunk is
    /// cheaper than keeping more state.
    fn bulk(&mut self, kind: u8, cr: usize) -> Result<Step, ProtocolError> {
        let len = parse_length(kind, &self.buf[self.pos + 1..cr])?;
        let start = cr + 2;
        if len == -1 && kind == b'$' {
            self.consume_to(start);
            return Ok(Step::Value(Reply::Nil));
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(ProtocolError::BadLength {
                kind: char::from(kind),
                line: Snippet::new(&self.buf[self.pos + 1..cr]),
            });
        };
        if len as u64 > self.bytes_left() {
            return Err(ProtocolError::TooManyBytes {
                max: self.limits.max_bytes,
            });
        }
        // Cannot overflow on 64-bit targets (len <= i64::MAX); a 32-bit one refuses it.
        let Some(end) = start
            .checked_add(len)
            .filter(|e| e.checked_add(2).is_some())
        else {
            return Err(ProtocolError::TooManyBytes {
                max: self.limits.max_bytes,
            });
        };
        if self.filled < end + 2 {
            self.want = end + 2 - self.pos;
            return Ok(Step::NeedMore);
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf {
                place: "after a bulk string",
                found: Snippet::new(&self.buf[end..end + 2]),
            });
        }
        self.reply_bytes += len as u64;
        if len >= STEAL_ABOVE && len >= self.buf.len() / 2 && kind != b'=' {
            let body = self.steal_body(start, end)?;
            return Ok(Step::Value(match kind {
                b'$' => Reply::String(body),
                _ => Reply::Error(body),
            }));
        }
        let body = &self.buf[start..end];
        let value = match kind {
            b'$' => Reply::String(copy(body)?),
            b'!' => Reply::Error(copy(body)?),
            _ => match body {
                [a, b, c, b':', text @ ..] => Reply::Verb {
                    format: [*a, *b, *c],
                    text: copy(text)?,
                },
                _ => return Err(ProtocolError::BadVerbatim(Snippet::new(body))),
            },
        };
        self.consume_to(end + 2);
        Ok(Step::Value(value))
    }

    /// The body `buf[start..end]` of a large bulk string, taken as the buffer itself rather
    /// than copied: a huge string then costs its size once, not twice (buffer and copy).
    /// What follows the body's CRLF moves to a fresh buffer.
    fn steal_body(&mut self, start: usize, end: usize) -> Result<Vec<u8>, ProtocolError> {
        let rest = &self.buf[end + 2..self.filled];
        let size = rest.len().max(INITIAL_BUF);
        let mut fresh = Vec::new();
        fresh
            .try_reserve_exact(size)
            .map_err(|_| ProtocolError::OutOfMemory { bytes: size })?;
        fresh.extend_from_slice(rest);
        let filled = fresh.len();
        fresh.resize(size, 0);
        let mut body = std::mem::replace(&mut self.buf, fresh);
        body.truncate(end);
        body.drain(..start);
        self.filled = filled;
        self.consume_to(0);
        Ok(body)
    }

    /// An aggregate header (`*`, `%`, `~`, `>`, `|`) whose line ends at `cr`.
    fn aggregate(&mut self, kind: u8, cr: usize) -> Result<Step, ProtocolError> {
        let line = &self.buf[self.pos + 1..cr];
        let count = parse_length(kind, line)?;
        if count == -1 && kind == b'*' {
            self.consume_to(cr + 2);
            return Ok(Step::Value(Reply::Nil));
        }
        let Ok(count) = u64::try_from(count) else {
            return Err(ProtocolError::BadLength {
                kind: char::from(kind),
                line: Snippet::new(line),
            });
        };
        self.consume_to(cr + 2);
        let (aggregate, elements) = match kind {
            b'*' => (Aggregate::Array, count),
            b'%' => (Aggregate::Map, count * 2),
            b'~' => (Aggregate::Set, count),
            b'>' => (Aggregate::Push, count),
            _ => (Aggregate::Attribute, count * 2),
        };
        if elements > 0 {
            return Ok(Step::Open(aggregate, elements));
        }
        Ok(match aggregate {
            Aggregate::Array => Step::Value(Reply::Array(Vec::new())),
            Aggregate::Map => Step::Value(Reply::Map(Vec::new())),
            Aggregate::Set => Step::Value(Reply::Set(Vec::new())),
            Aggregate::Push => Step::Value(Reply::Push(Vec::new())),
            Aggregate::Attribute => Step::Skip,
        })
    }

    /// Finds the CR ending the line that starts after the type byte at `pos`. `Ok(None)` when
    /// the line is not complete yet; the part searched is remembered so it is not searched again.
    /// RESP lines cannot hold CR or LF, so a lone LF, or a CR followed by anything but LF, is an
    /// error rather than data.
    fn find_line_end(&mut self, kind: u8, limit: usize) -> Result<Option<usize>, ProtocolError> {
        let line_start = self.pos + 1;
        let from = line_start + self.scanned;
        // A line of exactly `limit` bytes has its CR at `line_start + limit`.
        let window_end = self
            .filled
            .min(line_start.saturating_add(limit).saturating_add(1));
        let found = self.buf[from..window_end]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n');
        #[cfg(test)]
        {
            self.work += found.map_or(window_end - from, |i| i + 1) as u64;
        }
        match found {
            Some(i) => {
                let cr = from + i;
                // Next time (if the LF is still missing) start right at this CR.
                self.scanned = cr - line_start;
                if self.buf[cr] == b'\n' {
                    return Err(ProtocolError::MissingCrlf {
                        place: "(LF without CR) ending a line",
                        found: Snippet::new(&self.buf[self.pos..=cr]),
                    });
                }
                match self.buf[..self.filled].get(cr + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some(cr)),
                    Some(_) => Err(ProtocolError::MissingCrlf {
                        place: "(CR not followed by LF) ending a line",
                        found: Snippet::new(&self.buf[self.pos..(cr + 2).min(self.filled)]),
                    }),
                }
            }
            None if window_end - line_start > limit => Err(ProtocolError::LineTooLong {
                kind: char::from(kind),
                limit,
            }),
            None => {
                self.scanned = window_end - line_start;
                Ok(None)
            }
        }
    }
}

/// A copy of `bytes`; running out of memory is an error, not an abort.
fn copy(bytes: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len())
        .map_err(|_| ProtocolError::OutOfMemory { bytes: bytes.len() })?;
    v.extend_from_slice(bytes);
    Ok(v)
}

/// A length or count: `-1` or more. Smaller negatives are left to the caller, which knows
/// whether `-1` means nil for its type.
fn parse_length(kind: u8, line: &[u8]) -> Result<i64, ProtocolError> {
    if line == b"?" {
        return Err(ProtocolError::Streamed {
            kind: char::from(kind),
        });
    }
    match parse_i64(line) {
        Some(n) if n >= -1 => Ok(n),
        _ => Err(ProtocolError::BadLength {
            kind: char::from(kind),
            line: Snippet::new(line),
        }),
    }
}

/// A decimal `i64`: an optional `-` and 1 to 19 digits, without overflow.
fn parse_i64(line: &[u8]) -> Option<i64> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Accumulate negatively so that i64::MIN, whose magnitude does not fit in i64, parses.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// A RESP3 double: "inf", "-inf", "nan", or a decimal with an optional exponent.
fn parse_double(line: &[u8]) -> Option<f64> {
    // Rust's parser also takes "infinity" and any letter case; RESP producers other than Redis
    // may spell infinities that way, so the extra leniency is harmless. It rejects the empty
    // string, blanks and trailing garbage.
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// A RESP3 big number: an optional sign and at least one digit.
fn is_big_number(line: &[u8]) -> bool {
    let digits = match line {
        [b'-' | b'+', rest @ ..] => rest,
        _ => line,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::resp::encode_command;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut p = Parser::new();
        p.feed(input);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        assert_eq!(p.buffered(), 0, "input left over after {out:?}");
        Ok(out)
    }

    fn one(input: &[u8]) -> Reply {
        let mut replies = parse_all(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.pop().unwrap()
    }

    fn err(input: &[u8]) -> ProtocolError {
        let mut p = Parser::new();
        p.feed(input);
        loop {
            match p.next_reply() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!(
                    "{:?} parsed without error",
                    input.escape_ascii().to_string()
                ),
                Err(e) => return e,
            }
        }
    }

    fn s(b: &[u8]) -> Reply {
        Reply::String(b.to_vec())
    }

    /// A hand-written xorshift64*, so the fuzz loops are deterministic without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn encoded_commands_parse_back_as_arrays() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"LPUSH", b"list", b"\xff\x00bin"]);
        assert_eq!(
            one(&out),
            Reply::Array(vec![s(b"LPUSH"), s(b"list"), s(b"\xff\x00bin")])
        );
    }

    #[test]
    fn resp2_scalars() {
        assert_eq!(one(b"+OK\r\n"), Reply::Status(b"OK".to_vec()));
        assert_eq!(one(b"+\r\n"), Reply::Status(Vec::new()));
        assert_eq!(
            one(b"-ERR unknown command\r\n"),
            Reply::Error(b"ERR unknown command".to_vec())
        );
        assert_eq!(one(b":0\r\n"), Reply::Integer(0));
        assert_eq!(one(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(one(b":9223372036854775807\r\n"), Reply::Integer(i64::MAX));
        assert_eq!(one(b":-9223372036854775808\r\n"), Reply::Integer(i64::MIN));
        assert_eq!(one(b"$5\r\nhello\r\n"), s(b"hello"));
        assert_eq!(one(b"$0\r\n\r\n"), s(b""));
        assert_eq!(one(b"$4\r\na\r\nb\r\n"), s(b"a\r\nb"));
    }

    #[test]
    fn nil_forms() {
        assert_eq!(one(b"$-1\r\n"), Reply::Nil);
        assert_eq!(one(b"*-1\r\n"), Reply::Nil);
        assert_eq!(one(b"_\r\n"), Reply::Nil);
        assert_eq!(
            one(b"*3\r\n$-1\r\n*-1\r\n_\r\n"),
            Reply::Array(vec![Reply::Nil, Reply::Nil, Reply::Nil])
        );
    }

    #[test]
    fn resp3_scalars() {
        assert_eq!(one(b"#t\r\n"), Reply::Bool(true));
        assert_eq!(one(b"#f\r\n"), Reply::Bool(false));
        assert_eq!(
            one(b"!21\r\nSYNTAX invalid syntax\r\n"),
            Reply::Error(b"SYNTAX invalid syntax".to_vec())
        );
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Reply::Verb {
                format: *b"txt",
                text: b"Some string".to_vec()
            }
        );
        assert_eq!(
            one(b"=4\r\nmkd:\r\n"),
            Reply::Verb {
                format: *b"mkd",
                text: Vec::new()
            }
        );
        assert_eq!(
            one(b"(3492890328409238509324850943850943825024385\r\n"),
            Reply::BigNum(b"3492890328409238509324850943850943825024385".to_vec())
        );
        assert_eq!(one(b"(-12\r\n"), Reply::BigNum(b"-12".to_vec()));
    }

    #[test]
    fn doubles_keep_value_and_text() {
        let cases: &[(&[u8], f64)] = &[
            (b"1.5", 1.5),
            (b"-0.25", -0.25),
            (b"1.5e3", 1500.0),
            (b"2E-2", 0.02),
            (b"10", 10.0),
            (b"inf", f64::INFINITY),
            (b"-inf", f64::NEG_INFINITY),
        ];
        for &(text, want) in cases {
            let mut wire = b",".to_vec();
            wire.extend_from_slice(text);
            wire.extend_from_slice(b"\r\n");
            match one(&wire) {
                Reply::Double { value, text: t } => {
                    assert_eq!(value, want, "{text:?}");
                    assert_eq!(&*t, text);
                }
                other => panic!("{other:?}"),
            }
        }
        match one(b",nan\r\n") {
            Reply::Double { value, text } => {
                assert!(value.is_nan());
                assert_eq!(&*text, b"nan");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aggregates_nest() {
        let wire = b"*3\r\n:1\r\n*2\r\n+a\r\n$1\r\nb\r\n*0\r\n";
        assert_eq!(
            one(wire),
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Array(vec![Reply::Status(b"a".to_vec()), s(b"b")]),
                Reply::Array(vec![]),
            ])
        );
        let wire = b"%2\r\n+first\r\n:1\r\n+second\r\n~2\r\n#t\r\n,2.5\r\n";
        assert_eq!(
            one(wire),
            Reply::Map(vec![
                Reply::Status(b"first".to_vec()),
                Reply::Integer(1),
                Reply::Status(b"second".to_vec()),
                Reply::Set(vec![
                    Reply::Bool(true),
                    Reply::Double {
                        value: 2.5,
                        text: b"2.5"[..].into()
                    }
                ]),
            ])
        );
        assert_eq!(one(b"%0\r\n"), Reply::Map(vec![]));
        assert_eq!(one(b"~0\r\n"), Reply::Set(vec![]));
        assert_eq!(
            one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
            Reply::Push(vec![s(b"message"), s(b"ch"), s(b"hi")])
        );
        // Deep but legal: exactly MAX_DEPTH levels.
        let mut wire = b"*1\r\n".repeat(MAX_DEPTH);
        wire.extend_from_slice(b":7\r\n");
        let mut r = one(&wire);
        for _ in 0..MAX_DEPTH {
            r = match r {
                Reply::Array(mut v) if v.len() == 1 => v.pop().unwrap(),
                other => panic!("{other:?}"),
            };
        }
        assert_eq!(r, Reply::Integer(7));
    }

    #[test]
    fn attributes_are_skipped() {
        let attr = b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n";
        let mut wire = attr.to_vec();
        wire.extend_from_slice(b"*2\r\n:2039123\r\n:9543892\r\n");
        assert_eq!(
            one(&wire),
            Reply::Array(vec![Reply::Integer(2039123), Reply::Integer(9543892)])
        );
        // Inside an aggregate, before an element, and nested in an attribute.
        let wire = b"*3\r\n:1\r\n|1\r\n+ttl\r\n|1\r\n+x\r\n+y\r\n:3600\r\n+a\r\n|0\r\n:3\r\n";
        assert_eq!(
            one(wire),
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Status(b"a".to_vec()),
                Reply::Integer(3)
            ])
        );
        // An attribute alone is not a reply.
        let mut p = Parser::new();
        p.feed(b"|1\r\n+k\r\n+v\r\n");
        assert_eq!(p.next_reply(), Ok(None));
        assert!(!p.is_clean());
        p.feed(b"+OK\r\n");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Status(b"OK".to_vec()))));
        assert!(p.is_clean());
        p.feed(b"|0\r\n");
        assert_eq!(p.next_reply(), Ok(None));
        assert!(!p.is_clean());
        p.feed(b"_\r\n");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Nil)));
        assert!(p.is_clean());
    }

    #[test]
    fn several_replies_in_one_feed() {
        let replies = parse_all(b"+OK\r\n:1\r\n$-1\r\n*1\r\n+x\r\n").unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Status(b"OK".to_vec()),
                Reply::Integer(1),
                Reply::Nil,
                Reply::Array(vec![Reply::Status(b"x".to_vec())]),
            ]
        );
    }

    /// Every reply type at once, to be fed in pieces.
    const ALL_TYPES: &[u8] =
        b"*14\r\n+OK\r\n-ERR x\r\n:-5\r\n$3\r\nfoo\r\n$-1\r\n_\r\n,1.5e3\r\n#t\r\n\
(123456789012345678901234567890\r\n=8\r\ntxt:abcd\r\n!3\r\nbad\r\n%1\r\n+k\r\n~1\r\n:1\r\n\
|1\r\n+a\r\n+b\r\n>2\r\n+p\r\n*0\r\n*-1\r\n";

    fn all_types_reply() -> Reply {
        Reply::Array(vec![
            Reply::Status(b"OK".to_vec()),
            Reply::Error(b"ERR x".to_vec()),
            Reply::Integer(-5),
            s(b"foo"),
            Reply::Nil,
            Reply::Nil,
            Reply::Double {
                value: 1500.0,
                text: b"1.5e3"[..].into(),
            },
            Reply::Bool(true),
            Reply::BigNum(b"123456789012345678901234567890".to_vec()),
            Reply::Verb {
                format: *b"txt",
                text: b"abcd".to_vec(),
            },
            Reply::Error(b"bad".to_vec()),
            Reply::Map(vec![
                Reply::Status(b"k".to_vec()),
                Reply::Set(vec![Reply::Integer(1)]),
            ]),
            Reply::Push(vec![Reply::Status(b"p".to_vec()), Reply::Array(vec![])]),
            Reply::Nil,
        ])
    }

    #[test]
    fn a_reply_split_byte_by_byte() {
        let mut p = Parser::new();
        for (i, &b) in ALL_TYPES.iter().enumerate() {
            assert_eq!(p.next_reply(), Ok(None), "complete after {i} bytes");
            p.feed(&[b]);
        }
        assert_eq!(p.next_reply(), Ok(Some(all_types_reply())));
        assert_eq!(p.buffered(), 0);
        assert!(p.is_clean());
        assert_eq!(p.next_reply(), Ok(None));
    }

    #[test]
    fn a_reply_split_through_spare_and_advance() {
        let mut p = Parser::new();
        let mut rng = Rng(7);
        let mut rest = ALL_TYPES;
        let mut got = None;
        while !rest.is_empty() {
            let n = (1 + rng.below(9)).min(rest.len());
            let spare = p.spare(n);
            assert!(spare.len() >= n);
            spare[..n].copy_from_slice(&rest[..n]);
            p.advance(n);
            rest = &rest[n..];
            if let Some(r) = p.next_reply().unwrap() {
                assert!(rest.is_empty());
                got = Some(r);
            }
        }
        assert_eq!(got, Some(all_types_reply()));
    }

    #[test]
    fn buffer_is_reused_and_compacted() {
        let mut p = Parser::new();
        p.feed(b"+first\r\n+sec");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Status(b"first".to_vec()))));
        assert_eq!(p.buffered(), 4);
        let cap = p.buf.len();
        // Asking for the whole capacity forces a compaction, not a growth.
        let want = cap - 4;
        assert!(p.spare(want).len() >= want);
        assert_eq!(p.buf.len(), cap);
        assert_eq!(p.pos, 0);
        p.feed(b"ond\r\n");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Status(b"second".to_vec()))));
        // An emptied buffer restarts at its front, keeping its memory.
        assert_eq!((p.pos, p.filled, p.buf.len()), (0, 0, cap));
        for _ in 0..1000 {
            p.feed(b":1\r\n");
            assert_eq!(p.next_reply(), Ok(Some(Reply::Integer(1))));
        }
        assert_eq!(p.buf.len(), cap);
    }

    #[test]
    fn a_huge_reply_does_not_pin_its_buffer() {
        let mut p = Parser::new();
        let body = vec![b'z'; 3 * 1024 * 1024];
        let mut wire = Vec::new();
        encode_command(&mut wire, &[&body]);
        for chunk in wire.chunks(16 * 1024) {
            p.feed(chunk);
        }
        assert!(p.buf.len() > SHRINK_ABOVE);
        assert_eq!(p.next_reply(), Ok(Some(Reply::Array(vec![s(&body)]))));
        assert!(p.buf.len() <= INITIAL_BUF);
    }

    #[test]
    fn a_large_array_in_small_chunks_parses_in_linear_work() {
        const N: usize = 100_000;
        let mut wire = Vec::new();
        wire.extend_from_slice(format!("*{N}\r\n").as_bytes());
        for i in 0..N {
            let item = format!("item{i}");
            wire.extend_from_slice(format!("${}\r\n{item}\r\n", item.len()).as_bytes());
        }
        let mut p = Parser::new();
        let mut got = None;
        let mut feeds = 0;
        for chunk in wire.chunks(7) {
            p.feed(chunk);
            feeds += 1;
            if let Some(r) = p.next_reply().unwrap() {
                got = Some(r);
            }
        }
        assert_eq!(feeds, wire.len().div_ceil(7));
        let Some(Reply::Array(items)) = got else {
            panic!("no array")
        };
        assert_eq!(items.len(), N);
        assert_eq!(items[N - 1], s(format!("item{}", N - 1).as_bytes()));
        // Each byte is scanned a bounded number of times; a parser that restarted from the top
        // on every chunk would scan about N * wire.len() / 14 bytes here.
        assert!(
            p.work < 3 * wire.len() as u64,
            "{} bytes scanned for {} bytes of input",
            p.work,
            wire.len()
        );
    }

    #[test]
    fn a_long_line_in_small_chunks_is_scanned_once() {
        let mut p = Parser::new();
        p.feed(b"+");
        let text = vec![b'a'; 200_000];
        for chunk in text.chunks(5) {
            p.feed(chunk);
            assert_eq!(p.next_reply(), Ok(None));
        }
        p.feed(b"\r\n");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Status(text))));
        assert!(p.work < 200_100, "{}", p.work);
    }

    #[test]
    fn malformed_inputs_are_protocol_errors() {
        use ProtocolError as E;
        type IsExpected = fn(&ProtocolError) -> bool;
        let cases: &[(&[u8], IsExpected)] = &[
            (b"?\r\n", |e| matches!(e, E::UnknownType { byte: b'?', .. })),
            (b"HTTP/1.1 400\r\n", |e| {
                matches!(e, E::UnknownType { byte: b'H', .. })
            }),
            (b"*1\r\nX\r\n", |e| matches!(e, E::UnknownType { .. })),
            (b"$abc\r\n", |e| matches!(e, E::BadLength { kind: '$', .. })),
            (b"$\r\n", |e| matches!(e, E::BadLength { .. })),
            (b"$-2\r\n", |e| matches!(e, E::BadLength { .. })),
            (b"$ 1\r\n", |e| matches!(e, E::BadLength { .. })),
            (b"*-2\r\n", |e| matches!(e, E::BadLength { kind: '*', .. })),
            (b"!-1\r\n", |e| matches!(e, E::BadLength { kind: '!', .. })),
            (b"%-1\r\n", |e| matches!(e, E::BadLength { kind: '%', .. })),
            (b"|-1\r\n", |e| matches!(e, E::BadLength { kind: '|', .. })),
            (b"*99999999999999999999\r\n", |e| {
                matches!(e, E::BadLength { .. })
            }),
            (b"$3\r\nfoobar\r\n", |e| matches!(e, E::MissingCrlf { .. })),
            (b"$3\r\nfoo\n\n", |e| matches!(e, E::MissingCrlf { .. })),
            (b"+OK\rX", |e| matches!(e, E::MissingCrlf { .. })),
            (b"+OK\n", |e| matches!(e, E::MissingCrlf { .. })),
            (b":12\n", |e| matches!(e, E::MissingCrlf { .. })),
            (b":12a\r\n", |e| matches!(e, E::BadInteger(_))),
            (b":\r\n", |e| matches!(e, E::BadInteger(_))),
            (b":-\r\n", |e| matches!(e, E::BadInteger(_))),
            (b":+1\r\n", |e| matches!(e, E::BadInteger(_))),
            (b":9223372036854775808\r\n", |e| {
                matches!(e, E::BadInteger(_))
            }),
            (b"$536870913\r\n", |e| {
                matches!(e, E::TooManyBytes { max: 536_870_912 })
            }),
            (b"=999999999\r\n", |e| matches!(e, E::TooManyBytes { .. })),
            (b"*4294967297\r\n", |e| {
                matches!(e, E::TooManyElements { max: 16_777_216 })
            }),
            (b"%9223372036854775807\r\n", |e| {
                matches!(e, E::TooManyElements { .. })
            }),
            (b",\r\n", |e| matches!(e, E::BadDouble(_))),
            (b",1.5x\r\n", |e| matches!(e, E::BadDouble(_))),
            (b", 1\r\n", |e| matches!(e, E::BadDouble(_))),
            (b",\xff\r\n", |e| matches!(e, E::BadDouble(_))),
            (b"#x\r\n", |e| matches!(e, E::BadBool(_))),
            (b"#\r\n", |e| matches!(e, E::BadBool(_))),
            (b"#tt\r\n", |e| matches!(e, E::BadBool(_))),
            (b"=3\r\ntxt\r\n", |e| matches!(e, E::BadVerbatim(_))),
            (b"=5\r\ntxt-a\r\n", |e| matches!(e, E::BadVerbatim(_))),
            (b"(12a\r\n", |e| matches!(e, E::BadBigNum(_))),
            (b"(\r\n", |e| matches!(e, E::BadBigNum(_))),
            (b"_x\r\n", |e| matches!(e, E::BadNull(_))),
            (b"$?\r\n", |e| matches!(e, E::Streamed { kind: '$' })),
            (b"*?\r\n", |e| matches!(e, E::Streamed { kind: '*' })),
            (b"%?\r\n", |e| matches!(e, E::Streamed { .. })),
            (b";4\r\nabcd\r\n", |e| matches!(e, E::UnknownType { .. })),
            (b":111111111111111111111111111111111111", |e| {
                matches!(
                    e,
                    E::LineTooLong {
                        kind: ':',
                        limit: 32
                    }
                )
            }),
            (b"$11111111111111111111111111111111111", |e| {
                matches!(e, E::LineTooLong { .. })
            }),
        ];
        for (input, check) in cases {
            let e = err(input);
            assert!(
                check(&e),
                "{:?} gave {e:?}",
                input.escape_ascii().to_string()
            );
            assert!(e.to_string().len() < 200, "{e}");
        }
    }

    #[test]
    fn error_messages_show_the_offending_bytes_escaped() {
        assert_eq!(
            err(b":12\x01\r\n").to_string(),
            "integer reply is not a 64-bit integer: \"12\\x01\""
        );
        assert_eq!(
            err(b"\x00\r\n").to_string(),
            "unknown reply type byte '\\x00' at \"\\x00\\r\\n\""
        );
        let long = err(format!("#{}\r\n", "y".repeat(31)).as_bytes()).to_string();
        assert_eq!(
            long,
            format!(
                "malformed boolean (expected t or f): \"{}\"",
                "y".repeat(31)
            )
        );
        let cut = err(format!("({}\r\n", "z".repeat(100)).as_bytes()).to_string();
        assert_eq!(
            cut,
            format!("malformed big number: \"{}\"…", "z".repeat(32))
        );
        assert_eq!(
            err(b"$?\r\n").to_string(),
            "streamed types not supported ('$' with length \"?\")"
        );
    }

    #[test]
    fn an_error_sticks_until_clear() {
        let mut p = Parser::new();
        p.feed(b"*2\r\n:1\r\n@\r\n");
        let e = p.next_reply().unwrap_err();
        assert!(matches!(e, ProtocolError::UnknownType { byte: b'@', .. }));
        p.feed(b"+OK\r\n");
        assert_eq!(p.next_reply(), Err(e));
        assert!(!p.is_clean());
        p.clear();
        assert!(p.is_clean());
        p.feed(b"+OK\r\n");
        assert_eq!(p.next_reply(), Ok(Some(Reply::Status(b"OK".to_vec()))));
    }

    #[test]
    fn a_depth_bomb_is_an_error_not_a_stack_overflow() {
        let bomb = b"*1\r\n".repeat(100_000);
        assert_eq!(err(&bomb), ProtocolError::TooDeep);
        // The limit is exact, and attributes count as nesting too.
        let mut wire = b"*1\r\n".repeat(MAX_DEPTH + 1);
        wire.extend_from_slice(b":1\r\n");
        assert_eq!(err(&wire), ProtocolError::TooDeep);
        let bomb = b"|1\r\n".repeat(100_000);
        assert_eq!(err(&bomb), ProtocolError::TooDeep);
        let bomb = b"%1\r\n".repeat(100_000);
        assert_eq!(err(&bomb), ProtocolError::TooDeep);
        // Not nested: a long flat run of attributes is fine.
        let mut wire = b"|1\r\n:1\r\n:2\r\n".repeat(10_000);
        wire.extend_from_slice(b"+OK\r\n");
        assert_eq!(one(&wire), Reply::Status(b"OK".to_vec()));
    }

    #[test]
    fn huge_declared_counts_do_not_allocate() {
        let mut p = Parser::with_limits(ReplyLimits {
            max_elements: u64::MAX,
            ..ReplyLimits::DEFAULT
        });
        p.feed(b"*4294967295\r\n%4294967296\r\n~4294967295\r\n:1\r\n");
        assert_eq!(p.next_reply(), Ok(None));
        // No more than the bytes in hand could fill (3 bytes an element at least).
        let capacity: usize = p.stack.iter().map(|f| f.items.capacity()).sum();
        assert!(capacity <= 3 * 16, "{capacity}");
        assert_eq!(p.stack.len(), 3);
        assert_eq!(p.stack[1].remaining, 2 * (1 << 32));
        // A huge declared bulk length waits for its bytes instead of reserving them.
        let mut p = Parser::new();
        p.feed(b"$536870912\r\nabc");
        assert_eq!(p.next_reply(), Ok(None));
        assert!(p.buf.len() <= INITIAL_BUF);
    }

    fn limited(max_bytes: u64, max_elements: u64) -> Parser {
        Parser::with_limits(ReplyLimits {
            max_bytes,
            max_elements,
        })
    }

    fn parse_with(p: &mut Parser, wire: &[u8]) -> Result<Option<Reply>, ProtocolError> {
        p.feed(wire);
        p.next_reply()
    }

    #[test]
    fn the_element_limit_counts_the_whole_reply() {
        let too_many = Err(ProtocolError::TooManyElements { max: 5 });
        // The array and its four elements: 5. Nested aggregates and map entries (2 each) count.
        let ok: &[&[u8]] = &[
            b"*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n",
            b"*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n",
            // An attribute and its entry count too: 3, then the reply's 2.
            b"|1\r\n+k\r\n+v\r\n*1\r\n:1\r\n",
        ];
        for wire in ok {
            let mut p = limited(1 << 20, 5);
            assert!(matches!(parse_with(&mut p, wire), Ok(Some(_))), "{wire:?}");
            // The count starts again with each reply.
            assert!(matches!(parse_with(&mut p, wire), Ok(Some(_))), "{wire:?}");
        }
        let over: &[&[u8]] = &[
            b"*5\r\n",
            b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n",
            b"%3\r\n",
            b"*2\r\n%1\r\n+a\r\n:1\r\n%1\r\n",
            b"*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n",
            b"|3\r\n",
        ];
        for wire in over {
            let mut p = limited(1 << 20, 5);
            assert_eq!(parse_with(&mut p, wire), too_many, "{wire:?}");
        }
        // Refused at the header, before any element arrives.
        let mut p = Parser::new();
        assert_eq!(
            parse_with(&mut p, b"*4294967296\r\n"),
            Err(ProtocolError::TooManyElements {
                max: ReplyLimits::DEFAULT_MAX_ELEMENTS
            })
        );
        // Top-level attributes alone are bounded too (each is dropped, but counted).
        let mut p = limited(1 << 20, 100);
        let mut got = Ok(None);
        for _ in 0..101 {
            got = parse_with(&mut p, b"|0\r\n");
            if got.is_err() {
                break;
            }
        }
        assert_eq!(got, Err(ProtocolError::TooManyElements { max: 100 }));
    }

    #[test]
    fn the_byte_limit_counts_string_data() {
        let too_big = Err(ProtocolError::TooManyBytes { max: 10 });
        let ok: &[&[u8]] = &[
            b"$10\r\n0123456789\r\n",
            b"+0123456789\r\n",
            b"*3\r\n$4\r\nabcd\r\n-ERR\r\n,1.5\r\n",
            // Integers and lengths are not string data.
            b"*2\r\n:1234567890123\r\n$10\r\n0123456789\r\n",
        ];
        for wire in ok {
            let mut p = limited(10, 100);
            assert!(matches!(parse_with(&mut p, wire), Ok(Some(_))), "{wire:?}");
            assert!(matches!(parse_with(&mut p, wire), Ok(Some(_))), "{wire:?}");
        }
        // A length over the limit is refused before its bytes come; a line without a length
        // as soon as it passes the limit, without waiting for its end.
        let over: &[&[u8]] = &[
            b"$11\r\n",
            b"!11\r\n",
            b"=11\r\n",
            b"+0123456789X",
            b"(12345678901",
            b"*2\r\n$6\r\nabcdef\r\n$5\r\n",
            b"*2\r\n+abcdef\r\n-abcde",
            b"|1\r\n+abcdef\r\n+abcde",
        ];
        for wire in over {
            let mut p = limited(10, 100);
            assert_eq!(parse_with(&mut p, wire), too_big, "{wire:?}");
        }
    }

    #[test]
    fn a_big_bulk_is_not_buffered_twice() {
        let body = vec![b'q'; 3 * 1024 * 1024 + 5];
        let mut wire = Vec::new();
        encode_command(&mut wire, &[&body]);
        wire.extend_from_slice(b"+next\r\n");
        let mut p = Parser::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(16 * 1024) {
            p.feed(chunk);
            // The buffer grows to what the string needs, not to the next power of two.
            assert!(p.buf.len() <= body.len() + 64 * 1024, "{}", p.buf.len());
            while let Some(r) = p.next_reply().unwrap() {
                got.push(r);
            }
        }
        assert_eq!(
            got,
            vec![
                Reply::Array(vec![s(&body)]),
                Reply::Status(b"next".to_vec())
            ]
        );
        assert!(p.is_clean());
        assert!(p.buf.len() <= INITIAL_BUF);
    }

    #[test]
    fn an_error_gives_the_memory_back() {
        let mut p = Parser::new();
        p.feed(b"*2\r\n:1\r\n$5000000\r\n");
        p.feed(&vec![b'x'; 5_000_000]);
        assert_eq!(p.next_reply(), Ok(None));
        assert!(p.buf.len() >= 5_000_000);
        p.feed(b"XX");
        assert!(matches!(
            p.next_reply(),
            Err(ProtocolError::MissingCrlf { .. })
        ));
        assert!(p.buf.len() <= INITIAL_BUF && p.stack.capacity() == 0);
        assert!(!p.is_clean());
    }

    #[test]
    fn a_reply_element_is_small() {
        // A reply of many small elements costs this much per element (plus its data); the
        // element limit's default is derived from it.
        assert!(size_of::<Reply>() <= 32, "{}", size_of::<Reply>());
    }

    fn valid_corpus() -> Vec<Vec<u8>> {
        let mut corpus: Vec<Vec<u8>> = [
            &b"+OK\r\n"[..],
            b"-ERR wrong\r\n",
            b":123\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"_\r\n",
            b",3.25\r\n",
            b",-inf\r\n",
            b"#f\r\n",
            b"(99999999999999999999999\r\n",
            b"=7\r\nmkd:abc\r\n",
            b"!4\r\noops\r\n",
            b"*2\r\n*1\r\n:1\r\n%1\r\n+a\r\n~2\r\n#t\r\n_\r\n",
            b"|1\r\n+a\r\n+b\r\n>1\r\n$1\r\nx\r\n",
        ]
        .iter()
        .map(|b| b.to_vec())
        .collect();
        corpus.push(ALL_TYPES.to_vec());
        corpus
    }

    /// Feeds `input` in random pieces, taking replies out after each; never panics, whatever
    /// the input.
    fn feed_randomly(rng: &mut Rng, input: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = (1 + rng.below(16)).min(rest.len());
            p.feed(&rest[..n]);
            rest = &rest[n..];
            while let Some(r) = p.next_reply()? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn fuzz_mutated_replies_never_panic() {
        let corpus = valid_corpus();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let interesting = b"\r\n-?*%$|:0123456789";
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..20_000 {
            let mut input = corpus[rng.below(corpus.len())].clone();
            // Concatenate a second reply now and then, so mutations hit pipelined streams too.
            if rng.below(4) == 0 {
                input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            }
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(input.len() + 1);
                match rng.below(6) {
                    0 if at < input.len() => input[at] ^= 1 << rng.below(8),
                    1 if at < input.len() => input[at] = rng.next() as u8,
                    2 if at < input.len() => input[at] = interesting[rng.below(interesting.len())],
                    3 => input.insert(at, interesting[rng.below(interesting.len())]),
                    4 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.truncate(at),
                }
            }
            match feed_randomly(&mut rng, &input) {
                Ok(_) => ok += 1,
                Err(e) => {
                    failed += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        // Both outcomes must actually occur, or the mutations are not exercising anything.
        assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
    }

    fn random_reply(rng: &mut Rng, depth: usize) -> Reply {
        let bytes =
            |rng: &mut Rng| -> Vec<u8> { (0..rng.below(12)).map(|_| rng.next() as u8).collect() };
        let kinds = if depth >= 4 { 9 } else { 13 };
        match rng.below(kinds) {
            0 => Reply::String(bytes(rng)),
            1 => Reply::Status(b"status text".to_vec()),
            2 => Reply::Error(bytes(rng)),
            3 => Reply::Integer(rng.next() as i64),
            4 => Reply::Nil,
            5 => {
                let value = (rng.next() as i64 % 100_000) as f64 / 8.0;
                Reply::Double {
                    value,
                    text: value.to_string().into_bytes().into(),
                }
            }
            6 => Reply::Bool(rng.below(2) == 1),
            7 => Reply::BigNum(rng.next().to_string().into_bytes()),
            8 => Reply::Verb {
                format: *b"txt",
                text: bytes(rng),
            },
            k => {
                let n = rng.below(5);
                let n = if k == 10 { n * 2 } else { n };
                let items = (0..n).map(|_| random_reply(rng, depth + 1)).collect();
                match k {
                    9 => Reply::Array(items),
                    10 => Reply::Map(items),
                    11 => Reply::Set(items),
                    _ => Reply::Push(items),
                }
            }
        }
    }

    #[test]
    fn random_replies_round_trip_in_random_pieces() {
        let mut rng = Rng(42);
        for _ in 0..2_000 {
            let replies: Vec<Reply> = (0..1 + rng.below(3))
                .map(|_| random_reply(&mut rng, 0))
                .collect();
            let mut wire = Vec::new();
            for r in &replies {
                crate::fuzzing::encode_reply(&mut wire, r);
            }
            assert_eq!(feed_randomly(&mut rng, &wire), Ok(replies));
        }
    }
}
