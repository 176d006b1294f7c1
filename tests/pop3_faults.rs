//! Faults against the real `serve-pop` binary over TCP: crashes, signals, concurrent writers,
//! a second server and an unwritable or unreadable store. Each scenario takes the mailbox's
//! content before and after, and checks that nothing was lost, truncated or half-renamed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use mailtool::store::{Store, UserName};
use support::pop3::PopServer;
use support::{copy_tree, TempStore};

/// A mailbox's messages by unique name (flags and size fields stripped), with their bytes.
type Snapshot = BTreeMap<String, Vec<u8>>;

fn unique_of(file_name: &str) -> String {
    let base = file_name.split(':').next().unwrap();
    base.split(',').next().unwrap().to_owned()
}

fn snapshot(maildir: &Path) -> Snapshot {
    let mut messages = Snapshot::new();
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(maildir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let previous = messages.insert(unique_of(&name), fs::read(entry.path()).unwrap());
            assert!(previous.is_none(), "{name} is in the mailbox twice");
        }
    }
    messages
}

fn tmp_is_empty(maildir: &Path) -> bool {
    fs::read_dir(maildir.join("tmp")).unwrap().next().is_none()
}

/// Every message of `after` is one of `before`, byte for byte, and every message that is gone
/// is in `may_be_gone`.
fn assert_nothing_lost(before: &Snapshot, after: &Snapshot, may_be_gone: &BTreeSet<String>) {
    for (unique, bytes) in after {
        let original = before
            .get(unique)
            .unwrap_or_else(|| panic!("{unique} appeared from nowhere"));
        assert!(
            bytes == original,
            "{unique} changed: {} octets now, {} before",
            bytes.len(),
            original.len()
        );
    }
    for unique in before.keys() {
        assert!(
            after.contains_key(unique) || may_be_gone.contains(unique),
            "{unique} was lost without being deleted"
        );
    }
}

/// Deliver `count` small distinct messages through the store API.
fn deliver(store: &Path, user: &str, count: usize) {
    let mailbox = Store::new(store)
        .mailbox(&UserName::parse(user).unwrap())
        .unwrap();
    for i in 0..count {
        let mut delivery = mailbox.deliver().unwrap();
        // Vary endings and dot-leading lines so a truncated or mangled file would show.
        let body = format!(
            "From: load@example.org\nSubject: message {i}\n\n.line {i}\r\n{}\n",
            "x".repeat(i % 97)
        );
        delivery.write_all(body.as_bytes()).unwrap();
        delivery.commit().unwrap();
    }
}

/// UIDL's unique ids are the Maildir base names; map message numbers to unique names.
fn numbered_uniques(client: &mut support::pop3::PopClient) -> BTreeMap<usize, String> {
    client
        .uidl()
        .into_iter()
        .map(|(number, uid)| (number, unique_of(&uid)))
        .collect()
}

#[test]
fn kill_9_during_update_loses_nothing_and_leaves_no_partial_file() {
    let pristine = TempStore::demo();
    deliver(&pristine.path(), "asterix", 1000);
    let maildir_of = |store: &Path| store.join("asterix");
    let before = snapshot(&maildir_of(&pristine.path()));
    assert_eq!(before.len(), 1008);

    // A few rounds with different delays between QUIT and the kill, so at least one lands
    // in the middle of the removals; the property checked does not depend on where it lands.
    for delay_ms in [0u64, 1, 3, 8] {
        let round = TempStore::empty();
        copy_tree(&pristine.path(), &round.path());
        let maildir = maildir_of(&round.path());
        let mut server = PopServer::start(&round.path(), &[]);
        let mut client = server.connect();
        client.login("asterix", "potion");
        let numbered = numbered_uniques(&mut client);
        assert_eq!(numbered.len(), 1008);
        let marked: BTreeSet<String> = (1..=1000).map(|n| numbered[&n].clone()).collect();

        let mut pipeline = String::new();
        for n in 1..=1000 {
            pipeline.push_str(&format!("DELE {n}\r\n"));
        }
        client.send_raw(pipeline.as_bytes());
        for n in 1..=1000 {
            let reply = client.read_line();
            assert!(reply.starts_with("+OK"), "DELE {n}: {reply}");
        }
        client.send_raw(b"QUIT\r\n");
        thread::sleep(Duration::from_millis(delay_ms));
        server.signal(libc::SIGKILL);
        let status = server.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        let after = snapshot(&maildir);
        assert_nothing_lost(&before, &after, &marked);
        assert!(tmp_is_empty(&maildir));
        eprintln!(
            "kill -9 {delay_ms} ms after QUIT: {} of 1000 marked messages removed",
            before.len() - after.len()
        );

        // The crashed server's lock died with it: a new server serves exactly what is left.
        let server = PopServer::start(&round.path(), &[]);
        let mut client = server.connect();
        client.login("asterix", "potion");
        assert_eq!(client.stat().0, after.len());
        assert!(client.command("QUIT").starts_with("+OK"));
    }
}

