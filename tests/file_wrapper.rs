//! wsgi.file_wrapper: real files go out without Python reads (file bucket), from the current
//! offset, honouring a shorter Content-Length; file-likes without a usable fileno() fall back to
//! block reads; close() is called; each test in embedded and in daemon mode (where the daemon
//! passes the file's descriptor to the Apache child; `tests/common/modes.rs`).
mod common;
use common::*;
use std::io::Read;
use std::time::Duration;

fn setup(name: &str, mode: Mode) -> (Server, Vec<u8>) {
    let s = server(name).mode(mode).fragment("apps").start();
    let data = pattern((3 << 20) + 123, 7);
    std::fs::write(s.data.join("blob.bin"), &data).unwrap();
    (s, data)
}

fn fetch(s: &Server, q: &str) -> Response {
    let r = s.get(&format!("/filewrapper?file=blob.bin&{q}"));
    assert_eq!(r.status, 200, "{q}: {}", r.describe());
    assert!(r.complete, "{q}: {:?}", r.error);
    r
}

fn real_file_sent_without_python_reads(mode: Mode) {
    let (s, data) = setup("fw_noread", mode);
    let r = fetch(&s, "kind=noread");
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "file content differs");
    assert_eq!(
        r.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    // Plain file object too.
    let r = fetch(&s, "kind=plain");
    assert!(r.body == data, "file content differs (plain)");
}

fn starts_at_the_current_offset(mode: Mode) {
    let (s, data) = setup("fw_offset", mode);
    for off in [1usize, 4096, 1 << 20, data.len() - 1] {
        let r = fetch(&s, &format!("kind=noread&offset={off}"));
        assert!(
            r.body == data[off..],
            "offset {off}: got {} bytes",
            r.body.len()
        );
    }
    // At the end: an empty body.
    let r = fetch(&s, &format!("kind=noread&offset={}", data.len()));
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(r.body.is_empty(), "got {} bytes", r.body.len());
}

fn honours_a_shorter_content_length(mode: Mode) {
    let (s, data) = setup("fw_cl", mode);
    let r = fetch(&s, "kind=noread&cl=1000");
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert!(r.body == data[..1000]);
    let r = fetch(&s, "kind=noread&offset=500&cl=70000");
    assert!(r.body == data[500..70500]);
    // Keep-alive still fine after a truncated file response.
    let mut c = s.connect();
    c.send(&request_bytes(
        "GET",
        "/filewrapper?file=blob.bin&kind=noread&cl=10",
        &[],
        b"",
    ))
    .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.body, &data[..10]);
    c.send(&request_bytes("GET", "/hello", &[], b"")).unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
}

fn filelike_without_fileno_falls_back_to_block_reads(mode: Mode) {
    let (s, data) = setup("fw_bytesio", mode);
    let r = fetch(&s, "kind=bytesio");
    assert!(r.body == data, "got {} bytes", r.body.len());
    let r = fetch(&s, "kind=bytesio&blksize=1000&offset=10");
    assert!(r.body == data[10..]);
    let r = fetch(&s, "kind=bytesio&cl=777");
    assert!(r.body == data[..777]);
}

fn close_is_called(mode: Mode) {
    let (s, _) = setup("fw_close", mode);
    for kind in ["noread", "bytesio"] {
        let tok = token(kind);
        fetch(&s, &format!("kind={kind}&token={tok}"));
        assert!(
            s.wait_data_file(&format!("fwclosed-{tok}"), Duration::from_secs(5))
                .is_some(),
            "{kind}: file-like not closed"
        );
    }
}

fn head_on_file_wrapper(mode: Mode) {
    let (s, data) = setup("fw_head", mode);
    let mut c = s.connect();
    c.send(&request_bytes(
        "HEAD",
        "/filewrapper?file=blob.bin&kind=noread",
        &[],
        b"",
    ))
    .unwrap();
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    c.send(&request_bytes("GET", "/hello", &[], b"")).unwrap();
    assert_eq!(c.read_response(false).unwrap().body, b"Hello World!\n");
}

