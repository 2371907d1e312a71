//! `<WSGIInterpreterOptions>`: the settings of each section reach exactly the interpreters it
//! selects, embedded and in daemon processes; the most specific section wins, a later one on a
//! tie; `WSGIPythonPath` layers add up with the most specific first. Settings that cannot act
//! on this Python say so at start-up.
mod common;
use common::*;

const SECTIONS: &str = "\
WSGIDaemonProcess io threads=2
WSGIScriptAlias /e/a \"@APPS@/interp_options.wsgi\" application-group=alpha
WSGIScriptAlias /e/b \"@APPS@/interp_options.wsgi\" application-group=beta
WSGIScriptAlias /e/g \"@APPS@/interp_options.wsgi\" application-group=%{GLOBAL}
WSGIScriptAlias /d/a \"@APPS@/interp_options.wsgi\" process-group=io application-group=alpha
WSGIScriptAlias /d/b \"@APPS@/interp_options.wsgi\" process-group=io application-group=beta
<WSGIInterpreterOptions>
    WSGIPythonPath /nonexistent/all
</WSGIInterpreterOptions>
<WSGIInterpreterOptions application-group=alpha>
    WSGIPythonPath /nonexistent/alpha1:/nonexistent/alpha2
    WSGIRestrictStdin On
    WSGIRestrictStdout On
    WSGIRestrictSignal Off
    WSGIPerInterpreterGIL On
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group=io>
    WSGISwitchInterval 0.002
    WSGIRestrictStdout Off
    WSGIFreeThreading On
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group=io application-group=beta>
    WSGIPythonPath /nonexistent/io-beta
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group='%{GLOBAL}' application-group=%{GLOBAL}>
    WSGIRestrictSignal Off
</WSGIInterpreterOptions>
<WSGIInterpreterOptions application-group=%{ENV:APP_GROUP}>
    WSGIRestrictStdin On
</WSGIInterpreterOptions>";

struct Seen {
    stdin: bool,
    stdout: bool,
    signal_intercepted: bool,
    switch: f64,
    path: Vec<String>,
}

fn seen(srv: &Server, url: &str, group: &str) -> Seen {
    let r = srv.get(url);
    assert_eq!(r.status, 200, "{url}: {}", r.describe());
    let j = r.json();
    assert_eq!(j.s("process_group"), group, "{url}");
    Seen {
        stdin: j.b("stdin_restricted"),
        stdout: j.b("stdout_restricted"),
        signal_intercepted: j.b("signal_intercepted"),
        switch: j.n("switchinterval"),
        path: j
            .at("path")
            .arr()
            .iter()
            .map(|p| p.str().to_string())
            .collect(),
    }
}

/// Expected to FAIL under mod_wsgi 4.9.4, which has no `<WSGIInterpreterOptions>`.
#[test]
fn interpreter_options_apply_to_the_interpreters_they_select() {
    let srv = server("interp_options").conf(SECTIONS).start();
    let fake = |p: &Seen| -> Vec<String> {
        p.path
            .iter()
            .filter(|d| d.starts_with("/nonexistent/"))
            .cloned()
            .collect()
    };

    // Embedded, application group alpha: its section's settings, its path layer first.
    let ea = seen(&srv, "/e/a", "");
    assert!(ea.stdin && ea.stdout && !ea.signal_intercepted);
    assert_eq!(ea.path[..2], ["/nonexistent/alpha1", "/nonexistent/alpha2"]);
    assert_eq!(
        fake(&ea),
        [
            "/nonexistent/alpha1",
            "/nonexistent/alpha2",
            "/nonexistent/all"
        ]
    );
    assert_eq!(ea.switch, 0.005);

    // Embedded beta: only the empty section (path) applies; defaults otherwise.
    let eb = seen(&srv, "/e/b", "");
    assert!(!eb.stdin && !eb.stdout && eb.signal_intercepted);
    assert_eq!(fake(&eb), ["/nonexistent/all"]);
    assert_eq!(eb.switch, 0.005);

    // The main interpreter of the Apache children: process-group=%{GLOBAL}
    // application-group=%{GLOBAL}.
    let eg = seen(&srv, "/e/g", "");
    assert!(!eg.stdin && !eg.stdout && !eg.signal_intercepted);

    // Daemon io, alpha: alpha's and io's sections are equally specific; io's, written later,
    // wins for stdout. The switch interval is io's.
    let da = seen(&srv, "/d/a", "io");
    assert!(da.stdin && !da.stdout && !da.signal_intercepted);
    assert_eq!(da.switch, 0.002);
    assert_eq!(da.path[0], "/nonexistent/alpha1");

    // Daemon io, beta: the two-key section's path comes first, before the empty section's.
    let db = seen(&srv, "/d/b", "io");
    assert!(!db.stdin && !db.stdout && db.signal_intercepted);
    assert_eq!(db.switch, 0.002);
    assert_eq!(db.path[0], "/nonexistent/io-beta");
    assert_eq!(fake(&db), ["/nonexistent/io-beta", "/nonexistent/all"]);

    if srv.module.is_reference() {
        return;
    }
    // What cannot act here is named at start-up, never dropped silently.
    let log = srv.error_log_text();
    for needle in [
        "RWSGI0430: WSGIPerInterpreterGIL On has no effect: Python 3.11",
        "RWSGI0430: WSGIFreeThreading On has no effect",
        "RWSGI0430: <WSGIInterpreterOptions> with process-group=(any) \
         application-group=%{ENV:APP_GROUP} applies to no interpreter",
    ] {
        assert!(log.contains(needle), "{needle}:\n{log}");
    }
    assert!(
        !log.contains("RWSGI0430: <WSGIInterpreterOptions> is accepted"),
        "{log}"
    );
}

/// Under one shared GIL the switch interval cannot differ between the interpreters of a
/// process: mod_wsgi refuses it in a section that selects an application group, and so does
/// mod_rwsgi. Expected to FAIL under mod_wsgi 4.9.4 (no such section).
#[test]
fn switch_interval_for_one_application_group_is_a_config_error() {
    let t = server("interp_options_switch")
        .conf(
            "<WSGIInterpreterOptions application-group=alpha>\n    WSGISwitchInterval 0.002\n\
             </WSGIInterpreterOptions>",
        )
        .config_test();
    assert!(!t.ok, "{}", t.output);
    assert!(
        t.output.contains("WSGISwitchInterval") && t.output.contains("share one GIL"),
        "{}",
        t.output
    );
}
