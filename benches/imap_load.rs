//! serve-imap against Dovecot's IMAP, side by side, on identical stores.
//!
//! Store: 64 users x 100 messages of 4 KiB in `cur/`, all seen but the last 10, written
//! straight to disk, then copied for Dovecot. Two profiles, each server measured in
//! alternating short rounds so that a busy neighbour on a shared machine hurts both alike:
//!
//! - **sessions**: C clients, each its own user, loop over a session shaped like a mail
//!   client's: LOGIN, SELECT INBOX, `FETCH 1:* (FLAGS UID RFC822.SIZE)`, `UID FETCH n
//!   BODY.PEEK[]` of every message (one per round trip), `UID STORE +FLAGS (\Seen)` of the
//!   unseen ones, APPEND of one new message, `UID STORE +FLAGS.SILENT (\Deleted)` and `UID
//!   EXPUNGE` of the oldest (so the mailbox stays at 100), LOGOUT. Every session checks the
//!   count, the sizes and the APPENDUID.
//! - **idle**: one IDLE session per user; a delivery agent writes a message into a user's
//!   `new/` as soon as that user's previous one was announced; the client, woken by
//!   `* N EXISTS`, ends IDLE, fetches the new message and IDLEs again. Latency is from the
//!   delivery's rename to the EXISTS.
//!
//! Besides p50/p99 per session and per command, the sessions profile takes the slowest 1% of
//! sessions apart: the mean time each spent per command (the 100 `UID FETCH`es summed) next to
//! the middle sessions', whether they stalled together (few groups overlapping in time: a
//! stall of the machine or the disk) or each alone, and how many began in the first tenth of
//! a round, just after the other server's (whose writes may still be going to the disk),
//! against the share of all sessions that began there.
//!
//! Server CPU is user + system time from /proc: serve-imap's process, or every process of
//! Dovecot's group including the exited per-session `imap` processes.
//!
//! ```text
//! cargo bench --bench imap_load -- [--seconds 10] [--clients 16] [--rounds 10] [--pin]
//!     [--idle-seconds 6] [--idle-clients 64] [--only sessions|idle] [--dovecot-reuse]
//! ```
//!
//! Dovecot runs as the shared bench support tunes it (`support::dovecot_tuning`): login
//! processes in high-performance mode, raised limits, `mail_fsync = optimized`, and one `imap`
//! process per session, its default. `--dovecot-reuse` lets each `imap` process serve 100
//! sessions, with 4 kept ready.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::imap::Client;
use support::{cpu_seconds, dovecot, group_cpu_seconds, maildir, pin, Serve};

const USERS: usize = 64;
const MESSAGES: usize = 100;
const MESSAGE_SIZE: usize = 4096;
/// Unseen messages per mailbox as built.
const UNSEEN: usize = 10;

struct Options {
    seconds: f64,
    clients: usize,
    rounds: usize,
    pin: bool,
    idle_seconds: f64,
    idle_clients: usize,
    sessions: bool,
    idle: bool,
    /// Also let Dovecot reuse its `imap` processes (`service_count = 100`, a few kept ready),
    /// as its documentation suggests when all users share one system user.
    dovecot_reuse: bool,
}

const USAGE: &str = "cargo bench --bench imap_load -- [--seconds 10] [--clients 16] [--rounds 10] [--pin] [--idle-seconds 6] [--idle-clients 64] [--only sessions|idle] [--dovecot-reuse]";

fn options() -> Options {
    let mut options = Options {
        seconds: 10.0,
        clients: 16,
        rounds: 10,
        pin: false,
        idle_seconds: 6.0,
        idle_clients: USERS,
        sessions: true,
        idle: true,
        dovecot_reuse: false,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--seconds" => options.seconds = args.value(&arg),
            "--clients" => options.clients = args.value(&arg),
            "--rounds" => options.rounds = args.value(&arg),
            "--pin" => options.pin = true,
            "--dovecot-reuse" => options.dovecot_reuse = true,
            "--idle-seconds" => options.idle_seconds = args.value(&arg),
            "--idle-clients" => options.idle_clients = args.value(&arg),
            "--only" => match args.value::<String>(&arg).as_str() {
                "sessions" => options.idle = false,
                "idle" => options.sessions = false,
                other => args.error(&format!("--only takes sessions or idle, not {other}")),
            },
            other => args.unknown(other),
        }
    }
    assert!(
        (1..=USERS).contains(&options.clients) && (1..=USERS).contains(&options.idle_clients),
        "--clients and --idle-clients must be 1..={USERS} (one user per client)"
    );
    assert!(options.rounds > 0);
    options
}

