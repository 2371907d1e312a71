//! The Apache child's idle daemon connections, kept for the next request to the same group.
//!
//! Keyed by socket and secret, so a new generation (graceful restart) never reuses the old
//! one's connections. Last in, first out: the most recently used connection is the one most
//! likely still open. A connection idle longer than [`MAX_IDLE`] is dropped when met, and
//! one the daemon has given up (its `Closing` frame or end of stream waiting) is never used.

use super::Group;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle connection is kept. The daemon waits on an idle connection without
/// limit; the bound only stops an Apache child that sees little traffic from holding
/// connections (and a daemon's descriptors) for long.
pub const MAX_IDLE: Duration = Duration::from_secs(60);
/// Idle connections kept per group: more than the threads of a child ever use at once.
const MAX_KEPT: usize = 64;

struct Slot {
    socket: PathBuf,
    secret: Vec<u8>,
    idle: Vec<(UnixStream, Instant)>,
}

static POOL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// An idle connection to `g` that the daemon has not given up, if there is one.
pub fn take(g: &Group) -> Option<UnixStream> {
    loop {
        let (conn, since) = {
            let mut pool = POOL.lock().ok()?;
            let slot = pool
                .iter_mut()
                .find(|s| s.socket == g.socket && s.secret == g.secret)?;
            slot.idle.pop()?
        };
        // Checked (a system call) and dropped outside the lock, which every request of the
        // child takes.
        if since.elapsed() < MAX_IDLE && !super::os::readable_or_closed(conn.as_raw_fd()) {
            return Some(conn);
        }
    }
}

/// Keeps `conn`, whose last exchange with `g` ended cleanly, for the next request.
pub fn put(g: &Group, conn: UnixStream) {
    let Ok(mut pool) = POOL.lock() else {
        return;
    };
    let at = match pool
        .iter()
        .position(|s| s.socket == g.socket && s.secret == g.secret)
    {
        Some(i) => i,
        None => {
            // A slot of an older generation for the same socket is of no more use.
            pool.retain(|s| s.socket != g.socket);
            pool.push(Slot {
                socket: g.socket.clone(),
                secret: g.secret.clone(),
                idle: Vec::new(),
            });
            pool.len() - 1
        }
    };
    let idle = &mut pool[at].idle;
    if idle.len() < MAX_KEPT {
        idle.push((conn, Instant::now()));
    }
    // Otherwise `conn` closes after the lock is released: parameters drop after locals.
}
