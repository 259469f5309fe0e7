#!/usr/bin/env bats
# Listening sockets under libsocksify.so: the one meant for a tunnelled
# connection's peer becomes a SOCKS BIND on the proxy (active FTP), the
# program's own stay local (preload/listen.c has the rule). The FTP server
# is tests/helpers/ftpd.py (Debian's python3-pyftpdlib); the socket probes
# are tests/helpers/bindcheck.py.

load helpers/common

PY=/usr/bin/python3

setup() {
	"$PY" -c 'import pyftpdlib' 2>/dev/null ||
		skip "needs python3-pyftpdlib (sh scripts/deps.sh test)"
	make_payload
	LIBLOG=$BATS_TEST_TMPDIR/lib.log
	: >"$LIBLOG"
}

teardown() { stop_all; }

# start_ftpd [HOST]: serves $WWW on HOST (127.0.0.1); sets FTP_PORT and
# FTP_LOG.
start_ftpd() {
	local pf=$BATS_TEST_TMPDIR/ftp.port
	FTP_LOG=$BATS_TEST_TMPDIR/ftpd.log
	: >"$FTP_LOG"
	"$PY" "$HELPERS/ftpd.py" "$WWW" "${1:-127.0.0.1}" "$pf" "$FTP_LOG" 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	FTP_PORT=$(cat "$pf")
}

