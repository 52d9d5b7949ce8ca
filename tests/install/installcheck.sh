#!/bin/sh
# SPDX-License-Identifier: MIT
# make installcheck: a program and a module built with pkg-config against
# the installed library, headers and hotmod.pc work together, and the
# manual pages are installed.
set -eu
srcdir=$1 libdir=$2 mandir=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
CC=${CC:-cc}
mkdir -m 755 "$work/root"
# shellcheck disable=SC2046
$CC -shared -fPIC $(pkg-config --cflags hotmod) -o "$work/root/hello.so" \
	"$srcdir/tests/install/hello.c" $(pkg-config --libs hotmod)
chmod 644 "$work/root/hello.so"
# shellcheck disable=SC2046
$CC $(pkg-config --cflags hotmod) -o "$work/embed" "$srcdir/tests/install/embed.c" \
	$(pkg-config --libs hotmod) -Wl,-rpath,"$libdir"
out=$("$work/embed" "$work/root")
[ "$out" = "Hello from hotmod!" ] || { echo "installcheck: got '$out'"; exit 1; }
test -f "$mandir/man3/hotmod.3"
# "man hm_put" finds the page that documents it
grep -q '^\.so man3/hm_get\.3$' "$mandir/man3/hm_put.3"
echo "installcheck: pkg-config build of an embedder and a module works"
