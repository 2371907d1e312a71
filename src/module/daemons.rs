//! The Apache parent's side of daemon mode: forks each group's processes with
//! `apr_proc_fork`, has the MPM watch them as "other children" so a dead one is replaced,
//! and ends them all when the configuration pool goes (stop, restart, graceful).

use crate::daemon::{self, Group, os, spawner};
use crate::httpd::config_store;
use crate::httpd::log::{self, Level};
use crate::python::runtime::DaemonShape;
use crate::sys;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, Instant};

/// One daemon process slot of a group.
struct Slot {
    /// Place among all daemon processes of the generation: its figures-table daemon slot.
    index: usize,
    proc_: sys::apr_proc_t,
    group: Arc<Group>,
    started: Instant,
    delay: Duration,
    pconf: *mut sys::apr_pool_t,
    /// The server that defined the group (a virtual host, or the main server): its
    /// ErrorLog takes the daemon's own lines (lives as long as pconf, and the daemon's copy
    /// of it as long as the daemon).
    server: *const sys::server_rec,
    /// The main server: the parent's lines about the process go to its log, as mod_wsgi's
    /// do (where "look in the main error log" finds a daemon that died). It heads the
    /// server list, and is as long-lived as `server`.
    main: *const sys::server_rec,
}

/// This generation's daemons (boxed in the config pool). `slots` is filled before the first
/// fork and never grows afterwards, so every slot's address stays valid for the other-child
/// registrations that point at it.
struct Generation {
    slots: Vec<Slot>,
    /// Daemons of earlier generations still finishing requests after a graceful restart.
    retired: Vec<Retired>,
    groups: Vec<Arc<Group>>,
    parent: i32,
    /// Outlives restarts: carries the retiring daemons' pids to the next generation.
    process_pool: *mut sys::apr_pool_t,
    /// The generation's configuration pool.
    pconf: *mut sys::apr_pool_t,
}

/// A daemon of an earlier generation, draining.
struct Retired {
    proc_: sys::apr_proc_t,
    server: *const sys::server_rec,
}

/// Process-pool key of the retiring daemons' pids ("pid,pid,..."). The process pool and
/// its userdata survive the module's unload and reload at each restart; the value is
/// plain text allocated in that pool.
const RETIRING: &std::ffi::CStr = c"mod_rwsgi retiring daemon pids";

fn take_retiring(pool: *mut sys::apr_pool_t) -> Vec<i32> {
    let mut data: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: pool is the live process pool; the value, if any, is a NUL-terminated string
    // this module stored there.
    let text = unsafe {
        sys::apr_pool_userdata_get(&mut data, RETIRING.as_ptr(), pool);
        if data.is_null() {
            return Vec::new();
        }
        let t = std::ffi::CStr::from_ptr(data.cast())
            .to_string_lossy()
            .into_owned();
        sys::apr_pool_userdata_set(c"".as_ptr().cast(), RETIRING.as_ptr(), None, pool);
        t
    };
    text.split(',').filter_map(|p| p.parse().ok()).collect()
}

fn leave_retiring(pool: *mut sys::apr_pool_t, pids: &[i32]) {
    let text = pids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // SAFETY: the copy lives in the process pool; userdata_set copies the key.
    unsafe {
        let v = crate::httpd::pstrdup(pool, text.as_bytes());
        sys::apr_pool_userdata_set(v.cast(), RETIRING.as_ptr(), None, pool);
    }
}

/// Process-pool key of the secret kept for the parent's whole life (`WSGISocketRotation
/// Off`): an Apache child of the previous generation still reaches the same socket path
/// after a graceful restart, now served by the new daemons, and must still be accepted.
const STABLE_SECRET: &std::ffi::CStr = c"mod_rwsgi stable daemon secret";

fn stable_secret(pool: *mut sys::apr_pool_t) -> Vec<u8> {
    let mut data: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: pool is the live process pool; the value, if any, is the NUL-terminated hex
    // text this function stored there.
    unsafe {
        sys::apr_pool_userdata_get(&mut data, STABLE_SECRET.as_ptr(), pool);
        if !data.is_null() {
            let hex = std::ffi::CStr::from_ptr(data.cast()).to_bytes();
            let bytes: Vec<u8> = hex
                .chunks(2)
                .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
                .collect();
            if bytes.len() == 16 {
                return bytes;
            }
        }
    }
    let secret = os::random_bytes(16);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    // SAFETY: the copy lives in the process pool; userdata_set copies the key.
    unsafe {
        let v = crate::httpd::pstrdup(pool, hex.as_bytes());
        sys::apr_pool_userdata_set(v.cast(), STABLE_SECRET.as_ptr(), None, pool);
    }
    secret
}

