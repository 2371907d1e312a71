//! TLS through mod_ssl (self-signed certificate made at test time, curl as the client): the
//! environ an app sees over HTTPS matches mod_wsgi 4.9.4 (`wsgi.url_scheme`, no `HTTPS` key,
//! `SERVER_PORT`), and uploads, large responses and keep-alive work over TLS; each test in
//! embedded and in daemon mode (`tests/common/modes.rs`).
mod common;
use common::curl::Curl;
use common::modes::MOD_WSGI_494_DAEMON_ONLY_KEYS;
use common::tls::{TlsExt, TlsServer};
use common::*;
use std::collections::BTreeSet;

fn tls_server(name: &str, module: Module, mpm: Mpm, mode: Mode) -> TlsServer {
    server(name)
        .mode(mode)
        .module(module)
        .mpm(mpm)
        .fragment("apps")
        .tls()
        .start()
}

/// The environ of `/environ/a?x=1` over HTTPS, with the given Host header (curl's own when
/// `None`: `localhost:PORT`).
fn tls_environ(srv: &TlsServer, host: Option<&str>) -> Json {
    let mut c = Curl::new().tls(srv.tls_port);
    if let Some(h) = host {
        c = c.arg("-H").arg(format!("Host: {h}"));
    }
    let t = c.url(srv.url("/environ/a?x=1")).one();
    assert_eq!(t.status, 200, "{}", t.text());
    t.json()
}

fn keys(j: &Json) -> BTreeSet<String> {
    j.at("environ").keys().into_iter().collect()
}

/// mod_wsgi turns `HTTPS` into `wsgi.url_scheme` and removes it from the environ; mod_rwsgi
/// passed mod_ssl's `HTTPS=on` through (fails on the original main).
fn https_environ_has_url_scheme_and_no_https_key(mode: Mode) {
    let srv = tls_server("tls_environ", module(), Mpm::Event, mode);
    let j = tls_environ(&srv, None);
    let e = j.at("environ");
    assert_eq!(e.s("wsgi.url_scheme"), "https");
    assert_eq!(e.s("REQUEST_SCHEME"), "https");
    assert!(e.get("HTTPS").is_none(), "HTTPS in the environ: {e:?}");
    assert_eq!(e.s("SERVER_PORT"), srv.tls_port.to_string());
    assert_eq!(e.s("mod_wsgi.listener_port"), srv.tls_port.to_string());
    assert_eq!(e.s("SERVER_PROTOCOL"), "HTTP/1.1");
    // mod_ssl's own variables (not HTTPS) stay, as under mod_wsgi.
    assert_eq!(e.s("SSL_TLS_SNI"), "localhost");
    // mod_ssl logs the connection at LogLevel info, which gives it a log id: mod_wsgi then
    // also sets mod_wsgi.connection_id.
    assert!(!e.s("mod_wsgi.connection_id").is_empty());
    // Plain HTTP on the same server still says http.
    let plain = srv.get("/environ").json();
    assert_eq!(plain.at("environ").s("wsgi.url_scheme"), "http");
    assert!(plain.at("environ").get("HTTPS").is_none());
}

/// Side by side with the reference over TLS: the same key set and the same values for the
/// scheme and port keys, with and without a port in `Host` (without one, Apache's default
/// port for https, 443, is `SERVER_PORT`).
fn https_environ_matches_live_reference(mode: Mode) {
    let reference = Module::reference().expect(
        "the reference mod_wsgi is not installed: install libapache2-mod-wsgi-py3 (make deps)",
    );
    let collect = |m: Module, name: &str| {
        let srv = tls_server(name, m, Mpm::Event, mode);
        let with_port = tls_environ(&srv, None);
        let without_port = tls_environ(&srv, Some("localhost"));
        (with_port, without_port, srv.tls_port)
    };
    let (ours, ours_np, our_port) = collect(module(), "tls_ref_ours");
    let (theirs, theirs_np, their_port) = collect(reference, "tls_ref_theirs");
    let mut b = keys(&theirs);
    if mode == Mode::Daemon {
        for k in MOD_WSGI_494_DAEMON_ONLY_KEYS {
            b.remove(*k);
        }
    }
    let a = without_6x_keys(keys(&ours));
    assert_eq!(
        a,
        b,
        "missing: {:?}\nextra: {:?}",
        b.difference(&a).collect::<Vec<_>>(),
        a.difference(&b).collect::<Vec<_>>()
    );
    for k in [
        "wsgi.url_scheme",
        "REQUEST_SCHEME",
        "SERVER_PROTOCOL",
        "SERVER_NAME",
        "SSL_TLS_SNI",
    ] {
        assert_eq!(ours.at("environ").at(k), theirs.at("environ").at(k), "{k}");
        assert_eq!(
            ours_np.at("environ").at(k),
            theirs_np.at("environ").at(k),
            "{k} (Host without port)"
        );
    }
    assert_eq!(ours.at("environ").s("SERVER_PORT"), our_port.to_string());
    assert_eq!(
        theirs.at("environ").s("SERVER_PORT"),
        their_port.to_string()
    );
    assert_eq!(
        ours_np.at("environ").s("SERVER_PORT"),
        theirs_np.at("environ").s("SERVER_PORT")
    );
    assert_eq!(ours_np.at("environ").s("SERVER_PORT"), "443");
}

