//! `mailtool inspect`: what is inside a mail, a Maildir or the whole store.
//!
//! [`parse`] turns bytes into a [`MessageSummary`] without I/O and without ever panicking
//! (fuzzers call [`summarize`]); [`extract`] writes attachments under safe names; [`render`]
//! is the human view. This module finds the inputs (file, Maildir, store, stdin, `--user`),
//! reads them, and hands one [`Inspected`] value per message to the printer. A file that
//! cannot be read is reported on stderr and the others carry on; the exit status then says
//! that something failed.

pub mod extract;
pub mod parse;
mod render;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::exit::{ExitStatus, WithExitStatus};
use crate::output::{Format, Printer, Progress};
use crate::store::{Maildir, MessageEntry, Store, StoreError, UserName};

pub use extract::{safe_file_name, Extracted, Extractor};
pub use parse::{
    join_addresses, summarize, Address, HeaderField, MessageSummary, ParsedMessage, PartSummary,
};

/// Most threads a mailbox is parsed on.
const MAX_WORKERS: usize = 8;

/// Messages per unit of work handed to a thread.
const CHUNK: usize = 32;

/// How a message is shown to people: in full, or as one line of a mailbox listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Full,
    Line,
}

/// One inspected message: where it came from, its summary, and what the options asked for.
/// Its JSON form is the documented `inspect --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct Inspected {
    /// The file read, or `-` for stdin.
    pub path: String,
    /// The store user whose mailbox holds the message (store and `--user` inputs only).
    pub user: Option<String>,
    /// Octets read.
    pub size: u64,
    /// Maildir flags from the file name, by name (`Seen`, `Replied`, ...).
    pub flags: Vec<String>,
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// Every header field, decoded (with `--headers`).
    pub headers: Option<Vec<HeaderField>>,
    /// The decoded text body (with `--body`).
    pub body: Option<String>,
    /// The attachments written (with `--extract`).
    pub extracted: Option<Vec<Extracted>>,
    #[serde(skip)]
    pub view: View,
    /// What was asked for, so that the human view can say "no text part" for `--body`.
    #[serde(skip)]
    pub options: Options,
}

/// Maildir flag letters (the `:2,` info) by name; other letters (Dovecot keywords) are kept
/// as they are.
pub fn flag_names(letters: &str) -> Vec<String> {
    letters
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|letter| {
            match letter {
                'D' => "Draft",
                'F' => "Flagged",
                'P' => "Passed",
                'R' => "Replied",
                'S' => "Seen",
                'T' => "Trashed",
                _ => return letter.to_string(),
            }
            .to_owned()
        })
        .collect()
}

/// What the options ask to show besides the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub headers: bool,
    pub body: bool,
}

/// Inspect one message's bytes: the pure part of the command, shared by every input kind.
/// Attachments are written when `extractor` is given; failures to write them are returned
/// next to the report so that the caller can report them and carry on.
pub fn inspect_bytes(
    bytes: &[u8],
    path: String,
    user: Option<String>,
    flag_letters: &str,
    options: Options,
    extractor: Option<&mut Extractor>,
    view: View,
) -> (Inspected, Vec<anyhow::Error>) {
    let parsed = ParsedMessage::parse(bytes);
    let mut errors = Vec::new();
    let extracted = extractor.map(|extractor| {
        let mut written = Vec::new();
        for (part, contents) in parsed.attachments() {
            match extractor.write(part, &contents) {
                Ok(extracted) => written.push(extracted),
                Err(error) => errors.push(error.context(format!(
                    "cannot extract part {} of {path}",
                    part.part.as_deref().unwrap_or("?")
                ))),
            }
        }
        written
    });
    let headers = options.headers.then(|| parsed.headers());
    let body = if options.body {
        parsed.text_body()
    } else {
        None
    };
    let inspected = Inspected {
        user,
        size: bytes.len() as u64,
        flags: flag_names(flag_letters),
        summary: parsed.into_summary(),
        headers,
        body,
        extracted,
        view,
        options,
        path,
    };
    (inspected, errors)
}

/// What a PATH argument turned out to be.
enum Input {
    Stdin,
    File(PathBuf),
    Maildir(PathBuf),
    Store(PathBuf),
    User(UserName),
}

