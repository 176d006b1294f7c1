//! The command line as a user meets it: help with examples, usage errors, exit statuses.

mod support;

use predicates::prelude::*;
use std::path::Path;

fn mailtool() -> assert_cmd::Command {
    support::mailtool(Path::new("./no-such-store"))
}

#[test]
fn every_subcommand_help_has_examples() {
    let commands: [&[&str]; 11] = [
        &[],
        &["serve-pop"],
        &["imap-unread"],
        &["inspect"],
        &["mbox"],
        &["mbox", "add-user"],
        &["mbox", "del-user"],
        &["mbox", "passwd"],
        &["mbox", "list"],
        &["mbox", "deliver"],
        &["completions"],
    ];
    for command in commands {
        let assert = mailtool().args(command).arg("--help").assert().success();
        let help = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
        if command != ["mbox"] {
            assert!(
                help.contains("Examples:"),
                "{command:?} --help has no examples:\n{help}"
            );
        }
        assert!(help.contains("Usage: mailtool"), "{command:?}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_message() {
    mailtool()
        .args(["mbox", "frobnicate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: unrecognized subcommand 'frobnicate'",
        ));
    mailtool()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn store_comes_from_the_environment_when_not_given() {
    let store = support::TempStore::demo();
    let mut command = assert_cmd::Command::cargo_bin("mailtool").unwrap();
    command
        .env("MAILTOOL_STORE", store.path())
        .args(["mbox", "list", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"user\":\"asterix\""));
}

#[test]
fn closed_stdout_is_not_an_error() {
    let store = support::TempStore::demo();
    // Enough users that the listing overflows the pipe buffer after `head` has quit.
    let mut passwd = std::fs::read_to_string(store.path().join("passwd")).unwrap();
    for i in 0..3000 {
        passwd.push_str(&format!("user{i}:{{PLAIN}}x\n"));
        for sub in ["new", "cur"] {
            std::fs::create_dir_all(store.path().join(format!("user{i}")).join(sub)).unwrap();
        }
    }
    std::fs::write(store.path().join("passwd"), passwd).unwrap();
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            r#""$0" --store "$1" mbox list | head -c 1 >/dev/null; echo "status=${PIPESTATUS[0]}""#,
        )
        .arg(assert_cmd::cargo::cargo_bin("mailtool"))
        .arg(store.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, "", "mailtool complained about the closed pipe");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "status=0\n");
}
