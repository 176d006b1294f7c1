//! A user's mailboxes as Dovecot keeps them in its default Maildir++ layout: INBOX is the
//! user's Maildir itself, every other mailbox `NAME` is the Maildir `.NAME` beside INBOX's
//! `cur/`, `new/` and `tmp/`, holding an empty `maildirfolder` file; `.Parent.Child` is the
//! child of `Parent` (the hierarchy separator is `.`), and names are modified UTF-7 on disk
//! (RFC 3501 §5.1.3). `subscriptions` lists the subscribed names as Dovecot writes it.
//!
//! A mailbox name can never reach outside the user's Maildir: `/`, `..`, empty levels and
//! control characters are refused, and a folder that is a symbolic link is neither listed
//! nor opened.
//!
//! What Dovecot 2.3 does, and so we do:
//! - `subscriptions` is `V\t2\n\n` and then one name per line, its levels separated by a tab
//!   instead of `.`, each level modified UTF-7 and tab-escaped (`\x01` then `1`, `t`, `r` or
//!   `n`); replaced under the `subscriptions.lock` dotlock by renaming the lock file over it.
//!   A file without the header is version 1 (names as they are) and stays so.
//! - DELETE removes the mailbox's own folder with its messages (renamed to
//!   `..DOVECOT-TRASHED` first, so a crash leaves nothing listed); its children stay, and the
//!   name lives on as a `\Noselect` parent of them. Subscriptions are left alone.
//! - RENAME moves the children along; subscriptions are left alone.
//!
//! One deliberate difference: Dovecot refuses to rename INBOX in this layout; here it moves
//! INBOX's messages into the new mailbox and leaves INBOX empty, as RFC 3501 §6.3.5 asks.

use std::ffi::CString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::lock::{self, DotLock, DotLockSettings};
use super::{Maildir, Result, StoreError};

/// The hierarchy separator of every mailbox name (Dovecot's default for Maildir++).
pub const SEPARATOR: char = '.';

const SUBSCRIPTIONS: &str = "subscriptions";
const SUBSCRIPTIONS_V2_HEADER: &str = "V\t2\n\n";
/// Dovecot's `SUBSCRIPTION_FILE_CHANGE_TIMEOUT` and `SUBSCRIPTION_FILE_LOCK_TIMEOUT`.
const SUBSCRIPTIONS_LOCK: DotLockSettings = DotLockSettings {
    stale_timeout: std::time::Duration::from_secs(30),
    timeout: std::time::Duration::from_secs(120),
    pid_written_at_once: false,
};
/// Where Dovecot's Maildir++ DELETE puts a folder before removing it.
const TRASH: &str = "..DOVECOT-TRASHED";
const MAILDIRFOLDER: &str = "maildirfolder";
/// A folder's name must fit in one directory entry.
const MAX_DIR_NAME: usize = 255;

/// One mailbox in a LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The IMAP name in UTF-8, `INBOX` for the user's Maildir, `.`-separated levels.
    pub name: String,
    /// Some other mailbox has this one as its parent (CHILDREN, RFC 3348).
    pub has_children: bool,
    /// No such mailbox, only the parent of one (`\Noselect`, RFC 3501 §6.3.8): after
    /// `CREATE a.b` without `a`, or `DELETE a` while `a.b` exists.
    pub noselect: bool,
}

/// The mailboxes of one user.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    root: PathBuf,
}

/// A valid mailbox name, split into levels, with INBOX spelled `INBOX`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    levels: Vec<String>,
}

