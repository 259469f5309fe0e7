#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# libsocksify.so on the paths programs take around the usual wrappers:
# syscall(), io_uring, UDP and ICMP under SOCKSIFY_UDP. The probes are
# tests/bin/pathcheck.c.

load helpers/common

PATHCHECK=$BUILD/tests/pathcheck

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

@test "syscall(SYS_connect) is tunnelled like connect()" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" "$PATHCHECK" syscall-connect "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "syscall(SYS_connect) to an unreachable proxy fails closed (ECONNREFUSED)" {
	# a port nobody listens on: the proxy is down, the target is up
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$PATHCHECK" syscall-connect "$HTTP_PORT"
	[ "$output" = "ECONNREFUSED" ]
}

@test "syscall(): other numbers pass through untouched, io_uring_setup is ENOSYS" {
	run preload "socks5://127.0.0.1:1" "$PATHCHECK" syscall-other
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
	run "$PATHCHECK" iouring
	if [ "$output" != "fd" ]; then
		skip "io_uring unavailable on this kernel ($output)"
	fi
	run preload "socks5://127.0.0.1:1" "$PATHCHECK" iouring
	[ "$output" = "ENOSYS" ]
	run env SOCKSIFY_IOURING=allow LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" iouring
	[ "$output" = "fd" ]
}

# udp_to_name ENV...: python3 under the library with socks5h and ENV sends a
# datagram to a name (its placeholder): "sent" or the errno's name.
udp_to_name() {
	env "$@" LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:1" \
		python3 "$HELPERS/udpcheck.py" send udp-name.socksify.test 9
}

@test "SOCKSIFY_UDP=block: every UDP path fails with EPERM and one log line each" {
	local how log=$BATS_TEST_TMPDIR/lib.log
	for how in sendto sendmsg sendmmsg connect syscall; do
		: >"$log"
		run env SOCKSIFY_UDP=block SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$log" LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$PATHCHECK" udp "$how" 127.0.0.1 9
		[ "$output" = "EPERM" ] || { echo "$how: $output"; false; }
		run grep -c "blocked UDP datagram to 127.0.0.1:9 (SOCKSIFY_UDP=block)" "$log"
		[ "$output" = "1" ] || { echo "$how: $output lines"; cat "$log"; false; }
	done
	run env SOCKSIFY_EXCLUDE=none SOCKSIFY_UDP=block LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$PATHCHECK" udp sendto ::1 9
	[ "${lines[-1]}" = "EPERM" ]
	# to a name (a placeholder this process got) under socks5h: block's
	# EPERM and words too (it was EHOSTUNREACH, "a placeholder address")
	: >"$log"
	run udp_to_name SOCKSIFY_UDP=block SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$log"
	[ "$output" = "EPERM" ]
	grep -q "blocked UDP datagram to 198\.1[89]\.[0-9.]*:9 (SOCKSIFY_UDP=block)" "$log" || { cat "$log"; false; }
	# ... unless excluded (block lets an excluded destination by): then
	# the placeholder rule's own EHOSTUNREACH, never sent.
	run udp_to_name SOCKSIFY_UDP=block SOCKSIFY_EXCLUDE=198.18.0.0/15
	[ "${lines[-1]}" = "EHOSTUNREACH" ]
	# an unknown value blocks too
	run env SOCKSIFY_EXCLUDE=none SOCKSIFY_UDP=blok LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$PATHCHECK" udp sendto 127.0.0.1 9
	[ "${lines[-1]}" = "EPERM" ]
	[[ "${lines[0]}" == *'SOCKSIFY_UDP: unknown value "blok"; using block'* ]]
}

@test "UDP goes direct to excluded destinations, and everywhere with SOCKSIFY_UDP=pass; the rest takes the relay (proxy down: ECONNREFUSED)" {
	# the default exclusions with an upstream proxy: loopback
	run preload "socks5h://127.0.0.1:1" "$PATHCHECK" udp sendto 127.0.0.1 9
	[ "$output" = "sent" ]
	run env SOCKSIFY_EXCLUDE=127.0.0.2/32 LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" udp sendto 127.0.0.2 9
	[ "$output" = "sent" ]
	# not excluded: the relay of a proxy that is down
	run env SOCKSIFY_EXCLUDE=127.0.0.2/32 LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" udp sendto 127.0.0.3 9
	[ "${lines[-1]}" = "ECONNREFUSED" ]
	# local resolution: a program's own DNS query goes where it was
	# addressed, through the relay (CONTRACT.md) ...
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" udp sendto 127.0.0.1 53
	[ "${lines[-1]}" = "ECONNREFUSED" ]
	# ... and directly under SOCKSIFY_UDP=block, as before
	run env SOCKSIFY_UDP=block SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" udp sendto 127.0.0.1 53
	[ "$output" = "sent" ]
	run env SOCKSIFY_EXCLUDE=none SOCKSIFY_UDP=pass LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:1" "$PATHCHECK" udp sendmsg 127.0.0.1 9
	[ "$output" = "sent" ]
}

