//! SEARCH: every RFC 3501 search key, nested OR/NOT, sequence and UID sets, evaluated for one
//! message at a time. Header and text keys match decoded text (RFC 2047 words, transfer-
//! and charset-decoded bodies), case-insensitively, as Dovecot does.
//!
//! What is searched, following Dovecot 2.3 (`index-search.c`, `message-search.c`):
//! - FROM, TO, CC, BCC, SUBJECT and HEADER look at every field of that name in the message's
//!   own header block, RFC 2047-decoded and unfolded; runs of blanks count as one space,
//!   except for HEADER, which sees the value as written. An empty string matches every
//!   message that has the field. Address fields are matched as a whole (`"Dupont, Jean"
//!   <jean@example.org>, ...`) and also as their parsed addresses (`name <mailbox@host>`,
//!   comments dropped), which is what RFC 3501 §6.4.4 means by "the envelope structure's FROM
//!   field" and what Dovecot matches: `<jean (work) @ example.org>` is found by
//!   `jean@example.org`.
//! - BODY looks at the body of every `text/*` and `message/*` entity that is not split
//!   further, transfer- and charset-decoded; attachments of other types (PDF, images, octet
//!   streams, even base64 ones) are not searched, as in Dovecot. Each entity is searched on
//!   its own: a string never matches across two parts.
//! - TEXT is BODY plus every header block of the message, its parts' MIME headers and attached
//!   messages' headers included, each field as `Name: value` followed by a line end.
//! - Case folding is Unicode lower-casing of both sides. Dovecot also decomposes accented
//!   letters, so there `cafe` finds `café`; here it does not.
//! - SENTBEFORE/SENTON/SENTSINCE take the date written in the first Date field (in its own
//!   zone, time ignored). A message without a readable Date uses its INTERNALDATE, as RFC 5256
//!   does for sorting; Dovecot instead treats it as sent on 1 January 1970.
//!
//! Memory is bounded: the message file is opened only when a key needs its content, once per
//! [`matches`] call. Header keys read the header block only (at most [`MAX_HEADER`] octets).
//! Body keys read and decode messages up to [`MAX_PARSED`] octets; a bigger message is
//! searched by a streaming scan of its raw octets instead (ASCII case-insensitive, no
//! decoding), so it costs a fixed buffer whatever its size. Decoding a parsed message holds a
//! few copies of it at once (raw, transfer-decoded, folded text), so a search peaks at a small
//! multiple of [`MAX_PARSED`] per message being searched.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use chrono::NaiveDate;
use imap_codec::imap_types::core::{AString, Atom};
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::inspect::parse::{self, ParsedMessage};

