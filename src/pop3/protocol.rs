//! POP3 on the wire, without I/O: the command line reader and parser, and the streaming
//! writer that turns a message file into a RETR or TOP body.
//!
//! Both are resumable state machines fed arbitrary chunks, so the server can hand them
//! whatever a socket or a file returns, and tests can replay input split at every point. The
//! line reader never holds more than [`MAX_LINE`] octets, whatever a client sends.

use std::fmt;

/// The longest command line accepted, line end included (RFC 2449 §4).
pub const MAX_LINE: usize = 255;

pub use crate::line_reader::LineEvent;

/// POP3's command lines: the shared [`crate::line_reader::LineReader`] at [`MAX_LINE`], each
/// line handed out without its line end (CRLF or a bare LF).
#[derive(Debug, Default)]
pub struct LineReader(crate::line_reader::LineReader);

impl LineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consume bytes from the front of `input` until a line is complete or the line is too
    /// long, and report that; `None` means every byte was consumed and more are needed.
    pub fn next_line(&mut self, input: &mut &[u8]) -> Option<LineEvent<'_>> {
        self.0
            .next_line(input, MAX_LINE)
            .map(LineEvent::without_line_end)
    }

    /// Octets held for an incomplete line (never more than [`MAX_LINE`]).
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }
}

/// A parsed POP3 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line after `PASS `, spaces included.
    Pass(String),
    Apop {
        user: String,
        digest: String,
    },
    Auth {
        mechanism: Option<String>,
        initial_response: Option<String>,
    },
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u64),
    Dele(u32),
    Rset,
    Noop,
    Quit,
}

impl Command {
    /// The command's keyword, for logs and the state gate.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top(..) => "TOP",
            Command::Dele(_) => "DELE",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
        }
    }
}

/// Why a command line was not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Empty,
    NotUtf8,
    Unknown(String),
    MissingArgument(&'static str),
    TooManyArguments(&'static str),
    BadNumber(&'static str),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Empty => f.write_str("empty command"),
            CommandError::NotUtf8 => f.write_str("command is not valid UTF-8"),
            CommandError::Unknown(word) => write!(f, "unknown command {word:?}"),
            CommandError::MissingArgument(usage) => write!(f, "missing argument (usage: {usage})"),
            CommandError::TooManyArguments(usage) => {
                write!(f, "too many arguments (usage: {usage})")
            }
            CommandError::BadNumber(usage) if usage.starts_with("TOP") => write!(
                f,
                "message numbers are 1 to 4294967295 and line counts 0 or more (usage: {usage})"
            ),
            CommandError::BadNumber(usage) => {
                write!(f, "message numbers are 1 to 4294967295 (usage: {usage})")
            }
        }
    }
}

/// Parse one command line (without its line end).
///
/// # Errors
/// A [`CommandError`] that the session turns into `-ERR`.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    if keyword.is_empty() {
        return Err(CommandError::Empty);
    }
    let keyword = keyword.to_ascii_uppercase();
    let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    let command = match keyword.as_str() {
        "USER" => Command::User(one(&args, "USER name")?.to_owned()),
        "PASS" => {
            // RFC 1939 §7: the password is the rest of the line and may contain spaces.
            if rest.is_empty() {
                return Err(CommandError::MissingArgument("PASS password"));
            }
            Command::Pass(rest.to_owned())
        }
        "APOP" => match args.as_slice() {
            [user, digest] => Command::Apop {
                user: (*user).to_owned(),
                digest: (*digest).to_owned(),
            },
            [] | [_] => return Err(CommandError::MissingArgument("APOP name digest")),
            _ => return Err(CommandError::TooManyArguments("APOP name digest")),
        },
        "AUTH" => match args.as_slice() {
            [] => Command::Auth {
                mechanism: None,
                initial_response: None,
            },
            [mechanism] => Command::Auth {
                mechanism: Some(mechanism.to_ascii_uppercase()),
                initial_response: None,
            },
            [mechanism, initial] => Command::Auth {
                mechanism: Some(mechanism.to_ascii_uppercase()),
                initial_response: Some((*initial).to_owned()),
            },
            _ => {
                return Err(CommandError::TooManyArguments(
                    "AUTH mechanism [initial-response]",
                ))
            }
        },
        "CAPA" => none(&args, Command::Capa, "CAPA")?,
        "STLS" => none(&args, Command::Stls, "STLS")?,
        "STAT" => none(&args, Command::Stat, "STAT")?,
        "RSET" => none(&args, Command::Rset, "RSET")?,
        "NOOP" => none(&args, Command::Noop, "NOOP")?,
        "QUIT" => none(&args, Command::Quit, "QUIT")?,
        "LIST" => Command::List(optional_number(&args, "LIST [msg]")?),
        "UIDL" => Command::Uidl(optional_number(&args, "UIDL [msg]")?),
        "RETR" => Command::Retr(message_number(one(&args, "RETR msg")?, "RETR msg")?),
        "DELE" => Command::Dele(message_number(one(&args, "DELE msg")?, "DELE msg")?),
        "TOP" => match args.as_slice() {
            [msg, lines] => Command::Top(
                message_number(msg, "TOP msg n")?,
                digits(lines)
                    .and_then(|d| d.parse().ok())
                    .ok_or(CommandError::BadNumber("TOP msg n"))?,
            ),
            [] | [_] => return Err(CommandError::MissingArgument("TOP msg n")),
            _ => return Err(CommandError::TooManyArguments("TOP msg n")),
        },
        _ => {
            return Err(CommandError::Unknown(keyword.chars().take(40).collect()));
        }
    };
    Ok(command)
}

