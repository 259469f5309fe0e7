# Shared setup for the end-to-end suites. Every process a test starts is
# recorded in PIDS and stopped by its PID in teardown; everything listens on
# loopback, on ephemeral ports.

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SOCKSIFY=$BUILD/socksify
SOCKSIFYD=$BUILD/socksifyd
LIB=$BUILD/libsocksify.so
HELPERS=$ROOT/tests/helpers
PIDS=()

# Waits up to $2 tenths of a second for file $1 to hold a line matching $3.
wait_for_line() {
	local i
	for ((i = 0; i < $2; i++)); do
		grep -qE "$3" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for /$3/ in $1:" >&2
	cat "$1" >&2 2>/dev/null
	return 1
}

# A 1 MiB file of random bytes and its checksum, once per test file.
make_payload() {
	WWW=$BATS_FILE_TMPDIR/www
	mkdir -p "$WWW"
	if [ ! -f "$WWW/payload.bin" ]; then
		head -c 1048576 /dev/urandom >"$WWW/payload.bin"
		echo 'hello through socks' >"$WWW/hello.txt"
	fi
	PAYLOAD_SHA=$(sha256sum <"$WWW/payload.bin" | cut -d' ' -f1)
}

# start_http HOST [SERVER]: serves $WWW on HOST (127.0.0.1 or ::1) with
# tests/helpers/SERVER (default httpd.py; evhttpd.py: a larger backlog);
# sets HTTP_PORT.
start_http() {
	local pf=$BATS_TEST_TMPDIR/http.$1.port
	rm -f "$pf"
	python3 "$HELPERS/${2:-httpd.py}" "$WWW" "$1" "$pf" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	HTTP_PORT=$(cat "$pf")
}

# Names only the test proxy can resolve (see start_socksifyd); the second
# has two addresses, ::1 (which glibc sorts first) and 127.0.0.1.
PROXY_ONLY_NAME=only-proxy.socksify.test
PROXY_MULTI_NAME=two-addresses.socksify.test

# start_socksifyd [ARGS...]: listens on 127.0.0.1:0 unless ARGS give -l;
# sets PROXY_PORT (first listener), SOCKSIFYD_PID and SOCKSIFYD_LOG.
# Where mount namespaces work (scripts/test.sh checks), the server gets a
# private /etc/hosts that adds PROXY_ONLY_NAME, so a test can prove a name
# was resolved by the proxy and not by the program's host.
start_socksifyd() {
	SOCKSIFYD_LOG=$BATS_TEST_TMPDIR/socksifyd.log
	# Emptied here, not by the background redirect below: that one runs
	# later, and a second server in one test would otherwise be taken as
	# ready on the first one's line (and port).
	: >"$SOCKSIFYD_LOG"
	local listen=(-l 127.0.0.1:0) wrap=() extra=()
	case " $* " in *" -l "*|*" --listen "*) listen=() ;; esac
	# SOCKSIFYD_WRAP: a command the server runs under (the valgrind run
	# of scripts/test.sh), split on spaces.
	[ -z "${SOCKSIFYD_WRAP:-}" ] || read -ra wrap <<<"$SOCKSIFYD_WRAP"
	# SOCKSIFYD_ARGS: flags every server of a run gets (--relay splice).
	[ -z "${SOCKSIFYD_ARGS:-}" ] || read -ra extra <<<"$SOCKSIFYD_ARGS"
	if [ "${SOCKSIFY_TEST_NS:-0}" = 1 ]; then
		{ echo "127.0.0.1 $PROXY_ONLY_NAME"; echo "::1 $PROXY_MULTI_NAME";
		  echo "127.0.0.1 $PROXY_MULTI_NAME"; cat /etc/hosts 2>/dev/null; } >"$BATS_TEST_TMPDIR/proxy-hosts"
		# SOCKSIFYD_RESOLV: a resolv.conf for the server alone (a test
		# that needs lookups to be slow rather than fail fast).
		unshare --mount sh -c 'mount --bind "$0" /etc/hosts &&
			{ [ -z "$SOCKSIFYD_RESOLV" ] || mount --bind "$SOCKSIFYD_RESOLV" /etc/resolv.conf; } &&
			exec "$@"' \
			"$BATS_TEST_TMPDIR/proxy-hosts" "${wrap[@]}" "$SOCKSIFYD" "${listen[@]}" "${extra[@]}" "$@" 3>&- 2>"$SOCKSIFYD_LOG" &
	else
		"${wrap[@]}" "$SOCKSIFYD" "${listen[@]}" "${extra[@]}" "$@" 3>&- 2>"$SOCKSIFYD_LOG" &
	fi
	SOCKSIFYD_PID=$!
	PIDS+=($SOCKSIFYD_PID)
	wait_for_line "$SOCKSIFYD_LOG" "${SOCKSIFYD_READY_TRIES:-50}" '^socksifyd: listening on '
	PROXY_PORT=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$SOCKSIFYD_LOG" | head -n 1)
}

