//! Integration-test harness: renders a config from `httpd-test-conf/` templates into a private
//! ServerRoot under /tmp, starts a real multi-process `apache2 -f CONF -k start`, talks HTTP/1.1
//! to it over raw sockets, and on drop stops it and fails the test on unexpected
//! `[error]`/`[crit]`/`[alert]`/`[emerg]`/`Traceback` lines in its error logs.
//!
//! Module under test: `target/<profile>/libmod_rwsgi.so` (symbol `rwsgi_module`), or
//! `RWSGI_TEST_MODULE=/path/mod.so RWSGI_TEST_MODULE_SYM=wsgi_module` to run the same tests
//! against the reference mod_wsgi (then the C name for `<IfModule>` is `mod_wsgi.c`; override with
//! `RWSGI_TEST_MODULE_CNAME`).
//!
//! Std plus dev-dependencies: `serde_json` for the apps' JSON, `sha2` for body hashes, `httparse`
//! for response heads. The client around it is hand-written on raw sockets, because the tests
//! need exact bytes on the wire, pipelining, truncated bodies and 1xx heads.

#![allow(dead_code)]

pub mod curl;
pub mod graceful;
pub mod tls;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod control;
pub mod metrics;
pub mod mod_wsgi_express;
pub mod modes;
pub mod venv;

pub use modes::Mode;

pub const APACHE: &str = "/usr/sbin/apache2";
pub const REFERENCE_MOD_WSGI: &str = "/usr/lib/apache2/modules/mod_wsgi.so";

// ---------------------------------------------------------------------------------------------
// Module under test
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Module {
    pub path: PathBuf,
    pub sym: String,
    /// Name `<IfModule>` matches: `mod_rwsgi.c` for us, `mod_wsgi.c` for the reference.
    pub c_name: String,
}

impl Module {
    /// True when the suite runs against Debian's mod_wsgi (the reference), not mod_rwsgi.
    pub fn is_reference(&self) -> bool {
        self.sym == "wsgi_module"
    }

    /// The reference mod_wsgi, when installed (for side-by-side comparisons).
    pub fn reference() -> Option<Module> {
        let p = PathBuf::from(REFERENCE_MOD_WSGI);
        p.exists().then(|| Module {
            path: p,
            sym: "wsgi_module".into(),
            c_name: "mod_wsgi.c".into(),
        })
    }
}

pub fn module() -> Module {
    let sym = std::env::var("RWSGI_TEST_MODULE_SYM").unwrap_or_else(|_| "rwsgi_module".into());
    let path = match std::env::var_os("RWSGI_TEST_MODULE") {
        Some(p) => PathBuf::from(p),
        None => built_module(),
    };
    assert!(
        path.exists(),
        "module under test not found: {}",
        path.display()
    );
    let c_name = std::env::var("RWSGI_TEST_MODULE_CNAME").unwrap_or_else(|_| {
        if sym == "wsgi_module" {
            "mod_wsgi.c".into()
        } else {
            "mod_rwsgi.c".into()
        }
    });
    Module { path, sym, c_name }
}

/// The module built from this checkout. `cargo test` only builds the rlib the tests link, so
/// the cdylib Apache loads is built here, once per test binary, with the same profile and
/// target dir (a no-op when it is current), so a test never runs against a stale module.
fn built_module() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // current_exe = <target>/<profile>/deps/<test>-<hash>
            let exe = std::env::current_exe().expect("current_exe");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>")
                .to_path_buf();
            let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--lib", "--quiet"])
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target_dir);
            if release {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("run cargo build for the module");
            assert!(
                out.status.success(),
                "building the module failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            profile_dir.join("libmod_rwsgi.so")
        })
        .clone()
}

/// `apache2` with a clean, fixed environment (cargo's LD_LIBRARY_PATH etc. would otherwise leak
/// into the CGI variables).
/// apache2 run with core files allowed (`CoreDumpDirectory` in base.conf.in makes the
/// children dumpable), so that a child's crash leaves a backtrace for [`crash_backtraces`].
fn apache_cmd() -> Command {
    let mut c = Command::new("/bin/sh");
    c.args([
        "-c",
        "ulimit -c unlimited 2>/dev/null; exec \"$0\" \"$@\"",
        APACHE,
    ]);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C");
    c
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Temp dirs, ports
// ---------------------------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn make_root(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let p = std::env::temp_dir().join(format!(
        "rwsgi-test-{}-{}-{}-{:x}",
        tag,
        std::process::id(),
        n,
        nanos
    ));
    fs::create_dir_all(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().unwrap().port()
}

