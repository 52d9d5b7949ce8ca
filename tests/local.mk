# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- tests ---------------------------------------------------------------------
FX_CPPFLAGS = -I$(srcdir)/loader -I$(srcdir)/tests/fixtures
FX_LIBADD = loader/libhotmod.la
check_LTLIBRARIES = \
	tests/fixtures/probe_v1.la tests/fixtures/probe_v2.la \
	tests/fixtures/global_v1.la tests/fixtures/global_v2.la \
	tests/fixtures/nohandler.la tests/fixtures/nodesc.la \
	tests/fixtures/badabi.la tests/fixtures/initfail.la \
	tests/fixtures/unresolved.la tests/fixtures/redirect.la \
	tests/fixtures/nodelete.la \
	tests/fixtures/handover_v1.la tests/fixtures/handover_v2.la \
	tests/fixtures/http_v1.la tests/fixtures/http_v2.la tests/fixtures/http_flaky.la \
	tests/fixtures/initcrash.la tests/fixtures/cxxmod.la \
	tests/fixtures/ctormark.la \
	tests/fixtures/adopt_v1.la tests/fixtures/adopt_v2.la \
	tests/fixtures/cxxtls_v1.la tests/fixtures/cxxtls_v2.la \
	tests/fixtures/bare.la \
	tests/fixtures/kind_stdio.la tests/fixtures/kind_fixture.la \
	tests/fixtures/kind_outside.la tests/fixtures/kind_long.la \
	tests/fixtures/kind_ctrl.la
tests_fixtures_cxxmod_la_SOURCES = tests/fixtures/cxxmod.cpp
tests_fixtures_cxxmod_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_cxxmod_la_CXXFLAGS = -std=c++20 -fvisibility=hidden -fno-gnu-unique
tests_fixtures_cxxmod_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_cxxmod_la_LIBADD = $(FX_LIBADD)
# thread_local destructors keep it mapped after dlclose (a pinned version).
tests_fixtures_cxxtls_v1_la_SOURCES = tests/fixtures/cxxtls.cpp
tests_fixtures_cxxtls_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=1
tests_fixtures_cxxtls_v1_la_CXXFLAGS = -std=c++20 -fvisibility=hidden -fno-gnu-unique
tests_fixtures_cxxtls_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_cxxtls_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_cxxtls_v2_la_SOURCES = tests/fixtures/cxxtls.cpp
tests_fixtures_cxxtls_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=2
tests_fixtures_cxxtls_v2_la_CXXFLAGS = -std=c++20 -fvisibility=hidden -fno-gnu-unique
tests_fixtures_cxxtls_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_cxxtls_v2_la_LIBADD = $(FX_LIBADD)
# HTTP modules that say which version answered (check_httpd reloads them).
tests_fixtures_http_v1_la_SOURCES = tests/fixtures/http_probe.c
tests_fixtures_http_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -I$(srcdir)/server -DFX_VERSION=1
tests_fixtures_http_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_http_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_http_v2_la_SOURCES = tests/fixtures/http_probe.c
tests_fixtures_http_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -I$(srcdir)/server -DFX_VERSION=2
tests_fixtures_http_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_http_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_http_flaky_la_SOURCES = tests/fixtures/http_probe.c
tests_fixtures_http_flaky_la_CPPFLAGS = $(FX_CPPFLAGS) -I$(srcdir)/server -DFX_VERSION=3 -DFX_FLAKY
tests_fixtures_http_flaky_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_http_flaky_la_LIBADD = $(FX_LIBADD)
# Its constructor and IFUNC resolver note who ran them (HM_OPEN_PROBE must not).
tests_fixtures_ctormark_la_SOURCES = tests/fixtures/ctormark.c
tests_fixtures_ctormark_la_CPPFLAGS = $(FX_CPPFLAGS) \
	-DFX_MARKS='"$(abs_top_builddir)/tests/ctormark.marks"'
