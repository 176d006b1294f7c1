//! The tokio shell around [`Session`]: binds, accepts, moves bytes, streams message files,
//! enforces the idle timeout and connection limits, logs, and shuts down on SIGINT/SIGTERM.
//!
//! Everything the protocol decides lives in the sans-I/O core; this module only does what
//! needs a socket or a clock. Connections are handled by [`serve_connection`], generic over
//! the stream: after STLS the same session goes on over a [`TlsStream`], and on the
//! implicit-TLS port it starts on one.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};

use super::protocol::{escape_controls, BodyWriter, Extent, LineEvent, LineReader};
use super::session::{Action, Event, Session, SessionConfig, Transfer};
use super::tls::{TlsAcceptor, TlsStream};
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
/// The longest a TLS handshake may take (or the idle timeout, if shorter): a client that
/// stalls it holds a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing waits to send TLS's close_notify and the TCP FIN.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The certificate for STLS and the implicit-TLS listener; `None` serves plain POP3 only.
    pub tls: Option<TlsAcceptor>,
}

/// What `serve-pop` prints on stdout first: scripts wait for this line. The implicit-TLS
/// listener, if any, gets a second one, marked `tls`.
#[derive(Debug, Serialize)]
struct Listening {
    listening: SocketAddr,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listening on {}", self.listening)?;
        if self.tls {
            f.write_str(" (tls)")?;
        }
        writeln!(f)
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

/// `serve-pop`: load the certificate, bind, print the addresses, serve until SIGINT or
/// SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run(store: &Store, args: &ServePopArgs, format: Format) -> Result<ExitStatus> {
    // Checked first: a bad certificate should stop the server before it listens anywhere.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(super::tls::load_acceptor(cert, key)?),
        // clap requires both or neither.
        _ => None,
    };
    if args
        .tls_port
        .is_some_and(|port| port != 0 && port == args.port)
    {
        anyhow::bail!(
            "--tls-port and --port are both {} (implicit TLS needs a port of its own, conventionally 995)",
            args.port
        );
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
    let listener = bind(SocketAddr::new(args.bind, args.port), "--port")?;
    let tls_listener = match args.tls_port {
        Some(port) => Some(bind(SocketAddr::new(args.bind, port), "--tls-port")?),
        None => None,
    };
    let mut printer = Printer::stdout(format);
    printer.print(&Listening {
        listening: listener.local_addr()?,
        tls: false,
    })?;
    if let Some(tls_listener) = &tls_listener {
        printer.print(&Listening {
            listening: tls_listener.local_addr()?,
            tls: true,
        })?;
    }
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
        session: SessionConfig {
            stls: tls.is_some(),
            require_tls: args.require_tls,
            ..SessionConfig::default()
        },
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        trace: args.trace,
        log_format: args.log_format,
        tls,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        let tls_listener = tls_listener.map(TcpListener::from_std).transpose()?;
        serve(listener, tls_listener, Arc::new(config), shutdown_signal()?).await;
        anyhow::Ok(())
    })?;
    drop(demo_dir);
    Ok(ExitStatus::Success)
}

/// Bind `address`; `option` names the flag that chose the port, for the hint.
fn bind(address: SocketAddr, option: &str) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied if address.port() < 1024 => {
                let example = if option == "--port" { 1100 } else { 9950 };
                format!(" (ports below 1024 need root or CAP_NET_BIND_SERVICE; try {option} {example})")
            }
            io::ErrorKind::AddrInUse => {
                format!(" (another server is listening there; pick another {option}, or 0 for any free one)")
            }
            _ => String::new(),
        };
        anyhow::anyhow!("cannot listen on {address}: {e}{hint}")
    })?;
    // std listens with a queue of 128: a burst of more clients than that (the 1,000-client
    // soak benchmark connects them at once) would leave some accepted by the kernel but never
    // greeted. Listening again on a listening socket only changes its queue length.
    // SAFETY: the descriptor is a valid socket owned by `listener` for the whole call.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_QUEUE) } != 0 {
        return Err(anyhow::Error::new(io::Error::last_os_error())
            .context(format!("cannot listen on {address}")));
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const LISTEN_QUEUE: libc::c_int = 1024;

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

