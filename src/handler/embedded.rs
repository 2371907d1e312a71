//! Embedded mode: the app runs in this Apache child. The gateway reads the body through the
//! input filters and writes the response through the output filters.

use super::{facts, route};
use crate::config::{DirConfig, HandlerScript, MapHeadToGet, ScriptAlias};
use crate::httpd::input::BodyReader;
use crate::httpd::log::{self, Level};
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::httpd::{config_store, status};
use crate::python::environ::{ModWsgiFacts, ProcessFacts};
use crate::python::interp;
use crate::python::{self, app};
use crate::sys;
use crate::wsgi::failure::Failure;
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
        crate::httpd::output::apply_head(self.r, head, self.read_started);
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

/// Facts about this Apache child for `wsgi.multithread`/`wsgi.multiprocess`.
fn process_facts() -> ProcessFacts {
    let shape = python::runtime::identity().mpm;
    ProcessFacts {
        multithread: shape.max_threads > 1,
        multiprocess: shape.max_daemons > 1,
    }
}

/// What the content handler serves: a WSGI script (the request's file), or a
/// `WSGIHandlerScript` named by the request's handler.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Script(Option<&'a ScriptAlias>),
    Handler(&'a HandlerScript),
}

/// Runs the request's app in this process, or hands it to its daemon process group;
/// counted in the shared figures by whichever process runs the app.
pub fn run(r: Request<'_>, target: Target<'_>, dir: &DirConfig) -> i32 {
    let mut counted = None;
    let code = run_counted(r, target, dir, &mut counted);
    if let Some(rec) = counted {
        // OK and AP_FILTER_ERROR leave the status the response was sent with in the request;
        // any other code is the status Apache answers with.
        let status = if code == sys::OK as i32 || code == sys::AP_FILTER_ERROR {
            r.status()
        } else {
            code
        };
        status::end(rec, status);
    }
    code
}

fn run_counted(
    r: Request<'_>,
    target: Target<'_>,
    dir: &DirConfig,
    counted: &mut Option<status::Recording>,
) -> i32 {
    let conf = config_store::request_server_config(&r);
    // Daemon requests need no Python here, unless a dispatch script has to run first.
    if dir.dispatch_script.is_some() && !python::runtime::is_ready() {
        return log::refuse(&r, &Failure::PythonUnavailable);
    }
    let (opts, handler_script) = match target {
        Target::Script(alias) => (alias.map(|a| &a.options), None),
        Target::Handler(h) => (Some(&h.options), Some(h)),
    };
    let map_head = match dir.map_head_to_get.unwrap_or(MapHeadToGet::Auto) {
        MapHeadToGet::On => true,
        MapHeadToGet::Off => false,
        MapHeadToGet::Auto => r.has_content_filters(),
    };
    let storage = facts::collect(r, conf, dir, map_head);
    let sources = route::Sources {
        options: opts,
        process_group: dir.process_group.as_deref(),
        application_group: dir.application_group.as_deref(),
        callable_object: dir.callable_object.as_deref(),
        handler_script: handler_script.is_some(),
    };
    let configured = super::with_expand(r, &storage.script_name, |ctx| {
        route::configured(&sources, ctx)
    });
    let pass_authorization = opts
        .and_then(|o| o.pass_authorization)
        .or(dir.pass_authorization)
        .unwrap_or(false);
    let reloading = dir.script_reloading.unwrap_or(true);
    let enable_sendfile = dir.enable_sendfile.unwrap_or(false);
    let script = match handler_script {
        Some(h) => h.path.clone(),
        None => String::from_utf8_lossy(r.filename()).into_owned(),
    };
    let facts = facts::facts(r, &storage, pass_authorization);
    let mod_wsgi = |process_group, application_group, callable_object| ModWsgiFacts {
        process_group,
        application_group,
        callable_object,
        request_handler: r.handler().unwrap_or(b"wsgi-script"),
        handler_script: handler_script.map_or(&b""[..], |h| h.path.as_bytes()),
        script_name: &storage.script_name,
        path_info: &storage.path_info,
        listener_host: r.local_ip(),
        listener_port: r.local_port(),
        request_id: r.log_id().unwrap_or(b""),
        connection_id: r.connection_log_id(),
        request_start_us: r.request_time(),
        queue_start_us: 0,
        daemon_start_us: 0,
        script_reloading: reloading,
        enable_sendfile,
        ignore_activity: dir.ignore_activity.unwrap_or(false),
        apache_request: dir
            .pass_apache_request
            .unwrap_or(false)
            .then(|| std::ptr::NonNull::new(r.as_ptr().cast()))
            .flatten(),
    };
    let log = log::request_logger(&r);
    // From here until the response is done this request may hold the GIL; a prefork stop
    // that interrupts it must not finalise Python.
    let _in_python = python::shutdown::in_python();
    let choice = match &dir.dispatch_script {
        None => route::Choice::default(),
        Some(ds) => {
            let current = mod_wsgi(
                &configured.process_group,
                &configured.application_group,
                &configured.callable,
            );
            match super::dispatch::choose(r, ds, &storage.script_name, &facts, &current, log) {
                Ok(choice) => choice,
                Err(status) => return status,
            }
        }
    };
    let rules = route::Rules {
        restrict_process: dir.restrict_process.as_deref(),
        embedded_restricted: conf.daemon.embedded_restricted(),
    };
    // A clone: `mod_wsgi` borrows the configured names for as long as it lives.
    let routed = match route::route(configured.clone(), choice, &rules, &script) {
        Ok(routed) => routed,
        Err(f) => return log::refuse(&r, &f),
    };
    let (application_group, callable) = (&routed.application_group, &routed.callable);
    let reload_mtime = match handler_script {
        Some(h) => python::preload::apr_mtime(&h.path),
        None => Some(r.file_mtime()),
    };
    if let route::Transport::Daemon { group } = &routed.transport {
        let mw = mod_wsgi(group, application_group, callable);
        let head = crate::daemon::client::request_head(
            &script,
            &facts,
            &mw,
            reload_mtime.filter(|_| reloading),
        );
        // Counted by the daemon that runs it (see httpd::status).
        return crate::daemon::client::run(r, group, head);
    }
    if !python::runtime::is_ready() {
        return log::refuse(&r, &Failure::PythonUnavailable);
    }
    *counted = status::begin(&r, application_group);
    let interp = match interp::for_group(
        application_group,
        python::runtime::identity().apache_version,
        &log,
    ) {
        Ok(i) => i,
        Err(e) => return log::refuse(&r, &Failure::from(&e)),
    };
    if log::request_log_enabled(&r, Level::Debug) {
        let group = if application_group.is_empty() {
            "%{GLOBAL}"
        } else {
            application_group
        };
        r.log(
            Level::Debug,
            &format!(
                "{}: request for '{}' dispatched to application group '{group}' in process {} \
                 (embedded): script '{script}', callable '{callable}'",
                crate::log_ids::REQUEST_DISPATCHED,
                String::from_utf8_lossy(r.uri()),
                std::process::id()
            ),
        );
    }
    let job = app::Job {
        script: &script,
        reload_mtime: reload_mtime.filter(|_| reloading),
        callable,
        facts: &facts,
        mod_wsgi: mod_wsgi(routed.process_group(), application_group, callable),
        process: process_facts(),
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
