#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# socksify --check (CONTRACT.md): the chain walked step by step against the
# servers people run (socksifyd, microsocks, danted, tinyproxy, ssh -D),
# working and dead, with and without credentials: the exit status, and the
# line of the step that fails.

load helpers/common

teardown() { stop_all; }

# check ARGS...: socksify --check ARGS, its lines in lines[], stderr apart.
check() {
	run --separate-stderr timeout 60 "$SOCKSIFY" --check "$@"
	echo "$output"
}

# has LINE: some line of the last check is exactly LINE.
has() {
	local l
	for l in "${lines[@]}"; do
		[ "$l" = "$1" ] && return 0
	done
	echo "no line: $1"
	return 1
}

users() {
	USERS=$BATS_TEST_TMPDIR/users
	printf 'bob:hunter2\n' >"$USERS"
	chmod 600 "$USERS"
}

@test "socksifyd (socks5h): TCP, handshake, a name resolved by the proxy, UDP offered; exit 0" {
	start_socksifyd
	check -x "socks5h://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "checking 1 hop (127.0.0.1:$PROXY_PORT) for localhost:$PROXY_PORT" ]
	[[ "${lines[1]}" =~ ^hop\ 1\ of\ 1\ socks5h://127\.0\.0\.1:$PROXY_PORT:\ TCP\ to\ 127\.0\.0\.1:$PROXY_PORT:\ ok\ \([0-9.]+\ ms\)$ ]]
	[[ "${lines[2]}" == "hop 1 of 1 socks5h://127.0.0.1:$PROXY_PORT: SOCKS5, no authentication, takes pipelined handshakes; CONNECT localhost:$PROXY_PORT: ok, the name resolved by the proxy ("*" ms)" ]]
	[[ "${lines[3]}" =~ ^UDP:\ UDP\ ASSOCIATE\ offered\ \(relay\ 127\.0\.0\.1:[0-9]+\)$ ]]
	[[ "${lines[4]}" =~ ^ok:\ the\ chain\ works ]]
}

@test "socksifyd with credentials: accepted; a wrong password fails at the handshake, the user named, never the password" {
	users
	start_socksifyd -u "$USERS"
	check -x "socks5://bob:hunter2@127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == "hop 1 of 1 socks5://bob@127.0.0.1:$PROXY_PORT: SOCKS5, username and password accepted, takes pipelined handshakes; CONNECT 127.0.0.1:$PROXY_PORT: ok ("* ]]
	check -x "socks5://bob:WRONGpw@127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5://bob@127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT rejected the password of user \"bob\" (a program would see EACCES)"
	[[ "$output$stderr" != *WRONGpw* ]]
	# a user name with a line feed (%0a) splits no line: one FAILED line
	check -x "socks5://b%0aFAKE%1b[31m:pw@127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5://b%0AFAKE%1B%5B31m@127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT rejected the password of user \"b?FAKE?[31m\" (a program would see EACCES)"
	[ "${#lines[@]}" -eq 3 ]
	check -x "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5://127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT wants a username and password: give them in the URL (socks5://USER:PASS@HOST:PORT) (a program would see EACCES)"
}

@test "a dead proxy fails at TCP; a mute one at the handshake, after SOCKSIFY_TIMEOUT" {
	dead=$(free_port)
	check -x "socks5h://127.0.0.1:$dead"
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = "hop 1 of 1 socks5h://127.0.0.1:$dead: TCP to 127.0.0.1:$dead: FAILED: Connection refused (a program would see ECONNREFUSED)" ]
	start_fake mute
	SOCKSIFY_TIMEOUT=1 check -x "socks5h://127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5h://127.0.0.1:$FAKE_PORT: FAILED: proxy 127.0.0.1:$FAKE_PORT did not finish the handshake within 1000 ms (SOCKSIFY_TIMEOUT) (a program would see ETIMEDOUT)"
}

@test "a chain whose second hop is dead: the first hop's CONNECT to it fails, named" {
	start_socksifyd
	dead=$(free_port)
	check -x "socks5://127.0.0.1:$PROXY_PORT" -x "socks5h://127.0.0.1:$dead"
	[ "$status" -eq 1 ]
	has "hop 1 of 2 socks5://127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT (hop 1 of 2) refused the next hop 127.0.0.1:$dead: reply 05, connection refused (a program would see ECONNREFUSED)"
}

@test "a proxy whose name has no address here: a failed step (exit 1, the hop named), not a usage error" {
	need_dns_jail
	check -x socks5h://noname.socksify.test:1080
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5h://noname.socksify.test:1080: FAILED: no address for its name here (a program would see ECONNREFUSED)"
}

@test "alternatives of the last hop, the first one dead: the default target is the alternative checked; exit 0" {
	start_socksifyd
	dead=$(free_port)
	check -x "socks5h://127.0.0.1:$dead|socks5h://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	# The header names no one alternative's address (it named the first's).
	[ "${lines[0]}" = "checking 1 hop (127.0.0.1:$dead|127.0.0.1:$PROXY_PORT) for the last hop itself (each alternative its own address)" ]
	has "hop 1 of 1, alternative 1 of 2, socks5h://127.0.0.1:$dead: TCP to 127.0.0.1:$dead: FAILED: Connection refused (a program would see ECONNREFUSED)"
	[[ "${lines[3]}" == "hop 1 of 1, alternative 2 of 2, socks5h://127.0.0.1:$PROXY_PORT: SOCKS5, no authentication, takes pipelined handshakes; CONNECT localhost:$PROXY_PORT: ok, the name resolved by the proxy ("*" ms)" ]]
	check -x "socks5://127.0.0.1:$dead|socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "${lines[3]}" == "hop 1 of 1, alternative 2 of 2, socks5://127.0.0.1:$PROXY_PORT: SOCKS5, no authentication, takes pipelined handshakes; CONNECT 127.0.0.1:$PROXY_PORT: ok ("*" ms)" ]]
	# a chain: the last hop's alternatives, behind a first hop
	check -x "socks5://127.0.0.1:$PROXY_PORT" -x "socks5h://127.0.0.1:$dead|socks5h://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 2 socks5://127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT (hop 1 of 2) refused the next hop 127.0.0.1:$dead: reply 05, connection refused; checking the next alternative"
	[[ "$output" == *"hop 2 of 2, alternative 2 of 2, socks5h://127.0.0.1:$PROXY_PORT: SOCKS5, no authentication, takes pipelined handshakes; CONNECT localhost:$PROXY_PORT: ok, the name resolved by the proxy ("* ]]
}

@test "--check-target: a name only the proxy resolves passes; one nobody resolves fails with reply 04" {
	need_dns_jail
	start_socksifyd
	check -x "socks5h://127.0.0.1:$PROXY_PORT" --check-target "$PROXY_ONLY_NAME:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == *"CONNECT $PROXY_ONLY_NAME:$PROXY_PORT: ok, the name resolved by the proxy ("* ]]
	check -x "socks5h://127.0.0.1:$PROXY_PORT" --check-target no-such-host.invalid:80
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5h://127.0.0.1:$PROXY_PORT: FAILED: proxy 127.0.0.1:$PROXY_PORT refused no-such-host.invalid:80: reply 04, host unreachable (a program would see EHOSTUNREACH)"
}

@test "microsocks: works, and says it offers no UDP (reply 07); with -u/-P a wrong password fails" {
	start_microsocks
	# socks5://: the target is microsocks' own address (it tries only the
	# first address of a name, and localhost may be ::1 first).
	check -x "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	has "UDP: UDP ASSOCIATE not offered (reply 07, command not supported)"
	command -v microsocks >/dev/null
	port=$(free_port)
	microsocks -i 127.0.0.1 -p "$port" -u bob -P hunter2 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_port "$port" 50
	check -x "socks5://bob:hunter2@127.0.0.1:$port"
	[ "$status" -eq 0 ]
	check -x "socks5://bob:nope@127.0.0.1:$port"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5://bob@127.0.0.1:$port: FAILED: proxy 127.0.0.1:$port rejected the password of user \"bob\" (a program would see EACCES)"
}

@test "danted: refuses a connection to itself (the default target): it answers, so ok, with its reply said; socks5 and socks4 to a real target work" {
	make_payload
	start_http 127.0.0.1
	start_danted
	check -x "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 1 socks5://127.0.0.1:$PROXY_PORT: proxy 127.0.0.1:$PROXY_PORT refused 127.0.0.1:$PROXY_PORT: reply 02, connection not allowed by ruleset (a program would see EACCES); it answers, only not for this destination of ours: --check-target HOST:PORT asks for one you use"
	[[ "${lines[-1]}" == "ok: the chain answers ("* ]]
	check -x "socks5://127.0.0.1:$PROXY_PORT" --check-target "127.0.0.1:$HTTP_PORT"
	[ "$status" -eq 0 ]
	check -x "socks4://127.0.0.1:$PROXY_PORT" --check-target "127.0.0.1:$HTTP_PORT"
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == "hop 1 of 1 socks4://127.0.0.1:$PROXY_PORT: SOCKS4; CONNECT 127.0.0.1:$HTTP_PORT: ok ("* ]]
	has "UDP: not through this chain (only a single SOCKS5 hop relays UDP)"
}

