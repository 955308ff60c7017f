//! `pool_conn_t`: one checked-out connection.

use std::any::Any;
use std::ffi::{c_int, c_void};

use super::castable::conn_bits;
use super::conn_table;
use super::panic::ffi_boundary;

/// One checked-out connection. Opaque: the handle is not a memory address, so a stale
/// handle (after put/remove) is detected by every function instead of dereferenced.
pub struct pool_conn {
    _opaque: [u8; 0],
}

/// See `struct pool_conn`.
pub type pool_conn_t = pool_conn;

/// A destructor for conn userdata.
pub type pool_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// The caller's userdata; its free_fn runs when the conn closes, on a thread that called
/// into the library (never on a library thread).
struct CUserData {
    ptr: *mut c_void,
    free_fn: pool_free_fn,
}

// SAFETY: the header documents that userdata may be freed on whichever user thread closes
// the conn.
unsafe impl Send for CUserData {}

impl Drop for CUserData {
    fn drop(&mut self) {
        if let Some(f) = self.free_fn {
            // SAFETY: the caller registered `f` to be called once with `ptr`.
            unsafe { f(self.ptr) };
        }
    }
}

/// The socket, for the caller's own I/O. Handed out in blocking mode; the library copes with
/// whatever mode the caller leaves it in. Do not close it. -1 for NULL or a handle that is
/// not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_fd(conn: *const pool_conn_t) -> c_int {
    ffi_boundary!(-1, {
        conn_table::with(conn_bits(conn), |e| e.conn.fd()).unwrap_or(-1)
    })
}

/// Unique per pool, never reused (the first conn is 1). 0 for NULL or a handle that is not
/// checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_id(conn: *const pool_conn_t) -> u64 {
    ffi_boundary!(0, {
        conn_table::with(conn_bits(conn), |e| e.conn.id()).unwrap_or(0)
    })
}

/// Attaches `userdata` to the conn; it survives put/get and `free_fn` (may be NULL) runs
/// with it when the conn closes, on a thread that called into the library. Replacing it
/// runs the previous free_fn unless the pointer is the same. Ignored for a handle that is
/// not checked out.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_set_userdata(
    conn: *mut pool_conn_t,
    userdata: *mut c_void,
    free_fn: pool_free_fn,
) {
    ffi_boundary!((), {
        let old = conn_table::with(conn_bits(conn), |e| {
            let data: Option<Box<dyn Any + Send>> = if userdata.is_null() && free_fn.is_none() {
                None
            } else {
                Some(Box::new(CUserData {
                    ptr: userdata,
                    free_fn,
                }))
            };
            let mut old = e.conn.take_userdata_box();
            e.conn.set_userdata(data);
            // The same pointer set again must not be freed under the caller.
            if let Some(prev) = old.as_mut().and_then(|b| b.downcast_mut::<CUserData>()) {
                if prev.ptr == userdata {
                    prev.free_fn = None;
                }
            }
            old
        });
        // Runs outside the table lock: a free_fn may call back into the library.
        drop(old);
    })
}

/// The userdata set with pool_conn_set_userdata, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn pool_conn_userdata(conn: *const pool_conn_t) -> *mut c_void {
    ffi_boundary!(std::ptr::null_mut(), {
        conn_table::with(conn_bits(conn), |e| {
            e.conn
                .userdata()
                .and_then(|d| d.downcast_ref::<CUserData>())
                .map_or(std::ptr::null_mut(), |d| d.ptr)
        })
        .unwrap_or(std::ptr::null_mut())
    })
}
