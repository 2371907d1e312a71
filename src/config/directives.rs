//! The directive table as data (name, where it may appear, help) and the pure setters.

use super::alias::{self, AliasMatch, ScriptAlias};
use super::proxy;
pub use super::python::apply as apply_python;
use super::scripts;
use super::{DirConfig, MapHeadToGet, ServerConfig, parse_on_off};
use std::ffi::CStr;

/// Where a directive may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Main server only, outside `<VirtualHost>` (mod_wsgi's `GLOBAL_ONLY`).
    Global,
    /// Main server and `<VirtualHost>`.
    ServerVhost,
    /// Server, vhost, `<Directory>`/`<Location>`.
    Dir,
    /// As `Dir`, plus `.htaccess` under `AllowOverride FileInfo`.
    DirFileInfo,
    /// `<Directory>`/`<Location>` and `.htaccess` under `AllowOverride AuthConfig`, not
    /// the server level (mod_wsgi's `OR_AUTHCFG`).
    AuthConfig,
}

/// Which directive a table row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    ScriptAlias,
    ScriptAliasMatch,
    CallableObject,
    PassAuthorization,
    ChunkedRequest,
    MapHeadToGet,
    ApplicationGroup,
    ProcessGroup,
    ScriptReloading,
    EnableSendfile,
    DaemonProcess,
    PythonHome,
    PythonPath,
    PythonOptimize,
    PythonHashSeed,
    PythonWarnings,
    DontWriteBytecode,
    PythonEggs,
    SwitchInterval,
    RestrictStdin,
    RestrictStdout,
    RestrictSignal,
    CaseSensitivity,
    ImportScript,
    LazyInitialization,
    DestroyInterpreter,
    ServerMetrics,
    MaximumInterpreters,
    AccessScript,
    AuthUserScript,
    AuthGroupScript,
    GroupAuthoritative,
    DispatchScript,
    HandlerScript,
    ErrorOverride,
    IgnoreActivity,
    PassApacheRequest,
    TrustedProxyHeaders,
    TrustedProxies,
    VerboseDebugging,
    PerInterpreterGil,
    FreeThreading,
    TelemetryService,
    SlowRequests,
    TelemetryOptions,
    NewRelicConfigFile,
    NewRelicEnvironment,
    InterpreterOptions,
    SocketPrefix,
    SocketRotation,
    AcceptMutex,
    RestrictProcess,
    RestrictEmbedded,
}

impl Id {
    /// True for the directives kept in `ServerConfig::python` / `import_scripts`.
    pub fn is_python_runtime(self) -> bool {
        matches!(
            self,
            Id::PythonHome
                | Id::PythonPath
                | Id::PythonOptimize
                | Id::PythonHashSeed
                | Id::PythonWarnings
                | Id::DontWriteBytecode
                | Id::PythonEggs
                | Id::SwitchInterval
                | Id::RestrictStdin
                | Id::RestrictStdout
                | Id::RestrictSignal
                | Id::CaseSensitivity
                | Id::ImportScript
                | Id::LazyInitialization
                | Id::DestroyInterpreter
                | Id::ServerMetrics
                | Id::MaximumInterpreters
        )
    }

    /// True for the directives accepted for compatibility only (see `compat`).
    pub fn is_compat(self) -> bool {
        matches!(
            self,
            Id::VerboseDebugging
                | Id::PerInterpreterGil
                | Id::FreeThreading
                | Id::TelemetryService
                | Id::SlowRequests
                | Id::TelemetryOptions
                | Id::NewRelicConfigFile
                | Id::NewRelicEnvironment
                | Id::AcceptMutex
        )
    }

    /// True for the daemon-mode directives kept in `ServerConfig::daemon`.
    pub fn is_daemon_setting(self) -> bool {
        matches!(
            self,
            Id::SocketPrefix | Id::SocketRotation | Id::RestrictEmbedded
        )
    }
}

/// One directive of the table.
pub struct Spec {
    pub name: &'static CStr,
    pub id: Id,
    pub scope: Scope,
    pub help: &'static CStr,
}

