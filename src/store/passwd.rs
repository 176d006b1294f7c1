//! `STORE/passwd`, a Dovecot passwd-file: `name:{SCHEME}password[:uid:gid:gecos:home:shell:extra]`.
//!
//! mailtool writes `{PLAIN}` passwords and keeps everything else it finds: the fields after
//! the password, comments and blank lines survive every rewrite. Rewrites go to a temporary
//! file that is synced and renamed over the old one, so a crash leaves either file, never half.
//!
//! Servers look a user up at every login and every RCPT, so [`PasswdFile::read_shared`] keeps
//! the parsed file while the file provably has not changed: one `stat` per lookup instead of
//! reading and parsing every line (with 10,000 users, a login took milliseconds).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{time_is_settled, unix_now, Result, StoreError, UserName};

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
    /// Each user's index in `lines`.
    index: HashMap<UserName, usize>,
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

    /// [`read`](Self::read), shared with every other caller while the file provably has not
    /// changed since it was parsed: the same device, inode, size, modification and
    /// status-change times, those times more than a second old when it was read (a change
    /// within the same clock tick could leave them as they were). A rewrite by rename, as
    /// mailtool and Dovecot's tools do it, makes a new inode; an edit in place a new status
    /// change time, which no one can set back. So a changed password counts at the next login.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_shared(path: &Path) -> Result<Arc<PasswdFile>> {
        read_shared_at(path, unix_now())
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
        let mut index = HashMap::new();
        for (number, raw) in text.lines().enumerate() {
            let number = number + 1;
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
            if index.insert(entry.name.clone(), lines.len()).is_some() {
                return Err(malformed(
                    number,
                    format!("user '{}' is listed twice", entry.name),
                ));
            }
            lines.push(Line::User(entry));
        }
        Ok(PasswdFile { lines, index })
    }

    pub fn entries(&self) -> impl Iterator<Item = &PasswdEntry> {
        self.lines.iter().filter_map(|line| match line {
            Line::User(entry) => Some(entry),
            Line::Other(_) => None,
        })
    }

    pub fn find(&self, name: &UserName) -> Option<&PasswdEntry> {
        match self.lines.get(*self.index.get(name)?)? {
            Line::User(entry) => Some(entry),
            Line::Other(_) => None,
        }
    }

    fn find_mut(&mut self, name: &UserName) -> Option<&mut PasswdEntry> {
        match self.lines.get_mut(*self.index.get(name)?)? {
            Line::User(entry) => Some(entry),
            Line::Other(_) => None,
        }
    }

    pub(super) fn add(&mut self, name: UserName, password: &str) {
        self.index.insert(name.clone(), self.lines.len());
        self.lines.push(Line::User(PasswdEntry {
            name,
            password: format!("{{PLAIN}}{password}"),
            rest: String::new(),
        }));
    }

    pub(super) fn remove(&mut self, name: &UserName) -> bool {
        let Some(at) = self.index.remove(name) else {
            return false;
        };
        self.lines.remove(at);
        for later in self.index.values_mut().filter(|i| **i > at) {
            *later -= 1;
        }
        true
    }

    pub(super) fn set_password(&mut self, name: &UserName, password: &str) -> bool {
        match self.find_mut(name) {
            Some(entry) => {
                entry.password = format!("{{PLAIN}}{password}");
                true
            }
            None => false,
        }
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

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(meta: &fs::Metadata) -> Version {
        Version {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Dovecot's rule for Maildir times, as [`super::ChangeStamp`] applies it
    /// ([`time_is_settled`]), on both times.
    fn is_settled(&self, now: i64) -> bool {
        time_is_settled(self.mtime.0.max(self.ctime.0), now)
    }
}

/// Parsed files by path, each with the version it was parsed from.
type Cache = HashMap<PathBuf, (Version, Arc<PasswdFile>)>;

/// A process serves one store, but tests run many at once: beyond this many, one is dropped.
const MAX_CACHED: usize = 16;

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// [`PasswdFile::read_shared`] with the clock at `now` (Unix seconds).
fn read_shared_at(path: &Path, now: i64) -> Result<Arc<PasswdFile>> {
    let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let version = match fs::metadata(path) {
        Ok(meta) => Version::of(&meta),
        Err(e) if not_found(&e) => return Ok(Arc::default()),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, file)) = cache.as_ref().and_then(|c| c.get(path)) {
            if *cached == version {
                return Ok(file.clone());
            }
        }
    }
    // Through one descriptor, so that the version taken before and after the read describes
    // the octets read, whatever is renamed over the path meanwhile.
    let read = |file: &mut File| -> io::Result<(Version, Vec<u8>, Version)> {
        let before = Version::of(&file.metadata()?);
        let mut bytes = Vec::with_capacity(before.size as usize);
        file.read_to_end(&mut bytes)?;
        Ok((before, bytes, Version::of(&file.metadata()?)))
    };
    let (before, bytes, after) = match File::open(path).and_then(|mut file| read(&mut file)) {
        Ok(read) => read,
        Err(e) if not_found(&e) => return Ok(Arc::default()),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    let file = Arc::new(PasswdFile::parse(path, &bytes)?);
    if before == after && before.is_settled(now) {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.get_or_insert_with(Cache::new);
        if cache.len() >= MAX_CACHED && !cache.contains_key(path) {
            let any = cache.keys().next().cloned();
            cache.remove(&any.unwrap_or_default());
        }
        cache.insert(path.to_owned(), (before, file.clone()));
    }
    Ok(file)
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
    fn lookups_follow_removals_and_additions() {
        let mut file = parse("a:{PLAIN}1\n# note\nb:{PLAIN}2\nc:{PLAIN}3\n").unwrap();
        let name = |n: &str| UserName::parse(n).unwrap();
        assert!(file.remove(&name("a")));
        assert!(!file.remove(&name("a")));
        assert!(file.find(&name("a")).is_none());
        assert_eq!(file.find(&name("c")).unwrap().clear_password(), Some("3"));
        assert!(file.set_password(&name("c"), "33"));
        file.add(name("d"), "4");
        assert!(file.remove(&name("b")));
        assert_eq!(file.find(&name("d")).unwrap().clear_password(), Some("4"));
        assert_eq!(file.render(), "# note\nc:{PLAIN}33\nd:{PLAIN}4\n");
    }

    fn password_of(file: &PasswdFile, user: &str) -> Option<String> {
        let entry = file.find(&UserName::parse(user).unwrap())?;
        entry.clear_password().map(str::to_owned)
    }

    #[test]
    fn a_file_is_shared_only_while_its_version_proves_it_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        fs::write(&path, "a:{PLAIN}one\n").unwrap();
        // Just written: a change in the same tick could hide, so every read parses.
        let first = PasswdFile::read_shared(&path).unwrap();
        let again = PasswdFile::read_shared(&path).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        // With the clock a minute on, the same version is settled and shared.
        let later = unix_now() + 60;
        let kept = read_shared_at(&path, later).unwrap();
        assert!(Arc::ptr_eq(&kept, &read_shared_at(&path, later).unwrap()));
        // A rewrite by rename is a new inode: read at once, whatever the clock says.
        fs::write(dir.path().join("new"), "a:{PLAIN}two\n").unwrap();
        fs::rename(dir.path().join("new"), &path).unwrap();
        let renamed = read_shared_at(&path, later).unwrap();
        assert_eq!(password_of(&renamed, "a").as_deref(), Some("two"));
        // Gone: no users, and nothing stale kept.
        fs::remove_file(&path).unwrap();
        assert!(read_shared_at(&path, later)
            .unwrap()
            .find(&UserName::parse("a").unwrap())
            .is_none());
    }

    #[test]
    fn a_changed_password_counts_at_the_next_login_after_the_file_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::new(dir.path());
        let user = UserName::parse("asterix").unwrap();
        store.add_user(&user, "potion").unwrap();
        // Let the file's times settle, so that lookups share one parse.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let login = |password: &str| store.authenticate("asterix", password).unwrap().is_some();
        assert!(login("potion"));
        let path = dir.path().join("passwd");
        let shared = PasswdFile::read_shared(&path).unwrap();
        assert!(Arc::ptr_eq(
            &shared,
            &PasswdFile::read_shared(&path).unwrap()
        ));
        // Changed by mailtool (a rename): the old password stops working at once.
        store.set_password(&user, "menhir").unwrap();
        assert!(!login("potion"));
        assert!(login("menhir"));
        // Edited in place, same size, with the old modification time put back: the status
        // change time, which no one can set, still shows it.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(login("menhir"));
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("menhir", "dogmix");
        let mut file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.set_modified(modified).unwrap();
        drop(file);
        assert!(!login("menhir"));
        assert!(login("dogmix"));
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