/// Latencies in microseconds, per command, and per whole session under `session`; and per
/// finished session, where its time went, so that the slowest sessions can be taken apart.
#[derive(Default)]
struct Latencies {
    per_command: BTreeMap<&'static str, Vec<u32>>,
    sessions: Vec<SessionRecord>,
    /// The session in progress: microseconds per command, summed (100 `UID FETCH`es are one
    /// entry).
    open: Vec<(&'static str, u32)>,
    /// When the current round began, and how long it lasts.
    round: Option<(Instant, Duration)>,
}

/// One finished session: when it started, how long it took, and its time per command.
struct SessionRecord {
    started: Instant,
    /// How far into its round (0 to 1) the session began.
    into_round: f32,
    total: u32,
    commands: Vec<(&'static str, u32)>,
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

impl Latencies {
    fn add(&mut self, name: &'static str, since: Instant) {
        let micros = micros(since);
        self.per_command.entry(name).or_default().push(micros);
        match self.open.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum = sum.saturating_add(micros),
            None => self.open.push((name, micros)),
        }
    }

    /// Ends the session that began at `started`.
    fn close_session(&mut self, started: Instant) {
        let total = micros(started);
        self.per_command.entry("session").or_default().push(total);
        let into_round = self.round.map_or(0.0, |(round, length)| {
            (started.saturating_duration_since(round).as_secs_f64() / length.as_secs_f64()) as f32
        });
        self.sessions.push(SessionRecord {
            started,
            into_round,
            total,
            commands: std::mem::take(&mut self.open),
        });
    }

    /// Forgets the commands of a session that failed.
    fn abandon_session(&mut self) {
        self.open.clear();
    }

    fn merge(&mut self, other: Latencies) {
        for (name, values) in other.per_command {
            self.per_command.entry(name).or_default().extend(values);
        }
        self.sessions.extend(other.sessions);
    }

    fn sort(&mut self) {
        for values in self.per_command.values_mut() {
            values.sort_unstable();
        }
        self.sessions.sort_unstable_by_key(|s| s.total);
    }

    /// Milliseconds at quantile `p` of `name` (sorted first).
    fn ms(&self, name: &str, p: f64) -> f64 {
        self.per_command
            .get(name)
            .and_then(|v| support::percentile(v, p))
            .map_or(0.0, |us| f64::from(us) / 1000.0)
    }

    /// The sessions from quantile `from` to quantile `to` of the session times (sorted first).
    fn sessions_between(&self, from: f64, to: f64) -> &[SessionRecord] {
        let n = self.sessions.len() as f64;
        let (a, b) = (
            (n * from) as usize,
            ((n * to).ceil() as usize).min(self.sessions.len()),
        );
        &self.sessions[a..b.max(a)]
    }
}

/// Mean milliseconds per session that `sessions` spent in `name` (`"session"`: in all; `""`:
/// in none of the commands, i.e. in the load generator between them).
fn mean_ms(sessions: &[SessionRecord], name: &str) -> f64 {
    if sessions.is_empty() {
        return 0.0;
    }
    let sum: u64 = sessions
        .iter()
        .map(|s| {
            let commands = s.commands.iter().map(|(_, us)| u64::from(*us));
            match name {
                "session" => u64::from(s.total),
                "" => u64::from(s.total).saturating_sub(commands.sum()),
                _ => s
                    .commands
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, us)| u64::from(*us))
                    .sum(),
            }
        })
        .sum();
    sum as f64 / 1000.0 / sessions.len() as f64
}

