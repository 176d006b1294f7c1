//! `mailtool inspect` end to end: JSON snapshots of the corpus, Python's `email` package as an
//! independent oracle, every input kind, extraction of hostile file names, and malformed
//! mail (truncated, bit-flipped, random, nested thousands deep) that must never panic.
//!
//! `MAILTOOL_WRITE_SNAPSHOTS=1 cargo test --test inspect` rewrites `testdata/expected/`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use mailtool::inspect::{summarize, ParsedMessage};
use predicates::prelude::*;
use proptest::prelude::*;
use serde_json::Value;
use support::TempStore;

fn mailtool() -> assert_cmd::Command {
    let mut command = support::mailtool(Path::new("./no-such-store"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(support::testdata().join("mail"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing");
    files
}

fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8(output.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn inspect_json(args: &[&str]) -> Vec<Value> {
    let output = mailtool()
        .arg("--json")
        .arg("inspect")
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    json_lines(&output)
}

/// Lines of `expected` and `actual` side by side where they differ.
fn diff(expected: &str, actual: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        if e != a {
            if let Some(e) = e {
                out.push_str(&format!("{:>4} - {e}\n", i + 1));
            }
            if let Some(a) = a {
                out.push_str(&format!("{:>4} + {a}\n", i + 1));
            }
        }
    }
    out
}

#[test]
fn every_corpus_message_matches_its_json_snapshot() {
    let write = std::env::var_os("MAILTOOL_WRITE_SNAPSHOTS").is_some();
    let expected_dir = support::testdata().join("expected");
    let mut failures = Vec::new();
    for file in corpus() {
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let relative = format!("testdata/mail/{name}.eml");
        let values = inspect_json(&[&relative, "--headers", "--body"]);
        assert_eq!(values.len(), 1, "{name}: one object per message");
        let actual = serde_json::to_string_pretty(&values[0]).unwrap() + "\n";
        let snapshot = expected_dir.join(format!("{name}.json"));
        if write {
            fs::create_dir_all(&expected_dir).unwrap();
            fs::write(&snapshot, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{} differs (- expected, + actual):\n{}",
                snapshot.display(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nReview, then rewrite with MAILTOOL_WRITE_SNAPSHOTS=1 cargo test --test inspect",
        failures.join("\n")
    );
}

const PYTHON_ORACLE: &str = r#"
import email, email.policy, json, sys
from datetime import timezone

def addresses(header):
    if header is None:
        return []
    return [{"name": a.display_name or None, "address": a.addr_spec} for a in header.addresses]

def utc(header):
    if header is None or header.datetime is None:
        return None
    moment = header.datetime
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    subject = msg["subject"]
    out.append({
        "path": path,
        "subject": None if subject is None else str(subject),
        "filenames": [p.get_filename() for p in msg.walk() if p.get_filename() is not None],
        "from": addresses(msg["from"]),
        "to": addresses(msg["to"]),
        "cc": addresses(msg["cc"]),
        "date_utc": utc(msg["date"]),
    })
print(json.dumps(out))
"#;

#[test]
fn subjects_file_names_addresses_and_dates_match_python_email() {
    let store = TempStore::demo();
    let mut files: Vec<String> = corpus().iter().map(|p| p.display().to_string()).collect();
    for user in ["asterix", "obelix"] {
        files.extend(store.messages(user).iter().map(|p| p.display().to_string()));
    }
    let oracle: Vec<Value> =
        serde_json::from_slice(&support::python(PYTHON_ORACLE, &files)).unwrap();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let ours = inspect_json(&args);
    assert_eq!(oracle.len(), ours.len());
    for (python, ours) in oracle.iter().zip(&ours) {
        let path = &python["path"];
        assert_eq!(path, &ours["path"]);
        assert_eq!(python["subject"], ours["subject"], "subject of {path}");
        let names: Vec<&Value> = ours["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|part| &part["filename"])
            .filter(|name| !name.is_null())
            .collect();
        let expected: Vec<&Value> = python["filenames"].as_array().unwrap().iter().collect();
        assert_eq!(expected, names, "file names of {path}");
        for field in ["from", "to", "cc", "date_utc"] {
            assert_eq!(python[field], ours[field], "{field} of {path}");
        }
    }
}

#[test]
fn the_human_view_shows_headers_and_an_imap_numbered_tree() {
    mailtool()
        .args(["inspect", "testdata/mail/attached-message.eml"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Subject:    Fwd: Orders from Caesar\n\
             Date:       Fri, 10 Nov 2023 09:12:44 +0100 (2023-11-10T08:12:44Z)\n\
             Message-ID: <fwd-1@village.gaul>\n  \
             multipart/mixed size=916\n    \
             1: text/plain charset=us-ascii size=57\n    \
             2: message/rfc822 size=658 attachment name=\"orders.eml\"\n      \
             multipart/mixed size=366\n        \
             2.1: text/plain charset=us-ascii size=59\n        \
             2.2: text/plain charset=us-ascii size=39 attachment name=\"legions.txt\"\n",
        ));
}

#[test]
fn body_and_headers_are_decoded() {
    let qp = &inspect_json(&["testdata/mail/quoted-printable.eml", "--body"])[0];
    let body = qp["body"].as_str().unwrap();
    // Soft line breaks split "écrite" and the two bytes of "ë"; decoding rejoins both.
    assert!(body.contains("écrite par Bonemine"), "{body}");
    assert!(body.contains("é è ê ë à â ç"), "{body}");
    assert!(body.contains("2 + 2 = 4"), "{body}");
    let latin1 = &inspect_json(&["testdata/mail/latin1-subject.eml", "--headers"])[0];
    let headers = latin1["headers"].as_array().unwrap();
    assert!(headers
        .iter()
        .any(|h| h["name"] == "To" && h["value"] == "Astérix le Gaulois <asterix@village.gaul>"));
    assert!(latin1["body"].is_null(), "no --body, no body");
    assert!(qp["headers"].is_null(), "no --headers, no headers");
}

#[test]
fn dates_are_normalised_to_utc_and_missing_ones_are_null() {
    let values = inspect_json(&["testdata/mail/plain.eml", "testdata/mail/no-date.eml"]);
    assert_eq!(values[0]["date"], "Mon, 06 Nov 2023 11:42:05 +0100");
    assert_eq!(values[0]["date_utc"], "2023-11-06T10:42:05Z");
    assert!(values[1]["date"].is_null() && values[1]["date_utc"].is_null());
    assert_eq!(values[1]["warnings"], Value::Array(vec![]));
}

#[test]
fn an_unparsable_date_is_null_with_a_warning() {
    let output = mailtool()
        .args(["--json", "inspect", "-"])
        .write_stdin("Date: 2023-11-06T10:42:05Z\nSubject: iso\n\nbody\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let value = &json_lines(&output)[0];
    assert_eq!(value["path"], "-");
    assert_eq!(value["date"], "2023-11-06T10:42:05Z");
    assert!(value["date_utc"].is_null());
    assert!(value["warnings"][0]
        .as_str()
        .unwrap()
        .contains("unparsable Date"));
}

#[test]
fn stdin_file_maildir_store_and_user_inputs() {
    let store = TempStore::demo();
    let plain = fs::read(support::testdata().join("mail/plain.eml")).unwrap();
    let output = store
        .mailtool()
        .args(["--json", "inspect", "-"])
        .write_stdin(plain.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let from_stdin = &json_lines(&output)[0];
    assert_eq!(from_stdin["subject"], "Lunch at the village square");
    assert_eq!(from_stdin["size"], plain.len());

    let maildir = store.path().join("asterix");
    let output = store
        .mailtool()
        .args(["--json", "inspect"])
        .arg(&maildir)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let messages = json_lines(&output);
    assert_eq!(messages.len(), 8);
    assert!(messages.iter().all(|m| m["user"].is_null()));
    let flagged: Vec<&Value> = messages
        .iter()
        .filter(|m| m["path"].as_str().unwrap().ends_with(":2,FS"))
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["flags"], serde_json::json!(["Flagged", "Seen"]));

    let output = store
        .mailtool()
        .args(["--json", "inspect"])
        .arg(store.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let everything = json_lines(&output);
    assert_eq!(everything.len(), 12);
    assert_eq!(
        everything.iter().filter(|m| m["user"] == "obelix").count(),
        4
    );

    let output = store
        .mailtool()
        .args(["--json", "inspect", "--user", "obelix"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let obelix = json_lines(&output);
    assert_eq!(obelix, everything[8..]);

    // The human view of a mailbox is one line per message, with flags and attachments.
    store
        .mailtool()
        .args(["inspect", "--user", "asterix"])
        .assert()
        .success()
        .stdout(predicate::function(|out: &str| out.lines().count() == 8))
        .stdout(predicate::str::is_match(r"(?m)^asterix +FS +2023-11-15 05:33  Bonemine").unwrap())
        .stdout(predicate::str::contains("1 attachment"));

    store
        .mailtool()
        .args(["inspect", "--user", "idefix"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("error: no user 'idefix'"));
}

#[test]
fn an_unreadable_file_is_one_error_line_and_the_others_carry_on() {
    let assert = mailtool()
        .args([
            "--json",
            "inspect",
            "testdata/mail/plain.eml",
            "testdata/mail/does-not-exist.eml",
            "src",
            "testdata/mail/nested.eml",
        ])
        .assert()
        .code(1);
    let output = assert.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "error: cannot read testdata/mail/does-not-exist.eml (No such file or directory)\n\
         error: cannot read src (it is a directory, but neither a Maildir (no cur/ or new/) nor a store (no passwd))\n"
    );
    let subjects: Vec<Value> = json_lines(&output.stdout)
        .into_iter()
        .map(|v| v["subject"].clone())
        .collect();
    assert_eq!(
        subjects,
        ["Lunch at the village square", "Banquet programme"]
    );

    mailtool()
        .arg("inspect")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: nothing to inspect"));
}

#[test]
fn hostile_file_names_never_escape_the_extract_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("out");
    let hostile = support::testdata().join("mail/hostile-filename.eml");
    let output = mailtool()
        .args(["--json", "inspect", "--extract"])
        .arg(&dir)
        .arg(&hostile)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let value = &json_lines(&output)[0];
    let written: Vec<String> = value["extracted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = PathBuf::from(e["file"].as_str().unwrap());
            assert_eq!(file.parent(), Some(dir.as_path()));
            file.file_name().unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(written[..3], ["passwd", "path.txt", "ab.txt"]);
    assert!(written[3].ends_with(".txt") && written[3].len() <= 200);
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected = written.clone();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "exactly the reported files, nothing else"
    );
    assert_eq!(
        fs::read_dir(scratch.path()).unwrap().count(),
        1,
        "nothing outside the directory"
    );
    assert_eq!(
        fs::read_to_string(dir.join("passwd")).unwrap(),
        "root:x:0:0:Caesar:/rome:/bin/sh"
    );

    // Again without --force: nothing is overwritten, each refusal is an error line.
    fs::write(dir.join("passwd"), "mine").unwrap();
    mailtool()
        .args(["inspect", "--extract"])
        .arg(&dir)
        .arg(&hostile)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "passwd already exists (not overwritten; add --force",
        ));
    assert_eq!(fs::read_to_string(dir.join("passwd")).unwrap(), "mine");

    // With --force a symbolic link planted under the name is replaced, not followed.
    let outside = scratch.path().join("outside.txt");
    fs::write(&outside, "untouched").unwrap();
    fs::remove_file(dir.join("path.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("path.txt")).unwrap();
    mailtool()
        .args(["inspect", "--force", "--extract"])
        .arg(&dir)
        .arg(&hostile)
        .assert()
        .success()
        .stdout(predicate::str::contains("extracted part 3 to"));
    assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched");
    assert_eq!(
        fs::read_to_string(dir.join("path.txt")).unwrap(),
        "absolute path"
    );
    assert_eq!(fs::read_to_string(dir.join("passwd")).unwrap().len(), 31);
}

#[test]
fn extraction_decodes_and_dedupes_names_within_one_run() {
    let scratch = tempfile::tempdir().unwrap();
    let output = mailtool()
        .args(["--json", "inspect", "--extract"])
        .arg(scratch.path())
        .args([
            "testdata/mail/lf-only.eml",
            "testdata/mail/crlf.eml",
            "testdata/mail/rfc2231-filename.eml",
            "testdata/mail/attached-message.eml",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let csv = "day,tree,sickle\n6,big oak,golden\n7,small oak,golden\n8,none,rest\n";
    assert_eq!(
        fs::read_to_string(scratch.path().join("harvest.csv")).unwrap(),
        csv
    );
    assert_eq!(
        fs::read_to_string(scratch.path().join("harvest-1.csv")).unwrap(),
        csv
    );
    assert!(scratch.path().join("résumé.pdf").is_file());
    assert_eq!(
        fs::read_to_string(scratch.path().join("présentation du village gaulois.txt")).unwrap(),
        "Le village gaulois résiste encore et toujours à l'envahisseur.\n"
    );
    let orders = fs::read_to_string(scratch.path().join("orders.eml")).unwrap();
    assert!(orders.starts_with("From: Julius Caesar"));
    assert!(scratch.path().join("legions.txt").is_file());
    assert_eq!(json_lines(&output).len(), 4);
}

#[test]
fn three_thousand_nested_multiparts_are_capped_with_a_warning() {
    let mail = nested(3000);
    // In-process on a thread with the default 2 MiB stack, and through the binary.
    let summary = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn({
            let mail = mail.clone();
            move || summarize(&mail)
        })
        .unwrap()
        .join()
        .expect("no stack overflow, no panic");
    assert!(summary.parts.len() <= mailtool::inspect::parse::MAX_DEPTH);
    let output = mailtool()
        .args(["--json", "inspect", "-"])
        .write_stdin(mail)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let value = &json_lines(&output)[0];
    assert!(value["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("nested deeper than 64 levels")));
    assert_eq!(value["subject"], "deep");
}

#[test]
fn a_million_empty_parts_are_capped() {
    let mut mail = b"Subject: many\nContent-Type: multipart/mixed; boundary=x\n\n".to_vec();
    for _ in 0..200_000 {
        mail.extend_from_slice(b"--x\n");
    }
    let summary = summarize(&mail);
    assert_eq!(summary.parts.len(), mailtool::inspect::parse::MAX_PARTS);
    assert!(summary
        .warnings
        .iter()
        .any(|w| w.contains("only the first")));
}

fn nested(depth: usize) -> Vec<u8> {
    let mut mail = String::from("Subject: deep\n");
    for level in 0..depth {
        mail.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
        ));
    }
    mail.push_str("Content-Type: text/plain\n\nthe bottom\n");
    for level in (0..depth).rev() {
        mail.push_str(&format!("--b{level}--\n"));
    }
    mail.into_bytes()
}

/// Everything `inspect` does with a message, in-process: any panic fails the test.
fn exercise(bytes: &[u8]) {
    let parsed = ParsedMessage::parse(bytes);
    let summary = parsed.summary();
    let _ = parsed.headers();
    let _ = parsed.text_body();
    for (part, contents) in parsed.attachments() {
        let _ = mailtool::inspect::safe_file_name(
            part.filename.as_deref(),
            part.part.as_deref(),
            &part.content_type,
        );
        let _ = contents.len();
    }
    serde_json::to_string(&summary).unwrap();
}

/// A small fixed-seed generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn truncated_and_bit_flipped_corpus_messages_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut samples = corpus();
    samples.push(
        support::testdata()
            .join("store/asterix/new/1700031180.M837832P4056Q8.village,S=20566,W=20929"),
    );
    for file in samples {
        let original = fs::read(&file).unwrap();
        let step = (original.len() / 150).max(1);
        for cut in (0..=original.len()).step_by(step) {
            exercise(&original[..cut]);
        }
        for round in 0..200 {
            let mut mangled = original.clone();
            let flips = 1 + round % 16;
            for _ in 0..flips {
                let at = rng.below(mangled.len().max(1));
                if let Some(byte) = mangled.get_mut(at) {
                    *byte = match rng.below(4) {
                        0 => 0,
                        1 => b'\n',
                        2 => b'-',
                        _ => rng.next() as u8,
                    };
                }
            }
            exercise(&mangled);
        }
    }
    exercise(&nested(3000)[..20_000]);
}

/// Fragments that steer random input into the interesting paths of the parser.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=b\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=\"b\"\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\n".to_vec()),
        Just(b"Content-Type: text/plain; charset=x-bogus\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\n".to_vec()),
        Just(b"Content-Transfer-Encoding: quoted-printable\n".to_vec()),
        Just(
            b"Content-Disposition: attachment; filename*0*=utf-8''%C3; filename*1=\"x\"\n".to_vec()
        ),
        Just(b"Subject: =?utf-8?B?w6k=?= =?iso-8859-1?Q?=E9?=\n".to_vec()),
        Just(b"From: \"a, b\" <a@b>, group: c@d;\n".to_vec()),
        Just(b"Date: 31 Feb 99999 25:61:61 +9999\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"--b\n".to_vec()),
        Just(b"--b--\n".to_vec()),
        Just(b" folded\n".to_vec()),
        Just(b"=\n=C3=\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        exercise(&bytes);
    }

    #[test]
    fn random_mime_shaped_input_never_panics(pieces in prop::collection::vec(fragment(), 0..60)) {
        exercise(&pieces.concat());
    }
}

#[test]
fn a_large_maildir_prints_in_mailbox_order_like_the_sequential_path() {
    let scratch = tempfile::tempdir().unwrap();
    let maildir = scratch.path().join("maildir");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let corpus = corpus();
    for i in 0..300 {
        let source = &corpus[i % corpus.len()];
        let folder = if i % 3 == 0 { "cur" } else { "new" };
        let flags = if folder == "cur" { ":2,RS" } else { "" };
        let name = format!(
            "{}.M{i}P1Q{i}.test{flags}",
            1_700_000_000 + (i * 7919) % 1000
        );
        fs::copy(source, maildir.join(folder).join(name)).unwrap();
    }
    // --extract keeps to one thread (it names files in message order); without it, a
    // mailbox this size is parsed on every core. Both must print the same, in the same order.
    let parallel = inspect_json(&[maildir.to_str().unwrap()]);
    let extract_dir = scratch.path().join("attachments");
    let mut sequential = inspect_json(&[
        maildir.to_str().unwrap(),
        "--extract",
        extract_dir.to_str().unwrap(),
    ]);
    for value in &mut sequential {
        assert!(value["extracted"].is_array());
        value["extracted"] = Value::Null;
    }
    assert_eq!(parallel.len(), 300);
    assert!(
        parallel == sequential,
        "parallel output differs from sequential"
    );
    let store = mailtool::store::Maildir::open(&maildir).unwrap();
    let listed: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|entry| store.entry_path(entry).display().to_string())
        .collect();
    let printed: Vec<&str> = parallel
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, printed);
}