/// Serve `listener` (plain POP3, with STLS when `config.tls` is set) and `tls_listener`
/// (implicit TLS; ignored without `config.tls`) until `shutdown` resolves, then close every
/// session without UPDATE and return once they are gone (or after a grace period). Both
/// listeners share the connection limits.
pub async fn serve(
    listener: TcpListener,
    tls_listener: Option<TcpListener>,
    config: Arc<ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let tls_listener = tls_listener.filter(|_| config.tls.is_some());
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
        let (accepted, implicit_tls) = tokio::select! {
            accepted = listener.accept() => (accepted, false),
            accepted = accept_if_some(tls_listener.as_ref()) => (accepted, true),
            () = &mut shutdown => break,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                log.line(
                    0,
                    None,
                    &ServerEvent::AcceptFailed {
                        error: e.to_string(),
                    },
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let Some(ip_slot) = IpSlot::take(&per_ip, peer.ip(), config.max_connections_per_ip) else {
            log.line(id, Some(peer), &ServerEvent::TooManyFromAddress);
            if !implicit_tls {
                // On the TLS port there is no plain way to say it: just close.
                tokio::spawn(async move {
                    let mut socket = socket;
                    let _ = socket
                        .write_all(b"-ERR [SYS/TEMP] too many connections from your address\r\n")
                        .await;
                    drop(permit);
                });
            }
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
            let end = if implicit_tls {
                serve_implicit_tls(socket, peer, id, &config, &mut shutdown).await
            } else {
                serve_connection(socket, peer, id, &config, &mut shutdown).await
            };
            log.line(id, Some(peer), &ServerEvent::Disconnect { reason: end });
            drop((permit, ip_slot, done));
        });
    }
    drop(listener);
    let _ = notify_shutdown.send(());
    drop(done_sender);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
}

