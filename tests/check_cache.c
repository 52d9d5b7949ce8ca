/* SPDX-License-Identifier: MIT */
/*
 * check_cache.c - the cache and its versions: one load per version under
 * concurrency, parallel loads of different files, stale versions serving
 * the requests that hold them, change detection, reentrancy, close.
 *
 * Threads meet through gates (util.h); a gate that is never opened fails
 * the test after a generous bound instead of hanging it.
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *root;
static struct fx_app app;
static hm_loader *l;
static struct gate finis_gate = GATE_INIT;

static void count_fini(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	(void)ctx;
	gate_add(&finis_gate, 1);
}

static void setup(void)
{
	memset(&app, 0, sizeof app);
	finis_gate.value = 0;
	app.on_fini = count_fini;
	root = mkroot();
	log_reset();
}

static void teardown(void)
{
	ck_assert_int_eq(hm_close(l, -1), 0);
	/* every version finalised exactly once */
	ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
	rmroot(root);
}

static int init_failures;

static int init_fails_once(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	(void)ctx;
	return init_failures-- > 0 ? -5 : 0;
}

/* ---- one load for many concurrent first requests ---- */

#define HERD 8
static pthread_barrier_t herd_barrier;
static hm_module *herd_got[HERD];

static void *herd_thread(void *arg)
{
	long i = (long)arg;

	pthread_barrier_wait(&herd_barrier);
	ck_assert_int_eq(hm_get(l, "m", &herd_got[i]), 0);
	return NULL;
}

START_TEST(test_concurrent_first_requests_run_one_init)
{
	pthread_t t[HERD];

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	pthread_barrier_init(&herd_barrier, NULL, HERD);
	for (long i = 0; i < HERD; i++)
		pthread_create(&t[i], NULL, herd_thread, (void *)i);
	for (int i = 0; i < HERD; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&herd_barrier);
	ck_assert_int_eq(atomic_load(&app.inits), 1);
	for (int i = 0; i < HERD; i++) {
		ck_assert_ptr_eq(herd_got[i], herd_got[0]);
		hm_put(herd_got[i]);
	}
	ck_assert_uint_eq(hm_module_version(herd_got[0]), 1);
}
END_TEST

/* ---- two slow inits overlap: each waits inside init for the other ---- */

static struct gate in_init = GATE_INIT;

static int handshake_init(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	(void)ctx;
	gate_add(&in_init, 1);
	/* Serialised loads would wait here forever: the other never comes. */
	return gate_wait(&in_init, 2) ? 0 : -1;
}

static void *get_thread(void *arg)
{
	hm_module *m;
	long rc = hm_get(l, arg, &m);

	if (rc == 0)
		hm_put(m);
	return (void *)rc;
}

START_TEST(test_two_slow_inits_of_different_files_run_in_parallel)
{
	pthread_t a, b;
	void *ra, *rb;

	deploy_cp("probe_v1", root, "a.so");
	deploy_cp("probe_v1", root, "b.so");
	in_init.value = 0;
	app.on_init = handshake_init;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	pthread_create(&a, NULL, get_thread, "a");
	pthread_create(&b, NULL, get_thread, "b");
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	ck_assert_int_eq((long)ra, 0);
	ck_assert_int_eq((long)rb, 0);
	ck_assert_int_eq(atomic_load(&app.inits), 2);
}
END_TEST

/* ---- a request holding version 1 runs version 1 to the end ---- */

static struct gate in_handler = GATE_INIT, may_finish = GATE_INIT;

static void park_in_handler(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	(void)ctx;
	gate_add(&in_handler, 1);
	ck_assert(gate_wait(&may_finish, 1));
}

static void *dispatch_thread(void *arg)
{
	struct fx_req *req = arg;
	return (void *)(long)hm_dispatch(l, "m", req);
}

