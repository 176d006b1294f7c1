//! SEARCH against a real peer: the same Maildir is searched by Dovecot (through Python's
//! imaplib) and by `mailtool::imap::search::matches`, and the UID lists must agree.
//!
//! The mailbox holds every `testdata/mail/*.eml` plus a few messages written here (RFC 2047
//! subjects, quoted-printable and base64 bodies in UTF-8 and ISO-8859-1, a PDF and an
//! attached message, Date fields near midnight in far zones). Flags are set in the file names
//! before Dovecot starts; two messages arrive after a first session so that RECENT is a
//! proper subset. Our side gets each message's flags from Dovecot's FETCH (\Recent is
//! session state), its UID from `dovecot-uidlist`, INTERNALDATE from the file's mtime and
//! RFC822.SIZE from the file with CRLF line ends.
//!
//! Where we answer differently on purpose, [`KNOWN_DIFFERENCES`] names the messages and says
//! why; any other difference fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::CommandCodec;
use mailtool::imap::search::{matches, validate, SearchContext, SearchMessage};
use serde_json::Value;
use support::dovecot::Dovecot;
use support::{crlf_line_ends, TempStore};

/// Messages written for this test: (file name, content).
const EXTRA: [(&str, &str); 6] = [
    (
        "zone-west.eml",
        "From: Asterix <asterix@village.gaul>\r\n\
To: Obelix <obelix@village.gaul>, \"Dupont, Jean\" <jean@village.gaul>\r\n\
Subject: Late   supper\r\n\x20at the   square\r\n\
Date: Mon, 06 Nov 2023 23:30:00 -0800\r\n\
X-Mailer: Stone tablet 2.0\r\n\
\r\n\
Wild boar at midnight. Bring the menhir.\r\n",
    ),
    (
        "german-qp.eml",
        "From: =?UTF-8?Q?Verleihnix?= <fish@village.gaul>\n\
To: Village <all@village.gaul>\n\
Bcc: Secret <secret@village.gaul>\n\
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTHV0ZXRpYQ==?=\n\
Date: 13 Nov 23 07:45 +0100\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
Sch=C3=B6ne Gr=C3=BC=C3=9Fe vom Marktplatz.\n\
Der Fisch ist FRISCH, sagt Verleihnix.\n",
    ),
    (
        "latin1-base64.eml",
        "From: =?ISO-8859-1?Q?Ob=E9lix?= <obelix@village.gaul>\n\
To: Asterix <asterix@village.gaul>\n\
Subject: =?ISO-8859-1?Q?Cr=E8me_br=FBl=E9e?=\n\
Date: Sun, 12 Nov 2023 00:10:00 +1300\n\
Content-Type: text/plain; charset=iso-8859-1\n\
Content-Transfer-Encoding: base64\n\
\n\
Q3LobWUgYnL7bOllIHBvdXIgT2LpbGl4CkV0IGR1IHNhbmdsaWVyIHL0dGkuCg==\n",
    ),
    (
        "pdf-and-message.eml",
        "From: Asterix <asterix@village.gaul>\n\
To: Getafix <getafix@village.gaul>\n\
Subject: Fwd: Plans of the camp\n\
Date: Fri, 10 Nov 2023 09:12:44 +0100\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\
\n\
This preamble mentions a preamblephrase.\n\
--outer\n\
Content-Type: multipart/alternative; boundary=\"alt\"\n\
\n\
--alt\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
Look what the Romans are up to, caf=C3=A9 talk aside.\n\
--alt\n\
Content-Type: text/html; charset=utf-8\n\
\n\
<p>Look what the <b>Romans</b> are up to</p>\n\
--alt--\n\
--outer\n\
Content-Type: application/pdf; name=\"plan.pdf\"\n\
Content-Disposition: attachment; filename=\"plan.pdf\"\n\
Content-Transfer-Encoding: base64\n\
\n\
JVBERi0xLjQgc2VjcmV0d29yZCAAAQI=\n\
--outer\n\
Content-Type: message/rfc822\n\
\n\
From: Julius Caesar <caesar@senate.rome>\n\
Subject: Camp orders\n\
Date: Wed, 08 Nov 2023 12:00:00 +0100\n\
\n\
Veni, vidi, vici.\n\
--outer--\n",
    ),
    (
        "late-1.eml",
        "From: Dogmatix <idefix@village.gaul>\n\
To: Obelix <obelix@village.gaul>\n\
Subject: Woof again\n\
Date: Sat, 18 Nov 2023 23:59:59 +0000\n\
\n\
Woof woof. A bone, please.\n",
    ),
    (
        "late-2.eml",
        "From: Getafix <getafix@village.gaul>\n\
To: Asterix <asterix@village.gaul>\n\
Subject: Magic potion ready\n\
Date: Sun, 19 Nov 2023 00:00:01 +0000\n\
Content-Type: text/plain; charset=us-ascii\n\
\n\
Undeclared eight-bit: pr\u{ea}t \u{e0} boire.\n",
    ),
];

