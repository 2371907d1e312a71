//! Daemon mode: `WSGIDaemonProcess` groups run by the Apache parent, requests relayed to
//! them over a UNIX socket.
mod common;
use common::*;

fn config_output(lines: &[&str]) -> ConfigTest {
    let mut b = server("daemon_conf").fragment("apps");
    for l in lines {
        b = b.conf(l);
    }
    b.config_test()
}

#[test]
fn unknown_or_bad_daemon_options_are_rejected_naming_the_option() {
    for (line, needle) in [
        ("WSGIDaemonProcess site bogus-option=1", "bogus-option"),
        ("WSGIDaemonProcess site threads=many", "threads"),
        ("WSGIDaemonProcess site processes=0", "processes"),
        ("WSGIDaemonProcess site umask=999", "umask"),
    ] {
        let t = config_output(&[line]);
        assert!(!t.ok, "accepted {line:?}:\n{}", t.output);
        assert!(t.output.contains(needle), "{line:?}:\n{}", t.output);
        assert!(t.output.contains("WSGIDaemonProcess"), "{}", t.output);
    }
}

/// A server whose `/d` runs `daemon.wsgi` in group `site` (with `options`), `/e` the same
/// app embedded, and `/denv` + `/eenv` the environ dump in each mode.
fn daemon_server(name: &str, mpm: Mpm, options: &str) -> Builder {
    server(name)
        .mpm(mpm)
        .conf(&format!("WSGIDaemonProcess site {options}"))
        .conf("WSGIScriptAlias /d \"@APPS@/daemon.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /e \"@APPS@/daemon.wsgi\"")
        .conf("WSGIScriptAlias /denv \"@APPS@/environ.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /eenv \"@APPS@/environ.wsgi\"")
}

fn hello_in_daemon(mpm: Mpm) {
    let srv = daemon_server(&format!("daemon_hello_{}", mpm.name()), mpm, "threads=1").start();
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    let d = r.json();
    let e = srv.get("/e/pid").json();
    let pid = d.n("pid") as u32;
    // The parent forked it as the group's daemon, and it is not the embedded server.
    srv.assert_log(&format!(
        "daemon process group 'site' started process {pid}"
    ));
    assert_ne!(pid, e.n("pid") as u32);
    assert_ne!(pid, srv.parent_pid());
    assert_eq!(d.s("process_group"), "site");
    assert_eq!(e.s("process_group"), "");
    // threads=1, processes= not given: neither flag (mod_wsgi's rule).
    assert!(!d.b("multithread") && !d.b("multiprocess"), "{}", r.text());
    assert_ne!(d.n("uid") as u32, 0, "the daemon runs as root");
}

#[test]
fn hello_is_served_by_a_daemon_process_event() {
    hello_in_daemon(Mpm::Event);
}

#[test]
fn hello_is_served_by_a_daemon_process_prefork() {
    hello_in_daemon(Mpm::Prefork);
}
