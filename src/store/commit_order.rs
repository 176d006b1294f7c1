//! Whether one sync of a file also makes every earlier change of its file system durable.
//!
//! A message added to a Maildir needs three things on the disk before the server may say so:
//! its bytes, its name in `new/`, and its UID in `dovecot-uidlist`. POSIX makes each one
//! durable only by its own fsync (the file, the folder, the uidlist), and on a journaled file
//! system each of those waits for a journal commit.
//!
//! ext4 with a journal gives more than POSIX: its journal (jbd2) commits transactions one
//! after another, and an fsync returns only once the transaction holding the file's latest
//! change is committed (an fdatasync, its latest change of data or size), so every
//! transaction before it is committed too. Its
//! fast commits, where enabled, write every directory entry change and every changed inode
//! since the last full commit, not only the synced file's (`fs/ext4/fast_commit.c`; a power
//! cut under APPEND and COPY on such a file system is in `tests/imap_faults.rs`). So once a
//! message is linked into `new/`, the `fdatasync` of the uidlist line written after that link
//! also commits the link, and the fsync of `new/` is one journal commit spent for nothing.
//!
//! The message's own fsync can go the same way. Its bytes must be on the disk before its
//! name can be, but that needs no commit of its own: [`write_out`] writes them and waits
//! (which also puts their allocation into the running transaction), and the journal commit
//! that later makes the link durable flushes the disk's cache before its commit block, so
//! the bytes are durable first. An APPEND then waits for one journal commit, not three.
//!
//! Only there are those syncs left out, and only with the journal's cache flushes on (not
//! `nobarrier`) and each commit block written after the flush (not `journal_async_commit`):
//! ext4 mounted without a journal (this is how some machines mount `/tmp`) orders nothing,
//! and other file systems are not assumed to. When in doubt (no `/proc` or `/sys` to read,
//! a journal on another device, a Maildir's `new/` on another file system than its root),
//! the answer is no, and the file and the folders are synced as POSIX asks.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Write `file`'s bytes to the disk and wait, without a journal commit or a flush of the
/// disk's cache (`sync_file_range`): durable only once a later commit of its file system
/// (where [`later_sync_covers_earlier_changes`]) has made them so.
pub fn write_out(file: &File) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range only reads the descriptor, which `file` keeps open.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `statfs`'s `f_type` of ext2, ext3 and ext4 (one driver, one magic number).
const EXT4_SUPER_MAGIC: i64 = 0xEF53;

/// How long an answer is reused.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// A file system: its device and its `statfs` id.
type FileSystem = (u64, [i32; 2]);

/// [`later_sync_covers_earlier_changes`] for the Maildir at `root`, whose `new/` (where
/// messages are linked) must be on the file system of its root (where the uidlist is).
pub fn covers_maildir(root: &Path) -> bool {
    match (fs::metadata(root), fs::metadata(root.join("new"))) {
        (Ok(root_meta), Ok(new_meta)) if root_meta.dev() == new_meta.dev() => {
            covers(root, root_meta.dev())
        }
        _ => false,
    }
}

/// Whether a sync on the file system holding `path` commits every change made before it
/// on that file system (ext4 with its journal on the same device, flushing before each
/// commit).
///
/// Answered once a second at most per file system, keyed by its device and by its id from
/// `statfs` (ext4's is its UUID): a remount with other options counts within a second, and a
/// device that now holds another file system is asked again at once.
pub fn later_sync_covers_earlier_changes(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| covers(path, meta.dev()))
}

/// [`later_sync_covers_earlier_changes`] for `path` on `device`.
fn covers(path: &Path, device: u64) -> bool {
    static ANSWERS: OnceLock<Mutex<HashMap<FileSystem, (bool, Instant)>>> = OnceLock::new();
    let Some(id) = ext_family_id(path) else {
        return false;
    };
    let key = (device, id);
    let answers = ANSWERS.get_or_init(Default::default);
    if let Some(&(answer, at)) = answers.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        if at.elapsed() < ASK_AGAIN_AFTER {
            return answer;
        }
    }
    let answer = journal_flushes_in_order(device);
    answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (answer, Instant::now()));
    answer
}

/// The `statfs` id of the file system holding `path` when it is an ext2, ext3 or ext4.
fn ext_family_id(path: &Path) -> Option<[i32; 2]> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own and reads the NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets.
    let kind = stat.f_type as i64;
    // SAFETY: fsid_t is two ints on Linux, and nothing else reads the copy.
    let id: [i32; 2] = unsafe { std::mem::transmute(stat.f_fsid) };
    (kind == EXT4_SUPER_MAGIC).then_some(id)
}

/// jbd2 lists each journal it runs as `/proc/fs/jbd2/<device>-<journal inode>` when the
/// journal lives inside the file system (an ext2 or a journal-less ext4 has no entry), and
/// ext4 its mount options in `/proc/fs/ext4/<device>/options`, one per line.
fn journal_flushes_in_order(device: u64) -> bool {
    let (major, minor) = (libc::major(device), libc::minor(device));
    let Ok(target) = fs::read_link(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // jbd2 writes a `/` in a device name as `!`.
    let prefix = format!("{}-", name.replace('/', "!"));
    let Ok(journals) = fs::read_dir("/proc/fs/jbd2") else {
        return false;
    };
    let has_journal = journals.flatten().any(|journal| {
        journal.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|inode| !inode.is_empty() && inode.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    let Ok(options) = fs::read_to_string(format!("/proc/fs/ext4/{name}/options")) else {
        return false;
    };
    has_journal
        && !options
            .lines()
            .any(|o| matches!(o, "nobarrier" | "barrier=0" | "journal_async_commit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_gets_the_full_syncs() {
        assert!(!later_sync_covers_earlier_changes(Path::new(
            "/nonexistent/mailtool/store"
        )));
    }

    #[test]
    fn only_ext4_counts() {
        // /proc is procfs on every Linux: never ext4, so never trusted.
        assert!(!later_sync_covers_earlier_changes(Path::new("/proc/self")));
    }
}
