//! The IMAP connection driver: plugs the sans-I/O [`Session`] into the shared server shell.
//!
//! It moves bytes between the [`Conn`] and the session and carries out what the session
//! asks: send and go on (a FETCH being streamed), pause after a failed login, STARTTLS,
//! close. While the client IDLEs it wakes the session about once a second so new mail is
//! announced; on the idle timeout it sends RFC 3501's autologout `BYE` before closing.

use std::time::Duration;

use super::session::{Action, Session, SessionConfig};
use crate::server::{Conn, Driver, End, Stream, TlsMode};
use crate::store::Store;

/// Bytes read from a client at a time while it sends commands, which are short.
const READ_SMALL: usize = 1024;
/// Bytes read at a time once a read filled the small buffer (APPEND data, which goes in
/// chunks of this size straight into the message file), until a read comes back small.
const READ_CHUNK: usize = 16 * 1024;
/// The output buffer kept between commands, enough for most messages' FETCH responses.
const KEEP_OUTPUT: usize = 16 * 1024;
/// Bytes read at a time by a connection quiet for [`SHED_AFTER`]: what it then holds to
/// hear its client's next words (the rest of a longer command is read with [`READ_SMALL`]).
const READ_QUIET: usize = 64;
/// After this long without a word from the client, the connection lets go of its buffers
/// (input, output, and the read buffer but [`READ_QUIET`] octets) and asks for the memory
/// to go back to the system: a client busy with a session answers within milliseconds and
/// finds them, one that went quiet costs less (10,000 quiet connections over 64 users:
/// 52 MiB, not 61).
const SHED_AFTER: Duration = Duration::from_secs(1);
/// How long after the end of [`Session::look_again_within`] an IDLE session looks again.
const TRUST_MARGIN: Duration = Duration::from_millis(10);
/// How long a shutdown's `BYE` may take to send.
const BYE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an IDLE session looks for changes when its mailbox cannot be watched.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often it looks anyway when watched, for what inotify does not see (a network
/// filesystem changed from another host; Dovecot's `mailbox_idle_check_interval` is 30 s).
const IDLE_POLL_WATCHED: Duration = Duration::from_secs(10);
/// After this long without a word from the client, in IDLE or not, the session lets go of
/// its selected mailbox's file names and lists the Maildir again when the client speaks or,
/// in IDLE, when the Maildir changes (`Session::hibernate`): 10,000 quiet connections then
/// hold 16 octets a message, not 96. Dovecot's `imap_hibernate_timeout` is the like of it,
/// for IDLE only.
const HIBERNATE_AFTER: Duration = Duration::from_secs(30);

/// IMAP as the server shell runs it.
pub struct Imap {
    /// The store every session serves.
    pub store: Store,
    /// Limits and offers handed to each session.
    pub session: SessionConfig,
}

impl Driver for Imap {
    fn protocol(&self) -> &'static str {
        "imap"
    }

    fn too_many_from_address(&self) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    }

    async fn serve<S: Stream>(&self, conn: Conn<S>) -> End {
        // Boxed, so that it can move to a blocking thread and back (Action::Offload).
        let mut session = Box::new(Session::new(
            self.store.clone(),
            SessionConfig {
                starttls: self.session.starttls && conn.can_start_tls(),
                trace: conn.tracing(),
                ..self.session.clone()
            },
        ));
        if conn.is_encrypted() {
            session.tls_established();
        }
        let mut conn = conn;
        session.greeting(&mut conn.out);
        let (stop, mut session) = run(&mut conn, session).await;
        match stop {
            Stop::End(End::Shutdown) => shut_down(&mut conn, &mut session).await,
            Stop::End(end) => end,
            // Boxed, so that plain sessions do not carry the encrypted one's size.
            Stop::StartTls => {
                Box::pin(async move {
                    let mut conn = match conn.start_tls(TlsMode::StartTls).await {
                        Ok(conn) => conn,
                        Err(end) => return end,
                    };
                    session.tls_established();
                    let (stop, mut session) = run(&mut conn, session).await;
                    match stop {
                        Stop::End(End::Shutdown) => shut_down(&mut conn, &mut session).await,
                        Stop::End(end) => end,
                        // An encrypted session refuses STARTTLS; end it rather than nest.
                        Stop::StartTls => End::TlsFailed,
                    }
                })
                .await
            }
        }
    }
}

/// The server is shutting down: tell the client with a `BYE` (RFC 3501 §7.1.5), taking at
/// most [`BYE_TIMEOUT`] over it, and close. Whatever the session had under way (an APPEND's
/// file in `tmp/`) is dropped with it.
async fn shut_down<S: Stream>(conn: &mut Conn<S>, session: &mut Session) -> End {
    session.shutting_down(&mut conn.out);
    tokio::time::timeout(BYE_TIMEOUT, conn.close(End::Shutdown))
        .await
        .unwrap_or(End::Shutdown)
}

/// How [`run`] stopped.
enum Stop {
    End(End),
    /// The session answered STARTTLS and has dropped whatever followed it.
    StartTls,
}

