//! Reading the request body through Apache's input filters (de-chunking, limits, 100-continue
//! all happen there). Callers release the GIL around these calls: they block on the client.

use crate::sys;

pub use crate::wsgi::gateway::ReadFailure as ReadError;

/// Reads the body of one request. One brigade per request, reused for every read.
pub struct BodyReader {
    r: *mut sys::request_rec,
    bb: *mut sys::apr_bucket_brigade,
    eos: bool,
    failed: Option<ReadError>,
}

impl BodyReader {
    /// A reader for the request's body, used only while the request lives.
    pub fn new(req: &super::request::Request<'_>) -> Self {
        let r = req.as_ptr();
        // SAFETY: the brigade lives in the request pool with the connection's allocator.
        let bb = unsafe { sys::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        BodyReader {
            r,
            bb,
            eos: false,
            failed: None,
        }
    }

    /// Reads up to `buf.len()` bytes; `Ok(0)` means end of body. Blocks for the client.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.read_mode(buf, true)
    }

    /// True once the end of the body was read.
    pub fn ended(&self) -> bool {
        self.eos
    }

    /// Reads what has arrived, up to `buf.len()` bytes, without waiting: `Ok(0)` when
    /// nothing has (or at the end of the body).
    pub fn read_available(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.read_mode(buf, false)
    }

    fn read_mode(&mut self, buf: &mut [u8], block: bool) -> Result<usize, ReadError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.eos || buf.is_empty() {
            return Ok(0);
        }
        loop {
            // SAFETY: r and bb are live; READBYTES with a bound never returns more than asked.
            let rv = unsafe {
                sys::ap_get_brigade(
                    (*self.r).input_filters,
                    self.bb,
                    sys::ap_input_mode_t_AP_MODE_READBYTES,
                    if block {
                        sys::apr_read_type_e_APR_BLOCK_READ
                    } else {
                        sys::apr_read_type_e_APR_NONBLOCK_READ
                    },
                    buf.len() as sys::apr_off_t,
                )
            };
            if !block && (rv == libc::EAGAIN || rv == 0 && self.brigade_empty()) {
                // SAFETY: bb is live.
                unsafe { sys::apr_brigade_cleanup(self.bb.cast()) };
                return Ok(0);
            }
            if rv != 0 {
                // SAFETY: bb is live; drop whatever the failed read left.
                unsafe { sys::apr_brigade_cleanup(self.bb.cast()) };
                let err = read_error(rv);
                self.failed = Some(err.clone());
                return Err(err);
            }
            let mut copied = 0usize;
            // SAFETY: walk the brigade's buckets, copying data until the buffer is full.
            unsafe {
                let mut b = sys::rwsgi_brigade_first(self.bb);
                while b != sys::rwsgi_brigade_sentinel(self.bb) {
                    if sys::rwsgi_bucket_is_eos(b) != 0 {
                        self.eos = true;
                        break;
                    }
                    if sys::rwsgi_bucket_is_metadata(b) == 0 {
                        let mut data: *const libc::c_char = std::ptr::null();
                        let mut len: sys::apr_size_t = 0;
                        let rv = sys::rwsgi_bucket_read(
                            b,
                            &mut data,
                            &mut len,
                            sys::apr_read_type_e_APR_BLOCK_READ,
                        );
                        if rv != 0 {
                            sys::apr_brigade_cleanup(self.bb.cast());
                            let err = read_error(rv);
                            self.failed = Some(err.clone());
                            return Err(err);
                        }
                        let n = len.min(buf.len() - copied);
                        std::ptr::copy_nonoverlapping(
                            data.cast::<u8>(),
                            buf.as_mut_ptr().add(copied),
                            n,
                        );
                        copied += n;
                    }
                    b = sys::rwsgi_bucket_next(b);
                }
                sys::apr_brigade_cleanup(self.bb.cast());
            }
            if copied > 0 || self.eos || !block {
                return Ok(copied);
            }
        }
    }

    fn brigade_empty(&self) -> bool {
        // SAFETY: bb is live; an empty brigade's first bucket is its sentinel.
        unsafe { sys::rwsgi_brigade_first(self.bb) == sys::rwsgi_brigade_sentinel(self.bb) }
    }
}

fn read_error(rv: sys::apr_status_t) -> ReadError {
    // SAFETY: pure mapping function of httpd.
    let status =
        unsafe { sys::ap_map_http_request_error(rv, sys::HTTP_BAD_REQUEST as libc::c_int) };
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: apr_strerror writes a NUL-terminated message into the buffer.
    let msg = unsafe {
        sys::apr_strerror(rv, buf.as_mut_ptr(), buf.len());
        std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    ReadError {
        status: status as u16,
        message: format!("request data read error: {msg}"),
    }
}
