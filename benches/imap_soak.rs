//! Soak: many concurrent IMAP sessions against one `serve-imap`, with deliveries, checking
//! every listing against a model of each mailbox, then the store.
//!
//! `--users` users, each with `--messages` messages and its own client thread, all started
//! within `--ramp-up` seconds, so about `--users` sessions are open at any moment. Most
//! threads loop over the mail-client session of `imap_load` (LOGIN, SELECT, FETCH 1:* with
//! each message's Message-ID, UID FETCH of a few bodies compared byte for byte, STORE \Seen,
//! APPEND, UID EXPUNGE of the oldest, LOGOUT); one in `--idle-every` IDLEs instead, woken by
//! deliveries. A delivery agent (the store's synced delivery, as `mbox deliver`) feeds
//! random users all along.
//!
//! Each user's model says which messages must be there (delivered or appended, not
//! expunged) and which may be (in flight), and the UID each one was first seen with. Every
//! listing must hold each message once, all that must be there, nothing that may not, and
//! every UID as first seen. Afterwards, with the server stopped, every mailbox on disk must
//! hold exactly the model's messages, byte for byte, under the same UIDs in
//! `dovecot-uidlist`.
//!
//! ```text
//! cargo bench --bench imap_soak -- [--users 200] [--seconds 20] [--messages 20] [--idle-every 10] [--ramp-up 2]
//! cargo bench --bench imap_soak -- --users 1000 --seconds 60          # the full run
//! ```
//!
//! It exits non-zero when a check fails, so it can gate a release.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use support::imap::{Client, Response};
use support::{maildir, Serve};

struct Options {
    users: usize,
    seconds: u64,
    messages: usize,
    idle_every: usize,
    ramp_up: f64,
}

const USAGE: &str = "cargo bench --bench imap_soak -- [--users 200] [--seconds 20] [--messages 20] [--idle-every 10] [--ramp-up 2]";

fn options() -> Options {
    let mut options = Options {
        users: 200,
        seconds: 20,
        messages: 20,
        idle_every: 10,
        ramp_up: 2.0,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--users" => options.users = args.value(&arg),
            "--seconds" => options.seconds = args.value(&arg),
            "--messages" => options.messages = args.value(&arg),
            "--idle-every" => options.idle_every = args.value(&arg),
            "--ramp-up" => options.ramp_up = args.value(&arg),
            other => args.unknown(other),
        }
    }
    assert!(options.users > 0 && options.messages > 1 && options.idle_every > 0);
    options
}

/// Message `n` of `user`: its size varies with `n`.
fn message(user: usize, n: usize) -> Vec<u8> {
    maildir::message(user, n, 600 + (n * 397) % 6000)
}

/// The message number in a Message-ID `<user.n@bench.example.org>`.
fn number_of(header: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(header).ok()?;
    let id = text.split('<').nth(1)?.split('@').next()?;
    id.split('.').nth(1)?.parse().ok()
}

/// One mailbox as the clients and the delivery agent changed it.
#[derive(Default)]
struct Model {
    /// Messages that must be listed: delivered or appended, and not being expunged.
    required: BTreeSet<usize>,
    /// Messages that may be listed: `required` and those in flight.
    allowed: BTreeSet<usize>,
    /// The UID each message was first seen with.
    uids: HashMap<usize, u64>,
    next: usize,
}

struct User {
    name: String,
    password: String,
    model: Mutex<Model>,
}

/// Why a session went wrong.
enum Failure {
    Connect(String),
    Protocol(String),
    /// A listing that breaks the model: lost, duplicated or unexpected messages, a UID that
    /// changed, a body that differs.
    Lost(String),
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::Protocol(error.to_string())
    }
}

/// (UID, message number, seen) per listed message, in sequence order.
type Listing = Vec<(u64, usize, bool)>;

