//! `WSGIImportScript`: loading scripts into their interpreters when an Apache child starts,
//! before it serves a request, so a script that is also the request's WSGI script is
//! already imported when the first request arrives.

use super::attach::Attached;
use super::callback::{enter, log_exception};
use super::{interp, script};
use crate::config::ImportScript;
use crate::wsgi::gateway::{RequestLog, Severity};
use pyo3::ffi;
use std::os::unix::fs::MetadataExt;

/// The mtime as Apache's `finfo.mtime` gives it (microseconds), so a request with script
/// reloading on finds the preloaded module current instead of loading it again.
pub fn apr_mtime(path: &str) -> Option<i64> {
    let m = std::fs::metadata(path).ok()?;
    Some(m.mtime() * 1_000_000 + m.mtime_nsec() / 1_000)
}

/// Loads every embedded-mode (`process-group=%{GLOBAL}`) import script in config order. A
/// script that fails is logged with its traceback; the others still load and the child
/// serves. The caller is not attached to any interpreter.
pub fn run(scripts: &[ImportScript], apache_version: (u32, u32, u32), log: &RequestLog) {
    for s in scripts.iter().filter(|s| s.process_group.is_empty()) {
        load_one(s, apache_version, log);
    }
}

fn load_one(s: &ImportScript, apache_version: (u32, u32, u32), log: &RequestLog) {
    let group = if s.application_group.is_empty() {
        "%{GLOBAL}"
    } else {
        &s.application_group
    };
    let interp = match interp::for_group(&s.application_group, apache_version, log) {
        Ok(i) => i,
        // Its full error has just been logged.
        Err(interp::GroupError::SetUpFailed { first: true, .. }) => return,
        Err(e) => {
            let msg = format!("RWSGI0210: WSGIImportScript '{}' not loaded: {e}", s.path);
            log.log(Severity::Error, &msg);
            return;
        }
    };
    // SAFETY: Python is initialised, the interpreter lives for the process, and the caller
    // is not attached.
    let _attached = unsafe { Attached::new(interp.ptr) };
    let mtime = apr_mtime(&s.path);
    let loaded = enter(
        |py| match script::load(py, &interp.state, &s.path, mtime, log) {
            Ok(_) => {
                let msg = format!(
                    "mod_rwsgi (pid={}): imported script '{}' into application group '{group}'",
                    std::process::id(),
                    s.path
                );
                log.log(Severity::Info, &msg);
            }
            Err(e) => {
                let what = format!(
                    "RWSGI0211: WSGIImportScript '{}' failed in application group '{group}'; the \
                 child serves on and its requests try to load the script again. Fix the error \
                 shown below",
                    s.path
                );
                log_exception(py, log, &what, &e);
            }
        },
    );
    if loaded.is_none() {
        let msg = format!("RWSGI0212: internal error (panic) importing '{}'", s.path);
        log.log(Severity::Error, &msg);
        // SAFETY: still attached; `enter` left the panic as the current exception.
        unsafe { ffi::PyErr_Clear() };
    }
}
