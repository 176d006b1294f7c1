//! One fetched mail as the sweeper prints it: a readable block, a JSON object, or its exact
//! source in mboxrd framing.
//!
//! Parsing is `inspect`'s bounded MIME walk (over mailparse); this module only picks what a
//! person reading their unread mail needs (who, when, what, the text, which attachments) and keeps hostile bytes off the
//! terminal: control characters in headers and text are replaced before they are shown.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use mailparse::MailHeaderMap;
use serde::Serialize;

use crate::inspect::{join_addresses, ParsedMessage, PartSummary};
use crate::mboxrd::MboxWriter;

/// An attachment, listed by name and decoded size.
#[derive(Debug, Serialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// One mail, as `imap-unread` prints it.
#[derive(Debug, Serialize)]
pub struct MailRecord {
    pub uid: u32,
    pub message_id: Option<String>,
    pub from: String,
    pub to: String,
    pub date: Option<String>,
    pub subject: String,
    /// The text/plain body decoded to UTF-8; for HTML-only mail, the HTML.
    pub text: String,
    /// True when the mail has no text/plain part and `text` holds its HTML.
    pub html_only: bool,
    pub attachments: Vec<Attachment>,
    /// The mail's size in octets, as the server sent it.
    pub size: usize,
}

impl MailRecord {
    /// Build the record of a mail's source. Never fails and never recurses without bound:
    /// it uses `inspect`'s capped MIME walk, so a hostile mail is still printed (and can then
    /// be deleted) instead of overflowing the stack.
    pub fn from_source(uid: u32, source: &[u8]) -> MailRecord {
        let parsed = ParsedMessage::parse(source);
        let summary = parsed.summary();
        let is_leaf = |p: &&PartSummary| !p.content_type.starts_with("multipart/");
        let inline_text = |kind: &str| {
            summary
                .parts
                .iter()
                .filter(is_leaf)
                .any(|p| !p.attachment && p.content_type == kind)
        };
        let html_only = !inline_text("text/plain") && inline_text("text/html");
        let text = parsed.text_body().unwrap_or_else(|| {
            // A multipart whose boundary never appears has no parts: its body is all there is.
            if summary.parts.iter().any(|p| is_leaf(&p)) {
                String::new()
            } else {
                String::from_utf8_lossy(body_after_headers(source)).replace("\r\n", "\n")
            }
        });
        let attachments = summary
            .parts
            .iter()
            .filter(|p| p.attachment)
            .map(|p| Attachment {
                name: p
                    .filename
                    .clone()
                    .unwrap_or_else(|| format!("(unnamed {})", p.content_type)),
                content_type: p.content_type.clone(),
                size: p.size as usize,
            })
            .collect();
        MailRecord {
            uid,
            message_id: summary.message_id,
            from: join_addresses(&summary.from),
            to: join_addresses(&summary.to),
            date: summary.date,
            subject: summary.subject.unwrap_or_default(),
            text,
            html_only,
            attachments,
            size: source.len(),
        }
    }
}

/// The message body as sent: what follows its header block.
fn body_after_headers(source: &[u8]) -> &[u8] {
    mailparse::parse_headers(source).map_or(source, |(_, end)| &source[end..])
}

/// Replace control characters (terminal escapes included) except newline and tab.
fn printable(text: &str) -> Cow<'_, str> {
    let unwanted = |c: char| c.is_control() && c != '\n' && c != '\t';
    // Most text has no control character at all: check bytes first (C0 and DEL are single
    // bytes, C1 controls are U+0080..U+009F, encoded 0xC2 0x80..0x9F).
    let bytes = text.as_bytes();
    let suspicious = bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && b != b'\n' && b != b'\t')
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
    });
    if !suspicious {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if unwanted(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

fn one_line(text: &str) -> String {
    printable(&text.replace(['\r', '\n'], " ")).into_owned()
}

impl fmt::Display for MailRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "==================== UID {} ({} bytes) ====================",
            self.uid, self.size
        )?;
        writeln!(f, "From:    {}", one_line(&self.from))?;
        writeln!(f, "To:      {}", one_line(&self.to))?;
        writeln!(
            f,
            "Date:    {}",
            one_line(self.date.as_deref().unwrap_or("(none)"))
        )?;
        writeln!(f, "Subject: {}", one_line(&self.subject))?;
        writeln!(f)?;
        if self.html_only {
            writeln!(f, "[This mail has no plain-text part; its HTML follows.]")?;
        }
        let text = printable(&self.text);
        f.write_str(&text)?;
        if !text.ends_with('\n') {
            writeln!(f)?;
        }
        if !self.attachments.is_empty() {
            writeln!(f)?;
            writeln!(f, "Attachments:")?;
            for attachment in &self.attachments {
                writeln!(
                    f,
                    "  {} ({}, {} bytes)",
                    one_line(&attachment.name),
                    attachment.content_type,
                    attachment.size
                )?;
            }
        }
        writeln!(f)
    }
}

/// The mboxrd entry of one mail: a `From sender date` line, the quoted source, a blank line.
///
/// The sender is the Return-Path, else the first From address, else `MAILER-DAEMON`; the date
/// is the server's INTERNALDATE (when the mail arrived), else now.
pub fn mboxrd_entry(source: &[u8], internal_date: Option<DateTime<FixedOffset>>) -> Vec<u8> {
    let sender = envelope_sender(source).unwrap_or_default();
    let date = internal_date
        .map(|date| date.with_timezone(&Utc))
        .unwrap_or_else(|| DateTime::<Utc>::from(std::time::SystemTime::now()));
    let asctime = date.format("%a %b %e %H:%M:%S %Y").to_string();
    let mut writer = MboxWriter::new(Vec::with_capacity(source.len() + 128));
    writer
        .write_message(&sender, &asctime, source)
        .expect("writing to memory cannot fail");
    writer.into_inner()
}

