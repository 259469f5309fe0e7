#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# Alternatives for a hop (-x 'a|b', --pick order|spread; preload/failover.c):
# a first alternative that refuses, never answers or answers garbage is left
# for the next one within the same connect() and SOCKSIFY_TIMEOUT; spread
# divides a program's connections; every alternative down fails at once
# without dialling; the back-off holds for forked and exec()ed children; the
# engine (non-blocking connect), the supervisor and UDP move on too. Bodies
# are checked by sha256, proxies by what they logged or counted.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
	HELLO_SHA=$(sha <"$WWW/hello.txt")
	LIBLOG=$BATS_TEST_TMPDIR/lib.log
}

teardown() { stop_all; }

# start_failing MODE: tests/helpers/fakeproxy.py (close, garbage, silent);
# sets FAIL_PORT and FAIL_COUNT (a line per connection it accepted).
start_failing() {
	FAIL_COUNT=$BATS_TEST_TMPDIR/fail.$RANDOM.count
	: >"$FAIL_COUNT"
	start_py_port fakeproxy.py "$1" "$FAIL_COUNT"
	FAIL_PORT=$HELPER_PORT
}

# A port where nothing listens: bound, never listening, so nobody else takes
# it while the test runs (REFUSED_PORT; the holder is stopped in teardown).
hold_refused_port() {
	local pf=$BATS_TEST_TMPDIR/refused.$RANDOM.port
	python3 -c 'import socket,sys,time,os
s=socket.socket(); s.bind(("127.0.0.1",0))
open(sys.argv[1]+".tmp","w").write("%d\n" % s.getsockname()[1]); os.rename(sys.argv[1]+".tmp", sys.argv[1])
time.sleep(120)' "$pf" 3>&- &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	REFUSED_PORT=$(cat "$pf")
}

# fo URL ARGS...: tests/helpers/failover.py under the library, nothing
# excluded, its messages in $LIBLOG.
fo() {
	local url=$1
	shift
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$LIBLOG" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="$url" timeout -k 5 60 python3 "$HELPERS/failover.py" "$@"
}

sessions_ok() { grep -c 'cmd=connect.*outcome=ok' "$1" || true; }

# settle N LOG...: waits up to 3 s for the LOGs to hold N such lines in
# all (a session's line is written once the server has seen the close,
# after the client is gone).
settle() {
	local want=$1 i n f
	shift
	for ((i = 0; i < 30; i++)); do
		n=0
		for f in "$@"; do n=$((n + $(sessions_ok "$f"))); done
		[ "$n" -ge "$want" ] && return 0
		sleep 0.1
	done
	echo "$n sessions logged, want $want"
	return 1
}

@test "first alternative refused: the connect goes through the second, bytes intact, one line says why" {
	start_socksifyd --no-auth -v
	hold_refused_port
	run fo "socks5://127.0.0.1:$REFUSED_PORT|socks5://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO_SHA" ]
	grep -q "proxy 127.0.0.1:$REFUSED_PORT (alternative 1 of 2) cannot be reached: Connection refused; trying the next alternative" "$LIBLOG"
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=connect.*outcome=ok' 1
	# --trace names the alternative that carried it.
	: >"$LIBLOG"
	SOCKSIFY_LOG=trace run fo "socks5://127.0.0.1:$REFUSED_PORT|socks5://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
	grep -q "connect 127.0.0.1:$HTTP_PORT via 127.0.0.1:$PROXY_PORT (alternative 2 of 2): ok" "$LIBLOG" ||
		{ cat "$LIBLOG"; false; }
}

