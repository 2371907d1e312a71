//! Sending response body bytes for a request: commits the head with the first bytes,
//! enforces Content-Length truncation, and calls the transport with the GIL released.

use crate::python::callback::blocking;
use crate::python::request::RequestCtx;
use crate::wsgi::gateway::{After, Severity, WriteError};
use crate::wsgi::response::Phase;

/// Why body bytes could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The app produced body before calling start_response.
    NotStarted,
    /// The client is gone.
    ClientGone,
    /// The transport failed (logged already); the text says how.
    Failed(String),
    /// The response was already ended (a thread of the app writing after its end).
    Ended,
}

/// Maps a transport error, logging the first failure that is not a disconnect.
fn write_error(ctx: &mut RequestCtx, e: WriteError) -> SendError {
    match e {
        WriteError::ClientGone => SendError::ClientGone,
        WriteError::Failed(what) => {
            if !ctx.write_failed {
                ctx.write_failed = true;
                ctx.log(
                    Severity::Error,
                    &format!(
                        "RWSGI0150: sending the response failed after {} body bytes, with the \
                         client still connected: {what}; the response is cut short",
                        ctx.response.sent()
                    ),
                );
            }
            SendError::Failed(what)
        }
    }
}

/// Sends (a Content-Length-truncated prefix of) `data`, committing the head first if needed.
pub fn send(ctx: &mut RequestCtx, data: &[u8], after: After) -> Result<(), SendError> {
    if ctx.ended {
        return Err(SendError::Ended);
    }
    if data.is_empty() && after != After::End {
        // PEP 3333: the head goes out with the first non-empty chunk, not before.
        return if ctx.response.head().is_some() {
            Ok(())
        } else {
            Err(SendError::NotStarted)
        };
    }
    let first = ctx.response.phase() != Phase::HeadSent;
    let head = ctx.response.head().cloned().ok_or(SendError::NotStarted)?;
    let allowed = ctx.response.accept(data.len());
    if first {
        ctx.gateway().set_head(&head);
    }
    if allowed == 0 && after == After::Buffer && !first {
        return Ok(());
    }
    let chunk = &data[..allowed];
    let mut after = if after != After::End && allowed < data.len() {
        After::Flush
    } else {
        after
    };
    if after == After::End && ctx.response.short() {
        // Ending here would let Apache replace the declared Content-Length with the real
        // one; the caller ends the response as broken instead.
        after = After::Flush;
    }
    // Apache's core output filter only blocks to flush, or once about 64 KiB are buffered;
    // below that a pass is a non-blocking write, and keeping the GIL saves two GIL hand-offs
    // (the dominant cost of a small response on a busy threaded MPM). The transport says
    // whether this write flushes or meets a filter that may sleep (mod_ratelimit) or run a
    // subrequest on this thread (mod_include), which would stall or deadlock with the GIL.
    ctx.unflushed += chunk.len();
    let may_block =
        ctx.unflushed > NONBLOCKING_LIMIT || !ctx.gateway().quick_write(chunk.len(), after);
    if after != After::Buffer {
        ctx.unflushed = 0;
    }
    if after == After::End {
        ctx.ended = true;
    }
    let since = std::time::Instant::now();
    let gw = ctx.gateway();
    let result = if may_block {
        blocking(|| gw.write(chunk, after))
    } else {
        gw.write(chunk, after)
    };
    ctx.io.wrote(since);
    result.map_err(|e| write_error(ctx, e))
}

/// Bytes that may sit unflushed in Apache's output filters without a write blocking.
const NONBLOCKING_LIMIT: usize = 32 * 1024;

/// Sends part of an open regular file as the whole body. When the declared Content-Length
/// is more than the file holds, the response is cut (as on the iterable path) so that a
/// kept-alive client cannot take it for complete.
pub fn send_file(ctx: &mut RequestCtx, fd: i32, offset: u64, len: u64) -> Result<(), SendError> {
    if ctx.ended {
        return Err(SendError::Ended);
    }
    let head = ctx.response.head().cloned().ok_or(SendError::NotStarted)?;
    let len = ctx.response.accept(len.min(usize::MAX as u64) as usize) as u64;
    let short = ctx.response.short();
    ctx.ended = true;
    let since = std::time::Instant::now();
    let gw = ctx.gateway();
    gw.set_head(&head);
    let result = blocking(|| {
        if short {
            // Ending normally would let Apache replace the declared length with the real one.
            let sent = gw.send_file(fd, offset, len, After::Flush);
            gw.end_broken();
            sent
        } else {
            gw.send_file(fd, offset, len, After::End)
        }
    });
    ctx.io.wrote(since);
    result.map_err(|e| write_error(ctx, e))
}

/// Marks a response whose head went out as incomplete. The end passes through the whole
/// filter chain, which may block or run subrequests like any other pass.
pub fn end_broken(ctx: &mut RequestCtx) {
    let gw = ctx.gateway();
    blocking(|| gw.end_broken());
}
