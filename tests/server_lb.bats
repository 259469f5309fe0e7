#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# socksifyd behind a load balancer: the PROXY protocol (--proxy-protocol),
# with Debian's HAProxy in TCP mode in front (send-proxy-v2 and send-proxy),
# and with raw headers where a balancer would not send them.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
	HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
}
teardown() { stop_all; }

# start_haproxy BACKEND-OPTIONS PORT...: HAProxy in TCP mode, one frontend
# per server port given, each with its own free port (HA_PORTS, in order),
# health-checked with the PROXY protocol's LOCAL command.
start_haproxy() {
	local opts=$1 cfg=$BATS_TEST_TMPDIR/haproxy.cfg port i=0 fp
	shift
	[ -x "$HAPROXY" ] || skip "haproxy is not installed (scripts/deps.sh test)"
	HA_PORTS=()
	printf 'global\n\tmaxconn 4000\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 60s\n\ttimeout server 60s\n' >"$cfg"
	for port in "$@"; do
		fp=$(free_port)
		HA_PORTS+=("$fp")
		printf 'frontend fe%d\n\tbind 127.0.0.1:%d\n\tdefault_backend be%d\n' "$i" "$fp" "$i" >>"$cfg"
		printf 'backend be%d\n\tserver s%d 127.0.0.1:%d %s check check-send-proxy inter 500ms\n' \
			"$i" "$i" "$port" "$opts" >>"$cfg"
		i=$((i + 1))
	done
	"$HAPROXY" -db -f "$cfg" 3>&- >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 &
	PIDS+=($!)
	for fp in "${HA_PORTS[@]}"; do
		wait_listen "$fp" 50
	done
}

# start_haproxy_pool BACKEND-OPTIONS PORT...: HAProxy in TCP mode with one
# frontend (HA_PORT) balancing round-robin over every server port given,
# health-checked every 0.2 s with a LOCAL header; a connection to a server
# that is gone is retried on another (redispatch).
start_haproxy_pool() {
	local opts=$1 cfg=$BATS_TEST_TMPDIR/haproxy.cfg port i=0
	shift
	[ -x "$HAPROXY" ] || skip "haproxy is not installed (scripts/deps.sh test)"
	HA_PORT=$(free_port)
	printf 'global\n\tmaxconn 4000\ndefaults\n\tmode tcp\n\ttimeout connect 2s\n\ttimeout client 60s\n\ttimeout server 60s\n\tretries 3\n\toption redispatch\n' >"$cfg"
	printf 'frontend fe\n\tbind 127.0.0.1:%d\n\tdefault_backend be\nbackend be\n\tbalance roundrobin\n' "$HA_PORT" >>"$cfg"
	for port in "$@"; do
		printf '\tserver s%d 127.0.0.1:%d %s check check-send-proxy inter 200ms fall 1\n' \
			"$i" "$port" "$opts" >>"$cfg"
		i=$((i + 1))
	done
	"$HAPROXY" -db -f "$cfg" 3>&- >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 &
	PIDS+=($!)
	wait_listen "$HA_PORT" 50
}

# via PORT SOURCE: the payload's sha256 through the SOCKS5 proxy at
# 127.0.0.1:PORT, the client bound to SOURCE.
via() {
	curl -sS --max-time 10 --interface "$2" --socks5-hostname "127.0.0.1:$1" \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" 2>&1 | sha
}

