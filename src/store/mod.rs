//! The mail store: the one module that touches the store's files.
//!
//! The layout is a contract shared with Dovecot, which can serve the same directory unchanged:
//!
//! ```text
//! STORE/passwd              Dovecot passwd-file: name:{PLAIN}password[:uid:gid:...]
//! STORE/<name>/{tmp,new,cur} each user's Maildir (INBOX); flags after ":2," in file names
//! STORE/<name>/.<Folder>/    further mailboxes, Maildir++ (".Parent.Child", modified UTF-7)
//! STORE/<name>/dovecot-uidlist, dovecot-keywords, subscriptions   as Dovecot writes them
//! ```
//!
//! [`passwd`] reads and rewrites the user list (atomically, under a lock), [`maildir`] lists,
//! streams, flags, removes and delivers messages, [`lock`] provides the cross-process locks,
//! [`user_name`] is the one rule for which user names exist. For IMAP, [`folders`] keeps a
//! user's mailboxes in Dovecot's Maildir++ layout, [`uidlist`] their UIDs in
//! `dovecot-uidlist`, and [`keywords`] their keyword names in `dovecot-keywords`.
//! [`commit_order`] tells whether the file system commits in order, so that one sync can
//! stand for another.

pub mod commit_order;
pub mod delivery;
pub mod folders;
pub mod keywords;
mod local_changes;
pub mod lock;
pub mod maildir;
mod no_atime;
pub mod passwd;
mod snapshot_cache;
pub mod uidlist;
pub mod user_name;

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

pub use folders::{MailboxInfo, Mailboxes};
pub use keywords::Keywords;
pub use maildir::{Delivery, Folder, Maildir, MessageEntry};
pub use passwd::PasswdFile;
pub use uidlist::{ChangeStamp, NewOnly, Snapshot, UidMessage};
pub use user_name::UserName;

/// What can go wrong with the store; each message names the thing and, where there is one,
/// the fix.
#[derive(Debug)]
pub enum StoreError {
    InvalidUserName {
        name: String,
        reason: &'static str,
    },
    InvalidPassword {
        reason: &'static str,
    },
    MissingStore {
        root: PathBuf,
    },
    UserExists {
        name: UserName,
        passwd: PathBuf,
    },
    UnknownUser {
        name: UserName,
        passwd: PathBuf,
    },
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    UnsafeMailbox {
        path: PathBuf,
    },
    MailboxBusy {
        name: UserName,
    },
    /// An IMAP mailbox (folder) name that cannot exist.
    InvalidMailboxName {
        name: String,
        reason: &'static str,
    },
    NoSuchMailbox {
        name: String,
    },
    MailboxExists {
        name: String,
    },
    Io {
        action: String,
        path: PathBuf,
        source: io::Error,
    },
}

