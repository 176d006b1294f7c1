//! Mail parsing and summaries: not implemented yet.

use anyhow::{bail, Result};

use crate::cli::InspectArgs;
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::store::Store;

/// `inspect`.
///
/// # Errors
/// Always, until the server lands.
pub fn run(_store: &Store, _args: &InspectArgs, _format: Format) -> Result<ExitStatus> {
    bail!("not implemented yet (inspect is on its way)")
}
