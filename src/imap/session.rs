//! One IMAP session as a state machine without I/O (RFC 3501 states; UIDPLUS, IDLE, MOVE,
//! LITERAL+, UNSELECT, NAMESPACE, CHILDREN, ENABLE, ID, SASL-IR): bytes from the client in,
//! responses and actions out. Commands are parsed and responses serialised with `imap-codec`;
//! each command group lives in its own file and this one frames input, gates commands by
//! state and dispatches.
//!
//! The session reads and changes the store directly (small synchronous file operations),
//! but never touches a socket or a clock: the connection driver moves the bytes, sleeps when
//! asked, calls [`Session::tick`] about once a second while the client IDLEs, and closes
//! when told.
//!
//! Framing is ours ([`super::reader`]): a command is assembled line by line and literal by
//! literal, within `max_line` octets of lines and `max_literal` octets of literals, then
//! handed whole to imap-codec. APPEND's message literal is the exception: it streams into
//! the Maildir's `tmp/` as it arrives ([`super::append`]).

use std::time::Duration;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::StatusKind;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;
use serde::Serialize;

use super::append::AppendState;
use super::fetch::FetchCursor;
use super::reader::{announcement, Line, Reader};
use super::response::{self, Reply};
use super::select::Selected;
use crate::store::{Mailboxes, Store, StoreError, UserName};

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
    /// Send `out`, wait this long (a failed login), then call [`Session::next`] again (it
    /// then writes the login's `NO`), or close when `then_close` (the `NO` and the `BYE` are
    /// already in `out`).
    Pause { delay: Duration, then_close: bool },
    /// Send `out`, then switch to TLS; the session has already dropped every octet received
    /// after the STARTTLS line. Call [`Session::tls_established`] after the handshake.
    StartTls,
    /// Send `out`, then close (LOGOUT, or a `BYE` the session sent).
    Close,
    /// Call [`Session::next`] again, from a thread that may block: what comes next waits for
    /// the disk (the fsyncs of an APPEND, EXPUNGE, CLOSE, COPY or MOVE). A server on an async
    /// runtime makes that call on its blocking pool (tokio's `spawn_blocking`), so the thread
    /// that serves the other sessions never waits for a disk; anyone else just calls again.
    /// `out` may be sent before or after.
    Offload,
}

/// Something worth a line in the server's log. Passwords never appear in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    LoginOk {
        user: String,
    },
    LoginFailed {
        user: String,
    },
    /// A store operation failed; the client got a `NO` without the details.
    StoreError {
        user: Option<String>,
        error: String,
    },
    /// The session closes after too many failed logins or bad commands.
    TooManyFailures {
        failed_logins: u32,
        bad_commands: u32,
    },
    Logout {
        user: Option<String>,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::LoginOk { user } => write!(f, "login user={user}"),
            Event::LoginFailed { user } => write!(f, "login failed user={user:?}"),
            Event::StoreError { user, error } => write!(
                f,
                "store error user={} error={error:?}",
                user.as_deref().unwrap_or("-")
            ),
            Event::TooManyFailures {
                failed_logins,
                bad_commands,
            } => write!(
                f,
                "closing after too many failures failed_logins={failed_logins} bad_commands={bad_commands}"
            ),
            Event::Logout { user } => write!(f, "logout user={}", user.as_deref().unwrap_or("-")),
        }
    }
}

/// Output beyond this is flushed before the session goes on.
pub(super) const FLUSH_AT: usize = 64 * 1024;

/// The logged-in user and their mailboxes.
#[derive(Debug)]
pub(super) struct Account {
    pub name: UserName,
    pub mailboxes: Mailboxes,
}

