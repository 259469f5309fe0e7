#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# Pipelined SOCKS5 handshakes (SOCKSIFY_PIPELINE, shared/client.c): the
# greeting offering one method, the credentials and the request leave in
# one write; what each server in the suites does with that; and the
# default (auto) pipelining only to the bundled socksifyd and to a server
# that said it reads a stream (a _STREAM method: socksifyd). A recording
# forwarder in front of the proxy shows how the handshake arrived.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
	HELLO_SHA=$(sha <"$WWW/hello.txt")
}

teardown() { stop_all; }

# record UPSTREAMPORT: tests/helpers/firstread.py in front of it; sets
# REC_PORT and REC_LOG (the hex of each connection's first chunk).
record() {
	REC_LOG=$BATS_TEST_TMPDIR/rec.$RANDOM.log
	: >"$REC_LOG"
	start_py_port firstread.py "$REC_LOG" "$1"
	REC_PORT=$HELPER_PORT
}

# get MODE URL: hello.txt's sha256 through URL with SOCKSIFY_PIPELINE=MODE.
get() {
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="$1" SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" \
		LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$2" timeout -k 5 30 \
		python3 "$HELPERS/failover.py" get "$HTTP_PORT"
}

req_hex() { echo "050100017f000001$(port_hex "$HTTP_PORT")"; }

@test "on: greeting, request in one write to socksifyd; with credentials, greeting, RFC 1929 and request; bytes intact" {
	printf 'bob:pw\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	start_socksifyd --no-auth
	record "$PROXY_PORT"
	run get on "socks5://127.0.0.1:$REC_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(head -n 1 "$REC_LOG")" = "050100$(req_hex)" ]
	stop_all
	start_http 127.0.0.1
	start_socksifyd -u "$BATS_TEST_TMPDIR/users"
	record "$PROXY_PORT"
	run get on "socks5://bob:pw@127.0.0.1:$REC_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(head -n 1 "$REC_LOG")" = "0501020103$(hex bob)02$(hex pw)$(req_hex)" ]
	# A wrong password: the pipelined request is never served.
	run get on "socks5://bob:nope@127.0.0.1:$REC_PORT"
	[ "$output" = EACCES ]
}

# many MODE URL N: N GETs of hello.txt, one connection each, in one process.
many() {
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="$1" SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" \
		LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$2" timeout -k 5 30 \
		python3 "$HELPERS/failover.py" many "$HTTP_PORT" "$3"
}

@test "auto (the default): lock-step to a socksifyd not heard yet, offering the stream twins (E0, E2); pipelined from the next connect on; off: the plain greeting every time" {
	printf 'bob:pw\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	start_socksifyd --no-auth
	record "$PROXY_PORT"
	run many auto "socks5://127.0.0.1:$REC_PORT" 3
	[ "$output" = "ok 3" ]
	[ "$(sed -n 1p "$REC_LOG")" = 050200e0 ]
	[ "$(sed -n 2p "$REC_LOG")" = "050100$(req_hex)" ]
	[ "$(sed -n 3p "$REC_LOG")" = "050100$(req_hex)" ]
	run many off "socks5://127.0.0.1:$REC_PORT" 2
	[ "$output" = "ok 2" ]
	[ "$(sed -n 4p "$REC_LOG")" = 050100 ]
	[ "$(sed -n 5p "$REC_LOG")" = 050100 ]
	# What a process learnt dies with it: a new one asks again.
	run get auto "socks5://127.0.0.1:$REC_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(sed -n 6p "$REC_LOG")" = 050200e0 ]
	stop_all
	start_http 127.0.0.1
	start_socksifyd -u "$BATS_TEST_TMPDIR/users"
	record "$PROXY_PORT"
	run many auto "socks5://bob:pw@127.0.0.1:$REC_PORT" 2
	[ "$output" = "ok 2" ]
	[ "$(sed -n 1p "$REC_LOG")" = 05030002e2 ]
	[ "$(sed -n 2p "$REC_LOG")" = "0501020103$(hex bob)02$(hex pw)$(req_hex)" ]
}

