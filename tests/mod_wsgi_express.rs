//! Configurations written by the real `mod_wsgi-express setup-server` (pip's mod_wsgi 6.x in a
//! venv, `common::venv`) start and serve under mod_rwsgi once their one `LoadModule
//! wsgi_module …` line loads it instead (`common::mod_wsgi_express`): in daemon mode (the
//! default) and with `--embedded-mode`, alone and with the options people use most. The app
//! (`tests/apps/mod_wsgi_express/app.wsgi`) runs behind the handler script mod_wsgi-express
//! writes, which imports `mod_wsgi.express` from the pip package, so the `mod_wsgi` module
//! must take over that package's `__path__`.
//!
//! Building the venv (once per machine) compiles mod_wsgi's C extension with apxs and needs
//! PyPI; without it these tests fail, they do not skip.
mod common;
use common::mod_wsgi_express::{Express, venv};
use common::*;
use std::fs;
use std::time::{Duration, Instant};

#[test]
fn embedded_mode_serves_the_app_through_the_express_handler() {
    let e = started(Mode::Embedded, "embedded", &[]);
    let conf = e.file("httpd.conf");
    assert!(conf.contains("WSGIHandlerScript wsgi-handler"), "{conf}");
    let j = e.app("/some/path", &[]);
    assert_eq!(j.s("version"), "v1");
    assert_eq!(j.s("path_info"), "/some/path");
    assert_eq!(j.s("process_group"), "");
    assert_mod_wsgi_path_is_the_pip_package(&j);
    assert!(j.b("has_subscribe_shutdown"));
    // The document root's static files are Apache's; everything else goes to the app.
    fs::write(e.root.join("htdocs/static.txt"), "from htdocs\n").unwrap();
    let r = e.request("GET", "/static.txt", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "from htdocs\n");
}

#[test]
fn embedded_reload_on_changes_starts_and_serves() {
    // mod_wsgi-express turns reloading off in embedded mode (its handler script then starts
    // no change monitor): the option must only not get in the way.
    let e = started(Mode::Embedded, "reload", &["--reload-on-changes"]);
    let handler = e.file("handler.wsgi");
    assert!(
        handler.contains("reload_on_changes = True")
            && handler.contains("disable_reloading = True"),
        "{handler}"
    );
    assert_eq!(e.app("/", &[]).s("version"), "v1");
}

#[test]
fn a_mod_wsgi_package_on_sys_path_lends_its_submodules_without_running() {
    // The package's __init__ raises: it must never run.
    let s = server("mwe-package")
        .conf("WSGIPythonPath \"@APPS@/mod_wsgi_express/package\"")
        .conf(
            "WSGIScriptAlias /main \"@APPS@/mod_wsgi_express/package_probe.wsgi\" \
             application-group=%{GLOBAL}",
        )
        .conf("WSGIScriptAlias /sub \"@APPS@/mod_wsgi_express/package_probe.wsgi\"")
        .start();
    let package = s.apps.join("mod_wsgi_express/package/mod_wsgi");
    for path in ["/main", "/sub"] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        let j = r.json();
        let paths: Vec<&str> = j.at("path").arr().iter().map(Json::str).collect();
        assert_eq!(paths, [package.display().to_string()], "{path}");
        assert_eq!(j.s("submodule"), "express-submodule", "{path}");
        assert!(j.b("has_process_metrics"), "{path}");
        assert_eq!(j.s("application_group"), j.s("environ_group"), "{path}");
    }
}

#[test]
fn a_failing_search_for_the_mod_wsgi_package_is_logged() {
    let s = server("mwe-broken-finder")
        .single_process()
        .conf("WSGIPythonPath \"@APPS@/mod_wsgi_express/broken_finder\"")
        .conf("WSGIScriptAlias /main \"@APPS@/mod_wsgi_express/package_probe.wsgi\"")
        .allow_log("RWSGI0620")
        .allow_log("Traceback (most recent call last)")
        .allow_log("  File \"")
        .allow_log("    ")
        .allow_log("RuntimeError: finder broken on purpose for mod_wsgi")
        .start();
    let r = s.get("/main");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    assert!(j.at("path").arr().is_empty(), "{j:?}");
    assert!(matches!(j.get("submodule"), Some(Json::Null)), "{j:?}");
    assert!(j.b("has_process_metrics"));
    s.assert_log("RWSGI0620: looking for a mod_wsgi package on sys.path failed");
    s.assert_log("RuntimeError: finder broken on purpose for mod_wsgi");
}

