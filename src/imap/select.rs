//! The selected mailbox: SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE, how
//! flags map to Maildir letters, sequence sets, and the one place that tracks changes made
//! by others (other sessions, `serve-pop`, deliveries, Dovecot) and announces them under
//! RFC 3501 §7.4.1's rule: no EXPUNGE while a FETCH, STORE or SEARCH is answered.
//!
//! Per message the session keeps its UID, its Maildir entry (file name, which carries the
//! flags) and whether it is `\Recent` for this session: nothing else, so that many idle
//! sessions stay small. The list is the store's [`Snapshot`](crate::store::Snapshot) list,
//! shared with every other session that selected the mailbox unchanged and copied only
//! when this session changes a message; so a SELECT of a large mailbox that the store still
//! holds costs no allocation per message.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::flag::{Flag, FlagFetch, FlagPerm};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, StatusKind};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::response::{self, non_zero, Reply};
use super::session::{Event, Session, Sync, QUICK_LOOK_WINDOW};
use crate::store::maildir::Folder;
use crate::store::{ChangeStamp, Keywords, Maildir, MessageEntry, NewOnly, Snapshot, UidMessage};

/// The selected mailbox.
#[derive(Debug)]
pub(super) struct Selected {
    /// The name in UTF-8 (`INBOX` for the inbox).
    pub name: String,
    pub maildir: Maildir,
    pub read_only: bool,
    /// The server may write to the Maildir (when not, it is selected read-only).
    pub writable: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    /// In UID order; `recent` is whether the message is `\Recent` for this session.
    pub messages: Arc<Vec<UidMessage>>,
    /// UIDs (ascending) of messages gone from the Maildir whose EXPUNGE could not be sent
    /// yet: they keep their sequence numbers until then. Almost always empty.
    pub gone: Vec<u32>,
    /// While the client is quiet: each message's UID and flags, `messages` being empty (see
    /// [`Selected::let_go`]).
    pub dormant: Option<Box<[Dormant]>>,
    pub keywords: Keywords,
    pub stamp: Option<ChangeStamp>,
    /// When the session last looked at the Maildir's folders, and the count of this
    /// process's changes to it just before (see [`Sync::Quick`]).
    pub looked: Option<(Instant, u64)>,
    /// Until when a full look trusts `stamp` though it is not settled: it was taken just after
    /// this session's own change (its moves into `cur/`, a STORE, an EXPUNGE; see
    /// `Session::own_change`), with no other change by this process in between. What another
    /// program changed while that change ran, or in the same clock tick, shows at the first
    /// full look after this time, as with Dovecot's delayed refresh (`DIR_DELAYED_REFRESH`);
    /// without it, every APPEND to a selected mailbox listed it whole again. (A message
    /// another program numbered meanwhile is not skipped even then: see `accounted`.)
    pub trusted_until: Option<Instant>,
    /// Every uidlist line up to this UID names a message the session holds or one gone from
    /// the Maildir: the next UID less one, as of its last full listing or of a look at `new/`
    /// alone that found every newer line naming mail in `new/`. A newer line naming anything
    /// else sends the look to list `cur/` too, so that no message is skipped (UIDs only grow).
    pub accounted: u32,
}

/// A message of a session that let go of its file names: its UID, and as bits its flag
/// letters (`A`-`Z` from bit 0, `a`-`z` from bit 26) and `\Recent` (bit 63).
#[derive(Debug, Clone, Copy)]
pub(super) struct Dormant {
    uid: u32,
    bits: u64,
}

const RECENT_BIT: u64 = 1 << 63;

impl Dormant {
    /// `None` for flags with a letter outside `A`-`Z` and `a`-`z`, which bits cannot hold.
    fn of(message: &UidMessage) -> Option<Dormant> {
        let mut bits = if message.recent { RECENT_BIT } else { 0 };
        for letter in message.entry.flags().bytes() {
            bits |= 1
                << match letter {
                    b'A'..=b'Z' => letter - b'A',
                    b'a'..=b'z' => 26 + letter - b'a',
                    _ => return None,
                };
        }
        Some(Dormant {
            uid: message.uid,
            bits,
        })
    }

