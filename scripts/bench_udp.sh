#!/usr/bin/env bash
# make bench, the UDP figure: round trips per second and datagram
# throughput through UDP ASSOCIATE (RFC 1928 §6, §7), socksifyd beside
# Debian's danted, which relays UDP too, beside a direct path, and beside a
# bare forwarder (tests/bench/udpfwd: no SOCKS, two threads each a blocking
# recv and send), the least any process in the middle costs.
# scripts/bench.sh calls it near its end and puts its table in results.md;
# alone:
#
#   make all build/tests/udpbench && bash scripts/bench_udp.sh
#                                           (BUILD=, BENCH_QUICK=1, BENCH_REPS=N)
#
# Loopback only: socksifyd on 127.0.0.1:0, danted on a free port of
# 127.0.0.1 (bench_lib.sh's start_dante: UDP ASSOCIATE allowed), and
# tests/bench/udpbench echo, a UDP echo target on 127.0.0.1. Each way is
# tests/bench/udpbench speaking SOCKS5 itself (-x: the UDP ASSOCIATE, then
# every datagram behind its §7 header to the relay) or sending straight to
# the target (--direct); every echo is checked byte for byte, and a run with
# a wrong echo or more than UDP_MAX_LOSS_PCT of its datagrams lost fails:
#   rtt      one 1 KiB datagram out, its echo awaited: round trips/s, p50/p99
#   stream   SIZE-byte datagrams, WINDOW in flight: MB/s (10^6) of echoed
#            payload and datagrams/s, for 64 B, 1 KiB and 8 KiB
# The windows keep every datagram in flight within a relay's default socket
# buffer (net.core.rmem_default, 208 KiB: a 1 KiB datagram takes about 2.3
# KiB of it, an 8 KiB one about 17 KiB), so a loss is the relay's, not the
# benchmark's choice of window.
#
# Within each repetition every way runs back to back for each figure, in
# UDP_SLICES interleaved runs of UDP_FIG_S seconds, so that a burst of
# other work on the host, or where the scheduler puts the processes (a
# round trip between CPUs costs several times one on a CPU), weighs on
# every way alike; a repetition's figure is the median of its runs, and
# ratios to direct are taken within the repetition. The table has the
# median of the repetitions, and of the ratios.
# Output: Markdown on stdout and in $BUILD/bench/udp.md; raw.csv rows
# (rep,figure,way,value,unit) in $BUILD/bench/udp.csv.
#
# BENCH_REPS repetitions (3; 1 with BENCH_QUICK=1); another starts only if
# the last one's time still fits before UDP_SOFT_S. Every process is started
# here and stopped by its PID, also on error or past UDP_BUDGET_S.
set -u
# awk's numbers with a decimal point, whatever the locale.
export LC_ALL=C
BUILD=${BUILD:-build}
OUT=$BUILD/bench
HERE=$(cd "$(dirname "$0")/.." && pwd)
SOCKSIFYD=$BUILD/socksifyd
UDPB=$BUILD/tests/udpbench
UDPFWD=$BUILD/tests/udpfwd
QUICK=${BENCH_QUICK:-0}

START_TRIES=50		# polls of 0.1 s for a server to listen
UDP_GOAL_PCT=50		# the issue's goal for socksifyd, 1 KiB datagrams, % of direct
UDP_MAX_LOSS_PCT=1	# a run that loses more of its datagrams fails
if [ "$QUICK" = 1 ]; then
	UDP_REPS=${BENCH_REPS:-1}
	UDP_FIG_S=1	# seconds a run
	UDP_SLICES=1	# runs a way, figure and repetition
	UDP_SOFT_S=20	# a repetition starts only if the last one's time fits before this
	UDP_BUDGET_S=45	# the whole figure's bound
else
	UDP_REPS=${BENCH_REPS:-3}
	UDP_FIG_S=1
	UDP_SLICES=2
	UDP_SOFT_S=130
	UDP_BUDGET_S=180
fi

# shellcheck source=scripts/bench_lib.sh
. "$HERE/scripts/bench_lib.sh"
bench_bound bench_udp "$UDP_REPS" "$UDP_BUDGET_S" "$@"

for f in "$SOCKSIFYD" "$UDPB" "$UDPFWD"; do
	[ -e "$f" ] || { echo "bench_udp: $f is missing: run make bench" >&2; exit 2; }
done

