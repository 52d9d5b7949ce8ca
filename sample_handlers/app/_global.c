/* SPDX-License-Identifier: MIT */
/*
 * _global: the app directory's global module.  It owns a pool of SQLite
 * connections and gives every request of every module in the directory
 * one of them, inside a transaction:
 *
 *	prepare   check a connection out, BEGIN, put it in the global slot
 *	(handler) the module's, which finds it with app_db(ctx), see app.h
 *	commit    COMMIT, if every hook so far succeeded
 *	rollback  ROLLBACK, if anything failed: the handler's writes vanish
 *	release   give the connection back to the pool
 *
 * The pool is this version's state, and a new version of this file adopts
 * it (hm_ctx_adopt), so a deploy neither closes nor reopens connections.
 * Its handle hook is the directory's default handler: it serves the
 * modules that have none, such as health.so.
 *
 * The database is $HOTMOD_NOTES_DB, default notes.db in the server's
 * working directory.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock */

#include "app.h"

#include <hotmod_http.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_SIZE 4
#define WAIT_S 5       /* for a free connection; then the request fails */
#define BUSY_MS 5000   /* for another connection's write lock */
#define SAVEPOINT "app_nested"

struct app_conn {
	sqlite3 *db;
	struct app_conn *next; /* in the idle list */
};

/*
 * Used by every request thread at once, and by two versions' code while a
 * new version takes over: all that changes is under mu.
 */
struct app_pool {
	struct app_tag tag; /* first, so that a newer version can check it */
	pthread_mutex_t mu;
	pthread_cond_t freed; /* a connection came back; CLOCK_MONOTONIC */
	struct app_conn *idle;
	unsigned nidle;
	struct app_conn conns[POOL_SIZE];
};

__attribute__((format(printf, 1, 2))) static void app_log(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "app/_global.so: %s\n", msg); /* one line, one write */
}

static int exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK)
		app_log("%s: %s", sql, err ? err : sqlite3_errstr(rc));
	sqlite3_free(err);
	return rc == SQLITE_OK ? 0 : -1;
}

/* ---- the pool ------------------------------------------------------------ */

/* WAL: readers never block the writer, nor it them. */
static int set_wal(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode = NULL;
	int ok;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		mode = sqlite3_column_text(st, 0);
	/* The pragma answers the mode it got: "memory" for ":memory:". */
	ok = mode && sqlite3_stricmp((const char *)mode, "wal") == 0;
	if (!ok)
		app_log("PRAGMA journal_mode=WAL: %s", mode ? (const char *)mode : sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

static sqlite3 *conn_open(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	/* Writers wait for each other's lock rather than fail at once. */
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, BUSY_MS);
	if (rc != SQLITE_OK)
		app_log("%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	if (rc != SQLITE_OK || set_wal(db) < 0) {
		sqlite3_close(db); /* open makes a handle even when it fails */
		return NULL;
	}
	return db;
}

/* The condition variable times out on the monotonic clock: no jumps. */
static int sync_init(struct app_pool *pool)
{
	pthread_condattr_t attr;
	int ok;

	if (pthread_condattr_init(&attr) != 0)
		return -1;
	ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
	     pthread_cond_init(&pool->freed, &attr) == 0;
	pthread_condattr_destroy(&attr);
	if (!ok)
		return -1;
	if (pthread_mutex_init(&pool->mu, NULL) != 0) {
		pthread_cond_destroy(&pool->freed);
		return -1;
	}
	return 0;
}

/* Also for a pool that pool_open() built only in part. */
static void pool_close(struct app_pool *pool)
{
	for (int i = 0; i < POOL_SIZE; i++) {
		int rc = sqlite3_close(pool->conns[i].db); /* NULL: no-op */
		if (rc != SQLITE_OK)
			app_log("closing connection %d: %s", i, sqlite3_errstr(rc));
	}
	pthread_cond_destroy(&pool->freed);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

static struct app_pool *pool_open(const char *path)
{
	struct app_pool *pool;

	if (!sqlite3_threadsafe()) {
		app_log("this SQLite is built without threads: no pool");
		return NULL;
	}
	if (!(pool = calloc(1, sizeof *pool)))
		return NULL;
	if (sync_init(pool) < 0) {
		free(pool);
		return NULL;
	}
	pool->tag = (struct app_tag){APP_MAGIC, APP_LAYOUT};
	for (int i = 0; i < POOL_SIZE; i++) {
		struct app_conn *c = &pool->conns[i];
		if (!(c->db = conn_open(path))) {
			pool_close(pool);
			return NULL;
		}
		c->next = pool->idle;
		pool->idle = c;
		pool->nidle++;
	}
	if (exec(pool->conns[0].db, "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, "
				    "text TEXT NOT NULL, created INTEGER NOT NULL)") < 0) {
		pool_close(pool);
		return NULL;
	}
	return pool;
}

/* Wait up to WAIT_S for an idle connection: a full pool is not an error yet. */
static struct app_conn *pool_take(struct app_pool *pool)
{
	struct timespec until;
	struct app_conn *c;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&pool->mu);
	while (!pool->idle && rc == 0)
		rc = pthread_cond_timedwait(&pool->freed, &pool->mu, &until);
	if ((c = pool->idle)) {
		pool->idle = c->next;
		pool->nidle--;
	}
	pthread_mutex_unlock(&pool->mu);
	if (!c)
		app_log("no free connection after %d s", WAIT_S);
	return c;
}

static void pool_give(struct app_pool *pool, struct app_conn *c)
{
	/* Never hand the next request a transaction that is still open. */
	if (!sqlite3_get_autocommit(c->db))
		exec(c->db, "ROLLBACK");
	pthread_mutex_lock(&pool->mu);
	c->next = pool->idle;
	pool->idle = c;
	pool->nidle++;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->mu);
}

