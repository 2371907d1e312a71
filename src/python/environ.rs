//! Building the environ dict: CGI entries from the pure builder (interned keys, latin-1
//! values), then the `wsgi.*` and `mod_wsgi.*` entries.

use super::callback::latin1;
use super::state::InterpState;
use crate::wsgi::environ::{self, EnvironSink, Key, RequestFacts};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The `mod_wsgi.*` facts of a request (strings as mod_wsgi 4.9.4 gives them).
pub struct ModWsgiFacts<'a> {
    pub process_group: &'a str,
    pub application_group: &'a str,
    pub callable_object: &'a str,
    pub request_handler: &'a [u8],
    /// The `WSGIHandlerScript` serving the request, or empty.
    pub handler_script: &'a [u8],
    pub script_name: &'a [u8],
    pub path_info: &'a [u8],
    pub listener_host: &'a [u8],
    pub listener_port: u16,
    pub request_id: &'a [u8],
    /// The connection's log id, when something logged for the connection (mod_ssl does at
    /// `LogLevel info`); mod_wsgi sets `mod_wsgi.connection_id` only then.
    pub connection_id: Option<&'a [u8]>,
    pub request_start_us: i64,
    /// Daemon mode: when the Apache child handed the request over, and when a daemon thread
    /// took it (µs since the epoch); 0 in embedded mode.
    pub queue_start_us: i64,
    pub daemon_start_us: i64,
    pub script_reloading: bool,
    pub enable_sendfile: bool,
    /// `WSGIIgnoreActivity` (reported as `mod_wsgi.ignore_activity`, as mod_wsgi 4.9.4 does).
    pub ignore_activity: bool,
    /// `WSGIPassApacheRequest On`: the request_rec, given as `apache.request_rec`.
    pub apache_request: Option<std::ptr::NonNull<libc::c_void>>,
}

/// Process-level facts that go into every environ.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFacts {
    pub multithread: bool,
    pub multiprocess: bool,
}

/// Fills an environ dict of one interpreter; `failed` records a refused insertion.
pub(super) struct DictSink<'a, 'py> {
    py: Python<'py>,
    dict: &'a Bound<'py, PyDict>,
    state: &'a InterpState,
    pub(super) failed: bool,
}

impl<'a, 'py> DictSink<'a, 'py> {
    /// A sink into `dict`, with the interned keys of `state`.
    pub(super) fn new(
        py: Python<'py>,
        dict: &'a Bound<'py, PyDict>,
        state: &'a InterpState,
    ) -> Self {
        DictSink {
            py,
            dict,
            state,
            failed: false,
        }
    }

    /// Sets `key` to `value`.
    pub(super) fn put(&mut self, key: *mut ffi::PyObject, value: &Bound<'_, PyAny>) {
        // SAFETY: dict, key and value are live objects of this interpreter.
        if unsafe { ffi::PyDict_SetItem(self.dict.as_ptr(), key, value.as_ptr()) } != 0 {
            self.failed = true;
        }
    }
}

impl EnvironSink for DictSink<'_, '_> {
    fn fixed(&mut self, key: Key, value: &[u8]) {
        let v = latin1(self.py, value);
        self.put(self.state.key(key), &v);
    }
    fn dynamic(&mut self, key: &[u8], value: &[u8]) {
        let k = latin1(self.py, key);
        let v = latin1(self.py, value);
        self.put(k.as_ptr(), &v);
    }
}

/// (thread id, requests this thread served before, requests the process served before),
/// from the request accounting that `mod_wsgi.process_metrics()` reports too.
fn counters() -> (u64, u64, u64) {
    super::modules::metrics::current_counters()
}

/// Objects the runner created for the request.
pub struct RequestObjects<'py> {
    pub input: Bound<'py, PyAny>,
    pub errors: Bound<'py, PyAny>,
    pub start_response: Bound<'py, PyAny>,
}

fn secs(us: i64) -> f64 {
    us as f64 / 1_000_000.0
}

