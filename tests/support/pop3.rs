//! A real `mailtool serve-pop` process on a free port, and a minimal POP3 client for tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

/// A running server, killed (SIGKILL) when dropped.
pub struct PopServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// The lines printed after the address (the demo users with --demo).
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl PopServer {
    /// `mailtool --store STORE serve-pop --port 0 EXTRA...`, waiting for the address line.
    pub fn start(store: &Path, extra: &[&str]) -> PopServer {
        let mut command = super::mailtool_std(store);
        command.args(["serve-pop", "--port", "0"]).args(extra);
        PopServer::spawn(command)
    }

    /// Spawn a prepared `serve-pop` command (stdout and stderr are piped).
    pub fn spawn(mut command: Command) -> PopServer {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailtool serve-pop");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        PopServer {
            child,
            addr,
            stdout,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connect(&self) -> PopClient {
        PopClient::connect(self.addr)
    }

    /// The server's stderr, for reading the log after it exited.
    pub fn take_stderr(&mut self) -> ChildStderr {
        self.child.stderr.take().unwrap()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Send a signal and wait for the exit status.
    pub fn signal_and_wait(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.child.wait().unwrap()
    }
}

impl Drop for PopServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking line-at-a-time POP3 client with a read timeout.
pub struct PopClient {
    pub reader: BufReader<TcpStream>,
    pub greeting: String,
}

impl PopClient {
    pub fn connect(addr: SocketAddr) -> PopClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut client = PopClient {
            reader: BufReader::new(stream),
            greeting: String::new(),
        };
        client.greeting = client.line();
        client
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// One response line, with its CRLF; empty at end of stream.
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        String::from_utf8(line).unwrap()
    }

    /// Send a command and read the one-line reply.
    pub fn cmd(&mut self, command: &str) -> String {
        self.send_raw(format!("{command}\r\n").as_bytes());
        self.line()
    }

    /// The raw bytes of a multi-line body up to and including `.CRLF`.
    pub fn multiline(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let start = body.len();
            let n = self.reader.read_until(b'\n', &mut body).unwrap();
            assert!(n > 0, "connection closed inside a multi-line response");
            if &body[start..] == b".\r\n" {
                return body;
            }
        }
    }

    /// Skip the rest of a multi-line response whose first line was read.
    pub fn multiline_rest(&mut self) {
        while self.line() != ".\r\n" {}
    }

    pub fn login(&mut self, user: &str, password: &str) -> String {
        assert_eq!(self.cmd(&format!("USER {user}")), "+OK send PASS\r\n");
        self.cmd(&format!("PASS {password}"))
    }

    /// Whether the server closed the connection (EOF, or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}
