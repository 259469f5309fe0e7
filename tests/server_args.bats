#!/usr/bin/env bats
# socksifyd's options as written: what each --listen form means, and the
# status and the one line of every mistake in them, on the command line and
# in a config file.

load helpers/common

teardown() { stop_all; }

# usage_line LINE ARGS...: socksifyd ARGS exits 2 with LINE as its only line.
usage_line() {
	local want=$1
	shift
	run timeout 5 "$SOCKSIFYD" "$@"
	echo "status $status, output: $output"
	echo "want: $want"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "$want" ]
}

# bad_listen ADDR REASON: -l ADDR is a usage error naming REASON.
bad_listen() {
	usage_line "socksifyd: bad listen address '$1': $2 (try 'socksifyd --help')" -l "$1"
}

@test "an option without its argument is named as it was written: --users, -u" {
	usage_line "socksifyd: option '--users' needs an argument (try 'socksifyd --help')" --users
	usage_line "socksifyd: option '-u' needs an argument (try 'socksifyd --help')" -u
	usage_line "socksifyd: option '-u' needs an argument (try 'socksifyd --help')" -vu
	usage_line "socksifyd: option '--listen' needs an argument (try 'socksifyd --help')" --listen
}

@test "-l: a malformed address exits 2 with one line naming the bad part" {
	bad_listen 999.1.1.1:1080 "'999.1.1.1' is not an IPv4 address"
	bad_listen 10.1.1:1080 "'10.1.1' is not an IPv4 address"
	bad_listen 127.0.0.1:70000 'port 70000 is not 0 to 65535'
	bad_listen 127.0.0.1:99999999999999999999 'port 99999999999999999999 is not 0 to 65535'
	bad_listen 127.0.0.1:80x "port '80x' is not a number"
	bad_listen 127.0.0.1:-1 "port '-1' is not a number"
	bad_listen 127.0.0.1: "no port after ':'"
	bad_listen '' 'empty address'
	bad_listen '[]:1080' "no address in '[]'"
	bad_listen '[::1:1080' "'[' without ']'"
	bad_listen '::1]:1080' "']' without '['"
	bad_listen '[::1]1080' "'1080' after ']' is not ':PORT'"
	bad_listen '[127.0.0.1]:1080' "'127.0.0.1' in brackets is not an IPv6 address"
	bad_listen '[::1]:' "no port after ':'"
	bad_listen '::1::2' "'::1::2' is not an IPv6 address (with a port: [::1]:1080)"
	bad_listen 'not an address:80' "'not an address' is not a host name"
	bad_listen "$(printf 'a%.0s' {1..256}):80" 'host name longer than 255 bytes'
	# the same line from a config file, after FILE:LINE
	cfg=$BATS_TEST_TMPDIR/socksifyd.conf
	printf 'verbose\nlisten 999.1.1.1:1080\n' >"$cfg"
	usage_line "socksifyd: $cfg:2: bad listen address '999.1.1.1:1080': '999.1.1.1' is not an IPv4 address" --config "$cfg"
}

@test "-l: a well-formed address that cannot be bound is a runtime failure (exit 1)" {
	# TEST-NET-1: no interface of this host has it
	run timeout 5 "$SOCKSIFYD" -l 192.0.2.1:0
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "socksifyd: bind 192.0.2.1:0: Cannot assign requested address" ]
	start_socksifyd
	run timeout 5 "$SOCKSIFYD" -l "127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "socksifyd: bind 127.0.0.1:$PROXY_PORT: Address already in use" ]
}

