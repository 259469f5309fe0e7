#!/usr/bin/env bats
# UDP through the first hop's UDP ASSOCIATE (SOCKSIFY_UDP=proxy, the
# default): preload/udp.c. The program is python3 (tests/helpers/udpcheck.py)
# under libsocksify.so; the target a UDP echo that logs every sender
# (tests/helpers/bindudp.py echo); the relay socksifyd.

load helpers/common

bats_require_minimum_version 1.5.0

UDPCHECK=$HELPERS/udpcheck.py

setup() { :; }

teardown() { stop_all; }

# start_udp_echo HOST: sets ECHO_PORT and ECHO_LOG (one per HOST).
start_udp_echo() {
	local pf=$BATS_TEST_TMPDIR/udpecho.$RANDOM
	ECHO_LOG=$BATS_TEST_TMPDIR/udpecho.$1.log
	: >"$ECHO_LOG"
	python3 "$HELPERS/bindudp.py" echo "$1" "$pf" "$ECHO_LOG" from 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	ECHO_PORT=$(cat "$pf")
}

# udpcheck URL MODE HOST PORT: udpcheck.py under the library, nothing
# excluded (under a descriptor limit of NOFILE when that is set).
udpcheck() {
	local url=$1
	shift
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="$url" timeout -k 5 30 ${NOFILE:+prlimit --nofile="$NOFILE"} \
		python3 "$UDPCHECK" "$@"
}

# The relay ports socksifyd logged for its UDP ASSOCIATE sessions.
relay_sessions() {
	grep -c 'cmd=udp-associate' "$SOCKSIFYD_LOG" || true
}

# echo_checked: every echo check of udpcheck.py's echo mode passed, each
# datagram came back from the echo's address, and the echo saw only the
# proxy's relay (never the program's own socket).
echo_checked() {
	local want_src=$1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c ' ok' <<<"$output")" -eq 9 ]
	# the status is the second word (a sha prefix after it may read "bad4...")
	! grep -qE '^[^ ]+ bad( |$)' <<<"$output" || false
	for size in 1 512 1024 8192 65000; do
		[[ $'\n'"$output" == *$'\n'"sendto-$size ok $want_src "[0-9a-f]* ]]
	done
	grep -qxF "recvmsg ok $want_src" <<<"$output"
	grep -qxF "truncated ok $want_src" <<<"$output"
	grep -qxF "getpeername $want_src" <<<"$output"
}

@test "UDP echo through socksifyd: sendto, recvmsg, truncation, connect+send/recv, write/read; every datagram intact, from the target's address" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" echo 127.0.0.1 "$ECHO_PORT"
	echo_checked "127.0.0.1:$ECHO_PORT"
	# two sockets, two associations; the echo never saw the program's own
	# sockets, only the proxy's
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*outcome=ok" 2
	read -r _ p1 p2 < <(grep '^local ' <<<"$output")
	[ -n "$p2" ]
	! grep -E ":($p1|$p2) " "$ECHO_LOG" || false
	wait_for_count "$ECHO_LOG" 30 '^from ' 9
}

@test "UDP echo over IPv6 (socket, proxy and target on ::1)" {
	start_udp_echo ::1
	start_socksifyd -v -l '[::1]:0'
	run udpcheck "socks5://[::1]:$PROXY_PORT" echo ::1 "$ECHO_PORT"
	echo_checked "[::1]:$ECHO_PORT"
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*outcome=ok" 2
}

@test "an IPv6 socket reaches an IPv4 target through an IPv4 proxy (v4-mapped), sources v4-mapped" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" echo ::ffff:127.0.0.1 "$ECHO_PORT"
	echo_checked "[::ffff:127.0.0.1]:$ECHO_PORT"
}

@test "an IPv6-only socket and an IPv4 relay: EAFNOSUPPORT and a line saying why, blocking and non-blocking; nothing sent" {
	start_udp_echo ::1
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" v6only ::1 "$ECHO_PORT"
	echo "$output"
	cat "$BATS_TEST_TMPDIR/lib.log" || true
	[ "${lines[0]}" = "blocking EAFNOSUPPORT" ]
	# a non-blocking send is queued; the set-up's failure is told next
	[ "${lines[1]}" = "nonblocking sent" ]
	[ "${lines[2]}" = "then EAFNOSUPPORT" ]
	grep -q "UDP relay 127\.0\.0\.1:[0-9]* of proxy 127\.0\.0\.1:$PROXY_PORT cannot be reached from an IPv6-only (IPV6_V6ONLY) socket" \
		"$BATS_TEST_TMPDIR/lib.log"
	[ ! -s "$ECHO_LOG" ]
}

