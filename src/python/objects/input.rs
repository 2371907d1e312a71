//! `wsgi.input`: read(), read(n), readline(), readline(n), readlines(), iteration. Reads go
//! through the gateway with the GIL released and never ask for more than the app wants
//! (except readline, which reads ahead in small blocks and keeps the rest buffered).

use super::{END, Methods, args, ctx_of, fastcall, noargs};
use crate::python::callback::{blocking, call};
use crate::python::request::RequestCtx;
use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const CHUNK: usize = 64 * 1024;
const LINE_CHUNK: usize = 8 * 1024;

static METHODS: Methods<5> = Methods([
    fastcall(c"read", read),
    fastcall(c"readline", readline),
    fastcall(c"readlines", readlines),
    noargs(c"close", close),
    END,
]);

/// Creates the type in the current interpreter.
pub fn make_type(py: Python<'_>) -> PyResult<*mut ffi::PyObject> {
    super::make_type(
        py,
        c"mod_wsgi.Input",
        std::mem::size_of::<super::RequestBound>(),
        &[
            (ffi::Py_tp_dealloc, super::dealloc as *mut _),
            (ffi::Py_tp_methods, METHODS.0.as_ptr() as *mut _),
            (ffi::Py_tp_iter, iter_self as *mut _),
            (ffi::Py_tp_iternext, iternext as *mut _),
        ],
    )
}

/// Optional size argument: None or negative means "no limit".
fn size_arg(py: Python<'_>, a: &[*mut ffi::PyObject], name: &str) -> PyResult<Option<usize>> {
    match a {
        [] => Ok(None),
        [v] => {
            // SAFETY: borrowed argument reference.
            let v = unsafe { Bound::from_borrowed_ptr(py, *v) };
            if v.is_none() {
                return Ok(None);
            }
            let n: i64 = v.extract().map_err(|_| {
                PyTypeError::new_err(format!("{name}() size must be an integer or None"))
            })?;
            Ok(if n < 0 { None } else { Some(n as usize) })
        }
        _ => Err(PyTypeError::new_err(format!(
            "{name}() takes at most one argument"
        ))),
    }
}

/// Reads more body into the buffer (at most `want` bytes); false at the end of the body.
fn fill(ctx: &mut RequestCtx, want: usize) -> PyResult<bool> {
    if ctx.input.eof {
        return Ok(false);
    }
    let start = ctx.input.buf.len();
    ctx.input.buf.resize(start + want, 0);
    let since = std::time::Instant::now();
    let result = {
        let gw = ctx.gateway_ptr();
        let buf = &mut ctx.input.buf[start..];
        // SAFETY: gw is the context's gateway, used exclusively (busy flag) during this read.
        blocking(|| unsafe { (*gw).read(buf) })
    };
    ctx.io.read(*result.as_ref().unwrap_or(&0), since);
    match result {
        Ok(n) => {
            ctx.input.buf.truncate(start + n);
            if n == 0 {
                ctx.input.eof = true;
            }
            Ok(n > 0)
        }
        Err(e) => {
            ctx.input.buf.truncate(start);
            ctx.input.failed_status = Some(e.status);
            Err(PyOSError::new_err(format!("mod_wsgi {}", e.message)))
        }
    }
}

fn read_bytes(ctx: &mut RequestCtx, size: Option<usize>) -> PyResult<Vec<u8>> {
    let limit = size.unwrap_or(usize::MAX);
    let take = ctx.input.buffered().len().min(limit);
    let mut out = ctx.input.buffered()[..take].to_vec();
    ctx.input.consume(take);
    while out.len() < limit && !ctx.input.eof {
        let want = (limit - out.len()).min(CHUNK);
        if !fill(ctx, want)? {
            break;
        }
        let n = ctx.input.buffered().len();
        out.extend_from_slice(ctx.input.buffered());
        ctx.input.consume(n);
    }
    Ok(out)
}

/// read(n) up to this size reads straight into the result object (no intermediate copies).
const DIRECT_READ_LIMIT: usize = 8 * 1024 * 1024;