/// Every directive mod_rwsgi accepts.
pub const TABLE: &[Spec] = &[
    Spec {
        name: c"WSGIScriptAlias",
        id: Id::ScriptAlias,
        scope: Scope::ServerVhost,
        help: c"Map a URL prefix to a WSGI script file or directory, with optional \
                process-group=, application-group=, callable-object=, pass-authorization=",
    },
    Spec {
        name: c"WSGIScriptAliasMatch",
        id: Id::ScriptAliasMatch,
        scope: Scope::ServerVhost,
        help: c"Map URLs matching a regular expression to a WSGI script file or directory",
    },
    Spec {
        name: c"WSGICallableObject",
        id: Id::CallableObject,
        scope: Scope::DirFileInfo,
        help: c"Name of the WSGI application object in the script (default: application)",
    },
    Spec {
        name: c"WSGIPassAuthorization",
        id: Id::PassAuthorization,
        scope: Scope::DirFileInfo,
        help: c"On|Off: pass the Authorization header to the application",
    },
    Spec {
        name: c"WSGIChunkedRequest",
        id: Id::ChunkedRequest,
        scope: Scope::DirFileInfo,
        help: c"On|Off: accept request bodies with Transfer-Encoding: chunked",
    },
    Spec {
        name: c"WSGIMapHEADToGET",
        id: Id::MapHeadToGet,
        scope: Scope::DirFileInfo,
        help: c"On|Off|Auto: present HEAD requests to the application as GET",
    },
    Spec {
        name: c"WSGIApplicationGroup",
        id: Id::ApplicationGroup,
        scope: Scope::Dir,
        help: c"Interpreter to run the application in: a name, %{GLOBAL}, %{SERVER}, \
                %{HOST}, %{RESOURCE} or %{ENV:var}",
    },
    Spec {
        name: c"WSGIProcessGroup",
        id: Id::ProcessGroup,
        scope: Scope::Dir,
        help: c"Daemon process group to delegate to, or %{GLOBAL} for embedded mode",
    },
    Spec {
        name: c"WSGIScriptReloading",
        id: Id::ScriptReloading,
        scope: Scope::DirFileInfo,
        help: c"On|Off: reload a WSGI script when its modification time changes",
    },
    Spec {
        name: c"WSGIDaemonProcess",
        id: Id::DaemonProcess,
        scope: Scope::ServerVhost,
        help: c"name [option=value ...]: define a daemon process group",
    },
    Spec {
        name: c"WSGIEnableSendfile",
        id: Id::EnableSendfile,
        scope: Scope::DirFileInfo,
        help: c"On|Off: send wsgi.file_wrapper files with sendfile even where EnableSendfile is Off",
    },
    Spec {
        name: c"WSGIPythonHome",
        id: Id::PythonHome,
        scope: Scope::Global,
        help: c"Python installation prefix or virtual environment directory for the embedded Python",
    },
    Spec {
        name: c"WSGIPythonPath",
        id: Id::PythonPath,
        scope: Scope::Global,
        help: c"dir[:dir...]: directories added with site.addsitedir() in every interpreter (.pth files honoured)",
    },
    Spec {
        name: c"WSGIPythonOptimize",
        id: Id::PythonOptimize,
        scope: Scope::Global,
        help: c"0|1|2: Python optimisation level, as python -O / -OO",
    },
    Spec {
        name: c"WSGIPythonHashSeed",
        id: Id::PythonHashSeed,
        scope: Scope::Global,
        help: c"random|0..4294967295: seed for str/bytes hashing, as PYTHONHASHSEED",
    },
    Spec {
        name: c"WSGIPythonWarnings",
        id: Id::PythonWarnings,
        scope: Scope::Global,
        help: c"A warning filter, as python -W action:message:category:module:lineno (repeatable)",
    },
    Spec {
        name: c"WSGIDontWriteBytecode",
        id: Id::DontWriteBytecode,
        scope: Scope::Global,
        help: c"On|Off: do not write .pyc files, as python -B",
    },
    Spec {
        name: c"WSGIPythonEggs",
        id: Id::PythonEggs,
        scope: Scope::Global,
        help: c"Directory for PYTHON_EGG_CACHE",
    },
    Spec {
        name: c"WSGISwitchInterval",
        id: Id::SwitchInterval,
        scope: Scope::Global,
        help: c"Seconds between Python thread switches (sys.setswitchinterval), a positive number",
    },
    Spec {
        name: c"WSGIRestrictStdin",
        id: Id::RestrictStdin,
        scope: Scope::Global,
        help: c"On|Off: make any use of sys.stdin raise OSError",
    },
    Spec {
        name: c"WSGIRestrictStdout",
        id: Id::RestrictStdout,
        scope: Scope::Global,
        help: c"On|Off: make any use of sys.stdout raise OSError (Off: it goes to the error log)",
    },
    Spec {
        name: c"WSGIRestrictSignal",
        id: Id::RestrictSignal,
        scope: Scope::Global,
        help: c"On|Off: ignore (and log) signal.signal() calls from applications (default On)",
    },
    Spec {
        name: c"WSGICaseSensitivity",
        id: Id::CaseSensitivity,
        scope: Scope::Global,
        help: c"On|Off: treat script paths as case-sensitive for module names and %{RESOURCE}",
    },
    Spec {
        name: c"WSGIImportScript",
        id: Id::ImportScript,
        scope: Scope::ServerVhost,
        help: c"path process-group=%{GLOBAL} application-group=GROUP: load a script when each process starts",
    },
    Spec {
        name: c"WSGILazyInitialization",
        id: Id::LazyInitialization,
        scope: Scope::Global,
        help: c"On|Off: accepted for old configurations; Python always starts in each child",
    },
    Spec {
        name: c"WSGIDestroyInterpreter",
        id: Id::DestroyInterpreter,
        scope: Scope::Global,
        help: c"On|Off: end the interpreters and Py_Finalize at child exit (default On)",
    },
    Spec {
        name: c"WSGIServerMetrics",
        id: Id::ServerMetrics,
        scope: Scope::Global,
        help: c"On|Off: accepted; embedded code may always call mod_wsgi.server_metrics(), daemon groups use server-metrics=",
    },
    Spec {
        name: c"WSGIMaximumInterpreters",
        id: Id::MaximumInterpreters,
        scope: Scope::Global,
        help: c"N: most Python sub-interpreters (application groups other than %{GLOBAL}) one process creates; past it requests get 503 (default 100)",
    },
    Spec {
        name: c"WSGIAccessScript",
        id: Id::AccessScript,
        scope: Scope::AuthConfig,
        help: c"path [application-group=]: script whose allow_access(environ, host) admits \
                or refuses the client",
    },
    Spec {
        name: c"WSGIAuthUserScript",
        id: Id::AuthUserScript,
        scope: Scope::AuthConfig,
        help: c"path [application-group=]: script for the authn provider 'wsgi' \
                (check_password, get_realm_hash)",
    },
    Spec {
        name: c"WSGIAuthGroupScript",
        id: Id::AuthGroupScript,
        scope: Scope::AuthConfig,
        help: c"path [application-group=]: script for 'Require wsgi-group' (groups_for_user)",
    },
    Spec {
        name: c"WSGIGroupAuthoritative",
        id: Id::GroupAuthoritative,
        scope: Scope::AuthConfig,
        help: c"On|Off: Off lets other Require lines decide when the user is in none of the \
                wsgi-group groups (default On)",
    },
    Spec {
        name: c"WSGIDispatchScript",
        id: Id::DispatchScript,
        scope: Scope::Dir,
        help: c"path [application-group=]: script whose process_group, application_group and \
                callable_object functions choose them per request",
    },
    Spec {
        name: c"WSGIHandlerScript",
        id: Id::HandlerScript,
        scope: Scope::Dir,
        help: c"name path [process-group=] [application-group=] [pass-authorization=]: an \
                Apache handler (SetHandler name) served by handle_request in the script",
    },
    Spec {
        name: c"WSGIErrorOverride",
        id: Id::ErrorOverride,
        scope: Scope::DirFileInfo,
        help: c"On|Off: let Apache's ErrorDocument replace a daemon mode application's 4xx/5xx page",
    },
    Spec {
        name: c"WSGIIgnoreActivity",
        id: Id::IgnoreActivity,
        scope: Scope::DirFileInfo,
        help: c"On|Off: requests here do not reset a daemon process group's inactivity-timeout",
    },
    Spec {
        name: c"WSGIPassApacheRequest",
        id: Id::PassApacheRequest,
        scope: Scope::Dir,
        help: c"On|Off: put the Apache request_rec in the environ as apache.request_rec (a PyCapsule)",
    },
    Spec {
        name: c"WSGITrustedProxyHeaders",
        id: Id::TrustedProxyHeaders,
        scope: Scope::DirFileInfo,
        help: c"Proxy headers to honour, e.g. X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto",
    },
    Spec {
        name: c"WSGITrustedProxies",
        id: Id::TrustedProxies,
        scope: Scope::DirFileInfo,
        help: c"IP addresses or networks of the proxies whose WSGITrustedProxyHeaders are honoured",
    },
    Spec {
        name: c"WSGIVerboseDebugging",
        id: Id::VerboseDebugging,
        scope: Scope::Global,
        help: c"On|Off: deprecated and without effect; use LogLevel wsgi:debug",
    },
    Spec {
        name: c"WSGIPerInterpreterGIL",
        id: Id::PerInterpreterGil,
        scope: Scope::Global,
        help: c"On|Off: give each sub-interpreter its own GIL (Python 3.12+)",
    },
    Spec {
        name: c"WSGIFreeThreading",
        id: Id::FreeThreading,
        scope: Scope::Global,
        help: c"On|Off: run without the GIL on a free-threaded Python build",
    },
    Spec {
        name: c"WSGITelemetryService",
        id: Id::TelemetryService,
        scope: Scope::Global,
        help: c"unix:/path [interval=SECONDS]: push telemetry to a metrics ingester",
    },
    Spec {
        name: c"WSGISlowRequests",
        id: Id::SlowRequests,
        scope: Scope::Global,
        help: c"Seconds after which an in-flight request is reported to the telemetry service",
    },
    Spec {
        name: c"WSGITelemetryOptions",
        id: Id::TelemetryOptions,
        scope: Scope::Global,
        help: c"[+|-]CaptureUserAgent ... | None | All: optional telemetry captures",
    },
    Spec {
        name: c"WSGINewRelicConfigFile",
        id: Id::NewRelicConfigFile,
        scope: Scope::Global,
        help: c"New Relic agent configuration file (mod_wsgi 4.x; not supported)",
    },
    Spec {
        name: c"WSGINewRelicEnvironment",
        id: Id::NewRelicEnvironment,
        scope: Scope::Global,
        help: c"New Relic agent environment name (mod_wsgi 4.x; not supported)",
    },
    Spec {
        name: c"WSGISocketPrefix",
        id: Id::SocketPrefix,
        scope: Scope::Global,
        help: c"Path prefix (relative to ServerRoot) of the daemon process groups' sockets",
    },
    Spec {
        name: c"WSGISocketRotation",
        id: Id::SocketRotation,
        scope: Scope::Global,
        help: c"On|Off: give the daemon sockets new names at each restart (On) or keep them",
    },
    Spec {
        name: c"WSGIAcceptMutex",
        id: Id::AcceptMutex,
        scope: Scope::Global,
        help: c"default|flock|fcntl|sysvsem|posixsem|pthread: daemon accept lock (no effect here)",
    },
    Spec {
        name: c"WSGIRestrictProcess",
        id: Id::RestrictProcess,
        scope: Scope::Dir,
        help: c"group ...: the process groups (%{GLOBAL}: embedded) requests here may run in",
    },
    Spec {
        name: c"WSGIRestrictEmbedded",
        id: Id::RestrictEmbedded,
        scope: Scope::Global,
        help: c"On|Off: refuse requests that would run embedded in the Apache children",
    },
    Spec {
        name: c"<WSGIInterpreterOptions",
        id: Id::InterpreterOptions,
        scope: Scope::Global,
        help: c"<WSGIInterpreterOptions [process-group=G] [application-group=A]>: settings for matching interpreters",
    },
];

