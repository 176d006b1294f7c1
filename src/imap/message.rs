//! The structure of one message, from one streaming pass over its file, for FETCH: its size
//! as sent (every line end CRLF), ENVELOPE, BODYSTRUCTURE, and where each `BODY[section]`
//! lies, so that bodies are streamed from the file and never loaded whole.
//!
//! Offsets are into the file as stored; what is sent converts bare LF to CRLF, and every
//! length here counts what is sent.

use std::fs::File;
use std::io::{self, Read};

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::Section;

/// One message's structure. Memory is bounded whatever the message: header blocks are kept
/// only up to a cap, bodies not at all.
#[derive(Debug, Clone)]
pub struct MessageMap {}

impl MessageMap {
    /// Scan a message.
    ///
    /// # Errors
    /// Reading fails.
    pub fn scan(reader: impl Read) -> io::Result<MessageMap> {
        let _ = reader;
        todo!()
    }

    /// RFC822.SIZE: octets as sent, every line end CRLF.
    pub fn size(&self) -> u64 {
        todo!()
    }

    /// The ENVELOPE of RFC 3501 §7.4.2.
    pub fn envelope(&self) -> Envelope<'static> {
        todo!()
    }

    /// BODY (`extended == false`) or BODYSTRUCTURE (`true`).
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        let _ = extended;
        todo!()
    }

    /// Where `BODY[section]` is (`None` is `BODY[]`); a part that does not exist is an empty
    /// section, as Dovecot answers.
    pub fn section(&self, section: Option<&Section<'_>>) -> SectionSource {
        let _ = section;
        todo!()
    }
}

/// What a `BODY[section]` consists of.
#[derive(Debug, Clone)]
pub enum SectionSource {
    /// Octets `start..end` of the file, sent with bare LF as CRLF: `len` octets in all.
    File { start: u64, end: u64, len: u64 },
    /// Made up here (HEADER.FIELDS and the like), already with CRLF line ends.
    Bytes(Vec<u8>),
}

impl SectionSource {
    /// Octets as sent.
    pub fn len(&self) -> u64 {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A section being sent, with RFC 3501's `<origin.count>` partial applied.
#[derive(Debug)]
pub struct SectionStream {}

impl SectionStream {
    /// The literal to send for `source`, cut to `partial` (origin, count) when given.
    pub fn new(source: SectionSource, partial: Option<(u32, u32)>) -> SectionStream {
        let _ = (source, partial);
        todo!()
    }

    /// The literal's length: what [`SectionStream::fill`] will have written when done.
    pub fn len(&self) -> u64 {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append up to about `max` more octets to `out`, reading `file` as needed; true when
    /// the whole literal has been written.
    ///
    /// # Errors
    /// Reading fails, or the file is shorter than when it was scanned.
    pub fn fill(&mut self, file: &mut File, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        let _ = (file, out, max);
        todo!()
    }
}
