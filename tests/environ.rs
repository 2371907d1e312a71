//! The WSGI environ: key set (as mod_wsgi 4.9.4), SCRIPT_NAME/PATH_INFO, raw URI parts, headers,
//! Authorization, SetEnv, wsgi.* and mod_wsgi.* keys, wsgiref validator; each test in embedded
//! and in daemon mode (`tests/common/modes.rs`).
mod common;
use common::modes::MOD_WSGI_494_DAEMON_ONLY_KEYS;
use common::*;
use std::collections::BTreeSet;

/// The key set mod_wsgi 4.9.4 (Debian 12) produces for `fixed_request()` to /environ/a?x=1 in
/// embedded mode (captured from the reference; decisions.md §1).
const MOD_WSGI_494_KEYS: &[&str] = &[
    "CONTEXT_DOCUMENT_ROOT",
    "CONTEXT_PREFIX",
    "DOCUMENT_ROOT",
    "GATEWAY_INTERFACE",
    "HTTP_CONNECTION",
    "HTTP_HOST",
    "HTTP_X_TEST",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REQUEST_METHOD",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "RWSGI_TEST_DATA",
    "SCRIPT_FILENAME",
    "SCRIPT_NAME",
    "SERVER_ADDR",
    "SERVER_ADMIN",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SIGNATURE",
    "SERVER_SOFTWARE",
    "apache.version",
    "mod_wsgi.application_group",
    "mod_wsgi.callable_object",
    "mod_wsgi.enable_sendfile",
    "mod_wsgi.handler_script",
    "mod_wsgi.ignore_activity",
    "mod_wsgi.listener_host",
    "mod_wsgi.listener_port",
    "mod_wsgi.path_info",
    "mod_wsgi.process_group",
    "mod_wsgi.request_handler",
    "mod_wsgi.request_id",
    "mod_wsgi.request_start",
    "mod_wsgi.script_name",
    "mod_wsgi.script_reloading",
    "mod_wsgi.script_start",
    "mod_wsgi.thread_id",
    "mod_wsgi.thread_requests",
    "mod_wsgi.total_requests",
    "mod_wsgi.version",
    "wsgi.errors",
    "wsgi.file_wrapper",
    "wsgi.input",
    "wsgi.input_terminated",
    "wsgi.multiprocess",
    "wsgi.multithread",
    "wsgi.run_once",
    "wsgi.url_scheme",
    "wsgi.version",
];

/// Python type names of the plain-data keys under mod_wsgi 4.9.4.
const MOD_WSGI_494_TYPES: &[(&str, &str)] = &[
    ("apache.version", "tuple"),
    ("mod_wsgi.version", "tuple"),
    ("mod_wsgi.thread_id", "int"),
    ("mod_wsgi.thread_requests", "int"),
    ("mod_wsgi.total_requests", "int"),
    ("mod_wsgi.request_start", "str"),
    ("mod_wsgi.script_start", "str"),
    ("mod_wsgi.script_reloading", "str"),
    ("mod_wsgi.enable_sendfile", "str"),
    ("mod_wsgi.ignore_activity", "str"),
    ("mod_wsgi.listener_port", "str"),
    ("wsgi.version", "tuple"),
    ("wsgi.input_terminated", "bool"),
    ("wsgi.multiprocess", "bool"),
    ("wsgi.multithread", "bool"),
    ("wsgi.run_once", "bool"),
    ("wsgi.url_scheme", "str"),
];

fn fixed_request(srv: &Server) -> Json {
    let req = format!(
        "GET /environ/a?x=1 HTTP/1.1\r\nHost: localhost:{}\r\nX-Test: 1\r\nConnection: close\r\n\r\n",
        srv.port
    );
    let r = srv.raw(req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.describe());
    r.json()
}

/// The timing keys mod_wsgi 6.x added (floats of epoch seconds), which mod_rwsgi sets beside
/// 4.9.4's; `tests/wsgi6.rs` checks their values.
const MOD_WSGI_6_TIMING_KEYS: &[(&str, &str)] = &[
    ("mod_wsgi.application_start", "float"),
    ("mod_wsgi.daemon_start", "float"),
    ("mod_wsgi.queue_start", "float"),
];

fn key_set(j: &Json) -> BTreeSet<String> {
    j.at("environ").keys().into_iter().collect()
}

/// The key set without the 6.x timing keys (to compare with 4.9.4).
fn key_set_494(j: &Json) -> BTreeSet<String> {
    let mut keys = key_set(j);
    for (k, _) in MOD_WSGI_6_TIMING_KEYS {
        keys.remove(*k);
    }
    keys
}

