#!/bin/sh
# SPDX-License-Identifier: MIT
# The library exports exactly the public API in tests/exports.txt, no more
# (an internal leaking out) and no less (a public function lost), each
# symbol with its version.
set -eu
lib="${top_builddir:-.}/loader/.libs/libhotmod.so"
list="${top_srcdir:-.}/tests/exports.txt"
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}')
# Every one in the version node of loader/libhotmod.map.
unversioned=$(printf '%s\n' "$syms" | grep -v '@@HOTMOD_0$' || true)
if [ -n "$unversioned" ]; then
	printf 'exported without the version HOTMOD_0:\n%s\n' "$unversioned"
	exit 1
fi
actual=$(printf '%s\n' "$syms" | sed 's/@@HOTMOD_0$//' | sort)
expected=$(sort "$list")
# A fault-injection build (tests only) exports its three controls too.
if [ "${HM_FAULT_INJECTION:-}" = yes ]; then
	expected=$(printf '%s\nhm__fault_arm\nhm__fault_arm_from\nhm__fault_fired\n' "$expected" | sort)
fi
if [ "$actual" != "$expected" ]; then
	echo "exported symbols differ from $list (- expected, + actual):"
	printf '%s\n' "$expected" > exports.expected.tmp
	printf '%s\n' "$actual" > exports.actual.tmp
	diff -u exports.expected.tmp exports.actual.tmp || true
	rm -f exports.expected.tmp exports.actual.tmp
	exit 1
fi
echo "exports: $(printf '%s\n' "$actual" | wc -l) symbols, as listed, version HOTMOD_0"
