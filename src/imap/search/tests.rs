use std::io::Write;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::CommandCodec;

use super::*;

/// A message for tests: a temp file, its flags and INTERNALDATE, and how often it was opened.
struct Mail {
    seq: u32,
    uid: u32,
    flags: Vec<&'static str>,
    date: NaiveDate,
    file: tempfile::NamedTempFile,
    opens: usize,
}

impl Mail {
    fn new(seq: u32, uid: u32, flags: &[&'static str], date: (i32, u32, u32), text: &[u8]) -> Mail {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text).unwrap();
        Mail {
            seq,
            uid,
            flags: flags.to_vec(),
            date: NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap(),
            file,
            opens: 0,
        }
    }
}

impl SearchMessage for Mail {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.uid
    }
    fn has_flag(&self, flag: &Flag<'_>) -> bool {
        let flag = flag.to_string();
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(&flag))
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.as_file().metadata()?.len())
    }
    fn internal_date(&mut self) -> io::Result<NaiveDate> {
        Ok(self.date)
    }
    fn open(&mut self) -> io::Result<File> {
        self.opens += 1;
        File::open(self.file.path())
    }
}

/// The criteria of `UID SEARCH <criteria>` as imap-codec parses them, as one key.
fn parse(criteria: &[u8]) -> (SearchKey<'static>, Option<String>) {
    let mut line = b"a UID SEARCH ".to_vec();
    line.extend_from_slice(criteria);
    line.extend_from_slice(b"\r\n");
    let (rest, command) = CommandCodec::default()
        .decode_static(&line)
        .unwrap_or_else(|e| {
            panic!(
                "{:?} does not parse: {e:?}",
                String::from_utf8_lossy(criteria)
            )
        });
    assert!(rest.is_empty());
    let CommandBody::Search {
        charset, criteria, ..
    } = command.body
    else {
        panic!("not a SEARCH");
    };
    let mut keys: Vec<SearchKey<'static>> = criteria.into_iter().collect();
    let key = if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(Vec1::try_from(keys).unwrap())
    };
    (key, charset.map(|c| c.as_ref().to_owned()))
}

/// UIDs of the mails matching `criteria`, after `validate`. Quoted strings and atoms with
/// non-ASCII characters, which IMAP allows only in literals, are sent as LITERAL+ literals.
fn search(mails: &mut [Mail], criteria: &str) -> Vec<u32> {
    search_bytes(mails, &literals(criteria))
}

fn literals(criteria: &str) -> Vec<u8> {
    let literal = |text: &str| format!("{{{}+}}\r\n{text}", text.len());
    let mut out = String::new();
    let mut rest = criteria;
    while let Some(c) = rest.chars().next() {
        let end = if c == '"' {
            rest[1..].find('"').map_or(rest.len(), |i| i + 2)
        } else {
            rest.find([' ', '(', ')']).map_or(rest.len(), |i| i.max(1))
        };
        let token = &rest[..end];
        if token.is_ascii() {
            out.push_str(token);
        } else if let Some(inner) = token.strip_prefix('"') {
            out.push_str(&literal(inner.strip_suffix('"').unwrap_or(inner)));
        } else {
            out.push_str(&literal(token));
        }
        rest = &rest[end..];
    }
    out.into_bytes()
}

fn search_bytes(mails: &mut [Mail], criteria: &[u8]) -> Vec<u32> {
    let (key, charset) = parse(criteria);
    validate(&key, charset.as_deref()).unwrap();
    let context = SearchContext {
        exists: mails.len() as u32,
        max_uid: mails.iter().map(|m| m.uid).max().unwrap_or(0),
    };
    mails
        .iter_mut()
        .filter_map(|mail| {
            let uid = mail.uid;
            matches(&key, mail, context).unwrap().then_some(uid)
        })
        .collect()
}

const PLAIN: &[u8] = b"Return-Path: <asterix@village.gaul>\r
From: Asterix <asterix@village.gaul>\r
To: Obelix <obelix@village.gaul>, \"Dupont, Jean\" <jean@village.gaul>\r
Cc: Getafix <getafix@village.gaul>\r
Subject: Lunch   at the\r
 village square\r
Date: Mon, 06 Nov 2023 23:30:00 -0800\r
X-Mailer: Stone tablet 2.0\r
\r
Wild boar at noon. Bring the menhir.\r
";

const GERMAN: &[u8] = b"From: =?UTF-8?Q?Verleihnix?= <fish@village.gaul>
To: Village <all@village.gaul>
Bcc: Secret <secret@village.gaul>
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTHV0ZXRpYQ==?=
Date: 13 Nov 23 07:45 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Sch=C3=B6ne Gr=C3=BC=C3=9Fe vom Marktplatz.
Der Fisch ist FRISCH, sagt Verleihnix.
";