@test "behind HAProxy (send-proxy-v2, send-proxy): socksifyd logs, and rules by, the client's own address" {
	# Its clients come from anywhere: the host is protected as off
	# loopback, and the test's targets (127.0.0.1) are allowed by name.
	start_socksifyd -v --proxy-protocol --no-auth --deny 'from 127.0.0.3' --allow 'to 127.0.0.1/32'
	start_haproxy send-proxy-v2 "$PROXY_PORT"
	local v2=${HA_PORTS[0]}
	[ "$(via "$v2" 127.0.0.2)" = "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "client=127\.0\.0\.2:[0-9]+	.*target=127\.0\.0\.1:$HTTP_PORT	.*outcome=ok" 1
	# A client the rules deny is denied by its own address, not HAProxy's.
	[ "$(via "$v2" 127.0.0.3)" != "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "client=127\.0\.0\.3:[0-9]+	.*outcome=client denied" 1
	# HAProxy's health checks (a LOCAL header, every 0.5 s) pass: a server
	# they fail is marked DOWN after three; none is a bad header.
	sleep 2
	cat "$BATS_TEST_TMPDIR/haproxy.log"
	! grep -q 'is DOWN' "$BATS_TEST_TMPDIR/haproxy.log" || false
	! grep -q 'outcome=bad proxy header' "$SOCKSIFYD_LOG" || false
	stop_all
	PIDS=()
	start_http 127.0.0.1
	start_socksifyd -v --proxy-protocol --no-auth --allow 'to 127.0.0.1/32'
	start_haproxy send-proxy "$PROXY_PORT"
	[ "$(via "${HA_PORTS[0]}" 127.0.0.4)" = "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "client=127\.0\.0\.4:[0-9]+	.*outcome=ok" 1
}

@test "--proxy-protocol: no header, a bad one, one naming no client, or one from outside --proxy-protocol-from closes the connection" {
	start_socksifyd -v --proxy-protocol --no-auth
	# A SOCKS5 client straight in: its greeting is no header.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100
	[ "${lines[0]}" = "EOF" ]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(hex $'PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n')"
	[ "${lines[0]}" = "EOF" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "outcome=bad proxy header" 2
	# A good header: the session goes on with the client it names.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(hex $'PROXY TCP4 192.0.2.7 127.0.0.1 4242 1080\r\n')050100"
	[ "${lines[0]}" = "0500" ]
	# No client named (a health check's LOCAL, UNKNOWN): the balancer's own
	# address must not stand in for one, so nothing more is served.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(hex $'PROXY UNKNOWN\r\n')050100"
	[ "${lines[0]}" = "EOF" ]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "0d0a0d0a000d0a515549540a20000000050100"
	[ "${lines[0]}" = "EOF" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "outcome=no client in proxy header" 2
	stop_all
	PIDS=()
	start_socksifyd --proxy-protocol --no-auth --proxy-protocol-from 10.0.0.0/8 --proxy-protocol-from 127.0.0.2/32
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(hex $'PROXY TCP4 192.0.2.7 127.0.0.1 4242 1080\r\n')050100"
	[ "${lines[0]}" != "0500" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "client=127\.0\.0\.1:[0-9]+	.*outcome=untrusted balancer" 1
	run -2 --separate-stderr "$SOCKSIFYD" --proxy-protocol-from 10.0.0.0/8
	[ "$stderr" = "socksifyd: proxy-protocol-from without proxy-protocol (try 'socksifyd --help')" ]
	run -2 --separate-stderr "$SOCKSIFYD" --proxy-protocol --proxy-protocol-from 10.0.0.0/33
	[[ "$stderr" == "socksifyd: proxy-protocol-from: bad network '10.0.0.0/33': "* ]]
}

@test "scale-out: HAProxy (send-proxy-v2, checks) before three socksifyd, 1,000 sessions from 4 client addresses, one instance SIGKILLed mid-run: only its sessions in flight may fail" {
	local pf=$BATS_TEST_TMPDIR/echo.port progress=$BATS_TEST_TMPDIR/progress ports=() pids=() logs=() i
	python3 "$HELPERS/echod.py" 127.0.0.1 "$pf" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	for i in 0 1 2; do
		start_socksifyd -v --proxy-protocol --no-auth --allow 'to 127.0.0.1/32' --workers 1
		mv "$SOCKSIFYD_LOG" "$BATS_TEST_TMPDIR/sd$i.log"
		ports+=("$PROXY_PORT")
		pids+=("$SOCKSIFYD_PID")
		logs+=("$BATS_TEST_TMPDIR/sd$i.log")
	done
	start_haproxy_pool send-proxy-v2 "${ports[@]}"
	: >"$progress"
	python3 "$HELPERS/lbload.py" "$HA_PORT" "$(cat "$pf")" 4 250 16384 "$progress" \
		3>&- >"$BATS_TEST_TMPDIR/load.out" 2>&1 &
	local load=$!
	PIDS+=($load)
	wait_for_line "$progress" 300 '^done 300$'
	kill -9 "${pids[1]}"
	timeout 120 tail --pid="$load" -f /dev/null
	cat "$BATS_TEST_TMPDIR/load.out"
	local ok failed
	ok=$(sed -n 's/^ok=\([0-9]*\) failed=\([0-9]*\)$/\1/p' "$BATS_TEST_TMPDIR/load.out")
	failed=$(sed -n 's/^ok=\([0-9]*\) failed=\([0-9]*\)$/\2/p' "$BATS_TEST_TMPDIR/load.out")
	[ "$((ok + failed))" -eq 1000 ]
	# One session at a time per client thread: at most 4 in flight, and
	# only those on the killed instance can be cut.
	[ "$failed" -le 4 ]
	# The survivors served the rest, naming each client by its own
	# address, never HAProxy's; every session there is whole.
	local served=0 n
	for i in 0 2; do
		n=$(grep -c "target=127\.0\.0\.1:$(cat "$pf")	.*outcome=ok" "${logs[i]}" || true)
		echo "instance $i: $n sessions"
		[ "$n" -gt 0 ]
		served=$((served + n))
		! grep "target=127\.0\.0\.1:$(cat "$pf")" "${logs[i]}" | grep -v "client=127\.0\.0\.[2-5]:" || false
		! grep "target=127\.0\.0\.1:$(cat "$pf")" "${logs[i]}" | grep -v "outcome=ok" || false
	done
	# What the killed one served before it died is the rest of ok.
	[ "$served" -ge $((ok - 300)) ]
	for i in 2 3 4 5; do
		grep -q "client=127\.0\.0\.$i:" "${logs[0]}" "${logs[2]}"
	done
}

@test "--proxy-protocol: the host is protected and --users or --no-auth required (its clients come from anywhere); BIND and UDP get 07; a stalled header times out; SIGHUP cannot turn it off" {
	run -2 --separate-stderr "$SOCKSIFYD" -l 127.0.0.1:0 --proxy-protocol
	[ "$stderr" = "socksifyd: refusing --proxy-protocol without --users (a balancer's clients come from anywhere: an open relay); give --no-auth to run it anyway" ]
	printf 'proxy-protocol\nno-auth\nverbose\nhandshake-timeout 500\n' >"$BATS_TEST_TMPDIR/conf"
	start_socksifyd --config "$BATS_TEST_TMPDIR/conf"
	local hdr
	hdr=$(hex $'PROXY TCP4 198.51.100.9 127.0.0.1 4242 1080\r\n')
	# A CONNECT to the host itself, from a client out there: 02.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "${hdr}050100" "050100017f000001$(port_hex "$HTTP_PORT")"
	echo "$output"
	# The method reply, then the request's reply (in one read or two).
	[[ "$(printf '%s' "$output" | tr -d '\n')" == 05000502* ]]
	# BIND and UDP ASSOCIATE would listen where only the balancer reaches.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "${hdr}050100" "05020001000000000000"
	[[ "$(printf '%s' "$output" | tr -d '\n')" == 05000507* ]]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "${hdr}050100" "05030001000000000000"
	[[ "$(printf '%s' "$output" | tr -d '\n')" == 05000507* ]]
	# Half a header, then nothing: the handshake timeout (0.5 s) ends it.
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(hex 'PROXY TCP4 198.51')"
	[ "${lines[0]}" = "EOF" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "outcome=handshake timeout" 1
	printf 'no-auth\n' >"$BATS_TEST_TMPDIR/conf"
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$SOCKSIFYD_LOG" 50 'reload failed, configuration kept: turning --proxy-protocol off needs a restart'
}
