//! The `extern "C"` hook entry points Apache calls; each runs through the trampoline and
//! hands a typed view of its arguments to the layer that does the work.

use crate::httpd::config_store;
use crate::httpd::log::{self, Level};
use crate::httpd::request::Request;
use crate::httpd::trampoline::guard;
use crate::python::runtime::{DaemonShape, Host, Identity};
use crate::stats::server::Snapshot;
use crate::sys;
use crate::wsgi::gateway::Severity;
use std::ffi::{CStr, CString};

/// The httpd version the module was built against, as `apache.version` reports it.
pub fn apache_version() -> (u32, u32, u32) {
    (
        sys::AP_SERVER_MAJORVERSION_NUMBER,
        sys::AP_SERVER_MINORVERSION_NUMBER,
        sys::AP_SERVER_PATCHLEVEL_NUMBER,
    )
}

/// What the Python runtime of this process is told about itself: an Apache child's, or
/// (with `daemon`) a daemon process's of that group.
pub fn identity(daemon: Option<(&str, DaemonShape)>) -> Identity {
    Identity {
        apache_version: apache_version(),
        mpm_name: crate::httpd::mpm::name(),
        mpm: crate::httpd::mpm::shape(),
        description: crate::httpd::scoreboard::description(),
        build_date: crate::httpd::scoreboard::build_date(),
        process_group: daemon.map(|(g, _)| g.to_string()).unwrap_or_default(),
        daemon: daemon.map(|(_, shape)| shape),
    }
}

/// The Python runtime's view of Apache: this process's own error log (the main server's, or a
/// daemon group's defining host's), the scoreboard and this process's status slot.
pub struct ApacheHost;

/// The one host every process installs.
pub static HOST: ApacheHost = ApacheHost;

impl Host for ApacheHost {
    fn log(&self, severity: Severity, msg: &str) {
        log::server_log(None, severity.into(), msg);
    }
    fn scoreboard(&self) -> Option<Snapshot> {
        crate::httpd::scoreboard::snapshot()
    }
    fn interpreters(&self, count: usize) {
        crate::httpd::status::set_interpreters(count);
    }
}

unsafe extern "C" fn translate_name(r: *mut sys::request_rec) -> libc::c_int {
    guard("translate_name", sys::DECLINED, || {
        // SAFETY: Apache passes the live request.
        crate::handler::translate_name(unsafe { Request::from_raw(r) })
    })
}

unsafe extern "C" fn handler(r: *mut sys::request_rec) -> libc::c_int {
    guard(
        "handler",
        sys::HTTP_INTERNAL_SERVER_ERROR as libc::c_int,
        || {
            // SAFETY: Apache passes the live request.
            crate::handler::handle(unsafe { Request::from_raw(r) })
        },
    )
}

unsafe extern "C" fn pre_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
) -> libc::c_int {
    guard("pre_config", sys::OK as libc::c_int, || {
        crate::httpd::directive::forget_daemon_groups();
        sys::OK as libc::c_int
    })
}

/// After the scoreboard is made (first start): the daemons are forked here.
unsafe extern "C" fn pre_mpm(_p: *mut sys::apr_pool_t, _sb: sys::ap_scoreboard_e) -> libc::c_int {
    guard("pre_mpm", sys::OK as libc::c_int, || {
        super::daemons::launch_pending();
        sys::OK as libc::c_int
    })
}

unsafe extern "C" fn post_config(
    pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
    s: *mut sys::server_rec,
) -> libc::c_int {
    guard("post_config", sys::OK as libc::c_int, || {
        // Before the daemons are forked: they inherit the mapped figures table.
        // SAFETY: Apache passes the live main server of the new generation.
        unsafe { crate::httpd::status::init(s) };
        // SAFETY: Apache passes its live pconf and main server.
        if let Err(e) = unsafe { super::daemons::start(pconf, s) } {
            // SAFETY: s is the live main server.
            log::server_log(
                unsafe { s.as_ref() },
                Level::Crit,
                &format!("RWSGI0504: cannot start the WSGI daemon process groups: {e}"),
            );
            return sys::HTTP_INTERNAL_SERVER_ERROR as libc::c_int;
        }
        let component = CString::new(format!(
            "mod_rwsgi/{} Python/{}",
            env!("CARGO_PKG_VERSION"),
            crate::python::runtime::BUILD_PYTHON
        ))
        .expect("no NUL");
        // SAFETY: the component is copied into pconf by Apache.
        unsafe { sys::ap_add_version_component(pconf, component.as_ptr()) };
        // The first of the two start-up passes only probes the configuration; warn once, in
        // the pass whose error log the server keeps.
        // SAFETY: a plain query of Apache's process state.
        let state = unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE as libc::c_int) };
        if state != sys::AP_SQ_MS_CREATE_PRE_CONFIG as libc::c_int {
            // SAFETY: Apache passes the live main server of this generation.
            unsafe { log_notices(s, s.as_ref()) };
        }
        sys::OK as libc::c_int
    })
}