@test "-l: an address given twice, or one a ':PORT' covers, or --metrics on a listener's port, or an IPv4-mapped one, exits 2 with its reason; port 0 and other addresses on one port are fine" {
	port=$(free_port)
	usage_line "socksifyd: listen address '127.0.0.1:$port' is given twice (try 'socksifyd --help')" \
		-l "127.0.0.1:$port" -l "127.0.0.1:$port"
	usage_line "socksifyd: listen address '127.0.0.1:$port' is given twice (try 'socksifyd --help')" \
		-l "$port" -l "127.0.0.1:$port"
	usage_line "socksifyd: listen address ':$port' is given twice (try 'socksifyd --help')" \
		-l ":$port" -l ":$port"
	usage_line "socksifyd: listen address '127.0.0.1:$port' takes the port of ':$port', given before (try 'socksifyd --help')" \
		-l ":$port" -l "127.0.0.1:$port"
	usage_line "socksifyd: listen address ':$port' takes the port of '[::1]:$port', given before (try 'socksifyd --help')" \
		-l "[::1]:$port" -l ":$port"
	usage_line "socksifyd: listen address '[::]:$port' takes the port of '[::1]:$port', given before (try 'socksifyd --help')" \
		-l "[::1]:$port" -l "[::]:$port"
	cfg=$BATS_TEST_TMPDIR/socksifyd.conf
	printf 'listen 127.0.0.1:%s\nlisten 127.0.0.1:%s\n' "$port" "$port" >"$cfg"
	usage_line "socksifyd: $cfg:2: listen address '127.0.0.1:$port' is given twice" --config "$cfg"
	# The metrics endpoint on a listener's port, before or after it
	# (bind said "Address already in use", status 1).
	usage_line "socksifyd: bad metrics address '127.0.0.1:$port': a listen address has that port" \
		-l "127.0.0.1:$port" --metrics "127.0.0.1:$port"
	usage_line "socksifyd: bad metrics address '127.0.0.1:$port': a listen address has that port" \
		--metrics "127.0.0.1:$port" -l "0.0.0.0:$port" --no-auth
	# An IPv4-mapped address: an IPv6 listener is IPv6 only (bind said
	# "Invalid argument", status 1).
	usage_line "socksifyd: bad listen address '[::ffff:127.0.0.1]:$port': an IPv4-mapped address, which an IPv6 listener (IPv6 only) cannot take: give 127.0.0.1 (try 'socksifyd --help')" \
		-l "[::ffff:127.0.0.1]:$port"
	# each listens: two free ports; two loopback addresses on one port;
	# IPv4 everywhere beside IPv6 loopback (an IPv6 listener is IPv6 only)
	start_socksifyd -l 127.0.0.1:0 -l 127.0.0.1:0 -l "127.0.0.2:$port" -l "127.0.0.1:$port"
	wait_for_count "$SOCKSIFYD_LOG" 20 'listening on' 4
	[ "$(grep -c "listening on 127.0.0.1:[1-9]" "$SOCKSIFYD_LOG")" -eq 3 ]
	grep -qxF "socksifyd: listening on 127.0.0.2:$port" "$SOCKSIFYD_LOG"
	stop_all
	start_socksifyd -l "0.0.0.0:$port" -l "[::1]:$port" --no-auth
	wait_for_count "$SOCKSIFYD_LOG" 20 'listening on' 2
	grep -qxF "socksifyd: listening on [::1]:$port" "$SOCKSIFYD_LOG"
}

@test "-l PORT is 127.0.0.1:PORT" {
	port=$(free_port)
	start_socksifyd -l "$port"
	[ "$(cat "$SOCKSIFYD_LOG")" = "socksifyd: listening on 127.0.0.1:$port" ]
	dead=$(free_port)
	run python3 "$HELPERS/s5probe.py" "$port" 050100 "050100017f000001$(port_hex "$dead")"
	[ "${lines[0]:0:8}" = "05000505" ]
	bad_listen 65536 'port 65536 is not 0 to 65535'
}

@test "-l :PORT is every address, 0.0.0.0 and [::] on one port, and needs --users or --no-auth" {
	run timeout 5 "$SOCKSIFYD" -l :0
	echo "$output"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" =~ ^"socksifyd: refusing to listen on 0.0.0.0:"[0-9]+" without --users (an open relay); give --no-auth to run it anyway"$ ]]
	start_socksifyd -l :0 --no-auth
	wait_for_count "$SOCKSIFYD_LOG" 20 'listening on' 2
	[ "$(cat "$SOCKSIFYD_LOG")" = "socksifyd: listening on 0.0.0.0:$PROXY_PORT
socksifyd: listening on [::]:$PROXY_PORT" ]
	# both families are served; off loopback the host is a denied destination
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100 "050100017f000001$(port_hex 80)"
	[ "${lines[0]:0:8}" = "05000502" ]
	run python3 "$HELPERS/s5probe.py" -6 "$PROXY_PORT" 050100 "050100017f000001$(port_hex 80)"
	[ "${lines[0]:0:8}" = "05000502" ]
	stop_all
	printf 'alice:pw\n' >"$BATS_TEST_TMPDIR/users"
	chmod 600 "$BATS_TEST_TMPDIR/users"
	# a port free now may be taken by a parallel suite before the server
	# binds it: a bind failure (exit 1, the test above) means another port
	local try
	for try in 1 2 3 4 5; do
		port=$(free_port)
		SOCKSIFYD_READY='^socksifyd: (listening on |bind )' \
			start_socksifyd -l ":$port" -u "$BATS_TEST_TMPDIR/users" --workers 2
		grep -q '^socksifyd: bind ' "$SOCKSIFYD_LOG" || break
		stop_all
	done
	wait_for_count "$SOCKSIFYD_LOG" 20 'listening on' 2
	[ "$(cat "$SOCKSIFYD_LOG")" = "socksifyd: listening on 0.0.0.0:$port
socksifyd: listening on [::]:$port" ]
	# ':PORT' takes two of the 16 listeners
	local args=() i
	for i in $(seq 15); do args+=(-l 127.0.0.1:0); done
	usage_line "socksifyd: too many listen addresses (at most 16; ':PORT' is two) (try 'socksifyd --help')" "${args[@]}" -l :0
}

# own_lookup HOSTS CMD...: CMD in a mount namespace of its own whose
# /etc/nsswitch.conf says "hosts: HOSTS" and whose only nameserver is
# 127.0.0.2, where nothing listens: a lookup's outcome then depends on
# neither this host's DNS nor scripts/test.sh's jail.
own_lookup() {
	local hosts=$1
	shift
	[ -f /etc/nsswitch.conf ] || skip "no /etc/nsswitch.conf to bind over"
	unshare --mount true 2>/dev/null || skip "needs a mount namespace of our own (unshare --mount)"
	printf 'hosts: %s\n' "$hosts" >"$BATS_TEST_TMPDIR/nsswitch.conf"
	printf 'nameserver 127.0.0.2\noptions timeout:1 attempts:1\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	unshare --mount sh -c 'mount --bind "$0/nsswitch.conf" /etc/nsswitch.conf &&
		mount --bind "$0/resolv.conf" /etc/resolv.conf && exec "$@"' "$BATS_TEST_TMPDIR" "$@"
}

@test "-l NAME:PORT: a name that does not exist exits 2; a lookup that cannot be made, 1" {
	# /etc/hosts alone: the name is not there, an answer
	run own_lookup files timeout 5 "$SOCKSIFYD" -l no-such-host.invalid:0
	echo "$output"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "socksifyd: bad listen address 'no-such-host.invalid:0': host 'no-such-host.invalid' not found" ]
	# the DNS alone, and no server answers: no answer, which may change
	run own_lookup dns timeout 5 "$SOCKSIFYD" -l no-such-host.invalid:0
	echo "$output"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "socksifyd: listen address 'no-such-host.invalid:0': cannot look 'no-such-host.invalid' up: Temporary failure in name resolution" ]
	# a name /etc/hosts has is served
	run own_lookup files timeout 2 "$SOCKSIFYD" -l localhost:0
	[ "$status" -eq 124 ]
	[[ "${lines[0]}" =~ ^"socksifyd: listening on "(127.0.0.1|\[::1\]):[0-9]+$ ]]
}

