#!/usr/bin/env bash
# make bench, the failover and scale-out figures. scripts/bench.sh calls it
# near its end and puts its tables in results.md; alone:
#
#   make all testbin build/tests/connbench build/tests/s5load &&
#       bash scripts/bench_failover.sh            (BUILD=, BENCH_QUICK=1, BENCH_REPS=N)
#
# Failover (libsocksify.so, one CPU, the last): what a dead first
# alternative adds to a connect. tests/bench/connbench connect, rounds of
# socket, connect, 16-byte echo checked byte for byte, and close, under the
# library with SOCKSIFY_PROXY
#   one       socks5h://SOCKSIFYD                 (no alternative)
#   backoff   socks5h://DEAD|socks5h://SOCKSIFYD   (DEAD refuses: nothing
#             listens there); the first round finds it dead, the rest skip
#             it while its back-off runs: the cost of asking the table
# and, for the connect that does try the dead one (the first after its
# back-off ran out), whole processes that make one such round each,
# timed by connbench spawn:
#   first-one      one round, SOCKSIFY_PROXY as one
#   first-dead     one round, as backoff: dial DEAD, refused, then SOCKSIFYD
# the difference of their p50s is the added latency of one refused
# alternative. (A silent alternative costs by design its share of
# SOCKSIFY_TIMEOUT, half of it with two: not measured.)
#
# Scale-out: handshakes/s through HAProxy (TCP mode, send-proxy-v2, round
# robin) in front of 1 and of 3 socksifyd --proxy-protocol --workers 1,
# with s5load rate (16 workers: connect, handshake, 16-byte echo, close),
# beside one socksifyd --workers 1 reached directly. On this machine's two
# CPUs HAProxy, s5load, the echo targets and the instances all share them,
# so the ratio 3:1 says how much of one instance's limit was its one
# worker, not how a fleet of machines scales.
#
# BENCH_REPS repetitions (3; 1 with BENCH_QUICK=1); the table's figures
# are medians over them. Output: Markdown on stdout and in
# $BUILD/bench/failover.md; raw rows (rep,figure,way,value,unit) in
# $BUILD/bench/failover.csv. Loopback only; every process is started here
# and stopped by its PID, also on error or past FO_BUDGET_S.
set -u
export LC_ALL=C
BUILD=${BUILD:-build}
OUT=$BUILD/bench
HERE=$(cd "$(dirname "$0")/.." && pwd)
SOCKSIFYD=$BUILD/socksifyd
LIBSOCKSIFY=$BUILD/libsocksify.so
CONNB=$BUILD/tests/connbench
LOAD=$BUILD/tests/s5load
QUICK=${BENCH_QUICK:-0}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

START_TRIES=50
PIN_CPU=$(($(nproc) - 1))
if [ "$QUICK" = 1 ]; then
	FO_REPS=${BENCH_REPS:-1}
	FO_ROUNDS=2000		# connbench rounds per way and repetition
	FO_STARTS=200		# one-round processes per way and repetition
	FO_SLICES=10		# ... in this many runs, the ways taking turns
	FO_RATE_S=1		# s5load rate seconds per way
	FO_BUDGET_S=40
else
	FO_REPS=${BENCH_REPS:-3}
	FO_ROUNDS=5000
	FO_STARTS=600
	FO_SLICES=20
	FO_RATE_S=3
	FO_BUDGET_S=120
fi

# shellcheck source=scripts/bench_lib.sh
. "$HERE/scripts/bench_lib.sh"
bench_bound bench_failover "$FO_REPS" "$FO_BUDGET_S" "$@"
bench_need bench_failover "$SOCKSIFYD" "$LIBSOCKSIFY" "$CONNB" "$LOAD"
bench_begin bench_failover "$FO_BUDGET_S"
PIN=(taskset -c "$PIN_CPU")
: >"$OUT/failover.csv"
record() { echo "$REP,$1,$2,$3,$4" >>"$OUT/failover.csv"; }

