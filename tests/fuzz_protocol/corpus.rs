//! The seed corpus, made by the real encoders, and the structure-aware mutations.

use mod_rwsgi::config::proxy::ProxyHeader;
use mod_rwsgi::daemon::protocol::{self, FLAG_END, FLAG_FLUSH, Kind, MAX_BODY, RequestHead};
use mod_rwsgi::wsgi::gateway::ResponseHead;
use mod_rwsgi::wsgi::proxy::Rewrite;

/// A small deterministic generator (splitmix64): a run is repeated by its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    /// True once in `one_in` calls, on average.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

// ---- the seed corpus, made by the real encoders ----

/// The generation secret the daemon model expects.
pub const SECRET: &[u8] = b"0123456789abcdef";

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

/// Valid request and response streams, as the two sides write them.
pub fn seeds() -> Vec<Vec<u8>> {
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
    // The pulled body and a second exchange on the same connection, as the daemon writes
    // them, and the Apache child's answers to two `BodyWanted`.
    let wanted = frame(Kind::BodyWanted, 0, &protocol::encode_wanted(65536));
    let mut s = wanted.clone();
    let h = &response_heads()[0];
    s.extend(frame(
        Kind::ResponseHead,
        0,
        &protocol::encode_response_head(h),
    ));
    s.extend(wanted.clone());
    s.extend(frame(Kind::ResponseBody, 0, b"hello"));
    s.extend(frame(Kind::ResponseEnd, 0, &[0]));
    s.extend(wanted);
    s.extend(frame(Kind::ResponseStatus, 0, &500u16.to_le_bytes()));
    s.extend(frame(Kind::Closing, 0, b""));
    out.push(s);
    let mut s = frame(Kind::RequestHead, 0, &heads[0].encode());
    s.extend(frame(Kind::RequestBody, FLAG_END, b"abc"));
    s.extend(frame(Kind::RequestHead, 0, &heads[1].encode()));
    s.extend(frame(Kind::RequestEnd, 0, b""));
    out.push(s);
    out.push(protocol::file_frame(0, u64::from(u32::MAX) + 1, 0).to_vec());
    out
}

// ---- mutations ----

/// Where each frame starts, following the claimed lengths (clipped to the input).
pub fn frame_starts(d: &[u8]) -> Vec<usize> {
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

/// Applies one random mutation to `d` (`corpus` supplies splice partners).
pub fn mutate_once(d: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut Rng) {
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
                2 => rng.below(13) as u8,
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
