//! COPY, MOVE (RFC 6851) and their UID forms: messages are copied into the target Maildir
//! (hard links where possible, by the store), keywords carried over by name, and the new UIDs
//! reported with COPYUID (RFC 4315). MOVE then removes the originals and announces their
//! EXPUNGEs after an untagged `OK [COPYUID ...]`.

use std::collections::HashMap;
use std::io;

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, StatusKind};
use imap_codec::imap_types::sequence::SequenceSet;

use super::response::{self, non_zero, Reply};
use super::select::{mailbox_name, uid_set};
use super::session::{Event, Session};
use crate::store::StoreError;

impl Session {
    pub(super) fn copy(
        &mut self,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        moving: bool,
        out: &mut Vec<u8>,
    ) -> Reply {
        let verb = if moving { "MOVE" } else { "COPY" };
        let name = match mailbox_name(mailbox) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let (Some(account), Some(selected)) = (self.account.as_ref(), self.selected.as_ref())
        else {
            return Reply::bad(format!(
                "{verb} needs a selected mailbox: SELECT INBOX first"
            ));
        };
        if moving && selected.read_only {
            return selected.read_only_reply("move messages");
        }
        let targets = match selected.resolve(set, uid) {
            Ok(targets) => targets,
            Err(reply) => return reply,
        };
        let target = match account.mailboxes.open(&name) {
            Ok(target) => target,
            Err(StoreError::NoSuchMailbox { .. }) => {
                return Reply::no(format!(
                    "no mailbox \"{}\": CREATE it first",
                    crate::store::folders::encode_mutf7(&name)
                ))
                .with(Code::TryCreate)
            }
            Err(error) => return self.store_reply(error, "opening the target mailbox"),
        };
        // Keyword letters differ between Maildirs: carry keywords over by name.
        let mut names: Vec<String> = Vec::new();
        for &index in &targets {
            for letter in selected.messages[index].entry.flags().chars() {
                if letter.is_ascii_lowercase() {
                    if let Some(name) = selected.keywords.name_of(letter) {
                        if !names.iter().any(|n| n == name) {
                            names.push(name.to_owned());
                        }
                    }
                }
            }
        }
        let mut mapping: HashMap<char, char> = HashMap::new();
        if !names.is_empty() {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match target.keyword_letters(&refs) {
                Ok((keywords, _)) => {
                    for name in &names {
                        if let (Some(from), Some(to)) =
                            (selected.keywords.letter_of(name), keywords.letter_of(name))
                        {
                            mapping.insert(from, to);
                        }
                    }
                }
                Err(error) => return self.store_reply(error, "copying keywords"),
            }
        }
        let mut copied = Vec::new();
        let mut source_uids = Vec::new();
        let mut copied_indexes = Vec::new();
        let mut missing = false;
        let mut failure = None;
        for &index in &targets {
            let message = &selected.messages[index];
            if selected.is_gone(message.uid) {
                missing = true;
                continue;
            }
            let flags: String = message
                .entry
                .flags()
                .chars()
                .filter_map(|c| {
                    if c.is_ascii_lowercase() {
                        mapping.get(&c).copied()
                    } else {
                        Some(c)
                    }
                })
                .collect();
            match target.copy_from(&selected.maildir, &message.entry, &flags) {
                Ok(entry) => {
                    copied.push(entry);
                    source_uids.push(message.uid);
                    copied_indexes.push(index);
                }
                Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => missing = true,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            // RFC 3501: a failed COPY leaves the target as it was.
            for entry in &copied {
                let _ = target.remove(entry);
            }
            return self.store_reply(error, verb);
        }
        let code = if copied.is_empty() {
            None
        } else {
            // The target's UIDVALIDITY comes with the UIDs, from its uidlist read under the
            // lock: the target is not listed for it.
            let (validity, uids) = match target.number_added_with_validity(&copied) {
                Ok(numbered) => numbered,
                Err(error) => return self.store_reply(error, verb),
            };
            match (uid_set(&source_uids), uid_set(&uids)) {
                (Some(source), Some(destination)) if validity != 0 => Some(Code::CopyUid {
                    uid_validity: non_zero(validity),
                    source,
                    destination,
                }),
                _ => None,
            }
        };
        if !moving {
            let mut reply = if missing {
                Reply::no("some of the messages no longer exist; the others were copied")
                    .with(response::other_code("EXPUNGEISSUED"))
            } else {
                Reply::ok("COPY completed")
            };
            if let (Some(code), false) = (code, missing) {
                reply = reply.with(code);
            }
            return reply;
        }
        if let Some(code) = code {
            response::untagged(out, StatusKind::Ok, Some(code), "Moved UIDs");
        }
        let user = self.user_string();
        let Some(selected) = self.selected.as_mut() else {
            return Reply::ok("MOVE completed");
        };
        let mut errors = Vec::new();
        let mut removed = Vec::new();
        for &index in &copied_indexes {
            match selected.maildir.remove(&selected.messages[index].entry) {
                Ok(_) => removed.push(index),
                Err(error) => errors.push(error.to_string()),
            }
        }
        selected.remove(&removed);
        // Highest first, so that each number is right when it is read.
        for &index in removed.iter().rev() {
            response::data(out, Data::Expunge(non_zero(index as u32 + 1)));
        }
        let _ = selected.maildir.sync();
        let failed = !errors.is_empty();
        for error in errors {
            self.events.push(Event::StoreError {
                user: user.clone(),
                error,
            });
        }
        if failed {
            Reply::no(
                "some messages were copied but could not be removed (server-side store error)",
            )
        } else if missing {
            Reply::no("some of the messages no longer exist; the others were moved")
                .with(response::other_code("EXPUNGEISSUED"))
        } else {
            Reply::ok("MOVE completed")
        }
    }
}
