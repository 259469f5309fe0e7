#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# make install and make uninstall into a DESTDIR, and what an installed tree
# must do: run socksify with its embedded server from the installed paths.

load helpers/common

setup() {
	DEST=$BATS_TEST_TMPDIR/dest
	INST=$DEST/usr/local
}

teardown() { stop_all; }

# make_tree TARGET: make TARGET (install, uninstall) with DESTDIR=$DEST and
# PREFIX=/usr/local.
make_tree() { project_make "$1" DESTDIR="$DEST" PREFIX=/usr/local; }

# complete_line WORD...: what the installed bash completion offers when the
# command line is WORD... and the last WORD is being completed, one per line,
# sorted, in $BATS_TEST_TMPDIR/cwd. Words are split at "=" as bash splits
# them ("--log" "=" "x"). WITH_BASH_COMPLETION=1: bash-completion's own
# functions are loaded first, as in an interactive shell.
complete_line() {
	(cd "$BATS_TEST_TMPDIR/cwd" && bash --norc --noprofile -c '
		comp=$1
		shift
		[ "${WITH_BASH_COMPLETION:-0}" = 0 ] || . /usr/share/bash-completion/bash_completion
		. "$comp"
		COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMP_LINE="$*" COMP_POINT=${#COMP_LINE}
		spec=$(complete -p "$1") || exit 1
		func=${spec#*-F } func=${func%% *}
		"$func" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
		[ "${#COMPREPLY[@]}" -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"' \
		sh "$INST/share/bash-completion/completions/$1" "$@") | sort -u
}

# completion_setup: the installed tree, a directory of files to complete
# and a command of our own on PATH.
completion_setup() {
	make_tree install
	mkdir -p "$BATS_TEST_TMPDIR/cwd/conf.d" "$BATS_TEST_TMPDIR/bin"
	touch "$BATS_TEST_TMPDIR/cwd/users.txt" "$BATS_TEST_TMPDIR/cwd/usr.conf"
	printf '#!/bin/sh
' >"$BATS_TEST_TMPDIR/bin/zzprobe-cmd"
	chmod 755 "$BATS_TEST_TMPDIR/bin/zzprobe-cmd"
	PATH=$BATS_TEST_TMPDIR/bin:$PATH
}

# want GOT WORD...: GOT, the lines of complete_line, is WORD..., sorted.
want() {
	local got=$1
	shift
	echo "got: ${got//$'\n'/ }; want: $*"
	[ "$got" = "$(printf '%s\n' "$@" | sort -u)" ]
}

# help_options PROGRAM: the options PROGRAM --help lists, one per line, sorted.
help_options() {
	"$1" --help | sed -nE 's/^ +(-[A-Za-z], )?(--[a-z][a-z-]*).*/\1\2/p' | tr -s ', ' '\n' | sort -u
}

# man_tags PAGE SECTION: the tag lines (the line after .TP or .TQ) of
# SECTION of the man page PAGE, with roff's \- and font changes undone.
man_tags() {
	awk -v sec="$2" '/^\.SH /{ insec = $0 == ".SH " sec; tag = 0; next }
		insec && tag { print; tag = 0 } insec && /^\.T[PQ]/ { tag = 1 }' "$1" |
		sed 's/\\-/-/g; s/\\f[A-Z]//g'
}

# man_options PAGE: the options its OPTIONS section describes, one per line,
# sorted: "-x" and "--proxy" of ".BR \-x ", " \-\-proxy " \fIURL\fR"".
man_options() {
	man_tags "$1" OPTIONS | grep -oE '(^|[ "])(--[a-z][a-z-]*|-[A-Za-z])([^A-Za-z-]|$)' |
		grep -oE -- '--?[A-Za-z][a-z-]*' | sort -u
}

# Every file and link under $DEST, one per line, with its mode.
tree_files() { (cd "$DEST" && find . ! -type d -printf '%m %p\n' | sort); }

@test "make install: socksify in bin, socksifyd in sbin, the library in lib/socksify, man pages, examples, completion, systemd units" {
	make_tree install
	run tree_files
	printf '%s\n' "$output"
	[ "$output" = "644 ./usr/local/lib/socksify/libsocksify.so
644 ./usr/local/lib/systemd/system/socksifyd.service
644 ./usr/local/lib/systemd/system/socksifyd.socket
644 ./usr/local/share/bash-completion/completions/socksify
644 ./usr/local/share/bash-completion/completions/socksifyd
644 ./usr/local/share/doc/socksify/examples/socksifyd.conf
644 ./usr/local/share/doc/socksify/examples/socksifyd.users
644 ./usr/local/share/man/man1/socksify.1
644 ./usr/local/share/man/man8/socksifyd.8
755 ./usr/local/bin/socksify
755 ./usr/local/sbin/socksifyd" ]
	cmp "$BUILD/socksifyd" "$INST/sbin/socksifyd"
	cmp "$BUILD/socksify" "$INST/bin/socksify"
	cmp "$BUILD/libsocksify.so" "$INST/lib/socksify/libsocksify.so"
	cmp "$ROOT/man/socksifyd.8" "$INST/share/man/man8/socksifyd.8"
	cmp "$ROOT/man/examples/socksifyd.conf" "$INST/share/doc/socksify/examples/socksifyd.conf"
}

@test "installed tree: socksify runs curl through its embedded server, taking the installed library and sbin/socksifyd" {
	make_payload
	start_http 127.0.0.1
	make_tree install
	# A socksifyd an older make install left in bin/ must not be the one.
	printf '#!/bin/sh\necho "stale bin/socksifyd ran" >&2\nexit 1\n' >"$INST/bin/socksifyd"
	chmod 755 "$INST/bin/socksifyd"
	# From another directory, found on PATH, as a user runs it.
	got=$(cd / && PATH="$INST/bin:$PATH" socksify curl -sS --max-time 20 \
		"http://127.0.0.1:$HTTP_PORT/payload.bin" | sha)
	[ "$got" = "$PAYLOAD_SHA" ]
	# Inside the command: its parent (the launcher) started the server, and
	# the library preloaded is the installed one.
	run --separate-stderr env -C / PATH="$INST/bin:$PATH" socksify sh -c \
		'ps -o args= --ppid "$PPID"; echo "LD_PRELOAD=$LD_PRELOAD"'
	printf '%s\n' "$output" "$stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == *"$INST/sbin/socksifyd --listen 127.0.0.1:0 "* ]]
	[[ "$output" == *"LD_PRELOAD=$INST/lib/socksify/libsocksify.so"* ]]
	[[ "$stderr" != *stale* ]]
}

@test "installed tree: without sbin/socksifyd the launcher says which paths it tried, exit 125" {
	make_tree install
	rm "$INST/sbin/socksifyd"
	run --separate-stderr "$INST/bin/socksify" true
	echo "$stderr"
	[ "$status" -eq 125 ]
	[[ "$stderr" == *"embedded server not found: neither $INST/bin/../sbin/socksifyd nor $INST/bin/socksifyd can be run"* ]]
}

@test "make uninstall removes exactly what make install put there, and our directories once empty" {
	# Someone else's files, in our directories and beside them.
	mkdir -p "$INST/bin" "$INST/share/man/man1"
	echo other >"$INST/bin/other"
	echo other >"$INST/share/man/man1/other.1"
	before=$(tree_files)
	make_tree install
	[ "$(tree_files)" != "$before" ]
	make_tree uninstall
	[ "$(tree_files)" = "$before" ]
	[ ! -e "$INST/lib/socksify" ]
	[ ! -e "$INST/share/doc/socksify" ]
	# A file someone put in one of them keeps it; uninstalling twice is no error.
	make_tree install
	echo mine >"$INST/lib/socksify/mine"
	echo mine >"$INST/share/doc/socksify/mine"
	make_tree uninstall
	make_tree uninstall
	[ "$(cat "$INST/lib/socksify/mine")" = mine ]
	[ "$(cat "$INST/share/doc/socksify/mine")" = mine ]
	[ ! -e "$INST/lib/socksify/libsocksify.so" ]
	[ ! -e "$INST/share/doc/socksify/examples" ]
}

@test "the installed example config and users file: socksifyd takes them as they are and serves their user" {
	unshare --net --mount true 2>/dev/null || skip "needs network and mount namespaces of our own (unshare)"
	make_tree install
	ex=$INST/share/doc/socksify/examples
	[ -f "$ex/socksifyd.conf" ]
	[ -f "$ex/socksifyd.users" ]
	run timeout 60 unshare --net --mount sh "$HELPERS/netns_examples.sh" "$INST/sbin/socksifyd" \
		"$ex/socksifyd.conf" "$ex/socksifyd.users" "$HELPERS" "$BATS_TEST_TMPDIR"
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "socksifyd: listening on 127.0.0.1:1080" ]
	[ "${lines[1]}" = "socksifyd: listening on [::1]:1080" ]
	[ "${lines[2]}" = "as alice: hello through the example" ]
	[ "${lines[3]}" = "as carol: hello through the example" ]
	# RFC 1928: no acceptable method; curl's "proxy handshake" failure.
	[ "${lines[4]}" = "no credentials: curl exit 97" ]
	[ "${#lines[@]}" -eq 5 ]
}

@test "bash completion: the options each --help lists, and no other" {
	completion_setup
	run help_options "$INST/bin/socksify"
	[ "${#lines[@]}" -gt 10 ]
	want "$(complete_line socksify -)" "${lines[@]}"
	run help_options "$INST/sbin/socksifyd"
	[ "${#lines[@]}" -gt 20 ]
	want "$(complete_line socksifyd -)" "${lines[@]}"
	want "$(complete_line socksify --p)" --pick --proxy
	want "$(complete_line socksifyd --no)" --no-auth --no-bind --no-udp
	# An option --help shows with a value takes the next word as that
	# value; after one shown bare, options go on.
	local prog opt value
	for prog in "$INST/bin/socksify" "$INST/sbin/socksifyd"; do
		while read -r opt value; do
			run complete_line "${prog##*/}" "$opt" -
			echo "${prog##*/} $opt ${value:-(no value)}: ${output//$'\n'/ }"
			if [ -n "$value" ]; then
				[[ "$output" != *-* ]]
			else
				[[ "$output" == *--help* ]]
			fi
		done < <("$prog" --help | sed -nE 's/^ +(-[A-Za-z], )?(--[a-z][a-z-]*)( ([^ ]+))?.*/\2 \4/p')
	done
}

@test "bash completion of socksify: option values, then COMMAND and its arguments, never socksify's options" {
	completion_setup
	want "$(complete_line socksify --mode '')" auto preload seccomp
	want "$(complete_line socksify -tm s)" seccomp
	want "$(complete_line socksify -e n)" none
	want "$(complete_line socksify -x socks5)" socks5:// socks5h://
	want "$(complete_line socksify --log us)" users.txt usr.conf
	want "$(complete_line socksify --log = us)" users.txt usr.conf
	want "$(complete_line socksify -t --log=us)" users.txt usr.conf
	# COMMAND: after the options and their values, an attached one (-xURL,
	# ending in a letter that takes a value) included, or after "--".
	want "$(complete_line socksify zzprobe)" zzprobe-cmd
	want "$(complete_line socksify -q -x socks5h://h:1 -e none zzprobe)" zzprobe-cmd
	want "$(complete_line socksify -xh:1 -emy.corp.com -tm auto zzprobe)" zzprobe-cmd
	want "$(complete_line socksify --log = u.log -- zzprobe)" zzprobe-cmd
	# COMMAND's arguments: file names here, options of its own.
	want "$(complete_line socksify -t zzprobe-cmd us)" users.txt usr.conf
	want "$(complete_line socksify -t zzprobe-cmd --p)"
	want "$(complete_line socksify -t zzprobe-cmd -x '')" conf.d users.txt usr.conf
}

@test "bash completion of socksify with bash-completion loaded: COMMAND's own completion after the options" {
	[ -f /usr/share/bash-completion/bash_completion ] || skip "bash-completion is not installed (scripts/deps.sh test)"
	completion_setup
	export WITH_BASH_COMPLETION=1
	# A completion of zzprobe-cmd's own, as bash-completion would load it.
	mkdir -p "$BATS_TEST_TMPDIR/data/bash-completion/completions"
	echo 'complete -W "--alpha --beta gamma" zzprobe-cmd' \
		>"$BATS_TEST_TMPDIR/data/bash-completion/completions/zzprobe-cmd"
	export XDG_DATA_DIRS=$BATS_TEST_TMPDIR/data:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}
	want "$(complete_line socksify -x socks5h://h:1 zzprobe-cmd --)" --alpha --beta
	want "$(complete_line socksify -t -- zzprobe-cmd --alpha g)" gamma
	want "$(complete_line socksify -q zzprobe)" zzprobe-cmd
	want "$(complete_line socksify --mode a)" auto
}

@test "bash completion of socksifyd: file names for --config and --users, the words of --accept and --relay" {
	completion_setup
	want "$(complete_line socksifyd --config us)" users.txt usr.conf
	want "$(complete_line socksifyd -v -u '')" conf.d users.txt usr.conf
	want "$(complete_line socksifyd --users = u)" users.txt usr.conf
	want "$(complete_line socksifyd --relay '')" auto copy splice
	want "$(complete_line socksifyd --relay=a)" auto
	want "$(complete_line socksifyd --accept = s)" shared
	want "$(complete_line socksifyd -ql 127.0.0.1:0 --accept=r)" reuseport
	# Addresses, rules and numbers: nothing to offer; after them, options again.
	want "$(complete_line socksifyd --listen '')"
	want "$(complete_line socksifyd --deny 'to *:25' --max-sessions 10 --no-u)" --no-udp
}

@test "man pages: the OPTIONS section of each describes exactly the options its --help lists" {
	local prog page
	for prog in socksify:socksify.1 socksifyd:socksifyd.8; do
		page=$ROOT/man/${prog#*:}
		run diff <(help_options "$BUILD/${prog%%:*}") <(man_options "$page")
		echo "$prog: --help (<) against the page (>): ${output:-the same}"
		[ "$status" -eq 0 ]
		[ "$(man_options "$page" | wc -l)" -gt 10 ]
	done
}

@test "man pages: socksify(1) ENVIRONMENT and socksify --help name the same SOCKSIFY_ variables, every one the code reads" {
	run diff <("$SOCKSIFY" --help | grep -oE 'SOCKSIFY_[A-Z_]+' | sort -u) \
		<(man_tags "$ROOT/man/socksify.1" ENVIRONMENT | grep -oE 'SOCKSIFY_[A-Z_]+' | sort -u)
	echo "--help (<) against ENVIRONMENT (>): ${output:-the same}"
	[ "$status" -eq 0 ]
	# What the launcher and the library read, documented (SOCKSIFY_NAMES,
	# internal, where the page explains the name table).
	local v
	for v in $(cat "$ROOT"/preload/*.[ch] "$ROOT/scripts/socksify.c" | grep -oE '"SOCKSIFY_[A-Z_]+' | tr -d '"' | sort -u); do
		echo "$v"
		if [ "$v" = SOCKSIFY_NAMES ]; then
			grep -q "^\.B $v\$" "$ROOT/man/socksify.1"
		else
			man_tags "$ROOT/man/socksify.1" ENVIRONMENT | grep -qE "(^| )$v([= ]|\$)"
		fi
	done
}

@test "man pages: .TH carries the version and a date no older than the page's last change" {
	local page th date version changed
	for page in "$ROOT/man/socksify.1" "$ROOT/man/socksifyd.8"; do
		th=$(grep -m 1 '^\.TH ' "$page")
		echo "$th"
		# .TH NAME SECTION DATE "socksify VERSION" "TITLE"
		date=$(echo "$th" | awk '{ print $4 }')
		version=$(echo "$th" | sed -n 's/^[^"]*"socksify \([^"]*\)".*/\1/p')
		[[ "$date" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]
		[ "$version" = "$("$SOCKSIFY" --version | sed 's/^socksify //')" ]
		[ "$version" = "$("$SOCKSIFYD" --version | sed 's/^socksifyd //')" ]
		# The month of the last commit that changed the page, or this month
		# while it has changes not committed; only in a git checkout.
		command -v git >/dev/null && git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || continue
		if git -C "$ROOT" diff --quiet HEAD -- "$page"; then
			changed=$(git -C "$ROOT" log -1 --format=%cs -- "$page")
		else
			changed=$(date -u +%F)
		fi
		echo "last changed $changed"
		[[ "${date:0:7}" > "${changed:0:7}" || "${date:0:7}" == "${changed:0:7}" ]]
	done
}