/// The two messages delivered after the first session: RECENT in the second.
const LATE: [&str; 2] = ["late-1.eml", "late-2.eml"];

/// Flags in the Maildir file name (`a` is the first keyword, `$Important`), by message.
const FLAGS: [(&str, &str); 9] = [
    ("plain.eml", "S"),
    ("crlf.eml", "RS"),
    ("nested.eml", "FS"),
    ("latin1-subject.eml", "aS"),
    ("encoded-words.eml", "F"),
    ("no-date.eml", "T"),
    ("zone-west.eml", "DS"),
    ("german-qp.eml", "a"),
    ("attached-message.eml", "RST"),
];

/// INTERNALDATE of every message: 12:00 UTC on this day of November 2023, so that any time
/// zone Dovecot runs in gives the same date; the day cycles through the month by message.
fn internal_day(index: usize) -> u32 {
    [3, 7, 10, 12, 12, 15, 20, 28][index % 8]
}

/// (UID SEARCH criteria, a UTF-8 string sent as a literal after them, with CHARSET UTF-8).
const QUERIES: &[(&str, Option<&str>)] = &[
    ("ALL", None),
    ("SEEN", None),
    ("UNSEEN", None),
    ("ANSWERED", None),
    ("UNANSWERED FLAGGED", None),
    ("DELETED", None),
    ("UNDELETED DRAFT", None),
    ("KEYWORD $Important", None),
    ("UNKEYWORD $Important SEEN", None),
    ("RECENT", None),
    ("NEW", None),
    ("OLD UNSEEN", None),
    ("1:3,*", None),
    ("7:4", None),
    ("UID 3:1", None),
    ("UID *", None),
    ("UID 500:*", None),
    ("LARGER 1000", None),
    ("SMALLER 400", None),
    ("BEFORE 10-Nov-2023", None),
    ("ON 12-Nov-2023", None),
    ("SINCE 15-Nov-2023", None),
    ("SENTBEFORE 8-Nov-2023", None),
    ("SENTON 6-Nov-2023", None),
    ("SENTON 12-Nov-2023", None),
    ("SENTON 13-Nov-2023", None),
    ("SENTSINCE 17-Nov-2023", None),
    ("FROM asterix", None),
    ("FROM \"ASTERIX <asterix@\"", None),
    ("TO \"Dupont, Jean\"", None),
    ("CC idefix", None),
    ("BCC secret", None),
    ("CC \"\"", None),
    ("FROM", Some("Renée")),
    ("FROM", Some("OBÉLIX")),
    ("SUBJECT \"harvest schedule\"", None),
    ("SUBJECT \"fresh this time\"", None),
    ("SUBJECT \"supper at the square\"", None),
    ("SUBJECT \"camp orders\"", None),
    ("SUBJECT", Some("grüße aus")),
    ("SUBJECT", Some("€ au marché")),
    ("HEADER Content-Transfer-Encoding base64", None),
    ("HEADER X-Mailer \"\"", None),
    ("HEADER Date \"\"", None),
    ("BODY mistletoe", None),
    ("BODY", Some("schöne grüße")),
    ("BODY", Some("sanglier RÔTI")),
    ("BODY", Some("prêt à")),
    ("BODY secretword", None),
    ("BODY preamblephrase", None),
    ("BODY vidi", None),
    ("BODY caesar", None),
    ("BODY \"<b>Romans</b>\"", None),
    ("BODY \"\"", None),
    ("TEXT caesar", None),
    ("TEXT \"subject: camp\"", None),
    ("TEXT harvest.csv", None),
    ("TEXT secretword", None),
    ("OR FROM getafix SUBJECT banquet", None),
    ("NOT (OR SEEN FLAGGED)", None),
    ("OR NOT SEEN (DELETED BODY mistletoe)", None),
    (
        "NOT OR (UID 1:5 NOT SEEN) OR DRAFT (SMALLER 500 TEXT woof)",
        None,
    ),
    ("BODY cafe", None),
    ("HEADER Subject \"supper at\"", None),
    ("HEADER Subject \"late supper\"", None),
    ("HEADER Subject \"late   supper\"", None),
    ("SUBJECT \"late   supper\"", None),
    ("SUBJECT \"\"", None),
    ("CC \"gaulois:\"", None),
    ("TO \"<jean@village.gaul>\"", None),
    ("SENTON 18-Nov-2023", None),
    ("BODY tlhIngan", None),
    ("BODY \"bytes follow\"", None),
    ("BODY", Some("vous salue – “bonjour”")),
    ("BODY two", None),
    ("BODY \"first digest\"", None),
    ("TEXT", Some("café menu")),
    ("TEXT", Some("deuxième")),
    ("TEXT hello", None),
    ("TEXT \"content-type: application/pdf\"", None),
    ("TEXT \"x-mailer: stone\"", None),
];

