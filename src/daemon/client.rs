//! The Apache child's side: hands a request to its daemon group and relays the answer.
//! The body streams both ways a frame at a time, so memory stays bounded; the request body
//! is read from the client only when the daemon asks for it (so `100 Continue` goes out only
//! when the app reads). A connection whose exchange ended cleanly goes back to the
//! [`pool`](super::pool) for the next request.

use super::protocol::{self, Kind, ProtoError, RequestHead};
use super::{Group, Lookup};
use crate::httpd::input::BodyReader;
use crate::httpd::log::{Level, refuse};
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::python::environ::ModWsgiFacts;
use crate::sys;
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::failure::Failure;
use crate::wsgi::gateway::{After, WriteError};
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The request head for the daemon: the same facts the embedded environ is built from,
/// and the script to load, borrowed (it is only encoded).
pub fn request_head<'a>(
    script: &'a str,
    f: &RequestFacts<'a>,
    mw: &ModWsgiFacts<'a>,
    reload_mtime: Option<i64>,
) -> RequestHead<&'a [u8]> {
    RequestHead {
        secret: &[],
        script: script.as_bytes(),
        reload_mtime,
        script_filename: f.script_filename,
        handler_script: mw.handler_script,
        ignore_activity: mw.ignore_activity,
        callable: mw.callable_object.as_bytes(),
        process_group: mw.process_group.as_bytes(),
        application_group: mw.application_group.as_bytes(),
        request_handler: mw.request_handler,
        listener_host: mw.listener_host,
        listener_port: mw.listener_port,
        request_id: mw.request_id,
        connection_id: mw.connection_id,
        request_start_us: mw.request_start_us,
        queue_start_us: 0,
        vhost: 0,
        script_reloading: mw.script_reloading,
        enable_sendfile: mw.enable_sendfile,
        method: f.method,
        protocol: f.protocol,
        request_uri: f.request_uri,
        query_string: f.query_string,
        script_name: f.script_name,
        path_info: f.path_info,
        path_translated: f.path_translated,
        headers: f.headers.to_vec(),
        env: f.env.to_vec(),
        server_software: f.server_software,
        server_name: f.server_name,
        server_addr: f.server_addr,
        server_port: f.server_port,
        server_admin: f.server_admin,
        server_signature: f.server_signature,
        remote_addr: f.remote_addr,
        remote_port: f.remote_port,
        document_root: f.document_root,
        context_prefix: f.context_prefix,
        context_document_root: f.context_document_root,
        request_scheme: f.request_scheme,
        remote_user: f.remote_user,
        auth_type: f.auth_type,
        pass_authorization: f.pass_authorization,
        cgi_pass_auth: f.cgi_pass_auth,
        proxy: f.proxy.cloned(),
    }
}

/// script-user=/script-group=: the script and its directory must belong to that user or
/// group and be writable by nobody else.
fn script_refused(g: &Group, script: &[u8]) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let (user, id) = g.script_owner?;
    let file = std::path::Path::new(std::ffi::OsStr::from_bytes(script));
    for p in [Some(file), file.parent()].into_iter().flatten() {
        let m = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", p.display())),
        };
        let (owner, what) = if user {
            (m.uid(), "script-user uid")
        } else {
            (m.gid(), "script-group gid")
        };
        if owner != id {
            return Some(format!(
                "{} is owned by {owner}, not {what} {id}",
                p.display()
            ));
        }
        if m.mode() & 0o022 != 0 {
            return Some(format!(
                "{} is writable by its group or by others (mode {:o})",
                p.display(),
                m.mode() & 0o7777
            ));
        }
    }
    None
}