    /// The message again, with an entry that names no file but carries its flags.
    fn message(self) -> UidMessage {
        let flags: String = (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .enumerate()
            .filter(|(bit, _)| self.bits & (1 << bit) != 0)
            .map(|(_, letter)| char::from(letter))
            .collect();
        UidMessage {
            uid: self.uid,
            entry: MessageEntry::placeholder(&flags),
            recent: self.bits & RECENT_BIT != 0,
        }
    }
}

/// The Maildir letters of the system flags, in the order Maildir sorts them.
const SYSTEM: [(char, Flag<'static>); 5] = [
    ('D', Flag::Draft),
    ('F', Flag::Flagged),
    ('R', Flag::Answered),
    ('S', Flag::Seen),
    ('T', Flag::Deleted),
];

/// The IMAP flags of a message: system flags, keywords, and `\Recent`.
pub(super) fn message_flags(
    entry: &MessageEntry,
    recent: bool,
    keywords: &Keywords,
) -> Vec<FlagFetch<'static>> {
    let mut flags = Vec::with_capacity(entry.flags().len() + usize::from(recent));
    for letter in entry.flags().chars() {
        if let Some((_, flag)) = SYSTEM.iter().find(|(l, _)| *l == letter) {
            flags.push(FlagFetch::Flag(flag.clone()));
        } else if letter.is_ascii_lowercase() {
            if let Some(atom) = keywords
                .name_of(letter)
                .and_then(|name| Atom::try_from(name.to_owned()).ok())
            {
                flags.push(FlagFetch::Flag(Flag::Keyword(atom)));
            }
        }
    }
    if recent {
        flags.push(FlagFetch::Recent);
    }
    flags
}

/// The Maildir letter of a system flag.
pub(super) fn system_letter(flag: &Flag<'_>) -> Option<char> {
    SYSTEM.iter().find(|(_, f)| f == flag).map(|(l, _)| *l)
}

/// Whether a flag named in a command is `\Recent`.
pub(super) fn is_recent(flag: &Flag<'_>) -> bool {
    matches!(flag, Flag::Extension(_)) && flag.to_string().eq_ignore_ascii_case("\\Recent")
}

/// Split flags given by a client into system letters and keyword names; `\Recent` and
/// unknown system flags are refused with a text that teaches.
pub(super) fn split_flags(flags: &[Flag<'_>]) -> Result<(String, Vec<String>), String> {
    let mut letters = String::new();
    let mut keywords = Vec::new();
    for flag in flags {
        if let Some(letter) = system_letter(flag) {
            letters.push(letter);
        } else if is_recent(flag) {
            return Err("\\Recent cannot be set or cleared: the server manages it".into());
        } else if let Flag::Keyword(atom) = flag {
            keywords.push(atom.inner().to_owned());
        } else {
            return Err(format!(
                "unknown flag {flag} (system flags: \\Seen \\Answered \\Flagged \\Deleted \\Draft; keywords have no backslash)"
            ));
        }
    }
    Ok((letters, keywords))
}

/// FLAGS: the system flags and the keywords defined.
pub(super) fn defined_flags(keywords: &Keywords) -> Vec<Flag<'static>> {
    let mut flags = vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ];
    flags.extend(
        keywords
            .names()
            .filter_map(|name| Atom::try_from(name.to_owned()).ok())
            .map(Flag::Keyword),
    );
    flags
}

/// PERMANENTFLAGS: everything storable, and `\*` (new keywords) while letters are left.
fn permanent_flags(keywords: &Keywords, read_only: bool) -> Vec<FlagPerm<'static>> {
    if read_only {
        return Vec::new();
    }
    let mut flags: Vec<FlagPerm<'static>> = defined_flags(keywords)
        .into_iter()
        .map(FlagPerm::Flag)
        .collect();
    if keywords.names().count() < 26 {
        flags.push(FlagPerm::Asterisk);
    }
    flags
}

/// Send FLAGS and PERMANENTFLAGS (on SELECT, and when a keyword is defined).
pub(super) fn announce_flags(out: &mut Vec<u8>, keywords: &Keywords, read_only: bool) {
    response::data(out, Data::Flags(defined_flags(keywords)));
    response::untagged(
        out,
        StatusKind::Ok,
        Some(Code::PermanentFlags(permanent_flags(keywords, read_only))),
        if read_only {
            "No permanent flags permitted (read-only)"
        } else {
            "Flags permitted"
        },
    );
}

/// The UTF-8 name of a mailbox given on the wire, or a reply that says why not.
pub(super) fn mailbox_name(mailbox: &Mailbox<'_>) -> Result<String, Reply> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".into()),
        Mailbox::Other(other) => std::str::from_utf8(other.as_ref()).ok().and_then(crate::store::folders::decode_mutf7).ok_or_else(|| {
            Reply::no(
                "invalid mailbox name: non-ASCII names are written in modified UTF-7 (RFC 3501 5.1.3), e.g. Entw&APw-rfe",
            )
            .with(response::other_code("CANNOT"))
        }),
    }
}

