#!/bin/bash
# make fresh: do the README's commands work on a fresh Debian 12?
#
#   scripts/fresh.sh [--rebuild] [SHELL-COMMAND]     (as root)
#
# Runs SHELL-COMMAND (default: make demo && make test) in a clone of HEAD
# (committed files only) inside a throwaway copy of a Debian 12 chroot that
# holds debootstrap's minbase and FRESH_PACKAGES alone: what a fresh machine
# has. Everything else the project must install itself. Then it reports the
# tests that failed, the last lines, the exit status and the processes the
# command left behind (killed by PID), and a summary line:
#   fresh: exit=0 leftovers=0 base_s=0 cmd_s=812 total_s=815 log=...
#
#   FRESH_CACHE    /var/cache/socksify-fresh: base/ (built once, on first use
#                  or with --rebuild, never written after), runs/, logs/
#   FRESH_TIMEOUT  seconds the command may take (default 3600): then TERM,
#                  KILL 10 s later, exit 124
#   FRESH_MIRROR   Debian mirror (default: the one this host's apt uses)
#
# Exit status: the command's; 124 timeout; 125 fresh.sh itself failed.
# Not a security boundary: the command runs as root in a plain chroot that
# shares the host's kernel, network (loopback ports too), PIDs and /dev.
# Adapted from ../shared/tools/fresh (FRESH.md there tells how it was tested).
# shellcheck disable=SC2016  # $(...) for apt and sh -c, not for this shell
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

# What the README promises a machine needs beyond minbase, and nothing else.
# Not even ca-certificates: apt checks signatures, so an http mirror does
# (one that is https only would need it).
FRESH_PACKAGES="build-essential git python3 curl bats"
CACHE=${FRESH_CACHE:-/var/cache/socksify-fresh}
TIMEOUT=${FRESH_TIMEOUT:-3600}
SUITE=bookworm
SELF=$(readlink -f "$0")
PROJECT=$(cd "${SELF%/*}/.." && pwd)

