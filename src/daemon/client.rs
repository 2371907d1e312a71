//! The Apache child's side: hands a request to its daemon group and relays the answer.
//! The body streams both ways a frame at a time, so memory stays bounded.

use super::protocol::{self, Kind, ProtoError, RequestHead};
use super::{Group, Lookup};
use crate::httpd::input::BodyReader;
use crate::httpd::log::Level;
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::python::environ::ModWsgiFacts;
use crate::sys;
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::gateway::{After, WriteError};
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The request head for the daemon: the same facts the embedded environ is built from,
/// and the script to load.
pub fn request_head(
    script: &str,
    f: &RequestFacts<'_>,
    mw: &ModWsgiFacts<'_>,
    reload_mtime: Option<i64>,
) -> RequestHead {
    let own = |v: &[(&[u8], &[u8])]| -> protocol::Pairs {
        v.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    };
    RequestHead {
        secret: Vec::new(),
        script: script.as_bytes().to_vec(),
        reload_mtime,
        script_filename: f.script_filename.to_vec(),
        handler_script: mw.handler_script.to_vec(),
        ignore_activity: mw.ignore_activity,
        callable: mw.callable_object.as_bytes().to_vec(),
        process_group: mw.process_group.as_bytes().to_vec(),
        application_group: mw.application_group.as_bytes().to_vec(),
        request_handler: mw.request_handler.to_vec(),
        listener_host: mw.listener_host.to_vec(),
        listener_port: mw.listener_port,
        request_id: mw.request_id.to_vec(),
        connection_id: mw.connection_id.map(<[u8]>::to_vec),
        request_start_us: mw.request_start_us,
        queue_start_us: 0,
        script_reloading: mw.script_reloading,
        enable_sendfile: mw.enable_sendfile,
        method: f.method.to_vec(),
        protocol: f.protocol.to_vec(),
        request_uri: f.request_uri.to_vec(),
        query_string: f.query_string.to_vec(),
        script_name: f.script_name.to_vec(),
        path_info: f.path_info.to_vec(),
        path_translated: f.path_translated.map(<[u8]>::to_vec),
        headers: own(f.headers),
        env: own(f.env),
        server_software: f.server_software.to_vec(),
        server_name: f.server_name.to_vec(),
        server_addr: f.server_addr.to_vec(),
        server_port: f.server_port,
        server_admin: f.server_admin.to_vec(),
        server_signature: f.server_signature.to_vec(),
        remote_addr: f.remote_addr.to_vec(),
        remote_port: f.remote_port,
        document_root: f.document_root.to_vec(),
        context_prefix: f.context_prefix.to_vec(),
        context_document_root: f.context_document_root.to_vec(),
        request_scheme: f.request_scheme.to_vec(),
        remote_user: f.remote_user.map(<[u8]>::to_vec),
        auth_type: f.auth_type.map(<[u8]>::to_vec),
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

/// Runs the request in daemon group `name`; returns the handler's status.
pub fn run(r: Request<'_>, name: &str, mut head: RequestHead) -> i32 {
    let server = r.vhost_key();
    let g = match super::find(name, server) {
        Ok(g) => g,
        Err(Lookup::Unknown) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0031: no WSGI daemon process called '{name}' has been configured; \
                     the request cannot be delegated"
                ),
            );
            return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
        Err(Lookup::Elsewhere) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0530: daemon process group '{name}' is defined in another virtual host \
                     and cannot be accessed from this one"
                ),
            );
            return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
    };
    if let Some(why) = script_refused(&g, &head.script) {
        r.log(
            Level::Error,
            &format!("RWSGI0538: daemon process group '{name}' refuses the script: {why}"),
        );
        return sys::HTTP_FORBIDDEN as i32;
    }
    let conn = match connect(&g) {
        Ok(c) => c,
        Err(e) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0531: cannot connect to daemon process group '{name}' at {}: {e}",
                    g.socket.display()
                ),
            );
            return sys::HTTP_SERVICE_UNAVAILABLE as i32;
        }
    };
    let _ = conn.set_read_timeout(Some(g.io_timeout));
    let _ = conn.set_write_timeout(Some(g.io_timeout));
    let _in_flight = InFlight::new(&conn);
    head.secret = g.secret.clone();
    head.queue_start_us = now_us();
    let mut w = &conn;
    if let Err(e) = protocol::write_frame(&mut w, Kind::RequestHead, &head.encode()) {
        r.log(
            Level::Error,
            &format!("RWSGI0532: sending the request to daemon process group '{name}' failed: {e}"),
        );
        return sys::HTTP_BAD_GATEWAY as i32;
    }
    if let Some(status) = send_body(r, &conn, name) {
        return status;
    }
    relay(
        r,
        &conn,
        name,
        g.def.header_buffer_size,
        head.enable_sendfile,
    )
}

/// The daemon connections of this child's running requests, so that a stop does not wait
/// for a daemon's answer (see [`abort_all`]).
static IN_FLIGHT: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

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
    if let Ok(v) = IN_FLIGHT.lock() {
        for &fd in v.iter() {
            super::os::shutdown(fd);
        }
    }
}

/// Streams the client's body to the daemon. `Some(status)` when the client's body failed.
fn send_body(r: Request<'_>, conn: &UnixStream, name: &str) -> Option<i32> {
    let mut reader = BodyReader::new(&r);
    let mut buf = vec![0u8; 64 * 1024];
    let mut w = conn;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                // The client went away, was too slow or sent a bad body: its doing, which
                // embedded mode does not log either (the app sees the OSError in both modes).
                r.log(
                    Level::Info,
                    &format!(
                        "RWSGI0533: reading the request body for daemon process group '{name}' \
                         failed: {}",
                        e.message
                    ),
                );
                return Some(i32::from(e.status));
            }
        };
        let sent = if n == 0 {
            protocol::write_frame(&mut w, Kind::RequestEnd, &[])
        } else {
            protocol::write_frame(&mut w, Kind::RequestBody, &buf[..n])
        };
        // A daemon that stops reading (it died, or answered early) is judged by what it
        // sends back, read next.
        if sent.is_err() || n == 0 {
            return None;
        }
    }
}

