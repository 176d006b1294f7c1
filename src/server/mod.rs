//! The protocol-agnostic server shell that serve-pop, serve-imap and serve-smtp run in.
//!
//! It binds, accepts under the connection limits (a semaphore permit taken before `accept`,
//! and a count per client address), runs the TLS handshake of the implicit-TLS port, logs
//! connects and disconnects, and shuts down gracefully on SIGINT/SIGTERM: every session is
//! told through a broadcast channel, and the shell waits until all of them have dropped their
//! end of an mpsc channel (mini-redis's pattern). Each protocol plugs in through one small
//! trait, [`Driver`], and gets a [`Conn`]: the byte stream with the idle timeout, output
//! buffering, STARTTLS, tracing and logging already done. Nothing here names a protocol, so
//! a fourth one is a new folder, not an edit of this one.

pub mod heap;
pub mod launch;
pub mod log;
pub mod proxy;
pub mod tls;
pub mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};

pub use log::{End, Log, LogFormat, TlsMode};
pub use tls::{TlsAcceptor, TlsStream};

use log::ShellEvent;

/// How long a shutdown waits for sessions to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest a TLS handshake may take (or the idle timeout, if shorter): a client that
/// stalls it holds a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing waits to send TLS's close_notify and the TCP FIN.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first bytes of a connection may wait for the rest of what could be a PROXY
/// header signature before they are taken as the client's input.
const SNIFF_WAIT: Duration = Duration::from_secs(1);
/// The accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const LISTEN_QUEUE: libc::c_int = 1024;
/// Output buffers that grew past this while streaming are shrunk back once sent, so an idle
/// session does not keep a large buffer.
const KEEP_OUTPUT_CAPACITY: usize = 256 * 1024;

/// What the shell needs to know, shared by every connection of one server.
pub struct ShellConfig {
    /// Close a session after this long without input (or without reading our output).
    pub idle_timeout: Duration,
    /// Sessions at once; the next client is accepted when one ends.
    pub max_connections: usize,
    /// Sessions at once from one address; more are refused.
    pub max_connections_per_ip: usize,
    /// Print the dialogue of every session on stderr.
    pub trace: bool,
    /// How the session log is written on stderr.
    pub log_format: LogFormat,
    /// The certificate for STARTTLS and the implicit-TLS listener; `None` serves plain only.
    pub tls: Option<TlsAcceptor>,
    /// With `--proxy-protocol`, the `--trusted-proxy` ranges whose connections start with a
    /// PROXY protocol header naming the real client; `None` without.
    pub proxy_protocol: Option<Vec<proxy::TrustedNet>>,
}

impl ShellConfig {
    /// Whether a connection from `ip` must start with a PROXY protocol header.
    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.proxy_protocol
            .as_ref()
            .is_some_and(|nets| nets.iter().any(|net| net.contains(ip)))
    }

    /// How long a trusted proxy has to send its header (as long as a TLS handshake).
    fn header_timeout(&self) -> Duration {
        self.idle_timeout.min(HANDSHAKE_TIMEOUT)
    }
}

/// The byte streams a driver may be handed: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// A protocol, as the shell sees it.
pub trait Driver: Send + Sync + 'static {
    /// The name in log and trace lines: `pop3`, `imap`, `smtp`.
    fn protocol(&self) -> &'static str;

    /// The line sent on the plain port to a client refused for having too many connections
    /// open from its address (on the TLS port there is no plain way to say it).
    fn too_many_from_address(&self) -> &'static [u8];

    /// Serve one connection until it ends. `conn.is_encrypted()` tells whether it came in
    /// over the implicit-TLS port (the handshake is done).
    fn serve<S: Stream>(&self, conn: Conn<S>) -> impl Future<Output = End> + Send;
}

/// Bind `address` for a server. `option` names the flag that chose the port and `example`
/// a port to suggest, for the hints of the two errors people meet.
///
/// # Errors
/// The address cannot be bound, with a hint for a privileged or busy port.
pub fn bind(address: SocketAddr, option: &str, example: u16) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied if address.port() < 1024 => format!(
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try {option} {example})"
            ),
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

