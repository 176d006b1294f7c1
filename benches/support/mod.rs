//! What the benches share: a `mailtool serve-*` server as a child process on a free loopback
//! port, Dovecot tuned alike for every bench that compares with it, CPU time and memory as
//! the kernel reports them in /proc, pinning to a CPU, what a latency percentile means, and
//! the handling of the command line. [`imap`] is a small IMAP client for the load
//! generators; [`maildir`] writes stores fast.
//!
//! The server is the binary cargo built for this bench (so `cargo bench` measures the release
//! build), ready once it has printed the address it listens on, and killed when dropped so
//! that no server outlives a panicking bench. Its stderr goes to a file rather than a pipe:
//! nobody drains a pipe during a long run, and a failed run leaves the log to read.

// Each bench compiles this module as its own and uses only part of it.
#![allow(dead_code)]

#[path = "../../tests/support/dovecot.rs"]
pub mod dovecot;
pub mod imap;
pub mod maildir;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// `mailtool --store STORE serve-... --port 0`, killed on drop.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
}

impl Serve {
    /// Start `mailtool --store STORE SERVE... --port 0` (`serve` such as `["serve-pop"]` or
    /// `["serve-smtp", "--lmtp"]`), allowing `max_connections` in all and from one address
    /// (every bench client comes from 127.0.0.1), with its stderr in `log`, and wait until it
    /// listens.
    pub fn start(store: &Path, serve: &[&str], max_connections: usize, log: &Path) -> Serve {
        let limit = max_connections.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailtool"))
            .arg("--store")
            .arg(store)
            .args(serve)
            .args(["--port", "0"])
            .args([
                "--max-connections",
                &limit,
                "--max-connections-per-ip",
                &limit,
            ])
            .stdout(Stdio::piped())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}'s first line is {line:?}, not `listening on ADDR:PORT` (its log: {})",
                    serve.join(" "),
                    log.display()
                )
            });
        Serve { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// The most resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM")
    }

    /// Stop the server as an operator would (SIGTERM) and wait for its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child, which is not reaped before this wait.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory (VmRSS) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS")
}

/// A `kB` field of /proc/PID/status, such as `VmRSS`.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The value at quantile `p` (0.0 to 1.0) of ascending `sorted`, the nearest rank rounded,
/// so that both benches mean the same by "p99"; `None` when there is no value.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[(last as f64 * p).round() as usize])
}

/// A bench's command line, read an option at a time: `--help` prints the usage and exits,
/// the `--bench` that cargo passes to every bench is skipped, and a missing or malformed
/// value or an unknown option ends the run with the usage (status 2), rather than starting a
/// long run with defaults.
pub struct Args {
    args: std::iter::Skip<std::env::Args>,
    usage: &'static str,
}

impl Args {
    pub fn new(usage: &'static str) -> Args {
        Args {
            args: std::env::args().skip(1),
            usage,
        }
    }

    /// The next option given.
    pub fn next_option(&mut self) -> Option<String> {
        loop {
            let arg = self.args.next()?;
            match arg.as_str() {
                "--help" | "-h" => {
                    println!("usage: {}", self.usage);
                    std::process::exit(0);
                }
                "--bench" => {}
                _ => return Some(arg),
            }
        }
    }

    /// The value after option `name`, parsed.
    pub fn value<T: std::str::FromStr>(&mut self, name: &str) -> T {
        // cargo's `--bench` comes last: after a last option it means the value is missing.
        match self.args.next().filter(|value| value != "--bench") {
            Some(value) => value
                .parse()
                .unwrap_or_else(|_| self.error(&format!("{name} does not take {value:?}"))),
            None => self.error(&format!("{name} needs a value")),
        }
    }

    /// `arg` is no option of this bench.
    pub fn unknown(&self, arg: &str) -> ! {
        self.error(&format!("unknown option {arg}"))
    }

    pub fn error(&self, what: &str) -> ! {
        eprintln!("error: {what} (usage: {})", self.usage);
        std::process::exit(2)
    }
}

/// The peak RSS of a process while something runs, sampled every 5 ms from /proc (VmHWM
/// would hold the peak of the whole life of the process, not of this stretch).
pub struct RssSampler {
    before: u64,
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RssSampler {
    /// Start sampling process `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let before = rss_kib(pid);
        let peak = Arc::new(AtomicU64::new(before));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, done) = (peak.clone(), done.clone());
            thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler {
            before,
            peak,
            done,
            thread,
        }
    }

    /// Stop; returns the RSS at the start and the peak since, in KiB.
    pub fn stop(self) -> (u64, u64) {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        (self.before, self.peak.load(Ordering::Relaxed))
    }
}

/// CPU time (user + system) of a process, all its threads and its reaped children, in
/// seconds; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, tail)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // Fields 14-17 of stat(5): utime stime cutime cstime; `tail` starts at field 3.
    let ticks: f64 = tail
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Live processes of process group `pgid` (a Dovecot's or Postfix's master and what it forked).
pub fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, tail) = s.rsplit_once(')')?;
                    tail.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

/// The command name (`comm`) of process `pid`.
pub fn process_name(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// CPU seconds of every process in a process group (Dovecot's master and all it forked;
/// mail processes that already exited count through the master's reaped-children times).
pub fn group_cpu_seconds(pgid: u32) -> f64 {
    group_pids(pgid).into_iter().map(cpu_seconds).sum()
}

/// Bind every thread of process `pid` to one CPU (`taskset -a`).
pub fn pin(pid: u32, cpu: usize) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset (util-linux) runs");
    assert!(status.success(), "taskset could not pin process {pid}");
}

/// Pin every process of Dovecot's group (and, through inheritance, the ones it forks later)
/// to `cpu`.
pub fn pin_group(pgid: u32, cpu: usize) {
    for pid in group_pids(pgid) {
        pin(pid, cpu);
    }
}

/// Raise the soft limit of open files to the hard one; returns the new soft limit.
pub fn raise_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// The CPU's model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1-minute load average, as the reports print it next to their figures.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `cp -a FROM TO`.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The settings that make Dovecot as fast as its documentation advises for many short
/// sessions, shared by every bench that compares with it: login processes that serve many
/// connections (`service_count = 0`, "high-performance mode"), and process and client
/// limits well above the bench's concurrency. `mail_fsync = optimized` is Dovecot's default,
/// written out: it syncs a saved message before it is visible, as mailtool's delivery and
/// APPEND do.
pub fn dovecot_tuning(login_service: &str) -> String {
    format!(
        "service {login_service} {{\n  service_count = 0\n}}\n\
         default_process_limit = 1024\ndefault_client_limit = 20000\n\
         mail_fsync = optimized\n"
    )
}

/// A setting as Dovecot reads it from `conf` (`doveconf -h`), to print next to the figures.
pub fn dovecot_setting(conf: &Path, name: &str) -> String {
    Command::new("doveconf")
        .arg("-c")
        .arg(conf)
        .args(["-h", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// ESTABLISHED TCP connections whose local port is `port` (the server's side), from
/// /proc/net/tcp and tcp6.
pub fn established_connections(port: u16) -> usize {
    let local_port = format!(":{port:04X}");
    let mut count = 0;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = fs::read_to_string(path) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 3 && fields[1].ends_with(&local_port) && fields[3] == "01" {
                count += 1;
            }
        }
    }
    count
}
