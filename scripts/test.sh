#!/bin/sh
# make test: every check the project has, in stages, then one closing line
# "N passed, N failed" for the whole run. Exit 0 iff none failed.
#
#   plain     unit tests and every end-to-end suite (tests/*.bats)
#   splice    the server suites that move bytes, with --relay copy and
#             --relay splice (plain runs the default, auto)
#   san       the same (but the third-party interop suite) under ASan +
#             UBSan, a build in build/san
#   valgrind  the server suites with socksifyd under valgrind: no error,
#             no definite leak, in any server process
#   fuzz      every libFuzzer target for FUZZ_SECONDS (default 3) each
#   soak      the soak and fault suite in its short form (SOAK_SCALE=ci),
#             with each --relay path
#
# TEST_STAGES picks stages (default: all six, in that order); `make check`
# runs "plain" alone.
#
# The end-to-end suites run inside a private mount namespace whose
# /etc/resolv.conf names 127.0.0.1 as the only nameserver: a lookup of a name
# that /etc/hosts lacks then fails on loopback instead of sending a DNS query
# off this host (the tests resolve names that exist nowhere, on purpose). It
# has an /etc/hosts even where the machine has none (see in_jail below).
set -u
BUILD=${BUILD:-build}
TEST_STAGES=${TEST_STAGES:-plain splice san valgrind fuzz soak}
FUZZ_SECONDS=${FUZZ_SECONDS:-3}
MAKE=${MAKE:-make}
export BUILD

sh scripts/deps.sh test || exit 1

pass=0 fail=0 skip=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
# The second and third of the runs side by side (e2e_split) get nameservers
# of their own, where nothing listens: a name one of their servers looks up
# must never reach the DNS sink a test of the first run keeps on 127.0.0.1:53.
printf 'nameserver 127.0.0.2\noptions timeout:1 attempts:1\n' >"$work/resolv2.conf"
printf 'nameserver 127.0.0.3\noptions timeout:1 attempts:1\n' >"$work/resolv3.conf"

# in_jail CMD...: CMD in the private mount namespace, $work/$RESOLV (default
# resolv.conf) bound over /etc/resolv.conf. The tests also need an
# /etc/hosts: for localhost, and as the mount point of the hosts files they
# bind over it. Every installed Debian
# and every container has one, but debootstrap writes none; there (or with no
# /etc/resolv.conf) the namespace gets Debian's standard files in an overlay of
# /etc whose writes land in $work, so the real /etc is never written.
in_jail() {
	unshare --mount sh -c '
		w=$1 r=$2
		shift 2
		if [ ! -f /etc/hosts ] || [ ! -f /etc/resolv.conf ]; then
			up=$(mktemp -d "$w/etc.XXXXXX") && mkdir "$up/u" "$up/w" &&
			mount -t overlay overlay -o "lowerdir=/etc,upperdir=$up/u,workdir=$up/w" /etc || exit 1
			[ -f /etc/hosts ] || { rm -f /etc/hosts &&
				printf "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n" >/etc/hosts; } || exit 1
			[ -f /etc/resolv.conf ] || { rm -f /etc/resolv.conf && : >/etc/resolv.conf; } || exit 1
		fi
		mount --bind "$w/$r" /etc/resolv.conf && exec "$@"' sh "$work" "${RESOLV:-resolv.conf}" "$@"
}
if in_jail true 2>/dev/null; then
	jail=1
else
	jail=0
fi

# count OUT: adds the "N passed, N failed[, N skipped]" last line of OUT.
count() {
	last=$(tail -n 1 "$1")
	p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
	f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
	if [ -z "$p" ]; then
		echo "($1 did not finish)"
		p=0 f=1
	fi
	pass=$((pass + p)) fail=$((fail + f))
}

# unit BUILD: the C unit tests of one build.
unit() {
	echo "== unit tests ($1/unit-tests)"
	"$1/unit-tests" >"$work/unit.out" 2>&1
	rc=$?
	cat "$work/unit.out"
	count "$work/unit.out"
	[ "$rc" -eq 0 ] || [ "$f" -ne 0 ] || fail=$((fail + 1))
}

# bats_run OUT BATS-ARGS...: bats in the DNS jail (when there is one), its
# TAP output in OUT.
bats_run() {
	out=$1
	shift
	if [ "$jail" = 1 ]; then
		SOCKSIFY_TEST_NS=1 in_jail bats --timing --formatter tap "$@" >"$out" 2>&1
	else
		SOCKSIFY_TEST_NS=0 bats --timing --formatter tap "$@" >"$out" 2>&1
	fi
}

