#!/usr/bin/env bash
# make bench, the supervisor figure: what the seccomp supervisor costs a
# tunnelled connect and a process start, beside the library, a program that
# speaks SOCKS5 itself and a direct connection. scripts/bench.sh calls it
# near its end and puts its table in results.md; alone:
#
#   make all testbin build/tests/connbench build/tests/exitnow &&
#       bash scripts/bench_supervisor.sh          (BUILD=, BENCH_QUICK=1, BENCH_REPS=N)
#
# Loopback only, on one CPU (the last), as the preload figures of bench.sh:
# socksifyd on 127.0.0.1:0 and connbench's echo target; every program below
# and the launcher it runs under are pinned to that CPU too.
#
# Connect: tests/bench/connbench connect, rounds of socket, connect, a
# 16-byte echo checked byte for byte, and close, in these ways:
#   direct    a plain connect() to the target, no proxy (for scale)
#   inprog    connbench speaks SOCKS5 itself (-x)
#   preload   socksify --mode preload: libsocksify.so tunnels a plain connect()
#   auto      socksify --mode auto, the same dynamic connbench: the library,
#             under the supervisor's filter (its marked calls pass it)
#   seccomp   socksify --mode seccomp, the same dynamic connbench, no library:
#             the supervisor tunnels every connect()
#   static    socksify --mode auto, connbench linked with cc -static (built
#             here): what the library cannot reach, so the supervisor
# Every socksify way runs with -x socks5h://(socksifyd) -e none, and must
# fail while its proxy is down first: one that reaches the target all the
# same connected directly and is reported, not timed.
#
# Process start: tests/bench/connbench spawn times whole runs of
#   socksify -x socks5h://127.0.0.1:PORT --mode MODE tests/bench/exitnow
# for MODE preload, auto (the filter and the supervising parent) and
# seccomp, beside exitnow alone (for scale). With -x no server is started.
#
# The rounds and starts of each way are cut into SV_SLICES runs,
# interleaved, so that a burst of other work weighs on every way alike; a
# repetition's figure is the median of its runs' p50s, the table's the
# median of the repetitions'; "over" (a way over the library, or over
# in-program SOCKS5) is the difference and the ratio taken within each
# repetition, then their medians.
# Output: Markdown on stdout and in $BUILD/bench/supervisor.md; raw.csv rows
# (rep,figure,way,value,unit) in $BUILD/bench/supervisor.csv.
#
# BENCH_REPS repetitions (3; 1 with BENCH_QUICK=1); another starts only if
# the last one's time still fits before SV_SOFT_S. Every process is started
# here and stopped by its PID, also on error or past SV_BUDGET_S.
set -u
# awk's numbers with a decimal point, whatever the locale.
export LC_ALL=C
BUILD=${BUILD:-build}
OUT=$BUILD/bench
HERE=$(cd "$(dirname "$0")/.." && pwd)
SOCKSIFY=$BUILD/socksify
SOCKSIFYD=$BUILD/socksifyd
LIBSOCKSIFY=$BUILD/libsocksify.so
CONNB=$BUILD/tests/connbench
EXITNOW=$BUILD/tests/exitnow
QUICK=${BENCH_QUICK:-0}

START_TRIES=50		# polls of 0.1 s for a server to listen
PIN_CPU=$(($(nproc) - 1))	# every process of the figure runs on this one CPU
SV_CONN_TARGET_US=30	# the issue's bound on the supervisor over the library
SV_START_TARGET_MS=1	# ... and on auto over preload, per start
if [ "$QUICK" = 1 ]; then
	SV_REPS=${BENCH_REPS:-1}
	SV_ROUNDS=2400	# connbench rounds per way and repetition
	SV_STARTS=240	# starts per way and repetition
	SV_SLICES=3
	SV_SOFT_S=10	# a repetition starts only if the last one's time fits before this
	SV_RUN_S=20	# one run of one way
	SV_BUDGET_S=25	# the whole figure's bound
else
	SV_REPS=${BENCH_REPS:-3}
	SV_ROUNDS=4000
	SV_STARTS=400
	SV_SLICES=5
	SV_SOFT_S=45
	SV_RUN_S=30
	SV_BUDGET_S=80
fi

# shellcheck source=scripts/bench_lib.sh
. "$HERE/scripts/bench_lib.sh"
bench_bound bench_supervisor "$SV_REPS" "$SV_BUDGET_S" "$@"

for f in "$SOCKSIFY" "$SOCKSIFYD" "$LIBSOCKSIFY" "$CONNB" "$EXITNOW"; do
	[ -e "$f" ] || { echo "bench_supervisor: $f is missing: run make bench" >&2; exit 2; }
