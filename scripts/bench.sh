#!/usr/bin/env bash
# make bench: socksifyd side by side with a direct connection and the SOCKS5
# servers Debian packages (microsocks, dante's danted, ssh -D), then the
# preload library beside proxychains-ng's and tsocks'.
#
# Each figure is measured BENCH_REPS times (default 3); within a repetition
# every server is measured back to back, and ratios to direct are taken
# within the repetition before the median is. Figures:
#   handshakes/s and p50/p99 µs at 1, 16 and 64 workers   (s5load rate)
#   MB/s through 1 and 8 streams                          (s5load stream)
#   server RSS per idle relayed connection, 1,000 and 8,000 connections,
#   each on a freshly started server                      (s5load hold)
#   µs per connect + 16-byte echo + close, one CPU, through microsocks and
#   socksifyd: in-program SOCKS5 against each preload library (connbench)
#   ms per process start with each preload library        (connbench spawn)
#   ms for 50 fetches at once through a proxy 25 ms away, by python3
#   asyncio, node and curl speaking SOCKS5 themselves and under
#   libsocksify.so                             (scripts/bench_evloop.sh)
#   µs per tunnelled connect and ms per start under the seccomp supervisor,
#   beside the library, in-program SOCKS5 and direct
#                                          (scripts/bench_supervisor.sh)
#   UDP ASSOCIATE: round trips/s and p50/p99 µs for 1 KiB datagrams, MB/s
#   and datagrams/s with a window in flight for 64 B, 1 KiB and 8 KiB,
#   through socksifyd and danted beside direct and a bare forwarder
#                                                   (scripts/bench_udp.sh)
#   µs a dead first alternative (-x 'dead|alive') adds to a connect, and
#   handshakes/s through HAProxy before 1 and 3 socksifyd
#                                             (scripts/bench_failover.sh)
#   ms from connect() to the first answer byte through a proxy 50 ms away,
#   in-program lock-step SOCKS5 beside libsocksify.so, SOCKSIFY_PIPELINE
#   off and on, with and without RFC 1929      (scripts/bench_rtt.sh)
# Output: a Markdown table on stdout and in build/bench/results.md, every
# raw measurement in build/bench/raw.csv, the ratios to direct drawn in
# build/bench/ratios.png and the client side's figures in build/bench/client.png.
#
#   BENCH_REPS=N               repetitions (default 3; 1 with BENCH_QUICK)
#   BENCH_QUICK=1              a smoke run of about a minute: 1 s figures, 1,000 only
#   BENCH_SOCKSIFYD_ARGS=...   more flags for socksifyd
#
# Loopback only. Every process is started here and stopped by its PID, also
# on error or when the run outlasts its budget.
set -u
BUILD=${BUILD:-build}
OUT=$BUILD/bench
LOAD=$BUILD/tests/s5load
CONNB=$BUILD/tests/connbench
EXITNOW=$BUILD/tests/exitnow
SOCKSIFYD=$BUILD/socksifyd
LIBSOCKSIFY=$BUILD/libsocksify.so
SSHD=/usr/sbin/sshd
QUICK=${BENCH_QUICK:-0}
read -r -a SOCKSIFYD_ARGS <<<"${BENCH_SOCKSIFYD_ARGS:-}"

if [ "$QUICK" = 1 ]; then
	REPS=${BENCH_REPS:-1}
	FIG_S=1		# seconds per rate or stream figure
	HOLD_NS="1000"
	CONN_ROUNDS=600	# connbench rounds per way
	SPAWN_RUNS=150	# process starts per library
	SLICES=3	# ... cut into this many interleaved runs
	BUDGET_S=340	# the whole run's bound: far above the usual minute, and
			# with the 40 s bound of scripts/bench_evloop.sh, the
			# 25 s of scripts/bench_supervisor.sh, the 45 s of
			# scripts/bench_udp.sh and the 40 s each of
			# scripts/bench_failover.sh and bench_rtt.sh in it
	SOFT_S=100	# a repetition starts only if the last one's time fits before this
else
	REPS=${BENCH_REPS:-3}
	FIG_S=2
	HOLD_NS="1000 8000"
	CONN_ROUNDS=2000
	SPAWN_RUNS=300
	SLICES=10
	BUDGET_S=885	# bench_evloop.sh's 90 s, bench_supervisor.sh's 80 s,
			# bench_udp.sh's 180 s, bench_failover.sh's and
			# bench_rtt.sh's 120 s each included
	SOFT_S=270
fi
WORKERS="1 16 64"
STREAMS="1 8"
HOLD_SETUP_S=15		# to open N held connections; slower counts as cannot hold N
START_TRIES=50		# polls of 0.1 s for a server to listen
PIN_CPU=$(($(nproc) - 1))	# the preload figures run on this one CPU
SERVERS="direct socksifyd microsocks dante ssh"

# The whole run is bounded: after BUDGET_S, timeout(1) sends TERM, and the
# EXIT trap below stops everything this script started. Every command has
# its own, shorter bound, so the TERM is acted on within seconds.
# shellcheck source=scripts/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"
bench_bound bench "$REPS" "$BUDGET_S" "$@"

for f in "$LOAD" "$CONNB" "$EXITNOW" "$SOCKSIFYD" "$LIBSOCKSIFY"; do
	[ -e "$f" ] || { echo "bench: $f is missing: run make bench" >&2; exit 2; }
done
# Two descriptors a held connection, on each side: take the hard limit.
ulimit -n "$(ulimit -H -n)"

# --- processes ---------------------------------------------------------------

