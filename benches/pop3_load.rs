//! serve-pop against Dovecot's POP3, side by side, on identical stores.
//!
//! C concurrent clients, each its own user (64 users x 100 messages of 4 KiB, built with the
//! store module), loop: connect, USER/PASS, STAT, LIST, UIDL, RETR every message, QUIT. The
//! two servers run in the same process tree and are measured alternately, in short rounds,
//! so that a busy neighbour on a shared machine hurts both alike. Then, for serve-pop alone:
//! the RSS growth while one 100 MiB message is retrieved, and the RSS with 10,000 idle
//! connections.
//!
//! ```text
//! cargo bench --bench pop3_load -- [--seconds 10] [--clients 16] [--rounds 10] [--pipeline] [--no-extras] [--pin]
//! ```
//!
//! `--seconds` is the measured time per server, split into `--rounds` alternating rounds.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use support::{
    copy_tree, cpu_model, cpu_seconds, dovecot, group_cpu_seconds, pin, raise_file_limit,
    RssSampler, Serve,
};

const USERS: usize = 64;
const MESSAGES: usize = 100;
const MESSAGE_SIZE: usize = 4096;

struct Options {
    seconds: f64,
    clients: usize,
    rounds: usize,
    extras: bool,
    pipeline: bool,
    /// Run each server on CPU 0 and the load generator on CPU 1, so that neither server
    /// competes with the clients for a core.
    pin: bool,
}

const USAGE: &str =
    "cargo bench --bench pop3_load -- [--seconds 10] [--clients 16] [--rounds 10] [--pipeline] [--no-extras] [--pin]";

fn options() -> Options {
    let mut options = Options {
        seconds: 10.0,
        clients: 16,
        rounds: 10,
        extras: true,
        pipeline: false,
        pin: false,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--seconds" => options.seconds = args.value(&arg),
            "--clients" => options.clients = args.value(&arg),
            "--rounds" => options.rounds = args.value(&arg),
            "--no-extras" => options.extras = false,
            "--pipeline" => options.pipeline = true,
            "--pin" => options.pin = true,
            other => args.unknown(other),
        }
    }
    assert!(
        (1..=USERS).contains(&options.clients),
        "--clients must be 1..={USERS} (one user per client)"
    );
    options
}

fn build_store(root: &Path) -> Vec<(String, String)> {
    let store = Store::new(root);
    let started = Instant::now();
    let mut users = Vec::new();
    for user in 0..USERS {
        let name = format!("user{user}");
        let password = format!("pass{user}");
        let parsed = UserName::parse(&name).unwrap();
        store.add_user(&parsed, &password).unwrap();
        let maildir = store.mailbox(&parsed).unwrap();
        for n in 0..MESSAGES {
            let mut delivery = maildir.deliver().unwrap();
            delivery
                .write_all(&support::maildir::message(user, n, MESSAGE_SIZE))
                .unwrap();
            delivery.commit().unwrap();
        }
        users.push((name, password));
    }
    eprintln!(
        "built {USERS} users x {MESSAGES} messages of {MESSAGE_SIZE} octets in {:.1?}",
        started.elapsed()
    );
    users
}

/// One POP3 client connection, reading with a large buffer.
struct Client {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    received: u64,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut client = Client {
            reader: BufReader::with_capacity(64 * 1024, stream),
            line: Vec::with_capacity(256),
            received: 0,
        };
        client.expect_ok()?;
        Ok(client)
    }

    fn read_line(&mut self) -> std::io::Result<()> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.received += n as u64;
        Ok(())
    }

    fn expect_ok(&mut self) -> std::io::Result<()> {
        self.read_line()?;
        if self.line.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(std::io::Error::other(
                String::from_utf8_lossy(&self.line).into_owned(),
            ))
        }
    }

    fn command(&mut self, command: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(command.len() + 2);
        bytes.extend_from_slice(command.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&bytes)?;
        self.expect_ok()
    }

    fn multiline(&mut self) -> std::io::Result<()> {
        loop {
            self.read_line()?;
            if self.line == b".\r\n" {
                return Ok(());
            }
        }
    }

    /// One whole session; returns the message count. With `pipeline`, all RETR commands go
    /// out in one write (both servers announce PIPELINING), and replies are read after.
    fn session(
        addr: SocketAddr,
        user: &str,
        password: &str,
        pipeline: bool,
    ) -> std::io::Result<(usize, u64)> {
        let mut client = Client::connect(addr)?;
        client.command(&format!("USER {user}"))?;
        client.command(&format!("PASS {password}"))?;
        client.command("STAT")?;
        let count: usize = String::from_utf8_lossy(&client.line)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        client.command("LIST")?;
        client.multiline()?;
        client.command("UIDL")?;
        client.multiline()?;
        if pipeline {
            let batch: String = (1..=count).map(|n| format!("RETR {n}\r\n")).collect();
            client.reader.get_mut().write_all(batch.as_bytes())?;
            for _ in 1..=count {
                client.expect_ok()?;
                client.multiline()?;
            }
        } else {
            for n in 1..=count {
                client.command(&format!("RETR {n}"))?;
                client.multiline()?;
            }
        }
        client.command("QUIT")?;
        Ok((count, client.received))
    }
}

