//! Turns the pure directive table (`config::directives::TABLE`) into Apache's `command_rec`
//! array, and routes every directive through one `RAW_ARGS` shim, which splits the line with
//! mod_wsgi's word and option rules (`config::words`), into the pure setters.

use crate::config::directives::{self, Id, Known, Scope, TABLE};
use crate::config::interp_options::InterpreterSection;
use crate::config::{Notice, compat, words};
use crate::sys;
use std::ffi::{CStr, c_void};

const N: usize = TABLE.len();

/// The command table handed to Apache (plus its null terminator).
#[repr(transparent)]
pub struct CommandTable(pub [sys::command_rec; N + 1]);

// SAFETY: the table is immutable after construction; its raw pointers are to static strings.
unsafe impl Sync for CommandTable {}

const fn req_override(scope: Scope) -> libc::c_int {
    (match scope {
        Scope::Global | Scope::ServerVhost => sys::RSRC_CONF,
        Scope::Dir => sys::RSRC_CONF | sys::ACCESS_CONF,
        Scope::DirFileInfo => sys::RSRC_CONF | sys::ACCESS_CONF | sys::OR_FILEINFO,
        Scope::AuthConfig => sys::OR_AUTHCFG,
    }) as libc::c_int
}

const fn build() -> CommandTable {
    let mut out = [sys::command_rec {
        name: std::ptr::null(),
        func: sys::cmd_func { raw_args: None },
        cmd_data: std::ptr::null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: std::ptr::null(),
    }; N + 1];
    let mut i = 0;
    while i < N {
        out[i] = sys::command_rec {
            name: TABLE[i].name.as_ptr(),
            func: sys::cmd_func {
                raw_args: Some(set_directive),
            },
            // The row index, so the shim finds the spec again.
            cmd_data: i as *mut c_void,
            req_override: req_override(TABLE[i].scope),
            args_how: sys::cmd_how_RAW_ARGS,
            errmsg: TABLE[i].help.as_ptr(),
        };
        i += 1;
    }
    CommandTable(out)
}

/// The table referenced by the exported module struct.
pub static COMMANDS: CommandTable = build();

fn error_to_pool(pool: *mut sys::apr_pool_t, msg: &str) -> *const libc::c_char {
    // SAFETY: the message must outlive the call, so it goes into the command pool.
    unsafe { super::pstrdup(pool, msg.as_bytes()) }
}

fn compile_regex(pool: *mut sys::apr_pool_t, pattern: &str) -> Result<usize, String> {
    let c = std::ffi::CString::new(pattern)
        .map_err(|_| "regular expression contains NUL".to_string())?;
    // SAFETY: ap_pregcomp registers the compiled regex's cleanup on `pool` (the config pool),
    // so the handle lives as long as the alias that holds it.
    let re = unsafe { sys::ap_pregcomp(pool, c.as_ptr(), sys::AP_REG_EXTENDED as libc::c_int) };
    if re.is_null() {
        Err(format!(
            "regular expression '{pattern}' could not be compiled"
        ))
    } else {
        Ok(re as usize)
    }
}

const SECTION: &str = "<WSGIInterpreterOptions";

/// True when `cmd` reads a directive directly inside `<WSGIInterpreterOptions>`.
///
/// # Safety
/// `cmd` is the live cmd_parms of the directive being read.
unsafe fn in_interpreter_options(cmd: &sys::cmd_parms) -> bool {
    // SAFETY: Apache's config tree nodes (and their names) live for the whole config read.
    unsafe {
        let d = cmd.directive;
        if d.is_null() || (*d).parent.is_null() || (*(*d).parent).directive.is_null() {
            return false;
        }
        CStr::from_ptr((*(*d).parent).directive)
            .to_bytes()
            .eq_ignore_ascii_case(SECTION.as_bytes())
    }
}

