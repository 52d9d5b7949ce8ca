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

# docs/DESIGN.md's map names every file of loader/, and only those.
mapped=$(sed -n '/^## Map/,/^### /p' "$top/docs/DESIGN.md" | grep '^| `' |
	cut -d'|' -f2 | grep -o '`[^`]*`' | tr -d '`' | sort)
present=$(cd "$top/loader" && ls *.c *.h *.map | sort)
if [ "$mapped" != "$present" ]; then
	echo "docs/DESIGN.md's map and loader/ differ:"
	for f in $mapped; do echo "$present" | grep -qx "$f" || echo "  in the map, not in loader/: $f"; done
	for f in $present; do echo "$mapped" | grep -qx "$f" || echo "  in loader/, not in the map: $f"; done
	exit 1
fi
echo "DESIGN.md: its map names every file of loader/"

# The documents name only internal functions and types that exist.
gone=$(grep -oh 'hm__[a-z0-9_]*' "$top"/docs/*.md | sort -u | while read -r s; do
	grep -qw "$s" "$top"/loader/*.[ch] || echo "$s"
done)
if [ -n "$gone" ]; then
	printf 'docs/ name what loader/ no longer has:\n%s\n' "$gone"
	exit 1
fi
echo "docs: every hm__ name they use exists"
