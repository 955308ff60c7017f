//! An opaque token a layer above the pool keeps in a conn for the conn's lifetime.
//!
//! The C skin (`ffi::conn_table`) reserves a slot of its handle table on a conn's first
//! checkout through the C ABI and keeps it until the conn is closed; the token is that
//! reservation. The core stores it and drops it with the conn, knowing nothing else of
//! it: the slot index and the function that releases it are the skin's. Plain data, so
//! storing one allocates nothing.

use std::fmt;

/// A slot index and the function that gives it back, called once when the token (and so
/// the conn holding it) is dropped.
pub struct HandleToken {
    index: u32,
    release: fn(u32),
}

impl HandleToken {
    /// A token for `index`; `release(index)` runs when it is dropped.
    pub fn new(index: u32, release: fn(u32)) -> Self {
        HandleToken { index, release }
    }

    /// The slot index given to `new`.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl Drop for HandleToken {
    fn drop(&mut self) {
        (self.release)(self.index);
    }
}

impl fmt::Debug for HandleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandleToken({})", self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static RELEASED: AtomicU32 = AtomicU32::new(0);

    fn note(i: u32) {
        RELEASED.store(i + 1, Ordering::Relaxed);
    }

    #[test]
    fn dropping_the_token_releases_its_index_once() {
        let t = HandleToken::new(41, note);
        assert_eq!(t.index(), 41);
        assert_eq!(RELEASED.load(Ordering::Relaxed), 0);
        drop(t);
        assert_eq!(RELEASED.load(Ordering::Relaxed), 42);
    }
}
