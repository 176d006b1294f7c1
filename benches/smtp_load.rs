//! serve-smtp and serve-smtp --lmtp against Dovecot's LMTP and Postfix's smtpd, side by side.
//!
//! The load generator is Postfix's own, `smtp-source`: `--sessions` concurrent sessions send
//! `--messages` messages of `--size` octets to one mailbox, one connection per message
//! (`-L` for LMTP). The servers take turns in `--rounds` rounds, so that a busy neighbour
//! slows all alike. Postfix delivers into a Maildir itself, with virtual(8). While it runs, one
//! more client sends messages one after another and times each from connect to the reply
//! after the data: the per-message latency under load (for Postfix that reply means "queued").
//!
//! Every message must end up on disk exactly once: after each run the Maildir's files are
//! counted and compared with the number sent, waiting for Postfix's queue to drain (the
//! messages/s of Postfix run up to that moment). All four deliver durably: serve-smtp and
//! Dovecot (`mail_fsync = optimized`) fsync before they reply, Postfix fsyncs its queue file
//! before it replies and the Maildir file before it deletes that.
//!
//! Then, for serve-smtp alone: the RSS growth while one 100 MiB message is received.
//!
//! ```text
//! cargo bench --bench smtp_load -- [--messages 10000] [--sessions 32] [--size 4096] [--rounds 4] [--no-extras] [--pin]
//! ```

#[path = "../tests/support/postfix.rs"]
mod postfix;
mod support;

use support::dovecot;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use support::{cpu_model, group_pids, percentile, pin, RssSampler, Serve};

const DOMAIN: &str = "bench.test";
/// Messages each server gets before the measured run: processes forked, files created.
const WARM_UP: usize = 200;
/// How long Postfix may take to empty its queue after smtp-source is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

const USAGE: &str = "cargo bench --bench smtp_load -- [--messages 10000] [--sessions 32] \
                     [--size 4096] [--rounds 4] [--no-extras] [--pin]";

struct Options {
    messages: usize,
    sessions: usize,
    size: usize,
    /// The servers take turns, each sending `messages / rounds` per round, so that a busy
    /// neighbour slows all alike.
    rounds: usize,
    extras: bool,
    /// Servers on CPU 0, smtp-source and the latency client on CPU 1.
    pin: bool,
}

fn options() -> Options {
    let mut options = Options {
        messages: 10_000,
        sessions: 32,
        size: 4096,
        rounds: 4,
        extras: true,
        pin: false,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--messages" => options.messages = args.value(&arg),
            "--sessions" => options.sessions = args.value(&arg),
            "--size" => options.size = args.value(&arg),
            "--rounds" => options.rounds = args.value(&arg),
            "--no-extras" => options.extras = false,
            "--pin" => options.pin = true,
            other => args.unknown(other),
        }
    }
    assert!(options.rounds > 0 && options.messages >= options.rounds);
    options
}

/// One server under test: where it listens, how it speaks, where its mail lands.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    lmtp: bool,
    recipient: String,
    maildir: PathBuf,
    /// Process groups (or single processes) to pin with `--pin`.
    pids: Vec<u32>,
}

#[derive(Default)]
struct Measured {
    messages: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        percentile(&sorted, p).unwrap_or(Duration::ZERO)
    }
}

/// The messages in a Maildir (`new/` and `cur/`).
fn count(maildir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| fs::read_dir(maildir.join(sub)).ok())
        .map(|dir| dir.count())
        .sum()
}

/// A minimal SMTP/LMTP client for the latency probe and the big message.
struct Client {
    reader: BufReader<TcpStream>,
    line: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut client = Client {
            reader: BufReader::new(stream),
            line: String::new(),
        };
        client.expect('2')?;
        Ok(client)
    }

    /// Reads one reply (all its lines); an error unless its code starts with `class`.
    fn expect(&mut self, class: char) -> std::io::Result<()> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if self.line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if self.line.starts_with(class) {
            Ok(())
        } else {
            Err(std::io::Error::other(self.line.trim_end().to_owned()))
        }
    }

    fn command(&mut self, line: &str, class: char) -> std::io::Result<()> {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())?;
        self.expect(class)
    }

    /// One whole transaction; `body` writes the message (CRLF, no line starting with a dot).
    fn send(
        addr: SocketAddr,
        lmtp: bool,
        recipient: &str,
        body: impl FnOnce(&mut TcpStream) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut client = Client::connect(addr)?;
        client.command(if lmtp { "LHLO bench" } else { "EHLO bench" }, '2')?;
        client.command("MAIL FROM:<sender@example.org>", '2')?;
        client.command(&format!("RCPT TO:<{recipient}>"), '2')?;
        client.command("DATA", '3')?;
        body(client.reader.get_mut())?;
        client.reader.get_mut().write_all(b".\r\n")?;
        client.expect('2')?;
        client.command("QUIT", '2')
    }
}

/// The probe's message: `size` octets like smtp-source's.
fn probe_message(size: usize) -> Vec<u8> {
    let mut text =
        b"From: <sender@example.org>\r\nTo: <probe@bench.test>\r\nSubject: probe\r\n\r\n".to_vec();
    let line = b"La de da de da 1.\r\n";
    while text.len() + line.len() <= size {
        text.extend_from_slice(line);
    }
    text
}

