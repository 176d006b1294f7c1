//! `STORE/passwd`, a Dovecot passwd-file: `name:{SCHEME}password[:uid:gid:gecos:home:shell:extra]`.
//!
//! mailtool writes `{PLAIN}` passwords and keeps everything else it finds: the fields after
//! the password, comments and blank lines survive every rewrite. Rewrites go to a temporary
//! file that is synced and renamed over the old one, so a crash leaves either file, never half.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Result, StoreError, UserName};

/// One user's line.
#[derive(Debug, Clone)]
pub struct PasswdEntry {
    name: UserName,
    /// The password field as written, scheme prefix included.
    password: String,
    /// Everything after the password field, leading `:` included; empty when absent.
    rest: String,
}

impl PasswdEntry {
    pub fn name(&self) -> &UserName {
        &self.name
    }

    /// The password in clear when its scheme is `PLAIN` or `CLEAR` (or absent); None for
    /// hashed schemes, which mailtool cannot check.
    pub fn clear_password(&self) -> Option<&str> {
        match self.password.strip_prefix('{') {
            None => Some(&self.password),
            Some(tail) => {
                let (scheme, password) = tail.split_once('}')?;
                (scheme.eq_ignore_ascii_case("PLAIN") || scheme.eq_ignore_ascii_case("CLEAR"))
                    .then_some(password)
            }
        }
    }

    fn line(&self) -> String {
        format!("{}:{}{}", self.name, self.password, self.rest)
    }
}

#[derive(Debug, Clone)]
enum Line {
    User(PasswdEntry),
    /// A comment or blank line, kept as it was.
    Other(String),
}

/// The parsed file, in its original order.
#[derive(Debug, Clone, Default)]
pub struct PasswdFile {
    lines: Vec<Line>,
}

/// Refuse passwords the passwd-file format cannot hold.
pub fn check_password(password: &str) -> Result<()> {
    let reason = if password.is_empty() {
        Some("it is empty")
    } else if password.contains(':') {
        Some("a passwd-file cannot hold ':' in a password")
    } else if password.contains(['\n', '\r', '\0']) {
        Some("it contains a line break or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidPassword { reason }),
        None => Ok(()),
    }
}

impl PasswdFile {
    /// Read and parse `path`; a missing file is an empty list.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it cannot be read, [`StoreError::Malformed`] naming the first
    /// bad line.
    pub fn read(path: &Path) -> Result<PasswdFile> {
        match fs::read(path) {
            Ok(bytes) => PasswdFile::parse(path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PasswdFile::default()),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// Parse file contents; `path` only names the file in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<PasswdFile> {
        let malformed = |line: usize, reason: String| StoreError::Malformed {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            malformed(line + 1, "it is not valid UTF-8".into())
        })?;
        let mut lines = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let (name, after) = raw
                .split_once(':')
                .ok_or_else(|| malformed(number, "there is no ':' after the user name".into()))?;
            let name = UserName::parse(name).map_err(|e| malformed(number, e.to_string()))?;
            let (password, rest) = match after.find(':') {
                Some(at) => (&after[..at], &after[at..]),
                None => (after, ""),
            };
            if password.is_empty() {
                return Err(malformed(number, "the password field is empty".into()));
            }
            let entry = PasswdEntry {
                name,
                password: password.to_owned(),
                rest: rest.to_owned(),
            };
            if !seen.insert(entry.name.clone()) {
                return Err(malformed(
                    number,
                    format!("user '{}' is listed twice", entry.name),
                ));
            }
            lines.push(Line::User(entry));
        }
        Ok(PasswdFile { lines })
    }

    pub fn entries(&self) -> impl Iterator<Item = &PasswdEntry> {
        self.lines.iter().filter_map(|line| match line {
            Line::User(entry) => Some(entry),
            Line::Other(_) => None,
        })
    }

    pub fn find(&self, name: &UserName) -> Option<&PasswdEntry> {
        self.entries().find(|e| &e.name == name)
    }

    pub(super) fn add(&mut self, name: UserName, password: &str) {
        self.lines.push(Line::User(PasswdEntry {
            name,
            password: format!("{{PLAIN}}{password}"),
            rest: String::new(),
        }));
    }

    pub(super) fn remove(&mut self, name: &UserName) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::User(u) if &u.name == name));
        self.lines.len() != before
    }

    pub(super) fn set_password(&mut self, name: &UserName, password: &str) -> bool {
        for line in &mut self.lines {
            if let Line::User(entry) = line {
                if &entry.name == name {
                    entry.password = format!("{{PLAIN}}{password}");
                    return true;
                }
            }
        }
        false
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::User(entry) => text.push_str(&entry.line()),
                Line::Other(other) => text.push_str(other),
            }
            text.push('\n');
        }
        text
    }

    /// Replace `path` with this content: write a temporary file (mode 0600) beside it, sync,
    /// rename over, sync the directory. Callers hold the passwd lock.
    pub(super) fn write_atomically(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!(".passwd.tmp.{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            StoreError::io("write", path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PasswdFile> {
        PasswdFile::parse(Path::new("passwd"), text.as_bytes())
    }

    #[test]
    fn keeps_extra_fields_comments_and_order_on_rewrite() {
        let text = "# users\nasterix:{PLAIN}potion:1000:1000::/home/a::userdb_quota_rule=*:storage=1G\n\nobelix:{CLEAR}menhir\n";
        let mut file = parse(text).unwrap();
        assert_eq!(file.render(), text);
        let obelix = UserName::parse("obelix").unwrap();
        let asterix = UserName::parse("asterix").unwrap();
        assert!(file.set_password(&asterix, "magic"));
        assert!(file.remove(&obelix));
        assert_eq!(
            file.render(),
            "# users\nasterix:{PLAIN}magic:1000:1000::/home/a::userdb_quota_rule=*:storage=1G\n\n"
        );
    }

    #[test]
    fn clear_passwords_by_scheme() {
        let file = parse("a:{PLAIN}x\nb:{CLEAR}y\nc:z\nd:{SHA512-CRYPT}$6$abc\n").unwrap();
        let got: Vec<_> = file.entries().map(|e| e.clear_password()).collect();
        assert_eq!(got, [Some("x"), Some("y"), Some("z"), None]);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("asterix:{PLAIN}potion\nbroken line\n", 2),
            ("ok:{PLAIN}x\n\nBad:{PLAIN}x\n", 3),
            ("../x:{PLAIN}x\n", 1),
            ("a:\n", 1),
            ("a:{PLAIN}x\na:{PLAIN}y\n", 2),
        ] {
            match parse(text) {
                Err(StoreError::Malformed { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_the_format_cannot_hold_are_refused() {
        for bad in ["", "a:b", "a\nb", "a\rb"] {
            assert!(check_password(bad).is_err(), "{bad:?}");
        }
        check_password("with spaces and {braces}").unwrap();
    }
}