@test "asyncio datagram endpoint (non-blocking socket, epoll): 50 datagrams, every one back intact" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" asyncio 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "asyncio ok 50" ]
	wait_for_count "$ECHO_LOG" 30 '^from ' 50
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*outcome=ok" 1
}

@test "an IPv6 UDP socket bound to ::1 (IPv6-only by the kernel's doing) and an IPv4 relay: EAFNOSUPPORT, the line names the bind, not IPV6_V6ONLY" {
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" send ::ffff:127.0.0.2 9 ::1
	echo "$output"
	cat "$BATS_TEST_TMPDIR/lib.log"
	[ "$output" = EAFNOSUPPORT ]
	grep -q "cannot be reached from an IPv6 socket bound to an IPv6 address" "$BATS_TEST_TMPDIR/lib.log"
}

@test "a descriptor limit of 256 (below the library's own numbers, 512 up): datagrams still relayed, blocking and asyncio" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	# F_DUPFD at 512 says EINVAL under such a limit (it failed every
	# datagram with EINVAL): the association's descriptors take any number
	NOFILE=256 run udpcheck "socks5://127.0.0.1:$PROXY_PORT" echo 127.0.0.1 "$ECHO_PORT"
	echo_checked "127.0.0.1:$ECHO_PORT"
	NOFILE=256 run udpcheck "socks5://127.0.0.1:$PROXY_PORT" asyncio 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "asyncio ok 50" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*outcome=ok" 3
}

@test "fire and forget: ncat -u sends, shuts down and exits at once; a non-blocking socket sends, closes and exits; every datagram arrives" {
	command -v ncat >/dev/null || skip "ncat is not installed (scripts/deps.sh test)"
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	local i
	# ncat's datagram waited for the association; its shutdown(SHUT_WR)
	# failed the queued send (EPIPE), and its exit ended the set-up
	for i in 1 2 3; do
		echo "ncat $i" | env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" timeout 20 ncat -u 127.0.0.1 "$ECHO_PORT"
	done
	# sendto() on a non-blocking socket, close(), exit: the datagram queued
	# for the association was dropped with the socket
	for i in 1 2 3; do
		env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
			timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.sendto(b"python " + sys.argv[2].encode() + b"\n", ("127.0.0.1", int(sys.argv[1])))
s.close()' "$ECHO_PORT" "$i"
	done
	wait_for_count "$ECHO_LOG" 30 '^from 127\.0\.0\.1:[0-9]+ [0-9]+$' 6
	# each through the relay (its own association), none from the program
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*c2t=[1-9]" 6
}

@test "connect(AF_UNSPEC) of a relayed socket (the kernel unbinds its port), then sendto(): a new association, the echo comes back" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		timeout 20 python3 -c '
import ctypes, socket, sys
port = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("127.0.0.1", port))
s.send(b"one")
print(s.recv(100).decode())
sa = (ctypes.c_ubyte * 16)()   # all zero: sa_family AF_UNSPEC
print("unspec", libc.connect(s.fileno(), sa, 16))
s.sendto(b"two", ("127.0.0.1", port))
d, a = s.recvfrom(100)
print(d.decode(), a == ("127.0.0.1", port))' "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'one\nunspec 0\ntwo True' ]
	# the datagram after it was lost: the relay took the old port only
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=udp-associate	.*outcome=ok" 2
}

@test "a UDP socket bound to 127.0.0.2 with the proxy on 127.0.0.1: the control connection leaves from 127.0.0.2 too, so the relay takes its datagrams" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
s.settimeout(5)
s.sendto(b"bound", ("127.0.0.1", int(sys.argv[1])))
d, a = s.recvfrom(100)
print(d.decode(), a[1] == int(sys.argv[1]))' "$ECHO_PORT"
	echo "$output"
	[ "$output" = "bound True" ]
	# it was dropped: "datagram from 127.0.0.2:P dropped: not the client's address"
	wait_for_line "$SOCKSIFYD_LOG" 30 \
		"cmd=udp-associate.*client=127\.0\.0\.2:|client=127\.0\.0\.2:.*cmd=udp-associate"
}

