//! Test harness: a throwaway Postfix on 127.0.0.1, an MTA upstream of `serve-smtp --lmtp`
//! (as Postfix sits in front of Dovecot's LMTP in real installations) or, for the benches,
//! an MTA delivering into Maildirs itself.
//!
//! Each instance is private: its own `main.cf` and `master.cf` in a temp dir holding the queue
//! and data directories too, a kernel-chosen port for its smtpd, nothing from /etc/postfix
//! but the packaged `postfix-files` that `set-permissions` reads. Nothing can leave the
//! machine: smtpd listens on loopback only, DNS is off, there is no relay host, and every
//! destination other than the test's domains goes to the `error` transport.
//!
//! Postfix logs to syslog by default, which does not run here: without `maillog_file` a
//! failed start prints nothing at all. This harness logs through `postlogd` into
//! `DIR/maillog`, which [`Postfix::maillog`] returns for assertion messages.
//!
//! The master runs as our child with `-d` (foreground, and unlike `-s` or `start-fg` it stays
//! in the process group we gave it), so `Drop` stops it and every daemon it forked with one
//! signal to the group, and the Dovecot harness's watchdog does the same if the test process
//! dies without `Drop`.
//!
//! Postfix's master refuses to run but as root. Without root or without Postfix, tests print
//! why they skip and pass, unless `CI` is set, where that is a broken setup and fails.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dovecot::{exited, free_ports, group_members, spawn_watchdog};

/// smtpd is forked on the first connection: it greets within ~100 ms, more on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The master stops its daemons on SIGTERM within a few ms; then the group gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_millis(500);
/// Ports are picked free and released before the master binds them; retry if one was taken.
const START_ATTEMPTS: usize = 3;
/// The host name Postfix puts in its `Received:` header and its greeting.
pub const HOSTNAME: &str = "mx.postfix.test";

/// Where the instance delivers mail for its own domains.
pub enum Delivery<'a> {
    /// Every recipient in `domains` goes over LMTP to 127.0.0.1:`port`, unchecked at the
    /// SMTP stage (`local_recipient_maps =`), so an unknown user is the LMTP server's to
    /// refuse and Postfix bounces it.
    Lmtp { domains: &'a [&'a str], port: u16 },
    /// Postfix's own virtual(8) delivery agent writes `user@domain` into the Maildir
    /// [`Postfix::maildir`]`(user)`.
    Maildirs {
        domain: &'a str,
        users: &'a [&'a str],
    },
}

