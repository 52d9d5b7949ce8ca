/* SPDX-License-Identifier: MIT */
/* A module built against the installed headers: writes to a FILE *. */
#include <hotmod_module.h>
#include <stdio.h>

static int handle(hm_ctx *ctx)
{
	return fputs("Hello from hotmod!\n", hm_ctx_request(ctx)) < 0 ? -1 : 0;
}
HM_MODULE(.handle = handle, .request_kind = "example-stdio/1");
