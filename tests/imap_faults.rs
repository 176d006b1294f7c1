//! Faults against the real `serve-imap` binary over TCP: `kill -9` during EXPUNGE, APPEND and
//! a uidlist rewrite, SIGTERM mid-session, a full disk and a file-size limit during APPEND, a
//! read-only store, mail removed or renamed under an open session, serve-imap, serve-pop,
//! `mbox deliver` and Dovecot working one store at once, and a power cut of the disk (a
//! loop-mounted ext4 shut down without flushing its journal) under APPEND and COPY, with and
//! without fast commits, during a uidlist rewrite, and after an APPEND another program
//! numbered first.
//!
//! Every scenario takes the mailbox before and after (each message's bytes and flags from
//! the files, its UID from `dovecot-uidlist`, read here by a strict parser of our own) and
//! checks that nothing was lost, duplicated or half-written, that UIDs stayed and were never
//! handed out twice, and that a fresh server sees exactly what the files say.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use support::dovecot::Dovecot;
use support::imap::{mail, RawImap};
use support::pop3::PopServer;
use support::{copy_tree, crlf_line_ends, TempStore};

/// One message as its file has it: the bytes and the Maildir flag letters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mail {
    bytes: Vec<u8>,
    flags: String,
}

/// A mailbox's messages by base name (the file name without `:2,flags`).
type Disk = BTreeMap<String, Mail>;

fn disk(maildir: &Path) -> Disk {
    let mut mails = Disk::new();
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(maildir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let (base, flags) = match name.split_once(":2,") {
                Some((base, flags)) => (base.to_owned(), flags.to_owned()),
                None => (name.clone(), String::new()),
            };
            let mail = Mail {
                bytes: fs::read(entry.path()).unwrap(),
                flags: flags.chars().filter(char::is_ascii_uppercase).collect(),
            };
            let previous = mails.insert(base, mail);
            assert!(previous.is_none(), "{name} is in the mailbox twice");
        }
    }
    mails
}

