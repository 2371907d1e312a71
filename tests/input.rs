//! wsgi.input: read modes, sizes, 100-continue, chunked request bodies, unread bodies on
//! keep-alive connections, the GIL released while blocked on input, bounded memory; each test in
//! embedded and in daemon mode (`tests/common/modes.rs`).
mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

const MODES: &[&str] = &[
    "read",
    "readn",
    "readline",
    "readline_n",
    "readlines",
    "readlines_hint",
    "iter",
    "cl",
];

fn text_body() -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..300 {
        b.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 97)).as_bytes());
    }
    b.extend_from_slice(b"last line without newline");
    b
}

fn binary_body(n: usize) -> Vec<u8> {
    pattern(n, 42)
}

fn check(srv: &Server, mode: &str, extra_q: &str, body: &[u8]) -> Json {
    let path = format!("/input?mode={mode}{extra_q}");
    let r = srv.post(&path, body, &[("Content-Type", "application/octet-stream")]);
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    let j = r.json();
    assert_eq!(j.at("error"), &Json::Null, "{path}: app error");
    assert_eq!(j.n("length") as usize, body.len(), "{path}: length");
    assert_eq!(j.s("sha256"), sha256_hex(body), "{path}: sha256");
    j
}

fn read_modes_small_and_empty_bodies(mode: Mode) {
    let srv = server("input_modes").mode(mode).fragment("apps").start();
    for body in [
        Vec::new(),
        b"x".to_vec(),
        b"\n".to_vec(),
        b"a\nb\n\nc".to_vec(),
        text_body(),
    ] {
        for mode in MODES {
            let j = check(&srv, mode, "", &body);
            if mode.starts_with("readline") || *mode == "iter" || mode.starts_with("readlines") {
                // Line splitting: every item but the last ends in \n, and they add up.
                let lines: Vec<String> = j
                    .at("lines")
                    .arr()
                    .iter()
                    .map(|l| l.str().to_string())
                    .collect();
                if mode != &"readline_n" {
                    // (the app reports at most the first 200 lines)
                    let expect: Vec<String> = body
                        .split_inclusive(|&b| b == b'\n')
                        .take(200)
                        .map(|l| l.iter().map(|&c| c as char).collect())
                        .collect();
                    assert!(
                        lines == expect,
                        "mode {mode}: lines differ\n got {:?}\nwant {:?}",
                        &lines[..lines.len().min(5)],
                        &expect[..expect.len().min(5)]
                    );
                }
            }
        }
    }
}

fn read_n_and_readline_n_respect_the_size(mode: Mode) {
    let srv = server("input_sizes").mode(mode).fragment("apps").start();
    let body = text_body();
    for n in [1usize, 7, 64, 4096] {
        check(&srv, "readn", &format!("&n={n}"), &body);
        let j = check(&srv, "readline_n", &format!("&n={n}"), &body);
        for l in j.at("lines").arr() {
            assert!(
                l.str().len() <= n,
                "readline({n}) returned {} bytes",
                l.str().len()
            );
        }
    }
}

fn large_bodies(mode: Mode) {
    let srv = server("input_large").mode(mode).fragment("apps").start();
    for size in [65535usize, 65536, 65537, 1 << 20, (8 << 20) + 3] {
        let body = binary_body(size);
        for mode in ["read", "readn", "readline", "iter", "cl"] {
            check(&srv, mode, "", &body);
        }
        check(&srv, "readn", "&n=1000", &body);
    }
}

fn read_after_eof_returns_empty(mode: Mode) {
    // read(n) loop must end with b'' exactly once the body is consumed (proved by readn's loop
    // terminating with the right length), also with Content-Length: 0 and no body at all.
    let srv = server("input_eof").mode(mode).fragment("apps").start();
    check(&srv, "readn", "", b"");
    let r = srv.get("/input?mode=readn");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("length"), 0.0);
}

// ---- Expect: 100-continue ------------------------------------------------------------------

fn expect_headers(path: &str, len: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn continue_sent_when_app_reads(mode: Mode) {
    let srv = server("input_100").mode(mode).fragment("apps").start();
    let body = text_body();
    let mut c = srv.connect();
    c.send(&expect_headers("/input?mode=read", body.len()))
        .unwrap();
    c.set_timeout(Duration::from_secs(10));
    let head = c.read_head().expect("interim response");
    assert_eq!(
        head.status, 100,
        "expected 100 Continue first, got {:?}",
        head
    );
    c.send(&body).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("length") as usize, body.len());
}

