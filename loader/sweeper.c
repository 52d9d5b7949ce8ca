/* SPDX-License-Identifier: MIT */
/*
 * sweeper.c - the end of entries.  Entries of files that are gone are
 * freed here, by the sweeper thread (started at hm_open(), asleep until the
 * first hint that some file may be gone), so that names come and go
 * without the table (table.c) growing: a tree that had 10,000 files once
 * and has 10 now has a table for 10.  A pass of the sweeper:
 *
 *  1. picks entries with no current version, no load running, no version
 *     still alive (versions: a version's fini and status use its entry) and
 *     no holder, whose file is gone (a stat says ENOENT; a file that exists
 *     but failed keeps its entry, so that it is not loaded again until it
 *     changes, and the tree bounds those);
 *  2. under the table lock, with no hm__table_each() walking, marks them
 *     dead (under each one's lock: a holder that finds it dead looks the
 *     name up again, and nothing loads into it any more), and publishes a
 *     new table without them, sized for what is left;
 *  3. waits for a grace period (hm__hazard_grace: membarrier, then every
 *     lookup window that was open has closed), after which no request can
 *     reach them or the old tables any more;
 *  4. frees those nobody holds (a request that found one just before and
 *     went to its slow path holds it; it is freed by a later pass).
 *
 * Where a grace period is impossible (no membarrier, or a thread without a
 * lookup window) unlinked entries and old tables are kept until
 * hm_close(), as every entry was before: this is logged once.
 */
#include "loader.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/* Hints are gathered this long before a pass: a removal rarely comes alone. */
#define HM__SWEEP_DELAY_NS (100 * (int64_t)1000000)
/* A pass that left something for later (a holder, a version not yet
 * finalised) tries again after 50 ms, 100 ms, ... this many times. */
#define HM__SWEEP_RETRIES 10

struct hm__sweeper {
	pthread_mutex_t lock; /* protects the members up to "The thread's own" */
	pthread_cond_t cond;  /* hints, stop */
	pthread_t thread;
	bool started;
	bool start_failed;     /* logged once, tried again at the next hint */
	unsigned hints;        /* since the last pass */
	int64_t hint_since;    /* hm__now() of the first of them */
	unsigned retries;      /* passes that left something, in a row */
	int64_t retry_at;      /* 0: none due */
	size_t held_back;      /* unlinked, not freed yet (limbo + held) */
	size_t passes;         /* passes */
	size_t sweeps;         /* passes that unlinked something */
	atomic_bool stop;      /* hm__table_free(); also read by the grace wait */

	/*
	 * Version numbers of unlinked entries, by hash (table_lock): a file
	 * that comes back goes on counting where it stopped, as hm_get(3)
	 * promises.  Bounded: when it fills up it is emptied, and its highest
	 * number becomes the floor that every new entry starts from, so no
	 * number is ever reused for a path (only first numbers grow).
	 */
	uint64_t *tombs;  /* HM__TOMBS hashes (0: empty), then their numbers */
	size_t ntombs;
	uint64_t floor;

	/* The thread's own (then hm__table_free's, once it stopped). */
	struct hm__entry *limbo; /* unlinked, waiting for a grace period */
	struct hm__entry *held;  /* past one, still held by someone */
	bool logged_never;       /* "kept until hm_close" said */
};

static int hm__sweeper_start(hm_loader *l, struct hm__sweeper *sw, bool *first);
static void hm__sweeper_failed(const hm_loader *l, int rc);

/* ---- version numbers of entries gone ------------------------------------------------ */

#define HM__TOMBS 2048

/* Remember that the name hashing to h counted to next_number; table_lock held. */
static void hm__tomb_put(struct hm__sweeper *sw, uint64_t h, uint64_t next_number)
{
	size_t i;

	if (next_number <= 1) /* no version was ever numbered: nothing to go on from */
		return;
	if (!sw->tombs && !(sw->tombs = calloc(2 * HM__TOMBS, sizeof *sw->tombs))) {
		sw->floor = next_number > sw->floor ? next_number : sw->floor;
		return;
	}
	if (sw->ntombs + 1 > HM__TOMBS / 2) {
		for (i = 0; i < HM__TOMBS; i++)
			if (sw->tombs[i] && sw->tombs[HM__TOMBS + i] > sw->floor)
				sw->floor = sw->tombs[HM__TOMBS + i];
		memset(sw->tombs, 0, 2 * HM__TOMBS * sizeof *sw->tombs);
		sw->ntombs = 0;
	}
	h |= !h;
	for (i = h & (HM__TOMBS - 1); sw->tombs[i] && sw->tombs[i] != h; i = (i + 1) & (HM__TOMBS - 1))
		;
	if (!sw->tombs[i]) {
		sw->tombs[i] = h;
		sw->ntombs++;
	}
	/* Two names with one hash share it: the higher number, never a lower. */
	if (next_number > sw->tombs[HM__TOMBS + i])
		sw->tombs[HM__TOMBS + i] = next_number;
}