tests_fixtures_ctormark_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_ctormark_la_LIBADD = $(FX_LIBADD)
# init dies with SIGSEGV: hotmod check must survive it and say so.
tests_fixtures_initcrash_la_SOURCES = tests/fixtures/initcrash.c
tests_fixtures_initcrash_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_initcrash_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_initcrash_la_LIBADD = $(FX_LIBADD)
# State hand-over as each test plans it (hotmod_module(3), check_hooks).
tests_fixtures_adopt_v1_la_SOURCES = tests/fixtures/adopt.c tests/fixtures/adopt.h \
	tests/fixtures/fixture.h
tests_fixtures_adopt_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=1
tests_fixtures_adopt_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_adopt_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_adopt_v2_la_SOURCES = tests/fixtures/adopt.c tests/fixtures/adopt.h \
	tests/fixtures/fixture.h
tests_fixtures_adopt_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=2
tests_fixtures_adopt_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_adopt_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_handover_v1_la_SOURCES = tests/fixtures/handover.c tests/fixtures/fixture.h
tests_fixtures_handover_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=1
tests_fixtures_handover_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_handover_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_handover_v2_la_SOURCES = tests/fixtures/handover.c tests/fixtures/fixture.h
tests_fixtures_handover_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=2
tests_fixtures_handover_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_handover_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_probe_v1_la_SOURCES = tests/fixtures/probe.c tests/fixtures/fixture.h
tests_fixtures_probe_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=1
tests_fixtures_probe_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_probe_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_probe_v2_la_SOURCES = tests/fixtures/probe.c tests/fixtures/fixture.h
tests_fixtures_probe_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=2
tests_fixtures_probe_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_probe_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_global_v1_la_SOURCES = tests/fixtures/probe.c tests/fixtures/fixture.h
tests_fixtures_global_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=1 -DFX_GLOBAL
tests_fixtures_global_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_global_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_global_v2_la_SOURCES = tests/fixtures/probe.c tests/fixtures/fixture.h
tests_fixtures_global_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_VERSION=2 -DFX_GLOBAL
tests_fixtures_global_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_global_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_nohandler_la_SOURCES = tests/fixtures/nohandler.c
tests_fixtures_nohandler_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_nohandler_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_nohandler_la_LIBADD = $(FX_LIBADD)
tests_fixtures_nodesc_la_SOURCES = tests/fixtures/nodesc.c
tests_fixtures_nodesc_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_badabi_la_SOURCES = tests/fixtures/badabi.c
tests_fixtures_badabi_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_badabi_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_initfail_la_SOURCES = tests/fixtures/initfail.c
tests_fixtures_initfail_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_initfail_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_initfail_la_LIBADD = $(FX_LIBADD)
tests_fixtures_unresolved_la_SOURCES = tests/fixtures/unresolved.c
tests_fixtures_unresolved_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_unresolved_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_unresolved_la_LIBADD = $(FX_LIBADD)
tests_fixtures_redirect_la_SOURCES = tests/fixtures/redirect.c
tests_fixtures_redirect_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_redirect_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_redirect_la_LIBADD = $(FX_LIBADD)
tests_fixtures_nodelete_la_SOURCES = tests/fixtures/nodelete.c
tests_fixtures_nodelete_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_nodelete_la_LDFLAGS = $(MODULE_LDFLAGS) -Wl,-z,nodelete
tests_fixtures_nodelete_la_LIBADD = $(FX_LIBADD)
# Needs nothing from libhotmod.so: check_table has the loader linked in.
tests_fixtures_bare_la_SOURCES = tests/fixtures/bare.c
tests_fixtures_bare_la_CPPFLAGS = $(FX_CPPFLAGS)
tests_fixtures_bare_la_LDFLAGS = $(MODULE_LDFLAGS)

