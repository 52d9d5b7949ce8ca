/* SPDX-License-Identifier: MIT */
/*
 * app.h - what the notes app's global module (_global.c) and its modules
 * (notes.c, health.c) share.
 *
 * _global.so owns a pool of SQLite connections.  For each request its
 * prepare hook checks one out, begins a transaction and puts a struct
 * app_req in the global slot; a module's handler gets the connection with
 * app_db(ctx) and just runs SQL: the global module commits when the
 * handler succeeds and rolls back when it fails (the seed's req.cursor).
 *
 * Everything here is shared by separately built .so files, and the pool by
 * successive versions of _global.so: change a struct below, bump
 * APP_LAYOUT, rebuild every module of the directory.  A version of
 * _global.so only adopts a pool with its own tag, and notes.so refuses to
 * load against a global module with another one.
 *
 * No <sqlite3.h> here: health.c does not need it.  struct sqlite3 is the
 * type sqlite3.h calls sqlite3.
 */
#ifndef APP_H
#define APP_H

#include <hotmod_module.h>
#include <stdint.h>

#define APP_MAGIC 0x65746f6eu /* "note" */
#define APP_LAYOUT 1u         /* of struct app_req and of _global.c's pool */

struct sqlite3;
struct app_conn; /* a pooled connection; _global.c's */

/* First member of the pool: what is checked before anything else is read. */
struct app_tag {
	uint32_t magic;  /* APP_MAGIC */
	uint32_t layout; /* APP_LAYOUT */
};

/* The value of the global slot, one per call. */
struct app_req {
	struct sqlite3 *db;    /* in a transaction for this call */
	struct app_conn *conn; /* checked out by this call; NULL when borrowed
				  from the outer call of a nested dispatch */
};

/* Is state (a global module's) a pool built from this very app.h? */
static inline int app_tag_ok(const void *state)
{
	const struct app_tag *t = state;

	return t && t->magic == APP_MAGIC && t->layout == APP_LAYOUT;
}

/* The request's connection, for a handler in the app directory. */
static inline struct sqlite3 *app_db(hm_ctx *ctx)
{
	const struct app_req *req = *hm_ctx_slot(ctx, HM_LAYER_GLOBAL);

	return req ? req->db : (struct sqlite3 *)0;
}

#endif /* APP_H */
