//! The command line: clap definitions for every subcommand, and shell completions.
//!
//! Only declarations live here; [`crate::app`] runs them. Help texts carry examples because
//! `--help` is the first manual people read.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::server::proxy::TrustedNet;

/// A small mail toolkit: a POP3 server over a Dovecot-compatible Maildir store, an IMAP unread
/// sweeper, a mail inspector, and store management.
#[derive(Debug, Parser)]
#[command(
    name = "mailtool",
    version,
    propagate_version = true,
    after_help = "\
Examples:
  mailtool serve-pop --demo --port 1100      serve the embedded demo store over POP3
  mailtool mbox add-user asterix             create a user (asks for the password twice)
  mailtool mbox deliver asterix note.eml     deliver a mail into asterix's Maildir
  mailtool mbox list --json | jq .           users with message counts, as JSON lines
  mailtool mbox wait asterix --subject Welcome --timeout 30
                                             block until such a mail arrives (tests of apps)
  mailtool inspect --user asterix            one line per message of asterix's mailbox
  mailtool imap-unread --host imap.example.org --tls --user me

The store (--store, $MAILTOOL_STORE, else ./mailstore) is STORE/passwd, a Dovecot passwd-file,
plus one Maildir per user at STORE/<name>/{tmp,new,cur}; Dovecot can serve it unchanged.
Exit status: 0 ok, 1 failure, 2 usage, 3 authentication refused, 4 connection or TLS failure,
5 server error, 6 timeout (mbox wait)."
)]
pub struct Cli {
    /// The mail store: a directory holding `passwd` and one Maildir per user.
    #[arg(
        long,
        global = true,
        env = "MAILTOOL_STORE",
        default_value = "./mailstore",
        value_name = "DIR"
    )]
    pub store: PathBuf,

    /// Print results as JSON, one object per line, on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS).
    #[command(after_help = "\
Examples:
  mailtool serve-pop --demo --port 1100        a throwaway copy of the demo store
  mailtool --store ./mailstore serve-pop --port 1100 --trace
  curl pop3://asterix:potion@127.0.0.1:1100/1  then fetch message 1 with curl
  mailtool serve-pop --demo --port 1100 --tls-port 9950 --tls-cert cert.pem --tls-key key.pem
                                               STLS on 1100, implicit TLS (POP3S) on 9950
  curl --ssl-reqd --cacert cert.pem pop3://asterix:potion@127.0.0.1:1100/1
  mailtool serve-pop --port 1100 --proxy-protocol --trusted-proxy 10.0.0.5
                                               behind HAProxy (send-proxy or send-proxy-v2)

The server prints the addresses it listens on to stdout (the --tls-port one marked (tls)),
logs one line per session event to stderr, and stops cleanly on Ctrl-C or SIGTERM without
deleting anything not yet committed. With --require-tls, logins on --port wait for STLS. TLS
is 1.2 or 1.3; the key may be PKCS#8, PKCS#1 RSA or SEC1 EC PEM, but not encrypted (decrypt
a copy with openssl pkey -in key.pem -out key.plain.pem)")]
    ServePop(ServePopArgs),

    /// Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE,
    /// LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS).
    #[command(after_help = "\
Examples:
  mailtool serve-imap --demo --port 1430       a throwaway copy of the demo store
  mailtool --store ./mailstore serve-imap --port 1430 --trace
  curl imap://asterix:potion@127.0.0.1:1430/INBOX -X 'FETCH 1:* (FLAGS)'
  nc -C 127.0.0.1 1430                         then type: a1 LOGIN asterix potion
  mailtool serve-imap --demo --port 1430 --tls-port 9930 --tls-cert cert.pem --tls-key key.pem
                                               STARTTLS on 1430, implicit TLS (IMAPS) on 9930
  mailtool serve-imap --port 1430 --proxy-protocol --trusted-proxy 10.0.0.0/24
                                               behind load balancers that send the PROXY
                                               protocol (docs/scaling.md)

The store is shared with serve-pop and Dovecot: mailboxes are Maildir++ folders, UIDs live in
dovecot-uidlist and keywords in dovecot-keywords, exactly as Dovecot keeps them. The server
prints the addresses it listens on to stdout, logs one line per session event to stderr, and
stops cleanly on Ctrl-C or SIGTERM.")]
    ServeImap(ServeImapArgs),

    /// Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store.
    #[command(after_help = "\
