//! Real frameworks from PyPI (issue 3): a Flask app and a Django project, installed into a venv
//! made from the system python3 (decisions.md §2) and selected with `WSGIPythonHome`, exercised
//! over HTTP; and a PyO3-built extension (rpds-py) that refuses a second sub-interpreter, whose
//! ImportError must be logged with the module's name and the cure (`WSGIApplicationGroup
//! %{GLOBAL}`, RWSGI0120).
//!
//! The venv is built once per machine (`common::venv`). Building it needs PyPI: when PyPI
//! cannot be reached the tests FAIL, they do not skip.
//!
//! Apps: `tests/apps/frameworks/` (`flask_app.wsgi`, the Django project `djsite/`,
//! `subinterp_ext.wsgi`). Each test in embedded and in daemon mode, where the group inherits
//! `WSGIPythonHome` (`tests/common/modes.rs`).
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The shared test venv
// ---------------------------------------------------------------------------------------------

/// rpds-py, pinned at 0.30.0: its PyO3 refuses a second interpreter with PyO3's ImportError
/// ("PyO3 modules do not yet support subinterpreters"); 2026.x builds no longer raise that
/// ImportError and instead break inside the second interpreter (NameError from `abc`).
const RPDS: &str = "rpds-py==0.30.0";

/// The test venv, built on first use (once per machine, under a lock file).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let requirements = [common::venv::FLASK, common::venv::DJANGO, &[RPDS]].concat();
        common::venv::pip_venv("framework", &requirements, "import flask, django, rpds")
    })
}

