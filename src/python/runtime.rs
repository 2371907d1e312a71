//! Starting and stopping CPython inside an Apache child: after fork, never in the parent;
//! with Python's signal handlers off; after checking the runtime's version against the one
//! the module was built for.

use super::attach;
use super::interp::{self, Interp};
use super::state::InterpState;
use pyo3::ffi;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

static READY: AtomicBool = AtomicBool::new(false);

/// The Python major.minor this module was compiled against.
pub const BUILD_PYTHON: &str = env!("RWSGI_BUILD_PYTHON");

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

/// Initialises Python in this process and sets up the main interpreter.
pub fn initialize(apache_version: (u32, u32, u32)) -> Result<(), String> {
    let runtime = runtime_version();
    if runtime != BUILD_PYTHON {
        return Err(format!(
            "mod_rwsgi was built for Python {BUILD_PYTHON} but the Python library loaded is {runtime}; \
             rebuild mod_rwsgi against Python {runtime} (PYO3_PYTHON) or install Python {BUILD_PYTHON}"
        ));
    }
    // SAFETY: PyConfig is initialised by PyConfig_InitPythonConfig before any field is used,
    // and cleared after initialisation; this runs once, before any other Python call.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed().assume_init();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let argv0: *const libc::c_char = c"mod_wsgi".as_ptr();
        let mut argv = [argv0];
        let st = ffi::PyConfig_SetBytesArgv(&mut config, 1, argv.as_mut_ptr());
        let st = check_status("setting sys.argv", st).and_then(|_| {
            check_status("initialising Python", ffi::Py_InitializeFromConfig(&config))
        });
        ffi::PyConfig_Clear(&mut config);
        st?;
        let main_ts = ffi::PyThreadState_Get();
        let main_interp = ffi::PyInterpreterState_Main();
        attach::remember(main_interp, main_ts);
        let state = super::callback::enter(|py| {
            InterpState::create(py, apache_version).map_err(|e| e.to_string())
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

/// Finalises Python at process exit (request threads have stopped by then): ends every
/// sub-interpreter (its atexit callbacks run, its other thread states are cleared first, as
/// `Py_EndInterpreter` requires), then the main interpreter.
pub fn finalize() {
    if !READY.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(main) = interp::main() else { return };
    // SAFETY: runs on the thread doing the child's exit cleanups once the request threads
    // are gone. The GIL is taken with this thread's main state; each sub-interpreter is
    // entered by swapping to this thread's state for it, ended, and we swap back.
    unsafe {
        let main_ts = attach::state_for(main.ptr);
        ffi::PyEval_RestoreThread(main_ts);
        for sub in interp::all()
            .into_iter()
            .rev()
            .filter(|i| i.ptr != main.ptr)
        {
            let ts = attach::state_for(sub.ptr);
            ffi::PyThreadState_Swap(ts);
            for other in attach::states_of(sub.ptr) {
                if other != ts {
                    ffi::PyThreadState_Clear(other);
                    ffi::PyThreadState_Delete(other);
                }
            }
            ffi::Py_EndInterpreter(ts);
            ffi::PyThreadState_Swap(main_ts);
        }
        ffi::Py_FinalizeEx();
    }
}