impl Selected {
    /// After a look at `new/` alone ([`Maildir::sync_new_uids`]): when all it found is
    /// newer than every message the session has, and the session has nothing in `new/` nor
    /// anything gone to announce, add those messages and announce them (EXISTS, RECENT), and
    /// give `None`. Otherwise give `partial` back for the full merge.
    fn append_new(&mut self, partial: Snapshot, out: &mut Vec<u8>) -> Option<Snapshot> {
        let newest = self.messages.last().map_or(0, |m| m.uid);
        let simple = self.gone.is_empty()
            && partial.messages.iter().all(|m| m.uid > newest)
            && !self
                .messages
                .iter()
                .any(|m| m.entry.folder() == Folder::New);
        if !simple {
            return Some(partial);
        }
        self.uid_next = partial.uid_next;
        if partial.messages.is_empty() {
            return None;
        }
        let read_only = self.read_only;
        // Copies the list only when the snapshot cache still shares it (the first time).
        let messages = Arc::make_mut(&mut self.messages);
        let mut new_recent = false;
        for mut message in Arc::unwrap_or_clone(partial.messages) {
            // As at SELECT: mail still in new/ is recent to a read-only session.
            if read_only {
                message.recent = message.entry.folder() == Folder::New;
            }
            new_recent |= message.recent;
            messages.push(message);
        }
        response::data(out, Data::Exists(messages.len() as u32));
        if new_recent {
            let recent = messages.iter().filter(|m| m.recent).count() as u32;
            response::data(out, Data::Recent(recent));
        }
        None
    }

    /// The whole mailbox after a look at `new/` alone: the messages the session knows in
    /// `cur/` (unchanged since it listed them) and those `partial` found in `new/`.
    fn with_known_cur(&self, partial: Snapshot) -> Snapshot {
        let mut found = Arc::unwrap_or_clone(partial.messages)
            .into_iter()
            .peekable();
        let mut messages = Vec::with_capacity(self.messages.len() + found.len());
        let known = self.messages.iter().filter(|m| {
            m.entry.folder() == Folder::Cur && self.gone.binary_search(&m.uid).is_err()
        });
        for message in known {
            while found.peek().is_some_and(|f| f.uid < message.uid) {
                messages.extend(found.next());
            }
            if found.peek().is_some_and(|f| f.uid == message.uid) {
                found.next();
            }
            messages.push(message.clone());
        }
        messages.extend(found);
        Snapshot {
            uid_validity: partial.uid_validity,
            uid_next: partial.uid_next,
            messages: Arc::new(messages),
        }
    }

    /// The `NO` for a change to a read-only mailbox, saying why it is read-only.
    pub fn read_only_reply(&self, change: &str) -> Reply {
        if self.writable {
            Reply::no(format!(
                "the mailbox is read-only (EXAMINE): SELECT it to {change}"
            ))
        } else {
            Reply::no(format!(
                "the mailbox is read-only: the server has no permission to change it, so it cannot {change}"
            ))
            .with(response::other_code("NOPERM"))
        }
    }

    /// Let go of the messages' file names (most of an idle session's memory: about 96
    /// octets a message against 16), keeping each one's UID and flags; false, keeping all,
    /// when that would free nothing (other sessions share the list) or lose something.
    /// [`Session::wake`] lists the Maildir again before the next command.
    pub fn let_go(&mut self) -> bool {
        if self.dormant.is_some() || !self.gone.is_empty() || Arc::strong_count(&self.messages) > 1
        {
            return false;
        }
        let Some(dormant) = self.messages.iter().map(Dormant::of).collect() else {
            return false;
        };
        self.dormant = Some(dormant);
        self.messages = Arc::default();
        true
    }

    /// Whether the message of `uid` is gone from the Maildir, its EXPUNGE not yet sent.
    pub fn is_gone(&self, uid: u32) -> bool {
        !self.gone.is_empty() && self.gone.binary_search(&uid).is_ok()
    }

    /// Give message `index` the entry it has after this session renamed its file. The list
    /// is copied first if other sessions share it.
    pub fn set_entry(&mut self, index: usize, entry: MessageEntry) {
        Arc::make_mut(&mut self.messages)[index].entry = entry;
    }

    /// Drop the messages at `indexes` (ascending) from the list.
    pub fn remove(&mut self, indexes: &[usize]) {
        if indexes.is_empty() {
            return;
        }
        let mut index = 0;
        let mut removed = indexes.iter().copied().peekable();
        Arc::make_mut(&mut self.messages).retain(|_| {
            let drop = removed.next_if_eq(&index).is_some();
            index += 1;
            !drop
        });
    }

