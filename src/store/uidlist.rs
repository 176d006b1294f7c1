//! UIDs as Dovecot keeps them for a Maildir: `dovecot-uidlist` (version 3), read and written
//! under the `dovecot-uidlist.lock` dotlock, new entries appended, rewrites through a
//! temporary file and rename, so that UIDs assigned here are the ones Dovecot shows and the
//! reverse. Also where a session takes mail from `new/` into `cur/`: the session whose rename
//! succeeds is the one that sees the mail `\Recent`, as with Dovecot.

use super::{Maildir, MessageEntry, Result};

/// A message with its UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidMessage {
    pub uid: u32,
    pub entry: MessageEntry,
    /// This sync moved the message from `new/` to `cur/`, so this session sees it `\Recent`.
    pub recent: bool,
}

/// A Maildir's messages with their UIDs, in UID order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Vec<UidMessage>,
}

/// Cheap evidence of whether a Maildir changed: the modification times of `new/` and `cur/`.
/// [`ChangeStamp::is_settled`] is false while a change may still hide inside the same tick,
/// and the caller must sync anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    new_mtime_ns: i128,
    cur_mtime_ns: i128,
    settled: bool,
}

impl ChangeStamp {
    /// Whether an equal stamp later proves that nothing changed in between.
    pub fn is_settled(&self) -> bool {
        self.settled
    }
}

impl Maildir {
    /// Bring `dovecot-uidlist` up to date with `new/` and `cur/` (creating it when missing,
    /// with a fresh UIDVALIDITY) and return every message with its UID. Files that are gone
    /// are left out. With `take_recent`, messages in `new/` are first renamed into `cur/`
    /// (`NAME:2,`), and those this call moved are marked recent.
    ///
    /// # Errors
    /// The Maildir cannot be listed, or the uidlist cannot be read, locked or written.
    pub fn sync_uids(&self, take_recent: bool) -> Result<Snapshot> {
        todo!("{take_recent}")
    }

    /// The UIDs of messages just added to this Maildir (by delivery or copy), assigning them
    /// under the lock when the uidlist does not have them yet; in the order given.
    ///
    /// # Errors
    /// As for [`Maildir::sync_uids`].
    pub fn assign_uids(&self, entries: &[MessageEntry]) -> Result<Vec<u32>> {
        todo!("{}", entries.len())
    }

    /// The current [`ChangeStamp`].
    ///
    /// # Errors
    /// `new/` or `cur/` cannot be examined.
    pub fn change_stamp(&self) -> Result<ChangeStamp> {
        todo!()
    }
}
