/* SPDX-License-Identifier: MIT */
/*
 * entry.c - the second level of the cache: one entry per file, its lock,
 * and the rules for loading and replacing its current version.
 *
 * e->lock is held only for bookkeeping, never across a load: init is a hook
 * and no lock is held while a hook runs.  Instead the loading thread marks
 * the entry (loading_by) and others either keep using the current version
 * or, when there is none, wait on e->cond.  A wait that would close a cycle
 * (a thread waiting, through other loads, for itself) fails with
 * HM_EDEADLK instead of blocking forever.
 */
#include "loader.h"
#include "pending.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include "fault.h" /* last: see fault.h */

/*
 * A log line decided under e->lock and emitted after it is dropped: the log
 * callback is the embedder's code and runs with no loader lock held.
 */
struct hm__note {
	int level;
	char msg[HM__MSG_MAX + 128];
};

static void hm__note_flush(const hm_loader *l, struct hm__note *n)
{
	if (n->msg[0])
		hm__log(l, n->level, "%s", n->msg);
	n->msg[0] = '\0';
}

#define hm__note(n, lvl, ...)                                                 \
	do {                                                                  \
		(n)->level = (lvl);                                           \
		snprintf((n)->msg, sizeof (n)->msg, __VA_ARGS__);             \
	} while (0)

/* e->lock held: loading_by changes under both locks (entry.h). */
static void hm__set_loading(struct hm__entry *e, struct hm__thread *t)
{
	pthread_mutex_lock(&e->loader->graph_lock);
	e->loading_by = t;
	pthread_mutex_unlock(&e->loader->graph_lock);
}

/*
 * Would me waiting for e wait for itself?  Follow "e is loaded by t, t waits
 * for e2, e2 is loaded by t2 ..." and look for me.  graph_lock held.
 */
static bool hm__cycle(struct hm__entry *e, const struct hm__thread *me)
{
	for (int hops = 0; e && hops < 4096; hops++) {
		const struct hm__thread *t = e->loading_by;
		if (!t)
			return false;
		if (t == me)
			return true;
		e = t->waiting_for;
	}
	return false;
}

/* Wait for the load of e in progress; e->lock held. */
static int hm__wait_load(struct hm__entry *e)
{
	struct hm__thread *me = hm__self();
	hm_loader *l = e->loader;
	bool cycle;

	if (e->loading_by == me)
		return hm__fail(HM_EDEADLK,
			"%s: requested while this thread is loading it (from an init)",
			e->key);
	pthread_mutex_lock(&l->graph_lock);
	cycle = hm__cycle(e, me);
	if (!cycle)
		me->waiting_for = e;
	pthread_mutex_unlock(&l->graph_lock);
	if (cycle)
		return hm__fail(HM_EDEADLK,
			"%s: its load waits, through other loads, for this thread", e->key);
	while (e->loading_by)
		pthread_cond_wait(&e->cond, &e->lock);
	pthread_mutex_lock(&l->graph_lock);
	me->waiting_for = NULL;
	pthread_mutex_unlock(&l->graph_lock);
	return 0;
}

/*
 * After a load, with no lock held: drop the references on the replaced
 * version, then log, then retire what died.  So when the log says a version
 * was loaded, the loader holds nothing on the old one any more; and its
 * "unloaded" line, written by the reaper, cannot come first.
 */
static void hm__after_load(hm_loader *l, struct hm__version *put[2], struct hm__note *note)
{
	bool dead0 = put[0] && hm__unref(put[0]), dead1 = put[1] && hm__unref(put[1]);

	hm__note_flush(l, note);
	if (dead0)
		hm__version_retire(put[0]);
	if (dead1)
		hm__version_retire(put[1]);
}

/* Record a failed load for hm_status_get(); e->lock held. */
static void hm__record_failure(struct hm__entry *e, int rc)
{
	struct timespec now = {0, 0};

	clock_gettime(CLOCK_REALTIME, &now);
	e->failures++;
	e->last_code = rc;
	e->last_time = now.tv_sec;
	snprintf(e->last_msg, sizeof e->last_msg, "%s", hm__msg());
}

/*
 * Load e's file as a new version and make it current (HM__R_RETRY: its
 * global module too, even after a remembered failure).  e->lock held on
 * entry and return, dropped meanwhile.  put[] gets the versions the caller
 * must put once it dropped the lock: the one replaced, and prev, which is
 * referenced here so that its state can be handed over and its content
 * compared.  Returns HM__LOADED when a new version became current, 0 when
 * the file held the current version's bytes (touch, chmod): nothing to do.
 */
