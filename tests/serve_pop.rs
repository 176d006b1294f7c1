//! `mailtool serve-pop` end to end: the real binary over TCP, curl and Python's poplib as
//! independent clients, and every command and error of the protocol.

mod support;

use std::fs;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use support::pop3::PopServer;
use support::TempStore;

/// What RETR must send for a message file: bare LF as CRLF, a final CRLF added when missing,
/// leading dots doubled, then `.CRLF`. Written the obvious way, independently of the server.
fn expected_retr(raw: &[u8]) -> Vec<u8> {
    let text = raw.strip_suffix(b"\n").unwrap_or(raw);
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A user's message files in delivery order (which is name order in the demo store).
fn files_in_order(store: &TempStore, user: &str) -> Vec<std::path::PathBuf> {
    let mut files = store.messages(user);
    files.sort_by_key(|p| p.file_name().unwrap().to_owned());
    files
}

#[test]
fn demo_prints_the_address_then_the_users_and_serves_the_demo_store() {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("mailtool"));
    command.args(["--store", "/nonexistent"]);
    let mut server = PopServer::spawn(command, &["--demo"]);
    assert_eq!(server.stdout_line(), "demo user asterix password potion\n");
    assert_eq!(server.stdout_line(), "demo user obelix password menhir\n");
    let mut client = server.connect();
    assert_eq!(
        client.login("asterix", "potion"),
        "+OK asterix has 8 messages (28103 octets)\r\n"
    );
}

