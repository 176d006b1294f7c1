//! APPEND: the message literal streams into the target Maildir's `tmp/` as it arrives, never
//! held in memory, then is committed with its flags and date and given a UID (APPENDUID,
//! RFC 4315). Everything is checked before the client sends the data (size, mailbox, flags),
//! so that a refused APPEND costs the client nothing: `NO [TOOBIG]` and `NO [TRYCREATE]` come
//! before the continuation request.
//!
//! The command line is parsed by imap-codec with the message literal replaced by an empty
//! one (see [`super::session`]), which gives the mailbox, flags and date.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Code;

use super::reader::{announcement, Announcement, Line};
use super::response::{self, non_zero, Reply};
use super::select::{mailbox_name, split_flags};
use super::session::{Event, Input, Session};
use crate::store::{Delivery, Maildir, StoreError};

/// An APPEND whose message is arriving.
#[derive(Debug)]
pub(super) struct AppendState {
    tag: Tag<'static>,
    maildir: Maildir,
    /// `None` once writing failed: the rest of the data is read and dropped.
    delivery: Option<Delivery>,
    letters: String,
    date: Option<SystemTime>,
    remaining: u64,
    error: Option<Reply>,
}

fn to_system_time(date: &DateTime) -> SystemTime {
    let secs = date.as_ref().timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn write_error(error: &io::Error) -> Reply {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded => {
            Reply::no("APPEND failed: no room for the message on the server")
                .with(response::other_code("LIMIT"))
        }
        _ => Reply::no("APPEND failed (server-side store error)")
            .with(response::other_code("SERVERBUG")),
    }
}

impl Session {
    /// An APPEND line announced its message literal: check everything, then ask for the data
    /// (or take it, for `{N+}`).
    pub(super) fn start_append(
        &mut self,
        tag: Tag<'static>,
        mailbox: Mailbox<'static>,
        flags: Vec<Flag<'static>>,
        date: Option<DateTime>,
        literal: Announcement,
        out: &mut Vec<u8>,
    ) {
        match self.prepare_append(&tag, &mailbox, &flags, date.as_ref(), literal) {
            Ok(state) => {
                if !literal.non_sync {
                    response::continuation(out, "Ready for literal data");
                }
                self.input = Input::Append(Box::new(state));
            }
            Err(reply) => {
                self.finish(&tag, reply, true, out);
                if literal.non_sync {
                    self.skip_literal(literal.length, out);
                }
            }
        }
    }