impl StoreError {
    /// An I/O failure while doing `action` (e.g. "read", "create") on `path`.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// Whether retrying later may help (POP3 `[SYS/TEMP]`) rather than never (`[SYS/PERM]`).
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::ReadOnlyFilesystem
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::InvalidData
            ),
            StoreError::MailboxBusy { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidUserName { name, reason } => write!(
                f,
                "invalid user name {name:?} ({reason}; use 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit)"
            ),
            StoreError::InvalidPassword { reason } => write!(f, "unusable password ({reason})"),
            StoreError::MissingStore { root } => write!(
                f,
                "store {} does not exist (create it with 'mailtool mbox add-user NAME', or point --store or $MAILTOOL_STORE at it)",
                root.display()
            ),
            StoreError::UserExists { name, passwd } => write!(
                f,
                "user '{name}' already exists in {} (pick another name, or change the password with 'mailtool mbox passwd {name}')",
                passwd.display()
            ),
            StoreError::UnknownUser { name, passwd } => write!(
                f,
                "no user '{name}' in {} (see 'mailtool mbox list')",
                passwd.display()
            ),
            StoreError::Malformed { path, line, reason } => write!(
                f,
                "malformed line {line} in {} ({reason}; expected name:{{PLAIN}}password)",
                path.display()
            ),
            StoreError::UnsafeMailbox { path } => write!(
                f,
                "refusing mailbox {} (it is a symbolic link or not a directory; make it a plain Maildir inside the store)",
                path.display()
            ),
            StoreError::MailboxBusy { name } => write!(
                f,
                "mailbox of '{name}' is in use by another session (try again when it ends)"
            ),
            StoreError::InvalidMailboxName { name, reason } => {
                write!(f, "invalid mailbox name {name:?} ({reason})")
            }
            StoreError::NoSuchMailbox { name } => write!(
                f,
                "no mailbox {name:?} (LIST \"\" \"*\" shows them; CREATE makes one)"
            ),
            StoreError::MailboxExists { name } => write!(f, "mailbox {name:?} already exists"),
            StoreError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

// The message already includes the I/O cause, so `source` stays empty: anyhow's `{:#}` would
// otherwise print it twice.
impl std::error::Error for StoreError {}

impl StoreError {
    /// The underlying I/O error kind, if this is an I/O failure.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store rooted at a directory. Creating the value does no I/O.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Whether `add_user` found a mailbox already on disk (left by `del-user --keep-mail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxState {
    Created,
    Reused,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn passwd_path(&self) -> PathBuf {
        self.root.join("passwd")
    }

    fn passwd_lock_path(&self) -> PathBuf {
        self.root.join(".passwd.lock")
    }

    /// Fails with [`StoreError::MissingStore`] unless the store directory exists.
    pub fn check_exists(&self) -> Result<()> {
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::MissingStore {
                root: self.root.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::MissingStore {
                root: self.root.clone(),
            }),
            Err(e) => Err(StoreError::io("open", &self.root, e)),
        }
    }

    /// A warning to show when `passwd` can be read by other users than its owner.
    pub fn passwd_permission_warning(&self) -> Option<String> {
        let path = self.passwd_path();
        let mode = fs::metadata(&path).ok()?.mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is readable by other users (mode {:o}); it holds clear-text passwords: chmod 600 it",
                path.display(),
                mode & 0o777
            )
        })
    }

    /// The users in `passwd`; an empty list when the store has no `passwd` yet. Shared, and
    /// parsed again only when the file changed ([`PasswdFile::read_shared`]).
    pub fn read_passwd(&self) -> Result<std::sync::Arc<PasswdFile>> {
        self.check_exists()?;
        PasswdFile::read_shared(&self.passwd_path())
    }

    /// Every user name, in file order.
    pub fn users(&self) -> Result<Vec<UserName>> {
        Ok(self
            .read_passwd()?
            .entries()
            .map(|e| e.name().clone())
            .collect())
    }

    /// Add a user with a clear-text password and create their Maildir, creating the store and
    /// `passwd` (mode 0600) when missing.
    pub fn add_user(&self, name: &UserName, password: &str) -> Result<MailboxState> {
        passwd::check_password(password)?;
        fs::create_dir_all(&self.root).map_err(|e| StoreError::io("create", &self.root, e))?;
        let _guard = lock::lock_exclusive(&self.passwd_lock_path())?;
        let mut file = PasswdFile::read(&self.passwd_path())?;
        if file.find(name).is_some() {
            return Err(StoreError::UserExists {
                name: name.clone(),
                passwd: self.passwd_path(),
            });
        }
        let mailbox_path = self.mailbox_path(name);
        let state = if mailbox_path.exists() {
            Maildir::open(&mailbox_path)?;
            MailboxState::Reused
        } else {
            MailboxState::Created
        };
        Maildir::create(&mailbox_path)?;
        file.add(name.clone(), password);
        file.write_atomically(&self.passwd_path())?;
        Ok(state)
    }

    /// Remove a user from `passwd` and, unless `keep_mail`, delete their Maildir. Refuses while
    /// a POP3 session holds the mailbox.
    pub fn remove_user(&self, name: &UserName, keep_mail: bool) -> Result<()> {
        self.check_exists()?;
        let _guard = lock::lock_exclusive(&self.passwd_lock_path())?;
        let mut file = PasswdFile::read(&self.passwd_path())?;
        if !file.remove(name) {
            return Err(self.unknown(name));
        }
        let mailbox_path = self.mailbox_path(name);
        let mailbox_lock = if keep_mail || !mailbox_path.exists() {
            None
        } else {
            let mailbox = Maildir::open(&mailbox_path)?;
            Some(
                mailbox
                    .try_lock()?
                    .ok_or_else(|| StoreError::MailboxBusy { name: name.clone() })?,
            )
        };
        file.write_atomically(&self.passwd_path())?;
        if mailbox_lock.is_some() {
            fs::remove_dir_all(&mailbox_path)
                .map_err(|e| StoreError::io("remove", &mailbox_path, e))?;
        }
        Ok(())
    }

    /// Replace a user's password, keeping every other field of their line.
    pub fn set_password(&self, name: &UserName, password: &str) -> Result<()> {
        passwd::check_password(password)?;
        self.check_exists()?;
        let _guard = lock::lock_exclusive(&self.passwd_lock_path())?;
        let mut file = PasswdFile::read(&self.passwd_path())?;
        if !file.set_password(name, password) {
            return Err(self.unknown(name));
        }
        file.write_atomically(&self.passwd_path())
    }

    /// The clear-text password of a user (for APOP), or None for an unknown user or one whose
    /// password is stored under a scheme mailtool cannot reverse.
    pub fn clear_password(&self, name: &UserName) -> Result<Option<String>> {
        let file = self.read_passwd()?;
        Ok(file
            .find(name)
            .and_then(|entry| entry.clear_password().map(str::to_owned)))
    }

    /// Check a login. Returns the user on success. The comparison takes the same time whether
    /// the user exists or not, so timing does not reveal user names.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<Option<UserName>> {
        let file = self.read_passwd()?;
        let user = UserName::parse(name).ok();
        let stored = user
            .as_ref()
            .and_then(|u| file.find(u))
            .and_then(|entry| entry.clear_password());
        let matches = constant_time_eq(stored.unwrap_or(""), password) && stored.is_some();
        Ok(if matches { user } else { None })
    }

    /// Where a user's Maildir lives (whether or not it exists).
    pub fn mailbox_path(&self, name: &UserName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// A known user's Maildir, creating `tmp/`, `new/`, `cur/` if a tool removed them, and
    /// the whole Maildir for a user added to `passwd` by hand, as Dovecot does at the first
    /// login. A symbolic link is still refused.
    pub fn mailbox(&self, name: &UserName) -> Result<Maildir> {
        if self.read_passwd()?.find(name).is_none() {
            return Err(self.unknown(name));
        }
        let path = self.mailbox_path(name);
        if fs::symlink_metadata(&path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            return Maildir::create(&path);
        }
        let maildir = Maildir::open(&path)?;
        maildir.ensure_folders()?;
        Ok(maildir)
    }

    /// Every user with their Maildir, reading `passwd` once.
    pub fn mailboxes(&self) -> Result<Vec<(UserName, Maildir)>> {
        let file = self.read_passwd()?;
        let mut all = Vec::new();
        for entry in file.entries() {
            let maildir = Maildir::open(&self.mailbox_path(entry.name()))?;
            maildir.ensure_folders()?;
            all.push((entry.name().clone(), maildir));
        }
        Ok(all)
    }

    fn unknown(&self, name: &UserName) -> StoreError {
        StoreError::UnknownUser {
            name: name.clone(),
            passwd: self.passwd_path(),
        }
    }
}