#[test]
fn restrict_embedded_on_refuses_requests_that_would_run_embedded() {
    let mut s = server("mwe-restrict-embedded")
        .conf("WSGIRestrictEmbedded On")
        .conf("WSGIScriptAlias /main \"@APPS@/mod_wsgi_express/package_probe.wsgi\"")
        .start();
    let r = s.get("/main");
    assert_eq!(r.status, 500, "{}", r.describe());
    let lines = s.expect_error(r.client_port, "RWSGI0671: WSGIRestrictEmbedded On forbids");
    assert!(
        lines.iter().any(|l| l.contains("package_probe.wsgi")),
        "{lines:?}"
    );
    // Off, the default, runs it.
    drop(s);
    let s = server("mwe-restrict-embedded-off")
        .conf("WSGIRestrictEmbedded Off")
        .conf("WSGIScriptAlias /main \"@APPS@/mod_wsgi_express/package_probe.wsgi\"")
        .start();
    assert_eq!(s.get("/main").status, 200);
}

// ---------------------------------------------------------------------------------------------
// The default: daemon mode (WSGIRestrictEmbedded On, the app in the group "127.0.0.1:PORT")
// ---------------------------------------------------------------------------------------------

#[test]
fn daemon_mode_serves_the_app_in_its_daemon_process() {
    let e = started(Mode::Daemon, "basic", &[]);
    let conf = e.file("httpd.conf");
    assert!(conf.contains("WSGIRestrictEmbedded On"), "{conf}");
    let j = e.app("/some/path", &[]);
    assert_eq!(j.s("version"), "v1");
    assert_eq!(j.s("path_info"), "/some/path");
    assert_eq!(j.s("process_group"), format!("127.0.0.1:{}", e.port));
    assert_mod_wsgi_path_is_the_pip_package(&j);
    // Not an Apache child: those only pass the request on.
    let pid = j.n("pid") as u32;
    assert!(!children_of(e.parent_pid()).is_empty());
    assert!(
        fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .contains("wsgi:127.0.0.1"),
        "daemon {pid} has the display-name mod_wsgi-express gives it"
    );
}