@test "tinyproxy (http://): works; with BasicAuth the right password passes, a wrong one fails" {
	start_tinyproxy
	check -x "http://127.0.0.1:$TP_PORT"
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == "hop 1 of 1 http://127.0.0.1:$TP_PORT: HTTP CONNECT; CONNECT localhost:$TP_PORT: ok, the name resolved by the proxy ("* ]]
	grep -q "CONNECT localhost:$TP_PORT HTTP/1.1" "$TP_LOG"
	stop_all
	start_tinyproxy alice s3cret
	check -x "http://alice:s3cret@127.0.0.1:$TP_PORT"
	[ "$status" -eq 0 ]
	check -x "http://alice:bad@127.0.0.1:$TP_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 http://alice@127.0.0.1:$TP_PORT: FAILED: proxy 127.0.0.1:$TP_PORT rejected the password of user \"alice\" (a program would see EACCES)"
}

@test "a proxy that refuses the default destination with anything but a policy refusal (reply 01: it cannot get out) fails the check" {
	start_py_port fakeproxy.py s5fail "$BATS_TEST_TMPDIR/fail.count"
	check -x "socks5://127.0.0.1:$HELPER_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5://127.0.0.1:$HELPER_PORT: FAILED: proxy 127.0.0.1:$HELPER_PORT refused 127.0.0.1:$HELPER_PORT: reply 01, general SOCKS server failure (a program would see ECONNREFUSED)"
}