/// In both modes `100 Continue` goes out only when the app reads: the daemon pulls the body
/// (mod_wsgi 4.9.4's daemon mode forwards it before the app runs, and fails these).
fn no_continue_when_app_does_not_read(mode: Mode) {
    let srv = server("input_no100").mode(mode).fragment("apps").start();
    let mut c = srv.connect();
    c.send(&expect_headers("/input?mode=none", 1000)).unwrap();
    c.set_timeout(Duration::from_secs(10));
    let r = c
        .read_response(false)
        .expect("final response without sending the body");
    assert!(
        r.interim.is_empty(),
        "unexpected interim responses {:?}",
        r.interim
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json().n("length"), 0.0);
}

fn no_stray_continue_when_app_reads_after_headers(mode: Mode) {
    let srv = server("input_late100").mode(mode).fragment("apps").start();
    let body = b"late body".to_vec();
    let mut c = srv.connect();
    c.send(&expect_headers(
        "/input?mode=read_after_headers",
        body.len(),
    ))
    .unwrap();
    c.set_timeout(Duration::from_secs(10));
    let mut head = c.read_head().expect("response head");
    // Either way, a 100 may not appear *inside* the response: the head is the final one.
    assert_eq!(head.status, 200, "{:?}", head);
    c.send(&body).unwrap();
    c.read_body(&mut head, false).unwrap();
    let text = head.text();
    assert!(
        !text.contains("100 Continue"),
        "100 Continue leaked into the body: {text:?}"
    );
    assert!(text.starts_with("{\"early\": true, "), "{text}");
    let j = Json::parse(&text.replacen("{\"early\": true, ", "{", 1))
        .unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(j.n("length") as usize, body.len());
}

// ---- chunked request bodies ----------------------------------------------------------------

fn chunked_server(name: &str, mode: Mode) -> Server {
    server(name).mode(mode)
        .fragment("apps")
        .conf("WSGIScriptAlias /chunked \"@APPS@/input.wsgi\"\n<Location /chunked>\n  WSGIChunkedRequest On\n</Location>")
        .start()
}

fn chunked_request(path: &str, body: &[u8], piece: usize) -> Vec<u8> {
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .into_bytes();
    req.extend_from_slice(&chunked(body, piece));
    req
}

fn chunked_body_with_chunked_request_on(mode: Mode) {
    let srv = chunked_server("input_chunked", mode);
    for (size, piece) in [
        (0usize, 1usize),
        (1, 1),
        (1000, 7),
        (300_000, 65536),
        (2 << 20, 100_000),
    ] {
        let body = binary_body(size);
        for mode in ["read", "readn", "readline", "iter"] {
            let r = srv.raw(&chunked_request(
                &format!("/chunked?mode={mode}"),
                &body,
                piece,
            ));
            assert_eq!(r.status, 200, "{mode} {size}: {}", r.describe());
            let j = r.json();
            assert_eq!(j.at("error"), &Json::Null);
            assert_eq!(j.n("length") as usize, size, "{mode} {size}");
            assert_eq!(j.s("sha256"), sha256_hex(&body));
            assert_eq!(
                j.at("content_length"),
                &Json::Null,
                "CONTENT_LENGTH set for a chunked body"
            );
        }
    }
}

fn chunked_body_without_chunked_request_is_411(mode: Mode) {
    let mut srv = chunked_server("input_chunked_off", mode);
    let r = srv.raw(&chunked_request("/input?mode=read", b"abc", 1));
    assert_eq!(r.status, 411, "{}", r.describe());
    srv.expect_error(r.client_port, "chunked");
}

fn other_transfer_codings(mode: Mode) {
    let mut srv = chunked_server("input_te", mode);
    // Not ending in chunked: Apache's core rejects it (400) before any handler runs.
    let req = b"POST /chunked?mode=read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n";
    let r = srv.raw(req);
    assert_eq!(r.status, 400, "{}", r.describe());
    srv.allow_log(&Server::client_tag(r.client_port));
    // Another coding before chunked: reaches the handler, which answers 501.
    let mut req = b"POST /chunked?mode=read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(b"abc", 3));
    let r = srv.raw(&req);
    assert_eq!(r.status, 501, "{}", r.describe());
    srv.expect_error(r.client_port, "Transfer-Encoding");
}

// ---- keep-alive with unread bodies -----------------------------------------------------------