const LATIN1: &[u8] = b"From: =?ISO-8859-1?Q?Ob=E9lix?= <obelix@village.gaul>
To: Asterix <asterix@village.gaul>
Subject: =?ISO-8859-1?Q?Cr=E8me_br=FBl=E9e?=
Date: Sun, 12 Nov 2023 00:10:00 +1300
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64

Q3LobWUgYnL7bOllIHBvdXIgT2LpbGl4CkV0IGR1IHNhbmdsaWVyIHL0dGkuCg==
";

const MULTIPART: &[u8] = b"From: Asterix <asterix@village.gaul>
To: Getafix <getafix@village.gaul>
Subject: Fwd: Orders from Caesar
Date: Fri, 10 Nov 2023 09:12:44 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

This preamble mentions a preamblephrase.
--outer
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Look what the Romans are up to, caf=C3=A9 talk aside.
--alt
Content-Type: text/html; charset=utf-8

<p>Look what the <b>Romans</b> are up to</p>
--alt--
--outer
Content-Type: application/pdf; name=\"plan.pdf\"
Content-Disposition: attachment; filename=\"plan.pdf\"
Content-Transfer-Encoding: base64

JVBERi0xLjQgc2VjcmV0d29yZCAAAQI=
--outer
Content-Type: message/rfc822

From: Julius Caesar <caesar@senate.rome>
Subject: Inner orders
Date: Wed, 08 Nov 2023 12:00:00 +0100

Veni, vidi, vici.
--outer--
";

const NO_DATE: &[u8] = b"From: Cacofonix <cacofonix@village.gaul>
To: Village <all@village.gaul>
Subject: A song without a date
X-Lyrics: la la la

Tra la la.
";

fn mailbox() -> Vec<Mail> {
    vec![
        Mail::new(1, 10, &["\\Seen", "\\Answered"], (2023, 11, 7), PLAIN),
        Mail::new(2, 20, &["\\Flagged", "$Important"], (2023, 11, 13), GERMAN),
        Mail::new(
            3,
            30,
            &["\\Seen", "\\Deleted", "\\Recent"],
            (2023, 11, 12),
            LATIN1,
        ),
        Mail::new(4, 40, &["\\Draft", "\\Recent"], (2023, 11, 10), MULTIPART),
        Mail::new(5, 50, &["\\Recent", "\\Seen"], (2023, 11, 30), NO_DATE),
    ]
}

#[test]
fn flags_and_their_negations() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "ALL"), [10, 20, 30, 40, 50]);
    assert_eq!(search(&mut m, "ANSWERED"), [10]);
    assert_eq!(search(&mut m, "UNANSWERED"), [20, 30, 40, 50]);
    assert_eq!(search(&mut m, "DELETED"), [30]);
    assert_eq!(search(&mut m, "UNDELETED"), [10, 20, 40, 50]);
    assert_eq!(search(&mut m, "DRAFT"), [40]);
    assert_eq!(search(&mut m, "UNDRAFT"), [10, 20, 30, 50]);
    assert_eq!(search(&mut m, "FLAGGED"), [20]);
    assert_eq!(search(&mut m, "UNFLAGGED"), [10, 30, 40, 50]);
    assert_eq!(search(&mut m, "SEEN"), [10, 30, 50]);
    assert_eq!(search(&mut m, "UNSEEN"), [20, 40]);
    assert_eq!(search(&mut m, "KEYWORD $Important"), [20]);
    assert_eq!(search(&mut m, "UNKEYWORD $Important"), [10, 30, 40, 50]);
    assert_eq!(search(&mut m, "KEYWORD $Nothing"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "RECENT"), [30, 40, 50]);
    assert_eq!(search(&mut m, "OLD"), [10, 20]);
    assert_eq!(search(&mut m, "NEW"), [40]);
    // Flags alone never open a file.
    assert!(m.iter().all(|mail| mail.opens == 0));
}

#[test]
fn sequence_and_uid_sets() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "2,4"), [20, 40]);
    assert_eq!(search(&mut m, "4:2"), [20, 30, 40]);
    assert_eq!(search(&mut m, "*"), [50]);
    assert_eq!(search(&mut m, "*:4"), [40, 50]);
    assert_eq!(search(&mut m, "9:*"), [50]);
    assert_eq!(search(&mut m, "UID 20:30"), [20, 30]);
    assert_eq!(search(&mut m, "UID 35:15"), [20, 30]);
    assert_eq!(search(&mut m, "UID *"), [50]);
    // RFC 3501: 559:* includes the last message even when 559 is above every UID.
    assert_eq!(search(&mut m, "UID 559:*"), [50]);
    assert_eq!(search(&mut m, "UID 11:19"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "UID 1:* 2"), [20]);
}

