#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# The socksify launcher: options, exit codes, the embedded server, signals.

load helpers/common

setup() {
	make_payload
	start_http 127.0.0.1
}

teardown() { stop_all; }

@test "embedded default: curl with no proxy flags fetches through a bundled server" {
	got=$("$SOCKSIFY" curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
}

@test "--trace: one line for the tunnelled connection, content on stdout" {
	run --separate-stderr "$SOCKSIFY" --trace curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	[[ "$stderr" =~ socksify\[[0-9]+\]:\ connect\ 127\.0\.0\.1:$HTTP_PORT\ via\ 127\.0\.0\.1:[0-9]+:\ ok ]]
}

@test "--log FILE (or SOCKSIFY_LOG_FILE): trace lines go to the file, not stderr" {
	log=$BATS_TEST_TMPDIR/trace.log
	run --separate-stderr "$SOCKSIFY" -t --log "$log" curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through socks" ]
	[ -z "$stderr" ]
	grep -qE "connect 127\.0\.0\.1:$HTTP_PORT via .*: ok" "$log"
	# SOCKSIFY_LOG_FILE is checked as --log is, and made absolute
	run env SOCKSIFY_LOG_FILE=/nonexistent/socksify.log "$SOCKSIFY" true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: SOCKSIFY_LOG_FILE /nonexistent/socksify.log: No such file or directory" ]
	cd "$BATS_TEST_TMPDIR"
	run --separate-stderr env SOCKSIFY_LOG_FILE=rel.log "$SOCKSIFY" -t \
		sh -c "cd / && curl -sS --max-time 20 http://127.0.0.1:$HTTP_PORT/hello.txt"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	grep -qE "connect 127\.0\.0\.1:$HTTP_PORT via .*: ok" "$BATS_TEST_TMPDIR/rel.log"
}

@test "-x URL: curl goes through the given socksifyd (it logs the session)" {
	start_socksifyd -v
	got=$("$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
}

@test "the embedded server is stopped when the command ends: nothing left running" {
	run "$SOCKSIFY" sh -c 'ps -o pid= --ppid "$PPID"'
	[ "$status" -eq 0 ]
	pids=$(echo "$output" | tr -s ' \n' ' ')
	[ -n "$pids" ]
	sleep 0.2
	for p in $pids; do
		run kill -0 "$p"
		[ "$status" -ne 0 ]
	done
}

@test "exit status: the command's own, through both modes" {
	run "$SOCKSIFY" sh -c 'exit 42'
	[ "$status" -eq 42 ]
	run "$SOCKSIFY" -x socks5://127.0.0.1:9 sh -c 'exit 7'
	[ "$status" -eq 7 ]
	run "$SOCKSIFY" true
	[ "$status" -eq 0 ]
}

@test "exit 127: command not found (or its interpreter); 126: not executable" {
	run -127 "$SOCKSIFY" no-such-command-socksify
	[ "$status" -eq 127 ]
	[[ "$output" == *"not found"* ]]
	touch "$BATS_TEST_TMPDIR/noexec"
	run "$SOCKSIFY" "$BATS_TEST_TMPDIR/noexec"
	[ "$status" -eq 126 ]
	# a script whose interpreter is missing: env(1)'s 127, and the reason
	printf '#!/no/such/interpreter\necho hi\n' >"$BATS_TEST_TMPDIR/badint.sh"
	chmod +x "$BATS_TEST_TMPDIR/badint.sh"
	run -127 "$SOCKSIFY" "$BATS_TEST_TMPDIR/badint.sh"
	[ "$output" = "socksify: $BATS_TEST_TMPDIR/badint.sh: No such file or directory (the interpreter its #! line names, or its ELF loader, is missing)" ]
}

@test "embedded server: echo | ncat -u NAME PORT, the name slow to resolve, arrives though the command has exited (the server drains for it)" {
	command -v ncat >/dev/null || skip "ncat is not installed (scripts/deps.sh test)"
	start_dnssink --delay=0.3 "slowudp.test=127.0.0.1"
	local pf=$BATS_TEST_TMPDIR/echo.port log=$BATS_TEST_TMPDIR/echo.log
	: >"$log"
	python3 "$HELPERS/bindudp.py" echo 127.0.0.1 "$pf" "$log" from 3>&- >/dev/null 2>&1 &
	PIDS+=($!)
	wait_for_line "$pf" 50 '^[0-9]+$'
	echo "to a name" | timeout 30 "$SOCKSIFY" -e none ncat -u slowudp.test "$(cat "$pf")"
	# the server stopped with ncat: its drain waited for the lookup
	wait_for_count "$log" 30 '^from ' 1
}

@test "a password given with -x is not left in the launcher's command line (/proc/PID/cmdline is anyone's to read)" {
	start_socksifyd -v
	"$SOCKSIFY" -x "socks5://u:s3cretPW@127.0.0.1:$PROXY_PORT" -e none sleep 5 3>&- &
	local pid=$! i cmd=
	PIDS+=("$pid")
	# read once the command runs: the launcher has parsed its options
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$pid" -x sleep >/dev/null && break
		sleep 0.1
	done
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	echo "cmdline: $cmd"
	[[ "$cmd" == *" -x "* ]]
	[[ "$cmd" != *s3cretPW* ]]
	[[ "$cmd" != *"u:"* ]]
}

@test "an ELF file the kernel will not exec (2^32 program headers of size 0) is told as without socksify, at once" {
	local f=$BATS_TEST_TMPDIR/crafted
	# e_phnum PN_XNUM, e_phentsize 0, section 0's sh_info 0xffffffff:
	# walking those headers took the launcher some 20 minutes
	python3 -c '
import struct, sys
e = bytearray(512)
e[0:7] = b"\x7fELF\x02\x01\x01"
struct.pack_into("<HHIQQQIHHHHHH", e, 16, 2, 62, 1, 0, 64, 128, 0, 64, 0, 0xffff, 64, 1, 0)
struct.pack_into("<I", e, 128 + 44, 0xffffffff)
open(sys.argv[1], "wb").write(e)' "$f"
	chmod +x "$f"
	# exec says ENOEXEC, and execvp(3) hands the file to sh: 126 or 127,
	# never timeout(1)'s 124. sh runs its bytes as commands: e_machine 62
	# is a '>', which creates a file named by the bytes after it, here
	# (in the test's directory, not the checkout: one was committed).
	cd "$BATS_TEST_TMPDIR"
	run sh -c 'timeout 10 "$0" -x socks5h://127.0.0.1:1 -- "$1"; echo "status $?"' "$SOCKSIFY" "$f"
	echo "$output"
	[[ "${lines[-1]}" == "status 12"[67] ]]
}

@test "exit 125: bad option, bad proxy URL, bad CIDR, no command, each with one line" {
	run "$SOCKSIFY" --no-such-option true
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$SOCKSIFY" -x 'ftp://127.0.0.1:8080' true
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$SOCKSIFY" -x 'socks5://127.0.0.1:99999' true
	[ "$status" -eq 125 ]
	# a bare number is no host (getaddrinfo() read 1080 as 0.0.4.56)
	run "$SOCKSIFY" -x 1080 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: proxy 1080: a host that is a number but no dotted quad (a port on this host: 127.0.0.1:PORT)" ]
	# an IPv6 host without brackets: ::1:1 was the address ::0.1.0.1
	run "$SOCKSIFY" -x 'socks5://::1:1' true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: proxy socks5://::1:1: an IPv6 host without brackets (write it [ADDRESS]:PORT)" ]
	run env SOCKSIFY_PROXY='::1' "$SOCKSIFY" true
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$SOCKSIFY" -e '10.0.0.0/99' true
	[ "$status" -eq 125 ]
	# -e takes a comma list, as SOCKSIFY_EXCLUDE does; each item checked
	run "$SOCKSIFY" -e '10.0.0.0/8, fd00::/8 ,.corp' -x socks5://127.0.0.1:9 sh -c 'echo "$SOCKSIFY_EXCLUDE"'
	[ "$status" -eq 0 ]
	[ "$output" = "127.0.0.0/8,::1,10.0.0.0/8,fd00::/8,.corp" ]
	run "$SOCKSIFY" -e 'none,10.1.0.0/16' -x socks5://127.0.0.1:9 sh -c 'echo "$SOCKSIFY_EXCLUDE"'
	[ "$output" = "10.1.0.0/16" ]
	run "$SOCKSIFY" -e '10.0.0.0/8,bad/99' true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: exclude bad/99: bad address, and not a host name or .suffix" ]
	run "$SOCKSIFY" -e ' , ' true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: exclude ' , ': empty (a CIDR, a host name or a .suffix)" ]
	# the library takes 64 ranges, the two defaults of -x among them: the
	# rest it would ignore, tunnelling them
	local ranges
	ranges=$(python3 -c 'print(",".join("10.%d.0.0/16" % i for i in range(63)))')
	run "$SOCKSIFY" -e "$ranges" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: more than 64 ranges to exclude (65, the defaults among them)" ]
	run "$SOCKSIFY" -e none -e "$ranges" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 0 ]
	run env SOCKSIFY_EXCLUDE="$ranges,10.63.0.0/16,10.64.0.0/16" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 125 ]
	# "+" adds to the defaults, which -x has
	run env SOCKSIFY_EXCLUDE="+$ranges" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: more than 64 ranges to exclude (65, the defaults among them)" ]
	# SOCKSIFY_EXCLUDE is checked as -e is, when no -e replaces it
	run env SOCKSIFY_EXCLUDE='10.0.0.0/8,bad/99' "$SOCKSIFY" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: SOCKSIFY_EXCLUDE bad/99: bad address, and not a host name or .suffix" ]
	run env SOCKSIFY_EXCLUDE='+10.0.0.0/8, .corp ,none' "$SOCKSIFY" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 0 ]
	run env SOCKSIFY_EXCLUDE='bad/99' "$SOCKSIFY" -e none -x socks5://127.0.0.1:9 true
	[ "$status" -eq 0 ]
	# SOCKSIFY_PROXY of blanks and commas only names no proxy: the library
	# would fail every connection (the launcher went on, status 0).
	for t in ' ' ' , ,' '	'; do
		run env SOCKSIFY_PROXY="$t" "$SOCKSIFY" true
		[ "$status" -eq 125 ]
		[ "$output" = "socksify: SOCKSIFY_PROXY: no proxy in '$t' (unset it for the embedded server)" ]
	done
	# SOCKSIFY_TIMEOUT: said once, by the launcher, not by every process.
	for t in abc 0 0.0001 86401 -1 '2s'; do
		run env SOCKSIFY_TIMEOUT="$t" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
		[ "$status" -eq 125 ]
		[ "$output" = "socksify: SOCKSIFY_TIMEOUT $t: not a number of seconds from 0.001 to 86400 (2.5 will do)" ]
	done
	for t in 2.5 0.5 86400 ''; do
		run env SOCKSIFY_TIMEOUT="$t" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
		[ "$status" -eq 0 ]
		[ "$output" = "" ]
	done
	# SOCKSIFY_PIPELINE likewise (it was said by the launcher and again
	# by each process that connected).
	run env SOCKSIFY_PIPELINE=yes "$SOCKSIFY" -x socks5://127.0.0.1:9 true
	[ "$status" -eq 125 ]
	[ "$output" = "socksify: SOCKSIFY_PIPELINE yes: not auto, on or off" ]
	for t in auto ON off ''; do
		run env SOCKSIFY_PIPELINE="$t" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
		[ "$status" -eq 0 ]
		[ "$output" = "" ]
	done
	# SOCKSIFY_UDP, _IOURING, _LOG and _DNS likewise: the library takes
	# the stricter meaning of a value it does not know, with a line in
	# every process (a typo in SOCKSIFY_UDP blocked UDP, status 0).
	local bad want
	for bad in "SOCKSIFY_UDP=prox|not proxy, block or pass" \
		"SOCKSIFY_IOURING=yes|not deny or allow" \
		"SOCKSIFY_LOG=verbose|not error, warn, info, trace or debug" \
		"SOCKSIFY_DNS=resolver.example|not IP[:PORT]: a name, not an address" \
		"SOCKSIFY_DNS=10.9.0.1:0|not IP[:PORT]: port 0 (a port to connect to: 53 when none is given)"; do
		want=${bad#*|}
		bad=${bad%%|*}
		run env "$bad" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
		[ "$status" -eq 125 ]
		[ "$output" = "socksify: ${bad%%=*} ${bad#*=}: $want" ]
	done
	for t in SOCKSIFY_UDP=PASS SOCKSIFY_IOURING=deny SOCKSIFY_LOG=error SOCKSIFY_DNS=127.0.0.1:5353; do
		run env "$t" "$SOCKSIFY" -x socks5://127.0.0.1:9 true
		[ "$status" -eq 0 ]
		[ "$output" = "" ]
	done
	# -q replaces SOCKSIFY_LOG: nothing to refuse
	run env SOCKSIFY_LOG=verbose "$SOCKSIFY" -q -x socks5://127.0.0.1:9 true
	[ "$status" -eq 0 ]
	run "$SOCKSIFY"
	[ "$status" -eq 125 ]
	run "$SOCKSIFY" -h
	[ "$status" -eq 0 ]
	[[ "$output" == *--proxy* ]]
	run "$SOCKSIFY" -V
	[ "$status" -eq 0 ]
	[[ "$output" == "socksify "* ]]
}