    fn prepare_append(
        &mut self,
        tag: &Tag<'static>,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        literal: Announcement,
    ) -> Result<AppendState, Reply> {
        if self.account.is_none() {
            return Err(Reply::bad("Log in first: LOGIN user password"));
        }
        let length = match literal.length {
            Some(length) if length <= self.config.max_append => length,
            _ => {
                return Err(Reply::no(format!(
                    "message too big: at most {} octets",
                    self.config.max_append
                ))
                .with(Code::TooBig))
            }
        };
        if length == 0 {
            return Err(Reply::no("APPEND needs a message: the literal is empty"));
        }
        let name = mailbox_name(mailbox)?;
        let (mut letters, keywords) =
            split_flags(flags).map_err(|text| Reply::bad(format!("APPEND: {text}")))?;
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| Reply::bad("Log in first"))?;
        let maildir = match account.mailboxes.open(&name) {
            Ok(maildir) => maildir,
            Err(StoreError::NoSuchMailbox { .. }) => {
                return Err(Reply::no(format!(
                    "no mailbox \"{}\": CREATE it first",
                    crate::store::folders::encode_mutf7(&name)
                ))
                .with(Code::TryCreate))
            }
            Err(error) => return Err(self.store_reply(error, "opening the mailbox")),
        };
        if !keywords.is_empty() {
            let names: Vec<&str> = keywords.iter().map(String::as_str).collect();
            match maildir.keyword_letters(&names) {
                Ok((_, keyword_letters)) => letters.push_str(&keyword_letters),
                Err(error) => return Err(self.store_reply(error, "defining keywords")),
            }
        }
        let delivery = match maildir.deliver() {
            Ok(delivery) => delivery,
            Err(error) => return Err(self.store_reply(error, "APPEND")),
        };
        Ok(AppendState {
            tag: tag.clone(),
            maildir,
            delivery: Some(delivery),
            letters,
            date: date.map(to_system_time),
            remaining: length,
            error: None,
        })
    }

    /// Take the message's octets as they come, then the end of the command line.
    pub(super) fn append_step(&mut self, out: &mut Vec<u8>) -> bool {
        let Input::Append(state) = &mut self.input else {
            return true;
        };
        if state.remaining > 0 {
            let chunk = self.reader.take(state.remaining);
            if chunk.is_empty() {
                return false;
            }
            state.remaining -= chunk.len() as u64;
            if let Some(delivery) = &mut state.delivery {
                if let Err(error) = delivery.write_all(chunk) {
                    self.events.push(Event::StoreError {
                        user: self.account.as_ref().map(|a| a.name.to_string()),
                        error: format!("APPEND: {error}"),
                    });
                    state.error = Some(write_error(&error));
                    // Dropping the delivery removes its file from tmp/.
                    state.delivery = None;
                }
            }
            return true;
        }
        // The line that ends the message commits it: off this thread, as it waits for the disk
        // (one journal commit on a journaled ext4, up to four fsyncs elsewhere).
        let commits = state.delivery.is_some() && state.error.is_none();
        if commits && self.reader.has_line() && self.wait_to_block() {
            return true;
        }
        let Some(line) = self.reader.line(self.config.max_line) else {
            return false;
        };
        let Input::Append(state) = std::mem::replace(&mut self.input, Input::Command) else {
            return true;
        };
        let AppendState {
            tag,
            maildir,
            delivery,
            letters,
            date,
            error,
            ..
        } = *state;
        let reply = match line {
            Line::Complete(rest) if rest.iter().all(u8::is_ascii_whitespace) => {
                match (error, delivery) {
                    (Some(reply), _) => reply,
                    (None, None) => Reply::no("APPEND failed (server-side store error)"),
                    (None, Some(delivery)) => {
                        self.commit_append(&maildir, delivery, &letters, date)
                    }
                }
            }
            Line::Complete(rest) => {
                // MULTIAPPEND (RFC 3502) is not offered; skip a literal that comes anyway.
                if let Some(Announcement {
                    non_sync: true,
                    length,
                    ..
                }) = announcement(&rest)
                {
                    self.skip_literal(length, out);
                }
                Reply::bad("one message per APPEND: nothing may follow the message literal")
            }
            Line::TooLong(_) => {
                Reply::bad("one message per APPEND: nothing may follow the message literal")
            }
        };
        self.finish(&tag, reply, true, out);
        true
    }

    fn commit_append(
        &mut self,
        maildir: &Maildir,
        delivery: Delivery,
        letters: &str,
        date: Option<SystemTime>,
    ) -> Reply {
        let entry = match delivery.link_as(letters, date) {
            Ok(entry) => entry,
            Err(error) => return self.store_reply(error, "APPEND"),
        };
        // The UIDVALIDITY comes with the UID, from the uidlist read under its lock: a mailbox
        // the session has not selected (a client saving to Sent) is not listed for it.
        let (validity, uid) = match maildir.number_added_with_validity(std::slice::from_ref(&entry))
        {
            Ok((validity, uids)) => (validity, uids.first().copied()),
            Err(error) => return self.store_reply(error, "APPEND"),
        };
        match uid {
            Some(uid) if validity != 0 => Reply::ok("APPEND completed").with(Code::AppendUid {
                uid_validity: non_zero(validity),
                uid: non_zero(uid),
            }),
            _ => Reply::ok("APPEND completed"),
        }
    }
}