fn tmp_files(maildir: &Path) -> Vec<PathBuf> {
    fs::read_dir(maildir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// `dovecot-uidlist` read strictly: a version 3 header, then complete lines in UID order,
/// each file once. Panics on anything else: after a crash the file must still be whole.
#[derive(Debug, Clone)]
struct UidList {
    validity: u32,
    next: u32,
    uids: BTreeMap<String, u32>,
    lines: usize,
}

impl UidList {
    fn read(maildir: &Path) -> UidList {
        let text = fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap();
        assert!(text.ends_with('\n'), "the uidlist ends in a torn line");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(header[0], "3", "uidlist header {header:?}");
        let field = |key: char| -> u32 {
            header
                .iter()
                .find_map(|f| f.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("uidlist header {header:?} has no {key}"))
        };
        let (validity, next) = (field('V'), field('N'));
        let mut uids = BTreeMap::new();
        let mut last = 0;
        let mut count = 0;
        for line in lines {
            let (uid, rest) = line.split_once(' ').expect("a uidlist record");
            let uid: u32 = uid.parse().expect("a UID");
            let base = &rest[rest.find(':').expect("`:` before the file name") + 1..];
            assert!(uid > last, "UID {uid} after {last} in the uidlist");
            last = uid;
            assert!(
                uids.insert(base.to_owned(), uid).is_none(),
                "{base} twice in the uidlist"
            );
            count += 1;
        }
        UidList {
            validity,
            next: next.max(last + 1),
            uids,
            lines: count,
        }
    }

    /// The largest UID this list has ever handed out, as far as it shows.
    fn highest(&self) -> u32 {
        self.next - 1
    }
}

/// The files after a fault: each is one of `before`, byte for byte, with the same flags or
/// (for those in `may_change`) any; those gone are all in `may_be_gone`.
fn assert_nothing_lost(
    before: &Disk,
    after: &Disk,
    may_be_gone: &BTreeSet<String>,
    may_change: &BTreeSet<String>,
) {
    for (base, mail) in after {
        let original = before
            .get(base)
            .unwrap_or_else(|| panic!("{base} appeared from nowhere"));
        assert!(
            mail.bytes == original.bytes,
            "{base} changed: {} octets now, {} before",
            mail.bytes.len(),
            original.bytes.len()
        );
        if !may_change.contains(base) {
            assert_eq!(mail.flags, original.flags, "flags of {base}");
        }
    }
    for base in before.keys() {
        assert!(
            after.contains_key(base) || may_be_gone.contains(base),
            "{base} was lost"
        );
    }
}

/// UIDs stay: every message in both lists has the same UID in both.
fn assert_uids_kept(before: &UidList, after: &UidList) {
    assert_eq!(before.validity, after.validity, "UIDVALIDITY changed");
    for (base, uid) in &after.uids {
        if let Some(old) = before.uids.get(base) {
            assert_eq!(old, uid, "UID of {base}");
        }
    }
    assert!(after.next >= before.next, "NEXTUID went back");
}

/// IMAP flags as Maildir letters (`\Recent` and keywords left out).
fn letters(flags: &str) -> String {
    let mut out: Vec<char> = flags
        .split_whitespace()
        .filter_map(|f| match f {
            "\\Draft" => Some('D'),
            "\\Flagged" => Some('F'),
            "\\Answered" => Some('R'),
            "\\Seen" => Some('S'),
            "\\Deleted" => Some('T'),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.into_iter().collect()
}

/// A number after `key ` in a response line.
fn number_after(line: &str, key: &str) -> Option<u32> {
    let at = line.find(key)? + key.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The parenthesised list after `key (`.
fn list_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    let end = line[at..].find(')')?;
    Some(&line[at..at + end])
}

/// What a server shows of a mailbox: UIDVALIDITY, and UID to (flag letters, size).
struct View {
    validity: u32,
    messages: BTreeMap<u32, (String, u64)>,
}

fn view(port: u16, user: &str, password: &str) -> View {
    let mut imap = RawImap::connect(port);
    imap.ok(&format!("LOGIN {user} {password}"));
    let selected = imap.ok("SELECT INBOX");
    let validity = selected
        .iter()
        .find_map(|l| number_after(&String::from_utf8_lossy(l), "[UIDVALIDITY "))
        .expect("UIDVALIDITY in SELECT");
    let mut messages = BTreeMap::new();
    for line in imap.ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE)") {
        let line = String::from_utf8_lossy(&line).into_owned();
        let uid = number_after(&line, "UID ").expect("UID in FETCH");
        let size = number_after(&line, "RFC822.SIZE ").expect("RFC822.SIZE in FETCH");
        let flags = letters(list_after(&line, "FLAGS (").expect("FLAGS in FETCH"));
        assert!(
            messages.insert(uid, (flags, u64::from(size))).is_none(),
            "UID {uid} twice"
        );
    }
    imap.ok("LOGOUT");
    View { validity, messages }
}

/// A fresh server shows exactly what the files and the uidlist say.
fn assert_server_agrees(server: &PopServer, maildir: &Path) -> UidList {
    let seen = view(server.port(), "asterix", "potion");
    let files = disk(maildir);
    let list = UidList::read(maildir);
    assert_eq!(seen.validity, list.validity);
    assert_eq!(seen.messages.len(), files.len(), "message count");
    for (base, mail) in &files {
        let uid = list
            .uids
            .get(base)
            .unwrap_or_else(|| panic!("{base} has no UID"));
        let (flags, size) = &seen.messages[uid];
        assert_eq!(flags, &mail.flags, "flags of UID {uid}");
        assert_eq!(
            *size,
            crlf_line_ends(&mail.bytes).len() as u64,
            "size of UID {uid}"
        );
    }
    list
}

/// APPEND one mail on a fresh session; its UID must be above every UID ever handed out.
fn assert_next_uid_fresh(server: &PopServer, highest: u32) {
    let mut imap = RawImap::connect(server.port());
    imap.ok("LOGIN asterix potion");
    let body = mail("after the fault", 300);
    imap.send_raw(format!("n1 APPEND INBOX {{{}+}}\r\n", body.len()).as_bytes());
    imap.send_raw(&body);
    imap.send_raw(b"\r\n");
    let status = imap.read_until_tagged("n1").pop().unwrap();
    let uid = status
        .find("[APPENDUID ")
        .map(|at| &status[at + 11..])
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|uid| {
            uid.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u32>()
                .ok()
        })
        .unwrap_or_else(|| panic!("APPENDUID in {status}"));
    assert!(
        uid > highest,
        "UID {uid} handed out again (highest was {highest})"
    );
}

/// Deliver `count` small distinct messages through the store API.
fn deliver(store: &Path, user: &str, count: usize) {
    let mailbox = Store::new(store)
        .mailbox(&UserName::parse(user).unwrap())
        .unwrap();
    for i in 0..count {
        let mut delivery = mailbox.deliver().unwrap();
        let body = format!(
            "From: load@example.org\nSubject: message {i}\n\n.line {i}\r\n{}\n",
            "x".repeat(i % 97)
        );
        delivery.write_all(body.as_bytes()).unwrap();
        delivery.commit().unwrap();
    }
}

/// Give every message a UID and move it into cur/, as a first session would.
fn settle(store: &Path, user: &str) {
    Store::new(store)
        .mailbox(&UserName::parse(user).unwrap())
        .unwrap()
        .sync_uids(true)
        .unwrap();
}

fn kill_9(server: &mut PopServer) {
    server.signal(libc::SIGKILL);
    let status = server.wait_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

fn login_select(server: &PopServer) -> RawImap {
    RawImap::login(server.port(), "asterix", "potion")
}

#[test]
fn kill_9_during_expunge_of_1000_mails_loses_nothing_else() {
    let pristine = TempStore::demo();
    deliver(&pristine.path(), "asterix", 1000);
    settle(&pristine.path(), "asterix");

    for delay_ms in [0u64, 3, 10, 30] {
        let round = TempStore::empty();
        copy_tree(&pristine.path(), &round.path());
        let maildir = round.path().join("asterix");
        let mut server = PopServer::start_imap(&round.path(), &[]);
        let mut imap = login_select(&server);
        imap.ok("STORE 1:1000 +FLAGS.SILENT (\\Deleted)");
        let before = disk(&maildir);
        let list_before = UidList::read(&maildir);
        assert_eq!(before.len(), 1008);
        let marked: BTreeSet<String> = before
            .iter()
            .filter(|(_, m)| m.flags.contains('T'))
            .map(|(b, _)| b.clone())
            .collect();
        assert_eq!(marked.len(), 1000);

        imap.send_raw(b"x EXPUNGE\r\n");
        thread::sleep(Duration::from_millis(delay_ms));
        kill_9(&mut server);

        let after = disk(&maildir);
        assert_nothing_lost(&before, &after, &marked, &BTreeSet::new());
        assert!(tmp_files(&maildir).is_empty());
        let list_after = UidList::read(&maildir);
        assert_uids_kept(&list_before, &list_after);
        eprintln!(
            "kill -9 {delay_ms} ms into EXPUNGE: {} of 1000 removed",
            before.len() - after.len()
        );

        let server = PopServer::start_imap(&round.path(), &[]);
        let list = assert_server_agrees(&server, &maildir);
        assert_uids_kept(&list_before, &list);
        assert_next_uid_fresh(&server, list_before.highest());
    }
}

#[test]
fn kill_9_during_append_leaves_no_half_mail_and_reuses_no_uid() {
    let pristine = TempStore::demo();
    settle(&pristine.path(), "asterix");
    let message = mail("a large one, sent slowly", 8 * 1024 * 1024);

    // How long the server takes over the literal once it is all sent, unhindered.
    let took = {
        let round = TempStore::empty();
        copy_tree(&pristine.path(), &round.path());
        let server = PopServer::start_imap(&round.path(), &[]);
        let mut imap = login_select(&server);
        imap.send_raw(format!("a APPEND INBOX {{{}}}\r\n", message.len()).as_bytes());
        assert!(imap.read_line().unwrap().starts_with("+ "));
        imap.send_raw(&message);
        let started = Instant::now();
        imap.send_raw(b"\r\n");
        let status = imap.read_until_tagged("a").pop().unwrap();
        assert!(status.starts_with("a OK [APPENDUID "), "{status}");
        started.elapsed()
    };

    // Half the literal sent slowly, then the whole of it with the kill before, about when,
    // and after the server is done with it.
    let (half, whole) = (message.len() / 2, message.len());
    for (sent, delay) in [
        (half, Duration::ZERO),
        (whole, took / 2),
        (whole, took),
        (whole, took * 3 / 2),
    ] {
        let round = TempStore::empty();
        copy_tree(&pristine.path(), &round.path());
        let maildir = round.path().join("asterix");
        let before = disk(&maildir);
        let list_before = UidList::read(&maildir);
        let mut server = PopServer::start_imap(&round.path(), &[]);
        let mut imap = login_select(&server);
        imap.send_raw(format!("a APPEND INBOX (\\Flagged) {{{}}}\r\n", message.len()).as_bytes());
        assert!(imap.read_line().unwrap().starts_with("+ "));
        for chunk in message[..sent].chunks(256 * 1024) {
            imap.send_raw(chunk);
            thread::sleep(Duration::from_millis(2));
        }
        if sent == message.len() {
            imap.send_raw(b"\r\n");
        }
        thread::sleep(delay);
        kill_9(&mut server);

        let mut after = disk(&maildir);
        // The APPEND either happened whole (only once the literal was complete) or not at
        // all.
        let arrived: Vec<String> = after
            .keys()
            .filter(|b| !before.contains_key(*b))
            .cloned()
            .collect();
        assert!(
            arrived.len() <= usize::from(sent == message.len()),
            "{arrived:?}"
        );
        for base in &arrived {
            let mail = after.remove(base).unwrap();
            assert!(mail.bytes == message, "the appended mail is not whole");
            assert_eq!(mail.flags, "F");
        }
        assert_nothing_lost(&before, &after, &BTreeSet::new(), &BTreeSet::new());
        // tmp/ may keep the partial file: Dovecot (and a later delivery) ignore tmp/, and
        // Dovecot deletes files there older than 36 hours.
        let leftovers = tmp_files(&maildir);
        assert!(leftovers.len() <= 1, "{leftovers:?}");
        for file in &leftovers {
            let partial = fs::read(file).unwrap();
            assert!(message.starts_with(&partial), "tmp/ holds something else");
        }
        eprintln!(
            "kill -9 {delay:?} after {sent} of {} octets: {} appended, {} in tmp/",
            message.len(),
            arrived.len(),
            leftovers.len()
        );
        let list_after = UidList::read(&maildir);
        assert_uids_kept(&list_before, &list_after);

        let server = PopServer::start_imap(&round.path(), &[]);
        let list = assert_server_agrees(&server, &maildir);
        assert_uids_kept(&list_before, &list);
        assert_next_uid_fresh(&server, list_after.highest());
    }
}

/// Lines of files that are gone, with UIDs above the live ones: enough that the next sync
/// that assigns a UID rewrites the file (Dovecot's rule: when a quarter or more of the lines
/// are dead), and large enough that the rewrite takes a while.
fn add_dead_lines(maildir: &Path, count: u32) {
    let path = maildir.join("dovecot-uidlist");
    let text = fs::read_to_string(&path).unwrap();
    let list = UidList::read(maildir);
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|f| {
            if f.starts_with('N') {
                format!("N{}", list.next + count)
            } else {
                f.to_owned()
            }
        })
        .collect();
    let mut out = header.join(" ") + "\n";
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    for i in 0..count {
        let uid = list.next + i;
        out.push_str(&format!("{uid} :1600000000.M{uid}P1Q1.gone,S=100\n"));
    }
    fs::write(&path, out).unwrap();
}

#[test]
fn kill_9_during_a_uidlist_rewrite_keeps_a_valid_uidlist() {
    let pristine = TempStore::demo();
    deliver(&pristine.path(), "asterix", 200);
    settle(&pristine.path(), "asterix");
    let maildir_of = |store: &Path| store.join("asterix");
    add_dead_lines(&maildir_of(&pristine.path()), 100_000);
    // One new mail: its UID makes the next SELECT write the uidlist, and with so many dead
    // lines, rewrite it.
    deliver(&pristine.path(), "asterix", 1);
    let full = UidList::read(&maildir_of(&pristine.path()));
    assert_eq!(full.lines, 100_208);

    // Unhindered first: how long the SELECT that rewrites takes.
    let round = TempStore::empty();
    copy_tree(&pristine.path(), &round.path());
    let server = PopServer::start_imap(&round.path(), &[]);
    let started = Instant::now();
    let _imap = login_select(&server);
    let took = started.elapsed();
    let rewritten = UidList::read(&maildir_of(&round.path()));
    assert_eq!(rewritten.lines, 209, "the uidlist was not rewritten");
    assert_uids_kept(&full, &rewritten);
    drop(server);

    let mut outcomes = BTreeMap::new();
    for percent in [20u32, 50, 80, 100] {
        let round = TempStore::empty();
        copy_tree(&pristine.path(), &round.path());
        let maildir = maildir_of(&round.path());
        let before = disk(&maildir);
        let mut server = PopServer::start_imap(&round.path(), &[]);
        let mut imap = RawImap::connect(server.port());
        imap.ok("LOGIN asterix potion");
        imap.send_raw(b"s SELECT INBOX\r\n");
        thread::sleep(took * percent / 100);
        kill_9(&mut server);

        // new/ to cur/ may have happened; nothing else.
        let after = disk(&maildir);
        let all: BTreeSet<String> = before.keys().cloned().collect();
        assert_nothing_lost(&before, &after, &BTreeSet::new(), &all);
        for (base, mail) in &after {
            assert_eq!(mail.flags, before[base].flags, "flags of {base}");
        }
        let list = UidList::read(&maildir);
        assert_uids_kept(&full, &list);
        let outcome = if list.lines == full.lines {
            "old uidlist"
        } else {
            assert_eq!(list.lines, 209);
            "rewritten"
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        // A leftover dovecot-uidlist.tmp is overwritten by the next rewrite and never read;
        // a leftover dotlock names a dead process and is taken over after 2 s, as Dovecot
        // does.
        eprintln!(
            "kill -9 at {percent}% of the rewriting SELECT ({took:?}): {outcome}, tmp file left: {}",
            maildir.join("dovecot-uidlist.tmp").exists()
        );

        let server = PopServer::start_imap(&round.path(), &[]);
        let list = assert_server_agrees(&server, &maildir);
        assert_uids_kept(&full, &list);
        assert_next_uid_fresh(&server, full.highest());
    }
    eprintln!("outcomes: {outcomes:?}");
}

/// A power cut of the disk while a SELECT rewrites a large uidlist (through
/// `dovecot-uidlist.tmp` and a rename) leaves, after the journal's replay, the old uidlist or
/// the new one, each whole, every UID as it was, no mail lost; and once the SELECT was
/// answered, the new one.
#[test]
fn a_crash_of_the_disk_during_a_uidlist_rewrite_keeps_a_valid_uidlist() {
    let scratch = TempStore::empty();
    let image = scratch.scratch().join("ext4.img");
    let root = scratch.scratch().join("ext4");
    let Some(mount) = Mount::ext4(&image, &root, &[]) else {
        return;
    };
    let pristine = TempStore::demo();
    deliver(&pristine.path(), "asterix", 200);
    settle(&pristine.path(), "asterix");
    add_dead_lines(&pristine.path().join("asterix"), 100_000);
    // One new mail: its UID makes the next SELECT write the uidlist, and with so many dead
    // lines, rewrite it.
    deliver(&pristine.path(), "asterix", 1);
    let full = UidList::read(&pristine.path().join("asterix"));
    assert_eq!(full.lines, 100_208);

    // How long the rewriting SELECT takes on this disk, unhindered.
    let timing = root.join("timing");
    copy_tree(&pristine.path(), &timing);
    let server = PopServer::start_imap(&timing, &[]);
    let mut imap = RawImap::connect(server.port());
    imap.ok("LOGIN asterix potion");
    let started = Instant::now();
    imap.ok("SELECT INBOX");
    let took = started.elapsed();
    drop(imap);
    assert_eq!(UidList::read(&timing.join("asterix")).lines, 209);
    drop(server);

    let mut outcomes = BTreeMap::new();
    // The cut at a share of that time, or (None) once the SELECT is answered. Where a timed
    // cut falls (before the rename, after it) varies from run to run: each outcome must be
    // whole, and only the last is fixed (the rewrite must then be durable).
    for percent in [Some(20u32), Some(50), Some(80), Some(100), None] {
        let when = percent.map_or("once the SELECT was answered".to_owned(), |p| {
            format!("at {p}% of the rewriting SELECT ({took:?})")
        });
        let store = root.join(format!("cut-{}", percent.unwrap_or(0)));
        copy_tree(&pristine.path(), &store);
        assert!(Command::new("sync").status().unwrap().success());
        let maildir = store.join("asterix");
        let before = disk(&maildir);
        let mut server = PopServer::start_imap(&store, &[]);
        let mut imap = RawImap::connect(server.port());
        imap.ok("LOGIN asterix potion");
        match percent {
            Some(percent) => {
                imap.send_raw(b"s SELECT INBOX\r\n");
                thread::sleep(took * percent / 100);
            }
            None => drop(imap.ok("SELECT INBOX")),
        }
        mount.shut_down_without_flushing();
        kill_9(&mut server);
        mount.remount(&image);

        let after = disk(&maildir);
        let all: BTreeSet<String> = before.keys().cloned().collect();
        assert_nothing_lost(&before, &after, &BTreeSet::new(), &all);
        let list = UidList::read(&maildir);
        assert_uids_kept(&full, &list);
        let outcome = if list.lines == full.lines {
            assert!(
                percent.is_some(),
                "the SELECT was answered, its rewrite lost"
            );
            "old uidlist"
        } else {
            assert_eq!(list.lines, 209);
            "rewritten"
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        eprintln!("power cut {when}: {outcome}");

        let server = PopServer::start_imap(&store, &[]);
        let list = assert_server_agrees(&server, &maildir);
        assert_uids_kept(&full, &list);
        assert_next_uid_fresh(&server, full.highest());
    }
    eprintln!("outcomes: {outcomes:?}");
}

#[test]
fn sigterm_ends_every_session_and_loses_nothing() {
    let store = TempStore::demo();
    settle(&store.path(), "asterix");
    let maildir = store.path().join("asterix");
    let mut server = PopServer::start_imap(&store.path(), &[]);

    let mut flagging = login_select(&server);
    flagging.ok("STORE 1 +FLAGS (\\Flagged)");
    let before = disk(&maildir);
    let list_before = UidList::read(&maildir);
    let mut idling = login_select(&server);
    idling.send_raw(b"i IDLE\r\n");
    assert!(idling.read_line().unwrap().starts_with("+ "));
    let mut appending = login_select(&server);
    appending.send_raw(b"a APPEND INBOX {100000}\r\n");
    assert!(appending.read_line().unwrap().starts_with("+ "));
    appending.send_raw(&[b'x'; 50_000]);
    let mut anonymous = RawImap::connect(server.port());

    // Let the server take in the half literal before the signal.
    thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    let status = server
        .wait_timeout(Duration::from_secs(15))
        .expect("serve-imap exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", server.stderr());
    for client in [&mut flagging, &mut idling, &mut appending, &mut anonymous] {
        let mut rest = Vec::new();
        while let Some(line) = client.read_line() {
            rest.push(line);
        }
        // RFC 3501 7.1.5: a server that shuts down says BYE.
        assert!(
            rest.iter().any(|l| l.starts_with("* BYE")),
            "no BYE before the close: {rest:?}"
        );
    }
    assert_eq!(disk(&maildir), before);
    assert!(
        tmp_files(&maildir).is_empty(),
        "the half APPEND stayed in tmp/"
    );
    let list = UidList::read(&maildir);
    assert_uids_kept(&list_before, &list);
    assert_eq!(list.uids, list_before.uids);
}

/// A mount made for one test, lazily unmounted when dropped.
struct Mount(PathBuf);

/// Whether this test may mount file systems (it needs root, which CI has).
fn may_mount(what: &str) -> bool {
    if !support::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mounting {what} needs root, which CI has"
        );
        eprintln!("skipped: mounting {what} needs root");
        return false;
    }
    true
}

impl Mount {
    fn tmpfs(target: &Path, size: &str) -> Option<Mount> {
        if !may_mount("a tmpfs") {
            return None;
        }
        fs::create_dir_all(target).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(target)
            .output()
            .ok()?;
        if !output.status.success() {
            eprintln!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        }
        Some(Mount(target.to_owned()))
    }
}

impl Mount {
    /// A fresh ext4 of 256 MiB in the file `image`, made with `features` (`mkfs.ext4 -O`,
    /// e.g. `^has_journal`; none for the default), mounted through a loop device at `target`.
    fn ext4(image: &Path, target: &Path, features: &[&str]) -> Option<Mount> {
        if !may_mount("an ext4 image") || !support::have("mkfs.ext4") {
            return None;
        }
        fs::File::create(image)
            .unwrap()
            .set_len(256 * 1024 * 1024)
            .unwrap();
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]);
        if !features.is_empty() {
            mkfs.args(["-O", &features.join(",")]);
        }
        let made = mkfs.arg(image).output().unwrap();
        assert!(
            made.status.success(),
            "mkfs.ext4: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        fs::create_dir_all(target).unwrap();
        if let Err(error) = attach(image, target) {
            // Root without loop devices (a container): not something this machine can test.
            assert!(std::env::var_os("CI").is_none(), "{error}");
            eprintln!("skipped: {error}");
            return None;
        }
        Some(Mount(target.to_owned()))
    }

    /// Unmount and mount `image` again, as a machine does after a crash: ext4 replays the
    /// transactions its journal committed, and only those.
    fn remount(&self, image: &Path) {
        let unmounted = Command::new("umount").arg(&self.0).output().unwrap();
        assert!(
            unmounted.status.success(),
            "umount: {}",
            String::from_utf8_lossy(&unmounted.stderr)
        );
        attach(image, &self.0).unwrap();
    }

    /// Cut the file system off as a power failure would: `FS_IOC_SHUTDOWN` with
    /// `FS_SHUTDOWN_FLAGS_NOLOGFLUSH` (xfstests' way of simulating a crash) drops every
    /// journal transaction not yet committed and writes nothing more; every later system call
    /// on it fails.
    fn shut_down_without_flushing(&self) {
        use std::os::fd::AsRawFd;
        // _IOR('X', 125, __u32), shared by ext4 and XFS.
        const FS_IOC_SHUTDOWN: u32 = 0x8004_587D;
        const FS_SHUTDOWN_FLAGS_NOLOGFLUSH: u32 = 2;
        let dir = fs::File::open(&self.0).unwrap();
        let flags = FS_SHUTDOWN_FLAGS_NOLOGFLUSH;
        // SAFETY: the ioctl reads one u32 through the pointer, which outlives the call.
        let done = unsafe { libc::ioctl(dir.as_raw_fd(), FS_IOC_SHUTDOWN as _, &flags) };
        assert_eq!(done, 0, "shutdown: {}", std::io::Error::last_os_error());
    }
}

