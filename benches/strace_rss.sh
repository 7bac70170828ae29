#!/bin/sh
# Peak RSS of `codegenie parse-strace` on a >= 1 GB real trace, beside `wc -l`.
# Records target/strace-bench/usr_walk.trace (a program opening every file
# under /usr, traced with `strace -f -y`) unless present, concatenates it 9
# times with each copy's pids shifted so processes stay distinct, then parses
# it with the release binary under /usr/bin/time. Nothing is written outside target/.
set -eu
cd "$(dirname "$0")/.."
D=target/strace-bench
mkdir -p "$D"
if [ ! -f "$D/usr_walk.trace" ]; then
    cat > "$D/walk.py" <<'PY'
import os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        try:
            with open(os.path.join(root, f), "rb") as fh:
                fh.read(16)
        except OSError:
            pass
PY
    strace -f -y -o "$D/usr_walk.trace" python3 -S "$D/walk.py" /usr
fi
if [ ! -f "$D/big.trace" ]; then
    python3 - "$D/usr_walk.trace" 9 "$D/big.trace" <<'PY'
import re, sys
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pat = re.compile(rb"^(\d+)")
with open(dst, "wb") as out:
    for k in range(n):
        off = k * 5_000_000
        with open(src, "rb") as f:
            for line in f:
                out.write(pat.sub(lambda m: str(int(m.group(1)) + off).encode(), line, count=1))
PY
fi
cargo build --release --bin codegenie
ls -l "$D/big.trace"
/usr/bin/time -f 'wc -l: %e s' wc -l "$D/big.trace"
/usr/bin/time -f 'parse-strace: %e s wall, %U s user, peak RSS %M KB' \
    target/release/codegenie parse-strace "$D/big.trace" >/dev/null
