//! Entering Rust code that uses PyO3 while this thread holds a GIL it took itself.
//!
//! PyO3 counts attachment in a private thread-local; with `pyo3_disable_reference_pool`,
//! dropping any `Py<T>` (every `PyErr` holds some, and PyO3 drops errors internally, e.g. in
//! `getattr_opt`) aborts the process unless that count is positive. We attach with raw
//! thread states (PyO3's `Python::attach` uses PyGILState, which only knows the main
//! interpreter), so the outermost stretch of PyO3 use on a thread runs as the body of a
//! `PyCFunction::new_closure` function, which PyO3 counts as attached without touching
//! PyGILState. Each interpreter gets its own such function on first use (objects are never
//! shared between interpreters). Nested stretches run directly: PyO3 still counts the
//! thread attached. Either way a panic becomes a Python `RuntimeError`, never an unwind into
//! C, and never PyO3's `PanicException`, whose type object is process-wide.

use crate::wsgi::gateway::{RequestLog, Severity};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

type Body = dyn for<'py> FnMut(Python<'py>);

thread_local! {
    /// The body the entry function runs (a plain pointer: no TLS destructor).
    static BODY: Cell<Option<*mut Body>> = const { Cell::new(None) };
    /// How many entry-function bodies this thread is inside; PyO3 counts it attached while
    /// this is positive.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Each interpreter's entry function: (interpreter, strong reference owned by it), until
/// the interpreter ends ([`end_interpreter`]).
static ENTRIES: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Runs `f`, turning a panic into a `RuntimeError` (the panic hook has logged it already).
fn guarded<R>(py: Python<'_>, f: impl FnOnce(Python<'_>) -> R) -> PyResult<R> {
    catch_unwind(AssertUnwindSafe(|| f(py))).map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        PyRuntimeError::new_err(format!("internal error in mod_rwsgi (panic): {msg}"))
    })
}

/// The entry function's closure: runs the body `enter` stored.
fn entry(args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let py = args.py();
    let Some(body) = BODY.with(|b| b.replace(None)) else {
        return Err(PyRuntimeError::new_err(
            "mod_rwsgi entry called from Python",
        ));
    };
    DEPTH.with(|d| d.set(d.get() + 1));
    // SAFETY: `enter` stored a pointer to a body that lives across this call.
    let ran = guarded(py, |py| unsafe { (*body)(py) });
    DEPTH.with(|d| d.set(d.get() - 1));
    ran?;
    // A body may leave an exception for its caller (`call`); it must travel as the
    // error, as CPython rejects a result returned with an exception set.
    match PyErr::take(py) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The current interpreter's entry function (borrowed), made on first use; null with an
/// exception set if it cannot be made.
fn entry_function(py: Python<'_>) -> *mut ffi::PyObject {
    // SAFETY: the caller holds the GIL, so there is a current interpreter.
    let interp = unsafe { ffi::PyInterpreterState_Get() } as usize;
    let find = |entries: &[(usize, usize)]| {
        entries
            .iter()
            .find(|(i, _)| *i == interp)
            .map(|(_, f)| *f as *mut ffi::PyObject)
    };
    if let Some(f) = find(&ENTRIES.lock().unwrap_or_else(|e| e.into_inner())) {
        return f;
    }
    // Made without the lock held: making it may run Python code that lets another thread
    // take the GIL (and then the lock).
    let made = match PyCFunction::new_closure(py, Some(c"mod_rwsgi_entry"), None, entry) {
        Ok(f) => f.into_any().into_ptr(),
        Err(e) => {
            // A fetched (normalised) error: restoring it drops no `Py<T>`, which PyO3
            // would not allow before the thread counts as attached.
            e.restore(py);
            return std::ptr::null_mut();
        }
    };
    let mut entries = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = find(&entries) {
        drop(entries);
        // SAFETY: our own new reference, GIL held; another thread made this interpreter's
        // function first.
        unsafe { ffi::Py_DECREF(made) };
        return f;
    }
    entries.push((interp, made as usize));
    made
}

/// Ends the current sub-interpreter with `Py_EndInterpreter(ts)`, releasing its entry
/// function first: a later interpreter may get the same address, and must not be handed a
/// function of this one.
///
/// # Safety
/// As `Py_EndInterpreter`: the caller holds the GIL with `ts`, the interpreter's current
/// and only thread state; afterwards no thread state is current.
pub unsafe fn end_interpreter(ts: *mut ffi::PyThreadState) {
    // SAFETY: `ts` is live (contract).
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(ts) } as usize;
    let entry = {
        let mut entries = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
        let at = entries.iter().position(|(i, _)| *i == interp);
        at.map(|at| entries.swap_remove(at).1)
    };
    // SAFETY: the reference ENTRIES owned, released in its own interpreter, GIL held; then
    // the caller's contract for Py_EndInterpreter.
    unsafe {
        if let Some(f) = entry {
            ffi::Py_DECREF(f as *mut ffi::PyObject);
        }
        ffi::Py_EndInterpreter(ts);
    }
}

