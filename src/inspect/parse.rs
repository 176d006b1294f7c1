//! One message, parsed into a [`MessageSummary`]: headers, addresses, dates, and the MIME tree
//! with IMAP part numbers.
//!
//! mailparse's own `parse_mail` recurses once per nesting level with no limit, so a message
//! nested a few thousand multiparts deep overflows the stack before the caller gets control.
//! This module therefore uses mailparse only for what does not recurse (header fields, content
//! types and dispositions, RFC 2047 and RFC 2231 decoding, transfer decoding, addresses, dates)
//! and walks the MIME tree itself, iteratively, with an explicit stack capped at
//! [`MAX_DEPTH`] levels and [`MAX_PARTS`] parts. Nothing here does I/O or can fail: whatever
//! is wrong with a message becomes a line in its `warnings`.

use std::borrow::Cow;
use std::sync::LazyLock;

use mailparse::body::Body;
use mailparse::{
    addrparse_header, dateparse, parse_content_disposition, parse_content_type, DispositionType,
    MailAddr, MailHeader, ParsedContentType,
};
use serde::Serialize;

/// MIME nesting deeper than this is not descended into: the part at the limit is listed as
/// one opaque part, with a warning. Real mail nests a handful of levels; Dovecot stops at 100.
pub const MAX_DEPTH: usize = 64;

/// At most this many parts are listed per message; the rest are dropped with a warning, so a
/// message made of a million empty parts cannot flood the output.
pub const MAX_PARTS: usize = 1000;

/// Header fields RFC 5322 allows at most once; a second copy earns a warning.
const SINGLETON_FIELDS: [&str; 10] = [
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
];

/// A mailbox from an address header: display name (if any) and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub address: String,
}

impl std::fmt::Display for Address {
    /// `Name <address>`, or the bare address when there is no name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.address),
            None => f.write_str(&self.address),
        }
    }
}

/// A list of addresses as a person writes it: `Name <address>, other@example.org`.
pub fn join_addresses(list: &[Address]) -> String {
    list.iter()
        .map(Address::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One MIME entity of the message, as listed in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartSummary {
    /// The IMAP section number (RFC 3501 `BODY[section]`), or None for a multipart that is
    /// the body of a message (the top level, or an attached message), which has no number of
    /// its own.
    pub part: Option<String>,
    /// Nesting level: 0 for the message's own body.
    pub depth: usize,
    /// The media type, lower case (`text/plain` when the part declares none).
    pub content_type: String,
    /// The declared `charset` parameter, if any.
    pub charset: Option<String>,
    /// The Content-Transfer-Encoding, lower case; `7bit` when absent (RFC 2045's default).
    pub encoding: String,
    /// Octets after transfer decoding; for multiparts and attached messages, of the raw body.
    pub size: u64,
    /// The Content-Disposition type, lower case, if the part has that header.
    pub disposition: Option<String>,
    /// The file name: Content-Disposition `filename`, else Content-Type `name`, decoded
    /// (RFC 2231 and RFC 2047).
    pub filename: Option<String>,
    /// Whether the part counts as an attachment: not a multipart, and either disposed as
    /// `attachment` or carrying a file name.
    pub attachment: bool,
}

/// What `inspect` reports about one message, computed from its bytes alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageSummary {
    pub message_id: Option<String>,
    /// The Date header as written (unfolded).
    pub date: Option<String>,
    /// The Date normalised to RFC 3339 UTC, e.g. `2023-11-06T10:42:05Z`.
    pub date_utc: Option<String>,
    pub from: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// The Subject, decoded.
    pub subject: Option<String>,
    /// Every MIME entity, in pre-order (the order the parts appear in the file).
    pub parts: Vec<PartSummary>,
    /// How many parts have `attachment` set.
    pub attachments: usize,
    /// What was wrong with the message, one sentence each.
    pub warnings: Vec<String>,
}

/// A header field, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// Summarise a message. Never panics, whatever the bytes: problems become warnings.
pub fn summarize(bytes: &[u8]) -> MessageSummary {
    ParsedMessage::parse(bytes).into_summary()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leaf,
    Multipart,
    Message,
}

/// One entity of the tree with what later steps (body, extraction) need to decode it.
struct Entity<'a> {
    summary: PartSummary,
    kind: Kind,
    charset_label: String,
    /// The header block as written, up to and including the blank line.
    header: &'a [u8],
    body: &'a [u8],
}

