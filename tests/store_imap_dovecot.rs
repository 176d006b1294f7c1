//! The IMAP side of the store is a contract with Dovecot, both ways: UIDs, UIDVALIDITY,
//! flags, keywords, folders and subscriptions written by our store code are what a real
//! Dovecot serves (read back with Python's imaplib), and what Dovecot wrote is what our code
//! reads, with UIDs continuing across both.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use mailtool::store::folders::encode_mutf7;
use mailtool::store::{Mailboxes, Maildir, Snapshot, Store, UserName};
use serde_json::Value;
use support::dovecot::Dovecot;
use support::TempStore;

/// Run IMAP commands and print what the test compares as JSON. argv: port user password,
/// then the mailbox to SELECT, then `actions` as JSON (a list of [command, args...]).
const IMAP: &str = r#"
import imaplib, json, re, sys
port, user, password, actions = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
out = {}

def check(typ, data, what):
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")
    return data

def fetch(box):
    # EXAMINE: CLOSE then expunges nothing (one message is \Deleted).
    check(*imap.select(box, readonly=True), "EXAMINE " + box)
    typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
    check(typ, data, "UID FETCH")
    messages = []
    for item in data:
        if item is None:
            continue
        line = item.decode() if isinstance(item, bytes) else item[0].decode()
        uid = re.search(r"UID (\d+)", line)
        flags = re.search(r"FLAGS \(([^)]*)\)", line)
        if uid:
            messages.append([int(uid.group(1)), sorted(f for f in flags.group(1).split() if f != "\\Recent")])
    imap.close()
    return messages

def listing(data):
    rows = []
    for item in data:
        match = re.match(r'\(([^)]*)\) "\." (.*)', item.decode())
        name = match.group(2)
        if name.startswith('"'):
            name = name[1:-1]
        rows.append([name, sorted(match.group(1).split())])
    return sorted(rows)

for action in actions:
    op = action[0]
    if op == "fetch":
        out["fetch " + action[1]] = fetch(action[1])
    elif op == "status":
        typ, data = imap.status(action[1], "(UIDVALIDITY UIDNEXT MESSAGES)")
        line = check(typ, data, "STATUS")[0].decode()
        out["status " + action[1]] = {k: int(v) for k, v in re.findall(r"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)", line)}
    elif op == "list":
        out["list"] = listing(check(*imap.list(), "LIST"))
    elif op == "lsub":
        out["lsub"] = listing(check(*imap.lsub(), "LSUB"))
    elif op == "create":
        check(*imap.create(action[1]), "CREATE")
    elif op == "subscribe":
        check(*imap.subscribe(action[1]), "SUBSCRIBE")
    elif op == "append":
        typ, data = imap.append(action[1], action[2] or None, None, action[3].encode())
        line = check(typ, data, "APPEND")[0].decode()
        out.setdefault("appended", []).append(int(re.search(r"APPENDUID \d+ (\d+)", line).group(1)))
    elif op == "expunge":
        check(*imap.select(action[1]), "SELECT")
        check(*imap.uid("STORE", action[2], "+FLAGS", "(\\Deleted)"), "STORE")
        check(*imap.expunge(), "EXPUNGE")
        imap.close()
imap.logout()
print(json.dumps(out))
"#;

fn imap(dovecot: &Dovecot, actions: Value) -> Value {
    let port = dovecot.imap_port.to_string();
    let actions = actions.to_string();
    let out = support::python(IMAP, [port.as_str(), "asterix", "potion", actions.as_str()]);
    serde_json::from_slice(&out).expect("imaplib prints JSON")
}

/// A store with user asterix/potion, and the user's INBOX.
fn store_with_user(temp: &TempStore) -> (Store, Maildir) {
    let store = Store::new(temp.path());
    let name = UserName::parse("asterix").unwrap();
    store.add_user(&name, "potion").unwrap();
    let inbox = store.mailbox(&name).unwrap();
    (store, inbox)
}

fn deliver(maildir: &Maildir, subject: &str) -> mailtool::store::MessageEntry {
    let mut delivery = maildir.deliver().unwrap();
    write!(delivery, "Subject: {subject}\n\nbody of {subject}\n").unwrap();
    delivery.commit().unwrap()
}