# tally OUT: adds a bats run's counts (a run that stopped short is a failure).
tally() {
	cat "$1"
	bp=$(grep -cE '^ok [0-9]+' "$1")
	bs=$(grep -cE '^ok [0-9]+ .*# skip' "$1")
	bf=$(grep -cE '^not ok [0-9]+' "$1")
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$1" | head -n 1)
	if [ -z "$planned" ] || [ $((bp + bf)) -ne "$planned" ]; then
		echo "bats did not finish every test (planned ${planned:-?}, ran $((bp + bf)))"
		bf=$((bf + 1))
	fi
	pass=$((pass + bp - bs)) fail=$((fail + bf)) skip=$((skip + bs))
}

# e2e NAME BATS-FILES...: bats in the DNS jail, counted from its TAP output.
e2e() {
	name=$1
	shift
	echo "== end-to-end tests ($name: $*)"
	[ "$jail" = 1 ] || echo "(no mount namespace here: tests that resolve unknown names are skipped)"
	bats_run "$work/bats.out" "$@"
	tally "$work/bats.out"
}

# e2e_split NAME BATS-FILES...: the same, in three bats runs side by side
# (the suites mostly wait on timers and the network). The suites that bind
# 127.0.0.1:53 (a DNS sink or a silent server) share the first run, so that
# no two of them want the port at once; the other runs get a nameserver of
# their own where nothing listens (127.0.0.2, 127.0.0.3), so that a name one
# of their servers looks up never reaches a sink of the first run. The lists
# are drawn so that the runs take about as long: test time per suite on a
# fresh machine, plain stage, about 137, 141 and 124 s (ASan: 160, 137, 169).
# A suite in neither list joins the third run.
E2E_FIRST='preload.bats server.bats supervisor.bats preload_paths.bats preload_dns.bats preload_tree.bats server_log.bats layering.bats launcher.bats preload_bind.bats'
E2E_SECOND='preload_async.bats server_ops.bats preload_udp.bats interop.bats check.bats diagnostics.bats install.bats'
e2e_split() {
	name=$1
	shift
	r1= r2= r3=
	for f in "$@"; do
		case " $E2E_FIRST " in
		*" ${f##*/} "*) r1="$r1 $f"; continue ;;
		esac
		case " $E2E_SECOND " in
		*" ${f##*/} "*) r2="$r2 $f" ;;
		*) r3="$r3 $f" ;;
		esac
	done
	echo "== end-to-end tests ($name, three runs side by side:$r1 |$r2 |$r3)"
	[ "$jail" = 1 ] || echo "(no mount namespace here: tests that resolve unknown names are skipped)"
	# shellcheck disable=SC2086 # lists of file names, split on purpose
	{ [ -z "$r1" ] || bats_run "$work/bats1.out" $r1; } &
	p1=$!
	# shellcheck disable=SC2086
	{ [ -z "$r2" ] || RESOLV=resolv2.conf bats_run "$work/bats2.out" $r2; } &
	p2=$!
	# shellcheck disable=SC2086
	{ [ -z "$r3" ] || RESOLV=resolv3.conf bats_run "$work/bats3.out" $r3; } &
	p3=$!
	wait "$p1"
	wait "$p2"
	wait "$p3"
	[ -z "$r1" ] || tally "$work/bats1.out"
	[ -z "$r2" ] || tally "$work/bats2.out"
	[ -z "$r3" ] || tally "$work/bats3.out"
}