/// Check a FETCH listing (`UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]`) against the
/// model: `required` was read before the session looked, `allowed` after.
fn check_listing(
    user: &User,
    index: usize,
    response: &Response,
    required: &BTreeSet<usize>,
    whole: bool,
) -> Result<Listing, Failure> {
    let mut listing = Listing::new();
    for item in response.fetches() {
        let uid = item
            .number("UID")
            .ok_or_else(|| Failure::Protocol(format!("{}: FETCH without UID", user.name)))?;
        let n = item
            .literals
            .first()
            .and_then(|header| number_of(header))
            .ok_or_else(|| {
                Failure::Protocol(format!(
                    "{}: FETCH without Message-ID: {}",
                    user.name,
                    String::from_utf8_lossy(&item.text)
                ))
            })?;
        let seen = item
            .flags()
            .is_some_and(|f| support::imap::find(f, b"\\Seen").is_some());
        listing.push((uid, n, seen));
    }
    if listing.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Failure::Lost(format!("{}: UIDs not ascending", user.name)));
    }
    let listed: BTreeSet<usize> = listing.iter().map(|m| m.1).collect();
    if listed.len() != listing.len() {
        return Err(Failure::Lost(format!(
            "{}: a message listed twice",
            user.name
        )));
    }
    let mut model = user.model.lock().unwrap();
    if whole {
        if let Some(lost) = required.difference(&listed).next() {
            return Err(Failure::Lost(format!(
                "{}: message {lost} is missing",
                user.name
            )));
        }
    }
    if let Some(extra) = listed.difference(&model.allowed).next() {
        return Err(Failure::Lost(format!(
            "{}: message {extra} listed, but never delivered or already expunged",
            user.name
        )));
    }
    for &(uid, n, _) in &listing {
        let first = *model.uids.entry(n).or_insert(uid);
        if first != uid {
            return Err(Failure::Lost(format!(
                "{}: message {n} had UID {first}, now {uid}",
                user.name
            )));
        }
    }
    let _ = index;
    Ok(listing)
}

const LISTING: &str = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])";

fn connect(addr: SocketAddr, user: &User) -> Result<Client, Failure> {
    let mut client =
        Client::connect(addr, 16 * 1024).map_err(|e| Failure::Connect(e.to_string()))?;
    client.command(&format!("LOGIN {} {}", user.name, user.password))?;
    Ok(client)
}

/// One mail-client session (see the module documentation).
fn session(
    addr: SocketAddr,
    index: usize,
    user: &User,
    messages: usize,
    seed: &mut u64,
) -> Result<(), Failure> {
    let required = user.model.lock().unwrap().required.clone();
    let mut client = connect(addr, user)?;
    client.command("SELECT INBOX")?;
    let listing = client.command(&format!("FETCH 1:* {LISTING}"))?;
    let listing = check_listing(user, index, &listing, &required, true)?;
    for _ in 0..3 {
        if listing.is_empty() {
            break;
        }
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (uid, n, _) = listing[(*seed >> 33) as usize % listing.len()];
        let body = client.command(&format!("UID FETCH {uid} BODY.PEEK[]"))?;
        let got: Vec<u8> = body
            .fetches()
            .find_map(|f| f.literals.first())
            .map(|b| b.iter().copied().filter(|&c| c != b'\r').collect())
            .unwrap_or_default();
        if got != message(index, n) {
            return Err(Failure::Lost(format!(
                "{}: the body of message {n} (UID {uid}) differs",
                user.name
            )));
        }
    }
    let unseen: Vec<String> = listing
        .iter()
        .filter(|m| !m.2)
        .map(|m| m.0.to_string())
        .collect();
    if !unseen.is_empty() {
        client.command(&format!("UID STORE {} +FLAGS (\\Seen)", unseen.join(",")))?;
    }
    let n = {
        let mut model = user.model.lock().unwrap();
        model.next += 1;
        let n = model.next;
        model.allowed.insert(n);
        n
    };
    let appended = client.append("INBOX", "", &message(index, n))?;
    let uid = appended
        .append_uid()
        .ok_or_else(|| Failure::Protocol(format!("{}: APPEND without APPENDUID", user.name)))?;
    {
        let mut model = user.model.lock().unwrap();
        model.required.insert(n);
        if let Some(first) = model.uids.insert(n, uid) {
            if first != uid {
                return Err(Failure::Lost(format!(
                    "{}: appended message {n} listed with UID {first}, APPENDUID says {uid}",
                    user.name
                )));
            }
        }
    }
    if listing.len() >= messages {
        let (oldest, n, _) = listing[0];
        user.model.lock().unwrap().required.remove(&n);
        client.command(&format!("UID STORE {oldest} +FLAGS.SILENT (\\Deleted)"))?;
        let expunged = client.command(&format!("UID EXPUNGE {oldest}"))?;
        if expunged.expunged().len() != 1 {
            return Err(Failure::Protocol(format!(
                "{}: UID EXPUNGE {oldest} expunged {:?}",
                user.name,
                expunged.expunged()
            )));
        }
        user.model.lock().unwrap().allowed.remove(&n);
    }
    client.logout()?;
    Ok(())
}

