/* SPDX-License-Identifier: MIT */
/*
 * pinned.cpp - a C++ module that dlclose() cannot unload.  Its handler
 * touches a thread_local with a destructor; glibc registers that destructor
 * for the calling thread (__cxa_thread_atexit_impl) and keeps the object
 * loaded while that thread lives (LINUX-NOTES.md, "dlclose does not always
 * unload").  The benchmark calls it from a thread that outlives every
 * version: each version stays mapped, and the loader must say so (pinned).
 *
 * Built with -fno-gnu-unique, and everything but the descriptor in an
 * anonymous namespace: no STB_GNU_UNIQUE symbol, so the thread_local is the
 * only reason it stays.
 */
#include <hotmod_module.h>

#ifndef BM_VARIANT
#define BM_VARIANT 1
#endif

namespace {

volatile unsigned long bm_destroyed;

struct tracker {
	unsigned long calls = 0;
	~tracker() { bm_destroyed = bm_destroyed + calls; }
};

thread_local tracker bm_tracker;

int handle(hm_ctx *)
{
	bm_tracker.calls++;
	return BM_VARIANT;
}

} // namespace

HM_MODULE(.handle = handle);
