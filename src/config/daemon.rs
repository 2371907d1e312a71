//! `WSGIDaemonProcess name [key=value ...]`: every option of mod_wsgi's parser, validated.
//! Options this version does not act on yet are kept by name so start-up can say so.

/// A user or group given by name or as `#number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ident {
    Name(String),
    Id(u32),
}

/// The owner `script-user=` or `script-group=` requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOwner {
    User(Ident),
    Group(Ident),
}

/// One daemon process group as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonGroup {
    pub name: String,
    pub processes: u32,
    /// True when `processes=` was given at all (mod_wsgi's `wsgi.multiprocess` rule).
    pub processes_set: bool,
    /// Request threads per process; 0 makes a service-script group (no requests).
    pub threads: u32,
    pub user: Option<Ident>,
    pub group: Option<Ident>,
    pub supplementary_groups: Vec<Ident>,
    pub umask: Option<u32>,
    pub home: Option<String>,
    /// `chroot=` (deprecated, as in mod_wsgi): the existing directory the processes are
    /// jailed in, without a trailing `/`; Apache must start as root.
    pub chroot: Option<String>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    pub python_home: Option<String>,
    pub python_path: Vec<String>,
    pub connect_timeout: u32,
    /// 0: Apache's `Timeout`.
    pub socket_timeout: u32,
    pub shutdown_timeout: u32,
    /// `display-name=`: the process title (`%{GROUP}` gives `(wsgi:NAME)`).
    pub display_name: Option<String>,
    pub python_eggs: Option<String>,
    pub switch_interval: Option<f64>,
    /// Request thread stack size in bytes.
    pub stack_size: Option<usize>,
    pub cpu_priority: Option<i32>,
    /// `RLIMIT_DATA`, `RLIMIT_AS` (bytes) and `RLIMIT_CPU` (seconds); 0 is no limit.
    pub memory_limit: u64,
    pub virtual_memory_limit: u64,
    pub cpu_time_limit: u64,
    /// Answer 504 without running the app when a request waited longer than this (seconds,
    /// from Apache receiving it to a daemon thread taking it; 0: never).
    pub queue_timeout: u64,
    /// Longest response header line (`Name: value`) a daemon may send (0: no limit).
    pub header_buffer_size: u32,
    /// For the Apache child's relay of the response (parsed and validated; not acted on yet):
    /// force a flush after this many unflushed bytes (0: 8 MiB, mod_wsgi 6.0.2's default).
    pub response_buffer_size: u32,
    /// Seconds a write of the response to the client may take (0: socket-timeout).
    pub response_socket_timeout: u64,
    /// Milliseconds to wait for more of the response before flushing to the client.
    pub response_flush_delay_ms: u64,
    /// `SO_SNDBUF`/`SO_RCVBUF` of the group's socket (0: the system's).
    pub send_buffer_size: u32,
    pub receive_buffer_size: u32,
    /// Recycle (drain, then exit and be replaced) after this many requests (0: never).
    pub maximum_requests: u64,
    /// Recycle when one request has run longer than this × (1 + ln threads) seconds (0:
    /// never): a fail-safe against wedged requests.
    pub request_timeout: u64,
    /// With request-timeout: raise `mod_wsgi.RequestTimeout` in the request first and give
    /// it this many seconds to unwind before the process restarts (0: restart at once).
    pub interrupt_timeout: u64,
    /// Restart the process when the GIL could not be had for this many seconds (0: never).
    pub deadlock_timeout: u64,
    /// Restart the process when no WSGI script has loaded this many seconds after its first
    /// request (0: never); the timer ends at the first successful load.
    pub startup_timeout: u64,
    /// Recycle after this many seconds of life (0: never).
    pub restart_interval: u64,
    /// Recycle after this many seconds without a request (0: never).
    pub inactivity_timeout: u64,
    /// How long a retiring daemon (graceful restart) may take to finish its requests.
    pub graceful_timeout: u32,
    /// The drain bound when an operator sends SIGUSR1 to a daemon (0: graceful-timeout).
    pub eviction_timeout: u32,
    pub listen_backlog: u32,
    pub socket_user: Option<Ident>,
    /// `server-metrics=On`: `mod_wsgi.server_metrics()` answers in this group's processes.
    pub server_metrics: bool,
    /// `script-user=` / `script-group=`: who must own the script and its directory.
    pub script_owner: Option<ScriptOwner>,
}