done
# The caller's own settings would change what the launcher does.
unset LD_PRELOAD SOCKSIFY_PROXY SOCKSIFY_EXCLUDE SOCKSIFY_LOG SOCKSIFY_LOG_FILE \
    SOCKSIFY_TIMEOUT SOCKSIFY_MODE SOCKSIFY_LIBRARY SOCKSIFY_SERVER SOCKSIFY_IOURING \
    SOCKSIFY_NAMES SOCKSIFY_UDP

# --- processes ---------------------------------------------------------------

# From bench_lib.sh, sourced above: bench_begin, alive, stop, stop_roots,
# cleanup, spawn, waited, wait_line,
# spawn_listener, median.
bench_begin bench_supervisor "$SV_BUDGET_S"

PIN=(taskset -c "$PIN_CPU")

fail_setup() {
	echo "bench_supervisor: $1" >&2
	printf '### The seccomp supervisor (one CPU)\n\nNot measured: %s.\n\n' "$1" | tee "$OUT/supervisor.md"
	: >"$OUT/supervisor.csv"
	exit 1
}

# --- the setup ---------------------------------------------------------------

spawn_listener "$work/socksifyd.log" socksifyd "${PIN[@]}" "$SOCKSIFYD" -l 127.0.0.1:0 -q ||
    fail_setup "$WHY"
PROXY_PORT=$PORT
spawn "$work/echo.log" "${PIN[@]}" "$CONNB" echo -T "$SV_BUDGET_S"
wait_line "$work/echo.log" '^connbench: echo on ' "$PID" ||
    fail_setup "the echo target did not start: $(head -c 200 "$work/echo.log")"
ECHO=$(sed -n 's/^connbench: echo on //p' "$work/echo.log")

WAYS="direct inprog preload auto seccomp static"
STARTS="bare preload auto seccomp"
declare -A LABEL=(
	[direct]="no proxy at all, for scale"
	[inprog]="in-program SOCKS5 (connbench -x)"
	[preload]="socksify --mode preload: libsocksify.so"
	[auto]="socksify --mode auto, dynamic: the library under the filter"
	[seccomp]="socksify --mode seccomp, dynamic: the supervisor"
	[static]="socksify --mode auto, static (cc -static): the supervisor"
)
declare -A SLABEL=(
	[bare]="exitnow alone, for scale"
	[preload]="socksify --mode preload"
	[auto]="socksify --mode auto (filter + supervising parent)"
	[seccomp]="socksify --mode seccomp"
)
declare -A SKIP NOTE

# The static connbench: the same source and shared/ objects, linked with
# -static, so that no ld.so (and no LD_PRELOAD) is there.
CONNB_STATIC=$work/connbench-static
if ! "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -I"$HERE/shared" -static -o "$CONNB_STATIC" \
    "$HERE/tests/bench/connbench.c" "$BUILD"/obj/shared/*.o >"$work/cc.out" 2>&1; then
	SKIP[static]="not measured: cc -static failed: $(head -n 1 "$work/cc.out" | cut -c1-100)"
fi

# connbench_cmd WAY PROXYPORT: the words that run connbench connect the WAY.
connbench_cmd() {
	local sx=("${PIN[@]}" "$SOCKSIFY" -x "socks5h://127.0.0.1:$2" -e none --mode)
	case $1 in
	direct) CMD=("${PIN[@]}" "$CONNB" connect -t "$ECHO") ;;
	inprog) CMD=("${PIN[@]}" "$CONNB" connect -t "$ECHO" -x "127.0.0.1:$2") ;;
	preload | auto | seccomp) CMD=("${sx[@]}" "$1" "$CONNB" connect -t "$ECHO") ;;
	static) CMD=("${sx[@]}" auto "$CONNB_STATIC" connect -t "$ECHO") ;;
	esac
}

# start_cmd WAY: the words that run WAY's starts through connbench spawn.
start_cmd() {
	CMD=("${PIN[@]}" "$CONNB" spawn -T "$SV_RUN_S" -n $((SV_STARTS / SV_SLICES)))
	if [ "$1" = bare ]; then
		CMD+=("$EXITNOW")
	else
		CMD+=("$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" --mode "$1" "$EXITNOW")
	fi
}

# bounded CMD...: CMD under timeout(1), stdout and stderr in $work/run.out.
bounded() {
	waited timeout -k 2 $((SV_RUN_S + 5)) "$@" </dev/null >"$work/run.out" 2>&1
}

# kv KEY: KEY's value on the tool's result line.  why_failed: its complaint.
kv() { sed -n "s/^[a-z]*: mode=.* $1=\([^ ]*\).*/\1/p" "$work/run.out" | tail -n 1; }
why_failed() { grep -v ': mode=' "$work/run.out" | head -n 1 | cut -c1-120; }

