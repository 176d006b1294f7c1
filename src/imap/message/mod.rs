//! The structure of one message, from one streaming pass over its file, for FETCH: its size
//! as sent (every line end CRLF), ENVELOPE, BODYSTRUCTURE, and where each `BODY[section]`
//! lies, so that bodies are streamed from the file and never loaded whole.
//!
//! Offsets are into the file as stored; what is sent converts bare LF to CRLF, and every
//! length here counts what is sent. A scan keeps, per MIME entity, its header block (capped)
//! and three marks (header start, body start, body end), each with the number of LFs and of
//! bare LFs before it, from which sizes as sent and line counts follow by subtraction.
//!
//! The entity tree is Dovecot's: a multipart's children are its parts, a message/rfc822
//! entity has one child, the message it encapsulates, and the top entity is the message.
//! Delimiter lines are found line by line (RFC 2046 §5.1.1), checking the boundaries of every
//! enclosing multipart, so a part that never closes ends at its parent's next delimiter.

mod envelope;
mod header;
mod stream;
mod structure;

use std::io::{self, Read};

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::{Part, Section};

pub(crate) use envelope::parse_addresses;
pub use stream::{SectionSource, SectionStream};

/// At most this many MIME entities are mapped; later parts are left inside their parent's
/// body, unnumbered, as if they were text.
pub const MAX_PARTS: usize = 1000;
/// Multiparts and attached messages nested deeper than this are treated as single parts.
pub const MAX_DEPTH: usize = 64;
/// A header block is kept up to this many octets; fields beyond it are not seen.
pub const MAX_HEADER: usize = 64 * 1024;
/// All header blocks of a message together are kept up to this many octets.
pub const MAX_HEADERS_TOTAL: usize = 4 * 1024 * 1024;
/// The read buffer.
const CHUNK: usize = 64 * 1024;
/// Octets of each line kept to compare with boundaries; longer boundaries never match.
const LINE_PREFIX: usize = 1024;

/// A position in the file with the number of LFs and of bare LFs (not after a CR) before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mark {
    offset: u64,
    lfs: u64,
    bare: u64,
}

impl Mark {
    /// Octets as sent from `self` to `end`.
    fn sent_to(self, end: Mark) -> u64 {
        (end.offset - self.offset) + (end.bare - self.bare)
    }

    fn max(self, other: Mark) -> Mark {
        if other.offset > self.offset {
            other
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leaf,
    Multipart,
    /// message/rfc822: one child, the encapsulated message.
    Message,
}

#[derive(Debug, Clone)]
struct Entity {
    header_start: Mark,
    body_start: Mark,
    body_end: Mark,
    /// The header block without its blank line, up to [`MAX_HEADER`].
    header: Vec<u8>,
    kind: Kind,
    children: Vec<usize>,
    /// Whether the header block ended with a blank line (not at a delimiter or the end).
    blank_line: bool,
}

impl Entity {
    fn new(start: Mark) -> Entity {
        Entity {
            header_start: start,
            body_start: start,
            body_end: start,
            header: Vec::new(),
            kind: Kind::Leaf,
            children: Vec::new(),
            blank_line: false,
        }
    }

    fn header_range(&self) -> SectionSource {
        SectionSource::File {
            start: self.header_start.offset,
            end: self.body_start.offset,
            len: self.header_start.sent_to(self.body_start),
        }
    }

    fn body_range(&self) -> SectionSource {
        SectionSource::File {
            start: self.body_start.offset,
            end: self.body_end.offset,
            len: self.body_start.sent_to(self.body_end),
        }
    }

    fn body_size(&self) -> u64 {
        self.body_start.sent_to(self.body_end)
    }

    fn body_lines(&self) -> u64 {
        self.body_end.lfs - self.body_start.lfs
    }
}

/// One message's structure. Memory is bounded whatever the message: header blocks are kept
/// only up to a cap, bodies not at all.
#[derive(Debug, Clone)]
pub struct MessageMap {
    /// Entity 0 is the message; the rest in the order they start in the file.
    entities: Vec<Entity>,
    end: Mark,
}

impl MessageMap {
    /// Scan a message.
    ///
    /// # Errors
    /// Reading fails.
    pub fn scan(mut reader: impl Read) -> io::Result<MessageMap> {
        let mut scanner = Scanner::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            scanner.feed(&buf[..n]);
        }
        Ok(scanner.finish())
    }

    /// RFC822.SIZE: octets as sent, every line end CRLF.
    pub fn size(&self) -> u64 {
        Mark::default().sent_to(self.end)
    }

    /// The ENVELOPE of RFC 3501 §7.4.2.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope(&self.entities[0].header)
    }