/// Logs, once per directive, every directive the configuration uses that changes nothing
/// (see `config::compat`), against `target` (`None`: stderr before the logs are open).
///
/// # Safety
/// `s` is the live main server of this generation.
unsafe fn log_notices(s: *const sys::server_rec, target: Option<&sys::server_rec>) {
    let mut servers = Vec::new();
    let mut cur = s;
    while !cur.is_null() {
        // SAFETY: every server in Apache's list is live and has our config.
        servers.push(unsafe { config_store::server_config(cur) });
        // SAFETY: as above.
        cur = unsafe { (*cur).next };
    }
    let daemons = servers.iter().any(|c| !c.daemon_groups.is_empty());
    let mut seen: Vec<&str> = Vec::new();
    for conf in servers {
        for n in &conf.notices {
            if n.daemon_mode_only && daemons {
                continue;
            }
            if !seen.contains(&n.directive) {
                seen.push(n.directive);
                log::server_log(
                    target,
                    Level::Warn,
                    &crate::httpd::directive::notice_line(n.directive, &n.reason),
                );
            }
        }
    }
}

/// mod_wsgi's module name; both modules host the one CPython of the process and claim the
/// same `WSGI*` directives, so only one of them may be loaded.
const MOD_WSGI: &CStr = c"mod_wsgi.c";

/// Refuses the configuration (so `apache2 -t` and start fail) when mod_wsgi is loaded too.
unsafe extern "C" fn check_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
    s: *mut sys::server_rec,
) -> libc::c_int {
    let failed = sys::HTTP_INTERNAL_SERVER_ERROR as libc::c_int;
    guard("check_config", failed, || {
        // `apache2 -t` never reaches post_config: show the warnings here (on stderr).
        // SAFETY: a plain query of Apache's process state.
        let mode = unsafe { sys::ap_state_query(sys::AP_SQ_RUN_MODE as libc::c_int) };
        if mode == sys::AP_SQ_RM_CONFIG_TEST as libc::c_int {
            // SAFETY: Apache passes the live main server. The error log is not open yet: a
            // line without a server goes to stderr, where `apache2 -t` shows it.
            unsafe { log_notices(s, None) };
        }
        // SAFETY: a NUL-terminated static name; Apache only walks its module list.
        if unsafe { sys::ap_find_linked_module(MOD_WSGI.as_ptr()) }.is_null() {
            return sys::OK as libc::c_int;
        }
        // The error log is not open yet at this stage: a line without a server goes to stderr,
        // where `apache2 -t`, apachectl and systemd show it.
        log::server_log(
            None,
            Level::Crit,
            "RWSGI0003: mod_wsgi (wsgi_module) and mod_rwsgi (rwsgi_module) are both loaded; \
             they cannot share one Apache (one Python runtime, the same WSGI* directives). Load \
             only one: `a2dismod wsgi` (Debian) or remove mod_wsgi's LoadModule line",
        );
        failed
    })
}

unsafe extern "C" fn child_exit(data: *mut libc::c_void) -> sys::apr_status_t {
    guard("child exit", 0, || {
        // SAFETY: `data` is the main server, registered in child_init; it lives in the
        // configuration pool, which outlives the child pool running this cleanup.
        let log = unsafe { log::logger_for(data.cast::<sys::server_rec>()) };
        crate::python::shutdown::finalize(&log);
        0
    })
}

unsafe extern "C" fn child_stopping(_pchild: *mut sys::apr_pool_t, graceful: libc::c_int) {
    guard("child stopping", (), || {
        if graceful == 0 {
            crate::python::shutdown::interrupt_requests();
            crate::daemon::client::abort_all();
        }
    })
}

