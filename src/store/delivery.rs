//! One delivered message, several mailboxes: the copies of a delivery to several recipients.
//!
//! The message is written once through [`Maildir::deliver`] and committed into the first
//! recipient's `new/`; every other recipient gets a hard link of that file under a name of
//! its own (the same `,S=`/`,W=` fields), or a copy through its `tmp/` when the mailboxes
//! are on different file systems. Each copy is made durable as a delivery is
//! ([`Maildir::sync_delivered`]) before it counts as made.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use super::maildir::{fresh_unique_name, new_entry};
use super::{Maildir, MessageEntry, Result, StoreError};

impl Maildir {
    /// Deliver another copy of `entry`, a message of `source`, into this Maildir's `new/`,
    /// synced.
    ///
    /// # Errors
    /// The source is gone, or the copy cannot be written or synced; nothing is left then.
    pub fn deliver_copy(&self, source: &Maildir, entry: &MessageEntry) -> Result<MessageEntry> {
        self.ensure_folders()?;
        let fields = &entry.base()[entry.unique().len()..];
        let name = format!("{}{fields}", fresh_unique_name());
        let from = source.entry_path(entry);
        let new_dir = self.path().join("new");
        let target = new_dir.join(&name);
        match fs::hard_link(&from, &target) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                self.copy_through_tmp(&from, &name)?
            }
            Err(e) => return Err(StoreError::io("deliver into", &target, e)),
        }
        self.note_change();
        let in_order = super::commit_order::covers_maildir(self.path());
        if let Err(e) = self.sync_delivered(in_order) {
            let _ = self.remove(&new_entry(name));
            return Err(e);
        }
        Ok(new_entry(name))
    }

    /// The copy for another file system: write into `tmp/`, sync, link into `new/`.
    fn copy_through_tmp(&self, from: &std::path::Path, name: &str) -> Result<()> {
        let tmp = self.path().join("tmp").join(name);
        let target = self.path().join("new").join(name);
        let copied = (|| -> io::Result<()> {
            let mut reader = File::open(from)?;
            let mut writer = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            io::copy(&mut reader, &mut writer)?;
            super::blocking(|| writer.sync_all())?;
            fs::hard_link(&tmp, &target)
        })();
        let _ = fs::remove_file(&tmp);
        copied.map_err(|e| StoreError::io("deliver into", &target, e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn copies_keep_the_bytes_and_size_fields_under_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let first = Maildir::create(&dir.path().join("a")).unwrap();
        let second = Maildir::create(&dir.path().join("b")).unwrap();
        let mut delivery = first.deliver().unwrap();
        delivery.write_all(b"Subject: x\n\nhello\n").unwrap();
        let entry = delivery.commit().unwrap();
        let copy = second.deliver_copy(&first, &entry).unwrap();
        assert_ne!(copy.unique(), entry.unique());
        assert_eq!(copy.size_field(), entry.size_field());
        assert_eq!(copy.crlf_size_field(), entry.crlf_size_field());
        assert_eq!(
            fs::read(second.entry_path(&copy)).unwrap(),
            fs::read(first.entry_path(&entry)).unwrap()
        );
        assert!(fs::read_dir(dir.path().join("b/tmp"))
            .unwrap()
            .next()
            .is_none());
    }
}
