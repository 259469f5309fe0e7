#!/usr/bin/env bats
# A program's own DNS under socks5h is answered by the library (udp.c:
# CONTRACT.md "own DNS under socks5h"): dig, nslookup, host, node's c-ares
# and a program that builds its own packet, against the jail's only
# nameserver, a recording sink on 127.0.0.1:53 (start_dnssink) that must
# hear nothing. Needs scripts/test.sh's mount namespace.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

need_cmd() {
	command -v "$1" >/dev/null || skip "$1 is not installed (scripts/deps.sh test)"
}

# lib URL CMD...: CMD under the library, nothing excluded.
lib() {
	local url=$1
	shift
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$BATS_TEST_TMPDIR/lib.log" LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="$url" timeout -k 5 30 "$@"
}

@test "dig (UDP): A and AAAA get placeholders, PTR of one its name, MX REFUSED; nothing reaches the resolver" {
	need_cmd dig
	start_dnssink
	local url=socks5h://127.0.0.1:1 name=db.example.test
	run lib "$url" dig +time=3 +tries=1 +short "$name" A
	echo "$output"
	[ "$status" -eq 0 ]
	is_placeholder "$output"
	run lib "$url" dig +time=3 +tries=1 +short "$name" AAAA
	echo "$output"
	is_placeholder "$output"
	# dig's full answer: from the nameserver it asked, over UDP
	run lib "$url" dig +time=3 +tries=1 "$name"
	[[ "$output" == *"status: NOERROR"* ]]
	[[ "$output" == *"SERVER: 127.0.0.1#53(127.0.0.1) (UDP)"* ]]
	[[ "$output" != *"reply from unexpected source"* ]]
	# one process tree has one table: the reverse of an answer is the name
	run lib "$url" sh -c 'ip=$(dig +time=3 +tries=1 +short "$1"); dig +time=3 +tries=1 +short -x "$ip"' sh "$name"
	echo "$output"
	[ "$output" = "$name." ]
	run lib "$url" dig +time=3 +tries=1 "$name" MX
	[[ "$output" == *"status: REFUSED"* ]]
	sink_empty
}

@test "a descriptor limit of 256 (below the library's own numbers, 512 up): dig over UDP and +tcp still answered, nothing sent" {
	need_cmd dig
	start_dnssink
	local url=socks5h://127.0.0.1:1
	# F_DUPFD at 512 says EINVAL under such a limit: the library's own
	# descriptors must then take any number, not fail the call
	run lib "$url" sh -c 'ulimit -n 256 && dig +time=3 +tries=1 +short lim.example.test A'
	echo "$output"
	[ "$status" -eq 0 ]
	is_placeholder "$output"
	run lib "$url" sh -c 'ulimit -n 256 && dig +tcp +time=3 +tries=1 +short lim.example.test A'
	echo "$output"
	[ "$status" -eq 0 ]
	is_placeholder "$output"
	sink_empty
}

@test "DNS over TCP under a limit of 64 descriptors (our end at a low number): a file the program dup2()s onto that number is never closed by us" {
	start_dnssink
	run lib socks5h://127.0.0.1:1 sh -c 'ulimit -n 64 && exec python3 -c "$0" "$1"' '
import os, socket, struct, sys
def sockets():
    out = set()
    for f in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + f).startswith("socket:"):
                out.add(int(f))
        except OSError:
            pass
    return out
before = sockets()
s = socket.create_connection(("127.0.0.1", 53), timeout=10)
ours = sorted(sockets() - before - {s.fileno()})
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x01a\x07example\x04test\x00" + struct.pack(">HH", 1, 1)
s.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", s.recv(2))[0]
print("answer", len(s.recv(n)) == n)
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.dup2(log, ours[0])   # as `exec 5>log` does: a number free as far as it knows
os.close(log)
s.close()
print("write", os.write(ours[0], b"kept\n"))' "$BATS_TEST_TMPDIR/prog.log"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'answer True\nwrite 5' ]
	[ "$(cat "$BATS_TEST_TMPDIR/prog.log")" = kept ]
	sink_empty
}