/// One IDLE session: list, then IDLE and list what is new, five times.
fn idle_session(
    addr: SocketAddr,
    index: usize,
    user: &User,
    stop: &AtomicBool,
) -> Result<u64, Failure> {
    let required = user.model.lock().unwrap().required.clone();
    let mut client = connect(addr, user)?;
    client.command("SELECT INBOX")?;
    let listing = client.command(&format!("FETCH 1:* {LISTING}"))?;
    let listing = check_listing(user, index, &listing, &required, true)?;
    let mut last_uid = listing.last().map_or(0, |m| m.0);
    let mut wakes = 0;
    for _ in 0..5 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let tag = client.idle()?;
        // Short reads only once IDLE is on: the `+` itself may take a while under load.
        client.set_read_timeout(Some(Duration::from_millis(200)))?;
        let started = Instant::now();
        let mut woken = false;
        while !woken && started.elapsed() < Duration::from_secs(5) && !stop.load(Ordering::Relaxed)
        {
            if let Some(item) = client.next_untagged()? {
                woken = item.numbered().is_some_and(|(_, w)| w == b"EXISTS");
            }
        }
        client.set_read_timeout(Some(Duration::from_secs(60)))?;
        client.done(&tag)?;
        if woken {
            wakes += 1;
            let fresh = client.command(&format!("UID FETCH {}:* {LISTING}", last_uid + 1))?;
            let fresh = check_listing(user, index, &fresh, &BTreeSet::new(), false)?;
            // `n:*` always names the last message, even when it is older than n.
            last_uid = last_uid.max(fresh.iter().map(|m| m.0).max().unwrap_or(0));
        }
    }
    client.logout()?;
    Ok(wakes)
}

/// Every message file of `maildir` as (message number, base name, bytes).
fn on_disk(maildir: &Path) -> Vec<(usize, String, Vec<u8>)> {
    let mut all = Vec::new();
    for sub in ["new", "cur"] {
        for file in fs::read_dir(maildir.join(sub)).unwrap() {
            let file = file.unwrap();
            let name = file.file_name().into_string().unwrap();
            let bytes = fs::read(file.path()).unwrap();
            let header = bytes
                .split(|&b| b == b'\n')
                .find(|l| l.starts_with(b"Message-ID:"))
                .unwrap_or_default()
                .to_vec();
            let n = number_of(&header).unwrap_or(usize::MAX);
            all.push((n, name.split(':').next().unwrap().to_owned(), bytes));
        }
    }
    all
}

/// `dovecot-uidlist` as base name to UID, and whether any UID appears twice.
fn uidlist(maildir: &Path) -> (HashMap<String, u64>, bool) {
    let text = fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap_or_default();
    let mut map = HashMap::new();
    let mut uids = BTreeSet::new();
    let mut twice = false;
    for line in text.lines().skip(1) {
        let Some((head, base)) = line.split_once(" :") else {
            continue;
        };
        let uid: u64 = head.split(' ').next().unwrap().parse().unwrap();
        twice |= !uids.insert(uid);
        map.insert(base.to_owned(), uid);
    }
    (map, twice)
}

fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let store = Store::new(&store_path);
    let started = Instant::now();
    let users: Arc<Vec<User>> = Arc::new(
        (0..options.users)
            .map(|index| {
                let (name, password) = (format!("user{index}"), format!("pass-{index}"));
                let path = maildir::add_user(&store, &name, &password);
                let mut model = Model::default();
                for n in 0..options.messages {
                    let flags = if n + 2 >= options.messages { "" } else { "S" };
                    maildir::write(&path, n, &message(index, n), Some(flags));
                    model.required.insert(n);
                    model.allowed.insert(n);
                }
                model.next = options.messages;
                User {
                    name,
                    password,
                    model: Mutex::new(model),
                }
            })
            .collect(),
    );
    eprintln!(
        "built {} users x {} messages in {:.1?}",
        options.users,
        options.messages,
        started.elapsed()
    );
    support::raise_file_limit();
    let log = dir.path().join("serve-imap.log");
    let mut server = Serve::start(&store_path, &["serve-imap"], options.users * 2 + 100, &log);
    let rss_idle = server.rss_kib();
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    const SESSIONS: usize = 0;
    const IDLES: usize = 1;
    const WAKES: usize = 2;
    const PROTOCOL: usize = 3;
    const CONNECT: usize = 4;
    const LOST: usize = 5;
    let barrier = Arc::new(Barrier::new(options.users + 2));
    let clients: Vec<_> = (0..options.users)
        .map(|index| {
            let (stop, counters, users, barrier) = (
                stop.clone(),
                counters.clone(),
                users.clone(),
                barrier.clone(),
            );
            let delay =
                Duration::from_secs_f64(options.ramp_up * index as f64 / options.users as f64);
            let idle = index % options.idle_every == options.idle_every - 1;
            let messages = options.messages;
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let user = &users[index];
                    let mut seed = index as u64 + 1;
                    barrier.wait();
                    thread::sleep(delay);
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = if idle {
                            idle_session(addr, index, user, &stop).map(|wakes| {
                                counters[IDLES].fetch_add(1, Ordering::Relaxed);
                                counters[WAKES].fetch_add(wakes, Ordering::Relaxed);
                            })
                        } else {
                            session(addr, index, user, messages, &mut seed).map(|()| {
                                counters[SESSIONS].fetch_add(1, Ordering::Relaxed);
                            })
                        };
                        if let Err(failure) = outcome {
                            let (counter, kind, what) = match failure {
                                Failure::Protocol(what) => (PROTOCOL, "protocol", what),
                                Failure::Lost(what) => (LOST, "lost", what),
                                Failure::Connect(what) => (CONNECT, "connection", what),
                            };
                            if counters[counter].fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("{kind} error: {what}");
                            }
                            // After a failure the model may be off for this user: stop it.
                            return;
                        }
                    }
                })
                .expect("spawn a client thread")
        })
        .collect();

    // The delivery agent: the store's own (synced) delivery, to a random user at a time.
    let deliveries = Arc::new(AtomicU64::new(0));
    let deliverer = {
        let (stop, users, barrier, deliveries) = (
            stop.clone(),
            users.clone(),
            barrier.clone(),
            deliveries.clone(),
        );
        let store = store.clone();
        thread::spawn(move || {
            barrier.wait();
            let mut seed = 7u64;
            while !stop.load(Ordering::Relaxed) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let index = (seed >> 33) as usize % users.len();
                let user = &users[index];
                let n = {
                    let mut model = user.model.lock().unwrap();
                    model.next += 1;
                    let n = model.next;
                    model.allowed.insert(n);
                    n
                };
                let maildir = store
                    .mailbox(&UserName::parse(&user.name).unwrap())
                    .unwrap();
                let mut delivery = maildir.deliver().unwrap();
                std::io::Write::write_all(&mut delivery, &message(index, n)).unwrap();
                delivery.commit().unwrap();
                user.model.lock().unwrap().required.insert(n);
                deliveries.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        })
    };

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
    for client in clients {
        client.join().unwrap();
    }
    deliverer.join().unwrap();
    let elapsed = started.elapsed();
    let (rss_end, hwm) = (server.rss_kib(), server.peak_rss_kib());
    let status = server.terminate();

    // The store, with the server stopped: exactly the model's messages, byte for byte,
    // under the UIDs first seen.
    let mut store_errors = Vec::new();
    let mut total = 0;
    for (index, user) in users.iter().enumerate() {
        let path = store_path.join(&user.name);
        let model = user.model.lock().unwrap();
        let files = on_disk(&path);
        total += files.len();
        let (uidlist, twice) = uidlist(&path);
        if twice {
            store_errors.push(format!(
                "{}: a UID appears twice in dovecot-uidlist",
                user.name
            ));
        }
        let mut found = BTreeMap::new();
        for (n, base, bytes) in &files {
            if found.insert(*n, base).is_some() {
                store_errors.push(format!("{}: message {n} twice on disk", user.name));
            }
            if *n == usize::MAX || bytes != &message(index, *n) {
                store_errors.push(format!("{}: {base} altered", user.name));
            }
            match (model.uids.get(n), uidlist.get(base)) {
                (Some(seen), Some(listed)) if seen != listed => store_errors.push(format!(
                    "{}: message {n} was seen as UID {seen}, dovecot-uidlist says {listed}",
                    user.name
                )),
                _ => {}
            }
        }
        let found: BTreeSet<usize> = found.keys().copied().collect();
        if found != model.required {
            store_errors.push(format!(
                "{}: on disk {} messages, the model {} (missing {:?}, extra {:?})",
                user.name,
                found.len(),
                model.required.len(),
                model
                    .required
                    .difference(&found)
                    .take(5)
                    .collect::<Vec<_>>(),
                found
                    .difference(&model.required)
                    .take(5)
                    .collect::<Vec<_>>()
            ));
        }
    }

    let count = |i: usize| counters[i].load(Ordering::Relaxed);
    open_samples.sort_unstable();
    let median_open = open_samples
        .get(open_samples.len() / 2)
        .copied()
        .unwrap_or(0);
    println!(
        "imap_soak: {} concurrent clients ({} users x {} messages, one in {} IDLEing), started over {} s, for {:.0} s against serve-imap (release), {} CPUs ({}), load average {}",
        options.users,
        options.users,
        options.messages,
        options.idle_every,
        options.ramp_up,
        elapsed.as_secs_f64(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        support::cpu_model(),
        support::load_average()
    );
    println!(
        "sessions: {} mail-client sessions ({:.1}/s), {} IDLE sessions woken {} times, {} deliveries; open connections (median of samples): {median_open}",
        count(SESSIONS),
        count(SESSIONS) as f64 / elapsed.as_secs_f64(),
        count(IDLES),
        count(WAKES),
        deliveries.load(Ordering::Relaxed)
    );
    println!("protocol errors: {}", count(PROTOCOL));
    println!(
        "connections refused, dropped or never greeted: {}",
        count(CONNECT)
    );
    println!(
        "lost, duplicated or unexpected messages, or changed UIDs, seen by clients: {}",
        count(LOST)
    );
    println!(
        "server RSS: {rss_idle} KiB idle, {rss_peak} KiB peak sampled, {rss_end} KiB at the end (VmHWM {hwm} KiB)"
    );
    println!(
        "store after the run: {total} messages in {} mailboxes, {} differences from the model; serve-imap after SIGTERM: {status}",
        users.len(),
        store_errors.len()
    );
    for error in store_errors.iter().take(10) {
        println!("  {error}");
    }
    let ok = count(PROTOCOL) == 0
        && count(CONNECT) == 0
        && count(LOST) == 0
        && store_errors.is_empty()
        && count(SESSIONS) > 0
        && status.success();
    if !ok {
        eprintln!("FAILED (server log: {})", log.display());
        let _ = dir.keep();
        std::process::exit(1);
    }
    println!("OK: zero protocol errors, zero lost or duplicated messages, every UID stable, store as the model says");
}
