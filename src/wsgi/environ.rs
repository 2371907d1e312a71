//! The CGI part of the WSGI environ, as mod_wsgi 4.9.4 presents it: which keys, which
//! values, which request headers are dropped. Values are bytes here; the Python layer turns
//! them into latin-1 `str`.

/// Every environ key mod_rwsgi sets itself (so the Python layer can cache them interned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Key {
    ContentType,
    ContentLength,
    HttpAuthorization,
    HttpProxyAuthorization,
    ServerSignature,
    ServerSoftware,
    ServerName,
    ServerAddr,
    ServerPort,
    RemoteAddr,
    DocumentRoot,
    RequestScheme,
    ContextPrefix,
    ContextDocumentRoot,
    ServerAdmin,
    ScriptFilename,
    RemotePort,
    RemoteUser,
    AuthType,
    GatewayInterface,
    ServerProtocol,
    RequestMethod,
    QueryString,
    RequestUri,
    ScriptName,
    PathInfo,
    PathTranslated,
    WsgiVersion,
    WsgiMultithread,
    WsgiMultiprocess,
    WsgiRunOnce,
    WsgiUrlScheme,
    WsgiInput,
    WsgiInputTerminated,
    WsgiErrors,
    WsgiFileWrapper,
    MwApplicationGroup,
    MwApplicationStart,
    MwCallableObject,
    MwConnectionId,
    MwDaemonStart,
    MwEnableSendfile,
    MwHandlerScript,
    MwIgnoreActivity,
    MwListenerHost,
    MwListenerPort,
    MwPathInfo,
    MwProcessGroup,
    MwQueueStart,
    MwRequestHandler,
    MwRequestId,
    MwRequestStart,
    MwScriptName,
    MwScriptReloading,
    MwScriptStart,
    MwThreadId,
    MwThreadRequests,
    MwTotalRequests,
    MwVersion,
    ApacheVersion,
}

impl Key {
    /// Every key, in discriminant order.
    pub const ALL: [Key; 60] = [
        Key::ContentType,
        Key::ContentLength,
        Key::HttpAuthorization,
        Key::HttpProxyAuthorization,
        Key::ServerSignature,
        Key::ServerSoftware,
        Key::ServerName,
        Key::ServerAddr,
        Key::ServerPort,
        Key::RemoteAddr,
        Key::DocumentRoot,
        Key::RequestScheme,
        Key::ContextPrefix,
        Key::ContextDocumentRoot,
        Key::ServerAdmin,
        Key::ScriptFilename,
        Key::RemotePort,
        Key::RemoteUser,
        Key::AuthType,
        Key::GatewayInterface,
        Key::ServerProtocol,
        Key::RequestMethod,
        Key::QueryString,
        Key::RequestUri,
        Key::ScriptName,
        Key::PathInfo,
        Key::PathTranslated,
        Key::WsgiVersion,
        Key::WsgiMultithread,
        Key::WsgiMultiprocess,
        Key::WsgiRunOnce,
        Key::WsgiUrlScheme,
        Key::WsgiInput,
        Key::WsgiInputTerminated,
        Key::WsgiErrors,
        Key::WsgiFileWrapper,
        Key::MwApplicationGroup,
        Key::MwApplicationStart,
        Key::MwCallableObject,
        Key::MwConnectionId,
        Key::MwDaemonStart,
        Key::MwEnableSendfile,
        Key::MwHandlerScript,
        Key::MwIgnoreActivity,
        Key::MwListenerHost,
        Key::MwListenerPort,
        Key::MwPathInfo,
        Key::MwProcessGroup,
        Key::MwQueueStart,
        Key::MwRequestHandler,
        Key::MwRequestId,
        Key::MwRequestStart,
        Key::MwScriptName,
        Key::MwScriptReloading,
        Key::MwScriptStart,
        Key::MwThreadId,
        Key::MwThreadRequests,
        Key::MwTotalRequests,
        Key::MwVersion,
        Key::ApacheVersion,
    ];