# Request kinds (hotmod_module.h): one source, a case per build (kind.c).
tests_fixtures_kind_stdio_la_SOURCES = tests/fixtures/kind.c tests/fixtures/fixture.h
tests_fixtures_kind_stdio_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_STDIO
tests_fixtures_kind_stdio_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_kind_stdio_la_LIBADD = $(FX_LIBADD)
tests_fixtures_kind_fixture_la_SOURCES = tests/fixtures/kind.c tests/fixtures/fixture.h
tests_fixtures_kind_fixture_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_FIXTURE
tests_fixtures_kind_fixture_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_kind_fixture_la_LIBADD = $(FX_LIBADD)
tests_fixtures_kind_outside_la_SOURCES = tests/fixtures/kind.c tests/fixtures/fixture.h
tests_fixtures_kind_outside_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_KIND_OUTSIDE
tests_fixtures_kind_outside_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_kind_outside_la_LIBADD = $(FX_LIBADD)
tests_fixtures_kind_long_la_SOURCES = tests/fixtures/kind.c tests/fixtures/fixture.h
tests_fixtures_kind_long_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_KIND_LONG
tests_fixtures_kind_long_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_kind_long_la_LIBADD = $(FX_LIBADD)
tests_fixtures_kind_ctrl_la_SOURCES = tests/fixtures/kind.c tests/fixtures/fixture.h
tests_fixtures_kind_ctrl_la_CPPFLAGS = $(FX_CPPFLAGS) -DFX_KIND_CTRL
tests_fixtures_kind_ctrl_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_kind_ctrl_la_LIBADD = $(FX_LIBADD)

# What a Check suite needs; its CFLAGS are AM_CFLAGS (no per-target CFLAGS):
# Check's own (-pthread) go with the preprocessor flags.
TEST_CPPFLAGS = $(FX_CPPFLAGS) -DFIXTURES='"$(abs_top_builddir)/tests/fixtures/.libs"' \
	$(CHECK_CFLAGS)
TEST_LDADD = loader/libhotmod.la $(CHECK_LIBS)
TEST_UTIL = tests/util.c tests/util.h

if HAVE_CHECK
check_PROGRAMS = tests/check_api tests/check_load tests/check_cache \
	tests/check_hooks tests/check_reload tests/check_cxx tests/check_locks
endif
tests_check_api_SOURCES = tests/check_api.c $(TEST_UTIL)
tests_check_api_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_api_LDADD = $(TEST_LDADD)
tests_check_locks_SOURCES = tests/check_locks.c $(TEST_UTIL)
tests_check_locks_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_locks_LDADD = $(TEST_LDADD)
tests_check_load_SOURCES = tests/check_load.c $(TEST_UTIL)
tests_check_load_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_load_LDADD = $(TEST_LDADD)
tests_check_cache_SOURCES = tests/check_cache.c $(TEST_UTIL)
tests_check_cache_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_cache_LDADD = $(TEST_LDADD)
tests_check_hooks_SOURCES = tests/check_hooks.c $(TEST_UTIL)
tests_check_hooks_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_hooks_LDADD = $(TEST_LDADD)
tests_check_reload_SOURCES = tests/check_reload.c $(TEST_UTIL)
# The compiler test builds a fixture straight into a watched directory.
tests_check_reload_CPPFLAGS = $(TEST_CPPFLAGS) -DTEST_CC='"$(CC)"' \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_check_reload_LDADD = $(TEST_LDADD)
# The table's shape (hm__table_stats) is hidden in the library: this suite
# compiles the loader's sources in, as the fuzzers do, and loads only
# tests/fixtures/bare.so, which does not link libhotmod.so.
if HAVE_CHECK
check_PROGRAMS += tests/check_table
endif
tests_check_table_SOURCES = tests/check_table.c $(TEST_UTIL) \
	$(loader_libhotmod_la_SOURCES)
