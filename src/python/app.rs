//! Running one request through a WSGI application: load the script, call the app, drive the
//! iterable (or send a wrapped file straight from its descriptor), always call `close()`,
//! map failures to a status or a cut response, and close the request's objects.

use super::attach::Attached;
use super::callback::{enter, log_exception, summary};
use super::environ::{self, ModWsgiFacts, ProcessFacts, RequestObjects};
use super::interp::Interp;
use super::modules::RequestScope;
use super::objects::{self, log, type_name};
use super::request::{IoStats, LogShared, RequestCtx, RequestHandle};
use super::respond::{self, SendError};
use super::script;
use super::state::InterpState;
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::gateway::{After, Gateway, RequestLog, Severity};
use crate::wsgi::response::Phase;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a request of this process had its WSGI script loaded (daemon mode's
/// startup-timeout ends then).
static SCRIPT_LOADED: AtomicBool = AtomicBool::new(false);

/// True once a request of this process has loaded its WSGI script (or found it loaded).
pub fn script_loaded() -> bool {
    SCRIPT_LOADED.load(Ordering::Relaxed)
}

/// What to run.
pub struct Job<'a> {
    pub script: &'a str,
    /// The script's current mtime when reloading is on (None: never reload).
    pub reload_mtime: Option<i64>,
    pub callable: &'a str,
    pub facts: &'a RequestFacts<'a>,
    pub mod_wsgi: ModWsgiFacts<'a>,
    pub process: ProcessFacts,
}

/// How the request ended, for the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response was produced (possibly cut short).
    Done,
    /// Nothing was sent: the transport should answer with this error status.
    Status(u16),
    /// The transport failed (logged); it decides what the client still gets.
    WriteFailed,
}

/// Runs `job` in `interp` over `gw`.
pub fn run(interp: &Interp, job: &Job<'_>, gw: &mut dyn Gateway, log: RequestLog) -> Outcome {
    // SAFETY: Python is initialised (the interpreter exists) and request threads are not
    // attached between requests.
    let _guard = unsafe { Attached::new(interp.ptr) };
    let _running = super::shutdown::running(interp);
    match enter(|py| run_attached(py, &interp.state, job, gw, log)) {
        Some(outcome) => outcome,
        None => {
            log.log(
                Severity::Error,
                "RWSGI0104: internal error (panic) while running the application",
            );
            // SAFETY: attached; `enter` left the panic as the current exception.
            unsafe { ffi::PyErr_Clear() };
            Outcome::Status(500)
        }
    }
}

fn run_attached(
    py: Python<'_>,
    state: &InterpState,
    job: &Job<'_>,
    gw: &mut dyn Gateway,
    log: RequestLog,
) -> Outcome {
    let mw = &job.mod_wsgi;
    let scope = RequestScope::begin(
        py,
        &state.modules,
        mw.request_id,
        mw.request_start_us,
        (mw.queue_start_us, mw.daemon_start_us),
    );
    let outcome = run_scoped(py, state, job, gw, log, &scope);
    if let Outcome::Status(status) = outcome {
        scope.status.set(status);
    }
    scope.end(py, &state.modules);
    outcome
}

