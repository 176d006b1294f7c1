//! `mailtool serve-imap` end to end: the real binary on a loopback port, driven by a raw
//! socket (what a learner types with `nc`), by Python's imaplib and by curl, over a copy of
//! the demo store whose files each test checks afterwards.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::imap::{mail, RawImap};
use support::pop3::{PopClient, PopServer};
use support::TempStore;

/// asterix's messages in the demo store: 6 in new/, 2 in cur/ (one of them \Flagged).
const ASTERIX_MESSAGES: usize = 8;

fn serve(store: &TempStore) -> PopServer {
    PopServer::start_imap(&store.path(), &[])
}

fn login(server: &PopServer) -> RawImap {
    RawImap::login(server.port(), "asterix", "potion")
}

/// Logged in as asterix with INBOX selected, in IDLE (tag `i1`) once the server said so.
fn idling(server: &PopServer) -> RawImap {
    let mut imap = login(server);
    imap.send_raw(b"i1 IDLE\r\n");
    let line = imap.read_line().unwrap();
    assert!(line.starts_with("+ "), "{line}");
    imap
}

/// Every message file of a Maildir (new/ and cur/), sorted by name.
fn message_files(maildir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = fs::read_dir(maildir.join(sub)) {
            for entry in entries.flatten() {
                names.push(format!("{sub}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    names
}

#[test]
fn imaplib_reads_every_message_byte_for_byte_and_sees_the_flags_of_the_files() {
    let store = TempStore::demo();
    let server = serve(&store);
    let maildir = store.path().join("asterix");
    let before = message_files(&maildir);
    let script = r#"
import imaplib, json, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("asterix", "potion")
typ, data = imap.select("INBOX")
assert typ == "OK", data
exists = int(data[0])
typ, data = imap.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
assert typ == "OK", data
out = []
for item in data:
    if isinstance(item, tuple):
        meta, body = item
        out.append({"meta": meta.decode(), "body": body.hex()})
print(json.dumps({"exists": exists, "messages": out}))
imap.logout()
"#;
    let output = support::python(script, [server.port().to_string()]);
    let result: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(result["exists"], ASTERIX_MESSAGES);
    let messages = result["messages"].as_array().unwrap();
    assert_eq!(messages.len(), ASTERIX_MESSAGES);
    // SELECT took the new mail into cur/ (the Dovecot way), so every file is in cur/ now, and
    // the bodies sent are the files with every line end as CRLF.
    let after = message_files(&maildir);
    assert!(
        after.iter().all(|name| name.starts_with("cur/")),
        "{after:?}"
    );
    assert_eq!(after.len(), before.len());
    let mut seen_flagged = 0;
    for message in messages {
        let meta = message["meta"].as_str().unwrap();
        let body = hex_decode(message["body"].as_str().unwrap());
        let file = after
            .iter()
            .find(|name| support::crlf_line_ends(&fs::read(maildir.join(name)).unwrap()) == body)
            .unwrap_or_else(|| panic!("no file holds the body sent for {meta}"));
        let size: usize = meta
            .split("RFC822.SIZE ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ')']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("RFC822.SIZE in {meta}"));
        assert_eq!(size, body.len(), "RFC822.SIZE counts what is sent: {meta}");
        let letters = file.split(":2,").nth(1).unwrap_or("");
        assert_eq!(
            meta.contains("\\Seen"),
            letters.contains('S'),
            "{meta} {file}"
        );
        assert_eq!(
            meta.contains("\\Flagged"),
            letters.contains('F'),
            "{meta} {file}"
        );
        if letters.contains('F') {
            seen_flagged += 1;
        }
    }
    assert_eq!(seen_flagged, 1);
    // BODY.PEEK set nothing.
    let unseen = after
        .iter()
        .filter(|name| !name.contains(":2,S") && !name.ends_with('S'))
        .count();
    assert_eq!(unseen, 6, "{after:?}");
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn commands_typed_by_hand_get_answers_that_teach() {
    let store = TempStore::demo();
    let server = serve(&store);
    let mut imap = RawImap::connect(server.port());
    // What nc sends without -C: bare LF line ends.
    imap.send_raw(b"a1 SELECT INBOX\n");
    let reply = imap.read_until_tagged("a1");
    let last = reply.last().unwrap();
    assert!(
        last.starts_with("a1 BAD") || last.starts_with("a1 NO"),
        "{last}"
    );
    assert!(last.contains("LOGIN"), "says to log in first: {last}");
    imap.send_raw(b"a2 login asterix potion\n");
    assert!(imap
        .read_until_tagged("a2")
        .last()
        .unwrap()
        .starts_with("a2 OK"));
    imap.send_raw(b"a3 select inbox\n");
    let reply = imap.read_until_tagged("a3");
    assert!(reply.iter().any(|l| l == "* 8 EXISTS\r\n"), "{reply:?}");
    assert!(reply.last().unwrap().starts_with("a3 OK [READ-WRITE]"));
    imap.send_raw(b"a4 FETCH\n");
    let reply = imap.read_until_tagged("a4");
    assert_eq!(
        reply.last().unwrap(),
        "a4 BAD FETCH needs a sequence set and data items, e.g. FETCH 1:* (FLAGS)\r\n"
    );
    imap.send_raw(b"a5 FROBNICATE\n");
    let last = imap.read_until_tagged("a5").pop().unwrap();
    assert!(
        last.starts_with("a5 BAD") && last.contains("CAPABILITY"),
        "{last}"
    );
    // The session goes on after errors.
    imap.send_raw(b"a6 FETCH 1 (FLAGS)\n");
    let reply = imap.read_until_tagged("a6");
    assert!(reply[0].starts_with("* 1 FETCH (FLAGS ("), "{reply:?}");
    imap.send_raw(b"a7 LOGOUT\n");
    let reply = imap.read_until_tagged("a7");
    assert!(reply[0].starts_with("* BYE"), "{reply:?}");
    assert!(imap.read_line().is_none(), "closed after LOGOUT");
}

#[test]
fn an_oversized_literal_is_refused_before_its_data_and_a_long_line_costs_nothing() {
    let store = TempStore::demo();
    let server = serve(&store);
    let mut imap = login(&server);
    // Announced, never sent: the answer must come before the data.
    imap.send_raw(b"a1 APPEND INBOX {4294967295}\r\n");
    let last = imap.read_until_tagged("a1").pop().unwrap();
    assert!(
        last.starts_with("a1 NO [TOOBIG]") || last.starts_with("a1 BAD"),
        "{last}"
    );
    // A line of 1 MiB gets BAD, and the session goes on.
    let mut long = b"a2 NOOP ".to_vec();
    long.resize(1024 * 1024, b'x');
    long.extend_from_slice(b"\r\n");
    imap.send_raw(&long);
    let last = imap.read_until_tagged("a2").pop().unwrap();
    assert!(last.starts_with("a2 BAD"), "{last}");
    imap.send_raw(b"a3 NOOP\r\n");
    assert!(imap
        .read_until_tagged("a3")
        .pop()
        .unwrap()
        .starts_with("a3 OK"));
    assert_eq!(
        message_files(&store.path().join("asterix")).len(),
        ASTERIX_MESSAGES
    );
    assert!(
        fs::read_dir(store.path().join("asterix/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "nothing left in tmp/"
    );
}

#[test]
fn append_copy_move_store_and_expunge_change_the_maildir_as_dovecot_would() {
    let store = TempStore::demo();
    let server = serve(&store);
    let script = r#"
import imaplib, json, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("asterix", "potion")
out = {}
out["create"] = imap.create("Archive.2026")[0]
msg = b"From: a@example.org\r\nSubject: appended\r\n\r\nhello\r\n"
typ, data = imap.append("Archive.2026", r"(\Seen $Important)", None, msg)
out["append"] = [typ, data[0].decode()]
imap.select("INBOX")
typ, data = imap.copy("1:2", "Archive.2026")
out["copy"] = [typ, data[0].decode()]
typ, data = imap.uid("MOVE", "3", "Archive.2026")
out["move"] = [typ]
typ, data = imap.uid("STORE", "4", "+FLAGS", r"(\Deleted)")
out["store"] = [typ, data[0].decode()]
typ, data = imap.expunge()
out["expunge"] = [typ, [d.decode() for d in data if d]]
typ, data = imap.status("Archive.2026", "(MESSAGES UNSEEN UIDNEXT)")
out["status"] = data[0].decode()
typ, data = imap.list()
out["list"] = [d.decode() for d in data]
imap.logout()
print(json.dumps(out))
"#;
    let output = support::python(script, [server.port().to_string()]);
    let result: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(result["create"], "OK");
    assert_eq!(result["append"][0], "OK");
    assert!(
        result["append"][1]
            .as_str()
            .unwrap()
            .contains("[APPENDUID "),
        "{result}"
    );
    assert!(
        result["copy"][1].as_str().unwrap().contains("[COPYUID "),
        "{result}"
    );
    assert_eq!(result["move"][0], "OK", "{result}");
    assert_eq!(result["store"][0], "OK");
    assert_eq!(result["expunge"][0], "OK");
    assert!(
        result["status"].as_str().unwrap().contains("MESSAGES 4"),
        "{result}"
    );
    let list = result["list"].to_string();
    assert!(
        list.contains("Archive.2026") && list.contains("INBOX"),
        "{list}"
    );

    // On disk: Maildir++ as Dovecot keeps it.
    let folder = store.path().join("asterix/.Archive.2026");
    assert!(folder.join("maildirfolder").is_file());
    assert_eq!(message_files(&folder).len(), 4);
    let appended = message_files(&folder)
        .into_iter()
        .find(|name| fs::read(folder.join(name)).unwrap().ends_with(b"hello\r\n"))
        .expect("the appended message");
    let keywords = fs::read_to_string(folder.join("dovecot-keywords")).unwrap();
    assert!(keywords.contains("$Important"), "{keywords}");
    assert!(appended.ends_with(":2,Sa"), "{appended}");
    // INBOX lost the moved and the expunged message.
    assert_eq!(
        message_files(&store.path().join("asterix")).len(),
        ASTERIX_MESSAGES - 2
    );
    let uidlist = fs::read_to_string(store.path().join("asterix/dovecot-uidlist")).unwrap();
    assert!(uidlist.starts_with("3 V"), "{uidlist}");
}

#[test]
fn idle_announces_a_delivery_within_seconds() {
    let store = TempStore::demo();
    let server = serve(&store);
    let mut imap = idling(&server);
    let mail = store.scratch().join("late.eml");
    fs::write(&mail, "Subject: late\r\n\r\nwhile idling\r\n").unwrap();
    let delivered = Instant::now();
    store
        .mailtool()
        .args(["mbox", "deliver", "asterix"])
        .arg(&mail)
        .assert()
        .success();
    let line = imap.read_line().unwrap();
    assert_eq!(line, format!("* {} EXISTS\r\n", ASTERIX_MESSAGES + 1));
    assert!(delivered.elapsed() < Duration::from_secs(5));
    imap.send_raw(b"DONE\r\n");
    let last = imap.read_until_tagged("i1").pop().unwrap();
    assert!(last.starts_with("i1 OK"), "{last}");
}

#[test]
fn idle_announces_a_change_hidden_in_the_tick_of_its_own_move_before_the_next_poll() {
    use std::os::unix::fs::MetadataExt;
    let store = TempStore::demo();
    let server = serve(&store);
    let mut imap = idling(&server);
    // Another program delivers; the idling session takes the mail into cur/ and announces it.
    let inbox = store.path().join("asterix");
    let base = "1800000000.M1P1Q1.elsewhere";
    let tmp = inbox.join("tmp").join(base);
    fs::write(&tmp, "Subject: late\r\n\r\nwhile idling\r\n").unwrap();
    fs::rename(&tmp, inbox.join("new").join(base)).unwrap();
    let line = imap.read_line().unwrap();
    assert_eq!(line, format!("* {} EXISTS\r\n", ASTERIX_MESSAGES + 1));
    let line = imap.read_line().unwrap();
    assert!(line.ends_with(" RECENT\r\n"), "{line}");
    // At once, another program flags it and puts cur/'s time back as the session's own move
    // left it, as a change in the same clock tick would: the look its change wakes may find
    // nothing new, and the session trusts that time for a second only.
    let cur = inbox.join("cur");
    let taken = cur.join(format!("{base}:2,"));
    let time = fs::metadata(&cur).unwrap();
    let (secs, nanos) = (time.mtime(), time.mtime_nsec());
    fs::rename(&taken, cur.join(format!("{base}:2,F"))).unwrap();
    let back = std::time::UNIX_EPOCH + Duration::new(secs as u64, nanos as u32);
    fs::File::open(&cur).unwrap().set_modified(back).unwrap();
    let changed = Instant::now();
    let line = imap.read_line().unwrap();
    assert!(line.contains("FETCH (FLAGS (\\Flagged"), "{line}");
    // Before the watched IDLE's next poll (10 s): once the second of trust is over.
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "{:?}",
        changed.elapsed()
    );
    imap.send_raw(b"DONE\r\n");
    let last = imap.read_until_tagged("i1").pop().unwrap();
    assert!(last.starts_with("i1 OK"), "{last}");
}

#[test]
fn a_connection_quiet_for_a_moment_still_reads_long_commands_big_literals_and_done_whole() {
    // After a second without a word the server keeps a read buffer of 64 octets only: what
    // comes after must arrive whole, however long.
    let store = TempStore::demo();
    let server = serve(&store);
    let mut imap = login(&server);
    imap.ok("SELECT INBOX");
    let quiet = || std::thread::sleep(Duration::from_millis(1500));

    quiet();
    let fields: Vec<String> = (0..150).map(|i| format!("X-Field-{i}")).collect();
    let command = format!(
        "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT {})])",
        fields.join(" ")
    );
    assert!(command.len() > 1500);
    let lines = imap.ok(&command);
    assert!(
        lines.iter().any(|l| l.windows(8).any(|w| w == b"Subject:")),
        "{:?}",
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l))
            .collect::<Vec<_>>()
    );

    quiet();
    let big = mail("after a quiet moment", 300_000);
    imap.append("", big.clone());
    let uid = *imap.uids("ALL").last().unwrap();
    assert_eq!(imap.body(uid), big);

    quiet();
    imap.send_raw(b"i1 IDLE\r\n");
    assert!(imap.read_line().unwrap().starts_with("+ "));
    quiet();
    imap.send_raw(b"DONE\r\n");
    let last = imap.read_until_tagged("i1").pop().unwrap();
    assert!(last.starts_with("i1 OK"), "{last}");
    imap.noop();
}

#[test]
fn recent_belongs_to_the_session_that_took_the_mail_from_new() {
    let store = TempStore::demo();
    let server = serve(&store);
    let mut first = RawImap::connect(server.port());
    first.ok("LOGIN asterix potion");
    let reply = first.command("SELECT INBOX");
    let text: Vec<String> = reply
        .untagged
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(text.contains(&"* 6 RECENT\r\n".to_owned()), "{text:?}");
    let mut second = RawImap::connect(server.port());
    second.ok("LOGIN asterix potion");
    let reply = second.command("SELECT INBOX");
    let text: Vec<String> = reply
        .untagged
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(text.contains(&"* 0 RECENT\r\n".to_owned()), "{text:?}");
}

#[test]
fn curl_lists_mailboxes_and_fetches_a_message() {
    if !support::have("curl") {
        return;
    }
    let store = TempStore::demo();
    let server = serve(&store);
    let base = format!("imap://asterix:potion@127.0.0.1:{}", server.port());
    let list = std::process::Command::new("curl")
        .args(["-s", "--max-time", "20", &format!("{base}/")])
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    assert!(String::from_utf8_lossy(&list.stdout).contains("INBOX"));
    let body = std::process::Command::new("curl")
        .args(["-s", "--max-time", "20", &format!("{base}/INBOX;UID=1")])
        .output()
        .unwrap();
    assert!(body.status.success(), "{body:?}");
    let file = message_files(&store.path().join("asterix"))
        .into_iter()
        .find(|name| name.contains("1700000001."))
        .unwrap();
    let expected =
        support::crlf_line_ends(&fs::read(store.path().join("asterix").join(file)).unwrap());
    assert_eq!(body.stdout, expected);
}

#[test]
fn serve_runs_pop3_and_imap_on_one_store_and_a_pop3_read_shows_as_seen() {
    let store = TempStore::demo();
    let mut server = PopServer::spawn_as(
        support::mailtool_std(&store.path()),
        &[
            "serve",
            "--pop-port",
            "0",
            "--imap-port",
            "0",
            "--smtp-port",
            "0",
        ],
        &[],
    );
    // The first line is the POP3 address, marked; the second IMAP's.
    let imap_line = server.stdout_line();
    assert!(imap_line.ends_with(" (imap)\n"), "{imap_line}");
    let imap_port: u16 = imap_line
        .trim_end_matches(" (imap)\n")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut pop = PopClient::connect(server.addr());
    pop.login("asterix", "potion");
    assert!(pop.command("RETR 1").starts_with("+OK"));
    while pop.read_line() != ".\r\n" {}
    assert!(pop.command("QUIT").starts_with("+OK"));
    let mut imap = RawImap::login(imap_port, "asterix", "potion");
    let uids = imap.uids("SEEN");
    assert_eq!(
        uids.len(),
        3,
        "two seen before, one read over POP3: {uids:?}"
    );
}
