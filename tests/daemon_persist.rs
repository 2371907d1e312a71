//! Persistent connections between Apache children and a daemon group, and the request body
//! the daemon pulls: connections are reused, a reused connection the daemon gave up is
//! retried safely, bodies stay intact, `100 Continue` goes out only when the app reads.
//! App: `tests/apps/daemon_persist.wsgi`; template `httpd-test-conf/daemon_persist.conf.in`.
mod common;
use common::graceful::GracefulExt;
use common::*;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A server whose group `persist` (with `options`) serves `daemon_persist.wsgi` at `/p`.
fn persist_server(name: &str, options: &str) -> Builder {
    server(name)
        .fragment("daemon_persist")
        .var("PERSIST_OPTIONS", options)
}

/// One request on the keep-alive connection `c`.
fn on(c: &mut Conn, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let len = body.len().to_string();
    let mut hs = headers.to_vec();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        hs.push(("Content-Length", &len));
    }
    c.send(&request_bytes(method, path, &hs, body))
        .expect("send request");
    c.read_response(false)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The daemon's socket inodes and pid, as `/p/sockets` reports them.
fn sockets(c: &mut Conn) -> (u32, Vec<String>) {
    let r = on(c, "GET", "/p/sockets", &[], b"");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    let s = j["sockets"]
        .arr()
        .iter()
        .map(|v| v.str().to_string())
        .collect();
    (j.n("pid") as u32, s)
}

/// 30 requests on one keep-alive connection (one Apache child thread) are carried by a
/// handful of daemon connections: a new connection per request would show 30 new sockets.
#[test]
fn sequential_requests_reuse_one_daemon_connection() {
    let srv = persist_server("persist_reuse", "processes=1 threads=4")
        .single_process()
        .start();
    let mut c = srv.connect();
    let mut seen = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for _ in 0..30 {
        let (pid, s) = sockets(&mut c);
        pids.insert(pid);
        seen.extend(s);
    }
    assert_eq!(pids.len(), 1, "{pids:?}");
    // The listener, the connection in use and a few more (Python's, the parent's pipes).
    assert!(seen.len() < 10, "{} distinct sockets: {seen:?}", seen.len());
}

/// Bodies of every shape through reused connections arrive whole, and the connection is
/// still reused after each.
#[test]
fn post_bodies_through_reused_connections_are_intact() {
    let srv = persist_server("persist_bodies", "processes=1 threads=2")
        .single_process()
        .start();
    let mut c = srv.connect();
    let mut seen = BTreeSet::new();
    for round in 0..2u64 {
        for size in [0usize, 1, 5000, 64 << 10, 10 << 20] {
            let body = pattern(size, size as u64 + round);
            let r = on(&mut c, "POST", "/p/echo", &[], &body);
            assert_eq!(r.status, 200, "{size}: {}", r.describe());
            let j = r.json();
            assert_eq!(j.n("len") as usize, size);
            assert_eq!(j.s("sha256"), sha256_hex(&body), "{size} bytes");
            let chunked_body = pattern(size.max(1), 99 + round);
            let r = on(
                &mut c,
                "POST",
                "/p/echo",
                &[("Transfer-Encoding", "chunked")],
                &chunked(&chunked_body, 7000),
            );
            assert_eq!(r.status, 200, "chunked {size}: {}", r.describe());
            assert_eq!(r.json().s("sha256"), sha256_hex(&chunked_body));
            let r = on(&mut c, "POST", "/p/ignore", &[], &body);
            assert_eq!(r.status, 200, "ignored {size}: {}", r.describe());
            seen.extend(sockets(&mut c).1);
        }
    }
    assert!(seen.len() < 10, "{} distinct sockets: {seen:?}", seen.len());
}

/// Reads one interim or final response head byte by byte (nothing after it is consumed).
fn read_head_raw(s: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            other => panic!("reading a head: {other:?} after {head:?}"),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// `Expect: 100-continue`: an app that never reads its body gets its answer out with no
/// `100 Continue` before it; one that reads makes Apache send it first.
#[test]
fn continue_is_sent_only_when_the_app_reads() {
    let srv = persist_server("persist_continue", "processes=1 threads=2").start();
    let body = pattern(10_000, 5);
    let head = |path: &str| {
        request_bytes(
            "POST",
            path,
            &[
                ("Expect", "100-continue"),
                ("Content-Length", &body.len().to_string()),
                ("Connection", "close"),
            ],
            b"",
        )
    };
    for _ in 0..3 {
        let mut c = srv.connect();
        c.send(&head("/p/ignore")).unwrap();
        let r = c.read_response(false).expect("answer without the body");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert!(r.interim.is_empty(), "interim {:?}", r.interim);

        let mut c = srv.connect();
        c.send(&head("/p/echo")).unwrap();
        let first = read_head_raw(&mut c.stream);
        assert!(first.starts_with("HTTP/1.1 100 "), "{first:?}");
        c.send(&body).unwrap();
        let r = c.read_response(false).expect("answer after the body");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.json().s("sha256"), sha256_hex(&body));
    }
}

