//! One user's Maildir: listing, streaming, flagging, removing and delivering messages.
//!
//! File names follow Dovecot's conventions so that either program can read what the other
//! wrote: `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<octets>,W=<octets as CRLF>:2,<flags>`. The
//! `,S=` and `,W=` fields let readers size a message from its name alone, without opening it.
//! Anything that is not a regular file in `new/` or `cur/`, or starts with a dot, is ignored,
//! and symbolic links are never followed.

use std::cmp::Ordering;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lock::{self, LockGuard};
use super::no_atime;
use super::{sync_dir, Result, StoreError};

/// The two folders that hold messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    New,
    Cur,
}

impl Folder {
    pub fn dir_name(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Cur => "cur",
        }
    }
}

/// A message as seen in a directory listing: everything here comes from its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    folder: Folder,
    file_name: Box<str>,
    /// Where the `:info` part of the name starts (its length when it has none): base and flags
    /// are sliced, not searched, as sessions ask for them per message and per command.
    info: u32,
    // Nothing else: every IMAP session holds one entry per message of its mailbox, so an
    // entry is kept at 24 octets and its name (the delivery time is read from the name when
    // the Maildir is listed).
}

/// Where the `:info` part of `name` starts, or its length.
fn info_start(name: &str) -> u32 {
    memchr::memchr(b':', name.as_bytes()).unwrap_or(name.len()) as u32
}

impl MessageEntry {
    pub(super) fn from_name(folder: Folder, file_name: String) -> Self {
        MessageEntry {
            folder,
            info: info_start(&file_name),
            file_name: file_name.into_boxed_str(),
        }
    }

    /// An entry that names no file, only `flags`: what a session that let go of its file
    /// names holds until it lists the Maildir again, which it does before it opens any
    /// message. (A Maildir name never starts with `:`.)
    pub fn placeholder(flags: &str) -> Self {
        MessageEntry::from_name(Folder::Cur, format!(":2,{flags}"))
    }

    pub fn folder(&self) -> Folder {
        self.folder
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The name without the `:2,flags` info: stable across flag changes.
    pub fn base(&self) -> &str {
        &self.file_name[..self.info as usize]
    }

    /// The unique part of the name, before any `,field=` or `:info`.
    pub fn unique(&self) -> &str {
        let base = self.base();
        base.split_once(',').map_or(base, |(unique, _)| unique)
    }

    /// The flag letters after `:2,` (Maildir keeps them sorted).
    pub fn flags(&self) -> &str {
        match self.file_name[self.info as usize..].strip_prefix(":2,") {
            Some(flags) => flags,
            // Some other info first: the flags follow the first `:2,`, if any.
            None => self
                .file_name
                .split_once(":2,")
                .map_or("", |(_, flags)| flags),
        }
    }

    pub fn has_flag(&self, flag: char) -> bool {
        self.flags().contains(flag)
    }

    /// Unread: not flagged Seen (messages in `new/` never are).
    pub fn is_unread(&self) -> bool {
        !self.has_flag('S')
    }

    /// Octets on disk, from the `,S=` field.
    pub fn size_field(&self) -> Option<u64> {
        self.field('S')
    }

    /// Octets with every line end as CRLF, from the `,W=` field.
    pub fn crlf_size_field(&self) -> Option<u64> {
        self.field('W')
    }

    fn field(&self, key: char) -> Option<u64> {
        self.base()
            .split(',')
            .skip(1)
            .find_map(|field| field.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    /// The delivery time in the name, which orders the mailbox: (seconds, microseconds)
    /// since the epoch; `(u64::MAX, 0)` for a name without one ([`Maildir::list`] then
    /// orders it by its file's mtime).
    pub fn delivery_time(&self) -> (u64, u64) {
        time_from_name(&self.file_name).unwrap_or((u64::MAX, 0))
    }

    /// The message's path relative to the Maildir.
    pub fn relative_path(&self) -> PathBuf {
        Path::new(self.folder.dir_name()).join(&*self.file_name)
    }
}

/// Dovecot's delivery order: seconds, then microseconds, then the name.
fn compare_delivery(a: &((u64, u64), MessageEntry), b: &((u64, u64), MessageEntry)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.base().cmp(b.1.base()))
}

/// `(secs, usecs)` from `<secs>.M<usecs>...`; usecs is 0 when absent.
fn time_from_name(name: &str) -> Option<(u64, u64)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let secs = name[..digits].parse().ok()?;
    let usecs = name[digits..]
        .strip_prefix(".M")
        .map(|rest| {
            let len = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..len].parse().unwrap_or(0)
        })
        .unwrap_or(0);
    Some((secs, usecs))
}

