//! Embedded mode: the app runs in this Apache child. The gateway reads the body through the
//! input filters and writes the response through the output filters.

use super::facts;
use crate::config::{DirConfig, MapHeadToGet, ScriptAlias, expand};
use crate::httpd::input::BodyReader;
use crate::httpd::log::{self, Level};
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::httpd::{config_store, hooks};
use crate::python::{self, app, environ::ModWsgiFacts};
use crate::sys;
use crate::wsgi::gateway::{After, ClientGone, Gateway, ReadFailure, ResponseHead};

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
        let r = self.r;
        r.set_status(head.status, head.status_line.as_bytes());
        let (out, err_out) = (r.headers_out(), r.err_headers_out());
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case("content-type") {
                r.set_content_type(value.as_bytes());
            } else if name.eq_ignore_ascii_case("content-length") {
                // Set below from the validated number.
            } else if name.eq_ignore_ascii_case("www-authenticate") {
                err_out.add(name.as_bytes(), &latin1(value));
            } else {
                out.add(name.as_bytes(), &latin1(value));
            }
        }
        if let Some(cl) = head.content_length {
            r.set_content_length(cl);
        }
        if !self.read_started {
            r.clear_expect_continue();
        }
    }

    fn write(&mut self, data: &[u8], after: After) -> Result<(), ClientGone> {
        self.writer.write(data, after)
    }

    fn send_file(
        &mut self,
        fd: i32,
        offset: u64,
        len: u64,
        after: After,
    ) -> Result<(), ClientGone> {
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

/// Header values were validated as latin-1 text: send them as latin-1 bytes.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

/// Runs the request's app in this process.
pub fn run(r: Request<'_>, alias: Option<&ScriptAlias>, dir: &DirConfig) -> i32 {
    if !python::runtime::is_ready() {
        r.log(Level::Error, "RWSGI0030: Python is not available in this Apache child; see the start-up errors in the main error log");
        return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
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
        port: r.server_port(),
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
    if !process_group.is_empty() {
        r.log(
            Level::Error,
            &format!(
                "RWSGI0031: no WSGI daemon process called '{process_group}' has been configured; \
                 the request cannot be delegated"
            ),
        );
        return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    let interp = match python::interp::for_group(&application_group, hooks::apache_version()) {
        Ok(i) => i,
        Err(e) => {
            r.log(Level::Error, &format!("RWSGI0032: {e}"));
            return sys::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
    };
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
            connection_id: r.connection_log_id(),
            request_start_us: r.request_time(),
            script_reloading: reloading,
            enable_sendfile,
        },
        process: hooks::process_facts(),
    };
    let mut gw = EmbeddedGateway {
        r,
        reader: BodyReader::new(&r),
        writer: BodyWriter::new(&r),
        read_started: false,
        enable_sendfile,
    };
    let log = log::request_logger(&r);
    match app::run(interp, &job, &mut gw, log) {
        app::Outcome::Done => sys::OK as i32,
        app::Outcome::Status(s) => s as i32,
    }
}
