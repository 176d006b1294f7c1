//! Hostile clients against the real `serve-imap` binary over TCP: every limit of the
//! serve-imap issue (line and literal sizes, 100 MiB APPEND and FETCH in bounded memory,
//! SEARCH and section nesting, login delay and close, LOGINDISABLED and STARTTLS under
//! `--require-tls`, plaintext injected after STARTTLS, the idle timeout), secrets kept out of
//! the log and the trace, and a proptest that any split of a script over TCP gives the same
//! answers as the script sent whole.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use mailtool::store::{Store, UserName};
use proptest::prelude::*;
use support::imap::{mail, RawImap};
use support::pop3::PopServer;
use support::{copy_tree, TempStore};

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(server: &PopServer, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
}

/// Forget the peak RSS so far (`VmHWM` becomes the current RSS).
fn reset_peak(server: &PopServer) {
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").unwrap();
}

/// How far the server's peak RSS rose above its RSS at the last [`reset_peak`], in KiB.
fn peak_growth(server: &PopServer, base: u64) -> u64 {
    proc_kib(server, "VmHWM").saturating_sub(base)
}

fn settle(store: &Path) {
    Store::new(store)
        .mailbox(&UserName::parse("asterix").unwrap())
        .unwrap()
        .sync_uids(true)
        .unwrap();
}

/// Read one line; `None` at EOF.
fn line_of<R: BufRead>(reader: &mut R) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).into_owned()),
    }
}

/// Everything until EOF (or a read error).
fn rest_of(imap: &mut RawImap) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(line) = imap.read_line() {
        lines.push(line);
    }
    lines
}

#[test]
fn fifty_mib_without_a_line_end_gets_bad_in_flat_memory() {
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::connect(server.port());
    imap.ok("NOOP");
    reset_peak(&server);
    let base = proc_kib(&server, "VmRSS");
    let mut writer = TcpStream::connect(server.addr()).unwrap();
    let mut reader = BufReader::new(writer.try_clone().unwrap());
    reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(line_of(&mut reader).unwrap().starts_with("* OK"));
    let sender = thread::spawn(move || {
        writer.write_all(b"a NOOP ").unwrap();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..50 {
            writer.write_all(&chunk).unwrap();
        }
        writer
    });
    // The BAD comes as soon as the limit is passed, not after 50 MiB.
    let bad = line_of(&mut reader).unwrap();
    assert!(bad.starts_with("a BAD line too long: at most"), "{bad}");
    let mut writer = sender.join().unwrap();
    writer.write_all(b"\r\nb NOOP\r\n").unwrap();
    assert_eq!(line_of(&mut reader).unwrap(), "b OK NOOP completed\r\n");
    let growth = peak_growth(&server, base);
    eprintln!("50 MiB line: server peak RSS grew {growth} KiB");
    assert!(growth < 4 * 1024, "{growth} KiB");
    // Other sessions never noticed.
    imap.ok("NOOP");
}

#[test]
fn oversized_literals_are_refused_before_their_data() {
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::connect(server.port());
    // A literal in an ordinary command: BAD at once, no continuation request.
    imap.send_raw(b"a LOGIN {4294967295}\r\n");
    let reply = imap.read_line().unwrap();
    assert!(reply.starts_with("a BAD literal too big"), "{reply}");
    imap.send_raw(b"b LOGIN {99999999999999999999999}\r\n");
    let reply = imap.read_line().unwrap();
    assert!(reply.starts_with("b BAD literal too big"), "{reply}");
    // A refused LITERAL+ that may be skipped is skipped: its octets are never commands.
    imap.send_raw(b"c LOGIN {70000+}\r\n");
    imap.send_raw(&b"d NOOP\r\n".repeat(70000 / 8));
    imap.send_raw(b"\r\ne NOOP\r\n");
    let reply = imap.read_line().unwrap();
    assert!(reply.starts_with("c BAD literal too big"), "{reply}");
    assert_eq!(imap.read_line().unwrap(), "e OK NOOP completed\r\n");

    imap.ok("LOGIN asterix potion");
    // APPEND: NO [TOOBIG] before any data, whatever it announces.
    imap.send_raw(b"f APPEND INBOX {4294967295}\r\n");
    let reply = imap.read_line().unwrap();
    assert!(reply.starts_with("f NO [TOOBIG]"), "{reply}");
    imap.ok("NOOP");
    // LITERAL+ too large to skip: NO [TOOBIG], then BYE and the connection closes.
    imap.send_raw(b"g APPEND INBOX {4294967295+}\r\n");
    imap.send_raw(&[b'x'; 4096]);
    let rest = rest_of(&mut imap);
    assert!(rest[0].starts_with("g NO [TOOBIG]"), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    assert!(
        support::TempStore::messages(&store, "asterix").len() == 8,
        "nothing was appended"
    );
}

/// Read one response whose literal is a message, comparing the literal with `expected` as
/// it streams in; the rest of the response up to the tagged line.
fn read_fetch_literal(reader: &mut BufReader<TcpStream>, tag: &str, expected: &[u8]) -> String {
    let head = line_of(reader).unwrap();
    let open = head
        .rfind('{')
        .unwrap_or_else(|| panic!("no literal in {head}"));
    let size: usize = head[open + 1..head.len() - 3].parse().unwrap();
    assert_eq!(size, expected.len(), "{head}");
    let mut buf = vec![0; 1024 * 1024];
    let mut at = 0;
    while at < size {
        let n = reader
            .read(&mut buf[..(size - at).min(1024 * 1024)])
            .unwrap();
        assert!(n > 0, "EOF in the literal");
        assert!(
            buf[..n] == expected[at..at + n],
            "the literal differs at {at}"
        );
        at += n;
    }
    let mut rest = String::new();
    loop {
        let line = line_of(reader).unwrap();
        rest.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return rest;
        }
    }
}

