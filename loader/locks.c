/* SPDX-License-Identifier: MIT */
/*
 * locks.c - named locks of the process, held by requests (hm_lock(3)).
 *
 * A lock is found by its exact name (a hash table of names in use, not
 * slots that unrelated names share), shared or exclusive, and held by a
 * request: the outermost call of a chain of nested calls on one thread
 * that carry the same request pointer (an internal redirect is a nested
 * call of the same request).  A request that takes a lock it holds again
 * counts one more hold; another request, even on the same thread, waits
 * or fails.  Every hold of a request is released when its outermost call
 * returns (hm__locks_end(), from hm__call()), committed or rolled back.
 *
 * One mutex guards the table, every lock and every request's waiting
 * state: lock operations are rare next to requests (a session's lock is
 * taken once a request), and one mutex makes deadlock detection a
 * consistent walk of the wait-for graph, done before each wait.  A
 * request that would wait for a lock held by a request it is nested in
 * (on the same thread) would wait for itself: HM_EDEADLK at once.
 *
 * Memory is what is held and waited for: a lock's entry is freed when its
 * last holder and waiter leave, so a flood of distinct names costs
 * nothing once they are released, and HM__LOCKS_MAX and
 * HM__LOCKS_PER_REQUEST bound what can be held at once.
 */
#include "loader.h"
#include "hooks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fault.h" /* last: see fault.h */

/* Names in use at once in the process, and held by one request. */
#define HM__LOCKS_MAX 65536
#define HM__LOCKS_PER_REQUEST 64
#define HM__LOCK_BUCKETS 4096 /* a power of two */

struct hm__lockset;

/* One request's hold of one lock. */
struct hm__hold {
	struct hm__hold *next_in_set;  /* the request's holds */
	struct hm__hold *next_in_lock; /* the lock's holders */
	struct hm__lock *lock;
	struct hm__lockset *set;
	unsigned count;  /* hm_lock() calls not yet undone */
	bool exclusive;
};

/* A name in use: held or waited for. */
struct hm__lock {
	struct hm__lock *next; /* in its bucket */
	struct hm__hold *holders;
	unsigned exclusive;    /* holders in exclusive mode: 0 or 1 */
	unsigned nholders;
	unsigned waiters;
	pthread_cond_t cond;   /* a holder left */
	size_t len;
	char name[];
};

/* A request's locks, on the outermost call of the request (hm_ctx.locks). */
struct hm__lockset {
	struct hm__hold *holds;
	unsigned nholds;
	const struct hm__thread *thread;
	struct hm__lock *waiting_for; /* while in hm_lock() */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct hm__lock *buckets[HM__LOCK_BUCKETS];
static unsigned nlocks;

static size_t bucket_of(const char *name, size_t len)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211u;
	return (size_t)(h ^ (h >> 32)) & (HM__LOCK_BUCKETS - 1);
}

/* The lock named name, made if create (NULL when it cannot be); mu held. */
static struct hm__lock *lock_find(const char *name, size_t len, bool create, int *rc)
{
	struct hm__lock **b = &buckets[bucket_of(name, len)], *k;

	for (k = *b; k; k = k->next)
		if (k->len == len && memcmp(k->name, name, len) == 0)
			return k;
	if (!create)
		return NULL;
	if (nlocks >= HM__LOCKS_MAX) {
		*rc = hm__fail(HM_ETOOMANY, "lock '%s': %d names are held or waited for in "
					    "this process, the most there can be", name,
			HM__LOCKS_MAX);
		return NULL;
	}
	if ((k = calloc(1, sizeof *k + len + 1)) == NULL) {
		*rc = hm__fail(HM_ENOMEM, "lock '%s': out of memory", name);
		return NULL;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);
	k->len = len;
	memcpy(k->name, name, len);
	k->next = *b;
	*b = k;
	nlocks++;
	return k;
}

/* Free k once nobody holds or waits for it; mu held. */
static void lock_drop_if_unused(struct hm__lock *k)
{
	if (k->holders || k->waiters)
		return;
	struct hm__lock **p = &buckets[bucket_of(k->name, k->len)];
	while (*p != k)
		p = &(*p)->next;
	*p = k->next;
	pthread_cond_destroy(&k->cond);
	free(k);
	nlocks--;
}

