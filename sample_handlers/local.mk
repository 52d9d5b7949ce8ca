# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- sample handlers and the demo ----------------------------------------------
SAMPLE_CPPFLAGS = -I$(srcdir)/loader -I$(srcdir)/server
SAMPLE_LIBADD = loader/libhotmod.la
noinst_LTLIBRARIES = sample_handlers/hello.la sample_handlers/counter.la \
	sample_handlers/slow.la sample_handlers/redirect.la sample_handlers/greet.la
sample_handlers_hello_la_SOURCES = sample_handlers/hello.c
sample_handlers_hello_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_hello_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_hello_la_LIBADD = $(SAMPLE_LIBADD)
sample_handlers_counter_la_SOURCES = sample_handlers/counter.c
sample_handlers_counter_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_counter_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_counter_la_LIBADD = $(SAMPLE_LIBADD)
sample_handlers_slow_la_SOURCES = sample_handlers/slow.c
sample_handlers_slow_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_slow_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_slow_la_LIBADD = $(SAMPLE_LIBADD)
sample_handlers_redirect_la_SOURCES = sample_handlers/redirect.c
sample_handlers_redirect_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_redirect_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_redirect_la_LIBADD = $(SAMPLE_LIBADD)
sample_handlers_greet_la_SOURCES = sample_handlers/greet.c
sample_handlers_greet_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_greet_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_greet_la_LIBADD = $(SAMPLE_LIBADD)
# "/" -> where served ("app/notes" is served at /app/notes)
SAMPLE_MODULES = hello counter slow redirect greet

if SQLITE
# The notes app: a directory whose global module holds an SQLite pool.
noinst_LTLIBRARIES += sample_handlers/app/_global.la sample_handlers/app/notes.la \
	sample_handlers/app/health.la
sample_handlers_app__global_la_SOURCES = sample_handlers/app/_global.c \
	sample_handlers/app/app.h
sample_handlers_app__global_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_app__global_la_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
sample_handlers_app__global_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_app__global_la_LIBADD = $(SAMPLE_LIBADD) $(SQLITE_LIBS)
sample_handlers_app_notes_la_SOURCES = sample_handlers/app/notes.c sample_handlers/app/app.h
sample_handlers_app_notes_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_app_notes_la_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
sample_handlers_app_notes_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_app_notes_la_LIBADD = $(SAMPLE_LIBADD) $(SQLITE_LIBS)
sample_handlers_app_health_la_SOURCES = sample_handlers/app/health.c sample_handlers/app/app.h
sample_handlers_app_health_la_CPPFLAGS = $(SAMPLE_CPPFLAGS)
sample_handlers_app_health_la_LDFLAGS = $(MODULE_LDFLAGS)
sample_handlers_app_health_la_LIBADD = $(SAMPLE_LIBADD)
SAMPLE_MODULES += app/_global app/notes app/health
endif

DEMO_ROOT = $(abs_top_builddir)/www
DEMO_LISTEN = 127.0.0.1:8080

# Install the built samples into www/ the way a deploy would (install(1):
# a new inode each time; a running server picks the change up at once).
demo-root: $(noinst_LTLIBRARIES)
	for m in $(SAMPLE_MODULES); do \
		$(INSTALL) -d -m 755 "$(DEMO_ROOT)/`dirname $$m`" && \
		$(INSTALL) -m 644 "sample_handlers/`dirname $$m`/.libs/`basename $$m`.so" \
			"$(DEMO_ROOT)/$$m.so" || exit 1; \
	done

if HTTPD
demo: demo-root server/hotmod-httpd
	@echo "hotmod-httpd: try  curl http://$(DEMO_LISTEN)/hello  (Ctrl-C stops)"
	@# As root, a demo on loopback serves as root (--allow-root); a server
	@# for others runs its workers as a user of their own (--user).  One
	@# worker: /counter keeps its count in the process that serves it.
	cd $(abs_top_builddir) && server/hotmod-httpd --root $(DEMO_ROOT) --listen $(DEMO_LISTEN) \
		--workers 1 $$(test "$$(id -u)" != 0 || echo --allow-root)
else
demo:
	@echo "make demo needs hotmod-httpd: install libmicrohttpd-dev and reconfigure"; exit 1
endif

clean-local:
	-rm -rf $(DEMO_ROOT) notes.db notes.db-wal notes.db-shm

.PHONY: demo demo-root