/// ext4's count of fast commits on the file system mounted at `root`, and how many of them
/// were ineligible and made a full commit instead (`/proc/fs/ext4/<device>/fc_info`).
fn fast_commit_counts(root: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(root).unwrap().dev();
    let block = fs::read_link(format!(
        "/sys/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ))
    .unwrap();
    let name = block.file_name().unwrap().to_str().unwrap().to_owned();
    let info = fs::read_to_string(format!("/proc/fs/ext4/{name}/fc_info")).unwrap();
    let count = |what: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_suffix(what)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {what:?} in fc_info: {info}"))
    };
    (count(" commits"), count(" ineligible"))
}

/// Mount the ext4 in `image` at `target` through a loop device.
fn attach(image: &Path, target: &Path) -> Result<(), String> {
    let mounted = Command::new("mount")
        .args(["-t", "ext4", "-o", "loop"])
        .arg(image)
        .arg(target)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if mounted.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount: {}",
            String::from_utf8_lossy(&mounted.stderr)
        ))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A demo store settled at `path`.
fn demo_at(path: &Path) {
    copy_tree(&support::testdata().join("store"), path);
    for user in ["asterix", "obelix"] {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(path.join(user).join(sub)).unwrap();
        }
    }
    fs::set_permissions(path.join("passwd"), fs::Permissions::from_mode(0o600)).unwrap();
    settle(path, "asterix");
}