/// The multi-threaded runtime every server runs on: one worker per CPU. Sessions do their
/// store work synchronously. A step known to wait for the disk (an IMAP APPEND's commit, an
/// EXPUNGE) runs on the blocking pool ([`off_the_worker`]); any other fsync tells the
/// runtime it blocks (through [`block_in_place`], which the launcher registers with the
/// store), so that the worker's other sessions move to a spare thread meanwhile. (Four
/// workers per CPU did that too, but cost context switches: 6.2 rather than 5.5 ms of server
/// CPU per `imap_load` session, and on a busy machine their gain in sessions/s was within
/// the noise.)
///
/// # Errors
/// The runtime cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Run `f`, which blocks (an fsync), telling tokio first when it runs on a worker of a
/// multi-threaded runtime, which then hands the worker's other tasks to a spare thread.
/// Elsewhere (a command-line tool, `spawn_blocking`, a single-threaded runtime) it just runs.
pub fn block_in_place(f: &mut dyn FnMut()) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Run `f` on `value` on the runtime's blocking pool (`spawn_blocking`), for a step of a
/// session that waits for the disk (fsyncs), and give both back: the worker goes on with its
/// other sessions meanwhile. Cheaper than [`block_in_place`], which moves them to another
/// thread: on two shared CPUs, 6 alternating pairs of `imap_load` rounds gave 2.27-2.78×
/// Dovecot's sessions/s (mean 2.54×) against 1.84-2.51× (mean 2.29×) with a hand-over per
/// fsync. A panic in `f` goes on in the caller, as if `f` had run there.
pub async fn off_the_worker<T: Send + 'static, R: Send + 'static>(
    mut value: T,
    f: impl FnOnce(&mut T) -> R + Send + 'static,
) -> (T, R) {
    match tokio::task::spawn_blocking(move || {
        let result = f(&mut value);
        (value, result)
    })
    .await
    {
        Ok(done) => done,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down, and drops the caller's task too.
            Err(_) => std::future::pending().await,
        },
    }
}

/// Resolves on the first SIGINT or SIGTERM; several servers in one process share it by
/// cloning the receiver of a broadcast fed from here.
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
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

/// Serve `listener` (plain, STARTTLS when `config.tls` is set) and `tls_listener` (implicit
/// TLS; ignored without `config.tls`) with `driver` until `shutdown` resolves, then tell
/// every session and return once they are gone (or after a grace period). Both listeners
/// share the connection limits.
pub async fn serve<D: Driver>(
    listener: TcpListener,
    tls_listener: Option<TcpListener>,
    driver: Arc<D>,
    config: Arc<ShellConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let tls_listener = tls_listener.filter(|_| config.tls.is_some());
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    // Every connection task holds a sender; when all are dropped, `recv` returns None.
    let (done_sender, mut all_done) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let log = Log::new(config.log_format, driver.protocol());
    let watcher = watch::Watcher::start();
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
                    &ShellEvent::AcceptFailed {
                        error: e.to_string(),
                    },
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let _ = socket.set_nodelay(true);
        let proxied = config.is_trusted_proxy(peer.ip());
        // A connection through a trusted proxy is counted against the client it names, once
        // its header is read in the connection's own task; the others here, at once.
        let ip_slot = if proxied {
            None
        } else {
            match IpSlot::take(&per_ip, peer.ip(), config.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    refuse_too_many(
                        &log,
                        driver.as_ref(),
                        id,
                        peer,
                        socket,
                        implicit_tls,
                        permit,
                    );
                    continue;
                }
            }
        };
        let driver = driver.clone();
        let done = done_sender.clone();
        let config = config.clone();
        let per_ip = per_ip.clone();
        let shutdown = notify_shutdown.subscribe();
        let watcher = watcher.clone();
        tokio::spawn(async move {
            let mut stream = ClientStream::new(socket);
            let (client, ip_slot) = if proxied {
                // Boxed, as its 512-octet buffer would otherwise stay in every session's task.
                let header = tokio::select! {
                    header = Box::pin(read_proxy_header(&mut stream, config.header_timeout())) => header,
                    () = wait_for_shutdown(shutdown.resubscribe()) => return,
                };
                let client = match header {
                    Ok(proxy::Source::Client(client)) => client,
                    Ok(proxy::Source::Local | proxy::Source::Unknown) => peer,
                    Err(error) => {
                        let refused = ShellEvent::Refused {
                            reason: log::RefusedReason::ProxyHeader,
                            error: Some(error),
                        };
                        log.line(id, Some(peer), &refused);
                        drop((permit, done));
                        return;
                    }
                };
                match IpSlot::take(&per_ip, client.ip(), config.max_connections_per_ip) {
                    Some(slot) => (client, slot),
                    None => {
                        refuse_too_many(
                            &log,
                            driver.as_ref(),
                            id,
                            client,
                            stream,
                            implicit_tls,
                            permit,
                        );
                        return;
                    }
                }
            } else {
                (peer, ip_slot.expect("taken in the accept loop"))
            };
            let conn = Conn {
                stream,
                out: Vec::with_capacity(256),
                id,
                peer: client,
                // Only a proxy in --trusted-proxy may send a header; anyone else who does is
                // refused at their first bytes.
                sniff: config.proxy_protocol.is_some() && !proxied && !implicit_tls,
                encrypted: false,
                config,
                log,
                shutdown,
                watcher,
            };
            let via = proxied.then_some(peer);
            log.line(id, Some(client), &ShellEvent::Connect { via });
            let end = if implicit_tls {
                // Boxed: a TLS session's future is over twice a plain one's, and inline every
                // plain connection's task would be that size too (4.1 KiB, not 1.9).
                Box::pin(async move {
                    match conn.start_tls(TlsMode::Implicit).await {
                        Ok(conn) => driver.serve(conn).await,
                        Err(end) => end,
                    }
                })
                .await
            } else {
                driver.serve(conn).await
            };
            log.line(id, Some(client), &ShellEvent::Disconnect { reason: end });
            drop((permit, ip_slot, done));
        });
    }
    drop(listener);
    let _ = notify_shutdown.send(());
    drop(done_sender);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
}

