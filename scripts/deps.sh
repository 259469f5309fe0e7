#!/bin/sh
# Installs the Debian packages a make target needs, only when they are missing.
#   sh scripts/deps.sh demo|test|bench|fuzz
# Needs root (or sudo) only when something is actually missing.
set -eu

need=""
want() {	# want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	case " $need " in *" $2 "*) ;; *) need="$need $2" ;; esac
}

# install_needed: installs what is in $need and empties it, so that a probe
# that runs a program (fuzz) can come after the install of that program.
# A fresh machine's package lists may be empty: update them once first.
updated=""
install_needed() {
	[ -n "$need" ] || return 0
	if [ "$(id -u)" = 0 ]; then
		sudo=""
	elif command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "deps.sh: missing packages:$need (install them as root: apt-get install$need)" >&2
		exit 1
	fi
	echo "deps.sh: installing:$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	[ -n "$updated" ] || $sudo apt-get update -qq >/dev/null
	updated=1
	# shellcheck disable=SC2086
	$sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
	need=""
}

case ${1:-test} in
demo)
	want curl curl
	want python3 python3
	;;
test)
	want curl curl
	want python3 python3
	want bats bats
	want unshare util-linux
	want nm binutils
	want ps procps
	want pgrep procps
	want ss iproute2
	# crypt(3) hashes in socksifyd's users file: made as operators make them
	want mkpasswd whois
	want openssl openssl
	# tests/interop.bats: third-party SOCKS5 clients against socksifyd
	want ncat ncat
	want proxychains4 proxychains4
	# PySocks lives in Debian's python, not in whatever python3 is first on PATH
	/usr/bin/python3 -c 'import socks' >/dev/null 2>&1 || need="$need python3-socks"
	# tests/preload_programs.bats: real programs and foreign SOCKS5 servers
	want wget wget
	want node nodejs
	want microsocks microsocks
	# danted lives in /usr/sbin, which a non-root PATH may lack
	command -v danted >/dev/null 2>&1 || [ -x /usr/sbin/danted ] || need="$need dante-server"
	# the valgrind stage of make test
	want valgrind valgrind
	# tests/preload_async.bats: the system calls of a blocking connect
	want strace strace
	# real programs through the library: a text browser, an FTP client and
	# Debian's chromium, headless (no Recommends: they are a desktop's)
	want lynx lynx
	want lftp lftp
	# tests/preload_bind.bats: an FTP server for active FTP through BIND
	# (Debian's python, as for PySocks)
	/usr/bin/python3 -c 'import pyftpdlib' >/dev/null 2>&1 || need="$need python3-pyftpdlib"
	want chromium chromium
	# ip(8), to give a network namespace of a test's own its addresses
	want ip iproute2
	# tests/preload_evloop.bats: event-loop programs through the library
	# (nginx in /usr/sbin, which a non-root PATH may lack)
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
	# tests/server_lb.bats: socksifyd behind a load balancer (/usr/sbin)
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need="$need haproxy"
	want aria2c aria2
	want ssh openssh-client
	[ -x /usr/sbin/sshd ] || need="$need openssh-server"
	# tests/supervisor.bats: programs only the seccomp supervisor reaches,
	# built there (Go, with and without cgo; C with cc -static, which
	# needs glibc's libc.a) or shipped static (busybox-static: Debian's
	# busybox is dynamic, and the two packages replace each other)
	want go golang-go
	want file file
	ls /usr/lib/*/libc.a >/dev/null 2>&1 || need="$need libc6-dev"
	dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
	command -v setcap >/dev/null 2>&1 || [ -x /usr/sbin/setcap ] || need="$need libcap2-bin"
	# tests/preload_dns.bats: programs with their own DNS code
	want dig bind9-dnsutils
	want nslookup bind9-dnsutils
	want host bind9-host
	# tests/preload_udp.bats: a UDP program through the embedded server
	want iperf3 iperf3
	# tests/upstreams.bats: an HTTP CONNECT proxy (in /usr/bin; ssh -D and
	# danted above speak SOCKS4/4a), and git over http and ssh through each
	want tinyproxy tinyproxy-bin
	want git git
	# tests/install.bats: the installed completion, with bash-completion's
	# own functions (COMMAND's completion after socksify's options)
	[ -f /usr/share/bash-completion/bash_completion ] || need="$need bash-completion"
	# tests/systemd.bats: systemd's own socket activation and unit checker
	want systemd-socket-activate systemd
	want systemd-analyze systemd
	;;
bench)
	# make bench: the peers socksifyd is measured against, and the chart
	want microsocks microsocks
	command -v danted >/dev/null 2>&1 || [ -x /usr/sbin/danted ] || need="$need dante-server"
	[ -x /usr/sbin/sshd ] || need="$need openssh-server"
	want ssh openssh-client
	want proxychains4 proxychains4
	ls /usr/lib/*/libtsocks.so >/dev/null 2>&1 || need="$need tsocks"
	want gnuplot gnuplot-nox
	want taskset util-linux
	want ps procps
	# the scale-out figure (scripts/bench_failover.sh)
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need="$need haproxy"
	;;
fuzz)
	# libFuzzer's runtime ships apart from clang, in libclang-rt-N-dev for
	# clang N: install clang first, then ask the clang now present, by linking.
	want clang clang
	install_needed
	probe=$(mktemp -d)
	printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$probe/f.c"
	if ! clang -fsanitize=fuzzer -o "$probe/f" "$probe/f.c" 2>/dev/null; then
		v=$(clang --version | sed -n 's/.*version \([0-9]*\).*/\1/p' | head -n 1)
		need="$need libclang-rt-$v-dev"
	fi
	rm -rf "$probe"
	;;
*)
	echo "deps.sh: unknown target '$1' (demo, test, bench or fuzz)" >&2
	exit 2
	;;
esac

install_needed