fn one<'a>(args: &[&'a str], usage: &'static str) -> Result<&'a str, CommandError> {
    match args {
        [arg] => Ok(arg),
        [] => Err(CommandError::MissingArgument(usage)),
        _ => Err(CommandError::TooManyArguments(usage)),
    }
}

fn none(args: &[&str], command: Command, usage: &'static str) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::TooManyArguments(usage))
    }
}

fn optional_number(args: &[&str], usage: &'static str) -> Result<Option<u32>, CommandError> {
    match args {
        [] => Ok(None),
        [msg] => message_number(msg, usage).map(Some),
        _ => Err(CommandError::TooManyArguments(usage)),
    }
}

/// Only ASCII digits: `+1`, `-1`, ` 1` and `1.0` are not numbers in POP3.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

fn message_number(text: &str, usage: &'static str) -> Result<u32, CommandError> {
    digits(text)
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .ok_or(CommandError::BadNumber(usage))
}

/// How much of a message a transfer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// RETR: everything.
    Whole,
    /// TOP: the header, the blank line, and this many body lines.
    Top(u64),
}

/// The streaming writer behind RETR and TOP: turns bare LF into CRLF, byte-stuffs lines
/// that start with a dot, ends an unterminated last line with CRLF and the body with `.CRLF`.
/// It also counts the octets it sends before stuffing, which is what sizes must report, so
/// sizes are computed by this same code.
#[derive(Debug, Clone)]
pub struct BodyWriter {
    extent: Extent,
    at_line_start: bool,
    previous_cr: bool,
    /// Octets of the current line so far, to recognise the blank line after the header.
    line_length: u64,
    in_header: bool,
    body_lines_left: u64,
    done: bool,
    octets: u64,
}

impl BodyWriter {
    pub fn new(extent: Extent) -> Self {
        BodyWriter {
            extent,
            at_line_start: true,
            previous_cr: false,
            line_length: 0,
            in_header: true,
            body_lines_left: match extent {
                Extent::Whole => u64::MAX,
                Extent::Top(n) => n,
            },
            done: false,
            octets: 0,
        }
    }

    /// Whether the extent is complete, so the rest of the file need not be read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Octets written so far, not counting stuffed dots and the final `.CRLF`.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Encode the next chunk of the message file into `out`.
    pub fn write(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        // Copied in runs: `start` is the first byte of `chunk` not yet in `out`.
        let mut start = 0;
        let mut pos = 0;
        while pos < chunk.len() && !self.done {
            if self.at_line_start {
                if chunk[pos] == b'.' {
                    out.extend_from_slice(&chunk[start..pos]);
                    start = pos;
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            let Some(newline) = memchr::memchr(b'\n', &chunk[pos..]).map(|i| pos + i) else {
                self.add_to_line(&chunk[pos..]);
                pos = chunk.len();
                break;
            };
            self.add_to_line(&chunk[pos..newline]);
            if !self.previous_cr {
                out.extend_from_slice(&chunk[start..newline]);
                start = newline;
                out.push(b'\r');
                self.octets += 1;
            }
            self.octets += 1;
            self.end_line();
            pos = newline + 1;
        }
        out.extend_from_slice(&chunk[start..pos]);
    }

    /// Account for bytes of the current line (none of them LF).
    fn add_to_line(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.octets += bytes.len() as u64;
            self.line_length += bytes.len() as u64;
            self.previous_cr = last == b'\r';
        }
    }

    fn end_line(&mut self) {
        // A blank line is empty, or a lone CR before the LF.
        let blank = self.line_length == 0 || (self.line_length == 1 && self.previous_cr);
        self.at_line_start = true;
        self.previous_cr = false;
        self.line_length = 0;
        if self.in_header {
            if blank {
                self.in_header = false;
                self.done = self.body_lines_left == 0;
            }
        } else {
            self.body_lines_left = self.body_lines_left.saturating_sub(1);
            self.done = self.body_lines_left == 0 && self.extent != Extent::Whole;
        }
    }

    /// End the body: CRLF after an unterminated last line, then `.CRLF`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            // A last line ending in a lone CR only lacks its LF.
            let ending: &[u8] = if self.previous_cr { b"\n" } else { b"\r\n" };
            out.extend_from_slice(ending);
            self.octets += ending.len() as u64;
            self.at_line_start = true;
        }
        out.extend_from_slice(b".\r\n");
        self.done = true;
    }
}