# kv FILE KEY: KEY's value on the tool's result line of FILE.
kv() { sed -n "s/^[a-z0-9]*: mode=.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

# fig FIGURE WAY: the median over the repetitions, or empty; spread FIGURE
# WAY: their least and most, LO-HI.
fig() { grep "^[0-9]*,$1,$2," "$OUT/failover.csv" | cut -d, -f4 | median; }
spread() { grep "^[0-9]*,$1,$2," "$OUT/failover.csv" | cut -d, -f4 | span; }

# rep_val FIGURE WAY: this repetition's value, or empty.
rep_val() { grep "^$REP,$1,$2," "$OUT/failover.csv" | cut -d, -f4 | tail -n 1; }

# over FIGURE A B: A's value over B's in this repetition, recorded as
# FIGURE_over A (a difference) and FIGURE_ratio A.
over() {
	local a b
	a=$(rep_val "$1" "$2") b=$(rep_val "$1" "$3")
	[ -n "$a" ] && [ -n "$b" ] || return 0
	record "$1_over" "$2" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", a - b }')" us
	record "$1_ratio" "$2" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')" x
}

# over_text FIGURE WAY: the median difference over the repetitions, their
# least and most in brackets, then the median ratio; '-' when not measured.
over_text() {
	local d r
	d=$(fig "$1_over" "$2") r=$(fig "$1_ratio" "$2")
	[ -n "$d" ] || { echo -; return; }
	grep "^[0-9]*,$1_over,$2," "$OUT/failover.csv" | cut -d, -f4 | sort -g |
	    awk -v d="$d" -v r="$r" 'NR == 1 { lo = $1 } { hi = $1 }
		END { printf "%+.1f µs [%+.1f, %+.1f] (%.2fx)", d, lo, hi, r }'
}

# --- failover ---------------------------------------------------------------

spawn_listener "$work/socksifyd.log" socksifyd "${PIN[@]}" "$SOCKSIFYD" -l 127.0.0.1:0 -q ||
    { echo "bench_failover: $WHY" >&2; exit 1; }
PROXY_PORT=$PORT SD_PID=$PID
spawn "$work/echo.log" "${PIN[@]}" "$CONNB" echo -T "$FO_BUDGET_S"
wait_line "$work/echo.log" '^connbench: echo on ' "$PID" || { echo "bench_failover: no echo target" >&2; exit 1; }
ECHO=$(sed -n 's/^connbench: echo on //p' "$work/echo.log")
free_port && DEAD=$PORT
ONE="socks5h://127.0.0.1:$PROXY_PORT"
BOTH="socks5h://127.0.0.1:$DEAD|$ONE"

# lib PROXY CMD...: CMD under the library through PROXY, nothing excluded.
lib() {
	local p=$1
	shift
	env SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG=error SOCKSIFY_PROXY="$p" "$@"
}

FO_NOTE=
for ((REP = 1; REP <= FO_REPS; REP++)); do
	for way in one backoff; do
		p=$ONE
		[ "$way" = backoff ] && p=$BOTH
		if waited lib "$p" LD_PRELOAD="$LIBSOCKSIFY" "${PIN[@]}" "$CONNB" connect -t "$ECHO" \
		    -n "$FO_ROUNDS" -T 30 >"$work/run.out" 2>&1; then
			record fo_connect "$way" "$(kv "$work/run.out" p50_us)" us
		else
			FO_NOTE="$FO_NOTE connect $way failed: $(head -c 120 "$work/run.out");"
		fi
	done
	# Process starts are noisy: the two ways take turns, FO_SLICES runs
	# each, and a repetition's figure is the median of its runs' p50s.
	for ((k = 0; k < FO_SLICES; k++)); do
		for way in first-one first-dead; do
			p=$ONE
			[ "$way" = first-dead ] && p=$BOTH
			if waited lib "$p" "${PIN[@]}" "$CONNB" spawn -T 30 -n $((FO_STARTS / FO_SLICES)) \
			    -p "$LIBSOCKSIFY" "$CONNB" connect -t "$ECHO" -n 1 >"$work/run.out" 2>&1; then
				echo "$(kv "$work/run.out" p50_us)" >>"$work/slices.$way"
			else
				FO_NOTE="$FO_NOTE spawn $way failed: $(head -c 120 "$work/run.out");"
			fi
		done
	done
	for way in first-one first-dead; do
		[ -s "$work/slices.$way" ] && record fo_first "$way" "$(median <"$work/slices.$way")" us
		rm -f "$work/slices.$way"
	done
	over fo_connect backoff one
	over fo_first first-dead first-one
done
stop "$SD_PID"

# --- scale-out ---------------------------------------------------------------

SO_NOTE=
RATE_W=16
# rate PORT: handshakes/s through 127.0.0.1:PORT, or empty.
rate() {
	waited "$LOAD" rate -x "127.0.0.1:$1" -w "$RATE_W" -d "$FO_RATE_S" -t $((FO_RATE_S + 20)) \
	    >"$work/rate.out" 2>&1 ||
	    echo " $(grep -v '^s5load: mode' "$work/rate.out" | head -n 1 | cut -c1-100);" >>"$work/notes"
	kv "$work/rate.out" rate
}

# ticks PID...: CPU time (user + system, clock ticks) the processes used so far.
ticks() {
	local p t=0 f
	for p in "$@"; do
		f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${f% *} + ${f#* }))
	done
	echo "$t"
}

# rate_cpu WAY PORT HAPID INSTPIDS...: rate through PORT, recorded as WAY,
# with the share of one CPU HAProxy and the instances used meanwhile.
rate_cpu() {
	local way=$1 port=$2 ha=$3 h0 i0 h1 i1 r hz
	shift 3
	hz=$(getconf CLK_TCK)
	h0=$(ticks "$ha") i0=$(ticks "$@")
	r=$(rate "$port")
	h1=$(ticks "$ha") i1=$(ticks "$@")
	[ -n "$r" ] || return 0
	record so_rate "$way" "$r" hs/s
	record so_cpu_ha "$way" "$(((h1 - h0) * 100 / hz / FO_RATE_S))" %
	record so_cpu_sd "$way" "$(((i1 - i0) * 100 / hz / FO_RATE_S))" %
}

# haproxy PORTS: HAProxy in front of them (send-proxy-v2); HA_PORT, HA_PID.
haproxy_start() {
	local cfg=$work/haproxy.$RANDOM.cfg p i=0
	free_port && HA_PORT=$PORT
	printf 'global\n\tmaxconn 4000\ndefaults\n\tmode tcp\n\ttimeout connect 2s\n\ttimeout client 30s\n\ttimeout server 30s\n' >"$cfg"
	printf 'frontend fe\n\tbind 127.0.0.1:%d\n\tdefault_backend be\nbackend be\n\tbalance roundrobin\n' "$HA_PORT" >>"$cfg"
	for p in "$@"; do
		printf '\tserver s%d 127.0.0.1:%d send-proxy-v2\n' "$i" "$p" >>"$cfg"
		i=$((i + 1))
	done
	spawn "$work/haproxy.log" "$HAPROXY" -db -f "$cfg"
	HA_PID=$PID
	wait_port "$HA_PORT" "$HA_PID"
}

if [ ! -x "$HAPROXY" ]; then
	SO_NOTE=" haproxy is not installed (scripts/deps.sh bench);"
else
	insts=() ipids=()
	for i in 1 2 3; do
		spawn_listener "$work/inst$i.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q --workers 1 \
		    --proxy-protocol --no-auth --allow 'to 127.0.0.0/8' || { SO_NOTE="$SO_NOTE $WHY;"; break; }
		insts+=("$PORT") ipids+=("$PID")
	done
	spawn_listener "$work/plain.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q --workers 1 ||
	    SO_NOTE="$SO_NOTE $WHY;"
	PLAIN=$PORT PPID_=$PID
	if [ "${#insts[@]}" -eq 3 ]; then
		HA1= HA3= H1= H3=
		haproxy_start "${insts[0]}" && HA1=$HA_PORT H1=$HA_PID
		haproxy_start "${insts[@]}" && HA3=$HA_PORT H3=$HA_PID
		for ((REP = 1; REP <= FO_REPS; REP++)); do
			rate_cpu direct1 "$PLAIN" "$$" "$PPID_"
			rate_cpu haproxy1 "$HA1" "$H1" "${ipids[0]}"
			rate_cpu haproxy3 "$HA3" "$H3" "${ipids[@]}"
			a=$(rep_val so_rate haproxy3) b=$(rep_val so_rate haproxy1)
			[ -n "$a" ] && [ -n "$b" ] &&
			    record so_ratio haproxy3 "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')" x
		done
		stop "$H1" "$H3"
	fi
fi

# --- the tables --------------------------------------------------------------

{
	one=$(fig fo_connect one) bo=$(fig fo_connect backoff)
	f1=$(fig fo_first first-one) fd=$(fig fo_first first-dead)
	echo "### Failover: a dead first alternative"
	echo
	echo "One CPU, loopback, tests/bench/connbench under libsocksify.so; p50 µs, median of $FO_REPS repetition(s), with their least and most; over: the difference within each repetition, their median and in brackets the least and most of them, then the median ratio. DEAD refuses (nothing listens on its port)."
	echo
	echo "| way | µs | spread | over one proxy |"
	echo "|---|---|---|---|"
	printf '| connect + echo + close, `-x socks5h://P` (%s rounds) | %s | %s | |\n' "$FO_ROUNDS" "${one:--}" "$(spread fo_connect one)"
	printf '| the same, `-x '"'"'socks5h://DEAD\\|socks5h://P'"'"'`, DEAD in back-off | %s | %s | %s |\n' "${bo:--}" \
	    "$(spread fo_connect backoff)" "$(over_text fo_connect backoff)"
	printf '| a process making one round, `-x socks5h://P` (%s starts) | %s | %s | |\n' "$FO_STARTS" "${f1:--}" "$(spread fo_first first-one)"
	printf '| the same, `DEAD\\|P`: its one connect dials DEAD first | %s | %s | %s |\n' "${fd:--}" \
	    "$(spread fo_first first-dead)" "$(over_text fo_first first-dead)"
	echo
	[ -z "$FO_NOTE" ] || echo "Not measured:$FO_NOTE"
	echo
	d1=$(fig so_rate direct1) h1=$(fig so_rate haproxy1) h3=$(fig so_rate haproxy3)
	echo "### Scale-out behind HAProxy"
	echo
	echo "s5load rate, $RATE_W workers, ${FO_RATE_S} s a way, handshakes/s (connect, SOCKS5 handshake, 16-byte echo, close), median of $FO_REPS repetition(s) with their least and most; the ratio is taken within each repetition (median, then least and most). Each socksifyd has one worker. Both CPUs are shared by HAProxy, s5load, the echo targets and the instances."
	echo
	echo "| way | handshakes/s | spread | over HAProxy + 1 | HAProxy's CPU | socksifyd's CPU |"
	echo "|---|---|---|---|---|---|"
	printf '| one socksifyd, reached directly | %s | %s | | | %s%% |\n' "${d1:--}" "$(spread so_rate direct1)" "$(fig so_cpu_sd direct1)"
	printf '| HAProxy (send-proxy-v2) + 1 socksifyd --proxy-protocol | %s | %s | 1.00x | %s%% | %s%% |\n' "${h1:--}" \
	    "$(spread so_rate haproxy1)" "$(fig so_cpu_ha haproxy1)" "$(fig so_cpu_sd haproxy1)"
	r3=$(fig so_ratio haproxy3)
	printf '| HAProxy + 3 socksifyd | %s | %s | %s | %s%% | %s%% |\n' "${h3:--}" "$(spread so_rate haproxy3)" \
	    "${r3:+$(printf '%.2fx (%s)' "$r3" "$(spread so_ratio haproxy3)")}" \
	    "$(fig so_cpu_ha haproxy3)" "$(fig so_cpu_sd haproxy3)"
	echo
	echo "CPU: the share of one CPU used during the run, all threads (the machine has $(nproc)). $(awk -v c="$(fig so_cpu_sd haproxy1)" -v n="$(nproc)" 'BEGIN { if (c == "") exit; if (c + 0 < 90) printf "Behind HAProxy one instance with one worker used %s%% of a CPU, short of the whole one it may take: the instances are not what limits this run; HAProxy, s5load, the echo targets and the kernel loopback path share the %d CPUs. More instances add throughput where they have CPUs of their own (other machines), which one host cannot show.", c, n; else printf "Behind HAProxy one instance used a whole CPU (%s%%): its worker was the limit.", c }')"
	echo
	SO_NOTE="$SO_NOTE$(cat "$work/notes" 2>/dev/null | sort -u | tr -d '\n')"
	[ -z "$SO_NOTE" ] || echo "Not measured or with errors:$SO_NOTE"
	echo
} | tee "$OUT/failover.md"