/* The first number for a new entry of the name hashing to h; table_lock held. */
static uint64_t hm__tomb_get(const struct hm__sweeper *sw, uint64_t h)
{
	h |= !h;
	for (size_t i = h & (HM__TOMBS - 1); sw->tombs && sw->tombs[i];
	     i = (i + 1) & (HM__TOMBS - 1))
		if (sw->tombs[i] == h) /* its own, or a higher one */
			return sw->tombs[HM__TOMBS + i] > sw->floor ? sw->tombs[HM__TOMBS + i]
								      : sw->floor;
	return sw->floor > 1 ? sw->floor : 1;
}

/* ---- the sweeper ------------------------------------------------------------------ */

/* Can e go, as far as its own state says?  e->lock held. */
static bool hm__entry_idle(struct hm__entry *e)
{
	return !e->dead && !atomic_load_explicit(&e->current, memory_order_relaxed) &&
	       !e->loading_by && e->versions == 0 &&
	       atomic_load_explicit(&e->users, memory_order_relaxed) == 0;
}

struct hm__cands {
	struct hm__entry **v;
	size_t n, cap;
};

static bool hm__cands_add(struct hm__cands *c, struct hm__entry *e)
{
	if (!HM__GROW(c->v, c->cap, c->n))
		return false;
	c->v[c->n++] = e;
	return true;
}

/* Slots for count entries after a pass: at most a quarter full, so that
 * it can double before growing; never more than it has now. */
static size_t hm__slots_for(size_t count, size_t now)
{
	size_t slots = HM__TABLE_MIN;

	while (slots < 4 * count && slots < now)
		slots *= 2;
	return slots;
}

/*
 * Steps 1 and 2: find the entries of files that are gone and unlink them
 * into sw->limbo.  Returns how many; *again when some may go later.
 */
static size_t hm__sweep_unlink(hm_loader *l, struct hm__sweeper *sw, bool *again)
{
	/* acquire: the entries in it are complete.  Only this thread frees
	 * tables and entries, so t and its entries stay while it reads. */
	struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire), *nt;
	struct hm__cands c = {0};
	struct hm__fileid id;
	size_t gone = 0, dead = 0;

	for (size_t i = 0; i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_acquire);
		bool empty;
		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		empty = !e->dead && !atomic_load_explicit(&e->current, memory_order_relaxed);
		pthread_mutex_unlock(&e->lock);
		if (empty && !hm__cands_add(&c, e)) {
			*again = true; /* out of memory: the next pass */
			break;
		}
	}
	/* Gone: no file any more.  One stat each, no lock held. */
	for (size_t i = 0; i < c.n; i++)
		if (hm__stat_key(l, c.v[i]->key, &id) == HM_ENOENT)
			c.v[gone++] = c.v[i];
	if (gone == 0)
		goto out;

	pthread_mutex_lock(&l->table_lock);
	if (l->walkers > 0) {
		pthread_mutex_unlock(&l->table_lock);
		*again = true;
		goto out;
	}
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	for (size_t i = 0; i < gone; i++) {
		struct hm__entry *e = c.v[i];
		pthread_mutex_lock(&e->lock);
		if (hm__entry_idle(e)) {
			e->dead = true;
			c.v[dead++] = e;
			hm__tomb_put(sw, hm__hash(&t->seed, e->key, hm__stem_len(e->key, e->key_len)),
				e->next_number);
		} else {
			*again = true; /* a holder, a load, a version: later */
		}
		pthread_mutex_unlock(&e->lock);
	}
	if (dead == 0) {
		pthread_mutex_unlock(&l->table_lock);
		goto out;
	}
	t = atomic_load_explicit(&l->table, memory_order_relaxed);
	nt = hm__table_new(hm__slots_for(t->count - dead, t->mask + 1), &t->seed);
	if (!nt) {
		/* Out of memory: leave them in, alive again. */
		for (size_t i = 0; i < dead; i++) {
			pthread_mutex_lock(&c.v[i]->lock);
			c.v[i]->dead = false;
			pthread_mutex_unlock(&c.v[i]->lock);
		}
		pthread_mutex_unlock(&l->table_lock);
		*again = true;
		dead = 0;
		goto out;
	}
	for (size_t i = 0; i <= t->mask; i++) {
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_relaxed);
		/* dead is written by this thread only: read without e->lock */
		if (e && !e->dead)
			hm__place(nt, e, t->slots[i].hash);
	}
	hm__table_replace(l, nt);
	pthread_mutex_unlock(&l->table_lock);
	for (size_t i = 0; i < dead; i++) {
		c.v[i]->limbo_next = sw->limbo;
		sw->limbo = c.v[i];
	}
