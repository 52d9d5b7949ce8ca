/* SPDX-License-Identifier: MIT */
/*
 * table.h - the first level of the cache: key -> entry, a hash table
 * read without a lock (table.c), whose entries of files gone are freed by
 * the sweeper (sweeper.c).
 */
#ifndef HOTMOD_TABLE_H
#define HOTMOD_TABLE_H

#include "common.h"
#include "entry.h"

/* ---- the hash ------------------------------------------------------------------- */

/*
 * Keys are hashed without their ".so", so that a request path ("a/b") is
 * hashed as it comes, with no copy.  Word at a time: a request's lookup is
 * a fifth of its instructions otherwise.
 *
 * Every input bit reaches every output bit (full avalanche): names that
 * differ only in their last characters (m00001, m00002 ...) spread over
 * the whole table instead of filling one run of slots.  The mix is a
 * 64x64->128-bit multiply whose two halves are folded together (the
 * "folded multiply" of wyhash and komihash), written here from that idea:
 * 16 bytes per multiply, then one more to spread the last one.  Both
 * operands of every multiply carry a secret per-loader seed (getrandom()
 * at hm_open(), table.c), so neither natural name sets nor someone who can
 * create files and knows this code can choose names that pile up: which
 * names collide differs in every loader.
 */
struct hm__seed {
	uint64_t k[2]; /* k[1] odd */
};
static inline uint64_t hm__load64(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof w);
	return w;
}
static inline uint64_t hm__load32(const char *p)
{
	uint32_t w;
	memcpy(&w, p, sizeof w);
	return w;
}
/* The folded multiply: the low and high halves of a * b, xored. */
static inline uint64_t hm__fold(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}
static inline uint64_t hm__hash(const struct hm__seed *s, const char *p, size_t len)
{
	uint64_t acc = s->k[1] ^ len, a, b;

	if (len <= 16) {
		/* 0 to 16 bytes as two words, overlapping when shorter:
		 * the length in acc tells "abcd" from "abcdabcd". */
		if (len >= 8) {
			a = hm__load64(p);
			b = hm__load64(p + len - 8);
		} else if (len >= 4) {
			a = hm__load32(p);
			b = hm__load32(p + len - 4);
		} else if (len > 0) {
			a = (uint64_t)(unsigned char)p[0] << 16 |
			    (uint64_t)(unsigned char)p[len / 2] << 8 | (unsigned char)p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		/* 16 bytes a step, then the last 16 (overlapping the step before). */
		size_t n = len;
		do {
			acc = hm__fold(hm__load64(p) ^ s->k[0], hm__load64(p + 8) ^ acc);
			p += 16;
			n -= 16;
		} while (n > 16);
		a = hm__load64(p + n - 16);
		b = hm__load64(p + n - 8);
	}
	/* The second multiply (by an odd secret) spreads the first one's
	 * result over all bits, the low ones (the slot) included. */
	return hm__fold(hm__fold(a ^ s->k[0], b ^ acc), s->k[1]);
}
/* a[0..n) == b[0..n), inline: keys are short. */
static inline bool hm__bytes_eq(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8)
			if (hm__load64(a + i) != hm__load64(b + i))
				return false;
		return hm__load64(a + n - 8) == hm__load64(b + n - 8);
	}
	if (n >= 4)
		return hm__load32(a) == hm__load32(b) &&
		       hm__load32(a + n - 4) == hm__load32(b + n - 4);
	return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
}
/* The length of key without a trailing ".so": what is hashed. */
static inline size_t hm__stem_len(const char *key, size_t len)
{
	return len >= 3 && memcmp(key + len - 3, ".so", 3) == 0 ? len - 3 : len;
}

/* ---- the table ------------------------------------------------------------------ */

/*
 * The hash table: open addressing, linear probing, at most half full, so a
 * probe always ends at an empty slot.  A slot is filled once (hash, then
 * the entry with release) and never changed or emptied; readers probe
 * without a lock, inside their lookup window (hm__window_open).  Growth,
 * and the sweeper removing entries of files that are gone, build a new
 * table, publish it and retire the old one, which is freed only once
 * every lookup window open at the time has closed (sweeper.c).
 */
/* Slots of the smallest table. */
#define HM__TABLE_MIN 64
struct hm__slot {
	_Atomic(struct hm__entry *) entry; /* NULL: empty */
	uint64_t hash;                     /* written before entry */
};
struct hm__table {
	size_t mask;  /* slots - 1 */
	struct hm__seed seed; /* the loader's: the same in every table */
	size_t count; /* entries; written under table_lock */
	struct hm__table *retired_next;
	struct hm__slot slots[];
};