/// What a search key is evaluated against. The message's file is opened only for keys that
/// need its content, and at most once per message.
pub trait SearchMessage {
    /// Message sequence number.
    fn seq(&self) -> u32;
    fn uid(&self) -> u32;
    /// Whether the message has this flag (system flag, keyword, or `\Recent`). `\Recent` is
    /// asked as `Flag::system(Atom "Recent")`, i.e. `Flag::try_from("\\Recent")`.
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

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SearchError {}

/// NOT, OR and parentheses nest at most this deep.
pub const MAX_DEPTH: usize = 32;

/// A search has at most this many keys, counting every NOT, OR and parenthesised list.
pub const MAX_KEYS: usize = 1000;

/// Messages up to this size are read whole and decoded for BODY and TEXT; bigger ones are
/// scanned raw (see the module documentation).
pub const MAX_PARSED: u64 = 32 * 1024 * 1024;

/// At most this much of a message's header block is read for header keys.
pub const MAX_HEADER: usize = 1024 * 1024;

/// Read size for header blocks and raw scans.
const CHUNK: usize = 64 * 1024;

/// Whether SEARCH accepts this CHARSET: US-ASCII or UTF-8, in any case. When [`validate`]
/// fails for a charset this refuses, the answer is `NO [BADCHARSET (US-ASCII UTF-8)]`.
pub fn charset_supported(charset: &str) -> bool {
    charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("US-ASCII")
}

/// Check a search before running it: nesting depth and sizes bounded, charset supported
/// (US-ASCII and UTF-8; others get `NO [BADCHARSET (US-ASCII UTF-8)]`, see
/// [`charset_supported`]), search strings valid UTF-8.
///
/// # Errors
/// The search is refused, with the reason.
pub fn validate(key: &SearchKey<'_>, charset: Option<&str>) -> Result<(), SearchError> {
    if let Some(charset) = charset {
        if !charset_supported(charset) {
            return Err(SearchError(format!(
                "this server searches only in UTF-8 or US-ASCII, not {charset:?}; \
                 send the search strings in UTF-8 and write CHARSET UTF-8, or leave CHARSET out"
            )));
        }
    }
    // Iterative, so that a tree deeper than any limit is refused without deep recursion.
    let mut stack = vec![(key, 0usize)];
    let mut count = 0usize;
    while let Some((key, depth)) = stack.pop() {
        count += 1;
        if count > MAX_KEYS {
            return Err(SearchError(format!(
                "the search has more than {MAX_KEYS} keys; split it into smaller searches"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(SearchError(format!(
                "the search nests NOT, OR and parentheses more than {MAX_DEPTH} levels deep; \
                 write it flatter"
            )));
        }
        let strings: &[&AString<'_>] = match key {
            SearchKey::And(keys) => {
                stack.extend(keys.as_ref().iter().map(|k| (k, depth + 1)));
                &[]
            }
            SearchKey::Not(inner) => {
                stack.push((inner, depth + 1));
                &[]
            }
            SearchKey::Or(left, right) => {
                stack.push((right, depth + 1));
                stack.push((left, depth + 1));
                &[]
            }
            SearchKey::Bcc(s)
            | SearchKey::Body(s)
            | SearchKey::Cc(s)
            | SearchKey::From(s)
            | SearchKey::Subject(s)
            | SearchKey::Text(s)
            | SearchKey::To(s) => &[s],
            SearchKey::Header(name, value) => &[name, value],
            SearchKey::SequenceSet(_)
            | SearchKey::All
            | SearchKey::Answered
            | SearchKey::Before(_)
            | SearchKey::Deleted
            | SearchKey::Draft
            | SearchKey::Flagged
            | SearchKey::Keyword(_)
            | SearchKey::Larger(_)
            | SearchKey::New
            | SearchKey::Old
            | SearchKey::On(_)
            | SearchKey::Recent
            | SearchKey::Seen
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_)
            | SearchKey::Since(_)
            | SearchKey::Smaller(_)
            | SearchKey::Uid(_)
            | SearchKey::Unanswered
            | SearchKey::Undeleted
            | SearchKey::Undraft
            | SearchKey::Unflagged
            | SearchKey::Unkeyword(_)
            | SearchKey::Unseen => &[],
            // Keys of extensions this server does not announce.
            #[allow(unreachable_patterns)]
            other => {
                return Err(SearchError(format!(
                    "the search key {other:?} belongs to an extension this server does not \
                     offer; RFC 3501 keys only"
                )))
            }
        };
        for string in strings {
            if std::str::from_utf8(string.as_ref()).is_err() {
                return Err(SearchError(format!(
                    "the search string {:?} is not valid UTF-8; send UTF-8 (CHARSET UTF-8)",
                    String::from_utf8_lossy(string.as_ref())
                )));
            }
        }
    }
    Ok(())
}

/// Whether `n` is in `set`, where `*` stands for `largest` (the number of messages for
/// sequence sets, the largest UID for UID sets). Ranges count in either order (`5:2` is
/// `2:5`), so `n:*` always includes the last message even when `n` is larger. With an empty
/// mailbox (`largest` 0) `*` stands for nothing, and neither `*` nor a range ending in it
/// contains anything. For FETCH, STORE, COPY and SEARCH alike.
pub fn sequence_set_contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    set_ranges(set, largest).any(|(low, high)| low <= n && n <= high)
}

/// The ranges `set` names, each as `(low, high)` inclusive, with `*` and range order as
/// [`sequence_set_contains`] reads them; a sequence that names nothing is left out.
pub fn set_ranges(set: &SequenceSet, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
    let resolve = move |value: &SeqOrUid| match value {
        SeqOrUid::Value(v) => Some(v.get()),
        SeqOrUid::Asterisk => (largest > 0).then_some(largest),
    };
    set.0.as_ref().iter().filter_map(move |sequence| {
        let (a, b) = match sequence {
            Sequence::Single(value) => (resolve(value)?, resolve(value)?),
            Sequence::Range(a, b) => (resolve(a)?, resolve(b)?),
        };
        Some((a.min(b), a.max(b)))
    })
}

/// Whether `message` matches `key`. Keys that need no file (flags, sets, sizes, INTERNALDATE)
/// are decided first; the file is opened only if they leave the answer open.
///
/// # Errors
/// The message's file cannot be read, or `key` nests deeper than [`MAX_DEPTH`] (call
/// [`validate`] first).
pub fn matches(
    key: &SearchKey<'_>,
    message: &mut dyn SearchMessage,
    context: SearchContext,
) -> io::Result<bool> {
    let mut eval = Eval {
        message,
        context,
        content: None,
    };
    if let Some(answer) = eval.key(key, 0, false)? {
        return Ok(answer);
    }
    Ok(eval.key(key, 0, true)?.unwrap_or(false))
}

struct Eval<'m> {
    message: &'m mut dyn SearchMessage,
    context: SearchContext,
    content: Option<Content>,
}

impl Eval<'_> {
    /// The answer, or None when it needs the file and `content` is false.
    fn key(
        &mut self,
        key: &SearchKey<'_>,
        depth: usize,
        content: bool,
    ) -> io::Result<Option<bool>> {
        if depth > MAX_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("search keys nested deeper than {MAX_DEPTH} levels; validate first"),
            ));
        }
        let answer = match key {
            SearchKey::And(keys) => {
                let mut all = Some(true);
                for key in keys.as_ref() {
                    match self.key(key, depth + 1, content)? {
                        Some(false) => return Ok(Some(false)),
                        Some(true) => {}
                        None => all = None,
                    }
                }
                all
            }
            SearchKey::Or(left, right) => match self.key(left, depth + 1, content)? {
                Some(true) => Some(true),
                left => match (left, self.key(right, depth + 1, content)?) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            SearchKey::Not(inner) => self.key(inner, depth + 1, content)?.map(|b| !b),
            SearchKey::SequenceSet(set) => Some(sequence_set_contains(
                set,
                self.message.seq(),
                self.context.exists,
            )),
            SearchKey::Uid(set) => Some(sequence_set_contains(
                set,
                self.message.uid(),
                self.context.max_uid,
            )),
            SearchKey::All => Some(true),
            SearchKey::Answered => Some(self.message.has_flag(&Flag::Answered)),
            SearchKey::Deleted => Some(self.message.has_flag(&Flag::Deleted)),
            SearchKey::Draft => Some(self.message.has_flag(&Flag::Draft)),
            SearchKey::Flagged => Some(self.message.has_flag(&Flag::Flagged)),
            SearchKey::Seen => Some(self.message.has_flag(&Flag::Seen)),
            SearchKey::Unanswered => Some(!self.message.has_flag(&Flag::Answered)),
            SearchKey::Undeleted => Some(!self.message.has_flag(&Flag::Deleted)),
            SearchKey::Undraft => Some(!self.message.has_flag(&Flag::Draft)),
            SearchKey::Unflagged => Some(!self.message.has_flag(&Flag::Flagged)),
            SearchKey::Unseen => Some(!self.message.has_flag(&Flag::Seen)),
            SearchKey::Keyword(atom) => Some(self.message.has_flag(&Flag::Keyword(atom.clone()))),
            SearchKey::Unkeyword(atom) => {
                Some(!self.message.has_flag(&Flag::Keyword(atom.clone())))
            }
            SearchKey::Recent => Some(self.recent()),
            SearchKey::Old => Some(!self.recent()),
            SearchKey::New => Some(self.recent() && !self.message.has_flag(&Flag::Seen)),
            SearchKey::Larger(n) => Some(self.message.size()? > u64::from(*n)),
            SearchKey::Smaller(n) => Some(self.message.size()? < u64::from(*n)),
            SearchKey::Before(date) => Some(self.message.internal_date()? < *date.as_ref()),
            SearchKey::On(date) => Some(self.message.internal_date()? == *date.as_ref()),
            SearchKey::Since(date) => Some(self.message.internal_date()? >= *date.as_ref()),
            SearchKey::SentBefore(date) if content => Some(self.sent_date()? < *date.as_ref()),
            SearchKey::SentOn(date) if content => Some(self.sent_date()? == *date.as_ref()),
            SearchKey::SentSince(date) if content => Some(self.sent_date()? >= *date.as_ref()),
            SearchKey::Bcc(s) if content => Some(self.address("bcc", s)?),
            SearchKey::Cc(s) if content => Some(self.address("cc", s)?),
            SearchKey::From(s) if content => Some(self.address("from", s)?),
            SearchKey::Subject(s) if content => Some(self.header("subject", s, true)?),
            SearchKey::To(s) if content => Some(self.address("to", s)?),
            SearchKey::Header(name, s) if content => {
                let name = String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase();
                Some(self.header(&name, s, false)?)
            }
            SearchKey::Body(s) if content => Some(self.text(s, false)?),
            SearchKey::Text(s) if content => Some(self.text(s, true)?),
            SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_)
            | SearchKey::Bcc(_)
            | SearchKey::Cc(_)
            | SearchKey::From(_)
            | SearchKey::Subject(_)
            | SearchKey::To(_)
            | SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_) => None,
            // Extension keys, refused by `validate`, match nothing.
            #[allow(unreachable_patterns)]
            _ => Some(false),
        };
        Ok(answer)
    }

    fn recent(&self) -> bool {
        Atom::try_from("Recent").is_ok_and(|atom| self.message.has_flag(&Flag::system(atom)))
    }

    fn content(&mut self) -> io::Result<&mut Content> {
        if self.content.is_none() {
            self.content = Some(Content::open(self.message.open()?)?);
        }
        // Just filled; `get_or_insert_with` cannot propagate the error above.
        self.content
            .as_mut()
            .ok_or_else(|| io::Error::other("message content not loaded"))
    }

    /// The date of the Date field; a message without a readable one was sent on 1 January
    /// 1970, as Dovecot has it, so that both servers answer SENT* searches over one store
    /// alike (RFC 3501 does not say).
    fn sent_date(&mut self) -> io::Result<NaiveDate> {
        Ok(self
            .content()?
            .sent
            .unwrap_or(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()))
    }

    /// Whether a field `name` (lower case) holds `needle`; with `collapse`, runs of blanks
    /// in the value count as one space.
    fn header(&mut self, name: &str, needle: &AString<'_>, collapse: bool) -> io::Result<bool> {
        let needle = fold(&String::from_utf8_lossy(needle.as_ref()));
        Ok(self
            .content()?
            .headers
            .iter()
            .filter(|(field, _)| field == name)
            .any(|(_, value)| {
                if collapse {
                    collapse_blanks(value).contains(&needle)
                } else {
                    value.contains(&needle)
                }
            }))
    }

    /// FROM, TO, CC, BCC: the field as written (collapsed), or its parsed addresses.
    fn address(&mut self, name: &str, needle: &AString<'_>) -> io::Result<bool> {
        if self.header(name, needle, true)? {
            return Ok(true);
        }
        let needle = fold(&String::from_utf8_lossy(needle.as_ref()));
        Ok(self
            .content()?
            .headers
            .iter()
            .filter(|(field, _)| field == name)
            .any(|(_, value)| addresses_as_written(value).contains(&needle)))
    }

    /// BODY (`headers` false) or TEXT.
    fn text(&mut self, needle: &AString<'_>, headers: bool) -> io::Result<bool> {
        let needle = fold(&String::from_utf8_lossy(needle.as_ref()));
        let content = self.content()?;
        match content.parts()? {
            Some(parts) => Ok(parts.iter().any(|part| {
                let text = if headers {
                    &part.text[..]
                } else {
                    part.text.get(part.body_at..).unwrap_or_default()
                };
                text.contains(&needle)
            })),
            None => {
                if headers
                    && content
                        .header_lines
                        .iter()
                        .any(|line| line.contains(&needle))
                {
                    return Ok(true);
                }
                let from = if headers { 0 } else { content.body_start };
                content.scan(needle.as_bytes(), from as u64)
            }
        }
    }
}

