//! `imap::message` against a real peer: every message of `testdata/mail` (and a few odd ones
//! made here) is delivered with `mailtool mbox deliver`, served by Dovecot, fetched with
//! Python's imaplib, and compared item by item with what our `MessageMap` gives for the
//! same file: ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE and a set of BODY[section]s.
//!
//! Two differences of form are normalised away, not kept as differences: imap-codec writes
//! the media types it has fixed fields for as "TEXT" and "MESSAGE" "RFC822" where Dovecot
//! writes them as the message does, and Dovecot sends folded header text as a literal where
//! imap-codec quotes it; IMAP reads both the same (RFC 3501 §4.3, §7.4.2). Differences kept
//! on purpose would go in `KNOWN_DIFFERENCES`, with the reason; there are none.

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::num::NonZeroU32;

use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::{CommandCodec, ResponseCodec};
use mailtool::imap::message::{MessageMap, SectionStream};
use serde_json::Value;
use support::dovecot::Dovecot;
use support::{crlf_line_ends, TempStore};

/// The items compared; each is fetched alone so responses line up one to one.
const ITEMS: &[&str] = &[
    "ENVELOPE",
    "BODY",
    "BODYSTRUCTURE",
    "RFC822.SIZE",
    "BODY.PEEK[]",
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.MIME]",
    "BODY.PEEK[1.1]",
    "BODY.PEEK[1.2]",
    "BODY.PEEK[2]",
    "BODY.PEEK[2.MIME]",
    "BODY.PEEK[2.1]",
    "BODY.PEEK[2.2]",
    "BODY.PEEK[2.HEADER]",
    "BODY.PEEK[2.TEXT]",
    "BODY.PEEK[2.1.MIME]",
    "BODY.PEEK[3]",
    "BODY.PEEK[9]",
    "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]",
    "BODY.PEEK[HEADER.FIELDS (X-NONE)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (FROM SUBJECT RECEIVED)]",
    "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]",
    "BODY.PEEK[]<0.100>",
    "BODY.PEEK[TEXT]<10.50>",
    "BODY.PEEK[1]<5000.10>",
];

/// Fetch each item of each message alone and print what came back, literals inline.
const FETCH_ALL: &str = r#"
import base64, imaplib, json, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("asterix", "potion")
typ, data = imap.select("INBOX", readonly=True)
count = int(data[0])
items = sys.argv[2:]
out = []
for i in range(1, count + 1):
    got = {}
    for item in items:
        typ, data = imap.fetch(str(i), "(" + item + ")")
        assert typ == "OK", (item, data)
        raw = b""
        for part in data:
            if isinstance(part, tuple):
                raw += part[0] + b"\r\n" + part[1]
            else:
                raw += part
        got[item] = base64.b64encode(raw).decode()
    out.append(got)
imap.logout()
print(json.dumps(out))
"#;

/// Odd messages beside testdata/mail: a header with no body, a digest, groups and routes,
/// CR-only line ends, mixed line ends, a part that is only a header.
fn extra_mails() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("header-only", b"Subject: no body\nFrom: a@b.c\n".to_vec()),
        (
            "digest",
            b"From: digest@list.example\nSubject: digest\nContent-Type: multipart/digest; boundary=d\n\n\
--d\n\nFrom: one@example.org\nSubject: first\n\nfirst body\n\
--d\nContent-Type: text/plain\n\nnot a message\n--d--\n"
                .to_vec(),
        ),
        (
            "groups",
            b"From: \"Doe, John\" (comment) <john@example.org>\n\
To: friends: a@b.c, Bee <b@c.d>;, undisclosed-recipients:;\n\
Cc: <@route.one,@route.two:user@host.example>, plain@host (Plain Name)\n\
Reply-To:\nSubject: =?utf-8?q?caf=C3=A9?=\n  folded\nIn-Reply-To: <x@y>\n\n\
hi\n"
                .to_vec(),
        ),
        (
            "blanks",
            b"Subject: a  b\tc \n\t d\nFrom: \"x  y\" <a@b>\n\nbody\n".to_vec(),
        ),
        ("cr-only", b"Subject: cr\r\rbody\r".to_vec()),
        (
            "mixed-ends",
            b"Subject: mixed\r\nContent-Type: multipart/mixed; boundary=\"m\"\n\r\n\
--m\r\nContent-Type: text/plain\n\none\r\ntwo\n--m \t\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>x</p>\n--m--\r\nepilogue\n"
                .to_vec(),
        ),
        (
            "part-header-only",
            b"Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain\n--z\n\n\n--z--\n"
                .to_vec(),
        ),
    ]
}

