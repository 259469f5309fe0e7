#!/usr/bin/env bats
# socksifyd against the SOCKS5 clients people actually use (curl, PySocks,
# ncat, proxychains4), under load, and against every malformed handshake of
# RFC 1928 / RFC 1929. Contents are checked by sha256 end to end.
# scripts/deps.sh test installs ncat, proxychains4 and python3-socks.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

# Debian's python, the one that can import PySocks (python3-socks).
SYSPY=/usr/bin/python3

need_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "$1 is missing: run 'sh scripts/deps.sh test'" >&2
	return 1
}


# sha256 of the body of the HTTP response on stdin (headers stripped).
body_sha() {
	python3 -c 'import hashlib,sys
print(hashlib.sha256(sys.stdin.buffer.read().partition(b"\r\n\r\n")[2]).hexdigest())'
}

# A users file with two users; USERS is its path.
make_users() {
	USERS=$BATS_TEST_TMPDIR/users
	printf 'alice:s3cret pass\nbob:hunter2\n' >"$USERS"
	chmod 600 "$USERS"
}

# A name only the proxy can resolve where the test namespace exists, so a
# success proves the proxy resolved it; plain localhost elsewhere.
remote_name() {
	if [ "${SOCKSIFY_TEST_NS:-0}" = 1 ]; then
		echo "$PROXY_ONLY_NAME"
	else
		echo localhost
	fi
}

# start_echod [first RESULTFILE]: tests/helpers/echod.py on 127.0.0.1; sets ECHO_PORT.
start_echod() {
	local pf=$BATS_TEST_TMPDIR/echo.port
	rm -f "$pf"
	python3 "$HELPERS/echod.py" 127.0.0.1 "$pf" "$@" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	ECHO_PORT=$(cat "$pf")
}