/// Queries where we answer differently on purpose: the messages only one side finds, and why.
const KNOWN_DIFFERENCES: &[(&str, &[&str], &str)] = &[(
    "BODY cafe",
    &["pdf-and-message.eml"],
    "Dovecot compares decomposed text, so `cafe` finds `café` (e + combining accent); \
         RFC 3501 asks for a substring match, which we do with case folding only",
)];

/// Session 1 (`touch`): select and log out, so that what is there now is no longer recent.
/// Session 2 (`search`): each message's UID and FLAGS, then every query.
const IMAP_SCRIPT: &str = r#"
import imaplib, json, re, sys
port, mode = int(sys.argv[1]), sys.argv[2]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login("asterix", "potion")
imap.select("INBOX")
out = {}
if mode == "search":
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    flags = {}
    for item in data:
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        uid = int(re.search(r"UID (\d+)", text).group(1))
        flags[uid] = re.search(r"FLAGS \(([^)]*)\)", text).group(1).split()
    out["flags"] = flags
    results = []
    for criteria, literal in json.loads(sys.argv[3]):
        try:
            if literal is None:
                typ, data = imap.uid("SEARCH", criteria)
            else:
                imap.literal = literal.encode()
                typ, data = imap.uid("SEARCH", "CHARSET", "UTF-8", criteria)
            results.append([int(u) for u in data[0].split()])
        except imaplib.IMAP4.error as e:
            results.append(str(e))
    out["results"] = results
imap.logout()
print(json.dumps(out))
"#;

struct Stored {
    uid: u32,
    seq: u32,
    name: &'static str,
    path: PathBuf,
    flags: Vec<String>,
    size: u64,
    date: NaiveDate,
}

impl SearchMessage for Stored {
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
        Ok(self.size)
    }
    fn internal_date(&mut self) -> io::Result<NaiveDate> {
        Ok(self.date)
    }
    fn open(&mut self) -> io::Result<File> {
        File::open(&self.path)
    }
}