    /// The key's text.
    pub const fn name(self) -> &'static str {
        match self {
            Key::ContentType => "CONTENT_TYPE",
            Key::ContentLength => "CONTENT_LENGTH",
            Key::HttpAuthorization => "HTTP_AUTHORIZATION",
            Key::HttpProxyAuthorization => "HTTP_PROXY_AUTHORIZATION",
            Key::ServerSignature => "SERVER_SIGNATURE",
            Key::ServerSoftware => "SERVER_SOFTWARE",
            Key::ServerName => "SERVER_NAME",
            Key::ServerAddr => "SERVER_ADDR",
            Key::ServerPort => "SERVER_PORT",
            Key::RemoteAddr => "REMOTE_ADDR",
            Key::DocumentRoot => "DOCUMENT_ROOT",
            Key::RequestScheme => "REQUEST_SCHEME",
            Key::ContextPrefix => "CONTEXT_PREFIX",
            Key::ContextDocumentRoot => "CONTEXT_DOCUMENT_ROOT",
            Key::ServerAdmin => "SERVER_ADMIN",
            Key::ScriptFilename => "SCRIPT_FILENAME",
            Key::RemotePort => "REMOTE_PORT",
            Key::RemoteUser => "REMOTE_USER",
            Key::AuthType => "AUTH_TYPE",
            Key::GatewayInterface => "GATEWAY_INTERFACE",
            Key::ServerProtocol => "SERVER_PROTOCOL",
            Key::RequestMethod => "REQUEST_METHOD",
            Key::QueryString => "QUERY_STRING",
            Key::RequestUri => "REQUEST_URI",
            Key::ScriptName => "SCRIPT_NAME",
            Key::PathInfo => "PATH_INFO",
            Key::PathTranslated => "PATH_TRANSLATED",
            Key::WsgiVersion => "wsgi.version",
            Key::WsgiMultithread => "wsgi.multithread",
            Key::WsgiMultiprocess => "wsgi.multiprocess",
            Key::WsgiRunOnce => "wsgi.run_once",
            Key::WsgiUrlScheme => "wsgi.url_scheme",
            Key::WsgiInput => "wsgi.input",
            Key::WsgiInputTerminated => "wsgi.input_terminated",
            Key::WsgiErrors => "wsgi.errors",
            Key::WsgiFileWrapper => "wsgi.file_wrapper",
            Key::MwApplicationGroup => "mod_wsgi.application_group",
            Key::MwApplicationStart => "mod_wsgi.application_start",
            Key::MwDaemonStart => "mod_wsgi.daemon_start",
            Key::MwQueueStart => "mod_wsgi.queue_start",
            Key::MwCallableObject => "mod_wsgi.callable_object",
            Key::MwConnectionId => "mod_wsgi.connection_id",
            Key::MwEnableSendfile => "mod_wsgi.enable_sendfile",
            Key::MwHandlerScript => "mod_wsgi.handler_script",
            Key::MwIgnoreActivity => "mod_wsgi.ignore_activity",
            Key::MwListenerHost => "mod_wsgi.listener_host",
            Key::MwListenerPort => "mod_wsgi.listener_port",
            Key::MwPathInfo => "mod_wsgi.path_info",
            Key::MwProcessGroup => "mod_wsgi.process_group",
            Key::MwRequestHandler => "mod_wsgi.request_handler",
            Key::MwRequestId => "mod_wsgi.request_id",
            Key::MwRequestStart => "mod_wsgi.request_start",
            Key::MwScriptName => "mod_wsgi.script_name",
            Key::MwScriptReloading => "mod_wsgi.script_reloading",
            Key::MwScriptStart => "mod_wsgi.script_start",
            Key::MwThreadId => "mod_wsgi.thread_id",
            Key::MwThreadRequests => "mod_wsgi.thread_requests",
            Key::MwTotalRequests => "mod_wsgi.total_requests",
            Key::MwVersion => "mod_wsgi.version",
            Key::ApacheVersion => "apache.version",
        }
    }
}

