//! Harness self-check: a hello app is served (in embedded and in daemon mode), and the harness
//! sees the error log.
mod common;
use common::*;

fn hello_is_served(mode: Mode) {
    let srv = server("smoke").mode(mode).fragment("apps").start();
    let r = srv.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert!(!srv.child_pids().is_empty(), "no apache children found");
    // The app runs where the mode says: in an Apache child, or in the daemon group's process.
    let pid = srv.get("/input?mode=none").json().n("pid") as u32;
    assert!(srv.app_pids().contains(&pid), "{pid} is not an app process");
    let in_child = srv.apache_child_pids().contains(&pid);
    assert_eq!(in_child, mode == Mode::Embedded, "app ran in {pid}");
}

/// The harness refuses a malformed response head (here a header name with a space, and a
/// control byte in a value) instead of reading it as headers, so no test passes on one.
#[test]
fn harness_refuses_a_malformed_response_head() {
    use std::io::Write;
    for head in [
        &b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nX-Ctl: a\x01b\r\nContent-Length: 0\r\n\r\n"[..],
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(head).unwrap();
        });
        let mut c = Conn::connect(&addr);
        let err = c.read_response(false).map(|r| r.describe()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        peer.join().unwrap();
    }
}

both_modes!(hello_is_served,);