static int hm__load_locked(struct hm__entry *e, const struct hm__fileid *seen, int flags,
	struct hm__version *put[2], struct hm__note *note)
{
	hm_loader *l = e->loader;
	struct hm__version *g = NULL, *v = NULL;
	struct hm__version *prev = atomic_load_explicit(&e->current, memory_order_relaxed);
	int64_t t0 = hm__now();
	int rc;

	put[0] = NULL;
	put[1] = prev;
	if (prev) /* the entry's reference keeps it alive: we hold the lock */
		atomic_fetch_add_explicit(&prev->refs, 1, memory_order_relaxed);
	hm__set_loading(e, hm__self());
	pthread_mutex_unlock(&e->lock);

	/* A module and its global come from the same directory, as it is
	 * when the module is copied: a few tries while it keeps changing. */
	for (int tries = 0;; tries++) {
		struct hm__fileid gid;
		rc = e->is_global ? 0 : hm__global_get(e, &g, &gid, flags & HM__R_RETRY);
		if (rc == 0)
			rc = hm__version_load(e, g, &gid, prev, flags & HM__R_READMIT, &v);
		if (g)
			hm_put(g); /* v holds its own reference */
		g = NULL;
		if (rc != HM__GLOBAL_MOVED)
			break;
		if (tries == 2) {
			rc = hm__fail(HM_ECHANGED, "%s: the global module of its directory "
						   "keeps changing", e->key);
			break;
		}
		hm__global_moved(e, flags);
	}

	pthread_mutex_lock(&e->lock);
	hm__set_loading(e, NULL);
	pthread_cond_broadcast(&e->cond);
	if (rc == 0)
		e->versions++; /* v->entry is e until v is finalised */
	if (rc == HM__SAME) {
		e->id = *seen;
		e->has_bad = false;
		hm__note(note, HM_LOG_DEBUG, "%s: content unchanged, version %llu stays",
			e->key, (unsigned long long)prev->number);
		return 0;
	}
	if (rc == 0 && atomic_load_explicit(&l->closing, memory_order_relaxed)) {
		put[0] = v; /* never published: finalised by the caller's put */
		return hm__fail(HM_ECLOSED, "%s: loader is closing", e->key);
	}
	if (rc == HM_ECHANGED || rc == HM_ENOENT) {
		/* Changed or replaced while we read it (a writer, a chmod,
		 * install): no failure.  The change brings an event, or the next
		 * stat check, and a new look. */
		hm__note(note, HM_LOG_DEBUG, "%s: looking again later", hm__msg());
		return rc;
	}
	if (rc == HM_ENOTELF && (flags & HM__R_SETTLE)) {
		/* An event may come before a new write shows itself: the watcher
		 * looks once more after the delay, and only then is it broken. */
		hm__note(note, HM_LOG_DEBUG, "%s: not complete yet?", hm__msg());
		return HM__UNSETTLED;
	}
	if (rc < 0) {
		hm__record_failure(e, rc);
		e->has_bad = hm__err_of_file(rc);
		e->bad_id = *seen;
		if (rc == HM_EREFUSED && (flags & HM__R_READMIT) && prev) {
			/* The embedder no longer admits what serves: new requests
			 * get its refusal; running ones finish. */
			put[0] = atomic_exchange_explicit(&e->current, NULL, memory_order_acq_rel);
			hm__note(note, HM_LOG_ERROR, "%s (version %llu serves no new request)",
				e->last_msg, (unsigned long long)prev->number);
			return rc;
		}
		if (prev)
			hm__note(note, HM_LOG_ERROR, "%s (version %llu keeps serving)",
				e->last_msg, (unsigned long long)prev->number);
		else
			hm__note(note, HM_LOG_ERROR, "%s", e->last_msg);
		return rc;
	}
	/* release: a reader that sees v sees everything init wrote */
	put[0] = atomic_exchange_explicit(&e->current, v, memory_order_acq_rel);
	e->id = v->id;
	e->has_id = true;
	e->has_bad = false;
	e->missing_since = 0;
	e->loads++;
	e->load_copy_ns = v->copy_ns;
	e->load_dlopen_ns = v->dlopen_ns;
	e->load_init_ns = v->init_ns;
	e->load_total_ns = (uint64_t)(hm__now() - t0);
	e->load_started = t0;
	hm__note(note, HM_LOG_INFO, "%s version %llu loaded in %.2f ms%s%s%s", e->key,
		(unsigned long long)v->number, (double)e->load_total_ns / 1e6,
		v->substitute ? " from the bytes admit substituted" : "",
		put[0] ? ", replacing the previous one" : "",
		prev && prev->adopted ? ", state handed over" : "");
	return HM__LOADED;
}

