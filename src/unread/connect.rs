//! Reaching the IMAP server: TCP with timeouts, implicit TLS or STARTTLS, and login.
//!
//! The imap crate has no timeouts of its own, so the socket is opened here with connect, read
//! and write timeouts and handed to `imap::Client::new`: a dead server then fails the command
//! instead of hanging it. TLS is native-tls, checking certificates against the system roots
//! plus `--ca-file`; STARTTLS is done by hand so that a server that does not offer it is an
//! error, never a silent fall back to plain text. Every failure is mapped to the exit status
//! the README documents (3 authentication, 4 connection or TLS, 5 server).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use native_tls::{Certificate, TlsConnector, TlsStream};

use super::trace::Tracer;
use crate::exit::{ExitStatus, Failure, WithExitStatus};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// Implicit TLS from the first byte (IMAPS).
    Tls,
    /// A plain connection upgraded with STARTTLS before login.
    StartTls,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Extra trusted certificates (PEM), on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate and host name checks.
    pub insecure: bool,
    /// Bounds connecting and every single read and write.
    pub timeout: Duration,
    /// Copy the dialogue to stderr (see [`super::trace`]).
    pub trace: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The byte stream under the imap crate: plain or TLS, optionally traced.
pub struct Wire {
    transport: Transport,
    tracer: Option<Tracer>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.transport {
            Transport::Plain(tcp) => tcp.read(buf)?,
            Transport::Tls(tls) => tls.read(buf)?,
        };
        if let Some(tracer) = &mut self.tracer {
            tracer.server(&buf[..n]);
        }
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.transport {
            Transport::Plain(tcp) => tcp.write(buf)?,
            Transport::Tls(tls) => tls.write(buf)?,
        };
        if let Some(tracer) = &mut self.tracer {
            tracer.client(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(tcp) => tcp.flush(),
            Transport::Tls(tls) => tls.flush(),
        }
    }
}

/// An authenticated IMAP session over a [`Wire`].
pub type Session = imap::Session<Wire>;

/// Connect, protect the connection as asked, and log in.
///
/// # Errors
/// Connection and TLS failures (exit 4), a refused login (exit 3), a server that breaks the
/// protocol or lacks STARTTLS (exit 5).
pub fn open_session(endpoint: &Endpoint, user: &str, password: &str) -> Result<Session> {
    let tls = match endpoint.security {
        Security::Plain => None,
        Security::Tls | Security::StartTls => Some(tls_connector(endpoint)?),
    };
    let tcp = open_tcp(endpoint)?;
    let tracer = endpoint.trace.then(Tracer::stderr);
    let wire = match (&tls, endpoint.security) {
        (Some(connector), Security::Tls) => Wire {
            transport: Transport::Tls(Box::new(handshake(connector, endpoint, tcp)?)),
            tracer,
        },
        _ => Wire {
            transport: Transport::Plain(tcp),
            tracer,
        },
    };
    let (wire, greeting_read) = match &tls {
        Some(connector) if endpoint.security == Security::StartTls => {
            (start_tls(wire, connector, endpoint)?, true)
        }
        _ => (wire, false),
    };
    let mut client = imap::Client::new(wire);
    if greeting_read {
        client.greeting_read = true;
    } else {
        client
            .read_greeting()
            .map_err(|e| imap_error(e, endpoint, "reading the greeting"))?;
    }
    login(client, endpoint, user, password)
}

fn open_tcp(endpoint: &Endpoint) -> Result<TcpStream> {
    let addresses: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {} (check --host)", endpoint.host))
        .exit_status(ExitStatus::Connection)?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, endpoint.timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(endpoint.timeout))
                    .and_then(|()| tcp.set_write_timeout(Some(endpoint.timeout)))
                    .and_then(|()| tcp.set_nodelay(true))
                    .with_context(|| format!("cannot set up the connection to {endpoint}"))?;
                return Ok(tcp);
            }
            Err(error) => last_error = Some(error),
        }
    }
    let error = last_error.unwrap_or_else(|| io::Error::other("the name has no address"));
    Err(Failure::new(
        ExitStatus::Connection,
        anyhow!(
            "cannot connect to {endpoint} ({}; check --host and --port, and that the server runs)",
            describe_io(&error, endpoint)
        ),
    )
    .into())
}

fn tls_connector(endpoint: &Endpoint) -> Result<TlsConnector> {
    let mut builder = TlsConnector::builder();
    if let Some(path) = &endpoint.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-file {}", path.display()))?;
        let certificates = Certificate::stack_from_pem(&pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "--ca-file {} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                    path.display()
                )
            })?;
        for certificate in certificates {
            builder.add_root_certificate(certificate);
        }
    }
    if endpoint.insecure {
        eprintln!(
            "warning: --insecure: the server's certificate is not checked, so anyone on the \
             path can read the password and the mail"
        );
        builder
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    }
    builder
        .build()
        .context("cannot set up TLS")
        .exit_status(ExitStatus::Connection)
}

