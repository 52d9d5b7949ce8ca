# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- the library -----------------------------------------------------------
lib_LTLIBRARIES = loader/libhotmod.la
include_HEADERS = loader/hotmod.h loader/hotmod_module.h
# The private headers: one per subsystem (docs/DESIGN.md has the map).
noinst_HEADERS = \
	loader/common.h \
	loader/elfcheck.h \
	loader/entry.h \
	loader/fault.h \
	loader/file.h \
	loader/hazard.h \
	loader/hooks.h \
	loader/loader.h \
	loader/names.h \
	loader/pending.h \
	loader/probe.h \
	loader/table.h \
	loader/version.h \
	loader/watch.h
# In the order a request and then a reload walk through them (docs/DESIGN.md).
loader_libhotmod_la_SOURCES = \
	loader/request.c \
	loader/hazard.c \
	loader/table.c \
	loader/hooks.c \
	loader/locks.c \
	loader/miss.c \
	loader/entry.c \
	loader/global.c \
	loader/version.c \
	loader/file.c \
	loader/rest.c \
	loader/elfcheck.c \
	loader/probe.c \
	loader/dl.c \
	loader/reaper.c \
	loader/sweeper.c \
	loader/watch.c \
	loader/pending.c \
	loader/scan.c \
	loader/names.c \
	loader/escape.c \
	loader/status.c \
	loader/open.c \
	loader/error.c \
	loader/clock.c \
	loader/array.c \
	loader/running.c \
	loader/fault.c
loader_libhotmod_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
# Only hm_* leaves the library, versioned (loader/libhotmod.map);
# tests/check-exports.sh holds the list.
loader_libhotmod_la_LDFLAGS = -version-info $(HM_LT_VERSION) -no-undefined \
	-Wl,--version-script=$(srcdir)/loader/libhotmod.map
EXTRA_loader_libhotmod_la_DEPENDENCIES = loader/libhotmod.map

# hotmod.pc is written when it is installed, not when configure runs, so
# that "make install prefix=DIR" installs one that names DIR.
pkgconfigdir = $(libdir)/pkgconfig
install-data-local:
	$(MKDIR_P) '$(DESTDIR)$(pkgconfigdir)'
	sed -e 's|@prefix[@]|$(prefix)|' -e 's|@exec_prefix[@]|$(exec_prefix)|' \
	    -e 's|@libdir[@]|$(libdir)|' -e 's|@includedir[@]|$(includedir)|' \
	    -e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|' $(srcdir)/hotmod.pc.in \
	    >'$(DESTDIR)$(pkgconfigdir)/hotmod.pc'

uninstall-local:
	rm -f '$(DESTDIR)$(pkgconfigdir)/hotmod.pc'
