#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# socksifyd under systemd, without libsystemd (server/sd.c): the sockets
# systemd-socket-activate (and a stand-in for the manager,
# helpers/sdcheck.py) passes, the NOTIFY_SOCKET messages a receiver sees,
# and the shipped units, checked by systemd-analyze verify.

load helpers/common

setup() { make_payload; }
teardown() { stop_all; }

SDCHECK=$HELPERS/sdcheck.py

# fetch PORT: the payload through the SOCKS5 server on 127.0.0.1:PORT, by
# name; its sha256.
fetch() {
	curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$1" \
		"http://localhost:$HTTP_PORT/payload.bin" | sha
}

# run_passed SPECS ARGS...: socksifyd started by sdcheck.py with sockets
# SPECS passed (LISTEN_PID its own), in the background; SD_LOG its stderr,
# SD_PORTS the specs' ports.
run_passed() {
	local specs=$1
	shift
	SD_LOG=$BATS_TEST_TMPDIR/sd.log SD_PORTS=$BATS_TEST_TMPDIR/sd.ports
	: >"$SD_LOG"
	python3 "$SDCHECK" pass "$SD_PORTS" "${SD_PID_SPEC:-self}" "$specs" "$SOCKSIFYD" "$@" 3>&- 2>"$SD_LOG" &
	SD_SERVER=$!
	PIDS+=($SD_SERVER)
}

# exited_within SECONDS PID: PID has ended (a server that should refuse to
# start but serves instead fails the test here, not by hanging in wait).
exited_within() {
	timeout "$1" tail --pid="$2" -f /dev/null || { echo "pid $2 still runs after $1 s"; return 1; }
}

port_of() { sed -n "s/^$1 //p" "$SD_PORTS" | head -n 1; }

