# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- fuzzing (make fuzz) ----
# (owned by the fuzzing work; see tests/fuzz/)
# libFuzzer targets, built with clang (tests/fuzz/README.md): the request path
# check, every builder of keys and paths, the escaping of messages, the ELF
# check on a memfd, and a module file loaded through the public API.  The functions they fuzz are hidden in the library, so the loader's
# sources are compiled into each fuzzer.  make fuzz runs each target for
# FUZZ_SECONDS over its seeds in tests/fuzz/corpus/TARGET/ and writes new
# inputs to tests/fuzz/new/TARGET/ and crashes to tests/fuzz/crashes/ in the
# build directory; make fuzz-quick (CI) runs each for FUZZ_QUICK_SECONDS.
# Both fail when a fuzzer finds a crash, a leak or a hang.
FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_QUICK_SECONDS = 5
FUZZ_TARGETS = tests/fuzz/fuzz_path tests/fuzz/fuzz_key tests/fuzz/fuzz_escape \
	tests/fuzz/fuzz_elf tests/fuzz/fuzz_module
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined $(HM_WARN_CFLAGS)
FUZZ_CPPFLAGS = -I$(top_builddir) -I$(srcdir)/loader
FUZZ_DEPS = $(loader_libhotmod_la_SOURCES) $(noinst_HEADERS) loader/hotmod.h \
	loader/hotmod_module.h $(top_builddir)/config.h
# -timeout: a hang is a failure.  fuzz_module hands only the vouched-for seeds
# (*.so) to the real dlopen; see the top of tests/fuzz/fuzz_module.c.
FUZZ_OPTIONS = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_ENV = HM_FUZZ_VOUCHED='$(abs_srcdir)/tests/fuzz/corpus/fuzz_module'
FUZZ_TOOLCHAIN = \
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }\n' | \
	$(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1 || { \
	echo "make fuzz needs clang with libFuzzer and the sanitizer runtimes ($(FUZZ_CC) failed)."; \
	echo "Debian 12: apt-get install clang libclang-rt-14-dev"; exit 1; }
# $(srcdir)/$@.c: tests/fuzz/fuzz_path is built from tests/fuzz/fuzz_path.c.
FUZZ_BUILD = $(FUZZ_TOOLCHAIN); $(MKDIR_P) tests/fuzz && srcs= && \
	for f in $(loader_libhotmod_la_SOURCES); do \
		case $$f in *.c) srcs="$$srcs $(srcdir)/$$f" ;; esac; \
	done && \
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(srcdir)/$@.c $$srcs $(LIBS)
tests/fuzz/fuzz_path: tests/fuzz/fuzz_path.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_BUILD)
tests/fuzz/fuzz_key: tests/fuzz/fuzz_key.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_BUILD)
tests/fuzz/fuzz_escape: tests/fuzz/fuzz_escape.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_BUILD)
tests/fuzz/fuzz_elf: tests/fuzz/fuzz_elf.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_BUILD)
tests/fuzz/fuzz_module: tests/fuzz/fuzz_module.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_BUILD) -Wl,--wrap=dlopen
# Each target over new/TARGET (written) and the seeds (read only); the last
# lines of each run say executions, coverage and corpus size.
FUZZ_RUN = fail=0; for t in $(FUZZ_TARGETS); do \
	name=`basename $$t`; \
	case $$name in fuzz_path|fuzz_key|fuzz_escape) max=4096 ;; *) max=16384 ;; esac; \
	$(MKDIR_P) tests/fuzz/new/$$name tests/fuzz/crashes || exit 1; \
	echo "fuzz: $$name, $$secs s (log: tests/fuzz/$$name.log)"; \
	if $(FUZZ_ENV) $$t $(FUZZ_OPTIONS) -max_len=$$max -max_total_time=$$secs \
		-artifact_prefix=tests/fuzz/crashes/$$name- \
		tests/fuzz/new/$$name $(srcdir)/tests/fuzz/corpus/$$name \
		>tests/fuzz/$$name.log 2>&1; then \
		grep -E 'DONE +cov:|^stat::(number_of_executed_units|new_units_added)' \
			tests/fuzz/$$name.log; \
	else \
		fail=1; tail -40 tests/fuzz/$$name.log; \
		echo "fuzz: $$name FAILED; the input is in tests/fuzz/crashes/"; \
	fi; \
	done; exit $$fail
fuzz: $(FUZZ_TARGETS)
	@secs=$(FUZZ_SECONDS); $(FUZZ_RUN)
fuzz-quick: $(FUZZ_TARGETS)
	@secs=$(FUZZ_QUICK_SECONDS); $(FUZZ_RUN)
.PHONY: fuzz fuzz-quick
CLEANFILES = $(FUZZ_TARGETS) tests/fuzz/fuzz_path.log tests/fuzz/fuzz_key.log \
	tests/fuzz/fuzz_escape.log tests/fuzz/fuzz_elf.log tests/fuzz/fuzz_module.log
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/fuzz_path.c tests/fuzz/fuzz_key.c \
	tests/fuzz/fuzz_escape.c tests/fuzz/fuzz_elf.c tests/fuzz/fuzz_module.c \
	tests/fuzz/corpus

# The security checks that no other suite proves (docs/SECURITY.md).
if HAVE_CHECK
check_PROGRAMS += tests/check_security
endif
# loader/escape.c: its unit test calls the escaping directly.
tests_check_security_SOURCES = tests/check_security.c $(TEST_UTIL) loader/escape.c
tests_check_security_CPPFLAGS = $(TEST_CPPFLAGS) -DTOP_SRCDIR='"$(abs_top_srcdir)"' \
	-DFX_MARKS='"$(abs_top_builddir)/tests/ctormark.marks"'
tests_check_security_LDADD = $(TEST_LDADD)
CLEANFILES += tests/ctormark.marks
