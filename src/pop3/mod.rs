//! The POP3 server (RFC 1939, 2449, 2595, 3206, 5034), plain and over TLS.
//!
//! - [`protocol`]: the wire format without I/O: a bounded, resumable command line reader,
//!   the command parser, and the streaming CRLF/dot-stuffing writer that also sizes messages.
//! - [`session`]: one session's state machine without I/O or clock: lines in, responses,
//!   store changes and actions out.
//! - [`connection`]: the driver that runs a session on a connection of the shared server
//!   shell ([`crate::server`]): streaming bodies, delays, STLS, logging.

pub mod connection;
pub mod protocol;
pub mod session;

use anyhow::Result;

use crate::cli::ServePopArgs;
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::server::launch::{self, Endpoint, Ports, Setup};
use crate::store::Store;
pub use connection::Pop3;

/// `serve-pop`: check the certificate, bind, print the addresses, serve until SIGINT or
/// SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServePopArgs, format: Format) -> Result<ExitStatus> {
    launch::run_alone(
        store,
        &args.server,
        format,
        ("pop3", PORTS),
        (args.port, args.tls_port),
        |setup, endpoint| server(setup, endpoint, args.idle_timeout, args.server.require_tls),
    )?;
    Ok(ExitStatus::Success)
}

/// POP3's ports: 110 and POP3S's 995, or 1100 and 9950 without privilege.
pub const PORTS: Ports = Ports {
    conventional: 110,
    example: 1100,
    tls_conventional: 995,
    tls_example: 9950,
};

/// The POP3 server on `endpoint`, ready for [`launch::run`].
pub fn server(
    setup: &Setup,
    endpoint: Endpoint,
    idle_timeout: u64,
    require_tls: bool,
) -> launch::Server {
    let driver = Pop3 {
        store: setup.store.clone(),
        session: session::SessionConfig {
            stls: setup.has_tls(),
            require_tls,
            ..session::SessionConfig::default()
        },
    };
    launch::server(endpoint, driver, setup.shell_config(idle_timeout))
}
