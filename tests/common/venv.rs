//! Test venvs from PyPI: made with the system python3 (decisions.md §2) and `pip install` of
//! pinned requirements, once per machine under `/var/tmp/rwsgi-test-venv-<hash of the
//! requirements>`, under a lock file so parallel tests and test binaries don't race, and
//! reused. Building one needs PyPI: when PyPI cannot be reached the tests FAIL, they do not
//! skip.

use super::tail;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The interpreter every test venv is made from (decisions.md §2).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Flask and what it needs, pinned (versions that support Python 3.11).
pub const FLASK: &[&str] = &[
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "itsdangerous==2.2.0",
    "click==8.5.1",
    "blinker==1.9.0",
];

/// Django and what it needs, pinned (Django 6 needs Python 3.12).
pub const DJANGO: &[&str] = &["django==5.2.19", "asgiref==3.13.0", "sqlparse==0.6.1"];

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

fn requirements_text(requirements: &[&str]) -> String {
    // The venv is rebuilt when the system python3 changes its minor version.
    let real = fs::canonicalize(SYSTEM_PYTHON).unwrap_or_else(|_| SYSTEM_PYTHON.into());
    let mut s = format!("python={SYSTEM_PYTHON} ({})\n", real.display());
    for r in requirements {
        s.push_str(r);
        s.push('\n');
    }
    s
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

/// The venv holding exactly `requirements`, built on first use; `check` is Python run in it
/// afterwards (imports that prove the install works), `what` names it in messages.
pub fn pip_venv(what: &str, requirements: &[&str], check: &str) -> PathBuf {
    let reqs = requirements_text(requirements);
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
        "building the {what} test venv {} (once per machine)",
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
            .args(requirements)
            .env_remove("PYTHONHOME")
            .env_remove("PYTHONPATH")
            .env_remove("PIP_REQUIRE_VIRTUALENV"),
        &format!("pip install of the {what} test requirements from PyPI"),
        "these tests need PyPI to build their venv once per machine; is PyPI reachable?",
    );
    // www-data runs the apps: everything world-readable, dirs and programs world-executable.
    run_logged(
        Command::new("chmod").arg("-R").arg("a+rX").arg(&dir),
        "chmod of the test venv",
        "",
    );
    run_logged(
        Command::new(&py).args(["-c", check]),
        &format!("checking the {what} install in the fresh venv"),
        "",
    );
    let mut f = fs::File::create(&marker).unwrap();
    f.write_all(reqs.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o644)).unwrap();
    eprintln!("{what} test venv built in {:.1?}", started.elapsed());
    dir
}
