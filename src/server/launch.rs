//! Starting servers from their command-line options: what serve-pop, serve-imap and serve
//! share. The certificate is checked and the demo store written before anything listens;
//! then each protocol's ports are bound, their addresses printed (scripts wait for these
//! lines), and every server runs on one runtime until SIGINT or SIGTERM.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::{Driver, ShellConfig, TlsAcceptor};
use crate::cli::ServerOptions;
use crate::output::{Format, Printer};
use crate::store::Store;

/// The store to serve and the TLS acceptor, checked; the demo store's temporary directory
/// lives as long as this value.
pub struct Setup {
    pub store: Store,
    tls: Option<TlsAcceptor>,
    demo_dir: Option<tempfile::TempDir>,
    bind: IpAddr,
    max_connections: usize,
    max_connections_per_ip: usize,
    trace: bool,
    log_format: super::LogFormat,
    proxy_protocol: Option<Vec<super::proxy::TrustedNet>>,
}

impl Setup {
    /// Check the options, load the certificate and, with `--demo`, write a fresh copy of the
    /// demo store.
    ///
    /// # Errors
    /// The certificate or key cannot be used, the store is missing, a limit is 0, or the
    /// demo store cannot be written.
    pub fn new(store: &Store, options: &ServerOptions) -> Result<Setup> {
        // Checked first: a bad certificate should stop the server before it listens anywhere.
        let tls = match (&options.tls_cert, &options.tls_key) {
            (Some(cert), Some(key)) => Some(super::tls::load_acceptor(cert, key)?),
            // clap requires both or neither.
            _ => None,
        };
        if options.max_connections == 0 || options.max_connections_per_ip == 0 {
            anyhow::bail!("--max-connections and --max-connections-per-ip must be at least 1");
        }
        let demo_dir = if options.demo {
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
        Ok(Setup {
            store,
            tls,
            demo_dir,
            bind: options.bind,
            max_connections: options.max_connections,
            max_connections_per_ip: options.max_connections_per_ip,
            trace: options.trace,
            log_format: options.log_format,
            proxy_protocol: options
                .proxy_protocol
                .then(|| options.trusted_proxy.clone()),
        })
    }

    /// Whether the server has a certificate (STARTTLS can be offered).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The shell's settings for one protocol.
    pub fn shell_config(&self, idle_timeout_secs: u64) -> ShellConfig {
        ShellConfig {
            idle_timeout: Duration::from_secs(idle_timeout_secs.max(1)),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            trace: self.trace,
            log_format: self.log_format,
            tls: self.tls.clone(),
            proxy_protocol: self.proxy_protocol.clone(),
        }
    }

    /// Bind one protocol's plain port and, if asked, its implicit-TLS port, each given with
    /// the option that chose it (for the hints of the errors).
    ///
    /// # Errors
    /// Both ports are the same, or one cannot be bound.
    pub fn bind(
        &self,
        ports: Ports,
        plain: (u16, &'static str),
        tls: Option<(u16, &'static str)>,
    ) -> Result<Endpoint> {
        let plain = Port {
            number: plain.0,
            option: plain.1,
            example: ports.example,
            conventional: ports.conventional,
        };
        let tls = tls.map(|(number, option)| Port {
            number,
            option,
            example: ports.tls_example,
            conventional: ports.tls_conventional,
        });
        if let Some(tls) = tls {
            if tls.number != 0 && tls.number == plain.number {
                anyhow::bail!(
                    "{} and {} are both {} (implicit TLS needs a port of its own, conventionally {})",
                    tls.option,
                    plain.option,
                    plain.number,
                    tls.conventional
                );
            }
        }
        let bind = |port: Port| {
            super::bind(
                SocketAddr::new(self.bind, port.number),
                port.option,
                port.example,
            )
        };
        Ok(Endpoint {
            plain: bind(plain)?,
            tls: tls.map(bind).transpose()?,
        })
    }

    /// Print where each endpoint listens and, for the demo store, its logins. `protocols`
    /// pairs each endpoint with its protocol's name, shown when there are several.
    ///
    /// # Errors
    /// stdout cannot be written.
    pub fn announce(&self, format: Format, endpoints: &[(&'static str, &Endpoint)]) -> Result<()> {
        let mut printer = Printer::stdout(format);
        let several = endpoints.len() > 1;
        for (protocol, endpoint) in endpoints {
            let protocol = several.then_some(*protocol);
            printer.print(&Listening {
                listening: endpoint.plain.local_addr()?,
                protocol,
                tls: false,
            })?;
            if let Some(tls) = &endpoint.tls {
                printer.print(&Listening {
                    listening: tls.local_addr()?,
                    protocol,
                    tls: true,
                })?;
            }
        }
        if self.demo_dir.is_some() {
            for (demo_user, password) in crate::demo::users() {
                printer.print(&DemoUser {
                    demo_user,
                    password,
                })?;
            }
        }
        Ok(())
    }
}

/// Run one protocol's server on its own (serve-pop, serve-imap, serve-smtp): check the
/// options, bind `port` (its default from `ports` when not given) and `tls_port`, print the
/// addresses, and serve with what `server` builds until SIGINT or SIGTERM.
///
/// # Errors
/// The certificate or key cannot be used, the store is missing, an address cannot be bound,
/// or the runtime cannot start.
pub fn run_alone(
    store: &Store,
    options: &ServerOptions,
    format: Format,
    (protocol, ports): (&'static str, Ports),
    (port, tls_port): (Option<u16>, Option<u16>),
    server: impl FnOnce(&Setup, Endpoint) -> Server,
) -> Result<()> {
    let setup = Setup::new(store, options)?;
    let endpoint = setup.bind(
        ports,
        (port.unwrap_or(ports.default_port(options.demo)), "--port"),
        tls_port.map(|port| (port, "--tls-port")),
    )?;
    setup.announce(format, &[(protocol, &endpoint)])?;
    run(vec![server(&setup, endpoint)])
}

/// A protocol's registered ports and the unprivileged ones to suggest instead.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub conventional: u16,
    /// Suggested when the conventional port needs root, and the default with `--demo`.
    pub example: u16,
    pub tls_conventional: u16,
    pub tls_example: u16,
}

impl Ports {
    /// The port when none is given: the registered one, or with `--demo` the unprivileged
    /// one, so that the demo runs without root.
    pub fn default_port(&self, demo: bool) -> u16 {
        if demo {
            self.example
        } else {
            self.conventional
        }
    }
}

/// A port option: its value, the flag that set it, and ports to suggest.
#[derive(Debug, Clone, Copy)]
struct Port {
    number: u16,
    option: &'static str,
    /// An unprivileged port to suggest when this one needs root.
    example: u16,
    /// The protocol's registered port, named when two ports collide.
    conventional: u16,
}

/// One protocol's bound listeners.
pub struct Endpoint {
    plain: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
}

/// A server ready to run: its listeners, driver and shell settings.
pub type Server =
    Box<dyn FnOnce(broadcast::Receiver<()>) -> Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Package `endpoint` with `driver` for [`run`].
pub fn server<D: Driver>(endpoint: Endpoint, driver: D, config: ShellConfig) -> Server {
    Box::new(move |mut shutdown: broadcast::Receiver<()>| {
        Box::pin(async move {
            let listener = match TcpListener::from_std(endpoint.plain) {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("error: cannot listen: {e}");
                    return;
                }
            };
            let tls_listener = endpoint.tls.and_then(|l| TcpListener::from_std(l).ok());
            super::serve(
                listener,
                tls_listener,
                Arc::new(driver),
                Arc::new(config),
                async move {
                    let _ = shutdown.recv().await;
                },
            )
            .await;
        })
    })
}

/// Run `servers` on one runtime until SIGINT or SIGTERM, then shut them all down together.
///
/// # Errors
/// The runtime or the signal handlers cannot start.
pub fn run(servers: Vec<Server>) -> Result<()> {
    crate::store::on_blocking(super::block_in_place);
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let (stop, _) = broadcast::channel::<()>(1);
        let signal = super::shutdown_signal()?;
        let mut tasks = Vec::new();
        for server in servers {
            tasks.push(tokio::spawn(server(stop.subscribe())));
        }
        signal.await;
        let _ = stop.send(());
        for task in tasks {
            let _ = task.await;
        }
        anyhow::Ok(())
    })
}

/// What a server prints on stdout first, one line per listener: scripts wait for these.
#[derive(Debug, Serialize)]
struct Listening {
    listening: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listening on {}", self.listening)?;
        match (self.protocol, self.tls) {
            (Some(protocol), true) => write!(f, " ({protocol}, tls)")?,
            (Some(protocol), false) => write!(f, " ({protocol})")?,
            (None, true) => f.write_str(" (tls)")?,
            (None, false) => {}
        }
        writeln!(f)
    }
}

/// A demo login, printed after the addresses with `--demo`.
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
