//! Test harness: a throwaway Dovecot 2.3 (IMAP + POP3) on 127.0.0.1 serving a
//! test's mail store, so integration tests talk to a real server instead of a
//! mock that would only agree with our own reading of the RFCs.
//!
//! The store layout is the project's contract: `STORE/passwd` is a Dovecot
//! passwd-file (`name:{PLAIN}password[:extra fields]`) and each user's mailbox
//! is a Maildir at `STORE/<name>/{tmp,new,cur}`. Dovecot serves that directory
//! in place and keeps its index/uidlist files next to each Maildir, as a real
//! server would, so a test can inspect the store after a session. The store
//! must be a throwaway copy: as root it is `chown`ed to the `mail` user,
//! because Dovecot refuses to run mail processes as root.
//!
//! Each instance is isolated (own complete config, `base_dir`, `state_dir`,
//! log, `instance_name` and kernel-chosen ports; nothing from /etc/dovecot or
//! /run/dovecot), so tests may run several at once from parallel threads or
//! processes, next to a system Dovecot if one runs. Dovecot runs in the
//! foreground as our child, in its own process group so `Drop` can remove
//! every process it forked. A tiny `sh` watchdog in that group kills it if the
//! test process dies without running `Drop` (Ctrl-C, SIGKILL, an instance kept
//! in a `static`), so no daemon outlives the test run.
//!
//! Skipping rule shared by every test: without `dovecot` the tests print
//! "skipping: dovecot not found" and pass, unless `CI` is set, where a missing
//! Dovecot is a broken CI setup and must fail loudly.
//!
//! Dovecot treats loopback clients as "secured", so even without TLS it
//! accepts plaintext logins and never advertises LOGINDISABLED here.

// Each integration-test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Dovecot normally greets within ~50 ms; 10 s absorbs a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Services that stop on SIGTERM do so within a few ms; then the group gets
/// SIGKILL (see `Drop`).
const STOP_GRACE: Duration = Duration::from_millis(500);
/// Ports are picked by binding port 0 and releasing it, so another process can
/// grab one before Dovecot binds it; retrying with fresh ports covers that race.
const START_ATTEMPTS: usize = 3;

/// A running Dovecot instance; dropping it stops the server.
#[derive(Debug)]
pub struct Dovecot {
    pub imap_port: u16,
    pub pop3_port: u16,
    /// Implicit-TLS IMAP port, only with [`Dovecot::start_with_ssl`].
    pub imaps_port: Option<u16>,
    /// Implicit-TLS POP3 port, only with [`Dovecot::start_with_ssl`].
    pub pop3s_port: Option<u16>,
    conf: PathBuf,
    log_path: PathBuf,
    stderr_path: PathBuf,
    master: Child,
    /// Holding the pipe's write end open is what keeps the watchdog asleep.
    watchdog: Option<(Child, ChildStdin)>,
    // Last, so the directory is removed only after `Drop::drop` has stopped
    // every process that could still write into it.
    dir: tempfile::TempDir,
}

struct Tls<'a> {
    cert: &'a Path,
    key: &'a Path,
}

/// Who the mail processes run as. As root that must be an unprivileged user
/// (Dovecot rejects uid 0); as non-root everything runs as the current user.
struct Identity {
    user: String,
    group: String,
    uid: u32,
    gid: u32,
    root: bool,
}

struct Ports {
    imap: u16,
    pop3: u16,
    imaps: Option<u16>,
    pop3s: Option<u16>,
}

impl Dovecot {
    /// Starts Dovecot serving `store` (the directory holding `passwd`) over
    /// IMAP and POP3 on 127.0.0.1 with free ports. `None` means "skip the
    /// test" (see [`require_dovecot`]); a server that fails to start panics
    /// with its log and config.
    pub fn start(store: &Path) -> Option<Dovecot> {
        launch(store, None, "")
    }

    /// Like [`Dovecot::start`], with `extra_config` appended to the generated
    /// `dovecot.conf`. A setting given again later wins in Dovecot, so this
    /// can also override the defaults written here.
    pub fn start_with(store: &Path, extra_config: &str) -> Option<Dovecot> {
        launch(store, None, extra_config)
    }