# log MESSAGE: to stderr, and to the run's log once there is one.
log() {
	printf '[fresh %(%H:%M:%S)T] %s\n' -1 "$*" >&2
	[ -z "${LOG:-}" ] || printf '[fresh %(%H:%M:%S)T] %s\n' -1 "$*" >>"$LOG"
}
die() { log "error: $*"; exit 125; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot, mounts)"
case $CACHE in /*/*) ;; *) die "FRESH_CACHE must be a dedicated absolute directory" ;; esac
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "FRESH_TIMEOUT must be whole seconds"
# Everything below runs in a private mount namespace: what it mounts is
# invisible to the host and goes away with it, even if this script is killed.
if [ -z "${FRESH_IN_NS:-}" ]; then
	FRESH_IN_NS=1 exec unshare --mount --propagation private -- "$SELF" "$@"
fi
rebuild=0
[ "${1:-}" != --rebuild ] || { rebuild=1; shift; }
CMD=${1:-make demo && make test}
mkdir -p "$CACHE/runs" "$CACHE/logs"
exec {lock}>>"$CACHE/.lock"

# --- mounts and processes below a directory ----------------------------------

# mounts_below DIR: mount points at or below DIR, deepest first.
mounts_below() {
	awk -v d="$1" '{ t = $5; gsub(/\\040/, " ", t)
		if (t == d || index(t, d "/") == 1) print length(t) "\t" t }' /proc/self/mountinfo |
		sort -rn | cut -f2-
}
# umount_below DIR: every mount at or below DIR, lazily where one is busy.
umount_below() {
	local m
	for _ in 1 2 3; do
		m=$(mounts_below "$1")
		[ -n "$m" ] || return 0
		while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <<<"$m"
	done
	[ -z "$(mounts_below "$1")" ]
}
# procs_in ROOT: PIDs whose root directory is ROOT or below it.
procs_in() {
	local p l
	for p in /proc/[0-9]*; do
		l=$(readlink "$p/root" 2>/dev/null) || continue
		case $l in "$1" | "$1"/* | "$1 (deleted)") echo "${p#/proc/}" ;; esac
	done
}
# kill_procs_in ROOT: reports each process rooted there once, then TERM, a
# grace period and KILL, by PID, until none is left; sets LEFTOVERS.
kill_procs_in() {
	local -A seen=()
	local pids p
	LEFTOVERS=0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(procs_in "$1")
		[ -n "$pids" ] || return 0
		for p in $pids; do
			[ -z "${seen[$p]:-}" ] || continue
			seen[$p]=1 LEFTOVERS=$((LEFTOVERS + 1))
			log "leftover process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		done
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null || true
		for _ in $(seq 50); do [ -n "$(procs_in "$1")" ] || break; sleep 0.1; done
		pids=$(procs_in "$1")
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
	log "warning: processes still alive in $1"
}
# chroot_mounts ROOT: what a chroot needs from the host, and the host's
# resolv.conf (read-only) for apt. No /etc/hosts: debootstrap writes none,
# and a fresh machine built with it has none either.
chroot_mounts() {
	mount -t proc -o nosuid,nodev,noexec proc "$1/proc"
	mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$1/sys"
	mount --bind /dev "$1/dev"
	mount --bind /dev/pts "$1/dev/pts"
	mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$1/dev/shm"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$1/tmp"
	if [ -L "$1/etc/resolv.conf" ] || [ ! -f "$1/etc/resolv.conf" ]; then
		rm -f "$1/etc/resolv.conf" && : >"$1/etc/resolv.conf"
	fi
	mount --bind -o ro /etc/resolv.conf "$1/etc/resolv.conf"
}
# rm_tree DIR: deletes a throwaway tree, never with anything mounted below it.
rm_tree() {
	umount_below "$1" || { log "cannot unmount everything below $1; left in place"; return 1; }
	rm -rf --one-file-system -- "$1"
}

# --- the base: built once, then only ever copied ----------------------------

BASE=$CACHE/base
NEW=$CACHE/base.new
STAMP="suite=$SUITE packages=$FRESH_PACKAGES"
base_current() { [ -d "$BASE" ] && [ "$(cat "$CACHE/base.stamp" 2>/dev/null)" = "$STAMP" ]; }
build_base() {
	local new=$NEW mirror t0=$SECONDS
	trap 'kill_procs_in "$NEW"; rm_tree "$NEW"' EXIT
	rm_tree "$new"
	command -v debootstrap >/dev/null || {
		log "installing debootstrap on the host"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	}
	# The host's own Debian repositories (bookworm, -updates, -security), as
	# apt itself lists them, and the Acquire settings the host needs for them.
	mirror=${FRESH_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
		awk -v s="$SUITE" '$2 == s { print $1; exit }')}
	[ -n "$mirror" ] || die "no apt source for $SUITE on this host (set FRESH_MIRROR)"
	log "debootstrap --variant=minbase $SUITE $mirror (a few minutes)"
	debootstrap --variant=minbase "$SUITE" "$new" "$mirror" >"$CACHE/logs/debootstrap.log" 2>&1 ||
		die "debootstrap failed: $CACHE/logs/debootstrap.log"
	rm -f "$new/etc/apt/sources.list"
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | sort -u |
		awk -v s="$SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security" {
			print "Types: deb\nURIs: " $1 "\nSuites: " $2 "\nComponents: main\n" \
			      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" }' \
		>"$new/etc/apt/sources.list.d/debian.sources"
	apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' \
		>"$new/etc/apt/apt.conf.d/99host" || true
	# No init in a chroot: packages must not start services there.
	printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	chroot_mounts "$new"
	log "apt-get dist-upgrade, install $FRESH_PACKAGES"
	# shellcheck disable=SC2086
	env -i PATH="$PATH" DEBIAN_FRONTEND=noninteractive chroot "$new" sh -ec "
		apt-get update -qq
		apt-get dist-upgrade -y -qq
		apt-get install -y -qq --no-install-recommends $FRESH_PACKAGES
		apt-get clean" </dev/null >"$CACHE/logs/base-apt.log" 2>&1 ||
		die "apt in the new base failed: $CACHE/logs/base-apt.log"
	kill_procs_in "$new"
	umount_below "$new"
	# Like a fresh machine (and the debian:bookworm image): empty package lists.
	rm -rf "${new:?}"/var/lib/apt/lists/* "$new"/var/cache/apt/*.bin "$new"/tmp/*
	rm -f "$CACHE/base.stamp"
	rm_tree "$BASE.old"
	[ ! -e "$BASE" ] || mv "$BASE" "$BASE.old"
	mv "$new" "$BASE"
	rm_tree "$BASE.old"
	echo "$STAMP" >"$CACHE/base.stamp"
	trap - EXIT
	log "base ready in $((SECONDS - t0)) s: $BASE"
}
t_start=$SECONDS
if [ "$rebuild" = 1 ] || ! base_current; then
	flock -x "$lock"	# no run uses the base while it is replaced
	if [ "$rebuild" = 1 ] || ! base_current; then	# or another built it meanwhile
		build_base
	fi
fi
base_s=$((SECONDS - t_start))
flock -s "$lock"

# --- one run ----------------------------------------------------------------

# Runs whose fresh.sh died without cleaning up (a live one holds its lock).
for d in "$CACHE"/runs/run.*; do
	if [ ! -d "$d" ] || ! flock -n "$d/lock" true; then continue; fi
	log "removing the stale run $d"
	kill_procs_in "$d/root"
	rm_tree "$d" || true
done

RUN=$(mktemp -d "$CACHE/runs/run.XXXXXX")
R=$RUN/root
exec {runlock}>"$RUN/lock"
flock -x "$runlock"
LOG=$CACHE/logs/$(date +%Y%m%d-%H%M%S)-${RUN##*.}.log
rc=125 LEFTOVERS='?' cmd_s='?' child=

finish() {
	trap - EXIT INT TERM HUP
	set +e
	[ -z "$child" ] || { kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; }
	kill_procs_in "$R"
	rm_tree "$RUN" || rc=125
	report=$(
		echo
		echo "== fresh: tests that failed"
		grep -E '^not ok |did not finish' "$LOG" || echo "(none)"
		echo "== fresh: last lines"
		grep -v '^\[fresh ' "$LOG" | tail -n 5
	)
	echo "$report" | tee -a "$LOG"
	log "fresh: exit=$rc leftovers=$LEFTOVERS base_s=$base_s cmd_s=$cmd_s total_s=$((SECONDS - t_start)) log=$LOG"
	exit "$rc"
}
trap finish EXIT
trap 'rc=130; exit' INT
trap 'rc=143; exit' TERM
trap 'rc=129; exit' HUP

mkdir "$RUN/upper" "$RUN/work" "$R"
# An overlay of the base costs nothing; a copy where overlayfs is missing.
mount -t overlay -o "lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work" overlay "$R" 2>/dev/null ||
	cp -a "$BASE/." "$R/"
commit=$(git -c safe.directory='*' -C "$PROJECT" rev-parse HEAD)
mkdir -p "$R/src"
git -c safe.directory='*' clone -q --no-hardlinks "$PROJECT" "$R/src/main"
git -C "$R/src/main" checkout -q --detach "$commit"
dirty=$(git -c safe.directory='*' -C "$PROJECT" status --porcelain | wc -l)
chroot_mounts "$R"

{
	echo "[fresh] $(date -u +%FT%TZ) $PROJECT at $commit (committed files only; $dirty uncommitted paths left out)"
	echo "[fresh] base: minbase + $FRESH_PACKAGES; timeout ${TIMEOUT}s; cmd: $CMD"
} | tee "$LOG"
t_cmd=$SECONDS
from=$(($(stat -c %s "$LOG") + 1))
# A fresh machine's environment: no CI, TERM or locale variables.
env -i HOME=/root PATH="$PATH" USER=root LOGNAME=root SHELL=/bin/bash \
	timeout --kill-after=10 "$TIMEOUT" chroot "$R" /bin/sh -c 'cd /src/main && eval "$1"' fresh "$CMD" \
	</dev/null >>"$LOG" 2>&1 {lock}>&- {runlock}>&- &
child=$!
tail -c "+$from" -s 0.5 -f --pid="$child" "$LOG" {lock}>&- {runlock}>&- &
rc=0
wait "$child" || rc=$?
child=
cmd_s=$((SECONDS - t_cmd))
wait
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "[fresh] TIMEOUT after FRESH_TIMEOUT=${TIMEOUT}s" | tee -a "$LOG"
fi
