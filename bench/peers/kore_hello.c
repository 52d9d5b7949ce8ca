/* SPDX-License-Identifier: MIT */
/*
 * kore_hello.c - sample_handlers/hello.c's answer as a Kore 4 page, for
 * bench/run.sh's comparison with Debian's kore: the same bytes, the same
 * Content-Type, the handler run on the worker's event loop as Kore does.
 */
#include <kore/kore.h>
#include <kore/http.h>

int hello(struct http_request *req);

int hello(struct http_request *req)
{
	static const char body[] = "Hello from hotmod!\n";

	http_response_header(req, "content-type", "text/plain; charset=utf-8");
	http_response(req, 200, body, sizeof body - 1);
	return KORE_RESULT_OK;
}
