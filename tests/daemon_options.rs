//! `WSGIDaemonProcess` options acting on a daemon process's life: `startup-timeout`,
//! `server-metrics`, `chroot`, and Python's finalisation (atexit) when a daemon drains.
mod common;
use common::graceful::GracefulExt;
use common::*;
use std::time::{Duration, Instant};

/// Pids of group `group`'s processes the parent started so far, in order (`RWSGI0502`).
fn started_pids(srv: &Server, group: &str) -> Vec<u32> {
    let needle = format!("RWSGI0502: daemon process group '{group}' started process ");
    srv.error_log_text()
        .lines()
        .filter_map(|l| l.split_once(&needle))
        .filter_map(|(_, rest)| rest.trim().parse().ok())
        .collect()
}

/// Waits (bounded) until the parent has started `n` processes of `group`; their pids.
fn wait_started(srv: &Server, group: &str, n: usize, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let pids = started_pids(srv, group);
        if pids.len() >= n {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} processes of '{group}' started; log tail:\n{}",
            pids.len(),
            tail(&srv.error_log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until process `pid` has exited.
fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn startup_timeout_replaces_a_process_whose_script_never_loads() {
    let mut srv = server("dopt_startup")
        .conf("WSGIDaemonProcess site threads=2 startup-timeout=2")
        .conf("WSGIScriptAlias /s \"@APPS@/startup_fail.wsgi\" process-group=site")
        .start();
    let first = wait_started(&srv, "site", 1, Duration::from_secs(5))[0];
    assert!(srv.wait_log(&format!("process {first} ready"), Duration::from_secs(10)));
    // Left alone, a process whose app was never asked for is not restarted: the timer
    // starts with the first request.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(started_pids(&srv, "site"), vec![first]);
    let armed = Instant::now();
    let (r, lines) = srv.get_with_error("/s", "startup-ready marker missing");
    assert_eq!(r.status, 500, "{}", r.describe());
    assert!(lines.iter().any(|l| l.contains("RWSGI0101")), "{lines:?}");
    // Every further request fails the same way until the timer fires.
    let fired = format!("RWSGI0590: daemon process group 'site' process {first}:");
    while !srv.error_log_text().contains(&fired) {
        assert!(
            armed.elapsed() < Duration::from_secs(5),
            "no RWSGI0590 for {first}; tail:\n{}",
            tail(&srv.error_log_text(), 30)
        );
        let (r, _) = srv.get_with_error("/s", "startup-ready marker missing");
        assert_eq!(r.status, 500, "{}", r.describe());
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = armed.elapsed();
    assert!(took >= Duration::from_millis(1900), "fired after {took:?}");
    assert!(
        wait_gone(first, Duration::from_secs(3)),
        "{first} still alive"
    );
    let second = wait_started(&srv, "site", 2, Duration::from_secs(3))[1];
    assert_ne!(second, first);
    // The fix arrives: the replacement loads the app on its first request and keeps serving
    // past the timeout.
    std::fs::write(srv.data.join("startup-ready"), b"").unwrap();
    let r = srv.get("/s");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("pid") as u32, second);
    std::thread::sleep(Duration::from_millis(3000));
    let r = srv.get("/s");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("pid") as u32, second);
    assert_eq!(started_pids(&srv, "site").len(), 2);
    assert!(
        !srv.error_log_text()
            .contains(&format!("process {second}: no WSGI"))
    );
}

/// An import that hangs: the process is replaced after startup-timeout, the request in it
/// gets 502, and the replacement loads the app once the fix is in.
#[test]
fn startup_timeout_replaces_a_process_whose_import_hangs() {
    let mut srv = server("dopt_startup_hang")
        .conf("WSGIDaemonProcess site threads=2 startup-timeout=2")
        .conf("WSGIScriptAlias /h \"@APPS@/startup_hang.wsgi\" process-group=site")
        .start();
    let first = wait_started(&srv, "site", 1, Duration::from_secs(5))[0];
    let armed = Instant::now();
    let r = srv.get("/h");
    let took = armed.elapsed();
    assert_eq!(r.status, 502, "{}", r.describe());
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    srv.expect_error(r.client_port, "RWSGI0536");
    srv.assert_log(&format!(
        "RWSGI0590: daemon process group 'site' process {first}:"
    ));
    assert!(
        wait_gone(first, Duration::from_secs(3)),
        "{first} still alive"
    );
    let second = wait_started(&srv, "site", 2, Duration::from_secs(3))[1];
    std::fs::write(srv.data.join("startup-ready"), b"").unwrap();
    let r = srv.get("/h");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("pid") as u32, second);
}

/// `/x` runs `daemon_exit.wsgi` in group `site`, with these extra options.
fn exit_server(name: &str, options: &str) -> Builder {
    server(name)
        .conf(&format!("WSGIDaemonProcess site threads=2 {options}"))
        .conf("WSGIScriptAlias /x \"@APPS@/daemon_exit.wsgi\" process-group=site")
}

