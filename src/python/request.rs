//! The per-request state shared by the request's Python objects (`wsgi.input`,
//! `wsgi.errors`, start_response/write). `wsgi.input` and start_response reach it through a
//! shared [`RequestHandle`], which lets one call at a time use the transport (a call from
//! another thread waits for it, with the GIL released) and which the request's end closes:
//! later calls raise, and the end waits for a call still running in another thread before
//! the request's memory goes away. `wsgi.errors` never releases the GIL, so it is simply
//! disarmed at the end.

use super::callback::blocking;
use crate::wsgi::gateway::{Gateway, RequestLog, Severity};
use crate::wsgi::log_lines::LineBuffer;
use crate::wsgi::response::ResponseState;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Which log stream a line buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Errors = 0,
    Stdout = 1,
    Stderr = 2,
}

/// Transport activity of one request (mod_wsgi's `request_finished` figures).
#[derive(Debug, Default, Clone, Copy)]
pub struct IoStats {
    pub input_reads: u64,
    pub input_length: u64,
    pub input_time_us: u64,
    pub output_writes: u64,
    pub output_time_us: u64,
}

impl IoStats {
    /// Adds one body read that delivered `bytes` after waiting since `since`.
    pub fn read(&mut self, bytes: usize, since: std::time::Instant) {
        self.input_reads += 1;
        self.input_length += bytes as u64;
        self.input_time_us += since.elapsed().as_micros() as u64;
    }

    /// Adds one response write that took since `since`.
    pub fn wrote(&mut self, since: std::time::Instant) {
        self.output_writes += 1;
        self.output_time_us += since.elapsed().as_micros() as u64;
    }
}

/// Request body read state (buffer for readline, end and failure seen).
#[derive(Default)]
pub struct InputState {
    pub buf: Vec<u8>,
    pub pos: usize,
    pub eof: bool,
    /// The HTTP status a failed read maps to (413, 408, 400…), kept for error responses.
    pub failed_status: Option<u16>,
}

impl InputState {
    /// Bytes buffered but not yet handed to the app.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Drops the bytes already handed over, so the buffer holds only what is still pending.
    pub fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Hands `n` buffered bytes over.
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }
}

/// Log line buffers of one request. Kept apart from [`RequestCtx`] (own allocation, used
/// through a raw pointer with the GIL held) so any thread may log to `wsgi.errors` while the
/// request's owner is inside a blocking transport call.
pub struct LogShared {
    pub log: RequestLog,
    pending: [LineBuffer; 3],
}

impl LogShared {
    /// Empty buffers writing to `log`.
    pub fn new(log: RequestLog) -> Self {
        LogShared {
            log,
            pending: Default::default(),
        }
    }

    /// Buffers output for a stream, emitting complete lines (and overlong partial ones).
    ///
    /// # Safety
    /// `p` points to a live `LogShared`; the caller holds the GIL (which serialises access).
    pub unsafe fn write(p: *mut LogShared, stream: Stream, text: &str) {
        // SAFETY: function contract.
        let this = unsafe { &mut *p };
        let log = this.log;
        this.pending[stream as usize].write(text.as_bytes(), |line| {
            log.log(Severity::Error, String::from_utf8_lossy(line).as_ref())
        });
    }

    /// Emits partial lines left in one stream's buffer (all streams with `None`).
    ///
    /// # Safety
    /// As for [`LogShared::write`].
    pub unsafe fn flush(p: *mut LogShared, stream: Option<Stream>) {
        // SAFETY: function contract.
        let this = unsafe { &mut *p };
        let log = this.log;
        for (i, buf) in this.pending.iter_mut().enumerate() {
            if stream.is_none_or(|s| s as usize == i) {
                buf.flush(|line| log.log(Severity::Error, String::from_utf8_lossy(line).as_ref()));
            }
        }
    }
}