/// Connects within connect-timeout, retrying while the group's backlog is full or its
/// socket refuses (0.125 s apart for the first 2 s, then 1 s).
fn connect(g: &Group) -> Result<UnixStream, String> {
    let budget = Duration::from_secs(g.def.connect_timeout.into());
    let start = Instant::now();
    loop {
        let left = budget.saturating_sub(start.elapsed());
        match super::os::connect_unix(&g.socket, left) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) && start.elapsed() < budget =>
            {
                let pause = if start.elapsed() < Duration::from_secs(2) {
                    Duration::from_millis(125)
                } else {
                    Duration::from_secs(1)
                };
                std::thread::sleep(pause.min(budget.saturating_sub(start.elapsed())));
            }
            Err(e) => {
                return Err(format!(
                    "{e} (after {:.1} s, connect-timeout={})",
                    start.elapsed().as_secs_f64(),
                    g.def.connect_timeout
                ));
            }
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn is_timeout(e: &ProtoError) -> bool {
    matches!(e, ProtoError::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

/// Runs the request in daemon group `name`; returns the handler's status. `error_override`:
/// `WSGIErrorOverride On`.
pub fn run(r: Request<'_>, name: &str, head: RequestHead<&[u8]>, error_override: bool) -> i32 {
    let server = r.vhost_key();
    let g = match super::find(name, server) {
        Ok(g) => g,
        Err(Lookup::Unknown) => return refuse(&r, &Failure::DaemonUnknown { group: name.into() }),
        Err(Lookup::Elsewhere) => {
            return refuse(&r, &Failure::DaemonElsewhere { group: name.into() });
        }
    };
    if g.def.is_service() {
        r.log(
            Level::Error,
            &format!(
                "RWSGI0560: daemon process group '{name}' has threads=0: it only runs its \
                 WSGIImportScript service scripts and serves no requests; choose a group with \
                 threads for this request"
            ),
        );
        return sys::HTTP_SERVICE_UNAVAILABLE as i32;
    }
    if let Some(why) = script_refused(&g, head.script) {
        return refuse(
            &r,
            &Failure::DaemonScriptRefused {
                group: name.into(),
                why,
            },
        );
    }
    let mut head = head;
    head.secret = &g.secret;
    head.vhost = server as u64;
    let how = Relay {
        header_limit: g.def.header_buffer_size,
        force_sendfile: head.enable_sendfile,
        error_override,
        flush_delay: Duration::from_millis(g.def.response_flush_delay_ms),
        flush_limit: match g.def.response_buffer_size {
            0 => DEFAULT_FLUSH_LIMIT,
            n => n as usize,
        },
    };
    // response-socket-timeout (else socket-timeout) bounds each write to the client while
    // relaying; neither given, the connection keeps Apache's Timeout.
    let _client_timeout = match (
        g.def.response_socket_timeout,
        u64::from(g.def.socket_timeout),
    ) {
        (0, 0) => None,
        (0, t) | (t, _) => r.client_timeout(Duration::from_secs(t)),
    };
    let mut pooled = super::pool::take(&g);
    loop {
        let reused = pooled.is_some();
        let conn = match pooled.take() {
            Some(c) => c,
            None => match connect(&g) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(g.io_timeout));
                    let _ = c.set_write_timeout(Some(g.io_timeout));
                    c
                }
                Err(error) => {
                    let socket = g.socket.display().to_string();
                    return refuse(
                        &r,
                        &Failure::DaemonConnectTimeout {
                            group: name.into(),
                            socket,
                            error,
                        },
                    );
                }
            },
        };
        head.queue_start_us = now_us();
        let (status, fate) = {
            let _in_flight = InFlight::new(&conn);
            // Taken, not borrowed: a subrequest run by an output filter during the relay
            // comes back here on this thread.
            let mut bufs = BUFFERS.take();
            head.encode_into(&mut bufs.head);
            let out = exchange(r, &conn, reused, name, &mut bufs, &how);
            BUFFERS.set(bufs);
            out
        };
        match fate {
            // A stopping child cuts its requests (abort_all) rather than sending them again.
            Fate::Retry if !ABORTED.load(Ordering::SeqCst) => {
                r.log(
                    Level::Debug,
                    &format!(
                        "RWSGI0540: daemon process group '{name}' gave up an idle connection \
                         before taking the request; sent again on a new connection"
                    ),
                );
                continue;
            }
            Fate::Retry => {
                let failure = "the connection was cut (this child is stopping)".into();
                let f = Failure::DaemonDiedBeforeHead {
                    group: name.into(),
                    failure,
                };
                return refuse(&r, &f);
            }
            Fate::Keep => super::pool::put(&g, conn),
            Fate::Close => {}
        }
        return status;
    }
}

