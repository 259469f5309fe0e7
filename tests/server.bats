#!/usr/bin/env bats
# socksifyd on its own, driven by curl and by raw SOCKS5 bytes.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

# The HTTP request for hello.txt, in hex.
GET_HELLO=$(printf 'GET /hello.txt HTTP/1.0\r\n\r\n' | od -An -tx1 | tr -d ' \n')

@test "ready line: exactly one 'listening on 127.0.0.1:PORT' line, real port" {
	start_socksifyd
	run cat "$SOCKSIFYD_LOG"
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" =~ ^socksifyd:\ listening\ on\ 127\.0\.0\.1:[0-9]+$ ]]
	[ "$PROXY_PORT" -gt 0 ]
	# and it serves at once
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
}

@test "two listeners (IPv4 and IPv6) print two ready lines and both serve" {
	start_socksifyd -l 127.0.0.1:0 -l '[::1]:0'
	run cat "$SOCKSIFYD_LOG"
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^socksifyd:\ listening\ on\ 127\.0\.0\.1:[0-9]+$ ]]
	[[ "${lines[1]}" =~ ^socksifyd:\ listening\ on\ \[::1\]:[0-9]+$ ]]
	v6port=${lines[1]##*:}
	run curl -sS --max-time 10 --socks5 "[::1]:$v6port" "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$output" = "hello through socks" ]
}