/// Everything the environ is made of, borrowed from the request.
pub struct RequestFacts<'r> {
    pub method: &'r [u8],
    pub protocol: &'r [u8],
    pub request_uri: &'r [u8],
    pub query_string: &'r [u8],
    pub script_name: &'r [u8],
    pub path_info: &'r [u8],
    pub path_translated: Option<&'r [u8]>,
    pub script_filename: &'r [u8],
    pub headers: &'r [(&'r [u8], &'r [u8])],
    /// `SetEnv`, mod_setenvif, mod_rewrite `E=`, mod_ssl… (subprocess_env).
    pub env: &'r [(&'r [u8], &'r [u8])],
    pub server_software: &'r [u8],
    pub server_name: &'r [u8],
    pub server_addr: &'r [u8],
    pub server_port: u16,
    pub server_admin: &'r [u8],
    pub server_signature: &'r [u8],
    pub remote_addr: &'r [u8],
    pub remote_port: u16,
    pub document_root: &'r [u8],
    pub context_prefix: &'r [u8],
    pub context_document_root: &'r [u8],
    pub request_scheme: &'r [u8],
    pub remote_user: Option<&'r [u8]>,
    pub auth_type: Option<&'r [u8]>,
    /// `WSGIPassAuthorization On` / `pass-authorization=On`.
    pub pass_authorization: bool,
    /// Apache's `CGIPassAuth On` (also passes Proxy-Authorization).
    pub cgi_pass_auth: bool,
    /// What trusted proxy headers change (`WSGITrustedProxyHeaders`), if configured.
    pub proxy: Option<&'r super::proxy::Rewrite>,
}

/// Receives environ entries. Keys from `fixed` are static (cacheable); others are built.
pub trait EnvironSink {
    /// An entry whose key is one of mod_rwsgi's own.
    fn fixed(&mut self, key: Key, value: &[u8]);
    /// An entry whose key comes from the request (HTTP_*, SetEnv…).
    fn dynamic(&mut self, key: &[u8], value: &[u8]);
}

/// The `HTTP_*` name for a request header, or `None` when the header must be dropped
/// (names with anything but letters, digits and `-`: `X_Foo` must not spoof `X-Foo`).
pub fn http_key(name: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.extend_from_slice(b"HTTP_");
    for &c in name {
        match c {
            b'a'..=b'z' => out.push(c - 32),
            b'A'..=b'Z' | b'0'..=b'9' => out.push(c),
            b'-' => out.push(b'_'),
            _ => return false,
        }
    }
    !name.is_empty()
}

fn port_bytes(port: u16, buf: &mut itoa_buf::Buf) -> &[u8] {
    buf.format(port as u64)
}