#[test]
fn mail_delivered_during_a_session_is_outside_its_snapshot() {
    let store = TempStore::demo();
    let maildir = store.path().join("asterix");
    let before = snapshot(&maildir);
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.login("asterix", "potion");
    let stat = client.stat();
    let (_, listing) = client.multiline("LIST");
    assert_eq!(stat.0, before.len());

    let mail = store.scratch().join("late.eml");
    fs::write(
        &mail,
        "From: late@example.org\nSubject: late\n\narrived mid-session\n",
    )
    .unwrap();
    store
        .mailtool()
        .args(["mbox", "deliver", "asterix"])
        .arg(&mail)
        .assert()
        .success();
    let with_late = snapshot(&maildir);
    assert_eq!(with_late.len(), before.len() + 1);
    let late: Vec<_> = with_late
        .keys()
        .filter(|u| !before.contains_key(*u))
        .cloned()
        .collect();

    // RFC 1939: the session's maildrop is what it was at login.
    assert_eq!(client.stat(), stat);
    assert_eq!(client.multiline("LIST").1, listing);
    let next = stat.0 + 1;
    assert!(client.command(&format!("RETR {next}")).starts_with("-ERR"));
    for n in 1..=stat.0 {
        let reply = client.command(&format!("DELE {n}"));
        assert!(reply.starts_with("+OK"), "DELE {n}: {reply}");
    }
    assert!(client.command("QUIT").starts_with("+OK"));
    assert!(client.is_closed(Duration::from_secs(5)));

    let after = snapshot(&maildir);
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), late);
    assert_eq!(after[&late[0]], with_late[&late[0]]);
    assert!(tmp_is_empty(&maildir));

    // The next session sees it.
    let mut client = server.connect();
    client.login("asterix", "potion");
    assert_eq!(client.stat().0, 1);
}

#[test]
fn the_mailbox_lock_holds_across_two_servers() {
    let store = TempStore::demo();
    let before = snapshot(&store.path().join("asterix"));
    let first = PopServer::start(&store.path(), &[]);
    let second = PopServer::start(&store.path(), &[]);

    let mut holder = first.connect();
    holder.login("asterix", "potion");
    assert!(holder.command("DELE 1").starts_with("+OK"));

    let mut intruder = second.connect();
    assert!(intruder.command("USER asterix").starts_with("+OK"));
    let refused = intruder.command("PASS potion");
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");
    // The refused session goes on: another user's mailbox is free.
    intruder.login("obelix", "menhir");
    assert!(intruder.command("QUIT").starts_with("+OK"));

    // RSET undoes the mark; once the first session ends the second server gets the mailbox.
    assert!(holder.command("RSET").starts_with("+OK"));
    assert!(holder.command("QUIT").starts_with("+OK"));
    assert!(holder.is_closed(Duration::from_secs(5)));
    let mut next = second.connect();
    next.login("asterix", "potion");
    assert_eq!(next.stat().0, before.len());
    assert!(next.command("QUIT").starts_with("+OK"));
    assert_eq!(snapshot(&store.path().join("asterix")), before);
}

#[test]
fn sigterm_mid_transaction_commits_no_partial_update() {
    let store = TempStore::demo();
    let asterix_before = snapshot(&store.path().join("asterix"));
    let obelix_before = snapshot(&store.path().join("obelix"));
    let mut server = PopServer::start(&store.path(), &[]);

    let mut asterix = server.connect();
    asterix.login("asterix", "potion");
    for n in 1..=asterix_before.len() {
        assert!(asterix.command(&format!("DELE {n}")).starts_with("+OK"));
    }
    let mut obelix = server.connect();
    obelix.login("obelix", "menhir");
    assert!(obelix.command("DELE 2").starts_with("+OK"));
    let (status, _) = obelix.retr_bytes(1);
    assert!(status.starts_with("+OK"));
    let mut anonymous = server.connect();
    assert!(anonymous.command("USER asterix").starts_with("+OK"));

    server.signal(libc::SIGTERM);
    let status = server
        .wait_timeout(Duration::from_secs(15))
        .expect("serve-pop exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}, stderr: {}",
        server.stderr()
    );
    for client in [&mut asterix, &mut obelix, &mut anonymous] {
        assert!(client.is_closed(Duration::from_secs(5)));
    }

    // No UPDATE happened: every message is there, byte for byte (RETR may have set a flag).
    assert_eq!(snapshot(&store.path().join("asterix")), asterix_before);
    assert_eq!(snapshot(&store.path().join("obelix")), obelix_before);
    assert!(tmp_is_empty(&store.path().join("asterix")));
}

