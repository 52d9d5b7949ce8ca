/* SPDX-License-Identifier: MIT */
/*
 * health: a module with no handler.  The loader then serves /app/health
 * with the handle hook of the directory's global module (_global.c), its
 * default handler, which reports on the connection pool.  The chain is
 * the usual one: the global prepare still hands that handler a connection
 * in a transaction, and hm_ctx_path() says "app/health.so".
 *
 * A module like this one is a way to give the global module a URL: it
 * could also have init, prepare or commit hooks of its own, but needs none.
 */
#include <hotmod_http.h>

HM_MODULE(.request_kind = HM_HTTP_KIND);