/// One entity, folded: its header fields as `name: value\r\n` lines, a blank line, then the
/// decoded text of its body when it has some.
struct PartText {
    text: String,
    body_at: usize,
}

/// What was read of one message, within one `matches` call.
struct Content {
    file: File,
    /// The header block, or the whole message once BODY or TEXT needed it.
    bytes: Vec<u8>,
    /// Whether `bytes` holds the whole file.
    complete: bool,
    /// Where the body starts in the file.
    body_start: usize,
    /// The top-level fields: lower-case name, folded value.
    headers: Vec<(String, String)>,
    /// The top-level fields as TEXT sees them, folded, for messages too big to parse.
    header_lines: Vec<String>,
    sent: Option<NaiveDate>,
    /// The entities, once needed; None inside for a message too big to parse.
    parts: Option<Option<Vec<PartText>>>,
}

impl Content {
    /// Read the header block.
    fn open(mut file: File) -> io::Result<Content> {
        let mut bytes = Vec::new();
        let complete = loop {
            let before = bytes.len();
            let want = CHUNK.min(MAX_HEADER - before.min(MAX_HEADER)) as u64;
            if want == 0 {
                break false;
            }
            (&mut file).take(want).read_to_end(&mut bytes)?;
            if bytes.len() == before {
                break true;
            }
            if header_ends(&bytes) {
                break false;
            }
        };
        let (fields, body_start) = parse::header_fields(&bytes);
        let sent = fields
            .iter()
            .find(|f| f.name.trim().eq_ignore_ascii_case("Date"))
            .and_then(|f| sent_date(&f.value));
        let headers = fields
            .iter()
            .map(|f| (f.name.trim().to_ascii_lowercase(), fold(&f.value)))
            .collect();
        let header_lines = fields
            .iter()
            .map(|f| fold(&format!("{}: {}\r\n", f.name, f.value)))
            .collect();
        Ok(Content {
            file,
            bytes,
            complete,
            body_start,
            headers,
            header_lines,
            sent,
            parts: None,
        })
    }

