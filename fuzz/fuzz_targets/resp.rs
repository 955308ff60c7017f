//! The incremental RESP2/RESP3 reply parser, differentially.
//!
//! Input layout: byte 0 = `F S S S` bits: the low 3 bits say how many chunk-size bytes
//! follow (0 = one byte per chunk); bit 3 chooses the zero-copy path (`spare` + `advance`)
//! over `feed`. The rest is the byte stream from the "server".
//!
//! The stream is parsed twice: fed whole, and fed in chunks of the sizes read from the input
//! (cycled, 1 to 256 bytes), taking replies out after every chunk. Nothing may panic, and:
//! - both give the same replies, end the same way (the same error, or the same number of
//!   unconsumed bytes and the same `is_clean`), and a protocol error sticks until `clear`;
//! - replies are well formed (maps hold key/value pairs, nesting stays within `MAX_DEPTH`);
//! - the replies, written back as RESP3, parse to the same replies (round trip);
//! - after `clear`, the parser works again.
//!
//! Allocation is bounded by libFuzzer's -malloc_limit_mb / -rss_limit_mb (scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redispool::redis::resp::{MAX_DEPTH, Parser, ProtocolError, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from(head & 7).min(rest.len());
    let (sizes, wire) = rest.split_at(n_sizes);
    let zero_copy = head & 8 != 0;

    let whole = parse(wire, &[wire.len().max(1)], false);
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![1]
    } else {
        sizes.iter().map(|&s| usize::from(s) + 1).collect()
    };
    let chunked = parse(wire, &sizes, zero_copy);

    assert_eq!(whole.replies.len(), chunked.replies.len(), "reply count");
    for (a, b) in whole.replies.iter().zip(&chunked.replies) {
        assert!(same(a, b), "whole {a:?}\nchunked {b:?}");
    }
    match (&whole.end, &chunked.end) {
        (End::Failed(a), End::Failed(b)) => assert!(same_error(a, b), "{a:?} vs {b:?}"),
        (a, b) => assert_eq!(a, b, "how the stream ended"),
    }

    for r in &whole.replies {
        check_shape(r, 0);
    }
    // The replies written back as RESP3 (attributes dropped, nils as `_`, errors as `!`)
    // parse to the same replies.
    let mut again = Vec::new();
    for r in &whole.replies {
        redispool::fuzzing::encode_reply(&mut again, r);
    }
    let round = parse(&again, &[again.len().max(1)], false);
    assert_eq!(
        round.end,
        End::Clean,
        "re-encoded replies: {:?}",
        again.escape_ascii().to_string()
    );
    assert_eq!(round.replies.len(), whole.replies.len());
    for (a, b) in whole.replies.iter().zip(&round.replies) {
        assert!(same(a, b), "{a:?} re-encoded came back as {b:?}");
    }
});

#[derive(Debug, PartialEq)]
enum End {
    /// Every byte consumed, nothing half parsed.
    Clean,
    /// A reply is incomplete: this many bytes are buffered.
    NeedMore(usize),
    Failed(ProtocolError),
}

struct Outcome {
    replies: Vec<Reply>,
    end: End,
}

/// Feeds `wire` in chunks of `sizes` (cycled), taking replies out after each chunk.
fn parse(wire: &[u8], sizes: &[usize], zero_copy: bool) -> Outcome {
    let mut p = Parser::new();
    let mut replies = Vec::new();
    let mut rest = wire;
    let mut failed = None;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        if zero_copy {
            let space = p.spare(chunk.len());
            assert!(space.len() >= chunk.len());
            space[..chunk.len()].copy_from_slice(chunk);
            p.advance(chunk.len());
        } else {
            p.feed(chunk);
        }
        loop {
            match p.next_reply() {
                Ok(Some(r)) => replies.push(r),
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    // It sticks, whatever comes next.
                    p.feed(b"+OK\r\n");
                    assert_eq!(p.next_reply(), Err(e.clone()));
                    assert!(!p.is_clean());
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }
    let end = match failed {
        Some(e) => End::Failed(e),
        None if p.is_clean() => End::Clean,
        None => {
            assert_eq!(p.next_reply(), Ok(None));
            End::NeedMore(p.buffered())
        }
    };
    // Whatever state it was left in, `clear` makes it usable again.
    p.clear();
    assert!(p.is_clean());
    p.feed(b"*2\r\n:1\r\n$1\r\nx\r\n");
    assert_eq!(
        p.next_reply(),
        Ok(Some(Reply::Array(vec![
            Reply::Integer(1),
            Reply::String(b"x".to_vec())
        ])))
    );
    assert!(p.is_clean());
    Outcome { replies, end }
}

/// Equal, with doubles compared by their text and bits (NaN != NaN for `==`).
fn same(a: &Reply, b: &Reply) -> bool {
    let all =
        |x: &[Reply], y: &[Reply]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y));
    match (a, b) {
        (Reply::Double { value: v, text: t }, Reply::Double { value: w, text: u }) => {
            t == u && v.to_bits() == w.to_bits()
        }
        (Reply::Array(x), Reply::Array(y))
        | (Reply::Map(x), Reply::Map(y))
        | (Reply::Set(x), Reply::Set(y))
        | (Reply::Push(x), Reply::Push(y)) => all(x, y),
        _ => a == b,
    }
}

/// Equal, except that an unknown type byte's context shows what was buffered at the time:
/// in chunks, a prefix of what the whole input shows.
fn same_error(whole: &ProtocolError, chunked: &ProtocolError) -> bool {
    match (whole, chunked) {
        (
            ProtocolError::UnknownType {
                byte: a,
                context: x,
            },
            ProtocolError::UnknownType {
                byte: b,
                context: y,
            },
        ) => a == b && x.bytes().starts_with(y.bytes()) && !y.bytes().is_empty(),
        _ => whole == chunked,
    }
}

fn check_shape(r: &Reply, depth: usize) {
    assert!(depth <= MAX_DEPTH, "nested deeper than MAX_DEPTH");
    match r {
        Reply::Map(items) => {
            assert!(items.len() % 2 == 0, "a map with {} items", items.len());
            items.iter().for_each(|i| check_shape(i, depth + 1));
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            items.iter().for_each(|i| check_shape(i, depth + 1));
        }
        Reply::Status(line) | Reply::BigNum(line) => {
            assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
        }
        Reply::Double { value, text } => {
            let reparsed: f64 = std::str::from_utf8(text).unwrap().parse().unwrap();
            assert!(reparsed.to_bits() == value.to_bits() || reparsed.is_nan() && value.is_nan());
        }
        _ => {}
    }
}

