#!/usr/bin/env python3
"""Side-by-side benchmark of `mailtool imap-unread` against a real Dovecot, and of both
servers: Dovecot and mailtool's own `serve-imap`, each serving a copy of the same mailbox.

Sweeps 5,000 unread 4 KiB mails, re-seeded before every run, from each server, with
  - mailtool imap-unread --raw (and the default human output),
  - an imaplib sweeper sending the same batched UID commands (imap_peer_imaplib.py),
  - fetchmail with mda "/bin/cat" (--sslproto '' against plain-text Dovecot),
and prints the median wall time of each and its ratio to the imaplib sweeper, per server,
and serve-imap's time over Dovecot's for each tool, next to two bare-socket sweeps that parse
nothing (one connection, and two connections that delete each chunk while the next is
fetched), and each server's own time for the commands. Then it measures mailtool's peak RSS
while sweeping 100 mails of 1 MiB. Every tool writes to /dev/null; the mailbox and mails
are identical for all. The runs interleave tools and servers, so a noisy neighbour slows
all alike.

Seeding writes the Maildir files directly (as a delivery agent would), then one SELECT
indexes them, so the timed runs measure sweeping, not a server's first look at new mail.

usage (as root, needs dovecot, fetchmail, a release build):
    cargo build --release && python3 benches/imap_sweep.py [--runs 5] [--mails 5000]
                                                           [--fetchmail-runs 1] [--binary PATH]
"""

import argparse
import imaplib
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benches" / "imap_peer_imaplib.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sweeps:
    """What is measured on either server (mixed into both)."""

    def seed(self, count: int, octets: int):
        """Empty the mailbox, then deliver `count` unread mails of about `octets` each."""
        maildir = self.store / "asterix"
        for sub in ("new", "cur", "tmp"):
            shutil.rmtree(maildir / sub, ignore_errors=True)
        for extra in maildir.glob("dovecot*"):
            if extra.is_file():
                extra.unlink()
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir()
        line = b"By Toutatis, the sky will not fall on our heads today, nor tomorrow.\n"
        now = int(time.time())
        for i in range(count):
            head = (
                f"From: Obelix <obelix@village.gaul>\nTo: asterix@village.gaul\n"
                f"Subject: bench mail {i}\nMessage-ID: <{i}.{now}@bench>\n"
                f"Date: Thu, 26 Nov 2026 04:00:00 +0000\n\n"
            ).encode()
            body = line * max(1, (octets - len(head)) // len(line))
            mail = head + body
            crlf = len(mail) + mail.count(b"\n")
            name = f"{now}.M{i}P1Q{i}.bench,S={len(mail)},W={crlf}"
            (maildir / "new" / name).write_bytes(mail)
        if isinstance(self, Dovecot):
            subprocess.run(["chown", "-R", "mail:mail", str(maildir)], check=True)
        # Let the server index the new mails once, outside the timed runs.
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login("asterix", "potion")
        imap.select("INBOX")
        imap.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE)")
        typ, data = imap.uid("SEARCH", None, "UNSEEN")
        assert len(data[0].split()) == count, "seeding failed"
        imap.logout()

    def floor(self, count: int, octets: int) -> float:
        """The server's time for the sweep's commands: each timed alone, its reply read at C speed
        by imaplib's socket and thrown away, summed. No client can sweep faster than this."""
        self.seed(count, octets)
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login("asterix", "potion")
        total = 0.0
        commands = [("SELECT", "INBOX"), ("UID SEARCH", "UNSEEN"),
                    ("UID FETCH", f"1:{count} (UID RFC822.SIZE)")]
        commands += [("UID FETCH", f"{i + 1}:{min(i + 500, count)} (UID INTERNALDATE BODY.PEEK[])")
                     for i in range(0, count, 500)]
        commands += [("UID STORE", f"1:{count} +FLAGS.SILENT (\\Deleted)"),
                     ("UID EXPUNGE", f"1:{count}"), ("UID SEARCH", f"UID 1:{count}")]
        for tag, (command, arguments) in enumerate(commands):
            line = f"f{tag} {command} {arguments}\r\n".encode()
            start = time.perf_counter()
            imap.send(line)
            end = f"f{tag} ".encode()
            while True:
                reply = imap.readline()
                if reply.startswith(end):
                    break
                if reply.rstrip().endswith(b"}"):
                    size = int(reply.rstrip()[reply.rindex(b"{") + 1:-1])
                    imap.read(size)
            total += time.perf_counter() - start
        imap.logout()
        return total

    def bare_sweep(self, count: int, octets: int, connections: int) -> float:
        """Wall time of the leanest possible sweep: raw sockets, replies scanned for their
        tagged line and thrown away, no parsing, no output. With two connections, a second
        Dovecot process stores and expunges each fetched chunk while the first fetches the
        next: the design that would give up "a failed output deletes nothing", timed to see
        what it would buy."""
        self.seed(count, octets)
        start = time.perf_counter()
        fetcher = BareImap(self.port)
        deleter = BareImap(self.port) if connections == 2 else fetcher
        fetcher.command("UID SEARCH UNSEEN")
        fetcher.command(f"UID FETCH 1:{count} (UID RFC822.SIZE)")
        chunks = [f"{i + 1}:{min(i + 500, count)}" for i in range(0, count, 500)]
        done = queue.Queue()

        def delete(uids):
            deleter.command(f"UID STORE {uids} +FLAGS.SILENT (\\Deleted)")
            deleter.command(f"UID EXPUNGE {uids}")

        def delete_as_fetched():
            while (uids := done.get()) is not None:
                delete(uids)

        worker = threading.Thread(target=delete_as_fetched) if connections == 2 else None
        if worker:
            worker.start()
        for uids in chunks:
            fetcher.command(f"UID FETCH {uids} (UID INTERNALDATE BODY.PEEK[])")
            if worker:
                done.put(uids)
        if worker:
            done.put(None)
            worker.join()
        else:
            delete(f"1:{count}")
        fetcher.command(f"UID SEARCH UID 1:{count}")
        elapsed = time.perf_counter() - start
        if self.count() != 0:
            raise SystemExit("the bare sweep left mails behind")
        return elapsed

    def count(self) -> int:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login("asterix", "potion")
        typ, data = imap.select("INBOX")
        imap.logout()
        return int(data[0])