# One good fetch through the proxy; fails unless hello.txt arrives.
good_fetch() {
	local out
	out=$(curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/hello.txt")
	[ "$out" = "hello through socks" ] || { echo "good fetch after '$1' got: $out" >&2; return 1; }
}

# --- curl ---------------------------------------------------------------

@test "curl --socks5 --proxy-user: good password fetches 1 MiB intact, bad ones are refused" {
	make_users
	start_socksifyd -u "$USERS" -v
	got=$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" --proxy-user 'alice:s3cret pass' \
	    "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	got=$(curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$PROXY_PORT" --proxy-user bob:hunter2 \
	    "http://$(remote_name):$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# wrong password, unknown user, no credentials at all: curl's 97 (proxy handshake failed)
	for cred in alice:wrong carol:hunter2 'bob:hunter2 '; do
		run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" --proxy-user "$cred" \
		    "http://127.0.0.1:$HTTP_PORT/hello.txt"
		[ "$status" -eq 97 ]
	done
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 97 ]
	wait_for_line "$SOCKSIFYD_LOG" 30 'user=bob.*outcome=ok'
	wait_for_count "$SOCKSIFYD_LOG" 30 'outcome=auth failed' 3
}

@test "curl --socks5-hostname: the name reaches the proxy (ATYP 03), bytes intact" {
	start_socksifyd -v
	name=$(remote_name)
	got=$(curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$PROXY_PORT" "http://$name:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$name:$HTTP_PORT.*connected=127\.0\.0\.1:$HTTP_PORT.*outcome=ok"
}

# --- PySocks ------------------------------------------------------------

@test "PySocks: no auth, rdns off (ATYP 01) and on (ATYP 03), 1 MiB intact" {
	$SYSPY -c 'import socks' || { echo "python3-socks missing: run 'sh scripts/deps.sh test'" >&2; return 1; }
	start_socksifyd -v
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" 127.0.0.1 "$HTTP_PORT" /payload.bin 0
	[ "$status" -eq 0 ]
	[ "$output" = "200 $PAYLOAD_SHA" ]
	name=$(remote_name)
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" "$name" "$HTTP_PORT" /payload.bin 1
	[ "$status" -eq 0 ]
	[ "$output" = "200 $PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$name:$HTTP_PORT.*outcome=ok"
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*outcome=ok" 1
}

@test "PySocks: username/password (RFC 1929), rdns off and on; a wrong password is refused" {
	$SYSPY -c 'import socks' || { echo "python3-socks missing: run 'sh scripts/deps.sh test'" >&2; return 1; }
	make_users
	start_socksifyd -u "$USERS" -v
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" 127.0.0.1 "$HTTP_PORT" /payload.bin 0 alice 's3cret pass'
	[ "$status" -eq 0 ]
	[ "$output" = "200 $PAYLOAD_SHA" ]
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" "$(remote_name)" "$HTTP_PORT" /payload.bin 1 bob hunter2
	[ "$status" -eq 0 ]
	[ "$output" = "200 $PAYLOAD_SHA" ]
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" 127.0.0.1 "$HTTP_PORT" /payload.bin 0 bob wrong
	[ "$status" -eq 1 ]
	# PySocks wraps its SOCKS5AuthError in a GeneralProxyError
	[[ "$output" == *"SOCKS5 authentication failed"* ]]
	# no credentials: the server offers no method PySocks can use
	run $SYSPY "$HELPERS/pysocks_get.py" "$PROXY_PORT" 127.0.0.1 "$HTTP_PORT" /payload.bin 0
	[ "$status" -eq 1 ]
	[[ "$output" == *"authentication methods were rejected"* ]]
	wait_for_line "$SOCKSIFYD_LOG" 30 'user=bob.*outcome=auth failed'
	wait_for_count "$SOCKSIFYD_LOG" 30 'outcome=ok' 2
}

# --- ncat ---------------------------------------------------------------

@test "ncat --proxy-type socks5: an HTTP request piped in, the whole response read back" {
	need_tool ncat
	start_socksifyd -v
	# stdin's EOF makes ncat half-close; the response still arrives in full
	got=$(printf 'GET /payload.bin HTTP/1.0\r\n\r\n' |
	    timeout 20 ncat --proxy-type socks5 --proxy "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$HTTP_PORT" | body_sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT.*t2c=1048[0-9]{3}.*outcome=ok"
}

@test "ncat --proxy-auth user:pass: served with the right password, refused with a wrong one" {
	need_tool ncat
	make_users
	start_socksifyd -u "$USERS" -v
	got=$(printf 'GET /payload.bin HTTP/1.0\r\n\r\n' |
	    timeout 20 ncat --proxy-type socks5 --proxy "127.0.0.1:$PROXY_PORT" --proxy-auth bob:hunter2 \
	    127.0.0.1 "$HTTP_PORT" | body_sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	run timeout 20 ncat --proxy-type socks5 --proxy "127.0.0.1:$PROXY_PORT" --proxy-auth bob:nope \
	    127.0.0.1 "$HTTP_PORT" </dev/null
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	wait_for_line "$SOCKSIFYD_LOG" 30 'user=bob.*outcome=auth failed'
	wait_for_count "$SOCKSIFYD_LOG" 30 'user=bob.*outcome=ok' 1
}

# --- proxychains4 -------------------------------------------------------

# write_pc_conf [EXTRA-LINE...]: a proxychains.conf through our proxy, no
# localnet lines (so 127.0.0.1 is not excluded); sets PC_CONF.
write_pc_conf() {
	PC_CONF=$BATS_TEST_TMPDIR/proxychains.conf
	{
		printf 'strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n'
		local l
		for l in "$@"; do printf '%s\n' "$l"; done
		printf '[ProxyList]\nsocks5 127.0.0.1 %s %s\n' "$PROXY_PORT" "${PC_CRED:-}"
	} >"$PC_CONF"
}

@test "proxychains4 running curl: the connection goes through socksifyd, bytes intact" {
	need_tool proxychains4
	start_socksifyd -v
	write_pc_conf
	got=$(timeout 30 proxychains4 -f "$PC_CONF" curl -sS --max-time 20 --noproxy '*' \
	    "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# the session is in the server's log: proxychains did not go direct
	wait_for_line "$SOCKSIFYD_LOG" 30 "cmd=connect.*target=127\.0\.0\.1:$HTTP_PORT.*t2c=1048[0-9]{3}.*outcome=ok"
}

@test "proxychains4 with a user and proxy_dns: name resolved by the proxy, bytes intact" {
	need_tool proxychains4
	need_dns_jail
	make_users
	start_socksifyd -u "$USERS" -v
	PC_CRED="bob hunter2" write_pc_conf proxy_dns
	got=$(timeout 30 proxychains4 -f "$PC_CONF" curl -sS --max-time 20 --noproxy '*' \
	    "http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "user=bob.*target=$PROXY_ONLY_NAME:$HTTP_PORT.*outcome=ok"
}

# --- load and half-close ------------------------------------------------

@test "500 concurrent sessions, 64 KiB each way per session, every echo intact" {
	start_echod
	start_socksifyd -v
	run timeout 120 python3 "$HELPERS/s5client.py" "$PROXY_PORT" "$ECHO_PORT" load 500 65536
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "500 ok" ]
	# one log line per session, each with 64 KiB each way
	for ((i = 0; i < 50; i++)); do
		[ "$(grep -c "target=127\.0\.0\.1:$ECHO_PORT.*c2t=65536[[:space:]]t2c=65536[[:space:]].*outcome=ok" "$SOCKSIFYD_LOG")" -eq 500 ] && break
		sleep 0.1
	done
	[ "$(grep -c "target=127\.0\.0\.1:$ECHO_PORT.*c2t=65536[[:space:]]t2c=65536[[:space:]].*outcome=ok" "$SOCKSIFYD_LOG")" -eq 500 ]
	kill -0 "$SOCKSIFYD_PID"
}

@test "half-close, client first: after the client's FIN the target's whole echo still arrives" {
	start_echod
	start_socksifyd
	run timeout 30 python3 "$HELPERS/s5client.py" "$PROXY_PORT" "$ECHO_PORT" client-first 1000000
	[ "$status" -eq 0 ]
	[ "$output" = "echo ok 1000000" ]
}

@test "half-close, target first: after the target's FIN the client's bytes still reach it" {
	result=$BATS_TEST_TMPDIR/first.result
	start_echod first "$result"
	start_socksifyd
	run timeout 30 python3 "$HELPERS/s5client.py" "$PROXY_PORT" "$ECHO_PORT" target-first 300000
	[ "$status" -eq 0 ]
	want=$(python3 -c 'import hashlib; print(hashlib.sha256((bytes(range(256)) * 782)[:200000]).hexdigest())')
	[ "${lines[0]}" = "target 200000 $want" ]
	[[ "${lines[1]}" == "sent 300000 "* ]]
	wait_for_line "$result" 50 '^got '
	[ "$(cat "$result")" = "got 300000 ${lines[1]#sent 300000 }" ]
}

# --- malformed handshakes -----------------------------------------------

# probe_expect NAME WANT-LINE0 WANT-STATE HEX...: send HEX chunks, compare
# what came back (in hex, WANT-LINE0 a prefix ending in '*' or exact), then
# fetch through the proxy to show it still serves.
probe_expect() {
	local name=$1 want=$2 state=$3
	shift 3
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$@"
	case $want in
	*'*') [[ "${lines[0]}" == "${want%\*}"* ]] ;;
	*) [ "${lines[0]}" = "$want" ] ;;
	esac || { echo "$name: got '${lines[0]}' want '$want'" >&2; return 1; }
	[ "${lines[1]}" = "$state" ] || { echo "$name: connection $state expected, got ${lines[1]}" >&2; return 1; }
	good_fetch "$name"
}

# A reply with REP $1 and a whole IPv4 or IPv6 BND (RFC 1928 §6), after
# method reply 05 00; as a pattern for probe_expect.
rep() { echo "0500050${1}00*"; }

# Check the reply's length fits its ATYP: 10 bytes for IPv4, 22 for IPv6.
reply_len_ok() {
	local r=${lines[0]:4}
	case ${r:6:2} in
	01) [ ${#r} -eq 20 ] ;;
	04) [ ${#r} -eq 44 ] ;;
	*) return 1 ;;
	esac
}

# truncated HEX...: send the chunks, then close (or reset, with "rst" first).
truncated() {
	python3 -c 'import socket,struct,sys,time
rst = sys.argv[2] == "rst"
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for h in sys.argv[3:]:
    s.sendall(bytes.fromhex(h)); time.sleep(0.05)
if rst:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()' "$PROXY_PORT" "$@"
}

@test "every malformed RFC 1928 handshake gets its reply code, and the server keeps serving" {
	start_socksifyd -v
	tgt="7f000001$(port_hex "$HTTP_PORT")"
	# RFC 1928 §3: not version 5, or no method offered, or none we take: X'FF'
	probe_expect "greeting VER 04" 05ff EOF 040100
	probe_expect "greeting VER 00" 05ff EOF 000100
	probe_expect "greeting NMETHODS 0" 05ff EOF 0500
	probe_expect "only GSSAPI offered" 05ff EOF 050101
	probe_expect "only user/password offered, none configured" 05ff EOF 050102
	# §4/§6: request errors
	probe_expect "request VER 04" "$(rep 1)" EOF 050100 "04010001$tgt"
	reply_len_ok
	probe_expect "unknown CMD 09" "$(rep 7)" EOF 050100 "05090001$tgt"
	reply_len_ok
	probe_expect "CMD 00" "$(rep 7)" EOF 050100 "05000001$tgt"
	reply_len_ok
	probe_expect "CMD ff" "$(rep 7)" EOF 050100 "05ff0001$tgt"
	probe_expect "unknown ATYP 05" "$(rep 8)" EOF 050100 "05010005$tgt"
	reply_len_ok
	probe_expect "ATYP 00" "$(rep 8)" EOF 050100 "05010000$tgt"
	probe_expect "ATYP 02" "$(rep 8)" EOF 050100 "05010002$tgt"
	probe_expect "empty domain" "$(rep 1)" EOF 050100 "050100030000$(port_hex "$HTTP_PORT")"
	reply_len_ok
	probe_expect "NUL in domain" "$(rep 1)" EOF 050100 "0501000303610062$(port_hex "$HTTP_PORT")"
	# truncated at every stage, then closed or reset: nothing to answer
	for t in "05" "0501" "050100 0501" "050100 05010001 7f00" "050100 0501000309 6c6f63"; do
		for how in fin rst; do
			# shellcheck disable=SC2086
			truncated "$how" $t
			good_fetch "truncated $t, $how"
		done
	done
	# the exact bytes once: an unknown command, then FIN
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "05090001$tgt"
	[ "${lines[0]}" = "050005070001000000000000" ]
	kill -0 "$SOCKSIFYD_PID"
	# the session log names each failure; no crash line, nothing else odd
	[ "$(grep -c 'outcome=ok' "$SOCKSIFYD_LOG")" -ge 24 ]
}

@test "every malformed RFC 1929 sub-negotiation gets status 01 and a close; the server keeps serving" {
	make_users
	start_socksifyd -u "$USERS" -v
	good_fetch() {
		local out
		out=$(curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" -U bob:hunter2 "http://127.0.0.1:$HTTP_PORT/hello.txt")
		[ "$out" = "hello through socks" ] || { echo "good fetch after '$1' got: $out" >&2; return 1; }
	}
	bob=$(hex bob) pw=$(hex hunter2)
	# RFC 1928 §3: users required, no-auth alone is not acceptable
	probe_expect "only no-auth offered" 05ff EOF 050100
	# RFC 1929 §2: VER must be X'01'; any failure gets a non-zero STATUS and a close
	probe_expect "sub-negotiation VER 05" 05020101 EOF 050102 "0503${bob}07${pw}"
	probe_expect "sub-negotiation VER 00" 05020101 EOF 050102 "0003${bob}07${pw}"
	probe_expect "ULEN 0" 05020101 EOF 050102 "010007${pw}"
	probe_expect "PLEN 0" 05020101 EOF 050102 "0103${bob}00"
	probe_expect "wrong password" 05020101 EOF 050102 "0103${bob}05$(hex wrong)"
	probe_expect "unknown user" 05020101 EOF 050102 "0105$(hex carol)07${pw}"
	probe_expect "password one byte short" 05020101 EOF 050102 "0103${bob}06$(hex hunter)"
	for t in "050102 01" "050102 0103$bob" "050102 0103${bob}07$(hex hunt)"; do
		# shellcheck disable=SC2086
		truncated fin $t
		good_fetch "truncated $t"
	done
	# right credentials, then a malformed request: still the request's code
	probe_expect "auth ok, ATYP 05" "05020100050800*" EOF 050102 "0103${bob}07${pw}" "05010005000000000000"
	kill -0 "$SOCKSIFYD_PID"
	sleep 0.3
	run grep -c -e hunter -e wrong "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

# --- stalled clients ----------------------------------------------------

@test "50 clients stalled mid-greeting (and 10 mid-request) do not delay a good fetch" {
	start_socksifyd
	ready=$BATS_TEST_TMPDIR/stalled.ready
	python3 -c 'import socket,sys,time
socks = []
for i in range(60):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    if i < 50:
        s.sendall(b"\x05\x02")          # half a greeting
    else:
        s.sendall(b"\x05\x01\x00")      # a greeting, then half a request
        s.settimeout(5); assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x03\x20loc")
    socks.append(s)
open(sys.argv[2], "w").write("ready\n")
time.sleep(20)' "$PROXY_PORT" "$ready" 3>&- &
	PIDS+=($!)
	wait_for_line "$ready" 100 ready
	t0=$(date +%s%N)
	got=$(curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$PROXY_PORT" \
	    "http://localhost:$HTTP_PORT/payload.bin" | sha)
	t1=$(date +%s%N)
	[ "$got" = "$PAYLOAD_SHA" ]
	# generous: it takes milliseconds; a server that waits on the stalled
	# ones would take the 10 s handshake timeout or more
	[ $(((t1 - t0) / 1000000)) -lt 5000 ]
}
