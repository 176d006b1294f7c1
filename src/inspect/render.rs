//! The human view of `inspect`: a header block and an indented MIME tree per message (in the
//! spirit of mblaze's `mshow -t`), or one line per message for mailboxes.
//!
//! Everything printed comes from a stranger, so control characters are shown escaped
//! (`\u{1b}`), never sent to the terminal: a subject cannot move the cursor or recolour the
//! screen.

use std::borrow::Cow;
use std::fmt::{self, Display, Formatter, Write};

use super::parse::{join_addresses, Address, PartSummary};
use super::{Inspected, View};

impl Display for Inspected {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.view {
            View::Full => self.full(f),
            View::Line => self.line(f),
        }
    }
}

impl Inspected {
    fn full(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let summary = &self.summary;
        write!(f, "{} ({} bytes", escape(&self.path), self.size)?;
        if let Some(user) = &self.user {
            write!(f, ", user {user}")?;
        }
        if !self.flags.is_empty() {
            write!(f, ", {}", self.flags.join(" "))?;
        }
        writeln!(f, ")")?;
        field(f, "From", &addresses(&summary.from))?;
        field(f, "To", &addresses(&summary.to))?;
        if !summary.cc.is_empty() {
            field(f, "Cc", &addresses(&summary.cc))?;
        }
        field(f, "Subject", summary.subject.as_deref().unwrap_or("(none)"))?;
        let date = match (&summary.date, &summary.date_utc) {
            (Some(date), Some(utc)) => format!("{date} ({utc})"),
            (Some(date), None) => format!("{date} (unparsable)"),
            (None, _) => "(none)".into(),
        };
        field(f, "Date", &date)?;
        field(
            f,
            "Message-ID",
            summary.message_id.as_deref().unwrap_or("(none)"),
        )?;
        for part in &summary.parts {
            tree_line(f, part)?;
        }
        for warning in &summary.warnings {
            writeln!(f, "warning: {}", escape(warning))?;
        }
        if let Some(headers) = &self.headers {
            writeln!(f, "--- headers ---")?;
            for header in headers {
                writeln!(f, "{}: {}", escape(&header.name), escape(&header.value))?;
            }
        }
        if self.options.body {
            writeln!(f, "--- body ---")?;
            match &self.body {
                Some(body) => {
                    let text = escape_text(body);
                    f.write_str(&text)?;
                    if !text.ends_with('\n') {
                        f.write_char('\n')?;
                    }
                }
                None => writeln!(f, "(no text part)")?,
            }
        }
        if let Some(extracted) = &self.extracted {
            for file in extracted {
                writeln!(
                    f,
                    "extracted part {} to {} ({} bytes)",
                    file.part.as_deref().unwrap_or("?"),
                    escape(&file.file.display().to_string()),
                    file.bytes
                )?;
            }
        }
        writeln!(f)
    }

    fn line(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let summary = &self.summary;
        if let Some(user) = &self.user {
            write!(f, "{:<12} ", fit(user, 12))?;
        }
        let letters: String = self
            .flags
            .iter()
            .map(|name| name.chars().next().unwrap_or('?'))
            .collect();
        let date = summary.date_utc.as_deref().map_or_else(
            || "-".to_owned(),
            |d| d.get(..16).unwrap_or(d).replace('T', " "),
        );
        let from = summary
            .from
            .first()
            .map_or("-", |a| a.name.as_deref().unwrap_or(&a.address));
        let subject = summary.subject.as_deref().unwrap_or("(no subject)");
        write!(
            f,
            "{:<4} {:<16}  {:<24}  {:<50} {:>6}",
            if letters.is_empty() { "-" } else { &letters },
            date,
            fit(from, 24),
            fit(subject, 50),
            human_size(self.size),
        )?;
        match summary.attachments {
            0 => {}
            1 => write!(f, "  1 attachment")?,
            n => write!(f, "  {n} attachments")?,
        }
        if !summary.warnings.is_empty() {
            write!(f, "  [{} warnings]", summary.warnings.len())?;
        }
        writeln!(f)
    }
}

fn field(f: &mut Formatter<'_>, name: &str, value: &str) -> fmt::Result {
    writeln!(f, "{:<11} {}", format!("{name}:"), escape(value))
}

fn addresses(list: &[Address]) -> String {
    if list.is_empty() {
        return "(none)".into();
    }
    join_addresses(list)
}

fn tree_line(f: &mut Formatter<'_>, part: &PartSummary) -> fmt::Result {
    write!(f, "{:indent$}", "", indent = 2 + 2 * part.depth)?;
    if let Some(number) = &part.part {
        write!(f, "{number}: ")?;
    }
    f.write_str(&escape(&part.content_type))?;
    if let Some(charset) = &part.charset {
        write!(f, " charset={}", escape(charset))?;
    }
    if !matches!(part.encoding.as_str(), "7bit" | "8bit" | "binary") {
        write!(f, " {}", escape(&part.encoding))?;
    }
    write!(f, " size={}", part.size)?;
    if let Some(disposition) = &part.disposition {
        write!(f, " {}", escape(disposition))?;
    }
    if let Some(name) = &part.filename {
        write!(f, " name=\"{}\"", escape(name))?;
    }
    writeln!(f)
}

/// One-line text with every control character escaped.
fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Multi-line text: line ends and tabs stay, other control characters are escaped.
fn escape_text(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `width` characters, escaped, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    let text = escape(text);
    if text.chars().count() <= width {
        return text.into_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1000 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape_text("l1\nl2\t\r"), "l1\nl2\t\\u{d}");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_size(402), "402");
        assert_eq!(human_size(20566), "20K");
        assert_eq!(human_size(1536), "1.5K");
    }
}