/// Log that `peer` has too many connections open and, on the plain port, tell it so.
fn refuse_too_many<D: Driver, S: Stream>(
    log: &Log,
    driver: &D,
    id: u64,
    peer: SocketAddr,
    mut socket: S,
    implicit_tls: bool,
    permit: OwnedSemaphorePermit,
) {
    let refused = ShellEvent::Refused {
        reason: log::RefusedReason::TooManyFromAddress,
        error: None,
    };
    log.line(id, Some(peer), &refused);
    if !implicit_tls {
        let refusal = driver.too_many_from_address();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.write_all(refusal)).await;
            drop(permit);
        });
    }
}

/// Read the PROXY protocol header a trusted proxy sends first; what came after it stays in
/// `stream` for the session. Returns the source it names.
///
/// # Errors
/// The header is missing, malformed, too long or not there within `timeout`: the line to log.
async fn read_proxy_header(
    stream: &mut ClientStream,
    timeout: Duration,
) -> Result<proxy::Source, String> {
    let mut received = Vec::with_capacity(128);
    let mut chunk = [0; 512];
    let read = async {
        loop {
            match proxy::parse(&received) {
                Ok(Some(header)) => {
                    stream.unread(&received[header.len..]);
                    return Ok(header.source);
                }
                Ok(None) => {}
                Err(error) => return Err(error.to_string()),
            }
            match stream.socket.read(&mut chunk).await {
                Ok(0) if received.is_empty() => {
                    return Err("closed without sending a PROXY protocol header".into())
                }
                Ok(0) => return Err("closed in the middle of its PROXY protocol header".into()),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(error) => {
                    return Err(format!("network error reading the PROXY header: {error}"))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no whole PROXY protocol header within {} s",
            timeout.as_secs()
        )),
    }
}

/// Resolves when the server shuts down.
async fn wait_for_shutdown(mut shutdown: broadcast::Receiver<()>) {
    let _ = shutdown.recv().await;
}

/// A client's TCP stream, with the bytes that arrived behind a PROXY header (a TLS
/// ClientHello, say) handed out first.
pub struct ClientStream {
    socket: TcpStream,
    unread: Vec<u8>,
    unread_from: usize,
}

impl ClientStream {
    fn new(socket: TcpStream) -> ClientStream {
        ClientStream {
            socket,
            unread: Vec::new(),
            unread_from: 0,
        }
    }

    fn unread(&mut self, bytes: &[u8]) {
        self.unread = bytes.to_vec();
        self.unread_from = 0;
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unread_from < this.unread.len() {
            let rest = &this.unread[this.unread_from..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.unread_from += n;
            if this.unread_from == this.unread.len() {
                this.unread = Vec::new();
                this.unread_from = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }
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

/// One client connection as a driver sees it: the stream, an output buffer, and the shell's
/// timeouts, trace and log.
pub struct Conn<S> {
    stream: S,
    /// What the driver has to send; [`Conn::flush`] sends it.
    pub out: Vec<u8>,
    id: u64,
    peer: SocketAddr,
    /// Whether the first bytes still have to be checked for a PROXY header the peer may not
    /// send.
    sniff: bool,
    encrypted: bool,
    config: Arc<ShellConfig>,
    log: Log,
    shutdown: broadcast::Receiver<()>,
    /// The server's directory watcher, if inotify works here.
    watcher: Option<Arc<watch::Watcher>>,
}

impl<S: Stream> Conn<S> {
    /// Hear of changes in `dirs` (see [`watch`]); `None` when they cannot be watched, and
    /// the driver must poll.
    pub fn watch(&self, dirs: &[std::path::PathBuf]) -> Option<watch::Subscription> {
        self.watcher.as_ref()?.subscribe(dirs)
    }

    /// The session number in log and trace lines.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's address: the one a trusted proxy named in its PROXY header, else the
    /// connection's own peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection is encrypted (implicit TLS, or after STARTTLS).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether the server has a certificate, so STARTTLS can be offered.
    pub fn can_start_tls(&self) -> bool {
        self.config.tls.is_some() && !self.encrypted
    }

    pub fn config(&self) -> &ShellConfig {
        &self.config
    }

    /// Whether the dialogue is traced on stderr.
    pub fn tracing(&self) -> bool {
        self.config.trace
    }

    /// Read what the client sent into `buf`, waiting at most the idle timeout.
    ///
    /// # Errors
    /// The client closed the connection, went quiet for the idle timeout, the network failed,
    /// or the server is shutting down: the reason the connection ends.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, End> {
        let timeout = self.config.idle_timeout;
        match self.read_within(buf, timeout).await? {
            Some(n) => Ok(n),
            None => Err(End::IdleTimeout),
        }
    }

    /// Like [`Conn::read`], but `None` when `wait` passes first (for a driver that has work
    /// to do every so often, such as IMAP IDLE's polling), counting no idle time.
    ///
    /// # Errors
    /// As for [`Conn::read`], but for the timeout.
    pub async fn read_within(
        &mut self,
        buf: &mut [u8],
        wait: Duration,
    ) -> Result<Option<usize>, End> {
        self.read_within_or(buf, wait, std::future::pending()).await
    }

    /// Like [`Conn::read_within`], but also `None` as soon as `wake` resolves (a change in
    /// a watched directory).
    ///
    /// # Errors
    /// As for [`Conn::read`], but for the timeout.
    pub async fn read_within_or(
        &mut self,
        buf: &mut [u8],
        wait: Duration,
        wake: impl Future<Output = ()>,
    ) -> Result<Option<usize>, End> {
        let read = tokio::select! {
            read = tokio::time::timeout(wait, self.stream.read(buf)) => read,
            () = wake => return Ok(None),
            _ = self.shutdown.recv() => return Err(End::Shutdown),
        };
        match read {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(End::ClientClosed),
            Ok(Ok(n)) if self.sniff => self.sniff_first_bytes(buf, n).await.map(Some),
            Ok(Ok(n)) => Ok(Some(n)),
            Ok(Err(_)) => Err(End::NetworkError),
        }
    }

    /// Refuse a connection not from a trusted proxy whose first bytes (`buf[..n]`, read more
    /// if too few to tell) are a PROXY header; otherwise hand them on as they are.
    async fn sniff_first_bytes(&mut self, buf: &mut [u8], mut n: usize) -> Result<usize, End> {
        loop {
            match proxy::sniff(&buf[..n]) {
                proxy::Sniff::Header => {
                    let refused = ShellEvent::Refused {
                        reason: log::RefusedReason::UntrustedProxyHeader,
                        error: None,
                    };
                    self.log.line(self.id, Some(self.peer), &refused);
                    return Err(End::UntrustedProxyHeader);
                }
                proxy::Sniff::Undecided if n < buf.len() => {
                    // A header comes in one go; a client that typed "PRO" or an empty line
                    // and waits is not kept waiting long.
                    let more = tokio::select! {
                        more = tokio::time::timeout(SNIFF_WAIT, self.stream.read(&mut buf[n..])) => more,
                        _ = self.shutdown.recv() => return Err(End::Shutdown),
                    };
                    match more {
                        Ok(Ok(0)) => return Err(End::ClientClosed),
                        Ok(Ok(more)) => n += more,
                        Ok(Err(_)) => return Err(End::NetworkError),
                        Err(_) => break,
                    }
                }
                proxy::Sniff::Undecided | proxy::Sniff::NotHeader => break,
            }
        }
        self.sniff = false;
        Ok(n)
    }

    /// Wait `delay` (a failed login's), or less if the server shuts down.
    ///
    /// # Errors
    /// The server is shutting down.
    pub async fn pause(&mut self, delay: Duration) -> Result<(), End> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            _ = self.shutdown.recv() => Err(End::Shutdown),
        }
    }

    /// Send everything in `out` (tracing it first when asked to).
    ///
    /// # Errors
    /// The client stopped reading for the idle timeout, or the network failed.
    pub async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.config.trace {
            self.trace_output();
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
        if self.out.capacity() > KEEP_OUTPUT_CAPACITY {
            self.out.shrink_to(1024);
        }
        Ok(())
    }

    /// Send what is left, then close the sending side (with TLS, after its close_notify, so
    /// the client sees a clean end rather than a truncation), and return `end`.
    pub async fn close(&mut self, end: End) -> End {
        if let Err(failed) = self.flush().await {
            return failed;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.stream.shutdown()).await;
        end
    }

    /// The TLS handshake over this connection; the log says how it went. `out` must have
    /// been flushed: nothing read or buffered before carries over.
    ///
    /// # Errors
    /// The server has no certificate, the handshake failed or took too long, or the server
    /// is shutting down.
    pub async fn start_tls(mut self, mode: TlsMode) -> Result<Conn<TlsStream<S>>, End> {
        let Some(acceptor) = self.config.tls.clone() else {
            return Err(End::TlsFailed);
        };
        let timeout = self.config.idle_timeout.min(HANDSHAKE_TIMEOUT);
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(timeout, acceptor.accept(self.stream)) => handshake,
            _ = self.shutdown.recv() => return Err(End::Shutdown),
        };
        let (id, peer) = (self.id, self.peer);
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                self.log
                    .line(id, Some(peer), &ShellEvent::TlsFailed { mode, error });
                return Err(End::TlsFailed);
            }
            Err(_) => {
                let error = format!("no handshake within {} s", timeout.as_secs());
                self.log
                    .line(id, Some(peer), &ShellEvent::TlsFailed { mode, error });
                return Err(End::TlsFailed);
            }
        };
        self.log
            .line(id, Some(peer), &ShellEvent::TlsEstablished { mode });
        Ok(Conn {
            stream,
            out: self.out,
            id,
            peer,
            sniff: false,
            encrypted: true,
            config: self.config,
            log: self.log,
            shutdown: self.shutdown,
            watcher: self.watcher,
        })
    }

    /// Trace the client's lines (already masked by the protocol) and log the session's
    /// events, as a driver does after each step of its session.
    pub fn report<E: std::fmt::Display + serde::Serialize>(
        &self,
        trace: Vec<String>,
        events: Vec<E>,
    ) {
        for line in trace {
            self.trace_input(&line);
        }
        for event in events {
            self.log(&event);
        }
    }

    /// A line in the session log (an event of the protocol: a login, a delivery...).
    pub fn log<E: std::fmt::Display + serde::Serialize>(&self, event: &E) {
        self.log.line(self.id, Some(self.peer), event);
    }

    /// A line of the dialogue the client sent, already masked by the protocol, on stderr
    /// when tracing.
    pub fn trace_input(&self, line: &str) {
        if self.config.trace {
            let text = format!(
                "{}[{}] C: {}\n",
                self.log.protocol(),
                self.id,
                escape_controls(line)
            );
            let _ = io::stderr().lock().write_all(text.as_bytes());
        }
    }

    /// The output about to be sent, on stderr: the first lines of a long answer and a count
    /// of the rest, so that a message body does not flood the terminal.
    fn trace_output(&self) {
        let text = String::from_utf8_lossy(&self.out);
        let mut lines: Vec<&str> = text.split_terminator("\r\n").collect();
        let total = lines.len();
        if total > 12 {
            lines.truncate(10);
        }
        let protocol = self.log.protocol();
        let mut trace = String::new();
        for line in &lines {
            trace.push_str(&format!(
                "{protocol}[{}] S: {}\n",
                self.id,
                escape_controls(line)
            ));
        }
        if total > lines.len() {
            trace.push_str(&format!(
                "{protocol}[{}] S: ... ({} more lines, {} octets in all)\n",
                self.id,
                total - lines.len(),
                self.out.len()
            ));
        }
        let _ = io::stderr().lock().write_all(trace.as_bytes());
    }
}

/// `text` with control characters escaped (`\u{1b}`), for showing what a peer sent on a
/// terminal without letting it drive the terminal.
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}
