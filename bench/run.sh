#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh - the benchmarks of hotmod: "make bench" (full) and "make bench-quick".
#
#   full   about 5 minutes on 2 cores: the figures go to bench/RESULTS.md in
#          the source tree, the plot to bench/throughput.png.
#   quick  the same programs with far fewer iterations (under a minute),
#          for CI: the tables on stdout only; RESULTS.md is not touched.
#
# Exits 1 when a benchmark program fails (a crash, an error, a server that
# does not answer /hello); never because a figure missed its goal: speed is
# reported, never asserted.  Run by make, which sets BENCH_SRCDIR,
# BENCH_BUILDDIR and TOP_BUILDDIR.
set -euo pipefail

mode=${1:-full}
case $mode in full | quick) ;; *) echo "usage: run.sh full|quick" >&2; exit 2 ;; esac
: "${BENCH_SRCDIR:?run by make bench}" "${BENCH_BUILDDIR:?}" "${TOP_BUILDDIR:?}"

hmbench=$BENCH_BUILDDIR/hmbench
moddir=$BENCH_BUILDDIR/modules/.libs
np=$(nproc)
threads="1,2,$np,$((2 * np))"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hmbench-run-XXXXXX")
# hmbench's module trees go in there too: removed whatever happens.
export TMPDIR=$tmp
report=$tmp/report.md
failed=0
server_pid=

if [ "$mode" = full ]; then
	runs=7 dur=150 warm=30 cg_count=20000 reloads=300 cycles=10000
	stall_runs=5 stall_dur=2000 http_dur=10 http_pairs=4 http_warm=1
	cg_impls="direct direct+atomic hotmod hotmod-getput hotmod-stat codelock seed rwlock"
else
	runs=1 dur=20 warm=5 cg_count=2000 reloads=20 cycles=300
	stall_runs=1 stall_dur=300 http_dur=2 http_pairs=1 http_warm=0
	cg_impls="direct hotmod"
fi

cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "bench: $*" >&2; }

# step NAME COMMAND...: run one benchmark, its table into the report.
step() {
	local name=$1 t0=$SECONDS
	shift
	say "$name ..."
	if "$@" >"$tmp/step.out" 2>"$tmp/step.err"; then
		cat "$tmp/step.out" >>"$report"
		cat "$tmp/step.out"
		[ ! -s "$tmp/step.err" ] || sed 's/^/  (stderr) /' "$tmp/step.err" >&2
		say "$name: $((SECONDS - t0)) s"
	else
		local rc=$?
		cat "$tmp/step.out"
		cat "$tmp/step.err" >&2
		say "$name FAILED (exit $rc)"
		failed=1
	fi
}

# have TOOL: is it installed?  Full runs need it; quick runs skip without it.
have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$mode" = full ]; then
		say "$1 is not installed (Debian: apt-get install $2)"
		failed=1
	else
		say "$1 is not installed: skipping what needs it"
		printf '\n(%s is not installed: skipped.)\n' "$1" >>"$report"
	fi
	return 1
}

# ---- the header ---------------------------------------------------------------
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
configured=$(sed -n 's/^  \$ //p' "$TOP_BUILDDIR/config.log" | head -1)
{
	echo "# hotmod benchmarks"
	echo
	echo "Produced by \`make bench\` (bench/run.sh $mode) on $started."
	echo
	echo "- Machine: ${cpu:-unknown CPU}, $np CPUs online, $(uname -srm);"
	echo "  $(ldd --version 2>&1 | head -1); $(gcc --version 2>/dev/null | head -1)."
	echo "- Build: \`${configured:-configure}\`, default CFLAGS (-O2 -g), out of tree."
	echo "- Command: \`mkdir -p build-bench && cd build-bench && ../configure -q --enable-werror && make -j2 && make bench\`"
	echo "- The machine is shared and noisy: the figures that matter are ratios to a"
	echo "  baseline measured in the same run, interleaved with it; throughputs are"
	echo "  medians of $runs runs of $dur ms (after $warm ms of warm-up)."
	echo "  Goals are reported, never asserted."
} >"$report.head"

