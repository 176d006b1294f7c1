//! `imap-unread`: print every unread mail of an IMAP mailbox, then delete exactly those.
//!
//! The course's script ("display all of a user's unread mails, then delete them") made safe
//! for a real mailbox: [`connect`] reaches the server with timeouts and TLS and logs in,
//! [`sweep`] does the UID-only fetch-print-delete cycle and its safety rules, [`render`]
//! turns one mail into the printed block, JSON object or mboxrd entry, and [`trace`] shows
//! the dialogue with the password masked. This file only gathers the settings and the
//! password and wires the printer to the sweep.

pub mod connect;
pub mod render;
pub mod sweep;
pub mod trace;

use std::fs;
use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::ImapUnreadArgs;
use crate::exit::{ExitStatus, WithExitStatus};
use crate::output::{Format, Printer};
use connect::{Endpoint, Security};
use render::MailRecord;
use sweep::{FetchedMail, Output, SweepOptions};

/// The environment variable the password may come from.
pub const PASSWORD_ENV: &str = "MAILTOOL_PASSWORD";

/// `imap-unread`.
///
/// # Errors
/// No password, a connection, TLS, login or server failure; each carries its exit status.
pub fn run(args: &ImapUnreadArgs, format: Format) -> Result<ExitStatus> {
    if args.raw && format == Format::Json {
        return Err(anyhow::anyhow!(
            "--raw and --json exclude each other (--raw prints mboxrd, --json JSON lines)"
        ))
        .exit_status(ExitStatus::Usage);
    }
    let endpoint = endpoint(args);
    let password = read_password(args, &endpoint)?;
    let options = SweepOptions {
        mailbox: args.mailbox.clone(),
        keep: args.keep,
        allow_expunge_all: args.allow_expunge_all,
    };

    let mut session = connect::open_session(&endpoint, &args.user, &password)?;
    drop(password);
    let stdout = io::stdout();
    let mut output = Stdout {
        // One buffered writer so that a mail leaves in a few large writes; the printer
        // flushes after every mail, which is what makes "printed" mean "accepted by stdout".
        printer: Printer::new(format, BufWriter::with_capacity(64 << 10, stdout.lock())),
        raw: args.raw,
    };
    let report = sweep::sweep(&mut session, &endpoint, &options, &mut output)?;
    // Logging out is a courtesy: everything that matters has been answered already.
    let _ = session.logout();
    eprintln!("{report}");
    Ok(report.status())
}

/// The process's stdout, as the sweep's [`Output`].
struct Stdout<'a> {
    printer: Printer<BufWriter<StdoutLock<'a>>>,
    raw: bool,
}

impl Output for Stdout<'_> {
    fn print(&mut self, mail: &FetchedMail<'_>) -> io::Result<()> {
        if self.raw {
            let entry = render::mboxrd_entry(mail.source, mail.internal_date);
            let out = self.printer.raw();
            out.write_all(&entry)?;
            out.flush()
        } else {
            self.printer
                .print(&MailRecord::from_source(mail.uid, mail.source))
        }
    }

    fn confirm(&mut self) -> io::Result<()> {
        self.printer.raw().flush()?;
        let mut poll = libc::pollfd {
            fd: io::stdout().as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout: poll only reports the descriptor's state.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        // POLLERR on a pipe's write end: its reader has closed it.
        if ready > 0 && poll.revents & libc::POLLERR != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        sync_if_regular_file(poll.fd)
    }
}

/// `imap-unread --raw > saved.mbox`: the server deletes the mails the moment we ask, so
/// the file must be on disk first, or a crash right after the sweep loses them twice.
/// Pipes and terminals cannot be synced and need not be.
fn sync_if_regular_file(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: fstat fills a zeroed stat for a descriptor we hold open.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(());
    }
    // SAFETY: fdatasync only flushes a descriptor we hold open.
    if unsafe { libc::fdatasync(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn endpoint(args: &ImapUnreadArgs) -> Endpoint {
    let security = if args.tls {
        Security::Tls
    } else if args.starttls {
        Security::StartTls
    } else {
        Security::Plain
    };
    let default_port = if security == Security::Tls { 993 } else { 143 };
    Endpoint {
        host: args.host.clone(),
        port: args.port.unwrap_or(default_port),
        security,
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        timeout: Duration::from_secs(args.timeout.max(1)),
        trace: args.trace,
    }
}

/// The password: `--password-file`, else `$MAILTOOL_PASSWORD`, else a prompt on a terminal.
fn read_password(args: &ImapUnreadArgs, endpoint: &Endpoint) -> Result<String> {
    if let Some(path) = &args.password_file {
        return password_from_file(path);
    }
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    if io::stdin().is_terminal() {
        return rpassword::prompt_password(format!(
            "IMAP password for {} at {endpoint}: ",
            args.user
        ))
        .context("cannot read the password from the terminal");
    }
    Err(anyhow::anyhow!(
        "no password for {} (give --password-file FILE or set {PASSWORD_ENV}; there is no \
         terminal to prompt on)",
        args.user
    ))
    .exit_status(ExitStatus::Usage)
}

fn password_from_file(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        bail!(
            "the password file {} is empty (put the password on its first line)",
            path.display()
        );
    }
    Ok(password.to_owned())
}