/// `smtp-source` with `messages` messages against `target`; returns the probe's latencies.
fn smtp_source(target: &Target, messages: usize, options: &Options) -> Vec<Duration> {
    let source = postfix::find_command("smtp-source").expect("smtp-source (Debian: postfix)");
    let mut command = Command::new(source);
    command.args([
        "-c",
        "-l",
        &options.size.to_string(),
        "-m",
        &messages.to_string(),
        "-s",
        &options.sessions.to_string(),
        "-f",
        "sender@example.org",
        "-t",
        &target.recipient,
    ]);
    if target.lmtp {
        command.arg("-L");
    }
    let child = command
        .arg(target.addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (done, addr, lmtp) = (done.clone(), target.addr, target.lmtp);
        let recipient = target.recipient.clone();
        let message = probe_message(options.size);
        thread::spawn(move || {
            let mut latencies = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let begun = Instant::now();
                Client::send(addr, lmtp, &recipient, |s| s.write_all(&message))
                    .unwrap_or_else(|e| panic!("the latency probe failed: {e}"));
                latencies.push(begun.elapsed());
            }
            latencies
        })
    };
    let output = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    let latencies = probe.join().unwrap();
    assert!(
        output.status.success(),
        "smtp-source against {} failed: {}",
        target.name,
        String::from_utf8_lossy(&output.stderr)
    );
    latencies
}