@test "a datagram to port 0: EINVAL as without the library, not sent to the relay to be dropped there" {
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" send 127.0.0.2 0
	echo "$output"
	[ "$output" = EINVAL ]
}

@test "socks5h: a datagram to a name goes to the proxy as the name; the reply comes from its placeholder" {
	need_dns_jail
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpcheck "socks5h://127.0.0.1:$PROXY_PORT" echo "$PROXY_ONLY_NAME" "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	! grep -qE '^[^ ]+ bad( |$)' <<<"$output" || false
	# the source a program sees is the placeholder it sent to
	src=$(sed -n 's/^sendto-1 ok \([^ ]*\) .*/\1/p' <<<"$output")
	is_placeholder "${src%:*}"
	grep -qx "getpeername $src" <<<"$output"
	wait_for_count "$ECHO_LOG" 30 '^from ' 9
}

@test "the proxy down: every UDP path fails with ECONNREFUSED and a log line, nothing sent directly" {
	start_udp_echo 127.0.0.1
	local how log=$BATS_TEST_TMPDIR/lib.log
	for how in sendto sendmsg sendmmsg connect syscall; do
		: >"$log"
		run env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$log" LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$BUILD/tests/pathcheck" udp "$how" 127.0.0.1 "$ECHO_PORT"
		[ "$output" = "ECONNREFUSED" ] || { echo "$how: $output"; false; }
		grep -q "proxy 127.0.0.1:1 cannot be reached: Connection refused; the program sees ECONNREFUSED" "$log" ||
			{ echo "$how"; cat "$log"; false; }
	done
	sleep 0.2
	[ ! -s "$ECHO_LOG" ]
}

# udpn N HOST PORT [VAR=VALUE...]: N datagrams by sendto(), one at a time,
# from python3 run with the variables; the errno name of each, or "ok", a
# line each.
udpn() {
	local n=$1 host=$2 port=$3
	shift 3
	env "$@" timeout -k 5 30 python3 -c '
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    try:
        s.sendto(b"x%d" % i, (sys.argv[2], int(sys.argv[3])))
        print("ok")
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))
' "$n" "$host" "$port"
}

@test "UDP failures are said as TCP's are: one line per proxy and reason at the default level, none with -q, each with -v" {
	local log=$BATS_TEST_TMPDIR/lib.log level want
	for level in "" error info; do
		: >"$log"
		run udpn 7 127.0.0.1 9 SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$log" \
			SOCKSIFY_LOG="${level:-warn}" LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1"
		[ "$(grep -c '^ECONNREFUSED$' <<<"$output")" = 7 ]
		cat "$log"
		case $level in
		"") want=1 ;;
		error) want=0 ;;
		info) want=7 ;;
		esac
		[ "$(wc -l <"$log")" = "$want" ]
		[ "$(grep -c 'proxy 127.0.0.1:1 cannot be reached: Connection refused' "$log")" = "$want" ]
	done
	# a refusal by policy is an error: -q says it too, but once per reason
	for level in "" error info; do
		: >"$log"
		run udpn 7 127.0.0.1 9 SOCKSIFY_EXCLUDE=none SOCKSIFY_UDP=block \
			SOCKSIFY_LOG_FILE="$log" SOCKSIFY_LOG="${level:-warn}" LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:1"
		[ "$(grep -c '^EPERM$' <<<"$output")" = 7 ]
		cat "$log"
		want=$([ "$level" = info ] && echo 7 || echo 1)
		[ "$(wc -l <"$log")" = "$want" ]
		[ "$(grep -c 'blocked UDP datagram to 127.0.0.1:9 (SOCKSIFY_UDP=block)' "$log")" = "$want" ]
	done
	# one proxy refusing UDP ASSOCIATE and then a CONNECT with the same
	# code (02): two reasons, two lines
	start_socksifyd --deny 'cmd connect,udp'
	: >"$log"
	run env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$log" SOCKSIFY_LOG=warn LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" timeout -k 5 30 python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for addr in (("127.0.0.1", 9), None):
    try:
        if addr:
            u.sendto(b"x", addr)
        else:
            socket.create_connection(("127.0.0.2", 9), timeout=10)
        print("ok")
    except OSError as e:
        print(e.errno)
'
	cat "$log"
	grep -q "proxy 127.0.0.1:$PROXY_PORT refused UDP ASSOCIATE: reply 02, connection not allowed by ruleset; the program sees EACCES" "$log"
	grep -q "proxy 127.0.0.1:$PROXY_PORT refused 127.0.0.2:9: reply 02, connection not allowed by ruleset; the program sees EACCES" "$log"
}

