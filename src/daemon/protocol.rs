//! The wire protocol between an Apache child and a daemon process (same host, private).
//!
//! Every frame is an 8-byte header — `'R'`, version, kind, flags, payload length (u32 LE) —
//! then the payload. A request is one `RequestHead`; the answer is a `ResponseHead`,
//! `ResponseBody` frames and a `ResponseEnd`, or a lone `ResponseStatus` when the app failed
//! before choosing a head. The explicit end frame is what tells "the app finished" from "the
//! daemon died". A `ResponseFile` frame stands for body bytes the Apache child sends itself
//! from a file descriptor that comes with the frame (`SCM_RIGHTS`).
//!
//! The request body is pulled: only when the app reads does the daemon send `BodyWanted`,
//! answered by one `RequestBody` (at most the size asked; [`FLAG_END`] when the body ends
//! with it) or `RequestEnd`. One question is
//! outstanding at a time, so neither side ever writes while the other is blocked writing.
//!
//! A connection carries one exchange after another. An idle connection the daemon gives up
//! gets `Closing`, then end of stream; a request the Apache child sent on it meanwhile was not
//! run, and goes again on a new connection (so does one the daemon closed unread: the child
//! sees its write fail, or the connection reset rather than ended).

use crate::config::proxy::ProxyHeader;
use crate::wsgi::gateway::ResponseHead;
use crate::wsgi::proxy::Rewrite;
use crate::wsgi::response::{check_header, parse_status};
use std::io::{self, IoSlice, Read, Write};

/// Bumped on any incompatible change; both sides come from one build, so a mismatch means
/// a stale daemon or a stranger on the socket.
pub const VERSION: u8 = 4;
const MAGIC: u8 = b'R';
const HEADER_LEN: usize = 8;
/// Largest head frame (request environ or response headers).
pub const MAX_HEAD: usize = 16 << 20;
/// Largest body frame; writers split bigger chunks.
pub const MAX_BODY: usize = 256 << 10;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    RequestHead = 1,
    RequestBody = 2,
    RequestEnd = 3,
    ResponseHead = 4,
    ResponseBody = 5,
    /// Payload: one byte, 0 complete, 1 broken (the response must be cut).
    ResponseEnd = 6,
    /// Payload: u16 HTTP error status (400-599) for the Apache child to answer with (no
    /// head was chosen).
    ResponseStatus = 7,
    /// Payload: offset and length (u64 LE each) of the file whose descriptor is attached
    /// to the frame; the Apache child sends those bytes as the next part of the body.
    ResponseFile = 8,
    /// Payload: u32 LE, the most body bytes the daemon wants now (at least 1).
    BodyWanted = 9,
    /// The daemon closes this idle connection and runs no request sent on it (empty).
    Closing = 10,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::RequestHead,
            2 => Kind::RequestBody,
            3 => Kind::RequestEnd,
            4 => Kind::ResponseHead,
            5 => Kind::ResponseBody,
            6 => Kind::ResponseEnd,
            7 => Kind::ResponseStatus,
            8 => Kind::ResponseFile,
            9 => Kind::BodyWanted,
            10 => Kind::Closing,
            _ => return None,
        })
    }

    fn limit(self) -> usize {
        match self {
            Kind::RequestHead | Kind::ResponseHead => MAX_HEAD,
            Kind::RequestBody | Kind::ResponseBody => MAX_BODY,
            Kind::RequestEnd | Kind::Closing => 0,
            Kind::BodyWanted => 4,
            Kind::ResponseEnd => 1,
            Kind::ResponseStatus => 2,
            Kind::ResponseFile => FILE_PAYLOAD,
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ProtoError {
    /// The peer closed the connection in the middle of a frame.
    Truncated,
    BadMagic(u8),
    BadVersion(u8),
    UnknownKind(u8),
    Oversized {
        kind: Kind,
        len: usize,
    },
    /// A payload that does not parse.
    Malformed(&'static str),
    Io(io::Error),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Truncated => write!(f, "connection closed in the middle of a frame"),
            ProtoError::BadMagic(b) => write!(f, "not a mod_rwsgi frame (first byte {b:#04x})"),
            ProtoError::BadVersion(v) => {
                write!(f, "protocol version {v}, this build speaks {VERSION}")
            }
            ProtoError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            ProtoError::Oversized { kind, len } => write!(
                f,
                "{kind:?} frame of {len} bytes exceeds its limit of {}",
                kind.limit()
            ),
            ProtoError::Malformed(what) => write!(f, "malformed frame: {what}"),
            ProtoError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for ProtoError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ProtoError::Truncated
        } else {
            ProtoError::Io(e)
        }
    }
}

/// Payload size of a `ResponseFile` frame.
const FILE_PAYLOAD: usize = 16;

/// Header flag of a `ResponseBody` or `ResponseFile` frame: pass it on to the client now (the app is
/// streaming), rather than letting Apache buffer it.
pub const FLAG_FLUSH: u8 = 1;

/// Header flag of a `RequestBody` frame: the body ends with these bytes (no `RequestEnd`
/// follows, and no more is asked for).
pub const FLAG_END: u8 = 2;

/// Writes one frame (header and payload in one write when small).
pub fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    write_flagged(w, kind, 0, payload)
}

