//! The WSGI request, shared by both transports: `translate_name` maps script aliases to
//! files; the content handler checks the request, collects its facts, routes it
//! (`route`) and runs it embedded (`embedded`) or hands it to its daemon process group
//! (`daemon::client`).

pub mod auth;
pub mod dispatch;
pub mod embedded;
pub mod facts;
pub mod route;

use crate::config::alias::{self, AliasMatch};
use crate::config::expand::ExpandContext;
use crate::config::{
    DirConfig, HandlerScript, HookScript, MapHeadToGet, ScriptAlias, ServerConfig, expand,
};
use crate::httpd::config_store;
use crate::httpd::log;
use crate::httpd::request::{FileKind, Request};
use crate::python::environ::ModWsgiFacts;
use crate::python::interp::{self, GroupError, Interp};
use crate::python::{self, app};
use crate::sys;
use crate::wsgi::failure::Failure;
use crate::wsgi::gateway::RequestLog;

/// The handler names that mean "run this as a WSGI script".
pub const HANDLER_NAMES: [&[u8]; 2] = [b"wsgi-script", b"application/x-httpd-wsgi"];

/// Matches a compiled regex alias: the substituted target and where the match ended.
pub type RegexMatcher<'a> = &'a dyn Fn(usize, &str, &[u8]) -> Option<(Vec<u8>, usize)>;

/// Maps the request URI through the script aliases (see [`translate_name`]).
pub fn map_uri<'a>(
    conf: &'a ServerConfig,
    uri: &[u8],
    regex: RegexMatcher<'_>,
) -> Option<(&'a ScriptAlias, Vec<u8>)> {
    for a in &conf.aliases {
        match &a.matcher {
            AliasMatch::Prefix(p) => {
                if let Some(n) = alias::match_prefix(p, uri) {
                    let mut f = a.target.as_bytes().to_vec();
                    f.extend_from_slice(&uri[n..]);
                    return Some((a, f));
                }
            }
            AliasMatch::Regex { compiled, .. } => {
                if let Some((mut target, end)) = regex(*compiled, &a.target, uri) {
                    target.extend_from_slice(&uri[end..]);
                    return Some((a, target));
                }
            }
        }
    }
    None
}

/// `translate_name` hook.
pub fn translate_name(r: Request<'_>) -> i32 {
    let conf = config_store::request_server_config(&r);
    if conf.aliases.is_empty() {
        return sys::DECLINED;
    }
    let uri = r.uri();
    if !uri.starts_with(b"/") {
        return sys::DECLINED;
    }
    let regex = |re: usize, target: &str, uri: &[u8]| {
        crate::httpd::regex::regex_substitute(r, re, target, uri)
    };
    match map_uri(conf, uri, &regex) {
        Some((a, filename)) => {
            r.set_filename(&filename);
            r.set_handler(c"wsgi-script");
            config_store::remember_alias(&r, a);
            sys::OK as i32
        }
        None => sys::DECLINED,
    }
}

/// The handler name that serves the figures in the OpenMetrics / Prometheus text format.
pub const METRICS_HANDLER: &[u8] = b"rwsgi-metrics";

/// The content handler.
pub fn handle(r: Request<'_>) -> i32 {
    let dir = config_store::request_dir_config(&r);
    let target = match r.handler() {
        Some(h) if HANDLER_NAMES.contains(&h) => Target::Script(config_store::matched_alias(&r)),
        Some(METRICS_HANDLER) => return crate::httpd::status::serve_metrics(r),
        Some(h) => match dir.handler_scripts.iter().find(|s| s.name.as_bytes() == h) {
            Some(s) => Target::Handler(s),
            None => return sys::DECLINED,
        },
        None => return sys::DECLINED,
    };
    // A handler script serves whatever URL its handler is set for (the request's file need
    // not exist), as under mod_wsgi.
    if let Target::Script(alias) = target {
        if let Some(f) = check_script_file(r, alias.is_some()) {
            return log::refuse(&r, &f);
        }
    }
    if let Some(f) = check_body_framing(r, dir) {
        return log::refuse(&r, &f);
    }
    serve(r, target, dir)
}