impl Name {
    fn parse(name: &str) -> Result<Name> {
        let invalid = |reason| {
            Err(StoreError::InvalidMailboxName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return invalid("it is empty");
        }
        if name.chars().any(|c| c.is_control()) {
            return invalid("it holds control characters");
        }
        if name.contains('/') {
            return invalid("'/' is not allowed");
        }
        if name.contains(['*', '%']) {
            return invalid("'*' and '%' are LIST wildcards");
        }
        if name.starts_with(SEPARATOR) {
            return invalid("it begins with the hierarchy separator '.'");
        }
        let mut levels: Vec<String> = name.split(SEPARATOR).map(str::to_owned).collect();
        if levels.iter().any(String::is_empty) {
            return invalid("it has an empty level ('..' or a trailing '.')");
        }
        if levels[0].eq_ignore_ascii_case("INBOX") {
            levels[0] = "INBOX".to_owned();
        }
        let parsed = Name { levels };
        if !parsed.is_inbox() && parsed.dir_name().len() > MAX_DIR_NAME {
            return invalid("it is too long");
        }
        Ok(parsed)
    }

    fn is_inbox(&self) -> bool {
        self.levels.len() == 1 && self.levels[0] == "INBOX"
    }

    fn display(&self) -> String {
        self.levels.join(".")
    }

    /// `.Level1.Level2`, each level modified UTF-7.
    fn dir_name(&self) -> String {
        let mut dir = String::new();
        for level in &self.levels {
            dir.push(SEPARATOR);
            dir.push_str(&encode_mutf7(level));
        }
        dir
    }

    /// The name of a `.Folder` directory, if it is a valid mailbox.
    fn from_dir_name(dir: &str) -> Option<Name> {
        let encoded = dir.strip_prefix(SEPARATOR)?;
        let levels: Option<Vec<String>> = encoded.split(SEPARATOR).map(decode_mutf7).collect();
        let name = Name::parse(&levels?.join(".")).ok()?;
        // `.INBOX` would shadow INBOX, and a name that encodes otherwise is not ours.
        (!name.is_inbox() && name.dir_name() == dir).then_some(name)
    }

    fn is_within(&self, other: &Name) -> bool {
        self.levels.len() > other.levels.len() && self.levels.starts_with(&other.levels)
    }
}

impl Mailboxes {
    /// The mailboxes under `inbox`, the user's Maildir.
    pub fn new(inbox: &Maildir) -> Mailboxes {
        Mailboxes {
            root: inbox.path().to_owned(),
        }
    }

    fn path_of(&self, name: &Name) -> PathBuf {
        if name.is_inbox() {
            self.root.clone()
        } else {
            self.root.join(name.dir_name())
        }
    }

