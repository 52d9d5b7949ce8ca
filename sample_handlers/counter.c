/* SPDX-License-Identifier: MIT */
/*
 * counter: state that survives reloads.  init adopts the previous version's
 * counter if there is one (hm_ctx_adopt), else makes a new one; fini frees
 * it only if no newer version adopted it.  Requests on the old and the new
 * version may count at the same time, so the counter is atomic.
 */
#include <hotmod_http.h>
#include <stdatomic.h>
#include <stdlib.h>

static int init(hm_ctx *ctx)
{
	if (hm_ctx_adopt(ctx))
		return 0; /* keep counting where the previous version was */
	atomic_ulong *count = calloc(1, sizeof *count);
	if (!count)
		return -1;
	hm_ctx_set_state(ctx, count);
	return 0;
}

static void fini(hm_ctx *ctx)
{
	if (!hm_ctx_adopted(ctx))
		free(hm_ctx_state(ctx));
}

static int handle(hm_ctx *ctx)
{
	atomic_ulong *count = hm_ctx_state(ctx);
	unsigned long n = atomic_fetch_add(count, 1) + 1;

	return hm_http_printf(hm_ctx_request(ctx), "counter version %llu: request %lu\n",
		(unsigned long long)hm_ctx_version(ctx), n);
}

HM_MODULE(.init = init, .fini = fini, .handle = handle, .request_kind = HM_HTTP_KIND);