#[test]
fn append_and_fetch_of_100_mib_stream_in_bounded_memory() {
    let store = TempStore::demo();
    settle(&store.path());
    let message = mail("one hundred mebibytes", 100 * 1024 * 1024);
    let server = PopServer::start_imap(&store.path(), &[]);
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(line_of(&mut reader).unwrap().starts_with("* OK"));
    writer
        .write_all(b"l LOGIN asterix potion\r\ns SELECT INBOX\r\n")
        .unwrap();
    while !line_of(&mut reader).unwrap().starts_with("s OK") {}

    reset_peak(&server);
    let base = proc_kib(&server, "VmRSS");
    writer
        .write_all(format!("a APPEND INBOX {{{}}}\r\n", message.len()).as_bytes())
        .unwrap();
    assert!(line_of(&mut reader).unwrap().starts_with("+ "));
    for chunk in message.chunks(1024 * 1024) {
        writer.write_all(chunk).unwrap();
    }
    writer.write_all(b"\r\n").unwrap();
    let status = loop {
        let line = line_of(&mut reader).unwrap();
        if line.starts_with("a ") {
            break line;
        }
    };
    assert!(status.starts_with("a OK [APPENDUID "), "{status}");
    let append_growth = peak_growth(&server, base);
    let uid: u32 = status
        .split(' ')
        .nth(4)
        .unwrap()
        .trim_end_matches(']')
        .parse()
        .unwrap();
    let file = support::TempStore::messages(&store, "asterix")
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() == message.len() as u64)
        .expect("the appended file");
    assert!(std::fs::read(&file).unwrap() == message, "the file differs");

    reset_peak(&server);
    let base = proc_kib(&server, "VmRSS");
    writer
        .write_all(format!("f UID FETCH {uid} BODY.PEEK[]\r\n").as_bytes())
        .unwrap();
    let rest = read_fetch_literal(&mut reader, "f", &message);
    assert!(rest.ends_with("f OK UID FETCH completed\r\n"), "{rest}");
    let fetch_growth = peak_growth(&server, base);
    eprintln!(
        "100 MiB: server peak RSS grew {append_growth} KiB over APPEND, {fetch_growth} KiB over FETCH"
    );
    assert!(append_growth < 16 * 1024, "APPEND: {append_growth} KiB");
    assert!(fetch_growth < 16 * 1024, "FETCH: {fetch_growth} KiB");
}

