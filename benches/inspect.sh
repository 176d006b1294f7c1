#!/usr/bin/env bash
# Benchmark `mailtool inspect --json` over a Maildir of 5,000 varied messages against mblaze
# (`mlist DIR | mshow -t`) and a Python `email` script extracting the same fields
# (benches/inspect_email.py), in one script run, and print medians and ratios.
#
#   benches/inspect.sh            # needs hyperfine, mblaze, python3; builds --release
#   RUNS=20 PYTHON_RUNS=3 MESSAGES=5000 benches/inspect.sh
#
# The Python script takes seconds per run, so it gets fewer runs (a second hyperfine call in
# the same script run, on the same Maildir).
#
# The Maildir is generated in a temporary directory from testdata/mail and testdata/store:
# each message is copied with its own Message-ID, half into cur/ with varied flags.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
PYTHON_RUNS=${PYTHON_RUNS:-3}
MESSAGES=${MESSAGES:-5000}
for tool in hyperfine mlist mshow python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install hyperfine mblaze python3)" >&2; exit 1; }
done

cargo build --release --quiet
target=${CARGO_TARGET_DIR:-target}
mailtool="$(cd "$target/release" && pwd)/mailtool"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
maildir="$work/maildir"
mkdir -p "$maildir"/{tmp,new,cur}

python3 - "$maildir" "$MESSAGES" <<'PY'
import glob, os, sys
maildir, count = sys.argv[1], int(sys.argv[2])
sources = sorted(glob.glob("testdata/mail/*.eml")) + sorted(glob.glob("testdata/store/*/*/*"))
mails = [open(p, "rb").read() for p in sources]
flags = ["", "S", "RS", "FS", "S", "DS", "PS", "ST"]
for i in range(count):
    raw = mails[i % len(mails)].replace(b"Message-ID: <", b"Message-ID: <%d." % i, 1)
    name = "%d.M%dP1Q%d.bench,S=%d" % (1700000000 + i, i, i, len(raw))
    if i % 2:
        path = os.path.join(maildir, "cur", name + ":2," + flags[i % len(flags)])
    else:
        path = os.path.join(maildir, "new", name)
    with open(path, "wb") as f:
        f.write(raw)
PY

echo "$(find "$maildir/new" "$maildir/cur" -type f | wc -l) messages, $(du -sh "$maildir" | cut -f1); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"

hyperfine --runs "$RUNS" --warmup 2 --style basic --export-json "$work/fast.json" \
  -n "mailtool inspect --json" "$mailtool inspect --json $maildir > /dev/null" \
  -n "mblaze mlist | mshow -t" "mlist $maildir | mshow -t > /dev/null" >&2
hyperfine --runs "$PYTHON_RUNS" --style basic --export-json "$work/python.json" \
  -n "python email" "python3 benches/inspect_email.py $maildir > /dev/null" >&2

python3 - "$work/fast.json" "$work/python.json" <<'PY'
import json, sys
results = {}
for path in sys.argv[1:]:
    results.update({r["command"]: r["median"] for r in json.load(open(path))["results"]})
ours = results["mailtool inspect --json"]
print("| command | median | ratio to mailtool |")
print("| --- | --- | --- |")
for name, median in results.items():
    print(f"| `{name}` | {median * 1000:.0f} ms | {median / ours:.2f}x |")
mblaze = results["mblaze mlist | mshow -t"]
python = results["python email"]
print()
print(f"mailtool / mblaze = {ours / mblaze:.2f} (target <= 1.5); python / mailtool = {python / ours:.1f} (target >= 30)")
PY
