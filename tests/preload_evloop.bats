#!/usr/bin/env bats
# Event loops through libsocksify.so: real programs (python asyncio, node,
# curl --parallel, nginx, aria2c) that open many non-blocking connections at
# once, through a proxy made slow on purpose (delayfwd in front of socksifyd,
# so that every SOCKS round trip costs 2 * DELAY_MS). A non-blocking connect()
# must return at once and the socket must turn writable only when its
# handshake is done: the handshakes of one program then overlap, and a
# stalled proxy holds up neither timers nor the program's own connect
# timeout. Also: a proxy reached over the other address family than the
# program's socket (IPv4 socket, proxy on [::1] only, and the reverse).
#
# Every test checks the bytes end to end (sha256 of bodies from a local HTTP
# server) and that the traffic went through the proxy (socksifyd -v logs a
# line per session naming its target; a stalled proxy is seen holding the
# program's connection), not around it. Time bounds are loose and only where
# timing is the point.

load helpers/common

DELAY_MS=25
N=50
# N handshakes one after another: two SOCKS round trips each (greeting,
# request), each round trip 2 * DELAY_MS through delayfwd.
SEQUENTIAL_MS=$((N * 2 * 2 * DELAY_MS))
# At once they take about as long as one; the bound leaves room for a slow,
# busy machine and still fails a program whose handshakes run one by one.
CONCURRENT_MAX_MS=$((SEQUENTIAL_MS / 4))

setup() {
	make_payload
	# The concurrency tests fetch a small body: their time is the handshakes'.
	if [ ! -f "$WWW/small.bin" ]; then
		head -c 65536 /dev/urandom >"$WWW/small.tmp"
		mv "$WWW/small.tmp" "$WWW/small.bin"
	fi
	SMALL_SHA=$(sha <"$WWW/small.bin")
	start_evhttp 127.0.0.1
}

teardown() { stop_all; }

# start_evhttp HOST: start_http's server (serves $WWW on HOST; sets
# HTTP_PORT), with a listen backlog that fifty clients at once do not
# overflow: an overflow costs a SYN sent again a second later, and the
# timings here would measure that instead of the handshakes.
start_evhttp() { start_http "$1" evhttpd.py; }

# No proxy variable of the environment reaches the programs: the library is
# the only way to the proxy.
NO_PROXY_ENV=(-u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY
	-u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY)