/// How many groups `sessions` form when those that overlap in time are put together: about
/// one per session when each stalled alone, few when a stall held many at once.
fn overlapping_groups(sessions: &[SessionRecord]) -> usize {
    let mut spans: Vec<(Instant, Instant)> = sessions
        .iter()
        .map(|s| {
            (
                s.started,
                s.started + Duration::from_micros(u64::from(s.total)),
            )
        })
        .collect();
    spans.sort_unstable();
    let mut groups = 0;
    let mut reach: Option<Instant> = None;
    for (start, end) in spans {
        match reach {
            Some(r) if start <= r => reach = Some(r.max(end)),
            _ => {
                groups += 1;
                reach = Some(end);
            }
        }
    }
    groups
}

fn timed<T>(
    latencies: &mut Latencies,
    name: &'static str,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let started = Instant::now();
    let result = f()?;
    latencies.add(name, started);
    Ok(result)
}

fn fail(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

/// One mail-client session; returns the octets received.
fn session(
    addr: SocketAddr,
    user: usize,
    password: &str,
    appended: &mut usize,
    latencies: &mut Latencies,
) -> std::io::Result<u64> {
    let started = Instant::now();
    let mut client = timed(latencies, "connect", || Client::connect(addr, 64 * 1024))?;
    timed(latencies, "LOGIN", || {
        client.command(&format!("LOGIN user{user} {password}"))
    })?;
    let select = timed(latencies, "SELECT", || client.command("SELECT INBOX"))?;
    if select.exists() != Some(MESSAGES as u64) {
        return Err(fail(format!(
            "user{user}: SELECT says {:?} messages, not {MESSAGES}",
            select.exists()
        )));
    }
    let listing = timed(latencies, "FETCH 1:* (FLAGS UID RFC822.SIZE)", || {
        client.command("FETCH 1:* (FLAGS UID RFC822.SIZE)")
    })?;
    // (uid, size, seen)
    let mut messages = Vec::with_capacity(MESSAGES);
    for item in listing.fetches() {
        let (Some(uid), Some(size), Some(flags)) =
            (item.number("UID"), item.number("RFC822.SIZE"), item.flags())
        else {
            return Err(fail(format!(
                "user{user}: FETCH response without UID, size or flags: {}",
                String::from_utf8_lossy(&item.text)
            )));
        };
        let seen = support::imap::find(flags, b"\\Seen").is_some();
        messages.push((uid, size, seen));
    }
    if messages.len() != MESSAGES {
        return Err(fail(format!(
            "user{user}: FETCH 1:* listed {} messages",
            messages.len()
        )));
    }
    for &(uid, size, _) in &messages {
        let body = timed(latencies, "UID FETCH n BODY.PEEK[]", || {
            client.command(&format!("UID FETCH {uid} BODY.PEEK[]"))
        })?;
        let got = body
            .fetches()
            .find_map(|f| f.literals.first())
            .map_or(0, |l| l.len() as u64);
        if got != size {
            return Err(fail(format!(
                "user{user}: UID {uid} has {got} octets, RFC822.SIZE said {size}"
            )));
        }
    }
    let unseen: Vec<String> = messages
        .iter()
        .filter(|m| !m.2)
        .map(|m| m.0.to_string())
        .collect();
    if !unseen.is_empty() {
        timed(latencies, "UID STORE +FLAGS (\\Seen)", || {
            client.command(&format!("UID STORE {} +FLAGS (\\Seen)", unseen.join(",")))
        })?;
    }
    *appended += 1;
    let new = maildir::message(user, 1_000_000 + *appended, MESSAGE_SIZE);
    let append = timed(latencies, "APPEND", || client.append("INBOX", "", &new))?;
    let new_uid = append.append_uid().unwrap_or(0);
    if new_uid <= messages.last().map_or(0, |m| m.0) {
        return Err(fail(format!(
            "user{user}: APPENDUID {new_uid} is not above the last UID"
        )));
    }
    let oldest = messages[0].0;
    timed(latencies, "UID STORE +FLAGS.SILENT (\\Deleted)", || {
        client.command(&format!("UID STORE {oldest} +FLAGS.SILENT (\\Deleted)"))
    })?;
    let expunge = timed(latencies, "UID EXPUNGE", || {
        client.command(&format!("UID EXPUNGE {oldest}"))
    })?;
    if expunge.expunged() != [1] {
        return Err(fail(format!(
            "user{user}: UID EXPUNGE {oldest} answered {:?}",
            expunge.expunged()
        )));
    }
    let received = client.received;
    timed(latencies, "LOGOUT", || client.logout())?;
    latencies.close_session(started);
    Ok(received)
}

#[derive(Default)]
struct Measured {
    sessions: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Latencies,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.sessions as f64 / self.elapsed.as_secs_f64()
    }

    fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn cpu_ms_per_session(&self) -> f64 {
        self.server_cpu * 1e3 / self.sessions as f64
    }
}

