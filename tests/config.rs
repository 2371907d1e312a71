//! Module loading, MPMs, directives and their validation, handler checks, script errors.
mod common;
use common::*;

fn scripts() -> Builder {
    server("config").fragment("scripts")
}

// ---- loading --------------------------------------------------------------------------------

#[test]
fn syntax_ok_with_module_loaded() {
    let t = server("syntax_ok").fragment("apps").config_test();
    assert!(t.ok, "apache2 -t failed ({:?}):\n{}", t.code, t.output);
    assert!(t.output.contains("Syntax OK"), "{}", t.output);
}

#[test]
fn ifmodule_matches_module_c_name() {
    let srv = server("ifmodule")
        .conf(
            "<IfModule @MODULE_C@>\n    WSGIScriptAlias /ifmod \"@APPS@/hello.wsgi\"\n</IfModule>",
        )
        .conf("<IfModule !@MODULE_C@>\n    Alias /ifmod \"@ROOT@/htdocs/\"\n</IfModule>")
        .start();
    let r = srv.get("/ifmod");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
}

fn serves_under(mpm: Mpm, multithread: bool) {
    let srv = server(&format!("mpm_{}", mpm.name()))
        .mpm(mpm)
        .fragment("apps")
        .start();
    for _ in 0..3 {
        let r = srv.get("/hello");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.body, b"Hello World!\n");
    }
    let env = srv.get("/environ").json();
    let e = env.at("environ");
    assert_eq!(
        e.s("wsgi.multithread"),
        if multithread { "True" } else { "False" }
    );
    // Two server processes allowed in every MPM config of the harness.
    assert_eq!(e.s("wsgi.multiprocess"), "True");
    assert_eq!(e.s("wsgi.run_once"), "False");
    assert!(!srv.child_pids().is_empty());
}

#[test]
fn serves_under_event() {
    serves_under(Mpm::Event, true);
}

#[test]
fn serves_under_worker() {
    serves_under(Mpm::Worker, true);
}

#[test]
fn serves_under_prefork() {
    serves_under(Mpm::Prefork, false);
}

#[test]
fn single_process_is_not_multiprocess() {
    let srv = server("single").single_process().fragment("apps").start();
    let e = srv.get("/environ").json();
    assert_eq!(e.at("environ").s("wsgi.multiprocess"), "False");
    assert_eq!(e.at("environ").s("wsgi.multithread"), "True");
}

// ---- WSGIScriptAlias / WSGIScriptAliasMatch and their options ------------------------------------

