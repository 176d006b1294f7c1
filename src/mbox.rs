//! The `mbox` subcommands: create and remove users, change passwords, list mailboxes and
//! deliver mail. Each returns values for the printer; none prints by itself.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::mboxrd::{self, MessageSink};
use crate::store::{Delivery, MailboxState, Maildir, Store, StoreError, UserName};

/// Where a new password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of stdin.
    Stdin,
    /// A no-echo prompt, asked twice, on the terminal.
    Prompt,
}

/// Read a new password for `user`.
///
/// # Errors
/// Fails when stdin is empty, when there is no terminal to prompt on, or when the two
/// entries differ.
pub fn read_new_password(user: &UserName, source: PasswordSource) -> Result<String> {
    match source {
        PasswordSource::Stdin => {
            let mut line = String::new();
            io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                bail!("no password on stdin (pipe one line holding the password)");
            }
            Ok(password)
        }
        PasswordSource::Prompt => {
            if !io::stdin().is_terminal() {
                bail!(
                    "no password given (use --password-stdin, or run on a terminal to be prompted)"
                );
            }
            let first = rpassword::prompt_password(format!("New password for {user}: "))
                .context("cannot read the password from the terminal")?;
            let second = rpassword::prompt_password("Retype the password: ")
                .context("cannot read the password from the terminal")?;
            if first != second {
                bail!("the two passwords differ (nothing was changed; try again)");
            }
            Ok(first)
        }
    }
}

fn parse_user(name: &str) -> Result<UserName> {
    Ok(UserName::parse(name)?)
}

/// The result of `add-user`.
#[derive(Debug, Serialize)]
pub struct UserAdded {
    pub user: String,
    pub mailbox: PathBuf,
    /// True when an existing mailbox (kept by `del-user --keep-mail`) was taken over.
    pub reused_mailbox: bool,
}

impl fmt::Display for UserAdded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.reused_mailbox {
            "reusing the existing mailbox"
        } else {
            "mailbox"
        };
        writeln!(
            f,
            "added user {} ({how} {})",
            self.user,
            self.mailbox.display()
        )
    }
}

/// `mbox add-user`.
pub fn add_user(store: &Store, name: &str, source: PasswordSource) -> Result<UserAdded> {
    let user = parse_user(name)?;
    if store.read_passwd().is_ok_and(|f| f.find(&user).is_some()) {
        return Err(StoreError::UserExists {
            name: user,
            passwd: store.passwd_path(),
        }
        .into());
    }
    let password = read_new_password(&user, source)?;
    let state = store.add_user(&user, &password)?;
    Ok(UserAdded {
        mailbox: store.mailbox_path(&user),
        user: user.to_string(),
        reused_mailbox: state == MailboxState::Reused,
    })
}

/// The result of `del-user`.
#[derive(Debug, Serialize)]
pub struct UserRemoved {
    pub user: String,
    /// Where the mail was kept, when `--keep-mail` was given.
    pub kept_mailbox: Option<PathBuf>,
}

impl fmt::Display for UserRemoved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kept_mailbox {
            Some(path) => writeln!(
                f,
                "removed user {} (mail kept in {})",
                self.user,
                path.display()
            ),
            None => writeln!(f, "removed user {} and their mailbox", self.user),
        }
    }
}

/// `mbox del-user`.
pub fn del_user(store: &Store, name: &str, keep_mail: bool) -> Result<UserRemoved> {
    let user = parse_user(name)?;
    store.remove_user(&user, keep_mail)?;
    Ok(UserRemoved {
        kept_mailbox: keep_mail.then(|| store.mailbox_path(&user)),
        user: user.to_string(),
    })
}

/// The result of `passwd`.
#[derive(Debug, Serialize)]
pub struct PasswordChanged {
    pub user: String,
}

impl fmt::Display for PasswordChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "changed the password of {}", self.user)
    }
}

/// `mbox passwd`.
pub fn passwd(store: &Store, name: &str, source: PasswordSource) -> Result<PasswordChanged> {
    let user = parse_user(name)?;
    if store.read_passwd()?.find(&user).is_none() {
        return Err(StoreError::UnknownUser {
            name: user,
            passwd: store.passwd_path(),
        }
        .into());
    }
    let password = read_new_password(&user, source)?;
    store.set_password(&user, &password)?;
    Ok(PasswordChanged {
        user: user.to_string(),
    })
}