int hm__entry_get(struct hm__entry *e, struct hm__version **out, bool force)
{
	hm_loader *l = e->loader;
	struct hm__version *v, *put[2];
	struct hm__fileid id;
	struct hm__note note = {0};
	int rc = 0;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		if (e->dead) { /* unlinked: the caller looks the name up again */
			rc = HM__DEAD;
			break;
		}
		v = atomic_load_explicit(&e->current, memory_order_relaxed);
		if (v) {
			/* The entry's reference keeps v alive while we hold the lock. */
			atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
			*out = v;
			rc = 0;
			break;
		}
		if (atomic_load_explicit(&l->closing, memory_order_relaxed)) {
			rc = hm__fail(HM_ECLOSED, "%s: loader is closing", e->key);
			break;
		}
		if (e->loading_by) {
			if ((rc = hm__wait_load(e)) < 0)
				break;
			continue;
		}
		if ((rc = hm__stat_key(l, e->key, &id)) < 0) {
			if (rc == HM_ENOENT)
				hm__no_file(l, e->key);
			else
				hm__record_failure(e, rc); /* a link out of the root... */
			break;
		}
		if (!force && e->has_bad && hm__fileid_eq(&id, &e->bad_id)) {
			/* The same file failed before: say so again, do not reload. */
			rc = hm__fail(e->last_code, "%s", e->last_msg);
			break;
		}
		if (hm__pending_busy(l, e->key)) {
			/* Its writer is not done: a copy now could be a prefix that
			 * holds every segment (the section headers come last), and
			 * load, to be replaced when the write ends.  The watcher
			 * loads it then. */
			rc = hm__fail(HM_ECHANGED, "%s: being written: it loads when its "
						   "writer is done", e->key);
			break;
		}
		rc = hm__load_locked(e, &id, force ? HM__R_RETRY : 0, put, &note);
		force = false; /* one forced attempt */
		pthread_mutex_unlock(&e->lock);
		hm__after_load(l, put, &note);
		if (rc < 0)
			return rc;
		if (rc == HM__LOADED)
			hm__rebind_if_stale(e);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	if (rc == HM_ENOENT) /* no file, nothing loaded: the entry may go */
		hm__sweeper_hint(l);
	return rc;
}

/*
 * e's file is gone; e->lock held.  Within the grace (HM__R_GRACE) keep
 * serving: install(1) deletes and re-creates, and a file missing for a
 * moment must not fail requests.  Then drop current into *old.
 */
static int hm__entry_missing(struct hm__entry *e, int flags, struct hm__version **old,
	struct hm__note *note)
{
	hm_loader *l = e->loader;
	struct hm__version *cur = atomic_load_explicit(&e->current, memory_order_relaxed);

	if (cur && (flags & HM__R_GRACE) && l->removal_delay_ns > 0) {
		int64_t now = hm__now();
		if (!e->missing_since)
			e->missing_since = now;
		if (now - e->missing_since < l->removal_delay_ns)
			return HM__MISSING;
	}
	e->missing_since = 0;
	e->has_id = false;
	if (cur) {
		/* New requests get not-found; running ones finish. */
		*old = atomic_exchange_explicit(&e->current, NULL, memory_order_acq_rel);
		hm__note(note, HM_LOG_INFO, "%s removed: version %llu serves no new request",
			e->key, (unsigned long long)cur->number);
	}
	return hm__no_file(l, e->key);
}

