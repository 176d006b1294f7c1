//! `mailtool serve-smtp` end to end: the real binary on a loopback port, driven by a raw
//! socket (what a learner types with `nc`) and by Python's smtplib, over a copy of the demo
//! store whose Maildirs each test checks afterwards.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::pop3::{PopClient, PopServer};
use support::TempStore;

fn serve(store: &TempStore, extra: &[&str]) -> PopServer {
    PopServer::spawn_as(store.mailtool_std(), &["serve-smtp", "--port", "0"], extra)
}

fn serve_lmtp(store: &TempStore, extra: &[&str]) -> PopServer {
    PopServer::spawn_as(
        store.mailtool_std(),
        &["serve-smtp", "--lmtp", "--port", "0"],
        extra,
    )
}

/// Every file under a Maildir's `new/` and `tmp/`.
fn files(maildir: &Path, sub: &str) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = fs::read_dir(maildir.join(sub))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A raw session: the greeting read, then one reply (all its lines) per command.
struct Raw {
    client: PopClient,
}

impl Raw {
    fn connect(server: &PopServer) -> Raw {
        let stream = std::net::TcpStream::connect(server.addr()).expect("connect");
        let mut raw = Raw {
            client: PopClient::from_stream(stream),
        };
        let greeting = raw.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        raw
    }

    /// The lines of one reply, up to the one with a space after the code.
    fn reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let line = self.client.read_line();
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    }

    fn say(&mut self, line: &str) -> String {
        self.client.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.client.send_raw(bytes);
    }
}

fn count_new(store: &TempStore, user: &str) -> usize {
    files(&store.path().join(user), "new").len()
}

/// Wait for the server's log to say something (it logs after replying).
fn wait_log(server: &PopServer, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.stderr_shows(text) {
        assert!(
            Instant::now() < deadline,
            "log never showed {text:?}: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn smtplib_delivers_one_copy_per_recipient_with_trace_headers_and_pop3_and_imap_read_it_back() {
    let store = TempStore::demo();
    let before_asterix = count_new(&store, "asterix");
    let before_obelix = count_new(&store, "obelix");
    let server = serve(&store, &[]);
    let message = "From: Idefix <idefix@example.org>\r\nTo: asterix@localhost\r\nSubject: bones\r\n\r\nWoof.\r\n.leading dot\r\n..two dots\r\n";
    support::python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo('client.example.org')
refused = s.sendmail('idefix@example.org',
    ['asterix@localhost', 'obelix@LOCALHOST', 'Asterix@localhost'], sys.argv[2].encode())
assert refused == {}, refused
s.quit()
"#,
        [server.port().to_string(), message.to_owned()],
    );
    assert_eq!(count_new(&store, "asterix"), before_asterix + 1);
    assert_eq!(count_new(&store, "obelix"), before_obelix + 1);
    wait_log(&server, "delivered from <idefix@example.org>");
    // The delivered file: trace headers on top, then the message with LF line ends and
    // the dots unstuffed.
    let newest = |user: &str| {
        let mut all = files(&store.path().join(user), "new");
        all.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
        all.pop().unwrap()
    };
    let delivered = fs::read(newest("asterix")).unwrap();
    let text = String::from_utf8_lossy(&delivered);
    assert!(text.starts_with("Return-Path: <idefix@example.org>\nReceived: from client.example.org ([127.0.0.1])\n\tby "), "{text}");
    // Two recipients share one copy: no Delivered-To naming one of them.
    assert!(!text.contains("Delivered-To:"), "{text}");
    // smtplib stuffed the dots; the server unstuffed them.
    let body = message.replace("\r\n", "\n");
    assert!(text.ends_with(&body), "{text}");
    assert_eq!(fs::read(newest("obelix")).unwrap(), delivered);
    let name = newest("asterix")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.contains(&format!(",S={},W=", delivered.len())),
        "{name}"
    );
    drop(server);

    // Over POP3 the message comes back byte-identical, CRLF restored.
    let pop = PopServer::start(&store.path(), &[]);
    let out = support::python(
        r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user('asterix'); p.pass_('potion')
n = len(p.list()[1])
lines = p.retr(n)[1]
sys.stdout.buffer.write(b'\r\n'.join(lines) + b'\r\n')
p.quit()
"#,
        [pop.port().to_string()],
    );
    let expected = support::crlf_line_ends(&delivered);
    // poplib undoes the dot-stuffing of the transfer itself.
    assert_eq!(out, expected);
    drop(pop);

    // And over IMAP (the newest message is the last in the mailbox).
    let imap = PopServer::start_imap(&store.path(), &[]);
    let out = support::python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('asterix', 'potion')
typ, data = m.select('INBOX')
n = int(data[0])
typ, data = m.fetch(str(n), '(BODY.PEEK[])')
sys.stdout.buffer.write(data[0][1])
m.logout()
"#,
        [imap.port().to_string()],
    );
    assert_eq!(out, expected);
}