@test "auto: credentials in the URL, a socksifyd that takes no login: it picks 00: every connect lock-step, the password sent only after a method reply asked for it (never here), no error" {
	start_socksifyd --no-auth
	record "$PROXY_PORT"
	run many auto "socks5://bob:pw@127.0.0.1:$REC_PORT" 3
	[ "$output" = "ok 3" ]
	[ "$(cat "$REC_LOG")" = "$(printf '05030002e2\n%.0s' 1 2 3)" ]
	# Nothing to say: the library wrote no line at all.
	[ ! -s "$BATS_TEST_TMPDIR/lib.log" ]
}

@test "auto: a chain of two socksifyd, both hops in the first write once both have said they stream" {
	start_socksifyd --no-auth
	local second=$PROXY_PORT
	start_socksifyd --no-auth
	record "$PROXY_PORT"
	run many auto "socks5://127.0.0.1:$REC_PORT,socks5://127.0.0.1:$second" 2
	[ "$output" = "ok 2" ]
	[ "$(sed -n 1p "$REC_LOG")" = 050200e0 ]
	[ "$(sed -n 2p "$REC_LOG")" = "050100050100017f000001$(port_hex "$second")050100$(req_hex)" ]
}

# swap LIMIT [ALT]: a process connects through a socksifyd on a port it
# then leaves to microsocks (which drops a pipelined request), and
# connects twice more; LIMIT: what ends the stalled connect, "proxy"
# (SOCKSIFY_TIMEOUT=1, or 2 with ALT) or "program" (its own 1 s bound).
# ALT "alt": a second socksifyd as the proxy's alternative; "login": the
# first socksifyd takes a password, and a socksifyd that takes none
# replaces it instead of microsocks. Sets lines.
swap() {
	local port limit=(SOCKSIFY_TIMEOUT=1) url
	[ "$1" = program ] && limit=(FAILOVER_CONNECT_TIMEOUT=1)
	command -v microsocks >/dev/null || skip "microsocks is not installed (scripts/deps.sh test)"
	port=$(free_port)
	if [ "${2:-}" = alt ]; then
		start_socksifyd --no-auth -v
		ALT_LOG=$BATS_TEST_TMPDIR/alt.log
		mv "$SOCKSIFYD_LOG" "$ALT_LOG"
		limit=(SOCKSIFY_TIMEOUT=2)
	fi
	local alt=$PROXY_PORT first=(--no-auth) cred=
	if [ "${2:-}" = login ]; then
		printf 'bob:pw\n' >"$BATS_TEST_TMPDIR/users"
		chmod 600 "$BATS_TEST_TMPDIR/users"
		first=(-u "$BATS_TEST_TMPDIR/users")
		cred=bob:pw@
	fi
	start_socksifyd "${first[@]}" -l "127.0.0.1:$port"
	record "$port"
	url="socks5://${cred}127.0.0.1:$REC_PORT"
	[ "${2:-}" = alt ] && url="$url|socks5://127.0.0.1:$alt"
	env SOCKSIFY_EXCLUDE=none "${limit[@]}" LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" \
		timeout -k 5 40 python3 "$HELPERS/failover.py" swap "$HTTP_PORT" "$BATS_TEST_TMPDIR/swapped" \
		>"$BATS_TEST_TMPDIR/swap.out" 2>"$BATS_TEST_TMPDIR/swap.err" 3>&- &
	PIDS+=($!)
	local client=$!
	wait_for_line "$BATS_TEST_TMPDIR/swap.out" 100 '^[0-9a-f]{64}$'
	kill "$SOCKSIFYD_PID"
	wait "$SOCKSIFYD_PID" || true
	if [ "${2:-}" = login ]; then
		start_socksifyd --no-auth -l "127.0.0.1:$port"
	else
		microsocks -i 127.0.0.1 -p "$port" 3>&- >"$BATS_TEST_TMPDIR/microsocks.log" 2>&1 &
		PIDS+=($!)
		wait_for_port "$port" 50
	fi
	touch "$BATS_TEST_TMPDIR/swapped"
	wait "$client"
	run cat "$BATS_TEST_TMPDIR/swap.out"
}

