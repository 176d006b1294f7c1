use std::fs::File;
use std::io::{Seek, Write};

use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::{CommandCodec, ResponseCodec};
use proptest::prelude::*;

use super::*;

/// Every LF not after a CR as CRLF: the reference for what is sent.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_crlf(&mut out, bytes);
    out
}

fn file_of(bytes: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file.rewind().unwrap();
    file
}

/// A section and partial as a client writes them, e.g. `BODY[1.MIME]<0.10>`, parsed by
/// imap-codec.
fn parse(item: &str) -> (Option<Section<'static>>, Option<(u32, u32)>) {
    let command = format!("a FETCH 1 ({item})\r\n");
    let (_, command) = CommandCodec::default()
        .decode(command.as_bytes())
        .unwrap_or_else(|e| panic!("{item}: {e:?}"));
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = command.body
    else {
        panic!("{item}");
    };
    match names.into_iter().next() {
        Some(MessageDataItemName::BodyExt {
            section, partial, ..
        }) => (
            section.map(|s| s.into_static()),
            partial.map(|(o, c)| (o, c.get())),
        ),
        other => panic!("{other:?}"),
    }
}

use imap_codec::imap_types::IntoStatic;

/// What is sent for `item` of `mail`, filled `max` octets at a time; checks the stream's
/// promised length.
fn fetch_with(mail: &[u8], item: &str, max: usize) -> Vec<u8> {
    let map = MessageMap::scan(mail).unwrap();
    let (section, partial) = parse(item);
    let source = map.section(section.as_ref());
    let mut stream = SectionStream::new(source, partial);
    let mut file = file_of(mail);
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        let before = out.len();
        let done = stream.fill(&mut file, &mut out, max).unwrap();
        assert!(out.len() - before <= max.max(1), "{item}: over max");
        calls += 1;
        assert!(calls < 1_000_000);
        if done {
            break;
        }
    }
    assert_eq!(out.len() as u64, stream.len(), "{item}: len");
    out
}

fn fetch(mail: &[u8], item: &str) -> String {
    let a = fetch_with(mail, item, 65536);
    for max in [1, 2, 3, 7] {
        assert_eq!(fetch_with(mail, item, max), a, "{item} with max {max}");
    }
    String::from_utf8(a).unwrap()
}

const NESTED: &[u8] = b"From: A <a@example.org>\n\
Subject: nested\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\
\n\
preamble\n\
--outer\n\
Content-Type: text/plain\n\
\n\
first\n\
--outer\r\n\
Content-Type: message/rfc822\n\
Content-Description: attached\n\
\n\
Subject: inner\n\
Content-Type: multipart/alternative; boundary=inner\n\
\n\
--inner\n\
\n\
inner plain\n\
--inner\n\
Content-Type: text/html\n\
\n\
<p>inner</p>\n\
--inner--\n\
--outer--  \n\
epilogue\n";