/// Per user: how many messages its sessions appended so far (names stay unique).
type Appended = Arc<Vec<Mutex<usize>>>;

/// Run `clients` looping clients against `addr` for `duration`, adding to `into`.
fn sessions_round(
    addr: SocketAddr,
    users: &[(String, String)],
    clients: usize,
    appended: &Appended,
    duration: Duration,
    into: &mut Measured,
) {
    let client_cpu = cpu_seconds(std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|user| {
            let password = users[user].1.clone();
            let (stop, errors, appended) = (stop.clone(), errors.clone(), appended.clone());
            thread::spawn(move || {
                let mut latencies = Latencies {
                    round: Some((started, duration)),
                    ..Latencies::default()
                };
                let (mut sessions, mut bytes) = (0, 0);
                let mut count = appended[user].lock().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match session(addr, user, &password, &mut count, &mut latencies) {
                        Ok(received) => {
                            sessions += 1;
                            bytes += received;
                        }
                        Err(error) => {
                            latencies.abandon_session();
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("session of user{user} failed: {error}");
                            }
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                (latencies, sessions, bytes)
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let (latencies, sessions, bytes) = thread.join().unwrap();
        into.latencies.merge(latencies);
        into.sessions += sessions;
        into.bytes += bytes;
    }
    into.elapsed += started.elapsed();
    into.errors += errors.load(Ordering::Relaxed);
    into.client_cpu += cpu_seconds(std::process::id()) - client_cpu;
}

/// One IDLE round: every client logs in, selects and IDLEs; deliveries wake them for
/// `duration`. Adds wakes as "sessions" and delivery-to-EXISTS latencies as `wake`.
fn idle_round(
    addr: SocketAddr,
    maildirs: &[PathBuf],
    users: &[(String, String)],
    clients: usize,
    duration: Duration,
    server_cpu: &dyn Fn() -> f64,
    into: &mut Measured,
) {
    // Per user: when its pending delivery was renamed into new/ (µs since `epoch`), 0 when
    // none is pending.
    let epoch = Instant::now();
    let pending: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|user| {
            let password = users[user].1.clone();
            let (stop, errors, pending, ready) =
                (stop.clone(), errors.clone(), pending.clone(), ready.clone());
            thread::spawn(move || {
                let mut latencies = Latencies::default();
                let mut wakes = 0u64;
                let mut run = || -> std::io::Result<()> {
                    let mut client =
                        Client::login(addr, 16 * 1024, &format!("user{user}"), &password)?;
                    let mut exists = client.command("SELECT INBOX")?.exists().unwrap_or(0);
                    let mut tag = client.idle()?;
                    client.set_read_timeout(Some(Duration::from_millis(100)))?;
                    ready.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let Some(item) = client.next_untagged()? else {
                            continue;
                        };
                        let Some((n, b"EXISTS")) = item.numbered() else {
                            continue;
                        };
                        if n <= exists {
                            continue;
                        }
                        let delivered = pending[user].load(Ordering::Acquire);
                        if delivered != 0 {
                            let now = epoch.elapsed().as_micros() as u64;
                            let micros = now.saturating_sub(delivered).min(u64::from(u32::MAX));
                            latencies
                                .per_command
                                .entry("wake")
                                .or_default()
                                .push(micros as u32);
                        }
                        exists = n;
                        let started = Instant::now();
                        client.set_read_timeout(Some(Duration::from_secs(60)))?;
                        client.done(&tag)?;
                        let fetched =
                            client.command(&format!("FETCH {n} (FLAGS UID RFC822.SIZE)"))?;
                        let uid = fetched.fetches().find_map(|f| f.number("UID")).unwrap_or(0);
                        client.command(&format!("UID FETCH {uid} BODY.PEEK[]"))?;
                        tag = client.idle()?;
                        client.set_read_timeout(Some(Duration::from_millis(100)))?;
                        latencies.add("DONE, FETCH, IDLE", started);
                        wakes += 1;
                        pending[user].store(0, Ordering::Release);
                    }
                    client.set_read_timeout(Some(Duration::from_secs(60)))?;
                    client.done(&tag)?;
                    client.logout()
                };
                if let Err(error) = run() {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("IDLE session of user{user} failed: {error}");
                    }
                }
                (latencies, wakes)
            })
        })
        .collect();
    ready.wait();
    let cpu = server_cpu();
    let client_cpu = cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < duration {
        let mut delivered = false;
        for (user, slot) in pending.iter().enumerate() {
            if slot.load(Ordering::Acquire) == 0 {
                n += 1;
                maildir::deliver(
                    &maildirs[user],
                    &maildir::message(user, 2_000_000 + n, MESSAGE_SIZE),
                );
                slot.store(epoch.elapsed().as_micros().max(1) as u64, Ordering::Release);
                delivered = true;
            }
        }
        if !delivered {
            thread::sleep(Duration::from_micros(200));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = server_cpu() - cpu;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu;
    for thread in threads {
        let (latencies, wakes) = thread.join().unwrap();
        into.latencies.merge(latencies);
        into.sessions += wakes;
    }
    into.elapsed += elapsed;
    into.server_cpu += cpu;
    into.client_cpu += client_cpu;
    into.errors += errors.load(Ordering::Relaxed);
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "-".into()
    }
}

fn main() {
    let options = options();
    // Before any pinning, which would make this process see one CPU.
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    support::raise_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let ours_path = dir.path().join("ours");
    let theirs_path: PathBuf = dir.path().join("dovecot");
    let started = Instant::now();
    let users = maildir::build(&ours_path, USERS, MESSAGES, MESSAGE_SIZE, UNSEEN);
    eprintln!(
        "built {USERS} users x {MESSAGES} messages of {MESSAGE_SIZE} octets in {:.1?}",
        started.elapsed()
    );
    support::copy_tree(&ours_path, &theirs_path);

    let mut tuning = support::dovecot_tuning("imap-login");
    if options.dovecot_reuse {
        tuning.push_str("service imap {\n  service_count = 100\n  process_min_avail = 4\n}\n");
    }
    let Some(dovecot) = dovecot::Dovecot::start_with(&theirs_path, &tuning) else {
        eprintln!("Dovecot is not installed: nothing to compare with");
        return;
    };
    eprintln!(
        "Dovecot imap-login service_count = {}, imap service_count = {}, mail_fsync = {}",
        support::dovecot_setting(dovecot.conf_path(), "service/imap-login/service_count"),
        support::dovecot_setting(dovecot.conf_path(), "service/imap/service_count"),
        support::dovecot_setting(dovecot.conf_path(), "mail_fsync")
    );
    let ours = Serve::start(
        &ours_path,
        &["serve-imap"],
        20_000,
        &dir.path().join("serve-imap.log"),
    );
    let dovecot_addr: SocketAddr = ([127, 0, 0, 1], dovecot.imap_port).into();
    let group = dovecot.master_pid();
    if options.pin {
        support::pin_group(group, 0);
        pin(ours.pid(), 0);
        pin(std::process::id(), 1);
    }
    let servers: [(&str, SocketAddr, &Path); 2] = [
        ("serve-imap", ours.addr, &ours_path),
        ("Dovecot 2.3", dovecot_addr, &theirs_path),
    ];
    let server_cpu = |index: usize| -> f64 {
        if index == 0 {
            cpu_seconds(ours.pid())
        } else {
            group_cpu_seconds(group)
        }
    };

    println!(
        "imap_load: {USERS} users x {MESSAGES} messages of {MESSAGE_SIZE} octets{}{}; {nproc} CPUs ({}), load average {} at the start",
        if options.pin {
            ", servers pinned to CPU 0 and clients to CPU 1"
        } else {
            ""
        },
        if options.dovecot_reuse {
            ", Dovecot reusing imap processes"
        } else {
            ""
        },
        support::cpu_model(),
        support::load_average()
    );

    if options.sessions {
        let appended: [Appended; 2] =
            std::array::from_fn(|_| Arc::new((0..USERS).map(|_| Mutex::new(0)).collect()));
        // Warm up both: Dovecot builds its index files at the first login of each user, and
        // the first session of each user marks the 10 unseen messages seen.
        for (index, (_, addr, _)) in servers.iter().enumerate() {
            let mut scratch = Measured::default();
            sessions_round(
                *addr,
                &users,
                USERS,
                &appended[index],
                Duration::from_secs(2),
                &mut scratch,
            );
        }
        let mut measured: [Measured; 2] = Default::default();
        let round = Duration::from_secs_f64(options.seconds / options.rounds as f64);
        for r in 0..options.rounds {
            eprintln!("sessions: round {} of {}", r + 1, options.rounds);
            for (index, (_, addr, _)) in servers.iter().enumerate() {
                let cpu = server_cpu(index);
                let m = &mut measured[index];
                sessions_round(*addr, &users, options.clients, &appended[index], round, m);
                m.server_cpu += server_cpu(index) - cpu;
            }
        }
        for m in &mut measured {
            m.latencies.sort();
        }
        println!();
        println!(
            "sessions: {} clients, {:.0} s per server in {} alternating rounds; load average {} at the end",
            options.clients,
            options.seconds,
            options.rounds,
            support::load_average()
        );
        println!();
        println!("| server | sessions/s | MB/s | p50 session | p99 session | server CPU per session | load generator CPU per session | failed sessions |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (index, (name, _, _)) in servers.iter().enumerate() {
            let m = &measured[index];
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms | {} |",
                m.per_second(),
                m.megabytes_per_second(),
                m.latencies.ms("session", 0.5),
                m.latencies.ms("session", 0.99),
                m.cpu_ms_per_session(),
                m.client_cpu * 1e3 / m.sessions as f64,
                m.errors
            );
        }
        let [o, d] = &measured;
        println!(
            "| **serve-imap / Dovecot** | **{}** | **{}** | **{}** | **{}** | **{}** | | |",
            ratio(o.per_second(), d.per_second()),
            ratio(o.megabytes_per_second(), d.megabytes_per_second()),
            ratio(
                o.latencies.ms("session", 0.5),
                d.latencies.ms("session", 0.5)
            ),
            ratio(
                o.latencies.ms("session", 0.99),
                d.latencies.ms("session", 0.99)
            ),
            ratio(o.cpu_ms_per_session(), d.cpu_ms_per_session()),
        );
        println!();
        println!(
            "| command | serve-imap p50 | serve-imap p99 | Dovecot p50 | Dovecot p99 | p99 ratio |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for name in o.latencies.per_command.keys().filter(|n| **n != "session") {
            println!(
                "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
                o.latencies.ms(name, 0.5),
                o.latencies.ms(name, 0.99),
                d.latencies.ms(name, 0.5),
                d.latencies.ms(name, 0.99),
                ratio(o.latencies.ms(name, 0.99), d.latencies.ms(name, 0.99)),
            );
        }
        println!();
        println!("Where the time went: mean ms per session in each command (the 100 `UID FETCH`es summed), for the middle sessions (p40 to p60) and the slowest 1%; \"between commands\" is the load generator's own time.");
        println!();
        println!("| in | serve-imap p40-p60 | serve-imap slowest 1% | Dovecot p40-p60 | Dovecot slowest 1% |");
        println!("|---|---:|---:|---:|---:|");
        let parts = [o, d].map(|m| {
            (
                m.latencies.sessions_between(0.4, 0.6),
                m.latencies.sessions_between(0.99, 1.0),
            )
        });
        // In session order: the commands of the session that ran the most kinds of them (one
        // with no unseen message to mark skips a STORE).
        let mut names: Vec<&str> = o
            .latencies
            .sessions
            .iter()
            .max_by_key(|s| s.commands.len())
            .map(|s| s.commands.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        names.extend(["", "session"]);
        for name in names {
            let label = match name {
                "" => "between commands",
                "session" => "**whole session**",
                name => name,
            };
            println!(
                "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
                mean_ms(parts[0].0, name),
                mean_ms(parts[0].1, name),
                mean_ms(parts[1].0, name),
                mean_ms(parts[1].1, name),
            );
        }
        for (index, (name, _, _)) in servers.iter().enumerate() {
            let slowest = parts[index].1;
            let early =
                |sessions: &[SessionRecord]| sessions.iter().filter(|s| s.into_round < 0.1).count();
            let all = &measured[index].latencies.sessions;
            println!(
                "\n{name}: the slowest 1% ({} sessions) ran in {} groups of sessions that overlapped in time; {} of them began in the first tenth of a round, where {:.1}% of all sessions began",
                slowest.len(),
                overlapping_groups(slowest),
                early(slowest),
                100.0 * early(all) as f64 / all.len().max(1) as f64
            );
        }
    }

    if options.idle {
        let maildirs: [Vec<PathBuf>; 2] = std::array::from_fn(|index| {
            users
                .iter()
                .map(|(user, _)| servers[index].2.join(user))
                .collect()
        });
        let mut measured: [Measured; 2] = Default::default();
        let rounds = options.rounds.min(3);
        let round = Duration::from_secs_f64(options.idle_seconds / rounds as f64);
        for r in 0..rounds {
            eprintln!("idle: round {} of {rounds}", r + 1);
            for (index, (_, addr, _)) in servers.iter().enumerate() {
                idle_round(
                    *addr,
                    &maildirs[index],
                    &users,
                    options.idle_clients,
                    round,
                    &|| server_cpu(index),
                    &mut measured[index],
                );
            }
        }
        for m in &mut measured {
            m.latencies.sort();
        }
        println!();
        println!(
            "idle: {} IDLE sessions, one delivery pending per user at a time, {:.0} s per server in {rounds} alternating rounds; load average {} at the end",
            options.idle_clients,
            options.idle_seconds,
            support::load_average()
        );
        println!();
        println!("| server | wakes/s | p50 delivery to EXISTS | p99 delivery to EXISTS | p50 DONE+FETCH+IDLE | p99 DONE+FETCH+IDLE | server CPU per wake | failed sessions |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (index, (name, _, _)) in servers.iter().enumerate() {
            let m = &measured[index];
            println!(
                "| {name} | {:.1} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
                m.per_second(),
                m.latencies.ms("wake", 0.5),
                m.latencies.ms("wake", 0.99),
                m.latencies.ms("DONE, FETCH, IDLE", 0.5),
                m.latencies.ms("DONE, FETCH, IDLE", 0.99),
                m.cpu_ms_per_session(),
                m.errors
            );
        }
        let [o, d] = &measured;
        println!(
            "| **serve-imap / Dovecot** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** | |",
            ratio(o.per_second(), d.per_second()),
            ratio(o.latencies.ms("wake", 0.5), d.latencies.ms("wake", 0.5)),
            ratio(o.latencies.ms("wake", 0.99), d.latencies.ms("wake", 0.99)),
            ratio(
                o.latencies.ms("DONE, FETCH, IDLE", 0.5),
                d.latencies.ms("DONE, FETCH, IDLE", 0.5)
            ),
            ratio(
                o.latencies.ms("DONE, FETCH, IDLE", 0.99),
                d.latencies.ms("DONE, FETCH, IDLE", 0.99)
            ),
            ratio(o.cpu_ms_per_session(), d.cpu_ms_per_session()),
        );
    }
    drop(dovecot);
}