# From bench_lib.sh, sourced above: bench_begin, alive, stop, stop_roots,
# cleanup, spawn, waited, wait_line,
# spawn_listener, listening, wait_port, free_port, pin, start_dante, median.
bench_begin bench "$BUDGET_S"

# dead_root PIDS: true when one of them has ended; it is reaped, and WHY
# says how it ended.
dead_root() {
	local p rc
	for p in $1; do
		alive "$p" && continue
		wait "$p" 2>/dev/null
		rc=$?
		STARTED=" ${STARTED//" $p "/ } "
		if [ "$rc" -gt 128 ]; then
			WHY="pid $p was killed by signal $((rc - 128))"
		else
			WHY="pid $p exited with status $rc"
		fi
		return 0
	done
	return 1
}

# treerss PID...: KiB of VmRSS over these processes and all they started
# (danted and sshd fork a process per client or per session).
treerss() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = split(roots, q, " ")
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], a, " ")
				for (j = 1; j <= m; j++)
					q[++n] = a[j]
			}
		}' | while read -r p; do
		awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null
	done | awk '{ t += $1 } END { print t + 0 }'
}

# --- the servers -------------------------------------------------------------
# start_NAME [PIN]: PORT and ROOTS (the PIDs to watch, stop and weigh), or
# a false return with WHY. PIN runs it under taskset on that CPU. start_dante
# is bench_lib.sh's, shared with scripts/bench_udp.sh.

start_socksifyd() {
	local rc
	pin "${1:-}"
	spawn_listener "$work/socksifyd.$RANDOM.log" socksifyd "${PIN[@]}" "$SOCKSIFYD" \
	    -l 127.0.0.1:0 -q "${SOCKSIFYD_ARGS[@]}"
	rc=$?
	ROOTS=$PID
	return "$rc"
}

start_microsocks() {
	local tries
	command -v microsocks >/dev/null || { WHY="microsocks is not installed"; return 1; }
	pin "${1:-}"
	# microsocks binds without SO_REUSEADDR: a port in TIME_WAIT fails; retry.
	for ((tries = 0; tries < 3; tries++)); do
		free_port || break
		spawn /dev/null "${PIN[@]}" microsocks -i 127.0.0.1 -p "$PORT"
		ROOTS=$PID
		wait_port "$PORT" "$PID" && return 0
		stop "$PID"
	done
	WHY="microsocks did not start"
	return 1
}

