//! ENVELOPE (RFC 3501 §7.4.2) from a header block: text fields as written (unfolded, RFC 2047
//! words left encoded, as Dovecot sends them), addresses split into name, route, mailbox and
//! host with RFC 5322 group syntax as RFC 3501 encodes it.

use imap_codec::imap_types::core::{IString, Literal, NString, Quoted};
use imap_codec::imap_types::envelope::{Address, Envelope};

use super::header::{self, Token};

/// A string as IMAP can send it: quoted when it can be, else a literal; NULs dropped.
pub(crate) fn istring(bytes: &[u8]) -> IString<'static> {
    let clean: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    if Quoted::validate(&clean).is_ok() {
        if let Ok(text) = String::from_utf8(clean.clone()) {
            if let Ok(quoted) = Quoted::try_from(text) {
                return IString::Quoted(quoted);
            }
        }
    }
    match Literal::try_from(clean) {
        Ok(literal) => IString::Literal(literal),
        // Unreachable once NULs are gone; an empty string is the safe answer.
        Err(_) => IString::Quoted(Quoted::unvalidated("")),
    }
}

pub(crate) fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(istring))
}

pub(crate) fn envelope(block: &[u8]) -> Envelope<'static> {
    let fields = header::fields(block);
    // As Dovecot: the last of repeated text fields counts, repeated address fields add up.
    let text = |name: &str| {
        let last = fields.iter().rev().find(|f| f.is(block, name));
        nstring(last.map(|f| for_humans(&f.value(block))).as_deref())
    };
    let addresses = |name: &str| {
        fields
            .iter()
            .filter(|f| f.is(block, name))
            .flat_map(|f| parse_addresses(&f.value(block)))
            .collect::<Vec<_>>()
    };
    let from = addresses("From");
    let or_from = |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: text("Date"),
        subject: text("Subject"),
        sender: or_from(addresses("Sender")),
        reply_to: or_from(addresses("Reply-To")),
        from: from.clone(),
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        in_reply_to: text("In-Reply-To"),
        message_id: text("Message-ID"),
    }
}

/// Header text as Dovecot puts it in an ENVELOPE: each run of blanks, CRs and LFs (folds
/// included) becomes one space.
fn for_humans(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
            while i < value.len() && matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

fn address(
    name: Option<&[u8]>,
    adl: Option<&[u8]>,
    mailbox: Option<&[u8]>,
    host: Option<&[u8]>,
) -> Address<'static> {
    Address {
        name: nstring(name.filter(|n| !n.is_empty()).map(for_humans).as_deref()),
        adl: nstring(adl.filter(|n| !n.is_empty())),
        mailbox: nstring(mailbox),
        host: nstring(host),
    }
}

/// An address list, with groups as RFC 3501 encodes them: a start marker (NIL NIL name NIL)
/// and an end marker (NIL NIL NIL NIL) around the members.
pub(crate) fn parse_addresses(value: &[u8]) -> Vec<Address<'static>> {
    let mut out = Vec::new();
    let mut item: Vec<Token> = Vec::new();
    let mut angle: Option<Vec<Token>> = None;
    let mut in_group = false;
    let mut inside_angle = false;
    for token in header::tokens(value, false) {
        if inside_angle {
            if token == Token::Special(b'>') {
                inside_angle = false;
            } else if let Some(a) = angle.as_mut() {
                a.push(token);
            }
            continue;
        }
        match token {
            Token::Special(b'<') => {
                inside_angle = true;
                angle = Some(Vec::new());
            }
            Token::Special(b':') if !in_group => {
                let name = phrase(&item);
                out.push(address(None, None, Some(&name), None));
                in_group = true;
                item.clear();
                angle = None;
            }
            Token::Special(b',') => {
                finish(&mut out, &mut item, &mut angle);
            }
            Token::Special(b';') if in_group => {
                finish(&mut out, &mut item, &mut angle);
                out.push(address(None, None, None, None));
                in_group = false;
            }
            other => item.push(other),
        }
    }
    finish(&mut out, &mut item, &mut angle);
    if in_group {
        out.push(address(None, None, None, None));
    }
    out
}

fn finish(out: &mut Vec<Address<'static>>, item: &mut Vec<Token>, angle: &mut Option<Vec<Token>>) {
    let words = std::mem::take(item);
    match angle.take() {
        Some(spec) => {
            let name = phrase(&words);
            // A route: `@a,@b:` before the address.
            let (adl, spec) = match spec.iter().position(|t| *t == Token::Special(b':')) {
                Some(colon) if spec.first() == Some(&Token::Special(b'@')) => {
                    (Some(joined(&spec[..colon])), spec[colon + 1..].to_vec())
                }
                _ => (None, spec),
            };
            let (mailbox, host) = addr_spec(&spec);
            out.push(address(
                Some(&name),
                adl.as_deref(),
                Some(&mailbox),
                host.as_deref(),
            ));
        }
        None => {
            let comment = words.iter().rev().find_map(|t| match t {
                Token::Comment(c) => Some(c.clone()),
                _ => None,
            });
            let spec: Vec<Token> = words
                .into_iter()
                .filter(|t| !matches!(t, Token::Comment(_)))
                .collect();
            if spec.is_empty() {
                return;
            }
            let (mailbox, host) = addr_spec(&spec);
            out.push(address(
                comment.as_deref(),
                None,
                Some(&mailbox),
                host.as_deref(),
            ));
        }
    }
}

/// The display name: words joined by one space, quoted strings unquoted.
fn phrase(words: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in words {
        let text = match word {
            Token::Atom(a) | Token::Quoted(a) => a,
            Token::Literal(l) => l,
            Token::Special(s) => {
                out.push(*s);
                continue;
            }
            Token::Comment(_) => continue,
        };
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(text);
    }
    out
}

/// Tokens as text, without separators (`a` `.b` stays `a.b`).
fn joined(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in tokens {
        match token {
            Token::Atom(a) | Token::Quoted(a) | Token::Literal(a) => out.extend_from_slice(a),
            Token::Special(s) => out.push(*s),
            Token::Comment(_) => {}
        }
    }
    out
}

/// `local@domain` split at the last `@`; no `@` means no host.
fn addr_spec(spec: &[Token]) -> (Vec<u8>, Option<Vec<u8>>) {
    let spec: Vec<Token> = spec
        .iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .cloned()
        .collect();
    match spec.iter().rposition(|t| *t == Token::Special(b'@')) {
        Some(at) => (joined(&spec[..at]), Some(joined(&spec[at + 1..]))),
        None => (joined(&spec), None),
    }
}
