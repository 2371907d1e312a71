//! The daemon-mode server directives: `WSGISocketPrefix`, `WSGISocketRotation`,
//! `WSGIAcceptMutex`, `WSGIRestrictProcess` and `WSGIRestrictEmbedded`; and a
//! `WSGIDispatchScript` that picks a daemon group.
mod common;
use common::graceful::GracefulExt;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `/d` runs `daemon.wsgi` in group `site`, `/e` the same app embedded.
fn daemon_server(name: &str, lines: &[&str]) -> Builder {
    let mut b = server(name)
        .conf("WSGIDaemonProcess site threads=2")
        .conf("WSGIScriptAlias /d \"@APPS@/daemon.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /e \"@APPS@/daemon.wsgi\"");
    for l in lines {
        b = b.conf(l);
    }
    b
}

/// The sockets of group `site` in `dir`.
fn site_sockets(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".site.sock"))
        .collect()
}

fn daemon_pid(srv: &Server) -> u32 {
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    r.json().n("pid") as u32
}

/// Waits (bounded) until `/d` is served by a daemon other than `old`.
fn wait_new_daemon(srv: &Server, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = srv.get("/d/pid");
        if r.status == 200 && r.json().n("pid") as u32 != old {
            return r.json().n("pid") as u32;
        }
        assert!(Instant::now() < deadline, "{}", r.describe());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn socket_prefix_puts_the_sockets_under_it() {
    // Relative to ServerRoot; the harness makes data/ in it.
    let srv = daemon_server("ddir_prefix", &["WSGISocketPrefix data/wsgisock"]).start();
    assert_eq!(daemon_pid(&srv), daemon_pid(&srv));
    let under = site_sockets(&srv.root.join("data"));
    assert_eq!(under.len(), 1, "{under:?}");
    let name = under[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("wsgisock.{}.", srv.parent_pid())),
        "{name}"
    );
    assert!(site_sockets(&srv.root.join("run")).is_empty());
}

#[test]
fn socket_prefix_in_a_missing_directory_is_a_config_error() {
    let b = daemon_server("ddir_prefix_bad", &["WSGISocketPrefix data/not-a-dir/wsgi"]);
    let t = b.config_test();
    assert!(!t.ok, "{}", t.output);
    assert!(
        t.output.contains("WSGISocketPrefix")
            && t.output.contains("not-a-dir")
            && t.output.contains("not usable"),
        "{}",
        t.output
    );
}

/// A graceful restart with a request in flight: it finishes in the old daemon, new
/// requests reach a new one; the socket path changes only when sockets rotate.
fn graceful_with_rotation(name: &str, rotation: Option<&str>, mpm: Mpm) -> (PathBuf, PathBuf) {
    let lines: Vec<String> = rotation
        .map(|r| format!("WSGISocketRotation {r}"))
        .into_iter()
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    // Prefork reports both children busy (AH00161) while one waits for the slow request.
    let srv = daemon_server(name, &lines)
        .mpm(mpm)
        .allow_log("AH00161")
        .start();
    let old = daemon_pid(&srv);
    let before = site_sockets(&srv.root.join("run"));
    assert_eq!(before.len(), 1, "{before:?}");
    std::thread::scope(|sc| {
        let busy = sc.spawn(|| srv.get("/d/slow"));
        std::thread::sleep(Duration::from_millis(500));
        srv.graceful();
        wait_new_daemon(&srv, old);
        let r = busy.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.json().n("pid") as u32, old);
    });
    let after = site_sockets(&srv.root.join("run"));
    assert_eq!(after.len(), 1, "{after:?}");
    // An embedded request after the restart still works, and the new daemon keeps serving.
    assert_eq!(srv.get("/e/pid").status, 200);
    assert_eq!(srv.get("/d/pid").status, 200);
    (before[0].clone(), after[0].clone())
}