# check_bind_session: the proxy made one BIND, the FTP server's active data
# connection went to the address the library said the proxy listens at,
# and that BIND carried the file.
check_bind_session() {
	local at local_port
	at=$(sed -n 's/.*listen: BIND for .* proxy listens at \([0-9.]*:[0-9]*\)$/\1/p' "$LIBLOG" | tail -n 1)
	[ -n "$at" ] || { echo "no BIND in the library's log:"; cat "$LIBLOG"; false; }
	grep -q "^data active local=127\.0\.0\.1:[0-9]* peer=$at\$" "$FTP_LOG" ||
		{ echo "the data connection did not go to $at:"; cat "$FTP_LOG"; false; }
	local_port=$(sed -n 's/^data active local=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$FTP_LOG" | tail -n 1)
	wait_for_line "$SOCKSIFYD_LOG" 30 \
		"cmd=bind	target=$1	connected=127\.0\.0\.1:$local_port	c2t=0	t2c=1048576	.*outcome=ok"
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=bind' 1
}

# curl_active HOST [SOCKSIFYD-ARGS...]: curl -P - fetches the payload from
# the FTP server, as HOST, under socksify -x; the bytes arrive intact,
# through a BIND that names HOST.
curl_active() {
	start_socksifyd -v "${@:2}"
	start_ftpd
	# curl polls its (blocking) listener beside the control connection and
	# gives up (exit 8) if the server's "150" comes first: the listener is
	# poked as soon as the BIND is made, and accept() waits for the second
	# reply (preload/listen.c). One try: under load this failed often.
	run "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none --log "$LIBLOG" -t \
		curl -sS --max-time 20 -P - "ftp://$1:$FTP_PORT/payload.bin" \
		-o "$BATS_TEST_TMPDIR/got.bin"
	[ "$status" -eq 0 ] || { echo "$output"; cat "$LIBLOG"; false; }
	[ "$(sha <"$BATS_TEST_TMPDIR/got.bin")" = "$PAYLOAD_SHA" ]
	check_bind_session "${1//./\\.}:0"
}

@test "curl -P - (active FTP) through socksify -x: the data connection is the proxy's BIND" {
	curl_active 127.0.0.1
}

@test "socksifyd --outgoing: active FTP still works, its BIND listening on the outgoing address the CONNECT reply named" {
	curl_active 127.0.0.1 --outgoing 127.0.0.3
	# curl announced the control connection's address, the outgoing one,
	# and the server's data connection came to it
	grep -q "listen: BIND for .* proxy listens at 127\.0\.0\.3:[0-9]*\$" "$LIBLOG"
	grep -q '^data active local=127\.0\.0\.1:[0-9]* peer=127\.0\.0\.3:[0-9]*$' "$FTP_LOG"
}

@test "lftp with ftp:passive-mode off (an unbound listener) through the library: BIND" {
	start_socksifyd -v
	start_ftpd
	cd "$BATS_TEST_TMPDIR"
	run timeout 60 env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG=trace SOCKSIFY_LOG_FILE="$LIBLOG" \
		lftp -e "set ftp:passive-mode off; set net:max-retries 1; set net:timeout 10; \
			get payload.bin -o lftp.bin; quit" "ftp://127.0.0.1:$FTP_PORT"
	[ "$status" -eq 0 ] || { echo "$output"; cat "$LIBLOG"; false; }
	[ "$(sha <lftp.bin)" = "$PAYLOAD_SHA" ]
	check_bind_session '127\.0\.0\.1:0'
}

@test "socks5h: the BIND names the FTP server as the program named it" {
	need_dns_jail
	curl_active "$PROXY_ONLY_NAME"
}

# socks5h to a name the proxy reaches over IPv6: the program's socket is
# IPv4 (a placeholder), and the proxy's BND.ADDR has no IPv4 form. The
# kernel's name of the socket stood in for it: curl bound its listener
# there and announced it, and a server that takes any address connected
# to this host directly, around the proxy. (curl's bind() now fails before
# it announces anything; a client that announces getsockname()'s address
# from a wildcard listener, as Python's ftplib does, would send the server
# to 192.0.0.8, which no test may do.)
@test "socks5h, the proxy reaching the FTP server over IPv6: getsockname() says 192.0.0.8, and active FTP fails closed, the server never connecting to this host" {
	need_dns_jail
	start_socksifyd -v
	FTPD_PERMIT_FOREIGN=1 start_ftpd ::1
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none timeout 20 "$PY" -c 'import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
print(s.family == socket.AF_INET, s.getsockname()[0])' "$PROXY_V6_NAME" "$FTP_PORT"
	[ "$output" = "True 192.0.0.8" ]
	run "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none --log "$LIBLOG" \
		curl -sS --max-time 20 -P - "ftp://$PROXY_V6_NAME:$FTP_PORT/payload.bin" \
		-o "$BATS_TEST_TMPDIR/got.bin"
	echo "curl: $status $output"
	cat "$LIBLOG"
	[ "$status" -ne 0 ]
	grep -q 'bind() to 192\.0\.0\.8, which getsockname() says of a tunnelled IPv4 connection whose proxy reached the target over IPv6' "$LIBLOG"
	! grep -q '^data ' "$FTP_LOG" || { cat "$FTP_LOG"; false; }
	# the control connection did go through the proxy, to ::1
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$PROXY_V6_NAME:$FTP_PORT	connected=\[::1\]:$FTP_PORT"
}

@test "getsockname/getpeername/accept of a BIND; the program's own listeners stay local" {
	start_socksifyd -v
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG=trace SOCKSIFY_LOG_FILE="$LIBLOG" \
		timeout 60 "$PY" "$HELPERS/bindcheck.py" sides
	[ "$status" -eq 0 ] || { echo "$output"; cat "$LIBLOG"; false; }
	declare -A v
	local line
	for line in "${lines[@]}"; do v[${line%%=*}]=${line#*=}; done
	printf '%s\n' "${lines[@]}"
	# A tunnelled connection names the address its target sees.
	[ "${v[control_name]}" = "${v[target_peer]}" ]
	# Listeners on 0.0.0.0 and 127.0.0.2, made while it is open, are local.
	[ "${v[local_wild]}" = ok ]
	[ "${v[local_lo2]}" = ok ]
	# The one bound to the tunnel's address is the proxy's BIND.
	[ "${v[early_eagain]}" = EAGAIN ]
	grep -q "listen: BIND for 127\.0\.0\.1:0 via .* proxy listens at ${v[bind_name]}\$" "$LIBLOG"
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=bind' 1
	[ "${v[readable]}" = yes ]
	# accept()'s address and getpeername() are the second reply's: the
	# peer that connected to the proxy.
	[ "${v[accepted_from]}" = "${v[dialer_name]}" ]
	[ "${v[accepted_peer]}" = "${v[dialer_name]}" ]
	[ "${v[data]}" = ping/pong ]
	[ "${v[second]}" = EAGAIN ]
}

@test "a blocking accept() on a BIND listener is interrupted by a signal as any accept() is, and the BIND still comes after" {
	start_socksifyd -v
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$LIBLOG" \
		timeout 60 "$PY" "$HELPERS/bindcheck.py" signal
	printf '%s\n' "${lines[@]}"
	[ "$status" -eq 0 ] || { cat "$LIBLOG"; false; }
	# the handler ran when the alarm rang (it waited for the proxy's
	# --bind-timeout before), and the connection that came later was
	# the accepted one
	[[ "${lines[0]}" =~ ^interrupted_ms=([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 900 ] && [ "${BASH_REMATCH[1]}" -lt 1900 ]
	[ "${lines[1]}" = then=ok ]
	wait_for_count "$SOCKSIFYD_LOG" 30 'cmd=bind' 1
}

# starved_bindcheck MODE: bindcheck.py MODE under the library, 256
# descriptors at most (it runs out of them on purpose).
starved_bindcheck() {
	start_socksifyd -v
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$LIBLOG" \
		timeout 60 prlimit --nofile=256:256 "$PY" "$HELPERS/bindcheck.py" "$1"
	echo "$output"
	cat "$LIBLOG"
}

@test "a blocking accept() on a BIND listener gets its connection though descriptors ran out while it waited" {
	starved_bindcheck emfile
	# (it may have said EMFILE meanwhile, as any listener's accept() does
	# while none is free: emfile_said)
	[ "${lines[0]}" = emfile=accepted ]
	! grep -q 'cannot wake' "$LIBLOG" || false
}

@test "a BIND listener whose listen() found no descriptor for its poke still gets its connection (READY pokes by itself)" {
	starved_bindcheck starved
	[ "${lines[-1]}" = starved=accepted ]
}

@test "a proxy refusing BIND (socksifyd --no-bind): listen() fails with ECONNREFUSED and one line" {
	start_socksifyd -v --no-bind
	start_ftpd
	run env LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		SOCKSIFY_EXCLUDE=none SOCKSIFY_LOG_FILE="$LIBLOG" \
		timeout 30 "$PY" "$HELPERS/bindcheck.py" refused 127.0.0.1 "$FTP_PORT"
	[ "$output" = "listen=ECONNREFUSED" ]
	[ "$(wc -l <"$LIBLOG")" -eq 1 ]
	grep -q "listen: BIND for 127\.0\.0\.1:0 via 127\.0\.0\.1:$PROXY_PORT refused: .*(ECONNREFUSED, reply 0x07)\$" "$LIBLOG"
	# and curl's active FTP fails instead of listening where the server
	# might connect around the proxy
	run "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none -q \
		curl -sS --max-time 20 -P - "ftp://127.0.0.1:$FTP_PORT/payload.bin" -o /dev/null
	[ "$status" -ne 0 ]
	! grep -q '^data active' "$FTP_LOG" || false
}
