//! The transcripts of `docs/imap-by-hand.md`, captured from `mailtool serve-imap` and from a
//! real Dovecot, each serving its own copy of the demo store, and the facts the document's
//! answers rest on, checked on every run against both servers.
//!
//! `MAILTOOL_WRITE_DOCS=1 cargo test --test imap_by_hand` rewrites every block between
//! `<!-- transcript: NAME -->` and `<!-- end transcript -->` with a fresh capture (see
//! `support::transcript`); the prose around them is left alone. Without the variable the test only checks that the document
//! has a block for every capture and that the facts still hold.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::dovecot::Dovecot;
use support::pop3::PopServer;
use support::TempStore;

/// A literal longer than this many lines is cut in the document.
const LITERAL_LINES: usize = 12;

/// One IMAP connection that records what it sends and receives, as a person typing into
/// `telnet` would see it.
struct Recorder {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    log: Vec<String>,
}

impl Recorder {
    fn connect(port: u16) -> Recorder {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut recorder = Recorder {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            log: Vec::new(),
        };
        recorder.read_until_tag(None);
        recorder
    }

    /// Send `tag command`, record the reply up to the tagged line, return the reply.
    fn send(&mut self, tag: &str, command: &str) -> String {
        self.log.push(format!("C: {tag} {command}"));
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        self.read_until_tag(Some(tag))
    }

    fn read_until_tag(&mut self, tag: Option<&str>) -> String {
        let mut reply = String::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(!line.is_empty(), "the server closed the connection");
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            self.log.push(format!("S: {text}"));
            reply.push_str(&text);
            reply.push('\n');
            if let Some(size) = literal_size(&text) {
                let mut literal = vec![0; size];
                self.reader.read_exact(&mut literal).unwrap();
                let literal = String::from_utf8_lossy(&literal).into_owned();
                let lines: Vec<&str> = literal.lines().collect();
                for line in lines.iter().take(LITERAL_LINES) {
                    self.log.push(format!("S: {line}"));
                }
                if lines.len() > LITERAL_LINES {
                    let rest: usize = lines[LITERAL_LINES..].iter().map(|l| l.len() + 2).sum();
                    self.log.push(format!(
                        "   [... {rest} more octets of the literal not shown]"
                    ));
                }
                reply.push_str(&literal);
                continue;
            }
            let done = match tag {
                None => true,
                Some(tag) => text.starts_with(&format!("{tag} ")),
            };
            if done {
                return reply;
            }
        }
    }

    /// The recorded lines since the last call.
    fn take(&mut self) -> String {
        let text = self.log.join("\n");
        self.log.clear();
        text
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    inner[inner.rfind('{')? + 1..].parse().ok()
}

fn number_before(reply: &str, word: &str) -> u32 {
    reply
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("* ")?;
            let (n, what) = rest.split_once(' ')?;
            (what == word).then(|| n.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no '* N {word}' in:\n{reply}"))
}

#[test]
fn transcripts_are_real_and_the_answers_hold() {
    let ours = TempStore::demo();
    let theirs = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&theirs.path()) else {
        return;
    };
    let server = PopServer::start_imap(&ours.path(), &[]);
    let mut blocks = capture(server.port(), &ours);
    for (name, text) in capture(dovecot.imap_port, &theirs) {
        blocks.insert(format!("dovecot-{name}"), text);
    }

    support::transcript::check_or_write("docs/imap-by-hand.md", &blocks);
}

/// Run the course's five questions against the server on `port` (serving `store`), check the
/// facts the answers rely on, and return the transcripts by name.
fn capture(port: u16, store: &TempStore) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();

    // 1. SELECT INBOX, the first time anyone looks at the mailbox.
    let mut first = Recorder::connect(port);
    first.send("a1", "LOGIN asterix potion");
    let select_first = first.send("a2", "SELECT INBOX");
    blocks.insert("select-first", first.take());
    let exists = number_before(&select_first, "EXISTS");
    let recent_first = number_before(&select_first, "RECENT");
    assert!(exists == 8 && recent_first > 0, "{select_first}");
    assert!(select_first.contains("[UIDVALIDITY "));
    assert!(select_first.contains("[READ-WRITE]"));

    // 3 and 4. Flags of every message, then content without and with \Seen.
    let flags_first = first.send("a3", "FETCH 1:* (FLAGS)");
    blocks.insert("flags-first", first.take());
    assert!(flags_first.contains("\\Recent"));
    assert!(flags_first.contains("\\Seen"));
    first.send("a4", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])");
    let peeked = first.send("a5", "FETCH 1 (FLAGS)");
    assert!(!peeked.contains("\\Seen"), "{peeked}");
    let read = first.send("a6", "FETCH 1 (BODY[TEXT])");
    assert!(read.contains("\\Seen"), "BODY[] sets \\Seen: {read}");
    blocks.insert("fetch-content", first.take());
    first.send("a7", "LOGOUT");
    blocks.insert("logout-first", first.take());

    // 2. The same SELECT in a new session.
    let mut second = Recorder::connect(port);
    second.send("b1", "LOGIN asterix potion");
    let select_second = second.send("b2", "SELECT INBOX");
    let flags_second = second.send("b3", "FETCH 1:* (FLAGS)");
    blocks.insert("select-second", second.take());
    assert_eq!(
        number_before(&select_second, "RECENT"),
        0,
        "{select_second}"
    );
    assert_eq!(number_before(&select_second, "EXISTS"), exists);
    assert!(!flags_second.contains("\\Recent"));
    assert!(flags_second.lines().next().unwrap().contains("\\Seen"));

    // 5. STORE \Deleted then LOGOUT: the mail stays (flagged); then CLOSE removes it.
    second.send("b4", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])");
    second.send("b5", "STORE 1 +FLAGS (\\Deleted)");
    second.send("b6", "LOGOUT");
    blocks.insert("delete-logout", second.take());
    let mut third = Recorder::connect(port);
    third.send("c1", "LOGIN asterix potion");
    let after_logout = third.send("c2", "SELECT INBOX");
    let still_flagged = third.send("c3", "FETCH 1 (FLAGS)");
    third.send("c4", "CLOSE");
    let after_close = third.send("c5", "SELECT INBOX");
    third.send("c6", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])");
    third.send("c7", "LOGOUT");
    blocks.insert("delete-close", third.take());
    assert_eq!(
        number_before(&after_logout, "EXISTS"),
        exists,
        "LOGOUT expunges nothing"
    );
    assert!(still_flagged.contains("\\Deleted"));
    assert_eq!(
        number_before(&after_close, "EXISTS"),
        exists - 1,
        "CLOSE expunged it"
    );

    // What the sweeper itself says, sweeping the five mails still unread.
    let output = store
        .mailtool()
        .env("MAILTOOL_PASSWORD", "potion")
        .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
        .args(["--trace", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let trace = String::from_utf8(output.stderr).unwrap();
    assert!(trace.contains("BODY.PEEK[]") && trace.contains("<password masked>"));
    assert!(trace.contains("+FLAGS.SILENT (\\Deleted)") && trace.contains("UID EXPUNGE"));
    assert!(!trace.contains("CLOSE"));
    blocks.insert("sweeper-trace", trace.trim_end().to_owned());
    blocks
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text))
        .collect()
}