# The next alternative is dialled on the program's own socket. An IPv4 one
# cannot reach an IPv6 proxy there, and is not swapped for that (a dup()
# made before connect() would keep the old socket): the line says so, where
# it said the healthy proxy "closed the connection". The IPv6 alternative
# first: the socket is an IPv6 one from the start, which reaches both. An
# IPV6_V6ONLY socket may speak IPv4 from the start. --check opens a socket
# of each alternative's family.
@test "alternatives of both families: an IPv4 socket reaches the IPv4 ones (the IPv6 one said out of its reach), [::1] first reaches both, a V6ONLY socket too; --check checks each" {
	start_socksifyd --no-auth -v -l "[::1]:0"
	local p6=$PROXY_PORT
	start_socksifyd --no-auth -v
	local p4=$PROXY_PORT dead
	dead=$(free_port)
	run fo "socks5://127.0.0.1:$dead|socks5://[::1]:$p6" get "$HTTP_PORT"
	[ "$output" = ECONNREFUSED ]
	grep -qF "proxy [::1]:$p6 (alternative 2 of 2) has no address for this socket's family (the next alternative is dialled on the same socket: put an IPv6 one first to reach both); the program sees ECONNREFUSED" "$LIBLOG" ||
		{ cat "$LIBLOG"; false; }
	run fo "socks5://[::1]:$dead|socks5://127.0.0.1:$p4" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ] || { cat "$LIBLOG"; false; }
	run fo "socks5://[::1]:$dead|socks5://127.0.0.1:$p4" nonblock "$HTTP_PORT"
	[ "${lines[1]}" = "$HELLO_SHA" ] || { cat "$LIBLOG"; false; }
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok" 2
	# an IPV6_V6ONLY socket to a target on ::1, the IPv4 proxy second
	local v4port=$HTTP_PORT
	start_http ::1
	run fo "socks5://[::1]:$dead|socks5://127.0.0.1:$p4" v6only "$HTTP_PORT"
	[ "$output" = "1 $HELLO_SHA" ] || { cat "$LIBLOG"; false; }
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=\[::1\]:$HTTP_PORT.*outcome=ok"
	run --separate-stderr timeout 60 "$SOCKSIFY" --check -x "socks5://127.0.0.1:$dead|socks5://[::1]:$p6" \
		--check-target "127.0.0.1:$v4port"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "note: alternatives of both families, an IPv4 one first: a program's IPv4 socket reaches the IPv4 ones alone (put an IPv6 one first to reach both)" ]
	[[ "${lines[3]}" == "hop 1 of 1, alternative 2 of 2, socks5://[::1]:$p6: TCP to [::1]:$p6: ok ("* ]]
}

@test "first alternative accepts and never answers: given up after its share of SOCKSIFY_TIMEOUT, then the second" {
	start_socksifyd --no-auth -v
	start_failing silent
	SOCKSIFY_TIMEOUT=4 run fo "socks5h://127.0.0.1:$FAIL_PORT|socks5h://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO_SHA" ]
	# Two alternatives, 4 s: the silent one had 2 s, the second the rest.
	grep -q "proxy 127.0.0.1:$FAIL_PORT (alternative 1 of 2) did not finish the handshake within 2000 ms (its share of SOCKSIFY_TIMEOUT); trying the next alternative" "$LIBLOG"
}

@test "first alternative (HTTP) sends part of its status line and hangs up: a broken proxy, so the second carries the connection" {
	start_tinyproxy
	start_failing httppart
	run fo "http://127.0.0.1:$FAIL_PORT|http://127.0.0.1:$TP_PORT" get "$HTTP_PORT"
	cat "$LIBLOG"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO_SHA" ]
	grep -q "proxy 127.0.0.1:$FAIL_PORT (alternative 1 of 2) closed the connection during the handshake; trying the next alternative" "$LIBLOG"
	[ "$(wc -l <"$FAIL_COUNT")" -eq 1 ]
	grep -q "CONNECT.*127.0.0.1:$HTTP_PORT" "$TP_LOG"
}

