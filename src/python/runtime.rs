//! Starting and stopping CPython inside an Apache child: after fork, never in the parent;
//! with Python's signal handlers off; after checking the runtime's version against the one
//! the module was built for.

use super::attach;
use super::interp::{self, Interp};
use super::state::InterpState;
use crate::config::PythonOptions;
use crate::config::python::HashSeed;
use crate::stats::server::{MpmShape, Snapshot};
use crate::wsgi::gateway::Severity;
use pyo3::ffi;
use std::ffi::CStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static READY: AtomicBool = AtomicBool::new(false);

/// Who this process is, as the hosting server sees it; passed in at initialisation so that
/// the runtime never asks Apache itself.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The httpd version the module was built against (`apache.version`).
    pub apache_version: (u32, u32, u32),
    /// The MPM's name ("event", "worker", "prefork").
    pub mpm_name: String,
    /// The MPM's processes and threads (the Apache children's shape).
    pub mpm: MpmShape,
    /// Apache's server description (`apache.description`).
    pub description: String,
    /// Apache's build date (`apache.build_date`).
    pub build_date: String,
    /// The daemon process group this process serves (empty in an Apache child).
    pub process_group: String,
    /// In a daemon process: its group's shape, which replaces the MPM's.
    pub daemon: Option<DaemonShape>,
}

/// A daemon process group's `processes=` and `threads=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonShape {
    pub processes: u32,
    pub threads: u32,
    /// `server-metrics=On`: `mod_wsgi.server_metrics()` answers in this group.
    pub server_metrics: bool,
}

impl Identity {
    /// The shape requests run in: the daemon group's, else the MPM's.
    pub fn shape(&self) -> MpmShape {
        match self.daemon {
            Some(d) => MpmShape {
                threaded: true,
                max_threads: d.threads as i32,
                max_daemons: d.processes as i32,
            },
            None => self.mpm,
        }
    }
}

/// What the runtime needs from the hosting server while it runs, installed once at
/// initialisation by the layer that starts Python.
pub trait Host: Send + Sync {
    /// Writes one line to the server's error log (no request is involved).
    fn log(&self, severity: Severity, msg: &str);
    /// The server's scoreboard now, `None` when this process has none.
    fn scoreboard(&self) -> Option<Snapshot>;
    /// Records how many Python interpreters this process runs (for the status report).
    fn interpreters(&self, count: usize);
}

/// Until a host is installed (unit tests): lines go to stderr, nothing is counted.
struct NoHost;

impl Host for NoHost {
    fn log(&self, _severity: Severity, msg: &str) {
        eprintln!("{msg}");
    }
    fn scoreboard(&self) -> Option<Snapshot> {
        None
    }
    fn interpreters(&self, _count: usize) {}
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();
static HOST: OnceLock<&'static dyn Host> = OnceLock::new();

/// This process's identity (the defaults before initialisation).
pub fn identity() -> &'static Identity {
    static DEFAULT: OnceLock<Identity> = OnceLock::new();
    IDENTITY
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(Identity::default))
}

/// The hosting server's services.
pub fn host() -> &'static dyn Host {
    HOST.get().copied().unwrap_or(&NoHost)
}

/// The Python major.minor this module was compiled against.
pub const BUILD_PYTHON: &str = env!("RWSGI_BUILD_PYTHON");

/// The Python executable the build used.
const BUILD_PYTHON_EXE: &str = env!("RWSGI_BUILD_PYTHON_EXE");