@test "auto: a learnt hop that stalls (another server took its port) costs one connect, then lock-step again" {
	swap proxy
	[ "${lines[0]}" = "$HELLO_SHA" ]
	# Pipelined to microsocks, which drops the request: the timeout ...
	[ "${lines[1]}" = ETIMEDOUT ]
	grep -q "did not finish the handshake within 1000 ms" "$BATS_TEST_TMPDIR/swap.err"
	# ... and the next connect asks again, and microsocks picks 00.
	[ "${lines[2]}" = "$HELLO_SHA" ]
	[ "$(sed -n 1p "$REC_LOG")" = 050200e0 ]
	[ "$(sed -n 2p "$REC_LOG")" = "050100$(req_hex)" ]
	[ "$(sed -n 3p "$REC_LOG")" = 050200e0 ]
}

@test "auto: a learnt alternative that stalls: the next one within the connect, the first not marked down, and lock-step there next time" {
	swap proxy alt
	[ "${lines[0]}" = "$HELLO_SHA" ]
	# Pipelined to microsocks, it stalls for its share (1 s of 2), then
	# the second alternative (lock-step, never heard) serves the connect.
	[ "${lines[1]}" = "$HELLO_SHA" ]
	[ "${lines[2]}" = "$HELLO_SHA" ]
	grep -q "alternative 1 of 2) did not finish the handshake within 1000 ms (its share of SOCKSIFY_TIMEOUT); it was pipelined" "$BATS_TEST_TMPDIR/swap.err"
	wait_for_count "$ALT_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok" 1
	# Not marked down: the third connect tries it first, lock-step.
	[ "$(sed -n 1p "$REC_LOG")" = 050200e0 ]
	[ "$(sed -n 2p "$REC_LOG")" = "050100$(req_hex)" ]
	[ "$(sed -n 3p "$REC_LOG")" = 050200e0 ]
}

@test "auto: a learnt login hop whose server now takes none: that connect fails with a line that says why, the next asks again and works" {
	swap proxy login
	[ "${lines[0]}" = "$HELLO_SHA" ]
	[ "${lines[1]}" = EACCES ]
	grep -q "does not take a username and password any more (it did when it said it could take a pipelined handshake, SOCKSIFY_PIPELINE=auto; the next connect asks again)" "$BATS_TEST_TMPDIR/swap.err"
	[ "${lines[2]}" = "$HELLO_SHA" ]
	[ "$(sed -n 1p "$REC_LOG")" = 05030002e2 ]
	[ "$(sed -n 2p "$REC_LOG")" = "0501020103$(hex bob)02$(hex pw)$(req_hex)" ]
	[ "$(sed -n 3p "$REC_LOG")" = 05030002e2 ]
}

@test "auto: the same when the program gives up on the stalled connect first (its own timeout, then close())" {
	swap program
	[ "${lines[0]}" = "$HELLO_SHA" ]
	[ "${lines[1]}" = timeout ]
	[ "${lines[2]}" = "$HELLO_SHA" ]
	[ "$(sed -n 2p "$REC_LOG")" = "050100$(req_hex)" ]
	[ "$(sed -n 3p "$REC_LOG")" = 050200e0 ]
}

