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
 *
 * Host locks (HM_LOCK_HOST) live in a table the embedder maps shared
 * before it forks (hm_lock_host_init()): entries by exact name (open
 * addressing; a freed entry is a tombstone until reused), each listing
 * its holders by process (pid and start time: a pid the kernel reused is
 * not the holder) and request.  One robust process-shared mutex guards
 * it, and one process-shared condition wakes waiters; a process that
 * dies holds neither for long, and no one tells of its death, so a
 * waiter looks every HM__HOST_POLL_MS for holders that are gone and
 * removes them.  A lock whose exclusive holder died is had with
 * HM_LOCK_RECOVERED: what it protects may be half-changed.  Within a
 * process a request's host holds are counted like its process holds.
 */
#include "loader.h"
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fault.h" /* last: see fault.h */

/* Names in use at once in the process, and held by one request. */
#define HM__LOCKS_MAX 65536
#define HM__LOCKS_PER_REQUEST 64
#define HM__LOCK_BUCKETS 4096 /* a power of two */

#define HM__HOST_HOLDERS 32  /* requests holding one host lock at once */
#define HM__HOST_POLL_MS 100 /* a waiter looks for dead holders this often */

struct hm__lockset;

/* One request's hold of one lock: a process lock's, or a host lock's. */
struct hm__hold {
	struct hm__hold *next_in_set;  /* the request's holds */
	struct hm__hold *next_in_lock; /* the lock's holders (process locks) */
	struct hm__lock *lock;         /* NULL for a host lock ... */
	struct hm__hlock *host;        /* ... which is this entry */
	struct hm__lockset *set;
	unsigned count;  /* hm_lock() calls not yet undone */
	bool exclusive;
};

/* A holder of a host lock: a request of a process. */
struct hm__hholder {
	int32_t pid;        /* 0: free */
	uint64_t start;     /* the process's start time: pids are reused */
	uint64_t request;   /* the request's lock set, as a number */
	uint64_t thread;    /* its thread, as a number */
	bool exclusive;
};

/* A host lock, in the shared table. */
struct hm__hlock {
	uint32_t state; /* 0: never used, 1: in use, 2: freed (a tombstone) */
	uint32_t waiters;
	bool recovered; /* an exclusive holder died: tell the next one */
	uint32_t len;
	char name[HM_LOCK_NAME_MAX + 1];
	struct hm__hholder holders[HM__HOST_HOLDERS];
};

struct hm__htable {
	pthread_mutex_t mu; /* robust, process-shared */
	pthread_cond_t cond; /* process-shared: a holder left */
	uint32_t size;
	struct hm__hlock entry[];
};

static struct hm__htable *host; /* hm_lock_host_init()'s */
static size_t host_bytes;

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
	/* The last wait that failed (HM_ETIMEDOUT, HM_EDEADLK), and why: the
	 * request's result if a hook then fails (hm__locks_end). */
	int failed;
	char why[256];
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
		if (h->lock == k && k)
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

/* CLOCK_MONOTONIC now + ms. */
static void deadline_in(struct timespec *t, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/* ---- host locks ------------------------------------------------------------ */

/* The start time of process pid (clock ticks since boot, /proc/PID/stat's
 * 22nd field), 0 when it is gone. */
static uint64_t start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3. */
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &t) != 1)
		return 0;
	return t;
}

/* This process as a holder: its pid and start time (after a fork, the
 * child's own). */
static void self_id(int32_t *pid, uint64_t *start)
{
	static pid_t cached_pid;
	static uint64_t cached_start;
	pid_t now = getpid();

	if (cached_pid != now) {
		cached_start = start_time(now);
		cached_pid = now;
	}
	*pid = now;
	*start = cached_start;
}

int hm_lock_host_init(unsigned entries)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	size_t bytes;

	if (entries < 1 || entries > 1u << 20)
		return hm__fail(HM_EINVAL, "hm_lock_host_init: 1 to %u entries", 1u << 20);
	if (host)
		return hm__fail(HM_EINVAL, "hm_lock_host_init: the table is made already");
	bytes = sizeof *host + (size_t)entries * sizeof host->entry[0];
	struct hm__htable *t = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return hm__fail_errno(errno, HM_ESYS, "hm_lock_host_init: mmap of %zu bytes",
			bytes);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&t->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->size = entries;
	host_bytes = bytes;
	host = t;
	return 0;
}