# A private sshd on loopback (its own host key, config and authorized key;
# no system file is read or changed) and ssh -D in front of it. Debian's
# sshd insists on /run/sshd; when the host has none, sshd gets a private
# /run in a mount namespace of its own.
start_ssh() {
	local d=$work/ssh.$RANDOM sport user wrap=()
	if [ ! -x "$SSHD" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
		WHY="openssh-server or openssh-client is not installed"
		return 1
	fi
	if [ ! -d /run/sshd ]; then
		if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
			WHY="sshd needs /run/sshd, which only root can provide"
			return 1
		fi
		wrap=(unshare --mount --propagation private sh -c \
		    'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec "$@"' sshd)
	fi
	mkdir -p "$d"
	user=$(id -un)
	if ! ssh-keygen -q -t ed25519 -N '' -f "$d/host" || ! ssh-keygen -q -t ed25519 -N '' -f "$d/key"; then
		WHY="ssh-keygen failed"
		return 1
	fi
	cp "$d/key.pub" "$d/authorized_keys"
	free_port || { WHY="no free port"; return 1; }
	sport=$PORT
	cat >"$d/sshd_config" <<-EOF
	ListenAddress 127.0.0.1:$sport
	HostKey $d/host
	PidFile none
	AuthorizedKeysFile $d/authorized_keys
	StrictModes no
	PermitRootLogin prohibit-password
	PubkeyAuthentication yes
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	AllowTcpForwarding yes
	LogLevel ERROR
	EOF
	pin "${1:-}"
	spawn "$d/sshd.log" "${PIN[@]}" "${wrap[@]}" "$SSHD" -f "$d/sshd_config" -D -e
	ROOTS=$PID
	wait_port "$sport" "$PID" || { WHY="sshd did not start: $(head -c 200 "$d/sshd.log")"; return 1; }
	free_port || { WHY="no free port"; return 1; }
	spawn "$d/ssh.log" "${PIN[@]}" ssh -F /dev/null -N -D "127.0.0.1:$PORT" \
	    -o StrictHostKeyChecking=no -o UserKnownHostsFile="$d/known_hosts" \
	    -o BatchMode=yes -o ExitOnForwardFailure=yes -o LogLevel=ERROR \
	    -i "$d/key" -p "$sport" "$user@127.0.0.1"
	ROOTS="$ROOTS $PID"
	wait_port "$PORT" "$PID" || { WHY="ssh -D did not start: $(head -c 200 "$d/ssh.log")"; return 1; }
}

# start NAME [PIN]: as start_NAME, but a failure leaves nothing running.
start() {
	PORT='' ROOTS='' WHY=''
	"start_$1" "${2:-}" && return 0
	stop_roots "$ROOTS"
	return 1
}

# --- results -----------------------------------------------------------------
# raw.csv: rep,figure,server,value,unit. notes: "figure server text" lines,
# footnotes for a cell.

CSV=$OUT/raw.csv
NOTES=$work/notes
echo "rep,figure,server,value,unit" >"$CSV"
: >"$NOTES"
record() { echo "$REP,$1,$2,$3,$4" >>"$CSV"; }
note() { grep -qxF "$1 $2 $3" "$NOTES" || echo "$1 $2 $3" >>"$NOTES"; }

# kv FILE KEY: KEY's value on the tool's last result line.
kv() { sed -n "s/^[a-z0-9]*: mode=.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

# why_failed FILE: the tool's first complaint.
why_failed() { grep -v ': mode=' "$1" | head -n 1 | cut -c1-120; }

# --- phase 1: rate and throughput on long-lived servers ----------------------

declare -A PORTS ROOTSOF DEAD
for s in $SERVERS; do
	[ "$s" = direct ] && continue
	if start "$s"; then
		PORTS[$s]=$PORT
		ROOTSOF[$s]=$ROOTS
	else
		DEAD[$s]="not run: $WHY"
	fi
done

# target SERVER: s5load's way to reach the target through it.
target() { [ "$1" = direct ] && echo --direct || echo "-x 127.0.0.1:${PORTS[$1]}"; }

# usable SERVER FIGURE: false (with a note on the figure) when the server
# is down.
usable() {
	[ "$1" = direct ] && return 0
	[ -z "${DEAD[$1]:-}" ] && dead_root "${ROOTSOF[$1]}" &&
	    DEAD[$1]="died before $2 in rep $REP ($WHY); not measured from then on"
	[ -z "${DEAD[$1]:-}" ] && return 0
	note "$2" "$1" "${DEAD[$1]}"
	return 1
}

# died_during SERVER FIGURE: a server that ended while measured spoils the
# figure it was measured for, and every one after.
died_during() {
	[ "$1" = direct ] || [ -n "${DEAD[$1]:-}" ] && return
	dead_root "${ROOTSOF[$1]}" || return
	DEAD[$1]="died during $2 in rep $REP ($WHY); not measured from then on"
	note "$2" "$1" "${DEAD[$1]}"
}

measure_rate() {
	local s=$1 w=$2 f=$work/out rc
	usable "$s" "rate_w$w" || return
	# shellcheck disable=SC2046
	timeout -k 2 $((FIG_S + 20)) "$LOAD" rate $(target "$s") -w "$w" -d "$FIG_S" -t $((FIG_S + 15)) >"$f" 2>&1
	rc=$?
	if [ -n "$(kv "$f" rounds)" ] && [ "$(kv "$f" rounds)" -gt 0 ]; then
		record "rate_w$w" "$s" "$(kv "$f" rate)" handshakes/s
		record "p50_w$w" "$s" "$(kv "$f" p50_us)" us
		record "p99_w$w" "$s" "$(kv "$f" p99_us)" us
		[ "$rc" = 0 ] || note "rate_w$w" "$s" "rep $REP: $(kv "$f" errors) rounds failed ($(why_failed "$f"))"
	else
		note "rate_w$w" "$s" "rep $REP: no round completed ($(why_failed "$f"))"
	fi
	died_during "$s" "rate_w$w"
}

measure_stream() {
	local s=$1 c=$2 f=$work/out
	usable "$s" "tput_c$c" || return
	# shellcheck disable=SC2046
	if timeout -k 2 $((FIG_S + 20)) "$LOAD" stream $(target "$s") -c "$c" -d "$FIG_S" \
	    -t $((FIG_S + 15)) >"$f" 2>&1; then
		record "tput_c$c" "$s" "$(kv "$f" mb_s)" MB/s
	else
		note "tput_c$c" "$s" "rep $REP: $(why_failed "$f")"
	fi
	died_during "$s" "tput_c$c"
}

# --- phase 2: memory per held connection, on fresh servers -------------------

declare -A HOLD_FAILED
measure_hold() {
	local s=$1 n=$2 fig=rss_$2 f=$work/hold.out before after lp i held
	[ "$s" = direct ] && return
	DANTE_EXT=127.0.0.4	# apart from the long-lived danted's ports
	# What a server could not hold once, it is not asked to hold again.
	[ -n "${HOLD_FAILED[$s.$n]:-}" ] && return
	if ! start "$s"; then
		note "$fig" "$s" "rep $REP: $WHY"
		return
	fi
	DANTE_EXT=127.0.0.3
	local roots=$ROOTS
	before=$(treerss "$roots")
	spawn "$f" "$LOAD" hold -x "127.0.0.1:$PORT" -c "$n" -t $((HOLD_SETUP_S + 10))
	lp=$PID
	for ((i = 0; i < HOLD_SETUP_S * 10; i++)); do
		grep -q '^s5load: holding' "$f" && break
		alive "$lp" || break
		sleep 0.1
	done
	if grep -q '^s5load: holding' "$f"; then
		after=$(treerss "$roots")
		record "$fig" "$s" "$(awk -v a="$after" -v b="$before" -v n="$n" \
		    'BEGIN { printf "%.2f", (a - b) / n }')" KiB
		stop "$lp"
	else
		stop "$lp"
		held=$(kv "$f" held)
		if [ -n "$(why_failed "$f")" ]; then
			HOLD_FAILED[$s.$n]="rep $REP: ${held:-?} held, then $(why_failed "$f")"
		else
			HOLD_FAILED[$s.$n]="rep $REP: only ${held:-?} of $n open after ${HOLD_SETUP_S} s"
		fi
		dead_root "$roots" && HOLD_FAILED[$s.$n]="${HOLD_FAILED[$s.$n]}; then $WHY"

		[ "$REP" -lt "$REPS" ] && HOLD_FAILED[$s.$n]="${HOLD_FAILED[$s.$n]}; not tried again"
		note "$fig" "$s" "${HOLD_FAILED[$s.$n]}"
	fi
	stop_roots "$roots"
}

# --- phase 3: the preload libraries, on one CPU ------------------------------

first_file() {
	local f
	for f in "$@"; do [ -e "$f" ] && { echo "$f"; return; }; done
}
PROXYCHAINS=$(first_file /usr/lib/*/libproxychains.so.4 /usr/lib/libproxychains.so.4)
TSOCKS=$(first_file /usr/lib/*/libtsocks.so /usr/lib/libtsocks.so)
# libsocksify: the default, SOCKSIFY_PIPELINE=auto: through socksifyd
# pipelined from the second connect of the process on (the server said it
# reads a stream), through microsocks lock-step. lockstep: the same with
# SOCKSIFY_PIPELINE=off, through socksifyd alone (through microsocks it
# is the default's row).
WAYS="inprog libsocksify lockstep proxychains tsocks"
PRELOAD_VIA="microsocks socksifyd"

# libenv WAY PROXYPORT: the environment for connbench under WAY.
libenv() {
	case $1 in
	libsocksify)
		echo "LD_PRELOAD=$LIBSOCKSIFY SOCKSIFY_PROXY=socks5://127.0.0.1:$2 SOCKSIFY_EXCLUDE=none" ;;
	lockstep)
		echo "$(libenv libsocksify "$2") SOCKSIFY_PIPELINE=off" ;;
	proxychains)
		printf 'strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 %s\n' \
		    "$2" >"$work/proxychains.$2.conf"
		echo "LD_PRELOAD=$PROXYCHAINS PROXYCHAINS_CONF_FILE=$work/proxychains.$2.conf PROXYCHAINS_QUIET_MODE=1" ;;
	tsocks)
		# tsocks needs its server on a "local" network.
		printf 'local = 127.0.0.1/255.255.255.255\nserver = 127.0.0.1\nserver_type = 5\nserver_port = %s\n' \
		    "$2" >"$work/tsocks.$2.conf"
		echo "LD_PRELOAD=$TSOCKS TSOCKS_CONF_FILE=$work/tsocks.$2.conf" ;;
	esac
}