/* The refs in flight of version gen of m.so in the status; -1: not listed. */
static long refs_of(unsigned long long gen)
{
	struct hm_status *st;
	long refs = -1;

	ck_assert_int_eq(hm_status_get(l, &st), 0);
	for (size_t i = 0; i < st->nmodules; i++)
		for (size_t j = 0; j < st->modules[i].nversions; j++)
			if (strcmp(st->modules[i].path, "m.so") == 0 &&
			    st->modules[i].versions[j].version == gen)
				refs = (long)st->modules[i].versions[j].refs;
	hm_status_free(st);
	return refs;
}

/*
 * The parked request is an hm_dispatch(), which holds its version in its
 * thread's hazard slot, not by a reference (loader/hazard.c): the
 * status must count it in flight all the same, and v1 must be finalised
 * once it returns, with no other request to wake the reaper.
 */
START_TEST(test_stale_version_serves_inflight_request_and_is_finalised_after_its_put)
{
	struct fx_req old_req = {.in_handle = park_in_handler}, new_req = {0};
	pthread_t t;
	void *rc;

	in_handler.value = may_finish.value = 0;
	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &new_req), 1);
	ck_assert_int_eq(refs_of(1), 0); /* nothing in flight */
	pthread_create(&t, NULL, dispatch_thread, &old_req);
	ck_assert(gate_wait(&in_handler, 1));
	ck_assert_int_eq(refs_of(1), 1);

	deploy_mv("probe_v2", root, "m.so");
	ck_assert_int_eq(hm_refresh(l, "m"), 1);
	ck_assert_int_eq(hm_dispatch(l, "m", &new_req), 2);
	ck_assert_int_eq(new_req.handled_by, 2);
	ck_assert_int_eq(refs_of(1), 1); /* replaced, still in flight */
	ck_assert_int_eq(refs_of(2), 0);
	ck_assert_int_eq(atomic_load(&app.finis), 0); /* v1 is still held */

	gate_add(&may_finish, 1);
	pthread_join(t, &rc);
	ck_assert_int_eq((long)rc, 1);
	ck_assert_int_eq(old_req.handled_by, 1); /* v1's code and state to the end */
	ck_assert(gate_wait(&finis_gate, 1));    /* then v1 is finalised */
	ck_assert_int_eq(atomic_load(&app.finis), 1);
	ck_assert_int_eq(atomic_load(&app.inits), 2);
}
END_TEST

/* ---- change detection by stat on the request path ---- */

START_TEST(test_every_writer_is_seen_when_checking_on_every_request)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	deploy_mv("probe_v2", root, "m.so"); /* rename over it */
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 2);
	deploy_install("probe_v1", root, "m.so"); /* unlink + create */
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	deploy_cp("probe_v2", root, "m.so"); /* rewrite in place, same inode */
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 2);
	ck_assert_uint_eq(req.version, 4);
	ck_assert_int_eq(atomic_load(&app.inits), 4);
}
END_TEST

START_TEST(test_unchanged_file_is_not_reloaded)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(hm_refresh(l, "m"), 0);
	ck_assert_int_eq(atomic_load(&app.inits), 1);
}
END_TEST

START_TEST(test_deleted_module_stops_serving_and_comes_back_when_readded)
{
	struct fx_req req = {0};
	char *path = at(root, "m.so");

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), HM_ENOENT);
	ck_assert(gate_wait(&finis_gate, 1));
	deploy_install("probe_v2", root, "m.so");
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 2);
	ck_assert_uint_eq(req.version, 2);
	free(path);
}
END_TEST

START_TEST(test_interval_never_waits_for_refresh)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	deploy_mv("probe_v2", root, "m.so");
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(hm_refresh(l, "/m"), 1);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 2);
}
END_TEST

/* ---- the global module ---- */

