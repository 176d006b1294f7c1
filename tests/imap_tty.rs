//! `imap-unread` on a terminal: the no-echo password prompt and the progress line, driven
//! through a real pseudo-terminal (the child's controlling terminal, stdin and stderr).

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::dovecot::Dovecot;
use support::imap::{mail, RawImap};
use support::TempStore;

/// A pty pair: (master, slave).
fn open_pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the given integers; the name, termios and
    // window size pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Whether the terminal echoes input (master and slave share one termios).
fn echo_is_on(master: &File) -> bool {
    // SAFETY: termios is plain data; tcgetattr fills it from a valid descriptor.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::tcgetattr(master.as_raw_fd(), &mut termios) };
    assert_eq!(rc, 0, "tcgetattr");
    termios.c_lflag & libc::ECHO != 0
}

/// Run `imap-unread` with the pty as controlling terminal, stdin and stderr; stdout is a
/// pipe. `answer` is typed once the prompt appears. Returns (terminal text, stdout, status).
fn run_on_terminal(
    store: &TempStore,
    dovecot: &Dovecot,
    extra: &[&str],
    answer: Option<&str>,
) -> (String, Vec<u8>, i32) {
    let (mut master, slave) = open_pty();
    let slave_fd = slave.as_raw_fd();
    let mut command = store.mailtool_std();
    command
        .args(["imap-unread", "--host", "127.0.0.1", "--user", "asterix"])
        .args(["--port", &dovecot.imap_port.to_string()])
        .args(extra)
        .stdout(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0
                || libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0) < 0
                || libc::dup2(slave_fd, 0) < 0
                || libc::dup2(slave_fd, 2) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(slave);

    let (sender, receiver) = mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // EIO once the child closed its side of the terminal.
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    if let Some(answer) = answer {
        while !String::from_utf8_lossy(&screen).contains("IMAP password for asterix") {
            let chunk = receiver
                .recv_timeout(Duration::from_secs(20))
                .expect("a password prompt");
            screen.extend(chunk);
        }
        // Type only once the prompt has switched echo off, as a person would (a test
        // typing faster than the program's tcsetattr would see the kernel echo it).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while echo_is_on(&master) {
            assert!(
                std::time::Instant::now() < deadline,
                "echo was never turned off"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        master.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    while let Ok(chunk) = receiver.recv_timeout(Duration::from_millis(300)) {
        screen.extend(chunk);
    }
    (
        String::from_utf8_lossy(&screen).into_owned(),
        stdout,
        status.code().unwrap_or(-1),
    )
}

#[test]
fn password_prompt_on_the_terminal_does_not_echo() {
    let store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let (screen, stdout, status) =
        run_on_terminal(&store, &dovecot, &["--keep", "--json"], Some("potion"));
    assert_eq!(status, 0, "{screen}");
    assert!(
        !screen.contains("potion"),
        "the password was echoed: {screen:?}"
    );
    assert_eq!(String::from_utf8(stdout).unwrap().lines().count(), 6);
}

#[test]
fn progress_shows_on_a_terminal_as_one_updating_line() {
    let store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&store.path()) else {
        return;
    };
    let mut imap = RawImap::login(dovecot.imap_port, "asterix", "potion");
    let mails: Vec<(&str, Vec<u8>)> = (0..40)
        .map(|i| ("", mail(&format!("progress {i}"), 2048)))
        .collect();
    imap.append_all(&mails);
    let (screen, stdout, status) = run_on_terminal(
        &store,
        &dovecot,
        &["--keep", "--password-file", "/dev/null"],
        None,
    );
    // /dev/null is an empty password file: a clear error, and no progress before it.
    assert_eq!(status, 1, "{screen}");
    assert!(
        screen.contains("password file /dev/null is empty"),
        "{screen}"
    );
    assert!(stdout.is_empty());

    let password = store.scratch().join("pass");
    std::fs::write(&password, "potion\n").unwrap();
    let (screen, stdout, status) = run_on_terminal(
        &store,
        &dovecot,
        &["--keep", "--password-file", password.to_str().unwrap()],
        None,
    );
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("/46 mails, "), "{screen:?}");
    assert!(
        screen.contains('\r') && !screen.contains("mails\n"),
        "{screen:?}"
    );
    assert!(
        screen.contains("INBOX: 46 unread, printed 46"),
        "{screen:?}"
    );
    // The progress line is erased before the summary, and never reaches stdout.
    assert!(!String::from_utf8_lossy(&stdout).contains("/46 mails"));
}
