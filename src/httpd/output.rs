//! Writing the response through Apache's output filters: one brigade per request, reused;
//! transient buckets for bytes the caller keeps alive across the pass; file buckets for
//! files (sendfile where `EnableSendfile` allows). Callers release the GIL around these,
//! unless [`BodyWriter::quick`] says the pass can neither block nor run other requests.

use crate::sys;
pub use crate::wsgi::gateway::{After, WriteError};
use std::ffi::CStr;

/// Output filters that never sleep, never wait on anything but the connection's core
/// filter, and never run another request on this thread: Apache's protocol filters (framing,
/// headers, error buckets, ranges), the subrequest hand-over to the parent's chain, and
/// mod_logio's byte counter. The core filter itself blocks only to flush or once about
/// 64 KiB are pending, which the caller already accounts for. Anything else (mod_include
/// runs subrequests on this thread, mod_ratelimit sleeps, mod_deflate and TLS spend CPU and
/// may buffer, third-party filters are unknown) gets the GIL released around the pass.
/// Names are as Apache stores them (lower case).
const PLAIN_FILTERS: &[&[u8]] = &[
    b"core",
    b"content_length",
    b"http_header",
    b"http_outerror",
    b"chunk",
    b"byterange",
    b"subreq_core",
    b"log_input_output",
];

/// Final chunks larger than this are flushed rather than left for Apache to copy aside.
const COPY_LIMIT: usize = 16 * 1024;

/// Passes body data for one request.
pub struct BodyWriter {
    r: *mut sys::request_rec,
    bb: *mut sys::apr_bucket_brigade,
    ended: bool,
    /// A filter failed: nothing more is passed.
    failed: bool,
}

