//! Real frameworks from PyPI (issue 3): a Flask app and a Django project, installed into a venv
//! made from the system python3 (decisions.md §2) and selected with `WSGIPythonHome`, exercised
//! over HTTP; and a PyO3-built extension (rpds-py) that refuses a second sub-interpreter, whose
//! ImportError must be logged with the module's name and the cure (`WSGIApplicationGroup
//! %{GLOBAL}`, RWSGI0120).
//!
//! The venv is built once per machine under `/var/tmp/rwsgi-test-venv-<hash of the
//! requirements>` (under a lock file, so parallel tests and test binaries don't race) and
//! reused. Building it needs PyPI: when PyPI cannot be reached the tests FAIL, they do not skip.
//!
//! Apps: `tests/apps/frameworks/` (`flask_app.wsgi`, the Django project `djsite/`,
//! `subinterp_ext.wsgi`).
mod common;
use common::*;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The shared test venv
// ---------------------------------------------------------------------------------------------

/// The interpreter every test venv is made from (decisions.md §2).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Everything the venv holds, pinned (versions that support Python 3.11: Django 6 needs 3.12).
/// rpds-py stays at 0.30.0: its PyO3 refuses a second interpreter with PyO3's ImportError
/// ("PyO3 modules do not yet support subinterpreters"); 2026.x builds no longer raise that
/// ImportError and instead break inside the second interpreter (NameError from `abc`).
const REQUIREMENTS: &[&str] = &[
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "itsdangerous==2.2.0",
    "click==8.5.1",
    "blinker==1.9.0",
    "django==5.2.19",
    "asgiref==3.13.0",
    "sqlparse==0.6.1",
    "rpds-py==0.30.0",
];

/// File inside a finished venv; its content is the requirement list it was built from.
const READY_MARKER: &str = ".rwsgi-test-venv-ready";

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn requirements_text() -> String {
    // The venv is rebuilt when the system python3 changes its minor version.
    let real = fs::canonicalize(SYSTEM_PYTHON).unwrap_or_else(|_| SYSTEM_PYTHON.into());
    let mut s = format!("python={SYSTEM_PYTHON} ({})\n", real.display());
    for r in REQUIREMENTS {
        s.push_str(r);
        s.push('\n');
    }
    s
}

/// The test venv, built on first use (once per machine, under a lock file).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(build_venv)
}

fn run_logged(cmd: &mut Command, what: &str, hint: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {hint}\n--- stdout:\n{}\n--- stderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 30),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
}

/// An exclusive `flock` on a file, held by a `flock(1)` child that waits on its stdin (std has
/// `File::lock` only since Rust 1.89, above the crate's MSRV). Released on drop, or when this
/// process dies (the pipe closes).
struct Flock(Child);

impl Flock {
    fn exclusive(path: &Path) -> Flock {
        let mut child = Command::new("flock")
            .args(["-x", "-w", "900"])
            .arg(path)
            .args(["-c", "echo locked && exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run flock(1) on {}: {e}", path.display()));
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "locked",
            "could not lock {} within 15 min",
            path.display()
        );
        Flock(child)
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn build_venv() -> PathBuf {
    let reqs = requirements_text();
    let tag = format!("{:010x}", fnv1a(reqs.as_bytes()) & 0xff_ffff_ffff);
    let dir = PathBuf::from(format!("/var/tmp/rwsgi-test-venv-{tag}"));
    let marker = dir.join(READY_MARKER);
    let ready = || fs::read_to_string(&marker).is_ok_and(|m| m == reqs);
    if ready() {
        return dir;
    }
    let _lock = Flock::exclusive(Path::new(&format!("/var/tmp/rwsgi-test-venv-{tag}.lock")));
    if ready() {
        return dir;
    }
    let started = Instant::now();
    eprintln!(
        "building the framework test venv {} (once per machine)",
        dir.display()
    );
    if dir.exists() {
        // A half-built venv from an interrupted run.
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
    }
    run_logged(
        Command::new(SYSTEM_PYTHON).args(["-m", "venv"]).arg(&dir),
        "creating the test venv with /usr/bin/python3 -m venv",
        "is Debian's python3-venv installed?",
    );
    let py = dir.join("bin/python");
    run_logged(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--timeout",
                "30",
                "--retries",
                "2",
            ])
            .args(REQUIREMENTS)
            .env_remove("PYTHONHOME")
            .env_remove("PYTHONPATH")
            .env_remove("PIP_REQUIRE_VIRTUALENV"),
        "pip install of the framework test requirements from PyPI",
        "these tests need PyPI to build their venv once per machine; is PyPI reachable?",
    );
    // www-data runs the apps: everything world-readable, dirs and programs world-executable.
    run_logged(
        Command::new("chmod").arg("-R").arg("a+rX").arg(&dir),
        "chmod of the test venv",
        "",
    );
    run_logged(
        Command::new(&py).args(["-c", "import flask, django, rpds"]),
        "importing the frameworks in the fresh venv",
        "",
    );
    let mut f = fs::File::create(&marker).unwrap();
    f.write_all(reqs.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o644)).unwrap();
    eprintln!("test venv built in {:.1?}", started.elapsed());
    dir
}

/// A server builder with `WSGIPythonHome` set to the test venv.
fn fw_server(name: &str) -> Builder {
    let v = venv();
    server(name)
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

#[test]
fn flask_app_from_a_venv() {
    let s = fw_server("fw_flask")
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

#[test]
fn django_project_from_a_venv() {
    let s = fw_server("fw_django")
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
#[test]
fn subinterpreter_refusing_extension_names_module_and_cure() {
    let mut s = fw_server("fw_ext_sub")
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
#[test]
fn subinterpreter_refusing_extension_works_in_global_group() {
    let s = fw_server("fw_ext_global")
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
