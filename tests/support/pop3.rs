//! The real `mailtool serve-pop` binary (or `serve-imap`, or `serve`) on a free loopback
//! port ([`PopServer`], killed when dropped), and a small blocking POP3 client ([`PopClient`]) to talk to it or to Dovecot, in
//! the clear or over TLS.
//!
//! The server's readiness is the address it prints, not polling; its stderr is drained by a
//! thread the whole time, so a chatty `--trace` can never block it on a full pipe. The client
//! is deliberately naive (one line at a time, no pipelining unless asked through
//! [`PopClient::send_raw`]) so that what the tests see is exactly what the server wrote, and
//! every read has a timeout, so a server that stops answering fails a test instead of
//! hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for any one reply (or stdout line) before failing instead of hanging.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// `mailtool serve-pop --port 0` with its stdout and stderr captured; SIGKILLed when dropped.
pub struct PopServer {
    child: Child,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    /// A `Mutex` only so that the server can be shared with scoped client threads.
    stdout: Mutex<Receiver<String>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl PopServer {
    /// `mailtool --store STORE serve-pop --port 0 EXTRA...`, waiting until it listens.
    pub fn start(store: &Path, extra: &[&str]) -> PopServer {
        PopServer::spawn(super::mailtool_std(store), extra)
    }

    /// `mailtool --store STORE serve-imap --port 0 EXTRA...`, waiting until it listens.
    pub fn start_imap(store: &Path, extra: &[&str]) -> PopServer {
        PopServer::spawn_as(
            super::mailtool_std(store),
            &["serve-imap", "--port", "0"],
            extra,
        )
    }

    /// Start the server from a prepared command (`pre_exec`, environment, global options),
    /// adding `serve-pop --port 0` and `extra`, and wait until it listens. With
    /// `--tls-port` in `extra`, the TLS address line is read too.
    pub fn spawn(command: std::process::Command, extra: &[&str]) -> PopServer {
        PopServer::spawn_as(command, &["serve-pop", "--port", "0"], extra)
    }

    /// Like [`PopServer::spawn`], for the server command `serve` (e.g. `["serve-imap",
    /// "--port", "0"]`).
    pub fn spawn_as(
        mut command: std::process::Command,
        serve: &[&str],
        extra: &[&str],
    ) -> PopServer {
        command
            .args(serve)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn mailtool");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        // Stdout is read line by line on a thread, so that waiting for a line has a timeout
        // and the server never blocks on a full pipe.
        let (lines, stdout) = mpsc::channel();
        let mut pipe = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || loop {
            let mut line = String::new();
            match pipe.read_line(&mut line) {
                Ok(n) if n > 0 => {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        });
        let mut server = PopServer {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            tls_addr: None,
            stdout: Mutex::new(stdout),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        // `serve` marks each line with its protocol; POP3's comes first.
        let marked = if serve.first() == Some(&"serve") {
            " (pop3)"
        } else {
            ""
        };
        server.addr = server.listening_line(marked);
        if extra.contains(&"--tls-port") {
            server.tls_addr = Some(server.listening_line(" (tls)"));
        }
        server
    }

    /// The next stdout line must be exactly `listening on ADDR:PORT{suffix}`.
    fn listening_line(&mut self, suffix: &str) -> SocketAddr {
        let line = self.stdout_line();
        line.strip_prefix("listening on ")
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                self.kill();
                panic!(
                    "expected `listening on ADDR:PORT{suffix}`, got {line:?}; stderr: {}",
                    self.stderr()
                )
            })
    }

    /// The next line the server printed to stdout, exactly (with its newline), e.g. a
    /// `demo user NAME password PW` line after the address.
    pub fn stdout_line(&mut self) -> String {
        match self.stdout.get_mut().unwrap().recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => line,
            Err(error) => {
                self.kill();
                panic!(
                    "no line on the server's stdout ({error}); stderr: {}",
                    self.stderr()
                )
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The implicit-TLS address (second stdout line), when started with `--tls-port`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A new client session (greeting already read).
    pub fn connect(&self) -> PopClient {
        PopClient::connect(self.addr)
    }

    /// Everything the server wrote to stderr so far (all of it once it has exited).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait up to ten seconds for `text` to appear on the server's stderr (the log is read by
    /// a thread, so a line written just now may not have arrived yet); true once it has.
    pub fn stderr_shows(&self, text: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self.stderr().contains(text) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Send a signal to the server process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Wait for the server to exit, at most `timeout`; then collect the rest of its stderr.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal and wait (at most [`REPLY_TIMEOUT`]) for the exit status.
    pub fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        self.signal(signal);
        self.wait_timeout(REPLY_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "serve-pop did not exit after signal {signal}; stderr: {}",
                self.stderr()
            )
        })
    }

    /// SIGKILL the server and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for PopServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One POP3 connection: over plain TCP, or over any other stream (TLS after STLS or on the
/// implicit-TLS port) through [`PopClient::over`].
pub struct PopClient<S: Read + Write = TcpStream> {
    stream: BufReader<S>,
    /// The greeting line, with its CRLF (empty when the client was made without reading it).
    pub greeting: String,
}

impl PopClient<TcpStream> {
    /// Connect and read the greeting (which must be `+OK`).
    pub fn connect(addr: SocketAddr) -> PopClient {
        let stream = TcpStream::connect(addr).expect("connect to the POP3 server");
        let mut client = PopClient::from_stream(stream);
        client.greeting = client.read_line();
        assert!(
            client.greeting.starts_with("+OK"),
            "greeting {:?}",
            client.greeting
        );
        client
    }

    /// Wrap a connected stream without reading anything; reads time out after
    /// [`REPLY_TIMEOUT`].
    pub fn from_stream(stream: TcpStream) -> PopClient {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        PopClient::over(stream)
    }

    /// A second handle on the socket, for writing from another thread.
    pub fn try_clone_stream(&self) -> TcpStream {
        self.stream.get_ref().try_clone().unwrap()
    }

    /// The plain socket, to start TLS on after STLS; nothing may be buffered unread (a
    /// server that answered in the clear after STLS fails here).
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.stream.buffer().is_empty(),
            "the server sent more in the clear: {:?}",
            String::from_utf8_lossy(self.stream.buffer())
        );
        self.stream.into_inner()
    }

