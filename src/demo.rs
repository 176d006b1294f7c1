//! The demo store (`testdata/store`), embedded in the binary so that `--demo` works after
//! `cargo install`, far from any checkout.
//!
//! Maildir names carry their flags after a `:` (`...,W=1106:2,FS`), a character cargo
//! refuses in a packaged file name (Windows cannot hold it). The demo store is therefore
//! kept with `;` in its place, the separator mbsync uses where `:` is not allowed, and
//! [`extract`] writes the real names: what the servers serve is byte for byte the store as
//! Dovecot would keep it. `testdata/store` is thus not a store to point a server at; use
//! `--demo`, or [`extract`] it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir, DirEntry};

use crate::store::{Maildir, PasswdFile};

static DEMO_STORE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/testdata/store");

/// What stands for Maildir's info separator `:` in the embedded file names.
const STORED_INFO_SEPARATOR: char = ';';

/// The real file name of an embedded one: `;` back to `:`.
fn decode_name(stored: &Path) -> PathBuf {
    match stored.file_name().and_then(|n| n.to_str()) {
        Some(name) if name.contains(STORED_INFO_SEPARATOR) => {
            stored.with_file_name(name.replace(STORED_INFO_SEPARATOR, ":"))
        }
        _ => stored.to_path_buf(),
    }
}

/// Write a fresh copy of the demo store into `dest` (which should be empty): `passwd` with
/// mode 0600, a complete Maildir for every user, and message files under their real
/// Maildir names (flags after `:2,`).
///
/// # Errors
/// Fails when a file cannot be written.
pub fn extract(dest: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dest)?;
    write_dir(&DEMO_STORE, dest)?;
    crate::store::set_mode(&dest.join("passwd"), 0o600)?;
    for (name, _) in users() {
        Maildir::create(&dest.join(name))?;
    }
    Ok(())
}

fn write_dir(dir: &Dir<'_>, dest: &Path) -> io::Result<()> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => {
                fs::create_dir_all(dest.join(sub.path()))?;
                write_dir(sub, dest)?;
            }
            DirEntry::File(file) => {
                fs::write(dest.join(decode_name(file.path())), file.contents())?
            }
        }
    }
    Ok(())
}

/// The demo users and their passwords, as printed by the servers' `--demo`.
pub fn users() -> Vec<(String, String)> {
    let passwd = DEMO_STORE
        .get_file("passwd")
        .expect("testdata/store/passwd is embedded");
    let file = PasswdFile::parse(Path::new("demo passwd"), passwd.contents())
        .expect("the embedded demo passwd parses");
    file.entries()
        .map(|e| {
            (
                e.name().to_string(),
                e.clear_password().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, UserName};

    #[test]
    fn extracted_demo_store_is_a_working_store() {
        let dir = tempfile::tempdir().unwrap();
        extract(dir.path()).unwrap();
        let store = Store::new(dir.path());
        let users = users();
        assert_eq!(
            users.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["asterix", "obelix"]
        );
        let mut total = 0;
        for (name, password) in &users {
            let user = store.authenticate(name, password).unwrap().expect("login");
            let mailbox = store.mailbox(&user).unwrap();
            total += mailbox.list().unwrap().len();
        }
        assert!(total >= 12, "only {total} demo messages");
        assert!(store.passwd_permission_warning().is_none());
        let asterix = UserName::parse("asterix").unwrap();
        assert!(store.authenticate("asterix", "wrong").unwrap().is_none());
        assert!(store.mailbox(&asterix).is_ok());
    }

    #[test]
    fn extracted_names_carry_their_flags_after_a_colon() {
        let dir = tempfile::tempdir().unwrap();
        extract(dir.path()).unwrap();
        let mut cur: Vec<String> = fs::read_dir(dir.path().join("asterix/cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        cur.sort();
        assert_eq!(
            cur,
            [
                "1700009122.M418916P4028Q4.village,S=886,W=912:2,S",
                "1700026437.M733103P4049Q7.village,S=1067,W=1106:2,FS",
            ]
        );
        let mut stack = vec![&DEMO_STORE];
        while let Some(dir) = stack.pop() {
            for entry in dir.entries() {
                let name = entry.path().to_string_lossy();
                assert!(!name.contains(':'), "cargo cannot package {name}");
                if let DirEntry::Dir(sub) = entry {
                    stack.push(sub);
                }
            }
        }
    }
}
