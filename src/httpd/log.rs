//! Writing to Apache's error log, always through a `"%s"` format and our module index, so
//! `LogLevel rwsgi:...` applies and log text is never interpreted as a format.

use crate::sys;
use crate::wsgi::failure::Failure;
use crate::wsgi::gateway::{RequestLog, Severity};
use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Apache log levels we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn raw(self) -> libc::c_int {
        (match self {
            Level::Crit => sys::APLOG_CRIT,
            Level::Error => sys::APLOG_ERR,
            Level::Warn => sys::APLOG_WARNING,
            Level::Notice => sys::APLOG_NOTICE,
            Level::Info => sys::APLOG_INFO,
            Level::Debug => sys::APLOG_DEBUG,
        }) as libc::c_int
    }
}

const FILE: &CStr = c"mod_rwsgi.c";
const FMT: &CStr = c"%s";
use std::ffi::CStr;

fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

/// The server whose error log takes this process's own lines: null (Apache's main server)
/// except in a daemon process, where it is the server that defined the group.
static PROCESS_SERVER: AtomicPtr<sys::server_rec> = AtomicPtr::new(std::ptr::null_mut());
/// In a daemon process, the main server: the head of the list of servers it knows.
static MAIN_SERVER: AtomicPtr<sys::server_rec> = AtomicPtr::new(std::ptr::null_mut());

/// Makes `own` this process's own server (a daemon process, right after the fork): lines
/// logged without a server go to its ErrorLog, at its LogLevel, as under mod_wsgi. `main`
/// heads the server list [`server_logger`] looks requests' hosts up in.
///
/// # Safety
/// Both are null or servers that live as long as the process, `main` with its whole list.
pub unsafe fn set_process_server(own: *const sys::server_rec, main: *const sys::server_rec) {
    PROCESS_SERVER.store(own.cast_mut(), Ordering::Release);
    MAIN_SERVER.store(main.cast_mut(), Ordering::Release);
}

/// A logger for the server an Apache child named by its key (its `server_rec` address, 0
/// for the main server), if it is one of this daemon process's servers. The key is only
/// compared with them, never followed: a stale one (an Apache child of another generation,
/// with `WSGISocketRotation Off`) can at worst name another host's log, never bad memory.
pub fn server_logger(key: u64) -> Option<RequestLog> {
    let main = MAIN_SERVER.load(Ordering::Acquire);
    let mut cur = main;
    while !cur.is_null() {
        if (key == 0 && cur == main) || cur as u64 == key {
            // SAFETY: a server of this process's list, which lives as long as the process
            // (set_process_server's contract).
            return Some(unsafe { logger_for(cur) });
        }
        // SAFETY: as above; `next` links the list.
        cur = unsafe { (*cur).next };
    }
    None
}

/// Logs against a server (`None`: this process's own server, see [`set_process_server`]).
pub fn server_log(s: Option<&sys::server_rec>, level: Level, msg: &str) {
    let s: *const sys::server_rec = s.map_or(PROCESS_SERVER.load(Ordering::Acquire), |s| s);
    let m = c_message(msg);
    // SAFETY: "%s" consumes exactly one C string argument, which lives across the call;
    // ap_log_error_ accepts a null server, and a process server lives as long as the
    // process (set_process_server's contract).
    unsafe {
        sys::ap_log_error_(
            FILE.as_ptr(),
            0,
            crate::httpd::config_store::module_index(),
            level.raw(),
            0,
            s,
            FMT.as_ptr(),
            m.as_ptr(),
        )
    }
}

/// Logs an error against a server.
pub fn server_error(s: Option<&sys::server_rec>, msg: &str) {
    server_log(s, Level::Error, msg);
}

/// Logs against a request: lands in its vhost's ErrorLog, tagged with the client.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn request_log(r: *const sys::request_rec, level: Level, msg: &str) {
    let m = c_message(msg);
    // SAFETY: `r` is live (contract); "%s" takes the one argument.
    unsafe {
        sys::ap_log_rerror_(
            FILE.as_ptr(),
            0,
            crate::httpd::config_store::module_index(),
            level.raw(),
            0,
            r,
            FMT.as_ptr(),
            m.as_ptr(),
        )
    }
}

/// True when the request's log level for this module (`LogLevel rwsgi:debug`, else the
/// vhost's `LogLevel`) admits `level`: lets a caller skip building a message nobody sees.
pub fn request_log_enabled(r: &super::request::Request<'_>, level: Level) -> bool {
    // SAFETY: the request is live for the borrow; the glue only reads its log config.
    unsafe {
        sys::rwsgi_request_log_enabled(
            r.as_ptr(),
            crate::httpd::config_store::module_index(),
            level.raw(),
        ) != 0
    }
}

impl From<Severity> for Level {
    fn from(severity: Severity) -> Level {
        match severity {
            Severity::Critical => Level::Crit,
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warn,
            Severity::Info => Level::Info,
            Severity::Debug => Level::Debug,
        }
    }
}

fn log_to_server(data: *mut std::ffi::c_void, severity: Severity, msg: &str) {
    // SAFETY: `data` is null or the live server a logger was made for by `logger_for`.
    let s = unsafe { data.cast::<sys::server_rec>().as_ref() };
    server_log(s, severity.into(), msg);
}

/// A [`RequestLog`] writing to this process's own server's error log (see
/// [`set_process_server`]).
pub fn process_logger() -> RequestLog {
    RequestLog {
        data: std::ptr::null_mut(),
        write: log_to_server,
    }
}

/// A [`RequestLog`] writing to `s`'s error log at its `LogLevel` (a logger without a server
/// drops everything below notice).
///
/// # Safety
/// `s` outlives every use of the logger.
pub unsafe fn logger_for(s: *const sys::server_rec) -> RequestLog {
    RequestLog {
        data: s.cast_mut().cast(),
        write: log_to_server,
    }
}

fn log_to_request(data: *mut std::ffi::c_void, severity: Severity, msg: &str) {
    let level = severity.into();
    // SAFETY: `data` is the request a RequestLog was made for by `request_logger`, which
    // the transport keeps alive while the RequestLog is in use.
    unsafe { request_log(data.cast::<sys::request_rec>(), level, msg) };
}

/// A [`RequestLog`] writing to this request's error log (usable from any thread).
pub fn request_logger(r: &super::request::Request<'_>) -> RequestLog {
    RequestLog {
        data: r.as_ptr().cast(),
        write: log_to_request,
    }
}

/// A [`RequestLog`] that prefixes every line (a daemon tags its lines with the request's
/// client, as Apache tags a request's own lines). It lives for one request.
pub struct Tagged {
    pub prefix: String,
    pub base: RequestLog,
}

impl Tagged {
    /// The logger; valid while `self` lives.
    pub fn logger(&self) -> RequestLog {
        RequestLog {
            data: (self as *const Tagged).cast_mut().cast(),
            write: log_tagged,
        }
    }
}

fn log_tagged(data: *mut std::ffi::c_void, severity: Severity, msg: &str) {
    // SAFETY: `data` is the Tagged this logger was made from, which outlives every use of
    // the logger (the request it serves).
    if let Some(t) = unsafe { data.cast::<Tagged>().as_ref() } {
        t.base.log(severity, &format!("{}{msg}", t.prefix));
    }
}

/// Refuses a request: logs the failure's line against it (unless already logged) and gives
/// the status the handler returns.
pub fn refuse(r: &super::request::Request<'_>, failure: &Failure) -> i32 {
    let d = failure.disposition();
    if let Some(line) = failure.line() {
        r.log(d.severity.into(), &line);
    }
    i32::from(d.status)
}
