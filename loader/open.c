/* SPDX-License-Identifier: MIT */
/*
 * open.c - a loader's life: hm_open() (options, the root, the table, the
 * watcher, the preload), hm_close(), the rule for fork(); and which
 * library this is (hm_version()).
 */
#include "loader.h"
#include "pending.h"
#include "probe.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

#define HM__DEFAULT_CHECK_MS 1000
#define HM__DEFAULT_MAX_SIZE ((size_t)64 << 20)
#define HM__DEFAULT_DEPTH 16
#define HM__DEFAULT_REMOVAL_MS 200

/*
 * fork policy: a loader belongs to the process that opened it.  A child
 * inherits a copy whose threads do not exist, whose locks may be held
 * forever and whose counts count the parent's requests; every call on it
 * there fails with HM_EFORK.  A child opens its own loader.
 */
atomic_uint hm__forks;
static pthread_once_t hm__atfork_once = PTHREAD_ONCE_INIT;

static void hm__in_child(void)
{
	atomic_fetch_add_explicit(&hm__forks, 1, memory_order_relaxed);
}

static void hm__atfork_register(void)
{
	pthread_atfork(NULL, NULL, hm__in_child);
}

int hm__fork_error(const hm_loader *l)
{
	return hm__fail(HM_EFORK, "loader of %s was opened by the parent process: "
				  "after fork() a child opens its own", l->root);
}

/* Why hm__api_check() failed: the first check that did. */
int hm__api_error(const hm_loader *l, const void *a, const void *b, const char *fn)
{
	if (!l || !a || !b)
		return hm__fail(HM_EINVAL, "%s: NULL argument", fn);
	if (hm__forked(l))
		return hm__fork_error(l);
	return hm__fail(HM_ECLOSED, "%s: loader is closing", l->root);
}

/* Set a member only if the caller's struct has room for it. */
#define HM__OPT_SET(o, size, member, value)                                   \
	do {                                                                  \
		if (offsetof(struct hm_options, member) + sizeof((o)->member) <= (size)) \
			(o)->member = (value);                                \
	} while (0)

void hm__options_init(struct hm_options *o, size_t size)
{
	if (!o || size < sizeof o->size)
		return;
	memset(o, 0, size);
	o->size = size;
	HM__OPT_SET(o, size, global_name, HM__GLOBAL_DEFAULT);
	HM__OPT_SET(o, size, check_interval_ms, HM__DEFAULT_CHECK_MS);
	HM__OPT_SET(o, size, max_module_size, HM__DEFAULT_MAX_SIZE);
	HM__OPT_SET(o, size, max_depth, HM__DEFAULT_DEPTH);
	HM__OPT_SET(o, size, watch, HM_WATCH_AUTO);
	HM__OPT_SET(o, size, removal_delay_ms, HM__DEFAULT_REMOVAL_MS);
}

static int hm__options_check(const struct hm_options *o)
{
	const char *g = o->global_name;

	if (!o->root || !*o->root)
		return hm__fail(HM_EINVAL, "hm_open: options.root is required");
	if (!g || !hm__global_name_ok(g))
		return hm__fail(HM_EINVAL, "hm_open: options.global_name must be a "
					   "plain file name: 1 to " HM__NUM(HM__NAME_MAX)
					   " bytes of [A-Za-z0-9._-], not starting with '.'");
	if (o->check_interval_ms < HM_CHECK_NEVER)
		return hm__fail(HM_EINVAL, "hm_open: options.check_interval_ms is %d",
			o->check_interval_ms);
	/* A bound the stack can hold: each level costs the library's frames
	 * and its hooks' (deeper loops crashed before the limit stopped them). */
	if (o->max_depth < 1 || o->max_depth > HM_DEPTH_MAX)
		return hm__fail(HM_EINVAL, "hm_open: options.max_depth is %d: it must be "
					   "1 to %d (HM_DEPTH_MAX), each nested call uses the "
					   "thread's stack", o->max_depth, HM_DEPTH_MAX);
	if (o->trust & ~(HM_TRUST_GROUP_WRITABLE | HM_TRUST_WORLD_WRITABLE | HM_TRUST_ANY_OWNER))
		return hm__fail(HM_EINVAL, "hm_open: unknown bits in options.trust");
	if (o->watch < HM_WATCH_AUTO || o->watch > HM_WATCH_STAT)
		return hm__fail(HM_EINVAL, "hm_open: options.watch is %d", o->watch);
	if (o->flags & ~(HM_OPEN_PRELOAD | HM_OPEN_NO_THREAD | HM_OPEN_PROBE |
			    HM_OPEN_REQUIRE_KIND))
		return hm__fail(HM_EINVAL, "hm_open: unknown bits in options.flags");
	if ((o->flags & HM_OPEN_PROBE) && hm__probe_check() < 0)
		return HM_EINVAL;
	if (o->removal_delay_ms < 0)
		return hm__fail(HM_EINVAL, "hm_open: options.removal_delay_ms is %d",
			o->removal_delay_ms);
	if (o->request_kind && !hm__request_kind_okn(o->request_kind,
				       strnlen(o->request_kind, HM_REQUEST_KIND_MAX + 1)))
		return hm__fail(HM_EINVAL, "hm_open: options.request_kind must be 1 to "
					   HM__NUM(HM_REQUEST_KIND_MAX) " bytes of visible "
					   "ASCII (no space, no control byte)");
	return 0;
}