fn run_scoped(
    py: Python<'_>,
    state: &InterpState,
    job: &Job<'_>,
    gw: &mut dyn Gateway,
    log: RequestLog,
    scope: &RequestScope,
) -> Outcome {
    let module = match script::load(py, state, job.script, job.reload_mtime, &log) {
        Ok(m) => {
            if !script_loaded() {
                SCRIPT_LOADED.store(true, Ordering::Relaxed);
            }
            m
        }
        Err(e) => {
            log_exception(
                py,
                &log,
                &format!("RWSGI0101: failed to load WSGI script '{}'", job.script),
                &e,
            );
            return Outcome::Status(500);
        }
    };
    let app = match module.getattr_opt(job.callable) {
        Ok(Some(app)) => app,
        Ok(None) => {
            log.log(
                Severity::Error,
                &format!(
                    "RWSGI0102: WSGI script '{}' does not contain WSGI application '{}' \
                     (set WSGICallableObject or callable-object= if it has another name)",
                    job.script, job.callable
                ),
            );
            return Outcome::Status(404);
        }
        Err(e) => {
            log_exception(
                py,
                &log,
                &format!(
                    "RWSGI0102: looking up '{}' in '{}' failed",
                    job.callable, job.script
                ),
                &e,
            );
            return Outcome::Status(500);
        }
    };

    let handle = RequestHandle::new();
    // SAFETY: `gw` outlives this function, and the context is freed by `RequestEnd` only
    // after the handle is closed (no call can reach it any more).
    let ctx = Box::into_raw(Box::new(unsafe { RequestCtx::new(gw, log, &handle) }));
    handle.open(ctx);
    // SAFETY: freshly allocated; `logs` is fixed for the context's life.
    let logs = unsafe { (*ctx).logs() };
    let mut end = RequestEnd {
        handle: handle.clone(),
        ctx,
        objects: None,
        outer_logs: RequestCtx::current(),
        log,
        script: job.script,
        closed: false,
    };
    match make_objects(py, state, &handle, logs) {
        Ok(objects) => {
            RequestCtx::set_current(logs);
            let objects = end.objects.insert(objects);
            let outcome = call_app(py, state, job, &app, &handle, objects, scope, log);
            scope.io.set(end.close());
            scope.status.set(end.status());
            // Read only now: until the handle is closed an app thread may hold the context.
            match outcome {
                Outcome::Done if end.write_failed() => Outcome::WriteFailed,
                o => o,
            }
        }
        Err(e) => {
            log_exception(
                py,
                &log,
                "RWSGI0103: could not create the request objects",
                &e,
            );
            Outcome::Status(500)
        }
    }
}

/// Ends a request's Python side on every path out of it, panics included: the objects the
/// app may have kept are closed (waiting for a call another thread still has in progress),
/// then the context they reached is freed.
struct RequestEnd<'py, 'a> {
    handle: Arc<RequestHandle>,
    ctx: *mut RequestCtx,
    objects: Option<RequestObjects<'py>>,
    /// The log of a request this one runs inside (a mod_include subrequest on the same
    /// thread), current again once this one ends; else null.
    outer_logs: *mut super::request::LogShared,
    log: RequestLog,
    script: &'a str,
    closed: bool,
}

impl RequestEnd<'_, '_> {
    /// Closes the objects (once); then the context is this thread's alone. Returns the
    /// request's body bytes sent and transport figures.
    fn close(&mut self) -> (u64, IoStats) {
        if !self.closed {
            self.closed = true;
            RequestCtx::set_current(self.outer_logs);
            if let Some(o) = &self.objects {
                log::disarm(&o.errors);
            }
            if self.handle.close() {
                self.log.log(
                    Severity::Warning,
                    &format!(
                        "RWSGI0170: the request to WSGI script '{}' waited at its end for \
                         another thread of the application still reading wsgi.input or \
                         calling write(); request objects must not be used once the \
                         application has returned",
                        self.script
                    ),
                );
            }
        }
        // SAFETY: the handle is closed and no call is in progress: only this thread reaches
        // the context, which lives until `drop`.
        let ctx = unsafe { &*self.ctx };
        (ctx.response.sent(), ctx.io)
    }

    /// The status the app's response carries (0 if it set none); only once closed.
    fn status(&self) -> u16 {
        debug_assert!(self.closed);
        // SAFETY: closed: only this thread reaches the context, which lives until `drop`.
        unsafe { (*self.ctx).response.head().map_or(0, |h| h.status) }
    }

    /// Whether an output filter failed while the client was still there; only once closed.
    fn write_failed(&self) -> bool {
        debug_assert!(self.closed);
        // SAFETY: closed: only this thread reaches the context, which lives until `drop`.
        unsafe { (*self.ctx).write_failed }
    }
}

impl Drop for RequestEnd<'_, '_> {
    fn drop(&mut self) {
        self.close();
        // SAFETY: closed above: nothing else reaches the context, and we are its only owner.
        drop(unsafe { Box::from_raw(self.ctx) });
    }
}

fn make_objects<'py>(
    py: Python<'py>,
    state: &InterpState,
    handle: &Arc<RequestHandle>,
    logs: *mut LogShared,
) -> PyResult<RequestObjects<'py>> {
    Ok(RequestObjects {
        input: objects::new_bound(py, &state.input_type.bind(py), handle)?,
        errors: log::for_request(py, &state.log_type.bind(py), logs)?,
        start_response: objects::new_bound(py, &state.start_response_type.bind(py), handle)?,
    })
}

