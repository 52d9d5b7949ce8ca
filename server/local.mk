# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- the server ----------------------------------------------------------------
include_HEADERS += server/hotmod_http.h
if HTTPD
bin_PROGRAMS += server/hotmod-httpd
server_hotmod_httpd_SOURCES = server/main.c server/master.c server/httpd.c server/loop.c server/crash.c \
	server/builds.c server/status_json.c \
	server/server.h loader/escape.c
server_hotmod_httpd_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/server
server_hotmod_httpd_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
server_hotmod_httpd_LDADD = loader/libhotmod.la $(MHD_LIBS)
server_hotmod_httpd_LDFLAGS = $(HM_PROG_RPATH)
endif
