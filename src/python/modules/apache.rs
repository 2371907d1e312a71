//! The `apache` module of one interpreter: facts about the running httpd.

use crate::httpd::mpm::{self, MpmShape};
use crate::httpd::scoreboard;
use pyo3::prelude::*;
use pyo3::types::PyModule;

/// Builds the module (not yet in `sys.modules`).
pub fn build<'py>(py: Python<'py>, shape: MpmShape) -> PyResult<Bound<'py, PyModule>> {
    let m = PyModule::new(py, "apache")?;
    m.setattr("version", crate::httpd::hooks::apache_version())?;
    m.setattr("mpm_name", mpm::name())?;
    m.setattr("maximum_processes", shape.max_daemons.max(1))?;
    m.setattr("threads_per_process", shape.max_threads.max(1))?;
    m.setattr("description", scoreboard::description())?;
    m.setattr("build_date", scoreboard::build_date())?;
    Ok(m)
}
