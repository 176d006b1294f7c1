//! `serve-imap`: an IMAP4rev1 server (RFC 3501) over the same store serve-pop serves.
//!
//! [`session`] is the sans-I/O protocol core: it frames input ([`reader`]), gates commands by
//! state and dispatches to one file per command group ([`auth`], [`select`], [`fetch`],
//! [`store_flags`], [`copy`], [`search_command`], [`mailboxes`], [`append`], [`idle`]),
//! answering through [`response`]. [`message`] maps a message's structure for FETCH,
//! [`search`] evaluates SEARCH keys, and [`connection`] plugs the session into the shared
//! server shell. Mailbox names are converted between UTF-8 and modified UTF-7 with the
//! store's codec ([`crate::store::folders::encode_mutf7`]).

mod append;
mod auth;
pub mod connection;
mod copy;
mod fetch;
mod idle;
mod mailboxes;
pub mod message;
pub mod reader;
mod response;
pub mod search;
mod search_command;
mod select;
pub mod session;

use anyhow::Result;

use crate::cli::ServeImapArgs;
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::server::launch::{self, Endpoint, Ports, Setup};
use crate::store::Store;
pub use connection::Imap;

/// `serve-imap`: check the certificate, bind, print the addresses, serve until SIGINT or
/// SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServeImapArgs, format: Format) -> Result<ExitStatus> {
    launch::run_alone(
        store,
        &args.server,
        format,
        ("imap", PORTS),
        (args.port, args.tls_port),
        |setup, endpoint| server(setup, endpoint, args.idle_timeout, args.server.require_tls),
    )?;
    Ok(ExitStatus::Success)
}

/// IMAP's ports: 143 and IMAPS's 993, or 1430 and 9930 without privilege.
pub const PORTS: Ports = Ports {
    conventional: 143,
    example: 1430,
    tls_conventional: 993,
    tls_example: 9930,
};

/// The IMAP server on `endpoint`, ready for [`launch::run`].
pub fn server(
    setup: &Setup,
    endpoint: Endpoint,
    idle_timeout: u64,
    require_tls: bool,
) -> launch::Server {
    let driver = Imap {
        store: setup.store.clone(),
        session: session::SessionConfig {
            starttls: setup.has_tls(),
            require_tls,
            ..session::SessionConfig::default()
        },
    };
    launch::server(endpoint, driver, setup.shell_config(idle_timeout))
}
mod store_flags;
