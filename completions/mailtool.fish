# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mailtool_global_optspecs
    string join \n store= json h/help V/version
end

function __fish_mailtool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mailtool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mailtool_using_subcommand
    set -l cmd (__fish_mailtool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mailtool -n "__fish_mailtool_needs_command" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_needs_command" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_needs_command" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_needs_command" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "serve-pop" -d 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "serve-imap" -d 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "serve-smtp" -d 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "serve" -d 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "imap-unread" -d 'Print every unread mail of an IMAP mailbox, then delete exactly those mails'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "inspect" -d 'Show headers, decoded subjects, MIME structure and attachments of mails'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "mbox" -d 'Manage the store: users, passwords, delivery'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c mailtool -n "__fish_mailtool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l port -d 'The TCP port [default: 110, or 1100 with --demo] (0 picks a free one; the chosen address is printed)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l tls-port -d 'Also serve implicit TLS (POP3S, conventionally 995) on this port (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l idle-timeout -d 'Close a session that sends nothing for this long (RFC 1939 asks for at least 600)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l bind -d 'The address to listen on' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l max-connections -d 'Most sessions served at once; further clients wait to be accepted' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l max-connections-per-ip -d 'Most sessions at once from one client address' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l log-format -d 'How to write the session log on stderr' -r -f -a "text\t''
json\t''"
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l tls-cert -d 'PEM certificate chain, server certificate first: enables STARTTLS (POP3\'s STLS) on the plain port (and allows the TLS ports)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l tls-key -d 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l trusted-proxy -d 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l demo -d 'Serve a fresh temporary copy of the embedded demo store instead of --store'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l trace -d 'Print the live dialogue of every session on stderr (passwords masked)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l require-tls -d 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l proxy-protocol -d 'Take the client\'s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-pop" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l port -d 'The TCP port [default: 143, or 1430 with --demo] (0 picks a free one; the chosen address is printed)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l tls-port -d 'Also serve implicit TLS (IMAPS, conventionally 993) on this port (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l idle-timeout -d 'Close a session that sends nothing for this long (RFC 3501\'s autologout: at least 30 minutes)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l bind -d 'The address to listen on' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l max-connections -d 'Most sessions served at once; further clients wait to be accepted' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l max-connections-per-ip -d 'Most sessions at once from one client address' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l log-format -d 'How to write the session log on stderr' -r -f -a "text\t''
json\t''"
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l tls-cert -d 'PEM certificate chain, server certificate first: enables STARTTLS (POP3\'s STLS) on the plain port (and allows the TLS ports)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l tls-key -d 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l trusted-proxy -d 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l demo -d 'Serve a fresh temporary copy of the embedded demo store instead of --store'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l trace -d 'Print the live dialogue of every session on stderr (passwords masked)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l require-tls -d 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l proxy-protocol -d 'Take the client\'s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-imap" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l port -d 'The TCP port [default: 25, or 24 with --lmtp; 2525 and 2424 with --demo] (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l domain -d 'A mail domain of the store (repeatable) [default: localhost and the host name]' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l max-message-size -d 'The largest message accepted, in octets (announced with SIZE)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l max-recipients -d 'Most recipients of one message' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l auth -d 'AUTH PLAIN/LOGIN against the store\'s passwd-file: off, optional, or required before MAIL (a submission server)' -r -f -a "off\t''
optional\t''
required\t''"
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l tls-port -d 'Also serve implicit TLS (SMTPS, conventionally 465) on this port (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l idle-timeout -d 'Close a session that sends nothing for this long (RFC 5321 asks for at least 300)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l bind -d 'The address to listen on' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l max-connections -d 'Most sessions served at once; further clients wait to be accepted' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l max-connections-per-ip -d 'Most sessions at once from one client address' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l log-format -d 'How to write the session log on stderr' -r -f -a "text\t''
json\t''"
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l tls-cert -d 'PEM certificate chain, server certificate first: enables STARTTLS (POP3\'s STLS) on the plain port (and allows the TLS ports)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l tls-key -d 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l trusted-proxy -d 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l lmtp -d 'Speak LMTP (RFC 2033, for an MTA handing mail over) instead of SMTP'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l demo -d 'Serve a fresh temporary copy of the embedded demo store instead of --store'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l trace -d 'Print the live dialogue of every session on stderr (passwords masked)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l require-tls -d 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l proxy-protocol -d 'Take the client\'s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve-smtp" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l pop-port -d 'The POP3 port [default: 110, or 1100 with --demo] (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l imap-port -d 'The IMAP port [default: 143, or 1430 with --demo] (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l smtp-port -d 'The SMTP port [default: 25, or 2525 with --demo] (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l lmtp-port -d 'Also receive mail over LMTP on this port (0 picks a free one)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l pop-tls-port -d 'Also serve POP3S (implicit TLS) on this port' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l imap-tls-port -d 'Also serve IMAPS (implicit TLS) on this port' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l bind -d 'The address to listen on' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l max-connections -d 'Most sessions served at once; further clients wait to be accepted' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l max-connections-per-ip -d 'Most sessions at once from one client address' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l log-format -d 'How to write the session log on stderr' -r -f -a "text\t''
json\t''"
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l tls-cert -d 'PEM certificate chain, server certificate first: enables STARTTLS (POP3\'s STLS) on the plain port (and allows the TLS ports)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l tls-key -d 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l trusted-proxy -d 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l demo -d 'Serve a fresh temporary copy of the embedded demo store instead of --store'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l trace -d 'Print the live dialogue of every session on stderr (passwords masked)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l require-tls -d 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l proxy-protocol -d 'Take the client\'s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand serve" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l host -d 'The IMAP server\'s host name or address' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l port -d 'The port [default: 143, or 993 with --tls]' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l user -d 'The IMAP user name' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l password-file -d 'Read the password from the first line of this file' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l ca-file -d 'Trust the certificates in this PEM file (in addition to the system roots)' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l mailbox -d 'The mailbox to sweep' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l timeout -d 'Connect and read timeout' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l tls -d 'Implicit TLS (IMAPS)'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l starttls -d 'Upgrade a plain connection with STARTTLS; fail if the server does not offer it'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l insecure -d 'Do not verify the server\'s certificate (says so on stderr)'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l keep -d 'Print the unread mails but change nothing on the server'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l raw -d 'Print each mail\'s exact source in mboxrd framing (re-import with `mbox deliver --mbox`)'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l trace -d 'Print the IMAP dialogue on stderr (password masked)'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l allow-expunge-all -d 'On servers without UIDPLUS, delete with plain EXPUNGE, which also removes mails other clients marked \\Deleted'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand imap-unread" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l user -d 'Inspect this user\'s mailbox in the store (when no PATH is given)' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l extract -d 'Write the attachments into this directory under safe file names' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l body -d 'Also show the decoded text body'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l headers -d 'Also show every header, decoded'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l force -d 'With --extract, overwrite files that already exist'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "add-user" -d 'Create a user: a passwd line and an empty Maildir'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "del-user" -d 'Remove a user and, unless --keep-mail, their mailbox'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "passwd" -d 'Change a user\'s password'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "list" -d 'List users with their message count, unread count and total size'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "deliver" -d 'Deliver mail into a user\'s Maildir (from files, or stdin when none is given)'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "wait" -d 'Block until a matching mail is in a user\'s mailbox, then print its summary'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "purge" -d 'Remove every mail of a user\'s mailbox (the user stays)'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and not __fish_seen_subcommand_from add-user del-user passwd list deliver wait purge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from add-user" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from add-user" -l password-stdin -d 'Read the password from the first line of stdin instead of prompting'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from add-user" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from add-user" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from add-user" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from del-user" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from del-user" -l keep-mail -d 'Leave the user\'s Maildir on disk'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from del-user" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from del-user" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from del-user" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from passwd" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from passwd" -l password-stdin -d 'Read the password from the first line of stdin instead of prompting'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from passwd" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from passwd" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from list" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from list" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from deliver" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from deliver" -l mbox -d 'The inputs are mbox files (mboxrd): split them and deliver every message'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from deliver" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from deliver" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from deliver" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -l from -d 'Only a mail whose From (name or address) contains this, any case' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -l subject -d 'Only a mail whose decoded Subject contains this, any case' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -l timeout -d 'Give up after this long, with exit status 6' -r
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from wait" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from purge" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from purge" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "add-user" -d 'Create a user: a passwd line and an empty Maildir'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "del-user" -d 'Remove a user and, unless --keep-mail, their mailbox'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Change a user\'s password'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users with their message count, unread count and total size'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "deliver" -d 'Deliver mail into a user\'s Maildir (from files, or stdin when none is given)'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Block until a matching mail is in a user\'s mailbox, then print its summary'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove every mail of a user\'s mailbox (the user stays)'
complete -c mailtool -n "__fish_mailtool_using_subcommand mbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailtool -n "__fish_mailtool_using_subcommand completions" -l store -d 'The mail store: a directory holding `passwd` and one Maildir per user' -r -F
complete -c mailtool -n "__fish_mailtool_using_subcommand completions" -l json -d 'Print results as JSON, one object per line, on stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand completions" -s h -l help -d 'Print help'
complete -c mailtool -n "__fish_mailtool_using_subcommand completions" -s V -l version -d 'Print version'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "serve-pop" -d 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "serve-imap" -d 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "serve-smtp" -d 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "serve" -d 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "imap-unread" -d 'Print every unread mail of an IMAP mailbox, then delete exactly those mails'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "inspect" -d 'Show headers, decoded subjects, MIME structure and attachments of mails'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "mbox" -d 'Manage the store: users, passwords, delivery'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and not __fish_seen_subcommand_from serve-pop serve-imap serve-smtp serve imap-unread inspect mbox completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "add-user" -d 'Create a user: a passwd line and an empty Maildir'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "del-user" -d 'Remove a user and, unless --keep-mail, their mailbox'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "passwd" -d 'Change a user\'s password'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "list" -d 'List users with their message count, unread count and total size'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "deliver" -d 'Deliver mail into a user\'s Maildir (from files, or stdin when none is given)'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "wait" -d 'Block until a matching mail is in a user\'s mailbox, then print its summary'
complete -c mailtool -n "__fish_mailtool_using_subcommand help; and __fish_seen_subcommand_from mbox" -f -a "purge" -d 'Remove every mail of a user\'s mailbox (the user stays)'