/// APPEND `size` octets with a synchronising literal (so the server reads them all, as a
/// client that waits for `+` sends them); the tagged status.
fn append_sized(imap: &mut RawImap, tag: &str, size: usize) -> String {
    imap.send_raw(format!("{tag} APPEND INBOX {{{size}}}\r\n").as_bytes());
    let go = imap.read_line().unwrap();
    if !go.starts_with("+ ") {
        return go;
    }
    let body = mail("too big for the disk", size);
    imap.send_raw(&body[..size]);
    imap.send_raw(b"\r\n");
    imap.read_until_tagged(tag).pop().unwrap()
}

/// A full disk or the file-size limit during APPEND: `NO`, nothing in new/ or cur/, nothing
/// left in tmp/, and the session goes on (a small APPEND then works).
fn assert_append_refused_cleanly(server: &PopServer, maildir: &Path, size: usize) {
    let before = disk(maildir);
    let mut imap = login_select(server);
    let status = append_sized(&mut imap, "a", size);
    assert!(status.starts_with("a NO [LIMIT]"), "{status}");
    assert!(status.contains("no room"), "{status}");
    assert_eq!(disk(maildir), before);
    assert!(
        tmp_files(maildir).is_empty(),
        "a partial file stayed in tmp/"
    );
    imap.ok("NOOP");
    let status = append_sized(&mut imap, "b", 2000);
    assert!(status.starts_with("b OK [APPENDUID "), "{status}");
    assert_eq!(disk(maildir).len(), before.len() + 1);
    imap.ok("LOGOUT");
}

