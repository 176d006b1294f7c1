//! Hostile clients against the real `serve-pop` binary: bad user names at every login
//! command (the CLI's entry points are covered in `tests/mbox.rs`), symbolic links out of
//! the store, password guessing, connection floods, and passwords leaking into logs or
//! traces.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::thread;
use std::time::{Duration, Instant};

use mailtool::pop3::session::SessionConfig;
use md5::{Digest, Md5};
use support::pop3::{PopClient, PopServer};
use support::TempStore;

fn apop_digest(timestamp: &str, password: &str) -> String {
    let digest = Md5::digest(format!("{timestamp}{password}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sasl_plain(authzid: &str, user: &str, password: &str) -> String {
    data_encoding::BASE64.encode(format!("{authzid}\0{user}\0{password}").as_bytes())
}

/// How a login attempt is made.
#[derive(Debug, Clone, Copy)]
enum Mechanism {
    UserPass,
    Apop,
    AuthPlainInitial,
    AuthPlainContinued,
}

const MECHANISMS: [Mechanism; 4] = [
    Mechanism::UserPass,
    Mechanism::Apop,
    Mechanism::AuthPlainInitial,
    Mechanism::AuthPlainContinued,
];

/// Try one login on a fresh connection; the reply to the command that carries the secret.
fn attempt(server: &PopServer, mechanism: Mechanism, user: &str, password: &str) -> String {
    let mut client = server.connect();
    attempt_on(&mut client, mechanism, user, password)
}

fn attempt_on(client: &mut PopClient, mechanism: Mechanism, user: &str, pw: &str) -> String {
    match mechanism {
        Mechanism::UserPass => {
            let reply = client.command(&format!("USER {user}"));
            if reply.starts_with("-ERR") {
                return reply;
            }
            client.command(&format!("PASS {pw}"))
        }
        Mechanism::Apop => {
            let digest = apop_digest(client.apop_timestamp(), pw);
            client.command(&format!("APOP {user} {digest}"))
        }
        Mechanism::AuthPlainInitial => {
            client.command(&format!("AUTH PLAIN {}", sasl_plain("", user, pw)))
        }
        Mechanism::AuthPlainContinued => {
            let go_on = client.command("AUTH PLAIN");
            assert_eq!(go_on, "+ \r\n");
            client.command(&sasl_plain("", user, pw))
        }
    }
}

#[test]
fn bad_user_names_are_refused_at_every_login_command() {
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);
    let wrong_password = attempt(&server, Mechanism::UserPass, "asterix", "not-the-potion");
    assert!(
        wrong_password.starts_with("-ERR [AUTH]"),
        "{wrong_password}"
    );

    let long = "a".repeat(65);
    // Each bad name comes with asterix's real password: a name rule that folded case or
    // resolved paths would let these in.
    let names = ["../asterix", "Asterix", "asterix/../asterix", long.as_str()];
    thread::scope(|scope| {
        for name in names {
            for mechanism in MECHANISMS {
                let server = &server;
                let wrong_password = &wrong_password;
                scope.spawn(move || {
                    let mut client = server.connect();
                    let reply = attempt_on(&mut client, mechanism, name, "potion");
                    assert!(reply.starts_with("-ERR"), "{mechanism:?} {name:?}: {reply}");
                    // USER may refuse a malformed name on the spot (its syntax is public);
                    // everywhere else the reply is the wrong-password one, word for word.
                    if !matches!(mechanism, Mechanism::UserPass) || !reply.contains("user name (") {
                        assert_eq!(&reply, wrong_password, "{mechanism:?} {name:?}");
                    }
                    // Not logged in: a TRANSACTION command is refused.
                    let stat = client.command("STAT");
                    assert!(stat.starts_with("-ERR"), "{mechanism:?} {name:?}: {stat}");
                });
            }
        }
    });
    // Nothing was created for the bad names.
    let mut entries: Vec<_> = fs::read_dir(store.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    entries.sort();
    assert_eq!(entries, ["asterix", "obelix", "passwd"]);
}

#[test]
fn symbolic_links_out_of_the_store_are_never_served() {
    let store = TempStore::demo();
    let outside = store.scratch().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = "TOP-SECRET-5d41402abc4b2a76";
    fs::write(
        outside.join("secret.eml"),
        format!("Subject: {secret}\n\n{secret}\n"),
    )
    .unwrap();
    // A message file that is a symlink to a file outside the store.
    symlink(
        outside.join("secret.eml"),
        store
            .path()
            .join("asterix/new/1700099999.M1P1Q1.village,S=60,W=62"),
    )
    .unwrap();
    // A user whose folder is a symlink to a complete Maildir outside the store.
    let foreign = outside.join("maildir");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(foreign.join(sub)).unwrap();
    }
    fs::copy(
        outside.join("secret.eml"),
        foreign.join("new/1700099998.M1P1Q1.village"),
    )
    .unwrap();
    symlink(&foreign, store.path().join("idefix")).unwrap();
    let mut passwd = fs::read_to_string(store.path().join("passwd")).unwrap();
    passwd.push_str("idefix:{PLAIN}dogmatix\n");
    fs::write(store.path().join("passwd"), passwd).unwrap();
    // A mailbox whose cur/ is a symlink to a directory of messages outside the store.
    let sneaky_cur = outside.join("cur");
    fs::create_dir_all(&sneaky_cur).unwrap();
    fs::copy(
        outside.join("secret.eml"),
        sneaky_cur.join("1700099997.M1P1Q1.village:2,S"),
    )
    .unwrap();
    fs::remove_dir_all(store.path().join("obelix/cur")).unwrap();
    symlink(&sneaky_cur, store.path().join("obelix/cur")).unwrap();

    let server = PopServer::start(&store.path(), &[]);
    let mut transcript = String::new();

    let mut client = server.connect();
    client.login("asterix", "potion");
    let (count, _) = client.stat();
    assert_eq!(count, 8, "the symlinked message is not listed");
    for n in 1..=count {
        let (status, body) = client.retr_bytes(n);
        assert!(status.starts_with("+OK"));
        transcript.push_str(&String::from_utf8_lossy(&body));
    }
    transcript.push_str(&client.command("RETR 9"));
    assert!(client.command("QUIT").starts_with("+OK"));

    let mut client = server.connect();
    assert!(client.command("USER idefix").starts_with("+OK"));
    let reply = client.command("PASS dogmatix");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    transcript.push_str(&reply);
    // The session survives the refusal.
    assert!(client.command("QUIT").starts_with("+OK"));

    let mut client = server.connect();
    assert!(client.command("USER obelix").starts_with("+OK"));
    let reply = client.command("PASS menhir");
    transcript.push_str(&reply);
    if reply.starts_with("+OK") {
        let (count, _) = client.stat();
        for n in 1..=count {
            let (_, body) = client.retr_bytes(n);
            transcript.push_str(&String::from_utf8_lossy(&body));
        }
        for line in client.multiline("TOP 1 0").1 {
            transcript.push_str(&line);
        }
    } else {
        assert!(reply.starts_with("-ERR [SYS/"), "{reply}");
    }
    assert!(
        !transcript.contains(secret),
        "served a file outside the store"
    );
    assert!(fs::read_to_string(outside.join("secret.eml"))
        .unwrap()
        .contains(secret));
}

#[test]
fn failed_logins_are_slowed_down_then_the_connection_closes() {
    let delay = SessionConfig::default().failed_login_delay;
    let max_failures = SessionConfig::default().max_failed_logins;
    assert!(delay >= Duration::from_millis(100), "{delay:?}");
    let store = TempStore::demo();
    let server = PopServer::start(&store.path(), &[]);

    for mechanism in MECHANISMS {
        let mut client = server.connect();
        for failure in 1..=max_failures {
            let started = Instant::now();
            let reply = attempt_on(&mut client, mechanism, "asterix", "guess");
            let waited = started.elapsed();
            assert!(reply.starts_with("-ERR [AUTH]"), "{mechanism:?}: {reply}");
            // A lower bound only: the delay is what makes guessing slow.
            assert!(
                waited >= delay,
                "{mechanism:?} failure {failure} answered after {waited:?}"
            );
        }
        let last = client.read_line();
        assert!(last.starts_with("-ERR"), "{last}");
        assert!(client.is_closed(Duration::from_secs(5)), "{mechanism:?}");
    }
    // Failures do not lock the account: the right password still works right away.
    let mut client = server.connect();
    let started = Instant::now();
    client.login("asterix", "potion");
    assert!(client.command("QUIT").starts_with("+OK"));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(server.stderr_shows("login failed"), "{}", server.stderr());
}

#[test]
fn connections_per_address_are_capped() {
    let store = TempStore::demo();
    let cap = 5;
    let server = PopServer::start(&store.path(), &["--max-connections-per-ip", "5"]);
    let open: Vec<PopClient> = (0..cap).map(|_| server.connect()).collect();
    let stream = std::net::TcpStream::connect(server.addr()).unwrap();
    let mut refused = PopClient::from_stream(stream);
    let reply = refused.read_line();
    assert!(reply.starts_with("-ERR [SYS/TEMP]"), "{reply}");
    assert!(refused.is_closed(Duration::from_secs(5)));
    assert!(server.stderr_shows("too many connections from this address"));

    // The open sessions are unaffected, and a closed one frees its slot.
    let mut open = open;
    for client in &mut open {
        assert!(client.command("NOOP").starts_with("-ERR"), "not logged in");
    }
    let mut first = open.remove(0);
    assert!(first.command("QUIT").starts_with("+OK"));
    assert!(first.is_closed(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = std::net::TcpStream::connect(server.addr()).unwrap();
        let mut client = PopClient::from_stream(stream);
        let greeting = client.read_line();
        if greeting.starts_with("+OK") {
            break;
        }
        // The slot is freed when the server has finished closing the session.
        assert!(Instant::now() < deadline, "slot never freed: {greeting}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn passwords_never_reach_the_log_or_the_trace() {
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
        let mut server = PopServer::start(&store.path(), &["--trace", "--log-format", format]);
        for mechanism in MECHANISMS {
            let ok = attempt(&server, mechanism, "panoramix", password);
            assert!(ok.starts_with("+OK"), "{mechanism:?}: {ok}");
            // With the right password on a wrong name too (AUTH PLAIN with another authzid).
            let mut client = server.connect();
            let reply = attempt_on(&mut client, mechanism, "panoramix", wrong);
            assert!(reply.starts_with("-ERR"), "{reply}");
        }
        let mut client = server.connect();
        let reply = client.command(&format!(
            "AUTH PLAIN {}",
            sasl_plain("asterix", "panoramix", password)
        ));
        assert!(reply.starts_with("-ERR"), "{reply}");
        // PASS without USER, a password with spaces, lower case, and sloppy spacing.
        let mut client = server.connect();
        assert!(client
            .command(&format!("PASS {password} and more"))
            .starts_with("-ERR"));
        let mut client = server.connect();
        assert!(client.command("user panoramix").starts_with("+OK"));
        assert!(client
            .command(&format!("pass {password}"))
            .starts_with("+OK"));
        let mut client = server.connect();
        assert!(client.command("USER panoramix").starts_with("+OK"));
        assert!(client
            .command(&format!("PASS  {password}"))
            .starts_with("-ERR"));
        thread::sleep(Duration::from_millis(200));
        server.kill();
        let log = server.stderr();
        // The log is not empty: the trace shows the dialogue and the log the logins.
        assert!(log.contains("panoramix"), "{log}");
        assert!(log.contains("AUTH PLAIN"), "{log}");
        let b64 = data_encoding::BASE64;
        for secret in [password, wrong] {
            let forbidden = [
                secret.to_owned(),
                b64.encode(secret.as_bytes()),
                sasl_plain("", "panoramix", secret),
                sasl_plain("asterix", "panoramix", secret),
            ];
            for form in forbidden {
                assert!(!log.contains(&form), "{format} log shows {form:?}:\n{log}");
            }
        }
    }
}

#[test]
fn malformed_pass_lines_are_masked_in_the_trace_too() {
    let store = TempStore::demo();
    let mut server = PopServer::start(&store.path(), &["--trace"]);
    let password = "Zaubertrank-7f3a9c";
    let mut client = server.connect();
    assert!(client.command("USER asterix").starts_with("+OK"));
    // A client that puts a stray space or a tab around PASS still sent its password.
    assert!(client
        .command(&format!(" PASS {password}"))
        .starts_with("-ERR"));
    assert!(client
        .command(&format!("PASS\t{password}"))
        .starts_with("-ERR"));
    assert!(client.command("QUIT").starts_with("+OK"));
    thread::sleep(Duration::from_millis(200));
    server.kill();
    let log = server.stderr();
    assert!(log.contains("USER asterix"), "{log}");
    assert!(!log.contains(password), "{log}");
}

#[test]
fn a_passwd_readable_by_others_draws_a_warning_at_startup() {
    let store = TempStore::demo();
    let passwd = store.path().join("passwd");
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).unwrap();
    let server = PopServer::start(&store.path(), &[]);
    // The warning is written before the server listens; the harness reads stderr on a
    // thread of its own, so give that thread a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = server.stderr();
    while !log.contains("chmod 600") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        log = server.stderr();
    }
    assert!(
        log.contains("warning:")
            && log.contains("readable by other users")
            && log.contains("chmod 600"),
        "{log}"
    );
}
