//! The store is a contract with Dovecot: a store built only with `mailtool mbox` is served
//! unchanged by a real Dovecot, read back here with Python's imaplib as an independent client.

mod support;

use std::fs;
use std::process::Command;

use serde_json::Value;
use support::dovecot::Dovecot;
use support::{crlf_line_ends, TempStore};

/// Log in over IMAP, select INBOX, and fetch every message's size and exact body.
const IMAP_DUMP: &str = r#"
import base64, imaplib, json, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login(sys.argv[2], sys.argv[3])
typ, data = imap.select("INBOX")
count = int(data[0])
messages = []
for i in range(1, count + 1):
    typ, data = imap.fetch(str(i), "(RFC822.SIZE FLAGS BODY.PEEK[])")
    head, body = data[0]
    size = int(head.split(b"RFC822.SIZE ")[1].split()[0].rstrip(b")"))
    messages.append({"size": size, "head": head.decode(), "body": base64.b64encode(body).decode()})
imap.logout()
print(json.dumps({"exists": count, "messages": messages}))
"#;

fn b64decode(text: &str) -> Vec<u8> {
    data_encoding::BASE64
        .decode(text.as_bytes())
        .expect("imaplib's dump is valid base64")
}

#[test]
fn dovecot_serves_a_store_built_by_mailtool() {
    let store = TempStore::empty();
    store
        .mailtool()
        .args(["mbox", "add-user", "asterix", "--password-stdin"])
        .write_stdin("potion\n")
        .assert()
        .success();
    let mail = support::testdata().join("mail");
    let names = [
        "plain.eml",
        "crlf.eml",
        "nested.eml",
        "latin1-subject.eml",
        "no-final-newline.eml",
    ];
    let mut deliver = store.mailtool();
    deliver.args(["mbox", "deliver", "asterix"]);
    for name in names {
        deliver.arg(mail.join(name));
    }
    deliver.assert().success();
    let sent: Vec<Vec<u8>> = names
        .iter()
        .map(|n| fs::read(mail.join(n)).unwrap())
        .collect();

    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let output = Command::new("python3")
        .args([
            "-c",
            IMAP_DUMP,
            &dovecot.imap_port.to_string(),
            "asterix",
            "potion",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "imaplib failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        dovecot.log()
    );
    let dump: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(dump["exists"], names.len());
    for (i, original) in sent.iter().enumerate() {
        let message = &dump["messages"][i];
        let body = b64decode(message["body"].as_str().unwrap());
        // IMAP sends every line end as CRLF; the content is otherwise byte for byte ours.
        assert_eq!(
            body,
            crlf_line_ends(original),
            "message {} ({})",
            i + 1,
            names[i]
        );
        assert_eq!(message["size"], body.len(), "RFC822.SIZE of {}", names[i]);
    }
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
    drop(dovecot);

    // And the other way: after Dovecot has indexed the mailbox, mailtool still sees it all.
    let listed = store
        .mailtool()
        .args(["--json", "mbox", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let row: Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(row["messages"], names.len());
}

#[test]
fn dovecot_reads_the_demo_store_with_our_size_fields() {
    let store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    for (user, password) in [("asterix", "potion"), ("obelix", "menhir")] {
        let port = dovecot.imap_port.to_string();
        let dump = support::python(IMAP_DUMP, [port.as_str(), user, password]);
        let dump: Value = serde_json::from_slice(&dump).unwrap();
        let files = store.messages(user);
        assert_eq!(dump["exists"], files.len(), "{user}");
        for message in dump["messages"].as_array().unwrap() {
            let body = b64decode(message["body"].as_str().unwrap());
            assert_eq!(message["size"], body.len());
            // Seen flags in file names are Dovecot's \Seen.
            let head = message["head"].as_str().unwrap();
            let original = files
                .iter()
                .find(|f| crlf_line_ends(&fs::read(f).unwrap()) == body)
                .unwrap_or_else(|| panic!("{user}: fetched body matches no file"));
            let seen_in_name = original
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split_once(":2,")
                .is_some_and(|(_, flags)| flags.contains('S'));
            assert_eq!(
                head.contains("\\Seen"),
                seen_in_name,
                "{original:?}: {head}"
            );
        }
    }
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}
