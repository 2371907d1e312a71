//! What bounds the number of Python sub-interpreters in an Apache child: application group
//! names use the virtual host's port, never the port a client writes in `Host`;
//! `WSGIMaximumInterpreters` caps them (503 past it); and a group whose interpreter fails to
//! set up is ended and refused from then on instead of being created again per request.
mod common;
use common::*;

const APP: &str = "@APPS@/interp_limits.wsgi";

/// GET `path` with the given `Host` header on a fresh connection.
fn get_host(s: &Server, path: &str, host: &str) -> Response {
    s.raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
}

fn json_ok(r: &Response, what: &str) -> Json {
    assert_eq!(r.status, 200, "{what}: {}", r.describe());
    r.json()
}

/// Under mod_wsgi 4.9.4 (and before this change) every distinct port in `Host` made a new
/// `%{RESOURCE}` group, so a client could create interpreters at will: 300 requests grew
/// the child by hundreds of MB. Deliberate difference: the group uses the vhost's port.
#[test]
fn host_port_does_not_make_new_interpreters() {
    let s = server("il_hostport")
        .single_process()
        .threads(4)
        .conf(&format!("WSGIScriptAlias /res \"{APP}\""))
        .conf(&format!(
            "WSGIScriptAlias /srv \"{APP}\" application-group=%{{SERVER}}"
        ))
        .conf(&format!(
            "WSGIScriptAlias /host \"{APP}\" application-group=%{{HOST}}"
        ))
        .conf(&format!(
            "WSGIScriptAlias /global \"{APP}\" application-group=%{{GLOBAL}}"
        ))
        .start();
    let before = json_ok(&s.get("/global"), "/global");
    let mut groups = Vec::new();
    for port in 20001..=20300 {
        let r = get_host(&s, "/res", &format!("localhost:{port}"));
        groups.push(json_ok(&r, "/res").s("group").to_string());
    }
    let after = json_ok(&s.get("/global"), "/global");
    assert_eq!(before.n("pid"), after.n("pid"), "the child was replaced");
    let grown_kb = after.n("rss_kb") - before.n("rss_kb");
    eprintln!(
        "child RSS: {} kB before, {} kB after 300 distinct Host ports (+{grown_kb} kB); \
         {} interpreters",
        before.n("rss_kb"),
        after.n("rss_kb"),
        after.n("interpreters")
    );
    let want = format!("localhost:{}|/res", s.port);
    assert!(
        groups.iter().all(|g| *g == want),
        "groups named after the client's Host port: {:?}",
        &groups[..3]
    );
    assert_eq!(after.n("interpreters"), 2.0, "main + the one /res group");
    assert!(grown_kb < 32.0 * 1024.0, "child grew by {grown_kb} kB");
    let srv = json_ok(&get_host(&s, "/srv", "localhost:20001"), "/srv");
    assert_eq!(srv.s("group"), format!("localhost:{}", s.port));
    let host = json_ok(&get_host(&s, "/host", "other.example:20002"), "/host");
    assert_eq!(host.s("group"), format!("other.example:{}", s.port));
    assert_eq!(host.s("module_group"), host.s("group"));
}

/// A `ServerName` with a port names the group with that port, whatever port the client
/// wrote or connected to (the port the virtual host serves).
#[test]
fn servername_port_names_the_group() {
    let s = server("il_vhost")
        .single_process()
        .conf(&format!(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName localhost\n  \
             WSGIScriptAlias /res \"{APP}\"\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@PORT@>\n  ServerName vh.test:8123\n  \
             WSGIScriptAlias /res \"{APP}\"\n</VirtualHost>"
        ))
        .start();
    for host in ["vh.test", "vh.test:20001", "vh.test:8123"] {
        let j = json_ok(&get_host(&s, "/res", host), host);
        assert_eq!(j.s("group"), "vh.test:8123|/res", "Host: {host}");
    }
    let j = json_ok(&get_host(&s, "/res", "localhost:20002"), "localhost");
    assert_eq!(j.s("group"), format!("localhost:{}|/res", s.port));
}

#[test]
fn maximum_interpreters_refuses_new_groups_with_503() {
    let mut s = server("il_max")
        .single_process()
        .conf("WSGIMaximumInterpreters 3")
        .conf(&format!("WSGIScriptAlias /g1 \"{APP}\""))
        .conf(&format!("WSGIScriptAlias /g2 \"{APP}\""))
        .conf(&format!("WSGIScriptAlias /g3 \"{APP}\""))
        .conf(&format!("WSGIScriptAlias /g4 \"{APP}\""))
        .conf(&format!(
            "WSGIScriptAlias /global \"{APP}\" application-group=%{{GLOBAL}}"
        ))
        .start();
    for g in ["/g1", "/g2", "/g3"] {
        json_ok(&s.get(g), g);
    }
    for _ in 0..2 {
        let r = s.get("/g4");
        assert_eq!(r.status, 503, "{}", r.describe());
        let lines = s.expect_error(r.client_port, "RWSGI0040");
        let line = lines.iter().find(|l| l.contains("RWSGI0040")).unwrap();
        assert!(
            line.contains(&format!("'localhost:{}|/g4'", s.port))
                && line.contains("already created 3")
                && line.contains("WSGIMaximumInterpreters"),
            "{line}"
        );
    }
    // Existing groups and the main interpreter still serve.
    let j = json_ok(&s.get("/g1"), "/g1");
    assert_eq!(j.n("interpreters"), 4.0, "main + 3 groups: {j:?}");
    json_ok(&s.get("/global"), "/global");
}

