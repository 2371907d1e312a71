//! Writing the response through Apache's output filters: one brigade per request, reused;
//! transient buckets for bytes the caller keeps alive across the pass; file buckets for
//! files (sendfile where `EnableSendfile` allows). Callers release the GIL around these.

use crate::sys;
pub use crate::wsgi::gateway::{After, ClientGone};

/// Final chunks larger than this are flushed rather than left for Apache to copy aside.
const COPY_LIMIT: usize = 16 * 1024;

/// Passes body data for one request.
pub struct BodyWriter {
    r: *mut sys::request_rec,
    bb: *mut sys::apr_bucket_brigade,
    ended: bool,
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
        }
    }

    /// True once the end of the response was passed.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn pass(&mut self, after: After) -> Result<(), ClientGone> {
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
        if rv != 0 || aborted {
            Err(ClientGone)
        } else {
            Ok(())
        }
    }

    /// Sends `data`; it is only borrowed for the duration of the call.
    pub fn write(&mut self, data: &[u8], after: After) -> Result<(), ClientGone> {
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
    ) -> Result<(), ClientGone> {
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
                    return Err(ClientGone);
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
    pub fn end(&mut self) -> Result<(), ClientGone> {
        if self.ended {
            Ok(())
        } else {
            self.pass(After::End)
        }
    }

    /// Ends a response that failed after its headers went out: the client must be able to
    /// tell it is incomplete (no last chunk, connection closed).
    pub fn end_broken(&mut self) {
        // SAFETY: r and bb are live.
        unsafe {
            sys::rwsgi_brigade_add_broken(self.bb, (*self.r).pool);
            (*(*self.r).connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
        }
        let _closing_anyway = self.pass(After::End);
    }
}
