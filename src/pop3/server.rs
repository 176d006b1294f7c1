//! The tokio shell around [`Session`]: binds, accepts, moves bytes, streams message files,
//! enforces the idle timeout and connection limits, logs, and shuts down on SIGINT/SIGTERM.
//!
//! Everything the protocol decides lives in the sans-I/O core; this module only does what
//! needs a socket or a clock. Connections are handled by [`serve_connection`], generic over
//! the stream, so an encrypted stream can take the place of a TCP one.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};

use super::protocol::{escape_controls, BodyWriter, Extent, LineEvent, LineReader};
use super::session::{Action, Event, Session, SessionConfig, Transfer};
use crate::cli::{LogFormat, ServePopArgs};
use crate::exit::ExitStatus;
use crate::output::{Format, Printer};
use crate::store::Store;

/// Output is sent once this much is buffered (and at the end of each read's commands).
const FLUSH_AT: usize = 64 * 1024;
/// Bytes read from a message file at a time.
const FILE_CHUNK: usize = 32 * 1024;
/// Bytes read from a client at a time; small, since commands are short and idle sessions
/// should cost little.
const READ_CHUNK: usize = 2048;
/// How long a shutdown waits for sessions to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything a connection needs, shared by all of them.
pub struct ServerConfig {
    /// The store every session serves.
    pub store: Store,
    /// Limits handed to each session.
    pub session: SessionConfig,
    /// Close a session after this long without a command (or without reading our output).
    pub idle_timeout: Duration,
    /// Sessions at once; the next client is accepted when one ends.
    pub max_connections: usize,
    /// Sessions at once from one address; more are refused with `-ERR [SYS/TEMP]`.
    pub max_connections_per_ip: usize,
    /// Print the dialogue of every session on stderr, secrets masked.
    pub trace: bool,
    /// How the session log is written on stderr.
    pub log_format: LogFormat,
}

/// What `serve-pop` prints on stdout first: scripts wait for this line.
#[derive(Debug, Serialize)]
struct Listening {
    listening: SocketAddr,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "listening on {}", self.listening)
    }
}

/// A demo login, printed after the address by `serve-pop --demo`.
#[derive(Debug, Serialize)]
struct DemoUser {
    demo_user: String,
    password: String,
}

impl fmt::Display for DemoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "demo user {} password {}", self.demo_user, self.password)
    }
}

/// `serve-pop`: bind, print the address, serve until SIGINT or SIGTERM.
///
/// # Errors
/// The store is missing, the address cannot be bound, or the runtime cannot start.
pub fn run(store: &Store, args: &ServePopArgs, format: Format) -> Result<ExitStatus> {
    if args.tls_cert.is_some() {
        anyhow::bail!("--tls-cert is not supported yet (STLS and POP3S are planned; serve plain POP3 on loopback for now)");
    }
    // The demo directory lives as long as the server and is removed when it stops.
    let demo_dir = if args.demo {
        let dir = tempfile::Builder::new()
            .prefix("mailtool-demo-")
            .tempdir()
            .context("cannot create a temporary directory for the demo store")?;
        crate::demo::extract(dir.path()).context("cannot write the demo store")?;
        Some(dir)
    } else {
        None
    };
    let store = match &demo_dir {
        Some(dir) => Store::new(dir.path()),
        None => {
            store.check_exists()?;
            store.clone()
        }
    };
    if args.max_connections == 0 || args.max_connections_per_ip == 0 {
        anyhow::bail!("--max-connections and --max-connections-per-ip must be at least 1");
    }
    let listener = bind(SocketAddr::new(args.bind, args.port))?;
    let mut printer = Printer::stdout(format);
    printer.print(&Listening {
        listening: listener.local_addr()?,
    })?;
    if args.demo {
        for (demo_user, password) in crate::demo::users() {
            printer.print(&DemoUser {
                demo_user,
                password,
            })?;
        }
    }
    let config = ServerConfig {
        store,
        session: SessionConfig::default(),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        trace: args.trace,
        log_format: args.log_format,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        serve(listener, Arc::new(config), shutdown_signal()?).await;
        anyhow::Ok(())
    })?;
    drop(demo_dir);
    Ok(ExitStatus::Success)
}

