//! The connection driver: plugs [`super::session::Session`] into the shared server shell.
