//! The shared-memory figures table (`stats::table`) mapped into Apache: created by the parent
//! in `post_config`, inherited by every child, updated on the request path, and reported
//! through mod_status's `status_hook` and the `rwsgi-metrics` handler.
//!
//! The segment is anonymous shared memory in the *process* pool, remembered there as userdata,
//! so it outlives graceful restarts (and the module's unload and reload at each one): old and
//! new children share it and the figures stay cumulative. It is sized from the MPM's hard
//! process limit plus [`DAEMON_SLOTS`] reserved for daemon-mode processes.
//!
//! An Apache child claims the slot of its scoreboard index on its first WSGI request. A
//! daemon-mode process claims `Table::daemon(n)` (n: its place among all daemon processes
//! of the generation) with its process-group name right after the fork ([`claim_daemon`]),
//! and counts the requests it runs ([`begin_daemon`]/[`end`]). A request handed to a daemon
//! is counted there only, not also in the Apache child that relays it: the daemon is where
//! the app runs, so its slot's active count, response times and RSS are the app's, and the
//! totals, which sum over slots, count each request once.

use super::log::{self, Level};
use super::request::Request;
use super::scoreboard;
use crate::stats::render::{self, Exposition};
use crate::stats::table::{self, Header, Slot, SlotFigures, SlotKind, Table};
use crate::sys;
use crate::util::clock::{now_us, rss_bytes};
use std::ffi::CStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};

/// Slots reserved for daemon-mode processes (over all daemon groups).
pub const DAEMON_SLOTS: u32 = 32;

/// The pool userdata key of the segment in the process pool.
const KEY: &CStr = c"mod_rwsgi.stats";

/// What the process pool remembers across generations.
#[repr(C)]
struct Segment {
    shm: *mut sys::apr_shm_t,
    embedded: u32,
    daemon: u32,
}

/// This generation's table (set in the parent by post_config, inherited by children).
static TABLE: Mutex<Option<Table>> = Mutex::new(None);
/// This process's slot, once claimed (the request path's only lookup).
static MINE: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises slot and group-cell claims within this process.
static CLAIM: Mutex<()> = Mutex::new(());
/// This process's pid, as its slot records it (set when the slot is claimed).
static OWN_PID: AtomicI32 = AtomicI32::new(0);
/// Interpreters this process runs (copied into the slot when it is claimed).
static INTERPRETERS: AtomicU32 = AtomicU32::new(0);