/// One line of `mbox list`.
#[derive(Debug, Serialize)]
pub struct MailboxSummary {
    pub user: String,
    pub messages: usize,
    pub unread: usize,
    pub bytes: u64,
}

impl fmt::Display for MailboxSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>6} messages {:>6} unread {:>12} bytes",
            self.user, self.messages, self.unread, self.bytes
        )
    }
}

/// `mbox list`: every user with counts taken from file names (sizes from `,S=` when present).
pub fn list(store: &Store) -> Result<Vec<MailboxSummary>> {
    let mut summaries = Vec::new();
    for (user, mailbox) in store.mailboxes()? {
        let entries = mailbox.list()?;
        let mut bytes = 0;
        for entry in &entries {
            bytes += mailbox.size_on_disk(entry)?;
        }
        summaries.push(MailboxSummary {
            user: user.to_string(),
            messages: entries.len(),
            unread: entries.iter().filter(|e| e.is_unread()).count(),
            bytes,
        });
    }
    Ok(summaries)
}

/// One delivered message.
#[derive(Debug, Serialize)]
pub struct Delivered {
    pub user: String,
    /// The path of the new file, relative to the user's Maildir.
    pub file: PathBuf,
    pub bytes: u64,
    /// Where the message came from: a file name, `-` for stdin, `NAME#N` for the Nth message of
    /// an mbox.
    pub source: String,
}

impl fmt::Display for Delivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "delivered {} to {} ({} bytes, {})",
            self.source,
            self.user,
            self.bytes,
            self.file.display()
        )
    }
}

/// `mbox deliver`: each input (stdin when there is none) is one message, or with `mbox` an
/// mbox file split into messages. Delivered messages are reported through `each` as soon as
/// they are safely in `new/`, so a later failure does not hide them.
pub fn deliver(
    store: &Store,
    name: &str,
    files: &[PathBuf],
    as_mbox: bool,
    each: &mut dyn FnMut(&Delivered) -> io::Result<()>,
) -> Result<usize> {
    let user = parse_user(name)?;
    let mailbox = store.mailbox(&user)?;
    let inputs: Vec<Option<&Path>> = if files.is_empty() {
        vec![None]
    } else {
        files
            .iter()
            .map(|p| Some(p.as_path()).filter(|p| p != &Path::new("-")))
            .collect()
    };
    let mut count = 0;
    for input in inputs {
        let label = input.map_or_else(|| "-".to_owned(), |p| p.display().to_string());
        let reader: Box<dyn Read> = match input {
            None => Box::new(io::stdin().lock()),
            Some(path) => Box::new(
                File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
            ),
        };
        let reader = BufReader::with_capacity(64 * 1024, reader);
        let mut sink = DeliverySink {
            mailbox: &mailbox,
            user: &user,
            label: &label,
            index: 0,
            numbered: as_mbox,
            each: &mut *each,
        };
        let failed = |e: io::Error| {
            anyhow::Error::new(e).context(format!("cannot deliver {label} to {user}"))
        };
        if as_mbox {
            count += mboxrd::split(reader, &mut sink).map_err(failed)?;
        } else {
            let mut delivery = sink.start().map_err(failed)?;
            io::copy(&mut { reader }, &mut delivery).map_err(failed)?;
            if delivery.size() == 0 {
                bail!("refusing to deliver {label} to {user} (it is empty)");
            }
            sink.finish(delivery).map_err(failed)?;
            count += 1;
        }
    }
    Ok(count)
}

struct DeliverySink<'a> {
    mailbox: &'a Maildir,
    user: &'a UserName,
    label: &'a str,
    index: usize,
    /// Messages split from an mbox are told apart by their position in it.
    numbered: bool,
    each: &'a mut dyn FnMut(&Delivered) -> io::Result<()>,
}

fn store_io(error: StoreError) -> io::Error {
    let kind = error.io_kind().unwrap_or(io::ErrorKind::Other);
    io::Error::new(kind, error.to_string())
}