/// A message split into its entities. Borrows the bytes; cheap to build.
pub struct ParsedMessage<'a> {
    headers: Vec<MailHeader<'a>>,
    body_start: usize,
    entities: Vec<Entity<'a>>,
    warnings: Vec<String>,
}

/// An entity waiting to be parsed, on the walk's explicit stack.
struct Pending<'a> {
    raw: &'a [u8],
    /// For a message's own body: the section of the message ("" at the top level); for a
    /// child of a multipart: its own section number.
    section: String,
    message_body: bool,
    depth: usize,
    in_digest: bool,
}

fn join_section(prefix: &str, child: &str) -> String {
    if prefix.is_empty() {
        child.to_owned()
    } else {
        format!("{prefix}.{child}")
    }
}

impl<'a> ParsedMessage<'a> {
    /// Split a message into entities. Never panics, never recurses.
    pub fn parse(raw: &'a [u8]) -> ParsedMessage<'a> {
        let mut warnings = Vec::new();
        let (headers, body_start) = parse_headers_lenient(raw, Place(""), &mut warnings);
        let mut message = ParsedMessage {
            headers,
            body_start,
            entities: Vec::new(),
            warnings,
        };
        message.walk(raw);
        message
    }

    fn walk(&mut self, raw: &'a [u8]) {
        let mut stack = vec![Pending {
            raw,
            section: String::new(),
            message_body: true,
            depth: 0,
            in_digest: false,
        }];
        let mut depth_warned = false;
        let mut parts_warned = false;
        while let Some(pending) = stack.pop() {
            if self.entities.len() >= MAX_PARTS {
                if !parts_warned {
                    self.warnings.push(format!(
                        "more than {MAX_PARTS} MIME parts; only the first {MAX_PARTS} are listed"
                    ));
                    parts_warned = true;
                }
                continue;
            }
            let where_ = Place(&pending.section);
            // The top level's headers were parsed already, with their warnings.
            let parsed_here;
            let (headers, body_start): (&[MailHeader<'a>], usize) = if pending.depth == 0 {
                (&self.headers, self.body_start)
            } else {
                parsed_here = parse_headers_lenient(pending.raw, where_, &mut self.warnings);
                (&parsed_here.0, parsed_here.1)
            };
            let header = pending.raw.get(..body_start).unwrap_or(pending.raw);
            let body = pending.raw.get(body_start..).unwrap_or_default();
            let ctype = match first_value(headers, "Content-Type") {
                Some(value) => parse_content_type(&value),
                None => {
                    let mut default = ParsedContentType::default();
                    if pending.in_digest {
                        default.mimetype = "message/rfc822".into();
                    }
                    default
                }
            };
            let mut kind = if ctype.mimetype.starts_with("multipart/") {
                Kind::Multipart
            } else if ctype.mimetype == "message/rfc822" || ctype.mimetype == "message/global" {
                Kind::Message
            } else {
                Kind::Leaf
            };
            let part = if pending.message_body {
                (kind != Kind::Multipart).then(|| join_section(&pending.section, "1"))
            } else {
                Some(pending.section.clone())
            };
            let label = Place(part.as_deref().unwrap_or(&pending.section));
            let encoding = first_value(headers, "Content-Transfer-Encoding")
                .map(|value| value.trim().to_ascii_lowercase())
                .unwrap_or_else(|| "7bit".into());
            if kind != Kind::Leaf && pending.depth + 1 >= MAX_DEPTH {
                if !depth_warned {
                    self.warnings.push(format!(
                        "MIME structure nested deeper than {MAX_DEPTH} levels; {label} is shown as one part"
                    ));
                    depth_warned = true;
                }
                kind = Kind::Leaf;
            }
            if kind == Kind::Message && !matches!(encoding.as_str(), "7bit" | "8bit" | "binary") {
                kind = Kind::Leaf;
            }
            if !matches!(
                encoding.as_str(),
                "7bit" | "8bit" | "binary" | "base64" | "quoted-printable"
            ) {
                self.warnings.push(format!(
                    "{label}: unknown transfer encoding {encoding:?}; shown undecoded"
                ));
            }
            let declared_charset = ctype.params.get("charset").cloned();
            if let Some(charset) = &declared_charset {
                if ctype.mimetype.starts_with("text/")
                    && charset::Charset::for_label(charset.trim().as_bytes()).is_none()
                {
                    self.warnings.push(format!(
                        "{label}: unknown charset {charset:?}; text is decoded as ASCII"
                    ));
                }
            }
            let (disposition, disposition_params) =
                match first_value(headers, "Content-Disposition") {
                    Some(value) => {
                        let parsed = parse_content_disposition(&value);
                        let kind = match parsed.disposition {
                            DispositionType::Inline => "inline".to_owned(),
                            DispositionType::Attachment => "attachment".to_owned(),
                            DispositionType::FormData => "form-data".to_owned(),
                            DispositionType::Extension(other) => other,
                        };
                        (Some(kind), parsed.params)
                    }
                    None => (None, Default::default()),
                };
            let filename = disposition_params
                .get("filename")
                .or_else(|| ctype.params.get("name"))
                .cloned();
            let size = match kind {
                Kind::Leaf => {
                    let (decoded, problem) = decode_transfer(body, &encoding);
                    if let Some(problem) = problem {
                        self.warnings.push(format!("{label}: {problem}"));
                    }
                    decoded.len() as u64
                }
                Kind::Multipart | Kind::Message => body.len() as u64,
            };
            let attachment = kind != Kind::Multipart
                && (disposition.as_deref() == Some("attachment") || filename.is_some());
            let children_prefix = part.clone().unwrap_or_else(|| pending.section.clone());
            match kind {
                Kind::Multipart => {
                    let in_digest = ctype.mimetype == "multipart/digest";
                    match ctype.params.get("boundary").filter(|b| !b.is_empty()) {
                        Some(boundary) => {
                            let children = split_multipart(
                                body,
                                boundary,
                                MAX_PARTS,
                                label,
                                &mut self.warnings,
                            );
                            for (index, child) in children.into_iter().enumerate().rev() {
                                stack.push(Pending {
                                    raw: child,
                                    section: join_section(
                                        &children_prefix,
                                        &(index + 1).to_string(),
                                    ),
                                    message_body: false,
                                    depth: pending.depth + 1,
                                    in_digest,
                                });
                            }
                        }
                        None => self.warnings.push(format!(
                            "{label}: {} has no boundary parameter; its parts cannot be found",
                            ctype.mimetype
                        )),
                    }
                }
                Kind::Message => stack.push(Pending {
                    raw: body,
                    section: children_prefix,
                    message_body: true,
                    depth: pending.depth + 1,
                    in_digest: false,
                }),
                Kind::Leaf => {}
            }
            self.entities.push(Entity {
                summary: PartSummary {
                    part,
                    depth: pending.depth,
                    content_type: ctype.mimetype,
                    charset: declared_charset,
                    encoding,
                    size,
                    disposition,
                    filename,
                    attachment,
                },
                kind,
                charset_label: ctype.charset,
                header,
                body,
            });
        }
    }

    /// The summary of the whole message.
    pub fn summary(&self) -> MessageSummary {
        let parts = self.entities.iter().map(|e| e.summary.clone()).collect();
        self.summary_with(parts, self.warnings.clone())
    }

    /// The summary, without copying what the message no longer needs.
    pub fn into_summary(mut self) -> MessageSummary {
        let entities = std::mem::take(&mut self.entities);
        let warnings = std::mem::take(&mut self.warnings);
        self.summary_with(entities.into_iter().map(|e| e.summary).collect(), warnings)
    }

    fn summary_with(&self, parts: Vec<PartSummary>, mut warnings: Vec<String>) -> MessageSummary {
        let mut counts = [0usize; SINGLETON_FIELDS.len()];
        for header in &self.headers {
            if let Some(index) = SINGLETON_FIELDS
                .iter()
                .position(|field| is_named(header, field))
            {
                counts[index] += 1;
            }
        }
        for (field, count) in SINGLETON_FIELDS.into_iter().zip(counts) {
            if count > 1 {
                warnings.push(format!("{field} appears {count} times; the first is shown"));
            }
        }
        let date = self.first_value("Date");
        let date_utc = date.as_deref().and_then(|value| {
            let normalised = normalise_date(value);
            if normalised.is_none() {
                warnings.push(format!("unparsable Date {value:?}"));
            }
            normalised
        });
        let from = self.addresses("From", &mut warnings);
        let to = self.addresses("To", &mut warnings);
        let cc = self.addresses("Cc", &mut warnings);
        MessageSummary {
            message_id: self.first_value("Message-ID"),
            date,
            date_utc,
            from,
            to,
            cc,
            subject: first_value(&self.headers, "Subject"),
            attachments: parts.iter().filter(|p| p.attachment).count(),
            parts,
            warnings,
        }
    }

    fn first_value(&self, field: &str) -> Option<String> {
        first_value(&self.headers, field).map(|value| value.trim().to_owned())
    }

    fn addresses(&self, field: &str, warnings: &mut Vec<String>) -> Vec<Address> {
        let Some(header) = first_header(&self.headers, field) else {
            return Vec::new();
        };
        match addrparse_header(header) {
            Ok(list) => list
                .iter()
                .flat_map(|entry| match entry {
                    MailAddr::Single(single) => vec![single.clone()],
                    MailAddr::Group(group) => group.addrs.clone(),
                })
                .map(|single| Address {
                    name: single.display_name,
                    address: single.addr,
                })
                .collect(),
            Err(error) => {
                warnings.push(format!(
                    "unparsable {field} {:?} ({error})",
                    header.get_value()
                ));
                Vec::new()
            }
        }
    }

    /// Every header field of the message, decoded, in order.
    pub fn headers(&self) -> Vec<HeaderField> {
        self.headers
            .iter()
            .map(|header| HeaderField {
                name: header.get_key(),
                value: header.get_value(),
            })
            .collect()
    }

    /// The text a reader would see: the first inline `text/plain` part, else the first inline
    /// `text/html`, transfer-decoded and converted to UTF-8, with LF line ends.
    pub fn text_body(&self) -> Option<String> {
        let leaves = || {
            self.entities
                .iter()
                .filter(|e| e.kind == Kind::Leaf && !e.summary.attachment)
        };
        let entity = leaves()
            .find(|e| e.summary.content_type == "text/plain")
            .or_else(|| leaves().find(|e| e.summary.content_type == "text/html"))?;
        let (bytes, _) = decode_transfer(entity.body, &entity.summary.encoding);
        let text = decode_charset(&bytes, &entity.charset_label);
        Some(text.replace("\r\n", "\n"))
    }

    /// Every entity as IMAP SEARCH reads it, in file order: its header block as written and,
    /// for text, the transfer-decoded body with its charset label. Text is what Dovecot
    /// searches: a `text/*` or `message/*` entity that is not split further; multipart bodies
    /// and other types (images, PDFs, octet streams) have none.
    pub fn search_parts(&self) -> impl Iterator<Item = SearchPart<'_>> + '_ {
        self.entities.iter().map(|e| {
            let textual = e.kind == Kind::Leaf
                && (e.summary.content_type.starts_with("text/")
                    || e.summary.content_type.starts_with("message/"));
            SearchPart {
                header: e.header,
                text: textual.then(|| {
                    (
                        decode_transfer(e.body, &e.summary.encoding).0,
                        e.charset_label.as_str(),
                    )
                }),
            }
        })
    }

    /// The attachments with their transfer-decoded contents.
    pub fn attachments(&self) -> impl Iterator<Item = (&PartSummary, Cow<'a, [u8]>)> + '_ {
        self.entities
            .iter()
            .filter(|e| e.summary.attachment)
            .map(|e| (&e.summary, decode_transfer(e.body, &e.summary.encoding).0))
    }
}

/// One entity of a message for SEARCH; see [`ParsedMessage::search_parts`].
pub struct SearchPart<'p> {
    /// The header block as written, with its blank line.
    pub header: &'p [u8],
    /// For text: the transfer-decoded body and its charset label (`us-ascii` by default).
    pub text: Option<(Cow<'p, [u8]>, &'p str)>,
}

/// The fields of a header block, decoded (RFC 2047) and unfolded, malformed lines skipped,
/// and where the body starts (the length of `raw` when there is no blank line).
pub fn header_fields(raw: &[u8]) -> (Vec<HeaderField>, usize) {
    let (headers, body_start) = parse_headers_lenient(raw, Place(""), &mut Vec::new());
    let fields = headers
        .iter()
        .map(|header| HeaderField {
            name: header.get_key(),
            value: header.get_value(),
        })
        .collect();
    (fields, body_start)
}

/// Whether a header has this name. Compares the raw bytes: mailparse's own lookups decode
/// every key they pass, which was the biggest cost of summarising a mailbox.
fn is_named(header: &MailHeader<'_>, name: &str) -> bool {
    header
        .get_key_raw()
        .trim_ascii_end()
        .eq_ignore_ascii_case(name.as_bytes())
}

fn first_header<'h, 'a>(headers: &'h [MailHeader<'a>], name: &str) -> Option<&'h MailHeader<'a>> {
    headers.iter().find(|header| is_named(header, name))
}

/// The first value of a header, unfolded and RFC 2047-decoded.
fn first_value(headers: &[MailHeader<'_>], name: &str) -> Option<String> {
    first_header(headers, name).map(MailHeader::get_value)
}

/// Where in the message something is, for warnings: formatted only when one is written.
#[derive(Clone, Copy)]
struct Place<'s>(&'s str);

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("the message")
        } else {
            write!(f, "part {}", self.0)
        }
    }
}

