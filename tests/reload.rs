//! Script loading and reloading (WSGIScriptReloading, the `reload_required` hook): edits to a
//! `.wsgi` file take effect on the next request, and never with reloading Off; a broken edit
//! gives 500 with a log line and the server keeps serving. Each test in embedded and in daemon
//! mode (`tests/common/modes.rs`).
mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn write_script(path: &Path, body: &str) {
    fs::write(path, body).expect("write script");
    // Make sure the mtime moves even within one clock tick of the previous write.
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open script");
    let bump = SystemTime::now()
        + Duration::from_secs(1 + path.metadata().map(|m| m.len() % 7).unwrap_or(0));
    f.set_modified(bump).expect("set mtime");
}

fn app(version: &str) -> String {
    format!(
        "import os\nLOADS = globals().get('LOADS', 0) + 1\n\
         def application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [b'{version} pid=%d' % os.getpid()]\n"
    )
}

fn body(s: &Server, path: &str) -> (u16, String) {
    let r = s.get(path);
    (r.status, r.text())
}

fn reload_server(name: &str, reloading: &str, mode: Mode) -> Server {
    server(name)
        .mode(mode)
        .single_process()
        .conf(&format!(
            "WSGIScriptAlias /app \"@DATA@/app.wsgi\"\nWSGIScriptReloading {reloading}"
        ))
        .start()
}

fn edited_script_is_reloaded_on_next_request(mode: Mode) {
    let mut s = reload_server("reload_on", "On", mode);
    let script = s.data.join("app.wsgi");
    write_script(&script, &app("v1"));
    let (st, b1) = body(&s, "/app");
    assert_eq!(st, 200);
    assert!(b1.starts_with("v1 "), "{b1}");
    write_script(&script, &app("v2"));
    let (st, b2) = body(&s, "/app");
    assert_eq!(st, 200);
    assert!(b2.starts_with("v2 "), "edit not picked up: {b2}");
    // Same process: an in-process module reload, not a restart. In daemon mode too, which
    // differs from mod_wsgi 4.9.4 on purpose: there a touched script restarts the whole
    // daemon process (a new pid); here only the script module is reloaded, as embedded.
    assert_eq!(b1.split("pid=").nth(1), b2.split("pid=").nth(1));

    // A broken edit: 500 with a precise log line; fixing it serves again.
    write_script(&script, "def application(environ, start_response:\n");
    let r = s.get("/app");
    assert_eq!(r.status, 500);
    let lines = s.expect_error(r.client_port, "SyntaxError");
    assert!(
        lines.iter().any(|l| l.contains("app.wsgi")),
        "log does not name the script: {lines:?}"
    );
    write_script(&script, &app("v3"));
    let (st, b3) = body(&s, "/app");
    assert_eq!((st, b3.starts_with("v3 ")), (200, true), "{b3}");
}

fn reloading_off_never_reloads(mode: Mode) {
    let s = reload_server("reload_off", "Off", mode);
    let script = s.data.join("app.wsgi");
    write_script(&script, &app("v1"));
    assert!(body(&s, "/app").1.starts_with("v1 "));
    write_script(&script, &app("v2"));
    for _ in 0..3 {
        let (st, b) = body(&s, "/app");
        assert_eq!(st, 200);
        assert!(
            b.starts_with("v1 "),
            "reloaded although WSGIScriptReloading Off: {b}"
        );
    }
}

fn reload_required_hook_is_honoured(mode: Mode) {
    let mut s = reload_server("reload_hook", "On", mode);
    let script = s.data.join("app.wsgi");
    let flag = s.data.join("reload-now");
    let hook = format!(
        "import os\nCOUNT = [0]\n\
         def reload_required(path):\n    \
         if path != {path:?}: raise ValueError('unexpected path %r' % path)\n    \
         if os.path.exists({flag:?}):\n        os.unlink({flag:?})\n        return True\n    \
         if os.path.exists({flag:?} + '.raise'):\n        raise RuntimeError('hook failed')\n    \
         return False\n\
         def application(environ, start_response):\n    \
         COUNT[0] += 1\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [b'count=%d' % COUNT[0]]\n",
        path = script.display().to_string(),
        flag = flag.display().to_string(),
    );
    write_script(&script, &hook);
    assert_eq!(body(&s, "/app").1, "count=1");
    assert_eq!(body(&s, "/app").1, "count=2");
    fs::write(&flag, "").unwrap();
    assert_eq!(body(&s, "/app").1, "count=1", "hook asked for a reload");
    assert_eq!(body(&s, "/app").1, "count=2");
    // An exception in the hook is logged and does not force a reload.
    fs::write(flag.with_extension("raise"), "").unwrap();
    let r = s.get("/app");
    assert_eq!((r.status, r.text()), (200, "count=3".to_string()));
    s.expect_error(r.client_port, "reload_required");
}

both_modes!(
    edited_script_is_reloaded_on_next_request,
    reloading_off_never_reloads,
    reload_required_hook_is_honoured,
);
