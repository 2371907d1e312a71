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
        "mod_wsgi.application_start",
        // Daemon mode's own phases (0.0 embedded), checked below.
        "mod_wsgi.queue_start",
        "mod_wsgi.daemon_start",
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
    let t = |k: &str| de[k].str().parse::<f64>().unwrap();
    let (queued, taken, called) = (
        t("mod_wsgi.queue_start"),
        t("mod_wsgi.daemon_start"),
        t("mod_wsgi.application_start"),
    );
    assert!(
        0.0 < queued && queued <= taken && taken <= called,
        "{queued} {taken} {called}"
    );
    assert_eq!(ee["mod_wsgi.queue_start"].str(), "0.0");
    assert_eq!(de["mod_wsgi.process_group"].str(), "site");
    assert_eq!(de["wsgi.multithread"].str(), "True");
    assert_eq!(de["wsgi.multiprocess"].str(), "True");
}

/// Parallel requests reach both processes. Connections persist, and a process keeps its
/// connections while it has a free thread: prefork's two children (two requests at a time)
/// spread only when one thread per process is all there is.
fn parallel_requests_use_every_process(mpm: Mpm) {
    let threads = if mpm == Mpm::Prefork { 1 } else { 4 };
    let srv = daemon_server(
        &format!("daemon_parallel_{}", mpm.name()),
        mpm,
        &format!("processes=2 threads={threads}"),
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
                    assert!(j.b("multithread") == (threads > 1) && j.b("multiprocess"));
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
    let r = srv.raw(&request_bytes(
        "GET",
        "/d/exit",
        &[("Connection", "close")],
        b"",
    ));
    let port = r.client_port;
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
fn socket_timeout_gives_504_naming_the_group() {
    let mut srv = daemon_server("daemon_timeout", Mpm::Event, "threads=2 socket-timeout=1").start();
    let r = srv.raw(&request_bytes(
        "GET",
        "/d/slow",
        &[("Connection", "close")],
        b"",
    ));
    let port = r.client_port;
    assert_eq!(r.status, 504, "{}", r.describe());
    srv.expect_error(
        port,
        "daemon process group 'site' sent no response within the socket timeout",
    );
    assert_eq!(srv.get("/d/pid").status, 200);
}

/// With the only thread busy and a backlog of one, further requests wait at most
/// connect-timeout, then get 503.
#[test]
fn full_backlog_gives_503_after_connect_timeout() {
    let mut srv = daemon_server(
        "daemon_backlog",
        Mpm::Event,
        "threads=1 listen-backlog=1 connect-timeout=1",
    )
    .start();
    let statuses: Vec<(u16, u16)> = std::thread::scope(|sc| {
        let first = sc.spawn(|| (srv.get("/d/slow").status, 0));
        std::thread::sleep(std::time::Duration::from_millis(500));
        let rest: Vec<_> = (0..5)
            .map(|_| {
                sc.spawn(|| {
                    let r = srv.get("/d/slow");
                    (r.status, r.client_port)
                })
            })
            .collect();
        let mut out = vec![first.join().unwrap()];
        out.extend(rest.into_iter().map(|h| h.join().unwrap()));
        out
    });
    assert_eq!(statuses[0].0, 200);
    let refused: Vec<u16> = statuses
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, p)| *p)
        .collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    for p in refused {
        srv.expect_error(p, "cannot connect to daemon process group 'site'");
    }
}