    /// BODY (`extended == false`) or BODYSTRUCTURE (`true`).
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        structure::body_structure(self, 0, extended)
    }

    /// The header block of the message, as stored (line ends as in the file, without the
    /// blank line that ends it), up to [`MAX_HEADER`] octets: for SEARCH.
    pub fn header(&self) -> &[u8] {
        &self.entities[0].header
    }

    /// Every value of the header field `name` (case-insensitive), unfolded but otherwise as
    /// written (RFC 2047 words undecoded), in order: for SEARCH.
    pub fn header_fields(&self, name: &str) -> Vec<Vec<u8>> {
        let block = self.header();
        header::fields(block)
            .into_iter()
            .filter(|f| f.is(block, name))
            .map(|f| f.value(block))
            .collect()
    }

    /// Where `BODY[section]` is (`None` is `BODY[]`); a part that does not exist is an empty
    /// section, as Dovecot answers.
    pub fn section(&self, section: Option<&Section<'_>>) -> SectionSource {
        let whole = || SectionSource::File {
            start: 0,
            end: self.end.offset,
            len: self.size(),
        };
        let empty = SectionSource::Bytes(Vec::new());
        let Some(section) = section else {
            return whole();
        };
        match section {
            Section::Part(part) => match self.find(Some(part)) {
                Some(e) => self.entities[e].body_range(),
                None => empty,
            },
            Section::Mime(part) => match self.find(Some(part)) {
                Some(e) => self.entities[e].header_range(),
                None => empty,
            },
            Section::Header(part) => match self.message_of(part.as_ref()) {
                Some(e) => self.entities[e].header_range(),
                None => empty,
            },
            Section::Text(part) => match self.message_of(part.as_ref()) {
                Some(e) => self.entities[e].body_range(),
                None => empty,
            },
            Section::HeaderFields(part, names) => match self.message_of(part.as_ref()) {
                Some(e) => SectionSource::Bytes(self.header_subset(e, names.as_ref(), true)),
                None => empty,
            },
            Section::HeaderFieldsNot(part, names) => match self.message_of(part.as_ref()) {
                Some(e) => SectionSource::Bytes(self.header_subset(e, names.as_ref(), false)),
                None => empty,
            },
        }
    }

    /// The entity a part number names, as Dovecot finds it: a number picks a multipart's
    /// child; a message that is not multipart has only part 1, its body; a message/rfc822
    /// part followed by more numbers stands for the message it encapsulates.
    fn find(&self, part: Option<&Part>) -> Option<usize> {
        let Some(part) = part else {
            return Some(0);
        };
        let numbers = part.0.as_ref();
        // Where the next number is looked up: in a message (the top one or an attached one),
        // whose single body is its part 1; in a multipart's child, which Dovecot lets a
        // trailing `.1` stand for again; or nowhere.
        #[derive(PartialEq)]
        enum In {
            Message,
            Child,
            Nothing,
        }
        let (mut container, mut place) = (0, In::Message);
        for (i, number) in numbers.iter().enumerate() {
            let n = number.get() as usize;
            let current = &self.entities[container];
            let picked = if current.kind == Kind::Multipart && place != In::Nothing {
                *current.children.get(n - 1)?
            } else if n == 1 && place != In::Nothing {
                container
            } else {
                return None;
            };
            if i + 1 == numbers.len() {
                return Some(picked);
            }
            let entity = &self.entities[picked];
            (container, place) = match entity.kind {
                Kind::Message => (*entity.children.first()?, In::Message),
                _ if current.kind == Kind::Multipart || place == In::Child => (picked, In::Child),
                _ => (picked, In::Nothing),
            };
        }
        None
    }

    /// The message whose HEADER or TEXT `part` asks for: the whole message, or an attached
    /// message/rfc822 part's message. Other parts have no such section.
    fn message_of(&self, part: Option<&Part>) -> Option<usize> {
        let Some(part) = part else {
            return Some(0);
        };
        let entity = &self.entities[self.find(Some(part))?];
        match entity.kind {
            Kind::Message => entity.children.first().copied(),
            _ => None,
        }
    }

    /// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT: the fields as written, then the blank
    /// line, with bare LFs as CRLF.
    fn header_subset<S: AsRef<[u8]>>(&self, entity: usize, names: &[S], keep: bool) -> Vec<u8> {
        let block = &self.entities[entity].header;
        let mut out = Vec::new();
        for field in header::fields(block) {
            let name = field.name(block);
            let listed = names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name));
            if listed == keep {
                push_crlf(&mut out, &block[field.start..field.end]);
            }
        }
        // Then the blank line. Where the header has none, Dovecot adds one to HEADER.FIELDS
        // always, to HEADER.FIELDS.NOT when it found something, as a bare LF it then sends as
        // CRLF (so a field cut short by the end of the file after a CR just gets its LF).
        let entity = &self.entities[entity];
        if entity.blank_line || keep || !out.is_empty() {
            if !out.ends_with(b"\r") {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        out
    }
}