/// `inspect`.
///
/// # Errors
/// A usage error when there is nothing to inspect, an unknown `--user`, an unusable
/// `--extract` directory, or stdout going away. A message that cannot be read is not an
/// error here: it is reported on stderr and the exit status is [`ExitStatus::Failure`].
pub fn run(store: &Store, args: &InspectArgs, format: Format) -> Result<ExitStatus> {
    let mut inputs = Vec::new();
    if let Some(name) = &args.user {
        let user = UserName::parse(name).exit_status(ExitStatus::Usage)?;
        inputs.push(Input::User(user));
    }
    for path in &args.paths {
        inputs.push(if path.as_os_str() == "-" {
            Input::Stdin
        } else if path.join("cur").is_dir() || path.join("new").is_dir() {
            Input::Maildir(path.clone())
        } else if path.is_dir() && path.join("passwd").is_file() {
            Input::Store(path.clone())
        } else {
            Input::File(path.clone())
        });
    }
    if inputs.is_empty() {
        return Err(anyhow::anyhow!(
            "nothing to inspect (give mail files, Maildirs, the store, or - for stdin; or --user NAME)"
        ))
        .exit_status(ExitStatus::Usage);
    }
    let mut inspector = Inspector {
        // Buffered, so that serialising a message is one write instead of one per string
        // (the printer still flushes after each message).
        printer: Printer::new(format, BufWriter::new(io::stdout())),
        options: Options {
            headers: args.headers,
            body: args.body,
        },
        extractor: args
            .extract
            .as_deref()
            .map(|dir| Extractor::new(dir, args.force))
            .transpose()?,
        failed: false,
        progress: Progress::stderr(),
        done: 0,
        total: 0,
    };
    for input in inputs {
        match input {
            Input::Stdin => inspector.stdin()?,
            Input::File(path) => inspector.file(&path)?,
            Input::Maildir(path) => match Maildir::open(&path) {
                Ok(maildir) => inspector.maildir(&maildir, None)?,
                Err(error) => inspector.fail(error.into()),
            },
            Input::Store(path) => inspector.store(&Store::new(path))?,
            Input::User(user) => {
                let maildir = user_mailbox(store, &user)?;
                inspector.maildir(&maildir, Some(&user))?;
            }
        }
    }
    inspector.progress.finish();
    Ok(if inspector.failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// A user's Maildir, read-only: unlike [`Store::mailbox`], nothing is created.
fn user_mailbox(store: &Store, user: &UserName) -> Result<Maildir, StoreError> {
    if store.read_passwd()?.find(user).is_none() {
        return Err(StoreError::UnknownUser {
            name: user.clone(),
            passwd: store.passwd_path(),
        });
    }
    Maildir::open(&store.mailbox_path(user))
}

struct Inspector {
    printer: Printer<BufWriter<io::Stdout>>,
    options: Options,
    extractor: Option<Extractor>,
    failed: bool,
    /// `inspecting 1200/5000` while mailboxes are read.
    progress: Progress,
    done: usize,
    total: usize,
}

impl Inspector {
    /// Report a failure that only concerns one input, and carry on.
    fn fail(&mut self, error: anyhow::Error) {
        self.progress.finish();
        eprintln!("error: {error:#}");
        self.failed = true;
    }

    fn tick(&mut self) {
        self.done += 1;
        let (done, total) = (self.done, self.total);
        self.progress
            .update(|| format!("inspecting {done}/{total}"));
    }

    /// `--headers` and `--body` ask for more than one line can hold.
    fn view_for(&self, view: View) -> View {
        if self.options.headers || self.options.body {
            View::Full
        } else {
            view
        }
    }

    fn show(
        &mut self,
        bytes: &[u8],
        path: String,
        user: Option<&UserName>,
        flags: &str,
        view: View,
    ) -> Result<()> {
        let view = self.view_for(view);
        let (inspected, errors) = inspect_bytes(
            bytes,
            path,
            user.map(|u| u.as_str().to_owned()),
            flags,
            self.options,
            self.extractor.as_mut(),
            view,
        );
        for error in errors {
            self.fail(error);
        }
        self.printer.print(&inspected)?;
        Ok(())
    }

    fn stdin(&mut self) -> Result<()> {
        let mut bytes = Vec::new();
        match io::stdin().lock().read_to_end(&mut bytes) {
            Ok(_) => self.show(&bytes, "-".into(), None, "", View::Full),
            Err(error) => {
                self.fail(anyhow::Error::new(error).context("cannot read stdin"));
                Ok(())
            }
        }
    }

    fn file(&mut self, path: &Path) -> Result<()> {
        match fs::read(path) {
            Ok(bytes) => {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let flags = name.split_once(":2,").map_or("", |(_, flags)| flags);
                self.show(&bytes, path.display().to_string(), None, flags, View::Full)
            }
            Err(error) => {
                let why = if error.kind() == io::ErrorKind::IsADirectory {
                    "it is a directory, but neither a Maildir (no cur/ or new/) nor a store (no passwd)".to_owned()
                } else {
                    io_reason(&error)
                };
                self.fail(anyhow::anyhow!("cannot read {} ({why})", path.display()));
                Ok(())
            }
        }
    }

    fn maildir(&mut self, maildir: &Maildir, user: Option<&UserName>) -> Result<()> {
        let entries = match maildir.list() {
            Ok(entries) => entries,
            Err(error) => {
                self.fail(error.into());
                return Ok(());
            }
        };
        self.total += entries.len();
        // Extraction names files in message order, so it stays on one thread.
        let workers = if self.extractor.is_some() {
            1
        } else {
            thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_WORKERS)
        };
        if workers > 1 && entries.len() >= 4 * workers {
            return self.maildir_in_parallel(maildir, user, &entries, workers);
        }
        for entry in entries {
            self.tick();
            match read_entry(maildir, &entry) {
                Ok((bytes, entry)) => {
                    let path = maildir.entry_path(&entry).display().to_string();
                    self.show(&bytes, path, user, entry.flags(), View::Line)?;
                }
                Err(error) => self.fail(error),
            }
        }
        Ok(())
    }

    /// Read, parse and render messages on `workers` threads; print them here, in mailbox
    /// order. Parsing dominates the cost of a mailbox, and messages are independent.
    fn maildir_in_parallel(
        &mut self,
        maildir: &Maildir,
        user: Option<&UserName>,
        entries: &[MessageEntry],
        workers: usize,
    ) -> Result<()> {
        let next = AtomicUsize::new(0);
        let format = self.printer.format();
        let options = self.options;
        let view = self.view_for(View::Line);
        let render = |entry: &MessageEntry| -> Result<Vec<u8>> {
            let (bytes, entry) = read_entry(maildir, entry)?;
            let path = maildir.entry_path(&entry).display().to_string();
            let user = user.map(|u| u.as_str().to_owned());
            let (inspected, _) =
                inspect_bytes(&bytes, path, user, entry.flags(), options, None, view);
            let mut printer = Printer::new(format, Vec::with_capacity(4096));
            printer.print(&inspected)?;
            Ok(printer.into_inner())
        };
        // Work is handed out and sent back in chunks: per message, the channel's locking
        // would cost as much as the parsing.
        let (sender, receiver) = mpsc::sync_channel::<(usize, Vec<Result<Vec<u8>>>)>(4 * workers);
        thread::scope(|scope| {
            for _ in 0..workers {
                let sender = sender.clone();
                let next = &next;
                let render = &render;
                scope.spawn(move || loop {
                    let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                    let Some(chunk) = entries.get(start..(start + CHUNK).min(entries.len())) else {
                        break;
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    let rendered = chunk.iter().map(render).collect();
                    // The receiver is gone only when printing failed; stop quietly.
                    if sender.send((start / CHUNK, rendered)).is_err() {
                        break;
                    }
                });
            }
            drop(sender);
            let mut waiting = BTreeMap::new();
            let mut next_to_print = 0;
            for (index, rendered) in receiver {
                waiting.insert(index, rendered);
                while let Some(chunk) = waiting.remove(&next_to_print) {
                    next_to_print += 1;
                    for rendered in chunk {
                        self.tick();
                        match rendered {
                            Ok(bytes) => self.printer.raw().write_all(&bytes)?,
                            Err(error) => self.fail(error),
                        }
                    }
                    self.printer.raw().flush()?;
                }
            }
            Ok(())
        })
    }

    fn store(&mut self, store: &Store) -> Result<()> {
        let users = match store.users() {
            Ok(users) => users,
            Err(error) => {
                self.fail(error.into());
                return Ok(());
            }
        };
        for user in users {
            match Maildir::open(&store.mailbox_path(&user)) {
                Ok(maildir) => self.maildir(&maildir, Some(&user))?,
                Err(error) => self.fail(error.into()),
            }
        }
        Ok(())
    }
}

/// An I/O error's description without the `(os error N)` that only programmers read.
fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

fn read_entry(maildir: &Maildir, entry: &MessageEntry) -> Result<(Vec<u8>, MessageEntry)> {
    let (mut file, moved) = maildir.open_message(entry)?;
    let entry = moved.unwrap_or_else(|| entry.clone());
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", maildir.entry_path(&entry).display()))?;
    Ok((bytes, entry))
}
