//! The POP3 server (RFC 1939, 2449, 2595, 3206, 5034), plain and over TLS.
//!
//! - [`protocol`]: the wire format without I/O: a bounded, resumable command line reader,
//!   the command parser, and the streaming CRLF/dot-stuffing writer that also sizes messages.
//! - [`session`]: one session's state machine without I/O or clock: lines in, responses,
//!   store changes and actions out.
//! - [`server`]: the tokio shell: accepting, timeouts, signals, streaming, TLS, logging.
//! - [`tls`]: the certificate and key for STLS and POP3S, checked at startup, and the
//!   handshake (OpenSSL, TLS 1.2 and 1.3).

pub mod protocol;
pub mod server;
pub mod session;
pub mod tls;

pub use server::run;
