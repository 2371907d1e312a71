//! rwsgi-express (bin/rwsgi-express, package express/rwsgi_express): the command writes a server
//! root and runs the real Apache on 127.0.0.1 with the module under test (`--module`), as root
//! with `--user www-data`. Covers daemon mode (the default) and `--embedded-mode`, start-server
//! in the foreground (event and prefork, SIGTERM and SIGINT), setup-server with its apachectl,
//! the options that shape the config, the help and option errors, and the wheel installed into
//! a venv.
mod common;
use common::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn express_bin() -> PathBuf {
    repo().join("bin/rwsgi-express")
}

/// A fresh directory readable by www-data, holding a copy of the express test app.
struct Site {
    dir: PathBuf,
    keep: bool,
}

impl Site {
    fn new(tag: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("rwsgi-express-test-{}", token(tag)));
        mkdir(&dir);
        let site = Site { dir, keep: false };
        site.write("app/express.wsgi", &app_text("v1"));
        site
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        mkdir(p.parent().unwrap());
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }
    fn script(&self) -> PathBuf {
        self.path("app/express.wsgi")
    }
    fn root(&self) -> PathBuf {
        self.path("server-root")
    }
    /// The options every test passes: this host and a free port, the server root, the
    /// unprivileged account and the module under test.
    fn args(&self, port: u16) -> Vec<String> {
        let m = module();
        vec![
            self.script().display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--server-root".into(),
            self.root().display().to_string(),
            "--user".into(),
            "www-data".into(),
            "--group".into(),
            "www-data".into(),
            "--module".into(),
            m.path.display().to_string(),
            "--working-directory".into(),
            self.dir.display().to_string(),
        ]
    }
    fn conf(&self) -> String {
        fs::read_to_string(self.root().join("httpd.conf")).expect("httpd.conf written")
    }
    /// Fails on unexpected lines in the server root's error log (absent with --log-to-terminal).
    fn check_error_log(&mut self) {
        let log = fs::read_to_string(self.root().join("error_log")).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| {
                // Apache writes the level as [module:level] (or [level] with no module).
                let bad_level = ["error]", "crit]", "alert]", "emerg]"]
                    .iter()
                    .any(|lv| l.contains(&format!(":{lv}")) || l.contains(&format!("[{lv}")));
                (bad_level || l.contains("Traceback"))
                    && !BENIGN.iter().any(|b| l.contains(b))
                    && !l.contains("; restarting daemon process")
            })
            .collect();
        if !bad.is_empty() {
            self.keep = true;
            panic!(
                "unexpected error-log lines (kept {}):\n{}",
                self.dir.display(),
                bad.join("\n")
            );
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if self.keep || thread::panicking() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn app_text(version: &str) -> String {
    let text = fs::read_to_string(repo().join("tests/apps/express.wsgi")).unwrap();
    assert!(text.contains("VERSION = 'v1'"));
    text.replace("VERSION = 'v1'", &format!("VERSION = '{version}'"))
}

fn express(cmd: &str, args: &[String]) -> Output {
    Command::new(express_bin())
        .arg(cmd)
        .args(args)
        .output()
        .expect("run bin/rwsgi-express")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn get(port: u16, path: &str) -> Response {
    let mut c = Conn::connect(&format!("127.0.0.1:{port}"));
    c.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
        .unwrap();
    c.read_response(false).expect("read response")
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// `rwsgi-express start-server` running in the foreground, with its stdout and stderr captured.
struct Foreground {
    child: Child,
    port: u16,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Foreground {
    fn start(site: &Site, extra: &[&str]) -> Foreground {
        let port = free_port();
        let mut args = site.args(port);
        args.extend(extra.iter().map(|s| s.to_string()));
        Foreground::start_with(&express_bin(), site, port, &args)
    }

    fn start_with(bin: &Path, site: &Site, port: u16, args: &[String]) -> Foreground {
        // Left in the test runner's process group, as a script would leave it: the command
        // must move httpd out of it, or httpd's SIGTERM to its group at stop kills the runner.
        let mut child = Command::new(bin)
            .arg("start-server")
            .args(args)
            .current_dir(&site.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rwsgi-express start-server");
        let out = Some(collect(child.stdout.take().unwrap()));
        let err = Some(collect(child.stderr.take().unwrap()));
        let mut fg = Foreground {
            child,
            port,
            out,
            err,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !accepts(port) {
            if let Ok(Some(st)) = fg.child.try_wait() {
                let (o, e) = fg.output();
                panic!("start-server exited ({st}) before serving:\n{o}\n{e}");
            }
            assert!(Instant::now() < deadline, "start-server never listened");
            thread::sleep(Duration::from_millis(50));
        }
        fg
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Send `sig` and wait (bounded) for httpd, which replaced the command, to exit.
    fn stop(&mut self, sig: &str) -> (String, String) {
        signal(self.pid(), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "httpd did not exit after {sig}");
            thread::sleep(Duration::from_millis(50));
        }
        assert!(!accepts(self.port), "port still open after {sig}");
        self.output()
    }
    fn output(&mut self) -> (String, String) {
        let o = self
            .out
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let e = self
            .err
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (o, e)
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn start_server_runs_event_mpm_in_the_foreground_until_sigterm() {
    let mut site = Site::new("event");
    let mut fg = Foreground::start(
        &site,
        &["--processes", "2", "--threads", "3", "--embedded-mode"],
    );
    let r = get(fg.port, "/");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    assert_eq!(j.s("version"), "v1");
    assert!(j.b("multithread") && j.b("multiprocess"), "{j:?}");
    let conf = site.conf();
    for line in [
        "mpm_event_module",
        "ServerLimit 2",
        "ThreadsPerChild 3",
        "MaxRequestWorkers 6",
    ] {
        assert!(conf.contains(line), "{line} missing from:\n{conf}");
    }
    // httpd replaced the command: its pid is the parent of the two children.
    wait_until("two children", Duration::from_secs(10), || {
        children_of(fg.pid()).len() == 2
    });
    let (out, err) = fg.stop("-TERM");
    assert!(
        out.contains(&format!("http://127.0.0.1:{}/", fg.port)),
        "{out}"
    );
    assert!(out.contains("Embedded Mode"), "{out}");
    assert!(!err.contains("Traceback"), "{err}");
    assert!(!conf.contains("WSGIDaemonProcess"), "{conf}");
    site.check_error_log();
}

/// The title and user of a live process.
fn title_and_user(pid: u32) -> (String, u32) {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (title, uid)
}

fn www_data_uid() -> u32 {
    let o = Command::new("id")
        .args(["-u", "www-data"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

#[test]
fn by_default_the_app_runs_in_a_daemon_process_group() {
    let mut site = Site::new("daemon");
    let mut fg = Foreground::start(&site, &["--processes", "2", "--threads", "3"]);
    let group = format!("127.0.0.1:{}", fg.port);
    // Two daemons and one relaying Apache child, all children of httpd.
    wait_until("two daemons and a child", Duration::from_secs(10), || {
        children_of(fg.pid()).len() == 3
    });
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = get(fg.port, "/");
        assert_eq!(r.status, 200, "{}", r.describe());
        let j = r.json();
        assert_eq!(j.s("process_group"), group, "{j:?}");
        assert_eq!(j.s("user"), "www-data", "{j:?}");
        assert!(j.b("multithread") && j.b("multiprocess"), "{j:?}");
        pids.insert(j.n("pid") as u32);
    }
    let children = children_of(fg.pid());
    for pid in &pids {
        assert!(children.contains(pid), "{pid} is not a child of httpd");
        let (title, uid) = title_and_user(*pid);
        // display-name=(wsgi:HOST:PORT:UID), cut to the length of httpd's own command line.
        let shown = title.split(' ').next().unwrap();
        assert!(
            shown.starts_with("(wsgi:127.0.0.1:") && format!("(wsgi:{group}:0)").starts_with(shown),
            "{pid} is not a daemon: {title}"
        );
        assert_eq!(uid, www_data_uid());
    }
    // The Apache child that relays is not one of the processes that answered.
    let relays: Vec<u32> = children
        .iter()
        .copied()
        .filter(|p| !title_and_user(*p).0.starts_with("(wsgi:"))
        .collect();
    assert_eq!(relays.len(), 1, "{children:?}");
    assert!(!pids.contains(&relays[0]));
    let conf = site.conf();
    for line in [
        &format!("WSGIDaemonProcess \"{group}\""),
        "processes=2",
        "threads=3",
        "user=\"www-data\"",
        "home=",
        "request-timeout=60",
        "queue-timeout=45",
        &format!("WSGIProcessGroup \"{group}\""),
        "WSGIApplicationGroup %{GLOBAL}",
        "mpm_event_module",
    ] {
        assert!(conf.contains(line), "{line} missing from:\n{conf}");
    }
    let (out, _) = fg.stop("-TERM");
    assert!(
        out.contains(&format!("Process Group      : {group}")),
        "{out}"
    );
    site.check_error_log();
}

#[test]
fn daemon_mode_under_prefork_replaces_a_daemon_after_maximum_requests() {
    let mut site = Site::new("dprefork");
    let mut fg = Foreground::start(
        &site,
        &["--server-mpm", "prefork", "--maximum-requests", "2"],
    );
    let conf = site.conf();
    for line in [
        "mpm_prefork_module",
        "maximum-requests=2",
        "MaxRequestWorkers 20",
    ] {
        assert!(conf.contains(line), "{line} missing from:\n{conf}");
    }
    assert!(!conf.contains("inactivity-timeout"), "{conf}");
    let a = get(fg.port, "/").json();
    assert_eq!(a.s("process_group"), format!("127.0.0.1:{}", fg.port));
    // The daemon has 5 threads although prefork children have one.
    assert!(a.b("multithread"), "{a:?}");
    let b = get(fg.port, "/").json();
    assert_eq!(a.n("pid"), b.n("pid"));
    let mut c = b.clone();
    wait_until("a new daemon", Duration::from_secs(10), || {
        c = get(fg.port, "/").json();
        c.n("pid") != b.n("pid")
    });
    assert_eq!(c.s("process_group"), a.s("process_group"));
    fg.stop("-INT");
    site.check_error_log();
}

#[test]
fn embedded_mode_runs_the_app_in_the_apache_children() {
    let mut site = Site::new("embedded");
    let mut fg = Foreground::start(&site, &["--embedded-mode"]);
    let j = get(fg.port, "/").json();
    assert_eq!(j.s("process_group"), "", "{j:?}");
    let pid = j.n("pid") as u32;
    assert_eq!(children_of(fg.pid()), vec![pid]);
    assert!(!title_and_user(pid).0.starts_with("(wsgi:"));
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn start_server_with_one_thread_uses_prefork_and_stops_on_sigint() {
    let mut site = Site::new("prefork");
    let mut fg = Foreground::start(
        &site,
        &["--processes", "2", "--threads", "1", "--embedded-mode"],
    );
    let j = get(fg.port, "/").json();
    assert!(!j.b("multithread") && j.b("multiprocess"), "{j:?}");
    assert!(site.conf().contains("mpm_prefork_module"));
    wait_until("two children", Duration::from_secs(10), || {
        children_of(fg.pid()).len() == 2
    });
    fg.stop("-INT");
    site.check_error_log();
}

/// Stops a server started with `apachectl start` when a test fails before its own stop.
struct Detached(Option<PathBuf>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(ctl) = self.0.take() {
            let _ = Command::new(ctl).arg("stop").status();
        }
    }
}

#[test]
fn setup_server_writes_conf_and_apachectl_that_starts_and_stops() {
    let mut site = Site::new("setup");
    let port = free_port();
    let o = express("setup-server", &site.args(port));
    assert!(o.status.success(), "{}", text(&o));
    let ctl = site.root().join("apachectl");
    assert!(site.root().join("httpd.conf").is_file());
    assert_eq!(
        fs::metadata(&ctl).unwrap().permissions().mode() & 0o111,
        0o111,
        "apachectl is not executable"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("apachectl"),
        "{}",
        text(&o)
    );
    assert!(!accepts(port), "setup-server started a server");
    let st = Command::new(&ctl).arg("configtest").output().unwrap();
    assert!(st.status.success(), "configtest: {}", text(&st));
    let st = Command::new(&ctl).arg("start").output().unwrap();
    assert!(st.status.success(), "apachectl start: {}", text(&st));
    let mut running = Detached(Some(ctl.clone()));
    let pid_file = site.root().join("httpd.pid");
    wait_until("the server", Duration::from_secs(10), || {
        accepts(port) && pid_file.exists()
    });
    let pid: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let r = get(port, "/");
    assert_eq!(r.status, 200, "{}", r.describe());
    running.0 = None;
    let st = Command::new(&ctl).arg("stop").output().unwrap();
    assert!(st.status.success(), "apachectl stop: {}", text(&st));
    wait_until("httpd to exit", Duration::from_secs(10), || !alive(pid));
    site.check_error_log();
}

#[test]
fn url_alias_serves_a_static_directory_and_a_file() {
    let mut site = Site::new("alias");
    site.write("static/style.css", "body { color: red }\n");
    let robots = site.write("robots.txt", "User-agent: *\n");
    let static_dir = site.path("static").display().to_string();
    let robots = robots.display().to_string();
    let mut fg = Foreground::start(
        &site,
        &[
            "--url-alias",
            "/static",
            &static_dir,
            "--url-alias",
            "/robots.txt",
            &robots,
            "--mount-point",
            "/app",
        ],
    );
    let r = get(fg.port, "/static/style.css");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"body { color: red }\n");
    assert_eq!(r.header("Content-Type"), Some("text/css"));
    let r = get(fg.port, "/robots.txt");
    assert_eq!(r.body, b"User-agent: *\n", "{}", r.describe());
    let j = get(fg.port, "/app/x").json();
    assert_eq!(j.s("script_name"), "/app");
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn python_path_and_working_directory_are_honoured_in_both_modes() {
    for mode in [None, Some("--embedded-mode")] {
        python_path_and_working_directory(mode);
    }
}

fn python_path_and_working_directory(mode: Option<&str>) {
    let mut site = Site::new("pypath");
    site.write(
        "lib/express_python_path_mod.py",
        "VALUE = 'from-python-path'\n",
    );
    site.write("work/express_workdir_mod.py", "VALUE = 'from-workdir'\n");
    let lib = site.path("lib").display().to_string();
    let work = site.path("work").display().to_string();
    let mut extra = vec!["--python-path", &lib, "--working-directory", &work];
    extra.extend(mode);
    let mut fg = Foreground::start(&site, &extra);
    let j = get(fg.port, "/").json();
    assert_eq!(j.s("process_group").is_empty(), mode.is_some(), "{j:?}");
    assert_eq!(j.s("python_path_module"), "from-python-path", "{j:?}");
    assert_eq!(j.s("workdir_module"), "from-workdir", "{j:?}");
    assert_eq!(j.s("cwd"), work);
    fg.stop("-TERM");
    site.check_error_log();
}

fn edit_script(site: &Site, version: &str) {
    let p = site.script();
    fs::write(&p, app_text(version)).unwrap();
    // The mtime must move even within one clock tick of the first write.
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
}

#[test]
fn embedded_reload_on_changes_serves_an_edited_script_and_without_it_the_old_one_stays() {
    for (flag, expect) in [(Some("--reload-on-changes"), "v2"), (None, "v1")] {
        let mut site = Site::new("reload");
        // One process (the default), so that the second request reaches the child that
        // loaded v1.
        let mut extra: Vec<&str> = flag.into_iter().collect();
        extra.push("--embedded-mode");
        let mut fg = Foreground::start(&site, &extra);
        let first = get(fg.port, "/").json();
        assert_eq!(first.s("version"), "v1");
        edit_script(&site, "v2");
        let j = get(fg.port, "/").json();
        assert_eq!(j.n("pid"), first.n("pid"), "another child answered");
        assert_eq!(j.s("version"), expect, "with {flag:?}");
        fg.stop("-TERM");
        site.check_error_log();
    }
}

fn edit_module(site: &Site, value: &str) {
    let p = site.write("express_workdir_mod.py", &format!("VALUE = '{value}'\n"));
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
}

#[test]
fn daemon_reload_on_changes_restarts_the_daemon_when_the_script_or_a_module_changes() {
    let mut site = Site::new("dreload");
    // A module the script imports, from the working directory (site.args gives site.dir).
    edit_module(&site, "m1");
    let mut fg = Foreground::start(&site, &["--reload-on-changes"]);
    let first = get(fg.port, "/").json();
    assert_eq!(first.s("workdir_module"), "m1", "{first:?}");
    assert_ne!(first.s("process_group"), "");
    // The script: served at once on the next request, and the daemon restarts.
    edit_script(&site, "v2");
    assert_eq!(get(fg.port, "/").json().s("version"), "v2");
    let mut second = first.clone();
    wait_until("a new daemon", Duration::from_secs(10), || {
        second = get(fg.port, "/").json();
        second.n("pid") != first.n("pid")
    });
    assert_eq!(second.s("version"), "v2");
    // Let the new daemon's reloader (polling each second) see the module as loaded.
    thread::sleep(Duration::from_millis(1500));
    // A module the script imported: only a restart brings it in.
    edit_module(&site, "m2");
    let mut third = second.clone();
    wait_until("the edited module", Duration::from_secs(10), || {
        third = get(fg.port, "/").json();
        third.s("workdir_module") == "m2"
    });
    assert_ne!(third.n("pid"), second.n("pid"));
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn daemon_without_reload_on_changes_keeps_the_old_script_and_process() {
    let mut site = Site::new("dnoreload");
    let mut fg = Foreground::start(&site, &[]);
    let first = get(fg.port, "/").json();
    edit_script(&site, "v2");
    // Longer than the reloader's one-second poll would take.
    thread::sleep(Duration::from_millis(1500));
    let j = get(fg.port, "/").json();
    assert_eq!(j.s("version"), "v1");
    assert_eq!(j.n("pid"), first.n("pid"));
    assert!(!site.root().join("startup.py").exists());
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn include_file_is_read_at_the_end_of_the_config() {
    let mut site = Site::new("include");
    site.write("extra/hello.txt", "included\n");
    let extra = site.path("extra").display().to_string();
    let inc = site.write(
        "extra.conf",
        &format!("Alias /extra \"{extra}\"\n<Directory \"{extra}\">\n    Require all granted\n</Directory>\n"),
    );
    let inc = inc.display().to_string();
    let mut fg = Foreground::start(&site, &["--include-file", &inc]);
    let r = get(fg.port, "/extra/hello.txt");
    assert_eq!(r.body, b"included\n", "{}", r.describe());
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn server_status_is_served_to_this_host() {
    let mut site = Site::new("status");
    let mut fg = Foreground::start(&site, &["--server-status"]);
    let r = get(fg.port, "/server-status?auto");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.text().contains("BusyWorkers:"), "{}", r.describe());
    assert!(site.conf().contains("Require local"));
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn log_to_terminal_sends_the_access_log_to_stdout_and_errors_to_stderr() {
    let site = Site::new("terminal");
    let mut fg = Foreground::start(
        &site,
        &["--log-to-terminal", "--access-log", "--log-level", "info"],
    );
    assert_eq!(get(fg.port, "/terminal-probe").status, 200);
    let (out, err) = fg.stop("-TERM");
    assert!(
        out.contains("\"GET /terminal-probe HTTP/1.1\" 200"),
        "stdout:\n{out}"
    );
    assert!(err.contains("AH00489"), "stderr:\n{err}");
    assert!(!site.root().join("error_log").exists());
}

#[test]
fn access_log_goes_to_the_server_root() {
    let mut site = Site::new("accesslog");
    let mut fg = Foreground::start(&site, &["--access-log"]);
    assert_eq!(get(fg.port, "/logged").status, 200);
    fg.stop("-TERM");
    let log = fs::read_to_string(site.root().join("access_log")).unwrap();
    assert!(log.contains("\"GET /logged HTTP/1.1\" 200"), "{log}");
    site.check_error_log();
}

const OPTIONS: &[&str] = &[
    "--port",
    "--host",
    "--processes",
    "--threads",
    "--user",
    "--group",
    "--server-root",
    "--url-alias",
    "--reload-on-changes",
    "--log-to-terminal",
    "--access-log",
    "--python-path",
    "--working-directory",
    "--include-file",
    "--embedded-mode",
    "--server-status",
    "--setup-only",
    "--module",
    "--server-mpm",
    "--maximum-requests",
    "--request-timeout",
    "--daemon-backlog",
];

#[test]
fn help_lists_every_option() {
    for cmd in [None, Some("start-server"), Some("setup-server")] {
        let o = Command::new(express_bin())
            .args(cmd)
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let help = String::from_utf8_lossy(&o.stdout);
        for opt in OPTIONS {
            assert!(help.contains(opt), "{cmd:?} --help lacks {opt}:\n{help}");
        }
    }
}

/// The manual page (installed by the Debian package) documents every long option that
/// `start-server --help` prints, so the two cannot drift apart.
#[test]
fn manual_page_documents_every_option_of_the_help() {
    let o = Command::new(express_bin())
        .args(["start-server", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    let page = fs::read_to_string(repo().join("docs/man/rwsgi-express.1")).unwrap();
    let page = page.replace("\\-", "-");
    let mut missing = Vec::new();
    for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if word.starts_with("--") && word.len() > 2 && !page.contains(word) {
            missing.push(word.to_string());
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "docs/man/rwsgi-express.1 lacks {missing:?}"
    );
    for command in ["start-server", "setup-server", "module-location"] {
        assert!(page.contains(command), "the manual page lacks {command}");
    }
}

#[test]
fn unknown_option_and_missing_script_fail_clearly() {
    let site = Site::new("badopt");
    let mut args = site.args(free_port());
    args.push("--no-such-option".into());
    let o = express("start-server", &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rwsgi-express start-server: error: unrecognized arguments: --no-such-option"),
        "{err}"
    );
    assert!(!site.root().exists(), "a server root was written");

    let mut args = site.args(free_port());
    args[0] = site.path("missing.wsgi").display().to_string();
    let o = express("setup-server", &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing.wsgi does not exist"),
        "{}",
        text(&o)
    );
}

#[test]
fn root_without_user_is_refused() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("not root: nothing to check");
        return;
    }
    let site = Site::new("root");
    let args: Vec<String> = site
        .args(free_port())
        .into_iter()
        .filter(|a| a != "www-data" && a != "--user" && a != "--group")
        .collect();
    let o = express("setup-server", &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--user"),
        "{}",
        text(&o)
    );
    assert!(!site.root().exists(), "a server root was written");
}

#[test]
fn setup_only_writes_the_files_without_starting() {
    let site = Site::new("setuponly");
    let port = free_port();
    let mut args = site.args(port);
    args.push("--setup-only".into());
    let o = express("start-server", &args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(site.root().join("apachectl").is_file());
    assert!(!accepts(port));
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    o
}

#[test]
fn wheel_installs_into_a_venv_and_serves_with_its_own_module() {
    let mut site = Site::new("wheel");
    let dist = site.path("dist");
    let o = run_ok(
        Command::new("/usr/bin/python3")
            .arg(repo().join("express/build_wheel.py"))
            .arg(&dist)
            .arg("--module")
            .arg(module().path),
    );
    let wheel = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let name = Path::new(&wheel).file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with("mod_rwsgi-") && name.contains("-cp3") && name.contains("-linux_"),
        "{name}"
    );
    let venv = site.path("venv");
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv),
    );
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--no-index",
                "--disable-pip-version-check",
            ])
            .arg(&wheel),
    );
    // No --module: the command must load the module the wheel installed beside it.
    let port = free_port();
    let mut args = site.args(port);
    let at = args.iter().position(|a| a == "--module").unwrap();
    args.drain(at..at + 2);
    let mut fg = Foreground::start_with(&venv.join("bin/rwsgi-express"), &site, port, &args);
    let j = get(fg.port, "/").json();
    assert_eq!(j.s("prefix"), venv.display().to_string(), "{j:?}");
    let conf = site.conf();
    assert!(
        conf.contains("site-packages/rwsgi_express/mod_rwsgi.so"),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("python-home=\"{}\"", venv.display())),
        "{conf}"
    );
    assert_ne!(j.s("process_group"), "", "{j:?}");
    fg.stop("-TERM");
    site.check_error_log();
}

#[test]
fn working_directory_the_user_cannot_enter_is_logged_and_the_embedded_app_still_serves() {
    let site = Site::new("privdir");
    let private = site.path("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let private = private.display().to_string();
    let mut fg = Foreground::start(&site, &["--working-directory", &private, "--embedded-mode"]);
    let j = get(fg.port, "/").json();
    assert_ne!(j.s("cwd"), private);
    fg.stop("-TERM");
    let log = fs::read_to_string(site.root().join("error_log")).unwrap();
    assert!(
        log.contains(&format!(
            "not in the working directory {private} (Permission denied)"
        )) && log.contains("user www-data can enter"),
        "{log}"
    );
}

#[test]
fn working_directory_the_user_cannot_enter_is_refused_in_daemon_mode() {
    let site = Site::new("privdird");
    let private = site.path("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let private = private.display().to_string();
    let mut args = site.args(free_port());
    args.extend(["--working-directory".into(), private.clone()]);
    let o = express("setup-server", &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "--working-directory {private}: user www-data cannot enter it"
        )),
        "{}",
        text(&o)
    );
    assert!(!site.root().exists(), "a server root was written");
}

#[test]
fn from_a_checkout_the_module_is_target_mod_rwsgi_so() {
    // A copy of the checkout's layout: bin/, express/, Cargo.toml and the module where
    // `make build` puts it.
    let site = Site::new("checkout");
    let tree = site.path("checkout");
    copy_tree(&repo().join("express"), &tree.join("express"));
    copy_tree(&repo().join("bin"), &tree.join("bin"));
    fs::set_permissions(
        tree.join("bin/rwsgi-express"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::copy(repo().join("Cargo.toml"), tree.join("Cargo.toml")).unwrap();
    mkdir(&tree.join("target"));
    let built = tree.join("target/mod_rwsgi.so");
    fs::copy(module().path, &built).unwrap();
    let bin = tree.join("bin/rwsgi-express");
    let o = run_ok(Command::new(&bin).arg("module-location"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        built.display().to_string()
    );
    let port = free_port();
    let mut args = site.args(port);
    let at = args.iter().position(|a| a == "--module").unwrap();
    args.drain(at..at + 2);
    let mut fg = Foreground::start_with(&bin, &site, port, &args);
    assert_eq!(get(fg.port, "/").status, 200);
    fg.stop("-TERM");
    assert!(
        site.conf()
            .contains(&format!("LoadModule rwsgi_module \"{}\"", built.display()))
    );
}
