//! The safe Apache adapter: requests, tables, body input and output, logging, the stored
//! configuration, MPM and scoreboard facts, the status table. With `python` it is the one
//! place that touches httpd and APR through the generated bindings; it imports nothing
//! above it (the hooks that dispatch into the WSGI layers are in `module`).

pub mod config_store;
pub mod directive;
pub mod input;
pub mod log;
pub mod mpm;
pub mod output;
pub mod regex;
pub mod request;
pub mod scoreboard;
pub mod status;
pub mod table;
pub mod trampoline;

use std::ffi::CStr;

/// Borrows a NUL-terminated C string as bytes; null becomes the empty slice.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr_bytes<'a>(p: *const libc::c_char) -> &'a [u8] {
    if p.is_null() {
        b""
    } else {
        // SAFETY: the caller guarantees a live NUL-terminated string.
        unsafe { CStr::from_ptr(p).to_bytes() }
    }
}

/// Like [`cstr_bytes`], but `None` for a null pointer.
///
/// # Safety
/// As for [`cstr_bytes`].
pub unsafe fn opt_cstr_bytes<'a>(p: *const libc::c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: forwarded caller guarantee.
        Some(unsafe { cstr_bytes(p) })
    }
}

/// Copies `s` into `pool` as a NUL-terminated string (interior NULs cut the string short).
///
/// # Safety
/// `pool` is a live APR pool.
pub unsafe fn pstrdup(pool: *mut crate::sys::apr_pool_t, s: &[u8]) -> *mut libc::c_char {
    let len = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    // SAFETY: apr_pstrmemdup copies `len` readable bytes and NUL-terminates the copy.
    unsafe { crate::sys::apr_pstrmemdup(pool, s.as_ptr().cast(), len) }
}
