//! UIDs as Dovecot keeps them for a Maildir: `dovecot-uidlist` (version 3), read and written
//! under the `dovecot-uidlist.lock` dotlock, new entries appended, rewrites through a
//! temporary file and rename, so that UIDs assigned here are the ones Dovecot shows and the
//! reverse. Also where a session takes mail from `new/` into `cur/`: the session whose rename
//! succeeds is the one that sees the mail `\Recent`, as with Dovecot.
//!
//! The format, as Dovecot 2.3's `maildir-uidlist.c` reads and writes it:
//!
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex> [other header fields]
//! <uid> [<ext field>...] :<base file name, without ":2,flags">
//! ```
//!
//! Extension fields are a capital letter and a value (`S<size>`, `W<vsize>`, `G<guid>`, ...);
//! they are kept as they are. Writers append lines at the end, so a reader takes NEXTUID as
//! the larger of `N` and the last UID + 1. A rewrite (which drops the lines of messages that
//! are gone) goes to `dovecot-uidlist.tmp`, is synced and renamed over the file.
//!
//! Crash safety: a line counts only once its line end is written, as with Dovecot's reader;
//! a torn last line is left out (its UID is still never used again) and the file is then
//! rewritten rather than appended to. A new mailbox's UIDVALIDITY comes from the user's
//! `dovecot-uidvalidity` file as Dovecot draws it, so it is unique among the user's mailboxes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::commit_order;
use super::lock::{self, DotLock, DotLockSettings};
use super::maildir::Folder;
use super::snapshot_cache::{self, Evidence};
use super::{Maildir, MessageEntry, Result, StoreError};

const UIDLIST: &str = "dovecot-uidlist";
const UIDLIST_TMP: &str = "dovecot-uidlist.tmp";
const UIDVALIDITY: &str = "dovecot-uidvalidity";

/// Dovecot's `MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT` (2 minutes), and its wait: that plus 2 s.
pub(crate) const UIDLIST_LOCK: DotLockSettings = DotLockSettings {
    stale_timeout: Duration::from_secs(120),
    timeout: Duration::from_secs(122),
    pid_written_at_once: true,
};

/// Rewrite rather than append once this share (in percent) of the lines name files that are
/// gone (Dovecot's `UIDLIST_COMPRESS_PERCENTAGE`).
const COMPRESS_PERCENTAGE: usize = 75;

/// A message with its UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidMessage {
    pub uid: u32,
    pub entry: MessageEntry,
    /// This sync moved the message from `new/` to `cur/`, so this session sees it `\Recent`.
    pub recent: bool,
}

/// A Maildir's messages with their UIDs, in UID order.
///
/// The list is shared, not copied: the snapshot kept for a large mailbox and every session
/// that selected it hold the same one until a session changes something in it
/// ([`Arc::make_mut`]), so a SELECT served from that snapshot allocates nothing per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Arc<Vec<UidMessage>>,
}

/// What [`Maildir::sync_new_uids`] found.
#[derive(Debug)]
pub enum NewOnly {
    /// The messages in `new/` (moved into `cur/` when asked), with their UIDs.
    Found(Snapshot),
    /// Both folders must be listed; `recent` names the messages this look already took into
    /// `cur/`, recent to the caller.
    ListAll { recent: HashSet<String> },
}

/// Cheap evidence of whether a Maildir changed: the modification times of `new/` and `cur/`.
/// [`ChangeStamp::is_settled`] is false while a change may still hide inside the same tick,
/// and the caller must sync anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    new_mtime_ns: i128,
    cur_mtime_ns: i128,
    new_settled: bool,
    cur_settled: bool,
}

impl ChangeStamp {
    /// Whether an equal stamp later proves that nothing changed in between.
    pub fn is_settled(&self) -> bool {
        self.new_settled && self.cur_settled
    }

    /// The stamp to keep after a change of the caller's own, between `before` and `self`
    /// (taken after it), to a Maildir it last saw as `recorded`: `self`'s time for a folder
    /// the change moved, `recorded`'s (time and settledness) for one it left alone, so that
    /// a folder unsettled when last seen is not taken as settled now.
    pub fn after_own_change(&self, before: &ChangeStamp, recorded: &ChangeStamp) -> ChangeStamp {
        let mut kept = *self;
        if self.new_mtime_ns == before.new_mtime_ns {
            (kept.new_mtime_ns, kept.new_settled) = (recorded.new_mtime_ns, recorded.new_settled);
        }
        if self.cur_mtime_ns == before.cur_mtime_ns {
            (kept.cur_mtime_ns, kept.cur_settled) = (recorded.cur_mtime_ns, recorded.cur_settled);
        }
        kept
    }

    /// Whether `folder` is the same in `self`, taken now, as in `earlier`: the same time,
    /// settled in both or in neither, and settled unless `trust_unsettled` (a caller that
    /// accepts that a change in the same tick as the earlier look shows only later).
    pub fn unchanged_since(
        &self,
        earlier: &ChangeStamp,
        folder: Folder,
        trust_unsettled: bool,
    ) -> bool {
        let (now, then) = match folder {
            Folder::New => (
                (self.new_mtime_ns, self.new_settled),
                (earlier.new_mtime_ns, earlier.new_settled),
            ),
            Folder::Cur => (
                (self.cur_mtime_ns, self.cur_settled),
                (earlier.cur_mtime_ns, earlier.cur_settled),
            ),
        };
        now == then && (now.1 || trust_unsettled)
    }
}

/// One line of the uidlist.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    uid: u32,
    /// The extension fields, space-separated, exactly as read (usually empty).
    ext: String,
    base: String,
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UidList {
    /// The file exists with a usable header.
    exists: bool,
    uid_validity: u32,
    next_uid: u32,
    guid: Option<String>,
    /// Header fields other than V, N and G, kept for rewrites.
    other_header: String,
    /// In UID order.
    records: Vec<Record>,
    /// The file may not be appended to (torn or broken lines, old version, no GUID).
    needs_rewrite: bool,
}

impl UidList {
    /// Parse tolerantly: what cannot be read is left out and marks the file for a rewrite;
    /// no UID read (even from a torn line) is ever handed out again.
    fn parse(text: &str) -> UidList {
        let mut list = UidList {
            next_uid: 1,
            ..UidList::default()
        };
        if text.is_empty() {
            return list;
        }
        let mut lines = text.split_inclusive('\n');
        let header = lines.next().unwrap_or("");
        match header.strip_suffix('\n').and_then(parse_header) {
            Some(h) => {
                list.exists = true;
                list.uid_validity = h.uid_validity;
                list.next_uid = h.next_uid;
                list.needs_rewrite = h.guid.is_none() || h.version != 3;
                list.guid = h.guid;
                list.other_header = h.other;
            }
            None => list.needs_rewrite = true,
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut max_uid = 0u32;
        for line in lines {
            let complete = line.strip_suffix('\n');
            let Some((uid, ext, base)) = complete.and_then(parse_record) else {
                // A torn or broken line: leave it out, but never reuse a UID it may carry.
                let digits = line.bytes().take_while(u8::is_ascii_digit).count();
                if let Ok(uid) = line[..digits].parse::<u32>() {
                    if uid < u32::MAX {
                        max_uid = max_uid.max(uid);
                    }
                }
                list.needs_rewrite = true;
                continue;
            };
            if uid <= max_uid {
                // Out of order: Dovecot takes the file as broken; keep what came first.
                list.needs_rewrite = true;
                continue;
            }
            max_uid = uid;
            if let Some(&old) = index.get(base) {
                // The same file twice (moved back after an expunge): the later UID wins.
                list.records[old].uid = 0;
                list.needs_rewrite = true;
            }
            index.insert(base, list.records.len());
            list.records.push(Record {
                uid,
                ext: ext.to_owned(),
                base: base.to_owned(),
            });
        }
        list.records.retain(|r| r.uid != 0);
        list.next_uid = list.next_uid.max(max_uid.saturating_add(1));
        list
    }

    /// Base file name to UID.
    fn index(&self) -> HashMap<&str, u32> {
        self.records
            .iter()
            .map(|r| (r.base.as_str(), r.uid))
            .collect()
    }

    /// The listed messages that have a UID, in UID order.
    fn snapshot(
        &self,
        uids: &HashMap<&str, u32>,
        entries: Vec<MessageEntry>,
        recent: &HashSet<String>,
    ) -> Snapshot {
        snapshot(
            self.uid_validity,
            self.next_uid,
            |base| uids.get(base).copied(),
            entries,
            recent,
        )
    }

    fn header_line(&self) -> String {
        let mut line = format!(
            "3 V{} N{} G{}",
            self.uid_validity,
            self.next_uid,
            self.guid.as_deref().unwrap_or_default()
        );
        if !self.other_header.is_empty() {
            line.push(' ');
            line.push_str(&self.other_header);
        }
        line.push('\n');
        line
    }
}

/// The listed messages that have a UID (`uid_of` their base name, asked once per entry, in
/// order), in UID order.
fn snapshot(
    uid_validity: u32,
    uid_next: u32,
    mut uid_of: impl FnMut(&str) -> Option<u32>,
    entries: Vec<MessageEntry>,
    recent: &HashSet<String>,
) -> Snapshot {
    let mut messages = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(uid) = uid_of(entry.base()) else {
            continue;
        };
        let is_recent = !recent.is_empty() && recent.contains(entry.base());
        messages.push(UidMessage {
            uid,
            entry,
            recent: is_recent,
        });
    }
    // Stable, so that the same message under two names (new/ and cur/ mid-rename) is kept
    // once, as listed first (new/ is listed first).
    messages.sort_by_key(|m| m.uid);
    messages.dedup_by_key(|m| m.uid);
    Snapshot {
        uid_validity,
        uid_next,
        messages: Arc::new(messages),
    }
}

