//! HTTP/2 through mod_http2 (`Protocols h2 h2c http/1.1`, curl as the client): many streams
//! at once on one connection, an upload and a large response over h2, and the environ over
//! HTTP/1.1, h2c, HTTPS and h2 compared with each other and with mod_wsgi 4.9.4; each test in
//! embedded and in daemon mode (`tests/common/modes.rs`).
//!
//! curl 7.88 fails most transfers of `--parallel` with `--http2-prior-knowledge`, so the
//! concurrent test upgrades from HTTP/1.1 (`--http2`), which multiplexes once the first
//! request has upgraded the connection; single transfers use prior knowledge.
mod common;
use common::curl::{Curl, Transfer};
use common::modes::MOD_WSGI_494_DAEMON_ONLY_KEYS;
use common::tls::{TlsExt, TlsServer};
use common::*;
use std::collections::BTreeSet;

/// Event MPM (mod_http2 serves h2 best there), plain HTTP and TLS listeners.
fn h2_server(name: &str, module: Module, mode: Mode) -> TlsServer {
    server(name)
        .mode(mode)
        .module(module)
        .fragment("apps")
        .fragment("http2")
        .tls()
        .start()
}

fn plain_url(srv: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", srv.port)
}

/// 24 requests started at once on one h2c connection: all complete with 200 over HTTP/2, curl
/// opens one connection, the app sees one client port, and several requests ran at the same
/// time in the child. Event MPM only: under prefork mod_http2 does not upgrade h2c from
/// HTTP/1.1 at all (curl falls back to one HTTP/1.1 connection per transfer). Regression test.
fn many_concurrent_streams_on_one_connection(mode: Mode) {
    let srv = h2_server("h2_streams", module(), mode);
    let transfers = Curl::new()
        .arg("--http2")
        .arg("--parallel")
        .arg("--parallel-max")
        .arg("24")
        .url(plain_url(&srv, "/inflight?ms=300&i=[1-24]"))
        .run();
    assert_eq!(transfers.len(), 24);
    let connects: u64 = transfers.iter().map(|t| t.num_connects).sum();
    assert_eq!(connects, 1, "{transfers:?}");
    let mut ports = BTreeSet::new();
    let mut peak = 0.0f64;
    for t in &transfers {
        assert_eq!(t.status, 200, "{}: {} {}", t.url, t.error, t.text());
        assert_eq!(t.http_version, "2", "{}", t.url);
        let j = t.json();
        assert_eq!(j.s("protocol"), "HTTP/2.0");
        ports.insert(j.s("remote_port").to_string());
        peak = peak.max(j.n("peak"));
    }
    assert_eq!(ports.len(), 1, "client ports {ports:?}");
    assert!(
        peak >= 2.0,
        "no two streams ran at the same time (peak {peak})"
    );
}

/// A 6 MiB POST over h2c (prior knowledge) and over h2 (TLS, ALPN) reaches `wsgi.input`
/// intact. Regression test.
fn upload_over_h2(mode: Mode) {
    let body = pattern(6 << 20, 11);
    let file = std::env::temp_dir().join(token("h2-upload"));
    std::fs::write(&file, &body).unwrap();
    let srv = h2_server("h2_upload", module(), mode);
    let post = || {
        Curl::new()
            .arg("-H")
            .arg("Content-Type: application/octet-stream")
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
    };
    let cases: [(&str, Transfer); 2] = [
        (
            "h2c",
            post()
                .arg("--http2-prior-knowledge")
                .url(plain_url(&srv, "/input?mode=readn&n=100000"))
                .one(),
        ),
        (
            "h2",
            post()
                .arg("--http2")
                .tls(srv.tls_port)
                .url(srv.url("/input?mode=readn&n=100000"))
                .one(),
        ),
    ];
    for (name, t) in cases {
        assert_eq!(t.status, 200, "{name}: {} {}", t.error, t.text());
        assert_eq!(t.http_version, "2", "{name}");
        let j = t.json();
        assert_eq!(j.n("length") as usize, body.len(), "{name}");
        assert_eq!(j.s("sha256"), sha256_hex(&body), "{name}");
    }
    let _ = std::fs::remove_file(file);
}

/// A 64 MiB response over h2c, with and without Content-Length, arrives complete.
/// Regression test.
fn large_response_over_h2(mode: Mode) {
    let srv = h2_server("h2_large", module(), mode);
    for cl in ["&cl=1", ""] {
        let t = Curl::new()
            .arg("--http2-prior-knowledge")
            .url(plain_url(&srv, &format!("/response?mode=big&mib=64{cl}")))
            .one();
        assert_eq!(t.status, 200, "{cl}: {}", t.error);
        assert_eq!(t.http_version, "2");
        assert_eq!(t.body.len(), 64 << 20, "{cl}: {}", t.error);
        assert!(t.body.iter().all(|&b| b == b'x'), "{cl}: body bytes");
    }
}

