/*
 * table.c - the first level of the cache: file name -> entry.
 *
 * Lookups take no lock: they walk an immutable-once-linked chain of nodes.
 * Inserts take the table lock briefly (so there is never a second entry for
 * one name) and push a node at a chain's head with a release store.  When
 * the table grows, a new table with new nodes replaces it; the old one is
 * retired until hm_close(), because a reader may still be walking it.  Entries
 * are never freed before hm_close(): they are bounded by the files that
 * existed under the root (see hm__entry_lookup in loader.c).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include "fault.h" /* last: see fault.h */

#define HM__TABLE_MIN 64

/* FNV-1a, 64 bit: short keys, no attacker-chosen collisions worth fearing
 * since entries only exist for files the operator placed. */
static uint64_t hm__hash(uint64_t h, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define HM__HASH_INIT 0xcbf29ce484222325ull

static struct hm__table *hm__table_new(size_t buckets)
{
	struct hm__table *t = calloc(1, sizeof *t + buckets * sizeof t->buckets[0]);

	if (t)
		t->mask = buckets - 1;
	return t;
}

static void hm__push(struct hm__table *t, struct hm__node *n)
{
	size_t b = n->hash & t->mask;

	atomic_store_explicit(&n->next,
		atomic_load_explicit(&t->buckets[b], memory_order_relaxed),
		memory_order_relaxed);
	/* release: a reader that sees the node sees its fields and the entry's */
	atomic_store_explicit(&t->buckets[b], n, memory_order_release);
}

struct hm__entry *hm__table_find(hm_loader *l, const char *path, size_t len,
	const char *suffix)
{
	size_t slen = strlen(suffix);
	uint64_t h = hm__hash(hm__hash(HM__HASH_INIT, path, len), suffix, slen);
	/* acquire: pairs with the release store of a grown table */
	struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire);
	struct hm__node *n = atomic_load_explicit(&t->buckets[h & t->mask],
		memory_order_acquire);

	for (; n; n = atomic_load_explicit(&n->next, memory_order_acquire)) {
		struct hm__entry *e = n->entry;
		if (n->hash == h && e->key_len == len + slen &&
		    memcmp(e->key, path, len) == 0 && memcmp(e->key + len, suffix, slen) == 0)
			return e;
	}
	return NULL;
}

static void hm__table_free_one(struct hm__table *t, bool entries)
{
	for (size_t b = 0; b <= t->mask; b++) {
		struct hm__node *n = atomic_load_explicit(&t->buckets[b], memory_order_relaxed);
		struct hm__node *next;
		for (; n; n = next) {
			next = atomic_load_explicit(&n->next, memory_order_relaxed);
			if (entries) {
				pthread_mutex_destroy(&n->entry->lock);
				pthread_cond_destroy(&n->entry->cond);
				free(n->entry);
			}
			free(n);
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
	for (size_t b = 0; b <= old->mask; b++) {
		struct hm__node *n = atomic_load_explicit(&old->buckets[b], memory_order_relaxed);
		for (; n; n = atomic_load_explicit(&n->next, memory_order_relaxed)) {
			struct hm__node *copy = malloc(sizeof *copy);
			if (!copy) {
				/* the old table stays in use */
				hm__table_free_one(t, false);
				return HM_ENOMEM;
			}
			copy->entry = n->entry;
			copy->hash = n->hash;
			hm__push(t, copy);
		}
	}
	t->count = old->count;
	old->retired_next = l->retired;
	l->retired = old;
	atomic_store_explicit(&l->table, t, memory_order_release);
	return 0;
}

int hm__table_insert(hm_loader *l, const char *key, size_t key_len, bool is_global,
	struct hm__entry **out)
{
	struct hm__entry *e;
	struct hm__node *n;
	struct hm__table *t;
	const char *slash;
	int rc = 0;

	pthread_mutex_lock(&l->table_lock);
	if (atomic_load_explicit(&l->closing, memory_order_relaxed)) {
		rc = hm__fail(HM_ECLOSED, "%.*s: loader is closing", (int)key_len, key);
		goto out;
	}
	if ((e = hm__table_find(l, key, key_len, "")) != NULL)
		goto found;
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	if (t->count >= t->mask && hm__table_grow(l) < 0) {
		rc = hm__fail(HM_ENOMEM, "%.*s: out of memory", (int)key_len, key);
		goto out;
	}
	e = calloc(1, sizeof *e + key_len + 1);
	n = malloc(sizeof *n);
	if (!e || !n) {
		free(e);
		free(n);
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
	n->entry = e;
	n->hash = hm__hash(HM__HASH_INIT, key, key_len);
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	hm__push(t, n);
	t->count++;
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

	for (size_t b = 0; b <= t->mask; b++) {
		struct hm__node *n = atomic_load_explicit(&t->buckets[b], memory_order_acquire);
		for (; n; n = atomic_load_explicit(&n->next, memory_order_acquire))
			fn(n->entry, arg);
	}
}
