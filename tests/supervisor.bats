#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# The seccomp supervisor (preload/supervisor*.c): programs LD_PRELOAD cannot
# reach (Go with and without cgo, static C, a static program a dynamic shell
# execs, raw system calls) are tunnelled, their own DNS queries answered
# with placeholders under socks5h, and they fail closed; --mode, the
# refusals (setuid, a kernel without pidfd_getfd) and io_uring.
#
# The programs are built here from tests/supervise/ (setup_file): a Go
# client twice (CGO_ENABLED=0 and cgo), supcheck.c with cc -static and
# dynamically, and nopidfd.c. Proof of a tunnel is socksifyd's own log of
# the session (-v); proof of no leak is tests/helpers/dnssink.py (the jail's
# only resolver) and tests/helpers/sup_recorder.py (a listener that records
# every connection it accepts).

load helpers/common

SUPERVISE_SRC=$ROOT/tests/supervise

setup_file() {
	local bin=$BATS_FILE_TMPDIR/bin log=$BATS_FILE_TMPDIR/build.log
	mkdir -p "$bin"
	export SUPCHECK_STATIC=$bin/supcheck-static SUPCHECK_DYN=$bin/supcheck-dyn NOPIDFD=$bin/nopidfd
	# getaddrinfo() in a static glibc program draws a link-time warning:
	# expected, that is the kind of program this file is about.
	cc -O2 -static -o "$SUPCHECK_STATIC" "$SUPERVISE_SRC/supcheck.c" 2>"$log" ||
		{ cat "$log" >&2; return 1; }
	cc -O2 -o "$SUPCHECK_DYN" "$SUPERVISE_SRC/supcheck.c"
	cc -O2 -o "$NOPIDFD" "$SUPERVISE_SRC/nopidfd.c"
	export GO_STATIC=$bin/goclient-static GO_CGO=$bin/goclient-cgo
	if command -v go >/dev/null 2>&1; then
		# Offline and reproducible: the standard library only, nothing
		# fetched, the Go of this machine; compiled packages kept in
		# $BUILD/gocache between runs.
		(cd "$SUPERVISE_SRC/goclient" &&
		 export GOCACHE=$BUILD/gocache GOPATH=$BATS_FILE_TMPDIR/gopath \
			GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on GOENV=off &&
		 CGO_ENABLED=0 go build -o "$GO_STATIC" . &&
		 CGO_ENABLED=1 go build -o "$GO_CGO" .) >"$log" 2>&1 ||
			{ cat "$log" >&2; return 1; }
	fi
}

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

need_go() {
	[ -x "$GO_STATIC" ] || skip "go is not installed (scripts/deps.sh test)"
}

# BUSYBOX: Debian's busybox-static, a statically linked program that
# resolves names itself (glibc's static resolver) and connects.
need_busybox() {
	local b
	BUSYBOX=
	for b in /bin/busybox "$(command -v busybox || true)"; do
		[ -x "$b" ] && file -L "$b" | grep -q 'statically linked' && { BUSYBOX=$b; break; }
	done
	[ -n "$BUSYBOX" ] || skip "no statically linked busybox (busybox-static; scripts/deps.sh test)"
}

# start_recorder: tests/helpers/sup_recorder.py; sets REC_PORT and REC_LOG.
start_recorder() {
	local pf=$BATS_TEST_TMPDIR/rec.port
	REC_LOG=$BATS_TEST_TMPDIR/rec.log
	python3 "$HELPERS/sup_recorder.py" "$pf" "$REC_LOG" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	REC_PORT=$(cat "$pf")
}

# Connections the recorder accepted (given a moment to write them down).
recorded() {
	sleep 0.3
	grep -c '^accept ' "$REC_LOG" || true
}

# via_h CMD...: CMD under socksify, socks5h through this test's socksifyd,
# nothing excluded (loopback included, where every server here is).
via_h() {
	timeout 60 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none "$@"
}

# via CMD...: the same with socks5 (names resolved before the proxy).
via() {
	timeout 60 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none "$@"
}

# socksifyd logged a completed session to NAME:PORT (PORT default HTTP_PORT).
proxy_saw() {
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$1:${2:-$HTTP_PORT}	.*outcome=ok"
}

# One HTTP URL of the payload, by the name only the proxy can resolve.
payload_url() { echo "http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin"; }

# go_get_checks BINARY: the Go client fetches the payload by the proxy-only
# name; every proof of the tunnel and of no leak.
go_get_checks() {
	start_dnssink
	start_socksifyd -v
	run --separate-stderr via_h "$1" get "$(payload_url)"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "sha=$PAYLOAD_SHA" ]
	# getpeername() answers what the program connected to, a placeholder;
	# never the proxy's address, which is what the socket really reaches.
	[ "${lines[0]}" != "remote=127.0.0.1:$PROXY_PORT" ]
	is_placeholder "${lines[0]#remote=}"
	[[ "${lines[0]}" == *":$HTTP_PORT" ]]
	proxy_saw "$PROXY_ONLY_NAME"
	run grep -cE 'target=(198\.1[89]\.|\[?100::)' "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
	sink_empty
}

# --- Programs the library cannot reach, tunnelled -----------------------------

@test "Go CGO_ENABLED=0: socks5h carries the name to the proxy, bytes intact, no DNS query leaves, RemoteAddr a placeholder" {
	need_go
	file "$GO_STATIC" | grep -q 'statically linked'
	go_get_checks "$GO_STATIC"
	# DNS over TCP (resolv.conf "options use-vc", which Go honours): the
	# supervisor answers that too. Nothing listens on TCP port 53 here, so
	# an answer at all is ours.
	printf 'nameserver 127.0.0.1\noptions use-vc\n' >"$BATS_TEST_TMPDIR/vc.conf"
	run --separate-stderr unshare --mount sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' \
		"$BATS_TEST_TMPDIR/vc.conf" timeout 60 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		"$GO_STATIC" get "$(payload_url)"
	echo "use-vc: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "sha=$PAYLOAD_SHA" ]
	is_placeholder "${lines[0]#remote=}"
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
	# Control: without socksify the same program asks the sink itself, so
	# an empty sink above means the supervisor answered.
	run timeout 20 "$GO_STATIC" get "$(payload_url)"
	[ "$status" -ne 0 ]
	grep -qx "$PROXY_ONLY_NAME" "$DNS_LOG"
}

@test "Go with cgo (dynamic, raw connect system calls): tunnelled the same, with Go's resolver and with libc's (netdns=cgo)" {
	need_go
	readelf -l "$GO_CGO" | grep -q 'Requesting program interpreter'
	go_get_checks "$GO_CGO"
	# The library answers getaddrinfo() in the process, the supervisor
	# the raw connect(): one placeholder table between them.
	run --separate-stderr env GODEBUG=netdns=cgo+1 timeout 60 "$SOCKSIFY" \
		-x "socks5h://127.0.0.1:$PROXY_PORT" -e none "$GO_CGO" get "$(payload_url)"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"using cgo DNS resolver"* ]]
	[ "${lines[1]}" = "sha=$PAYLOAD_SHA" ]
	is_placeholder "${lines[0]#remote=}"
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
}

