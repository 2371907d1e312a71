//! The embedded CPython: initialisation after fork, interpreters per application group,
//! thread states per (OS thread, interpreter), the Python-visible request objects, script
//! loading, and running one request through an app.
//!
//! Sub-interpreter rules (design notes §4): nothing on a request path assumes the main
//! interpreter — no `#[pyclass]`, `intern!`, once-cells, `Python::attach`, or `Py<T>` held
//! across requests. Python objects mod_rwsgi needs live in per-interpreter state.

pub mod app;
pub mod attach;
pub mod callback;
pub mod environ;
pub mod hook;
pub mod interp;
pub mod modules;
pub mod objects;
pub mod options;
pub mod preload;
pub mod request;
pub mod respond;
pub mod runtime;
pub mod script;
pub mod shutdown;
pub mod state;