/// A fast hash of base names (a folded multiply per word, as foldhash and wyhash do):
/// hashing the names of a large mailbox with SipHash costs more than listing it. Lookups
/// trust a matching 64-bit hash only after comparing the name, so a collision (FxHash's
/// rotate-and-multiply gave one within 100,000 names like ours) only costs a full parse.
/// The names come from the user's own Maildir, so the worst a crafted set of names can do
/// is slow down that user's own sessions.
#[derive(Default, Clone, Copy)]
struct NameHasher(u64);

impl NameHasher {
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word ^ 0x243f_6a88_85a3_08d3)
            * u128::from(0x9e37_79b9_7f4a_7c15_u64);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 octets")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of a base name.
fn name_hash(name: &str) -> u64 {
    use std::hash::Hasher;
    let mut hasher = NameHasher(name.len() as u64);
    hasher.write(name.as_bytes());
    hasher.finish()
}

/// A hasher for keys that are hashes already.
#[derive(Default, Clone, Copy)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A clean uidlist read for lookups only. Its map holds, per base name's hash, the UID and
/// where the name is in the file's text (nothing is copied); a lookup checks the name there.
/// Small entries with no pointer to follow but one: at 100,000 messages, lookups in a map
/// of `&str` keys spent most of a SELECT waiting for memory.
struct QuickList<'a> {
    uid_validity: u32,
    next_uid: u32,
    text: &'a str,
    /// Name hash to (UID, offset of the name in `text`, its length).
    uids: HashMap<u64, (u32, u32, u32), std::hash::BuildHasherDefault<Prehashed>>,
}

impl QuickList<'_> {
    fn uid_of(&self, base: &str) -> Option<u32> {
        let &(uid, start, len) = self.uids.get(&name_hash(base))?;
        let at = start as usize;
        (self.text.get(at..at + len as usize) == Some(base)).then_some(uid)
    }
}

/// Read `text` as [`UidList::parse`] does, but only when nothing in it would need a rewrite
/// (version 3 with a GUID, every line whole and readable, UIDs ascending, no name twice):
/// then no record is copied. `None` sends the caller to the full parse (as does the rare
/// pair of names with one hash).
fn quick_parse(text: &str) -> Option<QuickList<'_>> {
    let body = text.strip_suffix('\n')?;
    let mut lines = body.split('\n');
    let header = parse_header(lines.next()?)?;
    if header.version != 3 || header.guid.is_none() {
        return None;
    }
    let mut uids = HashMap::with_capacity_and_hasher(body.len() / 40, Default::default());
    let mut max_uid = 0;
    for line in lines {
        let (uid, _, base) = parse_record(line)?;
        // `base` is a slice of `text`: its offset is its pointer's distance from the start.
        let start = u32::try_from(base.as_ptr() as usize - text.as_ptr() as usize).ok()?;
        let len = u32::try_from(base.len()).ok()?;
        if uid <= max_uid || uids.insert(name_hash(base), (uid, start, len)).is_some() {
            return None;
        }
        max_uid = uid;
    }
    Some(QuickList {
        uid_validity: header.uid_validity,
        next_uid: header.next_uid.max(max_uid.saturating_add(1)),
        text,
        uids,
    })
}

/// [`NewLines::tail`] reads this much of the uidlist's end, and its first line from up to
/// this much of its start.
const TAIL: usize = 64 * 1024;

/// What the uidlist says of the messages a look found in `new/`, for a session whose newest
/// UID is `newest`: the mailbox's UIDVALIDITY and next UID, and each message's UID if it has
/// one. Only given when every line numbered above `newest` names one of those messages:
/// a message numbered meanwhile that is not in `new/` (another session took it into
/// `cur/`) must be found by a listing of `cur/` before any newer UID is announced, or the
/// session could never show it (UIDs only grow).
#[derive(Debug, PartialEq, Eq)]
struct NewLines {
    uid_validity: u32,
    next_uid: u32,
    uids: Vec<Option<u32>>,
}

impl NewLines {
    /// Read a whole uidlist. `None` when it is not version 3 with a GUID, a line does not
    /// parse or runs out of order, or a line above `newest` names another message. With
    /// `newest` at `u32::MAX` it only finds the UIDs, for a caller about to append lines:
    /// `None` then says the file may not be appended to (the full parse rewrites it); a name
    /// listed twice does not stop an append (the next full parse rewrites the file).
    fn whole(text: &str, bases: &[&str], newest: u32) -> Option<NewLines> {
        let body = text.strip_suffix('\n')?;
        let (first, lines) = body.split_once('\n').unwrap_or((body, ""));
        NewLines::scan(first, lines, true, bases, newest)
    }

    /// Read the first line and the last [`TAIL`] octets of a uidlist of `size` octets with
    /// `read_at`: lines are appended in UID order, so what was numbered since the session's
    /// newest UID is at the end, and a look at `new/` need not read 100,000 lines. `None`
    /// when the file is small, the part read does not reach back to `newest`, a message
    /// has no line there, or as for [`NewLines::whole`]: the caller reads it whole.
    fn tail(
        size: usize,
        bases: &[&str],
        newest: u32,
        read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    ) -> io::Result<Option<NewLines>> {
        if size <= 2 * TAIL {
            return Ok(None);
        }
        let read_exact_at = |len: usize, offset: usize| -> io::Result<Option<Vec<u8>>> {
            let mut buf = vec![0; len];
            let mut done = 0;
            while done < len {
                match read_at(&mut buf[done..], (offset + done) as u64)? {
                    0 => return Ok(None),
                    n => done += n,
                }
            }
            Ok(Some(buf))
        };
        let (Some(head), Some(tail)) = (read_exact_at(TAIL, 0)?, read_exact_at(TAIL, size - TAIL)?)
        else {
            return Ok(None);
        };
        let Some(first) = head
            .split(|&b| b == b'\n')
            .next()
            .filter(|l| l.len() < head.len())
        else {
            return Ok(None);
        };
        // From the first whole line on (the one the read began in may be cut); the last line
        // must be whole.
        let Some(start) = tail.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let Some(body) = tail[start + 1..].strip_suffix(b"\n") else {
            return Ok(None);
        };
        let (Ok(first), Ok(body)) = (std::str::from_utf8(first), std::str::from_utf8(body)) else {
            return Ok(None);
        };
        let found = NewLines::scan(first, body, false, bases, newest)
            .filter(|found| found.uids.iter().all(Option::is_some));
        Ok(found)
    }

    /// The header `first` and the lines of `body` (`whole`: all of them; else the file's
    /// last ones, which must begin at or below `newest`).
    fn scan(first: &str, body: &str, whole: bool, bases: &[&str], newest: u32) -> Option<NewLines> {
        let header = parse_header(first)?;
        if header.version != 3 || header.guid.is_none() {
            return None;
        }
        let index: HashMap<&str, usize> = if bases.len() > FEW {
            bases.iter().enumerate().map(|(i, &b)| (b, i)).collect()
        } else {
            HashMap::new()
        };
        let slot_of = |base: &str| {
            if bases.len() > FEW {
                index.get(base).copied()
            } else {
                bases.iter().position(|&b| b == base)
            }
        };
        let mut uids = vec![None; bases.len()];
        let mut max_uid = 0;
        let mut reaches_back = whole;
        for line in body.split('\n').filter(|_| !body.is_empty()) {
            let (uid, _, base) = parse_record(line)?;
            if uid <= max_uid {
                return None;
            }
            reaches_back |= max_uid == 0 && uid <= newest;
            max_uid = uid;
            match slot_of(base) {
                // The last line naming a message counts, as in the full parse.
                Some(slot) => uids[slot] = Some(uid),
                None if uid > newest => return None,
                None => {}
            }
        }
        reaches_back.then(|| NewLines {
            uid_validity: header.uid_validity,
            next_uid: header.next_uid.max(max_uid.saturating_add(1)),
            uids,
        })
    }
}