@test "first alternative (SOCKS5) sends part of its CONNECT reply and hangs up: a broken proxy, so the second carries the connection" {
	start_socksifyd --no-auth -v
	start_failing s5part
	run fo "socks5://127.0.0.1:$FAIL_PORT|socks5://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	cat "$LIBLOG"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO_SHA" ]
	grep -q "proxy 127.0.0.1:$FAIL_PORT (alternative 1 of 2) closed the connection during the handshake; trying the next alternative" "$LIBLOG"
	# its log line comes when socksifyd has seen the close: wait for it
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=connect.*outcome=ok' 1
}

@test "hop 1 answers but its CONNECT to hop 2 never comes up: the line names hop 2, not hop 1's handshake" {
	start_socksifyd --no-auth -v
	start_failing s5stall
	SOCKSIFY_TIMEOUT=2 run fo "socks5://127.0.0.1:$FAIL_PORT,socks5://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	cat "$LIBLOG"
	[ "$output" = ETIMEDOUT ]
	grep -q "proxy 127.0.0.1:$FAIL_PORT (hop 1 of 2) answered, but its connection to the next hop, 127.0.0.1:$PROXY_PORT, did not come up within [0-9]* ms (.*SOCKSIFY_TIMEOUT): that hop may be down or unreachable from it" "$LIBLOG"
	# and a last hop's: it names the target
	SOCKSIFY_TIMEOUT=1 run fo "socks5://127.0.0.1:$FAIL_PORT" get "$HTTP_PORT"
	[ "$output" = ETIMEDOUT ]
	grep -q "proxy 127.0.0.1:$FAIL_PORT answered, but its connection to 127.0.0.1:$HTTP_PORT did not come up within 1000 ms (SOCKSIFY_TIMEOUT)" "$LIBLOG"
}

@test "first alternative answers garbage (HTTP): the second carries the connection" {
	start_socksifyd --no-auth -v
	start_failing garbage
	run fo "socks5://127.0.0.1:$FAIL_PORT|socks5://127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO_SHA" ]
	grep -q "does not speak SOCKS5: it answered in HTTP; trying the next alternative" "$LIBLOG"
	[ "$(wc -l <"$FAIL_COUNT")" -eq 1 ]
}

@test "a refusal of the target (reply 05) is no proxy failure: no other alternative is asked" {
	start_socksifyd --no-auth -v
	start_failing close
	hold_refused_port
	run fo "socks5://127.0.0.1:$PROXY_PORT|socks5://127.0.0.1:$FAIL_PORT" get "$REFUSED_PORT"
	[ "$output" = ECONNREFUSED ]
	[ "$(wc -l <"$FAIL_COUNT")" -eq 0 ]
	wait_for_line "$SOCKSIFYD_LOG" 30 'outcome=connection refused'
	# ... and the proxy stays alive: the next connect uses it again.
	run fo "socks5://127.0.0.1:$PROXY_PORT|socks5://127.0.0.1:$FAIL_PORT" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
	[ "$(wc -l <"$FAIL_COUNT")" -eq 0 ]
}

@test "--pick spread: 300 connections of one program divided among 3 proxies within 20%" {
	local logs=() ports=() i n
	for i in 1 2 3; do
		start_socksifyd --no-auth -v
		mv "$SOCKSIFYD_LOG" "$BATS_TEST_TMPDIR/sd$i.log"	# the server keeps writing it
		logs+=("$BATS_TEST_TMPDIR/sd$i.log")
		ports+=("$PROXY_PORT")
	done
	SOCKSIFY_PICK=spread run fo "socks5://127.0.0.1:${ports[0]}|socks5://127.0.0.1:${ports[1]}|socks5://127.0.0.1:${ports[2]}" many "$HTTP_PORT" 300
	[ "$output" = "ok 300" ]
	settle 300 "${logs[@]}"
	for i in 0 1 2; do
		n=$(sessions_ok "${logs[$i]}")
		echo "proxy $((i + 1)): $n sessions"
		[ "$n" -ge 80 ]
		[ "$n" -le 120 ]
	done
	# order (the default): every one through the first alive.
	local first second
	first=$(sessions_ok "${logs[0]}") second=$(sessions_ok "${logs[1]}")
	run fo "socks5://127.0.0.1:${ports[0]}|socks5://127.0.0.1:${ports[1]}" many "$HTTP_PORT" 20
	[ "$output" = "ok 20" ]
	wait_for_count "${logs[0]}" 30 'cmd=connect.*outcome=ok' $((first + 20))
	[ "$(sessions_ok "${logs[1]}")" -eq "$second" ]
}