static unsigned pool_idle(struct app_pool *pool)
{
	unsigned n;

	pthread_mutex_lock(&pool->mu);
	n = pool->nidle;
	pthread_mutex_unlock(&pool->mu);
	return n;
}

/* ---- load and unload ------------------------------------------------------ */

static const char *db_path(void)
{
	const char *path = getenv("HOTMOD_NOTES_DB");

	return path && *path ? path : "notes.db";
}

/*
 * Adopt the previous version's pool if it has our layout: every version of
 * this file stores a state that starts with struct app_tag.  A pool of
 * another layout stays with its version, whose fini closes it once its last
 * request is done; meanwhile both pools work on the same file.
 */
static int init(hm_ctx *ctx)
{
	void *prev = hm_ctx_prev_state(ctx);
	struct app_pool *pool;

	if (app_tag_ok(prev)) {
		hm_ctx_adopt(ctx);
		return 0;
	}
	if (prev)
		app_log("the previous version's pool has another layout: opening a new one");
	if (!(pool = pool_open(db_path())))
		return -1;
	hm_ctx_set_state(ctx, pool);
	return 0;
}

static void fini(hm_ctx *ctx)
{
	if (!hm_ctx_adopted(ctx))
		pool_close(hm_ctx_state(ctx));
}

/* ---- around each request ---------------------------------------------------- */

/*
 * An internal redirect (hm_ctx_dispatch) runs this chain again, nested on
 * the same thread, while the outer call holds its connection in its
 * transaction.  A second connection would deadlock on the outer's write
 * lock, or on an empty pool: borrow the outer's instead.  What decides is
 * the pool, not only the version number: numbers are per file, so a call
 * of another directory may have the same one, while an outer call still
 * on the version we adopted from uses this very pool (and, by its tag, our
 * struct app_req).  The same version always has the same pool.
 */
static struct app_req *outer_req(hm_ctx *ctx)
{
	hm_ctx *outer = hm_ctx_outer(ctx);

	if (!outer || hm_ctx_global_state(outer) != hm_ctx_global_state(ctx))
		return NULL;
	return *hm_ctx_slot(outer, HM_LAYER_GLOBAL); /* NULL in init: none */
}

