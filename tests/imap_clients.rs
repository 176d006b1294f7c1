//! serve-imap with the IMAP clients people use, each an independent implementation: mbsync
//! (isync) syncing a mailbox down and back up with flag changes, fetchmail and getmail6
//! fetching everything, and neomutt showing the mailbox on a real terminal under tmux.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::imap::RawImap;
use support::pop3::PopServer;
use support::TempStore;

/// Every message file of a Maildir with its flag letters, keyed by Subject.
fn maildir_subjects(maildir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = String::from_utf8_lossy(&fs::read(entry.path()).unwrap()).into_owned();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_owned();
            let flags = name.split(":2,").nth(1).unwrap_or("").to_owned();
            found.push((subject, flags));
        }
    }
    found.sort();
    found
}

/// Give a Maildir file one more flag, as a mail client does: into `cur/`, letters sorted.
fn add_flag(path: &Path, flag: char) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (base, flags) = name.split_once(":2,").unwrap_or((&name, ""));
    let mut letters: Vec<char> = flags.chars().chain([flag]).collect();
    letters.sort_unstable();
    letters.dedup();
    let letters: String = letters.into_iter().collect();
    let maildir = path.parent().unwrap().parent().unwrap();
    fs::rename(
        path,
        maildir.join("cur").join(format!("{base}:2,{letters}")),
    )
    .unwrap();
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed: {text}");
    text
}

#[test]
fn mbsync_syncs_down_and_back_up_with_flag_changes() {
    if !support::have("mbsync") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let local = store.scratch().join("local");
    fs::create_dir_all(&local).unwrap();
    let config = store.scratch().join("mbsyncrc");
    fs::write(
        &config,
        format!(
            "IMAPAccount demo\nHost 127.0.0.1\nPort {port}\nUser asterix\nPass potion\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore far\nAccount demo\n\n\
             MaildirStore near\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\nSync All\n",
            port = server.port(),
            local = local.display()
        ),
    )
    .unwrap();
    let mbsync = || {
        let mut command = Command::new("mbsync");
        command.arg("-c").arg(&config).arg("-a");
        command
    };
    run(&mut mbsync());
    let down = maildir_subjects(&local.join("INBOX"));
    let server_view = maildir_subjects(&store.path().join("asterix"));
    assert_eq!(down.len(), 8, "{down:?}");
    assert_eq!(down, server_view, "the same mails with the same flags");

    // Locally: flag one mail, delete another, add a new one; then sync up.
    let inbox = local.join("INBOX");
    let mut files: Vec<_> = fs::read_dir(inbox.join("cur"))
        .unwrap()
        .chain(fs::read_dir(inbox.join("new")).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let unflagged: Vec<_> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            !name.split(":2,").nth(1).unwrap_or("").contains('F')
        })
        .collect();
    add_flag(unflagged[0], 'F');
    fs::remove_file(unflagged[1]).unwrap();
    fs::write(
        inbox.join("new").join("1800000000.M1P1.laptop"),
        "From: asterix@gaul.example\r\nSubject: written offline\r\n\r\nsynced up\r\n",
    )
    .unwrap();
    run(&mut mbsync());

    let mut imap = RawImap::login(server.port(), "asterix", "potion");
    imap.noop();
    assert_eq!(imap.uids("ALL").len(), 8, "one deleted, one added");
    let uploaded = imap.uids("SUBJECT \"written offline\"");
    assert_eq!(uploaded.len(), 1);
    assert_eq!(
        imap.uids("FLAGGED").len(),
        2,
        "the demo's flagged mail and ours"
    );
    // And a second sync changes nothing.
    run(&mut mbsync());
    assert_eq!(
        maildir_subjects(&local.join("INBOX")),
        maildir_subjects(&store.path().join("asterix"))
    );
}

#[test]
fn fetchmail_fetches_every_mail_in_imap_mode() {
    if !support::have("fetchmail") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let rc = store.scratch().join("fetchmailrc");
    let out = store.scratch().join("fetched.mbox");
    fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 protocol IMAP port {} user asterix password potion keep fetchall sslproto '' mda \"cat >> {}\"\n",
            server.port(),
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = Command::new("fetchmail");
    command
        .arg("-f")
        .arg(&rc)
        .arg("--nodetach")
        .arg("--pidfile")
        .arg(store.scratch().join("fetchmail.pid"))
        .env("FETCHMAILHOME", store.scratch());
    run(&mut command);
    let fetched = String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned();
    for (subject, _) in maildir_subjects(&store.path().join("asterix")) {
        assert!(fetched.contains(&subject), "{subject} fetched");
    }
}

#[test]
fn getmail_retrieves_every_mail_into_a_maildir() {
    if !support::have("getmail") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let target = store.scratch().join("got");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(target.join(sub)).unwrap();
    }
    // getmail refuses to deliver as root; then it delivers as nobody, who must be able to
    // reach and write the target.
    let user = if support::is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(store.scratch(), fs::Permissions::from_mode(0o755)).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg("65534:65534")
            .arg(&target));
        "user = nobody\n"
    } else {
        ""
    };
    let rc = store.scratch().join("getmailrc");
    fs::write(
        &rc,
        format!(
            "[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\nport = {}\nusername = asterix\npassword = potion\nmailboxes = (\"INBOX\",)\n\n\
             [destination]\ntype = Maildir\npath = {}/\n{user}\n[options]\nread_all = true\ndelete = false\n",
            server.port(),
            target.display()
        ),
    )
    .unwrap();
    let mut command = Command::new("getmail");
    command
        .arg("--rcfile")
        .arg(&rc)
        .arg("--getmaildir")
        .arg(store.scratch());
    run(&mut command);
    let got: Vec<String> = maildir_subjects(&target)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let served: Vec<String> = maildir_subjects(&store.path().join("asterix"))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(got, served);
}

#[test]
fn neomutt_shows_the_mailbox_on_a_terminal() {
    if !support::have("neomutt") || !support::have("tmux") {
        return;
    }
    let store = TempStore::demo();
    let server = PopServer::start_imap(&store.path(), &[]);
    let session = format!("mailtool-{}", std::process::id());
    let muttrc = store.scratch().join("muttrc");
    fs::write(
        &muttrc,
        format!(
            "set folder={}\nset imap_user=asterix\nset imap_pass=potion\nset ssl_starttls=no\nset ssl_force_tls=no\nset sort=date\n",
            store.scratch().display()
        ),
    )
    .unwrap();
    let neomutt = format!(
        "TERM=xterm neomutt -n -F {} -f imap://127.0.0.1:{}/INBOX",
        muttrc.display(),
        server.port()
    );
    run(Command::new("tmux").args([
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &neomutt,
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let screen = loop {
        let screen = run(Command::new("tmux").args(["capture-pane", "-p", "-t", &session]));
        if screen.contains("Msgs:") || Instant::now() > deadline {
            break screen;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let subjects: Vec<String> = maildir_subjects(&store.path().join("asterix"))
        .into_iter()
        .filter(|(s, _)| !s.starts_with("=?"))
        .map(|(s, _)| s.chars().take(16).collect())
        .chain([
            "Réunion au village".to_owned(),
            "Astérix & Obélix".to_owned(),
        ])
        .collect();
    let shown = subjects
        .iter()
        .filter(|s| screen.contains(s.as_str()))
        .count();
    assert_eq!(
        shown,
        subjects.len(),
        "{shown} of {} subjects on screen:\n{screen}",
        subjects.len()
    );
    // Six unread, one flagged: neomutt read the flags serve-imap sent.
    assert!(screen.contains("Msgs:8 New:6 Flag:1"), "{screen}");
}