# connbench_way WAY PROXYPORT ECHO N: connbench connect under WAY; OUT file.
connbench_way() {
	local way=$1 port=$2 echo=$3 n=$4
	# shellcheck disable=SC2046
	if [ "$way" = inprog ]; then
		timeout -k 2 60 taskset -c "$PIN_CPU" "$CONNB" connect -t "$echo" -n "$n" \
		    -x "127.0.0.1:$port" -T 50
	else
		timeout -k 2 60 env $(libenv "$way" "$port") taskset -c "$PIN_CPU" "$CONNB" connect \
		    -t "$echo" -n "$n" -T 50
	fi >"$work/cb.out" 2>&1
}

declare -A NOT_TUNNELLED
declare -A LIB=([inprog]='' [libsocksify]=$LIBSOCKSIFY [lockstep]=$LIBSOCKSIFY [proxychains]=$PROXYCHAINS [tsocks]=$TSOCKS)
# Each library must fail while its proxy is down: one that reaches the
# target all the same connects directly, and its figure would weigh no
# SOCKS at all.
check_tunnels() {
	local way echo=$1
	free_port || return
	for way in libsocksify lockstep proxychains tsocks; do
		if [ -z "${LIB[$way]}" ]; then
			NOT_TUNNELLED[$way]="not installed"
		elif connbench_way "$way" "$PORT" "$echo" 1; then
			NOT_TUNNELLED[$way]="not measured: with its proxy down it still reached the target, so it connected directly"
		fi
	done
	# Debian's libtsocks adds 127.0.0.0/8 to its local networks whatever
	# the configuration says.
	[ -n "${NOT_TUNNELLED[tsocks]:-}" ] && [ "${NOT_TUNNELLED[tsocks]}" != "not installed" ] &&
	    NOT_TUNNELLED[tsocks]="${NOT_TUNNELLED[tsocks]} (libtsocks always counts 127.0.0.0/8 as local)"
}

# spawn_way WAY N: N starts of exitnow under WAY's library; OUT file.
spawn_way() {
	local lib=${LIB[$1]}
	# shellcheck disable=SC2046
	timeout -k 2 60 env $(libenv "$1" 1080 | sed 's/^LD_PRELOAD=[^ ]* *//') \
	    taskset -c "$PIN_CPU" "$CONNB" spawn -n "$2" ${lib:+-p "$lib"} -T 50 "$EXITNOW" \
	    >"$work/cb.out" 2>&1
}

# slice STATUS: the p50 of the run just made goes on the list of FIG and
# WHO (SL; raw.csv has it as FIG_slice), or its complaint on their notes.
declare -A SL
slice() {
	local p50
	p50=$(kv "$work/cb.out" p50_us)
	if [ "$1" = 0 ] && [ -n "$p50" ]; then
		SL[$FIG.$WHO]="${SL[$FIG.$WHO]:-} $p50"
		record "${FIG}_slice" "$WHO" "$p50" us
	else
		note "$FIG" "$WHO" "rep $REP: $(why_failed "$work/cb.out")"
	fi
}

