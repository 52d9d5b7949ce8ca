#!/bin/sh
# SPDX-License-Identifier: MIT
# make installcheck: a program and a module built with pkg-config against
# the installed library, headers and hotmod.pc work together, the installed
# programs find the installed library, and the manual pages are installed.
set -eu
srcdir=$1 libdir=$2 mandir=$3 bindir=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
unset LD_LIBRARY_PATH
# hotmod.pc names the directories it was installed in
got=$(pkg-config --variable=libdir hotmod)
[ "$got" = "$libdir" ] || { echo "installcheck: hotmod.pc says libdir=$got, not $libdir"; exit 1; }
# the installed tool runs against the library installed beside it
ver=$("$bindir/hotmod" --version) || { echo "installcheck: $bindir/hotmod does not run"; exit 1; }
case $ver in *"(libhotmod "*) ;; *) echo "installcheck: hotmod --version: $ver"; exit 1 ;; esac
lib=$(ldd "$bindir/hotmod" | awk '$1 ~ /^libhotmod\./ { print $3 }')
[ -n "$lib" ] && [ "$(cd "$(dirname "$lib")" && pwd -P)" = "$(cd "$libdir" && pwd -P)" ] ||
	{ echo "installcheck: $bindir/hotmod uses another libhotmod:"; ldd "$bindir/hotmod"; exit 1; }
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
