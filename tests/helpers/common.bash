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

# wait_for_count FILE TRIES ERE N: waits up to TRIES tenths of a second for
# FILE to hold N lines matching ERE; fails when there are fewer, or more.
wait_for_count() {
	local i n
	for ((i = 0; i < $2; i++)); do
		n=$(grep -cE "$3" "$1" 2>/dev/null || true)
		[ "${n:-0}" -ge "$4" ] && break
		sleep 0.1
	done
	echo "/$3/ in $1: $n lines, want $4"
	[ "${n:-0}" -eq "$4" ]
}

# start_py_port SCRIPT ARGS...: python3 tests/helpers/SCRIPT PORTFILE ARGS
# in the background, stopped in teardown; sets HELPER_PORT to the port it
# writes to PORTFILE once it listens.
start_py_port() {
	local pf=$BATS_TEST_TMPDIR/helper.$RANDOM.port script=$1
	shift
	python3 "$HELPERS/$script" "$pf" "$@" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	HELPER_PORT=$(cat "$pf")
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
PROXY_V6_NAME=v6-only.socksify.test

# proxy_hosts: writes $BATS_TEST_TMPDIR/proxy-hosts, /etc/hosts plus the
# names only a test's proxy may resolve, and sets HOSTS_WRAP to the words
# that run a command with it as its /etc/hosts (a mount namespace of its
# own); HOSTS_WRAP is empty outside the test namespace (scripts/test.sh).
proxy_hosts() {
	HOSTS_WRAP=()
	[ "${SOCKSIFY_TEST_NS:-0}" = 1 ] || return 0
	{ echo "127.0.0.1 $PROXY_ONLY_NAME"; echo "::1 $PROXY_MULTI_NAME";
	  echo "127.0.0.1 $PROXY_MULTI_NAME"; echo "::1 $PROXY_V6_NAME";
	  cat /etc/hosts 2>/dev/null; } >"$BATS_TEST_TMPDIR/proxy-hosts"
	HOSTS_WRAP=(unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"'
		"$BATS_TEST_TMPDIR/proxy-hosts")
}

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
		proxy_hosts
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
	# SOCKSIFYD_READY: another ERE for the line that ends the wait.
	wait_for_line "$SOCKSIFYD_LOG" "${SOCKSIFYD_READY_TRIES:-50}" "${SOCKSIFYD_READY:-^socksifyd: listening on }"
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

# A port nothing is bound to on any address of either family at the time
# of asking (a dual-stack wildcard bind; 127.0.0.1 only where IPv6 is off),
# below the ephemeral range. A port in that range, the kind bind(0) hands
# out, is now and then taken by one of the thousands of outgoing
# connections the parallel suites make between the question and the
# caller's bind; a wildcard bind then says EADDRINUSE (CI saw it once, in
# server_args.bats). A marker file in $PORTS_DIR keeps two callers from
# being handed one port; a marker older than an hour is reused.
PORTS_DIR=${TMPDIR:-/tmp}/socksify-test-ports.$(id -u)
free_port() {
	mkdir -p "$PORTS_DIR" && python3 "$HELPERS/free_port.py" "$PORTS_DIR"
}

# Waits up to $2 tenths of a second for 127.0.0.1:$1 to accept.
wait_for_port() {
	local i
	for ((i = 0; i < $2; i++)); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
			"$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
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

# An address the supervisor or the library hands out for a name:
# 198.18.0.0/15 or 100::/64, with or without a :PORT (IPv6 in brackets).
is_placeholder() {
	[[ "$1" =~ ^(198\.1[89]\.[0-9]+\.[0-9]+|\[?100::([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,3})?\]?)(:[0-9]+)?$ ]] ||
		{ echo "not a placeholder address: '$1'"; return 1; }
}

# Tests that make a resolver look up a name absent from /etc/hosts need the
# runner's namespace, where /etc/resolv.conf points at loopback: otherwise
# the lookup would send a DNS query off this host. That namespace also has
# an /etc/hosts to bind a test's own over, even where the machine has none.
need_dns_jail() {
	[ "${SOCKSIFY_TEST_NS:-0}" = 1 ] || skip "needs scripts/test.sh's mount namespace (resolver on loopback)"
}

# start_microsocks [ADDR]: Debian's microsocks on ADDR, 127.0.0.1 by
# default (it refuses UDP ASSOCIATE and BIND); sets PROXY_PORT.
start_microsocks() {
	command -v microsocks >/dev/null || skip "microsocks is not installed (scripts/deps.sh test)"
	PROXY_PORT=$(free_port)
	microsocks -i "${1:-127.0.0.1}" -p "$PROXY_PORT" 3>&- >"$BATS_TEST_TMPDIR/microsocks.log" 2>&1 &
	PIDS+=($!)
	wait_listen "$PROXY_PORT" 50
}

# A recording DNS server on 127.0.0.1:53, the jail's only nameserver: a query
# that reaches it is one that would have left the host. Sets DNS_LOG.
# NAME=IPV4 arguments: names it answers (dnssink.py).
start_dnssink() {
	need_dns_jail
	DNS_LOG=$BATS_TEST_TMPDIR/dns.log
	: >"$DNS_LOG"
	python3 "$HELPERS/dnssink.py" "$BATS_TEST_TMPDIR/dns.ready" "$DNS_LOG" "$@" 3>&- 2>/dev/null &
	PIDS+=($!)
	wait_for_line "$BATS_TEST_TMPDIR/dns.ready" 30 '^ready$' 2>/dev/null ||
		skip "cannot bind 127.0.0.1:53 for a DNS sink"
}

# The sink got no query (given a moment to write one down).
sink_empty() {
	sleep 0.2
	echo "DNS queries that left: $(tr '\n' ' ' <"$DNS_LOG")"
	[ ! -s "$DNS_LOG" ]
}

# Bytes of the right answer at each step, sent at one per 100 ms by faultd --slow.
declare -gA ANSWER_BYTES=([greeting]=2 [auth]=2 [request]=10)

# fault_start STEP FAULT [HEX]: faultd failing so at STEP; sets FAULT_URL
# (with credentials for the auth step) and FAULT_TIMEOUT_S: stalls end at a
# one-second deadline, the rest fail (or succeed) on the bytes, so a loaded
# machine must not turn them into ETIMEDOUT: five seconds, which ten bytes
# at 100 ms each fit in too.
fault_start() {
	local args=(--"$2" "$1")
	[ -n "${3:-}" ] && args+=(--bytes "$3")
	start_faultd "${args[@]}"
	FAULT_URL="socks5://127.0.0.1:$FAULT_PORT"
	[ "$1" = auth ] && FAULT_URL="socks5://u:p@127.0.0.1:$FAULT_PORT"
	FAULT_TIMEOUT_S=5
	case $2 in stall | truncate-stall) FAULT_TIMEOUT_S=1 ;; esac
}

# fault_probes_check STEP FAULT HEX WANT PORT: what the two probes of a faultd
# case wrote to $BATS_TEST_TMPDIR/probe.{blocking,nonblock} ("ERRNO MS", one
# line): WANT, within the bound of its kind; and faultd saw the request to
# 127.0.0.1:PORT exactly when the fault comes at it or later.
fault_probes_check() {
	local step=$1 fault=$2 hex=$3 want=$4 port=$5 mode got ms
	for mode in blocking nonblock; do
		read -r got ms <"$BATS_TEST_TMPDIR/probe.$mode" || true
		printf '%-9s %-15s %-21s %-9s %-13s %5s ms\n' "$step" "$fault" "${hex:--}" \
			"$mode" "$got" "$ms"
		[ "$got" = "$want" ] || { echo "  want $want"
			cat "$BATS_TEST_TMPDIR/probe.$mode.err" 2>/dev/null; return 1; }
		[ "$(wc -l <"$BATS_TEST_TMPDIR/probe.$mode")" -eq 1 ]
		case $want in
		ETIMEDOUT) [ "$ms" -ge 990 ] && [ "$ms" -le 3000 ] ;;
		ok) [ "$ms" -ge $((ANSWER_BYTES[$step] * 100)) ] ;;
		*) [ "$ms" -lt 4990 ] ;;
		esac || { echo "  $ms ms is out of bounds"; return 1; }
	done
	if [ "$step" = request ] || [ "$want" = ok ]; then
		[ "$(grep -c "request cmd=1 atyp=1 dst=127\.0\.0\.1:$port\$" "$FAULT_LOG")" -eq 2 ]
	else
		[ "$(grep -c 'request' "$FAULT_LOG")" -eq 0 ]
	fi
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

