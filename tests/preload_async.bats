#!/usr/bin/env bats
# The asynchronous connect() of libsocksify.so, as programs see it
# (tests/bin/asynccheck.c). A non-blocking connect() through the tunnel says
# EINPROGRESS at once and the SOCKS5 handshake goes on behind it, bounded by
# SOCKSIFY_TIMEOUT. Until the whole chain has answered no waiting call
# (poll, ppoll, select, pselect, epoll_wait/pwait/pwait2; level, edge,
# one-shot, exclusive) reports the socket; then each reports what a direct
# socket whose connect just ended reports, and a waiter already blocked is
# woken. A pending socket's calls answer as the kernel's do, close() cancels
# it, dup() and high descriptors work, fork() does not lose it, and a blocking
# connect honours SO_SNDTIMEO and signals.
#
# faultd --slow request (tests/bin/faultd.c) sends its reply a byte per
# 100 ms: no handshake through it ends before SLOW_MS, so a report sooner is a
# lie (asynccheck -d). faultd echoes after its reply and never contacts the
# destination, DST:DST_PORT, where nothing listens.

load helpers/common

teardown() { stop_all; }

ASYNCCHECK=$BUILD/tests/asynccheck
STRESS=$BUILD/tests/stress
DST=127.0.0.1
DST_PORT=9
# faultd --slow: each answer takes 100 ms a byte (greeting and auth 2 bytes,
# the reply 10).
SLOW_MS=1000
SLOW_GREETING_MS=200
# A loose upper bound for a report of a one-second handshake under load.
LATE_MS=4000
# A failure on the proxy's bytes, not its silence, is reported within this.
PROMPT_MS=1500
# SOCKSIFY_TIMEOUT=2 where a stall is involved: ETIMEDOUT in [1900, 4500] ms.
STALL_TIMEOUT_S=2
STALL_MIN_MS=1900
STALL_MAX_MS=4500
# The errno of a password the proxy rejects (RFC 1929 status 0x01). The brief
# for this suite listed it with ECONNREFUSED; shared/client.c and
# preload_faults.bats say EACCES, and the non-blocking path must say what the
# blocking one says: change it here and there together.
WRONG_CRED_ERRNO=EACCES

AC_TAGS=()
AC_PIDS=()

# slow_faultd [ARGS...]: faultd --slow request ARGS; sets URL.
slow_faultd() {
	start_faultd --slow request "$@"
	URL=socks5://127.0.0.1:$FAULT_PORT
}

# faultd_as TAG ARGS...: one more faultd, its log $BATS_TEST_TMPDIR/faultd.TAG.log;
# sets FAULT_PORT (start_faultd keeps one log for all).
faultd_as() {
	local tag=$1
	shift
	start_testbin "$BATS_TEST_TMPDIR/faultd.$tag.log" "$(listening_on faultd)" faultd "$@"
	FAULT_PORT=$LISTEN_PORT
}

# ac_bg TAG URL SCENARIO [ARGS...]: asynccheck SCENARIO DST PORT ARGS in the
# background under the library, proxy URL, SOCKSIFY_TIMEOUT=${AC_TIMEOUT:-5},
# PORT ${AC_PORT:-$DST_PORT}; its line goes to TAG.out, the library's and a
# child's lines to TAG.err. ac_wait collects every one.
ac_bg() {
	local tag=$1 url=$2 scenario=$3
	shift 3
	timeout 60 env SOCKSIFY_TIMEOUT="${AC_TIMEOUT:-5}" SOCKSIFY_EXCLUDE=none \
		LD_PRELOAD="$LIB" SOCKSIFY_PROXY="$url" \
		"$ASYNCCHECK" "$scenario" "$DST" "${AC_PORT:-$DST_PORT}" -t 8000 "$@" \
		3>&- >"$BATS_TEST_TMPDIR/$tag.out" 2>"$BATS_TEST_TMPDIR/$tag.err" &
	PIDS+=($!)
	AC_TAGS+=("$tag")
	AC_PIDS+=($!)
}

