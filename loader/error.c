/* SPDX-License-Identifier: MIT */
/*
 * error.c - error codes and their names, the per-thread last error, and
 * the log (the embedder's callback; the library never prints).
 *
 * The last error is {code, errno, message}: hm_errmsg() reads the message,
 * hm_os_errno() the errno of the system call behind it (0 when none was), so
 * that an embedder can branch on ENOSPC or EMFILE without parsing text.
 * hm__fail() sets all three (errno 0), hm__fail_errno() records the errno
 * and appends its strerror() text.  A caller that must not disturb the
 * error (it recovered, or it cleans up after a failure and may fail again)
 * brackets the work with hm__err_save() and hm__err_restore().
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

/* Thread-local so that concurrent requests never see each other's error.
 * The code is kept for hm__err_save(); the API returns it, never reads it. */
static __thread struct hm__err hm__last;

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
	case HM_EKIND:
	case HM_EREFUSED: /* its content: refused again until it changes */
		return true;
	default:
		return false;
	}
}

const char *hm_errmsg(void)
{
	return hm__last.msg[0] ? hm__last.msg : "no error";
}

int hm_os_errno(void)
{
	return hm__last.sys;
}

const char *hm__msg(void)
{
	return hm__last.msg;
}

/*
 * Set the last error from raw, which has room for HM__MSG_MAX bytes and
 * holds fmt's text: ": suffix" is appended when suffix is not NULL.  The
 * text is formatted apart, not in the buffer: an argument may be this
 * thread's message itself.
 */
static int hm__set(int code, int sys, char *raw, const char *suffix)
{
	size_t n = strlen(raw);

	if (suffix && n < HM__MSG_MAX)
		snprintf(raw + n, HM__MSG_MAX - n, ": %s", suffix);
	hm__escape(hm__last.msg, sizeof hm__last.msg, raw, strlen(raw));
	hm__last.code = code;
	hm__last.sys = sys;
	return code;
}

int hm__fail(int code, const char *fmt, ...)
{
	char raw[HM__MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	return hm__set(code, 0, raw, NULL);
}

int hm__fail_errno(int err, int code, const char *fmt, ...)
{
	char raw[HM__MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	return hm__set(code, err, raw, strerror(err));
}

int hm__fail_prefix(int code, const char *fmt, ...)
{
	char raw[HM__MSG_MAX], why[HM__MSG_MAX];
	va_list ap;

	/* The message was escaped once; escaping again changes nothing. */
	snprintf(why, sizeof why, "%s", hm__last.msg);
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	return hm__set(code, hm__last.sys, raw, why);
}

void hm__err_save(struct hm__err *s)
{
	*s = hm__last;
}

int hm__err_restore(const struct hm__err *s)
{
	hm__last = *s;
	return s->code;
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
