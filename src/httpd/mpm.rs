//! Facts about the running MPM (for `wsgi.multithread`/`wsgi.multiprocess` and the size of
//! the status table).

use crate::stats::server::MpmShape;
use crate::sys;

fn query(code: u32) -> i32 {
    let mut v: libc::c_int = 0;
    // SAFETY: ap_mpm_query writes one int for these query codes.
    let rv = unsafe { sys::ap_mpm_query(code as libc::c_int, &mut v) };
    if rv == 0 { v } else { 0 }
}

/// Queries the MPM (valid after the MPM has read its configuration).
pub fn shape() -> MpmShape {
    let threaded = query(sys::AP_MPMQ_IS_THREADED) != sys::AP_MPMQ_NOT_SUPPORTED as i32;
    MpmShape {
        threaded,
        max_threads: if threaded {
            query(sys::AP_MPMQ_MAX_THREADS).max(1)
        } else {
            1
        },
        max_daemons: query(sys::AP_MPMQ_MAX_DAEMONS),
    }
}

/// The most child processes the MPM can ever run at once (its hard `ServerLimit`, fixed
/// for httpd's life), 0 when unknown.
pub fn hard_process_limit() -> i32 {
    query(sys::AP_MPMQ_HARD_LIMIT_DAEMONS)
}

/// The MPM's name ("event", "worker", "prefork").
pub fn name() -> String {
    // SAFETY: ap_show_mpm returns a static string.
    let p = unsafe { sys::ap_show_mpm() };
    // SAFETY: static NUL-terminated string.
    String::from_utf8_lossy(unsafe { super::cstr_bytes(p) }).into_owned()
}
