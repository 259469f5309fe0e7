#!/bin/sh
# make test: unit tests, then every end-to-end suite (tests/*.bats), then one
# closing line "N passed, N failed" for the whole run. Exit 0 iff none failed.
#
# The end-to-end suites run inside a private mount namespace whose
# /etc/resolv.conf names 127.0.0.1 as the only nameserver: a lookup of a name
# that /etc/hosts lacks then fails on loopback instead of sending a DNS query
# off this host (the tests resolve names that exist nowhere, on purpose).
set -u
BUILD=${BUILD:-build}
SAN=${SAN:-}
export BUILD

sh scripts/deps.sh test || exit 1

pass=0 fail=0 skip=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== unit tests ($BUILD/unit-tests)"
"$BUILD/unit-tests" >"$work/unit.out" 2>&1
unit_rc=$?
cat "$work/unit.out"
last=$(tail -n 1 "$work/unit.out")
up=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
uf=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
if [ -z "$up" ]; then
	echo "unit tests did not finish (exit $unit_rc)"
	up=0 uf=1
elif [ "$unit_rc" -ne 0 ] && [ "$uf" -eq 0 ]; then
	uf=1
fi
pass=$((pass + up)) fail=$((fail + uf))

if [ "$SAN" = 1 ]; then
	# The library is preloaded into programs that are not built with ASan:
	# let its runtime load after them. Leak checks of the server are done
	# by the valgrind run, not here.
	export ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

echo "== end-to-end tests (tests/*.bats)"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
if unshare --mount sh -c 'mount --bind "$1" /etc/resolv.conf' sh "$work/resolv.conf" 2>/dev/null; then
	SOCKSIFY_TEST_NS=1 unshare --mount sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' \
		sh "$work/resolv.conf" bats --formatter tap tests/*.bats >"$work/bats.out" 2>&1
else
	echo "(no mount namespace here: tests that resolve unknown names are skipped)"
	SOCKSIFY_TEST_NS=0 bats --formatter tap tests/*.bats >"$work/bats.out" 2>&1
fi
cat "$work/bats.out"
bp=$(grep -cE '^ok [0-9]+' "$work/bats.out")
bs=$(grep -cE '^ok [0-9]+ .*# skip' "$work/bats.out")
bf=$(grep -cE '^not ok [0-9]+' "$work/bats.out")
planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$work/bats.out" | head -n 1)
if [ -z "$planned" ] || [ $((bp + bf)) -ne "$planned" ]; then
	echo "bats did not finish every test (planned ${planned:-?}, ran $((bp + bf)))"
	bf=$((bf + 1))
fi
pass=$((pass + bp - bs)) fail=$((fail + bf)) skip=$((skip + bs))

echo
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