/// The IMAP flags of a Maildir file name, keywords named through `dovecot-keywords`.
fn imap_flags(maildir: &Maildir, flags: &str) -> Vec<String> {
    let keywords = maildir.keywords().unwrap();
    let mut out: Vec<String> = flags
        .chars()
        .map(|c| match c {
            'S' => "\\Seen".to_owned(),
            'F' => "\\Flagged".to_owned(),
            'R' => "\\Answered".to_owned(),
            'D' => "\\Draft".to_owned(),
            'T' => "\\Deleted".to_owned(),
            letter => keywords
                .name_of(letter)
                .unwrap_or_else(|| panic!("keyword letter {letter} is undefined"))
                .to_owned(),
        })
        .collect();
    out.sort();
    out
}

fn uids_and_flags(maildir: &Maildir, snap: &Snapshot) -> Value {
    snap.messages
        .iter()
        .map(|m| serde_json::json!([m.uid, imap_flags(maildir, m.entry.flags())]))
        .collect()
}

/// As root the harness gave the store to Dovecot's mail user; files we write afterwards must
/// go to that user too, as they would if mailtool ran as the mail user.
fn give_to_store_owner(store: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !support::is_root() {
        return;
    }
    let meta = std::fs::metadata(store).unwrap();
    fn walk(path: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
        if std::fs::symlink_metadata(path).unwrap().is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                walk(&entry.unwrap().path(), uid, gid);
            }
        }
    }
    walk(store, meta.uid(), meta.gid());
}

fn assert_quiet_log(dovecot: &Dovecot) {
    let log = dovecot.log();
    for word in ["Error", "Warning", "Panic", "Fatal", "Broken", "Corrupt"] {
        assert!(!log.contains(word), "Dovecot complained:\n{log}");
    }
}

