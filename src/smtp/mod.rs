//! `serve-smtp`: mail comes in over SMTP (RFC 5321) or LMTP (RFC 2033) and is delivered into
//! the store, with SIZE, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS and AUTH.
//!
//! - [`line`]: the bounded, resumable command line reader.
//! - [`data`]: the streaming DATA reader: the `CRLF.CRLF` terminator and dot-unstuffing.
//! - [`session`]: one session's state machine without I/O: lines in, replies and actions out;
//!   commands parsed by `smtp-proto`.
//! - [`incoming`]: a message streamed into the store and committed for every recipient.
//! - [`connection`]: the driver that runs a session on the shared server shell.

pub mod connection;
pub mod data;
pub mod incoming;
pub mod line;
pub mod session;

use anyhow::Result;

use crate::cli::{AuthMode, ServeSmtpArgs};
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::server::launch::{self, Endpoint, Ports, Setup};
use crate::store::Store;
pub use connection::Smtp;
pub use session::{AuthPolicy, SessionConfig};

/// RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for the next command.
pub const IDLE_TIMEOUT: u64 = 300;

/// `serve-smtp`: bind, print the addresses, deliver until SIGINT or SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServeSmtpArgs, format: Format) -> Result<ExitStatus> {
    let protocol = if args.lmtp {
        ("lmtp", LMTP_PORTS)
    } else {
        ("smtp", SMTP_PORTS)
    };
    launch::run_alone(
        store,
        &args.server,
        format,
        protocol,
        (args.port, args.tls_port),
        |setup, endpoint| {
            let config = session_config(setup, args.lmtp, args);
            server(setup, endpoint, args.idle_timeout, config)
        },
    )?;
    Ok(ExitStatus::Success)
}

/// SMTP's ports: 25 and SMTPS's 465, or 2525 and 4465 without privilege.
pub const SMTP_PORTS: Ports = Ports {
    conventional: 25,
    example: 2525,
    tls_conventional: 465,
    tls_example: 4465,
};

/// LMTP's: 24, or 2424 without privilege (its TLS port is SMTPS's).
pub const LMTP_PORTS: Ports = Ports {
    conventional: 24,
    example: 2424,
    ..SMTP_PORTS
};

/// The session settings from the command line: `--domain` defaults to `localhost` and the
/// host name.
pub fn session_config(setup: &Setup, lmtp: bool, args: &ServeSmtpArgs) -> SessionConfig {
    let host_name = crate::store::maildir::host_name();
    let mut domains: Vec<String> = if args.domain.is_empty() {
        vec!["localhost".into(), host_name.to_ascii_lowercase()]
    } else {
        args.domain.iter().map(|d| d.to_ascii_lowercase()).collect()
    };
    domains.dedup();
    SessionConfig {
        lmtp,
        host_name,
        domains,
        max_message_size: args.max_message_size,
        max_recipients: args.max_recipients.max(1),
        auth: match args.auth {
            AuthMode::Off => AuthPolicy::Off,
            AuthMode::Optional => AuthPolicy::Optional,
            AuthMode::Required => AuthPolicy::Required,
        },
        starttls: setup.has_tls(),
        require_tls: args.server.require_tls,
        ..SessionConfig::default()
    }
}

/// The SMTP or LMTP server on `endpoint`, ready for [`launch::run`].
pub fn server(
    setup: &Setup,
    endpoint: Endpoint,
    idle_timeout: u64,
    session: SessionConfig,
) -> launch::Server {
    let driver = Smtp {
        store: setup.store.clone(),
        session,
    };
    launch::server(endpoint, driver, setup.shell_config(idle_timeout))
}

/// The settings `serve` uses for its SMTP and LMTP ports: the defaults of `serve-smtp`.
pub fn default_session_config() -> SessionConfig {
    let host_name = crate::store::maildir::host_name();
    let mut domains = vec!["localhost".to_owned(), host_name.to_ascii_lowercase()];
    domains.dedup();
    SessionConfig {
        host_name,
        domains,
        ..SessionConfig::default()
    }
}