/// The daemon process groups usable where a directive is read: the main server's and, inside
/// a `<VirtualHost>`, that host's own.
pub struct Known<'a> {
    pub daemon_groups: &'a [String],
    /// Those of them with `threads=0`, which run service scripts and serve no requests.
    pub service_groups: &'a [String],
}

fn check_process_group(directive: &str, group: &str, known: &Known<'_>) -> Result<(), String> {
    if group.is_empty() {
        return Err(format!("{directive}: the process group name is empty"));
    }
    if group == "%{GLOBAL}" || super::expand::is_dynamic(group) {
        return Ok(());
    }
    if known.service_groups.iter().any(|g| g == group) {
        return Err(format!(
            "{directive}: daemon process group '{group}' has threads=0: it only runs its \
             WSGIImportScript service scripts and cannot serve requests"
        ));
    }
    if known.daemon_groups.iter().any(|g| g == group) {
        Ok(())
    } else {
        Err(format!(
            "{directive}: no WSGI daemon process called '{group}' has been configured \
             (define it with WSGIDaemonProcess before this line, or use %{{GLOBAL}})"
        ))
    }
}

fn one<'a>(name: &str, args: &[&'a str]) -> Result<&'a str, String> {
    match args {
        [v] => Ok(v),
        _ => Err(format!("{name} takes one argument")),
    }
}