START_TEST(test_new_global_rebinds_modules_and_old_pair_finishes)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "d/m.so");
	deploy_cp("global_v1", root, "d/_global.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "d/m", &req), 1);
	ck_assert_uint_eq(req.global_version, 1);
	deploy_mv("global_v2", root, "d/_global.so");
	ck_assert_int_eq(hm_dispatch(l, "d/m", &req), 1);
	ck_assert_uint_eq(req.global_version, 2); /* module re-initialised against it */
	ck_assert_uint_eq(req.version, 2);
	/* old module version, then old global: two finis */
	ck_assert(gate_wait(&finis_gate, 2));
	ck_assert_int_eq(atomic_load(&app.inits), 4);
}
END_TEST

START_TEST(test_global_added_later_is_bound_by_the_next_check)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_uint_eq(req.global_version, 0);
	deploy_install("global_v1", root, "_global.so");
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_uint_eq(req.global_version, 1);
	ck_assert_ptr_nonnull(req.global_slot);
}
END_TEST

START_TEST(test_broken_global_fails_its_modules_until_it_is_fixed)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("initfail", root, "_global.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), HM_EGLOBAL);
	ck_assert_str_eq(hm_errmsg(),
		"m.so: global module: _global.so version 1: init returned -42");
	ck_assert_int_eq(hm_dispatch(l, "m", &req), HM_EGLOBAL); /* still */
	deploy_mv("global_v1", root, "_global.so");
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1); /* not stuck on EGLOBAL */
	ck_assert_uint_eq(req.global_version, 1); /* a failed init uses no number */
}
END_TEST

START_TEST(test_refresh_retries_a_failed_first_load)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	app.on_init = init_fails_once;
	init_failures = 1;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), HM_EINIT);
	/* the same file is not retried by requests ... */
	ck_assert_int_eq(hm_dispatch(l, "m", &req), HM_EINIT);
	ck_assert_int_eq(init_failures, 0);
	/* ... but hm_refresh() retries it */
	ck_assert_int_eq(hm_refresh(l, "m"), 1);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_uint_eq(req.version, 1);
}
END_TEST

/* ---- reentrancy ---- */

static struct gate reload_in_init = GATE_INIT, reload_may_finish = GATE_INIT;

static int blocking_init(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	if (hm_ctx_version(ctx) == 2) { /* only the reload blocks */
		gate_add(&reload_in_init, 1);
		if (!gate_wait(&reload_may_finish, 1))
			return -1;
	}
	return 0;
}

static void *refresh_thread(void *arg)
{
	return (void *)(long)hm_refresh(l, arg);
}

static void nested_during_reload(struct fx_req *req, hm_ctx *ctx)
{
	struct fx_req inner = {0};

	(void)ctx;
	if (req->depth > 0)
		return;
	/* The module is being reloaded by another thread right now. */
	req->redirect_rc = hm_dispatch(l, "m", &inner);
	req->global_version = inner.version;
}

START_TEST(test_nested_dispatch_of_own_module_during_its_reload_uses_current)
{
	struct fx_req req = {.in_handle = nested_during_reload};
	pthread_t t;
	void *rc;

	reload_in_init.value = reload_may_finish.value = 0;
	deploy_cp("probe_v1", root, "m.so");
	app.on_init = blocking_init;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_dispatch(l, "m", &(struct fx_req){0}), 1);
	deploy_mv("probe_v2", root, "m.so");
	pthread_create(&t, NULL, refresh_thread, "m");
	ck_assert(gate_wait(&reload_in_init, 1)); /* v2's init is running */

	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(req.redirect_rc, 1);        /* nested call: v1, no wait */
	ck_assert_uint_eq(req.global_version, 1);

	gate_add(&reload_may_finish, 1);
	pthread_join(t, &rc);
	ck_assert_int_eq((long)rc, 1);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 2);
}
END_TEST

static int self_get_rc;

static int init_gets_itself(struct fx_app *a, hm_ctx *ctx)
{
	hm_module *m;

	(void)ctx;
	self_get_rc = hm_get(a->loader, "m", &m);
	if (self_get_rc == 0)
		hm_put(m);
	return 0;
}

