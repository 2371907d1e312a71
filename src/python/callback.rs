//! The trampoline for CPython → Rust callbacks (methods and slots of our heap types): the
//! thread is attached when CPython calls us, so a token is minted; panics become Python
//! exceptions and never unwind into C.

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs a callback returning a new reference (null with an exception set on error).
pub fn call(f: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>) -> *mut ffi::PyObject {
    // SAFETY: CPython only calls our slots and methods on a thread that holds the GIL of the
    // interpreter owning the object.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| f(py))) {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => {
            e.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("mod_rwsgi internal error (panic); see the Apache error log")
                .restore(py);
            std::ptr::null_mut()
        }
    }
}

/// Runs a callback returning a C int status (-1 with an exception set on error).
pub fn call_int(f: impl FnOnce(Python<'_>) -> PyResult<libc::c_int>) -> libc::c_int {
    let r = call(|py| f(py).map(|v| v as isize as *mut ffi::PyObject));
    if r.is_null() {
        -1
    } else {
        r as isize as libc::c_int
    }
}

/// Releases the GIL while `f` runs (it must not touch Python), re-attaching the same thread
/// state afterwards, also if `f` panics.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    struct Reattach(*mut ffi::PyThreadState);
    impl Drop for Reattach {
        fn drop(&mut self) {
            // SAFETY: restores exactly the thread state saved below, on the same thread.
            unsafe { ffi::PyEval_RestoreThread(self.0) }
        }
    }
    // SAFETY: the caller holds the GIL (it is running Python-facing code).
    let _back = Reattach(unsafe { ffi::PyEval_SaveThread() });
    f()
}

/// A latin-1 `str` from bytes (WSGI's "native string").
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyAny> {
    // SAFETY: latin-1 decoding cannot fail; the result is a new reference.
    unsafe {
        let p = ffi::PyUnicode_DecodeLatin1(
            b.as_ptr().cast(),
            b.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Bound::from_owned_ptr(py, p)
    }
}

/// The formatted traceback of `err`, one line per entry, for the error log.
pub fn traceback_lines(py: Python<'_>, err: &PyErr) -> Vec<String> {
    let formatted = py.import("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )
    });
    let mut out = Vec::new();
    match formatted {
        Ok(list) => {
            if let Ok(iter) = list.try_iter() {
                for item in iter.flatten() {
                    if let Ok(s) = item.extract::<String>() {
                        out.extend(s.trim_end_matches('\n').split('\n').map(str::to_string));
                    }
                }
            }
        }
        Err(_) => out.push(format!("{err}")),
    }
    out
}