fn diff(ours: &BTreeSet<String>, reference: &BTreeSet<String>) -> String {
    let missing: Vec<_> = reference.difference(ours).collect();
    let extra: Vec<_> = ours.difference(reference).collect();
    format!("missing: {missing:?}\nextra: {extra:?}")
}

fn key_set_matches_mod_wsgi_494(mode: Mode) {
    let srv = server("environ_keys").mode(mode).fragment("apps").start();
    let j = fixed_request(&srv);
    let ours = key_set_494(&j);
    let golden: BTreeSet<String> = MOD_WSGI_494_KEYS.iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, golden, "{}", diff(&ours, &golden));
    let types = j.at("types");
    let extra: &[(&str, &str)] = if srv.module.is_reference() {
        &[]
    } else {
        MOD_WSGI_6_TIMING_KEYS
    };
    for (k, t) in MOD_WSGI_494_TYPES.iter().chain(extra) {
        assert_eq!(types.s(k), *t, "type of {k}");
    }
    // Every CGI value is a str.
    for k in MOD_WSGI_494_KEYS
        .iter()
        .filter(|k| k.chars().next().unwrap().is_ascii_uppercase())
    {
        assert_eq!(types.s(k), "str", "type of {k}");
    }
}

/// Side by side with the installed reference mod_wsgi, same request, same config.
fn key_set_matches_live_reference(mode: Mode) {
    let reference = Module::reference().expect(
        "the reference mod_wsgi is not installed: install libapache2-mod-wsgi-py3 (make deps)",
    );
    let ours = {
        let srv = server("environ_ours").mode(mode).fragment("apps").start();
        fixed_request(&srv)
    };
    let theirs = {
        let srv = server("environ_ref")
            .mode(mode)
            .module(reference)
            .fragment("apps")
            .start();
        fixed_request(&srv)
    };
    let mut b = key_set(&theirs);
    if mode == Mode::Daemon {
        for k in MOD_WSGI_494_DAEMON_ONLY_KEYS {
            assert!(b.remove(*k), "4.9.4 daemon mode lacks {k}");
        }
    }
    let a = key_set_494(&ours);
    assert_eq!(a, b, "{}", diff(&a, &b));
    // Same values for the request-determined keys.
    for k in [
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_URI",
        "REQUEST_METHOD",
        "SERVER_PROTOCOL",
        "REQUEST_SCHEME",
        "GATEWAY_INTERFACE",
        "SERVER_ADDR",
        "REMOTE_ADDR",
        "HTTP_X_TEST",
        "CONTEXT_PREFIX",
        "SERVER_SIGNATURE",
        "SERVER_ADMIN",
        "mod_wsgi.script_name",
        "mod_wsgi.path_info",
        "mod_wsgi.process_group",
        "mod_wsgi.callable_object",
        "mod_wsgi.request_handler",
        "mod_wsgi.handler_script",
        "mod_wsgi.listener_host",
        "mod_wsgi.script_reloading",
        "mod_wsgi.enable_sendfile",
        "mod_wsgi.ignore_activity",
        "wsgi.version",
        "wsgi.url_scheme",
        "wsgi.input_terminated",
        "wsgi.run_once",
        "wsgi.multithread",
        "wsgi.multiprocess",
    ] {
        assert_eq!(
            ours.at("environ").at(k),
            theirs.at("environ").at(k),
            "value of {k}"
        );
        assert_eq!(
            ours.at("types").at(k),
            theirs.at("types").at(k),
            "type of {k}"
        );
    }
    for k in b {
        // Deliberate: mod_wsgi wraps its log object in io.TextIOWrapper; mod_rwsgi's
        // wsgi.errors is a native line-buffered text stream with the same methods.
        if k == "wsgi.errors" {
            continue;
        }
        assert_eq!(
            ours.at("types").at(&k),
            theirs.at("types").at(&k),
            "type of {k}"
        );
    }
}

fn mounts(mode: Mode) -> Server {
    server("environ_mounts")
        .mode(mode)
        .conf("WSGIScriptAlias /sub \"@APPS@/environ.wsgi\"")
        .conf("WSGIScriptAlias / \"@APPS@/environ.wsgi\"")
        .start()
}

fn split(srv: &Server, path: &str) -> (String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let r = srv.raw(req.as_bytes());
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    let j = r.json();
    let e = j.at("environ");
    (e.s("SCRIPT_NAME").to_string(), e.s("PATH_INFO").to_string())
}