/// Runs `f` on the context (see [`RequestHandle::with`]).
fn with_ctx<T>(
    handle: &RequestHandle,
    f: impl FnOnce(&mut RequestCtx) -> PyResult<T>,
) -> PyResult<T> {
    // SAFETY: the runner's context is live until `RequestEnd` closes the handle; GIL held.
    unsafe { handle.with(f) }
}

// The request's pieces are passed apart because each is borrowed differently (the context
// through its shared handle, the objects as GIL-bound references).
#[allow(clippy::too_many_arguments)]
fn call_app(
    py: Python<'_>,
    state: &InterpState,
    job: &Job<'_>,
    app: &Bound<'_, PyAny>,
    ctx: &RequestHandle,
    objects: &RequestObjects<'_>,
    scope: &RequestScope,
    log: RequestLog,
) -> Outcome {
    let fail = |err: PyErr| -> Outcome {
        scope.exception(py, &state.modules, &err);
        if super::shutdown::is_interruption(py, &err) {
            log.log(
                Severity::Warning,
                &format!(
                    "RWSGI0053: request to WSGI script '{}' interrupted because the child is \
                     stopping (apache2 -k stop or restart)",
                    job.script
                ),
            );
            return finish_failed(ctx);
        }
        if state.modules.is_request_timeout(py, &err) {
            return timed_out(ctx, &log, job.script);
        }
        log_exception(
            py,
            &log,
            // The exception's summary makes this one line say what failed and where, e.g. a
            // response header that start_response() refused.
            &format!(
                "RWSGI0110: exception occurred processing WSGI script '{}': {}",
                job.script,
                summary(py, &err)
            ),
            &err,
        );
        finish_failed(ctx)
    };
    let app_start = scope.application_start();
    let env = match environ::build(
        py,
        state,
        job.facts,
        &job.mod_wsgi,
        job.process,
        objects,
        app_start,
    ) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let sr = &objects.start_response;
    let replaced = scope.started(py, &state.modules, &env, app, sr);
    let (app, sr) = replaced.as_ref().map_or((app, sr), |(a, s)| (a, s));
    let result = match app.call1((env, sr)) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let driven = drive(py, state, ctx, &result);
    // Plain lists and tuples (the common case) have no close(); asking would build and
    // discard an AttributeError on every request.
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    let closed = match if plain {
        Ok(None)
    } else {
        result.getattr_opt("close")
    } {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match (driven, closed) {
        (Ok(()), Ok(())) => Outcome::Done,
        (Err(e), _) | (Ok(()), Err(e)) => fail(e),
    }
}

/// After an exception: a status if nothing went out yet, else a cut response.
fn finish_failed(ctx: &RequestHandle) -> Outcome {
    with_ctx(ctx, |ctx| {
        Ok(if ctx.write_failed {
            Outcome::WriteFailed
        } else if ctx.ended {
            // The response was complete; the failure (in close()) is only logged.
            Outcome::Done
        } else if ctx.response.phase() == Phase::HeadSent {
            respond::end_broken(ctx);
            Outcome::Done
        } else {
            Outcome::Status(ctx.input.failed_status.unwrap_or(500))
        })
    })
    .unwrap_or(Outcome::Status(500))
}

/// After an uncaught `mod_wsgi.RequestTimeout`: 504 Gateway Timeout if nothing went out
/// yet, else the cut (or already complete) response, as mod_wsgi 6.x answers a request it
/// interrupted. Logged at info: the app chose to give up, it did not fail.
fn timed_out(ctx: &RequestHandle, log: &RequestLog, script: &str) -> Outcome {
    let sent = with_ctx(ctx, |c| Ok(c.response.sent())).unwrap_or(0);
    match finish_failed(ctx) {
        Outcome::Status(_) => {
            log.log(
                Severity::Info,
                &format!(
                    "RWSGI0600: request to WSGI script '{script}' ended by \
                     mod_wsgi.RequestTimeout before the response started; answered 504 \
                     Gateway Timeout"
                ),
            );
            Outcome::Status(504)
        }
        outcome => {
            log.log(
                Severity::Info,
                &format!(
                    "RWSGI0601: request to WSGI script '{script}' ended by \
                     mod_wsgi.RequestTimeout after the response started ({sent} bytes \
                     sent); the status stays as sent and an unfinished body is cut short"
                ),
            );
            outcome
        }
    }
}

fn send_err(e: SendError) -> PyErr {
    match e {
        SendError::NotStarted => PyRuntimeError::new_err(
            "response has not been started (start_response() was not called)",
        ),
        SendError::Ended => PyRuntimeError::new_err("the response has already ended"),
        SendError::ClientGone | SendError::Failed(_) => {
            unreachable!("transport failures are handled by the caller")
        }
    }
}

/// Sends a chunk; Ok(false) when the client is gone or the declared length is complete.
fn send_chunk(ctx: &RequestHandle, data: &[u8], after: After) -> PyResult<bool> {
    with_ctx(ctx, |c| match respond::send(c, data, after) {
        Ok(()) => Ok(!c.response.complete()),
        Err(SendError::ClientGone | SendError::Failed(_)) => Ok(false),
        Err(e) => Err(send_err(e)),
    })
}

fn bytes_of<'a, 'py>(item: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!(
            "sequence of byte string values expected, value of type {} found",
            type_name(item)
        ))
    })
}

