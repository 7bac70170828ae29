#!/bin/sh
# Records a real strace trace of a program that walks a tree of 113k distinct
# files and opens each once, for the `parse_strace_walk` benchmark:
# `make_walk_trace.sh OUT STRACE_OPTION...`, where the options are the
# runtime trace's own (the benchmark passes
# `codegenie_runtime::runtime_trace::bundle::strace_options`).
#
# This is the other character of trace beside `make_big_trace.sh`'s: every
# path distinct and named once, long absolute names (70 bytes on average,
# like a walk of /usr), every line a fact. The tree is made in a fresh
# temporary folder from a fixed seed, so every machine records the same
# names: 113,000 files in 15,400 folders up to five deep, a few names with
# a space, a quote or non-ASCII bytes (JSON escapes, `\x` renderings). The
# program (the system's python3 under the real strace) walks it top-down
# with os.walk and opens, reads 16 bytes of and closes each file with
# os.open (no fstat: one traced call per file and one per folder), as a
# walk of an image's /usr does; it also runs one child (execve, clone).
# The folder is removed afterwards; only OUT is left.
set -eu
out=${1:?usage: make_walk_trace.sh OUT STRACE_OPTION...}
shift
[ $# -gt 0 ] || { echo "make_walk_trace.sh: no strace options given" >&2; exit 1; }
command -v strace >/dev/null || { echo "make_walk_trace.sh: strace is not installed" >&2; exit 1; }
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "make_walk_trace.sh: python3 is not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/codegenie-walk-trace.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cat > "$work/make_tree.py" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(22)
FILES, DIRS = 113_000, 15_400
SYL = ["lib", "share", "doc", "python3", "dist", "packages", "x86_64", "linux",
       "gnu", "locale", "man", "include", "perl", "site", "zoneinfo", "icons",
       "hicolor", "scalable", "apps", "test", "data", "module", "core", "util"]
ODD = ["caf\u00e9", "with space", "q\"uote", "back\\slash", "tab\tname", "\u00fcber"]
def name(ext):
    n = rng.choice(SYL)
    if rng.random() < 0.5:
        n += str(rng.randint(0, 999))
    if rng.random() < 0.004:
        n = rng.choice(ODD) + n
    return n + ext
dirs = [os.path.join(root, "usr")]
os.makedirs(dirs[0])
while len(dirs) < DIRS:
    parent = rng.choice(dirs[-400:] if rng.random() < 0.7 else dirs)
    if parent.count(os.sep) - root.count(os.sep) >= 5:
        continue
    d = os.path.join(parent, name(""))
    if not os.path.exists(d):
        os.mkdir(d)
        dirs.append(d)
made = 0
while made < FILES:
    p = os.path.join(rng.choice(dirs), name(rng.choice([".py", ".so.6", ".gz", ".h", "", ".pyc", ".txt", ".mo"])))
    if os.path.exists(p):
        continue
    with open(p, "wb") as f:
        f.write(b"x" * 16)
    made += 1
PY
cat > "$work/walk.py" <<'PY'
import os, subprocess, sys
subprocess.run(["/bin/sh", "-c", ":"], check=True)
for top, dirs, files in os.walk(os.path.join(sys.argv[1], "usr")):
    for f in files:
        fd = os.open(os.path.join(top, f), os.O_RDONLY | os.O_CLOEXEC)
        os.read(fd, 16)
        os.close(fd)
PY
"$py" -S "$work/make_tree.py" "$work"
strace "$@" -o "$out.partial" "$py" -S "$work/walk.py" "$work"
mv "$out.partial" "$out"