/// What the content handler serves: a WSGI script (the request's file), or a
/// `WSGIHandlerScript` named by the request's handler.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Script(Option<&'a ScriptAlias>),
    Handler(&'a HandlerScript),
}

/// Prepares the request's facts, routes it, and runs it in this process or hands it to
/// its daemon process group (the two transports of the same WSGI request).
fn serve(r: Request<'_>, target: Target<'_>, dir: &DirConfig) -> i32 {
    let conf = config_store::request_server_config(&r);
    // Daemon requests need no Python here, unless a dispatch script has to run first.
    if dir.dispatch_script.is_some() && !python::runtime::is_ready() {
        return log::refuse(&r, &Failure::PythonUnavailable);
    }
    let (opts, handler_script) = match target {
        Target::Script(alias) => (alias.map(|a| &a.options), None),
        Target::Handler(h) => (Some(&h.options), Some(h)),
    };
    let map_head = match dir.map_head_to_get.unwrap_or(MapHeadToGet::Auto) {
        MapHeadToGet::On => true,
        MapHeadToGet::Off => false,
        MapHeadToGet::Auto => r.has_content_filters(),
    };
    let storage = facts::collect(r, conf, dir, map_head);
    let sources = route::Sources {
        options: opts,
        process_group: dir.process_group.as_deref(),
        application_group: dir.application_group.as_deref(),
        callable_object: dir.callable_object.as_deref(),
        handler_script: handler_script.is_some(),
    };
    let configured = with_expand(r, &storage.script_name, |ctx| {
        route::configured(&sources, ctx)
    });
    let pass_authorization = opts
        .and_then(|o| o.pass_authorization)
        .or(dir.pass_authorization)
        .unwrap_or(false);
    let reloading = dir.script_reloading.unwrap_or(true);
    let enable_sendfile = dir.enable_sendfile.unwrap_or(false);
    let script = match handler_script {
        Some(h) => h.path.clone(),
        None => String::from_utf8_lossy(r.filename()).into_owned(),
    };
    let facts = facts::facts(r, &storage, pass_authorization);
    let mod_wsgi = |process_group, application_group, callable_object| ModWsgiFacts {
        process_group,
        application_group,
        callable_object,
        request_handler: r.handler().unwrap_or(b"wsgi-script"),
        handler_script: handler_script.map_or(&b""[..], |h| h.path.as_bytes()),
        script_name: &storage.script_name,
        path_info: &storage.path_info,
        listener_host: r.local_ip(),
        listener_port: r.local_port(),
        request_id: r.log_id().unwrap_or(b""),
        connection_id: r.connection_log_id(),
        request_start_us: r.request_time(),
        queue_start_us: 0,
        daemon_start_us: 0,
        script_reloading: reloading,
        enable_sendfile,
        ignore_activity: dir.ignore_activity.unwrap_or(false),
        apache_request: dir
            .pass_apache_request
            .unwrap_or(false)
            .then(|| std::ptr::NonNull::new(r.as_ptr().cast()))
            .flatten(),
    };
    let log = log::request_logger(&r);
    // From here until the response is done this request may hold the GIL; a prefork stop
    // that interrupts it must not finalise Python.
    let _in_python = python::shutdown::in_python();
    let choice = match &dir.dispatch_script {
        None => route::Choice::default(),
        Some(ds) => {
            let current = mod_wsgi(
                &configured.process_group,
                &configured.application_group,
                &configured.callable,
            );
            match dispatch::choose(r, ds, &storage.script_name, &facts, &current, log) {
                Ok(choice) => choice,
                Err(status) => return status,
            }
        }
    };
    let rules = route::Rules {
        restrict_process: dir.restrict_process.as_deref(),
        embedded_restricted: conf.daemon.embedded_restricted(),
    };
    // A clone: `mod_wsgi` borrows the configured names for as long as it lives.
    let routed = match route::route(configured.clone(), choice, &rules, &script) {
        Ok(routed) => routed,
        Err(f) => return log::refuse(&r, &f),
    };
    let (application_group, callable) = (&routed.application_group, &routed.callable);
    let reload_mtime = match handler_script {
        Some(h) => python::preload::apr_mtime(&h.path),
        None => Some(r.file_mtime()),
    };
    if let route::Transport::Daemon { group } = &routed.transport {
        let mw = mod_wsgi(group, application_group, callable);
        let head = crate::daemon::client::request_head(
            &script,
            &facts,
            &mw,
            reload_mtime.filter(|_| reloading),
        );
        // Counted by the daemon that runs it (see httpd::status).
        let error_override = dir.error_override.unwrap_or(false);
        return crate::daemon::client::run(r, group, head, error_override);
    }
    let job = app::Job {
        script: &script,
        reload_mtime: reload_mtime.filter(|_| reloading),
        callable,
        facts: &facts,
        mod_wsgi: mod_wsgi(routed.process_group(), application_group, callable),
        process: embedded::process_facts(),
    };
    embedded::run(r, &job, enable_sendfile, log)
}