# ---- 1, 2: throughput ------------------------------------------------------------
common=(--moddir "$moddir" --runs "$runs" --duration-ms "$dur" --warmup-ms "$warm"
	--threads "$threads")
step "throughput, empty handler, 1 module" \
	"$hmbench" throughput "${common[@]}" --mods 1 --dat "$tmp/e1.dat"
step "throughput, empty handler, 64 modules" \
	"$hmbench" throughput "${common[@]}" --mods 64 --dat "$tmp/e64.dat"
step "throughput, 1 us handler, 1 module" \
	"$hmbench" throughput "${common[@]}" --mods 1 --work --dat "$tmp/w1.dat"
step "throughput, 1 us handler, 64 modules" \
	"$hmbench" throughput "${common[@]}" --mods 64 --work --dat "$tmp/w64.dat"

# ---- 1: instructions per request (callgrind) ----------------------------------------
cg_table() {
	echo
	echo "### Instructions per request (valgrind --tool=callgrind, empty handler, 1 module)"
	echo
	echo "User-space instructions executed in the request loop, divided by the"
	echo "$cg_count requests counted (after 1000 not counted): loop and handler call"
	echo "included in every row alike; system calls (the seed's stat) count only"
	echo "their user-space side.  This figure does not drift with machine noise."
	echo "(valgrind 3.19 lacks openat2: bench/vg_openat2.c stands in for it while"
	echo "modules load, before the counted loop.)"
	echo
	echo "| implementation | instructions/request |"
	echo "|---|---:|"
	local impl out total
	for impl in $cg_impls; do
		out=$tmp/cg.$impl.out
		LD_PRELOAD=$BENCH_BUILDDIR/.libs/vg_openat2.so \
			valgrind --tool=callgrind --toggle-collect='bm_cg_loop*' \
			--callgrind-out-file="$out" "$hmbench" callgrind --moddir "$moddir" \
			--impl "$impl" --count "$cg_count" >/dev/null 2>"$tmp/cg.err" || {
			cat "$tmp/cg.err" >&2
			return 1
		}
		total=$(awk '/^(summary|totals):/ { print $2; exit }' "$out")
		case $total in '' | 0) cat "$tmp/cg.err" >&2; echo "no count in $out" >&2; return 1 ;; esac
		awk -v t="$total" -v n="$cg_count" -v i="$impl" \
			'BEGIN { printf "| %s | %.1f |\n", i, t / n }'
	done
	echo
	echo "Where hotmod's go (callgrind_annotate, self cost per request, by function;"
	echo "hm_dispatch has its whole path inline: its lines are counted by source file):"
	echo
	echo "| function | object | instructions/request |"
	echo "|---|---|---:|"
	callgrind_annotate --inclusive=no "$tmp/cg.hotmod.out" 2>/dev/null |
		awk -v n="$cg_count" '
		/file:function/ { on = 1; next }
		on && /^-+$/ { if (seen) on = 0; next }
		on && /^ *[0-9,]+ / {
			c = $1; gsub(",", "", c)
			f = ""; obj = ""
			for (i = 2; i <= NF; i++) if ($i ~ /:/ && $i !~ /^\(/) { f = $i; break }
			if ($NF ~ /^\[/) { obj = $NF; sub(/.*\//, "", obj); sub(/\]$/, "", obj) }
			file = f; sub(/:[^:]*$/, "", file); sub(/.*\//, "", file)
			sub(/.*:/, "", f)
			printf "| %s (%s) | %s | %.1f |\n", f, file, obj, c / n; seen = 1
		}'
}
if have valgrind valgrind; then
	step "instructions per request (callgrind)" cg_table
fi

# ---- 3: reload latency --------------------------------------------------------------
step "reload latency" "$hmbench" reload --moddir "$moddir" --count "$reloads" \
	$([ "$mode" = quick ] && echo --quick)

# ---- 4: stall ---------------------------------------------------------------------------
step "stall under reloads" "$hmbench" stall --moddir "$moddir" --runs "$stall_runs" \
	--duration-ms "$stall_dur" --warmup-ms 100 --threads "$np"

# ---- 5: HTTP ------------------------------------------------------------------------------
# start_server BINARY: start it on a free loopback port; sets server_pid, port.
# Each server logs to a file of its own: the shell opens a background job's
# redirection only in the child, so a reused file could still show the last
# server's port.
nservers=0
start_server() {
	local log=$tmp/server.$((++nservers)).err
	: >"$log"
	# One process (--workers 0): the loader's cost against the same server
	# with the handler linked in; --allow-root: the benchmark may run as root.
	"$1" --root "$tmp/www" --listen 127.0.0.1:0 --quiet --threads "$np" --workers 0 \
		--allow-root 2>"$log" &
	server_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(sed -n 's/.*, port \([0-9][0-9]*\),.*/\1/p' "$log" | head -1)
		[ -n "$port" ] && return 0
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$log" >&2
	echo "$1 did not start" >&2
	return 1
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || { echo "server exited with $?" >&2; server_pid=; return 1; }
	server_pid=
}

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk_rps SECONDS [PATH]: requests/s on PATH (/hello); fails on errors or
# non-2xx answers.  Leaves the number of requests in $tmp/wrk.out.
wrk_rps() {
	wrk -t "$np" -c $((8 * np)) -d "${1}s" "http://127.0.0.1:$port${2:-/hello}" >"$tmp/wrk.out" 2>&1 || {
		cat "$tmp/wrk.out" >&2
		return 1
	}
	if grep -q -E 'Non-2xx|Socket errors' "$tmp/wrk.out"; then
		cat "$tmp/wrk.out" >&2
		echo "wrk: errors or non-2xx answers" >&2
		return 1
	fi
	awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out"
}

# measure SECONDS PATH: "requests/s server-CPU-us/request" of wrk on PATH.
measure() {
	local c0 c1 nreq rps
	c0=$(cpu_ticks "$server_pid")
	rps=$(wrk_rps "$1" "$2") || return 1
	c1=$(cpu_ticks "$server_pid")
	nreq=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$tmp/wrk.out")
	awk -v r="$rps" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$nreq" \
		'BEGIN { printf "%s %.2f\n", r, c / hz / n * 1e6 }'
}

median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B, 4 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

http_bench() {
	local hot=$TOP_BUILDDIR/server/hotmod-httpd static=$BENCH_BUILDDIR/hotmod-httpd-static
	local pair which rps cpu body
	local -a hm=() st=() ratios=() hmc=() stc=() cratios=()
	mkdir -p "$tmp/www"
	install -m 644 "$TOP_BUILDDIR/sample_handlers/.libs/hello.so" "$tmp/www/hello.so"
	# The same module under another name, for the one-process comparison.
	install -m 644 "$TOP_BUILDDIR/sample_handlers/.libs/hello.so" "$tmp/www/hello2.so"
	for pair in $(seq "$http_pairs"); do
		# Alternate, and alternate which goes first: hotmod, static, static, hotmod...
		for which in $([ $((pair % 2)) = 1 ] && echo "hot static" || echo "static hot"); do
			if [ "$which" = hot ]; then
				start_server "$hot" || return 1
			else
				start_server "$static" || return 1
			fi
			body=$(exec 3<>"/dev/tcp/127.0.0.1/$port" &&
				printf 'GET /hello HTTP/1.0\r\n\r\n' >&3 && cat <&3) || true
			case $body in *"Hello from hotmod!"*) ;; *)
				echo "GET /hello on $which did not answer Hello: $body" >&2
				return 1 ;;
			esac
			[ "$http_warm" = 0 ] || wrk_rps "$http_warm" >/dev/null || return 1
			read -r rps cpu < <(measure "$http_dur" /hello) && [ -n "$cpu" ] || return 1
			stop_server || return 1
			if [ "$which" = hot ]; then
				hm+=("$rps") hmc+=("$cpu")
			else
				st+=("$rps") stc+=("$cpu")
			fi
		done
		ratios+=("$(ratio "${hm[-1]}" "${st[-1]}")")
		cratios+=("$(ratio "${hmc[-1]}" "${stc[-1]}")")
	done
	local mh ms mr mhc msc mcr
	mh=$(median "${hm[@]}")
	ms=$(median "${st[@]}")
	mr=$(median "${ratios[@]}")
	mhc=$(median "${hmc[@]}")
	msc=$(median "${stc[@]}")
	mcr=$(median "${cratios[@]}")
	echo
	echo "### HTTP: wrk on /hello, hotmod-httpd against the same server with /hello linked in"
	echo
	echo "Server: --threads $np; wrk -t $np -c $((8 * np)) -d ${http_dur}s; $http_pairs pairs,"
	echo "alternated (the order flips every pair), loopback."
	echo
	echo "| server | requests/s per run | median | server CPU us/request per run | median |"
	echo "|---|---|---:|---|---:|"
	echo "| hotmod-httpd (/hello from hello.so) | ${hm[*]} | $mh | ${hmc[*]} | $mhc |"
	echo "| static /hello (-DHOTMOD_HTTPD_STATIC_HELLO) | ${st[*]} | $ms | ${stc[*]} | $msc |"
	echo
	# Pairs that disagree by more than 20 % measured the machine, not hotmod.
	awk -v r="$mr" -v all="${ratios[*]}" 'BEGIN {
		n = split(all, v, " "); lo = hi = v[1]
		for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
		note = hi / lo > 1.2 ? sprintf(" (pairs from %.2f to %.2f: the machine'"'"'s other work moved it; inconclusive)", lo, hi) : ""
		printf "- Goal, hotmod / static >= 0.95: median of per-pair ratios %.3f (%s)%s: **%s**.\n",
			r, all, note, (r >= 0.95 ? "met" : "MISSED") }'
	echo "- The server's CPU time per request (user + system, /proc/PID/stat), which"
	echo "  other work on the machine disturbs less than throughput: hotmod / static"
	echo "  = $mcr (median of per-pair ratios: ${cratios[*]}; < 1: hotmod cheaper)."
	echo "  The loader's own part is one hm_dispatch(), tens of ns (the tables above)."

	# One process: the static server answers /hello itself and /hello2 (the
	# same hello.so) through the loader; alternated, so that whatever
	# differs between two builds and two processes is out of it.
	local -a ia=() ib=() iac=() ibc=() ir=() icr=() order
	start_server "$static" || return 1
	[ "$http_warm" = 0 ] || wrk_rps "$http_warm" /hello2 >/dev/null || return 1
	for pair in $(seq "$http_pairs"); do
		if [ $((pair % 2)) = 1 ]; then order=(/hello2 /hello); else order=(/hello /hello2); fi
		for which in "${order[@]}"; do
			read -r rps cpu < <(measure "$((http_dur / 2 > 0 ? http_dur / 2 : 1))" "$which") &&
				[ -n "$cpu" ] || return 1
			if [ "$which" = /hello2 ]; then ia+=("$rps") iac+=("$cpu"); else ib+=("$rps") ibc+=("$cpu"); fi
		done
		ir+=("$(ratio "${ia[-1]}" "${ib[-1]}")")
		icr+=("$(ratio "${iac[-1]}" "${ibc[-1]}")")
	done
	stop_server || return 1
	echo
	echo "The same comparison inside one server process (the static build):"
	echo "/hello2, the same hello.so through the loader, against /hello linked in;"
	echo "$((http_dur / 2 > 0 ? http_dur / 2 : 1)) s each, $http_pairs pairs, alternated."
	echo
	echo "| path | requests/s per run | median | server CPU us/request per run | median |"
	echo "|---|---|---:|---|---:|"
	echo "| /hello2 through the loader | ${ia[*]} | $(median "${ia[@]}") | ${iac[*]} | $(median "${iac[@]}") |"
	echo "| /hello linked in | ${ib[*]} | $(median "${ib[@]}") | ${ibc[*]} | $(median "${ibc[@]}") |"
	echo
	echo "- loader / linked in, one process: requests/s $(median "${ir[@]}") (${ir[*]});"
	echo "  server CPU per request $(median "${icr[@]}") (${icr[*]})."
}
if [ -x "$TOP_BUILDDIR/server/hotmod-httpd" ] && [ -x "$BENCH_BUILDDIR/hotmod-httpd-static" ]; then
	if have wrk wrk; then
		step "HTTP (wrk)" http_bench
	fi
else
	say "hotmod-httpd not built (configure --disable-httpd): skipping HTTP"
	printf '\n(hotmod-httpd not built: HTTP skipped.)\n' >>"$report"
fi

# ---- 5b: HTTP against peers ------------------------------------------------------------
# hotmod-httpd as it ships (worker processes, the probe, inotify) against
# Debian's Kore 4 (its C page compiled here) and nginx answering the same
# bytes, each with one worker process per CPU, at 64, 1,000 and 10,000
# connections.  Speed is reported, never asserted.

# wrk_peer SECONDS CONNECTIONS: "requests/s p99-ms errors" of wrk on /hello.
wrk_peer() {
	wrk -t "$np" -c "$2" -d "${1}s" --latency "http://127.0.0.1:$port/hello" \
		>"$tmp/wrk.out" 2>&1 || { cat "$tmp/wrk.out" >&2; return 1; }
	awk '
		/^Requests\/sec:/ { rps = $2 }
		/^ +99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
			p99 = u == "us" ? v / 1000 : u == "s" ? v * 1000 : v }
		/Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
		/Non-2xx/ { err += $NF }
		END { printf "%s %.2f %d\n", rps, p99, err }' "$tmp/wrk.out"
}