/// Compare two secrets in time that depends only on their lengths.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Set a file's permission bits (used for `passwd`, 0600, and Maildirs, 0700).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("set permissions on", path, e))
}

/// How a caller that multiplexes many sessions on few threads wants to hear that the store
/// is about to wait for the disk: a function that runs the closure it is given, after telling
/// its scheduler. The servers register one ([`on_blocking`]); the command-line tools need none.
pub type BlockingHook = fn(&mut dyn FnMut());

static BLOCKING_HOOK: std::sync::OnceLock<BlockingHook> = std::sync::OnceLock::new();

/// Register the hook every fsync of the store runs through (the first registration wins).
/// The server shell registers one that tells its async runtime the worker blocks, so that an
/// fsync of several milliseconds does not stall every other session of that worker; the
/// store itself knows no runtime.
pub fn on_blocking(hook: BlockingHook) {
    let _ = BLOCKING_HOOK.set(hook);
}

/// Seconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Dovecot's `MAILDIR_SYNC_SECS` rule: a file time (Unix seconds) less than a whole second
/// before `now` may stay as it is through a change made within the same tick, so only an
/// older one, seen again unchanged, proves that nothing changed.
pub(crate) fn time_is_settled(seconds: i64, now: i64) -> bool {
    seconds < now - 1
}

/// Sync directory `dir`, so that the names created, renamed or removed in it survive a crash.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| blocking(|| d.sync_all()))
        .map_err(|e| StoreError::io("sync", dir, e))
}

/// Run `f`, which waits for the disk (an fsync), through the registered hook if any.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let Some(hook) = BLOCKING_HOOK.get() else {
        return f();
    };
    let mut f = Some(f);
    let mut result = None;
    hook(&mut || result = f.take().map(|f| f()));
    result.expect("the blocking hook ran the closure it was given")
}