#[test]
fn dovecot_serves_what_our_store_wrote() {
    let temp = TempStore::empty();
    let (_store, inbox) = store_with_user(&temp);
    let entries: Vec<_> = (1..=4).map(|i| deliver(&inbox, &format!("m{i}"))).collect();
    let first = inbox.sync_uids(true).unwrap();
    assert_eq!(
        first.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(first.messages.iter().all(|m| m.recent));
    // A gap: UID 2 goes, and the next delivery still gets a fresh UID.
    inbox.remove(&first.messages[1].entry).unwrap();
    let received = SystemTime::now() - Duration::from_secs(86_400);
    let mut delivery = inbox.deliver().unwrap();
    delivery.write_all(b"Subject: m5\n\nappended\n").unwrap();
    let appended = delivery.link_as("S", Some(received)).unwrap();
    assert_eq!(
        inbox.number_added(std::slice::from_ref(&appended)).unwrap(),
        [5]
    );
    assert_eq!(
        inbox
            .received_time(&appended)
            .unwrap()
            .duration_since(received)
            .unwrap_or_default()
            .as_secs(),
        0
    );
    // Flags and keywords.
    let (_, junk_foo) = inbox.keyword_letters(&["$Junk", "Foo"]).unwrap();
    let (_, bar) = inbox.keyword_letters(&["Bar"]).unwrap();
    let snap = inbox.sync_uids(false).unwrap();
    let by_uid: BTreeMap<u32, _> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.entry.clone()))
        .collect();
    inbox
        .set_flags(&by_uid[&1], &format!("S{junk_foo}"))
        .unwrap();
    inbox.set_flags(&by_uid[&3], &format!("FR{bar}")).unwrap();
    inbox.set_flags(&by_uid[&4], "DT").unwrap();
    let ours = inbox.sync_uids(false).unwrap();
    assert_eq!(
        ours.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3, 4, 5]
    );
    assert_eq!(ours.uid_next, 6);
    assert_eq!(ours.messages[0].entry.base(), entries[0].base());

    // Folders, a child, a non-ASCII name, and a copy into it.
    let boxes = Mailboxes::new(&inbox);
    boxes.create("Entwürfe").unwrap();
    boxes.create("Parent.Child").unwrap();
    boxes.create("A&B").unwrap();
    let drafts = boxes.open("Entwürfe").unwrap();
    let copied = drafts.copy_from(&inbox, &by_uid[&3], "D").unwrap();
    assert_eq!(drafts.number_added(&[copied]).unwrap(), [1]);
    let drafts_snap = drafts.sync_uids(false).unwrap();
    let child_snap = boxes
        .open("Parent.Child")
        .unwrap()
        .sync_uids(false)
        .unwrap();
    for name in ["Entwürfe", "Parent.Child", "INBOX"] {
        boxes.set_subscribed(name, true).unwrap();
    }

    let Some(dovecot) = Dovecot::start(&temp.path()) else {
        return;
    };
    let drafts_wire = encode_mutf7("Entwürfe");
    let got = imap(
        &dovecot,
        serde_json::json!([
            ["fetch", "INBOX"],
            ["fetch", drafts_wire],
            ["status", "INBOX"],
            ["status", drafts_wire],
            ["status", "Parent.Child"],
            ["list"],
            ["lsub"]
        ]),
    );
    assert_eq!(got["fetch INBOX"], uids_and_flags(&inbox, &ours));
    assert_eq!(
        got["fetch INBOX"][0][1],
        serde_json::json!(["$Junk", "Foo", "\\Seen"])
    );
    assert_eq!(
        got[format!("fetch {drafts_wire}")],
        serde_json::json!([[1, ["\\Draft"]]])
    );
    for (key, snap) in [
        ("status INBOX".to_owned(), &ours),
        (format!("status {drafts_wire}"), &drafts_snap),
        ("status Parent.Child".to_owned(), &child_snap),
    ] {
        assert_eq!(got[&key]["UIDVALIDITY"], snap.uid_validity, "{key}");
        assert_eq!(got[&key]["UIDNEXT"], snap.uid_next, "{key}");
    }
    assert_eq!(
        got["list"],
        serde_json::json!([
            ["A&-B", ["\\HasNoChildren"]],
            [drafts_wire, ["\\HasNoChildren"]],
            ["INBOX", ["\\HasNoChildren"]],
            ["Parent", ["\\HasChildren", "\\Noselect"]],
            ["Parent.Child", ["\\HasNoChildren"]],
        ])
    );
    let ours_listed: Vec<(String, bool, bool)> = boxes
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (encode_mutf7(&i.name), i.has_children, i.noselect))
        .collect();
    for (name, has_children, noselect) in ours_listed {
        let row = got["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == name.as_str())
            .unwrap_or_else(|| panic!("Dovecot does not list {name}"));
        let flags = &row[1];
        assert_eq!(
            flags.to_string().contains("\\\\HasChildren"),
            has_children,
            "{name}"
        );
        assert_eq!(
            flags.to_string().contains("\\\\Noselect"),
            noselect,
            "{name}"
        );
    }
    assert_eq!(
        got["lsub"],
        serde_json::json!([[drafts_wire, []], ["INBOX", []], ["Parent.Child", []]])
    );

    // While Dovecot serves the mailbox, a message we deliver and number is seen with our UID.
    let late = deliver(&inbox, "m6");
    assert_eq!(inbox.number_added(&[late]).unwrap(), [6]);
    give_to_store_owner(&temp.path());
    let got = imap(
        &dovecot,
        serde_json::json!([["fetch", "INBOX"], ["status", "INBOX"]]),
    );
    assert_eq!(
        got["fetch INBOX"][4],
        serde_json::json!([6, []]),
        "{got}\n{}",
        dovecot.log()
    );
    assert_eq!(got["status INBOX"]["UIDNEXT"], 7);
    assert_eq!(got["status INBOX"]["UIDVALIDITY"], ours.uid_validity);
    assert_quiet_log(&dovecot);
    drop(dovecot);

    // And after Dovecot has kept its indexes (and perhaps rewritten the uidlist): the same.
    let after = inbox.sync_uids(false).unwrap();
    assert_eq!(after.uid_validity, ours.uid_validity);
    assert_eq!(
        after.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3, 4, 5, 6]
    );
}