/// The header of a frame carrying `len` payload bytes.
pub fn header(kind: Kind, flags: u8, len: usize) -> [u8; HEADER_LEN] {
    let mut head = [0u8; HEADER_LEN];
    head[0] = MAGIC;
    head[1] = VERSION;
    head[2] = kind as u8;
    head[3] = flags;
    head[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    head
}

/// Writes one frame with header flags (header and payload in one write).
pub fn write_flagged(w: &mut impl Write, kind: Kind, flags: u8, payload: &[u8]) -> io::Result<()> {
    let head = header(kind, flags, payload.len());
    write_all_vectored(w, &mut [IoSlice::new(&head), IoSlice::new(payload)])
}

/// Writes every byte of `bufs`, in as few writes as the writer takes.
pub fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes body bytes as frames no bigger than [`MAX_BODY`] (the flags go on the last).
pub fn write_body(w: &mut impl Write, kind: Kind, flags: u8, data: &[u8]) -> io::Result<()> {
    write_after(w, &[], kind, flags, data)
}

/// Writes `before` (frames already encoded), then `data` as body frames no bigger than
/// [`MAX_BODY`] (the flags go on the last), in one gathered write: the payload is not copied.
pub fn write_after(
    w: &mut impl Write,
    before: &[u8],
    kind: Kind,
    flags: u8,
    data: &[u8],
) -> io::Result<()> {
    let n = data.len().div_ceil(MAX_BODY);
    let heads: Vec<_> = data
        .chunks(MAX_BODY)
        .enumerate()
        .map(|(i, c)| header(kind, if i + 1 == n { flags } else { 0 }, c.len()))
        .collect();
    let mut io = Vec::with_capacity(1 + 2 * n);
    io.push(IoSlice::new(before));
    for (h, c) in heads.iter().zip(data.chunks(MAX_BODY)) {
        io.push(IoSlice::new(h));
        io.push(IoSlice::new(c));
    }
    write_all_vectored(w, &mut io)
}

/// Reads one frame's header (kind, payload length, flags): `Ok(None)` on a clean end of
/// stream before it.
pub fn read_header(r: &mut impl Read) -> Result<Option<(Kind, usize, u8)>, ProtoError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtoError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if head[0] != MAGIC {
        return Err(ProtoError::BadMagic(head[0]));
    }
    if head[1] != VERSION {
        return Err(ProtoError::BadVersion(head[1]));
    }
    let kind = Kind::from_u8(head[2]).ok_or(ProtoError::UnknownKind(head[2]))?;
    let allowed = match kind {
        Kind::ResponseBody | Kind::ResponseFile => FLAG_FLUSH,
        Kind::RequestBody => FLAG_END,
        _ => 0,
    };
    if head[3] & !allowed != 0 {
        return Err(ProtoError::Malformed("unknown header flags"));
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > kind.limit() {
        return Err(ProtoError::Oversized { kind, len });
    }
    Ok(Some((kind, len, head[3])))
}

/// What frame buffers grow by (zero-initialised, so it costs no space in the module file).
static ZEROS: [u8; MAX_BODY] = [0; MAX_BODY];

/// Reads one whole frame into `buf` (replacing its contents); returns its kind and flags.
pub fn read_flagged(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
) -> Result<Option<(Kind, u8)>, ProtoError> {
    let Some((kind, len, flags)) = read_header(r)? else {
        return Ok(None);
    };
    // Memory follows the bytes that arrive, not the length a header claims: a peer that
    // announces a 16 MiB head and stops costs what it sent. A frame up to MAX_BODY (every
    // body frame) is still one read_exact. The bytes of the last frame are read over, so
    // only growth is zeroed; zeros are copied in rather than `resize`d: a memcpy in every
    // build, which keeps the unoptimised fuzz target fast.
    let mut at = 0;
    while at < len {
        let end = (at + MAX_BODY).min(len);
        if buf.len() < end {
            let grow = end - buf.len();
            buf.extend_from_slice(&ZEROS[..grow]);
        }
        r.read_exact(&mut buf[at..end])?;
        at = end;
    }
    buf.truncate(len);
    Ok(Some((kind, flags)))
}

/// Reads one whole frame into `buf` (replacing its contents).
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<Option<Kind>, ProtoError> {
    Ok(read_flagged(r, buf)?.map(|(k, _)| k))
}

/// A buffered reader as `std::io::BufReader`, over a buffer its owner keeps from one request
/// to the next: a fresh 16 KiB buffer per request is an allocation big enough to make glibc
/// consolidate its fast bins each time.
pub struct Buffered<'b, R> {
    inner: R,
    buf: &'b mut Vec<u8>,
    pos: usize,
    filled: usize,
}