/// The environ keys of one request per protocol: HTTP/1.1, h2c, HTTPS, h2.
fn environ_by_protocol(srv: &TlsServer) -> Vec<(&'static str, Json)> {
    let cases = [
        (
            "http/1.1",
            Curl::new()
                .arg("--http1.1")
                .url(plain_url(srv, "/environ/p?x=1")),
        ),
        (
            "h2c",
            Curl::new()
                .arg("--http2-prior-knowledge")
                .url(plain_url(srv, "/environ/p?x=1")),
        ),
        (
            "https",
            Curl::new()
                .arg("--http1.1")
                .tls(srv.tls_port)
                .url(srv.url("/environ/p?x=1")),
        ),
        (
            "h2",
            Curl::new()
                .arg("--http2")
                .tls(srv.tls_port)
                .url(srv.url("/environ/p?x=1")),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, c)| {
            let t = c.one();
            assert_eq!(t.status, 200, "{name}: {} {}", t.error, t.text());
            let want = if name.starts_with("h2") { "2" } else { "1.1" };
            assert_eq!(t.http_version, want, "{name}");
            (name, t.json())
        })
        .collect()
}

fn key_set(j: &Json) -> BTreeSet<String> {
    j.at("environ").keys().into_iter().collect()
}

/// Across the four protocols the environ differs only by what mod_http2 (`HTTP2`, `H2*`) and
/// mod_ssl (`SSL_TLS_SNI`, and the connection log id behind `mod_wsgi.connection_id`) add;
/// `SERVER_PROTOCOL` and `wsgi.url_scheme` follow the protocol; and each key set equals the
/// reference mod_wsgi's for the same protocol. Fails on the original main (HTTPS key, no
/// connection id over TLS).
fn environ_consistent_across_protocols_and_with_reference(mode: Mode) {
    let reference = Module::reference().expect(
        "the reference mod_wsgi is not installed: install libapache2-mod-wsgi-py3 (make deps)",
    );
    let ours = environ_by_protocol(&h2_server("h2_env_ours", module(), mode));
    let theirs = environ_by_protocol(&h2_server("h2_env_theirs", reference, mode));
    let h2_keys = [
        "HTTP2",
        "H2PUSH",
        "H2_PUSH",
        "H2_PUSHED",
        "H2_PUSHED_ON",
        "H2_STREAM_ID",
        "H2_STREAM_TAG",
    ];
    let tls_keys = ["SSL_TLS_SNI", "mod_wsgi.connection_id"];
    let base = without_6x_keys(key_set(&ours[0].1));
    for ((name, j), (_, r)) in ours.iter().zip(&theirs) {
        let e = j.at("environ");
        let mut b = key_set(r);
        if mode == Mode::Daemon {
            for k in MOD_WSGI_494_DAEMON_ONLY_KEYS {
                b.remove(*k);
            }
        }
        let a = without_6x_keys(key_set(j));
        assert_eq!(
            a,
            b,
            "{name} vs reference: missing {:?}, extra {:?}",
            b.difference(&a).collect::<Vec<_>>(),
            a.difference(&b).collect::<Vec<_>>()
        );
        let mut expected = base.clone();
        if name.starts_with("h2") {
            expected.extend(h2_keys.iter().map(|k| k.to_string()));
            assert_eq!(e.s("HTTP2"), "on", "{name}");
        }
        if *name == "https" || *name == "h2" {
            expected.extend(tls_keys.iter().map(|k| k.to_string()));
        }
        assert_eq!(
            a,
            expected,
            "{name} vs http/1.1: missing {:?}, extra {:?}",
            expected.difference(&a).collect::<Vec<_>>(),
            a.difference(&expected).collect::<Vec<_>>()
        );
        let protocol = if name.starts_with("h2") {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(e.s("SERVER_PROTOCOL"), protocol, "{name}");
        let scheme = if *name == "https" || *name == "h2" {
            "https"
        } else {
            "http"
        };
        assert_eq!(e.s("wsgi.url_scheme"), scheme, "{name}");
        assert_eq!(e.s("REQUEST_SCHEME"), scheme, "{name}");
        for k in [
            "SERVER_PROTOCOL",
            "wsgi.url_scheme",
            "REQUEST_SCHEME",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "REQUEST_URI",
            "HTTP2",
            "H2PUSH",
        ] {
            assert_eq!(e.get(k), r.at("environ").get(k), "{name}: {k}");
        }
    }
}

both_modes!(
    many_concurrent_streams_on_one_connection,
    upload_over_h2,
    large_response_over_h2,
    environ_consistent_across_protocols_and_with_reference,
);