@test "a proxy that refuses UDP ASSOCIATE (reply 07): ECONNREFUSED, one line naming the reply, nothing sent" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v --no-udp
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" once 127.0.0.1 "$ECHO_PORT"
	[ "$output" = "ECONNREFUSED" ]
	grep -q "proxy 127.0.0.1:$PROXY_PORT refused UDP ASSOCIATE: reply 07, command not supported; the program sees ECONNREFUSED" "$BATS_TEST_TMPDIR/lib.log"
	[ ! -s "$ECHO_LOG" ]
}

@test "a chain of two hops relays no UDP: EPERM and a line saying why; SOCKSIFY_UDP=block: EPERM" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT,socks5://127.0.0.1:$PROXY_PORT" once 127.0.0.1 "$ECHO_PORT"
	[ "$output" = "EPERM" ]
	grep -q "a chain of 2 hops .* relays no UDP" "$BATS_TEST_TMPDIR/lib.log"
	run env SOCKSIFY_UDP=block SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" python3 "$UDPCHECK" once 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "${lines[-1]}" = "EPERM" ]
	[[ "${lines[0]}" == *"blocked UDP datagram to 127.0.0.1:$ECHO_PORT (SOCKSIFY_UDP=block)" ]]
	[ "$(relay_sessions)" -eq 0 ]
	[ ! -s "$ECHO_LOG" ]
}

@test "the relay vanishes (socksifyd stopped): the next send fails with ECONNREFUSED, no hang, nothing sent directly" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	udpcheck "socks5://127.0.0.1:$PROXY_PORT" twice 127.0.0.1 "$ECHO_PORT" >"$BATS_TEST_TMPDIR/out" &
	local cpid=$!
	PIDS+=($cpid)
	wait_for_line "$BATS_TEST_TMPDIR/out" 50 '^ok$'
	# killed: a server stopped with SIGTERM drains, and its relays live on
	kill -KILL "$SOCKSIFYD_PID"
	wait "$cpid"
	run cat "$BATS_TEST_TMPDIR/out"
	echo "$output"
	[ "${lines[0]}" = "ok" ]
	[ "${lines[1]}" = "ECONNREFUSED" ]
	# the relay's end is seen, a new association tried for the datagram,
	# and the proxy found down: said as a failing proxy is
	cat "$BATS_TEST_TMPDIR/lib.log"
	grep -q "proxy 127.0.0.1:$PROXY_PORT cannot be reached: Connection refused; the program sees ECONNREFUSED" "$BATS_TEST_TMPDIR/lib.log"
	sleep 0.2
	[ "$(wc -l <"$ECHO_LOG")" -eq 1 ]
}

@test "the server's --udp-idle-timeout ends an association: an unconnected socket's next send sets a new one up at once (no ICMP-style error), a connected one's says ECONNREFUSED once" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v --udp-idle-timeout 400
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		timeout 30 python3 -c '
import socket, sys, time
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.connect(("127.0.0.1", port))
for i in range(3):
    u.sendto(b"u%d" % i, ("127.0.0.1", port))
    print(u.recvfrom(100)[0].decode(), end=" ")
    try:
        c.send(b"c%d" % i)
        print(c.recv(100).decode())
    except OSError as e:
        print(e.errno == 111 and "ECONNREFUSED" or e)
    time.sleep(0.9)' "$ECHO_PORT"
	echo "$output"
	echo "stderr: $stderr"
	[ "$status" -eq 0 ]
	# the unconnected socket: every round answered; the connected one:
	# told once the relay went (one line), then a new association
	[ "${lines[0]}" = "u0 c0" ]
	[ "${lines[1]}" = "u1 ECONNREFUSED" ]
	[ "${lines[2]}" = "u2 c2" ]
	[ "$(grep -c "is gone" <<<"$stderr")" -eq 1 ]
}

# udpedge MODE ARGS...: tests/bin/udpedge.c under the library, through a
# fresh socksifyd, 127.0.0.2 excluded.
udpedge() {
	env SOCKSIFY_EXCLUDE=127.0.0.2/32 SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" timeout -k 5 60 "$BUILD/tests/udpedge" "$@"
}

