#!/bin/sh
# SPDX-License-Identifier: MIT
# hotmod(1): "check" accepts every built sample module and refuses each
# broken fixture for its own reason, surviving the one whose init crashes;
# "status" shows what a running hotmod-httpd has loaded.
set -u

builddir=${abs_top_builddir:-$(pwd)}
hotmod="$builddir/tools/hotmod"
httpd="$builddir/server/hotmod-httpd"
fixtures="$builddir/tests/fixtures/.libs"
samples="$builddir/sample_handlers/.libs"
app="$builddir/sample_handlers/app/.libs"
passed=0
failed=0
server_pid=

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-tool.XXXXXX") || exit 1
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# hotmod check makes its private roots here: the test looks that they go.
mkdir "$tmp/roots"
HOTMOD_NOTES_DB="$tmp/notes.db" # opened by app/_global.so's init
export HOTMOD_NOTES_DB

pass() {
	passed=$((passed + 1))
	echo "ok: $1"
}

# fail WHAT [OUTPUT-FILE]
fail() {
	failed=$((failed + 1))
	echo "FAIL: $1"
	if [ $# -gt 1 ]; then
		sed 's/^/    | /' "$2"
	fi
}

# expect WHAT RC TEXT COMMAND...: COMMAND exits RC and prints TEXT.
expect() {
	what=$1 want_rc=$2 want_text=$3
	shift 3
	TMPDIR="$tmp/roots" "$@" >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" -ne "$want_rc" ]; then
		fail "$what: exit status $rc, expected $want_rc" "$tmp/out"
	elif ! grep -F -q -- "$want_text" "$tmp/out"; then
		fail "$what: no \"$want_text\" in the output" "$tmp/out"
	else
		pass "$what"
	fi
}

# Poll: sleep(1) takes fractions on the systems we run on, not in POSIX.
nap() {
	sleep 0.1 2>/dev/null || sleep 1
}

# ---- check: the samples pass ---------------------------------------------------

nsamples=0
for so in "$samples"/*.so; do
	[ -f "$so" ] || continue
	nsamples=$((nsamples + 1))
	expect "accepts ${so##*/}" 0 "$so: ok: module" "$hotmod" check "$so"
	expect "accepts ${so##*/} for hotmod-httpd's kind, and prints it" 0 \
		"$so: ok: module, kind hotmod-http/1, hooks: " \
		"$hotmod" check -K --kind hotmod-http/1 "$so"
done
if [ "$nsamples" -eq 0 ]; then
	fail "no sample module in $samples: was make run?"
fi
if [ -f "$app/_global.so" ]; then
	expect "accepts app/_global.so" 0 "$app/_global.so: ok: global module" \
		"$hotmod" check "$app/_global.so"
	for so in "$app"/*.so; do
		case $so in */_global.so) continue ;; esac
		expect "accepts app/${so##*/} under app/_global.so" 0 "$so: ok: module" \
			"$hotmod" check -g "$app/_global.so" "$so"
	done
else
	echo "skip: the app samples (built only with SQLite)"
fi
hello="$samples/hello.so"

# ---- check: broken modules fail, each for its reason ----------------------------

printf 'not a shared object\n' >"$tmp/text.so"
expect "refuses a text file" 1 "$tmp/text.so: ENOTELF: " "$hotmod" check "$tmp/text.so"

if [ -f "$hello" ]; then
	half=$(($(wc -c <"$hello") / 2))
	dd if="$hello" of="$tmp/truncated.so" bs="$half" count=1 2>/dev/null
	expect "refuses a truncated copy" 1 "$tmp/truncated.so: ENOTELF: truncated.so: truncated" \
		"$hotmod" check "$tmp/truncated.so"
fi

expect "refuses a module without descriptor" 1 "nodesc.so: ENODESC: " \
	"$hotmod" check "$fixtures/nodesc.so"
expect "refuses a module for another ABI" 1 "badabi.so: EABI: " \
	"$hotmod" check "$fixtures/badabi.so"
