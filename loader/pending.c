/* SPDX-License-Identifier: MIT */
/*
 * pending.c - files to look at later, and files being written.
 *
 * The watcher (watch.c) feeds this list from its events: a file created or
 * modified is being written until its writer closes it or renames it in; a
 * removed one may come back at once (install(1) deletes, then creates).
 * The cache (entry.c) adds a file whose look was inconclusive (missing
 * within its grace, maybe still being written, bound to a global that
 * moved), and asks hm__pending_busy() before it loads on a request, so
 * that no request loads a file its writer has not finished.  The
 * watcher's timer takes what is due and looks at it.
 *
 * In stat mode there is no list (l->pending is NULL): the next stat check
 * on the request path is the later look.
 *
 * The list's lock is a leaf: taken under an entry's lock (hm__pending_busy)
 * and nothing is taken or called under it.
 */
#include "loader.h"
#include "pending.h"

#include <stdlib.h>
#include <string.h>
#include "fault.h" /* last: see fault.h */

/*
 * One file.  A writer may also stay quiet without closing: a slow linker
 * on a busy machine, one writing through a mapping (no event until it
 * closes), a hard link (CREATE only).  Once quiet for the removal delay,
 * the file is checked (watch.c): complete, it is looked at; incomplete, it
 * is still being written (stalled), and is judged when its writer closes
 * it, or once quiet for hm__quiet_max().
 */
struct hm__pend {
	char *key;
	int64_t due;   /* hm__now() */
	bool writing;
	bool stalled;  /* writing: quiet for the delay, and incomplete */
	int64_t wrote; /* writing: the last CREATE or MODIFY, hm__now() */
	int flags;     /* for the look when it is due */
};

struct hm__pending {
	pthread_mutex_t lock; /* protects the array */
	struct hm__pend *v;
	size_t n, cap;
};

/* An incomplete file whose writer has not closed it is judged after this
 * long without an event (or twice the removal delay, if longer). */
#define HM__QUIET_MAX_NS ((int64_t)60 * 1000000000)

static int64_t hm__quiet_max(const hm_loader *l)
{
	return l->removal_delay_ns > HM__QUIET_MAX_NS / 2 ? 2 * l->removal_delay_ns :
							     HM__QUIET_MAX_NS;
}

int hm__pending_init(hm_loader *l)
{
	struct hm__pending *p = calloc(1, sizeof *p);

	if (!p)
		return hm__fail(HM_ENOMEM, "hm_open: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	l->pending = p;
	return 0;
}

void hm__pending_free(hm_loader *l)
{
	struct hm__pending *p = l->pending;

	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].key);
	free(p->v);
	pthread_mutex_destroy(&p->lock);
	free(p);
	l->pending = NULL;
}

/* lock held */
static struct hm__pend *hm__pend_find(struct hm__pending *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].key, key) == 0)
			return &p->v[i];
	return NULL;
}

/* Being written or just removed: a look now would see half a file. */
static bool hm__pend_busy(const struct hm__pend *f)
{
	return f && (f->writing || f->flags == HM__R_NOW);
}

/* lock held */
static bool hm__pend_set(hm_loader *l, const char *key, enum hm__wait why)
{
	struct hm__pending *p = l->pending;
	int64_t now = hm__now(), due = now + l->removal_delay_ns + 1000000;
	struct hm__pend *f = hm__pend_find(p, key);
	/* A deletion waited out the delay already: then a missing file goes. */
	int flags = why == HM__WAIT_DELETED ? HM__R_NOW : HM__R_NOW | HM__R_GRACE;
	char *copy;

	if (f) {
		if (why != HM__WAIT_MISSING) { /* a new write or removal: from now */
			f->writing = why == HM__WAIT_WRITING;
			f->stalled = false;
			f->wrote = now;
			f->flags = flags;
			f->due = due;
		}
		return true;
	}
	if (!(copy = strdup(key)) || !HM__GROW(p->v, p->cap, p->n)) {
		free(copy);
		return false;
	}
	p->v[p->n++] = (struct hm__pend){.key = copy, .due = due,
		.writing = why == HM__WAIT_WRITING, .wrote = now, .flags = flags};
	return true;
}

