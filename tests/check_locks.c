/* SPDX-License-Identifier: MIT */
/*
 * check_locks.c - named locks held by requests (hm_lock(3)): reentrant
 * across a request's nested calls (the seed's internal redirect), exclusive
 * between requests even on one thread, released when the request ends,
 * bounded waits, deadlocks detected, a flood of names costs nothing once
 * released.  Real modules (the probe fixture) run the code under test in
 * their handler (fx_req.in_handle).
 */
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

static char *root;
static hm_loader *loader;
static struct fx_app app;

static void setup(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "m.so");
	loader = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
}

static void teardown(void)
{
	ck_assert_int_eq(hm_close(loader, -1), 0);
	rmroot(root);
}

/* Run fn in the handler of a request for m; the dispatch's result. */
static int in_request(void (*fn)(struct fx_req *, hm_ctx *), void *arg)
{
	struct fx_req req = {.in_handle = fn, .arg = arg};

	return hm_dispatch(loader, "m", &req);
}

/* This process's resident memory, from /proc/self/statm. */
static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- one request ---------------------------------------------------------- */

struct nested {
	int depth;
	int inner_rc, inner_held;
};

static void lock_and_redirect(struct fx_req *req, hm_ctx *ctx)
{
	struct nested *n = req->arg;

	if (n->depth++ == 0) {
		ck_assert_int_eq(hm_lock(ctx, "session:42", HM_LOCK_EXCLUSIVE, 0), 0);
		/* The same lock again in the same call: one more hold. */
		ck_assert_int_eq(hm_lock(ctx, "session:42", HM_LOCK_EXCLUSIVE, 0), 0);
		ck_assert_int_eq(hm_unlock(ctx, "session:42"), 0);
		/* An internal redirect is the same request: it gets the lock. */
		ck_assert_int_eq(hm_ctx_dispatch(ctx, "m"), 1);
		ck_assert_int_eq(hm_lock_held(ctx, "session:42"), HM_LOCK_EXCLUSIVE);
	} else {
		n->inner_rc = hm_lock(ctx, "session:42", HM_LOCK_EXCLUSIVE, 0);
		n->inner_held = hm_lock_held(ctx, "session:42");
		ck_assert_int_eq(hm_unlock(ctx, "session:42"), 0);
	}
}

static void held_by_nobody(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	/* The request before released it when it ended: had at once. */
	ck_assert_int_eq(hm_lock_held(ctx, "session:42"), 0);
	ck_assert_int_eq(hm_lock(ctx, "session:42", HM_LOCK_EXCLUSIVE, 0), 0);
}

START_TEST(test_a_redirect_reenters_the_lock_its_request_holds)
{
	struct nested n = {0};

	ck_assert_int_eq(in_request(lock_and_redirect, &n), 1);
	ck_assert_int_eq(n.inner_rc, 0);
	ck_assert_int_eq(n.inner_held, HM_LOCK_EXCLUSIVE);
	ck_assert_int_eq(in_request(held_by_nobody, NULL), 1);
}
END_TEST

/* Inside request A, holding "cart", the embedder serves request B on the
 * same thread: B cannot have it, and cannot wait for A either. */
struct nested_b {
	bool give_up;    /* B's handler fails once its wait failed */
	int lock_rc;     /* B's hm_lock() */
	int dispatch_rc; /* hm_dispatch() of B */
};

static void b_wants_it(struct fx_req *req, hm_ctx *ctx)
{
	struct nested_b *n = req->arg;

	n->lock_rc = hm_lock(ctx, "cart", HM_LOCK_SHARED, n->give_up ? 0 : 5000);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "lock 'cart': waiting would deadlock"));
	if (n->give_up)
		req->fail = "M.handle";
}

static void a_serves_b(struct fx_req *req, hm_ctx *ctx)
{
	struct nested_b *n = req->arg;
	struct fx_req b = {.in_handle = b_wants_it, .arg = n};

	ck_assert_int_eq(hm_lock(ctx, "cart", HM_LOCK_EXCLUSIVE, 0), 0);
	n->dispatch_rc = hm_dispatch(loader, "m", &b);
	if (n->give_up) {
		ck_assert_ptr_nonnull(strstr(hm_errmsg(), "lock 'cart': waiting would deadlock"));
		ck_assert_ptr_nonnull(strstr(hm_errmsg(), "(the request gave up)"));
	}
	ck_assert_int_eq(hm_lock_held(ctx, "cart"), HM_LOCK_EXCLUSIVE);
}

