//! The `mod_wsgi` and `apache` Python modules, built once per interpreter (never
//! `#[pymodule]`: PyO3's module objects are process-wide) and placed in `sys.modules`, plus
//! the per-request bookkeeping behind `request_data()`, `active_requests` and the
//! `subscribe_events` events.
//!
//! The Python-side parts (callback lists, publishing, the LogHandler class) are Python
//! source run in each interpreter; the Rust-backed functions are `PyCFunction`s over static
//! method tables. When nobody subscribed, a request costs a few atomics, one small dict and
//! two dict operations.

pub mod apache;
pub mod metrics;
pub mod mod_wsgi;

use super::callback::{self, enter};
use super::state::Owned;
use crate::python::request::IoStats;
use crate::wsgi::gateway::Severity;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// What mod_wsgi 4.9.4 reports as `mod_wsgi.version` (and the environ's `mod_wsgi.version`).
pub const MOD_WSGI_VERSION: (u32, u32, u32) = (4, 9, 4);

/// The modules' objects in one interpreter (strong references owned by it).
pub struct ModState {
    event_callbacks: Owned,
    active_requests: Owned,
    publish: Owned,
    wrap_start_response: Owned,
    request_timeout: Owned,
}

/// Builds `mod_wsgi` and `apache` in the current interpreter and registers them in
/// `sys.modules`. `file_wrapper` is the interpreter's `wsgi.file_wrapper` class and
/// `group` its application group name (`""` for the main interpreter).
pub fn install(py: Python<'_>, file_wrapper: &Bound<'_, PyAny>, group: &str) -> PyResult<ModState> {
    metrics::mark_process_start();
    let id = crate::python::runtime::identity();
    let modules = py.import("sys")?.getattr("modules")?;
    let apache = apache::build(py, id)?;
    modules.set_item("apache", &apache)?;
    let m = mod_wsgi::build(py, file_wrapper, id)?;
    m.setattr("application_group", group)?;
    modules.set_item("mod_wsgi", &m)?;
    let own = |name: &str| -> PyResult<Owned> { Ok(Owned(m.getattr(name)?.into_ptr())) };
    Ok(ModState {
        event_callbacks: own("event_callbacks")?,
        active_requests: own("active_requests")?,
        publish: own("_publish")?,
        wrap_start_response: own("_wrap_start_response")?,
        request_timeout: own("RequestTimeout")?,
    })
}

/// Gives the installed `mod_wsgi` module the submodules of a `mod_wsgi` package on
/// `sys.path` (pip's mod_wsgi, whose `mod_wsgi.express` runtime the configs of
/// mod_wsgi-express import), found without running the package: as in mod_wsgi 6, the module
/// takes them over as its `__path__`. A failed search is logged, with the traceback.
pub fn adopt_package_path(py: Python<'_>, group: &str) {
    if let Some(path) = package_path(py, group) {
        let set = py
            .import("sys")
            .and_then(|sys| sys.getattr("modules")?.get_item("mod_wsgi"))
            .and_then(|m| {
                let list = py.import("builtins")?.getattr("list")?.call1((path,))?;
                m.setattr("__path__", list)
            });
        if let Err(err) = set {
            log_error(
                py,
                &format!(
                    "{}: could not give the mod_wsgi module the mod_wsgi package's submodules \
                     in application group '{group}' (pid {})",
                    crate::log_ids::MOD_WSGI_PACKAGE_FAILED,
                    std::process::id()
                ),
                &err,
            );
        }
    }
}

