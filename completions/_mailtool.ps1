
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'mailtool' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'mailtool'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'mailtool' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve-pop', 'serve-pop', [CompletionResultType]::ParameterValue, 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)')
            [CompletionResult]::new('serve-imap', 'serve-imap', [CompletionResultType]::ParameterValue, 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)')
            [CompletionResult]::new('serve-smtp', 'serve-smtp', [CompletionResultType]::ParameterValue, 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process')
            [CompletionResult]::new('imap-unread', 'imap-unread', [CompletionResultType]::ParameterValue, 'Print every unread mail of an IMAP mailbox, then delete exactly those mails')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show headers, decoded subjects, MIME structure and attachments of mails')
            [CompletionResult]::new('mbox', 'mbox', [CompletionResultType]::ParameterValue, 'Manage the store: users, passwords, delivery')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mailtool;serve-pop' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The TCP port [default: 110, or 1100 with --demo] (0 picks a free one; the chosen address is printed)')
            [CompletionResult]::new('--tls-port', '--tls-port', [CompletionResultType]::ParameterName, 'Also serve implicit TLS (POP3S, conventionally 995) on this port (0 picks a free one)')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a session that sends nothing for this long (RFC 1939 asks for at least 600)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'The address to listen on')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most sessions served at once; further clients wait to be accepted')
            [CompletionResult]::new('--max-connections-per-ip', '--max-connections-per-ip', [CompletionResultType]::ParameterName, 'Most sessions at once from one client address')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How to write the session log on stderr')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--demo', '--demo', [CompletionResultType]::ParameterName, 'Serve a fresh temporary copy of the embedded demo store instead of --store')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Print the live dialogue of every session on stderr (passwords masked)')
            [CompletionResult]::new('--require-tls', '--require-tls', [CompletionResultType]::ParameterName, 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)')
            [CompletionResult]::new('--proxy-protocol', '--proxy-protocol', [CompletionResultType]::ParameterName, 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;serve-imap' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The TCP port [default: 143, or 1430 with --demo] (0 picks a free one; the chosen address is printed)')
            [CompletionResult]::new('--tls-port', '--tls-port', [CompletionResultType]::ParameterName, 'Also serve implicit TLS (IMAPS, conventionally 993) on this port (0 picks a free one)')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a session that sends nothing for this long (RFC 3501''s autologout: at least 30 minutes)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'The address to listen on')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most sessions served at once; further clients wait to be accepted')
            [CompletionResult]::new('--max-connections-per-ip', '--max-connections-per-ip', [CompletionResultType]::ParameterName, 'Most sessions at once from one client address')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How to write the session log on stderr')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--demo', '--demo', [CompletionResultType]::ParameterName, 'Serve a fresh temporary copy of the embedded demo store instead of --store')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Print the live dialogue of every session on stderr (passwords masked)')
            [CompletionResult]::new('--require-tls', '--require-tls', [CompletionResultType]::ParameterName, 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)')
            [CompletionResult]::new('--proxy-protocol', '--proxy-protocol', [CompletionResultType]::ParameterName, 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;serve-smtp' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The TCP port [default: 25, or 24 with --lmtp; 2525 and 2424 with --demo] (0 picks a free one)')
            [CompletionResult]::new('--domain', '--domain', [CompletionResultType]::ParameterName, 'A mail domain of the store (repeatable) [default: localhost and the host name]')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'The largest message accepted, in octets (announced with SIZE)')
            [CompletionResult]::new('--max-recipients', '--max-recipients', [CompletionResultType]::ParameterName, 'Most recipients of one message')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'AUTH PLAIN/LOGIN against the store''s passwd-file: off, optional, or required before MAIL (a submission server)')
            [CompletionResult]::new('--tls-port', '--tls-port', [CompletionResultType]::ParameterName, 'Also serve implicit TLS (SMTPS, conventionally 465) on this port (0 picks a free one)')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a session that sends nothing for this long (RFC 5321 asks for at least 300)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'The address to listen on')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most sessions served at once; further clients wait to be accepted')
            [CompletionResult]::new('--max-connections-per-ip', '--max-connections-per-ip', [CompletionResultType]::ParameterName, 'Most sessions at once from one client address')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How to write the session log on stderr')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--lmtp', '--lmtp', [CompletionResultType]::ParameterName, 'Speak LMTP (RFC 2033, for an MTA handing mail over) instead of SMTP')
            [CompletionResult]::new('--demo', '--demo', [CompletionResultType]::ParameterName, 'Serve a fresh temporary copy of the embedded demo store instead of --store')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Print the live dialogue of every session on stderr (passwords masked)')
            [CompletionResult]::new('--require-tls', '--require-tls', [CompletionResultType]::ParameterName, 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)')
            [CompletionResult]::new('--proxy-protocol', '--proxy-protocol', [CompletionResultType]::ParameterName, 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;serve' {
            [CompletionResult]::new('--pop-port', '--pop-port', [CompletionResultType]::ParameterName, 'The POP3 port [default: 110, or 1100 with --demo] (0 picks a free one)')
            [CompletionResult]::new('--imap-port', '--imap-port', [CompletionResultType]::ParameterName, 'The IMAP port [default: 143, or 1430 with --demo] (0 picks a free one)')
            [CompletionResult]::new('--smtp-port', '--smtp-port', [CompletionResultType]::ParameterName, 'The SMTP port [default: 25, or 2525 with --demo] (0 picks a free one)')
            [CompletionResult]::new('--lmtp-port', '--lmtp-port', [CompletionResultType]::ParameterName, 'Also receive mail over LMTP on this port (0 picks a free one)')
            [CompletionResult]::new('--pop-tls-port', '--pop-tls-port', [CompletionResultType]::ParameterName, 'Also serve POP3S (implicit TLS) on this port')
            [CompletionResult]::new('--imap-tls-port', '--imap-tls-port', [CompletionResultType]::ParameterName, 'Also serve IMAPS (implicit TLS) on this port')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'The address to listen on')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most sessions served at once; further clients wait to be accepted')
            [CompletionResult]::new('--max-connections-per-ip', '--max-connections-per-ip', [CompletionResultType]::ParameterName, 'Most sessions at once from one client address')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How to write the session log on stderr')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'PEM certificate chain, server certificate first: enables STARTTLS (POP3''s STLS) on the plain port (and allows the TLS ports)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Unencrypted PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC)')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'An address or range (10.0.0.5, 10.0.0.0/24, fd00::/8) whose connections must start with a PROXY header (repeatable); a header from anyone else is refused')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--demo', '--demo', [CompletionResultType]::ParameterName, 'Serve a fresh temporary copy of the embedded demo store instead of --store')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Print the live dialogue of every session on stderr (passwords masked)')
            [CompletionResult]::new('--require-tls', '--require-tls', [CompletionResultType]::ParameterName, 'Refuse logins until the session is encrypted (after STARTTLS/STLS, or on a TLS port)')
            [CompletionResult]::new('--proxy-protocol', '--proxy-protocol', [CompletionResultType]::ParameterName, 'Take the client''s address from the PROXY protocol header (v1 or v2) that a load balancer such as HAProxy sends first, on connections from a --trusted-proxy')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;imap-unread' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'The IMAP server''s host name or address')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The port [default: 143, or 993 with --tls]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'The IMAP user name')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Read the password from the first line of this file')
            [CompletionResult]::new('--ca-file', '--ca-file', [CompletionResultType]::ParameterName, 'Trust the certificates in this PEM file (in addition to the system roots)')
            [CompletionResult]::new('--mailbox', '--mailbox', [CompletionResultType]::ParameterName, 'The mailbox to sweep')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Connect and read timeout')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--tls', '--tls', [CompletionResultType]::ParameterName, 'Implicit TLS (IMAPS)')
            [CompletionResult]::new('--starttls', '--starttls', [CompletionResultType]::ParameterName, 'Upgrade a plain connection with STARTTLS; fail if the server does not offer it')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the server''s certificate (says so on stderr)')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Print the unread mails but change nothing on the server')
            [CompletionResult]::new('--raw', '--raw', [CompletionResultType]::ParameterName, 'Print each mail''s exact source in mboxrd framing (re-import with `mbox deliver --mbox`)')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Print the IMAP dialogue on stderr (password masked)')
            [CompletionResult]::new('--allow-expunge-all', '--allow-expunge-all', [CompletionResultType]::ParameterName, 'On servers without UIDPLUS, delete with plain EXPUNGE, which also removes mails other clients marked \Deleted')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;inspect' {
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Inspect this user''s mailbox in the store (when no PATH is given)')
            [CompletionResult]::new('--extract', '--extract', [CompletionResultType]::ParameterName, 'Write the attachments into this directory under safe file names')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--body', '--body', [CompletionResultType]::ParameterName, 'Also show the decoded text body')
            [CompletionResult]::new('--headers', '--headers', [CompletionResultType]::ParameterName, 'Also show every header, decoded')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With --extract, overwrite files that already exist')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add-user', 'add-user', [CompletionResultType]::ParameterValue, 'Create a user: a passwd line and an empty Maildir')
            [CompletionResult]::new('del-user', 'del-user', [CompletionResultType]::ParameterValue, 'Remove a user and, unless --keep-mail, their mailbox')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change a user''s password')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their message count, unread count and total size')
            [CompletionResult]::new('deliver', 'deliver', [CompletionResultType]::ParameterValue, 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Block until a matching mail is in a user''s mailbox, then print its summary')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove every mail of a user''s mailbox (the user stays)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mailtool;mbox;add-user' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin instead of prompting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;del-user' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--keep-mail', '--keep-mail', [CompletionResultType]::ParameterName, 'Leave the user''s Maildir on disk')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;passwd' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin instead of prompting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;list' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;deliver' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--mbox', '--mbox', [CompletionResultType]::ParameterName, 'The inputs are mbox files (mboxrd): split them and deliver every message')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;wait' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Only a mail whose From (name or address) contains this, any case')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Only a mail whose decoded Subject contains this, any case')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this long, with exit status 6')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;purge' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;mbox;help' {
            [CompletionResult]::new('add-user', 'add-user', [CompletionResultType]::ParameterValue, 'Create a user: a passwd line and an empty Maildir')
            [CompletionResult]::new('del-user', 'del-user', [CompletionResultType]::ParameterValue, 'Remove a user and, unless --keep-mail, their mailbox')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change a user''s password')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their message count, unread count and total size')
            [CompletionResult]::new('deliver', 'deliver', [CompletionResultType]::ParameterValue, 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Block until a matching mail is in a user''s mailbox, then print its summary')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove every mail of a user''s mailbox (the user stays)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mailtool;mbox;help;add-user' {
            break
        }
        'mailtool;mbox;help;del-user' {
            break
        }
        'mailtool;mbox;help;passwd' {
            break
        }
        'mailtool;mbox;help;list' {
            break
        }
        'mailtool;mbox;help;deliver' {
            break
        }
        'mailtool;mbox;help;wait' {
            break
        }
        'mailtool;mbox;help;purge' {
            break
        }
        'mailtool;mbox;help;help' {
            break
        }
        'mailtool;completions' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The mail store: a directory holding `passwd` and one Maildir per user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print results as JSON, one object per line, on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'mailtool;help' {
            [CompletionResult]::new('serve-pop', 'serve-pop', [CompletionResultType]::ParameterValue, 'Serve every user of the store over POP3 (RFC 1939, CAPA, UIDL, APOP, AUTH PLAIN, STLS)')
            [CompletionResult]::new('serve-imap', 'serve-imap', [CompletionResultType]::ParameterValue, 'Serve every user of the store over IMAP (RFC 3501 IMAP4rev1, with UIDPLUS, IDLE, MOVE, LITERAL+, UNSELECT, NAMESPACE, CHILDREN, STARTTLS)')
            [CompletionResult]::new('serve-smtp', 'serve-smtp', [CompletionResultType]::ParameterValue, 'Receive mail over SMTP (RFC 5321) or LMTP (RFC 2033) and deliver it into the store')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve POP3, IMAP and SMTP (and LMTP if asked) together on one store, in one process')
            [CompletionResult]::new('imap-unread', 'imap-unread', [CompletionResultType]::ParameterValue, 'Print every unread mail of an IMAP mailbox, then delete exactly those mails')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show headers, decoded subjects, MIME structure and attachments of mails')
            [CompletionResult]::new('mbox', 'mbox', [CompletionResultType]::ParameterValue, 'Manage the store: users, passwords, delivery')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mailtool;help;serve-pop' {
            break
        }
        'mailtool;help;serve-imap' {
            break
        }
        'mailtool;help;serve-smtp' {
            break
        }
        'mailtool;help;serve' {
            break
        }
        'mailtool;help;imap-unread' {
            break
        }
        'mailtool;help;inspect' {
            break
        }
        'mailtool;help;mbox' {
            [CompletionResult]::new('add-user', 'add-user', [CompletionResultType]::ParameterValue, 'Create a user: a passwd line and an empty Maildir')
            [CompletionResult]::new('del-user', 'del-user', [CompletionResultType]::ParameterValue, 'Remove a user and, unless --keep-mail, their mailbox')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change a user''s password')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their message count, unread count and total size')
            [CompletionResult]::new('deliver', 'deliver', [CompletionResultType]::ParameterValue, 'Deliver mail into a user''s Maildir (from files, or stdin when none is given)')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Block until a matching mail is in a user''s mailbox, then print its summary')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove every mail of a user''s mailbox (the user stays)')
            break
        }
        'mailtool;help;mbox;add-user' {
            break
        }
        'mailtool;help;mbox;del-user' {
            break
        }
        'mailtool;help;mbox;passwd' {
            break
        }
        'mailtool;help;mbox;list' {
            break
        }
        'mailtool;help;mbox;deliver' {
            break
        }
        'mailtool;help;mbox;wait' {
            break
        }
        'mailtool;help;mbox;purge' {
            break
        }
        'mailtool;help;completions' {
            break
        }
        'mailtool;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
