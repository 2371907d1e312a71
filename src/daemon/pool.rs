//! The Apache child's idle daemon connections, kept for the next request to the same group.
//!
//! Keyed by socket and secret, so a new generation (graceful restart) never reuses the old
//! one's connections. Last in, first out: the most recently used connection is the one most
//! likely still open, and the stack is ordered by age, oldest at the bottom. A connection
//! idle [`MAX_IDLE`] is never used: each take and put closes those at the bottom that
//! reached it. One the daemon has given up (its `Closing` frame or end of stream waiting) is
//! never used either.

use super::Group;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle connection is kept. It stops an Apache child that sees little traffic
/// from holding connections (and a daemon's descriptors) for long; the daemon gives up a
/// connection idle a little longer ([`DAEMON_IDLE`]).
pub const MAX_IDLE: Duration = Duration::from_secs(60);
/// When the daemon gives up an idle connection: after the child stopped reusing it, so the
/// two rarely cross (and when they do, the child sees `Closing` and sends the request again).
pub const DAEMON_IDLE: Duration = MAX_IDLE.saturating_add(Duration::from_secs(2));
/// Idle connections kept per group: more than the threads of a child ever use at once.
pub const MAX_KEPT: usize = 64;

type Idle = Vec<(UnixStream, Instant)>;

struct Slot {
    socket: PathBuf,
    secret: Vec<u8>,
    idle: Idle,
}

static POOL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// Takes out of `idle` (oldest first, as [`put`] stacks them) the connections idle
/// [`MAX_IDLE`] or longer at `now`, for the caller to close once the lock is released.
fn expire(idle: &mut Idle, now: Instant) -> Idle {
    let stale =
        idle.partition_point(|(_, since)| now.saturating_duration_since(*since) >= MAX_IDLE);
    idle.drain(..stale).collect()
}

/// An idle connection to `g` that the daemon has not given up, if there is one.
pub fn take(g: &Group) -> Option<UnixStream> {
    loop {
        // Connections are checked (a system call) and closed outside the lock, which every
        // request of the child takes.
        let (top, _stale) = {
            let mut pool = POOL.lock().ok()?;
            let slot = pool
                .iter_mut()
                .find(|s| s.socket == g.socket && s.secret == g.secret)?;
            let stale = expire(&mut slot.idle, Instant::now());
            (slot.idle.pop(), stale)
        };
        let (conn, _) = top?;
        if !super::os::readable_or_closed(conn.as_raw_fd()) {
            return Some(conn);
        }
    }
}

/// Keeps `conn`, whose last exchange with `g` ended cleanly, for the next request.
pub fn put(g: &Group, conn: UnixStream) {
    // Declared first, so dropped (closed) after the lock is released; so is `conn` when the
    // pool is full.
    let _stale;
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
    let now = Instant::now();
    _stale = expire(idle, now);
    if idle.len() < MAX_KEPT {
        idle.push((conn, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_idle_the_limit_leave_from_the_bottom() {
        let now = Instant::now() + MAX_IDLE * 2;
        let ages = [
            MAX_IDLE * 2,
            MAX_IDLE,
            MAX_IDLE - Duration::from_millis(1),
            Duration::ZERO,
        ];
        let mut idle: Idle = ages
            .iter()
            .map(|&age| (UnixStream::pair().unwrap().0, now - age))
            .collect();
        let kept: Vec<Instant> = idle[2..].iter().map(|(_, t)| *t).collect();
        let stale = expire(&mut idle, now);
        assert_eq!(stale.len(), 2);
        assert_eq!(idle.iter().map(|(_, t)| *t).collect::<Vec<_>>(), kept);
        // Nothing more is due at the same instant.
        assert!(expire(&mut idle, now).is_empty());
        assert_eq!(idle.len(), 2);
    }
}
