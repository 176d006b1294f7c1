//! The POP3 connection driver: plugs the sans-I/O [`Session`] into the shared server shell.
//!
//! The shell hands over a [`Conn`]; this file reads lines into the session, carries out its
//! actions (streaming a message body, pausing after a failed login, STLS, closing) and logs
//! its events. Everything the protocol decides lives in the session.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::protocol::{BodyWriter, Extent, LineEvent, LineReader};
use super::session::{Action, Session, SessionConfig, Transfer};
use crate::server::{Conn, Driver, End, Stream, TlsMode};
use crate::store::Store;

/// Output is sent once this much is buffered (and at the end of each read's commands).
const FLUSH_AT: usize = 64 * 1024;
/// Bytes read from a message file at a time.
const FILE_CHUNK: usize = 32 * 1024;
/// Bytes read from a client at a time; small, since commands are short and idle sessions
/// should cost little.
const READ_CHUNK: usize = 2048;

/// POP3 as the server shell runs it.
pub struct Pop3 {
    /// The store every session serves.
    pub store: Store,
    /// Limits and offers handed to each session.
    pub session: SessionConfig,
}

impl Driver for Pop3 {
    fn protocol(&self) -> &'static str {
        "pop3"
    }

    fn too_many_from_address(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] too many connections from your address\r\n"
    }

    async fn serve<S: Stream>(&self, conn: Conn<S>) -> End {
        let mut session = Session::new(
            self.store.clone(),
            SessionConfig {
                stls: self.session.stls && conn.can_start_tls(),
                ..self.session.clone()
            },
            greeting_timestamp(),
        );
        if conn.is_encrypted() {
            // The implicit-TLS port: encrypted from the greeting on.
            session.tls_established();
            return serve_session(Pop3Conn::new(conn), &mut session).await;
        }
        let mut connection = Pop3Conn::new(conn);
        session.greeting(&mut connection.conn.out);
        if let Err(end) = connection.flush(&mut session).await {
            return end;
        }
        match command_loop(&mut connection, &mut session).await {
            Stop::End(end) => end,
            Stop::StartTls => {
                let Pop3Conn {
                    conn,
                    file_chunk,
                    sent_pending,
                } = connection;
                let conn = match conn.start_tls(TlsMode::StartTls).await {
                    Ok(conn) => conn,
                    Err(end) => return end,
                };
                session.tls_established();
                let mut connection = Pop3Conn {
                    conn,
                    file_chunk,
                    sent_pending,
                };
                match command_loop(&mut connection, &mut session).await {
                    Stop::End(end) => end,
                    // An encrypted session refuses STLS, so this cannot happen; end it
                    // rather than nest.
                    Stop::StartTls => End::TlsFailed,
                }
            }
        }
    }
}

/// An encrypted session from its greeting on.
async fn serve_session<S: Stream>(mut connection: Pop3Conn<S>, session: &mut Session) -> End {
    session.greeting(&mut connection.conn.out);
    if let Err(end) = connection.flush(session).await {
        return end;
    }
    match command_loop(&mut connection, session).await {
        Stop::End(end) => end,
        Stop::StartTls => End::TlsFailed,
    }
}

/// The shell's connection plus what POP3 keeps around the session.
struct Pop3Conn<S> {
    conn: Conn<S>,
    /// Allocated at the first RETR or TOP only, so idle sessions stay small.
    file_chunk: Option<Box<[u8]>>,
    /// RETRs whose bodies are in `out`: marked Seen once `out` has been sent.
    sent_pending: Vec<u32>,
}

impl<S: Stream> Pop3Conn<S> {
    fn new(conn: Conn<S>) -> Self {
        Pop3Conn {
            conn,
            file_chunk: None,
            sent_pending: Vec::new(),
        }
    }

    /// Send the output, then mark what it carried as sent and log the session's events.
    async fn flush(&mut self, session: &mut Session) -> Result<(), End> {
        self.conn.flush().await?;
        for number in self.sent_pending.drain(..) {
            session.transfer_done(number, Extent::Whole);
        }
        for event in session.take_events() {
            self.conn.log(&event);
        }
        Ok(())
    }

    async fn close(&mut self, session: &mut Session, end: End) -> End {
        if let Err(failed) = self.flush(session).await {
            return failed;
        }
        self.conn.close(end).await
    }