/// Append `bytes` with every bare LF as CRLF.
fn push_crlf(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

/// An entity being read.
struct Open {
    entity: usize,
    in_header: bool,
    /// For a multipart in its body: `--boundary`, until its closing delimiter.
    delimiter: Option<Vec<u8>>,
    /// A child of multipart/digest: message/rfc822 by default.
    in_digest: bool,
}

/// The line end that ended the previous line: its length and whether its LF was bare.
#[derive(Clone, Copy)]
struct LineEnd {
    len: u8,
}

struct Scanner {
    entities: Vec<Entity>,
    stack: Vec<Open>,
    header_total: usize,
    /// Counts up to the end of what has been fed.
    now: Mark,
    last_was_cr: bool,
    line_start: Mark,
    line: Vec<u8>,
    /// Whether every octet of the line beyond `line` is a blank (or the line end).
    tail_blank: bool,
    /// The header length of the top entity when the line started.
    header_at_line_start: usize,
    prev_end: LineEnd,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            entities: vec![Entity::new(Mark::default())],
            stack: vec![Open {
                entity: 0,
                in_header: true,
                delimiter: None,
                in_digest: false,
            }],
            header_total: 0,
            now: Mark::default(),
            last_was_cr: false,
            line_start: Mark::default(),
            line: Vec::with_capacity(LINE_PREFIX),
            tail_blank: true,
            header_at_line_start: 0,
            prev_end: LineEnd { len: 0 },
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (segment, ends_line) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[segment.len()..];
            self.take(segment);
            if ends_line {
                let cr = if segment.len() >= 2 {
                    segment[segment.len() - 2] == b'\r'
                } else {
                    self.last_was_cr
                };
                self.now.lfs += 1;
                if !cr {
                    self.now.bare += 1;
                }
                self.now.offset += segment.len() as u64;
                self.last_was_cr = false;
                self.end_line(if cr { 2 } else { 1 });
            } else {
                self.now.offset += segment.len() as u64;
                self.last_was_cr = segment.last() == Some(&b'\r');
            }
        }
    }

    /// Part of the current line: kept for boundary matching, and in the header block.
    fn take(&mut self, segment: &[u8]) {
        let room = LINE_PREFIX - self.line.len();
        let (kept, rest) = segment.split_at(room.min(segment.len()));
        self.line.extend_from_slice(kept);
        if !rest
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.tail_blank = false;
        }
        if let Some(top) = self.stack.last() {
            if top.in_header {
                let header = &mut self.entities[top.entity].header;
                let room = (MAX_HEADER - header.len().min(MAX_HEADER))
                    .min(MAX_HEADERS_TOTAL - self.header_total.min(MAX_HEADERS_TOTAL));
                let add = room.min(segment.len());
                header.extend_from_slice(&segment[..add]);
                self.header_total += add;
            }
        }
    }

    /// Forget the current line from the top entity's header block.
    fn unkeep_line(&mut self) {
        if let Some(top) = self.stack.last() {
            if top.in_header {
                let header = &mut self.entities[top.entity].header;
                if header.len() > self.header_at_line_start {
                    self.header_total -= header.len() - self.header_at_line_start;
                    header.truncate(self.header_at_line_start);
                }
            }
        }
    }

    fn end_line(&mut self, line_end: u8) {
        let line_end_mark = self.now;
        self.process_line();
        self.prev_end = LineEnd { len: line_end };
        self.start_line(line_end_mark);
    }

    fn start_line(&mut self, at: Mark) {
        self.line_start = at;
        self.line.clear();
        self.tail_blank = true;
        self.header_at_line_start = self
            .stack
            .last()
            .filter(|top| top.in_header)
            .map_or(0, |top| self.entities[top.entity].header.len());
    }

    /// Whether the current line is a delimiter of the open multipart at `stack[k]`, and
    /// whether it is the closing one.
    fn delimiter_match(&self) -> Option<(usize, bool)> {
        if !self.tail_blank || !self.line.starts_with(b"--") {
            return None;
        }
        for (k, open) in self.stack.iter().enumerate().rev() {
            let Some(delimiter) = &open.delimiter else {
                continue;
            };
            let Some(rest) = self.line.strip_prefix(delimiter.as_slice()) else {
                continue;
            };
            let (close, rest) = match rest.strip_prefix(b"--") {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            if rest
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                return Some((k, close));
            }
        }
        None
    }

    fn process_line(&mut self) {
        let line_end = self.now;
        if let Some((k, close)) = self.delimiter_match() {
            self.unkeep_line();
            // The line end before a delimiter belongs to the delimiter.
            let mut end = self.line_start;
            if self.prev_end.len > 0 && end.offset >= u64::from(self.prev_end.len) {
                end.offset -= u64::from(self.prev_end.len);
                end.lfs -= 1;
                if self.prev_end.len == 1 {
                    end.bare -= 1;
                }
            }
            while self.stack.len() > k + 1 {
                if let Some(open) = self.stack.pop() {
                    self.close(&open, end);
                }
            }
            if close {
                self.stack[k].delimiter = None;
            } else if self.entities.len() < MAX_PARTS {
                let parent = self.stack[k].entity;
                let id = self.entities.len();
                self.entities.push(Entity::new(line_end));
                self.entities[parent].children.push(id);
                let in_digest = structure::is_digest(&self.entities[parent].header);
                self.stack.push(Open {
                    entity: id,
                    in_header: true,
                    delimiter: None,
                    in_digest,
                });
            }
            return;
        }
        let Some(top) = self.stack.last() else {
            return;
        };
        if !top.in_header || !(self.line == b"\n" || self.line == b"\r\n") {
            return;
        }
        // The blank line: the header block ends, the body starts.
        self.unkeep_line();
        let depth = self.stack.len();
        let id = self.entities.len();
        let room = depth < MAX_DEPTH && id < MAX_PARTS;
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        top.in_header = false;
        let entity = &mut self.entities[top.entity];
        entity.body_start = line_end;
        entity.blank_line = true;
        let (kind, boundary) = structure::kind_of(&entity.header, top.in_digest);
        match kind {
            Kind::Multipart if room => {
                if let Some(boundary) = boundary.filter(|b| b.len() + 2 <= LINE_PREFIX) {
                    entity.kind = Kind::Multipart;
                    let mut delimiter = b"--".to_vec();
                    delimiter.extend_from_slice(&boundary);
                    top.delimiter = Some(delimiter);
                }
            }
            Kind::Message if room => {
                entity.kind = Kind::Message;
                entity.children.push(id);
                self.entities.push(Entity::new(line_end));
                self.stack.push(Open {
                    entity: id,
                    in_header: true,
                    delimiter: None,
                    in_digest: false,
                });
            }
            _ => {}
        }
    }

    /// An entity ends at `end` (before a delimiter's line end, or at the end of the file).
    fn close(&mut self, open: &Open, end: Mark) {
        let entity = &mut self.entities[open.entity];
        if open.in_header {
            entity.body_start = entity.header_start.max(end);
        }
        entity.body_end = entity.body_start.max(end);
    }

    fn finish(mut self) -> MessageMap {
        if self.line_start != self.now {
            // A last line without a line end.
            self.process_line();
        }
        let end = self.now;
        while let Some(open) = self.stack.pop() {
            self.close(&open, end);
        }
        MessageMap {
            entities: self.entities,
            end,
        }
    }
}

#[cfg(test)]
mod tests;