# start_testbin LOG READY NAME ARGS...: tests/bin/NAME.c with ARGS in the
# background, its stderr in LOG, until LOG has a line matching READY, an ERE
# for the whole line whose group is the port it listens on; sets LISTEN_PORT.
start_testbin() {
	local log=$1 ready=$2 name=$3
	shift 3
	: >"$log"
	"$BUILD/tests/$name" "$@" 3>&- 2>"$log" &
	PIDS+=($!)
	wait_for_line "$log" 50 "$ready"
	LISTEN_PORT=$(sed -En "s/$ready/\\1/p" "$log")
}

# The ready line of faultd and delayfwd.
listening_on() { echo "^$1: listening on .*:([0-9]+)\$"; }

# start_faultd ARGS...: tests/bin/faultd.c, the SOCKS5 server that fails on
# purpose; sets FAULT_PORT and FAULT_LOG.
start_faultd() {
	FAULT_LOG=$BATS_TEST_TMPDIR/faultd.log
	start_testbin "$FAULT_LOG" "$(listening_on faultd)" faultd "$@"
	FAULT_PORT=$LISTEN_PORT
}

# start_delayfwd HOST:PORT MS [ARGS...]: tests/bin/delayfwd.c in front of
# HOST:PORT (a literal, [::1]:PORT for IPv6), every byte and FIN each way
# MS ms late; sets DELAY_PORT and DELAY_LOG. ARGS go to delayfwd (-v, -l ::1).
start_delayfwd() {
	local target=$1 ms=$2
	shift 2
	DELAY_LOG=$BATS_TEST_TMPDIR/delayfwd.log
	start_testbin "$DELAY_LOG" "$(listening_on delayfwd)" delayfwd -t "$target" -d "$ms" "$@"
	DELAY_PORT=$LISTEN_PORT
}

# start_stress_echod: tests/bin/stress.c's echo target on 127.0.0.1 and
# 127.0.0.2, one port; sets ECHO_PORT.
start_stress_echod() {
	start_testbin "$BATS_TEST_TMPDIR/echo.log" '^stress: echo on ([0-9]+)$' stress echod
	ECHO_PORT=$LISTEN_PORT
}

# A loopback port nothing listens on (bound, then released).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Every fault at every step (preload_faults.bats; preload_async.bats, which
# must see the same through its event loop): STEP FAULT ERRNO [HEX], what a
# connect() sees when faultd answers STEP so (HEX: the exact wrong bytes of
# --garbage); "ok" for a handshake that only takes long. A stall ends at the
# deadline of SOCKSIFY_TIMEOUT with ETIMEDOUT; everything else fails on the
# bytes.
# A proxy that hangs up or resets refused us (CONTRACT.md: ECONNREFUSED),
# as does one that speaks something else; 0xFF and a demand for
# username/password we have none for are EACCES, as in s5_client_errno().
FAULT_MATRIX=(
	"greeting stall ETIMEDOUT"
	"greeting reset ECONNREFUSED"
	"greeting close ECONNREFUSED"
	"greeting garbage ECONNREFUSED"
	"greeting garbage ECONNREFUSED 0400"
	"greeting garbage ECONNREFUSED 0503"
	"greeting garbage EACCES 05ff"
	"greeting garbage EACCES 0502"
	"greeting truncate ECONNREFUSED"
	"greeting truncate-stall ETIMEDOUT"
	"greeting slow ok"
	"auth stall ETIMEDOUT"
	"auth reset ECONNREFUSED"
	"auth close ECONNREFUSED"
	"auth garbage ECONNREFUSED"
	"auth garbage ECONNREFUSED 0200"
	"auth truncate ECONNREFUSED"
	"auth truncate-stall ETIMEDOUT"
	"auth slow ok"
	"request stall ETIMEDOUT"
	"request reset ECONNREFUSED"
	"request close ECONNREFUSED"
	"request garbage ECONNREFUSED"
	"request garbage ECONNREFUSED 04000001000000000000"
	"request garbage ECONNREFUSED 05000005000000000000"
	"request garbage ECONNREFUSED 05040005000000000000"
	"request garbage ECONNREFUSED 050000030000"
	"request garbage ECONNREFUSED 05000003026100000000"
	"request truncate ECONNREFUSED"
	"request truncate-stall ETIMEDOUT"
	"request slow ok"
)

# Tests that make a resolver look up a name absent from /etc/hosts need the
# runner's namespace, where /etc/resolv.conf points at loopback: otherwise
# the lookup would send a DNS query off this host. That namespace also has
# an /etc/hosts to bind a test's own over, even where the machine has none.
need_dns_jail() {
	[ "${SOCKSIFY_TEST_NS:-0}" = 1 ] || skip "needs scripts/test.sh's mount namespace (resolver on loopback)"
}

stop_all() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		timeout "${SOCKSIFYD_STOP_WAIT:-5}" tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
	done
	PIDS=()
}

# preload URL CMD...: run CMD with the library and SOCKSIFY_PROXY=URL.
preload() {
	local url=$1
	shift
	env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" "$@"
}

# Bytes as SOCKS5 tests write them: a string and a port, in hex.
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
port_hex() { printf '%04x' "$1"; }

# sha256 of stdin, hex only.
sha() { sha256sum | cut -d' ' -f1; }
