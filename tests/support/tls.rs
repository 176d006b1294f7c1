//! Test certificates: a fresh self-signed certificate per test, made by `openssl req`, so that
//! no key is committed and every TLS test (serve-pop's STLS and POP3S, imap-unread against
//! Dovecot) trusts exactly the certificate it made.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for localhost and 127.0.0.1 in `dir`: (cert.pem, key.pem), the
/// key RSA, unencrypted in PKCS#8.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(dir, "", &["-newkey", "rsa:2048"])
}

/// The same with a P-256 EC key: (ec-cert.pem, ec-key.pem).
#[allow(dead_code)] // not every test binary uses it
pub fn self_signed_ec(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(
        dir,
        "ec-",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    )
}

fn self_signed_with(dir: &Path, prefix: &str, new_key: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{prefix}cert.pem"));
    let key = dir.join(format!("{prefix}key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2"])
        .args(new_key)
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}