START_TEST(test_two_requests_on_one_thread_exclude_each_other)
{
	struct nested_b n = {0};

	ck_assert_int_eq(in_request(a_serves_b, &n), 1);
	ck_assert_int_eq(n.lock_rc, HM_EDEADLK);
	ck_assert_int_eq(n.dispatch_rc, 1);
}
END_TEST

/* The handler fails after a lock wait failed: the request's error is the
 * wait's, so that an embedder can answer "try again" (hotmod-httpd: 503). */
START_TEST(test_a_request_that_gives_up_on_a_lock_fails_with_the_wait_s_error)
{
	struct nested_b n = {.give_up = true};

	ck_assert_int_eq(in_request(a_serves_b, &n), 1);
	ck_assert_int_eq(n.lock_rc, HM_EDEADLK);
	ck_assert_int_eq(n.dispatch_rc, HM_EDEADLK);
}
END_TEST

static void bad_calls(struct fx_req *req, hm_ctx *ctx)
{
	char long_name[HM_LOCK_NAME_MAX + 2];

	(void)req;
	memset(long_name, 'x', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	ck_assert_int_eq(hm_lock(ctx, "a", 0, 0), HM_EINVAL);
	ck_assert_int_eq(hm_lock(ctx, "a", HM_LOCK_SHARED | HM_LOCK_EXCLUSIVE, 0), HM_EINVAL);
	ck_assert_int_eq(hm_lock(ctx, "a", HM_LOCK_SHARED, -1), HM_EINVAL);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "waits are bounded"));
	ck_assert_int_eq(hm_lock(ctx, "", HM_LOCK_SHARED, 0), HM_EINVAL);
	ck_assert_int_eq(hm_lock(ctx, long_name, HM_LOCK_SHARED, 0), HM_EINVAL);
	long_name[HM_LOCK_NAME_MAX] = '\0'; /* the longest name there can be */
	ck_assert_int_eq(hm_lock(ctx, long_name, HM_LOCK_SHARED, 0), 0);
	ck_assert_int_eq(hm_lock(ctx, NULL, HM_LOCK_SHARED, 0), HM_EINVAL);
	ck_assert_int_eq(hm_unlock(ctx, "never-taken"), HM_EINVAL);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "does not hold lock 'never-taken'"));
	ck_assert_int_eq(hm_lock(NULL, "a", HM_LOCK_SHARED, 0), HM_EINVAL);
	/* A request holds at most 64 locks: the 65th is a clear error. */
	char name[32];
	for (int i = 1; i < 64; i++) {
		snprintf(name, sizeof name, "n%d", i);
		ck_assert_int_eq(hm_lock(ctx, name, HM_LOCK_SHARED, 0), 0);
	}
	ck_assert_int_eq(hm_lock(ctx, "one-more", HM_LOCK_SHARED, 0), HM_ETOOMANY);
	/* One it holds is still had again. */
	ck_assert_int_eq(hm_lock(ctx, "n1", HM_LOCK_SHARED, 0), 0);
}

START_TEST(test_bad_arguments_and_too_many_locks_are_clear_errors)
{
	ck_assert_int_eq(in_request(bad_calls, NULL), 1);
}
END_TEST

/* 100,000 names locked and released, one after the other: each entry is
 * freed with its last holder, so memory stays where it was. */
