//! `serve`: POP3, IMAP and SMTP (and LMTP if asked) together in one process, on one store,
//! each on its own port, so a mail sent over SMTP can be read over POP3 or IMAP, and a mail
//! read over one shows as read over the other. With `--demo` every port defaults to an
//! unprivileged one (1100, 1430, 2525), so the whole lab runs without root.

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::exit::ExitStatus;
use crate::output::Format;
use crate::server::launch::{self, Setup};
use crate::store::Store;

/// POP3's idle timeout (RFC 1939 asks for at least 10 minutes).
const POP3_IDLE_TIMEOUT: u64 = 600;
/// IMAP's idle timeout (RFC 3501's autologout: at least 30 minutes).
const IMAP_IDLE_TIMEOUT: u64 = 1800;

/// Run every server until SIGINT or SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServeArgs, format: Format) -> Result<ExitStatus> {
    let setup = Setup::new(store, &args.server)?;
    let require_tls = args.server.require_tls;
    let demo = args.server.demo;
    let pop = setup.bind(
        crate::pop3::PORTS,
        (
            args.pop_port
                .unwrap_or(crate::pop3::PORTS.default_port(demo)),
            "--pop-port",
        ),
        args.pop_tls_port.map(|port| (port, "--pop-tls-port")),
    )?;
    let imap = setup.bind(
        crate::imap::PORTS,
        (
            args.imap_port
                .unwrap_or(crate::imap::PORTS.default_port(demo)),
            "--imap-port",
        ),
        args.imap_tls_port.map(|port| (port, "--imap-tls-port")),
    )?;
    let smtp = setup.bind(
        crate::smtp::SMTP_PORTS,
        (
            args.smtp_port
                .unwrap_or(crate::smtp::SMTP_PORTS.default_port(demo)),
            "--smtp-port",
        ),
        None,
    )?;
    let lmtp = args
        .lmtp_port
        .map(|port| setup.bind(crate::smtp::LMTP_PORTS, (port, "--lmtp-port"), None))
        .transpose()?;
    let mut endpoints = vec![("pop3", &pop), ("imap", &imap), ("smtp", &smtp)];
    endpoints.extend(lmtp.as_ref().map(|e| ("lmtp", e)));
    setup.announce(format, &endpoints)?;
    let mut servers = vec![
        crate::pop3::server(&setup, pop, POP3_IDLE_TIMEOUT, require_tls),
        crate::imap::server(&setup, imap, IMAP_IDLE_TIMEOUT, require_tls),
    ];
    for (endpoint, lmtp) in [(Some(smtp), false), (lmtp, true)] {
        if let Some(endpoint) = endpoint {
            let config = crate::smtp::SessionConfig {
                lmtp,
                starttls: setup.has_tls(),
                require_tls,
                ..crate::smtp::default_session_config()
            };
            servers.push(crate::smtp::server(
                &setup,
                endpoint,
                crate::smtp::IDLE_TIMEOUT,
                config,
            ));
        }
    }
    launch::run(servers)?;
    Ok(ExitStatus::Success)
}