#[test]
fn json_stdout_has_the_address_and_demo_users() {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("mailtool"));
    command.args(["--json", "serve-pop", "--demo", "--port", "0"]);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..3 {
        stdout.read_line(&mut lines).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let values: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(values[0]["listening"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(values[1]["demo_user"], "asterix");
    assert_eq!(values[2]["password"], "menhir");
}

#[test]
fn every_transaction_command_over_tcp() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    assert!(client
        .greeting
        .starts_with("+OK mailtool POP3 server ready <"));
    let capa_before = {
        client.send_raw(b"CAPA\r\n");
        client.read_multiline_raw()
    };
    assert_eq!(
        client.login("asterix", "potion"),
        "+OK asterix has 8 messages (28103 octets)\r\n"
    );
    client.send_raw(b"CAPA\r\n");
    assert_eq!(client.read_multiline_raw(), capa_before);
    assert_eq!(client.command("STAT"), "+OK 8 28103\r\n");
    assert_eq!(client.command("NOOP"), "+OK\r\n");

    let files = files_in_order(&store, "asterix");
    let raws: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    client.send_raw(b"LIST\r\n");
    let listing = String::from_utf8(client.read_multiline_raw()).unwrap();
    client.send_raw(b"UIDL\r\n");
    let uidls = String::from_utf8(client.read_multiline_raw()).unwrap();
    let uidl_lines: Vec<&str> = uidls.lines().skip(1).take(8).collect();
    for (index, file) in files.iter().enumerate() {
        let number = index + 1;
        let expected = expected_retr(&raws[index]);
        let header = client.command(&format!("RETR {number}"));
        let body = client.read_multiline_raw();
        assert_eq!(body, expected, "RETR {number}");
        let stuffed = expected.windows(3).filter(|w| w == b"\n..").count();
        let octets = expected.len() - 3 - stuffed;
        assert_eq!(header, format!("+OK {octets} octets\r\n"));
        assert!(listing.contains(&format!("\r\n{number} {octets}\r\n")));
        assert_eq!(
            client.command(&format!("LIST {number}")),
            format!("+OK {number} {octets}\r\n")
        );
        let base = file.file_name().unwrap().to_str().unwrap();
        let base = base.split(':').next().unwrap();
        assert_eq!(uidl_lines[index], format!("{number} {base}"));
        assert_eq!(
            client.command(&format!("UIDL {number}")),
            format!("+OK {number} {base}\r\n")
        );
    }

    // TOP n 0: the header and the blank line; more lines than the body has: everything.
    assert_eq!(client.command("TOP 1 0"), "+OK top of message follows\r\n");
    let top = client.read_multiline_raw();
    let whole = expected_retr(&raws[0]);
    let header_end = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(top, [&whole[..header_end], b".\r\n"].concat());
    client.command("TOP 1 100000");
    assert_eq!(client.read_multiline_raw(), whole);

    assert_eq!(client.command("DELE 3"), "+OK message 3 deleted\r\n");
    assert_eq!(client.command("DELE 3"), "-ERR no such message: 3\r\n");
    assert_eq!(client.command("RETR 3"), "-ERR no such message: 3\r\n");
    assert_eq!(client.command("TOP 3 0"), "-ERR no such message: 3\r\n");
    assert_eq!(client.command("LIST 3"), "-ERR no such message: 3\r\n");
    assert_eq!(client.command("UIDL 3"), "-ERR no such message: 3\r\n");
    assert!(client
        .command("RSET")
        .starts_with("+OK maildrop has 8 messages"));
    client.command("DELE 3");
    client.command("DELE 8");
    assert!(client.command("STAT").starts_with("+OK 6 "));
    assert_eq!(store.messages("asterix").len(), 8, "DELE only marks");
    assert_eq!(
        client.command("QUIT"),
        "+OK mailtool POP3 server signing off (6 messages left)\r\n"
    );
    assert!(client.is_closed(Duration::from_secs(5)));
    let left = store.messages("asterix");
    assert_eq!(left.len(), 6);
    assert!(!left.contains(&files[2]) && !left.contains(&files[7]));
    // Every retrieved message is now Seen, in cur/, for IMAP clients.
    assert!(left
        .iter()
        .all(|p| p.to_str().unwrap().contains("/cur/") && p.to_str().unwrap().contains(":2,")));
    assert!(left.iter().all(|p| {
        let name = p.file_name().unwrap().to_str().unwrap();
        name.rsplit_once(":2,").unwrap().1.contains('S')
    }));
}

#[test]
fn top_does_not_mark_seen() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.login("obelix", "menhir");
    client.command("TOP 1 3");
    client.read_multiline_raw();
    client.command("QUIT");
    assert!(store
        .messages("obelix")
        .iter()
        .any(|p| p.to_str().unwrap().contains("/new/1700040029")));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.send_raw(b"CAPA\r\nUSER obelix\r\nPASS menhir\r\nSTAT\r\nLIST 1\r\nRETR 2\r\nUIDL 4\r\nDELE 1\r\nNOOP\r\nFOO\r\nSTAT\r\n");
    assert!(String::from_utf8(client.read_multiline_raw())
        .unwrap()
        .contains("PIPELINING"));
    assert_eq!(client.read_line(), "+OK send PASS\r\n");
    assert_eq!(
        client.read_line(),
        "+OK obelix has 4 messages (3205 octets)\r\n"
    );
    assert_eq!(client.read_line(), "+OK 4 3205\r\n");
    assert_eq!(client.read_line(), "+OK 1 660\r\n");
    assert_eq!(client.read_line(), "+OK 783 octets\r\n");
    let body = client.read_multiline_raw();
    assert_eq!(body.len(), 783 + 3);
    assert!(client.read_line().starts_with("+OK 4 1700060002."));
    assert_eq!(client.read_line(), "+OK message 1 deleted\r\n");
    assert_eq!(client.read_line(), "+OK\r\n");
    assert!(client.read_line().starts_with("-ERR unknown command"));
    assert_eq!(client.read_line(), "+OK 3 2545\r\n");
}

#[test]
fn errors_keep_the_session_going() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    assert!(client.command("STAT").starts_with("-ERR log in first"));
    assert!(client
        .command("PASS potion")
        .starts_with("-ERR send USER first"));
    assert!(client
        .command("USER ../asterix")
        .starts_with("-ERR [AUTH] invalid user name"));
    assert!(client
        .command("USER Asterix")
        .starts_with("-ERR [AUTH] invalid user name"));
    assert!(client
        .command("STLS")
        .starts_with("-ERR STLS is not available"));
    // A fresh session: each session closes after ten bad commands.
    let mut client = server.connect();
    client.login("asterix", "potion");
    for bad in [
        "RETR 0",
        "RETR -1",
        "RETR 99999999999",
        "RETR one",
        "TOP 1 -1",
        "LIST x",
    ] {
        assert!(
            client.command(bad).starts_with("-ERR message numbers"),
            "{bad}"
        );
    }
    assert_eq!(client.command("RETR 9"), "-ERR no such message: 9\r\n");
    client.send_raw(b"\xff\xfe\xfd\r\n");
    assert_eq!(client.read_line(), "-ERR command is not valid UTF-8\r\n");
    assert!(client
        .command("USER asterix")
        .starts_with("-ERR already logged in"));
    assert_eq!(client.command("STAT"), "+OK 8 28103\r\n");
}