/// Our answer for `item`, as a FETCH response would carry it.
fn ours(map: &MessageMap, file: &std::path::Path, item: &str) -> Vec<u8> {
    let command = format!("a FETCH 1 ({item})\r\n");
    let (_, command) = CommandCodec::default()
        .decode(command.as_bytes())
        .unwrap_or_else(|e| panic!("{item}: {e:?}"));
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = command.body
    else {
        panic!("{item} is not a FETCH");
    };
    let data = match &names[0] {
        MessageDataItemName::Envelope => MessageDataItem::Envelope(map.envelope()),
        MessageDataItemName::Body => MessageDataItem::Body(map.body_structure(false)),
        MessageDataItemName::BodyStructure => {
            MessageDataItem::BodyStructure(map.body_structure(true))
        }
        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(map.size() as u32),
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => {
            let source = map.section(section.as_ref());
            let mut stream = SectionStream::new(source, partial.map(|(o, c)| (o, c.get())));
            let mut bytes = Vec::new();
            let mut f = File::open(file).unwrap();
            while !stream.fill(&mut f, &mut bytes, 4096).unwrap() {}
            assert_eq!(bytes.len() as u64, stream.len(), "{item}");
            // The literal itself, as the Python side reports it after its head.
            let head = match partial {
                Some((origin, _)) => format!("BODY[...]<{origin}>"),
                None => "BODY[...]".to_owned(),
            };
            let mut raw = format!("1 ({head} {{{}}}\r\n", bytes.len()).into_bytes();
            raw.extend_from_slice(&bytes);
            raw.extend_from_slice(b")");
            return raw;
        }
        other => panic!("{other:?} is not compared"),
    };
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::new(1).unwrap(),
        items: Vec1::from(data),
    });
    let mut raw = ResponseCodec::default().encode(&response).dump();
    raw.drain(..2); // "* "
                    // imaplib drops the FETCH keyword.
    let raw = String::from_utf8(raw).unwrap().replacen(" FETCH ", " ", 1);
    // imap-codec always writes the text type as "TEXT", Dovecot as it was written ("text");
    // IMAP strings compare case-insensitively here (RFC 3501 §7.4.2 shows "TEXT").
    let mut raw = raw
        .replace("(\"TEXT\" ", "(\"text\" ")
        .replace("(\"MESSAGE\" \"RFC822\" ", "(\"message\" \"rfc822\" ")
        .into_bytes();
    raw.truncate(raw.len() - 2); // CRLF
    raw
}

/// Dovecot's answer, with the section name replaced like ours and an empty quoted string or
/// NIL written as an empty literal, so that only the contents are compared.
fn theirs(raw: &[u8], item: &str) -> Vec<u8> {
    if !item.starts_with("BODY.PEEK") {
        return quote_literals(raw);
    }
    let text = raw;
    let open = text.iter().position(|&b| b == b'[').unwrap();
    let close = open + text[open..].iter().position(|&b| b == b']').unwrap();
    let after = &text[close + 1..];
    let (partial, after) = match after.strip_prefix(b"<") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b'>').unwrap();
            (
                Some(String::from_utf8_lossy(&rest[..end]).into_owned()),
                &rest[end + 1..],
            )
        }
        None => (None, after),
    };
    let after = after.strip_prefix(b" ").unwrap_or(after);
    let bytes: Vec<u8> = if after.starts_with(b"NIL") || after.starts_with(b"\"\"") {
        Vec::new()
    } else {
        let end = after.iter().position(|&b| b == b'}').unwrap();
        let n: usize = std::str::from_utf8(&after[1..end])
            .unwrap()
            .parse()
            .unwrap();
        after[end + 3..end + 3 + n].to_vec()
    };
    let head = match partial {
        Some(origin) => format!("BODY[...]<{origin}>"),
        None => "BODY[...]".to_owned(),
    };
    let mut out = format!("1 ({head} {{{}}}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(&bytes);
    out.extend_from_slice(b")");
    out
}