@test "every alternative down: ECONNREFUSED at once (not after the 1 s back-off), nothing dialled while the back-off runs, one line" {
	local a count_a ms
	start_failing close
	a=$FAIL_PORT count_a=$FAIL_COUNT
	start_failing close
	run fo "socks5://127.0.0.1:$a|socks5://127.0.0.1:$FAIL_PORT" down "$HTTP_PORT" 50
	echo "$output"
	[[ "$output" =~ ^refused\ 50\ later-max-ms\ ([0-9]+)\.[0-9]+$ ]]
	ms=${BASH_REMATCH[1]}
	# The first connect tried both; the 49 after it dialled nothing, and
	# none of them waited (the slowest, in ms).
	[ "$(wc -l <"$count_a")" -eq 1 ]
	[ "$(wc -l <"$FAIL_COUNT")" -eq 1 ]
	[ "$ms" -lt 500 ]
	grep -q 'every alternative of hop 1 is down after failing; the first is tried again in [0-9]* ms; the program sees ECONNREFUSED' "$LIBLOG"
	[ "$(grep -c 'every alternative of hop 1 is down' "$LIBLOG")" -eq 1 ]
}

@test "the back-off is shared with forked and exec()ed children" {
	start_socksifyd --no-auth -v
	start_failing close
	run fo "socks5://127.0.0.1:$FAIL_PORT|socks5://127.0.0.1:$PROXY_PORT" fork "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$HELLO_SHA" ]
	[ "${lines[1]}" = "$HELLO_SHA" ]
	[ "${lines[2]}" = "$HELLO_SHA" ]
	# Only the parent's first connect tried the failing proxy.
	[ "$(wc -l <"$FAIL_COUNT")" -eq 1 ]
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=connect.*outcome=ok' 3
}

@test "a non-blocking connect (the engine) moves on too: EINPROGRESS, then writable, SO_ERROR 0, bytes intact" {
	start_socksifyd --no-auth -v
	start_failing silent
	SOCKSIFY_TIMEOUT=2 run fo "socks5://127.0.0.1:$FAIL_PORT|socks5://127.0.0.1:$PROXY_PORT" nonblock "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = einprogress ]
	[ "${lines[1]}" = "$HELLO_SHA" ]
	grep -q "proxy 127.0.0.1:$FAIL_PORT (alternative 1 of 2) did not finish the handshake within 1000 ms" "$LIBLOG"
}

@test "the supervisor moves on: static busybox wget, first alternative refused" {
	command -v file >/dev/null || skip "file is not installed"
	local b=
	for b in /bin/busybox "$(command -v busybox || true)"; do
		[ -x "$b" ] && file -L "$b" | grep -q 'statically linked' && break
		b=
	done
	[ -n "$b" ] || skip "no statically linked busybox (busybox-static)"
	"$BUILD/tests/supcheck" probe >/dev/null 2>&1 || true
	start_socksifyd --no-auth -v
	start_failing close
	run "$SOCKSIFY" -e none --mode seccomp -x "socks5://127.0.0.1:$FAIL_PORT|socks5://127.0.0.1:$PROXY_PORT" \
		-- "$b" wget -q -O "$BATS_TEST_TMPDIR/got" "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$status" -eq 0 ] || { echo "$output"; [ "$status" -ne 125 ] || skip "$output"; false; }
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	[ "$(wc -l <"$FAIL_COUNT")" -eq 1 ]
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=connect.*outcome=ok' 1
}