/// Every server's own `WSGIImportScript` lines, main server first, in config order.
///
/// # Safety
/// `s` is the live main server of this generation.
unsafe fn import_scripts(s: *const sys::server_rec) -> Vec<crate::config::ImportScript> {
    let mut out = Vec::new();
    let mut cur = s;
    while !cur.is_null() {
        // SAFETY: every server in Apache's list is live and has our config.
        unsafe {
            out.extend(
                config_store::server_config(cur)
                    .import_scripts
                    .iter()
                    .cloned(),
            );
            cur = (*cur).next;
        }
    }
    out
}

unsafe extern "C" fn child_init(pchild: *mut sys::apr_pool_t, s: *mut sys::server_rec) {
    guard("child_init", (), || {
        super::daemons::close_listeners_in_child();
        // SAFETY: Apache passes the live main server; its config holds the runtime options.
        let conf = unsafe { config_store::server_config(s) };
        let opts = &conf.python;
        // SAFETY: as above.
        let global_imports = unsafe { import_scripts(s) }
            .iter()
            .any(|i| i.process_group.is_empty());
        if conf.daemon.embedded_restricted()
            && !global_imports
            && !crate::httpd::directive::hook_scripts_used()
        {
            log::server_log(
                // SAFETY: Apache passes the live main server.
                unsafe { s.as_ref() },
                Level::Info,
                &format!(
                    "{}: WSGIRestrictEmbedded On: Python is not started in Apache child {} \
                     (no access, auth or dispatch script and no %{{GLOBAL}} WSGIImportScript \
                     needs it)",
                    crate::log_ids::CHILD_WITHOUT_PYTHON,
                    std::process::id()
                ),
            );
            return;
        }
        match crate::python::runtime::initialize(identity(None), &HOST, opts) {
            Ok(()) => {
                // SAFETY: the cleanup runs when the child's pool is destroyed at exit.
                unsafe {
                    sys::apr_pool_cleanup_register(
                        pchild,
                        s.cast::<libc::c_void>(),
                        Some(child_exit),
                        Some(sys::apr_pool_cleanup_null),
                    )
                };
                // SAFETY: the main server lives for this generation, longer than the
                // preloading; logging against it lets `LogLevel rwsgi:…` apply.
                let log = unsafe { log::logger_for(s) };
                // SAFETY: as above.
                let scripts = unsafe { import_scripts(s) };
                crate::python::preload::run(&scripts, apache_version(), &log);
            }
            // SAFETY: Apache passes the live main server.
            Err(e) => log::server_log(
                unsafe { s.as_ref() },
                Level::Crit,
                &format!(
                    "RWSGI0010: {e} (Python did not start in this child; its WSGI requests \
                     get 500 until this is fixed)"
                ),
            ),
        }
    })
}

/// A NULL-terminated list of module names for hook ordering.
pub(super) struct Names<const N: usize>(pub(super) [*const libc::c_char; N]);
// SAFETY: immutable pointers to static strings.
unsafe impl<const N: usize> Sync for Names<N> {}

/// mod_wsgi's order: after mod_alias (so `Alias` wins), before userdir and vhost_alias.
static PRE_ALIAS: Names<2> = Names([c"mod_alias.c".as_ptr(), std::ptr::null()]);
static POST_ALIAS: Names<3> = Names([
    c"mod_userdir.c".as_ptr(),
    c"mod_vhost_alias.c".as_ptr(),
    std::ptr::null(),
]);

/// Registers every hook (called by Apache through the module struct).
///
/// # Safety
/// Called by Apache only, with its configuration pool.
pub unsafe extern "C" fn register_hooks(p: *mut sys::apr_pool_t) {
    guard("register_hooks", (), || {
        // SAFETY: APR keeps pointers to the name lists until hooks are sorted, so they are
        // statics.
        unsafe {
            sys::ap_hook_translate_name(
                Some(translate_name),
                PRE_ALIAS.0.as_ptr(),
                POST_ALIAS.0.as_ptr(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_handler(
                Some(handler),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_pre_config(
                Some(pre_config),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_check_config(
                Some(check_config),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_post_config(
                Some(post_config),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_pre_mpm(
                Some(pre_mpm),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_REALLY_LAST as i32,
            );
            sys::ap_hook_child_init(
                Some(child_init),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            sys::ap_hook_child_stopping(
                Some(child_stopping),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE as i32,
            );
            super::auth::register(p);
        }
        crate::httpd::status::register_status_hook();
    })
}
