#!/bin/sh
# Every manual page is clean under mandoc -Tlint.
set -eu
out=$("${MANDOC:-mandoc}" -Tlint -W warning "${top_srcdir:-.}"/man/*.[1-8] 2>&1 || true)
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	exit 1
fi
echo "man: lint clean"