/// The environ of `/environ` on a plain-HTTP server with extra config lines.
fn plain_environ(m: Module, name: &str, conf: &str, mode: Mode) -> Json {
    let srv = server(name)
        .mode(mode)
        .module(m)
        .fragment("apps")
        .conf(conf)
        .start();
    let r = srv.get("/environ");
    assert_eq!(r.status, 200, "{}", r.describe());
    r.json()
}

/// `HTTPS` set by configuration decides `wsgi.url_scheme` when it is `on`/`1` (any case) and is
/// removed from the environ whatever its value; the request scheme alone (`ServerName
/// https://…`, TLS ended at a proxy in front) does not make it https. Checked against the
/// reference: mod_rwsgi kept `HTTPS` and took the scheme into account (fails on the original
/// main).
fn https_variable_and_scheme_as_mod_wsgi(mode: Mode) {
    let reference = Module::reference().expect(
        "the reference mod_wsgi is not installed: install libapache2-mod-wsgi-py3 (make deps)",
    );
    let cases = [
        ("SetEnv HTTPS on", "https"),
        ("SetEnv HTTPS 1", "https"),
        ("SetEnv HTTPS off", "http"),
        ("SetEnv HTTPS yes", "http"),
        (
            "<VirtualHost 127.0.0.1:@PORT@>\n    ServerName https://localhost\n</VirtualHost>",
            "http",
        ),
    ];
    for (conf, scheme) in cases {
        for m in [module(), reference.clone()] {
            let j = plain_environ(m.clone(), "tls_https_var", conf, mode);
            let e = j.at("environ");
            assert_eq!(e.s("wsgi.url_scheme"), scheme, "{conf} under {}", m.sym);
            assert!(e.get("HTTPS").is_none(), "{conf} under {}: {e:?}", m.sym);
        }
    }
}

fn write_temp(name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(token(name));
    std::fs::write(&p, data).unwrap();
    p
}

/// A 6 MiB POST over TLS reaches `wsgi.input` intact (regression test; event and prefork).
fn upload_over_tls(mode: Mode) {
    let body = pattern(6 << 20, 7);
    let file = write_temp("tls-upload", &body);
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let srv = tls_server("tls_upload", module(), mpm, mode);
        let t = Curl::new()
            .tls(srv.tls_port)
            .arg("-H")
            .arg("Content-Type: application/octet-stream")
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .url(srv.url("/input?mode=readn&n=100000"))
            .one();
        assert_eq!(t.status, 200, "{mpm:?}: {}", t.text());
        let j = t.json();
        assert_eq!(j.n("length") as usize, body.len(), "{mpm:?}");
        assert_eq!(j.s("sha256"), sha256_hex(&body), "{mpm:?}");
    }
    let _ = std::fs::remove_file(file);
}

/// A 64 MiB response over TLS arrives complete, with and without Content-Length
/// (regression test; event and prefork).
fn large_response_over_tls(mode: Mode) {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let srv = tls_server("tls_large", module(), mpm, mode);
        for cl in ["&cl=1", ""] {
            let t = Curl::new()
                .tls(srv.tls_port)
                .url(srv.url(&format!("/response?mode=big&mib=64{cl}")))
                .one();
            assert_eq!(t.status, 200, "{mpm:?} {cl}: {}", t.error);
            assert_eq!(t.body.len(), 64 << 20, "{mpm:?} {cl}: {}", t.error);
            assert!(
                t.body.iter().all(|&b| b == b'x'),
                "{mpm:?} {cl}: body bytes"
            );
        }
    }
}

/// Several requests on one TLS connection: curl opens one connection, and the app sees the
/// same client port each time (regression test; event and prefork).
fn keep_alive_over_tls(mode: Mode) {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let srv = tls_server("tls_keepalive", module(), mpm, mode);
        let transfers = Curl::new()
            .tls(srv.tls_port)
            .url(srv.url("/environ/k?i=[1-6]"))
            .run();
        assert_eq!(transfers.len(), 6, "{mpm:?}");
        let connects: u64 = transfers.iter().map(|t| t.num_connects).sum();
        assert_eq!(connects, 1, "{mpm:?}: {transfers:?}");
        let ports: BTreeSet<String> = transfers
            .iter()
            .map(|t| {
                assert_eq!(t.status, 200, "{mpm:?}: {}", t.text());
                t.json().at("environ").s("REMOTE_PORT").to_string()
            })
            .collect();
        assert_eq!(ports.len(), 1, "{mpm:?}: REMOTE_PORTs {ports:?}");
        assert_eq!(
            ports.iter().next().unwrap(),
            &transfers[0].local_port.to_string()
        );
    }
}

both_modes!(
    https_environ_has_url_scheme_and_no_https_key,
    https_environ_matches_live_reference,
    https_variable_and_scheme_as_mod_wsgi,
    upload_over_tls,
    large_response_over_tls,
    keep_alive_over_tls,
);
