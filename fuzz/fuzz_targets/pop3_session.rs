//! Arbitrary bytes from a client into the sans-I/O POP3 core (line reader, parser, session,
//! body writer), as the server drives it: no panic, every command gets a reply, and every
//! reply is well-formed POP3.
//!
//! The store is a copy of the demo store in a temporary directory, made once; inputs that
//! commit deletions get a fresh copy afterwards so every input sees the same mailboxes.

#![no_main]

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailtool::pop3::protocol::{parse_command, BodyWriter, Command, LineEvent, LineReader};
use mailtool::pop3::session::{Action, Session, SessionConfig};
use mailtool::store::Store;

/// RFC 2449 §4: a status line is at most 512 octets, CRLF included.
const MAX_STATUS_LINE: usize = 512;
const DEMO_MESSAGES: usize = 12;

struct Fixture {
    dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        mailtool::demo::extract(&dir.path().join("store")).expect("demo store");
        Fixture { dir }
    })
}

fn count_messages(store: &Path) -> usize {
    ["asterix", "obelix"]
        .iter()
        .flat_map(|user| ["new", "cur"].map(|sub| store.join(user).join(sub)))
        .map(|dir| std::fs::read_dir(dir).map_or(0, |d| d.count()))
        .sum()
}

/// Put the demo store back after an input made a session remove messages.
fn restore(store: &Path) {
    if count_messages(store) != DEMO_MESSAGES {
        std::fs::remove_dir_all(store).expect("remove the used store");
        mailtool::demo::extract(store).expect("demo store");
    }
}

/// Which replies may span several lines: decided from the command, as a client would.
fn is_multiline(line: &[u8], awaiting_sasl: bool) -> bool {
    if awaiting_sasl {
        return false;
    }
    matches!(
        parse_command(line),
        Ok(Command::Capa
            | Command::List(None)
            | Command::Uidl(None)
            | Command::Retr(_)
            | Command::Top(..)
            | Command::Auth {
                mechanism: None,
                ..
            })
    )
}

/// Check one command's reply: status lines that are `+OK`, `-ERR` or the SASL `+ `, each at
/// most 512 octets; or one `+OK` followed by data lines and a final `.` line.
fn check_reply(reply: &[u8], multiline: bool, context: &[u8]) {
    assert!(!reply.is_empty(), "no reply to {context:?}");
    assert!(reply.ends_with(b"\r\n"), "reply without CRLF: {reply:?}");
    // Every LF is preceded by CR: split on CRLF and make sure no bare LF remains.
    let lines: Vec<&[u8]> = split_crlf(&reply[..reply.len() - 2]);
    for line in &lines {
        assert!(!line.contains(&b'\n'), "bare LF in reply: {reply:?}");
    }
    let status = |line: &[u8]| {
        assert!(
            line.len() + 2 <= MAX_STATUS_LINE,
            "status line of {} octets",
            line.len() + 2
        );
        assert!(
            line == b"+OK" || line.starts_with(b"+OK ") || line.starts_with(b"-ERR ") || line == b"+ ",
            "not a status line: {line:?} (reply to {context:?})"
        );
        assert!(!line.contains(&b'\r'), "CR inside a status line: {line:?}");
    };
    status(lines[0]);
    if multiline && lines[0].starts_with(b"+OK") {
        let (last, data) = lines[1..].split_last().expect("multi-line reply without terminator");
        assert_eq!(*last, b".", "multi-line reply not ended by '.': {reply:?}");
        for line in data {
            assert!(
                *line != b"." && (!line.starts_with(b".") || line.starts_with(b"..")),
                "unstuffed dot line {line:?} (reply to {context:?})"
            );
        }
    } else {
        for line in &lines {
            status(line);
            assert!(*line != b"+ " || lines.len() == 1, "continuation among replies");
        }
    }
}

fn split_crlf(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
            lines.push(&bytes[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    lines.push(&bytes[start..]);
    lines
}

fuzz_target!(|data: &[u8]| {
    let store_dir = fixture().dir.path().join("store");
    let config = SessionConfig {
        failed_login_delay: Duration::ZERO,
        stls: data.len() % 2 == 0,
        ..SessionConfig::default()
    };
    let mut session = Session::new(Store::new(&store_dir), config, "<1.2.3@fuzz>".into());
    let mut out = Vec::new();
    session.greeting(&mut out);
    check_reply(&out, false, b"<greeting>");

    // Split the input into reads the way a socket might, deterministically per input.
    let chunk = 1 + data.iter().map(|&b| usize::from(b)).sum::<usize>() % 64;
    let mut reader = LineReader::new();
    let mut awaiting_sasl = false;
    let mut file_chunk = vec![0u8; 4096];
    'input: for mut piece in data.chunks(chunk) {
        while let Some(event) = reader.next_line(&mut piece) {
            out.clear();
            let (action, multiline, context) = match event {
                LineEvent::Line(line) => {
                    let multiline = is_multiline(line, awaiting_sasl);
                    let context = line.to_vec();
                    let _ = session.trace_view(line);
                    (session.handle_line(line, &mut out), multiline, context)
                }
                LineEvent::TooLong => (
                    session.handle_overlong_line(&mut out),
                    false,
                    b"<too long>".to_vec(),
                ),
            };
            let mut stop = false;
            match action {
                Action::Continue | Action::StartTls => {}
                Action::Pause { then_close, .. } => stop = then_close,
                Action::Close | Action::TooManyFailures => stop = true,
                Action::Transfer(mut transfer) => {
                    let mut writer = BodyWriter::new(transfer.extent);
                    loop {
                        let n = transfer.file.read(&mut file_chunk).expect("read message");
                        if n == 0 || writer.is_done() {
                            break;
                        }
                        writer.write(&file_chunk[..n], &mut out);
                    }
                    writer.finish(&mut out);
                    session.transfer_done(transfer.number, transfer.extent);
                }
            }
            check_reply(&out, multiline, &context);
            awaiting_sasl = out == b"+ \r\n";
            let _ = session.take_events();
            if stop {
                break 'input;
            }
        }
    }
    drop(session);
    restore(&store_dir);
});
