//! The command line reader: resumable, bounded to RFC 5321's 512 octets per command line.
//!
//! It tells a complete line apart from "need more bytes" and from a line that was too long;
//! an over-long line is skipped up to its LF without being kept, so memory stays bounded
//! and the next command is read from the right place.

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. AUTH's
/// initial responses can be longer (RFC 4954 §4 allows 12,288), so lines of AUTH get the
/// larger limit.
pub const MAX_COMMAND_LINE: usize = 512;
/// The limit for an AUTH line or a SASL response line.
pub const MAX_AUTH_LINE: usize = 12_288;

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A line, with its line end (smtp-proto's parser reads up to the LF).
    Line(&'a [u8]),
    /// A line longer than allowed: skipped.
    TooLong,
}

/// Accumulates input into lines.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// A complete line is in `buf` and was handed out: drop it before reading on.
    consumed: bool,
}

impl LineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Octets held that are not yet a line (discarded after STARTTLS).
    pub fn buffered(&self) -> usize {
        if self.consumed {
            0
        } else {
            self.buf.len()
        }
    }

    /// The next line from what is buffered plus `input`, consuming from `input`; `None`
    /// when more input is needed. `limit` is the longest line allowed, line end included.
    pub fn next_line(&mut self, input: &mut &[u8], limit: usize) -> Option<LineEvent<'_>> {
        if self.consumed {
            self.buf.clear();
            self.consumed = false;
        }
        loop {
            if input.is_empty() {
                return None;
            }
            let newline = memchr::memchr(b'\n', input);
            let take = newline.map_or(input.len(), |at| at + 1);
            let (part, rest) = input.split_at(take);
            *input = rest;
            if self.skipping {
                if newline.is_some() {
                    self.skipping = false;
                    return Some(LineEvent::TooLong);
                }
                continue;
            }
            if self.buf.len() + part.len() > limit {
                self.buf.clear();
                if newline.is_some() {
                    return Some(LineEvent::TooLong);
                }
                self.skipping = true;
                continue;
            }
            self.buf.extend_from_slice(part);
            if newline.is_some() {
                self.consumed = true;
                return Some(LineEvent::Line(&self.buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]], limit: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut reader = LineReader::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(event) = reader.next_line(&mut input, limit) {
                lines.push(match event {
                    LineEvent::Line(line) => Ok(line.to_vec()),
                    LineEvent::TooLong => Err(()),
                });
            }
        }
        lines
    }

    #[test]
    fn lines_at_every_split_and_overlong_lines_resynchronise() {
        let input = b"EHLO a\r\nMAIL FROM:<>\r\nNOOP\r\n";
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                all(&[a, b], 512),
                vec![
                    Ok(b"EHLO a\r\n".to_vec()),
                    Ok(b"MAIL FROM:<>\r\n".to_vec()),
                    Ok(b"NOOP\r\n".to_vec())
                ]
            );
        }
        let long = [vec![b'x'; 600], b"\r\nNOOP\r\n".to_vec()].concat();
        for split in [1, 100, 511, 512, 513, 601] {
            let (a, b) = long.split_at(split);
            assert_eq!(all(&[a, b], 512), vec![Err(()), Ok(b"NOOP\r\n".to_vec())]);
        }
        let exact = [vec![b'x'; 510], b"\r\n".to_vec()].concat();
        assert_eq!(all(&[&exact], 512), vec![Ok(exact.clone())]);
    }
}
