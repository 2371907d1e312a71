//! Fuzzes the daemon wire protocol's decoders on stable Rust: a structure-aware mutator
//! (bit flips, truncation, length-field edits, splicing of frames) over a seed corpus made by
//! the real encoders. Every input goes through the decode entry points the daemon (request
//! head, secret, body frames) and the Apache child (response head, status, body, file and end
//! frames) use, the way they use them. An input fails the run when a decoder panics, allocates
//! more than a fixed bound over what the input holds, consumes a frame without making
//! progress, stalls, accepts a payload its encoder would never produce (decode then encode
//! must give the same bytes), or hands on a value its caller cannot act on.
//!
//! `cargo test --test fuzz_protocol` runs a short fixed-seed pass; `make fuzz
//! FUZZ_SECONDS=60` (see docs/fuzzing.md) a longer one. Environment: `FUZZ_SECONDS`,
//! `FUZZ_ITERATIONS`, `FUZZ_SEED`, and `FUZZ_REPLAY=<file>` to run one saved input.

use mod_rwsgi::config::proxy::ProxyHeader;
use mod_rwsgi::daemon::protocol::{self, FLAG_FLUSH, Kind, MAX_BODY, RequestHead};
use mod_rwsgi::wsgi::gateway::ResponseHead;
use mod_rwsgi::wsgi::proxy::Rewrite;
use mod_rwsgi::wsgi::response::{check_header, parse_status};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- allocation accounting (per thread, so parallel tests do not disturb it) ----

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn note_free(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated at once while decoding one input may not exceed this over a fixed 16 times
/// the input: a frame may cost memory for what arrived, never for what its header claims.
const ALLOC_SLACK: usize = 2 * MAX_BODY + (64 << 10);

// ---- randomness ----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

// ---- the seed corpus, made by the real encoders ----

const SECRET: &[u8] = b"0123456789abcdef";

fn full_head() -> RequestHead {
    RequestHead {
        secret: SECRET.to_vec(),
        script: b"/srv/site/app.wsgi".to_vec(),
        reload_mtime: Some(1_700_000_000),
        script_filename: b"/srv/site/app.wsgi".to_vec(),
        handler_script: b"/srv/site/handler.py".to_vec(),
        ignore_activity: true,
        callable: b"application".to_vec(),
        process_group: b"site".to_vec(),
        application_group: b"example.test|/app".to_vec(),
        request_handler: b"wsgi-script".to_vec(),
        listener_host: b"127.0.0.1".to_vec(),
        listener_port: 8080,
        request_id: b"ZWx0aGVyZQ".to_vec(),
        connection_id: Some(b"abc".to_vec()),
        request_start_us: 1_700_000_000_000_000,
        queue_start_us: 1_700_000_000_000_100,
        vhost: 0x5555_aaaa_1230,
        script_reloading: true,
        enable_sendfile: true,
        method: b"POST".to_vec(),
        protocol: b"HTTP/1.1".to_vec(),
        request_uri: b"/app/x?y=1".to_vec(),
        query_string: b"y=1".to_vec(),
        script_name: b"/app".to_vec(),
        path_info: b"/x".to_vec(),
        path_translated: Some(b"/srv/www/x".to_vec()),
        headers: vec![
            (b"Host".to_vec(), b"example.test".to_vec()),
            (b"Content-Length".to_vec(), b"5".to_vec()),
            (b"X-Latin".to_vec(), b"\xe9t\xe9".to_vec()),
        ],
        env: vec![(b"SITE".to_vec(), b"one".to_vec()), (vec![], vec![])],
        server_software: b"Apache/2.4".to_vec(),
        server_name: b"example.test".to_vec(),
        server_addr: b"127.0.0.1".to_vec(),
        server_port: 8080,
        server_admin: b"admin@example.test".to_vec(),
        server_signature: b"<address>x</address>".to_vec(),
        remote_addr: b"127.0.0.1".to_vec(),
        remote_port: 40000,
        document_root: b"/srv/www".to_vec(),
        context_prefix: vec![],
        context_document_root: b"/srv/www".to_vec(),
        request_scheme: b"http".to_vec(),
        remote_user: Some(b"alice".to_vec()),
        auth_type: Some(b"Basic".to_vec()),
        pass_authorization: true,
        cgi_pass_auth: false,
        proxy: Some(Rewrite {
            remote_addr: Some(b"10.0.0.1".to_vec()),
            forwarded_for: Some(b"10.0.0.2".to_vec()),
            host: None,
            server_name: Some(b"front.test".to_vec()),
            server_port: Some(b"443".to_vec()),
            script_name: None,
            https: Some(true),
            drop: vec![ProxyHeader::XRealIp, ProxyHeader::XForwardedFor],
        }),
    }
}

fn frame(kind: Kind, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut w = Vec::new();
    protocol::write_flagged(&mut w, kind, flags, payload).expect("writing to a Vec");
    w
}

fn response_heads() -> Vec<ResponseHead> {
    vec![
        ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Content-Length".into(), "5".into()),
                ("Set-Cookie".into(), "a=b; Path=/".into()),
            ],
            content_length: Some(5),
        },
        ResponseHead {
            status: 404,
            status_line: "404 Not Found".into(),
            headers: vec![],
            content_length: None,
        },
    ]
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let heads = [
        full_head(),
        RequestHead {
            secret: SECRET.to_vec(),
            ..Default::default()
        },
        RequestHead {
            proxy: Some(Rewrite::default()),
            reload_mtime: None,
            ..full_head()
        },
    ];
    for h in &heads {
        let mut s = frame(Kind::RequestHead, 0, &h.encode());
        out.push(s.clone());
        s.extend(frame(Kind::RequestBody, 0, b"hello"));
        s.extend(frame(Kind::RequestBody, 0, &[0xa5; 300]));
        s.extend(frame(Kind::RequestEnd, 0, b""));
        out.push(s);
    }
    for h in response_heads() {
        let head = frame(Kind::ResponseHead, 0, &protocol::encode_response_head(&h));
        let mut s = head.clone();
        let mut body = Vec::new();
        protocol::write_body(&mut body, Kind::ResponseBody, FLAG_FLUSH, b"hello").unwrap();
        s.extend(body);
        s.extend(protocol::file_frame(7, 4096, FLAG_FLUSH));
        s.extend(frame(Kind::ResponseEnd, 0, &[0]));
        out.push(s);
        let mut broken = head;
        broken.extend(frame(Kind::ResponseBody, 0, b"part"));
        broken.extend(frame(Kind::ResponseEnd, 0, &[1]));
        out.push(broken);
    }
    out.push(frame(Kind::ResponseStatus, 0, &503u16.to_le_bytes()));
    out.push(protocol::file_frame(0, u64::from(u32::MAX) + 1, 0).to_vec());
    out
}