out:
	free(c.v);
	return dead;
}

/* Steps 3 and 4: after a grace period, free what was unlinked and what
 * nobody holds.  Returns whether something is left for later. */
static bool hm__sweep_free(hm_loader *l, struct hm__sweeper *sw)
{
	struct hm__table *tables = NULL, *t;
	struct hm__entry *e, *next, *keep = NULL;
	size_t held_back = 0;
	bool again = false;
	int rc;

	pthread_mutex_lock(&l->table_lock);
	if (l->walkers == 0) { /* a walk may be reading a retired table */
		tables = l->retired;
		l->retired = NULL;
	} else if (l->retired) {
		again = true;
	}
	pthread_mutex_unlock(&l->table_lock);

	if (tables || sw->limbo) {
		rc = hm__hazard_grace(&sw->stop);
		if (rc != 0) {
			/* Nothing is known to be unreachable: keep all of it. */
			if (tables) {
				pthread_mutex_lock(&l->table_lock);
				for (t = tables; t->retired_next; t = t->retired_next)
					;
				t->retired_next = l->retired;
				l->retired = tables;
				pthread_mutex_unlock(&l->table_lock);
				tables = NULL;
			}
			if (rc == HM__GRACE_LATER)
				again = true;
			else if (!sw->logged_never) {
				sw->logged_never = true;
				hm__log(l, HM_LOG_WARN, "%s: %s: entries of removed files are "
					"freed only at hm_close()", l->root,
					rc == HM__GRACE_NONE ? "no membarrier(2) in this process"
							     : "a thread looks up modules without "
							       "a lookup window (out of memory)");
			}
		} else {
			/* Graced: no request reaches them any more. */
			while ((e = sw->limbo) != NULL) {
				sw->limbo = e->limbo_next;
				e->limbo_next = sw->held;
				sw->held = e;
			}
		}
	}
	while ((t = tables) != NULL) {
		tables = t->retired_next;
		hm__table_free_one(t, false);
	}
	for (e = sw->held; e; e = next) {
		next = e->limbo_next;
		/* acquire: pairs with hm__entry_release(); no hold can come any
		 * more (it is in no table a request can reach) */
		if (atomic_load_explicit(&e->users, memory_order_acquire) == 0) {
			hm__entry_free(e);
		} else {
			e->limbo_next = keep;
			keep = e;
			held_back++;
			again = true;
		}
	}
	sw->held = keep;
	for (e = sw->limbo; e; e = e->limbo_next)
		held_back++;
	pthread_mutex_lock(&sw->lock);
	sw->held_back = held_back;
	pthread_mutex_unlock(&sw->lock);
	return again;
}

/* One pass; true when something is left for a later one. */
static bool hm__sweep(hm_loader *l, struct hm__sweeper *sw)
{
	bool again = false;

	size_t unlinked = hm__sweep_unlink(l, sw, &again);

	again = hm__sweep_free(l, sw) || again;
	pthread_mutex_lock(&sw->lock);
	sw->passes++;
	sw->sweeps += unlinked > 0;
	pthread_mutex_unlock(&sw->lock);
	return again;
}

static void *hm__sweeper_main(void *arg)
{
	hm_loader *l = arg;
	struct hm__sweeper *sw = l->sweeper;

	pthread_mutex_lock(&sw->lock);
	while (!atomic_load_explicit(&sw->stop, memory_order_relaxed)) {
		int64_t due;
		if (sw->hints) {
			due = sw->hint_since + HM__SWEEP_DELAY_NS;
		} else if (sw->retry_at) {
			due = sw->retry_at;
		} else {
			pthread_cond_wait(&sw->cond, &sw->lock);
			continue;
		}
		if (hm__now() < due) {
			struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
			int rc = pthread_cond_timedwait(&sw->cond, &sw->lock, &ts);
			/* A wait that fails returns at once with the lock held:
			 * looping on it would spin and keep the lock from
			 * everyone.  Sweep now instead (early is only less
			 * batched); the retries below are bounded. */
			if (rc == 0 || rc == ETIMEDOUT)
				continue;
		}
		sw->hints = 0;
		sw->retry_at = 0;
		pthread_mutex_unlock(&sw->lock);
		bool again = hm__sweep(l, sw);
		pthread_mutex_lock(&sw->lock);
		if (!again || sw->retries == HM__SWEEP_RETRIES) {
			sw->retries = 0; /* until the next hint */
		} else {
			sw->retry_at = hm__now() + (HM__SWEEP_DELAY_NS / 2 << sw->retries);
			sw->retries++;
		}
	}
	pthread_mutex_unlock(&sw->lock);
	return NULL;
}