# Waits for the ac_bg runs, prints their lines, and records each exit
# status in TAG.rc.
ac_wait() {
	local i rc p keep=()
	for i in "${!AC_TAGS[@]}"; do
		rc=0
		wait "${AC_PIDS[$i]}" || rc=$?
		echo "$rc" >"$BATS_TEST_TMPDIR/${AC_TAGS[$i]}.rc"
		printf '%-26s %s (exit %s)\n' "${AC_TAGS[$i]}" \
			"$(cat "$BATS_TEST_TMPDIR/${AC_TAGS[$i]}.out")" "$rc"
	done
	# Reaped: not for stop_all, whose kill could reach a reused PID.
	for p in "${PIDS[@]}"; do
		[[ " ${AC_PIDS[*]} " == *" $p "* ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
	AC_TAGS=()
	AC_PIDS=()
}

# ac_field TAG KEY: the value of KEY=VALUE in TAG's line.
ac_field() {
	sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p" "$BATS_TEST_TMPDIR/$1.out"
}

# ac_ok TAG [KEY=REGEX...]: TAG's run exited 0 with an "ok" line whose KEYs
# match (the whole value). The library's stderr is shown when it did not.
ac_ok() {
	local tag=$1 rc line kv val
	shift
	rc=$(cat "$BATS_TEST_TMPDIR/$tag.rc")
	line=$(cat "$BATS_TEST_TMPDIR/$tag.out")
	if [ "$rc" != 0 ] || [[ ! "$line" =~ ^asynccheck:\ [^\ ]+\ ok( |$) ]]; then
		echo "$tag failed: $line (exit $rc)"
		sed "s/^/  $tag stderr: /" "$BATS_TEST_TMPDIR/$tag.err"
		return 1
	fi
	for kv in "$@"; do
		val=$(ac_field "$tag" "${kv%%=*}")
		[[ "$val" =~ ^(${kv#*=})$ ]] || { echo "$tag: ${kv%%=*}=$val, want ${kv#*=}"; return 1; }
	done
}

# ac_below TAG KEY MAX: TAG's KEY is a number below MAX.
ac_below() {
	local val
	val=$(ac_field "$1" "$2")
	[ -n "$val" ] && [ "$val" -lt "$3" ] || { echo "$1: $2=$val, want < $3"; return 1; }
}

# ac_slow_each SCENARIO...: each SCENARIO, tagged so, through the slow
# faultd, all at once; waits for them.
ac_slow_each() {
	local sc
	slow_faultd
	for sc; do
		ac_bg "$sc" "$URL" "$sc" -d "$SLOW_MS"
	done
	ac_wait
}

# The request faultd logged for DST: $2 of them in log $1.
requests_are() {
	local n
	n=$(grep -c "request cmd=1 atyp=1 dst=127\\.0\\.0\\.1:$DST_PORT\$" "$1" || true)
	[ "$n" -eq "$2" ] || { echo "$1: $n requests for the destination, want $2"; return 1; }
}

# --- Calibration ---------------------------------------------------------------

# What the kernel says, the yardstick for the rest: a direct non-blocking
# connect that is refused polls POLLOUT|POLLERR|POLLHUP (select: writable)
# and reports ECONNREFUSED in SO_ERROR once. No library here.
@test "async: a refused direct connect, the yardstick: POLLOUT|POLLERR|POLLHUP (0x1c), SO_ERROR once" {
	local closed m
	closed=$(free_port)
	for m in poll epoll-lt select; do
		run timeout 30 "$ASYNCCHECK" fail-errno 127.0.0.1 "$closed" -m "$m" -e ECONNREFUSED
		echo "$m: $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *" so_error=ECONNREFUSED"* ]]
	done
	[[ "$output" == *" revents=0x4 "* ]]
	run timeout 30 "$ASYNCCHECK" fail-errno 127.0.0.1 "$closed" -m poll
	[[ "$output" == *" revents=0x1c so_error=ECONNREFUSED"* ]]
}

# --- Readiness: nothing until the proxy has answered -----------------------------

@test "async: poll and ppoll: EINPROGRESS at once, silent until the proxy answered, then POLLOUT alone, SO_ERROR 0, echo intact" {
	ac_slow_each poll ppoll
	for t in poll ppoll; do
		ac_ok "$t" connect=EINPROGRESS revents=0x4 so_error=0 echo=2048
		ac_below "$t" connect_ms 500
		ac_below "$t" waited_ms "$LATE_MS"
	done
	requests_are "$FAULT_LOG" 2
}

@test "async: select and pselect: not in either set until the proxy answered, then writable alone, SO_ERROR 0, echo intact" {
	ac_slow_each select pselect
	for t in select pselect; do
		ac_ok "$t" connect=EINPROGRESS revents=0x4 so_error=0 echo=2048
		ac_below "$t" waited_ms "$LATE_MS"
	done
}

@test "async: epoll_wait, epoll_pwait, epoll_pwait2 (level-triggered): EPOLLOUT alone once the proxy answered, and again after" {
	ac_slow_each epoll-lt epoll-pwait epoll-pwait2
	for t in epoll-lt epoll-pwait; do
		ac_ok "$t" revents=0x4 so_error=0 echo=2048
		ac_below "$t" waited_ms "$LATE_MS"
	done
	# glibc before 2.35 has no epoll_pwait2: asynccheck says skip, exit 77.
	if [ "$(cat "$BATS_TEST_TMPDIR/epoll-pwait2.rc")" != 77 ]; then
		ac_ok epoll-pwait2 revents=0x4 so_error=0 echo=2048
	fi
}

@test "async: epoll edge-triggered and EPOLLONESHOT: one EPOLLOUT edge when the proxy answered, none before, the echo's EPOLLIN edges after" {
	ac_slow_each epoll-et epoll-et-oneshot
	for t in epoll-et epoll-et-oneshot; do
		ac_ok "$t" revents=0x4 so_error=0 echo=2048
		ac_below "$t" waited_ms "$LATE_MS"
	done
}

@test "async: a socket that joined the epoll set before connect() (level, edge, one-shot) is reported only when the proxy answered" {
	slow_faultd
	ac_bg before-lt "$URL" epoll-before -m epoll-lt -d "$SLOW_MS"
	ac_bg before-et "$URL" epoll-before -m epoll-et -d "$SLOW_MS"
	ac_bg before-oneshot "$URL" epoll-before -m epoll-et-oneshot -d "$SLOW_MS"
	ac_wait
	for t in before-lt before-et before-oneshot; do
		ac_ok "$t" revents=0x4 so_error=0 echo=2048
	done
}

@test "async: one socket in two epoll sets (joined before and after connect()), a waiter blocked in each: both woken, neither early" {
	slow_faultd
	ac_bg two "$URL" epoll-two-sets -d "$SLOW_MS"
	ac_wait
	ac_ok two revents=0x4 second_set_revents=0x4 so_error=0 echo=2048
	ac_below two second_set_waited_ms "$LATE_MS"
}

@test "async: EPOLLEXCLUSIVE in two sets, a thread blocked in each: at least one woken, when the proxy answered" {
	slow_faultd
	ac_bg excl "$URL" epoll-exclusive -d "$SLOW_MS"
	ac_wait
	ac_ok excl 'woken=[12]' revents=0x4 so_error=0 echo=2048
}

# epoll: the thread blocks before connect() and the socket joins its set
# after; poll and select cannot wait for a socket before it connects.
@test "async: a thread already blocked in epoll_wait, poll or select is woken when the proxy answered, not before" {
	slow_faultd
	ac_bg thread-epoll "$URL" thread -m epoll-lt -d "$SLOW_MS"
	ac_bg thread-epoll-et "$URL" thread -m epoll-et -d "$SLOW_MS"
	ac_bg thread-poll "$URL" thread -m poll -d "$SLOW_MS"
	ac_bg thread-select "$URL" thread -m select -d "$SLOW_MS"
	ac_wait
	for t in thread-epoll thread-epoll-et thread-poll thread-select; do
		ac_ok "$t" thread_revents=0x4 so_error=0 echo=2048
		ac_below "$t" thread_waited_ms "$LATE_MS"
	done
}

# --- fork, dup, high descriptors ------------------------------------------------

@test "async: fork() while pending: the child (poll, or an inherited epoll set) and the parent both see the connect succeed; both echo" {
	slow_faultd
	ac_bg fork-poll "$URL" fork -m poll -d "$SLOW_MS"
	ac_bg fork-epoll "$URL" fork -m epoll-lt -d "$SLOW_MS"
	ac_wait
	for t in fork-poll fork-epoll; do
		cat "$BATS_TEST_TMPDIR/$t.err"
		ac_ok "$t" parent_revents=0x4 child=ok echo=2048
		grep -q '^asynccheck: fork-child ok .* so_error=0 echo=2048' "$BATS_TEST_TMPDIR/$t.err"
	done
}

@test "async: fork() while pending, the proxy refuses (0x05): the child reads ECONNREFUSED, the parent sees the socket hung up" {
	slow_faultd --reply 0x05
	ac_bg fork-fail "$URL" fork -m poll -d "$SLOW_MS" -e ECONNREFUSED
	ac_bg fork-fail-epoll "$URL" fork -m epoll-lt -d "$SLOW_MS" -e ECONNREFUSED
	ac_wait
	for t in fork-fail fork-fail-epoll; do
		cat "$BATS_TEST_TMPDIR/$t.err"
		ac_ok "$t" child=ok
		grep -q '^asynccheck: fork-child ok .* revents=0x1[cd] so_error=ECONNREFUSED' "$BATS_TEST_TMPDIR/$t.err"
	done
}

# ac_high_fd SCENARIO METHOD FD: SCENARIO (dup or highfd) through the slow
# faultd twice, with poll at descriptor 1500 (above FD_SETSIZE) and with
# METHOD, an epoll one, at FD, which RLIMIT_NOFILE may not reach (then the
# test is skipped): each reported when the proxy answered, each echoes.
ac_high_fd() {
	local scenario=$1 m=$2 fd=$3
	slow_faultd
	ac_bg "$scenario-poll" "$URL" "$scenario" -f 1500 -m poll -d "$SLOW_MS"
	ac_bg "$scenario-$m" "$URL" "$scenario" -f "$fd" -m "$m" -d "$SLOW_MS"
	ac_wait
	[ "$(cat "$BATS_TEST_TMPDIR/$scenario-$m.rc")" != 77 ] || skip "RLIMIT_NOFILE below $((fd + 1))"
	ac_ok "$scenario-poll" fd=1500 revents=0x4 so_error=0 echo=2048
	ac_ok "$scenario-$m" fd="$fd" revents=0x4 so_error=0 echo=2048
}

@test "async: a pending socket dup2()ed above 1024 and its original closed: the handshake goes on, the dup is reported and echoes" {
	ac_high_fd dup epoll-lt 3000
}

@test "async: a socket above 1024 before connect() (poll, epoll edge-triggered): reported when the proxy answered, echo intact" {
	ac_high_fd highfd epoll-et 2500
}

# --- The calls of a pending socket ------------------------------------------------

# After the handshake the first connect() may say 0, as Linux's own does for
# a connect that completed in the background, or EISCONN; the next EISCONN.
@test "async: while pending every read and write says EAGAIN, connect EALREADY, getpeername ENOTCONN, SO_ERROR 0; after, EISCONN and the destination" {
	slow_faultd
	ac_bg states "$URL" states -d "$SLOW_MS"
	ac_wait
	ac_ok states read=EAGAIN recv=EAGAIN readv=EAGAIN recvmsg=EAGAIN write=EAGAIN \
		send=EAGAIN writev=EAGAIN sendmsg=EAGAIN connect_again=EALREADY \
		getpeername=ENOTCONN pending_so_error=0 so_error=0 echo=2048 \
		'connect_after=0|EISCONN' connect_after2=EISCONN "peer=127\\.0\\.0\\.1:$DST_PORT"
	# Nothing the program wrote while pending reached faultd ahead of the
	# handshake: it parsed the request, and the echo came back exact.
	requests_are "$FAULT_LOG" 1
}

@test "async: close() cancels pending handshakes: descriptors back, threads not growing, reused numbers untouched" {
	start_faultd --stall request
	AC_TIMEOUT=1 ac_bg cancel "socks5://127.0.0.1:$FAULT_PORT" cancel -n 32
	ac_wait
	ac_ok cancel round1_pending=32 round2_pending=32
}

@test "async: 200 non-blocking connects in one epoll loop: each reported when its handshake is over, each echoes its own bytes" {
	slow_faultd
	ac_bg many "$URL" many -n 200 -b 256 -d "$SLOW_MS"
	ac_wait
	ac_ok many conns=200 pending=200 ok=200 failed=0 lost=0 early=0 readable_first=0
	ac_below many waited_ms_max 8000
	requests_are "$FAULT_LOG" 200
}

# --- A blocking connect: SO_SNDTIMEO and signals ----------------------------------

# ac_slow_and_stall SCENARIO: a blocking connect of SCENARIO with a 300 ms
# timer (-s) twice, through the slow faultd (tag SCENARIO-slow) and through
# one that stalls (SCENARIO-stall: ETIMEDOUT wanted at SOCKSIFY_TIMEOUT).
ac_slow_and_stall() {
	local ms=${2:-300}
	slow_faultd
	faultd_as stall --stall request
	ac_bg "$1-slow" "$URL" "$1" -s "$ms" -d "$SLOW_MS"
	AC_TIMEOUT=$STALL_TIMEOUT_S ac_bg "$1-stall" "socks5://127.0.0.1:$FAULT_PORT" \
		"$1" -s "$ms" -d "$STALL_MIN_MS" -e ETIMEDOUT
	ac_wait
}

@test "async: blocking connect with SO_SNDTIMEO 300 ms: EINPROGRESS then, the outcome later through poll (slow: ok; stall: ETIMEDOUT)" {
	ac_slow_and_stall sndtimeo
	ac_ok sndtimeo-slow connect=EINPROGRESS revents=0x4 so_error=0 echo=2048
	ac_ok sndtimeo-stall connect=EINPROGRESS so_error=ETIMEDOUT
	for t in sndtimeo-slow sndtimeo-stall; do
		ac_below "$t" connect_ms 1500
	done
	ac_below sndtimeo-stall waited_ms "$STALL_MAX_MS"
}

@test "async: blocking connect, SIGALRM without SA_RESTART: EINTR, then it completes in the background (slow: ok; stall: ETIMEDOUT)" {
	# The signal at 500 ms of the proxy's 1,000: the caller is long in its
	# wait by then, even on a machine busy with other suites.
	ac_slow_and_stall eintr 500
	ac_ok eintr-slow connect=EINTR signals=1 revents=0x4 so_error=0 echo=2048
	ac_ok eintr-stall connect=EINTR signals=1 so_error=ETIMEDOUT
	ac_below eintr-stall waited_ms "$STALL_MAX_MS"
}

# O_ASYNC makes the proxy's own answer raise SIGIO the instant it wakes the
# library's wait: the signal comes while the library is between two of its
# system calls, every time, which SIGALRM above hits only by chance.
@test "async: blocking connect, SIGIO (O_ASYNC) without SA_RESTART at the proxy's first answer: EINTR then, not 0 at the end" {
	slow_faultd
	ac_bg sigio "$URL" sigio -d "$SLOW_MS"
	ac_wait
	ac_ok sigio connect=EINTR 'signals=[1-9][0-9]*' revents=0x4 so_error=0 echo=2048
}

@test "async: a SIGALRM handler connect()s the socket whose blocking connect() it interrupted: EALREADY at once, and the first returns 0" {
	slow_faultd
	ac_bg reenter "$URL" reenter -s 300 -d "$SLOW_MS"
	ac_wait
	ac_ok reenter connect=0 signals=1 again=EALREADY
	ac_below reenter connect_ms "$LATE_MS"
}

# connect() is a cancellation point: a thread cancelled in it is gone, and
# the connection goes on. The library gave the handshake to nobody: the
# socket stayed pending for good, so no poll() ever reported it; a cancel
# pending before connect() acted under the library's lock.
@test "async: pthread_cancel() of a thread in a blocking connect() (pending before it, or in its wait): it ends, the handshake goes on in the background (poll reports it, echo intact); cancelled waiters in poll() and read(), or a driver whose socket was closed, leave nothing behind" {
	slow_faultd
	ac_bg pcancel "$URL" pcancel -s 300 -d "$SLOW_MS"
	ac_wait
	ac_ok pcancel revents=0x4 so_error=0 echo=2048 'eventfds_before=[0-9]+' 'sockets_before=[0-9]+'
}

# While the library writes its warning for a failing proxy to a stderr
# nobody reads, a signal's default action must still end the program: the
# write runs with the program's signal mask, not the drive's.
@test "async: a blocking connect() whose proxy warning blocks on a full stderr pipe: SIGTERM still ends the program" {
	start_faultd --close greeting
	local pf=$BATS_TEST_TMPDIR/stuck.pid pid i st=''
	env SOCKSIFY_TIMEOUT=5 SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$FAULT_PORT" python3 -c '
import os, socket, sys
r, w = os.pipe()
os.dup2(w, 2)
os.set_blocking(2, False)
try:
    while True:
        os.write(2, b"x" * 4096)
except BlockingIOError:
    pass
os.set_blocking(2, True)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % os.getpid())
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
socket.create_connection(("127.0.0.1", 9))
' "$pf" 3>&- >/dev/null &
	pid=$!
	PIDS+=($pid)
	wait_for_line "$pf" 100 '^[0-9]+$'
	# until the library sits in its write (bounded: 5 s)
	for i in $(seq 50); do
		grep -q pipe_write "/proc/$pid/wchan" 2>/dev/null && break
		sleep 0.1
	done
	cat "/proc/$pid/wchan"; echo
	grep -q pipe_write "/proc/$pid/wchan"
	kill -TERM "$pid"
	for i in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		grep -E 'SigBlk|ShdPnd' "/proc/$pid/status"
		false
	fi
	wait "$pid" || st=$?
	[ "$st" = 143 ]
}

@test "async: blocking connect, SIGALRM every 300 ms with SA_RESTART: connect() returns 0 once the proxy answered, echo intact" {
	slow_faultd
	ac_bg restart "$URL" restart -s 300 -d "$SLOW_MS"
	ac_wait
	ac_ok restart connect=0 'signals=[1-9][0-9]*' echo=2048
	ac_below restart connect_ms "$LATE_MS"
}

# --- Failures through the event loop ----------------------------------------------

# FAULT_MATRIX (common.bash) but the cases of exact wrong bytes: STEP FAULT
# ERRNO, what SO_ERROR says when faultd answers STEP so, "ok" for a handshake
# that only takes long.
ASYNC_MATRIX=()
for c in "${FAULT_MATRIX[@]}"; do
	read -r step fault want hex <<<"$c"
	[ -n "$hex" ] || ASYNC_MATRIX+=("$c")
done
unset c step fault want hex

# Every case at once, each with a faultd of its own: a non-blocking connect
# and poll(POLLOUT), as an event loop does. While the proxy is silent or slow
# the program writes at once (-w): EAGAIN, none of its bytes reach the proxy.
@test "async: every fault at every step through poll: the errno in SO_ERROR, POLLOUT|POLLERR|POLLHUP, in bounded time" {
	local c step fault want tag url args got ms ev
	for c in "${ASYNC_MATRIX[@]}"; do
		read -r step fault want <<<"$c"
		tag=$step-$fault
		faultd_as "$tag" --"$fault" "$step"
		url=socks5://127.0.0.1:$FAULT_PORT
		[ "$step" = auth ] && url=socks5://u:p@127.0.0.1:$FAULT_PORT
		args=(-e "$want")
		case $fault in
		stall | truncate-stall) args+=(-w -d "$STALL_MIN_MS") ;;
		slow) args+=(-w -d $([ "$step" = request ] && echo "$SLOW_MS" || echo "$SLOW_GREETING_MS")) ;;
		esac
		AC_TIMEOUT=$STALL_TIMEOUT_S ac_bg "$tag" "$url" fail-errno "${args[@]}"
	done
	ac_wait
	for c in "${ASYNC_MATRIX[@]}"; do
		read -r step fault want <<<"$c"
		tag=$step-$fault
		got=$(ac_field "$tag" so_error) ms=$(ac_field "$tag" waited_ms) ev=$(ac_field "$tag" revents)
		printf '%-9s %-15s want %-13s got %-13s %5s ms  revents %s\n' "$step" "$fault" \
			"$want" "${got:--}" "${ms:--}" "${ev:--}"
	done
	for c in "${ASYNC_MATRIX[@]}"; do
		read -r step fault want <<<"$c"
		tag=$step-$fault
		case $want in
		ok) ac_ok "$tag" so_error=0 revents=0x4 echo=2048 early_write=EAGAIN
		    ac_below "$tag" waited_ms "$LATE_MS" ;;
		ETIMEDOUT) ac_ok "$tag" so_error=ETIMEDOUT revents=0x1c early_write=EAGAIN
		    ac_below "$tag" waited_ms "$STALL_MAX_MS" ;;
		*) ac_ok "$tag" so_error="$want" revents=0x1c
		   ac_below "$tag" waited_ms "$PROMPT_MS" ;;
		esac
		# The request reached faultd exactly when the fault is there or later.
		if [ "$step" = request ] || [ "$want" = ok ]; then
			requests_are "$BATS_TEST_TMPDIR/faultd.$tag.log" 1
		else
			requests_are "$BATS_TEST_TMPDIR/faultd.$tag.log" 0
		fi
	done
}