/// Accept on `listener`, or wait forever when there is none.
async fn accept_if_some(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
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
    TlsFailed,
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
            End::TlsFailed => "tls handshake failed",
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

/// How a connection came to TLS, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// STLS on the plain port.
    Stls,
    /// The implicit-TLS (POP3S) port.
    Implicit,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Stls => "stls",
            TlsMode::Implicit => "implicit",
        })
    }
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Connection<'a, S> {
    fn new(stream: S, peer: SocketAddr, id: u64, config: &'a ServerConfig) -> Self {
        Connection {
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
        }
    }

    /// The TLS handshake over this connection's stream; the log says how it went. The
    /// output buffer must be flushed before: nothing carries over but the bookkeeping.
    async fn start_tls(
        self,
        mode: TlsMode,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> Result<Connection<'a, TlsStream<S>>, End> {
        let Connection {
            stream,
            out,
            id,
            peer,
            config,
            log,
            file_chunk,
            sent_pending,
        } = self;
        let Some(acceptor) = &config.tls else {
            // The session offers STLS only when the server has a certificate.
            return Err(End::TlsFailed);
        };
        let timeout = config.idle_timeout.min(HANDSHAKE_TIMEOUT);
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(timeout, acceptor.accept(stream)) => handshake,
            _ = shutdown.recv() => return Err(End::Shutdown),
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let error = error.to_string();
                log.line(id, Some(peer), &ServerEvent::TlsFailed { mode, error });
                return Err(End::TlsFailed);
            }
            Err(_) => {
                let error = format!("no handshake within {} s", timeout.as_secs());
                log.line(id, Some(peer), &ServerEvent::TlsFailed { mode, error });
                return Err(End::TlsFailed);
            }
        };
        log.line(id, Some(peer), &ServerEvent::TlsEstablished { mode });
        Ok(Connection {
            stream,
            out,
            id,
            peer,
            config,
            log,
            file_chunk,
            sent_pending,
        })
    }

    /// Send what is left, then close the sending side (with TLS, after its close_notify, so
    /// the client sees a clean end rather than a truncation), and report `end`.
    async fn close(&mut self, session: &mut Session, end: End) -> End {
        if let Err(failed) = self.flush(session).await {
            return failed;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.stream.shutdown()).await;
        end
    }

    async fn flush(&mut self, session: &mut Session) -> Result<(), End> {
        if !self.out.is_empty() {
            if self.config.trace {
                self.trace_out();
            }
            let write = async {
                self.stream.write_all(&self.out).await?;
                // A no-op for TCP; TLS hands its records on.
                self.stream.flush().await
            };
            match tokio::time::timeout(self.config.idle_timeout, write).await {
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

/// Run one POP3 session on a plain `stream` until QUIT, a timeout, an error or shutdown,
/// switching to TLS when the session asks for it (STLS). Nothing is removed from the store
/// unless the session ends with QUIT.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    id: u64,
    config: &ServerConfig,
    shutdown: &mut broadcast::Receiver<()>,
) -> End {
    let mut session = new_session(config);
    let mut connection = Connection::new(stream, peer, id, config);
    session.greeting(&mut connection.out);
    if let Err(end) = connection.flush(&mut session).await {
        return end;
    }
    let connection = match command_loop(connection, &mut session, shutdown).await {
        Stop::End(end) => return end,
        Stop::StartTls(connection) => connection,
    };
    let connection = match connection.start_tls(TlsMode::Stls, shutdown).await {
        Ok(connection) => connection,
        Err(end) => return end,
    };
    session.tls_established();
    match command_loop(connection, &mut session, shutdown).await {
        Stop::End(end) => end,
        // An encrypted session refuses STLS, so this cannot happen; end it rather than nest.
        Stop::StartTls(_) => End::TlsFailed,
    }
}

/// Run one POP3 session on the implicit-TLS port: the handshake first, then the session,
/// encrypted from its greeting on.
pub async fn serve_implicit_tls<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    id: u64,
    config: &ServerConfig,
    shutdown: &mut broadcast::Receiver<()>,
) -> End {
    let connection = Connection::new(stream, peer, id, config);
    let mut connection = match connection.start_tls(TlsMode::Implicit, shutdown).await {
        Ok(connection) => connection,
        Err(end) => return end,
    };
    let mut session = new_session(config);
    session.tls_established();
    session.greeting(&mut connection.out);
    if let Err(end) = connection.flush(&mut session).await {
        return end;
    }
    match command_loop(connection, &mut session, shutdown).await {
        Stop::End(end) => end,
        Stop::StartTls(_) => End::TlsFailed,
    }
}

fn new_session(config: &ServerConfig) -> Session {
    Session::new(
        config.store.clone(),
        config.session.clone(),
        greeting_timestamp(),
    )
}

/// How a command loop stopped.
enum Stop<'a, S> {
    /// The connection is over.
    End(End),
    /// The session answered STLS: the connection, with nothing buffered, to upgrade.
    StartTls(Connection<'a, S>),
}

/// Read, answer and stream until the session ends or asks for TLS.
async fn command_loop<'a, S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<'a, S>,
    session: &mut Session,
    shutdown: &mut broadcast::Receiver<()>,
) -> Stop<'a, S> {
    let config = connection.config;
    let id = connection.id;
    // A fresh reader per loop: after STLS nothing read in the clear carries over.
    let mut reader = LineReader::new();
    let mut buf = [0u8; READ_CHUNK];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(config.idle_timeout, connection.stream.read(&mut buf)) => read,
            _ = shutdown.recv() => return Stop::End(End::Shutdown),
        };
        let n = match read {
            // RFC 1939 §3 autologout: close without UPDATE and without a word.
            Err(_) => return Stop::End(End::IdleTimeout),
            Ok(Ok(0)) => return Stop::End(End::ClientClosed),
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return Stop::End(End::NetworkError),
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
                Action::Transfer(transfer) => connection.send_body(session, transfer).await,
                Action::Pause { delay, then_close } => {
                    tokio::time::sleep(delay).await;
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
                    if config.trace && (!input.is_empty() || reader.buffered() > 0) {
                        let _ = writeln!(
                            io::stderr().lock(),
                            "pop3[{id}] C: <{} octets after STLS discarded>",
                            input.len() + reader.buffered()
                        );
                    }
                    return Stop::StartTls(connection);
                }
            };
            if let Err(end) = step {
                return Stop::End(end);
            }
            if connection.out.len() >= FLUSH_AT {
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

/// What the server logs besides session events.
enum ServerEvent {
    Connect,
    Disconnect { reason: End },
    TooManyFromAddress,
    AcceptFailed { error: String },
    TlsEstablished { mode: TlsMode },
    TlsFailed { mode: TlsMode, error: String },
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
                    ServerEvent::TlsEstablished { mode } => format!("tls established mode={mode}"),
                    ServerEvent::TlsFailed { mode, error } => format!(
                        "tls handshake failed mode={mode} error={:?}",
                        escape_controls(error)
                    ),
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
                    ServerEvent::TlsEstablished { mode } => {
                        serde_json::json!({"event": "tls_established", "mode": mode})
                    }
                    ServerEvent::TlsFailed { mode, error } => {
                        serde_json::json!({"event": "tls_failed", "mode": mode, "error": error})
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