/// Records why a directive changes nothing: logged at start-up, or at once when read from
/// `.htaccess` (parsed per request, after start-up).
fn notice(cmd: &sys::cmd_parms, directive: &'static str, reason: String) {
    record(
        cmd,
        Notice {
            directive,
            reason,
            daemon_mode_only: false,
        },
    );
}

/// Logs or keeps `n` as [`notice`] does; one that needs daemon mode is dropped from
/// `.htaccess` when daemon process groups exist.
fn record(cmd: &sys::cmd_parms, n: Notice) {
    let htaccess = cmd.override_ & (sys::RSRC_CONF | sys::ACCESS_CONF) as libc::c_int == 0;
    if htaccess {
        if n.daemon_mode_only && daemon_groups_defined() {
            return;
        }
        // SAFETY: cmd.server is the live server the .htaccess file is read for.
        let s = unsafe { cmd.server.as_ref() };
        super::log::server_log(
            s,
            super::log::Level::Warn,
            &notice_line(n.directive, &n.reason),
        );
        return;
    }
    // SAFETY: config reading is single-threaded and cmd.server is live.
    let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
    if !conf.notices.iter().any(|o| o.directive == n.directive) {
        conf.notices.push(n);
    }
}

/// The start-up warning for a directive accepted without effect.
pub fn notice_line(directive: &str, reason: &str) -> String {
    format!(
        "{}: {directive} {reason}",
        crate::log_ids::DIRECTIVE_WITHOUT_EFFECT
    )
}

/// Applies a directive inside `<WSGIInterpreterOptions>` to the section being read.
fn apply_in_section(
    cmd: &sys::cmd_parms,
    id: Id,
    name: &'static str,
    args: &[&str],
) -> Result<(), String> {
    // PEP 684 and PEP 703 settings are validated, and said to have no effect, as outside.
    let why = if matches!(id, Id::PerInterpreterGil | Id::FreeThreading) {
        compat::apply(id, name, args)?
    } else {
        None
    };
    // SAFETY: config reading is single-threaded and cmd.server is live (the main server:
    // the section is refused elsewhere).
    let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
    conf.python
        .sections
        .last_mut()
        .ok_or_else(|| format!("{name} is only read inside <WSGIInterpreterOptions>"))?
        .apply(id, name, args)?;
    if let Some(why) = why {
        notice(cmd, name, why);
    }
    Ok(())
}

/// Daemon group names defined so far in this configuration read, each with the virtual host
/// that defined it (0 for the main server) and whether it has `threads=0`. Plain data,
/// emptied before every read.
static DEFINED: std::sync::Mutex<Vec<(String, usize, bool)>> = std::sync::Mutex::new(Vec::new());

/// True when the configuration defines a `WSGIDaemonProcess` group (the list lives on in the
/// children, which read `.htaccess` files).
fn daemon_groups_defined() -> bool {
    DEFINED.lock().is_ok_and(|all| !all.is_empty())
}

