//! Exclusive locks that hold across processes and vanish with their holder.
//!
//! They are `flock(2)` locks on a lock file: the kernel releases them when the holding process
//! dies, however it dies, so a crashed server never locks a user out for good. Each lock opens
//! the file anew, so two holders inside one process exclude each other as well.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::{Result, StoreError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
