//! Runs a parsed command line: opens the store, calls the subcommand, hands its results to
//! the printer, and returns the exit status.

use std::io;

use anyhow::Result;

use crate::cli::{Cli, Command, MboxCommand};
use crate::exit::ExitStatus;
use crate::mbox::{self, PasswordSource};
use crate::output::{Format, Printer, Progress};
use crate::store::Store;

/// Run one command line to completion.
///
/// # Errors
/// Any failure of the command; [`crate::exit::report`] turns it into a message and status.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    prepare_process();
    let format = if cli.json {
        Format::Json
    } else {
        Format::Human
    };
    let mut printer = Printer::stdout(format);
    let store = Store::new(&cli.store);
    // Commands that serve or manage the store's users warn once when others can read their
    // clear-text passwords.
    let serves_store = match &cli.command {
        Command::Mbox(_) => true,
        Command::ServePop(args) => !args.server.demo,
        Command::ServeImap(args) => !args.server.demo,
        Command::ServeSmtp(args) => !args.server.demo,
        Command::Serve(args) => !args.server.demo,
        _ => false,
    };
    if serves_store {
        warn_about_permissions(&store);
    }
    match cli.command {
        Command::Completions { shell } => {
            crate::cli::write_completions(shell, &mut io::stdout())?;
        }
        Command::Mbox(command) => run_mbox(&store, command, &mut printer)?,
        Command::ServePop(args) => return crate::pop3::run(&store, &args, format),
        Command::ServeImap(args) => return crate::imap::run(&store, &args, format),
        Command::ServeSmtp(args) => return crate::smtp::run(&store, &args, format),
        Command::Serve(args) => return crate::serve::run(&store, &args, format),
        Command::ImapUnread(args) => return crate::unread::run(&args, format),
        Command::Inspect(args) => return crate::inspect::run(&store, &args, format),
    }
    Ok(ExitStatus::Success)
}

fn password_source(from_stdin: bool) -> PasswordSource {
    if from_stdin {
        PasswordSource::Stdin
    } else {
        PasswordSource::Prompt
    }
}

fn warn_about_permissions(store: &Store) {
    if let Some(warning) = store.passwd_permission_warning() {
        eprintln!("warning: {warning}");
    }
}

fn run_mbox(store: &Store, command: MboxCommand, printer: &mut Printer<io::Stdout>) -> Result<()> {
    match command {
        MboxCommand::AddUser {
            name,
            password_stdin,
        } => printer.print(&mbox::add_user(
            store,
            &name,
            password_source(password_stdin),
        )?)?,
        MboxCommand::DelUser { name, keep_mail } => {
            printer.print(&mbox::del_user(store, &name, keep_mail)?)?
        }
        MboxCommand::Passwd {
            name,
            password_stdin,
        } => {
            let changed = mbox::passwd(store, &name, password_source(password_stdin))?;
            printer.print(&changed)?
        }
        MboxCommand::List => {
            for summary in mbox::list(store)? {
                printer.print(&summary)?;
            }
        }
        MboxCommand::Wait(args) => {
            let wanted = mbox::WaitFor {
                from: args.from,
                subject: args.subject,
            };
            let timeout = std::time::Duration::from_secs(args.timeout);
            printer.print(&mbox::wait(store, &args.name, &wanted, timeout)?)?
        }
        MboxCommand::Purge { name } => printer.print(&mbox::purge(store, &name)?)?,
        MboxCommand::Deliver { name, files, mbox } => {
            let mut progress = Progress::stderr();
            let (mut count, mut bytes) = (0usize, 0u64);
            mbox::deliver(store, &name, &files, mbox, &mut |delivered| {
                count += 1;
                bytes += delivered.bytes;
                progress.update(|| format!("delivered {count} messages, {bytes} bytes"));
                printer.print(delivered)
            })?;
        }
    }
    Ok(())
}

/// Process-wide settings every command relies on.
fn prepare_process() {
    // A write past RLIMIT_FSIZE must fail with EFBIG, which delivery cleans up after, instead
    // of killing the process with SIGXFSZ and leaving a partial file in tmp/.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