stage_plain() {
	unit "$BUILD"
	e2e_split plain tests/*.bats
}

stage_san() {
	echo "== building with ASan + UBSan (build/san)"
	if ! $MAKE -s SAN=1 BUILD=build/san all build/san/unit-tests testbin >"$work/san-build.out" 2>&1; then
		cat "$work/san-build.out"
		fail=$((fail + 1))
		return
	fi
	unit build/san
	# The library is preloaded into programs that are not built with ASan:
	# let its runtime load after them. Leaks of the server are the valgrind
	# stage's job; the preloaded library's leaks would be the program's.
	# Every suite but interop.bats, whose third-party clients add nothing
	# for the sanitizers to watch that the others do not, and install.bats,
	# which tests packaging (make install and uninstall, completion, man
	# pages), no code the plain stage does not run.
	ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	BUILD=build/san e2e_split san $(ls tests/*.bats | grep -vE '/(interop|install)\.bats$')
}

# A representative share of the server suites with every socksifyd they
# start under valgrind (each with a worker per CPU): CONNECT (IPv4, IPv6,
# names, early data, half-close), authentication, failure replies, the
# resolver's cancel paths, all of BIND and UDP ASSOCIATE, rules, SIGHUP and
# the SIGTERM drain, systemd's notifications around them, and the metrics
# endpoint under load and stalled scrapes. Each server's
# log must end with no error and no definite leak.
VG_CONNECT='curl --socks5-hostname|IPv6 target|refused target|unresolvable|unknown command|coalesced|users file: right|half-close|resolver'
VG_OPS='deny by destination|SIGHUP|SIGTERM drains'
stage_valgrind() {
	vg=$work/valgrind
	mkdir -p "$vg"
	export SOCKSIFYD_WRAP="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 --log-file=$vg/server.%p"
	export SOCKSIFYD_READY_TRIES=300 SOCKSIFYD_STOP_WAIT=30
	# Two runs side by side (valgrind wants a CPU each); the second has a
	# nameserver of its own, as in e2e_split.
	echo "== end-to-end tests (valgrind, two runs side by side)"
	{
		bats_run "$vg/a1.out" --filter "$VG_CONNECT" tests/server.bats
		bats_run "$vg/a2.out" --filter 'NOTIFY_SOCKET' tests/systemd.bats
	} &
	p1=$!
	{
		RESOLV=resolv2.conf bats_run "$vg/b1.out" tests/server_bind_udp.bats
		RESOLV=resolv2.conf bats_run "$vg/b2.out" --filter "$VG_OPS" tests/server_ops.bats
		RESOLV=resolv2.conf bats_run "$vg/b3.out" --filter 'known load|stalls' tests/server_metrics.bats
	} &
	p2=$!
	wait "$p1"
	wait "$p2"
	for out in a1 a2 b1 b2 b3; do
		tally "$vg/$out.out"
	done
	unset SOCKSIFYD_WRAP SOCKSIFYD_READY_TRIES SOCKSIFYD_STOP_WAIT
	runs=0 bad=0
	for log in "$vg"/server.*; do
		[ -e "$log" ] || continue
		runs=$((runs + 1))
		if ! grep -q 'ERROR SUMMARY: 0 errors' "$log" ||
		    grep -q 'definitely lost: [1-9]' "$log"; then
			bad=$((bad + 1))
			echo "-- valgrind found a problem in $log:"
			cat "$log"
		fi
	done
	echo "valgrind: $runs server runs, $bad with errors or definite leaks"
	if [ "$runs" -gt 0 ] && [ "$bad" -eq 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
}

stage_fuzz() {
	echo "== fuzzing, $FUZZ_SECONDS s per target"
	wait "$fuzz_pid"
	rc=$?
	cat "$work/fuzz.out"
	ran=$(grep -c 'stat::number_of_executed_units' "$work/fuzz.out")
	pass=$((pass + ran))
	[ "$rc" -eq 0 ] || fail=$((fail + 1))
}

# The relay's other paths: what moves bytes, again with --relay copy and
# --relay splice (the plain stage runs the default, auto).
VG_SPLICE='curl|IPv6 target|coalesced|split handshake|half-close|every address'
stage_splice() {
	local relay
	for relay in copy splice; do
		SOCKSIFYD_ARGS="--relay $relay" e2e "$relay" --filter "$VG_SPLICE" tests/server.bats
		SOCKSIFYD_ARGS="--relay $relay" e2e "$relay" --filter 'BIND' tests/server_bind_udp.bats
	done
}

stage_soak() {
	for relay in auto copy splice; do
		echo "== soak and fault suite (short form, --relay $relay)"
		SOCKSIFYD_ARGS="--relay $relay" $MAKE -s soak SOAK_SCALE=ci >"$work/soak.out" 2>&1
		cat "$work/soak.out"
		count "$work/soak.out"
	done
}

# The fuzzers need a CPU and the first stages mostly wait on the network:
# they run side by side, the fuzzers at the lowest priority, and report
# where the fuzz stage stands in the list.
fuzz_pid=
case " $TEST_STAGES " in
*" fuzz "*)
	nice -n 19 $MAKE -s fuzz FUZZ_SECONDS="$FUZZ_SECONDS" >"$work/fuzz.out" 2>&1 &
	fuzz_pid=$!
	;;
esac

for stage in $TEST_STAGES; do
	t0=$(date +%s)
	case $stage in
	plain|splice|san|valgrind|fuzz|soak) "stage_$stage" ;;
	*) echo "scripts/test.sh: unknown stage '$stage'"; fail=$((fail + 1)) ;;
	esac
	echo "== stage $stage: $(($(date +%s) - t0)) s"
done

echo
[ "$skip" -eq 0 ] || echo "($skip skipped, counted in neither)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
