//! Responses through Apache output filters that block, re-enter or fail: a mod_include page
//! that includes another WSGI URL is served (same thread, same or another interpreter), a
//! rate-limited download or a client that does not read does not stall the child's other
//! requests, mod_deflate still compresses, and a filter's error status is logged as such,
//! not as a client disconnect; each test in embedded and in daemon mode (where the filters run
//! in the Apache child on the relayed response; `tests/common/modes.rs`).
mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(name: &str, mpm: Mpm, mode: Mode) -> Server {
    server(name)
        .mode(mode)
        .mpm(mpm)
        .single_process()
        .fragment("output_filters")
        .start()
}

/// GET on a fresh connection that fails (instead of hanging) after `limit`.
fn get_within(s: &Server, path: &str, headers: &[(&str, &str)], limit: Duration) -> Response {
    let mut c = s.connect();
    c.set_timeout(limit);
    let mut h = vec![("Connection", "close")];
    h.extend_from_slice(headers);
    let t0 = Instant::now();
    c.send(&request_bytes("GET", path, &h, b"")).unwrap();
    let mut r = c
        .read_response(false)
        .unwrap_or_else(|e| panic!("GET {path}: no complete response within {limit:?}: {e}"));
    assert!(t0.elapsed() < limit, "GET {path} took {:?}", t0.elapsed());
    r.client_port = c.local_port();
    r
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gunzip failed");
    out.stdout
}

/// The outer page of `outer` including the inner URL of `inner`, twice (the second time the
/// thread states exist already), each within a few seconds.
fn nested_include(s: &Server, outer: &str, inner: &str, outer_group: &str, inner_group: &str) {
    for round in 0..2 {
        let r = get_within(
            s,
            &format!("/ssi-{outer}/outer?inner=/ssi-{inner}/inner"),
            &[],
            Duration::from_secs(5),
        );
        assert_eq!(r.status, 200, "round {round}: {}", r.describe());
        assert_eq!(
            r.text(),
            format!("outer-start [inner-body in {inner_group}] outer-end in {outer_group}\n"),
            "round {round}"
        );
    }
    // The outer request writes the page with write() and carries on after the include: its
    // request data is its own again.
    let r = get_within(
        s,
        &format!("/ssi-{outer}/outer-write?inner=/ssi-{inner}/inner"),
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.text(),
        format!("outer-start [inner-body in {inner_group}] data of outer\n")
    );
    // The child still serves plain requests.
    let r = get_within(s, "/hello", &[], Duration::from_secs(5));
    assert_eq!(r.text(), "Hello World!\n");
}

fn include_of_wsgi_url_same_group_event(mode: Mode) {
    let s = start("of_ssi_same_event", Mpm::Event, mode);
    nested_include(&s, "shared", "shared", "shared", "shared");
}

fn include_of_wsgi_url_other_groups_event(mode: Mode) {
    let s = start("of_ssi_other_event", Mpm::Event, mode);
    nested_include(&s, "shared", "other", "shared", "other");
    nested_include(&s, "shared", "global", "shared", "%{GLOBAL} gilstate=1");
    nested_include(&s, "global", "shared", "%{GLOBAL}", "shared");
}

fn include_of_wsgi_url_prefork(mode: Mode) {
    let s = start("of_ssi_prefork", Mpm::Prefork, mode);
    nested_include(&s, "shared", "shared", "shared", "shared");
    nested_include(&s, "global", "other", "%{GLOBAL}", "other");
    nested_include(&s, "other", "global", "other", "%{GLOBAL} gilstate=1");
}

