//! Daemon mode under load and abuse: a daemon killed while serving, recycling by
//! maximum-requests while clients keep coming, crashing apps, slow and cut request bodies.
//! App: `tests/apps/daemon_load.wsgi`; templates `httpd-test-conf/daemon_load*.conf.in`.
mod common;
use common::graceful::GracefulExt;
use common::*;

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A server whose group `load` (with `options`) serves `daemon_load.wsgi` at `/load`.
fn load_server(name: &str, options: &str) -> Builder {
    server(name)
        .fragment("daemon_load")
        .var("LOAD_OPTIONS", options)
}

fn pid_of(r: &Response) -> u32 {
    r.json().n("pid") as u32
}

fn kill9(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -9 {pid}");
}

/// One request of a load loop: when it was sent and answered, and what came back.
struct Sample {
    sent: Instant,
    status: u16,
    pid: Option<u32>,
    client_port: u16,
}

/// kill -9 of one of two daemon processes while 4 clients keep both busy: only the
/// requests that process had in hand fail (502, each with its log line naming the group),
/// every other request gets its 200, and a new process takes the dead one's place.
#[test]
fn kill_9_of_a_daemon_under_load_fails_only_its_own_requests() {
    let mut srv = load_server("dload_kill", "processes=2 threads=4").start();
    let seen: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    // The victim, when it was killed, and the pids seen until then.
    let killed: Mutex<Option<(u32, Instant, Vec<u32>)>> = Mutex::new(None);
    let start = Instant::now();
    let samples: Vec<Sample> = std::thread::scope(|sc| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    let mut out = Vec::new();
                    while start.elapsed() < Duration::from_secs(4) && out.len() < 400 {
                        let sent = Instant::now();
                        let r = srv.get("/load/work");
                        let pid = (r.status == 200).then(|| pid_of(&r));
                        if let Some(p) = pid {
                            let mut s = seen.lock().unwrap();
                            if !s.contains(&p) {
                                s.push(p);
                            }
                        }
                        out.push(Sample {
                            sent,
                            status: r.status,
                            pid,
                            client_port: r.client_port,
                        });
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1200));
        let first = seen.lock().unwrap().clone();
        kill9(first[0]);
        *killed.lock().unwrap() = Some((first[0], Instant::now(), first));
        clients
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let (victim, killed_at, first) = killed.lock().unwrap().take().unwrap();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    eprintln!(
        "{} requests, {} failed, victim {victim}, pids {first:?}",
        samples.len(),
        failed.len()
    );
    assert!(samples.len() > 100, "only {} requests", samples.len());
    // At most the victim's 4 threads' requests, all sent before it died.
    assert!(failed.len() <= 4, "{} requests failed", failed.len());
    for s in &failed {
        assert_eq!(s.status, 502);
        assert!(s.sent <= killed_at, "a request sent after the kill failed");
        srv.expect_error(
            s.client_port,
            "daemon process group 'load' failed before the response head",
        );
    }
    assert!(
        samples
            .iter()
            .filter(|s| s.sent > killed_at + Duration::from_millis(100))
            .all(|s| s.pid != Some(victim)),
        "the killed process answered"
    );
    srv.assert_log(&format!(
        "daemon process group 'load' process {victim} died (exit status or signal 9)"
    ));
    srv.allow_log(&format!("process {victim} died"));
    // The replacement serves: parallel requests reach both processes, one of them new.
    let deadline = Instant::now() + Duration::from_secs(10);
    let replacement = loop {
        let pids: Vec<u32> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8).map(|_| sc.spawn(|| srv.get("/load/work"))).collect();
            hs.into_iter()
                .map(|h| {
                    let r = h.join().unwrap();
                    assert_eq!(r.status, 200, "{}", r.describe());
                    pid_of(&r)
                })
                .collect()
        });
        if let Some(&p) = pids.iter().find(|p| !first.contains(p)) {
            break p;
        }
        assert!(Instant::now() < deadline, "no new daemon serves: {pids:?}");
    };
    srv.assert_log(&format!(
        "daemon process group 'load' started process {replacement}"
    ));
}

