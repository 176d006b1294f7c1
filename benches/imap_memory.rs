//! serve-imap's size and memory, with Dovecot's figures beside them where they compare.
//!
//! - **size**: a mailbox of 100,000 messages (2 KiB each, in `cur/`, every other one
//!   `\Seen`), written straight to disk and copied for Dovecot. Each server, cold (first
//!   access: no uidlist, no index) then warm (a second session; a fresh serve-imap process,
//!   so its peak RSS is the session's own, with the uidlist and the page cache warm; Dovecot
//!   with its index), answers SELECT, `FETCH 1:* (FLAGS)` and `UID SEARCH UNSEEN`, each timed
//!   alone; then serve-imap once more in the warm run's process, as a long-running server
//!   answers. Last, each server takes 5 APPENDs of a 2 KiB message into the mailbox,
//!   selected, then 5 more with nothing selected (as a client saves to Sent), then 5 flag
//!   changes of one message each followed by NOOP (as a client marks messages one at a
//!   time), each timed alone (the medians are printed). Memory: serve-imap's RSS growth from before LOGIN to
//!   after SELECT (the per-session state, per message) and its peak; Dovecot's `imap`
//!   process (one per session) the same.
//! - **big**: `UID FETCH 1 BODY.PEEK[]` of one 100 MiB message, and APPEND of one, each with
//!   the server's RSS sampled every 5 ms; the growth must stay under 16 MiB.
//! - **idle**: 10,000 connections logged in with INBOX (100 messages) selected, then idle;
//!   serve-imap's RSS must stay under 150 MiB. The connections are spread over 64 users, whose
//!   sessions share the list of their unchanged INBOX; `--idle-users 10000` gives each its
//!   own mailbox, so that nothing is shared. RSS is read right after the connections are
//!   open, and again after 33 s of quiet (serve-imap's sessions let go of their file names
//!   after 30 s). `--in-idle` has every connection IDLE after its SELECT, as mail clients
//!   wait, so that each session also watches its Maildir and looks at it every 10 s.
//!
//! ```text
//! cargo bench --bench imap_memory -- [--only size|big|idle] [--messages 100000] [--connections 10000] [--idle-messages 100] [--idle-users 64] [--in-idle]
//! ```

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::Store;
use support::imap::{Client, Literals};
use support::{dovecot, maildir, rss_kib, RssSampler, Serve};

struct Options {
    size: bool,
    big: bool,
    idle: bool,
    messages: usize,
    connections: usize,
    idle_messages: usize,
    idle_users: usize,
    in_idle: bool,
}

const USAGE: &str = "cargo bench --bench imap_memory -- [--only size|big|idle] [--messages 100000] [--connections 10000] [--idle-messages 100] [--idle-users 64] [--in-idle]";

fn options() -> Options {
    let mut options = Options {
        size: true,
        big: true,
        idle: true,
        messages: 100_000,
        connections: 10_000,
        idle_messages: 100,
        idle_users: 64,
        in_idle: false,
    };
    let mut args = support::Args::new(USAGE);
    while let Some(arg) = args.next_option() {
        match arg.as_str() {
            "--only" => {
                let only: String = args.value(&arg);
                options.size = only == "size";
                options.big = only == "big";
                options.idle = only == "idle";
                if !(options.size || options.big || options.idle) {
                    args.error(&format!("--only takes size, big or idle, not {only}"));
                }
            }
            "--messages" => options.messages = args.value(&arg),
            "--connections" => options.connections = args.value(&arg),
            "--idle-messages" => options.idle_messages = args.value(&arg),
            "--idle-users" => options.idle_users = args.value(&arg),
            "--in-idle" => options.in_idle = true,
            other => args.unknown(other),
        }
    }
    options
}