@test "ICMP (ping's datagram or raw socket) is refused like UDP, and goes when excluded" {
	run "$PATHCHECK" icmp 127.0.0.1
	[ "$output" = "sent" ] || skip "no ICMP socket here: $output"
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:1" \
		"$PATHCHECK" icmp 127.0.0.1
	[ "${lines[-1]}" = "EPERM" ]
	# said as what it is, with no port
	[[ "${lines[0]}" == *"blocked ICMP or raw packet to 127.0.0.1 (SOCKSIFY_UDP=proxy relays UDP only)" ]]
	run preload "socks5://127.0.0.1:1" "$PATHCHECK" icmp 127.0.0.1
	[ "$output" = "sent" ]
}

@test "socks5h: a DNS query by syscall(SYS_sendto) is answered by the library, never sent; SOCKSIFY_UDP=pass changes nothing" {
	start_dnssink
	for udp in proxy pass; do
		run env SOCKSIFY_UDP=$udp LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:1" \
			"$PATHCHECK" udp syscall 127.0.0.1 53
		[ "$output" = "sent" ]
	done
	sink_empty
}

# in_hosts FILE CMD...: run CMD with FILE as its /etc/hosts (a mount
# namespace of its own), so names resolve locally with no DNS query.
in_hosts() {
	local f=$1
	shift
	unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$f" "$@"
}

# hosts_file NAME...: every NAME on 127.0.0.1; sets HOSTS.
hosts_file() {
	HOSTS=$BATS_TEST_TMPDIR/hosts
	{ cat /etc/hosts 2>/dev/null; for n in "$@"; do echo "127.0.0.1 $n"; done; } >"$HOSTS"
}

# fetch URL NAME EXCLUDE: curl NAME through the library, prints the body.
fetch() {
	in_hosts "$HOSTS" env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$1" SOCKSIFY_EXCLUDE="$3" \
		curl -sS --max-time 20 "http://$2:$HTTP_PORT/hello.txt"
}

# proxied PORT: how many sessions to 127.0.0.1:PORT socksifyd logged.
proxied() {
	sleep 0.3
	grep -c "127\.0\.0\.1:$1" "$SOCKSIFYD_LOG" || true
}