# The rounds of each way are cut into SLICES runs, interleaved, so that a
# burst of other work on the host weighs on every way alike; each figure is
# the median of its runs' p50s.
measure_preload() {
	local via way echo ep k key port
	local -A ports roots
	SL=()
	spawn "$work/echo.out" taskset -c "$PIN_CPU" "$CONNB" echo -T "$BUDGET_S"
	ep=$PID
	if ! wait_line "$work/echo.out" '^connbench: echo on ' "$ep"; then
		note conn_microsocks all "rep $REP: the echo target did not start"
		stop "$ep"
		return
	fi
	echo=$(sed -n 's/^connbench: echo on //p' "$work/echo.out")
	[ "$REP" = 1 ] && check_tunnels "$echo"
	for via in $PRELOAD_VIA; do
		if start "$via" "$PIN_CPU"; then
			ports[$via]=$PORT
			roots[$via]=$ROOTS
		else
			note "conn_$via" all "rep $REP: $WHY"
		fi
	done
	for ((k = 0; k < SLICES; k++)); do
		FIG=conn_direct WHO=none
		timeout -k 2 60 taskset -c "$PIN_CPU" "$CONNB" connect -t "$echo" \
		    -n $((CONN_ROUNDS / SLICES)) -T 50 >"$work/cb.out" 2>&1
		slice $?
		for via in "${!ports[@]}"; do
			for way in $WAYS; do
				[ -n "${NOT_TUNNELLED[$way]:-}" ] && continue
				[ "$way" = lockstep ] && [ "$via" != socksifyd ] && continue
				FIG=conn_$via WHO=$way
				connbench_way "$way" "${ports[$via]}" "$echo" $((CONN_ROUNDS / SLICES))
				slice $?
			done
		done
		for way in $WAYS; do
			[ "$way" != inprog ] && [ -z "${LIB[$way]}" ] && continue
			[ "$way" = lockstep ] && continue	# the same start
			FIG=spawn WHO=$way
			spawn_way "$way" $((SPAWN_RUNS / SLICES))
			slice $?
		done
	done
	for via in "${!ports[@]}"; do stop_roots "${roots[$via]}"; done
	stop "$ep"
	for via in $PRELOAD_VIA; do
		for way in $WAYS; do
			[ -n "${NOT_TUNNELLED[$way]:-}" ] && note "conn_$via" "$way" "${NOT_TUNNELLED[$way]}"
		done
	done
	note conn_microsocks lockstep "the row above: auto is lock-step to microsocks, which never says it reads a stream (tests/preload_pipeline.bats)"
	for way in $WAYS; do
		[ "$way" != inprog ] && [ "$way" != lockstep ] && [ -z "${LIB[$way]}" ] &&
		    note spawn "$way" "not installed"
	done
	for key in "${!SL[@]}"; do
		record "${key%%.*}" "${key#*.}" "$(echo "${SL[$key]}" | median)" us
	done
}

# --- the run -----------------------------------------------------------------

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: $REPS repetition(s) of ${FIG_S} s figures; servers:" >&2
for s in $SERVERS; do
	[ "$s" = direct ] && continue
	echo "  $s: ${DEAD[$s]:-port ${PORTS[$s]}, pid ${ROOTSOF[$s]}}" >&2
done
# phase NAME: prints how long the last phase took, and names the next.
phase() {
	local now
	now=$(date +%s)
	[ -z "${PHASE:-}" ] || echo "bench: rep $REP: $PHASE took $((now - PHASE_T)) s" >&2
	PHASE=$1 PHASE_T=$now
}

REP=0
REPS_DONE=0
REP_S=0
while [ "$REP" -lt "$REPS" ]; do
	REP=$((REP + 1))
	rep_t0=$(date +%s)
	if [ $((rep_t0 - T0 + REP_S)) -gt "$SOFT_S" ]; then
		echo "bench: stopping after $REPS_DONE repetition(s): another would end past ${SOFT_S} s" >&2
		note reps all "only $REPS_DONE of $REPS repetitions: another would have ended past ${SOFT_S} s"
		break
	fi
	# Memory first: the host has the fewest TIME_WAITs then.
	phase memory
	for n in $HOLD_NS; do for s in $SERVERS; do measure_hold "$s" "$n"; done; done
	phase "handshake rate"
	for w in $WORKERS; do for s in $SERVERS; do measure_rate "$s" "$w"; done; done
	phase throughput
	for c in $STREAMS; do for s in $SERVERS; do measure_stream "$s" "$c"; done; done
	phase preload
	measure_preload
	phase ''
	REPS_DONE=$REP
	REP_S=$(($(date +%s) - rep_t0))
done
for s in $SERVERS; do
	[ "$s" = direct ] || [ -z "${ROOTSOF[$s]:-}" ] && continue
	usable "$s" "the end" >/dev/null
	stop_roots "${ROOTSOF[$s]}"
done

# figure NAME TITLE: scripts/bench_NAME.sh, a figure with processes of its
# own and its own bound, stopped by its PID as the rest; its table goes into
# results.md ($OUT/NAME.md), its runs into raw.csv.
figure() {
	local rc
	echo "bench: the $1 figure (scripts/bench_$1.sh)" >&2
	rm -f "$OUT/$1.md" "$OUT/$1.csv"
	waited env BUILD="$BUILD" bash "$(dirname "$0")/bench_$1.sh" </dev/null >/dev/null
	rc=$?
	[ -s "$OUT/$1.csv" ] && cat "$OUT/$1.csv" >>"$CSV"
	[ -s "$OUT/$1.md" ] ||
	    printf '### %s\n\nNot measured: scripts/bench_%s.sh ended with status %s.\n\n' \
	    "$2" "$1" "$rc" >"$OUT/$1.md"
}
figure evloop "Event loops through a distant proxy"
figure supervisor "The seccomp supervisor (one CPU)"
figure udp "UDP through socksifyd and danted"
figure failover "Failover and scale-out"
figure rtt "Round trips through a distant proxy"
WALL=$(($(date +%s) - T0))

# --- the report ----------------------------------------------------------------

MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOADAVG"
awk -F, -v notes="$NOTES" -v reps="$REPS_DONE" -v machine="$MACHINE" -v wall="$WALL" \
    -v holdns="$HOLD_NS" -v chart="$work/chart.dat" -v chart2="$work/chart2.dat" -v evloop="$OUT/evloop.md" \
    -v supervisor="$OUT/supervisor.md" -v udp="$OUT/udp.md" -v failover="$OUT/failover.md" -v rtt="$OUT/rtt.md" \
    -f /dev/stdin "$CSV" >"$OUT/results.md" <<'AWK'
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	if (n == 0)
		return ""
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function count(list,    a) { return split(list, a, " ") }
# k: 41.2k handshakes/s; int: 3522 MB/s; dec: 1.26 KiB.
function num(v, how) {
	if (how == "k" && v >= 100000) return sprintf("%.0fk", v / 1000)
	if (how == "k" && v >= 1000) return sprintf("%.1fk", v / 1000)
	if (how == "k" || how == "int" || v >= 100) return sprintf("%.0f", v)
	return v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v)
}
# repdiffs(FIG, WAY): WAY's cost over in-program SOCKS5 in each
# repetition, the median of its slices' differences (the runs are
# interleaved, so each slice's pair saw the same host), as a list; ""
# when no repetition's slices pair up.
function repdiffs(fig, way,    r, a, b, n, i, d, list) {
	list = ""
	for (r = 1; r <= reps; r++) {
		n = split(vs[r, fig "_slice", way], a, " ")
		if (n == 0 || n != split(vs[r, fig "_slice", "inprog"], b, " "))
			continue
		d = ""
		for (i = 1; i <= n; i++)
			d = d " " (a[i] - b[i])
		list = list " " median(d)
	}
	return list
}
# lohi(LIST): how many numbers LIST has; their least and most in LO, HI.
function lohi(list,    a, n, i) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) {
		if (i == 1 || a[i] + 0 < LO) LO = a[i] + 0
		if (i == 1 || a[i] + 0 > HI) HI = a[i] + 0
	}
	return n
}
# spread(LIST): " [min, max]" of a list of two or more, else "".
function spread(list) {
	return lohi(list) < 2 ? "" : sprintf(" [%+.1f, %+.1f]", LO, HI)
}
# mspread(LIST): spread() of a list of µs, in ms: " [+0.080, +0.110]".
function mspread(list) {
	return lohi(list) < 2 ? "" : sprintf(" [%+.3f, %+.3f]", LO / 1000, HI / 1000)
}
# vspan(LIST, HOW): "lo-hi" of a list of two or more values, as num()
# writes them, else "".
function vspan(list, how) {
	return lohi(list) < 2 ? "" : num(LO, how) "-" num(HI, how)
}
# pcts(LIST): a list of ratios as a percentage, their median, and with two
# or more the least and most: "42%, 40-45".
function pcts(list,    n) {
	n = lohi(list)
	return sprintf("%.0f%%", median(list) * 100) (n < 2 ? "" : sprintf(", %.0f-%.0f", LO * 100, HI * 100))
}
# tratio(FIG, WAY, BASE): the median over the repetitions of WAY's value
# over BASE's in the same repetition ("?" when no repetition has both).
function tratio(fig, way, base,    r, list) {
	list = ""
	for (r = 1; r <= reps; r++)
		if (((r, fig, way) in v) && ((r, fig, base) in v) && v[r, fig, base] > 0)
			list = list " " v[r, fig, way] / v[r, fig, base]
	return list == "" ? "?" : sprintf("%.3f", median(list))
}
function commas(n) { return n >= 1000 ? commas(int(n / 1000)) "," sprintf("%03d", n % 1000) : n }
# The footnote mark for a cell; equal texts share a number.
function mark(fig, srv,    k, t) {
	k = fig SUBSEP srv
	if (!(k in notetext))
		return ""
	t = notetext[k]
	if (!(t in noteno)) {
		noteno[t] = ++nnotes
		noteorder[nnotes] = t
	}
	return " [" noteno[t] "]"
}
function cell(fig, srv, how,    v, r, m, few) {
	v = median(val[fig, srv])
	m = mark(fig, srv)
	if (v == "")
		return "-" m
	few = count(val[fig, srv]) < reps ? "*" : ""
	if (few != "")
		short = 1
	r = how != "dec" && srv != "direct" && rat[fig, srv] != "" ? pcts(rat[fig, srv]) : ""
	# No ratio to show the spread (direct, memory): the values' own.
	if (r == "" && vspan(val[fig, srv], how) != "")
		r = vspan(val[fig, srv], how)
	return num(v, how) few (r != "" ? " (" r ")" : "") m
}
function row(label, fig, how,    s, line) {
	line = "| " label
	for (s = 1; s <= ns; s++)
		line = line " | " cell(fig, srv[s], how)
	print line " |"
}
function latrow(label, w,    s, line, a, b) {
	line = "| " label
	for (s = 1; s <= ns; s++) {
		a = median(val["p50_w" w, srv[s]])
		b = median(val["p99_w" w, srv[s]])
		line = line " | " (a == "" ? "-" : num(a, "int") " / " num(b, "int"))
		if (a != "" && vspan(val["p50_w" w, srv[s]], "int") != "")
			line = line " (" vspan(val["p50_w" w, srv[s]], "int") " / " vspan(val["p99_w" w, srv[s]], "int") ")"
	}
	print line " |"
}
BEGIN {
	ns = split("direct socksifyd microsocks dante ssh", srv, " ")
	while ((getline line < notes) > 0) {
		split(line, p, " ")
		k = p[1] SUBSEP p[2]
		t = substr(line, length(p[1]) + length(p[2]) + 3)
		if (p[2] == "ssh")
			t = "ssh -D: " t
		else if (p[2] != "all" && p[1] != "spawn" && p[1] !~ /^conn_/)
			t = p[2] ": " t
		# (mawk makes notetext[k] before it reads the right side)
		if (k in notetext)
			notetext[k] = notetext[k] "; " t
		else
			notetext[k] = t
	}
}
NR > 1 {
	val[$2, $3] = val[$2, $3] " " $4
	v[$1, $2, $3] = $4
	vs[$1, $2, $3] = vs[$1, $2, $3] " " $4
}
END {
	# Within one repetition: ratios to direct, costs over in-program SOCKS5.
	for (k in v) {
		split(k, p, SUBSEP)
		if (p[2] ~ /^(rate|tput)_/ && p[3] != "direct" && ((p[1], p[2], "direct") in v) &&
		    v[p[1], p[2], "direct"] > 0)
			rat[p[2], p[3]] = rat[p[2], p[3]] " " v[k] / v[p[1], p[2], "direct"]
		if ((p[2] ~ /^conn_/ || p[2] == "spawn") && p[3] != "inprog" && ((p[1], p[2], "inprog") in v))
			add[p[2], p[3]] = add[p[2], p[3]] " " v[k] - v[p[1], p[2], "inprog"]
	}
	print "### socksifyd and its peers"
	print ""
	print "Medians of " reps " repetition(s); in brackets, the ratio to direct taken within each repetition: their median, then the least and most of them; where there is no ratio (direct, memory, latency), the least and most of the values themselves."
	print ""
	print "| figure | direct | socksifyd | microsocks | dante | ssh -D |"
	print "|---|---:|---:|---:|---:|---:|"
	nw = split("1 16 64", ws, " ")
	for (i = 1; i <= nw; i++) {
		row("handshakes/s, " ws[i] " worker" (ws[i] > 1 ? "s" : ""), "rate_w" ws[i], "k")
		latrow("latency p50 / p99 µs, " ws[i] " worker" (ws[i] > 1 ? "s" : ""), ws[i])
	}
	row("throughput MB/s, 1 stream", "tput_c1", "int")
	row("throughput MB/s, 8 streams", "tput_c8", "int")
	nh = split(holdns, hs, " ")
	for (i = 1; i <= nh; i++)
		row("server RSS KiB per idle relayed connection, " commas(hs[i]) " held", "rss_" hs[i], "dec")
	print ""
	print "### The preload libraries (one CPU)"
	print ""
	print "µs per connect + 16-byte echo + close (p50 of each run, median of the runs); added: over the program that speaks SOCKS5 itself, run by run (each way's runs are interleaved with in-program SOCKS5's), each repetition's median of those differences, then their median over the repetitions and in brackets the least and most of them. Process start: a dynamic program that exits at once; its added cost likewise, from the differences of the repetitions' medians."
	print ""
	print "| way | via microsocks | added | via socksifyd | added | process start ms | added ms |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	nwy = split("inprog libsocksify lockstep proxychains tsocks", way, " ")
	split("in-program SOCKS5 (start: no library)|libsocksify.so (SOCKSIFY_PIPELINE=auto)|libsocksify.so, SOCKSIFY_PIPELINE=off|proxychains4 (libproxychains.so.4)|tsocks (libtsocks.so)", wl, "|")
	nv = split("microsocks socksifyd", via, " ")
	for (i = 1; i <= nwy; i++) {
		line = "| " wl[i]
		for (j = 1; j <= nv; j++) {
			f = "conn_" via[j]
			m = mark(f, way[i]) mark(f, "all")
			x = median(val[f, way[i]])
			# the paired differences, else those of the medians
			d = way[i] == "inprog" ? "" : repdiffs(f, way[i])
			if (way[i] == "inprog")
				a = ""
			else if (d != "")
				a = median(d)
			else
				a = median(add[f, way[i]])
			line = line " | " (x == "" ? "-" : sprintf("%.1f", x)) m " | " (a == "" ? "-" : sprintf("%+.1f", a) spread(d))
		}
		m = mark("spawn", way[i])
		x = median(val["spawn", way[i]])
		a = median(add["spawn", way[i]])
		line = line " | " (x == "" ? "-" : sprintf("%.3f", x / 1000)) m " | " (a == "" ? "-" : sprintf("%+.3f", a / 1000) mspread(add["spawn", way[i]]))
		print line " |"
	}
	x = median(val["conn_direct", "none"])
	if (x != "")
		print "| no proxy at all, for scale | " sprintf("%.1f", x) " | | | | | |"
	print ""
	# Notes no printed cell carries (a short run).
	for (k in notetext) {
		split(k, p, SUBSEP)
		if (p[1] == "reps")
			mark(p[1], p[2])
	}
	for (i = 1; i <= nnotes; i++)
		print "[" i "] " noteorder[i]
	if (short)
		print "\\* fewer repetitions than the others (raw.csv has each)."
	if (nnotes > 0 || short)
		print ""
	while ((getline line < evloop) > 0)
		print line
	while ((getline line < supervisor) > 0)
		print line
	while ((getline line < udp) > 0)
		print line
	while ((getline line < failover) > 0)
		print line
	while ((getline line < rtt) > 0)
		print line
	print "Machine: " machine "; the whole run took " wall " s."
	# The chart: a line per figure, a column per server but direct.
	split("rate_w1 rate_w16 rate_w64 tput_c1 tput_c8", cf, " ")
	split("handshakes/s\\n1 worker|handshakes/s\\n16 workers|handshakes/s\\n64 workers|throughput\\n1 stream|throughput\\n8 streams", cl, "|")
	for (i = 1; i <= 5; i++) {
		line = "\"" cl[i] "\""
		for (s = 2; s <= ns; s++) {
			r = median(rat[cf[i], srv[s]])
			line = line " " (r == "" ? "?" : sprintf("%.1f", r * 100))
		}
		print line > chart
	}
	# UDP: socksifyd and dante, the other servers have no UDP ASSOCIATE.
	print "\"UDP 1 KiB\\nround trips\" " udppct("udp_rtt_1024") > chart
	print "\"UDP 1 KiB\\n64 in flight\" " udppct("udp_stream_1024") > chart
	# The second chart: the client side, as time over its baseline.
	print "\"first byte\\nno auth, on\" " tratio("rtt", "lib-on", "inprog") > chart2
	print "\"first byte\\nRFC 1929, on\" " tratio("rtt", "lib-auth-on", "inprog-auth") > chart2
	print "\"first byte\\nchain of 2, on\" " tratio("rtt", "lib-chain-on", "inprog-chain") > chart2
	print "\"first byte\\nno auth, off\" " tratio("rtt", "lib-off", "inprog") > chart2
	print "\"50 fetches\\npython\" " tratio("evloop_python", "library", "itself") > chart2
	print "\"50 fetches\\nnode\" " tratio("evloop_node", "library", "itself") > chart2
	print "\"50 fetches\\ncurl\" " tratio("evloop_curl", "library", "itself") > chart2
	print "\"connect\\nlibrary\" " tratio("conn_socksifyd", "libsocksify", "inprog") > chart2
	print "\"connect\\nlock-step\" " tratio("conn_socksifyd", "lockstep", "inprog") > chart2
	print "\"connect\\nsupervisor\" " tratio("sv_conn", "seccomp", "inprog") > chart2
	print "\"connect, dead\\nalternative\" " tratio("fo_connect", "backoff", "one") > chart2
}
function udppct(fig,    s1, s2) {
	s1 = tratio(fig, "socksifyd", "direct")
	s2 = tratio(fig, "dante", "direct")
	return (s1 == "?" ? "?" : sprintf("%.1f", s1 * 100)) " ? " (s2 == "?" ? "?" : sprintf("%.1f", s2 * 100)) " ?"
}
AWK
cat "$OUT/results.md"