impl<'b, R: Read> Buffered<'b, R> {
    /// Reads `inner` through `buf`, grown to `capacity` bytes if it is smaller.
    pub fn new(inner: R, buf: &'b mut Vec<u8>, capacity: usize) -> Self {
        if buf.len() < capacity {
            buf.resize(capacity, 0);
        }
        Buffered {
            inner,
            buf,
            pos: 0,
            filled: 0,
        }
    }

    /// The bytes read from `inner` and not consumed yet.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The reader underneath.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The reader underneath, mutably.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for Buffered<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled {
            // A read at least as big as the buffer goes straight to the caller, uncopied.
            if out.len() >= self.buf.len() {
                return self.inner.read(out);
            }
            self.filled = self.inner.read(self.buf)?;
            self.pos = 0;
        }
        let n = (self.filled - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Name/value byte pairs (headers, environment).
pub type Pairs<B = Vec<u8>> = Vec<(B, B)>;

/// Everything the daemon needs to run one request: the facts the environ is built from
/// (the same ones the embedded builder uses), the routing, and the sender's secret. Owned
/// bytes as decoded; the Apache child encodes one that borrows its request's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestHead<B = Vec<u8>> {
    pub secret: B,
    /// The file the app is loaded from (the WSGI script, or a `WSGIHandlerScript`).
    pub script: B,
    pub reload_mtime: Option<i64>,
    /// `SCRIPT_FILENAME`: the request's file.
    pub script_filename: B,
    pub handler_script: B,
    pub ignore_activity: bool,
    pub callable: B,
    pub process_group: B,
    pub application_group: B,
    pub request_handler: B,
    pub listener_host: B,
    pub listener_port: u16,
    pub request_id: B,
    pub connection_id: Option<B>,
    pub request_start_us: i64,
    /// When the Apache child handed the request over (µs since the epoch).
    pub queue_start_us: i64,
    /// The virtual host serving the request, for its log lines: its `server_rec` address in
    /// the generation both sides were forked from, 0 for the main server.
    pub vhost: u64,
    pub script_reloading: bool,
    pub enable_sendfile: bool,
    pub method: B,
    pub protocol: B,
    pub request_uri: B,
    pub query_string: B,
    pub script_name: B,
    pub path_info: B,
    pub path_translated: Option<B>,
    pub headers: Pairs<B>,
    pub env: Pairs<B>,
    pub server_software: B,
    pub server_name: B,
    pub server_addr: B,
    pub server_port: u16,
    pub server_admin: B,
    pub server_signature: B,
    pub remote_addr: B,
    pub remote_port: u16,
    pub document_root: B,
    pub context_prefix: B,
    pub context_document_root: B,
    pub request_scheme: B,
    pub remote_user: Option<B>,
    pub auth_type: Option<B>,
    pub pass_authorization: bool,
    pub cgi_pass_auth: bool,
    /// What trusted proxy headers changed (`WSGITrustedProxyHeaders`), worked out in the
    /// Apache child where the peer address is known.
    pub proxy: Option<Rewrite>,
}

struct Enc(Vec<u8>);

impl Enc {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.0.push(1);
                self.bytes(b);
            }
            None => self.0.push(0),
        }
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn flag(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    fn pairs<B: AsRef<[u8]>>(&mut self, p: &[(B, B)]) {
        self.0.extend_from_slice(&(p.len() as u32).to_le_bytes());
        for (k, v) in p {
            self.bytes(k.as_ref());
            self.bytes(v.as_ref());
        }
    }
}

struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ProtoError> {
        if self.0.len() < n {
            return Err(ProtoError::Malformed(
                "field runs past the end of the frame",
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ProtoError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn flag(&mut self) -> Result<bool, ProtoError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ProtoError::Malformed("flag is neither 0 nor 1")),
        }
    }
    fn opt(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        Ok(if self.flag()? {
            Some(self.bytes()?)
        } else {
            None
        })
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn i64(&mut self) -> Result<i64, ProtoError> {
        let b = self.take(8)?;
        Ok(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    /// A flag and the value it guards; an absent value is written as 0, and only so.
    fn opt_i64(&mut self) -> Result<Option<i64>, ProtoError> {
        let present = self.flag()?;
        match (present, self.i64()?) {
            (true, v) => Ok(Some(v)),
            (false, 0) => Ok(None),
            (false, _) => Err(ProtoError::Malformed("value given for an absent field")),
        }
    }
    fn pairs(&mut self) -> Result<Pairs, ProtoError> {
        let n = self.u32()? as usize;
        // Each pair takes at least 8 bytes: a count beyond that is a lie.
        if n > self.0.len() / 8 {
            return Err(ProtoError::Malformed("pair count exceeds the frame"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push((self.bytes()?, self.bytes()?));
        }
        Ok(out)
    }
    fn rewrite(&mut self) -> Result<Rewrite, ProtoError> {
        let mut r = Rewrite {
            remote_addr: self.opt()?,
            forwarded_for: self.opt()?,
            host: self.opt()?,
            server_name: self.opt()?,
            server_port: self.opt()?,
            script_name: self.opt()?,
            https: match self.take(1)?[0] {
                0 => None,
                1 => Some(false),
                2 => Some(true),
                _ => return Err(ProtoError::Malformed("bad scheme override")),
            },
            drop: Vec::new(),
        };
        let n = self.u32()? as usize;
        if n > ProxyHeader::ALL.len() {
            return Err(ProtoError::Malformed("too many dropped proxy headers"));
        }
        for _ in 0..n {
            let i = self.take(1)?[0] as usize;
            r.drop.push(
                *ProxyHeader::ALL
                    .get(i)
                    .ok_or(ProtoError::Malformed("unknown proxy header"))?,
            );
        }
        Ok(r)
    }
    fn string(&mut self) -> Result<String, ProtoError> {
        String::from_utf8(self.bytes()?).map_err(|_| ProtoError::Malformed("text is not UTF-8"))
    }
    fn end(&self) -> Result<(), ProtoError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Malformed("trailing bytes after the last field"))
        }
    }
}

impl<B: AsRef<[u8]>> RequestHead<B> {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// The frame payload, written over `out` (a buffer kept between requests).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut e = Enc(std::mem::take(out));
        e.bytes(self.secret.as_ref());
        e.bytes(self.script.as_ref());
        e.flag(self.reload_mtime.is_some());
        e.i64(self.reload_mtime.unwrap_or(0));
        e.bytes(self.script_filename.as_ref());
        e.bytes(self.handler_script.as_ref());
        e.flag(self.ignore_activity);
        for b in [
            &self.callable,
            &self.process_group,
            &self.application_group,
            &self.request_handler,
            &self.listener_host,
        ] {
            e.bytes(b.as_ref());
        }
        e.u16(self.listener_port);
        e.bytes(self.request_id.as_ref());
        e.opt(self.connection_id.as_ref().map(AsRef::as_ref));
        e.i64(self.request_start_us);
        e.i64(self.queue_start_us);
        e.i64(self.vhost as i64);
        e.flag(self.script_reloading);
        e.flag(self.enable_sendfile);
        for b in [
            &self.method,
            &self.protocol,
            &self.request_uri,
            &self.query_string,
            &self.script_name,
            &self.path_info,
        ] {
            e.bytes(b.as_ref());
        }
        e.opt(self.path_translated.as_ref().map(AsRef::as_ref));
        e.pairs(&self.headers);
        e.pairs(&self.env);
        for b in [&self.server_software, &self.server_name, &self.server_addr] {
            e.bytes(b.as_ref());
        }
        e.u16(self.server_port);
        e.bytes(self.server_admin.as_ref());
        e.bytes(self.server_signature.as_ref());
        e.bytes(self.remote_addr.as_ref());
        e.u16(self.remote_port);
        for b in [
            &self.document_root,
            &self.context_prefix,
            &self.context_document_root,
            &self.request_scheme,
        ] {
            e.bytes(b.as_ref());
        }
        e.opt(self.remote_user.as_ref().map(AsRef::as_ref));
        e.opt(self.auth_type.as_ref().map(AsRef::as_ref));
        e.flag(self.pass_authorization);
        e.flag(self.cgi_pass_auth);
        e.flag(self.proxy.is_some());
        if let Some(p) = &self.proxy {
            for f in [
                &p.remote_addr,
                &p.forwarded_for,
                &p.host,
                &p.server_name,
                &p.server_port,
                &p.script_name,
            ] {
                e.opt(f.as_deref());
            }
            e.0.push(match p.https {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            });
            e.0.extend_from_slice(&(p.drop.len() as u32).to_le_bytes());
            for h in &p.drop {
                let i = ProxyHeader::ALL.iter().position(|a| a == h).unwrap_or(0);
                e.0.push(i as u8);
            }
        }
        *out = e.0;
    }
}

impl RequestHead {
    /// Parses a frame payload.
    pub fn decode(p: &[u8]) -> Result<RequestHead, ProtoError> {
        let mut d = Dec(p);
        let h = RequestHead {
            secret: d.bytes()?,
            script: d.bytes()?,
            reload_mtime: d.opt_i64()?,
            script_filename: d.bytes()?,
            handler_script: d.bytes()?,
            ignore_activity: d.flag()?,
            callable: d.bytes()?,
            process_group: d.bytes()?,
            application_group: d.bytes()?,
            request_handler: d.bytes()?,
            listener_host: d.bytes()?,
            listener_port: d.u16()?,
            request_id: d.bytes()?,
            connection_id: d.opt()?,
            request_start_us: d.i64()?,
            queue_start_us: d.i64()?,
            vhost: d.i64()? as u64,
            script_reloading: d.flag()?,
            enable_sendfile: d.flag()?,
            method: d.bytes()?,
            protocol: d.bytes()?,
            request_uri: d.bytes()?,
            query_string: d.bytes()?,
            script_name: d.bytes()?,
            path_info: d.bytes()?,
            path_translated: d.opt()?,
            headers: d.pairs()?,
            env: d.pairs()?,
            server_software: d.bytes()?,
            server_name: d.bytes()?,
            server_addr: d.bytes()?,
            server_port: d.u16()?,
            server_admin: d.bytes()?,
            server_signature: d.bytes()?,
            remote_addr: d.bytes()?,
            remote_port: d.u16()?,
            document_root: d.bytes()?,
            context_prefix: d.bytes()?,
            context_document_root: d.bytes()?,
            request_scheme: d.bytes()?,
            remote_user: d.opt()?,
            auth_type: d.opt()?,
            pass_authorization: d.flag()?,
            cgi_pass_auth: d.flag()?,
            proxy: if d.flag()? { Some(d.rewrite()?) } else { None },
        };
        d.end()?;
        Ok(h)
    }
}

/// The payload of a `ResponseHead` frame.
pub fn encode_response_head(h: &ResponseHead) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(256));
    e.u16(h.status);
    e.bytes(h.status_line.as_bytes());
    e.flag(h.content_length.is_some());
    e.i64(h.content_length.unwrap_or(0) as i64);
    e.0.extend_from_slice(&(h.headers.len() as u32).to_le_bytes());
    for (k, v) in &h.headers {
        e.bytes(k.as_bytes());
        e.bytes(v.as_bytes());
    }
    e.0
}

