#!/usr/bin/env bash
# make bench, the event-loop figure: EV_FETCHES fetches at once through a
# proxy EV_DELAY_MS away each way, by programs that speak SOCKS5 themselves
# and by the same programs under libsocksify.so. scripts/bench.sh calls it
# near its end and puts its table in results.md; alone:
#
#   make all testbin && bash scripts/bench_evloop.sh     (BUILD=, BENCH_QUICK=1)
#
# Loopback only: tests/bench/evloop.py serve (an HTTP/1.0 target with a
# 16 KiB file), socksifyd on 127.0.0.1:0, and in front of it, started afresh
# for each run, tests/bin/delayfwd -d EV_DELAY_MS. Each program fetches the
# file EV_FETCHES times at once, each over a fresh TCP connection, in two
# ways, back to back within a repetition:
#   itself    it speaks SOCKS5 to delayfwd: python3 asyncio and node's
#             net.Socket with a hand-written handshake (tests/bench/evloop.py
#             fetch -x, tests/bench/evloop.js -x), curl --parallel -x socks5://
#   library   it connects straight to the target, under libsocksify.so with
#             SOCKSIFY_PROXY=socks5://(delayfwd) and SOCKSIFY_EXCLUDE=none
# A run counts only when every body has the file's length and sha256 and
# delayfwd relayed exactly EV_FETCHES connections that carried a whole body
# (a library that connected directly is caught there); otherwise its cell
# reads "failed" with the reason as a footnote, never a number.
#
# Wall time of the fetches, from the first connect to the last body (curl:
# the whole process); median of the repetitions. Ratio: library over itself,
# the median of the ratios taken within each repetition.
# Output: Markdown on stdout and in $BUILD/bench/evloop.md; raw.csv rows
# (rep,figure,way,ms,ms) in $BUILD/bench/evloop.csv.
#
# Up to EV_REPS repetitions (5; 3 with BENCH_QUICK=1); another starts only
# if the last one's time still fits before EV_SOFT_S. Every process is
# started here and stopped by its PID, also on error or past EV_BUDGET_S.
set -u
# EPOCHREALTIME and awk's numbers with a decimal point, whatever the locale.
export LC_ALL=C
BUILD=${BUILD:-build}
OUT=$BUILD/bench
HERE=$(cd "$(dirname "$0")/.." && pwd)
SOCKSIFYD=$BUILD/socksifyd
DELAYFWD=$BUILD/tests/delayfwd
LIBSOCKSIFY=$BUILD/libsocksify.so
EVPY=$HERE/tests/bench/evloop.py
EVJS=$HERE/tests/bench/evloop.js
QUICK=${BENCH_QUICK:-0}

EV_FETCHES=50		# fetches at once, one connection each
EV_DELAY_MS=25		# delayfwd, each way
EV_FILE_BYTES=16384	# the file fetched
START_TRIES=50		# polls of 0.1 s for a server to listen
if [ "$QUICK" = 1 ]; then
	EV_REPS=3
	EV_SOFT_S=12	# a repetition starts only if the last one's time fits before this
	EV_RUN_S=12	# one run of one program, one way
	EV_BUDGET_S=40	# the whole figure's bound
else
	EV_REPS=5
	EV_SOFT_S=55
	EV_RUN_S=20
	EV_BUDGET_S=90
fi

# shellcheck source=scripts/bench_lib.sh
. "$HERE/scripts/bench_lib.sh"
bench_bound bench_evloop "$EV_REPS" "$EV_BUDGET_S" "$@"

for f in "$SOCKSIFYD" "$DELAYFWD" "$LIBSOCKSIFY"; do
	[ -e "$f" ] || { echo "bench_evloop: $f is missing: run make all testbin" >&2; exit 2; }
done
# The library's path must hold in every directory a program may change to.
LIBSOCKSIFY=$(realpath "$LIBSOCKSIFY")

# --- processes ---------------------------------------------------------------

