//! Child life cycle: `apache2 -k graceful` and `-k stop` with interpreters in use finish
//! promptly (every sub-interpreter ended, atexit run in each, no child killed or crashed),
//! and the new generation serves.
mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn lifecycle_server(name: &str) -> Server {
    server(name)
        .conf("WSGIScriptAlias /sub \"@APPS@/interp.wsgi\"")
        .conf("WSGIScriptAlias /named \"@APPS@/interp.wsgi\" application-group=other")
        .conf("WSGIScriptAlias /global \"@APPS@/interp.wsgi\" application-group=%{GLOBAL}")
        .conf("SetEnv RWSGI_DATA \"@DATA@\"")
        .conf("WSGIScriptAlias /ae-sub \"@APPS@/atexit.wsgi\"")
        .conf("WSGIScriptAlias /ae-global \"@APPS@/atexit.wsgi\" application-group=%{GLOBAL}")
        .start()
}

fn warm(s: &Server) {
    for _ in 0..4 {
        for p in ["/sub", "/named", "/global"] {
            let r = s.get(p);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
        }
    }
}

#[test]
fn graceful_restart_retires_children_quickly_and_serves_again() {
    let s = lifecycle_server("life_graceful");
    warm(&s);
    let old = s.child_pids();
    assert!(!old.is_empty());
    let started = Instant::now();
    let out = Command::new("apache2")
        .arg("-f")
        .arg(&s.conf)
        .args(["-k", "graceful"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("apache2 -k graceful");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Safety net only; the measured figure goes into the closing note.
    let deadline = started + Duration::from_secs(4);
    while old.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    assert!(
        !old.iter().any(|&p| alive(p)),
        "old children still alive {took:?} after graceful: {old:?}"
    );
    eprintln!("graceful: old children gone after {took:?}");
    // The new generation serves every interpreter kind.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get("/sub");
        if r.status == 200 {
            let pid = r.json().n("pid") as u32;
            assert!(!old.contains(&pid), "served by an old child {pid}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after graceful: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    warm(&s);
}

#[test]
fn stop_with_interpreters_in_use_is_prompt_and_runs_atexit_everywhere() {
    let mut s = lifecycle_server("life_stop");
    warm(&s);
    let markers: Vec<String> = ["/ae-sub", "/ae-global"]
        .iter()
        .map(|p| {
            let r = s.get(p);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
            r.text()
        })
        .collect();
    s.stop();
    let took = s.stop_took.expect("stop measured");
    eprintln!("stop: parent gone after {took:?}");
    assert!(took < MAX_STOP, "stop took {took:?}");
    for m in &markers {
        assert!(
            std::path::Path::new(m).exists(),
            "atexit callback did not run: {m} missing"
        );
    }
}
