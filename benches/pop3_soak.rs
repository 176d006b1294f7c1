//! Soak: many concurrent POP3 sessions against one `serve-pop` for a minute, checking every
//! reply, then the store.
//!
//! `--users` users (one mailbox each, `--messages` varied messages built with the store
//! module) and as many client threads, all started at once. Each client loops over sessions
//! that stay open for several rounds of STAT, LIST, UIDL, RETR, TOP and NOOP before QUIT, so
//! about `--users` sessions are open at any moment. Every listing is compared with the
//! mailbox as built, and every RETR body with the message's bytes. No client ever sends DELE.
//!
//! It reports protocol errors and lost or altered messages (both must be 0), the server's
//! RSS, and latency percentiles per command; afterwards the store must hold exactly what it
//! held before, byte for byte, apart from the flags in the file names.
//!
//! ```text
//! cargo bench --bench pop3_soak -- [--users 1000] [--seconds 60] [--messages 8] [--ramp-up 2]
//! ```
//!
//! The clients start spread over `--ramp-up` seconds (0: all at once, a burst of `--users`
//! simultaneous connects that also tests the server's listen queue).
//!
//! It exits non-zero when a check fails, so it can gate a release.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use md5::{Digest, Md5};
use support::Serve;

struct Options {
    users: usize,
    seconds: u64,
    messages: usize,
    ramp_up: f64,
}

const USAGE: &str =
    "cargo bench --bench pop3_soak -- [--users 1000] [--seconds 60] [--messages 8] [--ramp-up 2]";

fn options() -> Options {
    let mut options = Options {
        users: 1000,
        seconds: 60,
        messages: 8,
        ramp_up: 2.0,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--users" => options.users = args.value(&arg),
            "--seconds" => options.seconds = args.value(&arg),
            "--messages" => options.messages = args.value(&arg),
            "--ramp-up" => options.ramp_up = args.value(&arg),
            other => args.unknown(other),
        }
    }
    assert!(options.users > 0 && options.messages > 0);
    options
}

/// A message whose shape varies with `n`: LF or CRLF line ends, dot-leading lines, sometimes
/// no final line end, 300 octets to a few KiB.
fn message(user: usize, n: usize) -> Vec<u8> {
    let end = if n.is_multiple_of(3) { "\r\n" } else { "\n" };
    let mut text = format!(
        "From: Sender <sender@example.org>{end}To: user{user}@example.org{end}\
         Subject: soak {user}/{n}{end}Message-ID: <{user}.{n}@soak.example.org>{end}{end}"
    );
    for line in 0..(4 + (user * 7 + n * 13) % 60) {
        if line.is_multiple_of(9) {
            text.push_str(".a line that starts with a dot");
        } else if line.is_multiple_of(17) {
            text.push('.');
        } else {
            text.push_str("The quick brown fox jumps over the lazy dog.");
        }
        text.push_str(end);
    }
    if n % 5 == 4 {
        text.push_str("no final line end");
    }
    text.into_bytes()
}