    /// The largest UID (0 when empty).
    pub fn max_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.uid)
    }

    /// The indexes of the messages `set` names, in mailbox order. Sequence numbers past the
    /// end are an error that teaches; UIDs that do not exist are left out (RFC 3501).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Reply> {
        let count = self.messages.len() as u32;
        if uid {
            // Messages are in UID order: each range of the set is one slice of them, found by
            // binary search (a `UID FETCH` of one message in 100,000 compares 17 UIDs, not
            // 100,000).
            return Ok(indexes(
                set,
                self.max_uid(),
                uid_span(&self.messages, |m| m.uid),
            ));
        }
        for sequence in set.0.as_ref() {
            let values: &[&SeqOrUid] = match sequence {
                Sequence::Single(v) => &[v],
                // `n:*` is whatever of it exists.
                Sequence::Range(SeqOrUid::Asterisk, _) | Sequence::Range(_, SeqOrUid::Asterisk) => {
                    &[]
                }
                Sequence::Range(a, b) => &[a, b],
            };
            for value in values {
                if let SeqOrUid::Value(n) = value {
                    if n.get() > count {
                        return Err(Reply::bad(format!(
                            "there is no message {n}: the mailbox has {count} (1:* means all of them; UID commands take UIDs)"
                        )));
                    }
                }
            }
        }
        Ok(indexes(set, count, number_span(count)))
    }
}

/// The indexes of UIDs `low..=high` among `items`, which are in UID order.
fn uid_span<'a, T>(
    items: &'a [T],
    uid: impl Fn(&T) -> u32 + 'a,
) -> impl Fn(u32, u32) -> std::ops::Range<usize> + 'a {
    move |low, high| {
        items.partition_point(|item| uid(item) < low)
            ..items.partition_point(|item| uid(item) <= high)
    }
}

/// The indexes of sequence numbers `low..=high` (from 1) among `count` messages.
fn number_span(count: u32) -> impl Fn(u32, u32) -> std::ops::Range<usize> {
    move |low, high| (low as usize - 1)..(high.min(count) as usize)
}

/// The indexes `set` names, ascending and each once: `span(low, high)` gives those of one
/// range (`*` being `largest`, and naming nothing when there is nothing).
fn indexes(
    set: &SequenceSet,
    largest: u32,
    span: impl Fn(u32, u32) -> std::ops::Range<usize>,
) -> Vec<usize> {
    let mut found = Vec::new();
    for (low, high) in super::search::set_ranges(set, largest) {
        found.extend(span(low, high));
    }
    if set.0.as_ref().len() > 1 {
        found.sort_unstable();
        found.dedup();
    }
    found
}

