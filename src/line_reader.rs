//! A bounded, resumable splitter of a byte stream into lines, for the protocol cores that
//! read commands a line at a time (POP3, SMTP and LMTP).
//!
//! It is fed whatever a socket returns, in chunks split anywhere, and tells a complete line
//! apart from "need more bytes" and from a line that grew past the caller's limit. It never
//! holds more than that limit, whatever a client sends: an over-long line is reported as
//! soon as it passes the limit (so the server can answer while an endless line is still
//! coming), and the rest of it, up to its LF, is skipped without being kept, so that the next
//! command is read from the right place.

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, with its line end (CRLF or a bare LF).
    Line(&'a [u8]),
    /// The line grew past the limit; the rest of it, up to its line end, is skipped.
    TooLong,
}

impl<'a> LineEvent<'a> {
    /// The same event with a line's CRLF or bare LF taken off.
    pub fn without_line_end(self) -> LineEvent<'a> {
        match self {
            LineEvent::Line(line) => {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                LineEvent::Line(line.strip_suffix(b"\r").unwrap_or(line))
            }
            LineEvent::TooLong => LineEvent::TooLong,
        }
    }
}

/// Splits a byte stream into lines of at most a given length.
#[derive(Debug, Default)]
pub struct LineReader {
    line: Vec<u8>,
    /// Skipping the rest of an over-long line until its line end.
    discarding: bool,
    /// The previous call returned a line that still sits in `line`.
    returned_line: bool,
}

impl LineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consume octets from the front of `input` until a line is complete or has grown past
    /// `limit` octets (its line end included), and say which; `None` means every octet was
    /// consumed and more are needed.
    pub fn next_line(&mut self, input: &mut &[u8], limit: usize) -> Option<LineEvent<'_>> {
        if self.returned_line {
            self.line.clear();
            self.returned_line = false;
        }
        while !input.is_empty() {
            let newline = memchr::memchr(b'\n', input);
            if self.discarding {
                match newline {
                    Some(at) => {
                        *input = &input[at + 1..];
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        *input = &[];
                        return None;
                    }
                }
            }
            let take = newline.map_or(input.len(), |at| at + 1);
            if self.line.len() + take > limit {
                // Drop what is held and skip to the line end.
                self.line = Vec::new();
                self.discarding = true;
                return Some(LineEvent::TooLong);
            }
            self.line.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if newline.is_some() {
                self.returned_line = true;
                return Some(LineEvent::Line(&self.line));
            }
        }
        None
    }

    /// Octets held for an incomplete line (never more than the limit).
    pub fn buffered(&self) -> usize {
        if self.returned_line {
            0
        } else {
            self.line.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reader: &mut LineReader, mut input: &[u8], limit: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut found = Vec::new();
        while let Some(event) = reader.next_line(&mut input, limit) {
            found.push(match event {
                LineEvent::Line(line) => Ok(line.to_vec()),
                LineEvent::TooLong => Err(()),
            });
        }
        assert!(input.is_empty());
        found
    }

    #[test]
    fn the_same_lines_at_every_split_point() {
        let long = format!("NOOP {}\r\n", "x".repeat(600));
        let input = [
            b"EHLO a\r\nMAIL FROM:<>\nNOOP\r\n".as_slice(),
            long.as_bytes(),
            b"\r\nQUIT\r\npartial",
        ]
        .concat();
        let expected = vec![
            Ok(b"EHLO a\r\n".to_vec()),
            Ok(b"MAIL FROM:<>\n".to_vec()),
            Ok(b"NOOP\r\n".to_vec()),
            Err(()),
            Ok(b"\r\n".to_vec()),
            Ok(b"QUIT\r\n".to_vec()),
        ];
        for split in 0..=input.len() {
            let mut reader = LineReader::new();
            let mut got = lines(&mut reader, &input[..split], 512);
            got.extend(lines(&mut reader, &input[split..], 512));
            assert_eq!(got, expected, "split at {split}");
            assert_eq!(reader.buffered(), b"partial".len());
        }
        let mut reader = LineReader::new();
        let got: Vec<_> = input
            .chunks(1)
            .flat_map(|c| lines(&mut reader, c, 512))
            .collect();
        assert_eq!(got, expected, "one octet at a time");
    }

    #[test]
    fn the_limit_counts_the_line_end() {
        let mut reader = LineReader::new();
        let exact = [vec![b'x'; 510], b"\r\n".to_vec()].concat();
        assert_eq!(lines(&mut reader, &exact, 512), vec![Ok(exact.clone())]);
        let over = [vec![b'x'; 511], b"\r\n".to_vec()].concat();
        assert_eq!(lines(&mut reader, &over, 512), vec![Err(())]);
        assert_eq!(
            lines(&mut reader, b"NOOP\r\n", 512),
            vec![Ok(b"NOOP\r\n".to_vec())]
        );
    }

    #[test]
    fn an_endless_line_is_reported_once_and_never_held() {
        let mut reader = LineReader::new();
        let chunk = vec![b'x'; 65536];
        let mut reports = 0;
        for _ in 0..160 {
            reports += lines(&mut reader, &chunk, 255).len();
            assert!(reader.buffered() <= 255);
            assert!(reader.line.capacity() <= 255);
        }
        assert_eq!(reports, 1, "one error per over-long line");
        assert_eq!(
            lines(&mut reader, b"tail\r\nQUIT\r\n", 255),
            vec![Ok(b"QUIT\r\n".to_vec())]
        );
    }

    #[test]
    fn line_ends_come_off() {
        for (line, bare) in [
            (&b"QUIT\r\n"[..], &b"QUIT"[..]),
            (b"QUIT\n", b"QUIT"),
            (b"\r\n", b""),
            (b"a\rb\n", b"a\rb"),
        ] {
            assert_eq!(
                LineEvent::Line(line).without_line_end(),
                LineEvent::Line(bare)
            );
        }
        assert_eq!(LineEvent::TooLong.without_line_end(), LineEvent::TooLong);
    }
}