@test "a signal handler that write()s to a pipe while datagrams are relayed: 2,000 round trips, no deadlock" {
	start_udp_echo 127.0.0.1
	start_socksifyd
	run udpedge sigwrite "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "sigwrite ok (2000 rounds, "* ]]
}

@test "a vfork()ed child that closes every descriptor before exec() leaves the parent's association working" {
	start_udp_echo 127.0.0.1
	start_socksifyd
	run udpedge vfork "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "after-vfork ok" ]
}

@test "an AF_UNSPEC address (the kernel reads it as AF_INET) and a name of length 0 go through the relay, never around it" {
	start_udp_echo 127.0.0.1
	start_socksifyd
	run udpedge unspec "$ECHO_PORT"
	echo "$output"
	[ "${lines[0]}" = "unspec-sendto ok" ] || [ "${lines[1]}" = "unspec-sendto ok" ]
	[[ "$output" == *"unspec-sendmsg ok"* ]]
	local port
	port=$(sed -n 's/^local //p' <<<"$output")
	[ -n "$port" ]
	wait_for_count "$ECHO_LOG" 30 '^from ' 2
	! grep -q "^from 127\.0\.0\.1:$port " "$ECHO_LOG" || false
	run udpedge namelen0 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "namelen0 ok" ]
}

@test "MSG_MORE, UDP GSO, UDP_CORK, UDP_GRO and sendfile(), which the relay's header cannot frame: EOPNOTSUPP, before or after the association" {
	start_udp_echo 127.0.0.1
	start_socksifyd
	run udpedge framing "$ECHO_PORT"
	echo "$output"
	[ "${lines[0]}" = "more EOPNOTSUPP" ]
	[ "${lines[1]}" = "gso EOPNOTSUPP" ]
	[ "${lines[2]}" = "cork EOPNOTSUPP" ]
	grep -q "UDP_CORK is not supported on a relayed socket" "$BATS_TEST_TMPDIR/lib.log"
	# Turned on once relayed: socksifyd's GSO runs would arrive as one.
	[ "${lines[3]}" = "relayed ok" ]
	[ "${lines[4]}" = "gro-after EOPNOTSUPP" ]
	[ "${lines[5]}" = "gso-after EOPNOTSUPP" ]
	[ "${lines[6]}" = "gro-off sent" ]
	grep -q "UDP_GRO is not supported on a relayed socket" "$BATS_TEST_TMPDIR/lib.log"
	[ "${lines[7]}" = "sendfile EOPNOTSUPP" ]
	grep -q "sendfile() is not supported on a relayed socket" "$BATS_TEST_TMPDIR/lib.log"
	sleep 0.2
	[ "$(grep -c . "$ECHO_LOG")" -eq 1 ]		# before-gro's round trip alone
}

@test "connect() through the relay, then to an excluded address: send() and sendfile() go to the excluded peer directly" {
	start_udp_echo 127.0.0.2
	local excluded=$ECHO_PORT excluded_log=$ECHO_LOG
	start_udp_echo 127.0.0.1
	start_socksifyd
	run udpedge exclconnect "$ECHO_PORT" "$excluded"
	echo "$output"
	[ "${lines[0]}" = "relayed ok" ]
	[ "${lines[1]}" = "excluded ok" ]
	# sendfile() to it is the kernel's too: the file's 4 bytes arrive
	[ "${lines[2]}" = "excluded-sendfile sent" ]
	wait_for_count "$excluded_log" 30 '^from 127\.0\.0\.1:' 2
	grep -q '^from 127\.0\.0\.1:[0-9]* 4$' "$excluded_log" || { cat "$excluded_log"; false; }
}

@test "the relay restarted on its port: the connected socket re-associates and is connected to the new relay" {
	start_udp_echo 127.0.0.1
	local port out=$BATS_TEST_TMPDIR/out
	port=$(free_port)
	start_socksifyd -v -l "127.0.0.1:$port"
	udpcheck "socks5://127.0.0.1:$port" reconnect 127.0.0.1 "$ECHO_PORT" "$BATS_TEST_TMPDIR/go" >"$out" &
	PIDS+=($!)
	local cpid=$!
	wait_for_line "$out" 50 '^ok$'
	kill -KILL "$SOCKSIFYD_PID"
	# gone, and its listener with it, before the port is bound again
	timeout 5 tail --pid="$SOCKSIFYD_PID" -f /dev/null
	start_socksifyd -v -l "127.0.0.1:$port"
	touch "$BATS_TEST_TMPDIR/go"
	wait "$cpid"
	run cat "$out"
	echo "$output"
	[ "${lines[0]}" = "ok" ]
	[ "${lines[1]}" = "ECONNREFUSED" ]
	[ "${lines[2]}" = "ok" ]
}

