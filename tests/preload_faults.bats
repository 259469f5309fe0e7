#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# libsocksify.so against a proxy that fails at every step of the handshake
# (tests/bin/faultd.c), and under load (tests/bin/stress.c): 64 threads at
# once, blocking and non-blocking, direct and tunnelled side by side, fork()
# while handshakes are in flight, and a signal every millisecond.

load helpers/common

teardown() { stop_all; }

STRESS=$BUILD/tests/stress

# Stops the faultd start_faultd started last, and forgets its PID.
stop_faultd() {
	local pid=${PIDS[-1]}
	kill "$pid"
	wait "$pid" || true
	unset 'PIDS[-1]'
}

# field NAME: the value of NAME=... in the summary line $output.
field() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$output"; }

# c2t bytes socksifyd logged for the sessions that matched $1.
proxy_bytes() {
	grep -E "$1" "$SOCKSIFYD_LOG" | sed -n 's/.*\tc2t=\([0-9]*\)\t.*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }'
}

# --- Every fault at every step ------------------------------------------------

# probe MODE URL TIMEOUT_S: one connect through URL to the echo target, MODE
# "blocking" or "nonblock"; the result line goes to $BATS_TEST_TMPDIR/probe.MODE.
probe() {
	local flag=()
	[ "$1" = nonblock ] && flag=(-n)
	env SOCKSIFY_TIMEOUT="$3" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$2" \
		timeout 15 "$STRESS" probe "${flag[@]}" 127.0.0.1 "$ECHO_PORT" \
		>"$BATS_TEST_TMPDIR/probe.$1" 2>"$BATS_TEST_TMPDIR/probe.$1.err"
}

# run_case STEP FAULT WANT [HEX]: one case, a blocking and a non-blocking
# probe side by side; each must exit 0 and print WANT within the bound of
# its kind.
run_case() {
	local step=$1 fault=$2 want=$3 hex=${4:-} mode pid pids=()
	fault_start "$step" "$fault" "$hex"
	for mode in blocking nonblock; do
		probe "$mode" "$FAULT_URL" "$FAULT_TIMEOUT_S" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || { echo "$step $fault $hex: a probe exited $?"; return 1; }
	done
	fault_probes_check "$step" "$fault" "$hex" "$want" "$ECHO_PORT" || return 1
	stop_faultd
}

@test "faults at greeting, auth and request: the exact errno, blocking and non-blocking, in bounded time" {
	local c
	start_stress_echod
	for c in "${FAULT_MATRIX[@]}"; do
		run_case $c
	done
}

@test "faults: wrong credentials (status 0x01) and no acceptable method (0xFF) are EACCES" {
	start_stress_echod
	start_faultd --user u:secret
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://u:wrong@127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe 127.0.0.1 "$ECHO_PORT"
	[ "${output% *}" = EACCES ]
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://u:secret@127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe 127.0.0.1 "$ECHO_PORT"
	[ "${output% *}" = ok ]
	# Credentials faultd asks for and the URL lacks: the server says 0xFF.
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe -n 127.0.0.1 "$ECHO_PORT"
	[ "${output% *}" = EACCES ]
}

# A program that writes as soon as its non-blocking socket polls writable,
# never asking SO_ERROR: a direct connect that was refused says POLLERR and
# the first send() fails with ECONNREFUSED; the tunnelled one must fail there
# too (the pending ECONNRESET of the disconnected socket), not kill the
# program with SIGPIPE. Beyond PRELOAD_PEER_FDS, where the library keeps no
# errno to hand out, SO_ERROR must still say the connect failed, never 0.
@test "faults: a failed non-blocking connect fails like a direct one: POLLERR, send() errno, no SIGPIPE, SO_ERROR never 0" {
	local closed peer_fds
	start_stress_echod
	start_faultd --reply 0x05
	closed=$(free_port)
	run --separate-stderr timeout 15 "$STRESS" probe -n -w 127.0.0.1 "$closed"
	echo "direct: $output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^ECONNREFUSED\ [0-9]+\ pollerr=1$ ]]
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe -n -w 127.0.0.1 "$ECHO_PORT"
	echo "tunnelled: $output (status $status)"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^ECONNRESET\ [0-9]+\ pollerr=1$ ]]
	peer_fds=$(sed -n 's/^#define PRELOAD_PEER_FDS[[:space:]]*\([0-9]*\).*/\1/p' "$ROOT/shared/defaults.h")
	ulimit -n $((peer_fds + 128)) 2>/dev/null || skip "RLIMIT_NOFILE cannot reach $((peer_fds + 128))"
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe -n -d $((peer_fds - 100)) 127.0.0.1 "$ECHO_PORT"
	echo "fd $((peer_fds - 100)): $output"
	[ "${output%% *}" = ECONNREFUSED ]
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
		timeout 15 "$STRESS" probe -n -d $((peer_fds + 100)) 127.0.0.1 "$ECHO_PORT"
	echo "fd $((peer_fds + 100)): $output"
	[ "${output%% *}" = ECONNRESET ]
}

