//! Exit statuses: what each one means, and how an error chain maps to one.
//!
//! Scripts branch on these, so they are part of the interface and documented in the README.
//! An error carries its status by wrapping a [`Failure`] somewhere in its chain; anything else
//! is a plain failure (1). A closed stdout (`mailtool ... | head`) is not an error at all.

use std::fmt;
use std::io;

/// The exit statuses mailtool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything asked for was done.
    Success,
    /// 1: the command failed; the message says why.
    Failure,
    /// 2: the command line was wrong (clap uses this too).
    Usage,
    /// 3: a server refused the credentials.
    AuthFailed,
    /// 4: a server could not be reached, or TLS failed.
    Connection,
    /// 5: a server answered with an error or broke the protocol.
    Server,
    /// 6: what was waited for did not happen in time (`mbox wait --timeout`).
    Timeout,
}

impl ExitStatus {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::AuthFailed => 3,
            ExitStatus::Connection => 4,
            ExitStatus::Server => 5,
            ExitStatus::Timeout => 6,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// An error that says which exit status it deserves.
///
/// Build one with [`Failure::new`] or [`WithExitStatus::exit_status`]; it can be wrapped in
/// further `anyhow` context and [`status_of`] still finds it.
#[derive(Debug)]
pub struct Failure {
    status: ExitStatus,
    error: anyhow::Error,
}

impl Failure {
    pub fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status,
            error: error.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}

/// Attach an exit status to the error of a result.
pub trait WithExitStatus<T> {
    fn exit_status(self, status: ExitStatus) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithExitStatus<T> for Result<T, E> {
    fn exit_status(self, status: ExitStatus) -> anyhow::Result<T> {
        self.map_err(|error| Failure::new(status, error).into())
    }
}

/// The exit status an error deserves: the first [`Failure`] in its chain, else 1.
pub fn status_of(error: &anyhow::Error) -> ExitStatus {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(ExitStatus::Failure, |failure| failure.status)
}

/// Whether the error is only stdout going away (a pipe reader that quit early).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Print the error once, as `error: ...` with its causes, and return the status to exit with.
pub fn report(error: &anyhow::Error) -> ExitStatus {
    if is_broken_pipe(error) {
        return ExitStatus::Success;
    }
    eprintln!("error: {error:#}");
    status_of(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_are_the_documented_numbers() {
        let all = [
            (ExitStatus::Success, 0),
            (ExitStatus::Failure, 1),
            (ExitStatus::Usage, 2),
            (ExitStatus::AuthFailed, 3),
            (ExitStatus::Connection, 4),
            (ExitStatus::Server, 5),
            (ExitStatus::Timeout, 6),
        ];
        for (status, code) in all {
            assert_eq!(status.code(), code, "{status:?}");
        }
    }

    #[test]
    fn status_survives_added_context() {
        let inner: anyhow::Result<()> =
            Err(io::Error::other("refused")).exit_status(ExitStatus::Connection);
        let outer = inner
            .context("cannot reach imap.example.org:993")
            .unwrap_err();
        assert_eq!(status_of(&outer), ExitStatus::Connection);
        assert_eq!(
            format!("{outer:#}"),
            "cannot reach imap.example.org:993: refused"
        );
    }

    #[test]
    fn plain_errors_are_failures_and_broken_pipes_are_not_errors() {
        let plain = anyhow::anyhow!("boom");
        assert_eq!(status_of(&plain), ExitStatus::Failure);
        assert!(!is_broken_pipe(&plain));
        let pipe = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("stdout");
        assert!(is_broken_pipe(&pipe));
        assert_eq!(report(&pipe), ExitStatus::Success);
    }
}
