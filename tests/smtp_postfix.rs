//! Postfix as a real upstream: a private Postfix on loopback hands every mail for the test
//! domain to `serve-smtp --lmtp` (`local_transport = lmtp:inet:127.0.0.1:PORT`), as it would
//! hand it to Dovecot's LMTP in a real installation. Mail is injected into Postfix's smtpd by
//! Python's smtplib and must arrive in the Maildir as sent, below Postfix's `Received:`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::pop3::PopServer;
use support::postfix::{Postfix, HOSTNAME};
use support::TempStore;

const DOMAIN: &str = "postfix.test";

/// Message files in a Maildir's `new/` and `cur/`, sorted by name.
fn stored(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .filter_map(|sub| fs::read_dir(maildir.join(sub)).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .collect();
    files.sort();
    files
}

/// A message as a mail client submits it (CRLF), complete enough that Postfix adds no header.
fn message(n: usize, to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Tester <tester@example.org>\r\nTo: {to}\r\nSubject: through Postfix {n}\r\n\
         Date: Tue, 14 Nov 2023 23:13:21 +0100\r\nMessage-ID: <{n}.postfix@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

/// Submit one message to Postfix's smtpd with smtplib; returns smtplib's refused recipients.
fn submit(port: u16, from: &str, to: &[&str], data: &[u8], scratch: &Path) -> String {
    let file = scratch.join("message.eml");
    fs::write(&file, data).unwrap();
    let out = support::python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo('client.example.org')
refused = s.sendmail(sys.argv[2], sys.argv[4:], open(sys.argv[3], 'rb').read())
s.quit()
print(refused)
"#,
        [
            port.to_string(),
            from.to_string(),
            file.display().to_string(),
        ]
        .into_iter()
        .chain(to.iter().map(|t| t.to_string())),
    );
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// The header fields (unfolded, without line ends) of `text` up to its end or a blank line.
fn fields(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    fields
}

/// Asserts that `file` is `sent` (with LF line ends, as the store keeps mail) below trace
/// fields only: ours (an LMTP `Received:` by mailtool) on top of Postfix's `Received:`,
/// which is right above the original first line.
fn assert_arrived_as_sent(file: &Path, sent: &[u8], postfix: &Postfix) {
    let stored = fs::read(file).unwrap();
    let sent: Vec<u8> = String::from_utf8(sent.to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    assert!(
        stored.ends_with(&sent),
        "{} is not the message as sent plus headers on top:\n{}\n--- sent ---\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&stored),
        String::from_utf8_lossy(&sent),
        postfix.maillog()
    );
    let added = fields(&stored[..stored.len() - sent.len()]);
    let trace = ["Return-Path:", "Delivered-To:", "Received:"];
    assert!(
        added.iter().all(|f| trace.iter().any(|t| f.starts_with(t))),
        "only trace fields may be added: {added:#?}"
    );
    let last = added.last().expect("headers were added");
    assert!(
        last.starts_with("Received: from client.example.org")
            && last.contains(&format!("by {HOSTNAME} (Postfix) with ESMTP")),
        "Postfix's Received: is not right above the message: {added:#?}"
    );
    let ours = added
        .iter()
        .position(|f| f.starts_with("Received:") && f.contains("(mailtool) with LMTP"))
        .unwrap_or_else(|| panic!("no Received: by serve-smtp --lmtp: {added:#?}"));
    assert!(
        ours < added.len() - 1,
        "ours must be above Postfix's: {added:#?}"
    );
}

/// Waits until each user's Maildir holds the given number of messages; panics with
/// Postfix's and the LMTP server's logs after a while.
fn wait_for(store: &TempStore, expected: &[(&str, usize)], postfix: &Postfix, lmtp: &PopServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<usize> = expected
            .iter()
            .map(|(user, _)| stored(&store.path().join(user)).len())
            .collect();
        if counts
            .iter()
            .zip(expected)
            .all(|(have, (_, want))| have == want)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mailboxes hold {counts:?}, expected {expected:?}\n--- maillog ---\n{}\
             --- serve-smtp --lmtp ---\n{}",
            postfix.maillog(),
            lmtp.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postfix_relays_to_serve_smtp_lmtp_and_bounces_unknown_users() {
    let store = TempStore::demo();
    let lmtp = PopServer::spawn_as(
        store.mailtool_std(),
        &["serve-smtp", "--lmtp", "--port", "0", "--domain", DOMAIN],
        &[],
    );
    let Some(postfix) = Postfix::relaying_to_lmtp(&[DOMAIN], lmtp.port()) else {
        return;
    };
    let asterix = store.path().join("asterix");
    let obelix = store.path().join("obelix");
    let before = (stored(&asterix), stored(&obelix));

    let mails = [
        (
            vec!["asterix@postfix.test"],
            message(1, "asterix@postfix.test", "Just one line.\r\n"),
        ),
        (
            vec!["asterix@postfix.test", "obelix@postfix.test"],
            message(
                2,
                "asterix@postfix.test, obelix@postfix.test",
                ".A line that starts with a dot,\r\n..and one with two.\r\n\
                 8-bit text: Gérard, Mañana, Ærø.\r\n.\r\nA lone dot above.\r\n",
            ),
        ),
        (
            vec!["obelix@postfix.test"],
            message(
                3,
                "obelix@postfix.test",
                &"A longer body line, repeated to pass a few kilobytes.\r\n".repeat(200),
            ),
        ),
    ];
    for (to, data) in &mails {
        let refused = submit(
            postfix.smtp_port,
            "tester@example.org",
            to,
            data,
            store.scratch(),
        );
        assert_eq!(refused, "{}", "{}", postfix.maillog());
    }
    wait_for(
        &store,
        &[
            ("asterix", before.0.len() + 2),
            ("obelix", before.1.len() + 2),
        ],
        &postfix,
        &lmtp,
    );
    let new = |dir: &Path, old: &[PathBuf]| -> Vec<PathBuf> {
        stored(dir)
            .into_iter()
            .filter(|f| !old.contains(f))
            .collect()
    };
    let (to_asterix, to_obelix) = (new(&asterix, &before.0), new(&obelix, &before.1));
    // Which file holds which mail: by the Message-ID each carries.
    let holding = |files: &[PathBuf], n: usize| -> PathBuf {
        let id = format!("<{n}.postfix@example.org>");
        files
            .iter()
            .find(|f| String::from_utf8_lossy(&fs::read(f).unwrap()).contains(&id))
            .unwrap_or_else(|| panic!("no file holds mail {n}: {files:?}"))
            .clone()
    };
    assert_arrived_as_sent(&holding(&to_asterix, 1), &mails[0].1, &postfix);
    assert_arrived_as_sent(&holding(&to_asterix, 2), &mails[1].1, &postfix);
    assert_arrived_as_sent(&holding(&to_obelix, 2), &mails[1].1, &postfix);
    assert_arrived_as_sent(&holding(&to_obelix, 3), &mails[2].1, &postfix);
    // Postfix logs a delivery once it has read our LMTP reply, which may be after the file
    // is in place: wait for the lines a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = postfix.maillog();
    while log.matches("status=sent (250 2.0.0").count() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        log = postfix.maillog();
    }
    assert_eq!(
        log.matches("status=sent (250 2.0.0").count(),
        4,
        "one LMTP 250 per recipient:\n{log}"
    );

    // Postfix accepts any user of its domain (`local_recipient_maps =`); our LMTP refuses
    // the unknown one, so Postfix bounces it (to the sender, whose domain the `error`
    // transport then refuses: nothing leaves the machine either way).
    let refused = submit(
        postfix.smtp_port,
        "tester@example.org",
        &["nobody@postfix.test"],
        &message(4, "nobody@postfix.test", "For nobody.\r\n"),
        store.scratch(),
    );
    assert_eq!(refused, "{}");
    postfix.wait_log("to=<nobody@postfix.test>", Duration::from_secs(30));
    let log = postfix.maillog();
    let line = log
        .lines()
        .find(|l| l.contains("to=<nobody@postfix.test>"))
        .unwrap();
    assert!(
        line.contains("status=bounced") && line.contains("said: 550 5.1.1"),
        "{log}"
    );
    postfix.wait_log("sender non-delivery notification", Duration::from_secs(30));
    drop(postfix);
    assert!(!store.path().join("nobody").exists());
    assert_eq!(stored(&asterix).len(), before.0.len() + 2);
    assert_eq!(stored(&obelix).len(), before.1.len() + 2);
    for maildir in [&asterix, &obelix] {
        let tmp: Vec<_> = fs::read_dir(maildir.join("tmp"))
            .unwrap()
            .flatten()
            .collect();
        assert!(tmp.is_empty(), "left in tmp/: {tmp:?}");
    }
}
