#!/usr/bin/env bash
# devlog.sh SOCKET COMMAND...: COMMAND in a mount namespace of its own where
# /dev/log is SOCKET (a datagram socket a test's receiver bound), so that
# --syslog can be tested on a host without a syslog daemon, and without
# touching the host's /dev. /dev there is a tmpfs holding null, zero,
# random, urandom (the host's, bound) and log. Needs root (as the DNS jail).
set -eu
sock=$1
shift
exec unshare --mount --propagation private bash -c '
	set -eu
	sock=$1
	shift
	real=$(mktemp -d)
	mount --bind /dev "$real"
	mount -t tmpfs -o mode=755,size=64k devlog /dev
	for n in null zero random urandom; do
		: >"/dev/$n"
		mount --bind "$real/$n" "/dev/$n"
	done
	: >/dev/log
	mount --bind "$sock" /dev/log
	umount "$real"
	rmdir "$real"
	exec "$@"' devlog "$sock" "$@"