static int hm__open_root(hm_loader *l)
{
	struct stat st;
	int rc;

	l->rootfd = open(l->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->rootfd < 0) {
		int err = errno;
		return hm__fail_errno(err, err == ENOENT ? HM_ENOENT : HM_ESYS, "root %s",
			l->root);
	}
	if (fstat(l->rootfd, &st) < 0)
		return hm__fail_errno(errno, HM_ESYS, "root %s: fstat", l->root);
	if ((rc = hm__check_perms(l, &st, l->root)) < 0)
		return rc;
	return 0;
}

static void hm__free(hm_loader *l)
{
	hm__versions_free(l);
	hm__table_free(l);
	/* Not with the watcher: a request in its slow path may still ask
	 * it (hm__pending_busy) while hm_close() waits for it. */
	hm__pending_free(l);
	if (l->rootfd >= 0)
		close(l->rootfd);
	pthread_mutex_destroy(&l->table_lock);
	pthread_mutex_destroy(&l->graph_lock);
	pthread_mutex_destroy(&l->ver_lock);
	pthread_cond_destroy(&l->ver_cond);
	free(l->root);
	free(l->global_name);
	free(l->request_kind);
	free(l);
}

int hm_open(hm_loader **out, const struct hm_options *opts)
{
	struct hm_options o;
	pthread_condattr_t ca;
	hm_loader *l;
	int rc;

	if (!out || !opts || opts->size < offsetof(struct hm_options, root) + sizeof o.root)
		return hm__fail(HM_EINVAL, "hm_open: NULL argument or options not "
					   "initialised with hm_options_init()");
	*out = NULL;
	/* An older caller's struct is shorter: defaults fill the rest. */
	hm_options_init(&o);
	memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
	if ((rc = hm__options_check(&o)) < 0)
		return rc;
	if (!(l = calloc(1, sizeof *l)))
		return hm__fail(HM_ENOMEM, "hm_open: out of memory");
	l->rootfd = -1;
	pthread_mutex_init(&l->table_lock, NULL);
	pthread_mutex_init(&l->graph_lock, NULL);
	pthread_mutex_init(&l->ver_lock, NULL);
	pthread_condattr_init(&ca);
	/* hm_close() counts its deadline on this clock. */
	int clock_err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->ver_cond, &ca);
	pthread_condattr_destroy(&ca);
	l->root = strdup(o.root);
	l->global_name = strdup(o.global_name);
	l->log = o.log;
	l->log_arg = o.log_arg;
	l->app = o.app;
	l->check_ns = o.check_interval_ms < 0 ? -1 : (int64_t)o.check_interval_ms * 1000000;
	l->trust = o.trust;
	l->max_size = o.max_module_size ? o.max_module_size : HM__DEFAULT_MAX_SIZE;
	l->max_depth = o.max_depth;
	l->euid = geteuid();
	l->flags = o.flags;
	l->removal_delay_ns = (int64_t)o.removal_delay_ms * 1000000;
	l->request_kind = o.request_kind ? strdup(o.request_kind) : NULL;
	l->admit = o.admit;
	l->admit_arg = o.admit_arg;
	pthread_once(&hm__atfork_once, hm__atfork_register);
	l->fork_gen = atomic_load_explicit(&hm__forks, memory_order_relaxed);
	if (!l->root || !l->global_name || (o.request_kind && !l->request_kind)) {
		rc = hm__fail(HM_ENOMEM, "hm_open: out of memory");
		goto fail;
	}
	if (clock_err != 0) {
		rc = hm__fail_errno(clock_err, HM_ESYS, "hm_open: pthread_condattr_setclock");
		goto fail;
	}
	if ((rc = hm__table_init(l)) < 0) {
		rc = rc == HM_ESYS ? hm__fail(rc, "hm_open: pthread_condattr_setclock "
						  "(the sweeper's): not supported")
				   : hm__fail(rc, "hm_open: out of memory");
		goto fail;
	}
	if ((rc = hm__open_root(l)) < 0)
		goto fail;
	if ((rc = hm__watch_start(l, o.watch)) < 0)
		goto fail;
	if (l->flags & HM_OPEN_PRELOAD)
		hm__watch_scan(l, true); /* failures are logged and in the status */
	*out = l;
	return 0;
