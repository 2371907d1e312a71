//! `WSGIProcessGroup` before daemon mode: `%{GLOBAL}` serves embedded, a literal name that no
//! `WSGIDaemonProcess` defines is a configuration error, and a name computed per request that
//! names no group gives 500 with `RWSGI0031`.
mod common;
use common::*;

#[test]
fn process_group_global_serves_embedded() {
    let s = server("pg_global")
        .conf(
            "WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"\n\
             <Location /hello>\n  WSGIProcessGroup %{GLOBAL}\n</Location>",
        )
        .start();
    let r = s.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
}

/// A deliberate difference: mod_wsgi 4.9.4 accepts the line and answers 500 per request.
#[test]
fn process_group_naming_an_undefined_group_is_a_config_error() {
    let t = server("pg_undefined")
        .conf(
            "WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"\n\
             <Location /hello>\n  WSGIProcessGroup nope\n</Location>",
        )
        .config_test();
    assert!(!t.ok, "accepted:\n{}", t.output);
    assert!(
        t.output.contains("WSGIProcessGroup") && t.output.contains("'nope'"),
        "{}",
        t.output
    );
}

/// mod_wsgi 4.9.4 answers 500 too, with a line that has no id.
#[test]
fn process_group_from_the_environment_naming_no_group_is_500() {
    let mut s = server("pg_env")
        .conf(
            "WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"\n\
             <Location /hello>\n  SetEnv PG nope\n  WSGIProcessGroup %{ENV:PG}\n</Location>",
        )
        .start();
    let mut c = s.connect();
    c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(
        c.local_port(),
        "RWSGI0031: no WSGI daemon process called 'nope'",
    );
}
