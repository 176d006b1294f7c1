//! Properties of the sans-I/O POP3 core for any input: dot-stuffing round trips, every size
//! the server announces equals the octets it sends, and the line reader and the session give
//! the same answers however the input is split into reads.
//!
//! The unit tests beside the code compare the writer with a reference encoder (RETR and
//! TOP) and bound the reader's memory; these decode what is sent as a client would, compare
//! the reader's lines with a reference splitter, and drive whole sessions.

mod support;

use std::io::{Read, Write};

use mailtool::pop3::protocol::{
    transfer_size, BodyWriter, Extent, LineEvent, LineReader, MAX_LINE,
};
use mailtool::pop3::session::{Action, Session, SessionConfig};
use mailtool::store::{Maildir, Store, UserName};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

/// Bytes rich in what POP3 framing cares about: dots, CRs, LFs.
fn framing_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'.'),
            3 => Just(b'\r'),
            4 => Just(b'\n'),
            6 => b'a'..=b'z',
            2 => any::<u8>(),
        ],
        0..max,
    )
}

/// Split `input` at the given points (in any order, repeats allowed).
fn chunks<'a>(input: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|i| i.index(input.len() + 1)).collect();
    cuts.push(0);
    cuts.push(input.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// What a client must receive for a message: every line end CRLF, and an unterminated last
/// line ended (a final lone CR only lacks its LF).
fn crlf_normalized(message: &[u8]) -> Vec<u8> {
    let mut out = support::crlf_line_ends(message);
    match message.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// A client's view of a multi-line body: lines up to the `.` line, un-stuffed. Fails when
/// the framing is broken (no terminator, data after it, an unstuffed leading dot).
fn client_decode(wire: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut rest = wire;
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF before the end")?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line == b"." {
            return if rest.is_empty() {
                Ok(body)
            } else {
                Err(format!("{} octets after the terminator", rest.len()))
            };
        }
        // A line that starts with a dot was stuffed: the "." line itself is handled above.
        let line = line.strip_prefix(b".").unwrap_or(line);
        body.extend_from_slice(line);
        body.extend_from_slice(b"\r\n");
    }
}

fn encode(message: &[u8], extent: Extent, points: &[Index]) -> (Vec<u8>, u64) {
    let mut writer = BodyWriter::new(extent);
    let mut out = Vec::new();
    for chunk in chunks(message, points) {
        writer.write(chunk, &mut out);
    }
    writer.finish(&mut out);
    (out, writer.octets())
}

proptest! {
    #![proptest_config(Config::with_cases(256))]

    #[test]
    fn dot_stuffing_round_trips_any_bytes(
        message in framing_bytes(500),
        points in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let (wire, _) = encode(&message, Extent::Whole, &points);
        let decoded = client_decode(&wire).map_err(TestCaseError::fail)?;
        prop_assert_eq!(decoded, crlf_normalized(&message));
    }

    #[test]
    fn size_accounting_equals_the_octets_sent_for_any_bytes(
        message in framing_bytes(500),
        points in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let (wire, octets) = encode(&message, Extent::Whole, &points);
        let received = client_decode(&wire).map_err(TestCaseError::fail)?;
        prop_assert_eq!(octets, received.len() as u64);
        // The size LIST and STAT report for a message without a ,W= field.
        prop_assert_eq!(transfer_size(&message[..]).unwrap(), octets);
    }

    #[test]
    fn line_reader_gives_the_same_lines_for_any_split(
        input in framing_bytes(600),
        long_run in 0usize..600,
        points in prop::collection::vec(any::<Index>(), 0..10),
    ) {
        // Splice in a run without line ends, to cross the line limit sometimes.
        let mut input = input;
        let at = input.len() / 2;
        input.splice(at..at, std::iter::repeat_n(b'x', long_run));
        let expected = reference_lines(&input);
        let mut reader = LineReader::new();
        let mut got = Vec::new();
        for mut chunk in chunks(&input, &points) {
            while let Some(event) = reader.next_line(&mut chunk) {
                got.push(match event {
                    LineEvent::Line(line) => Some(line.to_vec()),
                    LineEvent::TooLong => None,
                });
            }
            prop_assert!(chunk.is_empty());
            prop_assert!(reader.buffered() <= MAX_LINE);
        }
        prop_assert_eq!(got, expected);
    }
}

/// The obvious line splitter: a line longer than MAX_LINE (its LF included) is reported once
/// as too long, also while still incomplete; a line's end is LF with an optional CR before.
fn reference_lines(input: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut events = Vec::new();
    let mut segments = input.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(segment) = segments.next() {
        let complete = segment.ends_with(b"\n");
        if segment.len() > MAX_LINE {
            events.push(None);
        } else if complete {
            let line = &segment[..segment.len() - 1];
            events.push(Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec()));
        }
        debug_assert!(complete || segments.peek().is_none());
    }
    events
}

/// A fresh demo store in a temporary directory.
fn demo_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    mailtool::demo::extract(dir.path()).unwrap();
    let store = Store::new(dir.path());
    (dir, store)
}