# From bench_lib.sh, sourced above: bench_begin, alive, stop, stop_roots,
# cleanup, spawn, waited, wait_line,
# spawn_listener, median.
bench_begin bench_evloop "$EV_BUDGET_S"

# bounded OUT CMD...: CMD under timeout(1), stdout and stderr in OUT; its
# status.
bounded() {
	local out=$1
	shift
	waited timeout -k 2 $((EV_RUN_S + 5)) "$@" </dev/null >"$out" 2>&1
}

# Proxy settings of the caller's environment would reroute curl.
NOPROXY_ENV=(-u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy
    -u ALL_PROXY -u no_proxy -u NO_PROXY -u LD_PRELOAD -u SOCKSIFY_PROXY)

# --- the setup ---------------------------------------------------------------

fail_setup() {
	echo "bench_evloop: $1" >&2
	printf '### Event loops through a distant proxy\n\nNot measured: %s.\n\n' "$1" | tee "$OUT/evloop.md"
	: >"$OUT/evloop.csv"
	exit 1
}

# python3 itself, not a version manager's shim: a shim is a shell script
# that would run under the library too, and may change directory.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || fail_setup "python3 is not installed"
head -c "$EV_FILE_BYTES" /dev/urandom >"$work/file.bin"
FILE_SHA=$(sha256sum <"$work/file.bin" | cut -d' ' -f1)

spawn "$work/httpd.log" "$PY" "$EVPY" serve "$work/file.bin" "$work/http.port"
HTTPD=$PID
wait_line "$work/http.port" '^[0-9]+$' "$HTTPD" ||
    fail_setup "the HTTP target did not start: $(head -c 200 "$work/httpd.log")"
HTTP_PORT=$(cat "$work/http.port")
URL=http://127.0.0.1:$HTTP_PORT/file.bin

spawn_listener "$work/socksifyd.log" socksifyd "$SOCKSIFYD" -l 127.0.0.1:0 -q || fail_setup "$WHY"
PROXY_PORT=$PORT

# --- one run -----------------------------------------------------------------

PROGS="python node curl"
declare -A LABEL MISSING
LABEL[python]="python3 asyncio ($("$PY" -c 'import platform; print(platform.python_version())'))"
if command -v node >/dev/null; then
	LABEL[node]="node net.Socket ($(node --version))"
else
	LABEL[node]="node net.Socket"; MISSING[node]="node is not installed"
fi
if command -v curl >/dev/null; then
	LABEL[curl]="curl --parallel ($(curl --version | sed -n '1s/^curl \([^ ]*\).*/\1/p'))"
else
	LABEL[curl]="curl --parallel"; MISSING[curl]="curl is not installed"
fi

# curl_check: every body file of the run has the file's length and sha256.
curl_check() {
	local n
	n=$(sha256sum "$work"/body.* 2>/dev/null | awk -v s="$FILE_SHA" '$1 == s { k++ } END { print k + 0 }')
	[ "$n" = "$EV_FETCHES" ] && return 0
	WHY="$n of $EV_FETCHES bodies intact"
	return 1
}

