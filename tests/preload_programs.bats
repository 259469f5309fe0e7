#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# libsocksify.so against servers that fail on purpose (tests/bin/faultd.c),
# against SOCKS5 servers nobody here wrote (microsocks, dante's danted), and
# inside real programs that take the unusual paths to a TCP connection.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

PROGS=$HELPERS/progs.py

# probe URL ARGS...: netprobe.py inside the library, proxy URL, no exclusions.
probe() {
	local url=$1
	shift
	env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" \
		timeout 20 python3 "$HELPERS/netprobe.py" "$@"
}

# --- Replies and misbehaviour (faultd) -------------------------------------

@test "faultd: every reply code reaches the program as the errno of a direct connect" {
	local code want
	for pair in 01:ECONNREFUSED 02:EACCES 03:ENETUNREACH 04:EHOSTUNREACH \
	    05:ECONNREFUSED 06:ETIMEDOUT 07:ECONNREFUSED 08:ECONNREFUSED 09:ECONNREFUSED; do
		code=${pair%%:*} want=${pair#*:}
		start_faultd --reply "0x$code"
		run --separate-stderr probe "socks5://127.0.0.1:$FAULT_PORT" connect 127.0.0.1 "$HTTP_PORT"
		echo "reply $code: got '$output', want $want"
		[ "$output" = "$want" ]
		grep -q "atyp=1 dst=127\.0\.0\.1:$HTTP_PORT\$" "$FAULT_LOG"
	done
}

@test "faultd: reply 00 connects, the program's bytes flow both ways" {
	start_faultd --reply 0x00
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
		timeout 20 python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
s.sendall(b"ping through faultd")
print(s.recv(100).decode())' "$HTTP_PORT"
	[ "$output" = "ping through faultd" ]
}

@test "faultd: socks5h sends the name (ATYP 03), socks5 an address (ATYP 01)" {
	need_dns_jail
	start_faultd --reply 0x04
	run --separate-stderr probe "socks5h://127.0.0.1:$FAULT_PORT" connect only-faultd.socksify.test 8080
	[ "$output" = "EHOSTUNREACH" ]
	grep -q 'atyp=3 dst=only-faultd\.socksify\.test:8080$' "$FAULT_LOG"
	run --separate-stderr probe "socks5://127.0.0.1:$FAULT_PORT" connect 127.0.0.1 8080
	[ "$output" = "EHOSTUNREACH" ]
	grep -q 'atyp=1 dst=127\.0\.0\.1:8080$' "$FAULT_LOG"
}

@test "faultd: a reset at the greeting, at authentication or at the reply gives ECONNREFUSED" {
	for step in greeting auth reply; do
		start_faultd --reset "$step"
		run --separate-stderr probe "socks5://u:p@127.0.0.1:$FAULT_PORT" connect 127.0.0.1 "$HTTP_PORT"
		echo "reset at $step: got '$output'"
		[ "$output" = "ECONNREFUSED" ]
	done
}

@test "faultd: garbage instead of a reply gives ECONNREFUSED" {
	start_faultd --garbage reply
	run --separate-stderr probe "socks5://127.0.0.1:$FAULT_PORT" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "ECONNREFUSED" ]
	grep -q "dst=127\.0\.0\.1:$HTTP_PORT\$" "$FAULT_LOG"
}

@test "faultd: a stall at the greeting or at the reply gives ETIMEDOUT after SOCKSIFY_TIMEOUT=1" {
	for step in greeting reply; do
		start_faultd --stall "$step"
		start=$SECONDS
		run --separate-stderr env SOCKSIFY_TIMEOUT=1 SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
			timeout 10 python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
		echo "stall at $step: got '$output' after $((SECONDS - start)) s"
		[ "$output" = "ETIMEDOUT" ]
		[ $((SECONDS - start)) -le 4 ]
	done
}

# --- Foreign servers ----------------------------------------------------------


