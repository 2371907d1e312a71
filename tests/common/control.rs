//! Driving a running test server's life cycle from a test: `apache2 -k graceful|restart` and
//! waiting, with a bound, for given processes to exit.

use super::Server;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sends `apache2 -f CONF -k <what>` (graceful, restart) and panics if the command fails.
pub fn signal(s: &Server, what: &str) {
    let out = Command::new(super::APACHE)
        .arg("-f")
        .arg(&s.conf)
        .args(["-k", what])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .output()
        .unwrap_or_else(|e| panic!("apache2 -k {what}: {e}"));
    assert!(
        out.status.success(),
        "apache2 -k {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until none of `pids` is alive; how long that took from `since`, or `None` if some
/// were still alive at `since + limit`.
pub fn wait_exited(pids: &[u32], since: Instant, limit: Duration) -> Option<Duration> {
    let alive = |p: &u32| std::path::Path::new(&format!("/proc/{p}")).exists();
    loop {
        if !pids.iter().any(alive) {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