    /// Whether the server has closed the connection (reads EOF or a reset within `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.stream.get_ref().set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
        };
        self.stream
            .get_ref()
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .unwrap();
        closed
    }
}

impl<S: Read + Write> PopClient<S> {
    /// Wrap any connected stream without reading anything (set its read timeout first).
    pub fn over(stream: S) -> PopClient<S> {
        PopClient {
            stream: BufReader::new(stream),
            greeting: String::new(),
        }
    }

    /// The APOP timestamp of the greeting, `<...>`.
    pub fn apop_timestamp(&self) -> &str {
        let start = self.greeting.find('<').expect("APOP timestamp in greeting");
        let end = self.greeting[start..].find('>').expect("closing >") + start;
        &self.greeting[start..=end]
    }

    /// Write bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).expect("write to server");
        stream.flush().expect("flush to server");
    }

    /// One raw line, which must end in CRLF; panics at EOF.
    fn read_line_bytes(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let n = self
            .stream
            .read_until(b'\n', &mut line)
            .expect("read from server");
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
        line
    }

    /// One response line (UTF-8), with its CRLF; panics at EOF or on a bare LF.
    pub fn read_line(&mut self) -> String {
        String::from_utf8(self.read_line_bytes()).expect("a UTF-8 response line")
    }

    /// Send one command and read its status line (with its CRLF).
    pub fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.read_line()
    }

    /// The raw bytes of a multi-line response up to and including `.CRLF`, exactly as sent
    /// (still dot-stuffed).
    pub fn read_multiline_raw(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line_bytes();
            body.extend_from_slice(&line);
            if line == b".\r\n" {
                return body;
            }
        }
    }

    /// The lines of a multi-line body, up to the `.` terminator, un-stuffed, without CRLF.
    pub fn read_multiline(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line_bytes();
            let line = &line[..line.len() - 2];
            if line == b"." {
                return lines;
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            lines.push(String::from_utf8_lossy(line).into_owned());
        }
    }

    /// Send a command with a multi-line answer; the body is empty after `-ERR`.
    pub fn multiline(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.command(line);
        let body = if status.starts_with("+OK") {
            self.read_multiline()
        } else {
            Vec::new()
        };
        (status, body)
    }

    /// RETR as raw bytes after the status line: the body with CRLFs, un-stuffed, without
    /// the terminator.
    pub fn retr_bytes(&mut self, number: usize) -> (String, Vec<u8>) {
        let status = self.command(&format!("RETR {number}"));
        let mut body = Vec::new();
        if status.starts_with("+OK") {
            loop {
                let line = self.read_line_bytes();
                if line == b".\r\n" {
                    break;
                }
                body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            }
        }
        (status, body)
    }

    /// USER (which must get `+OK send PASS`) then PASS; the reply to PASS, whatever it is.
    pub fn try_login(&mut self, user: &str, password: &str) -> String {
        assert_eq!(self.command(&format!("USER {user}")), "+OK send PASS\r\n");
        self.command(&format!("PASS {password}"))
    }

    /// USER and PASS; panics unless both are accepted. The reply to PASS.
    pub fn login(&mut self, user: &str, password: &str) -> String {
        let reply = self.try_login(user, password);
        assert!(reply.starts_with("+OK"), "PASS for {user}: {reply}");
        reply
    }

    /// STAT as (messages, octets).
    pub fn stat(&mut self) -> (usize, u64) {
        let reply = self.command("STAT");
        let mut words = reply.trim_end().split(' ');
        assert_eq!(words.next(), Some("+OK"), "STAT: {reply}");
        let count = words.next().unwrap().parse().unwrap();
        let octets = words.next().unwrap().parse().unwrap();
        (count, octets)
    }

    /// CAPA (which must be `+OK capability list follows`) as its capability lines.
    pub fn capa(&mut self) -> Vec<String> {
        let (status, lines) = self.multiline("CAPA");
        assert_eq!(status, "+OK capability list follows\r\n");
        lines
    }

    /// UIDL as (number, unique id) pairs.
    pub fn uidl(&mut self) -> Vec<(usize, String)> {
        let (status, lines) = self.multiline("UIDL");
        assert!(status.starts_with("+OK"), "UIDL: {status}");
        lines
            .iter()
            .map(|line| {
                let (number, uid) = line.split_once(' ').expect("UIDL line");
                (number.parse().unwrap(), uid.to_owned())
            })
            .collect()
    }

    /// Append everything until the server closes the connection to `rest` (what arrived is
    /// kept even when the read fails).
    ///
    /// # Errors
    /// A reset connection, or no EOF within [`REPLY_TIMEOUT`].
    pub fn read_to_end(&mut self, rest: &mut Vec<u8>) -> io::Result<usize> {
        self.stream.read_to_end(rest)
    }
}