#[test]
fn order_rules_refusals_and_teaching_replies() {
    let store = TempStore::demo();
    let server = serve(&store, &["--domain", "example.test"]);
    let mut s = Raw::connect(&server);
    assert!(s
        .say("MAIL FROM:<a@b.org>")
        .starts_with("503 5.5.1 say hello first, e.g. EHLO"));
    let ehlo = s.say("EHLO me.example.org");
    for extension in [
        "PIPELINING",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SIZE 52428800",
        "HELP",
    ] {
        assert!(
            ehlo.contains(&format!("250-{extension}"))
                || ehlo.contains(&format!("250 {extension}")),
            "{ehlo}"
        );
    }
    assert!(!ehlo.contains("AUTH"), "AUTH is off by default: {ehlo}");
    assert!(
        !ehlo.contains("STARTTLS"),
        "no certificate, no STARTTLS: {ehlo}"
    );
    assert_eq!(
        s.say("RCPT TO:<asterix@example.test>"),
        "503 5.5.1 RCPT needs MAIL first, e.g. MAIL FROM:<you@example.org>\r\n"
    );
    assert!(s.say("DATA").starts_with("503 5.5.1 DATA needs MAIL"));
    assert!(s.say("VRFY asterix").starts_with("252 "));
    assert!(s.say("HELP").starts_with("214-"));
    assert!(s.say("NOOP").starts_with("250 "));
    assert!(s.say("MAIL FROM:<>").starts_with("250 2.1.0"));
    assert!(s
        .say("MAIL FROM:<x@y.org>")
        .starts_with("503 5.5.1 a transaction is already open"));
    // localhost is not a domain of this server any more: --domain replaced the defaults.
    assert!(s
        .say("RCPT TO:<asterix@localhost>")
        .starts_with("550 5.7.1 relaying denied"));
    assert!(s
        .say("RCPT TO:<someone@elsewhere.org>")
        .contains("mailtool never relays"));
    assert!(s
        .say("RCPT TO:<nobody@example.test>")
        .starts_with("550 5.1.1 "));
    assert!(s.say("RCPT TO:<nobody>").contains(" 5.1.3 "));
    assert!(s.say("DATA").starts_with("554 5.5.1 no valid recipients"));
    assert!(s.say("RSET").starts_with("250 "));
    assert!(s.say("RCPT TO:<asterix@example.test>").starts_with("503 "));
    assert!(s.say("LHLO me").starts_with("500 5.5.1 LHLO is LMTP's"));
    assert!(s
        .say("FROB")
        .starts_with("500 5.5.2 unknown command \"FROB\""));
    let long = format!("NOOP {}", "x".repeat(600));
    assert!(s.say(&long).starts_with("500 5.5.2 line too long"));
    assert!(
        s.say("NOOP").starts_with("250 "),
        "the session resynchronises"
    );
    assert!(s.say("QUIT").starts_with("221 2.0.0"));
}

#[test]
fn only_crlf_dot_crlf_ends_the_data_so_nothing_is_smuggled() {
    let store = TempStore::demo();
    let before = count_new(&store, "asterix");
    let server = serve(&store, &[]);
    let mut s = Raw::connect(&server);
    s.say("EHLO me");
    // Everything pipelined (RFC 2920), with every smuggling form inside the data.
    s.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<asterix@localhost>\r\nDATA\r\n\
          Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n\
          x\r.\rRCPT TO:<obelix@localhost>\r\ny\n.\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n",
    );
    assert!(s.reply().starts_with("250 2.1.0"));
    assert!(s.reply().starts_with("250 2.1.5"));
    assert!(s.reply().starts_with("354 "));
    assert!(s.reply().starts_with("250 2.0.0"));
    assert!(
        s.reply().starts_with("250 2.0.0 OK"),
        "NOOP after the data is a command"
    );
    assert_eq!(count_new(&store, "asterix"), before + 1);
    wait_log(&server, "delivered from <a@example.org>");
    assert!(!server.stderr_shows("evil@example.org"));
}

