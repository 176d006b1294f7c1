//! The transcripts of `docs/smtp-by-hand.md`, captured from `mailtool serve --demo` (SMTP in,
//! POP3 out, one store), and the facts the guide's prose rests on, checked on every run.
//!
//! `MAILTOOL_WRITE_DOCS=1 cargo test --test smtp_by_hand` rewrites every transcript block
//! with a fresh capture (see `support::transcript`).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::pop3::{PopClient, PopServer};

/// One SMTP connection that records what it sends and receives, as a person typing into
/// `nc -C` sees it.
struct Recorder {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    log: Vec<String>,
}

impl Recorder {
    fn connect(addr: SocketAddr) -> (Recorder, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut recorder = Recorder {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            log: Vec::new(),
        };
        let greeting = recorder.reply();
        (recorder, greeting)
    }

    /// Read one reply: `250-...` lines up to the `250 ...` one; all of it, recorded.
    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "the server closed the connection");
            let line = line.trim_end().to_owned();
            self.log.push(format!("S: {line}"));
            reply.push_str(&line);
            reply.push('\n');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return reply;
            }
        }
    }

    /// Send a line and read its reply.
    fn send(&mut self, line: &str) -> String {
        self.send_only(line);
        self.reply()
    }

    /// Send a line that gets no reply of its own (message text after DATA).
    fn send_only(&mut self, line: &str) {
        self.log.push(format!("C: {line}"));
        write!(self.writer, "{line}\r\n").unwrap();
    }

    fn take(&mut self) -> String {
        let text = self.log.join("\n");
        self.log.clear();
        text
    }
}

fn code(reply: &str) -> &str {
    reply.lines().last().unwrap_or("").get(..3).unwrap_or("")
}

#[test]
fn transcripts_are_real_and_the_guide_holds() {
    let mut command = support::mailtool_std(Path::new("unused"));
    command.env("HOME", std::env::temp_dir());
    let mut server = PopServer::spawn_as(
        command,
        &[
            "serve",
            "--demo",
            "--pop-port",
            "0",
            "--imap-port",
            "0",
            "--smtp-port",
            "0",
        ],
        &[],
    );
    let _imap = server.stdout_line();
    let smtp_line = server.stdout_line();
    let smtp: SocketAddr = smtp_line
        .strip_prefix("listening on ")
        .and_then(|l| l.strip_suffix(" (smtp)\n"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no SMTP address in {smtp_line:?}"));
    let mut blocks = BTreeMap::new();

    // 1. A mail sent by hand.
    let (mut s, greeting) = Recorder::connect(smtp);
    assert!(greeting.starts_with("220 "), "{greeting}");
    let ehlo = s.send("EHLO laptop.example.org");
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("SIZE"),
        "{ehlo}"
    );
    assert_eq!(code(&s.send("MAIL FROM:<getafix@village.gaul>")), "250");
    assert_eq!(code(&s.send("RCPT TO:<asterix@localhost>")), "250");
    assert_eq!(code(&s.send("DATA")), "354");
    for line in [
        "From: Getafix <getafix@village.gaul>",
        "To: Asterix <asterix@localhost>",
        "Subject: Mistletoe",
        "",
        "Bring a golden sickle.",
        "..and a basket (a leading dot is sent doubled).",
    ] {
        s.send_only(line);
    }
    let accepted = s.send(".");
    assert_eq!(code(&accepted), "250", "{accepted}");
    assert_eq!(code(&s.send("QUIT")), "221");
    blocks.insert("send", s.take());

    // 2. The mistakes people make, and what they are told.
    let (mut s, _) = Recorder::connect(smtp);
    s.log.clear();
    s.send("HELO laptop.example.org");
    let early = s.send("RCPT TO:<asterix@localhost>");
    assert!(early.starts_with("503 "), "{early}");
    s.send("MAIL FROM:<getafix@village.gaul>");
    let unknown = s.send("RCPT TO:<idefix@localhost>");
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
    let relay = s.send("RCPT TO:<caesar@rome.example>");
    assert!(relay.starts_with("550 5.7.1"), "never a relay: {relay}");
    let no_rcpt = s.send("DATA");
    assert!(
        no_rcpt.starts_with("554 "),
        "every RCPT was refused: {no_rcpt}"
    );
    let vrfy = s.send("VRFY asterix");
    assert!(vrfy.starts_with("252 "), "VRFY never lists users: {vrfy}");
    assert_eq!(code(&s.send("QUIT")), "221");
    blocks.insert("mistakes", s.take());

    // 3. The mail, read back over POP3: one copy, a Received: line on top, the doubled dot
    // undone.
    let mut pop = PopClient::connect(server.addr());
    pop.login("asterix", "potion");
    let (count, _) = pop.stat();
    assert_eq!(count, 9, "the eight demo mails and ours");
    let status = pop.command("RETR 9");
    assert!(status.starts_with("+OK"), "{status}");
    let raw = pop.read_multiline_raw();
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(
        text.starts_with("Return-Path: <getafix@village.gaul>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nReceived: from laptop.example.org"),
        "{text}"
    );
    assert!(text.contains("\r\nSubject: Mistletoe\r\n"), "{text}");
    // POP3 stuffs the dot again on its way out (RFC 1939 §3), as SMTP did on its way in.
    assert!(text.contains("\r\n..and a basket"), "{text}");
    assert!(pop.command("QUIT").starts_with("+OK"));
    let mut shown = vec!["C: RETR 9".to_owned(), format!("S: {}", status.trim_end())];
    shown.extend(
        text.trim_end_matches("\r\n")
            .split("\r\n")
            .map(|line| format!("S: {line}")),
    );
    blocks.insert("read-back", shown.join("\n"));

    support::transcript::check_or_write("docs/smtp-by-hand.md", &blocks);
}
