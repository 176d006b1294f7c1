//! The POP3 server (RFC 1939, 2449, 3206, 5034): not implemented yet.

use anyhow::{bail, Result};

use crate::cli::ServePopArgs;
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::store::Store;

/// `serve-pop`.
///
/// # Errors
/// Always, until the server lands.
pub fn run(_store: &Store, _args: &ServePopArgs, _format: Format) -> Result<ExitStatus> {
    bail!("not implemented yet (serve-pop is on its way)")
}
