//! serve-smtp with independent peers: the swaks, msmtp and curl clients, and Dovecot's LMTP
//! server as a reference (the same messages delivered by both give the same bytes in the
//! Maildir, apart from the trace headers each adds).

mod support;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dovecot::Dovecot;
use support::pop3::PopServer;
use support::TempStore;

fn serve(store: &TempStore, extra: &[&str]) -> PopServer {
    PopServer::spawn_as(store.mailtool_std(), &["serve-smtp", "--port", "0"], extra)
}

/// The messages of a Maildir's new/ in delivery order.
fn delivered(maildir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = fs::read_dir(maildir.join("new"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let secs: u64 = name.split('.').next().unwrap().parse().unwrap_or(0);
        let micros: u64 = name
            .split(".M")
            .nth(1)
            .and_then(|r| r.split('P').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        (secs, micros, name)
    });
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// A message without the trace header lines an MDA puts on top.
fn without_trace(message: &[u8]) -> Vec<u8> {
    let text = message;
    let mut at = 0;
    let mut skipping = false;
    while at < text.len() {
        let end = text[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| at + p + 1);
        let line = &text[at..end];
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        let trace = ["Return-Path:", "Delivered-To:", "Received:"]
            .iter()
            .any(|h| line.len() >= h.len() && line[..h.len()].eq_ignore_ascii_case(h.as_bytes()));
        if trace || (skipping && continuation) {
            skipping = true;
            at = end;
        } else {
            break;
        }
    }
    text[at..].to_vec()
}

fn send_mail(port: u16, to: &str, subject: &str) -> String {
    format!(
        "From: tester@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nsent on port {port}\r\n"
    )
}

#[test]
fn swaks_delivers() {
    if !support::have("swaks") {
        return;
    }
    let store = TempStore::demo();
    let before = delivered(&store.path().join("asterix")).len();
    let server = serve(&store, &["--auth", "optional"]);
    let status = Command::new("swaks")
        .args([
            "--server",
            &server.addr().to_string(),
            "--to",
            "asterix@localhost",
        ])
        .args([
            "--from",
            "swaks@example.org",
            "--header",
            "Subject: from swaks",
        ])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            "obelix",
            "--auth-password",
            "menhir",
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let mail = delivered(&store.path().join("asterix"));
    assert_eq!(mail.len(), before + 1);
    assert!(String::from_utf8_lossy(mail.last().unwrap()).contains("Subject: from swaks"));
    // swaks's default pipelined-quit and a refused relay.
    let relay = Command::new("swaks")
        .args([
            "--server",
            &server.addr().to_string(),
            "--to",
            "someone@example.com",
        ])
        .output()
        .unwrap();
    assert!(!relay.status.success());
    assert!(String::from_utf8_lossy(&relay.stdout).contains("550 5.7.1"));
}

#[test]
fn msmtp_delivers() {
    if !support::have("msmtp") {
        return;
    }
    let store = TempStore::demo();
    let before = delivered(&store.path().join("obelix")).len();
    let server = serve(&store, &[]);
    let output = support::output_with_stdin(
        Command::new("msmtp")
            .args(["--host=127.0.0.1", &format!("--port={}", server.port())])
            .args([
                "--from=msmtp@example.org",
                "--auth=off",
                "--tls=off",
                "obelix@localhost",
            ]),
        send_mail(server.port(), "obelix@localhost", "from msmtp").as_bytes(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mail = delivered(&store.path().join("obelix"));
    assert_eq!(mail.len(), before + 1);
    assert!(String::from_utf8_lossy(mail.last().unwrap()).contains("Subject: from msmtp"));
}

#[test]
fn curl_delivers() {
    if !support::have("curl") {
        return;
    }
    let store = TempStore::demo();
    let before = delivered(&store.path().join("asterix")).len();
    let server = serve(&store, &[]);
    let mail = store.scratch().join("mail.txt");
    fs::write(
        &mail,
        send_mail(server.port(), "asterix@localhost", "from curl"),
    )
    .unwrap();
    let output = Command::new("curl")
        .args(["-sS", &format!("smtp://127.0.0.1:{}", server.port())])
        .args([
            "--mail-from",
            "curl@example.org",
            "--mail-rcpt",
            "asterix@localhost",
        ])
        .arg("--upload-file")
        .arg(&mail)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let all = delivered(&store.path().join("asterix"));
    assert_eq!(all.len(), before + 1);
    assert!(String::from_utf8_lossy(all.last().unwrap()).contains("Subject: from curl"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send every testdata mail over LMTP (Python's smtplib.LMTP, CRLF line ends) to `port`.
fn lmtp_send_all(port: u16, files: &[PathBuf]) {
    let mut args = vec![port.to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    support::python(
        r#"
import smtplib, sys
s = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo_or_helo_if_needed = lambda: s.ehlo('client.example.org')
for path in sys.argv[2:]:
    data = open(path, 'rb').read()
    data = data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
    refused = s.sendmail('sender@example.org', ['asterix@localhost'], data)
    assert refused == {}, (path, refused)
s.quit()
"#,
        args,
    );
}

#[test]
fn same_bytes_as_dovecot_lmtp_apart_from_trace_headers() {
    let Some(_) = support::dovecot::require_dovecot() else {
        return;
    };
    if !Path::new("/usr/lib/dovecot/lmtp").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "dovecot-lmtpd is required under CI"
        );
        eprintln!("dovecot-lmtpd is missing: skipped");
        return;
    }
    let mut mails: Vec<PathBuf> = fs::read_dir(support::testdata().join("mail"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    mails.sort();

    let ours = TempStore::demo();
    let ours_before = delivered(&ours.path().join("asterix")).len();
    let server = PopServer::spawn_as(
        ours.mailtool_std(),
        &["serve-smtp", "--lmtp", "--port", "0"],
        &[],
    );
    lmtp_send_all(server.port(), &mails);
    drop(server);

    let theirs = TempStore::demo();
    let theirs_before = delivered(&theirs.path().join("asterix")).len();
    let port = free_port();
    let dovecot = Dovecot::start_with(
        &theirs.path(),
        &format!(
            "protocols = imap pop3 lmtp\n\
             auth_username_format = %Ln\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n"
        ),
    )
    .expect("dovecot starts with an LMTP listener");
    lmtp_send_all(port, &mails);
    let ours_mail = delivered(&ours.path().join("asterix"));
    let theirs_mail = delivered(&theirs.path().join("asterix"));
    drop(dovecot);
    assert_eq!(ours_mail.len() - ours_before, mails.len());
    assert_eq!(theirs_mail.len() - theirs_before, mails.len());
    for (i, path) in mails.iter().enumerate() {
        let a = without_trace(&ours_mail[ours_before + i]);
        let b = without_trace(&theirs_mail[theirs_before + i]);
        assert!(
            a == b,
            "{} differs:\nmailtool:\n{}\ndovecot:\n{}",
            path.display(),
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
    }
}
