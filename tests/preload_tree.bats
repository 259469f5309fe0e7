#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# One placeholder table for the whole process tree (preload/fakedns.c): a
# name looked up in one process and connected to in another, across fork()
# and exec(), reaches the proxy as the name; a placeholder no process of the
# tree handed out never reaches the proxy at all.

load helpers/common

TREECHECK=$BUILD/tests/treecheck
# Proxies that refuse the placeholder ranges themselves, so that even a
# broken library could not make them dial such an address off this host.
NO_PLACEHOLDERS=(--deny "to 198.18.0.0/15" --deny "to 100::/64")

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

# The proxy saw NAME, and never a placeholder address.
proxy_saw_only_names() {
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=$1:$HTTP_PORT.*outcome=ok"
	run grep -cE 'target=(198\.1[89]\.|\[?100::)' "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

# The proxy logged no session at all (given a moment to write one).
proxy_never_asked() {
	sleep 0.3
	run grep -c 'target=' "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

# tree MODE [ARGS]: treecheck MODE over PROXY_ONLY_NAME, plain LD_PRELOAD,
# socks5h through the test proxy, nothing excluded.
tree() {
	local mode=$1
	shift
	need_dns_jail
	start_socksifyd -v
	run --separate-stderr env SOCKSIFY_EXCLUDE=none \
		LD_PRELOAD="$LIB" SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		timeout 40 "$TREECHECK" "$mode" "$PROXY_ONLY_NAME" "$HTTP_PORT" "$@"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	proxy_saw_only_names "$PROXY_ONLY_NAME"
}

@test "fork: a child looks the name up, the parent connects; the name reaches the proxy" {
	tree child-resolves
}

@test "fork: the parent looks the name up, a child connects" {
	tree parent-resolves
}

@test "fork: a grandchild looks the name up, the top process connects" {
	tree grandchild-resolves
}

@test "exec: the parent looks the name up, an exec()ed child connects" {
	tree exec-connects
}

@test "exec: a child that closed every descriptor before exec() still finds the table" {
	tree exec-connects closefds
}

@test "exec: an exec()ed child looks the name up, the parent connects" {
	tree exec-resolves
}

@test "launcher: the same across exec() under socksify -x socks5h" {
	need_dns_jail
	start_socksifyd -v
	run --separate-stderr timeout 40 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		"$TREECHECK" exec-resolves "$PROXY_ONLY_NAME" "$HTTP_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	proxy_saw_only_names "$PROXY_ONLY_NAME"
}

# A socksifyd for socksify's embedded server (SOCKSIFY_SERVER) that sees
# PROXY_ONLY_NAME in a private /etc/hosts, as start_socksifyd's does.
embedded_with_name() {
	local d=$BATS_TEST_TMPDIR
	{ echo "127.0.0.1 $PROXY_ONLY_NAME"; cat /etc/hosts 2>/dev/null; } >"$d/proxy-hosts"
	cat >"$d/server" <<-EOF
		#!/bin/sh
		exec unshare --mount sh -c 'mount --bind "\$0" /etc/hosts && exec "\$@"' \\
			"$d/proxy-hosts" "$SOCKSIFYD" "\$@"
	EOF
	chmod +x "$d/server"
	SOCKSIFY_SERVER=$d/server
}

@test "launcher: the embedded case holds the table, so it outlives the process that made the lookup" {
	need_dns_jail
	embedded_with_name
	# A grandchild resolves; then the shell exec()s itself into the
	# program that connects: no process of the tree that saw the lookup
	# is left, and the name still reaches the proxy.
	run --separate-stderr env SOCKSIFY_SERVER="$SOCKSIFY_SERVER" timeout 40 "$SOCKSIFY" -- sh -c '
		a=$(sh -c "\"$0\" resolve $1")
		case $a in 198.1[89].*) ;; *) echo "not a placeholder: $a"; exit 1 ;; esac
		exec "$0" connect "$a" "$2"' "$TREECHECK" "$PROXY_ONLY_NAME" "$HTTP_PORT"
	echo "status $status, out: $output, err: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
}