expect "refuses a module whose init fails" 1 "initfail.so: EINIT: " \
	"$hotmod" check "$fixtures/initfail.so"
expect "refuses a module with an undefined symbol" 1 "unresolved.so: EDLOPEN: " \
	"$hotmod" check "$fixtures/unresolved.so"
expect "refuses a missing file" 1 "$tmp/missing.so: cannot open" \
	"$hotmod" check "$tmp/missing.so"

# The child dies by SIGSEGV and the tool reports it: exit status 1, not a
# signal.  A sanitizer build's child reports the signal and exits instead.
TMPDIR="$tmp/roots" "$hotmod" check "$fixtures/initcrash.so" >"$tmp/out" 2>&1
rc=$?
if [ "$rc" -ne 1 ]; then
	fail "survives a crash in init: exit status $rc, expected 1" "$tmp/out"
elif grep -F -q "initcrash.so: crashed: SIGSEGV during load, init or fini" "$tmp/out"; then
	pass "survives a crash in init and names SIGSEGV"
elif grep -q "Sanitizer" "$tmp/out" &&
	grep -E -q "initcrash.so: crashed: (exited with status|SIGABRT)" "$tmp/out"; then
	# A sanitizer catches the SEGV first, then exits or (abort_on_error) aborts.
	pass "survives a crash in init (sanitizer build: its report, then the crash)"
else
	fail "survives a crash in init: no crash report" "$tmp/out"
fi

# ---- check: request kinds -----------------------------------------------------------

# hotmod_module(3)'s FILE * example (tests/fixtures/kind.c): fine for its own
# kind or any, refused for hotmod-httpd's with both kinds named.
stdio="$fixtures/kind_stdio.so"
expect "prints the kind a module declares" 0 \
	"$stdio: ok: module, kind example-stdio/1, hooks: handle" "$hotmod" check "$stdio"
expect "accepts a module of the kind asked for" 0 "kind_stdio.so: ok: module" \
	"$hotmod" check -k example-stdio/1 "$stdio"
expect "refuses a module built for another kind" 1 \
	"$stdio: EKIND: kind_stdio.so: built for request kind 'example-stdio/1', this loader serves 'hotmod-http/1'" \
	"$hotmod" check --kind hotmod-http/1 "$stdio"
expect "refuses a module under a global module built for another kind" 1 \
	"http_v2.so: EGLOBAL: http_v2.so: global module: _global.so: built for request kind 'example-stdio/1'" \
	"$hotmod" check --kind=hotmod-http/1 -g "$stdio" "$fixtures/http_v2.so"
expect "accepts a module that declares no kind, and says so" 0 \
	"http_v1.so: ok: module, kind none, hooks: handle" \
	"$hotmod" check -k hotmod-http/1 "$fixtures/http_v1.so"
expect "refuses it with -K" 1 "http_v1.so: EKIND: http_v1.so: declares no request kind" \
	"$hotmod" check -K -k hotmod-http/1 "$fixtures/http_v1.so"
expect "refuses a corrupt kind whatever kind is asked for" 1 \
	"kind_outside.so: ENODESC: kind_outside.so: its request_kind points outside" \
	"$hotmod" check "$fixtures/kind_outside.so"
expect "refuses a kind that breaks the rule" 1 "EINVAL: hm_open: options.request_kind" \
	"$hotmod" check -k "two words" "$stdio"
expect "--kind needs an argument" 2 "check: --kind needs an argument" "$hotmod" check --kind

# ---- check: options, several files, warnings --------------------------------------

