/* SPDX-License-Identifier: MIT */
/*
 * table.c - the first level of the cache: file name -> entry, and the end
 * of entries.
 *
 * Lookups take no lock: they probe slots that, once filled, never change
 * (see struct hm__table), inside the request's lookup window (hazard.h).
 * Inserts take the table lock briefly (so there is never a second entry for
 * one name) and fill a slot with a release store.  A table is never
 * changed but by filling a slot: growth builds a bigger one.
 *
 * Entries of files that are gone leave the table through the sweeper
 * (sweeper.c), which publishes a table without them.
 */
#include "loader.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */


/* ---- the seed ---------------------------------------------------------------- */

/* A secret of this loader: getrandom(), else what differs between loaders. */
static void hm__seed_init(struct hm__seed *s, const void *salt)
{
	static atomic_ulong opened;
	struct timespec rt = {0, 0}, mono = {0, 0};

	if (getrandom(s->k, sizeof s->k, GRND_NONBLOCK) != (ssize_t)sizeof s->k) {
		/* Early boot (no entropy yet), or a kernel without getrandom:
		 * the clocks, the process, where things are (ASLR). */
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		s->k[0] = hm__fold((uint64_t)rt.tv_sec << 30 ^ (uint64_t)rt.tv_nsec ^
					   0x9e3779b97f4a7c15ull,
			(uint64_t)getpid() << 32 ^ (uintptr_t)salt ^ 0x3c6ef372fe94f82bull);
		s->k[1] = hm__fold(s->k[0] ^ (uint64_t)mono.tv_nsec ^ 0xa54ff53a5f1d36f1ull,
			(uintptr_t)&rt ^ atomic_fetch_add(&opened, 1) ^ 0x510e527fade682d1ull);
	}
	s->k[1] |= 1; /* the last multiplier: odd, so it loses no bit */
}

/* ---- the table ----------------------------------------------------------------- */

struct hm__table *hm__table_new(size_t slots, const struct hm__seed *seed)
{
	struct hm__table *t = calloc(1, sizeof *t + slots * sizeof t->slots[0]);

	if (t) {
		t->mask = slots - 1;
		t->seed = *seed;
	}
	return t;
}

/* Fill the first empty slot from h; table_lock held (or t unpublished). */
void hm__place(struct hm__table *t, struct hm__entry *e, uint64_t h)
{
	size_t i = h & t->mask;

	while (atomic_load_explicit(&t->slots[i].entry, memory_order_relaxed))
		i = (i + 1) & t->mask;
	t->slots[i].hash = h;
	/* release: a reader that sees the entry sees the hash and its fields */
	atomic_store_explicit(&t->slots[i].entry, e, memory_order_release);
	t->count++;
}

/* The entry for p[0..len) (+ ".so" when so) in the current table; table_lock held. */
static struct hm__entry *hm__find_locked(hm_loader *l, const char *p, size_t len, bool so)
{
	const struct hm__table *t = atomic_load_explicit(&l->table, memory_order_relaxed);

	return hm__table_probe(t, hm__hash(&t->seed, p, len), p, len, so);
}

struct hm__entry *hm__table_get(hm_loader *l, const char *p, size_t len, bool so)
{
	struct hm__entry *e;

	pthread_mutex_lock(&l->table_lock);
	if ((e = hm__find_locked(l, p, len, so)) != NULL)
		hm__entry_hold(e); /* under table_lock: the sweeper sees it held */
	pthread_mutex_unlock(&l->table_lock);
	return e;
}

struct hm__entry *hm__table_get_key(hm_loader *l, const char *key, size_t len)
{
	size_t stem = hm__stem_len(key, len);

	return hm__table_get(l, key, stem, stem < len);
}

void hm__entry_release(struct hm__entry *e)
{
	/* release: the sweeper's acquire load of users before it frees e
	 * sees everything this holder did with e */
	if (e)
		atomic_fetch_sub_explicit(&e->users, 1, memory_order_release);
}

void hm__entry_free(struct hm__entry *e)
{
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}

void hm__table_free_one(struct hm__table *t, bool entries)
{
	for (size_t i = 0; entries && i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_relaxed);
		if (e)
			hm__entry_free(e);
	}
	free(t);
}

/* Replace the table by t; table_lock held.  The old one waits for a
 * grace period (readers may be probing it). */
void hm__table_replace(hm_loader *l, struct hm__table *t)
{
	struct hm__table *old = atomic_load_explicit(&l->table, memory_order_relaxed);

	old->retired_next = l->retired;
	l->retired = old;
	/* release: pairs with the readers' acquire load of the table */
	atomic_store_explicit(&l->table, t, memory_order_release);
}

/* Move to a table twice the size; table_lock held. */
static int hm__table_grow(hm_loader *l)
{
	struct hm__table *old = atomic_load_explicit(&l->table, memory_order_relaxed);
	struct hm__table *t = hm__table_new((old->mask + 1) * 2, &old->seed);

	if (!t)
		return HM_ENOMEM;
	for (size_t i = 0; i <= old->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&old->slots[i].entry,
			memory_order_relaxed);
		if (e)
			hm__place(t, e, old->slots[i].hash);
	}
	hm__table_replace(l, t);
	return 0;
}

