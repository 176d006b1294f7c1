//! SMTP's command line limits, for the shared [`crate::line_reader::LineReader`]: RFC
//! 5321's 512 octets per command line, more for AUTH. Lines are handed to the session with
//! their line ends, as smtp-proto's parser reads up to the LF.

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. AUTH's
/// initial responses can be longer (RFC 4954 §4 allows 12,288), so lines of AUTH get the
/// larger limit.
pub const MAX_COMMAND_LINE: usize = 512;
/// The limit for an AUTH line or a SASL response line.
pub const MAX_AUTH_LINE: usize = 12_288;

pub use crate::line_reader::{LineEvent, LineReader};
