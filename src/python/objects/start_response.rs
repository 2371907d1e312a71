//! The `start_response` callable and the `write` callable it returns (a bound method of the
//! same object, so a request allocates one object for both).

use super::{END, Methods, fastcall, handle_of, one_arg, type_name};
use crate::python::callback::call;
use crate::python::respond::{self, SendError};
use crate::wsgi::gateway::After;
use crate::wsgi::response::StartError;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

static METHODS: Methods<2> = Methods([fastcall(c"write", write), END]);

/// Creates the type in the current interpreter.
pub fn make_type(py: Python<'_>) -> PyResult<*mut ffi::PyObject> {
    super::make_type(
        py,
        c"mod_wsgi.StartResponse",
        std::mem::size_of::<super::RequestBound>(),
        &[
            (ffi::Py_tp_dealloc, super::bound_dealloc as *mut _),
            (ffi::Py_tp_methods, METHODS.0.as_ptr() as *mut _),
            (ffi::Py_tp_call, start_response as *mut _),
        ],
    )
}

fn str_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s = v
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(v))))?;
    Ok(s.to_str()?.to_string())
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let t = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!(
                "response header must be a tuple, not {}",
                type_name(&item)
            ))
        })?;
        if t.len() != 2 {
            return Err(PyValueError::new_err(
                "response header tuple must have two items (name, value)",
            ));
        }
        out.push((
            str_arg(&t.get_item(0)?, "header name")?,
            str_arg(&t.get_item(1)?, "header value")?,
        ));
    }
    Ok(out)
}

unsafe extern "C" fn start_response(
    slf: *mut ffi::PyObject,
    targs: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: CPython passes an args tuple and an optional kwargs dict (borrowed).
        let targs = unsafe { Bound::from_borrowed_ptr(py, targs) }.cast_into::<PyTuple>()?;
        let mut exc_info = None;
        if !kwargs.is_null() {
            // SAFETY: borrowed kwargs dict.
            let kw = unsafe { Bound::from_borrowed_ptr(py, kwargs) }
                .cast_into::<pyo3::types::PyDict>()?;
            for (k, v) in kw.iter() {
                if k.extract::<String>()? == "exc_info" {
                    exc_info = Some(v);
                } else {
                    return Err(PyTypeError::new_err(
                        "start_response() got an unexpected keyword argument",
                    ));
                }
            }
        }
        let n = targs.len();
        if !(2..=3).contains(&n) || (n == 3 && exc_info.is_some()) {
            return Err(PyTypeError::new_err(
                "start_response() takes status, headers and an optional exc_info",
            ));
        }
        if n == 3 {
            exc_info = Some(targs.get_item(2)?);
        }
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(e) = &exc_info {
            if e.cast::<PyTuple>().map(|t| t.len() != 3).unwrap_or(true) {
                return Err(PyTypeError::new_err(
                    "exc_info must be a 3-tuple (type, value, traceback) or None",
                ));
            }
        }
        let status = str_arg(&targs.get_item(0)?, "status")?;
        let headers = parse_headers(&targs.get_item(1)?)?;
        // SAFETY: slf is our live instance; GIL held; the context outlives the open handle.
        let result = unsafe {
            handle_of(slf).with(|ctx| Ok(ctx.response.start(&status, headers, exc_info.is_some())))
        }?;
        match result {
            Ok(()) => {
                // SAFETY: slf is live; returns a new reference to the bound `write` method.
                let w = unsafe { ffi::PyObject_GetAttrString(slf, c"write".as_ptr()) };
                if w.is_null() {
                    Err(PyErr::fetch(py))
                } else {
                    Ok(w)
                }
            }
            Err(StartError::AlreadyCalled) => Err(PyRuntimeError::new_err(
                "start_response() called a second time without exc_info (PEP 3333)",
            )),
            Err(StartError::Invalid(msg)) => Err(PyValueError::new_err(msg)),
            Err(StartError::Reraise) => {
                let e = exc_info.expect("reraise implies exc_info");
                let value = e.get_item(1)?;
                Err(PyErr::from_value(value))
            }
        }
    })
}

unsafe extern "C" fn write(
    slf: *mut ffi::PyObject,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: fast-call arguments.
        let data = unsafe { one_arg(py, a, n, "write") }?;
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                type_name(&data)
            ))
        })?;
        let buf = bytes.as_bytes();
        // SAFETY: as in start_response; `buf` stays alive (we hold
        // the bytes object) while the GIL is released inside `send`.
        unsafe {
            handle_of(slf).with(|ctx| match respond::send(ctx, buf, After::Flush) {
                Ok(()) => Ok(()),
                Err(SendError::NotStarted) => Err(PyRuntimeError::new_err(
                    "write() called before start_response()",
                )),
                Err(SendError::Ended) => Err(PyRuntimeError::new_err(
                    "write() called after the response ended",
                )),
                Err(SendError::ClientGone) => Err(PyOSError::new_err(
                    "failed to write response data: client connection closed",
                )),
                Err(SendError::Failed(what)) => Err(PyOSError::new_err(format!(
                    "failed to write response data: {what}"
                ))),
            })
        }?;
        Ok(super::none())
    })
}
