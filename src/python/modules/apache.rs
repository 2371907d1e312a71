//! The `apache` module of one interpreter: facts about the running httpd.

use crate::httpd::mpm::{self, MpmShape};
use crate::sys;
use pyo3::prelude::*;
use pyo3::types::PyModule;

fn static_text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: httpd returns static NUL-terminated strings from these queries.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Builds the module (not yet in `sys.modules`).
pub fn build<'py>(py: Python<'py>, shape: MpmShape) -> PyResult<Bound<'py, PyModule>> {
    let m = PyModule::new(py, "apache")?;
    m.setattr("version", crate::httpd::hooks::apache_version())?;
    m.setattr("mpm_name", mpm::name())?;
    m.setattr("maximum_processes", shape.max_daemons.max(1))?;
    m.setattr("threads_per_process", shape.max_threads.max(1))?;
    // SAFETY: plain queries returning static strings, valid after configuration.
    let (description, built) = unsafe {
        (
            static_text(sys::ap_get_server_description()),
            static_text(sys::ap_get_server_built()),
        )
    };
    m.setattr("description", description)?;
    m.setattr("build_date", built)?;
    Ok(m)
}