#[test]
fn our_store_reads_what_dovecot_wrote_and_continues_its_uids() {
    let temp = TempStore::empty();
    let (_store, inbox) = store_with_user(&temp);
    let drafts_wire = encode_mutf7("Entwürfe");
    let got = {
        let Some(dovecot) = Dovecot::start(&temp.path()) else {
            return;
        };
        let got = imap(
            &dovecot,
            serde_json::json!([
                ["create", drafts_wire],
                ["create", "Parent.Child"],
                [
                    "append",
                    "INBOX",
                    "(\\Seen $Junk)",
                    "Subject: d1\r\n\r\none\r\n"
                ],
                [
                    "append",
                    "INBOX",
                    "(\\Flagged Foo)",
                    "Subject: d2\r\n\r\ntwo\r\n"
                ],
                [
                    "append",
                    "INBOX",
                    "(\\Answered Foo Bar)",
                    "Subject: d3\r\n\r\nthree\r\n"
                ],
                ["append", "INBOX", "", "Subject: d4\r\n\r\nfour\r\n"],
                [
                    "append",
                    drafts_wire,
                    "(\\Draft)",
                    "Subject: d5\r\n\r\nfive\r\n"
                ],
                ["expunge", "INBOX", "2"],
                ["subscribe", drafts_wire],
                ["subscribe", "Parent.Child"],
                ["fetch", "INBOX"],
                ["status", "INBOX"],
                ["status", drafts_wire]
            ]),
        );
        assert_quiet_log(&dovecot);
        got
    };
    assert_eq!(got["appended"], serde_json::json!([1, 2, 3, 4, 1]));

    // Our reading of Dovecot's files.
    let snap = inbox.sync_uids(false).unwrap();
    assert_eq!(got["fetch INBOX"], uids_and_flags(&inbox, &snap));
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(got["status INBOX"]["UIDVALIDITY"], snap.uid_validity);
    assert_eq!(got["status INBOX"]["UIDNEXT"], snap.uid_next);
    let boxes = Mailboxes::new(&inbox);
    let listed: Vec<(String, bool, bool)> = boxes
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.has_children, i.noselect))
        .collect();
    assert_eq!(
        listed,
        [
            ("INBOX".to_owned(), false, false),
            ("Entwürfe".to_owned(), false, false),
            ("Parent".to_owned(), true, true),
            ("Parent.Child".to_owned(), false, false),
        ]
    );
    assert_eq!(boxes.subscriptions().unwrap(), ["Entwürfe", "Parent.Child"]);
    let drafts = boxes.open("Entwürfe").unwrap();
    let drafts_snap = drafts.sync_uids(false).unwrap();
    assert_eq!(
        got[format!("status {drafts_wire}")]["UIDVALIDITY"],
        drafts_snap.uid_validity
    );
    assert_eq!(
        uids_and_flags(&drafts, &drafts_snap),
        serde_json::json!([[1, ["\\Draft"]]])
    );

    // We deliver more: a plain delivery numbered by a sync, an APPEND-like one numbered at
    // once, a new keyword on Dovecot's message, and a subscription.
    deliver(&inbox, "o1");
    let mut delivery = inbox.deliver().unwrap();
    delivery.write_all(b"Subject: o2\n\nours\n").unwrap();
    let o2 = delivery.commit_as("S", None).unwrap();
    assert_eq!(inbox.number_added(&[o2]).unwrap(), [5]);
    let snap = inbox.sync_uids(true).unwrap();
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3, 4, 5, 6]
    );
    let (_, letters) = inbox.keyword_letters(&["Baz", "$Junk"]).unwrap();
    let first = &snap.messages[0].entry;
    inbox
        .set_flags(first, &format!("{}{letters}", first.flags()))
        .unwrap();
    boxes.set_subscribed("INBOX", true).unwrap();
    let ours = inbox.sync_uids(false).unwrap();

    let Some(dovecot) = Dovecot::start(&temp.path()) else {
        return;
    };
    let got = imap(
        &dovecot,
        serde_json::json!([
            ["fetch", "INBOX"],
            ["append", "INBOX", "(Baz)", "Subject: d6\r\n\r\nsix\r\n"],
            ["status", "INBOX"],
            ["lsub"]
        ]),
    );
    assert_eq!(got["fetch INBOX"], uids_and_flags(&inbox, &ours));
    assert_eq!(
        got["fetch INBOX"][0][1],
        serde_json::json!(["$Junk", "Baz", "\\Seen"])
    );
    assert_eq!(
        got["appended"],
        serde_json::json!([7]),
        "Dovecot continues after our UIDs"
    );
    assert_eq!(got["status INBOX"]["UIDNEXT"], 8);
    assert_eq!(got["status INBOX"]["UIDVALIDITY"], ours.uid_validity);
    assert_eq!(
        got["lsub"],
        serde_json::json!([[drafts_wire, []], ["INBOX", []], ["Parent.Child", []]])
    );
    assert_quiet_log(&dovecot);
    drop(dovecot);

    let last = inbox.sync_uids(false).unwrap();
    assert_eq!(
        last.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3, 4, 5, 6, 7]
    );
    assert_eq!(last.uid_next, 8);
    let seventh = &last.messages[5].entry;
    assert_eq!(imap_flags(&inbox, seventh.flags()), ["Baz"]);
}

/// Where [`crash_child`] works, when a crash test spawns it.
const CRASH_DIR: &str = "MAILTOOL_TEST_CRASH_MAILDIR";