fn bind(address: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied if address.port() < 1024 => {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port 1100)".to_owned()
            }
            io::ErrorKind::AddrInUse => {
                " (another server is listening there; pick another --port, or 0 for any free one)"
                    .to_owned()
            }
            _ => String::new(),
        };
        anyhow::anyhow!("cannot listen on {address}: {e}{hint}")
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Serve `listener` until `shutdown` resolves, then close every session without UPDATE and
/// return once they are gone (or after a grace period).
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    // Every connection task holds a sender; when all are dropped, `recv` returns None.
    let (done_sender, mut all_done) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let log = Log {
        format: config.log_format,
    };
    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    loop {
        // The permit is taken before accept, so at most max_connections are ever open.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closes"),
            () = &mut shutdown => break,
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    log.line(0, None, &ServerEvent::AcceptFailed { error: e.to_string() });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let Some(ip_slot) = IpSlot::take(&per_ip, peer.ip(), config.max_connections_per_ip) else {
            log.line(id, Some(peer), &ServerEvent::TooManyFromAddress);
            tokio::spawn(async move {
                let mut socket = socket;
                let _ = socket
                    .write_all(b"-ERR [SYS/TEMP] too many connections from your address\r\n")
                    .await;
                drop(permit);
            });
            continue;
        };
        let _ = socket.set_nodelay(true);
        let config = config.clone();
        let mut shutdown = notify_shutdown.subscribe();
        let done = done_sender.clone();
        tokio::spawn(async move {
            let log = Log {
                format: config.log_format,
            };
            log.line(id, Some(peer), &ServerEvent::Connect);
            let end = serve_connection(socket, peer, id, &config, &mut shutdown).await;
            log.line(id, Some(peer), &ServerEvent::Disconnect { reason: end });
            drop((permit, ip_slot, done));
        });
    }
    drop(listener);
    let _ = notify_shutdown.send(());
    drop(done_sender);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
}

/// A counted connection from one address; dropping it frees the slot.
struct IpSlot {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(table: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut counts = table.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Quit,
    ClientClosed,
    IdleTimeout,
    Shutdown,
    TooManyFailures,
    NetworkError,
    StoreError,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Quit => "quit",
            End::ClientClosed => "client closed the connection",
            End::IdleTimeout => "idle timeout",
            End::Shutdown => "server shutdown",
            End::TooManyFailures => "too many failures",
            End::NetworkError => "network error",
            End::StoreError => "store error during a transfer",
        })
    }
}

/// The per-connection state the shell keeps around the session.
struct Connection<'a, S> {
    stream: S,
    out: Vec<u8>,
    id: u64,
    peer: SocketAddr,
    config: &'a ServerConfig,
    log: Log,
    /// Allocated at the first RETR or TOP only, so idle sessions stay small.
    file_chunk: Option<Box<[u8]>>,
    /// RETRs whose bodies are in `out`: marked Seen once `out` has been sent.
    sent_pending: Vec<u32>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    async fn flush(&mut self, session: &mut Session) -> Result<(), End> {
        if !self.out.is_empty() {
            if self.config.trace {
                self.trace_out();
            }
            match tokio::time::timeout(self.config.idle_timeout, self.stream.write_all(&self.out))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::NetworkError),
                Err(_) => return Err(End::IdleTimeout),
            }
            self.out.clear();
            if self.out.capacity() > 4 * FLUSH_AT {
                self.out.shrink_to(1024);
            }
        }
        for number in self.sent_pending.drain(..) {
            session.transfer_done(number, Extent::Whole);
        }
        self.log_events(session);
        Ok(())
    }

    fn trace_out(&self) {
        let text = String::from_utf8_lossy(&self.out);
        let mut lines: Vec<&str> = text.split_terminator("\r\n").collect();
        let total = lines.len();
        if total > 12 {
            lines.truncate(10);
        }
        let mut trace = String::new();
        for line in &lines {
            trace.push_str(&format!("pop3[{}] S: {}\n", self.id, escape_controls(line)));
        }
        if total > lines.len() {
            trace.push_str(&format!(
                "pop3[{}] S: ... ({} more lines, {} octets in all)\n",
                self.id,
                total - lines.len(),
                self.out.len()
            ));
        }
        let _ = io::stderr().lock().write_all(trace.as_bytes());
    }

    fn log_events(&self, session: &mut Session) {
        for event in session.take_events() {
            self.log
                .line(self.id, Some(self.peer), &ServerEvent::Session(event));
        }
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
            writer.write(&chunk[..n], &mut self.out);
            read_so_far += n as u64;
            // A short read that reaches the size in the file name is the end of the file:
            // skip the read that would return 0 (one syscall of about seven per RETR).
            if writer.is_done() || (n < chunk.len() && Some(read_so_far) == length) {
                break Ok(());
            }
            if self.out.len() >= FLUSH_AT {
                if let Err(end) = self.flush(session).await {
                    break Err(end);
                }
            }
        };
        self.file_chunk = Some(chunk);
        result?;
        writer.finish(&mut self.out);
        if extent == Extent::Whole {
            self.sent_pending.push(number);
        }
        Ok(())
    }
}