/// A mount made for one test, lazily unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Run `mount` with these arguments; `None` when this machine does not allow it.
    fn run(args: &[&str], target: &Path) -> Option<()> {
        let output = Command::new("mount").args(args).arg(target).output().ok()?;
        if output.status.success() {
            Some(())
        } else {
            eprintln!(
                "skipped: mount {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bind-mount `dir` onto itself read-only.
fn read_only_bind(dir: &Path) -> Option<Mount> {
    Mount::run(&["--bind", dir.to_str().unwrap()], dir)?;
    let mount = Mount(dir.to_owned());
    Mount::run(&["-o", "remount,bind,ro"], dir)?;
    Some(mount)
}

#[test]
fn store_on_a_read_only_filesystem_answers_sys_errors_and_the_session_survives() {
    if !support::is_root() {
        eprintln!("skipped: mounting a read-only store needs root");
        return;
    }
    let scratch = TempStore::empty();
    let root = scratch.scratch().join("ro");
    fs::create_dir(&root).unwrap();
    let Some(()) = Mount::run(&["-t", "tmpfs", "-o", "size=4m", "tmpfs"], &root) else {
        return;
    };
    let _mount = Mount(root.clone());
    let store = root.join("store");
    mailtool::demo::extract(&store).expect("extract the demo store");
    let before = snapshot(&store.join("asterix"));
    Mount::run(&["-o", "remount,ro"], &root).expect("remount the tmpfs read-only");

    let server = PopServer::start(&store, &[]);
    let mut client = server.connect();
    assert!(client.command("USER asterix").starts_with("+OK"));
    let reply = client.command("PASS potion");
    assert!(reply.starts_with("-ERR [SYS/"), "{reply}");
    // The session is still there and usable.
    let (capa, lines) = client.multiline("CAPA");
    assert!(capa.starts_with("+OK") && lines.iter().any(|l| l == "UIDL"));
    assert!(client.command("USER obelix").starts_with("+OK"));
    assert!(client.command("PASS menhir").starts_with("-ERR [SYS/"));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(snapshot(&store.join("asterix")), before);
    assert!(
        server.stderr_shows("Read-only file system"),
        "{}",
        server.stderr()
    );
}

#[test]
fn read_only_message_folders_fail_the_update_with_sys_and_keep_every_message() {
    if !support::is_root() {
        eprintln!("skipped: bind mounts need root");
        return;
    }
    let store = TempStore::demo();
    let maildir = store.path().join("asterix");
    let before = snapshot(&maildir);
    let Some(_new) = read_only_bind(&maildir.join("new")) else {
        return;
    };
    let Some(_cur) = read_only_bind(&maildir.join("cur")) else {
        return;
    };

    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.login("asterix", "potion");
    // Reading works; only the Seen flag cannot be recorded.
    let (status, body) = client.retr_bytes(1);
    assert!(status.starts_with("+OK"), "{status}");
    assert!(!body.is_empty());
    assert!(client.command("NOOP").starts_with("+OK"));
    for n in 1..=before.len() {
        assert!(client.command(&format!("DELE {n}")).starts_with("+OK"));
    }
    let reply = client.command("QUIT");
    // A read-only filesystem will not change by retrying: a permanent failure.
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    assert_eq!(snapshot(&maildir), before);
}

#[test]
fn unreadable_message_answers_sys_error_and_the_session_survives() {
    if !support::is_root() {
        eprintln!("skipped: running the server as nobody needs root");
        return;
    }
    let store = TempStore::demo();
    // The server runs as nobody, which must own the store and reach it.
    Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(store.scratch())
        .status()
        .unwrap();
    let asterix = store.path().join("asterix");
    let before = snapshot(&asterix);
    // Message 2 in delivery order; its name carries ,W= so listing never opens it.
    let locked = asterix.join("new/1700002417.M209458P4014Q2.village,S=1524,W=1564");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    // obelix's second message has no ,W=: the server must read it to size it.
    let obelix = store.path().join("obelix");
    let needs_sizing = obelix.join("new/1700047310.M47290P4070Q10.village,S=760");
    fs::set_permissions(&needs_sizing, fs::Permissions::from_mode(0o000)).unwrap();

    let mut command = store.mailtool_std();
    support::as_nobody(&mut command);
    let server = PopServer::spawn(command, &[]);
    let mut client = server.connect();
    client.login("asterix", "potion");
    let reply = client.command("RETR 2");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    let reply = client.command("TOP 2 0");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    // The session survives: the other messages are served.
    let (status, body) = client.retr_bytes(3);
    assert!(status.starts_with("+OK"), "{status}");
    assert!(!body.is_empty());
    assert_eq!(client.stat().0, before.len());
    assert!(client.command("QUIT").starts_with("+OK"));

    // The mailbox whose unreadable file has no ,W=: it cannot be sized, so the session
    // leaves it out (untouched) and serves the other three.
    let mut client = server.connect();
    let reply = client.login("obelix", "menhir");
    assert!(reply.starts_with("+OK"), "{reply}");
    assert_eq!(client.stat().0, 3);
    let (_, listing) = client.multiline("UIDL");
    assert!(
        !listing
            .iter()
            .any(|line| line.contains("1700047310.M47290P4070Q10")),
        "{listing:?}"
    );
    for n in 1..=3 {
        let (status, _) = client.retr_bytes(n);
        assert!(status.starts_with("+OK"), "{status}");
    }
    assert!(client.command("QUIT").starts_with("+OK"));

    fs::set_permissions(&locked, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&needs_sizing, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(snapshot(&asterix), before);
    assert_eq!(snapshot(&obelix).len(), 4);
}