int hm__entry_refresh(struct hm__entry *e, int flags)
{
	hm_loader *l = e->loader;
	struct hm__entry *ge = NULL;
	struct hm__version *cur, *gcur = NULL, *put[2] = {NULL, NULL};
	struct hm__fileid id;
	struct hm__note note = {0};
	bool look_now = flags & HM__R_NOW, retry = flags & HM__R_RETRY, global_changed;
	int rc = 0;

	/* The global first, so that modules bind to its newest version - unless
	 * it is being written: its writer's end brings it, and its modules. */
	if (!e->is_global && hm__global_entry(e, &ge) == 0 && ge &&
	    !hm__pending_busy(l, ge->key))
		(void)hm__entry_refresh(ge, flags & ~HM__R_READMIT);

	if (look_now) {
		pthread_mutex_lock(&e->lock);
	} else if (pthread_mutex_trylock(&e->lock) != 0) {
		hm__entry_release(ge);
		return 0; /* someone else is looking: use what is current */
	}
	if (e->dead) /* unlinked: nothing to look at */
		goto out;
	int64_t now = hm__now_coarse();
	if (!look_now && now < atomic_load_explicit(&e->next_check, memory_order_relaxed))
		goto out;
	atomic_store_explicit(&e->next_check, now + (l->check_ns > 0 ? l->check_ns : 0),
		memory_order_relaxed);
	if (e->loading_by) /* a load in progress will make its own result current */
		goto out;
	cur = atomic_load_explicit(&e->current, memory_order_relaxed);
	rc = hm__stat_key(l, e->key, &id);
	if (rc == HM_ENOENT) {
		rc = hm__entry_missing(e, flags, &put[0], &note);
		goto out;
	}
	if (rc < 0) {
		/* Refused before any load (a link out of the root): a failure
		 * like a load's, logged when it starts, not at every look. */
		if (!e->stat_failed || e->last_code != rc) {
			hm__record_failure(e, rc);
			if (cur)
				hm__note(&note, HM_LOG_ERROR, "%s (version %llu keeps serving)",
					e->last_msg, (unsigned long long)cur->number);
			else
				hm__note(&note, HM_LOG_ERROR, "%s", e->last_msg);
		}
		e->stat_failed = true;
		goto out;
	}
	e->stat_failed = false;
	e->missing_since = 0;
	if (ge)
		gcur = atomic_load_explicit(&ge->current, memory_order_acquire);
	global_changed = cur && !e->is_global && cur->global != gcur;
	/* A module not loaded yet is loaded by its next hm_get(); a global
	 * module is loaded here, so that its modules can bind to it. */
	if (!cur && !look_now && !e->is_global)
		goto out;
	if (cur && e->has_id && hm__fileid_eq(&id, &e->id) && !global_changed &&
	    !(flags & HM__R_READMIT))
		goto out;
	if (!retry && e->has_bad && hm__fileid_eq(&id, &e->bad_id) && !global_changed) {
		rc = hm__fail(e->last_code, "%s", e->last_msg); /* retried when it changes */
		goto out;
	}
	rc = hm__load_locked(e, &id, flags, put, &note);
out:
	pthread_mutex_unlock(&e->lock);
	hm__entry_release(ge);
	hm__after_load(l, put, &note);
	if (rc == HM__LOADED)
		hm__rebind_if_stale(e);
	if (rc == HM_ENOENT) /* gone, nothing serves it any more: may go */
		hm__sweeper_hint(l);
	return rc;
}

void hm__entry_drop_each(struct hm__entry *e, void *arg)
{
	(void)arg;
	struct hm__version *old;

	pthread_mutex_lock(&e->lock);
	old = atomic_exchange_explicit(&e->current, NULL, memory_order_acq_rel);
	pthread_mutex_unlock(&e->lock);
	hm_put(old);
}

int hm__entry_look(struct hm__entry *e, int flags)
{
	hm_loader *l = e->loader;
	int rc = hm__entry_refresh(e, flags);

	/* A new global (a rescan, a look at every entry): its modules
	 * follow, whichever order the table lists them in. */
	if (rc == HM__LOADED && e->is_global)
		hm__rebind_dir(l, e->key, e->dir_len);
	/* Missing within its grace, or maybe still being written: look again
	 * when the delay ends (then a broken file is reported).  A module that
	 * could not follow its global because a file changed under the load
	 * (its global's, which brings this module no event of its own) is
	 * looked at again too, until it follows. */
	if (rc == HM__MISSING)
		hm__pending_later(l, e->key, HM__R_NOW | HM__R_GRACE);
	else if (rc == HM__UNSETTLED)
		hm__pending_later(l, e->key, HM__R_NOW);
	else if (rc == HM_ECHANGED && !e->is_global && hm__binding_stale(e))
		hm__pending_later(l, e->key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
	return rc;
}

void hm__entry_version_gone(struct hm__entry *e)
{
	hm_loader *l = e->loader;
	bool empty;

	pthread_mutex_lock(&e->lock);
	empty = --e->versions == 0 && !atomic_load_explicit(&e->current, memory_order_relaxed);
	pthread_mutex_unlock(&e->lock);
	/* The last version of a file that is no longer served: maybe gone.
	 * (Not e after this: a pass may free it.) */
	if (empty)
		hm__sweeper_hint(l);
}