/// Every server's own daemon groups, main server first, each with its owner key.
///
/// # Safety
/// `s` is the live main server.
unsafe fn configured(
    s: *const sys::server_rec,
) -> Vec<(crate::config::daemon::DaemonGroup, usize)> {
    let mut out = Vec::new();
    let mut cur = s;
    while !cur.is_null() {
        // SAFETY: every server in Apache's list is live and has our config.
        unsafe {
            let key = if (*cur).is_virtual == 0 {
                0
            } else {
                cur as usize
            };
            // A virtual host without WSGI directives shares the main server's config
            // (Apache 2.4 creates module configs for a vhost only when it uses them).
            let conf = config_store::server_config(cur);
            if key == 0 || !std::ptr::eq(conf, config_store::server_config(s)) {
                for g in &conf.daemon_groups {
                    out.push((g.clone(), key));
                }
            }
            cur = (*cur).next;
        }
    }
    out
}

/// The server that defined a group: its owner key is the virtual host's `server_rec`
/// address (see [`configured`]), 0 for the main server `s`.
fn defining_server(s: *const sys::server_rec, owner: usize) -> *const sys::server_rec {
    match owner {
        0 => s,
        vhost => vhost as *const sys::server_rec,
    }
}

fn runtime_path(pconf: *mut sys::apr_pool_t, file: &str) -> PathBuf {
    let c = CString::new(file).expect("group names have no NUL");
    // SAFETY: ap_runtime_dir_relative allocates the result in pconf and never fails
    // for a relative name.
    let p = unsafe { sys::ap_runtime_dir_relative(pconf, c.as_ptr()) };
    if p.is_null() {
        return PathBuf::from(file);
    }
    // SAFETY: a NUL-terminated string in pconf.
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    PathBuf::from(s.to_string_lossy().into_owned())
}

/// The uid/gid of Apache's children.
pub fn child_ids() -> (u32, u32) {
    let (mut uid, mut gid) = (0u32, 0u32);
    // SAFETY: writes two integers read from Apache's unixd configuration.
    unsafe { sys::rwsgi_unixd_ids(&mut uid, &mut gid) };
    (uid, gid)
}

