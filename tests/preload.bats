#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# libsocksify.so inside unmodified programs (curl, python3), used directly
# through LD_PRELOAD, against socksifyd.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

@test "curl with no proxy flags is tunnelled: bytes intact, the proxy saw it" {
	start_socksifyd -v
	got=$(SOCKSIFY_EXCLUDE=none preload "socks5://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "loopback is excluded by default when an upstream is given (direct, not via proxy)" {
	start_socksifyd -v
	got=$(preload "socks5://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	sleep 0.3
	run grep -c "127.0.0.1:$HTTP_PORT" "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

@test "socks5h: a name only the proxy can resolve is fetched; the name went to the proxy" {
	need_dns_jail
	name=$PROXY_ONLY_NAME
	run grep -sc "$name" /etc/hosts
	[ "${output:-0}" = "0" ]                  # this host cannot resolve it
	start_socksifyd -v
	got=$("$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://$name:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "$name:$HTTP_PORT"
	# with socks5 (local resolution) the same name fails inside curl
	run "$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" curl -sS --max-time 10 "http://$name:$HTTP_PORT/hello.txt"
	[ "$status" -eq 6 ]                       # curl: could not resolve host
}

@test "socks5h: getaddrinfo answers placeholders from 198.18.0.0/15, never a DNS query" {
	need_dns_jail
	start_socksifyd
	run preload "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/netprobe.py" resolve some-name.example
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^198\.(18|19)\.[0-9]+\.[0-9]+$ ]]
	# numeric hosts pass through untouched
	run preload "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/netprobe.py" resolve 10.1.2.3
	[ "${lines[0]}" = "10.1.2.3" ]
}

@test "non-blocking connect (python3 asyncio): bytes intact" {
	start_socksifyd
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" asyncio 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$status" -eq 0 ]
	[ "$output" = "$PAYLOAD_SHA" ]
}

@test "non-blocking socket: connect succeeds and O_NONBLOCK is restored" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect-nb 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "ok nonblocking" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "blocking socket: stays blocking after a tunnelled connect" {
	start_socksifyd
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect-b 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "ok blocking" ]
}

@test "refused target: the program sees ECONNREFUSED (reply 05)" {
	start_socksifyd
	dead=$(free_port)
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$dead"
	[ "$output" = "ECONNREFUSED" ]
}

@test "unresolvable name through socks5h: the program sees EHOSTUNREACH (reply 04)" {
	need_dns_jail
	start_socksifyd
	run --separate-stderr preload "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/netprobe.py" connect no-such-host.invalid 80
	[ "$output" = "EHOSTUNREACH" ]
}

@test "unreachable proxy: ECONNREFUSED, never a direct connection" {
	dead=$(free_port)
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$dead" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "ECONNREFUSED" ]
}

@test "a proxy that never answers: ETIMEDOUT after SOCKSIFY_TIMEOUT" {
	pf=$BATS_TEST_TMPDIR/mute.port
	python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(8)
open(sys.argv[1],"w").write("%d\n" % s.getsockname()[1])
c=s.accept(); time.sleep(20)' "$pf" 3>&- &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	start=$SECONDS
	run --separate-stderr env SOCKSIFY_TIMEOUT=1 SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$(cat "$pf")" \
		timeout 10 python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "ETIMEDOUT" ]
	[ $((SECONDS - start)) -le 5 ]
}

