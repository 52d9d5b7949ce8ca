/* SPDX-License-Identifier: MIT */
/*
 * redirect: an internal redirect.  The handler attaches data to the request
 * and dispatches another path on the same thread; that handler reads the
 * data from the very same request object, and its answer is this one's.
 */
#include <hotmod_http.h>

static int handle(hm_ctx *ctx)
{
	hm_http *r = hm_ctx_request(ctx);
	const char *name = hm_http_query(r, "name");

	/* Both strings outlive the nested call: that is all they must do. */
	if (hm_http_set(r, "greet.name", (void *)(name ? name : "redirected visitor")) < 0 ||
	    hm_http_set(r, "greet.from", (void *)hm_http_path(r)) < 0)
		return -1;
	return hm_ctx_dispatch(ctx, "greet");
}

HM_MODULE(.handle = handle, .request_kind = HM_HTTP_KIND);
