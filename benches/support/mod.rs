//! What the POP3 benches share: `mailtool serve-pop` as a child process on a free loopback
//! port, its memory as the kernel reports it in /proc, and what a latency percentile means.
//!
//! The server is the binary cargo built for this bench (so `cargo bench` measures the release
//! build), ready once it has printed the address it listens on, and killed when dropped so
//! that no server outlives a panicking bench. Its stderr goes to a file rather than a pipe:
//! nobody drains a pipe during a long run, and a failed run leaves the log to read.

// Each bench compiles this module as its own and uses only part of it.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

/// `mailtool --store STORE serve-pop --port 0`, killed on drop.
pub struct ServePop {
    child: Child,
    pub addr: SocketAddr,
}

impl ServePop {
    /// Start serve-pop on `store`, allowing `max_connections` in all and from one address
    /// (every bench client comes from 127.0.0.1), with its stderr in `log`, and wait until it
    /// listens.
    pub fn start(store: &Path, max_connections: usize, log: &Path) -> ServePop {
        let limit = max_connections.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailtool"))
            .arg("--store")
            .arg(store)
            .args(["serve-pop", "--port", "0"])
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
                    "serve-pop's first line is {line:?}, not `listening on ADDR:PORT` (its log: {})",
                    log.display()
                )
            });
        ServePop { child, addr }
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

impl Drop for ServePop {
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

/// A command-line word no option of the bench matched: `--help` prints `usage` and exits,
/// the `--bench` that cargo passes to every bench is ignored, and anything else is an error,
/// rather than the start of a long run with defaults.
pub fn not_an_option(arg: &str, usage: &str) {
    match arg {
        "--help" | "-h" => {
            println!("usage: {usage}");
            std::process::exit(0);
        }
        "--bench" => {}
        other => {
            eprintln!("error: unknown option {other} (usage: {usage})");
            std::process::exit(2);
        }
    }
}
