/* SPDX-License-Identifier: MIT */
/*
 * global.c - a directory's global module and the modules bound to it.
 *
 * A module entry knows its global's key (built once, when the entry is
 * made: table.c) and finds the global's entry by it, created when its file
 * exists.  A module's version is bound to the global version current when
 * it loaded, and follows a new one: a look at a global that loads a new
 * version rebinds its directory's modules (hm__rebind_dir, from
 * hm__entry_look), and a module that finds, after publishing, that its
 * global moved on during its load loads again (hm__rebind_if_stale).  A
 * module being written is not rebound: its writer's end brings its look.
 */
#include "loader.h"
#include "pending.h"

#include <string.h>
#include "fault.h" /* last: see fault.h */

int hm__global_entry(struct hm__entry *e, struct hm__entry **out)
{
	hm_loader *l = e->loader;
	struct hm__fileid id;
	int rc;

	*out = NULL;
	if (e->is_global)
		return 0;
	/* Every entry's key passed the rule, so its global's fits; if it did
	 * not, the module fails to load, with the reason. */
	if (e->global_len < 0)
		return hm__fail(HM_EBADPATH, "%s: its global module's key: %s", e->key,
			hm__name_why(e->global_len));
	if ((*out = hm__table_get_key(l, e->global_key, (size_t)e->global_len)) != NULL)
		return 0;
	/* Entries only for files that exist: hostile names cannot grow the table. */
	if ((rc = hm__stat_key(l, e->global_key, &id)) < 0)
		return rc == HM_ENOENT ? 0 : rc;
	return hm__table_insert(l, e->global_key, (size_t)e->global_len, true, out);
}

/*
 * A reference to the current version of e's directory's global, or NULL;
 * retry: load it even if its failure is remembered (hm_refresh).  *gid: the
 * file it holds the bytes of (the entry's, which "content unchanged" keeps
 * up to date after a touch, else the version's own).
 */
int hm__global_get(struct hm__entry *e, struct hm__version **g, struct hm__fileid *gid,
	bool retry)
{
	struct hm__entry *ge;
	int rc;

	*g = NULL;
	if ((rc = hm__global_entry(e, &ge)) < 0 || !ge)
		return rc;
	rc = hm__entry_get(ge, g, retry);
	if (rc == 0) {
		pthread_mutex_lock(&ge->lock);
		*gid = ge->has_id && atomic_load_explicit(&ge->current, memory_order_relaxed) == *g ?
			ge->id : (*g)->id;
		pthread_mutex_unlock(&ge->lock);
	}
	hm__entry_release(ge);
	/* removed since: no global (a held entry is never unlinked: no DEAD) */
	if (rc == HM_ENOENT || rc == HM__DEAD)
		return 0;
	if (rc < 0 && rc != HM_EDEADLK && rc != HM_ECLOSED)
		return hm__fail_prefix(HM_EGLOBAL, "%s: global module", e->key);
	return rc;
}

/*
 * The file's directory holds another global module than the one its load
 * got (HM__GLOBAL_MOVED: a release link switched, a global appeared or
 * went): look at the global now, so that the next try binds to it.
 */
void hm__global_moved(struct hm__entry *e, int flags)
{
	struct hm__entry *ge;

	if (hm__global_entry(e, &ge) == 0 && ge) {
		/* Its other modules follow it too, at a pending look (not
		 * now: this thread is in the middle of e's load): the look at
		 * its file that the watcher may have made already found the
		 * old version still current, and rebound nobody. */
		if (hm__entry_refresh(ge, HM__R_NOW | (flags & HM__R_RETRY)) == HM__LOADED)
			hm__pending_later(e->loader, ge->key,
				HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
		hm__entry_release(ge);
	}
}

/*
 * After a load published a module: is the global it bound still its
 * directory's current one?  A global replaced during the load rebinds its
 * modules, but skips one that is still loading; then this check, which
 * comes after the publication, sees the new global and the caller reloads.
 */
bool hm__binding_stale(struct hm__entry *e)
{
	struct hm__entry *ge = NULL;
	struct hm__version *cur, *g;
	bool stale;

	if (e->is_global || hm__global_entry(e, &ge) < 0)
		return false;
	g = ge ? atomic_load_explicit(&ge->current, memory_order_acquire) : NULL;
	hm__entry_release(ge); /* g is compared, not used */
	pthread_mutex_lock(&e->lock);
	cur = atomic_load_explicit(&e->current, memory_order_relaxed);
	stale = cur && g && cur->global != g; /* a removed global: its own look */
	pthread_mutex_unlock(&e->lock);
	return stale;
}

void hm__rebind_if_stale(struct hm__entry *e)
{
	for (int tries = 0; tries < 3 && hm__binding_stale(e); tries++)
		(void)hm__entry_refresh(e, HM__R_NOW | HM__R_SETTLE);
}

struct hm__rebind {
	const char *dir;
	size_t dir_len;
};

/* hm__table_each callback: modules of a directory whose global changed. */
static void hm__rebind_one(struct hm__entry *e, void *arg)
{
	const struct hm__rebind *r = arg;

	/* A module being written is rebound by the look its writer's end
	 * brings: looking now would see half a file. */
	if (!e->is_global && e->dir_len == r->dir_len &&
	    memcmp(e->key, r->dir, r->dir_len) == 0 &&
	    atomic_load_explicit(&e->current, memory_order_acquire) &&
	    !hm__pending_busy(e->loader, e->key))
		hm__entry_look(e, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

void hm__rebind_dir(hm_loader *l, const char *dir, size_t dir_len)
{
	struct hm__rebind r = {.dir = dir, .dir_len = dir_len};

	hm__table_each(l, hm__rebind_one, &r);
}
