//! Embedded mode: the app runs in this Apache child. The gateway reads the body through the
//! input filters and writes the response through the output filters.

use crate::httpd::input::BodyReader;
use crate::httpd::log::{self, Level};
use crate::httpd::output::BodyWriter;
use crate::httpd::request::Request;
use crate::httpd::status;
use crate::python::environ::ProcessFacts;
use crate::python::interp;
use crate::python::{self, app};
use crate::sys;
use crate::wsgi::failure::Failure;
use crate::wsgi::gateway::{After, Gateway, ReadFailure, RequestLog, ResponseHead, WriteError};

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
pub fn process_facts() -> ProcessFacts {
    let shape = python::runtime::identity().mpm;
    ProcessFacts {
        multithread: shape.max_threads > 1,
        multiprocess: shape.max_daemons > 1,
    }
}

/// Runs `job` in this process's interpreter for its application group, counted in the
/// shared figures.
pub fn run(r: Request<'_>, job: &app::Job<'_>, enable_sendfile: bool, log: RequestLog) -> i32 {
    let mut counted = None;
    let code = run_counted(r, job, enable_sendfile, log, &mut counted);
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
    job: &app::Job<'_>,
    enable_sendfile: bool,
    log: RequestLog,
    counted: &mut Option<status::Recording>,
) -> i32 {
    let (application_group, script, callable) =
        (job.mod_wsgi.application_group, job.script, job.callable);
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
    let mut gw = EmbeddedGateway {
        r,
        reader: BodyReader::new(&r),
        writer: BodyWriter::new(&r),
        read_started: false,
        enable_sendfile,
    };
    match app::run(interp, job, &mut gw, log) {
        app::Outcome::Done => sys::OK as i32,
        app::Outcome::Status(s) => s as i32,
        // Apache then answers 500 if the head has not gone out, and otherwise leaves the
        // (cut) response as it is.
        app::Outcome::WriteFailed => sys::AP_FILTER_ERROR,
    }
}