# run PROG WAY DPORT: one run; MS, or a false return with WHY.
run() {
	local prog=$1 way=$2 dport=$3 env=(env "${NOPROXY_ENV[@]}") x=() out=$work/run.out rc t0 t1 i
	local args=(-t "127.0.0.1:$HTTP_PORT" -p /file.bin -n "$EV_FETCHES" -l "$EV_FILE_BYTES"
	    -s "$FILE_SHA" -T "$EV_RUN_S")
	if [ "$way" = library ]; then
		env+=(LD_PRELOAD="$LIBSOCKSIFY" SOCKSIFY_PROXY="socks5://127.0.0.1:$dport" SOCKSIFY_EXCLUDE=none)
	else
		x=(-x "127.0.0.1:$dport")
	fi
	MS='' WHY=''
	case $prog in
	python)
		bounded "$out" "${env[@]}" "$PY" "$EVPY" fetch "${args[@]}" "${x[@]}" ;;
	node)
		bounded "$out" "${env[@]}" node "$EVJS" "${args[@]}" "${x[@]}" ;;
	curl)
		rm -f "$work"/body.*
		args=(-q -s -S --fail --http1.0 --parallel --parallel-immediate --parallel-max "$EV_FETCHES"
		    --max-time "$EV_RUN_S")
		if [ "$way" = library ]; then
			args+=(--noproxy '*')
		else
			args+=(-x "socks5://127.0.0.1:$dport")
		fi
		# A query apiece, so that no two transfers could share a connection.
		for ((i = 0; i < EV_FETCHES; i++)); do args+=(-o "$work/body.$i" "$URL?n=$i"); done
		t0=$EPOCHREALTIME
		bounded "$out" "${env[@]}" curl "${args[@]}"
		rc=$?
		t1=$EPOCHREALTIME
		if [ "$rc" = 0 ] && curl_check; then
			echo "evloop: ok n=$EV_FETCHES ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')" >"$out"
		else
			[ -n "$WHY" ] || WHY="curl exited with status $rc"
			echo "evloop: failed: $WHY: $(head -n 1 "$out" | cut -c1-100)" >"$out"
		fi ;;
	esac
	rc=$?
	MS=$(sed -n 's/^evloop: ok n=[0-9]* ms=\([0-9.]*\)$/\1/p' "$out")
	[ -n "$MS" ] && return 0
	WHY=$(sed -n 's/^evloop: failed: //p' "$out" | head -n 1)
	if [ -z "$WHY" ]; then
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			WHY="not done after $EV_RUN_S s"
		else
			WHY="status $rc: $(head -n 1 "$out" | cut -c1-100)"
		fi
	fi
	return 1
}