mod itoa_buf {
    /// A tiny stack formatter for decimal numbers (no allocation on the request path).
    pub struct Buf([u8; 20], usize);
    impl Buf {
        pub fn new() -> Self {
            Buf([0; 20], 20)
        }
        pub fn format(&mut self, mut n: u64) -> &[u8] {
            self.1 = 20;
            loop {
                self.1 -= 1;
                self.0[self.1] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            &self.0[self.1..]
        }
    }
}

/// Emits the CGI variables, then the request headers, into `sink`.
pub fn build(f: &RequestFacts<'_>, sink: &mut dyn EnvironSink) {
    let proxy = f.proxy;
    // subprocess_env first: the CGI variables below win over same-named SetEnv values, as
    // ap_add_common_vars does. mod_wsgi removes PATH, and HTTPS, which only decides
    // `wsgi.url_scheme` (`is_https`).
    for (k, v) in f.env {
        if *k == b"PATH" || *k == b"HTTPS" {
            continue;
        }
        sink.dynamic(k, v);
    }
    if let Some(mount) = proxy.and_then(|p| p.script_name.as_deref()) {
        sink.dynamic(b"mod_wsgi.mount_point", mount);
    }
    let mut key = Vec::with_capacity(64);
    for (name, value) in f.headers {
        let value = match proxy {
            Some(p) if p.drops(name) => continue,
            Some(p) if name.eq_ignore_ascii_case(b"host") && p.host.is_some() => {
                p.host.as_deref().unwrap_or(value)
            }
            Some(p) if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                p.forwarded_for.as_deref().unwrap_or(value)
            }
            _ => value,
        };
        if name.eq_ignore_ascii_case(b"content-type") {
            sink.fixed(Key::ContentType, value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            sink.fixed(Key::ContentLength, value);
        } else if name.eq_ignore_ascii_case(b"proxy") {
            // httpoxy: never let a client set HTTP_PROXY.
        } else if name.eq_ignore_ascii_case(b"authorization") {
            if f.pass_authorization || f.cgi_pass_auth {
                sink.fixed(Key::HttpAuthorization, value);
            }
        } else if name.eq_ignore_ascii_case(b"proxy-authorization") {
            if f.cgi_pass_auth {
                sink.fixed(Key::HttpProxyAuthorization, value);
            }
        } else if http_key(name, &mut key) {
            sink.dynamic(&key, value);
        }
    }
    let mut num = itoa_buf::Buf::new();
    sink.fixed(Key::ServerSignature, f.server_signature);
    sink.fixed(Key::ServerSoftware, f.server_software);
    let over = |pick: fn(&super::proxy::Rewrite) -> &Option<Vec<u8>>| {
        proxy.and_then(|p| pick(p).as_deref())
    };
    sink.fixed(
        Key::ServerName,
        over(|p| &p.server_name).unwrap_or(f.server_name),
    );
    sink.fixed(Key::ServerAddr, f.server_addr);
    match over(|p| &p.server_port) {
        Some(port) => sink.fixed(Key::ServerPort, port),
        None => sink.fixed(Key::ServerPort, port_bytes(f.server_port, &mut num)),
    }
    sink.fixed(
        Key::RemoteAddr,
        over(|p| &p.remote_addr).unwrap_or(f.remote_addr),
    );
    sink.fixed(Key::DocumentRoot, f.document_root);
    sink.fixed(Key::RequestScheme, f.request_scheme);
    sink.fixed(Key::ContextPrefix, f.context_prefix);
    sink.fixed(Key::ContextDocumentRoot, f.context_document_root);
    sink.fixed(Key::ServerAdmin, f.server_admin);
    sink.fixed(Key::ScriptFilename, f.script_filename);
    sink.fixed(Key::RemotePort, port_bytes(f.remote_port, &mut num));
    if let Some(u) = f.remote_user {
        sink.fixed(Key::RemoteUser, u);
    }
    if let Some(a) = f.auth_type {
        sink.fixed(Key::AuthType, a);
    }
    sink.fixed(Key::GatewayInterface, b"CGI/1.1");
    sink.fixed(Key::ServerProtocol, f.protocol);
    sink.fixed(Key::RequestMethod, f.method);
    sink.fixed(Key::QueryString, f.query_string);
    sink.fixed(Key::RequestUri, f.request_uri);
    sink.fixed(
        Key::ScriptName,
        over(|p| &p.script_name).unwrap_or(f.script_name),
    );
    sink.fixed(Key::PathInfo, f.path_info);
    if let Some(t) = f.path_translated {
        sink.fixed(Key::PathTranslated, t);
    }
}

/// The cut-down environ mod_wsgi gives access, auth and group scripts: request headers
/// (never `Authorization` or `Proxy-Authorization`, whatever `WSGIPassAuthorization` says,
/// since the credentials are the script's arguments) and the basic CGI variables, without
/// `SetEnv` values, `SCRIPT_FILENAME`, `REMOTE_USER` and the other per-handler entries.
pub fn build_for_hook(f: &RequestFacts<'_>, sink: &mut dyn EnvironSink) {
    let mut key = Vec::with_capacity(64);
    for (name, value) in f.headers {
        if name.eq_ignore_ascii_case(b"content-type") {
            sink.fixed(Key::ContentType, value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            sink.fixed(Key::ContentLength, value);
        } else if name.eq_ignore_ascii_case(b"proxy")
            || name.eq_ignore_ascii_case(b"authorization")
            || name.eq_ignore_ascii_case(b"proxy-authorization")
        {
        } else if http_key(name, &mut key) {
            sink.dynamic(&key, value);
        }
    }
    let mut num = itoa_buf::Buf::new();
    sink.fixed(Key::ServerSignature, f.server_signature);
    sink.fixed(Key::ServerSoftware, f.server_software);
    sink.fixed(Key::ServerName, f.server_name);
    sink.fixed(Key::ServerAddr, f.server_addr);
    sink.fixed(Key::ServerPort, port_bytes(f.server_port, &mut num));
    sink.fixed(Key::RemoteAddr, f.remote_addr);
    sink.fixed(Key::DocumentRoot, f.document_root);
    sink.fixed(Key::ServerAdmin, f.server_admin);
    sink.fixed(Key::RemotePort, port_bytes(f.remote_port, &mut num));
    sink.fixed(Key::ServerProtocol, f.protocol);
    sink.fixed(Key::RequestMethod, f.method);
    sink.fixed(Key::QueryString, f.query_string);
    sink.fixed(Key::RequestUri, f.request_uri);
    sink.fixed(Key::ScriptName, f.script_name);
    sink.fixed(Key::PathInfo, f.path_info);
}

/// True when the request says HTTPS: a trusted proxy's scheme header first (it wins over the
/// connection, as in mod_wsgi 6), then `HTTPS` (set by mod_ssl on TLS requests, or by
/// `SetEnv`) when it is `on` or `1` (any case). As in mod_wsgi, the request scheme does not
/// count: `ServerName https://…` behind a TLS-ending proxy leaves `wsgi.url_scheme` at `http`.
pub fn is_https(f: &RequestFacts<'_>) -> bool {
    if let Some(forced) = f.proxy.and_then(|p| p.https) {
        return forced;
    }
    f.env
        .iter()
        .any(|(k, v)| *k == b"HTTPS" && (v.eq_ignore_ascii_case(b"on") || *v == b"1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Map(BTreeMap<String, String>);
    impl EnvironSink for Map {
        fn fixed(&mut self, key: Key, value: &[u8]) {
            self.0
                .insert(key.name().into(), String::from_utf8_lossy(value).into());
        }
        fn dynamic(&mut self, key: &[u8], value: &[u8]) {
            self.0.insert(
                String::from_utf8_lossy(key).into(),
                String::from_utf8_lossy(value).into(),
            );
        }
    }

    fn facts<'a>(
        headers: &'a [(&'a [u8], &'a [u8])],
        env: &'a [(&'a [u8], &'a [u8])],
    ) -> RequestFacts<'a> {
        RequestFacts {
            method: b"GET",
            protocol: b"HTTP/1.1",
            request_uri: b"/a%20b?x=1",
            query_string: b"x=1",
            script_name: b"",
            path_info: b"/a b",
            path_translated: None,
            script_filename: b"/srv/app.wsgi",
            headers,
            env,
            server_software: b"Apache",
            server_name: b"localhost",
            server_addr: b"127.0.0.1",
            server_port: 8080,
            server_admin: b"[no address given]",
            server_signature: b"",
            remote_addr: b"127.0.0.1",
            remote_port: 5555,
            document_root: b"/var/www",
            context_prefix: b"",
            context_document_root: b"/var/www",
            request_scheme: b"http",
            remote_user: None,
            auth_type: None,
            pass_authorization: false,
            cgi_pass_auth: false,
            proxy: None,
        }
    }

    #[test]
    fn hook_environ_is_cut_down() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Authorization", b"Basic eDp5"),
            (b"X-Thing", b"1"),
            (b"Content-Type", b"text/plain"),
        ];
        let env: &[(&[u8], &[u8])] = &[(b"FROM_SETENV", b"1")];
        let mut f = facts(headers, env);
        f.pass_authorization = true;
        f.remote_user = Some(b"bob");
        let mut m = Map::default();
        build_for_hook(&f, &mut m);
        assert_eq!(m.0.get("HTTP_X_THING").map(String::as_str), Some("1"));
        assert_eq!(
            m.0.get("CONTENT_TYPE").map(String::as_str),
            Some("text/plain")
        );
        assert_eq!(
            m.0.get("REQUEST_URI").map(String::as_str),
            Some("/a%20b?x=1")
        );
        for absent in [
            "HTTP_AUTHORIZATION",
            "FROM_SETENV",
            "REMOTE_USER",
            "SCRIPT_FILENAME",
            "GATEWAY_INTERFACE",
        ] {
            assert!(!m.0.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn headers_filtered_and_mapped() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Host", b"h"),
            (b"X_Foo", b"spoof"),
            (b"X-Foo", b"real"),
            (b"Proxy", b"evil"),
            (b"Authorization", b"Basic x"),
            (b"Content-Type", b"text/plain"),
            (b"content-length", b"3"),
            (b"X.Dot", b"no"),
        ];
        let env: &[(&[u8], &[u8])] =
            &[(b"FOO", b"bar"), (b"SERVER_PORT", b"1"), (b"PATH", b"/bin")];
        let mut m = Map::default();
        build(&facts(headers, env), &mut m);
        let m = m.0;
        assert_eq!(m["HTTP_X_FOO"], "real");
        assert!(!m.contains_key("HTTP_PROXY"));
        assert!(!m.contains_key("HTTP_AUTHORIZATION"));
        assert!(!m.contains_key("HTTP_CONTENT_TYPE"));
        assert!(!m.contains_key("HTTP_CONTENT_LENGTH"));
        assert!(!m.contains_key("PATH"));
        assert!(!m.keys().any(|k| k.contains("DOT")));
        assert_eq!(m["CONTENT_TYPE"], "text/plain");
        assert_eq!(m["CONTENT_LENGTH"], "3");
        assert_eq!(m["FOO"], "bar");
        assert_eq!(m["SERVER_PORT"], "8080");
        assert_eq!(m["REMOTE_PORT"], "5555");
        assert_eq!(m["QUERY_STRING"], "x=1");
        assert_eq!(m["GATEWAY_INTERFACE"], "CGI/1.1");
    }

    #[test]
    fn authorization_passing() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Authorization", b"Basic x"),
            (b"Proxy-Authorization", b"p"),
        ];
        let mut f = facts(headers, &[]);
        f.pass_authorization = true;
        let mut m = Map::default();
        build(&f, &mut m);
        assert_eq!(m.0["HTTP_AUTHORIZATION"], "Basic x");
        assert!(!m.0.contains_key("HTTP_PROXY_AUTHORIZATION"));
        f.pass_authorization = false;
        f.cgi_pass_auth = true;
        let mut m = Map::default();
        build(&f, &mut m);
        assert_eq!(m.0["HTTP_PROXY_AUTHORIZATION"], "p");
    }

    #[test]
    fn https_detection() {
        for (v, https) in [
            ("on", true),
            ("ON", true),
            ("1", true),
            ("off", false),
            ("yes", false),
        ] {
            let env: &[(&[u8], &[u8])] = &[(b"HTTPS", v.as_bytes())];
            let f = facts(&[], env);
            assert_eq!(is_https(&f), https, "HTTPS={v}");
            let mut m = Map::default();
            build(&f, &mut m);
            assert!(
                !m.0.contains_key("HTTPS"),
                "HTTPS={v} must not reach the environ"
            );
        }
        let mut f = facts(&[], &[]);
        f.request_scheme = b"https";
        assert!(
            !is_https(&f),
            "the scheme alone (ServerName https://…) is not HTTPS"
        );
    }
}