/* Start the thread unless it runs; sw->lock held.  An error number, and
 * *first when this is the first failure in a row (then it is logged). */
static int hm__sweeper_start(hm_loader *l, struct hm__sweeper *sw, bool *first)
{
	sigset_t all, old;
	int rc;

	*first = false;
	if (sw->started || atomic_load_explicit(&sw->stop, memory_order_relaxed))
		return 0;
	/* Its signals stay with the embedder. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sw->thread, NULL, hm__sweeper_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sw->started = rc == 0;
	if (sw->started)
		pthread_setname_np(sw->thread, "hotmod-sweep");
	*first = !sw->started && !sw->start_failed;
	sw->start_failed = !sw->started;
	return rc;
}

static void hm__sweeper_failed(const hm_loader *l, int rc)
{
	hm__log(l, HM_LOG_WARN, "%s: cannot start the sweeper thread (%s): entries of "
				"removed files stay until it can", l->root, strerror(rc));
}

void hm__sweeper_hint(hm_loader *l)
{
	struct hm__sweeper *sw = l->sweeper;
	bool first;
	int rc;

	pthread_mutex_lock(&sw->lock);
	if (sw->hints++ == 0)
		sw->hint_since = hm__now();
	rc = hm__sweeper_start(l, sw, &first); /* again, if it could not at open */
	pthread_cond_signal(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
	if (first)
		hm__sweeper_failed(l, rc);
}

int hm__sweeper_init(hm_loader *l)
{
	struct hm__sweeper *sw = calloc(1, sizeof *sw);
	pthread_condattr_t ca;
	bool first;
	int rc;

	if (!sw)
		return HM_ENOMEM;
	/* The sweeper's deadlines are on this clock: without it, every
	 * timed wait would return at once. */
	pthread_condattr_init(&ca);
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0) {
		pthread_condattr_destroy(&ca);
		free(sw);
		return HM_ESYS;
	}
	pthread_cond_init(&sw->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&sw->lock, NULL);
	atomic_init(&sw->stop, false);
	l->sweeper = sw;
	/*
	 * Started now, not at the first hint: a process that opens a loader
	 * again (a reload of its configuration, a test's warm-up) then finds
	 * the thread's stack in glibc's cache, as it finds the watcher's,
	 * instead of mapping one more.  It sleeps until a file may be gone.
	 */
	pthread_mutex_lock(&sw->lock);
	rc = hm__sweeper_start(l, sw, &first);
	pthread_mutex_unlock(&sw->lock);
	if (first)
		hm__sweeper_failed(l, rc);
	return 0;
}

uint64_t hm__sweeper_first_number(hm_loader *l, uint64_t h)
{
	return hm__tomb_get(l->sweeper, h);
}

void hm__sweeper_stats(hm_loader *l, struct hm__table_stats *st)
{
	struct hm__sweeper *sw = l->sweeper;

	pthread_mutex_lock(&sw->lock);
	st->held_back = sw->held_back;
	st->passes = sw->passes;
	st->sweeps = sw->sweeps;
	pthread_mutex_unlock(&sw->lock);
}

/* Stop the thread; free the entries it unlinked (they are in no table but
 * retired ones, which hm__table_free() frees without their entries). */
void hm__sweeper_free(hm_loader *l)
{
	struct hm__sweeper *sw = l->sweeper;
	struct hm__entry *e;

	if (!sw)
		return;
	pthread_mutex_lock(&sw->lock);
	atomic_store(&sw->stop, true);
	pthread_cond_broadcast(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
	if (sw->started)
		pthread_join(sw->thread, NULL);
	while ((e = sw->limbo) != NULL) {
		sw->limbo = e->limbo_next;
		hm__entry_free(e);
	}
	while ((e = sw->held) != NULL) {
		sw->held = e->limbo_next;
		hm__entry_free(e);
	}
	pthread_mutex_destroy(&sw->lock);
	pthread_cond_destroy(&sw->cond);
	free(sw->tombs);
	free(sw);
	l->sweeper = NULL;
}
