/* SPDX-License-Identifier: MIT */
/*
 * array.c - growing the library's arrays (common.h: HM__GROW).
 */
#include "common.h"

#include <stdlib.h>
#include "fault.h" /* last: see fault.h */

bool hm__grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, ncap * size);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}