    /// Every `.Folder` that is a directory (not a symbolic link) and a valid name.
    fn folders(&self) -> Result<Vec<Name>> {
        let read = fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))?;
        let mut names = Vec::new();
        for item in read {
            let item = item.map_err(|e| StoreError::io("list", &self.root, e))?;
            let Ok(dir) = item.file_name().into_string() else {
                continue;
            };
            if !item.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Some(name) = Name::from_dir_name(&dir) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Every mailbox, INBOX first, the others sorted by name; a missing parent of a mailbox
    /// is listed too, as `noselect`.
    ///
    /// # Errors
    /// The Maildir cannot be listed.
    pub fn list(&self) -> Result<Vec<MailboxInfo>> {
        let folders = self.folders()?;
        let mut all: std::collections::BTreeMap<Vec<String>, bool> = Default::default();
        for name in &folders {
            all.insert(name.levels.clone(), false);
        }
        for name in &folders {
            for depth in 1..name.levels.len() {
                all.entry(name.levels[..depth].to_vec()).or_insert(true);
            }
        }
        // INBOX is the Maildir itself, never a missing parent.
        all.insert(vec!["INBOX".to_owned()], false);
        let keys: Vec<Vec<String>> = all.keys().cloned().collect();
        let mut infos: Vec<MailboxInfo> = all
            .into_iter()
            .map(|(levels, noselect)| MailboxInfo {
                has_children: keys
                    .iter()
                    .any(|k| k.len() > levels.len() && k.starts_with(&levels)),
                name: levels.join("."),
                noselect,
            })
            .collect();
        infos.sort_by(|a, b| {
            (a.name != "INBOX")
                .cmp(&(b.name != "INBOX"))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(infos)
    }

    /// The Maildir of mailbox `name` (INBOX in any case is the user's Maildir).
    ///
    /// # Errors
    /// [`StoreError::InvalidMailboxName`], [`StoreError::NoSuchMailbox`], or the
    /// folder is a symbolic link ([`StoreError::UnsafeMailbox`]).
    pub fn open(&self, name: &str) -> Result<Maildir> {
        let parsed = Name::parse(name)?;
        let path = self.path_of(&parsed);
        if !parsed.is_inbox() {
            self.check_folder(&path, &parsed)?;
        }
        let maildir = Maildir::open(&path)?;
        maildir.ensure_folders()?;
        Ok(maildir)
    }

    /// A folder that exists as a real directory.
    fn check_folder(&self, path: &Path, name: &Name) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::UnsafeMailbox {
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NoSuchMailbox {
                name: name.display(),
            }),
            Err(e) => Err(StoreError::io("open mailbox", path, e)),
        }
    }

    /// Create mailbox `name` (with `maildirfolder`, `cur/`, `new/`, `tmp/` and a
    /// `dovecot-uidlist` with its UIDVALIDITY). A trailing `.` is dropped, as Dovecot does.
    /// Parents are not created: a missing one lists as `noselect`.
    ///
    /// # Errors
    /// It exists ([`StoreError::MailboxExists`]), the name is invalid, or I/O fails.
    pub fn create(&self, name: &str) -> Result<()> {
        let trimmed = name.strip_suffix(SEPARATOR).unwrap_or(name);
        let parsed = Name::parse(trimmed)?;
        let path = self.path_of(&parsed);
        if parsed.is_inbox() {
            return Err(StoreError::MailboxExists {
                name: parsed.display(),
            });
        }
        let maildir = self.create_folder(&parsed, &path)?;
        maildir.sync_uids(false)?;
        Ok(())
    }

    /// The folder with its subfolders and `maildirfolder`; fails if it exists.
    fn create_folder(&self, name: &Name, path: &Path) -> Result<Maildir> {
        match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::MailboxExists {
                    name: name.display(),
                })
            }
            Err(e) => return Err(StoreError::io("create mailbox", path, e)),
        }
        let maildir = Maildir::open(path)?;
        maildir.ensure_folders()?;
        let marker = path.join(MAILDIRFOLDER);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&marker)
            .map_err(|e| StoreError::io("create", &marker, e))?;
        lock::sync_parent(path)?;
        Ok(maildir)
    }

    /// Delete mailbox `name` with its messages, as Dovecot does in this layout: the folder
    /// goes (through `..DOVECOT-TRASHED`), its children stay, and while they exist `name`
    /// lists as a `noselect` parent. INBOX cannot be deleted.
    ///
    /// # Errors
    /// INBOX, an unknown or invalid name, a folder that is a symbolic link, or I/O.
    pub fn delete(&self, name: &str) -> Result<()> {
        let parsed = Name::parse(name)?;
        if parsed.is_inbox() {
            return Err(StoreError::InvalidMailboxName {
                name: name.to_owned(),
                reason: "INBOX cannot be deleted",
            });
        }
        let path = self.path_of(&parsed);
        self.check_folder(&path, &parsed)?;
        let trash = self.root.join(TRASH);
        match rename_noreplace(&path, &trash) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                // A leftover trash folder: put this one inside it, then remove both.
                let inner = trash.join(format!("{}.{}", std::process::id(), unique_suffix()));
                fs::rename(&path, &inner).map_err(|e| StoreError::io("delete", &path, e))?;
            }
            Err(e) => return Err(StoreError::io("delete", &path, e)),
        }
        lock::sync_parent(&path)?;
        // The mailbox is gone once renamed; what cannot be removed now goes with the next
        // delete.
        let _ = fs::remove_dir_all(&trash);
        Ok(())
    }

    /// Rename `from` and its children to `to`. Renaming INBOX moves its messages (and its
    /// keyword names) into a new mailbox `to` and leaves INBOX empty (RFC 3501 §6.3.5); its
    /// children stay.
    ///
    /// # Errors
    /// `from` is unknown, `to` exists, a name is invalid, `to` is inside `from`, or I/O.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let source = Name::parse(from)?;
        let target = Name::parse(to)?;
        if target.is_inbox() || target == source {
            return Err(StoreError::MailboxExists {
                name: target.display(),
            });
        }
        if source.is_inbox() {
            return self.rename_inbox(&target);
        }
        if target.is_within(&source) {
            return Err(StoreError::InvalidMailboxName {
                name: to.to_owned(),
                reason: "a mailbox cannot move inside itself",
            });
        }
        let source_dir = source.dir_name();
        let target_dir = target.dir_name();
        // The folder itself (if it exists; it may be a missing parent) and its children.
        let mut moves = Vec::new();
        for name in self.folders()? {
            if name == source || name.is_within(&source) {
                let dir = name.dir_name();
                let suffix = &dir[source_dir.len()..];
                let moved = format!("{target_dir}{suffix}");
                if moved.len() > MAX_DIR_NAME {
                    return Err(StoreError::InvalidMailboxName {
                        name: to.to_owned(),
                        reason: "it is too long",
                    });
                }
                moves.push((dir, moved));
            }
        }
        let own = self.root.join(&source_dir);
        if fs::symlink_metadata(&own).is_ok_and(|m| !m.is_dir()) {
            return Err(StoreError::UnsafeMailbox { path: own });
        }
        if moves.is_empty() {
            return Err(StoreError::NoSuchMailbox {
                name: source.display(),
            });
        }
        for (_, moved) in &moves {
            if fs::symlink_metadata(self.root.join(moved)).is_ok() {
                let name =
                    Name::from_dir_name(moved).map_or_else(|| target.display(), |n| n.display());
                return Err(StoreError::MailboxExists { name });
            }
        }
        // Parents before children, so a crash part-way leaves whole subtrees.
        moves.sort();
        for (dir, moved) in &moves {
            let (from_path, to_path) = (self.root.join(dir), self.root.join(moved));
            rename_noreplace(&from_path, &to_path).map_err(|e| {
                if e.raw_os_error() == Some(libc::EEXIST) {
                    StoreError::MailboxExists {
                        name: target.display(),
                    }
                } else {
                    StoreError::io("rename", &from_path, e)
                }
            })?;
        }
        lock::sync_parent(&self.root.join(&target_dir))
    }

    fn rename_inbox(&self, target: &Name) -> Result<()> {
        let inbox = Maildir::open(&self.root)?;
        let path = self.path_of(target);
        let folder = self.create_folder(target, &path)?;
        // The letters in the moved names mean INBOX's keywords.
        let keywords = self.root.join("dovecot-keywords");
        if keywords.exists() {
            fs::copy(&keywords, path.join("dovecot-keywords"))
                .map_err(|e| StoreError::io("copy", &keywords, e))?;
        }
        for entry in inbox.list()? {
            let from = inbox.entry_path(&entry);
            let to = folder.entry_path(&entry);
            match fs::rename(&from, &to) {
                Ok(()) => {}
                // Expunged or moved meanwhile by another session.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("move", from, e)),
            }
        }
        inbox.sync()?;
        folder.sync()?;
        folder.sync_uids(false)?;
        Ok(())
    }

    fn subscriptions_path(&self) -> PathBuf {
        self.root.join(SUBSCRIPTIONS)
    }

    /// The file's version (2 with the header, else 1) and its name lines, raw.
    fn read_subscriptions(&self) -> Result<(u32, Vec<String>)> {
        let path = self.subscriptions_path();
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((2, Vec::new())),
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        let (version, body) = match text.strip_prefix(SUBSCRIPTIONS_V2_HEADER) {
            Some(body) => (2, body),
            None => (1, text.as_str()),
        };
        let lines = body
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((version, lines))
    }

    /// The subscribed names, in file order.
    ///
    /// # Errors
    /// `subscriptions` cannot be read.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        let (version, lines) = self.read_subscriptions()?;
        Ok(lines
            .iter()
            .map(|line| {
                let levels: Vec<String> = if version >= 2 {
                    line.split('\t').map(tab_unescape).collect()
                } else {
                    line.split(SEPARATOR).map(str::to_owned).collect()
                };
                levels
                    .iter()
                    .map(|l| decode_mutf7(l).unwrap_or_else(|| l.clone()))
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect())
    }

    /// Add `name` to `subscriptions`, or remove it: rewritten under its dotlock and renamed
    /// into place, as Dovecot does. The mailbox need not exist.
    ///
    /// # Errors
    /// The name is invalid or the file cannot be written.
    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        let parsed = Name::parse(name)?;
        let path = self.subscriptions_path();
        let lock = DotLock::acquire(&path, SUBSCRIPTIONS_LOCK)?;
        let (version, mut lines) = self.read_subscriptions()?;
        let encoded: Vec<String> = parsed.levels.iter().map(|l| encode_mutf7(l)).collect();
        let line = if version >= 2 {
            encoded
                .iter()
                .map(|l| tab_escape(l))
                .collect::<Vec<_>>()
                .join("\t")
        } else {
            encoded.join(".")
        };
        let found = lines.contains(&line);
        match (subscribed, found) {
            (true, false) => lines.push(line),
            (false, true) => lines.retain(|l| *l != line),
            // Nothing changes: dropping the lock removes it.
            _ => return Ok(()),
        }
        let mut text = String::new();
        if version >= 2 {
            text.push_str(SUBSCRIPTIONS_V2_HEADER);
        }
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        lock.replace(&path, text.as_bytes(), None)
    }
}

