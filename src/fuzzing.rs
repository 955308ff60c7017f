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