# --- Load ---------------------------------------------------------------------

# stress_run URL EXCLUDE ARGS...: `stress run ARGS` inside the library, proxy
# URL, SOCKSIFY_EXCLUDE=EXCLUDE; its summary line in $output, exit 0.
stress_run() {
	local url=$1 exclude=$2
	shift 2
	run env SOCKSIFY_EXCLUDE="$exclude" LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" \
		timeout 120 "$STRESS" run "$@"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field failed)" -eq 0 ]
}

# Sessions socksifyd logged as ok for target $1 (a regex): exactly $2.
proxied_ok() {
	wait_for_count "$SOCKSIFYD_LOG" 100 "target=$1	.*outcome=ok" "$2"
}

@test "stress: 64 threads x 20 connections through socksifyd, every byte checked, every session logged" {
	start_stress_echod
	start_socksifyd -v
	stress_run "socks5://127.0.0.1:$PROXY_PORT" none -t 64 -c 20 -b 32768 127.0.0.1 "$ECHO_PORT"
	[ "$(field ok)" -eq 1280 ]
	[ "$(field bytes)" -eq $((1280 * 32768)) ]
	proxied_ok "127\.0\.0\.1:$ECHO_PORT" 1280
	[ "$(proxy_bytes "target=127\.0\.0\.1:$ECHO_PORT	")" -eq $((1280 * 32768)) ]
}

@test "stress: blocking, non-blocking and excluded-direct threads at once; only the tunnelled reach the proxy" {
	start_stress_echod
	start_socksifyd -v
	stress_run "socks5://127.0.0.1:$PROXY_PORT" 127.0.0.2/32 -t 64 -c 10 -x 16 -X 127.0.0.2 \
		127.0.0.1 "$ECHO_PORT"
	[ "$(field ok)" -eq 640 ]
	[ "$(field direct)" -eq 16 ]
	proxied_ok "127\.0\.0\.1:$ECHO_PORT" $((48 * 10))
	! grep -q 'target=127\.0\.0\.2' "$SOCKSIFYD_LOG" || false
}

@test "stress: fork() eight times under load; children tunnel, exit 0; the parent's bytes still verify" {
	start_stress_echod
	start_socksifyd -v
	stress_run "socks5://127.0.0.1:$PROXY_PORT" none -t 64 -c 10 -f 8 -F 127.0.0.1 \
		127.0.0.1 "$ECHO_PORT"
	[ "$(field ok)" -eq 640 ]
	[ "$(field forks)" -eq 8 ]
	[ "$(field children_ok)" -eq 8 ]
	# Threads were inside connect() when the forks happened.
	[ "$(field busy_at_fork)" -gt 0 ]
	# Each child made two connections of its own.
	proxied_ok "127\.0\.0\.1:$ECHO_PORT" $((640 + 8 * 2))
}

@test "stress: socks5h fork under load: names through the placeholder table, one table for the tree" {
	need_dns_jail
	start_stress_echod
	start_socksifyd -v
	stress_run "socks5h://127.0.0.1:$PROXY_PORT" none -t 64 -c 10 -f 8 -F "$PROXY_ONLY_NAME" \
		"$PROXY_ONLY_NAME" "$ECHO_PORT"
	[ "$(field ok)" -eq 640 ]
	[ "$(field children_ok)" -eq 8 ]
	# Every lookup of the parent's threads was a placeholder, and 640 new
	# names went into the table and were named back while the forks fell.
	[ "$(field placeholders)" -eq 640 ]
	[ "$(field names)" -eq 640 ]
	# Each child got placeholders too (it reports only then), and a name
	# it added is the same placeholder in the parent.
	[ "$(field shared_names)" -eq 8 ]
	proxied_ok "$PROXY_ONLY_NAME:$ECHO_PORT" $((640 + 8 * 2))
}