# From bench_lib.sh, sourced above: bench_begin, alive, stop, stop_roots,
# cleanup, spawn, waited, wait_line,
# spawn_listener, start_dante, median.
bench_begin bench_udp "$UDP_BUDGET_S"

TITLE="UDP through socksifyd and danted"
fail_setup() {
	echo "bench_udp: $1" >&2
	printf '### %s\n\nNot measured: %s.\n\n' "$TITLE" "$1" | tee "$OUT/udp.md"
	: >"$OUT/udp.csv"
	exit 1
}

# --- the setup ---------------------------------------------------------------

spawn "$work/echo.log" "$UDPB" echo -T "$UDP_BUDGET_S"
wait_line "$work/echo.log" '^udpbench: echo on ' "$PID" ||
    fail_setup "the echo target did not start: $(head -c 200 "$work/echo.log")"
ECHO=$(sed -n 's/^udpbench: echo on //p' "$work/echo.log")

WAYS="direct bare socksifyd dante"
declare -A VIA TO ROOTSOF DOWN NOTE
# The yardstick: udpbench --direct to the forwarder, which forwards to ECHO.
spawn "$work/fwd.log" "$UDPFWD" -t "$ECHO" -T "$UDP_BUDGET_S"
if wait_line "$work/fwd.log" '^udpfwd: on ' "$PID"; then
	VIA[bare]="--direct"
	TO[bare]=$(sed -n 's/^udpfwd: on //p' "$work/fwd.log")
	ROOTSOF[bare]=$PID
else
	DOWN[bare]="not run: $(head -c 200 "$work/fwd.log")"
fi
spawn_listener "$work/socksifyd.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q ||
    fail_setup "$WHY"
VIA[socksifyd]="-x 127.0.0.1:$PORT"
ROOTSOF[socksifyd]=$PID
# danted's outgoing UDP socket binds an address of its own, as in bench.sh.
DANTE_EXT=127.0.0.5
if start_dante ''; then
	VIA[dante]="-x 127.0.0.1:$PORT"
	ROOTSOF[dante]=$ROOTS
else
	stop_roots "${ROOTS:-}"
	DOWN[dante]="not run: $WHY"
fi
VIA[direct]=--direct

# FIGURES: name, udpbench mode, datagram size, window.
FIGURES="rtt_1024:rtt:1024:1 stream_1024:stream:1024:64 stream_1024b:stream:1024:256 stream_64:stream:64:64 stream_8192:stream:8192:8"

# --- the run -----------------------------------------------------------------

: >"$OUT/udp.csv"
record() { echo "$REP,$1,$2,$3,$4" >>"$OUT/udp.csv"; }
# kv KEY: KEY's value on udpbench's result line.  why_failed: its complaint.
kv() { sed -n "s/^udpbench: mode=.* $1=\([^ ]*\).*/\1/p" "$work/run.out" | tail -n 1; }
why_failed() { grep -v '^udpbench: mode=' "$work/run.out" | head -n 1 | cut -c1-120; }
# addnote KEY TEXT: on the cell's footnote, once.
addnote() { [[ "${NOTE[$1]:-}" == *"$2"* ]] || NOTE[$1]="${NOTE[$1]:+${NOTE[$1]}; }$2"; }

# measure FIG MODE SIZE WINDOW WAY: one run; its figures join its runs' in SL.
declare -A SL
measure() {
	local fig=$1 mode=$2 size=$3 win=$4 way=$5 rc lost
	if [ -n "${DOWN[$way]:-}" ]; then
		addnote "$fig.$way" "${DOWN[$way]}"
		return
	fi
	# shellcheck disable=SC2086	# VIA: the words of the way
	waited timeout -k 2 $((UDP_FIG_S + 10)) "$UDPB" "$mode" -t "${TO[$way]:-$ECHO}" ${VIA[$way]} \
	    -s "$size" -w "$win" -d "$UDP_FIG_S" --max-loss "$UDP_MAX_LOSS_PCT" \
	    -T $((UDP_FIG_S + 8)) </dev/null >"$work/run.out" 2>&1
	rc=$?
	lost=$(kv lost)
	if [ "$rc" = 0 ]; then
		for key in rate mb_s p50_us p99_us; do
			SL[$fig.$way.$key]="${SL[$fig.$way.$key]:-} $(kv "$key")"
		done
		[ "${lost:-0}" = 0 ] || addnote "$fig.$way" "rep $REP: $lost of $(kv sent) datagrams lost"
	else
		addnote "$fig.$way" "rep $REP: $(why_failed)"
		echo "bench_udp: rep $REP: $fig $way: failed: $(why_failed)" >&2
	fi
	# A server that ended is not asked again.
	if [ "$way" != direct ] && ! alive "${ROOTSOF[$way]%% *}"; then
		DOWN[$way]="died during $fig in rep $REP; not measured from then on"
		addnote "$fig.$way" "${DOWN[$way]}"
	fi
}