@test "LD_PRELOAD is prepended to, not replaced" {
	run env LD_PRELOAD=libm.so.6 "$SOCKSIFY" -x socks5://127.0.0.1:9 sh -c 'echo "$LD_PRELOAD"'
	[ "$status" -eq 0 ]
	[[ "$output" == *libsocksify.so:libm.so.6 ]]
}

@test "signals reach the command; socksify exits as the command did" {
	"$SOCKSIFY" sleep 30 3>&- &
	lp=$!
	PIDS+=($lp)
	sleep 0.5
	kill -TERM "$lp"
	timeout 5 tail --pid="$lp" -f /dev/null
	wait "$lp" && st=0 || st=$?
	[ "$st" -eq 143 ]
	run pgrep -P "$lp"
	[ "$status" -ne 0 ]
}

@test "a command killed by a signal: socksify reports that signal" {
	run "$SOCKSIFY" sh -c 'kill -TERM $$'
	[ "$status" -eq 143 ]
}

@test "unreachable programs are refused: setuid (125, one line), unless --force" {
	cp "$(type -P true)" "$BATS_TEST_TMPDIR/suid-true"
	chmod u+s "$BATS_TEST_TMPDIR/suid-true"
	run "$SOCKSIFY" "$BATS_TEST_TMPDIR/suid-true"
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *setuid* ]]
	run "$SOCKSIFY" -q --force "$BATS_TEST_TMPDIR/suid-true"
	[ "$status" -eq 0 ]
}

