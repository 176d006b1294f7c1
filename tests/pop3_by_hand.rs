//! The transcripts of `docs/pop3-by-hand.md`, captured from `mailtool serve-pop --demo`, and
//! the facts the guide's prose rests on, checked on every run.
//!
//! `MAILTOOL_WRITE_DOCS=1 cargo test --test pop3_by_hand` rewrites every transcript block
//! with a fresh capture (see `support::transcript`); without it the test checks that the
//! guide has a block for every capture and that the facts still hold.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::pop3::{PopClient, PopServer};

/// A message longer than this many lines is cut in the guide.
const BODY_LINES: usize = 20;

/// One POP3 connection that records what it sends and receives, as a person typing into
/// `telnet` sees it.
struct Recorder {
    client: PopClient,
    log: Vec<String>,
}

impl Recorder {
    fn connect(server: &PopServer) -> (Recorder, String) {
        let client = PopClient::connect(server.addr());
        let greeting = client.greeting.clone();
        let mut recorder = Recorder {
            client,
            log: Vec::new(),
        };
        recorder.server_line(&greeting);
        (recorder, greeting.trim_end().to_owned())
    }

    fn server_line(&mut self, line: &str) {
        self.log
            .push(format!("S: {}", line.trim_end_matches(['\r', '\n'])));
    }

    /// Send a command with a one-line answer; return the answer without its CRLF.
    fn send(&mut self, command: &str) -> String {
        self.log.push(format!("C: {command}"));
        let reply = self.client.command(command);
        self.server_line(&reply);
        reply.trim_end().to_owned()
    }

    /// Send a command whose `+OK` is followed by lines up to `.`; return the status line and
    /// the lines (dot-unstuffed) and the octets that came before the terminating `.`.
    fn send_multi(&mut self, command: &str) -> (String, Vec<String>, usize) {
        let status = self.send(command);
        if !status.starts_with("+OK") {
            return (status, Vec::new(), 0);
        }
        let raw = self.client.read_multiline_raw();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        // The raw reply ends with ".\r\n": the split leaves "." and "".
        assert_eq!(lines.pop(), Some(""), "{text:?}");
        assert_eq!(lines.pop(), Some("."), "{text:?}");
        let octets = raw.len() - 3;
        let shown = lines.len().min(BODY_LINES);
        for line in &lines[..shown] {
            self.log.push(format!("S: {line}"));
        }
        if lines.len() > shown {
            let rest: usize = lines[shown..].iter().map(|l| l.len() + 2).sum();
            self.log.push(format!(
                "   [... {} more lines, {rest} octets, not shown]",
                lines.len() - shown
            ));
        }
        self.log.push("S: .".to_owned());
        let unstuffed = lines
            .iter()
            .map(|l| l.strip_prefix('.').unwrap_or(l).to_owned())
            .collect();
        (status, unstuffed, octets)
    }

    /// The recorded lines since the last call.
    fn take(&mut self) -> String {
        let text = self.log.join("\n");
        self.log.clear();
        text
    }
}

/// `+OK N M` (STAT) or `+OK n size` (LIST n) as two numbers.
fn two_numbers(reply: &str) -> (u64, u64) {
    let mut words = reply.split(' ').skip(1).map(|w| w.parse::<u64>().unwrap());
    (words.next().unwrap(), words.next().unwrap())
}

