//! The panic boundary: no unwind ever crosses `extern "C"`.

/// Runs `$body`; a panic inside it evaluates `$on_panic` instead. Placed inside every
/// exported function so cbindgen still sees plain `extern "C" fn` items.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}

pub(crate) use ffi_boundary;
