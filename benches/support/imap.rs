//! A small blocking IMAP client for the benches, independent of the server under test: tagged
//! commands, untagged responses with their literals kept apart, synchronising literals for
//! APPEND, IDLE. It counts the octets it receives, so a bench can report MB/s, and reads
//! with a buffer of the caller's size, so 10,000 idle connections stay small.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One untagged response: its text with each literal's `{N}` left in place, and the
/// literals' octets in order.
#[derive(Debug, Default)]
pub struct Untagged {
    pub text: Vec<u8>,
    pub literals: Vec<Vec<u8>>,
}

impl Untagged {
    /// The number after `name ` in a FETCH response (`UID`, `RFC822.SIZE`), or in
    /// `* N EXISTS` the N (name `*`).
    pub fn number(&self, name: &str) -> Option<u64> {
        let text = &self.text;
        let needle = format!("{name} ");
        let mut from = 0;
        while let Some(at) = find(&text[from..], needle.as_bytes()) {
            let start = from + at;
            // A whole word: preceded by `(` or a space.
            if start == 0 || matches!(text[start - 1], b'(' | b' ') {
                let digits: Vec<u8> = text[start + needle.len()..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                if let Ok(n) = std::str::from_utf8(&digits).unwrap_or("").parse() {
                    return Some(n);
                }
            }
            from = start + needle.len();
        }
        None
    }

    /// The flags of a FETCH response, as written inside `FLAGS (...)`.
    pub fn flags(&self) -> Option<&[u8]> {
        let at = find(&self.text, b"FLAGS (")? + b"FLAGS (".len();
        let end = self.text[at..].iter().position(|&b| b == b')')?;
        Some(&self.text[at..at + end])
    }

    /// `* N WORD` as (N, WORD), e.g. (3, "EXISTS"), (1, "FETCH").
    pub fn numbered(&self) -> Option<(u64, &[u8])> {
        let rest = self.text.strip_prefix(b"* ")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let n = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let word = rest[digits..].strip_prefix(b" ")?;
        let end = word
            .iter()
            .position(|&b| b == b' ' || b == b'\r')
            .unwrap_or(word.len());
        Some((n, &word[..end]))
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// A command's untagged responses and its tagged status line.
#[derive(Debug, Default)]
pub struct Response {
    pub untagged: Vec<Untagged>,
    pub status: Vec<u8>,
}

impl Response {
    /// The untagged FETCH responses.
    pub fn fetches(&self) -> impl Iterator<Item = &Untagged> {
        self.untagged
            .iter()
            .filter(|u| u.numbered().is_some_and(|(_, w)| w == b"FETCH"))
    }

    /// The sequence numbers of `* N EXPUNGE` responses.
    pub fn expunged(&self) -> Vec<u64> {
        self.untagged
            .iter()
            .filter_map(|u| {
                u.numbered()
                    .filter(|(_, w)| *w == b"EXPUNGE")
                    .map(|(n, _)| n)
            })
            .collect()
    }

    /// The N of the last `* N EXISTS`.
    pub fn exists(&self) -> Option<u64> {
        self.untagged
            .iter()
            .filter_map(|u| {
                u.numbered()
                    .filter(|(_, w)| *w == b"EXISTS")
                    .map(|(n, _)| n)
            })
            .next_back()
    }

    /// The numbers of `* SEARCH ...`.
    pub fn search(&self) -> Vec<u64> {
        self.untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix(b"* SEARCH"))
            .flat_map(|rest| {
                std::str::from_utf8(rest)
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<u64>>()
            })
            .collect()
    }

    /// The UID of an `[APPENDUID validity uid]` code.
    pub fn append_uid(&self) -> Option<u64> {
        let at = find(&self.status, b"[APPENDUID ")? + b"[APPENDUID ".len();
        let text = std::str::from_utf8(&self.status[at..]).ok()?;
        text.split([' ', ']']).nth(1)?.parse().ok()
    }
}

/// What to do with literals while reading a response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Literals {
    Keep,
    /// Count them and drop them (a 100 MiB FETCH).
    Discard,
}

pub struct Client {
    reader: BufReader<TcpStream>,
    tag: u32,
    /// Octets received so far.
    pub received: u64,
    line: Vec<u8>,
}

fn error(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

impl Client {
    /// Connect, read the greeting (`* OK`), reading through a buffer of `buffer` octets.
    pub fn connect(addr: SocketAddr, buffer: usize) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut client = Client {
            reader: BufReader::with_capacity(buffer, stream),
            tag: 0,
            received: 0,
            line: Vec::new(),
        };
        client.read_line()?;
        if !client.line.starts_with(b"* OK") {
            return Err(error(format!(
                "greeting: {}",
                String::from_utf8_lossy(&client.line)
            )));
        }
        Ok(client)
    }

    /// Connect and LOGIN.
    pub fn login(
        addr: SocketAddr,
        buffer: usize,
        user: &str,
        password: &str,
    ) -> io::Result<Client> {
        let mut client = Client::connect(addr, buffer)?;
        client.command(&format!("LOGIN {user} {password}"))?;
        Ok(client)
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    fn read_line(&mut self) -> io::Result<()> {
        // A read timeout (while idling) may leave half a line read: keep it for the next call.
        if self.line.ends_with(b"\n") {
            self.line.clear();
        }
        let before = self.line.len();
        let result = self.reader.read_until(b'\n', &mut self.line);
        self.received += (self.line.len() - before) as u64;
        match result {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The length of a literal announced at the end of the current line.
    fn literal_length(&self) -> Option<u64> {
        let line = self.line.strip_suffix(b"}\r\n")?;
        let open = line.iter().rposition(|&b| b == b'{')?;
        std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("a{}", self.tag)
    }

    fn send(&mut self, octets: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(octets)
    }

    /// Send `command` with a fresh tag and read its response; anything but OK is an error.
    pub fn command(&mut self, command: &str) -> io::Result<Response> {
        self.command_with(command, Literals::Keep)
    }

    pub fn command_with(&mut self, command: &str, literals: Literals) -> io::Result<Response> {
        let tag = self.next_tag();
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.response(&tag, literals)
            .map_err(|e| error(format!("{command}: {e}")))
    }

    /// One untagged response (literals included); `Ok(None)` when the line read was the
    /// status line of `tag` (then in `self.line`).
    fn untagged(&mut self, tag: Option<&str>, literals: Literals) -> io::Result<Option<Untagged>> {
        self.read_line()?;
        if let Some(tag) = tag {
            if self.line.starts_with(tag.as_bytes()) && self.line.get(tag.len()) == Some(&b' ') {
                return Ok(None);
            }
        }
        let mut item = Untagged::default();
        loop {
            item.text.extend_from_slice(&self.line);
            let Some(length) = self.literal_length() else {
                break;
            };
            let mut data = Vec::new();
            let reader = (&mut self.reader).take(length);
            match literals {
                Literals::Keep => {
                    data.reserve(length as usize);
                    let mut reader = reader;
                    reader.read_to_end(&mut data)?;
                    if data.len() as u64 != length {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Literals::Discard => {
                    let copied = io::copy(&mut { reader }, &mut io::sink())?;
                    if copied != length {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            self.received += length;
            item.literals.push(data);
            self.read_line()?;
        }
        Ok(Some(item))
    }

    fn response(&mut self, tag: &str, literals: Literals) -> io::Result<Response> {
        let mut response = Response::default();
        while let Some(item) = self.untagged(Some(tag), literals)? {
            response.untagged.push(item);
        }
        response.status = std::mem::take(&mut self.line);
        if response.status[tag.len() + 1..].starts_with(b"OK") {
            Ok(response)
        } else {
            Err(error(
                String::from_utf8_lossy(&response.status)
                    .trim_end()
                    .to_owned(),
            ))
        }
    }

    /// Wait for the continuation request (`+ ...`) of a synchronising literal or IDLE.
    fn continuation(&mut self, tag: &str) -> io::Result<()> {
        self.read_line()?;
        if self.line.starts_with(b"+") {
            Ok(())
        } else if self.line.starts_with(tag.as_bytes()) {
            Err(error(
                String::from_utf8_lossy(&self.line).trim_end().to_owned(),
            ))
        } else {
            // An untagged response before the continuation: read on.
            self.continuation(tag)
        }
    }

    /// APPEND `message` to `mailbox` with a synchronising literal, as most clients send it.
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> io::Result<Response> {
        self.append_from(mailbox, flags, message.len() as u64, &mut { message })
    }

    /// APPEND `size` octets read from `data` (streamed in chunks).
    pub fn append_from(
        &mut self,
        mailbox: &str,
        flags: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<Response> {
        let tag = self.next_tag();
        self.send(format!("{tag} APPEND {mailbox} ({flags}) {{{size}}}\r\n").as_bytes())?;
        self.continuation(&tag)?;
        let copied = io::copy(&mut data.take(size), self.reader.get_mut())?;
        assert_eq!(copied, size, "the APPEND data ran short");
        self.send(b"\r\n")?;
        self.response(&tag, Literals::Keep)
            .map_err(|e| error(format!("APPEND: {e}")))
    }

    /// Start IDLE: returns its tag once the server said `+`.
    pub fn idle(&mut self) -> io::Result<String> {
        let tag = self.next_tag();
        self.send(format!("{tag} IDLE\r\n").as_bytes())?;
        self.continuation(&tag)?;
        Ok(tag)
    }

    /// While idling: the next untagged response, or `Ok(None)` when none came within the
    /// read timeout.
    pub fn next_untagged(&mut self) -> io::Result<Option<Untagged>> {
        match self.untagged(None, Literals::Keep) {
            Ok(item) => Ok(item),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// End IDLE with DONE and read the rest of its response.
    pub fn done(&mut self, tag: &str) -> io::Result<Response> {
        self.send(b"DONE\r\n")?;
        self.response(tag, Literals::Keep)
            .map_err(|e| error(format!("IDLE: {e}")))
    }

    /// LOGOUT, reading the BYE and the tagged OK.
    pub fn logout(mut self) -> io::Result<()> {
        self.command("LOGOUT").map(|_| ())
    }
}