#[test]
fn repeated_bad_commands_close_the_connection() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    for _ in 0..9 {
        assert!(client.command("BOGUS").starts_with("-ERR unknown command"));
    }
    assert!(client.command("BOGUS").starts_with("-ERR unknown command"));
    assert_eq!(
        client.read_line(),
        "-ERR too many bad commands, closing\r\n"
    );
    assert!(client.is_closed(Duration::from_secs(5)));
}

#[test]
fn bad_credentials_get_one_reply_and_three_failures_close() {
    let store = TempStore::demo();
    let mut server = PopServer::start(&store.path(), &["--log-format", "json"]);
    let mut client = server.connect();
    let wrong_password = client.try_login("asterix", "menhir");
    assert_eq!(
        wrong_password,
        "-ERR [AUTH] invalid user name or password\r\n"
    );
    assert_eq!(client.try_login("idefix", "potion"), wrong_password);
    assert_eq!(client.try_login("asterix", "menhir2"), wrong_password);
    assert_eq!(
        client.read_line(),
        "-ERR too many failed logins, closing\r\n"
    );
    assert!(client.is_closed(Duration::from_secs(5)));
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success());
    let log = server.stderr();
    let failures = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "login_failed")
        .count();
    assert_eq!(failures, 3, "{log}");
    assert!(!log.contains("menhir"), "a password reached the log: {log}");
}

#[test]
fn apop_and_auth_plain_over_tcp() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    let stamp = &client.greeting[client.greeting.find('<').unwrap()..]
        .trim_end()
        .to_owned();
    assert!(stamp.ends_with('>') && stamp.contains('@'));
    let digest: String = Md5::digest(format!("{stamp}potion").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(client
        .command(&format!("APOP asterix {digest}"))
        .starts_with("+OK asterix has 8 messages"));
    client.command("QUIT");

    let mut second = server.connect();
    assert_ne!(
        &second.greeting[second.greeting.find('<').unwrap()..],
        stamp.as_str()
    );
    assert_eq!(second.command("AUTH PLAIN"), "+ \r\n");
    // base64("\0obelix\0menhir")
    assert!(second
        .command("AG9iZWxpeABtZW5oaXI=")
        .starts_with("+OK obelix has 4 messages"));
}

#[test]
fn a_second_session_is_refused_across_server_processes() {
    let store = TempStore::demo();
    let first_server = PopServer::start(&store.path(), &[]);
    let second_server = PopServer::start(&store.path(), &[]);
    let mut first = first_server.connect();
    assert!(first.login("asterix", "potion").starts_with("+OK"));
    let mut second = second_server.connect();
    let refused = second.try_login("asterix", "potion");
    assert!(refused.starts_with("-ERR [IN-USE] "), "{refused}");
    // The other user is not affected, and the session goes on.
    assert!(second.login("obelix", "menhir").starts_with("+OK"));
    // A killed holder does not lock the user out.
    drop(first);
    drop(first_server);
    let mut third = second_server.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = third.try_login("asterix", "potion");
        if reply.starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "still locked: {reply}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dropped_connection_and_a_shutdown_remove_nothing() {
    let store = TempStore::demo();
    let mut server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.login("asterix", "potion");
    client.command("DELE 1");
    client.command("DELE 2");
    drop(client);
    let mut client = server.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The server may notice the drop a moment after the client is gone.
        let reply = client.try_login("asterix", "potion");
        if reply.starts_with("+OK") {
            break;
        }
        assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
        assert!(
            Instant::now() < deadline,
            "the dropped session kept the lock"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.command("STAT"), "+OK 8 28103\r\n");
    client.command("DELE 1");
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert!(client.is_closed(Duration::from_secs(5)));
    assert_eq!(store.messages("asterix").len(), 8);
}

#[test]
fn idle_sessions_are_closed_without_update_or_a_word() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &["--idle-timeout", "1"]);
    let mut client = server.connect();
    client.login("obelix", "menhir");
    client.command("DELE 1");
    let started = Instant::now();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "sent {:?}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(store.messages("obelix").len(), 4);
}

