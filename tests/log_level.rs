//! `LogLevel rwsgi:<level>` sets the module's own log level, as for any Apache module: its
//! debug lines (interpreters created and ended, scripts loaded and reloaded, requests
//! dispatched) appear with `rwsgi:debug` only, and `rwsgi:warn` silences its info lines
//! under a server-wide `LogLevel info`.
mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn write_app(path: &Path, version: &str) {
    let body = format!(
        "def application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [b'{version}']\n"
    );
    fs::write(path, body).expect("write script");
    // A later mtime even within one clock tick of the previous write.
    let bump = SystemTime::now() + Duration::from_secs(2);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(bump))
        .expect("set mtime");
}

/// Serves a script, edits it, serves it again, stops: the whole error log.
fn log_of_a_run(name: &str, level: &str) -> String {
    let mut s = server(name)
        .single_process()
        .log_level(level)
        .conf("WSGIScriptAlias /app \"@DATA@/app.wsgi\"")
        .start();
    let script = s.data.join("app.wsgi");
    for version in ["v1", "v2"] {
        write_app(&script, version);
        let r = s.get("/app");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text(), version);
    }
    s.stop();
    s.error_log_text()
}

/// Our debug lines: (id, text every such line must contain).
fn debug_lines(port: u16) -> Vec<(&'static str, String)> {
    let group = format!("application group 'localhost:{port}|/app'");
    vec![
        (
            "RWSGI0420",
            format!("created the Python sub-interpreter of {group}"),
        ),
        (
            "RWSGI0421",
            format!("ended the Python sub-interpreter of {group}"),
        ),
        ("RWSGI0422", "loaded WSGI script '".to_string()),
        ("RWSGI0423", "its modification time changed".to_string()),
        (
            "RWSGI0424",
            format!("request for '/app' dispatched to {group}"),
        ),
    ]
}

fn lines_with<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(id)).collect()
}

#[test]
fn rwsgi_debug_shows_the_module_debug_lines() {
    let log = log_of_a_run("loglevel_debug", "warn rwsgi:debug");
    let port = port_in(&log);
    for (id, text) in debug_lines(port) {
        let lines = lines_with(&log, id);
        eprintln!("{}", lines.join("\n"));
        assert!(!lines.is_empty(), "no {id} line:\n{}", tail(&log, 40));
        for l in &lines {
            assert!(l.contains("[rwsgi:debug]"), "{id} not at rwsgi:debug: {l}");
            assert!(l.contains(&text), "{id} line lacks {text:?}: {l}");
        }
    }
    // One load and one reload of one script.
    assert_eq!(lines_with(&log, "RWSGI0422").len(), 1, "{}", tail(&log, 40));
    assert_eq!(lines_with(&log, "RWSGI0423").len(), 1, "{}", tail(&log, 40));
    assert_eq!(lines_with(&log, "RWSGI0424").len(), 2, "{}", tail(&log, 40));
}

/// The listening port, from the dispatch lines' group name (`localhost:PORT|/app`).
fn port_in(log: &str) -> u16 {
    log.split("'localhost:")
        .nth(1)
        .and_then(|r| r.split('|').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no group name in the log:\n{}", tail(log, 40)))
}

#[test]
fn plain_warn_hides_the_module_debug_lines() {
    let log = log_of_a_run("loglevel_warn", "warn");
    for id in [
        "RWSGI0420",
        "RWSGI0421",
        "RWSGI0422",
        "RWSGI0423",
        "RWSGI0424",
    ] {
        assert!(
            lines_with(&log, id).is_empty(),
            "{id} at LogLevel warn:\n{log}"
        );
    }
    assert!(
        !log.contains("[rwsgi:"),
        "rwsgi lines at LogLevel warn:\n{log}"
    );
}

#[test]
fn rwsgi_warn_silences_the_module_info_lines() {
    // RWSGI0054 is an info line each child writes at exit: present under `info`...
    let log = log_of_a_run("loglevel_info", "info");
    assert!(
        log.contains("[rwsgi:info]") && log.contains("RWSGI0054"),
        "{}",
        tail(&log, 40)
    );
    // ...and gone with `rwsgi:warn`, while other modules keep logging at info.
    let log = log_of_a_run("loglevel_info_rwsgi_warn", "info rwsgi:warn");
    assert!(!log.contains("[rwsgi:info]"), "{}", tail(&log, 40));
    assert!(!log.contains("RWSGI0054"), "{}", tail(&log, 40));
    assert!(
        log.lines().any(|l| l.contains(":info]")),
        "no other module's info lines:\n{log}"
    );
}

#[test]
fn rwsgi_debug_covers_import_scripts_at_child_start() {
    // Preloading runs outside any request: its lines go to the main server's log, where the
    // per-module level must apply too.
    let mut s = server("loglevel_preload")
        .single_process()
        .log_level("warn rwsgi:debug")
        .conf(
            "WSGIImportScript \"@APPS@/hello.wsgi\" process-group=%{GLOBAL} \
             application-group=preloaded",
        )
        .start();
    for needle in [
        "RWSGI0420: created the Python sub-interpreter of application group 'preloaded'",
        "RWSGI0422: loaded WSGI script '",
    ] {
        assert!(
            s.wait_log(needle, Duration::from_secs(5)),
            "no {needle:?} without any request:\n{}",
            tail(&s.error_log_text(), 40)
        );
    }
    s.stop();
    let log = s.error_log_text();
    assert!(
        log.contains(
            "RWSGI0421: ended the Python sub-interpreter of application group 'preloaded'"
        ),
        "{}",
        tail(&log, 40)
    );
}
