//! How the Apache child relays a daemon's response to the client: `response-flush-delay`
//! (a flush the app asks for waits that long for more of the body) and
//! `response-socket-timeout` (the bound on each write to the client).
mod common;
use common::*;
use std::time::{Duration, Instant};

fn relay_server(name: &str) -> Server {
    server(name)
        .conf("WSGIDaemonProcess quick threads=2")
        .conf("WSGIDaemonProcess patient threads=2 response-flush-delay=1500")
        .conf("WSGIDaemonProcess strict threads=2 response-socket-timeout=2")
        .conf("WSGIScriptAlias /quick \"@APPS@/relay.wsgi\" process-group=quick")
        .conf("WSGIScriptAlias /patient \"@APPS@/relay.wsgi\" process-group=patient")
        .conf("WSGIScriptAlias /strict \"@APPS@/relay.wsgi\" process-group=strict")
        .start()
}

/// GET `path`: how long the response head (which goes out with the first flushed body
/// bytes) took, and the body.
fn time_to_head(srv: &Server, path: &str) -> (Duration, String) {
    let mut c = srv.connect();
    let start = Instant::now();
    c.send(&request_bytes("GET", path, &[], b"")).unwrap();
    let mut r = c.read_head().unwrap();
    let took = start.elapsed();
    c.read_body(&mut r, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    (took, r.text())
}

#[test]
fn flush_delay_holds_a_flush_while_more_of_the_body_comes() {
    let srv = relay_server("relay_flush");
    // Warm both groups up: the first request loads the script.
    time_to_head(&srv, "/quick/pause");
    time_to_head(&srv, "/patient/pause");
    // Default 5 ms: b'a' goes out at once, 0.4 s before b'b'.
    let (quick, body) = time_to_head(&srv, "/quick/pause");
    assert_eq!(body, "ab");
    assert!(quick < Duration::from_millis(300), "{quick:?}");
    // 1.5 s: b'b' comes within the delay, so both go out together.
    let (patient, body) = time_to_head(&srv, "/patient/pause");
    assert_eq!(body, "ab");
    assert!(patient >= Duration::from_millis(380), "{patient:?}");
}

/// Starts a GET of `path` and never reads the body.
fn stalled(srv: &Server, path: &str) -> Conn {
    let mut c = srv.connect();
    c.send(&request_bytes("GET", path, &[], b"")).unwrap();
    let r = c.read_head().unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    c
}

#[test]
fn response_socket_timeout_gives_up_on_a_client_that_stops_reading() {
    let srv = relay_server("relay_timeout");
    let data = srv.root.join("data");
    let started = Instant::now();
    let _strict = stalled(&srv, "/strict/flood?strict");
    // The group without the option keeps Apache's Timeout (20 s here).
    let _quick = stalled(&srv, "/quick/flood?quick");
    let deadline = started + Duration::from_secs(10);
    while !data.join("flood-strict").exists() {
        assert!(
            Instant::now() < deadline,
            "the stalled client of 'strict' was not given up within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gave_up = started.elapsed();
    assert!(gave_up >= Duration::from_secs(2), "{gave_up:?}");
    assert!(
        !data.join("flood-quick").exists(),
        "'quick' gave up its client after {gave_up:?}, before Apache's Timeout"
    );
}
