# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- benchmarks (make bench) ----
# Built only for "make bench" and "make bench-quick" (EXTRA_*): the benchmark
# program, the modules it serves (the same module for hotmod and for every
# baseline), and hotmod-httpd with /hello linked in, the HTTP baseline.
# bench/run.sh runs them; see bench/RESULTS.md for what each figure means.
BENCH_CPPFLAGS = -I$(srcdir)/loader -I$(srcdir)/bench
EXTRA_PROGRAMS = bench/hmbench
bench_hmbench_SOURCES = bench/main.c bench/bench.h bench/harness.c \
	bench/impl_hotmod.c bench/baselines.c bench/wl_throughput.c \
	bench/wl_reload.c bench/wl_stall.c bench/wl_memory.c
bench_hmbench_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_hmbench_LDADD = loader/libhotmod.la
# A real binary, not a libtool wrapper script: valgrind runs it.
bench_hmbench_LDFLAGS = -no-install

# _a and _b differ in their bytes: alternating them is a new version each time.
EXTRA_LTLIBRARIES = bench/modules/empty_a.la bench/modules/empty_b.la \
	bench/modules/work_a.la bench/modules/work_b.la \
	bench/modules/pinned_a.la bench/modules/pinned_b.la
bench_modules_empty_a_la_SOURCES = bench/modules/bm.c
bench_modules_empty_a_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=1
bench_modules_empty_a_la_LDFLAGS = $(MODULE_LDFLAGS)
bench_modules_empty_b_la_SOURCES = bench/modules/bm.c
bench_modules_empty_b_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=2
bench_modules_empty_b_la_LDFLAGS = $(MODULE_LDFLAGS)
bench_modules_work_a_la_SOURCES = bench/modules/bm.c
bench_modules_work_a_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=1 -DBM_WORK
bench_modules_work_a_la_LDFLAGS = $(MODULE_LDFLAGS)
bench_modules_work_b_la_SOURCES = bench/modules/bm.c
bench_modules_work_b_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=2 -DBM_WORK
bench_modules_work_b_la_LDFLAGS = $(MODULE_LDFLAGS)
# C++, a thread_local with a destructor: dlclose cannot unload it (pinned).
# -fno-gnu-unique: no STB_GNU_UNIQUE symbol pins it for another reason.
BENCH_PINNED_CXXFLAGS = $(AM_CXXFLAGS) -fno-gnu-unique -fvisibility=hidden
bench_modules_pinned_a_la_SOURCES = bench/modules/pinned.cpp
bench_modules_pinned_a_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=1
bench_modules_pinned_a_la_CXXFLAGS = $(BENCH_PINNED_CXXFLAGS)
bench_modules_pinned_a_la_LDFLAGS = $(MODULE_LDFLAGS)
bench_modules_pinned_b_la_SOURCES = bench/modules/pinned.cpp
bench_modules_pinned_b_la_CPPFLAGS = $(BENCH_CPPFLAGS) -DBM_VARIANT=2
bench_modules_pinned_b_la_CXXFLAGS = $(BENCH_PINNED_CXXFLAGS)
bench_modules_pinned_b_la_LDFLAGS = $(MODULE_LDFLAGS)

# Preloaded under valgrind 3.19, which lacks openat2 (see the file).
EXTRA_LTLIBRARIES += bench/vg_openat2.la
bench_vg_openat2_la_SOURCES = bench/vg_openat2.c
bench_vg_openat2_la_LDFLAGS = $(MODULE_LDFLAGS)

BENCH_HTTPD =
if HTTPD
# The HTTP baseline: the same server, /hello answered by code linked in.
EXTRA_PROGRAMS += bench/hotmod-httpd-static
bench_hotmod_httpd_static_SOURCES = server/main.c server/master.c server/httpd.c server/loop.c server/crash.c \
	server/builds.c server/status_json.c server/server.h loader/escape.c
bench_hotmod_httpd_static_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/server \
	-DHOTMOD_HTTPD_STATIC_HELLO
bench_hotmod_httpd_static_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
bench_hotmod_httpd_static_LDADD = loader/libhotmod.la $(MHD_LIBS)
BENCH_HTTPD += server/hotmod-httpd bench/hotmod-httpd-static
endif

BENCH_BUILT = bench/hmbench $(EXTRA_LTLIBRARIES) $(BENCH_HTTPD) \
	sample_handlers/hello.la
BENCH_ENV = BENCH_SRCDIR='$(abs_srcdir)/bench' BENCH_BUILDDIR='$(abs_builddir)/bench' \
	TOP_BUILDDIR='$(abs_top_builddir)'
# The full run: figures into $(srcdir)/bench/RESULTS.md and throughput.png.
bench: $(BENCH_BUILT)
	$(BENCH_ENV) bash $(srcdir)/bench/run.sh full
# CI: the same programs, short; a table on stdout, RESULTS.md untouched.
# Fails when a benchmark program fails, never because a goal was missed.
bench-quick: $(BENCH_BUILT)
	$(BENCH_ENV) bash $(srcdir)/bench/run.sh quick
.PHONY: bench bench-quick
# Automake cleans no EXTRA_ program or library: make clean does, here.
mostlyclean-local:
	-$(LIBTOOL) --mode=clean rm -f $(EXTRA_PROGRAMS) $(EXTRA_LTLIBRARIES)

EXTRA_DIST += bench/README.md bench/run.sh bench/plot.gp bench/limits.md bench/peers/kore_hello.c \
	bench/RESULTS.md bench/throughput.png