@test "--config '' (an unset variable) is a usage error that says so" {
	usage_line "socksifyd: --config: an empty file name" --config ''
}

@test "config file: a '#' after a blank starts a comment; a '#' inside a word is part of it" {
	local cfg=$BATS_TEST_TMPDIR/socksifyd.conf u=$BATS_TEST_TMPDIR/users
	printf 'alice:pw\n' >"$u"
	chmod 600 "$u"
	printf 'handshake-timeout 5000   # five seconds\nusers %s  # alice\nidle-timeout 60000\t# a minute\nverbose # and a line per session\n' "$u" >"$cfg"
	start_socksifyd --config "$cfg"
	[ "$(cat "$SOCKSIFYD_LOG")" = "socksifyd: listening on 127.0.0.1:$PROXY_PORT" ]
	# the users file was read: no authentication is no acceptable method
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100
	[ "${lines[0]}" = "05ff" ]
	stop_all
	mv "$u" "$BATS_TEST_TMPDIR/al#ice"
	printf 'users %s\n' "$BATS_TEST_TMPDIR/al#ice" >"$cfg"
	start_socksifyd --config "$cfg"
	run python3 "$HELPERS/s5probe.py" "$PROXY_PORT" 050100
	[ "${lines[0]}" = "05ff" ]
	# a value that is all comment is no value
	printf 'idle-timeout # none\n' >"$cfg"
	usage_line "socksifyd: $cfg:1: 'idle-timeout' needs a value" --config "$cfg"
}

@test "an unknown option name gets the nearest known one, within two edits: did you mean" {
	local cfg=$BATS_TEST_TMPDIR/socksifyd.conf
	printf 'verbose\nidle-timout 60000\n' >"$cfg"
	usage_line "socksifyd: $cfg:2: unknown option 'idle-timout'; did you mean 'idle-timeout'?" --config "$cfg"
	printf 'lsiten 127.0.0.1:0\n' >"$cfg"
	usage_line "socksifyd: $cfg:1: unknown option 'lsiten'; did you mean 'listen'?" --config "$cfg"
	printf 'user users\n' >"$cfg"
	usage_line "socksifyd: $cfg:1: unknown option 'user'; did you mean 'users'?" --config "$cfg"
	# too far from every name for a guess; and a file takes no 'help'
	printf 'timeout 5\n' >"$cfg"
	usage_line "socksifyd: $cfg:1: unknown option 'timeout'" --config "$cfg"
	printf 'help\n' >"$cfg"
	usage_line "socksifyd: $cfg:1: unknown option 'help'" --config "$cfg"
	# the command line, with dashes
	usage_line "socksifyd: unknown option '--idle-timout'; did you mean '--idle-timeout'? (try 'socksifyd --help')" --idle-timout 5
	usage_line "socksifyd: unknown option '--verbsoe'; did you mean '--verbose'? (try 'socksifyd --help')" --verbsoe
	usage_line "socksifyd: unknown option '--frobnicate' (try 'socksifyd --help')" --frobnicate
	# a switch given a value is not unknown
	usage_line "socksifyd: option '--no-udp' takes no value (try 'socksifyd --help')" --no-udp=1
}