fn script_name_path_info_split(mode: Mode) {
    let srv = mounts(mode);
    let cases: &[(&str, &str, &str)] = &[
        ("/", "", "/"),
        ("/a/b", "", "/a/b"),
        ("/subx", "", "/subx"), // prefix match is segment-aware
        ("/sub", "/sub", ""),
        ("/sub/", "/sub", "/"),
        ("/sub/a/b", "/sub", "/a/b"),
        ("/sub/a//b", "/sub", "/a/b"),      // runs of / collapse
        ("//sub//a///b", "/sub", "/a/b"),   // also before the mount point
        ("/sub/a%20b", "/sub", "/a b"),     // PATH_INFO is URL-decoded
        ("/sub/%7Euser", "/sub", "/~user"), // ditto
        ("/sub/caf%C3%A9", "/sub", "/caf\u{c3}\u{a9}"), // bytes decoded as latin-1
        ("/sub/x;y=1", "/sub", "/x;y=1"),
    ];
    for (path, sn, pi) in cases {
        let (s, p) = split(&srv, path);
        assert_eq!((s.as_str(), p.as_str()), (*sn, *pi), "request {path}");
    }
}

fn query_string_and_request_uri_are_raw(mode: Mode) {
    let srv = mounts(mode);
    let req = "GET /sub/caf%C3%A9/x?q=%41+b&c&d=%2F HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let j = srv.raw(req.as_bytes()).json();
    let e = j.at("environ");
    assert_eq!(e.s("QUERY_STRING"), "q=%41+b&c&d=%2F");
    assert_eq!(e.s("REQUEST_URI"), "/sub/caf%C3%A9/x?q=%41+b&c&d=%2F");
    assert_eq!(e.s("mod_wsgi.script_name"), "/sub");
    assert_eq!(e.s("mod_wsgi.path_info"), "/caf\u{c3}\u{a9}/x");
    // QUERY_STRING is always present.
    let j = srv.get("/sub/x").json();
    assert_eq!(j.at("environ").s("QUERY_STRING"), "");
}

fn content_type_and_length(mode: Mode) {
    let srv = server("environ_ct").mode(mode).fragment("apps").start();
    let r = srv.post(
        "/environ",
        b"abc",
        &[("Content-Type", "text/x-test; charset=latin-1")],
    );
    let j = r.json();
    let e = j.at("environ");
    assert_eq!(e.s("CONTENT_TYPE"), "text/x-test; charset=latin-1");
    assert_eq!(e.s("CONTENT_LENGTH"), "3");
    assert_eq!(e.s("REQUEST_METHOD"), "POST");
    assert!(
        e.get("HTTP_CONTENT_TYPE").is_none(),
        "HTTP_CONTENT_TYPE present"
    );
    assert!(
        e.get("HTTP_CONTENT_LENGTH").is_none(),
        "HTTP_CONTENT_LENGTH present"
    );
    // A GET without body has no CONTENT_LENGTH/CONTENT_TYPE (as mod_wsgi 4.9.4).
    let j = srv.get("/environ").json();
    assert!(j.at("environ").get("CONTENT_LENGTH").is_none());
    assert!(j.at("environ").get("CONTENT_TYPE").is_none());
}

fn request_headers(mode: Mode) {
    let srv = server("environ_headers")
        .mode(mode)
        .fragment("apps")
        .start();
    let req = format!(
        "GET /environ HTTP/1.1\r\nHost: localhost:{}\r\nX-Dup: a\r\nX-Dup: b\r\nX_Foo: spoof\r\nX-Foo: real\r\n\
         Proxy: http://evil.example/\r\nAuthorization: Basic Zm9vOmJhcg==\r\nx-lower-case: yes\r\n\
         X-Latin: caf\u{e9}\r\nX-Empty:\r\nConnection: close\r\n\r\n",
        srv.port
    );
    // Send the é as the single latin-1 byte 0xE9.
    let bytes: Vec<u8> = req.chars().map(|c| c as u32 as u8).collect();
    let r = srv.raw(&bytes);
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    let e = j.at("environ");
    assert_eq!(e.s("HTTP_X_DUP"), "a, b");
    assert_eq!(e.s("HTTP_X_FOO"), "real", "X_Foo must not override X-Foo");
    assert_eq!(e.s("HTTP_X_LOWER_CASE"), "yes");
    assert_eq!(e.s("HTTP_X_LATIN"), "caf\u{e9}");
    assert_eq!(e.s("HTTP_HOST"), format!("localhost:{}", srv.port));
    assert!(
        e.get("HTTP_PROXY").is_none(),
        "Proxy header passed (httpoxy)"
    );
    assert!(
        e.get("HTTP_AUTHORIZATION").is_none(),
        "Authorization passed without WSGIPassAuthorization"
    );
    for k in e.keys() {
        assert!(
            !k.contains("FOO") || k == "HTTP_X_FOO",
            "unexpected key {k}"
        );
    }
    // X_Foo alone is dropped too.
    let req = "GET /environ HTTP/1.1\r\nHost: localhost\r\nX_Only: spoof\r\nX.Dot: no\r\nConnection: close\r\n\r\n";
    let j = srv.raw(req.as_bytes()).json();
    let e = j.at("environ");
    assert!(e.get("HTTP_X_ONLY").is_none(), "header with '_' passed");
    assert!(
        !e.keys().iter().any(|k| k.contains("DOT")),
        "header with '.' passed"
    );
}

