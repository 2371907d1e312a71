//! Servers configured by the real `mod_wsgi-express setup-server` (pip's mod_wsgi, in a venv
//! of its own from `common::venv`), with the one `LoadModule wsgi_module …` line it writes
//! changed to load the module under test; started and stopped with the `apachectl` it
//! writes. The site (app, server root) lives under `/tmp/rwsgi-mwe-test-*`, readable by
//! www-data; it is removed on success and kept (path printed) on failure.

use super::*;
use std::process::{Child, Stdio};
use std::sync::OnceLock;

/// The mod_wsgi release whose `mod_wsgi-express` writes the configurations (its C extension
/// is compiled with apxs on install, so the venv build needs apache2-dev).
pub const MOD_WSGI_PIN: &str = "mod_wsgi==6.1.1";

/// The venv with mod_wsgi (and so `mod_wsgi-express`), built once per machine.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        super::venv::pip_venv(
            "mod_wsgi-express",
            &[MOD_WSGI_PIN],
            "import mod_wsgi.express.runtime, mod_wsgi.express.reloader",
        )
    })
}

fn express_apps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/mod_wsgi_express")
}

/// One generated server root and the Apache it runs.
pub struct Express {
    /// The site: `app.wsgi` and the other files of `tests/apps/mod_wsgi_express`, and
    /// `server-root/`.
    pub site: PathBuf,
    pub root: PathBuf,
    pub port: u16,
    parent: Option<u32>,
    foreground: Option<Child>,
    allow: Vec<String>,
    stopped: bool,
}

impl Express {
    /// Runs `mod_wsgi-express setup-server` for the site's `app.wsgi` with `options` (which
    /// may name `@SITE@`), on 127.0.0.1 and a free port, as www-data, then points its
    /// `LoadModule` line at the module under test.
    pub fn setup(tag: &str, options: &[&str]) -> Express {
        let site = std::env::temp_dir().join(format!("rwsgi-mwe-test-{}", token(tag)));
        copy_tree(&express_apps(), &site);
        let root = site.join("server-root");
        let port = free_port();
        let site_s = site.display().to_string();
        let out = Command::new(venv().join("bin/mod_wsgi-express"))
            .arg("setup-server")
            .arg(site.join("app.wsgi"))
            .arg("--server-root")
            .arg(&root)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--user", "www-data", "--group", "www-data"])
            .args(options.iter().map(|o| o.replace("@SITE@", &site_s)))
            .output()
            .expect("run mod_wsgi-express");
        assert!(
            out.status.success(),
            "mod_wsgi-express setup-server {options:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let conf_path = root.join("httpd.conf");
        let conf = fs::read_to_string(&conf_path).unwrap();
        let m = module();
        let load: Vec<&str> = conf
            .lines()
            .filter(|l| l.starts_with("LoadModule wsgi_module "))
            .collect();
        assert_eq!(
            load.len(),
            1,
            "one LoadModule wsgi_module line in {conf_path:?}"
        );
        // Nothing else in the file may depend on the module's C name, which differs.
        assert!(
            !conf.contains("mod_wsgi.c"),
            "{conf_path:?} tests the module's C name"
        );
        let mut conf = conf.replace(
            load[0],
            &format!("LoadModule {} '{}'", m.sym, m.path.display()),
        );
        // As base.conf.in: a crashed child leaves a core for the harness to show.
        conf.push_str(&format!(
            "\nCoreDumpDirectory '{}'\n",
            root.join("cores").display()
        ));
        fs::write(&conf_path, conf).unwrap();
        let chmod = Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&site)
            .status()
            .unwrap();
        assert!(chmod.success());
        mkdir_mode(&root.join("cores"), 0o1777);
        Express {
            site,
            root,
            port,
            parent: None,
            foreground: None,
            allow: Vec::new(),
            stopped: false,
        }
    }

    /// The generated file `name` under the server root.
    pub fn file(&self, name: &str) -> String {
        fs::read_to_string(self.root.join(name)).unwrap_or_default()
    }

