//! Exclusive locks that hold across processes and vanish with their holder.
//!
//! [`lock_exclusive`] and [`try_lock_exclusive`] are `flock(2)` locks on a lock file: the kernel
//! releases them when the holding process dies, however it dies, so a crashed server never
//! locks a user out for good. Each lock opens the file anew, so two holders inside one process
//! exclude each other as well.
//!
//! [`DotLock`] is Dovecot's dotlock (`file-dotlock.c`), which Dovecot takes around
//! `dovecot-uidlist`, `subscriptions` and `dovecot-keywords`, so both programs exclude each
//! other: `FILE.lock` holding `pid:host`, whoever creates it first holds it. We create it as
//! Dovecot's hard-link mode does (a temporary file with the pid, linked to the lock name), so
//! it is never seen empty; Dovecot's default `O_EXCL` mode excludes the same way. A dotlock
//! outlives a crashed holder, so, as Dovecot does, a lock more than 2 s old whose process is
//! gone (same host) is overridden at once, and any other lock once neither it nor the file
//! it protects changed for the stale timeout. Unlike Dovecot, an *empty* uidlist lock more
//! than 2 s old is overridden at once too: every holder of that lock writes its pid as it
//! creates it, so only a crash of the machine, which kept the name but not the unsynced
//! content, leaves one (see [`DotLockSettings::pid_written_at_once`]).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::{unix_now, Result, StoreError};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open lock file", path, e))
}

/// Wait for and take the lock at `path`.
pub fn lock_exclusive(path: &Path) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    file.lock().map_err(|e| StoreError::io("lock", path, e))?;
    Ok(LockGuard { _file: file })
}

/// Take the lock at `path` if it is free; `None` when someone holds it.
pub fn try_lock_exclusive(path: &Path) -> Result<Option<LockGuard>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}

/// How long a dotlock may stay unchanged before it is taken as stale, and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct DotLockSettings {
    /// Override the lock once neither it nor the protected file changed for this long.
    pub stale_timeout: Duration,
    /// Give up waiting after this long.
    pub timeout: Duration,
    /// Every holder of this lock writes its pid as it creates it (Dovecot's
    /// `file_dotlock_create`, as for `dovecot-uidlist`; ours always), so a lock still empty
    /// after `STALE_PID_CHECK_SECS` is what a crash of the machine left, and is overridden.
    /// Not so for locks Dovecot takes with `file_dotlock_open` (`subscriptions`,
    /// `dovecot-keywords`), whose file is the new content, empty while it is written.
    pub pid_written_at_once: bool,
}

/// Dovecot checks the holder's pid only once a lock is this old (`STALE_PID_CHECK_SECS`): a
/// lock just created may not hold its pid yet.
const STALE_PID_CHECK_SECS: i64 = 2;

/// A held Dovecot dotlock: `FILE.lock`. Dropping it removes the lock file if it is still ours.
#[derive(Debug)]
pub struct DotLock {
    lock_path: PathBuf,
    file: Option<File>,
    dev: u64,
    ino: u64,
}

/// What we last saw of a lock file or the protected file, to tell when it changes.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Seen {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    ctime: i64,
}

impl Seen {
    fn of(meta: &fs::Metadata) -> Seen {
        Seen {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            ctime: meta.ctime(),
        }
    }

    /// When the file last changed as far as a waiter can tell: on first sight its own time
    /// (the modification time, unless that lies ahead or before the status change), after
    /// that the moment the waiter saw it change.
    fn changed_at(self, first_sight: bool, now: i64) -> i64 {
        if !first_sight {
            now
        } else if self.mtime <= now && self.mtime > self.ctime {
            self.mtime
        } else {
            self.ctime
        }
    }
}

/// The host name as Dovecot writes it into a dotlock (`my_hostname`, unescaped).
pub(crate) fn raw_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    if !ok {
        return "localhost".into();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..len]) {
        name if name.is_empty() => "localhost".into(),
        name => name.into_owned(),
    }
}

/// What a dotlock file says of its holder.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// A process of this host, as Dovecot's `read_local_pid` reads it.
    Local(i32),
    /// Nothing: the lock is empty.
    Nobody,
    /// Another host, or something unreadable.
    Unknown,
}