impl DaemonGroup {
    /// The process title `display-name=` asks for, if any.
    pub fn title(&self) -> Option<String> {
        self.display_name.as_ref().map(|d| {
            if d == "%{GROUP}" {
                format!("(wsgi:{})", self.name)
            } else {
                d.clone()
            }
        })
    }

    /// `path` as the processes see it inside their `chroot=` jail: the jail's directory
    /// stripped. A path outside the jail (or no jail) is left as it is.
    pub fn in_jail<'p>(&self, path: &'p [u8]) -> &'p [u8] {
        let Some(root) = self.chroot.as_deref().filter(|r| *r != "/") else {
            return path;
        };
        match path.strip_prefix(root.as_bytes()) {
            Some([]) => b"/",
            Some(rest) if rest.starts_with(b"/") => rest,
            _ => path,
        }
    }

    /// `threads=0`: the processes only run the group's `WSGIImportScript` service scripts.
    pub fn is_service(&self) -> bool {
        self.threads == 0
    }

    fn new(name: &str) -> Self {
        DaemonGroup {
            name: name.to_string(),
            processes: 1,
            processes_set: false,
            threads: 15,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            umask: None,
            home: None,
            chroot: None,
            lang: None,
            locale: None,
            python_home: None,
            python_path: Vec::new(),
            connect_timeout: 15,
            socket_timeout: 0,
            shutdown_timeout: 5,
            graceful_timeout: 15,
            eviction_timeout: 0,
            display_name: None,
            python_eggs: None,
            switch_interval: None,
            stack_size: None,
            cpu_priority: None,
            memory_limit: 0,
            virtual_memory_limit: 0,
            cpu_time_limit: 0,
            queue_timeout: 0,
            header_buffer_size: 0,
            response_buffer_size: 0,
            response_socket_timeout: 0,
            response_flush_delay_ms: 5,
            send_buffer_size: 0,
            receive_buffer_size: 0,
            maximum_requests: 0,
            request_timeout: 0,
            interrupt_timeout: 0,
            deadlock_timeout: 300,
            startup_timeout: 0,
            restart_interval: 0,
            inactivity_timeout: 0,
            listen_backlog: 100,
            socket_user: None,
            script_owner: None,
            server_metrics: false,
        }
    }
}

/// Every option name, for the "unknown option" message.
const KNOWN: &str = "processes, threads, user, group, supplementary-groups, umask, home, chroot, \
    lang, locale, python-home, python-path, python-eggs, switch-interval, display-name, \
    maximum-requests, restart-interval, cpu-time-limit, cpu-priority, memory-limit, \
    virtual-memory-limit, stack-size, inactivity-timeout, request-timeout, interrupt-timeout, \
    deadlock-timeout, startup-timeout, graceful-timeout, eviction-timeout, shutdown-timeout, \
    connect-timeout, socket-timeout, queue-timeout, listen-backlog, socket-user, \
    send-buffer-size, receive-buffer-size, header-buffer-size, response-buffer-size, \
    response-socket-timeout, response-flush-delay, script-user, script-group, server-metrics";

fn int(d: &str, key: &str, v: &str, min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = v
        .parse()
        .map_err(|_| format!("{d}: option '{key}' needs a whole number, not '{v}'"))?;
    if n < min || n > max {
        return Err(format!(
            "{d}: option '{key}={v}' is out of range ({min}..{max})"
        ));
    }
    Ok(n)
}

fn ident(d: &str, key: &str, v: &str) -> Result<Ident, String> {
    match v.strip_prefix('#') {
        Some(n) => n
            .parse()
            .map(Ident::Id)
            .map_err(|_| format!("{d}: option '{key}={v}' is not a valid '#number'")),
        None => Ok(Ident::Name(v.to_string())),
    }
}