/// post_config: starts this generation's daemon groups (not during the first, trial read of
/// the configuration, and never in `-t`).
///
/// # Safety
/// Called from post_config with Apache's live pconf and main server.
pub unsafe fn start(pconf: *mut sys::apr_pool_t, s: *mut sys::server_rec) -> Result<(), String> {
    // SAFETY: a plain query of Apache's state.
    let state = unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE as i32) };
    if state == sys::AP_SQ_MS_CREATE_PRE_CONFIG as i32 {
        return Ok(());
    }
    // SAFETY: as the caller guarantees.
    let defs = unsafe { configured(s) };
    daemon::install(Vec::new());
    // SAFETY: the main server's process record lives as long as the process.
    let process_pool = unsafe { (*(*s).process).pool };
    let retiring = take_retiring(process_pool);
    if defs.is_empty() && retiring.is_empty() {
        return Ok(());
    }
    // SAFETY: s is the live main server.
    let conf = unsafe { config_store::server_config(s) };
    // SAFETY: as above; the main server's timeout is a plain field.
    let timeout_us = unsafe { (*s).timeout };
    let mut scripts = Vec::new();
    let mut cur: *const sys::server_rec = s;
    while !cur.is_null() {
        // SAFETY: every server in the list is live.
        unsafe {
            scripts.extend(
                config_store::server_config(cur)
                    .import_scripts
                    .iter()
                    .cloned(),
            );
            cur = (*cur).next;
        }
    }
    let facts = spawner::ParentFacts {
        child_ids: child_ids(),
        apache_timeout: Duration::from_micros(timeout_us.max(1_000_000) as u64),
        python: &conf.python,
        import_scripts: &scripts,
        root: os::euid() == 0,
    };
    let sockets = spawner::Sockets {
        prefix: conf
            .daemon
            .socket_prefix
            .clone()
            .unwrap_or_else(|| runtime_path(pconf, "rwsgi").to_string_lossy().into_owned()),
        stable_secret: (!conf.daemon.rotation()).then(|| stable_secret(process_pool)),
    };
    let groups = spawner::prepare(defs, &facts, &sockets)?;
    daemon::install(groups.clone());
    let generation = Generation {
        slots: Vec::new(),
        retired: retiring
            .iter()
            .map(|&pid| Retired {
                // SAFETY: apr_proc_t is a plain C struct; zero is its empty value.
                proc_: sys::apr_proc_t {
                    pid,
                    ..unsafe { std::mem::zeroed() }
                },
                server: s,
            })
            .collect(),
        groups: groups.clone(),
        parent: os::pid(),
        process_pool,
        pconf,
    };
    // SAFETY: pconf is live; the box is freed by its cleanup, registered before the one
    // that ends the daemons, so it runs after it.
    let gen_ptr = unsafe { config_store::store(pconf, generation) }.cast::<Generation>();
    // SAFETY: the cleanup gets the generation, alive until its own (later-running) drop.
    unsafe {
        sys::apr_pool_cleanup_register(
            pconf,
            gen_ptr.cast(),
            Some(end_generation),
            Some(sys::apr_pool_cleanup_null),
        )
    };
    // SAFETY: just stored, and only this single-threaded parent touches it.
    let generation = unsafe { &mut *gen_ptr };
    for g in &groups {
        let server = defining_server(s, g.owner);
        for _ in 0..g.def.processes {
            generation.slots.push(Slot {
                index: generation.slots.len(),
                // SAFETY: apr_proc_t is a plain C struct; zero is its empty value.
                proc_: unsafe { std::mem::zeroed() },
                group: g.clone(),
                started: Instant::now(),
                delay: Duration::ZERO,
                pconf,
                server,
                main: s,
            });
        }
    }
    let counted = crate::httpd::status::DAEMON_SLOTS as usize;
    if generation.slots.len() > counted {
        log::server_log(
            // SAFETY: s is live.
            unsafe { s.as_ref() },
            Level::Warn,
            &format!(
                "RWSGI0660: {} daemon processes are configured (all WSGIDaemonProcess groups \
                 together) but the mod_status and rwsgi-metrics figures have room for {counted}; \
                 the processes after the first {counted} are not shown there",
                generation.slots.len()
            ),
        );
    }
    // SAFETY: a plain query of Apache's state.
    if unsafe { sys::ap_exists_scoreboard_image() } != 0 {
        launch(generation);
    } else {
        // First start: pre_mpm makes the scoreboard after this, and daemons forked now would
        // never see it (`server-metrics=On`); as mod_wsgi does, they are forked there.
        PENDING.store(gen_ptr, Ordering::SeqCst);
    }
    Ok(())
}

/// The generation whose daemons wait for pre_mpm (first start only).
static PENDING: AtomicPtr<Generation> = AtomicPtr::new(std::ptr::null_mut());

/// pre_mpm, really last: on first start, forks the daemons post_config prepared, now that
/// the scoreboard exists.
pub fn launch_pending() {
    let pending = PENDING.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: set by `start` to this generation's stored Generation, which lives until its
    // pool's cleanup, and that cleanup clears PENDING first.
    if let Some(generation) = unsafe { pending.as_mut() } {
        launch(generation);
    }
}

/// Forks the generation's daemons and has the MPM watch the previous generation's.
fn launch(generation: &mut Generation) {
    for slot in generation.slots.iter_mut() {
        spawn(slot);
    }
    // The MPM reaps them with the other children and reports each end here.
    for r in generation.retired.iter_mut() {
        // SAFETY: like the slots: `retired` never grows after this, and the registration's
        // own cleanup on pconf removes it before the generation is freed.
        unsafe {
            sys::apr_proc_other_child_register(
                &mut r.proc_,
                Some(retired_maintenance),
                (r as *mut Retired).cast(),
                std::ptr::null_mut(),
                generation.pconf,
            )
        };
    }
}

