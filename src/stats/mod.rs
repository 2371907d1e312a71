//! Per-process request figures kept in shared memory, so that any Apache child can report
//! every process's: the table layout and its lock-free updates, and the reports
//! (mod_status, OpenMetrics). Pure: the mapping and the hooks live in `httpd::status`.

pub mod render;
pub mod table;
