//! Loading the server's certificate and key for STLS and the POP3S port.
//!
//! native-tls takes a PEM certificate chain and a PKCS#8 PEM key, and reports anything else
//! as "expected PKCS#8 PEM", or not at all: a key that does not belong to the certificate is
//! silently dropped by OpenSSL and every handshake fails later. So the files are checked here,
//! at startup and before binding, and each problem gets a one-line error naming the file and
//! the fix (for a PKCS#1 or SEC1 key, the exact `openssl pkcs8` command that converts it).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use openssl::pkey::PKey;
use openssl::x509::X509;
use tokio_native_tls::TlsAcceptor;

/// Read `cert` (PEM chain, server certificate first) and `key` (PKCS#8 PEM) and build the
/// acceptor every TLS connection uses.
///
/// # Errors
/// A file cannot be read, holds no certificate or no usable private key, the key is not
/// PKCS#8 or is encrypted, or it does not belong to the certificate.
pub fn load_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let cert_context = || format!("cannot load TLS certificate {}", cert.display());
    let key_context = || format!("cannot load TLS key {}", key.display());
    let cert_pem = std::fs::read(cert).with_context(cert_context)?;
    let key_file = std::fs::read(key).with_context(key_context)?;

    // OpenSSL's error stack names ASN.1 internals, not the problem, so it is left out.
    let chain = X509::stack_from_pem(&cert_pem)
        .map_err(|_| {
            anyhow!("a certificate in it is damaged (its PEM block does not decode; make or copy it again)")
        })
        .with_context(cert_context)?;
    let Some(leaf) = chain.first() else {
        return Err(anyhow!(
            "no certificate found (expected a PEM file with -----BEGIN CERTIFICATE-----)"
        ))
        .with_context(cert_context);
    };

    let key_pem = pkcs8_block(&key_file, key).with_context(key_context)?;
    let private_key = PKey::private_key_from_pem(key_pem)
        .map_err(|_| {
            anyhow!("the key is damaged (its PEM block does not decode; make or copy it again)")
        })
        .with_context(key_context)?;
    let public_key = leaf
        .public_key()
        .map_err(|_| anyhow!("its public key is of a kind OpenSSL cannot read"))
        .with_context(cert_context)?;
    if !public_key.public_eq(&private_key) {
        return Err(anyhow!(
            "it does not belong to the certificate {} (give the key the certificate was made with)",
            cert.display()
        ))
        .with_context(key_context);
    }

    let identity = native_tls::Identity::from_pkcs8(&cert_pem, key_pem).with_context(|| {
        format!(
            "cannot use TLS certificate {} with key {}",
            cert.display(),
            key.display()
        )
    })?;
    let acceptor = native_tls::TlsAcceptor::new(identity).with_context(|| {
        format!(
            "cannot set up TLS with certificate {} and key {}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(TlsAcceptor::from(acceptor))
}

/// The first private-key PEM block of `file`, which must be an unencrypted PKCS#8 one
/// (`-----BEGIN PRIVATE KEY-----`); text before it, such as a certificate or OpenSSL's "Bag
/// Attributes", is skipped.
///
/// # Errors
/// No private key, or a key in another format, with the command that converts it.
fn pkcs8_block<'a>(file: &'a [u8], path: &Path) -> Result<&'a [u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut search = 0;
    while let Some(found) = memchr::memmem::find(&file[search..], BEGIN) {
        let start = search + found;
        let label_start = start + BEGIN.len();
        let Some(label_length) = memchr::memmem::find(&file[label_start..], b"-----") else {
            break;
        };
        let label = String::from_utf8_lossy(&file[label_start..label_start + label_length]);
        search = label_start + label_length;
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let path = path.display();
        let command = format!("openssl pkcs8 -topk8 -nocrypt -in {path} -out {path}.pkcs8");
        let convert = |what: &str| {
            anyhow!(
                "it is {what}, and serve-pop reads PKCS#8 keys (convert it: {command}, then use {path}.pkcs8)"
            )
        };
        return match label.as_ref() {
            "PRIVATE KEY" => Ok(&file[start..]),
            "RSA PRIVATE KEY" => Err(convert("a PKCS#1 RSA key (BEGIN RSA PRIVATE KEY)")),
            "EC PRIVATE KEY" => Err(convert("a SEC1 EC key (BEGIN EC PRIVATE KEY)")),
            "ENCRYPTED PRIVATE KEY" => Err(anyhow!(
                "it is encrypted, and the server cannot ask for its passphrase (write a decrypted copy that only the server can read: {command}, then use {path}.pkcs8)"
            )),
            other => Err(anyhow!(
                "a {} is not supported (serve-pop reads PKCS#8 keys: -----BEGIN PRIVATE KEY-----)",
                crate::pop3::protocol::escape_controls(other)
            )),
        };
    }
    Err(anyhow!(
        "no private key found (expected a PEM file with -----BEGIN PRIVATE KEY-----)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(file: &str) -> String {
        format!(
            "{:#}",
            pkcs8_block(file.as_bytes(), Path::new("k.pem")).unwrap_err()
        )
    }

    #[test]
    fn the_pkcs8_block_is_found_after_other_text() {
        let file = "Bag Attributes\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        let block = pkcs8_block(file.as_bytes(), Path::new("k.pem")).unwrap();
        assert!(block.starts_with(b"-----BEGIN PRIVATE KEY-----\nBBBB"));
    }

    #[test]
    fn other_key_formats_name_the_conversion() {
        let pkcs1 =
            problem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
        assert!(pkcs1.contains("PKCS#1"), "{pkcs1}");
        assert!(
            pkcs1.contains("openssl pkcs8 -topk8 -nocrypt -in k.pem -out k.pem.pkcs8"),
            "{pkcs1}"
        );
        assert!(problem("-----BEGIN EC PRIVATE KEY-----\n").contains("SEC1 EC key"));
        assert!(problem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n").contains("passphrase"));
        assert!(problem("-----BEGIN OPENSSH PRIVATE KEY-----\n").contains("OPENSSH"));
        assert!(problem("garbage").starts_with("no private key found"));
        assert!(problem("-----BEGIN CERTIFICATE-----\n").starts_with("no private key found"));
    }
}