fn authorization_passing(mode: Mode) {
    let srv = server("environ_auth").mode(mode)
        .conf("WSGIScriptAlias /plain \"@APPS@/environ.wsgi\"")
        .conf("WSGIScriptAlias /pa \"@APPS@/environ.wsgi\"\n<Location /pa>\n  WSGIPassAuthorization On\n</Location>")
        .conf("WSGIScriptAlias /opt \"@APPS@/environ.wsgi\" pass-authorization=On")
        .conf("WSGIScriptAlias /cgipa \"@APPS@/environ.wsgi\"\n<Location /cgipa>\n  CGIPassAuth On\n</Location>")
        .start();
    let auth = |p: &str| {
        let r = srv.request(
            "GET",
            p,
            &[
                ("Authorization", "Basic Zm9vOmJhcg=="),
                ("Proxy-Authorization", "Basic cHJveHk="),
            ],
            b"",
        );
        assert_eq!(r.status, 200, "{p}: {}", r.describe());
        let j = r.json();
        let e = j.at("environ");
        (
            e.opt_s("HTTP_AUTHORIZATION").map(str::to_string),
            e.opt_s("HTTP_PROXY_AUTHORIZATION").map(str::to_string),
        )
    };
    assert_eq!(auth("/plain"), (None, None));
    assert_eq!(auth("/pa").0.as_deref(), Some("Basic Zm9vOmJhcg=="));
    assert_eq!(auth("/opt").0.as_deref(), Some("Basic Zm9vOmJhcg=="));
    assert_eq!(
        auth("/cgipa"),
        (
            Some("Basic Zm9vOmJhcg==".into()),
            Some("Basic cHJveHk=".into())
        )
    );
}

fn setenv_values_in_environ_not_os_environ(mode: Mode) {
    let srv = server("environ_setenv")
        .mode(mode)
        .fragment("apps")
        .conf("SetEnv RWSGI_TEST_SETENV \"set by SetEnv\"")
        .conf("<Location /environ>\n  SetEnv RWSGI_TEST_LOCATION loc\n</Location>")
        .start();
    let j = srv.get("/environ").json();
    assert_eq!(j.at("environ").s("RWSGI_TEST_SETENV"), "set by SetEnv");
    assert_eq!(j.at("environ").s("RWSGI_TEST_LOCATION"), "loc");
    assert!(
        !j.b("os_environ_has_setenv"),
        "SetEnv leaked into os.environ"
    );
}

