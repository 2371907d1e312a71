//! The two sides' reading of a connection, modelled on the daemon's worker and the Apache
//! child's client, and the checks every decoded value must pass.

use crate::corpus::{Rng, SECRET, frame_starts};
use mod_rwsgi::daemon::protocol::{self, Kind, RequestHead};
use mod_rwsgi::wsgi::gateway::ResponseHead;
use mod_rwsgi::wsgi::response::{check_header, parse_status};
use std::io::{self, Read};

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

/// The daemon's side (worker `serve`), one request after another on the connection: the
/// request head, its secret, then the answers to its `BodyWanted` frames (body frames until
/// the end frame; anything else ends the connection).
pub fn as_daemon<R: Read>(
    r: &mut R,
    left: impl Fn(&R) -> usize + Copy,
) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    let mut buf = Vec::new();
    loop {
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
        loop {
            match next_frame(r, left, &mut buf, &mut log)? {
                Some((Kind::RequestBody, flags)) if flags & protocol::FLAG_END != 0 => break,
                Some((Kind::RequestBody, _)) => {}
                Some((Kind::RequestEnd, _)) => break,
                _ => return Ok(log),
            }
        }
    }
}

/// The Apache child's side (client `relay`), one exchange after another on the connection:
/// a head or a status (or `Closing` first on a reused connection), then body, file and end
/// frames, with `BodyWanted` anywhere in between.
pub fn as_client<R: Read>(
    r: &mut R,
    left: impl Fn(&R) -> usize + Copy,
) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    let mut buf = Vec::new();
    let mut reused = false;
    while exchange_as_client(r, left, &mut buf, &mut log, reused)? {
        reused = true;
    }
    Ok(log)
}

fn check_wanted(max: usize, payload: &[u8]) -> Result<(), String> {
    let raw = <[u8; 4]>::try_from(payload).map(u32::from_le_bytes).ok();
    if raw.is_none_or(|n| n == 0 || max != (n as usize).min(protocol::MAX_BODY)) {
        return Err(format!("decode_wanted read {payload:?} as {max}"));
    }
    Ok(())
}

/// One exchange; true when it ended cleanly and the connection may carry the next.
fn exchange_as_client<R: Read>(
    r: &mut R,
    left: impl Fn(&R) -> usize + Copy,
    buf: &mut Vec<u8>,
    log: &mut Vec<String>,
    reused: bool,
) -> Result<bool, String> {
    let mut head_seen = false;
    while let Some((kind, flags)) = next_frame(r, left, buf, log)? {
        match kind {
            Kind::Closing => {
                log.push(format!("closing, retried: {reused}"));
                break;
            }
            Kind::BodyWanted => match protocol::decode_wanted(buf) {
                Ok(max) => check_wanted(max, buf)?,
                Err(_) => break,
            },
            Kind::ResponseHead if !head_seen => match protocol::decode_response_head(buf) {
                Ok(h) => {
                    check_response_head(&h, buf)?;
                    head_seen = true;
                }
                Err(e) => {
                    log.push(format!("bad head: {e}"));
                    break;
                }
            },
            Kind::ResponseStatus if !head_seen => {
                return match protocol::decode_status(buf) {
                    Ok(s) => check_status(s, buf).map(|_| true),
                    Err(_) => Ok(false),
                };
            }
            Kind::ResponseBody if head_seen => {}
            Kind::ResponseFile if head_seen => match protocol::decode_file(buf) {
                Ok((offset, len)) => check_file(offset, len, flags, buf)?,
                Err(_) => break,
            },
            Kind::ResponseEnd if head_seen => {
                return match protocol::decode_end(buf) {
                    Ok(broken) => check_end(broken, buf).map(|_| !broken),
                    Err(_) => Ok(false),
                };
            }
            _ => break,
        }
    }
    Ok(false)
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
    if let Ok(n) = protocol::decode_wanted(p) {
        check_wanted(n, p)?;
    }
    Ok(())
}

/// Runs one input through everything; `Err` describes the first violation.
pub fn check(input: &[u8], trickle_seed: u64) -> Result<(), String> {
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
