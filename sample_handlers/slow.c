/* SPDX-License-Identifier: MIT */
/*
 * slow: answers after ?ms=N milliseconds (default 1000, at most 60000), to
 * watch a request finish on the version it started on while a new one is
 * dropped in.  No lock is held while a handler runs, so other requests,
 * and the reload, go on meanwhile.
 */
#include <hotmod_http.h>
#include <stdlib.h>
#include <time.h>

static int handle(hm_ctx *ctx)
{
	hm_http *r = hm_ctx_request(ctx);
	const char *arg = hm_http_query(r, "ms");
	long ms = arg ? strtol(arg, NULL, 10) : 1000;

	if (ms < 0 || ms > 60000) {
		hm_http_set_status(r, 400);
		return hm_http_puts(r, "ms: 0 to 60000\n");
	}
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
	return hm_http_printf(r, "slow version %llu: slept %ld ms\n",
		(unsigned long long)hm_ctx_version(ctx), ms);
}

HM_MODULE(.handle = handle, .request_kind = HM_HTTP_KIND);
