# shellcheck shell=bash disable=SC2034	# PORT, WHY: for the sourcing script
# Processes of the benchmark scripts (scripts/bench.sh, scripts/bench_evloop.sh),
# sourced by both. Every process a script starts is recorded in STARTED and
# stopped by its PID: by stop, or by cleanup when the script exits. The
# script sets START_TRIES (polls of 0.1 s for a server to listen) and work
# (its temporary directory), and installs cleanup as its EXIT trap.

STARTED=''		# every PID this script started and has not yet reaped

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
