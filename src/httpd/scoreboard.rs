//! Read-only snapshots of Apache's scoreboard and server identity, as plain Rust values (for
//! `mod_wsgi.server_metrics()` and the `apache` module).

use crate::stats::server::{Process, Snapshot, Worker};
use crate::sys;

fn c_text(bytes: &[libc::c_char]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// The scoreboard, or `None` when this process has none.
pub fn snapshot() -> Option<Snapshot> {
    // SAFETY: read-only queries of the scoreboard Apache keeps in shared memory for the
    // life of the generation; every record pointer is checked for null before use.
    unsafe {
        if sys::ap_exists_scoreboard_image() == 0 {
            return None;
        }
        let gs = sys::ap_get_scoreboard_global().as_ref()?;
        let mut processes = Vec::new();
        for i in 0..gs.server_limit {
            let Some(ps) = sys::ap_get_scoreboard_process(i).as_ref() else {
                continue;
            };
            let mut workers = Vec::new();
            for j in 0..gs.thread_limit {
                let Some(ws) = sys::ap_get_scoreboard_worker_from_indexes(i, j).as_ref() else {
                    continue;
                };
                workers.push(Worker {
                    thread_num: ws.thread_num,
                    generation: ws.generation,
                    status: ws.status,
                    access_count: ws.access_count,
                    bytes_served: ws.bytes_served.max(0) as u64,
                    start_time: ws.start_time,
                    stop_time: ws.stop_time,
                    last_used: ws.last_used,
                    client: c_text(&ws.client),
                    request: c_text(&ws.request),
                    vhost: c_text(&ws.vhost),
                });
            }
            processes.push(Process {
                pid: ps.pid,
                generation: ps.generation,
                quiescing: ps.quiescing != 0,
                workers,
            });
        }
        Some(Snapshot {
            server_limit: gs.server_limit,
            thread_limit: gs.thread_limit,
            running_generation: gs.running_generation,
            restart_time: gs.restart_time,
            processes,
        })
    }
}

fn static_text(p: *const libc::c_char) -> String {
    // SAFETY: httpd returns static NUL-terminated strings (or null) from these queries.
    String::from_utf8_lossy(unsafe { super::cstr_bytes(p) }).into_owned()
}

/// The full server description ("Apache/2.4.x (Debian) mod_rwsgi/…").
pub fn description() -> String {
    // SAFETY: no preconditions after configuration.
    static_text(unsafe { sys::ap_get_server_description() })
}

/// When httpd was built.
pub fn build_date() -> String {
    // SAFETY: no preconditions.
    static_text(unsafe { sys::ap_get_server_built() })
}

/// The pid and generation in Apache child slot `index`, when the scoreboard has that slot.
pub fn process_at(index: usize) -> Option<(i32, i32)> {
    // SAFETY: as in `snapshot`: read-only, the record checked for null.
    unsafe {
        if sys::ap_exists_scoreboard_image() == 0 {
            return None;
        }
        let gs = sys::ap_get_scoreboard_global().as_ref()?;
        if index >= gs.server_limit.max(0) as usize {
            return None;
        }
        let ps = sys::ap_get_scoreboard_process(index as libc::c_int).as_ref()?;
        Some((ps.pid, ps.generation))
    }
}

/// This process's Apache child slot, once the parent has recorded its pid there.
pub fn my_child_slot() -> Option<usize> {
    let mut proc_ = sys::apr_proc_t {
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
        ..Default::default()
    };
    // SAFETY: ap_find_child_by_pid only reads the pid and scans the scoreboard.
    let i = unsafe { sys::ap_find_child_by_pid(&mut proc_) };
    (i >= 0).then_some(i as usize)
}