fail:
	hm__watch_stop(l);
	hm__free(l);
	return rc;
}

/*
 * Log what is still held.  Snapshot under ver_lock, log after it: the log
 * callback runs with no loader lock held.  Keys live as long as the loader.
 */
static void hm__report_live(hm_loader *l)
{
	enum { MAX = 32 };
	struct {
		const char *key;
		unsigned long long number;
		unsigned long refs;
	} held[MAX];
	size_t n = 0, total;

	pthread_mutex_lock(&l->ver_lock);
	total = l->nlive;
	for (struct hm__version *v = l->live; v && n < MAX; v = v->live_next, n++) {
		held[n].key = v->entry->key;
		held[n].number = v->number;
		held[n].refs = atomic_load_explicit(&v->refs, memory_order_relaxed);
	}
	pthread_mutex_unlock(&l->ver_lock);
	for (size_t i = 0; i < n; i++) {
		if (held[i].refs > 0)
			hm__log(l, HM_LOG_WARN, "close: %s version %llu still has %lu "
						"reference%s", held[i].key, held[i].number,
				held[i].refs, held[i].refs == 1 ? "" : "s");
		else /* its references are gone; a dispatch still runs it */
			hm__log(l, HM_LOG_WARN, "close: %s version %llu is still running "
						"in a dispatch", held[i].key, held[i].number);
	}
	if (total > n)
		hm__log(l, HM_LOG_WARN, "close: and %zu more versions", total - n);
}

int hm_close(hm_loader *l, int timeout_ms)
{
	struct timespec deadline = {0, 0};
	bool timed = timeout_ms >= 0;
	int rc = 0;

	if (!l)
		return 0;
	if (hm__forked(l))
		return hm__fork_error(l);
	/* A clock that cannot be read gives no deadline to wait for: then the
	 * timeout counts as run out, as with 0. */
	if (timed && clock_gettime(CLOCK_MONOTONIC, &deadline) != 0)
		timeout_ms = 0;
	/* No more reloads: then nothing new becomes current. */
	hm__watch_stop(l);
	/* Under the table lock: after this no entry is inserted. */
	pthread_mutex_lock(&l->table_lock);
	atomic_store(&l->closing, true); /* seq_cst: see hm__busy_leave */
	pthread_mutex_unlock(&l->table_lock);
	hm__table_each(l, hm__entry_drop_each, NULL);

	if (timed) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	/*
	 * The timeout bounds the wait for what others hold: references,
	 * dispatches, loads.  Versions no one holds any more are finalised
	 * whatever the timeout (their fini is the library's own work): while
	 * the reaper has some, the clock does not end the wait.
	 */
	pthread_mutex_lock(&l->ver_lock);
	while ((l->nlive > 0 || atomic_load(&l->busy) > 0) && rc == 0) {
		if (hm__reap_here(l))
			continue;
		if (!timed || hm__reaping(l))
			pthread_cond_wait(&l->ver_cond, &l->ver_lock);
		else if (timeout_ms == 0)
			rc = ETIMEDOUT;
		else
			rc = pthread_cond_timedwait(&l->ver_cond, &l->ver_lock, &deadline);
	}
	size_t n = l->nlive;
	unsigned busy = atomic_load(&l->busy);
	pthread_mutex_unlock(&l->ver_lock);
	if (rc != 0 && rc != ETIMEDOUT && (busy > 0 || n > 0))
		/* Not closed yet, as after a timeout: the caller calls again. */
		return hm__fail_errno(rc, HM_ETIMEDOUT, "close: waiting for %zu versions and "
							"%u calls: pthread_cond_timedwait",
			n, busy);
	if (busy > 0)
		return hm__fail(HM_ETIMEDOUT, "close: %u calls still loading after %d ms",
			busy, timeout_ms);
	if (n > 0) {
		hm__report_live(l);
		return hm__fail(HM_ETIMEDOUT, "close: %zu version%s still referenced after %d ms",
			n, n == 1 ? "" : "s", timeout_ms);
	}
	hm__reaper_stop(l);
	hm__pins_sweep(l, true);
	hm__free(l);
	return 0;
}

/* Which library runs (hotmod.h: the ABI rule beside HM_VERSION_HEX). */
unsigned hm_version(void)
{
	return HM_VERSION_HEX;
}

#define HM__STR2(x) #x
#define HM__XSTR(x) HM__STR2(x)

const char *hm_version_string(void)
{
	return HM__XSTR(HM_VERSION_MAJOR) "." HM__XSTR(HM_VERSION_MINOR) "." HM__XSTR(
		HM_VERSION_PATCH);
}