Examples:
  mailtool serve-smtp --demo --port 2525        a throwaway copy of the demo store
  swaks --server 127.0.0.1:2525 --to asterix@localhost
                                               send a test mail, then: mailtool mbox wait asterix
  nc -C 127.0.0.1 2525                         then type: EHLO me, MAIL FROM:<you@example.org>,
                                               RCPT TO:<asterix@localhost>, DATA, text, '.', QUIT
  mailtool serve-smtp --lmtp --port 2424       LMTP for an MTA such as Postfix (lmtp:inet:...)
  mailtool serve-smtp --port 2525 --auth required --tls-cert cert.pem --tls-key key.pem \\
      --require-tls --tls-port 4465            submission: STARTTLS and AUTH before MAIL
  mailtool serve-smtp --port 2525 --proxy-protocol --trusted-proxy 10.0.0.5
                                               behind HAProxy: the real client in the log

Recipients are user@DOMAIN for a user of the store and a --domain (default: localhost and the
host name); mailtool never relays. Each message is written to tmp/, synced and linked into
new/ of every recipient before the 250 (LMTP: one reply per recipient). The log says who sent
what to whom and the file it went to; --trace shows the dialogue with AUTH masked.")]
    ServeSmtp(ServeSmtpArgs),

    /// Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process.
    #[command(after_help = "\
Examples:
  mailtool serve --demo                        the whole lab on the demo store, no root needed:
                                               POP3 on 1100, IMAP on 1430, SMTP on 2525
  curl smtp://127.0.0.1:2525 --mail-from a@example.org --mail-rcpt asterix@localhost -T mail.eml
  curl imap://asterix:potion@127.0.0.1:1430/INBOX -X 'FETCH 1:* (FLAGS)'
  mailtool --store ./mailstore serve --pop-port 0 --imap-port 0 --smtp-port 0 --json
  mailtool serve --pop-port 1100 --imap-port 1430 --smtp-port 2525 --proxy-protocol \\
      --trusted-proxy 127.0.0.1                one of several processes behind HAProxy on one
                                               store (docs/scaling.md)

Every protocol listens on its own port and prints its address to stdout, marked with the
protocol: mail sent over SMTP is read over POP3 or IMAP, and a mail read over POP3 shows as
read over IMAP. Without --demo the ports are the registered ones (110, 143, 25), which need
root or CAP_NET_BIND_SERVICE.")]
    Serve(ServeArgs),

    /// Print every unread mail of an IMAP mailbox, then delete exactly those mails.
    #[command(after_help = "\
Examples:
  mailtool imap-unread --host imap.example.org --tls --user me --password-file ~/.imap-pass
  MAILTOOL_PASSWORD=potion mailtool imap-unread --host 127.0.0.1 --user asterix --keep
  mailtool imap-unread --host 127.0.0.1 --user asterix --raw > saved.mbox

The password comes from --password-file, else $MAILTOOL_PASSWORD, else a prompt on a terminal.
Only mails that were completely printed are deleted, by UID, and nothing else; if stdout fails
(or its reader quits early), nothing is deleted. A file on stdout is synced to disk before the
first deletion.")]
    ImapUnread(ImapUnreadArgs),

    /// Show headers, decoded subjects, MIME structure and attachments of mails.
    #[command(after_help = "\
Examples:
  mailtool inspect message.eml              header block and MIME tree (IMAP part numbers)
  mailtool inspect ./mailstore/asterix      one line per message of a Maildir
  mailtool inspect ./mailstore              one line per message of every user
  mailtool inspect --user asterix --json    every message of asterix's mailbox as JSON lines
  mailtool inspect - < message.eml          read a mail from stdin
  mailtool inspect message.eml --body --headers
  mailtool inspect message.eml --extract ./attachments

Malformed mail is shown as far as it can be, with warnings. A file that cannot be read is
reported on stderr, the others carry on, and the exit status is 1.")]
    Inspect(InspectArgs),

    /// Manage the store: users, passwords, delivery.
    #[command(subcommand)]
    Mbox(MboxCommand),

    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  mailtool completions bash > ~/.local/share/bash-completion/completions/mailtool
  mailtool completions zsh > ~/.zfunc/_mailtool
  mailtool completions fish > ~/.config/fish/completions/mailtool.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServePopArgs {
    /// The TCP port [default: 110, or 1100 with --demo] (0 picks a free one; the chosen
    /// address is printed).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Also serve implicit TLS (POP3S, conventionally 995) on this port (0 picks a free one).
    #[arg(long, value_name = "N", requires = "tls_cert")]
    pub tls_port: Option<u16>,

    /// Close a session that sends nothing for this long (RFC 1939 asks for at least 600).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub idle_timeout: u64,

    #[command(flatten)]
    pub server: ServerOptions,
}

#[derive(Debug, Args)]
pub struct ServeImapArgs {
    /// The TCP port [default: 143, or 1430 with --demo] (0 picks a free one; the chosen
    /// address is printed).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Also serve implicit TLS (IMAPS, conventionally 993) on this port (0 picks a free one).
    #[arg(long, value_name = "N", requires = "tls_cert")]
    pub tls_port: Option<u16>,