impl Session {
    pub(super) fn select(
        &mut self,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Reply {
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.selected = None;
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        let maildir = match account.mailboxes.open(&name) {
            Ok(maildir) => maildir,
            Err(error) => return self.store_reply(error, "opening the mailbox"),
        };
        // A Maildir the server may not change is served read-only, as Dovecot does.
        let writable = maildir.is_writable();
        let read_only = read_only || !writable;
        let looked = (Instant::now(), maildir.local_changes());
        let stamp = maildir.change_stamp().ok();
        let snapshot = match maildir.sync_uids_since(stamp, !read_only) {
            Ok(snapshot) => snapshot,
            Err(error) => return self.store_reply(error, "reading the mailbox"),
        };
        let keywords = match maildir.keywords() {
            Ok(keywords) => keywords,
            Err(error) => return self.store_reply(error, "reading the keywords"),
        };
        let mut messages = snapshot.messages;
        // A read-only session takes nothing from new/, but what is there is recent to it
        // (EXAMINE must not clear \Recent, RFC 3501 §6.3.2).
        if read_only && messages.iter().any(|m| m.entry.folder() == Folder::New) {
            for message in Arc::make_mut(&mut messages) {
                message.recent = message.entry.folder() == Folder::New;
            }
        }
        let selected = Selected {
            name,
            maildir,
            read_only,
            writable,
            uid_validity: snapshot.uid_validity,
            uid_next: snapshot.uid_next,
            messages,
            gone: Vec::new(),
            dormant: None,
            keywords,
            stamp,
            looked: stamp.map(|_| looked),
            trusted_until: None,
            accounted: snapshot.uid_next.saturating_sub(1),
        };
        announce_flags(out, &selected.keywords, read_only);
        response::data(out, Data::Exists(selected.messages.len() as u32));
        let recent = selected.messages.iter().filter(|m| m.recent).count() as u32;
        response::data(out, Data::Recent(recent));
        if let Some(first) = selected
            .messages
            .iter()
            .position(|m| !m.entry.has_flag('S'))
        {
            response::untagged(
                out,
                StatusKind::Ok,
                Some(Code::Unseen(non_zero(first as u32 + 1))),
                &format!("Message {} is the first unseen", first + 1),
            );
        }
        response::untagged(
            out,
            StatusKind::Ok,
            Some(Code::UidValidity(non_zero(selected.uid_validity))),
            "UIDs valid",
        );
        response::untagged(
            out,
            StatusKind::Ok,
            Some(Code::UidNext(non_zero(selected.uid_next))),
            "Predicted next UID",
        );
        self.selected = Some(Box::new(selected));
        // It has just listed the Maildir: what changes from now on shows at the next
        // command. (Its stamp, taken before the listing, is not settled while the folders
        // changed within the last second, so a change hidden in that tick is found there.)
        self.sync = Sync::Skip;
        if !writable {
            Reply::ok("completed, read-only: the server has no permission to change this mailbox")
                .with(Code::ReadOnly)
        } else if read_only {
            Reply::ok("EXAMINE completed, read-only").with(Code::ReadOnly)
        } else {
            Reply::ok("SELECT completed").with(Code::ReadWrite)
        }
    }

    pub(super) fn close(&mut self) -> Reply {
        let Some(selected) = self.selected.take() else {
            return Reply::ok("CLOSE completed");
        };
        if selected.read_only {
            return Reply::ok("CLOSE completed");
        }
        let mut failed = false;
        let mut removed = false;
        for message in selected
            .messages
            .iter()
            .filter(|m| !selected.is_gone(m.uid) && m.entry.has_flag('T'))
        {
            match selected.maildir.remove(&message.entry) {
                Ok(_) => removed = true,
                Err(error) => {
                    failed = true;
                    self.events.push(Event::StoreError {
                        user: self.user_string(),
                        error: error.to_string(),
                    });
                }
            }
        }
        if removed {
            let _ = selected.maildir.sync();
        }
        if failed {
            Reply::no("CLOSE: some deleted messages could not be removed (server-side store error)")
        } else {
            Reply::ok("CLOSE completed")
        }
    }

    /// EXPUNGE, or UID EXPUNGE with a set (RFC 4315): remove the `\Deleted` messages.
    pub(super) fn expunge(&mut self, uids: Option<&SequenceSet>, out: &mut Vec<u8>) -> Reply {
        let Some(selected) = self.selected.as_mut() else {
            return Reply::bad("EXPUNGE needs a selected mailbox: SELECT INBOX first");
        };
        if selected.read_only {
            return selected.read_only_reply("expunge");
        }
        let largest = selected.max_uid();
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for (index, message) in selected.messages.iter().enumerate() {
            if selected.is_gone(message.uid) || !message.entry.has_flag('T') {
                continue;
            }
            if let Some(set) = uids {
                if !super::search::sequence_set_contains(set, message.uid, largest) {
                    continue;
                }
            }
            match selected.maildir.remove(&message.entry) {
                Ok(_) => removed.push(index),
                Err(error) => errors.push(error.to_string()),
            }
        }
        if !removed.is_empty() {
            let folders: Vec<Folder> = removed
                .iter()
                .map(|&i| selected.messages[i].entry.folder())
                .collect();
            let _ = selected.maildir.sync_folders(&folders);
        }
        if !removed.is_empty() && selected.gone.is_empty() {
            // It announces what it removed; its own removals changed the folders' times, and
            // listing them again now would find only them: what others changed shows at the
            // next command.
            self.sync = Sync::Skip;
        }
        selected.remove(&removed);
        // Highest first, so that each number is right when it is read.
        for &index in removed.iter().rev() {
            response::data(out, Data::Expunge(non_zero(index as u32 + 1)));
        }
        let failed = !errors.is_empty();
        for error in errors {
            self.events.push(Event::StoreError {
                user: self.user_string(),
                error,
            });
        }
        if failed {
            Reply::no("some deleted messages could not be removed (server-side store error)")
        } else {
            Reply::ok(format!("EXPUNGE completed ({} removed)", removed.len()))
        }
    }

    /// A session that let go of its file names ([`Selected::let_go`]) takes them back, from a
    /// new listing of the Maildir, and announces what changed meanwhile (EXISTS, FETCH FLAGS;
    /// EXPUNGE waits for a command that allows it, as the next one may be a FETCH). Nothing
    /// to do for a session that is awake.
    pub(super) fn wake(&mut self, out: &mut Vec<u8>) {
        self.wake_announcing(false, out);
    }

    /// [`wake`](Self::wake), with EXPUNGE announced when `expunge_ok` (during IDLE). Until
    /// the listing succeeds, the messages count as gone, so that nothing opens a file by an
    /// entry that names none.
    fn wake_announcing(&mut self, expunge_ok: bool, out: &mut Vec<u8>) {
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        let Some(dormant) = selected.dormant.take() else {
            return;
        };
        selected.messages = Arc::new(dormant.iter().map(|d| d.message()).collect());
        selected.stamp = None;
        self.refresh(expunge_ok, Sync::Full, out);
        if let Some(selected) = self.selected.as_mut() {
            if selected.stamp.is_none() {
                selected.gone = selected.messages.iter().map(|m| m.uid).collect();
            }
        }
    }

    /// Run `change`, a command that renames or removes messages of the selected mailbox and
    /// updates the session's view to match (STORE, EXPUNGE). When the folders were as the
    /// session last saw them, and no other session of this process changed the mailbox
    /// meanwhile, the folders' times after it are the session's own doing: they are kept, and
    /// trusted for a moment as after its moves into `cur/` (`Selected::trusted_until`), so that
    /// the next look does not list a mailbox of 100,000 messages again to find only the
    /// session's own changes (Dovecot's index records its own changes likewise).
    pub(super) fn own_change<T>(&mut self, change: impl FnOnce(&mut Self) -> T) -> T {
        let before = self.selected.as_ref().and_then(|selected| {
            let recorded = selected.stamp?;
            let now = selected.maildir.change_stamp().ok()?;
            let as_seen = [Folder::New, Folder::Cur]
                .into_iter()
                .all(|folder| now.unchanged_since(&recorded, folder, true));
            as_seen.then(|| {
                (
                    now,
                    recorded,
                    selected.maildir.local_changes(),
                    selected.maildir.own_changes(),
                )
            })
        });
        let result = change(self);
        let (Some((before, recorded, tally, own)), Some(selected)) =
            (before, self.selected.as_mut())
        else {
            return result;
        };
        let tally_now = selected.maildir.local_changes();
        let by_this_session = selected.maildir.own_changes().wrapping_sub(own);
        if by_this_session > 0 && by_this_session == tally_now.wrapping_sub(tally) {
            if let Ok(after) = selected.maildir.change_stamp() {
                let now = Instant::now();
                selected.stamp = Some(after.after_own_change(&before, &recorded));
                selected.looked = Some((now, tally_now));
                selected.trusted_until = Some(now + QUICK_LOOK_WINDOW);
            }
        }
        result
    }

    /// A look at the selected mailbox failed: the session goes on with what it knows, and the
    /// error goes to the log.
    fn report_store_error(&mut self, error: crate::store::StoreError) {
        let user = self.user_string();
        self.events.push(Event::StoreError {
            user,
            error: error.to_string(),
        });
    }

    /// Announce what changed in the selected mailbox since the session last looked: EXPUNGE
    /// (only when `expunge_ok`; until then the messages keep their numbers), EXISTS, RECENT,
    /// and FETCH FLAGS for flags changed by others. With [`Sync::Fast`], unchanged directory
    /// times are enough to skip the Maildir, even when they are not settled yet; with
    /// [`Sync::Quick`] a look within the last moment is; with [`Sync::Skip`] it does nothing.
    pub(super) fn refresh(&mut self, expunge_ok: bool, sync: Sync, out: &mut Vec<u8>) {
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        if sync == Sync::Skip {
            return;
        }
        let pending = expunge_ok && !selected.gone.is_empty();
        let changes = selected.maildir.local_changes();
        if sync == Sync::Quick && !pending && selected.dormant.is_none() {
            if let Some((at, seen)) = selected.looked {
                if seen == changes && at.elapsed() < QUICK_LOOK_WINDOW {
                    return;
                }
            }
        }
        let looked_at = Instant::now();
        let stamp = selected.maildir.change_stamp();
        selected.looked = stamp.as_ref().ok().map(|_| (looked_at, changes));
        let trust_unsettled =
            sync != Sync::Full || selected.trusted_until.is_some_and(|t| looked_at < t);
        let unchanged = |folder| match (&stamp, &selected.stamp) {
            (Ok(now), Some(then)) => now.unchanged_since(then, folder, trust_unsettled),
            _ => false,
        };
        let (new_unchanged, cur_unchanged) = (unchanged(Folder::New), unchanged(Folder::Cur));
        if new_unchanged && cur_unchanged && !pending {
            return;
        }
        if selected.dormant.is_some() {
            // Hibernating in IDLE, and the Maildir changed: list it whole, then announce.
            self.wake_announcing(expunge_ok, out);
            return;
        }
        let take_recent = !selected.read_only;
        // Only new/ changed (a delivery, an APPEND): list new/ alone, and keep what the session
        // knows of cur/.
        let (found_new, taken) = if cur_unchanged && !pending {
            match selected
                .maildir
                .sync_new_uids(take_recent, selected.accounted)
            {
                Ok(NewOnly::Found(snapshot)) => (Some(snapshot), HashSet::new()),
                Ok(NewOnly::ListAll { recent }) => (None, recent),
                Err(error) => return self.report_store_error(error),
            }
        } else {
            (None, HashSet::new())
        };
        let only_new = found_new.is_some();
        let mut snapshot = match found_new {
            Some(snapshot) => snapshot,
            None => match selected
                .maildir
                .sync_uids_since(stamp.as_ref().ok().copied(), take_recent)
            {
                Ok(snapshot) => snapshot,
                Err(error) => return self.report_store_error(error),
            },
        };
        if !taken.is_empty() {
            // Taken into cur/ by the look at new/ before it had to list both folders: recent
            // to this session, which the full listing cannot tell any more.
            for message in Arc::make_mut(&mut snapshot.messages) {
                message.recent |= taken.contains(message.entry.base());
            }
        }
        selected.accounted = snapshot.uid_next.saturating_sub(1);
        // Messages this look took from new/ into cur/ changed the folders' times itself: keep
        // the stamp taken after those renames, so that the next look does not list the
        // Maildir again for them. (Another program's change in between is found by the first
        // full look after `trusted_until`.)
        let moved =
            take_recent && (snapshot.messages.iter().any(|m| m.recent) || !taken.is_empty());
        selected.trusted_until = None;
        if moved {
            let after = selected.maildir.change_stamp().ok();
            // The tally moved once for those renames; if it moved more, another session
            // changed the mailbox meanwhile, and the next look must look.
            let tally = selected.maildir.local_changes();
            let tally = if tally == changes.wrapping_add(1) {
                selected.trusted_until = Some(Instant::now() + QUICK_LOOK_WINDOW);
                tally
            } else {
                changes
            };
            selected.looked = after.map(|_| (Instant::now(), tally));
            selected.stamp = after;
        } else {
            selected.stamp = stamp.ok();
        }
        if snapshot.uid_validity != selected.uid_validity {
            // The UIDs this client holds mean nothing any more: it must start over.
            response::bye(
                out,
                "UIDVALIDITY changed: the mailbox was rebuilt; reconnect",
            );
            self.selected = None;
            self.closing = true;
            return;
        }
        if let Ok(keywords) = selected.maildir.keywords() {
            if keywords != selected.keywords {
                selected.keywords = keywords;
                announce_flags(out, &selected.keywords, selected.read_only);
            }
        }
        let snapshot = if only_new {
            match selected.append_new(snapshot, out) {
                Some(partial) => selected.with_known_cur(partial),
                None => return,
            }
        } else {
            snapshot
        };
        selected.uid_next = snapshot.uid_next;
        let read_only = selected.read_only;
        let old = std::mem::take(&mut selected.messages);
        let old_gone = std::mem::take(&mut selected.gone);
        let old_count = old.len();
        let max_old_uid = old.last().map_or(0, |m| m.uid);
        let mut merged: Vec<UidMessage> =
            Vec::with_capacity(snapshot.messages.len().max(old.len()));
        let mut expunged: Vec<u32> = Vec::new();
        let mut changed: Vec<usize> = Vec::new();
        // Entries are moved out of the fresh list when nothing else holds it (a small
        // mailbox), copied when the store keeps it for other sessions.
        let mut fresh = Arc::unwrap_or_clone(snapshot.messages)
            .into_iter()
            .peekable();
        for (index, message) in old.iter().enumerate() {
            let was_gone = !old_gone.is_empty() && old_gone.binary_search(&message.uid).is_ok();
            // Skip UIDs the session never had below this one (they cannot appear later).
            while fresh.peek().is_some_and(|m| m.uid < message.uid) {
                fresh.next();
            }
            match fresh.peek() {
                Some(current) if current.uid == message.uid => {
                    let current = fresh.next().expect("peeked");
                    if current.entry.flags() != message.entry.flags() && !was_gone {
                        changed.push(merged.len());
                    }
                    merged.push(UidMessage {
                        uid: message.uid,
                        entry: current.entry,
                        recent: message.recent || current.recent,
                    });
                }
                _ => {
                    if expunge_ok {
                        expunged.push(index as u32 + 1);
                    } else {
                        selected.gone.push(message.uid);
                        merged.push(message.clone());
                    }
                }
            }
        }
        let mut new_recent = false;
        for mut current in fresh {
            if current.uid > max_old_uid {
                // As at SELECT: mail still in new/ is recent to a read-only session.
                if read_only {
                    current.recent = current.entry.folder() == Folder::New;
                }
                new_recent |= current.recent;
                merged.push(current);
            }
        }
        for &seq in expunged.iter().rev() {
            response::data(out, Data::Expunge(non_zero(seq)));
        }
        let exists = merged.len();
        if exists + expunged.len() != old_count {
            response::data(out, Data::Exists(exists as u32));
        }
        if new_recent {
            let recent = merged.iter().filter(|m| m.recent).count() as u32;
            response::data(out, Data::Recent(recent));
        }
        for index in changed {
            let message = &merged[index];
            let flags = message_flags(&message.entry, message.recent, &selected.keywords);
            if let Ok(items) =
                Vec1::try_from(vec![imap_codec::imap_types::fetch::MessageDataItem::Flags(
                    flags,
                )])
            {
                response::data(
                    out,
                    Data::Fetch {
                        seq: non_zero(index as u32 + 1),
                        items,
                    },
                );
            }
        }
        selected.messages = Arc::new(merged);
    }
}

/// The UIDs of a COPYUID or APPENDUID code, as ranges where they run on.
pub(super) fn uid_set(uids: &[u32]) -> Option<imap_codec::imap_types::extensions::uidplus::UidSet> {
    use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
    let mut elements = Vec::new();
    let mut iter = uids.iter().copied().filter_map(NonZeroU32::new).peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter
            .peek()
            .is_some_and(|next| Some(*next) == end.checked_add(1))
        {
            end = iter.next().expect("peeked");
        }
        elements.push(if start == end {
            UidElement::Single(start)
        } else {
            UidElement::Range(start, end)
        });
    }
    Vec1::try_from(elements).ok().map(UidSet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::search::sequence_set_contains;
    use proptest::prelude::*;

    /// A set written as IMAP has it, from `(first, last)` pairs, 0 standing for `*`.
    fn set_of(parts: &[(u32, Option<u32>)]) -> SequenceSet {
        let value = |n: u32| {
            if n == 0 {
                "*".to_owned()
            } else {
                n.to_string()
            }
        };
        let text: Vec<String> = parts
            .iter()
            .map(|&(a, b)| match b {
                None => value(a),
                Some(b) => format!("{}:{}", value(a), value(b)),
            })
            .collect();
        SequenceSet::try_from(text.join(",").as_str()).unwrap()
    }

    proptest! {
        #[test]
        fn the_uids_a_set_names_are_found_by_binary_search_as_by_testing_each(
            gaps in proptest::collection::vec(1u32..5, 0..40),
            parts in proptest::collection::vec((0u32..120, proptest::option::of(0u32..120)), 1..5),
        ) {
            let uids: Vec<u32> = gaps.iter().scan(0, |uid, gap| { *uid += gap; Some(*uid) }).collect();
            let set = set_of(&parts);
            let largest = uids.last().copied().unwrap_or(0);
            let found = indexes(&set, largest, uid_span(&uids, |&u| u));
            let tested: Vec<usize> = (0..uids.len())
                .filter(|&i| sequence_set_contains(&set, uids[i], largest))
                .collect();
            prop_assert_eq!(found, tested);
        }

        #[test]
        fn the_sequence_numbers_a_set_names_are_found_by_range_as_by_testing_each(
            count in 0u32..60,
            parts in proptest::collection::vec((0u32..60, proptest::option::of(0u32..60)), 1..5),
        ) {
            // Numbers past the end are refused before (`Selected::resolve`).
            prop_assume!(parts.iter().all(|&(a, b)| a <= count && b.unwrap_or(0) <= count));
            let set = set_of(&parts);
            let found = indexes(&set, count, number_span(count));
            let tested: Vec<usize> = (0..count as usize)
                .filter(|&i| sequence_set_contains(&set, i as u32 + 1, count))
                .collect();
            prop_assert_eq!(found, tested);
        }
    }
}