/* Readers take the lock when they first read; writers queue for it now,
 * rather than fail to upgrade a read lock that another writer outran. */
static int is_read(hm_ctx *ctx)
{
	const char *m = hm_http_method(hm_ctx_request(ctx));

	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS");
}

static int begin(hm_ctx *ctx, struct app_req *req)
{
	struct app_pool *pool = hm_ctx_global_state(ctx);

	if (!(req->conn = pool_take(pool)))
		return -1;
	req->db = req->conn->db;
	if (exec(req->db, is_read(ctx) ? "BEGIN" : "BEGIN IMMEDIATE") < 0) {
		pool_give(pool, req->conn); /* not entered: nothing else will */
		return -1;
	}
	return 0;
}

/*
 * The outer call commits or rolls back the transaction and gives the
 * connection back; a savepoint still lets this call's failure undo its
 * own writes only.  The transaction is the outer's kind: a POST nested
 * in a GET upgrades a read transaction, which fails (SQLITE_BUSY) if
 * another writer committed since it began.
 */
static int begin_nested(struct app_req *req, const struct app_req *outer)
{
	req->db = outer->db; /* req->conn stays NULL: not ours to give back */
	return exec(req->db, "SAVEPOINT " SAVEPOINT);
}

static void undo(const struct app_req *req)
{
	/* SQLite ends the transaction itself after some errors. */
	if (sqlite3_get_autocommit(req->db))
		return;
	exec(req->db, req->conn ? "ROLLBACK" : "ROLLBACK TO " SAVEPOINT "; RELEASE " SAVEPOINT);
}

static int prepare(hm_ctx *ctx)
{
	struct app_req *outer = outer_req(ctx);
	struct app_req *req = calloc(1, sizeof *req);

	if (!req)
		return -1;
	if ((outer ? begin_nested(req, outer) : begin(ctx, req)) < 0) {
		free(req);
		return -1;
	}
	*hm_ctx_slot(ctx, HM_LAYER_GLOBAL) = req;
	return 0;
}

static int commit(hm_ctx *ctx)
{
	const struct app_req *req = *hm_ctx_slot(ctx, HM_LAYER_GLOBAL);

	if (exec(req->db, req->conn ? "COMMIT" : "RELEASE " SAVEPOINT) < 0) {
		undo(req); /* no rollback hook follows a failed commit */
		return -1;
	}
	return 0;
}

static void rollback(hm_ctx *ctx)
{
	undo(*hm_ctx_slot(ctx, HM_LAYER_GLOBAL));
}

static void release(hm_ctx *ctx)
{
	void **slot = hm_ctx_slot(ctx, HM_LAYER_GLOBAL);
	struct app_req *req = *slot;

	if (req->conn)
		pool_give(hm_ctx_global_state(ctx), req->conn);
	free(req);
	*slot = NULL; /* a call nested in a later hook must not borrow it */
}

/* ---- the default handler ---------------------------------------------------- */

static int count_notes(sqlite3 *db, sqlite3_int64 *n)
{
	sqlite3_stmt *st = NULL;
	int ok = sqlite3_prepare_v2(db, "SELECT count(*) FROM notes", -1, &st, NULL) == SQLITE_OK &&
		 sqlite3_step(st) == SQLITE_ROW;

	if (ok)
		*n = sqlite3_column_int64(st, 0);
	else
		app_log("counting notes: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

/* For modules without a handler, such as health.so: is the pool alive? */
static int handle(hm_ctx *ctx)
{
	struct app_pool *pool = hm_ctx_global_state(ctx);
	sqlite3_int64 n;

	if (count_notes(app_db(ctx), &n) < 0)
		return -1;
	return hm_http_printf(hm_ctx_request(ctx), "ok: %d connections, %u idle\n%lld notes\n",
		POOL_SIZE, pool_idle(pool), (long long)n);
}

HM_MODULE(.init = init, .fini = fini, .prepare = prepare, .handle = handle,
	.commit = commit, .rollback = rollback, .release = release,
	.request_kind = HM_HTTP_KIND);
