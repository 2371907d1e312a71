//! What the Python runtime directives do inside every interpreter (main and sub): extra
//! site directories, the switch interval, restricted `sys.stdin`/`sys.stdout`, and
//! `signal.signal` replaced by a logging no-op. The process-wide part (PyConfig) is in
//! `runtime`.

use super::callback;
use super::objects::{Methods, fastcall};
use crate::config::PythonOptions;
use crate::wsgi::gateway::Severity;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::OnceLock;

static OPTIONS: OnceLock<PythonOptions> = OnceLock::new();

/// Records this process's options (once, before Python starts).
pub fn set(opts: &PythonOptions) {
    let _ = OPTIONS.set(opts.clone());
}

/// This process's options (the defaults when none were recorded).
pub fn get() -> &'static PythonOptions {
    static DEFAULT: OnceLock<PythonOptions> = OnceLock::new();
    OPTIONS
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(PythonOptions::default))
}

const RESTRICTED: &std::ffi::CStr = c"
class Restricted(object):
    '''sys.stdin / sys.stdout under WSGIRestrictStdin / WSGIRestrictStdout On.'''
    # Reported closed, so that interpreter shutdown does not try to flush it.
    closed = True
    def __init__(self, stream, directive):
        self.__dict__['_what'] = 'sys.%s access restricted by mod_wsgi (%s On)' % (
            stream, directive)
    def __getattr__(self, name):
        raise OSError(self.__dict__['_what'])
    def __setattr__(self, name, value):
        raise OSError(self.__dict__['_what'])
    def __repr__(self):
        return '<restricted stream: %s>' % self.__dict__['_what']
Restricted.__module__ = 'mod_wsgi'
";

static SIGNAL: Methods<1> = Methods([fastcall(c"signal", signal_intercept)]);

/// `signal.signal` under `WSGIRestrictSignal On`: logs and ignores the registration, so an
/// application cannot take over the signals Apache uses to stop and restart its children.
unsafe extern "C" fn signal_intercept(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    callback::call(|py| {
        if nargs != 2 {
            return Err(PyTypeError::new_err(
                "signal() takes exactly 2 arguments (signalnum, handler)",
            ));
        }
        // SAFETY: CPython passes `nargs` borrowed arguments.
        let (signum, handler) = unsafe {
            (
                Bound::from_borrowed_ptr(py, *args),
                Bound::from_borrowed_ptr(py, *args.add(1)),
            )
        };
        let num = signum
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "?".into());
        super::runtime::host().log(
            Severity::Warning,
            &format!(
                "RWSGI0201: mod_rwsgi (pid={}): callback registration for signal {num} ignored; \
                 Apache owns the signals of its processes. Remove the signal.signal() call \
                 from the application, or set 'WSGIRestrictSignal Off' if it must install \
                 handlers",
                std::process::id()
            ),
        );
        let stack = py
            .import("traceback")
            .and_then(|tb| tb.call_method1("format_stack", (py.None(), 8)))
            .and_then(|l| l.extract::<Vec<String>>());
        if let Ok(frames) = stack {
            for line in frames.iter().flat_map(|f| f.trim_end().lines()) {
                super::runtime::host().log(Severity::Warning, &format!("RWSGI0201: {line}"));
            }
        }
        Ok(handler.into_ptr())
    })
}

/// Adds one `<WSGIInterpreterOptions>` layer of site directories in front of `sys.path`
/// (so the most specific layer, added last, ends up first), `.pth` files processed.
const PATH_LAYER: &std::ffi::CStr = c"
def add_layer(dirs):
    import site, sys
    before = set(sys.path)
    for d in dirs:
        site.addsitedir(d)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p in before]
";

/// Applies the per-interpreter options to the current interpreter, application group `group`
/// (called while it is set up, after its `sys.stdout`/`sys.stderr` are installed).
pub fn apply(py: Python<'_>, group: &str) -> PyResult<()> {
    let opts = get();
    let own = crate::config::interp_options::resolve(opts, &opts.process_group, group);
    if !opts.path.is_empty() {
        let site = py.import("site")?;
        for dir in &opts.path {
            site.call_method1("addsitedir", (dir,))?;
        }
    }
    if !own.path_layers.is_empty() {
        let globals = pyo3::types::PyDict::new(py);
        globals.set_item("__builtins__", py.import("builtins")?)?;
        py.run(PATH_LAYER, Some(&globals), None)?;
        let add = globals
            .get_item("add_layer")?
            .ok_or_else(|| PyTypeError::new_err("add_layer missing"))?;
        for layer in &own.path_layers {
            add.call1((layer.clone(),))?;
        }
    }
    let sys = py.import("sys")?;
    // Process-wide under the one shared GIL; sections may set it per process group only.
    if let Some(secs) = own.switch_interval {
        sys.call_method1("setswitchinterval", (secs,))?;
    }
    if own.restrict_stdin || own.restrict_stdout {
        let globals = pyo3::types::PyDict::new(py);
        globals.set_item("__builtins__", py.import("builtins")?)?;
        py.run(RESTRICTED, Some(&globals), None)?;
        let restricted = globals
            .get_item("Restricted")?
            .ok_or_else(|| PyTypeError::new_err("Restricted class missing"))?;
        if own.restrict_stdin {
            sys.setattr("stdin", restricted.call1(("stdin", "WSGIRestrictStdin"))?)?;
        }
        if own.restrict_stdout {
            sys.setattr(
                "stdout",
                restricted.call1(("stdout", "WSGIRestrictStdout"))?,
            )?;
        }
    }
    if own.restrict_signal {
        let def = SIGNAL.0.as_ptr().cast_mut();
        // SAFETY: the method definition is static and CPython only reads it (the `*mut` is
        // the C signature's); PyCFunction_NewEx returns a new reference or null with an
        // exception set.
        let f = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyCFunction_NewEx(def, std::ptr::null_mut(), std::ptr::null_mut()),
            )?
        };
        py.import("signal")?.setattr("signal", f)?;
    }
    Ok(())
}