START_TEST(test_init_asking_for_its_own_module_gets_edeadlk)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	app.on_init = init_gets_itself;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(self_get_rc, HM_EDEADLK);
}
END_TEST

static atomic_int cycle_edeadlk;
static struct gate both_in_init = GATE_INIT;

static int init_gets_the_other(struct fx_app *a, hm_ctx *ctx)
{
	const char *other = strcmp(hm_ctx_path(ctx), "a.so") == 0 ? "b" : "a";
	hm_module *m;
	int rc;

	gate_add(&both_in_init, 1);
	gate_wait(&both_in_init, 2);
	rc = hm_get(a->loader, other, &m);
	if (rc == 0)
		hm_put(m);
	else if (rc == HM_EDEADLK)
		atomic_fetch_add(&cycle_edeadlk, 1);
	return 0;
}

START_TEST(test_two_inits_waiting_for_each_other_get_edeadlk_not_a_hang)
{
	pthread_t a, b;
	void *ra, *rb;

	deploy_cp("probe_v1", root, "a.so");
	deploy_cp("probe_v1", root, "b.so");
	atomic_store(&cycle_edeadlk, 0);
	both_in_init.value = 0;
	app.on_init = init_gets_the_other;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	pthread_create(&a, NULL, get_thread, "a");
	pthread_create(&b, NULL, get_thread, "b");
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	ck_assert_int_eq((long)ra, 0);
	ck_assert_int_eq((long)rb, 0);
	ck_assert_int_ge(atomic_load(&cycle_edeadlk), 1);
}
END_TEST

/* ---- many threads while versions change ---- */

#define STRESS_THREADS 4
#define STRESS_RELOADS 40
static atomic_bool stress_stop;
static atomic_long stress_bad, stress_done;

static void *stress_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&stress_stop)) {
		struct fx_req req = {0};
		int rc = hm_dispatch(l, "m", &req);
		if ((rc != 1 && rc != 2) || req.handled_by != rc)
			atomic_fetch_add(&stress_bad, 1);
		atomic_fetch_add(&stress_done, 1);
	}
	return NULL;
}

START_TEST(test_requests_never_fail_while_versions_change)
{
	pthread_t t[STRESS_THREADS];

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	atomic_store(&stress_stop, false);
	atomic_store(&stress_bad, 0);
	atomic_store(&stress_done, 0);
	ck_assert_int_eq(hm_refresh(l, "m"), 1);
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_create(&t[i], NULL, stress_thread, NULL);
	for (int i = 0; i < STRESS_RELOADS; i++) {
		deploy_mv(i % 2 ? "probe_v1" : "probe_v2", root, "m.so");
		ck_assert_int_eq(hm_refresh(l, "m"), 1);
	}
	atomic_store(&stress_stop, true);
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&stress_bad), 0);
	ck_assert_int_gt(atomic_load(&stress_done), 0);
	ck_assert_int_eq(atomic_load(&app.inits), STRESS_RELOADS + 1);
}
END_TEST

/* hm_status_get() while versions load and retire: every version it lists
 * is a real one of its module (ThreadSanitizer also checks the reads). */
static atomic_long status_bad, status_done;
static atomic_ulong status_loaded; /* m's versions whose load returned */

static void *status_thread(void *arg)
{
	struct hm_status *st;

	(void)arg;
	while (!atomic_load(&stress_stop)) {
		/* read before the status: the status can only show more */
		unsigned long loaded = atomic_load(&status_loaded);
		size_t listed = 0;
		if (hm_status_get(l, &st) < 0) {
			atomic_fetch_add(&status_bad, 1);
			continue;
		}
		for (size_t i = 0; i < st->nmodules; i++) {
			const struct hm_module_status *m = &st->modules[i];
			bool is_n = strcmp(m->path, "n.so") == 0;
			listed += m->nversions;
			for (size_t j = 0; j < m->nversions; j++) {
				uint64_t v = m->versions[j].version;
				/* newest first, no number twice, none made up */
				if (v == 0 || (j > 0 && v >= m->versions[j - 1].version) ||
				    (is_n && v != 1) || (!is_n && v > loaded + 1))
					atomic_fetch_add(&status_bad, 1);
			}
		}
		if (listed != st->versions_alive)
			atomic_fetch_add(&status_bad, 1); /* one listed under no module */
		hm_status_free(st);
		atomic_fetch_add(&status_done, 1);
	}
	return NULL;
}