# through URL CMD...: CMD with the library, proxy URL, no exclusions (the
# targets here are on loopback, which is excluded by default). A program
# started in the background is started as "${THROUGH[@]}" CMD... after
# through_env URL instead, so that $! is its own PID, not a subshell's.
through_env() {
	THROUGH=(env "${NO_PROXY_ENV[@]}" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$1")
}
through() {
	through_env "$1"
	shift
	"${THROUGH[@]}" "$@"
}

# slow_proxy: socksifyd -v behind delayfwd -d DELAY_MS; sets SLOW_URL.
slow_proxy() {
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" "$DELAY_MS"
	SLOW_URL=socks5://127.0.0.1:$DELAY_PORT
}

# expect_proxied TARGET N: socksifyd logs exactly N good sessions to TARGET
# (a line is written when a session ends: wait up to 5 s for them).
expect_proxied() {
	local i got
	for ((i = 0; i < 50; i++)); do
		got=$(grep -F "target=$1	" "$SOCKSIFYD_LOG" | grep -c 'outcome=ok' || true)
		[ "$got" -ge "$2" ] && break
		sleep 0.1
	done
	echo "socksifyd logged $got good sessions to $1, want $2"
	[ "$got" -eq "$2" ]
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# overlapped WHAT MS: N fetches that took MS ms cannot have had their
# handshakes one after another.
overlapped() {
	echo "$1 took $2 ms (one handshake after another: >= $SEQUENTIAL_MS ms; bound $CONCURRENT_MAX_MS ms)"
	[ "$2" -lt "$CONCURRENT_MAX_MS" ]
}

# fetched_at_once OUT: the three lines of a program that fetched small.bin N
# times at once (evloop.py asyncio, evloop.js many): every body intact, each
# fetch a session of the proxy, the handshakes overlapped.
fetched_at_once() {
	local res
	echo "$1"
	mapfile -t res <<<"$1"
	[ "${res[0]}" = "$N ok" ]
	[ "${res[1]}" = "$SMALL_SHA" ]
	expect_proxied "127.0.0.1:$HTTP_PORT" "$N"
	overlapped "$N fetches" "${res[2]}"
}


# holds_conn PID PORT: process PID has an established TCP connection to PORT.
holds_conn() {
	ss -Htnp state established "( dport = :$2 )" | grep -q "pid=$1,"
}

need_node() {
	command -v node >/dev/null || skip "node is not installed (scripts/deps.sh test)"
	skip_under_asan node
}

# --- Many connections at once through a slow proxy ---------------------------

@test "python3 asyncio: 50 fetches at once through a slow proxy, bodies intact, handshakes overlap" {
	slow_proxy
	out=$(through "$SLOW_URL" timeout 60 python3 "$HELPERS/evloop.py" asyncio "$N" \
		127.0.0.1 "$HTTP_PORT" /small.bin)
	fetched_at_once "$out"
}

@test "node http.get: 50 fetches at once through a slow proxy, bodies intact, handshakes overlap" {
	need_node
	slow_proxy
	out=$(through "$SLOW_URL" timeout 60 node "$HELPERS/evloop.js" many "$N" \
		"http://127.0.0.1:$HTTP_PORT/small.bin")
	fetched_at_once "$out"
}

@test "curl --parallel --parallel-max 50: 50 URLs through a slow proxy, bodies intact, handshakes overlap" {
	slow_proxy
	local dir=$BATS_TEST_TMPDIR/curl t0 ms i
	mkdir -p "$dir"
	t0=$(now_ms)
	through "$SLOW_URL" curl -sS --no-progress-meter --noproxy '*' --max-time 30 \
		--parallel --parallel-immediate --parallel-max "$N" \
		-o "$dir/#1" "http://127.0.0.1:$HTTP_PORT/small.bin?n=[1-$N]"
	ms=$(($(now_ms) - t0))
	for ((i = 1; i <= N; i++)); do
		[ "$(sha <"$dir/$i")" = "$SMALL_SHA" ] || { echo "body $i differs"; false; }
	done
	expect_proxied "127.0.0.1:$HTTP_PORT" "$N"
	overlapped curl "$ms"
}

@test "nginx reverse proxy (epoll, non-blocking upstream connect): 40 requests at once, upstream through the library" {
	local nginx dir=$BATS_TEST_TMPDIR/nginx bodies=$BATS_TEST_TMPDIR/nginx-bodies
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	[ -x "$nginx" ] || skip "nginx is not installed (scripts/deps.sh test)"
	slow_proxy
	NGINX_PORT=$(free_port)
	mkdir -p "$dir" "$bodies"
	cat >"$dir/nginx.conf" <<-EOF
	daemon off;
	master_process off;
	worker_processes 1;
	# nginx empties its environment at start-up (all but TZ and these),
	# before its first connect(), which is when the library reads it.
	env SOCKSIFY_PROXY;
	env SOCKSIFY_EXCLUDE;
	pid $dir/nginx.pid;
	error_log $dir/error.log warn;
	events { worker_connections 512; }
	http {
		access_log $dir/access.log;
		client_body_temp_path $dir/body;
		proxy_temp_path $dir/proxy;
		fastcgi_temp_path $dir/fastcgi;
		uwsgi_temp_path $dir/uwsgi;
		scgi_temp_path $dir/scgi;
		server {
			listen 127.0.0.1:$NGINX_PORT;
			location / {
				proxy_pass http://127.0.0.1:$HTTP_PORT;
				proxy_connect_timeout 20s;
				proxy_next_upstream off;
			}
		}
	}
	EOF
	through_env "$SLOW_URL"
	"${THROUGH[@]}" "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
		3>&- >"$dir/stdout" 2>&1 &
	PIDS+=($!)
	wait_listen "$NGINX_PORT" 50 || { cat "$dir/stdout" "$dir/error.log"; false; }
	local pids=() i bad=0
	for ((i = 1; i <= 40; i++)); do
		env "${NO_PROXY_ENV[@]}" curl -sS --noproxy '*' --max-time 30 -o "$bodies/$i" \
			"http://127.0.0.1:$NGINX_PORT/payload.bin?n=$i" 3>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || bad=$((bad + 1))
	done
	echo "curl failures: $bad"
	[ "$bad" -eq 0 ] || { cat "$dir/error.log"; false; }
	for ((i = 1; i <= 40; i++)); do
		[ "$(sha <"$bodies/$i")" = "$PAYLOAD_SHA" ] || { echo "body $i differs"; cat "$dir/error.log"; false; }
	done
	expect_proxied "127.0.0.1:$HTTP_PORT" 40
}

@test "aria2c: 8 downloads at once through a slow proxy, every file intact, 8 sessions in the proxy log" {
	command -v aria2c >/dev/null || skip "aria2c is not installed (scripts/deps.sh test)"
	slow_proxy
	local dir=$BATS_TEST_TMPDIR/aria2 i
	mkdir -p "$dir"
	for ((i = 1; i <= 8; i++)); do
		printf 'http://127.0.0.1:%s/payload.bin?n=%s\n  out=p%s.bin\n' "$HTTP_PORT" "$i" "$i"
	done >"$dir/urls"
	# c-ares is not the library's: numeric URLs, --async-dns=false.
	through "$SLOW_URL" timeout 60 aria2c --no-conf --quiet=true --async-dns=false \
		--disable-ipv6=true --max-concurrent-downloads=8 --split=1 \
		--max-connection-per-server=1 --max-tries=1 --connect-timeout=20 \
		--timeout=20 --file-allocation=none --allow-overwrite=true \
		--auto-file-renaming=false --summary-interval=0 --enable-rpc=false \
		--dir="$dir" --input-file="$dir/urls"
	for ((i = 1; i <= 8; i++)); do
		[ "$(sha <"$dir/p$i.bin")" = "$PAYLOAD_SHA" ] || { echo "file $i differs"; false; }
	done
	expect_proxied "127.0.0.1:$HTTP_PORT" 8
}

# --- A stalled proxy holds up neither timers nor a connect timeout ----------

@test "stalled proxy: node's 200 ms timer fires within 1 s (not after SOCKSIFY_TIMEOUT, 5 s) while connect() waits on the handshake" {
	need_node
	start_faultd --stall greeting
	local o=$BATS_TEST_TMPDIR/node.out pid ms conn
	through_env "socks5://127.0.0.1:$FAULT_PORT"
	"${THROUGH[@]}" SOCKSIFY_TIMEOUT=5 \
		node "$HELPERS/evloop.js" timer 127.0.0.1 "$HTTP_PORT" 3000 3>&- >"$o" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_for_line "$o" 100 '^timer '
	read -r _ ms conn < <(grep '^timer ' "$o")
	echo "the 200 ms timer fired after $ms ms ($conn)"
	[ "$ms" -lt 1000 ]
	# Not connected (the HTTP server would have taken a direct connect at
	# once), and node holds a connection to the stalled proxy.
	[ "$conn" = "connected=false" ]
	holds_conn "$pid" "$FAULT_PORT"
}

@test "stalled proxy: curl --connect-timeout 1 gives up (exit 28) within 3 s (SOCKSIFY_TIMEOUT is 5 s)" {
	start_faultd --stall greeting
	local pid t0 ms rc=0 seen=0 i
	t0=$(now_ms)
	through_env "socks5://127.0.0.1:$FAULT_PORT"
	"${THROUGH[@]}" SOCKSIFY_TIMEOUT=5 \
		curl -sS --noproxy '*' --connect-timeout 1 --max-time 10 -o /dev/null \
		"http://127.0.0.1:$HTTP_PORT/hello.txt" 3>&- &
	pid=$!
	PIDS+=("$pid")
	# While curl waits, its connection is the one to the stalled proxy.
	for ((i = 0; i < 100; i++)); do
		holds_conn "$pid" "$FAULT_PORT" && { seen=1; break; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	wait "$pid" || rc=$?
	ms=$(($(now_ms) - t0))
	echo "curl exited $rc after $ms ms; its connection to faultd seen: $seen"
	[ "$ms" -le 3000 ]
	[ "$rc" -eq 28 ]
	[ "$seen" -eq 1 ]
}

# --- The proxy over the other address family ----------------------------------

@test "proxy on [::1] only, IPv4 socket: curl to 127.0.0.1, bytes intact" {
	start_socksifyd -v -l '[::1]:0'
	local body=$BATS_TEST_TMPDIR/body
	through "socks5://[::1]:$PROXY_PORT" curl -sS --noproxy '*' --max-time 20 -o "$body" \
		"http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$(sha <"$body")" = "$PAYLOAD_SHA" ]
	expect_proxied "127.0.0.1:$HTTP_PORT" 1
}

@test "proxy on [::1] only, IPv4 socket: python3 socket.create_connection to 127.0.0.1, bytes intact" {
	start_socksifyd -v -l '[::1]:0'
	run through "socks5://[::1]:$PROXY_PORT" timeout 30 python3 "$HELPERS/evloop.py" get \
		127.0.0.1 "$HTTP_PORT" /payload.bin
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$PAYLOAD_SHA" ]
	expect_proxied "127.0.0.1:$HTTP_PORT" 1
}

@test "proxy on [::1] only, IPv4 socket: ssh to 127.0.0.1 runs a command" {
	start_sshd
	start_socksifyd -v -l '[::1]:0'
	# No config but this line's: -F /dev/null, this test's key and known_hosts.
	run through "socks5://[::1]:$PROXY_PORT" timeout 30 ssh -F /dev/null \
		-o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$SSH_DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o ConnectTimeout=20 -o LogLevel=ERROR \
		-i "$SSH_DIR/user_key" -p "$SSH_PORT" "$(id -un)@127.0.0.1" \
		'echo "evloop ssh $((6 * 7))"' # expanded by the remote shell
	echo "$output"
	[ "$status" -eq 0 ] || cat "$SSH_DIR/sshd.log"
	[ "$output" = "evloop ssh 42" ]
	expect_proxied "127.0.0.1:$SSH_PORT" 1
}

# v6only_through_v4_proxy: an IPv6-only HTTP server on ::1, socksifyd on
# 127.0.0.1 only, and evloop.py's AF_INET6 IPV6_V6ONLY socket to ::1 through
# it; the helper's two lines in lines[].
v6only_through_v4_proxy() {
	start_evhttp ::1
	start_socksifyd -v
	run through "socks5://127.0.0.1:$PROXY_PORT" timeout 30 python3 "$HELPERS/evloop.py" v6only \
		::1 "$HTTP_PORT" /payload.bin
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "proxy on 127.0.0.1 only, AF_INET6 socket with IPV6_V6ONLY: connect to ::1, bytes intact" {
	v6only_through_v4_proxy
	[ "${lines[0]}" = "$PAYLOAD_SHA" ]
	expect_proxied "[::1]:$HTTP_PORT" 1
}

# Reaching an IPv4 proxy must not turn the program's socket into another:
# an option of its own family still reads back after connect().
@test "proxy on 127.0.0.1 only, AF_INET6 socket with IPV6_V6ONLY: the option still reads back after connect" {
	v6only_through_v4_proxy
	[ "${lines[0]}" = "$PAYLOAD_SHA" ]
	[ "${lines[1]}" = "v6only=1" ]
	expect_proxied "[::1]:$HTTP_PORT" 1
}