fn pid_of(srv: &Server, path: &str) -> u32 {
    let r = srv.get(path);
    assert_eq!(r.status, 200, "{}", r.describe());
    r.json().n("pid") as u32
}

/// Waits for the markers the atexit callback and the shutdown subscriber of `pid` write.
fn assert_finalised(srv: &Server, pid: u32) {
    for name in ["atexit", "stopping"] {
        assert!(
            srv.wait_data_file(&format!("{name}-{pid}"), Duration::from_secs(5))
                .is_some(),
            "no {name} marker from daemon {pid}; log tail:\n{}",
            tail(&srv.error_log_text(), 30)
        );
    }
    assert!(wait_gone(pid, Duration::from_secs(3)), "{pid} still alive");
}

#[test]
fn graceful_restart_finalises_python_in_the_old_daemon() {
    let srv = exit_server("dopt_exit_graceful", "").start();
    let old = pid_of(&srv, "/x?marker");
    srv.graceful();
    assert_finalised(&srv, old);
    assert_ne!(pid_of(&srv, "/x"), old);
}

#[test]
fn maximum_requests_recycle_finalises_python() {
    let srv = exit_server("dopt_exit_maxreq", "maximum-requests=2").start();
    let old = pid_of(&srv, "/x?marker");
    assert_eq!(pid_of(&srv, "/x"), old);
    assert_finalised(&srv, old);
    srv.assert_log(&format!(
        "RWSGI0516: daemon process group 'site' process {old} recycles"
    ));
    assert_ne!(pid_of(&srv, "/x"), old);
}

#[test]
fn inactivity_timeout_recycle_finalises_python() {
    let srv = exit_server("dopt_exit_idle", "inactivity-timeout=1").start();
    let old = pid_of(&srv, "/x?marker");
    assert_finalised(&srv, old);
    srv.assert_log(&format!(
        "RWSGI0516: daemon process group 'site' process {old} recycles: inactivity-timeout"
    ));
}