/// maximum-requests under load: processes recycle one after another while 4 clients keep
/// sending; no request fails, and no process serves more than its 50.
#[test]
fn maximum_requests_under_load_loses_nothing_and_holds_the_limit() {
    let srv = load_server("dload_maxreq", "processes=2 threads=2 maximum-requests=50").start();
    let answers: Vec<(u32, u64)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    (0..250)
                        .map(|_| {
                            let r = srv.get("/load/hello");
                            assert_eq!(r.status, 200, "{}", r.describe());
                            let j = r.json();
                            (j.n("pid") as u32, j.n("n") as u64)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers.len(), 1000);
    let mut per_pid: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for (pid, n) in &answers {
        let e = per_pid.entry(*pid).or_default();
        e.0 += 1;
        e.1 = e.1.max(*n);
    }
    eprintln!("{} processes served the 1000 requests", per_pid.len());
    for (pid, (count, top)) in &per_pid {
        assert!(
            *count <= 50 && *top <= 50,
            "process {pid} served {count} requests (its own count: {top}), more than \
             maximum-requests=50"
        );
    }
    assert!(per_pid.len() >= 20, "{per_pid:?}");
}

/// An app that crashes its process (abort, segfault): that request is a 502 with the
/// group named, the death is logged with the signal, and the next request is served by
/// the replacement.
#[test]
fn abort_and_segfault_give_502_then_the_next_request_is_served() {
    let mut srv = load_server("dload_crash", "threads=1").start();
    for (path, signal) in [("/load/abort", 6), ("/load/segv", 11)] {
        let old = pid_of(&srv.get("/load/hello"));
        let r = srv.get(path);
        assert_eq!(r.status, 502, "{path}: {}", r.describe());
        srv.expect_error(
            r.client_port,
            "daemon process group 'load' failed before the response head",
        );
        let r = srv.get("/load/hello");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_ne!(pid_of(&r), old, "{path}");
        srv.assert_log(&format!(
            "daemon process group 'load' process {old} died (exit status or signal {signal})"
        ));
        srv.allow_log(&format!("process {old} died"));
        // Apache's own notice of a child's death by signal (AH00052) covers daemons too.
        srv.allow_log(&format!("child pid {old} exit signal"));
    }
}

/// Sends a request head with `Content-Length: 100`, then one body byte a second, `bytes`
/// of them at most, and waits, until the server answers (12 s at most); returns the
/// response and how long it took.
fn slow_upload(srv: &Server, token: &str, bytes: usize) -> (Response, Duration) {
    let start = Instant::now();
    let mut c = srv.connect();
    let head = format!(
        "POST /slow/upload?{token} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\
         Connection: close\r\n\r\n"
    );
    c.send(head.as_bytes()).unwrap();
    let mut peek = [0u8; 1];
    c.set_timeout(Duration::from_secs(1));
    for i in 0..12 {
        if i < bytes && c.stream.write_all(b"x").is_err() {
            break;
        }
        match c.stream.peek(&mut peek) {
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    c.set_timeout(Duration::from_secs(10));
    let r = c
        .read_response(false)
        .expect("a response to the slow upload");
    (r, start.elapsed())
}

/// Three clients trickle their bodies a byte a second, and a fourth sends 2 bytes and
/// stalls, into a 5-thread group: the fifth thread keeps answering at once; Apache's body
/// read limits (RequestReadTimeout body=4, Timeout 3) end each upload with 408 and a log
/// line, the app sees its body cut, and all 5 threads are free again afterwards.
#[test]
fn slow_uploads_hold_only_their_threads_and_end_at_the_read_timeout() {
    let mut srv = server("dload_slow").fragment("daemon_load_slow").start();
    assert_eq!(srv.get("/slow/hello").status, 200);
    let tokens: Vec<String> = (0..4).map(|_| token("slow")).collect();
    let (uploads, hellos) = std::thread::scope(|sc| {
        let ups: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let srv = &srv;
                sc.spawn(move || slow_upload(srv, t, if i == 3 { 2 } else { 12 }))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        let mut hellos = Vec::new();
        for _ in 0..6 {
            let t = Instant::now();
            let r = srv.get("/slow/hello");
            assert_eq!(r.status, 200, "{}", r.describe());
            hellos.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(400));
        }
        let ups: Vec<_> = ups.into_iter().map(|h| h.join().unwrap()).collect();
        (ups, hellos)
    });
    eprintln!("hello latencies during the slow uploads: {hellos:?}");
    eprintln!(
        "slow uploads ended after {:?}",
        uploads.iter().map(|(_, t)| *t).collect::<Vec<_>>()
    );
    for h in &hellos {
        assert!(
            *h < Duration::from_secs(1),
            "a hello took {h:?}: {hellos:?}"
        );
    }
    for (t, (r, took)) in tokens.iter().zip(&uploads) {
        assert_eq!(r.status, 408, "{}", r.describe());
        assert!(
            *took >= Duration::from_secs(3) && *took < Duration::from_secs(9),
            "the slow upload ended after {took:?}"
        );
        srv.expect_error(
            r.client_port,
            "reading the request body for daemon process group 'slow' failed",
        );
        let seen = srv
            .wait_data_file(&format!("upload-{t}"), Duration::from_secs(5))
            .expect("the app recorded its read");
        assert!(!seen.starts_with("complete"), "{seen}");
    }
    // All five threads are free: five requests at once are answered at once.
    let t = Instant::now();
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..5).map(|_| sc.spawn(|| srv.get("/slow/work"))).collect();
        for h in hs {
            assert_eq!(h.join().unwrap().status, 200);
        }
    });
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// A client that promises 1000 body bytes, sends 10 and stops sending: the request ends
/// with 400 and a log line, the app sees a short body or an error, and the group's only
/// thread is free for the next request.
#[test]
fn a_body_cut_by_the_client_frees_the_daemon_thread() {
    let mut srv = server("dload_cut").fragment("daemon_load_slow").start();
    let t = token("cut");
    let mut c = srv.connect();
    c.send(
        format!(
            "POST /one/upload?{t} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\
             Connection: close\r\n\r\n0123456789"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.shutdown_write();
    let r = c
        .read_response(false)
        .expect("a response to the cut upload");
    assert_eq!(r.status, 400, "{}", r.describe());
    srv.expect_error(
        r.client_port,
        "reading the request body for daemon process group 'one' failed",
    );
    let seen = srv
        .wait_data_file(&format!("upload-{t}"), Duration::from_secs(5))
        .expect("the app recorded its read");
    assert!(
        seen.starts_with("error") || seen.starts_with("short 10 of 1000"),
        "{seen}"
    );
    let started = Instant::now();
    let r = srv.get("/one/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Pids of the service scripts' markers (`PREFIX-PID`) in the data dir.
fn service_pids(srv: &Server, prefix: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(&srv.data)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
        })
        .collect();
    pids.sort();
    pids
}

/// Waits (bounded) for a `PREFIX-PID` marker of a pid not in `old`.
fn wait_new_service(srv: &Server, prefix: &str, old: &[u32]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = service_pids(srv, prefix)
            .into_iter()
            .find(|p| !old.contains(p))
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix} service script ran (markers of {old:?} only); log tail:\n{}",
            tail(&srv.error_log_text(), 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until the service's heartbeat `PREFIX-PID.beat` counts on.
fn assert_beating(srv: &Server, prefix: &str, pid: u32) {
    let beats = || -> Option<u64> {
        std::fs::read_to_string(srv.data.join(format!("{prefix}-{pid}.beat")))
            .ok()?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        if let Some(n) = beats() {
            break n;
        }
        assert!(Instant::now() < deadline, "{prefix} {pid} never beat");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1000));
    let after = beats().unwrap();
    assert!(
        after >= before + 2,
        "{prefix} {pid} stopped beating: {before} then {after}"
    );
}

/// threads=0: a process that runs its group's WSGIImportScript and takes no requests. It
/// lives on after the script returns (its thread keeps beating), or runs a script that never
/// returns, is replaced when killed,
/// ends promptly at a graceful restart and at stop; a request routed to it gets 503 naming
/// the group.
#[test]
fn a_threads_0_group_runs_its_service_script_and_is_supervised() {
    let mut srv = server("dload_service")
        .fragment("daemon_load_service")
        .start();
    let first = wait_new_service(&srv, "service", &[]);
    srv.assert_log(&format!(
        "daemon process group 'svc' started process {first}"
    ));
    assert_beating(&srv, "service", first);
    let looping = wait_new_service(&srv, "loop", &[]);
    assert_beating(&srv, "loop", looping);
    // Requests go on in the other group, and one routed to 'svc' is refused.
    let r = srv.get("/load/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = srv.get("/dyn/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = srv.get("/dyn/svc/hello");
    assert_eq!(r.status, 503, "{}", r.describe());
    srv.expect_error(
        r.client_port,
        "RWSGI0560: daemon process group 'svc' has threads=0",
    );
    // Supervised like any daemon: killed, it is started again and runs its script again.
    kill9(first);
    let second = wait_new_service(&srv, "service", &[first]);
    srv.assert_log(&format!(
        "daemon process group 'svc' process {first} died (exit status or signal 9)"
    ));
    srv.allow_log(&format!("process {first} died"));
    assert!(alive(second));
    // A graceful restart ends it at once (it has no requests to finish) and the new
    // generation starts its own.
    srv.graceful();
    let third = wait_new_service(&srv, "service", &[first, second]);
    let looping_too = wait_new_service(&srv, "loop", &[looping]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(second) || alive(looping) {
        assert!(
            Instant::now() < deadline,
            "service daemons outlived the graceful restart by 3 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.stop();
    let took = srv.stop_took.unwrap();
    eprintln!("stop with a service daemon took {took:?}");
    assert!(took < Duration::from_secs(4), "stop took {took:?}");
    for p in [third, looping_too] {
        assert!(!alive(p), "the service daemon {p} outlived the stop");
    }
}

/// A literal group with threads=0 as a request's process group is a configuration error.
#[test]
fn a_threads_0_group_named_for_requests_is_a_config_error() {
    for line in [
        "WSGIScriptAlias /x \"@APPS@/daemon_load.wsgi\" process-group=svc",
        "<Location /x>\n  WSGIProcessGroup svc\n</Location>",
    ] {
        let t = server("dload_service_conf")
            .conf("WSGIDaemonProcess svc threads=0")
            .conf(line)
            .config_test();
        assert!(!t.ok, "accepted {line:?}:\n{}", t.output);
        assert!(
            t.output
                .contains("daemon process group 'svc' has threads=0"),
            "{line:?}:\n{}",
            t.output
        );
    }
}

/// A venv per daemon group (python-home=): Flask from a venv without Django in one group,
/// Django from a venv without Flask in the other, both served at once by one Apache. Each
/// app reports its sys.prefix and that the other framework cannot be imported.
#[test]
fn each_daemon_group_runs_its_own_venv() {
    let flask_venv = common::venv::pip_venv("Flask-only", common::venv::FLASK, "import flask");
    let django_venv = common::venv::pip_venv("Django-only", common::venv::DJANGO, "import django");
    let srv = server("dload_venvs")
        .var("FLASK_VENV", &flask_venv.display().to_string())
        .var("DJANGO_VENV", &django_venv.display().to_string())
        .fragment("daemon_load_venv")
        .start();
    let answers: Vec<(String, Json)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let srv = &srv;
                sc.spawn(move || {
                    let mut out = Vec::new();
                    for k in 0..10 {
                        let path = if (i + k) % 2 == 0 {
                            "/flask/"
                        } else {
                            "/django/"
                        };
                        let r = srv.get(path);
                        assert_eq!(r.status, 200, "{path}: {}", r.describe());
                        out.push((path.to_string(), r.json()));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let canon = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut pids = std::collections::BTreeMap::<String, Vec<u32>>::new();
    for (path, j) in &answers {
        let (framework, group, venv) = if path == "/flask/" {
            ("flask", "flaskonly", &flask_venv)
        } else {
            ("django", "djangoonly", &django_venv)
        };
        assert_eq!(j.s("framework"), framework, "{j}");
        assert_eq!(j.s("process_group"), group, "{j}");
        assert_eq!(
            canon(j.s("prefix")),
            canon(&venv.display().to_string()),
            "{j}"
        );
        assert!(
            !j.b("other_importable"),
            "{path}: the other framework imports: {j}"
        );
        pids.entry(group.into())
            .or_default()
            .push(j.n("pid") as u32);
    }
    let flask_pids = &pids["flaskonly"];
    assert!(
        pids["djangoonly"].iter().all(|p| !flask_pids.contains(p)),
        "{pids:?}"
    );
}
