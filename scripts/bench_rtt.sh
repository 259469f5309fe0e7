#!/usr/bin/env bash
# make bench, the round-trip figure: time from connect() to the first byte
# of an HTTP answer through a proxy 50 ms away (tests/bin/delayfwd, 25 ms
# each way, in front of socksifyd on loopback), for a program that speaks
# SOCKS5 itself, lock-step as every client does (tests/helpers/rttprobe.py
# inprog), beside a plain program under libsocksify.so with
# SOCKSIFY_PIPELINE off (lock-step) and on (greeting, credentials and
# request in one write: one round trip for the handshake). Without and
# with RFC 1929 authentication, and through a chain of two socksifyd (the
# second next to the first, beyond the delay). scripts/bench.sh calls it and puts its
# table in results.md; alone:
#
#   make all testbin && bash scripts/bench_rtt.sh     (BUILD=, BENCH_QUICK=1, BENCH_REPS=N)
#
# Each way: RT_ROUNDS connections a repetition, their median; the table's
# figure the median over the repetitions, with the spread (min-max of the
# repetitions' medians), and the ratio to in-program lock-step taken within
# each repetition. Output: Markdown on stdout and in $BUILD/bench/rtt.md;
# raw rows (rep,figure,way,value,unit) in $BUILD/bench/rtt.csv. Loopback
# only; every process is started here and stopped by its PID.
set -u
export LC_ALL=C
BUILD=${BUILD:-build}
OUT=$BUILD/bench
HERE=$(cd "$(dirname "$0")/.." && pwd)
SOCKSIFYD=$BUILD/socksifyd
LIBSOCKSIFY=$(cd "$(dirname "$BUILD/libsocksify.so")" && pwd)/libsocksify.so
DELAYFWD=$BUILD/tests/delayfwd
CONNB=$BUILD/tests/connbench
PROBE=$HERE/tests/helpers/rttprobe.py
QUICK=${BENCH_QUICK:-0}
START_TRIES=50
RT_DELAY_MS=25		# each way: a 50 ms round trip
if [ "$QUICK" = 1 ]; then
	RT_REPS=${BENCH_REPS:-1}
	RT_ROUNDS=5
	RT_BUDGET_S=40
else
	RT_REPS=${BENCH_REPS:-3}
	RT_ROUNDS=15
	RT_BUDGET_S=120
fi
# shellcheck source=scripts/bench_lib.sh
. "$HERE/scripts/bench_lib.sh"
bench_bound bench_rtt "$RT_REPS" "$RT_BUDGET_S" "$@"
bench_need bench_rtt "$SOCKSIFYD" "$LIBSOCKSIFY" "$DELAYFWD" "$CONNB"
bench_begin bench_rtt "$RT_BUDGET_S"
: >"$OUT/rtt.csv"
record() { echo "$REP,$1,$2,$3,$4" >>"$OUT/rtt.csv"; }

printf 'bob:pw\n' >"$work/users"
chmod 600 "$work/users"
spawn_listener "$work/sd.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q || { echo "bench_rtt: $WHY" >&2; exit 1; }
SD=$PORT
spawn_listener "$work/sda.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q -u "$work/users" ||
    { echo "bench_rtt: $WHY" >&2; exit 1; }
SDA=$PORT
spawn_listener "$work/d1.log" delayfwd "$DELAYFWD" -t "127.0.0.1:$SD" -d "$RT_DELAY_MS" ||
    { echo "bench_rtt: $WHY" >&2; exit 1; }
FAR=$PORT
spawn_listener "$work/d2.log" delayfwd "$DELAYFWD" -t "127.0.0.1:$SDA" -d "$RT_DELAY_MS" ||
    { echo "bench_rtt: $WHY" >&2; exit 1; }
FARA=$PORT
# A chain: the far socksifyd, then a second one next to it.
spawn_listener "$work/sd2.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q || { echo "bench_rtt: $WHY" >&2; exit 1; }
SD2=$PORT
# The target answers at once (an echo in C), so that what is measured is
# round trips, not a slow server.
spawn "$work/echo.log" "$CONNB" echo -l 127.0.0.1 -T "$RT_BUDGET_S"
wait_line "$work/echo.log" '^connbench: echo on ' "$PID" || { echo "bench_rtt: no echo target" >&2; exit 1; }
HTTPP=$(sed -n 's/^connbench: echo on 127\.0\.0\.1://p' "$work/echo.log")

