//! The crate as a user gets it: one version everywhere (Cargo.toml, `--version`, POP3's CAPA,
//! IMAP's ID, the CHANGELOG), and `cargo install --path .` into a fresh directory giving a
//! binary whose `serve --demo` takes a POP3 and an IMAP login.
//!
//! The install builds in the test's own target directory with the dev profile (`--debug`)
//! and `--offline`, so it reuses what `cargo test` has already built and needs no network;
//! `cargo package` itself runs in CI (`.ci/run`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::imap::RawImap;
use support::pop3::{PopClient, PopServer};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn the_version_is_the_same_everywhere() {
    let output = support::mailtool(Path::new("unused"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("mailtool {VERSION}\n")
    );
    let changelog =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("CHANGELOG.md"))
            .unwrap();
    // Changes not released yet go under "## [Unreleased]" on top, as Keep a Changelog has it;
    // the latest release below it is the version Cargo.toml names.
    let latest = changelog
        .lines()
        .find(|l| l.starts_with("## [") && !l.starts_with("## [Unreleased]"))
        .expect("a release heading in CHANGELOG.md");
    assert!(
        latest.starts_with(&format!("## [{VERSION}] - ")),
        "CHANGELOG.md's latest entry is {latest:?}, Cargo.toml says {VERSION}"
    );
}

/// Where `cargo test` builds: `$CARGO_TARGET_DIR`, else three levels above this test's
/// executable (`TARGET/debug/deps/package-HASH`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

#[test]
fn cargo_install_gives_a_binary_that_serves_the_demo_store() {
    let root = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let install = Command::new(cargo)
        .args([
            "install",
            "--quiet",
            "--debug",
            "--offline",
            "--locked",
            "--path",
        ])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(root.path())
        .arg("--target-dir")
        .arg(target_dir())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "cargo install failed:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    eprintln!("cargo install took {:?}", started.elapsed());
    let binary = root.path().join("bin/mailtool");
    assert!(binary.is_file(), "no {}", binary.display());

    // The installed binary, far from the checkout: --demo needs nothing but itself.
    let far = tempfile::tempdir().unwrap();
    let mut command = Command::new(&binary);
    command.current_dir(far.path()).env_clear();
    let mut server = PopServer::spawn_as(
        command,
        &[
            "serve",
            "--demo",
            "--pop-port",
            "0",
            "--imap-port",
            "0",
            "--smtp-port",
            "0",
        ],
        &[],
    );
    let imap_line = server.stdout_line();
    let imap_port: u16 = imap_line
        .strip_suffix(" (imap)\n")
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no IMAP address in {imap_line:?}"));
    let smtp_line = server.stdout_line();
    assert!(smtp_line.ends_with(" (smtp)\n"), "{smtp_line:?}");
    assert_eq!(server.stdout_line(), "demo user asterix password potion\n");

    let mut pop = PopClient::connect(server.addr());
    let capa = pop.capa();
    assert!(
        capa.contains(&format!("IMPLEMENTATION mailtool-{VERSION}")),
        "{capa:?}"
    );
    pop.login("asterix", "potion");
    assert_eq!(pop.stat().0, 8);
    assert!(pop.command("QUIT").starts_with("+OK"));

    let mut imap = RawImap::login(imap_port, "obelix", "menhir");
    let id = imap.command("ID NIL");
    let id_text: String = id
        .untagged
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        id_text.contains(&format!("\"version\" \"{VERSION}\"")),
        "{id_text}"
    );
    let reply = imap.command("SELECT INBOX");
    assert!(
        reply
            .untagged
            .iter()
            .any(|l| l.as_slice() == b"* 4 EXISTS\r\n"),
        "SELECT INBOX: {}",
        reply.status
    );
    server.kill();
    assert!(server.wait_timeout(Duration::from_secs(10)).is_some());
}
