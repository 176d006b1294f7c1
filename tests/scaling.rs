//! Past one machine: several mailtool processes on one store behind HAProxy, which tells each
//! the real client with the PROXY protocol (v2 to one, v1 to the other). The POP3 lock holds
//! across processes, UIDs agree, per-address caps count the real clients, and a process killed
//! mid-run loses no mail while HAProxy sends new sessions to the other. Then the refusals
//! without HAProxy: a header from an untrusted address, none or a broken one from a trusted
//! one, and a header in front of the implicit-TLS handshake.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::haproxy::{connect_from, Backend, Haproxy, SendProxy};
use support::imap::RawImap;
use support::pop3::{PopClient, PopServer};
use support::TempStore;

/// What every backend is started with: HAProxy connects from 127.0.0.1.
const BEHIND_PROXY: &[&str] = &["--proxy-protocol", "--trusted-proxy", "127.0.0.1"];

/// The two servers as HAProxy's backends: v2 to the first, v1 to the second.
fn backends(servers: &[&PopServer]) -> Vec<Backend> {
    servers
        .iter()
        .zip([SendProxy::V2, SendProxy::V1])
        .map(|(server, send_proxy)| Backend {
            addr: server.addr(),
            send_proxy,
        })
        .collect()
}

/// Which of `servers` logged the session of the client at `client` (its local address, which
/// the PROXY header carried), waiting for the log line.
fn served_by(servers: &[&PopServer], client: SocketAddr) -> usize {
    let line = format!(" {client} connect via 127.0.0.1:");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = servers.iter().position(|s| s.stderr().contains(&line)) {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no backend logged {line:?}: {}\n---\n{}",
            servers[0].stderr(),
            servers[1].stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A POP3 session through `frontend`, and the backend that serves it.
fn pop_through(frontend: SocketAddr, servers: &[&PopServer]) -> (PopClient, usize) {
    let stream = TcpStream::connect(frontend).unwrap();
    let local = stream.local_addr().unwrap();
    let mut client = PopClient::from_stream(stream);
    client.greeting = client.read_line();
    assert!(client.greeting.starts_with("+OK"), "{}", client.greeting);
    (client, served_by(servers, local))
}

#[test]
fn the_pop3_lock_holds_across_two_processes_behind_haproxy() {
    let store = TempStore::demo();
    let one = PopServer::start(&store.path(), BEHIND_PROXY);
    let two = PopServer::start(&store.path(), BEHIND_PROXY);
    let servers = [&one, &two];
    let Some(haproxy) = Haproxy::start(&[&backends(&servers)]) else {
        return;
    };
    let frontend = haproxy.frontend(0);

    let (mut first, holder) = pop_through(frontend, &servers);
    first.login("asterix", "potion");
    // Round robin sends the next session to the other process; try a few in case a
    // connection lands on the same one.
    let mut refused_elsewhere = false;
    for _ in 0..4 {
        let (mut second, backend) = pop_through(frontend, &servers);
        if backend == holder {
            second.command("QUIT");
            continue;
        }
        let reply = second.try_login("asterix", "potion");
        assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
        refused_elsewhere = true;
        break;
    }
    assert!(refused_elsewhere, "no session reached the other process");
    assert!(first.command("QUIT").starts_with("+OK"));

    // Released: the other process gives it now.
    for _ in 0..4 {
        let (mut again, backend) = pop_through(frontend, &servers);
        if backend == holder {
            again.command("QUIT");
            continue;
        }
        again.login("asterix", "potion");
        again.command("QUIT");
        break;
    }
    for server in servers {
        assert!(
            !server.stderr().contains("refused (trusted proxy)"),
            "HAProxy's health checks carry the header too: {}",
            server.stderr()
        );
    }
}

#[test]
fn imap_uids_agree_across_two_processes_behind_haproxy() {
    let store = TempStore::demo();
    for n in 0..3 {
        store
            .mailtool()
            .args(["mbox", "deliver", "obelix"])
            .write_stdin(support::imap::mail(&format!("before {n}"), 300))
            .assert()
            .success();
    }
    let one = PopServer::start_imap(&store.path(), BEHIND_PROXY);
    let two = PopServer::start_imap(&store.path(), BEHIND_PROXY);
    let servers = [&one, &two];
    let Some(haproxy) = Haproxy::start(&[&backends(&servers)]) else {
        return;
    };
    let frontend = haproxy.frontend(0);
    let session = || {
        let stream = TcpStream::connect(frontend).unwrap();
        let local = stream.local_addr().unwrap();
        let mut imap = RawImap::over(stream);
        imap.ok("LOGIN obelix menhir");
        imap.ok("SELECT INBOX");
        (imap, served_by(&servers, local))
    };
    let (mut a, first) = session();
    let (mut b, mut second) = session();
    let mut spare = Vec::new();
    while second == first {
        spare.push(b);
        (b, second) = session();
    }
    let uids = a.uids("ALL");
    assert!(uids.len() >= 3, "{uids:?}");
    assert_eq!(b.uids("ALL"), uids);
    for &uid in &uids {
        assert_eq!(a.body(uid), b.body(uid), "UID {uid}");
    }
    // A mail appended through one process has the same UID through the other.
    a.append("", support::imap::mail("appended", 200));
    let after = a.uids("ALL");
    assert_eq!(after.len(), uids.len() + 1);
    b.noop();
    assert_eq!(b.uids("ALL"), after);
    let new_uid = after[uids.len()];
    assert_eq!(a.body(new_uid), b.body(new_uid));
}

#[test]
fn per_address_caps_count_the_real_clients_behind_haproxy() {
    let store = TempStore::demo();
    let cap = ["--max-connections-per-ip", "1"];
    let extra: Vec<&str> = BEHIND_PROXY.iter().copied().chain(cap).collect();
    let one = PopServer::start(&store.path(), &extra);
    let two = PopServer::start(&store.path(), &extra);
    let servers = [&one, &two];
    let Some(haproxy) = Haproxy::start(&[&backends(&servers)]) else {
        return;
    };
    let frontend = haproxy.frontend(0);
    // Every backend connection comes from HAProxy at 127.0.0.1: counted by that address, a
    // cap of one would let a single session into each process. Counted by the real client,
    // each process holds one session per client address, and refuses exactly the second
    // from the same address, whichever process round robin picks.
    let clients = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let mut held: Vec<(usize, Ipv4Addr, PopClient)> = Vec::new();
    let (mut refusals, mut shared) = (0, false);
    for attempt in 0..16 {
        // Two from each address in turn, so that round robin (which alternates) puts each
        // address on both processes.
        let from = clients[attempt / 2 % 2];
        let stream = connect_from(from, frontend);
        let local = stream.local_addr().unwrap();
        let mut client = PopClient::from_stream(stream);
        let line = client.read_line();
        let backend = logged_by(&servers, local);
        let already = held.iter().any(|(b, f, _)| *b == backend && *f == from);
        if already {
            assert_eq!(
                line, "-ERR [SYS/TEMP] too many connections from your address\r\n",
                "{local} on backend {backend}"
            );
            let refusal = format!(" {local} refused: too many connections from this address\n");
            assert!(servers[backend].stderr_shows(&refusal), "{refusal:?}");
            refusals += 1;
        } else {
            assert!(
                line.starts_with("+OK"),
                "{local} on backend {backend}: {line}"
            );
            held.push((backend, from, client));
            shared |= clients
                .iter()
                .all(|c| held.iter().any(|(b, f, _)| *b == backend && f == c));
        }
        if refusals >= 2 && shared {
            return;
        }
    }
    panic!(
        "round robin never showed both cases: {refusals} refusals, shared {shared}\n{}\n---\n{}\n---\n{}",
        one.stderr(),
        two.stderr(),
        haproxy.stderr()
    );
}

/// Which of `servers` logged the client at `client`, accepted or refused.
fn logged_by(servers: &[&PopServer], client: SocketAddr) -> usize {
    let accepted = format!(" {client} connect via 127.0.0.1:");
    let refused = format!(" {client} refused: ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = servers
            .iter()
            .map(|s| s.stderr())
            .position(|log| log.contains(&accepted) || log.contains(&refused))
        {
            return i;
        }
        assert!(Instant::now() < deadline, "no backend logged {client}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// One IMAP session through the balancer: LOGIN, SELECT, APPEND of `mail`, UID SEARCH, LOGOUT.
/// Any failure (a backend killed under it) is an error, not a panic.
fn imap_session(frontend: SocketAddr, mail: &[u8]) -> io::Result<()> {
    let stream = TcpStream::connect(frontend)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut expect = |reader: &mut BufReader<TcpStream>, tag: &str| -> io::Result<()> {
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::other("closed"));
            }
            if let Some(status) = line.strip_prefix(tag) {
                return if status.starts_with(" OK") {
                    Ok(())
                } else {
                    Err(io::Error::other(line.clone()))
                };
            }
        }
    };
    expect(&mut reader, "*")?;
    writer.write_all(b"a LOGIN obelix menhir\r\n")?;
    expect(&mut reader, "a")?;
    writer.write_all(b"b SELECT INBOX\r\n")?;
    expect(&mut reader, "b")?;
    writer.write_all(format!("c APPEND INBOX {{{}+}}\r\n", mail.len()).as_bytes())?;
    writer.write_all(mail)?;
    writer.write_all(b"\r\n")?;
    expect(&mut reader, "c")?;
    writer.write_all(b"d UID SEARCH ALL\r\n")?;
    expect(&mut reader, "d")?;
    writer.write_all(b"e LOGOUT\r\n")?;
    expect(&mut reader, "e")
}

#[test]
fn a_process_killed_mid_run_loses_no_mail_and_haproxy_moves_on() {
    let store = TempStore::demo();
    let serve = [
        "serve",
        "--pop-port",
        "0",
        "--imap-port",
        "0",
        "--smtp-port",
        "0",
    ];
    let start = || {
        let mut server = PopServer::spawn_as(store.mailtool_std(), &serve, BEHIND_PROXY);
        let imap = server.stdout_line();
        let addr: SocketAddr = imap
            .strip_prefix("listening on ")
            .and_then(|l| l.trim_end().strip_suffix(" (imap)"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{imap}"));
        (server, addr)
    };
    let (mut one, one_imap) = start();
    let (two, two_imap) = start();
    let pop = backends(&[&one, &two]);
    let imap = [
        Backend {
            addr: one_imap,
            send_proxy: SendProxy::V2,
        },
        Backend {
            addr: two_imap,
            send_proxy: SendProxy::V1,
        },
    ];
    let Some(haproxy) = Haproxy::start(&[&imap, &pop]) else {
        return;
    };
    let frontend = haproxy.frontend(0);
    let before = store.messages("obelix").len();

    let stop = AtomicBool::new(false);
    let appended = AtomicUsize::new(0);
    let appended_after_kill = AtomicUsize::new(0);
    let failed_after_kill = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let delivered = 30;
    thread::scope(|scope| {
        // Deliveries straight into the store, all through the run.
        scope.spawn(|| {
            for n in 0..delivered {
                store
                    .mailtool()
                    .args(["mbox", "deliver", "obelix"])
                    .write_stdin(support::imap::mail(&format!("delivered {n}"), 500))
                    .assert()
                    .success();
                thread::sleep(Duration::from_millis(30));
            }
        });
        // Clients: sessions one after another, each appending one mail.
        for client in 0..3 {
            let (stop, appended, after, failed, killed) = (
                &stop,
                &appended,
                &appended_after_kill,
                &failed_after_kill,
                &killed,
            );
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let mail = support::imap::mail(&format!("appended {client}.{n}"), 400);
                    let was_killed = killed.load(Ordering::SeqCst);
                    match imap_session(frontend, &mail) {
                        Ok(()) => {
                            appended.fetch_add(1, Ordering::SeqCst);
                            if was_killed {
                                after.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // A session begun before the kill may die with its process; one
                        // begun after must reach the survivor.
                        Err(error) if was_killed => {
                            eprintln!("session after the kill failed: {error}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {}
                    }
                    n += 1;
                }
            });
        }
        thread::sleep(Duration::from_millis(600));
        assert!(
            one.stderr_shows("connect via"),
            "the first process served sessions"
        );
        one.kill();
        // HAProxy's next check (200 ms) marks it down; connections refused meanwhile are
        // redispatched to the other server.
        killed.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(3000));
        stop.store(true, Ordering::SeqCst);
    });
    let appended = appended.load(Ordering::SeqCst);
    assert_eq!(
        failed_after_kill.load(Ordering::SeqCst),
        0,
        "sessions begun after the kill failed; haproxy: {}",
        haproxy.stderr()
    );
    assert!(
        appended_after_kill.load(Ordering::SeqCst) > 0,
        "sessions went on after the kill"
    );
    // Every acknowledged APPEND and every delivery is there, on disk and through the survivor.
    let expected = before + delivered + appended;
    let on_disk = store.messages("obelix").len();
    assert!(
        on_disk >= expected,
        "{on_disk} mails on disk, expected at least {expected}"
    );
    let mut imap = RawImap::over(TcpStream::connect(frontend).unwrap());
    imap.ok("LOGIN obelix menhir");
    imap.ok("SELECT INBOX");
    let uids = imap.uids("ALL");
    assert_eq!(uids.len(), on_disk, "UIDs through the survivor");
    let mut sorted = uids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), uids.len(), "no UID twice");
    let subjects: String = store
        .messages("obelix")
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    for n in 0..delivered {
        assert!(
            subjects.contains(&format!("Subject: delivered {n}\r\n")),
            "delivered {n}"
        );
    }
    assert!(two.stderr_shows("connect via 127.0.0.1:"));
}

// Without HAProxy: the refusals, each one precise line in the log.

/// A `serve-pop` that trusts only 127.0.0.1, and its log once `text` shows in it.
fn refusal_server(extra: &[&str]) -> (TempStore, PopServer) {
    let store = TempStore::demo();
    let args: Vec<&str> = BEHIND_PROXY.iter().chain(extra).copied().collect();
    let server = PopServer::start(&store.path(), &args);
    (store, server)
}

#[test]
fn a_header_from_an_untrusted_address_is_refused() {
    let (_store, server) = refusal_server(&[]);
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr());
    let local = stream.local_addr().unwrap();
    let mut client = PopClient::from_stream(stream);
    assert!(client.read_line().starts_with("+OK"), "served directly");
    client.send_raw(b"PROXY TCP4 192.0.2.1 127.0.0.1 4000 110\r\n");
    assert!(client.is_closed(Duration::from_secs(10)));
    assert!(server.stderr_shows(&format!(
        "pop3[1] {local} refused: PROXY protocol header from an address not in --trusted-proxy\n"
    )));
    assert!(!server.stderr().contains("192.0.2.1"));
    // The same address without a header is served as itself.
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr());
    let mut client = PopClient::from_stream(stream);
    assert!(client.read_line().starts_with("+OK"));
    client.login("asterix", "potion");
}