fn envelope_sender(source: &[u8]) -> Option<String> {
    let (headers, _) = mailparse::parse_headers(source).ok()?;
    if let Some(path) = headers.get_first_value("Return-Path") {
        let path = path.trim().trim_start_matches('<').trim_end_matches('>');
        if !path.is_empty() && !path.contains(char::is_whitespace) {
            return Some(path.to_owned());
        }
    }
    let from = headers.get_first_header("From")?;
    let addresses = mailparse::addrparse_header(from).ok()?;
    addresses
        .into_inner()
        .into_iter()
        .find_map(|address| match address {
            mailparse::MailAddr::Single(single) => Some(single.addr),
            mailparse::MailAddr::Group(group) => group.addrs.into_iter().next().map(|s| s.addr),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_mail_gives_text_and_attachments() {
        let source = b"From: Asterix <asterix@gaul.example>\r\n\
To: obelix@gaul.example\r\n\
Subject: =?utf-8?q?Potion_=C3=A0_boire?=\r\n\
Message-ID: <1@gaul.example>\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 \x1b[31mrouge\r\n\
--b\r\n\
Content-Type: application/pdf; name=plan.pdf\r\n\
Content-Disposition: attachment; filename=plan.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8=\r\n\
--b--\r\n";
        let record = MailRecord::from_source(9, source);
        assert_eq!(record.subject, "Potion à boire");
        assert!(record.text.starts_with("Café "), "{:?}", record.text);
        assert!(!record.html_only);
        assert_eq!(record.attachments.len(), 1);
        assert_eq!(record.attachments[0].name, "plan.pdf");
        assert_eq!(record.attachments[0].size, 5);
        assert_eq!(record.message_id.as_deref(), Some("<1@gaul.example>"));
        let shown = record.to_string();
        assert!(shown.contains("plan.pdf (application/pdf, 5 bytes)"));
    }

    #[test]
    fn terminal_escapes_never_reach_the_screen() {
        let source = b"Subject: \x1b]0;pwned\x07hi\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
red \x1b[31malert\ttab\r\n";
        let shown = MailRecord::from_source(1, source).to_string();
        assert!(
            !shown.contains('\x1b') && !shown.contains('\x07'),
            "{shown:?}"
        );
        assert!(shown.contains("red \u{FFFD}[31malert\ttab\n"), "{shown:?}");
    }

    #[test]
    fn broken_mails_still_show_what_they_carry() {
        let no_boundary = include_bytes!("../../testdata/mail/missing-boundary.eml");
        let record = MailRecord::from_source(1, no_boundary);
        assert!(record.text.contains("La la la"), "{:?}", record.text);
        let bad_base64 = include_bytes!("../../testdata/mail/bad-base64.eml");
        let record = MailRecord::from_source(2, bad_base64);
        let attachment = &record.attachments[0];
        assert_eq!(attachment.name, "recipe.bin");
        assert!(
            attachment.size > 0,
            "the octets as sent, since they do not decode"
        );
    }

    #[test]
    fn thousands_deep_nesting_is_printed_not_a_stack_overflow() {
        let mut source = b"Subject: deep\r\n".to_vec();
        for level in 0..3000 {
            source.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n")
                    .as_bytes(),
            );
        }
        source.extend_from_slice(b"Content-Type: text/plain\r\n\r\nbottom\r\n");
        // A thread's default 2 MiB stack: an unbounded recursion would overflow it.
        let record = std::thread::spawn(move || MailRecord::from_source(7, &source))
            .join()
            .expect("no panic, no overflow");
        assert_eq!(record.subject, "deep");
        assert_eq!(record.uid, 7);
    }

    #[test]
    fn printable_replaces_exactly_the_control_characters() {
        assert!(matches!(printable("Café\tà\nOK"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\u{1b}b\u{7f}c\u{85}d\u{a0}e\r"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{a0}e\u{FFFD}"
        );
    }

    #[test]
    fn html_only_mail_is_flagged() {
        let source = b"Subject: x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n";
        let record = MailRecord::from_source(1, source);
        assert!(record.html_only);
        assert!(record.text.contains("<p>hi</p>"));
        assert!(record.to_string().contains("no plain-text part"));
    }

    #[test]
    fn mbox_entry_uses_return_path_then_from_and_asctime() {
        let date = DateTime::parse_from_rfc3339("2026-11-06T09:05:03+01:00").unwrap();
        let entry = mboxrd_entry(
            b"Return-Path: <bounce@x.example>\r\nFrom: a@b.example\r\n\r\nFrom me\r\n",
            Some(date),
        );
        assert_eq!(
            entry,
            b"From bounce@x.example Fri Nov  6 08:05:03 2026\n\
Return-Path: <bounce@x.example>\r\nFrom: a@b.example\r\n\r\n>From me\r\n\n"
        );
        let entry = mboxrd_entry(b"From: Idefix <idefix@x.example>\r\n\r\nwoof\r\n", None);
        assert!(entry.starts_with(b"From idefix@x.example "));
    }
}