/// Parses a `ResponseHead` payload.
pub fn decode_response_head(p: &[u8]) -> Result<ResponseHead, ProtoError> {
    let mut d = Dec(p);
    let status = d.u16()?;
    let status_line = d.string()?;
    // The Apache child applies the head as it comes: it must pass the rules the daemon's
    // app was held to (a CR or LF would split the response, a status outside 200-599 or
    // a Content-Length beyond apr_off_t would confuse Apache).
    if parse_status(&status_line).ok() != Some(status) {
        return Err(ProtoError::Malformed(
            "status line does not match the status",
        ));
    }
    let content_length = d.opt_i64()?;
    let n = d.u32()? as usize;
    if n > d.0.len() / 8 {
        return Err(ProtoError::Malformed("header count exceeds the frame"));
    }
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        let (name, value) = (d.string()?, d.string()?);
        if check_header(&name, &value).is_err() {
            return Err(ProtoError::Malformed("invalid response header"));
        }
        headers.push((name, value));
    }
    d.end()?;
    if content_length.is_some_and(|cl| cl < 0) {
        return Err(ProtoError::Malformed("Content-Length beyond apr_off_t"));
    }
    Ok(ResponseHead {
        status,
        status_line,
        headers,
        content_length: content_length.map(|cl| cl as u64),
    })
}

/// A whole `ResponseFile` frame (header and payload), to be written in one `sendmsg` that
/// carries the descriptor.
pub fn file_frame(offset: u64, len: u64, flags: u8) -> [u8; HEADER_LEN + FILE_PAYLOAD] {
    let mut f = [0u8; HEADER_LEN + FILE_PAYLOAD];
    f[0] = MAGIC;
    f[1] = VERSION;
    f[2] = Kind::ResponseFile as u8;
    f[3] = flags;
    f[4..8].copy_from_slice(&(FILE_PAYLOAD as u32).to_le_bytes());
    f[8..16].copy_from_slice(&offset.to_le_bytes());
    f[16..24].copy_from_slice(&len.to_le_bytes());
    f
}