class Server(Sweeps):
    """A server of `store`/asterix on 127.0.0.1:`port`; seeding and sweeping are the same
    for both servers."""

    name = "server"
    store: Path
    port: int

    def make_store(self, store: Path):
        self.store = store
        (self.store / "asterix").mkdir(parents=True)
        (self.store / "passwd").write_text("asterix:{PLAIN}potion\n")
        os.chmod(self.store / "passwd", 0o600)

    def wait_ready(self):
        for _ in range(200):
            try:
                imaplib.IMAP4("127.0.0.1", self.port).logout()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start")


class ServeImap(Server):
    """`mailtool --store STORE serve-imap --port 0`, ready once it printed its address."""

    name = "serve-imap"

    def __init__(self, work: Path, binary: str):
        self.make_store(work / "ours")
        self.log = open(work / "serve-imap.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "--store", str(self.store), "serve-imap", "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise SystemExit(f"serve-imap printed {line!r}, not its address")
        self.port = int(line.rsplit(":", 1)[1])
        self.wait_ready()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class Dovecot(Server):
    name = "Dovecot"

    def __init__(self, work: Path):
        self.work = work
        self.make_store(work / "store")
        self.port = free_port()
        conf = f"""base_dir = {work}/run
state_dir = {work}/state
log_path = {work}/dovecot.log
instance_name = mailtool-bench-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
first_valid_gid = 1
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.store}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={self.store}/%u
}}
mail_location = maildir:{self.store}/%u
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = root
}}
"""
        self.conf = work / "dovecot.conf"
        self.conf.write_text(conf)
        os.chmod(work, 0o755)
        subprocess.run(["chown", "-R", "mail:mail", str(self.store)], check=True)
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        self.wait_ready()

    def stop(self):
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], check=False)


