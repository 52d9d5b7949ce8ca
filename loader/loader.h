/* SPDX-License-Identifier: MIT */
/*
 * loader.h - struct hm_loader, the handle every function takes
 * (open.c makes it), the request path's slow parts (miss.c) and fork.
 */
#ifndef HOTMOD_LOADER_H
#define HOTMOD_LOADER_H

#include "common.h"
#include "entry.h"
#include "table.h"

struct hm_loader {
	/* Constant from hm_open() to hm_close(). */
	int rootfd;
	char *root;
	char *global_name;
	hm_log_fn log;
	void *log_arg;
	void *app;
	int64_t check_ns; /* < 0: never */
	unsigned trust;
	size_t max_size;
	int max_depth;
	uid_t euid;
	unsigned flags;
	int64_t removal_delay_ns;
	char *request_kind; /* NULL: any */
	int (*admit)(void *, struct hm_admission *); /* hm_options */
	void *admit_arg;
	unsigned fork_gen; /* hm__forks when opened: a child sees another */
	struct hm__watch *watch; /* NULL in stat mode */
	struct hm__pending *pending; /* files to look at later; NULL in stat mode */
	/* Names the rule refused, logged a few a minute (scan.c). */
	atomic_llong skip_window; /* hm__now() when the minute began */
	atomic_uint skip_logged;  /* lines in this minute */

	/* Set once by hm_close(); checked on slow paths only. */
	atomic_bool closing;
	/* Calls in a slow path (loading, checking): hm_close() waits for 0. */
	atomic_uint busy;

	/*
	 * The table.  Readers load it with acquire (pairs with the release
	 * store that published a new one) and probe it without a lock, in
	 * their lookup window.  A replaced table is retired, and freed with
	 * the entries unlinked with it after a grace period (sweeper.c).
	 */
	_Atomic(struct hm__table *) table;
	pthread_mutex_t table_lock; /* protects: inserts, growth, unlinking,
				       retired, walkers */
	struct hm__table *retired;
	unsigned walkers;              /* hm__table_each() calls running */
	struct hm__sweeper *sweeper;   /* sweeper.c */

	/* Deadlock detection between loads: entry->loading_by and
	 * hm__thread.waiting_for.  Taken after an entry lock, never before. */
	pthread_mutex_t graph_lock;

	pthread_mutex_t ver_lock; /* protects everything below */
	pthread_cond_t ver_cond;  /* reaper work, and live == 0 for close */
	struct hm__version *live;   /* every version not yet finalised */
	size_t nlive;
	struct hm__version *free_slots;
	struct hm__version *reap_head, *reap_tail;
	struct hm__version *deferred; /* found in a hazard slot: scanned again */
	bool deferred_wake;         /* a slot holding one was cleared */
	unsigned quiescing;         /* deferred ones waiting for HM__HZ_WAIT to end */
	unsigned finalising;        /* versions the reaper has taken and not ended */
	bool reaper_started, reaper_stop;
	pthread_t reaper;
	uint64_t pinned; /* objects still mapped after dlclose (dl.c) */
};

/* ---- the request path's slow parts (miss.c) --------------------------- */

/* Stat the file of e, as a request in stat mode does when its time came. */
HM__HIDDEN void hm__check_on_request(struct hm__entry *e);
/*
 * Get path[0..len) when the fast path could not: e is its entry, held by
 * the caller and released here, or NULL; check: its stat check is due.
 */
HM__HIDDEN int hm__get_miss(hm_loader *l, const char *path, size_t len,
	struct hm__entry *e, bool check, struct hm__version **out);
/*
 * The entry for a request path (without its leading '/'), whose key is the
 * path with ".so"; NULL if there is none yet.  No lock: only inside a
 * lookup window.
 */
__attribute__((always_inline)) static inline struct hm__entry *
hm__find_request(hm_loader *l, const char *path, size_t len)
{
	/* acquire: pairs with the release store of a new table */
	const struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire);

	return hm__table_probe(t, hm__hash(&t->seed, path, len), path, len, true);
}

/* ---- fork (open.c) -------------------------------------------------------- */

/* Incremented in every child after fork(); see hm__forked(). */
extern HM__HIDDEN atomic_uint hm__forks;
static inline bool hm__forked(const hm_loader *l)
{
	return atomic_load_explicit(&hm__forks, memory_order_relaxed) != l->fork_gen;
}
HM__HIDDEN int hm__fork_error(const hm_loader *l);

/*
 * What every public function that takes a loader checks first: l and the
 * other pointers it takes (a, b: pass l again for none) given, HM_EINVAL
 * naming fn if not; the loader is this process's (HM_EFORK); and, for what
 * starts new work (closing set), that it is not closing (HM_ECLOSED).
 * 0: go on.
 */
HM__HIDDEN int hm__api_error(const hm_loader *l, const void *a, const void *b,
	const char *fn) __attribute__((cold));
static inline int hm__api_check(const hm_loader *l, const void *a, const void *b,
	const char *fn, bool closing)
{
	if (__builtin_expect(!l || !a || !b || hm__forked(l) ||
			     (closing && atomic_load_explicit(&l->closing, memory_order_relaxed)),
		    0))
		return hm__api_error(l, a, b, fn);
	return 0;
}

#endif /* HOTMOD_LOADER_H */