static void host_lock_table(void)
{
	/* A process died in the few instructions it holds it for: the
	 * entries are whole (each write below completes a holder or an
	 * entry before the next), and dead holders are removed by liveness. */
	if (pthread_mutex_lock(&host->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&host->mu);
}

static uint32_t host_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
}

/* The host entry named name, made if create; NULL if none (or full, when
 * *rc says so).  The table's mutex held. */
static struct hm__hlock *host_find(const char *name, bool create, int *rc)
{
	size_t len = strlen(name);
	uint32_t h = host_hash(name, len);
	struct hm__hlock *tomb = NULL;

	for (uint32_t i = 0; i < host->size; i++) {
		struct hm__hlock *e = &host->entry[(h + i) % host->size];
		if (e->state == 0) {
			if (!create)
				return NULL;
			e = tomb ? tomb : e;
			memset(e, 0, sizeof *e);
			memcpy(e->name, name, len + 1);
			e->len = (uint32_t)len;
			e->state = 1;
			return e;
		}
		if (e->state == 2) {
			tomb = tomb ? tomb : e;
			continue;
		}
		if (e->len == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	if (create && tomb) {
		memset(tomb, 0, sizeof *tomb);
		memcpy(tomb->name, name, len + 1);
		tomb->len = (uint32_t)len;
		tomb->state = 1;
		return tomb;
	}
	if (create)
		*rc = hm__fail(HM_ETOOMANY, "host lock '%s': the table's %u entries are all "
					    "held or waited for", name, host->size);
	return NULL;
}

/* Remove e's holders whose process is gone; the table's mutex held. */
static void host_reap(struct hm__hlock *e)
{
	for (unsigned i = 0; i < HM__HOST_HOLDERS; i++) {
		struct hm__hholder *o = &e->holders[i];
		if (!o->pid || start_time(o->pid) == o->start)
			continue;
		if (o->exclusive)
			e->recovered = true; /* it may have been mid-change */
		memset(o, 0, sizeof *o);
		pthread_cond_broadcast(&host->cond);
	}
}

static void host_drop_if_unused(struct hm__hlock *e)
{
	for (unsigned i = 0; i < HM__HOST_HOLDERS; i++)
		if (e->holders[i].pid)
			return;
	if (!e->waiters && !e->recovered)
		e->state = 2;
}

static struct hm__hold *host_hold_of(const struct hm__lockset *set, const char *name)
{
	for (struct hm__hold *h = set->holds; h; h = h->next_in_set)
		if (h->host && strcmp(h->host->name, name) == 0)
			return h;
	return NULL;
}

/*
 * Can request me (the holder slot it has, or NULL) take e in this mode?
 * HM_EDEADLK when a holder is a request of this thread (one this request
 * runs nested in); the table's mutex held.
 */
static int host_grantable(const struct hm__hlock *e, const struct hm__hholder *me,
	bool exclusive, int32_t pid, uint64_t thread, const char *name)
{
	unsigned others = 0, others_excl = 0;

	for (unsigned i = 0; i < HM__HOST_HOLDERS; i++) {
		const struct hm__hholder *o = &e->holders[i];
		if (!o->pid || o == me)
			continue;
		if (o->pid == pid && o->thread == thread)
			return hm__fail(HM_EDEADLK, "host lock '%s': waiting would deadlock: "
						    "it is held by a request this one runs "
						    "nested in", name);
		others++;
		others_excl += o->exclusive;
	}
	return exclusive ? others == 0 : others_excl == 0;
}

static void host_let_go(struct hm__hlock *e, const struct hm__lockset *set);

static int host_lock(struct hm__lockset *set, const char *name, bool exclusive,
	const struct timespec *deadline, int timeout_ms)
{
	struct hm__hold *mine;
	struct hm__hlock *e;
	struct hm__hholder *me = NULL;
	uint64_t start, thread = (uint64_t)(uintptr_t)set->thread;
	int32_t pid;
	int rc = 0;

	/* Held by this request already: one more hold, or an upgrade. */
	pthread_mutex_lock(&mu);
	mine = host_hold_of(set, name);
	if (mine && (mine->exclusive || !exclusive)) {
		mine->count++;
		pthread_mutex_unlock(&mu);
		return 0;
	}
	if (!mine && set->nholds >= HM__LOCKS_PER_REQUEST) {
		pthread_mutex_unlock(&mu);
		return hm__fail(HM_ETOOMANY, "host lock '%s': this request holds %d locks, "
					     "the most one can", name, HM__LOCKS_PER_REQUEST);
	}
	pthread_mutex_unlock(&mu);

	self_id(&pid, &start);
	host_lock_table();
	if ((e = mine ? mine->host : host_find(name, true, &rc)) == NULL)
		goto out;
	for (unsigned i = 0; mine && i < HM__HOST_HOLDERS; i++)
		if (e->holders[i].pid == pid && e->holders[i].request == (uintptr_t)set)
			me = &e->holders[i];
	e->waiters++;
	/* fresh: the holders in the way were just checked for life (a holder
	 * that died tells no one). */
	for (bool fresh = false;;) {
		int g = host_grantable(e, me, exclusive, pid, thread, name);
		bool slot = me != NULL;
		for (unsigned i = 0; !slot && i < HM__HOST_HOLDERS; i++)
			slot = e->holders[i].pid == 0;
		if (g < 0) {
			rc = g;
			break;
		}
		if (g && slot)
			break;
		if (!fresh) {
			host_reap(e);
			fresh = true;
			continue;
		}
		struct timespec now, wake;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline->tv_sec ||
		    (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec)) {
			rc = hm__fail(HM_ETIMEDOUT, "host lock '%s': not had within %d ms", name,
				timeout_ms);
			break;
		}
		/* Until the deadline, or sooner to look at the holders again. */
		deadline_in(&wake, HM__HOST_POLL_MS);
		if (wake.tv_sec > deadline->tv_sec ||
		    (wake.tv_sec == deadline->tv_sec && wake.tv_nsec > deadline->tv_nsec))
			wake = *deadline;
		if (pthread_cond_timedwait(&host->cond, &host->mu, &wake) == EOWNERDEAD)
			pthread_mutex_consistent(&host->mu);
		fresh = false;
	}
	e->waiters--;
	if (rc == 0) {
		if (!me)
			for (unsigned i = 0; !me && i < HM__HOST_HOLDERS; i++)
				if (!e->holders[i].pid)
					me = &e->holders[i];
		*me = (struct hm__hholder){.pid = pid, .start = start,
			.request = (uintptr_t)set, .thread = thread, .exclusive = exclusive};
		if (e->recovered) {
			e->recovered = false;
			rc = HM_LOCK_RECOVERED;
		}
	} else {
		host_drop_if_unused(e);
	}
out:
	pthread_mutex_unlock(&host->mu);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&mu);
	if (mine) {
		mine->count++;
		mine->exclusive = true; /* upgraded */
	} else if ((mine = calloc(1, sizeof *mine)) != NULL) {
		*mine = (struct hm__hold){.next_in_set = set->holds, .host = e, .set = set,
			.count = 1, .exclusive = exclusive};
		set->holds = mine;
		set->nholds++;
	}
	pthread_mutex_unlock(&mu);
	if (!mine) { /* had, and cannot be recorded: let it go */
		host_let_go(e, set);
		return hm__fail(HM_ENOMEM, "host lock '%s': out of memory", name);
	}
	return rc;
}

