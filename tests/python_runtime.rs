//! The Python runtime directives (`WSGIPythonHome`, `WSGIPythonPath`, `WSGIPythonOptimize`,
//! `WSGIPythonHashSeed`, `WSGIPythonWarnings`, `WSGIDontWriteBytecode`, `WSGIPythonEggs`,
//! `WSGISwitchInterval`, `WSGIRestrict{Stdin,Stdout,Signal}`, `WSGICaseSensitivity`,
//! `WSGIImportScript`, `WSGILazyInitialization`, `WSGIDestroyInterpreter`), each observed from
//! an app over HTTP, in the main interpreter and in a sub-interpreter; plus their config-time
//! validation.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A server with the runtime report app in a sub-interpreter (`/rt`) and in the main one
/// (`/rt-global`).
fn rt(name: &str) -> Builder {
    server(name)
        .conf("WSGIScriptAlias /rt \"@APPS@/runtime.wsgi\"")
        .conf("WSGIScriptAlias /rt-global \"@APPS@/runtime.wsgi\" application-group=%{GLOBAL}")
}

/// The report of both interpreters for `query` (sub first, then main).
fn both(srv: &Server, query: &str) -> Vec<Json> {
    ["/rt", "/rt-global"]
        .iter()
        .map(|p| {
            let r = srv.get(&format!("{p}{query}"));
            assert_eq!(r.status, 200, "{p}{query}: {}", r.describe());
            r.json()
        })
        .collect()
}

fn strings(j: &Json) -> Vec<String> {
    j.arr().iter().map(|s| s.str().to_string()).collect()
}

