//! Stores for the benches, written fast: users through the store module (so the passwd file
//! and Maildir layout are mailtool's), messages as files written straight into `cur/` or
//! `new/` with Dovecot-style names (`,S=` and `,W=` sizes), no sync, as a bulk import would.
//! A store of 64 x 100 messages takes well under a second; one delivery per message, synced,
//! would take minutes. [`deliver`] is the delivery agent of the IDLE benches.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mailtool::store::{Store, UserName};

/// A message of exactly `size` octets with LF line ends, as a mail client would deliver it,
/// with Message-ID `<user.n@bench.example.org>`.
pub fn message(user: usize, n: usize, size: usize) -> Vec<u8> {
    let mut text = format!(
        "Return-Path: <sender@example.org>\nFrom: Sender <sender@example.org>\n\
         To: user{user} <user{user}@example.org>\nSubject: load test message {n}\n\
         Date: Tue, 14 Nov 2023 23:13:21 +0100\nMessage-ID: <{user}.{n}@bench.example.org>\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again. 0123\n";
    while text.len() + line.len() < size {
        text.extend_from_slice(line);
    }
    let rest = size.saturating_sub(text.len()).max(1);
    text.extend(std::iter::repeat_n(b'x', rest - 1));
    text.push(b'\n');
    text
}

/// The Maildir base name of the `n`th message of a bulk write: delivery order is `n` order.
fn base_name(n: usize, message: &[u8]) -> String {
    let lfs = message.iter().filter(|&&b| b == b'\n').count();
    let crlfs = memchr::memmem::find_iter(message, b"\r\n").count();
    format!(
        "{}.M{}P1Q{n}.bench,S={},W={}",
        1_700_000_000 + n / 1_000_000,
        n % 1_000_000,
        message.len(),
        message.len() + lfs - crlfs
    )
}

/// Add `user` with `password` to the store and return its Maildir's path.
pub fn add_user(store: &Store, user: &str, password: &str) -> PathBuf {
    let name = UserName::parse(user).unwrap();
    store.add_user(&name, password).unwrap();
    store.mailbox(&name).unwrap().path().to_owned()
}

/// Write message number `n` into `maildir`: into `cur/` with `flags` (`Some("S")`, or
/// `Some("")` for none), or into `new/` (`None`). Returns the file's path.
pub fn write(maildir: &Path, n: usize, message: &[u8], flags: Option<&str>) -> PathBuf {
    let base = base_name(n, message);
    let path = match flags {
        Some(flags) => maildir.join("cur").join(format!("{base}:2,{flags}")),
        None => maildir.join("new").join(base),
    };
    fs::write(&path, message).unwrap();
    path
}

/// `users` users (`user0`.. with password `pass0`..), each with `messages` messages of
/// `size` octets in `cur/`, all seen but the last `unseen`. Returns (user, password) pairs.
pub fn build(
    root: &Path,
    users: usize,
    messages: usize,
    size: usize,
    unseen: usize,
) -> Vec<(String, String)> {
    let store = Store::new(root);
    let mut all = Vec::new();
    for user in 0..users {
        let (name, password) = (format!("user{user}"), format!("pass{user}"));
        let maildir = add_user(&store, &name, &password);
        for n in 0..messages {
            let flags = if n + unseen >= messages { "" } else { "S" };
            write(&maildir, n, &message(user, n, size), Some(flags));
        }
        all.push((name, password));
    }
    all
}

/// Deliver `message` into `maildir/new` as a delivery agent does (write in `tmp/`, rename),
/// owned like the Maildir (Dovecot's mail processes run as `mail`), not synced: the benches
/// time servers, not the disk under the deliverer.
pub fn deliver(maildir: &Path, message: &[u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let q = COUNTER.fetch_add(1, Ordering::Relaxed);
    let lfs = message.iter().filter(|&&b| b == b'\n').count();
    let name = format!(
        "{}.M{}P{}Q{q}.bench,S={},W={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        message.len(),
        message.len() + lfs
    );
    let tmp = maildir.join("tmp").join(&name);
    let mut file = fs::File::create(&tmp).unwrap();
    file.write_all(message).unwrap();
    drop(file);
    let owner = fs::metadata(maildir).unwrap();
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).unwrap();
    fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
}
