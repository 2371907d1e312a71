//! Why a request was refused before its response began, in either transport (embedded or
//! daemon): one enum, and one place that says which status it answers and which log id it
//! is logged under.

use crate::log_ids;
use crate::wsgi::gateway::Severity;

/// A request that fails before any response head went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The wsgi-script handler where `Options ExecCGI` is off (and no alias maps the URL).
    ExecCgiOff { file: String },
    /// The target script does not exist or cannot be stat()ed.
    ScriptNotFound { file: String },
    /// The target script is a directory.
    ScriptIsDirectory { file: String },
    /// The target script is neither a file nor a directory.
    ScriptNotRegular { file: String },
    /// A request body in a transfer coding other than chunked.
    TransferEncoding { coding: String },
    /// A chunked request body without `WSGIChunkedRequest On`.
    ChunkedRefused,
    /// Python did not start in this Apache child.
    PythonUnavailable,
    /// An application group was asked for while Python is not initialised.
    NoPython { detail: String },
    /// A new sub-interpreter would pass `WSGIMaximumInterpreters`.
    InterpreterLimit { detail: String },
    /// The group's sub-interpreter failed to set up; `logged`: its full error was just
    /// logged, so nothing more is.
    InterpreterSetUpFailed { detail: String, logged: bool },
    /// The process group is not one `WSGIRestrictProcess` allows (groups as configured,
    /// `""` for embedded).
    ProcessRestricted {
        group: String,
        script: String,
        allowed: Vec<String>,
    },
    /// The request would run embedded under `WSGIRestrictEmbedded On`.
    EmbeddedRestricted { script: String },
    /// No daemon process group of that name exists.
    DaemonUnknown { group: String },
    /// The daemon process group belongs to another virtual host.
    DaemonElsewhere { group: String },
    /// The script fails the group's `script-user=` / `script-group=` checks.
    DaemonScriptRefused { group: String, why: String },
    /// No connection to the group's socket within `connect-timeout`.
    DaemonConnectTimeout {
        group: String,
        socket: String,
        error: String,
    },
    /// Sending the request head to the daemon failed.
    DaemonSendFailed { group: String, error: String },
    /// Reading the client's body for the daemon failed, with the status the read chose.
    ClientBodyFailed {
        group: String,
        message: String,
        status: u16,
    },
    /// A response header line from the daemon is longer than `header-buffer-size`.
    DaemonHeaderTooLong {
        group: String,
        header: String,
        len: usize,
        limit: u32,
    },
    /// The daemon sent no response head within `socket-timeout`.
    SocketTimeout { group: String },
    /// The daemon closed the connection or sent garbage before the response head.
    DaemonDiedBeforeHead { group: String, failure: String },
}

/// How a [`Failure`] is answered and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disposition {
    /// The HTTP status the request is answered with.
    pub status: u16,
    /// The stable id of its log line.
    pub id: &'static str,
    pub severity: Severity,
}

/// `WSGIProcessGroup` as configured: `%{GLOBAL}` for embedded mode.
fn shown_group(g: &str) -> &str {
    if g.is_empty() { "%{GLOBAL}" } else { g }
}

impl Failure {
    /// The one mapping of every failure to its status, log id and level.
    pub fn disposition(&self) -> Disposition {
        use Failure::*;
        let (status, id) = match self {
            ExecCgiOff { .. } => (403, log_ids::EXEC_CGI_OFF),
            ScriptNotFound { .. } => (404, log_ids::SCRIPT_NOT_FOUND),
            ScriptIsDirectory { .. } => (403, log_ids::SCRIPT_IS_DIRECTORY),
            ScriptNotRegular { .. } => (403, log_ids::SCRIPT_NOT_REGULAR),
            TransferEncoding { .. } => (501, log_ids::TRANSFER_ENCODING_UNSUPPORTED),
            ChunkedRefused => (411, log_ids::CHUNKED_REFUSED),
            PythonUnavailable => (500, log_ids::PYTHON_UNAVAILABLE),
            NoPython { .. } => (500, log_ids::GROUP_WITHOUT_PYTHON),
            // Load, not a broken app.
            InterpreterLimit { .. } => (503, log_ids::INTERPRETER_LIMIT),
            InterpreterSetUpFailed { logged: true, .. } => (500, log_ids::INTERPRETER_SETUP_FAILED),
            InterpreterSetUpFailed { .. } => (500, log_ids::INTERPRETER_UNAVAILABLE),
            ProcessRestricted { .. } => (500, log_ids::PROCESS_GROUP_RESTRICTED),
            EmbeddedRestricted { .. } => (500, log_ids::EMBEDDED_RESTRICTED),
            DaemonUnknown { .. } => (500, log_ids::NO_DAEMON_PROCESS),
            DaemonElsewhere { .. } => (500, log_ids::DAEMON_OTHER_VHOST),
            DaemonScriptRefused { .. } => (403, log_ids::DAEMON_SCRIPT_REFUSED),
            DaemonConnectTimeout { .. } => (503, log_ids::DAEMON_CONNECT_FAILED),
            DaemonSendFailed { .. } => (502, log_ids::DAEMON_SEND_FAILED),
            ClientBodyFailed { status, .. } => (*status, log_ids::DAEMON_CLIENT_BODY_FAILED),
            DaemonHeaderTooLong { .. } => (500, log_ids::DAEMON_HEADER_TOO_LONG),
            SocketTimeout { .. } => (504, log_ids::DAEMON_SOCKET_TIMEOUT),
            DaemonDiedBeforeHead { .. } => (502, log_ids::DAEMON_FAILED),
        };
        let severity = match self {
            TransferEncoding { .. } | ChunkedRefused => Severity::Warning,
            // The client went away, was too slow or sent a bad body: its doing, which
            // embedded mode does not log either (the app sees the OSError in both modes).
            ClientBodyFailed { .. } => Severity::Info,
            _ => Severity::Error,
        };
        Disposition {
            status,
            id,
            severity,
        }
    }

