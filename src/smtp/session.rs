//! One SMTP or LMTP session without I/O or clock: command lines in, replies and actions out.
//!
//! Commands are parsed by Stalwart's `smtp-proto`; [`gate`] is the one function that says
//! which command may come when, so each handler stays small. Replies carry RFC 3463 enhanced
//! status codes and, for the mistakes people make typing SMTP by hand, an example of what
//! to type instead. Message data is not seen here: on DATA the session hands the envelope
//! to the driver ([`Action::Data`]), which streams the data into the store and reports back
//! through [`Session::data_done`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use data_encoding::BASE64;
use serde::Serialize;
use smtp_proto::{Error as ParseError, Request};

use super::line::{MAX_AUTH_LINE, MAX_COMMAND_LINE};
use crate::store::{Store, UserName};

/// Who may send: `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No AUTH: anyone may deliver to the store's users (an MX, or a lab).
    Off,
    /// AUTH offered, not needed.
    Optional,
    /// MAIL only after AUTH (a submission server).
    Required,
}

/// Limits and offers, shared by every session of a server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// LMTP (RFC 2033) instead of SMTP.
    pub lmtp: bool,
    /// Our name in the greeting, EHLO and `Received:`.
    pub host_name: String,
    /// The mail domains served, lower case: `user@DOMAIN` is a local recipient.
    pub domains: Vec<String>,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub auth: AuthPolicy,
    /// STARTTLS can be offered (the server has a certificate and the session is plain).
    pub starttls: bool,
    /// AUTH and MAIL wait for encryption.
    pub require_tls: bool,
    pub failed_auth_delay: Duration,
    pub max_auth_failures: u32,
    /// Keep the client's lines for `--trace`, AUTH masked.
    pub trace: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lmtp: false,
            host_name: "localhost".into(),
            domains: vec!["localhost".into()],
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            auth: AuthPolicy::Off,
            starttls: false,
            require_tls: false,
            failed_auth_delay: Duration::from_secs(1),
            max_auth_failures: 3,
            trace: false,
        }
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum Action {
    /// Read on.
    Continue,
    /// 354 is written: stream the message data into the store for this envelope, then call
    /// [`Session::data_done`].
    Data(Envelope),
    /// The reply to STARTTLS is written: send it, drop any buffered input, handshake.
    StartTls,
    /// Wait (a failed AUTH), then send; close after when asked.
    Pause { delay: Duration, then_close: bool },
    /// Send what is written and close (QUIT, or too many errors).
    Close,
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// As the client wrote it, for the log and `Delivered-To:`.
    pub address: String,
    pub user: UserName,
}

/// A transaction's envelope, as the driver needs it to deliver.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The transaction id in the log, in `Received:` and in the 250 reply.
    pub id: String,
    /// The reverse-path, empty for the null sender.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// What the client said in HELO/EHLO/LHLO.
    pub helo: String,
    /// RFC 3848's `with` keyword: SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP...
    pub with: &'static str,
    pub max_size: u64,
}

/// Why a message was refused at its end, with nothing kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooBig,
    LineTooLong,
}

/// Why a copy could not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFailure {
    /// The disk or a quota is full (452).
    Full(String),
    /// Anything else: a read-only store, a missing mailbox (451).
    Other(String),
}

/// How the data phase ended, from the driver.
#[derive(Debug)]
pub enum DataOutcome {
    Refused(Refusal),
    /// One result per recipient of the envelope, in order: the delivered file or the failure.
    Stored(Vec<Result<String, StoreFailure>>),
}

/// What the session logs.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Delivered {
        id: String,
        from: String,
        to: Vec<String>,
        size: u64,
        files: Vec<String>,
    },
    DeliveryFailed {
        id: String,
        from: String,
        to: Vec<String>,
        reason: String,
    },
    Login {
        user: String,
    },
    LoginFailed {
        user: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Delivered {
                id,
                from,
                to,
                size,
                files,
            } => write!(
                f,
                "{id} delivered from <{from}> to {} ({size} octets): {}",
                to.iter()
                    .map(|t| format!("<{t}>"))
                    .collect::<Vec<_>>()
                    .join(", "),
                files.join(", ")
            ),
            Event::DeliveryFailed {
                id,
                from,
                to,
                reason,
            } => write!(
                f,
                "{id} not delivered from <{from}> to {}: {reason}",
                to.iter()
                    .map(|t| format!("<{t}>"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Event::Login { user } => write!(f, "login {user}"),
            Event::LoginFailed { user } => write!(f, "login failed for {user:?}"),
        }
    }
}

/// Where the session is (RFC 5321 §4.1.4's order).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Before HELO/EHLO/LHLO.
    Fresh,
    /// Greeted, no transaction.
    Ready,
    /// After MAIL: collecting recipients.
    Mail,
}