if [ -f "$hello" ]; then
	TMPDIR="$tmp/roots" "$hotmod" check -q "$hello" >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && [ ! -s "$tmp/out" ]; then
		pass "-q prints nothing for a good module"
	else
		fail "-q prints nothing for a good module: exit status $rc" "$tmp/out"
	fi
	expect "one bad file among good ones fails the run" 1 "nodesc.so: ENODESC" \
		"$hotmod" check "$hello" "$fixtures/nodesc.so" "$hello"
	expect "and still checks the good ones" 1 "$hello: ok" \
		"$hotmod" check "$hello" "$fixtures/nodesc.so"
	expect "a module under a global module that fails fails" 1 "hello.so: EGLOBAL: " \
		"$hotmod" check -g "$fixtures/initfail.so" "$hello"
	cp "$hello" "$tmp/shared.so" && chmod 664 "$tmp/shared.so"
	expect "warns of a group-writable file, and passes it" 0 \
		"shared.so: warning: group-writable (mode 0664)" "$hotmod" check "$tmp/shared.so"
	cp "$hello" "$tmp/no name.so"
	expect "checks a file whose name no request could ask for" 0 "no name.so: ok" \
		"$hotmod" check "$tmp/no name.so"

	# A name with a newline and ESC is printed escaped: one line, no ESC.
	bad=$(printf 'x\n<forged>\033]0;title\007.so')
	cp "$hello" "$tmp/$bad"
	TMPDIR="$tmp/roots" "$hotmod" check "$tmp/$bad" >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/out")" -eq 1 ] &&
		grep -F -q 'x\n<forged>\x1b]0;title\x07.so: ok' "$tmp/out" &&
		! grep -q "$(printf '\033')" "$tmp/out"; then
		pass "prints a file name with control bytes escaped"
	else
		fail "prints a file name with control bytes escaped: exit status $rc" "$tmp/out"
	fi

	# Six directories of 250 bytes: the file's path, and the private root.
	seg=$(printf '%0250d' 0 | tr 0 d)
	deep=$tmp/deep/$seg/$seg/$seg/$seg/$seg/$seg
	mkdir -p "$deep" && cp "$hello" "$deep/x.so"
	expect "checks a module under six directories of 250 bytes" 0 "/x.so: ok: module" \
		"$hotmod" check "$deep/x.so"
	TMPDIR="$deep" "$hotmod" check "$deep/x.so" >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q '/x\.so: ok: module' "$tmp/out" &&
		[ "$(ls -A "$deep" | wc -l)" -eq 1 ]; then
		pass "checks a module with its private root six directories of 250 bytes deep"
	else
		fail "checks a module with its private root that deep: exit status $rc" "$tmp/out"
	fi
fi
expect "no file is a usage error" 2 "no FILE.so given" "$hotmod" check
expect "an unknown command is a usage error" 2 "unknown command" "$hotmod" frobnicate
expect "--version names the library" 0 "libhotmod " "$hotmod" --version
expect "--help shows the usage" 0 "usage: hotmod check" "$hotmod" --help
expect "check --help shows the usage" 0 "usage: hotmod check" "$hotmod" check --help
expect "status --help shows the usage" 0 "usage: hotmod check" "$hotmod" status --help
expect "an unknown long option is named as written" 2 "unknown option --bogus" \
	"$hotmod" check --bogus x.so
expect "an unknown short option is named" 2 "unknown option -z" "$hotmod" check -qz x.so

if [ -z "$(ls -A "$tmp/roots")" ]; then
	pass "every private root was removed, the crashed one too"
else
	fail "private roots left behind: $(ls "$tmp/roots")"
fi

# ---- status ----------------------------------------------------------------------

expect "status of a server that is not there fails" 1 "cannot reach" \
	"$hotmod" status http://127.0.0.1:1
expect "status refuses https" 2 "only http://" "$hotmod" status https://127.0.0.1/

if [ ! -x "$httpd" ] || [ ! -f "$hello" ]; then
	echo "skip: status against a server (hotmod-httpd not built)"