/// Drive the session until the connection ends or the session asks for TLS.
async fn run<S: Stream>(conn: &mut Conn<S>, mut session: Box<Session>) -> (Stop, Box<Session>) {
    let mut buf = vec![0u8; READ_SMALL];
    let mut offloaded = None;
    loop {
        let action = match offloaded.take() {
            Some(action) => action,
            None => session.next(&mut conn.out),
        };
        report(conn, &mut session);
        let step = match action {
            Action::Flush => conn.flush().await,
            Action::Offload => {
                let action;
                (session, action) = offload(conn, session).await;
                offloaded = Some(action);
                Ok(())
            }
            Action::NeedInput => match read(conn, &mut session, &mut buf).await {
                Ok(n) => {
                    session.receive(&buf[..n]);
                    if n == buf.len() && (READ_SMALL..READ_CHUNK).contains(&n) {
                        buf = vec![0u8; READ_CHUNK];
                    } else if buf.len() < READ_SMALL || (n < READ_SMALL && buf.len() > READ_SMALL) {
                        buf = vec![0u8; READ_SMALL];
                    }
                    if conn.out.capacity() == 0 {
                        // Shed while quiet: an answer is coming.
                        conn.out.reserve(READ_SMALL);
                    }
                    Ok(())
                }
                Err(end) => Err(end),
            },
            Action::Pause { delay, then_close } => {
                if let Err(end) = conn.pause(delay).await {
                    return (Stop::End(end), session);
                }
                if then_close {
                    Err(conn.close(End::TooManyFailures).await)
                } else {
                    Ok(())
                }
            }
            Action::StartTls => match conn.flush().await {
                Ok(()) => return (Stop::StartTls, session),
                Err(end) => Err(end),
            },
            Action::Close => Err(conn.close(End::Quit).await),
        };
        if let Err(end) = step {
            return (Stop::End(end), session);
        }
    }
}

/// Make the session's next call on the runtime's blocking pool, where waiting for the disk
/// holds up no other session, and return it with what it asks next.
async fn offload<S: Stream>(conn: &mut Conn<S>, session: Box<Session>) -> (Box<Session>, Action) {
    let out = std::mem::take(&mut conn.out);
    let ((session, out), action) =
        crate::server::off_the_worker((session, out), |(session, out)| session.next(out)).await;
    conn.out = out;
    (session, action)
}

/// Send what the session wrote, then wait for the client's next octets: at most the idle
/// timeout (then the autologout `BYE`). While the session IDLEs, a change to its mailbox's
/// folders wakes it at once (inotify, through the shell's watcher), and it looks anyway every
/// [`IDLE_POLL_WATCHED`], or every [`IDLE_POLL`] where the folders cannot be watched.
async fn read<S: Stream>(
    conn: &mut Conn<S>,
    session: &mut Session,
    buf: &mut Vec<u8>,
) -> Result<usize, End> {
    conn.flush().await?;
    // Waiting may take minutes: hold no large buffer meanwhile (a FETCH's grows to 64 KiB).
    // One that fits a typical message is kept until the connection sheds its buffers after
    // [`SHED_AFTER`] of quiet: shrinking it before every read made each FETCH of a 4 KiB
    // message allocate and free a large block again (glibc then sweeps its free lists).
    if conn.out.capacity() > KEEP_OUTPUT {
        conn.out = Vec::with_capacity(READ_SMALL);
    }
    let idle_timeout = conn.config().idle_timeout;
    let started = tokio::time::Instant::now();
    let mut watch = None;
    let mut shed = false;
    let mut hibernated = false;
    loop {
        let waited = started.elapsed();
        if waited >= idle_timeout {
            session.autologout(&mut conn.out);
            return Err(conn.close(End::IdleTimeout).await);
        }
        let idling = session.is_idling();
        if idling && watch.is_none() {
            watch = session.idle_dirs().and_then(|dirs| conn.watch(&dirs));
            if watch.is_some() {
                // What changed between IDLE's own look and the watch would not wake us.
                announce(conn, session, Session::tick_if_changed).await?;
            }
        }
        let poll = if watch.is_some() {
            IDLE_POLL_WATCHED
        } else {
            IDLE_POLL
        };
        let wait = if !shed && waited < SHED_AFTER {
            (SHED_AFTER - waited).min(if idling { poll } else { idle_timeout - waited })
        } else if idling {
            poll.min(idle_timeout - waited)
        } else if !hibernated && waited < HIBERNATE_AFTER {
            (HIBERNATE_AFTER - waited).min(idle_timeout - waited)
        } else {
            idle_timeout - waited
        };
        // Just after the trust in its own changes' times ends (a second after them), look.
        let wait = match session.look_again_within() {
            Some(left) if idling => wait.min(left + TRUST_MARGIN),
            _ => wait,
        };
        let got = match &watch {
            Some(watch) if idling => conn.read_within_or(buf, wait, watch.changed()).await?,
            _ => conn.read_within(buf, wait).await?,
        };
        if let Some(n) = got {
            return Ok(n);
        }
        if session.is_idling() {
            // A change wakes a hibernating session, which then sleeps again below.
            announce(conn, session, Session::tick).await?;
        }
        if !shed && started.elapsed() >= SHED_AFTER && session.shed_buffers() {
            conn.out = Vec::new();
            *buf = vec![0u8; READ_QUIET];
            shed = true;
            crate::server::heap::release_soon();
        }
        if started.elapsed() >= HIBERNATE_AFTER {
            // A quiet client: keep only what cannot be listed again.
            if session.hibernate() {
                crate::server::heap::release_soon();
            }
            hibernated = true;
        }
    }
}

/// Let an IDLE session `look` for changes and announce them, and send that.
async fn announce<S: Stream>(
    conn: &mut Conn<S>,
    session: &mut Session,
    look: fn(&mut Session, &mut Vec<u8>),
) -> Result<(), End> {
    look(session, &mut conn.out);
    report(conn, session);
    conn.flush().await
}

/// Trace the client's lines and log the session's events.
fn report<S: Stream>(conn: &Conn<S>, session: &mut Session) {
    conn.report(session.take_trace(), session.take_events());
}
