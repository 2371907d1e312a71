//! Running one behaviour test in both modes: embedded (the app runs in the Apache children) and
//! daemon (the same config, with every request delegated to one `WSGIDaemonProcess` group).
//!
//! A test written as `fn name(mode: Mode)` and listed in [`both_modes!`](crate::both_modes)
//! becomes the tests `embedded::name` and `daemon::name`; it starts its server with
//! `server(..).mode(mode)` and branches on `srv.mode` only where the two modes differ by design
//! (the process that runs the app, `wsgi.multithread`/`wsgi.multiprocess`,
//! `mod_wsgi.process_group`).

use super::{Builder, Server};
use std::time::{Duration, Instant};

/// Where the app runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In the Apache children (no process group).
    Embedded,
    /// In the daemon process group [`DAEMON_GROUP`], one process of [`Builder::threads`] threads.
    Daemon,
}

/// The daemon process group a [`Mode::Daemon`] server delegates to.
pub const DAEMON_GROUP: &str = "rwsgi-test";

/// Keys mod_wsgi 4.9.4 adds in daemon mode only (its daemon's counters and microsecond
/// strings). Deliberate difference: mod_rwsgi gives an app one key set in both modes (its
/// `mod_wsgi.queue_start`/`daemon_start` are the 6.x floats, set in both modes, 0.0
/// embedded), so a comparison with the reference in daemon mode leaves these out.
pub const MOD_WSGI_494_DAEMON_ONLY_KEYS: &[&str] = &[
    "mod_wsgi.daemon_connects",
    "mod_wsgi.daemon_restarts",
    "mod_wsgi.daemon_start",
    "mod_wsgi.queue_start",
];

impl Mode {
    /// The name used in test names and temp dirs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Daemon => "daemon",
        }
    }

    /// What the app sees as `mod_wsgi.process_group`.
    pub fn process_group(self) -> &'static str {
        match self {
            Mode::Embedded => "",
            Mode::Daemon => DAEMON_GROUP,
        }
    }
}

impl Builder {
    /// Serve every app of this config in `mode`. Daemon mode appends, in the main server
    /// (after every fragment and `conf` line, so outside any `<VirtualHost>`), a group of one
    /// process with the builder's thread count and a main-server `WSGIProcessGroup`, which
    /// each virtual host inherits unless it names its own. `process-group=` on an alias
    /// (e.g. `%{GLOBAL}`) still wins, as it does in mod_wsgi. One process (no `processes=`)
    /// keeps `wsgi.multiprocess` False, as mod_wsgi does.
    pub fn mode(mut self, mode: Mode) -> Self {
        if self.mode != mode {
            self.name = format!("{}_{}", self.name, mode.name());
        }
        self.mode = mode;
        self
    }

    /// The config text [`Builder::mode`] adds at the end of the main server.
    pub(super) fn mode_conf(&self) -> String {
        match self.mode {
            Mode::Embedded => String::new(),
            Mode::Daemon => format!(
                "\n# ---- daemon mode (tests/common/modes.rs)\n\
                 WSGIDaemonProcess {DAEMON_GROUP} threads={}\n\
                 WSGIProcessGroup {DAEMON_GROUP}\n",
                self.threads
            ),
        }
    }
}

impl Server {
    /// Pids of the processes that run the apps: the Apache children in embedded mode, the
    /// live processes of [`DAEMON_GROUP`] in daemon mode (waiting up to 5 s for the first).
    pub fn app_pids(&self) -> Vec<u32> {
        match self.mode {
            Mode::Embedded => self.child_pids(),
            Mode::Daemon => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let pids = self.daemon_pids(DAEMON_GROUP);
                    if !pids.is_empty() || Instant::now() > deadline {
                        return pids;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Live processes of daemon group `group`, from its "started process" log lines.
    pub fn daemon_pids(&self, group: &str) -> Vec<u32> {
        let needle = format!("daemon process group '{group}' started process ");
        let children = self.child_pids();
        let mut pids: Vec<u32> = self
            .error_log_text()
            .lines()
            .filter_map(|l| l.split(&needle).nth(1))
            .filter_map(|rest| rest.trim().parse().ok())
            .filter(|pid| children.contains(pid))
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    /// The one process that runs the apps (a single-process server, or daemon mode).
    pub fn app_pid(&self) -> u32 {
        match self.app_pids()[..] {
            [pid] => pid,
            ref pids => panic!(
                "expected one {} app process, found {pids:?}",
                self.mode.name()
            ),
        }
    }

    /// Pids of the Apache children, without the daemon processes the parent also forked.
    pub fn apache_child_pids(&self) -> Vec<u32> {
        let daemons = self.daemon_pids(DAEMON_GROUP);
        self.child_pids()
            .into_iter()
            .filter(|p| !daemons.contains(p))
            .collect()
    }
}

/// Expands test functions `fn name(mode: Mode)` (defined in the same file, without `#[test]`)
/// into the tests `embedded::name` and `daemon::name`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::modes::Mode::Embedded)
                }
            )+
        }
        mod daemon {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::modes::Mode::Daemon)
                }
            )+
        }
    };
}
