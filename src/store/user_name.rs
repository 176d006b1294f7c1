//! The one rule for user names, applied at every entry point (CLI, USER, APOP, AUTH).
//!
//! Names double as directory names inside the store, so the rule keeps them from ever naming
//! anything else: no slashes, no dot-dot, no upper case twins, and never the `passwd` file.

use std::fmt;

use super::StoreError;

/// A user name that passed [`UserName::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// The longest user name accepted.
pub const MAX_LEN: usize = 64;

impl UserName {
    /// Accept 1-64 characters of `[a-z0-9._-]`, starting with a letter or digit, other than
    /// `passwd`.
    ///
    /// # Errors
    /// [`StoreError::InvalidUserName`] with the rule that was broken.
    pub fn parse(name: &str) -> Result<UserName, StoreError> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_LEN {
            Some("it is longer than 64 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            Some("it has a character outside a-z, 0-9, '.', '_', '-'")
        } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
            Some("it does not start with a letter or digit")
        } else if name == "passwd" {
            Some("'passwd' is the store's user file")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidUserName {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(UserName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UserName {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["asterix", "a", "0day", "jean-luc.picard_2", &"x".repeat(64)] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "x".repeat(65);
        for bad in [
            "",
            "../x",
            "Asterix",
            "passwd",
            long.as_str(),
            ".hidden",
            "-dash",
            "a/b",
            "a b",
            "é",
            "a\0",
            "..",
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