else
	root="$tmp/www"
	mkdir "$root" && chmod 755 "$root"
	cp "$hello" "$root/hello.so" && chmod 644 "$root/hello.so"
	cp "$fixtures/initfail.so" "$root/broken.so" && chmod 644 "$root/broken.so"
	# Six directories of 250 bytes with a module inside: hotmod-httpd
	# crashed at preload on it (issue 10); now it skips the fifth one.
	seg=$(printf '%0250d' 0 | tr 0 d)
	mkdir -p "$root/$seg/$seg/$seg/$seg/$seg/$seg"
	cp "$hello" "$root/$seg/$seg/$seg/$seg/$seg/$seg/x.so"
	"$httpd" --root "$root" --listen 127.0.0.1:0 --quiet --workers 1 --allow-root \
		2>"$tmp/httpd.log" &
	server_pid=$!
	port=
	tries=0
	while [ "$tries" -lt 300 ] && kill -0 "$server_pid" 2>/dev/null; do
		port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$tmp/httpd.log" | head -n 1)
		[ -n "$port" ] && break
		nap
		tries=$((tries + 1))
	done
	if [ -z "$port" ]; then
		fail "hotmod-httpd said no port" "$tmp/httpd.log"
	else
		url="http://127.0.0.1:$port"
		expect "status shows the summary" 0 "watch " "$hotmod" status "$url"
		if grep -q '^PATH  *CURRENT  *VERSIONS  *LOADS  *FAILURES  *PINNED  *LAST ERROR$' \
			"$tmp/out"; then
			pass "status prints the table's header"
		else
			fail "status prints the table's header" "$tmp/out"
		fi
		if grep -q '^hello\.so  *v1  *v1(0)  *1  *0  *0  *-$' "$tmp/out"; then
			pass "status shows hello.so at version 1"
		else
			fail "status shows hello.so at version 1" "$tmp/out"
		fi
		if grep -q '^broken\.so  *-  *-  *0  *[1-9][0-9]*  *0  *EINIT: broken\.so' "$tmp/out"
		then
			pass "status shows broken.so's failure"
		else
			fail "status shows broken.so's failure" "$tmp/out"
		fi
		expect "status takes the full path" 0 "hello.so" \
			"$hotmod" status "$url/_hotmod/status"
		expect "status refuses what is not the status" 1 "not 200 OK" \
			"$hotmod" status "$url/no-such-module"
		expect "status refuses a document that is not JSON" 1 "not valid JSON" \
			"$hotmod" status "$url/hello"
		if grep -q 'skipped directory (a request cannot name it: a path is at most 1024' \
			"$tmp/httpd.log"; then
			pass "hotmod-httpd skips six directories of 250 bytes, and says so"
		else
			fail "hotmod-httpd skips six directories of 250 bytes, and says so" \
				"$tmp/httpd.log"
		fi

		# A directory whose name forges a log line, made while it runs,
		# with a global module that fails inside: skipped, said escaped.
		bad=$(printf 'x\n<forged>\033]0;title\007')
		mkdir "$root/$bad" && chmod 755 "$root/$bad"
		cp "$fixtures/initfail.so" "$root/$bad/_global.so" &&
			chmod 644 "$root/$bad/_global.so"
		tries=0
		while [ "$tries" -lt 300 ] &&
			! grep -F -q '"x\n<forged>\x1b]0;title\x07/"' "$tmp/httpd.log"; do
			nap
			tries=$((tries + 1))
		done
		if grep -F -q '"x\n<forged>\x1b]0;title\x07/"' "$tmp/httpd.log" &&
			! grep -q '^<forged>' "$tmp/httpd.log" &&
			! grep -q "$(printf '\033')" "$tmp/httpd.log"; then
			pass "a directory name forges no line in hotmod-httpd's log"
		else
			fail "a directory name forges no line in hotmod-httpd's log" "$tmp/httpd.log"
		fi
	fi
	kill -TERM "$server_pid"
	wait "$server_pid"
	rc=$?
	server_pid=
	if [ "$rc" -eq 0 ]; then
		pass "hotmod-httpd stops with status 0 on SIGTERM"
	else
		fail "hotmod-httpd stops with status 0 on SIGTERM: status $rc" "$tmp/httpd.log"
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