static void flood(struct fx_req *req, hm_ctx *ctx)
{
	char name[HM_LOCK_NAME_MAX + 1];

	(void)req;
	memset(name, 'f', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	for (int i = 0; i < 100000; i++) {
		snprintf(name, 16, "%015d", i); /* the rest stays 'f's: 255 bytes */
		name[15] = 'f';
		ck_assert_int_eq(hm_lock(ctx, name, HM_LOCK_EXCLUSIVE, 0), 0);
		ck_assert_int_eq(hm_unlock(ctx, name), 0);
	}
}

START_TEST(test_a_flood_of_distinct_names_does_not_grow_memory)
{
	ck_assert_int_eq(in_request(flood, NULL), 1); /* warm the allocator */
	long before = rss_kib();
	ck_assert_int_eq(in_request(flood, NULL), 1);
	ck_assert_int_eq(in_request(flood, NULL), 1);
#ifndef __SANITIZE_ADDRESS__
	/* Kept, they would be 100,000 entries of over 300 bytes: 30 MB.
	 * (AddressSanitizer holds freed memory back: not measured there.) */
	ck_assert_int_lt(rss_kib() - before, 2048);
#else
	(void)before;
#endif
}
END_TEST

/* ---- requests on several threads ------------------------------------------ */

/* A barrier-like handshake: each side says where it is, and waits for the
 * other's word, on a condition (no sleeping). */
struct meet {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int step;
};

static void meet_say(struct meet *m, int step)
{
	pthread_mutex_lock(&m->mu);
	m->step = step;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static void meet_add(struct meet *m)
{
	pthread_mutex_lock(&m->mu);
	m->step++;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static void meet_wait(struct meet *m, int step)
{
	pthread_mutex_lock(&m->mu);
	while (m->step < step)
		pthread_cond_wait(&m->cv, &m->mu);
	pthread_mutex_unlock(&m->mu);
}

struct pair {
	struct meet meet;
	const char *first, *second; /* what each side takes, in order */
	unsigned mode;
	int rc_a, rc_b;
};

/* A holds "x", lets B go, waits for B's word; then ends its request. */
static void a_holds(struct fx_req *req, hm_ctx *ctx)
{
	struct pair *p = req->arg;

	ck_assert_int_eq(hm_lock(ctx, "x", p->mode, 0), 0);
	meet_say(&p->meet, 1);
	meet_wait(&p->meet, 2);
}

static void b_tries(struct fx_req *req, hm_ctx *ctx)
{
	struct pair *p = req->arg;

	meet_wait(&p->meet, 1);
	p->rc_b = hm_lock(ctx, "x", HM_LOCK_EXCLUSIVE, 50);
	if (p->mode == HM_LOCK_SHARED)
		p->rc_a = hm_lock(ctx, "x", HM_LOCK_SHARED, 0); /* shared with A */
	meet_say(&p->meet, 2);
}

static void *run_a(void *arg)
{
	struct fx_req req = {.in_handle = a_holds, .arg = arg};

	ck_assert_int_eq(hm_dispatch(loader, "m", &req), 1);
	return NULL;
}

static void b_after(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	ck_assert_int_eq(hm_lock(ctx, "x", HM_LOCK_EXCLUSIVE, 0), 0);
}

START_TEST(test_a_wait_is_bounded_and_the_end_of_a_request_releases)
{
	struct pair p = {.meet = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0},
		.mode = _i ? HM_LOCK_SHARED : HM_LOCK_EXCLUSIVE};
	pthread_t a;
	struct fx_req b = {.in_handle = b_tries, .arg = &p};

	ck_assert_int_eq(pthread_create(&a, NULL, run_a, &p), 0);
	ck_assert_int_eq(hm_dispatch(loader, "m", &b), 1);
	/* A holds it: exclusive is not had within the deadline... */
	ck_assert_int_eq(p.rc_b, HM_ETIMEDOUT);
	/* ... while shared is, beside A's shared hold. */
	if (_i)
		ck_assert_int_eq(p.rc_a, 0);
	ck_assert_int_eq(pthread_join(a, NULL), 0);
	/* A's request ended: the lock is free. */
	b.in_handle = b_after;
	ck_assert_int_eq(hm_dispatch(loader, "m", &b), 1);
}
END_TEST

/* Two requests take two locks in opposite orders: one of them is told it
 * would deadlock, and the other gets both once it gave up. */
struct cross {
	struct meet meet;
	int rc[2];
};

static void take_two(struct fx_req *req, hm_ctx *ctx)
{
	struct cross *c = ((void **)req->arg)[0];
	int me = (int)(intptr_t)((void **)req->arg)[1];
	const char *mine = me ? "y" : "x", *other = me ? "x" : "y";

	ck_assert_int_eq(hm_lock(ctx, mine, HM_LOCK_EXCLUSIVE, 0), 0);
	meet_add(&c->meet); /* at 2, both hold one */
	meet_wait(&c->meet, 2);
	c->rc[me] = hm_lock(ctx, other, HM_LOCK_EXCLUSIVE, 30000);
}

static void *run_take_two(void *arg)
{
	struct fx_req req = {.in_handle = take_two, .arg = arg};

	ck_assert_int_eq(hm_dispatch(loader, "m", &req), 1);
	return NULL;
}

START_TEST(test_a_deadlock_between_two_requests_fails_one_of_them)
{
	struct cross c = {.meet = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}};
	void *args[2][2] = {{&c, (void *)0}, {&c, (void *)1}};
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, run_take_two, args[i]), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	/* The second to wait closed the cycle: it failed at once, without
	 * waiting out its 30 s; its request ended, and the other got both. */
	ck_assert((c.rc[0] == HM_EDEADLK && c.rc[1] == 0) ||
		  (c.rc[0] == 0 && c.rc[1] == HM_EDEADLK));
}
END_TEST