static struct hm__hold *hold_of(const struct hm__lockset *set, const struct hm__lock *k)
{
	for (struct hm__hold *h = set->holds; h; h = h->next_in_set)
		if (h->lock == k)
			return h;
	return NULL;
}

/* Could set take k in this mode now (mine: its hold of k, or NULL)? */
static bool grantable(const struct hm__lock *k, const struct hm__hold *mine, bool exclusive)
{
	if (mine && mine->exclusive)
		return true; /* an exclusive holder may take it in either mode */
	if (!exclusive)
		return k->exclusive == 0;
	/* Exclusive: nobody else may hold it (an upgrade of a shared hold
	 * waits for the other shared holders). */
	return k->nholders == (mine ? 1u : 0u);
}

/*
 * Would set, waiting for k, wait for itself: is set among the holders of
 * k, or of a lock one of them waits for, and so on?  A holder running on
 * set's thread is a request set is nested in: it cannot go on before set
 * does.  depth bounds the walk (a cycle not through set ends it).
 */
static bool waits_for_itself(const struct hm__lockset *set, const struct hm__lock *k,
	unsigned depth)
{
	if (depth > 64)
		return false;
	for (const struct hm__hold *h = k->holders; h; h = h->next_in_lock) {
		if (h->set == set)
			continue; /* its own shared hold, being upgraded */
		if (h->set->thread == set->thread)
			return true;
		if (h->set->waiting_for &&
		    (hold_of(set, h->set->waiting_for) ||
		     waits_for_itself(set, h->set->waiting_for, depth + 1)))
			return true;
	}
	return false;
}

/* The outermost call of ctx's request: where its locks live. */
static hm_ctx *request_root(hm_ctx *ctx)
{
	while (ctx->outer && ctx->outer->request == ctx->request &&
	       ctx->outer->phase == HM__PHASE_CALL)
		ctx = ctx->outer;
	return ctx;
}

static int check_args(const hm_ctx *ctx, const char *name, const char *fn)
{
	if (!ctx || !name)
		return hm__fail(HM_EINVAL, "%s: NULL argument", fn);
	if (ctx->phase != HM__PHASE_CALL || !ctx->request)
		return hm__fail(HM_EINVAL, "%s: locks are held by requests: not in init or "
					   "fini", fn);
	size_t len = strnlen(name, HM_LOCK_NAME_MAX + 1);
	if (len == 0 || len > HM_LOCK_NAME_MAX)
		return hm__fail(HM_EINVAL, "%s: a lock name is 1 to %d bytes", fn,
			HM_LOCK_NAME_MAX);
	return 0;
}