@test "tinyproxy that CONNECTs to port 443 alone (as squid and Debian's defaults do): the default probe's 403 is an answer, ok; a real target it refuses fails" {
	TP_EXTRA="ConnectPort 443" start_tinyproxy
	check -x "http://127.0.0.1:$TP_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 1 http://127.0.0.1:$TP_PORT: proxy 127.0.0.1:$TP_PORT refused localhost:$TP_PORT: HTTP 403 (a program would see EACCES); it answers, only not for this destination of ours: --check-target HOST:PORT asks for one you use"
	[[ "${lines[-1]}" == "ok: the chain answers ("* ]]
	# a destination the user names is judged: refused, so failed
	check -x "http://127.0.0.1:$TP_PORT" --check-target 127.0.0.1:8080
	[ "$status" -eq 1 ]
	has "hop 1 of 1 http://127.0.0.1:$TP_PORT: FAILED: proxy 127.0.0.1:$TP_PORT refused 127.0.0.1:8080: HTTP 403 (a program would see EACCES)"
}

# socks5h's default target for a proxy given by address is localhost at its
# port: nothing listens there when the proxy listens on another address, so
# the proxy's own address is asked for next. That proves the CONNECT: an
# ssh -D whose server forwards nothing fails it too.
@test "a proxy listening elsewhere than on 127.0.0.1 (microsocks -i, ssh -D ADDR:PORT): localhost at its port refused (05, or ssh -D's hang-up), then its own address works: ok; a server that forwards nothing fails" {
	start_microsocks 127.0.0.2
	check -x "socks5h://127.0.0.2:$PROXY_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 1 socks5h://127.0.0.2:$PROXY_PORT: proxy 127.0.0.2:$PROXY_PORT refused localhost:$PROXY_PORT: reply 05, connection refused; asking for its own address instead (it may listen elsewhere than on loopback)"
	[[ "${lines[4]}" == "hop 1 of 1 socks5h://127.0.0.2:$PROXY_PORT: SOCKS5, no authentication; CONNECT 127.0.0.2:$PROXY_PORT: ok ("* ]]
	[[ "${lines[-1]}" == "ok: the chain works ("* ]]
	local dead
	dead=$(free_port)
	check -x "socks5h://127.0.0.2:$PROXY_PORT" --check-target "127.0.0.1:$dead"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5h://127.0.0.2:$PROXY_PORT: FAILED: proxy 127.0.0.2:$PROXY_PORT refused 127.0.0.1:$dead: reply 05, connection refused (a program would see ECONNREFUSED)"
	start_ssh_socks 127.0.0.2
	check -x "socks5h://127.0.0.2:$SOCKS_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 1 socks5h://127.0.0.2:$SOCKS_PORT: proxy 127.0.0.2:$SOCKS_PORT closed the connection instead of answering its CONNECT: the target refused it or cannot be reached from there, most likely (ssh -D answers so); asking for its own address instead (it may listen elsewhere than on loopback)"
	[[ "${lines[-1]}" == "ok: the chain works ("* ]]
	grep -q "dynamic request: socks5 host localhost port $SOCKS_PORT" "$SSH_D_LOG"
	grep -q "dynamic request: socks5 host 127.0.0.2 port $SOCKS_PORT" "$SSH_D_LOG"
	# socks4a, which has no greeting: the hang-up after its request too
	check -x "socks4a://127.0.0.2:$SOCKS_PORT"
	[ "$status" -eq 0 ]
	has "hop 1 of 1 socks4a://127.0.0.2:$SOCKS_PORT: proxy 127.0.0.2:$SOCKS_PORT closed the connection instead of answering its CONNECT: the target refused it or cannot be reached from there, most likely (ssh -D answers so); asking for its own address instead (it may listen elsewhere than on loopback)"
	[[ "${lines[-1]}" == "ok: the chain works ("* ]]
	# a server that forwards nothing: ssh -D hangs up on both
	stop_all
	rm -rf "$BATS_TEST_TMPDIR/ssh"
	SSHD_MODE=plain start_ssh_socks 127.0.0.2
	check -x "socks5h://127.0.0.2:$SOCKS_PORT"
	[ "$status" -eq 1 ]
	has "hop 1 of 1 socks5h://127.0.0.2:$SOCKS_PORT: FAILED: proxy 127.0.0.2:$SOCKS_PORT closed the connection instead of answering its CONNECT: the target refused it or cannot be reached from there, most likely (ssh -D answers so) (a program would see ECONNREFUSED)"
}

