//! `wsgi.input`: read(), read(n), readline(), readline(n), readlines(), iteration. Reads go
//! through the gateway with the GIL released and never ask for more than the app wants
//! (except readline, which reads ahead in small blocks and keeps the rest buffered). Memory
//! follows what the app holds: the read-ahead buffer stays one read long, and a line or body
//! of any length costs about one copy of itself, given back once handed over.

use super::{END, Methods, args, fastcall, handle_of, noargs};
use crate::python::callback::{blocking, call};
use crate::python::request::RequestCtx;
use crate::wsgi::gateway::ReadFailure;
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
            (ffi::Py_tp_dealloc, super::bound_dealloc as *mut _),
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

/// Reads more body into the read-ahead buffer (at most `want` bytes); false at the end of the
/// body. The buffer only ever holds one read's worth: what was handed over is dropped first.
fn fill(ctx: &mut RequestCtx, want: usize) -> PyResult<bool> {
    if ctx.input.eof {
        return Ok(false);
    }
    ctx.input.compact();
    let start = ctx.input.buf.len();
    ctx.input.buf.resize(start + want, 0);
    let since = std::time::Instant::now();
    let result = {
        let gw = ctx.gateway_ptr();
        let buf = &mut ctx.input.buf[start..];
        // SAFETY: gw is the context's gateway, used exclusively (handle) during this read.
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
            Err(read_failed(ctx, e))
        }
    }
}

fn read_failed(ctx: &mut RequestCtx, e: ReadFailure) -> PyErr {
    ctx.input.failed_status = Some(e.status);
    PyOSError::new_err(format!("mod_wsgi {}", e.message))
}

/// Reads body straight onto the end of `out` until it holds `limit` bytes or the body ends,
/// with the GIL released for the whole stretch.
fn read_to_vec(ctx: &mut RequestCtx, out: &mut Vec<u8>, limit: usize) -> PyResult<()> {
    if ctx.input.eof || out.len() >= limit {
        return Ok(());
    }
    let gw = ctx.gateway_ptr();
    let start = out.len();
    let since = std::time::Instant::now();
    let result = blocking(|| {
        while out.len() < limit {
            if ctx.cancelled() {
                return Err(ReadFailure::request_ended());
            }
            let at = out.len();
            out.resize(at + (limit - at).min(CHUNK), 0);
            // SAFETY: gw is the context's gateway, used exclusively (handle) meanwhile.
            match unsafe { (*gw).read(&mut out[at..]) } {
                Ok(0) => {
                    out.truncate(at);
                    return Ok(true);
                }
                Ok(k) => out.truncate(at + k),
                Err(e) => {
                    out.truncate(at);
                    return Err(e);
                }
            }
        }
        Ok(false)
    });
    ctx.io.read(out.len() - start, since);
    match result {
        Ok(eof) => {
            ctx.input.eof |= eof;
            Ok(())
        }
        Err(e) => Err(read_failed(ctx, e)),
    }
}

fn read_bytes<'py>(
    py: Python<'py>,
    ctx: &mut RequestCtx,
    size: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let limit = size.unwrap_or(usize::MAX);
    let take = ctx.input.buffered().len().min(limit);
    let mut out = ctx.input.buffered()[..take].to_vec();
    ctx.input.consume(take);
    read_to_vec(ctx, &mut out, limit)?;
    bytes_from_vec(py, out)
}

/// Results at least this long are copied into their bytes object a block at a time, and
/// each copied block of the source is handed back to the kernel at once: building a large
/// line or body then peaks at about one copy of it, not two.
const RELEASE_BLOCK: usize = 1 << 20;

