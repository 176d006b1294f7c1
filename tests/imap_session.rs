//! The IMAP session driven with bytes over a temporary store: every command, the teaching
//! errors, literal framing, APPEND streaming, STARTTLS, logins, IDLE and updates from other
//! sessions. No sockets: what the connection driver would do is done here by hand.

use std::fs;
use std::io::Write;
use std::time::Duration;

use mailtool::imap::session::{Action, Event, Session, SessionConfig};
use mailtool::store::{Maildir, Store, UserName};
use tempfile::TempDir;

const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: Hello\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.org>\r\n\r\nHello Bob,\r\nhow are you?\r\n";

struct Harness {
    _dir: TempDir,
    store: Store,
    session: Session,
    /// Actions other than NeedInput and Flush seen by the last `send`.
    actions: Vec<Action>,
}

fn config() -> SessionConfig {
    SessionConfig {
        failed_login_delay: Duration::from_millis(1),
        trace: true,
        ..SessionConfig::default()
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(config: SessionConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        store
            .add_user(&UserName::parse("alice").unwrap(), "secret")
            .unwrap();
        let session = Session::new(store.clone(), config);
        Harness {
            _dir: dir,
            store,
            session,
            actions: Vec::new(),
        }
    }

    fn inbox(&self) -> Maildir {
        self.store
            .mailbox(&UserName::parse("alice").unwrap())
            .unwrap()
    }

    fn deliver(&self, message: &str) {
        let mut delivery = self.inbox().deliver().unwrap();
        delivery.write_all(message.as_bytes()).unwrap();
        delivery.commit().unwrap();
    }

    fn greeting(&mut self) -> String {
        let mut out = Vec::new();
        self.session.greeting(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// Feed `input` and run the session until it wants more.
    fn send(&mut self, input: &[u8]) -> String {
        self.session.receive(input);
        String::from_utf8_lossy(&self.drive()).into_owned()
    }

    fn drive(&mut self) -> Vec<u8> {
        self.actions.clear();
        let mut out = Vec::new();
        loop {
            match self.session.next(&mut out) {
                Action::NeedInput => break,
                Action::Flush => {}
                Action::Offload => self.actions.push(Action::Offload),
                Action::Pause { then_close, .. } => {
                    self.actions.push(Action::Pause {
                        delay: Duration::ZERO,
                        then_close,
                    });
                    if then_close {
                        break;
                    }
                }
                other => {
                    self.actions.push(other);
                    break;
                }
            }
        }
        out
    }

    fn login(&mut self) {
        let out = self.send(b"l1 LOGIN alice secret\r\n");
        assert!(out.contains("l1 OK"), "{out}");
    }

    fn select(&mut self) -> String {
        self.login();
        let out = self.send(b"s1 SELECT INBOX\r\n");
        assert!(out.contains("s1 OK [READ-WRITE]"), "{out}");
        out
    }
}

/// Feed `input` to a second session and run it until it wants more.
fn drive(session: &mut Session, input: &[u8]) -> String {
    session.receive(input);
    let mut out = Vec::new();
    while session.next(&mut out) != Action::NeedInput {}
    String::from_utf8(out).unwrap()
}

#[test]
fn greeting_and_capability() {
    let mut h = Harness::new();
    let greeting = h.greeting();
    assert!(greeting.starts_with("* OK [CAPABILITY IMAP4REV1 LITERAL+ SASL-IR ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN ID AUTH=PLAIN]"), "{greeting}");
    let out = h.send(b"a1 CAPABILITY\r\n");
    assert_eq!(
        out,
        "* CAPABILITY IMAP4REV1 LITERAL+ SASL-IR ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN ID AUTH=PLAIN\r\na1 OK CAPABILITY completed\r\n"
    );
    let out = h.send(b"a2 NOOP\na3 LOGOUT\n");
    assert!(out.contains("a2 OK"), "{out}");
    assert!(out.contains("* BYE"), "{out}");
    assert!(out.ends_with("a3 OK LOGOUT completed\r\n"), "{out}");
    assert_eq!(h.actions, vec![Action::Close]);
}

#[test]
fn starttls_offered_and_required() {
    let mut h = Harness::with_config(SessionConfig {
        starttls: true,
        require_tls: true,
        ..config()
    });
    let out = h.send(b"a1 CAPABILITY\r\n");
    assert!(out.contains("STARTTLS LOGINDISABLED"), "{out}");
    let out = h.send(b"a2 LOGIN alice secret\r\n");
    assert!(out.contains("a2 NO [PRIVACYREQUIRED]"), "{out}");
    let out = h.send(b"a3 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.contains("a3 NO [PRIVACYREQUIRED]"), "{out}");
    // Whatever follows STARTTLS in the same packet is dropped (CVE-2011-0411).
    let out = h.send(b"a4 STARTTLS\r\na5 LOGIN alice secret\r\n");
    assert_eq!(out, "a4 OK Begin TLS negotiation now\r\n");
    assert_eq!(h.actions, vec![Action::StartTls]);
    h.session.tls_established();
    let out = h.send(b"a6 CAPABILITY\r\n");
    assert!(!out.contains("STARTTLS"), "{out}");
    assert!(out.contains("AUTH=PLAIN"), "{out}");
    let out = h.send(b"a7 STARTTLS\r\n");
    assert!(out.contains("a7 BAD TLS is already active"), "{out}");
    let out = h.send(b"a8 LOGIN alice secret\r\n");
    assert!(out.contains("a8 OK [CAPABILITY"), "{out}");
}

#[test]
fn starttls_not_offered_without_certificate() {
    let mut h = Harness::new();
    let out = h.send(b"a1 STARTTLS\r\n");
    assert!(out.starts_with("a1 BAD STARTTLS is not offered"), "{out}");
}

#[test]
fn failed_logins_pause_then_close() {
    let mut h = Harness::new();
    let out = h.send(b"a1 LOGIN alice wrong\r\n");
    // The NO comes after the pause.
    assert_eq!(
        out,
        "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n"
    );
    assert!(matches!(
        h.actions[0],
        Action::Pause {
            then_close: false,
            ..
        }
    ));
    let out = h.send(b"a2 LOGIN bob secret\r\n");
    assert!(out.contains("a2 NO [AUTHENTICATIONFAILED]"), "{out}");
    let out = h.send(b"a3 LOGIN alice nope\r\n");
    assert!(out.contains("a3 NO [AUTHENTICATIONFAILED]"), "{out}");
    assert!(out.contains("* BYE"), "{out}");
    assert_eq!(
        h.actions,
        vec![Action::Pause {
            delay: Duration::ZERO,
            then_close: true
        }]
    );
    let events = h.session.take_events();
    assert!(events.contains(&Event::LoginFailed { user: "bob".into() }));
    let trace = h.session.take_trace();
    assert!(
        trace.contains(&"a1 LOGIN alice ***".to_string()),
        "{trace:?}"
    );
    assert!(!trace.iter().any(|l| l.contains("wrong")), "{trace:?}");
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let mut h = Harness::new();
    let out = h.send(b"a1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let out = h.send(b"*\r\n");
    assert!(out.starts_with("a1 BAD AUTHENTICATE cancelled"), "{out}");
    let out = h.send(b"a2 AUTHENTICATE PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let out = h.send(b"AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("a2 OK [CAPABILITY"), "{out}");
    let trace = h.session.take_trace();
    assert!(trace.contains(&"***".to_string()), "{trace:?}");
    assert!(!trace.iter().any(|l| l.contains("AGFsaWNl")), "{trace:?}");

    let mut h = Harness::new();
    let out = h.send(b"a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("a1 OK"), "{out}");
    assert_eq!(h.session.take_trace(), vec!["a1 AUTHENTICATE PLAIN ***"]);
    assert_eq!(
        h.session.take_events(),
        vec![Event::LoginOk {
            user: "alice".into()
        }]
    );
}

#[test]
fn login_with_literals() {
    let mut h = Harness::new();
    let out = h.send(b"a1 LOGIN {5}\r\n");
    assert_eq!(out, "+ Ready for literal data\r\n");
    let out = h.send(b"alice {6}\r\n");
    assert_eq!(out, "+ Ready for literal data\r\n");
    let out = h.send(b"secret\r\n");
    assert!(out.starts_with("a1 OK"), "{out}");
    let trace = h.session.take_trace();
    assert!(!trace.iter().any(|l| l.contains("secret")), "{trace:?}");

    // LITERAL+: no continuation requests.
    let mut h = Harness::new();
    let out = h.send(b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n");
    assert!(out.starts_with("a1 OK"), "{out}");
}

#[test]
fn teaching_errors() {
    let mut h = Harness::new();
    for (input, expected) in [
        ("a1 FOO\r\n", "a1 BAD unknown command \"FOO\" (try CAPABILITY)\r\n"),
        ("a2 SELECT\r\n", "a2 BAD SELECT needs a mailbox name, e.g. SELECT INBOX\r\n"),
        ("LOGIN alice secret\r\n", "* BAD Every command starts with a tag, e.g. a1 LOGIN alice secret\r\n"),
        ("NOOP\r\n", "* BAD Every command starts with a tag, e.g. a1 NOOP\r\n"),
        ("a3 FETCH 1 FLAGS\r\n", "a3 BAD Log in first: LOGIN user password\r\n"),
        ("a4\r\n", "a4 BAD missing command after the tag, e.g. a4 CAPABILITY\r\n"),
        ("a5 UID FOO\r\n", "a5 BAD UID goes with FETCH, STORE, COPY, MOVE, SEARCH or EXPUNGE, e.g. UID FETCH 1:* (FLAGS)\r\n"),
    ] {
        assert_eq!(h.send(input.as_bytes()), expected, "{input}");
    }
    h.login();
    let out = h.send(b"a6 FETCH 1 (FLAGS)\r\n");
    assert_eq!(
        out,
        "a6 BAD FETCH needs a selected mailbox: SELECT INBOX first\r\n"
    );
    h.send(b"a7 SELECT INBOX\r\n");
    let out = h.send(b"a8 FETCH x (FLAGS)\r\n");
    assert_eq!(
        out,
        "a8 BAD FETCH needs a sequence set and data items, e.g. FETCH 1:* (FLAGS)\r\n"
    );
    let out = h.send(b"a9 LOGIN alice secret\r\n");
    assert!(
        out.starts_with("a9 BAD LOGIN is only allowed before login"),
        "{out}"
    );
    let out = h.send(b"b1 SORT (DATE) UTF-8 ALL\r\n");
    assert!(out.starts_with("b1 BAD SORT is not supported"), "{out}");
    // Empty lines are ignored.
    assert_eq!(h.send(b"\r\n\n"), "");
}

#[test]
fn too_many_bad_commands_close() {
    let mut h = Harness::with_config(SessionConfig {
        max_bad_commands: 3,
        ..config()
    });
    let out = h.send(b"a1 FOO\r\na2 FOO\r\na3 FOO\r\na4 NOOP\r\n");
    assert!(out.contains("a3 BAD"), "{out}");
    assert!(out.contains("* BYE Too many bad commands"), "{out}");
    assert!(!out.contains("a4"), "{out}");
    assert_eq!(h.actions, vec![Action::Close]);
}

#[test]
fn overlong_lines_and_literals() {
    let mut h = Harness::with_config(SessionConfig {
        max_line: 8 * 1024,
        max_literal: 100,
        ..config()
    });
    let mut long = b"a1 NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 10_000));
    // The literal announced at the end of the overlong line is skipped too.
    long.extend_from_slice(b" {10+}\r\n0123456789\r\na2 NOOP\r\n");
    let out = h.send(&long);
    assert!(out.starts_with("a1 BAD line too long"), "{out}");
    assert!(out.ends_with("a2 OK NOOP completed\r\n"), "{out}");

    // A synchronising literal that is too big is refused before its data.
    let out = h.send(b"a3 LOGIN {4294967295}\r\n");
    assert!(out.starts_with("a3 BAD literal too big"), "{out}");
    // A non-synchronising one is skipped.
    let mut input = b"a4 LOGIN {200+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'a', 200));
    input.extend_from_slice(b" x\r\na5 NOOP\r\n");
    let out = h.send(&input);
    assert!(out.starts_with("a4 BAD literal too big"), "{out}");
    assert!(out.ends_with("a5 OK NOOP completed\r\n"), "{out}");
    // One too big to skip closes the connection.
    let out = h.send(b"a6 LOGIN {99999999999+}\r\n");
    assert!(out.contains("* BYE"), "{out}");
    assert_eq!(h.actions, vec![Action::Close]);
}

#[test]
fn select_examine_and_status() {
    let mut h = Harness::new();
    h.deliver(MESSAGE);
    h.deliver(MESSAGE);
    let out = h.select();
    assert!(
        out.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"),
        "{out}"
    );
    assert!(out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    assert!(out.contains("* OK [UNSEEN 1]"), "{out}");
    assert!(out.contains("* OK [UIDVALIDITY "), "{out}");
    assert!(out.contains("* OK [UIDNEXT 3]"), "{out}");
    let out = h.send(b"a1 EXAMINE INBOX\r\n");
    assert!(out.contains("* 2 EXISTS\r\n* 0 RECENT\r\n"), "{out}");
    assert!(out.contains("* OK [PERMANENTFLAGS ()]"), "{out}");
    assert!(out.contains("a1 OK [READ-ONLY]"), "{out}");
    let out = h.send(b"a2 STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN)\r\n");
    assert!(
        out.contains("* STATUS INBOX (MESSAGES 2 RECENT 0 UIDNEXT 3 UNSEEN 2)"),
        "{out}"
    );
    let out = h.send(b"a3 SELECT Nope\r\n");
    assert!(out.starts_with("a3 NO [NONEXISTENT]"), "{out}");
    let out = h.send(b"a4 FETCH 1 (FLAGS)\r\n");
    assert!(
        out.starts_with("a4 BAD FETCH needs a selected mailbox"),
        "{out}"
    );
}

#[test]
fn fetch_items_and_seen() {
    let mut h = Harness::new();
    h.deliver(MESSAGE);
    h.select();
    let out = h.send(b"a1 FETCH 1 (UID FLAGS RFC822.SIZE)\r\n");
    assert_eq!(
        out,
        format!(
            "* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE {})\r\na1 OK FETCH completed\r\n",
            MESSAGE.len()
        )
    );
    let out = h.send(b"a2 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
    assert!(
        out.contains("BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Hello\r\n\r\n)"),
        "{out}"
    );
    let out = h.send(b"a3 FETCH 1 (BODY[TEXT])\r\n");
    assert!(
        out.contains("BODY[TEXT] {26}\r\nHello Bob,\r\nhow are you?\r\n"),
        "{out}"
    );
    assert!(out.contains("FLAGS (\\Seen \\Recent)"), "{out}");
    let out = h.send(b"a4 UID FETCH 1 (BODY[]<0.4>)\r\n");
    assert!(
        out.contains("* 1 FETCH (UID 1 BODY[]<0> {4}\r\nFrom)\r\n"),
        "{out}"
    );
    let out = h.send(b"a5 FETCH 1 ENVELOPE\r\n");
    assert!(
        out.contains("ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\""),
        "{out}"
    );
    let out = h.send(b"a6 FETCH 1 (BODYSTRUCTURE)\r\n");
    assert!(out.contains("BODYSTRUCTURE (\"TEXT\" \"plain\""), "{out}");
    let out = h.send(b"a7 FETCH 1 ALL\r\n");
    assert!(out.contains("INTERNALDATE \""), "{out}");
    let out = h.send(b"a8 FETCH 1 RFC822\r\n");
    assert!(
        out.contains(&format!("RFC822 {{{}}}\r\n{MESSAGE})", MESSAGE.len())),
        "{out}"
    );
    let out = h.send(b"a9 FETCH 2 FLAGS\r\n");
    assert!(out.starts_with("a9 BAD there is no message 2"), "{out}");
    let out = h.send(b"b1 UID FETCH 5:* FLAGS\r\n");
    assert!(out.contains("* 1 FETCH (UID 1 FLAGS"), "{out}");
}

#[test]
fn store_and_expunge() {
    let mut h = Harness::new();
    for _ in 0..3 {
        h.deliver(MESSAGE);
    }
    h.select();
    let out = h.send(b"a1 STORE 1:2 +FLAGS (\\Deleted \\Flagged)\r\n");
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent))"),
        "{out}"
    );
    assert!(out.contains("a1 OK STORE completed"), "{out}");
    let out = h.send(b"a2 UID STORE 2 -FLAGS.SILENT (\\Deleted)\r\n");
    assert_eq!(out, "a2 OK STORE completed\r\n");
    let out = h.send(b"a3 STORE 3 FLAGS ($Label1 \\Seen)\r\n");
    assert!(
        out.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)"),
        "{out}"
    );
    assert!(
        out.contains("* 3 FETCH (FLAGS (\\Seen $Label1 \\Recent))"),
        "{out}"
    );
    let out = h.send(b"a4 STORE 1 +FLAGS (\\Recent)\r\n");
    assert!(
        out.starts_with("a4 BAD STORE: \\Recent cannot be set"),
        "{out}"
    );
    let out = h.send(b"a5 SEARCH DELETED\r\n");
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let out = h.send(b"a6 EXPUNGE\r\n");
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    assert!(out.contains("a6 OK"), "{out}");
    let out = h.send(b"a7 UID SEARCH ALL\r\n");
    assert!(out.contains("* SEARCH 2 3\r\n"), "{out}");
    let out = h.send(b"a8 SEARCH KEYWORD $Label1\r\n");
    assert!(out.contains("* SEARCH 2\r\n"), "{out}");
    let out = h.send(b"a9 SEARCH CHARSET KOI8-R ALL\r\n");
    assert!(
        out.starts_with("a9 NO [BADCHARSET (US-ASCII UTF-8)]"),
        "{out}"
    );
    // UID EXPUNGE removes only the deleted messages in its set.
    h.send(b"b1 STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n");
    let out = h.send(b"b2 UID EXPUNGE 3\r\n");
    assert!(out.contains("* 2 EXPUNGE\r\n"), "{out}");
    assert!(!out.contains("* 1 EXPUNGE"), "{out}");
    let out = h.send(b"b3 CLOSE\r\n");
    assert!(out.starts_with("b3 OK"), "{out}");
    let out = h.send(b"b4 STATUS INBOX (MESSAGES)\r\n");
    assert!(out.contains("(MESSAGES 0)"), "{out}");
}

#[test]
fn mailboxes_list_copy_move() {
    let mut h = Harness::new();
    h.deliver(MESSAGE);
    h.deliver(MESSAGE);
    h.select();
    let out = h.send(b"a1 CREATE Archive\r\na2 CREATE Entw&APw-rfe.2024\r\n");
    assert!(out.contains("a1 OK") && out.contains("a2 OK"), "{out}");
    let out = h.send(b"a3 LIST \"\" \"*\"\r\n");
    assert!(
        out.contains("* LIST (\\HasNoChildren) \".\" INBOX\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasNoChildren) \".\" Archive\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasChildren) \".\" Entw&APw-rfe\r\n"),
        "{out}"
    );
    assert!(out.contains("Entw&APw-rfe.2024"), "{out}");
    let out = h.send(b"a4 LIST \"\" %\r\n");
    assert!(!out.contains("2024"), "{out}");
    let out = h.send(b"a5 LIST \"\" \"\"\r\n");
    assert!(out.contains("* LIST (\\Noselect) \".\" \"\""), "{out}");
    let out = h.send(b"a6 COPY 1 Archive\r\n");
    assert!(out.contains("a6 OK [COPYUID "), "{out}");
    assert!(out.contains(" 1 1]"), "{out}");
    let out = h.send(b"a7 COPY 1 Nowhere\r\n");
    assert!(out.starts_with("a7 NO [TRYCREATE]"), "{out}");
    let out = h.send(b"a8 UID MOVE 2 Archive\r\n");
    assert!(out.contains("* OK [COPYUID "), "{out}");
    assert!(out.contains("* 2 EXPUNGE\r\n"), "{out}");
    assert!(out.contains("a8 OK MOVE completed"), "{out}");
    let out = h.send(b"a9 STATUS Archive (MESSAGES UIDNEXT)\r\n");
    assert!(
        out.contains("* STATUS Archive (MESSAGES 2 UIDNEXT 3)"),
        "{out}"
    );
    let out = h.send(b"b1 SUBSCRIBE Archive\r\nb2 LSUB \"\" *\r\n");
    assert!(out.contains("* LSUB () \".\" Archive"), "{out}");
    let out = h.send(b"b3 RENAME Archive Old\r\nb4 DELETE Old\r\nb5 DELETE INBOX\r\n");
    assert!(out.contains("b3 OK") && out.contains("b4 OK"), "{out}");
    assert!(out.contains("b5 NO"), "{out}");
    let out = h.send(b"b6 NAMESPACE\r\n");
    assert!(out.contains("* NAMESPACE ((\"\" \".\")) NIL NIL"), "{out}");
}

#[test]
fn append_streams_into_the_store() {
    let mut h = Harness::new();
    h.login();
    let message = MESSAGE.repeat(2000);
    let out = h.send(
        format!(
            "a1 APPEND INBOX (\\Seen $Work) \"14-Jul-2020 02:44:25 +0200\" {{{}}}\r\n",
            message.len()
        )
        .as_bytes(),
    );
    assert_eq!(out, "+ Ready for literal data\r\n");
    for chunk in message.as_bytes().chunks(1000) {
        assert_eq!(h.send(chunk), "");
    }
    let out = h.send(b"\r\n");
    assert!(out.starts_with("a1 OK [APPENDUID "), "{out}");
    let entries = h.inbox().list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        fs::read(h.inbox().entry_path(&entries[0])).unwrap(),
        message.as_bytes()
    );
    let out = h.send(b"a2 SELECT INBOX\r\na3 FETCH 1 (FLAGS INTERNALDATE)\r\n");
    // The SELECT that takes the appended mail is the first to see it: \Recent (RFC 3501 §2.3.2).
    assert!(out.contains("FLAGS (\\Seen $Work \\Recent)"), "{out}");
    // The date is shown in the server's zone; the instant is what was given.
    assert!(out.contains("INTERNALDATE \""), "{out}");

    let out = h.send(b"a4 APPEND Nowhere {5}\r\n");
    assert!(out.starts_with("a4 NO [TRYCREATE]"), "{out}");
    let out = h.send(b"a5 APPEND INBOX {999999999999}\r\n");
    assert!(out.starts_with("a5 NO [TOOBIG]"), "{out}");
    // LITERAL+ to a missing mailbox: refused, the data skipped.
    let out = h.send(b"a6 APPEND Nowhere {5+}\r\nhello\r\na7 NOOP\r\n");
    assert!(out.starts_with("a6 NO [TRYCREATE]"), "{out}");
    assert!(out.contains("a7 OK"), "{out}");
    // The new message shows up in the selected mailbox.
    let out = h.send(b"a8 APPEND INBOX {5+}\r\nhello\r\n");
    assert!(out.contains("* 2 EXISTS\r\n"), "{out}");
    assert!(out.contains("a8 OK [APPENDUID"), "{out}");
    // Nothing half-written is left in tmp/.
    assert_eq!(
        fs::read_dir(h.inbox().path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn idle_sees_a_delivery() {
    let mut h = Harness::new();
    h.deliver(MESSAGE);
    h.select();
    let out = h.send(b"a1 IDLE\r\n");
    assert_eq!(out, "+ idling\r\n");
    assert!(h.session.is_idling());
    let mut out = Vec::new();
    h.session.tick(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    // A change in the same second as the last look is caught (unsettled stamps).
    h.deliver(MESSAGE);
    std::thread::sleep(Duration::from_millis(20));
    h.session.tick(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{text}");
    let out = h.send(b"DONE\r\n");
    assert_eq!(out, "a1 OK IDLE terminated\r\n");
    assert!(!h.session.is_idling());
}

#[test]
fn updates_from_another_session() {
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    a.select();
    let mut b = Session::new(a.store.clone(), config());
    drive(&mut b, b"b1 LOGIN alice secret\r\nb2 SELECT INBOX\r\n");
    let out = drive(
        &mut b,
        b"b3 STORE 2 +FLAGS (\\Deleted)\r\nb4 EXPUNGE\r\nb5 STORE 1 +FLAGS (\\Flagged)\r\n",
    );
    assert!(out.contains("* 2 EXPUNGE"), "{out}");
    // FETCH may not announce the expunge; the flag change is fine.
    let out = a.send(b"a1 FETCH 1:* (FLAGS)\r\n");
    assert!(!out.contains("* 2 EXPUNGE"), "{out}");
    assert!(out.contains("a1 NO [EXPUNGEISSUED]"), "{out}");
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{out}"
    );
    // A flag change on the mail b expunged is no error (RFC 2180 §4.2.1; Dovecot says OK).
    let out = a.send(b"a15 STORE 2 +FLAGS (\\Seen)\r\n");
    assert!(out.contains("a15 OK [EXPUNGEISSUED]"), "{out}");
    let out = a.send(b"a2 NOOP\r\n");
    assert!(out.contains("* 2 EXPUNGE\r\n"), "{out}");
    assert!(out.ends_with("a2 OK NOOP completed\r\n"), "{out}");
    let out = a.send(b"a3 FETCH 1:* (UID)\r\n");
    assert!(out.contains("* 2 FETCH (UID 3)"), "{out}");
}

#[test]
fn uid_fetch_announces_expunges_by_others_first_and_succeeds() {
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    a.select();
    let mut b = Session::new(a.store.clone(), config());
    b.receive(b"b1 LOGIN alice secret\r\nb2 SELECT INBOX\r\nb3 STORE 2 +FLAGS (\\Deleted)\r\nb4 EXPUNGE\r\n");
    while b.next(&mut Vec::new()) != Action::NeedInput {}
    // RFC 3501 7.4.1 lets UID FETCH announce the expunge, so `1:*` does not fail on it.
    let out = a.send(b"a1 UID FETCH 1:* (FLAGS)\r\n");
    assert!(out.starts_with("* 2 EXPUNGE\r\n"), "{out}");
    assert!(out.ends_with("a1 OK UID FETCH completed\r\n"), "{out}");
    assert!(out.contains("* 2 FETCH (UID 3 FLAGS (\\Recent))"), "{out}");
}

#[test]
fn id_enable_and_unselect() {
    let mut h = Harness::new();
    let out = h.send(b"a1 ID NIL\r\n");
    assert!(
        out.contains(&format!(
            "* ID (\"name\" \"mailtool\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    h.login();
    let out = h.send(b"a2 ENABLE CONDSTORE\r\n");
    assert!(out.contains("* ENABLED\r\na2 OK"), "{out}");
    h.send(b"a3 SELECT INBOX\r\n");
    let out = h.send(b"a4 UNSELECT\r\na5 CHECK\r\n");
    assert!(out.contains("a4 OK"), "{out}");
    assert!(
        out.contains("a5 BAD CHECK needs a selected mailbox"),
        "{out}"
    );
}

/// A short script gives the same output however its bytes are split.
#[test]
fn split_at_every_byte_gives_the_same_output() {
    let script: &[u8] = b"a1 LOGIN {5}\r\nalice {6+}\r\nsecret\r\na2 SELECT INBOX\na3 FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\na4 APPEND INBOX {5+}\r\nhello\r\na5 NOOP\r\na6 LOGOUT\r\n";
    let run = |cuts: &[usize]| -> String {
        let h = Harness::new();
        h.deliver(MESSAGE);
        let mut h = h;
        let mut out = String::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&script.len())) {
            out.push_str(&h.send(&script[last..cut]));
            last = cut;
        }
        // The UIDVALIDITY and INTERNALDATE differ between stores.
        out.lines()
            .filter(|l| !l.contains("UIDVALIDITY") && !l.contains("APPENDUID"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let whole = run(&[]);
    assert!(whole.contains("a6 OK"), "{whole}");
    for cut in 1..script.len() {
        assert_eq!(run(&[cut]), whole, "split at {cut}");
    }
    let every: Vec<usize> = (1..script.len()).collect();
    assert_eq!(run(&every), whole);
}

/// FETCH of large messages is handed out in chunks of about 64 KiB, and the bodies arrive
/// whole and in order.
#[test]
fn large_fetch_is_flushed_in_chunks() {
    let mut h = Harness::new();
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n";
    let body = line.repeat(5000);
    let message = format!("Subject: big\r\n\r\n{body}");
    for _ in 0..3 {
        h.deliver(&message);
    }
    h.select();
    h.session.receive(b"a1 FETCH 1:* (BODY.PEEK[])\r\n");
    let mut all = Vec::new();
    let mut flushes = 0;
    loop {
        let mut out = Vec::new();
        match h.session.next(&mut out) {
            Action::Flush => {
                flushes += 1;
                assert!(out.len() < 200 * 1024, "chunk of {}", out.len());
            }
            Action::NeedInput => {
                all.extend_from_slice(&out);
                break;
            }
            other => panic!("{other:?}"),
        }
        all.extend_from_slice(&out);
    }
    assert!(
        flushes >= 3 * message.len() / (128 * 1024),
        "{flushes} flushes"
    );
    let text = String::from_utf8(all).unwrap();
    for seq in 1..=3 {
        let head = format!(
            "* {seq} FETCH (BODY[] {{{}}}\r\n{message})\r\n",
            message.len()
        );
        assert!(text.contains(&head), "message {seq}");
    }
    assert!(text.ends_with("a1 OK FETCH completed\r\n"));
}

/// Whatever the client sends, the session answers without panicking and its buffered
/// output stays bounded.
mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::sample::select(vec![
                &b"a FETCH 1:* (FLAGS BODY[])\r\n"[..],
                b"b STORE 1 +FLAGS (\\Seen x)\r\n",
                b"c APPEND INBOX {5+}\r\nhello\r\n",
                b"d APPEND INBOX {5}\r\n",
                b"e SEARCH OR (SEEN) NOT (FROM \"x\")\r\n",
                b"f IDLE\r\n",
                b"DONE\r\n",
                b"g LIST \"\" *\r\n",
                b"h SELECT INBOX\r\n",
                b"i EXPUNGE\r\n",
                b"{3}\r\n",
                b"{4294967295+}\r\n",
                b"j AUTHENTICATE PLAIN\r\n",
                b"k UID MOVE 1 INBOX\r\n",
                b"\r\n",
                b"\n",
            ])
            .prop_map(<[u8]>::to_vec),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn never_panics(chunks in proptest::collection::vec(chunk(), 1..30)) {
            let mut h = Harness::new();
            h.deliver(MESSAGE);
            h.select();
            for chunk in chunks {
                h.session.receive(&chunk);
                for _ in 0..10_000 {
                    let mut out = Vec::new();
                    let action = h.session.next(&mut out);
                    prop_assert!(out.len() < 1024 * 1024);
                    match action {
                        Action::NeedInput => break,
                        Action::Close => return Ok(()),
                        Action::StartTls => return Ok(()),
                        Action::Pause { then_close: true, .. } => return Ok(()),
                        _ => {}
                    }
                }
                let mut out = Vec::new();
                h.session.tick(&mut out);
            }
        }
    }
}

#[test]
fn literal_plus_append_before_login_is_skipped() {
    let mut h = Harness::new();
    let out = h.send(b"a1 APPEND INBOX {11+}\r\na2 NOOP\r\nxx\r\na3 NOOP\r\n");
    assert!(out.starts_with("a1 BAD Log in first"), "{out}");
    // The literal's octets ("a2 NOOP\r\nxx" is 11) were not read as a command.
    assert!(!out.contains("a2"), "{out}");
    assert!(out.ends_with("a3 OK NOOP completed\r\n"), "{out}");
}

#[test]
fn fetch_on_an_empty_mailbox() {
    let mut h = Harness::new();
    h.select();
    let out = h.send(b"a1 FETCH 1:* (FLAGS)\r\na2 UID FETCH 1:* (FLAGS)\r\na3 SEARCH ALL\r\n");
    assert_eq!(
        out,
        "a1 OK FETCH completed\r\na2 OK UID FETCH completed\r\n* SEARCH\r\na3 OK SEARCH completed\r\n"
    );
}

#[test]
fn copied_and_flagged_appended_mail_is_recent_where_it_lands() {
    // imaptest's `copy`: RFC 3501 §6.4.7 says the copy SHOULD be \Recent, flags or not.
    let mut a = Harness::new();
    a.deliver(MESSAGE);
    a.deliver(MESSAGE);
    a.select();
    let out = a.send(b"a1 CREATE Box\r\na2 STORE 1 FLAGS (\\Seen)\r\n");
    assert!(out.contains("a2 OK"), "{out}");
    let mut b = Session::new(a.store.clone(), config());
    let out = drive(&mut b, b"b1 LOGIN alice secret\r\nb2 SELECT Box\r\n");
    assert!(out.contains("* 0 RECENT"), "{out}");
    let out = a.send(b"a3 COPY 1:2 Box\r\na4 APPEND Box (\\Flagged) {5+}\r\nhello\r\n");
    assert!(out.contains("a3 OK") && out.contains("a4 OK"), "{out}");
    let out = drive(&mut b, b"b3 NOOP\r\nb4 FETCH 1:3 (FLAGS)\r\n");
    assert!(out.contains("* 3 EXISTS\r\n* 3 RECENT\r\n"), "{out}");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{out}");
    assert!(out.contains("* 2 FETCH (FLAGS (\\Recent))"), "{out}");
    assert!(
        out.contains("* 3 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{out}"
    );
}

#[test]
fn list_pattern_with_a_stray_ampersand_is_matched_as_written() {
    // imaptest's `atoms`: every atom character in a LIST pattern, `&` not starting valid
    // modified UTF-7. A well-formed pattern: OK, with whatever it matches.
    let mut h = Harness::new();
    h.login();
    let out = h.send(b"a1 LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*\r\n");
    assert_eq!(out, "a1 OK LIST completed\r\n");
    let out = h.send(b"a2 LIST \"\" \"a&b\"\r\na3 LSUB \"\" &*\r\n");
    assert_eq!(out, "a2 OK LIST completed\r\na3 OK LSUB completed\r\n");
}

#[test]
fn sessions_sharing_a_large_mailbox_see_each_others_changes_as_announced() {
    // Large enough for the store to keep its listing and hand the same list to every
    // session that selects the mailbox unchanged.
    let a = Harness::new();
    let inbox = a.inbox();
    let count = 2_100;
    for n in 0..count {
        let name = format!("1700000000.M{n}P1Q{n}.host,S=2:2,S");
        fs::write(inbox.path().join("cur").join(name), "x\n").unwrap();
    }
    let settle = || settle_folders(&inbox);
    settle();
    let mut sessions: Vec<Session> = (0..3)
        .map(|_| Session::new(a.store.clone(), config()))
        .collect();
    for (i, session) in sessions.iter_mut().enumerate() {
        let out = drive(session, b"l LOGIN alice secret\r\ns SELECT INBOX\r\n");
        assert!(out.contains(&format!("* {count} EXISTS")), "{i}: {out}");
        assert!(out.contains("s OK [READ-WRITE]"), "{i}: {out}");
        // The first SELECT wrote the uidlist; put the folders' times back so that the
        // listing after it is the one kept and shared.
        settle();
    }
    let [a, b, c] = &mut sessions[..] else {
        unreachable!()
    };
    // b changes its copy; a and c still hold the shared list and learn of it by announcement.
    let out = drive(
        b,
        b"b1 STORE 5 +FLAGS (\\Flagged)\r\nb2 STORE 1 +FLAGS.SILENT (\\Deleted)\r\nb3 EXPUNGE\r\n",
    );
    assert!(
        out.contains("* 5 FETCH (FLAGS (\\Flagged \\Seen))"),
        "{out}"
    );
    assert!(out.contains("* 1 EXPUNGE"), "{out}");
    let out = drive(a, b"a1 FETCH 5 (FLAGS)\r\n");
    // During a FETCH the expunged message keeps its number: message 5 is still message 5.
    assert!(!out.contains("EXPUNGE"), "{out}");
    assert!(
        out.contains("* 5 FETCH (FLAGS (\\Flagged \\Seen))"),
        "{out}"
    );
    let out = drive(a, b"a2 NOOP\r\n");
    assert!(out.starts_with("* 1 EXPUNGE\r\n"), "{out}");
    let out = drive(a, b"a3 FETCH 4 (FLAGS UID)\r\n");
    assert!(
        out.contains("* 4 FETCH (FLAGS (\\Flagged \\Seen) UID 5)"),
        "{out}"
    );
    // c saw none of it until it asks.
    let out = drive(c, b"c1 NOOP\r\n");
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    assert!(
        out.contains("* 4 FETCH (FLAGS (\\Flagged \\Seen))"),
        "{out}"
    );
    assert!(out.contains("c1 OK"), "{out}");
}

#[test]
fn a_hibernated_session_lists_again_and_announces_what_changed_meanwhile() {
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    let out = a.select();
    assert!(out.contains("* 3 RECENT"), "{out}");
    let out = a.send(b"a1 STORE 2 +FLAGS (\\Flagged $Work)\r\n");
    assert!(out.contains("a1 OK"), "{out}");
    assert!(a.session.hibernate(), "a quiet selected session lets go");
    assert!(!a.session.hibernate(), "and only once");

    // Meanwhile another session flags message 1 and expunges message 3, and mail arrives.
    let mut b = seen_one_and_expunge_three(&a);
    a.deliver(MESSAGE);

    // A FETCH may not announce the expunge: message 3 keeps its number, as gone.
    let out = a.send(b"a2 FETCH 1:* (FLAGS)\r\n");
    assert!(!out.contains("* 3 EXPUNGE"), "{out}");
    assert!(out.contains("* 4 EXISTS"), "{out}");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{out}");
    assert!(
        out.contains("* 2 FETCH (FLAGS (\\Flagged $Work \\Recent))"),
        "flags and \\Recent kept across hibernation: {out}"
    );
    assert!(out.contains("* 4 FETCH (FLAGS (\\Recent))"), "{out}");
    assert!(out.contains("a2 NO [EXPUNGEISSUED]"), "{out}");
    let out = a.send(b"a3 NOOP\r\n");
    assert!(out.starts_with("* 3 EXPUNGE\r\n"), "{out}");
    // The file names are back: bodies are read, and flags change on disk.
    let out = a.send(b"a4 FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n");
    assert!(out.contains("Subject: Hello"), "{out}");
    let out = a.send(b"a5 STORE 3 +FLAGS.SILENT (\\Deleted)\r\na6 EXPUNGE\r\n");
    assert!(out.contains("* 3 EXPUNGE\r\na6 OK"), "{out}");
    // That was the new mail (UID 4), gone from the disk before b saw it.
    let out = drive(&mut b, b"b6 UID FETCH 1:* (FLAGS)\r\n");
    assert!(out.contains("* 1 FETCH (UID 1 FLAGS (\\Seen))"), "{out}");
    assert!(
        out.contains("* 2 FETCH (UID 2 FLAGS (\\Flagged $Work))"),
        "{out}"
    );
    assert!(!out.contains("UID 4"), "{out}");
    let files = ["new", "cur"]
        .iter()
        .map(|d| fs::read_dir(a.inbox().path().join(d)).unwrap().count())
        .sum::<usize>();
    assert_eq!(files, 2);
}

/// A second session of alice's that marks message 1 `\Seen` and expunges message 3; it stays
/// selected, for what it sees later.
fn seen_one_and_expunge_three(a: &Harness) -> Session {
    let mut b = Session::new(a.store.clone(), config());
    let out = drive(
        &mut b,
        b"b1 LOGIN alice secret\r\nb2 SELECT INBOX\r\nb3 STORE 1 +FLAGS (\\Seen)\r\nb4 STORE 3 +FLAGS (\\Deleted)\r\nb5 EXPUNGE\r\n",
    );
    assert!(out.contains("* 3 EXPUNGE"), "{out}");
    b
}

/// Put the folders' times of `maildir` a minute back, so that a look at them is settled.
fn settle_folders(maildir: &Maildir) {
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    for sub in ["new", "cur"] {
        fs::File::open(maildir.path().join(sub))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
}

#[test]
fn a_session_hibernating_in_idle_sleeps_until_the_mailbox_changes() {
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    a.select();
    // A settled look, so that a tick with nothing changed can prove it without listing.
    settle_folders(&a.inbox());
    let out = a.send(b"a1 NOOP\r\na2 IDLE\r\n");
    assert!(out.contains("+ "), "{out}");
    assert!(a.session.hibernate(), "a quiet IDLE lets go");
    let mut out = Vec::new();
    a.session.tick(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(!a.session.hibernate(), "nothing changed: still asleep");

    // Another session flags message 1 and expunges message 3; new mail arrives.
    seen_one_and_expunge_three(&a);
    a.deliver(MESSAGE);
    let mut out = Vec::new();
    a.session.tick(&mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("* 3 EXPUNGE\r\n"),
        "IDLE may announce expunges: {out}"
    );
    assert!(out.contains("* 3 EXISTS\r\n"), "{out}");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{out}");
    assert!(
        a.session.hibernate(),
        "awake after announcing, and asleep again"
    );
    let out = a.send(b"DONE\r\n");
    assert!(out.contains("a2 OK"), "{out}");
    // The names came back from the listing: the new mail's body is read from its file.
    let out = a.send(b"a3 UID FETCH 4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
    assert!(out.contains("* 3 FETCH (UID 4 FLAGS (\\Recent)"), "{out}");
    assert!(out.contains("Subject: Hello"), "{out}");
    assert!(out.contains("a3 OK"), "{out}");
}

#[test]
fn only_a_session_between_commands_with_a_mailbox_hibernates() {
    let mut a = Harness::new();
    a.deliver(MESSAGE);
    a.login();
    assert!(!a.session.hibernate(), "nothing selected");
    let out = a.send(b"s1 SELECT INBOX\r\n");
    assert!(out.contains("s1 OK"), "{out}");
    a.session.receive(b"a1 NOOP");
    assert!(!a.session.hibernate(), "half a command received");
    let out = a.send(b"\r\na2 IDLE\r\n");
    assert!(out.contains("+ "), "{out}");
    a.session.receive(b"DO");
    assert!(!a.session.hibernate(), "half a DONE received");
    let out = a.send(b"NE\r\n");
    assert!(out.contains("a2 OK"), "{out}");
    assert!(a.session.hibernate());
    let out = a.send(b"a3 FETCH 1 (FLAGS UID)\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Recent) UID 1)"), "{out}");
    assert!(out.contains("a3 OK"), "{out}");
}

#[test]
fn mail_another_program_delivers_shows_at_noop_at_once_and_at_fetch_within_a_second() {
    let mut a = Harness::new();
    for _ in 0..2 {
        a.deliver(MESSAGE);
    }
    a.select();
    let inbox = a.inbox();
    // Another program (an MDA, Dovecot) writes straight into new/, past this process's store.
    let write = |n: u32| {
        let name = format!("1700000000.M{n}P99Q{n}.other,S=2,W=3");
        fs::write(inbox.path().join("new").join(name), "x\n").unwrap();
    };
    write(1);
    let out = a.send(b"a1 NOOP\r\n");
    assert!(out.contains("* 3 EXISTS\r\n"), "{out}");
    // A FETCH may answer from what the session saw within the last second (as Dovecot's
    // does for 5 s), but no longer than that.
    write(2);
    std::thread::sleep(Duration::from_millis(1100));
    let out = a.send(b"a2 FETCH 1 (FLAGS)\r\n");
    assert!(out.contains("* 4 EXISTS\r\n"), "{out}");
    assert!(out.contains("a2 OK"), "{out}");
}

#[test]
fn a_flag_another_program_set_since_the_session_looked_survives_store_and_fetch() {
    let mut a = Harness::new();
    for _ in 0..2 {
        a.deliver(MESSAGE);
    }
    a.select();
    let inbox = a.inbox();
    // Another program flags both messages (renames their files) right after the SELECT,
    // within the moment in which a STORE or FETCH need not look at the Maildir again.
    let cur = inbox.path().join("cur");
    let names = || -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&cur)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let names_before = names();
    assert_eq!(names_before.len(), 2, "{names_before:?}");
    for name in &names_before {
        let (base, flags) = name.split_once(":2,").unwrap();
        fs::rename(cur.join(name), cur.join(format!("{base}:2,F{flags}"))).unwrap();
    }
    let out = a.send(b"a1 STORE 1 +FLAGS (\\Seen)\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Flagged \\Seen"), "{out}");
    assert!(out.contains("a1 OK"), "{out}");
    let out = a.send(b"a2 FETCH 2 (BODY[])\r\n");
    assert!(out.contains("a2 OK"), "{out}");
    // Whatever the session knew, the files must keep the other program's flag.
    let flags: Vec<String> = names()
        .iter()
        .map(|name| name.split_once(":2,").unwrap().1.to_owned())
        .collect();
    assert_eq!(flags, ["FS", "FS"]);
}

/// Files in one of the inbox's folders.
fn files_in(h: &Harness, folder: &str) -> usize {
    fs::read_dir(h.inbox().path().join(folder)).unwrap().count()
}

#[test]
fn expunge_copy_move_and_append_wait_for_a_call_that_may_block_before_touching_the_disk() {
    let mut h = Harness::new();
    h.deliver(MESSAGE);
    h.deliver(MESSAGE);
    h.select();
    let out = h.send(b"a1 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    assert!(out.contains("a1 OK"), "{out}");
    assert!(h.actions.is_empty(), "STORE offloaded: {:?}", h.actions);

    // EXPUNGE: asks first, and has removed nothing and answered nothing when it asks.
    h.session.receive(b"a2 EXPUNGE\r\n");
    let mut out = Vec::new();
    assert_eq!(h.session.next(&mut out), Action::Offload);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(files_in(&h, "cur"), 2);
    assert_eq!(h.session.next(&mut out), Action::NeedInput);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("* 1 EXPUNGE\r\n"), "{out}");
    assert!(out.contains("a2 OK"), "{out}");
    assert_eq!(files_in(&h, "cur"), 1);

    // APPEND: the message streams into tmp/ at once; the line that ends it commits it
    // (fsyncs) only on the call that may block.
    h.session
        .receive(b"a3 APPEND INBOX {28+}\r\nSubject: appended\r\n\r\nHello\r\n");
    let mut out = Vec::new();
    assert_eq!(h.session.next(&mut out), Action::NeedInput);
    assert_eq!(files_in(&h, "tmp"), 1);
    h.session.receive(b"\r\n");
    assert_eq!(h.session.next(&mut out), Action::Offload);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!((files_in(&h, "tmp"), files_in(&h, "new")), (1, 0));
    assert_eq!(h.session.next(&mut out), Action::NeedInput);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("a3 OK [APPENDUID "), "{out}");
    assert_eq!(files_in(&h, "tmp"), 0);

    // COPY and MOVE ask too; a pipelined command after them runs on the same call.
    let out = h.send(b"a4 CREATE Archive\r\n");
    assert!(out.contains("a4 OK"), "{out}");
    for (tag, command) in [("a5", "COPY 1 Archive"), ("a6", "UID MOVE 1:* Archive")] {
        h.session
            .receive(format!("{tag} {command}\r\n{tag}n NOOP\r\n").as_bytes());
        let mut out = Vec::new();
        assert_eq!(h.session.next(&mut out), Action::Offload, "{command}");
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        assert_eq!(h.session.next(&mut out), Action::NeedInput);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(&format!("{tag} OK")), "{out}");
        assert!(out.contains(&format!("{tag}n OK")), "{out}");
    }
    assert_eq!(files_in(&h, "cur") + files_in(&h, "new"), 0);
    let out = h.send(b"a7 STATUS Archive (MESSAGES)\r\n");
    assert!(out.contains("(MESSAGES 3)"), "{out}");
}

/// Rename the only file in the inbox's `cur/` to carry `flags`, as another program would
/// (no word to this process).
fn set_flags_behind_the_back(h: &Harness, flags: &str) {
    let cur = h.inbox().path().join("cur");
    let entries: Vec<_> = fs::read_dir(&cur).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0].file_name().into_string().unwrap();
    let base = name.split(":2,").next().unwrap();
    fs::rename(cur.join(&name), cur.join(format!("{base}:2,{flags}"))).unwrap();
}

#[test]
fn another_programs_change_right_after_the_sessions_own_shows_at_the_next_noop() {
    let mut h = Harness::new();
    h.select();
    // New mail, which the NOOP takes from new/ into cur/: the session keeps the folders'
    // times as they are after its own rename.
    h.deliver(MESSAGE);
    let out = h.send(b"a1 NOOP\r\n");
    assert!(out.contains("* 1 EXISTS"), "{out}");
    assert_eq!(files_in(&h, "cur"), 1);
    // Another program flags it at once. (Where that leaves cur/'s time as it was, in the
    // tick of the session's own rename, the change shows a moment later:
    // `a_change_hidden_in_the_tick_of_the_sessions_own_moves_shows_later`.)
    let cur = h.inbox().path().join("cur");
    as_another_program(&cur, || set_flags_behind_the_back(&h, "F"));
    let out = h.send(b"a2 NOOP\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Flagged"), "{out}");

    // After SELECT, which listed the Maildir and does not look again before answering.
    let out = h.send(b"a3 SELECT INBOX\r\n");
    assert!(out.contains("a3 OK"), "{out}");
    as_another_program(&cur, || set_flags_behind_the_back(&h, "FS"));
    let out = h.send(b"a4 NOOP\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Flagged \\Seen"), "{out}");

    // After EXPUNGE, which announces its own removals without listing them again.
    h.deliver(MESSAGE);
    let out = h.send(b"a5 NOOP\r\n");
    assert!(out.contains("* 2 EXISTS"), "{out}");
    let out = h.send(b"a6 STORE 1 +FLAGS.SILENT (\\Deleted)\r\na7 EXPUNGE\r\n");
    assert!(out.contains("* 1 EXPUNGE"), "{out}");
    as_another_program(&cur, || set_flags_behind_the_back(&h, "D"));
    let out = h.send(b"a8 NOOP\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Draft"), "{out}");
}

/// A change to a selected mailbox: by the session itself, or by another program working the
/// Maildir's files directly (which numbers nothing and tells no one).
#[derive(Debug, Clone)]
enum Change {
    Append,
    /// A delivery through the store (numbered later by whoever lists it).
    Deliver,
    /// A file renamed into `new/` by another program.
    DropIntoNew,
    /// A file renamed into `cur/` by another program, with flags.
    DropIntoCur,
    FlagByOther(usize),
    RemoveByOther(usize),
    StoreOwn(usize),
    ExpungeOwn(usize),
    Noop,
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        3 => Just(Change::Append),
        2 => Just(Change::Deliver),
        2 => Just(Change::DropIntoNew),
        1 => Just(Change::DropIntoCur),
        2 => any::<usize>().prop_map(Change::FlagByOther),
        1 => any::<usize>().prop_map(Change::RemoveByOther),
        1 => any::<usize>().prop_map(Change::StoreOwn),
        1 => any::<usize>().prop_map(Change::ExpungeOwn),
        3 => Just(Change::Noop),
    ]
}

fn mtime_ns(path: &std::path::Path) -> i128 {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).unwrap();
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// Run `change` on folder `dir` as another program, and make sure the folder's time shows
/// it: a change within the same clock tick as the session's last look may leave the time as
/// it was, and then only the look after the session's trust in it ends would see it (the
/// test of that is `a_change_hidden_in_the_tick_of_the_sessions_own_moves_shows_later`).
fn as_another_program(dir: &std::path::Path, change: impl FnOnce()) {
    let before = mtime_ns(dir);
    change();
    while mtime_ns(dir) == before {
        std::thread::sleep(Duration::from_millis(1));
        let touch = dir.join(".touch");
        fs::write(&touch, "").unwrap();
        fs::remove_file(&touch).unwrap();
    }
}

/// The session's view (UID and flags, without `\Recent`), with what the command announced.
fn uid_view(session: &mut Session, tag: &str) -> Vec<(u32, String)> {
    let out = drive(
        session,
        format!("{tag} UID FETCH 1:* (FLAGS)\r\n").as_bytes(),
    );
    assert!(out.contains(&format!("{tag} OK")), "{out}");
    out.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("* ")?.split_once(" FETCH (UID ")?.1;
            let (uid, flags) = rest.split_once(" FLAGS (")?;
            let flags = flags.trim_end_matches("))");
            let flags: Vec<&str> = flags.split(' ').filter(|f| *f != "\\Recent").collect();
            Some((uid.parse().unwrap(), flags.join(" ")))
        })
        .collect()
}

/// What a session that selects the mailbox now sees.
fn fresh_view(store: &Store) -> Vec<(u32, String)> {
    let mut fresh = Session::new(store.clone(), config());
    let out = drive(&mut fresh, b"l LOGIN alice secret\r\ne EXAMINE INBOX\r\n");
    assert!(out.contains("e OK"), "{out}");
    uid_view(&mut fresh, "f")
}

fn messages_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

mod selected_view {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// However the mailbox changes (the session's own APPEND, STORE and EXPUNGE, deliveries,
        /// files dropped, flagged or removed by other programs), after a NOOP the selected
        /// session sees what a session that selects it afresh sees: the same UIDs with the same
        /// flags. Most looks after an APPEND or a delivery list `new/` alone.
        #[test]
        fn after_noop_the_session_sees_what_a_fresh_session_sees(
            changes in proptest::collection::vec(change(), 1..24)
        ) {
            let mut a = Harness::new();
            for _ in 0..3 {
                a.deliver(MESSAGE);
            }
            a.select();
            let inbox = a.inbox();
            let (new, cur) = (inbox.path().join("new"), inbox.path().join("cur"));
            for (n, change) in changes.iter().enumerate() {
                match change {
                    Change::Append => {
                        let command = format!(
                            "p{n} APPEND INBOX {{{}+}}\r\n{MESSAGE}\r\n",
                            MESSAGE.len()
                        );
                        let out = a.send(command.as_bytes());
                        prop_assert!(out.contains(&format!("p{n} OK")), "{}", out);
                    }
                    Change::Deliver => as_another_program(&new, || a.deliver(MESSAGE)),
                    Change::DropIntoNew | Change::DropIntoCur => {
                        let (dir, suffix) = match change {
                            Change::DropIntoNew => (&new, ""),
                            _ => (&cur, ":2,FS"),
                        };
                        let tmp = inbox.path().join("tmp").join(format!("drop{n}"));
                        fs::write(&tmp, MESSAGE).unwrap();
                        let name = format!("1700000100.M{n}P9Q{n}.other{suffix}");
                        as_another_program(dir, || fs::rename(&tmp, dir.join(name)).unwrap());
                    }
                    Change::FlagByOther(pick) => {
                        let files = messages_in(&cur);
                        if let Some(file) = files.get(pick % files.len().max(1)) {
                            let name = file.file_name().unwrap().to_string_lossy().into_owned();
                            let (base, flags) = name.split_once(":2,").unwrap();
                            if !flags.contains('F') {
                                let mut letters: Vec<char> = flags.chars().chain(['F']).collect();
                                letters.sort_unstable();
                                let flagged: String = letters.into_iter().collect();
                                as_another_program(&cur, || {
                                    fs::rename(file, cur.join(format!("{base}:2,{flagged}"))).unwrap()
                                });
                            }
                        }
                    }
                    Change::RemoveByOther(pick) => {
                        let files = [messages_in(&new), messages_in(&cur)].concat();
                        if let Some(file) = files.get(pick % files.len().max(1)) {
                            let dir = file.parent().unwrap().to_owned();
                            as_another_program(&dir, || fs::remove_file(file).unwrap());
                        }
                    }
                    Change::StoreOwn(pick) | Change::ExpungeOwn(pick) => {
                        let count = uid_view(&mut a.session, &format!("c{n}")).len();
                        if count > 0 {
                            let seq = pick % count + 1;
                            let command = if matches!(change, Change::StoreOwn(_)) {
                                format!("o{n} STORE {seq} +FLAGS (\\Seen)\r\n")
                            } else {
                                format!("o{n} STORE {seq} +FLAGS.SILENT (\\Deleted)\r\no{n}x EXPUNGE\r\n")
                            };
                            let out = a.send(command.as_bytes());
                            prop_assert!(out.contains(&format!("o{n} OK")), "{}", out);
                        }
                    }
                    Change::Noop => {
                        let out = a.send(format!("n{n} NOOP\r\n").as_bytes());
                        prop_assert!(out.contains(&format!("n{n} OK")), "{}", out);
                        let seen = uid_view(&mut a.session, &format!("v{n}"));
                        prop_assert_eq!(seen, fresh_view(&a.store), "after {:?}", &changes[..=n]);
                    }
                }
            }
            let out = a.send(b"z NOOP\r\n");
            prop_assert!(out.contains("z OK"), "{}", out);
            let seen = uid_view(&mut a.session, "zz");
            prop_assert_eq!(seen, fresh_view(&a.store), "after {:?}", changes);
        }
    }
}

/// A session with three messages selected that has just APPENDed a fourth, taken into `cur/`
/// by its own look: it trusts the time of `cur/` it saw after that move for a moment. Also
/// `cur/` and that time, for a test to change the folder and put the time back, as a change
/// in the same clock tick would leave it.
fn just_after_an_own_append() -> (Harness, std::path::PathBuf, std::time::SystemTime) {
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    a.select();
    let command = format!("a1 APPEND INBOX {{{}+}}\r\n{MESSAGE}\r\n", MESSAGE.len());
    let out = a.send(command.as_bytes());
    assert!(out.contains("* 4 EXISTS"), "{out}");
    let cur = a.inbox().path().join("cur");
    let time = fs::metadata(&cur).unwrap().modified().unwrap();
    (a, cur, time)
}

#[test]
fn a_change_hidden_in_the_tick_of_the_sessions_own_moves_shows_later() {
    let (mut a, cur, time) = just_after_an_own_append();
    // Another program adds a message to cur/ in the same tick: the folder's time stays.
    fs::write(cur.join("1700000200.M1P9Q1.other:2,S"), MESSAGE).unwrap();
    fs::File::open(&cur).unwrap().set_modified(time).unwrap();
    // A look within that moment may miss it; the first look after it must not.
    let mut out = a.send(b"n1 NOOP\r\n");
    std::thread::sleep(Duration::from_millis(1_100));
    out += &a.send(b"n2 NOOP\r\n");
    assert!(out.contains("* 5 EXISTS"), "{out}");
    assert_eq!(uid_view(&mut a.session, "v"), fresh_view(&a.store));
}

thread_local! {
    /// What [`during_a_wait_for_the_disk`] does at the next wait of this thread's store.
    static DURING_THE_WAIT: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        std::cell::RefCell::new(None);
}

/// The store's hook for its waits for the disk (fsyncs): here it runs, once, what the test on
/// this thread put in [`DURING_THE_WAIT`], as another session would in that moment.
fn during_a_wait_for_the_disk(wait: &mut dyn FnMut()) {
    if let Some(action) = DURING_THE_WAIT.with(|a| a.borrow_mut().take()) {
        action();
    }
    wait();
}

#[test]
fn another_sessions_change_during_the_sessions_own_expunge_shows_at_the_next_noop() {
    mailtool::store::on_blocking(during_a_wait_for_the_disk);
    let mut a = Harness::new();
    for _ in 0..3 {
        a.deliver(MESSAGE);
    }
    a.select();
    let out = a.send(b"a1 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    assert!(out.contains("a1 OK"), "{out}");
    // While the EXPUNGE waits for the disk, another session of this server flags message 2:
    // the folders' times after the EXPUNGE are then not the session's own doing alone.
    let other = a.inbox();
    DURING_THE_WAIT.with(|action| {
        *action.borrow_mut() = Some(Box::new(move || {
            let mut entries = other.list().unwrap();
            entries.sort_by(|x, y| x.file_name().cmp(y.file_name()));
            let second = entries
                .iter()
                .find(|e| !e.has_flag('T'))
                .expect("a message not deleted");
            other.update_flags(second, |_| "F".to_owned()).unwrap();
        }));
    });
    let out = a.send(b"a2 EXPUNGE\r\n");
    assert!(out.contains("* 1 EXPUNGE"), "{out}");
    assert!(
        DURING_THE_WAIT.with(|a| a.borrow().is_none()),
        "the EXPUNGE waited for the disk"
    );
    let out = a.send(b"a3 NOOP\r\n");
    assert!(out.contains("FETCH (FLAGS (\\Flagged"), "{out}");
    assert_eq!(uid_view(&mut a.session, "v"), fresh_view(&a.store));
}

#[test]
fn mail_numbered_into_cur_unseen_is_not_skipped_by_a_look_at_new_alone() {
    let (mut a, cur, time) = just_after_an_own_append();
    // Another session takes new mail into cur/ and numbers it (UID 5), leaving cur/'s time
    // as the session saw it (the same clock tick); then more mail comes into new/.
    a.deliver(MESSAGE);
    a.inbox().sync_uids(true).unwrap();
    fs::File::open(&cur).unwrap().set_modified(time).unwrap();
    a.deliver(MESSAGE);
    // Announcing the new mail (UID 6) from a look at new/ alone would leave UID 5 out for
    // good: the look sees its line and lists cur/ too.
    let out = a.send(b"n1 NOOP\r\n");
    assert!(out.contains("* 6 EXISTS"), "{out}");
    assert_eq!(uid_view(&mut a.session, "v"), fresh_view(&a.store));
}