/// What the next octets from the client are.
#[derive(Debug)]
pub(super) enum Input {
    /// A command line, or the continuation of one after a literal.
    Command,
    /// Literal octets that belong to the command being assembled.
    Literal { remaining: u64 },
    /// APPEND's message, streamed into the store.
    Append(Box<AppendState>),
    /// The client's response to AUTHENTICATE PLAIN's empty challenge.
    Authenticate { tag: Tag<'static> },
    /// IDLE, until `DONE`.
    Idle { tag: Tag<'static> },
}

/// One IMAP session.
#[derive(Debug)]
pub struct Session {
    pub(super) store: Store,
    pub(super) config: SessionConfig,
    pub(super) reader: Reader,
    pub(super) input: Input,
    /// The command being assembled, as imap-codec will read it (CRLF line ends).
    command: Vec<u8>,
    command_lines: usize,
    command_literals: u64,
    /// The command being assembled carries a secret (LOGIN, AUTHENTICATE): its further lines
    /// are masked in the trace.
    command_secret: bool,
    pub(super) tls: bool,
    pub(super) account: Option<Box<Account>>,
    pub(super) selected: Option<Box<Selected>>,
    pub(super) failed_logins: u32,
    bad_commands: u32,
    pub(super) events: Vec<Event>,
    trace: Vec<String>,
    pub(super) fetch: Option<Box<FetchCursor>>,
    /// Output held back until the next [`Session::next`] (a failed login's `NO`, after the
    /// pause).
    pub(super) deferred: Vec<u8>,
    /// An action to return before anything else.
    pub(super) action: Option<Action>,
    /// A `BYE` went out: close once the output is sent.
    pub(super) closing: bool,
    /// How the command being answered looks for changes when it ends: a FETCH, STORE or
    /// SEARCH not at all, a COPY or MOVE only when the Maildir's directories changed, any
    /// other command fully.
    pub(super) sync: Sync,
    /// [`Action::Offload`] was returned: the next call of [`Session::next`] may block.
    offload_asked: bool,
    /// This call of [`Session::next`] may block (it is the one [`Action::Offload`] asked for).
    may_block: bool,
    /// The command that waits for that call.
    offloaded: Option<Box<Command<'static>>>,
}

/// How long after a look at the Maildir a FETCH, STORE or SEARCH answers without another
/// (see [`Sync::Quick`]).
pub(super) const QUICK_LOOK_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// How hard a command looks for changes made by others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sync {
    /// Re-read the Maildir unless its directories are unchanged and settled: NOOP, IDLE and
    /// every other command, so a change hidden in the same tick shows up there. Only a folder
    /// that changed is read again when `cur/` did not (a delivery, an APPEND: `new/` alone);
    /// and for a moment after the session's own moves into `cur/`, the folders' times it
    /// saw after them count as settled (see `Selected::trusted_until`).
    Full,
    /// Re-read it only when its directories' times changed, settled or not, as Dovecot's
    /// FETCH, STORE and SEARCH do (`MAILBOX_SYNC_FLAG_FAST`): a client that fetches a
    /// mailbox one message at a time must not pay a directory scan per message while the
    /// mailbox changed less than a second ago.
    Fast,
    /// As [`Sync::Fast`], but not at all when the session looked less than
    /// [`QUICK_LOOK_WINDOW`] ago and no session of this process changed the mailbox since:
    /// Dovecot's FETCH, STORE and SEARCH skip even the `stat` for 5 s after a look
    /// (`MAILBOX_FULL_SYNC_INTERVAL`). What another program changed meanwhile shows at the
    /// next look, and a message it renamed is found under its new name when opened.
    Quick,
    /// Do not look again: FETCH, STORE and SEARCH looked just before they ran, and what
    /// they changed themselves is already in the session's view; anything newer shows at
    /// the next command. (Looking twice cost a FETCH two more stats, and a STORE a
    /// directory scan that found only its own renames.)
    Skip,
}

impl Session {
    pub fn new(store: Store, config: SessionConfig) -> Session {
        let config = SessionConfig {
            max_line: config.max_line.max(8 * 1024),
            ..config
        };
        Session {
            store,
            config,
            reader: Reader::default(),
            input: Input::Command,
            command: Vec::new(),
            command_lines: 0,
            command_literals: 0,
            command_secret: false,
            tls: false,
            account: None,
            selected: None,
            failed_logins: 0,
            bad_commands: 0,
            events: Vec::new(),
            trace: Vec::new(),
            fetch: None,
            deferred: Vec::new(),
            action: None,
            closing: false,
            sync: Sync::Full,
            offload_asked: false,
            may_block: false,
            offloaded: None,
        }
    }

    /// The greeting (`* OK [CAPABILITY ...] ...`), into `out`.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        let code = self.capability_code();
        response::greeting(out, Some(code), "mailtool IMAP4rev1 server ready");
    }

    /// Octets from the client. The driver calls this only after [`Action::NeedInput`], with
    /// what one read returned, so buffered input stays bounded.
    pub fn receive(&mut self, input: &[u8]) {
        self.reader.push(input);
    }