fn unread_body_does_not_break_keepalive(mode: Mode) {
    let srv = server("input_unread").mode(mode).fragment("apps").start();
    for size in [10usize, 100_000, 3 << 20] {
        let mut c = srv.connect();
        let body = binary_body(size);
        let mut req = format!(
            "POST /input?mode=none HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&body);
        // Send in a thread: the server may answer before consuming the body.
        let mut w = c.stream.try_clone().unwrap();
        let t = std::thread::spawn(move || w.write_all(&req));
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.describe());
        t.join().unwrap().expect("upload");
        c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let r2 = c
            .read_response(false)
            .expect("second response on the same connection");
        assert_eq!(r2.status, 200, "size {size}: {}", r2.describe());
        assert_eq!(r2.body, b"Hello World!\n");
        // Partially read body too.
        let mut req = format!("POST /input?mode=readn&n=5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n")
            .into_bytes();
        req.extend_from_slice(&body);
        c.send(&req).unwrap();
        let r3 = c.read_response(false).unwrap();
        assert_eq!(r3.status, 200);
        assert_eq!(r3.json().n("length") as usize, size);
    }
}

fn pipelined_requests_with_bodies(mode: Mode) {
    let srv = server("input_pipeline").mode(mode).fragment("apps").start();
    let mut c = srv.connect();
    let mut all = Vec::new();
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| binary_body(1000 * i + 1)).collect();
    for b in &bodies {
        all.extend_from_slice(
            format!(
                "POST /input?mode=read HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )
            .as_bytes(),
        );
        all.extend_from_slice(b);
    }
    c.send(&all).unwrap();
    for b in &bodies {
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json().s("sha256"), sha256_hex(b));
    }
}

// ---- GIL released around blocking input -------------------------------------------------------

fn gil_released_while_waiting_for_input(mode: Mode) {
    // One app process (one event-MPM child, or the one daemon process), so the trickling
    // upload and the quick requests share it.
    let srv = server("input_gil")
        .mode(mode)
        .single_process()
        .fragment("apps")
        .start();
    let warm = srv.get("/input?mode=none").json();
    let pid = warm.n("pid") as u32;

    let len = 20usize;
    let mut slow = srv.connect();
    slow.send(format!("POST /input?mode=read HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut w = slow.stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..len {
            std::thread::sleep(Duration::from_millis(150));
            if w.write_all(b"z").is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300)); // the app is now blocked in read()
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t0 = Instant::now();
        let r = srv.get("/input?mode=none");
        let took = t0.elapsed();
        worst = worst.max(took);
        assert_eq!(r.status, 200);
        assert_eq!(r.json().n("pid") as u32, pid, "served by another process");
        std::thread::sleep(Duration::from_millis(100));
    }
    trickle.join().unwrap();
    let r = slow.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    assert_eq!(j.n("length") as usize, len);
    assert_eq!(j.n("pid") as u32, pid);
    assert!(
        worst < Duration::from_millis(1000),
        "a quick request took {worst:?} while another thread waited on input"
    );
}

// ---- bounded memory --------------------------------------------------------------------------