#[test]
fn disk_full_during_append_answers_no_and_the_session_goes_on() {
    let scratch = TempStore::empty();
    let root = scratch.scratch().join("small");
    let Some(_mount) = Mount::tmpfs(&root, "3m") else {
        return;
    };
    let store = root.join("store");
    demo_at(&store);
    let server = PopServer::start_imap(&store, &[]);
    assert_append_refused_cleanly(&server, &store.join("asterix"), 4 * 1024 * 1024);
    assert!(
        server.stderr_shows("No space left on device"),
        "{}",
        server.stderr()
    );
}

#[test]
fn file_size_limit_during_append_answers_no_and_the_session_goes_on() {
    let store = TempStore::empty();
    demo_at(&store.path());
    let mut command = store.mailtool_std();
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024 * 1024,
                rlim_max: 1024 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = PopServer::spawn_as(command, &["serve-imap", "--port", "0"], &[]);
    assert_append_refused_cleanly(&server, &store.path().join("asterix"), 2 * 1024 * 1024);
    assert!(server.stderr_shows("File too large"), "{}", server.stderr());
}

/// The `n`th number of the response code `[NAME a b c]` in a status line.
fn code_number(status: &str, name: &str, n: usize) -> Option<u32> {
    let at = status.find(&format!("[{name} "))? + name.len() + 2;
    let code = &status[at..at + status[at..].find(']')?];
    code.split(' ').nth(n)?.parse().ok()
}

/// APPEND `body` (and with `copy`, UID COPY it into INBOX too), both of which must succeed;
/// the UIDs the server gave.
fn append_and_copy(imap: &mut RawImap, body: &[u8], copy: bool) -> Vec<(u32, Vec<u8>)> {
    imap.send_raw(format!("a APPEND INBOX {{{}+}}\r\n", body.len()).as_bytes());
    imap.send_raw(body);
    imap.send_raw(b"\r\n");
    let status = imap.read_until_tagged("a").pop().unwrap();
    let uid = code_number(&status, "APPENDUID", 1).unwrap_or_else(|| panic!("APPEND: {status}"));
    let mut done = vec![(uid, body.to_vec())];
    if copy {
        let reply = imap.command(&format!("UID COPY {uid} INBOX"));
        let copied = code_number(&reply.status, "COPYUID", 2)
            .unwrap_or_else(|| panic!("COPY: {}", reply.status));
        done.push((copied, body.to_vec()));
    }
    done
}

/// A power cut under serve-imap on a journaled ext4 (see `Mount::shut_down_without_flushing`)
/// loses nothing it acknowledged, half-writes nothing, and leaves a store the next server
/// serves at once, with no UID given twice.
#[test]
fn a_crash_of_the_disk_loses_no_acknowledged_append_or_copy() {
    crash_of_the_disk_under_appends_and_copies(&[]);
}

/// The same with ext4's fast commits, where an fsync writes a short log of the changes since
/// the last full commit instead of committing a transaction. The store counts on that log
/// holding every change made before the sync, not only the synced file's
/// (`src/store/commit_order.rs`): this is the test of that.
#[test]
fn a_crash_of_the_disk_with_fast_commits_loses_no_acknowledged_append_or_copy() {
    crash_of_the_disk_under_appends_and_copies(&["fast_commit"]);
}

