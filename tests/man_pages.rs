//! The committed man pages under `docs/man/` match what clap_mangen makes of the command
//! line's definition: `mailtool.1` and one page per subcommand (`mailtool-serve-pop.1`,
//! `mailtool-mbox-add-user.1`, ...). `MAILTOOL_WRITE_MAN=1 cargo test --test man_pages`
//! rewrites them, removing pages of subcommands that are gone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// Every `.1` file in `dir`, by name.
fn pages(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn committed_man_pages_are_current() {
    let fresh_dir = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(mailtool::cli::Cli::command(), fresh_dir.path()).unwrap();
    let fresh = pages(fresh_dir.path());
    for expected in [
        "mailtool.1",
        "mailtool-serve-pop.1",
        "mailtool-serve-imap.1",
        "mailtool-serve.1",
        "mailtool-imap-unread.1",
        "mailtool-inspect.1",
        "mailtool-mbox.1",
        "mailtool-mbox-add-user.1",
        "mailtool-mbox-deliver.1",
        "mailtool-completions.1",
    ] {
        assert!(
            fresh.contains_key(expected),
            "no {expected} in {:?}",
            fresh.keys()
        );
    }

    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    if std::env::var_os("MAILTOOL_WRITE_MAN").is_some_and(|v| v == "1") {
        fs::create_dir_all(&dir).unwrap();
        for name in pages(&dir).keys() {
            if !fresh.contains_key(name) {
                fs::remove_file(dir.join(name)).unwrap();
            }
        }
        for (name, content) in &fresh {
            fs::write(dir.join(name), content).unwrap();
        }
        return;
    }
    let committed = pages(&dir);
    let mut stale = Vec::new();
    for (name, content) in &fresh {
        match committed.get(name) {
            None => stale.push(format!("docs/man/{name} is missing")),
            Some(old) if old != content => stale.push(format!("docs/man/{name} differs")),
            Some(_) => {}
        }
    }
    for name in committed.keys() {
        if !fresh.contains_key(name) {
            stale.push(format!("docs/man/{name} belongs to no subcommand"));
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages (rewrite with MAILTOOL_WRITE_MAN=1 cargo test --test man_pages):\n{}",
        stale.join("\n")
    );
}