foreign_checks() {
	got=$(SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	run --separate-stderr probe "socks5://127.0.0.1:$PROXY_PORT" connect 127.0.0.1 "$(free_port)"
	[ "$output" = "ECONNREFUSED" ]
	run --separate-stderr probe "socks5://127.0.0.1:$PROXY_PORT" asyncio 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		timeout 60 python3 "$PROGS" threads 8 "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "${lines[0]}" = "8 ok" ]
	[ "${lines[1]}" = "$PAYLOAD_SHA" ]
}

@test "microsocks: curl bytes intact, refused target ECONNREFUSED, asyncio, threads" {
	start_microsocks
	foreign_checks
}

@test "danted: curl bytes intact, refused target ECONNREFUSED, asyncio, threads" {
	start_danted
	foreign_checks
	grep -q "127\.0\.0\.1\.$HTTP_PORT" "$BATS_TEST_TMPDIR/danted.log"
}

@test "microsocks: socks5h sends the name; the proxy resolves it" {
	start_microsocks
	got=$(LD_PRELOAD="$LIB" SOCKSIFY_EXCLUDE=none SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://localhost:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

# --- Real programs through socksify -x, proven by socksifyd's log ------------------

# via CMD...: CMD under the launcher, through the socksifyd of this test.
via() {
	timeout 60 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none "$@"
}

# Every session of this test that reached the HTTP server through socksifyd.
proxied() {
	grep -c "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok" "$SOCKSIFYD_LOG" || true
}

@test "wget through the proxy: bytes intact" {
	start_socksifyd -v
	via wget -q -O "$BATS_TEST_TMPDIR/got" "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "python3 urllib through the proxy: bytes intact" {
	start_socksifyd -v
	run via python3 "$PROGS" urllib "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "node http.get (libuv) through the proxy: bytes intact" {
	command -v node >/dev/null || skip "node is not installed"
	skip_under_asan node
	start_socksifyd -v
	run via node -e '
const http = require("http"), crypto = require("crypto");
http.get(process.argv[1], (res) => {
	const h = crypto.createHash("sha256");
	res.on("data", (d) => h.update(d));
	res.on("end", () => console.log(h.digest("hex")));
}).on("error", (e) => { console.log(e.code); process.exit(1); });' \
		"http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "ncat through the proxy: bytes intact" {
	command -v ncat >/dev/null || skip "ncat is not installed"
	start_socksifyd -v
	got=$(printf 'GET /payload.bin HTTP/1.0\r\nHost: x\r\n\r\n' |
		via ncat -w 10 127.0.0.1 "$HTTP_PORT" | sed '1,/^\r$/d' | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "32 python threads fetch at once: every body intact, 32 sessions in the proxy log" {
	start_socksifyd -v
	run via python3 "$PROGS" threads 32 "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "${lines[0]}" = "32 ok" ]
	[ "${lines[1]}" = "$PAYLOAD_SHA" ]
	for ((i = 0; i < 30; i++)); do
		[ "$(proxied)" -ge 32 ] && break
		sleep 0.1
	done
	[ "$(proxied)" -eq 32 ]
}

@test "fork then connect: the child is tunnelled, bytes intact" {
	start_socksifyd -v
	run via python3 "$PROGS" fork 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$status" -eq 0 ]
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "socks5h: a child connects to a name its parent looked up before fork()" {
	need_dns_jail
	start_socksifyd -v
	run timeout 60 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		python3 "$PROGS" fork "$PROXY_ONLY_NAME" "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$PROXY_ONLY_NAME:$HTTP_PORT.*outcome=ok"
}

@test "getaddrinfo with NULL hints and with AI_PASSIVE: numeric answers untouched" {
	start_socksifyd
	for url in "socks5://127.0.0.1:$PROXY_PORT" "socks5h://127.0.0.1:$PROXY_PORT"; do
		run timeout 20 "$SOCKSIFY" -x "$url" -e none python3 "$PROGS" gai-null 10.1.2.3 80
		[ "$output" = "10.1.2.3:80" ]
		run timeout 20 "$SOCKSIFY" -x "$url" -e none python3 "$PROGS" gai-null ::1 80
		[ "$output" = "[::1]:80" ]
		run timeout 20 "$SOCKSIFY" -x "$url" -e none python3 "$PROGS" gai-passive 8080
		# exactly what glibc answers without the library
		[ "$output" = "$(python3 "$PROGS" gai-passive 8080)" ]
		[[ "$output" == *"0.0.0.0:8080"* ]]
	done
}

@test "non-blocking connect on an fd registered in epoll before connect(): EPOLLOUT, data flows" {
	start_socksifyd -v
	run via python3 "$PROGS" epoll 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "close_range(3, ~0U, 0) and then connect: still tunnelled, bytes intact" {
	start_socksifyd -v
	run via python3 "$PROGS" close-range 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

@test "TCP Fast Open sendto(MSG_FASTOPEN): tunnelled with its data, bytes intact" {
	start_socksifyd -v
	run via python3 "$PROGS" tfo 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}