/// Up to this many messages, [`Maildir::assign_uids`] looks them up by comparing each line's
/// name with theirs ([`NewLines::whole`]), and [`NewLines::scan`] without a map.
const FEW: usize = 8;

fn push_record(out: &mut String, record: &Record) {
    use std::fmt::Write as _;
    let _ = write!(out, "{}", record.uid);
    if !record.ext.is_empty() {
        out.push(' ');
        out.push_str(&record.ext);
    }
    out.push_str(" :");
    out.push_str(&record.base);
    out.push('\n');
}

struct Header {
    version: u32,
    uid_validity: u32,
    next_uid: u32,
    guid: Option<String>,
    other: String,
}

fn parse_header(line: &str) -> Option<Header> {
    let (version, rest) = line.split_once(' ')?;
    match version {
        "1" => {
            // Version 1: "1 <uidvalidity> <nextuid>"; read, then rewritten as version 3.
            let mut fields = rest.split(' ');
            let uid_validity = fields.next()?.parse().ok().filter(|&v| v != 0)?;
            let next_uid = fields.next()?.parse().ok().filter(|&n| n != 0)?;
            Some(Header {
                version: 1,
                uid_validity,
                next_uid,
                guid: None,
                other: String::new(),
            })
        }
        "3" => {
            let (mut uid_validity, mut next_uid, mut guid) = (0u32, 0u32, None);
            let mut other = Vec::new();
            for field in rest.split(' ').filter(|f| !f.is_empty()) {
                let (key, value) = field.split_at(field.chars().next()?.len_utf8());
                match key {
                    "V" => uid_validity = value.parse().ok()?,
                    "N" => next_uid = value.parse().ok()?,
                    "G" => {
                        if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return None;
                        }
                        guid = Some(value.to_owned());
                    }
                    _ => other.push(field),
                }
            }
            (uid_validity != 0 && next_uid != 0).then(|| Header {
                version: 3,
                uid_validity,
                next_uid,
                guid,
                other: other.join(" "),
            })
        }
        _ => None,
    }
}

/// `<uid> [ext...] :<base>` as (uid, ext fields, base).
fn parse_record(line: &str) -> Option<(u32, &str, &str)> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let uid: u32 = line[..digits]
        .parse()
        .ok()
        .filter(|&u| u != 0 && u != u32::MAX)?;
    let rest = line[digits..].strip_prefix(' ')?.trim_start_matches(' ');
    let (ext, base) = if let Some(base) = rest.strip_prefix(':') {
        ("", base)
    } else {
        let at = rest.find(" :")?;
        let ext = rest[..at].trim_end_matches(' ');
        if !ext
            .split(' ')
            .filter(|f| !f.is_empty())
            .all(|f| f.as_bytes()[0].is_ascii_uppercase())
        {
            return None;
        }
        (ext, &rest[at + 2..])
    };
    if base.is_empty() || base.contains('/') || base.contains(':') {
        return None;
    }
    Some((uid, ext, base))
}

/// A 128-bit mailbox GUID as 32 hex digits.
fn new_guid() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: bytes is valid for 16 writable bytes.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // No randomness: time, pid and a counter are unique enough for a mailbox GUID.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..12].copy_from_slice(&now.to_le_bytes()[..12]);
        bytes[12..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32)
        .max(1)
}

/// The next UIDVALIDITY of a user's mailbox, drawn as Dovecot's `mailbox_uidvalidity_next`
/// does: `dovecot-uidvalidity` in the user's Maildir holds the last value in hex, and the
/// empty file `dovecot-uidvalidity.<hex>` is renamed to the next value, which makes the draw
/// atomic between processes. The first value is the current time.
fn next_uid_validity(user_root: &Path) -> u32 {
    let main = user_root.join(UIDVALIDITY);
    let marker = |value: u32| user_root.join(format!("{UIDVALIDITY}.{value:08x}"));
    let write_main = |value: u32| {
        let _ = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&main)
            .and_then(|mut f| f.write_all(format!("{value:08x}").as_bytes()));
    };
    let rename_from = |mut value: u32| -> Option<u32> {
        for _ in 0..10 {
            let next = value.wrapping_add(1).max(1);
            match fs::rename(marker(value), marker(next)) {
                Ok(()) => return Some(next),
                // Another process drew it first: try the next one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => value = next,
                Err(_) => return None,
            }
        }
        None
    };
    let stored = fs::read_to_string(&main)
        .ok()
        .and_then(|t| u32::from_str_radix(t.get(..8.min(t.len()))?.trim(), 16).ok())
        .filter(|&v| v != 0);
    if let Some(value) = stored.and_then(rename_from) {
        write_main(value);
        return value;
    }
    // Rescan for marker files, as Dovecot does when the main file is missing or wrong.
    let prefix = format!("{UIDVALIDITY}.");
    let mut found: Vec<u32> = fs::read_dir(user_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            u32::from_str_radix(name.strip_prefix(&prefix)?, 16).ok()
        })
        .collect();
    found.sort_unstable();
    if let (Some(&min), Some(&max)) = (found.first(), found.last()) {
        if min != max {
            let _ = fs::remove_file(marker(min));
        }
        if let Some(value) = rename_from(max) {
            write_main(value);
            return value;
        }
    }
    let mut value = unix_now();
    for _ in 0..10 {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(marker(value))
        {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => value = value.wrapping_add(1),
            Err(_) => break,
        }
    }
    write_main(value);
    value
}

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

impl Maildir {
    fn uidlist_path(&self) -> PathBuf {
        self.path().join(UIDLIST)
    }

    /// The user's Maildir, where `dovecot-uidvalidity` lives: the parent of a Maildir++
    /// folder (`.Name` holding `maildirfolder`), else this Maildir.
    fn user_root(&self) -> &Path {
        let root = self.path();
        let is_folder = root
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
            && root.join("maildirfolder").exists();
        match root.parent() {
            Some(parent) if is_folder => parent,
            _ => root,
        }
    }