bool hm__pending_set(hm_loader *l, const char *key, enum hm__wait why)
{
	bool ok;

	pthread_mutex_lock(&l->pending->lock);
	ok = hm__pend_set(l, key, why);
	pthread_mutex_unlock(&l->pending->lock);
	return ok;
}

/* lock held */
static void hm__pend_clear(struct hm__pending *p, const char *key)
{
	struct hm__pend *f = hm__pend_find(p, key);

	if (f) {
		free(f->key);
		*f = p->v[--p->n];
	}
}

void hm__pending_clear(hm_loader *l, const char *key)
{
	pthread_mutex_lock(&l->pending->lock);
	hm__pend_clear(l->pending, key);
	pthread_mutex_unlock(&l->pending->lock);
}

bool hm__pending_busy(hm_loader *l, const char *key)
{
	struct hm__pending *p = l->pending;
	bool busy;

	if (!p)
		return false;
	pthread_mutex_lock(&p->lock);
	busy = hm__pend_busy(hm__pend_find(p, key));
	pthread_mutex_unlock(&p->lock);
	return busy;
}

void hm__pending_later(hm_loader *l, const char *key, int flags)
{
	struct hm__pending *p = l->pending;
	struct hm__pend *f;
	bool ok;

	if (!p)
		return; /* stat mode: the next check on the request path looks */
	pthread_mutex_lock(&p->lock);
	ok = hm__pend_set(l, key, HM__WAIT_MISSING);
	if ((f = hm__pend_find(p, key)) != NULL && !f->writing)
		f->flags = flags;
	pthread_mutex_unlock(&p->lock);
	if (!ok)
		hm__log(l, HM_LOG_ERROR, "%s: out of memory: a removal may be missed", key);
}

/* Append a look to out; false (and key freed) when out cannot grow. */
static bool hm__looks_add(struct hm__looks *out, struct hm__look k)
{
	if (!HM__GROW(out->v, out->cap, out->n)) {
		free(k.key);
		return false;
	}
	out->v[out->n++] = k;
	return true;
}

bool hm__pending_due(hm_loader *l, struct hm__looks *out)
{
	struct hm__pending *p = l->pending;
	int64_t now = hm__now();
	bool ok = true;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n;) {
		struct hm__pend *f = &p->v[i];
		char *copy;

		if (f->due > now) {
			i++;
			continue;
		}
		if (f->writing && !f->stalled) {
			/* Quiet, not closed: checked (watch.c) while it stays
			 * pending, so that no request loads it meanwhile. */
			if ((copy = strdup(f->key)) == NULL ||
			    !hm__looks_add(out, (struct hm__look){.key = copy, .check = true,
						    .wrote = f->wrote}))
				ok = false;
			f->stalled = true;
			f->due = f->wrote + hm__quiet_max(l);
			i++;
			continue;
		}
		if (!hm__looks_add(out, (struct hm__look){.key = f->key, .flags = f->flags}))
			ok = false;
		p->v[i] = p->v[--p->n];
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void hm__pending_drop_busy(hm_loader *l, struct hm__looks *looks)
{
	struct hm__pending *p = l->pending;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < looks->n;) {
		if (hm__pend_busy(hm__pend_find(p, looks->v[i].key))) {
			free(looks->v[i].key);
			looks->v[i] = looks->v[--looks->n];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

int64_t hm__pending_next(hm_loader *l)
{
	struct hm__pending *p = l->pending;
	int64_t next = -1;

	if (!p)
		return -1;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n; i++)
		if (next < 0 || p->v[i].due < next)
			next = p->v[i].due;
	pthread_mutex_unlock(&p->lock);
	return next;
}

bool hm__pending_quiet(hm_loader *l, const struct hm__look *k, bool incomplete)
{
	struct hm__pending *p = l->pending;
	struct hm__pend *f;
	bool mine;

	pthread_mutex_lock(&p->lock);
	f = hm__pend_find(p, k->key);
	/* An event since (a write, the close, a removal) decides instead. */
	mine = f && f->writing && f->stalled && f->wrote == k->wrote;
	if (mine && !incomplete)
		hm__pend_clear(p, k->key);
	pthread_mutex_unlock(&p->lock);
	return mine;
}
