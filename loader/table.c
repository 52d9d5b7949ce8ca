/*
 * table.c - the first level of the cache: file name -> entry.
 *
 * Lookups take no lock: they probe slots that, once filled, never change
 * (see struct hm__table).  Inserts take the table lock briefly (so there is
 * never a second entry for one name) and fill a slot with a release store.
 * When the table grows, a new table replaces it; the old one is retired
 * until hm_close(), because a reader may still be probing it.  Entries
 * are never freed before hm_close(): they are bounded by the files that
 * existed under the root (see hm__entry_lookup in loader.c).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include "fault.h" /* last: see fault.h */

#define HM__TABLE_MIN 64

static struct hm__table *hm__table_new(size_t slots)
{
	struct hm__table *t = calloc(1, sizeof *t + slots * sizeof t->slots[0]);

	if (t)
		t->mask = slots - 1;
	return t;
}

/* Fill the first empty slot from h; table_lock held (or t unpublished). */
static void hm__place(struct hm__table *t, struct hm__entry *e, uint64_t h)
{
	size_t i = h & t->mask;

	while (atomic_load_explicit(&t->slots[i].entry, memory_order_relaxed))
		i = (i + 1) & t->mask;
	t->slots[i].hash = h;
	/* release: a reader that sees the entry sees the hash and its fields */
	atomic_store_explicit(&t->slots[i].entry, e, memory_order_release);
	t->count++;
}

struct hm__entry *hm__table_find(hm_loader *l, const char *key, size_t len)
{
	size_t stem = hm__stem_len(key, len);
	/* acquire: pairs with the release store of a grown table */
	const struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire);

	if (stem < len)
		return hm__table_probe(t, hm__hash(key, stem), key, stem, true);
	return hm__table_probe(t, hm__hash(key, len), key, len, false);
}

static void hm__table_free_one(struct hm__table *t, bool entries)
{
	for (size_t i = 0; entries && i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_relaxed);
		if (e) {
			pthread_mutex_destroy(&e->lock);
			pthread_cond_destroy(&e->cond);
			free(e);
		}
	}
	free(t);
}

/* Move to a table twice the size; table_lock held. */
static int hm__table_grow(hm_loader *l)
{
	struct hm__table *old = atomic_load_explicit(&l->table, memory_order_relaxed);
	struct hm__table *t = hm__table_new((old->mask + 1) * 2);

	if (!t)
		return HM_ENOMEM;
	for (size_t i = 0; i <= old->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&old->slots[i].entry,
			memory_order_relaxed);
		if (e)
			hm__place(t, e, old->slots[i].hash);
	}
	old->retired_next = l->retired;
	l->retired = old;
	/* release: pairs with the readers' acquire load of the table */
	atomic_store_explicit(&l->table, t, memory_order_release);
	return 0;
}

int hm__table_insert(hm_loader *l, const char *key, size_t key_len, bool is_global,
	struct hm__entry **out)
{
	struct hm__entry *e;
	struct hm__table *t;
	const char *slash;
	int rc = 0;

	pthread_mutex_lock(&l->table_lock);
	if (atomic_load_explicit(&l->closing, memory_order_relaxed)) {
		rc = hm__fail(HM_ECLOSED, "%.*s: loader is closing", (int)key_len, key);
		goto out;
	}
	if ((e = hm__table_find(l, key, key_len)) != NULL)
		goto found;
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	if (t->count + 1 > (t->mask + 1) / 2 && hm__table_grow(l) < 0) {
		rc = hm__fail(HM_ENOMEM, "%.*s: out of memory", (int)key_len, key);
		goto out;
	}
	e = calloc(1, sizeof *e + key_len + 1);
	if (!e) {
		rc = hm__fail(HM_ENOMEM, "%.*s: out of memory", (int)key_len, key);
		goto out;
	}
	e->loader = l;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->is_global = is_global;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	slash = memrchr(key, '/', key_len);
	e->dir_len = slash ? (size_t)(slash - key) + 1 : 0;
	e->next_gen = 1;
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	hm__place(t, e, hm__hash(key, hm__stem_len(key, key_len)));
found:
	*out = e;
out:
	pthread_mutex_unlock(&l->table_lock);
	return rc;
}

int hm__table_init(hm_loader *l)
{
	struct hm__table *t = hm__table_new(HM__TABLE_MIN);

	if (!t)
		return HM_ENOMEM;
	atomic_init(&l->table, t);
	return 0;
}

void hm__table_free(hm_loader *l)
{
	struct hm__table *t = atomic_load_explicit(&l->table, memory_order_relaxed);

	if (t)
		hm__table_free_one(t, true);
	while ((t = l->retired) != NULL) {
		l->retired = t->retired_next;
		hm__table_free_one(t, false);
	}
}

/*
 * Call fn on every entry, with no lock held (fn may load and run hooks).
 * Safe at any time, like a lookup: it walks a snapshot of the table, which
 * is never freed before hm_close(); entries inserted meanwhile may be
 * missed.  Once closing is set nothing is inserted, so it sees them all.
 */
void hm__table_each(hm_loader *l, void (*fn)(struct hm__entry *, void *), void *arg)
{
	struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire);

	for (size_t i = 0; i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_acquire);
		if (e)
			fn(e, arg);
	}
}