    /// Like [`Dovecot::start`], with `ssl = yes` using the given PEM files:
    /// STARTTLS/STLS on the plain ports plus implicit-TLS listeners on
    /// `imaps_port` and `pop3s_port`. Plaintext logins stay allowed.
    pub fn start_with_ssl(store: &Path, cert_pem: &Path, key_pem: &Path) -> Option<Dovecot> {
        Self::start_with_ssl_config(store, cert_pem, key_pem, "")
    }

    /// [`Dovecot::start_with_ssl`] and [`Dovecot::start_with`] combined, e.g.
    /// to also set `ssl_min_protocol` or POP3 options.
    pub fn start_with_ssl_config(
        store: &Path,
        cert_pem: &Path,
        key_pem: &Path,
        extra_config: &str,
    ) -> Option<Dovecot> {
        let tls = Tls {
            cert: cert_pem,
            key: key_pem,
        };
        launch(store, Some(&tls), extra_config)
    }

    /// The contents of Dovecot's log so far (for assertion messages), followed
    /// by anything the master printed to stderr (config errors land there).
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let stderr = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        if !stderr.trim().is_empty() {
            let _ = write!(log, "--- dovecot stderr ---\n{stderr}");
        }
        log
    }

    /// The generated config file, e.g. for `doveadm -c PATH ...` in a test.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// Pid of the Dovecot master process; also the process group id of every
    /// process it forks.
    pub fn master_pid(&self) -> u32 {
        self.master.id()
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        // The TLS listeners live in the same login processes as the plain
        // ones, so greetings on the plain ports prove those are up too.
        let mut pending = vec![(self.imap_port, "* OK"), (self.pop3_port, "+OK")];
        loop {
            if self.master_exited() {
                return Err("dovecot exited during startup".into());
            }
            pending.retain(|&(port, greeting)| !greets(port, greeting));
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let ports: Vec<u16> = pending.iter().map(|p| p.0).collect();
                return Err(format!(
                    "dovecot did not greet on port(s) {ports:?} within {READY_TIMEOUT:?}"
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Whether the master has exited, checked without reaping it: an unreaped
    /// zombie still owns its pid and process group id, so `Drop`'s group kill
    /// cannot hit an unrelated process that reused the number.
    fn master_exited(&self) -> bool {
        exited(&self.master)
    }
}

/// Whether `child` has exited, checked without reaping it: an unreaped zombie still owns its
/// pid and process group id, so a later group kill cannot hit an unrelated process that
/// reused the number. Shared with the Postfix harness.
pub fn exited(child: &Child) -> bool {
    // SAFETY: siginfo_t is plain data, valid when zeroed; waitid only
    // writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, exclusively borrowed siginfo_t.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // With WNOHANG, si_pid stays 0 while the child is still running.
    // SAFETY: reading a field of the initialised `info`.
    rc != 0 || unsafe { info.si_pid() } != 0
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = self.master.id() as libc::pid_t;
        let watchdog = self.watchdog.as_ref().map(|(w, _)| w.id() as libc::pid_t);
        // SIGTERM to the master is all `doveadm -c CONF stop` does, but doveadm
        // then polls kill(pid, 0) for 3 s, which keeps succeeding on the
        // zombie of our own child until we reap it: 3 s lost per test.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // What may remain after a few ms is not worth waiting for: the master
        // idles a fixed 1 s for its `log` process before exiting, and leaves
        // mail processes that still have a client connected running.
        let deadline = Instant::now() + STOP_GRACE;
        while !self.master_exited() && Instant::now() < deadline {
            let busy = group_members(pid)
                .iter()
                .any(|(p, comm)| *p != pid && Some(*p) != watchdog && comm != "log");
            if !busy {
                break;
            }
            sleep(Duration::from_millis(5));
        }
        // One signal for the master, `log`, leftover mail processes and the
        // watchdog. Safe: the pgid is still ours while the master is unreaped.
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

/// `which`-style lookup of `dovecot` on PATH, then /usr/sbin and /sbin, since a
/// non-root PATH often lacks the sbin directories.
pub fn find_dovecot() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("dovecot"))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The skip rule shared by all tests: `Some(path)` when Dovecot is installed;
/// otherwise prints a one-line note and returns `None` so the test can return
/// early, except under CI (env `CI` non-empty), where it panics instead.
pub fn require_dovecot() -> Option<PathBuf> {
    if let Some(path) = find_dovecot() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "dovecot not found on PATH, /usr/sbin or /sbin, but CI is set: \
             install the Debian packages dovecot-imapd and dovecot-pop3d"
        );
    }
    eprintln!("skipping: dovecot not found");
    None
}

fn launch(store: &Path, tls: Option<&Tls>, extra_config: &str) -> Option<Dovecot> {
    let dovecot = require_dovecot()?;
    let id = identity();
    let store = prepare_store(store, &id);
    let mut failure = String::new();
    for _ in 0..START_ATTEMPTS {
        match try_launch(&dovecot, &store, &id, tls, extra_config) {
            Ok(server) => return Some(server),
            // Lost the race for a port we had just released: try fresh ones.
            Err(msg) if msg.contains("Address already in use") => failure = msg,
            Err(msg) => panic!("{msg}"),
        }
    }
    panic!("{failure}")
}

fn try_launch(
    dovecot: &Path,
    store: &Path,
    id: &Identity,
    tls: Option<&Tls>,
    extra_config: &str,
) -> Result<Dovecot, String> {
    // Short path under /tmp: the unix sockets live in base_dir and a socket
    // path must stay under 108 bytes, which TMPDIR or target/ could exceed.
    let dir = tempfile::Builder::new()
        .prefix("dv")
        .tempdir_in("/tmp")
        .expect("create Dovecot temp dir in /tmp");
    // Login, auth and mail processes run as other users and must reach their
    // sockets below base_dir; tempdir's 0700 would lock them out.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .expect("chmod Dovecot temp dir");

    let ports = free_ports(if tls.is_some() { 4 } else { 2 });
    let ports = Ports {
        imap: ports[0],
        pop3: ports[1],
        imaps: ports.get(2).copied(),
        pop3s: ports.get(3).copied(),
    };
    let conf = dir.path().join("dovecot.conf");
    let log_path = dir.path().join("dovecot.log");
    let stderr_path = dir.path().join("stderr.log");
    fs::write(
        &conf,
        config(dir.path(), store, &ports, id, tls, extra_config),
    )
    .expect("write dovecot.conf");

    let stderr = File::create(&stderr_path).expect("create stderr.log");
    let master = Command::new(dovecot)
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(stderr.try_clone().expect("dup stderr.log"))
        .stderr(stderr)
        // Own group: `Drop` reaches every child with one signal, and a
        // terminal's Ctrl-C is left to the watchdog instead of racing `Drop`.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", dovecot.display()));
    let watchdog = spawn_watchdog("dovecot-watchdog", master.id(), dir.path());

    // Built before the readiness check so that a failed start is cleaned up
    // by the same `Drop` as a successful one.
    let server = Dovecot {
        imap_port: ports.imap,
        pop3_port: ports.pop3,
        imaps_port: ports.imaps,
        pop3s_port: ports.pop3s,
        conf,
        log_path,
        stderr_path,
        master,
        watchdog,
        dir,
    };
    match server.wait_ready() {
        Ok(()) => Ok(server),
        Err(why) => {
            let log = server.log();
            let conf = fs::read_to_string(&server.conf).unwrap_or_default();
            drop(server);
            Err(format!(
                "Dovecot failed to start: {why}\n--- dovecot log ---\n{log}\
                 --- dovecot.conf ---\n{conf}"
            ))
        }
    }
}

/// `n` distinct ports that were free on 127.0.0.1 a moment ago; all
/// listeners are held at once so the kernel cannot hand out one port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// A `sh` that blocks reading a pipe from this process; EOF means we died
/// without `Drop`, so it stops Dovecot's whole process group and removes the
/// temp dir that `TempDir` no longer will. It joins that group so a terminal's
/// Ctrl-C (sent to the test's group) cannot kill it first, and its membership
/// keeps the pgid from being reused; it ignores the SIGTERM it sends itself.
/// Shared with the Postfix harness; `name` shows in `ps`.
pub fn spawn_watchdog(name: &str, master_pid: u32, dir: &Path) -> Option<(Child, ChildStdin)> {
    let script = r#"trap '' TERM; read line
kill -TERM -"$1" 2>/dev/null; sleep 1; rm -rf "$2"; kill -KILL -"$1" 2>/dev/null"#;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .arg(master_pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(master_pid as libc::pid_t)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// Live (non-zombie) processes in process group `pgid`, as (pid, comm).
pub fn group_members(pgid: libc::pid_t) -> Vec<(libc::pid_t, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // "pid (comm) state ppid pgrp ...": comm may hold spaces or ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let mut fields = tail.split_whitespace();
            let state = fields.next()?;
            let pgrp: libc::pid_t = fields.nth(1)?.parse().ok()?;
            (pgrp == pgid && state != "Z" && state != "X").then_some((p, comm))
        })
        .collect()
}