/// A Maildir on disk.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    /// The changes made through this handle and its clones (see [`Maildir::own_changes`]).
    own_changes: Arc<AtomicU64>,
}

/// Refuse a folder that is a symbolic link (or not a directory): following it would serve or
/// write files outside the store.
fn check_real_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| StoreError::io("open", dir, e))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(StoreError::UnsafeMailbox {
            path: dir.to_owned(),
        })
    }
}

impl Maildir {
    /// An existing Maildir. Refuses a symbolic link or anything but a directory, so a mailbox
    /// can never point outside the store.
    pub fn open(path: &Path) -> Result<Maildir> {
        let meta =
            fs::symlink_metadata(path).map_err(|e| StoreError::io("open mailbox", path, e))?;
        if !meta.is_dir() {
            return Err(StoreError::UnsafeMailbox {
                path: path.to_owned(),
            });
        }
        Ok(Maildir::at(path.to_owned()))
    }

    fn at(root: PathBuf) -> Maildir {
        Maildir {
            root,
            own_changes: Arc::default(),
        }
    }

    /// Create `path` with `tmp/`, `new/` and `cur/` (mode 0700), or complete an existing one.
    pub fn create(path: &Path) -> Result<Maildir> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| StoreError::io("create mailbox", path, e))?;
        let maildir = Maildir::open(path)?;
        maildir.ensure_folders()?;
        Ok(maildir)
    }

    /// Create whichever of `tmp/`, `new/`, `cur/` is missing. Every login and SELECT asks,
    /// and the folders are nearly always there: look first, create only what is missing.
    pub fn ensure_folders(&self) -> Result<()> {
        for sub in ["tmp", "new", "cur"] {
            let dir = self.root.join(sub);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => {
                    return Err(StoreError::UnsafeMailbox {
                        path: dir.to_owned(),
                    })
                }
                Err(_) => {}
            }
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_real_dir(&dir)?,
                Err(e) => return Err(StoreError::io("create", dir, e)),
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The folders whose changes [`Maildir::change_stamp`] follows, `new/` and `cur/`: what to
    /// watch to hear of a delivery, a removal or a flag change as it happens.
    pub fn change_dirs(&self) -> [PathBuf; 2] {
        [self.root.join("new"), self.root.join("cur")]
    }

    /// Where a listed message is on disk.
    pub fn entry_path(&self, entry: &MessageEntry) -> PathBuf {
        // Sized at once: a FETCH builds one per message.
        let dir = entry.folder.dir_name();
        let mut path = PathBuf::with_capacity(
            self.root.as_os_str().len() + dir.len() + entry.file_name.len() + 2,
        );
        path.push(&self.root);
        path.push(dir);
        path.push(&*entry.file_name);
        path
    }

    /// Every message in `new/` and `cur/`, in delivery order (time, then name). Reads only the
    /// directories, except for the rare name without a timestamp, which needs its mtime.
    pub fn list(&self) -> Result<Vec<MessageEntry>> {
        Ok(self.in_delivery_order(self.list_unordered()?))
    }

    /// Every message in `new/` and `cur/`, `new/` first, each in directory order: for callers
    /// that order by UID anyway (sorting 100,000 names by time costs more than listing them).
    pub(crate) fn list_unordered(&self) -> Result<Vec<MessageEntry>> {
        let mut entries = Vec::new();
        for folder in [Folder::New, Folder::Cur] {
            self.list_folder_into(folder, &mut entries)?;
        }
        Ok(entries)
    }

    /// Add the messages of one folder to `entries`, in directory order.
    pub(crate) fn list_folder_into(
        &self,
        folder: Folder,
        entries: &mut Vec<MessageEntry>,
    ) -> Result<()> {
        let dir = self.root.join(folder.dir_name());
        let read = no_atime::list(&dir).map_err(|e| match e.raw_os_error() {
            // Opened with O_NOFOLLOW | O_DIRECTORY: a symbolic link, or not a folder.
            Some(libc::ELOOP | libc::ENOTDIR) => StoreError::UnsafeMailbox { path: dir.clone() },
            _ => StoreError::io("list", &dir, e),
        })?;
        for item in read {
            let (name, kind) = item.map_err(|e| StoreError::io("list", &dir, e))?;
            let Ok(name) = String::from_utf8(name) else {
                continue;
            };
            if name.starts_with('.') || kind != no_atime::Kind::File {
                continue;
            }
            entries.push(MessageEntry::from_name(folder, name));
        }
        Ok(())
    }

    /// `entries` in delivery order: the time in the name, else the file's mtime; then the name.
    pub(crate) fn in_delivery_order(&self, entries: Vec<MessageEntry>) -> Vec<MessageEntry> {
        let mut timed: Vec<((u64, u64), MessageEntry)> = entries
            .into_iter()
            .map(|entry| {
                let time = time_from_name(entry.file_name()).unwrap_or_else(|| {
                    fs::symlink_metadata(self.entry_path(&entry))
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or((u64::MAX, 0), |d| {
                            (d.as_secs(), u64::from(d.subsec_micros()))
                        })
                });
                (time, entry)
            })
            .collect();
        timed.sort_by(compare_delivery);
        timed.into_iter().map(|(_, entry)| entry).collect()
    }

    /// Find a message again after another process renamed it (new flags, or moved to `cur/`).
    pub fn relocate(&self, entry: &MessageEntry) -> Result<Option<MessageEntry>> {
        for folder in [Folder::Cur, Folder::New] {
            let dir = self.root.join(folder.dir_name());
            let read = no_atime::list(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
            for (name, _) in read.flatten() {
                if let Ok(name) = String::from_utf8(name) {
                    let candidate = MessageEntry::from_name(folder, name);
                    if candidate.base() == entry.base() {
                        return Ok(Some(candidate));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Run `op` on the message's current path, relocating it once if it moved; with the
    /// entry as it is now when it had moved.
    fn with_current<T>(
        &self,
        entry: &MessageEntry,
        action: &str,
        op: impl Fn(&MessageEntry) -> io::Result<T>,
    ) -> Result<(T, Option<MessageEntry>)> {
        match op(entry) {
            Ok(value) => Ok((value, None)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.relocate(entry)? {
                Some(moved) => match op(&moved) {
                    Ok(value) => Ok((value, Some(moved))),
                    Err(e) => Err(StoreError::io(action, self.entry_path(&moved), e)),
                },
                None => Err(StoreError::io(action, self.entry_path(entry), e)),
            },
            Err(e) => Err(StoreError::io(action, self.entry_path(entry), e)),
        }
    }

    /// Open a message for reading, never through a symbolic link. Returns the entry as it is
    /// now when another process renamed it.
    pub fn open_message(&self, entry: &MessageEntry) -> Result<(File, Option<MessageEntry>)> {
        self.with_current(entry, "open message", |e| {
            no_atime::open_file(&self.entry_path(e))
        })
    }

    /// Octets on disk: the `,S=` field, else the file's size.
    pub fn size_on_disk(&self, entry: &MessageEntry) -> Result<u64> {
        if let Some(size) = entry.size_field() {
            return Ok(size);
        }
        let (meta, _) = self.with_current(entry, "read size of", |e| {
            fs::symlink_metadata(self.entry_path(e))
        })?;
        Ok(meta.len())
    }

    /// Give a message exactly these flags, moving it to `cur/`. Returns the renamed entry.
    pub fn set_flags(&self, entry: &MessageEntry, flags: &str) -> Result<MessageEntry> {
        self.update_flags(entry, |_| flags.to_owned())
    }

    /// Add one flag (e.g. `'S'` for Seen), keeping the others.
    pub fn add_flag(&self, entry: &MessageEntry, flag: char) -> Result<MessageEntry> {
        if entry.folder == Folder::Cur && entry.has_flag(flag) {
            return Ok(entry.clone());
        }
        self.update_flags(entry, |current| format!("{current}{flag}"))
    }

    /// Give a message the flags `change` makes of its current ones, moving it to `cur/`.
    /// Returns the renamed entry. When another program renamed the file since `entry` was
    /// listed (a flag of its own), `change` applies to the flags the file has now, so that
    /// adding or removing one keeps the other program's.
    pub fn update_flags(
        &self,
        entry: &MessageEntry,
        change: impl Fn(&str) -> String,
    ) -> Result<MessageEntry> {
        let target_of = |e: &MessageEntry| MessageEntry {
            folder: Folder::Cur,
            file_name: format!("{}:2,{}", e.base(), normalize_flags(&change(e.flags())))
                .into_boxed_str(),
            info: e.info,
        };
        let target = target_of(entry);
        if &target == entry {
            return Ok(target);
        }
        let (target, _) = self.with_current(entry, "rename", |e| {
            let target = target_of(e);
            if &target != e {
                fs::rename(self.entry_path(e), self.entry_path(&target))?;
            }
            Ok(target)
        })?;
        self.note_change();
        Ok(target)
    }

    /// Delete a message. Returns false when it was already gone.
    pub fn remove(&self, entry: &MessageEntry) -> Result<bool> {
        match self.with_current(entry, "remove", |e| fs::remove_file(self.entry_path(e))) {
            Ok(_) => {
                self.note_change();
                Ok(true)
            }
            Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether this process may change the Maildir: write access to `cur/`, Dovecot's test
    /// (`maildir_is_backend_readonly`) for a Maildir it then opens read-only.
    pub fn is_writable(&self) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let Ok(cur) = std::ffi::CString::new(self.root.join("cur").as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: access(2) reads a NUL-terminated path and nothing else.
        if unsafe { libc::access(cur.as_ptr(), libc::W_OK) } == 0 {
            return true;
        }
        !matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EACCES | libc::EROFS)
        )
    }

    /// Make a message just linked into `new/` survive a crash under its name. Where the file
    /// system commits in order (`in_order`, see [`commit_order`](super::commit_order)), the
    /// fsync of `new/` commits every earlier change too, a move of the message on to `cur/` by
    /// another session included. Elsewhere both folders, `new/` first: another session may
    /// have moved the message on to `cur/` before the sync of `new/`, which would then make
    /// only its removal from `new/` durable.
    pub(crate) fn sync_delivered(&self, in_order: bool) -> Result<()> {
        if in_order {
            sync_dir(&self.root.join(Folder::New.dir_name()))
        } else {
            self.sync()
        }
    }

    /// Sync `new/` and `cur/` so that renames and removals survive a crash.
    pub fn sync(&self) -> Result<()> {
        self.sync_folders(&[Folder::New, Folder::Cur])
    }

    /// Sync just these folders (an expunge that removed files from `cur/` alone need not
    /// wait for `new/` too; each fsync of a directory is a journal commit).
    pub fn sync_folders(&self, folders: &[Folder]) -> Result<()> {
        for folder in [Folder::New, Folder::Cur] {
            if !folders.contains(&folder) {
                continue;
            }
            sync_dir(&self.root.join(folder.dir_name()))?;
        }
        Ok(())
    }

    /// Start a delivery: write the message into the returned [`Delivery`], then
    /// [`Delivery::commit`] it. Dropping it uncommitted removes the partial file.
    pub fn deliver(&self) -> Result<Delivery> {
        self.ensure_folders()?;
        let unique = unique_name();
        let tmp_path = self.root.join("tmp").join(&unique);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| StoreError::io("create", &tmp_path, e))?;
        Ok(Delivery {
            root: self.root.clone(),
            unique,
            tmp_path,
            file: Some(file),
            size: 0,
            bare_lfs: 0,
            last: None,
        })
    }

    /// When the message arrived (IMAP's INTERNALDATE): the file's modification time, as
    /// Dovecot reads it.
    ///
    /// # Errors
    /// The message is gone.
    pub fn received_time(&self, entry: &MessageEntry) -> Result<SystemTime> {
        let (meta, _) = self.with_current(entry, "read the received time of", |e| {
            fs::symlink_metadata(self.entry_path(e))
        })?;
        meta.modified()
            .map_err(|e| StoreError::io("read the received time of", self.entry_path(entry), e))
    }

    /// Copy a message of `source` into this Maildir under a new unique name with `flags`
    /// (Maildir letters), by hard link where possible and through `tmp/` otherwise, keeping
    /// its received time. The copy lands in `new/` (see [`Delivery::commit_as`]), so it is
    /// `\Recent` in the session that takes it, as RFC 3501 §6.4.7 asks of COPY.
    ///
    /// Like [`Delivery::link_as`], the copy's name in `new/` is durable only once the caller
    /// has passed it to [`Maildir::number_added`], which syncs once for all of a COPY's
    /// messages instead of once per message.
    ///
    /// # Errors
    /// The message is gone, or the copy cannot be written.
    pub fn copy_from(
        &self,
        source: &Maildir,
        entry: &MessageEntry,
        flags: &str,
    ) -> Result<MessageEntry> {
        self.ensure_folders()?;
        let flags = normalize_flags(flags);
        // The size fields stay true of the same content; only the unique part is new.
        let base = match entry.base().split_once(',') {
            Some((_, fields)) => format!("{},{fields}", unique_name()),
            None => unique_name(),
        };
        let target = MessageEntry::from_name(Folder::New, with_info(base, &flags));
        let target_path = self.entry_path(&target);
        let linked = source.with_current(entry, "copy", |e| {
            match fs::hard_link(source.entry_path(e), &target_path) {
                Ok(()) => Ok(true),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EXDEV | libc::EPERM | libc::EMLINK)
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        });
        match linked {
            Ok((true, _)) => {
                self.note_change();
                Ok(target)
            }
            Ok((false, moved)) => {
                let current = moved.as_ref().unwrap_or(entry);
                let received = source.received_time(current)?;
                let (mut file, _) = source.open_message(current)?;
                let mut delivery = self.deliver()?;
                io::copy(&mut file, &mut delivery)
                    .map_err(|e| StoreError::io("copy", source.entry_path(current), e))?;
                delivery.link_as(&flags, Some(received))
            }
            Err(e) => Err(e),
        }
    }

    /// Count a change this process made to `new/` or `cur/` (see `local_changes`).
    pub(crate) fn note_change(&self) {
        super::local_changes::note(&self.root);
        self.own_changes.fetch_add(1, AtomicOrdering::AcqRel);
    }

    /// How many of [`Maildir::local_changes`] were made through this handle (or a clone): a
    /// session that sees both move by the same count during its command knows that the
    /// folders' new times are its own doing.
    pub fn own_changes(&self) -> u64 {
        self.own_changes.load(AtomicOrdering::Acquire)
    }

    /// How many changes this process made to the Maildir so far: while it stays the same,
    /// no other session of the process renamed, added or removed a message here.
    pub fn local_changes(&self) -> u64 {
        super::local_changes::count(&self.root)
    }

    /// Take the mailbox's exclusive lock (RFC 1939's maildrop lock) if it is free.
    pub fn try_lock(&self) -> Result<Option<LockGuard>> {
        lock::try_lock_exclusive(&self.root.join("mailtool.lock"))
    }
}

/// A message being delivered: written to `tmp/`, then synced and linked into `new/`.
#[derive(Debug)]
pub struct Delivery {
    root: PathBuf,
    unique: String,
    tmp_path: PathBuf,
    file: Option<File>,
    size: u64,
    bare_lfs: u64,
    last: Option<u8>,
}

impl Write for Delivery {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("delivery written after commit");
        let written = file.write(buf)?;
        let mut previous = self.last;
        for &byte in &buf[..written] {
            if byte == b'\n' && previous != Some(b'\r') {
                self.bare_lfs += 1;
            }
            previous = Some(byte);
        }
        self.last = previous;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Delivery {
    /// Octets written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Sync the message and move it into `new/` under its final name. The `,W=` field is
    /// written only when the message ends with a line end: then it is exactly what both
    /// Dovecot and a POP3 RETR count, so readers can trust it without opening the file.
    ///
    /// # Errors
    /// The message cannot be synced, linked, or its name synced; nothing is left in the
    /// Maildir then (as far as it can still be removed).
    pub fn commit(self) -> Result<MessageEntry> {
        self.commit_as("", None)
    }

    /// Like [`Delivery::commit`], but with `flags` (Maildir letters) when there are any, and
    /// with `received` as the received time (IMAP APPEND's date): the file's modification
    /// time, set before the message is linked into place. A flagged message still goes to
    /// `new/`, named `NAME:2,FLAGS`: a mail in `new/` is what makes the next session that
    /// takes it see it `\Recent` (RFC 3501 §2.3.2), and Dovecot moves such a file into
    /// `cur/` keeping its flags, as this store's sync does.
    ///
    /// # Errors
    /// As for [`Delivery::commit`].
    pub fn commit_as(self, flags: &str, received: Option<SystemTime>) -> Result<MessageEntry> {
        let maildir = Maildir::at(self.root.clone());
        let (entry, in_order) = self.link(flags, received)?;
        // Where the file system commits in order, this one commit also makes the bytes durable
        // (see `link_as`).
        if let Err(e) = maildir.sync_delivered(in_order) {
            // Not acknowledged, so the sender will try again: no second copy then.
            let _ = maildir.remove(&entry);
            return Err(e);
        }
        Ok(entry)
    }

    /// [`Delivery::commit_as`] without the fsync of `new/`: the message's name is in `new/`,
    /// but it may not survive a crash until [`Maildir::number_added`] (which the caller owes)
    /// has made it durable. Its bytes are on the disk before the name: synced, or, where the
    /// file system commits in order ([`commit_order`]), written out without a journal commit
    /// of their own, which the commit that makes the name durable makes durable too.
    ///
    /// [`commit_order`]: super::commit_order
    ///
    /// # Errors
    /// As for [`Delivery::commit`].
    pub fn link_as(self, flags: &str, received: Option<SystemTime>) -> Result<MessageEntry> {
        self.link(flags, received).map(|(entry, _)| entry)
    }

    /// [`Delivery::link_as`], also saying whether the file system commits in order
    /// ([`commit_order::covers_maildir`](super::commit_order::covers_maildir)).
    fn link(mut self, flags: &str, received: Option<SystemTime>) -> Result<(MessageEntry, bool)> {
        let file = self.file.take().expect("delivery committed twice");
        if let Some(received) = received {
            file.set_modified(received)
                .map_err(|e| StoreError::io("set the received time of", &self.tmp_path, e))?;
        }
        let in_order = super::commit_order::covers_maildir(&self.root);
        super::blocking(|| {
            if in_order {
                super::commit_order::write_out(&file)
            } else {
                file.sync_all()
            }
        })
        .map_err(|e| StoreError::io("write", &self.tmp_path, e))?;
        drop(file);
        let mut base = format!("{},S={}", self.unique, self.size);
        if self.last == Some(b'\n') {
            base.push_str(&format!(",W={}", self.size + self.bare_lfs));
        }
        let entry = MessageEntry::from_name(Folder::New, with_info(base, &normalize_flags(flags)));
        let dir = self.root.join(entry.folder.dir_name());
        let final_path = dir.join(&*entry.file_name);
        // A hard link never replaces an existing file, unlike rename.
        let linked = fs::hard_link(&self.tmp_path, &final_path);
        let _ = fs::remove_file(&self.tmp_path);
        linked.map_err(|e| StoreError::io("deliver into", &final_path, e))?;
        super::local_changes::note(&self.root);
        Ok((entry, in_order))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// A new file name: the base alone without flags, `BASE:2,FLAGS` with them.
fn with_info(base: String, flags: &str) -> String {
    if flags.is_empty() {
        base
    } else {
        format!("{base}:2,{flags}")
    }
}

/// Maildir flag letters as a file name keeps them: letters only, sorted (system flags in
/// uppercase before keyword letters), each once.
fn normalize_flags(flags: &str) -> String {
    let mut letters: Vec<char> = flags.chars().filter(char::is_ascii_alphabetic).collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// A name no other delivery uses: time, pid and a per-process counter, plus the host.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        count,
        host_name()
    )
}

/// The host name with `/`, `:` and `,` escaped as the Maildir conventions ask, read once per
/// process as Dovecot does (every delivery's name carries it).
pub(crate) fn host_name() -> String {
    static HOST_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST_NAME
        .get_or_init(|| {
            lock::raw_host_name()
                .replace('/', "\\057")
                .replace(':', "\\072")
                .replace(',', "\\054")
        })
        .clone()
}

/// A fresh unique base name for a message written outside [`Maildir::deliver`] (the copies
/// of a delivery to several recipients, in `delivery.rs`).
pub(crate) fn fresh_unique_name() -> String {
    unique_name()
}

/// The entry of a message just put into `new/` under `name` (for `delivery.rs`).
pub(crate) fn new_entry(name: String) -> MessageEntry {
    MessageEntry::from_name(Folder::New, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(folder: Folder, name: &str) -> MessageEntry {
        MessageEntry::from_name(folder, name.to_owned())
    }

    #[test]
    fn name_fields() {
        let e = entry(Folder::Cur, "1700000001.M12P3Q4.host,S=120,W=124:2,FS");
        assert_eq!(e.base(), "1700000001.M12P3Q4.host,S=120,W=124");
        assert_eq!(e.unique(), "1700000001.M12P3Q4.host");
        assert_eq!(e.flags(), "FS");
        assert_eq!(e.size_field(), Some(120));
        assert_eq!(e.crlf_size_field(), Some(124));
        assert_eq!(e.delivery_time(), (1700000001, 12));
        assert!(!e.is_unread());
        let bare = entry(Folder::New, "1700000002.host");
        assert_eq!((bare.size_field(), bare.flags()), (None, ""));
        assert!(bare.is_unread());
    }

    #[test]
    fn delivery_order_is_time_then_microseconds_then_name() {
        let list = [
            entry(Folder::New, "1700000002.M5P1.h"),
            entry(Folder::Cur, "1700000001.M900P1.h:2,S"),
            entry(Folder::New, "1700000001.M90P2.h"),
            entry(Folder::New, "1700000001.M90P1.h"),
        ];
        let mut list = list.map(|e| (e.delivery_time(), e));
        list.sort_by(compare_delivery);
        let names: Vec<_> = list.iter().map(|(_, e)| e.unique()).collect();
        assert_eq!(
            names,
            [
                "1700000001.M90P1.h",
                "1700000001.M90P2.h",
                "1700000001.M900P1.h",
                "1700000002.M5P1.h"
            ]
        );
    }

    #[test]
    fn deliver_flag_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(&dir.path().join("box")).unwrap();
        let mut delivery = maildir.deliver().unwrap();
        delivery.write_all(b"Subject: a\n\nline\r\nlast\n").unwrap();
        let delivered = delivery.commit().unwrap();
        assert_eq!(delivered.size_field(), Some(23));
        assert_eq!(delivered.crlf_size_field(), Some(26));

        let mut unterminated = maildir.deliver().unwrap();
        unterminated.write_all(b"Subject: b\n\nno newline").unwrap();
        let second = unterminated.commit().unwrap();
        assert_eq!(second.crlf_size_field(), None);

        let listed = maildir.list().unwrap();
        assert_eq!(listed, vec![delivered.clone(), second.clone()]);
        assert!(fs::read_dir(dir.path().join("box/tmp"))
            .unwrap()
            .next()
            .is_none());

        let seen = maildir.add_flag(&delivered, 'S').unwrap();
        assert_eq!(seen.folder(), Folder::Cur);
        assert_eq!(seen.flags(), "S");
        // The stale entry still finds the renamed file.
        let (_, now) = maildir.open_message(&delivered).unwrap();
        assert_eq!(now.as_ref(), Some(&seen));
        let (_, unmoved) = maildir.open_message(&seen).unwrap();
        assert_eq!(unmoved, None);
        assert!(maildir.remove(&delivered).unwrap());
        assert!(!maildir.remove(&seen).unwrap());
        assert_eq!(maildir.list().unwrap(), vec![second]);
    }

    #[test]
    fn abandoned_delivery_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(dir.path()).unwrap();
        let mut delivery = maildir.deliver().unwrap();
        delivery.write_all(b"partial").unwrap();
        drop(delivery);
        for sub in ["tmp", "new", "cur"] {
            assert!(fs::read_dir(dir.path().join(sub)).unwrap().next().is_none());
        }
    }

    #[test]
    fn symlinked_mailbox_and_messages_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = Maildir::create(&dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(matches!(
            Maildir::open(&dir.path().join("link")),
            Err(StoreError::UnsafeMailbox { .. })
        ));
        fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("real/new/1.x"))
            .unwrap();
        assert!(real.list().unwrap().is_empty());
        let sneaky = entry(Folder::New, "1.x");
        assert!(real.open_message(&sneaky).is_err());

        // A folder inside the Maildir that links outside it is refused too, for reading and
        // for delivery.
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("2.x"), "x").unwrap();
        for sub in ["cur", "tmp"] {
            let maildir = Maildir::create(&dir.path().join(sub)).unwrap();
            fs::remove_dir(dir.path().join(sub).join(sub)).unwrap();
            std::os::unix::fs::symlink(&outside, dir.path().join(sub).join(sub)).unwrap();
            assert!(matches!(
                maildir.ensure_folders(),
                Err(StoreError::UnsafeMailbox { .. })
            ));
            assert!(maildir.deliver().is_err());
        }
        let linked_cur = Maildir::open(&dir.path().join("cur")).unwrap();
        assert!(matches!(
            linked_cur.list(),
            Err(StoreError::UnsafeMailbox { .. })
        ));
    }
}