#[test]
fn size_limits_and_long_lines_refuse_and_keep_nothing() {
    let store = TempStore::demo();
    let before = count_new(&store, "asterix");
    let server = serve(&store, &["--max-message-size", "1000"]);
    let mut s = Raw::connect(&server);
    s.say("EHLO me");
    assert!(s
        .say("MAIL FROM:<a@b.org> SIZE=1001")
        .starts_with("552 5.3.4 message size 1001 exceeds"));
    assert!(s
        .say("MAIL FROM:<a@b.org> SIZE=100 BODY=8BITMIME")
        .starts_with("250 "));
    s.say("RCPT TO:<asterix@localhost>");
    assert!(s.say("DATA").starts_with("354 "));
    s.send(&[b'x'; 700]);
    s.send(b"\r\n");
    s.send(&[b'y'; 700]);
    assert!(s
        .say("\r\n.")
        .starts_with("552 5.3.4 message exceeds the limit of 1000 octets"));
    // A line over 1,000 octets in a message under the limit... with a bigger limit.
    drop(s);
    drop(server);
    let server = serve(&store, &[]);
    let mut s = Raw::connect(&server);
    s.say("EHLO me");
    s.say("MAIL FROM:<a@b.org>");
    s.say("RCPT TO:<asterix@localhost>");
    s.say("DATA");
    s.send(&vec![b'z'; 5000]);
    assert!(s
        .say("\r\n.")
        .starts_with("500 5.5.2 a line of the message exceeds 1000 octets"));
    assert!(s.say("NOOP").starts_with("250 "));
    assert_eq!(count_new(&store, "asterix"), before);
    assert!(files(&store.path().join("asterix"), "tmp").is_empty());
}

#[test]
fn a_client_that_drops_during_data_leaves_nothing() {
    let store = TempStore::demo();
    let before = count_new(&store, "asterix");
    let server = serve(&store, &[]);
    let mut s = Raw::connect(&server);
    s.say("EHLO me");
    s.say("MAIL FROM:<a@b.org>");
    s.say("RCPT TO:<asterix@localhost>");
    s.say("DATA");
    s.send(b"Subject: half\r\n\r\nhalf a message\r\n");
    drop(s);
    wait_log(&server, "disconnect");
    assert_eq!(count_new(&store, "asterix"), before);
    assert!(files(&store.path().join("asterix"), "tmp").is_empty());
}

