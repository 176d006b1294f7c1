//! Linux inotify through libc: watching directories for files that arrive, leave or are
//! renamed. `mbox wait` blocks on one; the server shell reads one from its async runtime
//! to wake IMAP IDLE sessions (`server::watch`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// A file created or moved in (a delivery, a message moved from `new/` to `cur/`).
pub const ARRIVALS: u32 = libc::IN_CREATE | libc::IN_MOVED_TO;
/// Any change to the set of names: arrivals, removals and renames (flag changes).
pub const CHANGES: u32 = ARRIVALS | libc::IN_MOVED_FROM | libc::IN_DELETE;

/// A non-blocking inotify descriptor.
pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// # Errors
    /// The kernel refuses (too many inotify instances for this user).
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 has no preconditions; a non-negative result is a fresh
        // descriptor we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a valid descriptor owned by no one else.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Watch `dir` for the events in `mask`; returns the watch descriptor, the same one for
    /// the same directory however often it is added.
    ///
    /// # Errors
    /// The directory cannot be watched (gone, or the user's watch limit is reached).
    pub fn add(&self, dir: &Path, mask: u32) -> io::Result<i32> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::other("path holds a NUL byte"))?;
        // SAFETY: fd is valid and path is NUL-terminated.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Stop watching `wd`.
    pub fn remove(&self, wd: i32) {
        // SAFETY: fd is valid; an unknown wd only makes the call fail.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Read every pending event, calling `each` with the watch descriptor of each; returns
    /// once none is left.
    pub fn drain(&self, mut each: impl FnMut(i32)) {
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is valid for its length; the descriptor is non-blocking.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else {
                return;
            };
            if n == 0 {
                return;
            }
            let mut at = 0;
            while at + header <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with the
                // buffer's alignment.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                each(event.wd);
                at += header + event.len as usize;
            }
        }
    }

    /// Block until an event is pending or `timeout` passed, then drain what is pending.
    ///
    /// # Errors
    /// `poll` fails for another reason than a signal.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll reads one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        self.drain(|_| {});
        Ok(())
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
