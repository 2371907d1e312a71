//! Per-process request figures kept in shared memory, so that any Apache child can report
//! every process's: the table layout and its lock-free updates, and the reports
//! (mod_status, OpenMetrics); and the server facts the Apache adapter hands to the Python
//! runtime. Pure: the mapping and the hooks live in `httpd::status`.

pub mod render;
pub mod server;
pub mod table;