/// Forgets the group names and script uses of the previous configuration read (pre_config).
pub fn forget_daemon_groups() {
    if let Ok(mut all) = DEFINED.lock() {
        all.clear();
    }
    HOOK_SCRIPTS_USED.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Set when this configuration read met an access, auth or dispatch script: they run in the
/// Apache children, which then need Python even under `WSGIRestrictEmbedded On`.
static HOOK_SCRIPTS_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when the server configuration names a script that runs in the Apache children.
pub fn hook_scripts_used() -> bool {
    HOOK_SCRIPTS_USED.load(std::sync::atomic::Ordering::Relaxed)
}

fn owner(s: *const sys::server_rec) -> usize {
    // SAFETY: Apache passes the live server being configured.
    if s.is_null() || unsafe { (*s).is_virtual } == 0 {
        0
    } else {
        s as usize
    }
}

/// The groups a directive read in `s` may name: the main server's and `s`'s own; and
/// those of them that serve no requests (`threads=0`).
fn visible_groups(s: *const sys::server_rec) -> (Vec<String>, Vec<String>) {
    let me = owner(s);
    let mut names = Vec::new();
    let mut services = Vec::new();
    if let Ok(all) = DEFINED.lock() {
        for (n, _, service) in all.iter().filter(|(_, o, _)| *o == 0 || *o == me) {
            names.push(n.clone());
            if *service {
                services.push(n.clone());
            }
        }
    }
    (names, services)
}

/// Registers a `WSGIDaemonProcess` name; an error when any server already defined it.
fn define_daemon_group(
    cmd: &sys::cmd_parms,
    name: &str,
    group: &str,
    service: bool,
) -> Result<(), String> {
    let mut all = DEFINED
        .lock()
        .map_err(|_| format!("{name}: internal error"))?;
    if all.iter().any(|(n, _, _)| n == group) {
        return Err(format!(
            "{name}: a daemon process group called '{group}' is already defined; names must \
             be unique across the server"
        ));
    }
    all.push((group.to_string(), owner(cmd.server), service));
    Ok(())
}

unsafe extern "C" fn set_directive(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    line: *const libc::c_char,
) -> *const libc::c_char {
    super::trampoline::guard(
        "directive",
        c"RWSGI0002: internal error reading a directive".as_ptr(),
        || {
            // SAFETY: Apache passes the live cmd_parms of the directive being read.
            let cmd = unsafe { &mut *cmd };
            let spec = &TABLE[cmd.info as usize];
            let name = spec.name.to_str().unwrap_or("WSGI directive");
            // SAFETY: RAW_ARGS passes the rest of the line, NUL-terminated, in the cmd pool.
            let Ok(line) = unsafe { CStr::from_ptr(line) }.to_str() else {
                return error_to_pool(cmd.pool, &format!("{name}: argument is not UTF-8"));
            };
            let line = if spec.id == Id::InterpreterOptions {
                match words::section_args(&name[1..], line) {
                    Ok(l) => l,
                    Err(e) => return error_to_pool(cmd.pool, &e),
                }
            } else {
                line
            };
            let words = words::split(line);
            let args: Vec<&str> = words.iter().map(String::as_str).collect();
            if spec.scope == Scope::Global {
                // RSRC_CONF alone admits <VirtualHost>; these directives configure the one
                // Python of each process, so only the main server may set them.
                // SAFETY: cmd is the live cmd_parms; the returned message (if any) is
                // allocated by Apache in the command pool.
                let err =
                    unsafe { sys::ap_check_cmd_context(cmd, sys::GLOBAL_ONLY as libc::c_uint) };
                if !err.is_null() {
                    return err;
                }
            }
            // SAFETY: cmd is live and its directive node belongs to the config tree.
            if unsafe { in_interpreter_options(cmd) } {
                return match apply_in_section(cmd, spec.id, name, &args) {
                    Ok(()) => std::ptr::null(),
                    Err(e) => error_to_pool(cmd.pool, &e),
                };
            }
            let (visible, services) = visible_groups(cmd.server);
            let known = Known {
                daemon_groups: &visible,
                service_groups: &services,
            };
            // SAFETY: cmd and mconfig are what Apache passed for this directive.
            let result = unsafe { apply(cmd, mconfig, spec, &args, &known) };
            let result = match (result, spec.id, args.first()) {
                (Ok(()), Id::DaemonProcess, Some(g)) => {
                    let service =
                        crate::config::daemon::parse(name, &args).is_ok_and(|d| d.is_service());
                    define_daemon_group(cmd, name, g, service)
                }
                (r, _, _) => r,
            };
            match result {
                Ok(()) => std::ptr::null(),
                Err(e) => error_to_pool(cmd.pool, &e),
            }
        },
    )
}

/// `path` made absolute against ServerRoot (unchanged when already absolute).
fn server_root_relative(pool: *mut sys::apr_pool_t, path: &str) -> String {
    let Ok(c) = std::ffi::CString::new(path) else {
        return path.to_string();
    };
    // SAFETY: pool is the live command pool; the result (or null for a bad path) is
    // allocated there and copied out at once.
    let p = unsafe { sys::ap_server_root_relative(pool, c.as_ptr()) };
    if p.is_null() {
        return path.to_string();
    }
    // SAFETY: a NUL-terminated string in the pool.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Checks the lines inside `<WSGIInterpreterOptions>`, which Apache has already read into
/// the tree below the section's node; `ap_walk_config` calls back into the shim for each.
///
/// # Safety
/// `cmd` is the live cmd_parms of the section's opening line.
unsafe fn walk_section(cmd: &mut sys::cmd_parms) -> Result<(), String> {
    // SAFETY: cmd and its directive node are live (caller's contract).
    let err = unsafe { sys::ap_walk_config((*cmd.directive).first_child, cmd, cmd.context) };
    if err.is_null() {
        Ok(())
    } else {
        // SAFETY: Apache's error strings are NUL-terminated, in a pool.
        Err(unsafe { CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned())
    }
}

/// Routes a directive to its pure setter and records a notice if it has no effect.
///
/// # Safety
/// `cmd` and `mconfig` are what Apache passed for this directive, read single-threaded.
unsafe fn apply(
    cmd: &mut sys::cmd_parms,
    mconfig: *mut c_void,
    spec: &'static directives::Spec,
    args: &[&str],
    known: &Known<'_>,
) -> Result<(), String> {
    let name: &'static str = spec.name.to_str().unwrap_or("WSGI directive");
    match spec.id {
        Id::InterpreterOptions => {
            let section = InterpreterSection::parse(name, args)?;
            if let Some(why) = section.unsupported() {
                notice(cmd, "<WSGIInterpreterOptions>", why);
            }
            // SAFETY: config reading is single-threaded and cmd.server is live.
            let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
            conf.python.sections.push(section);
            // SAFETY: cmd is the live cmd_parms of the section's opening line.
            unsafe { walk_section(cmd) }
        }
        id if id.is_compat() => {
            if let Some(why) = compat::apply(id, name, args)? {
                notice(cmd, name, why);
            }
            Ok(())
        }
        id if id.is_python_runtime() => {
            // SAFETY: config reading is single-threaded and cmd.server is live.
            let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
            directives::apply_python(
                id,
                name,
                args,
                &mut conf.python,
                &mut conf.import_scripts,
                known,
            )?;
            let lazy = conf.python.lazy_initialization;
            if id == Id::LazyInitialization {
                if let Some(why) = compat::lazy_initialization_notice(lazy) {
                    notice(cmd, name, why);
                }
            }
            Ok(())
        }
        id if id.is_daemon_setting() => {
            // SAFETY: config reading is single-threaded and cmd.server is live.
            let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
            let pool = cmd.pool;
            directives::apply_daemon_setting(id, name, args, &mut conf.daemon, &|p| {
                server_root_relative(pool, p)
            })
        }
        Id::ScriptAlias | Id::ScriptAliasMatch | Id::DaemonProcess => {
            // SAFETY: config reading is single-threaded and cmd.server is live.
            let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
            let pool = cmd.pool;
            directives::apply_server(spec.id, name, args, conf, known, &mut |p| {
                compile_regex(pool, p)
            })
        }
        _ => {
            // SAFETY: for per-directory directives Apache passes our DirConfig for the
            // section being read (the server's defaults outside any section).
            let conf = unsafe { &mut *mconfig.cast::<crate::config::DirConfig>() };
            directives::apply_dir(spec.id, name, args, conf, known)?;
            if matches!(
                spec.id,
                Id::AccessScript | Id::AuthUserScript | Id::AuthGroupScript | Id::DispatchScript
            ) {
                HOOK_SCRIPTS_USED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(n) = compat::dir_notice(spec.id, name, conf) {
                record(cmd, n);
            }
            Ok(())
        }
    }
}