fn wsgi_keys(mode: Mode) {
    let srv = server("environ_wsgi").mode(mode).fragment("apps").start();
    let j = srv.get("/environ").json();
    let e = j.at("environ");
    let t = j.at("types");
    assert_eq!(e.s("wsgi.version"), "(1, 0)");
    assert_eq!(e.s("wsgi.input_terminated"), "True");
    assert_eq!(e.s("wsgi.url_scheme"), "http");
    assert_eq!(e.s("wsgi.run_once"), "False");
    assert_eq!(t.s("wsgi.multithread"), "bool");
    assert_eq!(e.s("wsgi.multithread"), "True");
    // Embedded: two event-MPM children; daemon: one process (no `processes=`), as mod_wsgi.
    let multiprocess = match mode {
        Mode::Embedded => "True",
        Mode::Daemon => "False",
    };
    assert_eq!(e.s("wsgi.multiprocess"), multiprocess);
    assert_eq!(
        j.at("input_attrs").arr().len(),
        4,
        "wsgi.input lacks methods: {:?}",
        j.at("input_attrs")
    );
    assert_eq!(
        j.at("errors_attrs").arr().len(),
        3,
        "wsgi.errors lacks methods: {:?}",
        j.at("errors_attrs")
    );
    assert_eq!(
        j.at("argv").arr(),
        &vec![Json::String("mod_wsgi".into())],
        "sys.argv"
    );
    assert_eq!(e.s("REQUEST_SCHEME"), "http");
    assert_eq!(e.s("SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(e.s("SERVER_PORT"), srv.port.to_string());
    assert_eq!(e.s("SERVER_NAME"), "localhost");
    assert_eq!(e.s("REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(e.s("GATEWAY_INTERFACE"), "CGI/1.1");
    assert!(e.s("SCRIPT_FILENAME").ends_with("/apps/environ.wsgi"));
}

fn enable_sendfile_and_reloading_flags_show_in_environ(mode: Mode) {
    let srv = server("environ_flags")
        .mode(mode)
        .fragment("apps")
        .conf(
            "<Location /environ>\n  WSGIEnableSendfile On\n  WSGIScriptReloading Off\n</Location>",
        )
        .start();
    let j = srv.get("/environ/x").json();
    let e = j.at("environ");
    assert_eq!(e.s("mod_wsgi.enable_sendfile"), "1");
    assert_eq!(e.s("mod_wsgi.script_reloading"), "0");
}

fn mod_wsgi_keys(mode: Mode) {
    let srv = server("environ_modwsgi")
        .mode(mode)
        .fragment("apps")
        .start();
    let j = srv.get("/environ/x").json();
    let e = j.at("environ");
    assert_eq!(e.s("mod_wsgi.process_group"), mode.process_group());
    assert_eq!(
        e.s("mod_wsgi.application_group"),
        format!("localhost:{}|/environ", srv.port)
    );
    assert_eq!(e.s("mod_wsgi.callable_object"), "application");
    assert_eq!(e.s("mod_wsgi.request_handler"), "wsgi-script");
    assert_eq!(e.s("mod_wsgi.handler_script"), "");
    assert_eq!(e.s("mod_wsgi.script_reloading"), "1");
    assert_eq!(e.s("mod_wsgi.enable_sendfile"), "0");
    assert_eq!(e.s("mod_wsgi.ignore_activity"), "0");
    assert_eq!(e.s("mod_wsgi.listener_host"), "127.0.0.1");
    assert_eq!(e.s("mod_wsgi.listener_port"), srv.port.to_string());
    assert_eq!(e.s("mod_wsgi.script_name"), "/environ");
    assert_eq!(e.s("mod_wsgi.path_info"), "/x");
    assert!(
        e.s("mod_wsgi.version").starts_with('('),
        "{}",
        e.s("mod_wsgi.version")
    );
    assert!(
        e.s("apache.version").starts_with("(2, 4, "),
        "{}",
        e.s("apache.version")
    );
    assert!(!e.s("mod_wsgi.request_id").is_empty());
    // Timing keys: strings of microseconds since the epoch, script_start >= request_start.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let rs: u64 = e
        .s("mod_wsgi.request_start")
        .parse()
        .expect("request_start is an integer string");
    let ss: u64 = e
        .s("mod_wsgi.script_start")
        .parse()
        .expect("script_start is an integer string");
    assert!(rs <= ss, "request_start {rs} > script_start {ss}");
    assert!(
        now_us.abs_diff(rs) < 60_000_000,
        "request_start {rs} not near now {now_us}"
    );
}

fn request_id_matches_access_log(mode: Mode) {
    let mut srv = server("environ_reqid").mode(mode).fragment("apps").start();
    let j = srv.get("/environ").json();
    let id = j.at("environ").s("mod_wsgi.request_id").to_string();
    srv.stop();
    let access = srv.log_text("access.log");
    assert!(
        access.contains(&format!(" {id}")),
        "request id {id} not in access log:\n{access}"
    );
}

fn validator_raises_nothing(mode: Mode) {
    let srv = server("environ_validator")
        .mode(mode)
        .fragment("apps")
        .start();
    let r = srv.get("/validator");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "validated 0");
    let r = srv.post(
        "/validator",
        b"some body",
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "validated 9");
    // The error-log check on drop fails the test on any AssertionError traceback.
}

both_modes!(
    key_set_matches_mod_wsgi_494,
    key_set_matches_live_reference,
    script_name_path_info_split,
    query_string_and_request_uri_are_raw,
    content_type_and_length,
    request_headers,
    authorization_passing,
    setenv_values_in_environ_not_os_environ,
    wsgi_keys,
    enable_sendfile_and_reloading_flags_show_in_environ,
    mod_wsgi_keys,
    request_id_matches_access_log,
    validator_raises_nothing,
);