# CONTRACT.md's mapping of reply codes, each reply a second late (--slow):
# nothing is reported before it, then the errno.
@test "async: every reply code, a second late: silent until then, then POLLOUT|POLLERR|POLLHUP and the contract's errno" {
	local c code want tag
	local codes=("0x01 ECONNREFUSED" "0x02 EACCES" "0x03 ENETUNREACH" "0x04 EHOSTUNREACH"
		"0x05 ECONNREFUSED" "0x06 ETIMEDOUT" "0x07 ECONNREFUSED" "0x08 ECONNREFUSED"
		"0x09 ECONNREFUSED" "0xff ECONNREFUSED")
	for c in "${codes[@]}"; do
		read -r code want <<<"$c"
		faultd_as "reply-$code" --slow request --reply "$code"
		ac_bg "reply-$code" "socks5://127.0.0.1:$FAULT_PORT" fail-errno -w -d "$SLOW_MS" -e "$want"
	done
	ac_wait
	for c in "${codes[@]}"; do
		read -r code want <<<"$c"
		ac_ok "reply-$code" so_error="$want" revents=0x1c early_write=EAGAIN
		ac_below "reply-$code" waited_ms "$LATE_MS"
		requests_are "$BATS_TEST_TMPDIR/faultd.reply-$code.log" 1
	done
}