REP=0
REP_S=0
REPS_DONE=0
while [ "$REP" -lt "$UDP_REPS" ]; do
	rep_t0=$(date +%s)
	if [ "$REP" -gt 0 ] && [ $((rep_t0 - T0 + REP_S)) -gt "$UDP_SOFT_S" ]; then
		SHORT="only $REPS_DONE of $UDP_REPS repetitions: another would have ended past ${UDP_SOFT_S} s"
		break
	fi
	REP=$((REP + 1))
	for f in $FIGURES; do
		IFS=: read -r fig mode size win <<<"$f"
		SL=()
		for ((k = 0; k < UDP_SLICES; k++)); do
			for way in $WAYS; do measure "$fig" "$mode" "$size" "$win" "$way"; done
		done
		for way in $WAYS; do
			[ -n "${SL[$fig.$way.rate]:-}" ] || continue
			record "udp_$fig" "$way" "$(median <<<"${SL[$fig.$way.rate]}")" datagrams/s
			record "udp_${fig}_mb" "$way" "$(median <<<"${SL[$fig.$way.mb_s]}")" MB/s
			record "udp_${fig}_p50" "$way" "$(median <<<"${SL[$fig.$way.p50_us]}")" us
			record "udp_${fig}_p99" "$way" "$(median <<<"${SL[$fig.$way.p99_us]}")" us
		done
	done
	REPS_DONE=$REP
	REP_S=$(($(date +%s) - rep_t0))
	echo "bench_udp: rep $REP took $REP_S s" >&2
done
for way in $WAYS; do
	[ "$way" = direct ] || [ -n "${DOWN[$way]:-}" ] || stop_roots "${ROOTSOF[$way]}"
done
WALL=$(($(date +%s) - T0))

# --- the report ----------------------------------------------------------------

# vals FIG WAY: its values, one a repetition; fig: their median, or empty.
vals() { awk -F, -v f="udp_$1" -v w="$2" '$2 == f && $3 == w { print $4 }' "$OUT/udp.csv"; }
fig() { vals "$1" "$2" | median; }
# vspan FIG WAY FORMAT [SCALE]: "lo-hi" of two or more values over SCALE in
# FORMAT, else nothing.
vspan() {
	vals "$1" "$2" | sort -g | awk -v f="$3" -v k="${4:-1}" \
	    'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf f "-" f, lo / k, hi / k }'
}
# ratios FIG WAY: WAY / direct within each repetition, one a line.
ratios() {
	awk -F, -v f="udp_$1" -v w="$2" '
		$2 == f { v[$1, $3] = $4; reps[$1] = 1 }
		END { for (r in reps) if ((r, w) in v && (r, "direct") in v && v[r, "direct"] > 0) print v[r, w] / v[r, "direct"] }' \
	    "$OUT/udp.csv"
}
# pcts FIG WAY: "48%, 45-50": the median of WAY / direct within each
# repetition in %, then (two or more) the least and most; empty for none.
pcts() {
	local list m
	list=$(ratios "$1" "$2" | sort -g)
	m=$(median <<<"$list")
	[ -n "$m" ] || return 0
	awk -v m="$m" -v lo="$(head -n 1 <<<"$list")" -v hi="$(tail -n 1 <<<"$list")" -v n="$(wc -l <<<"$list")" \
	    'BEGIN { printf "%.0f%%", m * 100; if (n > 1) printf ", %.0f-%.0f", lo * 100, hi * 100 }'
}
# footmark TEXT: " [N]", the number of TEXT's footnote; $work/foot holds
# them in order (cells are made in subshells).
: >"$work/foot"
footmark() {
	local n
	n=$(grep -nxF -- "$1" "$work/foot" | cut -d: -f1)
	[ -n "$n" ] || { echo "$1" >>"$work/foot"; n=$(wc -l <"$work/foot"); }
	printf ' [%s]' "$n"
}
# cell FIG WAY FORMAT [SCALE]: the figure over SCALE in FORMAT, the ratio
# to direct in brackets, a footnote mark; "-" for none.
cell() {
	local v r mark='' key=${1%_mb}.$2
	v=$(fig "$1" "$2")
	[ "$2" = direct ] && r='' || r=$(pcts "$1" "$2")
	[ -z "${NOTE[$key]:-}" ] || mark=$(footmark "${NOTE[$key]}")
	[ -n "$v" ] || { printf -- '-%s' "$mark"; return; }
	# direct has no ratio: the spread of its own values
	[ "$2" = direct ] && r=$(vspan "$1" "$2" "$3" "${4:-1}")
	awk -v v="$v" -v r="$r" -v f="$3" -v k="${4:-1}" -v m="$mark" \
	    'BEGIN { printf f "%s%s", v / k, (r == "" ? "" : " (" r ")"), m }'
}
# row LABEL FIG FORMAT [SCALE]: a table row, a cell a way.
row() {
	local line="| $1" way
	for way in $WAYS; do line="$line | $(cell "$2" "$way" "$3" "${4:-}")"; done
	echo "$line |"
}
# latency FIG: "p50 / p99" a way.
latency() {
	local line="| latency p50 / p99 µs, one at a time" way a b
	for way in $WAYS; do
		a=$(fig "$1_p50" "$way")
		b=$(fig "$1_p99" "$way")
		line="$line | $( [ -n "$a" ] && awk -v a="$a" -v b="$b" -v sa="$(vspan "$1_p50" "$way" %.0f)" \
		    -v sb="$(vspan "$1_p99" "$way" %.0f)" \
		    'BEGIN { printf "%.0f / %.0f", a, b; if (sa != "") printf " (%s / %s)", sa, sb }' || echo -)"
	done
	echo "$line |"
}
# goal FIG WAY: WAY's median ratio to direct in %, with its spread, or
# "not measured".
goal() {
	local r
	r=$(pcts "$1" "$2")
	case $r in
	'') printf 'not measured' ;;
	*,*) printf '%s (%s over the repetitions)' "${r%%,*}" "${r#*, }" ;;
	*) printf '%s' "$r" ;;
	esac
}