/// Where a `mod_wsgi` package on `sys.path` keeps its submodules. The path finder searches
/// `sys.path` itself, past the module already in `sys.modules`. None when there is no such
/// package, or when looking for it failed (logged, with the traceback).
fn package_path<'py>(py: Python<'py>, group: &str) -> Option<Bound<'py, PyAny>> {
    let found = py.import("importlib.machinery").and_then(|m| {
        m.getattr("PathFinder")?
            .call_method1("find_spec", ("mod_wsgi",))
    });
    match found {
        Ok(spec) if spec.is_none() => None,
        Ok(spec) => spec
            .getattr("submodule_search_locations")
            .ok()
            .filter(|p| !p.is_none()),
        Err(err) => {
            log_error(
                py,
                &format!(
                    "{}: looking for a mod_wsgi package on sys.path failed in application \
                     group '{group}' (pid {}); the mod_wsgi module has no submodules. Fix \
                     the error below",
                    crate::log_ids::MOD_WSGI_PACKAGE_FAILED,
                    std::process::id()
                ),
                &err,
            );
            None
        }
    }
}

impl ModState {
    /// This interpreter's `mod_wsgi.RequestTimeout` class (a borrowed reference).
    pub fn request_timeout_class(&self) -> *mut ffi::PyObject {
        self.request_timeout.0
    }

    /// Whether `err` is this interpreter's `mod_wsgi.RequestTimeout` (or a subclass).
    pub fn is_request_timeout(&self, py: Python<'_>, err: &PyErr) -> bool {
        err.matches(py, self.request_timeout.bind(py))
            .unwrap_or(false)
    }

    fn subscribed(&self) -> bool {
        // SAFETY: a list object owned by this interpreter, GIL held by the caller.
        unsafe { ffi::PyList_Size(self.event_callbacks.0) > 0 }
    }

    fn publish(&self, py: Python<'_>, name: &str, event: &Bound<'_, PyDict>) {
        if let Err(e) = self.publish.bind(py).call1((name, event)) {
            log_error(
                py,
                &format!("RWSGI0302: publishing the {name} event failed"),
                &e,
            );
        }
    }
}

fn log_error(py: Python<'_>, what: &str, e: &PyErr) {
    mod_wsgi::log_line(Severity::Error, what);
    for line in callback::traceback_lines(py, e) {
        mod_wsgi::log_line(Severity::Error, &line);
    }
}

thread_local! {
    /// The request data dict of the request this thread runs (borrowed from its scope).
    static DATA: Cell<*mut ffi::PyObject> = const { Cell::new(std::ptr::null_mut()) };
}

/// This thread's current request data dict (borrowed), or null outside a request.
pub(crate) fn current_data() -> *mut ffi::PyObject {
    DATA.with(|d| d.get())
}

/// Request ids for requests Apache gave none.
static FALLBACK_ID: AtomicU64 = AtomicU64::new(0);

/// One request's accounting and Python-side data, from before the script loads to after
/// the response (so script loading counts as busy time, as in mod_wsgi).
pub struct RequestScope {
    pub run: metrics::Running,
    data: Owned,
    request_id: Owned,
    /// Thread CPU times at `request_started` (only measured for subscribers).
    cpu_start: Cell<Option<(f64, f64)>>,
    /// The environ, kept for `request_finished` when there are subscribers (a strong
    /// reference, or null).
    environ: Cell<*mut ffi::PyObject>,
    /// Response body bytes sent and the transport activity (set by the runner before the
    /// request's context goes).
    pub io: Cell<(u64, IoStats)>,
    /// The status the client got (set by the runner; 0 if none is known).
    pub status: Cell<u16>,
    /// When the app was called (0 until then).
    application_start_us: Cell<i64>,
    /// Daemon mode's queue and daemon phases (µs since the epoch; 0 in embedded mode).
    phases: (i64, i64),
    /// The data dict of a request this one runs inside (a mod_include subrequest on the
    /// same thread), current again once this one ends; else null.
    outer_data: *mut ffi::PyObject,
}