#[test]
fn maximum_interpreters_is_validated_and_main_server_only() {
    let t = server("il_conf")
        .conf("WSGIMaximumInterpreters many")
        .config_test();
    assert!(
        !t.ok
            && t.output
                .contains("WSGIMaximumInterpreters: 'many' is not valid")
    );
    let t = server("il_conf_vh")
        .conf("<VirtualHost 127.0.0.1:@PORT@>\n  WSGIMaximumInterpreters 3\n</VirtualHost>")
        .config_test();
    assert!(
        !t.ok
            && t.output
                .contains("cannot occur within <VirtualHost> section"),
        "{}",
        t.output
    );
}

fn setup_fail_server(name: &str, mpm: Mpm) -> Server {
    server(name)
        .mpm(mpm)
        .single_process()
        .threads(4)
        .conf("WSGIPythonPath \"@APPS@/setupfail\"")
        .conf(&format!(
            "WSGIScriptAlias /broken \"{APP}\" application-group=broken-one"
        ))
        .conf(&format!(
            "WSGIScriptAlias /tbroken \"{APP}\" application-group=threaded-broken-one"
        ))
        .conf(&format!(
            "WSGIScriptAlias /ok \"{APP}\" application-group=fine"
        ))
        .start()
}

fn attempts(s: &Server, group: &str) -> usize {
    s.wait_data_file("setup-attempts", std::time::Duration::from_secs(5))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(&format!(" {group}")))
        .count()
}

/// Asserts the full error (with its traceback) for the first request of a failed group.
fn full_error_logged(s: &mut Server, r: &Response, group: &str) {
    assert_eq!(r.status, 500, "{}", r.describe());
    let text = s.expect_error(r.client_port, "SetUpRefused").join("\n");
    assert!(
        text.contains("RWSGI0041") && text.contains(&format!("'{group}'")),
        "{text}"
    );
    assert!(text.contains("Traceback"), "no traceback: {text}");
}

/// Asserts a later request of a failed group: a 500 with the short line, no second traceback.
fn short_line_logged(s: &mut Server, r: &Response, group: &str) {
    assert_eq!(r.status, 500, "{}", r.describe());
    let lines = s.expect_error(r.client_port, "RWSGI0042");
    assert!(
        lines.iter().all(|l| !l.contains("Traceback")),
        "full error logged again: {lines:?}"
    );
    let line = lines.iter().find(|l| l.contains("RWSGI0042")).unwrap();
    assert!(
        line.contains(&format!("'{group}'")) && line.contains("SetUpRefused"),
        "{line}"
    );
}

#[test]
fn failed_setup_is_ended_once_and_refused_after() {
    let mut s = setup_fail_server("il_fail", Mpm::Event);
    let before = json_ok(&s.get("/ok"), "/ok");
    let first = s.get("/broken");
    let later: Vec<Response> = (0..50).map(|_| s.get("/broken")).collect();
    let after = json_ok(&s.get("/ok"), "/ok");
    let grown_kb = after.n("rss_kb") - before.n("rss_kb");
    eprintln!(
        "child RSS: {} kB before, {} kB after 51 requests to a group whose set-up fails \
         (+{grown_kb} kB)",
        before.n("rss_kb"),
        after.n("rss_kb")
    );
    full_error_logged(&mut s, &first, "broken-one");
    for r in &later {
        short_line_logged(&mut s, r, "broken-one");
    }
    assert_eq!(
        attempts(&s, "broken-one"),
        1,
        "interpreter set up more than once"
    );
    assert_eq!(before.n("pid"), after.n("pid"), "the child was replaced");
    // The failed interpreter was ended: main + "fine" remain.
    assert_eq!(after.n("interpreters"), 2.0, "{after:?}");
    assert!(grown_kb < 8.0 * 1024.0, "child grew by {grown_kb} kB");
}

/// A set-up that started a thread before failing: ending that interpreter would abort the
/// process, so it is left in place, still created only once, and Python is not finalised
/// at child exit (that would abort too). Child exit differs per MPM: both are run.
#[test]
fn failed_setup_with_a_running_thread_is_left_alone() {
    left_alone(Mpm::Event);
}

#[test]
fn failed_setup_with_a_running_thread_is_left_alone_prefork() {
    left_alone(Mpm::Prefork);
}

fn left_alone(mpm: Mpm) {
    let mut s = setup_fail_server(&format!("il_fail_thread_{}", mpm.name()), mpm);
    let before = json_ok(&s.get("/ok"), "/ok");
    let r = s.get("/tbroken");
    full_error_logged(&mut s, &r, "threaded-broken-one");
    s.expect_error(r.client_port, "RWSGI0043");
    for _ in 0..5 {
        let r = s.get("/tbroken");
        short_line_logged(&mut s, &r, "threaded-broken-one");
    }
    assert_eq!(attempts(&s, "threaded-broken-one"), 1);
    let after = json_ok(&s.get("/ok"), "/ok");
    assert_eq!(before.n("pid"), after.n("pid"), "the child was replaced");
    assert_eq!(
        after.n("interpreters"),
        3.0,
        "main + fine + the one left: {after:?}"
    );
    // Finalising Python with that interpreter still there would abort the child at stop.
    s.stop();
    s.assert_log("RWSGI0044");
}
