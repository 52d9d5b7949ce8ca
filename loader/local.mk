# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- the library -----------------------------------------------------------
lib_LTLIBRARIES = loader/libhotmod.la
include_HEADERS = loader/hotmod.h loader/hotmod_module.h
noinst_HEADERS = loader/internal.h loader/fault.h loader/names.h
loader_libhotmod_la_SOURCES = \
	loader/dispatch.c \
	loader/elf.c \
	loader/entry.c \
	loader/error.c \
	loader/escape.c \
	loader/fault.c \
	loader/file_linux.c \
	loader/hazard_linux.c \
	loader/loader.c \
	loader/path.c \
	loader/probe_linux.c \
	loader/request.c \
	loader/status.c \
	loader/table.c \
	loader/version.c \
	loader/watch_linux.c
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
