//! The contract between the Python layer and the transport that carries one request: Apache
//! brigades in embedded mode, the daemon socket later. Blocking methods are called with the
//! GIL released and must not touch Python.

/// What follows a chunk of body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// More follows soon: the transport may buffer (copying what it keeps).
    Buffer,
    /// Streaming: push the bytes to the client now.
    Flush,
    /// The last chunk: end the response.
    End,
}

/// Log severity for messages about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

/// A failed body read, with the HTTP status it should produce if the app does not handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    pub status: u16,
    pub message: String,
}

impl ReadFailure {
    /// A read stopped because the request ended while another thread was still reading.
    pub fn request_ended() -> ReadFailure {
        ReadFailure {
            status: 500,
            message: "request data read stopped: the request has ended".into(),
        }
    }
}

/// Why response bytes could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The client is gone (or its connection failed).
    ClientGone,
    /// The transport failed with the client still there (e.g. an Apache output filter
    /// returned an error status); the text says what and where, for the log.
    Failed(String),
}

/// The response head the app chose, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `"200 OK"` as given by the app.
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
}

/// One request's transport.
pub trait Gateway {
    /// Reads request body bytes; `Ok(0)` at the end. Blocking.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadFailure>;
    /// Makes the response head current (sent with the first body bytes). Never blocks.
    fn set_head(&mut self, head: &ResponseHead);
    /// Sends body bytes (borrowed only for the call). Blocking.
    fn write(&mut self, data: &[u8], after: After) -> Result<(), WriteError>;
    /// True when `write(data of len bytes, after)` can neither block nor run other requests
    /// on this thread, so the caller may keep the GIL across it. Never blocks.
    fn quick_write(&self, len: usize, after: After) -> bool;
    /// Sends `len` bytes of an open regular file from `offset`. Blocking.
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, after: After)
    -> Result<(), WriteError>;
    /// Marks a response that failed after its head went out as incomplete. Blocking.
    fn end_broken(&mut self);
    /// True when the client has disconnected.
    fn client_gone(&self) -> bool;
}

/// Where log lines about one request go. A plain function and pointer rather than a method
/// of [`Gateway`], so any thread may log while the gateway is busy in a blocking call (the
/// transport's logger must be thread-safe, as Apache's is).
#[derive(Clone, Copy)]
pub struct RequestLog {
    pub data: *mut std::ffi::c_void,
    pub write: fn(*mut std::ffi::c_void, Severity, &str),
}

impl RequestLog {
    /// Logs one message.
    pub fn log(&self, severity: Severity, msg: &str) {
        (self.write)(self.data, severity, msg)
    }
}
