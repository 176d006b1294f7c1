//! mailtool: a small mail toolkit in one binary.
//!
//! The crate is a library first, so that tests, benchmarks and fuzzers call the same code the
//! binary runs; `src/main.rs` only parses arguments and maps errors to exit codes.
//!
//! - [`cli`]: the clap definitions of every subcommand, and shell completions.
//! - [`app`]: dispatches a parsed command line to the code that serves it.
//! - [`exit`]: the exit statuses mailtool documents, and how an error maps to one.
//! - [`output`]: the one printer: every command returns values that render as text or JSON.
//! - [`store`]: the Dovecot-compatible store (passwd-file users, Maildir mailboxes, locks);
//!   the only code that touches the store's files.
//! - [`mbox`]: the `mbox` subcommands that manage the store.
//! - [`mboxrd`]: reading and writing mboxrd, the framing `--mbox` and `--raw` use.
//! - [`line_reader`]: the bounded line splitter of the line-based protocol cores (POP3, SMTP).
//! - [`demo`]: the demo store embedded in the binary.
//! - [`server`]: the protocol-agnostic server shell every server runs in: listeners,
//!   limits, TLS, timeouts, shutdown, log and trace.
//! - [`pop3`]: the POP3 server: a sans-I/O protocol core and its connection driver.
//! - [`imap`]: the IMAP server: a sans-I/O session and its connection driver.
//! - [`smtp`]: the SMTP and LMTP receiver: a sans-I/O session, the DATA reader, delivery.
//! - [`serve`]: `serve`, every server together in one process on one store.
//! - [`inspect`]: mail parsing and summaries.
//! - [`unread`]: `imap-unread`, the IMAP unread sweeper (an IMAP client).

pub mod app;
pub mod cli;
pub mod demo;
pub mod exit;
pub mod imap;
pub mod inotify;
pub mod inspect;
pub mod line_reader;
pub mod mbox;
pub mod mboxrd;
pub mod output;
pub mod pop3;
pub mod serve;
pub mod server;
pub mod smtp;
pub mod store;
pub mod unread;
