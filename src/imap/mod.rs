//! `serve-imap`: an IMAP4rev1 server (RFC 3501) over the same store serve-pop serves.
//!
//! [`session`] is the sans-I/O protocol core, dispatching to one file per command group;
//! [`message`] maps a message's structure for FETCH, [`search`] evaluates SEARCH keys, and
//! [`connection`] plugs the session into the shared server shell.

pub mod connection;
pub mod message;
pub mod search;
pub mod session;
