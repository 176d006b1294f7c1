//! The SMTP/LMTP connection driver: plugs the sans-I/O [`Session`] and [`DataReader`] into
//! the shared server shell.
//!
//! It reads command lines into the session, answers every command of one read in one write
//! (PIPELINING), streams DATA through the reader into the store as it arrives, commits off
//! the async threads, pauses after a failed AUTH, and upgrades on STARTTLS, dropping any
//! plaintext the client pipelined after it (the CVE-2011-0411 class).

use std::sync::atomic::{AtomicU64, Ordering};

use super::data::DataReader;
use super::incoming::Incoming;
use super::line::{LineEvent, LineReader};
use super::session::{Action, DataOutcome, Envelope, Refusal, Session, SessionConfig};
use crate::server::{Conn, Driver, End, Stream, TlsMode};
use crate::store::Store;

/// Bytes read from a client at a time: message data arrives in chunks of this size.
const READ_CHUNK: usize = 64 * 1024;

/// SMTP (or LMTP) as the server shell runs it.
pub struct Smtp {
    /// The store mail is delivered into.
    pub store: Store,
    /// Limits and offers handed to each session.
    pub session: SessionConfig,
}

impl Driver for Smtp {
    fn protocol(&self) -> &'static str {
        if self.session.lmtp {
            "lmtp"
        } else {
            "smtp"
        }
    }

    fn too_many_from_address(&self) -> &'static [u8] {
        b"421 4.7.0 too many connections from your address; try again later\r\n"
    }

    async fn serve<S: Stream>(&self, conn: Conn<S>) -> End {
        static SESSIONS: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "{:x}{:x}",
            std::process::id(),
            SESSIONS.fetch_add(1, Ordering::Relaxed)
        );
        let mut session = Session::new(
            self.store.clone(),
            SessionConfig {
                starttls: self.session.starttls && conn.can_start_tls(),
                trace: conn.tracing(),
                ..self.session.clone()
            },
            tag,
        );
        if conn.is_encrypted() {
            session.tls_established();
        }
        let mut conn = conn;
        session.greeting(&mut conn.out);
        match run(&mut conn, &mut session, &self.store).await {
            Stop::End(end) => end,
            Stop::StartTls => {
                let mut conn = match conn.start_tls(TlsMode::StartTls).await {
                    Ok(conn) => conn,
                    Err(end) => return end,
                };
                session.tls_established();
                match run(&mut conn, &mut session, &self.store).await {
                    Stop::End(end) => end,
                    // An encrypted session refuses STARTTLS; end it rather than nest.
                    Stop::StartTls => End::TlsFailed,
                }
            }
        }
    }
}

enum Stop {
    End(End),
    StartTls,
}

/// The data phase of one transaction.
struct Receiving {
    envelope: Envelope,
    reader: DataReader,
    incoming: Option<Incoming>,
    chunk: Vec<u8>,
}

/// Read, answer and deliver until the session ends or asks for TLS.
async fn run<S: Stream>(conn: &mut Conn<S>, session: &mut Session, store: &Store) -> Stop {
    if let Err(end) = conn.flush().await {
        return Stop::End(end);
    }
    // A fresh reader per run: after STARTTLS nothing read in the clear carries over.
    let mut lines = LineReader::new();
    let mut receiving: Option<Receiving> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(n) => n,
            Err(end) => return Stop::End(end),
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            if let Some(data) = receiving.as_mut() {
                let used = data.reader.read(input, &mut data.chunk);
                input = &input[used..];
                feed(data);
                if !data.reader.is_done() {
                    continue;
                }
                let data = receiving.take().expect("receiving");
                finish(conn, session, data).await;
                report(conn, session);
                continue;
            }
            let limit = session.line_limit();
            let Some(event) = lines.next_line(&mut input, limit) else {
                break;
            };
            let action = match event {
                LineEvent::Line(line) => session.handle_line(line, &mut conn.out),
                LineEvent::TooLong => session.line_too_long(&mut conn.out),
            };
            report(conn, session);
            match action {
                Action::Continue => {}
                Action::Data(envelope) => {
                    let peer = conn.peer().ip().to_string();
                    let incoming = Incoming::start(
                        store,
                        &envelope,
                        session.host_name(),
                        &peer,
                        session.is_lmtp(),
                    );
                    receiving = Some(Receiving {
                        envelope,
                        reader: DataReader::new(),
                        incoming: Some(incoming),
                        chunk: Vec::with_capacity(READ_CHUNK),
                    });
                    // The client waits for 354 before sending the data.
                    if input.is_empty() {
                        if let Err(end) = conn.flush().await {
                            return Stop::End(end);
                        }
                    }
                }
                Action::StartTls => {
                    if let Err(end) = conn.flush().await {
                        return Stop::End(end);
                    }
                    // Whatever else this read (and the line reader) holds was sent in the
                    // clear after STARTTLS: dropped unread, so a man in the middle cannot
                    // inject commands into the encrypted session (CVE-2011-0411).
                    let dropped = input.len() + lines.buffered();
                    if dropped > 0 {
                        conn.trace_input(&format!("<{dropped} octets after STARTTLS discarded>"));
                    }
                    return Stop::StartTls;
                }
                Action::Pause { delay, then_close } => {
                    if let Err(end) = conn.pause(delay).await {
                        return Stop::End(end);
                    }
                    if then_close {
                        return Stop::End(conn.close(End::TooManyFailures).await);
                    }
                }
                Action::Close => return Stop::End(conn.close(End::Quit).await),
            }
        }
        // Answer every command of this read in one write: pipelined clients wait less.
        if let Err(end) = conn.flush().await {
            return Stop::End(end);
        }
    }
    // A client that drops during DATA: `receiving` is dropped with its Delivery, which
    // removes the partial file from tmp/.
}

/// Move what the reader produced into the store, or drop it once the message is refused.
fn feed(data: &mut Receiving) {
    let too_big = data.reader.size() > data.envelope.max_size;
    if too_big || data.reader.line_too_long() {
        if let Some(incoming) = data.incoming.take() {
            incoming.abandon();
        }
    } else if let Some(incoming) = data.incoming.as_mut() {
        incoming.write(&data.chunk);
    }
    data.chunk.clear();
}

/// The end of the data: commit (blocking, so off the async threads) and reply.
async fn finish<S: Stream>(conn: &mut Conn<S>, session: &mut Session, data: Receiving) {
    let Receiving {
        envelope,
        reader,
        incoming,
        ..
    } = data;
    let size = reader.size();
    if conn.tracing() {
        conn.trace_input(&format!("<message data: {size} octets>"));
    }
    let outcome = if size > envelope.max_size {
        DataOutcome::Refused(Refusal::TooBig)
    } else if reader.line_too_long() {
        DataOutcome::Refused(Refusal::LineTooLong)
    } else {
        // On this task, like every store call of the servers: the fsyncs inside tell the
        // runtime they block (the store's blocking hook), which hands this worker's other
        // sessions to a spare thread meanwhile. (A spawn_blocking per message cost a thread
        // handoff each.)
        let incoming = incoming.expect("kept while the message is acceptable");
        DataOutcome::Stored(incoming.commit())
    };
    session.data_done(&envelope, outcome, size, &mut conn.out);
}

/// Trace the client's lines and log the session's events.
fn report<S: Stream>(conn: &Conn<S>, session: &mut Session) {
    conn.report(session.take_trace(), session.take_events());
}