    /// Close a session that sends nothing for this long (RFC 3501's autologout: at least 30
    /// minutes).
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub idle_timeout: u64,

    #[command(flatten)]
    pub server: ServerOptions,
}

#[derive(Debug, Args)]
pub struct ServeSmtpArgs {
    /// The TCP port [default: 25, or 24 with --lmtp; 2525 and 2424 with --demo] (0 picks a
    /// free one).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Speak LMTP (RFC 2033, for an MTA handing mail over) instead of SMTP.
    #[arg(long)]
    pub lmtp: bool,

    /// A mail domain of the store (repeatable) [default: localhost and the host name].
    #[arg(long, value_name = "NAME")]
    pub domain: Vec<String>,

    /// The largest message accepted, in octets (announced with SIZE).
    #[arg(long, default_value_t = 50 * 1024 * 1024, value_name = "BYTES")]
    pub max_message_size: u64,

    /// Most recipients of one message.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_recipients: usize,

    /// AUTH PLAIN/LOGIN against the store's passwd-file: off, optional, or required before
    /// MAIL (a submission server).
    #[arg(long, value_enum, default_value_t = AuthMode::Off)]
    pub auth: AuthMode,

    /// Also serve implicit TLS (SMTPS, conventionally 465) on this port (0 picks a free one).
    #[arg(long, value_name = "N", requires = "tls_cert")]
    pub tls_port: Option<u16>,

    /// Close a session that sends nothing for this long (RFC 5321 asks for at least 300).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub idle_timeout: u64,

    #[command(flatten)]
    pub server: ServerOptions,
}

/// `serve-smtp --auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Off,
    Optional,
    Required,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The POP3 port [default: 110, or 1100 with --demo] (0 picks a free one).
    #[arg(long, value_name = "N")]
    pub pop_port: Option<u16>,

    /// The IMAP port [default: 143, or 1430 with --demo] (0 picks a free one).
    #[arg(long, value_name = "N")]
    pub imap_port: Option<u16>,

    /// The SMTP port [default: 25, or 2525 with --demo] (0 picks a free one).
    #[arg(long, value_name = "N")]
    pub smtp_port: Option<u16>,

    /// Also receive mail over LMTP on this port (0 picks a free one).
    #[arg(long, value_name = "N")]
    pub lmtp_port: Option<u16>,

    /// Also serve POP3S (implicit TLS) on this port.
    #[arg(long, value_name = "N", requires = "tls_cert")]
    pub pop_tls_port: Option<u16>,

    /// Also serve IMAPS (implicit TLS) on this port.
    #[arg(long, value_name = "N", requires = "tls_cert")]
    pub imap_tls_port: Option<u16>,

    #[command(flatten)]
    pub server: ServerOptions,
}

/// What every server command takes.
#[derive(Debug, Args)]
pub struct ServerOptions {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,

    /// Serve a fresh temporary copy of the embedded demo store instead of --store.
    #[arg(long)]
    pub demo: bool,

    /// Most sessions served at once; further clients wait to be accepted.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// Most sessions at once from one client address.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_connections_per_ip: usize,

    /// Print the live dialogue of every session on stderr (passwords masked).
    #[arg(long)]
    pub trace: bool,

    /// How to write the session log on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// PEM certificate chain, server certificate first: enables STARTTLS (POP3's STLS) on the
    /// plain port (and allows the TLS ports).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port).
    #[arg(long, requires = "tls_cert")]
    pub require_tls: bool,

    /// Take the client's address from the PROXY protocol header (v1 or v2) that a load
    /// balancer such as HAProxy sends first, on connections from a --trusted-proxy.
    #[arg(long, requires = "trusted_proxy")]
    pub proxy_protocol: bool,

    /// An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start
    /// with a PROXY header (repeatable); a header from anyone else is refused.
    #[arg(long, value_name = "ADDR[/PREFIX]", requires = "proxy_protocol")]
    pub trusted_proxy: Vec<TrustedNet>,
}

