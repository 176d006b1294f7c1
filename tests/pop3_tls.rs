//! `serve-pop` with TLS, end to end: STLS on the plain port and implicit TLS on `--tls-port`,
//! with a self-signed certificate made here by `openssl req`. Independent clients check it:
//! `openssl s_client -starttls pop3`, curl (`pop3s://` and `--ssl-reqd`), Python's poplib, and
//! a raw socket upgraded with native-tls for the plaintext-injection case.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::have;
use support::pop3::{PopClient, PopServer};
use support::tls::{self_signed, self_signed_ec};
use support::TempStore;

/// A POP3 session over TLS.
type TlsClient = PopClient<native_tls::TlsStream<TcpStream>>;

/// A `serve-pop` with the certificate, plain port and (with `--tls-port 0`) the TLS port.
struct TlsSetup {
    store: TempStore,
    cert: PathBuf,
    server: PopServer,
}

impl TlsSetup {
    fn start(extra: &[&str]) -> TlsSetup {
        let store = TempStore::demo();
        let (cert, key) = self_signed(store.scratch());
        let mut args = vec![
            "--tls-cert".to_owned(),
            cert.to_str().unwrap().to_owned(),
            "--tls-key".to_owned(),
            key.to_str().unwrap().to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = PopServer::start(&store.path(), &args);
        TlsSetup {
            store,
            cert,
            server,
        }
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn tls_port(&self) -> u16 {
        self.server
            .tls_addr()
            .expect("started with --tls-port")
            .port()
    }

    /// The server's log after SIGTERM (which must end it cleanly).
    fn stop_and_log(mut self) -> String {
        assert!(self.server.signal_and_wait(libc::SIGTERM).success());
        self.server.stderr()
    }

    fn connector(&self) -> native_tls::TlsConnector {
        connector_trusting(&self.cert)
    }
}

/// A TLS client that trusts `cert` (and the system roots).
fn connector_trusting(cert: &Path) -> native_tls::TlsConnector {
    let pem = std::fs::read(cert).unwrap();
    native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// Connect to the plain port, read the greeting, send `before_handshake` in one write, read
/// `replies` lines, then do the TLS handshake; returns the replies and the encrypted stream.
fn stls(setup: &TlsSetup, before_handshake: &[u8], replies: usize) -> (Vec<String>, TlsClient) {
    let mut plain = setup.server.connect();
    assert!(plain
        .greeting
        .starts_with("+OK mailtool POP3 server ready <"));
    plain.send_raw(before_handshake);
    let got: Vec<String> = (0..replies).map(|_| plain.read_line()).collect();
    // into_stream fails if the server sent more in the clear after STLS.
    let tls = setup
        .connector()
        .connect("localhost", plain.into_stream())
        .expect("TLS handshake after STLS");
    (got, PopClient::over(tls))
}

#[test]
fn stls_with_openssl_s_client_verifies_and_serves() {
    if !have("openssl") {
        return;
    }
    let setup = TlsSetup::start(&[]);
    let s_client = |trust: bool| -> Output {
        let mut command = Command::new("openssl");
        command
            .args(["s_client", "-starttls", "pop3", "-connect"])
            .arg(setup.server.addr().to_string())
            .args(["-verify_return_error", "-quiet"]);
        // Without -CAfile only the system roots are trusted, which do not know ours.
        if trust {
            command.arg("-CAfile").arg(&setup.cert);
        }
        // -quiet implies -ign_eof: s_client keeps reading until the server closes.
        support::output_with_stdin(
            &mut command,
            b"CAPA\r\nUSER asterix\r\nPASS potion\r\nSTAT\r\nSTLS\r\nQUIT\r\n",
        )
    };
    let output = s_client(true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let capa_start = stdout.find("+OK capability list follows\r\n").unwrap();
    let capa_end = capa_start + stdout[capa_start..].find("\r\n.\r\n").unwrap();
    let capa = &stdout[capa_start..capa_end];
    assert!(
        capa.contains("\r\nUSER") && !capa.contains("STLS"),
        "{capa}"
    );
    let after_capa = &stdout[capa_end + 5..];
    assert_eq!(
        after_capa,
        "+OK send PASS\r\n\
         +OK asterix has 8 messages (28103 octets)\r\n\
         +OK 8 28103\r\n\
         -ERR STLS is only allowed before login\r\n\
         +OK mailtool POP3 server signing off (8 messages left)\r\n"
    );

    let refused = s_client(false);
    assert!(!refused.status.success(), "an unknown certificate passed");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("verify error"), "{stderr}");
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("+OK send PASS"));
    let log = setup.stop_and_log();
    assert!(log.contains("tls established mode=stls"), "{log}");
    assert!(
        log.contains("tls handshake failed mode=stls"),
        "the refused handshake is logged: {log}"
    );
}

#[test]
fn curl_over_pop3s_and_over_stls_with_ssl_reqd() {
    if !have("curl") {
        return;
    }
    let setup = TlsSetup::start(&["--tls-port", "0"]);
    let curl =
        |args: &[&str]| -> Output { Command::new("curl").arg("-sS").args(args).output().unwrap() };
    let ok = |output: Output| -> String {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let cert = setup.cert.to_str().unwrap();
    let plain_url = |path: &str| format!("pop3://asterix:potion@127.0.0.1:{}/{path}", setup.port());
    let tls_url = |path: &str| {
        format!(
            "pop3s://asterix:potion@127.0.0.1:{}/{path}",
            setup.tls_port()
        )
    };
    // The same message over plain POP3, implicit TLS and STLS.
    let plain = ok(curl(&[&plain_url("1")]));
    assert!(plain.contains("Subject: Wild boar hunt tonight"), "{plain}");
    assert_eq!(ok(curl(&["--cacert", cert, &tls_url("1")])), plain);
    assert_eq!(
        ok(curl(&["--ssl-reqd", "--cacert", cert, &plain_url("1")])),
        plain
    );
    let listing = ok(curl(&["--ssl-reqd", "--cacert", cert, &plain_url("")]));
    assert!(listing.starts_with("1 838\r\n2 1564\r\n"), "{listing}");
    // Without the certificate, curl refuses the server (60: peer certificate not verified);
    // the server logs the failed handshake and carries on.
    let refused = curl(&[&tls_url("1")]);
    assert_eq!(refused.status.code(), Some(60), "{refused:?}");
    assert_eq!(ok(curl(&["--cacert", cert, &tls_url("")])), listing);
    let log = setup.stop_and_log();
    assert!(log.contains("tls established mode=implicit"), "{log}");
    assert!(log.contains("tls established mode=stls"), "{log}");
    assert!(log.contains("tls handshake failed mode=implicit"), "{log}");
}

#[test]
fn curl_ssl_reqd_fails_against_a_server_without_a_certificate() {
    if !have("curl") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let output = Command::new("curl")
        .args(["-sS", "--ssl-reqd"])
        .arg(format!(
            "pop3://asterix:potion@127.0.0.1:{}/",
            server.port()
        ))
        .output()
        .unwrap();
    // 64: "requested SSL level failed" — STLS is not offered, so curl does not log in.
    assert_eq!(output.status.code(), Some(64), "{output:?}");
}

#[test]
fn python_poplib_stls_then_login_and_retr() {
    let setup = TlsSetup::start(&["--tls-port", "0"]);
    let script = r#"
import poplib, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
box = poplib.POP3("127.0.0.1", int(sys.argv[2]), timeout=20)
print("before", sorted(box.capa()))
print(box.stls(context).decode())
print("after", sorted(box.capa()))
box.user("obelix")
box.pass_("menhir")
resp, lines, octets = box.retr(2)
print("retr", resp.decode(), octets)
encrypted = b"\r\n".join(lines)
box.quit()
implicit = poplib.POP3_SSL("localhost", int(sys.argv[3]), context=context, timeout=20)
implicit.user("obelix")
implicit.pass_("menhir")
resp, lines, octets = implicit.retr(2)
print("same over POP3S", b"\r\n".join(lines) == encrypted)
implicit.quit()
"#;
    let cert = setup.cert.to_str().unwrap();
    let (port, tls_port) = (setup.port().to_string(), setup.tls_port().to_string());
    let stdout = support::python(script, [cert, &port, &tls_port]);
    let stdout = String::from_utf8_lossy(&stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "before ['AUTH-RESP-CODE', 'EXPIRE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'STLS', 'TOP', 'UIDL', 'USER']",
            "+OK Begin TLS negotiation",
            "after ['AUTH-RESP-CODE', 'EXPIRE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'TOP', 'UIDL', 'USER']",
            "retr +OK 783 octets 783",
            "same over POP3S True",
        ]
    );
    // RETR over TLS marked message 2 Seen, as it does in the clear.
    let seen: Vec<PathBuf> = setup
        .store
        .messages("obelix")
        .into_iter()
        .filter(|p| p.to_str().unwrap().ends_with(":2,S"))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen
        .iter()
        .any(|p| p.to_str().unwrap().contains("1700047310.")));
}

#[test]
fn plaintext_sent_after_stls_is_discarded_not_answered() {
    let setup = TlsSetup::start(&["--trace"]);
    // CVE-2011-0411: a man in the middle appends CAPA to the client's STLS packet.
    let (replies, mut tls) = stls(&setup, b"STLS\r\nCAPA\r\n", 1);
    assert_eq!(replies, ["+OK Begin TLS negotiation\r\n"]);
    // Had the injected CAPA been kept, its answer would come before NOOP's.
    assert_eq!(
        tls.command("NOOP"),
        "-ERR log in first (USER and PASS, APOP or AUTH)\r\n"
    );
    let after = tls.capa();
    assert!(!after.contains(&"STLS".to_owned()), "{after:?}");
    assert_eq!(tls.command("STLS"), "-ERR TLS is already active\r\n");

    // Pipelined before STLS: CAPA is answered in the clear, the USER after STLS is dropped,
    // so PASS has no user to go with.
    let (replies, mut tls) = stls(&setup, b"CAPA\r\nSTLS\r\nUSER asterix\r\n", 13);
    assert_eq!(replies[0], "+OK capability list follows\r\n");
    assert!(replies.contains(&"STLS\r\n".to_owned()), "{replies:?}");
    assert_eq!(replies[11..], [".\r\n", "+OK Begin TLS negotiation\r\n"]);
    assert_eq!(tls.command("PASS potion"), "-ERR send USER first\r\n");
    assert_eq!(tls.command("USER asterix"), "+OK send PASS\r\n");
    assert!(tls
        .command("PASS potion")
        .starts_with("+OK asterix has 8 messages"));
    assert_eq!(
        tls.command("QUIT"),
        "+OK mailtool POP3 server signing off (8 messages left)\r\n"
    );
    let log = setup.stop_and_log();
    assert!(log.contains("C: <6 octets after STLS discarded>"), "{log}");
    assert!(log.contains("C: <14 octets after STLS discarded>"), "{log}");
    // The dropped USER never reached the session; only the encrypted one did.
    assert_eq!(log.matches("] C: USER asterix\n").count(), 1, "{log}");
}

#[test]
fn require_tls_refuses_logins_until_stls_and_hides_them_from_capa() {
    let setup = TlsSetup::start(&["--require-tls", "--tls-port", "0"]);
    let mut plain = setup.server.connect();
    let before = plain.capa();
    assert!(before.contains(&"STLS".to_owned()), "{before:?}");
    assert!(
        !before.iter().any(|l| l == "USER" || l.starts_with("SASL")),
        "{before:?}"
    );
    let refused = "-ERR [SYS/PERM] TLS required: use STLS first\r\n";
    assert_eq!(plain.command("USER asterix"), refused);
    assert_eq!(plain.command("PASS potion"), refused);
    assert_eq!(plain.command("AUTH PLAIN AGFzdGVyaXgAcG90aW9u"), refused);
    assert_eq!(
        plain.command("APOP asterix 0123456789abcdef0123456789abcdef"),
        refused
    );
    assert_eq!(
        plain.command("STAT"),
        "-ERR log in first (USER and PASS, APOP or AUTH)\r\n"
    );
    assert!(plain.command("QUIT").starts_with("+OK"));

    let (_, mut tls) = stls(&setup, b"STLS\r\n", 1);
    let after = tls.capa();
    assert!(
        after.contains(&"USER".to_owned()) && after.contains(&"SASL PLAIN".to_owned()),
        "{after:?}"
    );
    assert!(!after.contains(&"STLS".to_owned()), "{after:?}");
    assert_eq!(tls.command("USER asterix"), "+OK send PASS\r\n");
    assert!(tls
        .command("PASS potion")
        .starts_with("+OK asterix has 8 messages"));
    assert!(tls.command("QUIT").starts_with("+OK"));

    // The implicit-TLS port starts encrypted: logins right away, no STLS offered.
    let stream = TcpStream::connect(setup.server.tls_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut implicit = PopClient::over(setup.connector().connect("localhost", stream).unwrap());
    assert!(implicit
        .read_line()
        .starts_with("+OK mailtool POP3 server ready <"));
    let caps = implicit.capa();
    assert!(caps.contains(&"USER".to_owned()) && !caps.contains(&"STLS".to_owned()));
    assert_eq!(implicit.command("STLS"), "-ERR TLS is already active\r\n");
    assert_eq!(implicit.command("USER obelix"), "+OK send PASS\r\n");
    assert!(implicit
        .command("PASS menhir")
        .starts_with("+OK obelix has 4 messages"));
    assert!(implicit.command("QUIT").starts_with("+OK"));
}

#[test]
fn python_poplib_login_before_stls_gets_the_tls_required_error() {
    let setup = TlsSetup::start(&["--require-tls"]);
    let script = r#"
import poplib, sys
box = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
try:
    box.user("asterix")
except poplib.error_proto as error:
    print(error.args[0].decode())
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(setup.port().to_string())
        .output()
        .expect("python3 is on PATH");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "-ERR [SYS/PERM] TLS required: use STLS first\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_failed_handshake_closes_only_that_connection() {
    let setup = TlsSetup::start(&["--tls-port", "0", "--log-format", "json"]);
    // Plain text on the TLS port.
    let mut garbage = TcpStream::connect(setup.server.tls_addr().unwrap()).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    garbage.write_all(b"USER asterix\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"+OK"), "{rest:?}");
    // STLS, then plain text instead of a ClientHello.
    let mut client = setup.server.connect();
    assert_eq!(client.command("STLS"), "+OK Begin TLS negotiation\r\n");
    client.send_raw(b"CAPA\r\n");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(!rest.windows(3).any(|w| w == b"+OK"), "{rest:?}");
    // An open plain session is untouched, and both ports still serve.
    let mut other = setup.server.connect();
    assert!(other
        .login("obelix", "menhir")
        .starts_with("+OK obelix has 4"));
    let (_, mut tls) = stls(&setup, b"STLS\r\n", 1);
    assert!(tls.command("USER asterix").starts_with("+OK"));
    assert!(tls.command("PASS potion").starts_with("+OK asterix has 8"));
    let stream = TcpStream::connect(setup.server.tls_addr().unwrap()).unwrap();
    let mut implicit = PopClient::over(setup.connector().connect("localhost", stream).unwrap());
    assert!(implicit
        .read_line()
        .starts_with("+OK mailtool POP3 server ready"));
    assert_eq!(other.command("STAT"), "+OK 4 3205\r\n");
    drop((other, tls, implicit));

    let log = setup.stop_and_log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "tls_failed")
        .collect();
    // The handshake drops the socket before the log line is written, so order is loose.
    let mut modes: Vec<&str> = failed.iter().map(|e| e["mode"].as_str().unwrap()).collect();
    modes.sort_unstable();
    assert_eq!(modes, ["implicit", "stls"], "{log}");
    assert!(failed
        .iter()
        .all(|e| e["error"].as_str().is_some_and(|t| !t.is_empty())));
    let established: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "tls_established")
        .map(|e| e["mode"].as_str().unwrap())
        .collect();
    assert_eq!(established, ["stls", "implicit"]);
    let tls_disconnects = events
        .iter()
        .filter(|e| e["event"] == "disconnect" && e["reason"] == "tls_failed")
        .count();
    assert_eq!(tls_disconnects, 2, "{log}");
}

#[test]
fn json_stdout_has_both_addresses() {
    let store = TempStore::demo();
    let (cert, key) = self_signed(store.scratch());
    let mut command = store.mailtool_std();
    command
        .args(["--json", "serve-pop", "--port", "0", "--tls-port", "0"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = || stdout.next().unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&next_line()).unwrap();
    let second: serde_json::Value = serde_json::from_str(&next_line()).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first.as_object().unwrap().len(), 1, "{first}");
    assert!(first["listening"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(second["tls"], true);
    assert_ne!(first["listening"], second["listening"]);
}

/// `serve-pop` with these TLS files must fail at startup, before listening.
fn startup_error(store: &TempStore, cert: &Path, key: &Path) -> String {
    let output = store
        .mailtool()
        .args(["serve-pop", "--port", "0", "--tls-port", "0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "it listened before failing");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn bad_certificate_or_key_files_stop_the_server_with_one_line() {
    let store = TempStore::demo();
    let dir = store.scratch();
    let (cert, key) = self_signed(dir);
    let missing = dir.join("x.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();

    let error = startup_error(&store, &missing, &key);
    assert_eq!(
        error,
        format!(
            "error: cannot load TLS certificate {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let error = startup_error(&store, &cert, &missing);
    assert!(
        error.starts_with(&format!(
            "error: cannot load TLS key {}: No such file",
            missing.display()
        )),
        "{error}"
    );
    let error = startup_error(&store, &garbage, &key);
    assert!(
        error.starts_with(&format!(
            "error: cannot load TLS certificate {}: no certificate found",
            garbage.display()
        )),
        "{error}"
    );
    let error = startup_error(&store, &cert, &garbage);
    assert!(error.contains("no private key found"), "{error}");
    // A certificate block whose contents are not a certificate.
    let damaged = dir.join("damaged.pem");
    std::fs::write(
        &damaged,
        "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(startup_error(&store, &damaged, &key).contains("is damaged"));

    // An encrypted key: the error says why and gives the command, whose output works.
    let encrypted = dir.join("encrypted.pem");
    openssl(
        &["pkcs8", "-topk8", "-passout", "pass:gaul", "-in"],
        &key,
        &encrypted,
    );
    let error = startup_error(&store, &cert, &encrypted);
    let fix = format!("openssl pkey -in {0} -out {0}.plain", encrypted.display());
    assert!(
        error.contains("passphrase") && error.contains(&fix),
        "{error}"
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{fix} -passin pass:gaul"))
        .status()
        .unwrap();
    assert!(status.success());
    let decrypted = PathBuf::from(format!("{}.plain", encrypted.display()));
    assert_handshake_works(&cert, &decrypted);

    // A key that belongs to another certificate.
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key) = self_signed(&other);
    let error = startup_error(&store, &cert, &other_key);
    assert!(
        error.contains("does not belong to the certificate"),
        "{error}"
    );
    // The key given as the certificate and the other way round.
    assert!(startup_error(&store, &key, &key).contains("no certificate found"));
    assert!(startup_error(&store, &cert, &cert).contains("no private key found"));
}

/// `openssl ARGS IN -out OUT`, which must succeed.
fn openssl(args: &[&str], input: &Path, output: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .arg(input)
        .arg("-out")
        .arg(output)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// serve-pop starts with `cert` and `key`, and a client trusting `cert` logs in over STLS.
fn assert_handshake_works(cert: &Path, key: &Path) {
    let store = TempStore::demo();
    let mut server = PopServer::start(
        &store.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut client = server.connect();
    assert_eq!(client.command("STLS"), "+OK Begin TLS negotiation\r\n");
    let tls = connector_trusting(cert)
        .connect("localhost", client.into_stream())
        .unwrap_or_else(|error| panic!("handshake with {}: {error}", key.display()));
    let mut tls = PopClient::over(tls);
    assert_eq!(tls.command("USER asterix"), "+OK send PASS\r\n");
    assert!(server.signal_and_wait(libc::SIGTERM).success());
}

#[test]
fn keys_load_in_every_plain_pem_form_dovecot_takes() {
    if !have("openssl") {
        return;
    }
    let store = TempStore::empty();
    let dir = store.scratch();
    let (cert, key) = self_signed(dir);
    let (ec_cert, ec_key) = self_signed_ec(dir);
    // What `openssl req -nodes` writes: PKCS#8.
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_handshake_works(&cert, &key);
    assert_handshake_works(&ec_cert, &ec_key);

    // The traditional forms: PKCS#1 RSA and SEC1 EC.
    let pkcs1 = dir.join("rsa.pem");
    openssl(&["rsa", "-traditional", "-in"], &key, &pkcs1);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert_handshake_works(&cert, &pkcs1);
    let sec1 = dir.join("sec1.pem");
    openssl(&["ec", "-in"], &ec_key, &sec1);
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert_handshake_works(&ec_cert, &sec1);

    // A traditional key encrypted the old way (Proc-Type header) is refused, not prompted for.
    let legacy = dir.join("legacy.pem");
    openssl(
        &[
            "rsa",
            "-traditional",
            "-aes128",
            "-passout",
            "pass:gaul",
            "-in",
        ],
        &key,
        &legacy,
    );
    let error = startup_error(&store, &cert, &legacy);
    assert!(error.contains("passphrase"), "{error}");
}

/// The TLS version `openssl s_client -starttls pop3 VERSION_FLAG` agreed on with `addr`, or
/// None when the handshake failed.
fn negotiated_version(addr: SocketAddr, cert: &Path, version_flag: &str) -> Option<String> {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-starttls",
            "pop3",
            "-brief",
            version_flag,
            "-connect",
        ])
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("Protocol version: "))
        .map(str::to_owned)
}

#[test]
fn speaks_tls_1_3_and_1_2_but_not_1_1_like_dovecot() {
    if !have("openssl") {
        return;
    }
    let setup = TlsSetup::start(&[]);
    let store = TempStore::demo();
    let (cert, key) = self_signed(store.scratch());
    let Some(dovecot) = support::dovecot::Dovecot::start_with_ssl(&store.path(), &cert, &key)
    else {
        return;
    };
    let dovecot_addr = SocketAddr::from(([127, 0, 0, 1], dovecot.pop3_port));
    for (flag, expected) in [
        ("-tls1_3", Some("TLSv1.3")),
        ("-tls1_2", Some("TLSv1.2")),
        ("-tls1_1", None),
    ] {
        let ours = negotiated_version(setup.server.addr(), &setup.cert, flag);
        let theirs = negotiated_version(dovecot_addr, &cert, flag);
        assert_eq!(ours.as_deref(), expected, "serve-pop with {flag}");
        assert_eq!(ours, theirs, "serve-pop and Dovecot differ with {flag}");
    }
    let log = setup.stop_and_log();
    assert!(log.contains("tls established mode=stls"), "{log}");
}

#[test]
fn tls_port_rules_match_the_plain_port() {
    let store = TempStore::demo();
    let (cert, key) = self_signed(store.scratch());
    let taken = PopServer::start(&store.path(), &[]);
    let port = taken.port().to_string();
    let output = store
        .mailtool()
        .args([
            "serve-pop",
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert",
        ])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("pick another --tls-port"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing printed before both are bound"
    );
    // The same port twice.
    let output = store
        .mailtool()
        .args([
            "serve-pop",
            "--port",
            "1100",
            "--tls-port",
            "1100",
            "--tls-cert",
        ])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a port of its own"));
    // --tls-port and --require-tls need a certificate (a usage error).
    let output = store
        .mailtool()
        .args(["serve-pop", "--port", "0", "--require-tls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A scripted STLS dialogue, reduced to what both servers must agree on: each reply's status
/// (`+OK`/`-ERR`), whether CAPA lists STLS, and the bytes of RETR 1 over TLS.
fn stls_dialogue(plain: SocketAddr, tls: SocketAddr, cert: &Path) -> (Vec<String>, Vec<u8>) {
    let status = |reply: String| reply.split(' ').next().unwrap().trim_end().to_owned();
    let mut seen = Vec::new();
    let mut reader = PopClient::from_stream(TcpStream::connect(plain).unwrap());
    seen.push(status(reader.read_line()));
    reader.send_raw(b"CAPA\r\n");
    seen.push(status(reader.read_line()));
    let before = reader.read_multiline();
    seen.push(format!(
        "STLS offered: {}",
        before.contains(&"STLS".to_owned())
    ));
    reader.send_raw(b"STLS\r\n");
    seen.push(status(reader.read_line()));
    let tls_stream = connector_trusting(cert)
        .connect("localhost", reader.into_stream())
        .unwrap();
    let mut reader = PopClient::over(tls_stream);
    // The first reply after the handshake is NOOP's (before login: -ERR on both).
    seen.push(format!(
        "after handshake: {}",
        status(reader.command("NOOP"))
    ));
    seen.push(status(reader.command("CAPA")));
    let after = reader.read_multiline();
    seen.push(format!(
        "STLS offered: {}",
        after.contains(&"STLS".to_owned())
    ));
    seen.push(format!("STLS again: {}", status(reader.command("STLS"))));
    seen.push(status(reader.command("USER asterix")));
    seen.push(status(reader.command("PASS potion")));
    seen.push(format!(
        "STLS logged in: {}",
        status(reader.command("STLS"))
    ));
    seen.push(status(reader.command("QUIT")));

    let stream = TcpStream::connect(tls).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = PopClient::over(
        connector_trusting(cert)
            .connect("localhost", stream)
            .unwrap(),
    );
    seen.push(status(reader.read_line()));
    seen.push(status(reader.command("USER asterix")));
    seen.push(status(reader.command("PASS potion")));
    seen.push(status(reader.command("RETR 1")));
    let body = reader.read_multiline_raw();
    // No QUIT: nothing is marked Seen or removed in either store.
    (seen, body)
}

#[test]
fn stls_and_pop3s_behave_like_dovecot() {
    let theirs = TempStore::demo();
    let (cert, key) = self_signed(theirs.scratch());
    let Some(dovecot) = support::dovecot::Dovecot::start_with_ssl(&theirs.path(), &cert, &key)
    else {
        return;
    };
    let dovecot_plain: SocketAddr = ([127, 0, 0, 1], dovecot.pop3_port).into();
    let dovecot_tls: SocketAddr = ([127, 0, 0, 1], dovecot.pop3s_port.unwrap()).into();
    let (theirs_seen, theirs_body) = stls_dialogue(dovecot_plain, dovecot_tls, &cert);

    let ours = TlsSetup::start(&["--tls-port", "0"]);
    let (ours_seen, ours_body) = stls_dialogue(
        ours.server.addr(),
        ours.server.tls_addr().unwrap(),
        &ours.cert,
    );
    assert_eq!(ours_seen, theirs_seen, "{}", dovecot.log());
    // Plaintext after STLS: serve-pop drops it and goes on (tested above); Dovecot feeds it
    // to the handshake, which fails and closes. Neither answers it.
    let mut reader = PopClient::connect(dovecot_plain);
    reader.send_raw(b"STLS\r\nCAPA\r\n");
    assert!(reader.read_line().starts_with("+OK"));
    let handshake = connector_trusting(&cert).connect("localhost", reader.into_stream());
    assert!(handshake.is_err(), "Dovecot took the injected CAPA");
    assert_eq!(
        ours_seen[..8],
        [
            "+OK",
            "+OK",
            "STLS offered: true",
            "+OK",
            "after handshake: -ERR",
            "+OK",
            "STLS offered: false",
            "STLS again: -ERR",
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&ours_body),
        String::from_utf8_lossy(&theirs_body)
    );
}

#[test]
fn a_large_message_arrives_whole_over_both_kinds_of_tls() {
    if !have("curl") {
        return;
    }
    let setup = TlsSetup::start(&["--tls-port", "0"]);
    // About 1.2 MiB, many times the server's 64 KiB write batches, with lines to dot-stuff.
    let mut mail = b"Subject: large\n\n".to_vec();
    for i in 0..16_000 {
        mail.extend_from_slice(format!(".line {i} {}\n", "x".repeat(64)).as_bytes());
    }
    let file = setup.store.scratch().join("large.eml");
    std::fs::write(&file, &mail).unwrap();
    setup
        .store
        .mailtool()
        .args(["mbox", "deliver", "obelix"])
        .arg(&file)
        .assert()
        .success();
    let expected: Vec<u8> = String::from_utf8(mail)
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let cert = setup.cert.to_str().unwrap();
    for url in [
        format!("pop3s://obelix:menhir@127.0.0.1:{}/5", setup.tls_port()),
        format!("pop3://obelix:menhir@127.0.0.1:{}/5", setup.port()),
    ] {
        let output = Command::new("curl")
            .args(["-sS", "--ssl-reqd", "--cacert", cert, &url])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.stdout == expected, "{url}: the body differs");
    }
}