/// The criteria as imap-codec parses them, as one key, and the CHARSET.
fn parse(criteria: &str, literal: Option<&str>) -> (SearchKey<'static>, Option<String>) {
    let mut line = b"a UID SEARCH ".to_vec();
    match literal {
        Some(text) => {
            line.extend_from_slice(
                format!("CHARSET UTF-8 {criteria} {{{}+}}\r\n", text.len()).as_bytes(),
            );
            line.extend_from_slice(text.as_bytes());
        }
        None => line.extend_from_slice(criteria.as_bytes()),
    }
    line.extend_from_slice(b"\r\n");
    let (_, command) = CommandCodec::default()
        .decode_static(&line)
        .unwrap_or_else(|e| panic!("{criteria:?} does not parse: {e:?}"));
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

fn python(port: u16, mode: &str, queries: &str) -> Value {
    let output = support::python(IMAP_SCRIPT, [port.to_string().as_str(), mode, queries]);
    serde_json::from_slice(&output).expect("the imaplib script prints JSON")
}

/// Deliver `files` to asterix with `mailtool mbox deliver`; the new files in `new/`, by source.
fn deliver(store: &TempStore, files: &[(&'static str, PathBuf)]) -> Vec<(&'static str, PathBuf)> {
    let before: BTreeSet<PathBuf> = store.messages("asterix").into_iter().collect();
    let mut command = store.mailtool();
    command.args(["mbox", "deliver", "asterix"]);
    for (_, path) in files {
        command.arg(path);
    }
    command.assert().success();
    let fresh: Vec<PathBuf> = store
        .messages("asterix")
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    files
        .iter()
        .map(|(name, source)| {
            let content = fs::read(source).unwrap();
            let found = fresh
                .iter()
                .find(|p| fs::read(p).unwrap() == content)
                .unwrap_or_else(|| panic!("{name} was not delivered unchanged"));
            (*name, found.clone())
        })
        .collect()
}

fn set_mtime(path: &Path, day: u32) {
    let date = NaiveDate::from_ymd_opt(2023, 11, day).unwrap();
    let noon = date.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp() as u64;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(noon))
        .unwrap();
}

/// UID of each message file, by base name (`dovecot-uidlist`: `<uid> [fields] :<base>`).
fn uidlist(maildir: &Path) -> BTreeMap<String, u32> {
    let text =
        fs::read_to_string(maildir.join("dovecot-uidlist")).expect("Dovecot wrote its uidlist");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (fields, base) = line.split_once(" :")?;
            let uid = fields.split_whitespace().next()?.parse().ok()?;
            Some((base.to_owned(), uid))
        })
        .collect()
}

fn base_name(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.split_once(':')
        .map_or(name, |(base, _)| base)
        .to_owned()
}

