# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- the tool ------------------------------------------------------------------
bin_PROGRAMS = tools/hotmod
# loader/escape.c: what it prints from untrusted sources is escaped as the
# library escapes its messages (loader/names.h).
tools_hotmod_SOURCES = tools/hotmod.c loader/escape.c
tools_hotmod_LDADD = loader/libhotmod.la
tools_hotmod_LDFLAGS = $(HM_PROG_RPATH)