/// A directory outside the server root (which only exists once the server starts), removed
/// on drop; world-readable so the Apache user can use it.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rwsgi-rt-{}", token(tag)));
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn s(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write_file(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
}

// ---- process-wide settings ------------------------------------------------------------------

#[test]
fn defaults_are_pythons() {
    let srv = rt("rt_defaults").start();
    for j in both(&srv, "") {
        assert_eq!(j.n("optimize"), 0.0, "{j:?}");
        assert_eq!(j.n("dont_write_bytecode"), 0.0);
        assert_eq!(j.n("hash_randomization"), 1.0);
        assert!(j.at("warnoptions").arr().is_empty());
        assert!((j.n("switchinterval") - 0.005).abs() < 1e-9);
        assert_eq!(j.at("egg_cache"), &Json::Null);
        assert_eq!(j.at("site_marker"), &Json::Null);
        // As under mod_wsgi: the Python the module was built with.
        assert_eq!(j.s("executable"), "/usr/bin/python3");
        assert_eq!(j.s("prefix"), "/usr");
    }
}

#[test]
fn optimize_bytecode_warnings_switch_interval_eggs() {
    let srv = rt("rt_flags")
        .conf("WSGIPythonOptimize 2")
        .conf("WSGIDontWriteBytecode On")
        .conf("WSGIPythonWarnings ignore::DeprecationWarning")
        .conf("WSGIPythonWarnings error::UserWarning")
        .conf("WSGISwitchInterval 0.025")
        .conf("WSGIPythonEggs \"@DATA@/eggs\"")
        .conf("WSGILazyInitialization On")
        .start();
    let eggs = srv.data.join("eggs").display().to_string();
    for j in both(&srv, "") {
        assert_eq!(j.n("optimize"), 2.0, "{j:?}");
        assert_eq!(j.n("dont_write_bytecode"), 1.0);
        assert_eq!(
            strings(j.at("warnoptions")),
            ["ignore::DeprecationWarning", "error::UserWarning"]
        );
        // Later -W options take precedence, so they come first in the filter list.
        let filters = strings(j.at("filters"));
        let pos = |f: &str| filters.iter().position(|x| x == f);
        let (err, ign) = (pos("error:UserWarning"), pos("ignore:DeprecationWarning"));
        assert!(err.is_some() && ign.is_some() && err < ign, "{filters:?}");
        assert!((j.n("switchinterval") - 0.025).abs() < 1e-9, "{j:?}");
        assert_eq!(j.s("egg_cache"), eggs);
    }
}

#[test]
fn hash_seed_fixed_is_the_same_everywhere_and_as_python() {
    let expected = Command::new("/usr/bin/python3")
        .args(["-c", "print(hash('mod_rwsgi runtime'))"])
        .env("PYTHONHASHSEED", "12345")
        .output()
        .expect("run /usr/bin/python3");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    // Prefork: two children, each with its own Python; every one must agree.
    let srv = rt("rt_hashseed")
        .mpm(Mpm::Prefork)
        // Holding one of the two children busy may make Apache note that all are in use.
        .allow_log("AH00161")
        .conf("WSGIPythonHashSeed 12345")
        .start();
    let mut pids = std::collections::BTreeSet::new();
    // A keep-alive connection holds one prefork child, so the next requests reach the other.
    let mut held = srv.connect();
    for path in ["/rt", "/rt-global"] {
        held.send(&request_bytes("GET", path, &[], b"")).unwrap();
        let j = held.read_response(false).unwrap().json();
        assert_eq!(j.s("hash"), expected, "{j:?}");
        pids.insert(j.n("pid") as u64);
    }
    for j in both(&srv, "") {
        assert_eq!(j.s("hash"), expected, "{j:?}");
        assert_eq!(j.n("hash_randomization"), 1.0);
        pids.insert(j.n("pid") as u64);
    }
    drop(held);
    assert_eq!(pids.len(), 2, "expected two children, saw {pids:?}");
    drop(srv);
    // Seed 0 turns randomisation off, as PYTHONHASHSEED=0 does.
    let srv = rt("rt_hashseed0").conf("WSGIPythonHashSeed 0").start();
    for j in both(&srv, "") {
        assert_eq!(j.n("hash_randomization"), 0.0, "{j:?}");
    }
}

#[test]
fn python_path_is_a_site_dir_in_every_interpreter() {
    let srv = rt("rt_path")
        .conf("WSGIPythonPath \"@APPS@/sitedir:@ROOT@/no-such-dir\"")
        .start();
    let sitedir = srv.apps.join("sitedir").display().to_string();
    for j in both(&srv, "") {
        assert_eq!(j.s("site_marker"), "site", "{j:?}");
        // Only site.addsitedir reads rt.pth, which adds sitedir/pthdir.
        assert_eq!(j.s("pth_marker"), "pth", "{j:?}");
        let path = strings(j.at("path"));
        assert!(path.contains(&sitedir), "{path:?}");
        assert!(path.contains(&format!("{sitedir}/pthdir")), "{path:?}");
    }
}

// ---- stdin, stdout, signals ---------------------------------------------------------------------

#[test]
fn restricted_stdin_and_stdout_raise_and_signal_unrestricted() {
    let srv = rt("rt_restrict")
        .conf("WSGIRestrictStdin On")
        .conf("WSGIRestrictStdout On")
        .conf("WSGIRestrictSignal Off")
        .start();
    for j in both(&srv, "?stdin") {
        assert!(
            j.s("stdin")
                .starts_with("OSError: sys.stdin access restricted by mod_wsgi"),
            "{j:?}"
        );
    }
    for j in both(&srv, "?stdout") {
        assert!(
            j.s("stdout")
                .starts_with("OSError: sys.stdout access restricted by mod_wsgi"),
            "{j:?}"
        );
    }
    // Unrestricted, the real signal.signal refuses: requests run off the main thread.
    for j in both(&srv, "?signal") {
        assert!(j.s("signal").starts_with("ValueError"), "{j:?}");
        assert!(!j.b("installed"));
    }
}

#[test]
fn stdout_goes_to_the_error_log_by_default() {
    let mut srv = rt("rt_stdout").start();
    for p in ["/rt?stdout", "/rt-global?stdout"] {
        let tok = token("stdout");
        let r = srv.request("GET", p, &[("X-Token", &tok)], b"");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.json().s("stdout"), "ok");
        srv.expect_error(r.client_port, &format!("stdout says {tok}"));
    }
    for j in both(&srv, "?stdin") {
        assert!(!j.s("stdin").contains("restricted"), "{j:?}");
    }
}

#[test]
fn signal_registration_is_ignored_and_logged_by_default() {
    let srv = rt("rt_signal").start();
    for j in both(&srv, "?signal") {
        assert_eq!(j.s("signal"), "returned", "{j:?}");
        assert!(j.b("returned_handler"));
        assert!(!j.b("installed"));
        let sig = j.n("signum") as u32;
        srv.assert_log(&format!("callback registration for signal {sig} ignored"));
    }
    srv.assert_log("RWSGI0201:");
    // The stack names the caller.
    srv.assert_log("runtime.wsgi\", line");
    let log = srv.error_log_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("RWSGI0201"))
            .all(|l| l.contains(":warn]")),
        "{log}"
    );
}

// ---- case sensitivity -------------------------------------------------------------------------

#[test]
fn case_sensitivity_off_lowercases_the_resource_group() {
    let srv = server("rt_case")
        .conf("WSGICaseSensitivity Off")
        .conf("WSGIScriptAlias /MixedCase \"@APPS@/environ.wsgi\"")
        .start();
    let j = srv.get("/MixedCase").json();
    let e = j.at("environ");
    assert_eq!(
        e.s("mod_wsgi.application_group"),
        format!("localhost:{}|/mixedcase", srv.port)
    );
    assert_eq!(e.s("SCRIPT_NAME"), "/MixedCase");
}