/// Applies a server-scope directive. `compile` turns a regex into an opaque handle.
pub fn apply_server(
    id: Id,
    name: &str,
    args: &[&str],
    conf: &mut ServerConfig,
    known: &Known<'_>,
    compile: &mut dyn FnMut(&str) -> Result<usize, String>,
) -> Result<(), String> {
    if id == Id::DaemonProcess {
        let group = super::daemon::parse(name, args)?;
        if known.daemon_groups.contains(&group.name) {
            return Err(format!(
                "{name}: a daemon process group called '{}' is already defined; names must be \
                 unique across the server",
                group.name
            ));
        }
        conf.daemon_groups.push(group);
        return Ok(());
    }
    if args.len() < 2 {
        return Err(format!(
            "{name} needs a URL and a script path, then optional key=value options"
        ));
    }
    let options = alias::parse_options(name, &args[2..])?;
    if let Some(pg) = &options.process_group {
        check_process_group(&format!("{name} process-group="), pg, known)?;
    }
    let matcher = match id {
        Id::ScriptAlias => {
            if !args[0].starts_with('/') {
                return Err(format!(
                    "{name}: the URL path '{}' must start with '/'",
                    args[0]
                ));
            }
            AliasMatch::Prefix(alias::normalise_prefix(args[0]))
        }
        Id::ScriptAliasMatch => AliasMatch::Regex {
            pattern: args[0].to_string(),
            compiled: compile(args[0]).map_err(|e| format!("{name}: {e}"))?,
        },
        _ => return Err(format!("{name} is not a server directive")),
    };
    conf.aliases.push(ScriptAlias {
        matcher,
        target: args[1].to_string(),
        options,
    });
    Ok(())
}

