//! Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers that make crate-internal
//! steps callable from outside the crate. Not part of the API; nothing else should use them.

use std::ffi::CString;

use crate::ffi::options::pool_options;
use crate::pool::{Error, Options};
use crate::redis::resp::Reply;
use crate::redis::url::UrlConfig;

/// The C options a parsed URL stands for (`pool::Settings::from_url` laid over the C
/// struct), and the strings they point into: keep both alive together. `pool_new_url`
/// itself parses straight into core options; the fuzz target checks the two agree.
pub fn url_to_c_options(cfg: &UrlConfig) -> Result<(pool_options, Vec<CString>), Error> {
    crate::ffi::options::options_from_url(cfg)
}

/// C options to validated core options: everything `pool_new` does short of starting the
/// pool (the conversion, then the checks `ConnPool::new` runs first).
///
/// # Safety
/// The string pointers in `o` are NULL or NUL-terminated, and a non-NULL `o.dialer` is a
/// callable dial function.
pub unsafe fn core_options(o: &pool_options) -> Result<Options, Error> {
    // SAFETY: per this function's contract.
    unsafe { crate::ffi::options::to_core(o) }?.validate()
}

/// A reply as RESP3 bytes, for round trips through the parser (the fuzz `resp` target and
/// the parser's own randomized tests). Errors are written as blob errors (`!`).
pub fn encode_reply(out: &mut Vec<u8>, r: &Reply) {
    fn bulk(out: &mut Vec<u8>, kind: u8, b: &[u8]) {
        out.push(kind);
        out.extend_from_slice(format!("{}\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }
    fn line(out: &mut Vec<u8>, kind: u8, b: &[u8]) {
        out.push(kind);
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }
    fn agg(out: &mut Vec<u8>, kind: u8, n: usize, items: &[Reply]) {
        line(out, kind, n.to_string().as_bytes());
        for i in items {
            encode_reply(out, i);
        }
    }
    match r {
        Reply::String(b) => bulk(out, b'$', b),
        Reply::Status(b) => line(out, b'+', b),
        Reply::Error(b) => bulk(out, b'!', b),
        Reply::Integer(i) => line(out, b':', i.to_string().as_bytes()),
        Reply::Nil => line(out, b'_', b""),
        Reply::Double { text, .. } => line(out, b',', text),
        Reply::Bool(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
        Reply::BigNum(b) => line(out, b'(', b),
        Reply::Verb { format, text } => {
            let mut body = format.to_vec();
            body.push(b':');
            body.extend_from_slice(text);
            bulk(out, b'=', &body);
        }
        Reply::Array(v) => agg(out, b'*', v.len(), v),
        Reply::Map(v) => agg(out, b'%', v.len() / 2, v),
        Reply::Set(v) => agg(out, b'~', v.len(), v),
        Reply::Push(v) => agg(out, b'>', v.len(), v),
    }
}

/// What `pipeline_over_stream` saw.
#[derive(Debug)]
pub struct PipelineRun {
    /// Replies handed over by the pipeline.
    pub replies: usize,
    /// Whether the pipeline returned Ok.
    pub ok: bool,
    /// Pushes taken out with `next_push` afterwards.
    pub pushes: usize,
    /// Whether the conn ended up marked broken (it would be closed, never pooled).
    pub broken: bool,
}

/// Plays the server: `stream` is everything it sends (then it closes), and the conn runs a
/// pipeline of `ncmds` PINGs over it (RESP3 when `resp3`, keeping pushes when `keep`),
/// decoding every reply as a subscriber would, then takes out the pushes left. The fuzz
/// target `pipeline` checks that nothing panics and the counts add up: never more replies
/// than commands, all of them when Ok, the count before the failure otherwise.
pub fn pipeline_over_stream(stream: &[u8], ncmds: usize, resp3: bool, keep: bool) -> PipelineRun {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    let (ours, mut server) = UnixStream::pair().expect("socketpair");
    // A socketpair holds well over the 64 KiB the target feeds; what does not fit is cut.
    server.set_nonblocking(true).expect("nonblocking");
    let _ = server.write_all(stream);
    let _ = server.shutdown(std::net::Shutdown::Write);
    let mut conn = crate::pool::Conn::over_socket(
        socket2::Socket::from(std::os::fd::OwnedFd::from(ours)),
        resp3,
    );
    conn.set_timeouts(
        Some(Duration::from_millis(200)),
        Some(Duration::from_millis(200)),
    );
    if keep {
        let _ = conn.keep_pushes(true);
    }
    let ping: [&[u8]; 1] = [b"PING"];
    let cmds: Vec<&[&[u8]]> = vec![&ping[..]; ncmds];
    let mut replies = 0;
    let res = conn.pipeline(&cmds, None, &mut |r| {
        replies += 1;
        let _ = crate::pubsub::decode(r);
    });
    let ok = res.is_ok();
    if let Err((n, _)) = &res {
        assert_eq!(*n, replies, "the failure says how many replies came");
    }
    assert!(replies <= ncmds, "{replies} replies to {ncmds} commands");
    if ok {
        assert_eq!(replies, ncmds);
    }
    let mut pushes = 0;
    let now = crate::redis::io::Deadline::after(Some(Duration::ZERO));
    while let Ok(Some(_)) = conn.next_push(now) {
        pushes += 1;
        if pushes > stream.len() {
            break;
        }
    }
    drop(server);
    PipelineRun {
        replies,
        ok,
        pushes,
        broken: conn.broken_reason().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stable stand-in for the `pipeline` fuzz target: streams made of reply pieces
    /// (pushes among them), cut and mutated by a fixed xorshift, never panic and keep the
    /// counts straight (`pipeline_over_stream` asserts them).
    #[test]
    fn fuzz_pipeline_reader_never_panics() {
        const PIECES: &[&[u8]] = &[
            b"+PONG\r\n",
            b"-ERR no\r\n",
            b":7\r\n",
            b"$-1\r\n",
            b"$3\r\nabc\r\n",
            b"*2\r\n:1\r\n+x\r\n",
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            b"%1\r\n+a\r\n:1\r\n",
            b"_\r\n",
            b"*-1\r\n",
            b"\r\n",
            b"$5\r\nab",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok_runs = 0;
        for _ in 0..300 {
            let mut stream = Vec::new();
            for _ in 0..(next() % 12) {
                stream.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if next() % 4 == 0 && !stream.is_empty() {
                let i = (next() % stream.len() as u64) as usize;
                stream[i] = next() as u8;
            }
            let ncmds = 1 + (next() % 6) as usize;
            let r = pipeline_over_stream(&stream, ncmds, next() % 2 == 0, next() % 2 == 0);
            ok_runs += usize::from(r.ok);
        }
        // Some streams answered every command: the loop exercised the success path too.
        assert!(ok_runs > 0);
    }

    /// Pushes among the replies, kept: the replies come in their places, the pushes after.
    #[test]
    fn kept_pushes_do_not_take_replies_places() {
        let stream = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+PONG\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nj\r\n+PONG\r\n";
        let r = pipeline_over_stream(stream, 2, true, true);
        assert!(r.ok, "{r:?}");
        assert_eq!((r.replies, r.pushes), (2, 2));
        let r = pipeline_over_stream(stream, 2, true, false);
        assert_eq!((r.ok, r.replies, r.pushes), (true, 2, 0));
        // More replies than commands (an unbalanced stream): the pipeline gets its own,
        // and the conn, out of step, is marked broken rather than trusted.
        let r = pipeline_over_stream(b"+PONG\r\n+PONG\r\n+PONG\r\n", 2, false, false);
        assert_eq!((r.ok, r.replies, r.broken), (true, 2, true));
        let r = pipeline_over_stream(b"+PONG\r\n+PONG\r\n", 2, false, false);
        assert_eq!((r.ok, r.replies, r.broken), (true, 2, false));
        // RESP2 has no pushes: the first one is a protocol error, with 0 replies.
        let r = pipeline_over_stream(stream, 2, false, false);
        assert_eq!((r.ok, r.replies), (false, 0));
    }
}