impl RequestScope {
    /// Starts a request on this thread.
    pub fn begin(
        py: Python<'_>,
        ms: &ModState,
        request_id: &[u8],
        request_start_us: i64,
        phases: (i64, i64),
    ) -> RequestScope {
        let run = metrics::begin(request_start_us);
        let request_id = if request_id.is_empty() {
            let n = FALLBACK_ID.fetch_add(1, Ordering::Relaxed);
            callback::latin1(py, format!("{}-{n}", std::process::id()).as_bytes())
        } else {
            callback::latin1(py, request_id)
        };
        let data = PyDict::new(py);
        // SAFETY: the dict, key and value are live objects of this interpreter.
        if unsafe { ffi::PyDict_SetItem(ms.active_requests.0, request_id.as_ptr(), data.as_ptr()) }
            != 0
        {
            // SAFETY: GIL held; the failure's exception is dropped (the request still runs).
            unsafe { ffi::PyErr_Clear() };
        }
        let outer_data = DATA.with(|d| d.replace(data.as_ptr()));
        RequestScope {
            outer_data,
            run,
            cpu_start: Cell::new(None),
            environ: Cell::new(std::ptr::null_mut()),
            io: Cell::new((0, IoStats::default())),
            status: Cell::new(0),
            application_start_us: Cell::new(0),
            phases,
            data: Owned(data.into_any().into_ptr()),
            request_id: Owned(request_id.into_ptr()),
        }
    }

    /// Marks the moment the app is called, reported as the environ's `script_start` and
    /// `application_start`, the events' `application_start`, and in `request_metrics()`.
    pub fn application_start(&self) -> i64 {
        let now = crate::util::clock::now_us();
        self.application_start_us.set(now);
        now
    }

