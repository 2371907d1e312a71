//! start_response and the response iterable: status/header validation, repeated headers,
//! exc_info, write(), iterables, close(), Content-Length handling, HEAD/204/304, exceptions,
//! bounded memory for huge responses; each test in embedded and in daemon mode
//! (`tests/common/modes.rs`).
mod common;
use common::*;
use std::io::Read;
use std::time::Duration;

fn srv(name: &str, mode: Mode) -> Server {
    server(name).mode(mode).fragment("apps").start()
}

fn get_keepalive(c: &mut Conn, path: &str) -> Response {
    c.send(&request_bytes("GET", path, &[], b"")).unwrap();
    c.read_response(false).unwrap()
}

/// After a response, the same connection still serves a clean request.
fn assert_connection_reusable(c: &mut Conn) {
    let r = get_keepalive(c, "/hello");
    assert_eq!(
        r.status,
        200,
        "follow-up on the same connection: {}",
        r.describe()
    );
    assert_eq!(r.body, b"Hello World!\n");
}

/// Everything the server sends until it closes the connection (a reset keeps what came).
fn read_to_close(c: &mut Conn) -> Vec<u8> {
    c.set_timeout(Duration::from_secs(15));
    let mut out = Vec::new();
    let _reset_or_timeout = c.stream.read_to_end(&mut out);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One request with `Connection: close`, answered as raw bytes.
fn raw_get(s: &Server, path: &str) -> (Vec<u8>, u16) {
    let mut c = s.connect();
    c.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
        .unwrap();
    (read_to_close(&mut c), c.local_port())
}

// ---- status -----------------------------------------------------------------------------------

fn valid_statuses(mode: Mode) {
    let s = srv("resp_status_ok", mode);
    for (q, code, reason) in [
        ("200%20OK", 200, "OK"),
        ("404%20Not%20Here", 404, "Not Here"),
        ("299%20Custom", 299, "Custom"),
    ] {
        let r = s.get(&format!("/response?mode=status&s={q}"));
        assert_eq!(r.status, code, "{q}: {}", r.describe());
        assert_eq!(r.reason, reason);
        assert_eq!(r.body, b"status body");
    }
}

fn invalid_statuses_give_500(mode: Mode) {
    let mut s = srv("resp_status_bad", mode);
    for q in [
        "200",
        "20%20OK",
        "2000%20OK",
        "abc%20OK",
        "200OK",
        "200%20O%0AK",
        "200%20O%0DK",
        "%20200%20OK",
        "200%20Sn%E2%98%83w",
    ] {
        let r = s.get(&format!("/response?mode=status&s={q}"));
        assert_eq!(r.status, 500, "status {q:?} accepted: {}", r.describe());
        s.expect_error(r.client_port, "status");
    }
}

/// A final status is 200-599. A 1xx from the app would be taken by the client as an interim
/// response (or, for 101, a protocol switch) followed by bytes it cannot frame; codes above
/// 599 do not exist. mod_wsgi 4.9.4 sends them as the app gave them.
fn interim_and_out_of_range_statuses_give_500(mode: Mode) {
    let mut s = srv("resp_status_1xx", mode);
    for q in [
        "100%20Continue",
        "101%20Switching%20Protocols",
        "103%20Early%20Hints",
        "199%20Whatever",
        "600%20Beyond",
        "999%20Way%20Beyond",
    ] {
        let (raw, port) = raw_get(&s, &format!("/response?mode=status_body&s={q}"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 500 "), "{q}: {text}");
        assert!(
            !text.contains("must not be sent"),
            "{q}: app body sent: {text}"
        );
        let lines = s.expect_error(port, "not a final status");
        assert!(
            lines.iter().any(|l| l.contains("response.wsgi")),
            "{q}: the log does not name the script:\n{}",
            lines.join("\n")
        );
    }
}

// ---- headers ----------------------------------------------------------------------------------

/// Hop-by-hop headers belong to the server (PEP 3333). Passed on, `Transfer-Encoding: chunked`
/// lets the body end the response at once and forge a second one on the kept-alive
/// connection. A deliberate difference from mod_wsgi 4.9.4, which passes them on.
fn hop_by_hop_headers_give_500_and_cannot_smuggle_a_response(mode: Mode) {
    let mut s = srv("resp_hop", mode);
    for (name, value) in [
        ("Transfer-Encoding", "chunked"),
        ("transfer-encoding", "chunked"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Sum"),
        ("Upgrade", "websocket"),
        ("Proxy-Connection", "keep-alive"),
    ] {
        let mut c = s.connect();
        // A second request pipelined on the same connection: a forged response would be
        // taken as its answer.
        let mut req = request_bytes(
            "GET",
            &format!("/response?mode=hop&name={name}&value={value}"),
            &[],
            b"",
        );
        req.extend(request_bytes(
            "GET",
            "/hello",
            &[("Connection", "close")],
            b"",
        ));
        c.send(&req).unwrap();
        let raw = read_to_close(&mut c);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 500 "), "{name}: {text}");
        assert!(
            !text.contains("X-Smuggled"),
            "{name}: forged response: {text}"
        );
        let lines = s.expect_error(c.local_port(), &format!("'{name}'"));
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("'{name}'")) && l.contains("response.wsgi")),
            "{name}: no log line names the header and the script:\n{}",
            lines.join("\n")
        );
    }
}

/// PEP 3333: status and header values are native strings that go out as latin-1, one byte
/// per code point, Content-Type and the reason phrase included.
fn status_and_headers_go_out_as_latin1_bytes(mode: Mode) {
    let s = srv("resp_latin1_wire", mode);
    let (raw, _) = raw_get(&s, "/response?mode=latin1_head");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = &raw[..end + 2];
    let shown = String::from_utf8_lossy(head);
    assert!(head.starts_with(b"HTTP/1.1 200 Caf\xe9\r\n"), "{shown}");
    assert!(
        contains(head, b"\r\nContent-Type: text/plain; x=caf\xe9\r\n"),
        "{shown}"
    );
    assert!(contains(head, b"\r\nX-Latin: caf\xe9\r\n"), "{shown}");
    assert!(!contains(head, b"\xc3"), "UTF-8 on the wire: {shown}");
    assert!(
        contains(&raw[end..], b"latin-1 head"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

fn invalid_headers_give_500_never_injected(mode: Mode) {
    let mut s = srv("resp_hdr_bad", mode);
    for case in [
        "nonstr_name",
        "nonstr_value",
        "nonlatin1_value",
        "nonlatin1_name",
        "crlf_value",
        "lf_value",
        "cr_value",
        "crlf_name",
        "space_name",
        "empty_name",
        "not_tuple",
        "three_tuple",
        "nul_value",
        "ctl_value",
        "esc_value",
        "del_value",
    ] {
        let r = s.get(&format!("/response?mode=header&case={case}"));
        assert_eq!(r.status, 500, "{case}: {}", r.describe());
        assert!(r.header("X-Injected").is_none(), "{case}: header injected");
        assert!(!r.text().contains("header body"), "{case}: app body sent");
        s.expect_error(r.client_port, "Error");
    }
    let r = s.get("/response?mode=headers_tuple");
    assert_eq!(r.status, 500, "headers as a tuple: {}", r.describe());
    s.expect_error(r.client_port, "list");
}

fn latin1_and_empty_header_values(mode: Mode) {
    let s = srv("resp_hdr_ok", mode);
    let r = s.get("/response?mode=header&case=latin1_value");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("X-Latin"),
        Some("caf\u{e9}"),
        "sent as the single byte 0xE9"
    );
    let r = s.get("/response?mode=header&case=empty_value");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Empty"), Some(""));
    let r = s.get("/response?mode=header&case=tab_value");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Tab"), Some("a\tb"));
}

fn repeated_headers_kept_in_order(mode: Mode) {
    let s = srv("resp_cookies", mode);
    let r = s.get("/response?mode=set_cookie");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.headers_all("Set-Cookie"),
        vec!["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"]
    );
    let multi = r.headers_all("X-Multi");
    // Either kept as two headers or (Apache table merge) joined: order must be preserved.
    assert!(
        multi == vec!["first", "second"] || multi == vec!["first, second"],
        "{multi:?}"
    );
}

// ---- start_response / exc_info ----------------------------------------------------------------

/// PEP 3333: a second start_response call without exc_info is an error. mod_rwsgi follows the
/// PEP here (decisions.md §1); mod_wsgi 4.9.4 just replaces the status (201), so this test is
/// expected to FAIL under mod_wsgi.
fn second_start_response_without_exc_info_is_an_error(mode: Mode) {
    let mut s = srv("resp_second_sr", mode);
    let r = s.get("/response?mode=second_sr");
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(r.client_port, "start_response");
}

fn exc_info_before_headers_replaces_the_response(mode: Mode) {
    let s = srv("resp_excinfo_before", mode);
    let r = s.get("/response?mode=exc_info_before");
    assert_eq!(r.status, 500, "{}", r.describe());
    assert_eq!(r.reason, "Oops");
    assert_eq!(r.header("X-Error"), Some("yes"));
    assert_eq!(r.body, b"error page");
}

fn exc_info_after_headers_reraises_and_cuts_the_response(mode: Mode) {
    let mut s = srv("resp_excinfo_after", mode);
    let tok = token("excafter");
    let r = s.get(&format!("/response?mode=exc_info_after&token={tok}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.starts_with(b"partial"), "{}", r.describe());
    assert!(!r.text().contains("never"));
    assert!(
        !r.complete,
        "response should be cut, got a complete body: {}",
        r.describe()
    );
    s.expect_error(r.client_port, "exc_info after headers");
    assert_eq!(
        s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(5))
            .as_deref(),
        Some("1 exc")
    );
}

// ---- iterables and write() --------------------------------------------------------------------

fn iterables_and_write(mode: Mode) {
    let s = srv("resp_iter", mode);
    for (mode, body) in [
        ("list", &b"Hello World"[..]),
        ("generator", b"abc"),
        ("write", b"onetwothree"),
        ("write_only", b"only"),
        ("empty_chunks", b"abcdef"),
        ("all_empty", b""),
    ] {
        let r = s.get(&format!("/response?mode={mode}"));
        assert_eq!(r.status, 200, "{mode}: {}", r.describe());
        assert!(r.complete, "{mode}: {:?}", r.error);
        assert_eq!(r.body, body, "{mode}");
    }
}

/// Wrong arguments to `write()` and to the `write()`/`writelines()` of `wsgi.errors` raise
/// TypeErrors that name the call and the type given. Fails under mod_wsgi 4.9.4, whose
/// messages are CPython's ("_IOBase.writelines() takes exactly one argument (0 given)") or
/// do not name the call ("byte string value expected, value of type str found").
fn wrong_write_arguments_are_type_errors(mode: Mode) {
    let s = srv("resp_bad_write", mode);
    let r = s.get("/response?mode=bad_write_args");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.text().lines().collect::<Vec<_>>(),
        [
            "write() takes exactly one argument",
            "write() argument must be bytes, not str",
            "write() takes exactly one argument",
            "write() argument must be str, not int",
            "writelines() takes exactly one argument",
            "write() argument must be str, not bytes",
        ]
    );
}

fn close_is_always_called(mode: Mode) {
    let mut s = srv("resp_close", mode);
    for (mode, expect) in [
        ("list", "2"),
        ("generator", "3"),
        ("empty_chunks", "5"),
        ("write", "1"),
    ] {
        let tok = token(mode);
        let r = s.get(&format!("/response?mode={mode}&token={tok}"));
        assert_eq!(r.status, 200);
        let got = s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(5));
        assert_eq!(got.as_deref(), Some(expect), "close() of {mode}");
    }
    // Also when iteration raises.
    let tok = token("exc");
    let r = s.get(&format!("/response?mode=exc_after_headers&token={tok}"));
    s.expect_error(r.client_port, "boom-after-headers");
    assert_eq!(
        s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(5))
            .as_deref(),
        Some("1 exc")
    );
    // And on HEAD (body discarded by Apache, iterable still closed).
    let tok = token("head");
    let r = s.head(&format!("/response?mode=list&token={tok}"));
    assert_eq!(r.status, 200);
    assert!(
        s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(5))
            .is_some(),
        "close() after HEAD"
    );
}

