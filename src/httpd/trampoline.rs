//! The single place where panics are stopped before they reach Apache's C frames: every
//! `extern "C"` entry of the module runs its body through [`guard`].

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into a logged error and `on_panic`.
pub fn guard<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            crate::httpd::log::server_error(
                None,
                &format!("RWSGI0001: internal error in {what}: {msg}; please report this bug"),
            );
            on_panic
        }
    }
}