/// Runs `f` with PyO3 knowing this thread is attached. The caller holds the GIL (of any
/// interpreter). `None` means `f` panicked (or could not start); a Python exception is then
/// set.
pub fn enter<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    // SAFETY: the caller holds the GIL (contract).
    let py = unsafe { Python::assume_attached() };
    if DEPTH.with(|d| d.get()) > 0 {
        return guarded(py, f).map_err(|e| e.restore(py)).ok();
    }
    let mut f = Some(f);
    let mut out = None;
    let mut body = |py: Python<'_>| out = f.take().map(|f| f(py));
    let body: &mut (dyn for<'py> FnMut(Python<'py>) + '_) = &mut body;
    // SAFETY: only the lifetime is erased; the pointer is used during the call below only.
    let body: *mut Body = unsafe { std::mem::transmute(body) };
    let entry = entry_function(py);
    if !entry.is_null() {
        let outer = BODY.with(|b| b.replace(Some(body)));
        // SAFETY: a live function object of the current interpreter, GIL held.
        let ret = unsafe { ffi::PyObject_CallNoArgs(entry) };
        BODY.with(|b| b.set(outer));
        if !ret.is_null() {
            // SAFETY: the new reference to None returned by the call.
            unsafe { ffi::Py_DECREF(ret) };
        }
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

/// Releases the GIL while `f` runs (it must not touch Python), re-attaching the same thread
/// state afterwards, also if `f` panics.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    struct Reattach(*mut ffi::PyThreadState);
    impl Drop for Reattach {
        fn drop(&mut self) {
            let waited = std::time::Instant::now();
            // SAFETY: restores exactly the thread state saved below, on the same thread.
            unsafe { ffi::PyEval_RestoreThread(self.0) };
            super::modules::metrics::gil_wait_add(waited.elapsed());
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
    use super::{ENTRIES, call, end_interpreter, enter, imported_module};
    use crate::python::objects::{Methods, noargs};
    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    unsafe extern "C" fn boom(
        _slf: *mut ffi::PyObject,
        _args: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        call(|_py| panic!("boom from Python"))
    }

    static BOOM: Methods<1> = Methods([noargs(c"boom", boom)]);

    /// The pending exception's text, asserting it is a RuntimeError. Fetched raw first:
    /// `enter` must not start with an exception set.
    fn take_runtime_error() -> String {
        let (mut t, mut v, mut tb) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        // SAFETY: GIL held by the test thread; we own the fetched references.
        unsafe {
            ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
            ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
        }
        assert!(!v.is_null(), "an exception is set");
        enter(|py| {
            // SAFETY: the references fetched above, handed to PyO3 while attached.
            let (t, v) = unsafe {
                ffi::Py_XDECREF(tb);
                (Bound::from_owned_ptr(py, t), Bound::from_owned_ptr(py, v))
            };
            assert!(t.is(py.get_type::<PyRuntimeError>()), "{v}");
            v.to_string()
        })
        .expect("no panic")
    }

    /// PyO3 must count the thread attached inside `enter`: dropping a normalised `PyErr`
    /// (it holds `Py<T>`s) would otherwise abort the whole test process.
    fn drop_py_objects() -> Option<i32> {
        enter(|py| {
            let e = PyErr::new::<PyValueError, _>("dropped");
            assert_eq!(e.value(py).to_string(), "dropped");
            drop(e);
            7
        })
    }

    /// One test, as Python is initialised once per process and held by one thread here.
    #[test]
    fn panics_become_runtime_errors_in_every_interpreter() {
        // SAFETY: this test alone uses Python in the unit-test process; the GIL stays with
        // this thread until the end, where it is released.
        unsafe { ffi::Py_InitializeEx(0) };

        assert_eq!(drop_py_objects(), Some(7));
        let outer: Option<()> = enter(|_py| panic!("boom outside"));
        assert!(outer.is_none());
        assert_eq!(
            take_runtime_error(),
            "internal error in mod_rwsgi (panic): boom outside"
        );
        let nested = enter(|py| {
            let inner: Option<()> = enter(|_py| panic!("boom inside"));
            let e = PyErr::take(py).expect("an exception is set");
            assert!(e.is_instance_of::<PyRuntimeError>(py), "{e}");
            (inner.is_none(), e.value(py).to_string())
        });
        assert_eq!(
            nested,
            Some((
                true,
                "internal error in mod_rwsgi (panic): boom inside".to_string()
            ))
        );

        // Called from Python: on this thread (inside `enter`) and on a thread Python started
        // (outside any `enter`), the panic reaches Python code as a RuntimeError.
        let results = enter(|py| -> PyResult<Vec<String>> {
            // SAFETY: a static method table; the function is a new reference.
            let f = unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    ffi::PyCFunction_NewEx(
                        BOOM.0.as_ptr().cast_mut(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    ),
                )?
            };
            let globals = PyDict::new(py);
            globals.set_item("boom", f)?;
            py.run(
                c"
import threading
def attempt():
    try:
        boom()
    except RuntimeError as e:
        return str(e)
    return 'no exception'
results = [attempt()]
t = threading.Thread(target=lambda: results.append(attempt()))
t.start()
t.join()
",
                Some(&globals),
                None,
            )?;
            globals.get_item("results")?.expect("results").extract()
        })
        .expect("no panic")
        .expect("the script ran");
        assert_eq!(
            results,
            ["internal error in mod_rwsgi (panic): boom from Python"; 2]
        );

        // A sub-interpreter gets its own entry function.
        // SAFETY: GIL held; the new interpreter's state becomes current.
        let main_ts = unsafe { ffi::PyThreadState_Get() };
        // SAFETY: as above.
        let sub_ts = unsafe { ffi::Py_NewInterpreter() };
        assert!(!sub_ts.is_null());
        assert_eq!(drop_py_objects(), Some(7));
        let sub_panic: Option<()> = enter(|_py| panic!("boom in a sub-interpreter"));
        assert!(sub_panic.is_none());
        assert_eq!(
            take_runtime_error(),
            "internal error in mod_rwsgi (panic): boom in a sub-interpreter"
        );
        {
            let entries = ENTRIES.lock().unwrap();
            assert_eq!(entries.len(), 2);
            assert_ne!(entries[0].0, entries[1].0);
            assert_ne!(entries[0].1, entries[1].1);
        }
        // SAFETY: ends the sub-interpreter we made (its state is current and its only one),
        // back to main, then the GIL is released.
        unsafe {
            end_interpreter(sub_ts);
            ffi::PyThreadState_Swap(main_ts);
            ffi::PyEval_SaveThread();
        }
        // Only the main interpreter's function is left.
        assert_eq!(ENTRIES.lock().unwrap().len(), 1);
    }

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