@test "systemd-socket-activate passes IPv4 and IPv6 sockets: curl is served through each, the ready lines name them" {
	start_http 127.0.0.1
	local p4 p6 log=$BATS_TEST_TMPDIR/act.log
	p4=$(free_port)
	p6=$(free_port)
	systemd-socket-activate -l "127.0.0.1:$p4" -l "[::1]:$p6" --fdname=v4:v6 \
		"$SOCKSIFYD" -v 3>&- 2>"$log" &
	PIDS+=($!)
	wait_listen "$p4" 50
	# It execs socksifyd on the first connection.
	[ "$(fetch "$p4")" = "$PAYLOAD_SHA" ]
	[ "$(curl -sS --max-time 10 --socks5-hostname "[::1]:$p6" "http://localhost:$HTTP_PORT/payload.bin" | sha)" = "$PAYLOAD_SHA" ]
	cat "$log"
	grep -qx "socksifyd: listening on 127.0.0.1:$p4" "$log"
	grep -qx "socksifyd: listening on \[::1\]:$p6" "$log"
	wait_for_count "$log" 50 'cmd=connect.*outcome=ok' 2
}

@test "a passed socket and --workers 2: 40 fetches served through it, --listen is ignored with one line" {
	start_http 127.0.0.1
	local i ok=0
	run_passed tcp4 --workers 2 -l 127.0.0.1:0 -v
	wait_for_line "$SD_LOG" 50 '^socksifyd: listening on '
	[ "$(grep -c '^socksifyd: listening on ' "$SD_LOG")" -eq 1 ]
	grep -qx "socksifyd: listening on 127.0.0.1:$(port_of tcp4)" "$SD_LOG"
	grep -qx "socksifyd: --listen ignored: serving the 1 socket the service manager passed" "$SD_LOG"
	for ((i = 0; i < 40; i++)); do
		[ "$(fetch "$(port_of tcp4)")" = "$PAYLOAD_SHA" ] && ok=$((ok + 1))
	done
	[ "$ok" -eq 40 ]
}

@test "a passed descriptor that is no listening TCP socket: exit 1, one line naming it" {
	run_passed tcp4,udp
	exited_within 10 "$SD_SERVER"
	wait "$SD_SERVER" && st=0 || st=$?
	cat "$SD_LOG"
	[ "$st" -eq 1 ]
	[ "$(cat "$SD_LOG")" = 'socksifyd: socket activation: descriptor 4 ("udp") is not a listening TCP socket' ]
	run_passed unlistened
	exited_within 10 "$SD_SERVER"
	wait "$SD_SERVER" && st=0 || st=$?
	[ "$st" -eq 1 ]
	[ "$(cat "$SD_LOG")" = 'socksifyd: socket activation: descriptor 3 ("unlistened") is not a listening TCP socket' ]
}

@test "sockets passed to another process (LISTEN_PID not ours) are left alone: --listen is served" {
	start_http 127.0.0.1
	SD_PID_SPEC=1 run_passed tcp4 -l 127.0.0.1:0
	wait_for_line "$SD_LOG" 50 '^socksifyd: listening on '
	local port
	port=$(sed -n 's/^socksifyd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SD_LOG")
	[ "$port" != "$(port_of tcp4)" ]
	[ "$(fetch "$port")" = "$PAYLOAD_SHA" ]
}

# notify_start ADDR: a receiver on ADDR; NOTES its messages, a line each.
notify_start() {
	NOTES=$BATS_TEST_TMPDIR/notes
	: >"$NOTES"
	python3 "$SDCHECK" notify "$1" "$NOTES" 3>&- &
	PIDS+=($!)
	wait_for_line "$NOTES" 50 '^bound$'
}

@test "NOTIFY_SOCKET: READY once serving, WATCHDOG every WATCHDOG_USEC/2, RELOADING and READY around SIGHUP (a failed reload too), STOPPING on SIGTERM" {
	local sock=$BATS_TEST_TMPDIR/notify.sock conf=$BATS_TEST_TMPDIR/s.conf
	notify_start "$sock"
	echo "verbose" >"$conf"
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=200000 start_socksifyd --config "$conf"
	wait_for_line "$NOTES" 50 '^READY=1\|STATUS=listening on 127\.0\.0\.1:[0-9]+$'
	# Before READY, nothing; the ready line was already written.
	[ "$(sed -n 2p "$NOTES")" = "READY=1|STATUS=listening on 127.0.0.1:$PROXY_PORT" ]
	# Three pings within 1.5 s: one every 100 ms is asked for.
	local i t0
	for ((i = 0; i < 15; i++)); do
		[ "$(grep -c '^WATCHDOG=1|STATUS=serving 0 sessions$' "$NOTES")" -ge 3 ] && break
		sleep 0.1
	done
	[ "$i" -lt 15 ]
	t0=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)')
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$NOTES" 50 '^READY=1\|STATUS=reloaded; serving 0 sessions$'
	local mono
	mono=$(sed -n 's/^RELOADING=1|MONOTONIC_USEC=\([0-9]*\)$/\1/p' "$NOTES")
	echo "t0 $t0 mono $mono"
	[ "$mono" -ge "$t0" ]
	[ "$mono" -lt $((t0 + 5000000)) ]
	# RELOADING comes right before its READY.
	[ "$(grep -A1 '^RELOADING=1' "$NOTES" | tail -n 1)" = "READY=1|STATUS=reloaded; serving 0 sessions" ]
	echo "bogus-option 1" >"$conf"
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$NOTES" 50 '^READY=1\|STATUS=reload failed, configuration kept; serving 0 sessions$'
	[ "$(grep -c '^RELOADING=1|MONOTONIC_USEC=[0-9]*$' "$NOTES")" -eq 2 ]
	kill -TERM "$SOCKSIFYD_PID"
	timeout 10 tail --pid="$SOCKSIFYD_PID" -f /dev/null
	wait "$SOCKSIFYD_PID" && st=0 || st=$?
	[ "$st" -eq 0 ]
	wait_for_line "$NOTES" 50 '^STOPPING=1'
	cat "$NOTES"
	[ "$(grep -c '^STOPPING=1|STATUS=draining 0 sessions$' "$NOTES")" -eq 1 ]
	# After it, only the watchdog's pings until the exit.
	[ "$(sed -n '/^STOPPING=1/,$p' "$NOTES" | grep -vc '^WATCHDOG=1')" -eq 1 ]
}

@test "NOTIFY_SOCKET in the abstract namespace (@name); no WATCHDOG when WATCHDOG_PID names another process" {
	local name=@socksify-test-$$-$RANDOM
	notify_start "$name"
	NOTIFY_SOCKET=$name WATCHDOG_USEC=100000 WATCHDOG_PID=1 start_socksifyd
	wait_for_line "$NOTES" 50 '^READY=1\|STATUS=listening on '
	sleep 0.5
	cat "$NOTES"
	[ "$(grep -c '^WATCHDOG=1' "$NOTES")" -eq 0 ]
}

@test "a manager that stopped reading (its queue full): socksifyd never waits on it; SIGTERM still ends it, one line about it" {
	local sock=$BATS_TEST_TMPDIR/deaf.sock
	NOTES=$BATS_TEST_TMPDIR/notes
	: >"$NOTES"
	python3 "$SDCHECK" deaf "$sock" "$NOTES" 3>&- &
	PIDS+=($!)
	wait_for_line "$NOTES" 50 '^bound$'
	# A ping every 10 ms fills the receiver's queue within a second.
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=20000 start_socksifyd
	sleep 1
	kill -TERM "$SOCKSIFYD_PID"
	exited_within 5 "$SOCKSIFYD_PID"
	wait "$SOCKSIFYD_PID" && st=0 || st=$?
	cat "$SOCKSIFYD_LOG"
	[ "$st" -eq 0 ]
	[ "$(grep -c '^socksifyd: NOTIFY_SOCKET: Resource temporarily unavailable (not said again)$' "$SOCKSIFYD_LOG")" -eq 1 ]
}

@test "the shipped units, installed with the binaries, pass systemd-analyze verify; uninstall takes them away" {
	local inst=$BATS_TEST_TMPDIR/inst
	project_make install PREFIX="$inst"
	grep -qx "ExecStart=$inst/sbin/socksifyd \$SOCKSIFYD_ARGS" "$inst/lib/systemd/system/socksifyd.service"
	run systemd-analyze verify --man=no "$inst/lib/systemd/system/socksifyd.service" \
		"$inst/lib/systemd/system/socksifyd.socket"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	project_make uninstall PREFIX="$inst"
	[ ! -e "$inst/lib/systemd/system/socksifyd.service" ]
	[ ! -e "$inst/lib/systemd/system/socksifyd.socket" ]
}
