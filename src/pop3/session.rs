//! One POP3 session as a state machine without I/O: command lines in, responses and actions
//! out (RFC 1939 states, RFC 2449 CAPA and response codes, RFC 3206 `[AUTH]`/`[SYS/*]`,
//! RFC 5034 AUTH PLAIN, RFC 2595 STLS: what CAPA offers and which logins are allowed depend
//! on whether the connection is encrypted yet).
//!
//! The session reads and changes the store directly (listing, flagging and removing are
//! small synchronous file operations), but it never touches a socket or a clock: the server
//! hands it the greeting timestamp, streams the message bodies it asks for, sleeps when it
//! asks for a delay and closes when it says so. Tests drive it line by line.

use std::fmt;
use std::fs::File;
use std::time::Duration;

use md5::{Digest, Md5};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::protocol::{parse_command, transfer_size, Command, Extent};
use crate::server::escape_controls;
use crate::store::lock::LockGuard;
use crate::store::{Maildir, MessageEntry, Store, StoreError, UserName};

/// Limits and offers that the server decides.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long to wait before answering a failed login, to slow down guessing.
    pub failed_login_delay: Duration,
    /// Failed logins after which the connection closes.
    pub max_failed_logins: u32,
    /// Unknown, malformed, overlong or out-of-state commands after which it closes.
    pub max_bad_commands: u32,
    /// Offer STLS (when the server has a certificate and the session is not encrypted yet).
    pub stls: bool,
    /// Refuse USER, PASS, APOP and AUTH, and leave them out of CAPA, until the session is
    /// encrypted (RFC 2595 §2.1's "plain text authentication disabled").
    pub require_tls: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            failed_login_delay: Duration::from_secs(1),
            max_failed_logins: 3,
            max_bad_commands: 10,
            stls: false,
            require_tls: false,
        }
    }
}

/// What the server must do after a command was handled (its response is already in `out`).
#[derive(Debug)]
pub enum Action {
    /// Read the next command.
    Continue,
    /// Send the output so far, then stream this message body, then call
    /// [`Session::transfer_done`].
    Transfer(Transfer),
    /// Wait this long before sending the output (a failed login), then go on or close.
    Pause { delay: Duration, then_close: bool },
    /// Send the output, then switch the connection to TLS: drop every octet the client sent
    /// after the STLS line (they were sent in the clear and must not be read as commands),
    /// do the handshake, and call [`Session::tls_established`], or close if it fails.
    StartTls,
    /// Send the output, then close the connection: the session ended with QUIT.
    Close,
    /// Send the output, then close the connection: too many bad commands.
    TooManyFailures,
}

/// A message body to stream: the file is already open, so a message removed by another
/// program after this point is still sent whole.
#[derive(Debug)]
pub struct Transfer {
    pub file: File,
    pub extent: Extent,
    /// The message number the client used.
    pub number: u32,
    /// Octets on disk according to the file name (`,S=`), if it says.
    pub length: Option<u64>,
}

/// Something worth a line in the server log. Passwords never appear in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    LoginOk {
        user: String,
        mechanism: &'static str,
        messages: usize,
        octets: u64,
    },
    LoginFailed {
        user: String,
        mechanism: &'static str,
        reason: &'static str,
    },
    StoreError {
        user: Option<String>,
        error: String,
    },
    TooManyFailures {
        failed_logins: u32,
        bad_commands: u32,
    },
    Quit {
        user: Option<String>,
        retrieved: u32,
        deleted: u32,
        removed: u32,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::LoginOk {
                user,
                mechanism,
                messages,
                octets,
            } => write!(
                f,
                "login ok user={user} mechanism={mechanism} messages={messages} octets={octets}"
            ),
            Event::LoginFailed {
                user,
                mechanism,
                reason,
            } => write!(
                f,
                "login failed user={user:?} mechanism={mechanism} reason={reason:?}"
            ),
            Event::StoreError { user, error } => {
                write!(f, "store error user={} error={error:?}", user.as_deref().unwrap_or("-"))
            }
            Event::TooManyFailures {
                failed_logins,
                bad_commands,
            } => write!(
                f,
                "closing after too many failures failed_logins={failed_logins} bad_commands={bad_commands}"
            ),
            Event::Quit {
                user,
                retrieved,
                deleted,
                removed,
            } => write!(
                f,
                "quit user={} retrieved={retrieved} deleted={deleted} removed={removed}",
                user.as_deref().unwrap_or("-")
            ),
        }
    }
}

struct Message {
    entry: MessageEntry,
    size: u64,
    uidl: String,
    deleted: bool,
}

/// The maildrop of a logged-in user, locked for the whole TRANSACTION state.
struct Mailbox {
    user: UserName,
    maildir: Maildir,
    messages: Vec<Message>,
    retrieved: u32,
    _lock: LockGuard,
}

enum State {
    Authorization {
        user: Option<String>,
        /// `AUTH PLAIN` sent `+ ` and waits for the client's response line.
        awaiting_sasl: bool,
    },
    Transaction(Box<Mailbox>),
    /// After QUIT: the connection is closing.
    Done,
}

/// One POP3 session.
pub struct Session {
    store: Store,
    config: SessionConfig,
    timestamp: String,
    state: State,
    failed_logins: u32,
    bad_commands: u32,
    events: Vec<Event>,
    /// The connection is encrypted (after STLS, or from the start on the POP3S port).
    encrypted: bool,
}

/// Why the state gate refused a command: an optional RFC 2449 response code and the text.
struct Refusal {
    code: Option<&'static str>,
    text: &'static str,
}

impl Refusal {
    fn plain(text: &'static str) -> Self {
        Refusal { code: None, text }
    }
}

const IMPLEMENTATION: &str = concat!("mailtool-", env!("CARGO_PKG_VERSION"));

impl Session {
    /// A session in the AUTHORIZATION state. `timestamp` is the APOP greeting timestamp,
    /// `<pid.counter.clock@host>`, unique per session (the server builds it: it has the clock).
    pub fn new(store: Store, config: SessionConfig, timestamp: String) -> Session {
        Session {
            store,
            config,
            timestamp,
            state: State::Authorization {
                user: None,
                awaiting_sasl: false,
            },
            failed_logins: 0,
            bad_commands: 0,
            events: Vec::new(),
            encrypted: false,
        }
    }

