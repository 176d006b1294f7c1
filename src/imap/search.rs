//! SEARCH: every RFC 3501 search key, nested OR/NOT, sequence and UID sets, evaluated for one
//! message at a time. Header and text keys match decoded text (RFC 2047 words, transfer-
//! and charset-decoded bodies), case-insensitively, as Dovecot does.

use std::fs::File;
use std::io;

use chrono::NaiveDate;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::search::SearchKey;

/// What a search key is evaluated against. The message's file is opened only for keys that
/// need its content, and at most once per message.
pub trait SearchMessage {
    /// Message sequence number.
    fn seq(&self) -> u32;
    fn uid(&self) -> u32;
    /// Whether the message has this flag (system flag, keyword, or `\Recent`).
    fn has_flag(&self, flag: &Flag<'_>) -> bool;
    /// RFC822.SIZE.
    fn size(&mut self) -> io::Result<u64>;
    /// The date of INTERNALDATE, in the server's time zone.
    fn internal_date(&mut self) -> io::Result<NaiveDate>;
    /// The message file, positioned at its start.
    fn open(&mut self) -> io::Result<File>;
}

/// The mailbox around the messages: what `*` means in sequence and UID sets.
#[derive(Debug, Clone, Copy)]
pub struct SearchContext {
    /// The number of messages (the largest sequence number).
    pub exists: u32,
    /// The largest UID in the mailbox (0 when empty).
    pub max_uid: u32,
}

/// Why a search cannot run: the text for a tagged `NO`/`BAD` that teaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(pub String);

/// Check a search before running it: nesting depth and sizes bounded, charset supported
/// (US-ASCII and UTF-8; others get `NO [BADCHARSET (US-ASCII UTF-8)]`).
///
/// # Errors
/// The search is refused, with the reason.
pub fn validate(key: &SearchKey<'_>, charset: Option<&str>) -> Result<(), SearchError> {
    let _ = (key, charset);
    todo!()
}

/// Whether `message` matches `key`.
///
/// # Errors
/// The message's file cannot be read.
pub fn matches(
    key: &SearchKey<'_>,
    message: &mut dyn SearchMessage,
    context: SearchContext,
) -> io::Result<bool> {
    let _ = (key, message, context);
    todo!()
}