/* Request set of this process no longer holds e. */
static void host_let_go(struct hm__hlock *e, const struct hm__lockset *set)
{
	int32_t pid;
	uint64_t start;

	self_id(&pid, &start);
	host_lock_table();
	for (unsigned i = 0; i < HM__HOST_HOLDERS; i++)
		if (e->holders[i].pid == pid && e->holders[i].request == (uintptr_t)set)
			memset(&e->holders[i], 0, sizeof e->holders[i]);
	host_drop_if_unused(e);
	pthread_cond_broadcast(&host->cond);
	pthread_mutex_unlock(&host->mu);
}

/* Let host hold h go; mu held. */
static void host_release(struct hm__hold *h)
{
	struct hm__lockset *set = h->set;
	struct hm__hold **p;

	host_let_go(h->host, set);
	for (p = &set->holds; *p != h; p = &(*p)->next_in_set)
		;
	*p = h->next_in_set;
	set->nholds--;
	free(h);
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

/* hm_lock() of a process lock, its arguments checked. */
static int process_lock(struct hm__lockset *set, const char *name, bool exclusive,
	const struct timespec *deadline, int timeout_ms)
{
	struct hm__lock *k;
	struct hm__hold *mine;
	int rc = 0;

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
		int w = pthread_cond_timedwait(&k->cond, &mu, deadline);
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

int hm_lock(hm_ctx *ctx, const char *name, unsigned mode, int timeout_ms)
{
	struct hm__lockset *set;
	struct timespec deadline;
	bool exclusive;
	int rc = 0;

	if ((rc = check_args(ctx, name, "hm_lock")) != 0)
		return rc;
	bool in_host = mode & HM_LOCK_HOST;
	mode &= ~HM_LOCK_HOST;
	exclusive = mode == HM_LOCK_EXCLUSIVE;
	if (mode != HM_LOCK_SHARED && mode != HM_LOCK_EXCLUSIVE)
		return hm__fail(HM_EINVAL, "hm_lock: mode is HM_LOCK_SHARED or "
					   "HM_LOCK_EXCLUSIVE, maybe with HM_LOCK_HOST");
	if (timeout_ms < 0)
		return hm__fail(HM_EINVAL, "hm_lock: a negative timeout: waits are bounded");
	if (in_host && !host)
		return hm__fail(HM_EINVAL, "lock '%s': no host locks: the embedder made no "
					   "table for them (hm_lock_host_init)", name);
	hm_ctx *root = request_root(ctx);
	if (!root->locks) {
		if ((root->locks = calloc(1, sizeof *root->locks)) == NULL)
			return hm__fail(HM_ENOMEM, "lock '%s': out of memory", name);
		root->locks->thread = hm__self();
	}
	set = root->locks;
	deadline_in(&deadline, timeout_ms);
	rc = in_host ? host_lock(set, name, exclusive, &deadline, timeout_ms) :
		       process_lock(set, name, exclusive, &deadline, timeout_ms);
	if (rc == HM_ETIMEDOUT || rc == HM_EDEADLK) {
		set->failed = rc;
		snprintf(set->why, sizeof set->why, "%s", hm__msg());
	}
	return rc;
}

/* Let h go entirely; mu held. */
static void release(struct hm__hold *h)
{
	struct hm__lock *k = h->lock;
	struct hm__lockset *set = h->set;
	struct hm__hold **p;

	if (!k) {
		host_release(h);
		return;
	}
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
	if (!h && set)
		h = host_hold_of(set, name);
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
	if (!h && set)
		h = host_hold_of(set, name);
	rc = !h ? 0 : h->exclusive ? HM_LOCK_EXCLUSIVE : HM_LOCK_SHARED;
	pthread_mutex_unlock(&mu);
	return rc;
}

int hm__locks_end(hm_ctx *root, int rc)
{
	struct hm__lockset *set = root->locks;

	pthread_mutex_lock(&mu);
	while (set->holds)
		release(set->holds);
	pthread_mutex_unlock(&mu);
	/* A hook failed after a lock wait did: most likely because of it
	 * (it gave up, as asked): that is the request's error, so that the
	 * embedder can answer "try again" rather than "broken". */
	if (rc == HM_EHOOK && set->failed)
		rc = hm__fail(set->failed, "%s (the request gave up)", set->why);
	free(set);
	root->locks = NULL;
	return rc;
}