# The non-blocking path says what the blocking one says (stress probe).
@test "async: a wrong password, no acceptable method and an unreachable proxy: SO_ERROR says what a blocking connect says" {
	local closed blocking
	faultd_as cred --user u:secret
	ac_bg wrong-password "socks5://u:wrong@127.0.0.1:$FAULT_PORT" fail-errno -e "$WRONG_CRED_ERRNO"
	ac_bg no-method "socks5://127.0.0.1:$FAULT_PORT" fail-errno -e EACCES
	closed=$(free_port)
	ac_bg unreachable "socks5://127.0.0.1:$closed" fail-errno -e ECONNREFUSED
	ac_wait
	ac_ok wrong-password so_error="$WRONG_CRED_ERRNO" revents=0x1c
	ac_ok no-method so_error=EACCES revents=0x1c
	ac_ok unreachable so_error=ECONNREFUSED revents=0x1c
	blocking=$(timeout 30 env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://u:wrong@127.0.0.1:$FAULT_PORT" \
		"$STRESS" probe "$DST" "$DST_PORT")
	echo "blocking, wrong password: $blocking"
	[ "${blocking% *}" = "$WRONG_CRED_ERRNO" ]
	for t in wrong-password no-method unreachable; do
		ac_below "$t" waited_ms "$PROMPT_MS"
	done
}