# marked_pids MARK [PID...]: every process whose environment holds
# TEST_MARK=MARK, but the PIDs named. A test starts what it watches with
# its own mark: the other bats run side by side starts the same programs
# from the same paths, so a name (pgrep -f) is no test of what is left.
marked_pids() {
	local mark=$1 p q
	shift
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
		{ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "TEST_MARK=$mark" && echo "$p"
	done
	return 0
}

# project_make ARGS...: make -s -C $ROOT ARGS, quiet, with the build under
# test (SAN=1 for the ASan one, so that make never rebuilds it with other
# flags). The outer make's flags and jobserver are not ours.
project_make() {
	local san=()
	nm -D "$LIB" 2>/dev/null | grep -q ' __asan_init' && san=(SAN=1)
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$ROOT" "$@" \
		BUILD="$BUILD" "${san[@]}" >/dev/null
}

# skip_under_asan PROGRAM: skip when $LIB is the ASan build (SAN=1).
# ASan's runtime cannot start inside node or chromium: an empty ASan library
# preloaded into node crashes the same way, at address 0, before any of ours runs.
skip_under_asan() {
	! nm -D "$LIB" 2>/dev/null | grep -q ' __asan_init' ||
		skip "$1 does not run with an ASan library preloaded"
}

# wait_listen PORT TRIES: waits up to TRIES tenths of a second for a TCP
# listener on PORT (seen with ss, so no connection is made to it).
wait_listen() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -n "$(ss -Hltn "( sport = :$1 )")" ] && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# start_sshd [forwarding]: a private sshd on 127.0.0.1 (host key, user key,
# config and known_hosts of this test; no system file is read or changed);
# sets SSH_DIR and SSH_PORT. "forwarding" lets its clients forward ports
# (ssh -D). Debian's sshd insists on /run/sshd: where there is none, it
# gets a private /run in a mount namespace of its own.
start_sshd() {
	local sshd=/usr/sbin/sshd wrap=()
	if [ ! -x "$sshd" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
		skip "openssh-server and openssh-client are needed (scripts/deps.sh test)"
	fi
	# A forwarding sshd resolves names for its clients: PROXY_ONLY_NAME too.
	proxy_hosts
	[ "${1:-}" = forwarding ] && wrap=("${HOSTS_WRAP[@]}")
	if [ ! -d /run/sshd ]; then
		[ "$(id -u)" = 0 ] || skip "sshd needs /run/sshd, which only root can provide"
		wrap+=(unshare --mount --propagation private sh -c \
			'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec "$@"' sshd)
	fi
	SSH_DIR=$BATS_TEST_TMPDIR/ssh
	mkdir -p "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -C evloop-host -f "$SSH_DIR/host_key"
	ssh-keygen -q -t ed25519 -N '' -C evloop-user -f "$SSH_DIR/user_key"
	cp "$SSH_DIR/user_key.pub" "$SSH_DIR/authorized_keys"
	SSH_PORT=$(free_port)
	echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts"
	cat >"$SSH_DIR/sshd_config" <<-EOF
	ListenAddress 127.0.0.1:$SSH_PORT
	HostKey $SSH_DIR/host_key
	PidFile none
	AuthorizedKeysFile $SSH_DIR/authorized_keys
	StrictModes no
	PermitRootLogin prohibit-password
	PubkeyAuthentication yes
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	AllowTcpForwarding $([ "${1:-}" = forwarding ] && echo yes || echo no)
	X11Forwarding no
	LogLevel $([ "${1:-}" = forwarding ] && echo DEBUG1 || echo VERBOSE)
	EOF
	"${wrap[@]}" "$sshd" -D -e -f "$SSH_DIR/sshd_config" 3>&- 2>"$SSH_DIR/sshd.log" &
	PIDS+=($!)
	wait_listen "$SSH_PORT" 50 || { cat "$SSH_DIR/sshd.log"; false; }
}

# start_danted: danted in the foreground, listening and connecting on
# loopback only, no authentication (SOCKS4, 4a and 5); sets PROXY_PORT, its
# log is $BATS_TEST_TMPDIR/danted.log.
start_danted() {
	local conf=$BATS_TEST_TMPDIR/danted.conf
	local danted
	danted=$(command -v danted || echo /usr/sbin/danted)
	[ -x "$danted" ] || skip "danted is not installed (scripts/deps.sh test)"
	[ "$(id -u)" = 0 ] || skip "danted's loopback config here runs as root"
	PROXY_PORT=$(free_port)
	cat >"$conf" <<-EOF
	logoutput: $BATS_TEST_TMPDIR/danted.log
	internal: 127.0.0.1 port = $PROXY_PORT
	external: 127.0.0.1
	clientmethod: none
	socksmethod: none
	user.privileged: root
	user.unprivileged: nobody
	client pass {
		from: 127.0.0.0/8 to: 127.0.0.0/8
	}
	socks pass {
		from: 127.0.0.0/8 to: 127.0.0.0/8
		command: connect
		log: connect error
	}
	EOF
	"$danted" -f "$conf" -p "$BATS_TEST_TMPDIR/danted.pid" -N 1 3>&- >"$BATS_TEST_TMPDIR/danted.out" 2>&1 &
	PIDS+=($!)
	wait_for_port "$PROXY_PORT" 50
}

# start_tinyproxy [USER PASS]: tinyproxy in the foreground on 127.0.0.1,
# with Basic credentials when given, and the line TP_EXTRA when set; sets
# TP_PORT and TP_LOG.
start_tinyproxy() {
	local conf=$BATS_TEST_TMPDIR/tinyproxy.conf
	command -v tinyproxy >/dev/null || skip "tinyproxy is not installed (scripts/deps.sh test)"
	TP_PORT=$(free_port)
	TP_LOG=$BATS_TEST_TMPDIR/tinyproxy.log
	{
		echo "Port $TP_PORT"
		echo "Listen 127.0.0.1"
		echo "Timeout 60"
		echo "LogFile \"$TP_LOG\""
		echo "LogLevel Connect"
		echo "MaxClients 32"
		echo "Allow 127.0.0.1"
		[ $# -eq 0 ] || echo "BasicAuth $1 $2"
		[ -z "${TP_EXTRA:-}" ] || echo "$TP_EXTRA"
	} >"$conf"
	# Names only a test's proxy may resolve resolve for it.
	proxy_hosts
	"${HOSTS_WRAP[@]}" tinyproxy -d -c "$conf" 3>&- >"$BATS_TEST_TMPDIR/tinyproxy.out" 2>&1 &
	PIDS+=($!)
	wait_listen "$TP_PORT" 50
}

# start_ssh_socks [ADDR]: ssh -D on ADDR, 127.0.0.1 by default, through a
# private sshd (SOCKS4, 4a and 5 in one listener); sets SOCKS_PORT, and
# SSH_D_LOG (ssh -vv: a line a forwarded connection, "dynamic request:
# socks4 host HOST port PORT"). SSHD_MODE=plain: a server that forwards
# nothing (ssh -D listens all the same, and hangs up on every request).
start_ssh_socks() {
	start_sshd "${SSHD_MODE:-forwarding}"
	SOCKS_PORT=$(free_port)
	SSH_D_LOG=$BATS_TEST_TMPDIR/ssh-d.log
	ssh -F /dev/null -N -vv -D "${1:-127.0.0.1}:$SOCKS_PORT" \
		-o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$SSH_DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o ExitOnForwardFailure=yes \
		-i "$SSH_DIR/user_key" -p "$SSH_PORT" "$(id -un)@127.0.0.1" 3>&- 2>"$SSH_D_LOG" &
	PIDS+=($!)
	wait_listen "$SOCKS_PORT" 100 || { cat "$SSH_D_LOG"; false; }
}

# start_fake KIND: a TCP server on 127.0.0.1 that is no working SOCKS5
# proxy; sets FAKE_PORT. KIND: http (answers as an HTTP server), mute
# (accepts and never answers).
start_fake() {
	local pf=$BATS_TEST_TMPDIR/fake.$1.port
	python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(64)
open(sys.argv[1]+".tmp","w").write("%d\n" % s.getsockname()[1])
import os; os.rename(sys.argv[1]+".tmp", sys.argv[1])
held=[]
for _ in range(200):
    c,_=s.accept()
    if sys.argv[2] == "http":
        c.recv(16); c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"); c.close()
    else:
        held.append(c)
time.sleep(30)' "$pf" "$1" 3>&- &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	FAKE_PORT=$(cat "$pf")
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
