//! The `apache` module of one interpreter: facts about the running httpd.

use crate::python::runtime::Identity;
use pyo3::prelude::*;
use pyo3::types::PyModule;

/// Builds the module (not yet in `sys.modules`). Its shape is Apache's own, also in a daemon
/// process (as mod_wsgi 4.9.4); `mod_wsgi`'s is the one the app runs with.
pub fn build<'py>(py: Python<'py>, id: &Identity) -> PyResult<Bound<'py, PyModule>> {
    let shape = id.mpm;
    let m = PyModule::new(py, "apache")?;
    m.setattr("version", id.apache_version)?;
    m.setattr("mpm_name", &id.mpm_name)?;
    m.setattr("maximum_processes", shape.max_daemons.max(1))?;
    m.setattr("threads_per_process", shape.max_threads.max(1))?;
    m.setattr("description", &id.description)?;
    m.setattr("build_date", &id.build_date)?;
    Ok(m)
}