fn drive(
    py: Python<'_>,
    state: &InterpState,
    ctx: &RequestHandle,
    result: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if result.get_type().is(state.file_wrapper_type.bind(py)) && try_send_file(ctx, result)? {
        return Ok(());
    }
    if let Ok(list) = result.cast::<PyList>() {
        let n = list.len();
        if n == 1 {
            let item = list.get_item(0)?;
            let b = bytes_of(&item)?;
            with_ctx(ctx, |c| {
                c.response.default_content_length(b.as_bytes().len() as u64);
                Ok(())
            })?;
        }
        for (i, item) in list.iter().enumerate() {
            let b = bytes_of(&item)?;
            let after = if i + 1 == n {
                After::End
            } else {
                After::Buffer
            };
            if !send_chunk(ctx, b.as_bytes(), after)? {
                break;
            }
        }
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        for item in tuple.iter() {
            if !send_chunk(ctx, bytes_of(&item)?.as_bytes(), After::Buffer)? {
                break;
            }
        }
    } else {
        for item in result.try_iter()? {
            let item = item?;
            let b = bytes_of(&item)?;
            if b.as_bytes().is_empty() {
                continue;
            }
            if !send_chunk(ctx, b.as_bytes(), After::Flush)? {
                break;
            }
        }
    }
    finish(ctx)
}

/// Ends the response after the iterable is exhausted (or stopped early).
fn finish(ctx: &RequestHandle) -> PyResult<()> {
    with_ctx(ctx, |c| {
        if c.ended || c.write_failed {
            return Ok(());
        }
        if c.gateway().client_gone() {
            c.log(
                Severity::Info,
                &format!(
                    "RWSGI0111: client closed the connection after {} response bytes; \
                     iteration stopped",
                    c.response.sent()
                ),
            );
            return Ok(());
        }
        if c.response.short() && c.response.phase() == Phase::HeadSent {
            // Fewer bytes than the declared Content-Length: the client must see the
            // response is incomplete rather than wait for the rest.
            respond::end_broken(c);
            return Ok(());
        }
        match respond::send(c, &[], After::End) {
            Ok(()) | Err(SendError::ClientGone | SendError::Failed(_)) => Ok(()),
            Err(e) => Err(send_err(e)),
        }
    })
}

/// Sends a `wsgi.file_wrapper` over a real regular file from its descriptor. Ok(false)
/// when the file-like has no usable descriptor (the caller iterates it instead).
fn try_send_file(ctx: &RequestHandle, wrapper: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = wrapper.py();
    let filelike = wrapper.getattr("filelike")?;
    let Ok(fd) = filelike
        .call_method0("fileno")
        .and_then(|f| f.extract::<i32>())
    else {
        let _ = PyErr::take(py);
        return Ok(false);
    };
    let Ok(offset) = filelike
        .call_method0("tell")
        .and_then(|t| t.extract::<i64>())
    else {
        let _ = PyErr::take(py);
        return Ok(false);
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat writes into the provided buffer.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Ok(false);
    }
    // SAFETY: initialised by the successful fstat.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(false);
    }
    let offset = offset.max(0) as u64;
    let available = (st.st_size as u64).saturating_sub(offset);
    with_ctx(ctx, |c| {
        if c.response.phase() == Phase::HeadSent {
            return Ok(false);
        }
        c.response.default_content_length(available);
        match respond::send_file(c, fd, offset, available) {
            Ok(()) | Err(SendError::ClientGone | SendError::Failed(_)) => Ok(true),
            Err(e) => Err(send_err(e)),
        }
    })
}