/// The octets RETR sends for a message read from `reader`, before byte-stuffing.
///
/// # Errors
/// Fails when reading fails.
pub fn transfer_size(mut reader: impl std::io::Read) -> std::io::Result<u64> {
    let mut writer = BodyWriter::new(Extent::Whole);
    let mut chunk = vec![0; 64 * 1024];
    let mut scratch = Vec::with_capacity(chunk.len() * 2);
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scratch.clear();
        writer.write(&chunk[..n], &mut scratch);
    }
    scratch.clear();
    writer.finish(&mut scratch);
    Ok(writer.octets())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reader: &mut LineReader, mut input: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
        let mut found = Vec::new();
        while let Some(event) = reader.next_line(&mut input) {
            found.push(match event {
                LineEvent::Line(line) => Ok(line.to_vec()),
                LineEvent::TooLong => Err(()),
            });
        }
        assert!(input.is_empty());
        found
    }

    #[test]
    fn lines_come_without_their_line_ends() {
        let mut reader = LineReader::new();
        assert_eq!(
            lines(
                &mut reader,
                b"USER asterix\r\nPASS po tion\n\r\nQUIT\r\npartial"
            ),
            vec![
                Ok(b"USER asterix".to_vec()),
                Ok(b"PASS po tion".to_vec()),
                Ok(b"".to_vec()),
                Ok(b"QUIT".to_vec()),
            ]
        );
        assert_eq!(reader.buffered(), b"partial".len());
    }

    #[test]
    fn line_limit_counts_the_line_end() {
        let ok = format!("{}\r\n", "a".repeat(MAX_LINE - 2));
        let too_long = format!("{}\r\n", "a".repeat(MAX_LINE - 1));
        let mut reader = LineReader::new();
        assert_eq!(lines(&mut reader, ok.as_bytes()).len(), 1);
        assert_eq!(lines(&mut reader, too_long.as_bytes()), vec![Err(())]);
        assert_eq!(lines(&mut reader, b"NOOP\r\n"), vec![Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn commands_parse() {
        let cases: Vec<(&[u8], Command)> = vec![
            (b"user asterix", Command::User("asterix".into())),
            (b"PASS  two  spaces ", Command::Pass(" two  spaces ".into())),
            (
                b"APOP asterix c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop {
                    user: "asterix".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                },
            ),
            (
                b"AUTH plain",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: None,
                },
            ),
            (
                b"AUTH PLAIN AGEAYg==",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: Some("AGEAYg==".into()),
                },
            ),
            (b"Capa", Command::Capa),
            (b"STLS", Command::Stls),
            (b"STAT", Command::Stat),
            (b"LIST", Command::List(None)),
            (b"LIST 2", Command::List(Some(2))),
            (b"UIDL", Command::Uidl(None)),
            (b"UIDL 4294967295", Command::Uidl(Some(u32::MAX))),
            (b"RETR 1", Command::Retr(1)),
            (b"TOP 1 0", Command::Top(1, 0)),
            (b"TOP 3 10", Command::Top(3, 10)),
            (b"DELE 7", Command::Dele(7)),
            (b"RSET", Command::Rset),
            (b"NOOP", Command::Noop),
            (b"QUIT", Command::Quit),
        ];
        for (line, command) in cases {
            assert_eq!(parse_command(line), Ok(command), "{:?}", line);
        }
    }

    #[test]
    fn bad_commands_are_errors() {
        use CommandError::*;
        let cases: Vec<(&[u8], CommandError)> = vec![
            (b"", Empty),
            (b" STAT", Empty),
            (b"\xff\xfe", NotUtf8),
            (b"FOO", Unknown("FOO".into())),
            (b"RETR", MissingArgument("RETR msg")),
            (b"RETR 0", BadNumber("RETR msg")),
            (b"RETR -1", BadNumber("RETR msg")),
            (b"RETR +1", BadNumber("RETR msg")),
            (b"RETR 4294967296", BadNumber("RETR msg")),
            (b"RETR one", BadNumber("RETR msg")),
            (b"RETR 1 2", TooManyArguments("RETR msg")),
            (b"DELE x", BadNumber("DELE msg")),
            (b"LIST 0", BadNumber("LIST [msg]")),
            (b"TOP 1", MissingArgument("TOP msg n")),
            (b"TOP 1 -1", BadNumber("TOP msg n")),
            (b"TOP 1 99999999999999999999999", BadNumber("TOP msg n")),
            (b"STAT 1", TooManyArguments("STAT")),
            (b"PASS", MissingArgument("PASS password")),
            (b"USER", MissingArgument("USER name")),
            (b"APOP a", MissingArgument("APOP name digest")),
        ];
        for (line, error) in cases {
            assert_eq!(parse_command(line), Err(error), "{:?}", line);
        }
    }

    /// The obvious, whole-message version of the writer.
    fn reference(message: &[u8], extent: Extent) -> Vec<u8> {
        let text = message;
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        let unterminated_tail = lines.last().is_some_and(|l| l.is_empty());
        if unterminated_tail {
            lines.pop();
        }
        let mut out = Vec::new();
        let mut in_header = true;
        let mut body_lines = 0u64;
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            if in_header {
                if line.is_empty() {
                    in_header = false;
                    if extent == Extent::Top(0) {
                        break;
                    }
                }
            } else {
                body_lines += 1;
                if Extent::Top(body_lines) == extent {
                    break;
                }
            }
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn writer_matches_the_reference_at_every_split_point() {
        let messages: [&[u8]; 7] = [
            b"Subject: a\n\n.dot\nline\r\n..two\r\n.\nlast",
            b"Subject: b\r\nX: y\r\n\r\nbody\r\n",
            b"Subject: c\n\nno final newline",
            b"no blank line at all\n.x\n",
            b"",
            b"H: 1\n\n\n\n.\n",
            b"H: 1\r\n\r\nends in CR\r",
        ];
        for message in messages {
            for extent in [
                Extent::Whole,
                Extent::Top(0),
                Extent::Top(1),
                Extent::Top(99),
            ] {
                let expected = reference(message, extent);
                for split in 0..=message.len() {
                    let mut writer = BodyWriter::new(extent);
                    let mut out = Vec::new();
                    writer.write(&message[..split], &mut out);
                    writer.write(&message[split..], &mut out);
                    writer.finish(&mut out);
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(&expected),
                        "{message:?} {extent:?} split at {split}"
                    );
                    let stuffed = out.windows(2).filter(|w| w == b"\n.").count()
                        + usize::from(out.starts_with(b"."));
                    assert_eq!(writer.octets() as usize, out.len() - stuffed - 2);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn writer_matches_the_reference_on_random_messages(
            message in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', b' ']),
                0..300,
            ),
            splits in proptest::collection::vec(0usize..300, 0..4),
            lines in proptest::option::of(0u64..6),
        ) {
            let extent = lines.map_or(Extent::Whole, Extent::Top);
            let mut cuts: Vec<usize> = splits.into_iter().map(|s| s.min(message.len())).collect();
            cuts.push(0);
            cuts.push(message.len());
            cuts.sort_unstable();
            let mut writer = BodyWriter::new(extent);
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                writer.write(&message[pair[0]..pair[1]], &mut out);
            }
            writer.finish(&mut out);
            proptest::prop_assert_eq!(out, reference(&message, extent));
        }

        #[test]
        fn reader_never_holds_more_than_a_line(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![b'x', b'\r', b'\n']), 0..700),
                0..8,
            ),
        ) {
            let mut reader = LineReader::new();
            for chunk in &chunks {
                let mut input = chunk.as_slice();
                while let Some(event) = reader.next_line(&mut input) {
                    if let LineEvent::Line(line) = event {
                        proptest::prop_assert!(line.len() < MAX_LINE);
                        proptest::prop_assert!(!line.contains(&b'\n'));
                    }
                }
                proptest::prop_assert!(reader.buffered() <= MAX_LINE);
            }
        }
    }

    #[test]
    fn sizes_count_crlf_and_the_added_line_end() {
        assert_eq!(transfer_size(&b"a\nb\r\n"[..]).unwrap(), 6);
        assert_eq!(transfer_size(&b"a\nno newline"[..]).unwrap(), 15);
        assert_eq!(transfer_size(&b".\n"[..]).unwrap(), 3);
    }
}