#[test]
fn lmtp_answers_per_recipient_and_one_broken_mailbox_fails_alone() {
    let store = TempStore::demo();
    let before = count_new(&store, "asterix");
    // obelix's Maildir cannot take mail: its new/ is a file.
    let obelix_new = store.path().join("obelix/new");
    fs::remove_dir_all(&obelix_new).unwrap();
    fs::write(&obelix_new, "not a directory").unwrap();
    let server = serve_lmtp(&store, &[]);
    let mut s = Raw::connect(&server);
    assert!(s
        .say("EHLO me")
        .starts_with("500 5.5.1 this is an LMTP server"));
    assert!(s.say("LHLO me").starts_with("250-"));
    s.say("MAIL FROM:<a@b.org>");
    s.say("RCPT TO:<obelix@localhost>");
    s.say("RCPT TO:<asterix@localhost>");
    s.say("DATA");
    s.send(b"Subject: per recipient\r\n\r\nhi\r\n.\r\n");
    assert!(
        s.reply().starts_with("451 4.3.0"),
        "obelix first, in RCPT order"
    );
    assert!(s.reply().starts_with("250 2.0.0 <asterix@localhost>"));
    assert_eq!(count_new(&store, "asterix"), before + 1);
    let delivered = fs::read(
        files(&store.path().join("asterix"), "new")
            .into_iter()
            .max_by_key(|p| fs::metadata(p).unwrap().modified().unwrap())
            .unwrap(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&delivered);
    assert!(text.contains(" with LMTP id "), "{text}");
}

#[test]
fn smtp_is_all_or_nothing_when_one_mailbox_fails() {
    let store = TempStore::demo();
    let before = count_new(&store, "asterix");
    let obelix_new = store.path().join("obelix/new");
    fs::remove_dir_all(&obelix_new).unwrap();
    fs::write(&obelix_new, "not a directory").unwrap();
    let server = serve(&store, &[]);
    let mut s = Raw::connect(&server);
    s.say("EHLO me");
    s.say("MAIL FROM:<a@b.org>");
    s.say("RCPT TO:<asterix@localhost>");
    s.say("RCPT TO:<obelix@localhost>");
    s.say("DATA");
    s.send(b"Subject: all or nothing\r\n\r\nhi\r\n.\r\n");
    assert!(s.reply().starts_with("451 4.3.0"));
    assert_eq!(count_new(&store, "asterix"), before);
    assert!(files(&store.path().join("asterix"), "tmp").is_empty());
}

#[test]
fn auth_required_plain_login_delays_and_closes_after_three_failures() {
    let store = TempStore::demo();
    let server = serve(&store, &["--auth", "required", "--trace"]);
    let mut s = Raw::connect(&server);
    assert!(s.say("EHLO me").contains("250-AUTH PLAIN LOGIN"));
    assert!(s
        .say("MAIL FROM:<asterix@localhost>")
        .starts_with("530 5.7.0"));
    let bad = "AUTH PLAIN AGFzdGVyaXgAd3Jvbmc="; // \0asterix\0wrong
    let started = Instant::now();
    assert!(s.say(bad).starts_with("535 5.7.8"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "535 comes after a delay"
    );
    assert!(s.say(bad).starts_with("535 "));
    assert!(s.say(bad).starts_with("535 "));
    assert!(s.reply().starts_with("421 4.7.0"));
    assert!(s.client.is_closed(Duration::from_secs(3)));
    assert!(
        !server.stderr().contains("AGFzdGVyaXgAd3Jvbmc="),
        "--trace masks AUTH"
    );
    // smtplib logs in (AUTH PLAIN, or LOGIN) and sends.
    support::python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.login('obelix', 'menhir')
assert s.sendmail('obelix@localhost', ['asterix@localhost'], b'Subject: authed\r\n\r\nx\r\n') == {}
s.quit()
"#,
        [server.port().to_string()],
    );
    wait_log(&server, "delivered from <obelix@localhost>");
}

#[test]
fn starttls_discards_pipelined_plaintext_and_smtps_works() {
    let store = TempStore::demo();
    let (cert, key) = support::tls::self_signed(store.scratch());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = serve(
        &store,
        &["--tls-cert", cert, "--tls-key", key, "--tls-port", "0"],
    );
    // A man in the middle appends a command after STARTTLS in the same packet: after the
    // handshake the server must not answer it.
    support::python(
        r#"
import socket, ssl, sys
sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = sock.makefile('rb')
def reply():
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line[3:4] != b'-':
            return b''.join(lines)
reply()
sock.sendall(b'EHLO me\r\n')
assert b'250-STARTTLS' in reply()
sock.sendall(b'STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n')
assert reply().startswith(b'220 ')
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
tls = ctx.wrap_socket(sock)
tls.sendall(b'NOOP\r\n')
first = tls.recv(4096)
assert first.startswith(b'250 2.0.0 OK'), first
tls.sendall(b'MAIL FROM:<a@b.org>\r\n')
assert tls.recv(4096).startswith(b'503 5.5.1 say hello first'), 'the EHLO before STARTTLS is forgotten'
"#,
        [server.port().to_string(), cert.to_owned()],
    );
    // Python's smtplib over STARTTLS and over SMTPS (implicit TLS).
    let tls_port = server.tls_addr().unwrap().port();
    support::python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.starttls(context=ctx)
code, text = s.ehlo()
assert b'STARTTLS' not in text, text
assert s.sendmail('a@b.org', ['asterix@localhost'], b'Subject: tls\r\n\r\nx\r\n') == {}
s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[2]), context=ctx)
assert s.sendmail('a@b.org', ['asterix@localhost'], b'Subject: smtps\r\n\r\nx\r\n') == {}
s.quit()
"#,
        [
            server.port().to_string(),
            tls_port.to_string(),
            cert.to_owned(),
        ],
    );
    assert!(!server.stderr_shows("injected@example.org"));
}

#[test]
fn mbox_wait_sees_a_mail_sent_over_smtp() {
    let store = TempStore::demo();
    let server = serve(&store, &[]);
    let waiter = store
        .mailtool_std()
        .args([
            "--json",
            "mbox",
            "wait",
            "obelix",
            "--subject",
            "menhir delivery",
            "--timeout",
            "10",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    support::python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.sendmail('asterix@localhost', ['obelix@localhost'], b'From: asterix@localhost\r\nSubject: Menhir delivery\r\n\r\nx\r\n')
s.quit()
"#,
        [server.port().to_string()],
    );
    let output = waiter.wait_with_output().unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["subject"], "Menhir delivery");
    assert_eq!(json["user"], "obelix");
    // Timeout: exit status 6.
    let timed_out = store
        .mailtool_std()
        .args([
            "mbox",
            "wait",
            "obelix",
            "--subject",
            "never",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(timed_out.status.code(), Some(6));
    let purged = store
        .mailtool_std()
        .args(["mbox", "purge", "obelix"])
        .output()
        .unwrap();
    assert!(purged.status.success());
    assert_eq!(count_new(&store, "obelix"), 0);
}
