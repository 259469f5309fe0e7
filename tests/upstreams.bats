#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# Hops that are not SOCKS5 (CONTRACT.md: http://, socks4://, socks4a://),
# against the servers people have: tinyproxy for HTTP CONNECT, ssh -D and
# danted for SOCKS4 and 4a. curl, git over http and ssh through each hop,
# alone and in chains with socksifyd; sha256 end to end, and each peer's
# own log shows the connection it made.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

# A git repository served over http (the dumb protocol: plain files); sets
# GIT_URL and GIT_SHA (the checked-out file's sha256).
make_git_repo() {
	command -v git >/dev/null || skip "git is not installed (scripts/deps.sh test)"
	local src=$BATS_TEST_TMPDIR/src
	git init -q "$src"
	head -c 300000 "$WWW/payload.bin" >"$src/data.bin"
	git -C "$src" add data.bin
	git -C "$src" -c user.name=t -c user.email=t@t commit -q -m one
	rm -rf "$WWW/repo.git"
	git clone -q --bare "$src" "$WWW/repo.git"
	git -C "$WWW/repo.git" update-server-info
	GIT_URL=http://127.0.0.1:$HTTP_PORT/repo.git
	GIT_SHA=$(sha <"$src/data.bin")
}

# lib URL CMD...: CMD under the library through URL, nothing excluded.
lib() {
	local url=$1
	shift
	env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" "$@"
}


