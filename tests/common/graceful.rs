//! Graceful restarts under load: `Server::graceful()` (waits until the new generation is up)
//! and a bounded keep-alive load of HTTP/1.1 clients that counts every request that did not
//! get a complete, correct 200.
//!
//! When a client may send a request again, and why:
//! - It opens a new connection instead of reusing one when the server ended the old one
//!   before the request was written: `Connection: close` in the previous response, or an EOF
//!   or reset that a non-blocking peek finds just before writing. Nothing was sent; this is
//!   not a retry.
//! - A request written on a reused keep-alive connection that ends before the first response
//!   byte is sent once more, on a new connection. This is the keep-alive close race of RFC
//!   9112 §9.3.1: a child in graceful stop closes the connections in its keep-alive queue, and
//!   a request that is on its way is discarded unread. No peek before writing can close that
//!   window. The test then proves the server never read it: every request carries a unique
//!   id, and Apache's access log, which gets a line for every request Apache parsed (also
//!   when the client is gone), must not contain it.
//! - Anything else after the first byte of a request was written is a failure: a cut or
//!   wrong response, a status other than 200, no response on a fresh connection, or no
//!   response to a request the server did read.

use super::{Conn, Server, apache_cmd, tail, token};
use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The line Apache logs when a generation is up (first start and every restart).
const GENERATION_UP: &str = "resuming normal operations";

/// Adds `graceful()` to the harness's server.
pub trait GracefulExt {
    /// `apache2 -k graceful`, then wait (bounded, 15 s) until the new generation is up.
    fn graceful(&self);
}

