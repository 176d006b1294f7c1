//! The shared test harness: hermetic `mailtool` commands, throwaway stores copied from
//! `testdata/`, and (in `dovecot`, `postfix`) a real Dovecot and Postfix on loopback.
//!
//! Every test works on its own temporary copy, so no test mutates the repository and tests
//! can run in parallel.

#![allow(dead_code)]

pub mod dovecot;
pub mod haproxy;
pub mod imap;
pub mod pop3;
pub mod postfix;
pub mod tls;
pub mod transcript;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// Whether `tool` runs; under CI a missing tool fails the test instead of skipping it.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required under CI"
        );
        eprintln!("{tool} is missing: skipped");
    }
    found
}

/// Run `python3 -c SCRIPT ARGS...` (an independent peer: poplib, imaplib, email) and return
/// its stdout; panics, showing stdout and stderr, unless it exits 0.
pub fn python<I, A>(script: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is on PATH");
    assert!(
        output.status.success(),
        "python3 failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The repository's `testdata/` directory.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// `mailtool` with a clean environment: no `MAILTOOL_*` variables leak in from the caller,
/// and `--store` points at `store`.
pub fn mailtool(store: &Path) -> Command {
    Command::from_std(mailtool_std(store))
}

/// The same as [`mailtool`], as a `std::process::Command` (for `pre_exec`, or to spawn a
/// long-running server).
pub fn mailtool_std(store: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("mailtool"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MAILTOOL_") {
            command.env_remove(key);
        }
    }
    command.arg("--store").arg(store);
    command
}

/// A temporary directory holding a store.
pub struct TempStore {
    dir: TempDir,
}

impl TempStore {
    /// An empty directory where a store may be created (`path()` does not exist yet).
    pub fn empty() -> TempStore {
        TempStore {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A fresh copy of the demo store (users asterix/potion and obelix/menhir), written by
    /// `mailtool::demo::extract` as `--demo` writes it: real Maildir names (`testdata/store`
    /// keeps `;` for `:`), complete Maildirs and `passwd` at mode 0600.
    pub fn demo() -> TempStore {
        let store = TempStore::empty();
        mailtool::demo::extract(&store.path()).expect("extract the demo store");
        store
    }

    /// The store directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The temporary directory around the store, for scratch files.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn mailtool(&self) -> Command {
        mailtool(&self.path())
    }

    pub fn mailtool_std(&self) -> std::process::Command {
        mailtool_std(&self.path())
    }

    /// Message files of a user's mailbox (new/ and cur/), sorted by name.
    pub fn messages(&self, user: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.path().join(user).join(sub);
            if let Ok(read) = fs::read_dir(dir) {
                files.extend(read.map(|e| e.unwrap().path()));
            }
        }
        files.sort();
        files
    }
}

/// Copy a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether the tests run as root (CI does), which some fault tests need and which hides
/// permission errors unless a command drops to [`as_nobody`].
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run `command` as user and group 65534 (nobody), so that file permissions apply to it even
/// when the tests run as root.
pub fn as_nobody(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setgid/setuid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Run `command` with `input` on its stdin (then closed) and its stdout and stderr captured.
pub fn output_with_stdin(
    command: &mut std::process::Command,
    input: &[u8],
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A reference for what IMAP and POP3 put on the wire: every LF not already preceded by CR
/// becomes CRLF. Written independently of the store code, which the tests check against it;
/// its length is what Dovecot's `,W=` field means.
pub fn crlf_line_ends(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}