    fn read_uidlist(&self) -> Result<UidList> {
        let bytes = self.read_uidlist_bytes()?.unwrap_or_default();
        Ok(UidList::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The uidlist's octets; `None` when there is none.
    fn read_uidlist_bytes(&self) -> Result<Option<Vec<u8>>> {
        let path = self.uidlist_path();
        match super::no_atime::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// Append `records` to the uidlist (under the lock) in one write, and sync it.
    fn append_to_uidlist(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let path = self.uidlist_path();
        let mut text = String::with_capacity(records.len() * 64);
        for record in records {
            push_record(&mut text, record);
        }
        let mut file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| super::blocking(|| file.sync_data()))
            .map_err(|e| StoreError::io("append to", &path, e))
    }

    /// The uidlist dotlock, as Dovecot takes it.
    pub(crate) fn lock_uidlist(&self) -> Result<DotLock> {
        DotLock::acquire(&self.uidlist_path(), UIDLIST_LOCK)
    }

    /// Write `list` (under the lock): whole through the temporary file when it must be
    /// rewritten, else only `appended` at the end, in one write.
    fn write_uidlist(&self, list: &mut UidList, appended: &[Record], rewrite: bool) -> Result<()> {
        if !rewrite {
            return self.append_to_uidlist(appended);
        }
        if list.uid_validity == 0 {
            list.uid_validity = next_uid_validity(self.user_root());
        }
        if list.guid.is_none() {
            list.guid = Some(new_guid());
        }
        let mut text = list.header_line();
        text.reserve(list.records.len() * 64);
        for record in &list.records {
            push_record(&mut text, record);
        }
        let tmp = self.path().join(UIDLIST_TMP);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| super::blocking(|| file.sync_data()))
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        drop(file);
        let path = self.uidlist_path();
        fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename into place", &path, e))?;
        lock::sync_parent(&path)?;
        list.exists = true;
        list.needs_rewrite = false;
        Ok(())
    }

    /// Bring `dovecot-uidlist` up to date with `new/` and `cur/` (creating it when missing,
    /// with a fresh UIDVALIDITY) and return every message with its UID. Files that are gone
    /// are left out. With `take_recent`, messages in `new/` are first renamed into `cur/`
    /// (`NAME:2,`), and those this call moved are marked recent.
    ///
    /// Reads the uidlist once and lists the folders once; the lock is taken only when the
    /// file must change (new messages, a missing or damaged file).
    ///
    /// A mailbox that nobody changed since its last listing in this process is not listed
    /// again while [`snapshot_cache`] keeps that listing (a large mailbox) or a session still
    /// holds it (any mailbox): the snapshot returned shares its list.
    ///
    /// # Errors
    /// The Maildir cannot be listed, or the uidlist cannot be read, locked or written.
    pub fn sync_uids(&self, take_recent: bool) -> Result<Snapshot> {
        self.sync_uids_since(self.change_stamp().ok(), take_recent)
    }

    /// [`Maildir::sync_uids`] for a caller that has just taken the folders' [`ChangeStamp`]
    /// itself (an IMAP session, before it looks), so that they are not examined twice.
    ///
    /// # Errors
    /// As for [`Maildir::sync_uids`].
    pub fn sync_uids_since(
        &self,
        stamp: Option<ChangeStamp>,
        take_recent: bool,
    ) -> Result<Snapshot> {
        // Taken before the listing: a change during it leaves evidence that no longer holds.
        let evidence = stamp.and_then(|stamp| Evidence::now(stamp, &self.uidlist_path()));
        if let Some(evidence) = &evidence {
            if let Some(snapshot) = snapshot_cache::get(self.path(), evidence) {
                return Ok(snapshot);
            }
        }
        let snapshot = self.sync_uids_afresh(take_recent)?;
        if let Some(evidence) = evidence {
            snapshot_cache::put(self.path(), evidence, &snapshot);
        }
        Ok(snapshot)
    }

    /// [`Maildir::sync_uids`] without the cache.
    fn sync_uids_afresh(&self, take_recent: bool) -> Result<Snapshot> {
        // Read before listing: then every line of a file we did not list names a file that
        // was gone when we looked (or was being renamed: see `sync_locked`).
        let bytes = self.read_uidlist_bytes()?;
        // In directory order: the snapshot is in UID order, and only new UIDs need the
        // delivery order.
        let mut entries = self.list_unordered()?;
        let mut recent = HashSet::new();
        if take_recent {
            let raced;
            (recent, raced) = self.take_into_cur(&mut entries)?;
            if raced {
                entries = self.list_unordered()?;
            }
        }
        let text = bytes.as_deref().map(std::str::from_utf8);
        if let Some(quick) = text.and_then(Result::ok).and_then(quick_parse) {
            // One lookup per message; all must have a UID, else new ones are due.
            let found: Option<Vec<u32>> = entries.iter().map(|e| quick.uid_of(e.base())).collect();
            if let Some(found) = found {
                let mut found = found.into_iter();
                return Ok(snapshot(
                    quick.uid_validity,
                    quick.next_uid,
                    |_| found.next(),
                    entries,
                    &recent,
                ));
            }
        } else {
            // Not clean (or not UTF-8): read it as the full parse does, which tells whether
            // it must be rewritten.
            let list = UidList::parse(&String::from_utf8_lossy(bytes.as_deref().unwrap_or(b"")));
            let uids = list.index();
            if list.exists
                && !list.needs_rewrite
                && entries.iter().all(|e| uids.contains_key(e.base()))
            {
                return Ok(list.snapshot(&uids, entries, &recent));
            }
        }
        let entries = self.in_delivery_order(entries);
        let _lock = self.lock_uidlist()?;
        let mut list = self.read_uidlist()?;
        self.assign_locked(&mut list, &entries)?;
        Ok(list.snapshot(&list.index(), entries, &recent))
    }

    /// Move the messages of `entries` that are in `new/` into `cur/` (`NAME:2,`), updating
    /// `entries`: the base names of those moved (recent to the caller), and whether another
    /// session moved one first (then `entries` is out of date).
    fn take_into_cur(&self, entries: &mut [MessageEntry]) -> Result<(HashSet<String>, bool)> {
        let mut recent = HashSet::new();
        let mut raced = false;
        for entry in entries.iter_mut().filter(|e| e.folder() == Folder::New) {
            // A name that already carries info (flags) keeps it.
            let name = if entry.file_name().contains(':') {
                entry.file_name().to_owned()
            } else {
                format!("{}:2,", entry.file_name())
            };
            let from = self.entry_path(entry);
            let to = self.path().join("cur").join(&name);
            match fs::rename(&from, &to) {
                Ok(()) => {
                    recent.insert(entry.base().to_owned());
                    *entry = MessageEntry::from_name(Folder::Cur, name);
                }
                // Another session took it first: not recent for us.
                Err(e) if e.kind() == io::ErrorKind::NotFound => raced = true,
                Err(e) => return Err(StoreError::io("move into cur/", from, e)),
            }
        }
        // No fsync of the folders for these renames, as for flag changes: a crash that undoes
        // one only puts the message back in new/, under the same name and so the same UID,
        // where the next session sees it \Recent again. Dovecot does not sync them either; on
        // a journaled file system each would wait for a journal commit.
        if !recent.is_empty() {
            self.note_change();
        }
        Ok((recent, raced))
    }

    /// The messages in `new/` with their UIDs, for a caller that knows `cur/` is as it was
    /// when it last listed it ([`ChangeStamp::unchanged_since`]) and has accounted for every
    /// uidlist line up to UID `newest` (each names a message it holds, or one gone): a
    /// delivery into a selected mailbox of 100,000 messages then costs a listing of `new/`,
    /// not of both folders (most of an APPEND's time there). With `take_recent` they are
    /// first moved into `cur/`, as [`Maildir::sync_uids`] does; those without a UID are
    /// numbered. The snapshot holds only these messages.
    ///
    /// [`NewOnly::ListAll`] when the caller must list both folders after all: another session
    /// moved one of them first (so `cur/` changed), a line above `newest` names a message
    /// not in `new/` (numbered elsewhere, perhaps in `cur/` by now), or the uidlist is missing
    /// or not clean (the full sync repairs it).
    ///
    /// # Errors
    /// `new/` cannot be listed, a message cannot be moved, or the uidlist cannot be read,
    /// locked or written.
    pub fn sync_new_uids(&self, take_recent: bool, newest: u32) -> Result<NewOnly> {
        let mut entries = Vec::new();
        self.list_folder_into(Folder::New, &mut entries)?;
        let mut recent = HashSet::new();
        if take_recent {
            let raced;
            (recent, raced) = self.take_into_cur(&mut entries)?;
            if raced {
                return Ok(NewOnly::ListAll { recent });
            }
        }
        let bases: Vec<&str> = entries.iter().map(MessageEntry::base).collect();
        // Mail numbered lately is found at the uidlist's end: 1 ms instead of 5 at 100,000
        // messages. Else the whole file.
        let found = match self.new_lines_at_the_end(&bases, newest)? {
            Some(found) => Some(found),
            None => {
                let bytes = self.read_uidlist_bytes()?.unwrap_or_default();
                NewLines::whole(&String::from_utf8_lossy(&bytes), &bases, newest)
            }
        };
        let Some(mut found) = found else {
            return Ok(NewOnly::ListAll { recent });
        };
        if found.uids.iter().any(Option::is_none) {
            // Delivered by a program that does not number its mail: number it now, in
            // delivery order as the full sync would, under the lock and after reading the
            // file again there, so that nothing numbered meanwhile elsewhere ends up below.
            let in_order = self.in_delivery_order(entries.clone());
            let _lock = self.lock_uidlist()?;
            let bytes = self.read_uidlist_bytes()?.unwrap_or_default();
            let bases: Vec<&str> = in_order.iter().map(MessageEntry::base).collect();
            let Some(again) = NewLines::whole(&String::from_utf8_lossy(&bytes), &bases, newest)
            else {
                return Ok(NewOnly::ListAll { recent });
            };
            let mut next_uid = again.next_uid;
            let (uids, appended) = self.number_unknown(&bases, &again.uids, &mut next_uid)?;
            let numbered: HashMap<&str, u32> = bases.iter().copied().zip(uids).collect();
            self.append_to_uidlist(&appended)?;
            self.sync_uidlist_folder_unless(commit_order::covers_maildir(self.path()))?;
            found = NewLines {
                uid_validity: again.uid_validity,
                next_uid,
                uids: entries
                    .iter()
                    .map(|e| numbered.get(e.base()).copied())
                    .collect(),
            };
        }
        let mut uids = found.uids.into_iter();
        Ok(NewOnly::Found(snapshot(
            found.uid_validity,
            found.next_uid,
            |_| uids.next().flatten(),
            entries,
            &recent,
        )))
    }

    /// [`NewLines::tail`] on this Maildir's uidlist.
    fn new_lines_at_the_end(&self, bases: &[&str], newest: u32) -> Result<Option<NewLines>> {
        use std::os::unix::fs::FileExt;
        let path = self.uidlist_path();
        let found = super::no_atime::open_file(&path).and_then(|file| {
            let size = file.metadata()?.len() as usize;
            NewLines::tail(size, bases, newest, |buf, offset| file.read_at(buf, offset))
        });
        match found {
            Ok(found) => Ok(found),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// Under the lock: give every listed message that has no UID the next ones, in the
    /// listing's order (delivery order), and write the file (appending when it can).
    fn assign_locked(&self, list: &mut UidList, entries: &[MessageEntry]) -> Result<()> {
        let missing: Vec<&MessageEntry> = {
            let uids: HashSet<&str> = list.records.iter().map(|r| r.base.as_str()).collect();
            let mut fresh = HashSet::new();
            entries
                .iter()
                .filter(|e| !uids.contains(e.base()) && fresh.insert(e.base()))
                .collect()
        };
        let mut appended = Vec::with_capacity(missing.len());
        for entry in missing {
            let uid = list.next_uid;
            if uid == u32::MAX {
                break;
            }
            list.next_uid += 1;
            appended.push(Record {
                uid,
                ext: String::new(),
                base: entry.base().to_owned(),
            });
        }
        // Compress when many lines name files that are gone, as Dovecot does.
        let on_disk: HashSet<&str> = entries.iter().map(MessageEntry::base).collect();
        let live = list
            .records
            .iter()
            .filter(|r| on_disk.contains(r.base.as_str()))
            .count();
        let compress = !appended.is_empty()
            && live < list.records.len()
            && (list.records.len() + appended.len()) * COMPRESS_PERCENTAGE / 100
                >= live + appended.len();
        let rewrite = !list.exists || list.needs_rewrite || compress;
        if rewrite && live < list.records.len() {
            // A file renamed during our listing may have hidden from it: look again, under
            // the lock, before dropping any line for good.
            let again: HashSet<String> = self
                .list()?
                .into_iter()
                .map(|e| e.base().to_owned())
                .collect();
            list.records
                .retain(|r| on_disk.contains(r.base.as_str()) || again.contains(&r.base));
        }
        list.records.extend(appended.iter().cloned());
        self.write_uidlist(list, &appended, rewrite)
    }

    /// Make messages just linked into this Maildir's `new/` ([`Delivery::link_as`],
    /// [`Maildir::copy_from`]) durable and give them their UIDs, assigned under the lock when
    /// the uidlist does not have them yet; in the order given. Once this returns, their names
    /// and UIDs survive a crash.
    ///
    /// Where a later sync commits every earlier change ([`commit_order`]), the uidlist's sync
    /// after the links does it all, and an fsync of `new/` would be one more journal commit
    /// for nothing. Elsewhere `new/` and `cur/` are synced first, once for all the messages.
    ///
    /// [`Delivery::link_as`]: super::Delivery::link_as
    ///
    /// # Errors
    /// `new/` cannot be synced, or as for [`Maildir::sync_uids`]. The messages stay then (the
    /// next listing numbers them).
    pub fn number_added(&self, entries: &[MessageEntry]) -> Result<Vec<u32>> {
        self.number_added_with_validity(entries)
            .map(|(_, uids)| uids)
    }

    /// [`Maildir::number_added`], also giving the mailbox's UIDVALIDITY as the uidlist says
    /// it under the same lock: what APPENDUID and COPYUID name, without listing a target
    /// mailbox the session has not selected (at 100,000 messages, most of an APPEND's time).
    /// 0 when `entries` is empty.
    ///
    /// # Errors
    /// As for [`Maildir::number_added`].
    pub fn number_added_with_validity(&self, entries: &[MessageEntry]) -> Result<(u32, Vec<u32>)> {
        if entries.is_empty() {
            return Ok((0, Vec::new()));
        }
        let covered = commit_order::covers_maildir(self.path());
        if !covered {
            // Both folders: another session may have moved a message on to cur/ meanwhile.
            self.sync()?;
        }
        let numbered = self.assign_uids(entries, covered);
        if numbered.is_err() && covered {
            // No sync may have happened after the links: make the names durable all the same.
            let _ = self.sync_folders(&[Folder::New]);
        }
        numbered
    }

    /// The UIDs of `entries`, assigning them under the lock when the uidlist does not have
    /// them yet; in the order given. Ends with the uidlist synced, also when another process
    /// wrote the lines.
    ///
    /// A clean uidlist is read without copying a line: for a few messages (an APPEND) by
    /// comparing each line's name with theirs ([`NewLines::whole`]), for more through
    /// [`quick_parse`]'s map. An APPEND to a mailbox of 100,000 messages spent 100 ms copying
    /// their names into a list and a map to look up one (`imap_memory --only size`).
    ///
    /// `covered`: a later sync commits every earlier change ([`commit_order`]).
    fn assign_uids(&self, entries: &[MessageEntry], covered: bool) -> Result<(u32, Vec<u32>)> {
        let _lock = self.lock_uidlist()?;
        let bytes = self.read_uidlist_bytes()?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let bases: Vec<&str> = entries.iter().map(MessageEntry::base).collect();
        let looked_up = if bases.len() <= FEW {
            // No line is above u32::MAX: this only finds the messages' UIDs. At 100,000 lines
            // this takes about a quarter of quick_parse's time, building no map.
            NewLines::whole(&text, &bases, u32::MAX)
                .map(|found| (found.uid_validity, found.next_uid, found.uids))
        } else {
            quick_parse(&text).map(|quick| {
                let uids = bases.iter().map(|base| quick.uid_of(base)).collect();
                (quick.uid_validity, quick.next_uid, uids)
            })
        };
        // Not clean: the full parse, which also tells whether the file must be rewritten.
        let mut full = None;
        let (uid_validity, mut next_uid, known) = match looked_up {
            Some(found) => found,
            None => {
                let list = UidList::parse(&text);
                let index = list.index();
                let known = bases.iter().map(|base| index.get(base).copied()).collect();
                let found = (list.uid_validity, list.next_uid, known);
                full = Some(list);
                found
            }
        };
        let (uids, appended) = self.number_unknown(&bases, &known, &mut next_uid)?;
        let rewrite = full
            .as_ref()
            .is_some_and(|list| !list.exists || list.needs_rewrite);
        if appended.is_empty() && !rewrite {
            self.sync_uidlist_as_written()?;
            return Ok((uid_validity, uids));
        }
        match full {
            Some(mut list) if rewrite => {
                list.next_uid = next_uid;
                list.records.extend(appended.iter().cloned());
                // A new uidlist gets its UIDVALIDITY here; the rewrite syncs the folder too.
                self.write_uidlist(&mut list, &appended, true)?;
                Ok((list.uid_validity, uids))
            }
            _ => {
                self.append_to_uidlist(&appended)?;
                self.sync_uidlist_folder_unless(covered)?;
                Ok((uid_validity, uids))
            }
        }
    }

    /// The UIDs of `bases`: `known` where given, else the next ones from `next_uid` (a
    /// message given twice gets one), with the uidlist lines those need.
    fn number_unknown(
        &self,
        bases: &[&str],
        known: &[Option<u32>],
        next_uid: &mut u32,
    ) -> Result<(Vec<u32>, Vec<Record>)> {
        let mut appended = Vec::new();
        let mut fresh: HashMap<&str, u32> = HashMap::new();
        let mut uids = Vec::with_capacity(bases.len());
        for (&base, known) in bases.iter().zip(known) {
            let uid = match known.or_else(|| fresh.get(base).copied()) {
                Some(uid) => uid,
                None => {
                    let uid = self.take_uid(next_uid)?;
                    fresh.insert(base, uid);
                    appended.push(Record {
                        uid,
                        ext: String::new(),
                        base: base.to_owned(),
                    });
                    uid
                }
            };
            uids.push(uid);
        }
        Ok((uids, appended))
    }

    /// After lines were appended to the uidlist and synced, sync its folder too unless
    /// `covered` (that sync committed every earlier change): another program (Dovecot with
    /// `mail_fsync = never`) may have renamed the file into place without syncing the folder,
    /// and a crash could then bring back the file it replaced, without our lines.
    fn sync_uidlist_folder_unless(&self, covered: bool) -> Result<()> {
        if covered {
            return Ok(());
        }
        lock::sync_parent(&self.uidlist_path())
    }

    /// The next UID, counted on in `next_uid`; an error once the mailbox has used them all.
    fn take_uid(&self, next_uid: &mut u32) -> Result<u32> {
        let uid = *next_uid;
        if uid == u32::MAX {
            return Err(StoreError::io(
                "assign a UID in",
                self.uidlist_path(),
                io::Error::other("the mailbox has used up its UIDs"),
            ));
        }
        *next_uid += 1;
        Ok(uid)
    }

    /// Sync the uidlist as it is, with its folder, when another session or Dovecot numbered
    /// the messages first: its line may not be on the disk yet (Dovecot with `mail_fsync =
    /// never` does not sync it, nor the folder after renaming a rewritten uidlist into place).
    /// Synced here, after the links, it is also the sync that `number_added` counts on. All
    /// of it, not only the data: a rename changes only the inode's ctime, which fdatasync does
    /// not wait for.
    fn sync_uidlist_as_written(&self) -> Result<()> {
        let path = self.uidlist_path();
        File::open(&path)
            .and_then(|file| super::blocking(|| file.sync_all()))
            .map_err(|e| StoreError::io("sync", &path, e))?;
        lock::sync_parent(&path)
    }

    /// The current [`ChangeStamp`].
    ///
    /// # Errors
    /// `new/` or `cur/` cannot be examined.
    pub fn change_stamp(&self) -> Result<ChangeStamp> {
        let stat = |folder: Folder| -> Result<i128> {
            let dir = self.path().join(folder.dir_name());
            let meta =
                fs::symlink_metadata(&dir).map_err(|e| StoreError::io("examine", &dir, e))?;
            Ok(mtime_ns(&meta))
        };
        let new_mtime_ns = stat(Folder::New)?;
        let cur_mtime_ns = stat(Folder::Cur)?;
        let now = super::unix_now();
        let settled = |ns: i128| super::time_is_settled(ns.div_euclid(1_000_000_000) as i64, now);
        Ok(ChangeStamp {
            new_mtime_ns,
            cur_mtime_ns,
            new_settled: settled(new_mtime_ns),
            cur_settled: settled(cur_mtime_ns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// uidlists clean and not (torn, out of order, no GUID, version 1, empty), for the readers
    /// that must agree with the full parse; a name listed twice is left to each test.
    fn sample_uidlists() -> Vec<String> {
        let guid = GUID;
        vec![
            format!("3 V7 N4 G{guid}\n1 :a\n2 S12 W14 :b\n3 :c\n"),
            format!("3 V7 N2 G{guid}\n1 :a\n5 :b\n"),
            format!("3 V7 N9 G{guid}\n1 :a\n"),
            format!("3 V7 N4 G{guid}\n1 :a\n2 :b\n3 :c"),
            format!("3 V7 N4 G{guid}\n2 :a\n1 :b\n"),
            format!("3 V7 N4 G{guid}\n1 :a\n\n2 :b\n"),
            format!("3 V7 N4 G{guid}\n1 :a/b\n"),
            "3 V7 N4\n1 :a\n".to_owned(),
            "1 7 4\n1 :a\n".to_owned(),
            format!("3 V7 N4 G{guid}\n"),
            String::new(),
        ]
    }

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn new_lines_of_the_whole_file_agree_with_the_full_parse_or_decline() {
        let guid = GUID;
        for text in &sample_uidlists() {
            let full = UidList::parse(text);
            match NewLines::whole(text, &["a", "c", "z"], u32::MAX) {
                Some(NewLines {
                    uid_validity,
                    next_uid,
                    uids: found,
                }) => {
                    assert!(full.exists && !full.needs_rewrite, "{text:?}");
                    assert_eq!(
                        (uid_validity, next_uid),
                        (full.uid_validity, full.next_uid),
                        "{text:?}"
                    );
                    let index = full.index();
                    let expected: Vec<Option<u32>> = ["a", "c", "z"]
                        .iter()
                        .map(|b| index.get(b).copied())
                        .collect();
                    assert_eq!(found, expected, "{text:?}");
                }
                None => assert!(!full.exists || full.needs_rewrite, "{text:?}"),
            }
        }
        // A name listed twice: appended to all the same, its later UID the one that counts,
        // as the full parse (which rewrites the file) has it.
        let twice = format!("3 V7 N4 G{guid}\n1 :a\n2 :a\n");
        assert!(UidList::parse(&twice).needs_rewrite);
        let found = NewLines::whole(&twice, &["a"], u32::MAX).unwrap();
        assert_eq!(
            (found.uid_validity, found.next_uid, found.uids),
            (7, 4, vec![Some(2)])
        );
        assert_eq!(UidList::parse(&twice).index().get("a"), Some(&2));
    }

    #[test]
    fn new_lines_give_the_uids_of_new_mail_and_decline_a_newer_line_naming_other_mail() {
        let mut text = format!("3 V7 N1 G{GUID}\n");
        for uid in 1..=4_000 {
            text.push_str(&format!("{uid} :1700000000.M{uid}P1Q{uid}.host\n"));
        }
        // A name listed again later: the later line counts.
        text.push_str("4001 :1700000000.M3999P1Q3999.host\n");
        let tail = |text: &str, bases: &[&str], newest: u32| {
            let bytes = text.as_bytes();
            NewLines::tail(bytes.len(), bases, newest, |buf, offset| {
                let rest = &bytes[(offset as usize).min(bytes.len())..];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            })
            .unwrap()
        };
        let (late, again) = (
            "1700000000.M4000P1Q4000.host",
            "1700000000.M3999P1Q3999.host",
        );
        let expected = |uids: Vec<Option<u32>>| NewLines {
            uid_validity: 7,
            next_uid: 4002,
            uids,
        };
        // The session accounted for every line up to 3998; the newer ones name only these.
        let both = expected(vec![Some(4000), Some(4001)]);
        assert_eq!(tail(&text, &[late, again], 3998), Some(both));
        let both = expected(vec![Some(4000), Some(4001)]);
        assert_eq!(NewLines::whole(&text, &[late, again], 3998), Some(both));
        // A newer line names other mail (numbered elsewhere, perhaps in cur/ by now).
        assert_eq!(tail(&text, &[again], 3999), None);
        assert_eq!(NewLines::whole(&text, &[again], 3999), None);
        // A message with an early line: the end of the file does not have it, the whole does.
        let early = "1700000000.M5P1Q5.host";
        assert_eq!(tail(&text, &[early, late, again], 3998), None);
        let three = expected(vec![Some(5), Some(4000), Some(4001)]);
        assert_eq!(
            NewLines::whole(&text, &[early, late, again], 3998),
            Some(three)
        );
        // Newer lines before the part read: only the whole file can tell.
        assert_eq!(tail(&text, &[late, again], 10), None);
        assert_eq!(NewLines::whole(&text, &[late, again], 10), None);
        // A message without a line, for the caller to number.
        let unnumbered = expected(vec![Some(4000), Some(4001), None]);
        assert_eq!(
            NewLines::whole(&text, &[late, again, "fresh"], 3998),
            Some(unnumbered)
        );
        // A torn last line, a line out of order, an old header, a small file: declined.
        assert_eq!(tail(&format!("{text}4002 :x"), &[late], 3999), None);
        assert_eq!(
            NewLines::whole(&format!("{text}4002 :x"), &[late], 3999),
            None
        );
        assert_eq!(tail(&format!("{text}3 :y\n"), &[late], 3999), None);
        let old = text.replacen(&format!("3 V7 N1 G{GUID}"), "3 V7 N1", 1);
        assert_eq!(tail(&old, &[late], 3999), None);
        assert_eq!(NewLines::whole(&old, &[late], 3999), None);
        assert_eq!(tail(&text[..2 * TAIL - 100], &[late], 3999), None);
        // A header alone, and a file that is not there.
        let empty = NewLines::whole(&format!("3 V7 N1 G{GUID}\n"), &[], 0);
        assert_eq!(empty.map(|e| e.next_uid), Some(1));
        assert_eq!(NewLines::whole("", &[], 0), None);
    }

    #[test]
    fn quick_parse_agrees_with_the_full_parse_or_declines() {
        let mut texts = sample_uidlists();
        // A name listed twice: the quick parse declines it, as the full one rewrites it.
        texts.push(format!("3 V7 N4 G{GUID}\n1 :a\n2 :a\n"));
        for text in &texts {
            let full = UidList::parse(text);
            match quick_parse(text) {
                Some(quick) => {
                    assert!(full.exists && !full.needs_rewrite, "{text:?}");
                    assert_eq!(
                        (quick.uid_validity, quick.next_uid),
                        (full.uid_validity, full.next_uid),
                        "{text:?}"
                    );
                    assert_eq!(quick.uids.len(), full.records.len(), "{text:?}");
                    for record in &full.records {
                        assert_eq!(quick.uid_of(&record.base), Some(record.uid), "{text:?}");
                    }
                    assert_eq!(quick.uid_of("z"), None);
                }
                None => assert!(!full.exists || full.needs_rewrite, "{text:?}"),
            }
        }
    }

    fn maildir() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(&dir.path().join("user")).unwrap();
        (dir, maildir)
    }

    fn deliver(maildir: &Maildir, body: &str) -> MessageEntry {
        let mut delivery = maildir.deliver().unwrap();
        delivery.write_all(body.as_bytes()).unwrap();
        delivery.commit().unwrap()
    }

    fn uidlist_text(maildir: &Maildir) -> String {
        fs::read_to_string(maildir.path().join(UIDLIST)).unwrap()
    }

    #[test]
    fn parses_dovecot_lines_with_extension_fields() {
        let text = "3 V1796254399 N3 G1be70e06beaa106b632d000083ecc375 Pfoo\n\
                    1 :1796254398.M111712P11619.vm,S=17,W=20\n\
                    2 W20 S17 :1796254398.M114339P11619.vm\n\
                    5 G0123 :c\n";
        let list = UidList::parse(text);
        assert!(list.exists && !list.needs_rewrite);
        assert_eq!(list.uid_validity, 1796254399);
        assert_eq!(list.next_uid, 6, "the last UID + 1 beats a lower N");
        assert_eq!(list.other_header, "Pfoo");
        let bases: Vec<_> = list
            .records
            .iter()
            .map(|r| (r.uid, r.ext.as_str(), r.base.as_str()))
            .collect();
        assert_eq!(
            bases,
            [
                (1, "", "1796254398.M111712P11619.vm,S=17,W=20"),
                (2, "W20 S17", "1796254398.M114339P11619.vm"),
                (5, "G0123", "c")
            ]
        );
        // Written back byte for byte.
        let mut out = list.header_line();
        for r in &list.records {
            push_record(&mut out, r);
        }
        assert_eq!(out, text.replace("N3", "N6"));
    }

    #[test]
    fn torn_and_broken_lines_are_left_out_and_their_uids_never_reused() {
        let list = UidList::parse("3 V7 N2 G0123456789abcdef0123456789abcdef\n1 :a\n2 :b\n9 :c");
        assert_eq!(list.records.len(), 2);
        assert_eq!(list.next_uid, 10);
        assert!(list.needs_rewrite);
        let list =
            UidList::parse("3 V7 N2 G0123456789abcdef0123456789abcdef\n1 :a\nxx\n3 :a/b\n2 :b\n");
        assert_eq!(list.records.iter().map(|r| r.uid).collect::<Vec<_>>(), [1]);
        assert_eq!(list.next_uid, 4);
        // A torn header: nothing is trusted but UIDs stay burnt.
        let list = UidList::parse("3 V7 N2 G01234");
        assert!(!list.exists && list.needs_rewrite);
        // Version 1 is read and marked for a rewrite.
        let list = UidList::parse("1 42 7\n3 :x\n");
        assert_eq!(
            (list.uid_validity, list.next_uid, list.needs_rewrite),
            (42, 7, true)
        );
    }

    #[test]
    fn duplicate_file_keeps_the_later_uid() {
        let list = UidList::parse("3 V7 N2 G0123456789abcdef0123456789abcdef\n1 :a\n2 :a\n");
        assert_eq!(list.records.len(), 1);
        assert_eq!(list.records[0].uid, 2);
    }

    #[test]
    fn first_sync_creates_the_uidlist_in_delivery_order() {
        let (dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        let b = deliver(&maildir, "b\n");
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(snap.uid_next, 3);
        assert_eq!(
            snap.messages
                .iter()
                .map(|m| (m.uid, m.entry.base()))
                .collect::<Vec<_>>(),
            [(1, a.base()), (2, b.base())]
        );
        let text = uidlist_text(&maildir);
        let header = text.lines().next().unwrap();
        assert!(
            header.starts_with(&format!("3 V{} N3 G", snap.uid_validity)),
            "{header}"
        );
        assert_eq!(text.lines().nth(1).unwrap(), format!("1 :{}", a.base()));
        // The draw went through dovecot-uidvalidity.
        let stored = fs::read_to_string(dir.path().join("user/dovecot-uidvalidity")).unwrap();
        assert_eq!(u32::from_str_radix(&stored, 16).unwrap(), snap.uid_validity);
        assert!(dir
            .path()
            .join(format!("user/dovecot-uidvalidity.{stored}"))
            .exists());
        // Nothing new: no write at all.
        let before = fs::metadata(maildir.path().join(UIDLIST)).unwrap().ino();
        assert_eq!(maildir.sync_uids(false).unwrap(), snap);
        assert_eq!(
            fs::metadata(maildir.path().join(UIDLIST)).unwrap().ino(),
            before
        );
    }

    #[test]
    fn uids_grow_and_are_never_reused_after_removal() {
        let (_dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        for body in ["b\n", "c\n", "d\n"] {
            deliver(&maildir, body);
        }
        maildir.sync_uids(false).unwrap();
        maildir.remove(&a).unwrap();
        let e = deliver(&maildir, "e\n");
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(
            snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert_eq!(snap.messages[3].entry, e);
        // Appended, not rewritten: the line of the removed file is still there.
        assert_eq!(uidlist_text(&maildir).lines().count(), 6);
        // Flags change the name, not the UID.
        let flagged = maildir.set_flags(&e, "S").unwrap();
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(snap.messages[3].entry, flagged);
        assert_eq!(snap.messages[3].uid, 5);
    }

    #[test]
    fn compresses_when_most_lines_are_gone() {
        let (_dir, maildir) = maildir();
        let entries: Vec<_> = (0..8)
            .map(|i| deliver(&maildir, &format!("{i}\n")))
            .collect();
        maildir.sync_uids(false).unwrap();
        for entry in &entries[..6] {
            maildir.remove(entry).unwrap();
        }
        deliver(&maildir, "new\n");
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(
            snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        let text = uidlist_text(&maildir);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.starts_with(&format!("3 V{} N10 ", snap.uid_validity)));
    }

    #[test]
    fn torn_last_line_is_repaired_by_a_rewrite() {
        let (_dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        let first = maildir.sync_uids(false).unwrap();
        // A crash in the middle of appending UID 2 and 3.
        let mut file = OpenOptions::new()
            .append(true)
            .open(maildir.path().join(UIDLIST))
            .unwrap();
        file.write_all(b"2 :gone\n3 :half-writ").unwrap();
        let b = deliver(&maildir, "b\n");
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(snap.uid_validity, first.uid_validity);
        assert_eq!(
            snap.messages
                .iter()
                .map(|m| (m.uid, m.entry.base()))
                .collect::<Vec<_>>(),
            [(1, a.base()), (4, b.base())]
        );
        let text = uidlist_text(&maildir);
        assert!(text.ends_with('\n'));
        assert!(!text.contains("half"), "{text}");
        assert!(UidList::parse(&text).records.iter().all(|r| r.uid != 3));
    }

    #[test]
    fn take_recent_moves_new_into_cur_once() {
        let (_dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        let snap = maildir.sync_uids(true).unwrap();
        let message = &snap.messages[0];
        assert!(message.recent);
        assert_eq!(message.entry.folder(), Folder::Cur);
        assert_eq!(message.entry.file_name(), format!("{}:2,", a.base()));
        let again = maildir.sync_uids(true).unwrap();
        assert!(!again.messages[0].recent);
        assert_eq!(again.messages[0].uid, message.uid);
    }

    #[test]
    fn number_added_appends_in_the_given_order_and_is_idempotent() {
        let (_dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        let b = deliver(&maildir, "b\n");
        assert_eq!(
            maildir.number_added(&[b.clone(), a.clone()]).unwrap(),
            [1, 2]
        );
        assert_eq!(maildir.number_added(std::slice::from_ref(&a)).unwrap(), [2]);
        assert!(maildir.number_added(&[]).unwrap().is_empty());
        let snap = maildir.sync_uids(false).unwrap();
        assert_eq!(snap.messages[0].entry, b);
        assert_eq!(snap.uid_next, 3);
    }

    #[test]
    fn number_added_gives_the_uidvalidity_it_wrote_or_found() {
        let (_dir, maildir) = maildir();
        let a = deliver(&maildir, "a\n");
        assert!(!maildir.path().join("dovecot-uidlist").exists());
        // No uidlist yet: the one written gets a fresh UIDVALIDITY, and that is the answer.
        let (validity, uids) = maildir
            .number_added_with_validity(std::slice::from_ref(&a))
            .unwrap();
        assert_eq!(uids, [1]);
        let written = maildir.sync_uids(false).unwrap().uid_validity;
        assert!(validity != 0);
        assert_eq!(validity, written);
        // Found: the same, on the fast path and on the one that rewrites.
        let b = deliver(&maildir, "b\n");
        let numbered = maildir.number_added_with_validity(std::slice::from_ref(&b));
        assert_eq!(numbered.unwrap(), (written, vec![2]));
        let mut text = fs::read_to_string(maildir.path().join("dovecot-uidlist")).unwrap();
        text.push_str("7 :torn");
        fs::write(maildir.path().join("dovecot-uidlist"), text).unwrap();
        let c = deliver(&maildir, "c\n");
        let numbered = maildir.number_added_with_validity(std::slice::from_ref(&c));
        assert_eq!(numbered.unwrap(), (written, vec![8]));
    }

    #[test]
    fn concurrent_syncs_agree_on_uids() {
        let (_dir, maildir) = maildir();
        for i in 0..20 {
            deliver(&maildir, &format!("{i}\n"));
        }
        let snaps: Vec<Snapshot> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| maildir.sync_uids(true).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let last = maildir.sync_uids(false).unwrap();
        let uids: Vec<(u32, String)> = last
            .messages
            .iter()
            .map(|m| (m.uid, m.entry.base().to_owned()))
            .collect();
        assert_eq!(uids.len(), 20);
        assert_eq!(uids.last().unwrap().0, 20);
        let recent: usize = snaps
            .iter()
            .map(|s| s.messages.iter().filter(|m| m.recent).count())
            .sum();
        assert_eq!(recent, 20, "each message is recent in exactly one session");
        for snap in &snaps {
            for m in snap.messages.iter() {
                assert!(uids.contains(&(m.uid, m.entry.base().to_owned())));
            }
        }
    }

    #[test]
    fn sync_new_uids_numbers_new_mail_and_sends_the_caller_to_cur_for_mail_numbered_elsewhere() {
        let (_dir, maildir) = maildir();
        let found = |newest: u32, take: bool| match maildir.sync_new_uids(take, newest).unwrap() {
            NewOnly::Found(snapshot) => Some(snapshot),
            NewOnly::ListAll { .. } => None,
        };
        let uids =
            |snapshot: &Snapshot| snapshot.messages.iter().map(|m| m.uid).collect::<Vec<_>>();
        deliver(&maildir, "a\n");
        let first = maildir.sync_uids(true).unwrap();
        assert_eq!(uids(&first), [1]);
        // Nothing in new/: nothing found, the mailbox's numbers as they are.
        let empty = found(1, true).unwrap();
        assert!(empty.messages.is_empty());
        assert_eq!(
            (empty.uid_validity, empty.uid_next),
            (first.uid_validity, 2)
        );
        // Mail delivered without a UID: numbered, taken into cur/, recent.
        deliver(&maildir, "b\n");
        deliver(&maildir, "c\n");
        let taken = found(1, true).unwrap();
        assert_eq!(uids(&taken), [2, 3]);
        assert!(taken
            .messages
            .iter()
            .all(|m| m.recent && m.entry.folder() == Folder::Cur));
        assert_eq!(taken.uid_next, 4);
        assert_eq!(
            uids(&maildir.sync_uids(false).unwrap()),
            [1, 2, 3],
            "one numbering"
        );
        // Mail another session numbered and took into cur/ meanwhile: a look at new/ alone
        // would announce what came after it first, and could never show it.
        deliver(&maildir, "d\n");
        maildir.sync_uids(true).unwrap();
        deliver(&maildir, "e\n");
        match maildir.sync_new_uids(true, 3).unwrap() {
            NewOnly::ListAll { recent } => assert_eq!(recent.len(), 1, "e, taken by this look"),
            NewOnly::Found(snapshot) => panic!("d was skipped: {snapshot:?}"),
        }
        assert_eq!(uids(&maildir.sync_uids(false).unwrap()), [1, 2, 3, 4, 5]);
        // Without taking them, mail in new/ stays there, numbered.
        deliver(&maildir, "f\n");
        let kept = found(5, false).unwrap();
        assert_eq!(uids(&kept), [6]);
        assert_eq!(kept.messages[0].entry.folder(), Folder::New);
        // A damaged uidlist is the full sync's to repair.
        let mut file = OpenOptions::new()
            .append(true)
            .open(maildir.path().join(UIDLIST))
            .unwrap();
        file.write_all(b"torn line\n").unwrap();
        assert!(found(6, true).is_none());
        let repaired = maildir.sync_uids(true).unwrap();
        assert_eq!(uids(&repaired), [1, 2, 3, 4, 5, 6]);
        assert!(found(6, true).is_some(), "clean again");
    }

    #[test]
    fn change_stamp_follows_the_folders() {
        let (_dir, maildir) = maildir();
        let before = maildir.change_stamp().unwrap();
        assert!(!before.is_settled(), "just created");
        deliver(&maildir, "a\n");
        let after = maildir.change_stamp().unwrap();
        assert_ne!(before, after);
        let old = SystemTime::now() - Duration::from_secs(10);
        for sub in ["new", "cur"] {
            File::open(maildir.path().join(sub))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let settled = maildir.change_stamp().unwrap();
        assert!(settled.is_settled());
        assert_eq!(settled, maildir.change_stamp().unwrap());
    }

    /// `count` messages of two octets in `cur/`, none seen.
    fn fill_cur(maildir: &Maildir, count: usize) {
        for n in 0..count {
            let name = format!("1700000000.M{n}P1Q{n}.host,S=2:2,");
            fs::write(maildir.path().join("cur").join(name), "x\n").unwrap();
        }
    }

    /// Set `new/` and `cur/` to a time long past, as for a mailbox nobody touched lately.
    fn settle(maildir: &Maildir, when: SystemTime) {
        for sub in ["new", "cur"] {
            File::open(maildir.path().join(sub))
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }

    #[test]
    fn a_large_unchanged_mailbox_is_not_listed_again_and_any_change_is_seen() {
        let (_dir, maildir) = maildir();
        let count = snapshot_cache::MIN_MESSAGES + 5;
        fill_cur(&maildir, count);
        let old = SystemTime::now() - Duration::from_secs(10);
        settle(&maildir, old);
        let first = maildir.sync_uids(true).unwrap();
        assert_eq!(first.messages.len(), count);
        // The uidlist was just written: the next listing is the one that is kept.
        let second = maildir.sync_uids(true).unwrap();
        assert_eq!(second, first);

        // A flag changed by another program renames the file, which moves cur/'s time on.
        let renamed = &second.messages[7];
        let from = maildir.entry_path(&renamed.entry);
        fs::rename(
            &from,
            from.with_file_name(format!("{}S", renamed.entry.file_name())),
        )
        .unwrap();
        let third = maildir.sync_uids(true).unwrap();
        assert_eq!(third.messages[7].entry.flags(), "S");
        assert_eq!(third.messages[7].uid, renamed.uid);

        // Proof that an unchanged mailbox comes from the cache: remove a file behind the
        // cache's back and put the folders' times back as they were. (Nothing but a program
        // set on fooling it does that; any real change moves the times on.)
        settle(&maildir, old);
        let cached = maildir.sync_uids(true).unwrap();
        assert_eq!(cached.messages.len(), count);
        fs::remove_file(maildir.entry_path(&cached.messages[0].entry)).unwrap();
        settle(&maildir, old);
        let again = maildir.sync_uids(true).unwrap();
        assert_eq!(again, cached);
        // The list itself is shared, not copied, with every caller that reuses it.
        assert!(Arc::ptr_eq(&again.messages, &cached.messages));
        // And a real removal moves cur/'s time on, and is seen.
        fs::remove_file(maildir.entry_path(&cached.messages[1].entry)).unwrap();
        assert_eq!(maildir.sync_uids(true).unwrap().messages.len(), count - 2);
    }

    #[test]
    fn mail_left_in_new_by_a_read_only_look_is_still_taken_by_the_next_session() {
        let (_dir, maildir) = maildir();
        let count = snapshot_cache::MIN_MESSAGES + 5;
        fill_cur(&maildir, count);
        fs::write(maildir.path().join("new/1700000001.M1P2Q1.host"), "y\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(10);
        settle(&maildir, old);
        // Read-only looks (EXAMINE) leave the mail in new/, twice so that one could be kept.
        maildir.sync_uids(false).unwrap();
        settle(&maildir, old);
        let looked = maildir.sync_uids(false).unwrap();
        assert_eq!(looked.messages.len(), count + 1);
        assert!(looked.messages.iter().all(|m| !m.recent));
        // A session selecting read-write takes it into cur/ and sees it recent.
        settle(&maildir, old);
        let selected = maildir.sync_uids(true).unwrap();
        let last = selected.messages.last().unwrap();
        assert!(last.recent);
        assert_eq!(last.entry.folder(), Folder::Cur);
    }

    #[test]
    fn a_small_unchanged_mailbox_is_shared_while_a_session_holds_it_and_not_kept() {
        let (_dir, maildir) = maildir();
        fill_cur(&maildir, 10);
        let old = SystemTime::now() - Duration::from_secs(10);
        settle(&maildir, old);
        maildir.sync_uids(true).unwrap();
        // The uidlist was just written; from here on the mailbox is unchanged.
        settle(&maildir, old);
        let held = maildir.sync_uids(true).unwrap();
        let again = maildir.sync_uids(true).unwrap();
        assert!(Arc::ptr_eq(&held.messages, &again.messages));
        // Proof that it is only shared while held: a file removed behind the cache's back
        // (the folders' times put back) is not seen while a session holds the list...
        fs::remove_file(maildir.entry_path(&held.messages[0].entry)).unwrap();
        settle(&maildir, old);
        assert_eq!(maildir.sync_uids(true).unwrap().messages.len(), 10);
        // ...and is once the last holder let go: nothing was kept.
        drop((held, again));
        assert_eq!(maildir.sync_uids(true).unwrap().messages.len(), 9);
    }
}
