//! serve-imap against Dovecot, the reference: the same commands on copies of one store must
//! get the same answers (FETCH bytes and sizes, ENVELOPE, BODYSTRUCTURE, SEARCH results,
//! SELECT and STATUS figures), and a store changed through serve-imap must look the same to
//! Dovecot afterwards, and the reverse.

mod support;

use std::path::Path;
use std::process::Command;

use support::dovecot::Dovecot;
use support::imap::RawImap;
use support::pop3::PopServer;
use support::TempStore;

/// The demo store plus every mail of `testdata/mail/` delivered to asterix, with the UIDs
/// assigned by one serve-imap session (so both servers share one dovecot-uidlist).
fn seeded_store() -> TempStore {
    let store = TempStore::demo();
    let mut mails: Vec<_> = std::fs::read_dir(support::testdata().join("mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    mails.sort();
    store
        .mailtool()
        .args(["mbox", "deliver", "asterix"])
        .args(&mails)
        .assert()
        .success();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::login(server.port(), "asterix", "potion");
    imap.ok("STORE 2 +FLAGS (\\Answered $Label1)");
    imap.ok("LOGOUT");
    drop(server);
    store
}

/// A copy of `store` with every file's time kept (INTERNALDATE is the file's mtime).
fn copy_of(store: &TempStore) -> TempStore {
    let copy = TempStore::empty();
    let status = Command::new("cp")
        .arg("-a")
        .arg(store.path())
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// The untagged lines of a reply and its status word, for comparison, with the differences
/// of form that carry no meaning taken out:
/// - `* n RECENT` is left out (each server's first session sees its own recent mail);
/// - the human text after a response code (`* OK [UNSEEN 1] First unseen.`) is dropped;
/// - a string sent as a literal reads as the same quoted string (Dovecot sends header text
///   that was folded as a literal, imap-codec quotes it; RFC 3501 §4.3 makes them equal);
/// - body types are compared without regard to case (imap-codec writes `"TEXT"` and
///   `"MESSAGE" "RFC822"` in capitals, Dovecot as the message does; RFC 2045 §5.1).
fn answer(imap: &mut RawImap, command: &str) -> (Vec<String>, String) {
    let reply = imap.command(command);
    let lines = reply
        .untagged
        .iter()
        .map(|l| normalise(&String::from_utf8_lossy(l)))
        .filter(|l| !l.ends_with(" RECENT\r\n"))
        .collect();
    let word = reply.status.split(' ').next().unwrap_or("").to_owned();
    (lines, word)
}

fn normalise(line: &str) -> String {
    let mut line = line.to_owned();
    if let Some(rest) = line.strip_prefix("* OK [") {
        if let Some(end) = rest.find(']') {
            line = format!("* OK [{}]\r\n", &rest[..end]);
        }
    }
    // `{N}\r\n` + N octets of text without quotes or backslashes -> `"text"`.
    let mut out = String::new();
    let mut rest = line.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let literal = after.find("}\r\n").and_then(|close| {
            let n: usize = after[..close].parse().ok()?;
            let text = after.get(close + 3..close + 3 + n)?;
            (!text.contains(['"', '\\', '\r', '\n'])).then_some((close + 3 + n, text))
        });
        match literal {
            Some((consumed, text)) => {
                out.push_str(&rest[..open]);
                out.push('"');
                out.push_str(text);
                out.push('"');
                rest = &after[consumed..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if out.contains(" FETCH (BODY") {
        out = out
            .replace("\"TEXT\"", "\"text\"")
            .replace("\"MESSAGE\" \"RFC822\"", "\"message\" \"rfc822\"");
    }
    out
}

const COMMANDS: &[&str] = &[
    "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
    "FETCH 1:* (ENVELOPE)",
    "FETCH 1:* (BODYSTRUCTURE)",
    "FETCH 1:* (BODY)",
    "FETCH 1:* (BODY.PEEK[])",
    "FETCH 1:* (BODY.PEEK[HEADER])",
    "FETCH 1:* (BODY.PEEK[TEXT])",
    "FETCH 1:* (BODY.PEEK[1])",
    "FETCH 1:* (BODY.PEEK[1.MIME])",
    "FETCH 1:* (BODY.PEEK[2])",
    "FETCH 1:* (BODY.PEEK[2.1])",
    "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
    "FETCH 1:* (BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED FROM)])",
    "FETCH 1:* (BODY.PEEK[]<0.100>)",
    "FETCH 1:* (BODY.PEEK[TEXT]<10.20>)",
    "FETCH 1:* (RFC822.HEADER)",
    "UID SEARCH ALL",
    "UID SEARCH UNSEEN",
    "UID SEARCH SEEN FLAGGED",
    "UID SEARCH KEYWORD $Label1",
    "UID SEARCH OR ANSWERED FLAGGED",
    "UID SEARCH NOT SEEN LARGER 1000",
    "UID SEARCH SMALLER 900",
    "UID SEARCH FROM obelix",
    "UID SEARCH SUBJECT potion",
    "UID SEARCH BODY sanglier",
    "UID SEARCH TEXT Toutatis",
    "UID SEARCH HEADER Message-ID gaul",
    "UID SEARCH SINCE 1-Jan-2020",
    "UID SEARCH SENTBEFORE 1-Jan-2024",
    "UID SEARCH SENTSINCE 1-Jan-2024",
    "UID SEARCH 2:4 UID 1:*",
    "SEARCH NOT 1:3",
];

#[test]
fn the_same_commands_on_copies_of_one_store_get_dovecots_answers() {
    let ours = seeded_store();
    let theirs = copy_of(&ours);
    let Some(dovecot) = Dovecot::start(&theirs.path()) else {
        return;
    };
    let server = PopServer::start_imap(&ours.path(), &[]);
    let mut us = RawImap::connect(server.port());
    let mut them = RawImap::connect(dovecot.imap_port);
    for imap in [&mut us, &mut them] {
        imap.ok("LOGIN asterix potion");
    }
    let mut differences = Vec::new();
    for command in [
        "EXAMINE INBOX",
        "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)",
    ]
    .iter()
    .chain(COMMANDS)
    {
        let mine = answer(&mut us, command);
        let dovecots = answer(&mut them, command);
        if mine != dovecots {
            differences.push(format!(
                "{command}\n  serve-imap: {mine:?}\n  dovecot:    {dovecots:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n{}",
        differences.len(),
        COMMANDS.len() + 2,
        differences.join("\n")
    );
    assert!(!dovecot.log().contains("Error"), "{}", dovecot.log());
}

/// UIDs, flags and folders as a server shows them, through an independent client.
fn view(port: u16) -> String {
    let script = r#"
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("asterix", "potion")
for line in sorted(d.decode() for d in imap.list()[1]):
    name = line.rsplit(' ', 1)[1]
    typ, data = imap.status(name, "(MESSAGES UIDNEXT UIDVALIDITY)")
    print(data[0].decode())
    imap.select(name, readonly=True)
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    # \\Recent belongs to a session, and each server decides it its own way (Dovecot from
    # its index, serve-imap from who took the mail out of new/): not part of the store.
    print(sorted(d.decode().replace("\\Recent", "").replace("( ", "(").replace(" )", ")") for d in data if d))
imap.logout()
"#;
    String::from_utf8(support::python(script, [port.to_string()])).unwrap()
}

fn chown_to_mail(path: &Path) {
    // Dovecot's mail processes run as `mail` when the tests run as root; files serve-imap
    // (as root) made since Dovecot chowned the store must be theirs too, as on a real server
    // where both run as the same user.
    if support::is_root() {
        let _ = Command::new("chown")
            .arg("-R")
            .arg("mail:mail")
            .arg(path)
            .status();
    }
}

#[test]
fn a_store_changed_through_serve_imap_looks_the_same_to_dovecot_and_back() {
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::login(server.port(), "asterix", "potion");
    imap.ok("CREATE Archive");
    // Grüße, in modified UTF-7 as IMAP4rev1 clients send it.
    imap.ok("CREATE Archive.Gr&APwA3w-e");
    imap.ok("SUBSCRIBE Archive");
    imap.append(
        "(\\Seen $Work)",
        support::imap::mail("appended through serve-imap", 200),
    );
    imap.ok("STORE 1:2 +FLAGS (\\Flagged)");
    imap.ok("UID MOVE 3 Archive");
    imap.ok("UID COPY 4 Archive");
    imap.ok("STORE 5 +FLAGS (\\Deleted)");
    imap.ok("EXPUNGE");
    let ours = view(server.port());
    drop(server);

    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let theirs = view(dovecot.imap_port);
    assert_eq!(ours, theirs, "Dovecot shows what serve-imap made");

    // The reverse: Dovecot changes the store, serve-imap shows the same.
    let mut imap = RawImap::login(dovecot.imap_port, "asterix", "potion");
    imap.ok("CREATE Later");
    imap.append(
        "($Dovecot)",
        support::imap::mail("appended through dovecot", 300),
    );
    imap.ok("STORE 1 -FLAGS (\\Flagged)");
    imap.ok("UID MOVE 2 Later");
    imap.ok("LOGOUT");
    let theirs = view(dovecot.imap_port);
    drop(dovecot);
    chown_to_mail(&store.path());
    let server = PopServer::start_imap(&store.path(), &[]);
    assert_eq!(
        view(server.port()),
        theirs,
        "serve-imap shows what Dovecot made"
    );
}

/// The UIDVALIDITY a tagged `OK [APPENDUID v u]` or `OK [COPYUID v ...]` names.
fn validity_in(status: &str, code: &str) -> u32 {
    let at = status
        .find(&format!("[{code} "))
        .unwrap_or_else(|| panic!("no {code} in {status}"));
    status[at + code.len() + 2..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no UIDVALIDITY in {status}"))
}

/// APPENDUID and COPYUID name the target mailbox's UIDVALIDITY as Dovecot then serves it,
/// also for a mailbox the session has not selected (serve-imap reads it from the uidlist it
/// numbers the message in, rather than listing the mailbox), new or not.
#[test]
fn appenduid_and_copyuid_name_the_uidvalidity_dovecot_serves() {
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::login(server.port(), "asterix", "potion");
    imap.ok("CREATE Sent");
    imap.ok("CREATE Archive");
    // As Maildir++ folders made by another tool come: no uidlist yet.
    for folder in [".Sent", ".Archive"] {
        let uidlist = store
            .path()
            .join("asterix")
            .join(folder)
            .join("dovecot-uidlist");
        std::fs::remove_file(uidlist).unwrap();
    }
    imap.ok("SELECT INBOX");
    let mail = "Subject: saved\r\n\r\nas a client saves what it sent\r\n";
    let mut named = Vec::new();
    // The first into Sent (and the COPY into Archive) writes its uidlist; the second finds it.
    for mailbox in ["Sent", "Sent", "INBOX"] {
        let reply = imap.command(&format!("APPEND {mailbox} {{{}+}}\r\n{mail}", mail.len()));
        assert!(reply.status.starts_with("OK"), "{}", reply.status);
        named.push((mailbox, validity_in(&reply.status, "APPENDUID")));
    }
    for command in ["COPY 1 Archive", "UID MOVE 2 Archive", "COPY 1:2 INBOX"] {
        let reply = imap.command(command);
        // MOVE names it in an untagged OK.
        let status = reply
            .untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .find(|l| l.contains("[COPYUID "))
            .unwrap_or(reply.status);
        let target = command.rsplit(' ').next().unwrap();
        named.push((target, validity_in(&status, "COPYUID")));
    }
    imap.ok("LOGOUT");
    drop(server);

    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let mut imap = RawImap::login(dovecot.imap_port, "asterix", "potion");
    for (mailbox, validity) in named {
        let status = imap.ok(&format!("STATUS {mailbox} (UIDVALIDITY)"));
        let line = String::from_utf8_lossy(&status[0]).into_owned();
        assert!(
            line.contains(&format!("(UIDVALIDITY {validity})")),
            "{mailbox}: serve-imap named {validity}, Dovecot serves {line}"
        );
    }
}