/// What becomes of a connection after one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Clean end, every frame consumed: it can carry the next request.
    Keep,
    Close,
    /// A reused connection the daemon had given up without reading the request (`Closing`,
    /// or the connection reset): the app never ran, the request goes again on a new
    /// connection.
    Retry,
}

/// A broken connection (as opposed to a timeout or a protocol error).
fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Sends the request head on `conn` and relays the answer.
fn exchange(
    r: Request<'_>,
    conn: &UnixStream,
    reused: bool,
    name: &str,
    bufs: &mut Buffers,
    how: &Relay,
) -> (i32, Fate) {
    if let Err(e) = protocol::write_frame(&mut &*conn, Kind::RequestHead, &bufs.head) {
        if reused && is_reset(&e) {
            return (0, Fate::Retry);
        }
        let error = e.to_string();
        let f = Failure::DaemonSendFailed {
            group: name.into(),
            error,
        };
        return (refuse(&r, &f), Fate::Close);
    }
    relay(r, conn, name, reused, how, &mut bufs.frame, &mut bufs.read)
}

/// The daemon connections of this child's running requests, so that a stop does not wait
/// for a daemon's answer (see [`abort_all`]).
static IN_FLIGHT: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Set by [`abort_all`]: no request is sent again.
static ABORTED: AtomicBool = AtomicBool::new(false);

/// Registers one connection in [`IN_FLIGHT`] until dropped (before the connection closes).
struct InFlight(RawFd);

impl InFlight {
    fn new(conn: &UnixStream) -> InFlight {
        let fd = conn.as_raw_fd();
        if let Ok(mut v) = IN_FLIGHT.lock() {
            v.push(fd);
        }
        InFlight(fd)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut v) = IN_FLIGHT.lock() {
            v.retain(|&f| f != self.0);
        }
    }
}

/// A stopping child (not graceful) cuts its requests waiting on daemons: each gets the
/// "daemon failed" answer at once instead of holding the child until Apache kills it.
pub fn abort_all() {
    ABORTED.store(true, Ordering::SeqCst);
    if let Ok(v) = IN_FLIGHT.lock() {
        for &fd in v.iter() {
            super::os::shutdown(fd);
        }
    }
}

/// The most body bytes one `RequestBody` frame carries.
const BODY_CHUNK: usize = 64 << 10;

/// The client's body, opened at the daemon's first `BodyWanted` (which is what makes Apache
/// send `100 Continue`).
#[derive(Default)]
struct Body {
    reader: Option<(BodyReader, Vec<u8>)>,
}

/// Why a `BodyWanted` could not be answered.
enum BodyError {
    /// Reading the client's body failed.
    Client(crate::httpd::input::ReadError),
    /// Writing to the daemon failed.
    Daemon,
}

impl Body {
    /// Answers a `BodyWanted` for up to `max` bytes: the next bytes, or `RequestEnd`.
    fn answer(&mut self, r: &Request<'_>, conn: &UnixStream, max: usize) -> Result<(), BodyError> {
        let (reader, buf) = self
            .reader
            .get_or_insert_with(|| (BodyReader::new(r), vec![0u8; BODY_CHUNK]));
        let want = max.min(BODY_CHUNK);
        let mut n = reader.read(&mut buf[..want]).map_err(BodyError::Client)?;
        // Apache's input filters hand out a socket read at a time: what else has already
        // arrived goes in the same frame, so a body costs fewer round trips.
        while n > 0 && n < want {
            match reader.read_available(&mut buf[n..want]) {
                Ok(0) => break,
                Ok(m) => n += m,
                Err(e) => return Err(BodyError::Client(e)),
            }
        }
        let mut w = conn;
        if n == 0 {
            protocol::write_frame(&mut w, Kind::RequestEnd, &[])
        } else {
            // The last bytes say so: the daemon does not ask again just to learn the end.
            let flags = if reader.ended() {
                protocol::FLAG_END
            } else {
                0
            };
            protocol::write_flagged(&mut w, Kind::RequestBody, flags, &buf[..n])
        }
        .map_err(|_| BodyError::Daemon)
    }
}

