//! serve-pop against Dovecot's POP3 on two copies of the same store: for every demo message,
//! RETR and TOP bytes must be equal, and our LIST sizes must equal the octets both servers'
//! RETR actually send (where Dovecot's own LIST is 2 short for a file without a final newline).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use support::dovecot::Dovecot;
use support::pop3::{PopClient, PopServer};
use support::TempStore;

/// What one server says about one message.
#[derive(Debug)]
struct Seen {
    listed: u64,
    retr: Vec<u8>,
    top0: Vec<u8>,
    top3: Vec<u8>,
}

/// The octets a RETR body stands for: without `.CRLF` and without the stuffed dots.
fn unstuffed_octets(body: &[u8]) -> u64 {
    let stuffed =
        usize::from(body.starts_with(b"..")) + body.windows(3).filter(|w| w == b"\n..").count();
    (body.len() - 3 - stuffed) as u64
}

fn message_id(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no Message-ID in {text}"))
}

/// Log in and fetch everything, keyed by Message-ID.
fn fetch_all(addr: SocketAddr, user: &str, password: &str) -> BTreeMap<String, Seen> {
    let mut client = PopClient::connect(addr);
    assert!(client.command(&format!("USER {user}")).starts_with("+OK"));
    let login = client.command(&format!("PASS {password}"));
    assert!(login.starts_with("+OK"), "{addr}: {login}");
    assert!(client.command("LIST").starts_with("+OK"));
    let listing = String::from_utf8(client.read_multiline_raw()).unwrap();
    let mut seen = BTreeMap::new();
    for line in listing.lines().take_while(|l| *l != ".") {
        let (number, size) = line.split_once(' ').unwrap();
        let mut fetch = |command: String| {
            let reply = client.command(&command);
            assert!(reply.starts_with("+OK"), "{addr} {command}: {reply}");
            client.read_multiline_raw()
        };
        let retr = fetch(format!("RETR {number}"));
        let top0 = fetch(format!("TOP {number} 0"));
        let top3 = fetch(format!("TOP {number} 3"));
        seen.insert(
            message_id(&retr),
            Seen {
                listed: size.parse().unwrap(),
                retr,
                top0,
                top3,
            },
        );
    }
    // No QUIT: neither store changes.
    seen
}

#[test]
fn retr_top_and_sizes_match_dovecot_for_every_demo_message() {
    let dovecot_store = TempStore::demo();
    let Some(dovecot) = Dovecot::start(&dovecot_store.path()) else {
        return;
    };
    let our_store = TempStore::demo();
    let server = PopServer::start(&our_store.path(), &[]);
    let dovecot_addr: SocketAddr = ([127, 0, 0, 1], dovecot.pop3_port).into();
    let mut compared = 0;
    let mut dovecot_listed_short = 0;
    for (user, password) in [("asterix", "potion"), ("obelix", "menhir")] {
        let ours = fetch_all(server.addr(), user, password);
        let theirs = fetch_all(dovecot_addr, user, password);
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{user}: different messages\n{}",
            dovecot.log()
        );
        for (id, our) in &ours {
            let their = &theirs[id];
            let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            assert_eq!(show(&our.retr), show(&their.retr), "RETR of {id}");
            assert_eq!(show(&our.top0), show(&their.top0), "TOP 0 of {id}");
            assert_eq!(show(&our.top3), show(&their.top3), "TOP 3 of {id}");
            assert_eq!(our.listed, unstuffed_octets(&our.retr), "our LIST of {id}");
            assert_eq!(
                our.listed,
                unstuffed_octets(&their.retr),
                "Dovecot's RETR of {id}"
            );
            if their.listed != our.listed {
                // Dovecot's known miscount: a file without a final newline.
                assert_eq!(their.listed + 2, our.listed, "Dovecot's LIST of {id}");
                dovecot_listed_short += 1;
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 12);
    assert_eq!(
        dovecot_listed_short, 1,
        "the demo store has one message without a final newline"
    );
}
