//! Child shutdown with what real apps do: background threads started at import (daemon and
//! non-daemon, in a sub-interpreter and in `%{GLOBAL}`) must not crash or hang `-k stop` or
//! `-k graceful`, and atexit callbacks still run in every interpreter; a stop or restart that
//! arrives while a request burns CPU in Python ends the child at once, without Apache's
//! SIGKILL.
mod common;
use common::control::{signal, wait_exited};
use common::*;
use std::time::{Duration, Instant};

/// The bound this file asserts on a stop (tighter than the harness's safety net).
const FAST_STOP: Duration = Duration::from_secs(2);

fn threads_server(name: &str, mpm: Mpm) -> Server {
    server(name)
        .mpm(mpm)
        .single_process()
        .conf("WSGIScriptAlias /sub \"@APPS@/shutdown_threads.wsgi\"")
        .conf(
            "WSGIScriptAlias /global \"@APPS@/shutdown_threads.wsgi\" application-group=%{GLOBAL}",
        )
        .start()
}

/// Loads the app in both interpreters of the (single) child; returns the atexit markers.
fn load_apps(s: &Server) -> Vec<String> {
    ["/sub", "/global"]
        .iter()
        .map(|p| {
            let r = s.get(p);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
            let doc = r.json();
            let names = format!("{:?}", doc.at("threads"));
            assert!(names.contains("app-daemon-"), "{p}: {names}");
            assert!(names.contains("app-worker-"), "{p}: {names}");
            doc.at("marker").str().to_string()
        })
        .collect()
}

fn assert_clean_exit(s: &Server, markers: &[String]) {
    let log = s.error_log_text();
    assert!(
        !log.contains("Fatal Python error") && !log.contains("exit signal"),
        "a child crashed at exit:\n{}",
        tail(&log, 40)
    );
    for m in markers {
        assert!(
            std::path::Path::new(m).exists(),
            "atexit callback did not run: {m} missing\n{}",
            tail(&log, 40)
        );
    }
    // The module's own share of the exit, as each child reports it, is under a second.
    let times: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            l.split("RWSGI0054: Python stopped at child exit in ")
                .nth(1)
        })
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    eprintln!("module time at child exit (ms): {times:?}");
    assert!(!times.is_empty(), "no RWSGI0054 line:\n{}", tail(&log, 40));
    assert!(
        times.iter().all(|&ms| ms < 1000),
        "module time {times:?} ms"
    );
    // Each interpreter kept alive because of its threads is named, with its threads.
    for (group, suffix) in [("'%{GLOBAL}'", "-GLOBAL"), ("|/sub'", "__sub")] {
        let names: Vec<String> = log
            .lines()
            .filter(|l| l.contains("RWSGI0050: application group ") && l.contains(group))
            .filter_map(|l| l.split(" at child exit (").nth(1)?.split(')').next())
            .flat_map(|names| names.split(", ").map(str::to_string))
            .collect();
        for prefix in ["app-daemon-", "app-worker-"] {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with(prefix) && n.ends_with(suffix)),
                "no warning naming group {group} and its thread {prefix}…{suffix}: {names:?}\n{}",
                tail(&log, 40)
            );
        }
    }
}

fn stop_with_threads(mpm: Mpm) {
    let mut s = threads_server(&format!("shutdown_threads_stop_{}", mpm.name()), mpm);
    let markers = load_apps(&s);
    s.stop();
    let took = s.stop_took.expect("stop measured");
    eprintln!("{} stop with app threads: {took:?}", mpm.name());
    assert!(took < FAST_STOP, "stop took {took:?}");
    assert_clean_exit(&s, &markers);
}

#[test]
fn stop_with_app_threads_is_fast_and_runs_atexit_everywhere_event() {
    stop_with_threads(Mpm::Event);
}

#[test]
fn stop_with_app_threads_is_fast_and_runs_atexit_everywhere_prefork() {
    stop_with_threads(Mpm::Prefork);
}