/// Literals that could have been quoted strings, quoted: Dovecot sends a folded Subject as a
/// literal, imap-codec quotes what it can; both are the same string (RFC 3501 §4.3).
fn quote_literals(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'{' {
            if let Some(close) = raw[i..].iter().position(|&b| b == b'}') {
                let digits = &raw[i + 1..i + close];
                if let Some(n) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                {
                    let start = i + close + 3;
                    let data = &raw[start..start + n];
                    if data.iter().all(|&b| (0x20..0x7f).contains(&b)) {
                        out.push(b'"');
                        for &b in data {
                            if b == b'"' || b == b'\\' {
                                out.push(b'\\');
                            }
                            out.push(b);
                        }
                        out.push(b'"');
                        i = start + n;
                        continue;
                    }
                }
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Differences kept on purpose: (message name, item, why, with the RFC section). None.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

#[test]
fn message_structure_matches_dovecot() {
    let store = TempStore::demo();
    let mail_dir = support::testdata().join("mail");
    let mut names: Vec<_> = fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    for (name, bytes) in extra_mails() {
        let path = store.scratch().join(format!("{name}.eml"));
        fs::write(&path, bytes).unwrap();
        names.push(path);
    }
    let mut deliver = store.mailtool();
    deliver.args(["mbox", "deliver", "asterix"]).args(&names);
    deliver.assert().success();
    // The files as Dovecot will serve them, found again by their contents.
    let files: Vec<_> = store
        .messages("asterix")
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            let name = names
                .iter()
                .find(|n| fs::read(n).unwrap() == bytes)
                .map(|n| n.file_stem().unwrap().to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            (name, path, bytes)
        })
        .collect();

    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let port = dovecot.imap_port.to_string();
    let mut args = vec![port.as_str()];
    args.extend_from_slice(ITEMS);
    let output = support::python(FETCH_ALL, args);
    let fetched: Vec<BTreeMap<String, Value>> = serde_json::from_slice(&output).unwrap();
    assert_eq!(fetched.len(), files.len());

    let mut failures = Vec::new();
    for got in &fetched {
        let decode = |item: &str| {
            data_encoding::BASE64
                .decode(got[item].as_str().unwrap().as_bytes())
                .unwrap()
        };
        let body = theirs(&decode("BODY.PEEK[]"), "BODY.PEEK[]");
        let (name, path, _) = files
            .iter()
            .find(|(_, _, bytes)| {
                let sent = crlf_line_ends(bytes);
                body.ends_with(&[&sent[..], b")"].concat())
            })
            .expect("each message fetched is one of the files");
        let map = MessageMap::scan(File::open(path).unwrap()).unwrap();
        for item in ITEMS {
            let their = theirs(&decode(item), item);
            let our = ours(&map, path, item);
            let our = if item.starts_with("BODY.PEEK") {
                our
            } else {
                quote_literals(&our)
            };
            let raw = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let seq_free = |b: &[u8]| {
                let b = raw(b);
                b.split_once(' ').map(|x| x.1.to_owned()).unwrap_or(b)
            };
            if seq_free(&their) != seq_free(&our) {
                let known = KNOWN_DIFFERENCES
                    .iter()
                    .any(|(n, i, _)| n == name && i == item);
                if !known {
                    let cut = |s: String| s.chars().take(1500).collect::<String>();
                    failures.push(format!(
                        "{name} {item}:\n  dovecot: {}\n  ours:    {}",
                        cut(seq_free(&their)),
                        cut(seq_free(&our))
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
