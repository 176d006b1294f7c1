//! Line and literal framing for the IMAP session: a resumable reader over what the client
//! sent. Lines end with CRLF or a bare LF (people type IMAP with `nc`); a line longer than
//! the limit is reported once and then skipped to its end with bounded memory, and a
//! non-synchronising literal announced at the end of a skipped line is skipped too, so that
//! its octets are never read as commands.

use memchr::memchr;

/// A literal announced at the end of a line: `{N}` or `{N+}` (RFC 7888).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// The announced length; `None` when it does not fit in 64 bits.
    pub length: Option<u64>,
    /// `{N+}`: the client sends the octets without waiting for a continuation request.
    pub non_sync: bool,
    /// Where `{` starts in the line.
    pub start: usize,
}

/// The literal announced at the end of `line` (without its line end), if any.
pub fn announcement(line: &[u8]) -> Option<Announcement> {
    let body = line.strip_suffix(b"}")?;
    let (digits_end, non_sync) = match body.strip_suffix(b"+") {
        Some(rest) => (rest.len(), true),
        None => (body.len(), false),
    };
    let digits_start = body[..digits_end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    if digits_start == digits_end || digits_start == 0 || body[digits_start - 1] != b'{' {
        return None;
    }
    let digits = &body[digits_start..digits_end];
    let length = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Announcement {
        length,
        non_sync,
        start: digits_start - 1,
    })
}

/// What [`Reader::line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its line end.
    Complete(Vec<u8>),
    /// The line is longer than allowed: its first octets (for the tag and the command name);
    /// the rest is skipped without being kept.
    TooLong(Vec<u8>),
}

#[derive(Debug)]
enum Mode {
    Normal,
    /// Skipping an overlong line; the last octets seen, to spot a literal at its end.
    SkipLine {
        tail: Vec<u8>,
    },
    /// Dropping the octets of a literal, then the rest of its line.
    Discard {
        remaining: u64,
    },
}

/// How many octets of an overlong line are kept to report it.
const HEAD: usize = 64;
/// How many trailing octets of a skipped line are kept to find `{N+}` in them.
const TAIL: usize = 24;

/// Octets received from the client and not yet consumed.
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    mode: Mode,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: Vec::new(),
            start: 0,
            mode: Mode::Normal,
        }
    }
}

