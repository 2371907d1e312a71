//! Request routing shared by both modes: `translate_name` maps script aliases to files, and
//! the content handler checks the request, then runs it embedded (daemon hand-off arrives
//! with daemon mode).

pub mod auth;
pub mod dispatch;
pub mod embedded;
pub mod facts;
pub mod route;

use crate::config::alias::{self, AliasMatch};
use crate::config::expand::ExpandContext;
use crate::config::{DirConfig, ScriptAlias, ServerConfig};
use crate::httpd::config_store;
use crate::httpd::log;
use crate::httpd::request::{FileKind, Request};
use crate::sys;
use crate::wsgi::failure::Failure;

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
        if let Some(f) = check_script_file(r, alias.is_some()) {
            return log::refuse(&r, &f);
        }
    }
    if let Some(f) = check_body_framing(r, dir) {
        return log::refuse(&r, &f);
    }
    embedded::run(r, target, dir)
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