tests_check_table_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_table_LDADD = $(CHECK_LIBS)
# The public headers compile as C++ too.
tests_check_cxx_SOURCES = tests/check_cxx.cpp
tests_check_cxx_CPPFLAGS = -I$(srcdir)/loader
tests_check_cxx_LDADD = loader/libhotmod.la

if HAVE_CHECK
if HAVE_CURL
if HAVE_JANSSON
if HTTPD
check_PROGRAMS += tests/check_httpd tests/check_httpd_app tests/check_httpd_workers \
	tests/check_httpd_limits
endif
endif
endif
endif
# The server driven over HTTP on a free loopback port (tests/httpd_harness.h).
HTTPD_TEST_SOURCES = tests/httpd_harness.c tests/httpd_harness.h $(TEST_UTIL)
HTTPD_TEST_CPPFLAGS = $(TEST_CPPFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS) -I$(srcdir)/server \
	-DTOP_BUILDDIR='"$(abs_top_builddir)"' -DTOP_SRCDIR='"$(abs_top_srcdir)"'
HTTPD_TEST_LDADD = $(TEST_LDADD) $(CURL_LIBS) $(JANSSON_LIBS)
tests_check_httpd_SOURCES = tests/check_httpd.c $(HTTPD_TEST_SOURCES)
tests_check_httpd_CPPFLAGS = $(HTTPD_TEST_CPPFLAGS)
tests_check_httpd_LDADD = $(HTTPD_TEST_LDADD)
tests_check_httpd_app_SOURCES = tests/check_httpd_app.c $(HTTPD_TEST_SOURCES)
tests_check_httpd_app_CPPFLAGS = $(HTTPD_TEST_CPPFLAGS)
tests_check_httpd_app_LDADD = $(HTTPD_TEST_LDADD)
tests_check_httpd_workers_SOURCES = tests/check_httpd_workers.c $(HTTPD_TEST_SOURCES)
tests_check_httpd_workers_CPPFLAGS = $(HTTPD_TEST_CPPFLAGS)
tests_check_httpd_workers_LDADD = $(HTTPD_TEST_LDADD)
tests_check_httpd_limits_SOURCES = tests/check_httpd_limits.c $(HTTPD_TEST_SOURCES)
tests_check_httpd_limits_CPPFLAGS = $(HTTPD_TEST_CPPFLAGS)
tests_check_httpd_limits_LDADD = $(HTTPD_TEST_LDADD)

TESTS = $(check_PROGRAMS) tests/check-exports.sh tests/check-tool.sh
if HAVE_MANDOC
TESTS += tests/check-man.sh
endif
AM_TESTS_ENVIRONMENT = top_builddir='$(top_builddir)' top_srcdir='$(top_srcdir)' \
	abs_top_builddir='$(abs_top_builddir)'; export abs_top_builddir; \
	MANDOC='$(MANDOC)'; export top_builddir top_srcdir MANDOC;
# A hung test fails instead of hanging the build.
AM_TESTS_ENVIRONMENT += CK_DEFAULT_TIMEOUT=60; export CK_DEFAULT_TIMEOUT;

# make installcheck (part of make distcheck): build against the installed copy.
# Then the same of a copy installed with "make install prefix=DIR" (where
# the directories are the default ones below the prefix).
installcheck-local:
	CC='$(CC)' $(srcdir)/tests/install/installcheck.sh '$(abs_srcdir)' \
		'$(libdir)' '$(mandir)' '$(bindir)'
	if test '$(libdir)' = '$(prefix)/lib' && test '$(bindir)' = '$(prefix)/bin' && \
	   test '$(mandir)' = '$(prefix)/share/man'; then \
		dir=`mktemp -d` && \
		$(MAKE) $(AM_MAKEFLAGS) install prefix="$$dir" exec_prefix="$$dir" >/dev/null && \
		CC='$(CC)' $(srcdir)/tests/install/installcheck.sh '$(abs_srcdir)' \
			"$$dir/lib" "$$dir/share/man" "$$dir/bin"; \
		rc=$$?; rm -rf "$$dir"; exit $$rc; \
	fi

