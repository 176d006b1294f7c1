//! The `mailtool` binary: parse the command line, run it, map the outcome to an exit status.

use std::process::ExitCode;

use clap::Parser;
use mailtool::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match mailtool::app::run(cli) {
        Ok(status) => status.into(),
        Err(error) => mailtool::exit::report(&error).into(),
    }
}
