/* SPDX-License-Identifier: MIT */
/*
 * bm.c - the module every benchmark serves, to hotmod and to the baselines
 * alike.  Built as (see the benchmark section of Makefile.am):
 *
 *	empty_a, empty_b  the handler returns at once
 *	work_a, work_b    the handler does about 1 us of arithmetic (BM_WORK)
 *
 * The _a and _b builds differ in their bytes (BM_VARIANT), so alternating
 * them makes a loader load a new version every time, and all are padded to
 * about 20 KB, the size of a small real handler.  The handler never looks
 * at its context: the baselines call it with NULL.
 */
#include <hotmod_module.h>

#include <stdint.h>
#include <stdlib.h>

#ifndef BM_VARIANT
#define BM_VARIANT 1
#endif

/* Read-only padding to about 20 KB of file, different in each variant. */
#define BM_PAD 4500
__attribute__((used)) static const unsigned char bm_pad[BM_PAD] = {
	[0] = BM_VARIANT, [BM_PAD - 1] = BM_VARIANT};

#ifdef BM_WORK
/*
 * Loop count of the work handler.  The benchmark calibrates it to about
 * 1 us and exports HOTMOD_BENCH_WORK_ITERS before loading anything, so
 * that every copy and every version does the same work.
 */
extern unsigned bm_work_iters;
unsigned bm_work_iters = 1000;

__attribute__((constructor)) static void bm_work_setup(void)
{
	const char *s = getenv("HOTMOD_BENCH_WORK_ITERS");

	if (s && *s)
		bm_work_iters = (unsigned)strtoul(s, NULL, 10);
}

static int handle(hm_ctx *ctx)
{
	uint64_t x = (uintptr_t)ctx | 1;

	/* A dependent chain of multiply-adds the compiler may not drop. */
	for (unsigned i = bm_work_iters; i > 0; i--) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x));
	}
	return BM_VARIANT;
}
#else
static int handle(hm_ctx *ctx)
{
	(void)ctx;
	return BM_VARIANT;
}
#endif

HM_MODULE(.handle = handle);
