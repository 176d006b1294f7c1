//! A real HAProxy (Debian's `haproxy`) in front of mailtool servers on loopback: its own
//! config file in a temporary directory, frontends on free ports, `mode tcp`, round robin,
//! and the PROXY protocol (v1 or v2 per backend) sent to each server. Killed with its
//! process group when dropped (and by the kernel if the test process dies first).
//!
//! Skipped when HAProxy is not installed, except under CI, where that fails the test.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Which PROXY protocol version HAProxy sends a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxy {
    /// `send-proxy`: the text header.
    V1,
    /// `send-proxy-v2`: the binary header.
    V2,
}

/// One server behind a frontend.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    pub addr: SocketAddr,
    pub send_proxy: SendProxy,
}

/// A running HAProxy; `frontend(i)` is where clients of the `i`-th backend list connect.
pub struct Haproxy {
    child: Child,
    config: String,
    frontends: Vec<SocketAddr>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _dir: TempDir,
}

impl Haproxy {
    /// Start HAProxy with one frontend per entry of `pools`, balancing round robin over that
    /// entry's backends, health-checked every 200 ms. `None` (after a note) when HAProxy is
    /// not installed and CI is not set.
    pub fn start(pools: &[&[Backend]]) -> Option<Haproxy> {
        let haproxy = require_haproxy()?;
        let ports = free_ports(pools.len());
        let frontends: Vec<SocketAddr> = ports
            .iter()
            .map(|&port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .collect();
        let config = config(&frontends, pools);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, &config).unwrap();
        let mut command = Command::new(haproxy);
        command
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn haproxy");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let haproxy = Haproxy {
            child,
            config,
            frontends,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for frontend in &haproxy.frontends {
            while TcpStream::connect(frontend).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "haproxy does not listen on {frontend}: {}",
                    haproxy.stderr()
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        Some(haproxy)
    }

    /// Where clients of pool `i` connect.
    pub fn frontend(&self, i: usize) -> SocketAddr {
        self.frontends[i]
    }

    /// The configuration it runs with (for a failing test's message, and the docs).
    pub fn config(&self) -> &str {
        &self.config
    }

    /// What HAProxy wrote on stderr so far (alerts and warnings).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; -pid is HAProxy's own group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The configuration: `mode tcp`, round robin, health checks every 200 ms (they carry the
/// PROXY header too), and a connection refused by a dead server retried on another.
fn config(frontends: &[SocketAddr], pools: &[&[Backend]]) -> String {
    let mut config = String::from(
        "global
    maxconn 4096

defaults
    mode tcp
    timeout connect 1s
    timeout client 5m
    timeout server 5m
    retries 3
    option redispatch 1
",
    );
    for (i, (frontend, backends)) in frontends.iter().zip(pools).enumerate() {
        let _ = write!(
            config,
            "
frontend mail{i}
    bind {frontend}
    default_backend servers{i}

backend servers{i}
    balance roundrobin
"
        );
        for (n, backend) in backends.iter().enumerate() {
            let send_proxy = match backend.send_proxy {
                SendProxy::V1 => "send-proxy",
                SendProxy::V2 => "send-proxy-v2",
            };
            let _ = writeln!(
                config,
                "    server s{n} {} {send_proxy} check inter 200ms fall 1 rise 1",
                backend.addr
            );
        }
    }
    config
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.2, 127.0.0.3...), so
/// tests can play clients at several addresses.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket
        .connect(&to.into())
        .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    socket.into()
}

/// `haproxy` on PATH, /usr/sbin or /sbin.
pub fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `Some(path)` when HAProxy is installed; otherwise a note and `None`, except under CI
/// (env `CI` non-empty), where it panics.
pub fn require_haproxy() -> Option<PathBuf> {
    if let Some(path) = find_haproxy() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("haproxy not found on PATH, /usr/sbin or /sbin, but CI is set: install the Debian package haproxy");
    }
    eprintln!("skipping: haproxy not found");
    None
}

/// `n` distinct ports free on 127.0.0.1 a moment ago (held together while chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}
