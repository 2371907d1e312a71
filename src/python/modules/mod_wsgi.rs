//! The `mod_wsgi` module of one interpreter: constants, the Rust-backed functions, and the
//! Python-side parts (event callback lists, publishing, `LogHandler`).

use super::metrics;
use crate::python::callback::call;
use crate::python::objects::{END, Methods, args, fastcall, noargs};
use crate::python::request::RequestCtx;
use crate::python::runtime::Identity;
use crate::wsgi::gateway::Severity;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString};
use std::sync::atomic::{AtomicI32, Ordering};

/// Run in the module's namespace after the Rust-backed names are set.
const SOURCE: &std::ffi::CStr = c"
event_callbacks = []
shutdown_callbacks = []
signal_callbacks = []
active_requests = {}


class RequestTimeout(BaseException):
    '''Ends a request that ran too long: uncaught, the client gets 504 Gateway Timeout
    (or, once the response started, a cut response), logged at info, not as an error.'''


def subscribe_events(callback):
    event_callbacks.append(callback)


def subscribe_shutdown(callback):
    shutdown_callbacks.append(callback)


def subscribe_signals(callback):
    # Signals reach daemon processes only; in embedded mode this is inert, as in mod_wsgi.
    signal_callbacks.append(callback)


def start_recording_metrics():
    request_metrics()


def _call(name, callbacks, event):
    for callback in list(callbacks):
        try:
            result = callback(name, **event)
        except BaseException:
            import traceback
            _log(40, 'RWSGI0301: exception in %s event callback %r\\n%s'
                 % (name, callback, traceback.format_exc().rstrip()))
        else:
            if isinstance(result, dict):
                event.update(result)


def _publish(name, event):
    _call(name, event_callbacks, event)
    if name == 'process_stopping':
        _call(name, shutdown_callbacks, event)


def _wrap_start_response(start_response, request_id, request_data):
    def start_response_wrapper(status, response_headers, exc_info=None):
        _publish('response_started', {
            'request_id': request_id,
            'response_status': status,
            'response_headers': response_headers,
            'exception_info': exc_info,
            'request_data': request_data,
        })
        return start_response(status, response_headers, exc_info)
    return start_response_wrapper


def _make_log_handler():
    import logging

    class LogHandler(logging.Handler):
        '''A logging handler writing to Apache's error log (the current request's virtual
        host's during a request) at the Apache level matching the record's level.'''

        def emit(self, record):
            try:
                _log(record.levelno, self.format(record))
            except Exception:
                self.handleError(record)

    LogHandler.__module__ = 'mod_wsgi'
    return LogHandler


def __getattr__(name):
    # LogHandler is built on first use so that interpreters that never log this way do
    # not import logging.
    if name == 'LogHandler':
        global LogHandler
        LogHandler = _make_log_handler()
        return LogHandler
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
";

static FUNCTIONS: Methods<6> = Methods([
    noargs(c"request_data", request_data),
    noargs(c"process_metrics", process_metrics),
    noargs(c"request_metrics", request_metrics),
    noargs(c"server_metrics", server_metrics),
    fastcall(c"_log", log),
    END,
]);

/// The MPM's threads per process, for `request_metrics()`.
static MAX_THREADS: AtomicI32 = AtomicI32::new(1);