#[test]
fn a_trusted_proxy_without_a_header_or_with_a_broken_one_is_refused() {
    let (_store, server) = refusal_server(&[]);
    for (sent, line) in [
        (
            &b"USER asterix\r\n"[..],
            "refused (trusted proxy): no PROXY protocol header\n",
        ),
        (
            b"PROXY TCP4 192.0.2.1 127.0.0.1 04000 110\r\n",
            "refused (trusted proxy): malformed PROXY v1 header: bad port \"04000\"\n",
        ),
        (
            b"\r\n\r\n\0\r\nQUIT\n\x21\x12\0\x0c",
            "refused (trusted proxy): malformed PROXY v2 header: transport 2 on a TCP connection\n",
        ),
        (
            b"PROXY TCP4 192.0.2.1",
            "refused (trusted proxy): closed in the middle of its PROXY protocol header\n",
        ),
    ] {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        let local = stream.local_addr().unwrap();
        stream.write_all(sent).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.read_to_end(&mut answer);
        assert_eq!(
            answer, b"",
            "nothing is said to a proxy that broke the protocol"
        );
        let expected = format!(" {local} {line}");
        assert!(
            server.stderr_shows(&expected),
            "{expected:?} in {}",
            server.stderr()
        );
    }
    let log = server.stderr();
    assert!(
        !log.contains(" connect\n") && !log.contains(" connect via"),
        "{log}"
    );
}

