//! The servers' TLS: loading the certificate and key for STARTTLS (STLS) and the implicit-TLS
//! ports, and the handshake.
//!
//! It is OpenSSL through the openssl crate, set up with Mozilla's current "intermediate"
//! profile (TLS 1.2 and 1.3). native-tls would be the obvious wrapper, but its server side
//! builds on the older profile that switches TLS 1.3 off, with no way to turn it back on.
//! Going to OpenSSL directly also lets the key be in any unencrypted PEM form Dovecot takes
//! (PKCS#8, PKCS#1 RSA, SEC1 EC).
//!
//! The files are checked at startup, before binding, and each problem gets a one-line error
//! naming the file and the fix: OpenSSL's own errors name ASN.1 internals, and a key that
//! does not belong to the certificate would only show up as every handshake failing.

use std::path::Path;
use std::pin::Pin;

use anyhow::{anyhow, Context, Result};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection after its TLS handshake.
pub type TlsStream<S> = tokio_openssl::SslStream<S>;

/// The server's TLS configuration, shared by every connection.
#[derive(Clone)]
pub struct TlsAcceptor(SslAcceptor);

impl TlsAcceptor {
    /// Run the server side of the handshake over `stream`.
    ///
    /// # Errors
    /// The client broke off, spoke something else, or offered nothing we accept.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<TlsStream<S>, String> {
        let ssl = Ssl::new(self.0.context()).map_err(|error| error.to_string())?;
        let mut stream = TlsStream::new(ssl, stream).map_err(|error| error.to_string())?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|error| error.to_string())?;
        Ok(stream)
    }
}

/// Read `cert` (PEM chain, server certificate first) and `key` (unencrypted PEM private
/// key) and build the acceptor every TLS connection uses.
///
/// # Errors
/// A file cannot be read, holds no certificate or no usable private key, the key is
/// encrypted, or it does not belong to the certificate.
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
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(anyhow!(
            "no certificate found (expected a PEM file with -----BEGIN CERTIFICATE-----)"
        ))
        .with_context(cert_context);
    };

    let private_key = read_private_key(&key_file, key).with_context(key_context)?;
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

    let setup_context = || {
        format!(
            "cannot set up TLS with certificate {} and key {}",
            cert.display(),
            key.display()
        )
    };
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .with_context(setup_context)?;
    acceptor
        .set_certificate(leaf)
        .and_then(|()| acceptor.set_private_key(&private_key))
        .and_then(|()| {
            intermediates
                .iter()
                .try_for_each(|extra| acceptor.add_extra_chain_cert(extra.clone()))
        })
        .and_then(|()| acceptor.check_private_key())
        .with_context(setup_context)?;
    Ok(TlsAcceptor(acceptor.build()))
}

/// The first private key of `file`, unencrypted PEM in any form OpenSSL reads (PKCS#8,
/// PKCS#1 RSA, SEC1 EC); text before it, such as a certificate or OpenSSL's "Bag
/// Attributes", is skipped.
///
/// # Errors
/// No private key, an encrypted one (a server cannot ask for its passphrase), a kind
/// OpenSSL does not read, or a damaged block.
fn read_private_key(file: &[u8], path: &Path) -> Result<PKey<Private>> {
    let block = private_key_block(file, path)?;
    // A callback that gives no passphrase, so OpenSSL can never stop to prompt for one on
    // the server's terminal.
    PKey::private_key_from_pem_callback(block, |_| Ok(0)).map_err(|_| {
        anyhow!("the key is damaged (its PEM block does not decode; make or copy it again)")
    })
}

/// The first private-key PEM block of `file`, if it is one the servers can use.
fn private_key_block<'a>(file: &'a [u8], path: &Path) -> Result<&'a [u8]> {
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
        let encrypted = || {
            anyhow!(
                "it is encrypted, and the server cannot ask for its passphrase (write a decrypted copy that only the server can read: openssl pkey -in {path} -out {path}.plain, then use {path}.plain)"
            )
        };
        let block = &file[start..];
        // Only this block's own headers count, not a later block of the same file.
        let this_block =
            memchr::memmem::find(block, b"-----END ").map_or(block, |end| &block[..end]);
        return match label.as_ref() {
            "ENCRYPTED PRIVATE KEY" => Err(encrypted()),
            // A traditional PKCS#1 or SEC1 key encrypted by OpenSSL says so in a header.
            "RSA PRIVATE KEY" | "EC PRIVATE KEY"
                if memchr::memmem::find(this_block, b"Proc-Type: 4,ENCRYPTED").is_some() =>
            {
                Err(encrypted())
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => Ok(block),
            other => Err(anyhow!(
                "a {} is not supported (mailtool reads PEM keys: BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)",
                super::escape_controls(other)
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

    fn block(file: &str) -> Result<&[u8]> {
        private_key_block(file.as_bytes(), Path::new("k.pem"))
    }

    fn problem(file: &str) -> String {
        format!("{:#}", block(file).unwrap_err())
    }

    #[test]
    fn the_key_block_is_found_after_other_text_in_each_plain_form() {
        let file = "Bag Attributes\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        assert!(block(file)
            .unwrap()
            .starts_with(b"-----BEGIN PRIVATE KEY-----\nBBBB"));
        for label in ["RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let file = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            assert!(block(&file).is_ok(), "{label}");
        }
    }

    #[test]
    fn encrypted_and_foreign_keys_say_what_to_do() {
        let encrypted = problem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n");
        assert!(encrypted.contains("passphrase"), "{encrypted}");
        assert!(
            encrypted.contains("openssl pkey -in k.pem -out k.pem.plain"),
            "{encrypted}"
        );
        let legacy = problem(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n",
        );
        assert!(legacy.contains("passphrase"), "{legacy}");
        assert!(problem("-----BEGIN OPENSSH PRIVATE KEY-----\n").contains("OPENSSH"));
        assert!(problem("garbage").starts_with("no private key found"));
        assert!(problem("-----BEGIN CERTIFICATE-----\n").starts_with("no private key found"));
    }
}
