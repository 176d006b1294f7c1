//! `mailtool imap-unread` end to end: the real binary against a real Dovecot on loopback
//! and against mailtool's own serve-imap (every test that does not reconfigure Dovecot runs
//! against both), seeded by IMAP APPEND with unread and \Seen mails mixed, and inspected
//! afterwards by an independent raw-socket client.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use predicates::prelude::*;
use serde_json::Value;
use support::dovecot::Dovecot;
use support::imap::{mail, RawImap};
use support::pop3::PopServer;
use support::TempStore;

/// Which IMAP server a test sweeps.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Dovecot,
    ServeImap,
}

enum Server {
    Dovecot(Dovecot),
    ServeImap(PopServer),
}

struct Setup {
    store: TempStore,
    server: Server,
}

/// Each named test (a `fn(Backend)`) as two tests, one per server.
macro_rules! against_both {
    ($($name:ident),* $(,)?) => {
        mod dovecot {
            $(#[test] fn $name() { super::$name(super::Backend::Dovecot) })*
        }
        mod serve_imap {
            $(#[test] fn $name() { super::$name(super::Backend::ServeImap) })*
        }
    };
}

impl Setup {
    /// The demo store (asterix: 6 unread, 2 seen) served by `backend`.
    fn start(backend: Backend) -> Option<Setup> {
        match backend {
            Backend::Dovecot => Setup::start_with(""),
            Backend::ServeImap => {
                let store = TempStore::demo();
                let server = Server::ServeImap(PopServer::start_imap(&store.path(), &[]));
                Some(Setup { store, server })
            }
        }
    }

    /// Dovecot with `extra_conf` added to its configuration.
    fn start_with(extra_conf: &str) -> Option<Setup> {
        let store = TempStore::demo();
        let dovecot = Dovecot::start_with(&store.path(), extra_conf)?;
        Some(Setup {
            store,
            server: Server::Dovecot(dovecot),
        })
    }

    fn port(&self) -> u16 {
        match &self.server {
            Server::Dovecot(dovecot) => dovecot.imap_port,
            Server::ServeImap(server) => server.port(),
        }
    }

    fn dovecot(&self) -> &Dovecot {
        match &self.server {
            Server::Dovecot(dovecot) => dovecot,
            Server::ServeImap(_) => panic!("this test needs Dovecot"),
        }
    }

    fn imap(&self) -> RawImap {
        RawImap::login(self.port(), "asterix", "potion")
    }

    /// `imap-unread` for asterix on this Dovecot, password from the environment.
    fn sweep(&self) -> assert_cmd::Command {
        let mut command = self.store.mailtool();
        command
            .env("MAILTOOL_PASSWORD", "potion")
            .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
            .arg("--port")
            .arg(self.port().to_string());
        command
    }

    fn sweep_std(&self) -> Command {
        let mut command = self.store.mailtool_std();
        command
            .env("MAILTOOL_PASSWORD", "potion")
            .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
            .arg("--port")
            .arg(self.port().to_string());
        command
    }
}

against_both!(
    prints_every_unread_mail_then_deletes_exactly_those,
    human_output_has_headers_text_attachments_and_separators,
    keep_prints_and_changes_nothing_not_even_seen_flags,
    another_clients_deleted_mail_survives_the_sweep,
    trace_shows_the_dialogue_with_the_password_masked,
    non_ascii_password_logs_in_with_authenticate_plain_and_is_masked,
    wrong_password_exits_3_and_refused_connection_exits_4,
    password_comes_from_file_or_env_and_is_never_guessed,
    missing_mailbox_is_a_server_error_and_other_mailboxes_can_be_swept,
    a_reader_that_quits_early_gets_nothing_deleted,
    an_output_that_fails_gets_nothing_deleted_and_says_why,
    a_file_output_reaches_the_disk_before_anything_is_deleted,
    a_mail_arriving_during_a_sweep_of_1500_is_printed_or_survives,
    raw_output_reimports_byte_identical_with_mbox_deliver,
);

fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8(output.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn uids_of(records: &[Value]) -> Vec<u32> {
    records
        .iter()
        .map(|r| r["uid"].as_u64().unwrap() as u32)
        .collect()
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn prints_every_unread_mail_then_deletes_exactly_those(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    imap.append_all(&[
        ("", mail("fresh one", 300)),
        ("(\\Seen)", mail("already read", 300)),
        ("", mail("fresh two", 300)),
    ]);
    let unread = imap.uids("UNSEEN");
    let seen = imap.uids("SEEN");
    assert!(unread.len() >= 8 && seen.len() >= 3, "a mixed mailbox");
    let sizes: Vec<usize> = unread.iter().map(|&uid| imap.body(uid).len()).collect();

    let assert = setup.sweep().arg("--json").assert().success();
    let records = json_lines(&assert.get_output().stdout);
    assert_eq!(uids_of(&records), unread);
    let fresh = records
        .iter()
        .find(|r| r["subject"] == "fresh two")
        .expect("the appended mail is printed");
    assert_eq!(fresh["from"], "Asterix <asterix@gaul.example>");
    assert_eq!(fresh["message_id"], "<fresh.two@gaul.example>");
    assert!(fresh["text"].as_str().unwrap().contains("Toutatis"));
    let printed_sizes: Vec<usize> = records
        .iter()
        .map(|r| r["size"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(printed_sizes, sizes, "size is the octets of BODY[]");
    let stderr = stderr_of(&assert);
    assert!(
        !stderr.contains('\r'),
        "no progress line in a pipe: {stderr:?}"
    );
    let summary = format!("printed {}", unread.len());
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(
        stderr.contains(&format!("deleted {}", unread.len())),
        "{stderr}"
    );

    imap.noop();
    assert_eq!(imap.uids("ALL"), seen, "only the seen mails remain");
    for uid in seen {
        assert!(imap.flags(uid).contains("\\Seen"));
        assert!(!imap.flags(uid).contains("\\Deleted"));
    }

    // Nothing unread is left, which is success too.
    let again = setup.sweep().assert().success();
    assert!(again.get_output().stdout.is_empty());
    assert!(stderr_of(&again).contains("0 unread"));
}

fn human_output_has_headers_text_attachments_and_separators(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    let with_attachment = b"From: Panoramix <druid@gaul.example>\r\n\
To: asterix@gaul.example\r\n\
Subject: =?utf-8?q?Recette_de_la_potion_=E2=80=94_secr=C3=A8te?=\r\n\
Date: Thu, 26 Nov 2026 05:00:00 +0000\r\n\
Content-Type: multipart/mixed; boundary=frontier\r\n\
\r\n\
--frontier\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gui de ch=EAne, homard.\r\n\
--frontier\r\n\
Content-Type: application/octet-stream; name=\"potion.bin\"\r\n\
Content-Disposition: attachment; filename=\"potion.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--frontier--\r\n"
        .to_vec();
    let html_only =
        b"From: x@y.example\r\nSubject: html\r\nContent-Type: text/html\r\n\r\n<b>bold</b>\r\n"
            .to_vec();
    imap.append_all(&[("", with_attachment), ("", html_only)]);

    let assert = setup.sweep().arg("--keep").assert().success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        out.contains("Subject: Recette de la potion — secrète"),
        "{out}"
    );
    assert!(out.contains("From:    Panoramix <druid@gaul.example>"));
    assert!(out.contains("Gui de chêne, homard."));
    assert!(out.contains("potion.bin (application/octet-stream, 10 bytes)"));
    assert!(out.contains("no plain-text part"));
    assert!(out.contains("<b>bold</b>"));
    let separators = out.matches("==================== UID ").count();
    assert_eq!(separators, imap.uids("UNSEEN").len());
}

fn keep_prints_and_changes_nothing_not_even_seen_flags(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    let unread = imap.uids("UNSEEN");
    let all = imap.uids("ALL");
    let first = setup.sweep().args(["--keep", "--json"]).assert().success();
    let second = setup.sweep().args(["--keep", "--json"]).assert().success();
    assert_eq!(uids_of(&json_lines(&first.get_output().stdout)), unread);
    assert_eq!(first.get_output().stdout, second.get_output().stdout);
    imap.noop();
    assert_eq!(imap.uids("UNSEEN"), unread, "BODY.PEEK[] set no \\Seen");
    assert_eq!(imap.uids("ALL"), all);
}

fn another_clients_deleted_mail_survives_the_sweep(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    imap.append("(\\Seen)", mail("marked by thunderbird", 200));
    let marked = *imap.uids("SUBJECT thunderbird").first().unwrap();
    imap.ok(&format!("UID STORE {marked} +FLAGS.SILENT (\\Deleted)"));

    let assert = setup.sweep().arg("--trace").assert().success();
    let trace = stderr_of(&assert);
    assert!(trace.contains("UID EXPUNGE"), "{trace}");
    assert!(!trace.contains("CLOSE"), "{trace}");

    imap.noop();
    assert!(
        imap.uids("ALL").contains(&marked),
        "the other client's mail is still there"
    );
    assert!(imap.flags(marked).contains("\\Deleted"));
}

fn trace_shows_the_dialogue_with_the_password_masked(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let assert = setup.sweep().args(["--trace", "--keep"]).assert().success();
    let trace = stderr_of(&assert);
    assert!(
        trace.contains("C: a1 LOGIN \"asterix\" <password masked>"),
        "{trace}"
    );
    assert!(trace.contains("UID SEARCH UNSEEN"));
    assert!(trace.contains("BODY.PEEK[]"));
    assert!(trace.contains("octets>"), "literals are summarised");
    assert!(!trace.contains("potion"), "{trace}");
}

fn non_ascii_password_logs_in_with_authenticate_plain_and_is_masked(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    // Dovecot reads passwd on each login, so a new user works at once.
    let passwd = setup.store.path().join("passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("idefix:{PLAIN}wouf-ouaf-é\n");
    std::fs::write(&passwd, text).unwrap();
    let password_file = setup.store.scratch().join("idefix.pass");
    std::fs::write(&password_file, "wouf-ouaf-é\n").unwrap();
    let assert = setup
        .store
        .mailtool()
        .args([
            "imap-unread",
            "--host",
            "127.0.0.1",
            "--user",
            "idefix",
            "--trace",
        ])
        .arg("--port")
        .arg(setup.port().to_string())
        .arg("--password-file")
        .arg(&password_file)
        .assert()
        .success();
    let trace = stderr_of(&assert);
    assert!(trace.contains("AUTHENTICATE PLAIN"), "{trace}");
    assert!(trace.contains("<SASL response masked>"), "{trace}");
    assert!(!trace.contains("wouf"), "{trace}");
}

fn wrong_password_exits_3_and_refused_connection_exits_4(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    setup
        .sweep()
        .env("MAILTOOL_PASSWORD", "not-the-potion")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("refused the login of 'asterix'"))
        .stderr(predicate::str::contains("check the user name and password"));

    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    setup
        .store
        .mailtool()
        .env("MAILTOOL_PASSWORD", "potion")
        .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
        .arg("--port")
        .arg(closed_port.to_string())
        .assert()
        .code(4)
        .stderr(predicate::str::contains("cannot connect to 127.0.0.1:"))
        .stderr(predicate::str::contains("refused"));
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    // Accepts the connection, then never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = TempStore::empty();
    store
        .mailtool()
        .env("MAILTOOL_PASSWORD", "potion")
        .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
        .args(["--timeout", "1", "--port", &port.to_string()])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("no answer within 1s"));
    drop(listener);
}

fn password_comes_from_file_or_env_and_is_never_guessed(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let file = setup.store.scratch().join("pass");
    std::fs::write(&file, "potion\n").unwrap();
    setup
        .sweep()
        .env_remove("MAILTOOL_PASSWORD")
        .arg("--keep")
        .arg("--password-file")
        .arg(&file)
        .assert()
        .success();
    // No file, no variable, no terminal (assert_cmd gives an empty stdin): a clear error.
    setup
        .sweep()
        .env_remove("MAILTOOL_PASSWORD")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no password for asterix"))
        .stderr(predicate::str::contains("--password-file"));
}

fn missing_mailbox_is_a_server_error_and_other_mailboxes_can_be_swept(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    setup
        .sweep()
        .args(["--mailbox", "Nowhere"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("SELECT Nowhere"));
    let mut imap = setup.imap();
    imap.ok("CREATE Archive");
    imap.append_all_to(
        "Archive",
        &[("", mail("archived", 100)), ("(\\Seen)", mail("old", 100))],
    );
    let assert = setup
        .sweep()
        .args(["--mailbox", "Archive", "--json"])
        .assert()
        .success();
    assert_eq!(json_lines(&assert.get_output().stdout).len(), 1);
}

/// Unread mails of `n` octets each, in one burst.
fn seed_unread(imap: &mut RawImap, count: usize, octets: usize, prefix: &str) {
    let mails: Vec<(&str, Vec<u8>)> = (0..count)
        .map(|i| ("", mail(&format!("{prefix} {i}"), octets)))
        .collect();
    imap.append_all(&mails);
}

fn a_reader_that_quits_early_gets_nothing_deleted(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    // Far more than a pipe holds, so the sweeper meets the closed pipe mid-way.
    seed_unread(&mut imap, 120, 4096, "bulk");
    let unread_before = imap.uids("UNSEEN");
    let all_before = imap.uids("ALL");

    // mailtool imap-unread | head -c 100
    let mut child = setup
        .sweep_std()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a closed pipe is not a failure: {stderr}"
    );
    assert!(stderr.contains("nothing was deleted"), "{stderr}");

    imap.noop();
    assert_eq!(imap.uids("ALL"), all_before, "no mail was deleted");
    assert_eq!(imap.uids("UNSEEN"), unread_before, "none was marked \\Seen");
    assert!(imap.uids("DELETED").is_empty(), "none was marked \\Deleted");
}

fn an_output_that_fails_gets_nothing_deleted_and_says_why(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    let all_before = imap.uids("ALL");

    // mailtool imap-unread > /dev/full: every write fails with ENOSPC, as on a full disk.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = setup.sweep_std().stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("nothing was deleted"), "{stderr}");

    imap.noop();
    assert_eq!(imap.uids("ALL"), all_before, "no mail was deleted");
    assert!(imap.uids("DELETED").is_empty(), "none was marked \\Deleted");
}

fn a_file_output_reaches_the_disk_before_anything_is_deleted(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    if !support::have("strace") {
        return;
    }
    let unread = setup.imap().uids("UNSEEN");
    let saved = setup.store.scratch().join("saved.mbox");
    let trace = setup.store.scratch().join("strace.txt");

    // strace records, in order, the sync of stdout and the commands sent to the server.
    let mut command = Command::new("strace");
    command
        .args([
            "-f",
            "-qq",
            "-s",
            "64",
            "-e",
            "trace=fdatasync,sendto,write",
            "-o",
        ])
        .arg(&trace)
        .arg(assert_cmd::cargo::cargo_bin("mailtool"))
        .args(setup.sweep_std().get_args())
        .arg("--raw")
        .env("MAILTOOL_PASSWORD", "potion")
        .stdout(std::fs::File::create(&saved).unwrap());
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let trace = std::fs::read_to_string(&trace).unwrap();
    let position = |needle: &str| {
        trace
            .lines()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the trace:\n{trace}"))
    };
    assert!(
        position("fdatasync(1)") < position("UID STORE"),
        "stdout must be synced before the first mail is marked \\Deleted:\n{trace}"
    );
    let mbox = std::fs::read(&saved).unwrap();
    let entries = mbox.windows(6).filter(|w| w == b"\nFrom ").count() + 1;
    assert_eq!(entries, unread.len(), "every unread mail is in the file");
    assert!(setup
        .imap()
        .uids("ALL")
        .iter()
        .all(|uid| !unread.contains(uid)));
}

fn a_mail_arriving_during_a_sweep_of_1500_is_printed_or_survives(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    seed_unread(&mut imap, 1500, 1024, "wave");
    let unread_before = imap.uids("UNSEEN");

    let mut child = setup
        .sweep_std()
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // The sweeper is now mid-way: it printed one mail, and stalls on the pipe we are not
    // reading until the late mail is in.
    imap.append("", mail("late arrival", 500));
    let late_uid = *imap.uids("SUBJECT \"late arrival\"").first().unwrap();
    let mut printed: Vec<Value> = vec![serde_json::from_str(&first).unwrap()];
    for line in lines {
        printed.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let printed_uids: BTreeSet<u32> = uids_of(&printed).into_iter().collect();
    imap.noop();
    let remaining = imap.uids("ALL");
    assert!(
        printed_uids.contains(&late_uid) || remaining.contains(&late_uid),
        "the late mail was neither printed nor kept"
    );
    // Every mail that was unread at the start was printed, and only printed mails are gone.
    for uid in &unread_before {
        assert!(printed_uids.contains(uid), "UID {uid} was not printed");
        assert!(
            !remaining.contains(uid),
            "UID {uid} was printed but not deleted"
        );
    }
    if !printed_uids.contains(&late_uid) {
        assert!(
            !imap.flags(late_uid).contains("\\Seen"),
            "left as it came: unread"
        );
    }
}

fn raw_output_reimports_byte_identical_with_mbox_deliver(backend: Backend) {
    let Some(setup) = Setup::start(backend) else {
        return;
    };
    let mut imap = setup.imap();
    let tricky = b"From: Asterix <asterix@gaul.example>\r\nSubject: quoting\r\n\r\n\
From the start of a line\r\n>From an already quoted line\r\n>>From deeper\r\n\r\n\r\n\
last line\r\n"
        .to_vec();
    imap.append_all(&[("", tricky), ("", mail("plain", 2000))]);
    let unread = imap.uids("UNSEEN");
    let bodies: Vec<Vec<u8>> = unread.iter().map(|&uid| imap.body(uid)).collect();

    let assert = setup.sweep().arg("--raw").assert().success();
    let mbox = setup.store.scratch().join("saved.mbox");
    std::fs::write(&mbox, &assert.get_output().stdout).unwrap();
    assert!(assert.get_output().stdout.starts_with(b"From "));

    let target = TempStore::empty();
    target
        .mailtool()
        .args(["mbox", "add-user", "panoramix", "--password-stdin"])
        .write_stdin("gui\n")
        .assert()
        .success();
    target
        .mailtool()
        .args(["mbox", "deliver", "panoramix", "--mbox"])
        .arg(&mbox)
        .assert()
        .success();
    let mut delivered: Vec<Vec<u8>> = target
        .messages("panoramix")
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    let mut expected = bodies.clone();
    delivered.sort();
    expected.sort();
    assert_eq!(delivered.len(), expected.len());
    for (got, want) in delivered.iter().zip(&expected) {
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want),
            "a re-imported mail differs from BODY[]"
        );
    }
}

const NO_UIDPLUS: &str =
    "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE";

#[test]
fn without_uidplus_nothing_is_deleted_unless_allowed() {
    let Some(setup) = Setup::start_with(NO_UIDPLUS) else {
        return;
    };
    let mut imap = setup.imap();
    imap.append("(\\Seen)", mail("marked elsewhere", 200));
    let marked = *imap.uids("SUBJECT elsewhere").first().unwrap();
    imap.ok(&format!("UID STORE {marked} +FLAGS.SILENT (\\Deleted)"));
    let all = imap.uids("ALL");
    let unread = imap.uids("UNSEEN");

    let refused = setup.sweep().arg("--trace").assert().code(5);
    let stderr = stderr_of(&refused);
    assert!(stderr.contains("lacks UIDPLUS"), "{stderr}");
    assert!(stderr.contains("--allow-expunge-all"), "{stderr}");
    assert!(
        refused.get_output().stdout.is_empty(),
        "refused before printing"
    );
    imap.noop();
    assert_eq!(imap.uids("ALL"), all);

    setup.sweep().arg("--keep").assert().success();

    let allowed = setup
        .sweep()
        .args(["--allow-expunge-all", "--json", "--trace"])
        .assert()
        .success();
    let trace = stderr_of(&allowed);
    assert!(
        !trace.contains("UID EXPUNGE"),
        "the client decided from CAPABILITY"
    );
    assert!(trace.contains(" EXPUNGE"), "{trace}");
    assert!(
        trace.contains("plain EXPUNGE also removed 1 mails other clients had marked"),
        "{trace}"
    );
    assert_eq!(uids_of(&json_lines(&allowed.get_output().stdout)), unread);
    imap.noop();
    assert!(
        !imap.uids("ALL").contains(&marked),
        "plain EXPUNGE took it, as warned"
    );
}

/// Dovecot only: the UIDVALIDITY is changed with doveadm while the sweep stalls.
#[test]
fn a_uidvalidity_change_during_the_sweep_deletes_nothing() {
    let Some(setup) = Setup::start(Backend::Dovecot) else {
        return;
    };
    let mut imap = setup.imap();
    seed_unread(&mut imap, 60, 4096, "renumbered");
    let all_before = imap.uids("ALL");
    drop(imap);

    let mut child = setup
        .sweep_std()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The sweeper stalls on the full pipe; meanwhile the mailbox gets new UIDs.
    let status = Command::new("doveadm")
        .arg("-c")
        .arg(setup.dovecot().conf_path())
        .args([
            "mailbox",
            "update",
            "--uid-validity",
            "4242",
            "-u",
            "asterix",
            "INBOX",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // Dovecot drops a session whose mailbox changed UIDVALIDITY; a server that announces it
    // instead gets the sweeper's own check. Either way the sweep stops before deleting.
    assert!(
        stderr.contains("UIDVALIDITY") || stderr.contains("closed the connection"),
        "{stderr}"
    );

    let mut imap = setup.imap();
    assert_eq!(imap.uids("ALL"), all_before, "nothing was deleted");
    assert!(
        imap.uids("DELETED").is_empty(),
        "nothing was marked \\Deleted"
    );
}

#[test]
fn raw_and_json_together_are_a_usage_error() {
    let store = TempStore::empty();
    store
        .mailtool()
        .env("MAILTOOL_PASSWORD", "potion")
        .args([
            "--json",
            "imap-unread",
            "--host",
            "127.0.0.1",
            "--user",
            "x",
            "--raw",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--raw and --json exclude each other",
        ));
}
