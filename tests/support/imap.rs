//! A deliberately small IMAP client over a raw socket, independent of the code under test:
//! it seeds Dovecot with APPEND (LITERAL+ pipelined, so thousands of mails take a moment)
//! and inspects the mailbox afterwards (UID SEARCH, flags, BODY.PEEK[]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// One untagged response with any literals inline, and the tagged status line.
pub struct Reply {
    pub untagged: Vec<Vec<u8>>,
    pub status: String,
}

impl RawImap {
    /// Connect, log in and select INBOX.
    pub fn login(port: u16, user: &str, password: &str) -> RawImap {
        let mut imap = RawImap::connect(port);
        imap.ok(&format!("LOGIN \"{user}\" \"{password}\""));
        imap.ok("SELECT INBOX");
        imap
    }

    /// Connect and read the greeting, which must be `* OK`.
    pub fn connect(port: u16) -> RawImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        RawImap::over(stream)
    }

    /// Read the greeting, which must be `* OK`, on a connected stream.
    pub fn over(stream: TcpStream) -> RawImap {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut imap = RawImap {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag: 0,
        };
        let greeting = imap.read_response_line();
        assert!(greeting.starts_with(b"* OK"), "greeting: {greeting:?}");
        imap
    }

    /// Send raw octets (a command typed by hand, bare LF and all, or half a literal).
    pub fn send_raw(&mut self, octets: &[u8]) {
        self.writer.write_all(octets).unwrap();
    }

    /// The next response line as the server sent it (literals inline), or `None` when the
    /// server closed the connection.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&line).into_owned()),
        }
    }

    /// Read lines until one starts with `tag `; all of them, that one last.
    pub fn read_until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().expect("the server closed the connection");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    fn read_response_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        loop {
            let start = line.len();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(line.len() > start, "the server closed the connection");
            let Some(size) = literal_size(&line[start..]) else {
                return line;
            };
            let mut literal = vec![0; size];
            self.reader.read_exact(&mut literal).unwrap();
            line.extend_from_slice(&literal);
        }
    }

    /// Send a command and collect its reply, whatever the status.
    pub fn command(&mut self, command: &str) -> Reply {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        self.collect(&tag)
    }

    fn collect(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_response_line();
            if line.starts_with(format!("{tag} ").as_bytes()) {
                let status = String::from_utf8_lossy(&line[tag.len() + 1..])
                    .trim_end()
                    .to_owned();
                return Reply { untagged, status };
            }
            untagged.push(line);
        }
    }

    /// A command that must succeed.
    pub fn ok(&mut self, command: &str) -> Vec<Vec<u8>> {
        let reply = self.command(command);
        assert!(
            reply.status.starts_with("OK"),
            "{command}: {}",
            reply.status
        );
        reply.untagged
    }

    /// Append mails (flags like `(\Seen)` or empty) in one pipelined burst.
    pub fn append_all(&mut self, mails: &[(&str, Vec<u8>)]) {
        self.append_all_to("INBOX", mails);
    }

    /// [`RawImap::append_all`] into another mailbox.
    pub fn append_all_to(&mut self, mailbox: &str, mails: &[(&str, Vec<u8>)]) {
        let mut burst = Vec::new();
        let first = self.tag + 1;
        for (flags, mail) in mails {
            self.tag += 1;
            // One space between arguments, as RFC 3501's grammar has it (Dovecot also takes
            // two; a strict parser does not).
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!("{flags} ")
            };
            burst.extend_from_slice(
                format!(
                    "t{} APPEND {mailbox} {flags}{{{}+}}\r\n",
                    self.tag,
                    mail.len()
                )
                .as_bytes(),
            );
            burst.extend_from_slice(mail);
            burst.extend_from_slice(b"\r\n");
        }
        let mut writer = self.writer.try_clone().unwrap();
        let sender = std::thread::spawn(move || writer.write_all(&burst).unwrap());
        for tag in first..=self.tag {
            let reply = self.collect(&format!("t{tag}"));
            assert!(reply.status.starts_with("OK"), "APPEND: {}", reply.status);
        }
        sender.join().unwrap();
    }

    pub fn append(&mut self, flags: &str, mail: Vec<u8>) {
        self.append_all(&[(flags, mail)]);
    }

    /// `UID SEARCH criteria`, sorted.
    pub fn uids(&mut self, criteria: &str) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .ok(&format!("UID SEARCH {criteria}"))
            .iter()
            .filter_map(|line| line.strip_prefix(b"* SEARCH"))
            .flat_map(|rest| {
                String::from_utf8_lossy(rest)
                    .split_whitespace()
                    .map(|n| n.parse::<u32>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The exact octets of BODY[] for a UID, without setting \Seen.
    pub fn body(&mut self, uid: u32) -> Vec<u8> {
        let lines = self.ok(&format!("UID FETCH {uid} BODY.PEEK[]"));
        let line = lines
            .iter()
            .find(|l| l.windows(7).any(|w| w == b"BODY[] "))
            .expect("a BODY[] response");
        let open = line.iter().position(|&b| b == b'{').unwrap();
        let close = open + line[open..].iter().position(|&b| b == b'}').unwrap();
        let size: usize = std::str::from_utf8(&line[open + 1..close])
            .unwrap()
            .parse()
            .unwrap();
        let start = close + 3;
        line[start..start + size].to_vec()
    }

    /// The FLAGS of a UID, as the server writes them.
    pub fn flags(&mut self, uid: u32) -> String {
        let lines = self.ok(&format!("UID FETCH {uid} (FLAGS)"));
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .find(|l| l.contains("FLAGS ("))
            .unwrap_or_default()
    }

    /// Refresh the server's view (new mails, expunges by others).
    pub fn noop(&mut self) {
        self.ok("NOOP");
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// A CRLF mail with a recognisable subject and about `body_octets` of text.
pub fn mail(subject: &str, body_octets: usize) -> Vec<u8> {
    let mut mail = format!(
        "From: Asterix <asterix@gaul.example>\r\nTo: Obelix <obelix@gaul.example>\r\n\
Subject: {subject}\r\nMessage-ID: <{}@gaul.example>\r\n\
Date: Thu, 26 Nov 2026 04:00:00 +0000\r\n\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes();
    let line = b"By Toutatis, the sky will not fall on our heads today.\r\n";
    while mail.len() < body_octets {
        mail.extend_from_slice(line);
    }
    mail
}