/// How the servers write their session log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ImapUnreadArgs {
    /// The IMAP server's host name or address.
    #[arg(long)]
    pub host: String,

    /// The port [default: 143, or 993 with --tls].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// The IMAP user name.
    #[arg(long)]
    pub user: String,

    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Implicit TLS (IMAPS).
    #[arg(long, conflicts_with = "starttls")]
    pub tls: bool,

    /// Upgrade a plain connection with STARTTLS; fail if the server does not offer it.
    #[arg(long)]
    pub starttls: bool,

    /// Trust the certificates in this PEM file (in addition to the system roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the server's certificate (says so on stderr).
    #[arg(long)]
    pub insecure: bool,

    /// The mailbox to sweep.
    #[arg(long, default_value = "INBOX", value_name = "NAME")]
    pub mailbox: String,

    /// Print the unread mails but change nothing on the server.
    #[arg(long)]
    pub keep: bool,

    /// Print each mail's exact source in mboxrd framing (re-import with `mbox deliver --mbox`).
    #[arg(long)]
    pub raw: bool,

    /// Print the IMAP dialogue on stderr (password masked).
    #[arg(long)]
    pub trace: bool,

    /// On servers without UIDPLUS, delete with plain EXPUNGE, which also removes mails other
    /// clients marked \Deleted.
    #[arg(long)]
    pub allow_expunge_all: bool,

    /// Connect and read timeout.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Mail files, Maildirs, the store itself, or `-` for stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Inspect this user's mailbox in the store (when no PATH is given).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Also show the decoded text body.
    #[arg(long)]
    pub body: bool,

    /// Also show every header, decoded.
    #[arg(long)]
    pub headers: bool,

    /// Write the attachments into this directory under safe file names.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,

    /// With --extract, overwrite files that already exist.
    #[arg(long, requires = "extract")]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum MboxCommand {
    /// Create a user: a passwd line and an empty Maildir.
    #[command(after_help = "\
Examples:
  mailtool mbox add-user asterix                     asks for the password twice
  echo potion | mailtool mbox add-user asterix --password-stdin

User names are 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.")]
    AddUser {
        /// The new user's name.
        name: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },

    /// Remove a user and, unless --keep-mail, their mailbox.
    #[command(after_help = "\
Examples:
  mailtool mbox del-user obelix
  mailtool mbox del-user obelix --keep-mail    keep STORE/obelix on disk")]
    DelUser {
        /// The user to remove.
        name: String,
        /// Leave the user's Maildir on disk.
        #[arg(long)]
        keep_mail: bool,
    },

    /// Change a user's password.
    #[command(after_help = "\
Examples:
  mailtool mbox passwd asterix
  echo magic-potion | mailtool mbox passwd asterix --password-stdin")]
    Passwd {
        /// The user whose password changes.
        name: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },

    /// List users with their message count, unread count and total size.
    #[command(after_help = "\
Examples:
  mailtool mbox list
  mailtool mbox list --json | jq -r 'select(.unread > 0) | .user'")]
    List,

    /// Deliver mail into a user's Maildir (from files, or stdin when none is given).
    #[command(after_help = "\
Examples:
  mailtool mbox deliver asterix note.eml other.eml
  cat note.eml | mailtool mbox deliver asterix
  mailtool mbox deliver asterix --mbox saved.mbox    split an mbox (mboxrd) into messages

Each mail is written to tmp/, synced, then moved into new/ under a unique name carrying
Dovecot's ,S= and ,W= size fields.")]
    Deliver {
        /// The recipient.
        name: String,
        /// Mail files; stdin when none is given.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The inputs are mbox files (mboxrd): split them and deliver every message.
        #[arg(long)]
        mbox: bool,
    },

    /// Block until a matching mail is in a user's mailbox, then print its summary.
    #[command(after_help = "\
Examples:
  mailtool mbox wait asterix                          the first mail there or arriving
  mailtool mbox wait asterix --from shop@example.org --subject 'your order' --timeout 10
  mailtool mbox wait asterix --json | jq -r .subject

A mail already in the mailbox counts. The mailbox is watched with inotify (no polling). The
summary has the fields of 'mailtool inspect'. Exit status 6 when nothing matched in time.")]
    Wait(WaitArgs),

    /// Remove every mail of a user's mailbox (the user stays).
    #[command(after_help = "\
Examples:
  mailtool mbox purge asterix          empty the mailbox between two test runs

Dovecot's dovecot-uidlist stays consistent: the UIDs of removed files are dropped when the
mailbox is next read.")]
    Purge {
        /// The user whose mail is removed.
        name: String,
    },
}

/// Wait for mail: what `mbox wait` takes.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The user whose mailbox is watched.
    pub name: String,
    /// Only a mail whose From (name or address) contains this, any case.
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// Only a mail whose decoded Subject contains this, any case.
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Give up after this long, with exit status 6.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

/// Write the completion script for `shell` to `out`.
///
/// # Errors
/// Fails when `out` does.
pub fn write_completions(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mailtool", &mut buffer);
    out.write_all(&buffer)?;
    out.flush()
}

/// The file name completions for `shell` are committed under in `completions/`.
pub fn completion_file_name(shell: Shell) -> String {
    match shell {
        Shell::Bash => "mailtool.bash".into(),
        Shell::Zsh => "_mailtool".into(),
        Shell::Fish => "mailtool.fish".into(),
        Shell::Elvish => "mailtool.elv".into(),
        Shell::PowerShell => "_mailtool.ps1".into(),
        other => format!("mailtool.{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