fn table() -> Option<Table> {
    *TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps the figures table, reusing the one a previous generation made when the shape
/// matches. Called by the parent in post_config; a failure only disables the figures.
///
/// # Safety
/// `s` is the live main server of this generation.
pub unsafe fn init(s: *mut sys::server_rec) {
    let embedded = super::mpm::hard_process_limit().max(1) as u32;
    // SAFETY: the caller's contract; the process record and its pool live as long as httpd.
    let ppool = unsafe { (*(*s).process).pool };
    // SAFETY: `ppool` is the process pool, as `segment` requires.
    match unsafe { segment(ppool, embedded, DAEMON_SLOTS) } {
        Ok(t) => *TABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(t),
        Err(rv) => log::server_log(
            // SAFETY: the caller's contract.
            unsafe { s.as_ref() },
            Level::Warn,
            &format!(
                "RWSGI0400: cannot create the shared memory for the mod_rwsgi figures \
                 ({} bytes, APR status {rv}); mod_status and rwsgi-metrics show none",
                table::size_for(embedded, DAEMON_SLOTS)
            ),
        ),
    }
}

/// # Safety
/// `ppool` is the process pool.
unsafe fn segment(
    ppool: *mut sys::apr_pool_t,
    embedded: u32,
    daemon: u32,
) -> Result<Table, sys::apr_status_t> {
    let mut data: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: a lookup in a live pool with a static key.
    unsafe { sys::apr_pool_userdata_get(&mut data, KEY.as_ptr(), ppool) };
    let seg = data.cast::<Segment>();
    // SAFETY: the userdata under KEY is only ever a Segment allocated below in this pool.
    let reuse = unsafe { seg.as_ref() }
        .filter(|g| g.embedded == embedded && g.daemon == daemon && !g.shm.is_null());
    let shm = match reuse {
        Some(g) => g.shm,
        None => {
            let size = table::size_for(embedded, daemon);
            let mut shm: *mut sys::apr_shm_t = std::ptr::null_mut();
            // SAFETY: anonymous shared memory (null name), owned by the process pool, so it
            // lives until httpd exits; children inherit the mapping. The kernel hands it out
            // zero-filled (an empty table), and pages of slots never used stay uncommitted.
            let rv = unsafe { sys::apr_shm_create(&mut shm, size, std::ptr::null(), ppool) };
            if rv != 0 {
                return Err(rv);
            }
            // SAFETY: palloc in the live process pool; the record is fully written before use.
            unsafe {
                let g = sys::apr_palloc(ppool, std::mem::size_of::<Segment>()).cast::<Segment>();
                g.write(Segment {
                    shm,
                    embedded,
                    daemon,
                });
                sys::apr_pool_userdata_set(g.cast(), KEY.as_ptr(), None, ppool);
            }
            shm
        }
    };
    // SAFETY: the segment holds a Header then `embedded + daemon` Slots at slots_offset();
    // its base is 8-byte aligned (APR's mmap base plus its size word), which Header and Slot
    // need; it is never unmapped before the process exits, hence 'static; every field is an
    // atomic, so shared access from all processes is sound.
    unsafe {
        let base = sys::apr_shm_baseaddr_get(shm).cast::<u8>();
        let header = &*base.cast::<Header>();
        let slots = std::slice::from_raw_parts(
            base.add(table::slots_offset()).cast::<Slot>(),
            (embedded + daemon) as usize,
        );
        Ok(Table::new(header, slots, embedded))
    }
}

/// This embedded child's slot, claimed on first use (None without a table, or before the
/// parent has recorded this child in the scoreboard).
fn my_slot() -> Option<&'static Slot> {
    let p = MINE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only pointers into the 'static table are stored.
        return Some(unsafe { &*p });
    }
    let _claiming = CLAIM.lock().unwrap_or_else(|e| e.into_inner());
    let p = MINE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: as above.
        return Some(unsafe { &*p });
    }
    let index = scoreboard::my_child_slot()?;
    let slot = table()?.embedded(index)?;
    let generation = scoreboard::process_at(index).map_or(0, |(_, g)| g);
    let pid = std::process::id() as i32;
    OWN_PID.store(pid, Ordering::Relaxed);
    slot.claim(pid, SlotKind::Embedded, "", generation, now_us());
    slot.set_interpreters(INTERPRETERS.load(Ordering::Relaxed));
    MINE.store(std::ptr::from_ref(slot).cast_mut(), Ordering::Release);
    Some(slot)
}

/// Makes daemon slot `index` this daemon process's, for process group `group` (in the
/// freshly forked daemon, before it serves anything). False when there is no table or no
/// slot that far: the process then runs uncounted.
pub fn claim_daemon(index: usize, group: &str) -> bool {
    let Some(slot) = table().and_then(|t| t.daemon(index)) else {
        return false;
    };
    let pid = std::process::id() as i32;
    OWN_PID.store(pid, Ordering::Relaxed);
    slot.claim(pid, SlotKind::Daemon, group, 0, now_us());
    slot.set_interpreters(INTERPRETERS.load(Ordering::Relaxed));
    MINE.store(std::ptr::from_ref(slot).cast_mut(), Ordering::Release);
    true
}

/// Records how many Python interpreters this process runs.
pub fn set_interpreters(n: usize) {
    INTERPRETERS.store(n as u32, Ordering::Relaxed);
    let p = MINE.load(Ordering::Acquire);
    // SAFETY: null or a pointer into the 'static table.
    if let Some(slot) = unsafe { p.as_ref() } {
        slot.set_interpreters(n as u32);
    }
}

/// A request being counted in this process's slot. Dropped without [`end`] (a panic
/// unwinding through the handler), it counts as a 500, so `active` never stays raised.
pub struct Recording {
    slot: &'static Slot,
    group: usize,
    start_us: i64,
    pid: i32,
    /// Counted in the slot's active requests.
    active: bool,
}