#[test]
fn every_section_kind() {
    let m = NESTED;
    assert_eq!(fetch(m, "BODY[]"), String::from_utf8(crlf(m)).unwrap());
    assert_eq!(
        fetch(m, "BODY[HEADER]"),
        "From: A <a@example.org>\r\nSubject: nested\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    );
    assert!(fetch(m, "BODY[TEXT]").starts_with("preamble\r\n--outer\r\n"));
    assert_eq!(fetch(m, "BODY[1]"), "first");
    assert_eq!(fetch(m, "BODY[1.MIME]"), "Content-Type: text/plain\r\n\r\n");
    assert_eq!(
        fetch(m, "BODY[2.HEADER]"),
        "Subject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    );
    assert!(fetch(m, "BODY[2]").starts_with("Subject: inner\r\n"));
    assert!(fetch(m, "BODY[2]").ends_with("--inner--"));
    assert!(fetch(m, "BODY[2.TEXT]").starts_with("--inner\r\n"));
    assert_eq!(fetch(m, "BODY[2.1]"), "inner plain");
    assert_eq!(fetch(m, "BODY[2.1.MIME]"), "\r\n");
    assert_eq!(fetch(m, "BODY[2.2]"), "<p>inner</p>");
    assert_eq!(
        fetch(m, "BODY[2.2.MIME]"),
        "Content-Type: text/html\r\n\r\n"
    );
    assert_eq!(
        fetch(m, "BODY[2.MIME]"),
        "Content-Type: message/rfc822\r\nContent-Description: attached\r\n\r\n"
    );
    assert_eq!(
        fetch(m, "BODY[HEADER.FIELDS (subject FROM)]"),
        "From: A <a@example.org>\r\nSubject: nested\r\n\r\n"
    );
    assert_eq!(
        fetch(m, "BODY[HEADER.FIELDS.NOT (subject FROM)]"),
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    );
    assert_eq!(
        fetch(m, "BODY[2.HEADER.FIELDS (SUBJECT)]"),
        "Subject: inner\r\n\r\n"
    );
    // Parts that do not exist, and HEADER/TEXT of a part that is no message.
    for missing in [
        "BODY[3]",
        "BODY[1.2]",
        "BODY[2.3]",
        "BODY[1.HEADER]",
        "BODY[1.TEXT]",
        "BODY[3.MIME]",
        "BODY[2.1.1.1.2]",
    ] {
        assert_eq!(fetch(m, missing), "", "{missing}");
    }
    // A leaf of a multipart stands for itself under `.1`, as in Dovecot.
    assert_eq!(fetch(m, "BODY[1.1]"), "first");
}

#[test]
fn a_boundary_folded_inside_its_quotes_still_splits_the_parts() {
    // imaptest's fetch-body-mime: `boundary="foo<CRLF> bar"` unfolds to `foo bar`.
    let m = b"Content-Type: multipart/mixed; boundary=\"foo\r\n bar\"\r\n\r\n\
--foo bar\r\nContent-Type: text/x-myown\r\n\r\nhello\r\n\r\n--foo bar--\r\n";
    assert_eq!(fetch(m, "BODY[1]"), "hello\r\n");
    assert_eq!(
        fetch(m, "BODY[1.MIME]"),
        "Content-Type: text/x-myown\r\n\r\n"
    );
    let body = String::from_utf8(encode(&MessageMap::scan(&m[..]).unwrap())).unwrap();
    assert!(
        body.contains("BODY ((\"TEXT\" \"x-myown\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1) \"mixed\")"),
        "{body}"
    );
}

#[test]
fn single_part_message_is_part_one() {
    let m = b"Subject: x\n\nline one\nline two\n";
    assert_eq!(fetch(m, "BODY[1]"), "line one\r\nline two\r\n");
    assert_eq!(fetch(m, "BODY[TEXT]"), "line one\r\nline two\r\n");
    assert_eq!(fetch(m, "BODY[1.MIME]"), "Subject: x\r\n\r\n");
    assert_eq!(fetch(m, "BODY[1.1]"), "");
    assert_eq!(fetch(m, "BODY[2]"), "");
    let map = MessageMap::scan(&m[..]).unwrap();
    assert_eq!(map.size(), crlf(m).len() as u64);
    assert_eq!(map.header_fields("SUBJECT"), vec![b"x".to_vec()]);
}

#[test]
fn partials() {
    let m = b"Subject: x\n\nab\ncd\n";
    assert_eq!(fetch(m, "BODY[TEXT]<0.3>"), "ab\r");
    assert_eq!(fetch(m, "BODY[TEXT]<3.3>"), "\ncd");
    assert_eq!(fetch(m, "BODY[TEXT]<2.100>"), "\r\ncd\r\n");
    assert_eq!(fetch(m, "BODY[TEXT]<8.1>"), "");
    assert_eq!(fetch(m, "BODY[TEXT]<7.5>"), "\n");
    assert_eq!(fetch(m, "BODY[HEADER.FIELDS (SUBJECT)]<1.4>"), "ubje");
}

#[test]
fn a_range_that_starts_after_a_cr_keeps_its_lf() {
    let bytes = b"a\r\nb\nc";
    let mut file = file_of(bytes);
    // From the LF of a CRLF: that LF is not bare.
    let mut stream = SectionStream::new(
        SectionSource::File {
            start: 2,
            end: 6,
            len: 5,
        },
        None,
    );
    let mut out = Vec::new();
    while !stream.fill(&mut file, &mut out, 1).unwrap() {}
    assert_eq!(out, b"\nb\r\nc");
}

#[test]
fn a_file_that_got_shorter_is_an_error() {
    let m = b"Subject: x\n\nsome body text\n";
    let map = MessageMap::scan(&m[..]).unwrap();
    let mut file = file_of(&m[..15]);
    let mut stream = SectionStream::new(map.section(None), None);
    let mut out = Vec::new();
    let error = loop {
        match stream.fill(&mut file, &mut out, 4) {
            Ok(true) => panic!("finished on a short file"),
            Ok(false) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

fn encode(map: &MessageMap) -> Vec<u8> {
    let items = vec![
        MessageDataItem::Envelope(map.envelope()),
        MessageDataItem::Body(map.body_structure(false)),
        MessageDataItem::BodyStructure(map.body_structure(true)),
    ];
    let response = Response::Data(Data::Fetch {
        seq: std::num::NonZeroU32::new(1).unwrap(),
        items: Vec1::try_from(items).unwrap(),
    });
    ResponseCodec::default().encode(&response).dump()
}

#[test]
fn hostile_inputs_do_not_panic() {
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"Subject: only a header".to_vec(),
        b"Subject: cr\r\rbody\r".to_vec(),
        b"\0\0\0: \0\n\n\0".to_vec(),
        b"Subject: \xff\xfe 8-bit \x80\nFrom: \xe9 <\xe9@\xe9>\n\n\xff".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\n--a\n--a--\n--a\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\n\n--a".to_vec(),
        b"Content-Type: message/rfc822\n\n".to_vec(),
        b"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n".to_vec(),
        b"From: <<<@@@>>>, ;;;, \"unterminated\nTo: (((\nCc: a:b:c;d;;\n\n".to_vec(),
        b"Content-Type: text/plain; name*0*=x; name*1=y; name*99=z; name*=q\n\n".to_vec(),
        b" continuation first\n:no name\n\n".to_vec(),
    ];
    for case in cases {
        let map = MessageMap::scan(&case[..]).unwrap();
        assert_eq!(map.size(), crlf(&case).len() as u64);
        encode(&map);
        assert_eq!(fetch_with(&case, "BODY[]", 3), crlf(&case));
        for item in SECTIONS {
            fetch_with(&case, item, 5);
        }
    }
}

#[test]
fn deep_nesting_and_many_parts_are_capped() {
    let depth = 3000;
    let mut mail = Vec::new();
    for level in 0..depth {
        mail.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n")
                .as_bytes(),
        );
    }
    mail.extend_from_slice(b"\ndeep\n");
    for level in (0..depth).rev() {
        mail.extend_from_slice(format!("--b{level}--\n").as_bytes());
    }
    // The scan does not recurse: a small stack will do.
    let map = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || MessageMap::scan(&mail[..]).unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert!(map.entities.len() <= MAX_DEPTH + 1);
    // BODYSTRUCTURE recurses once per level, at most MAX_DEPTH: a thread's usual 2 MiB.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || encode(&map))
        .unwrap()
        .join()
        .unwrap();

    let mut mail = b"Content-Type: multipart/mixed; boundary=x\n\n".to_vec();
    for _ in 0..5000 {
        mail.extend_from_slice(b"--x\n\np\n");
    }
    let map = MessageMap::scan(&mail[..]).unwrap();
    assert_eq!(map.entities.len(), MAX_PARTS);
    assert_eq!(map.size(), crlf(&mail).len() as u64);
}

/// A message made up as it is read, never held whole.
struct Generated {
    left: u64,
    header: Vec<u8>,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.header.is_empty() {
            let n = buf.len().min(self.header.len());
            buf[..n].copy_from_slice(&self.header[..n]);
            self.header.drain(..n);
            return Ok(n);
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = if i % 64 == 63 { b'\n' } else { b'x' };
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn huge_headers_and_bodies_keep_memory_bounded() {
    // A 2 MiB header line and a 32 MiB body.
    let mut header = b"Subject: ".to_vec();
    header.resize(2 << 20, b'a');
    header.extend_from_slice(b"\nContent-Type: text/plain\n\n");
    let body = 32u64 << 20;
    let map = MessageMap::scan(Generated {
        left: body,
        header: header.clone(),
    })
    .unwrap();
    assert!(map.entities[0].header.len() <= MAX_HEADER);
    let lines = body / 64;
    // Three bare LFs in the header, one per 64 octets of body.
    assert_eq!(map.size(), header.len() as u64 + 3 + body + lines);
    assert_eq!(map.entities[0].body_lines(), lines);
}

const SECTIONS: &[&str] = &[
    "BODY[]",
    "BODY[HEADER]",
    "BODY[TEXT]",
    "BODY[1]",
    "BODY[1.MIME]",
    "BODY[1.1]",
    "BODY[1.2]",
    "BODY[2]",
    "BODY[2.MIME]",
    "BODY[2.1]",
    "BODY[2.1.MIME]",
    "BODY[2.2.1]",
    "BODY[2.HEADER]",
    "BODY[2.TEXT]",
    "BODY[HEADER.FIELDS (SUBJECT)]",
    "BODY[HEADER.FIELDS.NOT (SUBJECT)]",
    "BODY[]<3.17>",
    "BODY[1]<1.2>",
];

#[test]
fn testdata_sections_stream_what_they_promise() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mail");
    for entry in std::fs::read_dir(dir).unwrap() {
        let mail = std::fs::read(entry.unwrap().path()).unwrap();
        for item in SECTIONS {
            let a = fetch_with(&mail, item, 1 << 16);
            assert_eq!(fetch_with(&mail, item, 5), a, "{item}");
        }
    }
}

/// Messages from a small grammar: nested multiparts and attached messages, text lines that
/// look almost like delimiters, CRs in odd places; line ends picked per line.
fn entity(depth: u32) -> BoxedStrategy<String> {
    let line = prop_oneof![
        Just("text".to_owned()),
        Just(String::new()),
        Just("--".to_owned()),
        Just("--b0".to_owned()),
        Just("--b1--".to_owned()),
        Just("a\rb".to_owned()),
        Just("Subject: x".to_owned()),
        Just(" folded".to_owned()),
    ];
    let leaf = (
        prop::option::of(Just("Content-Type: text/plain; charset=utf-8\n".to_owned())),
        prop::collection::vec(line, 0..5),
    )
        .prop_map(|(header, lines)| {
            let mut s = header.unwrap_or_default();
            s.push('\n');
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
            s
        });
    if depth == 0 {
        return leaf.boxed();
    }
    let multipart = (
        prop::collection::vec(entity(depth - 1), 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(children, close, preamble)| {
            let b = format!("b{depth}");
            let mut s = format!("Content-Type: multipart/mixed; boundary=\"{b}\"\n\n");
            if preamble {
                s.push_str("preamble\n");
            }
            for child in children {
                s.push_str(&format!("--{b}\n"));
                s.push_str(&child);
            }
            if close {
                s.push_str(&format!("--{b}--\nepilogue\n"));
            }
            s
        });
    let message = entity(depth - 1)
        .prop_map(|inner| format!("Content-Type: message/rfc822\n\nSubject: inner\n{inner}"));
    prop_oneof![leaf, multipart, message].boxed()
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        entity(3),
        prop::collection::vec(any::<bool>(), 64),
        any::<bool>(),
    )
        .prop_map(|(text, crlf_mask, cut_last)| {
            let mut out = Vec::new();
            let mut n = 0;
            for b in text.bytes() {
                if b == b'\n' {
                    if crlf_mask[n % crlf_mask.len()] {
                        out.push(b'\r');
                    }
                    n += 1;
                }
                out.push(b);
            }
            if cut_last {
                out.pop();
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn streams_agree_with_the_reference(mail in message(), max in 1usize..40) {
        let map = MessageMap::scan(&mail[..]).unwrap();
        prop_assert_eq!(map.size(), crlf(&mail).len() as u64);
        prop_assert_eq!(fetch_with(&mail, "BODY[]", max), crlf(&mail));
        encode(&map);
        for item in SECTIONS {
            let whole = fetch_with(&mail, item, 1 << 16);
            prop_assert_eq!(fetch_with(&mail, item, max), whole);
        }
    }

    #[test]
    fn partials_are_the_octets_of_the_whole_they_name(
        mail in message(),
        origin in 0u32..400,
        count in 1u32..400,
        max in 1usize..40,
    ) {
        let whole = crlf(&mail);
        let from = (origin as usize).min(whole.len());
        let to = (from + count as usize).min(whole.len());
        let item = format!("BODY[]<{origin}.{count}>");
        prop_assert_eq!(fetch_with(&mail, &item, max), whole[from..to].to_vec());
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(mail in prop::collection::vec(
        prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'-'), Just(b':'), Just(b' '), any::<u8>()],
        0..300,
    )) {
        let map = MessageMap::scan(&mail[..]).unwrap();
        prop_assert_eq!(map.size(), crlf(&mail).len() as u64);
        encode(&map);
        prop_assert_eq!(fetch_with(&mail, "BODY[]", 7), crlf(&mail));
    }
}