/// Header fields up to the blank line, and where the body starts. Unlike mailparse's
/// `parse_headers`, a malformed line is skipped with a warning instead of failing the lot.
fn parse_headers_lenient<'a>(
    raw: &'a [u8],
    where_: Place<'_>,
    warnings: &mut Vec<String>,
) -> (Vec<MailHeader<'a>>, usize) {
    let mut headers = Vec::with_capacity(24);
    let mut malformed = 0usize;
    let mut ix = 0;
    while ix < raw.len() {
        match raw[ix..] {
            [b'\n', ..] => return finish(headers, ix + 1, malformed, where_, warnings),
            [b'\r', b'\n', ..] => return finish(headers, ix + 2, malformed, where_, warnings),
            _ => {}
        }
        match mailparse::parse_header(&raw[ix..]) {
            Ok((header, consumed)) => {
                if !is_field_name(header.get_key_raw()) {
                    malformed += 1;
                }
                headers.push(header);
                ix += consumed.max(1);
            }
            Err(_) => {
                malformed += 1;
                ix = raw[ix..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(raw.len(), |nl| ix + nl + 1);
            }
        }
    }
    finish(headers, raw.len(), malformed, where_, warnings)
}

fn finish<'a>(
    headers: Vec<MailHeader<'a>>,
    body_start: usize,
    malformed: usize,
    where_: Place<'_>,
    warnings: &mut Vec<String>,
) -> (Vec<MailHeader<'a>>, usize) {
    if malformed > 0 {
        warnings.push(format!(
            "{where_}: {malformed} malformed header line{}",
            if malformed == 1 { "" } else { "s" }
        ));
    }
    (headers, body_start)
}