@test "no descriptor of ours in exec()ed programs; a descendant that changed user gets a table of its own" {
	need_dns_jail
	[ "$(id -u)" = 0 ] || skip "changing user needs root"
	start_socksifyd -v "${NO_PLACEHOLDERS[@]}"
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" sh -c '
		ls -l /proc/self/fd/ | grep -c socksify-names
		a=$("$0" resolve "$1")
		setpriv --reuid=65534 --regid=65534 --clear-groups "$0" connect "$a" "$2"
		exit 0' "$TREECHECK" "$PROXY_ONLY_NAME" "$HTTP_PORT"
	echo "out: $output, err: $stderr"
	[ "${lines[0]}" = "0" ]			# ls held none
	[ "${lines[1]}" = "EHOSTUNREACH" ]	# nobody cannot map root's table
	[[ "$stderr" == *"(a placeholder address no process of this tree handed out)"* ]]
	proxy_never_asked
}

@test "a placeholder the tree never handed out: EHOSTUNREACH and one log line; the proxy is never asked" {
	start_socksifyd -v "${NO_PLACEHOLDERS[@]}"
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
		timeout 20 "$TREECHECK" connect 198.18.0.77 "$HTTP_PORT"
	[ "$status" -eq 1 ]
	[ "$output" = "EHOSTUNREACH" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "${stderr_lines[0]}" == *"blocked connection to 198.18.0.77:$HTTP_PORT (a placeholder address no process of this tree handed out)"* ]]
	proxy_never_asked
}

@test "socks5 (local lookups): an address in 198.18.0.0/15 is just an address, sent to the proxy" {
	start_socksifyd -v "${NO_PLACEHOLDERS[@]}"
	run --separate-stderr env SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
		SOCKSIFY_PROXY="socks5://127.0.0.1:$PROXY_PORT" \
		timeout 20 "$TREECHECK" connect 198.18.0.77 "$HTTP_PORT"
	[ "$status" -eq 1 ]
	[ "$output" = "EACCES" ]		# reply 02 from the proxy's rule
	wait_for_line "$SOCKSIFYD_LOG" 30 "target=198\.18\.0\.77:$HTTP_PORT.*destination denied"
}

@test "a stale or foreign SOCKSIFY_NAMES: the process starts a table of its own and still works" {
	need_dns_jail
	start_socksifyd -v
	for v in "1:600:1:1" "not-ours"; do
		run --separate-stderr env SOCKSIFY_NAMES="$v" SOCKSIFY_EXCLUDE=none LD_PRELOAD="$LIB" \
			SOCKSIFY_PROXY="socks5h://127.0.0.1:$PROXY_PORT" \
			timeout 40 "$TREECHECK" exec-resolves "$PROXY_ONLY_NAME" "$HTTP_PORT"
		[ "$status" -eq 0 ]
		[ "$output" = "hello through socks" ]
		[ -z "$stderr" ]
	done
	proxy_saw_only_names "$PROXY_ONLY_NAME"
}

@test "socks5h: a datagram to a placeholder never leaves, by any UDP path, even with SOCKSIFY_UDP=pass or excluded" {
	# In a loopback-only netns that routes the placeholder range to lo,
	# so that a datagram let through would really be sent.
	run unshare --net bash -c '
		ip link set lo up && ip addr add 198.18.0.0/15 dev lo || exit 9
		for how in sendto sendmsg sendmmsg connect syscall; do
			for env in SOCKSIFY_UDP=pass SOCKSIFY_EXCLUDE=0.0.0.0/0; do
				env "$env" LD_PRELOAD="$1" SOCKSIFY_PROXY=socks5h://127.0.0.1:9 \
					"$2" udp "$how" 198.18.0.77 443 2>/dev/null
			done
		done
		# socks5 (local lookups): just an address, and the same send goes
		env SOCKSIFY_UDP=pass LD_PRELOAD="$1" SOCKSIFY_PROXY=socks5://127.0.0.1:9 \
			"$2" udp sendto 198.18.0.77 443' bash "$LIB" "$BUILD/tests/pathcheck"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 11 ]
	[ "$(printf '%s\n' "${lines[@]:0:10}" | sort -u)" = "EHOSTUNREACH" ]
	[ "${lines[10]}" = "sent" ]
}