/// What RETR must deliver for `raw`: CRLF line ends, a final line end added.
fn on_the_wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20 + 2);
    for (i, &byte) in raw.iter().enumerate() {
        if byte == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    if !raw.is_empty() && !raw.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One mailbox as built: UIDs (Maildir base names) in delivery order and the RETR bodies.
struct Mailbox {
    user: String,
    password: String,
    uids: Vec<String>,
    bodies: Vec<Vec<u8>>,
}

fn build_store(root: &Path, options: &Options) -> Vec<Mailbox> {
    let store = Store::new(root);
    let started = Instant::now();
    let mut mailboxes = Vec::new();
    for user in 0..options.users {
        let name = UserName::parse(&format!("user{user}")).unwrap();
        let password = format!("pass-{user}");
        store.add_user(&name, &password).unwrap();
        mailboxes.push(Mailbox {
            user: name.to_string(),
            password,
            uids: Vec::new(),
            bodies: Vec::new(),
        });
    }
    // Deliveries sync to disk; run them in parallel so the build takes seconds, not minutes.
    let chunk = options.users.div_ceil(16);
    thread::scope(|scope| {
        for (index, part) in mailboxes.chunks_mut(chunk).enumerate() {
            let store = &store;
            scope.spawn(move || {
                for (offset, mailbox) in part.iter_mut().enumerate() {
                    let user = index * chunk + offset;
                    let name = UserName::parse(&mailbox.user).unwrap();
                    let maildir = store.mailbox(&name).unwrap();
                    for n in 0..options.messages {
                        let raw = message(user, n);
                        let mut delivery = maildir.deliver().unwrap();
                        delivery.write_all(&raw).unwrap();
                        delivery.commit().unwrap();
                    }
                    // Delivery order is the listing order; read it back as the server will.
                    for entry in maildir.list().unwrap() {
                        let raw = fs::read(maildir.entry_path(&entry)).unwrap();
                        mailbox.uids.push(entry.base().to_owned());
                        mailbox.bodies.push(on_the_wire(&raw));
                    }
                }
            });
        }
    });
    eprintln!(
        "built {} users x {} messages in {:.1?}",
        options.users,
        options.messages,
        started.elapsed()
    );
    mailboxes
}

/// Every file of every mailbox, keyed `user/folder/base` (`msg` for new/ and cur/, so that
/// a flag change, which may move a file from new/ to cur/, keeps the key), with an MD5 of its
/// bytes. Files left in tmp/ show up as keys of their own.
fn snapshot(root: &Path) -> BTreeMap<String, [u8; 16]> {
    let mut all = BTreeMap::new();
    for user in fs::read_dir(root).unwrap() {
        let user = user.unwrap();
        if !user.file_type().unwrap().is_dir() {
            continue;
        }
        let user_name = user.file_name().into_string().unwrap();
        for sub in ["new", "cur", "tmp"] {
            let kind = if sub == "tmp" { "tmp" } else { "msg" };
            for file in fs::read_dir(user.path().join(sub)).unwrap() {
                let file = file.unwrap();
                let name = file.file_name().into_string().unwrap();
                let base = name.split(':').next().unwrap();
                let key = format!("{user_name}/{kind}/{base}");
                let hash: [u8; 16] = Md5::digest(fs::read(file.path()).unwrap()).into();
                assert!(all.insert(key, hash).is_none(), "{name} twice");
            }
        }
    }
    all
}

/// Why a session went wrong.
enum Failure {
    /// No session at all: the connection failed or was never greeted (e.g. the kernel dropped
    /// it from a full listen queue).
    Connect(String),
    /// A reply that is not what POP3 allows here (including -ERR, EOF, timeouts).
    Protocol(String),
    /// A listing or body that differs from the mailbox as built.
    Lost(String),
}

type Outcome<T> = Result<T, Failure>;

fn protocol(what: impl Into<String>) -> Failure {
    Failure::Protocol(what.into())
}

struct Client {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Outcome<Client> {
        let stream =
            TcpStream::connect(addr).map_err(|e| Failure::Connect(format!("connect: {e}")))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let mut client = Client {
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: Vec::with_capacity(256),
        };
        client.status("greeting").map_err(|failure| match failure {
            Failure::Protocol(what) => Failure::Connect(what),
            other => other,
        })?;
        Ok(client)
    }

    fn read_line(&mut self, context: &str) -> Outcome<()> {
        self.line.clear();
        match self.reader.read_until(b'\n', &mut self.line) {
            Ok(0) => Err(protocol(format!("{context}: connection closed"))),
            Ok(_) if self.line.ends_with(b"\r\n") => Ok(()),
            Ok(_) => Err(protocol(format!("{context}: line without CRLF"))),
            Err(e) => Err(protocol(format!("{context}: {e}"))),
        }
    }

    /// Read a status line; anything but +OK is a protocol error here.
    fn status(&mut self, context: &str) -> Outcome<String> {
        self.read_line(context)?;
        let text = String::from_utf8_lossy(&self.line).trim_end().to_owned();
        if text == "+OK" || text.starts_with("+OK ") {
            Ok(text)
        } else {
            Err(protocol(format!("{context}: {text}")))
        }
    }

    fn command(&mut self, command: &str) -> Outcome<String> {
        self.reader
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .map_err(|e| protocol(format!("{command}: {e}")))?;
        self.status(command)
    }

    /// The un-stuffed data of a multi-line reply, with CRLFs.
    fn data(&mut self, context: &str) -> Outcome<Vec<u8>> {
        let mut data = Vec::new();
        loop {
            self.read_line(context)?;
            if self.line == b".\r\n" {
                return Ok(data);
            }
            let line = self.line.strip_prefix(b".").unwrap_or(&self.line);
            data.extend_from_slice(line);
        }
    }
}

/// Latencies in microseconds, per command.
#[derive(Default)]
struct Latencies {
    by_command: BTreeMap<&'static str, Vec<u32>>,
}

impl Latencies {
    fn add(&mut self, command: &'static str, since: Instant) {
        let micros = since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.by_command.entry(command).or_default().push(micros);
    }

    fn merge(&mut self, other: Latencies) {
        for (command, values) in other.by_command {
            self.by_command.entry(command).or_default().extend(values);
        }
    }
}

fn timed<T>(
    latencies: &mut Latencies,
    name: &'static str,
    f: impl FnOnce() -> Outcome<T>,
) -> Outcome<T> {
    let started = Instant::now();
    let result = f();
    if result.is_ok() {
        latencies.add(name, started);
    }
    result
}

/// One session: log in, a few rounds of reads checked against the mailbox, QUIT.
fn session(
    addr: SocketAddr,
    mailbox: &Mailbox,
    seed: &mut u64,
    latencies: &mut Latencies,
    commands: &AtomicU64,
) -> Outcome<()> {
    let started = Instant::now();
    let mut client = timed(latencies, "connect", || Client::connect(addr))?;
    timed(latencies, "USER", || {
        client.command(&format!("USER {}", mailbox.user))
    })?;
    timed(latencies, "PASS", || {
        client.command(&format!("PASS {}", mailbox.password))
    })?;
    let count = mailbox.uids.len();
    for _ in 0..4 {
        let stat = timed(latencies, "STAT", || client.command("STAT"))?;
        let total: usize = mailbox.bodies.iter().map(Vec::len).sum();
        if stat != format!("+OK {count} {total}") {
            return Err(Failure::Lost(format!("{}: {stat}", mailbox.user)));
        }
        let list = timed(latencies, "LIST", || {
            client.command("LIST")?;
            client.data("LIST")
        })?;
        let expected: String = mailbox
            .bodies
            .iter()
            .enumerate()
            .map(|(i, body)| format!("{} {}\r\n", i + 1, body.len()))
            .collect();
        if list != expected.as_bytes() {
            return Err(Failure::Lost(format!("{}: LIST differs", mailbox.user)));
        }
        let uidl = timed(latencies, "UIDL", || {
            client.command("UIDL")?;
            client.data("UIDL")
        })?;
        let expected: String = mailbox
            .uids
            .iter()
            .enumerate()
            .map(|(i, uid)| format!("{} {uid}\r\n", i + 1))
            .collect();
        if uidl != expected.as_bytes() {
            return Err(Failure::Lost(format!("{}: UIDL differs", mailbox.user)));
        }
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (*seed >> 33) as usize % count;
        let body = timed(latencies, "RETR", || {
            client.command(&format!("RETR {}", n + 1))?;
            client.data("RETR")
        })?;
        if body != mailbox.bodies[n] {
            return Err(Failure::Lost(format!(
                "{}: RETR {} differs",
                mailbox.user,
                n + 1
            )));
        }
        let top = timed(latencies, "TOP", || {
            client.command(&format!("TOP {} 0", n + 1))?;
            client.data("TOP")
        })?;
        if !mailbox.bodies[n].starts_with(&top) {
            return Err(Failure::Lost(format!(
                "{}: TOP {} differs",
                mailbox.user,
                n + 1
            )));
        }
        timed(latencies, "NOOP", || client.command("NOOP"))?;
        commands.fetch_add(6, Ordering::Relaxed);
    }
    timed(latencies, "QUIT", || client.command("QUIT"))?;
    commands.fetch_add(4, Ordering::Relaxed);
    latencies.add("session", started);
    Ok(())
}

/// Milliseconds at quantile `p` of ascending `micros`.
fn percentile_ms(micros: &[u32], p: f64) -> f64 {
    support::percentile(micros, p).map_or(0.0, |value| f64::from(value) / 1000.0)
}

fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let mailboxes = Arc::new(build_store(&store_path, &options));
    let before = snapshot(&store_path);
    let log = dir.path().join("serve-pop.log");
    let mut server = Serve::start(&store_path, &["serve-pop"], options.users * 2, &log);
    let rss_idle = server.rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(AtomicU64::new(0));
    let commands = Arc::new(AtomicU64::new(0));
    let protocol_errors = Arc::new(AtomicU64::new(0));
    let connect_failures = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(options.users + 1));
    let addr = server.addr;
    let clients: Vec<_> = (0..options.users)
        .map(|index| {
            let (stop, sessions, commands) = (stop.clone(), sessions.clone(), commands.clone());
            let (protocol_errors, lost) = (protocol_errors.clone(), lost.clone());
            let connect_failures = connect_failures.clone();
            let delay =
                Duration::from_secs_f64(options.ramp_up * index as f64 / options.users as f64);
            let (mailboxes, barrier) = (mailboxes.clone(), barrier.clone());
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mailbox = &mailboxes[index];
                    let mut seed = index as u64 + 1;
                    let mut latencies = Latencies::default();
                    barrier.wait();
                    thread::sleep(delay);
                    while !stop.load(Ordering::Relaxed) {
                        match session(addr, mailbox, &mut seed, &mut latencies, &commands) {
                            Ok(()) => {
                                sessions.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(failure) => {
                                let (counter, kind, what) = match failure {
                                    Failure::Protocol(what) => (&protocol_errors, "protocol", what),
                                    Failure::Lost(what) => (&lost, "lost", what),
                                    Failure::Connect(what) => {
                                        (&connect_failures, "connection", what)
                                    }
                                };
                                if counter.fetch_add(1, Ordering::Relaxed) < 5 {
                                    eprintln!("{kind} error: {what}");
                                }
                                thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    latencies
                })
                .expect("spawn a client thread")
        })
        .collect();

    barrier.wait();
    let started = Instant::now();
    let mut rss_peak = 0;
    let mut open_samples = Vec::new();
    while started.elapsed() < Duration::from_secs(options.seconds) {
        thread::sleep(Duration::from_millis(250));
        rss_peak = rss_peak.max(server.rss_kib());
        open_samples.push(support::established_connections(addr.port()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Latencies::default();
    for client in clients {
        latencies.merge(client.join().unwrap());
    }
    let elapsed = started.elapsed();
    let (rss_end, hwm) = (server.rss_kib(), server.peak_rss_kib());

    // Stopped first, so that nothing writes to the store while it is compared.
    let status = server.terminate();
    let after = snapshot(&store_path);
    let changed = before
        .iter()
        .filter(|(key, hash)| after.get(*key) != Some(hash))
        .count();
    let appeared = after
        .keys()
        .filter(|key| !before.contains_key(*key))
        .count();

    let sessions = sessions.load(Ordering::Relaxed);
    let protocol_errors = protocol_errors.load(Ordering::Relaxed);
    let lost = lost.load(Ordering::Relaxed);
    let connect_failures = connect_failures.load(Ordering::Relaxed);
    open_samples.sort_unstable();
    let median_open = open_samples
        .get(open_samples.len() / 2)
        .copied()
        .unwrap_or(0);
    println!(
        "pop3_soak: {} concurrent clients ({} users x {} messages), started over {} s, for {:.0} s against serve-pop (release), {} CPUs",
        options.users,
        options.users,
        options.messages,
        options.ramp_up,
        elapsed.as_secs_f64(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "sessions: {sessions} completed ({:.1}/s), {} commands ({:.0}/s); open connections (median of samples): {median_open}",
        sessions as f64 / elapsed.as_secs_f64(),
        commands.load(Ordering::Relaxed),
        commands.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
    );
    println!("protocol errors: {protocol_errors}");
    println!("connections refused, dropped or never greeted: {connect_failures}");
    println!("lost or altered messages seen by clients: {lost}");
    println!(
        "server RSS: {rss_idle} KiB idle, {rss_peak} KiB peak sampled, {rss_end} KiB at the end (VmHWM {hwm} KiB)"
    );
    println!();
    println!("| command | count | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (command, mut values) in latencies.by_command {
        values.sort_unstable();
        println!(
            "| {command} | {} | {:.2} | {:.2} | {:.2} |",
            values.len(),
            percentile_ms(&values, 0.5),
            percentile_ms(&values, 0.99),
            percentile_ms(&values, 1.0)
        );
    }
    println!();
    println!(
        "store after the run: {} messages before, {} after, {changed} changed or missing, {appeared} new; serve-pop after SIGTERM: {status}",
        before.len(),
        after.len()
    );
    let ok = protocol_errors == 0
        && connect_failures == 0
        && lost == 0
        && changed == 0
        && appeared == 0
        && sessions > 0
        && status.success();
    if !ok {
        eprintln!("FAILED (server log: {})", log.display());
        // Keep the directory for a post-mortem.
        let _ = dir.keep();
        std::process::exit(1);
    }
    println!("OK: zero protocol errors, zero lost messages, store intact");
}