@test "a static program: supervised by default; --mode preload refuses it (125), naming --force" {
	printf 'int main(void){return 3;}\n' >"$BATS_TEST_TMPDIR/s.c"
	cc -static -o "$BATS_TEST_TMPDIR/static" "$BATS_TEST_TMPDIR/s.c" 2>/dev/null || skip "no static libc to build a static test program"
	run "$SOCKSIFY" "$BATS_TEST_TMPDIR/static"
	[ "$status" -eq 3 ]
	[ -z "$output" ]
	run "$SOCKSIFY" --mode preload "$BATS_TEST_TMPDIR/static"
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"statically linked"* ]]
	run "$SOCKSIFY" --mode preload --force "$BATS_TEST_TMPDIR/static"
	[ "$status" -eq 3 ]
}

@test "SOCKSIFY_LIBRARY: a copy of the library elsewhere tunnels; another library, a text file or a program is refused (125, one line), the command never run" {
	start_socksifyd -v
	local dir=$BATS_TEST_TMPDIR/libdir f bad ran=$BATS_TEST_TMPDIR/ran got
	mkdir -p "$dir"
	cp "$LIB" "$dir/libsocksify-copy.so"
	got=$(SOCKSIFY_LIBRARY=$dir/libsocksify-copy.so "$SOCKSIFY" --mode preload \
		-x "socks5://127.0.0.1:$PROXY_PORT" -e none \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	wait_for_line "$SOCKSIFYD_LOG" 30 "127\.0\.0\.1:$HTTP_PORT"
	# ld.so would ignore these or load them to no effect: under --mode
	# preload the command would connect directly.
	bad=$(ldd "$(command -v curl)" | awk '/libz\.so/ { print $3 }')
	[ -f "$bad" ]
	printf 'not a library\n' >"$BATS_TEST_TMPDIR/text"
	# a copy of the library marked for another machine (AArch64's e_machine)
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[18:20] = (183).to_bytes(2, "little"); open(sys.argv[2], "wb").write(b)' \
		"$LIB" "$BATS_TEST_TMPDIR/arm.so"
	for f in "$bad:not libsocksify.so (another library)" \
		"$BATS_TEST_TMPDIR/text:not an ELF file of this machine" \
		"$SOCKSIFY:a program, not a shared library" \
		"$BATS_TEST_TMPDIR/arm.so:a library for another machine"; do
		run env SOCKSIFY_LIBRARY="${f%%:*}" "$SOCKSIFY" --mode preload \
			-x "socks5://127.0.0.1:$PROXY_PORT" -e none touch "$ran"
		echo "$f -> $status: $output"
		[ "$status" -eq 125 ]
		[ "$output" = "socksify: SOCKSIFY_LIBRARY ${f%%:*}: ${f#*:}" ]
		[ ! -e "$ran" ]
	done
	# linked as packagers do, with --gc-sections: still told apart (its
	# mark is kept)
	make -s -C "$BATS_TEST_DIRNAME/.." BUILD="$BATS_TEST_TMPDIR/gc" \
		CFLAGS="-ffunction-sections -fdata-sections" LDFLAGS="-Wl,--gc-sections" \
		"$BATS_TEST_TMPDIR/gc/libsocksify.so" >/dev/null
	run env SOCKSIFY_LIBRARY="$BATS_TEST_TMPDIR/gc/libsocksify.so" "$SOCKSIFY" --mode preload \
		-x "socks5://127.0.0.1:$PROXY_PORT" -e none touch "$ran"
	echo "gc-sections: $status $output"
	[ "$status" -eq 0 ]
	[ -e "$ran" ]
}

@test "a 32-bit dynamic program (the library is 64-bit; ld.so would ignore it): --mode preload refuses it (125), naming --force" {
	[ "$(getconf LONG_BIT)" = 64 ] || skip "a 64-bit socksify's case"
	local f=$BATS_TEST_TMPDIR/elf32
	# An ELF32 i386 header and one PT_INTERP program header: enough for
	# the launcher's decision, made before exec.
	python3 -c '
import struct, sys
e = bytearray(256)
e[0:7] = b"\x7fELF\x01\x01\x01"
struct.pack_into("<HHIIIIIHHHHHH", e, 16, 2, 3, 1, 0x8048000, 52, 0, 0, 52, 32, 1, 40, 0, 0)
struct.pack_into("<IIIIIIII", e, 52, 3, 84, 0, 0, 19, 19, 4, 1)
e[84:103] = b"/lib/ld-linux.so.2\0"
open(sys.argv[1], "wb").write(e)' "$f"
	chmod +x "$f"
	run "$SOCKSIFY" --mode preload -x socks5h://127.0.0.1:1 "$f"
	echo "$output"
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "socksify: $f: a 32-bit program (the library is 64-bit): the library cannot reach it (--force runs it unproxied)" ]
}

