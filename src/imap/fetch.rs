//! FETCH and UID FETCH: every RFC 3501 data item, with bodies streamed from the message file.
//!
//! A FETCH is a cursor kept in the session: one message at a time, and within a message one
//! piece at a time, so that [`super::session::Session::next`] can hand the output to the
//! driver whenever it passes about 64 KiB and resume where it was. A message's file is scanned
//! ([`MessageMap`]) only when an item needs its structure.
//!
//! The response line is imap-codec's: the items are encoded with an empty literal standing
//! for each body, and the `{0}` that precedes it is replaced by the body's real length, whose
//! octets are then streamed. The items nearly every FETCH asks for (UID, FLAGS, RFC822.SIZE,
//! `BODY[]`, RFC822) are written here instead, octet for octet as imap-codec would
//! ([`written_by_hand`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{FixedOffset, TimeZone};
use imap_codec::encode::{Encoder, Fragment};
use imap_codec::imap_types::core::{IString, Literal, NString, Tag, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::flag::FlagFetch;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::ResponseCodec;

use super::message::{MessageMap, SectionSource, SectionStream};
use super::response::{self, non_zero, Reply};
use super::select::message_flags;
use super::session::{Event, Session, FLUSH_AT};
use crate::store::StoreError;

/// A FETCH in progress.
#[derive(Debug)]
pub(super) struct FetchCursor {
    tag: Tag<'static>,
    uid: bool,
    items: Vec<MessageDataItemName<'static>>,
    /// Indexes of the messages to answer, in order, and how many are done.
    targets: Vec<usize>,
    next: usize,
    /// The message being streamed.
    current: Option<Streaming>,
    /// Some messages were gone.
    missing: bool,
    /// Some messages could not be read.
    failed: bool,
}

#[derive(Debug)]
struct Streaming {
    file: Option<File>,
    pieces: VecDeque<Piece>,
}

#[derive(Debug)]
enum Piece {
    Bytes(Vec<u8>),
    /// Octets known in advance: the `)` and line end after a body.
    Static(&'static [u8]),
    Body {
        stream: SectionStream,
        written: u64,
    },
}

/// The local time zone's offset at `secs` since the epoch (INTERNALDATE is shown in the
/// server's zone, as Dovecot does).
pub(super) fn local_offset(secs: i64) -> FixedOffset {
    let time = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    let offset = if ok { tm.tm_gmtoff as i32 } else { 0 };
    // Offsets are whole minutes for IMAP.
    FixedOffset::east_opt(offset - offset % 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
}

/// A time as IMAP's date-time, in the server's zone.
pub(super) fn imap_date_time(time: SystemTime) -> Option<DateTime> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    let offset = local_offset(secs);
    let local = offset.timestamp_opt(secs, 0).single()?;
    DateTime::try_from(local).ok()
}

/// The items an item name list means, macros expanded; `BINARY` is refused.
fn expand(
    items: MacroOrMessageDataItemNames<'static>,
) -> Result<Vec<MessageDataItemName<'static>>, Reply> {
    let items = match items {
        MacroOrMessageDataItemNames::Macro(m) => m
            .expand()
            .into_iter()
            .map(imap_codec::imap_types::IntoStatic::into_static)
            .collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
    };
    for item in &items {
        if matches!(
            item,
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
        ) {
            return Err(Reply::bad(
                "BINARY is not supported (CAPABILITY lists what is); BODY.PEEK[1] gives a part as sent",
            ));
        }
    }
    Ok(items)
}

fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// Whether answering `item` needs the message's structure.
fn needs_map(item: &MessageDataItemName<'_>, has_crlf_size: bool) -> bool {
    match item {
        MessageDataItemName::Rfc822Size => !has_crlf_size,
        MessageDataItemName::BodyExt { section: None, .. } | MessageDataItemName::Rfc822 => {
            !has_crlf_size
        }
        MessageDataItemName::Body
        | MessageDataItemName::BodyStructure
        | MessageDataItemName::Envelope
        | MessageDataItemName::BodyExt { .. }
        | MessageDataItemName::Rfc822Header
        | MessageDataItemName::Rfc822Text => true,
        _ => false,
    }
}

fn needs_file(item: &MessageDataItemName<'_>, has_crlf_size: bool) -> bool {
    needs_map(item, has_crlf_size)
        || matches!(
            item,
            MessageDataItemName::BodyExt { .. } | MessageDataItemName::Rfc822
        )
}

fn empty_literal() -> NString<'static> {
    NString(Some(IString::Literal(
        Literal::try_from(Vec::<u8>::new()).expect("an empty literal is valid"),
    )))
}

