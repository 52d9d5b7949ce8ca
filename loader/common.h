/* SPDX-License-Identifier: MIT */
/*
 * common.h - what every file of libhotmod includes: the public headers, the
 * internal attributes, errors and logging (error.c), the clocks (clock.c)
 * and growing arrays (array.c).  Internal names use the hm__ prefix; private headers
 * are never installed, and each says what its locks protect and why each
 * atomic is ordered as it is.  docs/DESIGN.md has the picture and the map.
 */
#ifndef HOTMOD_COMMON_H
#define HOTMOD_COMMON_H

#include "config.h"

#define HM_BUILDING_LIBRARY 1
#include "hotmod.h"
#include "hotmod_module.h"
#include "names.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define HM__HIDDEN __attribute__((visibility("hidden")))
#define HM__PRINTF(f, a) __attribute__((format(printf, f, a)))

/* The longest message hm_errmsg() returns, with its NUL.  (The limits on
 * names and keys are in names.h.) */
#define HM__MSG_MAX 512

/* ---- errors and logging (error.c) ---------------------------------------- */

/*
 * This thread's last error: the code the failing call returned, the errno
 * of the system call behind it (hm_os_errno(); 0: none) and the escaped
 * message (hm_errmsg()).
 */
struct hm__err {
	int code;
	int sys;
	char msg[HM__MSG_MAX];
};

/* Set this thread's hm_errmsg() text (hm_os_errno() 0) and return code. */
HM__HIDDEN int hm__fail(int code, const char *fmt, ...) HM__PRINTF(2, 3);
/* The same for a failed system call whose errno was err: hm_os_errno() is err
 * and ": strerror(err)" ends the message.  Save errno before any call that
 * may change it. */
HM__HIDDEN int hm__fail_errno(int err, int code, const char *fmt, ...) HM__PRINTF(3, 4);
/* Wrap this thread's error in another: "<fmt's text>: <the message>", with
 * code, keeping its errno. */
HM__HIDDEN int hm__fail_prefix(int code, const char *fmt, ...) HM__PRINTF(2, 3);
/* Keep this thread's error across work that may replace it, and put it back
 * (whole: code, errno and message); restore returns the saved code. */
HM__HIDDEN void hm__err_save(struct hm__err *s);
HM__HIDDEN int hm__err_restore(const struct hm__err *s);
HM__HIDDEN void hm__log(const hm_loader *l, int level, const char *fmt, ...)
	HM__PRINTF(3, 4);
/* Copy of this thread's message, for storing with an entry. */
HM__HIDDEN const char *hm__msg(void);
/* Is rc a failure the file itself causes (the same bytes fail the same
 * way, so the file is not loaded again until it changes)? */
HM__HIDDEN bool hm__err_of_file(int rc);

/*
 * What the cache's functions, and those they call, return when they do not
 * fail (a failure is an HM_E* code, < 0): 0, or one of these.  One enum, so
 * that no two of them share a number.
 */
enum hm__result {
	HM__LOADED = 1,   /* a new version became current */
	HM__SAME,         /* hm__version_load: the file holds prev's bytes */
	HM__MISSING,      /* gone, within its grace (HM__R_GRACE): look later */
	HM__UNSETTLED,    /* (HM__R_SETTLE) maybe still being written: look later */
	HM__DEAD,         /* hm__entry_get: e was unlinked since it was found:
			     look the name up again */
	HM__GLOBAL_MOVED, /* hm__copy_module, hm__version_load: the directory's
			     global module is not the one given */
};

/* ---- clocks (clock.c) ------------------------------------------------------ */

/* CLOCK_MONOTONIC_COARSE, ns: cheap enough for every request. */
HM__HIDDEN int64_t hm__now_coarse(void);
/* CLOCK_MONOTONIC, ns. */
HM__HIDDEN int64_t hm__now(void);

/* ---- growing arrays ---------------------------------------------------------- */

/*
 * Make room for one more element in the array *arr of *cap elements, n of
 * them used: doubled when full (16 first).  false, with *arr unchanged,
 * when memory runs out.  Out of line so that fault injection reaches its
 * realloc (array.c).
 */
HM__HIDDEN bool hm__grow(void **arr, size_t *cap, size_t n, size_t size);
#define HM__GROW(arr, cap, n) hm__grow((void **)&(arr), &(cap), (n), sizeof *(arr))

#endif /* HOTMOD_COMMON_H */
