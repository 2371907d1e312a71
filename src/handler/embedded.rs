//! Embedded mode: the app runs in this Apache child. The gateway reads the body through the
//! input filters and writes the response through the output filters.

use super::facts;
use crate::config::{DirConfig, MapHeadToGet, ScriptAlias, expand};
use crate::httpd::input::BodyReader;
use crate::httpd::log::{self, Level};
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::httpd::{config_store, hooks};
use crate::python::interp::{self, GroupError};
use crate::python::{self, app, environ::ModWsgiFacts};
use crate::sys;
use crate::wsgi::gateway::{After, Gateway, ReadFailure, ResponseHead, WriteError};

/// Apache request + brigades as a WSGI transport.
struct EmbeddedGateway<'r> {
    r: Request<'r>,
    reader: BodyReader,
    writer: BodyWriter,
    read_started: bool,
    /// `WSGIEnableSendfile On`.
    enable_sendfile: bool,
}

impl Gateway for EmbeddedGateway<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadFailure> {
        self.read_started = true;
        self.reader.read(buf)
    }

    fn set_head(&mut self, head: &ResponseHead) {
        super::apply_head(self.r, head, self.read_started);
    }

    fn write(&mut self, data: &[u8], after: After) -> Result<(), WriteError> {
        self.writer.write(data, after)
    }

    fn quick_write(&self, len: usize, after: After) -> bool {
        self.writer.quick(len, after)
    }

    fn send_file(
        &mut self,
        fd: i32,
        offset: u64,
        len: u64,
        after: After,
    ) -> Result<(), WriteError> {
        self.writer
            .send_file(fd, offset, len, after, self.enable_sendfile)
    }

    fn end_broken(&mut self) {
        self.writer.end_broken();
    }

    fn client_gone(&self) -> bool {
        self.r.aborted()
    }
}

/// The response when the request's application group has no interpreter: 503 past
/// `WSGIMaximumInterpreters` (load, not a broken app), 500 otherwise.
fn refused(r: Request<'_>, e: &GroupError) -> i32 {
    let (id, status) = match e {
        GroupError::Limit { .. } => ("RWSGI0040", sys::HTTP_SERVICE_UNAVAILABLE),
        // Its full error has just been logged.
        GroupError::SetUpFailed { first: true, .. } => {
            return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
        GroupError::SetUpFailed { .. } => ("RWSGI0042", sys::HTTP_INTERNAL_SERVER_ERROR),
        GroupError::NoPython => ("RWSGI0032", sys::HTTP_INTERNAL_SERVER_ERROR),
    };
    r.log(Level::Error, &format!("{id}: {e}"));
    status as i32
}

/// Runs the request's app in this process, or hands it to its daemon process group.
pub fn run(r: Request<'_>, alias: Option<&ScriptAlias>, dir: &DirConfig) -> i32 {
    let conf = config_store::request_server_config(&r);
    let opts = alias.map(|a| &a.options);
    let map_head = match dir.map_head_to_get.unwrap_or(MapHeadToGet::Auto) {
        MapHeadToGet::On => true,
        MapHeadToGet::Off => false,
        MapHeadToGet::Auto => r.has_content_filters(),
    };
    let storage = facts::collect(r, conf, map_head);
    let env = |var: &str| -> Option<String> {
        let k = var.as_bytes();
        r.notes()
            .get_bytes(k)
            .or_else(|| r.subprocess_env().get_bytes(k))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .or_else(|| std::env::var(var).ok())
    };
    let server_name = String::from_utf8_lossy(r.configured_server_name()).into_owned();
    let host = r
        .hostname()
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let script_name = String::from_utf8_lossy(&storage.script_name).into_owned();
    let ctx = expand::ExpandContext {
        server_name: &server_name,
        port: r.vhost_port(),
        host: host.as_deref(),
        script_name: &script_name,
        case_sensitive: conf.python.case_sensitive(),
        env: &env,
    };
    let pick = |from_alias: Option<&Option<String>>, from_dir: &Option<String>, default: &str| {
        from_alias
            .and_then(|o| o.clone())
            .or_else(|| from_dir.clone())
            .unwrap_or_else(|| default.to_string())
    };
    let process_group = expand::expand_group(
        &pick(
            opts.map(|o| &o.process_group),
            &dir.process_group,
            "%{GLOBAL}",
        ),
        &ctx,
    );
    let application_group = expand::expand_group(
        &pick(
            opts.map(|o| &o.application_group),
            &dir.application_group,
            "%{RESOURCE}",
        ),
        &ctx,
    );
    let callable = expand::expand_callable(
        &pick(
            opts.map(|o| &o.callable_object),
            &dir.callable_object,
            "application",
        ),
        &env,
    );
    let pass_authorization = opts
        .and_then(|o| o.pass_authorization)
        .or(dir.pass_authorization)
        .unwrap_or(false);
    let reloading = dir.script_reloading.unwrap_or(true);
    let enable_sendfile = dir.enable_sendfile.unwrap_or(false);
    let script = String::from_utf8_lossy(r.filename()).into_owned();
    let facts = facts::facts(r, &storage, pass_authorization);
    let job = app::Job {
        script: &script,
        reload_mtime: reloading.then(|| r.file_mtime()),
        callable: &callable,
        facts: &facts,
        mod_wsgi: ModWsgiFacts {
            process_group: &process_group,
            application_group: &application_group,
            callable_object: &callable,
            request_handler: r.handler().unwrap_or(b"wsgi-script"),
            script_name: &storage.script_name,
            path_info: &storage.path_info,
            listener_host: r.local_ip(),
            listener_port: r.local_port(),
            request_id: r.log_id().unwrap_or(b""),
            request_start_us: r.request_time(),
            script_reloading: reloading,
            enable_sendfile,
        },
        process: hooks::process_facts(),
    };
    if !process_group.is_empty() {
        let head = crate::daemon::client::request_head(&facts, &job.mod_wsgi, job.reload_mtime);
        return crate::daemon::client::run(r, &process_group, head);
    }
    if !python::runtime::is_ready() {
        r.log(Level::Error, "RWSGI0030: Python is not available in this Apache child; see the start-up errors in the main error log");
        return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    let log = log::request_logger(&r);
    // From here until the response is done this request may hold the GIL; a prefork stop
    // that interrupts it must not finalise Python.
    let _in_python = python::shutdown::in_python();
    let interp = match interp::for_group(&application_group, hooks::apache_version(), &log) {
        Ok(i) => i,
        Err(e) => return refused(r, &e),
    };
    let mut gw = EmbeddedGateway {
        r,
        reader: BodyReader::new(&r),
        writer: BodyWriter::new(&r),
        read_started: false,
        enable_sendfile,
    };
    match app::run(interp, &job, &mut gw, log) {
        app::Outcome::Done => sys::OK as i32,
        app::Outcome::Status(s) => s as i32,
        // Apache then answers 500 if the head has not gone out, and otherwise leaves the
        // (cut) response as it is.
        app::Outcome::WriteFailed => sys::AP_FILTER_ERROR,
    }
}