    /// `request_started`: may replace the application object (a callback returning
    /// `{'application_object': wrapper}`), and wraps start_response for `response_started`.
    pub fn started<'py>(
        &self,
        py: Python<'py>,
        ms: &ModState,
        environ: &Bound<'py, PyDict>,
        app: &Bound<'py, PyAny>,
        start_response: &Bound<'py, PyAny>,
    ) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if !ms.subscribed() {
            return None;
        }
        self.cpu_start
            .set(Some(metrics::cpu_times(libc::RUSAGE_THREAD)));
        if self.environ.get().is_null() {
            self.environ.set(environ.clone().into_any().into_ptr());
        }
        let event = PyDict::new(py);
        let filled = (|| -> PyResult<()> {
            event.set_item("request_id", self.request_id.bind(py))?;
            event.set_item("thread_id", self.run.slot.id)?;
            event.set_item("daemon_connects", 0)?;
            event.set_item("daemon_restarts", 0)?;
            event.set_item("request_start", secs(self.run.request_start_us))?;
            event.set_item("queue_start", secs(self.phases.0))?;
            event.set_item("daemon_start", secs(self.phases.1))?;
            event.set_item("application_object", app)?;
            event.set_item("request_environ", environ)?;
            event.set_item("application_start", secs(self.application_start_us.get()))?;
            event.set_item("request_data", self.data.bind(py))?;
            Ok(())
        })();
        if let Err(e) = filled {
            log_error(
                py,
                "RWSGI0302: building the request_started event failed",
                &e,
            );
            return None;
        }
        ms.publish(py, "request_started", &event);
        let app = match event.get_item("application_object") {
            Ok(Some(a)) => a,
            _ => app.clone(),
        };
        let sr = ms
            .wrap_start_response
            .bind(py)
            .call1((start_response, self.request_id.bind(py), self.data.bind(py)))
            .unwrap_or_else(|e| {
                log_error(py, "RWSGI0302: wrapping start_response failed", &e);
                start_response.clone()
            });
        Some((app, sr))
    }

    /// `request_exception`, for an exception the app raised.
    pub fn exception(&self, py: Python<'_>, ms: &ModState, err: &PyErr) {
        if !ms.subscribed() {
            return;
        }
        let event = PyDict::new(py);
        let info = (
            err.get_type(py),
            err.value(py).clone(),
            err.traceback(py).map(|t| t.into_any()),
        );
        if event
            .set_item("request_id", self.request_id.bind(py))
            .and_then(|_| event.set_item("exception_info", info))
            .and_then(|_| event.set_item("request_data", self.data.bind(py)))
            .is_ok()
        {
            ms.publish(py, "request_exception", &event);
        }
    }

    /// `request_finished` (when subscribed), then the end of the request's accounting.
    pub fn end(self, py: Python<'_>, ms: &ModState) {
        // SAFETY: null or our strong reference to the environ dict, GIL held.
        let environ = unsafe { Bound::from_owned_ptr_or_opt(py, self.environ.get()) };
        let (output_length, io) = self.io.get();
        let app_start = match self.application_start_us.get() {
            0 => self.run.start_us,
            t => t,
        };
        let gil_wait = metrics::take_gil_wait();
        let finish = metrics::end(
            &self.run,
            &metrics::Finished {
                application_start_us: app_start,
                status: self.status.get(),
                output_bytes: output_length,
                io,
                gil_wait,
            },
        );
        if ms.subscribed() {
            let event = PyDict::new(py);
            let app_time = secs((finish - app_start).max(0));
            let filled = (|| -> PyResult<()> {
                event.set_item("request_id", self.request_id.bind(py))?;
                if let Some(env) = &environ {
                    event.set_item("request_environ", env)?;
                }
                // 6.x's additions: the request's identity, timeline and final status.
                event.set_item("thread_id", self.run.slot.id)?;
                event.set_item("request_start", secs(self.run.request_start_us))?;
                event.set_item("queue_start", secs(self.phases.0))?;
                event.set_item("daemon_start", secs(self.phases.1))?;
                event.set_item("status", self.status.get())?;
                event.set_item("gil_wait_time", gil_wait.0 as f64 / 1e6)?;
                event.set_item("gil_wait_count", gil_wait.1)?;
                event.set_item("input_reads", io.input_reads)?;
                event.set_item("input_length", io.input_length)?;
                event.set_item("input_time", io.input_time_us as f64 / 1e6)?;
                event.set_item("output_writes", io.output_writes)?;
                event.set_item("output_length", output_length)?;
                event.set_item("output_time", io.output_time_us as f64 / 1e6)?;
                if let Some((u0, s0)) = self.cpu_start.get() {
                    let (u1, s1) = metrics::cpu_times(libc::RUSAGE_THREAD);
                    let (user, system) = ((u1 - u0).max(0.0), (s1 - s0).max(0.0));
                    event.set_item("cpu_user_time", user)?;
                    event.set_item("cpu_system_time", system)?;
                    event.set_item("cpu_time", user + system)?;
                }
                event.set_item("application_finish", secs(finish))?;
                event.set_item("application_time", app_time)?;
                event.set_item("request_data", self.data.bind(py))?;
                Ok(())
            })();
            match filled {
                Ok(()) => ms.publish(py, "request_finished", &event),
                Err(e) => log_error(
                    py,
                    "RWSGI0302: building the request_finished event failed",
                    &e,
                ),
            }
        }
        DATA.with(|d| d.set(self.outer_data));
        // SAFETY: our strong references, GIL held; a missing key only sets an exception,
        // which is cleared.
        unsafe {
            if ffi::PyDict_DelItem(ms.active_requests.0, self.request_id.0) != 0 {
                ffi::PyErr_Clear();
            }
            ffi::Py_DECREF(self.request_id.0);
            ffi::Py_DECREF(self.data.0);
        }
    }
}

fn secs(us: i64) -> f64 {
    us as f64 / 1_000_000.0
}

/// Publishes `process_stopping` in every interpreter (event and shutdown subscribers), at
/// child exit before any interpreter is torn down. The caller holds the GIL with this
/// thread's main-interpreter state; it is current again on return.
pub fn process_stopping() {
    // SAFETY: the GIL is held (caller contract); each interpreter is entered by swapping to
    // this thread's own state for it, and the caller's state is swapped back afterwards.
    unsafe {
        let home = ffi::PyThreadState_Get();
        for interp in super::interp::all() {
            let ts = super::attach::state_for(interp.ptr);
            if ts != home {
                ffi::PyThreadState_Swap(ts);
            }
            enter(|py| {
                let ms = &interp.state.modules;
                let event = PyDict::new(py);
                ms.publish(py, "process_stopping", &event);
                // Shutdown subscribers are called even with no event subscribers.
            });
            if ts != home {
                ffi::PyThreadState_Swap(home);
            }
        }
    }
}