#[test]
fn eviction_finalises_python() {
    let srv = exit_server("dopt_exit_evict", "").start();
    let old = pid_of(&srv, "/x?marker");
    let out = std::process::Command::new("kill")
        .args(["-USR1", &old.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_finalised(&srv, old);
}

/// A daemon drains after a graceful restart; its atexit callback never returns. The process
/// still ends within shutdown-timeout (plus the drain's own moment), and says why.
#[test]
fn hanging_atexit_after_a_drain_is_cut_at_shutdown_timeout() {
    let srv = exit_server("dopt_exit_hang", "shutdown-timeout=2").start();
    let old = pid_of(&srv, "/x?hang");
    let t0 = Instant::now();
    srv.graceful();
    assert!(
        wait_gone(old, Duration::from_secs(3).saturating_sub(t0.elapsed())),
        "{old} alive {:?} after the graceful restart",
        t0.elapsed()
    );
    srv.assert_log(&format!(
        "RWSGI0591: daemon process group 'site' process {old}: Python's finalisation"
    ));
    // The new generation's daemon registered nothing: the stop at the end is prompt.
    assert_ne!(pid_of(&srv, "/x"), old);
}

/// `/on/smetrics` and `/off/smetrics`: `server_metrics()` in a group with `server-metrics=On`
/// and in one without, under `WSGIServerMetrics On`, which daemons do not inherit.
fn metrics_server(name: &str) -> Server {
    server(name)
        .conf("WSGIServerMetrics On")
        .conf("WSGIDaemonProcess on threads=2 server-metrics=On")
        .conf("WSGIDaemonProcess off threads=2")
        .conf("WSGIScriptAlias /on \"@APPS@/modules.wsgi\" process-group=on")
        .conf("WSGIScriptAlias /off \"@APPS@/modules.wsgi\" process-group=off")
        .start()
}

/// The Apache children the scoreboard lists, from `/on/smetrics`.
fn scoreboard_pids(srv: &Server) -> Vec<u32> {
    let r = srv.get("/on/smetrics");
    assert_eq!(r.status, 200, "{}", r.describe());
    server_metrics_pids(
        &r.json(),
        &[
            "current_time",
            "processes",
            "running_generation",
            "server_limit",
        ],
    )
}

#[test]
fn server_metrics_answer_only_in_a_group_that_turns_them_on() {
    let srv = metrics_server("dopt_smetrics");
    for round in 0..2 {
        if round == 1 {
            // Daemons forked at a graceful restart answer the same.
            srv.graceful();
        }
        // The scoreboard the daemon reads is the live one: it lists the Apache children.
        let pids = scoreboard_pids(&srv);
        let children = srv.child_pids();
        assert!(
            pids.iter().any(|p| children.contains(p)),
            "scoreboard pids {pids:?}, Apache children {children:?}"
        );
        let r = srv.get("/off/smetrics");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text().trim(), "null", "{}", r.describe());
    }
}

/// A throwaway chroot jail in which Python works: the system's standard library (and the
/// `python3` beside it, which names the prefix) hard-linked in, `app/jail.wsgi`, `htdocs/`.
/// Removed on drop (hard links only: the originals stay).
struct Jail(std::path::PathBuf);

impl Jail {
    fn new(tag: &str) -> Jail {
        let dir = std::env::temp_dir().join(format!("rwsgi-jail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["usr/lib", "usr/bin", "app", "htdocs"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let libs: Vec<_> = std::fs::read_dir("/usr/lib")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("os.py").is_file())
            .collect();
        assert!(!libs.is_empty(), "no /usr/lib/python3.N standard library");
        // Hard links when /tmp and /usr share a file system, else copies.
        let link = |from: &std::path::Path, into: &std::path::Path| {
            let linked = std::process::Command::new("cp")
                .arg("-al")
                .arg(from)
                .arg(into)
                .output()
                .unwrap();
            if !linked.status.success() {
                let copied = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(from)
                    .arg(into)
                    .output()
                    .unwrap();
                assert!(copied.status.success(), "cp {}: {copied:?}", from.display());
            }
        };
        for lib in &libs {
            link(lib, &dir.join("usr/lib"));
            let name = lib.file_name().unwrap();
            let exe = std::path::Path::new("/usr/bin").join(name);
            if exe.is_file() {
                link(&exe, &dir.join("usr/bin"));
                let _ = std::os::unix::fs::symlink(name, dir.join("usr/bin/python3"));
            }
        }
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/jail.wsgi"),
            dir.join("app/jail.wsgi"),
        )
        .unwrap();
        Jail(dir)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn chroot_jails_the_daemon_and_shows_it_paths_inside() {
    let jail = Jail::new("real");
    let root = jail.path();
    let srv = server("dopt_chroot")
        .conf(&format!("DocumentRoot \"{root}/htdocs\""))
        .conf(&format!(
            "<Directory \"{root}\">\n    Require all granted\n</Directory>"
        ))
        .conf(&format!(
            "WSGIDaemonProcess site threads=2 chroot={root} home=/app"
        ))
        .conf(&format!(
            "WSGIScriptAlias /j \"{root}/app/jail.wsgi\" process-group=site"
        ))
        .start();
    let r = srv.get("/j");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    let listing: Vec<&str> = j.at("root").arr().iter().map(|v| v.str()).collect();
    assert_eq!(listing, ["app", "htdocs", "usr"], "{j}");
    // home= is a directory inside the jail.
    assert_eq!(j.s("cwd"), "/app");
    assert_eq!(j.s("file"), "/app/jail.wsgi");
    assert_eq!(j.s("SCRIPT_FILENAME"), "/app/jail.wsgi");
    assert_eq!(j.s("DOCUMENT_ROOT"), "/htdocs");
    assert_ne!(j.n("uid"), 0.0);
}

/// `/` is a valid jail that changes nothing: the paths stay as Apache has them.
#[test]
fn chroot_to_the_root_directory_changes_nothing() {
    let srv = server("dopt_chroot_root")
        .conf("WSGIDaemonProcess site threads=2 chroot=/")
        .conf("WSGIScriptAlias /j \"@APPS@/jail.wsgi\" process-group=site")
        .start();
    let r = srv.get("/j");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    let script = srv.apps.join("jail.wsgi").display().to_string();
    assert_eq!(j.s("SCRIPT_FILENAME"), script);
    assert_eq!(j.s("file"), script);
    assert_eq!(
        j.s("DOCUMENT_ROOT"),
        srv.root.join("htdocs").display().to_string()
    );
}

#[test]
fn chroot_that_is_not_an_absolute_directory_is_a_config_error() {
    for (value, needle) in [
        ("relative/jail", "must be an absolute path"),
        ("/no/such/jail", "is not an existing directory"),
    ] {
        let t = server("dopt_chroot_bad")
            .conf(&format!("WSGIDaemonProcess site chroot={value}"))
            .config_test();
        assert!(!t.ok, "{value}: {}", t.output);
        assert!(
            t.output.contains(&format!("chroot={value}")) && t.output.contains(needle),
            "{}",
            t.output
        );
    }
}

/// A stop while a daemon drains around a request that would run for long ends it at once:
/// the drain's wait (graceful-timeout) is not a stop's.
#[test]
fn stop_during_a_drain_is_prompt() {
    let mut srv = server("dopt_stop_draining")
        .conf("WSGIDaemonProcess site threads=2 graceful-timeout=30")
        .conf("WSGIScriptAlias /d \"@APPS@/daemon.wsgi\" process-group=site")
        .start();
    let pid = pid_of(&srv, "/d/pid");
    let c = srv.send_get("/d/hang");
    let port = c.local_port();
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    srv.assert_log(&format!("process {pid} recycles: evicted"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(pid), "the drain did not wait for the request");
    // The cut request's lines are expected; the harness fails a stop slower than 4 s.
    srv.allow_log(&Server::client_tag(port));
    srv.allow_log("RWSGI0503");
    let t0 = Instant::now();
    srv.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t0.elapsed()
    );
    assert!(wait_gone(pid, Duration::from_secs(1)), "{pid} still alive");
}
