
use builtin;
use str;

set edit:completion:arg-completer[mailtool] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'mailtool'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'mailtool'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve-pop 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)'
            cand serve-imap 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)'
            cand serve-smtp 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store'
            cand serve 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process'
            cand imap-unread 'Print every unread mail of an IMAP mailbox, then delete exactly those mails'
            cand inspect 'Show headers, decoded subjects, MIME structure and attachments of mails'
            cand mbox 'Manage the store: users, passwords, delivery'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mailtool;serve-pop'= {
            cand --port 'The TCP port [default: 110, or 1100 with --demo] (0 picks a free one; the chosen address is printed)'
            cand --tls-port 'Also serve implicit TLS (POP3S, conventionally 995) on this port (0 picks a free one)'
            cand --idle-timeout 'Close a session that sends nothing for this long (RFC 1939 asks for at least 600)'
            cand --bind 'The address to listen on'
            cand --max-connections 'Most sessions served at once; further clients wait to be accepted'
            cand --max-connections-per-ip 'Most sessions at once from one client address'
            cand --log-format 'How to write the session log on stderr'
            cand --tls-cert 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)'
            cand --tls-key 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)'
            cand --trusted-proxy 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --demo 'Serve a fresh temporary copy of the embedded demo store instead of --store'
            cand --trace 'Print the live dialogue of every session on stderr (passwords masked)'
            cand --require-tls 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
            cand --proxy-protocol 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;serve-imap'= {
            cand --port 'The TCP port [default: 143, or 1430 with --demo] (0 picks a free one; the chosen address is printed)'
            cand --tls-port 'Also serve implicit TLS (IMAPS, conventionally 993) on this port (0 picks a free one)'
            cand --idle-timeout 'Close a session that sends nothing for this long (RFC 3501''s autologout: at least 30 minutes)'
            cand --bind 'The address to listen on'
            cand --max-connections 'Most sessions served at once; further clients wait to be accepted'
            cand --max-connections-per-ip 'Most sessions at once from one client address'
            cand --log-format 'How to write the session log on stderr'
            cand --tls-cert 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)'
            cand --tls-key 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)'
            cand --trusted-proxy 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --demo 'Serve a fresh temporary copy of the embedded demo store instead of --store'
            cand --trace 'Print the live dialogue of every session on stderr (passwords masked)'
            cand --require-tls 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
            cand --proxy-protocol 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;serve-smtp'= {
            cand --port 'The TCP port [default: 25, or 24 with --lmtp; 2525 and 2424 with --demo] (0 picks a free one)'
            cand --domain 'A mail domain of the store (repeatable) [default: localhost and the host name]'
            cand --max-message-size 'The largest message accepted, in octets (announced with SIZE)'
            cand --max-recipients 'Most recipients of one message'
            cand --auth 'AUTH PLAIN/LOGIN against the store''s passwd-file: off, optional, or required before MAIL (a submission server)'
            cand --tls-port 'Also serve implicit TLS (SMTPS, conventionally 465) on this port (0 picks a free one)'
            cand --idle-timeout 'Close a session that sends nothing for this long (RFC 5321 asks for at least 300)'
            cand --bind 'The address to listen on'
            cand --max-connections 'Most sessions served at once; further clients wait to be accepted'
            cand --max-connections-per-ip 'Most sessions at once from one client address'
            cand --log-format 'How to write the session log on stderr'
            cand --tls-cert 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)'
            cand --tls-key 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)'
            cand --trusted-proxy 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --lmtp 'Speak LMTP (RFC 2033, for an MTA handing mail over) instead of SMTP'
            cand --demo 'Serve a fresh temporary copy of the embedded demo store instead of --store'
            cand --trace 'Print the live dialogue of every session on stderr (passwords masked)'
            cand --require-tls 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
            cand --proxy-protocol 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;serve'= {
            cand --pop-port 'The POP3 port [default: 110, or 1100 with --demo] (0 picks a free one)'
            cand --imap-port 'The IMAP port [default: 143, or 1430 with --demo] (0 picks a free one)'
            cand --smtp-port 'The SMTP port [default: 25, or 2525 with --demo] (0 picks a free one)'
            cand --lmtp-port 'Also receive mail over LMTP on this port (0 picks a free one)'
            cand --pop-tls-port 'Also serve POP3S (implicit TLS) on this port'
            cand --imap-tls-port 'Also serve IMAPS (implicit TLS) on this port'
            cand --bind 'The address to listen on'
            cand --max-connections 'Most sessions served at once; further clients wait to be accepted'
            cand --max-connections-per-ip 'Most sessions at once from one client address'
            cand --log-format 'How to write the session log on stderr'
            cand --tls-cert 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)'
            cand --tls-key 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)'
            cand --trusted-proxy 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --demo 'Serve a fresh temporary copy of the embedded demo store instead of --store'
            cand --trace 'Print the live dialogue of every session on stderr (passwords masked)'
            cand --require-tls 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
            cand --proxy-protocol 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;imap-unread'= {
            cand --host 'The IMAP server''s host name or address'
            cand --port 'The port [default: 143, or 993 with --tls]'
            cand --user 'The IMAP user name'
            cand --password-file 'Read the password from the first line of this file'
            cand --ca-file 'Trust the certificates in this PEM file (in addition to the system roots)'
            cand --mailbox 'The mailbox to sweep'
            cand --timeout 'Connect and read timeout'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --tls 'Implicit TLS (IMAPS)'
            cand --starttls 'Upgrade a plain connection with STARTTLS; fail if the server does not offer it'
            cand --insecure 'Do not verify the server''s certificate (says so on stderr)'
            cand --keep 'Print the unread mails but change nothing on the server'
            cand --raw 'Print each mail''s exact source in mboxrd framing (re-import with `mbox deliver --mbox`)'
            cand --trace 'Print the IMAP dialogue on stderr (password masked)'
            cand --allow-expunge-all 'On servers without UIDPLUS, delete with plain EXPUNGE, which also removes mails other clients marked \Deleted'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;inspect'= {
            cand --user 'Inspect this user''s mailbox in the store (when no PATH is given)'
            cand --extract 'Write the attachments into this directory under safe file names'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --body 'Also show the decoded text body'
            cand --headers 'Also show every header, decoded'
            cand --force 'With --extract, overwrite files that already exist'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add-user 'Create a user: a passwd line and an empty Maildir'
            cand del-user 'Remove a user and, unless --keep-mail, their mailbox'
            cand passwd 'Change a user''s password'
            cand list 'List users with their message count, unread count and total size'
            cand deliver 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)'
            cand wait 'Block until a matching mail is in a user''s mailbox, then print its summary'
            cand purge 'Remove every mail of a user''s mailbox (the user stays)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mailtool;mbox;add-user'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --password-stdin 'Read the password from the first line of stdin instead of prompting'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;del-user'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --keep-mail 'Leave the user''s Maildir on disk'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;passwd'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --password-stdin 'Read the password from the first line of stdin instead of prompting'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;list'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;deliver'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --mbox 'The inputs are mbox files (mboxrd): split them and deliver every message'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;wait'= {
            cand --from 'Only a mail whose From (name or address) contains this, any case'
            cand --subject 'Only a mail whose decoded Subject contains this, any case'
            cand --timeout 'Give up after this long, with exit status 6'
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;purge'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;mbox;help'= {
            cand add-user 'Create a user: a passwd line and an empty Maildir'
            cand del-user 'Remove a user and, unless --keep-mail, their mailbox'
            cand passwd 'Change a user''s password'
            cand list 'List users with their message count, unread count and total size'
            cand deliver 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)'
            cand wait 'Block until a matching mail is in a user''s mailbox, then print its summary'
            cand purge 'Remove every mail of a user''s mailbox (the user stays)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mailtool;mbox;help;add-user'= {
        }
        &'mailtool;mbox;help;del-user'= {
        }
        &'mailtool;mbox;help;passwd'= {
        }
        &'mailtool;mbox;help;list'= {
        }
        &'mailtool;mbox;help;deliver'= {
        }
        &'mailtool;mbox;help;wait'= {
        }
        &'mailtool;mbox;help;purge'= {
        }
        &'mailtool;mbox;help;help'= {
        }
        &'mailtool;completions'= {
            cand --store 'The mail store: a directory holding `passwd` and one Maildir per user'
            cand --json 'Print results as JSON, one object per line, on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'mailtool;help'= {
            cand serve-pop 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)'
            cand serve-imap 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)'
            cand serve-smtp 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store'
            cand serve 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process'
            cand imap-unread 'Print every unread mail of an IMAP mailbox, then delete exactly those mails'
            cand inspect 'Show headers, decoded subjects, MIME structure and attachments of mails'
            cand mbox 'Manage the store: users, passwords, delivery'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mailtool;help;serve-pop'= {
        }
        &'mailtool;help;serve-imap'= {
        }
        &'mailtool;help;serve-smtp'= {
        }
        &'mailtool;help;serve'= {
        }
        &'mailtool;help;imap-unread'= {
        }
        &'mailtool;help;inspect'= {
        }
        &'mailtool;help;mbox'= {
            cand add-user 'Create a user: a passwd line and an empty Maildir'
            cand del-user 'Remove a user and, unless --keep-mail, their mailbox'
            cand passwd 'Change a user''s password'
            cand list 'List users with their message count, unread count and total size'
            cand deliver 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)'
            cand wait 'Block until a matching mail is in a user''s mailbox, then print its summary'
            cand purge 'Remove every mail of a user''s mailbox (the user stays)'
        }
        &'mailtool;help;mbox;add-user'= {
        }
        &'mailtool;help;mbox;del-user'= {
        }
        &'mailtool;help;mbox;passwd'= {
        }
        &'mailtool;help;mbox;list'= {
        }
        &'mailtool;help;mbox;deliver'= {
        }
        &'mailtool;help;mbox;wait'= {
        }
        &'mailtool;help;mbox;purge'= {
        }
        &'mailtool;help;completions'= {
        }
        &'mailtool;help;help'= {
        }
    ]
    $completions[$command]
}
