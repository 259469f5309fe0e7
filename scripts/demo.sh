#!/bin/sh
# make demo: a loopback web server, and curl fetching from it through the
# embedded socksifyd that socksify starts for the life of the command.
set -eu
BUILD=${1:-build}
sh scripts/deps.sh demo

tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "Hello from a loopback web server, fetched through SOCKS5 by an unmodified curl." >"$tmp/index.html"
python3 tests/helpers/httpd.py "$tmp" 127.0.0.1 "$tmp/port" >/dev/null 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
port=$(cat "$tmp/port")

echo "\$ $BUILD/socksify --trace curl -sS http://127.0.0.1:$port/"
"$BUILD/socksify" --trace curl -sS "http://127.0.0.1:$port/"
echo
echo "The trace line (stderr) is the library reporting curl's connect(), tunnelled through"
echo "the socksifyd that socksify started on a loopback port and stopped when curl exited."