    /// Encode a message body into `out`, sending whenever enough has piled up.
    async fn send_body(&mut self, session: &mut Session, transfer: Transfer) -> Result<(), End> {
        let Transfer {
            mut file,
            extent,
            number,
            length,
        } = transfer;
        let mut read_so_far = 0u64;
        let mut writer = BodyWriter::new(extent);
        // Taken out of `self` while `flush` borrows it, and put back after.
        let mut chunk = self
            .file_chunk
            .take()
            .unwrap_or_else(|| vec![0; FILE_CHUNK].into_boxed_slice());
        let result = loop {
            // A blocking read, but of a local file that is usually in the page cache; a
            // thread hop per chunk would cost more than it saves.
            let n = match file.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // +OK is already sent, so the only honest way out is to close.
                Err(_) => break Err(End::StoreError),
            };
            writer.write(&chunk[..n], &mut self.conn.out);
            read_so_far += n as u64;
            // A short read that reaches the size in the file name is the end of the file:
            // skip the read that would return 0 (one syscall of about seven per RETR).
            if writer.is_done() || (n < chunk.len() && Some(read_so_far) == length) {
                break Ok(());
            }
            if self.conn.out.len() >= FLUSH_AT {
                if let Err(end) = self.flush(session).await {
                    break Err(end);
                }
            }
        };
        self.file_chunk = Some(chunk);
        result?;
        writer.finish(&mut self.conn.out);
        if extent == Extent::Whole {
            self.sent_pending.push(number);
        }
        Ok(())
    }
}

/// How a command loop stopped.
enum Stop {
    /// The connection is over.
    End(End),
    /// The session answered STLS: the connection, with nothing buffered, is to be upgraded.
    StartTls,
}

/// Read, answer and stream until the session ends or asks for TLS.
async fn command_loop<S: Stream>(connection: &mut Pop3Conn<S>, session: &mut Session) -> Stop {
    // A fresh reader per loop: after STLS nothing read in the clear carries over.
    let mut reader = LineReader::new();
    let mut buf = [0u8; READ_CHUNK];
    loop {
        // RFC 1939 §3 autologout: on the idle timeout, close without UPDATE and without a
        // word.
        let n = match connection.conn.read(&mut buf).await {
            Ok(n) => n,
            Err(end) => return Stop::End(end),
        };
        let mut input = &buf[..n];
        while let Some(event) = reader.next_line(&mut input) {
            let action = match event {
                LineEvent::Line(line) => {
                    if connection.conn.tracing() {
                        connection.conn.trace_input(&session.trace_view(line));
                    }
                    session.handle_line(line, &mut connection.conn.out)
                }
                LineEvent::TooLong => {
                    connection.conn.trace_input("<line longer than 255 octets>");
                    session.handle_overlong_line(&mut connection.conn.out)
                }
            };
            let step = match action {
                Action::Continue => Ok(()),
                Action::Transfer(transfer) => connection.send_body(session, transfer).await,
                Action::Pause { delay, then_close } => {
                    if let Err(end) = connection.conn.pause(delay).await {
                        return Stop::End(end);
                    }
                    if then_close {
                        Err(connection.close(session, End::TooManyFailures).await)
                    } else {
                        connection.flush(session).await
                    }
                }
                Action::Close => Err(connection.close(session, End::Quit).await),
                Action::TooManyFailures => {
                    Err(connection.close(session, End::TooManyFailures).await)
                }
                Action::StartTls => {
                    if let Err(end) = connection.flush(session).await {
                        return Stop::End(end);
                    }
                    // Whatever else this read (and the reader) holds was sent in the clear
                    // after STLS: returning drops it unread, so a man in the middle cannot
                    // inject commands into the encrypted session (CVE-2011-0411).
                    if !input.is_empty() || reader.buffered() > 0 {
                        connection.conn.trace_input(&format!(
                            "<{} octets after STLS discarded>",
                            input.len() + reader.buffered()
                        ));
                    }
                    return Stop::StartTls;
                }
            };
            if let Err(end) = step {
                return Stop::End(end);
            }
            if connection.conn.out.len() >= FLUSH_AT {
                if let Err(end) = connection.flush(session).await {
                    return Stop::End(end);
                }
            }
        }
        // Answer every command of this read in one write: pipelined clients wait less.
        if let Err(end) = connection.flush(session).await {
            return Stop::End(end);
        }
    }
}

/// The APOP timestamp: `<pid.counter.clock@host>`, unique per session and process.
fn greeting_timestamp() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let host = HOST.get_or_init(crate::store::maildir::host_name);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!(
        "<{}.{}.{clock}@{host}>",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}