/// The first header line (`Name: value`) longer than `limit` bytes (0: no limit).
fn too_long(h: &crate::wsgi::gateway::ResponseHead, limit: u32) -> Option<(&str, &str)> {
    h.headers
        .iter()
        .find(|(n, v)| limit > 0 && n.len() + 2 + v.len() > limit as usize)
        .map(|(n, v)| (n.as_str(), v.as_str()))
}

/// A body frame from this size on is flushed to the client as it comes.
const BIG_FRAME: usize = 64 << 10;

/// What the daemon's frames are read through: small frames arriving together cost one read;
/// a bigger payload is read past the buffer, uncopied.
const READ_BUF: usize = 16 << 10;

/// The daemon socket read with recvmsg, keeping the descriptors that come with
/// `ResponseFile` frames, in order (each comes with its frame, and the kernel ends a read
/// after a descriptor); any left unused are closed when it is dropped.
struct FdReader<'c> {
    conn: &'c UnixStream,
    fds: std::collections::VecDeque<OwnedFd>,
}

impl std::io::Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = Vec::new();
        let n = super::os::recv_with_fds(self.conn.as_raw_fd(), buf, &mut got)?;
        self.fds.extend(got);
        Ok(n)
    }
}

/// How a daemon's answer is relayed.
struct Relay {
    /// header-buffer-size (0: no limit).
    header_limit: u32,
    /// `WSGIEnableSendfile On`.
    force_sendfile: bool,
    /// `WSGIErrorOverride On`.
    error_override: bool,
    /// response-flush-delay: how long a flush the app asked for waits for more of the body,
    /// so that a burst of small chunks goes out in one write.
    flush_delay: Duration,
    /// response-buffer-size: body bytes passed on without a flush before one is forced.
    flush_limit: usize,
}

/// response-buffer-size's default, as mod_wsgi 6's.
const DEFAULT_FLUSH_LIMIT: usize = 8 << 20;

/// Whether a body frame is flushed to the client: a big one always (written in place rather
/// than copied aside by the core output filter); one the app flushed unless more of the body
/// is already on its way (`more_soon`); any once `flush_limit` bytes went unflushed.
fn flush_now(
    len: usize,
    app_flushed: bool,
    unflushed: usize,
    limit: usize,
    more_soon: impl FnOnce() -> bool,
) -> bool {
    len > BIG_FRAME || unflushed + len >= limit || (app_flushed && !more_soon())
}

/// A request thread's buffers, kept from one relay to the next: fresh ones per request
/// would cost allocations (a big response's frames also their page faults), and one of a
/// KiB or more makes glibc consolidate its fast bins.
#[derive(Default)]
struct Buffers {
    /// The request head payload.
    head: Vec<u8>,
    /// The frame being relayed.
    frame: Vec<u8>,
    /// What the daemon's frames are read through.
    read: Vec<u8>,
}

thread_local! {
    static BUFFERS: std::cell::Cell<Buffers> = std::cell::Cell::new(Buffers::default());
}