/// True once `port` accepts a connection and sends a line starting with
/// `greeting`: the socket listens as soon as the master binds it, but only the
/// greeting shows that the login and auth processes are serving.
fn greets(port: u16, greeting: &str) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 1024 {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    // Log out so the log shows a clean goodbye rather than a dropped client.
    let bye: &[u8] = if greeting == "+OK" {
        b"QUIT\r\n"
    } else {
        b"z LOGOUT\r\n"
    };
    let _ = stream.write_all(bye);
    line.starts_with(greeting.as_bytes())
}

fn identity() -> Identity {
    // SAFETY: geteuid/getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        let (uid, gid) = lookup_user("mail")
            .expect("Dovecot needs the system user `mail` for mail processes; it does not exist");
        Identity {
            user: "mail".into(),
            group: group_name(gid).unwrap_or_else(|| gid.to_string()),
            uid,
            gid,
            root: true,
        }
    } else {
        Identity {
            user: user_name(euid).expect("the current user has no passwd entry"),
            group: group_name(egid).unwrap_or_else(|| egid.to_string()),
            uid: euid,
            gid: egid,
            root: false,
        }
    }
}

// The getpw*/getgr* results point into static storage that a concurrent call
// may overwrite; every caller here reads it immediately and, in tests, looks
// up the same few entries, so a clobbered buffer holds the same values.

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid C string; the result is NULL or readable.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null results of getpwnam point to a valid passwd.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn user_name(uid: u32) -> Option<String> {
    // SAFETY: the result is NULL or points to a valid passwd.
    let pw = unsafe { libc::getpwuid(uid) };
    // SAFETY: non-null; pw_name is a NUL-terminated string.
    (!pw.is_null()).then(|| {
        unsafe { CStr::from_ptr((*pw).pw_name) }
            .to_string_lossy()
            .into_owned()
    })
}