/// RFC 5322 field names: printable ASCII except colon (trailing blanks are tolerated).
fn is_field_name(name: &[u8]) -> bool {
    let name = name.trim_ascii_end();
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// The bodies of a multipart's children. Delimiter lines must be exactly `--boundary`, or
/// `--boundary--` for the last, followed only by blanks (RFC 2046 section 5.1.1); the line end
/// before a delimiter belongs to the delimiter.
fn split_multipart<'a>(
    body: &'a [u8],
    boundary: &str,
    limit: usize,
    label: Place<'_>,
    warnings: &mut Vec<String>,
) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut children = Vec::new();
    let Some(mut current) = next_delimiter(body, 0, delimiter) else {
        warnings.push(format!(
            "{label}: the boundary {boundary:?} never appears; no parts found"
        ));
        return children;
    };
    loop {
        if current.close {
            return children;
        }
        if children.len() >= limit {
            return children;
        }
        let start = current.next;
        if start >= body.len() {
            break;
        }
        match next_delimiter(body, start, delimiter) {
            Some(next) => {
                children.push(&body[start..strip_line_end(body, start, next.start)]);
                current = next;
            }
            None => {
                children.push(&body[start..]);
                break;
            }
        }
    }
    warnings.push(format!(
        "{label}: no closing boundary \"--{boundary}--\"; the last part runs to the end"
    ));
    children
}

