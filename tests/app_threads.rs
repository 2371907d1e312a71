//! Request objects (`wsgi.input`, `write`, `wsgi.errors`) used by an app's own thread while
//! the request ends or after it ended: the thread gets a Python exception, the request's own
//! response is not disturbed, and the child (or daemon) never touches freed request memory;
//! each test in embedded and in daemon mode (`tests/common/modes.rs`).
mod common;
use common::*;
use std::time::Duration;

fn threads_server(name: &str, mpm: Mpm, mode: Mode) -> Server {
    let b = server(name).mode(mode).mpm(mpm);
    // A single prefork child would be held by the test's keep-alive connection.
    let b = if mpm == Mpm::Prefork {
        b
    } else {
        b.single_process()
    };
    b.fragment("apps")
        .conf("WSGIScriptAlias /threads \"@APPS@/threads.wsgi\"")
        .start()
}

/// What the app's thread recorded for `token`.
fn report(srv: &Server, token: &str) -> Json {
    let text = srv
        .wait_data_file(&format!("threads-{token}"), Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "the app's thread wrote no report; log tail:\n{}",
                tail(&srv.error_log_text(), 30)
            )
        });
    Json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn error_of<'a>(doc: &'a Json, key: &str) -> &'a str {
    doc.at(key)
        .get("error")
        .unwrap_or_else(|| panic!("{key}: expected an exception, got {:?}", doc.at(key)))
        .str()
}

/// Every use after the request's end raised a Python exception.
fn assert_expired(doc: &Json) {
    for key in ["after_read", "after_write"] {
        let e = error_of(doc, key);
        assert!(
            e.starts_with("RuntimeError:") && e.contains("finished"),
            "{key}: {e}"
        );
    }
    let e = error_of(doc, "after_errors");
    assert!(
        e.starts_with("RuntimeError:") && e.contains("expired"),
        "after_errors: {e}"
    );
}

/// The processes that served the request (children, daemon) are still there, and serve.
fn assert_child_alive(srv: &Server, before: &[u32]) {
    let r = srv.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        srv.child_pids(),
        before,
        "a child (or the daemon) was replaced"
    );
}

fn thread_reading_input_when_the_request_ends(mode: Mode) {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let srv = threads_server(&format!("threads_read_{}", mpm.name()), mpm, mode);
        assert_eq!(srv.get("/hello").status, 200);
        let children = srv.child_pids();
        let t = token("read");
        let body = pattern(200_000, 7);
        let mut c = srv.connect();
        c.send(
            format!(
                "POST /threads?mode=read&token={t} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        c.send(&body[..1000]).unwrap();
        // The app has returned; its thread waits in read() for the rest of the body.
        std::thread::sleep(Duration::from_millis(500));
        c.send(&body[1000..]).unwrap();
        c.set_timeout(Duration::from_secs(30));
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{mpm:?}: {}", r.describe());
        assert_eq!(r.body, b"returned\n", "{mpm:?}");
        let doc = report(&srv, &t);
        assert_eq!(
            doc.at("during").get("ok").map(Json::num),
            Some(body.len() as f64),
            "{mpm:?}: the thread's read() {:?}",
            doc.at("during")
        );
        assert_expired(&doc);
        // The connection is still usable.
        c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        assert_eq!(c.read_response(false).unwrap().body, b"Hello World!\n");
        drop(c);
        assert_child_alive(&srv, &children);
    }
}

fn thread_writing_while_and_after_the_request_ends(mode: Mode) {
    let srv = threads_server("threads_write", Mpm::Event, mode);
    assert_eq!(srv.get("/hello").status, 200);
    let children = srv.child_pids();
    let t = token("write");
    let chunk = 65536;
    let r = srv.get(&format!(
        "/threads?mode=write&mib=8&chunk={chunk}&token={t}"
    ));
    assert_eq!(r.status, 200, "{}", r.describe());
    // The thread's writes before the response ended, then the app's own last chunk.
    let n = r.body.len() - b"returned\n".len();
    assert!(r.body.ends_with(b"returned\n"), "{}", r.describe());
    assert!(
        n % chunk == 0 && r.body[..n].iter().all(|&b| b == b'x'),
        "body of {} bytes is not whole chunks then the app's end",
        r.body.len()
    );
    // The thread's calls and the app's own sending take turns; a write() the thread makes
    // after the app's last chunk ended the response raises.
    let doc = report(&srv, &t);
    if let Some(e) = doc.at("during").get("error") {
        assert!(
            e.str().starts_with("RuntimeError:") && e.str().contains("ended"),
            "a write() after the response ended: {}",
            e.str()
        );
    }
    assert_expired(&doc);
    assert_child_alive(&srv, &children);
}

fn thread_blocked_in_write_to_a_client_that_does_not_read(mode: Mode) {
    let srv = threads_server("threads_slow_client", Mpm::Event, mode);
    assert_eq!(srv.get("/hello").status, 200);
    let children = srv.child_pids();
    let t = token("slow");
    let mut c = srv.connect();
    c.send(
        format!("GET /threads?mode=write&mib=64&token={t} HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    // The thread fills the socket buffers and blocks in write(); the app has returned.
    std::thread::sleep(Duration::from_millis(1500));
    drop(c);
    let doc = report(&srv, &t);
    let during = error_of(&doc, "during");
    assert!(
        during.starts_with("OSError:"),
        "the blocked write() when the client left: {during}"
    );
    assert_expired(&doc);
    assert_child_alive(&srv, &children);
}

fn request_end_waits_for_a_read_in_progress_in_another_thread(mode: Mode) {
    let srv = threads_server("threads_read_at_end", Mpm::Event, mode);
    assert_eq!(srv.get("/hello").status, 200);
    let children = srv.child_pids();
    let t = token("atend");
    let body = pattern(200_000, 9);
    let mut c = srv.connect();
    c.send(
        format!(
            "POST /threads?mode=read_at_close&token={t} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // The thread is blocked in read() when the request ends; the end waits for it, and the
    // read stops once the next data arrives instead of draining the body.
    std::thread::sleep(Duration::from_millis(1000));
    c.send(&body).unwrap();
    c.set_timeout(Duration::from_secs(30));
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"returned\n");
    let doc = report(&srv, &t);
    let during = error_of(&doc, "during");
    assert!(
        during.starts_with("OSError:") && during.contains("request has ended"),
        "the read in progress at the end: {during}"
    );
    assert_expired(&doc);
    // In daemon mode the response's end frame ends the exchange with the Apache child, so a
    // read begun after it fails at once, with the same error, and there is nothing to wait
    // for.
    if mode == Mode::Embedded {
        srv.assert_log("RWSGI0170");
    }
    assert_child_alive(&srv, &children);
}

both_modes!(
    thread_reading_input_when_the_request_ends,
    thread_writing_while_and_after_the_request_ends,
    thread_blocked_in_write_to_a_client_that_does_not_read,
    request_end_waits_for_a_read_in_progress_in_another_thread,
);