/// True once Python is initialised in this process.
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The runtime library's major.minor (from `Py_GetVersion`, valid before initialisation).
pub fn runtime_version() -> String {
    // SAFETY: Py_GetVersion returns a static string and may be called before init.
    let v = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let num = v.split_whitespace().next().unwrap_or("");
    num.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn check_status(what: &str, status: ffi::PyStatus) -> Result<(), String> {
    // SAFETY: inspecting a status value returned by CPython.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let msg = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: err_msg is a static C string when set.
        unsafe { CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(format!("{what}: {msg}"))
}

/// A wide (`wchar_t`) NUL-terminated copy of `s`, as PyConfig wants its strings; converted
/// here rather than with `Py_DecodeLocale` so paths do not depend on the child's locale.
fn wide(s: &str) -> Vec<libc::wchar_t> {
    s.chars()
        .map(|c| c as libc::wchar_t)
        .chain(std::iter::once(0))
        .collect()
}

/// Refuses a `WSGIPythonHome` made for another Python major.minor before CPython sees it (it
/// would fail to start, or worse, load mismatched stdlib and extension modules).
fn check_home(home: &str) -> Result<(), String> {
    let prefix = std::path::Path::new(home.split(':').next().unwrap_or(home));
    if !prefix.is_dir() {
        return Err(format!(
            "WSGIPythonHome '{home}' is not a directory this process can read; create it, or \
             make it readable by the Apache user"
        ));
    }
    let cfg = std::fs::read_to_string(prefix.join("pyvenv.cfg")).ok();
    let libs: Vec<String> = std::fs::read_dir(prefix.join("lib"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    crate::config::python::check_home_version(home, cfg.as_deref(), &libs, BUILD_PYTHON)
}

/// Sets the PyConfig fields the runtime directives control.
///
/// # Safety
/// `config` was initialised by `PyConfig_InitPythonConfig`.
unsafe fn configure(config: &mut ffi::PyConfig, opts: &PythonOptions) -> Result<(), String> {
    if opts.home.is_none() && std::path::Path::new(BUILD_PYTHON_EXE).is_file() {
        // As mod_wsgi does: sys.executable names the Python the module was built with (apps
        // use it to start helper processes), and its prefix is the default one.
        let w = wide(BUILD_PYTHON_EXE);
        let cfg: *mut ffi::PyConfig = config;
        // SAFETY: a field address of the live struct; CPython copies the string.
        let st = unsafe { ffi::PyConfig_SetString(cfg, &raw mut (*cfg).program_name, w.as_ptr()) };
        check_status("setting the program name", st)?;
    }
    if let Some(home) = &opts.home {
        // One raw pointer for the struct and the field CPython writes through, so no
        // `&mut` to the struct is alive while the field pointer is used.
        let cfg: *mut ffi::PyConfig = config;
        let set = move |field: *mut *mut libc::wchar_t, what: &str, v: &str| {
            let w = wide(v);
            // SAFETY: `field` points into `*cfg`, which is live; CPython copies the string.
            check_status(what, unsafe {
                ffi::PyConfig_SetString(cfg, field, w.as_ptr())
            })
        };
        let prefix = home.split(':').next().unwrap_or(home);
        if std::path::Path::new(prefix).join("pyvenv.cfg").is_file() {
            // getpath finds pyvenv.cfg beside the executable, so sys.prefix becomes the venv
            // and its site-packages are used, while the stdlib comes from the venv's base.
            let program = format!("{}/bin/python", prefix.trim_end_matches('/'));
            // SAFETY: a field address of the live struct (no reference is formed).
            let field = unsafe { &raw mut (*cfg).program_name };
            set(field, "setting the program name", &program)?;
        } else {
            // SAFETY: as above.
            let field = unsafe { &raw mut (*cfg).home };
            set(field, "setting the Python home", home)?;
        }
    }
    for w in &opts.warnings {
        let item = wide(w);
        // SAFETY: the list belongs to `config`; CPython copies the item.
        let st = unsafe { ffi::PyWideStringList_Append(&mut config.warnoptions, item.as_ptr()) };
        check_status("adding a warning option", st)?;
    }
    if let Some(level) = opts.optimize {
        config.optimization_level = level.into();
    }
    if opts.dont_write_bytecode == Some(true) {
        config.write_bytecode = 0;
    }
    match opts.hash_seed {
        Some(HashSeed::Fixed(n)) => {
            config.use_hash_seed = 1;
            config.hash_seed = n.into();
        }
        Some(HashSeed::Random) => config.use_hash_seed = 0,
        None => {}
    }
    Ok(())
}

/// Initialises Python in this process and sets up the main interpreter; `identity` and
/// `host` are how it reports and logs from then on.
pub fn initialize(
    identity: Identity,
    host: &'static dyn Host,
    opts: &PythonOptions,
) -> Result<(), String> {
    let apache_version = identity.apache_version;
    let _ = IDENTITY.set(identity);
    let _ = HOST.set(host);
    let runtime = runtime_version();
    if runtime != BUILD_PYTHON {
        return Err(format!(
            "mod_rwsgi was built for Python {BUILD_PYTHON} but the Python library loaded is {runtime}; \
             rebuild mod_rwsgi against Python {runtime} (PYO3_PYTHON) or install Python {BUILD_PYTHON}"
        ));
    }
    if let Some(home) = &opts.home {
        check_home(home)?;
    }
    super::options::set(opts);
    if let Some(eggs) = &opts.eggs {
        // SAFETY: child_init runs before the MPM starts this child's threads, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var("PYTHON_EGG_CACHE", eggs) };
    }
    // SAFETY: PyConfig is initialised by PyConfig_InitPythonConfig before any field is used,
    // and cleared after initialisation; this runs once, before any other Python call.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed().assume_init();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        // As `python -s`: ~/.local of the Apache user (www-data's home is /var/www) would
        // let whoever can write there shadow the application's imports. A directory that
        // is wanted goes in WSGIPythonPath instead.
        config.user_site_directory = 0;
        let argv0: *const libc::c_char = c"mod_wsgi".as_ptr();
        let mut argv = [argv0];
        let st = ffi::PyConfig_SetBytesArgv(&mut config, 1, argv.as_mut_ptr());
        let st = check_status("setting sys.argv", st)
            .and_then(|_| configure(&mut config, opts))
            .and_then(|_| {
                check_status("initialising Python", ffi::Py_InitializeFromConfig(&config))
            });
        ffi::PyConfig_Clear(&mut config);
        st?;
        let main_ts = ffi::PyThreadState_Get();
        let main_interp = ffi::PyInterpreterState_Main();
        attach::remember(main_interp, main_ts);
        let state = super::callback::enter(|py| {
            InterpState::create(py, "", apache_version).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|| Err("panic while setting up the interpreter".to_string()))
        .map_err(|e| format!("setting up the main Python interpreter failed: {e}"));
        ffi::PyEval_SaveThread();
        interp::register_main(Interp {
            name: String::new(),
            ptr: main_interp,
            state: state?,
        });
    }
    READY.store(true, Ordering::Release);
    Ok(())
}

/// Marks Python as stopping; true for the one caller that then finalises it.
pub(super) fn mark_stopped() -> bool {
    READY.swap(false, Ordering::AcqRel)
}
