/* SPDX-License-Identifier: MIT */
/*
 * miss.c - the request path's slow parts (request.c has the fast path):
 * a name the cache does not have yet, an entry with no current version, a
 * stat check that is due (stat mode); and hm_refresh().
 *
 * Out of request.c so that none of it is inlined into hm_dispatch().
 */
#include "loader.h"

#include <string.h>
#include "fault.h" /* last: see fault.h */

/*
 * Slow paths count themselves in l->busy, so that hm_close() does not free
 * the loader under a thread that is loading with no reference held yet.
 */
static void hm__busy_enter(hm_loader *l)
{
	atomic_fetch_add_explicit(&l->busy, 1, memory_order_relaxed);
}

static void hm__busy_leave(hm_loader *l)
{
	/*
	 * seq_cst, paired with hm_close()'s seq_cst store of closing and load
	 * of busy: either this thread sees closing and wakes close, or close
	 * sees busy already dropped.  Never neither.
	 */
	if (atomic_fetch_sub(&l->busy, 1) == 1 && atomic_load(&l->closing)) {
		pthread_mutex_lock(&l->ver_lock);
		pthread_cond_broadcast(&l->ver_cond);
		pthread_mutex_unlock(&l->ver_lock);
	}
}

/* e: held by the caller, released here; or NULL. */
static int hm__get_slow(hm_loader *l, const char *path, size_t len,
	struct hm__entry *e, hm_module **out, bool force)
{
	char key[HM__KEY_MAX + 1];
	struct hm__fileid id;
	int rc;

	if (e && e->is_global) { /* refused as a path, below */
		hm__entry_release(e);
		e = NULL;
	}
	for (;;) {
		if (atomic_load_explicit(&l->closing, memory_order_relaxed)) {
			rc = hm__fail(HM_ECLOSED, "%.*s: loader is closing",
				(int)(len < 64 ? len : 64), path);
			break;
		}
		if (!e) {
			if ((rc = hm__path_check(path, len, l->global_name)) < 0)
				return rc;
			if (hm__path_key(key, sizeof key, path, len) < 0) /* cannot be: checked */
				return hm__fail(HM_EBADPATH, "module path: too long");
			/* Entries only for files that exist: hostile names cannot
			 * grow the table (and those of files that went are freed
			 * by the sweeper, sweeper.c). */
			if ((rc = hm__stat_key(l, key, &id)) < 0)
				return rc == HM_ENOENT ? hm__no_file(l, key) : rc;
			if ((rc = hm__table_insert(l, key, len + 3, false, &e)) < 0)
				return rc;
		}
		rc = hm__entry_get(e, out, force);
		hm__entry_release(e);
		e = NULL;
		if (rc != HM__DEAD) /* unlinked since it was found: again */
			return rc;
	}
	hm__entry_release(e);
	return rc;
}

/* The request path's stat check (e held).  Its failure is logged, not
 * returned: the current version serves; so keep this thread's message as
 * it was. */
void hm__check_on_request(struct hm__entry *e)
{
	struct hm__err saved;

	hm__err_save(&saved);
	hm__busy_enter(e->loader);
	(void)hm__entry_refresh(e, HM__R_GRACE);
	hm__busy_leave(e->loader);
	hm__err_restore(&saved);
}

int hm__get_miss(hm_loader *l, const char *path, size_t len, struct hm__entry *e,
	bool check, struct hm__version **out)
{
	hm__busy_enter(l);
	if (e && check)
		hm__check_on_request(e);
	int rc = hm__get_slow(l, path, len, e, out, false);
	hm__busy_leave(l);
	return rc;
}

int hm_refresh(hm_loader *l, const char *path)
{
	struct hm__entry *e;
	hm_module *v;
	size_t len;
	int rc;

	if ((rc = hm__api_check(l, path, path, "hm_refresh", false)) != 0)
		return rc;
	if (*path == '/')
		path++;
	len = strlen(path);
	hm__busy_enter(l);
	e = hm__table_get(l, path, len, true);
	if (!e || e->is_global || !atomic_load_explicit(&e->current, memory_order_acquire)) {
		/* Not loaded yet: loading it, even after a failure, is the refresh. */
		rc = hm__get_slow(l, path, len, e, &v, true);
		if (rc == 0) {
			hm_put(v);
			rc = 1;
		}
	} else {
		rc = hm__entry_refresh(e, HM__R_NOW | HM__R_RETRY);
		hm__entry_release(e);
		/* 1: loaded; HM__MISSING cannot come without HM__R_GRACE */
		if (rc > 0)
			rc = rc == HM__LOADED;
	}
	hm__busy_leave(l);
	return rc;
}

int hm_readmit(hm_loader *l, const char *file)
{
	struct hm__entry *e;
	int rc;

	if ((rc = hm__api_check(l, file, file, "hm_readmit", false)) != 0)
		return rc;
	hm__busy_enter(l);
	/* A file the loader never looked at is asked about when it is. */
	if ((e = hm__table_get_key(l, file, strlen(file))) != NULL) {
		rc = hm__entry_look(e, HM__R_NOW | HM__R_RETRY | HM__R_READMIT);
		hm__entry_release(e);
		if (rc > 0)
			rc = rc == HM__LOADED;
	}
	hm__busy_leave(l);
	return rc;
}