/// A declared Content-Length beyond the end of the file cannot be met: the client must be
/// able to tell the response is incomplete (connection closed after what the file holds),
/// as on the iterable path. Ending it normally let Apache put the file's real length in the
/// head, so a kept-alive client took a 1000-byte body for the app's 200000-byte response.
/// Checked on a file smaller than the socket buffers and on one larger.
fn content_length_beyond_the_file_cuts_the_connection(mode: Mode) {
    let (s, blob) = setup("fw_cl_long", mode);
    let small = pattern(1000, 3);
    std::fs::write(s.data.join("small.bin"), &small).unwrap();
    for (file, q, cl, body) in [
        ("small.bin", "cl=200000", "200000", &small[..]),
        ("small.bin", "offset=900&cl=101", "101", &small[900..]),
        ("blob.bin", "cl=4000000", "4000000", &blob[..]),
        ("blob.bin", "offset=900&cl=3145000", "3145000", &blob[900..]),
    ] {
        let q = format!("file={file}&kind=noread&{q}");
        let mut c = s.connect();
        c.set_timeout(Duration::from_secs(15));
        c.send(&request_bytes(
            "GET",
            &format!("/filewrapper?{q}"),
            &[],
            b"",
        ))
        .unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{q}: {}", r.describe());
        assert_eq!(r.header("Content-Length"), Some(cl), "{q}");
        assert!(r.body == body, "{q}: got {} bytes", r.body.len());
        assert!(!r.complete, "{q}: looks complete: {}", r.describe());
        assert_eq!(
            c.wait_closed(Duration::from_secs(5)),
            Ok(true),
            "{q}: connection kept open"
        );
    }
}

/// With `EnableMMAP Off` (a core per-directory setting) the file is read, not mapped, as
/// Apache's own file handler does. A file truncated while DEFLATE compresses it then gives a
/// short read, which DEFLATE reports and the response is cut; mapped, the lost pages killed
/// the child with SIGBUS (the harness fails the test on the "exit signal" line).
fn enable_mmap_off_survives_a_file_truncated_while_sent(mode: Mode) {
    let mut s = server("fw_nommap")
        .mode(mode)
        .single_process()
        .fragment("apps")
        .conf(
            r#"WSGIScriptAlias /fwdeflate "@APPS@/filewrapper.wsgi"
<Location /fwdeflate>
    EnableMMAP Off
    SetOutputFilter DEFLATE
</Location>"#,
        )
        .start();
    let path = s.data.join("shrinking.bin");
    let size = 32 << 20;
    std::fs::write(&path, pattern(size, 9)).unwrap();
    let pids = s.child_pids();
    let mut c = s.connect();
    c.send(&request_bytes(
        "GET",
        "/fwdeflate?file=shrinking.bin&kind=noread",
        &[("Accept-Encoding", "gzip"), ("Connection", "close")],
        b"",
    ))
    .unwrap();
    // The client reads nothing yet: Apache fills the socket buffers and waits in the middle
    // of the file when it is cut.
    std::thread::sleep(Duration::from_millis(800));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    c.set_timeout(Duration::from_secs(20));
    let mut raw = Vec::new();
    let _reset_or_timeout = c.stream.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw[..raw.len().min(400)]).into_owned();
    assert!(raw.starts_with(b"HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "DEFLATE not in the path: {head}"
    );
    assert!(
        raw.len() < size,
        "the file was sent whole ({} bytes): truncation came too late",
        raw.len()
    );
    // The short read is an error the filter reports, so the response is not taken as whole.
    s.expect_error(c.local_port(), "End of file found");
    let r = s.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(s.child_pids(), pids, "a child (or the daemon) was replaced");
}

both_modes!(
    real_file_sent_without_python_reads,
    starts_at_the_current_offset,
    honours_a_shorter_content_length,
    filelike_without_fileno_falls_back_to_block_reads,
    close_is_called,
    head_on_file_wrapper,
    content_length_beyond_the_file_cuts_the_connection,
    enable_mmap_off_survives_a_file_truncated_while_sent,
);