fn rotation_off(mpm: Mpm) {
    let name = format!("ddir_rotation_off_{}", mpm.name());
    let (before, after) = graceful_with_rotation(&name, Some("Off"), mpm);
    assert_eq!(before, after);
    // The stable name carries the children's uid, as mod_wsgi's does.
    assert!(
        before.to_string_lossy().contains(".u"),
        "{}",
        before.display()
    );
}

#[test]
fn socket_rotation_off_keeps_the_socket_path_across_a_graceful_restart() {
    rotation_off(Mpm::Event);
}

#[test]
fn socket_rotation_off_keeps_the_socket_path_across_a_graceful_restart_prefork() {
    rotation_off(Mpm::Prefork);
}

#[test]
fn socket_rotation_on_gives_new_sockets_at_a_graceful_restart() {
    let (before, after) = graceful_with_rotation("ddir_rotation_on", None, Mpm::Event);
    assert_ne!(before, after);
    let (before, after) =
        graceful_with_rotation("ddir_rotation_on_explicit", Some("On"), Mpm::Prefork);
    assert_ne!(before, after);
}

#[test]
fn accept_mutex_is_accepted_with_one_no_effect_warning() {
    let srv = daemon_server("ddir_mutex", &["WSGIAcceptMutex fcntl"]).start();
    assert_eq!(srv.get("/d/pid").status, 200);
    let log = srv.error_log_text();
    let n = log
        .lines()
        .filter(|l| l.contains("RWSGI0430: WSGIAcceptMutex has no effect") && l.contains(":warn]"))
        .count();
    assert_eq!(n, 1, "{log}");
}

#[test]
fn restrict_process_refuses_groups_not_listed() {
    let mut srv = server("ddir_restrict_process")
        .conf("WSGIDaemonProcess site threads=1")
        .conf("WSGIDaemonProcess other threads=1")
        .conf("WSGIScriptAlias /r/site \"@APPS@/daemon.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /r/other \"@APPS@/daemon.wsgi\" process-group=other")
        .conf("WSGIScriptAlias /r/emb \"@APPS@/daemon.wsgi\"")
        .conf("WSGIScriptAlias /free \"@APPS@/daemon.wsgi\" process-group=other")
        .conf("<Location /r>\n  WSGIRestrictProcess site\n</Location>")
        .start();
    let r = srv.get("/r/site/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().s("process_group"), "site");
    // Outside the restricted location the same group is fine.
    assert_eq!(srv.get("/free/pid").status, 200);
    let (r, _) = srv.get_with_error(
        "/r/other/pid",
        "RWSGI0670: process group 'other' may not be used",
    );
    assert_eq!(r.status, 500, "{}", r.describe());
    let (r, _) = srv.get_with_error(
        "/r/emb/pid",
        "RWSGI0670: process group '%{GLOBAL}' may not be used",
    );
    assert_eq!(r.status, 500, "{}", r.describe());
}

#[test]
fn restrict_process_applies_to_a_group_chosen_from_the_environment() {
    let mut srv = server("ddir_restrict_env")
        .conf("WSGIDaemonProcess site threads=1")
        .conf("WSGIDaemonProcess other threads=1")
        .conf("WSGIScriptAlias /x \"@APPS@/daemon.wsgi\"")
        .conf("<Location /x/a>\n  SetEnv GRP site\n</Location>")
        .conf("<Location /x/b>\n  SetEnv GRP other\n</Location>")
        .conf("<Location /x>\n  WSGIProcessGroup %{ENV:GRP}\n  WSGIRestrictProcess site %{GLOBAL}\n</Location>")
        .start();
    let r = srv.get("/x/a/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().s("process_group"), "site");
    let (r, _) = srv.get_with_error("/x/b/pid", "process group 'other' may not be used");
    assert_eq!(r.status, 500, "{}", r.describe());
}

fn restrict_embedded(mpm: Mpm) {
    let b = daemon_server(
        &format!("ddir_restrict_embedded_{}", mpm.name()),
        &["WSGIRestrictEmbedded On"],
    )
    .mpm(mpm)
    .log_level("info");
    let b = if mpm == Mpm::Prefork {
        b.allow_log("AH00161")
    } else {
        b
    };
    let mut srv = b.start();
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().s("process_group"), "site");
    let daemon = r.json().n("pid") as u32;
    let (r, lines) = srv.get_with_error(
        "/e/pid",
        "RWSGI0671: WSGIRestrictEmbedded On forbids running the WSGI application",
    );
    assert_eq!(r.status, 500, "{}", r.describe());
    assert!(lines.iter().any(|l| l.contains("daemon.wsgi")), "{lines:?}");
    // Python was not started in the Apache children: each says so, none failed to start it.
    let log = srv.error_log_text();
    for pid in srv.child_pids().into_iter().filter(|p| *p != daemon) {
        assert!(
            log.contains(&format!(
                "RWSGI0672: WSGIRestrictEmbedded On: Python is not started in Apache child {pid} "
            )),
            "child {pid}:\n{log}"
        );
    }
    assert!(!log.contains("RWSGI0030"), "{log}");
}

#[test]
fn restrict_embedded_refuses_embedded_requests_and_serves_daemon_ones_event() {
    restrict_embedded(Mpm::Event);
}

#[test]
fn restrict_embedded_refuses_embedded_requests_and_serves_daemon_ones_prefork() {
    restrict_embedded(Mpm::Prefork);
}

/// `/dd` runs `daemon.wsgi` under a dispatch script that picks group `somedaemon` for a query
/// string with `daemon` in it; `lines` come first.
fn dispatch_server(name: &str, lines: &[&str]) -> Server {
    let mut b = server(name);
    for l in lines {
        b = b.conf(l);
    }
    b.conf("WSGIDaemonProcess somedaemon threads=1")
        .conf("WSGIScriptAlias /dd \"@APPS@/daemon.wsgi\"")
        .conf("<Location /dd>\n  WSGIDispatchScript \"@APPS@/auth/dispatch.py\"\n</Location>")
        .start()
}

/// The dispatch script of [`dispatch_server`] sends `?daemon` to `somedaemon`.
fn assert_dispatched_to_the_daemon(srv: &Server) {
    let r = srv.get("/dd/pid?daemon");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().s("process_group"), "somedaemon");
}

