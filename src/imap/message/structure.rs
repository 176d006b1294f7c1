//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) from the entity tree, shaped as Dovecot shapes
//! them: defaults `text/plain; charset=us-ascii` and `7bit`, and a multipart without parts
//! answered as one empty text/plain part.

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, Vec1};

use super::envelope::{envelope, istring, nstring};
use super::header::{self, MimeValue, Token};
use super::{Kind, MessageMap};

/// A Content-Type as used here: the declared one, or the default.
fn content_type(block: &[u8], in_digest: bool) -> MimeValue {
    header::first_value(block, "Content-Type")
        .and_then(|v| MimeValue::parse(&v, true))
        .unwrap_or_else(|| {
            let (main, sub): (&[u8], &[u8]) = if in_digest {
                (b"message", b"rfc822")
            } else {
                (b"text", b"plain")
            };
            MimeValue {
                main: main.to_vec(),
                sub: Some(sub.to_vec()),
                params: Vec::new(),
            }
        })
}

fn is(value: &[u8], name: &str) -> bool {
    value.eq_ignore_ascii_case(name.as_bytes())
}

/// What the scanner does with an entity whose header says this, and the boundary of a
/// multipart (None when it has none, which makes it a single part).
pub(super) fn kind_of(block: &[u8], in_digest: bool) -> (Kind, Option<Vec<u8>>) {
    let ct = content_type(block, in_digest);
    let sub = ct.sub.as_deref().unwrap_or_default();
    if is(&ct.main, "multipart") {
        let boundary = ct.param("boundary").filter(|b| !b.is_empty());
        (Kind::Multipart, boundary.map(<[u8]>::to_vec))
    } else if is(&ct.main, "message") && is(sub, "rfc822") {
        (Kind::Message, None)
    } else {
        (Kind::Leaf, None)
    }
}

/// Whether a header declares multipart/digest, whose parts default to message/rfc822.
pub(super) fn is_digest(block: &[u8]) -> bool {
    let ct = content_type(block, false);
    is(&ct.main, "multipart") && ct.sub.as_deref().is_some_and(|s| is(s, "digest"))
}

fn params(list: &[(Vec<u8>, Vec<u8>)]) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter().map(|(n, v)| (istring(n), istring(v))).collect()
}

fn size32(size: u64) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

/// Disposition, language and location: the extension data both kinds of parts share.
fn disposition(block: &[u8]) -> Disposition<'static> {
    let disposition = header::first_value(block, "Content-Disposition")
        .and_then(|v| MimeValue::parse(&v, false))
        .map(|d| (istring(&d.main), params(&d.params)));
    let language = header::first_value(block, "Content-Language")
        .map(|v| {
            header::tokens(&v, true)
                .into_iter()
                .filter_map(|t| match t {
                    Token::Atom(a) => Some(istring(&a)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let location = header::first_value(block, "Content-Location");
    Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: nstring(location.as_deref()),
                extensions: Vec::new(),
            }),
        }),
    }
}

/// The stand-in for a multipart without parts: `("text" "plain" ("charset" "us-ascii") NIL
/// NIL "7bit" 0 0)`, as Dovecot sends.
fn empty_part(extended: bool) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: params(&[(b"charset".to_vec(), b"us-ascii".to_vec())]),
                id: NString::NIL,
                description: NString::NIL,
                content_transfer_encoding: istring(b"7bit"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring(b"plain"),
                number_of_lines: 0,
            },
        },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: NString::NIL,
            tail: Some(Disposition {
                disposition: None,
                tail: Some(Language {
                    language: Vec::new(),
                    tail: Some(Location {
                        location: NString::NIL,
                        extensions: Vec::new(),
                    }),
                }),
            }),
        }),
    }
}

pub(super) fn body_structure(
    map: &MessageMap,
    id: usize,
    extended: bool,
) -> BodyStructure<'static> {
    build(map, id, false, extended)
}

fn build(map: &MessageMap, id: usize, in_digest: bool, extended: bool) -> BodyStructure<'static> {
    let entity = &map.entities[id];
    let block = &entity.header;
    let ct = content_type(block, in_digest);
    let sub = ct.sub.clone().unwrap_or_default();
    if entity.kind == Kind::Multipart {
        let digest = is(&sub, "digest");
        let bodies: Vec<BodyStructure<'static>> = entity
            .children
            .iter()
            .map(|&child| build(map, child, digest, extended))
            .collect();
        let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_part(extended)));
        return BodyStructure::Multi {
            bodies,
            subtype: istring(&sub),
            extension_data: extended.then(|| MultiPartExtensionData {
                parameter_list: params(&ct.params),
                tail: Some(disposition(block)),
            }),
        };
    }
    let mut parameter_list = params(&ct.params);
    let text = is(&ct.main, "text");
    if text && ct.param("charset").is_none() && ct.params.is_empty() {
        parameter_list = params(&[(b"charset".to_vec(), b"us-ascii".to_vec())]);
    }
    let encoding = header::first_value(block, "Content-Transfer-Encoding")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| b"7bit".to_vec());
    let basic = BasicFields {
        parameter_list,
        id: nstring(header::first_value(block, "Content-ID").as_deref()),
        description: nstring(header::first_value(block, "Content-Description").as_deref()),
        content_transfer_encoding: istring(&encoding),
        size: size32(entity.body_size()),
    };
    let specific = match (entity.kind, entity.children.first()) {
        (Kind::Message, Some(&child)) => SpecificFields::Message {
            envelope: Box::new(envelope(&map.entities[child].header)),
            body_structure: Box::new(build(map, child, false, extended)),
            number_of_lines: size32(entity.body_lines()),
        },
        _ if text => SpecificFields::Text {
            subtype: istring(&sub),
            number_of_lines: size32(entity.body_lines()),
        },
        // A message/rfc822 part not descended into (nesting too deep) would make clients
        // expect an envelope: send it as opaque data instead.
        _ if is(&ct.main, "message") && is(&sub, "rfc822") => SpecificFields::Basic {
            r#type: istring(b"application"),
            subtype: istring(b"octet-stream"),
        },
        _ => SpecificFields::Basic {
            r#type: istring(&ct.main),
            subtype: istring(&sub),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring(header::first_value(block, "Content-MD5").as_deref()),
            tail: Some(disposition(block)),
        }),
    }
}