@test "auto with the bundled socksifyd: pipelined to it alone, never to a proxy a descendant picks (a nested socksify -x microsocks works)" {
	run "$SOCKSIFY" sh -c 'echo "${SOCKSIFY_PIPELINE:-unset}"; [ "$SOCKSIFY_PIPELINE_PROXY" = "$SOCKSIFY_PROXY" ] && echo same'
	[ "${lines[0]}" = unset ]
	[ "${lines[1]}" = same ]
	run "$SOCKSIFY" -x "socks5://127.0.0.1:$HTTP_PORT" sh -c 'echo "${SOCKSIFY_PIPELINE_PROXY:-unset}"'
	[ "$output" = unset ]
	run "$SOCKSIFY" curl -sS "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$output" = "hello through socks" ]
	start_microsocks
	run --separate-stderr "$SOCKSIFY" sh -c '"$0" -e none -x "socks5://127.0.0.1:$1" python3 "$2" get "$3"' \
		"$SOCKSIFY" "$PROXY_PORT" "$HELPERS/failover.py" "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
}

@test "on with credentials the server does not take: one line says so; a next hop's password is never sent ahead" {
	start_socksifyd --no-auth
	run get on "socks5://u:p@127.0.0.1:$PROXY_PORT"
	[ "$output" = EACCES ]
	grep -q "does not take a username and password (SOCKSIFY_PIPELINE=on offers nothing else" "$BATS_TEST_TMPDIR/lib.log"
	run get off "socks5://u:p@127.0.0.1:$PROXY_PORT"
	[ "$output" = "$HELLO_SHA" ]
	# A chain whose second hop has a password: the first write holds the
	# first hop's handshake alone.
	printf 'carol:hop2secret\n' >"$BATS_TEST_TMPDIR/users2"
	chmod 600 "$BATS_TEST_TMPDIR/users2"
	local first=$PROXY_PORT
	start_socksifyd -u "$BATS_TEST_TMPDIR/users2"
	record "$first"
	run get on "socks5://127.0.0.1:$REC_PORT,socks5://carol:hop2secret@127.0.0.1:$PROXY_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(head -n 1 "$REC_LOG")" = "050100050100017f000001$(port_hex "$PROXY_PORT")" ]
}

# auto_lockstep PORT: three connects of one process under auto through a
# recorder in front of PORT: each a lock-step greeting offering E0, which
# the server did not pick (or it would have been pipelined to).
auto_lockstep() {
	record "$1"
	run many auto "socks5://127.0.0.1:$REC_PORT" 3
	[ "$output" = "ok 3" ]
	[ "$(cat "$REC_LOG")" = "$(printf '050200e0\n%.0s' 1 2 3)" ]
}

@test "microsocks drops a pipelined request: on stalls to SOCKSIFY_TIMEOUT (ETIMEDOUT); auto works, lock-step every time" {
	start_microsocks
	SOCKSIFY_TIMEOUT=1 run get on "socks5://127.0.0.1:$PROXY_PORT"
	[ "$output" = ETIMEDOUT ]
	# the line says why, and what to do
	grep -q 'did not finish the handshake within 1000 ms (SOCKSIFY_TIMEOUT); it was pipelined (SOCKSIFY_PIPELINE=on), which a server that reads one message at a time (microsocks) never answers: auto, the default, asks first' "$BATS_TEST_TMPDIR/lib.log"
	auto_lockstep "$PROXY_PORT"
}

@test "on, microsocks first in a chain: both hops' handshakes in one write, so it stalls every time (ETIMEDOUT), never reading the next hop's greeting as its request (reply 08)" {
	start_socksifyd --no-auth
	local second=$PROXY_PORT
	start_microsocks
	SOCKSIFY_TIMEOUT=0.3 run env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE=on \
		SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT,socks5://127.0.0.1:$second" \
		timeout -k 5 30 python3 -c 'import errno,socket,sys
# connect() with a timeout: a non-blocking one, then poll(), the engine
# driving the handshake (there the two hops used to leave apart)
for i in range(12):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1]))); print("connected")
    except OSError as e:
        print(errno.errorcode.get(e.errno, e))
    s.close()' "$HTTP_PORT"
	echo "$output"
	[ "$(grep -c '^ETIMEDOUT$' <<<"$output")" = 12 ]
	! grep -q 'reply 08' "$BATS_TEST_TMPDIR/lib.log"
}