/// read(n): fills a new bytes object in place, with the GIL released for the whole read.
fn read_direct(py: Python<'_>, ctx: &mut RequestCtx, n: usize) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: a fresh bytes object of n bytes; nobody else can see it until we return it,
    // so filling it with the GIL released is sound. On error it is released again.
    unsafe {
        let mut obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), n as ffi::Py_ssize_t);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let base = ffi::PyBytes_AsString(obj).cast::<u8>();
        let dst = std::slice::from_raw_parts_mut(base, n);
        let take = ctx.input.buffered().len().min(n);
        dst[..take].copy_from_slice(&ctx.input.buffered()[..take]);
        ctx.input.consume(take);
        let mut filled = take;
        if filled < n && !ctx.input.eof {
            let gw = ctx.gateway_ptr();
            let rest = &mut dst[filled..];
            let since = std::time::Instant::now();
            let result = blocking(|| {
                let mut got = 0;
                while got < rest.len() {
                    match (*gw).read(&mut rest[got..]) {
                        Ok(0) => return Ok((got, true)),
                        Ok(k) => got += k,
                        Err(e) => return Err((got, e)),
                    }
                }
                Ok((got, false))
            });
            ctx.io
                .read(result.as_ref().map_or_else(|(g, _)| *g, |(g, _)| *g), since);
            match result {
                Ok((got, eof)) => {
                    filled += got;
                    ctx.input.eof |= eof;
                }
                Err((_, e)) => {
                    ffi::Py_DECREF(obj);
                    ctx.input.failed_status = Some(e.status);
                    return Err(PyOSError::new_err(format!("mod_wsgi {}", e.message)));
                }
            }
        }
        if filled < n {
            // Short read (end of body): hand back an exact-size copy of what arrived.
            let exact = ffi::PyBytes_FromStringAndSize(base.cast(), filled as ffi::Py_ssize_t);
            ffi::Py_DECREF(obj);
            obj = exact;
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(obj)
    }
}

fn read_line(ctx: &mut RequestCtx, size: Option<usize>) -> PyResult<Vec<u8>> {
    let limit = size.unwrap_or(usize::MAX);
    let mut scanned = 0;
    loop {
        let buffered = ctx.input.buffered();
        let avail = buffered.len().min(limit);
        if let Some(nl) = buffered[scanned.min(avail)..avail]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = scanned.min(avail) + nl + 1;
            let line = buffered[..end].to_vec();
            ctx.input.consume(end);
            return Ok(line);
        }
        scanned = avail;
        if avail >= limit || ctx.input.eof {
            let line = buffered[..avail].to_vec();
            ctx.input.consume(avail);
            return Ok(line);
        }
        if !fill(ctx, LINE_CHUNK.min(limit - avail).max(1))? {
            let n = ctx.input.buffered().len().min(limit);
            let line = ctx.input.buffered()[..n].to_vec();
            ctx.input.consume(n);
            return Ok(line);
        }
    }
}

fn bytes(py: Python<'_>, data: &[u8]) -> *mut ffi::PyObject {
    PyBytes::new(py, data).into_ptr()
}

unsafe extern "C" fn read(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let size = size_arg(py, unsafe { args(a, n) }, "read")?;
        // SAFETY: the object's context pointer is live or null (disarmed); GIL held.
        unsafe {
            RequestCtx::with(ctx_of(slf), |ctx| match size {
                Some(n) if n <= DIRECT_READ_LIMIT => read_direct(py, ctx, n),
                _ => read_bytes(ctx, size).map(|data| bytes(py, &data)),
            })
        }
    })
}

unsafe extern "C" fn readline(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let size = size_arg(py, unsafe { args(a, n) }, "readline")?;
        // SAFETY: as in `read`.
        let data = unsafe { RequestCtx::with(ctx_of(slf), |ctx| read_line(ctx, size)) }?;
        Ok(bytes(py, &data))
    })
}

unsafe extern "C" fn readlines(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let hint = size_arg(py, unsafe { args(a, n) }, "readlines")?;
        // SAFETY: as in `read`.
        let lines = unsafe {
            RequestCtx::with(ctx_of(slf), |ctx| {
                let mut lines = Vec::new();
                let mut total = 0;
                loop {
                    let line = read_line(ctx, None)?;
                    if line.is_empty() {
                        break;
                    }
                    total += line.len();
                    lines.push(line);
                    if hint.is_some_and(|h| h > 0 && total >= h) {
                        break;
                    }
                }
                Ok(lines)
            })
        }?;
        let list = pyo3::types::PyList::empty(py);
        for l in lines {
            list.append(PyBytes::new(py, &l))?;
        }
        Ok(list.into_ptr())
    })
}

unsafe extern "C" fn close(
    _slf: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    super::none()
}

unsafe extern "C" fn iter_self(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: returning self as a new reference.
    unsafe { ffi::Py_INCREF(slf) };
    slf
}

unsafe extern "C" fn iternext(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: as in `read`.
        let line = unsafe { RequestCtx::with(ctx_of(slf), |ctx| read_line(ctx, None)) }?;
        // An empty line is the end: returning null without an exception means StopIteration.
        Ok(if line.is_empty() {
            std::ptr::null_mut()
        } else {
            bytes(py, &line)
        })
    })
}
