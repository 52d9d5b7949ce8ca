/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the counter behind fault.h.  Built only with
 * --enable-fault-injection; the three hm__fault_* functions are then the
 * only exports beyond the public API (tests/check-exports.sh knows).
 */
#include "common.h"

#ifdef HM_FAULT_INJECTION
#include <errno.h>
#include "fault.h" /* hm__fault()'s prototype */

/* Calls left before the one that fails; 0: disarmed.  Any thread may count.
 * With hm__sticky the count stays at 1 once there: every call fails. */
static atomic_long hm__countdown;
static atomic_bool hm__sticky;
static atomic_long hm__fired;

int hm__fault(int err)
{
	long n = atomic_load(&hm__countdown);

	for (;;) {
		if (n <= 0)
			return 0;
		if (n == 1 && atomic_load(&hm__sticky))
			break;
		if (atomic_compare_exchange_weak(&hm__countdown, &n, n - 1)) {
			if (n != 1)
				return 0;
			break;
		}
	}
	atomic_fetch_add(&hm__fired, 1);
	errno = err;
	return 1;
}

static void hm__fault_set(long n, bool sticky)
{
	atomic_store(&hm__countdown, 0);
	atomic_store(&hm__fired, 0);
	atomic_store(&hm__sticky, sticky);
	atomic_store(&hm__countdown, n);
}

/* Make the nth fallible call from now fail (0: none); clear the record. */
HM_EXTERN void hm__fault_arm(long n);
void hm__fault_arm(long n)
{
	hm__fault_set(n, false);
}

/* Make the nth fallible call from now and every one after it fail, until
 * the next hm__fault_arm(0); clear the record. */
HM_EXTERN void hm__fault_arm_from(long n);
void hm__fault_arm_from(long n)
{
	hm__fault_set(n, true);
}

/* How many injected failures happened since arming. */
HM_EXTERN long hm__fault_fired(void);
long hm__fault_fired(void)
{
	return atomic_load(&hm__fired);
}
#endif
