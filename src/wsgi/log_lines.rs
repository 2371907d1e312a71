//! Line buffering of the log streams (`wsgi.errors`, `sys.stdout`, `sys.stderr`): complete
//! lines become log entries; a line without its newline waits, but only up to
//! [`PARTIAL_LINE_MAX`] bytes, so `print(..., end='')` loops and `\r` progress output cannot
//! grow a buffer without bound.

/// The longest partial line kept waiting for its newline; past it, the text goes out in
/// pieces of this size. 4 KiB so that a piece always fits in one error-log entry (Apache cuts
/// an entry, prefix included, at 8 KiB).
pub const PARTIAL_LINE_MAX: usize = 4096;

/// One stream's partial line.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Adds `text`; `emit` gets each complete line (without its newline) and each
    /// [`PARTIAL_LINE_MAX`] bytes of a line still waiting for its end.
    pub fn write(&mut self, text: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut rest = text;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                emit(&rest[..nl]);
            } else {
                self.pending.extend_from_slice(&rest[..nl]);
                emit(&self.pending);
                self.pending.clear();
            }
            rest = &rest[nl + 1..];
        }
        if self.pending.len() + rest.len() < PARTIAL_LINE_MAX {
            self.pending.extend_from_slice(rest);
            return;
        }
        self.pending.extend_from_slice(rest);
        let mut start = 0;
        while self.pending.len() - start >= PARTIAL_LINE_MAX {
            let cut = char_boundary(&self.pending[start..], PARTIAL_LINE_MAX);
            emit(&self.pending[start..start + cut]);
            start += cut;
        }
        self.pending.drain(..start);
        self.pending.shrink_to(PARTIAL_LINE_MAX);
    }

    /// Emits the partial line, if any.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// The largest cut at or below `max` that does not split a UTF-8 sequence (`max` itself if
/// the bytes are not UTF-8 there).
fn char_boundary(buf: &[u8], max: usize) -> usize {
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && buf.get(i).is_none_or(|&b| b & 0xC0 != 0x80))
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(writes: &[&str]) -> (Vec<String>, LineBuffer) {
        let mut b = LineBuffer::default();
        let mut out = Vec::new();
        for w in writes {
            b.write(w.as_bytes(), |l| {
                out.push(String::from_utf8(l.to_vec()).expect("cut inside a character"))
            });
        }
        (out, b)
    }

    #[test]
    fn complete_lines_are_emitted_and_partial_ones_wait() {
        let (out, mut b) = run(&["a\nb", "c\n\nd"]);
        assert_eq!(out, ["a", "bc", ""]);
        let mut rest = Vec::new();
        b.flush(|l| rest.push(l.to_vec()));
        assert_eq!(rest, [b"d".to_vec()]);
        b.flush(|_| panic!("nothing left"));
    }

    #[test]
    fn a_long_partial_line_goes_out_in_bounded_pieces() {
        let update = "\rprogress 0123456789";
        let writes = vec![update; 1000];
        let (out, b) = run(&writes);
        assert!(out.len() >= 4, "{}", out.len());
        assert!(out.iter().all(|l| l.len() == PARTIAL_LINE_MAX));
        assert!(b.pending.len() < PARTIAL_LINE_MAX);
        let all: String = out.concat() + std::str::from_utf8(&b.pending).unwrap();
        assert_eq!(all, writes.concat());
        // A line written whole with its newline stays one entry, however long; one that
        // passes the cap before its newline comes is split.
        let (out, _) = run(&[&("y".repeat(6000) + "\n")]);
        assert_eq!(out, ["y".repeat(6000)]);
        let long = "x".repeat(3000);
        let (out, _) = run(&[&long, &long, "\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len() + out[1].len(), 6000);
    }

    #[test]
    fn pieces_do_not_split_characters() {
        let text = "é".repeat(5000);
        let (out, b) = run(&[&text]);
        assert!(out.iter().all(|l| l.len() <= PARTIAL_LINE_MAX));
        assert_eq!(
            out.concat() + std::str::from_utf8(&b.pending).unwrap(),
            text
        );
    }
}
