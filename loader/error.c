/* SPDX-License-Identifier: MIT */
/*
 * error.c - error codes, the per-thread message, logging, version queries.
 *
 * Messages quote names, dlerror() text and module strings, any of which may
 * hold any byte: what is stored for hm_errmsg() and what is handed to the
 * log callback is escaped (names.h), so that no message forges a log line
 * or drives a terminal, whatever its source.
 */
#include "loader.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "fault.h" /* last: see fault.h */

/* Thread-local so that concurrent requests never see each other's text. */
static __thread char hm__errbuf[HM__MSG_MAX];

const char *hm_strerror(int err)
{
	switch (err) {
#define HM__STR(name, value, msg)                                             \
	case value:                                                           \
		return msg;
		HM_ERRNO_MAP(HM__STR)
#undef HM__STR
	case 0:
		return "success";
	default:
		return "unknown error";
	}
}

const char *hm_err_name(int err)
{
	switch (err) {
#define HM__NAME(name, value, msg)                                            \
	case value:                                                           \
		return #name;
		HM_ERRNO_MAP(HM__NAME)
#undef HM__NAME
	case 0:
		return "OK";
	default:
		return "EUNKNOWN";
	}
}

/*
 * Failures that the file itself causes: the same unchanged file fails the
 * same way, so it is not loaded again until it changes (or hm_refresh).
 * Others (its global module, a deadlock, memory, a system call) may pass.
 */
bool hm__err_of_file(int rc)
{
	switch (rc) {
	case HM_ENOTREG:
	case HM_EUNSAFE:
	case HM_ETOOBIG:
	case HM_ENOTELF:
	case HM_EESCAPE:
	case HM_EDLOPEN:
	case HM_ENODESC:
	case HM_EABI:
	case HM_EINIT:
	case HM_EPROBE:
		return true;
	default:
		return false;
	}
}

const char *hm_errmsg(void)
{
	return hm__errbuf[0] ? hm__errbuf : "no error";
}

const char *hm__msg(void)
{
	return hm__errbuf;
}

int hm__fail(int code, const char *fmt, ...)
{
	/* Formatted apart: an argument may be this thread's message itself. */
	char raw[HM__MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	hm__escape(hm__errbuf, sizeof hm__errbuf, raw, strlen(raw));
	return code;
}

void hm__log(const hm_loader *l, int level, const char *fmt, ...)
{
	char raw[HM__MSG_MAX + 128], buf[2 * sizeof raw];
	va_list ap;

	if (!l->log)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	hm__escape(buf, sizeof buf, raw, strlen(raw));
	l->log(l->log_arg, level, buf);
}

unsigned hm_version(void)
{
	return HM_VERSION_HEX;
}

#define HM__STR2(x) #x
#define HM__XSTR(x) HM__STR2(x)

const char *hm_version_string(void)
{
	return HM__XSTR(HM_VERSION_MAJOR) "." HM__XSTR(HM_VERSION_MINOR) "." HM__XSTR(
		HM_VERSION_PATCH);
}