@test "a proxy whose name resolves to a placeholder this tree handed out is never dialled (the library says why); one a fake-IP resolver gives in the range is" {
	need_dns_jail
	# A loopback-only netns where the placeholder range is routed to lo
	# and a listener waits at the address the DNS gives the proxy's name:
	# a dial reaches it. First the name gets the placeholder getent was
	# handed for it in this tree (the shell under the library is the
	# tree's first process and holds the table); then 198.18.0.5, an
	# address no process of the tree handed out (a fake-IP resolver's,
	# Clash's, for a real host).
	local script=$BATS_TEST_TMPDIR/tree.sh
	cat >"$script" <<-'EOF'
	sink=$1 dir=$2
	serve() {	# serve IP: the sink naming proxyname.test IP, a listener at IP:1080
		rm -f "$dir/dns.ready" "$dir/lst.ready"
		env -u LD_PRELOAD python3 "$sink" "$dir/dns.ready" "$dir/dns.log" "proxyname.test=$1" 2>/dev/null &
		dns=$!
		env -u LD_PRELOAD python3 -c '
	import socket, sys
	s = socket.socket()
	s.bind((sys.argv[2], 1080))
	s.listen(8)
	s.settimeout(10)
	open(sys.argv[1], "w").write("ready")
	try:
	    s.accept()
	    print("dialled " + sys.argv[2], flush=True)
	except OSError:
	    pass
	' "$dir/lst.ready" "$1" &
		lst=$!
		for ((i = 0; i < 50; i++)); do
			[ -s "$dir/dns.ready" ] && [ -s "$dir/lst.ready" ] && break
			sleep 0.1
		done
	}
	ph=$(getent ahostsv4 proxyname.test 2>/dev/null | awk 'NR == 1 { print $1 }')
	echo "placeholder $ph"
	for ip in "$ph" 198.18.0.5; do
		serve "$ip"
		curl -sS --max-time 5 http://10.9.9.9/ 2>&1
		echo "curl $?"
		sleep 0.3
		kill "$dns" "$lst" 2>/dev/null
		wait
	done
	EOF
	run unshare --net bash -c '
		ip link set lo up && ip addr add 198.18.0.0/15 dev lo || exit 9
		exec env LD_PRELOAD="$1" SOCKSIFY_PROXY=socks5h://proxyname.test:1080 bash "$2" "$3" "$4"' \
		bash "$LIB" "$script" "$HELPERS/dnssink.py" "$BATS_TEST_TMPDIR"
	echo "$output"
	[ "$status" -eq 0 ]
	local ph
	ph=$(echo "$output" | sed -n 's/^placeholder //p')
	is_placeholder "$ph"
	[[ "$output" == *"cannot resolve proxy proxyname.test: only placeholder addresses of this process tree came back (a lookup socksify answered)"* ]]
	[[ "$output" != *"dialled $ph"* ]]
	[[ "$output" == *"dialled 198.18.0.5"* ]]
	[ "$(grep -c '^curl 7$' <<<"$output")" = 2 ]
}

