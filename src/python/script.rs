//! Loading WSGI script files as modules, once per interpreter (under a lock, so two threads
//! never load one script twice), and reloading them when their mtime changes.

use super::callback::{blocking, log_exception};
use super::state::{InterpState, Owned, ScriptEntry};
use crate::wsgi::gateway::{RequestLog, Severity};
use md5::Digest;
use pyo3::exceptions::PyOSError;
use pyo3::ffi;
use pyo3::prelude::*;

/// The module name mod_wsgi gives a script: `_mod_wsgi_` + md5 of its path (lower-cased
/// first with `WSGICaseSensitivity Off`, so two spellings of one file share a module).
fn module_name(path: &str) -> String {
    let key = if super::options::get().case_sensitive() {
        path.to_string()
    } else {
        path.to_lowercase()
    };
    let digest = md5::Md5::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("_mod_wsgi_{hex}")
}

fn cached<'py>(
    py: Python<'py>,
    state: &InterpState,
    path: &str,
    mtime: Option<i64>,
) -> Option<Bound<'py, PyAny>> {
    let scripts = state.scripts.lock().unwrap_or_else(|e| e.into_inner());
    let e = scripts.get(path)?;
    match mtime {
        Some(m) if m != e.mtime => None,
        _ => Some(e.module.bind(py)),
    }
}

/// True when the script's own `reload_required(path)` hook asks for a reload. An exception
/// in the hook is logged and does not force one.
fn hook_wants_reload(
    py: Python<'_>,
    module: &Bound<'_, PyAny>,
    path: &str,
    log: &RequestLog,
) -> bool {
    // A dict lookup, not getattr: no AttributeError is raised and discarded per request.
    // SAFETY: `module` is a module object; both calls return borrowed references or null.
    let hook = unsafe {
        let dict = ffi::PyModule_GetDict(module.as_ptr());
        if dict.is_null() {
            return false;
        }
        let f = ffi::PyDict_GetItemString(dict, c"reload_required".as_ptr());
        if f.is_null() {
            return false;
        }
        Bound::from_borrowed_ptr(py, f)
    };
    match hook.call1((path,)).and_then(|v| v.is_truthy()) {
        Ok(reload) => reload,
        Err(e) => {
            let what = format!(
                "RWSGI0105: reload_required() of WSGI script '{path}' raised; not reloading"
            );
            log_exception(py, log, &what, &e);
            false
        }
    }
}

/// Returns the script's module, loading it, or reloading it when `mtime` is given (script
/// reloading on) and differs from the loaded one's, or the script's `reload_required` hook
/// asks for it.
pub fn load<'py>(
    py: Python<'py>,
    state: &InterpState,
    path: &str,
    mtime: Option<i64>,
    log: &RequestLog,
) -> PyResult<Bound<'py, PyAny>> {
    let mut forced = false;
    if let Some(m) = cached(py, state, path, mtime) {
        if mtime.is_none() || !hook_wants_reload(py, &m, path, log) {
            return Ok(m);
        }
        forced = true;
    }
    let _loading = blocking(|| state.load_lock.lock().unwrap_or_else(|e| e.into_inner()));
    if !forced {
        if let Some(m) = cached(py, state, path, mtime) {
            return Ok(m);
        }
    }
    let name = module_name(path);
    let source = std::fs::read(path)
        .map_err(|e| PyOSError::new_err(format!("cannot read WSGI script '{path}': {e}")))?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    if sys_modules.contains(&name)? {
        sys_modules.del_item(&name)?;
    }
    let csource = std::ffi::CString::new(source).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("WSGI script '{path}' contains null bytes"))
    })?;
    let cname = std::ffi::CString::new(name.as_str())?;
    let cpath = std::ffi::CString::new(path)?;
    // The C API, not builtins.compile(): the latter sets up the `ast` module's ~120 node
    // types in every interpreter it runs in (about 0.25 MiB each), for nothing.
    // SAFETY: NUL-terminated source and file name; returns a new code object or null with
    // an exception set (a SyntaxError names the file and line).
    let code = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::Py_CompileString(csource.as_ptr(), cpath.as_ptr(), ffi::Py_file_input),
        )?
    };
    // SAFETY: code is a code object; the call executes it as a new module registered in
    // sys.modules (removed again on failure) and returns a new reference or null.
    let module = unsafe {
        let m = ffi::PyImport_ExecCodeModuleEx(cname.as_ptr(), code.as_ptr(), cpath.as_ptr());
        Bound::from_owned_ptr_or_err(py, m)?
    };
    let m = mtime.unwrap_or(0);
    module.setattr("__mtime__", m)?;
    let mut scripts = state.scripts.lock().unwrap_or_else(|e| e.into_inner());
    let entry = ScriptEntry {
        module: Owned(module.clone().into_ptr()),
        mtime: m,
    };
    let old = scripts.insert(path.to_string(), entry);
    drop(scripts);
    let reloaded = old.is_some();
    if let Some(old) = old {
        // SAFETY: we own the old strong reference and hold this interpreter's GIL.
        unsafe { ffi::Py_DECREF(old.module.0) };
    }
    let msg = match (reloaded, forced) {
        (false, _) => format!(
            "{}: loaded WSGI script '{path}' as module '{name}' (pid {})",
            crate::log_ids::SCRIPT_LOADED,
            std::process::id()
        ),
        (true, forced) => format!(
            "{}: reloaded WSGI script '{path}' as module '{name}' (pid {}): {}",
            crate::log_ids::SCRIPT_RELOADED,
            std::process::id(),
            if forced {
                "its reload_required() returned true"
            } else {
                "its modification time changed"
            }
        ),
    };
    log.log(Severity::Debug, &msg);
    Ok(module)
}