@test "UDP ASSOCIATE moves on: the first alternative refused, datagrams through the second" {
	start_socksifyd --no-auth -v
	hold_refused_port
	local pf=$BATS_TEST_TMPDIR/udpecho.port
	python3 "$HELPERS/bindudp.py" echo 127.0.0.1 "$pf" "$BATS_TEST_TMPDIR/echo.log" from 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	run env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$REFUSED_PORT|socks5://127.0.0.1:$PROXY_PORT" \
		timeout -k 5 30 python3 "$HELPERS/udpcheck.py" once 127.0.0.1 "$(cat "$pf")"
	[ "$output" = ok ]
	wait_for_line "$SOCKSIFYD_LOG" 30 'cmd=udp-associate'
	grep -q "proxy 127.0.0.1:$REFUSED_PORT (alternative 1 of 2) cannot be reached" "$BATS_TEST_TMPDIR/lib.log"
}

@test "socksify: --pick and alternatives are checked (exit 125 with the reason), --check says which alternative failed" {
	run "$SOCKSIFY" --pick fastest true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: --pick fastest: not order or spread" ]
	SOCKSIFY_PICK=random run "$SOCKSIFY" -x socks5://127.0.0.1:1 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: SOCKSIFY_PICK random: not order or spread" ]
	run "$SOCKSIFY" -x 'socks5://127.0.0.1:1|http://127.0.0.1:2' true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: proxy socks5://127.0.0.1:1|http://127.0.0.1:2: alternative 2: alternatives of one hop must share a scheme" ]
	run "$SOCKSIFY" -x 'socks5://127.0.0.1:1|' true
	[ "$status" -eq 125 ]
	[[ "$output" == "socksify: proxy socks5://127.0.0.1:1|: alternative 2: "* ]]
	start_socksifyd --no-auth -v
	hold_refused_port
	run "$SOCKSIFY" --check -x "socks5://127.0.0.1:$REFUSED_PORT|socks5://127.0.0.1:$PROXY_PORT" \
		--check-target "127.0.0.1:$HTTP_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hop 1 of 1, alternative 1 of 2, socks5://127.0.0.1:$REFUSED_PORT: TCP to 127.0.0.1:$REFUSED_PORT: FAILED: Connection refused"* ]]
	[[ "$output" == *"hop 1 of 1, alternative 2 of 2, socks5://127.0.0.1:$PROXY_PORT: SOCKS5, no authentication, takes pipelined handshakes; CONNECT 127.0.0.1:$HTTP_PORT: ok"* ]]
	[[ "$output" == *"ok: the chain works"* ]]
}