# measure PROG WAY: a run through a delayfwd of its own, which then must
# have relayed one whole body per fetch; RES_ms, or a note.
declare -A RES NOTE
measure() {
	local prog=$1 way=$2 log=$work/delayfwd.log dpid bodies
	if ! spawn_listener "$log" delayfwd "$DELAYFWD" -t "127.0.0.1:$PROXY_PORT" -d "$EV_DELAY_MS" -v; then
		FAILED[$prog.$way]=1
		addnote "$prog" "$way" "$WHY"
		stop "$PID"
		return
	fi
	dpid=$PID
	run "$prog" "$way" "$PORT"
	local ok=$?
	# Its stop closes what is still open; each connection logs one line.
	stop "$dpid"
	bodies=$(awk -v min="$EV_FILE_BYTES" '/^delayfwd: conn / {
		for (i = 1; i <= NF; i++) if ($i ~ /^down=/ && substr($i, 6) + 0 >= min) k++
	} END { print k + 0 }' "$log")
	if [ "$ok" = 0 ] && [ "$bodies" != "$EV_FETCHES" ]; then
		ok=1
		WHY="the proxy relayed $bodies of $EV_FETCHES bodies"
		[ "$way" = library ] && [ "$bodies" = 0 ] && WHY="$WHY: the library connected directly"
	fi
	if [ "$ok" = 0 ]; then
		RES[$prog.$way]="${RES[$prog.$way]:-} $MS"
		echo "$REP,evloop_$prog,$way,$MS,ms" >>"$OUT/evloop.csv"
		echo "bench_evloop: rep $REP: $prog, $way: $MS ms" >&2
	else
		FAILED[$prog.$way]=1
		addnote "$prog" "$way" "$WHY"
		echo "bench_evloop: rep $REP: $prog, $way: failed: $WHY" >&2
	fi
}
declare -A FAILED
# addnote PROG WAY WHY: one line, "REP<tab>WHY", on the cell's footnote.
addnote() { NOTE[$1.$2]="${NOTE[$1.$2]:-}$REP	$3
"; }

# footnote PROG WAY: its reasons, each with the repetitions it came in.
footnote() {
	printf '%s' "${NOTE[$1.$2]:-}" | awk -F'\t' '
		!($2 in k) { order[++n] = $2; reps[$2] = $1 }
		($2 in k) { reps[$2] = reps[$2] ", " $1 }
		{ k[$2]++ }
		END {
			if (n == 0)
				printf "no run"
			for (i = 1; i <= n; i++) {
				w = order[i]
				printf "%s%s %s: %s", (i > 1 ? "; " : ""), (k[w] > 1 ? "reps" : "rep"), reps[w], w
			}
		}'
}

# --- the run -----------------------------------------------------------------

: >"$OUT/evloop.csv"
REP=0
REP_S=0
REPS_DONE=0
while [ "$REP" -lt "$EV_REPS" ]; do
	rep_t0=$(date +%s)
	[ "$REP" -gt 0 ] && [ $((rep_t0 - T0 + REP_S)) -gt "$EV_SOFT_S" ] && break
	REP=$((REP + 1))
	for prog in $PROGS; do
		[ -n "${MISSING[$prog]:-}" ] && continue
		measure "$prog" itself
		measure "$prog" library
	done
	REPS_DONE=$REP
	REP_S=$(($(date +%s) - rep_t0))
done
stop "$HTTPD"
WALL=$(($(date +%s) - T0))

# --- the report ----------------------------------------------------------------

# words LIST: one a line.
words() { tr ' ' '\n' <<<"$1" | grep .; }

{
	echo "### Event loops through a distant proxy"
	echo
	echo "$EV_FETCHES fetches at once of a $((EV_FILE_BYTES / 1024)) KiB file, each over a fresh TCP connection, through socksifyd behind tests/bin/delayfwd ($EV_DELAY_MS ms each way). Wall time in ms from the first connect to the last body (curl: the whole process), median of $REPS_DONE repetition(s) and in brackets their least and most; every body checked (length and sha256) and every connection seen at the proxy. Ratio: under the library over speaking SOCKS5 itself, the median of the ratios within each repetition, then their least and most."
	echo
	echo "| program | speaking SOCKS5 itself ms | under libsocksify.so ms | ratio |"
	echo "|---|---:|---:|---:|"
	n=0
	: >"$work/foot"
	for prog in $PROGS; do
		line="| ${LABEL[$prog]}"
		for way in itself library; do
			if [ -n "${MISSING[$prog]:-}" ]; then
				[ "$way" = itself ] && n=$((n + 1)) &&
				    echo "[$n] ${LABEL[$prog]}: ${MISSING[$prog]}" >>"$work/foot"
				line="$line | - [$n]"
			elif [ -n "${FAILED[$prog.$way]:-}" ] || [ -z "${RES[$prog.$way]:-}" ]; then
				n=$((n + 1))
				line="$line | failed [$n]"
				echo "[$n] ${LABEL[$prog]}, $way: $(footnote "$prog" "$way")" >>"$work/foot"
			else
				line="$line | $(words "${RES[$prog.$way]}" | median | awk '{ printf "%.0f", $1 }') ($(words "${RES[$prog.$way]}" |
				    awk '{ printf "%.0f\n", $1 }' | span))"
			fi
		done
		# Ratios within each repetition, only when every run of both ways
		# counted (then the two lists pair up, repetition by repetition).
		if [ -z "${FAILED[$prog.itself]:-}${FAILED[$prog.library]:-}${MISSING[$prog]:-}" ] &&
		    [ -n "${RES[$prog.itself]:-}" ] && [ -n "${RES[$prog.library]:-}" ]; then
			paste -d' ' <(words "${RES[$prog.itself]}") <(words "${RES[$prog.library]}") |
			    awk '{ printf "%.2f\n", $2 / $1 }' >"$work/ratios"
			line="$line | $(median <"$work/ratios" | awk '{ printf "%.2fx", $1 }') ($(span <"$work/ratios")) |"
		else
			line="$line | - |"
		fi
		echo "$line"
	done
	echo
	if [ -s "$work/foot" ]; then
		cat "$work/foot"
		echo
	fi
	echo "The event-loop figure took $WALL s."
	echo
} >"$OUT/evloop.md"
cat "$OUT/evloop.md"