    fn apachectl(&self, args: &[&str]) -> Command {
        // With core files allowed, as `apache_cmd`.
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "ulimit -c unlimited 2>/dev/null; exec \"$0\" \"$@\""])
            .arg(self.root.join("apachectl"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        c
    }

    /// `apachectl start`, then waits (bounded) until the port answers.
    pub fn start(&mut self) {
        let out = self.apachectl(&["start"]).output().unwrap();
        assert!(
            out.status.success(),
            "apachectl start failed:\n{}{}\n--- error log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.file("error_log"), 40)
        );
        self.wait_up();
    }

    /// `apachectl start -DFOREGROUND`, with its stdout and stderr in `terminal.out` and
    /// `terminal.err` of the site.
    pub fn start_foreground(&mut self) {
        let out = fs::File::create(self.site.join("terminal.out")).unwrap();
        let err = fs::File::create(self.site.join("terminal.err")).unwrap();
        let child = self
            .apachectl(&["start", "-DFOREGROUND"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.parent = Some(child.id());
        self.foreground = Some(child);
        self.wait_up();
    }

    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pid = self.file("httpd.pid").trim().parse::<u32>().ok();
            if let Some(pid) = pid {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.parent = Some(pid);
                    return;
                }
            }
            if let Some(c) = &mut self.foreground {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "apachectl start -DFOREGROUND exited ({st}):\n{}",
                        self.terminal("err")
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not come up within 20 s; error log:\n{}",
                tail(&self.file("error_log"), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the foreground server wrote to its stdout (`"out"`) or stderr (`"err"`).
    pub fn terminal(&self, which: &str) -> String {
        fs::read_to_string(self.site.join(format!("terminal.{which}"))).unwrap_or_default()
    }

    /// The Apache parent's pid.
    pub fn parent_pid(&self) -> u32 {
        self.parent.expect("server started")
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = Conn::connect(&format!("127.0.0.1:{}", self.port));
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("Connection", "close"));
        c.send(&request_bytes(method, path, &h, b"")).unwrap();
        c.read_response(method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET `path`, which must answer 200 with the app's JSON.
    pub fn app(&self, path: &str, headers: &[(&str, &str)]) -> Json {
        let r = self.request("GET", path, headers);
        assert_eq!(r.status, 200, "GET {path}: {}", r.describe());
        r.json()
    }

    /// Error-log lines containing `pat` do not fail the test.
    pub fn allow_log(&mut self, pat: &str) {
        self.allow.push(pat.to_string());
    }

    /// `apachectl stop`; waits (bounded) for the parent to exit.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if self.stopped {
            return Duration::ZERO;
        }
        self.stopped = true;
        let Some(pid) = self.parent else {
            return Duration::ZERO;
        };
        wait_for_connections_to_close(self.port);
        let _ = self.apachectl(&["stop"]).output();
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) && Instant::now() < deadline {
            if let Some(c) = &mut self.foreground {
                let _ = c.try_wait();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            let mut pids = children_of(pid);
            pids.push(pid);
            for p in pids {
                let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
            }
        }
        if let Some(mut c) = self.foreground.take() {
            let _ = c.wait();
        }
        started.elapsed()
    }

    fn unexpected_log_lines(&self) -> Vec<String> {
        let text = format!("{}{}", self.file("error_log"), self.terminal("err"));
        text.lines()
            .filter(|l| BAD_MARKERS.iter().any(|m| l.contains(m)))
            .filter(|l| !self.allow.iter().any(|a| l.contains(a.as_str())))
            .filter(|l| !BENIGN.iter().any(|b| l.contains(b)))
            .filter(|l| !httpd_stop_race(&self.root, l))
            // mod_wsgi-express sizes the worker MPM with MinSpareThreads equal to
            // MaxRequestWorkers, so Apache warns (at error level) whenever all threads are idle.
            .filter(|l| !l.contains("AH00287: server is within MinSpareThreads"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Express {
    fn drop(&mut self) {
        let took = self.stop();
        if std::thread::panicking() {
            eprintln!(
                "mod_wsgi-express site kept at {}; error log tail:\n{}",
                self.site.display(),
                tail(&self.file("error_log"), 40)
            );
            return;
        }
        let mut bad = self.unexpected_log_lines();
        if took > MAX_STOP {
            bad.push(format!("apachectl stop took {took:?} (limit {MAX_STOP:?})"));
        }
        if !bad.is_empty() {
            panic!(
                "unexpected error-log lines (site kept at {}):\n{}",
                self.site.display(),
                bad.join("\n")
            );
        }
        let _ = fs::remove_dir_all(&self.site);
    }
}
