//! A small blocking POP3 client, and [`ServePop`]: the real `mailtool serve-pop` binary on a
//! free loopback port, killed when dropped.
//!
//! The client is deliberately naive (one line at a time, no pipelining unless asked through
//! [`Pop3Client::send_raw`]) so that what the tests see is exactly what the server wrote.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for any one reply before failing instead of hanging.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// `mailtool serve-pop --port 0` on a store, with its stderr captured.
pub struct ServePop {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl ServePop {
    /// Start the server on `store` with extra serve-pop arguments, and wait until it listens.
    pub fn start(store: &Path, extra: &[&str]) -> ServePop {
        ServePop::spawn(super::mailtool_std(store), extra)
    }

    /// Start the server from a prepared command (`pre_exec`, environment), adding
    /// `serve-pop --port 0` and `extra`.
    pub fn spawn(mut command: std::process::Command, extra: &[&str]) -> ServePop {
        command
            .args(["serve-pop", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn mailtool serve-pop");
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
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("read serve-pop's address line");
        // Keep draining stdout so the server never blocks on a full pipe.
        thread::spawn(move || {
            let _ = io::copy(&mut stdout, &mut io::sink());
        });
        let addr = parse_address_line(&first).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            thread::sleep(Duration::from_millis(100));
            panic!(
                "serve-pop printed no address: stdout {first:?}, stderr {:?}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            )
        });
        ServePop {
            child,
            addr,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A new client session (greeting already read).
    pub fn connect(&self) -> Pop3Client {
        Pop3Client::connect(self.addr)
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
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

    /// SIGKILL the server and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for ServePop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Find the socket address in serve-pop's first stdout line, whatever words surround it
/// (`listening on 127.0.0.1:1100`, `pop3://127.0.0.1:1100/`, ...).
pub fn parse_address_line(line: &str) -> Option<SocketAddr> {
    line.split_whitespace().find_map(|word| {
        let word = word
            .trim_start_matches("pop3://")
            .trim_end_matches(['/', ',', '.', ')']);
        word.trim_start_matches('(').parse().ok()
    })
}

/// One POP3 connection.
pub struct Pop3Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: String,
}

impl Pop3Client {
    /// Connect and read the greeting (which must be `+OK`).
    pub fn connect(addr: SocketAddr) -> Pop3Client {
        let stream = TcpStream::connect(addr).expect("connect to serve-pop");
        let mut client = Pop3Client::from_stream(stream);
        client.greeting = client.read_line().expect("greeting");
        assert!(
            client.greeting.starts_with("+OK"),
            "greeting {:?}",
            client.greeting
        );
        client
    }

    /// Wrap a connected stream without reading anything.
    pub fn from_stream(stream: TcpStream) -> Pop3Client {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Pop3Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
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
        self.writer.write_all(bytes).expect("write to server");
    }

    /// One line, without its CRLF; an error at EOF or on a reset connection.
    pub fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Send one command and read its status line.
    pub fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.read_line()
            .unwrap_or_else(|e| panic!("reply to {line:?}: {e}"))
    }

    /// The lines of a multi-line body, up to the `.` terminator, un-stuffed.
    pub fn read_multiline(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().expect("multi-line body");
            if line == "." {
                return lines;
            }
            lines.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
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
                let mut line = Vec::new();
                self.reader.read_until(b'\n', &mut line).expect("RETR body");
                assert!(!line.is_empty(), "EOF inside RETR {number}");
                if line == b".\r\n" {
                    break;
                }
                let unstuffed = if line.starts_with(b".") {
                    &line[1..]
                } else {
                    &line[..]
                };
                body.extend_from_slice(unstuffed);
            }
        }
        (status, body)
    }

    /// USER and PASS; panics unless both are accepted.
    pub fn login(&mut self, user: &str, password: &str) -> String {
        let reply = self.command(&format!("USER {user}"));
        assert!(reply.starts_with("+OK"), "USER {user}: {reply}");
        let reply = self.command(&format!("PASS {password}"));
        assert!(reply.starts_with("+OK"), "PASS for {user}: {reply}");
        reply
    }

    /// STAT as (messages, octets).
    pub fn stat(&mut self) -> (usize, u64) {
        let reply = self.command("STAT");
        let mut words = reply.split(' ');
        assert_eq!(words.next(), Some("+OK"), "STAT: {reply}");
        let count = words.next().unwrap().parse().unwrap();
        let octets = words.next().unwrap().parse().unwrap();
        (count, octets)
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

    /// Whether the server has closed the connection (reads EOF or a reset within `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.writer.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
        };
        self.writer.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        closed
    }
}
