/*
 * fault.c - the counter behind fault.h.  Built only with
 * --enable-fault-injection; the two hm__fault_* functions are then the
 * only exports beyond the public API (tests/check-exports.sh knows).
 */
#include "internal.h"

#ifdef HM_FAULT_INJECTION
#include <errno.h>
#include "fault.h" /* hm__fault()'s prototype */

/* Calls left before the one that fails; 0: disarmed.  Any thread may count. */
static atomic_long hm__countdown;
static atomic_long hm__fired;

int hm__fault(int err)
{
	long n = atomic_load(&hm__countdown);

	while (n > 0 && !atomic_compare_exchange_weak(&hm__countdown, &n, n - 1))
		;
	if (n != 1)
		return 0;
	atomic_fetch_add(&hm__fired, 1);
	errno = err;
	return 1;
}

/* Make the nth fallible call from now fail (0: none); clear the record. */
HM_EXTERN void hm__fault_arm(long n);
void hm__fault_arm(long n)
{
	atomic_store(&hm__fired, 0);
	atomic_store(&hm__countdown, n);
}

/* How many injected failures happened since hm__fault_arm(). */
HM_EXTERN long hm__fault_fired(void);
long hm__fault_fired(void)
{
	return atomic_load(&hm__fired);
}
#endif
