/* SPDX-License-Identifier: MIT */
/*
 * status.c - hm_status_get(): a snapshot of every known module for
 * operators.  Each entry is read under its own lock and the live versions
 * under ver_lock, so the snapshot is consistent per module, not across
 * modules.  Cold path: it allocates freely.
 */
#include "loader.h"
#include "watch.h"

#include <stdlib.h>
#include <string.h>
#include "fault.h" /* last: see fault.h */

struct hm__entries {
	struct hm__entry **v;
	size_t n, cap;
	bool oom;
};

static void hm__collect(struct hm__entry *e, void *arg)
{
	struct hm__entries *es = arg;

	if (!HM__GROW(es->v, es->cap, es->n)) {
		es->oom = true;
		return;
	}
	hm__entry_hold(e); /* used after the walk: kept until released below */
	es->v[es->n++] = e;
}

static int hm__by_key(const void *a, const void *b)
{
	const struct hm__entry *x = *(struct hm__entry *const *)a;
	const struct hm__entry *y = *(struct hm__entry *const *)b;
	return strcmp(x->key, y->key);
}

/* A live version seen under ver_lock. */
struct hm__seen {
	const struct hm__entry *entry;
	const struct hm__version *v;
	uint64_t number;
	unsigned long refs;
};

static int hm__by_entry_then_newest(const void *a, const void *b)
{
	const struct hm__seen *x = a, *y = b;
	if (x->entry != y->entry)
		return x->entry < y->entry ? -1 : 1;
	return x->number < y->number ? 1 : x->number > y->number ? -1 : 0;
}

static int hm__snapshot_versions(hm_loader *l, struct hm__seen **out, size_t *n)
{
	pthread_mutex_lock(&l->ver_lock);
	*n = l->nlive;
	*out = calloc(*n ? *n : 1, sizeof **out);
	if (*out) {
		size_t i = 0;
		for (struct hm__version *v = l->live; v && i < *n; v = v->live_next, i++)
			(*out)[i] = (struct hm__seen){v->entry, v, v->number,
				atomic_load_explicit(&v->refs, memory_order_relaxed) +
					hm__hazard_count(v)};
		*n = i;
	}
	pthread_mutex_unlock(&l->ver_lock);
	if (!*out)
		return HM_ENOMEM;
	qsort(*out, *n, sizeof **out, hm__by_entry_then_newest); /* never NULL */
	return 0;
}

/* Fill m from e (under e's lock) and the versions of e in seen[]. */
static int hm__module_status(struct hm__entry *e, const struct hm__seen *seen, size_t nseen,
	struct hm_module_status *m)
{
	struct hm_version_status *vs;
	size_t first = nseen, count = 0;

	for (size_t i = 0; i < nseen; i++) {
		if (seen[i].entry == e) {
			if (first == nseen)
				first = i;
			count++;
		}
	}
	vs = calloc(count ? count : 1, sizeof *vs);
	if (!vs)
		return HM_ENOMEM;
	pthread_mutex_lock(&e->lock);
	const struct hm__version *cur = atomic_load_explicit(&e->current, memory_order_relaxed);
	for (size_t i = 0; i < count; i++) {
		const struct hm__seen *s = &seen[first + i];
		bool current = s->v == cur;
		vs[i] = (struct hm_version_status){
			.version = s->number,
			/* the entry's own reference on current is not in flight */
			.refs = s->refs - (current && s->refs > 0),
			.current = current,
		};
	}
	*m = (struct hm_module_status){
		.path = strdup(e->key),
		.global = e->is_global,
		.current = cur ? cur->number : 0,
		.loads = e->loads,
		.failures = e->failures,
		.pinned = e->pinned,
		.last_error = e->last_code,
		.last_error_msg = strdup(e->failures ? e->last_msg : ""),
		.last_error_time = e->failures ? e->last_time : 0,
		.nversions = count,
		.versions = vs,
		.load_copy_ns = e->load_copy_ns,
		.load_dlopen_ns = e->load_dlopen_ns,
		.load_init_ns = e->load_init_ns,
		.load_total_ns = e->load_total_ns,
		.load_started = e->load_started,
	};
	pthread_mutex_unlock(&e->lock);
	return m->path && m->last_error_msg ? 0 : HM_ENOMEM;
}

void hm_status_free(struct hm_status *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nmodules; i++) {
		free((void *)st->modules[i].path);
		free((void *)st->modules[i].last_error_msg);
		free((void *)st->modules[i].versions);
	}
	free((void *)st->modules);
	free(st);
}

int hm_status_get(hm_loader *l, struct hm_status **out)
{
	struct hm__entries es = {0};
	struct hm__seen *seen = NULL;
	struct hm_module_status *mods = NULL;
	struct hm_status *st = NULL;
	size_t nseen = 0;
	int rc;

	if ((rc = hm__api_check(l, out, out, "hm_status_get", false)) != 0)
		return rc;
	rc = HM_ENOMEM;
	*out = NULL;
	hm__table_each(l, hm__collect, &es);
	if (es.oom || hm__snapshot_versions(l, &seen, &nseen) < 0)
		goto out;
	if (es.n > 0) /* es.v may be NULL then: qsort's pointer must not be */
		qsort(es.v, es.n, sizeof *es.v, hm__by_key);
	if (!(st = calloc(1, sizeof *st)) || !(mods = calloc(es.n ? es.n : 1, sizeof *mods)))
		goto out;
	st->modules = mods;
	for (size_t i = 0; i < es.n; i++) {
		st->nmodules = i + 1; /* so that hm_status_free frees what is filled */
		if (hm__module_status(es.v[i], seen, nseen, &mods[i]) < 0)
			goto out;
	}
	st->watch = l->watch ? "inotify" : "stat";
	st->versions_alive = nseen;
	pthread_mutex_lock(&l->ver_lock);
	st->pinned = l->pinned;
	pthread_mutex_unlock(&l->ver_lock);
	st->rescans = hm__watch_rescans(l);
	*out = st;
	st = NULL;
	rc = 0;
out:
	hm_status_free(st);
	free(seen);
	for (size_t i = 0; i < es.n; i++)
		hm__entry_release(es.v[i]);
	free(es.v);
	return rc < 0 ? hm__fail(rc, "hm_status_get: out of memory") : 0;
}