# start_peer NAME: start that server on a free port, one worker per CPU.
start_peer() {
	local log=$tmp/peer.$1.err
	: >"$log"
	case $1 in
	hotmod | inline)
		# shellcheck disable=SC2046 # no flag, or one
		"$TOP_BUILDDIR/server/hotmod-httpd" --root "$tmp/www" --listen 127.0.0.1:0 \
			--quiet --workers "$np" --allow-root \
			$([ "$1" = inline ] && echo --inline-handlers) 2>"$log" &
		server_pid=$!
		for _ in $(seq 100); do
			port=$(sed -n 's/.*, port \([0-9][0-9]*\),.*worker process.*/\1/p' "$log" | head -1)
			[ -n "$port" ] && return 0
			sleep 0.1
		done ;;
	kore | nginx)
		port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		if [ "$1" = kore ]; then
			cat >"$tmp/kore.conf" <<-KORE
			server notls {
				bind 127.0.0.1 $port
				tls no
			}
			workers $np
			worker_max_connections 20000
			worker_rlimit_nofiles $nofile
			load $tmp/kore_hello.so
			domain * {
				attach notls
				route /hello hello
			}
			KORE
			kore -c "$tmp/kore.conf" -f -n -r -q >"$log" 2>&1 &
		else
			mkdir -p "$tmp/nginx"
			cat >"$tmp/nginx/nginx.conf" <<-NGINX
			worker_processes $np;
			worker_rlimit_nofile $nofile;
			daemon off;
			pid $tmp/nginx/nginx.pid;
			error_log $tmp/nginx/error.log;
			events { worker_connections 20000; }
			http {
				access_log off;
				client_body_temp_path $tmp/nginx;
				proxy_temp_path $tmp/nginx;
				fastcgi_temp_path $tmp/nginx;
				uwsgi_temp_path $tmp/nginx;
				scgi_temp_path $tmp/nginx;
				server {
					listen 127.0.0.1:$port;
					location = /hello {
						default_type "text/plain; charset=utf-8";
						return 200 "Hello from hotmod!\n";
					}
				}
			}
			NGINX
			nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$log" 2>&1 &
		fi
		server_pid=$!
		for _ in $(seq 100); do
			curl -sf "http://127.0.0.1:$port/hello" >/dev/null 2>&1 && return 0
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done ;;
	esac
	cat "$log" >&2
	echo "$1 did not start" >&2
	return 1
}