fn upload_512mib_read_in_chunks_bounded_memory(mode: Mode) {
    let srv = server("input_512m")
        .mode(mode)
        .single_process()
        .fragment("apps")
        .start();
    // Warm up the interpreter and the app in the (only) app process.
    let warm = srv
        .post("/input?mode=readn", &binary_body(1 << 20), &[])
        .json();
    let pid = warm.n("pid") as u32;
    assert_eq!(srv.app_pid(), pid);
    let before = peak_rss(pid);
    let total: u64 = 512 << 20;
    let mut c = srv.connect();
    c.send(format!("POST /input?mode=readn&n=65536 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let piece = binary_body(256 << 10);
    let mut sent = 0u64;
    while sent < total {
        c.send(&piece).expect("upload");
        sent += piece.len() as u64;
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    assert_eq!(j.n("length") as u64, total);
    assert_eq!(j.n("pid") as u32, pid);
    let after = peak_rss(pid);
    let growth = after.saturating_sub(before);
    eprintln!(
        "upload 512 MiB: app process peak RSS {} -> {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(growth < 32 << 20, "peak RSS grew by {} MiB", growth >> 20);
}

fn prefork_input_and_keepalive(mode: Mode) {
    let s = server("input_prefork")
        .mode(mode)
        .mpm(Mpm::Prefork)
        .fragment("apps")
        .start();
    let body = binary_body((1 << 20) + 5);
    for mode in ["read", "readn", "readline", "iter"] {
        check(&s, mode, "", &body);
    }
    let mut c = s.connect();
    c.send(&request_bytes(
        "POST",
        "/input?mode=none",
        &[("Content-Length", "5")],
        b"abcde",
    ))
    .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
    c.send(&request_bytes("GET", "/hello", &[], b"")).unwrap();
    assert_eq!(c.read_response(false).unwrap().body, b"Hello World!\n");
}

// ---- memory per line and per read() ------------------------------------------------------------

/// Uploads `total` bytes made of `piece` repeated to the memory-measuring app in the server's
/// only app process; returns (RSS before, peak RSS during, RSS after dropping the data, app's answer).
fn measure_upload(srv: &Server, mode: &str, piece: &[u8], total: usize) -> (f64, f64, f64, Json) {
    let pid = srv.app_pid();
    // Writing 5 to clear_refs resets VmHWM to the current RSS.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset peak RSS");
    let before = rss(pid) as f64;
    let mut c = srv.connect();
    c.send(format!("POST /memory?mode={mode} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let block: Vec<u8> = piece.iter().copied().cycle().take(1 << 20).collect();
    let mut sent = 0;
    while sent < total {
        let n = block.len().min(total - sent);
        c.send(&block[..n]).expect("upload");
        sent += n;
    }
    c.set_timeout(Duration::from_secs(60));
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{mode}: {}", r.describe());
    let j = r.json();
    assert_eq!(j.n("length") as usize, total, "{mode}: length");
    assert_eq!(j.n("pid") as u32, pid);
    let (peak, after) = (peak_rss(pid) as f64, j.n("after"));
    let mib = |v: f64| v / (1 << 20) as f64;
    eprintln!(
        "{mode} over {} MiB: RSS before {:.0} MiB, peak {:.0} MiB, after {:.0} MiB ({} lines)",
        total >> 20,
        mib(before),
        mib(peak),
        mib(after),
        j.n("lines")
    );
    (peak - before, after - before, before, j)
}

fn memory_of_a_line_and_of_read_is_bounded_by_its_size(mode: Mode) {
    let srv = server("input_memory")
        .mode(mode)
        .single_process()
        .fragment("apps")
        .conf("WSGIScriptAlias /memory \"@APPS@/input_memory.wsgi\"")
        .start();
    let total = 200usize << 20;
    let body = total as f64;
    srv.get("/memory?mode=read"); // warm up the interpreter

    // The whole body, read at once, costs about one copy of itself, handed over and never
    // kept.
    let one_copy_then_freed = |what: &str, peak: f64, after: f64| {
        assert!(
            peak < 1.5 * body + (16 << 20) as f64,
            "{what}: peak RSS grew by {} MiB",
            peak as u64 >> 20
        );
        assert!(
            after < (32 << 20) as f64,
            "{what}: {} MiB still held after the data was dropped",
            after as u64 >> 20
        );
    };
    // As one 200 MiB line.
    let (peak, after, _, j) = measure_upload(&srv, "iter", b"x", total);
    assert_eq!(j.n("lines"), 1.0);
    one_copy_then_freed("iterating a 200 MiB line", peak, after);
    // By read().
    let (peak, after, _, _) = measure_upload(&srv, "read", b"x", total);
    one_copy_then_freed("read() of 200 MiB", peak, after);

    // Short lines cost their own size, whatever the body's.
    let line: Vec<u8> = [vec![b'y'; 1023], vec![b'\n']].concat();
    let (peak, _, _, j) = measure_upload(&srv, "readline", &line, total);
    assert_eq!(j.n("longest"), 1024.0);
    assert!(
        peak < (16 << 20) as f64,
        "readline() over 1 KiB lines: peak RSS grew by {} MiB",
        peak as u64 >> 20
    );
}

both_modes!(
    read_modes_small_and_empty_bodies,
    read_n_and_readline_n_respect_the_size,
    large_bodies,
    read_after_eof_returns_empty,
    continue_sent_when_app_reads,
    no_continue_when_app_does_not_read,
    no_stray_continue_when_app_reads_after_headers,
    chunked_body_with_chunked_request_on,
    chunked_body_without_chunked_request_is_411,
    other_transfer_codings,
    unread_body_does_not_break_keepalive,
    pipelined_requests_with_bodies,
    gil_released_while_waiting_for_input,
    upload_512mib_read_in_chunks_bounded_memory,
    prefork_input_and_keepalive,
    memory_of_a_line_and_of_read_is_bounded_by_its_size,
);