fn exception_in_close_is_logged(mode: Mode) {
    let mut s = srv("resp_close_raises", mode);
    let r = s.get("/response?mode=close_raises");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"close raises");
    s.expect_error(r.client_port, "boom-in-close");
}

// ---- Content-Length handling -----------------------------------------------------------------

fn content_length_shorter_than_body_truncates(mode: Mode) {
    let s = srv("resp_cl_short", mode);
    let mut c = s.connect();
    let r = get_keepalive(&mut c, "/response?mode=cl_short");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("5"));
    assert_eq!(r.body, b"01234");
    assert_connection_reusable(&mut c);
}

fn content_length_longer_than_body_closes_connection(mode: Mode) {
    let s = srv("resp_cl_long", mode);
    let mut c = s.connect();
    c.set_timeout(Duration::from_secs(15));
    let r = get_keepalive(&mut c, "/response?mode=cl_long");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("100"));
    assert_eq!(r.body, b"0123456789");
    assert!(
        !r.complete,
        "a 100-byte Content-Length with 10 bytes sent cannot complete"
    );
}

/// Content-Length is decimal digits (spaces or tabs around at most) that fit Apache's signed
/// `apr_off_t`: 2^64-1 would otherwise go out as `Content-Length: -1`. Two differing values
/// are an error too. mod_wsgi 4.9.4 passes the overflowing values on.
fn content_length_must_be_a_decimal_that_fits(mode: Mode) {
    let mut s = srv("resp_cl_value", mode);
    for q in [
        "cl=18446744073709551615",
        "cl=9223372036854775808",
        "cl=%C2%A010",
        "cl=10%C2%85",
        "cl=-1",
        "cl=%2B10",
        "cl=1e1",
        "cl=0x0a",
        "cl=1%200",
        "cl=",
        "cl=5&cl2=10",
    ] {
        let (raw, port) = raw_get(&s, &format!("/response?mode=cl_value&{q}"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 500 "), "{q}: {text}");
        assert!(!text.contains("0123456789"), "{q}: app body sent: {text}");
        let lines = s.expect_error(port, "Content-Length");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Content-Length") && l.contains("response.wsgi")),
            "{q}: no log line names the header and the script:\n{}",
            lines.join("\n")
        );
    }
    for q in [
        "cl=%2010%20",
        "cl=%0910",
        "cl=10&cl2=10",
        "cl=9223372036854775807",
    ] {
        let r = s.get(&format!("/response?mode=cl_value&{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.describe());
        assert_eq!(r.body, b"0123456789", "{q}");
        if q != "cl=9223372036854775807" {
            assert_eq!(r.header("Content-Length"), Some("10"), "{q}");
            assert!(r.complete, "{q}");
        }
    }
}

// ---- bodiless responses -----------------------------------------------------------------------

fn head_sends_no_body(mode: Mode) {
    let s = srv("resp_head", mode);
    let mut c = s.connect();
    for path in [
        "/hello",
        "/response?mode=list",
        "/response?mode=write",
        "/response?mode=big&mib=4",
    ] {
        c.send(&request_bytes("HEAD", path, &[], b"")).unwrap();
        let r = c.read_response(true).unwrap();
        assert_eq!(r.status, 200, "{path}");
        // Nothing may follow the head: the next response must parse cleanly.
        assert_connection_reusable(&mut c);
    }
}

fn no_body_for_204_and_304(mode: Mode) {
    let s = srv("resp_204", mode);
    let mut c = s.connect();
    for q in ["204%20No%20Content", "304%20Not%20Modified"] {
        let r = get_keepalive(&mut c, &format!("/response?mode=status_body&s={q}"));
        assert!(r.status == 204 || r.status == 304, "{}", r.describe());
        assert!(
            r.header("Transfer-Encoding").is_none(),
            "{q}: {:?}",
            r.headers
        );
        assert_connection_reusable(&mut c);
    }
}

// ---- errors -----------------------------------------------------------------------------------

fn str_instead_of_bytes_is_an_error(mode: Mode) {
    let mut s = srv("resp_str", mode);
    let r = s.get("/response?mode=str_body");
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(r.client_port, "TypeError");
    // After some bytes went out: the response is cut.
    let r = s.get("/response?mode=str_body_after");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"bytes first");
    assert!(!r.complete, "{}", r.describe());
    s.expect_error(r.client_port, "TypeError");
}

fn exception_before_headers_is_500_with_traceback(mode: Mode) {
    let mut s = srv("resp_exc_before", mode);
    let r = s.get("/response?mode=exc_before");
    assert_eq!(r.status, 500, "{}", r.describe());
    assert!(!r.text().contains("boom"), "traceback leaked to the client");
    let lines = s.expect_error(r.client_port, "boom-before-start-response");
    assert!(
        lines.iter().any(|l| l.contains("Traceback")),
        "no traceback:\n{}",
        lines.join("\n")
    );
    let r = s.get("/response?mode=exc_after_sr");
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(r.client_port, "boom-after-start-response");
    // The server is fine afterwards.
    assert_eq!(s.get("/hello").status, 200);
}

fn exception_after_headers_cuts_the_response(mode: Mode) {
    let mut s = srv("resp_exc_after", mode);
    let r = s.get("/response?mode=exc_after_headers");
    assert_eq!(r.status, 200);
    assert!(r.chunked, "expected a chunked response: {}", r.describe());
    assert_eq!(r.body, b"partial");
    assert!(
        !r.complete,
        "the terminating chunk must be suppressed: {}",
        r.describe()
    );
    let lines = s.expect_error(r.client_port, "boom-after-headers");
    assert!(
        lines.iter().any(|l| l.contains("Traceback")),
        "{}",
        lines.join("\n")
    );

    let r = s.get("/response?mode=exc_after_headers_cl");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"partial");
    assert!(!r.complete);
    s.expect_error(r.client_port, "boom-after-headers-cl");
}

// ---- bounded memory ---------------------------------------------------------------------------

fn generator_response_512mib_bounded_memory(mode: Mode) {
    let s = server("resp_512m")
        .mode(mode)
        .single_process()
        .fragment("apps")
        .start();
    let r = s.get("/response?mode=big&mib=2");
    assert_eq!(r.body.len(), 2 << 20);
    let pid = s.app_pid();
    let before = peak_rss(pid);
    for cl in ["", "&cl=1"] {
        let mut c = s.connect();
        c.send(&request_bytes(
            "GET",
            &format!("/response?mode=big&mib=512{cl}"),
            &[("Connection", "close")],
            b"",
        ))
        .unwrap();
        let head = c.read_head().unwrap();
        assert_eq!(head.status, 200);
        let (n, complete) = c.drain_body(&head).unwrap();
        assert_eq!(n, 512 << 20);
        assert!(complete);
    }
    let after = peak_rss(pid);
    eprintln!(
        "generator 512 MiB: app process peak RSS {} -> {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(
        after.saturating_sub(before) < 32 << 20,
        "peak RSS grew by {} MiB",
        (after - before) >> 20
    );
}

// ---- prefork (MPM-sensitive paths: one thread per process) ----------------------------------

fn prefork_iterables_close_and_errors(mode: Mode) {
    let mut s = server("resp_prefork")
        .mode(mode)
        .mpm(Mpm::Prefork)
        .fragment("apps")
        .start();
    for (mode, body) in [
        ("list", &b"Hello World"[..]),
        ("generator", b"abc"),
        ("write", b"onetwothree"),
    ] {
        let tok = token(mode);
        let r = s.get(&format!("/response?mode={mode}&token={tok}"));
        assert_eq!(r.status, 200, "{mode}: {}", r.describe());
        assert_eq!(r.body, body, "{mode}");
        assert!(
            s.wait_data_file(&format!("closed-{tok}"), Duration::from_secs(5))
                .is_some(),
            "{mode}: close()"
        );
    }
    let r = s.get("/response?mode=exc_before");
    assert_eq!(r.status, 500);
    s.expect_error(r.client_port, "boom-before-start-response");
    let j = s.get("/environ").json();
    // Prefork children have one thread; the daemon group has the harness's 8.
    let multithread = match mode {
        Mode::Embedded => "False",
        Mode::Daemon => "True",
    };
    assert_eq!(j.at("environ").s("wsgi.multithread"), multithread);
}

both_modes!(
    valid_statuses,
    invalid_statuses_give_500,
    interim_and_out_of_range_statuses_give_500,
    hop_by_hop_headers_give_500_and_cannot_smuggle_a_response,
    status_and_headers_go_out_as_latin1_bytes,
    invalid_headers_give_500_never_injected,
    latin1_and_empty_header_values,
    repeated_headers_kept_in_order,
    second_start_response_without_exc_info_is_an_error,
    exc_info_before_headers_replaces_the_response,
    exc_info_after_headers_reraises_and_cuts_the_response,
    iterables_and_write,
    wrong_write_arguments_are_type_errors,
    close_is_always_called,
    exception_in_close_is_logged,
    content_length_shorter_than_body_truncates,
    content_length_longer_than_body_closes_connection,
    content_length_must_be_a_decimal_that_fits,
    head_sends_no_body,
    no_body_for_204_and_304,
    str_instead_of_bytes_is_an_error,
    exception_before_headers_is_500_with_traceback,
    exception_after_headers_cuts_the_response,
    generator_response_512mib_bounded_memory,
    prefork_iterables_close_and_errors,
);
