#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Description: build the portable core for aarch64 and run its tests
# under qemu-user.
#
# Cross-compiles arch/aarch64 and every user/runtime/*.c into a static
# library, links each given test against it statically, and runs each
# under qemu-aarch64, passing its TAP output through. The tests named
# are the "portable core": the ones that need neither BPF nor a kernel
# feature qemu-user lacks. Default: ctx_test.c.
#
#	selftests/check-aarch64.sh [test.c ...]
#
# Exit: 0 all passed, 1 a build or a test failed, 4 skipped (no cross
# compiler or no qemu-aarch64; "make deps" installs them).
#
# Warnings are errors when CI=true or WERROR=1, as in the Makefile.
# Output goes under $O/aarch64 (default build/aarch64, relative to the
# top of the tree), never into the source tree. Knobs: CROSS_COMPILE
# (aarch64-linux-gnu-), QEMU_AARCH64, CFLAGS_EXTRA, LDLIBS_EXTRA (e.g. an
# arm64 liburing), TIMEOUT (seconds per test, 600), V=1 to show every
# command.

set -u

here=$PWD
cd "$(dirname "$0")/.." || exit 1

CROSS_COMPILE=${CROSS_COMPILE:-aarch64-linux-gnu-}
CC=${CROSS_COMPILE}gcc
AR=${CROSS_COMPILE}ar
OUT=${O:-build}/aarch64
TIMEOUT=${TIMEOUT:-600}
# The Makefile's flags, so that both builds warn alike; -Werror in CI.
cflags=(-O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -static
	-pthread -D_GNU_SOURCE -fno-omit-frame-pointer
	-Iinclude -Iarch -Iuser/runtime -Ibpf -Iselftests)
case ${CI:-}${WERROR:-} in
*true*|*1*)	cflags+=(-Werror) ;;
esac
read -ra extra <<<"${CFLAGS_EXTRA:-}"
cflags+=("${extra[@]}")
read -ra ldlibs <<<"${LDLIBS_EXTRA:-}"
ldlibs+=(-lm)

skip()
{
	echo "SKIP: $*"
	exit 4
}

# Print the short form of a command (or all of it with V=1), run it.
run()
{
	local tag=$1 what=$2

	shift 2
	if [ "${V:-0}" = 1 ]; then
		echo "$*"
	else
		printf '  %-7s %s\n' "$tag" "$what"
	fi
	"$@"
}

QEMU=${QEMU_AARCH64:-}
if [ -z "$QEMU" ]; then
	for q in qemu-aarch64 qemu-aarch64-static; do
		if command -v "$q" >/dev/null 2>&1; then
			QEMU=$q
			break
		fi
	done
fi
if ! command -v "$CC" >/dev/null 2>&1 || [ -z "$QEMU" ] ||
   ! command -v "$QEMU" >/dev/null 2>&1; then
	skip "install gcc-aarch64-linux-gnu qemu-user (make deps)"
fi

mkdir -p "$OUT/obj" || exit 1

# A compiler without an arm64 libc builds nothing static: say so once.
probe=$OUT/obj/probe
if ! echo 'int main(void) { return 0; }' |
     "$CC" -static -x c - -o "$probe" 2>/dev/null; then
	skip "install libc6-dev-arm64-cross (make deps)"
fi

# The library: the context switch and the whole runtime, what is there.
srcs=(arch/aarch64/ctx.c arch/aarch64/switch.S)
for f in user/runtime/*.c; do
	[ -e "$f" ] && srcs+=("$f")
done

objs=()
for src in "${srcs[@]}"; do
	obj=$OUT/obj/${src//\//_}.o
	run CC "$src" "$CC" "${cflags[@]}" -c "$src" -o "$obj" || exit 1
	objs+=("$obj")
done
lib=$OUT/libkgo.a
rm -f "$lib"
run AR "$lib" "$AR" rcs "$lib" "${objs[@]}" || exit 1

# The tests: paths from where we were started, from the top of the
# tree, or names in selftests/.
[ $# -gt 0 ] || set -- ctx_test.c
tests=()
for t in "$@"; do
	case $t in
	/*)	abs=$t ;;
	*)	abs=$here/$t ;;
	esac
	if [ -f "$abs" ]; then
		tests+=("$abs")
	elif [ -f "$t" ]; then
		tests+=("$t")
	elif [ -f "selftests/$t" ]; then
		tests+=("selftests/$t")
	else
		echo "check-aarch64: no test $t" >&2
		exit 1
	fi
done

passed=0
failed=0
skipped=0
for src in "${tests[@]}"; do
	name=$(basename "$src" .c)
	bin=$OUT/$name
	if ! run CCLD "$bin" "$CC" "${cflags[@]}" "$src" "$lib" \
		 "${ldlibs[@]}" -o "$bin"; then
		failed=$((failed + 1))
		continue
	fi
	echo "# aarch64: $name under $QEMU"
	timeout "$TIMEOUT" "$QEMU" "$bin"
	rc=$?
	case $rc in
	0)	passed=$((passed + 1)) ;;
	4)	skipped=$((skipped + 1)) ;;
	124)	echo "# aarch64: $name timed out after ${TIMEOUT}s"
		failed=$((failed + 1)) ;;
	*)	echo "# aarch64: $name exited $rc"
		failed=$((failed + 1)) ;;
	esac
done

echo "aarch64: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
