#!/bin/sh
# Records a real strace trace of a program that touches 120k distinct files,
# for the `parse_strace_cli` benchmark: `make_big_trace.sh OUT STRACE_OPTION...`,
# where the options are the runtime trace's own (the benchmark passes
# `codegenie_runtime::runtime_trace::bundle::strace_options`).
#
# The program (Python, run by the system's python3 under the real strace)
# works in a fresh temporary folder: it creates 120k files in 120 folders
# (open O_CREAT: files_written), reads each back by a name relative to its
# folder after a chdir (openat on AT_FDCWD: files_read, joined to the cwd),
# stats each (newfstatat: paths_probed), looks for a missing sibling of each
# (ENOENT: missing), and runs a few child processes (execve with argv, clone).
# The folder is removed afterwards; only OUT is left.
set -eu
out=${1:?usage: make_big_trace.sh OUT STRACE_OPTION...}
shift
[ $# -gt 0 ] || { echo "make_big_trace.sh: no strace options given" >&2; exit 1; }
command -v strace >/dev/null || { echo "make_big_trace.sh: strace is not installed" >&2; exit 1; }
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "make_big_trace.sh: python3 is not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/codegenie-big-trace.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cat > "$work/touch_files.py" <<'PY'
import os, subprocess, sys
root = sys.argv[1]
DIRS, PER_DIR = 120, 1000
for d in range(DIRS):
    sub = os.path.join(root, "data", f"d{d:03}")
    os.makedirs(sub)
    for i in range(PER_DIR):
        with open(os.path.join(sub, f"file{i:04}.txt"), "w") as f:
            f.write("x")
for d in range(DIRS):
    sub = os.path.join(root, "data", f"d{d:03}")
    os.chdir(sub)
    for i in range(PER_DIR):
        name = f"file{i:04}.txt"
        with open(name, "rb") as f:
            f.read()
        os.stat(name)
        os.path.exists(f"missing{i:04}.cfg")
    if d % 20 == 0:
        subprocess.run(["/bin/sh", "-c", "ls >/dev/null"], check=True)
PY
strace "$@" -o "$out.partial" "$py" -S "$work/touch_files.py" "$work"
mv "$out.partial" "$out"