/// The first header line (`Name: value`) longer than `limit` bytes (0: no limit).
fn too_long(h: &crate::wsgi::gateway::ResponseHead, limit: u32) -> Option<(&str, &str)> {
    h.headers
        .iter()
        .find(|(n, v)| limit > 0 && n.len() + 2 + v.len() > limit as usize)
        .map(|(n, v)| (n.as_str(), v.as_str()))
}

/// The daemon socket read with recvmsg, keeping the descriptors that come with
/// `ResponseFile` frames; any left unused are closed when it is dropped.
struct FdReader<'c> {
    conn: &'c UnixStream,
    fds: Vec<OwnedFd>,
}

impl std::io::Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        super::os::recv_with_fds(self.conn.as_raw_fd(), buf, &mut self.fds)
    }
}

/// Relays the daemon's answer to the client. `force_sendfile`: `WSGIEnableSendfile On`.
fn relay(r: Request<'_>, conn: &UnixStream, name: &str, limit: u32, force_sendfile: bool) -> i32 {
    let mut writer = BodyWriter::new(&r);
    let mut buf = Vec::new();
    let mut rd = FdReader {
        conn,
        fds: Vec::new(),
    };
    let mut head_seen = false;
    loop {
        let frame = protocol::read_flagged(&mut rd, &mut buf);
        let failure = match frame {
            Ok(Some((Kind::ResponseHead, _))) if !head_seen => {
                match protocol::decode_response_head(&buf) {
                    Ok(h) => {
                        if let Some((n, v)) = too_long(&h, limit) {
                            r.log(
                                Level::Error,
                                &format!(
                                    "RWSGI0537: daemon process group '{name}' sent a response \
                                     header '{n}' of {} bytes, more than \
                                     header-buffer-size={limit}",
                                    n.len() + 2 + v.len()
                                ),
                            );
                            return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
                        }
                        crate::handler::apply_head(r, &h, true);
                        head_seen = true;
                        continue;
                    }
                    Err(e) => e.to_string(),
                }
            }
            Ok(Some((Kind::ResponseStatus, _))) if !head_seen => {
                match protocol::decode_status(&buf) {
                    Ok(s) => return i32::from(s),
                    Err(e) => e.to_string(),
                }
            }
            Ok(Some((Kind::ResponseBody, flags))) if head_seen => {
                let after = if flags & protocol::FLAG_FLUSH != 0 {
                    After::Flush
                } else {
                    After::Buffer
                };
                match writer.write(&buf, after) {
                    Ok(()) => continue,
                    Err(WriteError::ClientGone) => return sys::OK as i32,
                    Err(WriteError::Failed(e)) => {
                        r.log(Level::Error, &format!("RWSGI0534: {e}"));
                        return sys::AP_FILTER_ERROR;
                    }
                }
            }
            Ok(Some((Kind::ResponseFile, flags))) if head_seen => {
                // Exactly the descriptor of this frame; anything else is closed here.
                let fd = rd.fds.pop();
                rd.fds.clear();
                match (protocol::decode_file(&buf), fd) {
                    (Ok((offset, len)), Some(fd)) => {
                        let after = if flags & protocol::FLAG_FLUSH != 0 {
                            After::Flush
                        } else {
                            After::Buffer
                        };
                        // The writer takes its own duplicate; ours closes at the end of the arm.
                        match writer.send_file(fd.as_raw_fd(), offset, len, after, force_sendfile) {
                            Ok(()) => continue,
                            Err(WriteError::ClientGone) => return sys::OK as i32,
                            Err(WriteError::Failed(e)) => {
                                r.log(Level::Error, &format!("RWSGI0534: {e}"));
                                return sys::AP_FILTER_ERROR;
                            }
                        }
                    }
                    (Err(e), _) => e.to_string(),
                    (Ok(_), None) => "a file frame came without its descriptor".into(),
                }
            }
            Ok(Some((Kind::ResponseEnd, _))) if head_seen => {
                if buf.first() == Some(&1) {
                    writer.end_broken();
                    return sys::OK as i32;
                }
                return match writer.end() {
                    Ok(()) | Err(WriteError::ClientGone) => sys::OK as i32,
                    Err(WriteError::Failed(e)) => {
                        r.log(Level::Error, &format!("RWSGI0534: {e}"));
                        sys::AP_FILTER_ERROR
                    }
                };
            }
            Ok(Some((k, _))) => format!("unexpected {k:?} frame"),
            Ok(None) => "the connection closed (the daemon process may have died)".into(),
            Err(e) if !head_seen && is_timeout(&e) => {
                r.log(
                    Level::Error,
                    &format!(
                        "RWSGI0535: daemon process group '{name}' sent no response within the \
                         socket timeout"
                    ),
                );
                return sys::HTTP_GATEWAY_TIME_OUT as i32;
            }
            Err(e) => e.to_string(),
        };
        let when = if head_seen {
            "during the response body; the response is cut"
        } else {
            "before the response head"
        };
        r.log(
            Level::Error,
            &format!("RWSGI0536: daemon process group '{name}' failed {when}: {failure}"),
        );
        if head_seen {
            writer.end_broken();
            return sys::OK as i32;
        }
        return sys::HTTP_BAD_GATEWAY as i32;
    }
}
