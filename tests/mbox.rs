//! `mailtool mbox ...` end to end: the real binary on throwaway stores.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;
use support::TempStore;

fn add_user(store: &TempStore, name: &str, password: &str) {
    store
        .mailtool()
        .args(["mbox", "add-user", name, "--password-stdin"])
        .write_stdin(format!("{password}\n"))
        .assert()
        .success();
}

fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8(output.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn add_user_creates_passwd_0600_and_a_maildir() {
    let store = TempStore::empty();
    store
        .mailtool()
        .args(["mbox", "add-user", "asterix", "--password-stdin"])
        .write_stdin("potion with spaces\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("added user asterix"));
    let passwd = store.path().join("passwd");
    assert_eq!(
        fs::read_to_string(&passwd).unwrap(),
        "asterix:{PLAIN}potion with spaces\n"
    );
    assert_eq!(
        fs::metadata(&passwd).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for sub in ["tmp", "new", "cur"] {
        assert!(store.path().join("asterix").join(sub).is_dir(), "{sub}/");
    }
    add_user(&store, "obelix", "menhir");
    assert_eq!(
        fs::read_to_string(&passwd).unwrap(),
        "asterix:{PLAIN}potion with spaces\nobelix:{PLAIN}menhir\n"
    );
}

#[test]
fn add_user_without_a_terminal_or_stdin_flag_says_what_to_do() {
    let store = TempStore::empty();
    store
        .mailtool()
        .args(["mbox", "add-user", "asterix"])
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("error: no password given"))
        .stderr(predicate::str::contains("--password-stdin"));
    assert!(!store.path().join("passwd").exists());
}

#[test]
fn add_user_prompts_twice_without_echo_on_a_terminal() {
    let store = TempStore::empty();
    let binary = assert_cmd::cargo::cargo_bin("mailtool");
    // A real pseudo-terminal, driven by Python's pty module, answers the two prompts.
    let script = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "--store", sys.argv[2], "mbox", "add-user", "asterix"])
seen = b""
def until(word):
    global seen
    while word not in seen:
        chunk = os.read(fd, 1024)
        if not chunk:
            raise SystemExit("EOF before " + word.decode())
        seen += chunk
def echo_off():
    # The prompt is printed before echo is turned off; typing in between would echo, as it
    # would for a person typing that fast. Wait until the terminal no longer echoes.
    deadline = time.monotonic() + 10
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            raise SystemExit("echo never turned off")
        time.sleep(0.005)
until(b"New password")
echo_off()
os.write(fd, b"secret potion\n")
until(b"Retype")
echo_off()
os.write(fd, b"secret potion\n")
try:
    while True:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        seen += chunk
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let transcript = support::python(script, [binary.as_os_str(), store.path().as_os_str()]);
    let transcript = String::from_utf8_lossy(&transcript);
    assert!(
        !transcript.contains("secret potion"),
        "password echoed: {transcript}"
    );
    assert!(transcript.contains("added user asterix"), "{transcript}");
    assert_eq!(
        fs::read_to_string(store.path().join("passwd")).unwrap(),
        "asterix:{PLAIN}secret potion\n"
    );
}

#[test]
fn bad_user_names_are_refused_everywhere() {
    let store = TempStore::demo();
    let long = "a".repeat(65);
    for name in ["../x", "Asterix", "", long.as_str(), "passwd"] {
        for args in [
            vec!["mbox", "add-user", name, "--password-stdin"],
            vec!["mbox", "del-user", name],
            vec!["mbox", "passwd", name, "--password-stdin"],
            vec!["mbox", "deliver", name],
        ] {
            store
                .mailtool()
                .args(&args)
                .write_stdin("x\n")
                .assert()
                .code(1)
                .stderr(predicate::str::starts_with("error: invalid user name"))
                .stderr(predicate::str::contains("a-z, 0-9"));
        }
    }
    assert!(!store.scratch().join("x").exists());
}

#[test]
fn existing_and_unknown_users_are_errors_that_change_nothing() {
    let store = TempStore::demo();
    let before = fs::read(store.path().join("passwd")).unwrap();
    store
        .mailtool()
        .args(["mbox", "add-user", "asterix", "--password-stdin"])
        .write_stdin("x\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: user 'asterix' already exists in",
        ));
    for args in [
        vec!["mbox", "del-user", "idefix"],
        vec!["mbox", "passwd", "idefix", "--password-stdin"],
        vec!["mbox", "deliver", "idefix"],
    ] {
        store
            .mailtool()
            .args(&args)
            .write_stdin("x\n")
            .assert()
            .code(1)
            .stderr(predicate::str::starts_with("error: no user 'idefix' in"));
    }
    assert_eq!(fs::read(store.path().join("passwd")).unwrap(), before);
}

