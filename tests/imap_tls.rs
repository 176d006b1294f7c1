//! `imap-unread` over TLS and STARTTLS against Dovecot with a self-signed certificate made
//! here by `openssl req`: trusted with `--ca-file`, refused without it, skipped (and said so)
//! with `--insecure`.

mod support;

use std::path::PathBuf;

use predicates::prelude::*;
use support::dovecot::Dovecot;
use support::imap::{mail, RawImap};
use support::tls::self_signed;
use support::TempStore;

struct Setup {
    store: TempStore,
    dovecot: Dovecot,
    cert: PathBuf,
}

fn start() -> Option<Setup> {
    let store = TempStore::demo();
    let (cert, key) = self_signed(store.scratch());
    let dovecot = Dovecot::start_with_ssl(&store.path(), &cert, &key)?;
    let mut imap = RawImap::login(dovecot.imap_port, "asterix", "potion");
    imap.append("", mail("sealed letter", 500));
    Some(Setup {
        store,
        dovecot,
        cert,
    })
}

impl Setup {
    fn sweep(&self, port: u16) -> assert_cmd::Command {
        self.sweep_host("127.0.0.1", port)
    }

    fn sweep_host(&self, host: &str, port: u16) -> assert_cmd::Command {
        let mut command = self.store.mailtool();
        command
            .env("MAILTOOL_PASSWORD", "potion")
            .args(["imap-unread", "--host", host, "--user", "asterix"])
            .args(["--keep", "--json", "--port", &port.to_string()]);
        command
    }
}

#[test]
fn implicit_tls_trusts_ca_file_and_refuses_an_unknown_certificate() {
    let Some(setup) = start() else { return };
    let imaps = setup.dovecot.imaps_port.unwrap();

    setup
        .sweep(imaps)
        .arg("--tls")
        .arg("--ca-file")
        .arg(&setup.cert)
        .assert()
        .success()
        .stdout(predicate::str::contains("sealed letter"));

    // The same, by host name: the certificate names localhost too.
    setup
        .sweep_host("localhost", imaps)
        .args(["--tls", "--ca-file"])
        .arg(&setup.cert)
        .assert()
        .success();

    setup
        .sweep(imaps)
        .arg("--tls")
        .assert()
        .code(4)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("TLS with 127.0.0.1:"))
        .stderr(predicate::str::contains("certificate"))
        .stderr(predicate::str::contains("--ca-file"));

    setup
        .sweep(imaps)
        .args(["--tls", "--insecure"])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: --insecure"))
        .stdout(predicate::str::contains("sealed letter"));
}

#[test]
fn starttls_upgrades_before_the_password_is_sent() {
    let Some(setup) = start() else { return };
    let assert = setup
        .sweep(setup.dovecot.imap_port)
        .args(["--starttls", "--trace", "--ca-file"])
        .arg(&setup.cert)
        .assert()
        .success()
        .stdout(predicate::str::contains("sealed letter"));
    let trace = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let starttls = trace.find("C: s2 STARTTLS").expect("STARTTLS was sent");
    let login = trace.find("C: a1 LOGIN").expect("then LOGIN");
    assert!(starttls < login, "{trace}");

    setup
        .sweep(setup.dovecot.imap_port)
        .arg("--starttls")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("certificate"));
}

#[test]
fn starttls_fails_when_the_server_does_not_offer_it() {
    let store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    store
        .mailtool()
        .env("MAILTOOL_PASSWORD", "potion")
        .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
        .args(["--starttls", "--port", &dovecot.imap_port.to_string()])
        .assert()
        .code(4)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("does not offer STARTTLS"));
}
