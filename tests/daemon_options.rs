//! `WSGIDaemonProcess` options acting on a daemon process's life: `startup-timeout`,
//! `server-metrics`, `chroot`, and Python's finalisation (atexit) when a daemon drains.
mod common;
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

/// GET `path` on its own connection; its error lines are expected and one contains `needle`.
fn get_with_error(srv: &mut Server, path: &str, needle: &str) -> (Response, Vec<String>) {
    let mut c = srv.connect();
    let port = c.local_port();
    c.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
        .unwrap();
    let r = c.read_response(false).unwrap();
    let lines = srv.expect_error(port, needle);
    (r, lines)
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
    let (r, lines) = get_with_error(&mut srv, "/s", "startup-ready marker missing");
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
        let (r, _) = get_with_error(&mut srv, "/s", "startup-ready marker missing");
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
