//! Facts about the running MPM (for `wsgi.multithread`/`wsgi.multiprocess` and the size of
//! the status table).

use crate::sys;

fn query(code: u32) -> i32 {
    let mut v: libc::c_int = 0;
    // SAFETY: ap_mpm_query writes one int for these query codes.
    let rv = unsafe { sys::ap_mpm_query(code as libc::c_int, &mut v) };
    if rv == 0 { v } else { 0 }
}

/// How the MPM runs requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpmShape {
    pub threaded: bool,
    pub max_threads: i32,
    pub max_daemons: i32,
}

static DAEMON_SHAPE: std::sync::OnceLock<MpmShape> = std::sync::OnceLock::new();
static DAEMON_GROUP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// In a daemon process of group `group`: its processes and threads replace the MPM's for
/// the apps (`mod_wsgi.*`, `wsgi.multi*`); the `apache` module still reports the MPM's.
pub fn set_daemon_shape(group: &str, processes: u32, threads: u32) {
    let _ = DAEMON_GROUP.set(group.to_string());
    let _ = DAEMON_SHAPE.set(MpmShape {
        threaded: true,
        max_threads: threads as i32,
        max_daemons: processes as i32,
    });
}

/// The daemon process group this process serves, `""` in an Apache child
/// (`mod_wsgi.process_group`).
pub fn daemon_group() -> &'static str {
    DAEMON_GROUP.get().map_or("", String::as_str)
}

/// The shape apps run with: the daemon group's in a daemon process, else the MPM's.
pub fn shape() -> MpmShape {
    DAEMON_SHAPE.get().copied().unwrap_or_else(mpm_shape)
}

/// Queries the MPM (valid after the MPM has read its configuration), also in a daemon.
pub fn mpm_shape() -> MpmShape {
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
