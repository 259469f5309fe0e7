#!/bin/sh
# Runs inside private network and mount namespaces (unshare --net --mount):
# socksifyd with the example config, as it is, on the ports it names, and
# the example users file where that config looks for it, under an overlay
# of its directory whose writes stay in WORKDIR. Prints the server's ready
# lines, then the outcome of a fetch through it as the users file's first
# user and of one without credentials.
#   netns_examples.sh SOCKSIFYD CONF USERS HELPERS_DIR WORKDIR
set -eu
socksifyd=$1 conf=$2 users=$3 helpers=$4 work=$5
ip link set lo up

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

users_path=$(sed -n 's/^users[[:blank:]]\{1,\}//p' "$conf")
[ -n "$users_path" ] || { echo "no users line in $conf"; exit 1; }
ov=$work/overlay
mkdir -p "$ov"
mount -t tmpfs tmpfs "$ov"
mkdir "$ov/u" "$ov/w"
mount -t overlay overlay -o "lowerdir=${users_path%/*},upperdir=$ov/u,workdir=$ov/w" "${users_path%/*}"
install -m 600 "$users" "$users_path"

mkdir -p "$work/www"
echo 'hello through the example' >"$work/www/hello.txt"
python3 "$helpers/httpd.py" "$work/www" 127.0.0.1 "$work/http.port" >/dev/null 2>&1 &
pids="$pids $!"
"$socksifyd" --config "$conf" 2>"$work/socksifyd.log" &
pids="$pids $!"
for _ in $(seq 50); do
	[ -s "$work/http.port" ] && [ "$(grep -c '^socksifyd: listening on ' "$work/socksifyd.log")" -ge 2 ] && break
	sleep 0.1
done
cat "$work/socksifyd.log"
url=http://127.0.0.1:$(cat "$work/http.port")/hello.txt
port=$(sed -n 's/^socksifyd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/socksifyd.log")
cred=$(grep -v -e '^#' -e '^[[:blank:]]*$' "$users" | head -n 1)
echo "as ${cred%%:*}: $(curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$port" --proxy-user "$cred" "$url" 2>&1)"
# The hashed user, with the password the file's comment gives.
echo "as carol: $(curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$port" \
	--proxy-user 'carol:through the looking glass' "$url" 2>&1)"
rc=0
curl -s --max-time 10 --socks5-hostname "127.0.0.1:$port" "$url" >/dev/null 2>&1 || rc=$?
echo "no credentials: curl exit $rc"