fn socket_path(srv: &Server) -> std::path::PathBuf {
    std::fs::read_dir(srv.root.join("run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".site.sock"))
        .expect("the group's socket under DefaultRuntimeDir")
}

#[test]
fn socket_is_private_and_strangers_are_refused() {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut srv = daemon_server("daemon_peer", Mpm::Event, "threads=1").start();
    let path = socket_path(&srv);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path:?}");
    let www = std::process::Command::new("id")
        .args(["-u", "www-data"])
        .output()
        .unwrap();
    let www: u32 = String::from_utf8_lossy(&www.stdout).trim().parse().unwrap();
    assert_eq!(meta.uid(), www);
    // Root (this test) is not Apache's child user: refused by SO_PEERCRED.
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let _ = s.write_all(b"R\x02\x01\x00\x00\x00\x00\x00");
    assert!(srv.wait_log(
        "refused a connection from uid Some(0)",
        std::time::Duration::from_secs(5)
    ));
    // As Apache's user: a malformed frame, then a well-formed head without the secret.
    let send_as_www = |bytes: &str| {
        let st = std::process::Command::new("runuser")
            .args(["-u", "www-data", "--", "python3", "-c"])
            .arg(format!(
                "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\n\
                 s.sendall({bytes})\ntime.sleep(0.3)",
                path.display().to_string()
            ))
            .status()
            .unwrap();
        assert!(st.success());
    };
    send_as_www("b'XYZW\\0\\0\\0\\0'");
    assert!(srv.wait_log(
        "bad request frame: not a mod_rwsgi frame",
        std::time::Duration::from_secs(5)
    ));
    // The protocol version comes from the build, so a bump does not turn these into
    // version errors.
    use mod_rwsgi::daemon::protocol::{RequestHead, VERSION};
    send_as_www(&format!(
        "b'R\\x{VERSION:02x}\\x01\\x00\\xff\\xff\\xff\\x7f'"
    ));
    assert!(srv.wait_log(
        "RequestHead frame of 2147483647 bytes exceeds its limit",
        std::time::Duration::from_secs(5)
    ));
    // A head whose every field is empty or zero: parses, but carries no secret.
    let n = RequestHead::<Vec<u8>>::default().encode().len();
    send_as_www(&format!(
        "b'R\\x{VERSION:02x}\\x01\\x00' + ({n}).to_bytes(4,'little') + bytes({n})"
    ));
    assert!(srv.wait_log(
        "request without this generation's secret refused",
        std::time::Duration::from_secs(5)
    ));
    srv.allow_log("RWSGI0512");
    srv.allow_log("RWSGI0513");
    srv.allow_log("RWSGI0514");
    assert_eq!(srv.get("/d/pid").status, 200);
}

/// Bodies stream through the daemon socket a frame at a time: moving 256 MiB each way grows
/// neither the daemon nor any Apache child by more than 32 MiB.
#[test]
fn bodies_stream_in_bounded_memory_both_ways() {
    const MIB: usize = 256;
    let srv = daemon_server("daemon_memory", Mpm::Event, "threads=2").start();
    let daemon = srv.get("/d/pid").json().n("pid") as u32;
    let children: Vec<u32> = srv
        .child_pids()
        .into_iter()
        .filter(|p| *p != daemon)
        .collect();
    let before: Vec<(u32, u64)> = children
        .iter()
        .chain([&daemon])
        .map(|&p| (p, peak_rss(p)))
        .collect();
    let mut c = srv.connect();
    let head = format!(
        "POST /d/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        MIB << 20
    );
    c.send(head.as_bytes()).unwrap();
    let chunk = pattern(1 << 20, 3);
    for _ in 0..MIB {
        c.send(&chunk).unwrap();
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("length") as usize, MIB << 20);
    c.send(format!("GET /d/download?{MIB} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let r = c.read_head().unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    let (n, _) = c.drain_body(&r).unwrap();
    assert_eq!(n as usize, MIB << 20);
    for (p, b) in before {
        let grew = peak_rss(p).saturating_sub(b);
        eprintln!("pid {p}: peak RSS grew {} KiB", grew >> 10);
        assert!(grew < 32 << 20, "pid {p} grew {} MiB", grew >> 20);
    }
}

/// `-k graceful` while a daemon request runs: it finishes (200) in the old daemon, new
/// requests go to the new generation, and the old daemon ends once its request is done.
#[test]
fn graceful_restart_lets_a_daemon_request_finish_event() {
    graceful_restart_lets_a_daemon_request_finish(Mpm::Event);
}

#[test]
fn graceful_restart_lets_a_daemon_request_finish_prefork() {
    graceful_restart_lets_a_daemon_request_finish(Mpm::Prefork);
}

fn graceful_restart_lets_a_daemon_request_finish(mpm: Mpm) {
    let srv = daemon_server(
        &format!("daemon_graceful_busy_{}", mpm.name()),
        mpm,
        "threads=2",
    )
    .start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    std::thread::scope(|sc| {
        let busy = sc.spawn(|| srv.get("/d/slow"));
        std::thread::sleep(std::time::Duration::from_millis(500));
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
            assert!(std::time::Instant::now() < deadline, "{}", r.describe());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let r = busy.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.json().n("pid") as u32, old);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pid_alive(old) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!pid_alive(old), "old daemon {old} still alive");
    srv.assert_log(&format!(
        "RWSGI0506: daemon process {old} of the previous generation"
    ));
}

#[test]
fn hard_restart_replaces_idle_daemons_at_once() {
    let srv = daemon_server("daemon_restart", Mpm::Event, "processes=2 threads=1").start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let started = std::time::Instant::now();
    let out = std::process::Command::new("apache2")
        .arg("-f")
        .arg(&srv.conf)
        .args(["-k", "restart"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("apache2 -k restart");
    assert!(out.status.success());
    while pid_alive(old) && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!(
        "old idle daemon gone {:?} after -k restart",
        started.elapsed()
    );
    assert!(!pid_alive(old), "old daemon {old} still alive");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = srv.get("/d/pid");
        if r.status == 200 {
            assert_ne!(r.json().n("pid") as u32, old);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.describe());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// maximum-requests: a daemon drains and ends after that many requests; the parent starts
/// its replacement at once, and no request fails.
#[test]
fn maximum_requests_recycles_the_daemon() {
    let srv = daemon_server("daemon_maxreq", Mpm::Event, "threads=1 maximum-requests=2").start();
    let mut pids = Vec::new();
    for _ in 0..6 {
        let r = srv.get("/d/pid");
        assert_eq!(r.status, 200, "{}", r.describe());
        pids.push(r.json().n("pid") as u32);
    }
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
    assert_ne!(pids[3], pids[4]);
    srv.assert_log(&format!(
        "daemon process group 'site' process {} ended (exit status or signal 0)",
        pids[0]
    ));
}

#[test]
fn inactivity_timeout_recycles_an_idle_daemon() {
    let srv = daemon_server("daemon_idle", Mpm::Event, "threads=1 inactivity-timeout=1").start();
    let first = srv.get("/d/pid").json().n("pid") as u32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while pid_alive(first) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!pid_alive(first), "idle daemon {first} still alive");
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_ne!(r.json().n("pid") as u32, first);
}

#[test]
fn display_name_titles_the_daemon_and_import_scripts_run_in_it() {
    let srv = daemon_server(
        "daemon_title",
        Mpm::Event,
        "threads=1 display-name=%{GROUP}",
    )
    .conf(
        "WSGIImportScript \"@APPS@/preload.wsgi\" process-group=site \
             application-group=%{GLOBAL}",
    )
    .start();
    let pid = srv.get("/d/pid").json().n("pid") as u32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(b"(wsgi:site)\0"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "(wsgi:site)");
    // The import script ran in the daemon (in its main interpreter), not in Apache's children.
    let markers: Vec<String> = std::fs::read_dir(&srv.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("preload-"))
        .collect();
    assert_eq!(markers, vec![format!("preload-{pid}-main")]);
}

/// The response rules of the WSGI core hold through the daemon: custom statuses, iterables,
/// an exception before the head (500, logged for the request's client), exc_info before
/// and after the head (the latter cuts the response), and files by wsgi.file_wrapper
/// without Python reads.
#[test]
fn response_rules_hold_through_the_daemon() {
    let mut srv = daemon_server("daemon_response", Mpm::Event, "threads=2")
        .conf("WSGIScriptAlias /dr \"@APPS@/response.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /dfw \"@APPS@/filewrapper.wsgi\" process-group=site")
        .start();
    let r = srv.get("/dr?mode=status&s=404%20Not%20Here");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (404, "Not Here"),
        "{}",
        r.describe()
    );
    for (mode, body) in [
        ("list", &b"Hello World"[..]),
        ("generator", b"abc"),
        ("write", b"onetwothree"),
        ("all_empty", b""),
    ] {
        let r = srv.get(&format!("/dr?mode={mode}"));
        assert_eq!(r.status, 200, "{mode}: {}", r.describe());
        assert!(r.complete, "{mode}: {:?}", r.error);
        assert_eq!(r.body, body, "{mode}");
    }
    let r = srv.get("/dr?mode=exc_info_before");
    assert_eq!((r.status, r.reason.as_str()), (500, "Oops"));
    assert_eq!(r.header("X-Error"), Some("yes"));
    assert_eq!(r.body, b"error page");

    let (r, _) = srv.get_with_error("/dr?mode=exc_before", "boom-before-start-response");
    assert_eq!(r.status, 500);

    let tok = token("dexcafter");
    let (r, _) = srv.get_with_error(
        &format!("/dr?mode=exc_info_after&token={tok}"),
        "exc_info after headers",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.starts_with(b"partial"), "{}", r.describe());
    assert!(!r.complete, "not cut: {}", r.describe());

    let data = pattern((3 << 20) + 123, 9);
    std::fs::write(srv.data.join("blob.bin"), &data).unwrap();
    let r = srv.get("/dfw?file=blob.bin&kind=noread");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body == data, "file content differs");
}

#[test]
fn a_daemon_never_runs_as_root() {
    let srv = daemon_server("daemon_root", Mpm::Event, "threads=1 user=root")
        .allow_log("RWSGI0510")
        .allow_log("RWSGI0503")
        .start();
    assert!(srv.wait_log(
        "refusing to run a daemon process as root",
        std::time::Duration::from_secs(5)
    ));
    // Replaced with a growing pause, never in a tight loop.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let refusals = srv
        .error_log_text()
        .matches("refusing to run a daemon process as root")
        .count();
    assert!((1..=3).contains(&refusals), "{refusals} refusals in 2 s");
}

/// queue-timeout: a request that waited longer for a daemon thread gets 504 without the
/// app running; the one that held the thread is unaffected.
#[test]
fn queue_timeout_gives_504_without_running_the_app() {
    let mut srv = daemon_server(
        "daemon_queue",
        Mpm::Event,
        "threads=1 queue-timeout=1 send-buffer-size=65536 receive-buffer-size=65536",
    )
    .start();
    let (first, (late, port)) = std::thread::scope(|sc| {
        let first = sc.spawn(|| srv.get("/d/slow").status);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let late = srv.get("/d/pid");
        (first.join().unwrap(), (late.status, late.client_port))
    });
    assert_eq!((first, late), (200, 504));
    srv.expect_error(port, "more than queue-timeout=1");
}

fn get_host(srv: &Server, host: &str, path: &str) -> (Response, u16) {
    let mut c = srv.connect();
    let port = c.local_port();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    (c.read_response(false).unwrap(), port)
}

/// A group defined in a virtual host serves that host (also through WSGIProcessGroup);
/// another host that names it at request time gets 500, with the reason logged.
#[test]
fn a_virtual_host_group_serves_only_its_host() {
    let mut srv = server("daemon_vhost")
        .conf(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName a.test\n  \
             WSGIDaemonProcess only_a threads=1\n  \
             WSGIScriptAlias /va \"@APPS@/daemon.wsgi\"\n  \
             <Location /va>\n    WSGIProcessGroup only_a\n  </Location>\n</VirtualHost>",
        )
        .conf(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName b.test\n  SetEnv GROUP only_a\n  \
             WSGIScriptAlias /vb \"@APPS@/daemon.wsgi\"\n  \
             <Location /vb>\n    WSGIProcessGroup %{ENV:GROUP}\n  </Location>\n</VirtualHost>",
        )
        .start();
    let (r, _) = get_host(&srv, "a.test", "/va/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().s("process_group"), "only_a");
    let (r, port) = get_host(&srv, "b.test", "/vb/pid");
    assert_eq!(r.status, 500, "{}", r.describe());
    srv.expect_error(port, "is defined in another virtual host");
}

/// request-timeout: a wedged request makes its daemon restart (after graceful-timeout);
/// that request gets 502 and the replacement serves the next one.
#[test]
fn request_timeout_restarts_a_wedged_daemon() {
    let mut srv = daemon_server(
        "daemon_reqtimeout",
        Mpm::Event,
        "threads=1 request-timeout=1 graceful-timeout=1",
    )
    .allow_log("RWSGI0518")
    .start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let started = std::time::Instant::now();
    let r = srv.raw(&request_bytes(
        "GET",
        "/d/hang",
        &[("Connection", "close")],
        b"",
    ));
    let port = r.client_port;
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.describe());
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    srv.expect_error(port, "failed before the response head");
    srv.assert_log("longer than request-timeout=1 allows (1.0 s with 1 threads)");
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_ne!(r.json().n("pid") as u32, old);
}

fn stop_with_a_busy_daemon(mpm: Mpm) {
    let mut srv = daemon_server(
        &format!("daemon_stop_busy_{}", mpm.name()),
        mpm,
        "threads=2",
    )
    .allow_log("RWSGI0536")
    .start();
    let daemon = srv.get("/d/pid").json().n("pid") as u32;
    let _hanging = srv.send_get("/d/hang");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    srv.stop();
    let took = started.elapsed();
    eprintln!("stop with a busy daemon took {took:?}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "stop took {took:?}"
    );
    assert!(!pid_alive(daemon), "daemon {daemon} outlived the stop");
}

#[test]
fn stop_with_a_busy_daemon_is_fast_event() {
    stop_with_a_busy_daemon(Mpm::Event);
}

#[test]
fn stop_with_a_busy_daemon_is_fast_prefork() {
    stop_with_a_busy_daemon(Mpm::Prefork);
}

#[test]
fn header_buffer_size_limits_response_header_lines() {
    let mut srv = daemon_server(
        "daemon_hdrsize",
        Mpm::Event,
        "threads=1 header-buffer-size=8192",
    )
    .start();
    assert_eq!(srv.get("/d/bigheader?8000").status, 200);
    let (r, _) = srv.get_with_error("/d/bigheader?9000", "more than header-buffer-size=8192");
    assert_eq!(r.status, 500);
}

/// interrupt-timeout: a request past request-timeout first gets mod_wsgi.RequestTimeout;
/// an app that unwinds answers 504 and its process lives on.
#[test]
fn interrupt_timeout_ends_a_long_request_with_504_and_keeps_the_daemon() {
    let srv = daemon_server(
        "daemon_interrupt",
        Mpm::Event,
        "threads=1 request-timeout=1 interrupt-timeout=5",
    )
    .start();
    let pid = srv.get("/d/pid").json().n("pid") as u32;
    let started = std::time::Instant::now();
    let r = srv.get("/d/spin");
    assert_eq!(r.status, 504, "{}", r.describe());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    srv.assert_log("mod_wsgi.RequestTimeout raised in it (interrupt-timeout=5)");
    assert_eq!(srv.get("/d/pid").json().n("pid") as u32, pid);
}

#[test]
fn script_user_requires_the_owner_and_no_foreign_write_access() {
    use std::os::unix::fs::PermissionsExt;
    let mut srv = server("daemon_script_user")
        .conf("WSGIDaemonProcess mine threads=1 script-user=root")
        .conf("WSGIDaemonProcess theirs threads=1 script-user=www-data")
        .conf("WSGIScriptAlias /mine \"@APPS@/daemon.wsgi\" process-group=mine")
        .conf("WSGIScriptAlias /theirs \"@APPS@/daemon.wsgi\" process-group=theirs")
        .conf("WSGIScriptAlias /loose \"@APPS@/loose/daemon.wsgi\" process-group=mine")
        .start();
    assert_eq!(srv.get("/mine/pid").status, 200);
    let (r, port) = get_host(&srv, "localhost", "/theirs/pid");
    assert_eq!(r.status, 403, "{}", r.describe());
    srv.expect_error(port, "is owned by 0, not script-user uid 33");
    let loose = srv.apps.join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::copy(srv.apps.join("daemon.wsgi"), loose.join("daemon.wsgi")).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o775)).unwrap();
    std::fs::set_permissions(
        loose.join("daemon.wsgi"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (r, port) = get_host(&srv, "localhost", "/loose/pid");
    assert_eq!(r.status, 403, "{}", r.describe());
    srv.expect_error(port, "is writable by its group or by others (mode 775)");
}

/// SIGUSR1 from an operator evicts a daemon: it drains, ends, and the parent replaces it.
#[test]
fn sigusr1_from_an_operator_evicts_and_replaces_a_daemon() {
    let srv = daemon_server("daemon_evict", Mpm::Event, "threads=1 eviction-timeout=2").start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let st = std::process::Command::new("kill")
        .args(["-USR1", &old.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pid_alive(old) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!pid_alive(old), "evicted daemon {old} still alive");
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_ne!(r.json().n("pid") as u32, old);
    srv.assert_log(&format!("process {old} recycles: evicted (SIGUSR1)"));
}

/// deadlock-timeout: a process whose GIL stays held ends and is replaced.
#[test]
fn deadlock_timeout_replaces_a_daemon_whose_gil_is_stuck() {
    let mut srv = daemon_server(
        "daemon_deadlock",
        Mpm::Event,
        "threads=2 deadlock-timeout=2",
    )
    .allow_log("RWSGI0520")
    .allow_log("RWSGI0503")
    .start();
    let old = srv.get("/d/pid").json().n("pid") as u32;
    let r = srv.raw(&request_bytes(
        "GET",
        "/d/gilhog",
        &[("Connection", "close")],
        b"",
    ));
    let port = r.client_port;
    assert_eq!(r.status, 502, "{}", r.describe());
    srv.expect_error(port, "failed before the response head");
    srv.assert_log("longer than deadlock-timeout=2");
    let r = srv.get("/d/pid");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_ne!(r.json().n("pid") as u32, old);
}
