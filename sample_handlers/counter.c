/*
 * counter: per-version state.  init allocates a counter shared by every
 * request on this version, from any thread, so it is atomic; fini frees it.
 */
#include <hotmod_module.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int init(hm_ctx *ctx)
{
	atomic_ulong *count = calloc(1, sizeof *count);

	if (!count)
		return -1;
	hm_ctx_set_state(ctx, count);
	return 0;
}

static void fini(hm_ctx *ctx)
{
	free(hm_ctx_state(ctx));
}

static int handle(hm_ctx *ctx)
{
	atomic_ulong *count = hm_ctx_state(ctx);
	unsigned long n = atomic_fetch_add(count, 1) + 1;

	return fprintf(hm_ctx_request(ctx), "counter version %llu: request %lu\n",
		       (unsigned long long)hm_ctx_version(ctx), n) < 0 ? -1 : 0;
}

HM_MODULE(.init = init, .fini = fini, .handle = handle);
