//! The demo store (`testdata/store`), embedded in the binary so that `serve-pop --demo` works
//! after `cargo install`, far from any checkout.

use std::fs;
use std::io;
use std::path::Path;

use include_dir::{include_dir, Dir, DirEntry};

use crate::store::{Maildir, PasswdFile};

static DEMO_STORE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/testdata/store");

/// Write a fresh copy of the demo store into `dest` (which should be empty): `passwd` with
/// mode 0600 and a complete Maildir for every user.
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
        let target = dest.join(entry.path());
        match entry {
            DirEntry::Dir(sub) => {
                fs::create_dir_all(&target)?;
                write_dir(sub, dest)?;
            }
            DirEntry::File(file) => fs::write(&target, file.contents())?,
        }
    }
    Ok(())
}

/// The demo users and their passwords, as printed by `serve-pop --demo`.
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
}