@test "1,500 connects under way at once through a proxy 300 ms away, the launcher started under a soft limit of 1,024 descriptors: every one tunnelled" {
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 8192 ] || skip "the hard descriptor limit is below 8192"
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 150
	# the supervisor held 1,024 and refused the rest with EAGAIN; then it
	# held a descriptor for each, and under the shell's soft limit of
	# 1,024 the rest got EMFILE, without a line
	run sh -c 'ulimit -Sn 1024 && exec timeout 90 "$0" --mode seccomp -x "socks5://127.0.0.1:$1" -e none \
		python3 "$2" 1500' "$SOCKSIFY" "$DELAY_PORT" "$SUPERVISE_SRC/manyconnect.py"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "ok=1500" ]
	wait_for_count "$SOCKSIFYD_LOG" 100 "cmd=connect	target=127\.0\.0\.1:" 1500
}

@test "busybox-static wget exec'd by a dynamic shell: tunnelled by name, bytes intact, no DNS query leaves" {
	need_busybox
	start_dnssink
	start_socksifyd -v
	readelf -l /bin/sh | grep -q 'Requesting program interpreter'
	run --separate-stderr via_h sh -c '"$0" wget -q -O "$2" "$1"' "$BUSYBOX" "$(payload_url)" "$BATS_TEST_TMPDIR/got"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	proxy_saw "$PROXY_ONLY_NAME"
	sink_empty
}

@test "static C client (getaddrinfo, connect, getpeername): tunnelled by name, bytes intact, peer a placeholder, no DNS query leaves" {
	start_dnssink
	start_socksifyd -v
	file "$SUPCHECK_STATIC" | grep -q 'statically linked'
	via_h "$SUPCHECK_STATIC" get "$PROXY_ONLY_NAME" "$HTTP_PORT" /payload.bin \
		>"$BATS_TEST_TMPDIR/got" 2>"$BATS_TEST_TMPDIR/err"
	cat "$BATS_TEST_TMPDIR/err"
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	peer=$(sed -n 's/^peer=//p' "$BATS_TEST_TMPDIR/err")
	is_placeholder "$peer"
	proxy_saw "$PROXY_ONLY_NAME"
	sink_empty
	# glibc's resolver over TCP (RES_OPTIONS=use-vc): answered by the
	# supervisor as well; nothing listens on TCP port 53 here.
	RES_OPTIONS=use-vc via_h "$SUPCHECK_STATIC" get "$PROXY_ONLY_NAME" "$HTTP_PORT" /payload.bin \
		>"$BATS_TEST_TMPDIR/got" 2>"$BATS_TEST_TMPDIR/err"
	cat "$BATS_TEST_TMPDIR/err"
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
}