fn kib(field: &str, pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Dovecot's `imap` process serving the one session open now.
fn dovecot_imap_pid(group: u32) -> Option<u32> {
    support::group_pids(group)
        .into_iter()
        .filter(|&pid| support::process_name(pid) == "imap")
        .max()
}

/// One size run's figures.
struct SizeRun {
    select: Duration,
    fetch: Duration,
    search: Duration,
    /// RSS growth from before LOGIN to after SELECT, KiB.
    selected_kib: u64,
    /// Peak RSS of the serving process, KiB.
    peak_kib: u64,
}

/// APPENDs of a 2 KiB message to `user`'s mailbox of `messages`, selected or (as a client
/// saves to Sent with INBOX selected) not, each timed alone; returns the median. The
/// messages are expunged again afterwards, untimed.
fn append_run(addr: SocketAddr, user: &str, messages: usize, selected: bool) -> Duration {
    const APPENDS: usize = 5;
    let mut client = Client::login(addr, 1 << 20, user, user).unwrap();
    if selected {
        client.command("SELECT INBOX").unwrap();
    }
    let mut times = Vec::new();
    let mut uids = Vec::new();
    for n in 0..APPENDS {
        let message = maildir::message(1, messages + n, 2048);
        let started = Instant::now();
        let appended = client.append("INBOX", "", &message).unwrap();
        times.push(started.elapsed());
        uids.push(
            appended
                .append_uid()
                .unwrap_or_else(|| panic!("{user}: APPEND without APPENDUID: {appended:?}")),
        );
    }
    if !selected {
        client.command("SELECT INBOX").unwrap();
    }
    let set = uids
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    client
        .command(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"))
        .unwrap();
    client.command(&format!("UID EXPUNGE {set}")).unwrap();
    client.logout().unwrap();
    times.sort();
    times[APPENDS / 2]
}

/// With `user`'s mailbox selected, `UID STORE n +FLAGS (\Flagged)` of one message then NOOP,
/// as a client marks messages one at a time, for 5 messages, each pair timed alone; returns
/// the median. The NOOP is where a server that does not trust its own change lists the
/// mailbox again.
fn flag_run(addr: SocketAddr, user: &str) -> Duration {
    const FLAGS: u64 = 5;
    let mut client = Client::login(addr, 1 << 20, user, user).unwrap();
    client.command("SELECT INBOX").unwrap();
    let mut times = Vec::new();
    for uid in 1..=FLAGS {
        let started = Instant::now();
        client
            .command(&format!("UID STORE {uid} +FLAGS (\\Flagged)"))
            .unwrap();
        client.command("NOOP").unwrap();
        times.push(started.elapsed());
    }
    client.logout().unwrap();
    times.sort();
    times[times.len() / 2]
}

/// SELECT, `FETCH 1:* (FLAGS)`, `UID SEARCH UNSEEN` on `user`'s mailbox of `messages`.
/// `rss` gives (RSS, peak RSS) of the serving process once logged in.
fn size_run(
    addr: SocketAddr,
    user: &str,
    messages: usize,
    before_login: u64,
    rss: &dyn Fn() -> (u64, u64),
) -> SizeRun {
    let mut client = Client::login(addr, 1 << 20, user, user).unwrap();
    let started = Instant::now();
    let selected = client.command("SELECT INBOX").unwrap();
    let select = started.elapsed();
    assert_eq!(
        selected.exists(),
        Some(messages as u64),
        "{user}: SELECT count"
    );
    let selected_kib = rss().0.saturating_sub(before_login);
    let started = Instant::now();
    let flags = client.command("FETCH 1:* (FLAGS)").unwrap();
    let fetch = started.elapsed();
    assert_eq!(flags.fetches().count(), messages, "{user}: FETCH 1:* count");
    let started = Instant::now();
    let unseen = client.command("UID SEARCH UNSEEN").unwrap();
    let search = started.elapsed();
    assert_eq!(unseen.search().len(), messages / 2, "{user}: UNSEEN count");
    let peak_kib = rss().1;
    client.logout().unwrap();
    SizeRun {
        select,
        fetch,
        search,
        selected_kib,
        peak_kib,
    }
}

fn size(dir: &Path, messages: usize) {
    let ours_path = dir.join("size-ours");
    let theirs_path = dir.join("size-dovecot");
    let store = Store::new(&ours_path);
    let user = "huge";
    let maildir = maildir::add_user(&store, user, user);
    let started = Instant::now();
    for n in 0..messages {
        let flags = if n % 2 == 0 { "S" } else { "" };
        maildir::write(&maildir, n, &maildir::message(0, n, 2048), Some(flags));
    }
    support::copy_tree(&ours_path, &theirs_path);
    eprintln!(
        "size: wrote {messages} messages of 2 KiB twice in {:.1?}",
        started.elapsed()
    );

    // Ours: a fresh process per run, so that its peak RSS is the run's; then a second
    // session in the warm run's process, as a long-running server answers (its heap
    // already in place; the peak RSS is then the process's).
    let mut ours = Vec::new();
    let mut ours_append = [Duration::ZERO; 2];
    let mut ours_flag = Duration::ZERO;
    for run in ["cold", "warm"] {
        let server = Serve::start(
            &ours_path,
            &["serve-imap"],
            100,
            &dir.join(format!("size-{run}.log")),
        );
        let before = server.rss_kib();
        let pid = server.pid();
        let rss = || (rss_kib(pid), kib("VmHWM", pid));
        ours.push(size_run(server.addr, user, messages, before, &rss));
        if run == "warm" {
            let before = server.rss_kib();
            ours.push(size_run(server.addr, user, messages, before, &rss));
            // Last, as it changes the mailbox.
            ours_append =
                [true, false].map(|selected| append_run(server.addr, user, messages, selected));
            ours_flag = flag_run(server.addr, user);
        }
    }
    // Dovecot: one `imap` process per session (its default, service_count = 1).
    let tuning = support::dovecot_tuning("imap-login");
    let Some(dovecot) = dovecot::Dovecot::start_with(&theirs_path, &tuning) else {
        eprintln!("Dovecot is not installed: nothing to compare with");
        return;
    };
    let addr: SocketAddr = ([127, 0, 0, 1], dovecot.imap_port).into();
    let group = dovecot.master_pid();
    let mut theirs = Vec::new();
    for _ in ["cold", "warm"] {
        let imap_rss = || {
            let pid = dovecot_imap_pid(group).expect("Dovecot's imap process");
            (kib("VmRSS", pid), kib("VmHWM", pid))
        };
        // Dovecot's imap process starts at LOGIN: its RSS before SELECT is measured inside.
        let client = Client::login(addr, 1 << 20, user, user).unwrap();
        let before = imap_rss().0;
        client.logout().unwrap();
        thread::sleep(Duration::from_millis(100));
        theirs.push(size_run(addr, user, messages, before, &imap_rss));
        thread::sleep(Duration::from_millis(100));
    }
    let theirs_append = [true, false].map(|selected| append_run(addr, user, messages, selected));
    let theirs_flag = flag_run(addr, user);
    drop(dovecot);

    println!();
    println!(
        "size: one mailbox of {messages} messages (2 KiB, half \\Seen); each command timed alone; load average {}",
        support::load_average()
    );
    println!();
    println!("| server, run | SELECT | FETCH 1:* (FLAGS) | UID SEARCH UNSEEN | all three | RSS growth to SELECTed | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let total = |r: &SizeRun| r.select + r.fetch + r.search;
    for (name, runs) in [("serve-imap", &ours), ("Dovecot 2.3", &theirs)] {
        let names = ["cold", "warm", "warm, second session in that process"];
        for (run, r) in names.iter().zip(runs.iter()) {
            println!(
                "| {name}, {run} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MiB | {:.1} MiB |",
                r.select.as_secs_f64() * 1e3,
                r.fetch.as_secs_f64() * 1e3,
                r.search.as_secs_f64() * 1e3,
                total(r).as_secs_f64() * 1e3,
                r.selected_kib as f64 / 1024.0,
                r.peak_kib as f64 / 1024.0
            );
        }
    }
    let ratio_row = |label: &str, o: &SizeRun, d: &SizeRun| {
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "| **{label}** | **{:.2}x** | **{:.2}x** | **{:.2}x** | **{:.2}x** | | |",
            ratio(o.select, d.select),
            ratio(o.fetch, d.fetch),
            ratio(o.search, d.search),
            ratio(total(o), total(d)),
        );
    };
    ratio_row("serve-imap warm / Dovecot warm", &ours[1], &theirs[1]);
    ratio_row(
        "serve-imap warm, second session / Dovecot warm",
        &ours[2],
        &theirs[1],
    );
    ratio_row("serve-imap cold / Dovecot cold", &ours[0], &theirs[0]);
    let (o, d) = (&ours[1], &theirs[1]);
    println!();
    for (i, how) in ["selected", "not selected"].iter().enumerate() {
        println!(
            "APPEND of a 2 KiB message to that mailbox, {how} (median of 5, after the runs above): serve-imap {:.1} ms, Dovecot {:.1} ms: **{:.2}x**",
            ours_append[i].as_secs_f64() * 1e3,
            theirs_append[i].as_secs_f64() * 1e3,
            ours_append[i].as_secs_f64() / theirs_append[i].as_secs_f64()
        );
    }
    println!(
        "STORE +FLAGS (\\Flagged) of one message, then NOOP, selected (median of 5): serve-imap {:.1} ms, Dovecot {:.1} ms: **{:.2}x**",
        ours_flag.as_secs_f64() * 1e3,
        theirs_flag.as_secs_f64() * 1e3,
        ours_flag.as_secs_f64() / theirs_flag.as_secs_f64()
    );
    println!(
        "per message selected: serve-imap {:.0} B, Dovecot {:.0} B (RSS growth from before LOGIN to after SELECT, warm)",
        o.selected_kib as f64 * 1024.0 / messages as f64,
        d.selected_kib as f64 * 1024.0 / messages as f64
    );
}

/// Sample `pid`'s RSS every 5 ms while `f` runs; returns (RSS before, peak, f's result).
fn sampled<T>(pid: u32, f: impl FnOnce() -> T) -> (u64, u64, T) {
    let sampler = RssSampler::start(pid);
    let result = f();
    let (before, peak) = sampler.stop();
    (before, peak, result)
}

/// An endless source of lines of 99 `y` and a line end.
#[derive(Default)]
struct Lines {
    at: usize,
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for b in buf.iter_mut() {
            *b = if self.at % 100 == 99 { b'\n' } else { b'y' };
            self.at += 1;
        }
        Ok(buf.len())
    }
}

fn big(dir: &Path) {
    const SIZE: u64 = 100 * 1024 * 1024;
    let path = dir.join("big");
    let store = Store::new(&path);
    let maildir = maildir::add_user(&store, "big", "big");
    let mut message = b"Subject: big\n\n".to_vec();
    Lines::default()
        .take(SIZE)
        .read_to_end(&mut message)
        .unwrap();
    maildir::write(&maildir, 0, &message, Some(""));
    drop(message);
    let server = Serve::start(&path, &["serve-imap"], 100, &dir.join("big.log"));
    let mut client = Client::login(server.addr, 64 * 1024, "big", "big").unwrap();
    client.command("SELECT INBOX").unwrap();
    let (before, peak, elapsed) = sampled(server.pid(), || {
        let started = Instant::now();
        let received = client.received;
        let response = client
            .command_with("UID FETCH 1 BODY.PEEK[]", Literals::Discard)
            .unwrap();
        assert_eq!(response.fetches().count(), 1);
        assert!(client.received - received > SIZE, "the whole message came");
        started.elapsed()
    });
    println!();
    println!(
        "big: UID FETCH of one 100 MiB message: {:.0} MB/s, serve-imap RSS {before} KiB before, peak {peak} KiB: growth {:.1} MiB (target < 16 MiB)",
        SIZE as f64 / 1e6 / elapsed.as_secs_f64(),
        (peak - before) as f64 / 1024.0
    );
    let (before, peak, elapsed) = sampled(server.pid(), || {
        let started = Instant::now();
        let response = client
            .append_from("INBOX", "", SIZE, &mut Lines::default())
            .unwrap();
        assert!(response.append_uid().is_some());
        started.elapsed()
    });
    println!(
        "big: APPEND of one 100 MiB message: {:.0} MB/s, serve-imap RSS {before} KiB before, peak {peak} KiB: growth {:.1} MiB (target < 16 MiB)",
        SIZE as f64 / 1e6 / elapsed.as_secs_f64(),
        (peak - before) as f64 / 1024.0
    );
    client.logout().unwrap();
}

fn idle(dir: &Path, connections: usize, messages: usize, users: usize, in_idle: bool) {
    let file_limit = support::raise_file_limit();
    if file_limit < connections as u64 + 100 {
        println!("idle: skipped (file limit {file_limit} < {connections}; raise ulimit -n)");
        return;
    }
    let path = dir.join("idle");
    let built = Instant::now();
    let users = maildir::build(&path, users.max(1), messages, 4096, 10.min(messages));
    println!(
        "idle: built {} users x {messages} messages in {:.1?}",
        users.len(),
        built.elapsed()
    );
    let server = Serve::start(
        &path,
        &["serve-imap"],
        connections + 100,
        &dir.join("idle.log"),
    );
    // Every mailbox once, so that the uidlists exist and the 10,000 SELECTs only read.
    for (user, password) in &users {
        let mut client = Client::login(server.addr, 4096, user, password).unwrap();
        client.command("SELECT INBOX").unwrap();
        client.logout().unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_kib();
    let started = Instant::now();
    let mut open = Vec::with_capacity(connections);
    for i in 0..connections {
        let (user, password) = &users[i % users.len()];
        let connected = Client::login(server.addr, 1024, user, password).and_then(|mut c| {
            c.command("SELECT INBOX")?;
            let idle = if in_idle { Some(c.idle()?) } else { None };
            Ok((c, idle))
        });
        match connected {
            Ok(client) => open.push(client),
            Err(error) => {
                println!("idle: stopped at {} connections ({error})", open.len());
                break;
            }
        }
    }
    let opened = started.elapsed();
    thread::sleep(Duration::from_millis(500));
    let with = server.rss_kib();
    println!();
    println!(
        "idle: {} connections over {} users logged in with INBOX ({messages} messages) selected{}, opened in {:.1?}: serve-imap RSS {:.1} MiB ({:.1} MiB before; {:.1} KiB per connection; target < 150 MiB)",
        open.len(),
        users.len(),
        if in_idle { ", in IDLE" } else { "" },
        opened,
        with as f64 / 1024.0,
        before as f64 / 1024.0,
        (with - before) as f64 / open.len().max(1) as f64
    );
    // serve-imap lets a session quiet for 30 s drop its file names (to list them again when
    // the client speaks): the memory of connections that stay idle.
    thread::sleep(Duration::from_secs(33));
    let quiet = server.rss_kib();
    println!(
        "idle: after 33 s of quiet: serve-imap RSS {:.1} MiB ({:.1} KiB per connection; target < 150 MiB)",
        quiet as f64 / 1024.0,
        quiet.saturating_sub(before) as f64 / open.len().max(1) as f64
    );
    // Still alive: one NOOP on a few of them (after DONE, in IDLE).
    for (client, idle) in open.iter_mut().step_by(1000) {
        if let Some(tag) = idle.take() {
            client.done(&tag).unwrap();
        }
        client.command("NOOP").unwrap();
    }
}

fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "imap_memory: {} CPUs ({}), load average {} at the start",
        thread::available_parallelism().map_or(0, |n| n.get()),
        support::cpu_model(),
        support::load_average()
    );
    if options.size {
        size(dir.path(), options.messages);
    }
    if options.big {
        big(dir.path());
    }
    if options.idle {
        idle(
            dir.path(),
            options.connections,
            options.idle_messages,
            options.idle_users,
            options.in_idle,
        );
    }
}