/// Parses a `ResponseFile` payload: (offset, length).
pub fn decode_file(p: &[u8]) -> Result<(u64, u64), ProtoError> {
    let mut d = Dec(p);
    let offset = u64::from_le_bytes(d.take(8)?.try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(d.take(8)?.try_into().expect("8 bytes"));
    d.end()?;
    if offset
        .checked_add(len)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(ProtoError::Malformed("file range beyond any file"));
    }
    Ok((offset, len))
}

/// Parses a `ResponseEnd` payload: true when the response is broken and must be cut.
pub fn decode_end(p: &[u8]) -> Result<bool, ProtoError> {
    match p {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(ProtoError::Malformed(
            "end frame is neither complete nor broken",
        )),
    }
}

/// The payload of a `BodyWanted` frame.
pub fn encode_wanted(max: u32) -> [u8; 4] {
    max.to_le_bytes()
}

/// Parses a `BodyWanted` payload: how many bytes at most the answer may carry.
pub fn decode_wanted(p: &[u8]) -> Result<usize, ProtoError> {
    match p {
        [a, b, c, d] => match u32::from_le_bytes([*a, *b, *c, *d]) as usize {
            0 => Err(ProtoError::Malformed("body wanted for zero bytes")),
            n => Ok(n.min(MAX_BODY)),
        },
        _ => Err(ProtoError::Malformed("body-wanted frame is not four bytes")),
    }
}

