#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# What a user is told when a proxy fails (CONTRACT.md "diagnostics"): one
# line on stderr at the default level naming the hop and the reason, never
# the password; the same words in --trace; nothing under -q; a retrying
# program gets a line per hop and reason, not one per attempt.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

# ours: the library's lines in $1 (stderr of a run), one a line.
ours() { grep '^socksify\[[0-9]*\]: ' <<<"$1" | sed 's/^socksify\[[0-9]*\]: //'; }

# probe URL HOST PORT: a blocking connect under the library through URL,
# nothing excluded; stdout says what the program saw (netprobe.py).
probe() {
	env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$1" \
		timeout 20 python3 "$HELPERS/netprobe.py" connect "$2" "$3"
}

# users: a users file with bob's password; sets USERS.
users() {
	USERS=$BATS_TEST_TMPDIR/users
	printf 'bob:hunter2\n' >"$USERS"
	chmod 600 "$USERS"
}

@test "a dead proxy is named at the default level: curl by name through socksify -x" {
	run --separate-stderr "$SOCKSIFY" -x socks5h://127.0.0.1:1 curl -s --max-time 10 http://files.test/
	[ "$status" -eq 7 ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:1 cannot be reached: Connection refused; the program sees ECONNREFUSED" ]
}

@test "-q: a dead proxy says nothing of ours" {
	run --separate-stderr "$SOCKSIFY" -q -x socks5h://127.0.0.1:1 curl -s --max-time 10 http://files.test/
	[ "$status" -eq 7 ]
	[ -z "$(ours "$stderr")" ]
}

@test "--trace: the failing connection's line gives the same reason, once" {
	run --separate-stderr "$SOCKSIFY" -t -x socks5h://127.0.0.1:1 curl -s --max-time 10 http://files.test/
	[ "$status" -eq 7 ]
	[ "$(ours "$stderr")" = "connect files.test:80 via 127.0.0.1:1: failed: proxy 127.0.0.1:1 cannot be reached: Connection refused (ECONNREFUSED)" ]
}

@test "a wrong password: the user is named, the password never" {
	users
	start_socksifyd -u "$USERS"
	run --separate-stderr probe "socks5h://bob:WRONGpass@127.0.0.1:$PROXY_PORT" files.test 80
	[ "$output" = "EACCES" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$PROXY_PORT rejected the password of user \"bob\"; the program sees EACCES" ]
	[[ "$stderr" != *WRONGpass* ]]
}

@test "a proxy that wants credentials and got none says so" {
	users
	start_socksifyd -u "$USERS"
	run --separate-stderr probe "socks5h://127.0.0.1:$PROXY_PORT" files.test 80
	[ "$output" = "EACCES" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$PROXY_PORT wants a username and password: give them in the URL (socks5h://USER:PASS@HOST:PORT); the program sees EACCES" ]
}

@test "a refused target: the reply code in words, the name the program asked for" {
	start_socksifyd
	run --separate-stderr probe "socks5h://127.0.0.1:$PROXY_PORT" nowhere.invalid 80
	[ "$output" = "EHOSTUNREACH" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$PROXY_PORT refused nowhere.invalid:80: reply 04, host unreachable; the program sees EHOSTUNREACH" ]
	run --separate-stderr probe "socks5h://127.0.0.1:$PROXY_PORT" 127.0.0.1 1
	[ "$output" = "ECONNREFUSED" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$PROXY_PORT refused 127.0.0.1:1: reply 05, connection refused; the program sees ECONNREFUSED" ]
}

@test "an HTTP server given as a SOCKS5 proxy: it answered in HTTP" {
	start_fake http
	run --separate-stderr probe "socks5h://127.0.0.1:$FAKE_PORT" files.test 80
	[ "$output" = "ECONNREFUSED" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$FAKE_PORT does not speak SOCKS5: it answered in HTTP; the program sees ECONNREFUSED" ]
}

@test "a proxy that never answers: timed out, with the setting that bounds it" {
	start_fake mute
	SOCKSIFY_TIMEOUT=1 run --separate-stderr probe "socks5h://127.0.0.1:$FAKE_PORT" files.test 80
	[ "$output" = "ETIMEDOUT" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$FAKE_PORT did not finish the handshake within 1000 ms (SOCKSIFY_TIMEOUT); the program sees ETIMEDOUT" ]
}

@test "a chain whose second hop is dead: the first hop is named as refusing the next" {
	start_socksifyd
	run --separate-stderr probe "socks5://127.0.0.1:$PROXY_PORT,socks5h://127.0.0.1:1" files.test 80
	[ "$output" = "ECONNREFUSED" ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:$PROXY_PORT (hop 1 of 2) refused the next hop 127.0.0.1:1: reply 05, connection refused; the program sees ECONNREFUSED" ]
}

@test "a program retrying 100 times against a dead proxy gets one line, not a hundred" {
	run --separate-stderr env SOCKSIFY_EXCLUDE=none \
		LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:1" \
		python3 -c 'import socket
fails = 0
for _ in range(100):
    s = socket.socket()
    try:
        s.connect(("files.test", 80))
    except ConnectionRefusedError:
        fails += 1
    s.close()
print(fails)'
	[ "$output" = "100" ]
	[ "$(ours "$stderr" | wc -l)" -eq 1 ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:1 cannot be reached: Connection refused; the program sees ECONNREFUSED" ]
}

@test "SOCKSIFY_LOG=error is -q's level: a dead proxy says nothing; warn is the default" {
	SOCKSIFY_LOG=error run --separate-stderr probe socks5h://127.0.0.1:1 files.test 80
	[ "$output" = "ECONNREFUSED" ]
	[ -z "$(ours "$stderr")" ]
	SOCKSIFY_LOG=warn run --separate-stderr probe socks5h://127.0.0.1:1 files.test 80
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:1 cannot be reached: Connection refused; the program sees ECONNREFUSED" ]
}

# --- Parsing that says what it means ----------------------------------------

@test "a proxy URL with another scheme: exit 125, one line listing the schemes" {
	run --separate-stderr "$SOCKSIFY" -x socks://127.0.0.1:1080 true
	[ "$status" -eq 125 ]
	[ "$stderr" = "socksify: proxy socks://127.0.0.1:1080: unsupported scheme (supported: socks5://, socks5h://, socks4://, socks4a://, http://)" ]
}

@test "a scheme without // is named as such, not taken for an IPv6 address" {
	run --separate-stderr "$SOCKSIFY" -x socks5h:127.0.0.1:1080 true
	[ "$status" -eq 125 ]
	[ "$stderr" = 'socksify: proxy socks5h:127.0.0.1:1080: missing "//" after the scheme (socks5h://HOST[:PORT])' ]
}

@test "SOCKSIFY_EXCLUDE replaces the loopback default; with a leading + it adds to it" {
	# A dead proxy: a loopback fetch works only if it went direct.
	got=$(env SOCKSIFY_EXCLUDE=+10.0.0.0/8 LD_PRELOAD="$LIB" SOCKSIFY_PROXY=socks5h://127.0.0.1:1 \
		curl -sS --max-time 10 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	run --separate-stderr env SOCKSIFY_EXCLUDE=10.0.0.0/8 LD_PRELOAD="$LIB" SOCKSIFY_PROXY=socks5h://127.0.0.1:1 \
		curl -s --max-time 10 "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$status" -eq 7 ]
	[ "$(ours "$stderr")" = "proxy 127.0.0.1:1 cannot be reached: Connection refused; the program sees ECONNREFUSED" ]
}

@test "with the embedded server (default: nothing excluded), SOCKSIFY_EXCLUDE=+CIDR adds to nothing: loopback is tunnelled" {
	run --separate-stderr env SOCKSIFY_EXCLUDE=+10.0.0.0/8 "$SOCKSIFY" -t curl -sS --max-time 20 \
		-o /dev/null "http://127.0.0.1:$HTTP_PORT/payload.bin"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"connect 127.0.0.1:$HTTP_PORT via 127.0.0.1:"*": ok"* ]]
	[[ "$stderr" != *"direct (excluded)"* ]]
}

@test "--help gives the defaults: exclusions, log level, timeout, mode, UDP" {
	run "$SOCKSIFY" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"defaults (127.0.0.0/8,::1 with -x, none with"* ]]
	[[ "$output" == *"SOCKSIFY_EXCLUDE [127.0.0.0/8,::1; a value replaces it"* ]]
	[[ "$output" == *"SOCKSIFY_LOG [warn]"* ]]
	[[ "$output" == *"SOCKSIFY_TIMEOUT [15 s]"* ]]
	[[ "$output" == *"SOCKSIFY_MODE [auto]"* ]]
	[[ "$output" == *"SOCKSIFY_UDP [proxy"* ]]
}