#[test]
fn a_dispatch_script_can_choose_a_daemon_group() {
    let srv = dispatch_server("ddir_dispatch", &[]);
    assert_dispatched_to_the_daemon(&srv);
    let r = srv.get("/dd/pid");
    assert_eq!(r.json().s("process_group"), "");
}

#[test]
fn restrict_embedded_still_starts_python_where_a_dispatch_script_needs_it() {
    let srv = dispatch_server(
        "ddir_restrict_embedded_dispatch",
        &["WSGIRestrictEmbedded On"],
    );
    assert_dispatched_to_the_daemon(&srv);
    assert!(!srv.error_log_text().contains("RWSGI0672"));
}

// ---- WSGIIgnoreActivity ------------------------------------------------------------------------

/// The pids of the daemon serving `path`, asked every 0.5 s for 4.5 s.
fn pids_while_polling(srv: &Server, path: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for _ in 0..9 {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        pids.push(r.json().n("pid") as u32);
        std::thread::sleep(Duration::from_millis(500));
    }
    pids
}

/// Requests under `WSGIIgnoreActivity On` (a health check) do not keep an idle daemon alive:
/// with inactivity-timeout=2 it is recycled although one arrives every 0.5 s, while the same
/// rhythm of ordinary requests keeps the same process.
#[test]
fn ignore_activity_requests_do_not_reset_the_inactivity_timeout() {
    let srv = daemon_server("ddir_ignore_activity", &[])
        .conf("WSGIDaemonProcess idle threads=2 inactivity-timeout=2")
        .conf("WSGIScriptAlias /busy \"@APPS@/daemon.wsgi\" process-group=idle")
        .conf("WSGIScriptAlias /health \"@APPS@/daemon.wsgi\" process-group=idle")
        .conf("<Location /health>\n  WSGIIgnoreActivity On\n</Location>")
        .start();
    let busy = pids_while_polling(&srv, "/busy/pid");
    assert!(
        busy.iter().all(|p| *p == busy[0]),
        "recycled while busy: {busy:?}"
    );
    let health = pids_while_polling(&srv, "/health/pid");
    assert!(
        health.iter().any(|p| *p != health[0]),
        "not recycled although only ignored requests came: {health:?}"
    );
    if !srv.module.is_reference() {
        srv.assert_log("recycles: inactivity-timeout=2 reached");
    }
}