#[test]
fn script_alias_options() {
    let srv = scripts().start();

    // WSGICallableObject in a <Location>.
    let r = srv.get("/co");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Callable"), Some("alternate"));
    assert_eq!(
        r.json().at("environ").s("mod_wsgi.callable_object"),
        "alternate"
    );

    // callable-object=, application-group=, pass-authorization= on the alias.
    let r = srv.request(
        "GET",
        "/opts",
        &[("Authorization", "Basic Zm9vOmJhcg==")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Callable"), Some("alternate"));
    let j = r.json();
    let e = j.at("environ");
    assert_eq!(e.s("mod_wsgi.callable_object"), "alternate");
    assert_eq!(e.s("mod_wsgi.application_group"), "mygroup");
    assert_eq!(e.s("mod_wsgi.process_group"), "");
    assert_eq!(e.s("HTTP_AUTHORIZATION"), "Basic Zm9vOmJhcg==");

    // process-group=%{GLOBAL} application-group=%{GLOBAL}: embedded, main interpreter.
    let j = srv.get("/global").json();
    let e = j.at("environ");
    assert_eq!(e.s("mod_wsgi.process_group"), "");
    assert_eq!(e.s("mod_wsgi.application_group"), "");

    // Default application group is %{RESOURCE}: host:port|script-name.
    let j = srv.get("/environ").json();
    let e = j.at("environ");
    assert_eq!(
        e.s("mod_wsgi.application_group"),
        format!("localhost:{}|/environ", srv.port)
    );
    assert_eq!(e.s("mod_wsgi.callable_object"), "application");
    assert!(e.get("HTTP_AUTHORIZATION").is_none());
}

#[test]
fn script_alias_match() {
    let srv = scripts().start();
    let r = srv.get("/match/hello.py");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
    let j = srv.get("/match/environ.py/p/q").json();
    let e = j.at("environ");
    assert_eq!(e.s("SCRIPT_NAME"), "/match/environ.py");
    assert_eq!(e.s("PATH_INFO"), "/p/q");
    assert!(
        e.s("SCRIPT_FILENAME").ends_with("/apps/environ.wsgi"),
        "{}",
        e.s("SCRIPT_FILENAME")
    );
}

#[test]
fn script_alias_to_directory_maps_files_inside() {
    let srv = scripts().start();
    let r = srv.get("/dir/inner.wsgi/x/y");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "inner /dir/inner.wsgi|/x/y");
}

// ---- handler checks ---------------------------------------------------------------------------

#[test]
fn sethandler_and_addhandler_need_execcgi() {
    let mut srv = server("handlers").fragment("handlers").start();
    for path in ["/on/hello.wsgi", "/add/hello.wsgi", "/mime/hello.wsgi"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        assert_eq!(r.body, b"Hello World!\n", "{path}");
    }
    // AddHandler: PATH_INFO after the script.
    let j = srv.get("/add/environ.wsgi/more/path").json();
    assert_eq!(j.at("environ").s("SCRIPT_NAME"), "/add/environ.wsgi");
    assert_eq!(j.at("environ").s("PATH_INFO"), "/more/path");
    assert_eq!(j.at("environ").s("mod_wsgi.request_handler"), "wsgi-script");

    let r = srv.get("/off/hello.wsgi");
    assert_eq!(r.status, 403, "{}", r.describe());
    srv.expect_error(r.client_port, "ExecCGI");
}

#[test]
fn missing_script_is_404() {
    let mut srv = scripts().start();
    let r = srv.get("/missing");
    assert_eq!(r.status, 404, "{}", r.describe());
    srv.expect_error(r.client_port, "nope.wsgi");
}

#[test]
fn directory_as_script_is_403() {
    let mut srv = scripts().start();
    let r = srv.get("/dir");
    assert_eq!(r.status, 403, "{}", r.describe());
    srv.expect_error(r.client_port, "sub");
}

#[test]
fn script_without_callable_is_404() {
    let mut srv = scripts().start();
    let r = srv.get("/nocallable");
    assert_eq!(r.status, 404, "{}", r.describe());
    srv.expect_error(r.client_port, "application");
    // Still 404 the second time (the module is cached or reloaded, never half-imported).
    let r = srv.get("/nocallable");
    assert_eq!(r.status, 404, "{}", r.describe());
    srv.expect_error(r.client_port, "application");
}

#[test]
fn syntax_error_in_script_is_500_and_logged() {
    let mut srv = scripts().start();
    let r = srv.get("/syntax");
    assert_eq!(r.status, 500, "{}", r.describe());
    srv.expect_error(r.client_port, "SyntaxError");
    // Other scripts are unaffected.
    assert_eq!(srv.get("/hello").status, 200);
}

// ---- config-time validation ----------------------------------------------------------------

fn config_fails(line: &str) -> ConfigTest {
    let t = server("conftest").conf(line).config_test();
    assert!(!t.ok, "apache2 -t accepted {line:?}:\n{}", t.output);
    assert!(
        t.output.contains("Syntax error"),
        "no syntax error for {line:?}:\n{}",
        t.output
    );
    t
}

const BAD_LINES: &[(&str, &str)] = &[
    ("WSGIEnableSendfile", "WSGIEnableSendfile sometimes"),
    (
        "WSGIScriptAlias",
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" foo=bar",
    ),
    (
        "WSGIScriptAlias",
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" pass-authorization=maybe",
    ),
    (
        "WSGIScriptAlias",
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" callable-object=",
    ),
    (
        "WSGIScriptAlias",
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" application-group=",
    ),
    ("WSGIScriptAlias", "WSGIScriptAlias /x"),
    (
        "WSGIScriptAliasMatch",
        "WSGIScriptAliasMatch ^/x(.*) \"@APPS@/hello.wsgi\" bogus",
    ),
    ("WSGIPassAuthorization", "WSGIPassAuthorization maybe"),
    ("WSGIChunkedRequest", "WSGIChunkedRequest maybe"),
    ("WSGIMapHEADToGET", "WSGIMapHEADToGET maybe"),
    ("WSGICallableObject", "WSGICallableObject"),
    ("WSGIMaximumInterpreters", "WSGIMaximumInterpreters -1"),
];

#[test]
fn bad_values_and_unknown_options_rejected_at_config_time() {
    for (_, line) in BAD_LINES {
        config_fails(line);
    }
}

/// The issue asks that the message names the directive. mod_wsgi 4.9.4 does for the simple flag
/// directives but not for bad WSGIScriptAlias options ("Invalid option to WSGI script alias
/// definition."), so this test is expected to FAIL under mod_wsgi.
#[test]
fn config_error_message_names_the_directive() {
    let mut missing = Vec::new();
    for (directive, line) in BAD_LINES {
        let t = config_fails(line);
        if !t.output.contains(directive) {
            missing.push(format!("{line:?} -> {}", t.output.trim()));
        }
    }
    assert!(
        missing.is_empty(),
        "messages not naming the directive:\n{}",
        missing.join("\n")
    );
}

#[test]
fn process_group_undefined_with_literal_application_group_is_config_error() {
    let t = config_fails(
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" process-group=nope application-group=%{GLOBAL}",
    );
    assert!(
        t.output.to_lowercase().contains("process group") || t.output.contains("nope"),
        "{}",
        t.output
    );
}

/// A WSGIDaemonProcess line with valid options passes the config check, and a
/// process-group= naming it is accepted.
#[test]
fn daemon_process_is_accepted() {
    let t = server("conftest")
        .conf("WSGIDaemonProcess site threads=5")
        .conf("WSGIScriptAlias /x \"@APPS@/hello.wsgi\" process-group=site")
        .config_test();
    assert!(t.ok, "{}", t.output);
}

/// decisions.md §3: a `process-group=` naming an undefined daemon group is a config-time error,
/// never an embedded fall-back. mod_wsgi 4.9.4 only checks this when application-group= is literal
/// too (otherwise it fails at request time), so this is expected to FAIL under mod_wsgi.
#[test]
fn process_group_undefined_is_config_error() {
    config_fails("WSGIScriptAlias /x \"@APPS@/hello.wsgi\" process-group=nope");
}

#[test]
fn good_directives_accepted() {
    let t = server("conf_good")
        .conf("WSGIScriptAlias /a \"@APPS@/hello.wsgi\" process-group=%{GLOBAL} application-group=%{GLOBAL} callable-object=application pass-authorization=Off")
        .conf("WSGIScriptAliasMatch ^/m/([a-z]+) \"@APPS@/$1.wsgi\" application-group=%{RESOURCE}")
        .conf("<Location /a>\n  WSGICallableObject application\n  WSGIPassAuthorization On\n  WSGIChunkedRequest On\n  WSGIMapHEADToGET Auto\n  WSGIEnableSendfile On\n</Location>")
        .conf("WSGIMapHEADToGET Off\nWSGIChunkedRequest Off\nWSGIPassAuthorization Off\nWSGICallableObject application")
        .config_test();
    assert!(t.ok, "{}", t.output);
}

// ---- WSGIMapHEADToGET ------------------------------------------------------------------------

#[test]
fn map_head_to_get() {
    let srv = server("headmap")
        .conf("WSGIScriptAlias /on \"@APPS@/environ.wsgi\"\n<Location /on>\n  WSGIMapHEADToGET On\n</Location>")
        .conf("WSGIScriptAlias /off \"@APPS@/environ.wsgi\"\n<Location /off>\n  WSGIMapHEADToGET Off\n</Location>")
        .conf("WSGIScriptAlias /auto \"@APPS@/environ.wsgi\"\n<Location /auto>\n  WSGIMapHEADToGET Auto\n</Location>")
        .conf("WSGIScriptAlias /autodeflate \"@APPS@/environ.wsgi\"\n<Location /autodeflate>\n  WSGIMapHEADToGET Auto\n  SetOutputFilter DEFLATE\n</Location>")
        .start();
    let method = |p: &str| {
        let r = srv.head(p);
        assert_eq!(r.status, 200, "{p}: {}", r.describe());
        assert!(r.body.is_empty());
        r.header("X-Request-Method").unwrap_or("").to_string()
    };
    assert_eq!(method("/on"), "GET");
    assert_eq!(method("/off"), "HEAD");
    assert_eq!(method("/auto"), "HEAD");
    assert_eq!(method("/autodeflate"), "GET");
}