    /// The connection is now encrypted: after the STLS handshake, or before the greeting on
    /// the implicit-TLS port. What the client said before is forgotten (RFC 2595 §4): a
    /// `USER` name given in the clear does not count.
    pub fn tls_established(&mut self) {
        self.encrypted = true;
        if let State::Authorization {
            user,
            awaiting_sasl,
        } = &mut self.state
        {
            *user = None;
            *awaiting_sasl = false;
        }
    }

    /// Whether [`Session::tls_established`] was called.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether USER, PASS, APOP and AUTH are allowed now.
    fn logins_allowed(&self) -> bool {
        self.encrypted || !self.config.require_tls
    }

    /// The greeting, to send first.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        ok(
            out,
            &format!("mailtool POP3 server ready {}", self.timestamp),
        );
    }

    /// Log events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&UserName> {
        match &self.state {
            State::Transaction(mailbox) => Some(&mailbox.user),
            _ => None,
        }
    }

    /// The line as `--trace` shows it: passwords, AUTH responses and APOP digests masked.
    /// Call it before [`Session::handle_line`], which may change what the next line means.
    pub fn trace_view(&self, line: &[u8]) -> String {
        if matches!(
            self.state,
            State::Authorization {
                awaiting_sasl: true,
                ..
            }
        ) {
            return "***".into();
        }
        // Split the raw line on any whitespace, so that a malformed line such as
        // " PASS secret" or "PASS\tsecret" is masked as well as a well-formed one.
        let raw = String::from_utf8_lossy(line);
        let is_space = |c: char| c.is_ascii_whitespace();
        let mut words = raw.trim_start_matches(is_space).splitn(2, is_space);
        let keyword = words.next().unwrap_or_default();
        let rest = words
            .next()
            .unwrap_or_default()
            .trim_start_matches(is_space);
        let masked = match keyword.to_ascii_uppercase().as_str() {
            "PASS" if !rest.is_empty() => format!("{keyword} ***"),
            "APOP" | "AUTH" => match rest.split_once(is_space) {
                Some((first, secret)) if !secret.trim_matches(is_space).is_empty() => {
                    format!("{keyword} {first} ***")
                }
                _ => return escape_controls(&raw),
            },
            _ => return escape_controls(&raw),
        };
        escape_controls(&masked)
    }

    /// Answer a command line that was longer than the protocol allows.
    pub fn handle_overlong_line(&mut self, out: &mut Vec<u8>) -> Action {
        if let State::Authorization { awaiting_sasl, .. } = &mut self.state {
            *awaiting_sasl = false;
        }
        err(
            out,
            None,
            "line too long (at most 255 octets, CRLF included)",
        );
        self.bad_command(out)
    }

    /// Handle one command line (without its line end), appending the response to `out`.
    pub fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Action {
        if let State::Authorization {
            awaiting_sasl: awaiting @ true,
            ..
        } = &mut self.state
        {
            *awaiting = false;
            return self.sasl_response(line, out);
        }
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(error) => {
                let text = error.to_string();
                err(out, None, &text);
                return self.bad_command(out);
            }
        };
        if let Err(refusal) = self.gate(&command) {
            err(out, refusal.code, refusal.text);
            return self.bad_command(out);
        }
        self.dispatch(command, out)
    }

    /// Which commands each RFC 1939 state (and the TLS state) allows: the one place that
    /// decides it.
    fn gate(&self, command: &Command) -> Result<(), Refusal> {
        use Command::*;
        match (&self.state, command) {
            (_, Capa | Quit) => Ok(()),
            (State::Authorization { .. }, User(_) | Pass(_) | Apop { .. } | Auth { .. }) => {
                if self.logins_allowed() {
                    Ok(())
                } else {
                    // Not [AUTH]: the credentials are not the problem, and clients take
                    // [AUTH] as "ask for the password again". [SYS/PERM]: retrying the same
                    // way cannot work; the user must turn on STLS (RFC 3206 §4).
                    Err(Refusal {
                        code: Some("SYS/PERM"),
                        text: "TLS required: use STLS first",
                    })
                }
            }
            (State::Authorization { .. }, Stls) if self.encrypted => {
                Err(Refusal::plain("TLS is already active"))
            }
            (State::Authorization { .. }, Stls) => Ok(()),
            (
                State::Transaction(_),
                Stat | List(_) | Uidl(_) | Retr(_) | Top(..) | Dele(_) | Rset | Noop,
            ) => Ok(()),
            (State::Authorization { .. }, _) => {
                Err(Refusal::plain("log in first (USER and PASS, APOP or AUTH)"))
            }
            (State::Transaction(_), Stls) => {
                Err(Refusal::plain("STLS is only allowed before login"))
            }
            (State::Transaction(_), _) => Err(Refusal::plain("already logged in")),
            (State::Done, _) => Err(Refusal::plain("session is ending")),
        }
    }

    fn dispatch(&mut self, command: Command, out: &mut Vec<u8>) -> Action {
        match command {
            Command::Capa => {
                self.capa(out);
                Action::Continue
            }
            Command::Quit => self.quit(out),
            Command::User(name) => self.user_command(name, out),
            Command::Pass(password) => self.pass(&password, out),
            Command::Apop { user, digest } => self.apop(&user, &digest, out),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response, out),
            Command::Stls => {
                if self.config.stls {
                    // RFC 2595 §4's wording; clients only look at +OK.
                    ok(out, "Begin TLS negotiation");
                    if let State::Authorization { user, .. } = &mut self.state {
                        *user = None;
                    }
                    Action::StartTls
                } else {
                    err(
                        out,
                        None,
                        "STLS is not available (the server has no certificate)",
                    );
                    Action::Continue
                }
            }
            Command::Stat => self.transaction(out, |mailbox, out| {
                let (count, octets) = mailbox.totals();
                ok(out, &format!("{count} {octets}"));
                Action::Continue
            }),
            Command::List(number) => self.transaction(out, |mailbox, out| {
                mailbox.listing(number, out, |m| m.size.to_string());
                Action::Continue
            }),
            Command::Uidl(number) => self.transaction(out, |mailbox, out| {
                mailbox.listing(number, out, |m| m.uidl.clone());
                Action::Continue
            }),
            Command::Retr(number) => self.transaction(out, |mailbox, out| {
                mailbox.transfer(number, Extent::Whole, out)
            }),
            Command::Top(number, lines) => self.transaction(out, |mailbox, out| {
                mailbox.transfer(number, Extent::Top(lines), out)
            }),
            Command::Dele(number) => self.transaction(out, |mailbox, out| {
                match mailbox.message_mut(number) {
                    Some(message) => {
                        message.deleted = true;
                        ok(out, &format!("message {number} deleted"));
                    }
                    None => no_such_message(number, out),
                }
                Action::Continue
            }),
            Command::Rset => self.transaction(out, |mailbox, out| {
                for message in &mut mailbox.messages {
                    message.deleted = false;
                }
                let (count, octets) = mailbox.totals();
                ok(
                    out,
                    &format!("maildrop has {count} messages ({octets} octets)"),
                );
                Action::Continue
            }),
            Command::Noop => {
                ok(out, "");
                Action::Continue
            }
        }
    }

    fn transaction(
        &mut self,
        out: &mut Vec<u8>,
        handler: impl FnOnce(&mut Mailbox, &mut Vec<u8>) -> Action,
    ) -> Action {
        match &mut self.state {
            State::Transaction(mailbox) => handler(mailbox, out),
            // The gate lets only TRANSACTION commands through to here.
            _ => unreachable!("transaction command outside TRANSACTION"),
        }
    }

    fn capa(&self, out: &mut Vec<u8>) {
        ok(out, "capability list follows");
        let mut lines = vec!["TOP", "UIDL"];
        if self.logins_allowed() {
            lines.extend(["USER", "SASL PLAIN"]);
        }
        lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]);
        // Only while the session is plain (RFC 2595 §4: not after the upgrade).
        if self.config.stls && !self.encrypted {
            lines.push("STLS");
        }
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("IMPLEMENTATION {IMPLEMENTATION}\r\n.\r\n").as_bytes());
    }

    fn bad_command(&mut self, out: &mut Vec<u8>) -> Action {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            err(out, None, "too many bad commands, closing");
            self.too_many_failures();
            Action::TooManyFailures
        } else {
            Action::Continue
        }
    }

    fn too_many_failures(&mut self) {
        self.events.push(Event::TooManyFailures {
            failed_logins: self.failed_logins,
            bad_commands: self.bad_commands,
        });
    }

    fn user_command(&mut self, name: String, out: &mut Vec<u8>) -> Action {
        if let Err(error) = UserName::parse(&name) {
            let reason = match error {
                StoreError::InvalidUserName { reason, .. } => reason,
                _ => "invalid",
            };
            err(
                out,
                Some("AUTH"),
                &format!("invalid user name ({reason}; names are 1-64 characters of a-z, 0-9, '.', '_', '-')"),
            );
            return self.bad_command(out);
        }
        if let State::Authorization { user, .. } = &mut self.state {
            *user = Some(name);
        }
        ok(out, "send PASS");
        Action::Continue
    }

    fn pass(&mut self, password: &str, out: &mut Vec<u8>) -> Action {
        let name = match &mut self.state {
            State::Authorization { user, .. } => user.take(),
            _ => None,
        };
        let Some(name) = name else {
            err(out, None, "send USER first");
            return self.bad_command(out);
        };
        let checked = self.store.authenticate(&name, password);
        self.login(&name, "USER", checked, out)
    }

    fn apop(&mut self, name: &str, digest: &str, out: &mut Vec<u8>) -> Action {
        let checked = match UserName::parse(name) {
            Err(_) => Ok(None),
            Ok(user) => self.store.clear_password(&user).map(|password| {
                let password = password?;
                let mut hasher = Md5::new();
                hasher.update(self.timestamp.as_bytes());
                hasher.update(password.as_bytes());
                let expected = hex(&hasher.finalize());
                let given = digest.to_ascii_lowercase();
                bool::from(expected.as_bytes().ct_eq(given.as_bytes())).then_some(user)
            }),
        };
        self.login(name, "APOP", checked, out)
    }

    fn auth(
        &mut self,
        mechanism: Option<String>,
        initial_response: Option<String>,
        out: &mut Vec<u8>,
    ) -> Action {
        match (mechanism.as_deref(), initial_response) {
            (None, _) => {
                ok(out, "SASL mechanisms follow");
                out.extend_from_slice(b"PLAIN\r\n.\r\n");
                Action::Continue
            }
            (Some("PLAIN"), Some(response)) => self.sasl_response(response.as_bytes(), out),
            (Some("PLAIN"), None) => {
                if let State::Authorization {
                    awaiting_sasl,
                    user,
                } = &mut self.state
                {
                    *awaiting_sasl = true;
                    *user = None;
                }
                out.extend_from_slice(b"+ \r\n");
                Action::Continue
            }
            (Some(_), _) => {
                err(out, None, "unsupported SASL mechanism (use PLAIN)");
                self.bad_command(out)
            }
        }
    }

    /// The client's AUTH PLAIN response: base64 of `authzid NUL authcid NUL password`.
    fn sasl_response(&mut self, line: &[u8], out: &mut Vec<u8>) -> Action {
        if line == b"*" {
            err(out, None, "authentication cancelled");
            return Action::Continue;
        }
        // `=` is RFC 5034's empty initial response.
        let encoded = if line == b"=" { &b""[..] } else { line };
        let decoded = data_encoding::BASE64
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(decoded) = decoded else {
            err(out, None, "malformed AUTH PLAIN response (expected base64)");
            return self.bad_command(out);
        };
        let mut parts = decoded.splitn(3, '\0');
        let (Some(authzid), Some(authcid), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            err(
                out,
                None,
                "malformed AUTH PLAIN response (expected authzid NUL authcid NUL password)",
            );
            return self.bad_command(out);
        };
        let checked = if authzid.is_empty() || authzid == authcid {
            self.store.authenticate(authcid, password)
        } else {
            // Acting for another user is not supported.
            Ok(None)
        };
        let authcid = authcid.to_owned();
        self.login(&authcid, "PLAIN", checked, out)
    }

    /// Finish a login attempt: lock and list the maildrop, or refuse.
    fn login(
        &mut self,
        name: &str,
        mechanism: &'static str,
        checked: Result<Option<UserName>, StoreError>,
        out: &mut Vec<u8>,
    ) -> Action {
        let user = match checked {
            Ok(Some(user)) => user,
            Ok(None) => return self.failed_login(name, mechanism, out),
            Err(error) => {
                self.store_failure(None, &error, out, "cannot check the password");
                return Action::Continue;
            }
        };
        match self.open_mailbox(&user) {
            Ok(Some(mailbox)) => {
                let (count, octets) = mailbox.totals();
                self.events.push(Event::LoginOk {
                    user: user.to_string(),
                    mechanism,
                    messages: count,
                    octets,
                });
                ok(
                    out,
                    &format!("{user} has {count} messages ({octets} octets)"),
                );
                self.state = State::Transaction(Box::new(mailbox));
            }
            Ok(None) => {
                self.events.push(Event::LoginFailed {
                    user: user.to_string(),
                    mechanism,
                    reason: "mailbox in use",
                });
                err(
                    out,
                    Some("IN-USE"),
                    "mailbox is in use by another POP3 session (try again when it ends)",
                );
            }
            Err(error) => {
                self.store_failure(Some(&user), &error, out, "cannot open the mailbox");
            }
        }
        Action::Continue
    }

    fn failed_login(&mut self, name: &str, mechanism: &'static str, out: &mut Vec<u8>) -> Action {
        self.failed_logins += 1;
        self.events.push(Event::LoginFailed {
            user: name.chars().take(64).collect(),
            mechanism,
            reason: "bad credentials",
        });
        // The same reply for an unknown user and a wrong password: no user enumeration.
        err(out, Some("AUTH"), "invalid user name or password");
        let then_close = self.failed_logins >= self.config.max_failed_logins;
        if then_close {
            err(out, None, "too many failed logins, closing");
            self.too_many_failures();
        }
        Action::Pause {
            delay: self.config.failed_login_delay,
            then_close,
        }
    }

    fn store_failure(
        &mut self,
        user: Option<&UserName>,
        error: &StoreError,
        out: &mut Vec<u8>,
        what: &str,
    ) {
        self.events.push(Event::StoreError {
            user: user.map(ToString::to_string),
            error: error.to_string(),
        });
        // The details (paths) go to the log, not to the client.
        err(
            out,
            Some(sys_code(error)),
            &format!("{what} (server-side store error)"),
        );
    }

    /// Lock and list the maildrop; `None` when another session holds it.
    fn open_mailbox(&mut self, user: &UserName) -> Result<Option<Mailbox>, StoreError> {
        let maildir = self.store.mailbox(user)?;
        let Some(lock) = maildir.try_lock()? else {
            return Ok(None);
        };
        let mut messages = Vec::new();
        for entry in maildir.list()? {
            let size = match entry.crlf_size_field() {
                Some(size) => size,
                None => match maildir.open_message(&entry).and_then(|(file, _)| {
                    transfer_size(file)
                        .map_err(|e| StoreError::io("read", maildir.entry_path(&entry), e))
                }) {
                    Ok(size) => size,
                    // Removed by another program since the listing: not part of this session.
                    Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => continue,
                    // A message that cannot be sized cannot be listed truthfully. Leave it out
                    // of this session (untouched, and logged) rather than lock the user out
                    // of every other message.
                    Err(e) => {
                        self.events.push(Event::StoreError {
                            user: Some(user.to_string()),
                            error: e.to_string(),
                        });
                        continue;
                    }
                },
            };
            messages.push(Message {
                uidl: uidl(entry.base()),
                entry,
                size,
                deleted: false,
            });
        }
        Ok(Some(Mailbox {
            user: user.clone(),
            maildir,
            messages,
            retrieved: 0,
            _lock: lock,
        }))
    }

    /// The server sent a whole message body: a RETR marks it Seen (TOP does not).
    pub fn transfer_done(&mut self, number: u32, extent: Extent) {
        let State::Transaction(mailbox) = &mut self.state else {
            return;
        };
        if extent != Extent::Whole {
            return;
        }
        mailbox.retrieved += 1;
        let Some(index) = mailbox.index(number) else {
            return;
        };
        let message = &mut mailbox.messages[index];
        match mailbox.maildir.add_flag(&message.entry, 'S') {
            Ok(seen) => message.entry = seen,
            Err(error) => self.events.push(Event::StoreError {
                user: Some(mailbox.user.to_string()),
                error: error.to_string(),
            }),
        }
    }

    fn quit(&mut self, out: &mut Vec<u8>) -> Action {
        let state = std::mem::replace(&mut self.state, State::Done);
        let State::Transaction(mailbox) = state else {
            self.events.push(Event::Quit {
                user: None,
                retrieved: 0,
                deleted: 0,
                removed: 0,
            });
            ok(out, "mailtool POP3 server signing off");
            return Action::Close;
        };
        // UPDATE: remove the marked messages, then answer, then release the lock.
        let mut deleted = 0;
        let mut removed = 0;
        let mut failures = Vec::new();
        for message in mailbox.messages.iter().filter(|m| m.deleted) {
            deleted += 1;
            match mailbox.maildir.remove(&message.entry) {
                Ok(_) => removed += 1,
                Err(error) => failures.push(error),
            }
        }
        if removed > 0 {
            if let Err(error) = mailbox.maildir.sync() {
                failures.push(error);
            }
        }
        let left = mailbox.messages.len() - removed as usize;
        for error in &failures {
            self.events.push(Event::StoreError {
                user: Some(mailbox.user.to_string()),
                error: error.to_string(),
            });
        }
        self.events.push(Event::Quit {
            user: Some(mailbox.user.to_string()),
            retrieved: mailbox.retrieved,
            deleted,
            removed,
        });
        if failures.is_empty() {
            ok(
                out,
                &format!("mailtool POP3 server signing off ({left} messages left)"),
            );
        } else {
            err(
                out,
                // Permanent only when every failure is (a read-only store, permissions):
                // then retrying will not help.
                Some(if failures.iter().all(|e| !e.is_temporary()) {
                    "SYS/PERM"
                } else {
                    "SYS/TEMP"
                }),
                &format!(
                    "could not remove {} of {deleted} deleted messages ({left} messages left)",
                    deleted - removed
                ),
            );
        }
        Action::Close
    }
}

