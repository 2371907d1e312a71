//! The per-request state shared by the request's Python objects (`wsgi.input`,
//! `wsgi.errors`, start_response/write). Objects hold a raw pointer to it that is nulled
//! ("disarmed") when the request ends, so a stashed object raises instead of touching freed
//! memory. A busy flag keeps two threads from driving the transport at once.

use crate::wsgi::gateway::{Gateway, RequestLog, Severity};
use crate::wsgi::response::ResponseState;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::cell::Cell;

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
    pending: [Vec<u8>; 3],
}

impl LogShared {
    /// Buffers output for a stream, emitting complete lines.
    ///
    /// # Safety
    /// `p` points to a live `LogShared`; the caller holds the GIL (which serialises access).
    pub unsafe fn write(p: *mut LogShared, stream: Stream, text: &str) {
        // SAFETY: function contract.
        let this = unsafe { &mut *p };
        let buf = &mut this.pending[stream as usize];
        buf.extend_from_slice(text.as_bytes());
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            this.log.log(
                Severity::Error,
                String::from_utf8_lossy(&line[..nl]).as_ref(),
            );
        }
    }

    /// Emits partial lines left in one stream's buffer (all streams with `None`).
    ///
    /// # Safety
    /// As for [`LogShared::write`].
    pub unsafe fn flush(p: *mut LogShared, stream: Option<Stream>) {
        // SAFETY: function contract.
        let this = unsafe { &mut *p };
        for (i, buf) in this.pending.iter_mut().enumerate() {
            if stream.is_some_and(|s| s as usize != i) || buf.is_empty() {
                continue;
            }
            let line = std::mem::take(buf);
            this.log
                .log(Severity::Error, String::from_utf8_lossy(&line).as_ref());
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
    /// Reads and writes so far.
    pub io: IoStats,
    logs: *mut LogShared,
    busy: bool,
}

thread_local! {
    /// The log buffers of the request this thread serves (for `sys.stdout`/`sys.stderr`).
    static CURRENT: Cell<*mut LogShared> = const { Cell::new(std::ptr::null_mut()) };
}

impl RequestCtx {
    /// # Safety
    /// `gw` must outlive every use of the context; the runner disarms all objects before
    /// the gateway goes away.
    pub unsafe fn new(gw: &mut dyn Gateway, log: RequestLog) -> Self {
        // SAFETY: only the lifetime is erased; see the function contract.
        let gw: *mut (dyn Gateway + 'static) =
            unsafe { std::mem::transmute(gw as *mut dyn Gateway) };
        let logs = Box::into_raw(Box::new(LogShared {
            log,
            pending: Default::default(),
        }));
        RequestCtx {
            gw,
            response: ResponseState::default(),
            input: InputState::default(),
            unflushed: 0,
            ended: false,
            io: IoStats::default(),
            logs,
            busy: false,
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
    /// Runs `f` with exclusive access to the context behind `ptr`, which a Python object
    /// holds. Errors if the request is over or the context is in use by another call.
    ///
    /// # Safety
    /// `ptr` is null or points to a live context (objects are disarmed before it dies), and
    /// the caller holds the GIL of the context's interpreter.
    pub unsafe fn with<T>(
        ptr: *mut RequestCtx,
        f: impl FnOnce(&mut RequestCtx) -> PyResult<T>,
    ) -> PyResult<T> {
        if ptr.is_null() {
            return Err(PyRuntimeError::new_err(
                "the WSGI request this object belongs to has finished",
            ));
        }
        // SAFETY: the busy flag is only read and written with the GIL held, so no other
        // thread holds a reference while we check and set it.
        let ctx = unsafe { &mut *ptr };
        if ctx.busy {
            return Err(PyRuntimeError::new_err(
                "the WSGI request is in use by another thread; request objects are not thread-safe",
            ));
        }
        ctx.busy = true;
        struct Release(*mut RequestCtx);
        impl Drop for Release {
            fn drop(&mut self) {
                // SAFETY: same live context, GIL held again by the time we unwind or return.
                unsafe { (*self.0).busy = false }
            }
        }
        let _release = Release(ptr);
        f(ctx)
    }

    /// The transport as a raw pointer, for a call that also borrows other fields.
    pub fn gateway_ptr(&mut self) -> *mut (dyn Gateway + 'static) {
        self.gw
    }

    /// The transport, for a blocking call made with the GIL released.
    pub fn gateway(&mut self) -> &mut dyn Gateway {
        // SAFETY: the gateway outlives the context (constructor contract) and `busy` gives
        // this call exclusive use.
        unsafe { &mut *self.gw }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        // SAFETY: `logs` came from Box::into_raw in `new`; every object pointing at it was
        // disarmed before the context is dropped (runner contract), GIL held.
        unsafe {
            LogShared::flush(self.logs, None);
            drop(Box::from_raw(self.logs));
        }
    }
}