/// True when a request's secret is this generation's (compared in constant time).
pub fn secret_matches(got: &[u8], expected: &[u8]) -> bool {
    got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Parses a `ResponseStatus` payload.
pub fn decode_status(p: &[u8]) -> Result<u16, ProtoError> {
    match p {
        // The Apache child returns it from its handler, where anything but an HTTP error
        // status means something else (0 is "handled": the client would get no answer).
        [a, b] => match u16::from_le_bytes([*a, *b]) {
            s @ 400..=599 => Ok(s),
            _ => Err(ProtoError::Malformed(
                "status frame is not an HTTP error status",
            )),
        },
        _ => Err(ProtoError::Malformed("status frame is not two bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_reads_small_pieces_through_its_buffer_and_big_ones_past_it() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut kept = vec![0xAA; 3];
        let mut rd = Buffered::new(&data[..], &mut kept, 16);
        let mut small = [0u8; 4];
        rd.read_exact(&mut small).unwrap();
        assert_eq!(small, [0, 1, 2, 3]);
        assert_eq!(rd.buffer(), &data[4..16]);
        let mut rest = vec![0u8; 12];
        rd.read_exact(&mut rest).unwrap();
        assert_eq!(rest, &data[4..16]);
        // Buffer empty and a read as big as it: straight from the source.
        let mut big = vec![0u8; 40];
        assert_eq!(rd.read(&mut big).unwrap(), 40);
        assert_eq!(big, &data[16..56]);
        assert!(rd.buffer().is_empty());
        let mut tail = Vec::new();
        rd.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &data[56..]);
        assert_eq!(
            kept.len(),
            16,
            "the kept buffer grew to the capacity asked for"
        );
    }

    fn sample() -> RequestHead {
        RequestHead {
            secret: vec![1, 2, 3],
            script: b"/srv/app.wsgi".to_vec(),
            reload_mtime: Some(1234),
            callable: b"application".to_vec(),
            process_group: b"site".to_vec(),
            method: b"POST".to_vec(),
            path_translated: Some(b"/x".to_vec()),
            headers: vec![(b"Host".to_vec(), b"h".to_vec()), (b"X".to_vec(), vec![])],
            env: vec![(b"A".to_vec(), b"\xff".to_vec())],
            server_port: 8080,
            remote_user: None,
            auth_type: Some(b"Basic".to_vec()),
            cgi_pass_auth: true,
            proxy: Some(Rewrite {
                remote_addr: Some(b"10.0.0.1".to_vec()),
                https: Some(true),
                drop: vec![ProxyHeader::XRealIp, ProxyHeader::XHttps],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn request_head_round_trips() {
        let h = sample();
        assert_eq!(RequestHead::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn request_head_rejects_every_truncation_and_trailing_bytes() {
        let p = sample().encode();
        for n in 0..p.len() {
            assert!(RequestHead::decode(&p[..n]).is_err(), "accepted {n} bytes");
        }
        let mut long = p.clone();
        long.push(0);
        assert!(matches!(
            RequestHead::decode(&long),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn lying_counts_and_flags_are_malformed() {
        let mut p = sample().encode();
        // The secret's length claims more than the frame holds.
        p[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            RequestHead::decode(&p),
            Err(ProtoError::Malformed(_))
        ));
        let mut p = sample().encode();
        // The reload flag byte follows secret (4+3) and script (4+13).
        p[24] = 7;
        assert!(RequestHead::decode(&p).is_err());
    }

    #[test]
    fn response_head_round_trips_and_checks_status() {
        let h = ResponseHead {
            status: 201,
            status_line: "201 Created".into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            content_length: Some(5),
        };
        assert_eq!(decode_response_head(&encode_response_head(&h)).unwrap(), h);
        let mut bad = encode_response_head(&h);
        bad[0..2].copy_from_slice(&7u16.to_le_bytes());
        assert!(decode_response_head(&bad).is_err());
    }

    #[test]
    fn frames_round_trip_and_bad_headers_are_rejected() {
        let mut wire = Vec::new();
        write_frame(&mut wire, Kind::RequestBody, b"abc").unwrap();
        write_body(
            &mut wire,
            Kind::ResponseBody,
            FLAG_FLUSH,
            &vec![7u8; MAX_BODY + 1],
        )
        .unwrap();
        write_frame(&mut wire, Kind::RequestEnd, b"").unwrap();
        let mut r = &wire[..];
        let mut buf = Vec::new();
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap(),
            Some(Kind::RequestBody)
        );
        assert_eq!(buf, b"abc");
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap(),
            Some(Kind::ResponseBody)
        );
        assert_eq!(buf.len(), MAX_BODY);
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap(),
            Some(Kind::ResponseBody)
        );
        assert_eq!(buf.len(), 1);
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap(),
            Some(Kind::RequestEnd)
        );
        assert_eq!(read_frame(&mut r, &mut buf).unwrap(), None);

        let ok = {
            let mut w = Vec::new();
            write_frame(&mut w, Kind::RequestBody, b"abcd").unwrap();
            w
        };
        // Every cut inside a frame is truncation, never a clean end.
        for n in 1..ok.len() {
            let mut r = &ok[..n];
            assert!(matches!(
                read_frame(&mut r, &mut buf),
                Err(ProtoError::Truncated)
            ));
        }
        let mut bad = ok.clone();
        bad[0] = b'X';
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::BadMagic(b'X'))
        ));
        let mut bad = ok.clone();
        bad[1] = 9;
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::BadVersion(9))
        ));
        let mut bad = ok.clone();
        bad[2] = 99;
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::UnknownKind(99))
        ));
        let mut bad = ok.clone();
        bad[3] = FLAG_FLUSH;
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::Malformed(_))
        ));
        let mut bad = ok.clone();
        bad[4..8].copy_from_slice(&((MAX_BODY + 1) as u32).to_le_bytes());
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::Oversized { .. })
        ));
        let mut bad = ok;
        bad[2] = Kind::RequestEnd as u8;
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::Oversized { .. })
        ));
    }

    #[test]
    fn file_frame_round_trips_and_checks_its_range() {
        let wire = file_frame(7, 10 << 20, FLAG_FLUSH);
        let mut buf = Vec::new();
        assert_eq!(
            read_flagged(&mut &wire[..], &mut buf).unwrap(),
            Some((Kind::ResponseFile, FLAG_FLUSH))
        );
        assert_eq!(decode_file(&buf).unwrap(), (7, 10 << 20));
        assert!(decode_file(&buf[..15]).is_err());
        let mut long = buf.clone();
        long.push(0);
        assert!(decode_file(&long).is_err());
        let huge = file_frame(u64::MAX, 1, 0);
        assert!(decode_file(&huge[8..]).is_err());
        let mut bad = wire;
        bad[4] = 17;
        assert!(matches!(
            read_flagged(&mut &bad[..], &mut buf),
            Err(ProtoError::Oversized { .. })
        ));
    }

    #[test]
    fn wanted_frame() {
        assert_eq!(decode_wanted(&encode_wanted(100)).unwrap(), 100);
        assert_eq!(decode_wanted(&encode_wanted(u32::MAX)).unwrap(), MAX_BODY);
        assert!(decode_wanted(&encode_wanted(0)).is_err());
        assert!(decode_wanted(&[1, 0]).is_err());
        let mut wire = Vec::new();
        write_frame(&mut wire, Kind::Closing, b"").unwrap();
        write_frame(&mut wire, Kind::BodyWanted, &encode_wanted(9)).unwrap();
        let (mut r, mut buf) = (&wire[..], Vec::new());
        assert_eq!(read_frame(&mut r, &mut buf).unwrap(), Some(Kind::Closing));
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap(),
            Some(Kind::BodyWanted)
        );
        assert_eq!(decode_wanted(&buf).unwrap(), 9);
        let last = header(Kind::RequestBody, FLAG_END, 0);
        assert_eq!(
            read_flagged(&mut &last[..], &mut buf).unwrap(),
            Some((Kind::RequestBody, FLAG_END))
        );
        let wrong = header(Kind::ResponseBody, FLAG_END, 0);
        assert!(matches!(
            read_flagged(&mut &wrong[..], &mut buf),
            Err(ProtoError::Malformed(_))
        ));
        let mut bad = wire.clone();
        bad[4] = 1;
        assert!(matches!(
            read_frame(&mut &bad[..], &mut buf),
            Err(ProtoError::Oversized { .. })
        ));
    }

    #[test]
    fn status_frame() {
        assert_eq!(decode_status(&500u16.to_le_bytes()).unwrap(), 500);
        assert!(decode_status(&[1]).is_err());
    }

    // Regression tests for what tests/fuzz_protocol.rs found.

    #[test]
    fn status_frame_must_carry_an_http_error_status() {
        // 0 would be returned by the handler as OK: the client got no response at all.
        for s in [0u16, 1, 200, 399, 600, u16::MAX] {
            assert!(decode_status(&s.to_le_bytes()).is_err(), "accepted {s}");
        }
        assert_eq!(decode_status(&400u16.to_le_bytes()).unwrap(), 400);
        assert_eq!(decode_status(&599u16.to_le_bytes()).unwrap(), 599);
    }

    #[test]
    fn end_frame_is_exactly_complete_or_broken() {
        assert!(!decode_end(&[0]).unwrap());
        assert!(decode_end(&[1]).unwrap());
        // Before, anything but a leading 1 (an empty payload, a 2) read as "complete".
        for bad in [&[][..], &[2], &[0xff]] {
            assert!(decode_end(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn absent_values_must_be_written_as_zero() {
        let mut p = RequestHead {
            reload_mtime: None,
            ..sample()
        }
        .encode();
        // The mtime follows its flag at 24: secret (4+3), script (4+13), flag.
        assert_eq!(p[24], 0);
        p[25] = 9;
        assert!(matches!(
            RequestHead::decode(&p),
            Err(ProtoError::Malformed(_))
        ));
        let h = ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: vec![],
            content_length: None,
        };
        let mut p = encode_response_head(&h);
        // Content-Length follows status (2), line (4+6) and its flag.
        p[13] = 1;
        assert!(decode_response_head(&p).is_err());
    }

    #[test]
    fn response_head_must_pass_the_app_rules() {
        let ok = ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: vec![("X-A".into(), "b".into())],
            content_length: Some(1),
        };
        assert!(decode_response_head(&encode_response_head(&ok)).is_ok());
        for bad in [
            ResponseHead {
                headers: vec![("X-A".into(), "b\r\nSet-Cookie: x=y".into())],
                ..ok.clone()
            },
            ResponseHead {
                headers: vec![("Bad Name".into(), "b".into())],
                ..ok.clone()
            },
            ResponseHead {
                headers: vec![("Transfer-Encoding".into(), "chunked".into())],
                ..ok.clone()
            },
            ResponseHead {
                status: 404,
                ..ok.clone()
            },
            ResponseHead {
                status: 100,
                status_line: "100 Continue".into(),
                ..ok.clone()
            },
            ResponseHead {
                status_line: "200 O\nK".into(),
                ..ok.clone()
            },
            ResponseHead {
                content_length: Some(1 << 63),
                ..ok.clone()
            },
        ] {
            assert!(
                decode_response_head(&encode_response_head(&bad)).is_err(),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn a_claimed_length_costs_only_what_arrived() {
        let mut wire = Vec::new();
        write_frame(&mut wire, Kind::RequestHead, &[0u8; 100]).unwrap();
        wire[4..8].copy_from_slice(&(MAX_HEAD as u32).to_le_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            read_frame(&mut &wire[..], &mut buf),
            Err(ProtoError::Truncated)
        ));
        // Before, the buffer was sized to the claim (16 MiB) before a byte was read.
        assert!(buf.capacity() <= MAX_BODY, "{}", buf.capacity());
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secret_matches(b"abc", b"abc"));
        assert!(!secret_matches(b"abc", b"abd"));
        assert!(!secret_matches(b"ab", b"abc"));
        assert!(!secret_matches(b"", b"abc"));
    }
}