impl Recording {
    fn finish(&self, status: i32) {
        let us = (now_us() - self.start_us).max(0) as u64;
        self.slot.end(self.group, status, us, self.pid, self.active);
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish(sys::HTTP_INTERNAL_SERVER_ERROR as i32);
    }
}

/// Starts counting a request of application group `group` (None when there is no table).
/// The main interpreter's group, the empty name, is shown as `%{GLOBAL}`: an empty label
/// value reads as no label in Prometheus.
pub fn begin(r: &Request<'_>, group: &str) -> Option<Recording> {
    Some(record(my_slot()?, group, r.request_time()))
}

/// [`begin`] in a daemon process: `start_us` is when Apache read the request, so the time
/// includes the hand-off and the wait for a daemon thread. None when this process has no
/// slot.
pub fn begin_daemon(start_us: i64, group: &str) -> Option<Recording> {
    let p = MINE.load(Ordering::Acquire);
    // SAFETY: null or a pointer into the 'static table.
    let slot = unsafe { p.as_ref() }?;
    Some(record(slot, group, start_us))
}

fn record(slot: &'static Slot, group: &str, start_us: i64) -> Recording {
    let group = if group.is_empty() { "%{GLOBAL}" } else { group };
    let group = match slot.find_group(group) {
        Some(g) => g,
        None => {
            let _claiming = CLAIM.lock().unwrap_or_else(|e| e.into_inner());
            slot.claim_group(group)
        }
    };
    let pid = OWN_PID.load(Ordering::Relaxed);
    let active = slot.begin(pid);
    Recording {
        slot,
        group,
        start_us,
        pid,
        active,
    }
}

/// Ends the count: the final status and the time since Apache read the request.
pub fn end(rec: Recording, status: i32) {
    rec.finish(status);
    std::mem::forget(rec);
}

/// Every used slot's figures, with liveness (the scoreboard for Apache children, /proc for
/// daemon processes) and RSS read now.
fn figures() -> Vec<SlotFigures> {
    let Some(t) = table() else {
        return Vec::new();
    };
    t.used()
        .map(|(i, s)| {
            let mut f = s.snapshot(i);
            f.live = match f.kind {
                SlotKind::Embedded => scoreboard::process_at(i).is_some_and(|(p, _)| p == f.pid),
                _ => std::path::Path::new(&format!("/proc/{}", f.pid)).exists(),
            };
            if f.live {
                f.rss_bytes = rss_bytes(f.pid as u32);
            } else {
                f.active = 0;
            }
            f
        })
        .collect()
}

/// mod_status's `status_hook`: the `?auto` lines or the HTML section.
unsafe extern "C" fn status_hook(r: *mut sys::request_rec, flags: libc::c_int) -> libc::c_int {
    super::trampoline::guard("status hook", sys::OK as libc::c_int, || {
        // SAFETY: mod_status passes the live request it is answering.
        let r = unsafe { Request::from_raw(r) };
        let f = figures();
        let text = if flags & sys::RWSGI_AP_STATUS_SHORT != 0 {
            render::auto(&f)
        } else if flags & sys::RWSGI_AP_STATUS_NOTABLE != 0 {
            render::html_without_tables(&f)
        } else {
            render::html(&f)
        };
        r.rwrite(text.as_bytes());
        sys::OK as libc::c_int
    })
}

/// Registers the status hook (a no-op when mod_status is not loaded).
pub fn register_status_hook() {
    // SAFETY: called from register_hooks; the function lives as long as the module.
    unsafe { sys::rwsgi_hook_status(Some(status_hook)) };
}

/// The `rwsgi-metrics` handler: the OpenMetrics or Prometheus text exposition.
pub fn serve_metrics(r: Request<'_>) -> i32 {
    if !matches!(r.method(), b"GET" | b"HEAD") {
        return sys::HTTP_METHOD_NOT_ALLOWED as i32;
    }
    let accept = r
        .headers_in()
        .get(c"Accept")
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    let format = Exposition::for_accept(&accept);
    r.set_content_type(format.content_type().as_bytes());
    r.headers_out().add(b"Cache-Control", b"no-store");
    let text = render::metrics(&figures(), format);
    if !r.rwrite(text.as_bytes()) {
        r.log(
            Level::Info,
            "RWSGI0401: the client went away while rwsgi-metrics was sent",
        );
    }
    sys::OK as i32
}