class BareImap:
    """A logged-in, INBOX-selected connection that reads replies at C speed, unparsed."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buffer = bytearray()
        self.tag = 0
        self.sock.recv(4096)
        self.buffer = bytearray(b"\r\n")
        self.command("LOGIN asterix potion")
        self.command("SELECT INBOX")

    def command(self, line: str):
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.sock.sendall(tag + b" " + line.encode() + b"\r\n")
        end = b"\r\n" + tag + b" "
        while True:
            at = self.buffer.find(end)
            if at >= 0 and (eol := self.buffer.find(b"\r\n", at + 2)) >= 0:
                if not self.buffer[at + len(end):].startswith(b"OK"):
                    raise SystemExit(f"{line}: {bytes(self.buffer[at:eol])}")
                self.buffer = bytearray(b"\r\n") + self.buffer[eol + 2:]
                return
            data = self.sock.recv(1 << 20)
            if not data:
                raise SystemExit(f"{line}: connection closed")
            self.buffer += data


def run_timed(argv, env=None):
    """Wall time and peak RSS (KiB) of one child, its stdout to /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(argv, stdout=devnull, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {stderr}")
    return elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fetchmail-runs", type=int, default=1,
                        help="fetchmail takes over a minute per run; 1 by default")
    parser.add_argument("--mails", type=int, default=5000)
    parser.add_argument("--octets", type=int, default=4096)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release/mailtool"))
    args = parser.parse_args()
    if not Path(args.binary).exists():
        raise SystemExit(f"{args.binary} is missing: run `cargo build --release` first")

    work = Path(tempfile.mkdtemp(prefix="mailtool-bench-"))
    servers = []
    try:
        servers.append(Dovecot(work))
        servers.append(ServeImap(work, args.binary))
        env = dict(os.environ, MAILTOOL_PASSWORD="potion")

        def tools_for(server):
            common = ["imap-unread", "--host", "127.0.0.1", "--port", str(server.port),
                      "--user", "asterix"]
            rcfile = work / f"fetchmailrc-{server.port}"
            rcfile.write_text(
                f"set no syslog\npoll 127.0.0.1 proto IMAP port {server.port} "
                f"user asterix password potion mda \"/bin/cat\" sslproto '' nokeep\n"
            )
            os.chmod(rcfile, 0o600)
            return {
                "mailtool --raw": [args.binary] + common + ["--raw"],
                "mailtool (text)": [args.binary] + common,
                "python imaplib": [sys.executable, str(PEER), "127.0.0.1", str(server.port),
                                   "asterix", "potion"],
                "fetchmail": ["fetchmail", "-f", str(rcfile), "--nodetach", "--silent",
                              "--idfile", str(work / f"fetchids-{server.port}")],
            }

        tools = {server.name: tools_for(server) for server in servers}
        names = list(tools[servers[0].name])
        times = {(server.name, name): [] for server in servers for name in names}
        for run in range(args.runs):
            # Interleaved, so a noisy neighbour slows every tool and server alike.
            for name in names:
                if name == "fetchmail" and run >= args.fetchmail_runs:
                    continue
                for server in servers:
                    server.seed(args.mails, args.octets)
                    elapsed, _ = run_timed(tools[server.name][name], env)
                    left = server.count()
                    if left != 0:
                        raise SystemExit(f"{name} left {left} mails behind on {server.name}")
                    times[(server.name, name)].append(elapsed)
                    print(f"run {run + 1}: {server.name:10} {name:16} {elapsed:7.3f} s",
                          file=sys.stderr)

        dovecot = servers[0]
        raw = tools[dovecot.name]["mailtool --raw"]
        dovecot.seed(100, 1 << 20)
        _, rss_kib = run_timed(raw, env)
        dovecot.seed(100, 1 << 20)
        _, rss_text_kib = run_timed(tools[dovecot.name]["mailtool (text)"], env)

        cpu = "unknown"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs "
              f"({cpu}), load average {load}, {platform.system()} {platform.release()}, "
              f"{dovecot_version()}, mailtool serve-imap ({args.binary})")
        print(f"sweep of {args.mails} unread mails of {args.octets} octets, "
              f"median of {args.runs} runs (fetchmail: {args.fetchmail_runs}), "
              f"re-seeded before each\n")
        medians = {key: statistics.median(values) for key, values in times.items() if values}
        bare = {(server.name, n): statistics.median(
                    server.bare_sweep(args.mails, args.octets, n) for _ in range(args.runs))
                for server in servers for n in (1, 2)}
        floors = {server.name: server.floor(args.mails, args.octets) for server in servers}
        rows = [(name, name) for name in names]
        rows += [("bare sockets, no parsing, one connection", 1),
                 ("bare sockets, two connections, deletes overlapping fetches", 2),
                 ("the server's own time for the commands (phases timed apart)", "floor")]

        def cell(server, key):
            if key == "floor":
                return floors[server]
            if isinstance(key, int):
                return bare[(server, key)]
            return medians.get((server, key))

        ours, theirs = servers[1].name, servers[0].name
        base = {server.name: medians[(server.name, "python imaplib")] for server in servers}
        print(f"| tool | from {theirs}: median | vs. python imaplib | from {ours}: median "
              f"| vs. python imaplib | {ours} / {theirs} |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, key in rows:
            d, o = cell(theirs, key), cell(ours, key)
            if d is None or o is None:
                continue
            print(f"| {label} | {d:.3f} s | {d / base[theirs]:.2f}x | {o:.3f} s "
                  f"| {o / base[ours]:.2f}x | **{o / d:.2f}x** |")
        print(f"\npeak RSS of mailtool imap-unread sweeping 100 mails of 1 MiB from {theirs}: "
              f"{rss_kib / 1024:.1f} MiB (--raw), {rss_text_kib / 1024:.1f} MiB (text output)")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def dovecot_version():
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True)
    return "Dovecot " + out.stdout.split()[0] if out.returncode == 0 else "Dovecot"


if __name__ == "__main__":
    main()
