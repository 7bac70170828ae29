#!/bin/sh
# Put Debian's static busybox into the demo image's build context
# (bin/busybox; the applet symlinks beside it are committed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sh "$root/tests/fixtures/fetch-busybox.sh"
cp "$root/tests/fixtures/bin/busybox" "$here/bin/busybox"
chmod 0755 "$here/bin/busybox"
echo "demo ready: cargo run -- trace examples/demo-service"
