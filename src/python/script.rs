//! Loading WSGI script files as modules, once per interpreter (under a lock, so two threads
//! never load one script twice), and reloading them when their mtime changes.

use super::callback::blocking;
use super::state::{InterpState, Owned, ScriptEntry};
use pyo3::exceptions::PyOSError;
use pyo3::ffi;
use pyo3::prelude::*;

/// The module name mod_wsgi gives a script: `_mod_wsgi_` + md5 of its path.
fn module_name(py: Python<'_>, path: &str) -> PyResult<String> {
    let digest = py
        .import("hashlib")?
        .call_method1("md5", (path.as_bytes(),))?
        .call_method0("hexdigest")?;
    Ok(format!("_mod_wsgi_{}", digest.extract::<String>()?))
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

/// Returns the script's module, loading it (or reloading it when `mtime` is given and
/// differs from the loaded one's).
pub fn load<'py>(
    py: Python<'py>,
    state: &InterpState,
    path: &str,
    mtime: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(m) = cached(py, state, path, mtime) {
        return Ok(m);
    }
    let _loading = blocking(|| state.load_lock.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(m) = cached(py, state, path, mtime) {
        return Ok(m);
    }
    let name = module_name(py, path)?;
    let source = std::fs::read(path)
        .map_err(|e| PyOSError::new_err(format!("cannot read WSGI script '{path}': {e}")))?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    if sys_modules.contains(&name)? {
        sys_modules.del_item(&name)?;
    }
    let builtins = py.import("builtins")?;
    let code = builtins.getattr("compile")?.call1((
        pyo3::types::PyBytes::new(py, &source),
        path,
        "exec",
        0,
        true,
    ))?;
    let cname = std::ffi::CString::new(name.as_str())?;
    let cpath = std::ffi::CString::new(path)?;
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
    if let Some(old) = scripts.insert(path.to_string(), entry) {
        // SAFETY: we own the old strong reference and hold this interpreter's GIL.
        unsafe { ffi::Py_DECREF(old.module.0) };
    }
    Ok(module)
}
