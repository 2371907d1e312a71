//! A borrowed, typed view of Apache's `request_rec`: the accessors the handler needs, each a
//! thin read of one field or one httpd call.

use super::table::Table;
use super::{cstr_bytes, opt_cstr_bytes, pstrdup};
use crate::sys;
use std::marker::PhantomData;

/// The request being served. Construction is the single unsafe step.
#[derive(Clone, Copy)]
pub struct Request<'r> {
    r: *mut sys::request_rec,
    _life: PhantomData<&'r mut sys::request_rec>,
}

/// What the request's filename points at after Apache's directory walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    Regular,
    Directory,
    Other,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `r` is the live request Apache passed to the current hook, valid for `'r`.
    pub unsafe fn from_raw(r: *mut sys::request_rec) -> Self {
        Request {
            r,
            _life: PhantomData,
        }
    }

    /// The raw pointer, for the layers that must hand it back to httpd.
    pub fn as_ptr(&self) -> *mut sys::request_rec {
        self.r
    }

    fn rec(&self) -> &'r sys::request_rec {
        // SAFETY: from_raw's contract.
        unsafe { &*self.r }
    }

    fn conn(&self) -> &'r sys::conn_rec {
        // SAFETY: every request has a live connection.
        unsafe { &*self.rec().connection }
    }

    /// The request's pool (freed when the request ends).
    pub fn pool(&self) -> *mut sys::apr_pool_t {
        self.rec().pool
    }

    /// The (virtual) server serving the request.
    pub fn server(&self) -> *mut sys::server_rec {
        self.rec().server
    }

    /// The decoded URI path (`r->uri`).
    /// The virtual host serving the request as a key: its `server_rec` address, 0 for the
    /// main server.
    pub fn vhost_key(&self) -> usize {
        let s = self.server();
        // SAFETY: a live request's server_rec is live.
        if unsafe { (*s).is_virtual } == 0 {
            0
        } else {
            s as usize
        }
    }

    pub fn uri(&self) -> &'r [u8] {
        // SAFETY: request strings live in the request pool.
        unsafe { cstr_bytes(self.rec().uri) }
    }
    /// The URI exactly as the client sent it (REQUEST_URI).
    pub fn unparsed_uri(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().unparsed_uri) }
    }
    /// The raw query string, empty when there is none.
    pub fn args(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().args) }
    }
    /// The request method.
    pub fn method(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().method) }
    }
    /// The protocol of the request line ("HTTP/1.1").
    pub fn protocol(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().protocol) }
    }
    /// The file the URI maps to (the WSGI script after the directory walk).
    pub fn filename(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().filename) }
    }
    /// The part of the URI after the script (PATH_INFO, decoded).
    pub fn path_info(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(self.rec().path_info) }
    }
    /// The content handler name Apache chose, if any.
    pub fn handler(&self) -> Option<&'r [u8]> {
        // SAFETY: as above.
        unsafe { opt_cstr_bytes(self.rec().handler) }
    }
    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&'r [u8]> {
        // SAFETY: as above.
        unsafe { opt_cstr_bytes(self.rec().user) }
    }
    /// The authentication scheme used, if any.
    pub fn auth_type(&self) -> Option<&'r [u8]> {
        // SAFETY: as above.
        unsafe { opt_cstr_bytes(self.rec().ap_auth_type) }
    }
    /// The request's log id (`%L`), generating it the way the log formatter would.
    pub fn log_id(&self) -> Option<&'r [u8]> {
        // SAFETY: the generate_log_id hook stores a pool string into r->log_id.
        unsafe {
            if (*self.r).log_id.is_null() {
                let c = (*self.r).connection;
                sys::ap_run_generate_log_id(c, self.r, &mut (*self.r).log_id);
            }
            opt_cstr_bytes(self.rec().log_id)
        }
    }
    /// The connection's log id, if something already generated one (Apache does so when it
    /// logs for the connection).
    pub fn connection_log_id(&self) -> Option<&'r [u8]> {
        // SAFETY: the generate_log_id hook stores a connection-pool string into c->log_id.
        unsafe { opt_cstr_bytes(self.conn().log_id) }
    }
    /// The Host the client asked for (without port), if any.
    pub fn hostname(&self) -> Option<&'r [u8]> {
        // SAFETY: as above.
        unsafe { opt_cstr_bytes(self.rec().hostname) }
    }
    /// Request start, microseconds since the epoch.
    pub fn request_time(&self) -> i64 {
        self.rec().request_time
    }

    /// The request headers.
    pub fn headers_in(&self) -> Table<'r> {
        // SAFETY: request tables live in the request pool.
        unsafe { Table::from_raw(self.rec().headers_in, self.pool()) }
    }
    /// The response headers.
    pub fn headers_out(&self) -> Table<'r> {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.rec().headers_out, self.pool()) }
    }
    /// Response headers kept on error responses too.
    pub fn err_headers_out(&self) -> Table<'r> {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.rec().err_headers_out, self.pool()) }
    }
    /// The request's environment table (SetEnv, mod_ssl, mod_rewrite…).
    pub fn subprocess_env(&self) -> Table<'r> {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.rec().subprocess_env, self.pool()) }
    }
    /// The request notes.
    pub fn notes(&self) -> Table<'r> {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.rec().notes, self.pool()) }
    }

    /// What the request's file is, as Apache's directory walk stat'ed it.
    pub fn file_kind(&self) -> FileKind {
        match self.rec().finfo.filetype {
            sys::apr_filetype_e_APR_NOFILE => FileKind::Missing,
            sys::apr_filetype_e_APR_REG => FileKind::Regular,
            sys::apr_filetype_e_APR_DIR => FileKind::Directory,
            _ => FileKind::Other,
        }
    }

    /// Modification time of the request's file (µs since the epoch), as stat'ed by Apache.
    pub fn file_mtime(&self) -> i64 {
        self.rec().finfo.mtime
    }

    /// True when Apache's `CGIPassAuth On` applies.
    pub fn cgi_pass_auth(&self) -> bool {
        // SAFETY: reads core's merged per-dir config of the live request.
        unsafe { sys::rwsgi_cgi_pass_auth(self.r) != 0 }
    }

    /// True when an output filter that transforms content (deflate, cache…) is installed.
    pub fn has_content_filters(&self) -> bool {
        // SAFETY: reads the live request's filter chain.
        unsafe { sys::rwsgi_has_content_filters(self.r) != 0 }
    }

    /// True when `Options ExecCGI` applies to the request.
    pub fn exec_cgi_allowed(&self) -> bool {
        // SAFETY: the request is live.
        (unsafe { sys::ap_allow_options(self.r) } & sys::OPT_EXECCGI as libc::c_int) != 0
    }

    /// Replaces the file the request maps to.
    pub fn set_filename(&self, name: &[u8]) {
        // SAFETY: the copy lives in the request pool.
        unsafe { (*self.r).filename = pstrdup(self.pool(), name) }
    }
    /// Sets the authenticated user (an auth script named the user it accepted).
    pub fn set_user(&self, user: &[u8]) {
        // SAFETY: the copy lives in the request pool.
        unsafe { (*self.r).user = pstrdup(self.pool(), user) }
    }
    /// The client's host name when Apache looked it up (`HostnameLookups`), else None.
    pub fn remote_host(&self) -> Option<&'r [u8]> {
        // SAFETY: the live request and its connection; the name lives in the connection pool.
        unsafe {
            let h = sys::ap_get_remote_host(
                self.rec().connection,
                self.rec().per_dir_config.cast(),
                sys::REMOTE_HOST as libc::c_int,
                std::ptr::null_mut(),
            );
            opt_cstr_bytes(h)
        }
    }
    /// True when the connection uses TLS (mod_ssl or another TLS module).
    pub fn ssl_is_https(&self) -> bool {
        // SAFETY: the live request's connection.
        unsafe { sys::ap_ssl_conn_is_ssl(self.rec().connection) != 0 }
    }
    /// A TLS module's variable for this request (`SSL_CLIENT_S_DN`, `HTTPS`…), if set.
    pub fn ssl_var(&self, name: &[u8]) -> Option<Vec<u8>> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: the live request, its server and connection; the value is allocated in
        // the request pool and copied before returning.
        unsafe {
            let v = sys::ap_ssl_var_lookup(
                self.pool(),
                self.server(),
                self.rec().connection,
                self.r,
                name.as_ptr(),
            );
            opt_cstr_bytes(v).map(<[u8]>::to_vec)
        }
    }
    /// Sets the content handler name.
    pub fn set_handler(&self, name: &'static std::ffi::CStr) {
        // SAFETY: a static string outlives the request.
        unsafe { (*self.r).handler = name.as_ptr() }
    }

    /// SERVER_NAME as Apache computes it (UseCanonicalName).
    pub fn server_name(&self) -> &'r [u8] {
        // SAFETY: ap_get_server_name returns a pool or config string.
        unsafe { cstr_bytes(sys::ap_get_server_name(self.r)) }
    }
    /// The `ServerName` of the serving server, ignoring `UseCanonicalName`.
    pub fn configured_server_name(&self) -> &'r [u8] {
        // SAFETY: server_rec strings live in the config pool.
        unsafe { cstr_bytes((*self.server()).server_hostname) }
    }
    /// The server port of the request.
    pub fn server_port(&self) -> u16 {
        // SAFETY: the request is live.
        unsafe { sys::ap_get_server_port(self.r) }
    }
    /// The port the serving (virtual) server is for: the port of its `ServerName`, else the
    /// port the connection came in on. Unlike `server_port`, never the port a client wrote
    /// in `Host` (what `ap_get_server_port` returns under `UseCanonicalName Off`), so names
    /// built from it (application groups) are not the client's to choose.
    pub fn vhost_port(&self) -> u16 {
        // SAFETY: the server_rec lives in the config pool for the request's life.
        match unsafe { (*self.server()).port } {
            0 => self.local_port(),
            p => p,
        }
    }
    /// The ServerAdmin of the serving server.
    pub fn server_admin(&self) -> &'r [u8] {
        // SAFETY: server_rec strings live in the config pool.
        unsafe { cstr_bytes((*self.server()).server_admin) }
    }
    /// The DocumentRoot of the serving server.
    pub fn document_root(&self) -> &'r [u8] {
        // SAFETY: returns a config or pool string.
        unsafe { cstr_bytes(sys::ap_document_root(self.r)) }
    }
    /// CONTEXT_PREFIX (the URL prefix of an alias, if any).
    pub fn context_prefix(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(sys::ap_context_prefix(self.r)) }
    }
    /// CONTEXT_DOCUMENT_ROOT (the directory an alias maps to, if any).
    pub fn context_document_root(&self) -> &'r [u8] {
        // SAFETY: as above.
        unsafe { cstr_bytes(sys::ap_context_document_root(self.r)) }
    }
    /// The server signature line (ServerSignature).
    pub fn signature(&self) -> &'r [u8] {
        // SAFETY: ap_psignature allocates in the request pool.
        unsafe { cstr_bytes(sys::ap_psignature(c"".as_ptr(), self.r)) }
    }
    /// The request scheme ("http" or "https").
    pub fn scheme(&self) -> &'r [u8] {
        // SAFETY: the hook returns a static or pool string.
        unsafe { cstr_bytes(sys::ap_run_http_scheme(self.r)) }
    }
    /// The server banner (ServerTokens).
    pub fn server_software() -> &'static [u8] {
        // SAFETY: the banner is a static string for the server's life.
        unsafe { cstr_bytes(sys::ap_get_server_banner()) }
    }
    /// The local address the connection came in on.
    pub fn local_ip(&self) -> &'r [u8] {
        // SAFETY: connection strings live in the connection pool.
        unsafe { cstr_bytes(self.conn().local_ip) }
    }
    /// The local port the connection came in on.
    pub fn local_port(&self) -> u16 {
        // SAFETY: local_addr is set for every connection.
        unsafe { (*self.conn().local_addr).port }
    }
    /// The client's address (as mod_remoteip may have rewritten it).
    pub fn remote_ip(&self) -> &'r [u8] {
        // SAFETY: useragent_ip is set for every request.
        unsafe { cstr_bytes(self.rec().useragent_ip) }
    }
    /// The client's port.
    pub fn remote_port(&self) -> u16 {
        let a = self.rec().useragent_addr;
        // SAFETY: the address lives in the connection pool when present.
        if a.is_null() { 0 } else { unsafe { (*a).port } }
    }

    /// True when the client has gone away.
    pub fn aborted(&self) -> bool {
        self.conn().aborted != 0
    }

    /// Forces the connection closed after this response.
    pub fn close_connection(&self) {
        // SAFETY: the connection is live; keepalive is a plain enum field.
        unsafe { (*self.rec().connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE }
    }

    /// Stops Apache sending an interim `100 Continue` (the app answered without reading).
    pub fn clear_expect_continue(&self) {
        // SAFETY: plain field of the live request.
        unsafe { (*self.r).expecting_100 = 0 }
    }

    /// The response status so far (`r->status`).
    pub fn status(&self) -> i32 {
        self.rec().status
    }

    /// Writes body bytes through `ap_rwrite` (the buffered path mod_status and other
    /// generators use, so the output interleaves with theirs). False when the write failed.
    pub fn rwrite(&self, data: &[u8]) -> bool {
        data.chunks(i32::MAX as usize).all(|c| {
            // SAFETY: the bytes are readable for the call; Apache copies or sends them.
            unsafe { sys::ap_rwrite(c.as_ptr().cast(), c.len() as libc::c_int, self.r) >= 0 }
        })
    }

    /// Sets the response status and status line.
    pub fn set_status(&self, code: u16, line: &[u8]) {
        // SAFETY: the status line is copied into the request pool.
        unsafe {
            (*self.r).status = code as libc::c_int;
            (*self.r).status_line = pstrdup(self.pool(), line);
        }
    }
    /// Puts the status back to 200 with no status line, so that an error status the handler
    /// returns is served as Apache's own error page (`ap_die` reads any other status as an
    /// error met while serving an earlier one).
    pub fn reset_status(&self) {
        // SAFETY: the request is live; a null status line makes Apache derive it.
        unsafe {
            (*self.r).status = sys::HTTP_OK as libc::c_int;
            (*self.r).status_line = std::ptr::null();
        }
    }
    /// Gives writes to the client `timeout` until the guard drops (then the connection's own
    /// comes back). None on a secondary connection (an HTTP/2 stream), whose socket is the
    /// shared main connection's.
    pub fn client_timeout(&self, timeout: std::time::Duration) -> Option<ClientTimeout<'r>> {
        if !self.conn().master.is_null() {
            return None;
        }
        // SAFETY: the connection is live; its socket lives as long as the connection.
        let sock = unsafe { sys::ap_get_conn_socket(self.rec().connection) };
        if sock.is_null() {
            return None;
        }
        let mut previous: sys::apr_interval_time_t = 0;
        let wanted = timeout.as_micros().min(i64::MAX as u128) as sys::apr_interval_time_t;
        // SAFETY: a live socket; both calls only read or set its timeout field (and its
        // non-blocking flag when the sign changes, which it does not here: both positive).
        unsafe {
            sys::apr_socket_timeout_get(sock, &mut previous);
            if previous <= 0 || previous == wanted {
                return None;
            }
            sys::apr_socket_timeout_set(sock, wanted);
        }
        Some(ClientTimeout {
            sock,
            previous,
            _life: PhantomData,
        })
    }
    /// Sets the response Content-Type (so filters and mod_mime see it).
    pub fn set_content_type(&self, ct: &[u8]) {
        // SAFETY: the value is copied into the request pool first.
        unsafe { sys::ap_set_content_type(self.r, pstrdup(self.pool(), ct)) }
    }
    /// Sets the response Content-Length.
    pub fn set_content_length(&self, n: u64) {
        // SAFETY: the request is live.
        unsafe { sys::ap_set_content_length(self.r, n as sys::apr_off_t) }
    }

    /// Logs against this request.
    pub fn log(&self, level: super::log::Level, msg: &str) {
        // SAFETY: the request is live.
        unsafe { super::log::request_log(self.r, level, msg) }
    }
}

/// A client socket timeout set for one request's writes; the previous one comes back on drop.
pub struct ClientTimeout<'r> {
    sock: *mut sys::apr_socket_t,
    previous: sys::apr_interval_time_t,
    _life: PhantomData<&'r sys::conn_rec>,
}

impl Drop for ClientTimeout<'_> {
    fn drop(&mut self) {
        // SAFETY: the socket outlives the request this guard borrows from.
        unsafe { sys::apr_socket_timeout_set(self.sock, self.previous) };
    }
}