EXTRA_DIST = autogen.sh LICENSE NEWS README.md hotmod.pc.in loader/libhotmod.map docs tests/check-exports.sh tests/check-man.sh \
	tests/check-tool.sh \
	tests/exports.txt tests/install .ci/run

# ---- soak (make soak) ----
# (owned by the soak work; see tests/soak.c)
# Request threads and a reloader using every writer for SOAK_SECONDS, then
# figures and checks; a program, not a Check suite ("N passed, N failed").
# make check runs it for 10 s (CI: also under ASan and TSan), make soak for
# 60; SOAK_SECONDS in the environment or on the command line wins.
SOAK_FIXTURES = \
	tests/fixtures/soak_mod_v1.la tests/fixtures/soak_mod_v2.la \
	tests/fixtures/soak_mod_v3.la tests/fixtures/soak_global_v1.la \
	tests/fixtures/soak_global_v2.la tests/fixtures/soak_global_v3.la
check_LTLIBRARIES += $(SOAK_FIXTURES)
# One source: module or global (SOAK_GLOBAL), builds 1 to 3 differ in bytes.
SOAK_FX_SOURCES = tests/fixtures/soak_mod.c tests/fixtures/soak.h
tests_fixtures_soak_mod_v1_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_mod_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=1
tests_fixtures_soak_mod_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_mod_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_soak_mod_v2_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_mod_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=2
tests_fixtures_soak_mod_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_mod_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_soak_mod_v3_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_mod_v3_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=3
tests_fixtures_soak_mod_v3_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_mod_v3_la_LIBADD = $(FX_LIBADD)
tests_fixtures_soak_global_v1_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_global_v1_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=1 -DSOAK_GLOBAL
tests_fixtures_soak_global_v1_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_global_v1_la_LIBADD = $(FX_LIBADD)
tests_fixtures_soak_global_v2_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_global_v2_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=2 -DSOAK_GLOBAL
tests_fixtures_soak_global_v2_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_global_v2_la_LIBADD = $(FX_LIBADD)
tests_fixtures_soak_global_v3_la_SOURCES = $(SOAK_FX_SOURCES)
tests_fixtures_soak_global_v3_la_CPPFLAGS = $(FX_CPPFLAGS) -DSOAK_BUILD=3 -DSOAK_GLOBAL
tests_fixtures_soak_global_v3_la_LDFLAGS = $(MODULE_LDFLAGS)
tests_fixtures_soak_global_v3_la_LIBADD = $(FX_LIBADD)
if HAVE_CHECK
check_PROGRAMS += tests/soak
endif
tests_soak_SOURCES = tests/soak.c tests/fixtures/soak.h
tests_soak_CPPFLAGS = $(TEST_CPPFLAGS)
tests_soak_LDADD = loader/libhotmod.la
AM_TESTS_ENVIRONMENT += SOAK_SECONDS=$${SOAK_SECONDS:-10}; export SOAK_SECONDS;

soak: tests/soak $(SOAK_FIXTURES) tests/fixtures/badabi.la tests/fixtures/initfail.la
	SOAK_SECONDS=$${SOAK_SECONDS:-60} tests/soak
.PHONY: soak

# ---- fault injection (configure --enable-fault-injection) ----
# The library fails its Nth fallible call (loader/fault.h); check_faults walks
# N through every operation.  CI builds it with ASan so that LSan sees leaks.
if FAULT_INJECTION
if HAVE_CHECK
check_PROGRAMS += tests/check_faults
endif
AM_TESTS_ENVIRONMENT += HM_FAULT_INJECTION=yes; export HM_FAULT_INJECTION;
endif
tests_check_faults_SOURCES = tests/check_faults.c $(TEST_UTIL)
tests_check_faults_CPPFLAGS = $(TEST_CPPFLAGS)
tests_check_faults_LDADD = $(TEST_LDADD)