/// Run one POP3 session on `stream` until QUIT, a timeout, an error or shutdown. Nothing is
/// removed from the store unless the session ends with QUIT.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    id: u64,
    config: &ServerConfig,
    shutdown: &mut broadcast::Receiver<()>,
) -> End {
    let mut session = Session::new(
        config.store.clone(),
        config.session.clone(),
        greeting_timestamp(),
    );
    let mut connection = Connection {
        stream,
        out: Vec::with_capacity(256),
        id,
        peer,
        config,
        log: Log {
            format: config.log_format,
        },
        file_chunk: None,
        sent_pending: Vec::new(),
    };
    session.greeting(&mut connection.out);
    if let Err(end) = connection.flush(&mut session).await {
        return end;
    }
    let mut reader = LineReader::new();
    let mut buf = [0u8; READ_CHUNK];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(config.idle_timeout, connection.stream.read(&mut buf)) => read,
            _ = shutdown.recv() => return End::Shutdown,
        };
        let n = match read {
            // RFC 1939 §3 autologout: close without UPDATE and without a word.
            Err(_) => return End::IdleTimeout,
            Ok(Ok(0)) => return End::ClientClosed,
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return End::NetworkError,
        };
        let mut input = &buf[..n];
        while let Some(event) = reader.next_line(&mut input) {
            let action = match event {
                LineEvent::Line(line) => {
                    if config.trace {
                        let shown = session.trace_view(line);
                        let _ = writeln!(io::stderr().lock(), "pop3[{id}] C: {shown}");
                    }
                    session.handle_line(line, &mut connection.out)
                }
                LineEvent::TooLong => {
                    if config.trace {
                        let _ = writeln!(
                            io::stderr().lock(),
                            "pop3[{id}] C: <line longer than 255 octets>"
                        );
                    }
                    session.handle_overlong_line(&mut connection.out)
                }
            };
            let step = match action {
                Action::Continue => Ok(()),
                Action::Transfer(transfer) => connection.send_body(&mut session, transfer).await,
                Action::Pause { delay, then_close } => {
                    tokio::time::sleep(delay).await;
                    match connection.flush(&mut session).await {
                        Ok(()) if then_close => Err(End::TooManyFailures),
                        other => other,
                    }
                }
                Action::Close => connection.flush(&mut session).await.and(Err(End::Quit)),
                Action::TooManyFailures => connection
                    .flush(&mut session)
                    .await
                    .and(Err(End::TooManyFailures)),
                // The server offers STLS only once it can do it (see SessionConfig::stls).
                Action::StartTls => connection.flush(&mut session).await,
            };
            if let Err(end) = step {
                return end;
            }
            if connection.out.len() >= FLUSH_AT {
                if let Err(end) = connection.flush(&mut session).await {
                    return end;
                }
            }
        }
        // Answer every command of this read in one write: pipelined clients wait less.
        if let Err(end) = connection.flush(&mut session).await {
            return end;
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

/// What the server logs besides session events.
enum ServerEvent {
    Connect,
    Disconnect { reason: End },
    TooManyFromAddress,
    AcceptFailed { error: String },
    Session(Event),
}

/// The session log on stderr: one line per event, text or JSON.
#[derive(Clone, Copy)]
struct Log {
    format: LogFormat,
}

impl Log {
    fn line(&self, id: u64, peer: Option<SocketAddr>, event: &ServerEvent) {
        let line = match self.format {
            LogFormat::Text => {
                let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
                let what = match event {
                    ServerEvent::Connect => "connect".to_owned(),
                    ServerEvent::Disconnect { reason } => {
                        format!("disconnect reason={:?}", reason.to_string())
                    }
                    ServerEvent::TooManyFromAddress => {
                        "refused: too many connections from this address".to_owned()
                    }
                    ServerEvent::AcceptFailed { error } => format!("accept failed: {error}"),
                    ServerEvent::Session(event) => event.to_string(),
                };
                format!("pop3[{id}] {peer} {what}\n")
            }
            LogFormat::Json => {
                let mut value = match event {
                    ServerEvent::Connect => serde_json::json!({"event": "connect"}),
                    ServerEvent::Disconnect { reason } => {
                        serde_json::json!({"event": "disconnect", "reason": reason})
                    }
                    ServerEvent::TooManyFromAddress => {
                        serde_json::json!({"event": "refused", "reason": "too_many_from_address"})
                    }
                    ServerEvent::AcceptFailed { error } => {
                        serde_json::json!({"event": "accept_failed", "error": error})
                    }
                    ServerEvent::Session(event) => serde_json::to_value(event).unwrap_or_default(),
                };
                if let Some(object) = value.as_object_mut() {
                    let time = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64();
                    object.insert("time".into(), time.into());
                    object.insert("session".into(), id.into());
                    if let Some(peer) = peer {
                        object.insert("peer".into(), peer.to_string().into());
                    }
                }
                format!("{value}\n")
            }
        };
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}