@test "IPv6 target on ::1 through the proxy" {
	start_http ::1
	start_socksifyd
	got=$(SOCKSIFY_EXCLUDE=none preload "socks5://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://[::1]:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

@test "AF_INET6 socket to an IPv4 target reaches the IPv4 proxy (v4-mapped)" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" v6sock 127.0.0.1 "$HTTP_PORT" /payload.bin
	[ "$output" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "a proxy named with an IPv4 and an IPv6 address (as localhost on Debian) that listens on IPv4 alone: an IPv6 socket reaches it too" {
	start_http ::1
	start_socksifyd -v
	printf '::1 dual.test\n127.0.0.1 dual.test\n' >"$BATS_TEST_TMPDIR/hosts"
	# curl's socket for [::1] is AF_INET6; it dialled ::1 and was refused
	got=$(unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$BATS_TEST_TMPDIR/hosts" \
		env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://dual.test:$PROXY_PORT" \
		curl -sS --max-time 20 -g "http://[::1]:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "\[::1\]:$HTTP_PORT"
}

@test "an IPv6 socket bound to ::1 and an IPv4 proxy: ECONNREFUSED, and a line at the default level that says why" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c '
import errno, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::1", 0))   # the kernel makes it IPv6-only: no v4-mapped dial
try:
    s.connect(("::1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])' "$HTTP_PORT"
	echo "$output"
	[ "${lines[-1]}" = ECONNREFUSED ]
	[[ "$output" == *"proxy 127.0.0.1:$PROXY_PORT cannot be reached from this socket (Cannot assign requested address: it is bound to an address of the other family than the proxy's); the program sees ECONNREFUSED"* ]]
}

@test "an IPV6_V6ONLY socket to an IPv4-mapped address: ENETUNREACH as without the library, never tunnelled" {
	start_socksifyd -v
	local v6only='
import errno, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
try:
    s.connect(("::ffff:127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])'
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c "$v6only" "$HTTP_PORT"
	echo "$output"
	[ "$output" = ENETUNREACH ]
	# and the supervisor's
	run "$SOCKSIFY" --mode seccomp -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		python3 -c "$v6only" "$HTTP_PORT"
	echo "$output"
	[ "$output" = ENETUNREACH ]
	sleep 0.2
	! grep -q "target=" "$SOCKSIFYD_LOG" || false
}

@test "credentials in the URL: accepted, and a wrong password gives EACCES" {
	printf 'bob:hunter2\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	start_socksifyd -u "$BATS_TEST_TMPDIR/users"
	got=$(SOCKSIFY_EXCLUDE=none preload "socks5://bob:hunter2@127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://bob:nope@127.0.0.1:$PROXY_PORT" \
		python3 "$HELPERS/netprobe.py" connect 127.0.0.1 "$HTTP_PORT"
	[ "$output" = "EACCES" ]
}

@test "socks5h: a UDP datagram to port 53 is answered by the library, never sent (sendto, and connect() as glibc's resolver does)" {
	start_dnssink
	start_socksifyd
	run preload "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/netprobe.py" udp53 127.0.0.1
	[ "${lines[-1]}" = "sent" ]
	run preload "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/netprobe.py" udpconnect53 127.0.0.1
	[ "${lines[-1]}" = "sent" ]
	sink_empty
}

@test "::1 is excluded by default too when an upstream is given (direct, not via proxy)" {
	start_http ::1
	start_socksifyd -v
	got=$(preload "socks5://127.0.0.1:$PROXY_PORT" \
		curl -sS --max-time 20 "http://[::1]:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	sleep 0.3
	run grep -cF "[::1]:$HTTP_PORT" "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

@test "a chain of two proxies: A is asked for B, B for the target" {
	start_socksifyd -v
	a_port=$PROXY_PORT a_log=$SOCKSIFYD_LOG
	SOCKSIFYD_LOG=$BATS_TEST_TMPDIR/b.log
	"$SOCKSIFYD" -l 127.0.0.1:0 -v 3>&- 2>"$SOCKSIFYD_LOG" &
	PIDS+=($!)
	wait_for_line "$SOCKSIFYD_LOG" 50 '^socksifyd: listening on '
	b_port=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$SOCKSIFYD_LOG")
	got=$(SOCKSIFY_EXCLUDE=none preload "socks5://127.0.0.1:$a_port,socks5://127.0.0.1:$b_port" \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$a_log" 30 "127\.0\.0\.1:$b_port"
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "a 24-byte sockaddr_in6 (RFC 2133 size) is tunnelled, never connected directly" {
	start_http ::1
	start_socksifyd -v
	for len in 28 24; do
		run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
			"$BUILD/tests/netcheck" connect6 "$HTTP_PORT" "$len"
		[ "$output" = "ok" ]
	done
	# a session's line is written when it ends: wait for both
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=\[::1\]:$HTTP_PORT" 2
	# shorter than any sockaddr_in6 the kernel takes: EINVAL, as without us
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		"$BUILD/tests/netcheck" connect6 "$HTTP_PORT" 23
	[ "$output" = "EINVAL" ]
	# and a short-form datagram to port 53 is still a DNS query: answered
	# here (its 1-byte "query" gets no answer), never sent to ::1
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		"$BUILD/tests/netcheck" udp53v6 24
	[ "${lines[-1]}" = "sent" ]
}

@test "socks5h: resolver calls around getaddrinfo (res_*, gethostbyaddr, getaddrinfo_a) send no DNS query" {
	start_dnssink
	start_socksifyd
	# control: without the library, the sink sees the query
	run "$BUILD/tests/netcheck" res_query leak-control.socksify.test
	[ "$output" = "failed" ]
	grep -qx 'leak-control.socksify.test' "$DNS_LOG"
	for op in res_query res_search res_send; do
		run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
			"$BUILD/tests/netcheck" "$op" "leak-$op.socksify.test"
		[ "${lines[-1]}" = "failed" ]
	done
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		"$BUILD/tests/netcheck" gethostbyaddr 192.0.2.7
	[ "${lines[-1]}" = "failed" ]
	# said as libc says it: CPython reads the global h_errno
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		python3 -c 'import socket
try:
    print(socket.gethostbyaddr("192.0.2.8"))
except socket.herror as e:
    print(e.errno, e.strerror)'
	[ "$output" = "1 Unknown host" ]
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		"$BUILD/tests/netcheck" getaddrinfo_a leak-gaia.socksify.test
	[[ "${lines[-1]}" =~ ^(198\.1[89]\.[0-9]+\.[0-9]+|failed:.*)$ ]]
	sleep 0.2
	run grep -c -e 'leak-res' -e 'leak-gaia' -e 'in-addr.arpa' "$DNS_LOG"
	[ "$output" = "0" ]
}

@test "a bad address pointer (NULL plus an offset) to connect and every send: EFAULT as without the library, never a crash" {
	want='connect EFAULT
syscall EFAULT
sendto EFAULT
sendmsg EFAULT
sendmsg-name EFAULT
sendmmsg EFAULT'
	run "$BUILD/tests/netcheck" efault 8
	[ "$output" = "$want" ]
	for url in socks5h://127.0.0.1:1 socks5://127.0.0.1:1; do
		run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" SOCKSIFY_EXCLUDE=none \
			"$BUILD/tests/netcheck" efault 8
		echo "$url: status $status"
		echo "$output"
		[ "$status" -eq 0 ]
		[ "$output" = "$want" ]
	done
}

@test "non-blocking connect that the proxy refuses: EINPROGRESS, then SO_ERROR says ECONNREFUSED once" {
	start_socksifyd -v
	dead=$(free_port)
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c 'import errno,select,socket,sys
n = lambda e: errno.errorcode.get(e, str(e))
s = socket.socket(); s.setblocking(False)
r = s.connect_ex(("127.0.0.1", int(sys.argv[1])))
select.select([], [s], [], 10)
first = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
again = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print(n(r), n(first), again)' "$dead"
	[ "$output" = "EINPROGRESS ECONNREFUSED 0" ]
	# asyncio (the same path) raises ConnectionRefusedError
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c 'import asyncio,sys
async def main():
    try:
        await asyncio.open_connection("127.0.0.1", int(sys.argv[1]))
        print("connected")
    except ConnectionRefusedError:
        print("refused")
asyncio.run(main())' "$dead"
	[ "$output" = "refused" ]
}

@test "a second connect() after a failed non-blocking one reports the failure, without dialling again" {
	start_socksifyd -v
	dead=$(free_port)
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c 'import errno,select,socket,sys
s = socket.socket(); s.setblocking(False)
a = s.connect_ex(("127.0.0.1", int(sys.argv[1])))
select.select([], [s], [], 5)
b = s.connect_ex(("127.0.0.1", int(sys.argv[1])))
print(errno.errorcode[a], errno.errorcode[b])' "$dead"
	[ "$output" = "EINPROGRESS ECONNREFUSED" ]
	sleep 0.3
	run --separate-stderr grep -c "target=127.0.0.1:$dead" "$SOCKSIFYD_LOG"
	[ "$output" = "1" ]
}

@test "a socket numbered above 1024 is tunnelled (poll, never an FD_SET overflow)" {
	start_socksifyd -v
	run env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		python3 -c 'import hashlib,os,resource,socket,sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
t = socket.socket(); fd = os.dup2(t.fileno(), 1500); t.close()
s = socket.socket(fileno=fd)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /payload.bin HTTP/1.0\r\n\r\n")
d = b""
while True:
    b = s.recv(65536)
    if not b: break
    d += b
print(s.fileno(), hashlib.sha256(d.partition(b"\r\n\r\n")[2]).hexdigest())' "$HTTP_PORT"
	[ "$output" = "1500 $PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "socks5h: getnameinfo on a placeholder answers the name it stands for" {
	need_dns_jail
	start_socksifyd
	run preload "socks5h://127.0.0.1:$PROXY_PORT" python3 -c 'import socket
a = socket.getaddrinfo("reverse.socksify.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
print(a.startswith("198.1"), socket.getnameinfo((a, 80), socket.NI_NAMEREQD)[0])'
	[ "$output" = "True reverse.socksify.test" ]
}

@test "silent by default: a tunnelled fetch writes nothing of ours to stderr" {
	run --separate-stderr "$SOCKSIFY" curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	[ -z "$stderr" ]
}