#[test]
fn a_ten_mib_line_gets_err_and_does_not_grow_the_server() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    assert_eq!(
        client.command("CAPA").lines().next(),
        Some("+OK capability list follows")
    );
    client.read_multiline();
    let before = server.rss_kib();
    let chunk = vec![b'A'; 1024 * 1024];
    let mut writer = client.try_clone_stream();
    let sender = thread::spawn(move || {
        for _ in 0..10 {
            writer.write_all(&chunk).unwrap();
        }
        writer
    });
    assert!(client.read_line().starts_with("-ERR line too long"));
    let mut writer = sender.join().unwrap();
    // The rest of the line is skipped; the next line is a command again. Its answer also
    // proves that the server has read all 10 MiB.
    writer.write_all(b"\r\nUSER obelix\r\n").unwrap();
    assert_eq!(client.read_line(), "+OK send PASS\r\n");
    let after = server.rss_kib();
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn a_message_removed_under_an_open_session_gives_err_and_the_session_survives() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let mut client = server.connect();
    client.login("obelix", "menhir");
    let files = files_in_order(&store, "obelix");
    fs::remove_file(&files[0]).unwrap();
    assert_eq!(
        client.command("RETR 1"),
        "-ERR [SYS/PERM] message 1 was removed from the mailbox by another program\r\n"
    );
    assert_eq!(client.command("RETR 2"), "+OK 783 octets\r\n");
    client.read_multiline_raw();
    client.command("DELE 1");
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(store.messages("obelix").len(), 3);
}

#[test]
fn max_connections_waits_and_per_address_cap_refuses() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &["--max-connections", "1"]);
    let first = server.connect();
    let mut waiting = TcpStream::connect(server.addr()).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        waiting.read(&mut byte).is_err(),
        "a second client was served while the only permit was taken"
    );
    drop(first);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(waiting.read(&mut byte).unwrap(), 1);
    assert_eq!(&byte, b"+");

    let capped = PopServer::start(&store.path(), &["--max-connections-per-ip", "1"]);
    let _first = capped.connect();
    let mut refused = TcpStream::connect(capped.addr()).unwrap();
    let mut text = String::new();
    refused.read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "-ERR [SYS/TEMP] too many connections from your address\r\n"
    );
}

#[test]
fn log_lines_and_trace_never_show_passwords() {
    let store = TempStore::demo();
    let mut server = PopServer::start(&store.path(), &["--trace"]);
    let mut client = server.connect();
    client.login("asterix", "potion");
    client.command("RETR 1");
    client.read_multiline_raw();
    client.command("DELE 2");
    client.command("QUIT");
    let mut second = server.connect();
    second.command("AUTH PLAIN AG9iZWxpeABtZW5oaXI=");
    second.command("QUIT");
    assert!(server.signal_and_wait(libc::SIGINT).success());
    let log = server.stderr();
    assert!(
        !log.contains("potion") && !log.contains("AG9iZWxpeABtZW5oaXI="),
        "{log}"
    );
    assert!(log.contains("C: PASS ***"), "{log}");
    assert!(log.contains("C: AUTH PLAIN ***"), "{log}");
    assert!(log.contains("S: +OK asterix has 8 messages"), "{log}");
    assert!(log.contains("] 127.0.0.1:"), "{log}");
    assert!(log.contains(" connect\n"), "{log}");
    assert!(
        log.contains("login ok user=asterix mechanism=USER"),
        "{log}"
    );
    assert!(
        log.contains("quit user=asterix retrieved=1 deleted=1 removed=1"),
        "{log}"
    );
}

#[test]
fn binding_port_110_without_privilege_suggests_port_1100() {
    let Ok(status) = Command::new("setpriv").arg("--version").output() else {
        eprintln!("setpriv is missing: skipped");
        return;
    };
    // Where the kernel lets anyone bind low ports (some containers), there is no error.
    let unprivileged_from: u16 =
        fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1024);
    if unprivileged_from <= 110 {
        eprintln!("port 110 is unprivileged on this kernel: skipped");
        return;
    }
    assert!(status.status.success());
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(assert_cmd::cargo::cargo_bin("mailtool"))
        .args(["serve-pop", "--demo", "--port", "110"])
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot listen on 127.0.0.1:110"),
        "{stderr}"
    );
    assert!(stderr.contains("try --port 1100"), "{stderr}");
}