@test "exit 125 with one line for a bad short option and a missing argument too" {
	run "$SOCKSIFY" -Z true
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$SOCKSIFY" -t -x
	[ "$status" -eq 125 ]
	[ "${#lines[@]}" -eq 1 ]
}

@test "-e CIDR with -x adds to the default exclusions: loopback still goes direct" {
	start_socksifyd -v
	got=$("$SOCKSIFY" -x "socks5://127.0.0.1:$PROXY_PORT" -e 10.0.0.0/8 \
		curl -sS --max-time 20 "http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	sleep 0.3
	run grep -c "127.0.0.1:$HTTP_PORT" "$SOCKSIFYD_LOG"
	[ "$output" = "0" ]
}

@test "the launcher itself stops the embedded server (SIGTERM) and waits for it" {
	# A server wrapper that reports, on the stderr pipe socksify drains, that
	# it was told to stop while socksify was still there to read it.
	w=$BATS_TEST_TMPDIR/server-wrapper
	cat >"$w" <<WRAPPER
#!/bin/sh
"$SOCKSIFYD" "\$@" &
child=\$!
trap 'kill \$child; wait \$child; echo "wrapper: stopped by socksify" >&2; sleep 0.3; exit 0' TERM
wait \$child
WRAPPER
	chmod +x "$w"
	run --separate-stderr env SOCKSIFY_SERVER="$w" "$SOCKSIFY" true
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"wrapper: stopped by socksify"* ]]
}

