//! Every stable log id (`RWSGInnnn`) the module writes, with its level and meaning: the one
//! list `docs/troubleshooting.md` follows, and that the tests below check the code against.
//!
//! New log lines may use the constants (`format!("{}: …", log_ids::SCRIPT_LOADED)`) or the
//! literal id; either way the id must have a row here and a section in the troubleshooting
//! guide.

/// One log id: the constant's name, the id, the Apache level it is logged at (`config` for a
/// message Apache reports as a configuration error) and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogId {
    pub name: &'static str,
    pub id: &'static str,
    pub level: &'static str,
    pub meaning: &'static str,
}

macro_rules! log_ids {
    ($($name:ident = $id:literal, $level:literal, $meaning:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $name: &str = $id;
        )*
        /// Every log id, in id order.
        pub const TABLE: &[LogId] = &[
            $(LogId { name: stringify!($name), id: $id, level: $level, meaning: $meaning },)*
        ];
    };
}

log_ids! {
    INTERNAL_PANIC = "RWSGI0001", "error", "Internal error (panic) caught at an Apache entry point.";
    DIRECTIVE_PANIC = "RWSGI0002", "config", "Internal error (panic) while reading a WSGI directive.";
    MOD_WSGI_LOADED_TOO = "RWSGI0003", "crit", "mod_wsgi and mod_rwsgi are both loaded; start refused.";
    PYTHON_START_FAILED = "RWSGI0010", "crit", "Python did not start in an Apache child.";
    EXEC_CGI_OFF = "RWSGI0020", "error", "wsgi-script handler used where Options ExecCGI is off.";
    SCRIPT_NOT_FOUND = "RWSGI0021", "error", "The target WSGI script does not exist or cannot be stat()ed.";
    SCRIPT_IS_DIRECTORY = "RWSGI0022", "error", "The target WSGI script is a directory.";
    SCRIPT_NOT_REGULAR = "RWSGI0023", "error", "The target WSGI script is not a regular file.";
    TRANSFER_ENCODING_UNSUPPORTED = "RWSGI0024", "warn", "Request with a Transfer-Encoding other than chunked.";
    CHUNKED_REFUSED = "RWSGI0025", "warn", "Chunked request body while WSGIChunkedRequest is Off.";
    PYTHON_UNAVAILABLE = "RWSGI0030", "error", "Request reached a child whose Python did not start.";
    NO_DAEMON_PROCESS = "RWSGI0031", "error", "Request selects a daemon process group that does not exist.";
    GROUP_WITHOUT_PYTHON = "RWSGI0032", "error", "Application group requested while Python is not initialised.";
    INTERPRETER_LIMIT = "RWSGI0040", "error", "WSGIMaximumInterpreters reached; request answered 503.";
    INTERPRETER_SETUP_FAILED = "RWSGI0041", "error", "Setting up an application group's sub-interpreter failed.";
    INTERPRETER_UNAVAILABLE = "RWSGI0042", "error", "Request for a group whose sub-interpreter failed earlier.";
    FAILED_INTERPRETER_KEPT = "RWSGI0043", "warn", "A failed sub-interpreter still runs threads; left in memory.";
    NOT_FINALISED_FAILED_INTERPRETER = "RWSGI0044", "warn", "Python not finalised at exit because of RWSGI0043.";
    THREADS_AT_EXIT = "RWSGI0050", "warn", "An application group still has threads at child exit.";
    STOPPED_IN_REQUEST = "RWSGI0051", "warn", "Prefork child stopped during a request; Python not finalised.";
    ATEXIT_FAILED = "RWSGI0052", "warn", "Running atexit callbacks of a group failed at child exit.";
    REQUEST_INTERRUPTED = "RWSGI0053", "warn", "A running request was interrupted by a stop or restart.";
    PYTHON_STOPPED = "RWSGI0054", "info", "Python stopped at child exit, with the time it took.";
    SCRIPT_LOAD_FAILED = "RWSGI0101", "error", "Loading (importing) a WSGI script raised an exception.";
    CALLABLE_MISSING = "RWSGI0102", "error", "The WSGI script has no application object of that name.";
    REQUEST_OBJECTS_FAILED = "RWSGI0103", "error", "Creating the Python request objects failed.";
    APPLICATION_PANIC = "RWSGI0104", "error", "Internal error (panic) while running the application.";
    RELOAD_HOOK_FAILED = "RWSGI0105", "error", "The script's reload_required() hook raised.";
    APPLICATION_EXCEPTION = "RWSGI0110", "error", "The application raised an exception.";
    CLIENT_GONE = "RWSGI0111", "info", "The client closed the connection during the response.";
    SUBINTERPRETER_REFUSED = "RWSGI0120", "error", "An extension module refuses to load in a sub-interpreter.";
    SEND_FAILED = "RWSGI0150", "error", "Sending the response failed with the client still connected.";
    REQUEST_OBJECT_WAIT = "RWSGI0170", "warn", "Request end waited for another thread using its objects.";
    SIGNAL_IGNORED = "RWSGI0201", "warn", "signal.signal() call from the application ignored.";
    IMPORT_SCRIPT_NO_GROUP = "RWSGI0210", "error", "WSGIImportScript skipped: its group is unavailable.";
    IMPORT_SCRIPT_FAILED = "RWSGI0211", "error", "WSGIImportScript raised an exception.";
    IMPORT_SCRIPT_PANIC = "RWSGI0212", "error", "Internal error (panic) while running WSGIImportScript.";
    EVENT_CALLBACK_FAILED = "RWSGI0301", "error", "A mod_wsgi event callback raised.";
    EVENT_PUBLISH_FAILED = "RWSGI0302", "error", "Building or publishing a mod_wsgi event failed.";
    STATUS_SHM_FAILED = "RWSGI0400", "warn", "The shared memory for the status and metrics figures could not be created.";
    METRICS_CLIENT_GONE = "RWSGI0401", "info", "The client went away while the rwsgi-metrics page was sent.";
    INTERPRETER_CREATED = "RWSGI0420", "debug", "A sub-interpreter was created for an application group.";
    INTERPRETER_ENDED = "RWSGI0421", "debug", "A sub-interpreter was ended at child exit.";
    SCRIPT_LOADED = "RWSGI0422", "debug", "A WSGI script was loaded for the first time in an interpreter.";
    SCRIPT_RELOADED = "RWSGI0423", "debug", "A WSGI script was reloaded.";
    REQUEST_DISPATCHED = "RWSGI0424", "debug", "A request was dispatched to an application group.";
    DIRECTIVE_WITHOUT_EFFECT = "RWSGI0430", "warn", "A mod_wsgi directive is accepted, so the configuration loads, but has no effect here.";
    HOOK_SCRIPT_PANIC = "RWSGI0450", "error", "Internal error (panic) while calling a hook script function.";
    HOOK_SCRIPT_LOAD_FAILED = "RWSGI0451", "error", "An access, auth, group or dispatch script could not be loaded.";
    HOOK_FUNCTION_MISSING = "RWSGI0452", "error", "A hook script lacks the function its directive needs.";
    HOOK_FUNCTION_RAISED = "RWSGI0453", "error", "A hook script function raised or returned a value of the wrong type.";
    HOOK_NO_PYTHON = "RWSGI0454", "error", "A hook script cannot run: Python is not available in this child.";
    HOOK_NO_INTERPRETER = "RWSGI0455", "error", "A hook script cannot run: its application group is unavailable.";
    ACCESS_DENIED_BY_SCRIPT = "RWSGI0456", "error", "allow_access() of WSGIAccessScript refused the client (403).";
    HOOK_SCRIPT_NOT_CONFIGURED = "RWSGI0457", "error", "The wsgi or wsgi-group provider is used where no script is configured.";
    GROUP_CHECK_FAILED = "RWSGI0458", "error", "The user is in none of the required wsgi-group groups (refused).";
    GROUP_CHECK_NO_VERDICT = "RWSGI0459", "info", "The user is in none of the wsgi-group groups; WSGIGroupAuthoritative Off lets other Require lines decide.";
    DISPATCH_NO_INTERPRETER = "RWSGI0460", "error", "WSGIDispatchScript cannot run: its application group is unavailable.";
    DAEMON_FORK_FAILED = "RWSGI0501", "crit", "The parent could not fork a daemon process.";
    DAEMON_STARTED = "RWSGI0502", "info", "The parent started a daemon process (group and pid).";
    DAEMON_DIED = "RWSGI0503", "error", "A daemon process ended (group, pid, exit status or signal); it is replaced, with back-off if it keeps dying young.";
    DAEMON_GROUPS_NOT_STARTED = "RWSGI0504", "crit", "The daemon process groups could not be set up (their sockets); start refused.";
    DAEMON_RETIRED = "RWSGI0506", "info", "A daemon of the previous generation ended after a graceful restart.";
    DAEMON_START_FAILED = "RWSGI0510", "crit", "A daemon process could not start (user, home, limits, Python); it exits and is retried.";
    DAEMON_ACCEPT_FAILED = "RWSGI0511", "error", "A daemon process could not accept a connection.";
    DAEMON_PEER_REFUSED = "RWSGI0512", "error", "A connection to a daemon from a process other than Apache's children (SO_PEERCRED).";
    DAEMON_BAD_FRAME = "RWSGI0513", "error", "A daemon received a frame that does not parse (truncated, oversized, malformed, other version).";
    DAEMON_BAD_SECRET = "RWSGI0514", "error", "A daemon received a request without this generation's secret.";
    DAEMON_GROUP_UNAVAILABLE = "RWSGI0515", "error", "A daemon could not get the request's application group (sub-interpreter).";
    DAEMON_RECYCLES = "RWSGI0516", "info", "A daemon process recycles itself (maximum-requests, restart-interval, inactivity-timeout, cpu-time-limit, request-timeout).";
    DAEMON_QUEUE_TIMEOUT = "RWSGI0517", "error", "A request waited longer than queue-timeout for a daemon thread; answered 504.";
    DAEMON_REQUEST_TIMEOUT = "RWSGI0518", "error", "A request ran longer than request-timeout allows; its daemon process restarts.";
    DAEMON_REQUEST_INTERRUPTED = "RWSGI0519", "info", "A request ran longer than request-timeout allows; mod_wsgi.RequestTimeout was raised in it (interrupt-timeout).";
    DAEMON_DEADLOCK = "RWSGI0520", "error", "A daemon's GIL was not free for deadlock-timeout seconds; the process ends and is replaced.";
    DAEMON_OTHER_VHOST = "RWSGI0530", "error", "A request names a daemon group defined in another virtual host; answered 500.";
    DAEMON_CONNECT_FAILED = "RWSGI0531", "error", "An Apache child could not connect to its daemon group within connect-timeout; answered 503.";
    DAEMON_SEND_FAILED = "RWSGI0532", "error", "Sending the request head to a daemon failed; answered 502.";
    DAEMON_CLIENT_BODY_FAILED = "RWSGI0533", "info", "Reading the client's request body for a daemon failed.";
    DAEMON_RELAY_FAILED = "RWSGI0534", "error", "Apache's output filters failed while relaying a daemon's response.";
    DAEMON_SOCKET_TIMEOUT = "RWSGI0535", "error", "A daemon sent no response within socket-timeout; answered 504.";
    DAEMON_FAILED = "RWSGI0536", "error", "A daemon closed the connection or sent garbage: 502 before the response head, a cut response after it.";
    DAEMON_HEADER_TOO_LONG = "RWSGI0537", "error", "A daemon's response header line exceeds header-buffer-size; answered 500.";
    DAEMON_SCRIPT_REFUSED = "RWSGI0538", "error", "The script or its directory fails script-user=/script-group= (owner, or writable by others); answered 403.";
    DAEMON_RETRY = "RWSGI0540", "debug", "A pooled daemon connection had been given up by its daemon before it took the request; the request went again on a new connection.";
    DAEMON_IDLE_SWEPT = "RWSGI0545", "debug", "A daemon process gave up connections idle longer than their Apache child keeps one in its pool.";
    DAEMON_SERVICE_ONLY = "RWSGI0560", "error", "A request was routed to a threads=0 (service-script) daemon group, which serves no requests; answered 503.";
    DAEMON_READY = "RWSGI0580", "info", "A daemon process started Python and its import scripts and takes requests.";
    DAEMON_STARTUP_TIMEOUT = "RWSGI0590", "warn", "No WSGI script loaded in a daemon process within startup-timeout of its first request; the process stops and is replaced.";
    DAEMON_FINALIZE_TIMEOUT = "RWSGI0591", "warn", "Python's finalisation in an ending daemon process (atexit, process_stopping) outlasted shutdown-timeout; the process exits without it.";
    REQUEST_TIMEOUT_504 = "RWSGI0600", "info", "The app raised mod_wsgi.RequestTimeout before its response started: 504.";
    REQUEST_TIMEOUT_CUT = "RWSGI0601", "info", "The app raised mod_wsgi.RequestTimeout after its response started: cut short.";
    MOD_WSGI_PACKAGE_FAILED = "RWSGI0620", "error", "Looking for a mod_wsgi package on sys.path failed; the mod_wsgi module has no submodules.";
    STATUS_DAEMON_SLOTS_FULL = "RWSGI0660", "warn", "More daemon processes are configured than the figures table has daemon slots; the rest are not shown.";
    PROCESS_GROUP_RESTRICTED = "RWSGI0670", "error", "The request's process group is not in WSGIRestrictProcess for its location; answered 500.";
    EMBEDDED_RESTRICTED = "RWSGI0671", "error", "A request would run embedded while WSGIRestrictEmbedded is On; answered 500.";
    CHILD_WITHOUT_PYTHON = "RWSGI0672", "info", "WSGIRestrictEmbedded On and nothing else needs Python in the Apache children: it is not started there.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every source file under `dir` (Rust, C and headers), recursively.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "c" || x == "h")
            {
                out.push(p);
            }
        }
    }

    /// Every `RWSGInnnn` in `text`.
    fn ids_in(text: &str) -> Vec<String> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(at) = text[i..].find("RWSGI") {
            let start = i + at;
            let digits = &b[start + 5..(start + 9).min(b.len())];
            if digits.len() == 4 && digits.iter().all(u8::is_ascii_digit) {
                out.push(text[start..start + 9].to_string());
            }
            i = start + 5;
        }
        out
    }

    /// (path, text) of the code outside this table: src/ and apache/.
    fn code() -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        sources(&repo().join("src"), &mut files);
        sources(&repo().join("apache"), &mut files);
        let me = repo().join("src/log_ids.rs");
        files
            .into_iter()
            .filter(|p| *p != me)
            .map(|p| {
                let t = std::fs::read_to_string(&p).unwrap();
                (p, t)
            })
            .collect()
    }

    #[test]
    fn table_is_well_formed() {
        let mut seen = BTreeSet::new();
        let mut last = "";
        for e in TABLE {
            assert_eq!(ids_in(e.id), vec![e.id.to_string()], "{e:?}");
            assert!(seen.insert(e.id), "{} twice", e.id);
            assert!(e.id > last, "{} out of order", e.id);
            last = e.id;
            assert!(
                ["config", "crit", "error", "warn", "info", "debug"].contains(&e.level),
                "{e:?}"
            );
        }
    }

    #[test]
    fn every_id_in_the_code_is_in_the_table() {
        for (path, text) in code() {
            for id in ids_in(&text) {
                assert!(
                    TABLE.iter().any(|e| e.id == id),
                    "{id} in {} has no row in src/log_ids.rs",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn every_table_id_is_used_by_the_code() {
        let code = code();
        for e in TABLE {
            let by_name = format!("log_ids::{}", e.name);
            assert!(
                code.iter()
                    .any(|(_, t)| t.contains(e.id) || t.contains(&by_name)),
                "{} ({}) is in the table but no code logs it",
                e.id,
                e.name
            );
        }
    }
}