#[test]
fn daemon_reload_on_changes_serves_the_changed_app() {
    let mut e = started(Mode::Daemon, "reload", &["--reload-on-changes"]);
    // The change monitor reports on stderr, which is logged at error level.
    e.allow_log("monitor (pid=");
    assert_eq!(e.app("/", &[]).s("version"), "v1");
    let app = e.site.join("app.wsgi");
    let text = fs::read_to_string(&app)
        .unwrap()
        .replace("VERSION = 'v1'", "VERSION = 'v2'");
    // A later mtime than the one the monitor recorded, whatever the file system's resolution.
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(&app, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = e.request("GET", "/", &[]);
        if r.status == 200 && r.json().s("version") == "v2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed app is not served within 15 s: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// The options that shape both kinds of config alike: one body, run in each mode.

/// `options` in `mode` (the two kinds of configuration mod_wsgi-express writes: daemon mode,
/// its default, or `--embedded-mode`), set up but not started; the tag gets the mode so that the server roots
/// of the two runs differ.
fn setup(mode: Mode, tag: &str, options: &[&str]) -> Express {
    match mode {
        Mode::Embedded => {
            let mut opts = vec!["--embedded-mode"];
            opts.extend_from_slice(options);
            Express::setup(tag, &opts)
        }
        Mode::Daemon => Express::setup(&format!("d-{tag}"), options),
    }
}

/// `options` in `mode`, started with the generated `apachectl start`.
fn started(mode: Mode, tag: &str, options: &[&str]) -> Express {
    let mut e = setup(mode, tag, options);
    e.start();
    e
}

/// Waits up to 5 s for `done`, then fails with `state()`.
fn within_5s(mut done: impl FnMut() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{}", state());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// As in mod_wsgi 6, the `mod_wsgi` module takes over the `__path__` of pip's package.
fn assert_mod_wsgi_path_is_the_pip_package(j: &Json) {
    let package = venv().join("lib/python3.11/site-packages/mod_wsgi");
    let paths: Vec<&str> = j.at("mod_wsgi_path").arr().iter().map(Json::str).collect();
    assert_eq!(paths, [package.display().to_string()]);
}

/// `--processes` and `--threads` size the Apache MPM (embedded) or the daemon group.
fn processes_and_threads_size_the_app_processes(mode: Mode) {
    let e = started(mode, "procs", &["--processes", "2", "--threads", "3"]);
    let j = e.app("/", &[]);
    assert_eq!(j.n("threads_per_process"), 3.0);
    assert_eq!(j.n("maximum_processes"), 2.0);
    assert!(j.b("multithread") && j.b("multiprocess"));
    if mode == Mode::Embedded {
        let deadline = Instant::now() + Duration::from_secs(10);
        while children_of(e.parent_pid()).len() < 2 {
            assert!(Instant::now() < deadline, "2 children within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn url_alias_serves_files_beside_the_app(mode: Mode) {
    let e = started(mode, "alias", &["--url-alias", "/files", "@SITE@/static"]);
    let r = e.request("GET", "/files/f.txt", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "static file\n");
    assert_eq!(e.app("/other", &[]).s("path_info"), "/other");
}

fn python_path_and_working_directory_reach_sys_path(mode: Mode) {
    let e = started(mode, "pypath", &["--python-path", "@SITE@/lib"]);
    let j = e.app("/", &[]);
    assert_eq!(j.s("helper"), e.site.join("lib").display().to_string());
    drop(e);
    let e = started(mode, "workdir", &["--working-directory", "@SITE@/lib"]);
    let j = e.app("/", &[]);
    assert_eq!(j.s("helper"), e.site.join("lib").display().to_string());
}

fn access_log_records_requests(mode: Mode) {
    let e = started(mode, "access", &["--access-log"]);
    e.app("/access-probe", &[]);
    within_5s(
        || {
            e.file("access_log")
                .contains("\"GET /access-probe HTTP/1.1\" 200")
        },
        || format!("access_log: {}", e.file("access_log")),
    );
}

fn log_to_terminal_sends_the_app_output_to_stderr(mode: Mode) {
    let mut e = setup(mode, "terminal", &["--log-to-terminal", "--access-log"]);
    e.start_foreground();
    // What an app writes to stderr is logged at error level, as by mod_wsgi.
    e.allow_log("express-app-says hello-terminal");
    e.app("/?say=hello-terminal", &[]);
    within_5s(
        || {
            e.terminal("err")
                .contains("express-app-says hello-terminal")
                && e.terminal("out").contains("GET /?say=hello-terminal")
        },
        || {
            format!(
                "stderr:\n{}\nstdout:\n{}",
                e.terminal("err"),
                e.terminal("out")
            )
        },
    );
    assert!(!e.root.join("error_log").exists());
}

fn trust_proxy_takes_the_client_from_x_forwarded_for(mode: Mode) {
    let options = [
        "--trust-proxy-header",
        "X-Forwarded-For",
        "--trust-proxy",
        "127.0.0.1",
    ];
    let e = started(mode, "proxy", &options);
    let j = e.app("/", &[("X-Forwarded-For", "203.0.113.7")]);
    assert_eq!(j.s("remote_addr"), "203.0.113.7");
    assert_eq!(e.app("/", &[]).s("remote_addr"), "127.0.0.1");
}

/// In daemon mode the auth script runs in the Apache child despite WSGIRestrictEmbedded On.
fn auth_user_script_guards_the_site(mode: Mode) {
    let mut e = started(mode, "auth", &["--auth-user-script", "@SITE@/auth.wsgi"]);
    e.allow_log("AH01617");
    e.allow_log("AH01618");
    let r = e.request("GET", "/", &[]);
    assert_eq!(r.status, 401, "{}", r.describe());
    // base64("express-user:wrong") and base64("express-user:express-secret")
    let r = e.request(
        "GET",
        "/",
        &[("Authorization", "Basic ZXhwcmVzcy11c2VyOndyb25n")],
    );
    assert_eq!(r.status, 401, "{}", r.describe());
    let j = e.app(
        "/",
        &[(
            "Authorization",
            "Basic ZXhwcmVzcy11c2VyOmV4cHJlc3Mtc2VjcmV0",
        )],
    );
    assert_eq!(j.s("remote_user"), "express-user");
}

both_modes!(
    processes_and_threads_size_the_app_processes,
    url_alias_serves_files_beside_the_app,
    python_path_and_working_directory_reach_sys_path,
    access_log_records_requests,
    log_to_terminal_sends_the_app_output_to_stderr,
    trust_proxy_takes_the_client_from_x_forwarded_for,
    auth_user_script_guards_the_site,
);