    /// The log line (id first), or None when the cause was already logged.
    pub fn line(&self) -> Option<String> {
        use Failure::*;
        let text = match self {
            ExecCgiOff { file } => format!("Options ExecCGI is off in this directory: {file}"),
            ScriptNotFound { file } => {
                format!("target WSGI script not found or unable to stat: {file}")
            }
            ScriptIsDirectory { file } => {
                format!("attempt to invoke directory as WSGI application: {file}")
            }
            ScriptNotRegular { file } => format!("WSGI script is not a regular file: {file}"),
            TransferEncoding { coding } => format!("unsupported Transfer-Encoding '{coding}'"),
            ChunkedRefused => {
                "chunked request body refused; enable it with 'WSGIChunkedRequest On'".into()
            }
            PythonUnavailable => "Python is not available in this Apache child; see the \
                                  start-up errors in the main error log"
                .into(),
            NoPython { detail } | InterpreterLimit { detail } => detail.clone(),
            InterpreterSetUpFailed { logged: true, .. } => return None,
            InterpreterSetUpFailed { detail, .. } => detail.clone(),
            ProcessRestricted {
                group,
                script,
                allowed,
            } => format!(
                "process group '{}' may not be used by the WSGI application '{script}' \
                 (WSGIRestrictProcess allows: {})",
                shown_group(group),
                allowed
                    .iter()
                    .map(|g| shown_group(g))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            EmbeddedRestricted { script } => format!(
                "WSGIRestrictEmbedded On forbids running the WSGI application '{script}' \
                 embedded in the Apache child; delegate it to a daemon process group with \
                 WSGIProcessGroup or process-group="
            ),
            DaemonUnknown { group } => format!(
                "no WSGI daemon process called '{group}' has been configured; the request \
                 cannot be delegated"
            ),
            DaemonElsewhere { group } => format!(
                "daemon process group '{group}' is defined in another virtual host and cannot \
                 be accessed from this one"
            ),
            DaemonScriptRefused { group, why } => {
                format!("daemon process group '{group}' refuses the script: {why}")
            }
            DaemonConnectTimeout {
                group,
                socket,
                error,
            } => format!("cannot connect to daemon process group '{group}' at {socket}: {error}"),
            DaemonSendFailed { group, error } => {
                format!("sending the request to daemon process group '{group}' failed: {error}")
            }
            ClientBodyFailed { group, message, .. } => format!(
                "reading the request body for daemon process group '{group}' failed: {message}"
            ),
            DaemonHeaderTooLong {
                group,
                header,
                len,
                limit,
            } => format!(
                "daemon process group '{group}' sent a response header '{header}' of {len} \
                 bytes, more than header-buffer-size={limit}"
            ),
            SocketTimeout { group } => {
                format!("daemon process group '{group}' sent no response within the socket timeout")
            }
            DaemonDiedBeforeHead { group, failure } => {
                format!("daemon process group '{group}' failed before the response head: {failure}")
            }
        };
        Some(format!("{}: {text}", self.disposition().id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_limit_is_load_not_a_broken_app() {
        let f = Failure::InterpreterLimit {
            detail: "limit".into(),
        };
        assert_eq!(f.disposition().status, 503);
        assert_eq!(f.line().as_deref(), Some("RWSGI0040: limit"));
    }

    #[test]
    fn a_failure_logged_where_it_happened_adds_no_line() {
        let f = Failure::InterpreterSetUpFailed {
            detail: "x".into(),
            logged: true,
        };
        assert_eq!(f.line(), None);
        assert_eq!(f.disposition().status, 500);
    }

    #[test]
    fn daemon_failures_answer_as_a_gateway_does() {
        let g = || "site".to_string();
        let cases = [
            (
                Failure::DaemonConnectTimeout {
                    group: g(),
                    socket: "s".into(),
                    error: "e".into(),
                },
                503,
            ),
            (Failure::SocketTimeout { group: g() }, 504),
            (
                Failure::DaemonDiedBeforeHead {
                    group: g(),
                    failure: "eof".into(),
                },
                502,
            ),
            (
                Failure::DaemonSendFailed {
                    group: g(),
                    error: "e".into(),
                },
                502,
            ),
            (
                Failure::ClientBodyFailed {
                    group: g(),
                    message: "m".into(),
                    status: 413,
                },
                413,
            ),
        ];
        for (f, status) in cases {
            assert_eq!(f.disposition().status, status, "{f:?}");
        }
    }

    #[test]
    fn restricted_process_names_the_global_group() {
        let f = Failure::ProcessRestricted {
            group: String::new(),
            script: "/a.wsgi".into(),
            allowed: vec!["site".into(), String::new()],
        };
        assert_eq!(
            f.line().unwrap(),
            "RWSGI0670: process group '%{GLOBAL}' may not be used by the WSGI application \
             '/a.wsgi' (WSGIRestrictProcess allows: site, %{GLOBAL})"
        );
    }
}
