//! Turns the pure directive table (`config::directives::TABLE`) into Apache's `command_rec`
//! array, and routes every directive through one `TAKE_ARGV` shim into the pure setters.

use crate::config::directives::{self, Id, Known, Scope, TABLE};
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
    }) as libc::c_int
}

const fn build() -> CommandTable {
    let mut out = [sys::command_rec {
        name: std::ptr::null(),
        func: sys::cmd_func { take_argv: None },
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
                take_argv: Some(set_directive),
            },
            // The row index, so the shim finds the spec again.
            cmd_data: i as *mut c_void,
            req_override: req_override(TABLE[i].scope),
            args_how: sys::cmd_how_TAKE_ARGV,
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

/// Daemon group names defined so far in this configuration read, each with the virtual host
/// that defined it (0 for the main server). Plain data, emptied before every read.
static DEFINED: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

/// Forgets the group names of the previous configuration read (pre_config).
pub fn forget_daemon_groups() {
    if let Ok(mut all) = DEFINED.lock() {
        all.clear();
    }
}

fn owner(s: *const sys::server_rec) -> usize {
    // SAFETY: Apache passes the live server being configured.
    if s.is_null() || unsafe { (*s).is_virtual } == 0 {
        0
    } else {
        s as usize
    }
}

/// The groups a directive read in `s` may name: the main server's and `s`'s own.
fn visible_groups(s: *const sys::server_rec) -> Vec<String> {
    let me = owner(s);
    DEFINED
        .lock()
        .map(|all| {
            all.iter()
                .filter(|(_, o)| *o == 0 || *o == me)
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default()
}

unsafe extern "C" fn set_directive(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    argc: libc::c_int,
    argv: *const *mut libc::c_char,
) -> *const libc::c_char {
    super::trampoline::guard(
        "directive",
        c"RWSGI0002: internal error reading a directive".as_ptr(),
        || {
            // SAFETY: Apache passes the live cmd_parms of the directive being read.
            let cmd = unsafe { &mut *cmd };
            let spec = &TABLE[cmd.info as usize];
            let name = spec.name.to_str().unwrap_or("WSGI directive");
            let mut args = Vec::with_capacity(argc.max(0) as usize);
            for i in 0..argc.max(0) as usize {
                // SAFETY: argv holds argc NUL-terminated words allocated in the command pool.
                let word = unsafe { CStr::from_ptr(*argv.add(i)) };
                match word.to_str() {
                    Ok(w) => args.push(w),
                    Err(_) => {
                        return error_to_pool(cmd.pool, &format!("{name}: argument is not UTF-8"));
                    }
                }
            }
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
            let visible = visible_groups(cmd.server);
            let known = Known {
                daemon_groups: &visible,
            };
            let result = match spec.id {
                id if id.is_python_runtime() => {
                    // SAFETY: config reading is single-threaded and cmd.server is live.
                    let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
                    directives::apply_python(
                        id,
                        name,
                        &args,
                        &mut conf.python,
                        &mut conf.import_scripts,
                        &known,
                    )
                }
                Id::ScriptAlias | Id::ScriptAliasMatch | Id::DaemonProcess => {
                    // SAFETY: config reading is single-threaded and cmd.server is live.
                    let conf = unsafe { super::config_store::server_config_mut(cmd.server) };
                    let pool = cmd.pool;
                    directives::apply_server(spec.id, name, &args, conf, &known, &mut |p| {
                        compile_regex(pool, p)
                    })
                }
                _ => {
                    // SAFETY: for per-directory directives Apache passes our DirConfig for the
                    // section being read (the server's defaults outside any section).
                    let conf = unsafe { &mut *mconfig.cast::<crate::config::DirConfig>() };
                    directives::apply_dir(spec.id, name, &args, conf, &known)
                }
            };
            if spec.id == Id::DaemonProcess
                && let Some(g) = args.first()
            {
                // Registered even when the line failed for a reason other than its name, so
                // a later duplicate is still reported as one.
                if let Ok(mut all) = DEFINED.lock() {
                    if all.iter().any(|(n, _)| n == g) {
                        return error_to_pool(
                            cmd.pool,
                            &format!(
                                "{name}: a daemon process group called '{g}' is already \
                                 defined; names must be unique across the server"
                            ),
                        );
                    }
                    all.push((g.to_string(), owner(cmd.server)));
                }
            }
            match result {
                Ok(()) => std::ptr::null(),
                Err(e) => error_to_pool(cmd.pool, &e),
            }
        },
    )
}