# --- Chains and a proxy far away ---------------------------------------------------

@test "async: a chain of two hops, the second slow: not reported when the first hop is through, only when the last answered" {
	slow_faultd
	start_socksifyd -v
	ac_bg chain "socks5://127.0.0.1:$PROXY_PORT,socks5://127.0.0.1:$FAULT_PORT" poll -d "$SLOW_MS"
	ac_bg chain-et "socks5://127.0.0.1:$PROXY_PORT,socks5://127.0.0.1:$FAULT_PORT" epoll-et -d "$SLOW_MS"
	ac_wait
	ac_ok chain revents=0x4 so_error=0 echo=2048
	ac_ok chain-et revents=0x4 so_error=0 echo=2048
	requests_are "$FAULT_LOG" 2
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\\.0\\.0\\.1:$FAULT_PORT"
}

# delayfwd (tests/bin/delayfwd.c) 250 ms each way in front of socksifyd and a
# real echo target: a round trip costs 500 ms, and the handshake has one at
# least.
@test "async: socksifyd behind a 250 ms delay line: poll, edge-triggered epoll and 50 at once, none reported before a round trip" {
	[ -x "$BUILD/tests/delayfwd" ] && declare -F start_delayfwd >/dev/null ||
		skip "tests/bin/delayfwd.c is not built yet"
	start_stress_echod
	start_socksifyd -v
	start_delayfwd "127.0.0.1:$PROXY_PORT" 250
	AC_PORT=$ECHO_PORT ac_bg far-poll "socks5://127.0.0.1:$DELAY_PORT" poll -d 500
	AC_PORT=$ECHO_PORT ac_bg far-et "socks5://127.0.0.1:$DELAY_PORT" epoll-et -d 500
	AC_PORT=$ECHO_PORT ac_bg far-many "socks5://127.0.0.1:$DELAY_PORT" many -n 50 -b 256 -d 500
	ac_wait
	ac_ok far-poll revents=0x4 so_error=0 echo=2048
	ac_ok far-et revents=0x4 so_error=0 echo=2048
	ac_ok far-many ok=50 early=0
}