@test "curl --socks5: 1 MiB arrives intact (sha256)" {
	start_socksifyd
	got=$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

@test "half-close's counterpart: a reset crosses the relay as a reset, never as a clean end (target or client aborting)" {
	start_socksifyd -v
	local who size out
	for who in target client; do
		for size in 1000 1048576; do
			out=$(timeout 60 python3 "$HELPERS/resetcheck.py" "$PROXY_PORT" "$who" "$size")
			echo "$who aborts after $size bytes: the other side read $out"
			# the start of what was sent, byte for byte, then a reset
			[[ "$out" == *" bytes, reset" ]]
			[ "${out%% *}" -le "$size" ]
		done
	done
	# what a direct connection shows, for comparison: the same reset
	out=$(timeout 60 python3 "$HELPERS/resetcheck.py" direct target 1000)
	[ "$out" = "1000 bytes, reset" ]
	# small ones arrive whole before the reset
	out=$(timeout 60 python3 "$HELPERS/resetcheck.py" "$PROXY_PORT" target 1000)
	[ "$out" = "1000 bytes, reset" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "Connection reset by peer"
}

@test "curl --socks5-hostname: the proxy resolves the name, bytes intact" {
	start_socksifyd -v
	got=$(curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$PROXY_PORT" "http://localhost:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# the request named the host (ATYP domain), as the session log shows
	wait_for_line "$SOCKSIFYD_LOG" 30 "localhost:$HTTP_PORT"
}

@test "IPv6 target on ::1 through the proxy" {
	start_http ::1
	start_socksifyd
	got=$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" "http://[::1]:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

@test "refused target: reply 05 (connection refused), then close" {
	start_socksifyd
	# a port nobody listens on: bind one, note it, close it
	dead=$(free_port)
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050100017f000001$(port_hex "$dead")"
	[ "${lines[0]:0:8}" = "05000505" ]
	[ "${lines[1]}" = "EOF" ]
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$dead/"
	[ "$status" -eq 97 ]
}

@test "unresolvable name: reply 04 (host unreachable)" {
	need_dns_jail
	start_socksifyd
	name=$(hex "no-such-host.invalid")
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "05010003$(printf '%02x' 20)${name}0050"
	[ "${lines[0]:0:8}" = "05000504" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "no acceptable method: 05 FF, then close" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050102
	[ "${lines[0]}" = "05ff" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "wrong version in greeting: 05 FF (no acceptable method), then close" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 040100
	[ "${lines[0]}" = "05ff" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "unknown command 0x09: reply 07" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050900017f0000010050"
	[ "${lines[0]:0:8}" = "05000507" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "unknown address type 0x05: reply 08" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050100057f0000010050"
	[ "${lines[0]:0:8}" = "05000508" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "empty domain name: reply 01 (malformed; 08 is for unknown types)" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "05010003000050"
	[ "${lines[0]:0:8}" = "05000501" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "commands next to the three RFC ones (0x00, 0x04): reply 07" {
	# BIND and UDP ASSOCIATE are served: tests/server_bind_udp.bats
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050000017f0000010050"
	[ "${lines[0]:0:8}" = "05000507" ]
	[ "${lines[1]}" = "EOF" ]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050400017f0000010050"
	[ "${lines[0]:0:8}" = "05000507" ]
	[ "${lines[1]}" = "EOF" ]
}

@test "coalesced greeting + request + data in one write: data reaches the target" {
	start_socksifyd
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "050100050100017f000001$(port_hex "$HTTP_PORT")$GET_HELLO"
	# method reply, success reply with BND 127.0.0.1 and a real port, then HTTP
	[ "${lines[0]:0:16}" = "050005000001""7f00" ]
	[ "${lines[0]:20:4}" != "0000" ]
	[[ "${lines[0]}" == *"$(hex 'hello through socks')"* ]]
}

@test "split handshake, one byte per write, then data" {
	start_socksifyd
	req="050100017f000001$(port_hex "$HTTP_PORT")"
	bytes=(05 01 00)
	for ((i = 0; i < ${#req}; i += 2)); do bytes+=("${req:i:2}"); done
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "${bytes[@]}" "$GET_HELLO"
	[ "${lines[0]:0:8}" = "05000500" ]
	[[ "${lines[0]}" == *"$(hex 'hello through socks')"* ]]
}

@test "users file: right password served, wrong password refused (01 status, close)" {
	printf '# test users\nalice:s3cret pass\nbob:hunter2\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	start_socksifyd -u "$BATS_TEST_TMPDIR/users" -v
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" -U 'alice:s3cret pass' "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" -U 'alice:wrong' "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 97 ]
	# raw: the method is 02, a bad password gets 01 01 and the connection closes
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100
	[ "${lines[0]}" = "05ff" ]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 05020002 "0103$(hex bob)03$(hex bad)"
	[ "${lines[0]}" = "05020101" ]
	[ "${lines[1]}" = "EOF" ]
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 05020002 "0103$(hex bob)07$(hex hunter2)" "050100017f000001$(port_hex "$HTTP_PORT")"
	[ "${lines[0]:0:12}" = "050201000500" ]
	# passwords never reach the log
	sleep 0.3
	run grep -c -e 's3cret' -e 'hunter2' -e 'wrong' "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

@test "-v: one log line per session with client, target, bytes and outcome" {
	start_socksifyd -v
	curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/payload.bin" >/dev/null
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
	run grep -c "127.0.0.1:$HTTP_PORT" "$SOCKSIFYD_LOG"
	[ "$output" = "1" ]
	line=$(grep "127.0.0.1:$HTTP_PORT" "$SOCKSIFYD_LOG")
	[[ "$line" == *"1048"* ]]      # at least 1 MiB target->client, in bytes
	[[ "$line" == *ok* ]]
	[[ "$line" =~ [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+ ]]
}

@test "usage errors exit 2 with a one-line reason; runtime failures exit 1" {
	run "$SOCKSIFYD" --no-such-flag
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == socksifyd:* ]]
	run "$SOCKSIFYD" -l 'not an address:xyz'
	[ "$status" -eq 2 ]
	start_socksifyd
	run timeout 5 "$SOCKSIFYD" -l "127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u /nonexistent/users
	[ "$status" -eq 1 ]
	run "$SOCKSIFYD" -h
	[ "$status" -eq 0 ]
	[[ "$output" == *--listen* ]]
	run "$SOCKSIFYD" -V
	[ "$status" -eq 0 ]
	[[ "$output" == "socksifyd "* ]]
}

@test "a users file others may read, or anyone but its owner may write, is refused (exit 1)" {
	local u=$BATS_TEST_TMPDIR/users mode
	echo 'alice:secret-pw' >"$u"
	for mode in 644 604 620 602; do
		chmod "$mode" "$u"
		run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u "$u"
		[ "$status" -eq 1 ] || { echo "mode $mode: status $status"; false; }
		[ "${#lines[@]}" -eq 1 ]
		[[ "${lines[0]}" == *"$u: "*" by others (chmod 600 or 640 it)" ]]
		[[ "${lines[0]}" != *secret-pw* ]]
	done
	[[ "$output" == *"writable by others"* ]]
	chmod 644 "$u"
	run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u "$u"
	[[ "$output" == *"readable by others"* ]]
	# a directory is said to be one (its mode used to be blamed)
	mkdir "$BATS_TEST_TMPDIR/udir"
	run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u "$BATS_TEST_TMPDIR/udir"
	[ "$status" -eq 1 ]
	[ "$output" = "socksifyd: users file $BATS_TEST_TMPDIR/udir: a directory, not a file" ]
	# a FIFO is read whole within 2 s, never waited on for longer (at a
	# reload that wait held the main thread: no SIGTERM, no metrics): no
	# writer is an empty file; a writer that never finishes is refused
	mkfifo -m 600 "$BATS_TEST_TMPDIR/ufifo"
	run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u "$BATS_TEST_TMPDIR/ufifo"
	[ "$status" -eq 1 ]
	[ "$output" = "socksifyd: users file $BATS_TEST_TMPDIR/ufifo: no users" ]
	# the writer: this shell, open before the server looks
	exec 5<>"$BATS_TEST_TMPDIR/ufifo"
	run timeout 5 "$SOCKSIFYD" --config "$BATS_TEST_TMPDIR/ufifo"
	exec 5>&-
	[ "$status" -eq 2 ]
	[ "$output" = "socksifyd: $BATS_TEST_TMPDIR/ufifo: a pipe whose writer did not finish within 2000 ms" ]
	# a device is no file
	run timeout 5 "$SOCKSIFYD" -l 127.0.0.1:0 -u /dev/zero
	[ "$status" -eq 1 ]
	[ "$output" = "socksifyd: users file /dev/zero: not a file (a device or socket)" ]
	# group-readable is accepted with a warning, and serves
	chmod 640 "$u"
	start_socksifyd -u "$u"
	grep -q "warning: users file $u is readable by its group" "$SOCKSIFYD_LOG"
	run curl -sS --max-time 10 --socks5 "alice:secret-pw@127.0.0.1:$PROXY_PORT" \
		"http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$output" = "hello through socks" ]
}

@test "SIGTERM and SIGINT stop it cleanly with exit 0" {
	for sig in TERM INT; do
		start_socksifyd
		kill -s "$sig" "$SOCKSIFYD_PID"
		timeout 5 tail --pid="$SOCKSIFYD_PID" -f /dev/null
		wait "$SOCKSIFYD_PID" && st=0 || st=$?
		[ "$st" -eq 0 ]
	done
}

@test "a stalled client does not block others" {
	start_socksifyd
	# one client sends half a greeting and sits there
	python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.send(b"\x05"); time.sleep(8)' "$PROXY_PORT" 3>&- &
	PIDS+=($!)
	sleep 0.2
	run curl -sS --max-time 5 --socks5-hostname "127.0.0.1:$PROXY_PORT" "http://localhost:$HTTP_PORT/hello.txt"
	[ "$output" = "hello through socks" ]
}

@test "half-close: the client's FIN reaches the target after 8 MB (a stream: spliced under --relay auto), whose answer still comes back" {
	start_socksifyd
	pf=$BATS_TEST_TMPDIR/sink.port
	# a target that reads to EOF, then answers with the byte count and closes
	python3 -c 'import socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
open(sys.argv[1],"w").write("%d\n" % s.getsockname()[1])
c,_=s.accept(); n=0
while True:
    b=c.recv(65536)
    if not b: break
    n+=len(b)
c.sendall(b"got %d" % n); c.close()' "$pf" 3>&- &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	run timeout 15 python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.settimeout(10)
s.sendall(bytes.fromhex("050100")); assert s.recv(2)==b"\x05\x00"
s.sendall(bytes.fromhex("050100017f000001")+int(sys.argv[2]).to_bytes(2,"big"))
r=b""
while len(r)<10: r+=s.recv(10-len(r))
assert r[:2]==b"\x05\x00", r
s.sendall(b"x"*8000000); s.shutdown(socket.SHUT_WR)
d=b""
while True:
    b=s.recv(65536)
    if not b: break
    d+=b
print(d.decode())' "$PROXY_PORT" "$(cat "$pf")"
	[ "$status" -eq 0 ]
	[ "$output" = "got 8000000" ]
}

# CPU ticks (user + system) socksifyd has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SOCKSIFYD_PID/stat"; }

# A DNS server on 127.0.0.1:53 that never answers, and a resolv.conf for the
# server with glibc's default timeouts: every lookup of a name not in
# /etc/hosts then takes the server ~10 s.
start_silent_dns() {
	need_dns_jail
	export SOCKSIFYD_RESOLV=$BATS_TEST_TMPDIR/slow-resolv.conf
	printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:2\n' >"$SOCKSIFYD_RESOLV"
	local ready=$BATS_TEST_TMPDIR/dns.ready
	python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").write("ready\n")
while True: s.recvfrom(65535)' "$ready" 3>&- &
	PIDS+=($!)
	wait_for_line "$ready" 50 ready 2>/dev/null || skip "cannot bind 127.0.0.1:53 for a silent DNS server"
}

@test "UDP: datagrams to a name sent just before the control connection closes are relayed once the slow lookup answers" {
	start_dnssink --delay=0.3 "lastword.test=127.0.0.1"
	start_socksifyd -v
	local pf=$BATS_TEST_TMPDIR/echo.port
	export ECHO_LOG=$BATS_TEST_TMPDIR/echo.log
	: >"$ECHO_LOG"
	python3 "$HELPERS/bindudp.py" echo 127.0.0.1 "$pf" "$ECHO_LOG" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	# the association was freed with the session, its lookups cancelled:
	# nothing reached the echo
	UDP_NAME=lastword.test run timeout 30 python3 "$HELPERS/bindudp.py" udp-raw 127.0.0.1 "$PROXY_PORT" \
		127.0.0.1 "$(cat "$pf")" last-word-name
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "ok datagrams sent before the control connection closed relayed" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "cmd=udp-associate.*outcome=ok"
}

@test "150 CONNECTs by name at once from one client through a slow DNS: every one served in its turn, none 'resolver busy'" {
	# Every connection socksify makes comes from one address: past 64
	# lookups in flight for a client they wait now (they got reply 01).
	start_dnssink --delay=0.1 "slowname.test=127.0.0.1"
	start_socksifyd -v --workers 1
	run timeout 60 python3 -c '
import asyncio, collections, struct, sys
port, target = int(sys.argv[1]), int(sys.argv[2])
name = b"slowname.test"
req = (b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
       struct.pack("!H", target))
async def one():
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req)
    got = await asyncio.wait_for(r.readexactly(12), 40)
    w.close()
    return got[3]
async def main():
    res = await asyncio.gather(*[one() for _ in range(150)], return_exceptions=True)
    print(dict(collections.Counter(r if isinstance(r, int) else type(r).__name__ for r in res)))
asyncio.run(main())' "$PROXY_PORT" "$HTTP_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "{0: 150}" ]
	run grep -c "resolver busy" "$SOCKSIFYD_LOG"
	[ "$output" = 0 ]
}

# s5_domain_request NAME PORT: greeting (no auth) and CONNECT NAME:PORT, hex.
s5_domain_request() {
	printf '05010005010003%02x%s%04x' "${#1}" "$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n')" "$2"
}

@test "a persistent accept() error pauses the listener: no spin, logged once a second" {
	cat >"$BATS_TEST_TMPDIR/einval.c" <<'EOF'
#include <errno.h>
#include <sys/socket.h>
int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	(void)fd; (void)sa; (void)len; (void)flags;
	errno = EINVAL;
	return -1;
}
EOF
	cc -shared -fPIC -o "$BATS_TEST_TMPDIR/einval.so" "$BATS_TEST_TMPDIR/einval.c"
	LD_PRELOAD=$BATS_TEST_TMPDIR/einval.so start_socksifyd -q
	# a client waits in the backlog; accept() never takes it
	python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); time.sleep(5)' "$PROXY_PORT" 3>&- &
	PIDS+=($!)
	sleep 0.5
	t0=$(cpu_ticks)
	sleep 3
	t1=$(cpu_ticks)
	# spinning burns 3 s of CPU here; paused, next to none (under 10 %)
	[ $((t1 - t0)) -lt $(($(getconf CLK_TCK) * 3 / 10)) ]
	# an error, so logged even with -q, and at most once a second
	n=$(grep -c 'accept on .*: Invalid argument; pausing' "$SOCKSIFYD_LOG")
	[ "$n" -ge 2 ]
	[ "$n" -le 5 ]
}

@test "resolver: clients that leave free their lookups; one client IP gets 64 in flight and 1,024 waiting, the rest 01" {
	need_dns_jail
	start_silent_dns
	# the queue and the cap are each worker's: one worker, exact figures
	start_socksifyd -v --workers 1
	# 1,100 clients ask for a slow name and hang up: their lookups must not
	# keep the 1,024 places of the queue (each pipelines greeting and
	# request: the method reply comes at once, the name resolving)
	python3 -c 'import socket,sys
for i in range(1100):
    s = socket.socket(); s.bind(("127.0.0.%d" % (2 + i % 40), 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(bytes.fromhex(sys.argv[2])); s.settimeout(5); s.recv(2); s.close()' \
	    "$PROXY_PORT" "$(s5_domain_request flood.test 80)"
	sleep 0.5
	# another client is queued (method reply only, no 01 "resolver busy")
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" "$(s5_domain_request probe.test 80)"
	[ "${lines[0]}" = "0500" ]
	[ "${lines[1]}" = "OPEN" ]
	# One IP with 1,100 lookups: 64 in flight, 1,024 wait their turn
	# (before, the 65th on got 01), the last 12 get 01 at once.
	run python3 -c 'import resource,socket,sys,time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
socks = []
for i in range(1100):
    s = socket.socket(); s.bind(("127.0.0.99", 0)); s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(bytes.fromhex(sys.argv[2])); socks.append(s)
time.sleep(1.5)
busy = 0
for s in socks:
    s.setblocking(False)
    try: busy += s.recv(64)[2:4] == b"\x05\x01"
    except BlockingIOError: pass
print(busy)' "$PROXY_PORT" "$(s5_domain_request capped.test 80)"
	[ "$output" = "12" ]
	[ "$(grep -c 'outcome=resolver busy' "$SOCKSIFYD_LOG")" = "12" ]
}

@test "resolver: a client whose names a silent DNS server never answers holds half the lookup threads; another client's lookup runs at once" {
	start_silent_dns
	start_socksifyd -v --workers 1 --connect-timeout 3000
	# Eight requests for names nobody answers, from one address, held:
	# each lookup would keep a thread some 10 s.
	python3 -c 'import socket,sys,time
socks = []
for i in range(8):
    s = socket.socket(); s.bind(("127.0.0.2", 0)); s.connect(("127.0.0.1", int(sys.argv[1])))
    name = b"silent%d.test" % i
    s.sendall(b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50")
    socks.append(s)
time.sleep(8)' "$PROXY_PORT" 3>&- &
	PIDS+=($!)
	sleep 0.5
	# Another client's name (from /etc/hosts, no DNS): served within the
	# 3 s connect timeout. Before, it waited behind all four threads (04).
	run timeout 20 python3 -c 'import socket,sys
s = socket.socket(); s.bind(("127.0.0.3", 0)); s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2])); s.settimeout(10)
got = b""
while len(got) < 12:
    b = s.recv(12 - len(got))
    if not b: break
    got += b
print(got.hex())' "$PROXY_PORT" "$(s5_domain_request localhost "$HTTP_PORT")"
	echo "$output"
	[ "${output:0:8}" = "05000500" ]
}

@test "resolver: a datagram's lookup past its client's 64 in flight is dropped at once (resolver busy), not kept waiting to go stale" {
	start_silent_dns
	start_socksifyd -v --workers 1
	# 64 held CONNECTs by name from 127.0.0.5: its lookups in flight. The
	# method reply comes once the server has read the greeting, and the
	# request with it: "held" is written when every lookup has begun.
	local held=$BATS_TEST_TMPDIR/held
	python3 -c 'import socket,sys,time
socks = []
for i in range(64):
    s = socket.socket(); s.bind(("127.0.0.5", 0)); s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(bytes.fromhex(sys.argv[2])); socks.append(s)
for s in socks:
    s.settimeout(10); assert s.recv(2) == b"\x05\x00"
open(sys.argv[3], "w").write("held\n")
time.sleep(8)' "$PROXY_PORT" "$(s5_domain_request held.test 80)" "$held" 3>&- &
	PIDS+=($!)
	wait_for_line "$held" 100 '^held$'
	# Then a UDP association of the same address sends to a name.
	run timeout 20 python3 -c '
import socket, struct, sys, time
c = socket.socket(); c.bind(("127.0.0.5", 0)); c.connect(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
got = b""
while len(got) < 12:
    got += c.recv(12 - len(got))
relay = (socket.inet_ntoa(got[6:10]), struct.unpack("!H", got[10:12])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.5", 0))
name = b"udpname.test"
u.sendto(b"\x00\x00\x00\x03" + bytes([len(name)]) + name + b"\x00\x09hi", relay)
time.sleep(1)	# the association lives while its control connection does
print("sent")' "$PROXY_PORT"
	[ "$output" = sent ]
	wait_for_line "$SOCKSIFYD_LOG" 20 "datagram to udpname.test dropped: resolver busy"
}

@test "a client that leaves while its name resolves ends its session at once; a half-close does not" {
	need_dns_jail
	start_silent_dns
	start_socksifyd -v
	python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2])); s.settimeout(5); s.recv(2); time.sleep(0.2); s.close()' \
	    "$PROXY_PORT" "$(s5_domain_request gone.test 80)"
	# ended at once, not at the 10 s resolve timeout
	wait_for_line "$SOCKSIFYD_LOG" 50 'target=gone\.test:80.*outcome=client closed'
	# request, data and FIN in one go (printf ... | nc -N): still served
	run python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]) + b"GET /hello.txt HTTP/1.0\r\n\r\n"); s.shutdown(socket.SHUT_WR)
s.settimeout(10); got = b""
while True:
    b = s.recv(65536)
    if not b: break
    got += b
print(got[2:4].hex(), got.endswith(b"hello through socks\n"))' \
	    "$PROXY_PORT" "$(s5_domain_request localhost "$HTTP_PORT")"
	[ "$output" = "0500 True" ]
}

@test "lookups a silent DNS server holds leave a thread for logins against a hash: a yescrypt login is served while they wait" {
	command -v mkpasswd >/dev/null || skip "mkpasswd is not installed (whois; scripts/deps.sh test)"
	start_silent_dns
	local f=$BATS_TEST_TMPDIR/users
	printf 'alice:alice pass\ncarol:%s\n' "$(mkpasswd -m yescrypt 'carol pass')" >"$f"
	chmod 600 "$f"
	start_socksifyd -v -u "$f" --workers 1 --handshake-timeout 3000
	# Six requests (a plain login, then CONNECT to a name nobody answers):
	# each lookup keeps its thread for glibc's ~10 s (even once its client
	# has gone; these stay 8 s).
	python3 -c '
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(6):
    name = b"silent%d.test" % i
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x05\x01\x02" + b"\x01\x05alice\x0aalice pass" +
              b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50")
    held.append(s)
time.sleep(8)
' "$PROXY_PORT" 3>&- &
	PIDS+=($!)
	sleep 0.5
	# A login against the hash, within the 3 s handshake timeout: before,
	# it waited behind the lookups for a thread, and timed out.
	[ "$(curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$PROXY_PORT" \
		--proxy-user 'carol:carol pass' "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "user=carol	.*outcome=ok"
}

@test "CONNECT tries every address of a name: ::1 refused, then 127.0.0.1 serves" {
	need_dns_jail
	start_socksifyd -v
	# the web server listens on 127.0.0.1 only; the name's first address is ::1
	got=$(curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$PROXY_PORT" \
		"http://$PROXY_MULTI_NAME:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$PROXY_MULTI_NAME:$HTTP_PORT.*connected=127\.0\.0\.1:$HTTP_PORT"
}

@test "no delay of ours: two small writes a round, either way, are relayed at once (TCP_NODELAY on both sides, the client's inherited from the listener)" {
	start_socksifyd --no-auth
	# 100 rounds each way with a 1 ms pause between the two writes: about
	# 0.1 s a way without Nagle's algorithm, over 4 s with it on either
	# relay socket (the second byte waits for a delayed ACK, 40 ms)
	run python3 "$HELPERS/smallwrites.py" "$PROXY_PORT" 100
	echo "$output"
	[ "$status" -eq 0 ]
	local down up
	down=$(sed -n 's/.*down_ms=\([0-9]*\).*/\1/p' <<<"$output")
	up=$(sed -n 's/.*up_ms=\([0-9]*\).*/\1/p' <<<"$output")
	[ -n "$down" ]
	[ -n "$up" ]
	[ "$down" -lt 2000 ]
	[ "$up" -lt 2000 ]
}

# --relay auto, the default: a kernel pipe only for a stream in flow. Seen
# from the server's own system calls (strace, attached to every thread of
# the running server, so that stopping the server stops it too), and from
# the bytes.
relay_calls() {
	grep -cE "^[0-9]+ +$1\(" "$BATS_TEST_TMPDIR/trace" || true
}

# trace_server [CALLS]: strace the running server's CALLS (default the
# relay's pipe2 and splice) into $BATS_TEST_TMPDIR/trace.
trace_server() {
	local i t traced calls=${1:-pipe2,splice}
	strace -f -qq -e trace="$calls" -o "$BATS_TEST_TMPDIR/trace" -p "$SOCKSIFYD_PID" \
		3>&- 2>"$BATS_TEST_TMPDIR/strace.err" &
	PIDS+=($!)
	for ((i = 0; i < 50; i++)); do
		traced=1
		for t in /proc/"$SOCKSIFYD_PID"/task/*; do
			grep -q '^TracerPid:[[:space:]]*0$' "$t/status" 2>/dev/null && traced=0
		done
		[ "$traced" = 1 ] && return 0
		sleep 0.1
	done
	cat "$BATS_TEST_TMPDIR/strace.err" >&2
	return 1
}

@test "--relay auto (the default): a short answer is copied, 1 MiB is spliced; --relay copy never splices; bytes intact" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	local relay
	for relay in auto copy; do
		start_socksifyd --no-auth --workers 1 --relay "$relay"
		trace_server
		run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/hello.txt"
		[ "$status" -eq 0 ]
		[ "$output" = "hello through socks" ]
		echo "$relay, hello: pipe2 $(relay_calls pipe2), splice $(relay_calls splice)"
		[ "$(relay_calls pipe2)" -eq 0 ]
		[ "$(relay_calls splice)" -eq 0 ]
		[ "$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" \
		    "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)" = "$PAYLOAD_SHA" ]
		echo "$relay, 1 MiB: pipe2 $(relay_calls pipe2), splice $(relay_calls splice)"
		if [ "$relay" = auto ]; then
			[ "$(relay_calls pipe2)" -ge 1 ]
			[ "$(relay_calls splice)" -ge 2 ]
		else
			[ "$(relay_calls pipe2)" -eq 0 ]
			[ "$(relay_calls splice)" -eq 0 ]
		fi
		# this server (and its tracer) only: setup()'s web server stays
		kill "$SOCKSIFYD_PID"
		timeout 5 tail --pid="$SOCKSIFYD_PID" -f /dev/null
	done
}

# server_pipes: how many pipe descriptors the server holds.
server_pipes() {
	local n=0 f
	for f in /proc/"$SOCKSIFYD_PID"/fd/*; do
		[[ "$(readlink "$f" 2>/dev/null)" == pipe:* ]] && n=$((n + 1))
	done
	echo "$n"
}

@test "--relay auto: a stream's emptied kernel pipe is kept for the next stream, not made anew, given back on reload and with the worker's last session; bytes intact" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	local i base
	start_socksifyd --no-auth --workers 1
	base=$(server_pipes)
	trace_server
	# A client that says nothing keeps the worker's session count above
	# zero; three downloads one after the other, each spliced: the pipe
	# the first made serves the next two.
	exec 8<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
	for i in 1 2 3; do
		[ "$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" \
		    "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)" = "$PAYLOAD_SHA" ]
	done
	echo "pipe2 $(relay_calls pipe2), splice $(relay_calls splice); pipes held $(server_pipes), at start $base"
	[ "$(relay_calls splice)" -ge 6 ]
	[ "$(relay_calls pipe2)" -eq 1 ]
	[ "$(server_pipes)" -eq $((base + 2)) ]
	# A reload (the pipe budget may shrink) gives it back.
	kill -HUP "$SOCKSIFYD_PID"
	for ((i = 0; i < 50; i++)); do
		[ "$(server_pipes)" -eq "$base" ] && break
		sleep 0.1
	done
	[ "$(server_pipes)" -eq "$base" ]
	# Kept again by the next download; the last session gone, it goes.
	[ "$(curl -sS --max-time 20 --socks5 "127.0.0.1:$PROXY_PORT" \
	    "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)" = "$PAYLOAD_SHA" ]
	[ "$(server_pipes)" -eq $((base + 2)) ]
	exec 8>&-
	for ((i = 0; i < 50; i++)); do
		[ "$(server_pipes)" -eq "$base" ] && break
		sleep 0.1
	done
	[ "$(server_pipes)" -eq "$base" ]
	kill "$SOCKSIFYD_PID"
	timeout 5 tail --pid="$SOCKSIFYD_PID" -f /dev/null
}

# hs_client MODE: a raw client that sends the greeting and a CONNECT to the
# web server in one write (pipelined) or waiting for each reply
# (lockstep), then a GET; prints the reply bytes in hex and the body.
hs_client() {
	timeout 15 python3 -c 'import socket,sys,time
mode, port, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
greet = bytes.fromhex("050100")
req = bytes.fromhex("050100017f000001") + target.to_bytes(2, "big")
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if mode == "pipelined":
    s.sendall(greet + req)
    head = b""
else:
    s.sendall(greet)
    head = s.recv(2)
    s.sendall(req)
while len(head) < 12:
    chunk = s.recv(12 - len(head))
    if not chunk:
        break
    head += chunk
s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
body = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    body += chunk
print(head.hex())
print(body.split(b"\r\n\r\n", 1)[-1].decode())' "$1" "$PROXY_PORT" "$HTTP_PORT"
}

@test "a pipelined handshake whose outcome is known at once is answered in one write (a Nagle relay in front would hold a second); lock-step, each reply at once" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	local mode
	for mode in pipelined lockstep; do
		start_socksifyd --no-auth --workers 1
		trace_server sendto
		run hs_client "$mode"
		[ "$status" -eq 0 ]
		[ "${lines[0]:0:12}" = 050005000001 ]
		[ "${lines[1]}" = "hello through socks" ]
		kill "$SOCKSIFYD_PID"
		timeout 5 tail --pid="$SOCKSIFYD_PID" -f /dev/null
		cat "$BATS_TEST_TMPDIR/trace"
		if [ "$mode" = pipelined ]; then
			# method reply and CONNECT reply: one sendto() of 12 bytes
			grep -qE 'sendto\([0-9]+, "\\5\\0\\5\\0\\0\\1.*", 12,' "$BATS_TEST_TMPDIR/trace"
			! grep -qE 'sendto\([0-9]+, "\\5\\0", 2,' "$BATS_TEST_TMPDIR/trace"
		else
			grep -qE 'sendto\([0-9]+, "\\5\\0", 2,' "$BATS_TEST_TMPDIR/trace"
			grep -qE 'sendto\([0-9]+, "\\5\\0\\0\\1.*", 10,' "$BATS_TEST_TMPDIR/trace"
		fi
	done
}

# A connect() to this host has finished when it returns, EINPROGRESS or
# not: the reply goes in the same wakeup, with no EPOLLOUT round. A connect
# that is really under way (a target whose accept queue is full drops the
# first SYN) still waits for EPOLLOUT and relays.
@test "CONNECT: a loopback target connected at once gets no EPOLLOUT round; a slow connect still succeeds" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	start_socksifyd --no-auth --workers 1
	trace_server epoll_ctl,getpeername
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	cat "$BATS_TEST_TMPDIR/trace"
	grep -qE 'getpeername\(.*\) = 0$' "$BATS_TEST_TMPDIR/trace"
	! grep -qE 'EPOLL_CTL_(ADD|MOD), [0-9]+, \{events=EPOLLOUT,' "$BATS_TEST_TMPDIR/trace" || false
	run timeout 20 python3 "$HELPERS/slowaccept.py" "$PROXY_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^reply\ 0500\ seconds\ ([0-9.]+)\ echo\ olleh$ ]]
	# the SYN went again: about 1 s
	awk -v t="${BASH_REMATCH[1]}" 'BEGIN { exit !(t >= 0.8) }'
	grep -E 'getpeername\(.*ENOTCONN' "$BATS_TEST_TMPDIR/trace"
	grep -E 'EPOLL_CTL_ADD, [0-9]+, \{events=EPOLLOUT,' "$BATS_TEST_TMPDIR/trace"
}
