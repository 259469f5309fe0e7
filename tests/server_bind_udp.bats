#!/usr/bin/env bats
# socksifyd's BIND and UDP ASSOCIATE (RFC 1928 §6, §7), end to end: a raw
# SOCKS5 test client (tests/helpers/bindudp.py) and Debian's PySocks
# against build/socksifyd, with checksums on every byte relayed.

load helpers/common

BU=$HELPERS/bindudp.py
# PySocks is Debian's python3-socks: importable from /usr/bin/python3 only.
SYSPY=/usr/bin/python3

teardown() { stop_all; }

# start_echo HOST: a UDP echo server logging each payload's sha256 to
# ECHO_LOG; sets ECHO_PORT.
start_echo() {
	local pf=$BATS_TEST_TMPDIR/echo.$1.port
	export ECHO_LOG=$BATS_TEST_TMPDIR/echo.log
	rm -f "$pf"
	python3 "$BU" echo "$1" "$pf" "$ECHO_LOG" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	ECHO_PORT=$(cat "$pf")
}

# bu ARGS...: the test client, bounded; its output is shown on failure.
bu() {
	run timeout 60 python3 "$BU" "$@"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "BIND: reachable first reply, second reply names the peer, 1 MiB each way intact" {
	start_socksifyd -v
	bu bind-relay 127.0.0.1 "$PROXY_PORT"
	[[ "${lines[0]}" =~ ^ok\ first\ reply\ 127\.0\.0\.1\ [0-9]+$ ]]
	[[ "${lines[1]}" =~ ^ok\ second\ reply\ 127\.0\.0\.1\ [0-9]+$ ]]
	[[ "${lines[2]}" =~ ^ok\ relayed\ 1048576\ bytes ]]
	wait_for_line "$SOCKSIFYD_LOG" 30 'cmd=bind.*c2t=1048576	t2c=1048576	.*outcome=ok'
}

@test "BIND for a peer this host reaches from another address: the listener is on that one, not on the loopback the client came in by (active FTP through the embedded server)" {
	unshare --net true 2>/dev/null || skip "needs a network namespace of our own (unshare --net)"
	run timeout 60 unshare --net bash -c '
		ip link set lo up && ip addr add 10.9.0.1/32 dev lo || exit 9
		: >"$2"	# there before the background redirect makes it
		"$1" -l 127.0.0.1:0 -q 2>"$2" &
		sd=$!
		for ((i = 0; i < 50; i++)); do grep -qs "listening on" "$2" && break; sleep 0.1; done
		port=$(sed -n "s/^socksifyd: listening on .*:\([0-9]*\)\$/\1/p" "$2")
		python3 -c "
import socket, sys
c = socket.create_connection((\"127.0.0.1\", int(sys.argv[1])))
c.sendall(b\"\\x05\\x01\\x00\\x05\\x02\\x00\\x01\\x0a\\x09\\x00\\x01\\x00\\x00\")
got = b\"\"
while len(got) < 12:
    got += c.recv(12 - len(got))
print(got[2:4].hex(), socket.inet_ntoa(got[6:10]))
l = socket.create_connection((socket.inet_ntoa(got[6:10]), int.from_bytes(got[10:12], \"big\")),
    source_address=(\"10.9.0.1\", 0))
got = b\"\"
while len(got) < 10:
    got += c.recv(10 - len(got))
print(got[:2].hex(), socket.inet_ntoa(got[4:8]))
" "$port"
		kill "$sd"; wait' bash "$SOCKSIFYD" "$BATS_TEST_TMPDIR/sd.err"
	echo "$output"
	[ "$status" -eq 0 ]
	# The first reply: the listener on 10.9.0.1 (was 127.0.0.1, where a
	# peer elsewhere cannot connect); the second: the peer, from it.
	[ "${lines[0]}" = "0500 10.9.0.1" ]
	[ "${lines[1]}" = "0500 10.9.0.1" ]
}

@test "BIND over IPv6: listener on ::1, relay intact" {
	start_socksifyd -l '[::1]:0'
	bu bind-relay ::1 "$PROXY_PORT"
	[[ "${lines[0]}" =~ ^ok\ first\ reply\ ::1\ [0-9]+$ ]]
	[[ "${lines[2]}" =~ ^ok\ relayed ]]
}

@test "BIND with DST.ADDR 127.0.0.2: a connection from 127.0.0.1 is turned away, 127.0.0.2 is accepted" {
	start_socksifyd -v
	bu bind-mismatch 127.0.0.1 "$PROXY_PORT"
	[ "${lines[1]}" = "ok 127.0.0.1 turned away, still waiting" ]
	[[ "${lines[2]}" =~ ^ok\ second\ reply\ 127\.0\.0\.2\  ]]
	grep -q 'connection from 127.0.0.1:[0-9]* refused' "$SOCKSIFYD_LOG"
}

@test "BIND: the control connection closing aborts the wait and closes the listener" {
	start_socksifyd -v
	bu bind-close 127.0.0.1 "$PROXY_PORT"
	[ "${lines[1]}" = "ok listener closed with the control connection" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 'cmd=bind.*outcome=client closed'
}

@test "BIND: data on the control connection while waiting gets REP 01 and a close" {
	start_socksifyd
	bu bind-data 127.0.0.1 "$PROXY_PORT"
	[ "${lines[1]}" = "ok data while waiting: REP 01, closed" ]
}

@test "UDP ASSOCIATE with PySocks: round trips up to 60000 bytes, checksums match" {
	$SYSPY -c 'import socks' || skip "Debian's python3-socks is not installed (scripts/deps.sh test)"
	start_echo 127.0.0.1
	start_socksifyd -v
	run timeout 60 $SYSPY "$BU" udp-pysocks 127.0.0.1 "$PROXY_PORT" "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 5 ]
	[[ "${lines[4]}" =~ ^ok\ pysocks\ 60000\ bytes ]]
	# the association's log line counts the payload both ways
	wait_for_line "$SOCKSIFYD_LOG" 30 'cmd=udp-associate.*c2t=69693	t2c=69693'
}

@test "UDP: a datagram with FRAG=1 is dropped, the next FRAG=0 one is relayed" {
	start_echo 127.0.0.1
	start_socksifyd -v
	bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" frag
	[ "${lines[0]}" = "ok FRAG=1 dropped, FRAG=0 relayed (60000 bytes), association kept" ]
	[ "${lines[1]}" = "ok dropped datagram never reached the target" ]
	grep -q 'dropped: fragment' "$SOCKSIFYD_LOG"
}

@test "UDP: another port of the client's IP is dropped (port locked by the first datagram)" {
	start_echo 127.0.0.1
	start_socksifyd
	bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" foreign-port
	[ "${lines[1]}" = "ok dropped datagram never reached the target" ]
}

@test "UDP: another port than the request's DST.PORT is dropped" {
	start_echo 127.0.0.1
	start_socksifyd
	bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" foreign-port-hint
	[ "${lines[1]}" = "ok dropped datagram never reached the target" ]
}

@test "UDP: a datagram from a foreign IP (127.0.0.2) is dropped" {
	start_echo 127.0.0.1
	start_socksifyd -v
	bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" foreign-ip
	[ "${lines[1]}" = "ok dropped datagram never reached the target" ]
	grep -q "from 127.0.0.2:[0-9]* dropped: not the client's address" "$SOCKSIFYD_LOG"
}

# drop_counts: LINES, socksifyd's lines about foreign datagrams dropped, and
# UNSAID, the ones they say went unlogged.
drop_counts() {
	lines=$(grep -c "dropped: not the client's address" "$SOCKSIFYD_LOG")
	unsaid=$(sed -n 's/.* (and \([0-9]*\) dropped before, unlogged)$/\1/p; s/.*: \([0-9]*\) more datagrams dropped, unlogged$/\1/p' \
		"$SOCKSIFYD_LOG" | awk '{ t += $1 } END { print t + 0 }')
	echo "lines $lines, unlogged $unsaid"
}

@test "UDP: 500 datagrams from a foreign IP make at most 10 lines a second at -v; the rest are counted, none lost from the count" {
	start_socksifyd -v
	run timeout 30 python3 -c '
import socket, struct, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
got = b""
while len(got) < 12:
    got += c.recv(12 - len(got))
assert got[:4] == b"\x05\x00\x05\x00", got.hex()
relay = (socket.inet_ntoa(got[6:10]), struct.unpack("!H", got[10:12])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.2", 0))
for i in range(500):
    u.sendto(b"\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x09junk", relay)
time.sleep(0.5)
c.close()
print("sent 500")' "$PROXY_PORT"
	[ "$output" = "sent 500" ]
	wait_for_line "$SOCKSIFYD_LOG" 50 "more datagrams dropped, unlogged"
	local lines unsaid
	drop_counts
	[ "$lines" -ge 1 ]
	[ "$lines" -le 20 ]
	[ $((lines + unsaid)) -eq 500 ]
}

@test "UDP: 30 associations each sent 12 foreign datagrams make at most 100 lines a second for the worker; the rest are counted" {
	start_socksifyd -v --workers 1
	run timeout 30 python3 -c '
import socket, struct, sys, time
ctl, relays = [], []
for i in range(30):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    got = b""
    while len(got) < 12:
        got += c.recv(12 - len(got))
    ctl.append(c)
    relays.append((socket.inet_ntoa(got[6:10]), struct.unpack("!H", got[10:12])[0]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.2", 0))
for relay in relays:
    for i in range(12):
        u.sendto(b"\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x09junk", relay)
time.sleep(0.5)
for c in ctl:
    c.close()
print("sent 360")' "$PROXY_PORT"
	[ "$output" = "sent 360" ]
	wait_for_count "$SOCKSIFYD_LOG" 50 "cmd=udp-associate" 30
	sleep 0.3
	local lines unsaid
	drop_counts
	[ "$lines" -le 200 ]
	[ $((lines + unsaid)) -eq 360 ]
}

@test "UDP associations' outgoing sockets count against the descriptor limit: the listener waits, no accept() fails with EMFILE, a client queued behind is served" {
	local log=$BATS_TEST_TMPDIR/sd.log port
	make_payload
	start_http 127.0.0.1
	bash -c 'ulimit -n 120 && exec "$@"' bash "$SOCKSIFYD" -l 127.0.0.1:0 --workers 1 -v 3>&- 2>"$log" &
	PIDS+=($!)
	wait_for_line "$log" 50 '^socksifyd: listening on '
	port=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$log" | head -n 1)
	# Each association may send to an IPv4, an IPv6 and an IPv4-mapped
	# address: five descriptors, not two. All are set up first, then all
	# send: counted as they open, the sockets came after their room was
	# taken by associations accepted meanwhile.
	run timeout 60 python3 -c '
import socket, struct, sys, threading, time
port, http = int(sys.argv[1]), int(sys.argv[2])
held, relays, n = [], [], 0
for i in range(30):
    c = socket.create_connection(("127.0.0.1", port))
    held.append(c)
    c.settimeout(1.5)
    c.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    got = b""
    try:
        while len(got) < 12:
            b = c.recv(12 - len(got))
            if not b:
                break
            got += b
    except socket.timeout:
        break
    if got[:4] != b"\x05\x00\x05\x00":
        print("assoc %d: %s" % (i, got.hex()))
        break
    n += 1
    relays.append((socket.inet_ntoa(got[6:10]), struct.unpack("!H", got[10:12])[0]))
for relay in relays:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.append(u)
    for atyp in (b"\x01\x7f\x00\x00\x01", b"\x04" + socket.inet_pton(socket.AF_INET6, "::1"),
                 b"\x04" + socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")):
        u.sendto(b"\x00\x00\x00" + atyp + b"\x00\x09hi", relay)
time.sleep(0.5)
out = {}
def client():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", http) +
                  b"GET /hello.txt HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        out["client"] = "ok" if data.endswith(b"hello through socks\n") else "bad " + data[:40].hex()
    except OSError as e:
        out["client"] = repr(e)
t = threading.Thread(target=client)
t.start()
time.sleep(1)
for h in held:
    h.close()
t.join()
print("assocs", n, "client", out["client"])' "$port" "$HTTP_PORT"
	echo "$output"
	cat "$log" | grep -v udp-associate | head -20
	[ "$status" -eq 0 ]
	[[ "$output" == "assocs "*" client ok" ]]
	n=$(echo "$output" | awk '{ print $2 }')
	[ "$n" -ge 5 ]
	[ "$n" -lt 30 ]
	! grep -q "pausing\|Too many open files" "$log" || false
}

@test "UDP: the association ends when the control connection closes" {
	start_echo 127.0.0.1
	start_socksifyd
	bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" close
	[ "${lines[0]}" = "ok association ended with the control connection" ]
	[ "${lines[1]}" = "ok dropped datagram never reached the target" ]
}

@test "UDP: datagrams sent just before the control connection closes are still relayed" {
	start_echo 127.0.0.1
	start_socksifyd
	# they wait on the relay socket when the FIN comes: read before it closes
	for _ in 1 2 3; do
		bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" last-word
		[ "${lines[0]}" = "ok datagrams sent before the control connection closed relayed" ]
	done
}

@test "UDP over IPv6: relay on ::1, IPv6 target, 60000-byte datagram" {
	start_echo ::1
	start_socksifyd -l '[::1]:0'
	bu udp-raw ::1 "$PROXY_PORT" ::1 "$ECHO_PORT" frag
	[ "${lines[0]}" = "ok FRAG=1 dropped, FRAG=0 relayed (60000 bytes), association kept" ]
}

@test "UDP: IPv4 client to an IPv6 target" {
	start_echo ::1
	start_socksifyd
	bu udp-raw 127.0.0.1 "$PROXY_PORT" ::1 "$ECHO_PORT" frag
	[ "${lines[0]}" = "ok FRAG=1 dropped, FRAG=0 relayed (60000 bytes), association kept" ]
}

# The relay sends a run of datagrams to one destination, one size but a
# shorter last, as one GSO send (UDP_SEGMENT). The receivers here turn on
# UDP_GRO, so such a send arrives whole: "13+3" is two receives for 16
# datagrams, where sendmmsg() would show sixteen 1s.
@test "UDP: a burst to one destination leaves the relay as one GSO send each way, every datagram intact and in order" {
	start_socksifyd
	bu udp-gso 127.0.0.1 "$PROXY_PORT" "$SOCKSIFYD_PID" 1000,64
	[ "${lines[0]}" = "ok 1000 to targets: t1 13+3 t2 2" ]
	[ "${lines[1]}" = "ok 1000 to the client: 8" ]
	[ "${lines[2]}" = "ok 64 to targets: t1 13+3 t2 2" ]
	[ "${lines[3]}" = "ok 64 to the client: 8" ]
}

@test "UDP: GSO over IPv6, relay and targets on ::1" {
	start_socksifyd -l '[::1]:0'
	bu udp-gso ::1 "$PROXY_PORT" "$SOCKSIFYD_PID" 1000
	[ "${lines[0]}" = "ok 1000 to targets: t1 13+3 t2 2" ]
	[ "${lines[1]}" = "ok 1000 to the client: 8" ]
}

# In a namespace of our own whose loopback has an MTU of 1280, a GSO send of
# 1400-byte segments is refused (EINVAL): the relay sends that run one by
# one (the kernel fragments each datagram), and still coalesces 1000-byte ones.
@test "UDP: a route that refuses GSO (segments above its MTU): the burst goes one by one, intact; smaller ones still coalesce" {
	unshare --net true 2>/dev/null || skip "needs a network namespace of our own (unshare --net)"
	command -v ip >/dev/null || skip "needs ip(8) to set the namespace's MTU"
	run timeout 60 unshare --net sh -c '
		ip link set lo mtu 1280 up || exit 3
		: >"$2"	# there before the background redirect makes it
		"$1" -l 127.0.0.1:0 2>"$2" &
		pid=$!
		i=0
		while ! grep -qs "listening on" "$2" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		port=$(sed -n "s/^socksifyd: listening on .*:\([0-9]*\)\$/\1/p" "$2")
		python3 "$3" udp-gso 127.0.0.1 "$port" "$pid" 1400,1000
		st=$?
		kill "$pid"
		wait "$pid"
		exit $st' sh "$SOCKSIFYD" "$BATS_TEST_TMPDIR/socksifyd.log" "$BU"
	echo "$output"
	[ "$status" -eq 0 ]
	# (grep: the namespace's shell may add a line of its own, as kill's)
	[ "$(grep '^ok' <<<"$output")" = "ok 1400 to targets: t1 1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1 t2 1+1
ok 1400 to the client: 1+1+1+1+1+1+1+1
ok 1000 to targets: t1 13+3 t2 2
ok 1000 to the client: 8" ]
}

@test "UDP: a destination given as a name is resolved by the proxy" {
	need_dns_jail
	start_echo 127.0.0.1
	start_socksifyd
	UDP_NAME=$PROXY_ONLY_NAME bu udp-raw 127.0.0.1 "$PROXY_PORT" 127.0.0.1 "$ECHO_PORT" domain
	[[ "${lines[0]}" =~ ^ok\ domain\ destination\ relayed,\ reply\ from\ 127\.0\.0\.1: ]]
}

@test "BIND: no incoming connection within --bind-timeout: second reply 06, then close" {
	start_socksifyd --bind-timeout 500
	run timeout 10 python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
s.sendall(bytes.fromhex("050100")); assert s.recv(2) == b"\x05\x00"
s.sendall(bytes.fromhex("050200017f0000010000"))
first = s.recv(10); assert first[:4] == b"\x05\x00\x00\x01", first.hex()
t0 = time.monotonic(); d = b""
while True:
    b = s.recv(64)
    if not b: break
    d += b
print(d[:2].hex(), "closed", "late" if time.monotonic() - t0 > 4 else "in time")' "$PROXY_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "0506 closed in time" ]
}

@test "UDP: an association idle for --udp-idle-timeout ends; the server closes the control connection" {
	start_socksifyd --udp-idle-timeout 500
	run timeout 10 python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
s.sendall(bytes.fromhex("050100")); assert s.recv(2) == b"\x05\x00"
s.sendall(bytes.fromhex("05030001000000000000"))
r = s.recv(10); assert r[:2] == b"\x05\x00", r.hex()
relay = (socket.inet_ntoa(r[4:8]), int.from_bytes(r[8:10], "big"))
t0 = time.monotonic()
print("eof" if s.recv(64) == b"" else "data", "late" if time.monotonic() - t0 > 4 else "in time")
import threading
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("127.0.0.1", 0))
def echo():
    while True:
        d, a = e.recvfrom(100); e.sendto(d, a)
threading.Thread(target=echo, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1)
u.sendto(b"\0\0\0\x01\x7f\0\0\x01" + e.getsockname()[1].to_bytes(2, "big") + b"hello", relay)
try:
    u.recvfrom(100); print("relayed")
except OSError:
    print("relay gone")' "$PROXY_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "eof in time" ]
	[ "${lines[1]}" = "relay gone" ]
}

@test "UDP: 150 datagrams of 1 KiB queued while the relay is busy, each way: all 150 arrive (its buffers hold more than the kernel's default)" {
	start_socksifyd
	bu udp-burst 127.0.0.1 "$PROXY_PORT" "$SOCKSIFYD_PID" 150 1024
	[ "${lines[0]}" = "150 of 150 to the target" ]
	[ "${lines[1]}" = "150 of 150 to the client" ]
}

@test "UDP: an allowed and a denied peer interleaved in one batch, each way: only the allowed one's datagrams pass" {
	local denied
	denied=$(free_port)
	start_socksifyd -v --deny "to 127.0.0.1:$denied"
	bu udp-deny-batch 127.0.0.1 "$PROXY_PORT" "$SOCKSIFYD_PID" "$denied"
	[ "${lines[0]}" = "ok 2 of 4 relayed, both the allowed sender's, in order" ]
	[ "${lines[1]}" = "ok 2 of 4 sent, both to the allowed target, in order" ]
	[ "$(grep -c "from 127.0.0.1:$denied dropped: denied by rules" "$SOCKSIFYD_LOG")" -eq 2 ]
	[ "$(grep -c "to 127.0.0.1:$denied dropped: denied by rules" "$SOCKSIFYD_LOG")" -eq 2 ]
}

@test "UDP: a datagram to a denied destination is dropped silently; an allowed one is relayed" {
	# below the ephemeral range: no autobind takes them before the echo
	# threads bind them
	local denied allowed
	denied=$(free_port) allowed=$(free_port)
	start_socksifyd -v --deny "to 127.0.0.1:$denied"
	run timeout 10 python3 -c 'import socket,sys,threading
proxy, denied, allowed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
got = {}
def echo(port):
    e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("127.0.0.1", port)); e.settimeout(3)
    try:
        d, a = e.recvfrom(100); got[port] = d; e.sendto(d, a)
    except OSError:
        pass
ts = [threading.Thread(target=echo, args=(p,)) for p in (denied, allowed)]
[t.start() for t in ts]
s = socket.create_connection(("127.0.0.1", proxy)); s.settimeout(5)
s.sendall(bytes.fromhex("050100")); assert s.recv(2) == b"\x05\x00"
s.sendall(bytes.fromhex("05030001000000000000"))
r = s.recv(10); assert r[:2] == b"\x05\x00", r.hex()
relay = (socket.inet_ntoa(r[4:8]), int.from_bytes(r[8:10], "big"))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
hdr = lambda p: b"\0\0\0\x01\x7f\0\0\x01" + p.to_bytes(2, "big")
u.sendto(hdr(denied) + b"denied", relay)
u.sendto(hdr(allowed) + b"allowed", relay)
reply = u.recvfrom(100)[0]
[t.join() for t in ts]
print(reply[10:].decode(), sorted(v.decode() for v in got.values()))' "$PROXY_PORT" "$denied" "$allowed"
	[ "$status" -eq 0 ]
	[ "$output" = "allowed ['allowed']" ]
}

@test "BIND: a DST.ADDR name that resolves only to denied addresses gets 02" {
	start_socksifyd --deny 'to 127.0.0.0/8' --deny 'to ::1'
	run timeout 10 python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
s.sendall(bytes.fromhex("050100")); assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x02\x00\x03\x09localhost\x00\x00")
print(s.recv(4)[:2].hex())' "$PROXY_PORT"
	[ "$output" = "0502" ]
}

@test "BIND: DST.ADDR written as ::ffff:127.0.0.1 matches a peer connecting from 127.0.0.1" {
	start_socksifyd
	run timeout 10 python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
s.sendall(bytes.fromhex("050100")); assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x02\x00\x04" + socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1") + b"\x00\x00")
r = s.recv(10); assert r[:2] == b"\x05\x00", r.hex()
peer = socket.create_connection((socket.inet_ntoa(r[4:8]), int.from_bytes(r[8:10], "big")))
second = s.recv(10)
print(second[:2].hex(), socket.inet_ntoa(second[4:8]) == "127.0.0.1",
      int.from_bytes(second[8:10], "big") == peer.getsockname()[1])' "$PROXY_PORT"
	[ "$output" = "0500 True True" ]
}