START_TEST(test_status_read_while_versions_load_and_retire_lists_only_real_versions)
{
	pthread_t t[STRESS_THREADS], s;

	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("probe_v1", root, "n.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	atomic_store(&stress_stop, false);
	ck_assert_int_eq(hm_refresh(l, "m"), 1);
	ck_assert_int_eq(hm_refresh(l, "n"), 1);
	atomic_store(&status_loaded, 1);
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_create(&t[i], NULL, stress_thread, NULL);
	pthread_create(&s, NULL, status_thread, NULL);
	for (int i = 0; i < STRESS_RELOADS; i++) {
		deploy_mv(i % 2 ? "probe_v1" : "probe_v2", root, "m.so");
		ck_assert_int_eq(hm_refresh(l, "m"), 1);
		atomic_store(&status_loaded, (unsigned long)i + 2);
	}
	while (atomic_load(&status_done) == 0) /* at least one, however slow */
		sched_yield();
	atomic_store(&stress_stop, true);
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_join(s, NULL);
	ck_assert_int_eq(atomic_load(&stress_bad), 0);
	ck_assert_int_eq(atomic_load(&status_bad), 0);
	ck_assert_int_gt(atomic_load(&status_done), 0);
}
END_TEST

/* ---- membarrier refused after start ---- */

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* From now on every thread of this process gets EPERM from membarrier(),
 * as under a seccomp filter installed after the loader started.  0, or
 * the errno of what failed. */
static int deny_membarrier(void)
{
#ifdef TEST_AUDIT_ARCH
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof code / sizeof code[0], code};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return errno;
	/* TSYNC: the threads already running (reaper, requests) too */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return errno;
	if (syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0) != -1 || errno != EPERM)
		return EINVAL;
	return 0;
#else
	return ENOSYS;
#endif
}

static atomic_bool mb_stop;
static hm_loader *mb_loader;

/* Requests on their hazard slots all along, and hm_status_get() too. */
static void *mb_requests(void *arg)
{
	atomic_long *served = arg;

	while (!atomic_load(&mb_stop)) {
		struct fx_req req = {0};
		if (hm_dispatch(mb_loader, "m", &req) > 0)
			atomic_fetch_add(served, 1);
	}
	return NULL;
}

#define MB_RELOADS 6

/* The child's part; its exit status says what failed (0: nothing). */
static int membarrier_denied_child(void)
{
	struct fx_app a = {0};
	struct hm_options o;
	atomic_long served = 0;
	pthread_t t;
	int rc;

	alarm(120); /* a hang fails the test: SIGALRM */
	a.on_fini = count_fini;
	loader_options(&o, root, &(const struct loader_opts){.app = &a,
		.interval_ms = HM_CHECK_NEVER, .removal_delay_ms = LIB_DEFAULT});
	if (hm_open(&mb_loader, &o) != 0) /* no assertion in this child */
		return 10;
	/* loaded, then served on a hazard slot: membarrier registered */
	for (int i = 0; i < 2; i++)
		if (hm_dispatch(mb_loader, "m", &(struct fx_req){0}) != 1)
			return 11;
	if (pthread_create(&t, NULL, mb_requests, &served) != 0)
		return 12;
	while (atomic_load(&served) == 0) /* its slots attached too */
		sched_yield();
	if ((rc = deny_membarrier()) != 0) {
		fprintf(stderr, "cannot deny membarrier: %s\n", strerror(rc));
		return rc == ENOSYS || rc == EINVAL || rc == EACCES ? 77 : 13;
	}
	for (int i = 0; i < MB_RELOADS; i++) {
		deploy_mv(i % 2 ? "probe_v1" : "probe_v2", root, "m.so");
		if (hm_refresh(mb_loader, "m") != 1)
			return 14;
		if (hm_dispatch(mb_loader, "m", &(struct fx_req){0}) != (i % 2 ? 1 : 2))
			return 15;
	}
	/* every replaced version is finalised, with the loader open */
	if (!gate_wait(&finis_gate, MB_RELOADS))
		return 16;
	atomic_store(&mb_stop, true);
	pthread_join(t, NULL);
	if (atomic_load(&served) == 0 || atomic_load(&a.finis) != MB_RELOADS)
		return 17;
	if (!logged("membarrier failed (Operation not permitted)")) {
		return 18;
	}
	if (hm_close(mb_loader, -1) != 0) /* returns: the current one too */
		return 19;
	return atomic_load(&a.finis) == MB_RELOADS + 1 && a.inits == a.finis ? 0 : 20;
}

