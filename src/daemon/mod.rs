//! Daemon mode: process groups forked by the Apache parent, requests relayed to them over a
//! UNIX socket with our own framing (`protocol`). `spawner` prepares a generation's groups in
//! the parent, `worker` is the daemon process, `client` the Apache child's side.

pub mod client;
pub mod os;
pub mod pool;
pub mod protocol;
pub mod spawner;
pub mod worker;

use crate::config::daemon::DaemonGroup;
use crate::config::{ImportScript, PythonOptions};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One group of the current configuration generation, as its processes and the Apache
/// children see it.
#[derive(Debug)]
pub struct Group {
    pub def: DaemonGroup,
    /// The virtual host that defined it (its `server_rec` address), 0 for the main server.
    pub owner: usize,
    pub socket: PathBuf,
    /// Proves a request comes from this generation's Apache children.
    pub secret: Vec<u8>,
    /// The listening socket (in the parent and the group's processes only).
    pub listener: RawFd,
    /// Per read/write on the socket: socket-timeout, else Apache's `Timeout`.
    pub io_timeout: Duration,
    /// The uid Apache children run as: the only peer the daemon accepts.
    pub child_uid: u32,
    /// The uid/gid Apache children run as (the daemon's default user).
    pub child_ids: (u32, u32),
    /// The main server's Python options, with python-home/python-path applied.
    pub python: PythonOptions,
    /// `script-user=`/`script-group=` resolved: (true for a user, the uid or gid).
    pub script_owner: Option<(bool, u32)>,
    /// `WSGIImportScript` lines naming this group.
    pub import_scripts: Vec<ImportScript>,
}

/// The groups of the current generation. The Apache parent fills it in post_config before
/// forking anything, so children and daemons inherit it; plain data, replaced each time.
static GROUPS: Mutex<Vec<Arc<Group>>> = Mutex::new(Vec::new());

/// Makes `groups` the current generation's.
pub fn install(groups: Vec<Arc<Group>>) {
    if let Ok(mut g) = GROUPS.lock() {
        *g = groups;
    }
}

/// Every group of the current generation.
pub fn all() -> Vec<Arc<Group>> {
    GROUPS.lock().map(|g| g.clone()).unwrap_or_default()
}

/// Why a request cannot use a group.
pub enum Lookup {
    Unknown,
    /// Defined in another virtual host.
    Elsewhere,
}

/// The group a request in server `server` (0: main) may use under `name`.
pub fn find(name: &str, server: usize) -> Result<Arc<Group>, Lookup> {
    let all = GROUPS.lock().map_err(|_| Lookup::Unknown)?;
    let g = all
        .iter()
        .find(|g| g.def.name == name)
        .ok_or(Lookup::Unknown)?;
    if g.owner == 0 || g.owner == server {
        Ok(g.clone())
    } else {
        Err(Lookup::Elsewhere)
    }
}