// ---- mutations ----

/// Where each frame starts, following the claimed lengths (clipped to the input).
fn frame_starts(d: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 8 <= d.len() && starts.len() < 64 {
        starts.push(at);
        let len = u32::from_le_bytes(d[at + 4..at + 8].try_into().unwrap()) as usize;
        at = at.saturating_add(8).saturating_add(len);
    }
    starts
}

fn interesting_u32(rng: &mut Rng, near: usize) -> u32 {
    let picks = [
        0,
        1,
        2,
        7,
        8,
        16,
        0x7f,
        0xff,
        0xffff,
        (MAX_BODY - 1) as u32,
        MAX_BODY as u32,
        MAX_BODY as u32 + 1,
        (protocol::MAX_HEAD - 1) as u32,
        protocol::MAX_HEAD as u32,
        protocol::MAX_HEAD as u32 + 1,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
        near as u32,
        near.saturating_sub(1) as u32,
        near.saturating_add(1) as u32,
    ];
    picks[rng.below(picks.len())]
}

fn mutate_once(d: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut Rng) {
    let starts = frame_starts(d);
    match rng.below(13) {
        0 | 1 if !d.is_empty() => {
            let i = rng.below(d.len());
            d[i] ^= 1 << rng.below(8);
        }
        2 if !d.is_empty() => {
            let i = rng.below(d.len());
            let v = [0u8, 1, 2, 0x7f, 0x80, 0xfe, 0xff, b'R', b'\r', b'\n'];
            d[i] = v[rng.below(v.len())];
        }
        3 => {
            let n = rng.below(d.len() + 1);
            d.truncate(n);
        }
        4 => {
            for _ in 0..=rng.below(16) {
                d.push(rng.next() as u8);
            }
        }
        5 if !d.is_empty() => {
            let a = rng.below(d.len());
            let b = (a + 1 + rng.below(32)).min(d.len());
            d.drain(a..b);
        }
        6 if !d.is_empty() => {
            let a = rng.below(d.len());
            let b = (a + 1 + rng.below(64)).min(d.len());
            let piece = d[a..b].to_vec();
            let at = rng.below(d.len() + 1);
            d.splice(at..at, piece);
        }
        // The frame length field.
        7 | 8 if !starts.is_empty() => {
            let at = starts[rng.below(starts.len())];
            let v = interesting_u32(rng, d.len() - at - 8);
            d[at + 4..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        // A length or count field inside a payload (any offset: the fields are unaligned).
        9 if d.len() >= 12 => {
            let i = 8 + rng.below(d.len() - 11);
            let v = interesting_u32(rng, d.len() - i);
            d[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        // Magic, version, kind or flags of a frame.
        10 if !starts.is_empty() => {
            let at = starts[rng.below(starts.len())];
            let field = rng.below(4);
            d[at + field] = match field {
                2 => rng.below(10) as u8,
                3 => [0, 1, 2, 0x80, 0xff][rng.below(5)],
                _ => rng.next() as u8,
            };
        }
        // Splice: this input's frames up to one boundary, another's from one of its own.
        11 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let mine = starts.get(rng.below(starts.len() + 1)).copied();
            let cut = mine.unwrap_or_else(|| rng.below(d.len() + 1));
            let theirs = frame_starts(other);
            let from = theirs
                .get(rng.below(theirs.len() + 1))
                .copied()
                .unwrap_or_else(|| rng.below(other.len() + 1));
            d.truncate(cut);
            d.extend_from_slice(&other[from..]);
        }
        // Drop or repeat one whole frame.
        _ if starts.len() > 1 => {
            let k = rng.below(starts.len() - 1);
            let (a, b) = (starts[k], starts[k + 1].min(d.len()));
            if rng.chance(2) {
                d.drain(a..b);
            } else {
                let f = d[a..b].to_vec();
                d.splice(b..b, f);
            }
        }
        _ => {
            let i = rng.below(d.len() + 1);
            d.insert(i, rng.next() as u8);
        }
    }
}

// ---- the oracles ----

/// A reader that hands out the input a few bytes at a time and is sometimes interrupted,
/// as a socket may be.
struct Trickle<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.chance(7) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.data.len()).min(1 + self.rng.below(9));
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Reads one frame the way both sides do; checks that a frame read consumed exactly its
/// header and payload. Returns the frame's kind and flags, or why reading stopped.
fn next_frame<R: Read>(
    r: &mut R,
    left: impl Fn(&R) -> usize,
    buf: &mut Vec<u8>,
    log: &mut Vec<String>,
) -> Result<Option<(Kind, u8)>, String> {
    let before = left(r);
    match protocol::read_flagged(r, buf) {
        Ok(Some((kind, flags))) => {
            if before - left(r) != 8 + buf.len() {
                return Err(format!(
                    "{kind:?} frame consumed {} bytes for a payload of {}",
                    before - left(r),
                    buf.len()
                ));
            }
            log.push(format!("{kind:?}/{flags}/{}", buf.len()));
            Ok(Some((kind, flags)))
        }
        Ok(None) => {
            log.push("eof".into());
            Ok(None)
        }
        Err(e) => {
            log.push(format!("error: {e}"));
            Ok(None)
        }
    }
}

/// The daemon's side (worker `serve`): the request head, its secret, then body frames until
/// the end frame or anything else.
fn as_daemon<R: Read>(r: &mut R, left: impl Fn(&R) -> usize + Copy) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    let mut buf = Vec::new();
    if next_frame(r, left, &mut buf, &mut log)?.map(|f| f.0) != Some(Kind::RequestHead) {
        return Ok(log);
    }
    match RequestHead::decode(&buf) {
        Ok(h) => {
            check_request_head(&h, &buf)?;
            log.push(format!(
                "head, secret ok: {}",
                protocol::secret_matches(&h.secret, SECRET)
            ));
        }
        Err(e) => {
            log.push(format!("bad head: {e}"));
            return Ok(log);
        }
    }
    while let Some((Kind::RequestBody, _)) = next_frame(r, left, &mut buf, &mut log)? {}
    Ok(log)
}

/// The Apache child's side (client `relay`): a head or a status, then body, file and end
/// frames.
fn as_client<R: Read>(r: &mut R, left: impl Fn(&R) -> usize + Copy) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    let mut buf = Vec::new();
    let mut head_seen = false;
    while let Some((kind, flags)) = next_frame(r, left, &mut buf, &mut log)? {
        match kind {
            Kind::ResponseHead if !head_seen => match protocol::decode_response_head(&buf) {
                Ok(h) => {
                    check_response_head(&h, &buf)?;
                    head_seen = true;
                }
                Err(e) => {
                    log.push(format!("bad head: {e}"));
                    break;
                }
            },
            Kind::ResponseStatus if !head_seen => {
                if let Ok(s) = protocol::decode_status(&buf) {
                    check_status(s, &buf)?;
                }
                break;
            }
            Kind::ResponseBody if head_seen => {}
            Kind::ResponseFile if head_seen => match protocol::decode_file(&buf) {
                Ok((offset, len)) => check_file(offset, len, flags, &buf)?,
                Err(_) => break,
            },
            Kind::ResponseEnd if head_seen => {
                if let Ok(broken) = protocol::decode_end(&buf) {
                    check_end(broken, &buf)?;
                }
                break;
            }
            _ => break,
        }
    }
    Ok(log)
}