/// Four clients APPEND and COPY into asterix's INBOX on an ext4 made with `features`, then
/// the disk is cut: what the server acknowledged must be there after the journal's replay.
fn crash_of_the_disk_under_appends_and_copies(features: &[&str]) {
    let scratch = TempStore::empty();
    let image = scratch.scratch().join("ext4.img");
    let root = scratch.scratch().join("ext4");
    let Some(mount) = Mount::ext4(&image, &root, features) else {
        return;
    };
    let store = root.join("store");
    demo_at(&store);
    // The demo store was copied without a sync: on the disk before anything begins.
    assert!(Command::new("sync").status().unwrap().success());
    // The journaled ext4 is where APPEND and COPY leave out the fsync of new/, counting on the
    // uidlist's sync (src/store/commit_order.rs): the case this test is for.
    let maildir = store.join("asterix");
    assert!(mailtool::store::commit_order::covers_maildir(&maildir));
    let before = disk(&maildir);
    let list_before = UidList::read(&maildir);
    let fast_before = features
        .contains(&"fast_commit")
        .then(|| fast_commit_counts(&root));
    let mut server = PopServer::start_imap(&store, &[]);

    // First four clients APPEND, and COPY every third message, for a second and at least 20
    // acknowledged messages.
    let stop = AtomicBool::new(false);
    let acknowledged = Mutex::new(BTreeMap::<u32, Vec<u8>>::new());
    let sent = Mutex::new(BTreeSet::<Vec<u8>>::new());
    thread::scope(|scope| {
        for client in 0..4 {
            let (server, stop, acknowledged, sent) = (&server, &stop, &acknowledged, &sent);
            scope.spawn(move || {
                let mut imap = login_select(server);
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = mail(&format!("crash {client} {i}"), 1500 + 37 * (i % 40));
                    sent.lock().unwrap().insert(body.clone());
                    let done = append_and_copy(&mut imap, &body, i % 3 == 0);
                    acknowledged.lock().unwrap().extend(done);
                }
            });
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1)
            || (acknowledged.lock().unwrap().len() < 20
                && started.elapsed() < Duration::from_secs(30))
        {
            thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let mut acknowledged = acknowledged.into_inner().unwrap();
    let mut sent = sent.into_inner().unwrap();
    // Then three sessions stop halfway through an APPEND's literal, a fourth APPENDs and
    // COPYs one more message, and the disk is cut the moment the COPY is acknowledged: no
    // other sync can have made durable what the last two left to the uidlist's.
    let mut halfway = Vec::new();
    for _ in 0..3 {
        let mut imap = login_select(&server);
        let body = mail("halfway", 64 * 1024);
        imap.send_raw(format!("h APPEND INBOX {{{}+}}\r\n", body.len()).as_bytes());
        imap.send_raw(&body[..body.len() / 2]);
        sent.insert(body);
        halfway.push(imap);
    }
    let mut last = login_select(&server);
    // A delivery as serve-smtp and `mbox deliver` make it (Delivery::commit), just before.
    let delivered = mail("delivered before the cut", 2500);
    let mut delivery = Store::new(&store)
        .mailbox(&UserName::parse("asterix").unwrap())
        .unwrap()
        .deliver()
        .unwrap();
    delivery.write_all(&delivered).unwrap();
    let delivered_as = delivery.commit().unwrap();
    sent.insert(delivered.clone());
    let body = mail("the last before the cut", 3000);
    sent.insert(body.clone());
    acknowledged.extend(append_and_copy(&mut last, &body, true));
    if let Some((commits_before, ineligible_before)) = fast_before {
        // ext4 counts the fast commits made and, apart, the syncs that could not be one.
        let (commits, ineligible) = fast_commit_counts(&root);
        let (commits, ineligible) = (commits - commits_before, ineligible - ineligible_before);
        eprintln!(
            "under APPEND and COPY: {commits} fast commits, {ineligible} full commits instead"
        );
        assert!(commits > 0, "no fast commit was made under APPEND and COPY");
    }
    mount.shut_down_without_flushing();
    drop(halfway);
    kill_9(&mut server);
    mount.remount(&image);

    assert!(
        acknowledged.len() >= 20,
        "only {} messages acknowledged before the cut",
        acknowledged.len()
    );
    let after = disk(&maildir);
    let list = UidList::read(&maildir);
    assert_uids_kept(&list_before, &list);
    // Nothing half-written: every file is one from before or a whole message sent.
    for (base, mail) in &after {
        match before.get(base) {
            Some(original) => assert!(mail == original, "{base} changed"),
            None => assert!(sent.contains(&mail.bytes), "{base} is not a whole message"),
        }
    }
    assert!(before.keys().all(|base| after.contains_key(base)));
    let base = delivered_as.base();
    let kept = after.get(base).expect("the delivery was lost in the crash");
    assert!(kept.bytes == delivered, "the delivery is not whole");
    // Everything acknowledged is there, under the UID the server gave.
    let by_uid: BTreeMap<u32, &String> = list.uids.iter().map(|(b, u)| (*u, b)).collect();
    for (uid, body) in &acknowledged {
        let base = by_uid
            .get(uid)
            .unwrap_or_else(|| panic!("UID {uid} was acknowledged, and lost in the crash"));
        let mail = after
            .get(*base)
            .unwrap_or_else(|| panic!("the file of UID {uid} was lost in the crash"));
        assert!(&mail.bytes == body, "UID {uid} holds another message");
    }
    eprintln!(
        "{} messages acknowledged before the cut, {} sent, {} new files after it",
        acknowledged.len(),
        sent.len(),
        after.len() - before.len()
    );

    // A fresh server on the recovered store agrees and hands out no UID again.
    let server = PopServer::start_imap(&store, &[]);
    let list_after = assert_server_agrees(&server, &maildir);
    assert_uids_kept(&list, &list_after);
    let mut imap = login_select(&server);
    for (uid, body) in acknowledged.iter().step_by(7) {
        assert!(imap.body(*uid) == *body, "UID {uid} served after the crash");
    }
    assert_next_uid_fresh(&server, list_after.highest());
}

/// An APPEND whose message another program numbered first (Dovecot with `mail_fsync =
/// never` appends the line and syncs nothing) still makes the message and that UID durable
/// before it answers: a power cut right after `number_added` keeps both, with and without
/// fast commits.
#[test]
fn a_crash_of_the_disk_keeps_a_message_another_program_numbered_first() {
    let scratch = TempStore::empty();
    for features in [&[][..], &["fast_commit"][..]] {
        let name = if features.is_empty() {
            "ext4"
        } else {
            "ext4-fc"
        };
        let image = scratch.scratch().join(format!("{name}.img"));
        let root = scratch.scratch().join(name);
        let Some(mount) = Mount::ext4(&image, &root, features) else {
            return;
        };
        let store = root.join("store");
        demo_at(&store);
        assert!(Command::new("sync").status().unwrap().success());
        let path = store.join("asterix");
        // Where one sync commits every earlier change: the uidlist's is then the only one.
        assert!(mailtool::store::commit_order::covers_maildir(&path));
        let before = UidList::read(&path);
        let maildir = Store::new(&store)
            .mailbox(&UserName::parse("asterix").unwrap())
            .unwrap();
        let body = mail("numbered by another program", 2000);
        let mut delivery = maildir.deliver().unwrap();
        delivery.write_all(&body).unwrap();
        let entry = delivery.link_as("", None).unwrap();
        // The other program's line, written and not synced.
        let uid = before.next + 5;
        let mut uidlist = fs::OpenOptions::new()
            .append(true)
            .open(path.join("dovecot-uidlist"))
            .unwrap();
        writeln!(uidlist, "{uid} :{}", entry.base()).unwrap();
        drop(uidlist);
        assert_eq!(
            maildir.number_added(std::slice::from_ref(&entry)).unwrap(),
            [uid]
        );
        mount.shut_down_without_flushing();
        mount.remount(&image);

        let list = UidList::read(&path);
        assert_uids_kept(&before, &list);
        assert_eq!(
            list.uids.get(entry.base()),
            Some(&uid),
            "{features:?}: the other program's UID was lost in the crash"
        );
        let after = disk(&path);
        let kept = after
            .get(entry.base())
            .unwrap_or_else(|| panic!("{features:?}: the message was lost in the crash"));
        assert!(kept.bytes == body, "{features:?}: the message is not whole");
    }
}

#[test]
fn only_an_ext4_with_its_journal_and_cache_flushes_is_trusted_to_commit_in_order() {
    on_ext4_without_and_with_a_journal(|root, journal| {
        assert_eq!(
            mailtool::store::commit_order::later_sync_covers_earlier_changes(root),
            journal,
            "ext4 with journal: {journal}"
        );
        if journal {
            // Without the cache flushes that order a commit after the data, it is not.
            let remounted = Command::new("mount")
                .args(["-o", "remount,nobarrier"])
                .arg(root)
                .status()
                .unwrap();
            assert!(remounted.success());
            thread::sleep(Duration::from_millis(1100));
            assert!(!mailtool::store::commit_order::later_sync_covers_earlier_changes(root));
        }
    });
}

/// Run `check` on a fresh loop-mounted ext4 without a journal, then on one with, given its
/// mount point and whether it has one; nothing where this test may not mount.
fn on_ext4_without_and_with_a_journal(mut check: impl FnMut(&Path, bool)) {
    let scratch = TempStore::empty();
    for journal in [false, true] {
        let image = scratch.scratch().join(format!("ext4-{journal}.img"));
        let root = scratch.scratch().join(format!("ext4-{journal}"));
        let features: &[&str] = if journal { &[] } else { &["^has_journal"] };
        let Some(_mount) = Mount::ext4(&image, &root, features) else {
            return;
        };
        check(&root, journal);
    }
}

/// The Maildir folders (`user/folder`) fsynced or fdatasynced in `trace`, the output of
/// `strace -y`, in order.
fn folders_synced(trace: &Path) -> Vec<String> {
    fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter_map(|line| {
            // 1234  fsync(3</…/store/asterix/new>) = 0
            let path = Path::new(line.split_once('<')?.1.split_once('>')?.0);
            if !fs::metadata(path).ok()?.is_dir() {
                return None;
            }
            let folder = path.file_name()?.to_str()?;
            let user = path.parent()?.file_name()?.to_str()?;
            Some(format!("{user}/{folder}"))
        })
        .collect()
}

/// `strace -f -y` of the fsyncs and fdatasyncs of `mailtool --store STORE`, into `trace`.
fn traced_mailtool(store: &Path, trace: &Path) -> Command {
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(trace)
        .arg(assert_cmd::cargo::cargo_bin("mailtool"))
        .arg("--store")
        .arg(store);
    command
}

/// The folders a `mailtool mbox deliver` of one message to asterix syncs.
fn folders_synced_by_a_delivery(store: &Path) -> Vec<String> {
    let trace = store.with_extension("deliver.strace");
    let output = support::output_with_stdin(
        traced_mailtool(store, &trace).args(["mbox", "deliver", "asterix"]),
        &mail("traced", 300),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    folders_synced(&trace)
}

/// The folders serve-smtp syncs for one message to asterix and obelix (the second a link of
/// the first's file: `Maildir::deliver_copy`).
fn folders_synced_by_an_smtp_delivery_to_two(store: &Path) -> Vec<String> {
    let trace = store.with_extension("smtp.strace");
    let server = PopServer::spawn_as(
        traced_mailtool(store, &trace),
        &["serve-smtp", "--port", "0"],
        &[],
    );
    support::python(
        "import smtplib, sys\n\
         s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
         refused = s.sendmail('t@example.org', ['asterix@localhost', 'obelix@localhost'],\n\
             'Subject: two\\r\\n\\r\\nfor both\\r\\n')\n\
         assert not refused, refused\n\
         s.quit()\n",
        [server.port().to_string()],
    );
    // The server runs under strace, which killed first would leave it running (and holding
    // the harness's pipes): kill the server, wait until strace has seen it end.
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid()))
        .expect("strace's children");
    for pid in children.split_whitespace() {
        assert!(Command::new("kill")
            .args(["-KILL", pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }
    drop(server);
    folders_synced(&trace)
}

#[test]
fn a_delivery_syncs_cur_too_where_the_file_system_does_not_commit_in_order() {
    // Another session may move a just-delivered message on from new/ to cur/ before the sync
    // of new/, which then makes durable its removal from new/, not its name in cur/. Only
    // where a later commit covers every earlier change does the sync of new/ alone suffice.
    if !support::have("strace") || !support::have("python3") {
        return;
    }
    on_ext4_without_and_with_a_journal(|root, journal| {
        let store = root.join("store");
        demo_at(&store);
        let expected: &[&str] = if journal {
            &["asterix/new"]
        } else {
            &["asterix/new", "asterix/cur"]
        };
        assert_eq!(
            folders_synced_by_a_delivery(&store),
            expected,
            "mbox deliver, ext4 with journal: {journal}"
        );
        let expected: &[&str] = if journal {
            &["asterix/new", "obelix/new"]
        } else {
            &["asterix/new", "asterix/cur", "obelix/new", "obelix/cur"]
        };
        assert_eq!(
            folders_synced_by_an_smtp_delivery_to_two(&store),
            expected,
            "serve-smtp, ext4 with journal: {journal}"
        );
    });
}

fn chmod_tree(path: &Path, dir_mode: u32, file_mode: u32) {
    let is_dir = fs::symlink_metadata(path).unwrap().is_dir();
    if is_dir {
        for entry in fs::read_dir(path).unwrap() {
            chmod_tree(&entry.unwrap().path(), dir_mode, file_mode);
        }
    }
    let mode = if is_dir { dir_mode } else { file_mode };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_store_serves_reads_and_refuses_writes_with_a_clear_no() {
    if !support::is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: running the server as nobody needs root");
        return;
    }
    let store = TempStore::demo();
    settle(&store.path(), "asterix");
    let maildir = store.path().join("asterix");
    // One message already marked \Deleted, so EXPUNGE has something to refuse.
    let victim = fs::read_dir(maildir.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    fs::rename(&victim, format!("{}T", victim.display())).unwrap();
    Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(store.scratch())
        .status()
        .unwrap();
    chmod_tree(&store.path(), 0o555, 0o444);
    let before = disk(&maildir);
    let uidlist = fs::read(maildir.join("dovecot-uidlist")).unwrap();

    let mut command = store.mailtool_std();
    support::as_nobody(&mut command);
    let server = PopServer::spawn_as(command, &["serve-imap", "--port", "0"], &[]);
    let mut imap = RawImap::connect(server.port());
    imap.ok("LOGIN asterix potion");
    let selected = imap.command("SELECT INBOX");
    assert!(
        selected.status.starts_with("OK [READ-ONLY]"),
        "{}",
        selected.status
    );
    let fetched = imap.ok("FETCH 1:* (UID FLAGS RFC822.SIZE)");
    assert_eq!(fetched.len(), before.len());
    let body = imap.body(1);
    assert!(!body.is_empty());
    // BODY[] on a read-only mailbox returns the message and sets nothing.
    assert!(!imap.ok("FETCH 2 BODY[]").is_empty());

    for (command, expected) in [
        ("STORE 1 +FLAGS (\\Flagged)", "NO"),
        ("EXPUNGE", "NO"),
        ("UID EXPUNGE 1:*", "NO"),
        ("CREATE Archive", "NO"),
    ] {
        let reply = imap.command(command);
        assert!(
            reply.status.starts_with(expected),
            "{command}: {}",
            reply.status
        );
        assert!(
            reply.status.contains("read-only") || reply.status.contains("permission"),
            "{command}: the text should say why: {}",
            reply.status
        );
    }
    let status = append_sized(&mut imap, "a", 500);
    assert!(status.starts_with("a NO"), "{status}");
    assert!(
        status.contains("read-only") || status.contains("permission"),
        "{status}"
    );
    imap.ok("NOOP");
    imap.ok("EXAMINE INBOX");
    imap.ok("FETCH 1 (FLAGS)");
    imap.ok("LOGOUT");
    assert_eq!(disk(&maildir), before);
    assert_eq!(fs::read(maildir.join("dovecot-uidlist")).unwrap(), uidlist);
    chmod_tree(&store.path(), 0o755, 0o644);
}

#[test]
fn mail_removed_or_renamed_by_another_program_answers_no_then_expunge() {
    let store = TempStore::demo();
    settle(&store.path(), "asterix");
    let maildir = store.path().join("asterix");
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = login_select(&server);
    let listing = imap.ok("FETCH 1:* (UID)");
    assert_eq!(listing.len(), 8);
    let list = UidList::read(&maildir);
    let path_of = |uid: u32| -> PathBuf {
        let base = list
            .uids
            .iter()
            .find(|(_, u)| **u == uid)
            .unwrap()
            .0
            .clone();
        fs::read_dir(maildir.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&base))
            .unwrap()
    };
    // 2 removed, 3 moved out of the Maildir, 4 given a flag by another program.
    fs::remove_file(path_of(2)).unwrap();
    fs::rename(path_of(3), store.scratch().join("moved-away")).unwrap();
    let renamed = path_of(4);
    let name = renamed.file_name().unwrap().to_str().unwrap();
    let (base, flags) = name.split_once(":2,").unwrap();
    fs::rename(
        &renamed,
        maildir.join("cur").join(format!("{base}:2,F{flags}")),
    )
    .unwrap();

    for number in [2, 3] {
        let reply = imap.command(&format!("FETCH {number} BODY.PEEK[]"));
        assert!(reply.status.starts_with("NO"), "{number}: {}", reply.status);
        // No EXPUNGE during a FETCH (RFC 3501 7.4.1).
        assert!(
            !reply.untagged.iter().any(|l| l.ends_with(b"EXPUNGE\r\n")),
            "{:?}",
            reply.untagged
        );
    }
    let reply = imap.command("FETCH 4 (FLAGS BODY.PEEK[])");
    assert!(reply.status.starts_with("OK"), "{}", reply.status);
    let text: Vec<String> = reply
        .untagged
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(text.iter().any(|l| l.contains("\\Flagged")), "{text:?}");
    // The session goes on, and the next command that may report expunges does.
    let noop = imap.ok("NOOP");
    let expunged: Vec<String> = noop
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| l.ends_with("EXPUNGE\r\n"))
        .collect();
    assert_eq!(expunged, ["* 3 EXPUNGE\r\n", "* 2 EXPUNGE\r\n"]);
    assert_eq!(imap.ok("FETCH 1:* (UID)").len(), 6);
    assert_eq!(imap.uids("ALL"), [1, 4, 5, 6, 7, 8]);
    imap.ok("LOGOUT");
}

/// Run a command as `uid`:`gid` (the owner Dovecot gave the store).
fn as_user(command: &mut Command, uid: u32, gid: u32) {
    // SAFETY: setgid/setuid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// UID to (flag letters, subject) over IMAP, and UIDVALIDITY.
fn subjects(port: u16) -> (u32, BTreeMap<u32, (String, String)>) {
    let mut imap = RawImap::connect(port);
    imap.ok("LOGIN asterix potion");
    let selected = imap.ok("SELECT INBOX");
    let validity = selected
        .iter()
        .find_map(|l| number_after(&String::from_utf8_lossy(l), "[UIDVALIDITY "))
        .expect("UIDVALIDITY");
    let mut messages = BTreeMap::new();
    for line in imap.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") {
        let line = String::from_utf8_lossy(&line).into_owned();
        let uid = number_after(&line, "UID ").unwrap();
        let flags = letters(list_after(&line, "FLAGS (").unwrap());
        let subject = line
            .split("Subject: ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .unwrap_or("")
            .to_owned();
        messages.insert(uid, (flags, subject));
    }
    imap.ok("LOGOUT");
    (validity, messages)
}

#[test]
fn four_programs_on_one_store_agree_afterwards() {
    let store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    // Dovecot runs mail processes as the store's owner (`mail` when the tests run as root);
    // ours run as that user too, as they would on a server where both share the store.
    let (uid, gid) = {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(store.path().join("asterix")).unwrap();
        (meta.uid(), meta.gid())
    };
    let spawn = |serve: &[&str]| {
        let mut command = store.mailtool_std();
        as_user(&mut command, uid, gid);
        PopServer::spawn_as(command, serve, &[])
    };
    let imap_server = spawn(&["serve-imap", "--port", "0"]);
    let pop_server = spawn(&["serve-pop", "--port", "0"]);
    let deadline = Instant::now() + Duration::from_secs(20);

    // Each IMAP worker appends its own mails, marks some \Seen and expunges every fifth of
    // its own; it returns what it appended and what it expunged.
    let imap_worker = |port: u16, who: &'static str| {
        move || {
            let mut appended = Vec::new();
            let mut expunged = Vec::new();
            let mut imap = RawImap::login(port, "asterix", "potion");
            for round in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                let subject = format!("{who} {round}");
                imap.append("", mail(&subject, 600 + round * 7));
                appended.push(subject.clone());
                let listing = imap.ok("UID FETCH 1:* (FLAGS)");
                assert!(!listing.is_empty());
                imap.ok(&format!("STORE {} +FLAGS (\\Seen)", 1 + round % 4));
                if round % 5 == 4 {
                    let found = imap.uids(&format!("SUBJECT \"{subject}\""));
                    assert_eq!(found.len(), 1, "{subject}: {found:?}");
                    imap.ok(&format!("UID STORE {} +FLAGS (\\Deleted)", found[0]));
                    imap.ok(&format!("UID EXPUNGE {}", found[0]));
                    expunged.push(subject);
                }
                thread::sleep(Duration::from_millis(20));
            }
            imap.ok("LOGOUT");
            (appended, expunged)
        }
    };

    let (ours, theirs, delivered, pop_sessions) = thread::scope(|scope| {
        let ours = scope.spawn(imap_worker(imap_server.port(), "ours"));
        let theirs = scope.spawn(imap_worker(dovecot.imap_port, "dovecot"));
        let delivering = scope.spawn(|| {
            let mut delivered = Vec::new();
            for i in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                let subject = format!("delivered {i}");
                let file = store.scratch().join(format!("deliver-{i}.eml"));
                fs::write(&file, mail(&subject, 900)).unwrap();
                let mut command = store.mailtool_std();
                as_user(&mut command, uid, gid);
                let output = command
                    .args(["mbox", "deliver", "asterix"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                delivered.push(subject);
                thread::sleep(Duration::from_millis(100));
            }
            delivered
        });
        let popping = scope.spawn(|| {
            let mut sessions = 0;
            while Instant::now() < deadline {
                let mut pop = pop_server.connect();
                let reply = pop.try_login("asterix", "potion");
                if reply.starts_with("+OK") {
                    let (count, _) = pop.stat();
                    if count > 0 {
                        let (status, _) = pop.retr_bytes(1 + sessions % count);
                        assert!(status.starts_with("+OK"), "{status}");
                    }
                    sessions += 1;
                } else {
                    // Another POP3 session of ours holds the maildrop lock: fine.
                    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
                }
                assert!(pop.command("QUIT").starts_with("+OK"));
                thread::sleep(Duration::from_millis(150));
            }
            sessions
        });
        (
            ours.join().unwrap(),
            theirs.join().unwrap(),
            delivering.join().unwrap(),
            popping.join().unwrap(),
        )
    });

    let mut all: Vec<String> = Vec::new();
    all.extend(delivered.iter().cloned());
    all.extend(ours.0.iter().cloned());
    all.extend(theirs.0.iter().cloned());
    let gone: BTreeSet<&String> = ours.1.iter().chain(theirs.1.iter()).collect();
    let expected: BTreeSet<String> = all.into_iter().filter(|s| !gone.contains(s)).collect();

    let (our_validity, our_view) = subjects(imap_server.port());
    let (their_validity, their_view) = subjects(dovecot.imap_port);
    assert_eq!(our_validity, their_validity, "UIDVALIDITY");
    assert_eq!(
        our_view, their_view,
        "serve-imap and Dovecot disagree on UIDs, flags or mails"
    );
    let seen: Vec<&String> = our_view.values().map(|(_, s)| s).collect();
    let unique: BTreeSet<&String> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "a mail is there twice");
    // The demo store's own eight mails are there too.
    assert_eq!(our_view.len(), expected.len() + 8);
    for subject in &expected {
        assert!(unique.contains(subject), "{subject} was lost");
    }
    eprintln!(
        "{} delivered, {} + {} appended, {} expunged, {} POP3 sessions; {} mails after",
        delivered.len(),
        ours.0.len(),
        theirs.0.len(),
        gone.len(),
        pop_sessions,
        our_view.len()
    );

    let log = imap_server.stderr() + &pop_server.stderr();
    assert!(!log.contains("error"), "{log}");
    let dovecot_log = dovecot.log();
    for word in ["Error", "Warning", "Panic", "Fatal", "Corrupt"] {
        assert!(!dovecot_log.contains(word), "{dovecot_log}");
    }
}