/// An app that writes 1 MiB before reading a 1 MiB body: the body is asked for only when
/// the app reads, so neither side is stuck writing (the client sends and reads at once).
#[test]
fn app_writing_before_reading_a_big_body_completes() {
    let srv = persist_server("persist_bigfirst", "processes=1 threads=2").start();
    for round in 0..3u64 {
        let body = pattern(1 << 20, round);
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let req = request_bytes(
            "POST",
            "/p/bigfirst",
            &[
                ("Content-Length", &body.len().to_string()),
                ("Connection", "close"),
            ],
            &body,
        );
        let mut w = s.try_clone().unwrap();
        let sender = std::thread::spawn(move || w.write_all(&req));
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read the response");
        sender.join().unwrap().expect("send the request");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200 "), "{}", tail(&text, 3));
        let xs = got.iter().filter(|&&b| b == b'x').count();
        assert!(xs >= 1 << 20, "{xs} bytes of the first part");
        assert!(
            text.contains(&format!("\n{}", sha256_hex(&body))),
            "no body hash in {}",
            tail(&text, 3)
        );
    }
}

/// Parallel keep-alive clients, each checking every answer is a 200 from `/p/sockets`; the
/// daemon pids seen.
fn parallel_load(srv: &Server, clients: usize, per_client: usize) -> (Vec<String>, BTreeSet<u32>) {
    let results: Vec<(Vec<String>, BTreeSet<u32>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..clients)
            .map(|i| {
                sc.spawn(move || {
                    let (mut bad, mut pids) = (Vec::new(), BTreeSet::new());
                    let mut c = srv.connect();
                    for n in 0..per_client {
                        let body = pattern(3000, (i * 1000 + n) as u64);
                        let r = on(&mut c, "POST", "/p/echo", &[], &body);
                        if r.status == 200 && r.json().s("sha256") == sha256_hex(&body) {
                            pids.insert(r.json().n("pid") as u32);
                        } else {
                            bad.push(r.describe());
                        }
                        if r.header("Connection") == Some("close") {
                            c = srv.connect();
                        }
                    }
                    (bad, pids)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut bad = Vec::new();
    let mut pids = BTreeSet::new();
    for (b, p) in results {
        bad.extend(b);
        pids.extend(p);
    }
    (bad, pids)
}

/// maximum-requests=5 with pooled connections under parallel load: processes recycle every
/// few requests, their idle connections are given up, and no request fails.
#[test]
fn maximum_requests_under_parallel_load_has_no_failures() {
    let srv = persist_server("persist_maxreq", "processes=2 threads=2 maximum-requests=5").start();
    let (bad, pids) = parallel_load(&srv, 4, 40);
    assert!(bad.is_empty(), "{} failures: {bad:?}", bad.len());
    // 160 requests, at most 5 per process.
    assert!(pids.len() >= 30, "only {} daemon processes", pids.len());
}

/// Two processes of one thread each, a slow request at a time from two keep-alive clients:
/// a busy process takes no connection, so both processes serve and neither client waits
/// for the other.
#[test]
fn parallel_clients_use_both_one_thread_processes() {
    let srv = persist_server("persist_shed", "processes=2 threads=1").start();
    let mut pids = BTreeSet::new();
    let start = Instant::now();
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    let mut c = srv.connect();
                    (0..6)
                        .map(|_| {
                            let r = on(&mut c, "GET", "/p/sleep", &[], b"");
                            assert_eq!(r.status, 200, "{}", r.describe());
                            r.json().n("pid") as u32
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in hs {
            pids.extend(h.join().unwrap());
        }
    });
    assert_eq!(pids.len(), 2, "{pids:?}");
    // 12 requests of 0.3 s on two processes: about 1.8 s when both always serve.
    assert!(
        start.elapsed() < Duration::from_millis(3000),
        "{:?}",
        start.elapsed()
    );
}

/// kill -9 of an idle daemon whose connections sit in the Apache children's pools: the next
/// requests get their 200 from the replacement, none a 502.
#[test]
fn kill_9_of_an_idle_daemon_costs_no_request() {
    let mut srv = persist_server("persist_kill", "processes=1 threads=4").start();
    let (bad, pids) = parallel_load(&srv, 4, 5);
    assert!(bad.is_empty(), "{bad:?}");
    let old: Vec<u32> = pids.into_iter().collect();
    assert_eq!(old.len(), 1);
    let st = std::process::Command::new("kill")
        .args(["-9", &old[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(old[0]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (bad, pids) = parallel_load(&srv, 4, 5);
    assert!(bad.is_empty(), "{} failures: {bad:?}", bad.len());
    assert!(!pids.contains(&old[0]), "{pids:?}");
    srv.allow_log(&format!("process {} died", old[0]));
}

/// A graceful restart while clients hold pooled connections: every request succeeds and
/// the new generation's requests are served by its own daemon processes.
#[test]
fn graceful_restart_never_reuses_the_old_generation() {
    let srv = persist_server("persist_graceful", "processes=2 threads=2").start();
    let (bad, before) = parallel_load(&srv, 4, 5);
    assert!(bad.is_empty(), "{bad:?}");
    srv.graceful();
    let (bad, after) = parallel_load(&srv, 4, 10);
    assert!(bad.is_empty(), "{} failures: {bad:?}", bad.len());
    assert!(before.is_disjoint(&after), "{before:?} {after:?}");
}

/// The socket of group `persist`, under the ServerRoot's DefaultRuntimeDir.
fn group_socket(srv: &Server) -> std::path::PathBuf {
    std::fs::read_dir(srv.root.join("run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".persist.sock"))
        .expect("the group's socket under DefaultRuntimeDir")
}

/// Duplicates of the connections process `pid` holds to the daemon socket `socket` (its
/// sockets whose peer address is that path), taken with `pidfd_getfd`.
fn connections_to(pid: u32, socket: &std::path::Path) -> Vec<UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: a plain system call; a negative result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return Vec::new();
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in fds.flatten() {
        let is_socket =
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        let Some(target) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: a plain system call on our pidfd; a negative result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        if fd < 0 {
            continue;
        }
        // SAFETY: pidfd_getfd returned a new descriptor that nothing else owns; a socket
        // that is not a UNIX stream fails `peer_addr` below and is closed.
        let s = unsafe { UnixStream::from_raw_fd(fd as i32) };
        let peer = s.peer_addr().ok();
        if peer.as_ref().and_then(|a| a.as_pathname()) == Some(socket) {
            out.push(s);
        }
    }
    out
}

/// The Apache child of a single-process server (the parent's other children are daemons).
fn the_apache_child(srv: &Server, daemons: &[u32]) -> u32 {
    let children: Vec<u32> = srv
        .child_pids()
        .into_iter()
        .filter(|p| !daemons.contains(p))
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

/// A connection left in an Apache child's pool is given up by the daemon itself, with
/// `Closing` and then end of stream, once idle a little longer than the child would reuse it:
/// not before `MAX_IDLE`, and soon after `DAEMON_IDLE`. There is no setting for these
/// limits, so this test waits them out (about 63 s).
#[test]
fn the_daemon_gives_up_a_connection_idle_past_the_pools_limit() {
    use mod_rwsgi::daemon::pool::{DAEMON_IDLE, MAX_IDLE};
    use mod_rwsgi::daemon::protocol::{Kind, read_frame};
    let srv = persist_server("persist_idle", "processes=1 threads=2")
        .single_process()
        .start();
    let r = srv.get("/p/sleep?0");
    assert_eq!(r.status, 200, "{}", r.describe());
    let since = Instant::now();
    let pid = r.json().n("pid") as u32;
    let child = the_apache_child(&srv, &[pid]);
    let mut conns = connections_to(child, &group_socket(&srv));
    assert_eq!(conns.len(), 1, "the child's pooled connections");
    let mut conn = conns.pop().unwrap();
    let mut buf = Vec::new();
    // Nothing comes while the child may still reuse it (a read that times out takes nothing).
    conn.set_read_timeout(Some(MAX_IDLE - Duration::from_secs(1)))
        .unwrap();
    match read_frame(&mut conn, &mut buf) {
        Err(mod_rwsgi::daemon::protocol::ProtoError::Io(e))
            if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!(
            "after {:?}: {:?}",
            since.elapsed(),
            other.map_err(|e| e.to_string())
        ),
    }
    conn.set_read_timeout(Some(DAEMON_IDLE + Duration::from_secs(3) - since.elapsed()))
        .unwrap();
    let got = read_frame(&mut conn, &mut buf).map_err(|e| e.to_string());
    assert_eq!(got, Ok(Some(Kind::Closing)), "after {:?}", since.elapsed());
    assert!(since.elapsed() >= MAX_IDLE, "{:?}", since.elapsed());
    let end = read_frame(&mut conn, &mut buf).map_err(|e| e.to_string());
    assert_eq!(end, Ok(None));
    // The child drops its copy unused and connects afresh, to the same daemon.
    let r = srv.get("/p/sleep?0");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("pid") as u32, pid);
}

/// A pooled connection that already carried a request, then gets a malformed frame, and
/// another one an oversized frame: each is refused with a line naming the group and closed,
/// and the daemon process goes on serving.
#[test]
fn bad_frames_on_a_used_connection_close_it_and_the_daemon_serves_on() {
    use mod_rwsgi::daemon::protocol::VERSION;
    let mut srv = persist_server("persist_badframe", "processes=1 threads=2")
        .single_process()
        .start();
    let first = srv.get("/p/sleep?0");
    assert_eq!(first.status, 200, "{}", first.describe());
    let pid = first.json().n("pid") as u32;
    let child = the_apache_child(&srv, &[pid]);
    let socket = group_socket(&srv);
    let malformed = b"XYZW\0\0\0\0".to_vec();
    let oversized = [b'R', VERSION, 1, 0, 0xff, 0xff, 0xff, 0x7f].to_vec();
    for (bytes, why) in [
        (malformed, "bad request frame: not a mod_rwsgi frame"),
        (
            oversized,
            "bad request frame: RequestHead frame of 2147483647 bytes exceeds its limit",
        ),
    ] {
        let line = format!("RWSGI0513: daemon process group 'persist': {why}");
        // The connection the last request went over, idle in the child's pool.
        let mut conns = connections_to(child, &socket);
        assert_eq!(conns.len(), 1, "the child's pooled connections");
        let mut conn = conns.pop().unwrap();
        conn.write_all(&bytes).unwrap();
        assert!(srv.wait_log(&line, Duration::from_secs(5)), "no {line:?}");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)
            .expect("the daemon closes the connection");
        assert!(rest.is_empty(), "{rest:?}");
        drop(conn);
        srv.allow_log(&line);
        // The child finds its copy closed and connects afresh, to the same process.
        let r = srv.get("/p/sleep?0");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.json().n("pid") as u32, pid);
    }
}

/// 100 requests at once from one child (a few threads to spare, so that Apache does not log
/// reaching MaxRequestWorkers) to a group with threads to spare:
/// the child holds a connection per request meanwhile, and keeps at most `MAX_KEPT` of them
/// idle afterwards; none fails.
#[test]
fn a_child_keeps_at_most_max_kept_idle_connections_after_a_burst() {
    use mod_rwsgi::daemon::pool::MAX_KEPT;
    const N: usize = 100;
    let srv = persist_server("persist_burst", "processes=1 threads=110")
        .single_process()
        .threads(N as u32 + 8)
        .start();
    let r = srv.get("/p/sleep?0");
    assert_eq!(r.status, 200, "{}", r.describe());
    let pid = r.json().n("pid") as u32;
    let child = the_apache_child(&srv, &[pid]);
    let socket = group_socket(&srv);
    let mut peak = 0;
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..N)
            .map(|_| sc.spawn(|| srv.get("/p/sleep?2").status))
            .collect();
        while !hs.iter().all(|h| h.is_finished()) {
            peak = peak.max(connections_to(child, &socket).len());
            std::thread::sleep(Duration::from_millis(100));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed = statuses.iter().filter(|&&s| s != 200).count();
    assert_eq!(failed, 0, "{statuses:?}");
    // Enough requests overlapped for the bound to matter.
    assert!(peak > MAX_KEPT, "at most {peak} connections at once");
    // The last responses may reach the client just before their connections are pooled
    // or closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut kept = connections_to(child, &socket).len();
    while kept > MAX_KEPT && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        kept = connections_to(child, &socket).len();
    }
    assert!(
        (1..=MAX_KEPT).contains(&kept),
        "{kept} idle connections (peak {peak})"
    );
}
