//! Parent side: turns the configured groups into this generation's runtime groups (socket,
//! secret, users) and decides how soon a dead daemon is replaced.

use super::{Group, os};
use crate::config::daemon::{DaemonGroup, ScriptOwner};
use crate::config::{ImportScript, PythonOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What the parent knows about its Apache children, for every group.
pub struct ParentFacts<'a> {
    /// The uid/gid Apache children run as.
    pub child_ids: (u32, u32),
    /// Apache's `Timeout`.
    pub apache_timeout: Duration,
    pub python: &'a PythonOptions,
    pub import_scripts: &'a [ImportScript],
    /// True when the parent runs as root (sockets are then given to the children's user).
    pub root: bool,
}

/// Where and under which names a generation's sockets are made.
pub struct Sockets {
    /// Absolute path prefix: `WSGISocketPrefix`, else the runtime directory's `rwsgi`.
    pub prefix: String,
    /// `WSGISocketRotation Off`: the secret the parent keeps for its whole life, so the
    /// names and the secret both stay the same across graceful restarts. `None`: rotation.
    pub stable_secret: Option<Vec<u8>>,
}

/// The socket path of group `name`: `<prefix>.<parent pid>.<tag>.<name>.sock`, where the
/// tag is a per-generation nonce when sockets rotate and `u<uid of the children>` otherwise.
pub fn socket_path(prefix: &str, tag: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("{prefix}.{}.{tag}.{name}.sock", os::pid()))
}

/// Creates the listening socket of each group.
pub fn prepare(
    defs: Vec<(DaemonGroup, usize)>,
    facts: &ParentFacts<'_>,
    sockets: &Sockets,
) -> Result<Vec<Arc<Group>>, String> {
    let tag: String = match sockets.stable_secret {
        None => os::random_bytes(4)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Some(_) => format!("u{}", facts.child_ids.0),
    };
    let mut out = Vec::with_capacity(defs.len());
    for (def, owner) in defs {
        check_chroot(&def, facts.root)?;
        let socket = socket_path(&sockets.prefix, &tag, &def.name);
        let owner_ids = if facts.root {
            let uid = match &def.socket_user {
                Some(u) => {
                    os::user(u)
                        .map_err(|e| {
                            format!("daemon process group '{}': socket-user: {e}", def.name)
                        })?
                        .uid
                }
                None => facts.child_ids.0,
            };
            Some((uid, facts.child_ids.1))
        } else {
            None
        };
        let buffers = (def.send_buffer_size, def.receive_buffer_size);
        let script_owner = match &def.script_owner {
            None => None,
            Some(ScriptOwner::User(u)) => Some((
                true,
                os::user(u)
                    .map_err(|e| format!("daemon process group '{}': script-user: {e}", def.name))?
                    .uid,
            )),
            Some(ScriptOwner::Group(g)) => Some((
                false,
                os::group(g).map_err(|e| {
                    format!("daemon process group '{}': script-group: {e}", def.name)
                })?,
            )),
        };
        let listener = os::listen_unix(&socket, def.listen_backlog, owner_ids, buffers)
            .map_err(|e| format!("daemon process group '{}': {e}", def.name))?;
        let mut python = facts.python.clone();
        python.process_group = def.name.clone();
        if let Some(h) = &def.python_home {
            python.home = Some(h.clone());
        }
        if let Some(h) = &def.home {
            python.path.push(h.clone());
        }
        python.path.extend(def.python_path.iter().cloned());
        if let Some(e) = &def.python_eggs {
            python.eggs = Some(e.clone());
        }
        if let Some(i) = def.switch_interval {
            python.switch_interval = Some(i);
        }
        let import_scripts = facts
            .import_scripts
            .iter()
            .filter(|s| s.process_group == def.name)
            .cloned()
            .collect();
        let io_timeout = if def.socket_timeout > 0 {
            Duration::from_secs(def.socket_timeout.into())
        } else {
            facts.apache_timeout
        };
        out.push(Arc::new(Group {
            owner,
            socket,
            secret: sockets
                .stable_secret
                .clone()
                .unwrap_or_else(|| os::random_bytes(16)),
            listener,
            io_timeout,
            child_uid: owner_ids.map_or(os::euid(), |(u, _)| u),
            child_ids: facts.child_ids,
            python,
            script_owner,
            import_scripts,
            def,
        }));
    }
    Ok(out)
}

/// `chroot=` needs root: only root may chroot (and must drop to a user afterwards).
fn check_chroot(def: &DaemonGroup, root: bool) -> Result<(), String> {
    match &def.chroot {
        Some(jail) if !root => Err(format!(
            "daemon process group '{}': chroot={jail} needs Apache to be started as root \
             (it runs as uid {}); remove chroot= or start Apache as root",
            def.name,
            os::euid()
        )),
        _ => Ok(()),
    }
}

/// How long a replacement waits before starting, given how long the dead daemon lived and
/// the wait before it: at once after a long life, doubling (0.5 s to 30 s) while daemons
/// keep dying young, so a broken group cannot make a fork storm.
/// `planned`: the daemon recycled itself (maximum-requests and the like) and exited 0.
pub fn next_delay(lived: Duration, previous: Duration, planned: bool) -> Duration {
    if planned || lived >= Duration::from_secs(10) {
        Duration::ZERO
    } else {
        (previous * 2).clamp(Duration::from_millis(500), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_while_dying_young_and_resets() {
        let young = Duration::from_millis(100);
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            d = next_delay(young, d, false);
            seen.push(d.as_millis());
        }
        assert_eq!(&seen[..4], &[500, 1000, 2000, 4000]);
        assert_eq!(*seen.last().unwrap(), 30_000);
        assert_eq!(
            next_delay(Duration::from_secs(60), d, false),
            Duration::ZERO
        );
        assert_eq!(next_delay(young, d, true), Duration::ZERO);
    }

    #[test]
    fn chroot_is_refused_unless_apache_runs_as_root() {
        let g = crate::config::daemon::parse("WSGIDaemonProcess", &["g", "chroot=/"]).unwrap();
        let e = check_chroot(&g, false).unwrap_err();
        assert!(
            e.contains("'g'") && e.contains("chroot=/") && e.contains("root"),
            "{e}"
        );
        assert!(check_chroot(&g, true).is_ok());
        let plain = crate::config::daemon::parse("WSGIDaemonProcess", &["g"]).unwrap();
        assert!(check_chroot(&plain, false).is_ok());
    }
}