# A handshake that takes a second (faultd --slow request: ten bytes at 100 ms)
# under a timer signal every millisecond to each thread. Half the threads
# connect blocking sockets, half non-blocking ones. A blocking connect() is
# interrupted as a direct one is (async.c): by a handler without SA_RESTART,
# with EINTR, the handshake then ending in the background (the program reads
# SO_ERROR once the socket polls writable); with SA_RESTART, never: it
# returns 0. A non-blocking one returns at once. Either way every connection
# ends fully tunnelled, and the bytes that follow are the target's alone.
@test "stress: SIGUSR1 every 1 ms, without and with SA_RESTART, during slow handshakes: connect succeeds, bytes intact" {
	local restart
	start_stress_echod
	start_faultd --slow request
	for restart in "" -r; do
		stress_run "socks5://127.0.0.1:$FAULT_PORT" none -t 8 -c 2 -i 1000 $restart \
			127.0.0.1 "$ECHO_PORT"
		[ "$(field ok)" -eq 16 ]
		# The 8 blocking connects each lasted a second of signals.
		[ "$(field interrupted)" -ge 8 ]
		if [ -z "$restart" ]; then
			[ "$(field eintr)" -eq 8 ]
		else
			[ "$(field eintr)" -eq 0 ]
		fi
		[ "$(field signals)" -ge 1000 ]
	done
	[ "$(grep -c "request cmd=1 atyp=1 dst=127\.0\.0\.1:$ECHO_PORT\$" "$FAULT_LOG")" -eq 32 ]
}

# The probe's handler has no SA_RESTART: its blocking connect() says EINTR at
# the first signal and ends in the background at the deadline, ETIMEDOUT
# through SO_ERROR; the non-blocking one says EINPROGRESS, never EINTR.
@test "stress: a stalled handshake under SIGUSR1 every 1 ms still ends at SOCKSIFY_TIMEOUT=1 with ETIMEDOUT" {
	local mode
	start_stress_echod
	start_faultd --stall request
	for mode in "" -n; do
		run --separate-stderr env SOCKSIFY_TIMEOUT=1 SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" \
			timeout 15 "$STRESS" probe $mode -i 1000 127.0.0.1 "$ECHO_PORT"
		echo "probe $mode: $output"
		[ "$status" -eq 0 ]
		[ "${lines[0]%% *}" = ETIMEDOUT ]
		set -- $output
		[ "$2" -ge 990 ]
		[ "$2" -le 3000 ]
		if [ -z "$mode" ]; then
			[ "$(field eintr)" -eq 1 ]
		else
			[ "$(field eintr)" -eq 0 ]
		fi
		[ "$(field signals)" -ge 100 ]
	done
}

# A blocking connect, tunnelled or direct, may see EINTR (the handler has no
# SA_RESTART), which the program finishes through SO_ERROR: every one of the
# 320 connections must still end fully tunnelled or direct as asked.
@test "stress: all at once under socks5h: 32 threads, direct ones among them, 4 forks, SIGUSR1 every 1 ms" {
	need_dns_jail
	start_stress_echod
	start_socksifyd -v
	stress_run "socks5h://127.0.0.1:$PROXY_PORT" 127.0.0.2/32 -t 32 -c 10 -x 4 -X 127.0.0.2 \
		-f 4 -F "$PROXY_ONLY_NAME" -i 1000 "$PROXY_ONLY_NAME" "$ECHO_PORT"
	[ "$(field ok)" -eq 320 ]
	[ "$(field placeholders)" -eq $((28 * 10)) ]
	[ "$(field names)" -eq $((28 * 10)) ]
	[ "$(field children_ok)" -eq 4 ]
	[ "$(field shared_names)" -eq 4 ]
	[ "$(field interrupted)" -gt 0 ]
	proxied_ok "$PROXY_ONLY_NAME:$ECHO_PORT" $((280 + 4 * 2))
	! grep -q 'target=127\.0\.0\.2' "$SOCKSIFYD_LOG" || false
}
