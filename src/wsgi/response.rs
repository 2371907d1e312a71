//! start_response rules: status and header validation, and the state machine of PEP 3333
//! (a second call needs exc_info; after the head is sent, exc_info is re-raised).

use super::gateway::ResponseHead;

/// Where the response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// start_response not called yet.
    Idle,
    /// start_response called; the head is not sent yet.
    HeadSet,
    /// The head went out with the first body bytes.
    HeadSent,
}

/// What start_response must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// Called again without exc_info (PEP 3333: an error).
    AlreadyCalled,
    /// Called with exc_info after the head was sent: re-raise the app's exception.
    Reraise,
    /// A bad status or header: message for a ValueError.
    Invalid(String),
}

/// Validates a status string: three digits of a final status (200-599: 1xx interim
/// responses belong to the server, not the app), a space and a reason phrase without
/// control characters, latin-1 as it goes out on the wire.
pub fn parse_status(status: &str) -> Result<u16, String> {
    let b = status.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "status '{status}' must start with a three-digit code"
        ));
    }
    if b.len() < 4 || b[3] != b' ' {
        return Err(format!(
            "status '{status}' needs a reason phrase after the code, as in '200 OK'"
        ));
    }
    if status.chars().any(|c| c.is_control() || (c as u32) > 0xff) {
        return Err(format!(
            "status {status:?} contains control or non-latin-1 characters"
        ));
    }
    let code: u16 = status[..3]
        .parse()
        .map_err(|_| format!("bad status '{status}'"))?;
    if !(200..=599).contains(&code) {
        return Err(format!(
            "status code {code} is not a final status (200-599); interim 1xx responses \
             are the server's to send"
        ));
    }
    Ok(code)
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection`): they frame the connection, which is the server's, so PEP 3333
/// forbids them in an application's response. A `Transfer-Encoding: chunked` passed on
/// would let the body forge further responses on a kept-alive connection.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Validates one header: a token name, a latin-1 value without control characters but HTAB.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name is empty".to_string());
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(token) {
        return Err(format!(
            "header name {name:?} contains characters not allowed in a header name"
        ));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "response header '{name}' is a hop-by-hop header, which a WSGI application \
             must not set (PEP 3333); the server frames the connection"
        ));
    }
    // RFC 9110 field content: no control characters but HTAB (CR and LF would inject
    // headers; Apache refuses the others later, without saying which app sent them).
    if value
        .chars()
        .any(|c| (c < ' ' && c != '\t') || c == '\u{7f}')
    {
        return Err(format!(
            "value of header {name:?} contains a control character (CR, LF, NUL…)"
        ));
    }
    if value.chars().any(|c| (c as u32) > 0xff) {
        return Err(format!("value of header {name:?} is not latin-1"));
    }
    Ok(())
}

/// Parses a Content-Length value: decimal digits, optionally surrounded by spaces or tabs,
/// small enough for Apache's signed `apr_off_t` (a larger one would go out negative).
pub fn parse_content_length(value: &str) -> Result<u64, String> {
    let v = value.trim_matches([' ', '\t']);
    let invalid = || format!("invalid Content-Length '{value}': not a decimal number of bytes");
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match v.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err(format!("Content-Length '{value}' is too large")),
    }
}

/// The response side of one request.
#[derive(Debug)]
pub struct ResponseState {
    phase: Phase,
    head: Option<ResponseHead>,
    sent: u64,
}

impl Default for ResponseState {
    fn default() -> Self {
        ResponseState {
            phase: Phase::Idle,
            head: None,
            sent: 0,
        }
    }
}

impl ResponseState {
    /// Where the response is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The head chosen by the app, if start_response was called.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Body bytes accepted so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Applies a start_response call (status and headers already converted to str).
    pub fn start(
        &mut self,
        status: &str,
        headers: Vec<(String, String)>,
        with_exc_info: bool,
    ) -> Result<(), StartError> {
        match (self.phase, with_exc_info) {
            (Phase::HeadSent, true) => return Err(StartError::Reraise),
            (Phase::HeadSent, false) | (Phase::HeadSet, false) => {
                return Err(StartError::AlreadyCalled);
            }
            _ => {}
        }
        let code = parse_status(status).map_err(StartError::Invalid)?;
        let mut content_length = None;
        for (n, v) in &headers {
            check_header(n, v).map_err(StartError::Invalid)?;
            if n.eq_ignore_ascii_case("content-length") {
                let cl = parse_content_length(v).map_err(StartError::Invalid)?;
                if content_length.is_some_and(|prev| prev != cl) {
                    return Err(StartError::Invalid(format!(
                        "conflicting Content-Length headers ({} and {cl})",
                        content_length.unwrap_or_default()
                    )));
                }
                content_length = Some(cl);
            }
        }
        self.head = Some(ResponseHead {
            status: code,
            status_line: status.to_string(),
            headers,
            content_length,
        });
        self.phase = Phase::HeadSet;
        Ok(())
    }

    /// Accepts `len` body bytes: how many may go out (Content-Length truncates the rest).
    /// Marks the head as sent. Call only after `start`.
    pub fn accept(&mut self, len: usize) -> usize {
        self.phase = Phase::HeadSent;
        let allowed = match self.head.as_ref().and_then(|h| h.content_length) {
            Some(cl) => cl.saturating_sub(self.sent).min(len as u64) as usize,
            None => len,
        };
        self.sent += allowed as u64;
        allowed
    }

    /// Declares the body length when the app did not (a one-item list, a wrapped file) and
    /// nothing was written yet.
    pub fn default_content_length(&mut self, len: u64) {
        if self.phase == Phase::HeadSent {
            return;
        }
        if let Some(h) = self.head.as_mut() {
            if h.content_length.is_none() {
                h.content_length = Some(len);
            }
        }
    }

    /// True when a declared Content-Length has been fully sent.
    pub fn complete(&self) -> bool {
        matches!(self.head.as_ref().and_then(|h| h.content_length), Some(cl) if self.sent >= cl)
    }

    /// True when fewer bytes went out than the declared Content-Length.
    pub fn short(&self) -> bool {
        matches!(self.head.as_ref().and_then(|h| h.content_length), Some(cl) if self.sent < cl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert!(parse_status("404").is_err());
        assert_eq!(parse_status("599 Whatever you like"), Ok(599));
        for bad in [
            "",
            "20",
            "2000 OK",
            "200OK",
            "abc OK",
            "200 O\nK",
            "200 \u{100}",
            "099 x",
            "100 Continue",
            "101 Switching Protocols",
            "199 x",
            "600 x",
            "999 x",
        ] {
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers() {
        assert!(check_header("X-Ok", "v a l u e").is_ok());
        assert!(check_header("", "v").is_err());
        assert!(check_header("Bad Name", "v").is_err());
        assert!(check_header("X:Y", "v").is_err());
        assert!(check_header("X", "a\r\nInjected: 1").is_err());
        assert!(check_header("X", "caf\u{e9}").is_ok());
        assert!(check_header("X", "a\tb").is_ok());
        for bad in ["a\0b", "a\u{1}b", "a\u{1b}[0m", "a\u{7f}"] {
            assert!(check_header("X", bad).is_err(), "{bad:?}");
        }
        assert!(check_header("X", "\u{20ac}").is_err());
        assert_eq!(parse_content_length(" 12 "), Ok(12));
        assert!(parse_content_length("-1").is_err());
        assert!(parse_content_length("1e3").is_err());
        assert_eq!(parse_content_length("\t7\t"), Ok(7));
        assert_eq!(
            parse_content_length("9223372036854775807"),
            Ok(i64::MAX as u64)
        );
        for bad in [
            "",
            " ",
            "+5",
            "5 5",
            "0x10",
            "5\u{a0}",
            "\u{85}5",
            "9223372036854775808",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            assert!(parse_content_length(bad).is_err(), "{bad:?}");
        }
        for hop in [
            "Transfer-Encoding",
            "transfer-encoding",
            "Connection",
            "KEEP-ALIVE",
            "TE",
            "Trailer",
            "Upgrade",
            "Proxy-Connection",
        ] {
            let e = check_header(hop, "x").unwrap_err();
            assert!(e.contains(hop), "{e}");
        }
        assert!(check_header("Trailers", "x").is_ok());
        assert!(check_header("X-Connection", "x").is_ok());
    }

    #[test]
    fn state_machine() {
        let mut r = ResponseState::default();
        r.start("200 OK", vec![("Content-Length".into(), "5".into())], false)
            .unwrap();
        assert_eq!(
            r.start("500 Oops", vec![], false),
            Err(StartError::AlreadyCalled)
        );
        r.start("500 Oops", vec![], true).unwrap();
        assert_eq!(r.head().unwrap().status, 500);
        assert_eq!(r.head().unwrap().content_length, None);
        assert_eq!(r.accept(3), 3);
        assert_eq!(r.start("500 Oops", vec![], true), Err(StartError::Reraise));
        assert_eq!(
            r.start("500 Oops", vec![], false),
            Err(StartError::AlreadyCalled)
        );

        let mut t = ResponseState::default();
        t.start("200 OK", vec![("content-length".into(), "4".into())], false)
            .unwrap();
        assert_eq!(t.accept(3), 3);
        assert!(t.short());
        assert_eq!(t.accept(3), 1);
        assert_eq!(t.accept(3), 0);
        assert!(t.complete());
        assert!(matches!(
            ResponseState::default().start("200 OK", vec![("X".into(), "a\nb".into())], false),
            Err(StartError::Invalid(_))
        ));
        let two = |a: &str, b: &str| {
            ResponseState::default().start(
                "200 OK",
                vec![
                    ("Content-Length".into(), a.into()),
                    ("content-length".into(), b.into()),
                ],
                false,
            )
        };
        assert_eq!(two("5", " 5"), Ok(()));
        assert!(matches!(two("5", "6"), Err(StartError::Invalid(_))));
    }
}