@test "ssh -D: socks5h, socks4a and socks4 all work; ssh logged the requests" {
	start_ssh_socks
	check -x "socks5h://127.0.0.1:$SOCKS_PORT"
	[ "$status" -eq 0 ]
	check -x "socks4a://127.0.0.1:$SOCKS_PORT"
	[ "$status" -eq 0 ]
	check -x "socks4://127.0.0.1:$SOCKS_PORT"
	[ "$status" -eq 0 ]
	grep -q "dynamic request: socks4 host localhost port $SOCKS_PORT" "$SSH_D_LOG"
	grep -q "dynamic request: socks4 host 127.0.0.1 port $SOCKS_PORT" "$SSH_D_LOG"
}

@test "with no proxy, --check checks the embedded server, and leaves nothing running" {
	local mark=check-$$-$RANDOM left
	TEST_MARK=$mark check
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == *": SOCKS5, username and password accepted, takes pipelined handshakes; CONNECT localhost:"*": ok, the name resolved by the proxy ("* ]]
	sleep 0.3
	left=$(marked_pids "$mark")
	for p in $left; do ps -o pid,ppid,args -p "$p" || true; done
	[ -z "$left" ]
}

@test "usage errors: exit 125, one line" {
	run --separate-stderr "$SOCKSIFY" --check true
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check runs no command: true" ]
	run --separate-stderr "$SOCKSIFY" --check-target h:1 true
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check-target needs --check" ]
	run --separate-stderr "$SOCKSIFY" --check -x 127.0.0.1:1080 --check-target nohost
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check-target nohost: needs HOST:PORT" ]
	# fd00::1:8080 is an IPv6 address without a port
	run --separate-stderr "$SOCKSIFY" --check -x 127.0.0.1:1080 --check-target fd00::1:8080
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check-target fd00::1:8080: needs HOST:PORT (an IPv6 host goes in brackets: [::1]:PORT)" ]
	# a port given, but no port a connection can have: that said, not
	# "needs HOST:PORT"
	run --separate-stderr "$SOCKSIFY" --check -x 127.0.0.1:1080 --check-target h:0
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check-target h:0: port 0: a connection needs a port from 1 to 65535" ]
	run --separate-stderr "$SOCKSIFY" --check -x 127.0.0.1:1080 --check-target '[::1]:0'
	[ "$stderr" = "socksify: --check-target [::1]:0: port 0: a connection needs a port from 1 to 65535" ]
	run --separate-stderr "$SOCKSIFY" --check -x 127.0.0.1:1080 --check-target h:99999
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: --check-target h:99999: bad port" ]
}

# The case of issue 14: with -x, loopback goes direct (the proxy's loopback
# is another host's), so a loopback target "works" through a dead proxy.
# --check is how to tell: it fails at TCP, where the fetch succeeded.
@test "a dead proxy hidden by a loopback target (direct by default) is shown by --check" {
	make_payload
	start_http 127.0.0.1
	dead=$(free_port)
	got=$("$SOCKSIFY" -x "socks5h://127.0.0.1:$dead" curl -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	check -x "socks5h://127.0.0.1:$dead"
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = "hop 1 of 1 socks5h://127.0.0.1:$dead: TCP to 127.0.0.1:$dead: FAILED: Connection refused (a program would see ECONNREFUSED)" ]
}
