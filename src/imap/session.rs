//! One IMAP session as a state machine without I/O (RFC 3501 states; UIDPLUS, IDLE, MOVE,
//! LITERAL+, UNSELECT, NAMESPACE, CHILDREN, ENABLE): bytes from the client in, responses
//! and actions out. Commands are parsed and responses serialised with `imap-codec`; each
//! command group lives in its own file and this one dispatches.
//!
//! The session reads and changes the store directly (small synchronous file operations),
//! but never touches a socket or a clock: the connection driver moves the bytes, sleeps when
//! asked, calls [`Session::tick`] about once a second while the client IDLEs, and closes
//! when told.

use std::time::Duration;

use serde::Serialize;

use crate::store::Store;

/// Limits and offers that the server decides.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Offer STARTTLS (the server has a certificate and the session is not encrypted yet).
    pub starttls: bool,
    /// LOGINDISABLED and no AUTHENTICATE until the session is encrypted.
    pub require_tls: bool,
    /// The longest command line, in octets, literals not counted (at least 8 KiB).
    pub max_line: usize,
    /// The largest APPEND literal; larger ones get `NO [TOOBIG]` before any data is read.
    pub max_append: u64,
    /// The largest literal in any other command.
    pub max_literal: u32,
    /// How long to wait before answering a failed login.
    pub failed_login_delay: Duration,
    /// Failed logins after which the connection closes.
    pub max_failed_logins: u32,
    /// Bad commands after which the connection closes.
    pub max_bad_commands: u32,
    /// Record client lines (secrets masked) for [`Session::take_trace`].
    pub trace: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            starttls: false,
            require_tls: false,
            max_line: 64 * 1024,
            max_append: 256 * 1024 * 1024,
            max_literal: 64 * 1024,
            failed_login_delay: Duration::from_secs(1),
            max_failed_logins: 3,
            max_bad_commands: 20,
            trace: false,
        }
    }
}

/// What the driver does next; the session's output so far is in `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send `out`, then read from the client and [`Session::receive`] what came.
    NeedInput,
    /// Send `out` (it is large, e.g. a FETCH being streamed), then call [`Session::next`]
    /// again.
    Flush,
    /// Send `out`, wait this long (a failed login), then call [`Session::next`] again, or
    /// close.
    Pause { delay: Duration, then_close: bool },
    /// Send `out`, then switch to TLS; the session has already dropped every octet received
    /// after the STARTTLS line. Call [`Session::tls_established`] after the handshake.
    StartTls,
    /// Send `out`, then close (LOGOUT, or a `BYE` the session sent).
    Close,
}

/// Something worth a line in the server's log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    LoginOk { user: String },
    LoginFailed { user: String },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::LoginOk { user } => write!(f, "login user={user}"),
            Event::LoginFailed { user } => write!(f, "login failed user={user}"),
        }
    }
}

/// One IMAP session.
#[derive(Debug)]
pub struct Session {}

impl Session {
    pub fn new(store: Store, config: SessionConfig) -> Session {
        let _ = (store, config);
        todo!()
    }

    /// The greeting (`* OK [CAPABILITY ...] ...`), into `out`.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// Octets from the client. The driver calls this only after [`Action::NeedInput`], with
    /// what one read returned, so buffered input stays bounded.
    pub fn receive(&mut self, input: &[u8]) {
        let _ = input;
        todo!()
    }

    /// Handle what has been received, writing responses to `out`, until the session needs
    /// the driver.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Action {
        let _ = out;
        todo!()
    }

    /// The client is in IDLE: the driver calls [`Session::tick`] about once a second.
    pub fn is_idling(&self) -> bool {
        todo!()
    }

    /// During IDLE: announce changes to the selected mailbox (EXISTS, EXPUNGE, FETCH FLAGS).
    pub fn tick(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// The TLS handshake after [`Action::StartTls`] succeeded.
    pub fn tls_established(&mut self) {
        todo!()
    }

    /// The autologout: a `* BYE` for the driver to send before it closes an idle session.
    pub fn autologout(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// Log events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        todo!()
    }

    /// Client lines since the last call, secrets masked (only with `trace` set).
    pub fn take_trace(&mut self) -> Vec<String> {
        todo!()
    }
}
