//! Test certificates: a fresh self-signed certificate per test, made by `openssl req`, so that
//! no key is committed and every TLS test (serve-pop's STLS and POP3S, imap-unread against
//! Dovecot) trusts exactly the certificate it made.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for localhost and 127.0.0.1 in `dir`: (cert.pem, key.pem), the
/// key unencrypted in PKCS#8.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let output = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
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
