//! `apache2 -k graceful`, five times, while keep-alive clients keep requesting: every request
//! gets a complete 200 with the right body (event and prefork; a sub-interpreter and
//! `%{GLOBAL}`, small and 1 MiB responses). tests/common/graceful.rs says exactly when a
//! client may send a request again (only when the server provably never read it).
//! Regression test.
mod common;
use common::graceful::{Expect, GracefulExt, keepalive_load};
use common::*;
use std::time::{Duration, Instant};

const RESTARTS: usize = 5;

fn graceful_under_load(mpm: Mpm, clients: usize) {
    let mut b = server(&format!("graceful_load_{}", mpm.name())).mpm(mpm);
    if mpm == Mpm::Prefork {
        // Each keep-alive client holds one of the two children: Apache says so at error level.
        b = b.allow_log("AH00161: server reached MaxRequestWorkers");
    }
    let srv = b
        .fragment("apps")
        .conf("WSGIScriptAlias /hello-global \"@APPS@/hello.wsgi\" application-group=%{GLOBAL}")
        .start();
    let hello = b"Hello World!\n".to_vec();
    let paths = [
        Expect {
            path: "/hello".into(),
            body: hello.clone(),
        },
        Expect {
            path: "/hello-global".into(),
            body: hello,
        },
        // 1 MiB responses, with Content-Length and chunked: long enough to be in flight when
        // a child is told to stop.
        Expect {
            path: "/response?mode=big&mib=1&cl=1".into(),
            body: vec![b'x'; 1 << 20],
        },
        Expect {
            path: "/response?mode=big&mib=1".into(),
            body: vec![b'x'; 1 << 20],
        },
    ];
    let first_children = srv.child_pids();
    let started = Instant::now();
    let mut took = Vec::new();
    let report = keepalive_load(
        &srv,
        &paths,
        clients,
        Duration::from_secs(10),
        20_000,
        || {
            for _ in 0..RESTARTS {
                std::thread::sleep(Duration::from_millis(1200));
                let t = Instant::now();
                srv.graceful();
                took.push(t.elapsed());
            }
        },
    );
    // Apache logs a request just after sending its response: wait (bounded) for the last lines.
    let logged = |text: &str| text.lines().filter(|l| l.contains("id=")).count() as u64;
    let deadline = Instant::now() + Duration::from_secs(3);
    while logged(&srv.log_text("access.log")) < report.ok && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let access = srv.log_text("access.log");
    let failures = report.check_unanswered(&access);
    eprintln!(
        "{mpm:?}: {} ok, {} failed, {} sent again (never read by the server), {} reconnects \
         in {:?}; restarts took {took:?}",
        report.ok,
        failures.len(),
        report.unanswered.len(),
        report.reconnects,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{mpm:?}: {} of {} requests failed:\n{}",
        failures.len(),
        report.ok as usize + failures.len(),
        failures.join("\n")
    );
    assert!(report.ok >= 200, "{mpm:?}: only {} requests", report.ok);
    // Apache served exactly the requests the clients got answers to, all with 200.
    assert_eq!(logged(&access), report.ok, "{mpm:?}: access log vs answers");
    let not_200: Vec<&str> = access
        .lines()
        .filter(|l| l.contains("id=") && !l.contains("\" 200 "))
        .collect();
    assert!(not_200.is_empty(), "{mpm:?}: {not_200:?}");
    // The restarts happened: all generations were up, and none of the first children is left.
    let log = srv.error_log_text();
    assert_eq!(
        log.matches("resuming normal operations").count(),
        RESTARTS + 1
    );
    let now = srv.child_pids();
    assert!(
        first_children.iter().all(|p| !now.contains(p)),
        "{mpm:?}: first children {first_children:?} still there: {now:?}"
    );
}

/// Fails under mod_wsgi 4.9.4: its old children hang at exit (GrahamDumpleton/mod_wsgi#730),
/// the scoreboard fills (AH03490), no new child starts, and requests wait until they time out.
#[test]
fn graceful_restarts_under_load_event() {
    graceful_under_load(Mpm::Event, 4);
}

/// Prefork serves one connection per child and the harness starts two, so two clients.
#[test]
fn graceful_restarts_under_load_prefork() {
    graceful_under_load(Mpm::Prefork, 2);
}