/// The checks on the request's own WSGI script file: ExecCGI unless aliased, then
/// existence and type.
fn check_script_file(r: Request<'_>, aliased: bool) -> Option<Failure> {
    let file = String::from_utf8_lossy(r.filename()).into_owned();
    if !aliased && !r.exec_cgi_allowed() {
        return Some(Failure::ExecCgiOff { file });
    }
    match r.file_kind() {
        FileKind::Regular => None,
        FileKind::Missing => Some(Failure::ScriptNotFound { file }),
        FileKind::Directory => Some(Failure::ScriptIsDirectory { file }),
        FileKind::Other => Some(Failure::ScriptNotRegular { file }),
    }
}

/// Rejects request bodies mod_rwsgi will not read: unknown transfer codings (501), chunked
/// bodies unless `WSGIChunkedRequest On` (411).
fn check_body_framing(r: Request<'_>, dir: &DirConfig) -> Option<Failure> {
    let te = r.headers_in().get(c"Transfer-Encoding")?;
    if !te.eq_ignore_ascii_case(b"chunked") {
        return Some(Failure::TransferEncoding {
            coding: String::from_utf8_lossy(te).into_owned(),
        });
    }
    if !dir.chunked_request.unwrap_or(false) {
        return Some(Failure::ChunkedRefused);
    }
    None
}

/// Where a hook script (access, auth, group or dispatch) runs for `r`: its
/// `application-group=` (`%{GLOBAL}` unless set) expanded for the request, and that group's
/// interpreter.
pub fn hook_interp(
    r: Request<'_>,
    script_name: &[u8],
    script: &HookScript,
    log: &RequestLog,
) -> Result<(String, &'static Interp), GroupError> {
    let group = with_expand(r, script_name, |ctx| {
        expand::expand_group(
            script.application_group.as_deref().unwrap_or("%{GLOBAL}"),
            ctx,
        )
    });
    let interp = interp::for_group(&group, python::runtime::identity().apache_version, log)?;
    Ok((group, interp))
}

/// Runs `f` with the request's `%{…}` expansion context (`script_name` is its SCRIPT_NAME,
/// for `%{RESOURCE}`).
pub fn with_expand<T>(
    r: Request<'_>,
    script_name: &[u8],
    f: impl FnOnce(&ExpandContext<'_>) -> T,
) -> T {
    let env = |var: &str| -> Option<String> {
        let k = var.as_bytes();
        r.notes()
            .get_bytes(k)
            .or_else(|| r.subprocess_env().get_bytes(k))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .or_else(|| std::env::var(var).ok())
    };
    let server_name = String::from_utf8_lossy(r.configured_server_name()).into_owned();
    let host = r
        .hostname()
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let script_name = String::from_utf8_lossy(script_name).into_owned();
    let conf = config_store::request_server_config(&r);
    f(&ExpandContext {
        server_name: &server_name,
        port: r.vhost_port(),
        host: host.as_deref(),
        script_name: &script_name,
        case_sensitive: conf.python.case_sensitive(),
        env: &env,
    })
}