impl Mailbox {
    fn index(&self, number: u32) -> Option<usize> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.messages
            .get(index)
            .filter(|m| !m.deleted)
            .map(|_| index)
    }

    fn message_mut(&mut self, number: u32) -> Option<&mut Message> {
        let index = self.index(number)?;
        Some(&mut self.messages[index])
    }

    fn totals(&self) -> (usize, u64) {
        self.messages
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(count, octets), m| (count + 1, octets + m.size))
    }

    fn listing(&self, number: Option<u32>, out: &mut Vec<u8>, field: impl Fn(&Message) -> String) {
        match number {
            Some(number) => match self.index(number) {
                Some(index) => ok(out, &format!("{number} {}", field(&self.messages[index]))),
                None => no_such_message(number, out),
            },
            None => {
                let (count, octets) = self.totals();
                ok(out, &format!("{count} messages ({octets} octets)"));
                for (index, message) in self.messages.iter().enumerate() {
                    if !message.deleted {
                        out.extend_from_slice(
                            format!("{} {}\r\n", index + 1, field(message)).as_bytes(),
                        );
                    }
                }
                out.extend_from_slice(b".\r\n");
            }
        }
    }

    fn transfer(&mut self, number: u32, extent: Extent, out: &mut Vec<u8>) -> Action {
        let Some(index) = self.index(number) else {
            no_such_message(number, out);
            return Action::Continue;
        };
        let message = &mut self.messages[index];
        match self.maildir.open_message(&message.entry) {
            Ok((file, moved)) => {
                if let Some(current) = moved {
                    message.entry = current;
                }
                let length = message.entry.size_field();
                match extent {
                    Extent::Whole => ok(out, &format!("{} octets", message.size)),
                    Extent::Top(_) => ok(out, "top of message follows"),
                }
                Action::Transfer(Transfer {
                    length,
                    file,
                    extent,
                    number,
                })
            }
            Err(error) => {
                let text = if error.io_kind() == Some(std::io::ErrorKind::NotFound) {
                    format!("message {number} was removed from the mailbox by another program")
                } else {
                    format!("cannot read message {number} (server-side store error)")
                };
                err(out, Some(sys_code(&error)), &text);
                Action::Continue
            }
        }
    }
}