#[test]
fn script_module_is_named_from_the_md5_of_its_path() {
    for (sensitivity, expected) in [("On", "as_is"), ("Off", "lowered")] {
        let srv = server("rt_modname")
            .conf(&format!("WSGICaseSensitivity {sensitivity}"))
            .conf("WSGIScriptAlias /name \"@APPS@/ModuleName.wsgi\"")
            .start();
        // mod_wsgi 4.9.4 lower-cases when case-sensitive and not otherwise (fixed in 6.0).
        let expected = match (srv.module.is_reference(), expected) {
            (true, "as_is") => "lowered",
            (true, _) => "as_is",
            (false, e) => e,
        };
        let j = srv.get("/name").json();
        assert_ne!(j.s("as_is"), j.s("lowered"), "{j:?}");
        assert_eq!(
            j.s("name"),
            j.s(expected),
            "WSGICaseSensitivity {sensitivity}: {j:?}"
        );
    }
}

// ---- WSGIImportScript -------------------------------------------------------------------------

fn preload_markers(srv: &Server) -> Vec<String> {
    fs::read_dir(&srv.data)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("preload-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn import_script_runs_at_child_start_in_its_interpreter() {
    let srv = server("rt_import")
        .single_process()
        .conf(
            "WSGIImportScript \"@APPS@/preload.wsgi\" process-group=%{GLOBAL} \
             application-group=%{GLOBAL}",
        )
        .conf(
            "WSGIImportScript \"@APPS@/preload.wsgi\" process-group=%{GLOBAL} \
             application-group=named",
        )
        .conf(
            "WSGIImportScript \"@APPS@/preload_fail.py\" process-group=%{GLOBAL} \
             application-group=%{GLOBAL}",
        )
        .conf("WSGIScriptAlias /pre-global \"@APPS@/preload.wsgi\" application-group=%{GLOBAL}")
        .conf("WSGIScriptAlias /pre-named \"@APPS@/preload.wsgi\" application-group=named")
        .allow_log("RWSGI0211")
        .allow_log("Traceback (most recent call last)")
        .allow_log("preload_fail.py")
        .allow_log("preload failure RT")
        .start();
    // No request yet: both imports have run in the child.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let markers = loop {
        let m = preload_markers(&srv);
        if m.len() >= 2 || std::time::Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let child = srv.child_pids()[0];
    let mut sorted = markers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            format!("preload-{child}-main"),
            format!("preload-{child}-sub")
        ]
    );
    srv.assert_log("RWSGI0211: WSGIImportScript");
    srv.assert_log("RuntimeError: preload failure RT");

    for (path, main, group) in [("/pre-global", true, ""), ("/pre-named", false, "named")] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        let j = r.json();
        assert_eq!(j.n("pid") as u32, child);
        assert_eq!(j.b("main"), main, "{j:?}");
        assert_eq!(j.s("group"), group);
        // Served by the preloaded module: imported once, before the request.
        assert_eq!(j.n("count"), 1.0, "{j:?}");
        assert!(j.n("imported_at") < j.n("now"));
    }
    assert_eq!(preload_markers(&srv).len(), 2);
}

// ---- WSGIDestroyInterpreter -------------------------------------------------------------------

#[test]
fn destroy_interpreter_off_skips_finalize_and_stops_quickly() {
    let mut srv = server("rt_nodestroy")
        .conf("WSGIDestroyInterpreter Off")
        .conf("SetEnv RWSGI_DATA \"@DATA@\"")
        .conf("WSGIScriptAlias /ae-sub \"@APPS@/atexit.wsgi\"")
        .conf("WSGIScriptAlias /ae-global \"@APPS@/atexit.wsgi\" application-group=%{GLOBAL}")
        .start();
    let markers: Vec<String> = ["/ae-sub", "/ae-global"]
        .iter()
        .map(|p| {
            let r = srv.get(p);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
            r.text()
        })
        .collect();
    srv.stop();
    let took = srv.stop_took.expect("stop measured");
    eprintln!("stop with WSGIDestroyInterpreter Off: {took:?}");
    assert!(took < MAX_STOP, "stop took {took:?}");
    // No Py_Finalize / Py_EndInterpreter, so no atexit callbacks.
    for m in &markers {
        assert!(
            !Path::new(m).exists(),
            "atexit ran although finalisation is off: {m}"
        );
    }
}

// ---- WSGIPythonHome -----------------------------------------------------------------------------

