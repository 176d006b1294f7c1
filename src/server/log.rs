//! The session log every server writes on stderr: one line per event, as text
//! (`imap[3] 127.0.0.1:50000 connect`) or as a JSON object with `time`, `protocol`,
//! `session` and `peer` added. Protocols log their own events through the same writer.

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use crate::cli::LogFormat;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The client said goodbye (QUIT, LOGOUT).
    Quit,
    ClientClosed,
    IdleTimeout,
    Shutdown,
    TooManyFailures,
    NetworkError,
    StoreError,
    TlsFailed,
    /// A PROXY protocol header from an address not in `--trusted-proxy`.
    UntrustedProxyHeader,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Quit => "quit",
            End::ClientClosed => "client closed the connection",
            End::IdleTimeout => "idle timeout",
            End::Shutdown => "server shutdown",
            End::TooManyFailures => "too many failures",
            End::NetworkError => "network error",
            End::StoreError => "store error during a transfer",
            End::TlsFailed => "tls handshake failed",
            End::UntrustedProxyHeader => "proxy header from an untrusted address",
        })
    }
}

/// How a connection came to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// STARTTLS (POP3's STLS) on the plain port.
    #[serde(rename = "stls")]
    StartTls,
    /// The implicit-TLS port.
    Implicit,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::StartTls => "stls",
            TlsMode::Implicit => "implicit",
        })
    }
}

/// What the shell itself logs.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum ShellEvent {
    Connect {
        /// The proxy the client came through (the peer is then the client it named).
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<SocketAddr>,
    },
    Disconnect {
        reason: End,
    },
    Refused {
        reason: RefusedReason,
        /// What was wrong with a PROXY header.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    AcceptFailed {
        error: String,
    },
    TlsEstablished {
        mode: TlsMode,
    },
    TlsFailed {
        mode: TlsMode,
        error: String,
    },
}

/// Why the shell turned a client away.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefusedReason {
    TooManyFromAddress,
    /// A trusted proxy sent no PROXY header, a malformed one, or none in time.
    ProxyHeader,
    /// Someone not in `--trusted-proxy` sent a PROXY header.
    UntrustedProxyHeader,
}

impl fmt::Display for ShellEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellEvent::Connect { via: None } => f.write_str("connect"),
            ShellEvent::Connect { via: Some(proxy) } => write!(f, "connect via {proxy}"),
            ShellEvent::Disconnect { reason } => {
                write!(f, "disconnect reason={:?}", reason.to_string())
            }
            ShellEvent::Refused { reason, error } => {
                f.write_str(match reason {
                    RefusedReason::TooManyFromAddress => {
                        "refused: too many connections from this address"
                    }
                    RefusedReason::ProxyHeader => "refused (trusted proxy)",
                    RefusedReason::UntrustedProxyHeader => {
                        "refused: PROXY protocol header from an address not in --trusted-proxy"
                    }
                })?;
                match error {
                    Some(error) => write!(f, ": {}", super::escape_controls(error)),
                    None => Ok(()),
                }
            }
            ShellEvent::AcceptFailed { error } => write!(f, "accept failed: {error}"),
            ShellEvent::TlsEstablished { mode } => write!(f, "tls established mode={mode}"),
            ShellEvent::TlsFailed { mode, error } => write!(
                f,
                "tls handshake failed mode={mode} error={:?}",
                super::escape_controls(error)
            ),
        }
    }
}

/// The log writer of one server.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    format: LogFormat,
    protocol: &'static str,
}

impl Log {
    pub fn new(format: LogFormat, protocol: &'static str) -> Log {
        Log { format, protocol }
    }

    /// The protocol's name, which starts every text line.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// Write one event of session `id` (0 for the server itself).
    pub fn line<E: fmt::Display + Serialize + ?Sized>(
        &self,
        id: u64,
        peer: Option<SocketAddr>,
        event: &E,
    ) {
        let line = match self.format {
            LogFormat::Text => {
                let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
                format!("{}[{id}] {peer} {event}\n", self.protocol)
            }
            LogFormat::Json => {
                let mut value = serde_json::to_value(event).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    let time = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64();
                    object.insert("time".into(), time.into());
                    object.insert("protocol".into(), self.protocol.into());
                    object.insert("session".into(), id.into());
                    if let Some(peer) = peer {
                        object.insert("peer".into(), peer.to_string().into());
                    }
                }
                format!("{value}\n")
            }
        };
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}