@test "the embedded server asks for a per-run password: no other local client may use it, and no argv shows it" {
	# Run inside the command: read the proxy URL the launcher gave it, try the
	# server without credentials (RFC 1928: 05 FF), then look for the secret
	# in the argv of every process the launcher started (the server, us).
	run "$SOCKSIFY" python3 -c '
import os, re, socket
url = os.environ["SOCKSIFY_PROXY"]
m = re.fullmatch(r"socks5h://socksify:([0-9a-f]{32})@127\.0\.0\.1:(\d+)", url)
print("url", "ok" if m else url)
secret, port = m.group(1).encode(), int(m.group(2))
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(bytes([5, 1, 0]))
print("no-auth reply", s.recv(2).hex())
launcher = os.getppid()
seen = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open("/proc/%s/stat" % pid).read()
        if int(stat.rsplit(")", 1)[1].split()[1]) != launcher:
            continue
        argv = open("/proc/%s/cmdline" % pid, "rb").read()
    except (OSError, ValueError):
        continue
    seen += 1
    print("argv", "leaks" if secret in argv else "clean")
print("children", seen)
'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "url ok" ]
	[ "${lines[1]}" = "no-auth reply 05ff" ]
	[ "${lines[-1]}" = "children 2" ]
	[ "$(grep -c '^argv clean$' <<<"$output")" = 2 ]
	# and a wrong password is turned away as well (RFC 1929 status 01)
	run "$SOCKSIFY" python3 -c '
import os, re, socket
port = int(os.environ["SOCKSIFY_PROXY"].rsplit(":", 1)[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(bytes([5, 1, 2]))
print(s.recv(2).hex())
s.sendall(bytes([1, 8]) + b"socksify" + bytes([4]) + b"nope")
print(s.recv(2).hex())
'
	[ "$output" = $'0502\n0101' ]
}
