//! The POP3 server (RFC 1939, 2449, 3206, 5034).
//!
//! - [`protocol`]: the wire format without I/O: a bounded, resumable command line reader,
//!   the command parser, and the streaming CRLF/dot-stuffing writer that also sizes messages.
//! - [`session`]: one session's state machine without I/O or clock: lines in, responses,
//!   store changes and actions out.
//! - [`server`]: the tokio shell: accepting, timeouts, signals, streaming, logging.

pub mod protocol;
pub mod server;
pub mod session;

pub use server::run;
