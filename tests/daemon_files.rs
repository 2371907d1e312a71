//! Daemon mode and `wsgi.file_wrapper`: the daemon passes the file's descriptor to the
//! Apache child (`SCM_RIGHTS`), which sends the file itself as the embedded path does, so the
//! bytes never cross the daemon socket. Offsets and Content-Length are checked in both modes
//! by `file_wrapper.rs`.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// A server with one Apache child whose `/dfw` runs filewrapper.wsgi in daemon group `files`.
fn files_server(name: &str, mpm: Mpm) -> Server {
    let b = if mpm == Mpm::Prefork {
        server(name).allow_log("AH00161")
    } else {
        server(name)
    };
    b.mpm(mpm)
        .single_process()
        .conf("WSGIDaemonProcess files threads=2")
        .conf("WSGIScriptAlias /dfw \"@APPS@/filewrapper.wsgi\" process-group=files")
        .conf("WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"")
        .start()
}

fn fetch(s: &Server, q: &str) -> Response {
    let r = s.get(&format!("/dfw?{q}"));
    assert_eq!(r.status, 200, "{q}: {}", r.describe());
    assert!(r.complete, "{q}: {:?}", r.error);
    r
}

/// (Apache child, daemon) pids, the daemon's from the app's answer.
fn pids(s: &Server, file: &str) -> (u32, u32) {
    let r = fetch(s, &format!("file={file}&cl=1"));
    let daemon: u32 = r.header("X-Pid").unwrap().parse().unwrap();
    let child: Vec<u32> = s
        .child_pids()
        .into_iter()
        .filter(|&p| p != daemon)
        .collect();
    assert_eq!(child.len(), 1, "children {child:?}, daemon {daemon}");
    (child[0], daemon)
}

/// Bytes the process read through read-like calls, pread included (/proc/PID/io `rchar`).
fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn ten_mib_body_is_the_file_and_skips_the_socket(mpm: Mpm) {
    let s = files_server(&format!("dfiles_10m_{}", mpm.name()), mpm);
    let data = pattern(10 << 20, 11);
    std::fs::write(s.data.join("ten.bin"), &data).unwrap();
    let (_, daemon) = pids(&s, "ten.bin");
    for kind in ["noread", "plain"] {
        let before = rchar(daemon);
        let r = fetch(&s, &format!("file=ten.bin&kind={kind}"));
        assert_eq!(r.header("Content-Length"), Some("10485760"), "{kind}");
        assert_eq!(sha256_hex(&r.body), sha256_hex(&data), "{kind}");
        // Copied through the socket, the daemon would have read the 10 MiB itself.
        let read = rchar(daemon) - before;
        assert!(
            read < 64 << 10,
            "{kind}: the daemon read {read} bytes for a 10 MiB file"
        );
    }
    // A file-like without fileno() still goes through the socket.
    let r = fetch(&s, "file=ten.bin&kind=bytesio&cl=100000");
    assert!(r.body == data[..100000]);
}

#[test]
fn ten_mib_file_is_sent_by_the_child_event() {
    ten_mib_body_is_the_file_and_skips_the_socket(Mpm::Event);
}

#[test]
fn ten_mib_file_is_sent_by_the_child_prefork() {
    ten_mib_body_is_the_file_and_skips_the_socket(Mpm::Prefork);
}

/// While a large file goes out to a client that reads slowly, the Apache child holds the
/// file open: it sends from the descriptor the daemon passed.
#[test]
fn the_child_holds_the_file_while_sending() {
    let s = files_server("dfiles_holds", Mpm::Event);
    let data = pattern(32 << 20, 5);
    let path = s.data.join("big.bin");
    std::fs::write(&path, &data).unwrap();
    let (child, _) = pids(&s, "big.bin");
    let mut c = s.connect();
    c.set_timeout(Duration::from_secs(30));
    c.send(&request_bytes(
        "GET",
        "/dfw?file=big.bin&kind=noread",
        &[("Connection", "close")],
        b"",
    ))
    .unwrap();
    let holds = || {
        std::fs::read_dir(format!("/proc/{child}/fd"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
    };
    let start = Instant::now();
    while !holds() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(holds(), "the Apache child never opened {}", path.display());
    let r = c.read_response(false).unwrap();
    assert_eq!(sha256_hex(&r.body), sha256_hex(&data));
}

/// 200 file responses (whole, truncated, cut short) leave no descriptor behind in the
/// Apache child or the daemon.
#[test]
fn no_descriptor_leaks() {
    let s = files_server("dfiles_leaks", Mpm::Event);
    let data = pattern(100_000, 3);
    std::fs::write(s.data.join("small.bin"), &data).unwrap();
    let (child, daemon) = pids(&s, "small.bin");
    // Warm up both threads of the daemon and the child's paths.
    for _ in 0..4 {
        fetch(&s, "file=small.bin&kind=noread");
    }
    let settle = |pid: u32| {
        // Connections of the last requests may still be closing.
        std::thread::sleep(Duration::from_millis(300));
        fd_count(pid)
    };
    let (c0, d0) = (settle(child), settle(daemon));
    for i in 0..200 {
        let q = match i % 4 {
            0 => "kind=noread".to_string(),
            1 => "kind=plain&offset=777&cl=5000".to_string(),
            2 => "kind=noread&cl=200000".to_string(),
            _ => format!("kind=noread&offset={i}"),
        };
        let r = s.get(&format!("/dfw?file=small.bin&{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.describe());
    }
    let (c1, d1) = (settle(child), settle(daemon));
    assert!(c1 <= c0 + 2, "Apache child descriptors {c0} -> {c1}");
    assert!(d1 <= d0 + 2, "daemon descriptors {d0} -> {d1}");
}