/*
 * The entry whose key is p[0..len), followed by ".so" when so is set, in
 * t (loaded with acquire by the caller), probing from hash h; NULL if none.
 * Inline: with so constant, each caller gets its own compare.
 */
__attribute__((always_inline)) static inline struct hm__entry *hm__table_probe(
	const struct hm__table *t, uint64_t h, const char *p, size_t len, bool so)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		/* acquire: pairs with the release store that filled the slot */
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_acquire);
		if (!e)
			return NULL;
		if (t->slots[i].hash == h && e->key_len == len + (so ? 3 : 0) &&
		    hm__bytes_eq(e->key, p, len) && (!so || memcmp(e->key + len, ".so", 3) == 0))
			return e;
	}
}

/*
 * Entries live while they are in the table, and after it as long as
 * someone holds them.  The request path's lookup window protects what it
 * finds until the window closes (below); everyone else holds the entries
 * they use: hm__table_get(), hm__table_insert() and hm__global_entry()
 * return them held, hm__entry_hold() holds one found in a window, and
 * hm__entry_release() lets it go.  hm__table_each() holds them all while
 * it walks.  The sweeper (sweeper.c) unlinks only entries nobody holds, of
 * files that are gone, with no version alive: see docs/DESIGN.md.
 */
/* The entry for key p[0..len) (followed by ".so" when so), held; NULL if none. */
HM__HIDDEN struct hm__entry *hm__table_get(hm_loader *l, const char *p, size_t len, bool so);
/* The same for a whole key ("a/b.so", "a/_global.so"). */
HM__HIDDEN struct hm__entry *hm__table_get_key(hm_loader *l, const char *key, size_t len);
/* Find or create it (the brief table lock), held. */
HM__HIDDEN int hm__table_insert(hm_loader *l, const char *key, size_t key_len,
	bool is_global, struct hm__entry **out);
HM__HIDDEN void hm__entry_release(struct hm__entry *e);
HM__HIDDEN int hm__table_init(hm_loader *l);
/* Call fn on every entry in the table, no lock held; nothing is unlinked
 * meanwhile.  Entries inserted meanwhile may be missed. */
HM__HIDDEN void hm__table_each(hm_loader *l, void (*fn)(struct hm__entry *, void *),
	void *arg);
HM__HIDDEN void hm__table_free(hm_loader *l);
/* For tests (tests/check_table.c): the table's shape. */
struct hm__table_stats {
	size_t slots, entries, held_back; /* held_back: unlinked, not freed yet */
	size_t longest_probe;  /* slots a lookup of an entry reads, at most */
	size_t probes;         /* ... summed over all entries */
	size_t longest_run;    /* filled slots in a row: a miss reads one more */
	struct hm__seed seed;
	size_t passes;         /* passes of the sweeper */
	size_t sweeps;         /* ... that unlinked something */
};
HM__HIDDEN void hm__table_stats(hm_loader *l, struct hm__table_stats *st);

/* ---- what the sweeper (sweeper.c) uses of the table, table_lock held ---------- */

HM__HIDDEN struct hm__table *hm__table_new(size_t slots, const struct hm__seed *seed);
/* Fill the first empty slot from h (or t unpublished). */
HM__HIDDEN void hm__place(struct hm__table *t, struct hm__entry *e, uint64_t h);
/* Publish t; the old table waits for a grace period (readers may probe it). */
HM__HIDDEN void hm__table_replace(hm_loader *l, struct hm__table *t);
HM__HIDDEN void hm__entry_free(struct hm__entry *e);
HM__HIDDEN void hm__table_free_one(struct hm__table *t, bool entries);

/* ---- the sweeper (sweeper.c) ------------------------------------------------------ */

/* Make the sweeper and start its thread (asleep until a hint). */
HM__HIDDEN int hm__sweeper_init(hm_loader *l);
/* Stop it; free the entries it unlinked and has not freed. */
HM__HIDDEN void hm__sweeper_free(hm_loader *l);
/* The first version number of a new entry whose key hashes to h: where an
 * unlinked entry of the same name stopped.  table_lock held. */
HM__HIDDEN uint64_t hm__sweeper_first_number(hm_loader *l, uint64_t h);
HM__HIDDEN void hm__sweeper_stats(hm_loader *l, struct hm__table_stats *st);
/* A file may be gone (a missing look, a dropped version, a grown table):
 * wake the sweeper.  Any lock but table_lock may be held. */
HM__HIDDEN void hm__sweeper_hint(hm_loader *l);

#endif /* HOTMOD_TABLE_H */
