//! Entering Rust code that uses PyO3 while this thread holds a GIL it took itself.
//!
//! PyO3 counts attachment in a private thread-local; with `pyo3_disable_reference_pool`,
//! dropping any `Py<T>` (every `PyErr` holds some, and PyO3 drops errors internally, e.g. in
//! `getattr_opt`) aborts the process unless that count is positive. We attach with raw
//! thread states (PyO3's own `attach` would use PyGILState, which only knows the main
//! interpreter), so every stretch of PyO3 use runs inside PyO3's callback trampoline, the
//! one public path that marks the thread attached without touching PyGILState. The
//! trampoline also turns a panic into a Python exception instead of unwinding into C.

use crate::wsgi::gateway::{RequestLog, Severity};
use pyo3::ffi;
use pyo3::impl_::trampoline::{MethodDef, noargs};
use pyo3::prelude::*;
use std::cell::Cell;

type Body = dyn for<'py> FnMut(Python<'py>);

thread_local! {
    /// The body the trampoline entry runs (a plain pointer: no TLS destructor).
    static BODY: Cell<Option<*mut Body>> = const { Cell::new(None) };
}

struct Entry;

impl MethodDef<noargs::Func> for Entry {
    const METH: noargs::Func = entry;
}

unsafe fn entry(_py: Python<'_>, _slf: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
    let body = BODY
        .with(|b| b.replace(None))
        .expect("trampoline body is set by `enter`");
    // SAFETY: `enter` stored a pointer to a body that lives across this call.
    unsafe { (*body)(Python::assume_attached()) };
    Ok(super::objects::none())
}

/// Runs `f` with PyO3 knowing this thread is attached. The caller holds the GIL (of any
/// interpreter). `None` means `f` panicked; a Python exception is then set.
pub fn enter<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    let mut body = |py: Python<'_>| out = f.take().map(|f| f(py));
    let body: &mut (dyn for<'py> FnMut(Python<'py>) + '_) = &mut body;
    // SAFETY: only the lifetime is erased; the pointer is used during the call below only.
    let body: *mut Body = unsafe { std::mem::transmute(body) };
    let outer = BODY.with(|b| b.replace(Some(body)));
    // SAFETY: the thread holds the GIL (caller contract), as the trampoline requires.
    let ret = unsafe { noargs::<Entry>(std::ptr::null_mut(), std::ptr::null_mut()) };
    BODY.with(|b| b.set(outer));
    if !ret.is_null() {
        // SAFETY: the new reference to None returned by `entry`.
        unsafe { ffi::Py_DECREF(ret) };
    }
    out
}