peers_bench() {
	local -a conns servers=(hotmod inline kore nginx)
	local c s rps p99 err k=0 limit nofile
	declare -A R P E
	if [ "$mode" = full ]; then conns=(64 1000 10000); else conns=(64); fi
	limit=$(ulimit -Hn)
	ulimit -n "$limit"
	# Each server raises its own descriptor limit; not above the hard one.
	# (Kore asks a few more than it is told: leave it room.)
	nofile=$([ "$limit" = unlimited ] && echo 65536 || echo $((limit - 64)))
	mkdir -p "$tmp/www"
	install -m 644 "$TOP_BUILDDIR/sample_handlers/.libs/hello.so" "$tmp/www/hello.so"
	# shellcheck disable=SC2046 # the flags are words
	gcc -O2 -shared -fPIC $(cat /usr/share/kore/features 2>/dev/null) \
		-o "$tmp/kore_hello.so" "$BENCH_SRCDIR/peers/kore_hello.c" || return 1
	for c in "${conns[@]}"; do
		if [ "$limit" != unlimited ] && [ "$limit" -lt $((c + 1024)) ]; then
			say "descriptor limit $limit: no run at $c connections"
			continue
		fi
		# A different server first at each connection count.
		for i in 0 1 2 3; do
			s=${servers[$(((i + k) % 4))]}
			start_peer "$s" || return 1
			[ "$http_warm" = 0 ] || wrk_peer "$http_warm" "$c" >/dev/null || return 1
			read -r rps p99 err < <(wrk_peer "$http_dur" "$c") && [ -n "$err" ] || return 1
			kill -TERM "$server_pid"
			wait "$server_pid" 2>/dev/null || true
			server_pid=
			R[$s,$c]=$rps P[$s,$c]=$p99 E[$s,$c]=$err
		done
		k=$((k + 1))
	done
	echo
	echo "### HTTP against peers: /hello from hotmod-httpd, Kore and nginx"
	echo
	echo "Each with $np worker processes and its defaults otherwise (hotmod-httpd:"
	echo "the probe, inotify, 16 handler threads a worker, and once more with"
	echo "--inline-handlers; Kore 4.1 from Debian, the page in C on its event loop;"
	echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), \`return 200\`); access logs off;"
	echo "wrk -t $np -d ${http_dur}s --latency, one run each, the order rotated per"
	echo "connection count; loopback, wrk on the same $np CPUs."
	echo
	echo "| connections | hotmod-httpd req/s | p99 ms | --inline-handlers req/s | p99 ms | Kore req/s | p99 ms | nginx req/s | p99 ms | hotmod / Kore | inline / Kore |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for c in "${conns[@]}"; do
		[ -n "${R[hotmod,$c]:-}" ] || continue
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" \
			"${R[hotmod,$c]}" "${P[hotmod,$c]}" "${R[inline,$c]}" "${P[inline,$c]}" \
			"${R[kore,$c]}" "${P[kore,$c]}" "${R[nginx,$c]}" "${P[nginx,$c]}" \
			"$(ratio "${R[hotmod,$c]}" "${R[kore,$c]}")" \
			"$(ratio "${R[inline,$c]}" "${R[kore,$c]}")"
	done
	echo
	echo "Errors (connect, read, write, timeout, non-2xx) per run:"
	for c in "${conns[@]}"; do
		[ -n "${R[hotmod,$c]:-}" ] || continue
		echo "$c connections: hotmod-httpd ${E[hotmod,$c]}, --inline-handlers ${E[inline,$c]}, Kore ${E[kore,$c]}, nginx ${E[nginx,$c]}."
	done
	echo
	local s name met detail
	for s in hotmod inline; do
		met=met detail=
		name=hotmod-httpd
		[ "$s" = inline ] && name="hotmod-httpd --inline-handlers"
		for c in "${conns[@]}"; do
			[ -n "${R[$s,$c]:-}" ] || continue
			detail+="${detail:+; }$c: $(ratio "${R[$s,$c]}" "${R[kore,$c]}") of Kore's requests/s, p99 ${P[$s,$c]} against ${P[kore,$c]} ms"
			awk -v h="${R[$s,$c]}" -v k="${R[kore,$c]}" -v hp="${P[$s,$c]}" \
				-v kp="${P[kore,$c]}" 'BEGIN { exit !(h >= k && hp < kp) }' || met=MISSED
		done
		echo "- Goal, $name at least Kore's requests/s with a lower p99 at every connection count: $detail: **$met**."
	done
	echo "- By default hotmod-httpd suspends each request's connection and resumes"
	echo "  it after the handler (two epoll_ctl a request), so that a handler that"
	echo "  runs 5 ms is left to a thread of its own while another takes the loop;"
	echo "  --inline-handlers runs it on the loop, as Kore does (docs/SERVER.md)."
}
if [ -x "$TOP_BUILDDIR/server/hotmod-httpd" ]; then
	if have wrk wrk && have kore kore && have nginx nginx-light; then
		step "HTTP against peers" peers_bench
	fi
fi

# ---- 6: memory ------------------------------------------------------------------------
step "memory over reloads" "$hmbench" memory --moddir "$moddir" --count "$cycles" \
	$([ "$mode" = quick ] && echo --quick)

# ---- the plot -----------------------------------------------------------------------------
if [ "$mode" = full ]; then png=$tmp/throughput.png; else png=$tmp/throughput-quick.png; fi
plot() {
	gnuplot -e "out='$png'; d1='$tmp/e1.dat'; d2='$tmp/e64.dat'; d3='$tmp/w1.dat'; \
d4='$tmp/w64.dat'; nproc=$np; when='$started'" "$BENCH_SRCDIR/plot.gp"
	[ -s "$png" ]
}
if have gnuplot gnuplot-nox; then
	step "plot" plot
fi

# ---- the report ---------------------------------------------------------------------------
{
	cat "$report.head"
	echo
	echo "## Goals"
	echo
	grep -E '^- (Goal|Status reports)' "$report" | sed 's/^- //; s/^/- /' || true
	echo
	echo "![throughput against threads](throughput.png)"
	echo
	# What limits hotmod, for each goal this run missed (bench/limits.md).
	grep -E '^- Goal.*MISSED' "$report" >"$tmp/missed" || true
	echo "## What limits hotmod where it misses, and other observations"
	echo
	awk -v missed="$tmp/missed" '
		BEGIN { while ((getline line < missed) > 0) all = all "\n" line }
		/^#/ && !started { next }
		/^@@ / { key = substr($0, 4); show = key == "always" || index(all, key) > 0
			started = 1; next }
		show { print }' "$BENCH_SRCDIR/limits.md"
	echo
	echo "## Figures"
	cat "$report"
	echo
	echo "Total time of the run: $SECONDS s.  Load average (1, 5, 15 min) at the"
	echo "start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (this run's own"
	echo "threads count in it: up to $((2 * np)) busy)."
} >"$tmp/RESULTS.md"

if [ "$failed" != 0 ]; then
	say "a benchmark failed; $( [ "$mode" = full ] && echo "RESULTS.md not updated" )"
	exit 1
fi
if [ "$mode" = full ]; then
	cp "$tmp/RESULTS.md" "$BENCH_SRCDIR/RESULTS.md"
	cp "$png" "$BENCH_SRCDIR/throughput.png"
	say "wrote $BENCH_SRCDIR/RESULTS.md and throughput.png in $SECONDS s"
else
	echo
	echo "## Goals (quick run: few iterations, figures indicative only)"
	grep -E '^- (Goal|Status reports)' "$report" || true
	say "quick run done in $SECONDS s (RESULTS.md untouched)"
fi