#[test]
fn deep_search_nesting_and_section_paths_are_refused_without_a_crash() {
    let store = TempStore::demo();
    settle(&store.path());
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::login(server.port(), "asterix", "potion");
    let nested = [
        format!("SEARCH {}ALL", "NOT ".repeat(15_000)),
        format!("SEARCH {}ALL{}", "(".repeat(30_000), ")".repeat(30_000)),
        format!("SEARCH {}ALL", "OR ALL ".repeat(9_000)),
        format!("UID SEARCH {}ALL", "NOT (".repeat(10_000)) + &")".repeat(10_000),
    ];
    for command in &nested {
        let started = Instant::now();
        let reply = imap.command(command);
        assert!(
            reply.status.starts_with("BAD"),
            "{}...: {}",
            &command[..20],
            reply.status
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Moderate nesting still works.
    let reply = imap.command(&format!("SEARCH {}ALL{}", "(NOT ".repeat(4), ")".repeat(4)));
    assert!(reply.status.starts_with("OK"), "{}", reply.status);

    let deep = vec!["1"; 1000].join(".");
    for item in [
        format!("BODY.PEEK[{deep}]"),
        format!("BODY.PEEK[{deep}.MIME]"),
        format!("BINARY.PEEK[{deep}]"),
        format!("BODY.PEEK[{deep}]<0.10>"),
    ] {
        let reply = imap.command(&format!("FETCH 1 ({item})"));
        assert!(
            reply.status.starts_with("BAD") || reply.status.starts_with("OK"),
            "{}",
            reply.status
        );
    }
    // The server is alive and the session goes on.
    imap.ok("NOOP");
    assert_eq!(imap.uids("ALL").len(), 8);
    RawImap::login(server.port(), "obelix", "menhir").ok("NOOP");
}

#[test]
fn failed_logins_wait_a_second_and_the_third_closes() {
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let mut imap = RawImap::connect(server.port());
    for attempt in 1..=2 {
        let started = Instant::now();
        let reply = imap.command(&format!("LOGIN asterix wrong{attempt}"));
        assert!(
            reply.status.starts_with("NO [AUTHENTICATIONFAILED]"),
            "{}",
            reply.status
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    imap.send_raw(b"t3 LOGIN asterix wrong3\r\n");
    let rest = rest_of(&mut imap);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(rest.iter().any(|l| l.starts_with("t3 NO")), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    // A right password is not delayed.
    let started = Instant::now();
    RawImap::login(server.port(), "asterix", "potion");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(server.stderr_shows("closing after too many failures failed_logins=3"));
}

/// A minimal line client over any stream (TLS included).
struct Lines<S: Read + Write> {
    stream: BufReader<S>,
}

impl<S: Read + Write> Lines<S> {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).unwrap();
        self.stream.get_mut().flush().unwrap();
    }

    /// Send `tag command` and read up to the tagged line; all lines.
    fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        let mut lines = Vec::new();
        loop {
            let line = line_of(&mut self.stream).expect("the server closed the connection");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

fn tls_connector(cert: &Path) -> native_tls::TlsConnector {
    let pem = std::fs::read(cert).unwrap();
    native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn capabilities(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("* CAPABILITY"))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn require_tls_disables_logins_until_starttls_and_drops_what_was_pipelined_with_it() {
    let store = TempStore::demo();
    let (cert, key) = support::tls::self_signed(store.scratch());
    let server = PopServer::start_imap(
        &store.path(),
        &[
            "--require-tls",
            "--trace",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut plain = Lines {
        stream: BufReader::new(stream),
    };
    assert!(line_of(&mut plain.stream).unwrap().starts_with("* OK"));
    let caps = capabilities(&plain.command("c", "CAPABILITY"));
    assert!(
        caps.contains("LOGINDISABLED") && caps.contains("STARTTLS"),
        "{caps}"
    );
    assert!(!caps.contains("AUTH="), "{caps}");
    let login = plain.command("l", "LOGIN asterix potion").pop().unwrap();
    assert!(
        login.starts_with("l NO") || login.starts_with("l BAD"),
        "{login}"
    );
    assert!(
        login.contains("STARTTLS"),
        "the refusal should say what to do: {login}"
    );
    let auth = plain
        .command("p", "AUTHENTICATE PLAIN AGFzdGVyaXgAcG90aW9u")
        .pop()
        .unwrap();
    assert!(
        auth.starts_with("p NO") || auth.starts_with("p BAD"),
        "{auth}"
    );
    let auth = plain.command("q", "AUTHENTICATE PLAIN").pop().unwrap();
    assert!(
        auth.starts_with("q NO") || auth.starts_with("q BAD"),
        "{auth}"
    );

    // A man in the middle appends a command to STARTTLS: it must never be answered.
    plain.send(b"a STARTTLS\r\nb LOGIN asterix potion\r\n");
    let ok = line_of(&mut plain.stream).unwrap();
    assert!(ok.starts_with("a OK"), "{ok}");
    assert_eq!(plain.stream.buffer().len(), 0, "more came in the clear");
    let tcp = plain.stream.into_inner();
    let tls = tls_connector(&cert)
        .connect("localhost", tcp)
        .expect("TLS handshake");
    let mut secure = Lines {
        stream: BufReader::new(tls),
    };
    let lines = secure.command("d", "SELECT INBOX");
    assert!(
        lines.iter().all(|l| !l.starts_with("b ")),
        "the injected command was answered: {lines:?}"
    );
    assert!(
        lines.last().unwrap().starts_with("d BAD Log in first"),
        "{lines:?}"
    );
    let caps = capabilities(&secure.command("e", "CAPABILITY"));
    assert!(
        caps.contains("AUTH=PLAIN") && !caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    assert!(!caps.contains("STARTTLS"), "{caps}");
    let login = secure.command("f", "LOGIN asterix potion").pop().unwrap();
    assert!(login.starts_with("f OK"), "{login}");
    secure.command("g", "LOGOUT");
    thread::sleep(Duration::from_millis(200));
    let log = server.stderr();
    assert_eq!(log.matches("LOGIN asterix ***").count(), 2, "{log}");
    assert!(!log.contains("potion"), "{log}");
}

#[test]
fn starttls_with_openssl_s_client() {
    if !support::have("openssl") {
        return;
    }
    let store = TempStore::demo();
    let (cert, key) = support::tls::self_signed(store.scratch());
    let server = PopServer::start_imap(
        &store.path(),
        &[
            "--require-tls",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let output = support::output_with_stdin(
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-starttls",
                "imap",
            ])
            .arg("-connect")
            .arg(server.addr().to_string())
            .arg("-CAfile")
            .arg(&cert),
        b"a CAPABILITY\r\nb LOGIN asterix potion\r\nc LOGOUT\r\n",
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("AUTH=PLAIN") && !text.contains("LOGINDISABLED"),
        "{text}"
    );
    assert!(text.contains("b OK"), "{text}");
}

fn sasl_plain(authzid: &str, user: &str, password: &str) -> String {
    data_encoding::BASE64.encode(format!("{authzid}\0{user}\0{password}").as_bytes())
}

#[test]
fn passwords_and_their_base64_never_reach_the_log_or_the_trace() {
    let store = TempStore::demo();
    let password = "Zaubertrank-7f3a9c";
    let wrong = "Wrong-Guess-e4d909c2";
    store
        .mailtool()
        .args(["mbox", "add-user", "panoramix", "--password-stdin"])
        .write_stdin(format!("{password}\n"))
        .assert()
        .success();
    for format in ["text", "json"] {
        let mut server = PopServer::start_imap(&store.path(), &["--trace", "--log-format", format]);
        for secret in [password, wrong] {
            let expected = if secret == password { "OK" } else { "NO" };
            let forms = [
                format!("LOGIN panoramix {secret}"),
                format!("LOGIN \"panoramix\" \"{secret}\""),
                format!("login panoramix {{{}+}}\r\n{secret}", secret.len()),
                format!("AUTHENTICATE PLAIN {}", sasl_plain("", "panoramix", secret)),
                format!(
                    "AUTHENTICATE PLAIN {}",
                    sasl_plain("panoramix", "panoramix", secret)
                ),
            ];
            for form in &forms {
                let mut imap = RawImap::connect(server.port());
                let reply = imap.command(form);
                assert!(
                    reply.status.starts_with(expected),
                    "{form}: {}",
                    reply.status
                );
            }
            // Without SASL-IR: the credentials come after the continuation request.
            let mut imap = RawImap::connect(server.port());
            imap.send_raw(b"x AUTHENTICATE PLAIN\r\n");
            assert!(imap.read_line().unwrap().starts_with("+"));
            imap.send_raw(format!("{}\r\n", sasl_plain("", "panoramix", secret)).as_bytes());
            let reply = imap.read_until_tagged("x").pop().unwrap();
            assert!(reply.starts_with(&format!("x {expected}")), "{reply}");
        }
        // A password typed where the user name goes, and a LOGIN that does not parse.
        let mut imap = RawImap::connect(server.port());
        imap.command(&format!("LOGIN {password}"));
        imap.command(&format!("LOGIN panoramix {password} extra"));
        thread::sleep(Duration::from_millis(300));
        server.kill();
        let log = server.stderr();
        assert!(log.contains("panoramix"), "{log}");
        assert!(log.contains("AUTHENTICATE PLAIN"), "{log}");
        let b64 = data_encoding::BASE64;
        for secret in [password, wrong] {
            for form in [
                secret.to_owned(),
                b64.encode(secret.as_bytes()),
                sasl_plain("", "panoramix", secret),
                sasl_plain("panoramix", "panoramix", secret),
            ] {
                assert!(!log.contains(&form), "{format} log shows {form:?}:\n{log}");
            }
        }
    }
}

#[test]
fn idle_timeout_defaults_to_30_minutes_and_ends_with_bye() {
    let help = support::mailtool(Path::new("/nonexistent"))
        .args(["serve-imap", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 1800]"), "{help}");

    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &["--idle-timeout", "2"]);
    let mut quiet = RawImap::login(server.port(), "asterix", "potion");
    let started = Instant::now();
    let rest = rest_of(&mut quiet);
    let waited = started.elapsed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A client that keeps talking is not cut off.
    let mut busy = RawImap::login(server.port(), "asterix", "potion");
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(900));
        busy.ok("NOOP");
    }
}

/// A session as a client might pipeline it, literals included.
fn script() -> Vec<u8> {
    let appended = mail("split anywhere", 3000);
    let mut script = Vec::new();
    script.extend_from_slice(b"a1 CAPABILITY\r\n");
    script.extend_from_slice(b"a2 LOGIN asterix {6}\r\npotion\r\n");
    script.extend_from_slice(b"a3 SELECT INBOX\r\n");
    script.extend_from_slice(b"a4 FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)\r\n");
    script.extend_from_slice(
        b"a5 UID FETCH 2:4 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[TEXT]<0.200>)\r\n",
    );
    script.extend_from_slice(b"a6 SEARCH OR UNSEEN FLAGGED NOT DELETED\r\n");
    script.extend_from_slice(b"a7 STORE 3 +FLAGS (\\Deleted \\Flagged)\r\n");
    script.extend_from_slice(
        format!("a8 APPEND INBOX (\\Seen) {{{}+}}\r\n", appended.len()).as_bytes(),
    );
    script.extend_from_slice(&appended);
    script.extend_from_slice(b"\r\n");
    script.extend_from_slice(b"a9 bogus command\r\n");
    script.extend_from_slice(b"b1 NOOP\r\n");
    script.extend_from_slice(b"b2 EXPUNGE\r\n");
    script.extend_from_slice(b"b3 UID SEARCH ALL\r\n");
    script.extend_from_slice(b"b4 FETCH 1:* (FLAGS)\r\n");
    script.extend_from_slice(b"b5 LOGOUT\r\n");
    script
}

/// Send `script` in pieces cut at `cuts`, each its own write with a pause so the server
/// reads them apart, and return everything the server sent until it closed.
fn run_split(pristine: &Path, script: &[u8], cuts: &[usize]) -> Vec<u8> {
    let copy = TempStore::empty();
    copy_tree(pristine, &copy.path());
    let server = PopServer::start_imap(&copy.path(), &[]);
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % script.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let pieces: Vec<Vec<u8>> = {
        let mut pieces = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&script.len())) {
            pieces.push(script[from..cut].to_vec());
            from = cut;
        }
        pieces
    };
    let sender = thread::spawn(move || {
        for piece in pieces {
            writer.write_all(&piece).unwrap();
            thread::sleep(Duration::from_millis(3));
        }
    });
    let mut out = Vec::new();
    let mut reader = stream;
    let _ = reader.read_to_end(&mut out);
    sender.join().unwrap();
    out
}

#[test]
fn any_split_of_a_script_over_tcp_gives_the_same_answers() {
    // Settled once, so every copy has the same UIDVALIDITY and no \Recent surprises.
    let pristine = TempStore::demo();
    settle(&pristine.path());
    let script = script();
    let whole = run_split(&pristine.path(), &script, &[]);
    let text = String::from_utf8_lossy(&whole);
    assert!(text.contains("a8 OK [APPENDUID"), "{text}");
    assert!(
        text.contains("b2 OK EXPUNGE completed (1 removed)"),
        "{text}"
    );
    assert!(text.ends_with("b5 OK LOGOUT completed\r\n"), "{text}");

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let len = script.len();
    runner
        .run(&proptest::collection::vec(0..len, 1..12), |cuts| {
            let split = run_split(&pristine.path(), &script, &cuts);
            prop_assert!(
                split == whole,
                "cut at {:?}:\n{}",
                cuts,
                String::from_utf8_lossy(&split)
            );
            Ok(())
        })
        .unwrap();
    // Every byte its own write, for the head of the script (the command lines and the
    // login literal).
    let head: Vec<usize> = (1..200).collect();
    assert!(run_split(&pristine.path(), &script, &head) == whole);
}