/// Applies `WSGISocketPrefix`, `WSGISocketRotation` or `WSGIRestrictEmbedded`.
/// `resolve` makes a path absolute against ServerRoot.
pub fn apply_daemon_setting(
    id: Id,
    name: &str,
    args: &[&str],
    conf: &mut super::DaemonSettings,
    resolve: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let v = one(name, args)?;
    match id {
        Id::SocketRotation => conf.socket_rotation = Some(parse_on_off(name, v)?),
        Id::RestrictEmbedded => conf.restrict_embedded = Some(parse_on_off(name, v)?),
        Id::SocketPrefix => conf.socket_prefix = Some(socket_prefix(name, v, resolve)?),
        _ => return Err(format!("{name} is not a daemon-mode server directive")),
    }
    Ok(())
}

/// A socket prefix made absolute; its directory must exist, as the sockets are made there.
fn socket_prefix(name: &str, v: &str, resolve: &dyn Fn(&str) -> String) -> Result<String, String> {
    if v.is_empty() {
        return Err(format!("{name}: the prefix is empty"));
    }
    let full = resolve(v);
    // "run/" names files in run itself; "run/wsgi" files starting with "wsgi" in run.
    let path = std::path::Path::new(&full);
    let dir = if full.ends_with('/') {
        path
    } else {
        path.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("/"))
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(full),
        Ok(_) => Err(format!(
            "{name}: '{}' (the directory of the socket prefix '{full}') is not a directory",
            dir.display()
        )),
        Err(e) => Err(format!(
            "{name}: the directory '{}' of the socket prefix '{full}' is not usable: {e}",
            dir.display()
        )),
    }
}

