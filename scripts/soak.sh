#!/bin/sh
# make soak: socksifyd under thousands of connections and injected faults.
#
# Each scenario starts its own server on 127.0.0.1:0 and drives it with
# $BUILD/tests/s5load, which runs the echo target itself and checks every
# byte both ways (count and hash at each end). Each scenario prints one
# "ok" or "FAIL" line with its figures, among them the server's peak RSS
# (VmHWM) and descriptors; the last line is "N passed, N failed".
#
#   SOAK_SCALE=full  8,000 concurrent connections of 64 KiB each way (default)
#   SOAK_SCALE=ci    1,000 of 8 KiB, smaller crowds: under a minute
#
# Loopback only. Every process is started here and stopped by its PID.
set -u
BUILD=${BUILD:-build}
SCALE=${SOAK_SCALE:-full}
SRV=$BUILD/socksifyd
LOAD=$BUILD/tests/s5load

# BUDGET_S bounds the whole run (a watchdog stops it), far above its usual
# time: about 40 s full, 25 s ci.
case $SCALE in
full)	A_CONNS=8000 BYTES=65536 B_STALL=1000 D_CONNS=1000 E_CONNS=1000 BUDGET_S=290 ;;
ci)	A_CONNS=1000 BYTES=8192 B_STALL=300 D_CONNS=300 E_CONNS=300 BUDGET_S=110 ;;
*)	echo "soak: SOAK_SCALE is full or ci, not '$SCALE'" >&2; exit 2 ;;
esac
B_SOAK=200		# normal clients served while the stalled ones wait
C_CONNS=1000		# clients at once against a server with 256 descriptors
C_NOFILE=256
HS_MS=2000		# scenario b's --handshake-timeout
HS_EARLY=250		# the cut may come this much early: the server arms the timer from
			# its loop clock, read once an iteration; s5load notices late
HS_LATE=600		# ... and this much late (1,000 timers at once, a busy host)
PARK_S=3		# scenario c: the window in which the parked server is watched
PARK_CPU_PCT=5		# its CPU time in that window, at most, percent
PAUSE_MS=1500		# s5load --pause: how long transfers stay open mid-stream
DRAIN_DEFAULT_MS=10000	# SERVER_DRAIN_TIMEOUT_MS (e2 ends well before it)
DRAIN_MS=1000		# scenario e3's --drain-timeout, shorter than the pause
DRAIN_LATE=1000		# the drain cut may come this much late
LOAD_T=60		# s5load's own deadline, seconds
TRIES=100		# polls of 0.1 s while waiting for a line or an exit

[ -x "$SRV" ] && [ -x "$LOAD" ] || { echo "soak: build $SRV and $LOAD first (make soak)" >&2; exit 2; }
# Two descriptors a connection on each side: take the whole hard limit.
ulimit -n "$(ulimit -H -n)"
TCK=$(getconf CLK_TCK)
PARK_TICKS_MAX=$((TCK * PARK_S * PARK_CPU_PCT / 100))

work=$(mktemp -d)
SRV_PID='' LOAD_PIDS='' DOG=''
pass=0 fail=0