/// A server builder with `WSGIPythonHome` set to the test venv.
fn fw_server(name: &str, mode: Mode) -> Builder {
    let v = venv();
    server(name)
        .mode(mode)
        .var("VENV", &v.display().to_string())
        .conf("WSGIPythonHome \"@VENV@\"")
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

/// `name=value` of each `Set-Cookie` header.
fn set_cookies(r: &Response) -> Vec<(String, String)> {
    r.headers_all("Set-Cookie")
        .iter()
        .filter_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn cookie<'a>(cookies: &'a [(String, String)], name: &str) -> &'a str {
    cookies
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

const BOUNDARY: &str = "----rwsgiFormBoundary7MA4YWxkTrZu0gW";

/// A multipart/form-data body: text fields, then one file field.
fn multipart(fields: &[(&str, &str)], file_field: &str, file_name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
             filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn ok(r: &Response, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.describe());
}

// ---------------------------------------------------------------------------------------------
// Flask
// ---------------------------------------------------------------------------------------------

fn flask_app_from_a_venv(mode: Mode) {
    let s = fw_server("fw_flask", mode)
        .conf("WSGIScriptAlias /flask \"@APPS@/frameworks/flask_app.wsgi\"")
        .start();
    let venv = venv().display().to_string();

    // JSON route; the venv is the interpreter's prefix.
    let r = s.get("/flask/json?a=1&b=two");
    ok(&r, "json");
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}",
        r.describe()
    );
    let j = r.json();
    assert_eq!(j.s("framework"), "flask");
    assert_eq!(j.s("version"), "3.1.3");
    assert_eq!(j.s("prefix"), venv, "WSGIPythonHome not in effect");
    assert_eq!(j.at("args").s("a"), "1");
    assert_eq!(j.at("args").s("b"), "two");
    assert_eq!(j.s("script_root"), "/flask");
    assert_eq!(j.s("path"), "/json");

    // Unknown route: Flask's own 404.
    let r = s.get("/flask/nope");
    assert_eq!(r.status, 404, "{}", r.describe());

    // Form POST (urlencoded, repeated field, percent-escapes).
    let body = b"name=J%C3%BCrgen+Smith&tag=a&tag=b%26c";
    let r = s.post(
        "/flask/form",
        body,
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    ok(&r, "form");
    let j = r.json();
    assert_eq!(j.s("name"), "Jürgen Smith");
    let tags: Vec<&str> = j.at("tags").arr().iter().map(Json::str).collect();
    assert_eq!(tags, ["a", "b&c"]);

    // Wrong method: 405 with Allow.
    let r = s.get("/flask/form");
    assert_eq!(r.status, 405, "{}", r.describe());
    assert!(r.header("Allow").is_some_and(|a| a.contains("POST")));

    // Cookies: a plain one and Flask's signed session cookie, sent back.
    let r = s.get("/flask/cookie/set?v=ginger");
    ok(&r, "cookie/set");
    let cookies = set_cookies(&r);
    assert_eq!(cookie(&cookies, "flavour"), "ginger");
    let raw = r
        .headers_all("Set-Cookie")
        .into_iter()
        .find(|c| c.starts_with("flavour="))
        .unwrap();
    assert!(raw.contains("HttpOnly"), "{raw}");
    let sess = cookie(&cookies, "session").to_string();
    let hdr = format!("flavour=ginger; session={sess}");
    let r = s.request("GET", "/flask/cookie/get", &[("Cookie", &hdr)], b"");
    ok(&r, "cookie/get");
    let j = r.json();
    assert_eq!(j.s("flavour"), "ginger");
    assert_eq!(j.n("visits"), 2.0, "session cookie not read back: {j:?}");
    // A tampered session cookie is ignored (signature check), not an error.
    let bad = format!("session=x{sess}");
    let r = s.request("GET", "/flask/cookie/get", &[("Cookie", &bad)], b"");
    ok(&r, "cookie/get tampered");
    assert_eq!(r.json().n("visits"), 1.0);

    // File upload (multipart, ~300 KiB of binary data).
    let data = pattern(300 * 1024 + 17, 7);
    let body = multipart(&[("note", "hello upload")], "data", "blob.bin", &data);
    let ct = multipart_type();
    let r = s.post("/flask/upload", &body, &[("Content-Type", &ct)]);
    ok(&r, "upload");
    let j = r.json();
    assert_eq!(j.s("filename"), "blob.bin");
    assert_eq!(j.s("mimetype"), "application/octet-stream");
    assert_eq!(j.n("size"), data.len() as f64);
    assert_eq!(j.s("sha256"), sha256_hex(&data));
    assert_eq!(j.s("note"), "hello upload");

    // Streaming response: chunked, complete, and the first piece (with the head) leaves while
    // the generator still sleeps (2 s after its first yield).
    let r = s.get("/flask/stream?n=4&tag=t1");
    ok(&r, "stream");
    assert_eq!(r.text(), "first t1\nline 1\nline 2\nline 3\n");
    assert!(r.chunked && r.complete, "{}", r.describe());
    assert_eq!(r.header("X-Streamed"), Some("yes"));
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    let mut c = s.connect();
    let t0 = Instant::now();
    c.send(
        format!(
            "GET /flask/stream?n=3&pause=2&tag=slow HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            s.port
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = c.read_head().expect("stream head");
    let head_after = t0.elapsed();
    c.read_body(&mut r, false).expect("stream body");
    let total = t0.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "first slow\nline 1\nline 2\n");
    // Measured from the head, so a cold child importing Flask first does not count.
    assert!(
        total - head_after >= Duration::from_millis(1500),
        "not streamed: head after {head_after:?}, body complete after {total:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Django
// ---------------------------------------------------------------------------------------------

fn csrf_form_token(html: &str) -> String {
    let key = "name=\"csrfmiddlewaretoken\" value=\"";
    let i = html
        .find(key)
        .unwrap_or_else(|| panic!("no csrfmiddlewaretoken in {html}"))
        + key.len();
    let end = html[i..].find('"').expect("end of token") + i;
    html[i..end].to_string()
}

fn django_project_from_a_venv(mode: Mode) {
    let s = fw_server("fw_django", mode)
        .conf("WSGIScriptAlias /django \"@APPS@/frameworks/djsite/djsite/wsgi.py\"")
        .start();
    let venv = venv().display().to_string();
    let origin = format!("http://localhost:{}", s.port);
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");

    // JSON view; SCRIPT_NAME/PATH_INFO split as Django sees it.
    let r = s.get("/django/api/?q=x%20y");
    ok(&r, "api");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j.s("framework"), "django");
    assert_eq!(j.s("version"), "5.2.19");
    assert_eq!(j.s("prefix"), venv, "WSGIPythonHome not in effect");
    assert_eq!(j.s("script_name"), "/django");
    assert_eq!(j.s("path"), "/django/api/");
    assert_eq!(j.s("path_info"), "/api/");
    assert_eq!(j.s("q"), "x y");

    // Unknown URL: Django's 404 (DEBUG off).
    let r = s.get("/django/missing/");
    assert_eq!(r.status, 404, "{}", r.describe());

    // GET the form: csrftoken cookie + masked token in the page.
    let r = s.get("/django/form/");
    ok(&r, "form page");
    let cookies = set_cookies(&r);
    let csrf_cookie = cookie(&cookies, "csrftoken").to_string();
    let token = csrf_form_token(&r.text());
    assert!(
        r.text().contains("action=\"/django/submit/\""),
        "{}",
        r.text()
    );
    let cookie_hdr = format!("csrftoken={csrf_cookie}");

    // POST with cookie + form token (and the browser's Origin) → 200.
    let body = format!("csrfmiddlewaretoken={token}&name=Ada+Lovelace");
    let r = s.request(
        "POST",
        "/django/submit/",
        &[form_ct, ("Cookie", &cookie_hdr), ("Origin", &origin)],
        body.as_bytes(),
    );
    ok(&r, "submit with token");
    assert_eq!(r.text(), "thanks Ada Lovelace");

    // POST without the token → 403; without the cookie → 403; with a foreign Origin → 403.
    let r = s.request(
        "POST",
        "/django/submit/",
        &[form_ct, ("Cookie", &cookie_hdr)],
        b"name=Mallory",
    );
    assert_eq!(r.status, 403, "no token: {}", r.describe());
    let r = s.request("POST", "/django/submit/", &[form_ct], body.as_bytes());
    assert_eq!(r.status, 403, "no cookie: {}", r.describe());
    let r = s.request(
        "POST",
        "/django/submit/",
        &[
            form_ct,
            ("Cookie", &cookie_hdr),
            ("Origin", "http://evil.example"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403, "foreign origin: {}", r.describe());

    // File upload (multipart, token in the X-CSRFToken header). 3 MiB exceeds Django's 2.5 MiB
    // in-memory limit, so it is spooled to a temporary file.
    let data = pattern(3 * 1024 * 1024 + 5, 11);
    let body = multipart(&[("note", "big one")], "data", "upload.bin", &data);
    let ct = multipart_type();
    let upload = |body: &[u8]| {
        s.request(
            "POST",
            "/django/upload/",
            &[
                ("Content-Type", &ct),
                ("Cookie", &cookie_hdr),
                ("X-CSRFToken", &token),
            ],
            body,
        )
    };
    let r = upload(&body);
    ok(&r, "upload");
    let j = r.json();
    assert_eq!(j.s("name"), "upload.bin");
    assert_eq!(j.n("size"), data.len() as f64);
    assert_eq!(j.s("sha256"), sha256_hex(&data));
    assert_eq!(j.s("note"), "big one");
    assert_eq!(j.s("handler"), "TemporaryUploadedFile");
    // A small one stays in memory.
    let small = pattern(1000, 12);
    let body = multipart(&[], "data", "small.bin", &small);
    let r = upload(&body);
    ok(&r, "small upload");
    let j = r.json();
    assert_eq!(j.s("sha256"), sha256_hex(&small));
    assert_eq!(j.s("handler"), "InMemoryUploadedFile");

    // StreamingHttpResponse: chunked, no Content-Length.
    let r = s.get("/django/stream/?n=6");
    ok(&r, "stream");
    assert_eq!(r.text(), "row 0\nrow 1\nrow 2\nrow 3\nrow 4\nrow 5\n");
    assert!(r.chunked && r.complete, "{}", r.describe());
    assert!(r.header("Content-Length").is_none());
    assert_eq!(r.header("X-Streamed"), Some("yes"));
}

// ---------------------------------------------------------------------------------------------
// An extension that refuses sub-interpreters
// ---------------------------------------------------------------------------------------------

/// Two URLs serve the same script in two default (%{RESOURCE}) groups, i.e. two
/// sub-interpreters of one process. The first imports rpds; the second gets PyO3's ImportError.
/// The error log must name the module and the cure on one line (RWSGI0120). Expected to FAIL
/// under mod_wsgi 4.9.4, which logs the traceback only.
fn subinterpreter_refusing_extension_names_module_and_cure(mode: Mode) {
    let mut s = fw_server("fw_ext_sub", mode)
        .single_process()
        .conf("WSGIScriptAlias /ext1 \"@APPS@/frameworks/subinterp_ext.wsgi\"")
        .conf("WSGIScriptAlias /ext2 \"@APPS@/frameworks/subinterp_ext.wsgi\"")
        .start();
    let r = s.get("/ext1");
    ok(&r, "first sub-interpreter");
    assert_eq!(r.json().s("group"), format!("localhost:{}|/ext1", s.port));
    let r = s.get("/ext2");
    assert_eq!(r.status, 500, "second sub-interpreter: {}", r.describe());
    let lines = s.expect_error(r.client_port, "do not yet support subinterpreters");
    let needle = "WSGIApplicationGroup %{GLOBAL}";
    let lines = if lines.iter().any(|l| l.contains(needle)) {
        lines
    } else {
        s.expect_error(r.client_port, needle)
    };
    assert!(
        lines
            .iter()
            .any(|l| l.contains(needle) && l.contains("'rpds")),
        "no line names the module (rpds) together with the cure:\n{}",
        lines.join("\n")
    );
    // The first interpreter keeps working.
    ok(&s.get("/ext1"), "first sub-interpreter again");
}

/// The cure: the same script under `%{GLOBAL}` (both URLs share the main interpreter).
fn subinterpreter_refusing_extension_works_in_global_group(mode: Mode) {
    let s = fw_server("fw_ext_global", mode)
        .single_process()
        .conf("WSGIScriptAlias /ext1 \"@APPS@/frameworks/subinterp_ext.wsgi\"")
        .conf("WSGIScriptAlias /ext2 \"@APPS@/frameworks/subinterp_ext.wsgi\"\n<Location /ext2>\n  WSGIApplicationGroup %{GLOBAL}\n</Location>")
        .conf("<Location /ext1>\n  WSGIApplicationGroup %{GLOBAL}\n</Location>")
        .start();
    for p in ["/ext1", "/ext2", "/ext1", "/ext2"] {
        let r = s.get(p);
        ok(&r, p);
        let j = r.json();
        assert_eq!(j.s("group"), "", "{p}");
        let keys: Vec<&str> = j.at("keys").arr().iter().map(Json::str).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(j.s("prefix"), venv().display().to_string());
    }
}

both_modes!(
    flask_app_from_a_venv,
    django_project_from_a_venv,
    subinterpreter_refusing_extension_names_module_and_cure,
    subinterpreter_refusing_extension_works_in_global_group,
);