# addnote KEY WHY: one line, "REP<tab>WHY", on the cell's footnote.
addnote() { NOTE[$1]="${NOTE[$1]:-}$REP	$2
"; }

# Each socksify way must fail while its proxy is down, and fail in the
# connect: else it connected directly (or could not run at all).
check_tunnels() {
	local way port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
	done
	for way in preload auto seccomp static; do
		[ -n "${SKIP[$way]:-}" ] && continue
		connbench_cmd "$way" "$port"
		if bounded "${CMD[@]}" -n 1 -T 10; then
			SKIP[$way]="not measured: with its proxy down it still reached the target, so it connected directly"
		elif ! grep -q '^connbench: connect: ' "$work/run.out"; then
			SKIP[$way]="not measured: it could not run: $(why_failed)"
		fi
	done
}

# --- the run -----------------------------------------------------------------

: >"$OUT/supervisor.csv"
record() { echo "$REP,$1,$2,$3,$4" >>"$OUT/supervisor.csv"; }
declare -A SL RES

# slice FIG WAY: the p50 of the run just made (status $1) joins the run list
# of FIG and WAY, or its complaint goes on their notes.
slice() {
	local rc=$1 fig=$2 way=$3 p50
	p50=$(kv p50_us)
	if [ "$rc" = 0 ] && [ -n "$p50" ]; then
		SL[$fig.$way]="${SL[$fig.$way]:-} $p50"
		record "sv_${fig}_slice" "$way" "$p50" us
	else
		addnote "$fig.$way" "$(why_failed)"
		echo "bench_supervisor: rep $REP: $fig $way: failed: $(why_failed)" >&2
	fi
}

REP=0
REP_S=0
REPS_DONE=0
while [ "$REP" -lt "$SV_REPS" ]; do
	rep_t0=$(date +%s)
	if [ "$REP" -gt 0 ] && [ $((rep_t0 - T0 + REP_S)) -gt "$SV_SOFT_S" ]; then
		SHORT="only $REPS_DONE of $SV_REPS repetitions: another would have ended past ${SV_SOFT_S} s"
		break
	fi
	REP=$((REP + 1))
	[ "$REP" = 1 ] && check_tunnels
	SL=()
	for ((k = 0; k < SV_SLICES; k++)); do
		for way in $WAYS; do
			[ -n "${SKIP[$way]:-}" ] && continue
			connbench_cmd "$way" "$PROXY_PORT"
			bounded "${CMD[@]}" -n $((SV_ROUNDS / SV_SLICES)) -T "$SV_RUN_S"
			slice $? conn "$way"
		done
		for way in $STARTS; do
			start_cmd "$way"
			bounded "${CMD[@]}"
			slice $? start "$way"
		done
	done
	for key in "${!SL[@]}"; do
		v=$(median <<<"${SL[$key]}")
		RES[$key]="${RES[$key]:-} $v"
		record "sv_${key%%.*}" "${key#*.}" "$v" us
		echo "bench_supervisor: rep $REP: ${key%%.*} ${key#*.}: $v us" >&2
	done
	REPS_DONE=$REP
	REP_S=$(($(date +%s) - rep_t0))
done
WALL=$(($(date +%s) - T0))

# --- the report ----------------------------------------------------------------

# each FIG WAY BASE [ratio]: WAY - BASE (or WAY / BASE) within each
# repetition, one a line, least first.
each() {
	grep "^[0-9]*,sv_$1,\($2\|$3\)," "$OUT/supervisor.csv" | awk -F, -v w="$2" -v b="$3" -v op="${4:-}" '
		{ v[$1, $3] = $4; reps[$1] = 1 }
		END {
			for (r in reps)
				if ((r, w) in v && (r, b) in v)
					print op == "ratio" ? v[r, w] / v[r, b] : v[r, w] - v[r, b]
		}' | sort -g
}
# added FIG WAY BASE [ratio]: the median of each's; empty when no
# repetition has both.
added() { each "$@" | median; }
# over FIG WAY BASE FORMAT [SCALE]: "+D [LO, HI] (Rx)", the difference over
# SCALE in FORMAT with the least and most of the repetitions' (two or
# more), and the ratio; or "-".
over() {
	local d r list
	list=$(each "$1" "$2" "$3")
	d=$(median <<<"$list")
	r=$(added "$1" "$2" "$3" ratio)
	[ -n "$d" ] || { printf -- -; return; }
	awk -v d="$d" -v r="$r" -v f="$4" -v k="${5:-1}" -v n="$(wc -l <<<"$list")" \
	    -v lo="$(head -n 1 <<<"$list")" -v hi="$(tail -n 1 <<<"$list")" \
	    'BEGIN { printf f, d / k; if (n > 1) printf " [" f ", " f "]", lo / k, hi / k; printf " (%.2fx)", r }'
}
# fig FIG WAY: its median over the repetitions, or empty.
fig() { median <<<"${RES[$1.$2]:-}"; }

# cellnote KEY: the footnote mark of a cell, its text in $work/foot (it
# runs in a subshell: the file counts the footnotes).
: >"$work/foot"
cellnote() {
	local text=${SKIP[${1#*.}]:-} n
	[ "${1%%.*}" = start ] && text=''
	if [ -n "${NOTE[$1]:-}" ]; then
		text=${text:+$text; }$(printf '%s' "${NOTE[$1]}" | awk -F'\t' '
			!($2 in k) { order[++n] = $2 }
			!(($2, $1) in seen) { seen[$2, $1] = 1; reps[$2] = reps[$2] (k[$2]++ ? ", " : "") $1 }
			END {
				for (i = 1; i <= n; i++)
					printf "%s%s %s: %s", (i > 1 ? "; " : ""), (k[order[i]] > 1 ? "reps" : "rep"),
					    reps[order[i]], order[i]
			}')
	fi
	[ -n "$text" ] || return 0
	n=$(($(wc -l <"$work/foot") + 1))
	echo "[$n] $text" >>"$work/foot"
	printf ' [%s]' "$n"
}

# fmt FORMAT VALUE: VALUE in FORMAT, or "-" (or $3) when empty.
fmt() { if [ -n "$2" ]; then awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; else printf '%s' "${3:--}"; fi; }

{
	echo "### The seccomp supervisor (one CPU)"
	echo
	echo "µs per connect + 16-byte echo + close through socksifyd on loopback, the launcher, the program, socksifyd and the echo target all on one CPU (p50 of each run, median of $REPS_DONE repetition(s) of $SV_ROUNDS rounds a way); over: the difference within each repetition, their median and in square brackets the least and most of them, then (in round brackets) the median ratio. Every socksify way runs with \`-x socks5h://127.0.0.1:PORT -e none\` and must fail while its proxy is down first."
	echo
	echo "| way | µs per connect | over the library | over in-program SOCKS5 |"
	echo "|---|---:|---:|---:|"
	for way in $WAYS; do
		m=$(cellnote "conn.$way")
		v=$(fig conn "$way")
		if [ "$way" = direct ]; then
			echo "| ${LABEL[$way]} | $(fmt %.1f "$v")$m | | |"
			continue
		fi
		lib=-; [ "$way" = preload ] || lib=$(over conn "$way" preload %+.1f)
		inp=-; [ "$way" = inprog ] || inp=$(over conn "$way" inprog %+.1f)
		echo "| ${LABEL[$way]} | $(fmt %.1f "$v")$m | $lib | $inp |"
	done
	echo
	echo "Process start: \`socksify -x socks5h://127.0.0.1:PORT --mode MODE tests/bench/exitnow\`, whole runs timed by tests/bench/connbench spawn ($SV_STARTS a way and repetition), ms per start (p50 of each run, median of the repetitions)."
	echo
	echo "| way | ms per start | over --mode preload |"
	echo "|---|---:|---:|"
	for way in $STARTS; do
		m=$(cellnote "start.$way")
		v=$(fig start "$way")
		add=-
		[ "$way" = bare ] || [ "$way" = preload ] || add=$(over start "$way" preload %+.3f 1000)
		[ "$way" = bare ] && add=''
		echo "| ${SLABEL[$way]} | $(fmt %.3f "$([ -n "$v" ] && awk -v v="$v" 'BEGIN { print v / 1000 }')")$m | $add |"
	done
	echo
	sc=$(added conn seccomp preload)
	st=$(added conn static preload)
	sa=$(added start auto preload)
	line="Against the issue's bounds: the supervisor over the library"
	line="$line $(fmt '%+.1f µs' "$sc" 'not measured') per connect (dynamic, --mode seccomp), $(fmt '%+.1f µs' "$st" 'not measured') (static, --mode auto); at most ${SV_CONN_TARGET_US} µs wanted."
	line="$line --mode auto over --mode preload: $(fmt '%+.3f ms' "$([ -n "$sa" ] && awk -v v="$sa" 'BEGIN { print v / 1000 }')" 'not measured') per start; within ${SV_START_TARGET_MS} ms wanted."
	echo "$line"
	echo
	if [ -s "$work/foot" ] || [ -n "${SHORT:-}" ]; then
		cat "$work/foot"
		[ -z "${SHORT:-}" ] || echo "Note: $SHORT."
		echo
	fi
	echo "The supervisor figure took $WALL s."
	echo
} >"$OUT/supervisor.md"
cat "$OUT/supervisor.md"