#[test]
fn curl_retrieves_lists_and_runs_top() {
    if !support::have("curl") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let url = |path: &str| format!("pop3://asterix:potion@127.0.0.1:{}/{path}", server.port());
    let curl = |args: &[&str]| {
        let output = Command::new("curl").arg("-sS").args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let first = files_in_order(&store, "asterix")[0].clone();
    let expected = expected_retr(&fs::read(&first).unwrap());
    // curl removes the terminating ".CRLF" and the dot-stuffing.
    let retrieved = curl(&[&url("1")]);
    assert_eq!(retrieved, unstuff(&expected));
    let listing = String::from_utf8(curl(&[&url("")])).unwrap();
    assert_eq!(listing.lines().count(), 8);
    assert!(listing.starts_with("1 838\r\n2 1564\r\n"));
    let top = curl(&["-X", "TOP 1 0", &url("")]);
    let header_end = expected.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(top, &expected[..header_end]);
    // Only RETR (not TOP, not LIST) marked a message Seen.
    let seen = store
        .messages("asterix")
        .iter()
        .filter(|p| p.to_str().unwrap().ends_with(":2,S"))
        .count();
    assert_eq!(
        seen, 2,
        "message 1 plus the one already seen in the demo store"
    );
}

fn unstuff(body: &[u8]) -> Vec<u8> {
    let body = body.strip_suffix(b".\r\n").unwrap();
    let mut out = Vec::new();
    let mut at_line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if !(at_line_start && b == b'.' && body.get(i + 1) == Some(&b'.')) {
            out.push(b);
            at_line_start = b == b'\n';
        } else {
            at_line_start = false;
        }
    }
    out
}

#[test]
fn python_poplib_as_an_independent_client() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let script = r#"
import poplib, sys
box = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
caps = box.capa()
assert "PIPELINING" in caps and "UIDL" in caps and "TOP" in caps, caps
box.user("obelix")
box.pass_("menhir")
count, octets = box.stat()
print("stat", count, octets)
resp, listing, _ = box.list()
for entry in listing:
    number, size = entry.split()
    resp, lines, sent = box.retr(int(number))
    # poplib counts the octets it received, un-stuffed, plus the line ends.
    body = b"\r\n".join(lines) + b"\r\n"
    print("retr", int(number), int(size), len(body), resp.decode())
resp, uidls, _ = box.uidl()
print("uidl", len(uidls), len(set(u.split()[1] for u in uidls)))
resp, top, _ = box.top(2, 0)
print("top", top[-1] == b"", len(top))
box.dele(4)
print(box.quit().decode())
"#;
    let stdout = support::python(script, [server.port().to_string()]);
    let stdout = String::from_utf8_lossy(&stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("stat 4 3205"));
    for number in 1..=4 {
        let line = lines.next().unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0..2], ["retr", &number.to_string()]);
        assert_eq!(
            fields[2], fields[3],
            "LIST size equals the octets received: {line}"
        );
        assert_eq!(fields[4..], ["+OK", fields[2], "octets"]);
    }
    assert_eq!(lines.next(), Some("uidl 4 4"));
    let second = fs::read(&files_in_order(&store, "obelix")[1]).unwrap();
    let header_lines = second
        .split(|&b| b == b'\n')
        .position(|line| line.is_empty() || line == b"\r")
        .unwrap();
    assert_eq!(
        lines.next(),
        Some(format!("top True {}", header_lines + 1).as_str())
    );
    assert_eq!(
        lines.next(),
        Some("+OK mailtool POP3 server signing off (3 messages left)")
    );
    assert_eq!(store.messages("obelix").len(), 3);
}

#[test]
fn startup_errors_say_what_to_do() {
    let missing = TempStore::empty();
    let output = missing
        .mailtool()
        .args(["serve-pop", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: store "), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(output.stdout.is_empty());

    let store = TempStore::demo();
    let first = PopServer::start(&store.path(), &[]);
    let output = store
        .mailtool()
        .args(["serve-pop", "--port", &first.port().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot listen on 127.0.0.1:{}",
            first.port()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("pick another --port"), "{stderr}");
}
