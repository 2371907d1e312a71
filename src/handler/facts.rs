//! Reads the facts the environ is made of out of the request (borrowed, no copies except
//! the few values that must be computed).

use crate::config::{DirConfig, ServerConfig};
use crate::httpd::request::Request;
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::path;
use crate::wsgi::proxy::{self, Rewrite};

/// Owned pieces the borrowed facts point into.
pub struct FactsStorage<'r> {
    pub headers: Vec<(&'r [u8], &'r [u8])>,
    pub env: Vec<(&'r [u8], &'r [u8])>,
    pub script_name: Vec<u8>,
    pub path_info: Vec<u8>,
    pub path_translated: Option<Vec<u8>>,
    pub method: &'r [u8],
    /// Trusted proxy header changes (`None` without `WSGITrustedProxyHeaders`).
    pub proxy: Option<Rewrite>,
}

/// Collects what `RequestFacts` borrows.
pub fn collect<'r>(
    r: Request<'r>,
    conf: &ServerConfig,
    dir: &DirConfig,
    map_head: bool,
) -> FactsStorage<'r> {
    let (script_name, path_info) = path::split(r.uri(), r.path_info());
    let path_translated = if path_info.is_empty() {
        None
    } else {
        // Where the server would map PATH_INFO as a URI: through the script aliases (the
        // common case, as mod_wsgi reports it), else under the document root.
        let no_regex = |_: usize, _: &str, _: &[u8]| None;
        Some(match super::map_uri(conf, &path_info, &no_regex) {
            Some((_, f)) => f,
            None => [r.document_root(), &path_info[..]].concat(),
        })
    };
    let method = if map_head && r.method() == b"HEAD" {
        &b"GET"[..]
    } else {
        r.method()
    };
    let headers: Vec<(&[u8], &[u8])> = r.headers_in().iter().collect();
    let proxy = dir.trusted_proxy_headers.as_deref().map(|trusted| {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| *v)
        };
        proxy::rewrite(
            trusted,
            dir.trusted_proxies.as_deref(),
            r.remote_ip(),
            &lookup,
        )
    });
    FactsStorage {
        proxy,
        headers,
        env: r.subprocess_env().iter().collect(),
        script_name,
        path_info,
        path_translated,
        method,
    }
}

/// Borrows the facts.
pub fn facts<'a>(
    r: Request<'a>,
    s: &'a FactsStorage<'a>,
    pass_authorization: bool,
) -> RequestFacts<'a> {
    RequestFacts {
        method: s.method,
        protocol: r.protocol(),
        request_uri: r.unparsed_uri(),
        query_string: r.args(),
        script_name: &s.script_name,
        path_info: &s.path_info,
        path_translated: s.path_translated.as_deref(),
        script_filename: r.filename(),
        headers: &s.headers,
        env: &s.env,
        server_software: Request::server_software(),
        server_name: r.server_name(),
        server_addr: r.local_ip(),
        server_port: r.server_port(),
        server_admin: r.server_admin(),
        server_signature: r.signature(),
        remote_addr: r.remote_ip(),
        remote_port: r.remote_port(),
        document_root: r.document_root(),
        context_prefix: r.context_prefix(),
        context_document_root: r.context_document_root(),
        request_scheme: r.scheme(),
        remote_user: r.user(),
        auth_type: r.auth_type(),
        pass_authorization,
        cgi_pass_auth: r.cgi_pass_auth(),
        proxy: s.proxy.as_ref(),
    }
}