    /// The decoded entities, reading the rest of the message the first time; None when the
    /// message is bigger than [`MAX_PARSED`].
    fn parts(&mut self) -> io::Result<Option<&[PartText]>> {
        if self.parts.is_none() {
            let parsed = if self.complete {
                true
            } else if self.file.metadata()?.len() > MAX_PARSED {
                false
            } else {
                // Whatever was appended since the size was taken stays unread.
                let room = (MAX_PARSED as usize).saturating_sub(self.bytes.len()) as u64;
                (&mut self.file).take(room).read_to_end(&mut self.bytes)?;
                self.complete = true;
                true
            };
            self.parts = Some(parsed.then(|| part_texts(&self.bytes)));
        }
        Ok(self.parts.as_ref().and_then(|p| p.as_deref()))
    }

    /// Whether the raw file from `from` on holds `needle`, ASCII case-insensitively.
    fn scan(&mut self, needle: &[u8], from: u64) -> io::Result<bool> {
        if needle.is_empty() {
            return Ok(true);
        }
        let finder = memchr::memmem::Finder::new(needle);
        self.file.seek(SeekFrom::Start(from))?;
        let mut window: Vec<u8> = Vec::with_capacity(CHUNK + needle.len());
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let read = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            window.extend(chunk[..read].iter().map(u8::to_ascii_lowercase));
            if finder.find(&window).is_some() {
                return Ok(true);
            }
            // Keep what could be the start of a match split across two reads.
            let keep = needle.len() - 1;
            let drop = window.len().saturating_sub(keep);
            window.drain(..drop);
        }
    }
}

