#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# socksifyd --metrics (server/metrics.c, metrics_http.c): the Prometheus text
# checked against a known load (sessions by command and outcome, bytes to
# the byte, reply codes, failed logins, the handshake histogram, UDP
# associations, sessions open while they are), a slow scraper that cannot
# stall relaying, and the loopback caution of its listener.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
	USERS=$BATS_TEST_TMPDIR/users
	printf 'bob:pw\n' >"$USERS"
	chmod 600 "$USERS"
}

teardown() { stop_all; }

# start_metrics ARGS...: socksifyd with --metrics 127.0.0.1:0 and ARGS;
# sets PROXY_PORT and METRICS_PORT.
start_metrics() {
	start_socksifyd --metrics 127.0.0.1:0 "$@"
	wait_for_line "$SOCKSIFYD_LOG" 30 '^socksifyd: metrics on '
	METRICS_PORT=$(sed -n 's/^socksifyd: metrics on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SOCKSIFYD_LOG")
}

scrape() { curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" >"$BATS_TEST_TMPDIR/scrape"; }
# metric 'NAME{LABELS}': its value in the last scrape (empty when absent).
# (A label value may hold blanks: the value is what follows the last one.)
metric() { awk -v k="$1" '{ v = $NF; if (substr($0, 1, length($0) - length(v) - 1) == k) print v }' "$BATS_TEST_TMPDIR/scrape"; }

via() { curl -sS --max-time 10 --socks5 "$1@127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$2/payload.bin"; }

@test "metrics against a known load: sessions, bytes to the byte, replies, failed logins, histogram, UDP" {
	local i body hdr
	start_metrics -u "$USERS" -v
	for i in 1 2 3 4 5; do
		[ "$(via bob:pw "$HTTP_PORT" | sha)" = "$PAYLOAD_SHA" ]
	done
	run via bob:wrong "$HTTP_PORT"
	[ "$status" -ne 0 ]
	run via bob:wrong "$HTTP_PORT"
	[ "$status" -ne 0 ]
	run via bob:pw 1
	[ "$status" -ne 0 ]
	# One UDP association through the library, one datagram each way.
	local pf=$BATS_TEST_TMPDIR/echo.port
	python3 "$HELPERS/bindudp.py" echo 127.0.0.1 "$pf" "$BATS_TEST_TMPDIR/echo.log" from 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://bob:pw@127.0.0.1:$PROXY_PORT" \
		timeout -k 5 30 python3 "$HELPERS/udpcheck.py" once 127.0.0.1 "$(cat "$pf")"
	[ "$output" = ok ]
	wait_for_count "$SOCKSIFYD_LOG" 50 'outcome=' 9
	scrape
	cat "$BATS_TEST_TMPDIR/scrape"
	[ "$(metric 'socksifyd_sessions_total{cmd="connect",outcome="ok"}')" = 5 ]
	[ "$(metric 'socksifyd_sessions_total{cmd="connect",outcome="connection refused"}')" = 1 ]
	[ "$(metric 'socksifyd_sessions_total{cmd="none",outcome="auth failed"}')" = 2 ]
	[ "$(metric 'socksifyd_sessions_total{cmd="udp-associate",outcome="ok"}')" = 1 ]
	[ "$(metric socksifyd_auth_failures_total)" = 2 ]
	[ "$(metric 'socksifyd_replies_total{code="00"}')" = 6 ]
	[ "$(metric 'socksifyd_replies_total{code="05"}')" = 1 ]
	[ "$(metric 'socksifyd_replies_total{code="01"}')" = 0 ]
	[ "$(metric socksifyd_handshake_seconds_count)" = 6 ]
	[ "$(metric 'socksifyd_handshake_seconds_bucket{le="+Inf"}')" = 6 ]
	[ "$(metric socksifyd_sessions_active)" = 0 ]
	[ "$(metric socksifyd_udp_associations_total)" = 1 ]
	[ "$(metric socksifyd_udp_associations_active)" = 0 ]
	# Bytes: exactly what the session lines say each way, summed.
	body=$(awk -F'\t' '{ for (i = 1; i <= NF; i++) if ($i ~ /^t2c=/) s += substr($i, 5) } END { print s + 0 }' "$SOCKSIFYD_LOG")
	hdr=$(awk -F'\t' '{ for (i = 1; i <= NF; i++) if ($i ~ /^c2t=/) s += substr($i, 5) } END { print s + 0 }' "$SOCKSIFYD_LOG")
	[ "$body" -gt $((5 * 1048576)) ]
	[ "$(metric 'socksifyd_bytes_total{direction="target_to_client"}')" = "$body" ]
	[ "$(metric 'socksifyd_bytes_total{direction="client_to_target"}')" = "$hdr" ]
	[ "$(metric socksifyd_open_fds)" -gt 0 ]
	[ "$(metric socksifyd_open_fds)" -lt "$(metric socksifyd_max_fds)" ]
}

@test "metrics while sessions are open: the gauge, and bytes counted as they move" {
	start_metrics -u "$USERS"
	python3 "$HELPERS/metricsprobe.py" hold "$PROXY_PORT" "$HTTP_PORT" 3 bob pw "$BATS_TEST_TMPDIR/go" \
		>"$BATS_TEST_TMPDIR/hold.out" 2>&1 &
	PIDS+=($!)
	wait_for_line "$BATS_TEST_TMPDIR/hold.out" 100 '^held 3$'
	scrape
	[ "$(metric socksifyd_sessions_active)" = 3 ]
	# Each has read 64 KiB of its answer through the relay already.
	[ "$(metric 'socksifyd_bytes_total{direction="target_to_client"}')" -ge $((3 * 65536)) ]
	[ "$(metric 'socksifyd_sessions_total{cmd="connect",outcome="ok"}')" = "" ]
	touch "$BATS_TEST_TMPDIR/go"
	for i in $(seq 50); do
		scrape
		[ "$(metric socksifyd_sessions_active)" = 0 ] && break
		sleep 0.1
	done
	[ "$(metric socksifyd_sessions_active)" = 0 ]
}

@test "a scraper that stalls never stalls relaying: 16 half requests and one that never reads, a 1 MiB download meanwhile" {
	start_metrics -u "$USERS" --workers 1
	python3 "$HELPERS/metricsprobe.py" stall "$METRICS_PORT" 16 >"$BATS_TEST_TMPDIR/stall.out" 2>&1 &
	PIDS+=($!)
	wait_for_line "$BATS_TEST_TMPDIR/stall.out" 50 '^stalled 17$'
	# Relaying goes on, bytes intact, while every scrape slot is taken.
	[ "$(via bob:pw "$HTTP_PORT" | sha)" = "$PAYLOAD_SHA" ]
	[ "$(via bob:pw "$HTTP_PORT" | sha)" = "$PAYLOAD_SHA" ]
	# A scrape beyond the limit is closed at once; the stalled ones at the
	# deadline (5 s), the one that never read with its answer cut.
	wait_for_line "$BATS_TEST_TMPDIR/stall.out" 30 '^extra '
	grep -qx 'extra EOF' "$BATS_TEST_TMPDIR/stall.out"
	wait_for_line "$BATS_TEST_TMPDIR/stall.out" 200 '^closed '
	cat "$BATS_TEST_TMPDIR/stall.out"
	grep -qE '^closed 17 max-ms [0-9]+$' "$BATS_TEST_TMPDIR/stall.out"
	# ... and then scraping works again.
	scrape
	[ "$(metric 'socksifyd_sessions_total{cmd="connect",outcome="ok"}')" = 2 ]
}

@test "metrics answer GET and HEAD /metrics only: 404 elsewhere, 405 (with Allow) for another method, 400 for no HTTP or a NUL, 431 for a head past 4 KiB" {
	start_metrics
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT/"
	[ "$output" = 404 ]
	run curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$METRICS_PORT/metrics"
	[[ "$output" == "HTTP/1.1 405 "* ]]
	grep -q '^Allow: GET, HEAD' <<<"$output"
	# HEAD: the headers GET would get, no body (RFC 9110: a GET server has HEAD)
	run curl -s -I "http://127.0.0.1:$METRICS_PORT/metrics"
	[[ "$output" == "HTTP/1.1 200 OK"* ]]
	len=$(sed -n 's/^Content-Length: \([0-9]*\).*/\1/p' <<<"$output")
	[ "$len" -gt 100 ]
	run python3 -c 'import socket,sys
def ask(b):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(3)
    s.sendall(b); got = b""
    while True:
        d = s.recv(65536)
        if not d: break
        got += d
    return got
h = ask(b"HEAD /metrics HTTP/1.1\r\n\r\n")
print(h.split(b"\r\n")[0].decode(), h.endswith(b"\r\n\r\n"))
print(ask(b"GET /met\0rics HTTP/1.1\r\n\r\n").split(b"\r\n")[0].decode())
print(ask(b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\n").split(b"\r\n")[0].decode())
print(ask(b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 200000 + b"\r\n\r\n").split(b"\r\n")[0].decode())' "$METRICS_PORT"
	echo "$output"
	[ "${lines[0]}" = "HTTP/1.1 200 OK True" ]
	[ "${lines[1]}" = "HTTP/1.1 400 Bad Request" ]
	[ "${lines[2]}" = "HTTP/1.1 431 Request Header Fields Too Large" ]
	# 200 KB of head: the answer survives (the server reads to the FIN)
	[ "${lines[3]}" = "HTTP/1.1 431 Request Header Fields Too Large" ]
	run curl -s -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$METRICS_PORT/metrics?x=1"
	[ "$output" = "200 text/plain; version=0.0.4; charset=utf-8" ]
	run python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"hello\r\n\r\n")
print(s.recv(100).split(b"\r\n")[0].decode())' "$METRICS_PORT"
	[ "$output" = "HTTP/1.1 400 Bad Request" ]
}

@test "--metrics off loopback needs --no-auth (exit 2, one line); a bad address exits 2; a port in use exits 1 naming --metrics" {
	run "$SOCKSIFYD" -l 127.0.0.1:0 -u "$USERS" --metrics 0.0.0.0:0
	[ "$status" -eq 2 ]
	[[ "$output" == *"refusing --metrics on 0.0.0.0:"*"give --no-auth to serve them anyway"* ]]
	run "$SOCKSIFYD" --metrics 127.0.0.1:99999
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad metrics address '127.0.0.1:99999'"* ]]
	run "$SOCKSIFYD" --metrics :9100
	[ "$status" -eq 2 ]
	[[ "$output" == *"one address, not every one"* ]]
	# a port in use: exit 1, and the line says it is --metrics's
	run "$SOCKSIFYD" -l 127.0.0.1:0 --metrics "127.0.0.1:$HTTP_PORT"
	[ "$status" -eq 1 ]
	[ "$output" = "socksifyd: --metrics: bind 127.0.0.1:$HTTP_PORT: Address already in use" ]
	start_socksifyd -u "$USERS" --no-auth --metrics 0.0.0.0:0
	wait_for_line "$SOCKSIFYD_LOG" 30 '^socksifyd: metrics on 0\.0\.0\.0:[0-9]+$'
}