impl Session {
    /// Start a FETCH; the cursor answers it from [`Session::continue_fetch`].
    pub(super) fn fetch(
        &mut self,
        tag: Tag<'static>,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
    ) -> Option<Reply> {
        let selected = self.selected.as_ref()?;
        let mut items = match expand(items) {
            Ok(items) => items,
            Err(reply) => return Some(reply),
        };
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let targets = match selected.resolve(set, uid) {
            Ok(targets) => targets,
            Err(reply) => return Some(reply),
        };
        self.fetch = Some(Box::new(FetchCursor {
            tag,
            uid,
            items,
            targets,
            next: 0,
            current: None,
            missing: false,
            failed: false,
        }));
        None
    }

    /// Go on with the FETCH in progress until it ends or the output is large enough to send.
    pub(super) fn continue_fetch(&mut self, out: &mut Vec<u8>) {
        let Some(mut cursor) = self.fetch.take() else {
            return;
        };
        while out.len() < FLUSH_AT {
            if let Some(streaming) = &mut cursor.current {
                match streaming.pieces.front_mut() {
                    None => cursor.current = None,
                    Some(Piece::Bytes(bytes)) => {
                        out.append(bytes);
                        streaming.pieces.pop_front();
                    }
                    Some(Piece::Static(bytes)) => {
                        out.extend_from_slice(bytes);
                        streaming.pieces.pop_front();
                    }
                    Some(Piece::Body { stream, written }) => {
                        let before = out.len();
                        let room = FLUSH_AT.saturating_sub(out.len()).max(8 * 1024);
                        // Room for this part of the literal and the reply after it, at
                        // once: growing the buffer as it fills copies it again and again.
                        let coming = stream.len().saturating_sub(*written).min(room as u64);
                        out.reserve(coming as usize + 256);
                        let result = match &mut streaming.file {
                            Some(file) => stream.fill(file, out, room),
                            None => Err(io::Error::other("no file")),
                        };
                        *written += (out.len() - before) as u64;
                        match result {
                            Ok(true) => {
                                streaming.pieces.pop_front();
                            }
                            Ok(false) => {}
                            Err(error) => {
                                // The literal's length is promised: keep the protocol in
                                // step with spaces, and say NO at the end.
                                let missing = stream.len().saturating_sub(*written);
                                out.resize(out.len() + missing as usize, b' ');
                                streaming.pieces.pop_front();
                                cursor.failed = true;
                                self.events.push(Event::StoreError {
                                    user: self.user_string(),
                                    error: format!("reading a message for FETCH: {error}"),
                                });
                            }
                        }
                    }
                }
                continue;
            }
            let Some(&index) = cursor.targets.get(cursor.next) else {
                let reply = if cursor.failed {
                    Reply::no("some messages could not be read (server-side store error)")
                        .with(response::other_code("SERVERBUG"))
                } else if cursor.missing {
                    Reply::no("some of the requested messages no longer exist")
                        .with(response::other_code("EXPUNGEISSUED"))
                } else {
                    Reply::ok(if cursor.uid {
                        "UID FETCH completed"
                    } else {
                        "FETCH completed"
                    })
                };
                self.finish(&cursor.tag, reply, cursor.uid, out);
                return;
            };
            cursor.next += 1;
            match self.fetch_message(&cursor.items, index) {
                Ok(Some(streaming)) => cursor.current = Some(streaming),
                Ok(None) => cursor.missing = true,
                Err(error) => {
                    cursor.failed = true;
                    self.events.push(Event::StoreError {
                        user: self.user_string(),
                        error: error.to_string(),
                    });
                }
            }
        }
        self.fetch = Some(cursor);
    }

