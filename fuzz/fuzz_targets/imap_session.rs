//! Arbitrary bytes from a client into the sans-I/O IMAP session (framing, literals, the
//! imap-codec parser, every command, IDLE, AUTHENTICATE, APPEND), as the connection driver
//! drives it: no panic, no unbounded output, and every output line ends in CRLF.
//!
//! The first byte of the input chooses how the rest is split into reads, so the fuzzer also
//! explores commands and literals cut at every point. Failed logins ask for a pause, which
//! the target skips (there is no clock). Before every other read the session is asked to
//! hibernate, as the driver does after 30 quiet seconds, so that waking (a new listing and
//! its merge) runs between any two commands. The store is a copy of the demo store,
//! restored when an input changed it, so every input sees the same mailboxes.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailtool::imap::session::{Action, Session, SessionConfig};
use mailtool::store::Store;

/// More output than any input of at most a few KiB can ask for, short of fetching the whole
/// demo store many times over.
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

struct Fixture {
    dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // In memory where the machine has it: sessions fsync what they write, and every input
        // that changed the store gets a fresh copy, so a disk would set the pace.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        mailtool::demo::extract(&dir.path().join("store")).expect("demo store");
        mailtool::demo::extract(&dir.path().join("pristine")).expect("demo store");
        Fixture { dir }
    })
}

/// Put the demo store back when an input changed anything in it (flags, appends, folders).
fn restore(store: &Path, pristine: &Path) {
    if snapshot(store) != snapshot(pristine) {
        std::fs::remove_dir_all(store).expect("remove the used store");
        mailtool::demo::extract(store).expect("demo store");
    }
}

/// Every path under `dir` except Dovecot-style index files, sorted.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if name.contains("dovecot-uidlist") {
                continue;
            }
            if path.is_dir() {
                stack.push(path.clone());
            }
            names.push(name);
        }
    }
    names.sort();
    names
}

fn check_output(out: &[u8]) {
    assert!(out.len() < MAX_OUTPUT, "output grew to {} octets", out.len());
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;
    let fixture = fixture();
    let store_dir = fixture.dir.path().join("store");
    let config = SessionConfig {
        starttls: split & 0x40 != 0,
        require_tls: split & 0x80 != 0,
        failed_login_delay: Duration::ZERO,
        max_append: 64 * 1024,
        trace: true,
        ..SessionConfig::default()
    };
    let mut session = Session::new(Store::new(&store_dir), config);
    let mut out = Vec::new();
    session.greeting(&mut out);
    assert!(out.starts_with(b"* OK") && out.ends_with(b"\r\n"), "{out:?}");
    let mut chunks = input.chunks(chunk).enumerate();
    'session: loop {
        match session.next(&mut out) {
            Action::NeedInput => match chunks.next() {
                Some((n, bytes)) => {
                    if n % 2 == 1 {
                        session.hibernate();
                    }
                    session.receive(bytes);
                }
                None => break,
            },
            Action::Flush | Action::Offload | Action::Pause { then_close: false, .. } => {}
            Action::StartTls => session.tls_established(),
            Action::Close | Action::Pause { then_close: true, .. } => break 'session,
        }
        if session.is_idling() {
            session.tick(&mut out);
        }
        check_output(&out);
        let _ = session.take_trace();
        let _ = session.take_events();
    }
    // Whatever was sent is made of whole lines (literals may hold anything, so only the end is
    // checked).
    assert!(out.is_empty() || out.ends_with(b"\r\n"), "output ends mid-line");
    drop(session);
    restore(&store_dir, &fixture.dir.path().join("pristine"));
});
