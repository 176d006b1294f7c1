//! Glue between the session and imap-codec's response types: every response the session
//! sends goes through [`ResponseCodec`] here, so nothing is formatted by hand (FETCH body
//! literals, streamed from the file, are the one exception: see [`super::fetch`]).

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
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

/// Response text as IMAP allows it: printable ASCII, never empty. Anything else (a client's
/// bytes echoed back, for instance) becomes `?`.
pub fn text(text: &str) -> Text<'static> {
    let mut cleaned: String = text
        .chars()
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
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
    out.extend_from_slice(&ResponseCodec::default().encode(response).dump());
}

pub fn data(out: &mut Vec<u8>, data: Data<'_>) {
    encode(out, &Response::Data(data));
}

pub fn tagged(out: &mut Vec<u8>, tag: &Tag<'_>, reply: &Reply) {
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