    /// The pieces of one message's FETCH response; `None` when the message is gone.
    fn fetch_message(
        &mut self,
        items: &[MessageDataItemName<'static>],
        index: usize,
    ) -> Result<Option<Streaming>, StoreError> {
        let Some(selected) = self.selected.as_mut() else {
            return Ok(None);
        };
        let Some(message) = selected.messages.get(index) else {
            return Ok(None);
        };
        if selected.is_gone(message.uid) {
            return Ok(None);
        }
        // The items asked for, and FLAGS when this FETCH sets \Seen and FLAGS was not asked.
        let mut flags_too = None;
        if !selected.read_only && items.iter().any(sets_seen) && !message.entry.has_flag('S') {
            match selected.maildir.add_flag(&message.entry, 'S') {
                Ok(entry) => selected.set_entry(index, entry),
                Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => return Ok(None),
                Err(error) => return Err(error),
            }
            if !items.contains(&MessageDataItemName::Flags) {
                flags_too = Some(&MessageDataItemName::Flags);
            }
        }
        let count = items.len() + usize::from(flags_too.is_some());
        let items = items.iter().chain(flags_too);
        // The size in the name is read only for items that may use it: `FETCH 1:* (FLAGS)`
        // of a large mailbox should not parse 100,000 of them.
        let crlf_size = items
            .clone()
            .any(|i| !matches!(i, MessageDataItemName::Flags | MessageDataItemName::Uid))
            .then(|| selected.messages[index].entry.crlf_size_field())
            .flatten();
        let has_crlf_size = crlf_size.is_some();
        let mut file = None;
        let mut map = None;
        if items.clone().any(|i| needs_file(i, has_crlf_size)) {
            let opened = match selected
                .maildir
                .open_message(&selected.messages[index].entry)
            {
                Ok((opened, moved)) => {
                    if let Some(current) = moved {
                        // Another program renamed it (new flags) since the session last
                        // looked: answer with its flags as they are, and look at the next
                        // command.
                        selected.set_entry(index, current);
                        selected.looked = None;
                    }
                    opened
                }
                Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => return Ok(None),
                Err(error) => return Err(error),
            };
            if items.clone().any(|i| needs_map(i, has_crlf_size)) {
                let scanned = MessageMap::scan(BufReader::new(&opened)).map_err(|e| {
                    let entry = &selected.messages[index].entry;
                    StoreError::io("read", selected.maildir.entry_path(entry), e)
                })?;
                map = Some(scanned);
            }
            file = Some(opened);
        }
        let message = &selected.messages[index];
        let whole = |file: &Option<File>| -> Result<SectionSource, StoreError> {
            // BODY[] of a file whose name says its CRLF size: no scan needed, and with
            // `,S=` in the name (as Dovecot trusts it) no stat either.
            let end = match (file, message.entry.size_field()) {
                (Some(_), Some(size)) => size,
                (Some(f), None) => f
                    .metadata()
                    .map_err(|e| {
                        StoreError::io("read", selected.maildir.entry_path(&message.entry), e)
                    })?
                    .len(),
                (None, _) => 0,
            };
            Ok(SectionSource::File {
                start: 0,
                end,
                len: crlf_size.unwrap_or(0),
            })
        };
        let mut simple: Vec<MessageDataItem<'static>> = Vec::with_capacity(count);
        let mut bodies: Vec<(MessageDataItem<'static>, SectionStream)> = Vec::new();
        for item in items {
            match item {
                MessageDataItemName::Uid => {
                    simple.push(MessageDataItem::Uid(non_zero(message.uid)))
                }
                MessageDataItemName::Flags => simple.push(MessageDataItem::Flags(message_flags(
                    &message.entry,
                    message.recent,
                    &selected.keywords,
                ))),
                MessageDataItemName::InternalDate => {
                    let time = match selected.maildir.received_time(&message.entry) {
                        Ok(time) => time,
                        Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => {
                            return Ok(None)
                        }
                        Err(error) => return Err(error),
                    };
                    if let Some(date) = imap_date_time(time) {
                        simple.push(MessageDataItem::InternalDate(date));
                    }
                }
                MessageDataItemName::Rfc822Size => {
                    let size = match (crlf_size, &map) {
                        (Some(size), _) => size,
                        (None, Some(map)) => map.size(),
                        (None, None) => 0,
                    };
                    simple.push(MessageDataItem::Rfc822Size(
                        u32::try_from(size).unwrap_or(u32::MAX),
                    ));
                }
                MessageDataItemName::Envelope => {
                    if let Some(map) = &map {
                        simple.push(MessageDataItem::Envelope(map.envelope()));
                    }
                }
                MessageDataItemName::Body => {
                    if let Some(map) = &map {
                        simple.push(MessageDataItem::Body(map.body_structure(false)));
                    }
                }
                MessageDataItemName::BodyStructure => {
                    if let Some(map) = &map {
                        simple.push(MessageDataItem::BodyStructure(map.body_structure(true)));
                    }
                }
                MessageDataItemName::BodyExt {
                    section, partial, ..
                } => {
                    let source = match (section, &map) {
                        (None, None) => whole(&file)?,
                        (section, Some(map)) => map.section(section.as_ref()),
                        (Some(_), None) => continue,
                    };
                    let stream = SectionStream::new(source, partial.map(|(o, c)| (o, c.get())));
                    bodies.push((
                        MessageDataItem::BodyExt {
                            section: section.clone(),
                            origin: partial.map(|(o, _)| o),
                            data: empty_literal(),
                        },
                        stream,
                    ));
                }
                MessageDataItemName::Rfc822 => {
                    let source = match &map {
                        Some(map) => map.section(None),
                        None => whole(&file)?,
                    };
                    bodies.push((
                        MessageDataItem::Rfc822(empty_literal()),
                        SectionStream::new(source, None),
                    ));
                }
                MessageDataItemName::Rfc822Header => {
                    if let Some(map) = &map {
                        let source = map.section(Some(&Section::Header(None)));
                        bodies.push((
                            MessageDataItem::Rfc822Header(empty_literal()),
                            SectionStream::new(source, None),
                        ));
                    }
                }
                MessageDataItemName::Rfc822Text => {
                    if let Some(map) = &map {
                        let source = map.section(Some(&Section::Text(None)));
                        bodies.push((
                            MessageDataItem::Rfc822Text(empty_literal()),
                            SectionStream::new(source, None),
                        ));
                    }
                }
                _ => {}
            }
        }
        let body_count = bodies.len();
        let mut streams = VecDeque::with_capacity(body_count);
        for (item, stream) in bodies {
            simple.push(item);
            streams.push_back(stream);
        }
        if simple.is_empty() {
            return Ok(Some(Streaming {
                file: None,
                pieces: VecDeque::new(),
            }));
        }
        let seq = index as u32 + 1;
        if let Some(pieces) = written_by_hand(seq, &simple, &mut streams) {
            return Ok(Some(Streaming { file, pieces }));
        }
        let Ok(items) = Vec1::try_from(simple) else {
            return Ok(Some(Streaming {
                file: None,
                pieces: VecDeque::new(),
            }));
        };
        let response = Response::Data(Data::Fetch {
            seq: non_zero(seq),
            items,
        });
        let fragments: Vec<Fragment> = ResponseCodec::default().encode(&response).collect();
        let literal_count = fragments
            .iter()
            .filter(|f| matches!(f, Fragment::Literal { .. }))
            .count();
        // The last `body_count` literals are the bodies' stand-ins.
        let mut literal_index = 0;
        let mut pieces = VecDeque::new();
        let mut pending: Vec<u8> = Vec::new();
        for fragment in fragments {
            match fragment {
                Fragment::Line { data } => pending.extend_from_slice(&data),
                Fragment::Literal { data, .. } => {
                    literal_index += 1;
                    if literal_index + body_count <= literal_count {
                        pending.extend_from_slice(&data);
                        continue;
                    }
                    let Some(stream) = streams.pop_front() else {
                        continue;
                    };
                    if let Some(stripped) = pending.strip_suffix(b"{0}\r\n") {
                        let len = stripped.len();
                        pending.truncate(len);
                    }
                    pending.extend_from_slice(format!("{{{}}}\r\n", stream.len()).as_bytes());
                    pieces.push_back(Piece::Bytes(std::mem::take(&mut pending)));
                    pieces.push_back(Piece::Body { stream, written: 0 });
                }
            }
        }
        if !pending.is_empty() {
            pieces.push_back(Piece::Bytes(pending));
        }
        Ok(Some(Streaming { file, pieces }))
    }
}

/// The FETCH response of `items` for message `seq` as pieces, each body streamed where its
/// stand-in is, written here for the items nearly every FETCH asks for: UID, FLAGS,
/// RFC822.SIZE, `BODY[]<origin>` and RFC822. The octets are imap-codec's (the test
/// `written_by_hand_is_what_imap_codec_writes` compares them) without its encoder's growing
/// buffers and fragments: about a dozen allocations less per message, which a `UID FETCH`
/// of one message spends on little else. `None` for any other item: imap-codec writes those.
fn written_by_hand(
    seq: u32,
    items: &[MessageDataItem<'_>],
    streams: &mut VecDeque<SectionStream>,
) -> Option<VecDeque<Piece>> {
    use std::io::Write as _;
    let mut bodies = 0;
    for item in items {
        match item {
            MessageDataItem::Uid(_)
            | MessageDataItem::Rfc822Size(_)
            | MessageDataItem::Flags(_) => {}
            MessageDataItem::BodyExt { section: None, .. } | MessageDataItem::Rfc822(_) => {
                bodies += 1;
            }
            _ => return None,
        }
    }
    if bodies != streams.len() {
        return None;
    }
    let mut pieces = VecDeque::with_capacity(2 * bodies + 1);
    let mut pending = Vec::with_capacity(128);
    // Writing into a Vec cannot fail.
    let _ = write!(pending, "* {seq} FETCH (");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pending.push(b' ');
        }
        match item {
            MessageDataItem::Uid(uid) => {
                let _ = write!(pending, "UID {uid}");
            }
            MessageDataItem::Rfc822Size(size) => {
                let _ = write!(pending, "RFC822.SIZE {size}");
            }
            MessageDataItem::Flags(flags) => {
                pending.extend_from_slice(b"FLAGS (");
                for (j, flag) in flags.iter().enumerate() {
                    if j > 0 {
                        pending.push(b' ');
                    }
                    match flag {
                        FlagFetch::Flag(flag) => {
                            let _ = write!(pending, "{flag}");
                        }
                        FlagFetch::Recent => pending.extend_from_slice(b"\\Recent"),
                    }
                }
                pending.push(b')');
            }
            MessageDataItem::BodyExt { origin, .. } => {
                pending.extend_from_slice(b"BODY[]");
                if let Some(origin) = origin {
                    let _ = write!(pending, "<{origin}>");
                }
                body_after(&mut pending, &mut pieces, streams.pop_front()?);
            }
            MessageDataItem::Rfc822(_) => {
                pending.extend_from_slice(b"RFC822");
                body_after(&mut pending, &mut pieces, streams.pop_front()?);
            }
            _ => return None,
        }
    }
    if pending.is_empty() {
        pieces.push_back(Piece::Static(b")\r\n"));
    } else {
        pending.extend_from_slice(b")\r\n");
        pieces.push_back(Piece::Bytes(pending));
    }
    Some(pieces)
}

/// End `pending` with the literal's length, then the body streamed.
fn body_after(pending: &mut Vec<u8>, pieces: &mut VecDeque<Piece>, stream: SectionStream) {
    use std::io::Write as _;
    let _ = write!(pending, " {{{}}}\r\n", stream.len());
    pieces.push_back(Piece::Bytes(std::mem::take(pending)));
    pieces.push_back(Piece::Body { stream, written: 0 });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::message::SectionSource;
    use imap_codec::imap_types::core::Atom;
    use imap_codec::imap_types::flag::Flag;
    use proptest::prelude::*;

    /// The flags whose bits are set in `chosen`, in a fixed order.
    fn flags(chosen: u8) -> Vec<FlagFetch<'static>> {
        let all = [
            FlagFetch::Flag(Flag::Seen),
            FlagFetch::Flag(Flag::Answered),
            FlagFetch::Flag(Flag::Flagged),
            FlagFetch::Flag(Flag::Deleted),
            FlagFetch::Flag(Flag::Draft),
            FlagFetch::Recent,
            FlagFetch::Flag(Flag::Keyword(Atom::try_from("$Forwarded").unwrap())),
            FlagFetch::Flag(Flag::Keyword(Atom::try_from("Junk").unwrap())),
        ];
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| chosen & (1 << i) != 0)
            .map(|(_, flag)| flag)
            .collect()
    }

    fn literal(len: usize) -> NString<'static> {
        NString(Some(IString::Literal(
            Literal::try_from(vec![b'x'; len]).unwrap(),
        )))
    }

    proptest! {
        #[test]
        fn written_by_hand_is_what_imap_codec_writes(
            seq in 1u32..,
            wanted in proptest::collection::vec(
                (0u8..5, 1u32.., any::<u8>(), 0usize..300, proptest::option::of(any::<u32>())),
                1..6,
            ),
        ) {
            let mut by_hand = Vec::new();
            let mut streams = VecDeque::new();
            let mut theirs = Vec::new();
            for (kind, number, chosen, len, origin) in wanted {
                let (ours, codec) = match kind {
                    0 => (MessageDataItem::Uid(non_zero(number)), MessageDataItem::Uid(non_zero(number))),
                    1 => (MessageDataItem::Rfc822Size(number), MessageDataItem::Rfc822Size(number)),
                    2 => (MessageDataItem::Flags(flags(chosen)), MessageDataItem::Flags(flags(chosen))),
                    3 => {
                        streams.push_back(SectionStream::new(SectionSource::Bytes(vec![b'x'; len]), None));
                        (
                            MessageDataItem::BodyExt { section: None, origin, data: empty_literal() },
                            MessageDataItem::BodyExt { section: None, origin, data: literal(len) },
                        )
                    }
                    _ => {
                        streams.push_back(SectionStream::new(SectionSource::Bytes(vec![b'x'; len]), None));
                        (MessageDataItem::Rfc822(empty_literal()), MessageDataItem::Rfc822(literal(len)))
                    }
                };
                by_hand.push(ours);
                theirs.push(codec);
            }
            let pieces = written_by_hand(seq, &by_hand, &mut streams).expect("plain items");
            let mut written = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Bytes(bytes) => written.extend_from_slice(&bytes),
                    Piece::Static(bytes) => written.extend_from_slice(bytes),
                    Piece::Body { stream, .. } => written.resize(written.len() + stream.len() as usize, b'x'),
                }
            }
            let response = Response::Data(Data::Fetch {
                seq: non_zero(seq),
                items: Vec1::try_from(theirs).unwrap(),
            });
            let expected = ResponseCodec::default().encode(&response).dump();
            prop_assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&expected));
        }
    }

    #[test]
    fn other_items_are_left_to_imap_codec() {
        let items = [
            MessageDataItem::Uid(non_zero(7)),
            MessageDataItem::Rfc822Header(empty_literal()),
        ];
        let mut streams = VecDeque::from([SectionStream::new(
            SectionSource::Bytes(b"a".to_vec()),
            None,
        )]);
        assert!(written_by_hand(1, &items, &mut streams).is_none());
        assert_eq!(streams.len(), 1, "nothing taken");
    }
}