/// Whether a header block read so far has reached its blank line.
fn header_ends(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\n")
        || bytes.starts_with(b"\r\n")
        || memchr::memmem::find(bytes, b"\n\n").is_some()
        || memchr::memmem::find(bytes, b"\n\r\n").is_some()
}

fn part_texts(bytes: &[u8]) -> Vec<PartText> {
    let parsed = ParsedMessage::parse(bytes);
    parsed
        .search_parts()
        .map(|part| {
            let (fields, _) = parse::header_fields(part.header);
            let mut text = String::new();
            for field in &fields {
                text.push_str(&fold(&field.name));
                text.push_str(": ");
                text.push_str(&fold(&field.value));
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let body_at = text.len();
            if let Some((body, charset)) = &part.text {
                text.push_str(&fold(&decode_text(body, charset)));
            }
            PartText { text, body_at }
        })
        .collect()
}

/// A text body as a string. Text declared US-ASCII (the default) or in an unknown charset
/// that is valid UTF-8 is read as UTF-8, as Dovecot does: undeclared 8-bit mail is common.
fn decode_text(bytes: &[u8], charset: &str) -> String {
    let label = charset.trim();
    let ascii_or_unknown = label.is_empty()
        || label.eq_ignore_ascii_case("us-ascii")
        || label.eq_ignore_ascii_case("ascii")
        || charset::Charset::for_label(label.as_bytes()).is_none();
    if ascii_or_unknown {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }
    }
    parse::decode_charset(bytes, label)
}