fn check_request_head(h: &RequestHead, payload: &[u8]) -> Result<(), String> {
    if h.encode() != payload {
        return Err(format!(
            "RequestHead::decode accepted a payload its encoder never makes: {h:?}"
        ));
    }
    if protocol::secret_matches(&h.secret, SECRET) != (h.secret == SECRET) {
        return Err("secret comparison disagrees with equality".into());
    }
    Ok(())
}

fn check_response_head(h: &ResponseHead, payload: &[u8]) -> Result<(), String> {
    if protocol::encode_response_head(h) != payload {
        return Err(format!(
            "decode_response_head accepted a payload its encoder never makes: {h:?}"
        ));
    }
    // What the Apache child applies must pass the rules the daemon's app was held to.
    if parse_status(&h.status_line) != Ok(h.status) {
        return Err(format!(
            "decode_response_head accepted status {} with line {:?}",
            h.status, h.status_line
        ));
    }
    for (n, v) in &h.headers {
        if let Err(e) = check_header(n, v) {
            return Err(format!("decode_response_head accepted a header: {e}"));
        }
    }
    if h.content_length.is_some_and(|cl| cl > i64::MAX as u64) {
        return Err(format!(
            "decode_response_head accepted Content-Length {:?}, beyond apr_off_t",
            h.content_length
        ));
    }
    Ok(())
}