/// Waits until the Maildir holds `expected` messages; then checks it stays there.
fn wait_on_disk(target: &Target, expected: usize, log: impl Fn() -> String) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while count(&target.maildir) < expected {
        assert!(
            Instant::now() < deadline,
            "{}: {} messages on disk after {DRAIN_TIMEOUT:?}, {expected} sent\n{}",
            target.name,
            count(&target.maildir),
            log()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Warm up, then the measured run; every message sent must be on disk exactly once.
/// One round: `messages` to `target` (after a warm-up in the first round), all counted on
/// disk.
fn run(
    target: &Target,
    messages: usize,
    warm_up: bool,
    options: &Options,
    log: impl Fn() -> String,
) -> Measured {
    if warm_up {
        let before = count(&target.maildir);
        let probes = smtp_source(target, WARM_UP, options).len();
        wait_on_disk(target, before + WARM_UP + probes, &log);
    }
    let before = count(&target.maildir);
    eprintln!("{}: {messages} messages", target.name);
    let started = Instant::now();
    let latencies = smtp_source(target, messages, options);
    let sent = messages + latencies.len();
    wait_on_disk(target, before + sent, &log);
    let elapsed = started.elapsed();
    // More than sent would be a duplicate delivery, which may come late.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&target.maildir) - before,
        sent,
        "{}: messages on disk differ from the number sent\n{}",
        target.name,
        log()
    );
    Measured {
        messages: sent,
        elapsed,
        latencies,
    }
}

fn main() {
    let options = options();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    support::raise_file_limit();
    if postfix::find_command("smtp-source").is_none() {
        eprintln!("smtp-source is not installed (Debian: postfix): nothing to run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours_path = dir.path().join("ours");
    let dovecot_path = dir.path().join("dovecot");
    for (root, users) in [
        (&ours_path, &["smtp", "lmtp"][..]),
        (&dovecot_path, &["bench"]),
    ] {
        let store = Store::new(root);
        for user in users {
            let name = UserName::parse(user).unwrap();
            store.add_user(&name, user).unwrap();
            store.mailbox(&name).unwrap();
        }
    }

    let limit = options.sessions * 2 + 16;
    let big = 200 * 1024 * 1024;
    let serve = |lmtp: bool| {
        let mut args = vec!["serve-smtp", "--domain", DOMAIN];
        if lmtp {
            args.push("--lmtp");
        }
        let size = big.to_string();
        args.extend(["--max-message-size", &size]);
        let log = dir.path().join(if lmtp { "lmtp.log" } else { "smtp.log" });
        Serve::start(&ours_path, &args, limit, &log)
    };
    let smtp = serve(false);
    let lmtp = serve(true);
    let lmtp_port = dovecot::free_ports(1)[0];
    let Some(dovecot) = dovecot::Dovecot::start_with(
        &dovecot_path,
        &format!(
            "protocols = imap pop3 lmtp\nauth_username_format = %Ln\n\
             default_process_limit = 1024\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n"
        ),
    ) else {
        eprintln!("Dovecot is not installed: nothing to compare with");
        return;
    };
    let Some(postfix) = postfix::Postfix::start(
        postfix::Delivery::Maildirs {
            domain: DOMAIN,
            users: &["bench"],
        },
        "default_process_limit = 1024\n",
    ) else {
        eprintln!("Postfix cannot run here: nothing to compare with");
        return;
    };

    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let targets = [
        Target {
            name: "serve-smtp",
            addr: smtp.addr,
            lmtp: false,
            recipient: format!("smtp@{DOMAIN}"),
            maildir: ours_path.join("smtp"),
            pids: vec![smtp.pid()],
        },
        Target {
            name: "serve-smtp --lmtp",
            addr: lmtp.addr,
            lmtp: true,
            recipient: format!("lmtp@{DOMAIN}"),
            maildir: ours_path.join("lmtp"),
            pids: vec![lmtp.pid()],
        },
        Target {
            name: "Dovecot LMTP",
            addr: loopback(lmtp_port),
            lmtp: true,
            recipient: format!("bench@{DOMAIN}"),
            maildir: dovecot_path.join("bench"),
            pids: group_pids(dovecot.master_pid()),
        },
        Target {
            name: "Postfix smtpd",
            addr: loopback(postfix.smtp_port),
            lmtp: false,
            recipient: format!("bench@{DOMAIN}"),
            maildir: postfix.maildir("bench"),
            pids: group_pids(postfix.master_pid()),
        },
    ];
    if options.pin {
        for pid in targets.iter().flat_map(|t| &t.pids) {
            pin(*pid, 0);
        }
        pin(std::process::id(), 1);
    }

    let logs = |name: &str| -> String {
        match name {
            "Dovecot LMTP" => dovecot.log(),
            "Postfix smtpd" => postfix.maillog(),
            _ => String::new(),
        }
    };
    let mut measured: Vec<Measured> = targets
        .iter()
        .map(|_| Measured {
            messages: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        })
        .collect();
    for round in 0..options.rounds {
        let messages = options.messages / options.rounds;
        // Each round starts with the next server: whoever follows Postfix runs while its
        // queue manager still tidies up, and that should not always be the same one.
        for turn in 0..targets.len() {
            let index = (round + turn) % targets.len();
            let target = &targets[index];
            let m = run(target, messages, round == 0, &options, || logs(target.name));
            let into = &mut measured[index];
            into.messages += m.messages;
            into.elapsed += m.elapsed;
            into.latencies.extend(m.latencies);
        }
    }

    println!(
        "smtp_load: smtp-source, {} sessions, one connection per message, {} messages of {} \
         octets to one Maildir in {} alternating rounds, plus a latency probe{}; {nproc} CPUs ({}); \
         load average at the start: {}",
        options.sessions,
        options.messages,
        options.size,
        options.rounds,
        if options.pin {
            "; servers pinned to CPU 0, load generator to CPU 1"
        } else {
            ""
        },
        cpu_model(),
        load.trim()
    );
    println!();
    println!("| server | messages/s (until all on disk) | p50 per message | p99 per message | on disk = sent |");
    println!("|---|---:|---:|---:|---:|");
    for (t, m) in targets.iter().zip(&measured) {
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {} |",
            t.name,
            m.per_second(),
            m.percentile(0.5).as_secs_f64() * 1e3,
            m.percentile(0.99).as_secs_f64() * 1e3,
            m.messages
        );
    }
    println!();
    let [ours_smtp, ours_lmtp, dovecot_lmtp, postfix_smtpd] = &measured[..] else {
        unreachable!()
    };
    for (name, ours) in [("serve-smtp", ours_smtp), ("serve-smtp --lmtp", ours_lmtp)] {
        for (theirs_name, theirs) in [("Dovecot LMTP", dovecot_lmtp), ("Postfix", postfix_smtpd)] {
            println!(
                "{name} / {theirs_name}: {:.2}x messages/s, p99 {:.2}x",
                ours.per_second() / theirs.per_second(),
                ours.percentile(0.99).as_secs_f64() / theirs.percentile(0.99).as_secs_f64()
            );
        }
    }
    drop(postfix);
    drop(dovecot);

    if options.extras {
        big_message(&smtp, &ours_path.join("smtp"));
    }
}

/// RSS growth of serve-smtp while it receives one 100 MiB message.
fn big_message(server: &Serve, maildir: &Path) {
    const SIZE: usize = 100 * 1024 * 1024;
    let before = count(maildir);
    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    Client::send(server.addr, false, &format!("smtp@{DOMAIN}"), |stream| {
        let mut buffer = Vec::with_capacity(1 << 20);
        buffer.extend_from_slice(b"Subject: big\r\n\r\n");
        let line = [b'y'; 98];
        let mut written = 0;
        while written < SIZE {
            buffer.extend_from_slice(&line);
            buffer.extend_from_slice(b"\r\n");
            written += 100;
            if buffer.len() >= 1 << 20 {
                stream.write_all(&buffer)?;
                buffer.clear();
            }
        }
        stream.write_all(&buffer)
    })
    .expect("the 100 MiB message is accepted");
    let elapsed = started.elapsed();
    let (before_kib, peak_kib) = sampler.stop();
    assert_eq!(count(maildir), before + 1, "the 100 MiB message is on disk");
    println!(
        "one 100 MiB message over SMTP: {:.0} MB/s, serve-smtp RSS {before_kib} KiB before, \
         peak {peak_kib} KiB (growth {} KiB; target < 16384 KiB)",
        SIZE as f64 / 1e6 / elapsed.as_secs_f64(),
        peak_kib - before_kib
    );
}