/// Applies a per-directory directive.
pub fn apply_dir(
    id: Id,
    name: &str,
    args: &[&str],
    conf: &mut DirConfig,
    known: &Known<'_>,
) -> Result<(), String> {
    match id {
        Id::AccessScript => {
            conf.access_script = Some(scripts::parse_hook_script(name, args)?);
            return Ok(());
        }
        Id::AuthUserScript => {
            conf.auth_user_script = Some(scripts::parse_hook_script(name, args)?);
            return Ok(());
        }
        Id::AuthGroupScript => {
            conf.auth_group_script = Some(scripts::parse_hook_script(name, args)?);
            return Ok(());
        }
        Id::DispatchScript => {
            conf.dispatch_script = Some(scripts::parse_hook_script(name, args)?);
            return Ok(());
        }
        Id::HandlerScript => {
            let h = scripts::parse_handler_script(name, args)?;
            if let Some(pg) = &h.options.process_group {
                check_process_group(&format!("{name} process-group="), pg, known)?;
            }
            conf.handler_scripts.retain(|o| o.name != h.name);
            conf.handler_scripts.insert(0, h);
            return Ok(());
        }
        // Lists: further lines of the same scope add to the list, as in mod_wsgi.
        Id::RestrictProcess => {
            if args.is_empty() {
                return Err(format!(
                    "{name} needs one or more process group names (%{{GLOBAL}}: embedded)"
                ));
            }
            let list = conf.restrict_process.get_or_insert_with(Vec::new);
            for a in args {
                list.push(if *a == "%{GLOBAL}" {
                    String::new()
                } else {
                    a.to_string()
                });
            }
            return Ok(());
        }
        Id::TrustedProxyHeaders => {
            let list = proxy::parse_headers(name, args)?;
            conf.trusted_proxy_headers
                .get_or_insert_with(Vec::new)
                .extend(list);
            return Ok(());
        }
        Id::TrustedProxies => {
            let list = proxy::parse_proxies(name, args)?;
            conf.trusted_proxies
                .get_or_insert_with(Vec::new)
                .extend(list);
            return Ok(());
        }
        _ => {}
    }
    let v = one(name, args)?;
    match id {
        Id::GroupAuthoritative => conf.group_authoritative = Some(parse_on_off(name, v)?),
        Id::CallableObject => {
            if v.is_empty() {
                return Err(format!("{name}: the name is empty"));
            }
            conf.callable_object = Some(v.to_string())
        }
        Id::PassAuthorization => conf.pass_authorization = Some(parse_on_off(name, v)?),
        Id::ChunkedRequest => conf.chunked_request = Some(parse_on_off(name, v)?),
        Id::ScriptReloading => conf.script_reloading = Some(parse_on_off(name, v)?),
        Id::EnableSendfile => conf.enable_sendfile = Some(parse_on_off(name, v)?),
        Id::MapHeadToGet => {
            conf.map_head_to_get = Some(match v.to_ascii_lowercase().as_str() {
                "on" => MapHeadToGet::On,
                "off" => MapHeadToGet::Off,
                "auto" => MapHeadToGet::Auto,
                _ => return Err(format!("{name}: '{v}' is not valid; use On, Off or Auto")),
            })
        }
        Id::ErrorOverride => conf.error_override = Some(parse_on_off(name, v)?),
        Id::IgnoreActivity => conf.ignore_activity = Some(parse_on_off(name, v)?),
        Id::PassApacheRequest => conf.pass_apache_request = Some(parse_on_off(name, v)?),
        Id::ApplicationGroup => conf.application_group = Some(v.to_string()),
        Id::ProcessGroup => {
            check_process_group(name, v, known)?;
            conf.process_group = Some(v.to_string())
        }
        _ => return Err(format!("{name} is not a per-directory directive")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Known<'static> = Known {
        daemon_groups: &[],
        service_groups: &[],
    };

    #[test]
    fn daemon_settings_and_restrict_process() {
        let mut c = super::super::DaemonSettings::default();
        assert!(c.rotation() && !c.embedded_restricted());
        let root = |p: &str| format!("/tmp/{p}");
        apply_daemon_setting(Id::SocketPrefix, "P", &["wsgi"], &mut c, &root).unwrap();
        assert_eq!(c.socket_prefix.as_deref(), Some("/tmp/wsgi"));
        let e = apply_daemon_setting(Id::SocketPrefix, "P", &["nodir/x"], &mut c, &root);
        assert!(e.unwrap_err().contains("/tmp/nodir"));
        apply_daemon_setting(Id::SocketRotation, "R", &["off"], &mut c, &root).unwrap();
        apply_daemon_setting(Id::RestrictEmbedded, "E", &["On"], &mut c, &root).unwrap();
        assert!(!c.rotation() && c.embedded_restricted());
        assert!(apply_daemon_setting(Id::SocketRotation, "R", &["2"], &mut c, &root).is_err());
        let mut d = DirConfig::default();
        apply_dir(Id::RestrictProcess, "W", &["a", "%{GLOBAL}"], &mut d, &NONE).unwrap();
        apply_dir(Id::RestrictProcess, "W", &["b"], &mut d, &NONE).unwrap();
        assert_eq!(
            d.restrict_process,
            Some(vec!["a".into(), "".into(), "b".into()])
        );
        assert!(apply_dir(Id::RestrictProcess, "W", &[], &mut d, &NONE).is_err());
    }

    #[test]
    fn script_alias() {
        let mut c = ServerConfig::default();
        let mut no_regex = |_: &str| -> Result<usize, String> { unreachable!() };
        apply_server(
            Id::ScriptAlias,
            "WSGIScriptAlias",
            &["/app/", "/x.wsgi"],
            &mut c,
            &NONE,
            &mut no_regex,
        )
        .unwrap();
        assert_eq!(c.aliases[0].matcher, AliasMatch::Prefix("/app".into()));
        let e = apply_server(
            Id::ScriptAlias,
            "WSGIScriptAlias",
            &["/a"],
            &mut c,
            &NONE,
            &mut no_regex,
        )
        .unwrap_err();
        assert!(e.contains("needs a URL"));
        let e = apply_server(
            Id::ScriptAlias,
            "WSGIScriptAlias",
            &["/a", "/x", "process-group=nope"],
            &mut c,
            &NONE,
            &mut no_regex,
        )
        .unwrap_err();
        assert!(e.contains("no WSGI daemon process called 'nope'"), "{e}");
        apply_server(
            Id::ScriptAlias,
            "WSGIScriptAlias",
            &["/a", "/x", "process-group=%{GLOBAL}"],
            &mut c,
            &NONE,
            &mut no_regex,
        )
        .unwrap();
        let mut bad_regex = |_: &str| Err("bad regex".to_string());
        let e = apply_server(
            Id::ScriptAliasMatch,
            "M",
            &["(", "/x"],
            &mut c,
            &NONE,
            &mut bad_regex,
        )
        .unwrap_err();
        assert_eq!(e, "M: bad regex");
    }

    #[test]
    fn dir_directives() {
        let mut d = DirConfig::default();
        apply_dir(
            Id::MapHeadToGet,
            "WSGIMapHEADToGET",
            &["auto"],
            &mut d,
            &NONE,
        )
        .unwrap();
        assert_eq!(d.map_head_to_get, Some(MapHeadToGet::Auto));
        assert!(apply_dir(Id::MapHeadToGet, "WSGIMapHEADToGET", &["x"], &mut d, &NONE).is_err());
        assert!(apply_dir(Id::ChunkedRequest, "C", &["On", "Off"], &mut d, &NONE).is_err());
        assert!(apply_dir(Id::ProcessGroup, "P", &["grp"], &mut d, &NONE).is_err());
        apply_dir(Id::ProcessGroup, "P", &["%{ENV:X}"], &mut d, &NONE).unwrap();
        let known = Known {
            daemon_groups: &["grp".to_string(), "svc".to_string()],
            service_groups: &["svc".to_string()],
        };
        apply_dir(Id::ProcessGroup, "P", &["grp"], &mut d, &known).unwrap();
        let e = apply_dir(Id::ProcessGroup, "P", &["svc"], &mut d, &known).unwrap_err();
        assert!(e.contains("'svc' has threads=0"), "{e}");
    }
}