    /// Handle what has been received, writing responses to `out`, until the session needs
    /// the driver.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Action {
        self.may_block = std::mem::take(&mut self.offload_asked);
        if !self.deferred.is_empty() {
            out.append(&mut self.deferred);
        }
        self.wake(out);
        if let Some(command) = self.offloaded.take() {
            let Command { tag, body } = *command;
            self.execute(tag, body, out);
        }
        loop {
            if let Some(action) = self.action.take() {
                return action;
            }
            if self.fetch.is_some() {
                self.continue_fetch(out);
                if out.len() >= FLUSH_AT {
                    return Action::Flush;
                }
                continue;
            }
            if self.closing {
                return Action::Close;
            }
            if out.len() >= FLUSH_AT {
                return Action::Flush;
            }
            if !self.step(out) {
                return Action::NeedInput;
            }
        }
    }

    /// The client is in IDLE: the driver calls [`Session::tick`] about once a second.
    pub fn is_idling(&self) -> bool {
        matches!(self.input, Input::Idle { .. })
    }

    /// During IDLE, the directories whose changes the driver should wake it for (the selected
    /// mailbox's `new/` and `cur/`); `None` otherwise.
    pub fn idle_dirs(&self) -> Option<[std::path::PathBuf; 2]> {
        let selected = self.selected.as_ref().filter(|_| self.is_idling())?;
        Some(selected.maildir.change_dirs())
    }

    /// During IDLE, while the session trusts the folders' times its own changes left (for a
    /// moment after them): how long until it no longer does. The driver should tick then, so
    /// that what another program changed in that moment, unseen by the look its change woke,
    /// is announced at once rather than at the next poll.
    pub fn look_again_within(&self) -> Option<std::time::Duration> {
        let selected = self.selected.as_ref().filter(|_| self.is_idling())?;
        selected
            .trusted_until?
            .checked_duration_since(std::time::Instant::now())
    }

    /// During IDLE: announce changes to the selected mailbox (EXISTS, EXPUNGE, FETCH FLAGS).
    pub fn tick(&mut self, out: &mut Vec<u8>) {
        if self.is_idling() {
            self.refresh(true, Sync::Full, out);
        }
    }

    /// During IDLE: announce changes, if the folders' times moved since the session last
    /// looked (for the moment a watch begins, just after IDLE's own look).
    pub fn tick_if_changed(&mut self, out: &mut Vec<u8>) {
        if self.is_idling() {
            self.refresh(true, Sync::Fast, out);
        }
    }

    /// The client has been quiet for a while: let go of what the session can rebuild, the
    /// selected mailbox's file names, which it lists again when the client speaks or, in
    /// IDLE, when the Maildir changes (see `Selected::let_go`). Only between commands or in
    /// IDLE; true if the file names were let go.
    pub fn hibernate(&mut self) -> bool {
        self.shed_buffers() && self.selected.as_mut().is_some_and(|s| s.let_go())
    }

    /// The client has been quiet for a moment: if between commands or in IDLE, drop the
    /// input buffers, kept between commands up to 1 KiB each and now empty, and say so.
    pub fn shed_buffers(&mut self) -> bool {
        let between_commands = matches!(self.input, Input::Command | Input::Idle { .. })
            && self.command.is_empty()
            && self.fetch.is_none()
            && self.action.is_none()
            && self.reader.is_idle();
        if between_commands {
            self.command = Vec::new();
            self.reader.clear();
        }
        between_commands
    }

    /// The TLS handshake after [`Action::StartTls`] succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.reader.clear();
    }

    /// The autologout: a `* BYE` for the driver to send before it closes an idle session.
    pub fn autologout(&mut self, out: &mut Vec<u8>) {
        response::bye(out, "Autologout: idle for too long");
        self.closing = true;
    }

    /// The server is shutting down: a `* BYE` for the driver to send before it closes.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        response::bye(out, "Server shutting down");
        self.closing = true;
    }

    /// Log events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Client lines since the last call, secrets masked (only with `trace` set).
    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&UserName> {
        self.account.as_ref().map(|a| &a.name)
    }

    pub(super) fn user_string(&self) -> Option<String> {
        self.user().map(ToString::to_string)
    }

    pub(super) fn record_trace(&mut self, line: &str) {
        if self.config.trace {
            self.trace.push(line.to_owned());
        }
    }

    /// Handle one unit of input; false when more input is needed.
    fn step(&mut self, out: &mut Vec<u8>) -> bool {
        match &mut self.input {
            Input::Command => {
                let limit = self.config.max_line.saturating_sub(self.command_lines);
                match self.reader.line(limit) {
                    None => false,
                    Some(Line::TooLong(head)) => {
                        self.too_long(&head, out);
                        true
                    }
                    Some(Line::Complete(line)) => {
                        self.command_line(line, out);
                        true
                    }
                }
            }
            Input::Literal { remaining } => {
                let chunk = self.reader.take(*remaining);
                if chunk.is_empty() && *remaining > 0 {
                    return false;
                }
                *remaining -= chunk.len() as u64;
                self.command.extend_from_slice(chunk);
                if *remaining == 0 {
                    self.input = Input::Command;
                }
                true
            }
            Input::Append(_) => self.append_step(out),
            Input::Authenticate { .. } => match self.reader.line(self.config.max_line) {
                None => false,
                Some(line) => {
                    let Input::Authenticate { tag } =
                        std::mem::replace(&mut self.input, Input::Command)
                    else {
                        return true;
                    };
                    self.record_trace("***");
                    match line {
                        Line::Complete(line) => self.sasl_response(tag, &line, out),
                        Line::TooLong(_) => {
                            let reply = Reply::bad("AUTHENTICATE response too long");
                            self.finish(&tag, reply, true, out);
                        }
                    }
                    true
                }
            },
            Input::Idle { .. } => match self.reader.line(self.config.max_line) {
                None => false,
                Some(line) => {
                    let Input::Idle { tag } = std::mem::replace(&mut self.input, Input::Command)
                    else {
                        return true;
                    };
                    let line = match line {
                        Line::Complete(line) => line,
                        Line::TooLong(head) => head,
                    };
                    self.record_trace(&trace_text(&line));
                    self.idle_line(tag, &line, out);
                    true
                }
            },
        }
    }

    fn reset_command(&mut self) {
        self.command.clear();
        if self.command.capacity() > 16 * 1024 {
            self.command = Vec::new();
        }
        self.command_lines = 0;
        self.command_literals = 0;
        self.command_secret = false;
    }

    /// A line of a command: the first, or one after a literal.
    fn command_line(&mut self, line: Vec<u8>, out: &mut Vec<u8>) {
        let first = self.command.is_empty();
        if first {
            if line.iter().all(u8::is_ascii_whitespace) {
                // An empty line, typed by hand: nothing to answer.
                return;
            }
            // Masking is for the trace alone: not worked out when nobody traces.
            if self.config.trace {
                let (masked, secret) = mask_line(&line);
                self.command_secret = secret;
                self.record_trace(&masked);
            }
        } else if self.command_secret {
            self.record_trace("***");
        } else if self.config.trace {
            self.record_trace(&trace_text(&line));
        }
        self.command_lines += line.len() + 2;
        match announcement(&line) {
            None => {
                self.command.extend_from_slice(&line);
                self.command.extend_from_slice(b"\r\n");
                let command = std::mem::take(&mut self.command);
                self.reset_command();
                self.run_bytes(&command, out);
                // The buffer serves the next command too, unless a long one grew it: an
                // idle session should hold little (10,000 of them wait at a time).
                if self.command.capacity() == 0 && command.capacity() <= 1024 {
                    self.command = command;
                    self.command.clear();
                }
            }
            Some(literal) => self.literal_announced(&line, literal, out),
        }
    }

    fn literal_announced(
        &mut self,
        line: &[u8],
        literal: super::reader::Announcement,
        out: &mut Vec<u8>,
    ) {
        // Is this APPEND's message? Decode the command with the literal as `{0}` and no data.
        let mut probe = self.command.clone();
        probe.extend_from_slice(&line[..literal.start]);
        probe.extend_from_slice(b"{0}\r\n\r\n");
        if let Ok((
            _,
            Command {
                tag,
                body:
                    CommandBody::Append {
                        mailbox,
                        flags,
                        date,
                        ..
                    },
            },
        )) = CommandCodec::default().decode(&probe)
        {
            let (tag, mailbox, flags) = (
                tag.into_static(),
                mailbox.into_static(),
                flags.into_static(),
            );
            self.reset_command();
            self.start_append(tag, mailbox, flags, date, literal, out);
            return;
        }
        let allowed = u64::from(self.config.max_literal).saturating_sub(self.command_literals);
        match literal.length {
            Some(length) if length <= allowed => {
                self.command.extend_from_slice(line);
                self.command.extend_from_slice(b"\r\n");
                self.command_literals += length;
                if !literal.non_sync {
                    response::continuation(out, "Ready for literal data");
                }
                if length > 0 {
                    self.input = Input::Literal { remaining: length };
                }
            }
            _ => {
                let mut head = self.command.clone();
                head.extend_from_slice(line);
                let (tag, _) = tag_and_name(&head);
                self.reset_command();
                let reply = Reply::bad(format!(
                    "literal too big: at most {} octets in a command (APPEND takes messages up to {} octets)",
                    self.config.max_literal, self.config.max_append
                ));
                match tag {
                    Some(tag) => self.finish(&tag, reply, true, out),
                    None => self.untagged_bad(&reply.text, out),
                }
                if literal.non_sync {
                    self.skip_literal(literal.length, out);
                }
            }
        }
    }

    /// A non-synchronising literal that is refused: its octets are on their way. Read and
    /// drop them when they are no more than an APPEND may send, else close (RFC 7888 §4
    /// allows either).
    pub(super) fn skip_literal(&mut self, length: Option<u64>, out: &mut Vec<u8>) {
        match length {
            Some(length) if length <= self.config.max_append => {
                self.reader.discard_literal(length);
            }
            _ => {
                if !self.closing {
                    response::bye(out, "Literal too big to skip; closing");
                    self.closing = true;
                }
            }
        }
    }

    fn too_long(&mut self, head: &[u8], out: &mut Vec<u8>) {
        let mut start = self.command.clone();
        start.extend_from_slice(head);
        let secret = self.config.trace && (self.command_secret || mask_line(&start).1);
        self.reset_command();
        if secret {
            self.record_trace("***");
        } else {
            self.record_trace(&format!("{}...", trace_text(head)));
        }
        let text = format!(
            "line too long: at most {} octets (send long arguments as literals, e.g. {{500}})",
            self.config.max_line
        );
        match tag_and_name(&start).0 {
            Some(tag) => self.finish(&tag, Reply::bad(text), true, out),
            None => self.untagged_bad(&text, out),
        }
    }

    /// Decode and run a complete command.
    fn run_bytes(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match CommandCodec::default().decode(bytes) {
            Ok((_, command)) => {
                let command = command.into_static();
                self.run(command, out);
            }
            Err(_) => self.parse_error(bytes, out),
        }
    }

    /// A `* BAD` (no tag to answer), counted as a bad command.
    pub(super) fn untagged_bad(&mut self, text: &str, out: &mut Vec<u8>) {
        response::untagged(out, StatusKind::Bad, None, text);
        self.count_bad(out);
    }

    fn count_bad(&mut self, out: &mut Vec<u8>) {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands && !self.closing {
            response::bye(out, "Too many bad commands; closing");
            self.events.push(Event::TooManyFailures {
                failed_logins: self.failed_logins,
                bad_commands: self.bad_commands,
            });
            self.closing = true;
        }
    }

    /// End a command: announce mailbox changes (with EXPUNGE only when `expunge_ok`), then
    /// the tagged status.
    pub(super) fn finish(
        &mut self,
        tag: &Tag<'_>,
        reply: Reply,
        expunge_ok: bool,
        out: &mut Vec<u8>,
    ) {
        if reply.kind != StatusKind::Bad {
            self.refresh(expunge_ok, self.sync, out);
        }
        self.sync = Sync::Full;
        response::tagged(out, tag, &reply);
        if reply.kind == StatusKind::Bad {
            self.count_bad(out);
        }
    }

    /// Teach: which command failed to parse, and what it needs.
    fn parse_error(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let words: Vec<&[u8]> = first_line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let tag = words
            .first()
            .filter(|w| Tag::validate(w).is_ok())
            .and_then(|w| Tag::try_from(String::from_utf8_lossy(w).into_owned()).ok());
        let first_upper = words
            .first()
            .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase());
        // A line whose first word is a command was typed without a tag.
        let untagged = first_upper
            .as_deref()
            .and_then(hint)
            .map(|(_, example)| format!("Every command starts with a tag, e.g. a1 {example}"));
        let Some(tag) = tag else {
            let text = untagged.unwrap_or_else(|| {
                "Every command starts with a tag (any word, e.g. a1), then the command: a1 CAPABILITY".into()
            });
            self.untagged_bad(&text, out);
            return;
        };
        let mut name = words
            .get(1)
            .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase());
        if name.as_deref() == Some("UID") {
            match words
                .get(2)
                .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
            {
                Some(sub) if hint(&format!("UID {sub}")).is_some() => {
                    name = Some(format!("UID {sub}"))
                }
                _ => {
                    let reply = Reply::bad(
                        "UID goes with FETCH, STORE, COPY, MOVE, SEARCH or EXPUNGE, e.g. UID FETCH 1:* (FLAGS)",
                    );
                    self.finish(&tag, reply, true, out);
                    return;
                }
            }
        }
        let known = name.as_deref().and_then(hint);
        let reply = match (name, known, untagged) {
            (Some(name), Some((needs, example)), _) => {
                Reply::bad(format!("{name} needs {needs}, e.g. {example}"))
            }
            (_, _, Some(untagged)) => {
                self.untagged_bad(&untagged, out);
                return;
            }
            (None, _, None) => Reply::bad(format!(
                "missing command after the tag, e.g. {} CAPABILITY",
                tag.inner()
            )),
            (Some(name), None, None) => Reply::bad(format!(
                "unknown command \"{}\" (try CAPABILITY)",
                name.chars().take(40).collect::<String>()
            )),
        };
        self.finish(&tag, reply, true, out);
    }

    /// Which commands each state allows: the one place that decides it.
    fn gate(&self, body: &CommandBody<'_>) -> Result<(), String> {
        use CommandBody::*;
        let logged_in = self.account.is_some();
        let selected = self.selected.is_some();
        match body {
            Capability | Noop | Logout | Id { .. } => Ok(()),
            StartTLS | Authenticate { .. } | Login { .. } if logged_in => Err(format!(
                "{} is only allowed before login: you are logged in",
                command_name(body)
            )),
            StartTLS | Authenticate { .. } | Login { .. } => Ok(()),
            Select { .. }
            | Examine { .. }
            | Create { .. }
            | Delete { .. }
            | Rename { .. }
            | Subscribe { .. }
            | Unsubscribe { .. }
            | List { .. }
            | Lsub { .. }
            | Status { .. }
            | Append { .. }
            | Enable { .. }
            | Namespace
            | Idle => {
                if logged_in {
                    Ok(())
                } else {
                    Err("Log in first: LOGIN user password".into())
                }
            }
            Check
            | Close
            | Unselect
            | Expunge
            | ExpungeUid { .. }
            | Search { .. }
            | Fetch { .. }
            | Store { .. }
            | Copy { .. }
            | Move { .. } => {
                if !logged_in {
                    Err("Log in first: LOGIN user password".into())
                } else if !selected {
                    Err(format!(
                        "{} needs a selected mailbox: SELECT INBOX first",
                        command_name(body)
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!(
                "{} is not supported here (CAPABILITY lists what is)",
                command_name(body)
            )),
        }
    }

    fn run(&mut self, command: Command<'static>, out: &mut Vec<u8>) {
        let Command { tag, body } = command;
        if let Err(text) = self.gate(&body) {
            self.finish(&tag, Reply::bad(text), true, out);
            return;
        }
        if matches!(
            body,
            CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Close
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. }
        ) && self.wait_to_block()
        {
            self.offloaded = Some(Box::new(Command { tag, body }));
            return;
        }
        self.execute(tag, body, out);
    }

    /// Whatever comes next waits for the disk: true, and [`Action::Offload`] is on its way to
    /// the driver, unless this call of [`Session::next`] may already block.
    pub(super) fn wait_to_block(&mut self) -> bool {
        if self.may_block {
            return false;
        }
        self.offload_asked = true;
        self.action = Some(Action::Offload);
        true
    }

    /// Run a command that passed [`Session::gate`].
    fn execute(&mut self, tag: Tag<'static>, body: CommandBody<'static>, out: &mut Vec<u8>) {
        use CommandBody::*;
        if matches!(
            body,
            Fetch { .. } | Store { .. } | Search { .. } | Copy { .. } | Move { .. }
        ) {
            // Answer from a fresh view (re-reading the Maildir only if its directories
            // changed, looking at most once a second unless this process changed it).
            // Expunges by others wait until they may be announced, except before a UID
            // command (RFC 3501 §7.4.1), which then does not fail on messages that are
            // known to be gone.
            let uid = matches!(
                body,
                Fetch { uid: true, .. }
                    | Store { uid: true, .. }
                    | Search { uid: true, .. }
                    | Copy { uid: true, .. }
                    | Move { uid: true, .. }
            );
            self.refresh(uid, Sync::Quick, out);
            self.sync = if matches!(body, Copy { .. } | Move { .. }) {
                // The copies may land in the selected mailbox: EXISTS in COPY's answer.
                Sync::Fast
            } else {
                Sync::Skip
            };
        }
        // Each handler answers with its tagged status, or `None` when it has taken care of
        // that itself (streaming, a pause, a continuation request).
        let (reply, expunge_ok) = match body {
            Capability => (Some(self.capability(out)), true),
            Noop | Check => (
                Some(Reply::ok(format!("{} completed", command_name(&body)))),
                true,
            ),
            Logout => {
                self.logout(&tag, out);
                return;
            }
            StartTLS => (self.starttls(&tag, out), true),
            Login { username, password } => (
                self.login(&tag, &username, password.declassify(), out),
                true,
            ),
            Authenticate {
                mechanism,
                initial_response,
            } => (
                self.authenticate(
                    &tag,
                    &mechanism,
                    initial_response.as_ref().map(|r| r.declassify().as_ref()),
                    out,
                ),
                true,
            ),
            Enable { .. } => (Some(self.enable(out)), true),
            Id { .. } => (Some(self.id(out)), true),
            Namespace => (Some(self.namespace(out)), true),
            Select { mailbox } => (Some(self.select(&mailbox, false, out)), true),
            Examine { mailbox } => (Some(self.select(&mailbox, true, out)), true),
            Create { mailbox } => (Some(self.create(&mailbox)), true),
            Delete { mailbox } => (Some(self.delete(&mailbox)), true),
            Rename { from, to } => (Some(self.rename(&from, &to)), true),
            Subscribe { mailbox } => (Some(self.subscribe(&mailbox, true)), true),
            Unsubscribe { mailbox } => (Some(self.subscribe(&mailbox, false)), true),
            List {
                reference,
                mailbox_wildcard,
            } => (
                Some(self.list(&reference, &mailbox_wildcard, false, out)),
                true,
            ),
            Lsub {
                reference,
                mailbox_wildcard,
            } => (
                Some(self.list(&reference, &mailbox_wildcard, true, out)),
                true,
            ),
            Status {
                mailbox,
                item_names,
            } => (Some(self.status(&mailbox, &item_names, out)), true),
            Append { .. } => (
                // Handled as its literal is announced; an APPEND without a literal does not
                // parse, so this is not reached.
                Some(Reply::bad(
                    "APPEND needs a message literal, e.g. APPEND INBOX {11}",
                )),
                true,
            ),
            Close => (Some(self.close()), true),
            Unselect => {
                self.selected = None;
                (Some(Reply::ok("UNSELECT completed")), true)
            }
            Expunge => (
                Some(self.own_change(|session| session.expunge(None, out))),
                true,
            ),
            ExpungeUid { sequence_set } => (
                Some(self.own_change(|session| session.expunge(Some(&sequence_set), out))),
                true,
            ),
            Search {
                charset,
                criteria,
                uid,
            } => (Some(self.search(charset.as_ref(), criteria, uid, out)), uid),
            Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
            } => (
                self.fetch(tag.clone(), &sequence_set, macro_or_item_names, uid),
                uid,
            ),
            Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
            } => (
                Some(self.own_change(|session| {
                    session.store_flags(&sequence_set, kind, response, &flags, uid, out)
                })),
                uid,
            ),
            Copy {
                sequence_set,
                mailbox,
                uid,
            } => (
                Some(self.copy(&sequence_set, &mailbox, uid, false, out)),
                true,
            ),
            Move {
                sequence_set,
                mailbox,
                uid,
            } => (
                Some(self.copy(&sequence_set, &mailbox, uid, true, out)),
                true,
            ),
            Idle => {
                self.start_idle(tag, out);
                return;
            }
            other => (
                Some(Reply::bad(format!(
                    "{} is not supported here (CAPABILITY lists what is)",
                    command_name(&other)
                ))),
                true,
            ),
        };
        if let Some(reply) = reply {
            self.finish(&tag, reply, expunge_ok, out);
        }
    }

    fn logout(&mut self, tag: &Tag<'_>, out: &mut Vec<u8>) {
        if let Some(selected) = self.selected.take() {
            drop(selected);
        }
        self.events.push(Event::Logout {
            user: self.user_string(),
        });
        response::bye(out, "mailtool IMAP4rev1 server logging out");
        response::tagged(out, tag, &Reply::ok("LOGOUT completed"));
        self.closing = true;
    }

    /// A store failure as the client sees it: what the name means, never a path. Details of
    /// unexpected failures go to the log.
    pub(super) fn store_reply(&mut self, error: StoreError, what: &str) -> Reply {
        match error {
            StoreError::NoSuchMailbox { name } => Reply::no(format!(
                "no mailbox \"{}\" (LIST \"\" \"*\" shows them; CREATE makes one)",
                crate::store::folders::encode_mutf7(&name)
            ))
            .with(response::other_code("NONEXISTENT")),
            StoreError::MailboxExists { name } => Reply::no(format!(
                "mailbox \"{}\" already exists",
                crate::store::folders::encode_mutf7(&name)
            ))
            .with(response::other_code("ALREADYEXISTS")),
            StoreError::InvalidMailboxName { reason, .. } => {
                Reply::no(format!("invalid mailbox name ({reason})"))
                    .with(response::other_code("CANNOT"))
            }
            StoreError::UnsafeMailbox { .. } => Reply::no(format!(
                "{what}: the mailbox is not a plain Maildir folder (ask the administrator)"
            ))
            .with(response::other_code("CANNOT")),
            error
                if matches!(
                    error.io_kind(),
                    Some(
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    )
                ) =>
            {
                self.events.push(Event::StoreError {
                    user: self.user_string(),
                    error: error.to_string(),
                });
                Reply::no(format!(
                    "{what} failed: the store is read-only (the server has no permission to change it)"
                ))
                .with(response::other_code("NOPERM"))
            }
            error => {
                let temporary = error.is_temporary();
                self.events.push(Event::StoreError {
                    user: self.user_string(),
                    error: error.to_string(),
                });
                Reply::no(format!(
                    "{what} failed (server-side store error; try again later)"
                ))
                .with(response::other_code(if temporary {
                    "UNAVAILABLE"
                } else {
                    "SERVERBUG"
                }))
            }
        }
    }
}