/// Relays the daemon's answer to the client, and the client's body as the daemon asks for
/// it. `reused`: until a first frame comes, the request may go again (see [`Fate::Retry`]).
fn relay(
    r: Request<'_>,
    conn: &UnixStream,
    name: &str,
    reused: bool,
    how: &Relay,
    buf: &mut Vec<u8>,
    read_buf: &mut Vec<u8>,
) -> (i32, Fate) {
    let limit = how.header_limit;
    let mut writer = BodyWriter::new(&r);
    let mut rd = super::protocol::Buffered::new(
        FdReader {
            conn,
            fds: std::collections::VecDeque::new(),
        },
        read_buf,
        READ_BUF,
    );
    let mut body = Body::default();
    // Body bytes passed on since the last flush.
    let mut unflushed = 0usize;
    let mut answered = !reused;
    let mut head_seen = false;
    let close = |s: i32| (s, Fate::Close);
    loop {
        let frame = protocol::read_flagged(&mut rd, buf);
        // The first frame (or failure) on a reused connection.
        let first = !std::mem::replace(&mut answered, true);
        let failure = match frame {
            // The daemon gave the connection up without reading the request (a reset: it
            // closed it with the request unread), so the app did not run. A plain end of
            // stream means it read the request, and died or refused it: no second try.
            Ok(Some((Kind::Closing, _))) if first => return (0, Fate::Retry),
            Err(ProtoError::Io(e)) if first && is_reset(&e) => return (0, Fate::Retry),
            Ok(Some((Kind::BodyWanted, _))) => match protocol::decode_wanted(buf) {
                // What was held back waiting for more goes out first: the app now waits
                // for the client, which may wait for it.
                Ok(_) if unflushed > 0 && writer.write(&[], After::Flush).is_err() => {
                    return close(sys::OK as i32);
                }
                Ok(max) => match body.answer(&r, conn, max) {
                    Ok(()) => continue,
                    Err(BodyError::Client(e)) if !head_seen => {
                        let (message, status) = (e.message, e.status);
                        let f = Failure::ClientBodyFailed {
                            group: name.into(),
                            message,
                            status,
                        };
                        return close(refuse(&r, &f));
                    }
                    Err(BodyError::Client(_)) => {
                        // The client's body broke after the head went out: the response is
                        // cut (the daemon sees the connection close).
                        writer.end_broken();
                        return close(sys::OK as i32);
                    }
                    // The daemon is judged by what it sends (or not) next.
                    Err(BodyError::Daemon) => continue,
                },
                Err(e) => e.to_string(),
            },
            Ok(Some((Kind::ResponseHead, _))) if !head_seen => {
                match protocol::decode_response_head(buf) {
                    Ok(h) => {
                        if let Some((n, v)) = too_long(&h, limit) {
                            let f = Failure::DaemonHeaderTooLong {
                                group: name.into(),
                                header: n.into(),
                                len: n.len() + 2 + v.len(),
                                limit,
                            };
                            return close(refuse(&r, &f));
                        }
                        crate::httpd::output::apply_head(r, &h, true);
                        if how.error_override && (400..600).contains(&h.status) {
                            // As ProxyErrorOverride: the application's body is dropped (the
                            // connection closes unread) and Apache answers with its own page
                            // for the status, ErrorDocument included. Headers meant for error
                            // pages (WWW-Authenticate) stay.
                            r.reset_status();
                            return close(i32::from(h.status));
                        }
                        head_seen = true;
                        continue;
                    }
                    Err(e) => e.to_string(),
                }
            }
            Ok(Some((Kind::ResponseStatus, _))) if !head_seen => {
                match protocol::decode_status(buf) {
                    Ok(s) if rd.buffer().is_empty() && rd.get_ref().fds.is_empty() => {
                        return (i32::from(s), Fate::Keep);
                    }
                    Ok(s) => return close(i32::from(s)),
                    Err(e) => e.to_string(),
                }
            }
            Ok(Some((Kind::ResponseBody, flags))) if head_seen => {
                let app_flushed = flags & protocol::FLAG_FLUSH != 0;
                let more_soon = || {
                    !rd.buffer().is_empty()
                        || super::os::wait_readable(conn.as_raw_fd(), how.flush_delay)
                };
                let after = if flush_now(
                    buf.len(),
                    app_flushed,
                    unflushed,
                    how.flush_limit,
                    more_soon,
                ) {
                    unflushed = 0;
                    After::Flush
                } else {
                    unflushed += buf.len();
                    After::Buffer
                };
                match writer.write(buf, after) {
                    Ok(()) => continue,
                    Err(WriteError::ClientGone) => return close(sys::OK as i32),
                    Err(WriteError::Failed(e)) => {
                        r.log(Level::Error, &format!("RWSGI0534: {e}"));
                        return close(sys::AP_FILTER_ERROR);
                    }
                }
            }
            Ok(Some((Kind::ResponseFile, flags))) if head_seen => {
                // The descriptor of this frame: the oldest not yet used.
                let fd = rd.get_mut().fds.pop_front();
                match (protocol::decode_file(buf), fd) {
                    (Ok((offset, len)), Some(fd)) => {
                        let after = if flags & protocol::FLAG_FLUSH != 0 {
                            After::Flush
                        } else {
                            After::Buffer
                        };
                        // The writer takes its own duplicate; ours closes at the end of the arm.
                        match writer.send_file(
                            fd.as_raw_fd(),
                            offset,
                            len,
                            after,
                            how.force_sendfile,
                        ) {
                            Ok(()) => continue,
                            Err(WriteError::ClientGone) => return close(sys::OK as i32),
                            Err(WriteError::Failed(e)) => {
                                r.log(Level::Error, &format!("RWSGI0534: {e}"));
                                return close(sys::AP_FILTER_ERROR);
                            }
                        }
                    }
                    (Err(e), _) => e.to_string(),
                    (Ok(_), None) => "a file frame came without its descriptor".into(),
                }
            }
            Ok(Some((Kind::ResponseEnd, _))) if head_seen => match protocol::decode_end(buf) {
                Ok(true) => {
                    writer.end_broken();
                    return close(sys::OK as i32);
                }
                Ok(false) => {
                    // Nothing may be left over for the next exchange.
                    let clean = rd.buffer().is_empty() && rd.get_ref().fds.is_empty();
                    return match writer.end() {
                        Ok(()) if clean => (sys::OK as i32, Fate::Keep),
                        Ok(()) => close(sys::OK as i32),
                        Err(WriteError::ClientGone) => close(sys::OK as i32),
                        Err(WriteError::Failed(e)) => {
                            r.log(Level::Error, &format!("RWSGI0534: {e}"));
                            close(sys::AP_FILTER_ERROR)
                        }
                    };
                }
                Err(e) => e.to_string(),
            },
            Ok(Some((k, _))) => format!("unexpected {k:?} frame"),
            Ok(None) => "the connection closed (the daemon process may have died)".into(),
            Err(e) if !head_seen && is_timeout(&e) => {
                return close(refuse(&r, &Failure::SocketTimeout { group: name.into() }));
            }
            Err(e) => e.to_string(),
        };
        if !head_seen {
            return close(refuse(
                &r,
                &Failure::DaemonDiedBeforeHead {
                    group: name.into(),
                    failure,
                },
            ));
        }
        // The head is out: no status can tell the client, so the response ends broken.
        r.log(
            Level::Error,
            &format!(
                "RWSGI0536: daemon process group '{name}' failed during the response body; the \
                 response is cut: {failure}"
            ),
        );
        writer.end_broken();
        return close(sys::OK as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_only_while_more_of_the_body_is_coming() {
        let limit = DEFAULT_FLUSH_LIMIT;
        // The app flushed and nothing more came within the delay: out it goes.
        assert!(flush_now(10, true, 0, limit, || false));
        // More is on its way: held, to go out with it.
        assert!(!flush_now(10, true, 0, limit, || true));
        // No flush asked for: Apache's own buffering decides.
        assert!(!flush_now(10, false, 0, limit, || panic!("not asked")));
        // A big frame is written in place, and response-buffer-size forces a flush.
        assert!(flush_now(BIG_FRAME + 1, false, 0, limit, || true));
        assert!(flush_now(10, false, limit - 10, limit, || true));
        assert!(!flush_now(10, false, limit - 11, limit, || true));
    }
}
