//! LIST, LSUB, STATUS, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and NAMESPACE: the
//! user's mailboxes, one personal namespace with `.` as the separator (Dovecot's Maildir++).
//! Names are UTF-8 in the store and modified UTF-7 on the wire; `INBOX` matches in any case.

use std::collections::BTreeMap;

use imap_codec::imap_types::core::{Atom, IString, QuotedChar};
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::response::{self, non_zero, Reply};
use super::select::mailbox_name;
use super::session::Session;
use crate::store::folders::SEPARATOR;
use crate::store::Folder;

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything but the
/// separator; the `INBOX` at the start of a name matches in any case.
pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let inbox = name.len() >= 5
        && name[..5].iter().collect::<String>() == "INBOX"
        && (name.len() == 5 || name[5] == SEPARATOR);
    let same = |i: usize, c: char| {
        if inbox && i < 5 {
            name[i].eq_ignore_ascii_case(&c)
        } else {
            name[i] == c
        }
    };
    let n = name.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for &p in &pattern {
        let mut next = vec![false; n + 1];
        match p {
            '*' => {
                let mut on = false;
                for i in 0..=n {
                    on |= reach[i];
                    next[i] = on;
                }
            }
            '%' => {
                for i in 0..=n {
                    next[i] = reach[i] || (i > 0 && next[i - 1] && name[i - 1] != SEPARATOR);
                }
            }
            c => {
                for i in 0..n {
                    if reach[i] && same(i, c) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reach = next;
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[n]
}

fn wire_mailbox(name: &str) -> Option<Mailbox<'static>> {
    if name == "INBOX" {
        return Some(Mailbox::Inbox);
    }
    Mailbox::try_from(crate::store::folders::encode_mutf7(name)).ok()
}

fn attribute(name: &'static str) -> FlagNameAttribute<'static> {
    FlagNameAttribute::from(Atom::try_from(name).expect("valid attribute"))
}

fn separator() -> Option<QuotedChar> {
    QuotedChar::try_from(SEPARATOR).ok()
}

impl Session {
    pub(super) fn list(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Vec<u8>,
    ) -> Reply {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match mailbox_name(reference) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let pattern_bytes: &[u8] = match pattern {
            ListMailbox::Token(token) => token.as_ref(),
            ListMailbox::String(string) => string.as_ref(),
        };
        // A pattern that is not valid modified UTF-7 (a stray `&`) is matched as written, as
        // Dovecot does: it is a well-formed list-mailbox (RFC 3501 §9), so no BAD, and at
        // worst it matches nothing.
        let Some(pattern) = std::str::from_utf8(pattern_bytes).ok().map(|text| {
            crate::store::folders::decode_mutf7(text).unwrap_or_else(|| text.to_owned())
        }) else {
            return Reply::bad(format!(
                "{verb} pattern is not ASCII: write non-ASCII names in modified UTF-7, e.g. {verb} \"\" \"Entw&APw-rfe*\""
            ));
        };
        if pattern.is_empty() && !lsub {
            // RFC 3501: the hierarchy separator and the root.
            response::data(
                out,
                Data::List {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter: separator(),
                    mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
                },
            );
            return Reply::ok("LIST completed");
        }
        let full = format!("{reference}{pattern}");
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        // Name -> (attributes); BTreeMap keeps the answer sorted.
        let mut found: BTreeMap<String, Vec<FlagNameAttribute<'static>>> = BTreeMap::new();
        let names: Vec<(String, Option<bool>)> = if lsub {
            match account.mailboxes.subscriptions() {
                Ok(names) => names.into_iter().map(|n| (n, None)).collect(),
                Err(error) => return self.store_reply(error, "reading the subscriptions"),
            }
        } else {
            match account.mailboxes.list() {
                Ok(list) => list
                    .into_iter()
                    .map(|info| (info.name, Some(info.has_children)))
                    .collect(),
                Err(error) => return self.store_reply(error, "listing the mailboxes"),
            }
        };
        let existing: std::collections::HashSet<&str> =
            names.iter().map(|(n, _)| n.as_str()).collect();
        for (name, has_children) in &names {
            if pattern_matches(&full, name) {
                let attributes = match has_children {
                    Some(true) => vec![attribute("HasChildren")],
                    Some(false) => vec![attribute("HasNoChildren")],
                    None => Vec::new(),
                };
                found.insert(name.clone(), attributes);
            }
            // Levels above a mailbox that are not mailboxes themselves: `%` can stop there.
            for (at, _) in name.match_indices(SEPARATOR) {
                let parent = &name[..at];
                if !parent.is_empty()
                    && !existing.contains(parent)
                    && !found.contains_key(parent)
                    && pattern_matches(&full, parent)
                {
                    let mut attributes = vec![FlagNameAttribute::Noselect];
                    if !lsub {
                        attributes.push(attribute("HasChildren"));
                    }
                    found.insert(parent.to_owned(), attributes);
                }
            }
        }
        for (name, items) in found {
            let Some(mailbox) = wire_mailbox(&name) else {
                continue;
            };
            let data = if lsub {
                Data::Lsub {
                    items,
                    delimiter: separator(),
                    mailbox,
                }
            } else {
                Data::List {
                    items,
                    delimiter: separator(),
                    mailbox,
                }
            };
            response::data(out, data);
        }
        Reply::ok(format!("{verb} completed"))
    }

    pub(super) fn status(
        &mut self,
        mailbox: &Mailbox<'_>,
        item_names: &[StatusDataItemName],
        out: &mut Vec<u8>,
    ) -> Reply {
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        // (messages, recent, uid_next, uid_validity, unseen, deleted, deleted octets)
        let mut deleted_storage = 0u64;
        let counts = match &self.selected {
            Some(selected) if selected.name == name => {
                let live = selected
                    .messages
                    .iter()
                    .filter(|m| !selected.is_gone(m.uid));
                let mut counts = (
                    0u32,
                    0u32,
                    selected.uid_next,
                    selected.uid_validity,
                    0u32,
                    0u32,
                );
                for message in live {
                    counts.0 += 1;
                    counts.1 += u32::from(message.recent);
                    counts.4 += u32::from(!message.entry.has_flag('S'));
                    if message.entry.has_flag('T') {
                        counts.5 += 1;
                        deleted_storage +=
                            selected.maildir.size_on_disk(&message.entry).unwrap_or(0);
                    }
                }
                counts
            }
            _ => {
                let maildir = match account.mailboxes.open(&name) {
                    Ok(maildir) => maildir,
                    Err(error) => return self.store_reply(error, "opening the mailbox"),
                };
                let snapshot = match maildir.sync_uids(false) {
                    Ok(snapshot) => snapshot,
                    Err(error) => return self.store_reply(error, "reading the mailbox"),
                };
                let mut counts = (
                    0u32,
                    0u32,
                    snapshot.uid_next,
                    snapshot.uid_validity,
                    0u32,
                    0u32,
                );
                for message in snapshot.messages.iter() {
                    counts.0 += 1;
                    counts.1 += u32::from(message.entry.folder() == Folder::New);
                    counts.4 += u32::from(!message.entry.has_flag('S'));
                    if message.entry.has_flag('T') {
                        counts.5 += 1;
                        deleted_storage += maildir.size_on_disk(&message.entry).unwrap_or(0);
                    }
                }
                counts
            }
        };
        let (messages, recent, uid_next, uid_validity, unseen, deleted) = counts;
        let mut items = Vec::new();
        for item in item_names {
            items.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(messages),
                StatusDataItemName::Recent => StatusDataItem::Recent(recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(non_zero(uid_next)),
                StatusDataItemName::UidValidity => {
                    StatusDataItem::UidValidity(non_zero(uid_validity))
                }
                StatusDataItemName::Unseen => StatusDataItem::Unseen(unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(deleted),
                StatusDataItemName::DeletedStorage => {
                    StatusDataItem::DeletedStorage(deleted_storage)
                }
                #[allow(unreachable_patterns)]
                _ => continue,
            });
        }
        let Some(mailbox) = wire_mailbox(&name) else {
            return Reply::no("mailbox name cannot be sent back");
        };
        response::data(
            out,
            Data::Status {
                mailbox,
                items: items.into(),
            },
        );
        Reply::ok("STATUS completed")
    }

    pub(super) fn create(&mut self, mailbox: &Mailbox<'_>) -> Reply {
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        // A trailing separator says the name will have children (RFC 3501 §6.3.3).
        let name = name.trim_end_matches(SEPARATOR).to_owned();
        if name.eq_ignore_ascii_case("INBOX") {
            return Reply::no("INBOX always exists").with(response::other_code("ALREADYEXISTS"));
        }
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        match account.mailboxes.create(&name) {
            Ok(()) => Reply::ok("CREATE completed"),
            Err(error) => self.store_reply(error, "CREATE"),
        }
    }

    pub(super) fn delete(&mut self, mailbox: &Mailbox<'_>) -> Reply {
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        if name.eq_ignore_ascii_case("INBOX") {
            return Reply::no("INBOX cannot be deleted").with(response::other_code("CANNOT"));
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            return Reply::no("the mailbox is selected: CLOSE it first, then DELETE")
                .with(response::other_code("INUSE"));
        }
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        match account.mailboxes.delete(&name) {
            Ok(()) => Reply::ok("DELETE completed"),
            Err(error) => self.store_reply(error, "DELETE"),
        }
    }

    pub(super) fn rename(&mut self, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Reply {
        let (from, to) = match (mailbox_name(from), mailbox_name(to)) {
            (Ok(from), Ok(to)) => (from, to.trim_end_matches(SEPARATOR).to_owned()),
            (Err(reply), _) | (_, Err(reply)) => return reply,
        };
        if let Some(selected) = &self.selected {
            let prefix = format!("{from}{SEPARATOR}");
            if selected.name == from || selected.name.starts_with(&prefix) {
                return Reply::no("the mailbox is selected: CLOSE it first, then RENAME")
                    .with(response::other_code("INUSE"));
            }
        }
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        match account.mailboxes.rename(&from, &to) {
            Ok(()) => Reply::ok("RENAME completed"),
            Err(error) => self.store_reply(error, "RENAME"),
        }
    }

    pub(super) fn subscribe(&mut self, mailbox: &Mailbox<'_>, subscribed: bool) -> Reply {
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let Some(account) = &self.account else {
            return Reply::bad("Log in first: LOGIN user password");
        };
        let verb = if subscribed {
            "SUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        match account.mailboxes.set_subscribed(&name, subscribed) {
            Ok(()) => Reply::ok(format!("{verb} completed")),
            Err(error) => self.store_reply(error, verb),
        }
    }

    pub(super) fn namespace(&mut self, out: &mut Vec<u8>) -> Reply {
        let personal = IString::try_from("")
            .map(|prefix| vec![Namespace::new(prefix, separator())])
            .unwrap_or_default();
        response::data(
            out,
            Data::Namespace {
                personal,
                other: Vec::new(),
                shared: Vec::new(),
            },
        );
        Reply::ok("NAMESPACE completed")
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "INBOX"));
        assert!(pattern_matches("*", "a.b.c"));
        assert!(pattern_matches("%", "a"));
        assert!(!pattern_matches("%", "a.b"));
        assert!(pattern_matches("a.%", "a.b"));
        assert!(!pattern_matches("a.%", "a.b.c"));
        assert!(pattern_matches("a*", "a.b.c"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox.%", "INBOX.x"));
        assert!(!pattern_matches("inbox", "Inbox2"));
        assert!(!pattern_matches("b*", "a"));
        assert!(pattern_matches("*.c", "a.b.c"));
        assert!(pattern_matches("%.%.c", "a.b.c"));
    }
}