/// Drive a session with `input` split into `pieces`, the way the server does, and return
/// everything it sent. Pauses are not slept: no clock in the core.
fn run_session(store: &Store, input: &[&[u8]]) -> Vec<u8> {
    let config = SessionConfig::default();
    let mut session = Session::new(store.clone(), config, "<1.2.3@test>".into());
    let mut out = Vec::new();
    session.greeting(&mut out);
    let mut reader = LineReader::new();
    for piece in input {
        let mut piece = *piece;
        while let Some(event) = reader.next_line(&mut piece) {
            let action = match event {
                LineEvent::Line(line) => session.handle_line(line, &mut out),
                LineEvent::TooLong => session.handle_overlong_line(&mut out),
            };
            match action {
                Action::Continue | Action::StartTls => {}
                Action::Pause { then_close, .. } => {
                    if then_close {
                        return out;
                    }
                }
                Action::Close | Action::TooManyFailures => return out,
                Action::Transfer(mut transfer) => {
                    let mut writer = BodyWriter::new(transfer.extent);
                    let mut file = Vec::new();
                    transfer.file.read_to_end(&mut file).unwrap();
                    writer.write(&file, &mut out);
                    writer.finish(&mut out);
                    session.transfer_done(transfer.number, transfer.extent);
                }
            }
        }
    }
    out
}

/// Command lines a client might send, good and bad, in any order (never QUIT, so no run
/// changes the store and two runs see the same mailbox).
fn dialogue() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"USER asterix".to_vec()),
        Just(b"PASS potion".to_vec()),
        Just(b"PASS wrong".to_vec()),
        Just(b"AUTH PLAIN AGFzdGVyaXgAcG90aW9u".to_vec()),
        Just(b"AUTH PLAIN".to_vec()),
        Just(b"AGFzdGVyaXgAcG90aW9u".to_vec()),
        Just(b"CAPA".to_vec()),
        Just(b"STAT".to_vec()),
        Just(b"LIST".to_vec()),
        Just(b"UIDL 2".to_vec()),
        Just(b"RETR 1".to_vec()),
        Just(b"RETR 8".to_vec()),
        Just(b"TOP 3 2".to_vec()),
        Just(b"DELE 2".to_vec()),
        Just(b"RSET".to_vec()),
        Just(b"NOOP".to_vec()),
        Just(b"STLS".to_vec()),
        framing_bytes(40),
        Just(vec![b'N'; 300]),
    ];
    (
        any::<bool>(),
        prop::collection::vec(line, 0..14),
        prop::collection::vec(prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..])], 14),
    )
        .prop_map(|(log_in_first, lines, ends)| {
            let mut bytes = Vec::new();
            if log_in_first {
                bytes.extend_from_slice(b"USER asterix\r\nPASS potion\r\n");
            }
            for (line, end) in lines.iter().zip(ends) {
                bytes.extend_from_slice(line);
                bytes.extend_from_slice(end);
            }
            bytes
        })
}

#[test]
fn session_answers_the_same_for_any_split_of_the_input() {
    let (_dir, store) = demo_store();
    let mut runner = TestRunner::new(Config::with_cases(96));
    let strategy = (dialogue(), prop::collection::vec(any::<Index>(), 1..12));
    runner
        .run(&strategy, |(input, points)| {
            let whole = run_session(&store, &[&input]);
            let split = run_session(&store, &chunks(&input, &points));
            prop_assert_eq!(
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&split)
            );
            // Byte by byte, the extreme split.
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let by_byte = run_session(&store, &bytes);
            prop_assert_eq!(whole, by_byte);
            Ok(())
        })
        .unwrap();
}

#[test]
fn list_sizes_equal_what_retr_sends_for_any_delivered_bytes() {
    let (_dir, store) = demo_store();
    let user = UserName::parse("obelix").unwrap();
    let maildir: Maildir = store.mailbox(&user).unwrap();
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&framing_bytes(2000), |message| {
            let mut delivery = maildir.deliver().unwrap();
            delivery.write_all(&message).unwrap();
            let entry = delivery.commit().unwrap();
            // The ,W= field, when the store writes one, is the same count.
            if let Some(crlf) = entry.crlf_size_field() {
                prop_assert_eq!(crlf, transfer_size(&message[..]).unwrap());
            }
            let script = b"USER obelix\r\nPASS menhir\r\nLIST\r\nRETR 5\r\n";
            let wire = run_session(&store, &[&script[..]]);
            let text = String::from_utf8_lossy(&wire).into_owned();
            let listed: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("5 "))
                .expect("LIST shows message 5")
                .trim()
                .parse()
                .unwrap();
            let status = format!("+OK {listed} octets\r\n");
            let start = wire
                .windows(status.len())
                .position(|w| w == status.as_bytes())
                .expect("RETR 5 announces the listed size")
                + status.len();
            let body = client_decode(&wire[start..]).map_err(TestCaseError::fail)?;
            prop_assert_eq!(body.len() as u64, listed);
            prop_assert_eq!(body, crlf_normalized(&message));
            prop_assert!(maildir.remove(&entry).unwrap());
            Ok(())
        })
        .unwrap();
}
