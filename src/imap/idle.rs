//! IDLE (RFC 2177): after `+ idling`, changes to the selected mailbox are announced as they
//! happen (the driver calls [`Session::tick`](super::session::Session::tick)), until the
//! client sends `DONE`.

use imap_codec::imap_types::core::Tag;

use super::response::{self, Reply};
use super::session::{Input, Session, Sync};

impl Session {
    pub(super) fn start_idle(&mut self, tag: Tag<'static>, out: &mut Vec<u8>) {
        self.refresh(true, Sync::Full, out);
        response::continuation(out, "idling");
        self.input = Input::Idle { tag };
    }

    /// A line while idling: `DONE` ends IDLE; anything else ends it too, with BAD.
    pub(super) fn idle_line(&mut self, tag: Tag<'static>, line: &[u8], out: &mut Vec<u8>) {
        let reply = if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
            Reply::ok("IDLE terminated")
        } else {
            Reply::bad("IDLE ended: only DONE may be sent while idling")
        };
        self.finish(&tag, reply, true, out);
    }
}
