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
use crate::server::launch::{self, Endpoint, Port, Setup};
use crate::store::Store;
pub use connection::Pop3;

/// `serve-pop`: check the certificate, bind, print the addresses, serve until SIGINT or
/// SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServePopArgs, format: Format) -> Result<ExitStatus> {
    let setup = Setup::new(store, &args.server)?;
    let endpoint = bind(&setup, args.port, args.tls_port, "--port", "--tls-port")?;
    setup.announce(format, &[("pop3", &endpoint)])?;
    launch::run(vec![server(
        &setup,
        endpoint,
        args.idle_timeout,
        args.server.require_tls,
    )])?;
    Ok(ExitStatus::Success)
}

/// Bind POP3's ports; the option names are those of the command that chose them.
///
/// # Errors
/// A port cannot be bound.
pub fn bind(
    setup: &Setup,
    port: u16,
    tls_port: Option<u16>,
    port_option: &'static str,
    tls_option: &'static str,
) -> Result<Endpoint> {
    setup.bind(
        Port {
            number: port,
            option: port_option,
            example: 1100,
            conventional: 110,
        },
        tls_port.map(|number| Port {
            number,
            option: tls_option,
            example: 9950,
            conventional: 995,
        }),
    )
}

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