impl BodyWriter {
    /// A writer for the request's response, used only while the request lives.
    pub fn new(req: &super::request::Request<'_>) -> Self {
        let r = req.as_ptr();
        // SAFETY: the brigade lives in the request pool.
        let bb = unsafe { sys::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        BodyWriter {
            r,
            bb,
            ended: false,
            failed: false,
        }
    }

    /// True once the end of the response was passed.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// True when writing `len` bytes followed by `after` can neither block nor run other
    /// requests on this thread, so it may run with the GIL held: no flush (the core filter
    /// would wait for a slow client to take the bytes), and only [`PLAIN_FILTERS`] in the way.
    pub fn quick(&self, len: usize, after: After) -> bool {
        let flushes = after == After::Flush || (after == After::End && len > COPY_LIMIT);
        !flushes && self.plain_chain()
    }

    /// True when every filter from the request's first output filter down to the
    /// connection's core filter is one of [`PLAIN_FILTERS`]. Checked at each pass because
    /// filters may be added while the response goes out.
    fn plain_chain(&self) -> bool {
        let mut plain = true;
        self.each_filter(|name| plain &= PLAIN_FILTERS.contains(&name));
        plain
    }

    fn each_filter(&self, mut f: impl FnMut(&[u8])) {
        // SAFETY: the request's filter list is live while the request runs; every filter
        // has a registered record with a NUL-terminated name.
        unsafe {
            let mut filter = (*self.r).output_filters;
            while !filter.is_null() {
                let frec = (*filter).frec;
                if !frec.is_null() && !(*frec).name.is_null() {
                    f(CStr::from_ptr((*frec).name).to_bytes());
                }
                filter = (*filter).next;
            }
        }
    }

    /// What failed, for the log: the filter chain and the status it returned.
    fn filter_failure(&self, rv: sys::apr_status_t) -> String {
        let mut names = Vec::new();
        self.each_filter(|name| names.push(String::from_utf8_lossy(name).to_ascii_uppercase()));
        let meaning = if rv == sys::AP_FILTER_ERROR {
            "a filter already produced an error response (AP_FILTER_ERROR)".to_string()
        } else {
            let mut buf = [0 as std::ffi::c_char; 256];
            // SAFETY: apr_strerror writes a NUL-terminated message into the buffer.
            unsafe {
                sys::apr_strerror(rv, buf.as_mut_ptr(), buf.len());
                CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
            }
        };
        format!(
            "the output filter chain {} returned status {rv} ({meaning})",
            names.join(" -> ")
        )
    }

    fn pass(&mut self, after: After) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed(
                "the output filters failed earlier".to_string(),
            ));
        }
        // SAFETY: bb and r are live; metadata buckets are created from the brigade allocator.
        let rv = unsafe {
            match after {
                After::Buffer => {}
                After::Flush => sys::rwsgi_brigade_add_flush(self.bb),
                After::End => sys::rwsgi_brigade_add_eos(self.bb),
            }
            let rv = sys::ap_pass_brigade((*self.r).output_filters, self.bb);
            sys::apr_brigade_cleanup(self.bb.cast());
            rv
        };
        if after == After::End {
            self.ended = true;
        }
        // SAFETY: the connection outlives the request.
        let aborted = unsafe { (*(*self.r).connection).aborted != 0 };
        if aborted {
            // The core filter marks the connection aborted when the client is gone
            // (reset, broken pipe, write timeout), whatever it returns.
            Err(WriteError::ClientGone)
        } else if rv != 0 {
            self.failed = true;
            Err(WriteError::Failed(self.filter_failure(rv)))
        } else {
            Ok(())
        }
    }

    /// Sends `data`; it is only borrowed for the duration of the call.
    pub fn write(&mut self, data: &[u8], after: After) -> Result<(), WriteError> {
        if !data.is_empty() {
            // SAFETY: a transient bucket borrows `data`; any filter that keeps it past this
            // pass must set it aside (copy), which is the transient bucket contract.
            unsafe { sys::rwsgi_brigade_add_transient(self.bb, data.as_ptr().cast(), data.len()) };
            if after == After::End && data.len() > COPY_LIMIT {
                // Without a flush, the core filter would copy whatever the socket does not
                // take at once; flushing writes the caller's bytes in place.
                // SAFETY: a flush bucket from the brigade's allocator.
                unsafe { sys::rwsgi_brigade_add_flush(self.bb) };
            }
        }
        self.pass(after)
    }

    /// Sends `len` bytes of an open file from `offset`. The descriptor is duplicated (with
    /// APR's own cleanup, so Apache may set the bucket aside), so the caller may close its
    /// own at once.
    /// `sendfile` is used where core's `EnableSendfile` allows it, or when `force_sendfile`
    /// (`WSGIEnableSendfile On`) asks for it; mmap only where core's `EnableMMAP` allows it.
    pub fn send_file(
        &mut self,
        fd: i32,
        offset: u64,
        len: u64,
        after: After,
        force_sendfile: bool,
    ) -> Result<(), WriteError> {
        if len > 0 {
            let mut borrowed: *mut sys::apr_file_t = std::ptr::null_mut();
            let mut own: *mut sys::apr_file_t = std::ptr::null_mut();
            let mut raw_fd = fd;
            // SAFETY: `borrowed` wraps the caller's open descriptor without taking ownership;
            // apr_file_dup gives a descriptor owned by the request pool (closed by APR's
            // cleanup, movable by apr_file_setaside).
            unsafe {
                let pool = (*self.r).pool;
                let mut flags = sys::APR_FOPEN_READ as i32;
                if force_sendfile || sys::rwsgi_sendfile_enabled(self.r) != 0 {
                    flags |= sys::APR_SENDFILE_ENABLED as i32;
                }
                if sys::apr_os_file_put(&mut borrowed, &mut raw_fd, flags, pool) != 0
                    || sys::apr_file_dup(&mut own, borrowed, pool) != 0
                {
                    return Err(WriteError::Failed(format!(
                        "could not open descriptor {fd} for the response body"
                    )));
                }
                sys::apr_brigade_insert_file(
                    self.bb,
                    own,
                    offset as sys::apr_off_t,
                    len as sys::apr_off_t,
                    pool,
                );
                if sys::rwsgi_mmap_enabled(self.r) == 0 {
                    self.disable_mmap();
                }
            }
        }
        self.pass(after)
    }

    /// Honours `EnableMMAP Off` as Apache's own file handler does: file buckets are read
    /// with read(2), so a file truncated while it is sent ends the body early instead of
    /// killing the process with SIGBUS when a filter (DEFLATE) touches the lost pages.
    fn disable_mmap(&mut self) {
        // SAFETY: the brigade is live and holds only the buckets added since the last pass;
        // apr_brigade_insert_file may have split the file into several buckets.
        unsafe {
            let end = sys::rwsgi_brigade_sentinel(self.bb);
            let mut b = sys::rwsgi_brigade_first(self.bb);
            while b != end {
                if sys::rwsgi_bucket_is_file(b) != 0 {
                    sys::apr_bucket_file_enable_mmap(b, 0);
                }
                b = sys::rwsgi_bucket_next(b);
            }
        }
    }

    /// Ends the response normally (if not already ended).
    pub fn end(&mut self) -> Result<(), WriteError> {
        if self.ended {
            Ok(())
        } else {
            self.pass(After::End)
        }
    }

    /// Ends a response that failed after its headers went out: the client must be able to
    /// tell it is incomplete (no last chunk, connection closed).
    pub fn end_broken(&mut self) {
        // SAFETY: r is live.
        unsafe { (*(*self.r).connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE };
        if self.failed {
            return;
        }
        // SAFETY: r and bb are live.
        unsafe { sys::rwsgi_brigade_add_broken(self.bb, (*self.r).pool) };
        let _closing_anyway = self.pass(After::End);
    }
}

/// Makes a validated response head the request's status and headers (either mode).
/// `read_started`: the body was read, so a `100 Continue` may already have gone out.
pub fn apply_head(
    r: super::request::Request<'_>,
    head: &crate::wsgi::gateway::ResponseHead,
    read_started: bool,
) {
    // PEP 3333 native strings: the status line and headers go out as latin-1 bytes.
    r.set_status(head.status, &latin1(&head.status_line));
    let (out, err_out) = (r.headers_out(), r.err_headers_out());
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("content-type") {
            r.set_content_type(&latin1(value));
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
    if !read_started {
        r.clear_expect_continue();
    }
}

/// Header values were validated as latin-1 text: send them as latin-1 bytes.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}