/// Not a test on its own: with `MAILTOOL_TEST_CRASH_MAILDIR` set it delivers, numbers,
/// flags and removes messages there until it is killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let maildir = Maildir::open(Path::new(&dir)).unwrap();
    for i in 0u64.. {
        let entry = deliver(&maildir, &format!("c{i}"));
        if i % 3 == 0 {
            maildir.sync_uids(true).unwrap();
        } else {
            maildir.number_added(std::slice::from_ref(&entry)).unwrap();
        }
        if i % 4 == 1 {
            let _ = maildir.set_flags(&entry, "S");
        }
        if i % 5 == 2 {
            // Expunges make later syncs rewrite the file, so kills land in rewrites too.
            if let Some(first) = maildir.list().unwrap().first() {
                maildir.remove(first).unwrap();
            }
        }
    }
}

/// Every complete line of a uidlist as Dovecot's reader takes it: (uid, base); the header
/// must be whole and valid, UIDs strictly ascending; only a torn last line may be left.
fn read_uidlist_strictly(maildir: &Maildir) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(maildir.path().join("dovecot-uidlist")).unwrap();
    let mut lines = text.split_inclusive('\n');
    let header = lines.next().unwrap();
    let fields: Vec<&str> = header.trim_end().split(' ').collect();
    assert!(header.ends_with('\n'), "torn header: {text:?}");
    assert_eq!(fields[0], "3", "{header}");
    assert!(fields[1].strip_prefix('V').unwrap().parse::<u32>().unwrap() > 0);
    assert!(fields[2].strip_prefix('N').unwrap().parse::<u32>().unwrap() > 0);
    assert_eq!(fields[3].strip_prefix('G').unwrap().len(), 32);
    let mut records: Vec<(u32, String)> = Vec::new();
    for line in lines {
        let Some(line) = line.strip_suffix('\n') else {
            continue; // a torn append: readers skip it
        };
        let (uid, base) = line
            .split_once(" :")
            .unwrap_or_else(|| panic!("broken line {line:?}"));
        let uid: u32 = uid
            .parse()
            .unwrap_or_else(|_| panic!("broken line {line:?}"));
        if let Some(&(last, _)) = records.last() {
            assert!(uid > last, "UIDs out of order: {last} then {uid}");
        }
        records.push((uid, base.to_owned()));
    }
    records
}

#[test]
fn kill_9_never_breaks_the_uidlist_nor_reuses_a_uid() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = Maildir::create(&dir.path().join("box")).unwrap();
    deliver(&maildir, "first");
    let uid_validity = maildir.sync_uids(false).unwrap().uid_validity;
    let mut history: BTreeMap<String, u32> = BTreeMap::new();
    let mut owners: BTreeMap<u32, String> = BTreeMap::new();
    let mut remember = |records: Vec<(u32, String)>| {
        for (uid, base) in records {
            assert_eq!(
                *history.entry(base.clone()).or_insert(uid),
                uid,
                "{base} changed UID"
            );
            assert_eq!(
                *owners.entry(uid).or_insert(base.clone()),
                base,
                "UID {uid} reused"
            );
        }
    };
    for round in 0..6u64 {
        // A lock left by the previous victim: age it, as if seconds had passed, so the next
        // locker finds its holder dead at once instead of waiting for that (Dovecot's rule).
        let lock = maildir.path().join("dovecot-uidlist.lock");
        if let Ok(file) = std::fs::File::options().write(true).open(&lock) {
            file.set_modified(SystemTime::now() - Duration::from_secs(10))
                .unwrap();
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR, maildir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + round * 17));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        remember(read_uidlist_strictly(&maildir));
    }
    let lock = maildir.path().join("dovecot-uidlist.lock");
    if let Ok(file) = std::fs::File::options().write(true).open(&lock) {
        file.set_modified(SystemTime::now() - Duration::from_secs(10))
            .unwrap();
    }
    let snap = maildir.sync_uids(false).unwrap();
    assert_eq!(snap.uid_validity, uid_validity);
    let on_disk = maildir.list().unwrap();
    assert_eq!(
        snap.messages.len(),
        on_disk.len(),
        "every message has a UID"
    );
    assert!(on_disk.len() > 10, "the child got some work done");
    remember(
        snap.messages
            .iter()
            .map(|m| (m.uid, m.entry.base().to_owned()))
            .collect(),
    );
    remember(read_uidlist_strictly(&maildir));
}