impl Reader {
    /// Add octets from the client.
    pub fn push(&mut self, input: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            // Give back the memory of a burst.
            self.buf = Vec::new();
        }
        self.buf.extend_from_slice(input);
        self.skip();
    }

    /// Forget everything received so far (after STARTTLS: what came in the clear must not
    /// be read as commands).
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.mode = Mode::Normal;
    }

    /// Octets received and not consumed yet.
    pub fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether everything received has been consumed (and nothing is being skipped).
    pub fn is_idle(&self) -> bool {
        self.available() == 0 && matches!(self.mode, Mode::Normal)
    }

    /// Drop the next `length` octets (a literal that is refused), then the rest of the line
    /// they belong to.
    pub fn discard_literal(&mut self, length: u64) {
        self.mode = Mode::Discard { remaining: length };
        self.skip();
    }

    /// Take up to `max` octets of literal data.
    pub fn take(&mut self, max: u64) -> &[u8] {
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.available());
        let chunk = &self.buf[self.start..self.start + n];
        self.start += n;
        chunk
    }

    /// Whether a line end has arrived: [`Reader::line`] has a line to return.
    pub fn has_line(&self) -> bool {
        matches!(self.mode, Mode::Normal) && memchr(b'\n', &self.buf[self.start..]).is_some()
    }

    /// The next line, at most `max` octets long without its line end; `None` until a whole
    /// line (or more than `max` octets of one) has arrived.
    pub fn line(&mut self, max: usize) -> Option<Line> {
        if !matches!(self.mode, Mode::Normal) {
            return None;
        }
        let available = &self.buf[self.start..];
        match memchr(b'\n', available) {
            Some(end) if end <= max.saturating_add(1) => {
                let mut line = &available[..end];
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                if line.len() > max {
                    return Some(self.too_long());
                }
                let line = line.to_vec();
                self.start += end + 1;
                Some(Line::Complete(line))
            }
            Some(_) => Some(self.too_long()),
            None if available.len() > max.saturating_add(1) => Some(self.too_long()),
            None => None,
        }
    }

    fn too_long(&mut self) -> Line {
        let available = &self.buf[self.start..];
        let head = available[..available.len().min(HEAD)].to_vec();
        self.mode = Mode::SkipLine { tail: Vec::new() };
        self.skip();
        Line::TooLong(head)
    }

    /// Consume what the current mode skips.
    fn skip(&mut self) {
        loop {
            let available = self.buf.len() - self.start;
            match &mut self.mode {
                Mode::Normal => return,
                Mode::Discard { remaining } => {
                    let n = (*remaining).min(available as u64);
                    self.start += n as usize;
                    *remaining -= n;
                    if *remaining > 0 {
                        return;
                    }
                    self.mode = Mode::SkipLine { tail: Vec::new() };
                }
                Mode::SkipLine { tail } => {
                    let available = &self.buf[self.start..];
                    match memchr(b'\n', available) {
                        None => {
                            tail.extend_from_slice(
                                &available[available.len().saturating_sub(TAIL)..],
                            );
                            let excess = tail.len().saturating_sub(TAIL);
                            tail.drain(..excess);
                            self.start = self.buf.len();
                            return;
                        }
                        Some(end) => {
                            tail.extend_from_slice(&available[end.saturating_sub(TAIL)..end]);
                            self.start += end + 1;
                            let line = tail.strip_suffix(b"\r").unwrap_or(tail);
                            self.mode = match announcement(line) {
                                Some(Announcement {
                                    non_sync: true,
                                    length: Some(length),
                                    ..
                                }) => Mode::Discard { remaining: length },
                                // A length that overflows cannot be skipped: the session
                                // closes on such lines before they get here.
                                _ => Mode::Normal,
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements() {
        assert_eq!(
            announcement(b"a LOGIN {5}"),
            Some(Announcement {
                length: Some(5),
                non_sync: false,
                start: 8
            })
        );
        assert_eq!(
            announcement(b"a APPEND x {12+}").map(|a| (a.length, a.non_sync)),
            Some((Some(12), true))
        );
        assert_eq!(announcement(b"a NOOP"), None);
        assert_eq!(announcement(b"{}"), None);
        assert_eq!(announcement(b"a {+}"), None);
        assert_eq!(announcement(b"5}"), None);
        assert_eq!(
            announcement(b"{99999999999999999999999}").map(|a| a.length),
            Some(None)
        );
    }

    #[test]
    fn lines_with_either_line_end() {
        let mut reader = Reader::default();
        reader.push(b"a NOOP\r\nb NOOP\nc NO");
        assert_eq!(reader.line(100), Some(Line::Complete(b"a NOOP".to_vec())));
        assert_eq!(reader.line(100), Some(Line::Complete(b"b NOOP".to_vec())));
        assert_eq!(reader.line(100), None);
        reader.push(b"OP\r\n");
        assert_eq!(reader.line(100), Some(Line::Complete(b"c NOOP".to_vec())));
        assert!(reader.is_idle());
    }

    #[test]
    fn overlong_line_is_skipped_with_its_literal() {
        let mut reader = Reader::default();
        reader.push(b"a NOOP xxxxxxxxxxxxxxxxxxxxxx");
        assert!(
            matches!(reader.line(10), Some(Line::TooLong(head)) if head.starts_with(b"a NOOP"))
        );
        reader.push(b"yyyyyyyyyyyyyyyyyy {4+}\r\n");
        reader.push(b"b NO\r\nc NOOP\r\n");
        assert_eq!(reader.line(10), Some(Line::Complete(b"c NOOP".to_vec())));
    }

    #[test]
    fn discarded_literal_then_rest_of_line() {
        let mut reader = Reader::default();
        reader.discard_literal(5);
        reader.push(b"12");
        assert_eq!(reader.line(100), None);
        reader.push(b"345 trailing\r\nnext\r\n");
        assert_eq!(reader.line(100), Some(Line::Complete(b"next".to_vec())));
    }
}