struct Delimiter {
    start: usize,
    next: usize,
    close: bool,
}

fn next_delimiter(data: &[u8], from: usize, delimiter: &[u8]) -> Option<Delimiter> {
    let mut pos = from;
    while pos < data.len() {
        let line_end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |nl| pos + nl);
        if let Some(rest) = data[pos..line_end].strip_prefix(delimiter) {
            let (close, rest) = match rest.strip_prefix(b"--") {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            if rest.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r')) {
                return Some(Delimiter {
                    start: pos,
                    next: (line_end + 1).min(data.len()),
                    close,
                });
            }
        }
        pos = line_end + 1;
    }
    None
}

fn strip_line_end(data: &[u8], start: usize, mut end: usize) -> usize {
    if end > start && data[end - 1] == b'\n' {
        end -= 1;
        if end > start && data[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

/// Undo a transfer encoding. Invalid base64 is decoded leniently (characters outside the
/// alphabet skipped), and the second value says so.
fn decode_transfer<'a>(body: &'a [u8], encoding: &str) -> (Cow<'a, [u8]>, Option<String>) {
    // mailparse's decoders need a content type they do not use here: one, shared.
    static ANY_TYPE: LazyLock<ParsedContentType> = LazyLock::new(ParsedContentType::default);
    if !matches!(encoding, "base64" | "quoted-printable") {
        return (Cow::Borrowed(body), None);
    }
    match Body::new(body, &ANY_TYPE, &Some(encoding.to_owned())) {
        Body::Base64(encoded) => match encoded.get_decoded() {
            Ok(bytes) => (Cow::Owned(bytes), None),
            Err(error) => (
                Cow::Owned(lenient_base64(body)),
                Some(format!(
                    "invalid base64 ({error}); decoded leniently, skipping what is not base64"
                )),
            ),
        },
        Body::QuotedPrintable(encoded) => match encoded.get_decoded() {
            Ok(bytes) => (Cow::Owned(bytes), None),
            Err(error) => (
                Cow::Borrowed(body),
                Some(format!(
                    "invalid quoted-printable ({error}); shown undecoded"
                )),
            ),
        },
        Body::SevenBit(_) | Body::EightBit(_) | Body::Binary(_) => (Cow::Borrowed(body), None),
    }
}

fn lenient_base64(body: &[u8]) -> Vec<u8> {
    static LENIENT: LazyLock<data_encoding::Encoding> = LazyLock::new(|| {
        let mut spec = data_encoding::BASE64_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.encoding()
            .expect("the base64 alphabet without padding is a valid specification")
    });
    let mut clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

/// Bytes of a text part as a string: by its charset, else as ASCII (non-ASCII bytes become
/// U+FFFD).
pub fn decode_charset(bytes: &[u8], label: &str) -> String {
    match charset::Charset::for_label(label.trim().as_bytes()) {
        Some(charset) => charset.decode(bytes).0.into_owned(),
        None => charset::decode_ascii(bytes).into_owned(),
    }
}

/// A Date header in RFC 3339 UTC, or None when it cannot be read.
///
/// `mailparse::dateparse` stops quietly when the value ends early (an ISO date gives
/// 1970-01-01), so the value must first show every RFC 5322 element it reads: a day number,
/// month, year, hour, minute, second and zone.
pub fn normalise_date(value: &str) -> Option<String> {
    let tokens: Vec<&str> = value
        .split([' ', ':'])
        .filter(|token| !token.is_empty())
        .collect();
    let day = tokens
        .iter()
        .position(|token| token.parse::<u8>().is_ok())?;
    if tokens.len() - day < 7 {
        return None;
    }
    let timestamp = dateparse(value).ok()?;
    let utc = chrono::DateTime::from_timestamp(timestamp, 0)?;
    Some(utc.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_normalise_to_utc_and_incomplete_ones_are_refused() {
        assert_eq!(
            normalise_date("Mon, 06 Nov 2023 11:42:05 +0100").as_deref(),
            Some("2023-11-06T10:42:05Z")
        );
        assert_eq!(
            normalise_date("Sun, 02 Oct 2016 07:06:22 -0700 (PDT)").as_deref(),
            Some("2016-10-02T14:06:22Z")
        );
        assert_eq!(normalise_date("2023-11-06T10:42:05Z"), None);
        assert_eq!(normalise_date("06 Nov 2023"), None);
        assert_eq!(normalise_date("yesterday"), None);
    }

    #[test]
    fn part_numbers_follow_imap() {
        let mail = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n\
Content-Type: multipart/alternative; boundary=b\n\n--b\n\nplain\n--b\n\
Content-Type: text/html\n\n<p>html</p>\n--b--\n--a\n\
Content-Type: message/rfc822\n\nSubject: inner\n\ninner text\n--a--\n";
        let summary = summarize(mail);
        let numbers: Vec<_> = summary
            .parts
            .iter()
            .map(|p| (p.part.as_deref(), p.content_type.as_str(), p.depth))
            .collect();
        assert_eq!(
            numbers,
            [
                (None, "multipart/mixed", 0),
                (Some("1"), "multipart/alternative", 1),
                (Some("1.1"), "text/plain", 2),
                (Some("1.2"), "text/html", 2),
                (Some("2"), "message/rfc822", 1),
                (Some("2.1"), "text/plain", 2),
            ]
        );
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    }

    #[test]
    fn a_single_part_message_is_part_one() {
        let summary = summarize(b"Subject: hi\n\nbody\n");
        assert_eq!(summary.parts.len(), 1);
        assert_eq!(summary.parts[0].part.as_deref(), Some("1"));
        assert_eq!(summary.parts[0].size, 5);
    }

    #[test]
    fn delimiters_must_match_exactly() {
        // "--ab" is not a delimiter for boundary "a".
        let mail = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n\none\n--ab\n\
still one\n--a--\n";
        let summary = summarize(mail);
        assert_eq!(summary.parts.len(), 2);
        assert_eq!(summary.parts[1].size, "one\n--ab\nstill one".len() as u64);
    }

    #[test]
    fn deep_nesting_is_capped_without_recursion() {
        let depth = 3000;
        let mut mail = String::new();
        for level in 0..depth {
            mail.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
            ));
        }
        mail.push_str("Content-Type: text/plain\n\ndeep\n");
        for level in (0..depth).rev() {
            mail.push_str(&format!("--b{level}--\n"));
        }
        // A small stack proves the walk does not recurse per level.
        let summary = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || summarize(mail.as_bytes()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(summary.parts.len(), MAX_DEPTH);
        assert!(summary
            .warnings
            .iter()
            .any(|w| w.contains("nested deeper than")));
    }

    #[test]
    fn lenient_base64_keeps_what_it_can() {
        assert_eq!(lenient_base64(b"SGVs!!bG8=\n"), b"Hello");
        assert_eq!(lenient_base64(b"@@@"), b"");
    }
}
