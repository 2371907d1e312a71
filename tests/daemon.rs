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
    // The harness's prefork server has two children; requests that wait for a daemon keep
    // both busy, which prefork reports at [error] level.
    let b = if mpm == Mpm::Prefork {
        server(name).allow_log("AH00161")
    } else {
        server(name)
    };
    b.mpm(mpm)
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

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn post_body_of_one_mib_echoes_both_ways() {
    let srv = daemon_server("daemon_echo", Mpm::Event, "threads=2").start();
    let body = pattern(1 << 20, 7);
    let r = srv.post("/d/echo", &body, &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed body differs");
}

/// The environ a daemon app sees is the embedded one, except the keys that name the
/// process (and those that differ between any two requests).
#[test]
fn environ_equals_embedded_except_process_keys() {
    let srv = daemon_server("daemon_environ", Mpm::Event, "processes=1 threads=3").start();
    let headers = [("X-Custom", "value"), ("Cookie", "a=b")];
    let d = srv.request("GET", "/denv/p/i?q=1", &headers, b"").json();
    let e = srv.request("GET", "/eenv/p/i?q=1", &headers, b"").json();
    let allowed = [
        "mod_wsgi.process_group",
        "wsgi.multithread",
        "wsgi.multiprocess",
        // Per request, connection or thread.
        "REMOTE_PORT",
        "mod_wsgi.request_id",
        "mod_wsgi.request_start",
        "mod_wsgi.script_start",
        "mod_wsgi.thread_id",
        "mod_wsgi.thread_requests",
        "mod_wsgi.total_requests",
        // Object reprs carry addresses; their types are compared below.
        "wsgi.input",
        "wsgi.errors",
        "wsgi.file_wrapper",
    ];
    let (de, ee) = (d.at("environ").obj(), e.at("environ").obj());
    let norm = |v: &Json| v.str().replace("/denv", "/eenv").replace("denv", "eenv");
    let dk: Vec<_> = de.keys().collect();
    let ek: Vec<_> = ee.keys().collect();
    assert_eq!(dk, ek, "different key sets");
    for (k, v) in de {
        if allowed.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(norm(v), norm(&ee[k]), "environ[{k}] differs");
    }
    assert_eq!(d.at("types").obj(), e.at("types").obj());
    assert_eq!(de["mod_wsgi.process_group"].str(), "site");
    assert_eq!(de["wsgi.multithread"].str(), "True");
    assert_eq!(de["wsgi.multiprocess"].str(), "True");
}

fn parallel_requests_use_every_process(mpm: Mpm) {
    let srv = daemon_server(
        &format!("daemon_parallel_{}", mpm.name()),
        mpm,
        "processes=2 threads=4",
    )
    .threads(25)
    .start();
    let pids: Vec<u32> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..50)
            .map(|_| {
                sc.spawn(|| {
                    let r = srv.get("/d/sleep");
                    assert_eq!(r.status, 200, "{}", r.describe());
                    let j = r.json();
                    assert!(j.b("multithread") && j.b("multiprocess"));
                    j.n("pid") as u32
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "requests landed on {distinct:?}");
}

#[test]
fn parallel_requests_use_both_processes_event() {
    parallel_requests_use_every_process(Mpm::Event);
}

#[test]
fn parallel_requests_use_both_processes_prefork() {
    parallel_requests_use_every_process(Mpm::Prefork);
}

fn daemon_death_gives_502_then_a_new_daemon(mpm: Mpm) {
    let mut srv = daemon_server(&format!("daemon_death_{}", mpm.name()), mpm, "threads=2").start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let mut c = srv.connect();
    let port = c.local_port();
    c.send(&request_bytes(
        "GET",
        "/d/exit",
        &[("Connection", "close")],
        b"",
    ))
    .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 502, "{}", r.describe());
    srv.expect_error(
        port,
        "daemon process group 'site' failed before the response head",
    );
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    let new = r.json().n("pid") as u32;
    assert_ne!(new, old);
    srv.assert_log(&format!(
        "daemon process group 'site' process {old} died (exit status or signal 3)"
    ));
    srv.allow_log(&format!("process {old} died"));
}

#[test]
fn daemon_death_gives_502_then_a_new_daemon_event() {
    daemon_death_gives_502_then_a_new_daemon(Mpm::Event);
}

#[test]
fn daemon_death_gives_502_then_a_new_daemon_prefork() {
    daemon_death_gives_502_then_a_new_daemon(Mpm::Prefork);
}

fn stop_is_fast_and_ends_the_daemons(mpm: Mpm) {
    let mut srv = daemon_server(
        &format!("daemon_stop_{}", mpm.name()),
        mpm,
        "processes=2 threads=2",
    )
    .start();
    let mut pids = Vec::new();
    for _ in 0..6 {
        pids.push(srv.get("/d/pid").json().n("pid") as u32);
    }
    let started = std::time::Instant::now();
    srv.stop();
    let took = started.elapsed();
    eprintln!("stop with idle daemons took {took:?}");
    assert!(
        took < std::time::Duration::from_secs(2),
        "stop took {took:?}"
    );
    for p in pids {
        assert!(!pid_alive(p), "daemon {p} outlived the stop");
    }
}

#[test]
fn stop_is_fast_and_ends_the_daemons_event() {
    stop_is_fast_and_ends_the_daemons(Mpm::Event);
}

#[test]
fn stop_is_fast_and_ends_the_daemons_prefork() {
    stop_is_fast_and_ends_the_daemons(Mpm::Prefork);
}

#[test]
fn graceful_restart_serves_from_new_daemons() {
    let srv = daemon_server("daemon_graceful", Mpm::Event, "threads=2").start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let out = std::process::Command::new("apache2")
        .arg("-f")
        .arg(&srv.conf)
        .args(["-k", "graceful"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("apache2 -k graceful");
    assert!(out.status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = srv.get("/d/pid");
        if r.status == 200 && r.json().n("pid") as u32 != old {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new daemon after graceful: {}",
            r.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!pid_alive(old), "old daemon {old} still alive");
}

#[test]
fn process_group_of_another_virtual_host_is_refused() {
    let t = config_output(&[
        "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName a.test\n  WSGIDaemonProcess only_a threads=1\n</VirtualHost>",
        "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName b.test\n  WSGIScriptAlias /x \"@APPS@/hello.wsgi\" process-group=only_a\n</VirtualHost>",
    ]);
    assert!(!t.ok, "{}", t.output);
    assert!(t.output.contains("only_a"), "{}", t.output);
    let t = config_output(&[
        "WSGIDaemonProcess dup threads=1",
        "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName a.test\n  WSGIDaemonProcess dup threads=1\n</VirtualHost>",
    ]);
    assert!(
        !t.ok && t.output.contains("already defined"),
        "{}",
        t.output
    );
}

#[test]
fn options_not_acted_on_yet_are_named_at_start() {
    let srv = daemon_server(
        "daemon_not_honoured",
        Mpm::Event,
        "threads=1 maximum-requests=100 display-name=%{GROUP}",
    )
    .start();
    srv.assert_log("WSGIDaemonProcess site: these options are accepted but not acted on yet by this version of mod_rwsgi: maximum-requests, display-name");
    assert_eq!(srv.get("/d/pid").status, 200);
}