fn include_then_deflate_of_wsgi_url(mode: Mode) {
    let s = start("of_ssi_deflate", Mpm::Event, mode);
    let r = get_within(
        &s,
        "/ssi-deflate/outer?inner=/ssi-shared/inner",
        &[("Accept-Encoding", "gzip")],
        Duration::from_secs(5),
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(
        String::from_utf8_lossy(&gunzip(&r.body)),
        "outer-start [inner-body in shared] outer-end in shared\n"
    );
}

fn deflate_still_compresses(mode: Mode) {
    let s = start("of_deflate", Mpm::Event, mode);
    for path in ["/deflate/big?kib=20", "/deflate/write?kib=100"] {
        let r = get_within(
            &s,
            path,
            &[("Accept-Encoding", "gzip")],
            Duration::from_secs(10),
        );
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{path}");
        let body = gunzip(&r.body);
        let (byte, kib) = if path.contains("big") {
            (b'x', 20)
        } else {
            (b'w', 100)
        };
        assert_eq!(body.len(), kib * 1024, "{path}");
        assert!(body.iter().all(|&b| b == byte), "{path}");
    }
}

/// While one connection downloads a rate-limited response (8 KiB/s), a request on another
/// connection to the same child is answered at once.
fn rate_limited_download_does_not_stall_other_requests(mode: Mode) {
    let s = start("of_ratelimit", Mpm::Event, mode);
    // Warm the interpreters so the timing below is about the filter only.
    get_within(&s, "/hello", &[], Duration::from_secs(10));
    get_within(&s, "/slow/big?kib=1", &[], Duration::from_secs(10));
    for path in ["/slow/big?kib=30", "/slow/write?kib=30"] {
        let mut slow = s.connect();
        slow.set_timeout(Duration::from_secs(20));
        slow.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
            .unwrap();
        let t0 = Instant::now();
        let head = slow.read_head().expect("head of the rate-limited response");
        assert_eq!(head.status, 200);
        let hello_t0 = Instant::now();
        let r = get_within(&s, "/hello", &[], Duration::from_secs(2));
        let hello = hello_t0.elapsed();
        assert_eq!(r.text(), "Hello World!\n");
        let mut rest = head;
        slow.read_body(&mut rest, false).expect("rate-limited body");
        let took = t0.elapsed();
        assert_eq!(rest.body.len(), 30 * 1024, "{path}");
        // Proof that the download really was slow while hello was served.
        assert!(
            took > Duration::from_secs(2),
            "{path}: download took {took:?}"
        );
        eprintln!("{path}: hello during the download {hello:?}, download {took:?}");
    }
}

/// A client that does not read, behind small socket buffers: the final pass of a 20 KiB
/// response flushes and waits for it. Other requests of the child go on meanwhile.
fn flush_to_a_client_that_does_not_read_does_not_stall_other_requests(mode: Mode) {
    let s = server("of_stuck_client")
        .mode(mode)
        .single_process()
        .fragment("output_filters")
        .conf("SendBufferSize 4096")
        .start();
    get_within(&s, "/hello", &[], Duration::from_secs(10));
    get_within(&s, "/plain/big?kib=1", &[], Duration::from_secs(10));
    let script = format!(
        "import socket, sys, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)\n\
         s.connect(('127.0.0.1', {}))\n\
         s.sendall(b'GET /plain/big?kib=20 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         print('sent', flush=True)\n\
         time.sleep(8)\n",
        s.port
    );
    let mut stuck = python_client(&script, "sent");
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let r = get_within(&s, "/hello", &[], Duration::from_secs(2));
    eprintln!("hello while a client does not read: {:?}", t0.elapsed());
    assert_eq!(r.text(), "Hello World!\n");
    let _ = stuck.kill();
    let _ = stuck.wait();
}

/// mod_substitute refuses a line longer than `SubstituteMaxLineLength` with APR_ENOMEM; the
/// client is still connected. Through the list path and through `write()`.
fn filter_error_is_logged_with_its_status(mode: Mode) {
    let mut s = start("of_filter_error", Mpm::Event, mode);
    s.allow_log("AH01328");
    for path in ["/subst/line?kib=64", "/subst/write?kib=64"] {
        let mut c = s.connect();
        c.set_timeout(Duration::from_secs(10));
        c.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
            .unwrap();
        let port = c.local_port();
        let r = c.read_response(false).expect("a response head");
        // The head went out before the filter failed: the client must see the body is cut.
        // Embedded mode passes each element or write() with a flush, which makes SUBSTITUTE
        // pass the head on before it fails. The daemon's relay may pass the head and the
        // first body bytes in one go (it gathers what the daemon sent together), so
        // SUBSTITUTE can fail before anything reached the header filter and Apache answers
        // 500 itself. Either way the client cannot take it for a whole response, and the
        // line names the filter (each mode's own id).
        if mode == Mode::Daemon {
            assert!(r.status == 500 || !r.complete, "{path}: {}", r.describe());
        } else {
            assert!(!r.complete, "{path}: {}", r.describe());
        }
        let id = match mode {
            Mode::Embedded => "RWSGI0150",
            Mode::Daemon => "RWSGI0534",
        };
        let lines = s.expect_error(port, id);
        let line = lines.iter().find(|l| l.contains(id)).unwrap();
        assert!(
            line.contains("SUBSTITUTE -> ") && line.contains("status 12 (Cannot allocate memory)"),
            "{line}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("RWSGI0111") || l.contains("client connection closed")),
            "a filter error is not a client disconnect:\n{}",
            lines.join("\n")
        );
    }
}

both_modes!(
    include_of_wsgi_url_same_group_event,
    include_of_wsgi_url_other_groups_event,
    include_of_wsgi_url_prefork,
    include_then_deflate_of_wsgi_url,
    deflate_still_compresses,
    rate_limited_download_does_not_stall_other_requests,
    flush_to_a_client_that_does_not_read_does_not_stall_other_requests,
    filter_error_is_logged_with_its_status,
);