fn check_status(s: u16, payload: &[u8]) -> Result<(), String> {
    // The Apache child returns it from its handler: it must be an HTTP error status.
    if !(400..=599).contains(&s) || s.to_le_bytes() != payload {
        return Err(format!("decode_status accepted {s} from {payload:?}"));
    }
    Ok(())
}

fn check_file(offset: u64, len: u64, flags: u8, payload: &[u8]) -> Result<(), String> {
    if protocol::file_frame(offset, len, flags)[8..] != *payload {
        return Err(format!("decode_file accepted {payload:?}"));
    }
    Ok(())
}

fn check_end(broken: bool, payload: &[u8]) -> Result<(), String> {
    if payload != [u8::from(broken)] {
        return Err(format!(
            "decode_end read {payload:?} as {}",
            if broken { "broken" } else { "complete" }
        ));
    }
    Ok(())
}

/// Every payload decoder on `p`, with the same checks as in the stream models.
fn all_payload_decoders(p: &[u8]) -> Result<(), String> {
    if let Ok(h) = RequestHead::decode(p) {
        check_request_head(&h, p)?;
    }
    if let Ok(h) = protocol::decode_response_head(p) {
        check_response_head(&h, p)?;
    }
    if let Ok((o, l)) = protocol::decode_file(p) {
        check_file(o, l, 0, p)?;
    }
    if let Ok(s) = protocol::decode_status(p) {
        check_status(s, p)?;
    }
    if let Ok(b) = protocol::decode_end(p) {
        check_end(b, p)?;
    }
    Ok(())
}