# chart PNG TITLE YLABEL YMAX BASE BASELABEL: gnuplot, with what both
# charts share ahead of the plot commands on stdin.
chart() {
	{
		cat <<-EOF
		set terminal pngcairo size 1100,600 font "sans,11"
		set output "$1"
		set title "$2"
		set ylabel "$3"
		set datafile missing "?"
		set style data histograms
		set style fill solid 0.85 border -1
		set grid ytics
		set yrange [0:$4]
		set xtics nomirror
		set arrow from graph 0, first $5 to graph 1, first $5 nohead dashtype 2 lc rgb "#555555"
		set label "$6" at graph 0.01, first $5 * 1.03 left textcolor rgb "#555555"
		EOF
		cat
	} | timeout 30 gnuplot 2>"$work/gnuplot.err" ||
	    echo "bench: gnuplot failed: $(head -n 3 "$work/gnuplot.err")" >&2
}

if command -v gnuplot >/dev/null; then
	# Bars in a cluster of 4 sit at row + (k - 1.5) / 5; a label above each.
	chart "$OUT/ratios.png" \
	    "Through each SOCKS5 server, as % of a direct connection in the same repetition (median of $REPS_DONE; higher is better)" \
	    "% of direct" \
	    "$(awk '{ for (i = 2; i <= NF; i++) if ($i != "?" && $i + 0 > m) m = $i + 0 } END { print (m > 100 ? int(m / 10 + 2) * 10 : 110) }' "$work/chart.dat")" \
	    100 "direct = 100%" <<-EOF
	set style histogram clustered gap 1
	set boxwidth 0.9
	set key outside top center horizontal
	set bmargin 4
	plot "$work/chart.dat" using 2:xtic(1) title "socksifyd" lc rgb "#1b7837", \
	     "" using 3 title "microsocks" lc rgb "#4575b4", \
	     "" using 4 title "dante" lc rgb "#d73027", \
	     "" using 5 title "ssh -D" lc rgb "#fdae61", \
	     for [k=0:3] "" using (\$0 + (k - 1.5) / 5.0):(column(k + 2)):(sprintf("%.0f", column(k + 2))) \
	         with labels offset 0, 0.7 font "sans,9" notitle
	EOF
	# The client side: each figure over its baseline in the same repetition
	# (first byte: through a proxy 50 ms away, SOCKSIFY_PIPELINE on or off;
	# 50 fetches at once, event loops; connect on one CPU; see results.md).
	chart "$OUT/client.png" \
	    "The client side: time over the program speaking SOCKS5 itself (dead alternative: over one proxy); median of $REPS_DONE, lower is better" \
	    "time, x the baseline" \
	    "$(awk '{ if ($2 != "?" && $2 + 0 > m) m = $2 + 0 } END { print (m + 0.25 > 1.6 ? m + 0.25 : 1.6) }' "$work/chart2.dat")" \
	    1 "baseline = 1" <<-EOF
	set boxwidth 0.7
	set bmargin 5
	set xtics font "sans,9"
	unset key
	plot "$work/chart2.dat" using 2:xtic(1) lc rgb "#1b7837", \
	     "" using (\$0):2:(sprintf("%.2f", \$2)) with labels offset 0, 0.7 font "sans,9"
	EOF
	[ -s "$OUT/ratios.png" ] && echo "Chart: $OUT/ratios.png, $OUT/client.png; every measurement: $CSV"
else
	echo "bench: gnuplot is not installed: no chart (sh scripts/deps.sh bench)" >&2
fi
