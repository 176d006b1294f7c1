//! `serve-imap`: an IMAP4rev1 server (RFC 3501) over the same store serve-pop serves.
//!
//! [`session`] is the sans-I/O protocol core: it frames input ([`reader`]), gates commands by
//! state and dispatches to one file per command group ([`auth`], [`select`], [`fetch`],
//! [`store_flags`], [`copy`], [`search_command`], [`mailboxes`], [`append`], [`idle`]),
//! answering through [`response`]. [`message`] maps a message's structure for FETCH,
//! [`search`] evaluates SEARCH keys, and [`connection`] plugs the session into the shared
//! server shell. Mailbox names are converted between UTF-8 and modified UTF-7 with the
//! store's codec ([`crate::store::folders::encode_mutf7`]).

mod append;
mod auth;
pub mod connection;
mod copy;
mod fetch;
mod idle;
mod mailboxes;
pub mod message;
pub mod reader;
mod response;
pub mod search;
mod search_command;
mod select;
pub mod session;
mod store_flags;