#[test]
fn a_trusted_proxy_that_stays_silent_is_refused_after_the_timeout() {
    let (_store, server) = refusal_server(&["--idle-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert_eq!(answer, b"");
    assert!(server.stderr_shows(&format!(
        " {local} refused (trusted proxy): no whole PROXY protocol header within 1 s\n"
    )));
}

/// A stream whose first write goes out together with `prefix` in one segment, as HAProxy
/// sends its header and the client's first bytes (here a TLS ClientHello).
#[derive(Debug)]
struct Prefixed {
    stream: TcpStream,
    prefix: Option<Vec<u8>>,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.prefix.take() {
            Some(mut prefix) => {
                prefix.extend_from_slice(buf);
                self.stream.write_all(&prefix)?;
                Ok(buf.len())
            }
            None => self.stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[test]
fn the_header_comes_before_the_handshake_on_the_implicit_tls_port() {
    let store = TempStore::demo();
    let (cert, key) = support::tls::self_signed(store.scratch());
    let args = [
        "--tls-port",
        "0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.0/8",
    ];
    let server = PopServer::start(&store.path(), &args);
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c".to_vec();
    header.extend_from_slice(&[203, 0, 113, 5, 127, 0, 0, 1, 0x1f, 0x90, 0x03, 0xe3]);
    let stream = TcpStream::connect(server.tls_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let prefixed = Prefixed {
        stream,
        prefix: Some(header),
    };
    let tls = connector.connect("localhost", prefixed).expect("handshake");
    let mut client = PopClient::over(tls);
    assert!(client.read_line().starts_with("+OK"));
    client.login("asterix", "potion");
    assert!(server.stderr_shows("pop3[1] 203.0.113.5:8080 connect via 127.0.0.1:"));
    assert!(server.stderr_shows("pop3[1] 203.0.113.5:8080 tls established mode=implicit"));
}
