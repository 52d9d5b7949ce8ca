/* SPDX-License-Identifier: MIT */
/*
 * clock.c - the loader's two clocks, both CLOCK_MONOTONIC: a coarse one
 * cheap enough for every request's "is a stat check due", and a fine one
 * for deadlines, delays and load timings.
 */
#include "common.h"

#include <time.h>
#include "fault.h" /* last: see fault.h */

/* A clock that cannot be read (never, for these clocks, but for fault
 * injection) reads 0 on the request path: a time long past, so no check
 * is due; never garbage. */
int64_t hm__now_coarse(void)
{
	struct timespec ts = {0, 0};

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Elsewhere it reads as the last time read: time seems to stand still,
 * so that no deadline (the probe's) runs out because of it. */
static atomic_llong hm__last_now;

int64_t hm__now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return atomic_load_explicit(&hm__last_now, memory_order_relaxed);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	atomic_store_explicit(&hm__last_now, now, memory_order_relaxed);
	return now;
}