{
	echo "### $TITLE"
	echo
	echo "tests/bench/udpbench through UDP ASSOCIATE on loopback (speaking SOCKS5 itself; direct: to the echo target itself; bare: to tests/bench/udpfwd, a forwarder with no SOCKS and two threads each a blocking recv and send, which forwards to the echo target: the least a process in the middle costs), every echo checked byte for byte; $UDP_SLICES interleaved run(s) of ${UDP_FIG_S} s a way, figure and repetition, the median of the runs, then of $REPS_DONE repetition(s); in brackets, the ratio to direct taken within each repetition: their median, then the least and most of them; for direct and the latencies, the least and most of the values themselves."
	echo
	echo "| figure | direct | bare forwarder | socksifyd | dante |"
	echo "|---|---:|---:|---:|---:|"
	row "round trips/s, 1 KiB datagrams, one at a time" rtt_1024 "%.1fk" 1000
	latency rtt_1024
	row "MB/s, 1 KiB datagrams, 64 in flight" stream_1024_mb "%.1f"
	row "k datagrams/s, 1 KiB, 64 in flight" stream_1024 "%.1fk" 1000
	row "k datagrams/s, 1 KiB, 256 in flight" stream_1024b "%.1fk" 1000
	row "MB/s, 64 B datagrams, 64 in flight" stream_64_mb "%.2f"
	row "k datagrams/s, 64 B, 64 in flight" stream_64 "%.1fk" 1000
	row "MB/s, 8 KiB datagrams, 8 in flight" stream_8192_mb "%.0f"
	row "k datagrams/s, 8 KiB, 8 in flight" stream_8192 "%.1fk" 1000
	echo
	echo "Against the issue's goal (1 KiB datagrams, at least ${UDP_GOAL_PCT}% of direct): socksifyd $(goal rtt_1024 socksifyd) of direct in round trips, $(goal stream_1024 socksifyd) in throughput; the bare forwarder $(goal rtt_1024 bare) and $(goal stream_1024 bare)."
	echo
	if [ -s "$work/foot" ] || [ -n "${SHORT:-}" ]; then
		awk '{ print "[" NR "] " $0 }' "$work/foot"
		[ -z "${SHORT:-}" ] || echo "Note: $SHORT."
		echo
	fi
	echo "The UDP figure took $WALL s."
	echo
} >"$OUT/udp.md"
cat "$OUT/udp.md"
