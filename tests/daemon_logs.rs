//! A daemon process logs to the ErrorLog of the virtual host that defined its group (the main
//! server's when defined there), at that host's LogLevel, as mod_wsgi does: Python output at
//! import and from threads outside any request, and its own lifecycle lines. A request's own
//! lines (wsgi.errors) go to the request's host, tagged with its client; the parent's lines
//! about daemon processes stay in the main log, as mod_wsgi's do. Template
//! `daemon_logs.conf.in`, app `daemon_logs.wsgi`.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn start(name: &str) -> Server {
    server(name)
        .fragment("daemon_logs")
        .allow_log("daemon_logs:")
        .start()
}

/// GET `path?tok` with `Host: host`; the request's lines are expected. Returns the answer.
fn hit(s: &mut Server, host: &str, path: &str, tok: &str) -> Json {
    let req = format!("GET {path}?{tok} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let r = s.raw(req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.describe());
    s.allow_log(&Server::client_tag(r.client_port));
    r.json()
}

/// Waits until every needle is in log `file`, then checks that none is in log `other`.
fn assert_only_in(s: &Server, file: &str, other: &str, needles: &[String]) {
    for n in needles {
        assert!(
            s.wait_log_file(file, n, WAIT),
            "{n:?} not in {file}:\n{}\n--- {other}:\n{}",
            tail(&s.log_text(file), 30),
            tail(&s.log_text(other), 30)
        );
    }
    let text = s.log_text(other);
    for n in needles {
        assert!(
            !text.contains(n.as_str()),
            "{n:?} in {other} too:\n{}",
            tail(&text, 30)
        );
    }
}

#[test]
fn a_group_defined_in_a_vhost_logs_to_that_vhost() {
    let mut s = start("daemon_logs_vhost");
    let tok = token("a");
    let j = hit(&mut s, "a.test", "/a", &tok);
    assert_eq!(j.s("group"), "in_a");
    let pid = j.n("pid") as u32;
    assert_only_in(
        &s,
        "a_error.log",
        "error.log",
        &[
            format!("daemon_logs: imported pid={pid}"),
            format!("daemon_logs: background print in in_a {tok}"),
            format!("RWSGI0580: daemon process group 'in_a' process {pid} ready"),
            // maximum-requests=1: the process recycles after this request.
            format!("RWSGI0516: daemon process group 'in_a' process {pid} recycles"),
        ],
    );
    // The parent's lines about the process: the main log, where mod_wsgi has them.
    assert_only_in(
        &s,
        "error.log",
        "a_error.log",
        &[
            format!("RWSGI0502: daemon process group 'in_a' started process {pid}"),
            format!("RWSGI0503: daemon process group 'in_a' process {pid} ended"),
        ],
    );
    let request_line = format!("daemon_logs: request line in in_a {tok}");
    assert_only_in(
        &s,
        "a_error.log",
        "error.log",
        std::slice::from_ref(&request_line),
    );
    let text = s.log_text("a_error.log");
    let line = text.lines().find(|l| l.contains(&request_line)).unwrap();
    assert!(line.contains("[client 127.0.0.1:"), "not tagged: {line}");
}

#[test]
fn a_group_defined_in_the_main_server_logs_to_the_main_log() {
    let mut s = start("daemon_logs_main");
    let tok = token("m");
    let j = hit(&mut s, "localhost", "/m", &tok);
    assert_eq!(j.s("group"), "in_main");
    let pid = j.n("pid") as u32;
    assert_only_in(
        &s,
        "error.log",
        "a_error.log",
        &[
            format!("daemon_logs: imported pid={pid}"),
            format!("daemon_logs: background print in in_main {tok}"),
            format!("RWSGI0502: daemon process group 'in_main' started process {pid}"),
            format!("RWSGI0580: daemon process group 'in_main' process {pid} ready"),
            format!("daemon_logs: request line in in_main {tok}"),
        ],
    );
}

#[test]
fn request_lines_go_to_the_request_host_and_process_lines_to_the_defining_one() {
    let mut s = start("daemon_logs_request_host");
    let tok = token("b");
    let j = hit(&mut s, "b.test", "/b", &tok);
    assert_eq!(j.s("group"), "in_main");
    // wsgi.errors during the request: b.test's log, as the same app embedded would log.
    assert_only_in(
        &s,
        "b_error.log",
        "error.log",
        &[format!("daemon_logs: request line in in_main {tok}")],
    );
    // A thread outside the request belongs to the process: the main server defined it.
    assert_only_in(
        &s,
        "error.log",
        "b_error.log",
        &[format!("daemon_logs: background print in in_main {tok}")],
    );
}

#[test]
fn the_defining_vhost_log_level_applies_to_its_daemon_lines() {
    let mut s = start("daemon_logs_level");
    let tok = token("q");
    let j = hit(&mut s, "quiet.test", "/q", &tok);
    let pid = j.n("pid") as u32;
    // Python output is logged at error level: above that host's LogLevel warn.
    assert_only_in(
        &s,
        "quiet_error.log",
        "error.log",
        &[
            format!("daemon_logs: imported pid={pid}"),
            format!("daemon_logs: background print in in_quiet {tok}"),
        ],
    );
    // Its info lines are below it: in no log, while the main server (at info) shows its own
    // group's.
    s.assert_log("RWSGI0580: daemon process group 'in_main' process");
    for file in ["quiet_error.log", "error.log"] {
        assert!(
            !s.log_text(file)
                .contains("RWSGI0580: daemon process group 'in_quiet'"),
            "an info line of in_quiet passed LogLevel warn in {file}:\n{}",
            tail(&s.log_text(file), 30)
        );
    }
}
