#!/usr/bin/env python3
"""The benchmark's peer: an imaplib sweeper sending the same batched UID commands as
`mailtool imap-unread --raw` (SELECT, UID SEARCH UNSEEN, UID FETCH sizes, UID FETCH
BODY.PEEK[] in chunks of at most 500 mails / 4 MiB, UID STORE +FLAGS.SILENT (\\Deleted),
UID EXPUNGE, UID SEARCH UID to verify), writing each mail's source to stdout.

usage: imap_peer_imaplib.py HOST PORT USER PASSWORD
"""

import imaplib
import re
import sys

CHUNK_BYTES = 4 << 20
CHUNK_MAILS = 500
SIZE_WINDOW = 2000


def uid_set(uids):
    """Compress sorted UIDs into an IMAP set: 1:4,7,9:12."""
    parts = []
    start = prev = None
    for uid in uids:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = uid
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    out = sys.stdout.buffer
    imap = imaplib.IMAP4(host, port)
    imap.login(user, password)
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    typ, data = imap.uid("SEARCH", None, "UNSEEN")
    unread = sorted(int(n) for n in data[0].split())
    printed = []
    size_re = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)")
    uid_re = re.compile(rb"UID (\d+)")
    for w in range(0, len(unread), SIZE_WINDOW):
        window = unread[w : w + SIZE_WINDOW]
        typ, data = imap.uid("FETCH", uid_set(window), "(UID RFC822.SIZE)")
        sizes = []
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            m = size_re.search(line or b"")
            if m:
                sizes.append((int(m.group(1)), int(m.group(2))))
        sizes.sort()
        chunk, chunk_bytes = [], 0
        chunks = []
        for uid, size in sizes:
            if chunk and (chunk_bytes + size > CHUNK_BYTES or len(chunk) == CHUNK_MAILS):
                chunks.append(chunk)
                chunk, chunk_bytes = [], 0
            chunk.append(uid)
            chunk_bytes += size
        if chunk:
            chunks.append(chunk)
        for chunk in chunks:
            typ, data = imap.uid("FETCH", uid_set(chunk), "(UID INTERNALDATE BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    m = uid_re.search(item[0])
                    out.write(item[1])
                    out.flush()
                    printed.append(int(m.group(1)))
    if printed:
        printed.sort()
        imap.noop()
        imap.uid("STORE", uid_set(printed), "+FLAGS.SILENT", "(\\Deleted)")
        imap.uid("EXPUNGE", uid_set(printed))
        typ, data = imap.uid("SEARCH", None, "UID", uid_set(printed))
        assert not data[0].split(), "some mails were not expunged"
    imap.logout()
    print(f"printed {len(printed)}, deleted {len(printed)}", file=sys.stderr)


if __name__ == "__main__":
    main()