START_TEST(test_membarrier_refused_after_start_still_finalises_every_version)
{
	int status;
	pid_t pid;

	deploy_cp("probe_v1", root, "m.so");
	/* A seccomp filter cannot be removed: the child takes it.  Forked
	 * before this process opens a loader, whose threads a child of a
	 * threaded process cannot have (ThreadSanitizer refuses it). */
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0)
		_exit(membarrier_denied_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER); /* for teardown */
	ck_assert_msg(WIFEXITED(status), "child killed by signal %d (a hang ends in "
					 "SIGALRM)", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (WEXITSTATUS(status) == 77) {
		fprintf(stderr, "skipped: this kernel cannot filter membarrier\n");
		return;
	}
	ck_assert_msg(WEXITSTATUS(status) == 0, "child failed at step %d", WEXITSTATUS(status));
}
END_TEST

/* ---- close ---- */

START_TEST(test_close_with_a_reference_held_times_out_and_reports_it)
{
	hm_module *m;

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(hm_close(l, 0), HM_ETIMEDOUT);
	ck_assert(logged("m.so version 1 still has 1 reference"));
	ck_assert(!logged("1 references"));
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "1 version still referenced"));
	/* closing: no new module is handed out, the held one still works */
	ck_assert_int_eq(hm_get(l, "m", &(hm_module *){NULL}), HM_ECLOSED);
	ck_assert_int_eq(hm_call(m, &(struct fx_req){0}), 1);
	hm_put(m);
	/* teardown closes for real */
}
END_TEST

/* fini of the versions close drops waits until close has begun. */
static atomic_bool close_called;
static struct gate close_gate = GATE_INIT;

static void fini_after_close_began(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	(void)ctx;
	while (!atomic_load(&close_called))
		ck_assert(gate_wait(&close_gate, 1));
}

START_TEST(test_close_with_timeout_0_and_no_reference_held_finalises_everything)
{
	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("global_v1", root, "_global.so");
	deploy_cp("probe_v1", root, "n.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &(struct fx_req){0}), 1);
	ck_assert_int_eq(hm_dispatch(l, "n", &(struct fx_req){0}), 1);
	/* Each fini runs only once close has begun: close waits for the
	 * finalisations in progress, which no one holds up, whatever its
	 * timeout.  Set before the reload: the reaper may run the replaced
	 * version's fini at once, and reads on_fini there. */
	app.on_fini = fini_after_close_began;
	deploy_mv("probe_v2", root, "m.so");
	ck_assert_int_eq(hm_refresh(l, "m"), 1); /* a replaced version too */
	atomic_store(&close_called, true);
	gate_add(&close_gate, 1);
	ck_assert_msg(hm_close(l, 0) == 0, "hm_close: %s", hm_errmsg());
	ck_assert(!logged("still has 0"));
	ck_assert(!logged("close:"));
	ck_assert_int_eq(atomic_load(&app.finis), atomic_load(&app.inits));
	ck_assert_int_eq(atomic_load(&app.finis), 4);
	app.on_fini = count_fini;
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER); /* for teardown */
}
END_TEST

