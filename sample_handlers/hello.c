/* SPDX-License-Identifier: MIT */
/* hello: the smallest module.  Change the greeting, rebuild, and watch. */
#include <hotmod_http.h>

static int handle(hm_ctx *ctx)
{
	return hm_http_puts(hm_ctx_request(ctx), "Hello from hotmod!\n");
}
HM_MODULE(.handle = handle, .request_kind = HM_HTTP_KIND);
