//! A user's mailboxes as Dovecot keeps them in its default Maildir++ layout: INBOX is the
//! user's Maildir itself, every other mailbox `NAME` is the Maildir `.NAME` beside INBOX's
//! `cur/`, `new/` and `tmp/`, holding an empty `maildirfolder` file; `.Parent.Child` is the
//! child of `Parent` (the hierarchy separator is `.`), and names are modified UTF-7 on disk
//! (RFC 3501 §5.1.3). `subscriptions` lists the subscribed names as Dovecot writes it.
//!
//! A mailbox name can never reach outside the user's Maildir: `/`, `..`, empty levels and
//! control characters are refused, and a folder that is a symbolic link is neither listed
//! nor opened.

use std::path::PathBuf;

use super::{Maildir, Result};

/// The hierarchy separator of every mailbox name (Dovecot's default for Maildir++).
pub const SEPARATOR: char = '.';

/// One mailbox in a LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The IMAP name in UTF-8, `INBOX` for the user's Maildir, `.`-separated levels.
    pub name: String,
    /// Some other mailbox has this one as its parent (CHILDREN, RFC 3348).
    pub has_children: bool,
}

/// The mailboxes of one user.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    root: PathBuf,
}

impl Mailboxes {
    /// The mailboxes under `inbox`, the user's Maildir.
    pub fn new(inbox: &Maildir) -> Mailboxes {
        Mailboxes {
            root: inbox.path().to_owned(),
        }
    }

    /// Every mailbox, INBOX first, the others sorted by name.
    ///
    /// # Errors
    /// The Maildir cannot be listed.
    pub fn list(&self) -> Result<Vec<MailboxInfo>> {
        todo!("{}", self.root.display())
    }

    /// The Maildir of mailbox `name` (INBOX in any case is the user's Maildir).
    ///
    /// # Errors
    /// [`super::StoreError::InvalidMailboxName`], [`super::StoreError::NoSuchMailbox`], or the
    /// folder is a symbolic link ([`super::StoreError::UnsafeMailbox`]).
    pub fn open(&self, name: &str) -> Result<Maildir> {
        todo!("{name}")
    }

    /// Create mailbox `name` (with `maildirfolder`, `cur/`, `new/`, `tmp/`).
    ///
    /// # Errors
    /// It exists ([`super::StoreError::MailboxExists`]), the name is invalid, or I/O fails.
    pub fn create(&self, name: &str) -> Result<()> {
        todo!("{name}")
    }

    /// Delete mailbox `name` and its messages; INBOX cannot be deleted. A mailbox with
    /// children loses its messages but stays, as RFC 3501 allows (`\Noselect` is not used).
    ///
    /// # Errors
    /// INBOX, an unknown or invalid name, or I/O.
    pub fn delete(&self, name: &str) -> Result<()> {
        todo!("{name}")
    }

    /// Rename `from` and its children to `to`. Renaming INBOX moves its messages into a new
    /// mailbox `to` and leaves INBOX empty (RFC 3501 §6.3.5).
    ///
    /// # Errors
    /// `from` is unknown, `to` exists, a name is invalid, or I/O.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        todo!("{from} {to}")
    }

    /// The subscribed names, in file order.
    ///
    /// # Errors
    /// `subscriptions` cannot be read.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        todo!()
    }

    /// Add `name` to `subscriptions`, or remove it (rewritten atomically).
    ///
    /// # Errors
    /// The name is invalid or the file cannot be written.
    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        todo!("{name} {subscribed}")
    }
}