/// Builds the complete environ dict; `application_start_us` is when the app is called
/// (mod_wsgi's `script_start` / `application_start`).
pub fn build<'py>(
    py: Python<'py>,
    state: &InterpState,
    facts: &RequestFacts<'_>,
    mw: &ModWsgiFacts<'_>,
    process: ProcessFacts,
    objects: &RequestObjects<'py>,
    application_start_us: i64,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let mut sink = DictSink::new(py, &dict, state);
    environ::build(facts, &mut sink);
    let https = environ::is_https(facts);
    let b = |v: bool| pyo3::types::PyBool::new(py, v).to_owned().into_any();
    let s = |v: &str| pyo3::types::PyString::new(py, v).into_any();
    let f = |v: f64| pyo3::types::PyFloat::new(py, v).into_any();
    let (thread_id, thread_requests, total_requests) = counters();
    let entries: [(Key, Bound<'py, PyAny>); 32] = [
        (Key::WsgiVersion, state.wsgi_version.bind(py)),
        (Key::WsgiMultithread, b(process.multithread)),
        (Key::WsgiMultiprocess, b(process.multiprocess)),
        (Key::WsgiRunOnce, b(false)),
        (Key::WsgiUrlScheme, s(if https { "https" } else { "http" })),
        (Key::WsgiInput, objects.input.clone()),
        (Key::WsgiInputTerminated, b(true)),
        (Key::WsgiErrors, objects.errors.clone()),
        (Key::WsgiFileWrapper, state.file_wrapper_type.bind(py)),
        (Key::MwProcessGroup, s(mw.process_group)),
        (Key::MwApplicationGroup, s(mw.application_group)),
        (Key::MwCallableObject, s(mw.callable_object)),
        (Key::MwRequestHandler, latin1(py, mw.request_handler)),
        (Key::MwHandlerScript, latin1(py, mw.handler_script)),
        (Key::MwScriptName, latin1(py, mw.script_name)),
        (Key::MwPathInfo, latin1(py, mw.path_info)),
        (Key::MwListenerHost, latin1(py, mw.listener_host)),
        (Key::MwListenerPort, s(&mw.listener_port.to_string())),
        (Key::MwRequestId, latin1(py, mw.request_id)),
        (Key::MwRequestStart, s(&mw.request_start_us.to_string())),
        // mod_wsgi 4.9.4's name and format, then 6.x's for the same instant.
        (Key::MwScriptStart, s(&application_start_us.to_string())),
        (Key::MwApplicationStart, f(secs(application_start_us))),
        // 6.x sets these in embedded mode too (no queue or daemon phase: 0.0).
        (Key::MwQueueStart, f(secs(mw.queue_start_us))),
        (Key::MwDaemonStart, f(secs(mw.daemon_start_us))),
        (
            Key::MwScriptReloading,
            s(if mw.script_reloading { "1" } else { "0" }),
        ),
        (
            Key::MwEnableSendfile,
            s(if mw.enable_sendfile { "1" } else { "0" }),
        ),
        (
            Key::MwIgnoreActivity,
            s(if mw.ignore_activity { "1" } else { "0" }),
        ),
        (Key::MwThreadId, thread_id.into_pyobject(py)?.into_any()),
        (
            Key::MwThreadRequests,
            thread_requests.into_pyobject(py)?.into_any(),
        ),
        (
            Key::MwTotalRequests,
            total_requests.into_pyobject(py)?.into_any(),
        ),
        (Key::MwVersion, state.mod_wsgi_version.bind(py)),
        (Key::ApacheVersion, state.apache_version.bind(py)),
    ];
    for (k, v) in entries {
        sink.put(state.key(k), &v);
    }
    if let Some(r) = mw.apache_request {
        // SAFETY: a capsule with no name and no destructor only carries the pointer; the
        // request outlives the environ's use in the request, as with mod_wsgi.
        let capsule = unsafe { ffi::PyCapsule_New(r.as_ptr(), std::ptr::null(), None) };
        // SAFETY: PyCapsule_New returns a new reference or NULL with an exception set.
        match unsafe { Bound::from_owned_ptr_or_err(py, capsule) } {
            Ok(c) => {
                let key = pyo3::types::PyString::new(py, "apache.request_rec");
                sink.put(key.as_ptr(), &c);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(id) = mw.connection_id {
        sink.put(state.key(Key::MwConnectionId), &latin1(py, id));
    }
    if sink.failed {
        return Err(PyErr::fetch(py));
    }
    Ok(dict)
}
