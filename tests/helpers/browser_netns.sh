#!/bin/bash
# browser_netns.sh CHROMIUM DIR WWW SOCKSIFY SOCKSIFYD HELPERS NAME
# Run inside a fresh network namespace (unshare --net) by
# tests/preload_tree.bats: brings up loopback, serves WWW, starts socksifyd
# with DIR/proxy-hosts as its private /etc/hosts (NAME resolves there only),
# and has headless CHROMIUM load http://NAME:PORT/page.html through
# socksify -x socks5h. Leaves DIR/dom.html, DIR/socksifyd.log and
# DIR/chromium.err; every process it starts is stopped by its PID.
set -u
chromium=$1 dir=$2 www=$3 socksify=$4 socksifyd=$5 helpers=$6 name=$7
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT

ip link set lo up || exit 1
# Nothing but loopback: a program that calls home reaches no one.
[ "$(ip -o link show | grep -vc ': lo:')" = 0 ] || { echo "more than loopback here"; exit 1; }

python3 "$helpers/httpd.py" "$www" 127.0.0.1 "$dir/http.port" >/dev/null 2>&1 &
pids+=($!)
unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$dir/proxy-hosts" \
	"$socksifyd" -l 127.0.0.1:0 -v 2>"$dir/socksifyd.log" &
pids+=($!)
for _ in $(seq 50); do
	[ -s "$dir/http.port" ] && grep -q 'listening on' "$dir/socksifyd.log" && break
	sleep 0.1
done
http_port=$(cat "$dir/http.port")
proxy_port=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$dir/socksifyd.log")
[ -n "$http_port" ] && [ -n "$proxy_port" ] || { echo "servers did not start"; exit 1; }

timeout 90 "$socksify" -x "socks5h://127.0.0.1:$proxy_port" -e none -- \
	"$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
	--user-data-dir="$dir/profile" --dump-dom "http://$name:$http_port/page.html" \
	>"$dir/dom.html" 2>"$dir/chromium.err"
rc=$?
echo "chromium exit $rc"
exit $rc