/// rename(2) that fails with EEXIST instead of replacing an (empty) directory.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if done == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // A file system without RENAME_NOREPLACE: check, then rename.
        Some(libc::EINVAL | libc::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                Err(io::Error::from_raw_os_error(libc::EEXIST))
            } else {
                fs::rename(from, to)
            }
        }
        _ => Err(err),
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Dovecot's `str_append_tabescaped`.
fn tab_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    out
}

/// Dovecot's `str_append_tabunescaped`.
fn tab_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

const MUTF7_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encode a mailbox name in modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for
/// itself, `&` is `&-`, anything else is UTF-16 in modified base64 between `&` and `-`.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let (mut bits, mut count) = (0u32, 0u32);
        for byte in bytes {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 6 {
                count -= 6;
                out.push(MUTF7_ALPHABET[((bits >> count) & 0x3f) as usize] as char);
            }
        }
        if count > 0 {
            out.push(MUTF7_ALPHABET[((bits << (6 - count)) & 0x3f) as usize] as char);
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decode modified UTF-7; None unless `text` is exactly what [`encode_mutf7`] makes of some
/// name (no raw non-ASCII, no encoded printable ASCII, no padding bits, no adjacent encoded
/// runs, no lone surrogates), so that decoding and encoding round-trip.
pub fn decode_mutf7(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut after_run = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b' '..=b'~').contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            after_run = false;
            continue;
        }
        let end = i + 1 + bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let run = &bytes[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            after_run = false;
            continue;
        }
        if after_run {
            return None;
        }
        let (mut bits, mut count) = (0u32, 0u32);
        let mut units = Vec::new();
        let mut pending: Option<u8> = None;
        for &c in run {
            let value = MUTF7_ALPHABET.iter().position(|&a| a == c)? as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                let byte = ((bits >> count) & 0xff) as u8;
                match pending.take() {
                    Some(high) => units.push(u16::from_be_bytes([high, byte])),
                    None => pending = Some(byte),
                }
            }
        }
        // Leftover bits must be fewer than 6 and zero, and no half UTF-16 unit.
        if pending.is_some() || count >= 6 || bits & ((1 << count) - 1) != 0 {
            return None;
        }
        let decoded = String::from_utf16(&units).ok()?;
        if decoded.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&decoded);
        after_run = true;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mutf7_examples() {
        for (plain, encoded) in [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("A&B", "A&-B"),
            ("&", "&-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Lettre à Zoé", "Lettre &AOA- Zo&AOk-"),
            ("😀", "&2D3eAA-"),
            ("\u{7f}\t", "&AH8ACQ-"),
        ] {
            assert_eq!(encode_mutf7(plain), encoded, "{plain}");
            assert_eq!(decode_mutf7(encoded).as_deref(), Some(plain), "{encoded}");
        }
        for bad in [
            "&",
            "&U,BTFw",
            "A&AGE-",
            "&Jjo!",
            "&AOA-&AOk-",
            "&2D0-",
            "&AOB-",
            "ü",
            "a\tb",
        ] {
            assert_eq!(decode_mutf7(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn mutf7_round_trips(name in "\\PC*|[&a-z\u{e4}\u{1F600}\u{7f}-\u{a0}]{0,12}") {
            let encoded = encode_mutf7(&name);
            prop_assert!(encoded.bytes().all(|b| (b' '..=b'~').contains(&b)));
            prop_assert_eq!(decode_mutf7(&encoded), Some(name));
        }

        #[test]
        fn mutf7_decoding_is_canonical(text in "[ -~]{0,16}") {
            if let Some(decoded) = decode_mutf7(&text) {
                prop_assert_eq!(encode_mutf7(&decoded), text);
            }
        }
    }

    fn user() -> (tempfile::TempDir, Mailboxes) {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Maildir::create(&dir.path().join("user")).unwrap();
        (dir, Mailboxes::new(&inbox))
    }

    fn names(boxes: &Mailboxes) -> Vec<(String, bool, bool)> {
        boxes
            .list()
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.has_children, i.noselect))
            .collect()
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "", ".lead", "a..b", "a.", "sl/ash", "c\u{1}", "w*", "w%", "INBOX.",
        ] {
            assert!(
                matches!(Name::parse(bad), Err(StoreError::InvalidMailboxName { .. })),
                "{bad:?}"
            );
        }
        assert!(Name::parse(&"x".repeat(300)).is_err());
        assert_eq!(Name::parse("inbox").unwrap().dir_name(), ".INBOX");
        assert!(Name::parse("Inbox").unwrap().is_inbox());
        assert_eq!(Name::parse("inbox.Sub").unwrap().dir_name(), ".INBOX.Sub");
        assert_eq!(
            Name::parse("Entwürfe.A&B").unwrap().dir_name(),
            ".Entw&APw-rfe.A&-B"
        );
        assert_eq!(
            Name::from_dir_name(".Entw&APw-rfe.A&-B").unwrap().display(),
            "Entwürfe.A&B"
        );
        for bad in [
            ".",
            "..",
            ".INBOX",
            "..DOVECOT-TRASHED",
            ".A&B",
            ".a..b",
            ".x&AGE-",
        ] {
            assert_eq!(Name::from_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn create_list_open_delete() {
        let (dir, boxes) = user();
        boxes.create("Entwürfe").unwrap();
        boxes.create("Parent.Child").unwrap();
        boxes.create("trail.").unwrap();
        assert!(matches!(
            boxes.create("trail"),
            Err(StoreError::MailboxExists { .. })
        ));
        assert!(matches!(
            boxes.create("inbox"),
            Err(StoreError::MailboxExists { .. })
        ));
        let folder = dir.path().join("user/.Entw&APw-rfe");
        for file in ["cur", "new", "tmp", "maildirfolder", "dovecot-uidlist"] {
            assert!(folder.join(file).exists(), "{file}");
        }
        assert_eq!(
            names(&boxes),
            [
                ("INBOX".into(), false, false),
                ("Entwürfe".into(), false, false),
                ("Parent".into(), true, true),
                ("Parent.Child".into(), false, false),
                ("trail".into(), false, false),
            ]
        );
        // UIDVALIDITY is unique per mailbox.
        let a = boxes.open("Entwürfe").unwrap().sync_uids(false).unwrap();
        let b = boxes
            .open("Parent.Child")
            .unwrap()
            .sync_uids(false)
            .unwrap();
        let inbox = boxes.open("iNbOx").unwrap();
        assert_eq!(inbox.path(), dir.path().join("user"));
        let c = inbox.sync_uids(false).unwrap();
        assert!(a.uid_validity != b.uid_validity && b.uid_validity != c.uid_validity);
        assert!(matches!(
            boxes.open("Parent"),
            Err(StoreError::NoSuchMailbox { .. })
        ));
        assert!(matches!(
            boxes.open("Nope"),
            Err(StoreError::NoSuchMailbox { .. })
        ));

        // Deleting a parent keeps its children, and the parent lists as \Noselect.
        boxes.create("Parent").unwrap();
        let parent = boxes.open("Parent").unwrap();
        let mut delivery = parent.deliver().unwrap();
        std::io::Write::write_all(&mut delivery, b"x\n").unwrap();
        delivery.commit().unwrap();
        boxes.delete("Parent").unwrap();
        assert!(!dir.path().join("user/.Parent").exists());
        assert!(!dir.path().join(format!("user/{TRASH}")).exists());
        assert!(names(&boxes).contains(&("Parent".into(), true, true)));
        assert!(boxes.open("Parent.Child").is_ok());
        assert!(matches!(
            boxes.delete("Parent"),
            Err(StoreError::NoSuchMailbox { .. })
        ));
        assert!(matches!(
            boxes.delete("INBOX"),
            Err(StoreError::InvalidMailboxName { .. })
        ));
    }

    #[test]
    fn symlinked_folders_are_neither_listed_nor_opened() {
        let (dir, boxes) = user();
        let outside = Maildir::create(&dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("user/.Link")).unwrap();
        assert_eq!(names(&boxes), [("INBOX".into(), false, false)]);
        assert!(matches!(
            boxes.open("Link"),
            Err(StoreError::UnsafeMailbox { .. })
        ));
        assert!(matches!(
            boxes.delete("Link"),
            Err(StoreError::UnsafeMailbox { .. })
        ));
        assert!(matches!(
            boxes.create("Link"),
            Err(StoreError::MailboxExists { .. })
        ));
        assert!(outside.path().exists());
    }

    #[test]
    fn rename_moves_children_and_inbox_moves_its_messages() {
        let (dir, boxes) = user();
        boxes.create("P").unwrap();
        boxes.create("P.C").unwrap();
        boxes.create("Q").unwrap();
        let before = boxes
            .open("P")
            .unwrap()
            .sync_uids(false)
            .unwrap()
            .uid_validity;
        assert!(matches!(
            boxes.rename("P", "Q"),
            Err(StoreError::MailboxExists { .. })
        ));
        assert!(matches!(
            boxes.rename("P", "P.C.D"),
            Err(StoreError::InvalidMailboxName { .. })
        ));
        assert!(matches!(
            boxes.rename("Nope", "R"),
            Err(StoreError::NoSuchMailbox { .. })
        ));
        boxes.rename("P", "R.S").unwrap();
        let listed: Vec<String> = names(&boxes).into_iter().map(|n| n.0).collect();
        assert_eq!(listed, ["INBOX", "Q", "R", "R.S", "R.S.C"]);
        assert_eq!(
            boxes
                .open("R.S")
                .unwrap()
                .sync_uids(false)
                .unwrap()
                .uid_validity,
            before
        );

        let inbox = Maildir::open(&dir.path().join("user")).unwrap();
        let mut delivery = inbox.deliver().unwrap();
        std::io::Write::write_all(&mut delivery, b"x\n").unwrap();
        let entry = delivery.commit_as("Sa", None).unwrap();
        fs::write(dir.path().join("user/dovecot-keywords"), "0 $Junk\n").unwrap();
        boxes.rename("INBOX", "Old").unwrap();
        assert!(inbox.list().unwrap().is_empty());
        let old = boxes.open("Old").unwrap();
        let snap = old.sync_uids(false).unwrap();
        assert_eq!(snap.messages.len(), 1);
        assert_eq!(snap.messages[0].entry, entry);
        assert_eq!(old.keywords().unwrap().name_of('a'), Some("$Junk"));
    }

    #[test]
    fn subscriptions_as_dovecot_writes_them() {
        let (dir, boxes) = user();
        assert!(boxes.subscriptions().unwrap().is_empty());
        boxes.set_subscribed("Entwürfe", true).unwrap();
        boxes.set_subscribed("Parent.Child", true).unwrap();
        boxes.set_subscribed("inbox", true).unwrap();
        boxes.set_subscribed("inbox", true).unwrap();
        let path = dir.path().join("user/subscriptions");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "V\t2\n\nEntw&APw-rfe\nParent\tChild\nINBOX\n"
        );
        assert_eq!(
            boxes.subscriptions().unwrap(),
            ["Entwürfe", "Parent.Child", "INBOX"]
        );
        boxes.set_subscribed("Parent.Child", false).unwrap();
        assert_eq!(boxes.subscriptions().unwrap(), ["Entwürfe", "INBOX"]);
        assert!(!dir.path().join("user/subscriptions.lock").exists());
        assert!(boxes.set_subscribed("a..b", true).is_err());
        // Version 1 (no header) is read and kept.
        fs::write(&path, "Old.Box\n").unwrap();
        boxes.set_subscribed("New", true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "Old.Box\nNew\n");
        assert_eq!(boxes.subscriptions().unwrap(), ["Old.Box", "New"]);
        assert_eq!(
            tab_unescape(&tab_escape("a\tb\x01c\nd\r")),
            "a\tb\x01c\nd\r"
        );
    }
}
