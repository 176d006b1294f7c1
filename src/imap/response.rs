//! Glue between the session and imap-codec's response types: every response the session
//! sends goes through [`ResponseCodec`] here, but for the two it sends most, written by hand
//! into the same octets (tests compare them with imap-codec's): the tagged reply without a
//! response code ([`tagged`]) and the FETCH of plain items (see [`super::fetch`], whose body
//! literals are streamed from the file).

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::encode::{Encoder, Fragment};
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::response::{
    Bye, Code, CodeOther, CommandContinuationRequest, Data, Greeting, GreetingKind, Response,
    Status, StatusBody, StatusKind, Tagged,
};
use imap_codec::{GreetingCodec, ResponseCodec};

/// How a command ended: the tagged status, its code and a text for people.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: StatusKind,
    pub code: Option<Code<'static>>,
    pub text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            kind: StatusKind::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub fn no(text: impl Into<String>) -> Reply {
        Reply {
            kind: StatusKind::No,
            code: None,
            text: text.into(),
        }
    }

    pub fn bad(text: impl Into<String>) -> Reply {
        Reply {
            kind: StatusKind::Bad,
            code: None,
            text: text.into(),
        }
    }

    pub fn with(mut self, code: Code<'static>) -> Reply {
        self.code = Some(code);
        self
    }
}

/// A response code imap-types has no variant for (RFC 5530's, for instance).
pub fn other_code(name: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(Cow::Borrowed(name.as_bytes())))
}

/// A character response text may hold as it is: printable ASCII or a tab.
fn is_text_char(c: char) -> bool {
    c == '\t' || (' '..='~').contains(&c)
}

/// Whether [`text`] would leave `text` as it is.
fn is_plain_text(text: &str) -> bool {
    !text.trim().is_empty() && !text.starts_with('[') && text.chars().all(is_text_char)
}

/// Response text as IMAP allows it: printable ASCII, never empty. Anything else (a client's
/// bytes echoed back, for instance) becomes `?`.
pub fn text(text: &str) -> Text<'static> {
    let mut cleaned: String = text
        .chars()
        .map(|c| if is_text_char(c) { c } else { '?' })
        .collect();
    if cleaned.trim().is_empty() {
        cleaned = "done".into();
    }
    // A text starting with `[` would read as a response code.
    if cleaned.starts_with('[') {
        cleaned.insert(0, ' ');
    }
    Text::try_from(cleaned).unwrap_or_else(|_| Text::try_from("done").expect("valid text"))
}

pub fn encode(out: &mut Vec<u8>, response: &Response<'_>) {
    for fragment in ResponseCodec::default().encode(response) {
        match fragment {
            Fragment::Line { data } | Fragment::Literal { data, .. } => {
                out.extend_from_slice(&data);
            }
        }
    }
}

pub fn data(out: &mut Vec<u8>, data: Data<'_>) {
    encode(out, &Response::Data(data));
}

pub fn tagged(out: &mut Vec<u8>, tag: &Tag<'_>, reply: &Reply) {
    // The reply that ends nearly every command, `TAG OK text` with no code and a text that
    // needs no cleaning, is written here: the same octets as imap-codec's (the test
    // `a_plain_tagged_reply_is_what_imap_codec_writes` compares them), without the half a
    // dozen allocations its encoder spends on each.
    if reply.code.is_none() && is_plain_text(&reply.text) {
        out.reserve(tag.inner().len() + reply.text.len() + 7);
        out.extend_from_slice(tag.inner().as_bytes());
        out.extend_from_slice(match reply.kind {
            StatusKind::Ok => b" OK ",
            StatusKind::No => b" NO ",
            StatusKind::Bad => b" BAD ",
        });
        out.extend_from_slice(reply.text.as_bytes());
        out.extend_from_slice(b"\r\n");
        return;
    }
    let status = Status::Tagged(Tagged {
        tag: tag.clone(),
        body: StatusBody {
            kind: reply.kind,
            code: reply.code.clone(),
            text: text(&reply.text),
        },
    });
    encode(out, &Response::Status(status));
}

pub fn untagged(out: &mut Vec<u8>, kind: StatusKind, code: Option<Code<'_>>, message: &str) {
    let status = Status::Untagged(StatusBody {
        kind,
        code,
        text: text(message),
    });
    encode(out, &Response::Status(status));
}

pub fn bye(out: &mut Vec<u8>, message: &str) {
    let status = Status::Bye(Bye {
        code: None,
        text: text(message),
    });
    encode(out, &Response::Status(status));
}

/// `+ text`: go on (a literal, IDLE).
pub fn continuation(out: &mut Vec<u8>, message: &str) {
    if let Ok(request) = CommandContinuationRequest::basic(None, text(message)) {
        encode(out, &Response::CommandContinuationRequest(request));
    }
}

/// `+ ` with empty base64: the server's empty SASL challenge.
pub fn empty_challenge(out: &mut Vec<u8>) {
    encode(
        out,
        &Response::CommandContinuationRequest(CommandContinuationRequest::base64(&b""[..])),
    );
}

pub fn greeting(out: &mut Vec<u8>, code: Option<Code<'_>>, message: &str) {
    let greeting = Greeting {
        kind: GreetingKind::Ok,
        code,
        text: text(message),
    };
    out.extend_from_slice(&GreetingCodec::default().encode(&greeting).dump());
}

/// A number imap-types wants non-zero; 0 becomes 1 (UIDVALIDITY and UIDNEXT are never 0).
pub fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_plain_tagged_reply_is_what_imap_codec_writes(
            tag in "[A-Za-z0-9.]{1,8}",
            kind in 0u8..3,
            words in "[ -~\t]{0,40}|\\[[ -~]{0,10}|.{0,20}",
        ) {
            let kind = [StatusKind::Ok, StatusKind::No, StatusKind::Bad][usize::from(kind)];
            let tag = Tag::try_from(tag).unwrap();
            let reply = Reply { kind, code: None, text: words.clone() };
            let mut ours = Vec::new();
            tagged(&mut ours, &tag, &reply);
            let status = Status::Tagged(Tagged {
                tag: tag.clone(),
                body: StatusBody { kind, code: None, text: text(&words) },
            });
            let theirs = ResponseCodec::default().encode(&Response::Status(status)).dump();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