#[test]
fn star_stands_for_nothing_in_an_empty_mailbox() {
    let set: SequenceSet = "1:*".parse().unwrap();
    assert!(sequence_set_contains(&set, 1, 3));
    assert!(!sequence_set_contains(&set, 1, 0));
    let set: SequenceSet = "*".parse().unwrap();
    assert!(!sequence_set_contains(&set, 1, 0));
    assert!(sequence_set_contains(&set, 7, 7));
    let set: SequenceSet = "2,5:3".parse().unwrap();
    let hits: Vec<u32> = (1..7)
        .filter(|&n| sequence_set_contains(&set, n, 6))
        .collect();
    assert_eq!(hits, [2, 3, 4, 5]);
}

#[test]
fn sizes() {
    let mut m = mailbox();
    let plain = PLAIN.len();
    assert_eq!(
        search(&mut m, &format!("LARGER {}", plain - 1)).first(),
        Some(&10)
    );
    assert!(!search(&mut m, &format!("LARGER {plain}")).contains(&10));
    assert!(search(&mut m, &format!("SMALLER {}", plain + 1)).contains(&10));
    assert!(!search(&mut m, &format!("SMALLER {plain}")).contains(&10));
}

#[test]
fn internal_dates_at_day_boundaries() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "ON 12-Nov-2023"), [30]);
    assert_eq!(search(&mut m, "BEFORE 12-Nov-2023"), [10, 40]);
    assert_eq!(search(&mut m, "SINCE 12-Nov-2023"), [20, 30, 50]);
    assert_eq!(search(&mut m, "SINCE 1-Dec-2023"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "BEFORE 7-Nov-2023"), Vec::<u32>::new());
    assert!(m.iter().all(|mail| mail.opens == 0));
}

#[test]
fn sent_dates_use_the_date_as_written_in_its_own_zone() {
    let mut m = mailbox();
    // 23:30 -0800 on the 6th is the 7th in UTC; the written date counts.
    assert_eq!(search(&mut m, "SENTON 6-Nov-2023"), [10]);
    // 00:10 +1300 on the 12th is the 11th in UTC.
    assert_eq!(search(&mut m, "SENTON 12-Nov-2023"), [30]);
    // A two-digit year and no seconds.
    assert_eq!(search(&mut m, "SENTON 13-Nov-2023"), [20]);
    assert_eq!(search(&mut m, "SENTBEFORE 10-Nov-2023"), [10, 50]);
    // Without a Date field the mail was sent on 1 January 1970, as Dovecot has it, whatever
    // its INTERNALDATE (30 Nov).
    assert_eq!(search(&mut m, "SENTSINCE 12-Nov-2023"), [20, 30]);
    assert_eq!(search(&mut m, "SENTON 30-Nov-2023"), [0u32; 0]);
    assert_eq!(search(&mut m, "SENTON 1-Jan-1970"), [50]);
}

#[test]
fn date_values_are_read_like_rfc_5322_says() {
    let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
    assert_eq!(sent_date("Mon, 06 Nov 2023 11:42:05 +0100"), d(2023, 11, 6));
    assert_eq!(sent_date("6 Nov 2023 11:42 GMT"), d(2023, 11, 6));
    assert_eq!(
        sent_date("Sun, 2 Oct 16 07:06:22 -0700 (PDT)"),
        d(2016, 10, 2)
    );
    assert_eq!(sent_date("1 Jan 99 00:00"), d(1999, 1, 1));
    assert_eq!(sent_date("1 January 2024 00:00:00"), d(2024, 1, 1));
    assert_eq!(sent_date("2023-11-06T10:42:05Z"), None);
    assert_eq!(sent_date("31 Feb 2023 10:00:00 +0000"), None);
    assert_eq!(sent_date("yesterday"), None);
    assert_eq!(sent_date("Mon, 06 Nov 2023"), None);
    assert_eq!(sent_date("Mon, 06 Ñov 2023 10:00"), None);
    assert_eq!(sent_date(""), None);
}