/// Copy a tree, dirs 0755, files 0644 (readable by www-data).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            if e.file_name() == "__pycache__" {
                continue;
            }
            copy_tree(&e.path(), &dst);
        } else if ft.is_file() {
            fs::copy(e.path(), &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

fn mkdir_mode(p: &Path, mode: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }
}

pub struct Builder {
    name: String,
    module: Module,
    mpm: Mpm,
    single_process: bool,
    threads: u32,
    fragments: Vec<String>,
    lines: Vec<String>,
    allow: Vec<String>,
    log_level: String,
    vars: Vec<(String, String)>,
    mode: Mode,
}

/// A server named after the test (used in the temp dir name).
pub fn server(name: &str) -> Builder {
    Builder {
        name: name.to_string(),
        module: module(),
        mpm: Mpm::Event,
        single_process: false,
        threads: 8,
        fragments: Vec::new(),
        lines: Vec::new(),
        allow: Vec::new(),
        log_level: "info".into(),
        vars: Vec::new(),
        mode: Mode::Embedded,
    }
}

pub struct ConfigTest {
    pub ok: bool,
    pub code: Option<i32>,
    pub output: String,
}

impl Builder {
    pub fn module(mut self, m: Module) -> Self {
        self.module = m;
        self
    }
    pub fn mpm(mut self, m: Mpm) -> Self {
        self.mpm = m;
        self
    }
    /// Exactly one child process (event/worker: ServerLimit 1; prefork: 1 server).
    pub fn single_process(mut self) -> Self {
        self.single_process = true;
        self
    }
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }
    /// Include `httpd-test-conf/<name>.conf.in`.
    pub fn fragment(mut self, name: &str) -> Self {
        self.fragments.push(name.to_string());
        self
    }
    /// Extra config lines (placeholders are substituted), appended after the fragments.
    pub fn conf(mut self, text: &str) -> Self {
        self.lines.push(text.to_string());
        self
    }
    /// Error-log lines containing this substring are expected (not a failure).
    pub fn allow_log(mut self, pat: &str) -> Self {
        self.allow.push(pat.to_string());
        self
    }
    pub fn log_level(mut self, l: &str) -> Self {
        self.log_level = l.to_string();
        self
    }
    /// Extra placeholder `@NAME@` → value.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    fn mpm_conf(&self) -> String {
        let t = self.threads;
        match (self.mpm, self.single_process) {
            (Mpm::Prefork, single) => {
                let n = if single { 1 } else { 2 };
                format!(
                    "StartServers {n}\nMinSpareServers 1\nMaxSpareServers {n}\nServerLimit {n}\nMaxRequestWorkers {n}\nMaxConnectionsPerChild 0"
                )
            }
            (_, single) => {
                let servers = if single { 1 } else { 2 };
                format!(
                    "StartServers 1\nServerLimit {servers}\nThreadLimit {t}\nThreadsPerChild {t}\nMaxRequestWorkers {}\nMinSpareThreads 1\nMaxSpareThreads {}\nMaxConnectionsPerChild 0",
                    servers * t,
                    servers * t
                )
            }
        }
    }

    /// Lay out the ServerRoot and write the config. Returns (root, conf path, port).
    fn render(&self) -> Rendered {
        let root = make_root(&self.name);
        let apps = root.join("apps");
        let data = root.join("data");
        copy_tree(&repo_dir().join("tests/apps"), &apps);
        mkdir_mode(&data, 0o777);
        mkdir_mode(&root.join("logs"), 0o755);
        mkdir_mode(&root.join("run"), 0o755);
        mkdir_mode(&root.join("cores"), 0o1777);
        mkdir_mode(&root.join("htdocs"), 0o755);
        mkdir_mode(&root.join("conf"), 0o755);
        let port = free_port();
        let mut text = read_template("base");
        for f in &self.fragments {
            text.push_str(&format!("\n# ---- fragment {f}\n"));
            text.push_str(&read_template(f));
        }
        for l in &self.lines {
            text.push('\n');
            text.push_str(l);
        }
        text.push('\n');
        text.push_str(&self.mode_conf());
        let mut subst: Vec<(String, String)> = vec![
            ("@MPM_CONF@".into(), self.mpm_conf()),
            ("@ROOT@".into(), root.display().to_string()),
            ("@APPS@".into(), apps.display().to_string()),
            ("@DATA@".into(), data.display().to_string()),
            ("@PORT@".into(), port.to_string()),
            ("@MPM@".into(), self.mpm.name().into()),
            ("@MODULE_SYM@".into(), self.module.sym.clone()),
            (
                "@MODULE_PATH@".into(),
                self.module.path.display().to_string(),
            ),
            ("@MODULE_C@".into(), self.module.c_name.clone()),
            ("@LOGLEVEL@".into(), self.log_level.clone()),
        ];
        for (k, v) in &self.vars {
            subst.push((format!("@{k}@"), v.clone()));
        }
        for (k, v) in &subst {
            text = text.replace(k.as_str(), v);
        }
        let conf = root.join("conf/httpd.conf");
        fs::write(&conf, &text).unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
        Rendered {
            root,
            apps,
            data,
            conf,
            port,
        }
    }

    /// `apache2 -f CONF -t`: config-time validation only. The temp root is removed.
    pub fn config_test(self) -> ConfigTest {
        let r = self.render();
        let out = apache_cmd()
            .arg("-f")
            .arg(&r.conf)
            .arg("-t")
            .output()
            .expect("run apache2 -t");
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        let _ = fs::remove_dir_all(&r.root);
        ConfigTest {
            ok: out.status.success(),
            code: out.status.code(),
            output,
        }
    }

    /// Start the server and wait until it accepts connections.
    pub fn start(self) -> Server {
        self.start_attempt().unwrap_or_else(|f| {
            panic!(
                "apache2 -k start failed ({:?}) for {}:\n{}\nconfig kept at {}",
                f.code,
                f.name,
                f.output,
                f.conf.display()
            )
        })
    }

    /// Like [`Builder::start`], but a refused `apache2 -k start` is returned, not a panic
    /// (for tests of start-up checks).
    pub fn start_attempt(self) -> Result<Server, StartFailure> {
        let mut attempt = 1;
        let (r, out) = loop {
            let r = self.render();
            let out = apache_cmd()
                .arg("-f")
                .arg(&r.conf)
                .arg("-k")
                .arg("start")
                .output()
                .expect("run apache2 -k start");
            // The port was free when picked, but a client's ephemeral port or another
            // server can take it before Apache binds it: another port, another root.
            let taken = !out.status.success()
                && [&out.stdout, &out.stderr]
                    .iter()
                    .any(|o| String::from_utf8_lossy(o).contains("Address already in use"));
            if !taken || attempt == 3 {
                break (r, out);
            }
            let _ = fs::remove_dir_all(&r.root);
            attempt += 1;
        };
        let error_log = r.root.join("logs/error.log");
        if !out.status.success() {
            let log = fs::read(&error_log).unwrap_or_default();
            return Err(StartFailure {
                name: self.name,
                code: out.status.code(),
                output: format!(
                    "{}{}\nerror log:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&log)
                ),
                conf: r.conf,
                root: r.root,
            });
        }
        let mut server = Server {
            name: self.name.clone(),
            module: self.module.clone(),
            mpm: self.mpm,
            mode: self.mode,
            port: r.port,
            pid_file: r.root.join("run/httpd.pid"),
            root: r.root,
            apps: r.apps,
            data: r.data,
            conf: r.conf,
            error_log,
            allow: self.allow.clone(),
            stopped: false,
            parent: None,
            stop_took: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pid_ok = fs::read_to_string(&server.pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            let port_ok = TcpStream::connect_timeout(
                &format!("127.0.0.1:{}", server.port).parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok();
            // The parent listens before it forks the children: wait for a child too, so
            // tests that look at child pids right away see them (in `Mode::Daemon` the
            // group's process is forked first, then the Apache child).
            let want = if server.mode == Mode::Daemon { 2 } else { 1 };
            if let (Some(pid), true) = (pid_ok, port_ok) {
                if children_of(pid).len() >= want {
                    server.parent = Some(pid);
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "apache2 did not come up within 10 s (port {}, root {}):\n{}",
                    server.port,
                    server.root.display(),
                    server.error_log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

/// A refused `apache2 -k start`: its exit code and stdout + stderr + error log. Its ServerRoot
/// is removed on drop, or kept (for the config) when the test fails.
#[derive(Debug)]
pub struct StartFailure {
    pub name: String,
    pub code: Option<i32>,
    pub output: String,
    pub conf: PathBuf,
    root: PathBuf,
}

impl Drop for StartFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

struct Rendered {
    root: PathBuf,
    apps: PathBuf,
    data: PathBuf,
    conf: PathBuf,
    port: u16,
}

fn read_template(name: &str) -> String {
    let p = repo_dir()
        .join("httpd-test-conf")
        .join(format!("{name}.conf.in"));
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("template {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

pub struct Server {
    pub name: String,
    pub module: Module,
    pub mpm: Mpm,
    /// Embedded or daemon mode ([`Builder::mode`]).
    pub mode: Mode,
    pub port: u16,
    pub root: PathBuf,
    pub apps: PathBuf,
    pub data: PathBuf,
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
    allow: Vec<String>,
    stopped: bool,
    parent: Option<u32>,
    /// How long `apache2 -k stop` took until the parent exited.
    pub stop_took: Option<Duration>,
}

/// Safety net on shutdown time (decisions §4: "stop finishes in under 4 s").
pub const MAX_STOP: Duration = Duration::from_secs(4);

/// Runs `script` with /usr/bin/python3 (a client the tests cannot express with sockets alone,
/// e.g. one that stops reading) and waits until its first line on stdout says `ready`.
pub fn python_client(script: &str, ready: &str) -> std::process::Child {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(child.stdout.take().expect("piped stdout")),
        &mut line,
    )
    .expect("read the client's first line");
    assert_eq!(line.trim(), ready, "python client's first line");
    child
}

/// Environ keys of mod_wsgi 6.x that mod_rwsgi sets beside 4.9.4's, so the reference lacks them.
pub const MOD_WSGI_6_ENVIRON_KEYS: &[&str] = &[
    "mod_wsgi.application_start",
    "mod_wsgi.daemon_start",
    "mod_wsgi.queue_start",
];

/// `keys` without [`MOD_WSGI_6_ENVIRON_KEYS`], to compare with the reference's.
pub fn without_6x_keys(
    mut keys: std::collections::BTreeSet<String>,
) -> std::collections::BTreeSet<String> {
    for k in MOD_WSGI_6_ENVIRON_KEYS {
        keys.remove(*k);
    }
    keys
}

/// Apache's own noise that says nothing about the module: the event MPM logs AH03092 at error
/// level when a connection in lingering close meets the stop of its child, and prefork logs
/// AH00161 at error level whenever the tests' deliberately small pool is all busy.
pub const BENIGN: &[&str] = &[
    "AH03092: process_lingering_close",
    "AH00161: server reached MaxRequestWorkers",
];

/// Log lines that fail a test unless allowed. "exit signal" catches AH00052 (a child died of a
/// signal, e.g. a segfault), which Apache logs at notice level only.
pub const BAD_MARKERS: &[&str] = &[
    "[error]",
    ":error]",
    "[crit]",
    ":crit]",
    "[alert]",
    ":alert]",
    "[emerg]",
    ":emerg]",
    "Traceback",
    "exit signal",
];

impl Server {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(&self.addr())
    }

    /// GET with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn head(&self, path: &str) -> Response {
        self.request("HEAD", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
        self.request("POST", path, headers, body)
    }

    /// One request on a fresh connection (Content-Length set when a body is given or the method
    /// is POST/PUT; `Connection: close`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut c = self.connect();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\n",
            self.port
        );
        let mut has_cl = false;
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding")
            {
                has_cl = true;
            }
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_cl && (!body.is_empty() || method == "POST" || method == "PUT") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("Connection: close\r\n\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        c.send(&bytes).expect("send request");
        c.read_response(method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {path}: reading response failed: {e}"))
    }

    /// Send raw bytes on a fresh connection, read one response.
    pub fn raw(&self, bytes: &[u8]) -> Response {
        let mut c = self.connect();
        c.send(bytes).expect("send raw");
        let head = bytes.starts_with(b"HEAD ");
        c.read_response(head)
            .unwrap_or_else(|e| panic!("raw request: reading response failed: {e}"))
    }

    /// Error log text (main log).
    pub fn error_log_text(&self) -> String {
        fs::read(&self.error_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Text of another log in the logs dir (e.g. a vhost's ErrorLog).
    pub fn log_text(&self, file: &str) -> String {
        fs::read(self.root.join("logs").join(file))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Wait (bounded) until `file` in the logs dir contains `needle`.
    pub fn wait_log_file(&self, file: &str, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text(file).contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (bounded) until the main error log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_file("error.log", needle, timeout)
    }

    /// Assert the main error log contains `needle` (waiting up to 5 s).
    pub fn assert_log(&self, needle: &str) {
        assert!(
            self.wait_log(needle, Duration::from_secs(5)),
            "expected {needle:?} in the error log; tail:\n{}",
            tail(&self.error_log_text(), 40)
        );
    }

    /// The error-log tag of requests made on the connection with this local port.
    pub fn client_tag(port: u16) -> String {
        format!("[client 127.0.0.1:{port}]")
    }

    /// Error-log lines (all logs) of requests from the connection with local port `port`.
    pub fn log_lines_of(&self, port: u16) -> Vec<String> {
        let tag = Self::client_tag(port);
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join("logs")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("access") {
                    continue;
                }
                let text =
                    String::from_utf8_lossy(&fs::read(e.path()).unwrap_or_default()).into_owned();
                out.extend(
                    text.lines()
                        .filter(|l| l.contains(&tag))
                        .map(str::to_string),
                );
            }
        }
        out
    }

    /// A new connection with a GET of `path` (`Connection: close`) sent on it, the response
    /// left for the caller to read.
    pub fn send_get(&self, path: &str) -> Conn {
        let mut c = self.connect();
        c.send(&request_bytes("GET", path, &[("Connection", "close")], b""))
            .unwrap();
        c
    }

    /// GET `path` on its own connection, whose error lines are expected, one containing
    /// `needle`: the response and those lines.
    pub fn get_with_error(&mut self, path: &str, needle: &str) -> (Response, Vec<String>) {
        let mut c = self.send_get(path);
        let port = c.local_port();
        let r = c.read_response(false).unwrap();
        let lines = self.expect_error(port, needle);
        (r, lines)
    }

    /// Errors logged for this connection are expected: allow them, and assert (waiting up to
    /// 5 s) that some line for it contains `needle`. Returns that request's log lines.
    pub fn expect_error(&mut self, client_port: u16, needle: &str) -> Vec<String> {
        self.allow.push(Self::client_tag(client_port));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.log_lines_of(client_port);
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {needle:?} in the error log for client port {client_port}; its lines:\n{}\n--- log tail:\n{}",
                    lines.join("\n"),
                    tail(&self.error_log_text(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Declare more allowed error-log substrings after start.
    pub fn allow_log(&mut self, pat: &str) {
        self.allow.push(pat.to_string());
    }

    /// Wait (bounded) for a file in the data dir to appear; returns its content.
    pub fn wait_data_file(&self, name: &str, timeout: Duration) -> Option<String> {
        let p = self.data.join(name);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(s) = fs::read_to_string(&p) {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn parent_pid(&self) -> u32 {
        self.parent.expect("server running")
    }

    /// Pids of the Apache children (processes whose ppid is the parent).
    pub fn child_pids(&self) -> Vec<u32> {
        children_of(self.parent_pid())
    }

    /// Unexpected lines in all error logs (everything in logs/ except access.log).
    pub fn unexpected_log_lines(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join("logs")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("access") {
                    continue;
                }
                let text =
                    String::from_utf8_lossy(&fs::read(e.path()).unwrap_or_default()).into_owned();
                for line in text.lines() {
                    if BAD_MARKERS.iter().any(|m| line.contains(m))
                        && !self.allow.iter().any(|a| line.contains(a.as_str()))
                        && !BENIGN.iter().any(|b| line.contains(b))
                        && !httpd_stop_race(&self.root, line)
                    {
                        bad.push(format!("{name}: {line}"));
                    }
                }
            }
        }
        bad
    }

    /// Stop the server (bounded). Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let started = Instant::now();
        let children = self.parent.map(children_of).unwrap_or_default();
        wait_for_connections_to_close(self.port);
        let _ = apache_cmd()
            .arg("-f")
            .arg(&self.conf)
            .arg("-k")
            .arg("stop")
            .output();
        if self.module.is_reference() {
            // mod_wsgi 4.9.4 + Python 3.11: a child that ran a request in a sub-interpreter hangs
            // in Py_EndInterpreter -> threading._shutdown at exit (GrahamDumpleton/mod_wsgi#730,
            // #799) until the parent SIGKILLs it 10 s later. Not what these tests are about: give
            // it a moment, then kill those children (by pid; we started them).
            let deadline = Instant::now() + Duration::from_millis(1500);
            while children.iter().any(|&c| alive(c)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            for &c in &children {
                if alive(c) {
                    let _ = Command::new("kill").arg("-9").arg(c.to_string()).status();
                }
            }
        }
        if let Some(pid) = self.parent {
            // Apache itself SIGKILLs stuck children after ~10 s; give it time to do so and log it.
            let deadline = Instant::now() + Duration::from_secs(15);
            while alive(pid) {
                if Instant::now() > deadline {
                    eprintln!(
                        "apache2 parent {pid} did not exit within 15 s; SIGKILL to it and its children"
                    );
                    let mut pids = children_of(pid);
                    pids.push(pid);
                    for p in pids {
                        let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.stop_took = Some(started.elapsed());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "test server {} failed; root kept at {}\nerror log tail:\n{}{}",
                self.name,
                self.root.display(),
                tail(&self.error_log_text(), 60),
                crash_backtraces(&self.root, &self.unexpected_log_lines())
            );
            return;
        }
        let mut bad = self.unexpected_log_lines();
        if let Some(t) = self.stop_took {
            if t > MAX_STOP && !self.module.is_reference() {
                bad.push(format!("apache2 -k stop took {t:?} (limit {MAX_STOP:?})"));
            }
        }
        if !bad.is_empty() {
            panic!(
                "unexpected error-log lines in {} (root kept at {}):\n{}\n--- error log tail:\n{}{}",
                self.name,
                self.root.display(),
                bad.join("\n"),
                tail(&self.error_log_text(), 60),
                crash_backtraces(&self.root, &bad)
            );
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The core files a crashed child may have left: those in the ServerRoot's `cores/`
/// (base.conf.in's `CoreDumpDirectory`, with the kernel's default relative `core_pattern`),
/// and, for each "child pid N exit signal" line (AH00051/AH00052), the one an absolute
/// `kernel.core_pattern` naming it by `%p` points at.
fn core_files(root: &Path, bad: &[String]) -> Vec<PathBuf> {
    let mut cores: Vec<PathBuf> = fs::read_dir(root.join("cores"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    if pattern.starts_with('/') && pattern.contains("%p") {
        for line in bad.iter().filter(|l| l.contains("exit signal")) {
            if let Some(pid) = crashed_pid(line) {
                cores.push(PathBuf::from(pattern.replace("%p", pid)));
            }
        }
    }
    cores.retain(|c| c.is_file());
    cores
}

/// N of an Apache "child pid N exit signal …" line.
fn crashed_pid(line: &str) -> Option<&str> {
    line.split("child pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
}

/// What gdb prints for `command` run on `core`.
fn gdb(core: &Path, command: &str) -> String {
    Command::new("gdb")
        .args(["-batch", "-nx", "-ex", command, APACHE])
        .arg(core)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// True when `line` reports a child's segfault that its core shows to be httpd's own stop
/// race in its threaded MPMs, not this module: the child's main thread, in an ungraceful
/// stop, shutting the socket of a connection (event and worker `close_worker_sockets` →
/// `apr_os_sock_get`) that a worker finishing that connection at the same moment had just
/// freed with its pool. No module code runs on that path. Without a core that shows
/// exactly this, the crash counts.
fn httpd_stop_race(root: &Path, line: &str) -> bool {
    if !line.contains("exit signal Segmentation fault") {
        return false;
    }
    let Some(pid) = crashed_pid(line) else {
        return false;
    };
    for core in core_files(root, &[line.to_string()]) {
        let bt = gdb(&core, "bt 3");
        let frame = |n: &str, needle: &str| {
            bt.lines()
                .any(|l| l.starts_with(&format!("#{n} ")) && l.contains(needle))
        };
        let main_thread = bt.contains(&format!("(LWP {pid}))]"));
        let mpm = frame("1", "/mod_mpm_event.so") || frame("1", "/mod_mpm_worker.so");
        if main_thread && frame("0", " apr_os_sock_get ") && mpm {
            eprintln!(
                "child {pid} of {} crashed in httpd's MPM stop race \
                 (close_worker_sockets on a connection its worker had just freed), not in \
                 mod_rwsgi; core kept in {}",
                root.display(),
                core.display()
            );
            return true;
        }
    }
    false
}

/// gdb's backtraces of the core files a crashed child left (see [`core_files`]). Such
/// crashes are rare and timing-dependent, so the run that meets one should say where it
/// happened.
fn crash_backtraces(root: &Path, bad: &[String]) -> String {
    if !bad.iter().any(|l| l.contains("exit signal")) {
        return String::new();
    }
    let cores = core_files(root, bad);
    if cores.is_empty() {
        return format!(
            "\n--- no core file in {} (core_pattern {:?})",
            root.join("cores").display(),
            fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default()
        );
    }
    let mut out = String::new();
    for core in cores {
        out.push_str(&format!(
            "\n--- backtrace from {}:\n{}",
            core.display(),
            tail(&gdb(&core, "thread apply all bt 40"), 400)
        ));
    }
    out
}

/// Waits (at most 0.5 s) until the server on `port` holds no connection. httpd's threaded
/// MPMs can crash a child when an ungraceful stop shuts the socket of a connection a worker is
/// finishing at that very moment (see [`httpd_stop_race`]), and a test has often just read
/// its last response when it stops the server.
fn wait_for_connections_to_close(port: u16) {
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && server_side_connections(port) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Server-side TCP connections on `port` still open (held by a process: TIME_WAIT and
/// other orphaned sockets have inode 0).
fn server_side_connections(port: u16) -> usize {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .map(|t| {
            t.lines()
                .skip(1)
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 9 && f[1].ends_with(&local) && f[3] != "0A" && f[9] != "0"
                })
                .count()
        })
        .sum()
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------------------------

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    Some(
        s[close + 2..]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).map(|f| f[0] == "Z").unwrap_or(true)
}

pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
            if let Some(f) = stat_fields(pid) {
                if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) && f[0] != "Z" {
                    out.push(pid);
                }
            }
        }
    }
    out.sort();
    out
}

/// A `kB` field of /proc/PID/status (e.g. "VmRSS", "VmHWM"), in bytes.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let n: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(n * 1024);
        }
    }
    None
}

pub fn rss(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS").unwrap_or(0)
}

/// Peak RSS (VmHWM) of a process, bytes.
pub fn peak_rss(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM").unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    /// Empty when the phrase has bytes above 0x7f (httparse's rule); a test of such a phrase
    /// reads the raw bytes.
    pub reason: String,
    /// In order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Status codes of interim (1xx) responses received before this one.
    pub interim: Vec<u16>,
    /// Body was framed by `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The body ended as framed (Content-Length reached, terminating chunk seen, or close-delimited).
    pub complete: bool,
    /// Framing problem seen while reading the body (EOF too early, bad chunk), if any.
    pub error: Option<String>,
    /// Local (client) port of the connection: the error log tags request lines with
    /// `[client 127.0.0.1:PORT]`.
    pub client_port: u16,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Json {
        Json::parse(&self.text()).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}) in response {}: {}",
                self.status,
                self.text()
            )
        })
    }
    /// Summary for assertion messages.
    pub fn describe(&self) -> String {
        let body = self.text();
        let body = if body.len() > 2000 {
            format!("{}…", &body[..2000])
        } else {
            body
        };
        format!(
            "{} {} {:?}\n{}",
            self.status, self.reason, self.headers, body
        )
    }
}

pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Conn {
    pub fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn set_timeout(&mut self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Read one CRLF-terminated line (without CRLF). Err(UnexpectedEof) on EOF.
    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                let mut s = latin1(&line);
                if s.ends_with('\r') {
                    s.pop();
                }
                return Ok(s);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF while reading a line",
                ));
            }
        }
    }

    /// Read exactly n bytes; returns what was read if EOF comes first (and false).
    fn read_exact_n(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<bool> {
        let mut need = n;
        while need > 0 {
            if self.available().is_empty() && self.fill()? == 0 {
                return Ok(false);
            }
            let take = need.min(self.available().len());
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            need -= take;
        }
        Ok(true)
    }

    /// Read status line + headers of the next response head (may be an interim 1xx). The head
    /// is parsed by httparse, which rejects what a lenient split would let through (a header
    /// name that is not a token, a control byte in a value, a malformed status line).
    pub fn read_head(&mut self) -> io::Result<Response> {
        loop {
            if let Some(r) = self.parse_head()? {
                return Ok(r);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF while reading a response head",
                ));
            }
        }
    }

    /// The response head at the start of the unread bytes, consumed, or None while partial.
    fn parse_head(&mut self) -> io::Result<Option<Response>> {
        let mut slots = 64;
        loop {
            let mut headers = vec![httparse::EMPTY_HEADER; slots];
            let mut head = httparse::Response::new(&mut headers);
            let len = match head.parse(self.available()) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) if slots < 1 << 16 => {
                    slots *= 4;
                    continue;
                }
                Err(e) => {
                    let line = self
                        .available()
                        .split(|&b| b == b'\n')
                        .next()
                        .unwrap_or(b"");
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad response head ({e}), first line {:?}", latin1(line)),
                    ));
                }
            };
            let r = Response {
                version: format!("HTTP/1.{}", head.version.unwrap_or(1)),
                status: head.code.unwrap_or(0),
                reason: head.reason.unwrap_or("").to_string(),
                headers: head
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            latin1(h.value).trim_matches([' ', '\t']).into(),
                        )
                    })
                    .collect(),
                ..Default::default()
            };
            self.pos += len;
            return Ok(Some(r));
        }
    }

    /// Read a full response (skipping and recording interim 1xx responses).
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let mut r = self.read_head()?;
            if (100..200).contains(&r.status) {
                interim.push(r.status);
                continue;
            }
            r.interim = interim;
            r.client_port = self.local_port();
            self.read_body(&mut r, head_request)?;
            return Ok(r);
        }
    }

    /// Read the body of a response whose head was read by `read_head`.
    pub fn read_body(&mut self, r: &mut Response, head_request: bool) -> io::Result<()> {
        if head_request || r.status == 204 || r.status == 304 || (100..200).contains(&r.status) {
            r.complete = true;
            return Ok(());
        }
        let te = r
            .header("Transfer-Encoding")
            .map(|s| s.to_ascii_lowercase());
        if te
            .as_deref()
            .map(|t| t.contains("chunked"))
            .unwrap_or(false)
        {
            r.chunked = true;
            loop {
                let line = match self.read_line() {
                    Ok(l) => l,
                    Err(e) if is_eof_like(&e) => {
                        r.error = Some(format!("EOF before chunk size: {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let size_s = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_s, 16).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size {line:?}"),
                    )
                })?;
                if size == 0 {
                    // trailers
                    loop {
                        match self.read_line() {
                            Ok(l) if l.is_empty() => break,
                            Ok(_) => continue,
                            Err(e) if is_eof_like(&e) => {
                                r.error = Some("EOF in trailers".into());
                                return Ok(());
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    r.complete = true;
                    return Ok(());
                }
                match self.read_exact_n(size, &mut r.body) {
                    Ok(true) => {}
                    Ok(false) => {
                        r.error = Some("EOF inside chunk".into());
                        return Ok(());
                    }
                    Err(e) if is_eof_like(&e) => {
                        r.error = Some(format!("error inside chunk: {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                match self.read_line() {
                    Ok(l) if l.is_empty() => {}
                    Ok(l) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("junk after chunk {l:?}"),
                        ));
                    }
                    Err(e) if is_eof_like(&e) => {
                        r.error = Some("EOF after chunk".into());
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        } else if let Some(cl) = r.header("Content-Length") {
            let n: usize = cl
                .trim()
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
            match self.read_exact_n(n, &mut r.body) {
                Ok(true) => r.complete = true,
                Ok(false) => r.error = Some(format!("EOF after {} of {} bytes", r.body.len(), n)),
                Err(e) if is_eof_like(&e) => {
                    r.error = Some(format!("{e} after {} of {n} bytes", r.body.len()))
                }
                Err(e) => return Err(e),
            }
            Ok(())
        } else {
            // close-delimited
            loop {
                let avail = self.available().len();
                if avail > 0 {
                    r.body.extend_from_slice(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                }
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if is_eof_like(&e) => {
                        r.error = Some(format!("{e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            r.complete = true;
            Ok(())
        }
    }

    /// Read and discard a body of `Content-Length`/chunked/close framing, counting bytes
    /// (for huge responses). Returns (bytes, complete).
    pub fn drain_body(&mut self, r: &Response) -> io::Result<(u64, bool)> {
        let mut total: u64 = 0;
        let chunked = r
            .header("Transfer-Encoding")
            .map(|t| t.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false);
        if chunked {
            loop {
                let line = self.read_line()?;
                let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size {line:?}"),
                        )
                    })?;
                if size == 0 {
                    while !self.read_line()?.is_empty() {}
                    return Ok((total, true));
                }
                let mut left = size;
                while left > 0 {
                    if self.available().is_empty() && self.fill()? == 0 {
                        return Ok((total, false));
                    }
                    let take = (left as usize).min(self.available().len());
                    self.pos += take;
                    left -= take as u64;
                    total += take as u64;
                }
                self.read_line()?;
            }
        } else {
            let want: Option<u64> = r.header("Content-Length").and_then(|v| v.parse().ok());
            loop {
                if let Some(w) = want {
                    if total >= w {
                        return Ok((total, true));
                    }
                }
                if self.available().is_empty() && self.fill()? == 0 {
                    return Ok((total, want.is_none()));
                }
                let mut take = self.available().len();
                if let Some(w) = want {
                    take = take.min((w - total) as usize);
                }
                self.pos += take;
                total += take as u64;
            }
        }
    }

    /// True if the peer closed the connection within `timeout` (EOF or reset) without sending
    /// more data. Data arriving is reported as Err.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<bool, Vec<u8>> {
        if !self.available().is_empty() {
            return Err(self.available().to_vec());
        }
        let old = self.stream.read_timeout().ok().flatten();
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut tmp = [0u8; 4096];
        let res = match self.stream.read(&mut tmp) {
            Ok(0) => Ok(true),
            Ok(n) => Err(tmp[..n].to_vec()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(false)
            }
            Err(_) => Ok(true),
        };
        self.stream.set_read_timeout(old).unwrap();
        res
    }
}

/// Bytes as latin-1 text: each byte is the char of that code point, as HTTP heads are read.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn is_eof_like(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Encode a request with the given method, path, headers and body (adds Host).
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut b = req.into_bytes();
    b.extend_from_slice(body);
    b
}

/// Chunked transfer encoding of `body` in pieces of `piece` bytes.
pub fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Deterministic pseudo-random bytes.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A unique token for marker files.
pub fn token(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

// ---------------------------------------------------------------------------------------------
// Checking bodies and reading the apps' JSON answers
// ---------------------------------------------------------------------------------------------

/// Lower-case hex SHA-256 of `data` (the apps report the hashes of the bodies they read).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A JSON document, as the apps answer.
pub type Json = serde_json::Value;

/// The accessors the tests read [`Json`] with: each panics with the document when the key is
/// missing or the value has another type, so a failing assertion shows what the app sent.
pub trait JsonExt {
    /// Parse a whole document.
    fn parse(s: &str) -> Result<Json, String>;
    /// `obj[key]`, panicking with the object when missing.
    fn at(&self, key: &str) -> &Json;
    /// The string this value is.
    fn str(&self) -> &str;
    /// `obj[key]` as a string.
    fn s(&self, key: &str) -> &str;
    /// `obj[key]` as a string, `None` when missing or not a string.
    fn opt_s(&self, key: &str) -> Option<&str>;
    /// The number this value is.
    fn num(&self) -> f64;
    /// `obj[key]` as a number.
    fn n(&self, key: &str) -> f64;
    /// `obj[key]` as a bool.
    fn b(&self, key: &str) -> bool;
    /// The array this value is.
    fn arr(&self) -> &Vec<Json>;
    /// The object this value is.
    fn obj(&self) -> &serde_json::Map<String, Json>;
    /// The keys of the object this value is, sorted.
    fn keys(&self) -> Vec<String>;
}

/// The process pids of a `mod_wsgi.server_metrics()` answer (its key list and pids, as the
/// apps return them), after asserting that its keys include `keys`.
pub fn server_metrics_pids(sm: &Json, keys: &[&str]) -> Vec<u32> {
    let have: Vec<&str> = sm.at("keys").arr().iter().map(Json::str).collect();
    for k in keys {
        assert!(have.contains(k), "server_metrics() lacks {k}: {sm}");
    }
    sm.at("pids").arr().iter().map(|p| p.num() as u32).collect()
}

impl JsonExt for Json {
    fn parse(s: &str) -> Result<Json, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }
    fn at(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("key {key:?} missing in {self}"))
    }
    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }
    fn s(&self, key: &str) -> &str {
        self.at(key).str()
    }
    fn opt_s(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Json::as_str)
    }
    fn num(&self) -> f64 {
        self.as_f64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }
    fn n(&self, key: &str) -> f64 {
        self.at(key).num()
    }
    fn b(&self, key: &str) -> bool {
        let v = self.at(key);
        v.as_bool().unwrap_or_else(|| panic!("not a bool: {v}"))
    }
    fn arr(&self) -> &Vec<Json> {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }
    fn obj(&self) -> &serde_json::Map<String, Json> {
        self.as_object()
            .unwrap_or_else(|| panic!("not an object: {self}"))
    }
    fn keys(&self) -> Vec<String> {
        self.obj().keys().cloned().collect()
    }
}