/// Runs one input through everything; `Err` describes the first violation.
fn check(input: &[u8], trickle_seed: u64) -> Result<(), String> {
    let left_slice = |r: &&[u8]| r.len();
    let left_trickle = |r: &Trickle<'_>| r.data.len();
    let whole = as_daemon(&mut &input[..], left_slice)?;
    let trickled = as_daemon(
        &mut Trickle {
            data: input,
            rng: Rng(trickle_seed),
        },
        left_trickle,
    )?;
    if whole != trickled {
        return Err(format!(
            "daemon side read differently in pieces: {whole:?} vs {trickled:?}"
        ));
    }
    let whole = as_client(&mut &input[..], left_slice)?;
    let trickled = as_client(
        &mut Trickle {
            data: input,
            rng: Rng(!trickle_seed),
        },
        left_trickle,
    )?;
    if whole != trickled {
        return Err(format!(
            "Apache side read differently in pieces: {whole:?} vs {trickled:?}"
        ));
    }
    all_payload_decoders(input)?;
    for at in frame_starts(input) {
        let len = u32::from_le_bytes(input[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = (at + 8).saturating_add(len).min(input.len());
        all_payload_decoders(&input[at + 8..end])?;
    }
    Ok(())
}

/// `check` with panics and memory use turned into violations.
fn check_guarded(input: &[u8], trickle_seed: u64) -> Result<(), String> {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = std::panic::catch_unwind(|| check(input, trickle_seed));
    let peak = PEAK.with(Cell::get) - base;
    match r {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if peak > 16 * input.len() + ALLOC_SLACK => Err(format!(
            "decoding {} bytes allocated {peak} bytes at once",
            input.len()
        )),
        Ok(Ok(())) => Ok(()),
    }
}

// ---- the driver ----

struct Budget {
    seed: u64,
    iterations: u64,
    time: Duration,
}

struct Outcome {
    runs: u64,
    elapsed: Duration,
    corpus: usize,
}

/// Largest input the mutator builds (bigger ones are cut).
const MAX_INPUT: usize = 64 << 10;

fn fuzz(budget: &Budget) -> Result<Outcome, String> {
    let mut rng = Rng(budget.seed);
    let mut corpus = seeds();
    for s in &corpus {
        check_guarded(s, 1).map_err(|e| format!("a seed fails: {e}"))?;
    }
    // A stall (a decoder that loops) cannot be caught in place: a watchdog reports the input.
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let watchdog = {
        let (current, progress, done) = (current.clone(), progress.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            while done.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(100));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(10) {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!(
                        "fuzz_protocol: one input has run for 10 s (a decoder loops): {}",
                        hex(&input)
                    );
                    std::process::abort();
                }
            }
        })
    };
    let start = Instant::now();
    let mut runs = 0u64;
    let mut result = Ok(());
    while runs < budget.iterations && start.elapsed() < budget.time {
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..=rng.below(4) {
            mutate_once(&mut input, &corpus, &mut rng);
        }
        input.truncate(MAX_INPUT);
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        let trickle_seed = rng.next();
        if let Err(e) = check_guarded(&input, trickle_seed) {
            let path =
                std::env::temp_dir().join(format!("fuzz-protocol-{}-{runs}.bin", budget.seed));
            let _ = std::fs::write(&path, &input);
            result = Err(format!(
                "input {runs} (seed {}, trickle {trickle_seed}): {e}\ninput saved to {} \
                 (FUZZ_REPLAY=<file>): {}",
                budget.seed,
                path.display(),
                hex(&input[..input.len().min(512)])
            ));
            break;
        }
        runs += 1;
        progress.store(runs, Ordering::Relaxed);
        // Without coverage feedback, inputs that still decode keep the structure deep
        // mutations need; a bounded corpus keeps the run's memory flat.
        if keeps_structure(&input) {
            if corpus.len() < 512 {
                corpus.push(input);
            } else {
                let i = 16 + rng.below(corpus.len() - 16);
                corpus[i] = input;
            }
        }
    }
    done.store(1, Ordering::Relaxed);
    let _ = watchdog.join();
    result.map(|()| Outcome {
        runs,
        elapsed: start.elapsed(),
        corpus: corpus.len(),
    })
}