@test "nslookup and host answer placeholders; nothing reaches the resolver" {
	need_cmd nslookup
	need_cmd host
	start_dnssink
	run lib socks5h://127.0.0.1:1 nslookup -timeout=3 -retry=1 web.example.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ Address:\ (198\.1[89]\.[0-9]+\.[0-9]+) ]]
	is_placeholder "${BASH_REMATCH[1]}"
	run lib socks5h://127.0.0.1:1 host -W 3 -t A web.example.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ has\ address\ (198\.1[89]\.[0-9]+\.[0-9]+) ]]
	is_placeholder "${BASH_REMATCH[1]}"
	sink_empty
}

@test "a program's own DNS packet (sendto, and connect+send): the answer comes from the nameserver it asked, and the name reaches the proxy" {
	start_dnssink
	start_socksifyd -v
	local how
	for how in sendto connected; do
		run lib "socks5h://127.0.0.1:$PROXY_PORT" python3 "$HELPERS/rawdns.py" \
			"$PROXY_ONLY_NAME" "$HTTP_PORT" /payload.bin ${how/sendto/}
		echo "$how: $output"
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" =~ ^answer\ ([0-9.]+)\ from\ 127\.0\.0\.1:53$ ]]
		is_placeholder "${BASH_REMATCH[1]}"
		[ "${lines[1]}" = "body $PAYLOAD_SHA" ]
	done
	wait_for_count "$SOCKSIFYD_LOG" 30 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok" 2
	sink_empty
}