fn group_name(gid: u32) -> Option<String> {
    // SAFETY: the result is NULL or points to a valid group.
    let gr = unsafe { libc::getgrgid(gid) };
    // SAFETY: non-null; gr_name is a NUL-terminated string.
    (!gr.is_null()).then(|| {
        unsafe { CStr::from_ptr((*gr).gr_name) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Makes `store` usable by the mail user and returns its absolute path.
fn prepare_store(store: &Path, id: &Identity) -> PathBuf {
    let store = store
        .canonicalize()
        .unwrap_or_else(|e| panic!("mail store {}: {e}", store.display()));
    assert!(
        store.join("passwd").is_file(),
        "mail store {} has no passwd file",
        store.display()
    );
    // The path is pasted into config values, where whitespace splits
    // arguments, `%` starts a variable and `:` separates mail_location parts.
    let text = store.to_str().expect("mail store path must be UTF-8");
    assert!(
        !text
            .chars()
            .any(|c| c.is_whitespace() || "%:\"'\\#{}<$".contains(c)),
        "mail store path {text:?} has characters a dovecot.conf value cannot hold"
    );
    if id.root {
        chown_tree(&store, id.uid, id.gid);
        make_traversable(&store, id);
    }
    store
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        for entry in fs::read_dir(path).expect("read mail store dir") {
            chown_tree(&entry.expect("read mail store entry").path(), uid, gid);
        }
    }
}

/// Mail processes run as `mail`, so every directory above the store must be
/// searchable by it. Test stores usually sit in a 0700 `tempfile` dir: those
/// (anything strictly inside the system temp dir) get o+x, the least that
/// works. Elsewhere this refuses to touch system directories and explains.
fn make_traversable(store: &Path, id: &Identity) {
    let tmp = std::env::temp_dir()
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("/tmp"));
    for dir in store.ancestors().skip(1) {
        let meta = fs::metadata(dir).expect("stat mail store ancestor");
        let mode = meta.permissions().mode();
        let searchable = mode & 0o001 != 0
            || (meta.uid() == id.uid && mode & 0o100 != 0)
            || (meta.gid() == id.gid && mode & 0o010 != 0);
        if searchable {
            continue;
        }
        assert!(
            dir.starts_with(&tmp) && dir != tmp,
            "user {} cannot reach the mail store: {} is mode {:o}; \
             put test stores under {}",
            id.user,
            dir.display(),
            mode & 0o7777,
            tmp.display()
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001))
            .unwrap_or_else(|e| panic!("chmod o+x {}: {e}", dir.display()));
    }
}

/// A complete dovecot.conf. Nothing from /etc/dovecot is included: the system
/// config would bring its own listeners, /run/dovecot and ssl settings.
fn config(
    dir: &Path,
    store: &Path,
    ports: &Ports,
    id: &Identity,
    tls: Option<&Tls>,
    extra: &str,
) -> String {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("test");
    let dir = dir.display();
    let store = store.display();
    let (uid, gid) = (id.uid, id.gid);
    // Listener blocks must not be one-liners: `{ port = N }` is a syntax
    // error. Port 0 disables the built-in imaps/pop3s listeners, which would
    // otherwise bind 993/995 and collide between instances.
    let imaps = ports.imaps.unwrap_or(0);
    let pop3s = ports.pop3s.unwrap_or(0);
    let mut c = format!(
        r#"# Generated by tests/support/dovecot.rs for one test.
# Unique per instance: shows in process titles (dovecot-{name}/imap).
instance_name = dovecot-{name}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
# Failed-login tests would otherwise wait 2 s per attempt; auth still flushes
# failures every 0.5 s.
auth_failure_delay = 0
# The log then says why a login failed, which assertion messages need.
auth_verbose = yes
# Tests open many sessions for one user from one IP; the default is 10.
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
mail_location = maildir:~/
mail_uid = {uid}
mail_gid = {gid}
# The default (500) would reject uid `mail` (8).
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {store}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={store}/%u
}}
# Without anvil's penalty socket, auth skips the penalty that delays further
# failed logins from one IP by 2, 4 .. 15 s. (login_trusted_networks no longer
# lifts it in 2.3.)
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"#,
        imap = ports.imap,
        pop3 = ports.pop3,
    );
    if id.root {
        // The passwd file now belongs to `mail` and may be 0600, but the auth
        // process runs as `dovecot` by default.
        c.push_str("service auth {\n  user = root\n}\n");
    } else {
        // Unprivileged run: every service as ourselves, and no chroot, which
        // needs root.
        let (user, group) = (&id.user, &id.group);
        let _ = write!(
            c,
            "default_login_user = {user}\n\
             default_internal_user = {user}\n\
             default_internal_group = {group}\n"
        );
        for service in ["imap-login", "pop3-login", "anvil"] {
            let _ = writeln!(c, "service {service} {{\n  chroot =\n}}");
        }
    }
    match tls {
        Some(tls) => {
            let _ = write!(
                c,
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}\n",
                tls.cert.display(),
                tls.key.display()
            );
        }
        // Explicit: the built-in default is `yes`, which refuses to start
        // without a certificate.
        None => c.push_str("ssl = no\n"),
    }
    if !extra.is_empty() {
        c.push_str("# Extra config from the test.\n");
        c.push_str(extra);
        c.push('\n');
    }
    c
}
