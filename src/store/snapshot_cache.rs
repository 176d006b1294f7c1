//! The last [`Snapshot`] of each large mailbox, shared by every session of the process.
//!
//! A long-running server answers many SELECTs of the same mailbox. Listing 100,000 names and
//! parsing their uidlist costs a hundred milliseconds; Dovecot avoids it with its index, and
//! this cache is ours: a snapshot is reused while the evidence says nothing changed, that is
//! while `new/` and `cur/` keep the same settled modification times (a rename, delivery or
//! removal changes them) and `dovecot-uidlist` is the same file with the same size and time.
//! Only mailboxes of at least [`MIN_MESSAGES`] are kept, at most [`MAX_MAILBOXES`] of them,
//! so the cache costs nothing where a listing is cheap and stays bounded where it is not.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::maildir::Folder;
use super::uidlist::{ChangeStamp, Snapshot};

/// Smaller mailboxes are listed afresh: it takes well under a millisecond.
pub(crate) const MIN_MESSAGES: usize = 2_000;
/// Mailboxes kept; the one used least recently goes first.
const MAX_MAILBOXES: usize = 16;

/// What must be unchanged for a cached snapshot to still be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evidence {
    folders: ChangeStamp,
    /// Device, inode, size and modification time of `dovecot-uidlist`, if it exists.
    uidlist: Option<(u64, u64, u64, i64, i64)>,
}

impl Evidence {
    /// The evidence as it is now; `None` when it proves nothing (folder times within the
    /// last second, which a change in the same tick could leave as they were).
    pub(crate) fn now(folders: ChangeStamp, uidlist: &Path) -> Option<Evidence> {
        if !folders.is_settled() {
            return None;
        }
        let uidlist = fs::symlink_metadata(uidlist)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        Some(Evidence { folders, uidlist })
    }
}

struct Entry {
    maildir: PathBuf,
    evidence: Evidence,
    snapshot: Snapshot,
}

/// Most recently used last.
static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// The snapshot of `maildir` if it was taken under the same evidence.
pub(crate) fn get(maildir: &Path, evidence: &Evidence) -> Option<Snapshot> {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let at = cache.iter().position(|e| e.maildir == maildir)?;
    if cache[at].evidence != *evidence {
        cache.remove(at);
        return None;
    }
    let entry = cache.remove(at);
    let snapshot = entry.snapshot.clone();
    cache.push(entry);
    Some(snapshot)
}

/// Keep `snapshot` of `maildir`, taken under `evidence` (read before the listing, so that a
/// change during it leaves evidence that no longer matches). Its list of messages is shared,
/// not copied.
///
/// A snapshot with mail in `new/`, or that is recent to the session that took it, is not
/// kept: the next session to select the mailbox read-write must take that mail into `cur/`
/// and see it `\Recent`, and one that reuses a snapshot moves nothing.
pub(crate) fn put(maildir: &Path, evidence: Evidence, snapshot: &Snapshot) {
    if snapshot.messages.len() < MIN_MESSAGES
        || snapshot
            .messages
            .iter()
            .any(|m| m.recent || m.entry.folder() == Folder::New)
    {
        return;
    }
    let snapshot = snapshot.clone();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|e| e.maildir != maildir);
    if cache.len() >= MAX_MAILBOXES {
        cache.remove(0);
    }
    cache.push(Entry {
        maildir: maildir.to_owned(),
        evidence,
        snapshot,
    });
}
