//! The Apache entry points that reach the WSGI layers: the `extern "C"` hooks (request
//! routing, start-up, child life cycle), the Python-scripted auth providers and the daemon
//! process groups' life under the Apache parent. The top of the dependency graph: it wires
//! the Apache adapter (`httpd`) to routing (`handler`), the Python runtime and the daemon
//! transport, and nothing imports it.

pub mod auth;
pub mod daemons;
pub mod hooks;
