//! IMAP keywords as Dovecot keeps them in a Maildir: `dovecot-keywords` maps indexes 0 to 25
//! to names, and a message's keywords are the lowercase letters `a` (index 0) to `z` after
//! its system flags in `:2,`.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lock::{DotLock, DotLockSettings};
use super::{Maildir, Result, StoreError};

/// The keyword names of one Maildir, by letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// The keyword a flag letter stands for.
    pub fn name_of(&self, letter: char) -> Option<&str> {
        let index = (letter as u32).checked_sub('a' as u32)? as usize;
        self.names.get(index)?.as_deref()
    }

    /// The letter of a keyword, compared without regard to case.
    pub fn letter_of(&self, name: &str) -> Option<char> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|i| char::from_u32('a' as u32 + i as u32))
    }

    /// Every defined keyword name, by index.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|n| n.as_deref())
    }
}

const KEYWORDS: &str = "dovecot-keywords";
/// Dovecot's `MAILDIR_MAX_KEYWORDS`: the letters `a` to `z`.
const MAX_KEYWORDS: usize = 26;

impl Keywords {
    /// Parse `dovecot-keywords` as Dovecot's reader does: `<index> <name>` lines; lines that
    /// do not parse, indexes past 25 and repeated names are skipped.
    fn parse(text: &str) -> Keywords {
        let mut names: Vec<Option<String>> = Vec::new();
        for line in text.lines() {
            let Some((index, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let taken = names.iter().flatten().any(|n| n.eq_ignore_ascii_case(name));
            if index >= MAX_KEYWORDS || name.is_empty() || taken {
                continue;
            }
            if names.len() <= index {
                names.resize(index + 1, None);
            }
            names[index] = Some(name.to_owned());
        }
        Keywords { names }
    }

    fn format(&self) -> String {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some(format!("{i} {}\n", n.as_deref()?)))
            .collect()
    }

    /// Give `name` the first free letter; None when all 26 are taken.
    fn define(&mut self, name: &str) -> Option<char> {
        let index = match self.names.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.names.len() < MAX_KEYWORDS => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return None,
        };
        self.names[index] = Some(name.to_owned());
        char::from_u32('a' as u32 + index as u32)
    }
}

/// A name that `dovecot-keywords` can hold on one line and IMAP can send as an atom.
fn storable(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"]\\".contains(&b))
}

impl Maildir {
    fn keywords_path(&self) -> PathBuf {
        self.path().join(KEYWORDS)
    }

    /// The keywords defined in `dovecot-keywords` (none when the file is missing).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn keywords(&self) -> Result<Keywords> {
        let path = self.keywords_path();
        match super::no_atime::read(&path) {
            Ok(bytes) => Ok(Keywords::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Keywords::default()),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// The letters of `names`, defining the missing ones (under the uidlist lock, as Dovecot
    /// does) while fewer than 26 exist; names that find no letter are left out.
    ///
    /// The file is replaced as Dovecot's `maildir_keywords_commit` does: written into
    /// `dovecot-keywords.lock`, synced and renamed over `dovecot-keywords`, with a
    /// modification time later than the old file's, since Dovecot notices changes by
    /// whole-second mtime.
    ///
    /// # Errors
    /// The file cannot be read, locked or written.
    pub fn keyword_letters(&self, names: &[&str]) -> Result<(Keywords, String)> {
        let mut keywords = self.keywords()?;
        let wanted: Vec<&str> = names.iter().copied().filter(|n| storable(n)).collect();
        if wanted.iter().any(|n| keywords.letter_of(n).is_none()) {
            let _uidlist = self.lock_uidlist()?;
            keywords = self.keywords()?;
            let mut changed = false;
            for name in &wanted {
                if keywords.letter_of(name).is_none() && keywords.define(name).is_some() {
                    changed = true;
                }
            }
            if changed {
                self.write_keywords(&keywords)?;
            }
        }
        let mut letters = String::new();
        for name in wanted {
            if let Some(letter) = keywords.letter_of(name) {
                if !letters.contains(letter) {
                    letters.push(letter);
                }
            }
        }
        Ok((keywords, letters))
    }

    /// Replace `dovecot-keywords` (the uidlist lock is held).
    fn write_keywords(&self, keywords: &Keywords) -> Result<()> {
        let path = self.keywords_path();
        let old_mtime = fs::metadata(&path).ok().and_then(|m| m.modified().ok());
        // Dovecot removes a leftover lock first: the uidlist lock is what excludes writers.
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let _ = fs::remove_file(&lock_path);
        let lock = DotLock::acquire(
            &path,
            DotLockSettings {
                stale_timeout: Duration::from_secs(120),
                timeout: Duration::from_secs(2),
                pid_written_at_once: false,
            },
        )?;
        let now = SystemTime::now();
        let mtime = match old_mtime {
            Some(old) if whole_secs(now) <= whole_secs(old) => {
                Some(UNIX_EPOCH + Duration::from_secs(whole_secs(old) + 1))
            }
            _ => None,
        };
        lock.replace(&path, keywords.format().as_bytes(), mtime)
    }
}

fn whole_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_keywords_file() {
        let keywords = Keywords::parse("0 $Junk\n1 Foo\n2 Bar\nbroken\n30 Far\n4 foo\n3 Baz");
        assert_eq!(keywords.name_of('a'), Some("$Junk"));
        assert_eq!(keywords.name_of('c'), Some("Bar"));
        assert_eq!(keywords.name_of('d'), Some("Baz"));
        assert_eq!(keywords.name_of('e'), None, "a repeated name is skipped");
        assert_eq!(keywords.letter_of("foo"), Some('b'));
        assert_eq!(keywords.format(), "0 $Junk\n1 Foo\n2 Bar\n3 Baz\n");
    }

    #[test]
    fn defines_missing_keywords_in_free_letters_up_to_z() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(dir.path()).unwrap();
        assert_eq!(maildir.keywords().unwrap(), Keywords::default());
        let (keywords, letters) = maildir
            .keyword_letters(&["$Junk", "Foo", "foo", "bad name"])
            .unwrap();
        assert_eq!(letters, "ab");
        assert_eq!(keywords.names().collect::<Vec<_>>(), ["$Junk", "Foo"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("dovecot-keywords")).unwrap(),
            "0 $Junk\n1 Foo\n"
        );
        assert!(!dir.path().join("dovecot-keywords.lock").exists());
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
        let mtime = fs::metadata(dir.path().join("dovecot-keywords"))
            .unwrap()
            .modified()
            .unwrap();
        // A second definition in the same second still moves the mtime forward.
        let (_, letters) = maildir.keyword_letters(&["Bar", "$junk"]).unwrap();
        assert_eq!(letters, "ca");
        let later = fs::metadata(dir.path().join("dovecot-keywords"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(whole_secs(later) > whole_secs(mtime));

        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (keywords, letters) = maildir.keyword_letters(&many).unwrap();
        assert_eq!(keywords.names().count(), 26);
        assert_eq!(letters.len(), 23);
        assert!(letters.ends_with('z'));
    }
}