# way NAME: its p50 ms, or empty.
way() {
	local out
	case $1 in
	inprog) out=$(waited python3 "$PROBE" inprog "$RT_ROUNDS" "$HTTPP" "$FAR" 2>&1) ;;
	inprog-auth) out=$(waited python3 "$PROBE" inprog "$RT_ROUNDS" "$HTTPP" "$FARA" bob pw 2>&1) ;;
	lib-off | lib-on)
		out=$(waited env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="${1#lib-}" LD_PRELOAD="$LIBSOCKSIFY" \
		    SOCKSIFY_PROXY="socks5://127.0.0.1:$FAR" python3 "$PROBE" plain "$RT_ROUNDS" "$HTTPP" 2>&1) ;;
	inprog-chain) out=$(waited python3 "$PROBE" inprog2 "$RT_ROUNDS" "$HTTPP" "$FAR" "$SD2" 2>&1) ;;
	lib-chain-off | lib-chain-on)
		out=$(waited env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="${1#lib-chain-}" LD_PRELOAD="$LIBSOCKSIFY" \
		    SOCKSIFY_PROXY="socks5://127.0.0.1:$FAR,socks5://127.0.0.1:$SD2" python3 "$PROBE" plain \
		    "$RT_ROUNDS" "$HTTPP" 2>&1) ;;
	lib-auth-off | lib-auth-on)
		out=$(waited env SOCKSIFY_EXCLUDE=none SOCKSIFY_PIPELINE="${1#lib-auth-}" LD_PRELOAD="$LIBSOCKSIFY" \
		    SOCKSIFY_PROXY="socks5://bob:pw@127.0.0.1:$FARA" python3 "$PROBE" plain "$RT_ROUNDS" "$HTTPP" 2>&1) ;;
	esac
	sed -n 's/^ms p50=\([0-9.]*\) .*/\1/p' <<<"$out"
}

WAYS="inprog lib-off lib-on inprog-auth lib-auth-off lib-auth-on inprog-chain lib-chain-off lib-chain-on"
for ((REP = 1; REP <= RT_REPS; REP++)); do
	declare -A V=()
	for w in $WAYS; do
		V[$w]=$(way "$w")
		[ -n "${V[$w]}" ] && record rtt "$w" "${V[$w]}" ms
	done
	for w in lib-off lib-on; do
		[ -n "${V[$w]}" ] && [ -n "${V[inprog]}" ] &&
		    record rtt_ratio "$w" "$(awk -v a="${V[$w]}" -v b="${V[inprog]}" 'BEGIN { printf "%.3f", a / b }')" x
	done
	for w in lib-auth-off lib-auth-on; do
		[ -n "${V[$w]}" ] && [ -n "${V[inprog-auth]}" ] &&
		    record rtt_ratio "$w" "$(awk -v a="${V[$w]}" -v b="${V[inprog-auth]}" 'BEGIN { printf "%.3f", a / b }')" x
	done
	for w in lib-chain-off lib-chain-on; do
		[ -n "${V[$w]}" ] && [ -n "${V[inprog-chain]}" ] &&
		    record rtt_ratio "$w" "$(awk -v a="${V[$w]}" -v b="${V[inprog-chain]}" 'BEGIN { printf "%.3f", a / b }')" x
	done
	unset V
done

fig() { grep "^[0-9]*,$1,$2," "$OUT/rtt.csv" | cut -d, -f4 | median; }
spread() { grep "^[0-9]*,$1,$2," "$OUT/rtt.csv" | cut -d, -f4 | span; }
row() {
	local v r
	v=$(fig rtt "$2")
	r=$(fig rtt_ratio "$2")
	printf '| %s | %s | %s | %s |\n' "$1" "${v:--}" "$(spread rtt "$2")" "${r:+${r}x}"
}
{
	echo "### Round trips: connect() to the first answer byte, proxy 50 ms away"
	echo
	echo "socksifyd behind tests/bin/delayfwd ($RT_DELAY_MS ms each way); ms, median of $RT_ROUNDS connections a repetition, median (and spread) of $RT_REPS repetition(s); ratio to the in-program lock-step client, within each repetition."
	echo
	echo "| way | ms | spread | over in-program |"
	echo "|---|---|---|---|"
	row "in-program SOCKS5, lock-step (greeting, request: 3 round trips with the first request)" inprog
	row "libsocksify.so, SOCKSIFY_PIPELINE=off" lib-off
	row "libsocksify.so, SOCKSIFY_PIPELINE=on (2 round trips)" lib-on
	row "in-program, RFC 1929 (4 round trips)" inprog-auth
	row "libsocksify.so, RFC 1929, off" lib-auth-off
	row "libsocksify.so, RFC 1929, on (2 round trips)" lib-auth-on
	row "in-program, a chain of two socksifyd (5 round trips)" inprog-chain
	row "libsocksify.so, the chain, off" lib-chain-off
	row "libsocksify.so, the chain, on (both hops in one write: 2 round trips)" lib-chain-on
	echo
} | tee "$OUT/rtt.md"