int hm__table_insert(hm_loader *l, const char *key, size_t key_len, bool is_global,
	struct hm__entry **out)
{
	size_t stem = hm__stem_len(key, key_len);
	struct hm__entry *e;
	struct hm__table *t;
	const char *slash;
	bool grew = false;
	int rc = 0;

	pthread_mutex_lock(&l->table_lock);
	if (atomic_load_explicit(&l->closing, memory_order_relaxed)) {
		rc = hm__fail(HM_ECLOSED, "%.*s: loader is closing", (int)key_len, key);
		goto out;
	}
	if ((e = hm__find_locked(l, key, stem, stem < key_len)) != NULL) {
		hm__entry_hold(e);
		goto found;
	}
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	if (t->count + 1 > (t->mask + 1) / 2) {
		if (hm__table_grow(l) < 0) {
			rc = hm__fail(HM_ENOMEM, "%.*s: out of memory", (int)key_len, key);
			goto out;
		}
		grew = true;
	}
	/* A module knows its global's key: built once, here. */
	char gkey[HM__KEY_MAX + 1];
	int glen = is_global ? 0 : hm__global_key(gkey, sizeof gkey, key, key_len,
					      l->global_name);
	e = calloc(1, sizeof *e + key_len + 1 + (glen > 0 ? (size_t)glen + 1 : 0));
	if (!e) {
		rc = hm__fail(HM_ENOMEM, "%.*s: out of memory", (int)key_len, key);
		goto out;
	}
	e->loader = l;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	atomic_init(&e->users, 1); /* the caller's */
	e->is_global = is_global;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	e->global_len = glen;
	if (glen > 0) {
		e->global_key = e->key + key_len + 1;
		memcpy((char *)e->global_key, gkey, (size_t)glen);
	}
	slash = memrchr(key, '/', key_len);
	e->dir_len = slash ? (size_t)(slash - key) + 1 : 0;
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	uint64_t h = hm__hash(&t->seed, key, stem);
	e->next_number = hm__sweeper_first_number(l, h);
	hm__place(t, e, h);
found:
	*out = e;
out:
	pthread_mutex_unlock(&l->table_lock);
	/* A table that fills up may hold entries of files long gone. */
	if (grew)
		hm__sweeper_hint(l);
	return rc;
}

int hm__table_init(hm_loader *l)
{
	struct hm__seed seed;
	struct hm__table *t;
	int rc;

	hm__seed_init(&seed, l);
	if (!(t = hm__table_new(HM__TABLE_MIN, &seed)))
		return HM_ENOMEM;
	atomic_init(&l->table, t);
	if ((rc = hm__sweeper_init(l)) < 0) {
		hm__table_free_one(t, false);
		atomic_init(&l->table, NULL);
	}
	return rc;
}

/*
 * Call fn on every entry, with no lock held (fn may load and run hooks).
 * While it walks, the sweeper unlinks nothing and frees no retired table,
 * so the snapshot it walks and every entry in it stay; entries inserted
 * meanwhile may be missed.  Once closing is set nothing is inserted, so it
 * sees them all.
 */
void hm__table_each(hm_loader *l, void (*fn)(struct hm__entry *, void *), void *arg)
{
	struct hm__table *t;

	pthread_mutex_lock(&l->table_lock);
	l->walkers++;
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	pthread_mutex_unlock(&l->table_lock);
	for (size_t i = 0; i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_acquire);
		if (e)
			fn(e, arg);
	}
	pthread_mutex_lock(&l->table_lock);
	l->walkers--;
	pthread_mutex_unlock(&l->table_lock);
}

void hm__table_stats(hm_loader *l, struct hm__table_stats *st)
{
	const struct hm__table *t;
	size_t run = 0, first_run = 0;
	bool wrapped = false;

	memset(st, 0, sizeof *st);
	pthread_mutex_lock(&l->table_lock);
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	st->slots = t->mask + 1;
	st->entries = t->count;
	st->seed = t->seed;
	for (size_t i = 0; i <= t->mask; i++) {
		if (!atomic_load_explicit(&t->slots[i].entry, memory_order_relaxed)) {
			if (!wrapped) {
				first_run = run; /* joins the run at the end */
				wrapped = true;
			}
			run = 0;
			continue;
		}
		size_t probe = ((i - (t->slots[i].hash & t->mask)) & t->mask) + 1;
		st->probes += probe;
		if (probe > st->longest_probe)
			st->longest_probe = probe;
		if (++run > st->longest_run)
			st->longest_run = run;
	}
	if (run + first_run > st->longest_run)
		st->longest_run = run + first_run;
	pthread_mutex_unlock(&l->table_lock);
	hm__sweeper_stats(l, st);
}


void hm__table_free(hm_loader *l)
{
	struct hm__table *t = atomic_load_explicit(&l->table, memory_order_relaxed);

	hm__sweeper_free(l); /* frees the unlinked entries: in no table but retired ones */
	if (t)
		hm__table_free_one(t, true);
	while ((t = l->retired) != NULL) {
		l->retired = t->retired_next;
		hm__table_free_one(t, false);
	}
}