int hm_lock(hm_ctx *ctx, const char *name, unsigned mode, int timeout_ms)
{
	struct hm__lockset *set;
	struct hm__lock *k;
	struct hm__hold *mine;
	struct timespec deadline;
	bool exclusive = mode == HM_LOCK_EXCLUSIVE;
	int rc = 0;

	if ((rc = check_args(ctx, name, "hm_lock")) != 0)
		return rc;
	if (mode != HM_LOCK_SHARED && mode != HM_LOCK_EXCLUSIVE)
		return hm__fail(HM_EINVAL, "hm_lock: mode is HM_LOCK_SHARED or "
					   "HM_LOCK_EXCLUSIVE");
	if (timeout_ms < 0)
		return hm__fail(HM_EINVAL, "hm_lock: a negative timeout: waits are bounded");
	hm_ctx *root = request_root(ctx);
	if (!root->locks) {
		if ((root->locks = calloc(1, sizeof *root->locks)) == NULL)
			return hm__fail(HM_ENOMEM, "lock '%s': out of memory", name);
		root->locks->thread = hm__self();
	}
	set = root->locks;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}

	pthread_mutex_lock(&mu);
	if ((k = lock_find(name, strlen(name), true, &rc)) == NULL)
		goto out;
	mine = hold_of(set, k);
	if (!mine && set->nholds >= HM__LOCKS_PER_REQUEST) {
		rc = hm__fail(HM_ETOOMANY, "lock '%s': this request holds %d locks, the most "
					   "one can", name, HM__LOCKS_PER_REQUEST);
		goto out;
	}
	k->waiters++;
	while (!grantable(k, mine, exclusive)) {
		if (waits_for_itself(set, k, 0)) {
			rc = hm__fail(HM_EDEADLK, "lock '%s': waiting would deadlock: it is held "
						  "by a request that waits for this one, or that "
						  "this one runs nested in", name);
			break;
		}
		set->waiting_for = k;
		int w = pthread_cond_timedwait(&k->cond, &mu, &deadline);
		set->waiting_for = NULL;
		if (w == ETIMEDOUT && !grantable(k, mine, exclusive)) {
			rc = hm__fail(HM_ETIMEDOUT, "lock '%s': not had within %d ms", name,
				timeout_ms);
			break;
		}
	}
	k->waiters--;
	if (rc == 0) {
		if (mine) {
			mine->count++;
			if (exclusive && !mine->exclusive) {
				mine->exclusive = true; /* upgraded */
				k->exclusive = 1;
			}
		} else if ((mine = calloc(1, sizeof *mine)) == NULL) {
			rc = hm__fail(HM_ENOMEM, "lock '%s': out of memory", name);
		} else {
			*mine = (struct hm__hold){.next_in_set = set->holds,
				.next_in_lock = k->holders, .lock = k, .set = set, .count = 1,
				.exclusive = exclusive};
			set->holds = k->holders = mine;
			set->nholds++;
			k->nholders++;
			k->exclusive += exclusive;
		}
	}
	if (rc < 0)
		lock_drop_if_unused(k);
out:
	pthread_mutex_unlock(&mu);
	return rc;
}

/* Let h go entirely; mu held. */
static void release(struct hm__hold *h)
{
	struct hm__lock *k = h->lock;
	struct hm__lockset *set = h->set;
	struct hm__hold **p;

	for (p = &k->holders; *p != h; p = &(*p)->next_in_lock)
		;
	*p = h->next_in_lock;
	for (p = &set->holds; *p != h; p = &(*p)->next_in_set)
		;
	*p = h->next_in_set;
	set->nholds--;
	k->nholders--;
	k->exclusive -= h->exclusive;
	free(h);
	pthread_cond_broadcast(&k->cond);
	lock_drop_if_unused(k);
}

int hm_unlock(hm_ctx *ctx, const char *name)
{
	struct hm__lock *k;
	struct hm__hold *h = NULL;
	int rc;

	if ((rc = check_args(ctx, name, "hm_unlock")) != 0)
		return rc;
	struct hm__lockset *set = request_root(ctx)->locks;
	pthread_mutex_lock(&mu);
	if (set && (k = lock_find(name, strlen(name), false, NULL)) != NULL)
		h = hold_of(set, k);
	if (!h)
		rc = hm__fail(HM_EINVAL, "hm_unlock: this request does not hold lock '%s'",
			name);
	else if (--h->count == 0)
		release(h);
	pthread_mutex_unlock(&mu);
	return rc;
}

int hm_lock_held(const hm_ctx *ctx, const char *name)
{
	struct hm__lock *k;
	struct hm__hold *h = NULL;
	int rc;

	if ((rc = check_args(ctx, name, "hm_lock_held")) != 0)
		return rc;
	struct hm__lockset *set = request_root((hm_ctx *)ctx)->locks;
	pthread_mutex_lock(&mu);
	if (set && (k = lock_find(name, strlen(name), false, NULL)) != NULL)
		h = hold_of(set, k);
	rc = !h ? 0 : h->exclusive ? HM_LOCK_EXCLUSIVE : HM_LOCK_SHARED;
	pthread_mutex_unlock(&mu);
	return rc;
}

void hm__locks_end(hm_ctx *root)
{
	struct hm__lockset *set = root->locks;

	pthread_mutex_lock(&mu);
	while (set->holds)
		release(set->holds);
	pthread_mutex_unlock(&mu);
	free(set);
	root->locks = NULL;
}
