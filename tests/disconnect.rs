//! Clients that go away mid-response or mid-upload cost nothing: iteration stops, close() runs,
//! the child (and the daemon) survives and the next request on a new connection is served; each
//! test in embedded and in daemon mode (`tests/common/modes.rs`).
mod common;
use common::*;
use std::io::Read;
use std::time::{Duration, Instant};

fn single(name: &str, mode: Mode) -> Server {
    server(name)
        .mode(mode)
        .single_process()
        .fragment("apps")
        .start()
}

/// The server's processes: its one Apache child, and in daemon mode the daemon process too.
fn processes(s: &Server) -> Vec<u32> {
    let p = s.child_pids();
    let want = match s.mode {
        Mode::Embedded => 1,
        Mode::Daemon => 2,
    };
    assert_eq!(p.len(), want, "{p:?}");
    p
}

/// Read the response head and at least `n` body bytes, then drop the connection (with unread
/// data pending, the kernel answers with a RST).
fn read_some_and_drop(mut c: Conn, n: usize) {
    let head = c.read_head().expect("response head");
    assert_eq!(head.status, 200);
    let mut got = 0;
    let mut buf = [0u8; 16384];
    while got < n {
        match c.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => panic!("read: {e}"),
        }
    }
    drop(c);
}

fn disconnect_mid_response_stops_iteration_and_closes(mode: Mode) {
    let s = single("disc_resp", mode);
    let pids = processes(&s);
    for (i, q) in ["max=20000", "max=2000&sleep=0.01"].iter().enumerate() {
        let tok = token(&format!("resp{i}"));
        let mut c = s.connect();
        c.send(&request_bytes(
            "GET",
            &format!("/response?mode=endless&{q}&token={tok}"),
            &[],
            b"",
        ))
        .unwrap();
        read_some_and_drop(c, 200_000);
        let t0 = Instant::now();
        let marker = s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(15));
        let marker =
            marker.unwrap_or_else(|| panic!("close() not called after a disconnect ({q})"));
        let max: u64 = q
            .trim_start_matches("max=")
            .split('&')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let count: u64 = marker.split_whitespace().next().unwrap().parse().unwrap();
        assert!(
            count < max,
            "iteration did not stop: {count} of {max} chunks pulled"
        );
        eprintln!(
            "{q}: close() after {count} chunks, {:?} after the disconnect",
            t0.elapsed()
        );
        // No allow_log: like mod_wsgi 4.9.4, a client going away is not an error worth logging.
        let r = s.get("/hello");
        assert_eq!(r.status, 200);
    }
    assert_eq!(processes(&s), pids, "a process died");
}

fn disconnect_mid_upload(mode: Mode) {
    let s = single("disc_upload", mode);
    let pids = processes(&s);
    for mode in ["read", "readn", "readline"] {
        let tok = token(mode);
        let total = 10 << 20;
        let mut c = s.connect();
        c.send(format!("POST /input?mode={mode}&token={tok} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n\r\n").as_bytes())
            .unwrap();
        c.send(&pattern(1 << 20, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(c); // no allow_log: mod_wsgi logs nothing at error level here either
        let doc = s
            .wait_data_file(&format!("input-{tok}"), Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{mode}: app did not finish after the client went away"));
        let j = Json::parse(&doc).unwrap();
        assert!((j.n("length") as usize) < total, "{mode}: {doc}");
        let err = j
            .opt_s("error")
            .unwrap_or_else(|| panic!("{mode}: read did not raise: {doc}"))
            .to_string();
        assert!(
            err.contains("OSError") || err.contains("IOError"),
            "{mode}: unexpected error {err}"
        );
        assert_eq!(s.get("/hello").status, 200);
    }
    assert_eq!(processes(&s), pids, "a process died");
}

fn many_disconnects_cost_nothing(mode: Mode) {
    let s = single("disc_many", mode);
    let pids = processes(&s);
    let pid = s.app_pid();
    let base = rss(pid);
    let mut toks = Vec::new();
    for i in 0..20 {
        let tok = token(&format!("many{i}"));
        let mut c = s.connect();
        c.send(&request_bytes(
            "GET",
            &format!("/response?mode=endless&max=5000&token={tok}"),
            &[],
            b"",
        ))
        .unwrap();
        if i % 2 == 0 {
            read_some_and_drop(c, 1);
        } else {
            drop(c); // before reading anything
        }
        toks.push(tok);
    }
    for tok in &toks {
        assert!(
            s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(15))
                .is_some(),
            "close() missing for {tok}"
        );
    }
    for _ in 0..5 {
        assert_eq!(s.get("/hello").status, 200);
    }
    assert_eq!(processes(&s), pids);
    let grown = rss(pid).saturating_sub(base);
    assert!(
        grown < 32 << 20,
        "RSS grew by {} MiB over 20 aborted responses",
        grown >> 20
    );
}

fn disconnect_before_the_app_answers(mode: Mode) {
    // The client sends a request and leaves while the app is still producing the first chunk.
    let s = single("disc_early", mode);
    let tok = token("early");
    let mut c = s.connect();
    c.send(&request_bytes(
        "GET",
        &format!("/response?mode=endless&max=50&sleep=0.05&token={tok}"),
        &[],
        b"",
    ))
    .unwrap();
    c.shutdown_write();
    drop(c);
    let marker = s
        .wait_data_file(&format!("closed-{tok}"), Duration::from_secs(15))
        .expect("close() not called");
    let count: u64 = marker.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        count < 50,
        "iteration ran to the end ({count}) although the client was gone"
    );
    assert_eq!(s.get("/hello").status, 200);
}

fn prefork_disconnect_mid_response(mode: Mode) {
    let s = server("disc_prefork")
        .mode(mode)
        .mpm(Mpm::Prefork)
        .fragment("apps")
        .start();
    let tok = token("prefork");
    let mut c = s.connect();
    c.send(&request_bytes(
        "GET",
        &format!("/response?mode=endless&max=20000&token={tok}"),
        &[],
        b"",
    ))
    .unwrap();
    read_some_and_drop(c, 100_000);
    let marker = s
        .wait_data_file(&format!("closed-{tok}"), Duration::from_secs(15))
        .expect("close() not called");
    let count: u64 = marker.split_whitespace().next().unwrap().parse().unwrap();
    assert!(count < 20000, "iteration did not stop");
    assert_eq!(s.get("/hello").status, 200);
}

both_modes!(
    disconnect_mid_response_stops_iteration_and_closes,
    disconnect_mid_upload,
    many_disconnects_cost_nothing,
    disconnect_before_the_app_answers,
    prefork_disconnect_mid_response,
);