cleanup() {
	# The watchdog gets TERM: its trap stops its sleep too.
	[ -z "$DOG" ] || { kill -TERM "$DOG" 2>/dev/null; wait "$DOG" 2>/dev/null; }
	for p in $LOAD_PIDS $SRV_PID; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The watchdog: after BUDGET_S it stops this script (whose traps then stop
# every process it started). Every wait below is a builtin wait or a
# short sleep, so the signal is acted on at once.
main=$$
(
	trap 'kill "$nap" 2>/dev/null; exit 0' TERM
	sleep "$BUDGET_S" &
	nap=$!
	wait "$nap"
	echo "soak: over ${BUDGET_S} s, stopping" >&2
	kill -TERM "$main"
) &
DOG=$!

# --- helpers ---------------------------------------------------------------

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_line FILE REGEX [TRIES]: poll until FILE has a line matching REGEX.
wait_line() {
	i=0
	while [ "$i" -lt "${3:-$TRIES}" ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# wait_gone PID [TRIES]: poll until PID has exited (a zombie counts), then
# reap it; EXIT holds its status.
wait_gone() {
	i=0 EXIT=
	while [ "$i" -lt "${2:-$TRIES}" ]; do
		st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
		if [ -z "$st" ] || [ "$st" = Z ]; then
			wait "$1"
			EXIT=$?
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# start_server [WRAPPER...] SOCKSIFYD [ARGS...]: PORT, SRV_PID, FD0.
start_server() {
	LOG=$work/server.log.$(now_ms)
	: >"$LOG"
	# SOCKSIFYD_ARGS: flags for every server of the run (--relay splice).
	# shellcheck disable=SC2086
	"$@" -l 127.0.0.1:0 ${SOCKSIFYD_ARGS:-} <&- 2>"$LOG" &
	SRV_PID=$!
	wait_line "$LOG" '^socksifyd: listening on ' || return 1
	PORT=$(sed -n 's/^socksifyd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$LOG")
	FD0=$(fds)
}

# stop_server: SIGTERM, then its exit status in EXIT (KILL after TRIES).
stop_server() {
	kill -TERM "$SRV_PID"
	wait_gone "$SRV_PID" || { kill -KILL "$SRV_PID"; wait_gone "$SRV_PID"; EXIT=killed; }
	SRV_PID=
}

fds() { ls "/proc/$SRV_PID/fd" | wc -l; }
hwm_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SRV_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat"; }

# fds_settle: poll until the server is back to FD0 descriptors; FDS is
# the last count.
fds_settle() {
	i=0
	while FDS=$(fds) && [ "$FDS" -ne "$FD0" ] && [ "$i" -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# kv FILE KEY: the value of KEY on s5load's result line.
kv() { sed -n "s/^s5load: mode=.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# load NAME ARGS...: s5load in the background, output in $work/NAME.{out,err}.
load() {
	name=$1
	shift
	"$LOAD" "$@" -x "127.0.0.1:$PORT" -t "$LOAD_T" >"$work/$name.out" 2>"$work/$name.err" &
	LAST=$!
	LOAD_PIDS="$LOAD_PIDS $LAST"
}

# crowd NAME N ARGS...: an s5load soak of N connections that all stop half
# way (--pause); returns once all N are open at once, with LP its PID and
# PEAK the server's descriptors then.
crowd() {
	name=$1 n=$2
	shift 2
	load "$name" soak -c "$n" -b "$BYTES" "$@"
	LP=$LAST
	need "not all $n open at once" wait_line "$work/$name.out" "^s5load: midway $n\$" $((LOAD_T * 10))
	PEAK=$(fds)
}

# run NAME ARGS...: the same, waited for; RC is its exit status.
run() {
	load "$@"
	wait "$LAST"
	RC=$?
}

# need DESCRIPTION TEST...: the check failed unless TEST holds.
need() {
	d=$1
	shift
	"$@" || WHY="$WHY; $d"
}

# result LABEL FIGURES: one line, ok when no need failed.
result() {
	if [ -z "$WHY" ]; then
		pass=$((pass + 1))
		echo "ok   $1: $2"
	else
		fail=$((fail + 1))
		echo "FAIL $1: $2"
		echo "     failed:${WHY#;}"
		for f in "$work"/*.err; do
			[ -s "$f" ] && sed 's/^/     /' "$f" | head -n 8
		done
		[ -n "${LOG:-}" ] && grep -v 'outcome=' "$LOG" | tail -n 5 | sed 's/^/     server: /'
	fi
	rm -f "$work"/*.out "$work"/*.err
	LOAD_PIDS=
}

# --- scenarios -------------------------------------------------------------

# a. A crowd, all open at once (s5load's --pause holds every connection
# half way until the last has got there), checksummed both ways.
# --max-sessions stays at its default, 8000: exactly enough.
scenario_a() {
	WHY=
	n=$A_CONNS
	start_server "$SRV" || { WHY="; server did not start"; result "a. crowd" "-"; return; }
	crowd a "$n" --pause "$PAUSE_MS"
	peak=$PEAK
	wait "$LP"
	rc=$?
	fds_settle
	hwm=$(hwm_mib)
	stop_server
	need "s5load exit $rc" [ "$rc" -eq 0 ]
	need "ok=$(kv "$work/a.out" ok), not $n" [ "$(kv "$work/a.out" ok)" = "$n" ]
	need "peak descriptors $peak < 2 x $n" [ "$peak" -ge $((2 * n)) ]
	need "descriptors $FDS after, $FD0 before" [ "$FDS" -eq "$FD0" ]
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	result "a. $n concurrent relayed connections, $BYTES B each way" \
	    "ok=$(kv "$work/a.out" ok) failed=$(kv "$work/a.out" failed) up=$(mib "$(kv "$work/a.out" up_bytes)")MiB down=$(mib "$(kv "$work/a.out" down_bytes)")MiB in $(kv "$work/a.out" ms) ms; server fds $FD0/$peak/$FDS (before/peak/after), VmHWM ${hwm} MiB"
}

# b. Clients stalled in their handshake (half send nothing, half two bytes
# of a greeting) are cut at --handshake-timeout, no sooner, while normal
# clients are served meanwhile.
scenario_b() {
	WHY=
	n=$B_STALL
	half=$((n / 2))
	start_server "$SRV" --handshake-timeout "$HS_MS" ||
	    { WHY="; server did not start"; result "b. stalled handshakes" "-"; return; }
	cut="$((HS_MS - HS_EARLY)):$((HS_MS + HS_LATE))"
	load b0 stall -c "$half" -g 0 --expect-cut "$cut"
	p0=$LAST
	load b2 stall -c $((n - half)) -g 2 --expect-cut "$cut"
	p2=$LAST
	need "stalled clients not all connected" wait_line "$work/b0.out" '^s5load: holding'
	need "stalled clients not all connected" wait_line "$work/b2.out" '^s5load: holding'
	peak=$(fds)
	t0=$(now_ms)
	run bs soak -c "$B_SOAK" -b "$BYTES"
	rc=$RC
	soak_ms=$(($(now_ms) - t0))
	# Served while the stalled were held: neither stall run had ended.
	during=yes
	grep -q '^s5load: mode=' "$work/b0.out" "$work/b2.out" && during=no
	wait "$p0"
	r0=$?
	wait "$p2"
	r2=$?
	fds_settle
	hwm=$(hwm_mib)
	stop_server
	need "soak exit $rc, ok=$(kv "$work/bs.out" ok)" [ "$rc" -eq 0 ]
	need "the soak outlasted the stalled clients" [ "$during" = yes ]
	need "stall -g 0 exit $r0 (cut outside $cut ms)" [ "$r0" -eq 0 ]
	need "stall -g 2 exit $r2 (cut outside $cut ms)" [ "$r2" -eq 0 ]
	need "descriptors $FDS after, $FD0 before" [ "$FDS" -eq "$FD0" ]
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	result "b. $n stalled handshakes, --handshake-timeout $HS_MS" \
	    "cut at $(kv "$work/b0.out" min_ms)-$(kv "$work/b0.out" max_ms) ms (nothing sent), $(kv "$work/b2.out" min_ms)-$(kv "$work/b2.out" max_ms) ms (2 bytes), $(kv "$work/b0.out" open)+$(kv "$work/b2.out" open) left open; $B_SOAK clients meanwhile ok=$(kv "$work/bs.out" ok) in $soak_ms ms; server fds $FD0/$peak/$FDS, VmHWM ${hwm} MiB"
}

# c. 256 descriptors: out of descriptors is a state, not a loop. First the
# server is filled with idle clients and watched while its listener is
# parked (CPU time must stay near zero); then 1,000 clients arrive at once.
# What it guarantees (server/main.c listener_on_accept): it admits a
# client only when the client's and its target's descriptors both fit
# beside --fd-reserve, so the sessions it holds are served in full and the
# rest wait in the listen backlog (1024 here) until the listener resumes;
# all 1,000 get through. (A client accepted when descriptors ran out all
# the same is closed before any reply byte: s5load counts it as refused,
# and this scenario fails on it.)
scenario_c() {
	WHY=
	start_server prlimit --nofile=$C_NOFILE:$C_NOFILE "$SRV" ||
	    { WHY="; server did not start"; result "c. $C_NOFILE descriptors" "-"; return; }
	load c1 stall -c $((C_NOFILE + 50)) -g 0
	lp=$LAST
	need "idle clients not connected" wait_line "$work/c1.out" '^s5load: holding'
	need "the listener never paused" wait_line "$LOG" 'pausing for|waiting for a session to close'
	full=$(fds)
	t1=$(cpu_ticks)
	sleep "$PARK_S"
	parked=$(($(cpu_ticks) - t1))
	kill -TERM "$lp"
	wait "$lp"
	t1=$(cpu_ticks)
	t0=$(now_ms)
	run c2 soak -c "$C_CONNS" -b "$BYTES" --ramp "$C_CONNS" --refused-ok
	rc=$RC
	wall=$(($(now_ms) - t0))
	busy=$(($(cpu_ticks) - t1))
	ok=$(kv "$work/c2.out" ok)
	refused=$(kv "$work/c2.out" refused)
	fds_settle
	hwm=$(hwm_mib)
	stop_server
	need "parked server used $parked ticks in ${PARK_S}s (max $PARK_TICKS_MAX)" [ "$parked" -le "$PARK_TICKS_MAX" ]
	need "soak exit $rc (failed=$(kv "$work/c2.out" failed))" [ "$rc" -eq 0 ]
	need "ok=$ok refused=$refused, not ok=$C_CONNS" [ "$ok" -eq "$C_CONNS" ]
	need "descriptors $FDS after, $FD0 before" [ "$FDS" -eq "$FD0" ]
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	result "c. $C_CONNS clients at once, --nofile $C_NOFILE" \
	    "parked at $full fds: $parked ticks CPU in ${PARK_S}s; then ok=$ok refused=$refused failed=$(kv "$work/c2.out" failed) in $wall ms, CPU $((busy * 1000 / TCK)) ms; pauses logged $(grep -cE 'pausing for|waiting for a session' "$LOG"); server fds $FD0/$FDS, VmHWM ${hwm} MiB"
}

# d. Every fault at once (s5load --mix: a fifth each plain, client
# half-close, target half-close, target reset mid-stream, client vanishing
# with a reset): every session ends, its log line says so, no descriptor
# is left behind.
scenario_d() {
	WHY=
	n=$D_CONNS
	start_server "$SRV" -v || { WHY="; server did not start"; result "d. faults" "-"; return; }
	run d soak -c "$n" -b "$BYTES" --mix
	rc=$RC
	fds_settle
	hwm=$(hwm_mib)
	i=0
	while [ "$(grep -c 'outcome=' "$LOG")" -lt "$n" ] && [ "$i" -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sessions=$(grep -c 'outcome=' "$LOG")
	stop_server
	outcomes=$(sed -n 's/.*\toutcome=//p' "$LOG" | sort | uniq -c | sort -rn |
	    awk '{ n = $1; $1 = ""; printf "%s%s=%d", sep, substr($0, 2), n; sep = ", " }')
	need "s5load exit $rc" [ "$rc" -eq 0 ]
	need "ok=$(kv "$work/d.out" ok), not $n" [ "$(kv "$work/d.out" ok)" = "$n" ]
	need "$sessions session lines, not $n" [ "$sessions" -eq "$n" ]
	need "descriptors $FDS after, $FD0 before" [ "$FDS" -eq "$FD0" ]
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	result "d. $n connections, five fault variants mixed" \
	    "ok=$(kv "$work/d.out" ok) failed=$(kv "$work/d.out" failed) in $(kv "$work/d.out" ms) ms; $sessions sessions ended ($outcomes); server fds $FD0/$FDS, VmHWM ${hwm} MiB"
}

# e. Signals with every connection open mid-stream. e1: SIGHUP loses
# nothing. e2: SIGTERM closes the listener at once (a new client is
# refused) and lets the transfers finish, then exits 0. e3: with a drain
# shorter than the transfers, SIGTERM cuts them at --drain-timeout, not
# before, and exits 0 (man/socksifyd.8, SIGNALS).
scenario_e() {
	WHY=
	n=$E_CONNS
	start_server "$SRV" || { WHY="; server did not start"; result "e1. SIGHUP" "-"; return; }
	crowd e1 "$n" --pause "$PAUSE_MS"
	kill -HUP "$SRV_PID"
	need "no reload line" wait_line "$LOG" 'reloaded users and rules'
	wait "$LP"
	rc=$?
	need "s5load exit $rc" [ "$rc" -eq 0 ]
	need "ok=$(kv "$work/e1.out" ok), not $n" [ "$(kv "$work/e1.out" ok)" = "$n" ]
	result "e1. SIGHUP with $n transfers half done" \
	    "ok=$(kv "$work/e1.out" ok) failed=$(kv "$work/e1.out" failed) up=$(mib "$(kv "$work/e1.out" up_bytes)")MiB down=$(mib "$(kv "$work/e1.out" down_bytes)")MiB; fds at SIGHUP $PEAK, VmHWM $(hwm_mib) MiB"

	WHY=
	crowd e2 "$n" --pause "$PAUSE_MS"
	hwm=$(hwm_mib)
	t0=$(now_ms)
	kill -TERM "$SRV_PID"
	need "no drain line" wait_line "$LOG" "draining $n sessions"
	run late soak -c 1 -b 1 --refused-ok
	late=$(kv "$work/late.out" refused)
	wait "$LP"
	rc=$?
	wait_gone "$SRV_PID" $((DRAIN_DEFAULT_MS / 100 + TRIES)) ||
	    { kill -KILL "$SRV_PID"; wait_gone "$SRV_PID"; EXIT=killed; }
	SRV_PID=
	gone=$(($(now_ms) - t0))
	need "s5load exit $rc" [ "$rc" -eq 0 ]
	need "ok=$(kv "$work/e2.out" ok), not $n" [ "$(kv "$work/e2.out" ok)" = "$n" ]
	need "a new client was not refused while draining" [ "$late" = 1 ]
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	need "exit $gone ms after SIGTERM: waited for the drain timeout" [ "$gone" -lt "$DRAIN_DEFAULT_MS" ]
	result "e2. SIGTERM with $n transfers half done, drain 10 s" \
	    "ok=$(kv "$work/e2.out" ok) failed=$(kv "$work/e2.out" failed), new client refused=$late, server exit $EXIT after $gone ms; fds at SIGTERM $PEAK, VmHWM ${hwm} MiB"

	WHY=
	start_server "$SRV" --drain-timeout "$DRAIN_MS" ||
	    { WHY="; server did not start"; result "e3. drain timeout" "-"; return; }
	crowd e3 "$n" --pause $((DRAIN_MS * 4)) --cut-ok
	hwm=$(hwm_mib)
	t0=$(now_ms)
	kill -TERM "$SRV_PID"
	wait_gone "$SRV_PID" || { kill -KILL "$SRV_PID"; wait_gone "$SRV_PID"; EXIT=killed; }
	SRV_PID=
	gone=$(($(now_ms) - t0))
	wait "$LP"
	rc=$?
	lo=$(kv "$work/e3.out" cut_min_ms)
	hi=$(kv "$work/e3.out" cut_max_ms)
	need "s5load exit $rc" [ "$rc" -eq 0 ]
	need "cut=$(kv "$work/e3.out" cut), not $n" [ "$(kv "$work/e3.out" cut)" = "$n" ]
	need "cut from ${lo:-?} ms, before $DRAIN_MS" [ "${lo:-0}" -ge "$DRAIN_MS" ]
	need "cut until ${hi:-?} ms, after $((DRAIN_MS + DRAIN_LATE))" \
	    [ "${hi:-0}" -le $((DRAIN_MS + DRAIN_LATE)) ]
	need "no drain timeout line" grep -q "drain timeout: closing $n sessions" "$LOG"
	need "server exit $EXIT" [ "$EXIT" = 0 ]
	result "e3. SIGTERM with $n transfers half done, --drain-timeout $DRAIN_MS" \
	    "cut=$(kv "$work/e3.out" cut) failed=$(kv "$work/e3.out" failed) at $lo-$hi ms after midway, server exit $EXIT after $gone ms; VmHWM ${hwm} MiB"
}

echo "== soak ($SCALE): $SRV driven by $LOAD"
t_all=$(now_ms)
scenario_a
scenario_b
scenario_c
scenario_d
scenario_e
echo "soak took $((($(now_ms) - t_all) / 1000)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