impl GracefulExt for Server {
    fn graceful(&self) {
        let before = self.error_log_text().matches(GENERATION_UP).count();
        let out = apache_cmd()
            .arg("-f")
            .arg(&self.conf)
            .args(["-k", "graceful"])
            .output()
            .expect("run apache2 -k graceful");
        assert!(
            out.status.success(),
            "apache2 -k graceful: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.error_log_text().matches(GENERATION_UP).count() <= before {
            assert!(
                Instant::now() < deadline,
                "no new generation 15 s after graceful; log tail:\n{}",
                tail(&self.error_log_text(), 30)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered with a complete 200 and the expected body.
    pub ok: u64,
    /// Every other outcome of a written request, except the one below.
    pub failures: Vec<String>,
    /// Request ids written on a reused keep-alive connection that the server closed without
    /// sending a byte back. Each was sent again, under a new id, on a new connection (and that
    /// one counts as ok or failure). `check_unanswered` proves Apache never read them.
    pub unanswered: Vec<String>,
    /// New connections opened because the server had ended the previous one first.
    pub reconnects: u64,
}

impl LoadReport {
    /// Failures, plus any `unanswered` request that Apache did read (its id is in the access
    /// log, which gets a line for every request Apache parsed, also when the client is gone).
    pub fn check_unanswered(&self, access_log: &str) -> Vec<String> {
        let mut bad = self.failures.clone();
        for id in &self.unanswered {
            if access_log.contains(&format!("id={id} ")) {
                bad.push(format!(
                    "{id}: read by the server, closed without a response"
                ));
            }
        }
        bad
    }
}

/// A path and the body it must answer with.
#[derive(Clone)]
pub struct Expect {
    pub path: String,
    pub body: Vec<u8>,
}

/// True when the server already ended this idle connection (EOF or reset pending), so a
/// request written now could not be served: checked without blocking.
fn closed_by_server(c: &Conn) -> io::Result<bool> {
    c.stream.set_nonblocking(true)?;
    let mut b = [0u8; 1];
    let res = match c.stream.peek(&mut b) {
        Ok(0) => Ok(true),
        Ok(_) => Err(io::Error::new(
            ErrorKind::InvalidData,
            "bytes from the server before any request was written",
        )),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            Ok(true)
        }
        Err(e) => Err(e),
    };
    c.stream.set_nonblocking(false)?;
    res
}

/// Waits for the first response byte: false when the connection ends (EOF or reset) first.
fn first_byte_arrives(c: &Conn) -> io::Result<bool> {
    let mut b = [0u8; 1];
    match c.stream.peek(&mut b) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// How one written request ended.
enum Outcome {
    Ok {
        close: bool,
    },
    /// The connection ended before the first response byte.
    NoResponse,
    Failed(String),
}

fn exchange(c: &mut Conn, path: &str, want: &[u8]) -> Outcome {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    if let Err(e) = c.send(req.as_bytes()) {
        return if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) {
            Outcome::NoResponse
        } else {
            Outcome::Failed(format!("{path}: write: {e}"))
        };
    }
    match first_byte_arrives(c) {
        Ok(true) => {}
        Ok(false) => return Outcome::NoResponse,
        Err(e) => return Outcome::Failed(format!("{path}: waiting for the response: {e}")),
    }
    match c.read_response(false) {
        Ok(r) if r.status == 200 && r.complete && r.body == want => Outcome::Ok {
            close: r
                .header("Connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        },
        Ok(r) => Outcome::Failed(format!(
            "{path}: {} complete={} error={:?} body {:?}",
            r.status,
            r.complete,
            r.error,
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        )),
        Err(e) => Outcome::Failed(format!("{path}: read: {e}")),
    }
}

/// One client: keep-alive GETs cycling through `paths` until `stop`, `until` or `max`.
fn client(
    tag: String,
    addr: String,
    paths: Vec<Expect>,
    until: Instant,
    max: u64,
    stop: Arc<AtomicBool>,
) -> LoadReport {
    let mut rep = LoadReport::default();
    let mut conn: Option<Conn> = None;
    let mut n = 0u64;
    while n < max && Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let want = &paths[(n as usize) % paths.len()];
        n += 1;
        if let Some(c) = &conn {
            match closed_by_server(c) {
                Ok(false) => {}
                Ok(true) => {
                    rep.reconnects += 1;
                    conn = None;
                }
                Err(e) => {
                    rep.failures.push(format!("idle connection: {e}"));
                    conn = None;
                }
            }
        }
        let mut id = format!("{tag}-{n}");
        let mut reused = conn.is_some();
        loop {
            // A refused connect panics the client, and the test with it: the parent keeps its
            // listeners open across graceful restarts.
            let c = conn.get_or_insert_with(|| Conn::connect(&addr));
            let sep = if want.path.contains('?') { '&' } else { '?' };
            let path = format!("{}{sep}id={id}", want.path);
            match exchange(c, &path, &want.body) {
                Outcome::Ok { close } => {
                    rep.ok += 1;
                    if close {
                        rep.reconnects += 1;
                        conn = None;
                    }
                }
                Outcome::NoResponse if reused => {
                    // The keep-alive close race (RFC 9112 §9.3.1): send again, once, on a
                    // new connection; check_unanswered shows the server never read it.
                    rep.unanswered.push(id.clone());
                    id.push('r');
                    reused = false;
                    conn = None;
                    continue;
                }
                Outcome::NoResponse => {
                    rep.failures
                        .push(format!("{path}: closed without a response"));
                    conn = None;
                }
                Outcome::Failed(f) => {
                    rep.failures.push(f);
                    conn = None;
                }
            }
            break;
        }
    }
    rep
}

/// Runs `clients` keep-alive clients against `srv` for at most `duration` and `max_per_client`
/// requests each, while `during` runs on this thread; then stops them and sums their reports.
pub fn keepalive_load(
    srv: &Server,
    paths: &[Expect],
    clients: usize,
    duration: Duration,
    max_per_client: u64,
    during: impl FnOnce(),
) -> LoadReport {
    let until = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    // Request ids unique across loads on one server, so the access log check cannot confuse them.
    let run = token("load");
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, paths, stop) = (srv.addr(), paths.to_vec(), stop.clone());
            let tag = format!("{run}-{i}");
            thread::spawn(move || client(tag, addr, paths, until, max_per_client, stop))
        })
        .collect();
    during();
    // Let the load run on to its end after the last restart, then stop.
    while Instant::now() < until && !handles.iter().all(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = LoadReport::default();
    for h in handles {
        let r = h.join().expect("load client panicked");
        total.ok += r.ok;
        total.reconnects += r.reconnects;
        total.failures.extend(r.failures);
        total.unanswered.extend(r.unanswered);
    }
    total
}
