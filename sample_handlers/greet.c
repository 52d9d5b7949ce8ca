/* SPDX-License-Identifier: MIT */
/*
 * greet: says hello to ?name=, or to the name a redirecting handler
 * attached to the request (see redirect.c).
 */
#include <hotmod_http.h>

static int handle(hm_ctx *ctx)
{
	hm_http *r = hm_ctx_request(ctx);
	const char *name = hm_http_get(r, "greet.name");
	const char *from = hm_http_get(r, "greet.from");

	if (!name)
		name = hm_http_query(r, "name");
	if (hm_http_printf(r, "Hello, %s!", name ? name : "world") < 0)
		return -1;
	if (from && hm_http_printf(r, " (redirected from %s)", from) < 0)
		return -1;
	return hm_http_puts(r, "\n");
}

HM_MODULE(.handle = handle, .request_kind = HM_HTTP_KIND);