static atomic_bool put_done;

/* Put the reference once the loader is closing (hm_get says so). */
static void *put_when_closing(void *arg)
{
	hm_module *m = arg;
	hm_module *other;

	while (hm_get(l, "m", &other) != HM_ECLOSED)
		hm_put(other);
	atomic_store(&put_done, true);
	hm_put(m);
	return NULL;
}

START_TEST(test_close_with_a_positive_timeout_returns_once_the_last_reference_is_put)
{
	hm_module *m;
	pthread_t t;

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	/* positive: when the time is up with a reference held, HM_ETIMEDOUT */
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(hm_close(l, 1), HM_ETIMEDOUT);
	ck_assert(logged("m.so version 1 still has 1 reference"));
	hm_put(m);
	ck_assert_int_eq(hm_close(l, 1), 0); /* called again: done */
	/* and it returns as soon as the reference is put, not at the timeout */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, put_when_closing, m), 0);
	ck_assert_int_eq(hm_close(l, 600 * 1000), 0);
	ck_assert(atomic_load(&put_done));
	pthread_join(t, NULL);
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER); /* for teardown */
}
END_TEST

START_TEST(test_close_runs_fini_of_modules_before_their_global)
{
	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("global_v1", root, "_global.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_dispatch(l, "m", &(struct fx_req){0}), 1);
	ck_assert_int_eq(atomic_load(&app.inits), 2);
	ck_assert_int_eq(hm_close(l, -1), 0);
	ck_assert_int_eq(atomic_load(&app.finis), 2);
	/* the log shows the order */
	ck_assert(logged("m.so version 1 unloaded\n_global.so version 1 unloaded"));
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER); /* for teardown */
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *c = tcase_create("cache");

	tcase_add_checked_fixture(c, setup, teardown);
	tcase_add_test(c, test_concurrent_first_requests_run_one_init);
	tcase_add_test(c, test_two_slow_inits_of_different_files_run_in_parallel);
	tcase_add_test(c, test_stale_version_serves_inflight_request_and_is_finalised_after_its_put);
	tcase_add_test(c, test_every_writer_is_seen_when_checking_on_every_request);
	tcase_add_test(c, test_unchanged_file_is_not_reloaded);
	tcase_add_test(c, test_deleted_module_stops_serving_and_comes_back_when_readded);
	tcase_add_test(c, test_interval_never_waits_for_refresh);
	tcase_add_test(c, test_new_global_rebinds_modules_and_old_pair_finishes);
	tcase_add_test(c, test_global_added_later_is_bound_by_the_next_check);
	tcase_add_test(c, test_broken_global_fails_its_modules_until_it_is_fixed);
	tcase_add_test(c, test_refresh_retries_a_failed_first_load);
	tcase_add_test(c, test_nested_dispatch_of_own_module_during_its_reload_uses_current);
	tcase_add_test(c, test_init_asking_for_its_own_module_gets_edeadlk);
	tcase_add_test(c, test_two_inits_waiting_for_each_other_get_edeadlk_not_a_hang);
	tcase_add_test(c, test_requests_never_fail_while_versions_change);
	tcase_add_test(c, test_status_read_while_versions_load_and_retire_lists_only_real_versions);
	tcase_add_test(c, test_membarrier_refused_after_start_still_finalises_every_version);
	tcase_add_test(c, test_close_with_a_reference_held_times_out_and_reports_it);
	tcase_add_test(c, test_close_runs_fini_of_modules_before_their_global);
	tcase_add_test(c, test_close_with_timeout_0_and_no_reference_held_finalises_everything);
	tcase_add_test(c, test_close_with_a_positive_timeout_returns_once_the_last_reference_is_put);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	return run_suite(cache_suite(), CK_NORMAL);
}
