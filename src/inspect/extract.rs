//! `--extract DIR`: writing attachments under safe file names.
//!
//! A file name in a mail is chosen by whoever sent it, so it is treated as hostile: only its
//! last path component is kept, control characters (NUL included) and leading dots are
//! dropped, and its length is capped with the extension kept. The result is always one plain
//! name directly inside DIR. Each file is written to a temporary file in DIR and then linked
//! into place, so a half-written attachment never appears under its name; without `--force`
//! the link refuses to replace anything, and with it a rename replaces the directory entry
//! itself (never following a symbolic link planted there). Two attachments of one run that
//! want the same name get `-1`, `-2`, ... before the extension.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::parse::PartSummary;

/// Longest name written, in bytes: below every common file system's 255, with room for a
/// `-NNN` collision suffix.
pub const MAX_NAME_BYTES: usize = 200;

/// One attachment written to disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The part it came from.
    pub part: Option<String>,
    /// Where it was written.
    pub file: PathBuf,
    /// Octets written.
    pub bytes: u64,
}

/// Writes attachments into one directory for the length of a run.
pub struct Extractor {
    dir: PathBuf,
    force: bool,
    used: HashSet<String>,
}

impl Extractor {
    /// Prepare DIR, creating it when missing.
    ///
    /// # Errors
    /// When DIR cannot be created or is not a directory.
    pub fn new(dir: &Path, force: bool) -> Result<Extractor> {
        fs::create_dir_all(dir).with_context(|| {
            format!("cannot create {} (the --extract directory)", dir.display())
        })?;
        Ok(Extractor {
            dir: dir.to_owned(),
            force,
            used: HashSet::new(),
        })
    }

    /// Write one attachment.
    ///
    /// # Errors
    /// When the file exists and `--force` was not given, or writing fails.
    pub fn write(&mut self, part: &PartSummary, contents: &[u8]) -> Result<Extracted> {
        let wanted = safe_file_name(
            part.filename.as_deref(),
            part.part.as_deref(),
            &part.content_type,
        );
        let name = self.unused_in_run(&wanted);
        let target = self.dir.join(&name);
        let mut temp = tempfile::Builder::new()
            .prefix(".mailtool-extract")
            .tempfile_in(&self.dir)
            .with_context(|| format!("cannot create a file in {}", self.dir.display()))?;
        temp.write_all(contents)
            .and_then(|()| temp.flush())
            .with_context(|| format!("cannot write {}", target.display()))?;
        if self.force {
            temp.persist(&target)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot write {}", target.display()))?;
        } else {
            match temp.persist_noclobber(&target) {
                Ok(_) => {}
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    anyhow::bail!(
                        "{} already exists (not overwritten; add --force to replace it)",
                        target.display()
                    )
                }
                Err(e) => {
                    return Err(e.error)
                        .with_context(|| format!("cannot write {}", target.display()))
                }
            }
        }
        self.used.insert(name);
        Ok(Extracted {
            part: part.part.clone(),
            file: target,
            bytes: contents.len() as u64,
        })
    }

    /// `name`, or `name-1.ext`, `name-2.ext`, ... if an earlier attachment of this run took it.
    fn unused_in_run(&self, name: &str) -> String {
        if !self.used.contains(name) {
            return name.to_owned();
        }
        let (stem, extension) = split_extension(name);
        (1..)
            .map(|n| format!("{stem}-{n}{extension}"))
            .find(|candidate| !self.used.contains(candidate))
            .expect("an unbounded counter finds a free name")
    }
}

/// A file name that is safe to create directly inside a directory: never empty, never `.` or
/// `..`, no `/`, no control characters, no leading dot, at most [`MAX_NAME_BYTES`] bytes.
/// Without a usable name, one is made from the part number and media type
/// (`part-2.pdf`).
pub fn safe_file_name(name: Option<&str>, part: Option<&str>, content_type: &str) -> String {
    let cleaned = name.map(clean).unwrap_or_default();
    let name = if cleaned.is_empty() {
        format!(
            "part-{}.{}",
            part.unwrap_or("0").replace('.', "-"),
            extension_for(content_type)
        )
    } else {
        cleaned
    };
    cap_length(&name)
}

fn clean(name: &str) -> String {
    // Both separators: a name made on Windows still must not climb directories.
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = last.chars().filter(|c| !c.is_control()).collect();
    kept.trim()
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_owned()
}

fn cap_length(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let (stem, extension) = split_extension(name);
    let extension = if extension.len() <= 16 { extension } else { "" };
    let mut budget = MAX_NAME_BYTES - extension.len();
    while !stem.is_char_boundary(budget.min(stem.len())) {
        budget -= 1;
    }
    format!("{}{extension}", &stem[..budget.min(stem.len())])
}

/// (`stem`, `.ext`); the extension is empty when there is none.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    }
}

fn extension_for(content_type: &str) -> &'static str {
    match content_type {
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "message/rfc822" | "message/global" => "eml",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/json" => "json",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_names() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("/abs/path.txt", "path.txt"),
            ("a\0b.txt", "ab.txt"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("...hidden", "hidden"),
            ("..", "part-2.bin"),
            ("dir/", "part-2.bin"),
            ("\u{1b}[31mred.txt", "[31mred.txt"),
            ("  spaced name.pdf  ", "spaced name.pdf"),
        ];
        for (hostile, expected) in cases {
            assert_eq!(
                safe_file_name(Some(hostile), Some("2"), "application/octet-stream"),
                expected,
                "{hostile:?}"
            );
        }
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.txt", "é".repeat(300));
        let safe = safe_file_name(Some(&long), Some("1"), "text/plain");
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert!(safe.ends_with("é.txt"), "{safe}");
    }

    #[test]
    fn nameless_parts_get_a_name_from_their_number_and_type() {
        assert_eq!(
            safe_file_name(None, Some("2.1"), "message/rfc822"),
            "part-2-1.eml"
        );
        assert_eq!(safe_file_name(Some(""), None, "image/png"), "part-0.png");
    }
}