@test "auto, microsocks then socksifyd: the pipelined second hop is read out of delayed-ACK mode (TCP_QUICKACK), so microsocks's Nagle does not hold its CONNECT reply; off: never" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	local mode n
	start_socksifyd --no-auth
	local second=$PROXY_PORT
	start_microsocks
	for mode in auto off; do
		run strace -f -qq -e trace=setsockopt -o "$BATS_TEST_TMPDIR/trace.$mode" \
			env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="$mode" LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT,socks5://127.0.0.1:$second" \
			timeout -k 5 30 python3 "$HELPERS/failover.py" many "$HTTP_PORT" 4
		[ "$output" = "ok 4" ]
		n=$(grep -c 'TCP_QUICKACK, \[1\]' "$BATS_TEST_TMPDIR/trace.$mode" || true)
		echo "$mode: $n"
		# auto: the first connect is lock-step (it learns), the other three pipelined
		if [ "$mode" = auto ]; then [ "$n" = 3 ]; else [ "$n" = 0 ]; fi
	done
}

@test "danted takes a pipelined handshake; under auto it is not offered one" {
	start_danted
	run get on "socks5://127.0.0.1:$PROXY_PORT"
	[ "$output" = "$HELLO_SHA" ]
	auto_lockstep "$PROXY_PORT"
}

@test "ssh -D takes a pipelined handshake; under auto it is not offered one" {
	start_ssh_socks
	run get on "socks5://127.0.0.1:$SOCKS_PORT"
	[ "$output" = "$HELLO_SHA" ]
	auto_lockstep "$SOCKS_PORT"
}

@test "SOCKSIFY_PIPELINE with an unknown value: one line, then auto" {
	start_socksifyd --no-auth
	run get sometimes "socks5://127.0.0.1:$PROXY_PORT"
	[ "$output" = "$HELLO_SHA" ]
	grep -q 'SOCKSIFY_PIPELINE: unknown value "sometimes"; using auto' "$BATS_TEST_TMPDIR/lib.log"
}

@test "a chain of two socksifyd, on: both hops' handshakes leave in the first write; the bytes come through intact" {
	local first
	start_socksifyd --no-auth -v
	local second=$PROXY_PORT
	mv "$SOCKSIFYD_LOG" "$BATS_TEST_TMPDIR/second.log"
	start_socksifyd --no-auth
	first=$PROXY_PORT
	record "$first"
	run get on "socks5://127.0.0.1:$REC_PORT,socks5://127.0.0.1:$second"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(head -n 1 "$REC_LOG")" = "050100050100017f000001$(port_hex "$second")050100$(req_hex)" ]
	wait_for_line "$BATS_TEST_TMPDIR/second.log" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
	# off: the first hop's greeting alone.
	run get off "socks5://127.0.0.1:$REC_PORT,socks5://127.0.0.1:$second"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(sed -n 2p "$REC_LOG")" = 050100 ]
}

@test "tinyproxy (HTTP CONNECT) then socksifyd, on: the SOCKS5 hop's greeting and request go in one write behind the CONNECT; bytes intact; off: the greeting alone" {
	start_socksifyd --no-auth -v
	record "$PROXY_PORT"
	start_tinyproxy
	run get on "http://127.0.0.1:$TP_PORT,socks5://127.0.0.1:$REC_PORT"
	[ "$output" = "$HELLO_SHA" ]
	# what tinyproxy passed on once its CONNECT was answered: the whole
	# SOCKS5 handshake of the next hop, in one piece
	[ "$(head -n 1 "$REC_LOG")" = "050100$(req_hex)" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
	wait_for_line "$TP_LOG" 30 "CONNECT.*127\.0\.0\.1:$REC_PORT"
	run get off "http://127.0.0.1:$TP_PORT,socks5://127.0.0.1:$REC_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(sed -n 2p "$REC_LOG")" = 050100 ]
}