/// mod_rwsgi's own version as a tuple of integers.
fn own_version() -> Vec<u32> {
    env!("CARGO_PKG_VERSION")
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Builds the module (not yet in `sys.modules`).
pub fn build<'py>(
    py: Python<'py>,
    file_wrapper: &Bound<'py, PyAny>,
    id: &Identity,
) -> PyResult<Bound<'py, PyModule>> {
    let shape = id.shape();
    MAX_THREADS.store(shape.max_threads, Ordering::Relaxed);
    let m = PyModule::new(py, "mod_wsgi")?;
    m.setattr("version", super::MOD_WSGI_VERSION)?;
    m.setattr(
        "mod_rwsgi_version",
        pyo3::types::PyTuple::new(py, own_version())?,
    )?;
    m.setattr("process_group", &id.process_group)?;
    m.setattr("application_group", "")?;
    m.setattr("maximum_processes", shape.max_daemons.max(1))?;
    m.setattr("threads_per_process", shape.max_threads.max(1))?;
    m.setattr("FileWrapper", file_wrapper)?;
    for def in &FUNCTIONS.0[..FUNCTIONS.0.len() - 1] {
        // SAFETY: the method table is static and outlives every function object; a null
        // self and module name is allowed.
        let f = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyCFunction_NewEx(
                    def as *const ffi::PyMethodDef as *mut ffi::PyMethodDef,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ),
            )?
        };
        // SAFETY: ml_name is a static C string.
        let name = unsafe { std::ffi::CStr::from_ptr(def.ml_name) };
        m.setattr(name.to_str().unwrap_or_default(), f)?;
    }
    let globals = m.dict();
    globals.set_item("__builtins__", py.import("builtins")?)?;
    py.run(SOURCE, Some(&globals), None)?;
    Ok(m)
}

unsafe extern "C" fn request_data(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|_py| {
        let data = super::current_data();
        if data.is_null() {
            return Err(PyRuntimeError::new_err("no active request for thread"));
        }
        // SAFETY: the current request's dict, alive while the request runs on this thread.
        unsafe { ffi::Py_INCREF(data) };
        Ok(data)
    })
}

unsafe extern "C" fn process_metrics(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| Ok(metrics::process_metrics(py)?.into_ptr()))
}

unsafe extern "C" fn request_metrics(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| Ok(metrics::request_metrics(py, MAX_THREADS.load(Ordering::Relaxed))?.into_ptr()))
}

unsafe extern "C" fn server_metrics(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| Ok(metrics::server_metrics(py)?.into_ptr()))
}

/// Python `logging` level number to a log severity (CRITICAL/ERROR/WARNING/INFO, else
/// debug).
pub fn level_for(levelno: i64) -> Severity {
    match levelno {
        50.. => Severity::Critical,
        40..50 => Severity::Error,
        30..40 => Severity::Warning,
        20..30 => Severity::Info,
        _ => Severity::Debug,
    }
}

/// Logs one line: against the request this thread serves (its vhost's error log), else
/// against this process's own server (the main one, or a daemon group's defining host).
pub fn log_line(severity: Severity, line: &str) {
    let current = RequestCtx::current();
    if current.is_null() {
        crate::python::runtime::host().log(severity, line);
        return;
    }
    // SAFETY: the current request's log buffers live while it is current on this thread;
    // only the copyable RequestLog is read.
    let log = unsafe { (*current).log };
    log.log(severity, line);
}

/// `_log(levelno, message)`: each line of the message becomes one log entry.
unsafe extern "C" fn log(
    _slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let [level, msg] = (unsafe { args(a, n) }) else {
            return Err(PyTypeError::new_err("_log() takes two arguments"));
        };
        // SAFETY: borrowed argument references.
        let (level, msg) = unsafe {
            (
                Bound::from_borrowed_ptr(py, *level),
                Bound::from_borrowed_ptr(py, *msg),
            )
        };
        let level = level_for(level.extract::<i64>()?);
        let msg = msg.cast_into::<PyString>()?;
        for line in msg.to_string_lossy().split('\n') {
            log_line(level, line.trim_end_matches('\r'));
        }
        Ok(crate::python::objects::none())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_levels_map_to_apache_levels() {
        assert_eq!(level_for(50), Severity::Critical);
        assert_eq!(level_for(40), Severity::Error);
        assert_eq!(level_for(30), Severity::Warning);
        assert_eq!(level_for(25), Severity::Info);
        assert_eq!(level_for(10), Severity::Debug);
        assert_eq!(level_for(0), Severity::Debug);
    }
}
