//! Request routing shared by both modes: `translate_name` maps script aliases to files, and
//! the content handler checks the request, then runs it embedded (daemon hand-off arrives
//! with daemon mode).

pub mod auth;
pub mod dispatch;
pub mod embedded;
pub mod facts;

use crate::config::alias::{self, AliasMatch};
use crate::config::expand::ExpandContext;
use crate::config::{DirConfig, ScriptAlias, ServerConfig};
use crate::httpd::config_store;
use crate::httpd::log::Level;
use crate::httpd::request::{FileKind, Request};
use crate::sys;

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
        Some(h) if HANDLER_NAMES.contains(&h) => {
            embedded::Target::Script(config_store::matched_alias(&r))
        }
        Some(METRICS_HANDLER) => return crate::httpd::status::serve_metrics(r),
        Some(h) => match dir.handler_scripts.iter().find(|s| s.name.as_bytes() == h) {
            Some(s) => embedded::Target::Handler(s),
            None => return sys::DECLINED,
        },
        None => return sys::DECLINED,
    };
    // A handler script serves whatever URL its handler is set for (the request's file need
    // not exist), as under mod_wsgi.
    if let embedded::Target::Script(alias) = target {
        if let Some(status) = check_script_file(r, alias.is_some()) {
            return status;
        }
    }
    if let Some(status) = check_body_framing(r, dir) {
        return status;
    }
    embedded::run(r, target, dir)
}

/// The checks on the request's own WSGI script file: ExecCGI unless aliased, then
/// existence and type.
fn check_script_file(r: Request<'_>, aliased: bool) -> Option<i32> {
    let filename = String::from_utf8_lossy(r.filename()).into_owned();
    if !aliased && !r.exec_cgi_allowed() {
        r.log(
            Level::Error,
            &format!("RWSGI0020: Options ExecCGI is off in this directory: {filename}"),
        );
        return Some(sys::HTTP_FORBIDDEN as i32);
    }
    match r.file_kind() {
        FileKind::Regular => None,
        FileKind::Missing => {
            r.log(
                Level::Error,
                &format!("RWSGI0021: target WSGI script not found or unable to stat: {filename}"),
            );
            Some(sys::HTTP_NOT_FOUND as i32)
        }
        FileKind::Directory => {
            r.log(
                Level::Error,
                &format!("RWSGI0022: attempt to invoke directory as WSGI application: {filename}"),
            );
            Some(sys::HTTP_FORBIDDEN as i32)
        }
        FileKind::Other => {
            r.log(
                Level::Error,
                &format!("RWSGI0023: WSGI script is not a regular file: {filename}"),
            );
            Some(sys::HTTP_FORBIDDEN as i32)
        }
    }
}

/// Rejects request bodies mod_rwsgi will not read: unknown transfer codings (501), chunked
/// bodies unless `WSGIChunkedRequest On` (411).
fn check_body_framing(r: Request<'_>, dir: &DirConfig) -> Option<i32> {
    let te = r.headers_in().get(c"Transfer-Encoding")?;
    if !te.eq_ignore_ascii_case(b"chunked") {
        r.log(
            Level::Warn,
            &format!(
                "RWSGI0024: unsupported Transfer-Encoding '{}'",
                String::from_utf8_lossy(te)
            ),
        );
        return Some(sys::HTTP_NOT_IMPLEMENTED as i32);
    }
    if !dir.chunked_request.unwrap_or(false) {
        r.log(
            Level::Warn,
            "RWSGI0025: chunked request body refused; enable it with 'WSGIChunkedRequest On'",
        );
        return Some(sys::HTTP_LENGTH_REQUIRED as i32);
    }
    None
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