# The blocking path's system calls, counted by strace: what the library
# adds to a program's blocking connect() through a proxy on this host.
@test "blocking connect to a proxy on this host: no poll before the first write, one poll per answer, no recv that says EAGAIN, F_GETFL once" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace denied)"
	start_socksifyd --no-auth
	start_http 127.0.0.1
	local n=10 trace=$BATS_TEST_TMPDIR/trace
	run env SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" SOCKSIFY_EXCLUDE=none \
	    SOCKSIFY_PIPELINE=off LD_PRELOAD="$LIB" \
	    strace -f -qq -o "$trace" -e trace=socket,poll,ppoll,recvfrom,fcntl python3 -c '
import socket, sys
for i in range(int(sys.argv[2])):
    s = socket.socket()
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.close()
print("done")' "$HTTP_PORT" "$n"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = done ]
	local polls pollout eagain getfl
	polls=$(grep -cE '^[0-9]+ +p?poll\(' "$trace" || true)
	pollout=$(grep -cE '^[0-9]+ +p?poll\(.*events=POLLOUT' "$trace" || true)
	eagain=$(grep -cE 'recvfrom\(.*= -1 EAGAIN' "$trace" || true)
	# python's own start-up reads flags too: from the first socket on
	getfl=$(awk '/ socket\(AF_INET/ { on = 1 } on && /fcntl\([0-9]+, F_GETFL/ { c++ } END { print c + 0 }' "$trace")
	echo "polls=$polls pollout=$pollout eagain=$eagain getfl=$getfl"
	# lock-step: the method's answer and the reply, one wait each; a
	# POLLOUT wait only where the loopback handshake was not over when
	# connect() returned (softirq work deferred on a busy machine: rare;
	# before this change, every connect)
	[ "$pollout" -le $((n / 2)) ]
	[ "$polls" -eq $((2 * n + pollout)) ]
	[ "$eagain" -eq 0 ]
	[ "$getfl" -eq "$n" ]
}