#[test]
fn a_missing_store_is_named_with_the_fix() {
    let store = TempStore::empty();
    for args in [vec!["mbox", "list"], vec!["mbox", "del-user", "asterix"]] {
        store
            .mailtool()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("does not exist"))
            .stderr(predicate::str::contains("mbox add-user"));
    }
}

#[test]
fn a_malformed_passwd_names_the_line() {
    let store = TempStore::demo();
    fs::write(
        store.path().join("passwd"),
        "asterix:{PLAIN}potion\nobelix {PLAIN}menhir\n",
    )
    .unwrap();
    store
        .mailtool()
        .args(["mbox", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error: malformed line 2 in"))
        .stderr(predicate::str::contains("passwd"));
}

#[test]
fn an_unreadable_passwd_is_one_clear_error() {
    let store = TempStore::demo();
    let passwd = store.path().join("passwd");
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o000)).unwrap();
    let mut command = store.mailtool_std();
    command.args(["mbox", "list"]);
    if support::is_root() {
        // Root reads anything: run as nobody so the permission really applies.
        for dir in [store.scratch(), store.path().as_path()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        support::as_nobody(&mut command);
    }
    assert_cmd::Command::from_std(command)
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("error: cannot read"))
        .stderr(predicate::str::contains("Permission denied"));
}