#[test]
fn address_and_subject_keys_match_decoded_values_case_insensitively() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "FROM asterix"), [10, 40]);
    assert_eq!(search(&mut m, "FROM \"ASTERIX <asterix@\""), [10, 40]);
    assert_eq!(search(&mut m, "TO \"dupont, jean\""), [10]);
    assert_eq!(search(&mut m, "CC getafix"), [10]);
    assert_eq!(search(&mut m, "BCC secret"), [20]);
    assert_eq!(search(&mut m, "FROM Obélix"), [30]);
    assert_eq!(search(&mut m, "SUBJECT \"crème BRÛLÉE\""), [30]);
    // Folded and with runs of blanks collapsed.
    assert_eq!(search(&mut m, "SUBJECT \"lunch at the village\""), [10]);
    // The subject of an attached message is not the message's subject.
    assert_eq!(
        search(&mut m, "SUBJECT \"inner orders\""),
        Vec::<u32>::new()
    );
    // An empty string matches every message with the field.
    assert_eq!(search(&mut m, "CC \"\""), [10]);
}

#[test]
fn address_keys_also_match_the_parsed_addresses() {
    // imaptest's search-addresses: comments inside the address are not part of it.
    let mut m = vec![
        Mail::new(1, 10, &[], (2023, 11, 7), b"From: <user-from (comment)@ (comment) domain.org>\nTo: Real <user-to @domain.org>\n\nx\n"),
        Mail::new(2, 20, &[], (2023, 11, 7), b"From: user-from1@domain.org\n\nx\n"),
    ];
    assert_eq!(search(&mut m, "FROM user-from@domain.org"), [10]);
    assert_eq!(search(&mut m, "TO \"real <user-to@domain.org>\""), [10]);
    assert_eq!(search(&mut m, "FROM \"(comment)\""), [10]);
    assert_eq!(search(&mut m, "FROM user-from1@"), [20]);
}

#[test]
fn utf8_search_strings_in_literals() {
    let mut m = mailbox();
    let hits = search_bytes(&mut m, "CHARSET UTF-8 SUBJECT {7+}\r\nGRÜSSE".as_bytes());
    assert_eq!(hits, Vec::<u32>::new(), "ß is not folded to ss");
    let hits = search_bytes(&mut m, "CHARSET UTF-8 SUBJECT {7+}\r\nGrüße".as_bytes());
    assert_eq!(hits, [20]);
    let hits = search_bytes(&mut m, "CHARSET utf-8 BODY {7+}\r\nSCHÖNE".as_bytes());
    assert_eq!(hits, [20]);
}

#[test]
fn header_key() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "HEADER X-Mailer tablet"), [10]);
    assert_eq!(search(&mut m, "HEADER x-mailer \"\""), [10]);
    assert_eq!(search(&mut m, "HEADER X-Lyrics \"\""), [50]);
    assert_eq!(search(&mut m, "HEADER Content-Type multipart"), [40]);
    assert_eq!(search(&mut m, "HEADER Subject GRÜSSE"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "HEADER Subject grüße"), [20]);
    assert_eq!(search(&mut m, "HEADER Date \"\""), [10, 20, 30, 40]);
}

#[test]
fn body_searches_decoded_text_parts_only() {
    let mut m = mailbox();
    // Quoted-printable UTF-8.
    assert_eq!(search(&mut m, "BODY \"schöne grüße\""), [20]);
    // Base64 ISO-8859-1.
    assert_eq!(search(&mut m, "BODY \"SANGLIER RÔTI\""), [30]);
    assert_eq!(search(&mut m, "BODY café"), [40]);
    assert_eq!(search(&mut m, "BODY \"<b>Romans</b>\""), [40]);
    // The attached message's body is text; its headers are not body.
    assert_eq!(search(&mut m, "BODY vidi"), [40]);
    assert_eq!(search(&mut m, "BODY caesar"), Vec::<u32>::new());
    // Not the base64 PDF, not the multipart preamble, not headers.
    assert_eq!(search(&mut m, "BODY secretword"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "BODY preamblephrase"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "BODY lunch"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "BODY \"\""), [10, 20, 30, 40, 50]);
}

#[test]
fn text_adds_every_header_block() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "TEXT lunch"), [10]);
    assert_eq!(search(&mut m, "TEXT \"subject: inner orders\""), [40]);
    assert_eq!(search(&mut m, "TEXT caesar@senate"), [40]);
    assert_eq!(search(&mut m, "TEXT plan.pdf"), [40]);
    assert_eq!(search(&mut m, "TEXT secretword"), Vec::<u32>::new());
    assert_eq!(search(&mut m, "TEXT menhir"), [10]);
    assert_eq!(search(&mut m, "TEXT grüße"), [20]);
}

