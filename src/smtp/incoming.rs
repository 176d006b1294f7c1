//! A message coming in: the trace headers and the data, streamed into the store as they
//! arrive, then committed for every recipient.
//!
//! One copy is written, through the store's one delivery path ([`Maildir::deliver`]), into
//! the first recipient's Maildir that can take it; the other recipients get hard links
//! ([`Maildir::deliver_copy`]). SMTP's reply covers the whole transaction, so a copy that
//! fails there removes the others (all or nothing); LMTP answers per recipient, so one
//! failing mailbox does not fail the rest.

use std::io::{self, Write};
use std::time::SystemTime;

use super::session::{Envelope, StoreFailure};
use crate::store::{Delivery, Maildir, MessageEntry, Store, StoreError};

/// The message being received for one envelope.
pub struct Incoming {
    /// Each recipient's Maildir, or why it cannot be opened.
    mailboxes: Vec<Result<Maildir, StoreFailure>>,
    /// The recipient whose Maildir holds the one written copy.
    first: Option<usize>,
    delivery: Option<Delivery>,
    /// Set when writing failed: nothing is kept.
    failed: Option<StoreFailure>,
    all_or_nothing: bool,
}

impl Incoming {
    /// Open the delivery and write the trace headers. `peer` is the client's address.
    pub fn start(store: &Store, envelope: &Envelope, host: &str, peer: &str, lmtp: bool) -> Self {
        let mailboxes: Vec<Result<Maildir, StoreFailure>> = envelope
            .recipients
            .iter()
            .map(|r| store.mailbox(&r.user).map_err(failure))
            .collect();
        let mut first = None;
        let mut delivery = None;
        let mut failed = None;
        for (index, mailbox) in mailboxes.iter().enumerate() {
            let Ok(mailbox) = mailbox else { continue };
            match mailbox.deliver() {
                Ok(opened) => {
                    first = Some(index);
                    delivery = Some(opened);
                    break;
                }
                Err(e) => failed = Some(failure(e)),
            }
        }
        if delivery.is_some() {
            failed = None;
        }
        let mut incoming = Incoming {
            mailboxes,
            first,
            delivery,
            failed,
            all_or_nothing: !lmtp,
        };
        let headers = trace_headers(envelope, host, peer);
        incoming.write(headers.as_bytes());
        incoming
    }

    /// Append message octets (LF line ends).
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(delivery) = self.delivery.as_mut() {
            if let Err(e) = delivery.write_all(bytes) {
                self.failed = Some(io_failure(&e));
                // Dropping the delivery removes the partial file.
                self.delivery = None;
            }
        }
    }

    /// Drop what was written (a refused message): nothing stays in `tmp/`.
    pub fn abandon(mut self) {
        self.delivery = None;
    }

    /// Sync and link the message for every recipient; one result per recipient, in order.
    /// Blocking (fsync): the store tells the server's runtime through its blocking hook.
    pub fn commit(mut self) -> Vec<Result<String, StoreFailure>> {
        let count = self.mailboxes.len();
        let fallback = self
            .failed
            .clone()
            .unwrap_or_else(|| StoreFailure::Other("no mailbox could take the message".into()));
        let (Some(first), Some(delivery)) = (self.first, self.delivery.take()) else {
            return (0..count)
                .map(|i| match &self.mailboxes[i] {
                    Err(e) => Err(e.clone()),
                    Ok(_) => Err(fallback.clone()),
                })
                .collect();
        };
        let Ok(source) = &self.mailboxes[first] else {
            unreachable!("the first mailbox opened")
        };
        let entry = match delivery.commit() {
            Ok(entry) => entry,
            Err(e) => {
                let failure = failure(e);
                return (0..count).map(|_| Err(failure.clone())).collect();
            }
        };
        let mut made: Vec<Result<(Maildir, MessageEntry), StoreFailure>> = Vec::new();
        for (index, mailbox) in self.mailboxes.iter().enumerate() {
            made.push(match mailbox {
                Err(e) => Err(e.clone()),
                Ok(mailbox) if index == first => Ok((mailbox.clone(), entry.clone())),
                Ok(mailbox) => mailbox
                    .deliver_copy(source, &entry)
                    .map(|copy| (mailbox.clone(), copy))
                    .map_err(failure),
            });
        }
        if self.all_or_nothing {
            if let Some(Err(failure)) = made.iter().find(|m| m.is_err()).cloned() {
                // Remove the links first: the source must outlive them.
                for (mailbox, copy) in made.iter().rev().flatten() {
                    let _ = mailbox.remove(copy);
                }
                return (0..count).map(|_| Err(failure.clone())).collect();
            }
        }
        made.into_iter()
            .map(|m| m.map(|(mailbox, copy)| mailbox.entry_path(&copy).display().to_string()))
            .collect()
    }
}

/// `Return-Path:`, `Delivered-To:` (one recipient only: a shared copy must not name the
/// others, RFC 5321 §7.2) and `Received:`, as an MDA puts them on top.
fn trace_headers(envelope: &Envelope, host: &str, peer: &str) -> String {
    let date = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).to_rfc2822();
    let mut headers = format!("Return-Path: <{}>\n", envelope.sender);
    let single = match envelope.recipients.as_slice() {
        [only] => Some(only),
        _ => None,
    };
    if let Some(only) = single {
        headers.push_str(&format!("Delivered-To: {}\n", only.address));
    }
    let helo: String = envelope
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    headers.push_str(&format!(
        "Received: from {helo} ([{peer}])\n\tby {host} (mailtool) with {} id {}",
        envelope.with, envelope.id
    ));
    if let Some(only) = single {
        headers.push_str(&format!("\n\tfor <{}>", only.address));
    }
    headers.push_str(&format!("; {date}\n"));
    headers
}

fn failure(error: StoreError) -> StoreFailure {
    match error.io_kind() {
        Some(kind) if is_full(kind) => StoreFailure::Full(error.to_string()),
        _ => StoreFailure::Other(error.to_string()),
    }
}

fn io_failure(error: &io::Error) -> StoreFailure {
    if is_full(error.kind()) {
        StoreFailure::Full(error.to_string())
    } else {
        StoreFailure::Other(error.to_string())
    }
}

fn is_full(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}