/// State of the request being served.
pub struct RequestCtx {
    gw: *mut (dyn Gateway + 'static),
    pub response: ResponseState,
    pub input: InputState,
    /// Body bytes passed to the transport since its last flush.
    pub unflushed: usize,
    /// The end of the response was passed to the transport.
    pub ended: bool,
    /// The transport failed (not a client disconnect); nothing more is sent.
    pub write_failed: bool,
    /// Reads and writes so far.
    pub io: IoStats,
    logs: *mut LogShared,
    cancel: Arc<AtomicBool>,
}

thread_local! {
    /// The log buffers of the request this thread serves (for `sys.stdout`/`sys.stderr`).
    static CURRENT: Cell<*mut LogShared> = const { Cell::new(std::ptr::null_mut()) };
}

impl RequestCtx {
    /// # Safety
    /// `gw` must outlive every use of the context; the runner closes `handle` before the
    /// gateway goes away.
    pub unsafe fn new(gw: &mut dyn Gateway, log: RequestLog, handle: &RequestHandle) -> Self {
        // SAFETY: only the lifetime is erased; see the function contract.
        let gw: *mut (dyn Gateway + 'static) =
            unsafe { std::mem::transmute(gw as *mut dyn Gateway) };
        let logs = Box::into_raw(Box::new(LogShared::new(log)));
        RequestCtx {
            gw,
            response: ResponseState::default(),
            input: InputState::default(),
            unflushed: 0,
            ended: false,
            write_failed: false,
            io: IoStats::default(),
            logs,
            cancel: handle.cancel.clone(),
        }
    }

    /// The request's log buffers (for `wsgi.errors` and this thread's `sys.std*`).
    pub fn logs(&self) -> *mut LogShared {
        self.logs
    }

    /// Logs one message about the request.
    pub fn log(&self, severity: Severity, msg: &str) {
        // SAFETY: `logs` lives as long as the context; RequestLog is a plain copyable value.
        let log = unsafe { (*self.logs).log };
        log.log(severity, msg);
    }

    /// Makes `logs` this thread's current request log (null clears it).
    pub fn set_current(logs: *mut LogShared) {
        CURRENT.with(|c| c.set(logs));
    }

    /// This thread's current request log, if any.
    pub fn current() -> *mut LogShared {
        CURRENT.with(|c| c.get())
    }

    /// True once the request is ending: a long read still running in another thread stops
    /// at its next step instead of draining the rest of the body.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The transport as a raw pointer, for a call that also borrows other fields.
    pub fn gateway_ptr(&mut self) -> *mut (dyn Gateway + 'static) {
        self.gw
    }

    /// The transport, for a blocking call made with the GIL released.
    pub fn gateway(&mut self) -> &mut dyn Gateway {
        // SAFETY: the gateway outlives the context (constructor contract) and the handle
        // gives this call exclusive use.
        unsafe { &mut *self.gw }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        // SAFETY: `logs` came from Box::into_raw in `new`; every object pointing at it was
        // disarmed and the handle closed before the context is dropped (runner contract),
        // GIL held.
        unsafe {
            LogShared::flush(self.logs, None);
            drop(Box::from_raw(self.logs));
        }
    }
}

/// The request as the objects bound to it see it: one call at a time uses the context, and
/// the request's end closes it for good. Shared (reference-counted) by the runner and every
/// object, so an object kept past the request still finds the handle, closed.
pub struct RequestHandle {
    state: Mutex<HandleState>,
    idle: Condvar,
    cancel: Arc<AtomicBool>,
}

struct HandleState {
    /// The live context; null once the request has ended.
    ctx: *mut RequestCtx,
    /// The thread (pthread id) inside a call on the context.
    user: Option<libc::pthread_t>,
    /// Threads waiting on `idle`. Only app threads sharing the request's objects ever wait,
    /// and a notify is a system call even with nobody waiting: most requests make none.
    waiters: usize,
}

// SAFETY: the context pointer is only dereferenced by the one thread recorded as its user,
// which the mutex hands out; the rest is plain data behind the mutex or atomic.
unsafe impl Send for RequestHandle {}
// SAFETY: as above.
unsafe impl Sync for RequestHandle {}

impl RequestHandle {
    /// A handle with no context yet (see [`RequestHandle::open`]).
    pub fn new() -> Arc<Self> {
        Arc::new(RequestHandle {
            state: Mutex::new(HandleState {
                ctx: std::ptr::null_mut(),
                user: None,
                waiters: 0,
            }),
            idle: Condvar::new(),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HandleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done` holds, counted in `waiters` so that releases know to notify.
    fn wait_until(&self, done: impl Fn(&HandleState) -> bool) {
        let mut st = self.lock();
        st.waiters += 1;
        while !done(&st) {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiters -= 1;
    }

    /// Makes `ctx` the context calls reach.
    pub fn open(&self, ctx: *mut RequestCtx) {
        self.lock().ctx = ctx;
    }

    /// Runs `f` with exclusive use of the context. A call from another thread that is in
    /// progress is waited for with the GIL released; after the request's end this raises.
    ///
    /// # Safety
    /// The caller holds the GIL of the request's interpreter; the context the handle was
    /// opened with stays alive until [`RequestHandle::close`] returns.
    pub unsafe fn with<T>(&self, f: impl FnOnce(&mut RequestCtx) -> PyResult<T>) -> PyResult<T> {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let ctx = loop {
            let mut st = self.lock();
            if st.ctx.is_null() {
                return Err(PyRuntimeError::new_err(
                    "the WSGI request this object belongs to has finished",
                ));
            }
            match st.user {
                None => {
                    st.user = Some(me);
                    break st.ctx;
                }
                // SAFETY: comparing two pthread ids.
                Some(t) if unsafe { libc::pthread_equal(t, me) } != 0 => {
                    return Err(PyRuntimeError::new_err(
                        "the WSGI request object is already in use by this call",
                    ));
                }
                Some(_) => {
                    drop(st);
                    // The other call needs the GIL to finish: wait without it.
                    blocking(|| {
                        self.wait_until(|st| st.user.is_none() || st.ctx.is_null());
                    });
                }
            }
        };
        struct Release<'a>(&'a RequestHandle);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.user = None;
                if st.waiters > 0 {
                    self.0.idle.notify_all();
                }
            }
        }
        let _release = Release(self);
        // SAFETY: this thread is the context's only user until `_release` runs, and the
        // context outlives the call (function contract: `close` waits for it).
        f(unsafe { &mut *ctx })
    }

    /// Ends the request for the objects: later calls raise, and a call still running in
    /// another thread is waited for (GIL released; its reads stop at their next step, and a
    /// single blocked transport call is bounded by the server's I/O timeout). True when such
    /// a call had to be waited for.
    pub fn close(&self) -> bool {
        self.cancel.store(true, Ordering::Relaxed);
        let mut st = self.lock();
        st.ctx = std::ptr::null_mut();
        if st.waiters > 0 {
            self.idle.notify_all();
        }
        if st.user.is_none() {
            return false;
        }
        drop(st);
        blocking(|| {
            self.wait_until(|st| st.user.is_none());
        });
        true
    }
}