/* Many requests on many threads add to one counter under the lock:
 * nothing is lost. */
#define ADDERS 8
#define ADDS 500
static long counter;

static void add_one(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	ck_assert_int_eq(hm_lock(ctx, "counter", HM_LOCK_EXCLUSIVE, 30000), 0);
	long v = counter;
	sched_yield(); /* invite another thread in: the lock must keep it out */
	counter = v + 1;
}

static void *adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < ADDS; i++) {
		struct fx_req req = {.in_handle = add_one};
		ck_assert_int_eq(hm_dispatch(loader, "m", &req), 1);
	}
	return NULL;
}

START_TEST(test_concurrent_requests_under_one_lock_lose_nothing)
{
	pthread_t t[ADDERS];

	counter = 0;
	for (int i = 0; i < ADDERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, adder, NULL), 0);
	for (int i = 0; i < ADDERS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_int_eq(counter, ADDERS * ADDS);
}
END_TEST

/* ---- host locks: several processes ---------------------------------------- */

static void host_without_table(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	ck_assert_int_eq(hm_lock(ctx, "h", HM_LOCK_EXCLUSIVE | HM_LOCK_HOST, 0), HM_EINVAL);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "(hm_lock_host_init)"));
}

START_TEST(test_host_locks_need_the_embedders_table)
{
	ck_assert_int_eq(in_request(host_without_table, NULL), 1);
}
END_TEST

/* Another process (a worker): forked while the test has no thread yet
 * (a sanitizer cannot follow a fork of a threaded process), it opens its
 * own loader and takes host:cart in mode once told (cmd), says so
 * (ready), and holds it until it is killed. */
struct other {
	pid_t pid;
	unsigned mode;
	int cmd[2], ready[2];
};

static void hold_and_stay(struct fx_req *req, hm_ctx *ctx)
{
	struct other *o = req->arg;

	if (hm_lock(ctx, "host:cart", o->mode | HM_LOCK_HOST, 0) != 0)
		_exit(3);
	if (write(o->ready[1], "", 1) != 1)
		_exit(4);
	pause(); /* until killed, holding it */
}

static void other_start(struct other *o, unsigned mode)
{
	char byte;

	o->mode = mode;
	ck_assert_int_eq(pipe(o->cmd), 0);
	ck_assert_int_eq(pipe(o->ready), 0);
	if ((o->pid = fork()) == 0) {
		if (read(o->cmd[0], &byte, 1) != 1)
			_exit(6);
		/* Its own loader: a loader belongs to the process that opened it. */
		hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
			.quiet = true);
		struct fx_req req = {.in_handle = hold_and_stay, .arg = o};
		hm_dispatch(l, "m", &req);
		_exit(5);
	}
	ck_assert_int_gt(o->pid, 0);
}

/* Tell it to take the lock; once it holds it. */
static void other_holds(struct other *o)
{
	char byte;

	ck_assert_int_eq(write(o->cmd[1], "", 1), 1);
	ck_assert_int_eq(read(o->ready[0], &byte, 1), 1);
}