#[test]
fn uid_search_agrees_with_dovecot() {
    let store = TempStore::empty();
    store
        .mailtool()
        .args(["mbox", "add-user", "asterix", "--password-stdin"])
        .write_stdin("potion\n")
        .assert()
        .success();
    let scratch = store.scratch().join("extra");
    fs::create_dir_all(&scratch).unwrap();
    let mut early: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut names: Vec<String> = fs::read_dir(support::testdata().join("mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    for name in names {
        let name: &'static str = Box::leak(name.into_boxed_str());
        early.push((name, support::testdata().join("mail").join(name)));
    }
    let mut late = Vec::new();
    for (name, text) in EXTRA {
        let path = scratch.join(name);
        fs::write(&path, text).unwrap();
        if LATE.contains(&name) {
            late.push((name, path));
        } else {
            early.push((name, path));
        }
    }

    // Before Dovecot: flags in the file names, keywords in dovecot-keywords, mtimes.
    let maildir = store.path().join("asterix");
    fs::write(maildir.join("dovecot-keywords"), "0 $Important\n").unwrap();
    // Each message's base name (what dovecot-uidlist lists) and INTERNALDATE day.
    let mut files: BTreeMap<&'static str, (String, u32)> = BTreeMap::new();
    for (index, (name, path)) in deliver(&store, &early).into_iter().enumerate() {
        let flags = FLAGS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, f)| f);
        let target = maildir.join("cur").join(format!(
            "{}:2,{flags}",
            path.file_name().unwrap().to_str().unwrap()
        ));
        fs::rename(&path, &target).unwrap();
        set_mtime(&target, internal_day(index));
        files.insert(name, (base_name(&target), internal_day(index)));
    }

    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    python(dovecot.imap_port, "touch", "[]");
    // Late deliveries, owned like the rest of the store so that Dovecot can read them.
    let owner = fs::metadata(&maildir).unwrap();
    for (offset, (name, path)) in deliver(&store, &late).into_iter().enumerate() {
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        let day = 29 + offset as u32;
        set_mtime(&path, day);
        files.insert(name, (base_name(&path), day));
    }
    let queries = serde_json::to_string(QUERIES).unwrap();
    let answer = python(dovecot.imap_port, "search", &queries);

    // Our side of the same mailbox, as Dovecot left it (it renames files as flags change).
    let uids = uidlist(&maildir);
    let paths: BTreeMap<String, PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|sub| fs::read_dir(maildir.join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .map(|p| (base_name(&p), p))
        .collect();
    let mut mailbox: Vec<Stored> = files
        .iter()
        .map(|(name, (base, day))| {
            let uid = uids[base];
            let path = paths[base].clone();
            let flags = answer["flags"][uid.to_string()]
                .as_array()
                .unwrap_or_else(|| panic!("no FLAGS for UID {uid} ({name})"))
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            Stored {
                uid,
                seq: 0,
                name,
                size: crlf_line_ends(&fs::read(&path).unwrap()).len() as u64,
                path,
                flags,
                date: NaiveDate::from_ymd_opt(2023, 11, *day).unwrap(),
            }
        })
        .collect();
    mailbox.sort_by_key(|m| m.uid);
    for (index, message) in mailbox.iter_mut().enumerate() {
        message.seq = index as u32 + 1;
    }
    let context = SearchContext {
        exists: mailbox.len() as u32,
        max_uid: mailbox.last().map_or(0, |m| m.uid),
    };
    let name_of: BTreeMap<u32, &str> = mailbox.iter().map(|m| (m.uid, m.name)).collect();

    let mut failures = Vec::new();
    for (index, (criteria, literal)) in QUERIES.iter().enumerate() {
        let shown = match literal {
            Some(text) => format!("CHARSET UTF-8 {criteria} {text:?}"),
            None => criteria.to_string(),
        };
        let theirs: BTreeSet<u32> = match answer["results"][index].as_array() {
            Some(list) => list.iter().map(|u| u.as_u64().unwrap() as u32).collect(),
            None => panic!("Dovecot refused {shown}: {}", answer["results"][index]),
        };
        let (key, charset) = parse(criteria, *literal);
        validate(&key, charset.as_deref()).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let mut ours = BTreeSet::new();
        for message in &mut mailbox {
            if matches(&key, message, context).unwrap() {
                ours.insert(message.uid);
            }
        }
        let differ: BTreeSet<&str> = theirs
            .symmetric_difference(&ours)
            .map(|u| name_of[u])
            .collect();
        let expected: BTreeSet<&str> = KNOWN_DIFFERENCES
            .iter()
            .find(|(q, _, _)| q == criteria)
            .map(|(_, names, _)| names.iter().copied().collect())
            .unwrap_or_default();
        if differ != expected {
            let names = |set: &BTreeSet<u32>| set.iter().map(|u| name_of[u]).collect::<Vec<_>>();
            failures.push(format!(
                "{shown}\n  dovecot: {:?}\n  ours:    {:?}",
                names(&theirs),
                names(&ours)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} searches differ from Dovecot:\n{}",
        failures.len(),
        QUERIES.len(),
        failures.join("\n")
    );
}