/// The command's name as people type it (`UID FETCH` for the UID forms).
pub(super) fn command_name(body: &CommandBody<'_>) -> String {
    let uid = matches!(
        body,
        CommandBody::Fetch { uid: true, .. }
            | CommandBody::Store { uid: true, .. }
            | CommandBody::Copy { uid: true, .. }
            | CommandBody::Move { uid: true, .. }
            | CommandBody::Search { uid: true, .. }
            | CommandBody::ExpungeUid { .. }
    );
    let name = match body {
        CommandBody::ExpungeUid { .. } => "EXPUNGE",
        other => other.name(),
    };
    if uid {
        format!("UID {name}")
    } else {
        name.to_owned()
    }
}

/// What each command needs, with an example: the teaching half of every parse error.
fn hint(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "CAPABILITY" => ("no arguments", "CAPABILITY"),
        "NOOP" => ("no arguments", "NOOP"),
        "LOGOUT" => ("no arguments", "LOGOUT"),
        "STARTTLS" => ("no arguments", "STARTTLS"),
        "CHECK" => ("no arguments", "CHECK"),
        "CLOSE" => ("no arguments", "CLOSE"),
        "EXPUNGE" => ("no arguments", "EXPUNGE"),
        "UNSELECT" => ("no arguments", "UNSELECT"),
        "NAMESPACE" => ("no arguments", "NAMESPACE"),
        "IDLE" => ("no arguments (end it with DONE)", "IDLE"),
        "DONE" => ("an IDLE to end", "IDLE, then DONE"),
        "LOGIN" => ("a user name and a password", "LOGIN alice secret"),
        "AUTHENTICATE" => ("a SASL mechanism", "AUTHENTICATE PLAIN"),
        "SELECT" => ("a mailbox name", "SELECT INBOX"),
        "EXAMINE" => ("a mailbox name", "EXAMINE INBOX"),
        "CREATE" => ("a mailbox name", "CREATE Archive"),
        "DELETE" => ("a mailbox name", "DELETE Archive"),
        "SUBSCRIBE" => ("a mailbox name", "SUBSCRIBE Archive"),
        "UNSUBSCRIBE" => ("a mailbox name", "UNSUBSCRIBE Archive"),
        "RENAME" => ("the old and the new mailbox name", "RENAME Archive Old"),
        "LIST" => ("a reference and a pattern", "LIST \"\" \"*\""),
        "LSUB" => ("a reference and a pattern", "LSUB \"\" \"*\""),
        "STATUS" => (
            "a mailbox name and status items",
            "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)",
        ),
        "APPEND" => (
            "a mailbox name, optional flags and date, and the message as a literal",
            "APPEND INBOX (\\Seen) {11}",
        ),
        "SEARCH" => ("search keys", "SEARCH UNSEEN FROM alice"),
        "FETCH" => ("a sequence set and data items", "FETCH 1:* (FLAGS)"),
        "STORE" => (
            "a sequence set, FLAGS, +FLAGS or -FLAGS, and flags",
            "STORE 1 +FLAGS (\\Seen)",
        ),
        "COPY" => ("a sequence set and a mailbox name", "COPY 1:3 Archive"),
        "MOVE" => ("a sequence set and a mailbox name", "MOVE 1:3 Archive"),
        "ENABLE" => ("capability names", "ENABLE UTF8=ACCEPT"),
        "ID" => ("NIL or a list of field-value pairs", "ID (\"name\" \"nc\")"),
        "UID FETCH" => ("a UID set and data items", "UID FETCH 1:* (FLAGS)"),
        "UID STORE" => (
            "a UID set, FLAGS, +FLAGS or -FLAGS, and flags",
            "UID STORE 7 +FLAGS (\\Seen)",
        ),
        "UID COPY" => ("a UID set and a mailbox name", "UID COPY 7:9 Archive"),
        "UID MOVE" => ("a UID set and a mailbox name", "UID MOVE 7:9 Archive"),
        "UID SEARCH" => ("search keys", "UID SEARCH UNSEEN"),
        "UID EXPUNGE" => ("a UID set", "UID EXPUNGE 7:9"),
        _ => return None,
    })
}