# curl_git_ssh URL: curl (sha256), git clone over http (sha256 of the
# file) and ssh running a command, each through URL.
curl_git_ssh() {
	local got dir=$BATS_TEST_TMPDIR/clone.$RANDOM
	got=$(lib "$1" curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	lib "$1" timeout 60 git clone -q "$GIT_URL" "$dir"
	[ "$(sha <"$dir/data.bin")" = "$GIT_SHA" ]
	# ssh to the private sshd with this test's key, running a command.
	run --separate-stderr lib "$1" timeout 30 ssh -F /dev/null -o BatchMode=yes \
		-o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$SSH_DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o ConnectTimeout=20 -o LogLevel=ERROR \
		-i "$SSH_DIR/user_key" -p "$SSH_PORT" "$(id -un)@127.0.0.1" \
		'echo "through $((6 * 7))"'
	[ "$output" = "through 42" ]
}

@test "http:// (tinyproxy): curl, git over http and ssh; tinyproxy logged each CONNECT" {
	start_tinyproxy
	make_git_repo
	start_sshd
	curl_git_ssh "http://127.0.0.1:$TP_PORT"
	grep -q "CONNECT 127.0.0.1:$HTTP_PORT HTTP/1.1" "$TP_LOG"
	grep -q "CONNECT 127.0.0.1:$SSH_PORT HTTP/1.1" "$TP_LOG"
}

@test "http:// with Basic credentials: the right ones pass; wrong or none are EACCES, the user named" {
	start_tinyproxy alice 's3cret'
	got=$(lib "http://alice:s3cret@127.0.0.1:$TP_PORT" curl -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	run --separate-stderr lib "http://alice:WRONGpw@127.0.0.1:$TP_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "EACCES" ]
	[[ "$stderr" == *"proxy 127.0.0.1:$TP_PORT rejected the password of user \"alice\"; the program sees EACCES"* ]]
	[[ "$stderr" != *WRONGpw* ]]
	run --separate-stderr lib "http://127.0.0.1:$TP_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "EACCES" ]
	[[ "$stderr" == *"wants a username and password: give them in the URL (http://USER:PASS@HOST:PORT)"* ]]
}

@test "http:// by a name only the proxy can resolve: the name in its log" {
	need_dns_jail
	start_tinyproxy
	got=$(lib "http://127.0.0.1:$TP_PORT" curl -sS --max-time 20 \
		"http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	grep -q "CONNECT $PROXY_ONLY_NAME:$HTTP_PORT HTTP/1.1" "$TP_LOG"
}

@test "http:// refusals: a dead target is ECONNREFUSED, named with the proxy's HTTP status" {
	start_tinyproxy
	run --separate-stderr lib "http://127.0.0.1:$TP_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$(free_port)"
	[ "$output" = "ECONNREFUSED" ]
	[[ "$stderr" == *"proxy 127.0.0.1:$TP_PORT refused 127.0.0.1:"*": HTTP 500; the program sees ECONNREFUSED"* ]]
}

@test "socks4:// and socks4a:// (ssh -D): curl, git over http and ssh; ssh logged each request" {
	start_ssh_socks
	make_git_repo
	curl_git_ssh "socks4://127.0.0.1:$SOCKS_PORT"
	curl_git_ssh "socks4a://127.0.0.1:$SOCKS_PORT"
	grep -q "dynamic request: socks4 host 127.0.0.1 port $HTTP_PORT" "$SSH_D_LOG"
	grep -q "dynamic request: socks4 host 127.0.0.1 port $SSH_PORT" "$SSH_D_LOG"
}

@test "ssh -D (socks5): a target nobody listens on is closed with no reply; the line says the target most likely refused, not that the proxy failed" {
	start_ssh_socks
	local dead
	dead=$(free_port)
	run --separate-stderr lib "socks5://127.0.0.1:$SOCKS_PORT" python3 -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
    print("connected")
except OSError as e:
    print(e.errno)' "$dead"
	echo "out: $output; err: $stderr"
	[ "$output" = 111 ]	# ECONNREFUSED, as a direct connect says it
	[[ "$stderr" == *"proxy 127.0.0.1:$SOCKS_PORT closed the connection instead of answering its CONNECT: the target refused it or cannot be reached from there, most likely (ssh -D answers so)"* ]]
	grep -q "connect to 127.0.0.1 port $dead failed\|open failed" "$SSH_D_LOG" || { cat "$SSH_D_LOG"; false; }
}

# SOCKS4 has no greeting: a hang-up after the request is all ssh -D says of
# a target it cannot reach. As alternatives, one such refusal marked every
# alternative down: the next connect, to a live target, failed without a
# dial ("every alternative of hop 1 is down").
@test "ssh -D (socks4a), two alternatives: a target nobody listens on is refused, said as the target's, and puts no alternative in back-off" {
	start_ssh_socks
	local dead chain
	dead=$(free_port)
	chain="socks4a://127.0.0.1:$SOCKS_PORT|socks4a://127.0.0.1:$SOCKS_PORT"
	run --separate-stderr lib "$chain" sh -c '
		curl -sS --max-time 20 "http://127.0.0.1:$1/" -o /dev/null; echo "dead: $?"
		curl -sS --max-time 20 "http://127.0.0.1:$2/payload.bin" | sha256sum | cut -d" " -f1' \
		sh "$dead" "$HTTP_PORT"
	echo "out: $output; err: $stderr"
	[ "${lines[0]}" = "dead: 7" ]
	[ "${lines[1]}" = "$PAYLOAD_SHA" ]
	[[ "$stderr" == *"closed the connection instead of answering its CONNECT: the target refused it or cannot be reached from there, most likely (ssh -D answers so)"* ]]
	[[ "$stderr" != *"is down"* ]]
}

@test "socks4a:// by a name only the proxy side resolves (sshd does); socks4:// resolves here" {
	need_dns_jail
	start_ssh_socks
	got=$(lib "socks4a://127.0.0.1:$SOCKS_PORT" curl -sS --max-time 20 \
		"http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	grep -q "dynamic request: socks4 host $PROXY_ONLY_NAME port $HTTP_PORT" "$SSH_D_LOG"
	# SOCKS4 carries addresses: the name must resolve here, and does not.
	run --separate-stderr lib "socks4://127.0.0.1:$SOCKS_PORT" curl -sS --max-time 20 \
		"http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin"
	[ "$status" -eq 6 ]		# curl: could not resolve host
	got=$(lib "socks4://127.0.0.1:$SOCKS_PORT" curl -4 -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

@test "socks4:// (danted): curl intact, danted logged it; a refused target is reply 91, ECONNREFUSED" {
	start_danted
	got=$(lib "socks4://127.0.0.1:$PROXY_PORT" curl -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	grep -q "127\.0\.0\.1\.$HTTP_PORT" "$BATS_TEST_TMPDIR/danted.log"
	run --separate-stderr lib "socks4://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$(free_port)"
	[ "$output" = "ECONNREFUSED" ]
	[[ "$stderr" == *"refused 127.0.0.1:"*": SOCKS4 reply 91 (rejected or failed); the program sees ECONNREFUSED"* ]]
}

@test "socks4:// cannot carry IPv6: EAFNOSUPPORT, said why" {
	start_danted
	start_http ::1
	run --separate-stderr lib "socks4://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect ::1 "$HTTP_PORT"
	[ "$output" = "EAFNOSUPPORT" ]
	[[ "$stderr" == *"cannot be asked for [::1]:$HTTP_PORT: SOCKS4 takes IPv4 destinations only"* ]]
}

@test "chains mixing SOCKS5 with http://, socks4a:// and socks4://: curl, git and ssh; every hop's log shows its leg" {
	start_tinyproxy
	start_ssh_socks
	start_socksifyd -v
	make_git_repo
	# socksifyd, then tinyproxy, then ssh -D (SOCKS4a), then the target.
	curl_git_ssh "socks5://127.0.0.1:$PROXY_PORT,http://127.0.0.1:$TP_PORT,socks4a://127.0.0.1:$SOCKS_PORT"
	grep -q "target=127\.0\.0\.1:$TP_PORT" "$SOCKSIFYD_LOG"
	grep -q "CONNECT 127.0.0.1:$SOCKS_PORT HTTP/1.1" "$TP_LOG"
	grep -q "dynamic request: socks4 host 127.0.0.1 port $HTTP_PORT" "$SSH_D_LOG"
	grep -q "dynamic request: socks4 host 127.0.0.1 port $SSH_PORT" "$SSH_D_LOG"
	# ssh -D as SOCKS4, then socksifyd (by name), then the target: curl.
	got=$(lib "socks4://127.0.0.1:$SOCKS_PORT,socks5h://127.0.0.1:$PROXY_PORT" curl -sS \
		--max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# Each line is written once its process has seen the close, after
	# curl is gone: ssh, then sshd, then socksifyd.
	wait_for_line "$SSH_D_LOG" 30 "dynamic request: socks4 host 127.0.0.1 port $PROXY_PORT"
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT"
}

@test "UDP needs a SOCKS5 hop: through http:// a datagram is EPERM, said why" {
	start_tinyproxy
	run --separate-stderr lib "http://127.0.0.1:$TP_PORT" python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", ("127.0.0.1", 9)); print("sent")
except PermissionError:
    print("EPERM")'
	[ "$output" = "EPERM" ]
	[[ "$stderr" == *"UDP datagram blocked: a proxy that is no SOCKS5 one (127.0.0.1:$TP_PORT) relays no UDP"* ]]
}