static void other_killed(struct other *o)
{
	ck_assert_int_eq(kill(o->pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(o->pid, NULL, 0), o->pid);
	for (int i = 0; i < 2; i++) {
		close(o->cmd[i]);
		close(o->ready[i]);
	}
}

struct host_try {
	unsigned mode;
	int timeout_ms;
	int rc;
};

static void host_try(struct fx_req *req, hm_ctx *ctx)
{
	struct host_try *t = req->arg;

	t->rc = hm_lock(ctx, "host:cart", t->mode | HM_LOCK_HOST, t->timeout_ms);
}

static int try_host(unsigned mode, int timeout_ms)
{
	struct host_try t = {.mode = mode, .timeout_ms = timeout_ms};

	ck_assert_int_eq(in_request(host_try, &t), 1);
	return t.rc;
}

/* Its own setup: the other processes are forked before the loader (and
 * its threads) exists. */
START_TEST(test_a_host_lock_excludes_other_processes_and_survives_its_holder)
{
	struct other shared, excl;

	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "m.so");
	ck_assert_int_eq(hm_lock_host_init(64), 0);
	ck_assert_int_eq(hm_lock_host_init(64), HM_EINVAL); /* once */
	other_start(&shared, HM_LOCK_SHARED);
	other_start(&excl, HM_LOCK_EXCLUSIVE);
	loader = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);

	/* Held shared by another process: shared is had, exclusive is not. */
	other_holds(&shared);
	ck_assert_int_eq(try_host(HM_LOCK_SHARED, 0), 0);
	ck_assert_int_eq(try_host(HM_LOCK_EXCLUSIVE, 50), HM_ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "host lock 'host:cart': not had within"));
	/* Its holder killed: had, and nothing was being changed. */
	other_killed(&shared);
	ck_assert_int_eq(try_host(HM_LOCK_EXCLUSIVE, 30000), 0);

	/* Held exclusive, then killed holding it (a crashed worker): the
	 * next holder has it, told that the state may be half-changed. */
	other_holds(&excl);
	ck_assert_int_eq(try_host(HM_LOCK_SHARED, 50), HM_ETIMEDOUT);
	other_killed(&excl);
	ck_assert_int_eq(try_host(HM_LOCK_EXCLUSIVE, 30000), HM_LOCK_RECOVERED);
	/* Told once. */
	ck_assert_int_eq(try_host(HM_LOCK_EXCLUSIVE, 0), 0);
	teardown();
}
END_TEST

/* Within one process, host holds are a request's like any: reentrant in
 * it, refused to a request it serves nested on its thread, released at
 * its end. */
static void host_nested(struct fx_req *req, hm_ctx *ctx)
{
	int *rc = req->arg;
	struct host_try inner = {.mode = HM_LOCK_SHARED, .timeout_ms = 5000};
	struct fx_req b = {.in_handle = host_try, .arg = &inner};

	ck_assert_int_eq(hm_lock(ctx, "host:cart", HM_LOCK_EXCLUSIVE | HM_LOCK_HOST, 0), 0);
	ck_assert_int_eq(hm_lock(ctx, "host:cart", HM_LOCK_SHARED | HM_LOCK_HOST, 0), 0);
	ck_assert_int_eq(hm_lock_held(ctx, "host:cart"), HM_LOCK_EXCLUSIVE);
	ck_assert_int_eq(hm_unlock(ctx, "host:cart"), 0);
	ck_assert_int_eq(hm_dispatch(loader, "m", &b), 1);
	*rc = inner.rc;
}

START_TEST(test_host_locks_are_reentrant_per_request_and_released_at_its_end)
{
	int rc = 0;

	ck_assert_int_eq(hm_lock_host_init(64), 0);
	ck_assert_int_eq(in_request(host_nested, &rc), 1);
	ck_assert_int_eq(rc, HM_EDEADLK);
	ck_assert_int_eq(try_host(HM_LOCK_EXCLUSIVE, 0), 0);
}
END_TEST

static Suite *locks_suite(void)
{
	Suite *s = suite_create("locks");
	TCase *c = tcase_create("locks");

	tcase_add_checked_fixture(c, setup, teardown);
	tcase_add_test(c, test_a_redirect_reenters_the_lock_its_request_holds);
	tcase_add_test(c, test_two_requests_on_one_thread_exclude_each_other);
	tcase_add_test(c, test_a_request_that_gives_up_on_a_lock_fails_with_the_wait_s_error);
	tcase_add_test(c, test_bad_arguments_and_too_many_locks_are_clear_errors);
	tcase_add_test(c, test_a_flood_of_distinct_names_does_not_grow_memory);
	tcase_add_loop_test(c, test_a_wait_is_bounded_and_the_end_of_a_request_releases, 0, 2);
	tcase_add_test(c, test_a_deadlock_between_two_requests_fails_one_of_them);
	tcase_add_test(c, test_concurrent_requests_under_one_lock_lose_nothing);
	tcase_add_test(c, test_host_locks_need_the_embedders_table);
	tcase_add_test(c, test_host_locks_are_reentrant_per_request_and_released_at_its_end);
	suite_add_tcase(s, c);
	TCase *h = tcase_create("processes");
	tcase_add_test(h, test_a_host_lock_excludes_other_processes_and_survives_its_holder);
	suite_add_tcase(s, h);
	return s;
}

int main(void)
{
	return run_suite(locks_suite(), CK_NORMAL);
}
