//! `--trace`: the IMAP dialogue, as it crosses the socket, written to stderr.
//!
//! The tracer sits below the imap crate's buffering, so it sees exactly the bytes sent and
//! received. It cuts them into lines, prefixes `C:` or `S:`, and hides two things: the
//! password (the last argument of `LOGIN`, every SASL response line after `AUTHENTICATE`), and
//! the contents of server literals (a mail body is shown as its size), so a trace of a sweep
//! stays readable and never leaks a credential.

use std::io::Write;

/// Splits both directions of a connection into masked, prefixed lines.
pub struct Tracer {
    sink: Box<dyn Write + Send>,
    client_line: Vec<u8>,
    server_line: Vec<u8>,
    literal_left: usize,
    in_authenticate: bool,
}

impl Tracer {
    /// A tracer writing to the process's stderr.
    pub fn stderr() -> Self {
        Tracer::new(Box::new(std::io::stderr()))
    }

    /// A tracer writing to any sink (tests use a buffer).
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Tracer {
            sink,
            client_line: Vec::new(),
            server_line: Vec::new(),
            literal_left: 0,
            in_authenticate: false,
        }
    }

    /// Bytes the client sent.
    pub fn client(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.client_line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.client_line);
            let shown = self.mask_client_line(trim_line_end(&line));
            self.emit("C: ", &shown);
        }
        self.client_line.extend_from_slice(bytes);
    }

    /// Bytes the server sent.
    pub fn server(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.literal_left > 0 {
                let skipped = self.literal_left.min(bytes.len());
                self.literal_left -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                self.server_line.extend_from_slice(bytes);
                return;
            };
            self.server_line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.server_line);
            let line = trim_line_end(&line);
            match literal_size(line) {
                Some(size) => {
                    self.literal_left = size;
                    let shown = format!("{} <{size} octets>", String::from_utf8_lossy(line));
                    self.emit("S: ", shown.as_bytes());
                }
                None => self.emit("S: ", line),
            }
            // A tagged reply ends an AUTHENTICATE exchange; `*` and `+` lines do not.
            if !line.starts_with(b"*") && !line.starts_with(b"+") {
                self.in_authenticate = false;
            }
        }
    }

    fn mask_client_line(&mut self, line: &[u8]) -> Vec<u8> {
        if self.in_authenticate {
            return b"<SASL response masked>".to_vec();
        }
        let text = String::from_utf8_lossy(line);
        let mut words = text.splitn(3, ' ');
        let (tag, command, rest) = (words.next(), words.next(), words.next());
        match (tag, command) {
            (Some(tag), Some(command)) if command.eq_ignore_ascii_case("LOGIN") => {
                let user = rest.map_or("", first_argument);
                format!("{tag} {command} {user} <password masked>").into_bytes()
            }
            (Some(_), Some(command)) if command.eq_ignore_ascii_case("AUTHENTICATE") => {
                self.in_authenticate = true;
                line.to_vec()
            }
            _ => line.to_vec(),
        }
    }

    fn emit(&mut self, prefix: &str, line: &[u8]) {
        // Tracing is best effort: a closed stderr must not break the sweep.
        let _ = writeln!(self.sink, "{prefix}{}", String::from_utf8_lossy(line));
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The size of the literal that follows a line ending in `{N}` (or `{N+}`).
fn literal_size(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The first IMAP argument of `rest`: a quoted string (with `\` escapes) or an atom.
fn first_argument(rest: &str) -> &str {
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return &rest[..i + 2],
                _ => escaped = false,
            }
        }
        rest
    } else {
        rest.split(' ').next().unwrap_or(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn traced(steps: &[(bool, &[u8])]) -> String {
        let out = Shared::default();
        let mut tracer = Tracer::new(Box::new(out.clone()));
        for (from_client, bytes) in steps {
            if *from_client {
                tracer.client(bytes);
            } else {
                tracer.server(bytes);
            }
        }
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn login_password_is_masked_even_with_quotes_and_spaces() {
        let out = traced(&[
            (true, b"a1 LOGIN \"as \\\"terix\" \"pot ion\"\r\n"),
            (false, b"a1 OK Logged in\r\n"),
        ]);
        assert_eq!(
            out,
            "C: a1 LOGIN \"as \\\"terix\" <password masked>\nS: a1 OK Logged in\n"
        );
        assert!(!out.contains("pot ion"));
    }

    #[test]
    fn sasl_responses_are_masked_until_the_tagged_reply() {
        let out = traced(&[
            (true, b"a1 AUTHENTICATE PLAIN\r\n"),
            (false, b"+ \r\n"),
            (true, b"AGFzdGVyaXgAcG90aW9u\r\n"),
            (false, b"a1 OK Logged in\r\n"),
            (true, b"a2 SELECT INBOX\r\n"),
        ]);
        assert!(!out.contains("AGFzdGVyaXgAcG90aW9u"), "{out}");
        assert!(out.contains("C: <SASL response masked>"), "{out}");
        assert!(out.contains("C: a2 SELECT INBOX"), "{out}");
    }

    #[test]
    fn literals_are_summarised_across_any_split() {
        let wire: &[u8] =
            b"* 1 FETCH (UID 7 BODY[] {12}\r\nSecret\r\nBody)\r\na3 OK Fetch completed\r\n";
        let expected =
            "S: * 1 FETCH (UID 7 BODY[] {12} <12 octets>\nS: )\nS: a3 OK Fetch completed\n";
        for split in 0..wire.len() {
            let (a, b) = wire.split_at(split);
            let out = traced(&[(false, a), (false, b)]);
            assert_eq!(out, expected, "split at {split}");
        }
    }
}