/// Case folding for matching: Unicode lower case.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// An address list rewritten from its parsed addresses, as Dovecot searches it:
/// `name <mailbox@host>` or `mailbox@host`, joined by `, `; comments and folds are gone.
fn addresses_as_written(value: &str) -> String {
    let text = |s: &imap_codec::imap_types::core::NString<'_>| {
        s.0.as_ref()
            .map(|s| String::from_utf8_lossy(s.as_ref()).into_owned())
    };
    let mut out = Vec::new();
    for address in super::message::parse_addresses(value.as_bytes()) {
        let (Some(mailbox), Some(host)) = (text(&address.mailbox), text(&address.host)) else {
            continue;
        };
        out.push(match text(&address.name) {
            Some(name) => format!("{name} <{mailbox}@{host}>"),
            None => format!("{mailbox}@{host}"),
        });
    }
    out.join(", ")
}

/// Runs of blanks and line ends as one space, leading ones dropped (Dovecot's compress_lwsp).
fn collapse_blanks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !blank {
                out.push(' ');
                blank = true;
            }
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

/// The date of an RFC 5322 Date value in its own zone (`[Mon,] 6 Nov 2023 11:42[:05] zone`),
/// or None when the value is not such a date. Two-digit years follow RFC 5322 (00-49 are
/// 2000-2049); the zone may be missing, and a comment after it is ignored.
fn sent_date(value: &str) -> Option<NaiveDate> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mut tokens = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty());
    let mut token = tokens.next()?;
    if token.len() == 3 && token.chars().all(|c| c.is_ascii_alphabetic()) {
        token = tokens.next()?;
    }
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&token.len()) || !all_digits(token) {
        return None;
    }
    let day: u32 = token.parse().ok()?;
    let month = tokens.next()?.get(..3)?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let year = tokens.next()?;
    if !(2..=4).contains(&year.len()) || !all_digits(year) {
        return None;
    }
    let year = match (year.len(), year.parse::<i32>().ok()?) {
        (4, year) => year,
        (2, year @ 0..=49) => year + 2000,
        (_, year) => year + 1900,
    };
    let time: Vec<&str> = tokens.next()?.split(':').collect();
    let time_ok = matches!(time.len(), 2 | 3)
        && (1..=2).contains(&time[0].len())
        && time.iter().all(|t| all_digits(t))
        && time[1..].iter().all(|t| t.len() == 2);
    if !time_ok {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests;