@test "iperf3 -u through the embedded server (socksify with no upstream): datagrams both ways, each a relayed one" {
	command -v iperf3 >/dev/null || skip "iperf3 is not installed (scripts/deps.sh test)"
	local port out=$BATS_TEST_TMPDIR/iperf.json slog=$BATS_TEST_TMPDIR/iperfd.log srv
	port=$(free_port)
	iperf3 -s -1 -B 127.0.0.1 -p "$port" --json >"$slog" 2>&1 &
	srv=$!
	PIDS+=($srv)
	wait_listen "$port" 50
	for dir in "" -R; do
		run --separate-stderr timeout -k 5 60 "$SOCKSIFY" --trace -- \
			iperf3 -u -c 127.0.0.1 -p "$port" -t 1 -b 5M -l 1024 $dir --json
		[ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
		# the data socket went through a relay of the embedded server
		[[ "$stderr" == *"UDP ASSOCIATE via "*": relay 127.0.0.1:"* ]] || { echo "$stderr"; false; }
		# every datagram arrived, none lost or out of order, in the
		# direction measured
		python3 -c '
import json, sys
r = json.loads(sys.argv[1])["end"]["sum"]
print("packets", r["packets"], "lost", r["lost_packets"])
assert r["packets"] > 100 and r["lost_packets"] == 0, r' "$output"
		[ -z "$dir" ] || break
		# a server for one test: the first is gone before the second binds
		timeout 5 tail --pid="$srv" -f /dev/null
		iperf3 -s -1 -B 127.0.0.1 -p "$port" --json >"$slog" 2>&1 &
		srv=$!
		PIDS+=($srv)
		wait_listen "$port" 50
	done
}

@test "a non-blocking socket never waits for its association: sendto() returns at once with the proxy 300 ms away, the echo comes once it is up, getsockname() names its port at once; a blocking one waits" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 300
	run udpcheck "socks5://127.0.0.1:$DELAY_PORT" slow 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "${lines[1]}" = "ok" ]
	[ "${lines[0]#sendto-ms }" -lt 400 ]
	# getsockname() names the port the send bound, before and after the
	# association is up, as without the library; connect() binds too.
	[ "${lines[2]}" = "port same" ]
	[ "${lines[3]}" = "connect port set" ]
	run udpcheck "socks5://127.0.0.1:$DELAY_PORT" slow 127.0.0.1 "$ECHO_PORT" blocking
	echo "$output"
	[ "${lines[1]}" = "ok" ]
	[ "${lines[0]#sendto-ms }" -ge 600 ]
	[ "${lines[2]}" = "port same" ]
	[ "${lines[3]}" = "connect port set" ]
}

@test "a child forked while a datagram waits for its association exits at once (exit() waits only for its own process's queues)" {
	local count=$BATS_TEST_TMPDIR/silent.count
	: >"$count"
	start_py_port fakeproxy.py silent "$count"
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$HELPER_PORT" \
		timeout 30 python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.sendto(b"x", ("127.0.0.1", 9))
worst = 0.0
for _ in range(3):
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    worst = max(worst, time.monotonic() - t0)
print(int(worst * 1000), flush=True)   # os._exit() flushes nothing
os._exit(0)'
	echo "worst child ms: $output"
	[ "$status" -eq 0 ]
	# each child waited UDP_EXIT_WAIT_MS (1 s) for the parent's set-up
	[ "$output" -lt 500 ]
}

@test "a non-blocking socket's queue while its association is set up is 256 KiB: a send past it gets ENOBUFS, never a silent drop" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 300
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$DELAY_PORT" \
		timeout 30 python3 -c '
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
ok = nobufs = 0
for i in range(400):
    try:
        s.sendto(b"%04d" % i + bytes(996), ("127.0.0.1", int(sys.argv[1])))
        ok += 1
    except OSError as e:
        if e.errno != errno.ENOBUFS:
            raise
        nobufs += 1
print(ok, nobufs)
import time; time.sleep(3)' "$ECHO_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	read -r ok nobufs <<<"$output"
	# 262 datagrams of 1000 bytes fit in 256 KiB; the rest are told
	[ "$ok" -eq 262 ]
	[ "$nobufs" -eq 138 ]
	# and every one the program was told went out arrives
	wait_for_count "$ECHO_LOG" 50 '^from ' 262
}

