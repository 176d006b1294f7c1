//! SEARCH and UID SEARCH: the keys are checked by [`super::search::validate`] and evaluated
//! by [`super::search::matches`] one message at a time over a view of the session's
//! messages that opens a file only when a key needs its content.

use std::fs::File;
use std::io::{self, BufReader};
use std::num::NonZeroU32;

use chrono::NaiveDate;
use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::response::{Data, StatusKind};
use imap_codec::imap_types::search::SearchKey;

use super::fetch::local_offset;
use super::message::MessageMap;
use super::response::{self, Reply};
use super::search::{self, SearchContext, SearchMessage};
use super::select::{is_recent, system_letter};
use super::session::Session;
use crate::store::{Keywords, Maildir, MessageEntry, StoreError};

/// One message as SEARCH sees it.
struct View<'a> {
    seq: u32,
    uid: u32,
    entry: &'a MessageEntry,
    recent: bool,
    keywords: &'a Keywords,
    maildir: &'a Maildir,
    size: Option<u64>,
}

fn io_error(error: StoreError) -> io::Error {
    match error {
        StoreError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

impl SearchMessage for View<'_> {
    fn seq(&self) -> u32 {
        self.seq
    }

    fn uid(&self) -> u32 {
        self.uid
    }

    fn has_flag(&self, flag: &Flag<'_>) -> bool {
        if let Some(letter) = system_letter(flag) {
            return self.entry.has_flag(letter);
        }
        if is_recent(flag) {
            return self.recent;
        }
        match flag {
            Flag::Keyword(atom) => self
                .keywords
                .letter_of(atom.inner())
                .is_some_and(|letter| self.entry.has_flag(letter)),
            _ => false,
        }
    }

    fn size(&mut self) -> io::Result<u64> {
        if let Some(size) = self.size.or(self.entry.crlf_size_field()) {
            return Ok(size);
        }
        let file = self.open()?;
        let size = MessageMap::scan(BufReader::new(file))?.size();
        self.size = Some(size);
        Ok(size)
    }

    fn internal_date(&mut self) -> io::Result<NaiveDate> {
        let time = self.maildir.received_time(self.entry).map_err(io_error)?;
        let secs = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let offset = local_offset(secs);
        let date = chrono::DateTime::from_timestamp(secs, 0)
            .map(|utc| utc.with_timezone(&offset).date_naive())
            .unwrap_or_default();
        Ok(date)
    }

    fn open(&mut self) -> io::Result<File> {
        self.maildir
            .open_message(self.entry)
            .map(|(file, _)| file)
            .map_err(io_error)
    }
}

impl Session {
    pub(super) fn search(
        &mut self,
        charset: Option<&Charset<'_>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Reply {
        let charset = charset.map(|c| match c {
            Charset::Atom(atom) => atom.inner().to_owned(),
            Charset::Quoted(quoted) => quoted.inner().to_owned(),
        });
        if let Some(name) = &charset {
            if !search::charset_supported(name) {
                return Reply::no(format!(
                    "charset {name} is not supported: use UTF-8 or US-ASCII"
                ))
                .with(imap_codec::imap_types::response::Code::BadCharset {
                    allowed: ["US-ASCII", "UTF-8"]
                        .into_iter()
                        .filter_map(|c| Charset::try_from(c).ok())
                        .collect(),
                });
            }
        }
        let mut keys = criteria.into_inner();
        let key = if keys.len() == 1 {
            keys.remove(0)
        } else {
            match Vec1::try_from(keys) {
                Ok(keys) => SearchKey::And(keys),
                Err(_) => return Reply::bad("SEARCH needs search keys, e.g. SEARCH UNSEEN"),
            }
        };
        if let Err(error) = search::validate(&key, charset.as_deref()) {
            return Reply::bad(format!("SEARCH: {}", error.0));
        }
        let Some(selected) = self.selected.as_ref() else {
            return Reply::bad("SEARCH needs a selected mailbox: SELECT INBOX first");
        };
        let context = SearchContext {
            exists: selected.messages.len() as u32,
            max_uid: selected.max_uid(),
        };
        let mut found = Vec::new();
        let mut failure = None;
        for (index, message) in selected.messages.iter().enumerate() {
            if selected.is_gone(message.uid) {
                continue;
            }
            let mut view = View {
                seq: index as u32 + 1,
                uid: message.uid,
                entry: &message.entry,
                recent: message.recent,
                keywords: &selected.keywords,
                maildir: &selected.maildir,
                size: None,
            };
            match search::matches(&key, &mut view, context) {
                Ok(true) => found.push(if uid { message.uid } else { index as u32 + 1 }),
                Ok(false) => {}
                // Removed by another program meanwhile: it matches nothing.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            self.events.push(super::session::Event::StoreError {
                user: self.user_string(),
                error: format!("SEARCH: {error}"),
            });
            return Reply::no(
                "SEARCH failed: a message could not be read (server-side store error)",
            )
            .with(response::other_code("SERVERBUG"));
        }
        let numbers: Vec<NonZeroU32> = found.into_iter().filter_map(NonZeroU32::new).collect();
        response::data(out, Data::Search(numbers));
        let _ = StatusKind::Ok;
        Reply::ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }
}
