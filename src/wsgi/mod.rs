//! Transport-independent WSGI (PEP 3333) rules: environ construction, SCRIPT_NAME/PATH_INFO,
//! status and header validation, the start_response state machine, and the gateway trait the
//! Python layer drives (implemented by embedded mode now, by the daemon worker later).

pub mod environ;
pub mod failure;
pub mod gateway;
pub mod log_lines;
pub mod path;
pub mod proxy;
pub mod response;