#[derive(Default)]
struct Measured {
    sessions: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        support::percentile(&sorted, p).unwrap_or(Duration::ZERO)
    }

    fn sessions_per_second(&self) -> f64 {
        self.sessions as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_ms_per_session(&self) -> f64 {
        self.server_cpu * 1e3 / self.sessions as f64
    }

    fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Run `clients` looping clients against `addr` for `duration`, adding to `into`.
fn load(
    addr: SocketAddr,
    users: &[(String, String)],
    options: &Options,
    duration: Duration,
    into: &mut Measured,
) {
    let (clients, pipeline) = (options.clients, options.pipeline);
    let client_cpu = cpu_seconds(std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = users[..clients]
        .iter()
        .cloned()
        .map(|(user, password)| {
            let stop = stop.clone();
            let errors = errors.clone();
            thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut bytes = 0;
                while !stop.load(Ordering::Relaxed) {
                    let begun = Instant::now();
                    match Client::session(addr, &user, &password, pipeline) {
                        Ok((count, received)) => {
                            assert_eq!(count, MESSAGES, "{user} lost messages");
                            latencies.push(begun.elapsed());
                            bytes += received;
                        }
                        Err(error) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("session of {user} failed: {error}");
                            }
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                (latencies, bytes)
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let (latencies, bytes) = thread.join().unwrap();
        into.sessions += latencies.len() as u64;
        into.latencies.extend(latencies);
        into.bytes += bytes;
    }
    into.elapsed += started.elapsed();
    into.errors += errors.load(Ordering::Relaxed);
    into.client_cpu += cpu_seconds(std::process::id()) - client_cpu;
}

fn main() {
    let options = options();
    // Before any pinning, which would make this process see one CPU.
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    let file_limit = raise_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let ours_path = dir.path().join("ours");
    let theirs_path: PathBuf = dir.path().join("dovecot");
    let users = build_store(&ours_path);
    copy_tree(&ours_path, &theirs_path);

    let tuning = support::dovecot_tuning("pop3-login");
    let Some(dovecot) = dovecot::Dovecot::start_with(&theirs_path, &tuning) else {
        eprintln!("Dovecot is not installed: nothing to compare with");
        return;
    };
    let effective =
        support::dovecot_setting(dovecot.conf_path(), "service/pop3-login/service_count");
    eprintln!("Dovecot pop3-login service_count = {effective}");
    let ours = Serve::start(
        &ours_path,
        &["serve-pop"],
        20_000,
        &dir.path().join("serve-pop.log"),
    );
    let dovecot_addr: SocketAddr = ([127, 0, 0, 1], dovecot.pop3_port).into();
    if options.pin {
        // Every process of Dovecot's group (and, through inheritance, the ones it forks
        // later), every thread of serve-pop, and this generator's threads-to-be.
        support::pin_group(dovecot.master_pid(), 0);
        pin(ours.pid(), 0);
        pin(std::process::id(), 1);
    }

    // Warm up both: Dovecot builds its index files at the first login of each user.
    let mut scratch = Measured::default();
    for addr in [ours.addr, dovecot_addr] {
        load(addr, &users, &options, Duration::from_secs(1), &mut scratch);
    }

    let mut ours_measured = Measured::default();
    let mut dovecot_measured = Measured::default();
    let round = Duration::from_secs_f64(options.seconds / options.rounds as f64);
    let dovecot_group = dovecot.master_pid();
    for r in 0..options.rounds {
        eprintln!("round {} of {}", r + 1, options.rounds);
        let cpu = cpu_seconds(ours.pid());
        load(ours.addr, &users, &options, round, &mut ours_measured);
        ours_measured.server_cpu += cpu_seconds(ours.pid()) - cpu;
        let cpu = group_cpu_seconds(dovecot_group);
        load(dovecot_addr, &users, &options, round, &mut dovecot_measured);
        dovecot_measured.server_cpu += group_cpu_seconds(dovecot_group) - cpu;
    }

    println!(
        "pop3_load: {} clients, {USERS} users x {MESSAGES} messages of {MESSAGE_SIZE} octets, \
         {:.0} s per server in {} alternating rounds{}{}; {nproc} CPUs ({})",
        options.clients,
        options.seconds,
        options.rounds,
        if options.pipeline {
            ", RETRs pipelined"
        } else {
            ""
        },
        if options.pin {
            ", servers pinned to CPU 0 and clients to CPU 1"
        } else {
            ""
        },
        cpu_model()
    );
    println!();
    println!("| server | sessions/s | MB/s | p50 latency | p99 latency | server CPU per session | load generator CPU per session | failed sessions |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, m) in [
        ("serve-pop", &ours_measured),
        ("Dovecot 2.3", &dovecot_measured),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms | {} |",
            m.sessions_per_second(),
            m.megabytes_per_second(),
            m.percentile(0.5).as_secs_f64() * 1e3,
            m.percentile(0.99).as_secs_f64() * 1e3,
            m.cpu_ms_per_session(),
            m.client_cpu * 1e3 / m.sessions as f64,
            m.errors
        );
    }
    println!();
    println!(
        "serve-pop / Dovecot: {:.2}x sessions/s, {:.2}x MB/s, p50 latency {:.2}x, p99 latency {:.2}x, CPU per session {:.2}x",
        ours_measured.sessions_per_second() / dovecot_measured.sessions_per_second(),
        ours_measured.megabytes_per_second() / dovecot_measured.megabytes_per_second(),
        ours_measured.percentile(0.5).as_secs_f64() / dovecot_measured.percentile(0.5).as_secs_f64(),
        ours_measured.percentile(0.99).as_secs_f64()
            / dovecot_measured.percentile(0.99).as_secs_f64(),
        ours_measured.cpu_ms_per_session() / dovecot_measured.cpu_ms_per_session(),
    );
    drop(dovecot);

    if options.extras {
        big_message(&ours_path, &ours);
        idle_connections(&ours, file_limit);
    }
}

/// RSS growth of serve-pop while one 100 MiB message is retrieved.
fn big_message(store_path: &Path, server: &Serve) {
    const SIZE: usize = 100 * 1024 * 1024;
    let store = Store::new(store_path);
    let name = UserName::parse("big").unwrap();
    store.add_user(&name, "big").unwrap();
    let mut delivery = store.mailbox(&name).unwrap().deliver().unwrap();
    let line = [b'y'; 99];
    let mut written = 0;
    delivery.write_all(b"Subject: big\n\n").unwrap();
    while written < SIZE {
        delivery.write_all(&line).unwrap();
        delivery.write_all(b"\n").unwrap();
        written += 100;
    }
    delivery.commit().unwrap();

    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    let mut client = Client::connect(server.addr).unwrap();
    client.command("USER big").unwrap();
    client.command("PASS big").unwrap();
    client.command("RETR 1").unwrap();
    let mut sink = [0u8; 64 * 1024];
    let mut tail = Vec::new();
    loop {
        let n = client.reader.read(&mut sink).unwrap();
        assert!(n > 0, "connection closed during the 100 MiB RETR");
        tail.extend_from_slice(&sink[..n]);
        if tail.ends_with(b"\r\n.\r\n") {
            break;
        }
        let keep = tail.len().saturating_sub(8);
        tail.drain(..keep);
    }
    let elapsed = started.elapsed();
    let (before, peak) = sampler.stop();
    println!(
        "RETR of one 100 MiB message: {:.0} MB/s, serve-pop RSS {before} KiB before, peak {peak} KiB (growth {} KiB)",
        SIZE as f64 / 1e6 / elapsed.as_secs_f64(),
        peak - before
    );
}

/// serve-pop's RSS with 10,000 idle (greeted, not logged in) connections.
fn idle_connections(server: &Serve, file_limit: u64) {
    const IDLE: usize = 10_000;
    if file_limit < IDLE as u64 + 100 {
        println!("idle connections: skipped (file limit {file_limit} < {IDLE}; raise ulimit -n)");
        return;
    }
    let before = server.rss_kib();
    let mut connections = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        match Client::connect(server.addr) {
            Ok(client) => connections.push(client),
            Err(error) => {
                println!(
                    "idle connections: stopped at {} ({error})",
                    connections.len()
                );
                break;
            }
        }
    }
    thread::sleep(Duration::from_millis(200));
    let with = server.rss_kib();
    println!(
        "{} idle connections: serve-pop RSS {with} KiB ({before} KiB before)",
        connections.len()
    );
}