#[test]
fn nested_or_not_and_lists() {
    let mut m = mailbox();
    assert_eq!(search(&mut m, "OR SEEN FLAGGED"), [10, 20, 30, 50]);
    assert_eq!(search(&mut m, "NOT OR SEEN FLAGGED"), [40]);
    assert_eq!(
        search(&mut m, "OR (SEEN FROM asterix) BODY grüße"),
        [10, 20]
    );
    assert_eq!(
        search(&mut m, "NOT (OR NOT SEEN NOT (DELETED BODY rôti))"),
        [30]
    );
    assert_eq!(
        search(&mut m, "OR OR DRAFT DELETED (UID 1:15 NOT SUBJECT lunch)"),
        [30, 40]
    );
    assert_eq!(search(&mut m, "UNSEEN SUBJECT orders"), [40]);
}

#[test]
fn content_is_read_only_when_needed_and_once() {
    let mut m = mailbox();
    search(&mut m, "SEEN OR BODY schöne OR SUBJECT lunch TEXT vidi");
    let opens: Vec<usize> = m.iter().map(|mail| mail.opens).collect();
    // Unseen messages (20, 40) are decided by the flag alone.
    assert_eq!(opens, [1, 0, 1, 0, 1]);
    search(&mut m, "OR ALL TEXT nothing");
    assert_eq!(m.iter().map(|mail| mail.opens).sum::<usize>(), 3);
}

#[test]
fn validate_refuses_what_cannot_run_with_reasons() {
    let (key, _) = parse(b"ALL");
    assert!(validate(&key, Some("utf-8")).is_ok());
    assert!(validate(&key, Some("US-ASCII")).is_ok());
    let error = validate(&key, Some("ISO-8859-1")).unwrap_err();
    assert!(error.0.contains("UTF-8"), "{error}");
    assert!(!charset_supported("ISO-8859-1"));

    let mut deep = SearchKey::All;
    for _ in 0..=MAX_DEPTH {
        deep = SearchKey::Not(Box::new(deep));
    }
    let error = validate(&deep, None).unwrap_err();
    assert!(error.0.contains("levels deep"), "{error}");
    let mut mail = Mail::new(1, 1, &[], (2023, 1, 1), PLAIN);
    let context = SearchContext {
        exists: 1,
        max_uid: 1,
    };
    assert!(matches(&deep, &mut mail, context).is_err());
    let SearchKey::Not(ok) = deep else {
        unreachable!()
    };
    assert!(validate(&ok, None).is_ok());

    let many = SearchKey::And(Vec1::try_from(vec![SearchKey::All; MAX_KEYS]).unwrap());
    assert!(validate(&many, None).unwrap_err().0.contains("keys"));

    let bad = SearchKey::Body(AString::try_from(b"\xff\xfe".to_vec()).unwrap());
    assert!(validate(&bad, None).unwrap_err().0.contains("UTF-8"));
}

#[test]
fn big_messages_are_scanned_raw() {
    let mut text = PLAIN.to_vec();
    let filler = "Wild boar, roasted. ".repeat(4096);
    while (text.len() as u64) <= MAX_PARSED {
        text.extend_from_slice(filler.as_bytes());
    }
    text.extend_from_slice(b"The very LAST line.\r\n");
    let mut m = vec![Mail::new(1, 1, &[], (2023, 1, 1), &text)];
    assert_eq!(search(&mut m, "BODY \"very last\""), [1]);
    assert_eq!(search(&mut m, "TEXT \"very last\""), [1]);
    assert_eq!(search(&mut m, "SUBJECT village"), [1]);
    assert_eq!(search(&mut m, "TEXT \"x-mailer: stone\""), [1]);
    assert_eq!(search(&mut m, "BODY \"x-mailer\""), Vec::<u32>::new());
    assert_eq!(search(&mut m, "BODY absent"), Vec::<u32>::new());
}

#[test]
fn hostile_messages_do_not_panic() {
    let cases: [&[u8]; 7] = [
        b"",
        b"\r\n\r\n",
        b"Subject: \xff\xfe\r\n\r\n\xc3",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x\n--x--",
        b"Content-Type: text/plain; charset=klingon\nContent-Transfer-Encoding: base64\n\n!!!",
        b"Date: 99 Nov 2023 99:99\nDate: , , ,\n\nbody",
        b"From: =?utf-8?B?////?= <a@b>\nSubject: =?x-unknown?Q?=FF?=\n\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let mut m = vec![Mail::new(1, 1, &[], (2023, 1, 1), text)];
        for query in [
            "TEXT a",
            "BODY a",
            "FROM a",
            "SENTON 1-Jan-2023",
            "HEADER \"\" \"\"",
        ] {
            let _ = search(&mut m, query);
        }
        // No readable Date: sent on 1 January 1970, as Dovecot has it.
        assert_eq!(search(&mut m, "SENTON 1-Jan-1970"), [1], "case {i}");
    }
}
