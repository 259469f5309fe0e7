#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# Where socksifyd's log goes: --log FILE (time-stamped, mode 0600, reopened
# on SIGHUP as logrotate needs) and --syslog (a datagram per line to
# /dev/log, never waiting), the readiness line on stderr in every case.
# /dev/log is a socket of the test's (helpers/devlog.sh: a mount namespace).

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}
teardown() { stop_all; }

SDCHECK=$HELPERS/sdcheck.py
DEVLOG=$HELPERS/devlog.sh

fetch() {
	curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$PROXY_PORT" \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha
}

# A message line of the file: a UTC timestamp to the millisecond, then the
# message as stderr has it.
STAMP='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'

@test "--log FILE: messages time-stamped, sessions, mode 0600; stderr keeps the readiness line alone" {
	local f=$BATS_TEST_TMPDIR/s.log
	start_socksifyd -v --log "$f"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	wait_for_count "$f" 30 "target=127.0.0.1:$HTTP_PORT	.*outcome=ok" 1
	grep -qE "^$STAMP socksifyd: listening on 127\.0\.0\.1:$PROXY_PORT\$" "$f"
	[ "$(stat -c %a "$f")" = 600 ]
	cat "$SOCKSIFYD_LOG"
	[ "$(grep -vc '^socksifyd: listening on ' "$SOCKSIFYD_LOG")" = 0 ]
	kill "$SOCKSIFYD_PID"
	wait_for_line "$f" 50 "^$STAMP socksifyd: stopped\$"
	[ "$(grep -vc '^socksifyd: listening on ' "$SOCKSIFYD_LOG")" = 0 ]
}

@test "--log FILE: moved away and SIGHUP (logrotate), the next lines go to a new FILE, none lost" {
	local f=$BATS_TEST_TMPDIR/s.log
	start_socksifyd -v --log "$f"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	wait_for_count "$f" 30 "outcome=ok" 1
	mv "$f" "$f.1"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]		# still written to the moved file
	wait_for_count "$f.1" 30 "outcome=ok" 2
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$f" 50 "^$STAMP socksifyd: reloaded users and rules\$"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	wait_for_count "$f" 30 "outcome=ok" 1
	[ "$(grep -c outcome=ok "$f.1")" = 2 ]
	[ "$(stat -c %a "$f")" = 600 ]
}

@test "--log FILE that cannot be reopened on SIGHUP: one line says so, logging goes on in the old one" {
	local f=$BATS_TEST_TMPDIR/s.log
	start_socksifyd -v --log "$f"
	mv "$f" "$f.1"
	mkdir "$f"			# open(O_WRONLY) of a directory: EISDIR
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$f.1" 50 "socksifyd: log: cannot reopen $f: Is a directory; still writing to the old one\$"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	wait_for_count "$f.1" 30 "outcome=ok" 1
}

@test "--log FILE that exists with a looser mode: kept, and a warning says so" {
	local f=$BATS_TEST_TMPDIR/s.log
	: >"$f"
	chmod 644 "$f"
	start_socksifyd --log "$f"
	grep -qE "^$STAMP socksifyd: warning: log file $f may be read by others \(it names users and clients\): chmod 600 it\$" "$f"
}

@test "--log: a FILE that cannot be opened is exit 1 with one line; no value is a usage error (2); 'log FILE' in a config file" {
	run -1 --separate-stderr "$SOCKSIFYD" -l 127.0.0.1:0 --log "$BATS_TEST_TMPDIR/no/such/dir/s.log"
	echo "$stderr"
	[ "$stderr" = "socksifyd: --log $BATS_TEST_TMPDIR/no/such/dir/s.log: No such file or directory" ]
	run -2 --separate-stderr "$SOCKSIFYD" --log
	[ "${#stderr_lines[@]}" = 1 ]
	[[ "$stderr" == *"'--log' needs an argument"* ]]
	printf 'log %s\nverbose\n' "$BATS_TEST_TMPDIR/c.log" >"$BATS_TEST_TMPDIR/conf"
	start_socksifyd --config "$BATS_TEST_TMPDIR/conf"
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	wait_for_count "$BATS_TEST_TMPDIR/c.log" 30 "outcome=ok" 1
}

@test "--syslog: a datagram per line to /dev/log, facility daemon, severity by kind, our PID; readiness on stderr too" {
	local sock=$BATS_TEST_TMPDIR/log.sock out=$BATS_TEST_TMPDIR/syslog.out
	python3 "$SDCHECK" notify "$sock" "$out" 3>&- &
	PIDS+=($!)
	wait_for_line "$out" 50 '^bound$'
	printf 'alice:wonderland\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	SOCKSIFYD_WRAP="bash $DEVLOG $sock" start_socksifyd --syslog -u "$BATS_TEST_TMPDIR/users"
	local head="Dec|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov"
	head="($head) [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} socksifyd\[$SOCKSIFYD_PID\]: "
	# Readiness: info (6) of daemon (3 << 3) = 30, and still on stderr.
	wait_for_line "$out" 50 "^<30>${head}listening on 127\.0\.0\.1:$PROXY_PORT\$"
	grep -q "^socksifyd: listening on 127.0.0.1:$PROXY_PORT\$" "$SOCKSIFYD_LOG"
	# A wrong password: logged at the default level, never the password.
	run curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$PROXY_PORT" \
		--proxy-user alice:looking-glass "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -ne 0 ]
	wait_for_line "$out" 50 "^<30>${head}$STAMP	client=127\.0\.0\.1:[0-9]+	user=alice	.*outcome=auth failed"
	! grep -q looking-glass "$out" || false
	# SIGHUP: the reload said as a warning (4): 28.
	kill -HUP "$SOCKSIFYD_PID"
	wait_for_line "$out" 50 "^<28>${head}reloaded users and rules\$"
	cat "$SOCKSIFYD_LOG"
	[ "$(grep -vc '^socksifyd: listening on ' "$SOCKSIFYD_LOG")" = 0 ]
}

@test "--syslog with a syslog daemon that stopped reading: relaying goes on, its lines are dropped, never waited for" {
	local sock=$BATS_TEST_TMPDIR/log.sock out=$BATS_TEST_TMPDIR/syslog.out i
	python3 "$SDCHECK" deaf "$sock" "$out" 3>&- &
	PIDS+=($!)
	wait_for_line "$out" 50 '^bound$'
	SOCKSIFYD_WRAP="bash $DEVLOG $sock" start_socksifyd --syslog -v --workers 1
	# More session lines than the socket's queue holds (net.unix.max_dgram_qlen,
	# 10 to 512): each a greeting of a wrong version, closed at once.
	for ((i = 0; i < 600; i++)); do
		exec 5<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
		printf '\004\001\000' >&5
		exec 5>&-
	done
	[ "$(fetch)" = "$PAYLOAD_SHA" ]
	kill -0 "$SOCKSIFYD_PID"
}
