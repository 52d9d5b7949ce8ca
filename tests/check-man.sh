#!/bin/sh
# SPDX-License-Identifier: MIT
# Every manual page is clean under mandoc -Tlint, and the documents name
# only tests that exist.
set -eu
out=$("${MANDOC:-mandoc}" -Tlint -W warning "${top_srcdir:-.}"/man/*.[1-8] 2>&1 || true)
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	exit 1
fi
echo "man: lint clean"

# Every test docs/SECURITY.md names as the proof of a promise exists.
top=${top_srcdir:-.}
missing=0
for t in $(grep -o 'test_[a-z0-9_]*' "$top/docs/SECURITY.md" | sort -u); do
	if ! grep -q "START_TEST($t)" "$top"/tests/*.c; then
		echo "docs/SECURITY.md names $t, which no test defines"
		missing=1
	fi
done
[ "$missing" = 0 ] || exit 1
echo "SECURITY.md: every test it names exists"

# Every source file says its licence (LICENSE) in its first lines.
# The source folders only: build folders, autom4te.cache and the like hold
# files of these names that are no source of ours.
nolicence=$(cd "$top" && for d in loader server tools tests bench sample_handlers man; do
	[ -d "$d" ] || continue
	find "$d" -path tests/fuzz/corpus -prune -o \
		\( -name '*.[ch]' -o -name '*.cpp' -o -name '*.sh' -o -name '*.[138]' \) \
		-type f -print
done | while read -r f; do head -3 "$f" | grep -q 'SPDX-License-Identifier: MIT' || echo "$f"; done)
if [ -n "$nolicence" ]; then
	printf 'no SPDX-License-Identifier line:\n%s\n' "$nolicence"
	exit 1
fi
echo "sources: every one has its SPDX line"

# Each folder's map (docs/DESIGN.md: loader/, docs/SERVER.md: server/)
# names every source file of the folder, and only those.
check_map() { # DOC DIR
	mapped=$(sed -n '/^## Map/,/^##* [^M]/p' "$top/$1" | grep '^| `' |
		cut -d'|' -f2 | grep -o '`[^`]*`' | tr -d '`' | sort)
	present=$(cd "$top/$2" && ls *.c *.h *.map 2>/dev/null | sort)
	if [ "$mapped" != "$present" ]; then
		echo "$1's map and $2/ differ:"
		for f in $mapped; do echo "$present" | grep -qx "$f" || echo "  in the map, not in $2/: $f"; done
		for f in $present; do echo "$mapped" | grep -qx "$f" || echo "  in $2/, not in the map: $f"; done
		exit 1
	fi
	echo "$1: its map names every file of $2/"
}
check_map docs/DESIGN.md loader
check_map docs/SERVER.md server

# The documents name only internal functions and types that exist.
gone=$(grep -oh 'hm__[a-z0-9_]*' "$top"/docs/*.md | sort -u | while read -r s; do
	grep -qw "$s" "$top"/loader/*.[ch] || echo "$s"
done)
if [ -n "$gone" ]; then
	printf 'docs/ name what loader/ no longer has:\n%s\n' "$gone"
	exit 1
fi
echo "docs: every hm__ name they use exists"
