# shellcheck shell=bash disable=SC2034	# PORT, WHY: for the sourcing script
# Processes of the benchmark scripts (scripts/bench.sh and the
# scripts/bench_*.sh it calls), sourced by each. Every process a script
# starts is recorded in STARTED and stopped by its PID: by stop, or by
# cleanup when the script exits. The script sets START_TRIES (polls of 0.1 s
# for a server to listen) and OUT, and calls bench_begin first.

STARTED=''		# every PID this script started and has not yet reaped

# bench_begin NAME BUDGET_S: OUT made, work (a temporary directory) and T0
# (the start) set, cleanup as the EXIT trap, and a line from NAME on a
# signal: timeout(1)'s TERM when the script outlasts BUDGET_S.
bench_begin() {
	mkdir -p "$OUT"
	work=$(mktemp -d)
	T0=$(date +%s)
	trap cleanup EXIT
	# shellcheck disable=SC2064	# NAME and BUDGET_S: expanded now
	trap "echo \"$1: stopped by a signal (or past the $2 s budget)\" >&2; exit 1" INT TERM HUP
}

# bench_bound NAME REPS BUDGET_S ARGS...: REPS checked (else a line from
# NAME, exit 2); then, once, the script runs again as itself under
# timeout(1) with BUDGET_S and ARGS, so that nothing outlasts the budget
# (bench_begin's EXIT trap stops what it started). The guard is NAME's own:
# a figure script that scripts/bench.sh runs is bounded as well.
bench_bound() {
	local name=$1 reps=$2 budget=$3 guard
	shift 3
	case $reps in '' | *[!0-9]* | 0) echo "$name: BENCH_REPS must be a positive number" >&2; exit 2 ;; esac
	guard=BENCH_BOUNDED_${name//[^a-zA-Z0-9]/_}
	[ -n "${!guard:-}" ] && return 0
	exec env "$guard=1" timeout "$budget" bash "$0" "$@"
}

# bench_need NAME FILE...: each FILE there (else a line from NAME, exit 2),
# and none of the caller's SOCKSIFY_ settings or LD_PRELOAD left to change
# what is measured.
bench_need() {
	local name=$1 f v
	shift
	for f in "$@"; do
		[ -e "$f" ] || { echo "$name: $f is missing: run make bench" >&2; exit 2; }
	done
	for v in $(compgen -e | grep '^SOCKSIFY_'); do
		unset "$v"
	done
	unset LD_PRELOAD
}

alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
	[ -n "$st" ] && [ "$st" != Z ]
}

# stop PID...: TERM to each and to its children (unshare --fork passes no
# signal on), up to 3 s for each to go, then KILL; reaps them.
stop() {
	local p i
	for p in "$@"; do
		# shellcheck disable=SC2046
		kill -TERM "$p" $(cat "/proc/$p/task/$p/children" 2>/dev/null) 2>/dev/null
	done
	for p in "$@"; do
		for ((i = 0; i < 30; i++)); do
			alive "$p" || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		STARTED=" ${STARTED//" $p "/ } "
	done
}

