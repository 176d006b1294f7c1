//! Reading mail without writing access times: message files, the uidlist, `dovecot-keywords`
//! and the listings of `new/` and `cur/` are opened with `O_NOATIME`.
//!
//! Under `relatime`, the default mount option, the first read of a file or a listing of a
//! folder after it changed updates its access time. In a Maildir that is nearly every read:
//! a flag change renames the message (a new ctime), each delivery and expunge changes the
//! folder, each APPEND the uidlist. Each update dirties an inode, which takes a journal
//! handle: on a busy ext4 whose journal is full, the reading thread then waits for a
//! checkpoint. `imap_load` saw a server worker, and every session on it, stopped for up to
//! 4 ms in `read` and `getdents` that way. Nothing in a Maildir uses access times (mail
//! readers compare `new/` and `cur/`, not atime as they do for an mbox file).
//!
//! `O_NOATIME` is allowed to the files' owner and to processes with `CAP_FOWNER`; anyone else
//! gets `EPERM`, and from then on this process opens without it.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel refused `O_NOATIME` (we own neither the files nor `CAP_FOWNER`).
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Open `path` for reading with `flags` (and `O_CLOEXEC`), without updating its access time
/// where we may.
fn open_with(path: &Path, flags: libc::c_int) -> io::Result<File> {
    if !REFUSED.load(Ordering::Relaxed) {
        match OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOATIME)
            .open(path)
        {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                REFUSED.store(true, Ordering::Relaxed);
            }
            done => return done,
        }
    }
    OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// Open the file at `path` for reading; a symbolic link is refused (`ELOOP`).
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    open_with(path, libc::O_NOFOLLOW)
}

/// The whole content of the file at `path` (which may be a symbolic link).
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_with(path, 0)?;
    let mut bytes = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize + 1));
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// What a directory entry is, as far as its `d_type` tells (a file system that does not fill
/// it in gets an `fstatat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    File,
    Other,
}

/// The entries of directory `path`, `.` and `..` left out. A symbolic link or anything but a
/// directory is refused (`ELOOP`, `ENOTDIR`).
pub(crate) fn list(path: &Path) -> io::Result<Entries> {
    let file = open_with(path, libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
    let fd = file.into_raw_fd();
    // SAFETY: `fd` is an open directory we own; on success the DIR owns it.
    let dir = unsafe { libc::fdopendir(fd) };
    if dir.is_null() {
        let error = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        drop(unsafe { File::from_raw_fd(fd) });
        return Err(error);
    }
    Ok(Entries { dir, done: false })
}

/// An open directory, read an entry at a time ([`list`]). It ends at the first error, as
/// `std::fs::ReadDir` does: asking again would likely fail again, forever.
pub(crate) struct Entries {
    dir: *mut libc::DIR,
    done: bool,
}

// SAFETY: the DIR stream is used only through `&mut self`, never shared.
unsafe impl Send for Entries {}

impl Iterator for Entries {
    /// The entry's name and kind.
    type Item = io::Result<(Vec<u8>, Kind)>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            // SAFETY: errno is thread-local; readdir reports errors only through it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `self.dir` is an open DIR stream.
            let entry = unsafe { libc::readdir(self.dir) };
            if entry.is_null() {
                self.done = true;
                let error = io::Error::last_os_error();
                return (error.raw_os_error() != Some(0)).then_some(Err(error));
            }
            // SAFETY: readdir returned an entry, valid until the next call on this stream. The
            // name is reached by a raw pointer, never a reference to the whole `d_name` array,
            // which may run past the end of a short entry.
            let (name, d_type) = unsafe {
                (
                    CStr::from_ptr((&raw const (*entry).d_name).cast::<libc::c_char>()),
                    (*entry).d_type,
                )
            };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_REG => Kind::File,
                libc::DT_UNKNOWN => self.kind_of(name),
                _ => Kind::Other,
            };
            return Some(Ok((bytes.to_vec(), kind)));
        }
        None
    }
}

impl std::iter::FusedIterator for Entries {}

impl Entries {
    /// The kind of entry `name`, by `fstatat` without following a link, for a file system
    /// that leaves `d_type` unknown.
    fn kind_of(&self, name: &CStr) -> Kind {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `self.dir` is open, so dirfd is valid; `name` is NUL-terminated; `stat` is
        // written by fstatat before it is read, and only read on success.
        let found = unsafe {
            libc::fstatat(
                libc::dirfd(self.dir),
                name.as_ptr(),
                stat.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
        };
        // SAFETY: fstatat succeeded, so `stat` is initialised.
        if found && unsafe { stat.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFREG {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        // SAFETY: `self.dir` is open and closed only here.
        unsafe { libc::closedir(self.dir) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};

    /// Set `path`'s access time far in the past, so that `relatime` updates it at the next
    /// read.
    fn age(path: &Path) {
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::open(path)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(past))
            .unwrap();
    }

    fn atime(path: &Path) -> i64 {
        std::fs::metadata(path).unwrap().atime()
    }

    #[test]
    fn reading_and_listing_leave_access_times_alone_where_we_own_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, control) = (dir.path().join("ours"), dir.path().join("control"));
        for folder in [&ours, &control] {
            std::fs::create_dir(folder).unwrap();
            std::fs::write(folder.join("1.host:2,S"), b"Subject: x\r\n\r\nbody\r\n").unwrap();
            std::fs::create_dir(folder.join("sub")).unwrap();
            age(&folder.join("1.host:2,S"));
            age(folder);
        }
        let before = atime(&ours);

        let message = ours.join("1.host:2,S");
        assert_eq!(read(&message).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        let mut text = String::new();
        io::Read::read_to_string(&mut open_file(&message).unwrap(), &mut text).unwrap();
        let mut names: Vec<_> = list(&ours).unwrap().map(Result::unwrap).collect();
        names.sort();
        assert_eq!(
            names,
            [
                (b"1.host:2,S".to_vec(), Kind::File),
                (b"sub".to_vec(), Kind::Other)
            ]
        );

        // The control, read and listed the ordinary way, shows that this file system updates
        // access times (it would not if mounted `noatime`, and then there is nothing to see).
        std::fs::read(control.join("1.host:2,S")).unwrap();
        std::fs::read_dir(&control).unwrap().for_each(drop);
        if atime(&control) == before {
            eprintln!("this file system does not update access times: nothing to compare");
            return;
        }
        assert!(atime(&control.join("1.host:2,S")) > before);
        // We created the files, so O_NOATIME is ours to use.
        assert_eq!(atime(&message), before);
        assert_eq!(atime(&ours), before);
    }

    #[test]
    fn a_symbolic_link_is_refused_as_a_file_and_as_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("dirlink")).unwrap();
        let refused = open_file(&dir.path().join("link")).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::ELOOP));
        assert!(list(&dir.path().join("dirlink")).is_err());
        assert_eq!(
            list(&dir.path().join("real"))
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(libc::ENOTDIR)
        );
    }
}