fn holder(lock_path: &Path) -> Holder {
    let Ok(text) = fs::read(lock_path) else {
        return Holder::Unknown;
    };
    if text.is_empty() {
        return Holder::Nobody;
    }
    let text = String::from_utf8_lossy(&text);
    let Some((pid, host)) = text.trim_end_matches('\n').split_once(':') else {
        return Holder::Unknown;
    };
    match pid.parse::<i32>() {
        Ok(pid) if pid > 0 && host == raw_host_name() => Holder::Local(pid),
        _ => Holder::Unknown,
    }
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

impl DotLock {
    /// Wait for and take the dotlock of `path` (the lock is `path` + `.lock`), writing our
    /// `pid:host` into it.
    ///
    /// # Errors
    /// Waiting timed out (a temporary error), or the lock file cannot be created.
    pub fn acquire(path: &Path, settings: DotLockSettings) -> Result<DotLock> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        // The lock appears by link(2) of a file that already holds our pid (Dovecot's
        // hard-link dotlock), so it never exists empty.
        let temp = TempLockFile::create(&lock_path)?;
        let start = Instant::now();
        let mut lock_seen: Option<Seen> = None;
        let mut file_seen: Option<Seen> = None;
        let mut last_change = 0i64;
        let mut pause = Duration::from_millis(2);
        loop {
            match fs::hard_link(&temp.path, &lock_path) {
                Ok(()) => return Ok(temp.into_lock(lock_path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::io("create lock file", &lock_path, e)),
            }
            let now = unix_now();
            let meta = match fs::symlink_metadata(&lock_path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("examine", &lock_path, e)),
            };
            let seen = Seen::of(&meta);
            if lock_seen != Some(seen) {
                last_change = last_change.max(seen.changed_at(lock_seen.is_none(), now));
                lock_seen = Some(seen);
            }
            if seen.mtime < now - STALE_PID_CHECK_SECS {
                match holder(&lock_path) {
                    Holder::Local(pid) if pid != std::process::id() as i32 => {
                        if !process_exists(pid) {
                            // The holder died: Dovecot overrides such a lock at once.
                            override_lock(&lock_path, seen)?;
                            continue;
                        }
                    }
                    Holder::Nobody if settings.pid_written_at_once => {
                        // Still empty seconds after its holder wrote its pid (Dovecot's
                        // O_EXCL lock writes it right after creating the file): a crash of
                        // the machine kept the lock's name but not its content, as nothing
                        // syncs a lock. Dovecot waits out the whole stale timeout (two
                        // minutes for the uidlist, the mailbox stuck meanwhile).
                        override_lock(&lock_path, seen)?;
                        continue;
                    }
                    Holder::Local(_) | Holder::Nobody | Holder::Unknown => {}
                }
            }
            let stale = settings.stale_timeout.as_secs() as i64;
            if now > last_change + stale {
                // Possibly stale: unless the protected file changed meanwhile.
                if let Ok(meta) = fs::metadata(path) {
                    let file = Seen::of(&meta);
                    if file_seen != Some(file) {
                        last_change = last_change.max(file.changed_at(file_seen.is_none(), now));
                        file_seen = Some(file);
                    }
                }
                if now > last_change + stale {
                    override_lock(&lock_path, seen)?;
                    continue;
                }
            }
            if start.elapsed() >= settings.timeout {
                return Err(StoreError::io(
                    "lock",
                    &lock_path,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "timed out waiting for another process's lock",
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.lock_path
    }

    /// Replace `target` with `content`, written into the lock file itself and renamed over
    /// `target` (Dovecot's `file_dotlock_replace`), which also releases the lock. `mtime`
    /// sets the new file's modification time first, when given.
    ///
    /// # Errors
    /// The lock file cannot be written, synced or renamed.
    pub fn replace(
        mut self,
        target: &Path,
        content: &[u8],
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        let file = self.file.take().expect("a held dotlock has its file");
        let path = self.lock_path.clone();
        let written = (|| {
            file.set_len(0)?;
            file.write_all_at(content, 0)?;
            if let Some(mtime) = mtime {
                file.set_modified(mtime)?;
            }
            super::blocking(|| file.sync_all())
        })();
        if let Err(e) = written {
            self.file = Some(file);
            return Err(StoreError::io("write", &path, e));
        }
        if let Err(e) = fs::rename(&path, target) {
            self.file = Some(file);
            return Err(StoreError::io("rename into place", target, e));
        }
        sync_parent(target)?;
        Ok(())
    }
}

/// The file holding our `pid:host` that becomes the lock by a hard link; removed on drop.
struct TempLockFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempLockFile {
    fn create(lock_path: &Path) -> Result<TempLockFile> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            ".temp.{}.{}.{}",
            std::process::id(),
            count,
            lock_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("lock")
        );
        let path = lock_path.with_file_name(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StoreError::io("create lock file", &path, e))?;
        let mut temp = TempLockFile { path, file: None };
        file.write_all(format!("{}:{}", std::process::id(), raw_host_name()).as_bytes())
            .map_err(|e| StoreError::io("write", &temp.path, e))?;
        temp.file = Some(file);
        Ok(temp)
    }

    fn into_lock(mut self, lock_path: PathBuf) -> DotLock {
        let file = self.file.take().expect("a temporary lock file is open");
        let meta = file.metadata().ok();
        DotLock {
            lock_path,
            file: Some(file),
            dev: meta.as_ref().map_or(0, MetadataExt::dev),
            ino: meta.as_ref().map_or(0, MetadataExt::ino),
        }
    }
}

impl Drop for TempLockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Sync the directory holding `path`, so that a rename into it survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    super::sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Remove a stale lock, unless it changed since we looked (then someone else took it anew).
fn override_lock(lock_path: &Path, seen: Seen) -> Result<()> {
    match fs::symlink_metadata(lock_path) {
        Ok(meta) if Seen::of(&meta) == seen => match fs::remove_file(lock_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove stale lock", lock_path, e)),
        },
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("examine", lock_path, e)),
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if self.file.take().is_none() {
            return;
        }
        // Only our own lock: another process may have overridden it as stale.
        if let Ok(meta) = fs::symlink_metadata(&self.lock_path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.lock_path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: DotLockSettings = DotLockSettings {
        stale_timeout: Duration::from_secs(120),
        timeout: Duration::from_millis(200),
        pid_written_at_once: true,
    };

    #[test]
    fn dotlock_excludes_until_dropped_and_holds_pid_and_host() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dovecot-uidlist");
        let held = DotLock::acquire(&file, QUICK).unwrap();
        let content = fs::read_to_string(dir.path().join("dovecot-uidlist.lock")).unwrap();
        assert_eq!(
            content,
            format!("{}:{}", std::process::id(), raw_host_name())
        );
        let err = DotLock::acquire(&file, QUICK).unwrap_err();
        assert!(err.is_temporary(), "{err}");
        drop(held);
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
        DotLock::acquire(&file, QUICK).unwrap();
    }

    /// Set the lock's modification time 10 s back, as if it was written then.
    fn written_long_ago(lock: &Path) {
        let old = SystemTime::now() - Duration::from_secs(10);
        File::options()
            .write(true)
            .open(lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn dotlock_of_a_dead_process_is_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dovecot-uidlist");
        let lock = dir.path().join("dovecot-uidlist.lock");
        // A pid that cannot exist (above pid_max), from this host, written long ago.
        fs::write(&lock, format!("2147483600:{}", raw_host_name())).unwrap();
        written_long_ago(&lock);
        DotLock::acquire(&file, QUICK).unwrap();
    }

    #[test]
    fn an_empty_dotlock_is_overridden_once_its_holder_would_have_written_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dovecot-uidlist");
        let lock = dir.path().join("dovecot-uidlist.lock");
        File::create(&lock).unwrap();
        // Just created: its holder may not have written its pid yet.
        assert!(DotLock::acquire(&file, QUICK).is_err());
        assert!(lock.exists());
        written_long_ago(&lock);
        // A lock whose file is the new content (Dovecot's subscriptions) may stay empty.
        let content_lock = DotLockSettings {
            pid_written_at_once: false,
            ..QUICK
        };
        assert!(DotLock::acquire(&file, content_lock).is_err());
        DotLock::acquire(&file, QUICK).unwrap();
    }

    #[test]
    fn dotlock_of_a_live_process_or_another_host_waits_until_stale() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subscriptions");
        let lock = dir.path().join("subscriptions.lock");
        fs::write(&lock, "1:some-other-host").unwrap();
        written_long_ago(&lock);
        assert!(DotLock::acquire(&file, QUICK).is_err());
        // Unchanged for longer than the stale timeout (whole seconds, counted from the
        // lock's ctime, which is now): overridden.
        let short = DotLockSettings {
            stale_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            ..QUICK
        };
        DotLock::acquire(&file, short).unwrap();
    }

    #[test]
    fn dotlock_replace_renames_the_lock_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subscriptions");
        fs::write(&file, "old").unwrap();
        let held = DotLock::acquire(&file, QUICK).unwrap();
        held.replace(&file, b"new", None).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "new");
        assert!(!dir.path().join("subscriptions.lock").exists());
    }

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.lock");
        let first = try_lock_exclusive(&path).unwrap().expect("free lock");
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        drop(first);
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }
}