@test "a slow target is no proxy failure: the connect waits its whole SOCKSIFY_TIMEOUT on the first alternative, lock-step or pipelined, nothing is marked down" {
	local a b
	start_socksifyd --no-auth -v
	a=$PROXY_PORT
	mv "$SOCKSIFYD_LOG" "$BATS_TEST_TMPDIR/a.log"
	start_socksifyd --no-auth -v
	b=$PROXY_PORT
	# A target whose listen queue is full: its SYNs are dropped.
	local pf=$BATS_TEST_TMPDIR/bh.port
	python3 -c 'import socket,sys,time,os
l=socket.socket(); l.bind(("127.0.0.1",0)); l.listen(0)
fill=[]
for _ in range(4):
    s=socket.socket(); s.setblocking(False); s.connect_ex(l.getsockname()); fill.append(s)
open(sys.argv[1]+".tmp","w").write("%d\n" % l.getsockname()[1]); os.rename(sys.argv[1]+".tmp", sys.argv[1])
time.sleep(60)' "$pf" 3>&- &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	SOCKSIFY_TIMEOUT=2 run fo "socks5://127.0.0.1:$a|socks5://127.0.0.1:$b" get "$(cat "$pf")"
	[ "$output" = ETIMEDOUT ]
	! grep -q 'trying the next alternative' "$LIBLOG" || false
	# Pipelined the same: socksifyd's method reply comes at once, while
	# its connect is under way (held for the outcome, the first
	# alternative passed for dead and the second was asked).
	SOCKSIFY_PIPELINE=on SOCKSIFY_TIMEOUT=2 run fo "socks5://127.0.0.1:$a|socks5://127.0.0.1:$b" get "$(cat "$pf")"
	[ "$output" = ETIMEDOUT ]
	! grep -q 'trying the next alternative' "$LIBLOG" || false
	# The second was never asked; the first serves the next connect.
	[ "$(grep -c 'cmd=connect' "$SOCKSIFYD_LOG")" -eq 0 ]
	run fo "socks5://127.0.0.1:$a|socks5://127.0.0.1:$b" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
	wait_for_line "$BATS_TEST_TMPDIR/a.log" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "--pick spread over a chain with alternatives at both hops: every pair of proxies is used" {
	local logs=() ports=() i
	for i in 1 2 3 4; do
		start_socksifyd --no-auth -v
		mv "$SOCKSIFYD_LOG" "$BATS_TEST_TMPDIR/sd$i.log"
		logs+=("$BATS_TEST_TMPDIR/sd$i.log")
		ports+=("$PROXY_PORT")
	done
	SOCKSIFY_PICK=spread run fo "socks5://127.0.0.1:${ports[0]}|socks5://127.0.0.1:${ports[1]},socks5://127.0.0.1:${ports[2]}|socks5://127.0.0.1:${ports[3]}" many "$HTTP_PORT" 40
	[ "$output" = "ok 40" ]
	settle 80 "${logs[@]}"
	for i in 0 1 2 3; do
		n=$(sessions_ok "${logs[$i]}")
		echo "proxy $((i + 1)): $n sessions"
		[ "$n" -eq 20 ]
	done
	# Each first hop reached each second hop.
	for i in 0 1; do
		grep -q "target=127\.0\.0\.1:${ports[2]}.*outcome=ok" "${logs[$i]}"
		grep -q "target=127\.0\.0\.1:${ports[3]}.*outcome=ok" "${logs[$i]}"
	done
	# --trace names the pair each connection took, as the proxies saw it.
	: >"$LIBLOG"
	SOCKSIFY_LOG=trace SOCKSIFY_PICK=spread run fo "socks5://127.0.0.1:${ports[0]}|socks5://127.0.0.1:${ports[1]},socks5://127.0.0.1:${ports[2]}|socks5://127.0.0.1:${ports[3]}" many "$HTTP_PORT" 40
	[ "$output" = "ok 40" ]
	for i in 0 1; do
		n=$(grep -c "via 127\.0\.0\.1:${ports[$i]} (alternative $((i + 1)) of 2) -> 127\.0\.0\.1:${ports[$((i + 2))]} (alternative $((i + 1)) of 2): ok\|via 127\.0\.0\.1:${ports[$i]} (alternative $((i + 1)) of 2) -> 127\.0\.0\.1:${ports[$((3 - i))]} (alternative $((2 - i)) of 2): ok" "$LIBLOG")
		echo "first hop $((i + 1)): $n traced"
		[ "$n" -eq 20 ]
	done
}

@test "a raw '|' in a password stays the password's: one proxy, not two" {
	printf 'u:p|q\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	start_socksifyd -u "$BATS_TEST_TMPDIR/users"
	run fo "socks5://u:p|q@127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
	run "$SOCKSIFY" -x "socks5://u:p|q@127.0.0.1:$PROXY_PORT" -e none curl -sS "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$output" = "hello through socks" ]
	# Alternatives with credentials: each with its scheme.
	hold_refused_port
	run fo "socks5://u:p|q@127.0.0.1:$REFUSED_PORT|socks5://u:p|q@127.0.0.1:$PROXY_PORT" get "$HTTP_PORT"
	[ "$output" = "$HELLO_SHA" ]
	! grep -q 'p|q' "$LIBLOG" || false
}