#[test]
fn python_home_venv_and_prefix() {
    let dir = TempDir::new("venv");
    let venv = dir.path().join("venv");
    let out = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .expect("run python3 -m venv");
    assert!(
        out.status.success(),
        "venv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let build = fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("python3."))
        .expect("lib/python3.X in the venv");
    write_file(
        &venv
            .join("lib")
            .join(&build)
            .join("site-packages/rt_venv_marker.py"),
        "VALUE = 'venv'\n",
    );
    let srv = rt("rt_home_venv")
        .var("VENV", &venv.display().to_string())
        .conf("WSGIPythonHome \"@VENV@\"")
        .start();
    for j in both(&srv, "") {
        assert_eq!(j.s("prefix"), venv.display().to_string(), "{j:?}");
        assert_eq!(j.s("base_prefix"), "/usr");
        assert_eq!(j.s("venv_marker"), "venv");
    }
    drop(srv);
    // A plain prefix: the system Python's own.
    let srv = rt("rt_home_prefix").conf("WSGIPythonHome /usr").start();
    for j in both(&srv, "") {
        assert_eq!(j.s("prefix"), "/usr", "{j:?}");
        assert_eq!(j.at("venv_marker"), &Json::Null);
    }
}

#[test]
fn python_home_for_another_python_fails_start_up_cleanly() {
    let dir = TempDir::new("oldvenv");
    write_file(
        &dir.path().join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.9.18\n",
    );
    write_file(
        &dir.path()
            .join("lib/python3.9/site-packages/placeholder.py"),
        "",
    );
    let mut srv = server("rt_home_wrong")
        .fragment("apps")
        .var("OLDVENV", &dir.s())
        .conf("WSGIPythonHome \"@OLDVENV@\"")
        .allow_log("RWSGI0010")
        .start();
    srv.assert_log(&format!(
        "RWSGI0010: WSGIPythonHome '{}' is a virtual environment for Python 3.9, but mod_rwsgi \
         was built for Python 3.11",
        dir.s()
    ));
    for _ in 0..3 {
        let r = srv.get("/hello");
        assert_eq!(r.status, 500, "{}", r.describe());
        srv.expect_error(r.client_port, "RWSGI0030");
    }
}

// ---- configuration errors -----------------------------------------------------------------------

fn config_error(lines: &str, needle: &str) {
    let t = server("rt_conf").conf(lines).config_test();
    assert!(!t.ok, "accepted: {lines}\n{}", t.output);
    assert!(
        t.output.contains(needle),
        "{lines}: expected {needle:?} in\n{}",
        t.output
    );
}

#[test]
fn bad_values_are_config_errors_naming_the_directive() {
    for (line, needle) in [
        (
            "WSGIPythonOptimize 3",
            "WSGIPythonOptimize: '3' is not valid; use 0, 1 or 2",
        ),
        (
            "WSGIPythonHashSeed 4294967296",
            "WSGIPythonHashSeed: '4294967296' is not valid; use random or an integer from 0 to 4294967295",
        ),
        (
            "WSGISwitchInterval 0",
            "WSGISwitchInterval: '0' is not valid; use a positive number",
        ),
        (
            "WSGIDontWriteBytecode maybe",
            "WSGIDontWriteBytecode: 'maybe' is not valid; use On or Off",
        ),
        (
            "WSGIRestrictSignal 1",
            "WSGIRestrictSignal: '1' is not valid; use On or Off",
        ),
        (
            "WSGIDestroyInterpreter",
            "WSGIDestroyInterpreter takes one argument",
        ),
        (
            "WSGIPythonWarnings shout::Warning",
            "WSGIPythonWarnings: 'shout'",
        ),
        (
            "WSGIPythonHome relative/venv",
            "WSGIPythonHome: 'relative/venv' is not an absolute path",
        ),
        ("WSGIPythonPath :", "WSGIPythonPath: ':' names no directory"),
        (
            "WSGIImportScript /x.py process-group=other application-group=%{GLOBAL}",
            "no WSGI daemon process called 'other' has been configured",
        ),
        (
            "WSGIImportScript /x.py process-group=%{GLOBAL}",
            "both process-group= and application-group= are required",
        ),
    ] {
        config_error(line, needle);
    }
}

#[test]
fn runtime_directives_are_main_server_only() {
    config_error(
        "<VirtualHost 127.0.0.1:@PORT@>\n    WSGIPythonOptimize 1\n</VirtualHost>",
        "WSGIPythonOptimize cannot occur within <VirtualHost> section",
    );
    config_error(
        "<Directory \"@APPS@\">\n    WSGIRestrictStdout On\n</Directory>",
        "WSGIRestrictStdout not allowed in <Directory> context",
    );
    // WSGIImportScript may sit in a virtual host (as in mod_wsgi).
    let t = server("rt_conf_vhost")
        .conf(
            "<VirtualHost 127.0.0.1:@PORT@>\n    WSGIImportScript \"@APPS@/hello.wsgi\" \
             process-group=%{GLOBAL} application-group=%{GLOBAL}\n</VirtualHost>",
        )
        .config_test();
    assert!(t.ok, "{}", t.output);
}