impl MessageSink for DeliverySink<'_> {
    type Message = Delivery;

    fn start(&mut self) -> io::Result<Delivery> {
        self.mailbox.deliver().map_err(store_io)
    }

    fn line(&mut self, message: &mut Delivery, line: &[u8]) -> io::Result<()> {
        message.write_all(line)
    }

    fn finish(&mut self, message: Delivery) -> io::Result<()> {
        self.index += 1;
        let bytes = message.size();
        let entry = message.commit().map_err(store_io)?;
        let source = if self.numbered {
            format!("{}#{}", self.label, self.index)
        } else {
            self.label.to_owned()
        };
        (self.each)(&Delivered {
            user: self.user.to_string(),
            file: entry.relative_path(),
            bytes,
            source,
        })
    }
}

/// What `mbox wait` looks for.
#[derive(Debug, Clone, Default)]
pub struct WaitFor {
    /// A piece of the From header (name or address), any case.
    pub from: Option<String>,
    /// A piece of the decoded Subject, any case.
    pub subject: Option<String>,
}

impl WaitFor {
    fn matches(&self, summary: &crate::inspect::parse::MessageSummary) -> bool {
        let from_ok = self.from.as_ref().is_none_or(|needle| {
            let needle = needle.to_lowercase();
            summary.from.iter().any(|a| {
                a.address.to_lowercase().contains(&needle)
                    || a.name
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
            })
        });
        let subject_ok = self.subject.as_ref().is_none_or(|needle| {
            summary
                .subject
                .as_ref()
                .is_some_and(|s| s.to_lowercase().contains(&needle.to_lowercase()))
        });
        from_ok && subject_ok
    }
}

/// `mbox wait`: the first message of `name`'s mailbox (already there or arriving) that
/// matches, as `inspect` summarises it. Waits on inotify, not by polling the directory.
///
/// # Errors
/// An unknown user, an unreadable mailbox, or no match within `timeout`: the last one
/// carries [`crate::exit::ExitStatus::Timeout`].
pub fn wait(
    store: &Store,
    name: &str,
    wanted: &WaitFor,
    timeout: std::time::Duration,
) -> Result<crate::inspect::Inspected> {
    use crate::exit::{ExitStatus, WithExitStatus};
    let user = parse_user(name)?;
    let mailbox = store.mailbox(&user)?;
    // Watch before the first scan, so a mail arriving between the two is not missed.
    let watch = crate::inotify::Inotify::new()
        .and_then(|watch| {
            for dir in mailbox.change_dirs() {
                watch.add(&dir, crate::inotify::ARRIVALS)?;
            }
            Ok(watch)
        })
        .context("cannot watch the mailbox for new mail (inotify)")?;
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = std::collections::HashSet::new();
    loop {
        for entry in mailbox.list()? {
            if !seen.insert(entry.unique().to_owned()) {
                continue;
            }
            let Ok((mut file, moved)) = mailbox.open_message(&entry) else {
                continue;
            };
            let entry = moved.unwrap_or(entry);
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_err() {
                continue;
            }
            let path = mailbox.entry_path(&entry).display().to_string();
            let (inspected, _) = crate::inspect::inspect_bytes(
                &bytes,
                path,
                Some(user.to_string()),
                entry.flags(),
                crate::inspect::Options::default(),
                None,
                crate::inspect::View::Line,
            );
            if wanted.matches(&inspected.summary) {
                return Ok(inspected);
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(anyhow::anyhow!(
                "no matching mail for {user} within {} s (mailtool inspect --user {user} shows what is there)",
                timeout.as_secs()
            ))
            .exit_status(ExitStatus::Timeout);
        }
        watch
            .wait(left)
            .context("cannot watch the mailbox for new mail")?;
    }
}

/// The result of `mbox purge`.
#[derive(Debug, Serialize)]
pub struct Purged {
    pub user: String,
    pub removed: usize,
}

impl fmt::Display for Purged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "removed {} messages of {}", self.removed, self.user)
    }
}

/// `mbox purge`: remove every message of the user's INBOX. The uidlist stays consistent:
/// Dovecot (and mailtool's IMAP) drop the UIDs of files that are gone.
///
/// # Errors
/// An unknown user, or a message that cannot be removed.
pub fn purge(store: &Store, name: &str) -> Result<Purged> {
    let user = parse_user(name)?;
    let mailbox = store.mailbox(&user)?;
    let mut removed = 0;
    for entry in mailbox.list()? {
        if mailbox.remove(&entry)? {
            removed += 1;
        }
    }
    mailbox.sync()?;
    Ok(Purged {
        user: user.to_string(),
        removed,
    })
}