fn graceful_with_threads(mpm: Mpm) {
    let s = threads_server(&format!("shutdown_threads_graceful_{}", mpm.name()), mpm);
    let markers = load_apps(&s);
    let old = s.child_pids();
    assert!(!old.is_empty());
    let started = Instant::now();
    signal(&s, "graceful");
    let took = wait_exited(&old, started, Duration::from_secs(5));
    eprintln!(
        "{} graceful with app threads: old children gone after {took:?}",
        mpm.name()
    );
    let took = took.unwrap_or_else(|| {
        panic!(
            "old children {old:?} still alive 5 s after graceful\n{}",
            tail(&s.error_log_text(), 40)
        )
    });
    // Apache itself takes about 1 s to retire a generation gracefully (lifecycle.rs measures
    // the same without app threads), hence a bound above FAST_STOP.
    assert!(took < Duration::from_secs(3), "graceful took {took:?}");
    assert_clean_exit(&s, &markers);
    // The new generation serves both interpreters.
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in ["/sub", "/global"] {
        loop {
            let r = s.get(p);
            if r.status == 200 {
                let pid = r.json().n("pid") as u32;
                assert!(!old.contains(&pid), "{p} served by an old child {pid}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{p} after graceful: {}",
                r.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn graceful_with_app_threads_retires_children_cleanly_event() {
    graceful_with_threads(Mpm::Event);
}

#[test]
fn graceful_with_app_threads_retires_children_cleanly_prefork() {
    graceful_with_threads(Mpm::Prefork);
}

/// Starts the CPU-bound request and waits until its loop runs; returns the connection.
fn start_busy(s: &Server) -> Conn {
    let mut c = s.connect();
    c.send(&request_bytes("GET", "/busy", &[], b"")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = std::fs::read_dir(&s.data)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("busy-"));
        if running {
            return c;
        }
        assert!(Instant::now() < deadline, "the busy request did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn busy_server(name: &str, mpm: Mpm) -> Server {
    server(name)
        .mpm(mpm)
        .conf("WSGIScriptAlias /busy \"@APPS@/shutdown_busy.wsgi\"")
        .conf("WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"")
        .start()
}

/// What the child logs about the request it could not finish: prefork's stop arrives as a
/// signal on the request's own thread (Python is then not finalised); a threaded child
/// interrupts the request.
fn busy_outcome(mpm: Mpm) -> &'static str {
    match mpm {
        Mpm::Prefork => "RWSGI0051",
        _ => "RWSGI0053: request to WSGI script",
    }
}

fn stop_during_cpu_bound_request(mpm: Mpm) {
    let mut s = busy_server(&format!("shutdown_busy_stop_{}", mpm.name()), mpm);
    let _c = start_busy(&s);
    s.stop();
    let took = s.stop_took.expect("stop measured");
    eprintln!("{} stop with a CPU-bound request: {took:?}", mpm.name());
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    s.assert_log(busy_outcome(mpm));
}

fn restart_during_cpu_bound_request(mpm: Mpm) {
    let s = busy_server(&format!("shutdown_busy_restart_{}", mpm.name()), mpm);
    let old = s.child_pids();
    let _c = start_busy(&s);
    let started = Instant::now();
    signal(&s, "restart");
    let took = wait_exited(&old, started, Duration::from_secs(15));
    eprintln!(
        "{} restart with a CPU-bound request: old children gone after {took:?}",
        mpm.name()
    );
    let took = took.expect("old children exit");
    assert!(took < Duration::from_secs(3), "restart took {took:?}");
    s.assert_log(busy_outcome(mpm));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get("/hello");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "after restart: {}", r.describe());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prefork_stop_during_cpu_bound_request_is_prompt() {
    stop_during_cpu_bound_request(Mpm::Prefork);
}

#[test]
fn prefork_restart_during_cpu_bound_request_is_prompt() {
    restart_during_cpu_bound_request(Mpm::Prefork);
}

#[test]
fn event_stop_during_cpu_bound_request_is_prompt() {
    stop_during_cpu_bound_request(Mpm::Event);
}

#[test]
fn event_restart_during_cpu_bound_request_is_prompt() {
    restart_during_cpu_bound_request(Mpm::Event);
}

fn stop_with_polite_threads(mpm: Mpm) {
    let mut s = server(&format!("shutdown_polite_{}", mpm.name()))
        .mpm(mpm)
        .single_process()
        .conf("WSGIScriptAlias /sub \"@APPS@/shutdown_polite.wsgi\"")
        .conf("WSGIScriptAlias /global \"@APPS@/shutdown_polite.wsgi\" application-group=%{GLOBAL}")
        .start();
    let markers: Vec<String> = ["/sub", "/global"]
        .iter()
        .map(|p| {
            let r = s.get(p);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
            r.json().s("marker").to_string()
        })
        .collect();
    s.stop();
    let took = s.stop_took.expect("stop measured");
    eprintln!("{} stop with atexit-stopped threads: {took:?}", mpm.name());
    assert!(took < FAST_STOP, "stop took {took:?}");
    let log = s.error_log_text();
    assert!(
        !log.contains("Fatal Python error") && !log.contains("exit signal"),
        "a child crashed at exit:\n{}",
        tail(&log, 40)
    );
    for m in &markers {
        assert!(std::path::Path::new(m).exists(), "atexit did not run: {m}");
    }
    // Every interpreter was ended and Python finalised: nothing was left behind.
    assert!(!log.contains("RWSGI0050"), "{}", tail(&log, 40));
    assert!(
        log.contains("RWSGI0054: Python stopped at child exit in ") && log.contains("(finalised)"),
        "{}",
        tail(&log, 40)
    );
}

#[test]
fn threads_stopped_by_atexit_let_interpreters_end_event() {
    stop_with_polite_threads(Mpm::Event);
}

#[test]
fn threads_stopped_by_atexit_let_interpreters_end_prefork() {
    stop_with_polite_threads(Mpm::Prefork);
}

#[test]
fn worker_stop_during_cpu_bound_request_is_prompt() {
    stop_during_cpu_bound_request(Mpm::Worker);
}