/// `chroot=`: an absolute path to an existing directory (a jail that is not there would
/// only show as daemons dying at every start).
fn jail(d: &str, v: &str) -> Result<String, String> {
    if !v.starts_with('/') {
        return Err(format!("{d}: option 'chroot={v}' must be an absolute path"));
    }
    if !std::path::Path::new(v).is_dir() {
        return Err(format!(
            "{d}: option 'chroot={v}' is not an existing directory"
        ));
    }
    let trimmed = v.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// A size option: 0 (the default) or at least `min`.
fn size(d: &str, key: &str, v: &str, min: i64) -> Result<u32, String> {
    let n = int(d, key, v, 0, i64::from(u32::MAX))?;
    if n != 0 && n < min {
        return Err(format!(
            "{d}: option '{key}={v}' is too small (0 or at least {min})"
        ));
    }
    Ok(n as u32)
}

/// Parses the arguments of one `WSGIDaemonProcess` line (`args[0]` is the group name).
pub fn parse(d: &str, args: &[&str]) -> Result<DaemonGroup, String> {
    let Some((name, opts)) = args.split_first() else {
        return Err(format!("{d} needs a process group name"));
    };
    if name.is_empty() || name.contains('=') || name.contains('/') {
        return Err(format!("{d}: '{name}' is not a valid process group name"));
    }
    if name.starts_with("%{") {
        return Err(format!(
            "{d}: '{name}' is reserved and cannot name a daemon process group"
        ));
    }
    let mut g = DaemonGroup::new(name);
    let mut seen: Vec<String> = Vec::new();
    let secs = |key: &str, v: &str| int(d, key, v, 0, i64::from(u32::MAX)).map(|n| n as u32);
    for arg in opts {
        // mod_wsgi-express writes python-path='' when no path is given; mod_wsgi accepts it.
        let (key, v) = match arg.split_once('=') {
            Some((k, "")) if k.eq_ignore_ascii_case("python-path") => {
                ("python-path".to_string(), "")
            }
            _ => super::words::option(d, arg, "see the WSGIDaemonProcess documentation")?,
        };
        let k = key.as_str();
        if seen.contains(&key) {
            return Err(format!("{d}: option '{key}' is given twice"));
        }
        seen.push(key.clone());
        match key.as_str() {
            "processes" => {
                g.processes = int(d, &key, v, 1, 10_000)? as u32;
                g.processes_set = true;
            }
            "threads" => {
                g.threads = int(d, &key, v, 0, 65533)? as u32;
            }
            "user" => g.user = Some(ident(d, &key, v)?),
            "group" => g.group = Some(ident(d, &key, v)?),
            "socket-user" => g.socket_user = Some(ident(d, &key, v)?),
            "supplementary-groups" => {
                for part in v.split(',') {
                    if part.is_empty() {
                        return Err(format!("{d}: option '{key}={v}' has an empty group"));
                    }
                    g.supplementary_groups.push(ident(d, &key, part)?);
                }
            }
            "umask" => {
                g.umask = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| format!("{d}: option 'umask={v}' is not an octal mask"))?,
                )
            }
            "home" => g.home = Some(v.to_string()),
            "lang" => g.lang = Some(v.to_string()),
            "locale" => g.locale = Some(v.to_string()),
            "python-home" => g.python_home = Some(v.to_string()),
            "python-path" => {
                g.python_path = v
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "connect-timeout" => g.connect_timeout = secs(&key, v)?,
            "socket-timeout" => g.socket_timeout = secs(&key, v)?,
            "shutdown-timeout" => g.shutdown_timeout = secs(&key, v)?,
            "graceful-timeout" => g.graceful_timeout = secs(&key, v)?,
            "eviction-timeout" => g.eviction_timeout = secs(&key, v)?,
            "listen-backlog" => g.listen_backlog = int(d, &key, v, 1, 65535)? as u32,
            "chroot" => g.chroot = Some(jail(d, v)?),
            "display-name" => g.display_name = Some(v.to_string()),
            "python-eggs" => g.python_eggs = Some(v.to_string()),
            "switch-interval" => {
                let f: f64 = v.parse().map_err(|_| {
                    format!("{d}: option 'switch-interval={v}' is not a number of seconds")
                })?;
                if f.is_nan() || f <= 0.0 {
                    return Err(format!(
                        "{d}: option 'switch-interval={v}' must be positive"
                    ));
                }
                g.switch_interval = Some(f);
            }
            "cpu-priority" => g.cpu_priority = Some(int(d, &key, v, -20, 20)? as i32),
            "stack-size" => {
                g.stack_size = Some(int(d, &key, v, 65536, i64::from(u32::MAX))? as usize)
            }
            "memory-limit" => g.memory_limit = int(d, &key, v, 0, i64::MAX)? as u64,
            "virtual-memory-limit" => g.virtual_memory_limit = int(d, &key, v, 0, i64::MAX)? as u64,
            "cpu-time-limit" => g.cpu_time_limit = int(d, &key, v, 0, i64::MAX)? as u64,
            "maximum-requests" => g.maximum_requests = int(d, &key, v, 0, i64::MAX)? as u64,
            "deadlock-timeout" => g.deadlock_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "interrupt-timeout" => g.interrupt_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "request-timeout" => g.request_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "restart-interval" => g.restart_interval = int(d, &key, v, 0, i64::MAX)? as u64,
            "inactivity-timeout" => g.inactivity_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "startup-timeout" => g.startup_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "response-socket-timeout" => {
                g.response_socket_timeout = int(d, &key, v, 0, i64::MAX)? as u64
            }
            "response-flush-delay" => {
                g.response_flush_delay_ms = int(d, &key, v, 0, i64::MAX)? as u64
            }
            "queue-timeout" => g.queue_timeout = int(d, &key, v, 0, i64::MAX)? as u64,
            "send-buffer-size" => g.send_buffer_size = size(d, &key, v, 512)?,
            "receive-buffer-size" => g.receive_buffer_size = size(d, &key, v, 512)?,
            "header-buffer-size" => g.header_buffer_size = size(d, &key, v, 8192)?,
            "response-buffer-size" => g.response_buffer_size = size(d, &key, v, 65536)?,
            "script-user" | "script-group" => {
                let other = if key == "script-user" {
                    "script-group"
                } else {
                    "script-user"
                };
                if seen.iter().any(|s| s == other) {
                    return Err(format!(
                        "{d}: only one of script-user= and script-group= may be given"
                    ));
                }
                let who = ident(d, &key, v)?;
                g.script_owner = Some(if key == "script-user" {
                    ScriptOwner::User(who)
                } else {
                    ScriptOwner::Group(who)
                });
            }
            "server-metrics" => {
                g.server_metrics = super::parse_on_off(&format!("{d} server-metrics="), v)?;
            }
            _ => {
                return Err(format!(
                    "{d}: unknown option '{k}'; valid options are {KNOWN}"
                ));
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "WSGIDaemonProcess";

    #[test]
    fn defaults_and_values() {
        let g = parse(D, &["site"]).unwrap();
        assert_eq!((g.processes, g.processes_set, g.threads), (1, false, 15));
        assert_eq!((g.connect_timeout, g.shutdown_timeout), (15, 5));
        let g = parse(
            D,
            &[
                "site",
                "processes=2",
                "threads=4",
                "user=#33",
                "group=www-data",
                "umask=0027",
                "python-path=/a:/b",
                "Display-Name=%{GROUP}",
            ],
        )
        .unwrap();
        assert_eq!((g.processes, g.processes_set, g.threads), (2, true, 4));
        assert!(!g.is_service());
        assert!(parse(D, &["svc", "threads=0"]).unwrap().is_service());
        assert_eq!(g.user, Some(Ident::Id(33)));
        assert_eq!(g.group, Some(Ident::Name("www-data".into())));
        assert_eq!(g.umask, Some(0o027));
        assert_eq!(g.python_path, vec!["/a", "/b"]);
        assert_eq!(g.display_name.as_deref(), Some("%{GROUP}"));
        // mod_wsgi-express writes python-path='' when no path is given.
        assert!(
            parse(D, &["site", "python-path="])
                .unwrap()
                .python_path
                .is_empty()
        );
        assert!(parse(D, &["site", "home="]).is_err());
        let g = parse(
            D,
            &[
                "g",
                "stack-size=1048576",
                "cpu-priority=-5",
                "maximum-requests=9",
                "graceful-timeout=3",
                "switch-interval=0.01",
            ],
        )
        .unwrap();
        assert_eq!(g.stack_size, Some(1 << 20));
        assert_eq!(g.cpu_priority, Some(-5));
        assert_eq!((g.maximum_requests, g.graceful_timeout), (9, 3));
        assert_eq!(g.switch_interval, Some(0.01));
        // The relay's options: the flush delay is in milliseconds (mod_wsgi 6.0.2).
        let g = parse(D, &["g"]).unwrap();
        assert_eq!(
            (
                g.response_buffer_size,
                g.response_socket_timeout,
                g.response_flush_delay_ms
            ),
            (0, 0, 5)
        );
        let g = parse(
            D,
            &[
                "g",
                "response-buffer-size=65536",
                "response-socket-timeout=30",
                "response-flush-delay=20",
            ],
        )
        .unwrap();
        assert_eq!(
            (
                g.response_buffer_size,
                g.response_socket_timeout,
                g.response_flush_delay_ms
            ),
            (65536, 30, 20)
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        for (arg, needle) in [
            ("processes=0", "processes"),
            ("threads=x", "threads"),
            ("threads=70000", "threads"),
            ("umask=9", "umask"),
            ("cpu-priority=30", "cpu-priority"),
            ("header-buffer-size=100", "header-buffer-size"),
            ("switch-interval=-1", "switch-interval"),
            ("server-metrics=maybe", "server-metrics"),
            ("user=#x", "user"),
            ("bogus=1", "bogus"),
            ("threads", "threads"),
            ("home=", "home"),
        ] {
            let e = parse(D, &["g", arg]).unwrap_err();
            assert!(e.contains(needle), "{arg}: {e}");
            assert!(e.starts_with(D), "{e}");
        }
        for (arg, needle) in [
            ("chroot=relative/dir", "absolute"),
            ("chroot=/no/such/jail", "not an existing directory"),
        ] {
            let e = parse(D, &["g", arg]).unwrap_err();
            assert!(e.contains(needle) && e.contains("chroot"), "{arg}: {e}");
        }
        for arg in [
            "response-buffer-size=65535",
            "response-flush-delay=-1",
            "response-flush-delay=0.5",
            "response-socket-timeout=-3",
        ] {
            let e = parse(D, &["g", arg]).unwrap_err();
            assert!(e.contains(arg.split('=').next().unwrap()), "{arg}: {e}");
        }
        assert!(parse(D, &["g", "threads=1", "threads=2"]).is_err());
        assert!(parse(D, &["g", "script-user=a", "script-group=b"]).is_err());
        assert!(parse(D, &[]).is_err());
        assert!(parse(D, &["%{GLOBAL}"]).is_err());
    }

    #[test]
    fn chroot_paths_are_seen_inside_the_jail() {
        let jail = std::env::temp_dir();
        let dir = jail.to_str().unwrap().trim_end_matches('/').to_string();
        let g = parse(D, &["g", &format!("chroot={dir}/")]).unwrap();
        assert_eq!(g.chroot.as_deref(), Some(dir.as_str()));
        let inside = format!("{dir}/site/app.wsgi");
        assert_eq!(g.in_jail(inside.as_bytes()), b"/site/app.wsgi");
        assert_eq!(g.in_jail(dir.as_bytes()), b"/");
        // A sibling sharing the prefix, and paths elsewhere, are not in the jail.
        let sibling = format!("{dir}x/app.wsgi");
        assert_eq!(g.in_jail(sibling.as_bytes()), sibling.as_bytes());
        assert_eq!(g.in_jail(b"/srv/app.wsgi"), b"/srv/app.wsgi");
        // `/` is a jail that changes nothing; no jail neither.
        let g = parse(D, &["g", "chroot=/"]).unwrap();
        assert_eq!(g.chroot.as_deref(), Some("/"));
        assert_eq!(g.in_jail(b"/srv/app.wsgi"), b"/srv/app.wsgi");
        let g = parse(D, &["g"]).unwrap();
        assert_eq!(g.in_jail(b"/srv/app.wsgi"), b"/srv/app.wsgi");
    }
}