/// Runs a callback returning a new reference (null with an exception set on error).
pub fn call(f: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>) -> *mut ffi::PyObject {
    enter(|py| match f(py) {
        Ok(obj) => obj,
        Err(e) => {
            e.restore(py);
            std::ptr::null_mut()
        }
    })
    .unwrap_or(std::ptr::null_mut())
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

/// `Type: message` of an exception, on one line (the first line of the message).
pub fn summary(py: Python<'_>, err: &PyErr) -> String {
    let ty = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let msg = err
        .value(py)
        .str()
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_default();
    match msg.lines().next() {
        Some(first) if !first.is_empty() => format!("{ty}: {first}"),
        _ => ty,
    }
}

/// Logs an exception (what happened, then the traceback) against a request.
pub fn log_exception(py: Python<'_>, log: &RequestLog, what: &str, err: &PyErr) {
    log.log(Severity::Error, what);
    for line in traceback_lines(py, err) {
        log.log(Severity::Error, &line);
    }
    if err.is_instance_of::<pyo3::exceptions::PyImportError>(py)
        && err.to_string().contains("subinterpreter")
    {
        let module = match refused_module(py, err) {
            Some(m) => format!("extension module '{m}'"),
            None => "an extension module".to_string(),
        };
        log.log(
            Severity::Error,
            &format!(
                "RWSGI0120: {module} refused to load in a Python sub-interpreter; \
                 run this application in the main interpreter with 'WSGIApplicationGroup %{{GLOBAL}}'"
            ),
        );
    }
}

/// The module an ImportError is about: its `.name`, else the module imported by the source
/// line of the innermost traceback frame (PyO3's "do not yet support subinterpreters" error
/// leaves `.name` unset; the frame is then e.g. `from .rpds import *` in `rpds/__init__.py`).
fn refused_module(py: Python<'_>, err: &PyErr) -> Option<String> {
    if let Ok(name) = err
        .value(py)
        .getattr("name")
        .and_then(|n| n.extract::<String>())
    {
        if !name.is_empty() {
            return Some(name);
        }
    }
    let mut tb = err.traceback(py)?.into_any();
    while let Ok(next) = tb.getattr("tb_next") {
        if next.is_none() {
            break;
        }
        tb = next;
    }
    let frame = tb.getattr("tb_frame").ok()?;
    let file = frame.getattr("f_code").ok()?.getattr("co_filename").ok()?;
    let line: String = py
        .import("linecache")
        .ok()?
        .call_method1("getline", (file, tb.getattr("tb_lineno").ok()?))
        .ok()?
        .extract()
        .ok()?;
    let package = frame
        .getattr("f_globals")
        .and_then(|g| g.get_item("__package__"))
        .and_then(|p| p.extract::<String>())
        .ok();
    imported_module(&line, package.as_deref())
}

/// The first module an `import` statement (one source line) imports: `import a.b as c, d` →
/// `a.b`; `from .x import y` → `<package>.x`; `from . import y` → `<package>.y`. A relative
/// name stays relative when the package is unknown.
fn imported_module(line: &str, package: Option<&str>) -> Option<String> {
    let line = line.split('#').next()?.trim();
    let first_name = |names: &str| -> Option<String> {
        let n = names.trim().trim_start_matches('(').split(',').next()?;
        let n = n.split_whitespace().next()?;
        Some(n.to_string())
    };
    let name = if let Some(rest) = line.strip_prefix("import ") {
        first_name(rest)?
    } else if let Some(rest) = line.strip_prefix("from ") {
        let (from, names) = rest.split_once(" import ")?;
        let from = from.trim();
        if from.chars().all(|c| c == '.') {
            format!("{from}{}", first_name(names)?)
        } else {
            from.to_string()
        }
    } else {
        return None;
    };
    let dots = name.chars().take_while(|&c| c == '.').count();
    if dots == 0 {
        return Some(name);
    }
    let Some(package) = package.filter(|p| !p.is_empty()) else {
        return Some(name);
    };
    let parts: Vec<&str> = package.split('.').collect();
    let keep = parts.len().checked_sub(dots - 1).filter(|&k| k > 0)?;
    Some(format!("{}.{}", parts[..keep].join("."), &name[dots..]))
}

#[cfg(test)]
mod tests {
    use super::imported_module;

    #[test]
    fn import_lines_name_their_module() {
        let m = |l: &str, p: Option<&str>| imported_module(l, p);
        assert_eq!(m("import rpds", None).as_deref(), Some("rpds"));
        assert_eq!(
            m("    import a.b as c, d  # x", None).as_deref(),
            Some("a.b")
        );
        assert_eq!(
            m("from .rpds import *\n", Some("rpds")).as_deref(),
            Some("rpds.rpds")
        );
        assert_eq!(m("from .rpds import *", None).as_deref(), Some(".rpds"));
        assert_eq!(
            m("from . import _ext as e", Some("pkg.sub")).as_deref(),
            Some("pkg.sub._ext")
        );
        assert_eq!(
            m("from .. import (x, y)", Some("pkg.sub")).as_deref(),
            Some("pkg.x")
        );
        assert_eq!(
            m("from ..core import x", Some("pkg.sub")).as_deref(),
            Some("pkg.core")
        );
        assert_eq!(
            m("from orjson import dumps", Some("app")).as_deref(),
            Some("orjson")
        );
        assert_eq!(m("x = compute()", None), None);
        assert_eq!(m("from ... import x", Some("pkg")), None);
    }
}
