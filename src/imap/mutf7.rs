//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding of mailbox names on the wire in IMAP4rev1.
//! The store speaks UTF-8; the session converts at its edge.

use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;

fn base64() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols
            .push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,");
        spec.check_trailing_bits = false;
        spec.encoding().expect("valid base64 specification")
    })
}

/// A UTF-8 name as it goes on the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&base64().encode(&bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A wire name in UTF-8, or `None` when it is not valid modified UTF-7.
pub fn decode(wire: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'&' => {
                let end = rest.iter().position(|&b| b == b'-')?;
                let encoded = &rest[..end];
                rest = &rest[end + 1..];
                if encoded.is_empty() {
                    out.push('&');
                    continue;
                }
                let bytes = base64().decode(encoded).ok()?;
                if bytes.len() % 2 != 0 {
                    return None;
                }
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect();
                let decoded = String::from_utf16(&units).ok()?;
                // A shift must not encode what could be written directly.
                if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                    return None;
                }
                out.push_str(&decoded);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (utf8, wire) in [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("A & B", "A &- B"),
            ("日本語", "&ZeVnLIqe-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(encode(utf8), wire);
            assert_eq!(decode(wire.as_bytes()).as_deref(), Some(utf8));
        }
    }

    #[test]
    fn rejects_malformed() {
        for wire in [&b"&"[..], b"&Jjo", b"&AGE-", b"caf\xc3\xa9", b"&2D0-"] {
            assert_eq!(decode(wire), None, "{wire:?}");
        }
    }
}