@test "a proxy named in DNS (not /etc/hosts), default mode: a dynamic and a static program reach it at its real address, never a placeholder: its lookups get real answers" {
	# The library resolves its hops with glibc's getaddrinfo(), whose query
	# the supervisor takes; a placeholder for the proxy's name would send
	# the library's dial to 198.18.0.0/15, outside the tunnel.
	start_dnssink "proxyname.test=127.0.0.1"
	start_socksifyd -v
	local url="socks5h://proxyname.test:$PROXY_PORT" got
	got=$(timeout 60 "$SOCKSIFY" -x "$url" -e none curl -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	got=$(timeout 60 "$SOCKSIFY" -x "$url" -e none "$SUPCHECK_STATIC" get 127.0.0.1 "$HTTP_PORT" \
		/payload.bin 2>/dev/null | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# Given with a trailing dot, the same name.
	got=$(timeout 60 "$SOCKSIFY" -x "socks5h://proxyname.test.:$PROXY_PORT" -e none curl -sS \
		--max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" 3
	# The library's lookups of the name reached the real resolver.
	grep -qx "proxyname.test" "$DNS_LOG"
	# A program's own query of the proxy's name: the real address, from
	# the supervisor's resolver and from the library's alike.
	run timeout 60 "$SOCKSIFY" -x "$url" -e none "$SUPCHECK_STATIC" dns proxyname.test
	[ "$output" = "A 127.0.0.1" ]
	run timeout 60 "$SOCKSIFY" -x "$url" -e none --mode preload "$SUPCHECK_DYN" dns proxyname.test
	[ "$output" = "A 127.0.0.1" ]
	# A later hop behind a socks5h hop is named to that hop, never looked
	# up here: a query of its name stays remote (a placeholder), as any.
	: >"$DNS_LOG"
	run timeout 60 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -x socks5h://proxyname.test:1080 \
		-e none "$SUPCHECK_STATIC" dns proxyname.test
	echo "$output"
	is_placeholder "${output#A }"
	sink_empty
}

@test "an IPv4 socket and an IPv6-only proxy under the supervisor: one line however many connects, and an IPv6 alternative named for what it is" {
	start_socksifyd -l '[::1]:0'
	local err=$BATS_TEST_TMPDIR/err dead
	# 20 connects: each ECONNREFUSED, the line once (it was 20).
	run --separate-stderr timeout 60 "$SOCKSIFY" -m seccomp -x "socks5h://[::1]:$PROXY_PORT" -e none \
		python3 -c 'import socket
print(sorted(set(socket.socket().connect_ex(("10.9.9.9", 80)) for _ in range(20))))'
	echo "$output / $stderr"
	[ "$output" = "[111]" ]
	[ "$(grep -c 'an IPv4 socket cannot reach proxy' <<<"$stderr")" = 1 ]
	# The first alternative dead, the second IPv6: said as such, not as a
	# proxy that "closed the connection during the handshake".
	dead=$(free_port)
	run --separate-stderr timeout 60 "$SOCKSIFY" -t -m seccomp \
		-x "socks5h://127.0.0.1:$dead|socks5h://[::1]:$PROXY_PORT" -e none \
		python3 -c 'import socket; print(socket.socket().connect_ex(("10.9.9.9", 80)))'
	echo "$output / $stderr"
	[ "$output" = 111 ]
	[[ "$stderr" == *"proxy [::1]:$PROXY_PORT (alternative 2 of 2) has no address for this socket's family"* ]]
	[[ "$stderr" != *"closed the connection"* ]]
}

@test "--mode seccomp needs no library: a launcher alone in its directory tunnels curl; --mode auto there says the library is missing (125)" {
	start_socksifyd -v
	local dir=$BATS_TEST_TMPDIR/alone got
	mkdir -p "$dir"
	cp "$SOCKSIFY" "$dir/socksify"
	got=$(timeout 60 "$dir/socksify" -m seccomp -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	proxy_saw 127.0.0.1
	run timeout 20 "$dir/socksify" -m auto -x "socks5h://127.0.0.1:$PROXY_PORT" true
	[ "$status" -eq 125 ]
	[[ "$output" == "socksify: library not found: neither $dir/libsocksify.so nor "* ]]
}

@test "a static program's own resolver as musl's works (sendto() on an unconnected UDP socket to port 53): answered with a placeholder, nothing leaves" {
	start_dnssink
	start_socksifyd -v
	# Control: unsupervised, the query reaches the sink (REFUSED there).
	run "$SUPCHECK_STATIC" dns "$PROXY_ONLY_NAME"
	[ "$output" = "rcode 5" ]
	grep -qx "$PROXY_ONLY_NAME" "$DNS_LOG"
	: >"$DNS_LOG"
	# CONTRACT.md: a DNS query the program sends itself, UDP or TCP, port
	# 53, any address, is answered with placeholders under socks5h.
	run --separate-stderr via_h "$SUPCHECK_STATIC" dns "$PROXY_ONLY_NAME"
	echo "status $status, out: $output, err: $stderr"
	sink_empty
	[ "$status" -eq 0 ]
	is_placeholder "${output#A }"
}

@test "a static program's own resolver as glibc's and c-ares's works (a UDP socket connect()ed to port 53, send(), recvfrom()): the answer comes from the nameserver's address" {
	start_dnssink
	start_socksifyd -v
	run "$SUPCHECK_STATIC" dnsc "$PROXY_ONLY_NAME"
	[ "$output" = "rcode 5" ]
	: >"$DNS_LOG"
	# The answer's source, as recvfrom() says it, must be 127.0.0.1:53,
	# what the socket was connected to: these resolvers drop any other.
	run --separate-stderr via_h "$SUPCHECK_STATIC" dnsc "$PROXY_ONLY_NAME"
	echo "status $status, out: $output, err: $stderr"
	sink_empty
	[ "$status" -eq 0 ]
	is_placeholder "${output#A }"
	# a blocking recvfrom() at once, before the answer could be in (no
	# poll() first): from the nameserver too, every time
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		run --separate-stderr via_h "$SUPCHECK_STATIC" dnscb "$PROXY_ONLY_NAME"
		[ "$status" -eq 0 ] || { echo "run $i: $status, out: $output, err: $stderr"; false; }
		is_placeholder "${output#A }"
	done
	sink_empty
}

@test "many DNS queries of one supervised program at once (UDP ports equal modulo 1024, 100 musl-style sockets, 100 TCP connections): each answered, from the nameserver, nothing leaves" {
	start_dnssink
	start_socksifyd -v
	local dnspar=$HELPERS/dnspar.py
	run --separate-stderr via_h --mode seccomp python3 "$dnspar" "$PROXY_ONLY_NAME" collide
	echo "collide: $status $output $stderr"
	[ "$output" = "answered 2 of 2" ]
	run --separate-stderr via_h --mode seccomp python3 "$dnspar" "$PROXY_ONLY_NAME" udp 100
	echo "udp: $status $output $stderr"
	[ "$output" = "answered 100 of 100, wrong source 0" ]
	run --separate-stderr via_h --mode seccomp python3 "$dnspar" "$PROXY_ONLY_NAME" tcp 100
	echo "tcp: $status $output $stderr"
	[ "$output" = "answered 100 of 100" ]
	sink_empty
}

# --- Fail closed ----------------------------------------------------------------

@test "proxy down: a static program exec'd by a shell fails and never connects directly (--mode preload: it leaks)" {
	need_busybox
	start_recorder
	closed=$(free_port)
	run --separate-stderr timeout 30 "$SOCKSIFY" -x "socks5h://127.0.0.1:$closed" -e none \
		sh -c '"$0" wget -q -O - "$1"' "$BUSYBOX" "http://127.0.0.1:$REC_PORT/leak"
	echo "auto: status $status, out: $output, err: $stderr"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	[ "$output" = "" ]
	[ "$(recorded)" = "0" ]
	# The same under the library alone: the static child is out of its
	# reach and goes straight to the server (what the supervisor closes).
	run --separate-stderr timeout 30 "$SOCKSIFY" --mode preload -x "socks5h://127.0.0.1:$closed" -e none \
		sh -c '"$0" wget -q -O - "$1"' "$BUSYBOX" "http://127.0.0.1:$REC_PORT/leak"
	echo "preload: status $status, out: $output, err: $stderr"
	[ "$output" = "recorded" ]
	[ "$(recorded)" = "1" ]
	grep -qx 'request GET /leak HTTP/1.[01]' "$REC_LOG"
}

@test "after socksify exits, a static program it left behind cannot connect at all (fails closed)" {
	need_busybox
	start_socksifyd -v
	start_recorder
	local res=$BATS_TEST_TMPDIR/late.rc
	run --separate-stderr via_h sh -c '
		( sleep 1; "$0" wget -q -O /dev/null "$1"; echo "rc=$?" >"$2" ) </dev/null >/dev/null 2>&1 &
		exit 0' "$BUSYBOX" "http://127.0.0.1:$REC_PORT/late" "$res"
	[ "$status" -eq 0 ]
	wait_for_line "$res" 50 '^rc='
	cat "$res"
	[ "$(cat "$res")" != "rc=0" ]
	[ "$(recorded)" = "0" ]
	run grep -c "target=127\.0\.0\.1:$REC_PORT" "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

# start_udp_echo: a UDP echo on 127.0.0.1 that logs "from IP:PORT" per
# datagram; sets UDP_PORT and UDP_LOG.
start_udp_echo() {
	local pf=$BATS_TEST_TMPDIR/udp.port
	UDP_LOG=$BATS_TEST_TMPDIR/udp.log
	: >"$UDP_LOG"
	python3 -c 'import os,socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1]); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    m, p = s.recvfrom(65535)
    open(sys.argv[2], "a").write("from %s:%d\n" % p)
    s.sendto(b"echo:" + m, p)' "$pf" "$UDP_LOG" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	UDP_PORT=$(cat "$pf")
}

@test "UDP from a static program: never sent around the proxy from its own socket unless SOCKSIFY_UDP=pass" {
	start_socksifyd -v
	start_udp_echo
	run --separate-stderr via "$SUPCHECK_STATIC" udp 127.0.0.1 "$UDP_PORT"
	echo "default: status $status, out: $output, err: $stderr"
	local port=${output%% *}
	port=${port#local=}
	[[ "$port" =~ ^[0-9]+$ ]]
	sleep 0.2
	# Blocked (EPERM), or relayed by the proxy (from another port): never
	# from the program's own socket.
	[ "$(grep -c "^from 127\.0\.0\.1:$port\$" "$UDP_LOG")" -eq 0 ]
	[ "$status" -eq 0 ] || [[ "$output" == *" EPERM" ]]
	# SOCKSIFY_UDP=pass says send them directly: then they are.
	run --separate-stderr env SOCKSIFY_UDP=pass timeout 20 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		"$SUPCHECK_STATIC" udp 127.0.0.1 "$UDP_PORT"
	echo "pass: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	port=${output%% *}
	port=${port#local=}
	[ "$output" = "local=$port reply=echo:supcheck udp" ]
	grep -q "^from 127\.0\.0\.1:$port\$" "$UDP_LOG"
}

@test "a static program's UDP connect() that sends nothing (Go sorting a name's addresses): EPERM and a warning, not an error: -q keeps it quiet" {
	start_socksifyd -v
	run --separate-stderr via "$SUPCHECK_STATIC" udpconnect 127.0.0.1 9
	echo "default: status $status, out: $output, err: $stderr"
	[ "$output" = "EPERM" ]
	[[ "$stderr" == *"blocked connect() of a UDP socket to 127.0.0.1:9 (SOCKSIFY_UDP=proxy: no relay for a program the library cannot reach)" ]]
	[ "$(grep -c blocked <<<"$stderr")" = 1 ]
	run --separate-stderr timeout 20 "$SOCKSIFY" -q -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		"$SUPCHECK_STATIC" udpconnect 127.0.0.1 9
	echo "-q: status $status, out: $output, err: $stderr"
	[ "$output" = "EPERM" ]
	[ -z "$stderr" ]
}

@test "supervised: socksify exits with the command's status, dies of its signal, and forwards signals to it" {
	start_socksifyd -v
	run via "$SUPCHECK_STATIC" bogus-subcommand
	[ "$status" -eq 2 ]
	run via sh -c 'exit 7'
	[ "$status" -eq 7 ]
	run via sh -c 'kill -TERM $$'
	[ "$status" -eq 143 ]
	local sp rc=0 out=$BATS_TEST_TMPDIR/sig.out
	"$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		sh -c 'trap "echo got USR1; exit 3" USR1; echo ready; sleep 20 & wait' 3>&- >"$out" 2>&1 &
	sp=$!
	PIDS+=($sp)
	wait_for_line "$out" 50 '^ready$'
	kill -USR1 "$sp"
	wait "$sp" || rc=$?
	cat "$out"
	[ "$rc" -eq 3 ]
	grep -qx 'got USR1' "$out"
}

# --- Load and errors -----------------------------------------------------------

@test "Go CGO_ENABLED=0: 32 goroutines x 20 connections each, by name, every one intact and each a session of the proxy" {
	need_go
	need_dns_jail
	head -c 65536 /dev/urandom >"$WWW/64k.bin"
	local want
	want=$(sha <"$WWW/64k.bin")
	start_http 127.0.0.1 evhttpd.py
	start_socksifyd -v
	run --separate-stderr via_h "$GO_STATIC" many 32 20 "http://$PROXY_ONLY_NAME:$HTTP_PORT/64k.bin" "$want"
	echo "status $status, out: ${lines[*]:0:5}, err: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "ok=640 bad=0" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 640
}

@test "Go dial: RemoteAddr is the destination, not the proxy; a refused target says 'connection refused' (static C: ECONNREFUSED)" {
	need_go
	start_socksifyd -v
	run --separate-stderr via "$GO_STATIC" dial "127.0.0.1:$HTTP_PORT"
	echo "connected: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "connected remote=127.0.0.1:$HTTP_PORT" ]
	proxy_saw 127.0.0.1
	closed=$(free_port)
	run --separate-stderr via "$GO_STATIC" dial "127.0.0.1:$closed"
	echo "socks5 Go: status $status, out: $output, err: $stderr"
	[ "$status" -eq 1 ]
	[[ "$output" == "error: "*"connection refused"* ]]
	run --separate-stderr via_h "$GO_STATIC" dial "127.0.0.1:$closed"
	[ "$status" -eq 1 ]
	[[ "$output" == "error: "*"connection refused"* ]]
	for flag in "" -n; do
		run --separate-stderr via "$SUPCHECK_STATIC" probe $flag 127.0.0.1 "$closed"
		echo "static C probe $flag: $output"
		[ "$status" -eq 1 ]
		[ "${output% *}" = ECONNREFUSED ]
	done
	# It was the proxy that was refused: four sessions to that port.
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=127\.0\.0\.1:$closed	" 4
}

# fault_case STEP FAULT WANT [HEX]: the static prober under socksify against
# faultd failing so, blocking and non-blocking side by side; each must print
# WANT within the bound of its kind, never hang.
fault_case() {
	local step=$1 fault=$2 want=$3 hex=${4:-} mode pid rc pids=()
	fault_start "$step" "$fault" "$hex"
	for mode in blocking nonblock; do
		local flag=()
		[ "$mode" = nonblock ] && flag=(-n)
		SOCKSIFY_TIMEOUT=$FAULT_TIMEOUT_S timeout 15 "$SOCKSIFY" -x "$FAULT_URL" -e none \
			"$SUPCHECK_STATIC" probe "${flag[@]}" 127.0.0.1 "$DEST_PORT" \
			>"$BATS_TEST_TMPDIR/probe.$mode" 2>"$BATS_TEST_TMPDIR/probe.$mode.err" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -ne 124 ] || { echo "$step $fault $hex: a probe hung"; return 1; }
	done
	fault_probes_check "$step" "$fault" "$hex" "$want" "$DEST_PORT" || return 1
	kill "${PIDS[-1]}"
	wait "${PIDS[-1]}" || true
	unset 'PIDS[-1]'
}

@test "faults at greeting, auth and request: a static program gets the exact errno, blocking and non-blocking, never a hang" {
	local c
	# A destination that accepts: a connection around the proxy would
	# say "ok" at once, never the fault's errno.
	DEST_PORT=$HTTP_PORT
	for c in "${FAULT_MATRIX[@]}"; do
		fault_case $c
	done
}

@test "faults: a Go program gets an error, never a hang (reset: connection refused; stall: timed out)" {
	need_go
	# The destination accepts: only the proxy's fault can fail the dial.
	start_faultd --reset greeting
	run --separate-stderr timeout 15 "$SOCKSIFY" -x "socks5://127.0.0.1:$FAULT_PORT" -e none \
		"$GO_STATIC" dial "127.0.0.1:$HTTP_PORT"
	echo "reset: status $status, out: $output, err: $stderr"
	[ "$status" -eq 1 ]
	[[ "$output" == "error: "*"connection refused"* ]]
	start_faultd --stall request
	SECONDS=0
	run --separate-stderr env SOCKSIFY_TIMEOUT=1 timeout 15 "$SOCKSIFY" -x "socks5://127.0.0.1:$FAULT_PORT" -e none \
		"$GO_STATIC" dial "127.0.0.1:$HTTP_PORT"
	echo "stall: status $status, out: $output, err: $stderr, $SECONDS s"
	[ "$status" -eq 1 ]
	[[ "$output" == "error: "*"timed out"* ]]
	[ "$SECONDS" -le 4 ]
	grep -q "request cmd=1 atyp=1 dst=127\.0\.0\.1:$HTTP_PORT\$" "$FAULT_LOG"
}

@test "a stalled proxy times a supervised connect out at SOCKSIFY_TIMEOUT, not at the supervisor's next sweep a second on" {
	# The receiver thread serves this connect itself while the launcher's
	# thread sleeps until its next sweep (1 s after start); the job, due
	# in 0.2 s, must wake it (the kick), or ETIMEDOUT comes near 1 s late.
	# The greeting stalls: no answer wakes the launcher's thread early.
	start_faultd --stall greeting
	run --separate-stderr env SOCKSIFY_TIMEOUT=0.2 timeout 15 "$SOCKSIFY" \
		-x "socks5://127.0.0.1:$FAULT_PORT" -e none "$SUPCHECK_STATIC" probe 127.0.0.1 "$HTTP_PORT"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^ETIMEDOUT\ ([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 150 ]
	[ "${BASH_REMATCH[1]}" -lt 600 ]
}

@test "a proxy whose dial never completes: 'cannot be reached', blocking, from the library and from the supervisor alike" {
	# The first handshake bytes go out before any wait; a write refused
	# because the dial is not over must not make it a handshake stall.
	local log=$BATS_TEST_TMPDIR/fullq.log way prog mode
	python3 "$HELPERS/fullq.py" 3>&- 2>"$log" &
	PIDS+=($!)
	wait_for_line "$log" 50 "$(listening_on fullq)"
	port=$(sed -En "s/$(listening_on fullq)/\\1/p" "$log")
	for way in preload:"$SUPCHECK_DYN" seccomp:"$SUPCHECK_STATIC"; do
		mode=${way%%:*} prog=${way#*:}
		run --separate-stderr env SOCKSIFY_TIMEOUT=0.5 timeout 15 "$SOCKSIFY" --mode "$mode" \
			-x "socks5://127.0.0.1:$port" -e none "$prog" probe 127.0.0.1 "$HTTP_PORT"
		echo "$mode: status $status, out: $output, err: $stderr"
		[ "$status" -eq 1 ]
		[[ "$output" == "ETIMEDOUT "* ]]
		[[ "$stderr" == *"proxy 127.0.0.1:$port cannot be reached: no answer within 500 ms (SOCKSIFY_TIMEOUT); the program sees ETIMEDOUT"* ]]
	done
}

# --- --mode --------------------------------------------------------------------

# The one-line refusal of a static program the library alone cannot reach.
refused_static() {
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]			# nothing run
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: "*"statically linked"* ]]
}

@test "--mode preload and SOCKSIFY_MODE=preload: a static program is refused, 125 and one line" {
	start_socksifyd -v
	run --separate-stderr via --mode preload "$SUPCHECK_STATIC" iouring
	refused_static
	run --separate-stderr env SOCKSIFY_MODE=preload timeout 20 "$SOCKSIFY" \
		-x "socks5://127.0.0.1:$PROXY_PORT" -e none "$SUPCHECK_STATIC" iouring
	refused_static
	# --mode wins over the environment.
	run --separate-stderr env SOCKSIFY_MODE=preload timeout 20 "$SOCKSIFY" --mode auto \
		-x "socks5://127.0.0.1:$PROXY_PORT" -e none "$SUPCHECK_STATIC" probe 127.0.0.1 "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "${output% *}" = ok ]
	proxy_saw 127.0.0.1
}

@test "--mode bogus and SOCKSIFY_MODE=bogus: 125 and one line naming it, nothing run" {
	run --separate-stderr timeout 20 "$SOCKSIFY" --mode bogus -x socks5://127.0.0.1:1 echo ran
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: "*"bogus"* ]]
	run --separate-stderr env SOCKSIFY_MODE=bogus timeout 20 "$SOCKSIFY" -x socks5://127.0.0.1:1 echo ran
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: "*"bogus"* ]]
}

@test "--mode seccomp: dynamic curl tunnelled by name without the library (LD_PRELOAD and the maps lack it), no DNS query leaves" {
	start_dnssink
	start_socksifyd -v
	run --separate-stderr timeout 60 "$SOCKSIFY" --mode seccomp \
		-x "socks5h://127.0.0.1:$PROXY_PORT" -e none sh -c '
		echo "LD_PRELOAD=[$LD_PRELOAD]"
		grep -c libsocksify /proc/$$/maps
		exec curl -sS --max-time 20 -o "$1" "$2"' sh "$BATS_TEST_TMPDIR/got" "$(payload_url)"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" != *libsocksify* ]]
	[ "${lines[1]}" = "0" ]
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	proxy_saw "$PROXY_ONLY_NAME"
	sink_empty
	# SOCKSIFY_MODE=seccomp: the same
	: >"$DNS_LOG"
	run --separate-stderr env SOCKSIFY_MODE=seccomp timeout 60 "$SOCKSIFY" \
		-x "socks5h://127.0.0.1:$PROXY_PORT" -e none sh -c '
		grep -c libsocksify /proc/$$/maps
		exec python3 -c "import hashlib,sys,urllib.request as u
print(hashlib.sha256(u.urlopen(sys.argv[1], timeout=20).read()).hexdigest())" "$0"' "$(payload_url)"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "0" ]
	[ "${lines[1]}" = "$PAYLOAD_SHA" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
}

# --- Refusals --------------------------------------------------------------------

@test "setuid: a set-user-ID program is refused (125, one line naming setuid); --force runs it with a warning" {
	cp "$(type -P echo)" "$BATS_TEST_TMPDIR/suid-echo"
	chmod u+s "$BATS_TEST_TMPDIR/suid-echo"
	run --separate-stderr timeout 20 "$SOCKSIFY" -x socks5://127.0.0.1:1 "$BATS_TEST_TMPDIR/suid-echo" ran
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: "*"setuid"* ]]
	for mode in auto seccomp preload; do
		run --separate-stderr timeout 20 "$SOCKSIFY" --mode "$mode" -x socks5://127.0.0.1:1 \
			"$BATS_TEST_TMPDIR/suid-echo" ran
		echo "--mode $mode: status $status, err: $stderr"
		[ "$status" -eq 125 ]
		[[ "$stderr" == *"setuid"* ]]
	done
	run --separate-stderr timeout 20 "$SOCKSIFY" --force -x socks5://127.0.0.1:1 "$BATS_TEST_TMPDIR/suid-echo" ran
	echo "--force: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "ran" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: warning: "*"setuid"* ]]
}

@test "setcap: a program with file capabilities is refused (125, one line naming setcap)" {
	command -v setcap >/dev/null || skip "setcap is not installed (libcap2-bin)"
	cp "$(type -P echo)" "$BATS_TEST_TMPDIR/cap-echo"
	setcap cap_net_raw+ep "$BATS_TEST_TMPDIR/cap-echo" 2>/dev/null || skip "cannot set file capabilities here"
	run --separate-stderr timeout 20 "$SOCKSIFY" -x socks5://127.0.0.1:1 "$BATS_TEST_TMPDIR/cap-echo" ran
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"setcap"* ]]
}

# --- Life cycle -------------------------------------------------------------------

@test "a command that leaves a child running: socksify exits at once with its status, nothing of ours stays but that child" {
	start_socksifyd -v
	local pidfile=$BATS_TEST_TMPDIR/sleep.pid mark=sup-mark-$$-$RANDOM sp rc=0 t0 p i left
	t0=$(date +%s%N)
	env TEST_MARK="$mark" "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		sh -c 'sleep 30 </dev/null >/dev/null 2>&1 & echo $! >"$1"; exit 0' sh "$pidfile" \
		3>&- >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	sp=$!
	PIDS+=($sp)
	# Until it has exited (gone, or a zombie bash has yet to reap): 10 s at most.
	for ((i = 0; i < 100; i++)); do
		[ -e "/proc/$sp/stat" ] || break
		[[ "$(cat "/proc/$sp/stat" 2>/dev/null)" =~ ^[0-9]+\ \(.*\)\ Z ]] && break
		sleep 0.1
	done
	[ "$i" -lt 100 ] || { echo "socksify still runs after 10 s"; return 1; }
	wait "$sp" || rc=$?
	echo "exit $rc after $((($(date +%s%N) - t0) / 1000000)) ms; err: $(cat "$BATS_TEST_TMPDIR/err")"
	[ "$rc" -eq 0 ]
	[ $((($(date +%s%N) - t0) / 1000000)) -lt 5000 ]
	sleeper=$(cat "$pidfile")
	PIDS+=($sleeper)
	kill -0 "$sleeper"			# the child lives on, as it asked
	[ ! -d "/proc/$sp" ]
	# Every process that carries this run's mark, but the sleep itself.
	left=$(marked_pids "$mark" "$sleeper")
	for p in $left; do ps -o pid,ppid,args -p "$p" || true; done
	[ -z "$left" ]
	kill "$sleeper"
}

# --- io_uring, raw system calls ------------------------------------------------------

@test "io_uring_setup under the supervisor: ENOSYS (it works outside; SOCKSIFY_IOURING=allow lets it through)" {
	start_socksifyd -v
	run "$SUPCHECK_STATIC" iouring
	[ "$output" = "ok" ] || skip "io_uring is not available on this host even unsupervised ($output)"
	run via "$SUPCHECK_STATIC" iouring
	echo "static: $output"
	[ "$status" -eq 1 ]
	[ "$output" = "ENOSYS" ]
	run via "$SUPCHECK_DYN" iouring
	echo "dynamic: $output"
	[ "$output" = "ENOSYS" ]
	run env SOCKSIFY_IOURING=allow timeout 20 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		"$SUPCHECK_STATIC" iouring
	echo "allow: $output"
	[ "$output" = "ok" ]
}

@test "a dynamic program's raw connect system call (no libc symbol) is tunnelled in auto mode; --mode preload lets it go direct" {
	[ "$(uname -m)" = x86_64 ] || [ "$(uname -m)" = aarch64 ] || skip "raw system call written for x86_64 and aarch64"
	start_socksifyd -v
	start_recorder
	readelf -l "$SUPCHECK_DYN" | grep -q 'Requesting program interpreter'
	run --separate-stderr via "$SUPCHECK_DYN" rawconnect 127.0.0.1 "$REC_PORT"
	echo "auto: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "HTTP/1.0 200 OK" ]
	proxy_saw 127.0.0.1 "$REC_PORT"
	[ "$(recorded)" = "1" ]			# the proxy's connection
	# The library alone never sees it: a direct connection, no session.
	run --separate-stderr via --mode preload "$SUPCHECK_DYN" rawconnect 127.0.0.1 "$REC_PORT"
	echo "preload: status $status, out: $output, err: $stderr"
	[ "$output" = "HTTP/1.0 200 OK" ]
	[ "$(recorded)" = "2" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$REC_PORT	" 1
}

# --- A kernel that cannot supervise ------------------------------------------------------

@test "no pidfd_getfd (emulated): a static program is refused, 125 and one line naming it; a dynamic one runs through the library with a warning" {
	start_socksifyd -v
	"$NOPIDFD" true				# the emulation itself works
	run --separate-stderr "$NOPIDFD" timeout 20 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		"$SUPCHECK_STATIC" probe 127.0.0.1 "$HTTP_PORT"
	echo "static: status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: "*"this kernel cannot supervise it: no pidfd_getfd"* ]]
	# --mode seccomp asks for the supervisor even for a dynamic program.
	run --separate-stderr "$NOPIDFD" timeout 20 "$SOCKSIFY" --mode seccomp \
		-x "socks5://127.0.0.1:$PROXY_PORT" -e none curl -sS "http://127.0.0.1:$HTTP_PORT/hello.txt"
	echo "seccomp: status $status, out: $output, err: $stderr"
	[ "$status" -eq 125 ]
	[ "$output" = "" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"this kernel cannot supervise it: no pidfd_getfd"* ]]
	# auto, a dynamic program: the library alone, and a line that says so.
	run --separate-stderr "$NOPIDFD" timeout 30 "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		curl -sS --max-time 20 -o "$BATS_TEST_TMPDIR/got" "http://127.0.0.1:$HTTP_PORT/payload.bin"
	echo "auto: status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "socksify: warning: "*"pidfd_getfd"* ]]
	proxy_saw 127.0.0.1
}

# --- socksify started from a tree socksify already reaches ----------------------------

# start_inner_proxy: a second socksifyd with a log of its own (start_socksifyd
# keeps one log per test); sets INNER_PORT and INNER_LOG.
start_inner_proxy() {
	INNER_LOG=$BATS_TEST_TMPDIR/inner.log
	: >"$INNER_LOG"
	"$SOCKSIFYD" -l 127.0.0.1:0 -v 3>&- 2>"$INNER_LOG" &
	PIDS+=($!)
	wait_for_line "$INNER_LOG" 50 '^socksifyd: listening on '
	INNER_PORT=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$INNER_LOG" | head -n 1)
}

@test "socksify run from a library-only shell (the library in socksify's own LD_PRELOAD): a static program's lookups are still answered" {
	start_dnssink
	start_socksifyd -v
	# As CONTRACT.md allows: LD_PRELOAD=libsocksify.so (and SOCKSIFY_PROXY)
	# by hand for a shell, and socksify run from it: the launcher itself
	# then carries the library. Two shells: the library alone, and the
	# library with the shell's proxy.
	local url=socks5h://127.0.0.1:$PROXY_PORT s1 s2 o1 o2 e1 e2
	run --separate-stderr env LD_PRELOAD="$LIB" \
		timeout 20 "$SOCKSIFY" -x "$url" -e none "$SUPCHECK_STATIC" get "$PROXY_ONLY_NAME" "$HTTP_PORT" /hello.txt
	s1=$status o1=$output e1=$stderr
	run --separate-stderr env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" SOCKSIFY_EXCLUDE=none \
		timeout 20 "$SOCKSIFY" -x "$url" -e none "$SUPCHECK_STATIC" get "$PROXY_ONLY_NAME" "$HTTP_PORT" /hello.txt
	s2=$status o2=$output e2=$stderr
	echo "library alone: status $s1, out: $o1, err: $e1"
	echo "library and SOCKSIFY_PROXY: status $s2 (124: timed out), out: $o2, err: $e2"
	[ "$s1" -eq 0 ]
	[ "$o1" = "hello through socks" ]
	[ "$s2" -eq 0 ]
	[ "$o2" = "hello through socks" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
}

@test "socksify inside socksify (auto in auto): a dynamic program still runs, through the inner proxy" {
	start_socksifyd -v
	start_inner_proxy
	run --separate-stderr via sh -c '"$0" -x "socks5://127.0.0.1:$1" -e none \
		curl -sS --max-time 20 "http://127.0.0.1:$2/hello.txt"' "$SOCKSIFY" "$INNER_PORT" "$HTTP_PORT"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	wait_for_line "$INNER_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT	.*outcome=ok"
}

@test "socksify inside socksify: a static program is refused with one line (a second supervisor cannot be installed), or tunnelled" {
	start_socksifyd -v
	start_inner_proxy
	run --separate-stderr via sh -c '"$0" -x "socks5://127.0.0.1:$1" -e none \
		"$2" get 127.0.0.1 "$3" /hello.txt' "$SOCKSIFY" "$INNER_PORT" "$SUPCHECK_STATIC" "$HTTP_PORT"
	echo "status $status, out: $output, err: $stderr"
	if [ "$status" -eq 125 ]; then
		[ "$output" = "" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ "$stderr" == "socksify: "* ]]
	else
		# Tunnelled: then by the proxy it was given, never around it.
		[ "$status" -eq 0 ]
		[ "$output" = "hello through socks" ]
		wait_for_line "$INNER_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT	.*outcome=ok"
	fi
}

# --- What the review of the supervisor found ------------------------------------

# responder_port PID ADDR: the UDP port of the supervisor's resolver
# (socksify PID's) on ADDR (a regex-quoted 127\.0\.0\.1 or \[::1\]), in RPORT.
responder_port() {
	local i
	RPORT=
	for ((i = 0; i < 50; i++)); do
		RPORT=$(ss -H -ulnp 2>/dev/null | grep "pid=$1," | awk '{print $4}' |
			sed -n "s/^$2:\([0-9]*\)\$/\1/p" | head -n 1)
		[ -n "$RPORT" ] && return 0
		sleep 0.1
	done
	return 1
}

# ask_stranger HOST PORT [BIND-PORT]: from outside the tree, an A query for
# the proxy-only name to HOST:PORT over UDP (from BIND-PORT on HOST, IPv6
# only, when given): "answered" or "no answer" in $output.
ask_stranger() {
	run timeout 10 python3 -c '
import socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l for l in name.split(b".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 4:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, int(sys.argv[4])))
s.settimeout(1.5)
s.sendto(q, (host, port))
try:
    s.recvfrom(512)
    print("answered")
except socket.timeout:
    print("no answer")' "$1" "$2" "$PROXY_ONLY_NAME" "${@:3}"
	echo "$output"
}

@test "the supervisor's resolver answers only the sockets it sent there: another local program gets nothing" {
	start_socksifyd -v
	"$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none sleep 20 &
	local sx=$!
	PIDS+=($sx)
	responder_port "$sx" '127\.0\.0\.1'
	echo "responder port: '$RPORT'"
	# A query for the proxy-only name from outside the tree: no answer.
	ask_stranger 127.0.0.1 "$RPORT"
	[ "$output" = "no answer" ]
	# The same query from inside the tree is answered (a placeholder).
	run --separate-stderr via_h "$SUPCHECK_STATIC" dns "$PROXY_ONLY_NAME"
	echo "inside: $status $output $stderr"
	[ "$status" -eq 0 ]
	is_placeholder "${output#A }"
}

@test "the supervisor's resolver: a stranger on the port of a tree socket bound to 0.0.0.0, but over IPv6, gets nothing" {
	[ -n "$(ip -6 addr show dev lo 2>/dev/null)" ] || skip "no IPv6 on loopback"
	start_socksifyd -v
	local out=$BATS_TEST_TMPDIR/tree.out port
	# in the tree: a UDP socket bound to the IPv4 wildcard that sent a
	# query to a nameserver (so to the resolver) as musl does, held open
	"$SOCKSIFY" --mode seccomp -x "socks5h://127.0.0.1:$PROXY_PORT" -e none python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.sendto(bytes.fromhex("123401000001000000000000016100000100 01".replace(" ", "")), ("127.0.0.1", 53))
print(s.getsockname()[1], flush=True)
time.sleep(20)' >"$out" 3>&- &
	local sx=$!
	PIDS+=($sx)
	wait_for_line "$out" 50 '^[0-9]+$'
	port=$(cat "$out")
	responder_port "$sx" '\[::1\]'
	echo "tree port $port, responder [::1]:$RPORT"
	# outside: an IPv6-only socket on [::1] and that port asks the IPv6
	# responder (an IPv4 wildcard port leaves IPv6's free)
	ask_stranger ::1 "$RPORT" "$port"
	[ "$output" = "no answer" ]
}

@test "the supervisor gives the kernel's errno for an IPv4 address on an IPv6 TCP socket and for a listening socket, never a tunnel" {
	start_socksifyd -v
	local prog='
import ctypes, errno, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def conn(s, raw):
    buf = ctypes.create_string_buffer(raw, len(raw))
    r = libc.connect(s.fileno(), buf, len(raw))
    return "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
sin = struct.pack("=H", socket.AF_INET) + struct.pack(">H", int(sys.argv[1])) + socket.inet_aton("127.0.0.1") + bytes(8)
print(conn(socket.socket(socket.AF_INET6, socket.SOCK_STREAM), sin))
print(conn(socket.socket(socket.AF_INET6, socket.SOCK_STREAM), sin + bytes(12)))
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
print(conn(l, sin))'
	run python3 -c "$prog" "$HTTP_PORT"
	[ "$output" = $'EINVAL\nEAFNOSUPPORT\nEISCONN' ]
	run --separate-stderr via --mode seccomp python3 -c "$prog" "$HTTP_PORT"
	echo "$output / $stderr"
	[ "$output" = $'EINVAL\nEAFNOSUPPORT\nEISCONN' ]
	[ -z "$stderr" ]
	! grep -q 'cmd=connect' "$SOCKSIFYD_LOG" || false
}

@test "sockets that carry IP around the policy are not created under the supervisor: SMC, RDS, packet, SCTP" {
	run --separate-stderr timeout 20 "$SOCKSIFY" --mode seccomp -x "socks5h://127.0.0.1:1" python3 -c '
import errno, socket
for fam, typ, proto in ((43, socket.SOCK_STREAM, 0), (21, socket.SOCK_SEQPACKET, 0),
                        (socket.AF_PACKET, socket.SOCK_DGRAM, 0),
                        (socket.AF_INET, socket.SOCK_STREAM, 132), (socket.AF_INET6, socket.SOCK_SEQPACKET, 132)):
    try:
        socket.socket(fam, typ, proto).close()
        print("created")
    except OSError as e:
        print(errno.errorcode[e.errno])'
	echo "$output"
	[ "$output" = "$(printf 'EAFNOSUPPORT\nEAFNOSUPPORT\nEAFNOSUPPORT\nEPROTONOSUPPORT\nEPROTONOSUPPORT')" ]
}

@test "an IPv6 routing header on the program's socket: its connect is refused, never dialled through unchecked hops" {
	start_socksifyd -v -l '[::1]:0'
	run --separate-stderr timeout 20 "$SOCKSIFY" --mode seccomp -x "socks5h://[::1]:$PROXY_PORT" -e none python3 -c '
import errno, socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
# A type-4 (segment routing) header with one segment, 2001:db8::77.
rh = struct.pack("BBBBBBH", 0, 2, 4, 0, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, "2001:db8::77")
try:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR, rh)
except OSError as e:
    print("setsockopt", errno.errorcode[e.errno]); sys.exit(0)
try:
    s.connect(("::1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])' "$HTTP_PORT"
	echo "out: $output, err: $stderr"
	[ "$output" = "EPERM" ] || [ "$output" = "setsockopt EPERM" ]
	[ "$output" = "setsockopt EPERM" ] || [[ "$stderr" == *"routing header"* ]]
	sleep 0.2
	run grep -c "outcome=" "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

@test "socks5 (no responder) with stdin closed: the command's status, promptly, no spin" {
	start_socksifyd
	# The launcher's signal pipe takes descriptor 0; SIGPIPE as a user's
	# shell has it (bats ignores it).
	run timeout -k 2 20 bash -c 'exec env --default-signal=PIPE "$0" --mode seccomp \
		-x "socks5://127.0.0.1:$1" -e none sh -c "sleep 2.5; exit 7" <&-' "$SOCKSIFY" "$PROXY_PORT"
	echo "status $status"
	[ "$status" -eq 7 ]
}

@test "signals every 2 ms (SA_RESTART) during a supervised connect through a slow proxy: the program never sees a half-made tunnel" {
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 40
	# Python retries a connect() a signal interrupted by waiting for
	# writability: a socket handed back mid-handshake would be written to
	# before the proxy answered. Its handlers run after the call instead.
	# siginterrupt(False) is SA_RESTART: a signal that comes before the
	# supervisor took the call restarts it (without it, see the next test).
	run --separate-stderr timeout 60 "$SOCKSIFY" --mode seccomp -x "socks5h://127.0.0.1:$DELAY_PORT" -e none python3 -c '
import hashlib, signal, socket, sys
# The name first, signals after: the connects are what this is about
# (a lookup under signals tests the resolver of glibc, not the tunnel).
ai = socket.getaddrinfo(sys.argv[1], int(sys.argv[2]), socket.AF_INET, socket.SOCK_STREAM)
dest = ai[0][4]
hits = [0]
def tick(sig, frm): hits[0] += 1
signal.signal(signal.SIGALRM, tick)
signal.siginterrupt(signal.SIGALRM, False)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
ok = 0
for i in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(dest)
    s.sendall(b"GET /payload.bin HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    s.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    ok += hashlib.sha256(body).hexdigest() == sys.argv[3]
signal.setitimer(signal.ITIMER_REAL, 0)
print("ok=%d signals=%d" % (ok, hits[0]))' "$PROXY_ONLY_NAME" "$HTTP_PORT" "$PAYLOAD_SHA"
	echo "status $status out: $output err: $stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == "ok=5 signals="* ]]
	[ "${output##*signals=}" -gt 20 ]
}

@test "signals every 200 us to a handler without SA_RESTART: a connect() is never handed back half made; an EINTR leaves it unstarted, and connect() again works" {
	# Before Linux 5.19 (no WAIT_KILLABLE_RECV) a signal may interrupt a
	# call the supervisor holds, and a connect() may then be "begun".
	local major minor
	IFS=. read -r major minor _ <<<"$(uname -r)"
	[ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "${minor%%[!0-9]*}" -ge 19 ]; } ||
		skip "Linux $(uname -r) has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19)"
	start_socksifyd -v
	local fnv
	fnv=$(python3 -c '
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%x" % h)' "$WWW/hello.txt")
	# Without socksify: the kernel's EINTR always leaves the connect begun
	# (POSIX: it goes on), never unstarted; so the program tells them apart.
	run timeout 60 "$SUPCHECK_STATIC" signals 127.0.0.1 "$HTTP_PORT" /hello.txt 50 "$fnv"
	echo "direct: $output"
	[ "$status" -eq 0 ]
	[[ "$output" == "ok=50 unstarted=0 begun="*" bad=0 signals="* ]]
	# Under the supervisor a signal that comes before it took the call
	# interrupts it with nothing begun (the kernel's window, narrowed but
	# not closed); after that, only a fatal signal can. So no connect() is
	# ever "begun" and then handed back mid-handshake, and every body is
	# intact, whatever the count of unstarted ones (connected again).
	run timeout 60 "$SOCKSIFY" --mode auto -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		"$SUPCHECK_STATIC" signals 127.0.0.1 "$HTTP_PORT" /hello.txt 200 "$fnv"
	echo "supervised: $output"
	[ "$status" -eq 0 ]
	[[ "$output" == "ok=200 unstarted="*" begun=0 bad=0 signals="* ]]
	[ "${output##*signals=}" -gt 100 ]
	# Each one a session of the proxy: none direct, none made twice.
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" 200
}

@test "getpeername() of two tunnelled sockets whose cookies share a remainder by 4096 (two CPUs' blocks): each says its own target, not the proxy" {
	start_socksifyd
	run via "$SUPCHECK_STATIC" peers 127.0.0.1 "$HTTP_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "TCP Fast Open, then connect() of the same socket while the tunnel is made: the send gets its count, the connect 0 (the kernel's answers)" {
	start_socksifyd -v
	# 150 ms each way: the connect() 100 ms after the send joins its job.
	start_delayfwd "127.0.0.1:$PROXY_PORT" 150
	local got err=$BATS_TEST_TMPDIR/tfojoin.err
	got=$(timeout 60 "$SOCKSIFY" -x "socks5://127.0.0.1:$DELAY_PORT" -e none \
		"$SUPCHECK_STATIC" tfojoin 127.0.0.1 "$HTTP_PORT" /payload.bin 2>"$err" | sha)
	cat "$err"
	[ "$got" = "$PAYLOAD_SHA" ]
	len=$(printf 'GET /payload.bin HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' | wc -c)
	grep -qx "send=$len connect=0" "$err"
	# One session at the proxy: the connect() made no second tunnel.
	wait_for_count "$SOCKSIFYD_LOG" 50 "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" 1
	sleep 0.3
	run grep -c "target=127.0.0.1:$HTTP_PORT	" "$SOCKSIFYD_LOG"
	[ "$output" = "1" ]
}

@test "TCP Fast Open, then a second fast-open send while the tunnel is made: EALREADY, as to a connecting socket (supervisor and library); blocking, the library waits and sends" {
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 150
	local way got n=0 err=$BATS_TEST_TMPDIR/tfoagain.err
	# The first send carries the GET without its last CRLF; the second
	# (or a send() after it failed) the CRLF: no body unless both went,
	# in that order.
	len=$(printf 'GET /payload.bin HTTP/1.0\r\nHost: 127.0.0.1\r\n' | wc -c)
	for way in "--mode seccomp $SUPCHECK_STATIC tfoagain" "--mode preload $SUPCHECK_DYN tfoagain" \
		"--mode preload $SUPCHECK_DYN tfowait"; do
		# shellcheck disable=SC2086
		got=$(timeout 60 "$SOCKSIFY" -x "socks5://127.0.0.1:$DELAY_PORT" -e none $way \
			127.0.0.1 "$HTTP_PORT" /payload.bin 2>"$err" | sha)
		echo "$way: $(cat "$err")"
		[ "$got" = "$PAYLOAD_SHA" ]
		# The socket to the proxy is connected long before the tunnel
		# is: the program's socket is still connecting, and the
		# kernel's answer to a non-blocking fast-open send on a
		# connecting socket is EALREADY; a blocking one (of no bytes
		# here: a send of another thread may overtake the first
		# send's bytes, see LIMITS) waits and says its count.
		case $way in
		*tfoagain) grep -qx "send=$len again=EALREADY" "$err" ;;
		*) grep -qx "send=$len again=0" "$err" ;;
		esac
		n=$((n + 1))
		wait_for_count "$SOCKSIFYD_LOG" 50 "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" "$n"
	done
	sleep 0.3
	run grep -c "target=127.0.0.1:$HTTP_PORT	" "$SOCKSIFYD_LOG"
	[ "$output" = "3" ]
}

@test "TCP Fast Open from a static program: sendto, sendmsg and sendmmsg with MSG_FASTOPEN, tunnelled with their data" {
	start_socksifyd -v
	local call got
	for call in sendto sendmsg sendmmsg; do
		got=$(via "$SUPCHECK_STATIC" tfo "$call" 127.0.0.1 "$HTTP_PORT" /payload.bin | sha)
		echo "$call: $got"
		[ "$got" = "$PAYLOAD_SHA" ]
	done
	sleep 0.3
	run grep -c "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" "$SOCKSIFYD_LOG"
	[ "$output" = "3" ]
}

# The next alternative is dialled on the same socket: an IPV6_V6ONLY one,
# the IPv6 proxy first and down, reached the IPv4 one only if it may speak
# IPv4 from the start (the supervisor cleared the flag for a first IPv4
# alternative alone: ECONNREFUSED).
@test "an IPV6_V6ONLY socket, alternatives [::1] (down) then 127.0.0.1: the supervisor reaches the second" {
	start_socksifyd -v
	start_http ::1
	local dead
	dead=$(free_port)
	# (the supervisor's cleared flag reads 0, as the README says)
	run --separate-stderr timeout 60 "$SOCKSIFY" -m seccomp -e none \
		-x "socks5://[::1]:$dead|socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/failover.py" v6only "$HTTP_PORT"
	echo "$status $output $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "0 $(sha <"$WWW/hello.txt")" ]
	proxy_saw '\[::1\]'
}