@test "a non-blocking socket whose proxy refuses UDP: the receive that waits for a reply is woken and told ECONNREFUSED" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v --no-udp
	run udpcheck "socks5://127.0.0.1:$PROXY_PORT" slow 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "${lines[1]}" = "ECONNREFUSED" ]
	grep -q "refused UDP ASSOCIATE: reply 07, command not supported" "$BATS_TEST_TMPDIR/lib.log"
	[ ! -s "$ECHO_LOG" ]
}

@test "the relay's port is closed (the proxy named a relay where nothing listens): a connected socket gets ECONNREFUSED, an unconnected one its own timeout, never a hang" {
	start_udp_echo 127.0.0.1
	local pf=$BATS_TEST_TMPDIR/fake.port
	python3 "$HELPERS/s5fakeudp.py" "$pf" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	run udpcheck "socks5://127.0.0.1:$(cat "$pf")" connected 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "ECONNREFUSED" ]
	run udpcheck "socks5://127.0.0.1:$(cat "$pf")" once 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "timeout" ]
	[ ! -s "$ECHO_LOG" ]
}

@test "recvmmsg() and sendmmsg() through the relay: four datagrams out in one call, their echoes back intact and from the target" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	run udpedge mmsg "$ECHO_PORT"
	echo "$output"
	[ "$output" = "mmsg ok (4 of 4)" ]
	wait_for_count "$ECHO_LOG" 30 '^from ' 4
}

@test "the association ends with the socket: close() ends the proxy's session while the program still runs" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	local out=$BATS_TEST_TMPDIR/out
	udpcheck "socks5://127.0.0.1:$PROXY_PORT" close 127.0.0.1 "$ECHO_PORT" >"$out" &
	local cpid=$!
	PIDS+=($cpid)
	wait_for_line "$out" 50 '^closed$'
	grep -qx ok "$out"
	# the session line is written when the proxy saw the control
	# connection close: before the program exits
	wait_for_line "$SOCKSIFYD_LOG" 20 'cmd=udp-associate	.*outcome=ok'
	kill -0 "$cpid"
}

@test "microsocks, which refuses UDP ASSOCIATE: ECONNREFUSED and one line naming its reply, nothing sent" {
	start_udp_echo 127.0.0.1
	start_microsocks
	local port=$PROXY_PORT
	run udpcheck "socks5://127.0.0.1:$port" once 127.0.0.1 "$ECHO_PORT"
	echo "$output"
	[ "$output" = "ECONNREFUSED" ]
	run grep -c "proxy 127.0.0.1:$port refused UDP ASSOCIATE: reply 07, command not supported; the program sees ECONNREFUSED" "$BATS_TEST_TMPDIR/lib.log"
	[ "$output" = 1 ]
	[ ! -s "$ECHO_LOG" ]
}

@test "a socket connect()ed through the relay hears its peer only: a stranger's datagram to its port is not delivered (blocking and non-blocking)" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	local how out port
	for how in blocking nonblocking; do
		out=$BATS_TEST_TMPDIR/out.$how
		rm -f "$BATS_TEST_TMPDIR/go"
		udpcheck "socks5://127.0.0.1:$PROXY_PORT" stranger 127.0.0.1 "$ECHO_PORT" \
			"$BATS_TEST_TMPDIR/go" "$how" >"$out" &
		PIDS+=($!)
		local cpid=$!
		wait_for_line "$out" 50 '^local [0-9]+$'
		port=$(sed -n 's/^local //p' "$out")
		python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"INJECTED", ("127.0.0.1", int(sys.argv[1])))' "$port"
		touch "$BATS_TEST_TMPDIR/go"
		wait "$cpid"
		cat "$out"
		grep -qx "first ok" "$out"
		grep -qx "second ok" "$out"
	done
}

@test "a blocking receive that began before the relay was known unwraps the echo (MSG_DONTWAIT set the association up behind it)" {
	start_udp_echo 127.0.0.1
	start_socksifyd -v
	# 200 ms away: the receive surely begins before the relay is known
	start_delayfwd "127.0.0.1:$PROXY_PORT" 200
	PROXY_PORT=$DELAY_PORT
	run udpedge dontwait "$ECHO_PORT"
	echo "$output"
	[ "$output" = "dontwait ok" ]
}