fn handshake(
    connector: &TlsConnector,
    endpoint: &Endpoint,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>> {
    connector.connect(&endpoint.host, tcp).map_err(|error| {
        let why = match error {
            native_tls::HandshakeError::Failure(error) => error.to_string(),
            native_tls::HandshakeError::WouldBlock(_) => {
                format!("no answer within {}s", endpoint.timeout.as_secs())
            }
        };
        let hint = if why.contains("certificate") {
            "trust the server's certificate with --ca-file PEM, or skip the check with --insecure"
        } else {
            "check that the port speaks TLS: --tls is for IMAPS (993), --starttls for 143"
        };
        Failure::new(
            ExitStatus::Connection,
            anyhow!("TLS with {endpoint} failed: {why} ({hint})"),
        )
        .into()
    })
}

/// STARTTLS by hand, before the imap crate takes over: the crate offers no raw command before
/// login. Bytes are read one at a time so nothing after the server's answer is consumed: the
/// TLS handshake starts right there, and anything the server sent early would be an injected
/// response (RFC 3501 asks clients to drop it, which reading no further does).
fn start_tls(mut wire: Wire, connector: &TlsConnector, endpoint: &Endpoint) -> Result<Wire> {
    let failed = |error: io::Error| {
        Failure::new(
            ExitStatus::Connection,
            anyhow!(
                "connection to {endpoint} failed before STARTTLS: {}",
                describe_io(&error, endpoint)
            ),
        )
    };
    let greeting = read_line(&mut wire).map_err(failed)?;
    if !greeting.starts_with(b"* OK") {
        return Err(server_failure(endpoint, "greeting", &greeting));
    }
    wire.write_all(b"s1 CAPABILITY\r\n").map_err(failed)?;
    let mut offers_starttls = false;
    loop {
        let line = read_line(&mut wire).map_err(failed)?;
        if line.starts_with(b"* CAPABILITY ") {
            offers_starttls |= line
                .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
                .any(|word| word.eq_ignore_ascii_case(b"STARTTLS"));
        } else if line.starts_with(b"s1 ") {
            if !line.starts_with(b"s1 OK") {
                return Err(server_failure(endpoint, "CAPABILITY", &line));
            }
            break;
        }
    }
    if !offers_starttls {
        return Err(Failure::new(
            ExitStatus::Connection,
            anyhow!(
                "{endpoint} does not offer STARTTLS (use --tls if it has an IMAPS port, or drop \
                 --starttls to send the password in clear)"
            ),
        )
        .into());
    }
    wire.write_all(b"s2 STARTTLS\r\n").map_err(failed)?;
    loop {
        let line = read_line(&mut wire).map_err(failed)?;
        if line.starts_with(b"s2 ") {
            if !line.starts_with(b"s2 OK") {
                return Err(server_failure(endpoint, "STARTTLS", &line));
            }
            break;
        }
    }
    let Transport::Plain(tcp) = wire.transport else {
        unreachable!("STARTTLS starts from a plain connection");
    };
    let tls = handshake(connector, endpoint, tcp)?;
    Ok(Wire {
        transport: Transport::Tls(Box::new(tls)),
        tracer: wire.tracer,
    })
}

/// One line, read byte by byte (see [`start_tls`]); a line longer than 64 KiB is an error.
fn read_line(wire: &mut Wire) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\n") {
        if wire.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
        if line.len() > 64 << 10 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    Ok(line)
}

fn server_failure(endpoint: &Endpoint, doing: &str, line: &[u8]) -> anyhow::Error {
    Failure::new(
        ExitStatus::Server,
        anyhow!(
            "{endpoint} answered {doing} with: {}",
            String::from_utf8_lossy(line).trim_end()
        ),
    )
    .into()
}

/// SASL PLAIN, for credentials LOGIN cannot carry (RFC 3501 quoted strings are 7-bit).
struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;

    fn process(&self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

fn login(
    client: imap::Client<Wire>,
    endpoint: &Endpoint,
    user: &str,
    password: &str,
) -> Result<Session> {
    let result = if user.is_ascii() && password.is_ascii() {
        client.login(user, password)
    } else {
        client.authenticate("PLAIN", &PlainAuth { user, password })
    };
    result.map_err(|(error, _client)| match error {
        imap::Error::No(no) => Failure::new(
            ExitStatus::AuthFailed,
            anyhow!(
                "{endpoint} refused the login of '{user}': {} (check the user name and password)",
                no.information
            ),
        )
        .into(),
        imap::Error::Bad(bad) => Failure::new(
            ExitStatus::AuthFailed,
            anyhow!("{endpoint} rejected the login command of '{user}': {bad}"),
        )
        .into(),
        other => imap_error(other, endpoint, "logging in"),
    })
}

fn describe_io(error: &io::Error, endpoint: &Endpoint) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
            "no answer within {}s; raise --timeout if the server is slow",
            endpoint.timeout.as_secs()
        ),
        _ => error.to_string(),
    }
}

/// Turn an imap crate error into a message and the exit status it deserves.
pub fn imap_error(error: imap::Error, endpoint: &Endpoint, doing: &str) -> anyhow::Error {
    let (status, message) = match error {
        imap::Error::Io(io) => (
            ExitStatus::Connection,
            format!(
                "connection to {endpoint} failed while {doing}: {}",
                describe_io(&io, endpoint)
            ),
        ),
        imap::Error::ConnectionLost => (
            ExitStatus::Connection,
            format!("{endpoint} closed the connection while {doing}"),
        ),
        imap::Error::Tls(tls) => (
            ExitStatus::Connection,
            format!("TLS with {endpoint} failed while {doing}: {tls}"),
        ),
        imap::Error::No(no) if doing.starts_with("SELECT") => (
            ExitStatus::Server,
            format!("{endpoint} refused {doing}: {no} (check --mailbox; only INBOX ignores case)"),
        ),
        imap::Error::No(no) => (
            ExitStatus::Server,
            format!("{endpoint} refused {doing}: {no}"),
        ),
        imap::Error::Bad(bad) => (
            ExitStatus::Server,
            format!("{endpoint} rejected {doing} as a bad command: {bad}"),
        ),
        imap::Error::Bye(bye) => (
            ExitStatus::Server,
            format!("{endpoint} ended the session while {doing}: {bye}"),
        ),
        other => (
            ExitStatus::Server,
            format!("{endpoint} broke the IMAP protocol while {doing}: {other}"),
        ),
    };
    Failure::new(status, anyhow!(message)).into()
}