/// True when some frame of `input` decodes as a head: worth mutating further.
fn keeps_structure(input: &[u8]) -> bool {
    let mut r = input;
    let mut buf = Vec::new();
    match protocol::read_frame(&mut r, &mut buf) {
        Ok(Some(Kind::RequestHead)) => RequestHead::decode(&buf).is_ok() && !r.is_empty(),
        Ok(Some(Kind::ResponseHead)) => {
            protocol::decode_response_head(&buf).is_ok() && !r.is_empty()
        }
        _ => false,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The fixed-seed pass every `cargo test` runs, or the run the environment asks for.
#[test]
fn protocol_decoders_survive_mutated_frames() {
    if let Ok(path) = std::env::var("FUZZ_REPLAY") {
        let input = std::fs::read(&path).expect("FUZZ_REPLAY names a readable file");
        if let Err(e) = check_guarded(&input, env_u64("FUZZ_TRICKLE").unwrap_or(1)) {
            panic!("{path}: {e}");
        }
        return;
    }
    let seconds = env_u64("FUZZ_SECONDS");
    let budget = Budget {
        seed: env_u64("FUZZ_SEED").unwrap_or_else(|| {
            if seconds.is_some() {
                // A long run explores a new part of the space each time; the seed is printed.
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            } else {
                0x5eed_f00d
            }
        }),
        iterations: env_u64("FUZZ_ITERATIONS").unwrap_or(if seconds.is_some() {
            u64::MAX
        } else {
            20_000
        }),
        // The quick pass is bounded by its iteration count; the time is a safety net.
        time: Duration::from_secs(seconds.unwrap_or(60)),
    };
    match fuzz(&budget) {
        Ok(o) => println!(
            "fuzz_protocol: seed {:#x}: {} inputs in {:.1} s ({:.0} inputs/s), corpus {}",
            budget.seed,
            o.runs,
            o.elapsed.as_secs_f64(),
            o.runs as f64 / o.elapsed.as_secs_f64().max(1e-9),
            o.corpus
        ),
        Err(e) => panic!("fuzz_protocol: {e}"),
    }
}

/// The seeds themselves decode, so the mutator starts from frames the daemon really sends.
#[test]
fn seed_corpus_decodes() {
    for s in seeds() {
        let mut log = as_daemon(&mut &s[..], |r: &&[u8]| r.len()).unwrap();
        log.extend(as_client(&mut &s[..], |r: &&[u8]| r.len()).unwrap());
        assert!(
            !log.iter()
                .any(|l| l.starts_with("error") || l.starts_with("bad")),
            "{log:?}"
        );
    }
}
