//! The IMAP unread sweeper: not implemented yet.

use anyhow::{bail, Result};

use crate::cli::ImapUnreadArgs;
use crate::exit::ExitStatus;
use crate::output::Format;

/// `imap-unread`.
///
/// # Errors
/// Always, until the server lands.
pub fn run(_args: &ImapUnreadArgs, _format: Format) -> Result<ExitStatus> {
    bail!("not implemented yet (imap-unread is on its way)")
}
