#!/usr/bin/env python3
"""The Python side of benches/inspect.sh: the fields `mailtool inspect --json` reports, for
every message of a Maildir, with the standard library's `email` package (policy=default).
One JSON object per message per line, like mailtool."""

import email
import email.policy
import email.utils
import json
import os
import sys
from datetime import timezone

FLAGS = {"D": "Draft", "F": "Flagged", "P": "Passed", "R": "Replied", "S": "Seen", "T": "Trashed"}


def addresses(header):
    if header is None:
        return []
    try:
        return [{"name": a.display_name or None, "address": a.addr_spec} for a in header.addresses]
    except Exception:
        return []


def utc(value):
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except Exception:
        return None


def parts(msg, prefix, depth, message_body, out):
    multipart = msg.is_multipart() and msg.get_content_maintype() == "multipart"
    number = None if (message_body and multipart) else (prefix + ".1" if message_body and prefix else "1" if message_body else prefix)
    disposition = msg.get_content_disposition()
    filename = msg.get_filename()
    if multipart or msg.get_content_type() == "message/rfc822":
        # email keeps no raw body for containers; leaving it out only makes Python faster.
        size = None
    else:
        size = len(msg.get_payload(decode=True) or b"")
    out.append({
        "part": number, "depth": depth, "content_type": msg.get_content_type(),
        "charset": msg.get_param("charset"), "encoding": (msg.get("content-transfer-encoding") or "7bit").lower(),
        "size": size, "disposition": disposition, "filename": filename,
        "attachment": not multipart and (disposition == "attachment" or filename is not None),
    })
    if multipart:
        children_prefix = number if number else prefix
        for i, child in enumerate(msg.get_payload(), 1):
            parts(child, f"{children_prefix}.{i}" if children_prefix else str(i), depth + 1, False, out)
    elif msg.get_content_type() == "message/rfc822":
        for inner in msg.get_payload():
            parts(inner, number, depth + 1, True, out)


def inspect(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    name = os.path.basename(path)
    letters = name.split(":2,", 1)[1] if ":2," in name else ""
    tree = []
    parts(msg, "", 0, True, tree)
    date = msg["date"]
    subject = msg["subject"]
    return {
        "path": path, "size": len(raw), "flags": [FLAGS.get(c, c) for c in letters],
        "message_id": msg["message-id"], "date": None if date is None else str(date),
        "date_utc": None if date is None else utc(str(date)),
        "from": addresses(msg["from"]), "to": addresses(msg["to"]), "cc": addresses(msg["cc"]),
        "subject": None if subject is None else str(subject), "parts": tree,
        "attachments": sum(p["attachment"] for p in tree),
    }


def main():
    out = sys.stdout
    for maildir in sys.argv[1:]:
        for sub in ("new", "cur"):
            folder = os.path.join(maildir, sub)
            for name in sorted(os.listdir(folder)):
                out.write(json.dumps(inspect(os.path.join(folder, name)), ensure_ascii=False))
                out.write("\n")


if __name__ == "__main__":
    main()