/// A UIDL: the Maildir base name (stable across flag changes and restarts, unique in the
/// mailbox) when it is 1-70 printable characters, else a hash of it.
fn uidl(base: &str) -> String {
    let printable = base.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && (1..=70).contains(&base.len()) {
        base.to_owned()
    } else {
        hex(&Md5::digest(base.as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sys_code(error: &StoreError) -> &'static str {
    if error.is_temporary() {
        "SYS/TEMP"
    } else {
        "SYS/PERM"
    }
}

fn ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn err(out: &mut Vec<u8>, code: Option<&str>, text: &str) {
    out.extend_from_slice(b"-ERR ");
    if let Some(code) = code {
        out.extend_from_slice(format!("[{code}] ").as_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn no_such_message(number: u32, out: &mut Vec<u8>) {
    err(out, None, &format!("no such message: {number}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::protocol::BodyWriter;
    use std::io::Read;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        crate::demo::extract(dir.path()).unwrap();
        let store = Store::new(dir.path());
        Fixture { _dir: dir, store }
    }

    const STAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

    fn session(fixture: &Fixture) -> Session {
        Session::new(
            fixture.store.clone(),
            SessionConfig::default(),
            STAMP.into(),
        )
    }

    /// Send one line; return the response text and the action.
    fn send(session: &mut Session, line: &str) -> (String, Action) {
        let mut out = Vec::new();
        let action = session.handle_line(line.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), action)
    }

    fn reply(session: &mut Session, line: &str) -> String {
        send(session, line).0
    }

    /// Run a transfer as the server would, returning the body bytes.
    fn body(session: &mut Session, action: Action) -> Vec<u8> {
        let Action::Transfer(mut transfer) = action else {
            panic!("expected a transfer, got {action:?}");
        };
        let mut raw = Vec::new();
        transfer.file.read_to_end(&mut raw).unwrap();
        let mut writer = BodyWriter::new(transfer.extent);
        let mut out = Vec::new();
        writer.write(&raw, &mut out);
        writer.finish(&mut out);
        session.transfer_done(transfer.number, transfer.extent);
        out
    }

    fn logged_in(fixture: &Fixture, user: &str, password: &str) -> Session {
        let mut s = session(fixture);
        assert_eq!(reply(&mut s, &format!("USER {user}")), "+OK send PASS\r\n");
        assert!(reply(&mut s, &format!("PASS {password}")).starts_with("+OK "));
        s
    }

    #[test]
    fn greeting_carries_the_timestamp() {
        let f = fixture();
        let mut out = Vec::new();
        session(&f).greeting(&mut out);
        assert_eq!(
            out,
            format!("+OK mailtool POP3 server ready {STAMP}\r\n").as_bytes()
        );
    }

    #[test]
    fn capa_is_the_same_in_both_states() {
        let f = fixture();
        let mut s = session(&f);
        let before = reply(&mut s, "CAPA");
        assert!(before.starts_with("+OK"));
        for line in [
            "TOP",
            "UIDL",
            "USER",
            "SASL PLAIN",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",
            "IMPLEMENTATION mailtool-",
        ] {
            assert!(
                before.contains(&format!("\r\n{line}")),
                "{line} missing from {before}"
            );
        }
        assert!(!before.contains("STLS"));
        assert!(before.ends_with("\r\n.\r\n"));
        let mut s = logged_in(&f, "asterix", "potion");
        assert_eq!(reply(&mut s, "CAPA"), before);
    }

    #[test]
    fn user_pass_login_lists_the_maildrop() {
        let f = fixture();
        let mut s = session(&f);
        reply(&mut s, "USER obelix");
        let (text, _) = send(&mut s, "PASS menhir");
        // Sizes from ,W= and, for the file without a final newline, from a scan.
        assert_eq!(text, "+OK obelix has 4 messages (3205 octets)\r\n");
        assert_eq!(reply(&mut s, "STAT"), "+OK 4 3205\r\n");
        assert_eq!(
            reply(&mut s, "LIST"),
            "+OK 4 messages (3205 octets)\r\n1 660\r\n2 783\r\n3 777\r\n4 985\r\n.\r\n"
        );
        assert_eq!(reply(&mut s, "LIST 2"), "+OK 2 783\r\n");
        assert_eq!(reply(&mut s, "LIST 5"), "-ERR no such message: 5\r\n");
        assert_eq!(
            reply(&mut s, "UIDL 1"),
            "+OK 1 1700040029.M942561P4063Q9.village,S=640,W=660\r\n"
        );
        assert!(reply(&mut s, "UIDL")
            .ends_with("4 1700060002.M256748P4084Q12.village,S=953,W=985\r\n.\r\n"));
        assert_eq!(s.user().map(UserName::as_str), Some("obelix"));
        assert_eq!(
            s.take_events(),
            vec![Event::LoginOk {
                user: "obelix".into(),
                mechanism: "USER",
                messages: 4,
                octets: 3205
            }]
        );
    }

    #[test]
    fn every_size_is_what_retr_sends() {
        let f = fixture();
        for (user, password) in [("asterix", "potion"), ("obelix", "menhir")] {
            let mut s = logged_in(&f, user, password);
            let listing = reply(&mut s, "LIST");
            for line in listing.lines().skip(1).take_while(|l| *l != ".") {
                let (number, size) = line.split_once(' ').unwrap();
                let (header, action) = send(&mut s, &format!("RETR {number}"));
                assert_eq!(header, format!("+OK {size} octets\r\n"));
                let sent = body(&mut s, action);
                let unstuffed = sent.len() - 3 - sent.windows(3).filter(|w| w == b"\n..").count();
                assert_eq!(unstuffed.to_string(), size, "{user} message {number}");
            }
        }
    }

    #[test]
    fn retr_marks_seen_and_top_does_not() {
        let f = fixture();
        let mut s = logged_in(&f, "asterix", "potion");
        let (_, action) = send(&mut s, "TOP 1 0");
        let top = body(&mut s, action);
        assert!(top.ends_with(b"\r\n\r\n.\r\n"));
        assert!(!top.windows(5).any(|w| w == b"\r\n\r\nX"));
        let maildir = f
            .store
            .mailbox(&UserName::parse("asterix").unwrap())
            .unwrap();
        assert!(maildir.list().unwrap()[0].is_unread());
        let (_, action) = send(&mut s, "RETR 1");
        body(&mut s, action);
        let first = &maildir.list().unwrap()[0];
        assert_eq!(first.flags(), "S");
        // UIDL is stable across the flag change.
        assert_eq!(
            reply(&mut s, "UIDL 1"),
            format!("+OK 1 {}\r\n", first.base())
        );
        assert_eq!(reply(&mut s, "RETR 99"), "-ERR no such message: 99\r\n");
    }

    #[test]
    fn dele_marks_rset_unmarks_quit_removes() {
        let f = fixture();
        let mut s = logged_in(&f, "obelix", "menhir");
        assert_eq!(reply(&mut s, "DELE 2"), "+OK message 2 deleted\r\n");
        assert_eq!(reply(&mut s, "DELE 2"), "-ERR no such message: 2\r\n");
        assert_eq!(reply(&mut s, "LIST 2"), "-ERR no such message: 2\r\n");
        assert_eq!(reply(&mut s, "UIDL 2"), "-ERR no such message: 2\r\n");
        assert!(matches!(send(&mut s, "RETR 2").1, Action::Continue));
        assert_eq!(reply(&mut s, "TOP 2 1"), "-ERR no such message: 2\r\n");
        assert_eq!(reply(&mut s, "STAT"), "+OK 3 2422\r\n");
        assert!(!reply(&mut s, "LIST").contains("\r\n2 "));
        assert_eq!(
            reply(&mut s, "RSET"),
            "+OK maildrop has 4 messages (3205 octets)\r\n"
        );
        reply(&mut s, "DELE 1");
        reply(&mut s, "DELE 4");
        let maildir = f
            .store
            .mailbox(&UserName::parse("obelix").unwrap())
            .unwrap();
        assert_eq!(maildir.list().unwrap().len(), 4, "DELE only marks");
        let (text, action) = send(&mut s, "QUIT");
        assert_eq!(
            text,
            "+OK mailtool POP3 server signing off (2 messages left)\r\n"
        );
        assert!(matches!(action, Action::Close));
        assert_eq!(maildir.list().unwrap().len(), 2);
        assert!(
            maildir.try_lock().unwrap().is_some(),
            "QUIT released the lock"
        );
        assert!(s.take_events().contains(&Event::Quit {
            user: Some("obelix".into()),
            retrieved: 0,
            deleted: 2,
            removed: 2
        }));
    }

    #[test]
    fn a_failed_removal_answers_sys_temp_with_the_counts() {
        let f = fixture();
        let mut s = logged_in(&f, "obelix", "menhir");
        reply(&mut s, "DELE 1");
        reply(&mut s, "DELE 2");
        // Something that cannot be removed as a file now sits where message 1 was.
        let maildir = f
            .store
            .mailbox(&UserName::parse("obelix").unwrap())
            .unwrap();
        let first = maildir.entry_path(&maildir.list().unwrap()[0]);
        std::fs::remove_file(&first).unwrap();
        std::fs::create_dir(&first).unwrap();
        let (text, action) = send(&mut s, "QUIT");
        assert_eq!(
            text,
            "-ERR [SYS/TEMP] could not remove 1 of 2 deleted messages (3 messages left)\r\n"
        );
        assert!(matches!(action, Action::Close));
        assert!(s
            .take_events()
            .iter()
            .any(|e| matches!(e, Event::StoreError { .. })));
    }

    #[test]
    fn dropping_a_session_removes_nothing() {
        let f = fixture();
        let mut s = logged_in(&f, "obelix", "menhir");
        reply(&mut s, "DELE 1");
        drop(s);
        let maildir = f
            .store
            .mailbox(&UserName::parse("obelix").unwrap())
            .unwrap();
        assert_eq!(maildir.list().unwrap().len(), 4);
    }

    #[test]
    fn bad_credentials_get_one_reply_a_delay_and_finally_a_close() {
        let f = fixture();
        let mut s = session(&f);
        reply(&mut s, "USER asterix");
        let (wrong_password, action) = send(&mut s, "PASS menhir");
        assert_eq!(
            wrong_password,
            "-ERR [AUTH] invalid user name or password\r\n"
        );
        assert!(
            matches!(action, Action::Pause { then_close: false, delay } if delay == Duration::from_secs(1))
        );
        reply(&mut s, "USER idefix");
        let (unknown_user, _) = send(&mut s, "PASS potion");
        assert_eq!(unknown_user, wrong_password);
        assert_eq!(reply(&mut s, "PASS potion"), "-ERR send USER first\r\n");
        let (text, action) = send(&mut s, "APOP asterix 00000000000000000000000000000000");
        assert!(text.starts_with(
            "-ERR [AUTH] invalid user name or password\r\n-ERR too many failed logins"
        ));
        assert!(matches!(
            action,
            Action::Pause {
                then_close: true,
                ..
            }
        ));
        let events = s.take_events();
        assert!(
            events.iter().all(|e| !format!("{e:?}").contains("menhir")),
            "no password in {events:?}"
        );
    }

    #[test]
    fn invalid_user_names_are_refused() {
        let f = fixture();
        let mut s = session(&f);
        for name in ["../asterix", "Asterix", "passwd", "a/b"] {
            assert!(
                reply(&mut s, &format!("USER {name}")).starts_with("-ERR [AUTH] invalid user name")
            );
            assert_eq!(reply(&mut s, "PASS potion"), "-ERR send USER first\r\n");
        }
        let (text, action) = send(&mut s, "APOP ../asterix 0123");
        assert!(text.starts_with("-ERR [AUTH]"));
        assert!(matches!(action, Action::Pause { .. }));
    }

    #[test]
    fn apop_checks_the_digest_of_the_timestamp_and_password() {
        let f = fixture();
        let mut s = session(&f);
        let digest = hex(&Md5::digest(format!("{STAMP}potion").as_bytes()));
        let text = reply(&mut s, &format!("APOP asterix {}", digest.to_uppercase()));
        assert_eq!(text, "+OK asterix has 8 messages (28103 octets)\r\n");
    }

    #[test]
    fn auth_plain_initial_response_continuation_and_cancel() {
        let f = fixture();
        let b64 = |s: &str| data_encoding::BASE64.encode(s.as_bytes());
        let mut s = session(&f);
        assert_eq!(
            reply(&mut s, "AUTH"),
            "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"
        );
        assert_eq!(reply(&mut s, "AUTH PLAIN"), "+ \r\n");
        assert_eq!(s.trace_view(b"secret"), "***");
        assert_eq!(reply(&mut s, "*"), "-ERR authentication cancelled\r\n");
        assert_eq!(reply(&mut s, "AUTH PLAIN"), "+ \r\n");
        assert!(reply(&mut s, "not base64!").starts_with("-ERR malformed AUTH PLAIN"));
        assert!(reply(&mut s, "AUTH PLAIN =").starts_with("-ERR malformed AUTH PLAIN"));
        assert!(reply(&mut s, "AUTH CRAM-MD5").starts_with("-ERR unsupported SASL"));
        let text = reply(
            &mut s,
            &format!("AUTH PLAIN {}", b64("obelix\0asterix\0potion")),
        );
        assert!(
            text.starts_with("-ERR [AUTH]"),
            "no acting as another user: {text}"
        );
        assert_eq!(reply(&mut s, "AUTH PLAIN"), "+ \r\n");
        assert!(reply(&mut s, &b64("\0asterix\0potion")).starts_with("+OK asterix has 8"));
        let mut s = session(&f);
        let text = reply(
            &mut s,
            &format!("AUTH plain {}", b64("obelix\0obelix\0menhir")),
        );
        assert!(text.starts_with("+OK obelix has 4"));
    }

    #[test]
    fn wrong_state_and_bad_commands_get_err_and_the_session_goes_on() {
        let f = fixture();
        let mut s = session(&f);
        for line in [
            "STAT", "LIST", "RETR 1", "NOOP", "DELE 1", "RSET", "TOP 1 1", "UIDL",
        ] {
            assert_eq!(
                reply(&mut s, line),
                "-ERR log in first (USER and PASS, APOP or AUTH)\r\n"
            );
        }
        let mut s = logged_in(&f, "asterix", "potion");
        assert_eq!(reply(&mut s, "USER asterix"), "-ERR already logged in\r\n");
        assert_eq!(
            reply(&mut s, "STLS"),
            "-ERR STLS is only allowed before login\r\n"
        );
        assert!(reply(&mut s, "RETR 0").starts_with("-ERR message numbers"));
        assert!(reply(&mut s, "RETR -1").starts_with("-ERR message numbers"));
        assert!(reply(&mut s, "RETR 99999999999999").starts_with("-ERR message numbers"));
        assert!(reply(&mut s, "XYZZY").starts_with("-ERR unknown command"));
        let mut out = Vec::new();
        assert!(matches!(
            s.handle_line(b"\xff\xfe", &mut out),
            Action::Continue
        ));
        assert_eq!(out, b"-ERR command is not valid UTF-8\r\n");
        assert_eq!(reply(&mut s, "NOOP"), "+OK\r\n");
        let mut out = Vec::new();
        s.handle_overlong_line(&mut out);
        assert!(out.starts_with(b"-ERR line too long"));
        // The tenth bad command closes.
        let mut last = Action::Continue;
        for _ in 0..3 {
            (_, last) = send(&mut s, "BOGUS");
        }
        assert!(matches!(last, Action::TooManyFailures));
    }

    #[test]
    fn a_second_session_finds_the_mailbox_in_use() {
        let f = fixture();
        let _first = logged_in(&f, "asterix", "potion");
        let mut second = session(&f);
        reply(&mut second, "USER asterix");
        let text = reply(&mut second, "PASS potion");
        assert!(text.starts_with("-ERR [IN-USE] "), "{text}");
        assert!(second.user().is_none());
    }

    #[test]
    fn a_message_removed_under_the_session_gives_err_and_the_session_survives() {
        let f = fixture();
        let mut s = logged_in(&f, "obelix", "menhir");
        let maildir = f
            .store
            .mailbox(&UserName::parse("obelix").unwrap())
            .unwrap();
        let first = maildir.list().unwrap()[0].clone();
        std::fs::remove_file(maildir.entry_path(&first)).unwrap();
        let text = reply(&mut s, "RETR 1");
        assert_eq!(
            text,
            "-ERR [SYS/PERM] message 1 was removed from the mailbox by another program\r\n"
        );
        let (_, action) = send(&mut s, "RETR 2");
        assert!(!body(&mut s, action).is_empty());
        reply(&mut s, "DELE 1");
        assert!(
            reply(&mut s, "QUIT").starts_with("+OK"),
            "an already gone message counts as removed"
        );
    }

    #[test]
    fn trace_masks_secrets() {
        let f = fixture();
        let s = session(&f);
        assert_eq!(s.trace_view(b"PASS my secret"), "PASS ***");
        assert_eq!(s.trace_view(b"apop asterix 0123abcd"), "apop asterix ***");
        assert_eq!(s.trace_view(b"AUTH PLAIN AGEAYg=="), "AUTH PLAIN ***");
        assert_eq!(s.trace_view(b"USER asterix"), "USER asterix");
        assert_eq!(s.trace_view(b"USER \x1b[2J"), "USER \\u{1b}[2J");
    }

    #[test]
    fn quit_before_login_closes() {
        let f = fixture();
        let mut s = session(&f);
        let (text, action) = send(&mut s, "QUIT");
        assert_eq!(text, "+OK mailtool POP3 server signing off\r\n");
        assert!(matches!(action, Action::Close));
    }

    fn session_with(fixture: &Fixture, stls: bool, require_tls: bool) -> Session {
        let config = SessionConfig {
            stls,
            require_tls,
            ..SessionConfig::default()
        };
        Session::new(fixture.store.clone(), config, STAMP.into())
    }

    fn capa_lines(session: &mut Session) -> Vec<String> {
        let text = reply(session, "CAPA");
        assert!(
            text.starts_with("+OK") && text.ends_with("\r\n.\r\n"),
            "{text}"
        );
        text.lines().skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn stls_is_offered_while_plain_and_refused_once_encrypted() {
        let f = fixture();
        let mut s = session_with(&f, true, false);
        assert!(capa_lines(&mut s).contains(&"STLS".to_owned()));
        assert!(!s.is_encrypted());
        // A USER given in the clear is forgotten across the upgrade (RFC 2595 §4).
        reply(&mut s, "USER asterix");
        let (text, action) = send(&mut s, "STLS");
        assert_eq!(text, "+OK Begin TLS negotiation\r\n");
        assert!(matches!(action, Action::StartTls));
        s.tls_established();
        assert!(s.is_encrypted());
        assert_eq!(reply(&mut s, "PASS potion"), "-ERR send USER first\r\n");
        let capa = capa_lines(&mut s);
        assert!(!capa.contains(&"STLS".to_owned()), "{capa:?}");
        assert!(capa.contains(&"USER".to_owned()));
        let (text, action) = send(&mut s, "STLS");
        assert_eq!(text, "-ERR TLS is already active\r\n");
        assert!(matches!(action, Action::Continue));
        reply(&mut s, "USER asterix");
        assert!(reply(&mut s, "PASS potion").starts_with("+OK asterix has 8"));
        assert_eq!(
            reply(&mut s, "STLS"),
            "-ERR STLS is only allowed before login\r\n"
        );
    }

    #[test]
    fn require_tls_refuses_logins_and_hides_them_until_encrypted() {
        let f = fixture();
        let mut s = session_with(&f, true, true);
        let capa = capa_lines(&mut s);
        assert!(!capa.iter().any(|l| l == "USER" || l.starts_with("SASL")));
        assert!(capa.contains(&"STLS".to_owned()));
        let refused = "-ERR [SYS/PERM] TLS required: use STLS first\r\n";
        for line in [
            "USER asterix",
            "PASS potion",
            "APOP asterix c4c9334bac560ecc979e58001b3e22fb",
            "AUTH",
            "AUTH PLAIN AGFzdGVyaXgAcG90aW9u",
        ] {
            let (text, action) = send(&mut s, line);
            assert_eq!(text, refused, "{line}");
            assert!(matches!(action, Action::Continue), "no login delay");
        }
        assert!(s.take_events().is_empty(), "no login was attempted");
        assert!(matches!(send(&mut s, "STLS").1, Action::StartTls));
        s.tls_established();
        let capa = capa_lines(&mut s);
        assert!(capa.contains(&"USER".to_owned()) && capa.contains(&"SASL PLAIN".to_owned()));
        assert!(!capa.contains(&"STLS".to_owned()));
        reply(&mut s, "USER obelix");
        assert!(reply(&mut s, "PASS menhir").starts_with("+OK obelix has 4"));
    }

    #[test]
    fn an_implicit_tls_session_starts_encrypted() {
        let f = fixture();
        let mut s = session_with(&f, true, true);
        s.tls_established();
        let capa = capa_lines(&mut s);
        assert!(capa.contains(&"USER".to_owned()) && !capa.contains(&"STLS".to_owned()));
        assert_eq!(reply(&mut s, "STLS"), "-ERR TLS is already active\r\n");
        let text = reply(
            &mut s,
            &format!(
                "AUTH PLAIN {}",
                data_encoding::BASE64.encode(b"\0asterix\0potion")
            ),
        );
        assert!(text.starts_with("+OK asterix has 8"), "{text}");
    }

    #[test]
    fn uidl_is_printable_and_at_most_70_characters() {
        assert_eq!(
            uidl("1700000001.M1P2Q3.host,S=1,W=2"),
            "1700000001.M1P2Q3.host,S=1,W=2"
        );
        let long = "x".repeat(71);
        assert_eq!(uidl(&long).len(), 32);
        assert_ne!(uidl(&long), uidl(&"x".repeat(72)));
        assert_eq!(uidl("caf\u{e9}").len(), 32);
    }
}