# stop_roots "PIDS": stop them, the last started first (ssh before sshd).
stop_roots() {
	local r=() i
	read -r -a r <<<"$1"
	for ((i = ${#r[@]} - 1; i >= 0; i--)); do stop "${r[i]}"; done
}

cleanup() {
	# Newest first: ssh before its sshd, clients before servers.
	stop_roots "$STARTED"
	# shellcheck disable=SC2154	# work: the sourcing script's
	rm -rf "$work"
}

# spawn LOG CMD...: CMD in the background, stdout and stderr in LOG; PID.
# LOG is emptied first, here: the background job's own redirection may come
# after a caller has already looked for a line in it.
spawn() {
	local log=$1
	shift
	[ "$log" = /dev/null ] || : >"$log"
	"$@" </dev/null >>"$log" 2>&1 &
	PID=$!
	STARTED="$STARTED $PID "
}

# waited CMD...: CMD run to its end, its status. It runs in the background
# and is waited for, so that a TERM to the script is acted on at once, and
# the cleanup stops CMD too. Redirect the call to redirect CMD.
waited() {
	local p rc
	"$@" &
	p=$!
	STARTED="$STARTED $p "
	wait "$p"
	rc=$?
	STARTED=" ${STARTED//" $p "/ } "
	return "$rc"
}

# wait_line FILE REGEX PID: until FILE has a line matching REGEX, while PID lives.
wait_line() {
	local i
	for ((i = 0; i < START_TRIES; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		alive "$3" || return 1
		sleep 0.1
	done
	return 1
}

# spawn_listener LOG NAME CMD...: spawn LOG CMD..., then until it logs
# "NAME: listening on ADDR:PORT", while it lives; PORT, or a false return
# with WHY. PID either way.
spawn_listener() {
	local log=$1 name=$2
	shift 2
	spawn "$log" "$@"
	wait_line "$log" "^$name: listening on " "$PID" ||
	    { WHY="$name did not start: $(head -c 200 "$log" | tr '\n\t' '  ')"; return 1; }
	PORT=$(sed -n "s/^$name: listening on .*:\([0-9]*\)\$/\1/p" "$log")
}

# --- ports, servers, figures --------------------------------------------------

PORT_LO=20000		# fixed ports come from below the ephemeral range
PORT_SPAN=12000		# (32768-60999 here), so no outgoing socket holds them
DANTED=/usr/sbin/danted

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: until something accepts on PORT, while PID lives.
wait_port() {
	local i
	for ((i = 0; i < START_TRIES; i++)); do
		listening "$1" && return 0
		alive "$2" || return 1
		sleep 0.1
	done
	return 1
}

# free_port: a port nothing listens on, below the ephemeral range.
free_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		PORT=$((PORT_LO + RANDOM % PORT_SPAN))
		listening "$PORT" || return 0
	done
	return 1
}

# pin CPU: PIN, the words that run a command on CPU (none when empty).
pin() {
	PIN=()
	[ -z "$1" ] || PIN=(taskset -c "$1")
}

# A minimal danted: no logging, no authentication, loopback clients to any
# loopback target; its own pid file. As root it drops to nobody. danted
# binds each outgoing socket before connecting, and such a bind cannot
# reuse a port in TIME_WAIT, so its side gets a loopback address of its own
# (DANTE_EXT): the TIME_WAITs other servers and s5load leave on 127.0.0.1
# would otherwise run it out of ports (its own still count).
DANTE_EXT=127.0.0.3
start_dante() {
	local conf=$work/danted.$RANDOM.conf
	[ -x "$DANTED" ] || { WHY="$DANTED is not installed"; return 1; }
	free_port || { WHY="no free port"; return 1; }
	{
		echo "errorlog: stderr"
		echo "internal: 127.0.0.1 port = $PORT"
		echo "external: $DANTE_EXT"
		echo "clientmethod: none"
		echo "socksmethod: none"
		if [ "$(id -u)" = 0 ]; then
			echo "user.privileged: root"
			echo "user.unprivileged: nobody"
		fi
		echo "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }"
		# UDP ASSOCIATE (scripts/bench_udp.sh): the request, and the
		# datagrams that come back to the client (udpreply).
		echo "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect udpassociate udpreply }"
	} >"$conf"
	pin "${1:-}"
	# As root, danted runs as the first process of a PID namespace of its
	# own: when it ends, the kernel ends and reaps its children too (it
	# leaves them to PID 1 otherwise, which here reaps nothing).
	local ns=()
	[ "$(id -u)" = 0 ] && ns=(unshare --pid --fork --kill-child)
	spawn "$conf.log" "${PIN[@]}" "${ns[@]}" "$DANTED" -f "$conf" -p "$conf.pid"
	ROOTS=$PID
	wait_port "$PORT" "$PID" || { WHY="danted did not start: $(head -c 200 "$conf.log")"; return 1; }
}

# span: the least and most of the numbers on stdin, any number a line, as
# LO-HI (nothing for none): a figure's spread over its repetitions.
span() {
	tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s-%s", lo, hi }'
}

# median: of the numbers on stdin, any number a line.
median() {
	tr ' ' '\n' | grep . | sort -g |
	    awk '{ a[NR] = $1 } END { if (NR) print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