/// A bytes object with the contents of `data`, which is consumed.
fn bytes_from_vec(py: Python<'_>, data: Vec<u8>) -> PyResult<Bound<'_, PyBytes>> {
    if data.len() < 2 * RELEASE_BLOCK {
        return Ok(PyBytes::new(py, &data));
    }
    let mut data = std::mem::ManuallyDrop::new(data);
    let (src, len, cap) = (data.as_mut_ptr(), data.len(), data.capacity());
    // SAFETY: `src` owns `cap` bytes of which `len` are initialised; it is rebuilt into the
    // Vec and freed below. MADV_DONTNEED only covers whole pages inside the `len` bytes
    // already copied, so the allocator's own bookkeeping around the block is untouched, and
    // those pages (now reading as zeros) are never read again before being freed.
    unsafe {
        let obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t);
        if !obj.is_null() {
            let dst = ffi::PyBytes_AsString(obj).cast::<u8>();
            let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
            let base = src as usize;
            let mut released = base.next_multiple_of(page);
            let mut off = 0;
            while off < len {
                let n = RELEASE_BLOCK.min(len - off);
                std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), n);
                off += n;
                let upto = (base + off) / page * page;
                if upto > released {
                    libc::madvise(
                        released as *mut libc::c_void,
                        upto - released,
                        libc::MADV_DONTNEED,
                    );
                    released = upto;
                }
            }
        }
        drop(Vec::from_raw_parts(src, len, cap));
        if obj.is_null() {
            Err(PyErr::fetch(py))
        } else {
            Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked())
        }
    }
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
                    if ctx.cancelled() {
                        return Err((got, ReadFailure::request_ended()));
                    }
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
                    return Err(read_failed(ctx, e));
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

/// One line (up to `size` bytes). A line found in the read-ahead buffer is copied once,
/// into its bytes object; a longer one is gathered in its own buffer, handed over whole.
fn read_line<'py>(
    py: Python<'py>,
    ctx: &mut RequestCtx,
    size: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let limit = size.unwrap_or(usize::MAX);
    let mut line = Vec::new();
    loop {
        let buffered = ctx.input.buffered();
        let room = limit - line.len();
        let avail = buffered.len().min(room);
        let newline = buffered[..avail].iter().position(|&b| b == b'\n');
        let take = newline.map_or(avail, |i| i + 1);
        let complete = newline.is_some() || take == room;
        if complete && line.is_empty() {
            let obj = PyBytes::new(py, &buffered[..take]);
            ctx.input.consume(take);
            return Ok(obj);
        }
        line.extend_from_slice(&buffered[..take]);
        ctx.input.consume(take);
        if complete {
            return bytes_from_vec(py, line);
        }
        // The buffer is empty here: everything in it went into `line`.
        let want = if line.is_empty() { LINE_CHUNK } else { CHUNK };
        if !fill(ctx, want.min(limit - line.len()))? {
            return bytes_from_vec(py, line);
        }
    }
}

unsafe extern "C" fn read(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let size = size_arg(py, unsafe { args(a, n) }, "read")?;
        // SAFETY: slf is our live instance; GIL held; the runner keeps the context alive
        // until the handle is closed.
        unsafe {
            handle_of(slf).with(|ctx| match size {
                Some(n) if n <= DIRECT_READ_LIMIT => read_direct(py, ctx, n),
                _ => read_bytes(py, ctx, size).map(Bound::into_ptr),
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
        unsafe { handle_of(slf).with(|ctx| read_line(py, ctx, size)) }.map(Bound::into_ptr)
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
        unsafe {
            handle_of(slf).with(|ctx| {
                let list = pyo3::types::PyList::empty(py);
                let mut total = 0;
                loop {
                    let line = read_line(py, ctx, None)?;
                    if line.as_bytes().is_empty() {
                        break;
                    }
                    total += line.as_bytes().len();
                    list.append(line)?;
                    if hint.is_some_and(|h| h > 0 && total >= h) {
                        break;
                    }
                }
                Ok(list.into_ptr())
            })
        }
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
        let line = unsafe { handle_of(slf).with(|ctx| read_line(py, ctx, None)) }?;
        // An empty line is the end: returning null without an exception means StopIteration.
        Ok(if line.as_bytes().is_empty() {
            std::ptr::null_mut()
        } else {
            line.into_ptr()
        })
    })
}