@test "socks5h: an excluded host name resolves locally and connects direct" {
	need_dns_jail
	hosts_file db.internal other.internal
	start_socksifyd -v
	run fetch "socks5h://127.0.0.1:$PROXY_PORT" db.internal db.internal
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	[ "$(proxied "$HTTP_PORT")" = 0 ]
	run grep -c "db\.internal" "$SOCKSIFYD_LOG"
	[ "$output" = 0 ]
	# the same host under a name not excluded: a placeholder, the proxy
	# (which has no entry for it) is asked, and the fetch fails there
	run fetch "socks5h://127.0.0.1:$PROXY_PORT" other.internal db.internal
	[ "$status" -ne 0 ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "other\.internal:$HTTP_PORT"
}

@test "socks5: an address an excluded name resolved to connects direct; others tunnel" {
	need_dns_jail
	hosts_file db.internal other.internal
	start_socksifyd -v
	run fetch "socks5://127.0.0.1:$PROXY_PORT" db.internal "db.internal."
	[ "$output" = "hello through socks" ]
	[ "$(proxied "$HTTP_PORT")" = 0 ]
	run fetch "socks5://127.0.0.1:$PROXY_PORT" other.internal db.internal
	[ "$output" = "hello through socks" ]
	[ "$(proxied "$HTTP_PORT")" = 1 ]
}

@test ".suffix exclusions match the name and its subdomains, nothing else" {
	need_dns_jail
	hosts_file corp a.corp B.A.CORP xcorp corp.example
	start_socksifyd -v
	for n in corp a.corp b.a.corp; do
		run fetch "socks5://127.0.0.1:$PROXY_PORT" "$n" ".corp"
		[ "$output" = "hello through socks" ] || { echo "$n: $output"; false; }
	done
	[ "$(proxied "$HTTP_PORT")" = 0 ]
	for n in xcorp corp.example; do
		run fetch "socks5://127.0.0.1:$PROXY_PORT" "$n" ".corp"
		[ "$output" = "hello through socks" ] || { echo "$n: $output"; false; }
	done
	[ "$(proxied "$HTTP_PORT")" = 2 ]
}

@test "socksify -e takes host names and .suffixes; a bad one exits 125" {
	start_socksifyd
	run "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e db.internal -e .corp -e 10.0.0.0/8 \
		sh -c 'echo "$SOCKSIFY_EXCLUDE"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"db.internal,.corp,10.0.0.0/8" ]]
	for bad in 10.0.0.300 "a..b" "bad name" "x/y" ".."; do
		run "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e "$bad" true
		[ "$status" -eq 125 ] || { echo "$bad: $status"; false; }
	done
}

@test "getpeername() on a tunnelled socket names the target, not the proxy" {
	start_socksifyd
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		"$PATHCHECK" peer 127.0.0.1 "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "127.0.0.1 $HTTP_PORT" ]
}

@test "socks5h: getpeername() gives the placeholder the program connected to" {
	need_dns_jail
	start_socksifyd
	run preload "socks5h://127.0.0.1:$PROXY_PORT" "$PATHCHECK" peer "$PROXY_ONLY_NAME" "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^198\.(18|19)\.[0-9]+\.[0-9]+\ $HTTP_PORT$ ]]
}

@test "getpeername(): a reused fd number is not answered from stale state" {
	start_socksifyd
	# second connection: the same fd number, to the proxy itself (direct)
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		"$PATHCHECK" peer 127.0.0.1 "$HTTP_PORT" "$PROXY_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "127.0.0.1 $HTTP_PORT" ]
	[ "${lines[1]}" = "127.0.0.1 $PROXY_PORT" ]
}

@test "TCP fast open by sendmmsg() (libc and syscall) and glibc's __connect are tunnelled" {
	start_socksifyd -v
	local how n=0
	for how in fastopen-sendmmsg syscall-sendmmsg __connect; do
		run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" "$PATHCHECK" tcp "$how" "$HTTP_PORT"
		[ "$output" = "hello through socks" ] || { echo "$how: $output"; false; }
		n=$((n + 1))
		# the session's line comes once socksifyd has seen the close
		wait_for_count "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT" "$n" ||
			{ echo "$how went around the proxy"; cat "$SOCKSIFYD_LOG"; false; }
	done
}

@test "getpeername() of a tunnelled socket into a short buffer is truncated, never overrun" {
	start_socksifyd
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" "$PATHCHECK" peer-small "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "len=28 family=10 overwritten=0" ]
	[ "${lines[1]}" = "null len=28" ]
}

@test "socks5h: DNS over TCP, to an excluded server too, is the library's to answer (connected, nothing dialled); socks5:// lets it go" {
	# loopback is excluded by default with an upstream proxy, and nothing
	# listens on its port 53 here: only an answer of ours connects
	run preload "socks5h://127.0.0.1:1" "$PATHCHECK" syscall-connect 53
	[ "$output" = "ok" ]
	# local resolution: the connect is the program's own and goes direct
	run preload "socks5://127.0.0.1:1" "$PATHCHECK" syscall-connect 53
	[ "$output" = "ECONNREFUSED" ]
}

@test "a name with a newline cannot forge a line in the library's log; the log file is the user's alone" {
	local log=$BATS_TEST_TMPDIR/lib.log
	run env SOCKSIFY_LOG=info SOCKSIFY_LOG_FILE="$log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5h://127.0.0.1:1" python3 -c '
import socket
name = "x\nsocksify[1] connect bank.example via proxy ok\nx"
ai = socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)[0][4]
s = socket.socket()
try:
    s.connect(ai)
except OSError as e:
    print(e.errno)
'
	[ "$output" = "111" ]	# ECONNREFUSED: the proxy is down
	cat "$log"
	! grep -q '^socksify\[1\]' "$log" || false
	grep -q 'connect x?socksify\[1\] connect bank.example via proxy ok?x:443 via' "$log"
	[ "$(stat -c %a "$log")" = 600 ]
}

@test "a second connect() on a tunnelled socket is EISCONN, and the connection still works" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c '
import errno, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected twice")
except OSError as e:
    print(errno.errorcode[e.errno])
s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
print(s.makefile("rb").read().split(b"\r\n\r\n", 1)[1].decode())
' "$HTTP_PORT"
	[ "${lines[0]}" = "EISCONN" ]
	[ "${lines[1]}" = "hello through socks" ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=127\.0\.0\.1:$HTTP_PORT" 1
}