@test "node: dns.resolve4 (c-ares, not getaddrinfo) then http.get to the answer, by name through the proxy" {
	need_cmd node
	skip_under_asan node
	start_dnssink
	start_socksifyd -v
	# shellcheck disable=SC2016
	run lib "socks5h://127.0.0.1:$PROXY_PORT" node -e '
		const dns = require("dns"), http = require("http"), crypto = require("crypto");
		dns.resolve4(process.argv[1], (err, addrs) => {
			if (err) { console.log("resolve4: " + err.code); process.exit(1); }
			console.log("answer " + addrs[0]);
			http.get({ host: addrs[0], port: process.argv[2], path: "/payload.bin",
				headers: { Host: process.argv[1] } }, (res) => {
				const h = crypto.createHash("sha256");
				res.on("data", (d) => h.update(d));
				res.on("end", () => console.log("body " + h.digest("hex")));
			}).on("error", (e) => { console.log("get: " + e.code); process.exit(1); });
		});' "$PROXY_ONLY_NAME" "$HTTP_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	is_placeholder "${lines[0]#answer }"
	[ "${lines[1]}" = "body $PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok"
	sink_empty
}

@test "dig +tcp: DNS over TCP to the nameserver is answered by the library too, never tunnelled nor sent" {
	need_cmd dig
	start_dnssink
	start_socksifyd -v
	local url="socks5h://127.0.0.1:$PROXY_PORT"
	run lib "$url" dig +tcp +time=3 +tries=1 tcp.example.test A
	echo "$output"
	[[ "$output" == *"status: NOERROR"* ]]
	[[ "$output" == *"SERVER: 127.0.0.1#53(127.0.0.1) (TCP)"* ]]
	[[ "$output" =~ tcp\.example\.test\.[[:space:]]+60[[:space:]]+IN[[:space:]]+A[[:space:]]+([0-9.]+) ]]
	is_placeholder "${BASH_REMATCH[1]}"
	# two queries on one connection (AAAA then PTR of it), as a resolver may
	run lib "$url" sh -c 'ip=$(dig +tcp +time=3 +tries=1 +short "$1" AAAA) &&
		dig +tcp +keepopen +time=3 +tries=1 +short -x "$ip" "$1" AAAA' sh tcp.example.test
	echo "$output"
	[ "${lines[0]}" = "tcp.example.test." ]
	is_placeholder "${lines[1]}"
	run lib "$url" dig +tcp +time=3 +tries=1 tcp.example.test MX
	[[ "$output" == *"status: REFUSED"* ]]
	# nothing reached the proxy: not a connection to port 53, not a name
	sleep 0.2
	! grep -q "target=" "$SOCKSIFYD_LOG" || false
	sink_empty
}

@test "DNS over TCP: 1,000 queries pipelined in one write (past the 4 KiB the library reads at once and the answers the pair holds), then shutdown(SHUT_WR): 1,000 answers in order, then EOF" {
	start_dnssink
	run lib socks5h://127.0.0.1:1 python3 -c '
import socket, struct
def query(i):
    name = b"".join(bytes([len(l)]) + l for l in (b"q%d" % i, b"example", b"test")) + b"\0"
    return struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
s = socket.create_connection(("127.0.0.1", 53), timeout=10)
s.sendall(b"".join(struct.pack(">H", len(q)) + q for q in map(query, range(1000))))
s.shutdown(socket.SHUT_WR)
buf, ids = b"", []
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
while len(buf) >= 2:
    n = struct.unpack(">H", buf[:2])[0]
    msg, buf = buf[2:2 + n], buf[2 + n:]
    ids.append(struct.unpack(">H", msg[:2])[0])
print(len(ids), ids == list(range(1000)))'
	echo "$output"
	[ "$output" = "1000 True" ]
	sink_empty
}

@test "SOCKSIFY_DNS: dig MX (UDP and +tcp) gets the resolver's real answer, asked over TCP through the proxy; A stays a placeholder" {
	need_cmd dig
	start_dnssink
	start_socksifyd -v
	local pf=$BATS_TEST_TMPDIR/mx.port mxlog=$BATS_TEST_TMPDIR/mx.log t
	: >"$mxlog"
	python3 "$HELPERS/dnsmx.py" "$pf" "$mxlog" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	local mx=127.0.0.1:$(cat "$pf")
	for t in +notcp +tcp; do
		run env SOCKSIFY_DNS="$mx" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" timeout -k 5 30 \
			dig "$t" +time=5 +tries=1 +short mail.example.test MX
		echo "$t: $output"
		[ "$output" = "10 mx.mail.example.test." ]
	done
	run env SOCKSIFY_DNS="$mx" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" dig +time=3 +tries=1 +short mail.example.test A
	is_placeholder "$output"
	# the resolver was asked twice, by the proxy, as a CONNECT of the proxy
	[ "$(grep -c '^15 mail\.example\.test from 127\.0\.0\.1$' "$mxlog")" -eq 2 ]
	[ "$(grep -c '^1 ' "$mxlog")" -eq 0 ]
	wait_for_count "$SOCKSIFYD_LOG" 30 "cmd=connect	target=$mx	.*outcome=ok" 2
	sink_empty
}

@test "SOCKSIFY_DNS that is no IP[:PORT]: one line, and what placeholders cannot answer stays REFUSED" {
	need_cmd dig
	start_dnssink
	run env SOCKSIFY_DNS=resolver.example SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY=socks5h://127.0.0.1:1 dig +time=3 +tries=1 mail.example.test MX
	echo "$output"
	[[ "$output" == *'SOCKSIFY_DNS: "resolver.example" is not IP[:PORT]'*'; ignored'* ]]
	[[ "$output" == *"status: REFUSED"* ]]
	sink_empty
}

@test "aria2c by name with its own resolver (c-ares, --async-dns=true): the name reaches the proxy, the file intact, the sink hears nothing" {
	need_cmd aria2c
	start_dnssink
	start_socksifyd -v
	run lib "socks5h://127.0.0.1:$PROXY_PORT" aria2c --no-conf --quiet=true --async-dns=true \
		--dir "$BATS_TEST_TMPDIR" --out got.bin "http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sha <"$BATS_TEST_TMPDIR/got.bin")" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$PROXY_ONLY_NAME:$HTTP_PORT	.*outcome=ok"
	sink_empty
}

@test "DNS over TCP sent with the connect (MSG_FASTOPEN, by sendto and by sendmsg) is answered too" {
	start_dnssink
	local how
	for how in sendto sendmsg; do
		run lib socks5h://127.0.0.1:1 python3 "$HELPERS/rawdns.py" tfo.example.test tfo "$how"
		echo "$how: $output"
		[ "$status" -eq 0 ]
		[[ "$output" =~ ^answer\ ([0-9.]+)\ from\ 127\.0\.0\.1:53$ ]]
		is_placeholder "${BASH_REMATCH[1]}"
	done
	sink_empty
}
