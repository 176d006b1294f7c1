//! The last [`Snapshot`] of each mailbox, shared by every session of the process.
//!
//! A long-running server answers many SELECTs of the same mailbox. Listing 100,000 names and
//! parsing their uidlist costs a hundred milliseconds; Dovecot avoids it with its index, and
//! this cache is ours: a snapshot is reused while the evidence says nothing changed, that is
//! while `new/` and `cur/` keep the same settled modification times (a rename, delivery or
//! removal changes them) and `dovecot-uidlist` is the same file with the same size and time.
//!
//! Two kinds of entry:
//! - **kept**: the list of a mailbox of at least [`MIN_MESSAGES`] is held here, for at most
//!   [`MAX_KEPT`] mailboxes (the one used least recently goes first), so that a SELECT after
//!   a quiet spell costs no listing.
//! - **shared**: the list of a smaller mailbox is only pointed at, weakly: while a session
//!   holds it, another that selects the unchanged mailbox shares it instead of listing and
//!   holding its own. Ten thousand connections spread over a few users then hold a few lists,
//!   not ten thousand; once the last of them lets go, the entry is dropped.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::maildir::Folder;
use super::uidlist::{ChangeStamp, Snapshot, UidMessage};

/// Smaller mailboxes are only shared while in use: listing one takes well under a
/// millisecond.
pub(crate) const MIN_MESSAGES: usize = 2_000;
/// Large mailboxes kept.
const MAX_KEPT: usize = 16;

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

enum Held {
    Kept(Arc<Vec<UidMessage>>),
    Shared(Weak<Vec<UidMessage>>),
}

struct Entry {
    evidence: Evidence,
    uid_validity: u32,
    uid_next: u32,
    messages: Held,
    /// When a kept entry was last used (a tick of [`Cache::clock`]).
    used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<PathBuf, Entry>,
    clock: u64,
    /// The size at which shared entries whose sessions are all gone are next swept out.
    sweep_at: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// The snapshot of `maildir` if it was taken under the same evidence (and, for a small
/// mailbox, some session still holds it).
pub(crate) fn get(maildir: &Path, evidence: &Evidence) -> Option<Snapshot> {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(Cache::default);
    cache.clock += 1;
    let clock = cache.clock;
    let entry = cache.entries.get_mut(maildir)?;
    let messages = match &entry.messages {
        _ if entry.evidence != *evidence => None,
        Held::Kept(messages) => {
            entry.used = clock;
            Some(messages.clone())
        }
        Held::Shared(messages) => messages.upgrade(),
    };
    let Some(messages) = messages else {
        cache.entries.remove(maildir);
        return None;
    };
    Some(Snapshot {
        uid_validity: entry.uid_validity,
        uid_next: entry.uid_next,
        messages,
    })
}

/// Keep `snapshot` of `maildir`, taken under `evidence` (read before the listing, so that a
/// change during it leaves evidence that no longer matches): held if the mailbox is large,
/// else pointed at while sessions hold it. Its list of messages is shared, not copied.
///
/// A snapshot with mail in `new/`, or that is recent to the session that took it, is not
/// kept: the next session to select the mailbox read-write must take that mail into `cur/`
/// and see it `\Recent`, and one that reuses a snapshot moves nothing.
pub(crate) fn put(maildir: &Path, evidence: Evidence, snapshot: &Snapshot) {
    if snapshot
        .messages
        .iter()
        .any(|m| m.recent || m.entry.folder() == Folder::New)
    {
        return;
    }
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(Cache::default);
    cache.clock += 1;
    let messages = if snapshot.messages.len() >= MIN_MESSAGES {
        let kept = cache
            .entries
            .iter()
            .filter(|(path, entry)| {
                matches!(entry.messages, Held::Kept(_)) && path.as_path() != maildir
            })
            .map(|(path, entry)| (entry.used, path));
        if kept.clone().count() >= MAX_KEPT {
            if let Some((_, oldest)) = kept.min() {
                let oldest = oldest.clone();
                cache.entries.remove(&oldest);
            }
        }
        Held::Kept(snapshot.messages.clone())
    } else {
        Held::Shared(Arc::downgrade(&snapshot.messages))
    };
    cache.entries.insert(
        maildir.to_owned(),
        Entry {
            evidence,
            uid_validity: snapshot.uid_validity,
            uid_next: snapshot.uid_next,
            messages,
            used: cache.clock,
        },
    );
    if cache.entries.len() >= cache.sweep_at {
        cache.entries.retain(|_, entry| match &entry.messages {
            Held::Kept(_) => true,
            Held::Shared(messages) => messages.strong_count() > 0,
        });
        cache.sweep_at = (cache.entries.len() * 2).max(64);
    }
}
