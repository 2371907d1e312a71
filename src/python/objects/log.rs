//! Line-buffered text streams that write to Apache's error log: `wsgi.errors` (bound to one
//! request) and the per-interpreter `sys.stdout`/`sys.stderr` (which follow the request the
//! writing thread serves, or the process's own server log outside requests).

use super::{END, Methods, fastcall, noargs, one_arg, type_name};
use crate::python::callback::call;
use crate::python::request::{LogShared, RequestCtx, Stream};
use crate::wsgi::gateway::Severity;
use crate::wsgi::log_lines::LineBuffer;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Instance layout.
#[repr(C)]
pub struct LogObject {
    ob_base: ffi::PyObject,
    /// The request's buffers (`wsgi.errors`), or null for a process stream.
    shared: *mut LogShared,
    stream: u8,
    /// Partial line written outside any request (process streams only).
    pending: *mut LineBuffer,
}

static METHODS: Methods<9> = Methods([
    fastcall(c"write", write),
    fastcall(c"writelines", writelines),
    noargs(c"flush", flush),
    noargs(c"close", no_op),
    noargs(c"isatty", false_),
    noargs(c"readable", false_),
    noargs(c"seekable", false_),
    noargs(c"fileno", fileno),
    END,
]);

unsafe extern "C" fn log_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once by CPython on our instance; the pending box (if any) is ours.
    unsafe {
        let o = obj.cast::<LogObject>();
        if !(*o).pending.is_null() {
            drop(Box::from_raw((*o).pending));
        }
        super::dealloc(obj);
    }
}

/// Creates the type in the current interpreter.
pub fn make_type(py: Python<'_>) -> PyResult<*mut ffi::PyObject> {
    let tp = super::make_type(
        py,
        c"mod_wsgi.Log",
        std::mem::size_of::<LogObject>(),
        &[
            (ffi::Py_tp_dealloc, log_dealloc as *mut _),
            (ffi::Py_tp_methods, METHODS.0.as_ptr() as *mut _),
        ],
    )?;
    // SAFETY: tp is a new reference to a type object we own.
    let t = unsafe { Bound::from_borrowed_ptr(py, tp) };
    t.setattr("encoding", "utf-8")?;
    t.setattr("errors", "backslashreplace")?;
    t.setattr("closed", false)?;
    t.setattr("line_buffering", true)?;
    t.setattr("name", "<wsgi.errors>")?;
    Ok(tp)
}

/// `wsgi.errors` for one request.
pub fn for_request<'py>(
    py: Python<'py>,
    tp: &Bound<'py, PyAny>,
    shared: *mut LogShared,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: tp was made by make_type with this layout.
    unsafe {
        let obj = super::alloc::<LogObject>(py, tp.as_ptr())?;
        (*obj).shared = shared;
        (*obj).stream = Stream::Errors as u8;
        Ok(Bound::from_owned_ptr(py, obj.cast()))
    }
}

/// A process-wide stream (`sys.stdout` or `sys.stderr`) for the current interpreter.
pub fn for_process<'py>(
    py: Python<'py>,
    tp: &Bound<'py, PyAny>,
    stream: Stream,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: as above; the pending buffer is owned by the object and freed in dealloc.
    unsafe {
        let obj = super::alloc::<LogObject>(py, tp.as_ptr())?;
        (*obj).stream = stream as u8;
        (*obj).pending = Box::into_raw(Box::default());
        Ok(Bound::from_owned_ptr(py, obj.cast()))
    }
}

/// Disarms a `wsgi.errors` instance (the request is over).
pub fn disarm(obj: &Bound<'_, PyAny>) {
    // SAFETY: only called on objects created by `for_request`.
    unsafe { (*obj.as_ptr().cast::<LogObject>()).shared = std::ptr::null_mut() }
}

fn stream_of(o: &LogObject) -> Stream {
    match o.stream {
        0 => Stream::Errors,
        1 => Stream::Stdout,
        _ => Stream::Stderr,
    }
}

fn emit(slf: *mut ffi::PyObject, text: &str) -> PyResult<()> {
    // SAFETY: CPython passes our instance; its fields are only used with the GIL held.
    let o = unsafe { &mut *slf.cast::<LogObject>() };
    let stream = stream_of(o);
    if stream == Stream::Errors {
        if o.shared.is_null() {
            // RuntimeError, as mod_wsgi raises for an expired log object.
            return Err(PyRuntimeError::new_err(
                "wsgi.errors used after its request finished: log object has expired",
            ));
        }
        // SAFETY: armed pointer to the live request's buffers; GIL held.
        unsafe { LogShared::write(o.shared, stream, text) };
        return Ok(());
    }
    let current = RequestCtx::current();
    if !current.is_null() {
        // SAFETY: the current request's buffers live while it is current on this thread.
        unsafe { LogShared::write(current, stream, text) };
        return Ok(());
    }
    // SAFETY: process streams own a pending buffer for their whole life.
    let buf = unsafe { &mut *o.pending };
    buf.write(text.as_bytes(), server_line);
    Ok(())
}

/// Logs one line written outside any request to this process's own server's error log
/// (in a daemon process, the host that defined its group).
fn server_line(line: &[u8]) {
    crate::python::runtime::host().log(Severity::Error, String::from_utf8_lossy(line).as_ref());
}

fn text_arg(v: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyString>> {
    v.cast_into::<PyString>().map_err(|e| {
        PyTypeError::new_err(format!(
            "write() argument must be str, not {}",
            type_name(&e.into_inner())
        ))
    })
}

unsafe extern "C" fn write(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let s = text_arg(unsafe { one_arg(py, a, n, "write") }?)?;
        let text = s.to_string_lossy();
        emit(slf, &text)?;
        Ok(text.chars().count().into_pyobject(py)?.into_ptr())
    })
}

unsafe extern "C" fn writelines(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let seq = unsafe { one_arg(py, a, n, "writelines") }?;
        for item in seq.try_iter()? {
            let s = text_arg(item?)?;
            emit(slf, &s.to_string_lossy())?;
        }
        Ok(super::none())
    })
}

unsafe extern "C" fn flush(slf: *mut ffi::PyObject, _u: *mut ffi::PyObject) -> *mut ffi::PyObject {
    call(|_py| {
        // SAFETY: our instance; GIL held.
        let o = unsafe { &mut *slf.cast::<LogObject>() };
        let stream = stream_of(o);
        let target = if stream == Stream::Errors {
            o.shared
        } else {
            RequestCtx::current()
        };
        if !target.is_null() {
            // SAFETY: armed/current pointer to live buffers.
            unsafe { LogShared::flush(target, Some(stream)) };
        } else if !o.pending.is_null() {
            // SAFETY: owned buffer.
            unsafe { &mut *o.pending }.flush(server_line);
        }
        Ok(super::none())
    })
}

unsafe extern "C" fn no_op(_slf: *mut ffi::PyObject, _u: *mut ffi::PyObject) -> *mut ffi::PyObject {
    super::none()
}

unsafe extern "C" fn false_(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: Py_False is a static object; return a new reference.
    unsafe {
        let f = ffi::Py_False();
        ffi::Py_INCREF(f);
        f
    }
}

unsafe extern "C" fn fileno(
    _slf: *mut ffi::PyObject,
    _u: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| {
        let io = py.import("io")?;
        Err(PyErr::from_value(
            io.getattr("UnsupportedOperation")?.call1(("fileno",))?,
        ))
    })
}