/// The tag and the upper-cased command name at the start of a line, when there is a tag.
fn tag_and_name(line: &[u8]) -> (Option<Tag<'static>>, Option<String>) {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let tag = words
        .next()
        .filter(|w| Tag::validate(w).is_ok())
        .and_then(|w| Tag::try_from(String::from_utf8_lossy(w).into_owned()).ok());
    let name = words
        .next()
        .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase());
    (tag, name)
}

/// A line as the trace shows it: control characters escaped, long lines cut.
pub(super) fn trace_text(line: &[u8]) -> String {
    let mut text = String::new();
    for &byte in line.iter().take(300) {
        match byte {
            b' '..=b'~' => text.push(char::from(byte)),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if line.len() > 300 {
        text.push_str("...");
    }
    text
}

/// The first line of a command as the trace shows it, and whether the command carries a
/// secret: LOGIN keeps its user name, AUTHENTICATE its mechanism, the rest is `***`.
fn mask_line(line: &[u8]) -> (String, bool) {
    let text = trace_text(line);
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    // The command is the second word, or the first when the tag was forgotten.
    let Some(at) = words
        .iter()
        .take(2)
        .position(|w| w.eq_ignore_ascii_case("LOGIN") || w.eq_ignore_ascii_case("AUTHENTICATE"))
    else {
        return (text, false);
    };
    let keep = at + 2;
    if words.len() == keep && words[at].eq_ignore_ascii_case("LOGIN") {
        // LOGIN with one argument: people who type the password where the name goes (or
        // forget the name) would see it in the log. Only a literal's announcement shows.
        let last = words[keep - 1];
        if super::reader::announcement(last.as_bytes()).is_none_or(|a| a.start != 0) {
            return (format!("{} ***", words[..keep - 1].join(" ")), true);
        }
    }
    let mut masked = words[..words.len().min(keep)].join(" ");
    if words.len() > keep {
        masked.push_str(" ***");
    }
    (masked, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_small() {
        // Many idle sessions: keep the per-session and per-message state small.
        assert!(
            std::mem::size_of::<Session>() <= 512,
            "{}",
            std::mem::size_of::<Session>()
        );
        assert!(
            std::mem::size_of::<crate::store::UidMessage>() <= 32,
            "{}",
            std::mem::size_of::<crate::store::UidMessage>()
        );
    }

    #[test]
    fn masks_secrets() {
        assert_eq!(mask_line(b"a1 LOGIN alice secret").0, "a1 LOGIN alice ***");
        // One argument may be a password typed where the name goes.
        assert_eq!(mask_line(b"a1 login alice").0, "a1 login ***");
        assert_eq!(mask_line(b"a1 LOGIN Zaubertrank").0, "a1 LOGIN ***");
        assert_eq!(mask_line(b"a1 LOGIN {5+}").0, "a1 LOGIN {5+}");
        assert_eq!(mask_line(b"LOGIN alice secret").0, "LOGIN alice ***");
        assert_eq!(mask_line(b"a1 LOGIN \"al ice\" pw").0, "a1 LOGIN \"al ***");
        assert_eq!(mask_line(b"a1 LOGIN {5}").0, "a1 LOGIN {5}");
        assert_eq!(
            mask_line(b"a2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==").0,
            "a2 AUTHENTICATE PLAIN ***"
        );
        assert_eq!(
            mask_line(b"a3 SELECT INBOX"),
            ("a3 SELECT INBOX".into(), false)
        );
    }
}