/// A running Postfix; dropping it stops every process of it.
#[derive(Debug)]
pub struct Postfix {
    /// smtpd on 127.0.0.1.
    pub smtp_port: u16,
    master: Child,
    watchdog: Option<(Child, ChildStdin)>,
    // Last, so the directory goes only after `Drop::drop` has stopped every process.
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Starts Postfix with `delivery` and `extra_main` appended to the generated `main.cf`
    /// (a parameter given again later wins). `None` means "skip the test" (see
    /// [`require_postfix`]); a Postfix that does not start panics with its log.
    pub fn start(delivery: Delivery, extra_main: &str) -> Option<Postfix> {
        let master = require_postfix()?;
        let mut failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match try_start(&master, &delivery, extra_main) {
                Ok(postfix) => return Some(postfix),
                Err(msg) if msg.contains("Address already in use") => failure = msg,
                Err(msg) => panic!("{msg}"),
            }
        }
        panic!("{failure}")
    }

    /// Postfix as the MTA in front of an LMTP server on 127.0.0.1:`lmtp_port` for `domains`.
    pub fn relaying_to_lmtp(domains: &[&str], lmtp_port: u16) -> Option<Postfix> {
        Postfix::start(
            Delivery::Lmtp {
                domains,
                port: lmtp_port,
            },
            "",
        )
    }

    /// The configuration directory, for `postconf -c` or `postqueue -c`.
    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The Maildir (with `new/`, `cur/`, `tmp/` once mail came) of a virtual user of
    /// [`Delivery::Maildirs`].
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("vmail").join(user)
    }

    /// Pid of the master; also the process group id of every daemon it forks.
    pub fn master_pid(&self) -> u32 {
        self.master.id()
    }

    /// Postfix's log so far, then anything the master printed to stdout or stderr.
    pub fn maillog(&self) -> String {
        let mut log = fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default();
        let out = fs::read_to_string(self.dir.path().join("master.out")).unwrap_or_default();
        if !out.trim().is_empty() {
            log.push_str("--- master stdout/stderr ---\n");
            log.push_str(&out);
        }
        log
    }

    /// Waits until the log shows `text`; panics with the log after `timeout`.
    pub fn wait_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.maillog().contains(text) {
            assert!(
                Instant::now() < deadline,
                "Postfix's log does not show {text:?} after {timeout:?}:\n{}",
                self.maillog()
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master.id() as libc::pid_t;
        let watchdog = self.watchdog.as_ref().map(|(w, _)| w.id() as libc::pid_t);
        // What `postfix stop` does: SIGTERM to the master, which passes it on to its daemons.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline
            && group_members(pid)
                .iter()
                .any(|(p, _)| *p != pid && Some(*p) != watchdog)
        {
            sleep(Duration::from_millis(5));
        }
        // The group is still ours while the master is unreaped.
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.master.wait();
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// The master daemon's path when Postfix is installed and can run (as root); otherwise a
/// one-line note and `None`, or a panic under CI (env `CI` non-empty).
pub fn require_postfix() -> Option<PathBuf> {
    let why = match daemon_directory() {
        None => "postfix not found (postconf on PATH, /usr/sbin or /sbin)",
        // SAFETY: geteuid cannot fail.
        Some(_) if unsafe { libc::geteuid() } != 0 => {
            "Postfix's master runs only as root, and this is not root"
        }
        Some(dir) => return Some(dir.join("master")),
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{why}, but CI is set: install the Debian package postfix and run as root");
    }
    eprintln!("skipping: {why}");
    None
}

/// `postconf -h daemon_directory`, where `master` and `smtp-source`'s daemons live.
fn daemon_directory() -> Option<PathBuf> {
    let output = Command::new(postconf()?)
        .args(["-d", "-h", "daemon_directory"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    dir.join("master").is_file().then_some(dir)
}

/// A Postfix command (`postconf`, `postfix`, `smtp-source`) on PATH, /usr/sbin or /sbin,
/// since a non-root PATH often lacks the sbin directories.
pub fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn postconf() -> Option<PathBuf> {
    find_command("postconf")
}

fn try_start(master: &Path, delivery: &Delivery, extra_main: &str) -> Result<Postfix, String> {
    // Short path under /tmp: Postfix's unix sockets live in the queue directory.
    let dir = tempfile::Builder::new()
        .prefix("pf")
        .tempdir_in("/tmp")
        .expect("create Postfix temp dir in /tmp");
    let path = dir.path();
    // The daemons run as `postfix` and must reach the queue directory below it.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod Postfix dir");
    fs::create_dir(path.join("queue")).expect("create queue directory");
    let smtp_port = free_ports(1)[0];
    fs::write(path.join("main.cf"), main_cf(path, delivery, extra_main)).expect("write main.cf");
    fs::write(path.join("master.cf"), master_cf(smtp_port)).expect("write master.cf");
    if let Delivery::Maildirs { .. } = delivery {
        let vmail = path.join("vmail");
        fs::create_dir(&vmail).expect("create vmail");
        let (uid, gid) = mail_ids();
        std::os::unix::fs::chown(&vmail, Some(uid), Some(gid)).expect("chown vmail");
    }

    // Creates the queue's subdirectories with the owners and modes the daemons expect.
    let postfix = find_command("postfix").ok_or("postfix not found")?;
    let setup = Command::new(&postfix)
        .arg("-c")
        .arg(path)
        .arg("set-permissions")
        .output()
        .map_err(|e| format!("failed to run {}: {e}", postfix.display()))?;
    if !setup.status.success() {
        return Err(format!(
            "postfix -c {} set-permissions failed: {}{}",
            path.display(),
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr),
        ));
    }

    let out = File::create(path.join("master.out")).expect("create master.out");
    let child = Command::new(master)
        .arg("-c")
        .arg(path)
        .arg("-d")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup master.out"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("failed to run {}: {e}", master.display()))?;
    let watchdog = spawn_watchdog("postfix-watchdog", child.id(), path);
    let postfix = Postfix {
        smtp_port,
        master: child,
        watchdog,
        dir,
    };
    match postfix.wait_ready() {
        Ok(()) => Ok(postfix),
        Err(why) => {
            let log = postfix.maillog();
            let main = fs::read_to_string(path_of(&postfix, "main.cf")).unwrap_or_default();
            drop(postfix);
            Err(format!(
                "Postfix failed to start: {why}\n--- maillog ---\n{log}--- main.cf ---\n{main}"
            ))
        }
    }
}

fn path_of(postfix: &Postfix, file: &str) -> PathBuf {
    postfix.dir.path().join(file)
}

impl Postfix {
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if exited(&self.master) {
                return Err("the master exited during startup".into());
            }
            if greets(self.smtp_port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "smtpd did not greet on port {} within {READY_TIMEOUT:?}",
                    self.smtp_port
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// True once `port` sends a `220 ` greeting (then says QUIT).
fn greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut greeting = [0u8; 4];
    let ok = stream.read_exact(&mut greeting).is_ok() && &greeting == b"220 ";
    let _ = stream.write_all(b"QUIT\r\n");
    ok
}

/// uid and gid of `mail`, as which virtual(8) writes the Maildirs.
fn mail_ids() -> (u32, u32) {
    let name = std::ffi::CString::new("mail").unwrap();
    // SAFETY: `name` is a valid C string; the result is NULL or a valid passwd.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "the system user `mail` does not exist");
    // SAFETY: non-null result of getpwnam.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// A complete `main.cf`: nothing from /etc/postfix/main.cf.
fn main_cf(dir: &Path, delivery: &Delivery, extra: &str) -> String {
    let dir = dir.display();
    let mut c = format!(
        r#"# Generated by tests/support/postfix.rs for one test.
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
# Running as root: the daemons drop to these.
mail_owner = postfix
setgid_group = postdrop
# No syslog here: log through postlogd into a file, which must be under a listed prefix.
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = {HOSTNAME}
mydomain = postfix.test
myorigin = postfix.test
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
# Nothing leaves the machine: no relay host, no DNS, every other destination is an error.
relayhost =
default_transport = error:this test Postfix sends nothing off the machine
relay_transport = error:this test Postfix sends nothing off the machine
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
# Messages pass through as the client sent them: no From/Date/Message-ID added or rewritten.
local_header_rewrite_clients =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
# Retry soon rather than in minutes, should a delivery be deferred.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"#
    );
    match delivery {
        Delivery::Lmtp { domains, port } => {
            c.push_str(&format!(
                "mydestination = {}\nlocal_transport = lmtp:inet:127.0.0.1:{port}\n\
                 local_recipient_maps =\n",
                domains.join(", ")
            ));
        }
        Delivery::Maildirs { domain, users } => {
            let (uid, gid) = mail_ids();
            let mailboxes: String = users
                .iter()
                .map(|user| format!("{user}@{domain} {user}/\n"))
                .collect();
            fs::write(format!("{dir}/vmailbox"), mailboxes).expect("write vmailbox");
            c.push_str(&format!(
                "mydestination =\nvirtual_mailbox_domains = {domain}\n\
                 virtual_mailbox_base = {dir}/vmail\n\
                 virtual_mailbox_maps = texthash:{dir}/vmailbox\n\
                 virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{gid}\n\
                 virtual_minimum_uid = 1\n"
            ));
        }
    }
    if !extra.is_empty() {
        c.push_str("# Extra settings from the test.\n");
        c.push_str(extra);
        c.push('\n');
    }
    c
}

/// The daemons a delivering MTA needs, none chrooted, smtpd on 127.0.0.1:`smtp_port` only.
fn master_cf(smtp_port: u16) -> String {
    format!(
        "# Generated by tests/support/postfix.rs for one test.\n\
         127.0.0.1:{smtp_port} inet n - n - - smtpd\n\
         pickup    unix  n - n 60    1 pickup\n\
         cleanup   unix  n - n -     0 cleanup\n\
         qmgr      unix  n - n 300   1 qmgr\n\
         rewrite   unix  - - n -     - trivial-rewrite\n\
         bounce    unix  - - n -     0 bounce\n\
         defer     unix  - - n -     0 bounce\n\
         trace     unix  - - n -     0 bounce\n\
         verify    unix  - - n -     1 verify\n\
         flush     unix  n - n 1000? 0 flush\n\
         proxymap  unix  - - n -     - proxymap\n\
         showq     unix  n - n -     - showq\n\
         error     unix  - - n -     - error\n\
         retry     unix  - - n -     - error\n\
         discard   unix  - - n -     - discard\n\
         lmtp      unix  - - n -     - lmtp\n\
         virtual   unix  - n n -     - virtual\n\
         anvil     unix  - - n -     1 anvil\n\
         scache    unix  - - n -     1 scache\n\
         postlog   unix-dgram n - n - 1 postlogd\n"
    )
}
