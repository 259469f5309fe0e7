#!/usr/bin/env bats
# The readiness gate and the engine where a cold review once broke them
# (tests/bin/gatecheck.c): signal handlers, vfork(), descriptors closed
# inside libc, epoll sets closed and reused, EINTR retries, MSG_DONTWAIT and
# socket timeouts, no descriptor left, fork() while pending. faultd echoes
# what follows a CONNECT; delayfwd makes it 300 ms away each way.

load helpers/common

GATECHECK=$BUILD/tests/gatecheck
# The destination gatecheck asks for: faultd answers it, nothing listens.
DEST=(127.0.0.1 9)

setup() {
	[ -x "$GATECHECK" ] || skip "make testbin first"
}

teardown() {
	stop_all
}

# gate SCENARIO PROXYPORT [ENV...]: one scenario under the library.
gate() {
	local scen=$1 port=$2
	shift 2
	run env "$@" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$port" \
		timeout 30 "$GATECHECK" "$scen" "${DEST[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" == "gatecheck: $scen ok"* ]]
}

slow_proxy() {
	start_faultd
	start_delayfwd "127.0.0.1:$FAULT_PORT" 300
}

@test "gate: a signal handler that close()s an fd registered in epoll, while the thread is in epoll_ctl(): no deadlock" {
	gate sigclose 9
}

@test "gate: a vfork()ed child closing a pending socket before _exit() leaves the parent's handshake alone" {
	slow_proxy
	gate vfork "$DELAY_PORT"
}

@test "gate: a pending socket closed inside libc (fclose), its number reused: the new socket stays gated past the old deadline" {
	start_faultd --stall greeting
	gate stale "$FAULT_PORT" SOCKSIFY_TIMEOUT=2
}

@test "gate: an epoll set closed while its socket was pending, its number reused by a new set: the new set hears nothing" {
	slow_proxy
	gate epreuse "$DELAY_PORT"
}

@test "gate: a blocking connect() retried after EINTR ends in 0, not EISCONN" {
	slow_proxy
	gate eintr "$DELAY_PORT"
}

@test "gate: a pending blocking socket: MSG_DONTWAIT says EAGAIN at once, SO_RCVTIMEO bounds a read with EAGAIN" {
	start_faultd --stall greeting
	gate dontwait "$FAULT_PORT"
}

@test "gate: no descriptor left while a blocking socket is pending: poll() stays silent, write() says EAGAIN" {
	start_faultd --stall greeting
	gate emfile "$FAULT_PORT"
}

@test "gate: fork() while a connect is pending waits for it without burning the CPU" {
	slow_proxy
	gate forkwait "$DELAY_PORT"
}

@test "gate: close() of a socket whose blocking connect() waits in another thread ends that connect() at once" {
	start_faultd --stall greeting
	gate closerace "$FAULT_PORT"
}

@test "gate: a vfork()ed child's epoll_ctl() does not take the parent's state: a dup() after connect() still says EAGAIN" {
	start_faultd --stall greeting
	gate vforkown "$FAULT_PORT"
}

@test "gate: another library's fork handler whose thread calls epoll_ctl() to park: fork() returns" {
	gate atfork 9
}

@test "gate: poll, ppoll and select with a zero timeout on a pending socket return 0 at once, every time" {
	start_faultd --stall greeting
	gate pollzero "$FAULT_PORT" SOCKSIFY_TIMEOUT=10
}

@test "gate: a SIGSEGV handler without SA_RESTART beside a SIGALRM one with it: the blocking connect() is restarted, returns 0" {
	slow_proxy
	gate crashrestart "$DELAY_PORT"
}
