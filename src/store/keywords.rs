//! IMAP keywords as Dovecot keeps them in a Maildir: `dovecot-keywords` maps indexes 0 to 25
//! to names, and a message's keywords are the lowercase letters `a` (index 0) to `z` after
//! its system flags in `:2,`.

use super::{Maildir, Result};

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

impl Maildir {
    /// The keywords defined in `dovecot-keywords` (none when the file is missing).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn keywords(&self) -> Result<Keywords> {
        todo!()
    }

    /// The letters of `names`, defining the missing ones (under the uidlist lock, as Dovecot
    /// does) while fewer than 26 exist; names that find no letter are left out.
    ///
    /// # Errors
    /// The file cannot be read, locked or written.
    pub fn keyword_letters(&self, names: &[&str]) -> Result<(Keywords, String)> {
        todo!("{}", names.len())
    }
}