// ---- WSGIErrorOverride -------------------------------------------------------------------------

/// `/on` and `/off` run `error_override.wsgi` in daemon group `eo`, with and without
/// `WSGIErrorOverride On`; `/emb` runs it embedded with the directive On.
fn error_override_server(name: &str, mpm: Mpm) -> Server {
    let b = server(name)
        .mpm(mpm)
        .conf("WSGIDaemonProcess eo threads=2")
        .conf("WSGIScriptAlias /on \"@APPS@/error_override.wsgi\" process-group=eo")
        .conf("WSGIScriptAlias /off \"@APPS@/error_override.wsgi\" process-group=eo")
        .conf("WSGIScriptAlias /emb \"@APPS@/error_override.wsgi\"")
        .conf("<Location /on>\n  WSGIErrorOverride On\n</Location>")
        .conf("<Location /emb>\n  WSGIErrorOverride On\n</Location>")
        .conf("ErrorDocument 404 \"/errors/404.html\"")
        .conf("ErrorDocument 500 \"site error page for 500\"");
    let b = if mpm == Mpm::Prefork {
        b.allow_log("AH00161")
    } else {
        b
    };
    let srv = b.start();
    let errors = srv.root.join("htdocs/errors");
    std::fs::create_dir_all(&errors).unwrap();
    std::fs::write(errors.join("404.html"), "site page for 404\n").unwrap();
    srv
}

/// With `WSGIErrorOverride On` a 4xx/5xx answer of a daemon application is replaced by
/// Apache's own page for the status (ErrorDocument: a static file, a text); its body never
/// reaches the client. Off, other statuses and embedded mode (as in mod_wsgi) keep the
/// application's answer. The directive acts here, so it is not reported as without effect.
fn error_override(mpm: Mpm) {
    let srv = error_override_server(&format!("ddir_error_override_{}", mpm.name()), mpm);
    let check = |path: &str, status: u16, body: &str| {
        let r = srv.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.describe());
        assert_eq!(r.text(), body, "{path}: {}", r.describe());
        r
    };
    check("/on/404", 404, "site page for 404\n");
    // A long error body is dropped, not read through: the error page comes at once, and the
    // daemon is free for the next request.
    let t = Instant::now();
    check("/on/big404", 404, "site page for 404\n");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    check("/on/500", 500, "site error page for 500");
    check("/on/200", 200, "app 200 body");
    let r = check("/off/404", 404, "app 404 body");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    check("/off/500", 500, "app 500 body");
    check("/emb/404", 404, "app 404 body");
    // No ErrorDocument for 503: Apache's standard page, never the application's.
    let r = srv.get("/on/503");
    assert_eq!(r.status, 503, "{}", r.describe());
    assert!(
        r.text().contains("Service Unavailable") && !r.text().contains("app 503 body"),
        "{}",
        r.describe()
    );
    // Headers meant for the error page survive the override.
    let r = srv.get("/on/401");
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(!r.text().contains("app 401 body"), "{}", r.describe());
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"app\""));
    if !srv.module.is_reference() {
        let log = srv.error_log_text();
        assert!(!log.contains("RWSGI0430: WSGIErrorOverride"), "{log}");
    }
}

#[test]
fn error_override_serves_apache_error_pages_for_daemon_errors_event() {
    error_override(Mpm::Event);
}

#[test]
fn error_override_serves_apache_error_pages_for_daemon_errors_prefork() {
    error_override(Mpm::Prefork);
}