unsafe extern "C" fn retired_maintenance(
    reason: libc::c_int,
    data: *mut libc::c_void,
    status: libc::c_int,
) {
    crate::httpd::trampoline::guard("retired daemon maintenance", (), || {
        let reason = reason as u32;
        if reason != sys::APR_OC_REASON_DEATH && reason != sys::APR_OC_REASON_LOST {
            return;
        }
        // SAFETY: registered with this entry's address, live as long as the registration.
        let r = unsafe { &mut *data.cast::<Retired>() };
        let pid = r.proc_.pid;
        // SAFETY: our registration, removed once inside its own callback as APR expects.
        unsafe { sys::apr_proc_other_child_unregister(data) };
        r.proc_.pid = 0;
        log::server_log(
            // SAFETY: the main server lives in pconf, as long as the entry.
            unsafe { r.server.as_ref() },
            Level::Info,
            &format!(
                "RWSGI0506: daemon process {pid} of the previous generation finished its \
                 requests and ended (exit status or signal {status})"
            ),
        );
    })
}

impl Slot {
    fn log_server(&self) -> Option<&sys::server_rec> {
        // SAFETY: the main server lives in pconf, as long as the slot.
        unsafe { self.main.as_ref() }
    }
}

/// Forks the daemon of `slot` and registers it with the MPM.
fn spawn(slot: &mut Slot) {
    slot.started = Instant::now();
    // SAFETY: proc_ is owned by the slot; pconf is live for this generation.
    let rv = unsafe { sys::apr_proc_fork(&mut slot.proc_, slot.pconf) };
    if rv == sys::APR_INCHILD as i32 {
        become_daemon(slot);
    }
    if rv != sys::APR_INPARENT as i32 {
        log::server_log(
            slot.log_server(),
            Level::Crit,
            &format!(
                "RWSGI0501: cannot fork a process for daemon process group '{}' (APR error {rv})",
                slot.group.def.name
            ),
        );
        return;
    }
    // SAFETY: the slot lives (boxed) until the generation's pool is destroyed; the
    // registration's own cleanup on the same pool removes it before that.
    unsafe {
        sys::apr_proc_other_child_register(
            &mut slot.proc_,
            Some(maintenance),
            (slot as *mut Slot).cast(),
            std::ptr::null_mut(),
            slot.pconf,
        )
    };
    log::server_log(
        slot.log_server(),
        Level::Info,
        &format!(
            "RWSGI0502: daemon process group '{}' started process {}",
            slot.group.def.name, slot.proc_.pid
        ),
    );
}

/// In the new child: leave Apache's world and run the daemon. Never returns.
fn become_daemon(slot: &Slot) -> ! {
    let others = daemon::all();
    let group = slot.group.clone();
    let delay = slot.delay;
    let name = group.def.name.clone();
    let shape = DaemonShape {
        processes: group.def.processes,
        threads: group.def.threads,
        server_metrics: group.def.server_metrics,
    };
    // SAFETY: the servers live in this process's copy of the parent's pconf for as long as
    // the process.
    unsafe { log::set_process_server(slot.server, slot.main) };
    // The figures table is inherited mapped from the parent (anonymous shared memory, so
    // the privilege drop that follows does not affect access to it).
    crate::httpd::status::claim_daemon(slot.index, &group.def.name);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(t) = group.def.title() {
            set_title(slot.server, &t);
        }
        os::reset_signals();
        // SAFETY: this process serves no HTTP; Apache's listening sockets must not stay open.
        unsafe { sys::rwsgi_close_listeners() };
        daemon::worker::run(
            group,
            &others,
            delay,
            super::hooks::identity(Some((&name, shape))),
            &super::hooks::HOST,
            log::process_logger,
        )
    }));
    drop(result);
    os::exit_now(1)
}

/// Overwrites `argv[0]` in place (what `ps` shows), truncated to its length, and sets the
/// thread name `top` shows.
fn set_title(s: *const sys::server_rec, title: &str) {
    // SAFETY: the process record and its argv live as long as the process; argv[0] is a
    // NUL-terminated string we overwrite only within its own length.
    unsafe {
        let Some(s) = s.as_ref() else { return };
        let Some(process) = s.process.as_ref() else {
            return;
        };
        if process.argv.is_null() || (*process.argv).is_null() {
            return;
        }
        let arg0 = (*process.argv).cast_mut();
        let room = libc::strlen(arg0);
        let bytes = title.as_bytes();
        let n = bytes.len().min(room);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), arg0.cast::<u8>(), n);
        std::ptr::write_bytes(arg0.add(n), 0, room - n);
        let comm = CString::new(&bytes[..bytes.len().min(15)]).unwrap_or_default();
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
    }
}