#[test]
fn del_user_removes_the_line_and_the_mailbox_unless_kept() {
    let store = TempStore::demo();
    fs::write(
        store.path().join("passwd"),
        "# demo users\nasterix:{PLAIN}potion:1000:1000::/home/asterix\nobelix:{PLAIN}menhir\n",
    )
    .unwrap();
    store
        .mailtool()
        .args(["mbox", "del-user", "obelix", "--keep-mail"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mail kept"));
    assert!(store.path().join("obelix/new").is_dir());
    assert_eq!(
        fs::read_to_string(store.path().join("passwd")).unwrap(),
        "# demo users\nasterix:{PLAIN}potion:1000:1000::/home/asterix\n"
    );
    // Re-adding takes the kept mail back.
    add_user(&store, "obelix", "menhir");
    assert!(!store.messages("obelix").is_empty());
    store
        .mailtool()
        .args(["mbox", "del-user", "obelix"])
        .assert()
        .success();
    assert!(!store.path().join("obelix").exists());
}

#[test]
fn passwd_changes_only_the_password_field() {
    let store = TempStore::demo();
    fs::write(
        store.path().join("passwd"),
        "asterix:{PLAIN}potion:1000:1000::/home/asterix::userdb_mail=maildir:~/Mail\nobelix:{PLAIN}menhir\n",
    )
    .unwrap();
    store
        .mailtool()
        .args(["--json", "mbox", "passwd", "asterix", "--password-stdin"])
        .write_stdin("magic potion\r\n")
        .assert()
        .success()
        .stdout("{\"user\":\"asterix\"}\n");
    assert_eq!(
        fs::read_to_string(store.path().join("passwd")).unwrap(),
        "asterix:{PLAIN}magic potion:1000:1000::/home/asterix::userdb_mail=maildir:~/Mail\nobelix:{PLAIN}menhir\n"
    );
    store
        .mailtool()
        .args(["mbox", "passwd", "asterix", "--password-stdin"])
        .write_stdin("has:colon\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot hold ':'"));
}

#[test]
fn list_counts_messages_unread_and_bytes_from_the_directories() {
    let store = TempStore::demo();
    let output = store
        .mailtool()
        .args(["mbox", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 2);
    for row in rows {
        let user = row["user"].as_str().unwrap();
        let files = store.messages(user);
        let unread = files
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                !name.split_once(":2,").is_some_and(|(_, f)| f.contains('S'))
            })
            .count();
        let bytes: u64 = files.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        assert_eq!(row["messages"], files.len(), "{user}");
        assert_eq!(row["unread"], unread, "{user}");
        assert_eq!(row["bytes"], bytes, "{user}");
        assert!(
            unread > 0 && unread < files.len(),
            "demo data mixes seen and unread"
        );
    }
    store
        .mailtool()
        .args(["mbox", "list"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^asterix +8 messages").unwrap());
}

#[test]
fn deliver_files_and_stdin_with_exact_size_fields() {
    let store = TempStore::demo();
    let mail = support::testdata().join("mail");
    let inputs = ["plain.eml", "crlf.eml", "no-final-newline.eml"];
    let mut command = store.mailtool();
    command.args(["--json", "mbox", "deliver", "obelix"]);
    for name in inputs {
        command.arg(mail.join(name));
    }
    let output = command.assert().success().get_output().stdout.clone();
    let mut rows = json_lines(&output);
    let stdin_mail = b"Subject: from stdin\n\n.leading dot\n";
    let stdin_out = store
        .mailtool()
        .args(["--json", "mbox", "deliver", "obelix"])
        .write_stdin(&stdin_mail[..])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    rows.extend(json_lines(&stdin_out));
    assert_eq!(rows.len(), 4);
    let mut expected: Vec<Vec<u8>> = inputs
        .iter()
        .map(|n| fs::read(mail.join(n)).unwrap())
        .collect();
    expected.push(stdin_mail.to_vec());
    for (row, content) in rows.iter().zip(&expected) {
        let file = store
            .path()
            .join("obelix")
            .join(row["file"].as_str().unwrap());
        assert_eq!(&fs::read(&file).unwrap(), content, "{file:?}");
        assert_eq!(row["bytes"], content.len());
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.contains(&format!(",S={}", content.len())), "{name}");
        if content.ends_with(b"\n") {
            assert!(
                name.ends_with(&format!(",W={}", support::crlf_line_ends(content).len())),
                "{name}"
            );
        } else {
            assert!(!name.contains(",W="), "{name}");
        }
        assert!(file.starts_with(store.path().join("obelix/new")));
    }
    assert_eq!(rows[3]["source"], "-");
    assert!(fs::read_dir(store.path().join("obelix/tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn deliver_mbox_splits_and_unquotes_from_lines() {
    let store = TempStore::demo();
    let mbox = store.scratch().join("in.mbox");
    fs::write(
        &mbox,
        "From a@b Thu Nov 26 04:14:19 2026\nSubject: one\n\n>From the start\n>>From quoted\n\nFrom c@d Thu Nov 26 04:15:00 2026\nSubject: two\n\nbody\n\n",
    )
    .unwrap();
    let before = store.messages("asterix");
    let output = store
        .mailtool()
        .args(["--json", "mbox", "deliver", "asterix", "--mbox"])
        .arg(&mbox)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 2);
    assert!(rows[1]["source"].as_str().unwrap().ends_with("in.mbox#2"));
    let contents: Vec<String> = rows
        .iter()
        .map(|r| {
            fs::read_to_string(
                store
                    .path()
                    .join("asterix")
                    .join(r["file"].as_str().unwrap()),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        contents,
        [
            "Subject: one\n\nFrom the start\n>From quoted\n",
            "Subject: two\n\nbody\n"
        ]
    );
    assert_eq!(store.messages("asterix").len(), before.len() + 2);
    // Not an mbox: a clear error, nothing delivered.
    store
        .mailtool()
        .args(["mbox", "deliver", "asterix", "--mbox"])
        .arg(support::testdata().join("mail/plain.eml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not an mbox file"));
    assert_eq!(store.messages("asterix").len(), before.len() + 2);
}

fn assert_nothing_delivered(store: &TempStore, user: &str, before: usize) {
    assert_eq!(store.messages(user).len(), before, "a message appeared");
    let tmp: Vec<_> = fs::read_dir(store.path().join(user).join("tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "tmp/ not cleaned: {tmp:?}");
}

#[test]
fn a_file_size_limit_during_delivery_leaves_nothing_behind() {
    let store = TempStore::demo();
    let before = store.messages("obelix").len();
    let big = "x".repeat(200_000);
    let mut command = store.mailtool_std();
    command.args(["mbox", "deliver", "obelix"]);
    // SAFETY: setrlimit only affects the child about to exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_cmd::Command::from_std(command)
        .write_stdin(format!("Subject: big\n\n{big}\n"))
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: cannot deliver - to obelix",
        ))
        .stderr(predicate::str::contains("too large"));
    assert_nothing_delivered(&store, "obelix", before);
}

#[test]
fn a_full_disk_during_delivery_leaves_nothing_behind() {
    let store = TempStore::demo();
    let user_dir = store.path().join("obelix");
    let before = store.messages("obelix").len();
    let saved = store.scratch().join("saved");
    fs::rename(&user_dir, &saved).unwrap();
    fs::create_dir(&user_dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&user_dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping: cannot mount a small tmpfs here (needs root); the file-size-limit test covers the same path");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&user_dir);
    support::copy_tree(&saved, &user_dir);
    store
        .mailtool()
        .args(["mbox", "deliver", "obelix"])
        .write_stdin(format!("Subject: big\n\n{}\n", "y".repeat(300_000)))
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: cannot deliver - to obelix",
        ))
        .stderr(predicate::str::contains("No space left on device"));
    assert_nothing_delivered(&store, "obelix", before);
}

#[test]
fn empty_input_is_refused() {
    let store = TempStore::demo();
    let before = store.messages("obelix").len();
    store
        .mailtool()
        .args(["mbox", "deliver", "obelix"])
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("it is empty"));
    assert_nothing_delivered(&store, "obelix", before);
}

#[test]
fn a_group_readable_passwd_draws_a_warning() {
    let store = TempStore::demo();
    fs::set_permissions(
        store.path().join("passwd"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    store
        .mailtool()
        .args(["mbox", "list", "--json"])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning:"))
        .stderr(predicate::str::contains("chmod 600"));
}