/// A SASL exchange waiting for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SaslStep {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
}

/// A command, after parsing, as the state gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Hello,
    Mail,
    Rcpt,
    Data,
    Auth,
    StartTls,
    Other,
}

/// One session.
pub struct Session {
    config: SessionConfig,
    store: Store,
    phase: Phase,
    helo: Option<(String, bool)>,
    encrypted: bool,
    authenticated: Option<UserName>,
    auth_failures: u32,
    sasl: Option<SaslStep>,
    sender: String,
    recipients: Vec<Recipient>,
    /// RCPTs refused in this transaction (DATA then says 554, not 503).
    refused_recipients: usize,
    /// The declared SIZE=, 0 when none.
    transactions: u64,
    session_tag: String,
    events: Vec<Event>,
    trace: Vec<String>,
}

impl Session {
    /// `tag` makes transaction ids unique across sessions (the shell's session number).
    pub fn new(store: Store, config: SessionConfig, tag: String) -> Self {
        Session {
            config,
            store,
            phase: Phase::Fresh,
            helo: None,
            encrypted: false,
            authenticated: None,
            auth_failures: 0,
            sasl: None,
            sender: String::new(),
            recipients: Vec::new(),
            refused_recipients: 0,
            transactions: 0,
            session_tag: tag,
            events: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        if self.config.lmtp {
            "LMTP"
        } else {
            "ESMTP"
        }
    }

    /// Our name, for `Received:`.
    pub fn host_name(&self) -> &str {
        &self.config.host_name
    }

    pub fn is_lmtp(&self) -> bool {
        self.config.lmtp
    }

    pub fn greeting(&self, out: &mut Vec<u8>) {
        reply(
            out,
            &format!(
                "220 {} {} mailtool ready",
                self.config.host_name,
                self.name()
            ),
        );
    }

    /// The session is now encrypted (implicit TLS, or STARTTLS done): RFC 3207 §4.2 says to
    /// forget everything the client said before, starting from a fresh greeting state.
    pub fn tls_established(&mut self) {
        self.encrypted = true;
        self.config.starttls = false;
        self.phase = Phase::Fresh;
        self.helo = None;
        self.reset_transaction();
    }

    /// The longest line the reader should accept next.
    pub fn line_limit(&self) -> usize {
        if self.sasl.is_some() || self.config.auth != AuthPolicy::Off {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The client's lines since last asked, AUTH secrets masked (`--trace`).
    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    fn note_trace(&mut self, line: &[u8]) {
        if !self.config.trace {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        let shown = if self.sasl.is_some() {
            "<SASL response masked>".to_owned()
        } else if text.len() >= 5 && text[..5].eq_ignore_ascii_case("AUTH ") {
            let mut words = text.splitn(3, ' ');
            let (verb, mechanism) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            match words.next() {
                Some(_) => format!("{verb} {mechanism} <masked>"),
                None => format!("{verb} {mechanism}"),
            }
        } else {
            text.to_owned()
        };
        self.trace.push(shown);
    }

    /// A command line (or a SASL response) with its line end.
    pub fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Action {
        self.note_trace(line);
        if let Some(step) = self.sasl.take() {
            return self.sasl_response(step, line, out);
        }
        if line.len() > MAX_COMMAND_LINE && !starts_with_ignore_case(line, b"AUTH ") {
            return self.line_too_long(out);
        }
        let mut bytes = line.iter();
        match Request::parse(&mut bytes) {
            Ok(request) => self.request(request, out),
            Err(error) => {
                self.parse_error(line, error, out);
                Action::Continue
            }
        }
    }

    /// A command line over 512 octets (RFC 5321 §4.5.3.1.4), skipped by the reader.
    pub fn line_too_long(&mut self, out: &mut Vec<u8>) -> Action {
        if self.sasl.take().is_some() {
            reply(out, "501 5.5.2 SASL response too long; AUTH cancelled");
        } else {
            reply(
                out,
                &format!("500 5.5.2 line too long: a command line is at most {MAX_COMMAND_LINE} octets with its CRLF"),
            );
        }
        Action::Continue
    }

    fn parse_error(&mut self, line: &[u8], error: ParseError, out: &mut Vec<u8>) {
        let word = command_word(line);
        let text = match error {
            ParseError::UnknownCommand => {
                if word.is_empty() {
                    "500 5.5.2 empty command line; HELP lists the commands".to_owned()
                } else {
                    format!(
                        "500 5.5.2 unknown command {:?}; HELP lists the commands",
                        printable(&word)
                    )
                }
            }
            ParseError::InvalidSenderAddress => {
                "553 5.1.7 bad sender address syntax, e.g. MAIL FROM:<you@example.org> or MAIL FROM:<>".into()
            }
            ParseError::InvalidRecipientAddress => {
                "553 5.1.3 bad recipient address syntax, e.g. RCPT TO:<user@localhost>".into()
            }
            ParseError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}"),
            ParseError::InvalidParameter { param } => {
                format!("501 5.5.4 invalid value for parameter {param}")
            }
            ParseError::UnsupportedParameter { param } => format!(
                "555 5.5.4 parameter {} is not supported (EHLO lists the extensions)",
                printable(&param)
            ),
            ParseError::NeedsMoreData { .. } => {
                "500 5.5.2 command line without a line end".into()
            }
            ParseError::ResponseTooLong | ParseError::InvalidResponse { .. } => {
                "500 5.5.2 unrecognised command".into()
            }
        };
        reply(out, &text);
    }

    /// Which commands may come now: `Err` holds the refusal.
    fn gate(&self, verb: Verb) -> Result<(), String> {
        let hello = if self.config.lmtp { "LHLO" } else { "EHLO" };
        match (verb, &self.phase) {
            (Verb::Mail | Verb::Auth, Phase::Fresh) => Err(format!(
                "503 5.5.1 say hello first, e.g. {hello} client.example.org"
            )),
            (Verb::Mail, Phase::Mail) => Err(
                "503 5.5.1 a transaction is already open: one MAIL per message (RSET starts over)"
                    .into(),
            ),
            (Verb::Mail, Phase::Ready)
                if self.config.require_tls
                    && !self.encrypted
                    && self.config.auth != AuthPolicy::Off =>
            {
                Err("530 5.7.0 must issue a STARTTLS command first".into())
            }
            (Verb::Mail, Phase::Ready)
                if self.config.auth == AuthPolicy::Required && self.authenticated.is_none() =>
            {
                Err("530 5.7.0 authentication required: AUTH PLAIN (or LOGIN) first".into())
            }
            (Verb::Rcpt, Phase::Fresh | Phase::Ready) => {
                Err("503 5.5.1 RCPT needs MAIL first, e.g. MAIL FROM:<you@example.org>".into())
            }
            (Verb::Data, Phase::Fresh | Phase::Ready) => Err(
                "503 5.5.1 DATA needs MAIL and RCPT first, e.g. MAIL FROM:<you@example.org>".into(),
            ),
            (Verb::Data, Phase::Mail) if self.recipients.is_empty() => {
                if self.refused_recipients > 0 {
                    Err("554 5.5.1 no valid recipients (every RCPT was refused)".into())
                } else {
                    Err(
                        "503 5.5.1 DATA needs a recipient first, e.g. RCPT TO:<user@localhost>"
                            .into(),
                    )
                }
            }
            (Verb::Auth, Phase::Mail) => {
                Err("503 5.5.1 AUTH is not allowed during a transaction (RSET first)".into())
            }
            _ => Ok(()),
        }
    }

    fn request(&mut self, request: Request<Cow<'_, str>>, out: &mut Vec<u8>) -> Action {
        let verb = match &request {
            Request::Ehlo { .. } | Request::Helo { .. } | Request::Lhlo { .. } => Verb::Hello,
            Request::Mail { .. } => Verb::Mail,
            Request::Rcpt { .. } => Verb::Rcpt,
            Request::Data => Verb::Data,
            Request::Auth { .. } => Verb::Auth,
            Request::StartTls => Verb::StartTls,
            _ => Verb::Other,
        };
        if let Err(refusal) = self.gate(verb) {
            reply(out, &refusal);
            return Action::Continue;
        }
        match request {
            Request::Ehlo { host } => self.hello(&host, true, false, out),
            Request::Helo { host } => self.hello(&host, false, false, out),
            Request::Lhlo { host } => self.hello(&host, true, true, out),
            Request::Mail { from } => {
                self.mail(&from.address, from.size as u64, from.flags, out);
            }
            Request::Rcpt { to } => self.rcpt(&to.address, out),
            Request::Data => return self.data(out),
            Request::Rset => {
                self.reset_transaction();
                if self.phase == Phase::Mail {
                    self.phase = Phase::Ready;
                }
                reply(out, "250 2.0.0 reset");
            }
            Request::Noop { .. } => reply(out, "250 2.0.0 OK"),
            Request::Quit => {
                reply(
                    out,
                    &format!("221 2.0.0 {} closing connection", self.config.host_name),
                );
                return Action::Close;
            }
            Request::Vrfy { .. } => reply(
                out,
                "252 2.5.0 cannot VRFY a user, but will accept mail for the store's users (RCPT TO tells)",
            ),
            Request::Expn { .. } => reply(out, "502 5.5.1 EXPN is not offered: there are no lists here"),
            Request::Help { .. } => self.help(out),
            Request::StartTls => return self.starttls(out),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, &initial_response, out),
            Request::Bdat { .. } => reply(
                out,
                "502 5.5.1 BDAT (CHUNKING) is not offered; send the message with DATA",
            ),
            _ => reply(out, "502 5.5.1 command not implemented; HELP lists the commands"),
        }
        Action::Continue
    }

    fn hello(&mut self, host: &str, extended: bool, lhlo: bool, out: &mut Vec<u8>) {
        if self.config.lmtp && !lhlo {
            reply(
                out,
                "500 5.5.1 this is an LMTP server (RFC 2033): say LHLO, e.g. LHLO client.example.org",
            );
            return;
        }
        if !self.config.lmtp && lhlo {
            reply(
                out,
                "500 5.5.1 LHLO is LMTP's greeting; this is SMTP: say EHLO, e.g. EHLO client.example.org",
            );
            return;
        }
        self.reset_transaction();
        self.phase = Phase::Ready;
        self.helo = Some((host.to_owned(), extended));
        let greeting = format!("{} greets {}", self.config.host_name, printable(host));
        if !extended {
            reply(out, &format!("250 {greeting}"));
            return;
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            format!("SIZE {}", self.config.max_message_size),
        ];
        if self.config.starttls && !self.encrypted {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("HELP".into());
        multiline(out, 250, &lines);
    }

    fn auth_offered(&self) -> bool {
        self.config.auth != AuthPolicy::Off
            && self.authenticated.is_none()
            && (self.encrypted || !self.config.require_tls)
    }

    fn mail(&mut self, address: &str, size: u64, flags: u64, out: &mut Vec<u8>) {
        if flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            reply(
                out,
                "555 5.5.4 BODY=BINARYMIME needs CHUNKING, which is not offered; use BODY=8BITMIME",
            );
            return;
        }
        if flags & smtp_proto::MAIL_SMTPUTF8 != 0 {
            reply(out, "555 5.5.4 SMTPUTF8 is not offered");
            return;
        }
        if size > self.config.max_message_size {
            reply(
                out,
                &format!(
                    "552 5.3.4 message size {size} exceeds the limit of {} octets",
                    self.config.max_message_size
                ),
            );
            return;
        }
        self.reset_transaction();
        self.sender = address.to_owned();
        self.phase = Phase::Mail;
        let shown = if address.is_empty() {
            "<> (null sender)".to_owned()
        } else {
            format!("<{address}>")
        };
        reply(out, &format!("250 2.1.0 sender {shown} OK"));
    }

    fn rcpt(&mut self, address: &str, out: &mut Vec<u8>) {
        match self.resolve(address) {
            Ok(user) => {
                let shown = printable(address);
                if self.recipients.iter().any(|r| r.user == user) {
                    reply(
                        out,
                        &format!(
                            "250 2.1.5 recipient <{shown}> OK (already a recipient: one copy)"
                        ),
                    );
                    return;
                }
                if self.recipients.len() >= self.config.max_recipients {
                    self.refused_recipients += 1;
                    reply(
                        out,
                        &format!(
                            "452 4.5.3 too many recipients (at most {} per message; send the rest in another)",
                            self.config.max_recipients
                        ),
                    );
                    return;
                }
                self.recipients.push(Recipient {
                    address: address.to_owned(),
                    user,
                });
                reply(out, &format!("250 2.1.5 recipient <{shown}> OK"));
            }
            Err(refusal) => {
                self.refused_recipients += 1;
                reply(out, &refusal);
            }
        }
    }

    /// The store user an address delivers to, or the refusal.
    fn resolve(&self, address: &str) -> Result<UserName, String> {
        let shown = printable(address);
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(format!(
                "550 5.1.3 <{shown}> has no domain: write user@{}",
                self.config
                    .domains
                    .first()
                    .map_or("localhost", String::as_str)
            ));
        };
        let domain = domain.to_ascii_lowercase();
        if !self.config.domains.contains(&domain) {
            return Err(format!(
                "550 5.7.1 relaying denied: {} is not a domain of this server (it serves {}); mailtool never relays",
                printable(&domain),
                self.config.domains.join(", ")
            ));
        }
        let unknown =
            || format!("550 5.1.1 no mailbox <{shown}> here (mailtool mbox list shows the users)");
        let Ok(user) = UserName::parse(&local.to_ascii_lowercase()) else {
            return Err(unknown());
        };
        match self.store.read_passwd() {
            Ok(passwd) if passwd.find(&user).is_some() => Ok(user),
            Ok(_) => Err(unknown()),
            Err(_) => Err("451 4.3.0 cannot read the user list; try again later".into()),
        }
    }

    fn data(&mut self, out: &mut Vec<u8>) -> Action {
        reply(
            out,
            // No enhanced code: RFC 3463 has classes 2, 4 and 5 only (Postfix sends none).
            "354 send the message, end with a line holding only a dot (CRLF.CRLF)",
        );
        self.transactions += 1;
        let (helo, extended) = self.helo.clone().unwrap_or_default();
        let with = match (
            self.config.lmtp,
            extended,
            self.encrypted,
            self.authenticated.is_some(),
        ) {
            (true, _, false, false) => "LMTP",
            (true, _, true, false) => "LMTPS",
            (true, _, false, true) => "LMTPA",
            (true, _, true, true) => "LMTPSA",
            (false, false, _, _) => "SMTP",
            (false, true, false, false) => "ESMTP",
            (false, true, true, false) => "ESMTPS",
            (false, true, false, true) => "ESMTPA",
            (false, true, true, true) => "ESMTPSA",
        };
        Action::Data(Envelope {
            id: format!("{}.{}", self.session_tag, self.transactions),
            sender: self.sender.clone(),
            recipients: self.recipients.clone(),
            helo,
            with,
            max_size: self.config.max_message_size,
        })
    }

    /// The end of the data phase: the reply (SMTP) or one reply per recipient in RCPT
    /// order (LMTP), then a fresh transaction.
    pub fn data_done(
        &mut self,
        envelope: &Envelope,
        outcome: DataOutcome,
        size: u64,
        out: &mut Vec<u8>,
    ) {
        let to: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let replies = envelope.recipients.len().max(1);
        match outcome {
            DataOutcome::Refused(refusal) => {
                let text = match refusal {
                    Refusal::TooBig => format!(
                        "552 5.3.4 message exceeds the limit of {} octets; nothing was kept",
                        self.config.max_message_size
                    ),
                    Refusal::LineTooLong => "500 5.5.2 a line of the message exceeds 1000 octets with its CRLF (RFC 5321 4.5.3.1.6); nothing was kept".into(),
                };
                for _ in 0..if self.config.lmtp { replies } else { 1 } {
                    reply(out, &text);
                }
                self.events.push(Event::DeliveryFailed {
                    id: envelope.id.clone(),
                    from: envelope.sender.clone(),
                    to,
                    reason: text,
                });
            }
            DataOutcome::Stored(results) => {
                let failure_reply = |failure: &StoreFailure| match failure {
                    StoreFailure::Full(_) => {
                        "452 4.3.1 insufficient storage; nothing was kept, try again later"
                            .to_owned()
                    }
                    StoreFailure::Other(_) => {
                        "451 4.3.0 local error while storing; nothing was kept, try again later"
                            .to_owned()
                    }
                };
                let files: Vec<String> = results.iter().flatten().cloned().collect();
                let failures: Vec<&StoreFailure> =
                    results.iter().filter_map(|r| r.as_ref().err()).collect();
                if self.config.lmtp {
                    for (recipient, result) in envelope.recipients.iter().zip(&results) {
                        match result {
                            Ok(_) => reply(
                                out,
                                &format!(
                                    "250 2.0.0 <{}> {} delivered",
                                    printable(&recipient.address),
                                    envelope.id
                                ),
                            ),
                            Err(failure) => reply(out, &failure_reply(failure)),
                        }
                    }
                } else if let Some(failure) = failures.first() {
                    reply(out, &failure_reply(failure));
                } else {
                    reply(
                        out,
                        &format!(
                            "250 2.0.0 {} delivered to {} mailbox{}",
                            envelope.id,
                            files.len(),
                            if files.len() == 1 { "" } else { "es" }
                        ),
                    );
                }
                if !files.is_empty() {
                    let delivered_to = envelope
                        .recipients
                        .iter()
                        .zip(&results)
                        .filter(|(_, r)| r.is_ok())
                        .map(|(r, _)| r.address.clone())
                        .collect();
                    self.events.push(Event::Delivered {
                        id: envelope.id.clone(),
                        from: envelope.sender.clone(),
                        to: delivered_to,
                        size,
                        files,
                    });
                }
                if let Some(failure) = failures.first() {
                    let (StoreFailure::Full(reason) | StoreFailure::Other(reason)) = failure;
                    self.events.push(Event::DeliveryFailed {
                        id: envelope.id.clone(),
                        from: envelope.sender.clone(),
                        to,
                        reason: reason.clone(),
                    });
                }
            }
        }
        self.reset_transaction();
        self.phase = Phase::Ready;
    }

    fn help(&self, out: &mut Vec<u8>) {
        let hello = if self.config.lmtp { "LHLO" } else { "EHLO" };
        let domain = self
            .config
            .domains
            .first()
            .map_or("localhost", String::as_str);
        multiline(
            out,
            214,
            &[
                format!("2.0.0 commands: {hello} MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH"),
                format!("2.0.0 a message: {hello} me.example.org, MAIL FROM:<you@example.org>,"),
                format!("2.0.0 RCPT TO:<user@{domain}>, DATA, the message, a line with only \".\", QUIT"),
                "2.0.0 see RFC 5321 (SMTP) and RFC 2033 (LMTP)".into(),
            ],
        );
    }

    fn starttls(&mut self, out: &mut Vec<u8>) -> Action {
        if self.encrypted {
            reply(out, "503 5.5.1 TLS is already active");
            return Action::Continue;
        }
        if !self.config.starttls {
            reply(
                out,
                "454 4.7.0 TLS not available: the server has no certificate (serve-smtp --tls-cert PEM --tls-key PEM)",
            );
            return Action::Continue;
        }
        reply(out, "220 2.0.0 ready to start TLS");
        Action::StartTls
    }

    fn auth(&mut self, mechanism: u64, initial: &str, out: &mut Vec<u8>) -> Action {
        if self.config.auth == AuthPolicy::Off {
            reply(
                out,
                "502 5.5.1 AUTH is not enabled here (serve-smtp --auth optional enables it)",
            );
            return Action::Continue;
        }
        if self.authenticated.is_some() {
            reply(out, "503 5.5.1 already authenticated");
            return Action::Continue;
        }
        if self.config.require_tls && !self.encrypted {
            reply(
                out,
                "538 5.7.11 encryption required for AUTH: STARTTLS first",
            );
            return Action::Continue;
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN => {
                if initial.is_empty() {
                    self.sasl = Some(SaslStep::PlainResponse);
                    reply(out, "334 ");
                    Action::Continue
                } else {
                    self.plain(initial.as_bytes(), out)
                }
            }
            smtp_proto::AUTH_LOGIN => {
                if initial.is_empty() {
                    self.sasl = Some(SaslStep::LoginUser);
                    reply(out, "334 VXNlcm5hbWU6");
                } else {
                    match decode_text(initial.as_bytes()) {
                        Some(user) => {
                            self.sasl = Some(SaslStep::LoginPassword { user });
                            reply(out, "334 UGFzc3dvcmQ6");
                        }
                        None => reply(out, "501 5.5.2 cannot decode the user name (base64)"),
                    }
                }
                Action::Continue
            }
            _ => {
                reply(
                    out,
                    "504 5.5.4 unsupported mechanism: use AUTH PLAIN or AUTH LOGIN",
                );
                Action::Continue
            }
        }
    }

    fn sasl_response(&mut self, step: SaslStep, line: &[u8], out: &mut Vec<u8>) -> Action {
        let response = trim_line_end(line);
        if response == b"*" {
            reply(out, "501 5.0.0 AUTH cancelled");
            return Action::Continue;
        }
        match step {
            SaslStep::PlainResponse => self.plain(response, out),
            SaslStep::LoginUser => {
                match decode_text(response) {
                    Some(user) => {
                        self.sasl = Some(SaslStep::LoginPassword { user });
                        reply(out, "334 UGFzc3dvcmQ6");
                    }
                    None => reply(out, "501 5.5.2 cannot decode the user name (base64)"),
                }
                Action::Continue
            }
            SaslStep::LoginPassword { user } => match decode_text(response) {
                Some(password) => self.check_login(&user, &password, out),
                None => {
                    reply(out, "501 5.5.2 cannot decode the password (base64)");
                    Action::Continue
                }
            },
        }
    }

    /// RFC 4616: base64 of `authzid NUL authcid NUL password`.
    fn plain(&mut self, encoded: &[u8], out: &mut Vec<u8>) -> Action {
        let decoded = if encoded == b"=" {
            Some(Vec::new())
        } else {
            BASE64.decode(encoded).ok()
        };
        let parts: Option<(String, String)> = decoded.and_then(|bytes| {
            let mut fields = bytes.split(|&b| b == 0);
            let authzid = fields.next()?;
            let user = std::str::from_utf8(fields.next()?).ok()?.to_owned();
            let password = std::str::from_utf8(fields.next()?).ok()?.to_owned();
            if fields.next().is_some() || !(authzid.is_empty() || authzid == user.as_bytes()) {
                return None;
            }
            Some((user, password))
        });
        match parts {
            Some((user, password)) => self.check_login(&user, &password, out),
            None => {
                reply(
                    out,
                    "501 5.5.2 malformed AUTH PLAIN response: base64 of \\0user\\0password",
                );
                Action::Continue
            }
        }
    }

    fn check_login(&mut self, user: &str, password: &str, out: &mut Vec<u8>) -> Action {
        match self.store.authenticate(user, password) {
            Ok(Some(name)) => {
                self.events.push(Event::Login {
                    user: name.to_string(),
                });
                self.authenticated = Some(name);
                reply(out, "235 2.7.0 authentication succeeded");
                Action::Continue
            }
            Ok(None) => {
                self.auth_failures += 1;
                self.events.push(Event::LoginFailed {
                    user: printable(user),
                });
                reply(
                    out,
                    "535 5.7.8 authentication failed: wrong user name or password",
                );
                let then_close = self.auth_failures >= self.config.max_auth_failures;
                if then_close {
                    reply(out, "421 4.7.0 too many failed logins; closing");
                }
                Action::Pause {
                    delay: self.config.failed_auth_delay,
                    then_close,
                }
            }
            Err(_) => {
                reply(
                    out,
                    "454 4.7.0 temporary authentication failure: cannot read the user list",
                );
                Action::Continue
            }
        }
    }

    fn reset_transaction(&mut self) {
        self.sender.clear();
        self.recipients.clear();
        self.refused_recipients = 0;
    }
}

fn reply(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let separator = if i + 1 == lines.len() { ' ' } else { '-' };
        reply(out, &format!("{code}{separator}{line}"));
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn decode_text(encoded: &[u8]) -> Option<String> {
    String::from_utf8(BASE64.decode(encoded).ok()?).ok()
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn command_word(line: &[u8]) -> String {
    let line = trim_line_end(line);
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end.min(32)]).into_owned()
}

/// Client text echoed in a reply: printable ASCII only, so a reply stays one line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store
            .add_user(&UserName::parse("asterix").unwrap(), "potion")
            .unwrap();
        (dir, store)
    }

    fn session(config: SessionConfig) -> (tempfile::TempDir, Session) {
        let (dir, store) = store();
        (dir, Session::new(store, config, "t".into()))
    }

    /// Send lines, return the replies' text.
    fn say(session: &mut Session, lines: &[&str]) -> (String, Vec<Action>) {
        let mut out = Vec::new();
        let mut actions = Vec::new();
        for line in lines {
            actions.push(session.handle_line(format!("{line}\r\n").as_bytes(), &mut out));
        }
        (String::from_utf8(out).unwrap(), actions)
    }

    #[test]
    fn order_is_enforced_with_teaching_replies() {
        let (_dir, mut s) = session(SessionConfig::default());
        let (text, _) = say(&mut s, &["MAIL FROM:<a@b>"]);
        assert!(
            text.starts_with("503 5.5.1 say hello first, e.g. EHLO"),
            "{text}"
        );
        let (text, _) = say(&mut s, &["EHLO me", "RCPT TO:<asterix@localhost>"]);
        assert!(
            text.contains("503 5.5.1 RCPT needs MAIL first, e.g. MAIL FROM:<you@example.org>"),
            "{text}"
        );
        let (text, _) = say(&mut s, &["DATA"]);
        assert!(text.starts_with("503 5.5.1 DATA needs MAIL"), "{text}");
        let (text, _) = say(&mut s, &["MAIL FROM:<>", "DATA"]);
        assert!(
            text.contains("250 2.1.0 sender <> (null sender) OK"),
            "{text}"
        );
        assert!(
            text.contains("503 5.5.1 DATA needs a recipient first"),
            "{text}"
        );
        let (text, _) = say(
            &mut s,
            &[
                "RCPT TO:<nobody@localhost>",
                "RCPT TO:<a@example.org>",
                "DATA",
            ],
        );
        assert!(text.contains("550 5.1.1"), "{text}");
        assert!(text.contains("550 5.7.1 relaying denied"), "{text}");
        assert!(text.contains("554 5.5.1 no valid recipients"), "{text}");
        let (text, actions) = say(
            &mut s,
            &[
                "RCPT TO:<Asterix@LOCALHOST>",
                "RCPT TO:<asterix@localhost>",
                "DATA",
            ],
        );
        assert!(text.contains("already a recipient"), "{text}");
        let Some(Action::Data(envelope)) = actions.into_iter().last() else {
            panic!("no data")
        };
        assert_eq!(envelope.recipients.len(), 1);
        assert_eq!(envelope.sender, "");
    }

    #[test]
    fn size_and_body_parameters() {
        let (_dir, mut s) = session(SessionConfig {
            max_message_size: 1000,
            ..SessionConfig::default()
        });
        let (text, _) = say(
            &mut s,
            &[
                "EHLO me",
                "MAIL FROM:<a@b> SIZE=1001",
                "MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME",
            ],
        );
        assert!(text.contains("250-SIZE 1000"), "{text}");
        assert!(text.contains("552 5.3.4"), "{text}");
        assert!(text.ends_with("250 2.1.0 sender <a@b> OK\r\n"), "{text}");
    }

    #[test]
    fn lmtp_wants_lhlo_and_replies_per_recipient() {
        let (dir, mut s) = session(SessionConfig {
            lmtp: true,
            ..SessionConfig::default()
        });
        Store::new(dir.path())
            .add_user(&UserName::parse("obelix").unwrap(), "menhir")
            .unwrap();
        let (text, _) = say(&mut s, &["EHLO me"]);
        assert!(
            text.starts_with("500 5.5.1 this is an LMTP server"),
            "{text}"
        );
        let (_, actions) = say(
            &mut s,
            &[
                "LHLO me",
                "MAIL FROM:<a@b>",
                "RCPT TO:<asterix@localhost>",
                "RCPT TO:<obelix@localhost>",
                "DATA",
            ],
        );
        let Some(Action::Data(envelope)) = actions.into_iter().last() else {
            panic!("no data")
        };
        let mut out = Vec::new();
        s.data_done(
            &envelope,
            DataOutcome::Stored(vec![
                Ok("x".into()),
                Err(StoreFailure::Full("ENOSPC".into())),
            ]),
            10,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("250 2.0.0 <asterix@localhost>"),
            "{text}"
        );
        assert!(lines[1].starts_with("452 4.3.1"), "{text}");
    }

    #[test]
    fn auth_required_plain_and_login_with_delays_and_masking() {
        let (_dir, mut s) = session(SessionConfig {
            auth: AuthPolicy::Required,
            trace: true,
            ..SessionConfig::default()
        });
        let (text, _) = say(&mut s, &["EHLO me", "MAIL FROM:<a@b>"]);
        assert!(text.contains("250-AUTH PLAIN LOGIN"), "{text}");
        assert!(text.contains("530 5.7.0"), "{text}");
        let bad = BASE64.encode(b"\0asterix\0wrong");
        let (text, actions) = say(&mut s, &[&format!("AUTH PLAIN {bad}")]);
        assert!(text.starts_with("535 5.7.8"), "{text}");
        assert!(matches!(
            actions[0],
            Action::Pause {
                then_close: false,
                ..
            }
        ));
        assert!(s.take_trace().iter().all(|l| !l.contains(&bad)));
        let user = BASE64.encode(b"asterix");
        let password = BASE64.encode(b"potion");
        let (text, _) = say(&mut s, &["AUTH LOGIN", &user, &password, "MAIL FROM:<a@b>"]);
        assert!(text.contains("235 2.7.0"), "{text}");
        assert!(text.ends_with("250 2.1.0 sender <a@b> OK\r\n"), "{text}");
        let trace = s.take_trace();
        assert!(trace.iter().all(|l| !l.contains(&password)), "{trace:?}");
    }

    #[test]
    fn three_failed_logins_close() {
        let (_dir, mut s) = session(SessionConfig {
            auth: AuthPolicy::Optional,
            ..SessionConfig::default()
        });
        let bad = format!("AUTH PLAIN {}", BASE64.encode(b"\0asterix\0wrong"));
        let (text, actions) = say(&mut s, &["EHLO me", &bad, &bad, &bad]);
        assert!(matches!(
            actions[3],
            Action::Pause {
                then_close: true,
                ..
            }
        ));
        assert!(
            text.ends_with("421 4.7.0 too many failed logins; closing\r\n"),
            "{text}"
        );
    }

    #[test]
    fn overlong_and_unknown_commands() {
        let (_dir, mut s) = session(SessionConfig::default());
        let (text, _) = say(
            &mut s,
            &[
                "FOO bar",
                "",
                "EXPN x",
                "VRFY asterix",
                "HELP",
                "NOOP",
                "QUIT",
            ],
        );
        assert!(text.contains("500 5.5.2 unknown command \"FOO\""), "{text}");
        assert!(text.contains("252 2.5.0"), "{text}");
        assert!(text.contains("214 2.0.0"), "{text}");
        assert!(
            text.ends_with("221 2.0.0 localhost closing connection\r\n"),
            "{text}"
        );
        let mut out = Vec::new();
        s.line_too_long(&mut out);
        assert!(out.starts_with(b"500 5.5.2 line too long"));
    }
}