unsafe extern "C" fn maintenance(
    reason: libc::c_int,
    data: *mut libc::c_void,
    status: libc::c_int,
) {
    crate::httpd::trampoline::guard("daemon maintenance", (), || {
        // SAFETY: registered with the slot's address, which lives as long as the registration.
        let slot = unsafe { &mut *data.cast::<Slot>() };
        let reason = reason as u32;
        if reason != sys::APR_OC_REASON_DEATH && reason != sys::APR_OC_REASON_LOST {
            return;
        }
        let pid = slot.proc_.pid;
        // SAFETY: the registration is ours; removing it inside its own callback is what APR
        // expects once the process is gone.
        unsafe { sys::apr_proc_other_child_unregister(data) };
        slot.proc_.pid = 0;
        let lived = slot.started.elapsed();
        let mut state = 0;
        // SAFETY: a plain query of the MPM's state.
        unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MPM_STATE as i32, &mut state) };
        let stopping = state == sys::AP_MPMQ_STOPPING as i32;
        // A daemon that recycled itself (maximum-requests, restart-interval,
        // inactivity-timeout, cpu-time-limit) drains and exits 0.
        let planned = reason == sys::APR_OC_REASON_DEATH && status == 0;
        slot.delay = spawner::next_delay(lived, slot.delay, planned);
        log::server_log(
            slot.log_server(),
            if stopping || planned {
                Level::Info
            } else {
                Level::Error
            },
            &format!(
                "RWSGI0503: daemon process group '{}' process {pid} {} (exit status or \
                 signal {status}) after {:.1} s{}",
                slot.group.def.name,
                if planned { "ended" } else { "died" },
                lived.as_secs_f64(),
                if stopping {
                    String::new()
                } else {
                    format!("; starting a new one in {:.1} s", slot.delay.as_secs_f64())
                }
            ),
        );
        if !stopping {
            spawn(slot);
        }
    })
}

unsafe extern "C" fn end_generation(data: *mut libc::c_void) -> sys::apr_status_t {
    crate::httpd::trampoline::guard("daemon shutdown", 0, || {
        // SAFETY: the generation registered with this cleanup; its drop cleanup runs later.
        let generation = unsafe { &mut *data.cast::<Generation>() };
        let _ = PENDING.compare_exchange(
            data.cast(),
            std::ptr::null_mut(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if generation.parent != os::pid() {
            return 0;
        }
        let mut live = Vec::new();
        let mut grace = Duration::ZERO;
        for slot in generation.slots.iter_mut() {
            // The other-child registrations are already gone: their cleanups, registered
            // on pconf after this one, ran first (and unregistering twice crashes APR).
            if slot.proc_.pid > 0 {
                live.push(slot.proc_.pid);
                slot.proc_.pid = 0;
            }
            grace = grace.max(Duration::from_secs(slot.group.def.shutdown_timeout.into()));
        }
        let retired: Vec<i32> = generation
            .retired
            .iter()
            .map(|r| r.proc_.pid)
            .filter(|p| *p > 0)
            .collect();
        // SAFETY: a plain query of Apache's state.
        let state = unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE as i32) };
        if state == sys::AP_SQ_MS_DESTROY_CONFIG as i32 {
            // A restart: the old generation's Apache children may still be finishing
            // requests with these daemons, which end once idle (graceful-timeout at most).
            for &p in &live {
                os::signal(p, libc::SIGUSR1);
            }
            let all: Vec<i32> = live.iter().chain(&retired).copied().collect();
            leave_retiring(generation.process_pool, &all);
        } else {
            let all: Vec<i32> = live.iter().chain(&retired).copied().collect();
            os::terminate(&all, grace.max(Duration::from_secs(1)));
        }
        for g in &generation.groups {
            os::close(g.listener);
            let _ = std::fs::remove_file(&g.socket);
        }
        daemon::install(Vec::new());
        0
    })
}

/// child_init: an Apache child connects by path; it has no use for the listening sockets.
pub fn close_listeners_in_child() {
    for g in daemon::all() {
        os::close(g.listener);
    }
}