#[test]
fn transcripts_are_real_and_the_guide_holds() {
    let mut command = support::mailtool_std(Path::new("unused"));
    command.args(["serve-pop", "--demo", "--port", "0"]);
    let mut server = PopServer::spawn_as(command, &[], &[]);
    assert_eq!(server.stdout_line(), "demo user asterix password potion\n");
    assert_eq!(server.stdout_line(), "demo user obelix password menhir\n");
    let mut blocks = BTreeMap::new();

    // 1. The greeting, CAPA, and logging in.
    let (mut first, greeting) = Recorder::connect(&server);
    assert!(
        greeting.starts_with("+OK ") && greeting.ends_with('>'),
        "{greeting}"
    );
    let (capa, capabilities, _) = first.send_multi("CAPA");
    assert!(capa.starts_with("+OK"));
    for expected in ["TOP", "UIDL", "USER", "PIPELINING"] {
        assert!(
            capabilities.iter().any(|c| c == expected),
            "{capabilities:?}"
        );
    }
    assert!(capabilities
        .iter()
        .any(|c| c == &format!("IMPLEMENTATION mailtool-{}", env!("CARGO_PKG_VERSION"))));
    assert!(first.send("USER asterix").starts_with("+OK"));
    let pass = first.send("PASS potion");
    assert!(pass.starts_with("+OK"), "{pass}");
    blocks.insert("login", first.take());

    // 2. STAT, LIST, UIDL: the sizes add up, numbers start at 1.
    let stat = first.send("STAT");
    let (count, octets) = two_numbers(&stat);
    assert_eq!(count, 8, "asterix has eight demo mails: {stat}");
    assert!(
        pass.contains(&format!("{count} messages ({octets} octets)")),
        "{pass}"
    );
    let (_, list, _) = first.send_multi("LIST");
    assert_eq!(list.len() as u64, count);
    let sizes: Vec<(u64, u64)> = list
        .iter()
        .map(|l| two_numbers(&format!("x {l}")))
        .collect();
    assert_eq!(sizes.iter().map(|(_, s)| s).sum::<u64>(), octets);
    assert_eq!(sizes[0].0, 1);
    let list_2 = first.send("LIST 2");
    assert_eq!(two_numbers(&list_2), sizes[1]);
    let (_, uidl, _) = first.send_multi("UIDL");
    assert_eq!(uidl.len() as u64, count);
    let uidl_1 = first.send("UIDL 1");
    assert_eq!(uidl_1, format!("+OK {}", uidl[0]));
    blocks.insert("stat-list-uidl", first.take());

    // 3. RETR sends exactly LIST's octets (before dot-stuffing); TOP n 0 only the header.
    let (retr, body, sent) = first.send_multi("RETR 1");
    assert!(retr.starts_with("+OK"), "{retr}");
    let stuffed = body.iter().filter(|l| l.starts_with('.')).count();
    assert_eq!(
        sent as u64 - stuffed as u64,
        sizes[0].1,
        "RETR 1 sends LIST 1's octets"
    );
    let (top, header, _) = first.send_multi("TOP 1 0");
    assert!(top.starts_with("+OK"));
    assert_eq!(
        header.last().map(String::as_str),
        Some(""),
        "ends with the blank line"
    );
    assert_eq!(header[..header.len() - 1], body[..header.len() - 1]);
    let (_, top_3, _) = first.send_multi("TOP 1 3");
    assert_eq!(top_3.len(), header.len() + 3.min(body.len() - header.len()));
    blocks.insert("retr-top", first.take());

    // 4. DELE only marks; RSET unmarks; NOOP does nothing; QUIT without DELE removes nothing.
    assert!(first.send("DELE 1").starts_with("+OK"));
    let after_dele = two_numbers(&first.send("STAT"));
    assert_eq!(after_dele, (count - 1, octets - sizes[0].1));
    assert!(first.send("RETR 1").starts_with("-ERR"));
    assert!(first.send("DELE 1").starts_with("-ERR"));
    let rset = first.send("RSET");
    assert!(rset.starts_with("+OK") && rset.contains(&format!("{count} messages")));
    assert_eq!(two_numbers(&first.send("STAT")), (count, octets));
    assert_eq!(first.send("NOOP"), "+OK");
    let quit = first.send("QUIT");
    assert!(quit.starts_with("+OK") && quit.contains(&format!("{count} messages left")));
    assert!(first.client.is_closed(Duration::from_secs(5)));
    blocks.insert("dele-rset", first.take());

    // 5. DELE then QUIT removes for good; UIDs stay with their messages.
    let (mut second, _) = Recorder::connect(&server);
    second.send("USER asterix");
    second.send("PASS potion");
    assert!(second.send("DELE 1").starts_with("+OK"));
    let quit = second.send("QUIT");
    assert!(
        quit.contains(&format!("{} messages left", count - 1)),
        "{quit}"
    );
    blocks.insert("dele-quit", second.take());
    let (mut third, _) = Recorder::connect(&server);
    third.send("USER asterix");
    let pass = third.send("PASS potion");
    assert!(pass.contains(&format!("{} messages", count - 1)), "{pass}");
    let (_, uidl_after, _) = third.send_multi("UIDL");
    assert_eq!(uidl_after.len() as u64, count - 1);
    let uid_of_2 = uidl[1].split_once(' ').unwrap().1;
    assert_eq!(
        uidl_after[0],
        format!("1 {uid_of_2}"),
        "old message 2 is now 1"
    );
    third.send("QUIT");
    blocks.insert("after-quit", third.take());

    // 6. What the errors mean.
    let (mut errors, _) = Recorder::connect(&server);
    let early = errors.send("STAT");
    assert!(early.starts_with("-ERR"), "{early}");
    let pass_first = errors.send("PASS potion");
    assert!(pass_first.starts_with("-ERR"), "{pass_first}");
    let unknown = errors.send("HELO");
    assert!(unknown.starts_with("-ERR"), "{unknown}");
    errors.send("USER asterix");
    let started = Instant::now();
    let wrong = errors.send("PASS cauldron");
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a failed login waits"
    );
    errors.send("USER getafix");
    let unknown_user = errors.send("PASS potion");
    assert_eq!(unknown_user, wrong, "an unknown user gets the same answer");
    errors.send("USER obelix");
    assert!(errors.send("PASS menhir").starts_with("+OK"));
    let (n, _) = two_numbers(&errors.send("STAT"));
    let missing = errors.send(&format!("RETR {}", n + 1));
    assert!(missing.starts_with("-ERR"), "{missing}");
    assert!(errors.send("RETR 0").starts_with("-ERR"));
    assert!(errors.send("TOP 1").starts_with("-ERR"));
    assert!(errors.send("LIST one").starts_with("-ERR"));
    assert!(errors.send("USER asterix").starts_with("-ERR"));
    blocks.insert("errors", errors.take());

    // 7. A second session for the same user while the first is logged in: [IN-USE].
    let (mut other, _) = Recorder::connect(&server);
    other.send("USER obelix");
    let in_use = other.send("PASS menhir");
    assert!(in_use.starts_with("-ERR [IN-USE]"), "{in_use}");
    other.send("QUIT");
    blocks.insert("in-use", other.take());
    errors.send("QUIT");
    errors.take();

    // 8. Three failed logins close the connection.
    let (mut guesser, _) = Recorder::connect(&server);
    for guess in ["potion", "menhir", "magic"] {
        guesser.send("USER getafix");
        guesser.send(&format!("PASS {guess}"));
    }
    let last = guesser.client.read_line();
    guesser.server_line(&last);
    assert!(
        last.starts_with("-ERR") && last.contains("closing"),
        "{last}"
    );
    assert!(guesser.client.is_closed(Duration::from_secs(5)));
    guesser
        .log
        .push("   [the server closes the connection]".to_owned());
    blocks.insert("three-failures", guesser.take());

    support::transcript::check_or_write("docs/pop3-by-hand.md", &blocks);
}
