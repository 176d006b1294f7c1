//! STORE and UID STORE: FLAGS, +FLAGS, -FLAGS (and `.SILENT`), as Maildir file renames.
//! System flags are the letters D F R S T; keywords get lowercase letters from
//! `dovecot-keywords`, defined on first use while letters are left.

use std::io;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;

use super::response::{self, non_zero, Reply};
use super::select::{announce_flags, message_flags, split_flags};
use super::session::{Event, Session};

impl Session {
    pub(super) fn store_flags(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        answer: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Reply {
        let (system, keyword_names) = match split_flags(flags) {
            Ok(split) => split,
            Err(text) => return Reply::bad(format!("STORE: {text}")),
        };
        let user = self.user_string();
        let Some(selected) = self.selected.as_mut() else {
            return Reply::bad("STORE needs a selected mailbox: SELECT INBOX first");
        };
        if selected.read_only {
            return selected.read_only_reply("change flags");
        }
        let targets = match selected.resolve(set, uid) {
            Ok(targets) => targets,
            Err(reply) => return reply,
        };
        let mut letters = system;
        let mut dropped = false;
        if !keyword_names.is_empty() {
            let names: Vec<&str> = keyword_names.iter().map(String::as_str).collect();
            match selected.maildir.keyword_letters(&names) {
                Ok((keywords, keyword_letters)) => {
                    dropped = keyword_letters.chars().count() < names.len();
                    letters.push_str(&keyword_letters);
                    if keywords != selected.keywords {
                        selected.keywords = keywords;
                        announce_flags(out, &selected.keywords, false);
                    }
                }
                Err(error) => return self.store_reply(error, "defining keywords"),
            }
        }
        let mut missing = false;
        let mut errors = Vec::new();
        for index in targets {
            let message = &selected.messages[index];
            if selected.is_gone(message.uid) {
                missing = true;
                continue;
            }
            // Applied to the flags the file has when it is renamed: if another program
            // changed them since the session looked, its change stays.
            let apply = |current: &str| -> String {
                match kind {
                    StoreType::Replace => letters.clone(),
                    StoreType::Add => current.chars().chain(letters.chars()).collect(),
                    StoreType::Remove => {
                        current.chars().filter(|c| !letters.contains(*c)).collect()
                    }
                }
            };
            let current = message.entry.flags();
            let mut sorted: Vec<char> = apply(current).chars().collect();
            sorted.sort_unstable();
            sorted.dedup();
            let wanted: String = sorted.into_iter().collect();
            if wanted != current {
                match selected.maildir.update_flags(&message.entry, apply) {
                    Ok(entry) => selected.set_entry(index, entry),
                    Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => {
                        missing = true;
                        continue;
                    }
                    Err(error) => {
                        errors.push(error.to_string());
                        continue;
                    }
                }
            }
            if answer == StoreResponse::Answer {
                let message = &selected.messages[index];
                let mut items = vec![MessageDataItem::Flags(message_flags(
                    &message.entry,
                    message.recent,
                    &selected.keywords,
                ))];
                if uid {
                    items.insert(0, MessageDataItem::Uid(non_zero(message.uid)));
                }
                if let Ok(items) = Vec1::try_from(items) {
                    response::data(
                        out,
                        Data::Fetch {
                            seq: non_zero(index as u32 + 1),
                            items,
                        },
                    );
                }
            }
        }
        let failed = !errors.is_empty();
        for error in errors {
            self.events.push(Event::StoreError {
                user: user.clone(),
                error,
            });
        }
        if failed {
            Reply::no("some flags could not be stored (server-side store error)")
                .with(response::other_code("SERVERBUG"))
        } else if missing {
            // RFC 2180 §4.2.1 allows NO or OK; Dovecot says OK, and a flag change on a mail
            // another session expunged is nothing a client can act on. The code still tells.
            Reply::ok("STORE completed; some of the messages were expunged meanwhile")
                .with(response::other_code("EXPUNGEISSUED"))
        } else if dropped {
            Reply::ok("STORE completed, but some keywords were left out (at most 26 per mailbox)")
        } else {
            Reply::ok("STORE completed")
        }
    }
}
