//! wsgi.file_wrapper: real files go out without Python reads (file bucket), from the current
//! offset, honouring a shorter Content-Length; file-likes without a usable fileno() fall back to
//! block reads; close() is called.
mod common;
use common::*;
use std::time::Duration;

fn setup(name: &str) -> (Server, Vec<u8>) {
    let s = server(name).fragment("apps").start();
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

#[test]
fn real_file_sent_without_python_reads() {
    let (s, data) = setup("fw_noread");
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

#[test]
fn starts_at_the_current_offset() {
    let (s, data) = setup("fw_offset");
    for off in [1usize, 4096, 1 << 20, data.len() - 1] {
        let r = fetch(&s, &format!("kind=noread&offset={off}"));
        assert!(
            r.body == data[off..],
            "offset {off}: got {} bytes",
            r.body.len()
        );
    }
}

#[test]
fn honours_a_shorter_content_length() {
    let (s, data) = setup("fw_cl");
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

#[test]
fn filelike_without_fileno_falls_back_to_block_reads() {
    let (s, data) = setup("fw_bytesio");
    let r = fetch(&s, "kind=bytesio");
    assert!(r.body == data, "got {} bytes", r.body.len());
    let r = fetch(&s, "kind=bytesio&blksize=1000&offset=10");
    assert!(r.body == data[10..]);
    let r = fetch(&s, "kind=bytesio&cl=777");
    assert!(r.body == data[..777]);
}

#[test]
fn close_is_called() {
    let (s, _) = setup("fw_close");
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

#[test]
fn head_on_file_wrapper() {
    let (s, data) = setup("fw_head");
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