# embedded_probe HEX...: socksify's embedded server, asked by s5probe.py with
# the run's own credentials, then the request bytes HEX. In a network
# namespace with only loopback: were the rule missing, the server would dial
# the placeholder, and must reach nobody.
embedded_probe() {
	# shellcheck disable=SC2016
	unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
	"$SOCKSIFY" -- bash -c '
		u=${SOCKSIFY_PROXY#socks5h://}; cred=${u%@*}; port=${u##*:}
		user=${cred%%:*}; pass=${cred#*:}
		hx() { printf "%s" "$1" | od -An -tx1 | tr -d " \n"; }
		exec python3 "$0" "$port" 050102 \
			"01$(printf %02x ${#user})$(hx "$user")$(printf %02x ${#pass})$(hx "$pass")" "$@"' \
		"$HELPERS/s5probe.py" "$@"
}

@test "the embedded server refuses the placeholder ranges: reply 02, nothing dialled" {
	# CONNECT 198.18.0.5:80, then [100::5]:80.
	run embedded_probe 05010001c61200050050
	[ "$status" -eq 0 ]
	[[ "$output" == 0502010005020001* ]]
	run embedded_probe 0501000401000000000000000000000000000005 0050
	[ "$status" -eq 0 ]
	[[ "$output" == 0502010005020001* ]]
	# Any other destination is still dialled: nothing listens on this
	# port of the namespace's loopback, so reply 05, not 02.
	run embedded_probe 05010001 7f000001 "$(port_hex "$HTTP_PORT")"
	[[ "$output" == 0502010005050001* ]]
}

@test "lynx fetches by name through socks5h (it resolves in a forked child); the name reaches the proxy" {
	need_dns_jail
	command -v lynx >/dev/null || { echo "lynx is not installed (scripts/deps.sh test)"; false; }
	start_socksifyd -v
	# -cfg and -lss: a machine whose /etc lost lynx's files still runs it.
	run --separate-stderr timeout 40 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		lynx -cfg=/dev/null -lss=/dev/null -source "http://$PROXY_ONLY_NAME:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	proxy_saw_only_names "$PROXY_ONLY_NAME"
}

@test "lftp fetches by name through socks5h (its resolver is a forked child); the name reaches the proxy" {
	need_dns_jail
	command -v lftp >/dev/null || { echo "lftp is not installed (scripts/deps.sh test)"; false; }
	start_socksifyd -v
	timeout 40 "$SOCKSIFY" -x "socks5h://127.0.0.1:$PROXY_PORT" -e none \
		lftp -c "set net:max-retries 1; set net:timeout 10; cat http://$PROXY_ONLY_NAME:$HTTP_PORT/payload.bin" \
		>"$BATS_TEST_TMPDIR/got"
	[ "$(sha <"$BATS_TEST_TMPDIR/got")" = "$PAYLOAD_SHA" ]
	proxy_saw_only_names "$PROXY_ONLY_NAME"
}

# Chromium resolves in its browser process and connects from its network
# service, started through exec() and a zygote's fork(). It calls home by
# itself, so it runs only inside a network namespace that has nothing but
# loopback, with the proxy and the web server beside it.
@test "headless chromium loads a page by a name only the proxy resolves, in a loopback-only netns" {
	need_dns_jail
	local chromium=/usr/lib/chromium/chromium
	[ -x "$chromium" ] || { echo "chromium is not installed (scripts/deps.sh test)"; false; }
	skip_under_asan chromium
	local d=$BATS_TEST_TMPDIR
	echo '<html><body><p id="marker">placeholders-crossed-exec</p></body></html>' >"$WWW/page.html"
	{ echo "127.0.0.1 $PROXY_ONLY_NAME"; cat /etc/hosts 2>/dev/null; } >"$d/proxy-hosts"
	run timeout 120 unshare --net bash "$HELPERS/browser_netns.sh" "$chromium" "$d" "$WWW" \
		"$SOCKSIFY" "$SOCKSIFYD" "$HELPERS" "$PROXY_ONLY_NAME"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q 'placeholders-crossed-exec' "$d/dom.html"
	grep -qE "target=$PROXY_ONLY_NAME:[0-9]+.*outcome=ok" "$d/socksifyd.log"
	run grep -cE 'target=(198\.1[89]\.|\[?100::)' "$d/socksifyd.log"
	[ "$output" = "0" ]
}
